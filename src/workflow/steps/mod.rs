//! The steps, each an ordered list of actions (one file per step).

mod adoption;
mod common;
mod drain;
mod identity;
mod noops;
mod post_reinstall;
mod pre_drain;
mod pre_reinstall;
mod setup;

pub use identity::NewHostKey;

use crate::config::Workflow;

use super::action::Action;
use super::Step;

/// Where the host's ticket moves when the step ends.
#[derive(Clone, Debug, Default)]
pub struct JiraStatuses {
    pub on_success: Option<String>,
    pub on_failure: Option<String>,
}

/// A step as the engine runs it.
pub struct StepPlan {
    pub step: Step,
    pub actions: Vec<Box<dyn Action>>,
    pub jira: JiraStatuses,
    /// Credentials sections the step cannot run without.
    pub services: &'static [&'static str],
}

/// The plan of `step`, or `None` for a step this version does not automate yet.
pub fn plan(step: Step, workflow: &Workflow) -> Option<StepPlan> {
    Some(match step {
        Step::Setup => setup::plan(),
        Step::PreDrain => pre_drain::plan(),
        Step::Noops => noops::plan(),
        Step::Drain => drain::plan(),
        Step::PreReinstall => pre_reinstall::plan(workflow),
        Step::PostReinstall => post_reinstall::plan(workflow),
        Step::Adoption => adoption::plan(workflow),
    })
}

/// The steps `run --step` accepts in this version.
pub fn available() -> Vec<Step> {
    let workflow = Workflow::default();
    Step::CAMPAIGN.into_iter().chain([Step::Noops]).filter(|step| plan(*step, &workflow).is_some()).collect()
}
