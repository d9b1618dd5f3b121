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
    /// The tool's own known-hosts file: host keys it pinned after checking
    /// a reinstalled host's identity. A host pinned there is checked
    /// against it instead of `known_hosts` (see [`super::pinned`]).
    pub pinned_known_hosts: Option<PathBuf>,
    /// Accept (and record in `known_hosts`) the key of a host it has no key
    /// for: only for the one verifying connection to a reinstalled host,
    /// whose `known_hosts` is a fresh temporary file.
    pub accept_new_host_keys: bool,
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
            pinned_known_hosts: Some(super::pinned::pinned_file(ssh)),
            accept_new_host_keys: false,
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
    /// Private folder (0700) for the control sockets; removed when the pool goes.
    control_dir: tempfile::TempDir,
}

impl SshPool {
    pub fn new(options: SshOptions) -> std::io::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        // Short path: a control socket path must fit in 108 bytes. Private: a socket there is a login.
        let control_dir = tempfile::Builder::new()
            .prefix("hvmigrate-ssh.")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(std::env::temp_dir())?;
        lock(&CONTROL_DIRS).push(control_dir.path().to_owned());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(close_masters_on_termination());
        }
        Ok(SshPool { options, sessions: Mutex::new(HashMap::new()), control_dir })
    }

    /// The private folder of the control sockets.
    pub fn control_dir(&self) -> &Path {
        self.control_dir.path()
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
        if CLOSING.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(SshError::Connect { target: target.clone(), detail: "the run is stopping".into() });
        }
        let options = &self.options;
        let mut builder = SessionBuilder::default();
        let known_hosts = match &options.pinned_known_hosts {
            Some(pinned) if super::pinned::is_pinned(pinned, &target.host) => pinned.clone(),
            _ => options.known_hosts.clone(),
        };
        let check = if options.accept_new_host_keys { KnownHosts::Add } else { KnownHosts::Strict };
        builder
            .user(target.user.clone())
            .known_hosts_check(check)
            .user_known_hosts_file(&known_hosts)
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
                return Err(SshError::from_connect_log(target, known_hosts, &err.to_string()))
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

impl Drop for SshPool {
    fn drop(&mut self) {
        lock(&CONTROL_DIRS).retain(|dir| dir != self.control_dir.path());
    }
}

