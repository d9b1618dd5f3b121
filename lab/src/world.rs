//! The world model: one coherent simulated site that every emulator reads and
//! changes. A site is generated from a seed and a size, so a run is
//! reproducible, and carries a few deliberate oddities for the demo.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::policy::NovaPolicy;

/// The shared, lockable world. Clone it freely: clones share one state.
#[derive(Clone)]
pub struct World {
    state: Arc<Mutex<WorldState>>,
}

impl World {
    pub fn generate(options: &WorldOptions) -> Self {
        World { state: Arc::new(Mutex::new(WorldState::generate(options))) }
    }

    /// Locks the world for reading or changing it. Keep the guard short: never
    /// hold it across an `.await`.
    pub fn lock(&self) -> MutexGuard<'_, WorldState> {
        self.state.lock().unwrap_or_else(|poison| poison.into_inner())
    }
}

#[derive(Clone, Debug)]
pub struct WorldOptions {
    /// Hypervisors of the campaign (the hypervisors file lists them).
    pub hosts: usize,
    pub seed: u64,
    /// Add the demo's deliberate oddities (on by default).
    pub oddities: bool,
    /// Site name, also the DNS sub-domain of every host.
    pub site: String,
    /// VMs on each campaign host (1 to 4 at random when unset).
    pub vms_per_host: Option<u32>,
    /// The credentials name Keystone's member user, not the admin: Nova
    /// answers it as its policy says ([`NovaPolicy`]).
    pub openstack_member_user: bool,
    /// What the site's Nova policy grants the member role.
    pub nova_policy: NovaPolicy,
    /// Nova knows each compute host by its short name (`service.host`,
    /// `OS-EXT-SRV-ATTR:host`, migrations), as Kolla deploys it by default;
    /// `hypervisor_hostname` stays the FQDN.
    pub short_service_hosts: bool,
    /// Every campaign host has alerts firing as a Prometheus site labels
    /// them: node_exporter's with `instance="<fqdn>:9100"` only, the IPMI
    /// exporter's with `hostname="<fqdn>"`.
    pub host_alerts: bool,
    /// Jira answers as Jira Cloud: `deploymentType: Cloud`, and the removed
    /// `/rest/api/{2,3}/search` answer 410.
    pub jira_cloud: bool,
    /// Transition screens: the fields a transition into a status requires
    /// (`resolution`, typically), by target status.
    pub jira_required_fields: BTreeMap<String, Vec<String>>,
    /// Odd guests for the `vm` commands and the drain's guest check: a GPU
    /// passed through, SR-IOV, a vGPU, guests without an agent, one that stops
    /// answering during its live migration, an orphan domain (see
    /// `WorldState::add_guest_oddities`).
    pub guest_oddities: bool,
    /// A reinstall is as a real one: new SSH host keys and `machine-id`,
    /// nova-compute's `compute_id` gone, and nova-compute of an existing
    /// service refusing to start without it (see [`WorldState::reinstall_like_real`]).
    pub reinstall_like_real: bool,
    /// Jira Cloud's eventually consistent search: a new issue is missing
    /// from the next N `search/jql` answers unless its id is among the
    /// request's `reconcileIssues` (developer.atlassian.com, "search/jql",
    /// `reconcileIssues`: strong consistency for up to 50 issue ids).
    pub jira_search_lag: u32,
    /// The over-commit ratios and reservations of every compute host's
    /// nova.conf, as Placement reports them (Nova's defaults unless set).
    pub allocation: HostAllocation,
}

/// A compute host's `[DEFAULT]` allocation settings in nova.conf, which
/// nova-compute reports to Placement as the inventory of its resource
/// provider (nova `virt/libvirt/driver.py` `update_provider_tree`,
/// `compute/utils.py`): capacity = (total - reserved) × allocation_ratio.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct HostAllocation {
    pub cpu_allocation_ratio: f64,
    pub ram_allocation_ratio: f64,
    pub disk_allocation_ratio: f64,
    pub reserved_host_cpus: u32,
    pub reserved_host_memory_mb: u64,
    pub reserved_host_disk_mb: u64,
}

impl HostAllocation {
    /// Nova's defaults (`initial_*_allocation_ratio` 4.0, 1.0, 1.0;
    /// `reserved_host_memory_mb` 512; no CPU or disk reserved).
    pub fn nova_defaults() -> Self {
        HostAllocation {
            cpu_allocation_ratio: 4.0,
            ram_allocation_ratio: 1.0,
            disk_allocation_ratio: 1.0,
            reserved_host_cpus: 0,
            reserved_host_memory_mb: 512,
            reserved_host_disk_mb: 0,
        }
    }

    /// A site that tuned them, as operators do for hosts that also run
    /// containers (Kolla): less CPU over-commit, memory and cores kept back.
    pub fn site_tuned() -> Self {
        HostAllocation {
            cpu_allocation_ratio: 2.0,
            ram_allocation_ratio: 0.9,
            disk_allocation_ratio: 1.0,
            reserved_host_cpus: 4,
            reserved_host_memory_mb: 16384,
            reserved_host_disk_mb: 20480,
        }
    }
}

impl Default for HostAllocation {
    fn default() -> Self {
        HostAllocation::nova_defaults()
    }
}

impl Default for WorldOptions {
    fn default() -> Self {
        WorldOptions {
            hosts: 12,
            seed: 1,
            oddities: true,
            site: "lab".into(),
            vms_per_host: None,
            openstack_member_user: false,
            nova_policy: NovaPolicy::default(),
            short_service_hosts: false,
            host_alerts: false,
            jira_cloud: false,
            jira_required_fields: BTreeMap::new(),
            guest_oddities: false,
            reinstall_like_real: false,
            jira_search_lag: 0,
            allocation: HostAllocation::nova_defaults(),
        }
    }
}

