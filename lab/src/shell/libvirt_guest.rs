//! `virsh` on one domain: `dumpxml` (with the metadata Nova writes),
//! `domstats`, `qemu-agent-command` (the guest agent, see `crate::guests`)
//! and the power commands `start`, `shutdown`, `reboot`, `destroy`,
//! `autostart`. Output and error texts as libvirt 8–10 print them.

use super::hypervisor::Domain;
use super::Io;
use crate::guests::{GuestAgent, GuestProfile, HostDevice};
use crate::world::WorldState;

/// Nova's namespace for its domain metadata (nova/virt/libvirt/config.py `NOVA_NS`).
const NOVA_NS: &str = "http://openstack.org/xmlns/libvirt/nova/1.1";

pub fn run(world: &mut WorldState, command: &str, options: &[String], domains: &[Domain], io: &mut Io) -> i32 {
    // Positional words, the values of `--timeout` left out.
    let mut positional = Vec::new();
    let mut index = 0;
    while index < options.len() {
        match options[index].as_str() {
            "--timeout" => index += 1,
            word if word.starts_with("--") => {}
            word => positional.push(word.to_owned()),
        }
        index += 1;
    }
    let has = |flag: &str| options.iter().any(|o| o == flag);
    if command == "domstats" && positional.is_empty() {
        for domain in domains {
            io.out(&domstats(world, domain));
        }
        return 0;
    }
    let Some(key) = positional.first() else {
        io.err("error: command requires a domain argument\n");
        return 1;
    };
    let Some(domain) =
        domains.iter().find(|d| &d.name == key || &d.uuid == key || d.id.is_some_and(|id| id.to_string() == *key))
    else {
        io.err(&format!("error: failed to get domain '{key}'\n"));
        return 1;
    };
    let name = domain.name.clone();
    let running = domain.state != "shut off";
    let refuse = |io: &mut Io, verb: &str, why: &str| {
        io.err(&format!("error: Failed to {verb} domain '{name}'\nerror: Requested operation is not valid: {why}\n"));
        1
    };
    match command {
        "dumpxml" => {
            io.out(&domain_xml(world, domain));
            0
        }
        "domstats" => {
            io.out(&domstats(world, domain));
            0
        }
        "qemu-agent-command" => {
            let Some(request) = positional.get(1) else {
                io.err("error: command 'qemu-agent-command' requires <cmd> option\n");
                return 1;
            };
            if !running {
                io.err("error: Requested operation is not valid: domain is not running\n");
                return 1;
            }
            let guest_name = guest_name(world, domain);
            match world.agent_command(&name, &guest_name, request) {
                Ok(reply) => {
                    io.out(&format!("{reply}\n\n"));
                    0
                }
                Err(message) => {
                    io.err(&format!("error: {message}\n"));
                    1
                }
            }
        }
        "start" if running => refuse(io, "start", "domain is already active"),
        "shutdown" | "reboot" | "destroy" if !running => refuse(io, command, "domain is not running"),
        "start" | "shutdown" | "destroy" => {
            set_running(world, domain, command == "start");
            world.guests.libvirt_changes.push(format!("{command} {name}"));
            io.out(&match command {
                "start" => format!("Domain '{name}' started\n\n"),
                "shutdown" => format!("Domain '{name}' is being shutdown\n\n"),
                _ => format!("Domain '{name}' destroyed\n\n"),
            });
            0
        }
        "reboot" => {
            world.guests.libvirt_changes.push(format!("reboot {name}"));
            io.out(&format!("Domain '{name}' is being rebooted\n\n"));
            0
        }
        "autostart" => {
            let enable = !has("--disable");
            match domain.server_id {
                Some(_) => world.guests.profile_mut(&name).autostart = enable,
                None => {
                    if let Some(orphan) = world.guests.orphans.iter_mut().find(|o| o.name == name) {
                        orphan.autostart = enable;
                    }
                }
            }
            world.guests.libvirt_changes.push(format!("autostart{} {name}", if enable { "" } else { " --disable" }));
            io.out(&format!("Domain '{name}' {} as autostarted\n\n", if enable { "marked" } else { "unmarked" }));
            0
        }
        other => {
            io.err(&format!("error: unknown command: '{other}'\n"));
            1
        }
    }
}

/// What `hostname` says in the guest: the Nova server's name, else the domain's.
fn guest_name(world: &WorldState, domain: &Domain) -> String {
    domain
        .server_id
        .as_ref()
        .and_then(|id| world.servers.get(id))
        .map_or_else(|| domain.name.clone(), |server| server.name.clone())
}

