//! Read-only queries of `hvmigrate serve` that the other commands do not
//! need: a liveness probe, the runs, the latest observation of an action per
//! host, one host's steps and its commands' output. Plain SQL that any SQL
//! database runs (no SQLite functions, no pragmas), but for the data
//! version, SQLite's own.

use super::db::{params, Backend};
use serde::Serialize;

use super::{step_row, ActionOutcome, Journal, StepRow};
use crate::error::Result;

/// One run as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RunRow {
    pub id: String,
    pub step: String,
    pub operator: String,
    pub dry_run: bool,
    pub forced: bool,
    pub started_at: String,
    pub ended_at: Option<String>,
    /// `None` while the run goes on, or when it was killed.
    pub outcome: Option<String>,
}

/// The latest thing an action observed on a host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LatestObservation {
    pub host: String,
    pub observed: String,
    pub at: String,
}

/// The output an action kept of the commands it ran.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ActionOutput {
    pub run_id: String,
    pub step: String,
    pub action: String,
    pub outcome: ActionOutcome,
    pub started_at: String,
    pub output: String,
}

impl Journal {
    /// Answers when the ledger can be read (its tables are there).
    pub fn ping(&self) -> Result<()> {
        self.with(|conn| conn.query_row("SELECT COUNT(*) FROM runs WHERE id = ''", params![], |row| row.get::<i64>(0)))
            .map(drop)
    }

    /// A number that changes whenever another connection commits a write to
    /// the ledger (SQLite's `PRAGMA data_version`; compared only with one
    /// read on the same `Journal`). `None` on PostgreSQL, which has no
    /// such cheap marker.
    pub fn data_version(&self) -> Result<Option<i64>> {
        self.with(|conn| match conn.backend() {
            Backend::Sqlite => conn.query_row("PRAGMA data_version", params![], |row| row.get::<i64>(0)).map(Some),
            Backend::Postgres => Ok(None),
        })
    }

    /// Every run, the latest first.
    pub fn runs(&self) -> Result<Vec<RunRow>> {
        self.with(|conn| {
            let mut query = conn.prepare(
                "SELECT id, step, operator, dry_run, forced, started_at, ended_at, outcome FROM runs
                 ORDER BY started_at DESC, id DESC",
            )?;
            let rows = query.query_map(params![], |row| {
                Ok(RunRow {
                    id: row.get(0)?,
                    step: row.get(1)?,
                    operator: row.get(2)?,
                    dry_run: row.get::<i64>(3)? != 0,
                    forced: row.get::<i64>(4)? != 0,
                    started_at: row.get(5)?,
                    ended_at: row.get(6)?,
                    outcome: row.get(7)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Per host, what the latest `action` that saw something (a check that
    /// passed or blocked) observed, by host.
    pub fn latest_observations(&self, action: &str) -> Result<Vec<LatestObservation>> {
        self.with(|conn| {
            let mut query = conn.prepare(
                "SELECT a.host, a.observed, COALESCE(a.ended_at, a.started_at) FROM actions a
                 WHERE a.id IN (SELECT MAX(b.id) FROM actions b
                     WHERE b.action = ?1 AND b.outcome IN ('ok', 'blocked') AND b.observed IS NOT NULL
                     GROUP BY b.host)
                 ORDER BY a.host",
            )?;
            let rows = query.query_map(params![action], |row| {
                Ok(LatestObservation { host: row.get(0)?, observed: row.get(1)?, at: row.get(2)? })
            })?;
            rows.collect()
        })
    }

    /// One host's steps, in the order they were written.
    pub fn host_steps(&self, host: &str) -> Result<Vec<StepRow>> {
        self.with(|conn| {
            let mut query = conn.prepare(
                "SELECT id, host, step, started_at, ended_at, outcome, reason FROM host_steps
                 WHERE host = ?1 ORDER BY id",
            )?;
            let rows = query.query_map(params![host], step_row)?;
            rows.collect()
        })
    }

    /// The output the host's actions kept, oldest first (only those that kept some).
    pub fn action_outputs(&self, host: &str) -> Result<Vec<ActionOutput>> {
        self.with(|conn| {
            let mut query = conn.prepare(
                "SELECT hs.run_id, a.step, a.action, a.outcome, a.started_at, a.output
                 FROM actions a JOIN host_steps hs ON hs.id = a.host_step_id
                 WHERE a.host = ?1 AND a.output IS NOT NULL ORDER BY a.id",
            )?;
            let rows = query.query_map(params![host], |row| {
                Ok(ActionOutput {
                    run_id: row.get(0)?,
                    step: row.get(1)?,
                    action: row.get(2)?,
                    outcome: ActionOutcome::parse(&row.get::<String>(3)?),
                    started_at: row.get(4)?,
                    output: row.get(5)?,
                })
            })?;
            rows.collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::StepOutcome;
    use crate::journal::{ActionResult, NewRun};

    #[test]
    fn runs_steps_observations_and_outputs_of_a_small_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("j.db")).unwrap();
        journal.ping().unwrap();
        let run = NewRun {
            id: "r1",
            step: "pre-drain",
            operator: "ann",
            hypervisors_file: "h.txt",
            dry_run: false,
            forced: false,
        };
        journal.start_run(&run).unwrap();
        let step = journal.start_host_step("r1", "hv01", "pre-drain", false).unwrap();
        journal.action_observed(step, "os-check", ActionOutcome::Ok, "rocky 8.9, UEFI", None).unwrap();
        journal.action_observed(step, "os-check", ActionOutcome::Ok, "rocky 9.4, UEFI", None).unwrap();
        journal.action_observed(step, "os-check", ActionOutcome::Failed, "no answer", None).unwrap();
        let upgrade = journal.action_intent(step, "qemu-update", "qemu 8", "qemu 9", None).unwrap();
        let result = ActionResult { change: Some("qemu 9"), previous: None, reason: None, output: Some("updated") };
        journal.action_result(upgrade, ActionOutcome::Done, &result).unwrap();
        journal.finish_host_step(step, StepOutcome::Succeeded, None).unwrap();
        journal.finish_run("r1", "succeeded").unwrap();

        let runs = journal.runs().unwrap();
        assert_eq!((runs.len(), runs[0].id.as_str(), runs[0].outcome.as_deref()), (1, "r1", Some("succeeded")));
        let seen = journal.latest_observations("os-check").unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].observed, "rocky 9.4, UEFI");
        assert_eq!(journal.host_steps("hv01").unwrap()[0].outcome, StepOutcome::Succeeded);
        assert!(journal.host_steps("hv02").unwrap().is_empty());
        let outputs = journal.action_outputs("hv01").unwrap();
        assert_eq!(outputs.iter().map(|o| o.output.as_str()).collect::<Vec<_>>(), ["updated"]);
    }
}
