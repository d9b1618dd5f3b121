//! A hypervisor, as root: what it runs, what it holds, and the guarded disk
//! fixes of the post-reinstall step; plus the setup of root access itself.

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use super::{FixOutcome, HostError, Observed, Remote};
use crate::secret::Secret;
use crate::ssh::{CommandOutput, RemoteCommand, RemoteShell, SshError, Target};

/// `/etc/os-release`, the two fields that matter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OsRelease {
    /// `rocky`, `rhel`, `almalinux`…
    pub id: String,
    /// `8.10`, `9.4`…
    pub version_id: String,
    pub pretty_name: Option<String>,
}

impl OsRelease {
    /// The major version: `9` for `9.4`.
    pub fn major_version(&self) -> &str {
        self.version_id.split('.').next().unwrap_or_default()
    }

    /// Whether this is `id` at major version `major` (`rocky`, `9`).
    pub fn is(&self, id: &str, major: &str) -> bool {
        self.id == id && self.major_version() == major
    }
}

/// One line of `virsh list --all`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirshDomain {
    /// `None` for a domain that is not running (`-`).
    pub id: Option<u32>,
    pub name: String,
    /// `running`, `shut off`, `paused`…
    pub state: String,
}

/// The states virsh prints; some have a space, so they are matched whole.
const DOMAIN_STATES: &[&str] = &[
    "running",
    "idle",
    "paused",
    "in shutdown",
    "shut off",
    "crashed",
    "pmsuspended",
    "no state",
    "blocked",
    "unknown",
];

/// A block device from `lsblk`, with its partitions and holders.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct BlockDevice {
    /// The full path (`/dev/nvme0n1`), as `lsblk -p` gives it.
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, deserialize_with = "bytes")]
    pub size: Option<u64>,
    #[serde(default)]
    pub fstype: Option<String>,
    #[serde(default)]
    pub mountpoint: Option<String>,
    #[serde(default)]
    pub children: Vec<BlockDevice>,
}

impl BlockDevice {
    /// This device or one below it with this path.
    pub fn find(&self, path: &str) -> Option<&BlockDevice> {
        if self.name == path {
            return Some(self);
        }
        self.children.iter().find_map(|child| child.find(path))
    }

    /// Why this device must not be written to, if it is in use: something on
    /// it or below it is mounted (or swap), or a RAID/LVM/crypt device sits on it.
    pub fn in_use(&self) -> Option<String> {
        if let Some(mountpoint) = self.mountpoint.as_deref().filter(|mountpoint| !mountpoint.is_empty()) {
            return Some(format!("{} is mounted at {mountpoint}", self.name));
        }
        for child in &self.children {
            if child.kind != "part" {
                return Some(format!("{} holds {} ({})", self.name, child.name, child.kind));
            }
            if let Some(reason) = child.in_use() {
                return Some(reason);
            }
        }
        None
    }
}

/// lsblk gives sizes as numbers (newer) or strings (util-linux 2.32).
fn bytes<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Number(u64),
        Text(String),
    }
    Ok(match Option::<Size>::deserialize(deserializer)? {
        Some(Size::Number(size)) => Some(size),
        Some(Size::Text(text)) => text.trim().parse().ok(),
        None => None,
    })
}

/// One line of `lspci`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PciDevice {
    pub slot: String,
    pub class: String,
    pub description: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PciDevices(pub Vec<PciDevice>);

impl PciDevices {
    pub fn matching(&self, vendor: &str) -> Vec<&PciDevice> {
        let vendor = vendor.to_lowercase();
        self.0.iter().filter(|device| device.description.to_lowercase().contains(&vendor)).collect()
    }

    pub fn nvidia(&self) -> Vec<&PciDevice> {
        self.matching("nvidia")
    }

    pub fn mellanox(&self) -> Vec<&PciDevice> {
        self.matching("mellanox")
    }
}

