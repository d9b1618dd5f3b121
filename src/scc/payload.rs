//! From what libvirt says about a host to the SCC upload payload, field for
//! field as scc-hypervisor-collector builds it from virtual-host-gatherer.

use crate::clients::scc::{GuestProperties, GuestSystem, HostProperties, VirtualizationHost};
use crate::config::credentials::SccTopology;
use crate::hosts::libvirt::HostDetails;

/// What virtual-host-gatherer reports as `type` for a libvirt host: we only
/// ever talk to the QEMU/KVM driver (`qemu:///system`), whose
/// `getType().lower()` is this.
pub const HYPERVISOR_TYPE: &str = "qemu";

/// The SCC record of one host. `name` is the host's name in the list (what
/// libvirt's `getHostname()` returns on a correctly named hypervisor).
pub fn virtualization_host(
    name: &str,
    group: &str,
    details: &HostDetails,
    topology: SccTopology,
) -> VirtualizationHost {
    let caps = &details.capabilities;
    let counts = match topology {
        SccTopology::Libvirt => caps.gatherer_topology.unwrap_or(caps.topology),
        SccTopology::NumaTotals => caps.topology,
    };
    VirtualizationHost {
        identifier: caps.uuid.clone(),
        group_name: group.to_owned(),
        properties: HostProperties {
            name: name.to_owned(),
            arch: caps.arch.clone(),
            cores: counts.cores,
            sockets: counts.sockets,
            threads: counts.threads,
            ram_mb: Some(details.ram_mib),
            hypervisor_type: HYPERVISOR_TYPE.to_owned(),
        },
        systems: details
            .domains
            .iter()
            .map(|domain| GuestSystem {
                uuid: domain.uuid.to_lowercase(),
                properties: GuestProperties { vm_name: domain.name.clone(), vm_state: vm_state(&domain.state) },
            })
            .collect(),
    }
}

/// `virsh` prints the same words the gatherer maps libvirt's state numbers
/// to; anything else (`pmsuspended`) is `unknown`, as in the gatherer.
pub fn vm_state(virsh_state: &str) -> String {
    let state = virsh_state.trim().to_lowercase();
    match state.as_str() {
        "running" | "idle" | "paused" | "in shutdown" | "shut off" | "crashed" | "no state" => state,
        _ => "unknown".to_owned(),
    }
}

/// The site a host belongs to: its DNS sub-domain (`hv01.lab.example.org` is
/// in `lab`), or the whole name when it has no domain.
pub fn site_of(host: &str) -> &str {
    let mut labels = host.split('.');
    let first = labels.next().unwrap_or(host);
    labels.next().filter(|label| !label.is_empty()).unwrap_or(first)
}

