//! One host through one step (the HypervisorManager of the original): each
//! action observed, decided, acted on and verified in order, the journal
//! written before and after every change, and the Jira trail at the end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

use crate::journal::{ActionOutcome, ActionResult, Journal, StepOutcome};

use super::action::{Action, Decision, Outcome};
use super::context::HostContext;
use super::report::{ActionReport, HostOutcome, HostReport};
use super::steps::StepPlan;
use super::trail::Trail;

/// Tells running hosts to stop before their next action (the first Ctrl-C).
#[derive(Clone, Default)]
pub struct StopSignal(Arc<AtomicBool>);

impl StopSignal {
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_stopping(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Where a host's progress is shown while it runs.
pub trait Progress: Send + Sync {
    fn action_started(&self, host: &str, action: &str);
    fn host_finished(&self, report: &HostReport);
    /// Where a long action stands (the drain: VMs left, each migration's status and time).
    fn action_detail(&self, _host: &str, _detail: &str) {}
}

/// How the host passed the step gate, said on the ticket: `--force` (the
/// previous step had not succeeded) or `--redo` (it was already past the step).
#[derive(Clone, Debug, Default)]
pub struct Gate {
    pub forced: bool,
    pub redo: Option<String>,
}

/// Runs the step on the host. `journal` is `None` in a dry run, which only
/// observes.
pub async fn run_host(
    host: HostContext,
    plan: &StepPlan,
    journal: Option<&Journal>,
    stop: &StopSignal,
    progress: &dyn Progress,
    gate: Gate,
) -> HostReport {
    // Every log line of this host carries its name and step.
    let span = tracing::info_span!("host", host = %host.host, step = %plan.step);
    run_host_in_span(host, plan, journal, stop, progress, gate).instrument(span).await
}

async fn run_host_in_span(
    mut host: HostContext,
    plan: &StepPlan,
    journal: Option<&Journal>,
    stop: &StopSignal,
    progress: &dyn Progress,
    gate: Gate,
) -> HostReport {
    let started = Instant::now();
    let run = host.run.clone();
    let mut report = HostReport {
        host: host.host.to_string(),
        ticket: host.key.to_string(),
        step: plan.step,
        outcome: if run.dry_run { HostOutcome::Planned } else { HostOutcome::Succeeded },
        reason: None,
        forced: gate.forced,
        redo: gate.redo.clone(),
        earlier_changes: Vec::new(),
        actions: Vec::new(),
        outputs: Vec::new(),
        vms: Vec::new(),
        duration: Default::default(),
        jira: None,
    };
    let fail = |mut report: HostReport, err: crate::error::Error| {
        report.outcome = HostOutcome::Failed;
        report.reason = Some(err.to_string());
        report
    };
    let (host_step, earlier) = match journal {
        Some(journal) => {
            // The actions ended and only the audit trail failed: post just that.
            match journal.pending_trail(host.host.as_str(), plan.step.name()) {
                Ok(Some(pending)) => return retry_trail(&host, plan, journal, pending, report, progress).await,
                Ok(None) => {}
                Err(err) => return fail(report, err),
            }
            let id = match journal.start_host_step(&run.run_id, host.host.as_str(), plan.step.name(), gate.forced) {
                Ok(id) => id,
                Err(err) => return fail(report, err),
            };
            if let Some(redo) = &gate.redo {
                if let Err(err) = journal.mark_redo(id, redo) {
                    return fail(report, err);
                }
            }
            // What earlier runs changed and never put on the ticket (killed, or their trail failed).
            let earlier = match journal.unreported_changes(host.host.as_str(), plan.step.name(), &run.run_id) {
                Ok(earlier) => earlier,
                Err(err) => return fail(report, err),
            };
            for step in &earlier {
                report.earlier_changes.extend(
                    step.changes.iter().map(|change| format!("run {} ({}): {change}", step.run_id, step.started_at)),
                );
            }
            (Some(id), earlier.into_iter().map(|step| step.host_step_id).collect::<Vec<_>>())
        }
        None => (None, Vec::new()),
    };

    for action in &plan.actions {
        if stop.is_stopping() {
            report.outcome = HostOutcome::Interrupted;
            report.reason = Some(format!("stopped by the operator before {}", action.name()));
            break;
        }
        if let Some(lost) = run.leases.as_ref().and_then(|leases| leases.lost(host.host.as_str())) {
            // Another run works on the host now: it reports this run's
            // changes (the step stays open in the journal), this run posts nothing.
            report.outcome = HostOutcome::Interrupted;
            report.reason = Some(format!("stopped before {}: {lost}", action.name()));
            report.duration = started.elapsed();
            progress.host_finished(&report);
            return report;
        }
        progress.action_started(host.host.as_str(), action.name());
        let action_started = Instant::now();
        let (outcome, observed) = reconcile(action.as_ref(), &mut host, journal, host_step).await;
        let end_of_step = match &outcome {
            Outcome::Blocked { reason } => Some((HostOutcome::Blocked, reason.clone())),
            Outcome::Failed { error } => Some((HostOutcome::Failed, error.clone())),
            _ => None,
        };
        tracing::debug!(action = action.name(), outcome = outcome.label(), detail = outcome.detail().unwrap_or(""));
        report.actions.push(ActionReport {
            action: action.name().to_owned(),
            outcome,
            observed,
            duration: action_started.elapsed(),
        });
        if let Some((outcome, reason)) = end_of_step {
            report.outcome = outcome;
            report.reason = Some(format!("{}: {reason}", action.name()));
            break;
        }
    }
    report.outputs = std::mem::take(&mut host.outputs);
    report.vms = std::mem::take(&mut host.facts.vm_moves);
    report.duration = started.elapsed();

    // Checked in the ledger, not only as the renewal last saw it: a run
    // resumed after a stop posts nothing for a host another run took over.
    if let Some(lost) = run.leases.as_ref().and_then(|leases| leases.still_held(host.host.as_str())) {
        // An action that found the lease lost already says so (blocked).
        if report.outcome == HostOutcome::Succeeded {
            report.outcome = HostOutcome::Interrupted;
            report.reason = Some(format!("not reported: {lost}"));
        }
        progress.host_finished(&report);
        return report;
    }
    if let (Some(journal), Some(id)) = (journal, host_step) {
        // The step succeeds only once its trail is on the ticket: the
        // journal is written last, so a failed trail never opens the next step's gate.
        let trail = Trail::of(&host, plan, &report).await;
        // Kept before posting: a run killed between the comment and the
        // journal leaves a trail the next run posts (its marker finds the
        // comment) instead of a step whose changes it would report again.
        let kept = (report.outcome == HostOutcome::Succeeded && trail.is_whole())
            .then(|| serde_json::to_string(&trail).ok())
            .flatten();
        if let Some(kept) = &kept {
            if let Err(err) = journal.set_trail(id, "posting", Some(kept)) {
                tracing::error!(%err, "could not journal the audit trail before posting it");
            }
        }
        match trail.post(&host).await {
            Ok(note) => {
                report.jira = Some(note);
                if let Err(err) = journal.set_trail(id, "posted", None) {
                    // The next run finds the comment by its marker and does not post it again.
                    tracing::error!(%err, "could not journal that the audit trail is posted");
                }
                if let Err(err) = journal.mark_reported(&earlier, &run.run_id) {
                    tracing::error!(%err, "could not journal that the earlier changes are on the ticket");
                }
            }
            Err(note) => {
                // Kept for the next run, which posts only this when the actions all ended well.
                report.jira = Some(note.clone());
                if report.outcome == HostOutcome::Succeeded {
                    report.outcome = HostOutcome::Failed;
                    report.reason = Some(format!("audit trail: {note}"));
                }
                if let Err(err) = journal.set_trail(id, "failed", kept.as_deref()) {
                    tracing::error!(%err, "could not journal the failed audit trail");
                }
            }
        }
        if let Err(err) = journal.finish_host_step(id, report.outcome.into(), report.reason.as_deref()) {
            report.outcome = HostOutcome::Failed;
            report.reason = Some(err.to_string());
        }
    }
    tracing::debug!(outcome = report.outcome.label(), reason = report.reason.as_deref().unwrap_or(""), "step ended");
    progress.host_finished(&report);
    report
}

/// The step's actions all ended well in an earlier run whose audit trail
/// failed: this run posts that trail and nothing else.
async fn retry_trail(
    host: &HostContext,
    plan: &StepPlan,
    journal: &Journal,
    pending: crate::journal::PendingTrail,
    mut report: HostReport,
    progress: &dyn Progress,
) -> HostReport {
    let run = &host.run;
    let result = async {
        let trail: Trail =
            serde_json::from_str(&pending.comment).map_err(|err| format!("the kept trail is unreadable: {err}"))?;
        let id = journal
            .start_host_step(&run.run_id, host.host.as_str(), plan.step.name(), false)
            .map_err(|err| err.to_string())?;
        let posted = trail.post(host).await;
        let (outcome, reason) = match &posted {
            Ok(_) => {
                (StepOutcome::Succeeded, format!("the audit trail of run {} is on the ticket now", pending.run_id))
            }
            Err(note) => (StepOutcome::Failed, format!("audit trail: {note}")),
        };
        if posted.is_ok() {
            journal.set_trail(pending.host_step_id, "posted", None).map_err(|err| err.to_string())?;
            journal.set_trail(id, "posted", None).map_err(|err| err.to_string())?;
            journal.mark_reported(&[pending.host_step_id], &run.run_id).map_err(|err| err.to_string())?;
        }
        journal.finish_host_step(id, outcome, Some(&reason)).map_err(|err| err.to_string())?;
        Ok::<_, String>((posted, reason))
    }
    .await;
    match result {
        Ok((Ok(note), reason)) => {
            report.jira = Some(note);
            report.reason = Some(reason);
        }
        Ok((Err(note), reason)) => {
            report.outcome = HostOutcome::Failed;
            report.jira = Some(note);
            report.reason = Some(reason);
        }
        Err(err) => {
            report.outcome = HostOutcome::Failed;
            report.reason = Some(format!("audit trail: {err}"));
        }
    }
    progress.host_finished(&report);
    report
}

/// Observe, decide, act, verify: one action, journaled.
async fn reconcile(
    action: &dyn Action,
    host: &mut HostContext,
    journal: Option<&Journal>,
    host_step: Option<i64>,
) -> (Outcome, String) {
    let name = action.name();
    // The earlier attempt of this action that did not end well, which the action may resume.
    let earlier = match journal {
        Some(journal) => match journal.unfinished_attempt(host.host.as_str(), host.run.step.name(), name) {
            Ok(earlier) => earlier,
            Err(err) => return (Outcome::Failed { error: err.to_string() }, String::new()),
        },
        None => None,
    };
    host.attempt = super::resume::ActionAttempt { action_id: None, earlier };
    let decision = match action.observe(host).await {
        Ok(decision) => decision,
        Err(err) => {
            let outcome = Outcome::Failed { error: err.0 };
            record_observed(journal, host_step, name, &outcome, "");
            return (outcome, String::new());
        }
    };
    let observed = decision.observed().to_owned();
    let (plan, previous) = match decision {
        Decision::AlreadyDone { .. } => {
            record_observed(journal, host_step, name, &Outcome::Skipped, &observed);
            return (Outcome::Skipped, observed);
        }
        Decision::Recorded { .. } => {
            record_observed(journal, host_step, name, &Outcome::Recorded, &observed);
            return (Outcome::Recorded, observed);
        }
        Decision::Passed { .. } => {
            let outcome = Outcome::Ok { seen: observed.clone() };
            record_observed(journal, host_step, name, &outcome, &observed);
            return (outcome, observed);
        }
        Decision::Blocked { reason, .. } => {
            let outcome = Outcome::Blocked { reason };
            record_observed(journal, host_step, name, &outcome, &observed);
            return (outcome, observed);
        }
        Decision::Do { plan, previous, .. } => (plan, previous),
    };
    let (Some(journal), Some(host_step)) = (journal, host_step) else {
        return (Outcome::WouldDo { plan }, observed);
    };
    // The intent is on disk before anything changes, written only while
    // this run still holds the host's lease (checked in the same transaction).
    let written = match host.run.leases.clone() {
        Some(leases) => {
            let check = leases.check(host.host.as_str());
            let asked = Instant::now();
            match journal.action_intent_leased(&check, host_step, name, &observed, &plan, previous.as_deref()) {
                Ok(Err(lost)) => {
                    leases.found_lost(host.host.as_str(), &lost);
                    return (Outcome::Blocked { reason: lost.to_string() }, observed);
                }
                Ok(Ok(id)) => {
                    leases.confirm(host.host.as_str(), asked);
                    Ok(id)
                }
                Err(err) => Err(err),
            }
        }
        None => journal.action_intent(host_step, name, &observed, &plan, previous.as_deref()),
    };
    let intent = match written {
        Ok(id) => id,
        Err(err) => return (Outcome::Failed { error: err.to_string() }, observed),
    };
    host.attempt.action_id = Some(intent);
    let outcome = match action.act(host).await {
        Ok(change) => match verify(action, host).await {
            Ok(()) => Outcome::Done { change: change.0 },
            Err(error) => Outcome::Failed { error },
        },
        Err(err) => Outcome::Failed { error: err.0 },
    };
    let (state, result) = match &outcome {
        Outcome::Done { change } => (ActionOutcome::Done, ActionResult { change: Some(change), ..Default::default() }),
        Outcome::Failed { error } => {
            (ActionOutcome::Failed, ActionResult { reason: Some(error), ..Default::default() })
        }
        _ => unreachable!("acting ends done or failed"),
    };
    if let Err(err) = journal.action_result(intent, state, &result) {
        return (Outcome::Failed { error: err.to_string() }, observed);
    }
    // Refused by the fence: another run took the host over while this one was stopped.
    let lost = host.run.leases.as_ref().and_then(|leases| leases.lost(host.host.as_str()));
    let outcome = match (outcome, lost) {
        (Outcome::Failed { .. }, Some(lost)) => Outcome::Blocked { reason: lost },
        (outcome, _) => outcome,
    };
    (outcome, observed)
}

async fn verify(action: &dyn Action, host: &mut HostContext) -> Result<(), String> {
    if !action.verify_by_observing() {
        return Ok(());
    }
    match action.observe(host).await {
        Ok(Decision::AlreadyDone { .. } | Decision::Recorded { .. } | Decision::Passed { .. }) => Ok(()),
        Ok(other) => Err(format!("acted, but the change is not visible: {}", other.observed())),
        Err(err) => Err(format!("acted, but could not verify: {err}")),
    }
}

fn record_observed(journal: Option<&Journal>, host_step: Option<i64>, action: &str, outcome: &Outcome, observed: &str) {
    let (Some(journal), Some(host_step)) = (journal, host_step) else { return };
    let state = match outcome {
        Outcome::Skipped => ActionOutcome::Skipped,
        Outcome::Ok { .. } => ActionOutcome::Ok,
        Outcome::Recorded => ActionOutcome::Recorded,
        Outcome::Blocked { .. } => ActionOutcome::Blocked,
        _ => ActionOutcome::Failed,
    };
    if let Err(err) = journal.action_observed(host_step, action, state, observed, outcome.detail()) {
        tracing::error!(action, %err, "could not journal the action");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::config::{Credentials, HostName, JiraKey};
    use crate::maintenance_window::MaintenanceWindow;
    use crate::workflow::action::{ActionError, BoxFuture, Change};
    use crate::workflow::context::{RunContext, Services};
    use crate::workflow::steps::JiraStatuses;
    use crate::workflow::Step;

    /// A switch that is off until acted on; counts how often it acted.
    struct Switch {
        on: Mutex<bool>,
        acts: Mutex<u32>,
        blocked: bool,
        broken: bool,
    }

    impl Switch {
        fn new(on: bool) -> Self {
            Switch { on: Mutex::new(on), acts: Mutex::new(0), blocked: false, broken: false }
        }
    }

    impl Action for Switch {
        fn name(&self) -> &'static str {
            "switch"
        }

        fn observe<'a>(&'a self, _host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
            Box::pin(async move {
                if self.blocked {
                    return Ok(Decision::blocked("jammed", "the switch is jammed"));
                }
                Ok(if *self.on.lock().unwrap() { Decision::done("on") } else { Decision::act("off", "turn it on") })
            })
        }

        fn act<'a>(&'a self, _host: &'a mut HostContext) -> BoxFuture<'a, Result<Change, ActionError>> {
            Box::pin(async move {
                *self.acts.lock().unwrap() += 1;
                if !self.broken {
                    *self.on.lock().unwrap() = true;
                }
                Ok(Change("turned on".into()))
            })
        }
    }

    struct Quiet;

    impl Progress for Quiet {
        fn action_started(&self, _host: &str, _action: &str) {}
        fn host_finished(&self, _report: &HostReport) {}
    }

    fn host(dry_run: bool) -> HostContext {
        let run = Arc::new(RunContext {
            run_id: "r1".into(),
            step: Step::Noops,
            dry_run,
            force: false,
            redo: None,
            stop: StopSignal::default(),
            initials: "AB".into(),
            credentials: Arc::new(Credentials::default()),
            services: Arc::new(Services::default()),
            window: MaintenanceWindow::starting_at(jiff::Timestamp::UNIX_EPOCH, 28),
            run_hosts: Vec::new(),
            migration_slots: crate::workflow::drain::MigrationSlots::new(1),
            capacity: Default::default(),
            progress: None,
            batches: Arc::new(crate::workflow::batch::Batches::new(Vec::new(), 1)),
            journal: None,
            aquilon_slots: Arc::new(tokio::sync::Semaphore::new(1)),
            services_checked: Default::default(),
            leases: None,
        });
        HostContext::new(HostName::parse("hv01.example.org").unwrap(), JiraKey::parse("MH-1").unwrap(), run)
    }

    fn plan(actions: Vec<Box<dyn Action>>) -> StepPlan {
        StepPlan { step: Step::Noops, actions, jira: JiraStatuses::default(), services: &[] }
    }

    async fn run(plan: &StepPlan, journal: Option<&Journal>, dry_run: bool) -> HostReport {
        if let Some(journal) = journal {
            let run = crate::journal::NewRun {
                id: "r1",
                step: "noops",
                operator: "AB",
                hypervisors_file: "hv.txt",
                dry_run: false,
                forced: false,
            };
            let _ = journal.start_run(&run);
        }
        run_host(host(dry_run), plan, journal, &StopSignal::default(), &Quiet, Gate::default()).await
    }

    fn journal() -> (tempfile::TempDir, Journal) {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("j.db")).unwrap();
        (dir, journal)
    }

