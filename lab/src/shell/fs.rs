//! The files a simulated host has. Some are views of the world (os-release,
//! fstab, root's authorized_keys, /sys/firmware/efi, block devices); the
//! rest live in the host's `HostShell.files` and `directories`.

use super::{disks, Machine, Shell};
use crate::world::{Host, HostShell, TextFile};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsError {
    NotFound,
    PermissionDenied,
    IsDirectory,
    NotDirectory,
}

impl FsError {
    pub fn message(self) -> &'static str {
        match self {
            FsError::NotFound => "No such file or directory",
            FsError::PermissionDenied => "Permission denied",
            FsError::IsDirectory => "Is a directory",
            FsError::NotDirectory => "Not a directory",
        }
    }
}

const AUTHORIZED_KEYS: &str = "/root/.ssh/authorized_keys";

const DMI_ROOT_ONLY: [&str; 2] = ["/sys/class/dmi/id/product_uuid", "/sys/class/dmi/id/product_serial"];

/// The host's SSH host key, as `/etc/ssh/ssh_host_ed25519_key.pub` holds it.
pub fn host_key_line(seed: u64, host: &Host) -> String {
    let key = crate::ssh::keys::host_key_of_generation(seed, &host.fqdn, host.machine.host_key_generation);
    crate::ssh::keys::public_line(key.public_key())
}

/// Directories every host has.
const BASE_DIRECTORIES: [&str; 22] = [
    "/",
    "/boot",
    "/dev",
    "/etc",
    "/etc/ssh",
    "/home",
    "/proc",
    "/root",
    "/run",
    "/sys",
    "/sys/firmware",
    "/sys/firmware/acpi",
    "/sys/firmware/dmi",
    "/sys/firmware/memmap",
    "/tmp",
    "/usr",
    "/usr/bin",
    "/usr/sbin",
    "/var",
    "/var/lib",
    "/var/log",
    "/var/tmp",
];

/// Makes a path absolute and removes `.`, `..` and repeated slashes.
pub fn normalize(cwd: &str, path: &str) -> String {
    let joined = if path.starts_with('/') { path.to_owned() } else { format!("{cwd}/{path}") };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    format!("/{}", parts.join("/"))
}

fn parent(path: &str) -> String {
    match path.rsplit_once('/') {
        Some(("", _)) | None => "/".into(),
        Some((parent, _)) => parent.into(),
    }
}

pub fn os_release(host: &Host) -> String {
    let os = &host.os;
    let major = os.version_id.split('.').next().unwrap_or_default();
    let codename = os.pretty_name.split_once('(').map(|(_, rest)| rest.trim_end_matches(')')).unwrap_or_default();
    format!(
        "NAME=\"Rocky Linux\"\nVERSION=\"{version} ({codename})\"\nID=\"{id}\"\nID_LIKE=\"rhel centos fedora\"\n\
         VERSION_ID=\"{version}\"\nPLATFORM_ID=\"platform:el{major}\"\nPRETTY_NAME=\"{pretty}\"\nANSI_COLOR=\"0;32\"\n\
         LOGO=\"fedora-logo-icon\"\nCPE_NAME=\"cpe:/o:rocky:rocky:{major}::baseos\"\nHOME_URL=\"https://rockylinux.org/\"\n\
         BUG_REPORT_URL=\"https://bugs.rockylinux.org/\"\nSUPPORT_END=\"{end}\"\nROCKY_SUPPORT_PRODUCT=\"Rocky-Linux-{major}\"\n\
         ROCKY_SUPPORT_PRODUCT_VERSION=\"{version}\"\nREDHAT_SUPPORT_PRODUCT=\"Rocky Linux\"\n\
         REDHAT_SUPPORT_PRODUCT_VERSION=\"{version}\"\n",
        version = os.version_id,
        id = os.id,
        pretty = os.pretty_name,
        end = if major == "8" { "2029-05-31" } else { "2032-05-31" },
    )
}

