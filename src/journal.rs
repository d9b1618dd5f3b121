//! The journal: a SQLite record of every run, host step and action, with the
//! times, the outcome, what was observed, what was changed and the previous
//! value. An action is written before it acts (its intent) and after (its
//! result), so a crash at any point leaves a truthful record.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use db::{params, Backend, Conn, DbError, DbResult, Durability, OptionalExtension, Row};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::untrusted::visible;

mod copy;
pub mod db;
mod leases;
mod postgres;
mod reservations;
mod serve_queries;
mod slots;
pub use copy::{CopyReport, TableCount};
pub use leases::{Lease, LeaseCheck, LeaseHolder, LeaseLost, LeaseOutcome, RunUnderWay, Takeover};
pub use postgres::{is_url as is_postgres_url, use_configured_password};
pub use reservations::{Amounts, Reservation};
pub use serve_queries::{ActionOutput, LatestObservation, RunRow};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    step TEXT NOT NULL,
    operator TEXT NOT NULL,
    hypervisors_file TEXT NOT NULL,
    dry_run INTEGER NOT NULL,
    forced INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    outcome TEXT
);
CREATE TABLE IF NOT EXISTS host_steps (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs(id),
    host TEXT NOT NULL,
    step TEXT NOT NULL,
    forced INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    outcome TEXT NOT NULL,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS host_steps_by_host ON host_steps(host, step);
CREATE TABLE IF NOT EXISTS actions (
    id INTEGER PRIMARY KEY,
    host_step_id INTEGER NOT NULL REFERENCES host_steps(id),
    host TEXT NOT NULL,
    step TEXT NOT NULL,
    action TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    outcome TEXT NOT NULL,
    observed TEXT,
    planned TEXT,
    change TEXT,
    previous TEXT,
    reason TEXT,
    output TEXT
);
CREATE INDEX IF NOT EXISTS actions_by_host ON actions(host, step, action);
CREATE TABLE IF NOT EXISTS sub_commands (
    id INTEGER PRIMARY KEY,
    action_id INTEGER NOT NULL REFERENCES actions(id),
    host TEXT NOT NULL,
    step TEXT NOT NULL,
    action TEXT NOT NULL,
    name TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    outcome TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS sub_commands_by_action ON sub_commands(action_id);
CREATE TABLE IF NOT EXISTS remote_jobs (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    target TEXT NOT NULL,
    action TEXT NOT NULL,
    command TEXT NOT NULL,
    folder TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    exit_status INTEGER,
    state TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS remote_jobs_by_action ON remote_jobs(target, action, state);
CREATE TABLE IF NOT EXISTS operator_actions (
    id INTEGER PRIMARY KEY,
    operator TEXT NOT NULL,
    host TEXT NOT NULL,
    command TEXT NOT NULL,
    subject TEXT,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    outcome TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS operator_actions_by_host ON operator_actions(host);
";

/// The ledger's structure, recorded in `schema_version` by every binary
/// that opens it. Every table and index is made with `IF NOT EXISTS` and
/// columns added by [`add_missing_columns`], so an older ledger is brought
/// up to date on open; a change that cannot be made so (a column's meaning,
/// a data rewrite) is applied on open for ledgers below its version, and
/// bumps this number.
const SCHEMA_VERSION: i64 = 2;

const VERSION_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at TEXT NOT NULL);";

/// A ledger a newer binary has written may hold what this one would
/// misread or undo: it is left alone (exit 2, nothing changed).
fn refuse_newer(path: &Path, conn: &Conn) -> Result<()> {
    let found: Option<i64> = conn
        .has_table("schema_version")
        .and_then(|table| match table {
            true => conn.query_row("SELECT MAX(version) FROM schema_version", params![], |row| row.get(0)),
            false => Ok(None),
        })
        .map_err(|err| journal_error(path, err))?;
    match found {
        Some(version) if version > SCHEMA_VERSION => Err(Error::input(crate::error::InputProblem::new(
            path,
            format!(
                "this ledger has schema version {version}, written by a newer hvmigrate; this one knows up to \
                 version {SCHEMA_VERSION}: use the newer hvmigrate (nothing was changed)"
            ),
        ))),
        _ => Ok(()),
    }
}

/// When the host reached its position `p` (a host step row): the first
/// success of that step since a success of another one, so that a re-run
/// of the same step does not move it.
const POSITION_SINCE: &str = "(SELECT MIN(COALESCE(s.ended_at, s.started_at)) FROM host_steps s
     WHERE s.host = p.host AND s.step = p.step AND s.outcome = 'succeeded' AND s.id > COALESCE(
         (SELECT MAX(o.id) FROM host_steps o WHERE o.host = p.host AND o.outcome = 'succeeded'
            AND o.step <> 'noops' AND o.step <> p.step), 0))";

/// Columns added to `host_steps` after the first release, applied to older
/// journals on open: the `--redo` asked for, the audit trail's state (`posted`
/// or `failed`) with the comment kept for a retry, and the run that reported
/// an interrupted step's changes on the ticket.
const HOST_STEP_COLUMNS: [(&str, &str); 4] =
    [("redo", "TEXT"), ("trail", "TEXT"), ("trail_comment", "TEXT"), ("reported_by", "TEXT")];

/// How a host's step ended, as the journal records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    /// Started and not finished: running now, or the run was killed.
    Running,
    Succeeded,
    Blocked,
    Failed,
    /// Stopped by the operator (Ctrl-C) between actions.
    Interrupted,
}

impl StepOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            StepOutcome::Running => "running",
            StepOutcome::Succeeded => "succeeded",
            StepOutcome::Blocked => "blocked",
            StepOutcome::Failed => "failed",
            StepOutcome::Interrupted => "interrupted",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "succeeded" => StepOutcome::Succeeded,
            "blocked" => StepOutcome::Blocked,
            "failed" => StepOutcome::Failed,
            "interrupted" => StepOutcome::Interrupted,
            _ => StepOutcome::Running,
        }
    }
}

/// How an action ended, as the journal records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionOutcome {
    /// Written before acting; stays so if the process died while acting.
    Intent,
    Done,
    Skipped,
    /// A check that passed.
    Ok,
    /// Only observed and recorded; nothing to change.
    Recorded,
    Blocked,
    Failed,
}

impl ActionOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionOutcome::Intent => "intent",
            ActionOutcome::Done => "done",
            ActionOutcome::Skipped => "skipped",
            ActionOutcome::Ok => "ok",
            ActionOutcome::Recorded => "recorded",
            ActionOutcome::Blocked => "blocked",
            ActionOutcome::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "done" => ActionOutcome::Done,
            "skipped" => ActionOutcome::Skipped,
            "ok" => ActionOutcome::Ok,
            "recorded" => ActionOutcome::Recorded,
            "blocked" => ActionOutcome::Blocked,
            "failed" => ActionOutcome::Failed,
            _ => ActionOutcome::Intent,
        }
    }
}

