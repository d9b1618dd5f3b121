//! A scripted [`RemoteShell`] for unit tests: replies by command line, and
//! records every call.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use super::{BoxFuture, CommandOutput, RemoteCommand, RemoteShell, SshError, Target};

/// Builds the error a [`Reply::Error`] returns.
pub type MakeError = Box<dyn Fn(&Target, &RemoteCommand) -> SshError + Send + Sync>;

/// What the fake does for one command.
pub enum Reply {
    Output { exit_status: i32, stdout: String, stderr: String },
    Error(MakeError),
}

impl Reply {
    pub fn ok(stdout: impl Into<String>) -> Self {
        Reply::Output { exit_status: 0, stdout: stdout.into(), stderr: String::new() }
    }

    pub fn exit(exit_status: i32, stdout: impl Into<String>, stderr: impl Into<String>) -> Self {
        Reply::Output { exit_status, stdout: stdout.into(), stderr: stderr.into() }
    }

    pub fn timeout() -> Self {
        Reply::Error(Box::new(|target, command| SshError::Timeout {
            target: target.clone(),
            action: command.action.clone(),
            after: Duration::from_secs(1),
        }))
    }

    pub fn refused() -> Self {
        Reply::Error(Box::new(|target, _| SshError::AuthenticationRefused {
            target: target.clone(),
            detail: "Permission denied (publickey).".into(),
        }))
    }
}

/// One recorded call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub target: Target,
    pub command_line: String,
    pub stdin: Option<String>,
}

#[derive(Default)]
pub struct FakeShell {
    /// Replies per exact command line, used in order; the last one repeats.
    replies: Mutex<HashMap<String, VecDeque<Reply>>>,
    /// Replies for any command run as this user (a refused login).
    user_replies: Mutex<HashMap<String, Reply>>,
    calls: Mutex<Vec<Call>>,
    closed: Mutex<Vec<Target>>,
}

impl FakeShell {
    pub fn new() -> Self {
        FakeShell::default()
    }

    /// Replies `reply` to the command whose quoted line is `command_line`.
    pub fn on(&self, command_line: &str, reply: Reply) -> &Self {
        self.replies.lock().unwrap().entry(command_line.to_owned()).or_default().push_back(reply);
        self
    }

    /// Replies `reply` to every command run as `user`, before any other rule.
    pub fn on_user(&self, user: &str, reply: Reply) -> &Self {
        self.user_replies.lock().unwrap().insert(user.to_owned(), reply);
        self
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn command_lines(&self) -> Vec<String> {
        self.calls().into_iter().map(|call| call.command_line).collect()
    }

    pub fn closed(&self) -> Vec<Target> {
        self.closed.lock().unwrap().clone()
    }

    fn answer(&self, target: &Target, command: &RemoteCommand) -> Result<CommandOutput, SshError> {
        let line = command.command_line();
        self.calls.lock().unwrap().push(Call {
            target: target.clone(),
            command_line: line.clone(),
            stdin: command.stdin.as_ref().map(|secret| secret.expose().to_owned()),
        });
        let output = |reply: &Reply| match reply {
            Reply::Output { exit_status, stdout, stderr } => Ok(CommandOutput {
                command: line.clone(),
                exit_status: *exit_status,
                stdout: stdout.clone(),
                stderr: stderr.clone(),
                duration: Duration::from_millis(1),
            }),
            Reply::Error(make) => Err(make(target, command)),
        };
        if let Some(reply) = self.user_replies.lock().unwrap().get(&target.user) {
            return output(reply);
        }
        let mut replies = self.replies.lock().unwrap();
        let Some(queue) = replies.get_mut(&line) else {
            return Err(SshError::Local {
                target: target.clone(),
                action: command.action.clone(),
                detail: format!("the fake has no reply for: {line}"),
            });
        };
        let reply = if queue.len() > 1 { queue.pop_front().expect("not empty") } else { return output(&queue[0]) };
        output(&reply)
    }
}

impl RemoteShell for FakeShell {
    fn run<'a>(
        &'a self,
        target: &'a Target,
        command: &'a RemoteCommand,
    ) -> BoxFuture<'a, Result<CommandOutput, SshError>> {
        let answer = self.answer(target, command);
        Box::pin(async move { answer })
    }

    fn close<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, ()> {
        self.closed.lock().unwrap().push(target.clone());
        Box::pin(async {})
    }
}