/// The result of `dnf -y update`: a failure is data, with the resolver
/// configuration captured for diagnosis.
#[derive(Clone, Debug)]
pub struct PackageUpdate {
    pub output: CommandOutput,
    /// `/etc/resolv.conf`, read only when the update failed.
    pub resolv_conf: Option<CommandOutput>,
}

impl PackageUpdate {
    pub fn succeeded(&self) -> bool {
        self.output.success()
    }
}

/// A filesystem mounted somewhere, from `findmnt`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Mount {
    pub source: String,
    pub target: String,
    pub fstype: String,
}

/// An md array, from `mdadm --detail`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MdArray {
    pub device: String,
    /// `raid0`, `raid1`…
    pub level: String,
    pub members: Vec<String>,
}

/// One line of `/etc/fstab`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FstabEntry {
    pub device: String,
    pub mountpoint: String,
    pub fstype: String,
    pub options: String,
}

impl FstabEntry {
    pub fn line(&self) -> String {
        format!("{} {} {} {} 0 0", self.device, self.mountpoint, self.fstype, self.options)
    }
}

/// Whether `mkfs` may overwrite a filesystem already on the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overwrite {
    /// Leave an existing filesystem alone (the default, and the safe choice).
    Never,
    /// Replace it, as a setting explicitly asks. A mounted device is still refused.
    Allowed,
}

/// How the login user becomes root during setup.
#[derive(Clone, Debug)]
pub enum Sudo {
    /// `sudo -n`: works only where no password is needed.
    NoPassword,
    /// `sudo -S`, the password fed on standard input.
    Password(Secret),
    /// The configuration forbids sudo.
    Disabled,
}

/// What the setup step found or did.
#[derive(Clone, Debug)]
pub enum RootAccess {
    AlreadyGranted,
    Granted(CommandOutput),
}

pub struct Hypervisor {
    remote: Remote,
    /// Where long commands run detached, and for how long at most.
    jobs: Option<(super::remote_job::JobContext, std::time::Duration)>,
}

impl Hypervisor {
    /// The hypervisor `host`, driven as root.
    pub fn new(shell: Arc<dyn RemoteShell>, host: &str) -> Self {
        Hypervisor { remote: Remote::new(shell, Target::root(host)), jobs: None }
    }

    /// Long commands (the package update) run as detached jobs that outlive
    /// a dropped connection, each bounded by `timeout`.
    pub fn with_jobs(mut self, context: super::remote_job::JobContext, timeout: std::time::Duration) -> Self {
        self.jobs = Some((context, timeout));
        self
    }

    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    /// Ends the connection, when the work on this host is done.
    pub async fn close(&self) {
        self.remote.close().await;
    }

    pub async fn os_release(&self) -> Result<Observed<OsRelease>, HostError> {
        let action = "os-release";
        let output = self.remote.run_ok(&RemoteCommand::new(action, "cat").arg("/etc/os-release")).await?;
        let value =
            parse_os_release(&output.stdout).ok_or_else(|| self.remote.unexpected(action, "no ID or VERSION_ID"))?;
        Ok(Observed { value, output })
    }

    pub async fn virsh_list(&self) -> Result<Observed<Vec<VirshDomain>>, HostError> {
        let action = "virsh-list";
        let output = self.remote.run_ok(&RemoteCommand::new(action, "virsh").args(["list", "--all"])).await?;
        let value = parse_virsh_list(&output.stdout).map_err(|reason| self.remote.unexpected(action, reason))?;
        Ok(Observed { value, output })
    }

    pub async fn block_devices(&self) -> Result<Observed<Vec<BlockDevice>>, HostError> {
        self.lsblk(None).await
    }

    /// One device and what is below it.
    pub async fn block_device(&self, device: &str) -> Result<Option<BlockDevice>, HostError> {
        if !self.device_exists(device).await? {
            return Ok(None);
        }
        let devices = self.lsblk(Some(device)).await?.value;
        Ok(devices.into_iter().find_map(|top| top.find(device).cloned()))
    }

