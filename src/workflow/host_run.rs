//! One host through one step (the HypervisorManager of the original): each
//! action observed, decided, acted on and verified in order, the journal
//! written before and after every change, and the Jira trail at the end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

use crate::clients::jira::{CommentOptions, Written};
use crate::journal::{ActionOutcome, ActionResult, Journal, StepOutcome};

use super::action::{Action, Decision, Outcome};
use super::context::HostContext;
use super::report::{ActionReport, HostOutcome, HostReport};
use super::steps::StepPlan;

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

/// Runs the step on the host. `journal` is `None` in a dry run, which only
/// observes.
pub async fn run_host(
    host: HostContext,
    plan: &StepPlan,
    journal: Option<&Journal>,
    stop: &StopSignal,
    progress: &dyn Progress,
    forced: bool,
) -> HostReport {
    // Every log line of this host carries its name and step.
    let span = tracing::info_span!("host", host = %host.host, step = %plan.step);
    run_host_in_span(host, plan, journal, stop, progress, forced).instrument(span).await
}

async fn run_host_in_span(
    mut host: HostContext,
    plan: &StepPlan,
    journal: Option<&Journal>,
    stop: &StopSignal,
    progress: &dyn Progress,
    forced: bool,
) -> HostReport {
    let started = Instant::now();
    let run = host.run.clone();
    let mut report = HostReport {
        host: host.host.to_string(),
        ticket: host.key.to_string(),
        step: plan.step,
        outcome: if run.dry_run { HostOutcome::Planned } else { HostOutcome::Succeeded },
        reason: None,
        forced,
        actions: Vec::new(),
        outputs: Vec::new(),
        vms: Vec::new(),
        duration: Default::default(),
        jira: None,
    };
    let host_step = match journal {
        Some(journal) => match journal.start_host_step(&run.run_id, host.host.as_str(), plan.step.name(), forced) {
            Ok(id) => Some(id),
            Err(err) => {
                report.outcome = HostOutcome::Failed;
                report.reason = Some(err.to_string());
                return report;
            }
        },
        None => None,
    };

    for action in &plan.actions {
        if stop.is_stopping() {
            report.outcome = HostOutcome::Interrupted;
            report.reason = Some(format!("stopped by the operator before {}", action.name()));
            break;
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

    if let (Some(journal), Some(id)) = (journal, host_step) {
        let outcome = match report.outcome {
            HostOutcome::Succeeded | HostOutcome::Planned => StepOutcome::Succeeded,
            HostOutcome::Blocked => StepOutcome::Blocked,
            HostOutcome::Failed => StepOutcome::Failed,
            HostOutcome::Interrupted => StepOutcome::Interrupted,
        };
        if let Err(err) = journal.finish_host_step(id, outcome, report.reason.as_deref()) {
            report.outcome = HostOutcome::Failed;
            report.reason = Some(err.to_string());
        }
        finish_in_jira(&host, plan, &mut report).await;
    }
    tracing::debug!(outcome = report.outcome.label(), reason = report.reason.as_deref().unwrap_or(""), "step ended");
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
    // The intent is on disk before anything changes.
    let intent = match journal.action_intent(host_step, name, &observed, &plan, previous.as_deref()) {
        Ok(id) => id,
        Err(err) => return (Outcome::Failed { error: err.to_string() }, observed),
    };
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
    (outcome, observed)
}

async fn verify(action: &dyn Action, host: &mut HostContext) -> Result<(), String> {
    if !action.verify_by_observing() {
        return Ok(());
    }
    match action.observe(host).await {
        Ok(Decision::AlreadyDone { .. } | Decision::Recorded { .. }) => Ok(()),
        Ok(other) => Err(format!("acted, but the change is not visible: {}", other.observed())),
        Err(err) => Err(format!("acted, but could not verify: {err}")),
    }
}

fn record_observed(journal: Option<&Journal>, host_step: Option<i64>, action: &str, outcome: &Outcome, observed: &str) {
    let (Some(journal), Some(host_step)) = (journal, host_step) else { return };
    let state = match outcome {
        Outcome::Skipped => ActionOutcome::Skipped,
        Outcome::Recorded => ActionOutcome::Recorded,
        Outcome::Blocked { .. } => ActionOutcome::Blocked,
        _ => ActionOutcome::Failed,
    };
    if let Err(err) = journal.action_observed(host_step, action, state, observed, outcome.detail()) {
        tracing::error!(action, %err, "could not journal the action");
    }
}

/// The audit comment and the closing transition of the step.
async fn finish_in_jira(host: &HostContext, plan: &StepPlan, report: &mut HostReport) {
    let Ok(jira) = host.run.jira() else {
        report.jira = Some("not posted: jira is not configured".into());
        return;
    };
    let run = &host.run;
    let key = host.key.as_str();
    let posted = async {
        // A re-run that changed nothing and ends as an earlier run did (the
        // same success, or the same block) does not repeat it on the ticket.
        if report.changed_nothing() {
            let news = report.news_marker();
            if jira.comments(key).await?.iter().any(|comment| comment.contains(&news)) {
                return Ok::<_, crate::clients::http::ServiceError>("already on the ticket from an earlier run".into());
            }
        }
        let doc = super::trail::comment_with_attachments(jira, key, report, &run.run_id, &run.initials).await?;
        let (_, written) =
            jira.add_comment_once(key, &doc, &report.marker(&run.run_id), &CommentOptions::default()).await?;
        Ok(match written {
            Written::Created => "comment posted".to_owned(),
            Written::AlreadyThere => "comment already posted".to_owned(),
        })
    }
    .await;
    let mut notes = vec![match posted {
        Ok(note) => note,
        Err(err) => {
            report.outcome = HostOutcome::Failed;
            report.reason = Some(format!("the audit comment could not be posted: {err}"));
            format!("comment not posted: {err}")
        }
    }];
    let target = if report.outcome == HostOutcome::Succeeded { &plan.jira.on_success } else { &plan.jira.on_failure };
    if let Some(target) = target.as_deref().filter(|_| report.outcome != HostOutcome::Interrupted) {
        match jira.transition_to(key, target).await {
            Ok(_) => notes.push(format!("ticket in '{target}'")),
            Err(err) => {
                notes.push(format!("ticket not moved to '{target}': {err}"));
                if report.outcome == HostOutcome::Succeeded {
                    report.outcome = HostOutcome::Failed;
                    report.reason = Some(format!("the ticket could not move to '{target}': {err}"));
                }
            }
        }
    }
    report.jira = Some(notes.join("; "));
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
        run_host(host(dry_run), plan, journal, &StopSignal::default(), &Quiet, false).await
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
        let report = run_host(host(false), &plan, None, &stop, &Quiet, false).await;
        assert_eq!(report.outcome, HostOutcome::Interrupted);
        assert!(report.actions.is_empty());
    }
}
