//! The workflow: steps made of idempotent actions, run over every host of the
//! list by the [`manager`], recorded in the journal and on Jira.

pub mod action;
pub mod batch;
pub mod context;
pub mod drain;
pub mod host_run;
pub mod leases;
pub mod manager;
pub mod report;
pub mod resume;
pub mod steps;
pub mod trail;

use std::fmt;

use serde::Serialize;

/// The steps of a campaign, in the order a host goes through them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    Setup,
    PreDrain,
    Drain,
    PreReinstall,
    PostReinstall,
    Adoption,
    /// Preflight: checks everything, changes nothing; needs no earlier step.
    Noops,
}

impl Step {
    pub const CAMPAIGN: [Step; 6] =
        [Step::Setup, Step::PreDrain, Step::Drain, Step::PreReinstall, Step::PostReinstall, Step::Adoption];

    pub fn name(self) -> &'static str {
        match self {
            Step::Setup => "setup",
            Step::PreDrain => "pre-drain",
            Step::Drain => "drain",
            Step::PreReinstall => "pre-reinstall",
            Step::PostReinstall => "post-reinstall",
            Step::Adoption => "adoption",
            Step::Noops => "noops",
        }
    }

    /// The step that must have succeeded on a host before this one runs there.
    pub fn previous(self) -> Option<Step> {
        let index = Step::CAMPAIGN.iter().position(|step| *step == self)?;
        index.checked_sub(1).map(|previous| Step::CAMPAIGN[previous])
    }

    /// Whether this step comes before `other` in the campaign (`noops` is
    /// outside it and before nothing).
    pub fn is_before(self, other: Step) -> bool {
        let index = |step| Step::CAMPAIGN.iter().position(|s| *s == step);
        matches!((index(self), index(other)), (Some(a), Some(b)) if a < b)
    }

    /// Steps that destroy data or take hosts out of service ask for confirmation.
    pub fn is_destructive(self) -> bool {
        matches!(self, Step::PreReinstall | Step::PostReinstall)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Step {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let all = Step::CAMPAIGN.into_iter().chain([Step::Noops]);
        all.clone().find(|step| step.name() == text.replace('_', "-")).ok_or_else(|| {
            format!("unknown step '{text}'; the steps are {}", all.map(Step::name).collect::<Vec<_>>().join(", "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_names() {
        assert_eq!(Step::Setup.previous(), None);
        assert_eq!(Step::PreDrain.previous(), Some(Step::Setup));
        assert_eq!(Step::Adoption.previous(), Some(Step::PostReinstall));
        assert_eq!(Step::Noops.previous(), None);
        assert_eq!("pre_drain".parse::<Step>(), Ok(Step::PreDrain));
        assert!("drian".parse::<Step>().unwrap_err().contains("the steps are setup, pre-drain"));
    }
}