/// Everything the simulated site knows.
#[derive(Debug, Serialize)]
pub struct WorldState {
    pub site: String,
    pub seed: u64,
    /// Campaign hosts first (in hypervisors-file order), then the spare hosts
    /// that receive the VMs drained away.
    pub hosts: Vec<Host>,
    /// Servers by id (a UUID string); ordered for stable listings.
    pub servers: BTreeMap<String, Server>,
    pub migrations: Vec<Migration>,
    pub projects: Vec<Project>,
    pub netbox: NetBoxState,
    pub jira: JiraState,
    pub silences: Vec<Silence>,
    /// Alerts firing in Alertmanager (see [`WorldOptions::host_alerts`]).
    pub alerts: Vec<Alert>,
    pub scc: SccRegistry,
    /// Simulated seconds that pass per real second (migrations, reinstalls).
    pub time_scale: f64,
    /// The shells of the Aquilon host and the Kayobe host, by name (see `WorldState::aquilon_host_name`).
    pub service_hosts: BTreeMap<String, HostShell>,
    /// SSH connections accepted, by machine name (tests count connection
    /// reuse). Bookkeeping, not state: left out of the world's view.
    #[serde(skip)]
    pub ssh_connections: BTreeMap<String, u64>,
    /// Keystone tokens issued so far (Nova accepts only these).
    #[serde(skip)]
    pub keystone_tokens: std::collections::HashMap<String, crate::keystone::IssuedToken>,
    /// Lifetime of a new Keystone token, in real seconds.
    pub token_lifetime_secs: u64,
    /// Simulated time as migrations see it (advances by `time_scale`).
    #[serde(skip)]
    pub clock: crate::nova::SimClock,
    /// The most migrations ever in progress at once, site-wide and from one source host.
    pub max_concurrent_migrations: usize,
    pub max_concurrent_migrations_per_source: usize,
    /// The most migrations ever in progress at once to one destination host.
    pub max_concurrent_migrations_per_destination: usize,
    /// See [`WorldOptions::openstack_member_user`].
    pub openstack_member_user: bool,
    pub nova_policy: NovaPolicy,
    /// See [`WorldOptions::short_service_hosts`].
    pub short_service_hosts: bool,
    /// See [`WorldOptions::reinstall_like_real`]: every hypervisor has a
    /// `compute_id` in the Kolla volume, a reinstall regenerates the host
    /// keys and `machine-id` and wipes the volume.
    pub reinstall_like_real: bool,
    /// The allocation settings new hosts get.
    pub allocation: HostAllocation,
    next_id: u64,
    vms_per_host: Option<u32>,
    /// Real time per simulated minute of a long remote job (Kayobe runs and
    /// playbooks take tens of simulated minutes); tests make it long to
    /// outlast the tool's SSH command timeout.
    #[serde(skip)]
    pub remote_job_minute: std::time::Duration,
    /// Background processes of the simulated machines.
    pub jobs: crate::shell::jobs::BackgroundJobs,
    /// Kayobe and Ansible runs started on the Kayobe host, by kind.
    pub kayobe_runs: KayobeRuns,
    /// What libvirt knows of the guests beyond Nova (agents, host devices, orphans).
    pub guests: crate::guests::Guests,
    /// Power requests Nova accepted (`os-start ID`, `os-stop ID`, `reboot ID`).
    pub nova_power_actions: Vec<String>,
}

/// Kayobe and Ansible runs started on the Kayobe host (a run counts when it starts).
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct KayobeRuns {
    /// The inventory playbook (`kayobe playbook run …build-inventory…`).
    pub inventory: u32,
    pub host_configure: u32,
    /// `kayobe overcloud service deploy` for hypervisors.
    pub service_deploy: u32,
    /// `kayobe overcloud service deploy` of the controllers' `common` services.
    pub controllers_common: u32,
    /// The Mellanox UEFI-PXE playbook.
    pub mellanox: u32,
    /// Any other playbook.
    pub other_playbooks: u32,
    /// When each run starts and ends in real time (a killed run counts to
    /// its planned end): only an observation, for how many ran at once.
    #[serde(skip)]
    pub spans: Vec<(std::time::Instant, std::time::Instant)>,
}

impl KayobeRuns {
    /// The most Kayobe and Ansible runs under way at once on the Kayobe host.
    pub fn most_at_once(&self) -> usize {
        let mut edges: Vec<(std::time::Instant, i32)> =
            self.spans.iter().flat_map(|(start, end)| [(*start, 1), (*end, -1)]).collect();
        // An end and a start at the same moment do not overlap.
        edges.sort();
        let (mut now, mut most) = (0i32, 0i32);
        for (_, step) in edges {
            now += step;
            most = most.max(now);
        }
        most as usize
    }
}

/// A physical hypervisor, as seen by every system at once.
#[derive(Clone, Debug, Serialize)]
pub struct Host {
    pub fqdn: String,
    /// Part of the migration campaign (listed in hypervisors.txt); spare hosts are not.
    pub in_campaign: bool,
    /// Hardware model as Aquilon knows it (`hv-2022-lenovo`, `xma-hv-2022-a100`, ...).
    pub model: String,
    pub vendor: String,
    pub os: OsRelease,
    pub efi: bool,
    pub disks: Vec<Disk>,
    pub pci: Vec<PciDevice>,
    pub cpu: CpuTopology,
    pub memory_mib: u64,
    /// The libvirt host UUID (`virsh capabilities`).
    pub host_uuid: String,
    pub compute: ComputeService,
    /// Nova hypervisor id and UUID.
    pub hypervisor_id: u64,
    pub hypervisor_uuid: String,
    pub availability_zone: String,
    pub aggregate: String,
    /// What nova-compute reports to Placement of this host.
    pub allocation: HostAllocation,
    /// The NetBox device id, or `None` when the host is missing from NetBox.
    pub netbox_device: Option<u64>,
    /// What the machine itself says it is (DMI, NICs, machine-id, host key).
    pub machine: MachineIdentity,
    pub aquilon: AquilonHost,
    pub shell: HostShell,
    /// How Kayobe runs on the Kayobe host treat this host.
    pub kayobe: KayobeNode,
    /// The Jira issue of this host, for campaign hosts.
    pub jira_key: Option<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct OsRelease {
    pub id: String,
    pub version_id: String,
    pub pretty_name: String,
}

impl OsRelease {
    pub fn rocky(version_id: &str) -> Self {
        let codename = if version_id.starts_with('8') { "Green Obsidian" } else { "Blue Onyx" };
        OsRelease {
            id: "rocky".into(),
            version_id: version_id.into(),
            pretty_name: format!("Rocky Linux {version_id} ({codename})"),
        }
    }
}

/// A block device as `lsblk` shows it, with its children (partitions, arrays).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Disk {
    pub name: String,
    /// `disk`, `part`, `raid0`, `lvm`.
    pub kind: String,
    pub size_bytes: u64,
    pub fstype: Option<String>,
    pub mountpoint: Option<String>,
    /// The filesystem's UUID (`blkid`), set by `mkfs`.
    pub fs_uuid: Option<String>,
    pub children: Vec<Disk>,
}