    async fn lsblk(&self, device: Option<&str>) -> Result<Observed<Vec<BlockDevice>>, HostError> {
        let action = "lsblk";
        let command = RemoteCommand::new(action, "lsblk")
            .args(["-J", "-b", "-p", "-o", "NAME,TYPE,SIZE,FSTYPE,MOUNTPOINT"])
            .args(device);
        let output = self.remote.run_ok(&command).await?;
        let value = parse_lsblk(&output.stdout).map_err(|reason| self.remote.unexpected(action, reason))?;
        Ok(Observed { value, output })
    }

    /// Every PCI device; filter with [`PciDevices::nvidia`] or [`PciDevices::mellanox`].
    pub async fn pci_devices(&self) -> Result<Observed<PciDevices>, HostError> {
        let output = self.remote.run_ok(&RemoteCommand::new("lspci", "lspci")).await?;
        let value = parse_lspci(&output.stdout);
        Ok(Observed { value, output })
    }

    /// Whether the host booted with UEFI firmware.
    pub async fn is_efi(&self) -> Result<bool, HostError> {
        self.test("efi-check", "-d", "/sys/firmware/efi").await
    }

    /// `dnf -y update <packages>` (a detached job when [`Self::with_jobs`]
    /// says so); on failure also reads `/etc/resolv.conf`.
    pub async fn update_packages(&self, packages: &[&str]) -> Result<PackageUpdate, HostError> {
        let command = RemoteCommand::new("dnf-update", "dnf").args(["-y", "update"]).args(packages.iter().copied());
        let output = match &self.jobs {
            Some((context, timeout)) => {
                let jobs = super::remote_job::RemoteJobs::new(
                    self.remote.shell().clone(),
                    self.remote.target().clone(),
                    context.clone(),
                );
                let spec = super::remote_job::JobSpec {
                    action: command.action.clone(),
                    environment: None,
                    command: std::iter::once(command.program.clone()).chain(command.args.iter().cloned()).collect(),
                    timeout: *timeout,
                };
                jobs.run(&spec).await?.output
            }
            None => self.remote.run(&command).await?,
        };
        let resolv_conf = if output.success() {
            None
        } else {
            Some(self.remote.run(&RemoteCommand::new("resolv-conf", "cat").arg("/etc/resolv.conf")).await?)
        };
        Ok(PackageUpdate { output, resolv_conf })
    }

    // Guards: typed questions asked before any disk change.

    pub async fn device_exists(&self, device: &str) -> Result<bool, HostError> {
        self.test("device-exists", "-b", device).await
    }

    /// The filesystem type on a device (`xfs`, `linux_raid_member`…), if any.
    pub async fn filesystem_type(&self, device: &str) -> Result<Option<String>, HostError> {
        let action = "blkid";
        let output = self.remote.run(&RemoteCommand::new(action, "blkid").args(["-p", "-o", "export", device])).await?;
        match output.exit_status {
            0 => Ok(key_equals_value(&output.stdout, "TYPE")),
            // Nothing recognised on it.
            2 => Ok(None),
            _ => Err(self.remote.failed(action, &output)),
        }
    }

    /// What is mounted at `mountpoint`, if anything.
    pub async fn mounted_at(&self, mountpoint: &str) -> Result<Option<Mount>, HostError> {
        let action = "findmnt";
        let command = RemoteCommand::new(action, "findmnt").args([
            "-J",
            "-o",
            "SOURCE,TARGET,FSTYPE",
            "--mountpoint",
            mountpoint,
        ]);
        let output = self.remote.run(&command).await?;
        match output.exit_status {
            0 => parse_findmnt(&output.stdout).map(Some).map_err(|reason| self.remote.unexpected(action, reason)),
            1 => Ok(None),
            _ => Err(self.remote.failed(action, &output)),
        }
    }

    /// The md array `device`, if it exists.
    pub async fn md_array(&self, device: &str) -> Result<Option<MdArray>, HostError> {
        let action = "mdadm-detail";
        if !self.device_exists(device).await? {
            return Ok(None);
        }
        let output = self.remote.run(&RemoteCommand::new(action, "mdadm").args(["--detail", device])).await?;
        match output.exit_status {
            0 => parse_mdadm_detail(device, &output.stdout)
                .map(Some)
                .map_err(|reason| self.remote.unexpected(action, reason)),
            // The node exists but no array is assembled on it.
            1 => Ok(None),
            _ => Err(self.remote.failed(action, &output)),
        }
    }