impl Shell<'_> {
    pub fn cwd(&self) -> String {
        self.env.get("PWD").cloned().unwrap_or_else(|| "/".into())
    }

    pub fn absolute(&self, path: &str) -> String {
        normalize(&self.cwd(), path)
    }

    fn hypervisor(&self) -> Option<&Host> {
        match &self.machine {
            Machine::Hypervisor(fqdn) => self.world.host(fqdn),
            _ => None,
        }
    }

    fn shell_state(&self) -> Option<&HostShell> {
        self.world.machine_shell(&self.machine)
    }

    fn shell_state_mut(&mut self) -> Option<&mut HostShell> {
        let machine = self.machine.clone();
        self.world.machine_shell_mut(&machine)
    }

    /// Where a user other than root may write.
    fn user_may_write(&self, path: &str) -> bool {
        self.is_root()
            || path.starts_with("/tmp/")
            || path.starts_with("/var/tmp/")
            || path.starts_with(&format!("/home/{}/", self.user))
    }

    pub fn is_dir(&self, path: &str) -> bool {
        let path = self.absolute(path);
        if path == format!("/home/{}", self.login.user) || BASE_DIRECTORIES.contains(&path.as_str()) {
            return true;
        }
        if let Some(host) = self.hypervisor() {
            if path == "/sys/firmware/efi" || path == "/boot/efi" {
                return host.efi;
            }
        }
        self.shell_state().is_some_and(|shell| shell.directories.contains(&path))
    }

    pub fn is_block_device(&self, path: &str) -> bool {
        let path = self.absolute(path);
        let Some(name) = path.strip_prefix("/dev/") else { return false };
        self.hypervisor().is_some_and(|host| disks::find(&host.disks, name).is_some())
    }

    pub fn exists(&self, path: &str) -> bool {
        self.is_dir(path) || self.is_block_device(path) || self.read_file_unchecked(&self.absolute(path)).is_ok()
    }

    /// Reads a file as the current user.
    pub fn read_file(&self, path: &str) -> Result<String, FsError> {
        let path = self.absolute(path);
        // DMI's UUID and serial are root's only (0400), as the kernel makes them.
        if (path.starts_with("/root/") || DMI_ROOT_ONLY.contains(&path.as_str())) && !self.is_root() {
            return Err(FsError::PermissionDenied);
        }
        if self.is_dir(&path) {
            return Err(FsError::IsDirectory);
        }
        self.read_file_unchecked(&path)
    }

    fn read_file_unchecked(&self, path: &str) -> Result<String, FsError> {
        if path == "/dev/null" {
            return Ok(String::new());
        }
        if path == "/etc/hostname" {
            return Ok(format!("{}\n", self.machine.name()));
        }
        if let Some(host) = self.hypervisor() {
            let shell = &host.shell;
            match path {
                "/etc/os-release" => return Ok(os_release(host)),
                "/etc/redhat-release" | "/etc/rocky-release" | "/etc/system-release" => {
                    return Ok(format!(
                        "Rocky Linux release {}\n",
                        host.os.pretty_name.trim_start_matches("Rocky Linux ")
                    ))
                }
                "/etc/resolv.conf" => return Ok(shell.resolv_conf.clone()),
                "/sys/class/dmi/id/product_uuid" => {
                    return Ok(format!("{}\n", host.machine.system_uuid.to_lowercase()))
                }
                "/sys/class/dmi/id/product_serial" => return Ok(format!("{}\n", host.machine.serial)),
                "/sys/class/dmi/id/sys_vendor" => return Ok(format!("{}\n", host.vendor)),
                "/etc/machine-id" => return Ok(format!("{}\n", host.machine.machine_id)),
                "/etc/ssh/ssh_host_ed25519_key.pub" => {
                    return Ok(format!("{}\n", host_key_line(self.world.seed, host)))
                }
                "/etc/fstab" => return Ok(shell.fstab.text().to_owned()),
                "/etc/mdadm.conf" if !shell.mdadm_conf.is_empty() => return Ok(shell.mdadm_conf.text().to_owned()),
                AUTHORIZED_KEYS if shell.directories.contains("/root/.ssh") => {
                    return Ok(shell.root_authorized_keys.text().to_owned())
                }
                "/proc/meminfo" => {
                    let kib = host.memory_mib * 1024;
                    return Ok(format!(
                        "MemTotal:       {kib:>10} kB\nMemFree:        {:>10} kB\nMemAvailable:   {:>10} kB\n",
                        kib * 3 / 4,
                        kib * 4 / 5
                    ));
                }
                _ => {}
            }
        }
        self.shell_state().and_then(|shell| shell.files.get(path).cloned()).ok_or(FsError::NotFound)
    }

    /// Whether the current user could write `path` (its folder exists, permissions allow).
    pub fn check_writable(&self, path: &str) -> Result<(), FsError> {
        let path = self.absolute(path);
        if self.is_dir(&path) {
            return Err(FsError::IsDirectory);
        }
        if !self.is_dir(&parent(&path)) {
            return Err(if self.exists(&parent(&path)) { FsError::NotDirectory } else { FsError::NotFound });
        }
        if !self.user_may_write(&path) || path.starts_with("/proc/") || path.starts_with("/sys/") {
            return Err(FsError::PermissionDenied);
        }
        Ok(())
    }

    /// Writes (or appends to) a file as the current user.
    pub fn write_file(&mut self, path: &str, content: &str, append: bool) -> Result<(), FsError> {
        let path = self.absolute(path);
        self.check_writable(&path)?;
        if path == "/dev/null" {
            return Ok(());
        }
        let change = super::jobs::Change::Write {
            user: self.user.clone(),
            path: path.clone(),
            content: content.to_owned(),
            append,
        };
        if self.at_process_time(change).is_none() {
            // A background process writes it when it gets there.
            return Ok(());
        }
        let current = if append { self.read_file_unchecked(&path).unwrap_or_default() } else { String::new() };
        let mut text = current;
        text.push_str(content);
        let is_hypervisor = matches!(self.machine, Machine::Hypervisor(_));
        let Some(shell) = self.shell_state_mut() else { return Err(FsError::NotFound) };
        // Stored byte for byte: a missing final newline stays missing.
        match path.as_str() {
            "/etc/fstab" if is_hypervisor => shell.fstab = TextFile::new(text),
            "/etc/mdadm.conf" if is_hypervisor => shell.mdadm_conf = TextFile::new(text),
            "/etc/resolv.conf" if is_hypervisor => shell.resolv_conf = text,
            AUTHORIZED_KEYS if is_hypervisor => shell.root_authorized_keys = TextFile::new(text),
            _ => {
                shell.files.insert(path, text);
            }
        }
        Ok(())
    }

    pub fn remove_file(&mut self, path: &str) -> Result<(), FsError> {
        let path = self.absolute(path);
        if !self.user_may_write(&path) {
            return Err(FsError::PermissionDenied);
        }
        let Some(shell) = self.shell_state_mut() else { return Err(FsError::NotFound) };
        match path.as_str() {
            AUTHORIZED_KEYS => shell.root_authorized_keys.clear(),
            "/etc/mdadm.conf" => shell.mdadm_conf.clear(),
            _ => {
                shell.files.remove(&path).ok_or(FsError::NotFound)?;
            }
        }
        Ok(())
    }

    /// `mkdir` of one directory whose parent exists.
    pub fn make_dir(&mut self, path: &str) -> Result<(), FsError> {
        let path = self.absolute(path);
        if !self.is_dir(&parent(&path)) {
            return Err(FsError::NotFound);
        }
        if !self.user_may_write(&format!("{path}/")) {
            return Err(FsError::PermissionDenied);
        }
        let Some(shell) = self.shell_state_mut() else { return Err(FsError::NotFound) };
        shell.directories.insert(path);
        Ok(())
    }

    /// The entries of a directory that `ls` shows.
    pub fn list_dir(&self, path: &str) -> Result<Vec<String>, FsError> {
        let path = self.absolute(path);
        if !self.is_dir(&path) {
            return Err(if self.exists(&path) { FsError::NotDirectory } else { FsError::NotFound });
        }
        if path.starts_with("/root") && !self.is_root() {
            return Err(FsError::PermissionDenied);
        }
        let prefix = if path == "/" { "/".to_owned() } else { format!("{path}/") };
        let mut names: Vec<String> = Vec::new();
        let mut add = |candidate: &str| {
            if let Some(rest) = candidate.strip_prefix(&prefix) {
                if !rest.is_empty() && !rest.contains('/') && !names.iter().any(|n| n == rest) {
                    names.push(rest.to_owned());
                }
            }
        };
        for dir in BASE_DIRECTORIES {
            add(dir);
        }
        if let Some(host) = self.hypervisor() {
            if host.efi {
                add("/sys/firmware/efi");
                add("/boot/efi");
            }
            for name in ["/etc/os-release", "/etc/fstab", "/etc/resolv.conf", "/etc/hostname", "/etc/redhat-release"] {
                add(name);
            }
            if !host.shell.mdadm_conf.is_empty() {
                add("/etc/mdadm.conf");
            }
            if host.shell.directories.contains("/root/.ssh") {
                add(AUTHORIZED_KEYS);
            }
            for disk in disks::flatten(&host.disks) {
                add(&format!("/dev/{}", disk.name));
            }
        }
        if let Some(shell) = self.shell_state() {
            for dir in &shell.directories {
                add(dir);
            }
            for file in shell.files.keys() {
                add(file);
            }
        }
        names.sort();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalized() {
        assert_eq!(normalize("/root", ".ssh/authorized_keys"), "/root/.ssh/authorized_keys");
        assert_eq!(normalize("/", "/var//lib/../lib/nova/"), "/var/lib/nova");
        assert_eq!(parent("/etc/fstab"), "/etc");
        assert_eq!(parent("/etc"), "/");
    }
}