    #[tokio::test]
    async fn do_then_verify_then_skip_on_rerun() {
        let (_dir, journal) = journal();
        let plan = plan(vec![Box::new(Switch::new(false))]);
        let first = run(&plan, Some(&journal), false).await;
        assert_eq!(first.outcome, HostOutcome::Succeeded);
        assert_eq!(first.actions[0].outcome, Outcome::Done { change: "turned on".into() });
        let second = run(&plan, Some(&journal), false).await;
        assert_eq!(second.actions[0].outcome, Outcome::Skipped);
        assert!(second.changed_nothing());
        let history = journal.host_history("hv01.example.org").unwrap();
        let outcomes: Vec<_> = history.iter().map(|record| record.outcome.as_str()).collect();
        assert_eq!(outcomes, ["done", "skipped"]);
        assert_eq!(history[0].observed.as_deref(), Some("off"));
    }

    #[tokio::test]
    async fn blocked_ends_the_step_before_later_actions() {
        let (_dir, journal) = journal();
        let later = Switch::new(false);
        let plan = plan(vec![Box::new(Switch { blocked: true, ..Switch::new(false) }), Box::new(later)]);
        let report = run(&plan, Some(&journal), false).await;
        assert_eq!(report.outcome, HostOutcome::Blocked);
        assert_eq!(report.reason.as_deref(), Some("switch: the switch is jammed"));
        assert_eq!(report.actions.len(), 1);
        assert!(!journal.step_succeeded("hv01.example.org", "noops").unwrap());
    }

