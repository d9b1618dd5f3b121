//! The Aquilon host: `aq` (show/del/update/manage/make/pxeswitch...),
//! `netbox2aquilon` and `myaq-get-model`, acting on each host's `aquilon`
//! record in the world.

use super::{Io, Shell};
use crate::world::{AquilonInterface, Host, WorldState};

pub fn run(shell: &mut Shell<'_>, name: &str, args: &[String], io: &mut Io) -> Option<i32> {
    let status = match name {
        "aq" | "aq.py" => aq(shell.world, args, io),
        "netbox2aquilon" => netbox2aquilon(shell.world, &parse_options(args), io),
        "myaq-get-model" => match args.first().and_then(|h| shell.world.host(h)) {
            Some(host) if host.aquilon.host_exists => {
                io.out(&format!("{}\n", host.model));
                0
            }
            _ => {
                io.err(&format!("Not Found: Host {} not found.\n", args.first().map_or("", String::as_str)));
                4
            }
        },
        _ => return None,
    };
    Some(status)
}

/// `--key value` and `--flag` options of an `aq` command.
struct Options {
    values: Vec<(String, Option<String>)>,
}

impl Options {
    fn get(&self, key: &str) -> Option<&str> {
        self.values.iter().find(|(k, _)| k == key).and_then(|(_, v)| v.as_deref())
    }

    fn flag(&self, key: &str) -> bool {
        self.values.iter().any(|(k, _)| k == key)
    }
}

fn parse_options(args: &[String]) -> Options {
    let mut values = Vec::new();
    let mut index = 0;
    while index < args.len() {
        if let Some(key) = args[index].strip_prefix("--") {
            if let Some((key, value)) = key.split_once('=') {
                values.push((key.to_owned(), Some(value.to_owned())));
            } else if args.get(index + 1).is_some_and(|next| !next.starts_with("--")) {
                values.push((key.to_owned(), Some(args[index + 1].clone())));
                index += 1;
            } else {
                values.push((key.to_owned(), None));
            }
        }
        index += 1;
    }
    Options { values }
}

const NOT_FOUND: i32 = 4;
const BAD_REQUEST: i32 = 4;

fn host_by_name<'a>(world: &'a mut WorldState, options: &Options, io: &mut Io) -> Option<&'a mut Host> {
    let Some(name) = options.get("hostname") else {
        io.err("Bad Request: Option or option group hostname is required.\n");
        return None;
    };
    match world.host_mut(name) {
        Some(host) if host.aquilon.host_exists => Some(host),
        _ => {
            io.err(&format!("Not Found: Host {name} not found.\n"));
            None
        }
    }
}

/// The host whose machine is `--machine`, or whose interface has `--mac`.
fn host_by_machine<'a>(world: &'a mut WorldState, options: &Options, io: &mut Io) -> Option<&'a mut Host> {
    if let Some(machine) = options.get("machine") {
        if let Some(host) = world.hosts.iter_mut().find(|h| h.aquilon.machine == machine) {
            return Some(host);
        }
        io.err(&format!("Not Found: Machine {machine} not found.\n"));
        return None;
    }
    if let Some(mac) = options.get("mac") {
        if let Some(host) = world.hosts.iter_mut().find(|h| h.aquilon.interfaces.iter().any(|i| i.mac == mac)) {
            return Some(host);
        }
        io.err(&format!("Not Found: Interface with MAC address {mac} not found.\n"));
        return None;
    }
    if options.get("hostname").is_some() {
        return host_by_name(world, options, io);
    }
    io.err("Bad Request: Option or option group machine is required.\n");
    None
}

