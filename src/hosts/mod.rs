//! Typed operations on the machines the tool drives over SSH: the
//! hypervisors, libvirt on them, the Aquilon host and the Kayobe host.
//! Each parses its command's output properly and says what went wrong.

pub mod aquilon;
pub mod hypervisor;
pub mod kayobe;
pub mod libvirt;
pub mod remote_job;
pub mod vm;

use std::sync::Arc;

use crate::ssh::{CommandOutput, RemoteCommand, RemoteShell, SshError, Target};

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(transparent)]
    Ssh(#[from] SshError),
    /// The command ran and reported failure.
    #[error("{target}: {action} failed with exit status {exit_status}{}", detail_suffix(.detail))]
    CommandFailed { target: Target, action: String, exit_status: i32, detail: String },
    /// The command succeeded but its output is not what it should be.
    #[error("{target}: {action}: unexpected output: {reason}")]
    UnexpectedOutput { target: Target, action: String, reason: String },
    /// A detached job did not end in time, or ended without an exit status.
    #[error("{target}: {action}: {reason}")]
    Unfinished { target: Target, action: String, reason: String },
    /// A guard stopped a change that would be unsafe (formatting a mounted device…).
    #[error("{target}: {action}: refused: {reason}")]
    Refused { target: Target, action: String, reason: String },
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

/// A parsed value with the command output it came from (for the ticket).
#[derive(Clone, Debug)]
pub struct Observed<T> {
    pub value: T,
    pub output: CommandOutput,
}

/// What a fix did: nothing because it was already in place, or a change.
#[derive(Clone, Debug)]
pub enum FixOutcome {
    AlreadyDone { reason: String },
    Changed(CommandOutput),
}

impl FixOutcome {
    pub fn changed(&self) -> bool {
        matches!(self, FixOutcome::Changed(_))
    }
}

/// A shell and the account on one host; what every helper here is built on.
#[derive(Clone)]
pub struct Remote {
    shell: Arc<dyn RemoteShell>,
    target: Target,
}

impl Remote {
    pub fn new(shell: Arc<dyn RemoteShell>, target: Target) -> Self {
        Remote { shell, target }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    pub fn shell(&self) -> &Arc<dyn RemoteShell> {
        &self.shell
    }

    /// Runs a command; its exit status is for the caller to judge.
    pub async fn run(&self, command: &RemoteCommand) -> Result<CommandOutput, HostError> {
        Ok(self.shell.run(&self.target, command).await?)
    }

    /// Runs a command that must exit 0.
    pub async fn run_ok(&self, command: &RemoteCommand) -> Result<CommandOutput, HostError> {
        let output = self.run(command).await?;
        if output.success() {
            Ok(output)
        } else {
            Err(self.failed(&command.action, &output))
        }
    }

    /// Ends the connection to this host.
    pub async fn close(&self) {
        self.shell.close(&self.target).await;
    }

    pub fn failed(&self, action: &str, output: &CommandOutput) -> HostError {
        HostError::CommandFailed {
            target: self.target.clone(),
            action: action.to_owned(),
            exit_status: output.exit_status,
            detail: output_tail(output),
        }
    }

    pub fn unexpected(&self, action: &str, reason: impl Into<String>) -> HostError {
        HostError::UnexpectedOutput { target: self.target.clone(), action: action.to_owned(), reason: reason.into() }
    }

    pub fn refused(&self, action: &str, reason: impl Into<String>) -> HostError {
        HostError::Refused { target: self.target.clone(), action: action.to_owned(), reason: reason.into() }
    }
}

/// The last lines of what a failed command said, for an error message.
fn output_tail(output: &CommandOutput) -> String {
    const LINES: usize = 5;
    let text = if output.stderr.trim().is_empty() { &output.stdout } else { &output.stderr };
    let lines: Vec<&str> = text.lines().map(str::trim_end).filter(|line| !line.is_empty()).collect();
    lines[lines.len().saturating_sub(LINES)..].join(" / ")
}

/// `key: value` lines, indentation and spacing ignored; a key may repeat.
pub(crate) fn key_values(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .filter(|(key, _)| !key.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn failure_message_keeps_the_end_of_stderr() {
        let output = CommandOutput {
            command: "dnf -y update qemu-kvm".into(),
            exit_status: 1,
            stdout: "ignored\n".into(),
            stderr: "a\nb\n\nc\nd\ne\nf\nError: Failed to download metadata for repo 'baseos'\n".into(),
            duration: Duration::from_secs(1),
        };
        let remote = Remote::new(Arc::new(crate::ssh::fake::FakeShell::new()), Target::root("hv01"));
        let message = remote.failed("dnf-update", &output).to_string();
        assert_eq!(
            message,
            "root@hv01: dnf-update failed with exit status 1: c / d / e / f / Error: Failed to download metadata for repo 'baseos'"
        );
    }

    #[test]
    fn key_values_ignore_indentation() {
        let pairs = key_values("Name:  a:b\n   State:   shut off\nnot a pair\n");
        assert_eq!(pairs, vec![("Name".into(), "a:b".into()), ("State".into(), "shut off".into())]);
    }
}
