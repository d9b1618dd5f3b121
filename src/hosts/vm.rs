//! The libvirt domains of a hypervisor and their QEMU guest agents, through
//! `virsh` over SSH: list, state, the domain XML (Nova's metadata, devices),
//! `domstats`, the agent (`guest-ping`, `guest-exec` polled with
//! `guest-exec-status`), power and autostart. Every output is parsed into
//! types; what comes from the guest is capped and made safe to show.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Serialize;
use serde_json::{json, Value};

use super::{key_values, HostError, Remote};
use crate::ssh::{RemoteCommand, RemoteShell, Target};

/// The most bytes of a guest command's stdout or stderr kept (head and tail).
pub const GUEST_OUTPUT_LIMIT: usize = 1024 * 1024;

/// How long `virsh` waits for the agent on one command.
const AGENT_WAIT_SECS: &str = "5";

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("{host} has no libvirt domain '{domain}'")]
    UnknownDomain { host: String, domain: String },
    /// The guest has no agent, or it does not answer.
    #[error("{host}: {domain}: the guest agent {reason}")]
    Agent { host: String, domain: String, reason: AgentState },
    /// The command did not exit in the time given; it may still run in the guest.
    #[error("{host}: {domain}: '{command}' did not exit within {secs}s (guest pid {pid}; the agent cannot stop it, it may still run)")]
    Timeout { host: String, domain: String, command: String, secs: u64, pid: u64 },
    /// What the state of the domain does not allow.
    #[error("{host}: {domain}: {reason}")]
    Refused { host: String, domain: String, reason: String },
    #[error(transparent)]
    Host(#[from] HostError),
}

/// Whether a guest's agent answers `guest-ping`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "agent", content = "detail", rename_all = "snake_case")]
pub enum AgentState {
    Answers,
    /// No agent channel in the domain (libvirt: "QEMU guest agent is not configured").
    NotConfigured,
    /// A channel, but no answer (the agent is not running, or hangs).
    NotResponding(String),
    /// The domain is not running.
    DomainNotRunning,
}

impl AgentState {
    pub fn answers(&self) -> bool {
        matches!(self, AgentState::Answers)
    }

    pub fn label(&self) -> &'static str {
        match self {
            AgentState::Answers => "answers",
            AgentState::NotConfigured => "none",
            AgentState::NotResponding(_) => "not responding",
            AgentState::DomainNotRunning => "domain not running",
        }
    }
}

impl std::fmt::Display for AgentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AgentState::Answers => write!(f, "answers"),
            AgentState::NotConfigured => write!(f, "is not configured (no agent channel in the domain)"),
            AgentState::NotResponding(why) => write!(f, "does not answer: {why}"),
            AgentState::DomainNotRunning => write!(f, "cannot answer: the domain is not running"),
        }
    }
}

/// `virsh dominfo`, typed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DomInfo {
    pub name: String,
    pub uuid: String,
    /// `running`, `shut off`, `paused`…
    pub state: String,
    pub vcpus: u32,
    pub max_memory_kib: u64,
    pub autostart: bool,
    pub persistent: bool,
}

impl DomInfo {
    pub fn running(&self) -> bool {
        self.state != "shut off" && self.state != "crashed"
    }
}

/// What Nova wrote into the domain's `<metadata>` (`<nova:instance>`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NovaMetadata {
    /// The instance's display name.
    pub name: String,
    pub flavor: Option<String>,
    pub project: Option<String>,
    pub project_id: Option<String>,
    pub package: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Disk {
    /// `vda`…
    pub target: String,
    /// `file`, `block`, `network`.
    pub kind: String,
    /// `disk`, `cdrom`.
    pub device: String,
    /// A path, or `rbd:pool/image`.
    pub source: Option<String>,
    pub format: Option<String>,
    /// The backing chain, nearest first.
    pub backing: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Nic {
    /// `bridge`, `network`, `hostdev` (an SR-IOV VF), `direct` (macvtap).
    pub kind: String,
    pub mac: Option<String>,
    pub source: Option<String>,
    pub model: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostDeviceKind {
    /// A whole PCI device passed through (a GPU, an accelerator).
    PciPassthrough,
    /// A mediated device (vGPU).
    Mdev,
    /// An SR-IOV virtual function given as a NIC.
    SriovVf,
    /// A USB or SCSI host device.
    Other,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostDevice {
    pub kind: HostDeviceKind,
    /// PCI address `0000:81:00.0`, or the mdev UUID.
    pub address: String,
}

impl std::fmt::Display for HostDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            HostDeviceKind::PciPassthrough => "PCI passthrough",
            HostDeviceKind::Mdev => "vGPU (mdev)",
            HostDeviceKind::SriovVf => "SR-IOV VF",
            HostDeviceKind::Other => "host device",
        };
        write!(f, "{kind} {}", self.address)
    }
}

