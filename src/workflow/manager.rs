//! The MigrationManager: drives every host of the list through one step, a
//! bounded number at a time; one host's failure never stops the others.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::Semaphore;

use crate::config::{Credentials, HostName, HypervisorList};
use crate::error::{Error, ExitCode, InputProblem, Result};
use crate::journal::{Journal, LeaseHolder, LeaseOutcome, NewRun, StepOutcome};
use crate::maintenance_window::MaintenanceWindow;

use super::context::{HostContext, RunContext, Services};
use super::host_run::{run_host, Progress, StopSignal};
use super::leases::RunLeases;
use super::report::{HostOutcome, HostReport};
use super::steps::{self, StepPlan};
use super::Step;

/// What the operator asked for, free of command-line types.
#[derive(Clone, Debug)]
pub struct RunSettings {
    pub step: Step,
    /// Hosts at once (1: one after another, as the original did by default).
    pub parallel: usize,
    /// Only these hosts of the list (all when empty).
    pub only: Vec<HostName>,
    pub dry_run: bool,
    /// Passes the step gate (the previous step has not succeeded).
    pub force: bool,
    /// `--redo`: `Some("")` runs the step on hosts already past it;
    /// `Some(action)` also repeats that once-per-campaign action.
    pub redo: Option<String>,
    /// `--claim N`: only up to N hosts of the list that the step may run on
    /// and no other run holds, taken in list order.
    pub claim: Option<usize>,
    pub journal: PathBuf,
}

#[derive(Debug, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub step: Step,
    pub dry_run: bool,
    pub journal: PathBuf,
    pub hosts: Vec<HostReport>,
}

impl RunSummary {
    pub fn exit_code(&self) -> ExitCode {
        if self.hosts.iter().all(|host| host.outcome.is_success()) {
            ExitCode::Success
        } else {
            ExitCode::HostFailed
        }
    }
}

/// The hosts the run works on, in file order, checking `--only`.
pub fn select_hosts(list: &HypervisorList, only: &[HostName]) -> Result<Vec<(HostName, crate::config::JiraKey)>> {
    let unknown: Vec<_> = only.iter().filter(|host| !list.hypervisors.iter().any(|hv| &hv.host == *host)).collect();
    if !unknown.is_empty() {
        let names: Vec<_> = unknown.iter().map(ToString::to_string).collect();
        return Err(Error::input(InputProblem::new(
            &list.path,
            format!("--only names hosts that are not in the list: {}", names.join(", ")),
        )));
    }
    Ok(list
        .hypervisors
        .iter()
        .filter(|hv| only.is_empty() || only.contains(&hv.host))
        .map(|hv| (hv.host.clone(), hv.key.clone().expect("keys are required to run a step")))
        .collect())
}

/// A run id that sorts by time: `20261121T051300Z-4f2a`.
pub fn new_run_id() -> String {
    let stamp = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ");
    // The sub-second part tells apart runs started in the same second.
    let nanos = jiff::Timestamp::now().subsec_nanosecond();
    format!("{stamp}-{:04x}", (nanos as u32 ^ std::process::id()) & 0xffff)
}

