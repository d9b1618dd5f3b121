//! The migration scheduler: every planned move of one host, at most
//! `live_migrations_per_host` at once from this host and
//! `live_migrations_global` across the run, each bounded in time and checked
//! by three conditions before it counts as done.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::clients::nova::{Migration, NovaClient, Server};
use crate::config::workflow::{DrainSettings, GuestCheck, OnMigrationFailure};
use crate::hosts::vm::{AgentState, Domains};
use crate::ssh::RemoteShell;
use crate::workflow::context::RunContext;
use crate::workflow::report::{VmMove, VmOutcome};

use super::{project, MigrationSlots, MoveKind, PlannedMove, UnderWay};

const FAILED: [&str; 5] = ["error", "failed", "cancelled", "aborted", "reverted"];

/// What one host's migrations show on the progress line: VMs left, and each
/// migration's status and time.
struct HostProgress {
    run: Arc<RunContext>,
    host: String,
    left: AtomicUsize,
    moving: Mutex<BTreeMap<String, (String, Instant)>>,
}

impl HostProgress {
    fn status(&self, vm: &str, status: &str) {
        {
            let mut moving = self.moving.lock().unwrap_or_else(|poison| poison.into_inner());
            let entry = moving.entry(vm.to_owned()).or_insert_with(|| (String::new(), Instant::now()));
            entry.0 = status.to_owned();
        }
        self.show();
    }

    /// One VM less to move; the VMs left after it.
    fn finished(&self, vm: &str) -> usize {
        self.moving.lock().unwrap_or_else(|poison| poison.into_inner()).remove(vm);
        let left = self.left.fetch_sub(1, Ordering::SeqCst) - 1;
        self.show();
        left
    }

    fn show(&self) {
        let Some(progress) = &self.run.progress else { return };
        let moving: Vec<String> = self
            .moving
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .iter()
            .map(|(vm, (status, since))| format!("{vm} {status} {:.0}s", since.elapsed().as_secs_f64()))
            .collect();
        let left = self.left.load(Ordering::SeqCst);
        progress.action_detail(&self.host, &format!("migrate: {left} VMs left; {}", moving.join(", ")));
    }
}

/// How one attempt ended.
enum Attempt {
    Moved { to: String },
    Failed { reason: String },
}

/// Moves every planned VM; one row per VM, in the order of `moves`.
/// `under_way` counts the migrations the census found running until they take their own slots here.
pub async fn migrate_all(
    run: Arc<RunContext>,
    host: String,
    moves: Vec<PlannedMove>,
    under_way: Option<Arc<UnderWay>>,
) -> Vec<VmMove> {
    let limits = &run.credentials.workflow.limits;
    let poll = Duration::from_millis(run.credentials.workflow.drain.poll_interval_ms.max(1));
    let per_host = MigrationSlots::new(limits.live_migrations_per_host);
    let aborted = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(HostProgress {
        run: run.clone(),
        host: host.clone(),
        left: AtomicUsize::new(moves.len()),
        moving: Mutex::default(),
    });
    let mut tasks = tokio::task::JoinSet::new();
    // Migrations already under way go first: they hold slots in reality too.
    let mut moves: Vec<(usize, PlannedMove)> = moves.into_iter().enumerate().collect();
    moves.sort_by_key(|(_, planned)| planned.resume.is_none());
    for (index, planned) in moves {
        // Migrations under way take their places at once, before any new one can start.
        let under_way = match &planned.resume {
            Some(_) => Some((per_host.for_running().await, run.migration_slots.for_running().await)),
            None => None,
        };
        let (run, host, per_host, aborted, progress) =
            (run.clone(), host.clone(), per_host.clone(), aborted.clone(), progress.clone());
        tasks.spawn(crate::fence::carried(async move {
            let _slots = match under_way {
                Some(slots) => slots,
                None => (per_host.for_new(poll).await, run.migration_slots.for_new(poll).await),
            };
            let _to_target = to_target_slot(&run, &planned, poll).await;
            let row = if aborted.load(Ordering::SeqCst) {
                not_started(&host, &planned, ABORTED_HOST)
            } else if run.stop.is_stopping() && planned.resume.is_none() {
                // After the first Ctrl-C (or SIGTERM) no new migration starts;
                // those under way are still awaited.
                not_started(&host, &planned, "not started: the operator stopped the run")
            } else {
                move_one(&run, &host, &planned, &progress).await
            };
            if row.outcome == VmOutcome::Failed
                && run.credentials.workflow.drain.on_failure == OnMigrationFailure::AbortHost
            {
                aborted.store(true, Ordering::SeqCst);
            }
            let remaining = progress.finished(&planned.server.name);
            tracing::info!(host = %host, vm = %planned.server.name, outcome = row.outcome.label(), seconds = format!("{:.1}", row.duration.as_secs_f64()), vms_left = remaining, "{}", row.line());
            (index, row)
        }));
    }
    drop(under_way);
    let mut rows = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(row) => rows.push(row),
            Err(err) => tracing::error!(host = %host, %err, "a migration task crashed"),
        }
    }
    rows.sort_by_key(|(index, _)| *index);
    rows.into_iter().map(|(_, row)| row).collect()
}