/// The control folders of the pools alive in this process.
static CONTROL_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// Stops every master connection of this process and removes their control
/// folders: for the exits that skip destructors (a signal, an abort), so no
/// master outlives the run for `ControlPersist` with a socket left behind.
pub fn close_every_master() {
    CLOSING.store(true, std::sync::atomic::Ordering::SeqCst);
    let dirs = std::mem::take(&mut *lock(&CONTROL_DIRS));
    for dir in dirs {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let socket = entry.path().join("master");
            if socket.exists() {
                // `-F /dev/null`: the user's ssh_config has no say in stopping our own master.
                let _ = std::process::Command::new("ssh")
                    .args(["-F", "/dev/null", "-S"])
                    .arg(&socket)
                    .args(["-O", "exit", "hvmigrate-master"])
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status();
            }
        }
        // A master still starting has no socket to be asked through yet.
        signal_processes_naming(&dir);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Set once the masters are being closed for good: no new one starts.
static CLOSING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// SIGTERM to every process of ours whose command line names `dir` (only our
/// ssh masters do: the folder's name is random).
fn signal_processes_naming(dir: &Path) {
    let needle = dir.as_os_str().as_encoded_bytes();
    let own = std::process::id();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else { continue };
        if pid == own {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        if cmdline.windows(needle.len()).any(|window| window == needle) {
            // SAFETY: kill(2) with a valid signal; a process gone meanwhile is an ignored ESRCH.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
    }
}

/// Set by a command that stops gracefully on SIGTERM and SIGHUP (`run`: the
/// running actions finish, and the masters close as the run ends).
static GRACEFUL_TERMINATION: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// SIGTERM and SIGHUP stop this process gracefully, by its own handler.
pub fn terminate_gracefully() {
    GRACEFUL_TERMINATION.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// SIGTERM or SIGHUP would end the process without destructors: close the
/// masters first, then exit as the signal would have (128 + its number) —
/// unless the command stops gracefully on them.
async fn close_masters_on_termination() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut terminate), Ok(mut hangup)) = (signal(SignalKind::terminate()), signal(SignalKind::hangup())) else {
        return;
    };
    let number = loop {
        let number = tokio::select! {
            _ = terminate.recv() => libc::SIGTERM,
            _ = hangup.recv() => libc::SIGHUP,
        };
        if !GRACEFUL_TERMINATION.load(std::sync::atomic::Ordering::SeqCst) {
            break number;
        }
    };
    tracing::warn!("stopped by signal {number}: closing the SSH master connections");
    let _ = tokio::task::spawn_blocking(close_every_master).await;
    std::process::exit(128 + number);
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

    if let Err(why) = crate::fence::may_act() {
        let action = command.action.clone();
        return Err(Attempt::Failed(SshError::Fenced { target: target.clone(), action, why }));
    }
    // The remote sshd makes the login shell the leader of a new session and
    // process group (OpenSSH session.c, do_exec_no_pty: setsid()); its id,
    // reported first, is what to stop if the command times out.
    let mut child = Session::to_raw_command(session.clone(), format!("{PID_REPORT}{line}"))
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
    let remote_pid = std::sync::OnceLock::new();
    let pid_slot = &remote_pid;
    let finished = async move {
        let feed = async move {
            if let (Some(mut pipe), Some(bytes)) = (stdin, input) {
                // A command that exits without reading its input is not an error of ours.
                let _ = pipe.write_all(&bytes).await;
                let _ = pipe.shutdown().await;
            }
        };
        let ((), out, err) = tokio::join!(feed, read_capped(stdout, Some(pid_slot)), read_capped(stderr, None));
        let status = child.wait().await;
        (out, err, status)
    };
    let (stdout, stderr, status) = match tokio::time::timeout(timeout, finished).await {
        Ok(done) => done,
        // Closing the channel alone leaves the remote process running: stop its process group.
        Err(_) => {
            debug!(host = %target.host, action = %command.action, "timed out after {}s", timeout.as_secs());
            stop_remote(session, target, &command.action, remote_pid.get().copied()).await;
            return Err(Attempt::Failed(SshError::Timeout {
                target: target.clone(),
                action: command.action.clone(),
                after: timeout,
            }));
        }
    };
    let stdout = stdout.map_err(|err| failed(format!("reading its output: {err}")))?.into_text(
        "output",
        target,
        &command.action,
    );
    let stderr = stderr.map_err(|err| failed(format!("reading its output: {err}")))?.into_text(
        "error output",
        target,
        &command.action,
    );
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

/// At most this much of a command's stdout and of its stderr is kept: the
/// first half and the last half, so both the start and the verdict of a long
/// log survive. A remote host cannot make us hold more.
pub const OUTPUT_LIMIT_BYTES: usize = 8 << 20;

/// What every command line starts with: the shell reports its process id,
/// then becomes the command (`exec`), keeping that id.
const PID_REPORT: &str = "echo hvmigrate-pid:$$; exec ";
const PID_MARKER: &str = "hvmigrate-pid:";

/// Reads a pipe to its end, keeping its head and tail within
/// [`OUTPUT_LIMIT_BYTES`]. On standard output (`pid` given), a first line
/// with the process id is taken out and stored.
async fn read_capped(
    pipe: Option<impl AsyncRead + Unpin>,
    pid: Option<&std::sync::OnceLock<u32>>,
) -> std::io::Result<Capped> {
    let mut capped = Capped::new(OUTPUT_LIMIT_BYTES);
    let Some(mut pipe) = pipe else { return Ok(capped) };
    // The first line, until it is known to be the report (or not).
    let mut first: Option<Vec<u8>> = pid.map(|_| Vec::new());
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let read = pipe.read(&mut chunk).await?;
        if read == 0 {
            break;
        }
        let mut bytes = &chunk[..read];
        if let (Some(line), Some(pid)) = (first.as_mut(), pid) {
            match bytes.iter().position(|b| *b == b'\n') {
                Some(end) => {
                    line.extend_from_slice(&bytes[..=end]);
                    bytes = &bytes[end + 1..];
                    let text = String::from_utf8_lossy(line);
                    match text.trim_end().strip_prefix(PID_MARKER).and_then(|id| id.parse().ok()) {
                        Some(id) => {
                            let _ = pid.set(id);
                        }
                        None => capped.push(line),
                    }
                    first = None;
                }
                None if line.len() + bytes.len() > 64 => {
                    capped.push(line);
                    first = None;
                }
                None => {
                    line.extend_from_slice(bytes);
                    continue;
                }
            }
        }
        capped.push(bytes);
    }
    if let Some(line) = first {
        capped.push(&line);
    }
    Ok(capped)
}

