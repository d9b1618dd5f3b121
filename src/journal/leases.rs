//! Host leases: a run holds a host while it works on it, so that two runs on
//! the same ledger (other processes, other machines) never work on one host
//! at once. A lease is taken in a write transaction (`BEGIN IMMEDIATE`), so
//! the check and the take are one step for every process on the journal;
//! renewed while the run works; released when the host's step ends. A lease
//! whose time ran out, or whose process is gone from this same machine, is
//! taken over, and the take-over is recorded.

use std::time::Duration;

use super::db::{params, Conn, DbResult, OptionalExtension, Row};
use serde::Serialize;

use super::{now, Journal};
use crate::error::Result;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS leases (
    host TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    step TEXT NOT NULL,
    user_name TEXT NOT NULL,
    machine TEXT NOT NULL,
    process_scope TEXT NOT NULL,
    pid INTEGER NOT NULL,
    pid_start TEXT NOT NULL,
    acquired_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS leases_by_run ON leases(run_id);
CREATE TABLE IF NOT EXISTS runs_under_way (
    run_id TEXT PRIMARY KEY,
    step TEXT NOT NULL,
    user_name TEXT NOT NULL,
    machine TEXT NOT NULL,
    pid INTEGER NOT NULL,
    hosts INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS lease_takeovers (
    id INTEGER PRIMARY KEY,
    host TEXT NOT NULL,
    from_run TEXT NOT NULL,
    to_run TEXT NOT NULL,
    at TEXT NOT NULL,
    why TEXT NOT NULL
);
";

/// The run that asks for a lease: who, where, which process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseHolder {
    pub run_id: String,
    pub step: String,
    pub user: String,
    pub machine: String,
    /// The process namespace the pid means something in (the boot and the
    /// pid namespace): a pid is only checked where this is the same.
    pub process_scope: String,
    pub pid: u32,
    /// The process's start time (from `/proc`), so a reused pid is not taken for it.
    pub pid_start: String,
}

impl LeaseHolder {
    /// This process, working for `run_id` on `step`.
    pub fn this_process(run_id: &str, step: &str) -> Self {
        let pid = std::process::id();
        LeaseHolder {
            run_id: run_id.to_owned(),
            step: step.to_owned(),
            user: process::user_name(),
            machine: process::machine_name(),
            process_scope: process::scope(),
            pid,
            pid_start: process::start_time(pid).unwrap_or_default(),
        }
    }
}

/// A lease as the ledger holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Lease {
    pub host: String,
    pub run_id: String,
    pub step: String,
    pub user: String,
    pub machine: String,
    pub pid: u32,
    pub acquired_at: String,
    pub expires_at: String,
    #[serde(skip)]
    process_scope: String,
    #[serde(skip)]
    pid_start: String,
}

impl Lease {
    /// `leased by run <id> (<user>@<machine>, pid <n>) until <time>`: why a host is not worked on.
    pub fn held_reason(&self) -> String {
        format!(
            "leased by run {} ({}@{}, pid {}) until {}",
            self.run_id, self.user, self.machine, self.pid, self.expires_at
        )
    }

    /// `<user>@<machine>`.
    pub fn holder(&self) -> String {
        format!("{}@{}", self.user, self.machine)
    }

    /// Why another run may take this lease over at `at`, if it may.
    fn lapsed(&self, at: &str, asking: &LeaseHolder) -> Option<String> {
        if self.expires_at.as_str() <= at {
            return Some(format!("its lease ran out at {}", self.expires_at));
        }
        let same_scope = !self.process_scope.is_empty() && self.process_scope == asking.process_scope;
        if same_scope && !process::is_alive(self.pid, &self.pid_start) {
            return Some(format!("its process (pid {} on {}) is gone", self.pid, self.machine));
        }
        None
    }
}

/// How asking for a lease ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// The run holds the host now; `took_over` is the lapsed lease it replaced, with why.
    Acquired { took_over: Option<(Lease, String)> },
    /// Another live run holds it.
    Held(Lease),
}

/// A lease taken over from a run that stopped renewing it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Takeover {
    pub host: String,
    pub from_run: String,
    pub to_run: String,
    pub at: String,
    pub why: String,
}