/// A live migration to the host the drain names (`workflow.drain.target_host`)
/// takes one of that host's `live_migrations_per_host` places across every
/// run on the ledger: runs draining to the same host do not pile onto it.
/// Taken last, so a run waiting for it holds no place another run needs first.
async fn to_target_slot(
    run: &RunContext,
    planned: &PlannedMove,
    poll: Duration,
) -> Option<crate::workflow::leases::LedgerSlot> {
    let target = run.credentials.workflow.drain.target_host.as_deref()?;
    if !matches!(planned.kind, MoveKind::Live) {
        return None;
    }
    let leases = run.leases.as_ref()?;
    let limit = run.credentials.workflow.limits.live_migrations_per_host.max(1);
    let name = format!("{MIGRATIONS_TO}{target}");
    Some(leases.slot(&name, limit, planned.resume.is_some(), poll).await)
}

/// The ledger's per-target limit: this and the target host's name.
pub const MIGRATIONS_TO: &str = "live-migrations-to:";

const ABORTED_HOST: &str = "not started: the host's drain stopped after a failed migration (on_failure: abort_host)";

fn not_started(host: &str, planned: &PlannedMove, reason: &str) -> VmMove {
    VmMove {
        id: planned.server.id.clone(),
        name: planned.server.name.clone(),
        project: project(&planned.server),
        kind: planned.kind.label().into(),
        outcome: VmOutcome::Blocked,
        from: host.to_owned(),
        to: None,
        reason: Some(reason.into()),
        duration: Duration::ZERO,
        guest_check: None,
    }
}

/// The watch on one live-migrated guest whose agent answered before: it
/// must keep answering (on the source while the migration runs, on the
/// destination after it), never silent for longer than `timeout`.
struct GuestWatch {
    shell: Arc<dyn RemoteShell>,
    timeout: Duration,
    /// What was seen, for the VM's row and the ticket.
    notes: Mutex<Vec<String>>,
}

impl GuestWatch {
    fn note(&self, text: String) {
        self.notes.lock().unwrap_or_else(|poison| poison.into_inner()).push(text);
    }

    async fn ping(&self, host: &str, server_id: &str) -> AgentState {
        match Domains::new(self.shell.clone(), host).ping(server_id).await {
            Ok(state) => state,
            Err(err) => AgentState::NotResponding(err.to_string()),
        }
    }
}