/// The hypervisor changes the domain's state; for a Nova domain the server's
/// power state follows, as Nova's power-state sync would record it.
fn set_running(world: &mut WorldState, domain: &Domain, running: bool) {
    match &domain.server_id {
        Some(id) => {
            if let Some(server) = world.servers.get_mut(id) {
                server.status = if running { "ACTIVE".into() } else { "SHUTOFF".into() };
            }
        }
        None => {
            if let Some(orphan) = world.guests.orphans.iter_mut().find(|o| o.name == domain.name) {
                orphan.running = running;
            }
        }
    }
}

/// A stable number from a text, for figures that differ per domain.
fn spread(text: &str, modulo: u64) -> u64 {
    text.bytes().fold(1469598103934665603u64, |h, b| (h ^ u64::from(b)).wrapping_mul(1099511628211)) % modulo.max(1)
}

fn mac_of(uuid: &str) -> String {
    let n = spread(uuid, 1 << 24);
    format!("fa:16:3e:{:02x}:{:02x}:{:02x}", n >> 16, (n >> 8) & 0xff, n & 0xff)
}

fn tap_of(uuid: &str) -> String {
    format!("tap{}", &uuid.replace('-', "")[..11.min(uuid.len())])
}

/// Whether the domain's disk is local (qcow2 on the host) rather than Ceph RBD.
fn local_disk(domain: &Domain) -> bool {
    domain.server_id.is_none() || spread(&domain.uuid, 2) == 1
}

