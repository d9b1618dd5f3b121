//! Hypervisor tools: `virsh` (its domains are the Nova servers on this
//! host, so a migration in Nova moves them), `lspci`, `dnf`, `systemctl`,
//! `uname`.

use super::{Io, Shell};
use crate::world::{Host, WorldState};

pub fn run(shell: &mut Shell<'_>, fqdn: &str, name: &str, args: &[String], io: &mut Io) -> Option<i32> {
    let status = match name {
        "virsh" => virsh(shell, fqdn, args, io),
        "lspci" => {
            let host = shell.world.host(fqdn)?;
            let with_domain = args.iter().any(|a| a == "-D");
            for device in &host.pci {
                let slot = if with_domain { device.slot.as_str() } else { device.slot.trim_start_matches("0000:") };
                io.out(&format!("{slot} {}: {}\n", device.class, device.description));
            }
            0
        }
        "dnf" | "yum" => dnf(shell, fqdn, args, io),
        "ip" => ip(shell.world.host(fqdn)?, args, io),
        "ipmitool" => ipmitool(shell, fqdn, args, io),
        "systemctl" => systemctl(shell, args, io),
        "uname" => {
            let host = shell.world.host(fqdn)?;
            let kernel = kernel(host);
            let text = match args.first().map(String::as_str) {
                Some("-r") => kernel,
                Some("-a") => format!("Linux {fqdn} {kernel} #1 SMP PREEMPT_DYNAMIC x86_64 x86_64 x86_64 GNU/Linux"),
                Some("-m") => "x86_64".into(),
                Some("-n") => fqdn.to_owned(),
                _ => "Linux".into(),
            };
            io.out(&format!("{text}\n"));
            0
        }
        _ => return None,
    };
    Some(status)
}

/// `ip -o -d link show`: one line per link; physical NICs name their bus
/// (`parentbus pci`), as iproute2 does for devices with a parent.
fn ip(host: &Host, args: &[String], io: &mut Io) -> i32 {
    let words: Vec<&str> = args.iter().map(String::as_str).filter(|a| !a.starts_with('-')).collect();
    if !matches!(words.as_slice(), ["link"] | ["link", "show"] | ["l"] | ["link", "list"]) {
        io.err("Command not supported by the simulated host: ip link show only.\n");
        return 1;
    }
    let one_line = args.iter().any(|a| a == "-o" || a == "-oneline");
    let details = args.iter().any(|a| a == "-d" || a == "-details");
    let sep = if one_line { "\\    " } else { "\n    " };
    let mut index = 1;
    let mut line = |name: &str, flags: &str, mac: &str, extra: &str| {
        let detail = if details { format!(" {extra}") } else { String::new() };
        io.out(&format!(
            "{index}: {name}: <{flags}> mtu 1500 qdisc mq state UP mode DEFAULT group default qlen 1000{sep}link/ether {mac} brd ff:ff:ff:ff:ff:ff{detail}\n"
        ));
        index += 1;
    };
    line("lo", "LOOPBACK,UP,LOWER_UP", "00:00:00:00:00:00", "promiscuity 0");
    for (slot, (name, mac)) in host.machine.nics.iter().enumerate() {
        let parent = format!("promiscuity 0 addrgenmode none parentbus pci parentdev 0000:01:00.{slot}");
        line(name, "BROADCAST,MULTICAST,UP,LOWER_UP", mac, &parent);
    }
    if let Some(bridge) = host.aquilon.interfaces.iter().find(|nic| nic.name == "br0") {
        line("br0", "BROADCAST,MULTICAST,UP,LOWER_UP", &bridge.mac, "promiscuity 0 bridge forward_delay 1500");
    }
    0
}