fn aq(world: &mut WorldState, args: &[String], io: &mut Io) -> i32 {
    let Some(command) = args.first() else {
        io.err("Usage: aq <command> [options]\n");
        return 2;
    };
    // `aq del host` and `aq del_host` are the same command.
    let (command, rest) = match (command.as_str(), args.get(1)) {
        (verb @ ("show" | "del" | "add" | "update" | "search" | "remove"), Some(noun)) if !noun.starts_with("--") => {
            (format!("{verb}_{noun}"), &args[2..])
        }
        _ => (command.clone(), &args[1..]),
    };
    let options = parse_options(rest);
    match command.as_str() {
        "show_host" => match host_by_name(world, &options, io) {
            Some(host) => {
                io.out(&show_host(host));
                0
            }
            None => NOT_FOUND,
        },
        "show_machine" => match host_by_machine(world, &options, io) {
            Some(host) if !host.aquilon.machine.is_empty() => {
                io.out(&show_machine(host, ""));
                0
            }
            _ => NOT_FOUND,
        },
        "del_host" => match host_by_name(world, &options, io) {
            Some(host) => {
                host.aquilon.host_exists = false;
                host.aquilon.pxe_install = false;
                0
            }
            None => NOT_FOUND,
        },
        "del_interface" => {
            let Some(host) = host_by_machine(world, &options, io) else { return NOT_FOUND };
            let wanted = |i: &AquilonInterface| {
                options.get("interface").is_some_and(|n| n == i.name) || options.get("mac").is_some_and(|m| m == i.mac)
            };
            let Some(position) = host.aquilon.interfaces.iter().position(wanted) else {
                let what = options.get("interface").or(options.get("mac")).unwrap_or("?");
                io.err(&format!("Not Found: Interface {what} of machine {} not found.\n", host.aquilon.machine));
                return NOT_FOUND;
            };
            if host.aquilon.host_exists && host.aquilon.interfaces[position].ip.is_some() {
                let interface = &host.aquilon.interfaces[position];
                io.err(&format!(
                    "Bad Request: Interface {} of machine {} still has the following addresses configured: {}.\n",
                    interface.name,
                    host.aquilon.machine,
                    interface.ip.clone().unwrap_or_default()
                ));
                return BAD_REQUEST;
            }
            host.aquilon.interfaces.remove(position);
            0
        }
        "del_interface_address" => {
            let Some(host) = host_by_machine(world, &options, io) else { return NOT_FOUND };
            let name = options.get("interface").unwrap_or_default().to_owned();
            let machine = host.aquilon.machine.clone();
            match host.aquilon.interfaces.iter_mut().find(|i| i.name == name) {
                Some(interface) if interface.ip.is_some() => {
                    interface.ip = None;
                    0
                }
                Some(_) => {
                    io.err(&format!("Not Found: Interface {name} of machine {machine} has no address.\n"));
                    NOT_FOUND
                }
                None => {
                    io.err(&format!("Not Found: Interface {name} of machine {machine} not found.\n"));
                    NOT_FOUND
                }
            }
        }
        "del_machine" => {
            let Some(host) = host_by_machine(world, &options, io) else { return NOT_FOUND };
            if host.aquilon.host_exists {
                io.err(&format!(
                    "Bad Request: Machine {} is still in use by host {}.\n",
                    host.aquilon.machine, host.fqdn
                ));
                return BAD_REQUEST;
            }
            if !host.aquilon.interfaces.is_empty() {
                io.err(&format!("Bad Request: Machine {} still has interfaces.\n", host.aquilon.machine));
                return BAD_REQUEST;
            }
            host.aquilon.machine.clear();
            host.aquilon.disks.clear();
            0
        }
        "update_interface" => {
            let Some(host) = host_by_machine(world, &options, io) else { return NOT_FOUND };
            let name = options.get("interface").unwrap_or_default();
            if !host.aquilon.interfaces.iter().any(|i| i.name == name) {
                io.err(&format!("Not Found: Interface {name} of machine {} not found.\n", host.aquilon.machine));
                return NOT_FOUND;
            }
            0
        }
        "manage" => {
            let Some(host) = host_by_name(world, &options, io) else { return NOT_FOUND };
            let Some(target) = options.get("domain").or(options.get("sandbox")) else {
                io.err("Bad Request: Please specify either sandbox or domain.\n");
                return BAD_REQUEST;
            };
            host.aquilon.domain = target.to_owned();
            0
        }
        "make" | "reconfigure" => {
            let Some(host) = host_by_name(world, &options, io) else { return NOT_FOUND };
            if let Some(value) = options.get("personality") {
                host.aquilon.personality = value.to_owned();
            }
            if let Some(value) = options.get("archetype") {
                host.aquilon.archetype = value.to_owned();
            }
            if let Some(value) = options.get("osname") {
                host.aquilon.osname = value.to_owned();
            }
            if let Some(value) = options.get("osversion") {
                host.aquilon.osversion = value.to_owned();
            }
            io.err(&format!(
                "1/1 object template(s) being processed\n{}: 1 templates written, 1 compiled, 0 errors\n",
                host.fqdn
            ));
            0
        }
        "pxeswitch" => {
            let Some(host) = host_by_name(world, &options, io) else { return NOT_FOUND };
            if options.flag("install") {
                host.aquilon.pxe_install = true;
            } else if options.flag("localboot") {
                host.aquilon.pxe_install = false;
            } else {
                io.err("Bad Request: Please specify one of --install, --localboot, --status, --firmware, --configure or --blindbuild.\n");
                return BAD_REQUEST;
            }
            0
        }
        "del_disk" | "remove_disk" => {
            let Some(host) = host_by_machine(world, &options, io) else { return NOT_FOUND };
            let disk = options.get("disk").or(options.get("disk_name")).unwrap_or_default().to_owned();
            match host.aquilon.disks.iter().position(|d| *d == disk) {
                Some(position) => {
                    host.aquilon.disks.remove(position);
                    0
                }
                None => {
                    io.err(&format!("Not Found: Disk {disk} of machine {} not found.\n", host.aquilon.machine));
                    NOT_FOUND
                }
            }
        }
        "search_host" => {
            for host in world.hosts.iter().filter(|h| h.aquilon.host_exists) {
                let matches = options.get("personality").is_none_or(|p| p == host.aquilon.personality)
                    && options.get("machine").is_none_or(|m| m == host.aquilon.machine)
                    && options.get("hostname").is_none_or(|n| n == host.fqdn);
                if matches {
                    io.out(&format!("{}\n", host.fqdn));
                }
            }
            0
        }
        "status" => {
            io.out("Aquilon Broker 1.12.89 (simulated)\nServer: aquilon\n");
            0
        }
        other => {
            io.err(&format!("aq: error: unknown command '{other}'\n"));
            2
        }
    }
}