impl Disk {
    fn new(name: &str, kind: &str, size_bytes: u64) -> Self {
        Disk {
            name: name.into(),
            kind: kind.into(),
            size_bytes,
            fstype: None,
            mountpoint: None,
            fs_uuid: None,
            children: vec![],
        }
    }

    fn mounted(mut self, fstype: &str, mountpoint: &str) -> Self {
        self.fstype = Some(fstype.into());
        self.mountpoint = Some(mountpoint.into());
        self
    }
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PciDevice {
    /// `0000:3b:00.0`
    pub slot: String,
    /// `3D controller`, `Ethernet controller`, ...
    pub class: String,
    /// `NVIDIA Corporation GA100 [A100 PCIe 80GB] (rev a1)`, ...
    pub description: String,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct CpuTopology {
    pub arch: String,
    pub vendor: String,
    pub model: String,
    /// NUMA cells; sockets are spread evenly over them.
    pub numa_cells: u32,
    pub sockets: u32,
    pub cores_per_socket: u32,
    pub threads_per_core: u32,
}

impl CpuTopology {
    pub fn logical_cpus(&self) -> u32 {
        self.sockets * self.cores_per_socket * self.threads_per_core
    }
}

/// The host's `nova-compute` service.
#[derive(Clone, Debug, Serialize)]
pub struct ComputeService {
    pub id: u64,
    pub uuid: String,
    /// `enabled` or `disabled`.
    pub status: String,
    /// `up` or `down`.
    pub state: String,
    pub disabled_reason: Option<String>,
    pub forced_down: bool,
    pub updated_at: String,
}

/// The machine behind a host name, as its OS reports it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct MachineIdentity {
    /// `/sys/class/dmi/id/product_uuid` (the BIOS system UUID).
    pub system_uuid: String,
    /// `/sys/class/dmi/id/product_serial` (the vendor's service tag).
    pub serial: String,
    /// The physical NICs (name, MAC); `eth0` is the one NetBox and Aquilon know.
    pub nics: Vec<(String, String)>,
    /// The BMC's MAC (`ipmitool lan print`).
    pub bmc_mac: String,
    /// `/etc/machine-id`, made by the installer.
    pub machine_id: String,
    /// Which SSH host key the host presents: 0 is the one the site started
    /// with; a real reinstall makes the next one.
    pub host_key_generation: u32,
}

impl MachineIdentity {
    /// A machine of this name: stable for a seed, independent of the
    /// world's other random draws. `eth0`'s and the BMC's MACs are given.
    pub fn generate(seed: u64, label: &str, eth0_mac: &str, bmc_mac: &str) -> Self {
        let mut rng = StdRng::seed_from_u64(seed ^ crate::ssh::keys::fnv1a(format!("machine:{label}").as_bytes()));
        const TAG: &[u8] = b"0123456789BCDFGHJKLMNPQRSTVWXYZ";
        let serial: String = (0..7).map(|_| char::from(TAG[rng.random_range(0..TAG.len())])).collect();
        let eth1: [u8; 5] = rng.random();
        let eth1 = format!("b8:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", eth1[0], eth1[1], eth1[2], eth1[3], eth1[4]);
        MachineIdentity {
            system_uuid: uuid(&mut rng).to_uppercase(),
            serial,
            nics: vec![("eth0".into(), eth0_mac.to_owned()), ("eth1".into(), eth1)],
            bmc_mac: bmc_mac.to_owned(),
            machine_id: hex_id(&mut rng, 32),
            host_key_generation: 0,
        }
    }

    /// The MAC of one NIC.
    pub fn mac(&self, nic: &str) -> Option<&str> {
        self.nics.iter().find(|(name, _)| name == nic).map(|(_, mac)| mac.as_str())
    }
}

/// What the Aquilon host knows about this host.
#[derive(Clone, Debug, Serialize, Default)]
pub struct AquilonHost {
    /// Whether a host record exists (del_host removes it, netbox2aquilon re-creates it).
    pub host_exists: bool,
    pub machine: String,
    pub domain: String,
    pub archetype: String,
    pub personality: String,
    pub osname: String,
    pub osversion: String,
    pub interfaces: Vec<AquilonInterface>,
    pub disks: Vec<String>,
    /// Set by `aq pxeswitch --install`; the reinstall needs it.
    pub pxe_install: bool,
    /// How many times netbox2aquilon re-imported the host (a re-run must not add one).
    pub reimports: u32,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct AquilonInterface {
    pub name: String,
    pub mac: String,
    pub ip: Option<String>,
}

/// The state a shell on the host sees beyond the hardware: files and services.
#[derive(Clone, Debug, Serialize, Default)]
pub struct HostShell {
    /// /root/.ssh/authorized_keys.
    pub root_authorized_keys: TextFile,
    /// /etc/fstab.
    pub fstab: TextFile,
    /// /etc/mdadm.conf.
    pub mdadm_conf: TextFile,
    /// Package versions, updated by `dnf update`.
    pub packages: BTreeMap<String, String>,
    /// Whether `dnf` can reach its mirrors (a broken resolver fails updates).
    pub dnf_works: bool,
    pub resolv_conf: String,
    /// Commands run on the host, for tests to count side effects.
    pub history: Vec<String>,
    /// Directories made with `mkdir` (beyond those every host has).
    pub directories: std::collections::BTreeSet<String>,
    /// Other files written through the shell, by path.
    pub files: BTreeMap<String, String>,
    /// Owner (`chown`) and mode (`chmod`) given to files, by path.
    pub owners: BTreeMap<String, String>,
    pub modes: BTreeMap<String, String>,
}

/// A file's exact bytes: a last line without its newline stays so, as on a
/// real host, where `echo x >> file` then glues `x` to that line.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct TextFile(String);

impl TextFile {
    pub fn new(text: impl Into<String>) -> Self {
        TextFile(text.into())
    }