/// `virsh dumpxml`: the domain as Nova defines it (its metadata, an RBD or
/// local qcow2 disk, an OVS port, the agent channel when the image has one)
/// with its host devices.
pub fn domain_xml(world: &WorldState, domain: &Domain) -> String {
    let profile: GuestProfile = world.guests.profile(&domain.name);
    let server = domain.server_id.as_ref().and_then(|id| world.servers.get(id));
    let kib = domain.ram_mb * 1024;
    let mut xml = match domain.id {
        Some(id) => format!("<domain type='kvm' id='{id}'>\n"),
        None => "<domain type='kvm'>\n".to_owned(),
    };
    xml.push_str(&format!("  <name>{}</name>\n  <uuid>{}</uuid>\n", domain.name, domain.uuid));
    if let Some(server) = server {
        let project = world.projects.iter().find(|p| p.id == server.project_id).map_or("unknown", |p| p.name.as_str());
        xml.push_str("  <metadata>\n");
        xml.push_str(&format!("    <nova:instance xmlns:nova=\"{NOVA_NS}\">\n"));
        xml.push_str("      <nova:package version=\"27.5.1\"/>\n");
        xml.push_str(&format!("      <nova:name>{}</nova:name>\n", server.name));
        xml.push_str(&format!(
            "      <nova:creationTime>{}</nova:creationTime>\n",
            server.created.replace('T', " ").trim_end_matches('Z')
        ));
        xml.push_str(&format!(
            "      <nova:flavor name=\"{}\">\n        <nova:memory>{}</nova:memory>\n        <nova:disk>{}</nova:disk>\n        <nova:swap>0</nova:swap>\n        <nova:ephemeral>0</nova:ephemeral>\n        <nova:vcpus>{}</nova:vcpus>\n      </nova:flavor>\n",
            server.flavor_name, server.ram_mb, server.disk_gb, server.vcpus
        ));
        xml.push_str(&format!(
            "      <nova:owner>\n        <nova:user uuid=\"{}\">admin</nova:user>\n        <nova:project uuid=\"{}\">{project}</nova:project>\n      </nova:owner>\n",
            server.user_id, server.project_id
        ));
        xml.push_str("      <nova:root type=\"image\" uuid=\"5d9b1c0e-8f3a-4c1e-9a57-2b6f0d3e4a11\"/>\n");
        xml.push_str(&format!(
            "      <nova:ports>\n        <nova:port uuid=\"{}\">\n          <nova:ip type=\"fixed\" address=\"10.20.{}.{}\" ipVersion=\"4\"/>\n        </nova:port>\n      </nova:ports>\n",
            domain.uuid.chars().rev().collect::<String>(),
            spread(&domain.uuid, 250),
            spread(&domain.name, 250) + 2
        ));
        xml.push_str("    </nova:instance>\n  </metadata>\n");
    }
    xml.push_str(&format!("  <memory unit='KiB'>{kib}</memory>\n  <currentMemory unit='KiB'>{kib}</currentMemory>\n"));
    xml.push_str(&format!("  <vcpu placement='static'>{}</vcpu>\n", domain.vcpus));
    // Guests with a passed-through GPU get a pinned, NUMA-bound flavor (hw:cpu_policy=dedicated).
    let pinned = profile.host_devices.iter().any(|d| matches!(d, HostDevice::GpuPassthrough { .. }));
    if pinned {
        xml.push_str("  <cputune>\n");
        for vcpu in 0..domain.vcpus {
            xml.push_str(&format!("    <vcpupin vcpu='{vcpu}' cpuset='{}'/>\n", 16 + vcpu));
        }
        xml.push_str(&format!("    <emulatorpin cpuset='16-{}'/>\n  </cputune>\n", 16 + domain.vcpus.max(1) - 1));
        xml.push_str("  <numatune>\n    <memory mode='strict' nodeset='1'/>\n    <memnode cellid='0' mode='strict' nodeset='1'/>\n  </numatune>\n");
    } else {
        xml.push_str(&format!("  <cputune>\n    <shares>{}</shares>\n  </cputune>\n", domain.vcpus * 1024));
    }
    xml.push_str(
        "  <os>\n    <type arch='x86_64' machine='pc-q35-rhel9.4.0'>hvm</type>\n    <boot dev='hd'/>\n  </os>\n",
    );
    xml.push_str(&format!(
        "  <cpu mode='host-model' check='partial'>\n    <topology sockets='{}' dies='1' clusters='1' cores='1' threads='1'/>\n",
        domain.vcpus
    ));
    if pinned {
        xml.push_str(&format!(
            "    <numa>\n      <cell id='0' cpus='0-{}' memory='{kib}' unit='KiB'/>\n    </numa>\n",
            domain.vcpus.max(1) - 1
        ));
    }
    xml.push_str("  </cpu>\n  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>restart</on_reboot>\n  <on_crash>destroy</on_crash>\n");
    xml.push_str("  <devices>\n    <emulator>/usr/libexec/qemu-kvm</emulator>\n");
    if local_disk(domain) {
        let folder = if server.is_some() {
            format!("/var/lib/nova/instances/{}", domain.uuid)
        } else {
            "/var/lib/libvirt/images".into()
        };
        xml.push_str(&format!(
            "    <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2' cache='none'/>\n      <source file='{folder}/disk'/>\n      <backingStore type='file'>\n        <format type='raw'/>\n        <source file='/var/lib/nova/instances/_base/3f786850e387550fdab836ed7e6dc881de23001b'/>\n        <backingStore/>\n      </backingStore>\n      <target dev='vda' bus='virtio'/>\n    </disk>\n"
        ));
    } else {
        xml.push_str(&format!(
            "    <disk type='network' device='disk'>\n      <driver name='qemu' type='raw' cache='writeback' discard='unmap'/>\n      <auth username='nova'>\n        <secret type='ceph' uuid='8a6e1f2c-3b4d-4e5f-8a9b-0c1d2e3f4a5b'/>\n      </auth>\n      <source protocol='rbd' name='vms/{}_disk'>\n        <host name='10.1.0.11' port='6789'/>\n        <host name='10.1.0.12' port='6789'/>\n      </source>\n      <target dev='vda' bus='virtio'/>\n    </disk>\n",
            domain.uuid
        ));
    }
    xml.push_str(&format!(
        "    <interface type='bridge'>\n      <mac address='{}'/>\n      <source bridge='br-int'/>\n      <virtualport type='openvswitch'>\n        <parameters interfaceid='{}'/>\n      </virtualport>\n      <target dev='{}'/>\n      <model type='virtio'/>\n      <mtu size='1450'/>\n    </interface>\n",
        mac_of(&domain.uuid),
        domain.uuid.chars().rev().collect::<String>(),
        tap_of(&domain.uuid)
    ));
    for device in &profile.host_devices {
        match device {
            HostDevice::SriovVf { address, mac } => {
                let (bus, slot, function) = pci_parts(address);
                xml.push_str(&format!(
                    "    <interface type='hostdev' managed='yes'>\n      <mac address='{mac}'/>\n      <source>\n        <address type='pci' domain='0x0000' bus='0x{bus}' slot='0x{slot}' function='0x{function}'/>\n      </source>\n      <vlan>\n        <tag id='1021'/>\n      </vlan>\n    </interface>\n"
                ));
            }
            HostDevice::GpuPassthrough { address } => {
                let (bus, slot, function) = pci_parts(address);
                xml.push_str(&format!(
                    "    <hostdev mode='subsystem' type='pci' managed='yes'>\n      <driver name='vfio'/>\n      <source>\n        <address domain='0x0000' bus='0x{bus}' slot='0x{slot}' function='0x{function}'/>\n      </source>\n    </hostdev>\n"
                ));
            }
            HostDevice::Vgpu { uuid } => {
                xml.push_str(&format!(
                    "    <hostdev mode='subsystem' type='mdev' managed='no' model='vfio-pci' display='off'>\n      <source>\n        <address uuid='{uuid}'/>\n      </source>\n    </hostdev>\n"
                ));
            }
        }
    }
    xml.push_str("    <serial type='pty'>\n      <target type='isa-serial' port='0'/>\n    </serial>\n");
    if profile.agent != GuestAgent::NotConfigured {
        let state = match (domain.state, profile.agent) {
            ("shut off", _) => String::new(),
            (_, GuestAgent::NotConnected) => " state='disconnected'".into(),
            _ => " state='connected'".into(),
        };
        xml.push_str(&format!(
            "    <channel type='unix'>\n      <source mode='bind' path='/var/lib/libvirt/qemu/channel/target/domain-{}/org.qemu.guest_agent.0'/>\n      <target type='virtio' name='org.qemu.guest_agent.0'{state}/>\n    </channel>\n",
            domain.name
        ));
    }
    xml.push_str("    <memballoon model='virtio'>\n      <stats period='10'/>\n    </memballoon>\n  </devices>\n");
    xml.push_str("</domain>\n\n");
    xml
}

