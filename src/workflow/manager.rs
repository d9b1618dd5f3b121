//! The MigrationManager: drives every host of the list through one step, a
//! bounded number at a time; one host's failure never stops the others.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::Semaphore;

use crate::config::{Credentials, HostName, HypervisorList};
use crate::error::{Error, ExitCode, InputProblem, Result};
use crate::journal::{Journal, NewRun, StepOutcome};
use crate::maintenance_window::MaintenanceWindow;

use super::context::{HostContext, RunContext, Services};
use super::host_run::{run_host, Progress, StopSignal};
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
    pub force: bool,
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

    let journal = if settings.dry_run {
        Journal::open_read_only(&settings.journal)?
    } else {
        Some(Journal::open(&settings.journal)?)
    };
    let journal = journal.map(Arc::new);
    let migration_slots = super::drain::MigrationSlots::new(credentials.workflow.limits.live_migrations_global);
    let aquilon_commands = credentials.workflow.limits.aquilon_commands.max(1);
    let run = Arc::new(RunContext {
        run_id: new_run_id(),
        step: settings.step,
        dry_run: settings.dry_run,
        force: settings.force,
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
    });
    if let (Some(journal), false) = (&journal, settings.dry_run) {
        journal.start_run(&NewRun {
            id: &run.run_id,
            step: settings.step.name(),
            operator: &run.initials,
            hypervisors_file: &hypervisors.path.display().to_string(),
            dry_run: false,
            forced: settings.force,
        })?;
    }
    tracing::info!(run = %run.run_id, step = %settings.step, hosts = hosts.len(), parallel = settings.parallel, dry_run = settings.dry_run, "run starts");

    let mut tasks = tokio::task::JoinSet::new();
    for (index, (host, key)) in hosts.into_iter().enumerate() {
        let (plan, journal, run, stop, progress) =
            (plan.clone(), journal.clone(), run.clone(), stop.clone(), progress.clone());
        tasks.spawn(async move {
            let name = host.to_string();
            // One of the `--parallel` slots (given back while the host waits at a batch point).
            run.batches.start_host(&name).await;
            let report = run_one(host, key, &plan, journal.as_deref(), &run, &stop, progress.as_ref()).await;
            run.batches.host_finished(&name);
            // The host's work is done: its master connection goes now, not after every host.
            if let Some(shell) = &run.services.shell {
                shell.close(&crate::ssh::Target::root(name.as_str())).await;
            }
            (index, report)
        });
    }
    let mut reports = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(report) => reports.push(report),
            Err(err) => return Err(Error::Refused(format!("a host task crashed: {err}"))),
        }
    }
    reports.sort_by_key(|(index, _)| *index);
    let reports: Vec<HostReport> = reports.into_iter().map(|(_, report)| report).collect();

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

/// One host: the step-order gate, then the step.
async fn run_one(
    host: HostName,
    key: crate::config::JiraKey,
    plan: &StepPlan,
    journal: Option<&Journal>,
    run: &Arc<RunContext>,
    stop: &StopSignal,
    progress: &dyn Progress,
) -> HostReport {
    let mut forced = false;
    if let Some(previous) = plan.step.previous() {
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
                        let _ = journal.finish_host_step(id, StepOutcome::Blocked, Some(&reason));
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
    run_host(context, plan, journal.filter(|_| !run.dry_run), stop, progress, forced).await
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
