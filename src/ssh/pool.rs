//! The real [`RemoteShell`]: the system `ssh`, one multiplexed master
//! connection per user and host, opened on first use and reused by every
//! command until [`RemoteShell::close`].

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder, Stdio};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::OnceCell;
use tracing::{debug, info};

use super::{BoxFuture, CommandOutput, RemoteCommand, RemoteShell, SshError, Target};
use crate::config::credentials::Ssh;

/// A master left behind by a killed run exits after this long without a command.
const MASTER_IDLE_EXIT_SECS: usize = 600;

/// How to reach hosts: the `ssh` section of the credentials, paths expanded.
#[derive(Clone, Debug)]
pub struct SshOptions {
    /// The private key offered (and only that one). `None` leaves it to
    /// `ssh_config` and the agent.
    pub key_path: Option<PathBuf>,
    /// Host keys are checked strictly against this file.
    pub known_hosts: PathBuf,
    /// An `ssh_config` used instead of the user's own.
    pub config_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    /// Keep-alive probes on the master connection.
    pub keep_alive_interval: Duration,
}

impl SshOptions {
    pub fn from_config(ssh: &Ssh) -> Self {
        SshOptions {
            key_path: Some(expand_home(&ssh.key_path)),
            known_hosts: expand_home(&ssh.known_hosts),
            config_file: ssh.config_file.as_deref().map(expand_home),
            connect_timeout: Duration::from_secs(ssh.connect_timeout_secs),
            command_timeout: Duration::from_secs(ssh.command_timeout_secs),
            keep_alive_interval: Duration::from_secs(15),
        }
    }
}

/// `~/x` to `$HOME/x`; anything else unchanged.
pub fn expand_home(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => path.to_owned(),
    }
}

type SessionSlot = Arc<OnceCell<Arc<Session>>>;

pub struct SshPool {
    options: SshOptions,
    /// Dropped before `control_dir`: a session's drop stops its master through the socket there.
    sessions: Mutex<HashMap<Target, SessionSlot>>,
    /// Private folder for the control sockets; removed when the pool goes.
    control_dir: tempfile::TempDir,
}

impl SshPool {
    pub fn new(options: SshOptions) -> std::io::Result<Self> {
        // Short path: a control socket path must fit in 108 bytes.
        let control_dir = tempfile::Builder::new().prefix("hvmigrate-ssh.").tempdir_in(std::env::temp_dir())?;
        Ok(SshPool { options, sessions: Mutex::new(HashMap::new()), control_dir })
    }

    pub fn options(&self) -> &SshOptions {
        &self.options
    }

    /// How many master connections are open now.
    pub fn open_connections(&self) -> usize {
        self.slots().values().filter(|slot| slot.initialized()).count()
    }

    /// Ends every master connection.
    pub async fn close_all(&self) {
        let targets: Vec<Target> = self.slots().keys().cloned().collect();
        for target in targets {
            self.close_target(&target).await;
        }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<Target, SessionSlot>> {
        self.sessions.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// The session for `target`, connecting on first use. Concurrent callers
    /// wait for the same connection attempt.
    async fn session(&self, target: &Target) -> Result<Arc<Session>, SshError> {
        let slot = self.slots().entry(target.clone()).or_default().clone();
        let session = slot.get_or_try_init(|| self.connect(target)).await?;
        Ok(session.clone())
    }

    async fn connect(&self, target: &Target) -> Result<Arc<Session>, SshError> {
        let options = &self.options;
        let mut builder = SessionBuilder::default();
        builder
            .user(target.user.clone())
            .known_hosts_check(KnownHosts::Strict)
            .user_known_hosts_file(&options.known_hosts)
            .connect_timeout(options.connect_timeout)
            .server_alive_interval(options.keep_alive_interval)
            .control_directory(self.control_dir.path())
            .control_persist(ControlPersist::IdleFor(NonZeroUsize::new(MASTER_IDLE_EXIT_SECS).expect("not zero")));
        if let Some(key_path) = &options.key_path {
            builder.keyfile(key_path);
        }
        if let Some(config_file) = &options.config_file {
            builder.config_file(config_file);
        }
        let started = Instant::now();
        debug!(host = %target.host, user = %target.user, action = "ssh-connect", "opening the master connection");
        // ssh's ConnectTimeout covers the TCP connect; this also bounds a server that stalls after it.
        let limit = options.connect_timeout * 3;
        let connected = tokio::time::timeout(limit, builder.connect_mux(&target.host)).await;
        let session = match connected {
            Err(_) => {
                return Err(SshError::Connect {
                    target: target.clone(),
                    detail: format!("no session after {}s", limit.as_secs()),
                })
            }
            Ok(Err(openssh::Error::Connect(err))) => {
                return Err(SshError::from_connect_log(target, options.known_hosts.clone(), &err.to_string()))
            }
            Ok(Err(err)) => return Err(SshError::Connect { target: target.clone(), detail: error_chain(&err) }),
            Ok(Ok(session)) => session,
        };
        debug!(host = %target.host, user = %target.user, action = "ssh-connect", elapsed_ms = started.elapsed().as_millis() as u64, "connected");
        Ok(Arc::new(session))
    }

    /// Forgets the session of `target` if it is still `stale`, so the next use reconnects.
    fn forget(&self, target: &Target, stale: &Arc<Session>) {
        let mut slots = self.slots();
        let is_stale = slots.get(target).and_then(|slot| slot.get()).is_some_and(|current| Arc::ptr_eq(current, stale));
        if is_stale {
            slots.remove(target);
        }
    }

    async fn close_target(&self, target: &Target) {
        let Some(slot) = self.slots().remove(target) else { return };
        let Some(session) = Arc::into_inner(slot).and_then(OnceCell::into_inner) else { return };
        match Arc::try_unwrap(session) {
            Ok(session) => {
                if let Err(err) = session.close().await {
                    debug!(host = %target.host, user = %target.user, action = "ssh-close", "closing: {}", error_chain(&err));
                }
            }
            // Still in use by a running command: the last holder's drop stops the master.
            Err(_shared) => {}
        }
        debug!(host = %target.host, user = %target.user, action = "ssh-close", "master connection closed");
    }

    async fn run_command(&self, target: &Target, command: &RemoteCommand) -> Result<CommandOutput, SshError> {
        let session = self.session(target).await?;
        match run_on(&session, target, command, self.options.command_timeout).await {
            // The master went away (idle exit, network): reconnect once, the command never started.
            Err(Attempt::NotStarted) => {
                info!(host = %target.host, action = %command.action, "the master connection was gone; reconnecting");
                self.forget(target, &session);
                let session = self.session(target).await?;
                run_on(&session, target, command, self.options.command_timeout).await.map_err(|attempt| match attempt {
                    Attempt::NotStarted => {
                        SshError::Disconnected { target: target.clone(), action: command.action.clone() }
                    }
                    Attempt::Failed(err) => err,
                })
            }
            Err(Attempt::Failed(err)) => {
                if matches!(err, SshError::Disconnected { .. }) {
                    self.forget(target, &session);
                }
                Err(err)
            }
            Ok(output) => Ok(output),
        }
    }
}

impl RemoteShell for SshPool {
    fn run<'a>(
        &'a self,
        target: &'a Target,
        command: &'a RemoteCommand,
    ) -> BoxFuture<'a, Result<CommandOutput, SshError>> {
        Box::pin(self.run_command(target, command))
    }

