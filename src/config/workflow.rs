//! The optional `workflow` section: the per-site names and limits of DESIGN
//! section 3. Every value defaults to the original site's.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::InputProblem;

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Workflow {
    pub transitions: Transitions,
    pub netbox: NetBoxNames,
    pub source_os: OsVersion,
    pub target_os: OsVersion,
    /// The Nova disable reason; `{initials}` is replaced by `general.initials`.
    pub disable_reason: String,
    /// Packages updated on the hypervisor in pre-drain.
    pub packages_to_update: Vec<String>,
    pub silence: SilenceSettings,
    pub aquilon: AquilonSettings,
    pub kayobe: KayobeSettings,
    /// Fixes applied in post-reinstall, by hardware model.
    pub model_fixes: BTreeMap<String, Vec<DiskFix>>,
    /// Whether a fix may format a device that already holds a filesystem.
    pub allow_reformat: bool,
    pub limits: Limits,
    /// The SCC group (`group_name`) of the uploaded hosts; the site name (the
    /// hosts' DNS sub-domain) when unset.
    pub scc_group: Option<String>,
    pub drain: DrainSettings,
    /// Kayobe, playbooks and package updates run detached on their host.
    pub remote_jobs: RemoteJobSettings,
    /// The shared ledger: how long a run's hold on a host lasts unrenewed.
    pub ledger: LedgerSettings,
    /// Where nova-compute keeps its node identity on the host (Nova 2023.1+:
    /// `compute_id` under its state path; Kolla's `nova_compute` volume).
    pub nova_compute_id_path: String,
    /// Owner (`user:group`) of the restored `compute_id`: Kolla's `nova` user
    /// inside the container (uid and gid 42436).
    pub nova_compute_id_owner: String,
    /// Write the saved node identity back after the reinstall. Off, the
    /// reinstalled nova-compute refuses to start, as Nova does without it.
    pub nova_compute_id_restore: bool,
}

/// Kolla's `nova_compute` volume holds nova-compute's state path (`/var/lib/nova`).
pub const KOLLA_NOVA_COMPUTE_ID_PATH: &str = "/var/lib/docker/volumes/nova_compute/_data/compute_id";

impl Default for Workflow {
    fn default() -> Self {
        Workflow {
            transitions: Transitions::default(),
            netbox: NetBoxNames::default(),
            source_os: OsVersion { id: "rocky".into(), version: "8".into() },
            target_os: OsVersion { id: "rocky".into(), version: "9".into() },
            disable_reason: "Migration to Rocky 9 - {initials}".into(),
            packages_to_update: vec!["qemu-kvm".into()],
            silence: SilenceSettings::default(),
            aquilon: AquilonSettings::default(),
            kayobe: KayobeSettings::default(),
            model_fixes: default_model_fixes(),
            allow_reformat: false,
            limits: Limits::default(),
            scc_group: None,
            drain: DrainSettings::default(),
            remote_jobs: RemoteJobSettings::default(),
            ledger: LedgerSettings::default(),
            nova_compute_id_path: KOLLA_NOVA_COMPUTE_ID_PATH.into(),
            nova_compute_id_owner: "42436:42436".into(),
            nova_compute_id_restore: true,
        }
    }
}

impl Workflow {
    pub(crate) fn validate(&self, path: &Path) -> Vec<InputProblem> {
        let mut problems = Vec::new();
        let limits = [
            ("aquilon_commands", self.limits.aquilon_commands),
            ("live_migrations_global", self.limits.live_migrations_global),
            ("live_migrations_per_host", self.limits.live_migrations_per_host),
            ("service_requests", self.limits.service_requests),
        ];
        for (name, value) in limits {
            if value == 0 {
                problems.push(InputProblem::new(path, format!("workflow.limits.{name} must be at least 1")));
            }
        }
        problems.extend(self.drain.validate(path));
        problems.extend(self.remote_jobs.validate(path));
        if self.ledger.lease_secs < 3 {
            problems.push(InputProblem::new(path, "workflow.ledger.lease_secs must be at least 3"));
        }
        if self.silence.window_days == 0 {
            problems.push(InputProblem::new(path, "workflow.silence.window_days must be at least 1"));
        }
        for (model, fixes) in &self.model_fixes {
            for fix in fixes {
                if let DiskFix::Raid0 { members, .. } = fix {
                    if members.len() < 2 {
                        problems.push(InputProblem::new(
                            path,
                            format!("workflow.model_fixes.{model}: a raid0 needs at least two members"),
                        ));
                    }
                }
            }
        }
        problems
    }