/// A run under way, for `status --runs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RunUnderWay {
    pub run_id: String,
    pub step: String,
    pub user: String,
    pub machine: String,
    pub pid: u32,
    /// Hosts of the run.
    pub hosts: u32,
    /// The hosts it holds now.
    pub holding: Vec<String>,
    pub started_at: String,
}

impl Journal {
    /// Says the run is under way (`status --runs`) until it ends or stops
    /// renewing its leases.
    pub fn run_under_way(&self, holder: &LeaseHolder, hosts: usize, duration: Duration) -> Result<()> {
        self.bookkeeping(|conn| {
            // Runs killed long ago are forgotten here; their leases went with their expiry.
            conn.execute("DELETE FROM runs_under_way WHERE expires_at <= ?1", params![now()])?;
            conn.execute(
                "INSERT INTO runs_under_way (run_id, step, user_name, machine, pid, hosts, started_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (run_id) DO UPDATE SET hosts = excluded.hosts, expires_at = excluded.expires_at",
                params![
                    holder.run_id,
                    holder.step,
                    holder.user,
                    holder.machine,
                    holder.pid,
                    hosts as i64,
                    now(),
                    later(duration)
                ],
            )
            .map(drop)
        })
    }

    /// The run ended: it holds nothing more and is no longer under way.
    pub fn run_ended(&self, run_id: &str) -> Result<()> {
        self.bookkeeping(|conn| {
            conn.execute("DELETE FROM leases WHERE run_id = ?1", params![run_id])?;
            conn.execute("DELETE FROM slots WHERE run_id = ?1", params![run_id])?;
            conn.execute("DELETE FROM runs_under_way WHERE run_id = ?1", params![run_id]).map(drop)
        })
    }

    /// The runs under way now (renewed lately), oldest first.
    pub fn runs_under_way(&self) -> Result<Vec<RunUnderWay>> {
        self.with(|conn| {
            if !has_table(conn, "runs_under_way")? {
                return Ok(Vec::new());
            }
            let at = now();
            let mut query = conn.prepare(
                "SELECT run_id, step, user_name, machine, pid, hosts, started_at FROM runs_under_way
                 WHERE expires_at > ?1 ORDER BY started_at, run_id",
            )?;
            let mut runs: Vec<RunUnderWay> = query
                .query_map(params![at], |row| {
                    Ok(RunUnderWay {
                        run_id: row.get(0)?,
                        step: row.get(1)?,
                        user: row.get(2)?,
                        machine: row.get(3)?,
                        pid: row.get(4)?,
                        hosts: row.get(5)?,
                        holding: Vec::new(),
                        started_at: row.get(6)?,
                    })
                })?
                .collect::<DbResult<_>>()?;
            let mut holding =
                conn.prepare("SELECT host FROM leases WHERE run_id = ?1 AND expires_at > ?2 ORDER BY host")?;
            for run in &mut runs {
                run.holding = holding.query_map(params![run.run_id, at], |row| row.get(0))?.collect::<DbResult<_>>()?;
            }
            Ok(runs)
        })
    }

    /// Leases `host` for `holder` until `duration` from now, unless another
    /// live run holds it. Renews the holder's own lease.
    pub fn acquire_lease(&self, host: &str, holder: &LeaseHolder, duration: Duration) -> Result<LeaseOutcome> {
        self.bookkeeping(|conn| acquire_in(conn, host, holder, duration))
    }

    /// Leases, in one transaction, up to `wanted` of `candidates` (in their
    /// order) that nobody else holds and that `eligible` accepts, for
    /// `holder`. The check is made inside the transaction, so that runs
    /// claiming at once partition the hosts. Returns the hosts leased.
    pub fn claim_leases(
        &self,
        candidates: &[String],
        wanted: usize,
        holder: &LeaseHolder,
        duration: Duration,
        eligible: &dyn Fn(&Conn, &str) -> DbResult<bool>,
    ) -> Result<Vec<String>> {
        self.bookkeeping(|conn| {
            let mut claimed = Vec::new();
            for host in candidates {
                if claimed.len() >= wanted {
                    break;
                }
                let free = match current(conn, host)? {
                    None => true,
                    Some(lease) => lease.run_id == holder.run_id || lease.lapsed(&now(), holder).is_some(),
                };
                if !free || !eligible(conn, host)? {
                    continue;
                }
                if let LeaseOutcome::Acquired { .. } = acquire_in(conn, host, holder, duration)? {
                    claimed.push(host.clone());
                }
            }
            Ok(claimed)
        })
    }

