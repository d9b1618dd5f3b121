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
    /// The host is further on in the campaign: the step was not run there.
    AlreadyPast,
}

impl HostOutcome {
    pub fn label(self) -> &'static str {
        match self {
            HostOutcome::Succeeded => "succeeded",
            HostOutcome::Blocked => "blocked",
            HostOutcome::Failed => "failed",
            HostOutcome::Interrupted => "interrupted",
            HostOutcome::Planned => "planned",
            HostOutcome::AlreadyPast => "already past",
        }
    }

    pub fn is_success(self) -> bool {
        matches!(self, HostOutcome::Succeeded | HostOutcome::Planned | HostOutcome::AlreadyPast)
    }
}

impl From<HostOutcome> for crate::journal::StepOutcome {
    fn from(outcome: HostOutcome) -> Self {
        use crate::journal::StepOutcome;
        match outcome {
            HostOutcome::Succeeded | HostOutcome::Planned | HostOutcome::AlreadyPast => StepOutcome::Succeeded,
            HostOutcome::Blocked => StepOutcome::Blocked,
            HostOutcome::Failed => StepOutcome::Failed,
            HostOutcome::Interrupted => StepOutcome::Interrupted,
        }
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
    /// `--redo` took the host back to this step (with the action repeated, if named).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redo: Option<String>,
    /// Changes earlier runs made and never put on the ticket (they were
    /// killed, or their trail failed), from the journal.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub earlier_changes: Vec<String>,
    pub actions: Vec<ActionReport>,
    #[serde(skip)]
    pub outputs: Vec<RecordedOutput>,
    /// The VMs a drain moved or left behind.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vms: Vec<VmMove>,
    #[serde(serialize_with = "millis")]
    pub duration: Duration,
    /// What happened to the Jira comment (posted, already there, not posted and why).
    pub jira: Option<String>,
}

/// How a VM fared in a drain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VmOutcome {
    Moved,
    Failed,
    /// Not movable as it is (its state, the settings, or the host was aborted).
    Blocked,
}

impl VmOutcome {
    pub fn label(self) -> &'static str {
        match self {
            VmOutcome::Moved => "moved",
            VmOutcome::Failed => "failed",
            VmOutcome::Blocked => "blocked",
        }
    }
}

/// One VM of a drain: where it went, or why it is still on the host.
#[derive(Clone, Debug, Serialize)]
pub struct VmMove {
    pub id: String,
    pub name: String,
    pub project: String,
    /// `live`, `cold`, or empty for a VM that was not migrated.
    pub kind: String,
    pub outcome: VmOutcome,
    pub from: String,
    pub to: Option<String>,
    /// Why it was left behind, or what happened on the way (a retry).
    pub reason: Option<String>,
    #[serde(serialize_with = "millis")]
    pub duration: Duration,
    /// What the guest agent said before, during and after a live migration.
    pub guest_check: Option<String>,
}

impl VmMove {
    /// One line for Jira and the terminal.
    pub fn line(&self) -> String {
        let kind = if self.kind.is_empty() { String::new() } else { format!(", {}", self.kind) };
        let mut reason = self.reason.as_deref().map(|reason| format!(" — {reason}")).unwrap_or_default();
        if let Some(check) = &self.guest_check {
            reason.push_str(&format!(" [guest check: {check}]"));
        }
        match self.outcome {
            VmOutcome::Moved => format!(
                "{} ({}) {} → {}{kind}, {:.1} s{reason}",
                self.name,
                self.id,
                self.from,
                self.to.as_deref().unwrap_or("?"),
                self.duration.as_secs_f64()
            ),
            VmOutcome::Failed | VmOutcome::Blocked => format!(
                "{} ({}, project {}) left on {}{kind}, {:.1} s{reason}",
                self.name,
                self.id,
                self.project,
                self.from,
                self.duration.as_secs_f64()
            ),
        }
    }
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
            redo: None,
            earlier_changes: Vec::new(),
            actions: Vec::new(),
            outputs: Vec::new(),
            vms: Vec::new(),
            duration: Duration::ZERO,
            jira: None,
        }
    }

    /// Whether the run changed nothing on this host (no action acted).
    pub fn changed_nothing(&self) -> bool {
        // A forced or redone step is news for the ticket whatever it changed.
        self.earlier_changes.is_empty()
            && !self.forced
            && self.redo.is_none()
            && !self.actions.iter().any(|action| matches!(action.outcome, Outcome::Done { .. }))
    }

    /// The marker that lets a retry of this run find its comment: the step,
    /// the outcome and its reason (as a digest), then the run.
    pub fn marker(&self, run_id: &str) -> String {
        format!("{}{run_id}", self.news_marker())
    }

    /// What every run with the same news shares: a re-run that changed
    /// nothing and ends the same way finds the earlier comment by it.
    pub fn news_marker(&self) -> String {
        let reason = crate::digest::fnv1a(self.reason.as_deref().unwrap_or("").as_bytes());
        format!("hvmigrate:{}:{}:{:08x}:", self.step, self.outcome.label(), reason as u32)
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
        if let Some(redo) = &self.redo {
            let repeated = if redo.is_empty() { String::new() } else { format!(", repeating {redo}") };
            doc = doc.paragraph(format!(
                "Run with --redo{repeated}: the host may already have gone past {} in this campaign.",
                self.step
            ));
        }
        if !self.earlier_changes.is_empty() {
            doc = doc
                .paragraph("Changes made by earlier runs that stopped before reporting them:")
                .bullets(self.earlier_changes.iter().cloned());
        }
        doc = doc.bullets(self.actions.iter().map(|action| {
            let detail = match (&action.outcome, action.outcome.detail()) {
                (_, Some(detail)) => format!(": {detail}"),
                (Outcome::Recorded, None) if !action.observed.is_empty() => format!(": {}", action.observed),
                _ => String::new(),
            };
            format!("{} — {}{detail} ({} ms)", action.action, action.outcome.label(), action.duration.as_millis())
        }));
        let moved: Vec<String> =
            self.vms.iter().filter(|vm| vm.outcome == VmOutcome::Moved).map(VmMove::line).collect();
        let left: Vec<String> = self
            .vms
            .iter()
            .filter(|vm| vm.outcome != VmOutcome::Moved)
            .map(|vm| format!("{}: {}", vm.outcome.label(), vm.line()))
            .collect();
        if !moved.is_empty() {
            doc = doc.paragraph(format!("VMs moved ({}):", moved.len())).bullets(moved);
        }
        if !left.is_empty() {
            doc = doc.paragraph(format!("VMs left behind ({}):", left.len())).bullets(left);
        }
        for output in &self.outputs {
            doc = doc.code(Some(&output.title), output.text.clone());
        }
        doc
    }
}