    /// Whether `/etc/fstab` already mounts something at the entry's mount point.
    pub async fn fstab_entry_for(&self, mountpoint: &str) -> Result<Option<FstabEntry>, HostError> {
        let output = self.remote.run_ok(&RemoteCommand::new("read-fstab", "cat").arg("/etc/fstab")).await?;
        Ok(parse_fstab(&output.stdout).into_iter().find(|entry| entry.mountpoint == mountpoint))
    }

    // Fixes: each checks first and never touches a device in use.

    /// `mkfs.xfs` on a device that is not in use and, unless allowed, holds no filesystem.
    pub async fn make_xfs(&self, device: &str, overwrite: Overwrite) -> Result<FixOutcome, HostError> {
        let action = "mkfs-xfs";
        self.ensure_not_in_use(action, device).await?;
        let mut command = RemoteCommand::new(action, "mkfs.xfs");
        match (self.filesystem_type(device).await?, overwrite) {
            (Some(fstype), _) if fstype == "xfs" && overwrite == Overwrite::Never => {
                return Ok(FixOutcome::AlreadyDone { reason: format!("{device} already holds an xfs filesystem") })
            }
            (Some(fstype), Overwrite::Never) => {
                return Err(self.remote.refused(
                    action,
                    format!("{device} holds a {fstype} filesystem and the settings do not allow overwriting it"),
                ))
            }
            (Some(_), Overwrite::Allowed) => command = command.arg("-f"),
            (None, _) => {}
        }
        Ok(FixOutcome::Changed(self.remote.run_ok(&command.arg(device)).await?))
    }

    /// Appends the entry to `/etc/fstab` unless that mount point has one.
    pub async fn ensure_fstab_entry(&self, entry: &FstabEntry) -> Result<FixOutcome, HostError> {
        let action = "fstab-append";
        match self.fstab_entry_for(&entry.mountpoint).await? {
            Some(existing) if existing.device == entry.device => {
                Ok(FixOutcome::AlreadyDone { reason: format!("/etc/fstab already mounts {}", entry.mountpoint) })
            }
            Some(existing) => Err(self
                .remote
                .refused(action, format!("/etc/fstab already mounts {} from {}", entry.mountpoint, existing.device))),
            None => {
                let command = RemoteCommand::script(action, &append_line_to("/etc/fstab"), &[&entry.line()]);
                Ok(FixOutcome::Changed(self.remote.run_ok(&command).await?))
            }
        }
    }

    pub async fn make_dir(&self, path: &str) -> Result<FixOutcome, HostError> {
        if self.test("dir-exists", "-d", path).await? {
            return Ok(FixOutcome::AlreadyDone { reason: format!("{path} exists") });
        }
        Ok(FixOutcome::Changed(self.remote.run_ok(&RemoteCommand::new("mkdir", "mkdir").args(["-p", path])).await?))
    }

    /// Mounts `mountpoint` from its fstab entry, unless something is mounted there.
    pub async fn mount(&self, mountpoint: &str) -> Result<FixOutcome, HostError> {
        if let Some(mount) = self.mounted_at(mountpoint).await? {
            return Ok(FixOutcome::AlreadyDone { reason: format!("{} is mounted at {mountpoint}", mount.source) });
        }
        Ok(FixOutcome::Changed(self.remote.run_ok(&RemoteCommand::new("mount", "mount").arg(mountpoint)).await?))
    }