/// Before a live migration: whether the guest agent answers. A watch only
/// for a guest that does (one without an agent cannot be checked).
async fn guest_watch(run: &RunContext, host: &str, planned: &PlannedMove) -> (Option<GuestWatch>, Option<String>) {
    let settings = &run.credentials.workflow.drain;
    if planned.kind != MoveKind::Live || settings.guest_check == GuestCheck::None {
        return (None, None);
    }
    let Ok(shell) = run.shell() else { return (None, Some("not checked: no ssh section".into())) };
    let watch = GuestWatch {
        shell: shell.clone(),
        timeout: Duration::from_secs(settings.guest_timeout_secs.max(1)),
        notes: Mutex::default(),
    };
    match watch.ping(host, &planned.server.id).await {
        AgentState::Answers => {
            watch.note("agent answered before".into());
            (Some(watch), None)
        }
        other => (None, Some(format!("not watched: before the migration the agent {other}"))),
    }
}

/// One VM, with the retry the settings allow.
async fn move_one(run: &RunContext, host: &str, planned: &PlannedMove, progress: &HostProgress) -> VmMove {
    let started = Instant::now();
    let settings = &run.credentials.workflow.drain;
    let mut row = VmMove {
        id: planned.server.id.clone(),
        name: planned.server.name.clone(),
        project: project(&planned.server),
        kind: planned.kind.label().into(),
        outcome: VmOutcome::Failed,
        from: host.to_owned(),
        to: None,
        reason: None,
        duration: Duration::ZERO,
        guest_check: None,
    };
    let Ok(nova) = run.nova() else {
        row.reason = Some("the openstack section is missing".into());
        return row;
    };
    let (watch, unwatched) = guest_watch(run, host, planned).await;
    let watch = watch.as_ref();
    let known = Some(planned.known_migrations.clone());
    let mut ended = attempt(nova, settings, host, planned, planned.resume.clone(), known, progress, watch).await;
    if let (Attempt::Failed { reason }, OnMigrationFailure::RetryOnce, false) =
        (&ended, settings.on_failure, run.stop.is_stopping())
    {
        tracing::warn!(host, vm = %planned.server.name, %reason, "migration failed; trying once more");
        let first = reason.clone();
        ended = match attempt(nova, settings, host, planned, None, None, progress, watch).await {
            Attempt::Failed { reason } => Attempt::Failed { reason: format!("{first}; the retry: {reason}") },
            Attempt::Moved { to } => {
                row.reason = Some(format!("moved on the second attempt; the first: {first}"));
                Attempt::Moved { to }
            }
        };
    }
    match ended {
        Attempt::Moved { to } => {
            // The scheduler only avoids disabled hosts: say so when it chose one this campaign will drain.
            if run.run_hosts.iter().any(|other| super::is_named(other.as_str(), &to)) {
                let note = format!("landed on {to}, a host of this run whose nova-compute is still enabled");
                row.reason = Some(match row.reason.take() {
                    Some(earlier) => format!("{earlier}; {note}"),
                    None => note,
                });
            }
            row.outcome = VmOutcome::Moved;
            row.to = Some(to);
        }
        Attempt::Failed { reason } => row.reason = Some(reason),
    }
    row.guest_check = match watch {
        Some(watch) => Some(watch.notes.lock().unwrap_or_else(|poison| poison.into_inner()).join(", ")),
        None => unwatched,
    };
    row.duration = started.elapsed();
    row
}

