//! What a host's step produced: the per-action report, the Jira comment built
//! from it, and the row of the run's summary.

use std::time::Duration;

use serde::Serialize;

use crate::clients::jira::Doc;

use super::action::Outcome;
use super::context::RecordedOutput;
use super::Step;

/// How a host's step ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostOutcome {
    Succeeded,
    Blocked,
    Failed,
    /// Stopped by the operator before it finished.
    Interrupted,
    /// Dry run: every action was only planned.
    Planned,
}

impl HostOutcome {
    pub fn label(self) -> &'static str {
        match self {
            HostOutcome::Succeeded => "succeeded",
            HostOutcome::Blocked => "blocked",
            HostOutcome::Failed => "failed",
            HostOutcome::Interrupted => "interrupted",
            HostOutcome::Planned => "planned",
        }
    }

    pub fn is_success(self) -> bool {
        matches!(self, HostOutcome::Succeeded | HostOutcome::Planned)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ActionReport {
    pub action: String,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// What the action saw of the real state.
    pub observed: String,
    #[serde(serialize_with = "millis")]
    pub duration: Duration,
}

#[derive(Clone, Debug, Serialize)]
pub struct HostReport {
    pub host: String,
    pub ticket: String,
    pub step: Step,
    pub outcome: HostOutcome,
    pub reason: Option<String>,
    pub forced: bool,
    pub actions: Vec<ActionReport>,
    #[serde(skip)]
    pub outputs: Vec<RecordedOutput>,
    #[serde(serialize_with = "millis")]
    pub duration: Duration,
    /// What happened to the Jira comment (posted, already there, not posted and why).
    pub jira: Option<String>,
}

fn millis<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(duration.as_millis() as u64)
}

impl HostReport {
    /// A host that did not start the step.
    pub fn not_run(
        host: &crate::config::HostName,
        key: &crate::config::JiraKey,
        step: Step,
        outcome: HostOutcome,
        reason: String,
    ) -> Self {
        HostReport {
            host: host.to_string(),
            ticket: key.to_string(),
            step,
            outcome,
            reason: Some(reason),
            forced: false,
            actions: Vec::new(),
            outputs: Vec::new(),
            duration: Duration::ZERO,
            jira: None,
        }
    }

    /// Whether the run changed nothing on this host (every action already done).
    pub fn changed_nothing(&self) -> bool {
        self.actions.iter().all(|action| matches!(action.outcome, Outcome::Skipped | Outcome::Recorded))
    }

    /// The marker that lets a retry, or a re-run that changed nothing, find a
    /// comment already posted.
    pub fn marker(&self, run_id: &str) -> String {
        format!("hvmigrate:{}:{}:{run_id}", self.step, self.outcome.label())
    }

    /// The marker prefix shared by every run whose step succeeded.
    pub fn success_marker_prefix(step: Step) -> String {
        format!("hvmigrate:{step}:{}:", HostOutcome::Succeeded.label())
    }

    /// The audit comment: one per host per step.
    pub fn jira_comment(&self, run_id: &str, initials: &str) -> Doc {
        let mut doc = Doc::new().paragraph(format!(
            "hvmigrate {} on {}: {}{} (run {run_id}, operator {initials}, {:.1} s)",
            self.step,
            self.host,
            self.outcome.label().to_uppercase(),
            self.reason.as_deref().map(|reason| format!(" — {reason}")).unwrap_or_default(),
            self.duration.as_secs_f64(),
        ));
        if self.forced {
            doc = doc.paragraph(format!(
                "Run with --force: the step before {} had not succeeded on this host according to the journal.",
                self.step
            ));
        }
        doc = doc.bullets(self.actions.iter().map(|action| {
            let detail = action.outcome.detail().map(|detail| format!(": {detail}")).unwrap_or_default();
            format!("{} — {}{detail} ({} ms)", action.action, action.outcome.label(), action.duration.as_millis())
        }));
        for output in &self.outputs {
            doc = doc.code(Some(&output.title), output.text.clone());
        }
        doc
    }
}