    /// Pushes back the expiry of every lease `run_id` holds; returns the
    /// hosts it still holds (a host missing from them was taken over).
    pub fn renew_leases(&self, run_id: &str, duration: Duration) -> Result<Vec<String>> {
        self.bookkeeping(|conn| {
            let until = later(duration);
            conn.execute("UPDATE leases SET expires_at = ?1 WHERE run_id = ?2", params![until, run_id])?;
            conn.execute("UPDATE runs_under_way SET expires_at = ?1 WHERE run_id = ?2", params![until, run_id])?;
            conn.execute("UPDATE slots SET expires_at = ?1 WHERE run_id = ?2", params![until, run_id])?;
            conn.query_map("SELECT host FROM leases WHERE run_id = ?1 ORDER BY host", params![run_id], |row| row.get(0))
        })
    }

    /// Checks that the run still holds the host's lease and renews it, in
    /// one write transaction: before an act that is not journaled as an
    /// intent (posting the audit trail).
    pub fn hold_lease(&self, check: &LeaseCheck<'_>) -> Result<std::result::Result<(), LeaseLost>> {
        self.bookkeeping(|conn| check_held_in(conn, check))
    }

    /// Why `run_id` no longer holds `host` (`lease lost to run ...`), or
    /// `None` while it does.
    pub fn lease_lost(&self, host: &str, run_id: &str) -> Result<Option<LeaseLost>> {
        self.with(|conn| match current(conn, host)? {
            Some(lease) if lease.run_id == run_id => Ok(None),
            Some(lease) => Ok(Some(LeaseLost(lost_to(conn, &lease)?))),
            None => Ok(Some(LeaseLost(lost_since(conn, host, run_id)?))),
        })
    }

    /// Gives the host back, if `run_id` still holds it.
    pub fn release_lease(&self, host: &str, run_id: &str) -> Result<()> {
        self.bookkeeping(|conn| {
            conn.execute("DELETE FROM leases WHERE host = ?1 AND run_id = ?2", params![host, run_id]).map(drop)
        })
    }

    /// Every lease held now (not run out), by host.
    pub fn leases(&self) -> Result<Vec<Lease>> {
        self.with(|conn| {
            if !has_table(conn, "leases")? {
                return Ok(Vec::new());
            }
            let mut query = conn.prepare(&format!("{SELECT_LEASE} WHERE expires_at > ?1 ORDER BY host"))?;
            let rows = query.query_map(params![now()], lease_from_row)?;
            rows.collect()
        })
    }

    /// Every take-over recorded for `host`, oldest first.
    pub fn takeovers(&self, host: &str) -> Result<Vec<Takeover>> {
        self.with(|conn| {
            if !has_table(conn, "lease_takeovers")? {
                return Ok(Vec::new());
            }
            let mut query = conn
                .prepare("SELECT host, from_run, to_run, at, why FROM lease_takeovers WHERE host = ?1 ORDER BY id")?;
            let rows = query.query_map(params![host], |row| {
                Ok(Takeover {
                    host: row.get(0)?,
                    from_run: row.get(1)?,
                    to_run: row.get(2)?,
                    at: row.get(3)?,
                    why: row.get(4)?,
                })
            })?;
            rows.collect()
        })
    }
}

const SELECT_LEASE: &str = "SELECT host, run_id, step, user_name, machine, pid, acquired_at, expires_at, process_scope,
    pid_start FROM leases";

fn lease_from_row(row: &Row) -> DbResult<Lease> {
    Ok(Lease {
        host: row.get(0)?,
        run_id: row.get(1)?,
        step: row.get(2)?,
        user: row.get(3)?,
        machine: row.get(4)?,
        pid: row.get(5)?,
        acquired_at: row.get(6)?,
        expires_at: row.get(7)?,
        process_scope: row.get(8)?,
        pid_start: row.get(9)?,
    })
}