/// Starts (or picks up) one migration and follows it until it is done,
/// failed, or out of time; with a guest watch, a guest silent for longer
/// than its timeout mid-migration has its live migration aborted.
#[allow(clippy::too_many_arguments)]
async fn attempt(
    nova: &NovaClient,
    settings: &DrainSettings,
    host: &str,
    planned: &PlannedMove,
    resume: Option<Migration>,
    known: Option<HashSet<String>>,
    progress: &HostProgress,
    watch: Option<&GuestWatch>,
) -> Attempt {
    let server = &planned.server;
    let (_, ram_mb) = super::size(server);
    let timeout = settings.migration_timeout(ram_mb);
    let started = Instant::now();
    let name = server.name.as_str();

    // The records that existed before: the new one is the one not among them.
    let known: HashSet<String> = match (&resume, known) {
        (Some(_), _) => HashSet::new(),
        (None, Some(known)) => known,
        (None, None) => match nova.migrations_of_server(&server.id).await {
            Ok(records) => records.into_iter().map(|m| m.id).collect(),
            Err(err) => return Attempt::Failed { reason: format!("could not read its migrations: {err}") },
        },
    };
    let wanted_id = resume.as_ref().map(|m| m.id.clone());
    if resume.is_none() {
        let started = match planned.kind {
            MoveKind::Live => nova.live_migrate(&server.id, settings.target_host.as_deref()).await,
            MoveKind::Cold => nova.cold_migrate(&server.id).await,
        };
        if let Err(err) = started {
            return Attempt::Failed { reason: format!("Nova refused the {} migration: {err}", planned.kind.label()) };
        }
        tracing::info!(host, vm = name, kind = planned.kind.label(), "migration started");
    } else {
        tracing::info!(host, vm = name, migration = ?wanted_id, "migration of an earlier run in progress: awaiting it");
    }

    let mut poll = tokio::time::interval(Duration::from_millis(settings.poll_interval_ms.max(1)));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    poll.tick().await;
    let mut confirmed = false;
    let mut last_status = String::new();
    let mut last_seen: Option<(Migration, Server)> = None;
    let mut silent_since: Option<(Instant, String)> = None;
    // Nova not answering (its API restarting, or down): kept for the reason if time runs out.
    let mut unreadable_since: Option<(Instant, String)> = None;
    loop {
        poll.tick().await;
        let elapsed = started.elapsed();
        let now = match tokio::join!(nova.server(&server.id), nova.migrations_of_server(&server.id)) {
            (Ok(now), Ok(records)) => {
                unreadable_since = None;
                let record = records.into_iter().find(|m| match &wanted_id {
                    Some(id) => m.id == *id,
                    None => !known.contains(&m.id) && m.source_compute.as_deref() == Some(&planned.nova_host),
                });
                record.map(|record| (record, now))
            }
            (Err(err), _) | (_, Err(err)) => {
                tracing::warn!(host, vm = name, %err, "could not read the migration's state; trying again");
                match &mut unreadable_since {
                    Some((_, last)) => *last = err.to_string(),
                    None => unreadable_since = Some((Instant::now(), err.to_string())),
                }
                None
            }
        };
        if let Some((record, now)) = now {
            if record.status != last_status {
                tracing::info!(host, vm = name, migration = %record.id, status = %record.status, server_status = %now.status, elapsed = format!("{:.1}s", elapsed.as_secs_f64()), "migration progress");
                last_status = record.status.clone();
            }
            progress.status(name, &record.status);
            if FAILED.contains(&record.status.as_str()) {
                return Attempt::Failed { reason: describe(&record, &now, "ended in") };
            }
            let moved = now.host.as_deref().is_some_and(|now_host| now_host != planned.nova_host);
            let settled = match planned.kind {
                // A live migration keeps the server's state: running, or paused.
                MoveKind::Live => match planned.server.status.as_str() {
                    "ACTIVE" | "PAUSED" => now.status == planned.server.status,
                    _ => now.status == "ACTIVE" || now.status == "PAUSED",
                },
                MoveKind::Cold => ["SHUTOFF", "ACTIVE", "PAUSED", "SUSPENDED"].contains(&now.status.as_str()),
            };
            let completed = ["completed", "confirmed"].contains(&record.status.as_str());
            if completed && moved && settled && now.task_state.is_none() {
                let to = now.host.clone().unwrap_or_default();
                if let Some(watch) = watch {
                    let on = now.hypervisor_hostname.clone().unwrap_or_else(|| to.clone());
                    if let Err(reason) = answers_again(watch, &on, &server.id, settings).await {
                        return Attempt::Failed { reason: format!("moved to {to}, but {reason}") };
                    }
                }
                return Attempt::Moved { to };
            }
            // Mid-migration the guest runs on the source: it must keep answering.
            if let Some(watch) = watch.filter(|_| !completed && planned.kind == MoveKind::Live) {
                match watch.ping(host, &server.id).await {
                    AgentState::Answers => {
                        if silent_since.take().is_some() {
                            watch.note("answered again during the migration".into());
                        }
                    }
                    other => {
                        let (since, _) = silent_since.get_or_insert_with(|| (Instant::now(), other.to_string()));
                        let silent = since.elapsed();
                        if silent > watch.timeout && record.status == "running" {
                            let secs = watch.timeout.as_secs();
                            watch.note(format!("silent for over {secs} s during the migration"));
                            let mut reason = format!(
                                "the guest agent stopped answering during the live migration (silent for over {secs} s: {other})"
                            );
                            match nova.abort_live_migration(&server.id, &record.id).await {
                                Ok(()) => {
                                    reason.push_str(&format!("; live migration {} aborted through Nova", record.id))
                                }
                                Err(err) => {
                                    reason.push_str(&format!("; aborting live migration {} failed: {err}", record.id))
                                }
                            }
                            return Attempt::Failed { reason };
                        }
                    }
                }
            }
            // A cold migration waits in VERIFY_RESIZE for its confirmation.
            if planned.kind == MoveKind::Cold
                && record.status == "finished"
                && now.status == "VERIFY_RESIZE"
                && !confirmed
            {
                match nova.confirm_migration(&server.id).await {
                    Ok(()) => confirmed = true,
                    Err(err) => {
                        tracing::warn!(host, vm = name, %err, "could not confirm the cold migration; trying again")
                    }
                }
            }
            last_seen = Some((record, now));
        }
        if elapsed >= timeout {
            let mut reason = timed_out(nova, server, timeout, last_seen).await;
            if let Some((since, err)) = unreadable_since {
                let secs = since.elapsed().as_secs_f64();
                reason.push_str(&format!("; Nova has not told the migration's state for the last {secs:.0} s: {err}"));
            }
            return Attempt::Failed { reason };
        }
    }
}

