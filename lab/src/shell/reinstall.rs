//! The PXE reinstall an operator does between pre-reinstall and
//! post-reinstall: the host comes back on the target OS with empty extra
//! disks, a fresh fstab, no mdadm.conf and no root key. By default its SSH
//! host key is kept (as at a site that restores host keys on install); with
//! [`crate::world::WorldOptions::reinstall_like_real`] it is as a real
//! reinstall: new host keys, a new `machine-id`, and nova-compute's
//! `compute_id` gone with the rest of the disk.
//!
//! A reinstall "on the wrong machine" (a DNS or PXE mix-up) leaves another
//! box answering to the name: another system UUID, serial and MACs.

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

/// Where Kolla keeps nova-compute's node identity on the host: the
/// `nova_compute` volume is the container's state path (`/var/lib/nova`).
pub const KOLLA_COMPUTE_ID_PATH: &str = "/var/lib/docker/volumes/nova_compute/_data/compute_id";

/// What nova-compute logs when it refuses to start, word for word from
/// nova/compute/manager.py, `ComputeManager._ensure_existing_node_identity`
/// (Nova 2023.1 and later): the service record exists, the local
/// `compute_id` does not.
pub const NOVA_NO_NODE_IDENTITY: &str = "nova.exception.InvalidConfiguration: No local node identity found, but this is not our first startup on this host. Refusing to start after potentially having lost that state!";

/// nova-compute's log inside the Kolla log volume.
pub const KOLLA_NOVA_COMPUTE_LOG: &str = "/var/log/kolla/nova/nova-compute.log";

impl World {
    /// Reinstalls a host that Aquilon switched to PXE install (see the module doc).
    pub fn reinstall(&self, fqdn: &str) -> Result<(), ReinstallError> {
        self.lock().reinstall(fqdn)
    }

    /// As [`World::reinstall`], with another machine answering afterwards
    /// when `wrong_machine`.
    pub fn reinstall_as(&self, fqdn: &str, wrong_machine: bool) -> Result<(), ReinstallError> {
        self.lock().reinstall_as(fqdn, wrong_machine)
    }
}

impl WorldState {
    pub fn reinstall(&mut self, fqdn: &str) -> Result<(), ReinstallError> {
        self.reinstall_as(fqdn, false)
    }

    pub fn reinstall_as(&mut self, fqdn: &str, wrong_machine: bool) -> Result<(), ReinstallError> {
        let like_real = self.reinstall_like_real;
        let seed = self.seed;
        let servers = self.servers_on(fqdn).count();
        let Some(host) = self.host_mut(fqdn) else { return Err(ReinstallError::UnknownHost(fqdn.to_owned())) };
        if !host.aquilon.pxe_install {
            return Err(ReinstallError::NotPxeSwitched(fqdn.to_owned()));
        }
        if servers > 0 {
            return Err(ReinstallError::NotEmpty { host: fqdn.to_owned(), servers });
        }
        host.os = OsRelease::rocky(TARGET_OS_VERSION);
        let round = host.shell.history.len();
        if wrong_machine {
            // Another box of the same model: its own DMI, NICs and BMC.
            let label = format!("other-machine:{fqdn}:{round}");
            let mut rng = StdRng::seed_from_u64(seed ^ fnv1a(label.as_bytes()));
            let mut mac = || {
                let bytes: [u8; 5] = rand::Rng::random(&mut rng);
                format!("b8:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", bytes[0], bytes[1], bytes[2], bytes[3], bytes[4])
            };
            let (eth0, bmc) = (mac(), mac());
            let generation = host.machine.host_key_generation;
            host.machine = crate::world::MachineIdentity::generate(seed, &label, &eth0, &bmc);
            host.machine.host_key_generation = generation + 1;
        } else if like_real {
            // ssh-keygen -A and systemd-machine-id-setup run on first boot.
            host.machine.host_key_generation += 1;
        }
        if like_real || wrong_machine {
            let mut rng = StdRng::seed_from_u64(seed ^ fnv1a(format!("machine-id:{fqdn}:{round}").as_bytes()));
            host.machine.machine_id = crate::world::hex_id(&mut rng, 32);
        }
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
        // The Kolla volumes, compute_id with them, were on the wiped system disk.
        shell.directories.clear();
        shell.files.clear();
        shell.owners.clear();
        shell.modes.clear();
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