/// A domain's definition, from `virsh dumpxml`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DomainXml {
    pub name: String,
    pub uuid: String,
    pub nova: Option<NovaMetadata>,
    pub memory_kib: u64,
    pub vcpus: u32,
    pub disks: Vec<Disk>,
    pub nics: Vec<Nic>,
    pub host_devices: Vec<HostDevice>,
    /// `vcpu → host CPUs` from `<cputune><vcpupin>`.
    pub cpu_pinning: Vec<(u32, String)>,
    /// The host NUMA nodes the memory is bound to (`<numatune><memory nodeset>`).
    pub numa_nodeset: Option<String>,
    /// Guest NUMA cells (`<cpu><numa><cell>`).
    pub guest_numa_cells: usize,
    /// Whether the domain has the guest agent's channel.
    pub agent_channel: bool,
}

/// What a domain's definition means for moving it off the host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "migration", content = "reasons", rename_all = "snake_case")]
pub enum Migratability {
    /// Live migration works; the notes say what it involves.
    Live(Vec<String>),
    /// Only a cold migration (the guest is stopped and moved).
    ColdOnly(Vec<String>),
    /// Neither through Nova.
    NotAtAll(Vec<String>),
}

impl Migratability {
    pub fn label(&self) -> &'static str {
        match self {
            Migratability::Live(_) => "live",
            Migratability::ColdOnly(_) => "cold only",
            Migratability::NotAtAll(_) => "not at all",
        }
    }

    pub fn reasons(&self) -> &[String] {
        match self {
            Migratability::Live(reasons) | Migratability::ColdOnly(reasons) | Migratability::NotAtAll(reasons) => {
                reasons
            }
        }
    }
}

impl DomainXml {
    /// Live, cold only or not at all, and why: host devices tie a guest to
    /// this host's hardware (Nova cannot live-migrate PCI passthrough or a
    /// vGPU; an SR-IOV VF only by unplugging it, which cuts the guest's
    /// network); a local block device cannot move; a domain Nova does not
    /// know is not Nova's to move; a stopped guest moves cold.
    pub fn migratability(&self, running: bool) -> Migratability {
        let mut never = Vec::new();
        let mut cold = Vec::new();
        let mut notes = Vec::new();
        if self.nova.is_none() {
            never.push("Nova does not know this domain (no Nova metadata): only libvirt could move it".to_owned());
        }
        for disk in self.disks.iter().filter(|disk| disk.kind == "block" && disk.device == "disk") {
            never.push(format!(
                "disk {} is the host's block device {}",
                disk.target,
                disk.source.as_deref().unwrap_or("?")
            ));
        }
        for device in &self.host_devices {
            match device.kind {
                HostDeviceKind::PciPassthrough => cold.push(format!(
                    "{device}: Nova cannot live-migrate PCI passthrough; a cold migration needs a free device of the same alias on the destination"
                )),
                HostDeviceKind::Mdev => cold.push(format!(
                    "{device}: a vGPU is migrated cold (live only with recent libvirt/QEMU and a matching mdev type)"
                )),
                HostDeviceKind::SriovVf => cold.push(format!(
                    "{device}: an SR-IOV VF moves live only by being unplugged (the guest loses that network); migrate cold"
                )),
                HostDeviceKind::Other => never.push(format!("{device}: tied to this host")),
            }
        }
        if !running {
            cold.push("the domain is not running: a stopped instance is migrated cold".to_owned());
        }
        if !self.cpu_pinning.is_empty() || self.numa_nodeset.is_some() {
            notes.push(
                "CPU pinning / NUMA: the destination needs the same free dedicated CPUs and NUMA room".to_owned(),
            );
        }
        if self.disks.iter().any(|disk| disk.kind == "file" && disk.device == "disk") {
            notes.push("local disk: a block migration copies it".to_owned());
        }
        if !never.is_empty() {
            never.extend(cold);
            Migratability::NotAtAll(never)
        } else if !cold.is_empty() {
            Migratability::ColdOnly(cold)
        } else {
            Migratability::Live(notes)
        }
    }
}

