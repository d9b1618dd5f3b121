//! Simulated hosts reached over real SSH on 127.0.0.1: every hypervisor of
//! the world, the Aquilon host and the Kayobe host, each on its own port with
//! its own ed25519 host key. Commands run in the simulated shell
//! ([`crate::shell`]) against the shared world.
//!
//! Logins: `root` only with a key listed in the host's
//! `shell.root_authorized_keys`; the operator's unprivileged account
//! ([`SshSettings::username`]) always with the lab's client key, and it may
//! use `sudo`. [`SshHosts::write_files`] writes the `ssh_config`,
//! `known_hosts` and key pair that let the system OpenSSH client connect as to
//! real hosts.

pub mod keys;
mod server;
mod site_files;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use russh::keys::PrivateKey;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::shell::Machine;
use crate::world::{World, WorldState};

pub use site_files::SshFiles;

/// How the simulated hosts behave towards the operator.
#[derive(Clone, Debug)]
pub struct SshSettings {
    /// Start the SSH hosts with the lab.
    pub enabled: bool,
    /// The operator's unprivileged account on every host.
    pub username: String,
    /// The password `sudo` asks that account for; `None`: no password (NOPASSWD).
    pub sudo_password: Option<String>,
    /// Every this many campaign hosts, one starts without the operator's key for
    /// root (so `setup` has work to do); 0: every host has it.
    pub root_key_missing_every: usize,
    /// Each hypervisor's `virsh` shows a real Nova's servers, read before every
    /// command that runs `virsh` (`lab serve --mirror-nova`); `None`: the lab's own.
    pub nova_mirror: Option<crate::mirror::NovaMirror>,
}

impl Default for SshSettings {
    fn default() -> Self {
        SshSettings {
            enabled: true,
            username: "ops".into(),
            sudo_password: None,
            root_key_missing_every: 4,
            nova_mirror: None,
        }
    }
}

/// Faults of one simulated host.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SshFaultConfig {
    /// Latency added before each command, uniformly between the two bounds (ms).
    pub latency_ms: Option<(u64, u64)>,
    /// The next this many commands run (their effects happen) and then the
    /// connection drops before their exit status is sent.
    pub drop_next_commands: u32,
    /// The first command whose line contains this runs (its effect happens)
    /// and then the connection drops before its exit status is sent; once.
    pub drop_command_containing: Option<String>,
    /// Nothing listens on the host's port (connection refused).
    pub refuse_connections: bool,
    /// The host presents another host key (strict checking must refuse it).
    pub changed_host_key: bool,
    /// Commands wait, before they run, until this is turned off (tests line
    /// up several processes before any of them gets an answer).
    pub hold: bool,
    /// Hostile output: commands whose line contains this text print more
    /// (escape sequences, huge output), as a compromised or broken host would.
    pub output: Option<OutputFault>,
}

/// What a matching command adds to its output after it ran.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputFault {
    /// Commands whose line contains this (empty: every command).
    pub command_contains: String,
    /// Appended to standard output: `stdout_first`, `stdout` this many
    /// times, then `stdout_last`.
    pub stdout_first: String,
    pub stdout: String,
    pub stdout_repeat: usize,
    pub stdout_last: String,
    /// Appended to standard error.
    pub stderr: String,
    /// Replaces the exit status.
    pub status: Option<u32>,
}

impl OutputFault {
    /// Adds the fault's output to what `line` printed.
    pub fn apply(&self, line: &str, outcome: &mut crate::shell::Outcome) {
        if !line.contains(&self.command_contains) {
            return;
        }
        outcome.stdout.extend_from_slice(self.stdout_first.as_bytes());
        for _ in 0..self.stdout_repeat {
            outcome.stdout.extend_from_slice(self.stdout.as_bytes());
        }
        outcome.stdout.extend_from_slice(self.stdout_last.as_bytes());
        outcome.stderr.extend_from_slice(self.stderr.as_bytes());
        if let Some(status) = self.status {
            outcome.status = status;
        }
    }
}

/// The SSH faults of every host, shared with the running servers.
#[derive(Clone)]
pub struct SshFaults {
    inner: Arc<Mutex<FaultsInner>>,
    /// Bumped on every change, so listeners re-check `refuse_connections` at once.
    version: Arc<watch::Sender<u64>>,
}

struct FaultsInner {
    hosts: BTreeMap<String, SshFaultConfig>,
    rng: StdRng,
    /// Commands under way now, and the most at once, by host (for tests of limits).
    running: BTreeMap<String, (usize, usize)>,
}

