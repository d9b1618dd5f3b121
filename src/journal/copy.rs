//! `journal copy`: a campaign started alone brought into the shared ledger
//! (or back), once and verifiably. Every row of the campaign's tables keeps
//! its id (actions point at their host steps by id); the target is written
//! in one transaction, so it has all of it or nothing; the rows of each
//! table are counted on both sides afterwards.

use serde::Serialize;

use super::db::{params, Backend, Conn, DbResult, ToValue, Value};
use super::Journal;
use crate::error::{Error, InputProblem, Result};

/// The tables of a campaign's history, parents first. Leases, slots and
/// runs under way belong to live processes, and are not copied.
const TABLES: [(&str, &str); 8] = [
    ("runs", "started_at, id"),
    ("host_steps", "id"),
    ("actions", "id"),
    ("sub_commands", "id"),
    ("remote_jobs", "rowid"),
    ("operator_actions", "id"),
    ("host_identity", "id"),
    ("lease_takeovers", "id"),
];

/// How one table was copied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TableCount {
    pub table: String,
    pub source: i64,
    pub target: i64,
}

/// What `journal copy` did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CopyReport {
    /// False when the target already held this same campaign (copied before).
    pub copied: bool,
    pub tables: Vec<TableCount>,
}

impl Journal {
    /// Copies this journal's campaign into `target`, which must be empty or
    /// hold this very campaign already (then nothing is written).
    pub fn copy_into(&self, target: &Journal) -> Result<CopyReport> {
        let before = self.counts(target)?;
        let target_rows: i64 = before.iter().map(|count| count.target).sum();
        if target_rows > 0 {
            let same_runs = self.run_ids()? == target.run_ids()?;
            if same_runs && before.iter().all(|count| count.source == count.target) {
                return Ok(CopyReport { copied: false, tables: before });
            }
            return Err(Error::input(InputProblem::new(
                target.path(),
                format!(
                    "the target ledger already holds {target_rows} rows of another campaign; journal copy only \
                     fills an empty ledger (nothing was changed)"
                ),
            )));
        }
        let source_conn = self.conn.lock().unwrap_or_else(|poison| poison.into_inner());
        target.immediate(|conn| {
            for (table, order) in TABLES {
                copy_table(&source_conn, conn, table, order)?;
            }
            Ok(())
        })?;
        drop(source_conn);
        let after = self.counts(target)?;
        if let Some(wrong) = after.iter().find(|count| count.source != count.target) {
            return Err(Error::io(
                target.path(),
                std::io::Error::other(format!(
                    "journal copy: {} has {} rows in the source and {} in the target",
                    wrong.table, wrong.source, wrong.target
                )),
            ));
        }
        Ok(CopyReport { copied: true, tables: after })
    }

    fn counts(&self, target: &Journal) -> Result<Vec<TableCount>> {
        let source = self.with(table_counts)?;
        let target = target.with(table_counts)?;
        Ok(source
            .into_iter()
            .zip(target)
            .map(|((table, source), (_, target))| TableCount { table: table.to_owned(), source, target })
            .collect())
    }

    fn run_ids(&self) -> Result<Vec<String>> {
        self.with(|conn| conn.query_map("SELECT id FROM runs ORDER BY id", params![], |row| row.get(0)))
    }
}

fn table_counts(conn: &Conn) -> DbResult<Vec<(&'static str, i64)>> {
    TABLES
        .iter()
        .map(|(table, _)| {
            let count = match conn.has_table(table)? {
                true => conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), params![], |row| row.get(0))?,
                false => 0,
            };
            Ok((*table, count))
        })
        .collect()
}

fn copy_table(source: &Conn, target: &Conn, table: &str, order: &str) -> DbResult<()> {
    if !source.has_table(table)? {
        return Ok(());
    }
    // The columns both have; `rowid` is the order of remote jobs, made anew by the target.
    let wanted = target.columns(table)?;
    let columns: Vec<String> =
        source.columns(table)?.into_iter().filter(|column| column != "rowid" && wanted.contains(column)).collect();
    let list = columns.join(", ");
    let placeholders: Vec<String> = (1..=columns.len()).map(|n| format!("?{n}")).collect();
    let insert = format!("INSERT INTO {table} ({list}) VALUES ({})", placeholders.join(", "));
    for row in source.query(&format!("SELECT {list} FROM {table} ORDER BY {order}"), params![])? {
        let values: Vec<&dyn ToValue> = row.values().iter().map(|value| value as &dyn ToValue).collect();
        target.execute(&insert, &values)?;
    }
    // PostgreSQL's identity does not see ids given explicitly: it starts after them.
    if target.backend() == Backend::Postgres
        && columns.iter().any(|column| column == "id")
        && table != "runs"
        && table != "remote_jobs"
    {
        let max: Option<i64> =
            target.query_row(&format!("SELECT MAX(id) FROM {table}"), params![], |row| row.get(0))?;
        if let Some(max) = max {
            target.query(
                &format!("SELECT setval(pg_get_serial_sequence('{table}', 'id'), CAST(?1 AS BIGINT))"),
                params![Value::Int(max)],
            )?;
        }
    }
    Ok(())
}