/// `ipmitool lan print`: the BMC's LAN settings (root only, through /dev/ipmi0).
fn ipmitool(shell: &Shell<'_>, fqdn: &str, args: &[String], io: &mut Io) -> i32 {
    if !shell.is_root() {
        io.err("Could not open device at /dev/ipmi0 or /dev/ipmi/0 or /dev/ipmidev/0: Permission denied\n");
        return 1;
    }
    let Some(host) = shell.world.host(fqdn) else { return 1 };
    if args.first().map(String::as_str) != Some("lan") || args.get(1).map(String::as_str) != Some("print") {
        io.err("The simulated host knows only: ipmitool lan print\n");
        return 1;
    }
    let ip = host.aquilon.interfaces.iter().find(|nic| nic.name == "bmc0").and_then(|nic| nic.ip.clone());
    io.out(&format!(
        "Set in Progress         : Set Complete\nIP Address Source       : Static Address\nIP Address              : {}\nSubnet Mask             : 255.255.255.0\nMAC Address             : {}\n",
        ip.unwrap_or_else(|| "0.0.0.0".into()),
        host.machine.bmc_mac
    ));
    0
}

fn kernel(host: &Host) -> String {
    if host.os.version_id.starts_with('8') {
        "4.18.0-553.el8_10.x86_64".into()
    } else {
        "5.14.0-427.13.1.el9_4.x86_64".into()
    }
}

/// A libvirt domain as `virsh` shows it.
pub struct Domain {
    pub id: Option<usize>,
    pub name: String,
    pub uuid: String,
    pub state: &'static str,
    pub vcpus: u32,
    pub ram_mb: u64,
    /// The Nova server it is, or `None` for a domain Nova does not know.
    pub server_id: Option<String>,
    pub autostart: bool,
}

/// The domains of a host: its Nova servers, except those in ERROR (they never
/// got a domain), and the orphan domains; ordered by name; running and
/// paused ones have an id.
pub fn domains(world: &WorldState, fqdn: &str) -> Vec<Domain> {
    let mut domains: Vec<Domain> = world
        .servers_on(fqdn)
        .filter(|server| server.status != "ERROR")
        .map(|server| Domain {
            id: None,
            name: server.instance_name.clone(),
            uuid: server.id.clone(),
            state: match server.status.as_str() {
                "SHUTOFF" | "SUSPENDED" => "shut off",
                "PAUSED" => "paused",
                _ => "running",
            },
            vcpus: server.vcpus,
            ram_mb: server.ram_mb,
            server_id: Some(server.id.clone()),
            autostart: world.guests.profile(&server.instance_name).autostart,
        })
        .chain(world.guests.orphans.iter().filter(|orphan| orphan.host == fqdn).map(|orphan| Domain {
            id: None,
            name: orphan.name.clone(),
            uuid: orphan.uuid.clone(),
            state: if orphan.running { "running" } else { "shut off" },
            vcpus: orphan.vcpus,
            ram_mb: orphan.ram_mb,
            server_id: None,
            autostart: orphan.autostart,
        }))
        .collect();
    domains.sort_by(|a, b| a.name.cmp(&b.name));
    let mut next_id = 0;
    for domain in &mut domains {
        if domain.state != "shut off" {
            next_id += 1;
            domain.id = Some(next_id);
        }
    }
    domains
}