/// `0000:81:00.0` → (`81`, `00`, `0`).
fn pci_parts(address: &str) -> (String, String, String) {
    let mut parts = address.rsplit([':', '.']);
    let function = parts.next().unwrap_or("0").to_owned();
    let slot = parts.next().unwrap_or("00").to_owned();
    let bus = parts.next().unwrap_or("00").to_owned();
    (bus, slot, function)
}

/// `virsh domstats DOMAIN`: `key=value` lines under `Domain: 'NAME'`.
fn domstats(world: &mut WorldState, domain: &Domain) -> String {
    let now = world.clock.now(world.time_scale);
    let kib = domain.ram_mb * 1024;
    let mut out = format!("Domain: '{}'\n", domain.name);
    let running = domain.state != "shut off";
    let (state, reason) = match domain.state {
        "running" => (1, 1),
        "paused" => (3, 1),
        _ => (5, 2),
    };
    out.push_str(&format!("  state.state={state}\n  state.reason={reason}\n"));
    if running {
        let seed = spread(&domain.uuid, 1_000_000);
        let cpu_time = (seed * 1_000_000_000) / 100 + (now * 1e8) as u64 * u64::from(domain.vcpus);
        out.push_str(&format!(
            "  cpu.time={cpu_time}\n  cpu.user={}\n  cpu.system={}\n",
            cpu_time / 10 * 7,
            cpu_time / 10 * 2
        ));
        out.push_str(&format!(
            "  balloon.current={kib}\n  balloon.maximum={kib}\n  balloon.unused={}\n  balloon.available={}\n  balloon.rss={}\n",
            kib / 3,
            kib - 65536,
            kib / 2 + seed % 1024 * 256
        ));
    } else {
        out.push_str(&format!("  balloon.current={kib}\n  balloon.maximum={kib}\n"));
    }
    out.push_str(&format!("  vcpu.current={0}\n  vcpu.maximum={0}\n", domain.vcpus));
    if running {
        let seed = spread(&domain.name, 1_000_000);
        out.push_str(&format!(
            "  net.count=1\n  net.0.name={}\n  net.0.rx.bytes={}\n  net.0.rx.pkts={}\n  net.0.rx.errs=0\n  net.0.rx.drop=0\n  net.0.tx.bytes={}\n  net.0.tx.pkts={}\n  net.0.tx.errs=0\n  net.0.tx.drop=0\n",
            tap_of(&domain.uuid),
            seed * 1500,
            seed,
            seed * 900,
            seed * 3 / 4
        ));
    }
    let capacity = world.servers.get(domain.server_id.as_deref().unwrap_or_default()).map_or(20, |s| s.disk_gb) << 30;
    out.push_str("  block.count=1\n  block.0.name=vda\n");
    if running {
        let seed = spread(&domain.uuid, 100_000);
        out.push_str(&format!(
            "  block.0.rd.reqs={}\n  block.0.rd.bytes={}\n  block.0.rd.times={}\n  block.0.wr.reqs={}\n  block.0.wr.bytes={}\n  block.0.wr.times={}\n",
            seed,
            seed * 4096,
            seed * 12_000,
            seed / 2,
            seed / 2 * 8192,
            seed * 30_000
        ));
    }
    out.push_str(&format!(
        "  block.0.allocation={}\n  block.0.capacity={capacity}\n  block.0.physical={}\n\n",
        capacity / 4,
        capacity / 4
    ));
    out
}