    /// One partition spanning the disk, of GPT type `type_code` (`fd00`: Linux RAID).
    pub async fn create_partition(&self, disk: &str, type_code: &str) -> Result<FixOutcome, HostError> {
        let action = "sgdisk";
        let Some(device) = self.block_device(disk).await? else {
            return Err(self.remote.refused(action, format!("{disk} does not exist")));
        };
        if let Some(partition) = device.children.iter().find(|child| child.kind == "part") {
            return Ok(FixOutcome::AlreadyDone { reason: format!("{disk} already has partition {}", partition.name) });
        }
        if let Some(reason) = device.in_use() {
            return Err(self.remote.refused(action, reason));
        }
        if let Some(fstype) = self.filesystem_type(disk).await? {
            return Err(self.remote.refused(action, format!("{disk} holds a {fstype} signature")));
        }
        let command =
            RemoteCommand::new(action, "sgdisk").args(["-n", "1:0:0", "-t"]).arg(format!("1:{type_code}")).arg(disk);
        Ok(FixOutcome::Changed(self.remote.run_ok(&command).await?))
    }

    /// `mdadm --create` of `device` at `level` over `members`, unless it exists.
    pub async fn create_md_array(&self, device: &str, level: &str, members: &[&str]) -> Result<FixOutcome, HostError> {
        let action = "mdadm-create";
        if let Some(array) = self.md_array(device).await? {
            return Ok(FixOutcome::AlreadyDone { reason: format!("{device} exists ({})", array.level) });
        }
        for member in members {
            self.ensure_not_in_use(action, member).await?;
            if let Some(fstype) = self.filesystem_type(member).await? {
                return Err(self.remote.refused(action, format!("{member} holds a {fstype} signature")));
            }
        }
        let command = RemoteCommand::new(action, "mdadm")
            .args(["--create", device, "--run", "--verbose"])
            .arg(format!("--level={level}"))
            .arg(format!("--raid-devices={}", members.len()))
            .args(members.iter().copied());
        Ok(FixOutcome::Changed(self.remote.run_ok(&command).await?))
    }

    /// Appends `mdadm --detail --scan` for `device` to `/etc/mdadm.conf` once.
    pub async fn record_md_array(&self, device: &str) -> Result<FixOutcome, HostError> {
        let action = "mdadm-conf";
        let scan =
            self.remote.run_ok(&RemoteCommand::new(action, "mdadm").args(["--detail", "--scan", device])).await?;
        let line = scan.stdout.lines().find(|line| line.starts_with("ARRAY")).map(str::trim).map(ToOwned::to_owned);
        let Some(line) = line else { return Err(self.remote.unexpected(action, "no ARRAY line")) };
        let script = format!(
            r#"touch /etc/mdadm.conf && {{ grep -qxF "$1" /etc/mdadm.conf && echo present || {{ {}; }}; }}"#,
            append_line_to("/etc/mdadm.conf")
        );
        let output = self.remote.run_ok(&RemoteCommand::script(action, &script, &[&line])).await?;
        if output.stdout.trim() == "present" {
            Ok(FixOutcome::AlreadyDone { reason: format!("/etc/mdadm.conf already lists {device}") })
        } else {
            Ok(FixOutcome::Changed(output))
        }
    }

    pub async fn daemon_reload(&self) -> Result<CommandOutput, HostError> {
        self.remote.run_ok(&RemoteCommand::new("daemon-reload", "systemctl").arg("daemon-reload")).await
    }

    async fn ensure_not_in_use(&self, action: &str, device: &str) -> Result<(), HostError> {
        let Some(found) = self.block_device(device).await? else {
            return Err(self.remote.refused(action, format!("{device} does not exist")));
        };
        match found.in_use() {
            Some(reason) => Err(self.remote.refused(action, reason)),
            None => Ok(()),
        }
    }

    /// `test <flag> <path>`: 0 is yes, 1 is no, anything else an error.
    async fn test(&self, action: &str, flag: &str, path: &str) -> Result<bool, HostError> {
        let output = self.remote.run(&RemoteCommand::new(action, "test").args([flag, path])).await?;
        match output.exit_status {
            0 => Ok(true),
            1 => Ok(false),
            _ => Err(self.remote.failed(action, &output)),
        }
    }
}