fn virsh(shell: &mut Shell<'_>, fqdn: &str, args: &[String], io: &mut Io) -> i32 {
    let mut uri = None;
    let mut rest = Vec::new();
    let mut index = 0;
    while index < args.len() {
        match args[index].as_str() {
            "-c" | "--connect" => {
                index += 1;
                uri = args.get(index).cloned();
            }
            "-r" | "--readonly" | "-q" | "--quiet" => {}
            other => rest.push(other.to_owned()),
        }
        index += 1;
    }
    let Some((command, options)) = rest.split_first() else {
        io.err("error: the simulated virsh needs a command (no interactive mode)\n");
        return 1;
    };
    let system = uri.as_deref().unwrap_or(if shell.is_root() { "qemu:///system" } else { "qemu:///session" });
    if system == "qemu:///system" && !shell.is_root() {
        io.err("error: failed to connect to the hypervisor\nerror: authentication unavailable: no polkit agent available to authenticate action 'org.libvirt.unix.manage'\n");
        return 1;
    }
    let Some(host) = shell.world.host(fqdn) else { return 1 };
    // A user's session daemon has no domains of its own.
    let domains = if system == "qemu:///system" { domains(shell.world, fqdn) } else { Vec::new() };
    let has = |flag: &str| options.iter().any(|o| o == flag);
    let find = |key: Option<&String>| -> Result<&Domain, String> {
        let key = key.ok_or_else(|| "error: command requires a domain argument\n".to_owned())?;
        domains
            .iter()
            .find(|d| &d.name == key || &d.uuid == key || d.id.is_some_and(|id| id.to_string() == *key))
            .ok_or_else(|| format!("error: failed to get domain '{key}'\n"))
    };
    let positional = options.iter().find(|o| !o.starts_with('-'));
    match command.as_str() {
        "list" => {
            let all = has("--all") || has("--inactive");
            let chosen: Vec<&Domain> = domains
                .iter()
                .filter(|d| {
                    if has("--inactive") {
                        d.id.is_none()
                    } else if has("--state-shutoff") {
                        d.state == "shut off"
                    } else if has("--state-running") {
                        d.state == "running"
                    } else if has("--state-paused") {
                        d.state == "paused"
                    } else {
                        all || d.id.is_some()
                    }
                })
                .collect();
            if has("--uuid") || has("--name") {
                for d in &chosen {
                    io.out(&format!("{}\n", if has("--uuid") { &d.uuid } else { &d.name }));
                }
                io.out("\n");
                return 0;
            }
            let ids: Vec<String> = chosen.iter().map(|d| d.id.map_or("-".into(), |id| id.to_string())).collect();
            let id_width = ids.iter().map(String::len).max().unwrap_or(0).max(2);
            let name_width = chosen.iter().map(|d| d.name.len()).max().unwrap_or(0).max(4);
            let state_width = chosen.iter().map(|d| d.state.len()).max().unwrap_or(0).max(5);
            let header = format!(" {:<id_width$}   {:<name_width$}   {:<state_width$}", "Id", "Name", "State");
            io.out(&format!("{}\n{}\n", header.trim_end(), "-".repeat(header.len() + 1)));
            for (d, id) in chosen.iter().zip(ids) {
                io.out(&format!(" {id:<id_width$}   {:<name_width$}   {}\n", d.name, d.state));
            }
            io.out("\n");
            0
        }
        "domuuid" | "domname" | "domstate" | "domid" | "dominfo" => match find(positional) {
            Ok(d) => {
                let text = match command.as_str() {
                    "domuuid" => d.uuid.clone(),
                    "domname" => d.name.clone(),
                    "domstate" => d.state.to_owned(),
                    "domid" => d.id.map_or("-".into(), |id| id.to_string()),
                    _ => dominfo(d),
                };
                io.out(&format!("{}\n\n", text.trim_end()));
                0
            }
            Err(message) => {
                io.err(&message);
                1
            }
        },
        "dumpxml" | "domstats" | "qemu-agent-command" | "start" | "shutdown" | "reboot" | "destroy" | "autostart" => {
            super::libvirt_guest::run(shell.world, command, options, &domains, io)
        }
        "capabilities" => {
            io.out(&capabilities(host));
            0
        }
        "nodeinfo" => {
            let cpu = &host.cpu;
            let cells = cpu.numa_cells.max(1);
            io.out(&format!(
                "CPU model:           {}\nCPU(s):              {}\nCPU frequency:       2994 MHz\nCPU socket(s):       {}\nCore(s) per socket:  {}\nThread(s) per core:  {}\nNUMA cell(s):        {cells}\nMemory size:         {} KiB\n\n",
                cpu.arch,
                cpu.logical_cpus(),
                (cpu.sockets / cells).max(1),
                cpu.cores_per_socket,
                cpu.threads_per_core,
                (host.memory_mib * 1024).saturating_sub(2 * 1024 * 1024),
            ));
            0
        }
        "nodememstats" => {
            let total = (host.memory_mib * 1024).saturating_sub(2 * 1024 * 1024);
            let used: u64 = domains.iter().filter(|d| d.id.is_some()).map(|d| d.ram_mb * 1024).sum();
            let free = total.saturating_sub(used).saturating_sub(total / 20);
            io.out(&format!(
                "total  :          {total:>10} KiB\nfree   :          {free:>10} KiB\nbuffers:          {:>10} KiB\ncached :          {:>10} KiB\n\n",
                12_288,
                total / 40
            ));
            0
        }
        "hostname" => {
            io.out(&format!("{fqdn}\n\n"));
            0
        }
        "uri" => {
            io.out(&format!("{system}\n\n"));
            0
        }
        "version" => {
            let libvirt = if host.os.version_id.starts_with('8') { "8.0.0" } else { "10.0.0" };
            io.out(&format!("Compiled against library: libvirt {libvirt}\nUsing library: libvirt {libvirt}\nUsing API: QEMU {libvirt}\nRunning hypervisor: QEMU 6.2.0\n\n"));
            0
        }
        other => {
            io.err(&format!("error: unknown command: '{other}'\n"));
            1
        }
    }
}