/// A command counted as under way on its host until dropped.
pub(crate) struct Running {
    faults: SshFaults,
    host: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some((now, _)) = self.faults.lock().running.get_mut(&self.host) {
            *now = now.saturating_sub(1);
        }
    }
}

impl SshFaults {
    pub fn new(seed: u64) -> Self {
        let (version, _) = watch::channel(0);
        SshFaults {
            inner: Arc::new(Mutex::new(FaultsInner {
                hosts: BTreeMap::new(),
                rng: StdRng::seed_from_u64(seed ^ 0x55f),
                running: BTreeMap::new(),
            })),
            version: Arc::new(version),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FaultsInner> {
        self.inner.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// Replaces the faults of one host.
    pub fn set(&self, host: &str, config: SshFaultConfig) {
        self.lock().hosts.insert(host.to_owned(), config);
        self.version.send_modify(|v| *v += 1);
    }

    /// Changes the faults of one host in place.
    pub fn update(&self, host: &str, change: impl FnOnce(&mut SshFaultConfig)) {
        change(self.lock().hosts.entry(host.to_owned()).or_default());
        self.version.send_modify(|v| *v += 1);
    }

    /// Counts a command under way on `host` until the result is dropped.
    pub(crate) fn running(&self, host: &str) -> Running {
        let mut inner = self.lock();
        let (now, most) = inner.running.entry(host.to_owned()).or_default();
        *now += 1;
        *most = (*most).max(*now);
        Running { faults: self.clone(), host: host.to_owned() }
    }

    /// The most commands that were under way at once on `host`.
    pub fn most_commands_at_once(&self, host: &str) -> usize {
        self.lock().running.get(host).map_or(0, |(_, most)| *most)
    }

    pub fn get(&self, host: &str) -> SshFaultConfig {
        self.lock().hosts.get(host).cloned().unwrap_or_default()
    }

    /// Removes every fault of every host.
    pub fn clear(&self) {
        self.lock().hosts.clear();
        self.version.send_modify(|v| *v += 1);
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// The latency to add before a command on this host.
    fn latency(&self, host: &str) -> Duration {
        let mut inner = self.lock();
        let Some((low, high)) = inner.hosts.get(host).and_then(|c| c.latency_ms) else { return Duration::ZERO };
        let ms = if high > low { inner.rng.random_range(low..=high) } else { low };
        Duration::from_millis(ms)
    }

    /// The hostile output configured for this host, if any.
    fn output(&self, host: &str) -> Option<OutputFault> {
        self.lock().hosts.get(host).and_then(|config| config.output.clone())
    }

    /// Whether this command's connection must drop (and counts it).
    fn take_drop(&self, host: &str, line: &str) -> bool {
        let mut inner = self.lock();
        match inner.hosts.get_mut(host) {
            Some(config) if config.drop_next_commands > 0 => {
                config.drop_next_commands -= 1;
                true
            }
            Some(config) if config.drop_command_containing.as_deref().is_some_and(|text| line.contains(text)) => {
                config.drop_command_containing = None;
                true
            }
            _ => false,
        }
    }
}

/// The running SSH hosts of a lab.
pub struct SshHosts {
    addresses: BTreeMap<String, SocketAddr>,
    client_key: PrivateKey,
    settings: SshSettings,
    seed: u64,
    tasks: Vec<JoinHandle<()>>,
}

impl SshHosts {
    /// Prepares the world for SSH (root keys, base fstab, the Kayobe
    /// environment) and starts one listener per machine on 127.0.0.1.
    pub async fn start(
        world: World,
        faults: SshFaults,
        settings: SshSettings,
        stop: watch::Receiver<bool>,
    ) -> std::io::Result<SshHosts> {
        let (seed, machines) = {
            let mut state = world.lock();
            let seed = state.seed;
            prepare_world(&mut state, &settings);
            (seed, state.machines())
        };
        let client_key = keys::client_key(seed);
        let shared = Arc::new(server::Shared {
            world,
            faults,
            client_public: client_key.public_key().clone(),
            settings: settings.clone(),
            seed,
        });
        let mut addresses = BTreeMap::new();
        let mut tasks = Vec::with_capacity(machines.len());
        for machine in machines {
            let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
            let address = listener.local_addr()?;
            addresses.insert(machine.name().to_owned(), address);
            tasks.push(tokio::spawn(server::serve_host(machine, listener, shared.clone(), stop.clone())));
        }
        Ok(SshHosts { addresses, client_key, settings, seed, tasks })
    }

    /// Where a host (hypervisor, Aquilon or Kayobe host) listens.
    pub fn address(&self, host: &str) -> Option<SocketAddr> {
        self.addresses.get(host).copied()
    }

    pub fn addresses(&self) -> &BTreeMap<String, SocketAddr> {
        &self.addresses
    }

    /// The operator's key pair (its public half is what root logins accept).
    pub fn client_key(&self) -> &PrivateKey {
        &self.client_key
    }

    pub fn settings(&self) -> &SshSettings {
        &self.settings
    }

    /// Stops accepting connections (open sessions end with the runtime).
    pub fn abort(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Drop for SshHosts {
    fn drop(&mut self) {
        self.abort();
    }
}

/// The lab's additions to a generated world for its SSH hosts: filesystem
/// UUIDs and a base fstab, the operator's key for root on most hosts, the
/// operator's home, and the Kayobe environment file. [`SshHosts::start`]
/// calls it; tests of the shell alone call it themselves.
pub fn prepare_world(state: &mut WorldState, settings: &SshSettings) {
    let seed = state.seed;
    let client_key_line = keys::public_line(keys::client_key(seed).public_key());
    let client_key_line = client_key_line.as_str();
    let state_like_real = state.reinstall_like_real;
    let mut campaign_index = 0;
    for host in &mut state.hosts {
        let mut rng = StdRng::seed_from_u64(seed ^ keys::fnv1a(host.fqdn.as_bytes()));
        fn give_uuids(disks: &mut [crate::world::Disk], rng: &mut StdRng) {
            for disk in disks {
                if disk.fstype.is_some() && disk.fs_uuid.is_none() {
                    disk.fs_uuid = Some(crate::world::uuid(rng));
                }
                give_uuids(&mut disk.children, rng);
            }
        }
        give_uuids(&mut host.disks, &mut rng);
        crate::shell::fill_base_fstab(host);
        let skip_root_key = host.in_campaign && {
            campaign_index += 1;
            settings.root_key_missing_every > 0 && campaign_index % settings.root_key_missing_every == 0
        };
        if !skip_root_key && !host.shell.root_authorized_keys.lines().any(|line| line == client_key_line) {
            host.shell.root_authorized_keys.append_line(client_key_line);
            host.shell.directories.insert("/root/.ssh".into());
        }
        let home = format!("/home/{}", settings.username);
        host.shell.directories.insert(home);
        if state_like_real && !host.shell.files.contains_key(crate::shell::KOLLA_COMPUTE_ID_PATH) {
            // Nova (2023.1+) wrote its node's UUID there on first start, without a newline.
            let path = crate::shell::KOLLA_COMPUTE_ID_PATH;
            for (at, _) in path.match_indices('/').skip(1) {
                host.shell.directories.insert(path[..at].to_owned());
            }
            host.shell.files.insert(crate::shell::KOLLA_COMPUTE_ID_PATH.to_owned(), host.hypervisor_uuid.clone());
        }
    }
    let kayobe = state.kayobe_host_name();
    if let Some(shell) = state.service_hosts.get_mut(&kayobe) {
        let home = format!("/home/{}", settings.username);
        let environment = format!("{home}/kayobe-prod");
        shell.directories.extend([home.clone(), environment.clone(), format!("{environment}/config")]);
        shell.files.insert(
            format!("{environment}/env-vars.sh"),
            format!(
                "# The Kayobe environment of the site.\nexport KAYOBE_CONFIG_PATH={environment}/config/etc/kayobe\nexport KAYOBE_ENVIRONMENT=prod\nexport KOLLA_CONFIG_PATH={environment}/config/etc/kolla\n"
            ),
        );
    }
    let aquilon = state.aquilon_host_name();
    if let Some(shell) = state.service_hosts.get_mut(&aquilon) {
        shell.directories.insert(format!("/home/{}", settings.username));
    }
}

/// The environment file on the Kayobe host, as the credentials name it.
pub fn kayobe_environment_path(settings: &SshSettings) -> String {
    format!("/home/{}/kayobe-prod/env-vars.sh", settings.username)
}

impl Machine {
    /// The simulated host this machine is, as a label for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Machine::Hypervisor(_) => "hypervisor",
            Machine::Aquilon(_) => "aquilon",
            Machine::Kayobe(_) => "kayobe",
        }
    }
}
