//! An action is an idempotent reconciler: it observes the real state, decides
//! whether it is already done, must be done, or cannot be done, acts only on
//! the difference, and is verified by observing again.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use super::context::HostContext;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What an action found, and what it means to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The state is already as wanted.
    AlreadyDone { observed: String },
    /// The state differs: `plan` says what acting will change, and `previous`
    /// is the value that can restore it.
    Do { observed: String, plan: String, previous: Option<String> },
    /// The action cannot go on; the step stops for this host.
    Blocked { observed: String, reason: String },
    /// An action that only records the state for the audit trail.
    Recorded { observed: String },
    /// A check that passed: what was seen is as it must be.
    Passed { observed: String },
}

impl Decision {
    pub fn done(observed: impl Into<String>) -> Self {
        Decision::AlreadyDone { observed: observed.into() }
    }

    pub fn act(observed: impl Into<String>, plan: impl Into<String>) -> Self {
        Decision::Do { observed: observed.into(), plan: plan.into(), previous: None }
    }

    /// A check that passed (`ok — <what was seen>`); `done` is for a change
    /// found already made.
    pub fn passed(observed: impl Into<String>) -> Self {
        Decision::Passed { observed: observed.into() }
    }

    pub fn blocked(observed: impl Into<String>, reason: impl Into<String>) -> Self {
        Decision::Blocked { observed: observed.into(), reason: reason.into() }
    }

    pub fn observed(&self) -> &str {
        match self {
            Decision::AlreadyDone { observed }
            | Decision::Do { observed, .. }
            | Decision::Blocked { observed, .. }
            | Decision::Recorded { observed }
            | Decision::Passed { observed } => observed,
        }
    }
}

/// What acting changed, in words for the journal and Jira.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change(pub String);

/// An action could not observe or act: a service or host error, with context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionError(pub String);

impl fmt::Display for ActionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<crate::clients::http::ServiceError> for ActionError {
    fn from(err: crate::clients::http::ServiceError) -> Self {
        ActionError(err.to_string())
    }
}

impl From<crate::hosts::HostError> for ActionError {
    fn from(err: crate::hosts::HostError) -> Self {
        ActionError(err.to_string())
    }
}

impl From<crate::ssh::SshError> for ActionError {
    fn from(err: crate::ssh::SshError) -> Self {
        ActionError(err.to_string())
    }
}

/// One reconciler of a step.
pub trait Action: Send + Sync {
    /// A short, stable name (`disable-compute`), used in the journal.
    fn name(&self) -> &'static str;

    /// Reads the real state and decides. Only reads: dry runs call this alone.
    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>>;

    /// Makes the change the decision planned. Actions whose observation never
    /// asks to act keep this default.
    fn act<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Change, ActionError>> {
        let _ = host;
        Box::pin(async move { Err(ActionError(format!("{} only observes; it has nothing to change", self.name()))) })
    }

    /// Whether observing again after acting must find the action done (the
    /// default). Actions whose effect cannot be observed say no.
    fn verify_by_observing(&self) -> bool {
        true
    }
}

/// How one action ended, as reported to the operator and to Jira.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Done {
        change: String,
    },
    Skipped,
    /// A check passed; `seen` is what it found.
    Ok {
        seen: String,
    },
    /// The state was recorded; nothing to change.
    Recorded,
    Blocked {
        reason: String,
    },
    Failed {
        error: String,
    },
    /// Dry run: what would happen.
    WouldDo {
        plan: String,
    },
    /// The run was stopped before this action.
    NotStarted,
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Done { .. } => "done",
            Outcome::Skipped => "skipped (already done)",
            Outcome::Ok { .. } => "ok",
            Outcome::Recorded => "recorded",
            Outcome::Blocked { .. } => "blocked",
            Outcome::Failed { .. } => "failed",
            Outcome::WouldDo { .. } => "would do",
            Outcome::NotStarted => "not started",
        }
    }

    pub fn detail(&self) -> Option<&str> {
        match self {
            Outcome::Done { change } => Some(change),
            Outcome::Blocked { reason } => Some(reason),
            Outcome::Failed { error } => Some(error),
            Outcome::WouldDo { plan } => Some(plan),
            Outcome::Ok { seen } => Some(seen),
            Outcome::Skipped | Outcome::Recorded | Outcome::NotStarted => None,
        }
    }
}