fn dominfo(d: &Domain) -> String {
    let autostart = if d.autostart { "enable" } else { "disable" };
    format!(
        "Id:             {}\nName:           {}\nUUID:           {}\nOS Type:        hvm\nState:          {}\nCPU(s):         {}\n{}Max memory:     {} KiB\nUsed memory:    {} KiB\nPersistent:     yes\nAutostart:      {autostart}\nManaged save:   no\nSecurity model: selinux\nSecurity DOI:   0\n",
        d.id.map_or("-".into(), |id| id.to_string()),
        d.name,
        d.uuid,
        d.state,
        d.vcpus,
        if d.id.is_some() { "CPU time:       1843.2s\n" } else { "" },
        d.ram_mb * 1024,
        d.ram_mb * 1024,
    )
}

/// `virsh capabilities`. As in real libvirt, `<topology sockets=...>` counts
/// the sockets per NUMA cell, not the host's total.
pub fn capabilities(host: &Host) -> String {
    let cpu = &host.cpu;
    let cells = cpu.numa_cells.max(1);
    let sockets_per_cell = (cpu.sockets / cells).max(1);
    let cpus_per_cell = cpu.logical_cpus() / cells;
    let cores_total = cpu.sockets * cpu.cores_per_socket;
    let memory_kib_per_cell = host.memory_mib * 1024 / u64::from(cells);
    let mut xml = String::new();
    xml.push_str("<capabilities>\n\n  <host>\n");
    xml.push_str(&format!("    <uuid>{}</uuid>\n", host.host_uuid));
    xml.push_str("    <cpu>\n");
    xml.push_str(&format!(
        "      <arch>{}</arch>\n      <model>{}</model>\n      <vendor>{}</vendor>\n",
        cpu.arch, cpu.model, cpu.vendor
    ));
    xml.push_str("      <microcode version='173015054'/>\n      <signature family='25' model='1' stepping='1'/>\n");
    xml.push_str("      <counter name='tsc' frequency='2994374000' scaling='no'/>\n");
    xml.push_str(&format!(
        "      <topology sockets='{sockets_per_cell}' dies='1' clusters='1' cores='{}' threads='{}'/>\n",
        cpu.cores_per_socket, cpu.threads_per_core
    ));
    xml.push_str("      <maxphysaddr mode='emulate' bits='48'/>\n");
    for feature in ["x2apic", "tsc-deadline", "hypervisor", "tsc_adjust", "spec-ctrl", "stibp", "ssbd", "invtsc"] {
        xml.push_str(&format!("      <feature name='{feature}'/>\n"));
    }
    xml.push_str("      <pages unit='KiB' size='4'/>\n      <pages unit='KiB' size='2048'/>\n      <pages unit='KiB' size='1048576'/>\n");
    xml.push_str("    </cpu>\n    <power_management>\n      <suspend_mem/>\n      <suspend_disk/>\n      <suspend_hybrid/>\n    </power_management>\n");
    xml.push_str("    <iommu support='yes'/>\n    <migration_features>\n      <live/>\n      <uri_transports>\n        <uri_transport>tcp</uri_transport>\n        <uri_transport>rdma</uri_transport>\n      </uri_transports>\n    </migration_features>\n");
    xml.push_str(&format!("    <topology>\n      <cells num='{cells}'>\n"));
    for cell in 0..cells {
        xml.push_str(&format!(
            "        <cell id='{cell}'>\n          <memory unit='KiB'>{memory_kib_per_cell}</memory>\n"
        ));
        xml.push_str(&format!(
            "          <pages unit='KiB' size='4'>{}</pages>\n          <pages unit='KiB' size='2048'>0</pages>\n          <pages unit='KiB' size='1048576'>0</pages>\n",
            memory_kib_per_cell / 4
        ));
        xml.push_str("          <distances>\n");
        for other in 0..cells {
            xml.push_str(&format!(
                "            <sibling id='{other}' value='{}'/>\n",
                if other == cell { 10 } else { 32 }
            ));
        }
        xml.push_str("          </distances>\n");
        xml.push_str(&format!("          <cpus num='{cpus_per_cell}'>\n"));
        // Logical CPU n is core n % cores_total, thread n / cores_total (Linux numbering).
        for thread in 0..cpu.threads_per_core {
            for local_core in 0..(cores_total / cells) {
                let core = cell * (cores_total / cells) + local_core;
                let id = thread * cores_total + core;
                let socket = core / cpu.cores_per_socket;
                let siblings: Vec<String> =
                    (0..cpu.threads_per_core).map(|t| (t * cores_total + core).to_string()).collect();
                xml.push_str(&format!(
                    "            <cpu id='{id}' socket_id='{socket}' die_id='0' cluster_id='65535' core_id='{}' siblings='{}'/>\n",
                    core % cpu.cores_per_socket,
                    siblings.join(",")
                ));
            }
        }
        xml.push_str("          </cpus>\n        </cell>\n");
    }
    xml.push_str("      </cells>\n    </topology>\n");
    xml.push_str("    <secmodel>\n      <model>selinux</model>\n      <doi>0</doi>\n      <baselabel type='kvm'>system_u:system_r:svirt_t:s0</baselabel>\n      <baselabel type='qemu'>system_u:system_r:svirt_tcg_t:s0</baselabel>\n    </secmodel>\n");
    xml.push_str("    <secmodel>\n      <model>dac</model>\n      <doi>0</doi>\n      <baselabel type='kvm'>+107:+107</baselabel>\n      <baselabel type='qemu'>+107:+107</baselabel>\n    </secmodel>\n");
    xml.push_str("  </host>\n\n  <guest>\n    <os_type>hvm</os_type>\n    <arch name='x86_64'>\n      <wordsize>64</wordsize>\n      <emulator>/usr/libexec/qemu-kvm</emulator>\n");
    xml.push_str("      <machine maxCpus='710'>pc-q35-rhel9.4.0</machine>\n      <machine canonical='pc-q35-rhel9.4.0' maxCpus='710'>q35</machine>\n      <domain type='qemu'/>\n      <domain type='kvm'/>\n    </arch>\n");
    xml.push_str("    <features>\n      <acpi default='on' toggle='yes'/>\n      <apic default='on' toggle='no'/>\n      <cpuselection/>\n      <deviceboot/>\n      <disksnapshot default='on' toggle='no'/>\n    </features>\n  </guest>\n\n</capabilities>\n\n");
    xml
}

