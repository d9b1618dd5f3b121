//! Background jobs of the simulated machines: `command &` (with `setsid`,
//! `nohup`) runs at once against the world, but what it does after its first
//! slow command (a Kayobe run, a playbook, `sleep`) happens later, in real
//! time: its file writes and its effects on the site are queued with the
//! moment they are due and applied by the next command that reaches the
//! machine. Until then its pid is alive (`kill -0`), and `kill` drops what it
//! has not done yet. This is how a job outlives the SSH session that started
//! it, and how a tool that polls it sees it finish.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Login, Machine, Shell};
use crate::world::WorldState;

/// What a background process does after a delay.
#[derive(Clone, Debug)]
pub enum Change {
    /// A file written (or appended to) by the process, as its user.
    Write { user: String, path: String, content: String, append: bool },
    /// `kayobe overcloud host configure` finished on this host.
    HostConfigured(String),
    /// `kayobe overcloud service deploy` finished on this host: nova-compute runs.
    ServiceDeployed(String),
    /// `dnf update` finished on this hypervisor: the packages at their new versions.
    PackagesUpgraded { host: String, packages: Vec<(String, String)> },
}

#[derive(Clone, Debug)]
struct Pending {
    due: Instant,
    machine: Machine,
    pid: u32,
    change: Change,
}

#[derive(Clone, Debug)]
struct Process {
    machine: Machine,
    pid: u32,
    ends_at: Instant,
}

/// Every background process of the site, and what each will still do.
#[derive(Debug, Serialize)]
pub struct BackgroundJobs {
    #[serde(skip)]
    processes: Vec<Process>,
    #[serde(skip)]
    pending: Vec<Pending>,
    next_pid: u32,
}

impl Default for BackgroundJobs {
    fn default() -> Self {
        BackgroundJobs { processes: Vec::new(), pending: Vec::new(), next_pid: 20_000 }
    }
}

impl BackgroundJobs {
    fn new_pid(&mut self) -> u32 {
        self.next_pid += 1;
        self.next_pid
    }

    /// Whether `pid` runs on `machine` now.
    pub fn alive(&self, machine: &Machine, pid: u32) -> bool {
        let now = Instant::now();
        self.processes.iter().any(|process| &process.machine == machine && process.pid == pid && process.ends_at > now)
    }

    /// Ends a process: what it had not done yet never happens. Whether it ran.
    pub fn kill(&mut self, machine: &Machine, pid: u32) -> bool {
        if !self.alive(machine, pid) {
            return false;
        }
        self.pending.retain(|pending| !(&pending.machine == machine && pending.pid == pid));
        self.processes.retain(|process| !(&process.machine == machine && process.pid == pid));
        true
    }

    /// Background processes still running, site-wide.
    pub fn running(&self) -> usize {
        let now = Instant::now();
        self.processes.iter().filter(|process| process.ends_at > now).count()
    }
}

/// The background job a shell is running: when it started, its pid.
#[derive(Clone, Copy, Debug)]
pub struct JobClock {
    pub started: Instant,
    pub pid: u32,
}

impl WorldState {
    /// Applies what background processes were due to do by now, in order.
    pub fn advance_jobs(&mut self) {
        let now = Instant::now();
        if self.jobs.pending.iter().all(|pending| pending.due > now) {
            self.jobs.processes.retain(|process| process.ends_at > now);
            return;
        }
        self.jobs.pending.sort_by_key(|pending| pending.due);
        let due: Vec<Pending> = {
            let split = self.jobs.pending.partition_point(|pending| pending.due <= now);
            self.jobs.pending.drain(..split).collect()
        };
        for pending in due {
            apply(self, &pending.machine, pending.change);
        }
        self.jobs.processes.retain(|process| process.ends_at > now);
    }
}

fn apply(world: &mut WorldState, machine: &Machine, change: Change) {
    match change {
        Change::Write { user, path, content, append } => {
            let login = Login { user, sudo_password: None };
            let mut shell = Shell::new(world, machine.clone(), &login);
            // The process checked the path when it opened the file.
            let _ = shell.write_file(&path, &content, append);
        }
        Change::HostConfigured(fqdn) => {
            if let Some(host) = world.host_mut(&fqdn) {
                host.kayobe.host_configures += 1;
            }
        }
        Change::PackagesUpgraded { host, packages } => {
            if let Some(host) = world.host_mut(&host) {
                host.shell.packages.extend(packages);
            }
        }
        Change::ServiceDeployed(fqdn) => {
            let like_real = world.reinstall_like_real;
            if let Some(host) = world.host_mut(&fqdn) {
                host.kayobe.service_deploys += 1;
                start_nova_compute(host, like_real);
            }
        }
    }
}