fn current(conn: &Conn, host: &str) -> DbResult<Option<Lease>> {
    conn.query_row(&format!("{SELECT_LEASE} WHERE host = ?1"), params![host], lease_from_row).optional()
}

fn acquire_in(conn: &Conn, host: &str, holder: &LeaseHolder, duration: Duration) -> DbResult<LeaseOutcome> {
    let at = now();
    let existing = current(conn, host)?;
    let took_over = match existing {
        Some(lease) if lease.run_id == holder.run_id => {
            conn.execute(
                "UPDATE leases SET expires_at = ?1 WHERE host = ?2 AND run_id = ?3",
                params![later(duration), host, holder.run_id],
            )?;
            return Ok(LeaseOutcome::Acquired { took_over: None });
        }
        Some(lease) => match lease.lapsed(&at, holder) {
            Some(why) => Some((lease, why)),
            None => return Ok(LeaseOutcome::Held(lease)),
        },
        None => None,
    };
    if let Some((lease, why)) = &took_over {
        conn.execute(
            "INSERT INTO lease_takeovers (host, from_run, to_run, at, why) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![host, lease.run_id, holder.run_id, at, why],
        )?;
    }
    conn.execute(
        "INSERT INTO leases (host, run_id, step, user_name, machine, process_scope, pid, pid_start, acquired_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (host) DO UPDATE SET run_id = excluded.run_id, step = excluded.step,
            user_name = excluded.user_name, machine = excluded.machine, process_scope = excluded.process_scope,
            pid = excluded.pid, pid_start = excluded.pid_start, acquired_at = excluded.acquired_at,
            expires_at = excluded.expires_at",
        params![
            host,
            holder.run_id,
            holder.step,
            holder.user,
            holder.machine,
            holder.process_scope,
            holder.pid,
            holder.pid_start,
            at,
            later(duration)
        ],
    )?;
    Ok(LeaseOutcome::Acquired { took_over })
}

/// What an intent write checks first: that `run_id` still holds `host`'s lease.
#[derive(Clone, Copy, Debug)]
pub struct LeaseCheck<'a> {
    pub host: &'a str,
    pub run_id: &'a str,
    /// The lease is renewed for this long by the check.
    pub duration: Duration,
}

/// The run no longer holds the host: another run took its lease over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseLost(pub String);

impl std::fmt::Display for LeaseLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks, inside the caller's write transaction, that the run still holds
/// the host's lease, and renews it for its full duration: a side effect is
/// journaled (and then made) only by the lease's holder.
///
/// The window this leaves: the act follows the check's commit, so a process
/// paused between the two (SIGSTOP, a VM frozen) for longer than the renewed
/// lease (less the clock skew between the machines on the ledger) can still
/// act after another run took the host over. Leases without fencing tokens
/// checked by the service acted on cannot close it; renewing at the check
/// bounds it to a pause of a whole lease.
pub(super) fn check_held_in(conn: &Conn, check: &LeaseCheck<'_>) -> DbResult<Result<(), LeaseLost>> {
    match current(conn, check.host)? {
        Some(lease) if lease.run_id == check.run_id => {
            conn.execute(
                "UPDATE leases SET expires_at = ?1 WHERE host = ?2 AND run_id = ?3",
                params![later(check.duration), check.host, check.run_id],
            )?;
            Ok(Ok(()))
        }
        Some(lease) => Ok(Err(LeaseLost(lost_to(conn, &lease)?))),
        None => Ok(Err(LeaseLost(lost_since(conn, check.host, check.run_id)?))),
    }
}