/// One domain's figures from `virsh domstats`. Absent counters are 0.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DomainStats {
    pub name: String,
    /// libvirt's `virDomainState`: 1 running, 3 paused, 5 shut off…
    pub state: u32,
    pub cpu_time_ns: u64,
    pub vcpus: u32,
    pub memory_current_kib: u64,
    pub memory_maximum_kib: u64,
    pub memory_rss_kib: u64,
    pub net_rx_bytes: u64,
    pub net_tx_bytes: u64,
    pub block_read_bytes: u64,
    pub block_write_bytes: u64,
    pub block_capacity_bytes: u64,
    pub block_allocation_bytes: u64,
}

impl DomainStats {
    /// The sum of several domains' figures (name and state left blank).
    pub fn total(all: &[DomainStats]) -> DomainStats {
        let mut total = DomainStats { name: "total".into(), ..DomainStats::default() };
        for stats in all {
            total.cpu_time_ns += stats.cpu_time_ns;
            total.vcpus += stats.vcpus;
            total.memory_current_kib += stats.memory_current_kib;
            total.memory_maximum_kib += stats.memory_maximum_kib;
            total.memory_rss_kib += stats.memory_rss_kib;
            total.net_rx_bytes += stats.net_rx_bytes;
            total.net_tx_bytes += stats.net_tx_bytes;
            total.block_read_bytes += stats.block_read_bytes;
            total.block_write_bytes += stats.block_write_bytes;
            total.block_capacity_bytes += stats.block_capacity_bytes;
            total.block_allocation_bytes += stats.block_allocation_bytes;
        }
        total
    }
}

/// What a command run through the guest agent did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GuestOutput {
    pub exit_code: i32,
    /// Decoded, capped to [`GUEST_OUTPUT_LIMIT`] (head and tail), control characters escaped.
    pub stdout: String,
    pub stderr: String,
    /// The agent or this tool cut the output.
    pub truncated: bool,
    pub polls: u32,
}

/// A power change through libvirt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerAction {
    Start,
    Shutdown,
    Reboot,
    /// Hard power off (`virsh destroy`).
    Stop,
}

impl PowerAction {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "start" => Some(PowerAction::Start),
            "shutdown" => Some(PowerAction::Shutdown),
            "reboot" => Some(PowerAction::Reboot),
            "stop" => Some(PowerAction::Stop),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PowerAction::Start => "start",
            PowerAction::Shutdown => "shutdown",
            PowerAction::Reboot => "reboot",
            PowerAction::Stop => "stop",
        }
    }

    /// Why the domain's state does not allow it, if it does not.
    pub fn refusal(self, running: bool) -> Option<&'static str> {
        match (self, running) {
            (PowerAction::Start, true) => Some("is already running"),
            (PowerAction::Shutdown | PowerAction::Reboot | PowerAction::Stop, false) => Some("is not running"),
            _ => None,
        }
    }
}

/// The domains of one hypervisor.
pub struct Domains {
    remote: Remote,
}

impl Domains {
    /// libvirt on `host`, driven as root.
    pub fn new(shell: Arc<dyn RemoteShell>, host: &str) -> Self {
        Domains { remote: Remote::new(shell, Target::root(host)) }
    }

    fn host(&self) -> String {
        self.remote.target().host.clone()
    }

    fn virsh(action: &str) -> RemoteCommand {
        RemoteCommand::new(action, "virsh")
    }

    /// Runs `virsh` on one domain; "failed to get domain" becomes [`VmError::UnknownDomain`].
    async fn on_domain(&self, command: RemoteCommand, domain: &str) -> Result<crate::ssh::CommandOutput, VmError> {
        let output = self.remote.run(&command).await?;
        if !output.success() && is_unknown_domain(&output.stderr) {
            return Err(VmError::UnknownDomain { host: self.host(), domain: domain.to_owned() });
        }
        Ok(output)
    }