/// nova-compute starting in its new container. Its service record exists
/// (the host was a compute node before), so without a local node identity
/// it refuses to start, as Nova 2023.1+ does
/// (nova/compute/manager.py, `_ensure_existing_node_identity`); with one
/// that names another node, Nova takes it as a new compute node.
fn start_nova_compute(host: &mut crate::world::Host, like_real: bool) {
    if like_real {
        match host.shell.files.get(super::KOLLA_COMPUTE_ID_PATH).map(|text| text.trim().to_owned()) {
            None => {
                let line =
                    format!("2026-01-05 09:00:00.000 7 ERROR oslo_service.service {}\n", super::NOVA_NO_NODE_IDENTITY);
                let log = host.shell.files.entry(super::KOLLA_NOVA_COMPUTE_LOG.to_owned()).or_default();
                log.push_str(&line);
                host.shell.directories.extend(["/var/log/kolla".to_owned(), "/var/log/kolla/nova".to_owned()]);
                host.compute.state = "down".into();
                return;
            }
            Some(uuid) if uuid != host.hypervisor_uuid => host.hypervisor_uuid = uuid,
            Some(_) => {}
        }
    }
    host.compute.state = "up".into();
}

impl Shell<'_> {
    /// `node &`: runs it as a background process (a copy of the shell's
    /// variables, its output discarded unless redirected); `$!` is its pid.
    pub(super) fn run_in_background(&mut self, node: &super::parse::Node) -> i32 {
        let pid = self.world.jobs.new_pid();
        let clock = JobClock { started: Instant::now(), pid };
        let saved = (self.env.clone(), self.positional.clone(), self.delay, self.job.replace(clock), self.exiting);
        self.delay = Duration::ZERO;
        let mut discarded = super::Io::default();
        self.exec(node, &mut discarded);
        let ends_at = clock.started + self.delay;
        self.world.jobs.processes.push(Process { machine: self.machine.clone(), pid, ends_at });
        (self.env, self.positional, self.delay, self.job, self.exiting) = saved;
        self.last_background = Some(pid);
        0
    }

    /// Does `change` now, or, in a background process past its first slow
    /// command, when the process gets there in real time.
    pub fn at_process_time(&mut self, change: Change) -> Option<Change> {
        match self.job {
            Some(job) if !self.delay.is_zero() => {
                let pending =
                    Pending { due: job.started + self.delay, machine: self.machine.clone(), pid: job.pid, change };
                self.world.jobs.pending.push(pending);
                None
            }
            _ => Some(change),
        }
    }

    /// Applies a change to the site now or when the process gets there.
    pub fn change_site(&mut self, change: Change) {
        if let Some(change) = self.at_process_time(change) {
            apply(self.world, &self.machine.clone(), change);
        }
    }

    /// A long remote job's run time: `minutes` simulated, each the world's
    /// `remote_job_minute` of real time.
    pub fn take_minutes(&mut self, minutes: u32) {
        self.delay += self.world.remote_job_minute * minutes;
    }
}

/// `kill [-0|-9|-TERM|-s SIG] PID...`
pub fn kill(shell: &mut Shell<'_>, args: &[String], io: &mut super::Io) -> i32 {
    let mut probe = false;
    let mut pids = Vec::new();
    let mut index = 0;
    let mut operands = false;
    while index < args.len() {
        match args[index].as_str() {
            // After `--` a negative number is a process group (`kill -- -PGID`).
            pid if operands => pids.push(pid.to_owned()),
            "--" => operands = true,
            "-0" => probe = true,
            "-s" | "-n" => index += 1,
            // Any other signal ends the process.
            flag if flag.starts_with('-') => {}
            pid => pids.push(pid.to_owned()),
        }
        index += 1;
    }
    if pids.is_empty() {
        io.err(&format!(
            "{}: kill: usage: kill [-s sigspec | -n signum | -sigspec] pid | jobspec ... or kill -l [sigspec]\n",
            shell.program
        ));
        return 2;
    }
    let mut status = 0;
    for text in pids {
        // A simulated process leads its own group: the group is its pid.
        let Ok(pid) = text.strip_prefix('-').unwrap_or(&text).parse::<u32>() else {
            io.err(&format!("{}: kill: {text}: arguments must be process or job IDs\n", shell.program));
            status = 1;
            continue;
        };
        let machine = shell.machine.clone();
        let found = if probe { shell.world.jobs.alive(&machine, pid) } else { shell.world.jobs.kill(&machine, pid) };
        if !found {
            io.err(&format!("{}: kill: ({pid}) - No such process\n", shell.program));
            status = 1;
        }
    }
    status
}