    fn close<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, ()> {
        Box::pin(self.close_target(target))
    }
}

enum Attempt {
    /// The channel could not be opened; nothing ran.
    NotStarted,
    Failed(SshError),
}

async fn run_on(
    session: &Arc<Session>,
    target: &Target,
    command: &RemoteCommand,
    default_timeout: Duration,
) -> Result<CommandOutput, Attempt> {
    let line = command.command_line();
    let timeout = command.timeout.unwrap_or(default_timeout);
    let failed = |detail: String| {
        Attempt::Failed(SshError::Local { target: target.clone(), action: command.action.clone(), detail })
    };
    debug!(host = %target.host, user = %target.user, action = %command.action, command = %line, "running");
    let started = Instant::now();

    let mut child = Session::to_raw_command(session.clone(), &line)
        .stdin(if command.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .await
        .map_err(|err| match err {
            openssh::Error::Disconnected | openssh::Error::SshMux(_) => Attempt::NotStarted,
            other => failed(format!("cannot start: {}", error_chain(&other))),
        })?;

    let stdin = child.stdin().take();
    let stdout = child.stdout().take();
    let stderr = child.stderr().take();
    let input = command.stdin.as_ref().map(|secret| secret.expose().as_bytes().to_vec());
    let finished = async move {
        let feed = async move {
            if let (Some(mut pipe), Some(bytes)) = (stdin, input) {
                // A command that exits without reading its input is not an error of ours.
                let _ = pipe.write_all(&bytes).await;
                let _ = pipe.shutdown().await;
            }
        };
        let ((), out, err) = tokio::join!(feed, read_all(stdout), read_all(stderr));
        let status = child.wait().await;
        (out, err, status)
    };
    let (stdout, stderr, status) = match tokio::time::timeout(timeout, finished).await {
        Ok(done) => done,
        // Dropping the child closes its channel; the remote process gets EOF and SIGPIPE.
        Err(_) => {
            debug!(host = %target.host, action = %command.action, "timed out after {}s", timeout.as_secs());
            return Err(Attempt::Failed(SshError::Timeout {
                target: target.clone(),
                action: command.action.clone(),
                after: timeout,
            }));
        }
    };
    let stdout = stdout.map_err(|err| failed(format!("reading its output: {err}")))?;
    let stderr = stderr.map_err(|err| failed(format!("reading its output: {err}")))?;
    let exit_status = match status {
        Ok(status) => status.code().unwrap_or(-1),
        // native mux reports 127 as an error; it is a plain exit status to us.
        Err(openssh::Error::Remote(err)) if err.kind() == std::io::ErrorKind::NotFound => 127,
        Err(openssh::Error::RemoteProcessTerminated | openssh::Error::Disconnected) => {
            return Err(Attempt::Failed(SshError::Disconnected {
                target: target.clone(),
                action: command.action.clone(),
            }))
        }
        Err(err) => return Err(failed(error_chain(&err))),
    };
    let duration = started.elapsed();
    debug!(
        host = %target.host,
        action = %command.action,
        exit_status,
        elapsed_ms = duration.as_millis() as u64,
        "finished"
    );
    Ok(CommandOutput { command: line, exit_status, stdout, stderr, duration })
}

async fn read_all(pipe: Option<impl AsyncRead + Unpin>) -> std::io::Result<String> {
    let mut bytes = Vec::new();
    if let Some(mut pipe) = pipe {
        pipe.read_to_end(&mut bytes).await?;
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// An error and its causes on one line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_is_expanded() {
        let Some(home) = std::env::var_os("HOME") else { return };
        assert_eq!(expand_home(Path::new("~/.ssh/id_ed25519")), PathBuf::from(home).join(".ssh/id_ed25519"));
        assert_eq!(expand_home(Path::new("/etc/ssh/key")), PathBuf::from("/etc/ssh/key"));
        assert_eq!(expand_home(Path::new("~other/key")), PathBuf::from("~other/key"));
    }
}
