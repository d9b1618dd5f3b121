//! Long jobs detached on a remote host: Kayobe, playbooks, package updates.
//!
//! A job runs in its own session (`setsid nohup … &`) with a folder of its
//! own on the host (`command`, `pid`, `log`, `exit`), so an SSH drop, a
//! Ctrl-C or a crash of the tool leaves it running. The tool looks at it
//! with short SSH commands until it ends or its own timeout (hours for
//! Kayobe, not the SSH command timeout) runs out. The journal records the job
//! before it starts; the next run finds a job no run saw end and waits for it
//! (re-attaches) instead of starting another, and reads the exit status and
//! log of a job that ended while no one was looking.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{HostError, Remote};
use crate::journal::{Journal, RemoteJob};
use crate::ssh::{escape, CommandOutput, RemoteCommand, RemoteShell, Target};

/// Starts the job once per folder: `mkdir` of the folder is the lock, so a
/// retried start of the same job does not start it twice. Arguments: the
/// folder, the file to source first (or empty), the job's script, then the
/// program and its arguments.
const START: &str = r#"dir=$1 env=$2 job=$3; shift 3
mkdir -p "$(dirname "$dir")" || exit 97
mkdir "$dir" 2>/dev/null || { echo already started; exit 0; }
printf '%s\n' "$*" > "$dir/command"
setsid nohup bash -c "$job" hvmigrate-job "$dir" "$env" "$@" > /dev/null 2>&1 < /dev/null &
echo $! > "$dir/pid"
echo started"#;

/// The job itself: its output in `log`, then its exit status in `exit`.
const JOB: &str = r#"dir=$1 env=$2; shift 2
(
if [ -n "$env" ]; then . "$env" || { echo "cannot source $env"; exit 98; }; fi
"$@"
) > "$dir/log" 2>&1 < /dev/null
echo $? > "$dir/exit""#;

/// Where a job stands: `exit N`, `running`, `gone` (no process, no exit
/// status) or `missing` (never started).
const POLL: &str = r#"dir=$1
if [ -f "$dir/exit" ]; then echo "exit $(cat "$dir/exit")"
elif [ -d "$dir" ]; then
  if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then echo running; else echo gone; fi
else echo missing; fi"#;

/// SSH failures in a row while looking at a running job before giving up on
/// this run (the job keeps running; the next run re-attaches).
const POLL_FAILURES: u32 = 5;

/// The first pause between two looks at a running job.
const FIRST_PAUSE: Duration = Duration::from_millis(50);

/// What to run, and for how long at most.
#[derive(Clone, Debug)]
pub struct JobSpec {
    /// What it is, the same for every run of the same work (`kayobe-host-configure`).
    pub action: String,
    /// A bash file sourced first (the Kayobe environment), if any.
    pub environment: Option<String>,
    /// The program and its arguments.
    pub command: Vec<String>,
    pub timeout: Duration,
}

impl JobSpec {
    fn command_line(&self) -> String {
        escape::command_line(self.command.iter().map(String::as_str))
    }
}

/// How jobs are kept and watched, and where they are recorded.
#[derive(Clone)]
pub struct JobContext {
    /// The jobs' folders, relative to the login's home.
    pub folder: String,
    pub poll_interval: Duration,
    /// `None` in unit tests: nothing to re-attach to.
    pub journal: Option<Arc<Journal>>,
    pub run_id: String,
}

/// A job that ended, with what it wrote.
#[derive(Clone, Debug)]
pub struct FinishedJob {
    pub id: String,
    /// Its log on the host, relative to the login's home.
    pub log_path: String,
    /// The exit status and the log, as a command's output.
    pub output: CommandOutput,
    /// This run waited for a job an earlier run started.
    pub reattached: bool,
}

/// Runs jobs on one host.
pub struct RemoteJobs {
    remote: Remote,
    context: JobContext,
}

enum State {
    Exited(i32),
    Running,
    Gone,
    Missing,
}