/// A run as it starts.
#[derive(Clone, Debug)]
pub struct NewRun<'a> {
    pub id: &'a str,
    pub step: &'a str,
    pub operator: &'a str,
    pub hypervisors_file: &'a str,
    pub dry_run: bool,
    pub forced: bool,
}

/// The latest step of one host, for `hvmigrate status`.
#[derive(Clone, Debug, Serialize)]
pub struct HostStatus {
    pub host: String,
    pub step: String,
    pub outcome: StepOutcome,
    pub reason: Option<String>,
    pub run_id: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    /// The host's place in the campaign (see [`Journal::position`]).
    pub position: Option<String>,
    pub position_at: Option<String>,
    /// The run that holds the host now, if one does (see [`Lease`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_by: Option<Lease>,
}

/// One recorded action, for `hvmigrate status --host`.
#[derive(Clone, Debug, Serialize)]
pub struct ActionRecord {
    pub run_id: String,
    pub step: String,
    pub action: String,
    pub outcome: ActionOutcome,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub observed: Option<String>,
    pub planned: Option<String>,
    pub change: Option<String>,
    pub previous: Option<String>,
    pub reason: Option<String>,
}

/// Where a host stands in the campaign: the latest step that succeeded there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Position {
    pub step: String,
    pub run_id: String,
    pub at: String,
}

/// One journaled sub-command of an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubCommandRecord {
    pub name: String,
    /// `Intent`: started and never finished (in doubt); `Done`; `Failed`.
    pub outcome: ActionOutcome,
    pub detail: String,
}

/// An earlier attempt of an action that did not end well.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub run_id: String,
    /// The process died while acting (the intent has no result).
    pub killed: bool,
    pub sub_commands: Vec<SubCommandRecord>,
}

impl Attempt {
    /// How the sub-command `name` ended in this attempt, if it was started.
    pub fn sub_command(&self, name: &str) -> Option<ActionOutcome> {
        self.sub_commands.iter().rev().find(|sub| sub.name == name).map(|sub| sub.outcome)
    }
}

/// An earlier attempt of a step whose changes are not on the ticket yet.
#[derive(Clone, Debug)]
pub struct UnreportedStep {
    pub host_step_id: i64,
    pub run_id: String,
    pub started_at: String,
    pub changes: Vec<String>,
}

/// A step whose actions ended and whose audit trail did not.
#[derive(Clone, Debug)]
pub struct PendingTrail {
    pub host_step_id: i64,
    pub run_id: String,
    /// The comment and transition as JSON, for the retry.
    pub comment: String,
}

/// The details of an action's result.
#[derive(Clone, Debug, Default)]
pub struct ActionResult<'a> {
    pub change: Option<&'a str>,
    pub previous: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub output: Option<&'a str>,
}

/// An operator's command on a host (`vm power`, `vm exec`…), as journaled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OperatorAction {
    pub command: String,
    /// The domain (and for `exec` the command line).
    pub subject: Option<String>,
    /// `intent` (it never ended), `done` or `failed`.
    pub outcome: String,
    pub detail: Option<String>,
}

/// A long job detached on a remote host (Kayobe, a playbook, a package update).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RemoteJob {
    pub id: String,
    pub run_id: String,
    /// `user@host` it runs on.
    pub target: String,
    pub action: String,
    /// The command line it runs.
    pub command: String,
    /// Its folder on the host (pid, log, exit status), relative to the login's home.
    pub folder: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub exit_status: Option<i32>,
    /// `running` until the tool saw it end: `finished`, or `lost` (it ended without an exit status).
    pub state: String,
}

pub struct Journal {
    path: PathBuf,
    conn: Mutex<Conn>,
}