    /// The disable reason with the operator's initials filled in.
    pub fn disable_reason_for(&self, initials: &str) -> String {
        self.disable_reason.replace("{initials}", initials)
    }
}

/// The ledger shared by every run of the campaign.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LedgerSettings {
    /// How long a host lease lasts unless renewed: a run renews its leases
    /// every third of it, and a run that stopped renewing (killed, or on a
    /// machine that went away) frees its hosts this long after its last renewal.
    pub lease_secs: u64,
}

impl Default for LedgerSettings {
    fn default() -> Self {
        LedgerSettings { lease_secs: 300 }
    }
}

impl LedgerSettings {
    pub fn lease_duration(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.lease_secs)
    }
}

/// Target status names of the Jira workflow.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Transitions {
    pub working_on_pre_bios: String,
    pub pre_bios_failed: String,
    pub ready_for_reinstall: String,
    pub working_on_post_reinstall: String,
    pub post_reinstall_failed: String,
    pub ready_for_adoption: String,
    pub working_on_adoption: String,
    pub adoption_failed: String,
    pub ready_for_test: String,
    pub draining: String,
    pub drained: String,
}

impl Default for Transitions {
    fn default() -> Self {
        Transitions {
            working_on_pre_bios: "Working On Pre Bios".into(),
            pre_bios_failed: "Pre Bios Failed".into(),
            ready_for_reinstall: "Ready For Reinstall".into(),
            working_on_post_reinstall: "Working On Post Reinstall".into(),
            post_reinstall_failed: "Post Reinstall Failed".into(),
            ready_for_adoption: "Ready For Adoption".into(),
            working_on_adoption: "Working On Adoption".into(),
            adoption_failed: "Adoption Failed".into(),
            ready_for_test: "Ready For Test".into(),
            draining: "Draining".into(),
            drained: "Drained".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetBoxNames {
    /// Statuses a device may have when pre-drain starts.
    pub pre_drain_statuses: Vec<String>,
    pub reinstall_status: String,
    pub active_status: String,
    pub compute_role: String,
    /// The interface whose first address is the BMC's, when `oob_ip` is unset.
    pub bmc_interface: String,
}

impl Default for NetBoxNames {
    fn default() -> Self {
        NetBoxNames {
            pre_drain_statuses: vec!["active".into(), "offline".into()],
            reinstall_status: "planned".into(),
            active_status: "active".into(),
            compute_role: "Openstack Prod Kolla_Compute".into(),
            bmc_interface: "bmc0".into(),
        }
    }
}

/// `ID` and the leading part of `VERSION_ID` of `/etc/os-release`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OsVersion {
    pub id: String,
    /// Matched as a prefix: "9" accepts "9.4".
    pub version: String,
}

impl OsVersion {
    pub fn matches(&self, id: &str, version_id: &str) -> bool {
        id == self.id
            && version_id
                .strip_prefix(self.version.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
    }
}

impl std::fmt::Display for OsVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.id, self.version)
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SilenceSettings {
    /// Length of the maintenance window.
    pub window_days: u32,
    /// Comment on each silence; `{start}` and `{initials}` are filled in.
    pub comment: String,
    pub created_by: String,
    /// One silence per matcher. The Prometheus `instance` label is usually
    /// `host:port` (`hv01.example.org:9100`), so the default matches it by
    /// regex; a plain label name matches that label equal to the FQDN.
    pub matchers: Vec<SilenceMatcherSetting>,
}

impl Default for SilenceSettings {
    fn default() -> Self {
        SilenceSettings {
            window_days: 28,
            comment: "RL9 Reinstall {start} - {initials}".into(),
            created_by: "hvmigrate".into(),
            matchers: vec![
                SilenceMatcherSetting::Template(MatcherTemplate {
                    name: "hostname".into(),
                    regex: false,
                    value: "{fqdn}".into(),
                }),
                SilenceMatcherSetting::Template(MatcherTemplate {
                    name: "instance".into(),
                    regex: true,
                    value: "{fqdn}(:[0-9]+)?".into(),
                }),
            ],
        }
    }
}

/// One silence matcher: a label name (equal to the FQDN), or a name, an
/// operator and a value template.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum SilenceMatcherSetting {
    Label(String),
    Template(MatcherTemplate),
}

/// `{fqdn}` and `{short}` in `value` are the host's names; in a regex they
/// are escaped (the dots match dots only).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MatcherTemplate {
    pub name: String,
    /// `=~` (an RE2 regex, anchored by Alertmanager) instead of `=`.
    #[serde(default)]
    pub regex: bool,
    pub value: String,
}