/// Runs `settings.step` over the selected hosts.
pub async fn run(
    settings: &RunSettings,
    hypervisors: &HypervisorList,
    credentials: Arc<Credentials>,
    services: Arc<Services>,
    progress: Arc<dyn Progress>,
    stop: StopSignal,
) -> Result<RunSummary> {
    let hosts = select_hosts(hypervisors, &settings.only)?;
    let initials = credentials.general.as_ref().map(|general| general.initials.clone()).ok_or_else(|| {
        Error::Refused("the credentials file has no general.initials; they mark every change the tool makes".into())
    })?;
    let plan = steps::plan(settings.step, &credentials.workflow)
        .map(Arc::new)
        .ok_or_else(|| Error::Usage(format!("step {} is not automated in this version", settings.step)))?;
    check_required_services(&plan, &credentials, settings.dry_run)?;
    if let Some(nova) = &services.nova {
        nova.set_line_overrides(hypervisors);
    }
    if settings.step != Step::Noops {
        preflight(&plan, &credentials).await?;
    }

    let journal = if settings.dry_run {
        Journal::open_read_only(&settings.journal)?
    } else {
        Some(Journal::open(&settings.journal)?)
    };
    let journal = journal.map(Arc::new);
    let run_id = new_run_id();
    if let (Some(journal), false) = (&journal, settings.dry_run) {
        journal.start_run(&NewRun {
            id: &run_id,
            step: settings.step.name(),
            operator: &initials,
            hypervisors_file: &hypervisors.path.display().to_string(),
            dry_run: false,
            forced: settings.force,
        })?;
    }
    // Every host is leased before the run works on it (a dry run changes nothing and holds nothing).
    let leases = match journal.as_ref().filter(|_| !settings.dry_run) {
        Some(journal) => Some(RunLeases::start(
            journal.clone(),
            LeaseHolder::this_process(&run_id, settings.step.name()),
            hosts.len(),
            credentials.workflow.ledger.lease_duration(),
        )?),
        None => None,
    };
    let renewing = leases.as_ref().map(RunLeases::keep_renewed);
    let hosts = match (settings.claim, &journal, &leases) {
        (Some(wanted), Some(journal), Some(leases)) => {
            let claimed = claim(journal, leases, &hosts, wanted, settings)?;
            tracing::info!(claimed = claimed.len(), wanted, "hosts claimed");
            hosts.into_iter().filter(|(host, _)| claimed.iter().any(|name| name == host.as_str())).collect()
        }
        _ => hosts,
    };
    // Live migrations at once are limited across every run on the ledger, not per process.
    let migration_slots =
        super::drain::MigrationSlots::shared(credentials.workflow.limits.live_migrations_global, leases.clone());
    let aquilon_commands = credentials.workflow.limits.aquilon_commands.max(1);
    let run = Arc::new(RunContext {
        run_id,
        step: settings.step,
        dry_run: settings.dry_run,
        force: settings.force,
        redo: settings.redo.clone(),
        stop: stop.clone(),
        initials,
        window: MaintenanceWindow::starting_at(jiff::Timestamp::now(), credentials.workflow.silence.window_days),
        credentials,
        services,
        run_hosts: hosts.iter().map(|(host, _)| host.clone()).collect(),
        migration_slots,
        capacity: Default::default(),
        progress: Some(progress.clone()),
        batches: Arc::new(super::batch::Batches::new(
            hosts.iter().map(|(host, _)| host.to_string()),
            settings.parallel,
        )),
        journal: journal.clone(),
        aquilon_slots: Arc::new(Semaphore::new(aquilon_commands)),
        services_checked: Default::default(),
        leases: leases.clone(),
    });
    tracing::info!(run = %run.run_id, step = %settings.step, hosts = hosts.len(), parallel = settings.parallel, dry_run = settings.dry_run, "run starts");

    let mut tasks = tokio::task::JoinSet::new();
    let mut spawned = std::collections::HashMap::new();
    for (index, (host, key)) in hosts.into_iter().enumerate() {
        let (plan, journal, run, stop, progress) =
            (plan.clone(), journal.clone(), run.clone(), stop.clone(), progress.clone());
        let (name, ticket) = (host.clone(), key.clone());
        let task = tasks.spawn(async move {
            let name = host.to_string();
            // Finished even if the host's task panics, so no batch waits for it.
            let _finished = FinishedGuard { run: run.clone(), host: name.clone() };
            // One of the `--parallel` slots (given back while the host waits at a batch point).
            run.batches.start_host(&name).await;
            let report = run_leased(host, key, &plan, journal.as_deref(), &run, &stop, progress.as_ref()).await;
            // The host's work is done: its master connection goes now, not after every host.
            if let Some(shell) = &run.services.shell {
                shell.close(&crate::ssh::Target::root(name.as_str())).await;
            }
            (index, report)
        });
        spawned.insert(task.id(), (index, name, ticket));
    }
    let mut reports = Vec::new();
    while let Some(joined) = tasks.join_next_with_id().await {
        match joined {
            Ok((_, report)) => reports.push(report),
            // A panic fails that host only; the others go on.
            Err(err) => {
                let (index, host, key) = spawned.remove(&err.id()).expect("every task is known");
                let reason = format!("the host's task crashed: {}", panic_message(err));
                tracing::error!(host = %host, %reason);
                reports.push((index, HostReport::not_run(&host, &key, settings.step, HostOutcome::Failed, reason)));
            }
        }
    }
    reports.sort_by_key(|(index, _)| *index);
    let reports: Vec<HostReport> = reports.into_iter().map(|(_, report)| report).collect();

    if let Some(renewing) = renewing {
        renewing.abort();
    }
    if let Some(leases) = &leases {
        leases.end();
    }
    if let (Some(journal), false) = (&journal, settings.dry_run) {
        let outcome = if reports.iter().all(|r| r.outcome.is_success()) { "succeeded" } else { "some hosts failed" };
        journal.finish_run(&run.run_id, outcome)?;
    }
    Ok(RunSummary {
        run_id: run.run_id.clone(),
        step: settings.step,
        dry_run: settings.dry_run,
        journal: settings.journal.clone(),
        hosts: reports,
    })
}