fn primary_ip(host: &Host) -> String {
    host.aquilon.interfaces.iter().find(|i| i.name == "eth0").and_then(|i| i.ip.clone()).unwrap_or_default()
}

fn show_machine(host: &Host, indent: &str) -> String {
    let aquilon = &host.aquilon;
    let cpu = &host.cpu;
    let mut text = format!(
        "{indent}Machine: {}\n{indent}  Model Type: rackmount\n{indent}  Primary Name: {} [{}]\n{indent}  Vendor: {} Model: {}\n{indent}  Cpu: {} {} x {}\n{indent}  Memory: {} MB\n",
        aquilon.machine,
        host.fqdn,
        primary_ip(host),
        host.vendor.split_whitespace().next().unwrap_or_default().to_lowercase(),
        host.model,
        cpu.vendor.to_lowercase(),
        cpu.model.to_lowercase().replace('-', "_"),
        cpu.sockets,
        host.memory_mib
    );
    for disk in &aquilon.disks {
        let (size, bus) = if disk.starts_with("nvme") { (3576, "nvme") } else { (447, "sas") };
        text.push_str(&format!(
            "{indent}  Disk: {disk} {size} GB {bus} (local){}\n",
            if disk == "sda" { " [boot]" } else { "" }
        ));
    }
    for interface in &aquilon.interfaces {
        let flags = if interface.name == "eth0" { " [boot, default_route]" } else { "" };
        text.push_str(&format!("{indent}  Interface: {} {}{flags}\n", interface.name, interface.mac));
        text.push_str(&format!(
            "{indent}    Type: {}\n",
            if interface.name.starts_with("bmc") { "management" } else { "public" }
        ));
        text.push_str(&format!("{indent}    Network Environment: internal\n"));
        if let Some(ip) = &interface.ip {
            let short = host.fqdn.split('.').next().unwrap_or_default();
            let name = if interface.name == "eth0" {
                host.fqdn.clone()
            } else {
                host.fqdn.replacen(short, &format!("{short}-{}", interface.name), 1)
            };
            text.push_str(&format!("{indent}    Provides: {name} [{ip}]\n"));
        }
    }
    text
}