/// A fingerprint of what was uploaded for a host, to tell whether its details
/// changed since (FNV-1a over the JSON: change detection, not security).
pub fn digest(host: &VirtualizationHost) -> String {
    let json = serde_json::to_vec(host).expect("hosts serialize");
    format!("{:016x}", crate::digest::fnv1a(&json))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hosts::libvirt::{parse_capabilities, DomainInfo};

    /// Two sockets in two NUMA cells, 4 cores each, hyper-threading on; the
    /// per-cell `<topology sockets='1'>` is what the gatherer reads.
    const TWO_CELLS: &str = "<capabilities><host>
      <uuid>6a1e2b3c-4d5e-4f60-8172-8394a5b6c7d8</uuid>
      <cpu><arch>x86_64</arch><model>EPYC-Milan</model><vendor>AMD</vendor>
        <topology sockets='1' dies='1' clusters='1' cores='4' threads='2'/></cpu>
      <topology><cells num='2'>
        <cell id='0'><cpus num='8'>
          <cpu id='0' socket_id='0' die_id='0' core_id='0' siblings='0,8'/>
          <cpu id='1' socket_id='0' die_id='0' core_id='1' siblings='1,9'/>
          <cpu id='2' socket_id='0' die_id='0' core_id='2' siblings='2,10'/>
          <cpu id='3' socket_id='0' die_id='0' core_id='3' siblings='3,11'/>
          <cpu id='8' socket_id='0' die_id='0' core_id='0' siblings='0,8'/>
          <cpu id='9' socket_id='0' die_id='0' core_id='1' siblings='1,9'/>
          <cpu id='10' socket_id='0' die_id='0' core_id='2' siblings='2,10'/>
          <cpu id='11' socket_id='0' die_id='0' core_id='3' siblings='3,11'/>
        </cpus></cell>
        <cell id='1'><cpus num='8'>
          <cpu id='4' socket_id='1' die_id='0' core_id='0' siblings='4,12'/>
          <cpu id='5' socket_id='1' die_id='0' core_id='1' siblings='5,13'/>
          <cpu id='6' socket_id='1' die_id='0' core_id='2' siblings='6,14'/>
          <cpu id='7' socket_id='1' die_id='0' core_id='3' siblings='7,15'/>
          <cpu id='12' socket_id='1' die_id='0' core_id='0' siblings='4,12'/>
          <cpu id='13' socket_id='1' die_id='0' core_id='1' siblings='5,13'/>
          <cpu id='14' socket_id='1' die_id='0' core_id='2' siblings='6,14'/>
          <cpu id='15' socket_id='1' die_id='0' core_id='3' siblings='7,15'/>
        </cpus></cell>
      </cells></topology></host></capabilities>";

    fn details() -> HostDetails {
        HostDetails {
            capabilities: parse_capabilities(TWO_CELLS).expect("parsed"),
            ram_mib: 257_662,
            domains: vec![
                DomainInfo {
                    uuid: "2F0C6F3E-8D4B-4A0E-9D6E-1A2B3C4D5E6F".into(),
                    name: "instance-0000a1b2".into(),
                    state: "running".into(),
                },
                DomainInfo {
                    uuid: "9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d".into(),
                    name: "instance-0000a1b3".into(),
                    state: "shut off".into(),
                },
                DomainInfo {
                    uuid: "0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6".into(),
                    name: "instance-0000a1b4".into(),
                    state: "pmsuspended".into(),
                },
            ],
        }
    }

    #[test]
    fn payload_is_the_collectors_with_host_totals_over_numa_cells() {
        let host = virtualization_host("hv01.lab.example.org", "lab", &details(), SccTopology::NumaTotals);
        let json = serde_json::to_value(&host).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "identifier": "6a1e2b3c-4d5e-4f60-8172-8394a5b6c7d8",
                "group_name": "lab",
                "properties": {
                    "name": "hv01.lab.example.org", "arch": "x86_64",
                    // The gatherer would say 1 socket, 4 cores, 8 threads here.
                    "cores": 8, "sockets": 2, "threads": 16,
                    "ram_mb": 257_662, "type": "qemu"
                },
                "systems": [
                    {"uuid": "2f0c6f3e-8d4b-4a0e-9d6e-1a2b3c4d5e6f",
                     "properties": {"vm_name": "instance-0000a1b2", "vmState": "running"}},
                    {"uuid": "9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d",
                     "properties": {"vm_name": "instance-0000a1b3", "vmState": "shut off"}},
                    {"uuid": "0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6",
                     "properties": {"vm_name": "instance-0000a1b4", "vmState": "unknown"}}
                ]
            })
        );
    }

    #[test]
    fn states_sites_and_digests() {
        assert_eq!(vm_state("Paused"), "paused");
        assert_eq!(vm_state("in shutdown"), "in shutdown");
        assert_eq!(site_of("hv01.lab.example.org"), "lab");
        assert_eq!(site_of("hv01"), "hv01");
        let host = virtualization_host("hv01", "lab", &details(), SccTopology::NumaTotals);
        let mut changed = host.clone();
        changed.systems.pop();
        assert_eq!(digest(&host), digest(&host.clone()));
        assert_ne!(digest(&host), digest(&changed));
    }
}