/// Stops the process group of a timed-out command: TERM, then KILL for
/// what is left after two seconds. Its outcome is only logged: the command
/// has already failed.
async fn stop_remote(session: &Arc<Session>, target: &Target, action: &str, pid: Option<u32>) {
    let Some(pid) = pid.filter(|pid| *pid > 1) else {
        tracing::warn!(host = %target.host, action, "timed out before it reported its process id; it may still run");
        return;
    };
    // Exit 3: nothing this login may signal (ended meanwhile, or run as another user through sudo).
    let script =
        format!("kill -s TERM -- -{pid} 2>/dev/null || exit 3; sleep 2; kill -s KILL -- -{pid} 2>/dev/null; exit 0");
    let stop = async {
        Session::to_raw_command(session.clone(), script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
    };
    let (host, detail) = (&target.host, "timed out");
    match tokio::time::timeout(Duration::from_secs(15), stop).await {
        Ok(Ok(status)) if status.success() => {
            info!(%host, action, pid, "{detail}: its remote process group was stopped")
        }
        Ok(Ok(_)) => tracing::warn!(%host, action, pid, "{detail}: no process of its group could be signalled"),
        Ok(Err(err)) => tracing::warn!(%host, action, pid, "{detail}; stopping it failed: {}", error_chain(&err)),
        Err(_) => tracing::warn!(%host, action, pid, "{detail}; stopping it did not finish"),
    }
}

/// The head and tail of a stream, and how much was cut between them.
struct Capped {
    head: Vec<u8>,
    tail: std::collections::VecDeque<u8>,
    half: usize,
    cut: u64,
}

impl Capped {
    fn new(limit: usize) -> Self {
        Capped { head: Vec::new(), tail: std::collections::VecDeque::new(), half: limit / 2, cut: 0 }
    }

    fn push(&mut self, mut bytes: &[u8]) {
        let room = self.half.saturating_sub(self.head.len());
        let (to_head, rest) = bytes.split_at(room.min(bytes.len()));
        self.head.extend_from_slice(to_head);
        bytes = rest;
        self.tail.extend(bytes);
        let excess = self.tail.len().saturating_sub(self.half);
        if excess > 0 {
            self.tail.drain(..excess);
            self.cut += excess as u64;
        }
    }

    /// The text kept, with a line saying what was cut and from what.
    fn into_text(self, stream: &str, target: &Target, action: &str) -> String {
        let mut text = String::from_utf8_lossy(&self.head).into_owned();
        if self.cut > 0 {
            let notice = format!(
                "[hvmigrate: {} bytes cut from the middle of the {stream} of {action} on {target}; \
                 the first and last {} bytes are kept]",
                self.cut, self.half
            );
            tracing::warn!(host = %target.host, action, "{notice}");
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&notice);
            text.push('\n');
        }
        let (front, back) = self.tail.as_slices();
        text.push_str(&String::from_utf8_lossy(&[front, back].concat()));
        text
    }
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
    fn output_beyond_the_limit_keeps_head_and_tail() {
        let mut capped = Capped::new(8);
        for chunk in [&b"head"[..], b"-middle-", b"more-", b"tail"] {
            capped.push(chunk);
        }
        let text = capped.into_text("output", &Target::root("hv01"), "dnf-update");
        assert_eq!(
            text,
            "head\n[hvmigrate: 13 bytes cut from the middle of the output of dnf-update on root@hv01; \
             the first and last 4 bytes are kept]\ntail"
        );
        let mut small = Capped::new(8);
        small.push(b"ok\n");
        assert_eq!(small.into_text("output", &Target::root("hv01"), "x"), "ok\n");
    }

    #[tokio::test]
    async fn the_process_id_report_is_taken_out_of_the_output() {
        let pid = std::sync::OnceLock::new();
        let output = read_capped(Some(&b"hvmigrate-pid:4242\nline 1\nline 2\n"[..]), Some(&pid)).await.unwrap();
        assert_eq!(pid.get(), Some(&4242));
        assert_eq!(output.into_text("output", &Target::root("hv01"), "x"), "line 1\nline 2\n");
        // A shell that printed something else first: the output stays whole, no id.
        let pid = std::sync::OnceLock::new();
        let output = read_capped(Some(&b"Welcome\nhvmigrate-pid:1\n"[..]), Some(&pid)).await.unwrap();
        assert_eq!(pid.get(), None);
        assert_eq!(output.into_text("output", &Target::root("hv01"), "x"), "Welcome\nhvmigrate-pid:1\n");
    }

    #[test]
    fn home_is_expanded() {
        let Some(home) = std::env::var_os("HOME") else { return };
        assert_eq!(expand_home(Path::new("~/.ssh/id_ed25519")), PathBuf::from(home).join(".ssh/id_ed25519"));
        assert_eq!(expand_home(Path::new("/etc/ssh/key")), PathBuf::from("/etc/ssh/key"));
        assert_eq!(expand_home(Path::new("~other/key")), PathBuf::from("~other/key"));
    }
}