/// Why `run_id` holds no lease on `host` any more: the run that took it
/// over (and has given it back since), if one did.
fn lost_since(conn: &Conn, host: &str, run_id: &str) -> DbResult<String> {
    let takeover: Option<(String, String, String)> = conn
        .query_row(
            "SELECT to_run, at, why FROM lease_takeovers WHERE host = ?1 AND from_run = ?2 ORDER BY id DESC LIMIT 1",
            params![host, run_id],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()?;
    Ok(match takeover {
        Some((to_run, at, why)) => format!("lease lost to run {to_run} (took it over at {at}: {why})"),
        None => format!("lease lost: run {run_id} no longer holds the host"),
    })
}

/// `lease lost to run <id> (<user>@<machine>, pid <n>): <why it was taken over>`.
fn lost_to(conn: &Conn, lease: &Lease) -> DbResult<String> {
    let why: Option<String> = conn
        .query_row(
            "SELECT why FROM lease_takeovers WHERE host = ?1 AND to_run = ?2 ORDER BY id DESC LIMIT 1",
            params![lease.host, lease.run_id],
            |row| row.get(0),
        )
        .optional()?;
    let why = why.map(|why| format!(" took it over: {why}")).unwrap_or_default();
    Ok(format!("lease lost to run {} ({}, pid {}){why}", lease.run_id, lease.holder(), lease.pid))
}

/// The journal's time stamp `duration` from now.
pub(super) fn later(duration: Duration) -> String {
    let at = crate::clock::now()
        .checked_add(jiff::SignedDuration::try_from(duration).unwrap_or(jiff::SignedDuration::MAX))
        .unwrap_or(jiff::Timestamp::MAX);
    super::stamp(at)
}

fn has_table(conn: &Conn, name: &str) -> DbResult<bool> {
    conn.has_table(name)
}

/// What this process is, for a lease, and whether another one still runs.
pub(super) mod process {
    /// The login name of the effective user (its uid when it has none).
    pub fn user_name() -> String {
        // SAFETY: geteuid cannot fail; getpwuid_r writes into the buffers given.
        unsafe {
            let uid = libc::geteuid();
            let mut entry: libc::passwd = std::mem::zeroed();
            let mut buffer = vec![0 as libc::c_char; 4096];
            let mut found: *mut libc::passwd = std::ptr::null_mut();
            let rc = libc::getpwuid_r(uid, &mut entry, buffer.as_mut_ptr(), buffer.len(), &mut found);
            if rc == 0 && !found.is_null() && !entry.pw_name.is_null() {
                let name = std::ffi::CStr::from_ptr(entry.pw_name).to_string_lossy();
                return crate::untrusted::visible(&name).into_owned();
            }
            format!("uid{uid}")
        }
    }

    /// This machine's host name.
    pub fn machine_name() -> String {
        let mut buffer = [0u8; 256];
        // SAFETY: the buffer is as long as said; the name is cut and NUL-ended at worst.
        let rc = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
        if rc != 0 {
            return "unknown".into();
        }
        let end = buffer.iter().position(|byte| *byte == 0).unwrap_or(buffer.len());
        crate::untrusted::visible(&String::from_utf8_lossy(&buffer[..end])).into_owned()
    }

    /// The boot and pid namespace this process's pid is valid in; empty
    /// when unknown (then only a lease's expiry frees it).
    pub fn scope() -> String {
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
        let namespace = std::fs::read_link("/proc/self/ns/pid").map(|link| link.display().to_string());
        match (boot.trim(), namespace) {
            ("", _) | (_, Err(_)) => String::new(),
            (boot, Ok(namespace)) => format!("{boot}/{namespace}"),
        }
    }

    /// When the process started (clock ticks since boot, field 22 of `/proc/<pid>/stat`).
    pub fn start_time(pid: u32) -> Option<String> {
        stat_fields(pid).and_then(|fields| fields.get(19).cloned())
    }

    /// Whether process `pid`, started at `start`, still runs (a zombie does not).
    pub fn is_alive(pid: u32, start: &str) -> bool {
        match stat_fields(pid) {
            None => false,
            Some(fields) => {
                let zombie = fields.first().is_some_and(|state| state == "Z" || state == "X");
                let same = start.is_empty() || fields.get(19).is_some_and(|started| started == start);
                !zombie && same
            }
        }
    }

    /// The fields of `/proc/<pid>/stat` after the command name (from the state on).
    fn stat_fields(pid: u32) -> Option<Vec<String>> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let after_name = &stat[stat.rfind(')')? + 1..];
        Some(after_name.split_whitespace().map(str::to_owned).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(run_id: &str) -> LeaseHolder {
        LeaseHolder::this_process(run_id, "pre-drain")
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn a_live_lease_of_another_run_holds_the_host() {
        let (_dir, locations) = crate::journal::test_ledgers::locations("a_live_lease_of_another_run_holds_the_host");
        for location in locations {
            let journal = Journal::open(&location).unwrap();
            assert_eq!(
                journal.acquire_lease("hv01", &holder("r1"), MINUTE).unwrap(),
                LeaseOutcome::Acquired { took_over: None }
            );
            let LeaseOutcome::Held(lease) = journal.acquire_lease("hv01", &holder("r2"), MINUTE).unwrap() else {
                panic!("r1 holds hv01");
            };
            let reason = lease.held_reason();
            assert!(
                reason.starts_with(&format!(
                    "leased by run r1 ({}, pid {}) until ",
                    lease.holder(),
                    std::process::id()
                )),
                "{reason}"
            );
            assert!(matches!(
                journal.acquire_lease("hv02", &holder("r2"), MINUTE).unwrap(),
                LeaseOutcome::Acquired { .. }
            ));
            assert!(
                matches!(
                    journal.acquire_lease("hv01", &holder("r1"), MINUTE).unwrap(),
                    LeaseOutcome::Acquired { took_over: None }
                ),
                "its own lease is renewed"
            );
            journal.release_lease("hv01", "r2").unwrap();
            assert!(
                matches!(journal.acquire_lease("hv01", &holder("r2"), MINUTE).unwrap(), LeaseOutcome::Held(_)),
                "only the holder releases"
            );
            journal.release_lease("hv01", "r1").unwrap();
            assert!(matches!(
                journal.acquire_lease("hv01", &holder("r2"), MINUTE).unwrap(),
                LeaseOutcome::Acquired { took_over: None }
            ));
            let held: Vec<_> = journal.leases().unwrap().into_iter().map(|lease| (lease.host, lease.run_id)).collect();
            assert_eq!(held, [("hv01".to_owned(), "r2".to_owned()), ("hv02".to_owned(), "r2".to_owned())]);
        }
    }

    #[test]
    fn an_expired_lease_is_taken_over_and_recorded() {
        let (_dir, locations) = crate::journal::test_ledgers::locations("an_expired_lease_is_taken_over_and_recorded");
        for location in locations {
            let journal = Journal::open(&location).unwrap();
            // Another machine: its pid means nothing here, only the expiry frees the host.
            let elsewhere =
                LeaseHolder { machine: "laptop".into(), process_scope: "other-boot/pid:[1]".into(), ..holder("r1") };
            journal.acquire_lease("hv01", &elsewhere, Duration::from_millis(200)).unwrap();
            assert!(matches!(journal.acquire_lease("hv01", &holder("r2"), MINUTE).unwrap(), LeaseOutcome::Held(_)));
            std::thread::sleep(Duration::from_millis(250));
            let LeaseOutcome::Acquired { took_over: Some((lease, why)) } =
                journal.acquire_lease("hv01", &holder("r2"), MINUTE).unwrap()
            else {
                panic!("the expired lease is taken over");
            };
            assert_eq!((lease.run_id.as_str(), lease.machine.as_str()), ("r1", "laptop"));
            assert!(why.starts_with("its lease ran out at "), "{why}");
            let recorded = journal.takeovers("hv01").unwrap();
            assert_eq!(recorded.len(), 1);
            assert_eq!((recorded[0].from_run.as_str(), recorded[0].to_run.as_str()), ("r1", "r2"));
            assert_eq!(journal.renew_leases("r1", MINUTE).unwrap(), Vec::<String>::new(), "r1 sees it lost the host");
            assert_eq!(journal.renew_leases("r2", MINUTE).unwrap(), ["hv01"]);
        }
    }

    #[test]
    fn a_lease_whose_process_is_gone_on_this_machine_is_taken_over() {
        let (_dir, locations) =
            crate::journal::test_ledgers::locations("a_lease_whose_process_is_gone_on_this_machine_is_taken_over");
        for location in locations {
            let journal = Journal::open(&location).unwrap();
            let mut child = std::process::Command::new("true").spawn().unwrap();
            let pid = child.id();
            let start = process::start_time(pid).unwrap_or_default();
            child.wait().unwrap();
            let gone = LeaseHolder { pid, pid_start: start, ..holder("r1") };
            journal.acquire_lease("hv01", &gone, MINUTE).unwrap();
            let LeaseOutcome::Acquired { took_over: Some((_, why)) } =
                journal.acquire_lease("hv01", &holder("r2"), MINUTE).unwrap()
            else {
                panic!("the dead process's lease is taken over");
            };
            assert!(why.contains(&format!("pid {pid}")) && why.ends_with("is gone"), "{why}");
            // A live process of this machine keeps its lease: this one, as seen by another run.
            journal.acquire_lease("hv02", &holder("r3"), MINUTE).unwrap();
            assert!(matches!(journal.acquire_lease("hv02", &holder("r4"), MINUTE).unwrap(), LeaseOutcome::Held(_)));
        }
    }

    #[test]
    fn an_intent_is_written_only_by_the_lease_holder() {
        let (_dir, locations) =
            crate::journal::test_ledgers::locations("an_intent_is_written_only_by_the_lease_holder");
        for location in locations {
            let journal = Journal::open(&location).unwrap();
            let elsewhere =
                LeaseHolder { machine: "laptop".into(), process_scope: "other-boot/pid:[1]".into(), ..holder("r1") };
            journal.acquire_lease("hv01", &elsewhere, Duration::from_millis(200)).unwrap();
            let run = crate::journal::NewRun {
                id: "r1",
                step: "pre-drain",
                operator: "AB",
                hypervisors_file: "hv.csv",
                dry_run: false,
                forced: false,
            };
            journal.start_run(&run).unwrap();
            let step = journal.start_host_step("r1", "hv01", "pre-drain", false).unwrap();
            let check = LeaseCheck { host: "hv01", run_id: "r1", duration: Duration::from_millis(200) };
            let first =
                journal.action_intent_leased(&check, step, "disable-compute", "enabled", "disable", None).unwrap();
            assert!(first.is_ok(), "the holder writes its intent");
            // r1 is paused past its lease; r2 takes the host over.
            std::thread::sleep(Duration::from_millis(250));
            assert!(matches!(
                journal.acquire_lease("hv01", &holder("r2"), MINUTE).unwrap(),
                LeaseOutcome::Acquired { .. }
            ));
            let lost = journal
                .action_intent_leased(&check, step, "disable-compute", "enabled", "disable", None)
                .unwrap()
                .expect_err("r1 lost the host");
            assert!(lost.0.starts_with("lease lost to run r2 ("), "{lost}");
            assert!(lost.0.contains("took it over: its lease ran out at "), "{lost}");
            assert_eq!(journal.unfinished_actions("hv01", "pre-drain").unwrap().len(), 1, "nothing more written");
            let sub = journal.sub_command_intent_leased(&check, first.unwrap(), "delete").unwrap();
            assert!(sub.is_err(), "no sub-command either");
            assert_eq!(journal.lease_lost("hv01", "r1").unwrap(), Some(lost));
            assert_eq!(journal.lease_lost("hv01", "r2").unwrap(), None);
            // The check renews the holder's lease.
            let before = journal.leases().unwrap()[0].expires_at.clone();
            std::thread::sleep(Duration::from_millis(5));
            let r2 = LeaseCheck { host: "hv01", run_id: "r2", duration: MINUTE };
            assert!(journal.hold_lease(&r2).unwrap().is_ok());
            assert!(journal.leases().unwrap()[0].expires_at > before);
        }
    }

    #[test]
    fn claims_take_free_hosts_in_order() {
        let (_dir, locations) = crate::journal::test_ledgers::locations("claims_take_free_hosts_in_order");
        for location in locations {
            let journal = Journal::open(&location).unwrap();
            let hosts: Vec<String> = (1..=6).map(|n| format!("hv0{n}")).collect();
            journal.acquire_lease("hv02", &holder("other"), MINUTE).unwrap();
            let not_hv04 = |_: &Conn, host: &str| Ok(host != "hv04");
            let first = journal.claim_leases(&hosts, 2, &holder("r1"), MINUTE, &not_hv04).unwrap();
            assert_eq!(first, ["hv01", "hv03"]);
            let second = journal.claim_leases(&hosts, 5, &holder("r2"), MINUTE, &not_hv04).unwrap();
            assert_eq!(second, ["hv05", "hv06"]);
        }
    }
}
