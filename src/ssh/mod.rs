//! Remote execution over the system OpenSSH client.
//!
//! [`RemoteShell`] is what the rest of the tool calls; [`SshPool`] is the real
//! one (one multiplexed master connection per user and host), and the tests
//! use a fake. A command that exits non-zero is data ([`CommandOutput`]), not
//! an error: only failing to run it at all is an [`SshError`].

mod error;
pub mod escape;
#[cfg(test)]
pub mod fake;
pub mod pinned;
mod pool;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use error::SshError;
pub use pool::{close_every_master, terminate_gracefully, SshOptions, SshPool, OUTPUT_LIMIT_BYTES};

use crate::secret::Secret;

/// A future that can be boxed behind `dyn RemoteShell`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Who to log in as, where. The host is given to ssh as is, so an alias of
/// the user's `ssh_config` works.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    pub user: String,
    pub host: String,
}

impl Target {
    pub fn new(user: impl Into<String>, host: impl Into<String>) -> Self {
        Target { user: user.into(), host: host.into() }
    }

    pub fn root(host: impl Into<String>) -> Self {
        Target::new("root", host)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.user, self.host)
    }
}

/// One program with its arguments; each word is shell-quoted on the way.
#[derive(Clone, Debug)]
pub struct RemoteCommand {
    /// A short name for logs and errors, e.g. `os-release`.
    pub action: String,
    pub program: String,
    pub args: Vec<String>,
    /// Fed to the command's standard input, then closed. Never logged.
    pub stdin: Option<Secret>,
    /// Overrides the pool's command timeout.
    pub timeout: Option<Duration>,
}

impl RemoteCommand {
    pub fn new(action: impl Into<String>, program: impl Into<String>) -> Self {
        RemoteCommand { action: action.into(), program: program.into(), args: Vec::new(), stdin: None, timeout: None }
    }

    /// A small `sh -c` script for what needs a shell (redirections, `||`);
    /// `args` become `$1`, `$2`… so that values are never spliced into it.
    pub fn script(action: impl Into<String>, script: &str, args: &[&str]) -> Self {
        RemoteCommand::new(action, "sh").arg("-c").arg(script).arg("sh").args(args.iter().copied())
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn stdin(mut self, input: Secret) -> Self {
        self.stdin = Some(input);
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The line the remote shell runs, every word quoted.
    pub fn command_line(&self) -> String {
        escape::command_line(std::iter::once(self.program.as_str()).chain(self.args.iter().map(String::as_str)))
    }
}

/// What a command did. `exit_status` is its exit code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandOutput {
    /// The command line that ran (for reports), never its standard input.
    pub command: String,
    pub exit_status: i32,
    pub stdout: String,
    pub stderr: String,
    pub duration: Duration,
}

impl CommandOutput {
    pub fn success(&self) -> bool {
        self.exit_status == 0
    }
}

/// Runs commands on remote hosts. Object-safe, so callers can hold an
/// `Arc<dyn RemoteShell>` and tests can swap in a fake.
pub trait RemoteShell: Send + Sync {
    /// Runs one command; a non-zero exit is `Ok` with that status.
    fn run<'a>(
        &'a self,
        target: &'a Target,
        command: &'a RemoteCommand,
    ) -> BoxFuture<'a, Result<CommandOutput, SshError>>;

    /// Ends the connection to `target`, when the work on that host is done.
    /// The next `run` opens a new one.
    fn close<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, ()> {
        let _ = target;
        Box::pin(async {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_arguments_are_positional() {
        let command = RemoteCommand::script("append", r#"printf '%s\n' "$1" >> "$2""#, &["a b", "/etc/fstab"]);
        assert_eq!(command.command_line(), r#"sh -c 'printf '\''%s\n'\'' "$1" >> "$2"' sh 'a b' /etc/fstab"#);
    }

    #[test]
    fn stdin_is_not_in_debug_output() {
        let command = RemoteCommand::new("sudo", "sudo").arg("-S").stdin(Secret::new("hunter2\n"));
        assert!(!format!("{command:?}").contains("hunter2"));
    }
}