/// Gives the operator's key root access on `host` (the setup step): probes
/// `root@host`; if the key is refused, logs in as `login_user` and appends
/// `public_key` to root's `authorized_keys` through non-interactive sudo.
pub async fn ensure_root_access(
    shell: Arc<dyn RemoteShell>,
    host: &str,
    login_user: &str,
    public_key: &str,
    sudo: &Sudo,
) -> Result<RootAccess, HostError> {
    let action = "root-access";
    let root = Target::root(host);
    match shell.run(&root, &RemoteCommand::new("root-probe", "true")).await {
        Ok(output) if output.success() => return Ok(RootAccess::AlreadyGranted),
        Ok(_) | Err(SshError::AuthenticationRefused { .. }) => {}
        Err(other) => return Err(other.into()),
    }
    let login = Remote::new(shell.clone(), Target::new(login_user, host));
    let public_key = public_key.trim();
    if public_key.is_empty() || public_key.contains('\n') {
        return Err(login.refused(action, "the public key must be a single line"));
    }
    // The key is a positional argument, never spliced into the script.
    let keys = "/root/.ssh/authorized_keys";
    let script = format!(
        "umask 077 && mkdir -p /root/.ssh && chmod 700 /root/.ssh && touch {keys} && chmod 600 {keys} \
         && {{ grep -qxF \"$1\" {keys} || {{ {}; }}; }}",
        append_line_to(keys)
    );
    let command = match sudo {
        Sudo::Disabled => {
            return Err(login.refused(action, "root login is refused and sudo is disabled in the settings"))
        }
        Sudo::NoPassword => RemoteCommand::new(action, "sudo").arg("-n"),
        Sudo::Password(password) => RemoteCommand::new(action, "sudo")
            .args(["-S", "-p", ""])
            .stdin(Secret::new(format!("{}\n", password.expose()))),
    };
    let command = command.args(["sh", "-c", &script, "sh", public_key]);
    let output = login.run_ok(&command).await?;
    let probe = shell.run(&root, &RemoteCommand::new("root-probe", "true")).await;
    login.close().await;
    match probe {
        Ok(check) if check.success() => Ok(RootAccess::Granted(output)),
        Ok(check) => Err(login.failed("root-probe", &check)),
        Err(err) => Err(err.into()),
    }
}

/// Shell that appends `$1` as a line of `file`: a last line without its
/// newline is ended first, or the new line would be glued to it (a broken
/// fstab entry, a key that never matches, and a re-run that appends again).
fn append_line_to(file: &str) -> String {
    format!(
        r#"if [ -s {file} ] && [ -n "$(tail -c 1 {file})" ]; then printf '\n' >> {file}; fi; printf '%s\n' "$1" >> {file}"#
    )
}

/// The public half of `key_path` (`<key_path>.pub`), one line.
pub fn read_public_key(key_path: &Path) -> std::io::Result<String> {
    let mut path = key_path.as_os_str().to_owned();
    path.push(".pub");
    Ok(std::fs::read_to_string(path)?.trim().to_owned())
}

pub fn parse_os_release(text: &str) -> Option<OsRelease> {
    let mut id = None;
    let mut version_id = None;
    let mut pretty_name = None;
    for line in text.lines().map(str::trim).filter(|line| !line.starts_with('#')) {
        let Some((key, value)) = line.split_once('=') else { continue };
        let value = unquote(value.trim());
        match key.trim() {
            "ID" => id = Some(value),
            "VERSION_ID" => version_id = Some(value),
            "PRETTY_NAME" => pretty_name = Some(value),
            _ => {}
        }
    }
    Some(OsRelease { id: id?, version_id: version_id?, pretty_name })
}

/// A shell-style value: `"…"` with backslash escapes, `'…'`, or bare.
fn unquote(value: &str) -> String {
    if let Some(inner) = value.strip_prefix('"').and_then(|rest| rest.strip_suffix('"')) {
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                out.extend(chars.next());
            } else {
                out.push(c);
            }
        }
        return out;
    }
    if let Some(inner) = value.strip_prefix('\'').and_then(|rest| rest.strip_suffix('\'')) {
        return inner.to_owned();
    }
    value.to_owned()
}