impl SilenceMatcherSetting {
    /// The label name, whether a regex, and the value for the host `fqdn`.
    pub fn for_host(&self, fqdn: &str) -> (String, bool, String) {
        let short = fqdn.split('.').next().unwrap_or(fqdn);
        match self {
            SilenceMatcherSetting::Label(name) => (name.clone(), false, fqdn.to_owned()),
            SilenceMatcherSetting::Template(template) => {
                let fill = |name: &str| if template.regex { regex_escape(name) } else { name.to_owned() };
                let value = template.value.replace("{fqdn}", &fill(fqdn)).replace("{short}", &fill(short));
                (template.name.clone(), template.regex, value)
            }
        }
    }
}

/// Escapes RE2's special characters.
fn regex_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + 4);
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AquilonSettings {
    pub domain: String,
    pub archetype: String,
    pub personality: String,
    pub osname: String,
    pub osversion: String,
    /// Interfaces kept when the host is re-imported.
    pub keep_interfaces: Vec<String>,
    /// Disks removed from the machine, by model.
    pub remove_disks: BTreeMap<String, Vec<String>>,
}

impl Default for AquilonSettings {
    fn default() -> Self {
        AquilonSettings {
            domain: "prod".into(),
            archetype: "cloud".into(),
            personality: "kayobe-prod".into(),
            osname: "rocky".into(),
            osversion: "9x-x86_64".into(),
            keep_interfaces: vec!["bmc0".into(), "eth0".into()],
            remove_disks: BTreeMap::from([("xma-hv-2022-a100".into(), vec!["sda".into()])]),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KayobeSettings {
    pub mellanox_playbook: String,
    pub inventory_playbook: String,
    /// Extra variables for `kayobe overcloud host configure`.
    pub host_configure_extra_vars: Vec<String>,
    /// Kolla tags deployed on the controllers once per adoption run.
    pub controller_tags: String,
}

impl Default for KayobeSettings {
    fn default() -> Self {
        KayobeSettings {
            mellanox_playbook: "ansible/mellanox-enable-uefi-pxe.yml".into(),
            inventory_playbook: "ansible/build-inventory-from-netbox.yml".into(),
            host_configure_extra_vars: vec!["selinux_do_reboot=true".into()],
            controller_tags: "common".into(),
        }
    }
}

/// Long jobs run detached on a remote host, in their own session, each in a
/// folder of its own (pid, log, exit status), and polled: an SSH drop, a
/// Ctrl-C or a crash of the tool leaves them running, and the next run waits
/// for them instead of starting another.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteJobSettings {
    /// The jobs' folders, relative to the login's home on that host.
    pub folder: String,
    /// How long a Kayobe run (inventory, host configure, service deploy, controllers) may take.
    pub kayobe_timeout_secs: u64,
    /// How long the Mellanox UEFI-PXE playbook may take.
    pub playbook_timeout_secs: u64,
    /// How long pre-drain's `dnf update` may take.
    pub package_update_timeout_secs: u64,
    /// Time between two looks at a running job (one short SSH command each).
    pub poll_interval_ms: u64,
}

impl Default for RemoteJobSettings {
    fn default() -> Self {
        RemoteJobSettings {
            folder: "hvmigrate-jobs".into(),
            kayobe_timeout_secs: 6 * 3600,
            playbook_timeout_secs: 2 * 3600,
            package_update_timeout_secs: 3600,
            poll_interval_ms: 15_000,
        }
    }
}

impl RemoteJobSettings {
    fn validate(&self, path: &Path) -> Vec<InputProblem> {
        let mut problems = Vec::new();
        let values = [
            ("kayobe_timeout_secs", self.kayobe_timeout_secs),
            ("playbook_timeout_secs", self.playbook_timeout_secs),
            ("package_update_timeout_secs", self.package_update_timeout_secs),
            ("poll_interval_ms", self.poll_interval_ms),
        ];
        for (name, value) in values {
            if value == 0 {
                problems.push(InputProblem::new(path, format!("workflow.remote_jobs.{name} must be at least 1")));
            }
        }
        let folder = self.folder.trim();
        let safe = !folder.is_empty()
            && folder.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
            && !folder.split('/').any(|part| part == "..");
        if !safe {
            problems.push(InputProblem::new(
                path,
                format!(
                    "workflow.remote_jobs.folder '{}' must be a plain path (letters, digits, - _ . /, no ..)",
                    self.folder
                ),
            ));
        }
        problems
    }

    pub fn poll_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.poll_interval_ms)
    }
}