    #[tokio::test]
    async fn an_unverified_change_fails() {
        let (_dir, journal) = journal();
        let plan = plan(vec![Box::new(Switch { broken: true, ..Switch::new(false) })]);
        let report = run(&plan, Some(&journal), false).await;
        assert_eq!(report.outcome, HostOutcome::Failed);
        assert!(report.reason.unwrap().contains("the change is not visible: off"));
        assert_eq!(journal.host_history("hv01.example.org").unwrap()[0].outcome.as_str(), "failed");
    }

    #[tokio::test]
    async fn dry_run_only_observes() {
        let switch = Switch::new(false);
        let plan = plan(vec![Box::new(switch)]);
        let report = run(&plan, None, true).await;
        assert_eq!(report.outcome, HostOutcome::Planned);
        assert_eq!(report.actions[0].outcome, Outcome::WouldDo { plan: "turn it on".into() });
    }

    #[tokio::test]
    async fn stop_before_the_next_action() {
        let plan = plan(vec![Box::new(Switch::new(false))]);
        let stop = StopSignal::default();
        stop.stop();
        let report = run_host(host(false), &plan, None, &stop, &Quiet, Gate::default()).await;
        assert_eq!(report.outcome, HostOutcome::Interrupted);
        assert!(report.actions.is_empty());
    }
}