/// The rows of `virsh list --all`: id first, a known state last, the name
/// (which may hold spaces) between.
pub fn parse_virsh_list(text: &str) -> Result<Vec<VirshDomain>, String> {
    let mut domains = Vec::new();
    let mut seen_header = false;
    for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
        if !seen_header {
            if line.split_whitespace().collect::<Vec<_>>() == ["Id", "Name", "State"] {
                seen_header = true;
            }
            continue;
        }
        if line.chars().all(|c| c == '-') {
            continue;
        }
        let (id, rest) = line.split_once(char::is_whitespace).ok_or_else(|| format!("no name in row '{line}'"))?;
        let id = match id {
            "-" => None,
            number => Some(number.parse().map_err(|_| format!("bad domain id in row '{line}'"))?),
        };
        let rest = rest.trim();
        let state = DOMAIN_STATES
            .iter()
            .filter(|state| rest.ends_with(*state) && rest[..rest.len() - state.len()].ends_with(char::is_whitespace))
            .max_by_key(|state| state.len())
            .ok_or_else(|| format!("unknown state in row '{line}'"))?;
        let name = rest[..rest.len() - state.len()].trim().to_owned();
        domains.push(VirshDomain { id, name, state: (*state).to_owned() });
    }
    if !seen_header {
        return Err("no 'Id Name State' header".into());
    }
    Ok(domains)
}

pub fn parse_lsblk(text: &str) -> Result<Vec<BlockDevice>, String> {
    #[derive(Deserialize)]
    struct Lsblk {
        blockdevices: Vec<BlockDevice>,
    }
    serde_json::from_str::<Lsblk>(text).map(|lsblk| lsblk.blockdevices).map_err(|err| format!("lsblk JSON: {err}"))
}

pub fn parse_lspci(text: &str) -> PciDevices {
    let devices = text
        .lines()
        .filter_map(|line| {
            let (slot, rest) = line.trim().split_once(char::is_whitespace)?;
            let (class, description) = rest.split_once(": ").unwrap_or(("", rest));
            Some(PciDevice {
                slot: slot.to_owned(),
                class: class.trim().to_owned(),
                description: description.trim().to_owned(),
            })
        })
        .collect();
    PciDevices(devices)
}

fn parse_findmnt(text: &str) -> Result<Mount, String> {
    #[derive(Deserialize)]
    struct Findmnt {
        filesystems: Vec<Mount>,
    }
    let parsed: Findmnt = serde_json::from_str(text).map_err(|err| format!("findmnt JSON: {err}"))?;
    parsed.filesystems.into_iter().next().ok_or_else(|| "findmnt listed nothing".to_owned())
}

pub fn parse_mdadm_detail(device: &str, text: &str) -> Result<MdArray, String> {
    let level = text
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(key, _)| key.trim() == "Raid Level")
        .map(|(_, value)| value.trim().to_owned())
        .ok_or("no Raid Level")?;
    // Member rows follow the `Number Major Minor RaidDevice State` header and end with the device.
    let members = text
        .lines()
        .skip_while(|line| !line.trim_start().starts_with("Number"))
        .skip(1)
        .filter_map(|line| line.split_whitespace().last())
        .filter(|word| word.starts_with("/dev/"))
        .map(ToOwned::to_owned)
        .collect();
    Ok(MdArray { device: device.to_owned(), level, members })
}

pub fn parse_fstab(text: &str) -> Vec<FstabEntry> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                [device, mountpoint, fstype, options, ..] => Some(FstabEntry {
                    device: (*device).to_owned(),
                    mountpoint: (*mountpoint).to_owned(),
                    fstype: (*fstype).to_owned(),
                    options: (*options).to_owned(),
                }),
                _ => None,
            }
        })
        .collect()
}

/// `KEY=value` lines (blkid's export format): the value of `key`.
fn key_equals_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().to_owned())
}

#[cfg(test)]
mod tests;