/// The newest version of a package in the host's OS repositories.
fn newest(package: &str, major: &str) -> Option<&'static str> {
    match (package, major) {
        ("qemu-kvm", "8") => Some("6.2.0-53.module+el8.10.0+2055+8eb7870b"),
        ("qemu-kvm", _) => Some("8.2.0-11.el9_4.6"),
        ("libvirt", "8") => Some("8.0.0-23.2.module+el8.10.0+2054+ab4fa20d"),
        ("libvirt", _) => Some("10.0.0-6.7.el9_4"),
        _ => None,
    }
}

fn dnf(shell: &mut Shell<'_>, fqdn: &str, args: &[String], io: &mut Io) -> i32 {
    let words: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let Some((action, packages)) = words.split_first() else {
        io.err("usage: dnf [options] COMMAND\n");
        return 1;
    };
    let Some(host) = shell.world.host(fqdn) else { return 1 };
    let major = host.os.version_id.split('.').next().unwrap_or("8").to_owned();
    let dnf_works = host.shell.dnf_works;
    let site = shell.world.site.clone();
    match action.as_str() {
        "update" | "upgrade" | "install" => {}
        "list" | "info" | "repolist" | "check-update" | "makecache" => {
            if !dnf_works {
                io.out(&format!(
                    "Rocky Linux {major} - BaseOS                        0.0  B/s |   0  B     00:00    \n"
                ));
                io.err(&metadata_error(&site, &major));
                return 1;
            }
            for (name, version) in &host.shell.packages {
                io.out(&format!("{name}.x86_64    {version}    @appstream\n"));
            }
            return 0;
        }
        other => {
            io.err(&format!("No such command: {other}. Please use /usr/bin/dnf --help\n"));
            return 1;
        }
    }
    if !shell.is_root() {
        io.err("Error: This command has to be run with superuser privileges (under the root user on most systems).\n");
        return 1;
    }
    if !dnf_works {
        io.out(&format!("Rocky Linux {major} - BaseOS                        0.0  B/s |   0  B     00:00    \n"));
        io.err(&metadata_error(&site, &major));
        return 1;
    }
    let mut upgrades = Vec::new();
    let mut missing = Vec::new();
    for package in packages {
        match (host.shell.packages.get(package.as_str()), newest(package, &major)) {
            (Some(installed), Some(latest)) if installed != latest => {
                upgrades.push((package.to_string(), installed.clone(), latest.to_owned()))
            }
            (Some(_), _) => {}
            (None, _) => missing.push(package.to_string()),
        }
    }
    io.out("Last metadata expiration check: 0:41:07 ago on Mon 05 Jan 2026 08:18:53 AM UTC.\n");
    for package in &missing {
        io.out(&format!("Package {package} available, but not installed.\nNo match for argument: {package}\n"));
    }
    if !missing.is_empty() && upgrades.is_empty() {
        io.err("Error: No packages marked for upgrade.\n");
        return 1;
    }
    if upgrades.is_empty() {
        io.out("Dependencies resolved.\nNothing to do.\nComplete!\n");
        return 0;
    }
    let rule = "=".repeat(80);
    io.out(&format!("Dependencies resolved.\n{rule}\n Package            Arch     Version                                   Repository   Size\n{rule}\nUpgrading:\n"));
    for (name, _, latest) in &upgrades {
        io.out(&format!(" {name:<18} x86_64   15:{latest:<39} appstream    87 k\n"));
    }
    io.out(&format!(
        "\nTransaction Summary\n{rule}\nUpgrade  {} Package{}\n\nTotal download size: {} k\nDownloading Packages:\nRunning transaction check\nTransaction check succeeded.\nRunning transaction test\nTransaction test succeeded.\nRunning transaction\n",
        upgrades.len(),
        if upgrades.len() == 1 { "" } else { "s" },
        87 * upgrades.len()
    ));
    for (name, _, latest) in &upgrades {
        io.out(&format!("  Upgrading        : {name}-15:{latest}.x86_64    1/2\n"));
    }
    io.out("\nUpgraded:\n");
    for (name, _, latest) in &upgrades {
        io.out(&format!("  {name}-15:{latest}.x86_64\n"));
    }
    io.out("\nComplete!\n");
    // The transaction takes a few simulated minutes; the packages are new at its end.
    shell.take_minutes(3);
    let packages = upgrades.into_iter().map(|(name, _, latest)| (name, latest)).collect();
    shell.change_site(super::jobs::Change::PackagesUpgraded { host: fqdn.to_owned(), packages });
    0
}