    /// One line per entry, each ended by a newline.
    pub fn from_lines<S: AsRef<str>>(lines: impl IntoIterator<Item = S>) -> Self {
        TextFile(lines.into_iter().map(|line| format!("{}\n", line.as_ref())).collect())
    }

    pub fn text(&self) -> &str {
        &self.0
    }

    pub fn lines(&self) -> std::str::Lines<'_> {
        self.0.lines()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// What `printf '%s\n' line >> file` does, missing newline or not.
    pub fn append_line(&mut self, line: &str) {
        self.0.push_str(line);
        self.0.push('\n');
    }
}

/// A hypervisor as the Kayobe host's runs see it.
#[derive(Clone, Debug, Serialize, Default)]
pub struct KayobeNode {
    /// Test hook: every Kayobe or Ansible run that targets this host fails with this message.
    pub fail_with: Option<String>,
    /// `kayobe overcloud host configure` runs that reached this host.
    pub host_configures: u32,
    /// `kayobe overcloud service deploy` runs that reached this host.
    pub service_deploys: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct Project {
    pub id: String,
    pub name: String,
}

/// A Nova server (instance) placed on a host.
#[derive(Clone, Debug, Serialize)]
pub struct Server {
    pub id: String,
    pub name: String,
    pub project_id: String,
    pub user_id: String,
    /// `ACTIVE`, `SHUTOFF`, `ERROR`, `PAUSED`, `SUSPENDED`, `MIGRATING`, `RESIZE`, `VERIFY_RESIZE`.
    pub status: String,
    /// `OS-EXT-STS:task_state`: `migrating`, `resize_migrating`, ...
    pub task_state: Option<String>,
    /// FQDN of the host it runs on (`OS-EXT-SRV-ATTR:host` is its short form in Nova).
    pub host: String,
    pub vcpus: u32,
    pub ram_mb: u64,
    pub disk_gb: u64,
    pub flavor_name: String,
    /// The libvirt domain name (`instance-0000002a`).
    pub instance_name: String,
    pub created: String,
    /// Test hooks: the next migration of this server fails, or never finishes.
    pub fail_migration: bool,
    pub hang_migration: bool,
    /// Test hook: its migrations report `completed` while the server keeps its old host.
    pub stale_host_after_migration: bool,
    /// Test hook: Placement has no allocation of it (a server whose
    /// allocations were lost, until `nova-manage placement heal_allocations`).
    pub no_allocation: bool,
}

/// A Nova migration record (`os-migrations`).
#[derive(Clone, Debug, Serialize)]
pub struct Migration {
    pub id: u64,
    pub uuid: String,
    pub server_id: String,
    pub source_compute: String,
    pub dest_compute: String,
    /// `live-migration` or `migration` (cold).
    pub migration_type: String,
    /// `queued`, `preparing`, `running`, `post-migrating`, `completed`, `finished`,
    /// `confirmed`, `error`, `failed`, `cancelled`.
    pub status: String,
    pub old_instance_type_id: u64,
    pub new_instance_type_id: u64,
    pub created_at: String,
    pub updated_at: String,
    /// Simulated seconds the migration takes.
    pub duration_secs: f64,
    /// Simulated time it started at (see `WorldState::clock`).
    pub started_at_sim: f64,
    /// Server status before it started (a cold-migrated SHUTOFF server goes back to SHUTOFF).
    pub previous_status: String,
}

#[derive(Debug, Serialize)]
pub struct NetBoxState {
    pub devices: Vec<NetBoxDevice>,
    pub roles: Vec<NetBoxRole>,
    pub device_types: Vec<NetBoxDeviceType>,
    /// Names of the custom fields defined for devices (every device shows all of them).
    pub custom_field_names: Vec<String>,
    /// `"4.6"`, or a 3.x version to serve the v3 shapes (`device_role`).
    pub version: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct NetBoxDevice {
    pub id: u64,
    pub name: String,
    pub status: String,
    pub role_id: u64,
    pub device_type_id: u64,
    pub site: String,
    pub oob_ip: Option<String>,
    /// The serial number (the vendor's service tag).
    pub serial: String,
    pub interfaces: Vec<NetBoxInterface>,
    pub custom_fields: BTreeMap<String, serde_json::Value>,
    pub created: String,
    pub last_updated: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct NetBoxInterface {
    pub id: u64,
    pub name: String,
    pub mac_address: Option<String>,
    /// Addresses with their prefix length (`10.1.0.5/24`), each with its id.
    pub ip_addresses: Vec<(u64, String)>,
}

#[derive(Clone, Debug, Serialize)]
pub struct NetBoxRole {
    pub id: u64,
    pub name: String,
    pub slug: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct NetBoxDeviceType {
    pub id: u64,
    pub manufacturer: String,
    pub model: String,
    pub slug: String,
    pub description: String,
}

#[derive(Debug, Serialize)]
pub struct JiraState {
    pub project_key: String,
    pub project_id: String,
    pub issue_type: String,
    pub issues: Vec<JiraIssue>,
    /// Status names and the statuses reachable from each (the site's workflow).
    pub workflow: BTreeMap<String, Vec<String>>,
    pub initial_status: String,
    pub next_issue_number: u64,
    /// The most characters a comment body may have (`None`: no limit). Jira
    /// refuses longer ones with 400: its `jira.text.field.character.limit`,
    /// 32,767 by default (Atlassian, "Configuring advanced settings").
    pub comment_limit: Option<usize>,
    /// See [`WorldOptions::jira_cloud`].
    pub cloud: bool,
    /// See [`WorldOptions::jira_required_fields`].
    pub required_fields: BTreeMap<String, Vec<String>>,
    /// See [`WorldOptions::jira_search_lag`].
    pub search_lag: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct JiraIssue {
    pub id: String,
    pub key: String,
    pub summary: String,
    /// Wiki string (v2) or ADF document (v3), as given.
    pub description: Option<serde_json::Value>,
    pub status: String,
    pub comments: Vec<JiraComment>,
    pub created: String,
    pub updated: String,
    /// Files attached to the issue, oldest first.
    pub attachments: Vec<JiraAttachment>,
    /// Searches (`search/jql`) that will still miss this new issue, unless
    /// asked to reconcile it: Cloud's search index is eventually consistent.
    pub unindexed_searches: u32,
}

/// A file attached to an issue.
#[derive(Clone, Debug, Serialize)]
pub struct JiraAttachment {
    pub id: String,
    pub filename: String,
    /// Its length in bytes.
    pub size: usize,
    pub mime_type: String,
    pub author: String,
    pub created: String,
    /// What was uploaded, as text (lossy for binary files).
    pub content: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct JiraComment {
    pub id: String,
    /// A wiki string (posted through v2) or an ADF document (posted through v3).
    pub body: serde_json::Value,
    pub internal: bool,
    pub author: String,
    pub created: String,
}

/// An Alertmanager silence.
#[derive(Clone, Debug, Serialize)]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<SilenceMatcher>,
    pub starts_at: String,
    pub ends_at: String,
    pub updated_at: String,
    pub created_by: String,
    pub comment: String,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SilenceMatcher {
    pub name: String,
    pub value: String,
    pub is_regex: bool,
    pub is_equal: bool,
}

impl SilenceMatcher {
    /// Whether a label with this value matches (a missing label is the empty
    /// string; regexes are anchored RE2, as Alertmanager's `labels.Matcher`).
    pub fn matches_value(&self, value: &str) -> bool {
        let hit = if self.is_regex {
            regex_lite::Regex::new(&format!("^(?:{})$", self.value)).is_ok_and(|regex| regex.is_match(value))
        } else {
            self.value == value
        };
        hit == self.is_equal
    }

    /// Whether it matches a label set.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_value(labels.get(&self.name).map_or("", String::as_str))
    }
}

/// An alert Alertmanager received.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Alert {
    pub labels: BTreeMap<String, String>,
    pub starts_at: String,
}

/// What the SUSE Customer Center received.
#[derive(Debug, Default, Serialize)]
pub struct SccRegistry {
    /// The latest upload per virtualization host identifier.
    pub hosts: BTreeMap<String, serde_json::Value>,
    pub uploads: u64,
    /// The headers of the latest upload (names in lower case), but its credentials.
    pub last_headers: BTreeMap<String, String>,
}

/// The statuses of the Jira workflow named in DESIGN section 3, and which
/// transitions each offers.
fn jira_workflow() -> BTreeMap<String, Vec<String>> {
    let edges: &[(&str, &[&str])] = &[
        ("To Do", &["Draining", "Working On Pre Bios"]),
        ("Draining", &["Drained", "Working On Pre Bios"]),
        ("Drained", &["Working On Pre Bios"]),
        ("Working On Pre Bios", &["Ready For Reinstall", "Pre Bios Failed"]),
        ("Pre Bios Failed", &["Working On Pre Bios"]),
        ("Ready For Reinstall", &["Working On Reinstall", "Working On Post Reinstall"]),
        ("Working On Reinstall", &["Working On Post Reinstall"]),
        ("Working On Post Reinstall", &["Ready For Adoption", "Post Reinstall Failed"]),
        ("Post Reinstall Failed", &["Working On Post Reinstall"]),
        ("Ready For Adoption", &["Working On Adoption"]),
        ("Working On Adoption", &["Ready For Test", "Adoption Failed"]),
        ("Adoption Failed", &["Working On Adoption"]),
        ("Ready For Test", &["Done"]),
        ("Done", &[]),
    ];
    edges.iter().map(|(from, to)| (from.to_string(), to.iter().map(|s| s.to_string()).collect())).collect()
}

/// Hardware shapes of the site. The first ones are the deliberate oddities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Standard,
    MissingFromNetBox,
    ErrorVm,
    Gpu,
    Mellanox,
    A100,
    Lenovo,
    AlreadyOnTarget,
    FailingMigration,
}

const ODDITIES: [Shape; 8] = [
    Shape::MissingFromNetBox,
    Shape::ErrorVm,
    Shape::Gpu,
    Shape::Mellanox,
    Shape::A100,
    Shape::Lenovo,
    Shape::AlreadyOnTarget,
    Shape::FailingMigration,
];

pub const COMPUTE_ROLE: &str = "Openstack Prod Kolla_Compute";
const START: &str = "2026-01-05T09:00:00Z";

impl WorldState {
    pub fn generate(options: &WorldOptions) -> Self {
        let mut rng = StdRng::seed_from_u64(options.seed);
        let mut world = WorldState {
            site: options.site.clone(),
            seed: options.seed,
            hosts: Vec::with_capacity(options.hosts + options.hosts / 4 + 2),
            servers: BTreeMap::new(),
            migrations: Vec::new(),
            projects: (1..=8).map(|n| Project { id: hex_id(&mut rng, 32), name: format!("project-{n:02}") }).collect(),
            netbox: NetBoxState {
                devices: Vec::new(),
                roles: vec![
                    NetBoxRole { id: 1, name: COMPUTE_ROLE.into(), slug: "openstack-prod-kolla-compute".into() },
                    NetBoxRole {
                        id: 2,
                        name: "Openstack Prod Maintenance".into(),
                        slug: "openstack-prod-maintenance".into(),
                    },
                    NetBoxRole {
                        id: 3,
                        name: "Openstack Prod Controller".into(),
                        slug: "openstack-prod-controller".into(),
                    },
                ],
                device_types: Vec::new(),
                custom_field_names: vec!["maintenance_ticket".into(), "migration_state".into()],
                version: "4.6".into(),
            },
            jira: JiraState {
                project_key: "MH".into(),
                project_id: "10000".into(),
                issue_type: "HyperVisor".into(),
                issues: Vec::new(),
                workflow: jira_workflow(),
                initial_status: "To Do".into(),
                next_issue_number: 101,
                comment_limit: Some(32_767),
                cloud: options.jira_cloud,
                required_fields: options.jira_required_fields.clone(),
                search_lag: options.jira_search_lag,
            },
            silences: Vec::new(),
            alerts: Vec::new(),
            scc: SccRegistry::default(),
            time_scale: 1.0,
            service_hosts: ["aquilon", "kayobe"]
                .into_iter()
                .map(|name| (format!("{name}.{}.example.org", options.site), HostShell::default()))
                .collect(),
            ssh_connections: BTreeMap::new(),
            keystone_tokens: Default::default(),
            token_lifetime_secs: 3600,
            clock: Default::default(),
            max_concurrent_migrations: 0,
            max_concurrent_migrations_per_source: 0,
            max_concurrent_migrations_per_destination: 0,
            openstack_member_user: options.openstack_member_user,
            nova_policy: options.nova_policy.clone(),
            short_service_hosts: options.short_service_hosts,
            reinstall_like_real: options.reinstall_like_real,
            allocation: options.allocation.clone(),
            next_id: 1,
            vms_per_host: options.vms_per_host,
            remote_job_minute: std::time::Duration::from_millis(10),
            jobs: Default::default(),
            kayobe_runs: KayobeRuns::default(),
            guests: Default::default(),
            nova_power_actions: Vec::new(),
        };
        let spares = (options.hosts / 4).max(2);
        for index in 0..options.hosts + spares {
            let in_campaign = index < options.hosts;
            let shape = match ODDITIES.get(index) {
                Some(shape) if options.oddities && in_campaign => *shape,
                _ => Shape::Standard,
            };
            world.add_host(&mut rng, index, in_campaign, shape);
        }
        if options.guest_oddities {
            world.add_guest_oddities();
        }
        if options.host_alerts {
            let hosts: Vec<String> = world.campaign_hosts().map(|host| host.fqdn.clone()).collect();
            for fqdn in hosts {
                let labels = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
                let instance = format!("{fqdn}:9100");
                world.alerts.push(Alert {
                    labels: labels(&[
                        ("alertname", "NodeFilesystemSpaceFillingUp"),
                        ("instance", &instance),
                        ("job", "node"),
                        ("mountpoint", "/var/lib/docker"),
                        ("severity", "warning"),
                    ]),
                    starts_at: START.into(),
                });
                world.alerts.push(Alert {
                    labels: labels(&[
                        ("alertname", "IPMISensorWarning"),
                        ("hostname", &fqdn),
                        ("job", "ipmi"),
                        ("severity", "warning"),
                    ]),
                    starts_at: START.into(),
                });
            }
        }
        world
    }

    /// A fresh id for records that are numbered site-wide.
    pub fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub fn host(&self, fqdn: &str) -> Option<&Host> {
        self.hosts.iter().find(|host| host.fqdn == fqdn)
    }

    pub fn host_mut(&mut self, fqdn: &str) -> Option<&mut Host> {
        self.hosts.iter_mut().find(|host| host.fqdn == fqdn)
    }

    /// Hosts of the campaign, in hypervisors-file order.
    pub fn campaign_hosts(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(|host| host.in_campaign)
    }

    pub fn servers_on<'a>(&'a self, fqdn: &'a str) -> impl Iterator<Item = &'a Server> + 'a {
        self.servers.values().filter(move |server| server.host == fqdn)
    }

    pub fn netbox_device(&self, id: u64) -> Option<&NetBoxDevice> {
        self.netbox.devices.iter().find(|device| device.id == id)
    }

    pub fn jira_issue(&self, key_or_id: &str) -> Option<&JiraIssue> {
        self.jira.issues.iter().find(|issue| issue.key == key_or_id || issue.id == key_or_id)
    }

    pub fn jira_issue_mut(&mut self, key_or_id: &str) -> Option<&mut JiraIssue> {
        self.jira.issues.iter_mut().find(|issue| issue.key == key_or_id || issue.id == key_or_id)
    }

    /// Creates a Jira issue in the site's project, in its initial status.
    pub fn create_jira_issue(
        &mut self,
        summary: &str,
        description: Option<serde_json::Value>,
        at: jiff::Timestamp,
    ) -> &JiraIssue {
        let number = self.jira.next_issue_number;
        self.jira.next_issue_number += 1;
        let now = jira_time(&at);
        self.jira.issues.push(JiraIssue {
            id: (10000 + number).to_string(),
            key: format!("{}-{number}", self.jira.project_key),
            summary: summary.into(),
            description,
            status: self.jira.initial_status.clone(),
            comments: Vec::new(),
            created: now.clone(),
            updated: now,
            attachments: Vec::new(),
            unindexed_searches: self.jira.search_lag,
        });
        self.jira.issues.last().expect("just pushed")
    }

    fn add_host(&mut self, rng: &mut StdRng, index: usize, in_campaign: bool, shape: Shape) {
        let number = index + 1;
        let (prefix, model, vendor, description) = match shape {
            Shape::Gpu => ("hv-rtx4000", "hv-2021-rtx4000", "Dell Inc.", "PowerEdge R740 GPU host (NVIDIA RTX 4000)"),
            Shape::A100 => ("hv-a100", "xma-hv-2022-a100", "Dell Inc.", "PowerEdge XE8545 GPU host (NVIDIA A100)"),
            Shape::Lenovo => ("hv-lenovo", "hv-2022-lenovo", "Lenovo", "ThinkSystem SR645 compute node"),
            Shape::Mellanox => ("hv-mlx", "hv-2022-mellanox", "Dell Inc.", "PowerEdge R6525 with ConnectX-6"),
            _ => ("hv", "hv-2022-dell", "Dell Inc.", "PowerEdge R6525 compute node"),
        };
        let fqdn = format!("{prefix}{number:03}.{}.example.org", self.site);
        let os = if shape == Shape::AlreadyOnTarget || !in_campaign {
            OsRelease::rocky("9.4")
        } else {
            OsRelease::rocky("8.10")
        };
        let cpu = match shape {
            Shape::Lenovo => CpuTopology {
                arch: "x86_64".into(),
                vendor: "AMD".into(),
                model: "EPYC-Milan".into(),
                numa_cells: 1,
                sockets: 1,
                cores_per_socket: 64,
                threads_per_core: 2,
            },
            Shape::A100 => CpuTopology {
                arch: "x86_64".into(),
                vendor: "AMD".into(),
                model: "EPYC-Milan".into(),
                numa_cells: 2,
                sockets: 2,
                cores_per_socket: 32,
                threads_per_core: 1,
            },
            _ => CpuTopology {
                arch: "x86_64".into(),
                vendor: "AMD".into(),
                model: "EPYC-Rome".into(),
                numa_cells: 2,
                sockets: 2,
                cores_per_socket: 16,
                threads_per_core: 2,
            },
        };
        let memory_mib = if shape == Shape::A100 { 1_048_576 } else { 524_288 };
        let mut disks = vec![Disk {
            children: vec![
                Disk::new("sda1", "part", 1 << 30).mounted("vfat", "/boot/efi"),
                Disk::new("sda2", "part", 479 << 30).mounted("xfs", "/"),
            ],
            ..Disk::new("sda", "disk", 480 << 30)
        }];
        if matches!(shape, Shape::Lenovo | Shape::A100) {
            disks.push(Disk::new("nvme0n1", "disk", 3_840_000_000_000));
        }
        if shape == Shape::A100 {
            disks.push(Disk::new("nvme1n1", "disk", 3_840_000_000_000));
        }
        let mut pci = vec![
            PciDevice { slot: "0000:00:00.0".into(), class: "Host bridge".into(), description: "Advanced Micro Devices, Inc. [AMD] Starship/Matisse Root Complex".into() },
            PciDevice { slot: "0000:01:00.0".into(), class: "Ethernet controller".into(), description: "Broadcom Inc. and subsidiaries BCM57416 NetXtreme-E Dual-Media 10G RDMA Ethernet Controller (rev 01)".into() },
        ];
        match shape {
            Shape::Gpu => pci.push(PciDevice {
                slot: "0000:3b:00.0".into(),
                class: "VGA compatible controller".into(),
                description: "NVIDIA Corporation TU104GL [Quadro RTX 4000] (rev a1)".into(),
            }),
            Shape::A100 => {
                for slot in ["0000:41:00.0", "0000:81:00.0"] {
                    pci.push(PciDevice {
                        slot: slot.into(),
                        class: "3D controller".into(),
                        description: "NVIDIA Corporation GA100 [A100 PCIe 80GB] (rev a1)".into(),
                    });
                }
            }
            Shape::Mellanox => pci.push(PciDevice {
                slot: "0000:c1:00.0".into(),
                class: "Ethernet controller".into(),
                description: "Mellanox Technologies MT28908 Family [ConnectX-6]".into(),
            }),
            _ => {}
        }
        let host_uuid = uuid(rng);
        let az = "nova".to_string();
        let hypervisor_id = self.next_id();
        let compute_id = self.next_id();
        let mut host = Host {
            fqdn: fqdn.clone(),
            in_campaign,
            model: model.into(),
            vendor: vendor.into(),
            os,
            efi: true,
            disks,
            pci,
            cpu,
            memory_mib,
            host_uuid,
            compute: ComputeService {
                id: compute_id,
                uuid: uuid(rng),
                status: "enabled".into(),
                state: "up".into(),
                disabled_reason: None,
                forced_down: false,
                updated_at: "2026-01-05T09:00:00.000000".into(),
            },
            hypervisor_id,
            hypervisor_uuid: uuid(rng),
            availability_zone: az,
            aggregate: "compute".into(),
            allocation: self.allocation.clone(),
            netbox_device: None,
            machine: MachineIdentity::generate(self.seed, &fqdn, "", ""),
            aquilon: AquilonHost::default(),
            shell: HostShell {
                packages: BTreeMap::from([("qemu-kvm".to_string(), "6.2.0-40.module+el8.9.0".to_string())]),
                dnf_works: true,
                resolv_conf: format!("search {}.example.org\nnameserver 10.0.0.53\n", self.site),
                ..HostShell::default()
            },
            kayobe: KayobeNode::default(),
            jira_key: None,
        };
        let bmc_ip = format!("10.{}.{}.{}/24", 100 + (number / 65536) % 100, (number / 256) % 256, number % 256);
        let mac = |rng: &mut StdRng| {
            let bytes: [u8; 5] = rng.random();
            format!("b8:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", bytes[0], bytes[1], bytes[2], bytes[3], bytes[4])
        };
        let eth0_mac = mac(rng);
        let bmc_mac = mac(rng);
        host.machine = MachineIdentity::generate(self.seed, &fqdn, &eth0_mac, &bmc_mac);
        host.aquilon = AquilonHost {
            host_exists: true,
            machine: format!("system{}", 10_000 + number),
            domain: "prod".into(),
            archetype: "cloud".into(),
            personality: "kayobe-prod-rl8".into(),
            osname: "rocky".into(),
            osversion: "8x-x86_64".into(),
            interfaces: vec![
                AquilonInterface {
                    name: "bmc0".into(),
                    mac: bmc_mac.clone(),
                    ip: Some(bmc_ip.split('/').next().unwrap_or_default().into()),
                },
                AquilonInterface {
                    name: "eth0".into(),
                    mac: eth0_mac.clone(),
                    ip: Some(format!("172.16.{}.{}", (number / 256) % 256, number % 256)),
                },
                AquilonInterface { name: "br0".into(), mac: mac(rng), ip: None },
            ],
            disks: if shape == Shape::A100 {
                vec!["sda".into(), "nvme0n1".into(), "nvme1n1".into()]
            } else {
                vec!["sda".into()]
            },
            pxe_install: false,
            reimports: 0,
        };
        if shape != Shape::MissingFromNetBox {
            let device_type_id = self.device_type(manufacturer_slug(vendor), vendor, model, description);
            let device_id = self.next_id();
            let interface_id = self.next_id();
            let ip_id = self.next_id();
            let eth_id = self.next_id();
            let now = "2025-06-01T10:00:00.000000Z".to_string();
            self.netbox.devices.push(NetBoxDevice {
                id: device_id,
                name: fqdn.clone(),
                status: if index % 11 == 10 { "offline".into() } else { "active".into() },
                role_id: 1,
                device_type_id,
                site: self.site.clone(),
                // Every other host has oob_ip set; the rest are found through bmc0.
                oob_ip: index.is_multiple_of(2).then(|| bmc_ip.clone()),
                serial: host.machine.serial.clone(),
                interfaces: vec![
                    NetBoxInterface {
                        id: interface_id,
                        name: "bmc0".into(),
                        mac_address: Some(bmc_mac),
                        ip_addresses: vec![(ip_id, bmc_ip)],
                    },
                    NetBoxInterface {
                        id: eth_id,
                        name: "eth0".into(),
                        mac_address: Some(eth0_mac),
                        ip_addresses: vec![],
                    },
                ],
                custom_fields: self
                    .netbox
                    .custom_field_names
                    .iter()
                    .map(|name| (name.clone(), serde_json::Value::Null))
                    .collect(),
                created: now.clone(),
                last_updated: now,
            });
            host.netbox_device = Some(device_id);
        }
        if in_campaign {
            let key = self
                .create_jira_issue(
                    &fqdn,
                    Some(serde_json::Value::String(format!("Migration of {fqdn}"))),
                    START.parse().expect("valid"),
                )
                .key
                .clone();
            host.jira_key = Some(key);
        }
        let vm_count = match (in_campaign, self.vms_per_host) {
            (false, _) => 0,
            (true, Some(count)) => count,
            (true, None) => rng.random_range(1..=4),
        };
        self.hosts.push(host);
        for n in 0..vm_count {
            let status = if shape == Shape::ErrorVm && n == 0 {
                "ERROR"
            } else if rng.random_bool(0.2) {
                "SHUTOFF"
            } else {
                "ACTIVE"
            };
            let server = self.new_server(rng, &fqdn, status);
            let fail = shape == Shape::FailingMigration && n == 0;
            let id = server.id.clone();
            self.servers.insert(
                id.clone(),
                Server {
                    fail_migration: fail,
                    status: if fail { "ACTIVE".into() } else { server.status.clone() },
                    ..server
                },
            );
        }
    }

    fn device_type(&mut self, slug_prefix: &str, manufacturer: &str, model: &str, description: &str) -> u64 {
        if let Some(existing) = self.netbox.device_types.iter().find(|t| t.model == model) {
            return existing.id;
        }
        let id = self.netbox.device_types.len() as u64 + 1;
        self.netbox.device_types.push(NetBoxDeviceType {
            id,
            manufacturer: manufacturer.into(),
            model: model.into(),
            slug: format!("{slug_prefix}-{model}"),
            description: description.into(),
        });
        id
    }

    fn new_server(&mut self, rng: &mut StdRng, host: &str, status: &str) -> Server {
        let flavors = [("m1.small", 2, 4096, 20), ("m1.medium", 4, 8192, 40), ("m1.large", 8, 16384, 80)];
        let (flavor_name, vcpus, ram_mb, disk_gb) = flavors[rng.random_range(0..flavors.len())];
        let project_id = self.projects[rng.random_range(0..self.projects.len())].id.clone();
        let number = self.next_id();
        Server {
            id: uuid(rng),
            name: format!("vm-{number:05}"),
            project_id,
            user_id: hex_id(rng, 32),
            status: status.into(),
            task_state: None,
            host: host.into(),
            vcpus,
            ram_mb,
            disk_gb,
            flavor_name: flavor_name.into(),
            instance_name: format!("instance-{number:08x}"),
            created: START.into(),
            fail_migration: false,
            hang_migration: false,
            stale_host_after_migration: false,
            no_allocation: false,
        }
    }
}

fn manufacturer_slug(vendor: &str) -> &'static str {
    if vendor.starts_with("Lenovo") {
        "lenovo"
    } else {
        "dell"
    }
}

/// A random UUID (version 4 layout) from the seeded generator.
pub fn uuid(rng: &mut impl Rng) -> String {
    let bytes: [u8; 16] = rng.random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-4{}-a{}-{}", &hex[0..8], &hex[8..12], &hex[13..16], &hex[17..20], &hex[20..32])
}

/// `len` random hex digits (Keystone ids are 32).
pub fn hex_id(rng: &mut impl Rng, len: usize) -> String {
    (0..len).map(|_| char::from_digit(rng.random_range(0..16), 16).expect("digit")).collect()
}

/// Jira's timestamp format: `2021-01-17T12:34:00.000+0000`.
pub fn jira_time(at: &jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_world() {
        let options = WorldOptions::default();
        let a = serde_json::to_string(&WorldState::generate(&options)).unwrap();
        let b = serde_json::to_string(&WorldState::generate(&options)).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn oddities_are_present() {
        let world = WorldState::generate(&WorldOptions::default());
        let campaign: Vec<_> = world.campaign_hosts().collect();
        assert_eq!(campaign.len(), 12);
        assert!(world.hosts.len() > 12, "spare hosts receive drained VMs");
        assert!(campaign.iter().any(|h| h.netbox_device.is_none()), "a host missing from NetBox");
        assert!(world.servers.values().any(|s| s.status == "ERROR"), "a VM in ERROR");
        assert!(world.servers.values().any(|s| s.fail_migration), "a VM whose migration fails");
        assert!(campaign.iter().any(|h| h.model == "xma-hv-2022-a100"));
        assert!(campaign.iter().any(|h| h.model == "hv-2022-lenovo"));
        assert!(campaign.iter().any(|h| h.pci.iter().any(|p| p.description.contains("Mellanox"))));
        assert!(campaign.iter().any(|h| h.pci.iter().any(|p| p.description.contains("RTX 4000"))));
        assert!(campaign.iter().any(|h| h.os.version_id.starts_with('9')), "a host already on the target OS");
        assert_eq!(world.jira.issues.len(), 12);
        assert!(campaign.iter().all(|h| world.jira_issue(h.jira_key.as_deref().unwrap()).unwrap().summary == h.fqdn));
    }

    #[test]
    fn thousands_of_hosts() {
        let world = WorldState::generate(&WorldOptions { hosts: 5000, ..WorldOptions::default() });
        assert_eq!(world.campaign_hosts().count(), 5000);
        let fqdns: std::collections::HashSet<_> = world.hosts.iter().map(|h| &h.fqdn).collect();
        assert_eq!(fqdns.len(), world.hosts.len(), "host names are unique");
    }
}