impl RemoteJobs {
    pub fn new(shell: Arc<dyn RemoteShell>, target: Target, context: JobContext) -> Self {
        RemoteJobs { remote: Remote::new(shell, target), context }
    }

    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    /// Runs `spec` to its end, or waits for the same action's job that an
    /// earlier run left unfinished. A job that ran another command (another
    /// batch) is awaited first, then this one starts.
    pub async fn run(&self, spec: &JobSpec) -> Result<FinishedJob, HostError> {
        let target = self.remote.target().to_string();
        let command = spec.command_line();
        if let Some(journal) = &self.context.journal {
            let earlier = journal.unfinished_job(&target, &spec.action).map_err(|err| self.failed(spec, err))?;
            if let Some(job) = earlier {
                tracing::info!(job = %job.id, folder = %job.folder, started = %job.started_at, "re-attaching to a job an earlier run left running");
                let same = job.command == command;
                match self.wait(&job, spec, same).await? {
                    Some(finished) if same => return Ok(FinishedJob { reattached: true, ..finished }),
                    _ => {}
                }
            }
        }
        // The same job ended in a run killed before it could use the result: the result stands.
        if let Some(journal) = &self.context.journal {
            let ended = journal
                .reusable_job(&target, &spec.action, &command, &self.context.run_id)
                .map_err(|err| self.failed(spec, err))?;
            if let Some(job) = ended {
                match self.log(&job).await {
                    Ok(log) => {
                        tracing::info!(job = %job.id, "the result of a job an interrupted run saw end");
                        return Ok(self.finished(&job, job.exit_status.unwrap_or(-1), log, true));
                    }
                    Err(err) => {
                        tracing::warn!(job = %job.id, %err, "the log of an earlier job is gone: running it again")
                    }
                }
            }
        }
        let id = new_job_id(&spec.action);
        let job = RemoteJob {
            folder: format!("{}/{id}", self.context.folder.trim_end_matches('/')),
            id,
            run_id: self.context.run_id.clone(),
            target,
            action: spec.action.clone(),
            command,
            started_at: crate::journal::now(),
            ended_at: None,
            exit_status: None,
            state: "running".into(),
        };
        // Recorded before it starts: a crash in between leaves a job the next run starts or finds.
        if let Some(journal) = &self.context.journal {
            journal.job_started(&job).map_err(|err| self.failed(spec, err))?;
        }
        match self.start(&job, spec).await {
            Ok(()) => {}
            // The answer was lost, not necessarily the start: look, and start it if it is not there.
            Err(HostError::Ssh(err)) => tracing::info!(job = %job.id, %err, "no answer to the start; looking"),
            Err(err) => return Err(err),
        }
        match self.wait(&job, spec, true).await? {
            Some(finished) => Ok(finished),
            None => Err(self.unfinished(spec, &job, "it did not start".into())),
        }
    }

    /// Starts the job in its folder (a no-op when the folder exists).
    async fn start(&self, job: &RemoteJob, spec: &JobSpec) -> Result<(), HostError> {
        let environment = spec.environment.clone().unwrap_or_default();
        let command = RemoteCommand::new(&spec.action, "bash")
            .args(["-c", START, "bash", &job.folder, &environment, JOB])
            .args(spec.command.iter().cloned());
        let output = self.remote.run(&command).await?;
        if !output.success() {
            return Err(self.remote.failed(&spec.action, &output));
        }
        tracing::info!(job = %job.id, folder = %job.folder, answer = output.stdout.trim(), "remote job started");
        Ok(())
    }

    /// Waits for the job to end; `None` when it never started and `start_if_missing` is false.
    async fn wait(
        &self,
        job: &RemoteJob,
        spec: &JobSpec,
        start_if_missing: bool,
    ) -> Result<Option<FinishedJob>, HostError> {
        let deadline = deadline_of(job, spec.timeout);
        let mut failures = 0;
        let mut gone_once = false;
        let mut started_here = false;
        // Short jobs end soon: look again after a short pause, doubling up to the poll interval.
        let mut pause = self.context.poll_interval.min(FIRST_PAUSE);
        loop {
            let state = match self.poll(job, spec).await {
                Ok(state) => {
                    failures = 0;
                    state
                }
                Err(err) => {
                    failures += 1;
                    if failures >= POLL_FAILURES {
                        return Err(self.unfinished(
                            spec,
                            job,
                            format!("cannot look at it ({err}); it may still run, the next run waits for it"),
                        ));
                    }
                    tracing::info!(job = %job.id, %err, "cannot look at the job now; trying again");
                    tokio::time::sleep(self.context.poll_interval).await;
                    continue;
                }
            };
            match state {
                State::Exited(status) => return self.finish(job, status).await.map(Some),
                State::Missing if start_if_missing && !started_here => {
                    // Recorded, then the tool died before the job started.
                    started_here = true;
                    self.start(job, spec).await?;
                    continue;
                }
                State::Missing => {
                    self.record_end(job, None);
                    return Ok(None);
                }
                State::Gone if !gone_once => gone_once = true,
                State::Gone => {
                    self.record_end(job, None);
                    let log = self.log(job).await.unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(5).collect();
                    let tail: Vec<&str> = tail.into_iter().rev().collect();
                    return Err(self.unfinished(
                        spec,
                        job,
                        format!(
                            "it ended without an exit status (killed, or the host restarted); the end of its log: {}",
                            tail.join(" / ")
                        ),
                    ));
                }
                State::Running => gone_once = false,
            }
            if Instant::now() >= deadline {
                return Err(self.unfinished(
                    spec,
                    job,
                    format!(
                        "still running after {}; it is left running and the next run waits for it again",
                        humantime(spec.timeout)
                    ),
                ));
            }
            tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
            pause = (pause * 2).min(self.context.poll_interval);
        }
    }