/// A guarded disk fix of post-reinstall.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DiskFix {
    /// An XFS filesystem on `device`, mounted at `mount_point` through fstab.
    XfsMount { device: String, mount_point: String, options: String },
    /// A RAID0 array of one partition on each member, with an XFS filesystem.
    Raid0 { array: String, members: Vec<String>, mount_point: Option<String> },
}

fn default_model_fixes() -> BTreeMap<String, Vec<DiskFix>> {
    BTreeMap::from([
        (
            "hv-2022-lenovo".into(),
            vec![DiskFix::XfsMount {
                device: "/dev/nvme0n1".into(),
                mount_point: "/var/lib/nova/instances".into(),
                options: "rw,relatime,attr2,inode64,logbufs=8,logbsize=32k,noquota".into(),
            }],
        ),
        (
            "xma-hv-2022-a100".into(),
            vec![DiskFix::Raid0 {
                array: "/dev/md0".into(),
                members: vec!["/dev/nvme0n1".into(), "/dev/nvme1n1".into()],
                mount_point: None,
            }],
        ),
    ])
}

/// Limits on shared resources.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Commands run at once on the Aquilon host.
    pub aquilon_commands: usize,
    pub live_migrations_global: usize,
    pub live_migrations_per_host: usize,
    /// Requests in flight at once to each HTTP service.
    pub service_requests: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { aquilon_commands: 1, live_migrations_global: 8, live_migrations_per_host: 2, service_requests: 32 }
    }
}

/// How the drain step moves VMs away (DESIGN section 3, drain).
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DrainSettings {
    /// PAUSED servers are moved instead of blocking the drain. Nova moves a
    /// paused server only by live migration (it stays paused); SUSPENDED ones
    /// it cannot migrate at all, so they always block.
    pub allow_cold_migrate_paused: bool,
    /// Servers (by name or id) left where they are; they are reported as left behind.
    pub skip_servers: Vec<String>,
    /// Where the capacity check looks for room: the host's availability zone or its aggregates.
    pub capacity_scope: CapacityScope,
    /// A migration may take `timeout_base_secs + timeout_secs_per_gib × RAM in GiB`.
    pub timeout_base_secs: f64,
    pub timeout_secs_per_gib: f64,
    /// What a failed or timed-out migration leads to.
    pub on_failure: OnMigrationFailure,
    /// How often a migration in progress is polled.
    pub poll_interval_ms: u64,
    /// Destination host for every migration; unset lets the scheduler choose.
    pub target_host: Option<String>,
    /// Whether each live-migrated guest's agent is watched (`agent`, the
    /// default: for guests whose agent answers before) or not (`none`).
    pub guest_check: GuestCheck,
    /// How long a guest that answered before may stay silent during or after
    /// its live migration; longer mid-migration and the migration is aborted.
    pub guest_timeout_secs: u64,
}

