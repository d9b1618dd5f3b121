//! Run-wide limits across runs: a shared resource (live migrations across
//! the site, the Aquilon host) allows so many users at once, counted over
//! every run on the ledger, not per process. Each user holds a slot row that
//! expires unless its run renews it (with its leases), so a killed run's
//! slots free themselves.

use std::time::Duration;

use super::db::{params, Conn, DbResult, ToValue};

use super::leases::{later, process, LeaseHolder};
use super::{now, Journal};
use crate::error::Result;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS slots (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    run_id TEXT NOT NULL,
    process_scope TEXT NOT NULL,
    pid INTEGER NOT NULL,
    pid_start TEXT NOT NULL,
    taken_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS slots_by_name ON slots(name);
CREATE INDEX IF NOT EXISTS slots_by_run ON slots(run_id);
";

impl Journal {
    /// Takes one of the `limit` slots of `name` for `holder` when one is
    /// free (or always, with `beyond_limit`: a use already under way that
    /// must be counted); its id, or `None` when all are taken. Slots whose
    /// run stopped renewing them, or whose process is gone from this
    /// machine, are freed first.
    pub fn take_slot(
        &self,
        name: &str,
        limit: usize,
        holder: &LeaseHolder,
        duration: Duration,
        beyond_limit: bool,
    ) -> Result<Option<i64>> {
        self.bookkeeping(|conn| {
            free_lapsed(conn, "slots", Some(name), holder)?;
            let taken: i64 =
                conn.query_row("SELECT COUNT(*) FROM slots WHERE name = ?1", params![name], |row| row.get(0))?;
            if !beyond_limit && taken as usize >= limit {
                return Ok(None);
            }
            let id = conn.insert(
                "INSERT INTO slots (name, run_id, process_scope, pid, pid_start, taken_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    name,
                    holder.run_id,
                    holder.process_scope,
                    holder.pid,
                    holder.pid_start,
                    now(),
                    later(duration)
                ],
            )?;
            Ok(Some(id))
        })
    }

    /// Gives a slot back.
    pub fn release_slot(&self, id: i64) -> Result<()> {
        self.bookkeeping(|conn| conn.execute("DELETE FROM slots WHERE id = ?1", params![id]).map(drop))
    }

    /// How many slots of `name` are held now.
    pub fn slots_taken(&self, name: &str) -> Result<usize> {
        self.with(|conn| {
            conn.query_row(
                "SELECT COUNT(*) FROM slots WHERE name = ?1 AND expires_at > ?2",
                params![name, now()],
                |row| row.get::<i64>(0),
            )
            .map(|count| count as usize)
        })
    }
}

/// Frees the rows of `table` (`slots`, narrowed to the resource `name`, or
/// `reservations`) whose run stopped renewing them or whose process is gone
/// from this machine, so a crashed run holds nothing for long.
pub(super) fn free_lapsed(conn: &Conn, table: &str, name: Option<&str>, asking: &LeaseHolder) -> DbResult<()> {
    let (of_name, name) = match name {
        Some(name) => (" AND name = ?2", name),
        None => ("", ""),
    };
    let now = now();
    let (mut deleting, mut selecting): (Vec<&dyn ToValue>, Vec<&dyn ToValue>) =
        (vec![&now], vec![&asking.process_scope]);
    if !of_name.is_empty() {
        deleting.push(&name);
        selecting.push(&name);
    }
    conn.execute(&format!("DELETE FROM {table} WHERE expires_at <= ?1{of_name}"), &deleting)?;
    let mut query =
        conn.prepare(&format!("SELECT id, pid, pid_start FROM {table} WHERE process_scope = ?1{of_name}"))?;
    let here: Vec<(i64, u32, String)> =
        query.query_map(&selecting, |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?.collect::<DbResult<_>>()?;
    for (id, pid, start) in here {
        if !asking.process_scope.is_empty() && !process::is_alive(pid, &start) {
            conn.execute(&format!("DELETE FROM {table} WHERE id = ?1"), params![id])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn a_limit_holds_across_runs_and_lapsed_slots_free_themselves() {
        let (_dir, locations) =
            crate::journal::test_ledgers::locations("a_limit_holds_across_runs_and_lapsed_slots_free_themselves");
        for location in locations {
            let journal = Journal::open(&location).unwrap();
            let (first, second) = (LeaseHolder::this_process("r1", "drain"), LeaseHolder::this_process("r2", "drain"));
            let one = journal.take_slot("live-migrations", 2, &first, MINUTE, false).unwrap().unwrap();
            journal.take_slot("live-migrations", 2, &second, MINUTE, false).unwrap().unwrap();
            assert_eq!(journal.take_slot("live-migrations", 2, &second, MINUTE, false).unwrap(), None, "two at most");
            assert!(journal.take_slot("aquilon", 1, &second, MINUTE, false).unwrap().is_some(), "another resource");
            assert!(
                journal.take_slot("live-migrations", 2, &second, MINUTE, true).unwrap().is_some(),
                "one under way counts"
            );
            assert_eq!(journal.slots_taken("live-migrations").unwrap(), 3);
            journal.release_slot(one).unwrap();
            assert_eq!(
                journal.take_slot("live-migrations", 2, &first, MINUTE, false).unwrap(),
                None,
                "still two of r2"
            );
            journal.run_ended("r2").unwrap();
            assert!(
                journal.take_slot("live-migrations", 2, &first, MINUTE, false).unwrap().is_some(),
                "r2's went with it"
            );

            // A slot not renewed runs out; one of a process gone from this machine is freed at once.
            let quick = LeaseHolder::this_process("r3", "drain");
            journal.take_slot("kayobe", 1, &quick, Duration::from_millis(100), false).unwrap().unwrap();
            assert_eq!(journal.take_slot("kayobe", 1, &first, MINUTE, false).unwrap(), None);
            std::thread::sleep(Duration::from_millis(150));
            assert!(journal.take_slot("kayobe", 1, &first, MINUTE, false).unwrap().is_some());
            let mut child = std::process::Command::new("true").spawn().unwrap();
            let gone = LeaseHolder {
                pid: child.id(),
                pid_start: process::start_time(child.id()).unwrap_or_default(),
                ..quick
            };
            child.wait().unwrap();
            journal.take_slot("aquilon-2", 1, &gone, MINUTE, false).unwrap().unwrap();
            assert!(journal.take_slot("aquilon-2", 1, &first, MINUTE, false).unwrap().is_some());
        }
    }
}