fn show_host(host: &Host) -> String {
    let aquilon = &host.aquilon;
    format!(
        "Primary Name: {} [{}]\n{}  Domain: {}\n  Build Status: {}\n  Advertise Status: True\n  Personality: {} Archetype: {}\n    Environment: prod\n    Stage: current\n  Operating System: {}\n    Version: {}\n    Archetype: {}\n",
        host.fqdn,
        primary_ip(host),
        show_machine(host, "  "),
        aquilon.domain,
        if aquilon.pxe_install { "rebuild" } else { "ready" },
        aquilon.personality,
        aquilon.archetype,
        aquilon.osname,
        aquilon.osversion,
        aquilon.archetype
    )
}

/// `netbox2aquilon --hostname H --archetype A --domain D --osname N --osversion V`:
/// creates the host (and its machine if gone) from the NetBox device.
fn netbox2aquilon(world: &mut WorldState, options: &Options, io: &mut Io) -> i32 {
    let Some(name) = options.get("hostname").map(str::to_owned) else {
        io.err("usage: netbox2aquilon --hostname HOSTNAME --archetype ARCHETYPE --domain DOMAIN --osname OSNAME --osversion OSVERSION\nnetbox2aquilon: error: the following arguments are required: --hostname\n");
        return 2;
    };
    let device = world.host(&name).and_then(|h| h.netbox_device).and_then(|id| world.netbox_device(id)).cloned();
    let Some(device) = device else {
        io.err(&format!("ERROR: Device {name} not found in NetBox\n"));
        return 1;
    };
    let Some(host) = world.host_mut(&name) else { return 1 };
    if host.aquilon.host_exists {
        io.err(&format!("ERROR: aq add_host failed: Bad Request: Host {name} already exists.\n"));
        return 1;
    }
    let number: u64 = name
        .split('.')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or(0);
    let machine = if host.aquilon.machine.is_empty() {
        format!("system{}", 10_000 + number)
    } else {
        host.aquilon.machine.clone()
    };
    let interfaces: Vec<AquilonInterface> = device
        .interfaces
        .iter()
        .map(|i| AquilonInterface {
            name: i.name.clone(),
            mac: i.mac_address.clone().unwrap_or_default(),
            ip: i.ip_addresses.first().map(|(_, ip)| ip.split('/').next().unwrap_or_default().to_owned()),
        })
        .collect();
    let old_eth0 = host.aquilon.interfaces.iter().find(|i| i.name == "eth0").and_then(|i| i.ip.clone());
    let aquilon = &mut host.aquilon;
    aquilon.host_exists = true;
    aquilon.machine = machine.clone();
    aquilon.domain = options.get("domain").unwrap_or("prod").to_owned();
    aquilon.archetype = options.get("archetype").unwrap_or("cloud").to_owned();
    aquilon.personality = "inventory".into();
    aquilon.osname = options.get("osname").unwrap_or("rocky").to_owned();
    aquilon.osversion = options.get("osversion").unwrap_or("9").to_owned();
    aquilon.pxe_install = false;
    aquilon.reimports += 1;
    if aquilon.disks.is_empty() {
        aquilon.disks = if host.model.contains("a100") {
            vec!["sda".into(), "nvme0n1".into(), "nvme1n1".into()]
        } else {
            vec!["sda".into()]
        };
    }
    let mut merged = interfaces;
    for interface in &mut merged {
        if interface.name == "eth0" && interface.ip.is_none() {
            interface.ip = old_eth0.clone();
        }
    }
    for existing in aquilon.interfaces.drain(..) {
        if !merged.iter().any(|i| i.name == existing.name) {
            merged.push(existing);
        }
    }
    aquilon.interfaces = merged;
    io.out(&format!("Creating machine {machine} from NetBox device {} (id {})\n", device.name, device.id));
    for interface in &aquilon.interfaces {
        io.out(&format!("Adding interface {} ({})\n", interface.name, interface.mac));
    }
    io.out(&format!("Adding host {name} (archetype {}, domain {})\nDone.\n", aquilon.archetype, aquilon.domain));
    0
}