impl Default for DrainSettings {
    fn default() -> Self {
        DrainSettings {
            allow_cold_migrate_paused: false,
            skip_servers: Vec::new(),
            capacity_scope: CapacityScope::AvailabilityZone,
            timeout_base_secs: 300.0,
            timeout_secs_per_gib: 60.0,
            on_failure: OnMigrationFailure::Continue,
            poll_interval_ms: 2000,
            target_host: None,
            guest_check: GuestCheck::Agent,
            guest_timeout_secs: 60,
        }
    }
}

impl DrainSettings {
    fn validate(&self, path: &Path) -> Vec<InputProblem> {
        let mut problems = Vec::new();
        let positive = [("timeout_base_secs", self.timeout_base_secs)];
        for (name, value) in positive {
            if !(value > 0.0 && value.is_finite()) {
                problems.push(InputProblem::new(path, format!("workflow.drain.{name} must be above 0")));
            }
        }
        if self.guest_timeout_secs == 0 {
            problems.push(InputProblem::new(path, "workflow.drain.guest_timeout_secs must be above 0"));
        }
        if !(self.timeout_secs_per_gib >= 0.0 && self.timeout_secs_per_gib.is_finite()) {
            problems.push(InputProblem::new(path, "workflow.drain.timeout_secs_per_gib must be 0 or more"));
        }
        if self.poll_interval_ms == 0 {
            problems.push(InputProblem::new(path, "workflow.drain.poll_interval_ms must be at least 1"));
        }
        problems
    }

    /// How long a migration of a server with `ram_mb` of memory may take.
    pub fn migration_timeout(&self, ram_mb: u64) -> std::time::Duration {
        let secs = self.timeout_base_secs + self.timeout_secs_per_gib * ram_mb as f64 / 1024.0;
        std::time::Duration::from_secs_f64(secs.max(0.001))
    }
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CapacityScope {
    AvailabilityZone,
    Aggregate,
}

/// The drain's watch on guests during live migrations.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum GuestCheck {
    /// Ping the QEMU guest agent before, during and after each live migration.
    Agent,
    None,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnMigrationFailure {
    /// Try the migration once more; a second failure is reported.
    RetryOnce,
    /// Start no more migrations on this host; those in flight are awaited.
    AbortHost,
    /// Go on with the host's other VMs.
    Continue,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_version_is_a_prefix_by_component() {
        let rocky9 = OsVersion { id: "rocky".into(), version: "9".into() };
        assert!(rocky9.matches("rocky", "9.4"));
        assert!(rocky9.matches("rocky", "9"));
        assert!(!rocky9.matches("rocky", "90.1"));
        assert!(!rocky9.matches("almalinux", "9.4"));
    }

    #[test]
    fn remote_job_settings_are_checked() {
        let path = Path::new("credentials.yaml");
        assert!(RemoteJobSettings::default().validate(path).is_empty());
        let bad = RemoteJobSettings {
            folder: "../elsewhere; rm -rf".into(),
            kayobe_timeout_secs: 0,
            ..RemoteJobSettings::default()
        };
        let problems: Vec<String> = bad.validate(path).iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("workflow.remote_jobs.kayobe_timeout_secs must be at least 1"), "{problems:?}");
        assert!(problems[1].contains("workflow.remote_jobs.folder '../elsewhere; rm -rf'"), "{problems:?}");
    }
}