    /// Every domain's name, stopped ones included.
    pub async fn names(&self) -> Result<Vec<String>, VmError> {
        let output = self.remote.run_ok(&Self::virsh("virsh-list-names").args(["list", "--all", "--name"])).await?;
        Ok(output.stdout.lines().map(str::trim).filter(|line| !line.is_empty()).map(ToOwned::to_owned).collect())
    }

    pub async fn dominfo(&self, domain: &str) -> Result<DomInfo, VmError> {
        let action = "virsh-dominfo";
        let output = self.on_domain(Self::virsh(action).args(["dominfo", domain]), domain).await?;
        if !output.success() {
            return Err(self.remote.failed(action, &output).into());
        }
        parse_dominfo(&output.stdout).map_err(|reason| self.remote.unexpected(action, reason).into())
    }

    pub async fn dumpxml(&self, domain: &str) -> Result<DomainXml, VmError> {
        let action = "virsh-dumpxml";
        let output = self.on_domain(Self::virsh(action).args(["dumpxml", domain]), domain).await?;
        if !output.success() {
            return Err(self.remote.failed(action, &output).into());
        }
        parse_domain_xml(&output.stdout).map_err(|reason| self.remote.unexpected(action, reason).into())
    }

    /// `virsh domstats` of one domain, or of all.
    pub async fn stats(&self, domain: Option<&str>) -> Result<Vec<DomainStats>, VmError> {
        let action = "virsh-domstats";
        let command = Self::virsh(action).arg("domstats").args(domain);
        let output = self.on_domain(command, domain.unwrap_or_default()).await?;
        if !output.success() {
            return Err(self.remote.failed(action, &output).into());
        }
        parse_domstats(&output.stdout).map_err(|reason| self.remote.unexpected(action, reason).into())
    }

    /// One agent command; its `return` value, or why the agent did not give one.
    async fn agent(&self, domain: &str, request: &Value) -> Result<Result<Value, AgentState>, VmError> {
        let action = "virsh-qemu-agent-command";
        let command = Self::virsh(action).args([
            "qemu-agent-command",
            "--timeout",
            AGENT_WAIT_SECS,
            domain,
            &request.to_string(),
        ]);
        let output = self.on_domain(command, domain).await?;
        if !output.success() {
            let stderr = output.stderr.trim();
            if stderr.contains("QEMU guest agent is not configured") {
                return Ok(Err(AgentState::NotConfigured));
            }
            if stderr.contains("domain is not running") {
                return Ok(Err(AgentState::DomainNotRunning));
            }
            if stderr.contains("Guest agent is not responding") || stderr.contains("agent is not connected") {
                let why = stderr.lines().last().unwrap_or_default().trim_start_matches("error: ");
                return Ok(Err(AgentState::NotResponding(crate::untrusted::visible_line(why))));
            }
            return Err(self.remote.failed(action, &output).into());
        }
        let reply: Value = serde_json::from_str(output.stdout.trim())
            .map_err(|err| self.remote.unexpected(action, format!("the agent's reply is not JSON: {err}")))?;
        match reply.get("return") {
            Some(value) => Ok(Ok(value.clone())),
            None => Err(self.remote.unexpected(action, "the agent's reply has no 'return'").into()),
        }
    }

    /// Whether the guest agent answers `guest-ping`.
    pub async fn ping(&self, domain: &str) -> Result<AgentState, VmError> {
        Ok(match self.agent(domain, &json!({"execute": "guest-ping"})).await? {
            Ok(_) => AgentState::Answers,
            Err(state) => state,
        })
    }