/// After a live migration, the guest must answer on its new host within the
/// watch's timeout.
async fn answers_again(
    watch: &GuestWatch,
    host: &str,
    server_id: &str,
    settings: &DrainSettings,
) -> Result<(), String> {
    let started = Instant::now();
    let pause = Duration::from_millis(settings.poll_interval_ms.clamp(1, 1000));
    loop {
        match watch.ping(host, server_id).await {
            AgentState::Answers => {
                watch.note(format!("answered on {host} after"));
                return Ok(());
            }
            other if started.elapsed() >= watch.timeout => {
                let secs = watch.timeout.as_secs();
                watch.note(format!("silent on {host} after"));
                return Err(format!("its guest agent did not answer there within {secs} s: {other}"));
            }
            _ => tokio::time::sleep(pause).await,
        }
    }
}

/// The reason of a migration that ran out of time; a live migration still
/// running is aborted so the VM stays usable where it is.
async fn timed_out(
    nova: &NovaClient,
    server: &Server,
    timeout: Duration,
    last_seen: Option<(Migration, Server)>,
) -> String {
    let secs = timeout.as_secs_f64();
    let Some((record, now)) = last_seen else {
        return format!("no migration record appeared within {secs:.1} s");
    };
    let mut reason = describe(&record, &now, &format!("did not finish within {secs:.1} s; it was"));
    if ["completed", "confirmed"].contains(&record.status.as_str()) {
        reason.push_str(" (Nova says completed, but the server has not settled on another host)");
    } else if record.migration_type.as_deref() == Some("live-migration") && record.status == "running" {
        match nova.abort_live_migration(&server.id, &record.id).await {
            Ok(()) => reason.push_str("; the live migration was aborted"),
            Err(err) => reason.push_str(&format!("; aborting it failed: {err}")),
        }
    }
    reason
}

fn describe(record: &Migration, now: &Server, verb: &str) -> String {
    format!(
        "migration {} ({} → {}) {verb} {}; the server is {} on {}",
        record.id,
        record.source_compute.as_deref().unwrap_or("?"),
        record.dest_compute.as_deref().unwrap_or("?"),
        record.status,
        now.status,
        now.host.as_deref().unwrap_or("?")
    )
}