impl Journal {
    /// Opens (creating if needed) the journal at `path`; its folder is made private.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(url) = postgres_url(path) {
            let journal = Journal { path: path.to_owned(), conn: Mutex::new(connect(path, url)?) };
            journal.migrate()?;
            return Ok(journal);
        }
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            crate::fs_security::private_dir(dir)?;
        }
        // Created 0600 before SQLite opens it (SQLite would use the umask, and
        // gives its -wal and -shm files the database's mode); never through a link.
        drop(crate::fs_security::open_private_append(path)?);
        // Side files left by an older version (0644) are tightened too.
        for suffix in ["-wal", "-shm"] {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            let side = PathBuf::from(side);
            if std::fs::symlink_metadata(&side).is_ok_and(|meta| meta.is_file()) {
                std::fs::set_permissions(&side, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                    .map_err(|err| Error::io(&side, err))?;
            }
        }
        let conn = rusqlite::Connection::open(path).map_err(|err| journal_error(path, err.into()))?;
        // WAL with synchronous NORMAL: every committed write survives the
        // process being killed (the crash the journal must tell the truth
        // about); only a power cut could lose the last writes. FULL would
        // wait for the disk on every action of every host.
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .and_then(|()| conn.busy_timeout(std::time::Duration::from_secs(10)))
            .map_err(|err| journal_error(path, err.into()))?;
        let journal = Journal { path: path.to_owned(), conn: Mutex::new(Conn::Sqlite(conn)) };
        journal.migrate()?;
        Ok(journal)
    }

    /// Brings the ledger's schema up to this binary's version (the same on
    /// both backends), refusing a ledger a newer binary wrote.
    fn migrate(&self) -> Result<()> {
        refuse_newer(&self.path, &self.conn.lock().unwrap_or_else(|poison| poison.into_inner()))?;
        // One transaction, so two processes opening a new ledger at once do not both build it.
        self.immediate(|conn| {
            conn.execute_batch(SCHEMA)?;
            conn.execute_batch(leases::SCHEMA)?;
            conn.execute_batch(slots::SCHEMA)?;
            conn.execute_batch(IDENTITY_SCHEMA)?;
            conn.execute_batch(reservations::SCHEMA)?;
            add_missing_columns(conn)?;
            if conn.backend() == Backend::Postgres {
                // SQLite's implicit row order of remote jobs, which queries use, as a real column.
                conn.execute_batch(
                    "ALTER TABLE remote_jobs ADD COLUMN IF NOT EXISTS rowid BIGINT GENERATED BY DEFAULT AS IDENTITY",
                )?;
            }
            conn.execute_batch(VERSION_TABLE)?;
            conn.execute(
                "INSERT INTO schema_version (version, applied_at) SELECT CAST(?1 AS BIGINT), ?2
                 WHERE NOT EXISTS (SELECT 1 FROM schema_version WHERE version >= CAST(?1 AS BIGINT))",
                params![SCHEMA_VERSION, now()],
            )
            .map(drop)
        })
    }

    /// Opens an existing journal without changing it (dry runs, `status`).
    /// `None` when there is none yet.
    pub fn open_read_only(path: &Path) -> Result<Option<Self>> {
        if let Some(url) = postgres_url(path) {
            let conn = connect(path, url)?;
            // What SQLite's read-only open is: any write is refused by the server.
            conn.execute_batch("SET default_transaction_read_only = on").map_err(|err| journal_error(path, err))?;
            refuse_newer(path, &conn)?;
            let exists = conn.has_table("runs").map_err(|err| journal_error(path, err))?;
            return Ok(exists.then(|| Journal { path: path.to_owned(), conn: Mutex::new(conn) }));
        }
        if !path.exists() {
            return Ok(None);
        }
        let conn = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|err| journal_error(path, err.into()))?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(|err| journal_error(path, err.into()))?;
        let conn = Conn::Sqlite(conn);
        refuse_newer(path, &conn)?;
        Ok(Some(Journal { path: path.to_owned(), conn: Mutex::new(conn) }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn with<T>(&self, f: impl FnOnce(&Conn) -> DbResult<T>) -> Result<T> {
        let conn = self.conn.lock().unwrap_or_else(|poison| poison.into_inner());
        f(&conn).map_err(|err| journal_error(&self.path, err))
    }

    /// Runs `f` in a write transaction taken at once (`BEGIN IMMEDIATE`):
    /// what it reads cannot change under it in another process before it
    /// writes. Rolled back when `f` fails.
    fn immediate<T>(&self, f: impl FnOnce(&Conn) -> DbResult<T>) -> Result<T> {
        self.transaction(Durability::Durable, f)
    }

    /// [`Self::immediate`] for lease, slot and room bookkeeping, whose
    /// commit need not wait for the disk (see [`Conn::begin_immediate`]).
    fn bookkeeping<T>(&self, f: impl FnOnce(&Conn) -> DbResult<T>) -> Result<T> {
        self.transaction(Durability::Bookkeeping, f)
    }

    fn transaction<T>(&self, durability: Durability, f: impl FnOnce(&Conn) -> DbResult<T>) -> Result<T> {
        self.with(|conn| {
            conn.begin_immediate(durability)?;
            match f(conn) {
                Ok(value) => match conn.commit() {
                    Ok(()) => Ok(value),
                    Err(err) => {
                        let _ = conn.rollback();
                        Err(err)
                    }
                },
                Err(err) => {
                    let _ = conn.rollback();
                    Err(err)
                }
            }
        })
    }

    pub fn start_run(&self, run: &NewRun<'_>) -> Result<()> {
        self.with(|conn| {
            conn.execute(
                "INSERT INTO runs (id, step, operator, hypervisors_file, dry_run, forced, started_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![run.id, run.step, run.operator, run.hypervisors_file, run.dry_run, run.forced, now()],
            )
            .map(drop)
        })
    }

    /// The ids of the runs of `step` ever started on this journal, oldest first.
    pub fn runs_started(&self, step: &str) -> Result<Vec<String>> {
        self.with(|conn| {
            conn.query_map("SELECT id FROM runs WHERE step = ?1 ORDER BY started_at, id", params![step], |row| {
                row.get(0)
            })
        })
    }

    pub fn finish_run(&self, run_id: &str, outcome: &str) -> Result<()> {
        self.with(|conn| {
            conn.execute("UPDATE runs SET ended_at = ?1, outcome = ?2 WHERE id = ?3", params![now(), outcome, run_id])
                .map(drop)
        })
    }

    /// Records that a host starts a step; returns the record's id.
    pub fn start_host_step(&self, run_id: &str, host: &str, step: &str, forced: bool) -> Result<i64> {
        self.with(|conn| {
            conn.insert(
                "INSERT INTO host_steps (run_id, host, step, forced, started_at, outcome) VALUES (?1, ?2, ?3, ?4, ?5, 'running')",
                params![run_id, host, step, forced, now()],
            )
        })
    }

    pub fn finish_host_step(&self, id: i64, outcome: StepOutcome, reason: Option<&str>) -> Result<()> {
        self.with(|conn| {
            conn.execute(
                "UPDATE host_steps SET ended_at = ?1, outcome = ?2, reason = ?3 WHERE id = ?4",
                params![now(), outcome.as_str(), reason.map(visible), id],
            )
            .map(drop)
        })
    }

    /// Writes an action's intent before it acts; returns the record's id.
    pub fn action_intent(
        &self,
        host_step_id: i64,
        action: &str,
        observed: &str,
        planned: &str,
        previous: Option<&str>,
    ) -> Result<i64> {
        self.with(|conn| action_intent_in(conn, host_step_id, action, observed, planned, previous))
    }

    /// [`Self::action_intent`] by the lease's holder only: the lease is
    /// checked and renewed in the same write transaction (see
    /// [`leases::check_held_in`] for the window left). `Err(LeaseLost)`
    /// writes nothing: the action must not act.
    pub fn action_intent_leased(
        &self,
        lease: &LeaseCheck<'_>,
        host_step_id: i64,
        action: &str,
        observed: &str,
        planned: &str,
        previous: Option<&str>,
    ) -> Result<std::result::Result<i64, LeaseLost>> {
        self.immediate(|conn| match leases::check_held_in(conn, lease)? {
            Ok(()) => action_intent_in(conn, host_step_id, action, observed, planned, previous).map(Ok),
            Err(lost) => Ok(Err(lost)),
        })
    }

    /// [`Self::sub_command_intent`] by the lease's holder only, as [`Self::action_intent_leased`].
    pub fn sub_command_intent_leased(
        &self,
        lease: &LeaseCheck<'_>,
        action_id: i64,
        name: &str,
    ) -> Result<std::result::Result<i64, LeaseLost>> {
        self.immediate(|conn| match leases::check_held_in(conn, lease)? {
            Ok(()) => sub_command_intent_in(conn, action_id, name).map(Ok),
            Err(lost) => Ok(Err(lost)),
        })
    }

    /// Completes an action written with [`Self::action_intent`].
    pub fn action_result(&self, action_id: i64, outcome: ActionOutcome, result: &ActionResult<'_>) -> Result<()> {
        self.with(|conn| {
            conn.execute(
                "UPDATE actions SET ended_at = ?1, outcome = ?2, change = ?3, previous = COALESCE(?4, previous),
                 reason = ?5, output = ?6 WHERE id = ?7",
                params![
                    now(),
                    outcome.as_str(),
                    result.change.map(visible),
                    result.previous.map(visible),
                    result.reason.map(visible),
                    result.output.map(visible),
                    action_id
                ],
            )
            .map(drop)
        })
    }

    /// Records an action that did not act (already done, or blocked) in one write.
    pub fn action_observed(
        &self,
        host_step_id: i64,
        action: &str,
        outcome: ActionOutcome,
        observed: &str,
        reason: Option<&str>,
    ) -> Result<()> {
        self.with(|conn| {
            let at = now();
            conn.execute(
                "INSERT INTO actions (host_step_id, host, step, action, started_at, ended_at, outcome, observed, reason)
                 SELECT id, host, step, ?2, ?3, ?3, ?4, ?5, ?6 FROM host_steps WHERE id = ?1",
                params![host_step_id, action, at, outcome.as_str(), visible(observed), reason.map(visible)],
            )
            .map(drop)
        })
    }

    /// Whether `step` last ended in success on `host`.
    pub fn step_succeeded(&self, host: &str, step: &str) -> Result<bool> {
        self.with(|conn| step_succeeded_in(conn, host, step))
    }

    /// Whether `action` of `step` was ever done on `host` (a side effect that
    /// must not be repeated in this campaign without `--force`).
    pub fn action_ever_done(&self, host: &str, step: &str, action: &str) -> Result<bool> {
        self.with(|conn| {
            conn.query_row(
                "SELECT 1 FROM actions WHERE host = ?1 AND step = ?2 AND action = ?3 AND outcome = 'done' LIMIT 1",
                params![host, step, action],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
        })
    }

    /// What every finished `action` of `step` changed on `host`, oldest first.
    pub fn action_changes(&self, host: &str, step: &str, action: &str) -> Result<Vec<String>> {
        self.with(|conn| {
            let mut query = conn.prepare(
                "SELECT change FROM actions WHERE host = ?1 AND step = ?2 AND action = ?3 AND outcome = 'done'
                 AND change IS NOT NULL ORDER BY id",
            )?;
            let rows = query.query_map(params![host, step, action], |row| row.get(0))?;
            rows.collect()
        })
    }

    /// Actions left as intent by a process that died while acting on `host`.
    pub fn unfinished_actions(&self, host: &str, step: &str) -> Result<Vec<String>> {
        self.with(|conn| {
            let mut query = conn.prepare(
                "SELECT action FROM actions WHERE host = ?1 AND step = ?2 AND outcome = 'intent' ORDER BY id",
            )?;
            let rows = query.query_map(params![host, step], |row| row.get(0))?;
            rows.collect()
        })
    }

    /// Records that the step runs again on a host already past it (`--redo`,
    /// with the action to repeat, or empty for the step alone).
    pub fn mark_redo(&self, host_step_id: i64, redo: &str) -> Result<()> {
        self.with(|conn| {
            conn.execute("UPDATE host_steps SET redo = ?1 WHERE id = ?2", params![redo, host_step_id]).map(drop)
        })
    }

    /// The host's place in the campaign: the latest campaign step that
    /// succeeded on it (`noops` changes nothing and is no place).
    pub fn position(&self, host: &str) -> Result<Option<Position>> {
        self.with(|conn| position_in(conn, host))
    }

    /// Writes a sub-command's intent (one side effect of a multi-command
    /// action) before it runs; returns the record's id.
    pub fn sub_command_intent(&self, action_id: i64, name: &str) -> Result<i64> {
        self.with(|conn| sub_command_intent_in(conn, action_id, name))
    }

    /// Completes a sub-command written with [`Self::sub_command_intent`].
    pub fn sub_command_result(&self, id: i64, outcome: ActionOutcome, detail: &str) -> Result<()> {
        self.with(|conn| {
            conn.execute(
                "UPDATE sub_commands SET ended_at = ?1, outcome = ?2, detail = ?3 WHERE id = ?4",
                params![now(), outcome.as_str(), detail, id],
            )
            .map(drop)
        })
    }

    /// The latest attempt of `action` on the host when it did not end well
    /// (left as intent by a killed process, or failed), with the
    /// sub-commands it journaled: what a re-run resumes from. `None` when
    /// the action's latest record is a success, or it never ran.
    pub fn unfinished_attempt(&self, host: &str, step: &str, action: &str) -> Result<Option<Attempt>> {
        self.with(|conn| {
            let latest = conn
                .query_row(
                    "SELECT a.id, a.outcome, hs.run_id FROM actions a JOIN host_steps hs ON hs.id = a.host_step_id
                     WHERE a.host = ?1 AND a.step = ?2 AND a.action = ?3 AND a.outcome <> 'blocked'
                     ORDER BY a.id DESC LIMIT 1",
                    params![host, step, action],
                    |row| Ok((row.get::<i64>(0)?, row.get::<String>(1)?, row.get::<String>(2)?)),
                )
                .optional()?;
            let Some((id, outcome, run_id)) =
                latest.filter(|(_, outcome, _)| outcome == "intent" || outcome == "failed")
            else {
                return Ok(None);
            };
            let mut query = conn.prepare(
                "SELECT name, outcome, COALESCE(detail, '') FROM sub_commands WHERE action_id = ?1 ORDER BY id",
            )?;
            let sub_commands = query
                .query_map(params![id], |row| {
                    Ok(SubCommandRecord {
                        name: row.get(0)?,
                        outcome: ActionOutcome::parse(&row.get::<String>(1)?),
                        detail: row.get(2)?,
                    })
                })?
                .collect::<DbResult<_>>()?;
            Ok(Some(Attempt { run_id, killed: outcome == "intent", sub_commands }))
        })
    }

    /// Earlier attempts of the step on the host whose changes never reached
    /// the ticket: host steps left running by a process that died, or whose
    /// audit trail failed. Each with the changes it made, from the journal.
    pub fn unreported_changes(&self, host: &str, step: &str, run_id: &str) -> Result<Vec<UnreportedStep>> {
        self.with(|conn| {
            let mut steps = conn.prepare(
                "SELECT id, run_id, started_at FROM host_steps
                 WHERE host = ?1 AND step = ?2 AND run_id <> ?3 AND reported_by IS NULL
                   AND (outcome = 'running' OR trail = 'failed') ORDER BY id",
            )?;
            let found: Vec<(i64, String, String)> = steps
                .query_map(params![host, step, run_id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
                .collect::<DbResult<_>>()?;
            let mut changes = conn.prepare(
                "SELECT action, change FROM actions WHERE host_step_id = ?1 AND outcome = 'done' ORDER BY id",
            )?;
            let mut partial = conn.prepare(
                "SELECT s.action, s.name, s.outcome FROM sub_commands s JOIN actions a ON a.id = s.action_id
                 WHERE a.host_step_id = ?1 AND a.outcome <> 'done' AND s.outcome IN ('done', 'intent') ORDER BY s.id",
            )?;
            let mut unreported = Vec::new();
            for (id, run_id, started_at) in found {
                let mut lines: Vec<String> = changes
                    .query_map(params![id], |row| {
                        Ok(format!("{}: {}", row.get::<String>(0)?, row.get::<Option<String>>(1)?.unwrap_or_default()))
                    })?
                    .collect::<DbResult<_>>()?;
                let sub: Vec<String> = partial
                    .query_map(params![id], |row| {
                        let state = if row.get::<String>(2)? == "done" { "done" } else { "started, outcome unknown" };
                        Ok(format!("{}: {} ({state})", row.get::<String>(0)?, row.get::<String>(1)?))
                    })?
                    .collect::<DbResult<_>>()?;
                lines.extend(sub);
                unreported.push(UnreportedStep { host_step_id: id, run_id, started_at, changes: lines });
            }
            Ok(unreported)
        })
    }

    /// The earlier attempts' changes are on the ticket now: steps left running
    /// are closed as interrupted, and none is reported again.
    pub fn mark_reported(&self, host_step_ids: &[i64], run_id: &str) -> Result<()> {
        self.with(|conn| {
            for id in host_step_ids {
                conn.execute(
                    "UPDATE host_steps SET reported_by = ?1,
                        reason = CASE WHEN outcome = 'running' THEN 'the run stopped before the step ended' ELSE reason END,
                        ended_at = COALESCE(ended_at, ?2),
                        outcome = CASE WHEN outcome = 'running' THEN 'interrupted' ELSE outcome END
                     WHERE id = ?3",
                    params![run_id, now(), id],
                )?;
            }
            Ok(())
        })
    }

    /// Records how the step's audit trail ended: `posted`, or `failed` with
    /// the comment kept (JSON) so that the next run posts only that.
    pub fn set_trail(&self, host_step_id: i64, trail: &str, comment: Option<&str>) -> Result<()> {
        self.with(|conn| {
            conn.execute(
                "UPDATE host_steps SET trail = ?1, trail_comment = ?2 WHERE id = ?3",
                params![trail, comment, host_step_id],
            )
            .map(drop)
        })
    }

    /// The host's latest attempt of the step, when its actions all ended well
    /// but its audit trail failed: the comment kept for the retry.
    pub fn pending_trail(&self, host: &str, step: &str) -> Result<Option<PendingTrail>> {
        self.with(|conn| {
            conn.query_row(
                "SELECT id, run_id, trail_comment FROM host_steps WHERE host = ?1 AND step = ?2
                 ORDER BY id DESC LIMIT 1",
                params![host, step],
                |row| Ok((row.get::<i64>(0)?, row.get::<String>(1)?, row.get::<Option<String>>(2)?)),
            )
            .optional()
            .map(|latest| {
                latest.and_then(|(host_step_id, run_id, comment)| {
                    comment.map(|comment| PendingTrail { host_step_id, run_id, comment })
                })
            })
        })
    }

    /// Records a remote job before it starts, so a crash right after still knows it.
    pub fn job_started(&self, job: &RemoteJob) -> Result<()> {
        self.with(|conn| {
            conn.execute(
                "INSERT INTO remote_jobs (id, run_id, target, action, command, folder, started_at, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'running')",
                params![job.id, job.run_id, job.target, job.action, job.command, job.folder, job.started_at],
            )
            .map(drop)
        })
    }

    /// The latest job of `action` on `target` that no run saw end.
    pub fn unfinished_job(&self, target: &str, action: &str) -> Result<Option<RemoteJob>> {
        self.with(|conn| {
            conn.query_row(
                "SELECT id, run_id, target, action, command, folder, started_at, ended_at, exit_status, state
                 FROM remote_jobs WHERE target = ?1 AND action = ?2 AND state = 'running'
                 ORDER BY started_at DESC, rowid DESC LIMIT 1",
                params![target, action],
                job_from_row,
            )
            .optional()
        })
    }

    /// A job of `action` on `target` that ran `command` to its end in a run
    /// killed before it could use the result (the run never ended), and is
    /// the latest job of that action there: its result stands, it is not run again.
    pub fn reusable_job(
        &self,
        target: &str,
        action: &str,
        command: &str,
        current_run: &str,
    ) -> Result<Option<RemoteJob>> {
        self.with(|conn| {
            conn.query_row(
                "SELECT j.id, j.run_id, j.target, j.action, j.command, j.folder, j.started_at, j.ended_at,
                        j.exit_status, j.state
                 FROM remote_jobs j JOIN runs r ON r.id = j.run_id
                 WHERE j.target = ?1 AND j.action = ?2 AND j.command = ?3 AND j.state = 'finished'
                   AND r.ended_at IS NULL AND j.run_id != ?4
                   AND j.rowid = (SELECT MAX(rowid) FROM remote_jobs WHERE target = ?1 AND action = ?2)",
                params![target, action, command, current_run],
                job_from_row,
            )
            .optional()
        })
    }

    /// Every job on `target`, oldest first, each with whether its run ended
    /// (a run killed with kill -9 never does).
    pub fn jobs_on(&self, target: &str) -> Result<Vec<(RemoteJob, bool)>> {
        self.with(|conn| {
            let mut query = conn.prepare(
                "SELECT j.id, j.run_id, j.target, j.action, j.command, j.folder, j.started_at, j.ended_at,
                        j.exit_status, j.state, r.ended_at IS NOT NULL
                 FROM remote_jobs j JOIN runs r ON r.id = j.run_id WHERE j.target = ?1 ORDER BY j.rowid",
            )?;
            let rows = query.query_map(params![target], |row| Ok((job_from_row(row)?, row.get(10)?)))?;
            rows.collect()
        })
    }

    /// Records how a remote job ended: its exit status, or `None` when it was lost.
    pub fn job_ended(&self, id: &str, exit_status: Option<i32>) -> Result<()> {
        let state = if exit_status.is_some() { "finished" } else { "lost" };
        self.with(|conn| {
            conn.execute(
                "UPDATE remote_jobs SET ended_at = ?1, exit_status = ?2, state = ?3 WHERE id = ?4",
                params![now(), exit_status, state, id],
            )
            .map(drop)
        })
    }

    /// The latest step of every host that has one, by host name.
    pub fn host_statuses(&self) -> Result<Vec<HostStatus>> {
        self.with(|conn| {
            let mut query = conn.prepare(&format!(
                "SELECT hs.host, hs.step, hs.outcome, hs.reason, hs.run_id, hs.started_at, hs.ended_at,
                        p.step, {POSITION_SINCE}
                 FROM host_steps hs LEFT JOIN host_steps p ON p.id = (
                     SELECT MAX(id) FROM host_steps WHERE host = hs.host AND outcome = 'succeeded' AND step <> 'noops')
                 WHERE hs.id IN (SELECT MAX(id) FROM host_steps GROUP BY host) ORDER BY hs.host"
            ))?;
            let rows = query.query_map(params![], |row| {
                Ok(HostStatus {
                    host: row.get(0)?,
                    step: row.get(1)?,
                    outcome: StepOutcome::parse(&row.get::<String>(2)?),
                    reason: row.get(3)?,
                    run_id: row.get(4)?,
                    started_at: row.get(5)?,
                    ended_at: row.get(6)?,
                    position: row.get(7)?,
                    position_at: row.get(8)?,
                    held_by: None,
                })
            })?;
            rows.collect::<DbResult<Vec<_>>>()
        })
        .and_then(|mut statuses| {
            let leases = self.leases()?;
            for status in &mut statuses {
                status.held_by = leases.iter().find(|lease| lease.host == status.host).cloned();
            }
            Ok(statuses)
        })
    }

    /// Writes what an operator's command (`vm power`, `vm exec`…) is about to
    /// do on a host, before it acts; returns the record's id.
    pub fn operator_action_start(
        &self,
        operator: &str,
        host: &str,
        command: &str,
        subject: Option<&str>,
    ) -> Result<i64> {
        self.with(|conn| {
            conn.insert(
                "INSERT INTO operator_actions (operator, host, command, subject, started_at, outcome)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'intent')",
                params![visible(operator), host, command, subject.map(visible), now()],
            )
        })
    }

    /// Completes a record of [`Self::operator_action_start`].
    pub fn operator_action_end(&self, id: i64, outcome: &str, detail: Option<&str>) -> Result<()> {
        self.with(|conn| {
            conn.execute(
                "UPDATE operator_actions SET ended_at = ?1, outcome = ?2, detail = ?3 WHERE id = ?4",
                params![now(), outcome, detail.map(visible), id],
            )
            .map(drop)
        })
    }

    /// The operator actions on `host`, oldest first.
    pub fn operator_actions(&self, host: &str) -> Result<Vec<OperatorAction>> {
        self.with(|conn| {
            let mut query = conn.prepare(
                "SELECT command, subject, outcome, detail FROM operator_actions WHERE host = ?1 ORDER BY id",
            )?;
            let rows = query.query_map(params![host], |row| {
                Ok(OperatorAction {
                    command: row.get(0)?,
                    subject: row.get(1)?,
                    outcome: row.get(2)?,
                    detail: row.get(3)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Every action recorded for `host`, oldest first.
    pub fn host_history(&self, host: &str) -> Result<Vec<ActionRecord>> {
        self.with(|conn| {
            let mut query = conn.prepare(
                "SELECT hs.run_id, a.step, a.action, a.outcome, a.started_at, a.ended_at, a.observed, a.planned,
                        a.change, a.previous, a.reason
                 FROM actions a JOIN host_steps hs ON hs.id = a.host_step_id WHERE a.host = ?1 ORDER BY a.id",
            )?;
            let rows = query.query_map(params![host], |row| {
                Ok(ActionRecord {
                    run_id: row.get(0)?,
                    step: row.get(1)?,
                    action: row.get(2)?,
                    outcome: ActionOutcome::parse(&row.get::<String>(3)?),
                    started_at: row.get(4)?,
                    ended_at: row.get(5)?,
                    observed: row.get(6)?,
                    planned: row.get(7)?,
                    change: row.get(8)?,
                    previous: row.get(9)?,
                    reason: row.get(10)?,
                })
            })?;
            rows.collect()
        })
    }
}

fn action_intent_in(
    conn: &Conn,
    host_step_id: i64,
    action: &str,
    observed: &str,
    planned: &str,
    previous: Option<&str>,
) -> DbResult<i64> {
    conn.insert(
        "INSERT INTO actions (host_step_id, host, step, action, started_at, outcome, observed, planned, previous)
         SELECT id, host, step, ?2, ?3, 'intent', ?4, ?5, ?6 FROM host_steps WHERE id = ?1",
        params![host_step_id, action, now(), visible(observed), visible(planned), previous.map(visible)],
    )
}

fn sub_command_intent_in(conn: &Conn, action_id: i64, name: &str) -> DbResult<i64> {
    conn.insert(
        "INSERT INTO sub_commands (action_id, host, step, action, name, started_at, outcome)
         SELECT id, host, step, action, ?2, ?3, 'intent' FROM actions WHERE id = ?1",
        params![action_id, name, now()],
    )
}

/// [`Journal::step_succeeded`] inside a transaction.
pub fn step_succeeded_in(conn: &Conn, host: &str, step: &str) -> DbResult<bool> {
    conn.query_row(
        "SELECT outcome FROM host_steps WHERE host = ?1 AND step = ?2 ORDER BY id DESC LIMIT 1",
        params![host, step],
        |row| row.get::<String>(0),
    )
    .optional()
    .map(|outcome| outcome.is_some_and(|outcome| outcome == "succeeded"))
}

/// [`Journal::position`] inside a transaction.
pub fn position_in(conn: &Conn, host: &str) -> DbResult<Option<Position>> {
    conn.query_row(
        &format!(
            "SELECT p.step, p.run_id, {POSITION_SINCE} FROM host_steps p
             WHERE p.host = ?1 AND p.outcome = 'succeeded' AND p.step <> 'noops' ORDER BY p.id DESC LIMIT 1"
        ),
        params![host],
        |row| Ok(Position { step: row.get(0)?, run_id: row.get(1)?, at: row.get(2)? }),
    )
    .optional()
}

fn add_missing_columns(conn: &Conn) -> DbResult<()> {
    let present = conn.columns("host_steps")?;
    for (column, kind) in HOST_STEP_COLUMNS {
        if !present.iter().any(|name| name == column) {
            conn.execute_batch(&format!("ALTER TABLE host_steps ADD COLUMN {column} {kind}"))?;
        }
    }
    Ok(())
}

fn job_from_row(row: &Row) -> DbResult<RemoteJob> {
    Ok(RemoteJob {
        id: row.get(0)?,
        run_id: row.get(1)?,
        target: row.get(2)?,
        action: row.get(3)?,
        command: row.get(4)?,
        folder: row.get(5)?,
        started_at: row.get(6)?,
        ended_at: row.get(7)?,
        exit_status: row.get(8)?,
        state: row.get(9)?,
    })
}

/// The journal's time stamp for now.
pub fn now() -> String {
    stamp(crate::clock::now())
}

/// The journal's time stamp: fixed width, so that text order is time order.
fn stamp(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// The PostgreSQL URL `--state` gives, if it is one.
fn postgres_url(path: &Path) -> Option<&str> {
    path.to_str().filter(|text| postgres::is_url(text))
}

/// Connects to a PostgreSQL ledger; a bad URL is bad input (exit 2), said
/// without repeating the URL (it may hold a password).
fn connect(path: &Path, url: &str) -> Result<Conn> {
    let problem =
        |message: String| Error::input(crate::error::InputProblem::new(Path::new("the ledger's URL"), message));
    let target = postgres::PgTarget::parse(url).map_err(problem)?;
    postgres::PgConn::connect(&target)
        .map(Conn::Postgres)
        .map_err(|err| journal_error(path, DbError::Postgres(format!("cannot connect: {err}"))))
}

fn journal_error(path: &Path, err: DbError) -> Error {
    Error::io(path, std::io::Error::other(format!("journal: {err}")))
}

/// The private PostgreSQL cluster of the tests (shared with the integration tests).
#[cfg(test)]
#[path = "../tests/support/postgres.rs"]
pub(crate) mod test_postgres;

#[cfg(test)]
pub(crate) mod test_ledgers {
    use std::path::PathBuf;

    /// Where a test's ledgers are, one per backend: a SQLite file in a
    /// temporary folder, and a PostgreSQL database when this machine has
    /// PostgreSQL (said on stderr when it has not).
    pub fn locations(test: &str) -> (tempfile::TempDir, Vec<PathBuf>) {
        let dir = tempfile::tempdir().unwrap();
        let mut locations = vec![dir.path().join("state/hvmigrate.db")];
        locations.extend(super::test_postgres::database(test).map(PathBuf::from));
        (dir, locations)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(journal: &Journal, id: &str) {
        let run =
            NewRun { id, step: "pre-drain", operator: "AB", hypervisors_file: "hv.txt", dry_run: false, forced: false };
        journal.start_run(&run).unwrap();
    }

    #[test]
    fn intent_then_result_and_step_success() {
        let (_dir, locations) = crate::journal::test_ledgers::locations("intent_then_result_and_step_success");
        for location in locations {
            let journal = Journal::open(&location).unwrap();
            run(&journal, "r1");
            let step = journal.start_host_step("r1", "hv01", "pre-drain", false).unwrap();
            let action = journal.action_intent(step, "disable-compute", "enabled", "disable", Some("enabled")).unwrap();
            assert_eq!(journal.unfinished_actions("hv01", "pre-drain").unwrap(), ["disable-compute"]);
            journal
                .action_result(
                    action,
                    ActionOutcome::Done,
                    &ActionResult { change: Some("disabled"), ..Default::default() },
                )
                .unwrap();
            assert!(journal.unfinished_actions("hv01", "pre-drain").unwrap().is_empty());
            assert!(!journal.step_succeeded("hv01", "pre-drain").unwrap());
            journal.finish_host_step(step, StepOutcome::Succeeded, None).unwrap();
            assert!(journal.step_succeeded("hv01", "pre-drain").unwrap());
            assert!(journal.action_ever_done("hv01", "pre-drain", "disable-compute").unwrap());
            let history = journal.host_history("hv01").unwrap();
            assert_eq!(history.len(), 1);
            assert_eq!(history[0].previous.as_deref(), Some("enabled"));
            assert_eq!(history[0].change.as_deref(), Some("disabled"));
        }
    }

    #[test]
    fn a_remote_job_is_unfinished_until_it_ended() {
        let (_dir, locations) = crate::journal::test_ledgers::locations("a_remote_job_is_unfinished_until_it_ended");
        for location in locations {
            let journal = Journal::open(&location).unwrap();
            let job = |id: &str| RemoteJob {
                id: id.into(),
                run_id: "r1".into(),
                target: "stack@kayobe".into(),
                action: "kayobe-host-configure".into(),
                command: "kayobe overcloud host configure".into(),
                folder: format!("hvmigrate-jobs/{id}"),
                started_at: now(),
                ended_at: None,
                exit_status: None,
                state: "running".into(),
            };
            let first = job("j1");
            journal.job_started(&first).unwrap();
            assert_eq!(journal.unfinished_job("stack@kayobe", "kayobe-host-configure").unwrap(), Some(first));
            assert_eq!(journal.unfinished_job("stack@kayobe", "kayobe-service-deploy").unwrap(), None);
            assert_eq!(journal.unfinished_job("root@hv01", "kayobe-host-configure").unwrap(), None);
            journal.job_ended("j1", Some(2)).unwrap();
            assert_eq!(journal.unfinished_job("stack@kayobe", "kayobe-host-configure").unwrap(), None);
            journal.job_started(&job("j2")).unwrap();
            journal.job_ended("j2", None).unwrap();
            assert_eq!(
                journal.unfinished_job("stack@kayobe", "kayobe-host-configure").unwrap(),
                None,
                "a lost job is over"
            );
        }
    }

    #[test]
    fn a_job_finished_in_a_killed_run_is_reused_until_a_later_one_runs() {
        let (_dir, locations) =
            crate::journal::test_ledgers::locations("a_job_finished_in_a_killed_run_is_reused_until_a_later_one_runs");
        for location in locations {
            let journal = Journal::open(&location).unwrap();
            run(&journal, "killed");
            run(&journal, "ended");
            journal.finish_run("ended", "succeeded").unwrap();
            let (target, action) = ("stack@kayobe", "kayobe-host-configure");
            let command = "kayobe overcloud host configure --limit hv01";
            let job = |id: &str, run_id: &str| RemoteJob {
                id: id.into(),
                run_id: run_id.into(),
                target: target.into(),
                action: action.into(),
                command: command.into(),
                folder: format!("hvmigrate-jobs/{id}"),
                started_at: now(),
                ended_at: None,
                exit_status: None,
                state: "running".into(),
            };
            journal.job_started(&job("j1", "killed")).unwrap();
            assert_eq!(journal.reusable_job(target, action, command, "now").unwrap(), None, "not finished");
            journal.job_ended("j1", Some(0)).unwrap();
            let found = journal.reusable_job(target, action, command, "now").unwrap();
            assert_eq!(found.map(|job| (job.id, job.exit_status)), Some(("j1".into(), Some(0))));
            let other = "kayobe overcloud host configure --limit hv02";
            assert_eq!(journal.reusable_job(target, action, other, "now").unwrap(), None, "another command");
            assert_eq!(journal.reusable_job(target, action, command, "killed").unwrap(), None, "not in its own run");
            journal.job_started(&job("j2", "ended")).unwrap();
            journal.job_ended("j2", Some(0)).unwrap();
            assert_eq!(
                journal.reusable_job(target, action, command, "now").unwrap(),
                None,
                "a later job ran and was used"
            );
        }
    }

    #[test]
    fn a_ledger_newer_than_the_binary_is_refused() {
        let (_dir, locations) = crate::journal::test_ledgers::locations("a_ledger_newer_than_the_binary_is_refused");
        for location in locations {
            let journal = Journal::open(&location).unwrap();
            let path = location.clone();
            drop(journal);
            let reopened = Journal::open(&path).unwrap();
            reopened
                .with(|conn| {
                    let versions: Vec<i64> = conn
                        .prepare("SELECT version FROM schema_version")?
                        .query_map(params![], |row| row.get(0))?
                        .collect::<DbResult<_>>()?;
                    assert_eq!(versions, [SCHEMA_VERSION], "recorded once");
                    conn.execute(
                        "INSERT INTO schema_version (version, applied_at) VALUES (?1, 'later')",
                        params![SCHEMA_VERSION + 1],
                    )
                })
                .unwrap();
            drop(reopened);
            for refused in [Journal::open(&path).err(), Journal::open_read_only(&path).err()] {
                let message = refused.expect("refused").to_string();
                let shown = path.display().to_string();
                assert!(message.contains("written by a newer hvmigrate") && message.contains(&shown), "{message}");
            }
        }
    }

    #[test]
    fn latest_step_per_host() {
        let (_dir, locations) = crate::journal::test_ledgers::locations("latest_step_per_host");
        for location in locations {
            let journal = Journal::open(&location).unwrap();
            run(&journal, "r1");
            let first = journal.start_host_step("r1", "hv01", "setup", false).unwrap();
            journal.finish_host_step(first, StepOutcome::Succeeded, None).unwrap();
            let second = journal.start_host_step("r1", "hv01", "pre-drain", false).unwrap();
            journal.finish_host_step(second, StepOutcome::Blocked, Some("not rocky 8")).unwrap();
            journal.start_host_step("r1", "hv02", "setup", false).unwrap();
            let statuses = journal.host_statuses().unwrap();
            assert_eq!(statuses.len(), 2);
            assert_eq!((statuses[0].step.as_str(), statuses[0].outcome), ("pre-drain", StepOutcome::Blocked));
            assert_eq!(statuses[1].outcome, StepOutcome::Running);
        }
    }
}

// ---------------------------------------------------------------------------
// Host identity records (issue "Host identity"). Self-contained: one table,
// created on first use, and three methods in plain SQL.
// ---------------------------------------------------------------------------

/// One row per observation of a host's identity: the canonical facts and
/// what NetBox, Nova and Aquilon said, as JSON (`identity::IdentityRecord`);
/// `kind` says what the row is (`observed`, `pinned-host-key`, …).
const IDENTITY_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS host_identity (
    id INTEGER PRIMARY KEY,
    host TEXT NOT NULL,
    step TEXT NOT NULL,
    run_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS host_identity_by_host ON host_identity(host, id);
";

/// One row of a host's identity history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IdentityRow {
    pub host: String,
    pub step: String,
    pub run_id: String,
    pub kind: String,
    pub recorded_at: String,
    /// The JSON record.
    pub record: String,
}

impl Journal {
    /// Adds a row to the host's identity history.
    pub fn record_identity(&self, host: &str, step: &str, run_id: &str, kind: &str, record: &str) -> Result<()> {
        self.with(|conn| {
            conn.execute(
                "INSERT INTO host_identity (host, step, run_id, kind, recorded_at, record) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![host, step, run_id, kind, now(), record],
            )
            .map(drop)
        })
    }

    /// The identity history of one host (or of every host), oldest first.
    /// Empty when nothing was recorded yet (also in a read-only journal).
    pub fn identity_history(&self, host: Option<&str>) -> Result<Vec<IdentityRow>> {
        self.with(|conn| {
            if !conn.has_table("host_identity")? {
                return Ok(Vec::new());
            }
            let mut query = conn.prepare(
                "SELECT host, step, run_id, kind, recorded_at, record FROM host_identity
                 WHERE CAST(?1 AS TEXT) IS NULL OR host = ?1 ORDER BY id",
            )?;
            let rows = query.query_map(params![host], |row| {
                Ok(IdentityRow {
                    host: row.get(0)?,
                    step: row.get(1)?,
                    run_id: row.get(2)?,
                    kind: row.get(3)?,
                    recorded_at: row.get(4)?,
                    record: row.get(5)?,
                })
            })?;
            rows.collect()
        })
    }

    /// The latest identity row of a host of this kind recorded by one of
    /// these steps.
    pub fn latest_identity(&self, host: &str, steps: &[&str], kind: &str) -> Result<Option<IdentityRow>> {
        Ok(self
            .identity_history(Some(host))?
            .into_iter()
            .rev()
            .find(|row| row.kind == kind && steps.contains(&row.step.as_str())))
    }
}

#[cfg(test)]
mod identity_tests {
    use super::*;

    #[test]
    fn identity_history_is_kept_per_host_in_order() {
        let (_dir, locations) = crate::journal::test_ledgers::locations("identity_history_is_kept_per_host_in_order");
        for location in locations {
            let journal = Journal::open(&location).unwrap();
            assert!(journal.identity_history(None).unwrap().is_empty());
            journal.record_identity("hv01", "pre-drain", "r1", "observed", "{\"a\":1}").unwrap();
            journal.record_identity("hv02", "pre-drain", "r1", "observed", "{\"b\":1}").unwrap();
            journal.record_identity("hv01", "post-reinstall", "r2", "observed", "{\"a\":2}").unwrap();
            let rows = journal.identity_history(Some("hv01")).unwrap();
            assert_eq!(rows.iter().map(|r| r.record.as_str()).collect::<Vec<_>>(), ["{\"a\":1}", "{\"a\":2}"]);
            assert_eq!(journal.identity_history(None).unwrap().len(), 3);
            let latest = journal.latest_identity("hv01", &["pre-drain", "pre-reinstall"], "observed").unwrap().unwrap();
            assert_eq!(latest.record, "{\"a\":1}");
        }
    }
}

// ---- Reports: read-only queries (the rows as stored; `crate::report` computes) ----

/// One host step as stored, for reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepRow {
    pub id: i64,
    pub host: String,
    pub step: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub outcome: StepOutcome,
    pub reason: Option<String>,
}

/// One action as stored, for reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionRow {
    pub host_step_id: i64,
    pub host: String,
    pub step: String,
    pub action: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub outcome: ActionOutcome,
    pub observed: Option<String>,
    pub change: Option<String>,
}

/// One sub-command as stored, for reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubCommandRow {
    pub host: String,
    pub step: String,
    pub action: String,
    pub name: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub outcome: ActionOutcome,
    pub detail: Option<String>,
}

impl Journal {
    /// Every host step, in the order they were written.
    pub fn report_steps(&self) -> Result<Vec<StepRow>> {
        self.with(|conn| {
            let mut query = conn
                .prepare("SELECT id, host, step, started_at, ended_at, outcome, reason FROM host_steps ORDER BY id")?;
            let rows = query.query_map(params![], step_row)?;
            rows.collect()
        })
    }

    /// Every action, in the order they were written.
    pub fn report_actions(&self) -> Result<Vec<ActionRow>> {
        self.with(|conn| {
            let mut query = conn.prepare(
                "SELECT host_step_id, host, step, action, started_at, ended_at, outcome, observed, change
                 FROM actions ORDER BY id",
            )?;
            let rows = query.query_map(params![], |row| {
                Ok(ActionRow {
                    host_step_id: row.get(0)?,
                    host: row.get(1)?,
                    step: row.get(2)?,
                    action: row.get(3)?,
                    started_at: row.get(4)?,
                    ended_at: row.get(5)?,
                    outcome: ActionOutcome::parse(&row.get::<String>(6)?),
                    observed: row.get(7)?,
                    change: row.get(8)?,
                })
            })?;
            rows.collect()
        })
    }

    /// The sub-commands named `name`, in the order they were written.
    pub fn report_sub_commands(&self, name: &str) -> Result<Vec<SubCommandRow>> {
        self.with(|conn| {
            let mut query = conn.prepare(
                "SELECT host, step, action, name, started_at, ended_at, outcome, detail
                 FROM sub_commands WHERE name = ?1 ORDER BY id",
            )?;
            let rows = query.query_map(params![name], |row| {
                Ok(SubCommandRow {
                    host: row.get(0)?,
                    step: row.get(1)?,
                    action: row.get(2)?,
                    name: row.get(3)?,
                    started_at: row.get(4)?,
                    ended_at: row.get(5)?,
                    outcome: ActionOutcome::parse(&row.get::<String>(6)?),
                    detail: row.get(7)?,
                })
            })?;
            rows.collect()
        })
    }
}

// ---- End of the report queries ----

/// A `host_steps` row read as `id, host, step, started_at, ended_at, outcome, reason`.
fn step_row(row: &db::Row) -> db::DbResult<StepRow> {
    Ok(StepRow {
        id: row.get(0)?,
        host: row.get(1)?,
        step: row.get(2)?,
        started_at: row.get(3)?,
        ended_at: row.get(4)?,
        outcome: StepOutcome::parse(&row.get::<String>(5)?),
        reason: row.get(6)?,
    })
}