    /// Runs `argv` in the guest (`guest-exec` with the output captured and
    /// `stdin` as input), then polls `guest-exec-status` until it exits or
    /// `timeout` passes.
    pub async fn exec(
        &self,
        domain: &str,
        argv: &[String],
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<GuestOutput, VmError> {
        let (path, args) = argv.split_first().ok_or_else(|| VmError::Refused {
            host: self.host(),
            domain: domain.to_owned(),
            reason: "no command to run".into(),
        })?;
        let mut arguments = json!({"path": path, "arg": args, "capture-output": true});
        if let Some(input) = stdin {
            arguments["input-data"] = json!(base64::engine::general_purpose::STANDARD.encode(input));
        }
        let agent_error = |reason: AgentState| VmError::Agent { host: self.host(), domain: domain.to_owned(), reason };
        let started = self.agent(domain, &json!({"execute": "guest-exec", "arguments": arguments})).await?;
        let started = started.map_err(agent_error)?;
        let pid = started
            .get("pid")
            .and_then(Value::as_u64)
            .ok_or_else(|| self.remote.unexpected("virsh-qemu-agent-command", "guest-exec returned no pid"))?;
        let begin = Instant::now();
        let mut pause = Duration::from_millis(100);
        let mut polls = 0;
        loop {
            polls += 1;
            let status = self
                .agent(domain, &json!({"execute": "guest-exec-status", "arguments": {"pid": pid}}))
                .await?
                .map_err(agent_error)?;
            if status.get("exited").and_then(Value::as_bool) == Some(true) {
                return Ok(guest_output(&status, polls));
            }
            if begin.elapsed() >= timeout {
                return Err(VmError::Timeout {
                    host: self.host(),
                    domain: domain.to_owned(),
                    command: crate::untrusted::visible_line(&argv.join(" ")),
                    secs: timeout.as_secs(),
                    pid,
                });
            }
            tokio::time::sleep(pause.min(timeout.saturating_sub(begin.elapsed()))).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    /// Power through libvirt; the caller has checked the state allows it.
    pub async fn power(&self, domain: &str, action: PowerAction) -> Result<String, VmError> {
        let verb = match action {
            PowerAction::Start => "start",
            PowerAction::Shutdown => "shutdown",
            PowerAction::Reboot => "reboot",
            PowerAction::Stop => "destroy",
        };
        let name = format!("virsh-{verb}");
        let output = self.on_domain(Self::virsh(&name).args([verb, domain]), domain).await?;
        if !output.success() {
            return Err(self.remote.failed(&name, &output).into());
        }
        Ok(output.stdout.trim().to_owned())
    }

    pub async fn set_autostart(&self, domain: &str, enable: bool) -> Result<String, VmError> {
        let action = "virsh-autostart";
        let mut command = Self::virsh(action).arg("autostart");
        if !enable {
            command = command.arg("--disable");
        }
        let output = self.on_domain(command.arg(domain), domain).await?;
        if !output.success() {
            return Err(self.remote.failed(action, &output).into());
        }
        Ok(output.stdout.trim().to_owned())
    }
}

fn is_unknown_domain(stderr: &str) -> bool {
    stderr.contains("failed to get domain") || stderr.contains("Domain not found")
}

/// A finished `guest-exec-status`: exit code and decoded, capped, escaped output.
fn guest_output(status: &Value, polls: u32) -> GuestOutput {
    let mut truncated = ["out-truncated", "err-truncated"].iter().any(|key| status.get(*key) == Some(&json!(true)));
    let mut decode = |key: &str| -> String {
        let bytes = status
            .get(key)
            .and_then(Value::as_str)
            .and_then(|data| base64::engine::general_purpose::STANDARD.decode(data).ok())
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let capped = crate::untrusted::head_and_tail(&text, GUEST_OUTPUT_LIMIT);
        truncated |= capped.len() != text.len();
        crate::untrusted::visible(&capped).into_owned()
    };
    let stdout = decode("out-data");
    let stderr = decode("err-data");
    // A process killed by a signal has no exit code: 128 + the signal, as a shell says.
    let exit_code = match (status.get("exitcode").and_then(Value::as_i64), status.get("signal").and_then(Value::as_i64))
    {
        (Some(code), _) => code as i32,
        (None, Some(signal)) => 128 + signal as i32,
        (None, None) => 0,
    };
    GuestOutput { exit_code, stdout, stderr, truncated, polls }
}

pub fn parse_dominfo(text: &str) -> Result<DomInfo, String> {
    let pairs = key_values(text);
    let field = |name: &str| {
        pairs.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone()).ok_or(format!("no {name} field"))
    };
    let number = |name: &str| -> Result<u64, String> {
        let value = field(name)?;
        value.split_whitespace().next().and_then(|n| n.parse().ok()).ok_or(format!("{name} is not a number: {value}"))
    };
    Ok(DomInfo {
        name: field("Name")?,
        uuid: field("UUID")?,
        state: field("State")?,
        vcpus: number("CPU(s)")? as u32,
        max_memory_kib: number("Max memory")?,
        autostart: field("Autostart")? == "enable",
        persistent: field("Persistent").is_ok_and(|value| value == "yes"),
    })
}

/// Nova's metadata namespace, any version (1.0, 1.1…).
const NOVA_NS_PREFIX: &str = "http://openstack.org/xmlns/libvirt/nova/";

pub fn parse_domain_xml(xml: &str) -> Result<DomainXml, String> {
    let document = roxmltree::Document::parse(xml).map_err(|err| format!("domain XML: {err}"))?;
    let domain = document.root_element();
    if !domain.has_tag_name("domain") {
        return Err("no <domain>".into());
    }
    let text = |node: Option<roxmltree::Node>| node.and_then(|n| n.text()).map(|t| t.trim().to_owned());
    let name = text(child(domain, "name")).ok_or("no <name>")?;
    let uuid = text(child(domain, "uuid")).ok_or("no <uuid>")?;
    let nova = child(domain, "metadata")
        .and_then(|metadata| {
            metadata.children().find(|node| {
                node.tag_name().name() == "instance"
                    && node.tag_name().namespace().is_some_and(|ns| ns.starts_with(NOVA_NS_PREFIX))
            })
        })
        .map(|instance| {
            let flavor = child(instance, "flavor");
            let project = child(instance, "owner").and_then(|owner| child(owner, "project"));
            NovaMetadata {
                name: text(child(instance, "name")).unwrap_or_default(),
                flavor: flavor.and_then(|f| f.attribute("name")).map(ToOwned::to_owned),
                project: text(project),
                project_id: project.and_then(|p| p.attribute("uuid")).map(ToOwned::to_owned),
                package: child(instance, "package").and_then(|p| p.attribute("version")).map(ToOwned::to_owned),
            }
        });
    let memory_kib = text(child(domain, "memory")).and_then(|m| m.parse().ok()).unwrap_or(0);
    let vcpus = text(child(domain, "vcpu")).and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut disks = Vec::new();
    let mut nics = Vec::new();
    let mut host_devices = Vec::new();
    let mut agent_channel = false;
    if let Some(devices) = child(domain, "devices") {
        for device in devices.children().filter(|node| node.is_element()) {
            match device.tag_name().name() {
                "disk" => {
                    let source = child(device, "source").and_then(|source| {
                        source.attribute("file").or(source.attribute("dev")).map(ToOwned::to_owned).or_else(|| {
                            source
                                .attribute("name")
                                .map(|name| format!("{}:{name}", source.attribute("protocol").unwrap_or("network")))
                        })
                    });
                    let mut backing = Vec::new();
                    let mut store = child(device, "backingStore");
                    while let Some(node) = store {
                        if let Some(file) =
                            child(node, "source").and_then(|s| s.attribute("file").or(s.attribute("dev")))
                        {
                            backing.push(file.to_owned());
                        }
                        store = child(node, "backingStore");
                    }
                    disks.push(Disk {
                        target: child(device, "target").and_then(|t| t.attribute("dev")).unwrap_or("?").to_owned(),
                        kind: device.attribute("type").unwrap_or("file").to_owned(),
                        device: device.attribute("device").unwrap_or("disk").to_owned(),
                        source,
                        format: child(device, "driver").and_then(|d| d.attribute("type")).map(ToOwned::to_owned),
                        backing,
                    });
                }
                "interface" => {
                    let kind = device.attribute("type").unwrap_or("?").to_owned();
                    let source = child(device, "source");
                    let pci = source.and_then(|s| child(s, "address")).map(pci_address);
                    if kind == "hostdev" {
                        host_devices.push(HostDevice {
                            kind: HostDeviceKind::SriovVf,
                            address: pci.clone().unwrap_or_default(),
                        });
                    }
                    nics.push(Nic {
                        mac: child(device, "mac").and_then(|m| m.attribute("address")).map(ToOwned::to_owned),
                        source: source
                            .and_then(|s| s.attribute("bridge").or(s.attribute("network")).or(s.attribute("dev")))
                            .map(ToOwned::to_owned)
                            .or(pci),
                        model: child(device, "model").and_then(|m| m.attribute("type")).map(ToOwned::to_owned),
                        kind,
                    });
                }
                "hostdev" => {
                    let address = child(device, "source").and_then(|s| child(s, "address"));
                    let (kind, address) = match device.attribute("type") {
                        Some("pci") => (HostDeviceKind::PciPassthrough, address.map(pci_address)),
                        Some("mdev") => {
                            (HostDeviceKind::Mdev, address.and_then(|a| a.attribute("uuid")).map(ToOwned::to_owned))
                        }
                        other => (HostDeviceKind::Other, other.map(ToOwned::to_owned)),
                    };
                    host_devices.push(HostDevice { kind, address: address.unwrap_or_default() });
                }
                "channel" => {
                    agent_channel |= child(device, "target")
                        .is_some_and(|target| target.attribute("name") == Some("org.qemu.guest_agent.0"));
                }
                _ => {}
            }
        }
    }
    let cpu_pinning = child(domain, "cputune")
        .map(|tune| {
            tune.children()
                .filter(|node| node.has_tag_name("vcpupin"))
                .filter_map(|pin| Some((pin.attribute("vcpu")?.parse().ok()?, pin.attribute("cpuset")?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let numa_nodeset = child(domain, "numatune")
        .and_then(|tune| child(tune, "memory"))
        .and_then(|memory| memory.attribute("nodeset"))
        .map(ToOwned::to_owned);
    let guest_numa_cells = child(domain, "cpu")
        .and_then(|cpu| child(cpu, "numa"))
        .map_or(0, |numa| numa.children().filter(|node| node.has_tag_name("cell")).count());
    Ok(DomainXml {
        name,
        uuid,
        nova,
        memory_kib,
        vcpus,
        disks,
        nics,
        host_devices,
        cpu_pinning,
        numa_nodeset,
        guest_numa_cells,
        agent_channel,
    })
}

/// The first child element named `name` (any namespace).
fn child<'a, 'input>(node: roxmltree::Node<'a, 'input>, name: &str) -> Option<roxmltree::Node<'a, 'input>> {
    node.children().find(|c| c.is_element() && c.tag_name().name() == name)
}

/// `<address domain='0x0000' bus='0x81' slot='0x00' function='0x0'/>` → `0000:81:00.0`.
fn pci_address(node: roxmltree::Node) -> String {
    let part = |name: &str, width: usize| {
        let value = node.attribute(name).unwrap_or("0").trim_start_matches("0x");
        let number = u32::from_str_radix(value, 16).unwrap_or(0);
        format!("{number:0width$x}")
    };
    format!("{}:{}:{}.{}", part("domain", 4), part("bus", 2), part("slot", 2), part("function", 1))
}

/// `virsh domstats` output: a `Domain: 'NAME'` line, then `  key=value` lines.
pub fn parse_domstats(text: &str) -> Result<Vec<DomainStats>, String> {
    let mut all: Vec<DomainStats> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("Domain:") {
            let name = rest.trim().trim_matches('\'').to_owned();
            all.push(DomainStats { name, ..DomainStats::default() });
            continue;
        }
        let stats = all.last_mut().ok_or_else(|| format!("a figure before any 'Domain:' line: {line}"))?;
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("not key=value: {line}"));
        };
        let Ok(number) = value.parse::<u64>() else {
            // Names (net.0.name, block.0.path) are not figures.
            continue;
        };
        let parts: Vec<&str> = key.split('.').collect();
        match parts.as_slice() {
            ["state", "state"] => stats.state = number as u32,
            ["cpu", "time"] => stats.cpu_time_ns = number,
            ["vcpu", "current"] => stats.vcpus = number as u32,
            ["balloon", "current"] => stats.memory_current_kib = number,
            ["balloon", "maximum"] => stats.memory_maximum_kib = number,
            ["balloon", "rss"] => stats.memory_rss_kib = number,
            ["net", _, "rx", "bytes"] => stats.net_rx_bytes += number,
            ["net", _, "tx", "bytes"] => stats.net_tx_bytes += number,
            ["block", _, "rd", "bytes"] => stats.block_read_bytes += number,
            ["block", _, "wr", "bytes"] => stats.block_write_bytes += number,
            ["block", _, "capacity"] => stats.block_capacity_bytes += number,
            ["block", _, "allocation"] => stats.block_allocation_bytes += number,
            _ => {}
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests;