/// Tells the run's batches a host is done, however its task ended.
struct FinishedGuard {
    run: Arc<RunContext>,
    host: String,
}

impl Drop for FinishedGuard {
    fn drop(&mut self) {
        self.run.batches.host_finished(&self.host);
    }
}

fn panic_message(err: tokio::task::JoinError) -> String {
    if !err.is_panic() {
        return err.to_string();
    }
    let payload = err.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

/// One host, leased for the run while it works on it: a host another live
/// run holds is left alone (blocked, nothing journaled or posted).
async fn run_leased(
    host: HostName,
    key: crate::config::JiraKey,
    plan: &StepPlan,
    journal: Option<&Journal>,
    run: &Arc<RunContext>,
    stop: &StopSignal,
    progress: &dyn Progress,
) -> HostReport {
    let Some(leases) = &run.leases else {
        return run_one(host, key, plan, journal, run, stop, progress).await;
    };
    match leases.acquire(host.as_str()) {
        Ok(LeaseOutcome::Acquired { .. }) => {}
        Ok(LeaseOutcome::Held(lease)) => {
            let report = HostReport::not_run(&host, &key, plan.step, HostOutcome::Blocked, lease.held_reason());
            progress.host_finished(&report);
            return report;
        }
        Err(err) => return HostReport::not_run(&host, &key, plan.step, HostOutcome::Failed, err.to_string()),
    }
    // Given back however the host's task ends (a panic included).
    let _release = ReleaseGuard { leases: leases.clone(), host: host.to_string() };
    let fence = leases.fence(host.as_str());
    crate::fence::within(fence, run_one(host, key, plan, journal, run, stop, progress)).await
}

struct ReleaseGuard {
    leases: Arc<RunLeases>,
    host: String,
}

impl Drop for ReleaseGuard {
    fn drop(&mut self) {
        self.leases.release(&self.host);
    }
}

/// `--claim N`: leases, in one transaction, up to N hosts of the list in
/// order that nobody holds and that the step may run on (not past it, the
/// previous step succeeded unless forced, the step not done yet).
fn claim(
    journal: &Journal,
    leases: &RunLeases,
    hosts: &[(HostName, crate::config::JiraKey)],
    wanted: usize,
    settings: &RunSettings,
) -> Result<Vec<String>> {
    let names: Vec<String> = hosts.iter().map(|(host, _)| host.to_string()).collect();
    let step = settings.step;
    let eligible = |conn: &crate::journal::db::Conn, host: &str| -> crate::journal::db::DbResult<bool> {
        let position = crate::journal::position_in(conn, host)?.and_then(|position| position.step.parse::<Step>().ok());
        if step != Step::Noops && position.is_some_and(|reached| reached == step || step.is_before(reached)) {
            return Ok(false);
        }
        match step.previous() {
            Some(previous) if !settings.force => crate::journal::step_succeeded_in(conn, host, previous.name()),
            _ => Ok(true),
        }
    };
    let asked = std::time::Instant::now();
    let claimed = journal.claim_leases(&names, wanted, leases.holder(), leases.duration(), &eligible)?;
    leases.claimed(&claimed, asked);
    Ok(claimed)
}

/// One host: the campaign position and the step-order gate, then the step.
async fn run_one(
    host: HostName,
    key: crate::config::JiraKey,
    plan: &StepPlan,
    journal: Option<&Journal>,
    run: &Arc<RunContext>,
    stop: &StopSignal,
    progress: &dyn Progress,
) -> HostReport {
    let position = match journal {
        Some(journal) => match journal.position(host.as_str()) {
            Ok(position) => position,
            Err(err) => return HostReport::not_run(&host, &key, plan.step, HostOutcome::Failed, err.to_string()),
        },
        None => None,
    };
    // A step earlier than the host's position would take it backwards
    // (re-enable a drained host, PXE-switch an adopted one): refused,
    // unrecorded and unposted, unless the operator asked for it.
    let past = position.as_ref().filter(|position| {
        position.step.parse::<Step>().is_ok_and(|reached| plan.step != Step::Noops && plan.step.is_before(reached))
    });
    let going_back = match (past, &run.redo) {
        (Some(position), None) => {
            let reason = format!(
                "already past: {} succeeded on {} (run {}); --redo with --only goes back",
                position.step, position.at, position.run_id
            );
            return HostReport::not_run(&host, &key, plan.step, HostOutcome::AlreadyPast, reason);
        }
        (Some(_), Some(_)) => true,
        (None, _) => false,
    };
    let mut forced = false;
    if let Some(previous) = plan.step.previous().filter(|_| !going_back) {
        let succeeded = match journal {
            Some(journal) => journal.step_succeeded(host.as_str(), previous.name()),
            None => Ok(false),
        };
        match succeeded {
            Ok(true) => {}
            Ok(false) if run.force => forced = true,
            Ok(false) => {
                let reason = format!("{previous} has not succeeded on this host (the journal says); --force overrides");
                if let Some(journal) = journal.filter(|_| !run.dry_run) {
                    if let Ok(id) = journal.start_host_step(&run.run_id, host.as_str(), plan.step.name(), false) {
                        if let Err(err) = journal.finish_host_step(id, StepOutcome::Blocked, Some(&reason)) {
                            tracing::error!(%err, "could not journal the blocked step");
                        }
                    }
                }
                return HostReport::not_run(&host, &key, plan.step, HostOutcome::Blocked, reason);
            }
            Err(err) => return HostReport::not_run(&host, &key, plan.step, HostOutcome::Failed, err.to_string()),
        }
    }
    if stop.is_stopping() {
        return HostReport::not_run(
            &host,
            &key,
            plan.step,
            HostOutcome::Interrupted,
            "stopped before it started".into(),
        );
    }
    let context = HostContext::new(host, key, run.clone());
    let gate = super::host_run::Gate { forced, redo: run.redo.clone() };
    run_host(context, plan, journal.filter(|_| !run.dry_run), stop, progress, gate).await
}

/// The credentials of every service the step may need are tried before any
/// host starts: a refused token stops the run here, with nothing changed,
/// not half-way through the hosts.
async fn preflight(plan: &StepPlan, credentials: &Credentials) -> Result<()> {
    let failed: Vec<String> = crate::reach::check_all(credentials)
        .await
        .into_iter()
        .filter(|check| !check.ok && (check.service == "jira" || plan.services.contains(&check.service)))
        .map(|check| format!("{}: {}", check.service, check.detail))
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    Err(Error::Refused(format!("step {} cannot start; nothing was changed: {}", plan.step, failed.join("; "))))
}

fn check_required_services(plan: &StepPlan, credentials: &Credentials, dry_run: bool) -> Result<()> {
    let configured = credentials.configured_services();
    let mut needed: Vec<&str> = plan.services.to_vec();
    if !dry_run && !needed.contains(&"jira") {
        // The audit trail goes to Jira.
        needed.push("jira");
    }
    let missing: Vec<&str> = needed
        .into_iter()
        .filter(|service| !configured.iter().any(|(name, present)| name == service && *present))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::Refused(format!(
            "step {} needs these sections in the credentials file: {}",
            plan.step,
            missing.join(", ")
        )))
    }
}
