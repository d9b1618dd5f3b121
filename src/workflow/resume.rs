//! Resumable actions. An action made of several side effects (the Aquilon
//! re-import: deletes, then the import, then the boot interface) journals
//! each one as a sub-command: its intent before it runs, its result after.
//! A re-run reads the earlier attempt that did not end well: a sub-command
//! it finished is not repeated; one it started and never saw end (a kill,
//! a dropped connection) is in doubt, and the action decides it from the
//! real state where that can be observed, or blocks and says how to check.

use std::future::Future;

use crate::hosts::HostError;
use crate::journal::{ActionOutcome, Attempt, Journal};

use super::action::ActionError;
use super::context::HostContext;

/// The action being reconciled on a host: its journal record once it acts,
/// and the earlier attempt that did not end well, if any.
#[derive(Clone, Debug, Default)]
pub struct ActionAttempt {
    pub action_id: Option<i64>,
    pub earlier: Option<Attempt>,
}

impl ActionAttempt {
    /// How the earlier attempt left sub-command `name`: `Done`, `Intent` (in
    /// doubt), `Failed`, or `None` when it never started it.
    pub fn earlier(&self, name: &str) -> Option<ActionOutcome> {
        self.earlier.as_ref().and_then(|attempt| attempt.sub_command(name))
    }

    /// The run of the earlier attempt, for the ticket.
    pub fn earlier_run(&self) -> &str {
        self.earlier.as_ref().map(|attempt| attempt.run_id.as_str()).unwrap_or("?")
    }
}

/// Whether an error leaves the side effect in doubt: the connection went
/// before the exit status came back, so the command may or may not have run.
fn in_doubt(err: &HostError) -> bool {
    matches!(err, HostError::Ssh(_))
}

impl HostContext {
    /// Runs one side effect of the action being acted on, journaled before
    /// and after. A command that ran and failed is recorded failed; one whose
    /// end was never seen stays in doubt, as a kill leaves it.
    pub async fn side_effect<T>(
        &self,
        name: &str,
        work: impl Future<Output = Result<T, HostError>>,
    ) -> Result<T, ActionError> {
        let journal = self.run.journal.as_deref().filter(|_| !self.run.dry_run);
        let id = match (journal, self.attempt.action_id) {
            (Some(journal), Some(action_id)) => Some(self.sub_command_intent(journal, action_id, name)?),
            _ => None,
        };
        let result = work.await;
        let (Some(journal), Some(id)) = (journal, id) else { return result.map_err(Into::into) };
        let written = match &result {
            Ok(_) => journal.sub_command_result(id, ActionOutcome::Done, ""),
            Err(err) if in_doubt(err) => Ok(()),
            Err(err) => journal.sub_command_result(id, ActionOutcome::Failed, &err.to_string()),
        };
        if let Err(err) = written {
            tracing::error!(host = %self.host, sub_command = name, %err, "could not journal the sub-command's result");
        }
        result.map_err(|err| {
            if in_doubt(&err) {
                ActionError(format!("{name}: in doubt (the connection went before it ended): {err}"))
            } else {
                err.into()
            }
        })
    }

    /// Journals the sub-command's intent, only while this run still holds
    /// the host's lease (checked in the same transaction, right before it runs).
    fn sub_command_intent(&self, journal: &Journal, action_id: i64, name: &str) -> Result<i64, ActionError> {
        let cannot = |err: crate::error::Error| ActionError(format!("cannot journal {name}: {err}"));
        let Some(leases) = &self.run.leases else {
            return journal.sub_command_intent(action_id, name).map_err(cannot);
        };
        let asked = std::time::Instant::now();
        match journal.sub_command_intent_leased(&leases.check(self.host.as_str()), action_id, name).map_err(cannot)? {
            Ok(id) => {
                leases.confirm(self.host.as_str(), asked);
                Ok(id)
            }
            Err(lost) => {
                leases.found_lost(self.host.as_str(), &lost);
                Err(ActionError(format!("{name} not run: {lost}")))
            }
        }
    }

    /// Records a sub-command the earlier attempt finished, so that this
    /// attempt's record is whole if it is interrupted in turn.
    pub fn carried_over(&self, name: &str) {
        let journal = self.run.journal.as_deref().filter(|_| !self.run.dry_run);
        if let (Some(journal), Some(action_id)) = (journal, self.attempt.action_id) {
            let detail = format!("done by run {}", self.attempt.earlier_run());
            let written = journal
                .sub_command_intent(action_id, name)
                .and_then(|id| journal.sub_command_result(id, ActionOutcome::Done, &detail));
            if let Err(err) = written {
                tracing::error!(host = %self.host, sub_command = name, %err, "could not journal the sub-command");
            }
        }
    }
}
