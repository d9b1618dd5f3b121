//! The PXE reinstall an operator does between pre-reinstall and
//! post-reinstall: the host comes back on the target OS with empty extra
//! disks, a fresh fstab, no mdadm.conf and no root key. Its SSH host key is
//! kept (the site restores host keys on install), so `known_hosts` stays valid.

use std::fmt;

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::ssh::keys::fnv1a;

use crate::world::{OsRelease, World, WorldState};

/// The OS a reinstall puts on a host.
pub const TARGET_OS_VERSION: &str = "9.4";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReinstallError {
    UnknownHost(String),
    NotPxeSwitched(String),
    NotEmpty { host: String, servers: usize },
}

impl fmt::Display for ReinstallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReinstallError::UnknownHost(host) => write!(f, "{host}: no such host in the simulated site"),
            ReinstallError::NotPxeSwitched(host) => write!(
                f,
                "{host}: Aquilon has not set it to install over PXE (`aq pxeswitch --hostname {host} --install` comes first)"
            ),
            ReinstallError::NotEmpty { host, servers } => {
                write!(f, "{host}: {servers} Nova server(s) still on the host; drain it before reinstalling")
            }
        }
    }
}

impl std::error::Error for ReinstallError {}

impl World {
    /// Reinstalls a host that Aquilon switched to PXE install (see the module doc).
    pub fn reinstall(&self, fqdn: &str) -> Result<(), ReinstallError> {
        self.lock().reinstall(fqdn)
    }
}

impl WorldState {
    pub fn reinstall(&mut self, fqdn: &str) -> Result<(), ReinstallError> {
        let servers = self.servers_on(fqdn).count();
        let Some(host) = self.host_mut(fqdn) else { return Err(ReinstallError::UnknownHost(fqdn.to_owned())) };
        if !host.aquilon.pxe_install {
            return Err(ReinstallError::NotPxeSwitched(fqdn.to_owned()));
        }
        if servers > 0 {
            return Err(ReinstallError::NotEmpty { host: fqdn.to_owned(), servers });
        }
        host.os = OsRelease::rocky(TARGET_OS_VERSION);
        // The installer re-creates the system disk; every other disk comes back blank.
        let mut rng = StdRng::seed_from_u64(fnv1a(format!("{fqdn}:{}", host.shell.history.len()).as_bytes()));
        for disk in host.disks.iter_mut() {
            if disk.children.iter().any(|part| part.mountpoint.as_deref() == Some("/")) {
                for part in &mut disk.children {
                    part.fs_uuid = Some(crate::world::uuid(&mut rng));
                }
                continue;
            }
            disk.fstype = None;
            disk.fs_uuid = None;
            disk.mountpoint = None;
            disk.children.clear();
        }
        let shell = &mut host.shell;
        shell.fstab.clear();
        shell.mdadm_conf.clear();
        shell.root_authorized_keys.clear();
        shell.directories.clear();
        shell.files.clear();
        shell.packages = [("qemu-kvm".to_owned(), "8.2.0-11.el9_4".to_owned())].into();
        shell.history.push("# reinstalled over PXE".into());
        host.aquilon.pxe_install = false;
        // Kolla's containers are gone until Kayobe deploys them again.
        host.compute.state = "down".into();
        fill_base_fstab(host);
        Ok(())
    }
}

/// What an installer writes in /etc/fstab: the system disk's filesystems.
pub fn fill_base_fstab(host: &mut crate::world::Host) {
    if !host.shell.fstab.is_empty() {
        return;
    }
    let mut lines = vec!["#".to_owned(), "# /etc/fstab".to_owned(), "# Created by anaconda".to_owned(), "#".to_owned()];
    for disk in &host.disks {
        for part in &disk.children {
            if let (Some(fstype), Some(mountpoint), Some(fs_uuid)) = (&part.fstype, &part.mountpoint, &part.fs_uuid) {
                let (options, pass) =
                    if fstype == "vfat" { ("umask=0077,shortname=winnt", 2) } else { ("defaults", 0) };
                lines.push(format!("UUID={fs_uuid} {mountpoint:<23} {fstype:<7} {options:<15} 0 {pass}"));
            }
        }
    }
    host.shell.fstab = crate::world::TextFile::from_lines(lines);
}