    async fn poll(&self, job: &RemoteJob, spec: &JobSpec) -> Result<State, HostError> {
        let command = RemoteCommand::script(format!("{}-poll", spec.action), POLL, &[&job.folder]);
        let output = self.remote.run_ok(&command).await?;
        let answer = output.stdout.trim();
        Ok(match answer.split_once(' ') {
            // An empty or half-written status file: it is being written.
            Some(("exit", status)) => status.trim().parse().map_or(State::Running, State::Exited),
            _ if answer == "running" => State::Running,
            _ if answer == "gone" => State::Gone,
            _ if answer == "missing" => State::Missing,
            _ => return Err(self.remote.unexpected(&command.action, format!("'{answer}'"))),
        })
    }

    async fn log(&self, job: &RemoteJob) -> Result<String, HostError> {
        let command = RemoteCommand::new(format!("{}-log", job.action), "cat").arg(format!("{}/log", job.folder));
        Ok(self.remote.run_ok(&command).await?.stdout)
    }

    async fn finish(&self, job: &RemoteJob, status: i32) -> Result<FinishedJob, HostError> {
        let log = self.log(job).await?;
        self.record_end(job, Some(status));
        tracing::info!(job = %job.id, exit = status, "remote job ended");
        Ok(self.finished(job, status, log, false))
    }

    fn finished(&self, job: &RemoteJob, status: i32, log: String, reattached: bool) -> FinishedJob {
        let ended = job.ended_at.as_deref().and_then(|at| at.parse().ok()).unwrap_or_else(crate::clock::now);
        let duration = ended.duration_since(job.started_at.parse().unwrap_or(ended)).unsigned_abs();
        FinishedJob {
            id: job.id.clone(),
            log_path: format!("{}/log", job.folder),
            output: CommandOutput {
                command: job.command.clone(),
                exit_status: status,
                stdout: log,
                stderr: String::new(),
                duration,
            },
            reattached,
        }
    }

    fn record_end(&self, job: &RemoteJob, status: Option<i32>) {
        if let Some(journal) = &self.context.journal {
            if let Err(err) = journal.job_ended(&job.id, status) {
                tracing::error!(job = %job.id, %err, "could not journal the end of the job");
            }
        }
    }

    fn unfinished(&self, spec: &JobSpec, job: &RemoteJob, reason: String) -> HostError {
        HostError::Unfinished {
            target: self.remote.target().clone(),
            action: spec.action.clone(),
            reason: format!("job {} (folder {}): {reason}", job.id, job.folder),
        }
    }

    fn failed(&self, spec: &JobSpec, err: crate::error::Error) -> HostError {
        HostError::Unfinished {
            target: self.remote.target().clone(),
            action: spec.action.clone(),
            reason: format!("not started: {err}"),
        }
    }
}

/// When a job must have ended: its timeout after it started (by the journal's clock).
fn deadline_of(job: &RemoteJob, timeout: Duration) -> Instant {
    let started: Option<jiff::Timestamp> = job.started_at.parse().ok();
    let elapsed = started.map(|started| crate::clock::now().duration_since(started).unsigned_abs()).unwrap_or_default();
    Instant::now() + timeout.saturating_sub(elapsed)
}

fn humantime(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0..=119 => format!("{secs} s"),
        120..=7199 => format!("{} min", secs / 60),
        _ => format!("{:.1} h", secs as f64 / 3600.0),
    }
}