fn metadata_error(site: &str, major: &str) -> String {
    format!(
        "Errors during downloading metadata for repository 'baseos':\n  - Curl error (6): Couldn't resolve host name for https://mirrors.{site}.example.org/mirrorlist?arch=x86_64&repo=BaseOS-{major} [Could not resolve host: mirrors.{site}.example.org]\nError: Failed to download metadata for repo 'baseos': Cannot prepare internal mirrorlist: Curl error (6): Couldn't resolve host name for https://mirrors.{site}.example.org/mirrorlist?arch=x86_64&repo=BaseOS-{major} [Could not resolve host: mirrors.{site}.example.org]\n"
    )
}

fn systemctl(shell: &mut Shell<'_>, args: &[String], io: &mut Io) -> i32 {
    let words: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let action = words.first().map(|s| s.as_str()).unwrap_or("list-units");
    let changes = matches!(action, "daemon-reload" | "restart" | "start" | "stop" | "enable" | "disable" | "reload");
    if changes && !shell.is_root() {
        let verb = if action == "daemon-reload" { "reload daemon" } else { "start service" };
        io.err(&format!("Failed to {verb}: Access denied\n"));
        return 1;
    }
    match action {
        "is-active" => {
            io.out("active\n");
            0
        }
        "is-enabled" => {
            io.out("enabled\n");
            0
        }
        _ => 0,
    }
}