/// `kayobe-host-configure-20261121T051300Z-4f2a`: sorts by time, unique per start.
fn new_job_id(action: &str) -> String {
    let now = jiff::Timestamp::now();
    let stamp = now.strftime("%Y%m%dT%H%M%SZ");
    let salt = (now.subsec_nanosecond() as u32 ^ std::process::id().rotate_left(16)) & 0xffff;
    format!("{action}-{stamp}-{salt:04x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssh::fake::{FakeShell, Reply};

    fn jobs(shell: Arc<FakeShell>, journal: Option<Arc<Journal>>) -> RemoteJobs {
        let context = JobContext {
            folder: "hvmigrate-jobs".into(),
            poll_interval: Duration::from_millis(1),
            journal,
            run_id: "r1".into(),
        };
        RemoteJobs::new(shell, Target::new("stack", "kayobe"), context)
    }

    fn spec() -> JobSpec {
        JobSpec {
            action: "kayobe-host-configure".into(),
            environment: Some("env.sh".into()),
            command: vec!["kayobe".into(), "overcloud".into(), "host".into(), "configure".into()],
            timeout: Duration::from_secs(60),
        }
    }

    fn poll_line(folder: &str) -> String {
        RemoteCommand::script("x", POLL, &[folder]).command_line()
    }

    /// The host-configure job an earlier run (`r0`) recorded.
    fn earlier_job() -> RemoteJob {
        RemoteJob {
            id: "j0".into(),
            run_id: "r0".into(),
            target: "stack@kayobe".into(),
            action: "kayobe-host-configure".into(),
            command: spec().command_line(),
            folder: "hvmigrate-jobs/j0".into(),
            started_at: crate::journal::now(),
            ended_at: None,
            exit_status: None,
            state: "running".into(),
        }
    }

    #[tokio::test]
    async fn a_job_recorded_but_never_started_is_started_under_its_own_id() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(Journal::open(&dir.path().join("j.db")).unwrap());
        let earlier = earlier_job();
        journal.job_started(&earlier).unwrap();
        let shell = Arc::new(FakeShell::new());
        let poll = poll_line("hvmigrate-jobs/j0");
        shell.on(&poll, Reply::ok("missing\n")).on(&poll, Reply::ok("exit 0\n"));
        let start = RemoteCommand::new("x", "bash")
            .args(["-c", START, "bash", "hvmigrate-jobs/j0", "env.sh", JOB])
            .args(spec().command)
            .command_line();
        shell.on(&start, Reply::ok("started\n"));
        shell.on("cat hvmigrate-jobs/j0/log", Reply::ok("done\n"));
        let finished = jobs(shell.clone(), Some(journal.clone())).run(&spec()).await.expect("started, then ended");
        assert_eq!((finished.id.as_str(), finished.output.exit_status), ("j0", 0));
        let lines = shell.command_lines();
        assert_eq!(lines.iter().filter(|line| **line == start).count(), 1, "{lines:#?}");
        assert_eq!(lines.len(), 4, "look, start, look, log: {lines:#?}");
    }

    #[tokio::test]
    async fn an_unfinished_job_is_awaited_not_started_again() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(Journal::open(&dir.path().join("j.db")).unwrap());
        journal
            .start_run(&crate::journal::NewRun {
                id: "r0",
                step: "adoption",
                operator: "AB",
                hypervisors_file: "hv.txt",
                dry_run: false,
                forced: false,
            })
            .unwrap();
        let earlier = earlier_job();
        journal.job_started(&earlier).unwrap();
        let shell = Arc::new(FakeShell::new());
        let poll = poll_line("hvmigrate-jobs/j0");
        shell.on(&poll, Reply::ok("running\n")).on(&poll, Reply::ok("exit 0\n"));
        shell.on("cat hvmigrate-jobs/j0/log", Reply::ok("PLAY RECAP\n"));
        let finished = jobs(shell.clone(), Some(journal.clone())).run(&spec()).await.expect("awaited");
        assert!(finished.reattached);
        assert_eq!((finished.output.exit_status, finished.output.stdout.as_str()), (0, "PLAY RECAP\n"));
        assert!(shell.command_lines().iter().all(|line| !line.starts_with("bash -c")), "{:?}", shell.command_lines());
        assert_eq!(journal.unfinished_job("stack@kayobe", "kayobe-host-configure").unwrap(), None);
    }

    #[tokio::test]
    async fn a_timeout_leaves_the_job_running_and_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(Journal::open(&dir.path().join("j.db")).unwrap());
        let shell = Arc::new(FakeShell::new());
        // The folder has a time stamp: one answer for every line. The start
        // succeeds, and every look says running.
        shell.on_user("stack", Reply::ok("running\n"));
        let jobs = jobs(shell.clone(), Some(journal.clone()));
        let spec = JobSpec { timeout: Duration::from_millis(20), ..spec() };
        let err = jobs.run(&spec).await.expect_err("times out");
        let message = err.to_string();
        assert!(
            message.contains("still running after") && message.contains("hvmigrate-jobs/kayobe-host-configure-"),
            "{message}"
        );
        let left = journal.unfinished_job("stack@kayobe", "kayobe-host-configure").unwrap().expect("still known");
        assert_eq!(left.command, "kayobe overcloud host configure");
        let start = &shell.command_lines()[0];
        assert!(start.starts_with("bash -c ") && start.contains("setsid nohup bash -c"), "{start}");
        assert!(start.ends_with(" kayobe overcloud host configure"), "{start}");
    }
}
