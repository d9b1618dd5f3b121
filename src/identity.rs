//! Host identity: the canonical facts that say which machine answers to a
//! host name (as the Insights host inventory keys hosts by BIOS UUID,
//! machine id, MACs and FQDN), what NetBox, Nova and Aquilon record for it,
//! and the comparisons that tell the same machine from another one.
//!
//! The system UUID, the serial and the physical NICs' MACs belong to the
//! hardware: a reinstall keeps them. The `machine-id` and the SSH host keys
//! belong to the installed system: a reinstall makes new ones.

use std::collections::BTreeSet;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::ssh::{RemoteCommand, RemoteShell, SshError, Target};

/// One shell script reads every fact (one round trip); each value on its own
/// `key=value` line, then the host keys, the links and the BMC in sections.
/// The DMI files and `ipmitool` need root.
const FACTS_SCRIPT: &str = r#"echo "system_uuid=$(cat /sys/class/dmi/id/product_uuid 2>/dev/null)"
echo "serial=$(cat /sys/class/dmi/id/product_serial 2>/dev/null)"
echo "machine_id=$(cat /etc/machine-id 2>/dev/null)"
echo "fqdn=$(hostname -f 2>/dev/null)"
echo "ips=$(hostname -I 2>/dev/null)"
if [ -d /sys/firmware/efi ]; then echo boot_mode=uefi; else echo boot_mode=bios; fi
echo "--- host keys"
cat /etc/ssh/ssh_host_ed25519_key.pub /etc/ssh/ssh_host_ecdsa_key.pub /etc/ssh/ssh_host_rsa_key.pub 2>/dev/null
echo "--- links"
ip -o -d link show
echo "--- bmc"
ipmitool lan print 2>/dev/null
true"#;

/// What the host itself says it is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFacts {
    /// `/sys/class/dmi/id/product_uuid`, lower case.
    pub system_uuid: String,
    /// `/sys/class/dmi/id/product_serial`.
    pub serial: String,
    /// MACs of the physical NICs (those on a bus: `parentbus` in `ip -d link`), lower case, sorted.
    pub macs: Vec<String>,
    /// The BMC's MAC (`ipmitool lan print`), when the host has one it can read.
    pub bmc_mac: Option<String>,
    pub machine_id: String,
    /// `SHA256:…` fingerprints of the host's public host keys, sorted.
    pub host_keys: Vec<String>,
    /// `uefi` or `bios`.
    pub boot_mode: String,
    pub fqdn: String,
    pub ips: Vec<String>,
}

impl HostFacts {
    /// Reads the facts as root on `target` (a login as root, or a command
    /// the caller wraps in sudo through `wrap`).
    pub async fn gather(
        shell: &dyn RemoteShell,
        target: &Target,
        wrap: impl FnOnce(RemoteCommand) -> RemoteCommand,
    ) -> Result<HostFacts, IdentityError> {
        let command = wrap(RemoteCommand::script("identity-facts", FACTS_SCRIPT, &[]));
        let output = shell.run(target, &command).await?;
        if !output.success() {
            return Err(IdentityError::Facts(format!(
                "{target}: reading the canonical facts failed with exit status {}: {}",
                output.exit_status,
                crate::untrusted::head_and_tail(output.stderr.trim(), 400)
            )));
        }
        let facts = HostFacts::parse(&output.stdout);
        if facts.system_uuid.is_empty() {
            return Err(IdentityError::Facts(format!(
                "{target}: no system UUID in /sys/class/dmi/id/product_uuid (is the command run as root?)"
            )));
        }
        Ok(facts)
    }

    /// Parses what [`FACTS_SCRIPT`] prints. Text from the host: every value
    /// is capped and stripped of control characters.
    pub fn parse(text: &str) -> HostFacts {
        let clean =
            |value: &str| -> String { value.trim().chars().filter(|c| !c.is_control()).take(200).collect::<String>() };
        let mut facts = HostFacts::default();
        let mut section = "";
        let mut macs = BTreeSet::new();
        let mut keys = BTreeSet::new();
        for line in text.lines() {
            if let Some(name) = line.strip_prefix("--- ") {
                section = match name.trim() {
                    "host keys" => "keys",
                    "links" => "links",
                    "bmc" => "bmc",
                    _ => "",
                };
                continue;
            }
            match section {
                "keys" => {
                    if let Some(fingerprint) = fingerprint(line) {
                        keys.insert(fingerprint);
                    }
                }
                "links" => {
                    // `2: eth0: <…> … link/ether MAC brd … parentbus pci parentdev …`
                    let words: Vec<&str> = line.split_whitespace().collect();
                    let physical = words.contains(&"parentbus");
                    let mac = words.windows(2).find(|pair| pair[0] == "link/ether").map(|pair| pair[1]);
                    if let (true, Some(mac)) = (physical, mac) {
                        if is_mac(mac) {
                            macs.insert(mac.to_lowercase());
                        }
                    }
                }
                "bmc" => {
                    if let Some((name, value)) = line.split_once(':') {
                        let value = value.trim();
                        if name.trim() == "MAC Address" && is_mac(value) {
                            facts.bmc_mac = Some(value.to_lowercase());
                        }
                    }
                }
                _ => {
                    let Some((key, value)) = line.split_once('=') else { continue };
                    let value = clean(value);
                    match key {
                        "system_uuid" => facts.system_uuid = value.to_lowercase(),
                        "serial" => facts.serial = value,
                        "machine_id" => facts.machine_id = value,
                        "fqdn" => facts.fqdn = value,
                        "ips" => facts.ips = value.split_whitespace().map(str::to_owned).take(64).collect(),
                        "boot_mode" => facts.boot_mode = value,
                        _ => {}
                    }
                }
            }
        }
        facts.macs = macs.into_iter().collect();
        facts.host_keys = keys.into_iter().collect();
        facts
    }

    /// The facts in one line, for a report.
    pub fn summary(&self) -> String {
        format!(
            "system UUID {}, serial {}, MACs {}, BMC {}, machine-id {}, {}",
            self.system_uuid,
            or_none(&self.serial),
            if self.macs.is_empty() { "none".to_owned() } else { self.macs.join(" ") },
            self.bmc_mac.as_deref().unwrap_or("unknown"),
            or_none(&self.machine_id),
            self.boot_mode
        )
    }
}

fn or_none(value: &str) -> &str {
    if value.is_empty() {
        "none"
    } else {
        value
    }
}

fn is_mac(text: &str) -> bool {
    let parts: Vec<&str> = text.split(':').collect();
    parts.len() == 6 && parts.iter().all(|part| part.len() == 2 && part.chars().all(|c| c.is_ascii_hexdigit()))
}

/// `SHA256:…` of a public key line (`ssh-ed25519 AAAA… comment`, or a
/// known_hosts line with the host first), as `ssh-keygen -l` prints it.
pub fn fingerprint(line: &str) -> Option<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let blob =
        words.windows(2).find(|pair| pair[0].starts_with("ssh-") || pair[0].starts_with("ecdsa-")).map(|p| p[1])?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(blob).ok()?;
    let digest = sha2::Sha256::digest(&bytes);
    Some(format!("SHA256:{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)))
}

/// The identity record of a host at one moment: its own facts and what the
/// site's systems record for it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityRecord {
    pub host: HostFacts,
    /// NetBox's serial of the device (empty when NetBox has none).
    #[serde(default)]
    pub netbox_serial: Option<String>,
    /// NetBox's interfaces with a MAC: (name, MAC lower case).
    #[serde(default)]
    pub netbox_macs: Vec<(String, String)>,
    /// Nova's hypervisor UUID (its `id` from microversion 2.53).
    #[serde(default)]
    pub nova_hypervisor_uuid: Option<String>,
    /// The host's `compute_id` file, when it has one.
    #[serde(default)]
    pub compute_id: Option<String>,
    /// Aquilon's machine name for the host.
    #[serde(default)]
    pub aquilon_machine: Option<String>,
}

/// Where NetBox and the host disagree (pre-drain), each naming both values.
pub fn netbox_disagreements(record: &IdentityRecord, bmc_prefix: &str) -> Vec<String> {
    let host = &record.host;
    let mut problems = Vec::new();
    if let Some(serial) = record.netbox_serial.as_deref().filter(|serial| !serial.trim().is_empty()) {
        if !serial.trim().eq_ignore_ascii_case(host.serial.trim()) {
            problems.push(format!("serial: NetBox has {serial}, the host reports {}", or_none(&host.serial)));
        }
    }
    for (name, mac) in &record.netbox_macs {
        if name.starts_with(bmc_prefix) {
            match &host.bmc_mac {
                Some(bmc) if bmc != mac => {
                    problems.push(format!("BMC MAC: NetBox {name} has {mac}, the host's BMC reports {bmc}"))
                }
                _ => {}
            }
        } else if !host.macs.contains(mac) {
            problems.push(format!(
                "MAC of {name}: NetBox has {mac}, the host's physical NICs are {}",
                if host.macs.is_empty() { "none".to_owned() } else { host.macs.join(", ") }
            ));
        }
    }
    problems
}

/// How the machine answering now compares with the one recorded before.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Hardware facts that differ: another machine answers.
    pub mismatches: Vec<String>,
    /// Facts a reinstall changes, as expected (machine-id, host keys).
    pub expected_changes: Vec<String>,
}

impl Comparison {
    pub fn same_machine(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// Compares the facts of the machine answering now with the recorded ones.
pub fn compare(recorded: &HostFacts, now: &HostFacts) -> Comparison {
    let mut comparison = Comparison::default();
    if recorded.system_uuid != now.system_uuid {
        comparison.mismatches.push(format!(
            "system UUID was {}, is now {}",
            recorded.system_uuid,
            or_none(&now.system_uuid)
        ));
    }
    if recorded.serial != now.serial {
        comparison.mismatches.push(format!(
            "serial was {}, is now {}",
            or_none(&recorded.serial),
            or_none(&now.serial)
        ));
    }
    if recorded.macs != now.macs {
        comparison.mismatches.push(format!(
            "NIC MACs were {}, are now {}",
            recorded.macs.join(" "),
            now.macs.join(" ")
        ));
    }
    if let (Some(before), Some(after)) = (&recorded.bmc_mac, &now.bmc_mac) {
        if before != after {
            comparison.mismatches.push(format!("BMC MAC was {before}, is now {after}"));
        }
    }
    if recorded.machine_id != now.machine_id {
        comparison.expected_changes.push(format!(
            "machine-id {} → {} (a reinstall makes a new one)",
            or_none(&recorded.machine_id),
            or_none(&now.machine_id)
        ));
    }
    if recorded.host_keys != now.host_keys {
        comparison.expected_changes.push(format!(
            "SSH host keys {} → {} (a reinstall makes new ones)",
            recorded.host_keys.join(" "),
            now.host_keys.join(" ")
        ));
    }
    comparison
}

/// One observation in a host's history, as `inventory` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InventoryEntry {
    pub step: String,
    pub kind: String,
    pub recorded_at: String,
    pub record: IdentityRecord,
}

/// A host of the inventory: its latest identity and its history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InventoryHost {
    pub host: String,
    pub latest: Option<IdentityRecord>,
    pub history: Vec<InventoryEntry>,
}

/// Hosts matched by their canonical facts: one machine behind two names of
/// the list, or one name that became another machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Duplicate {
    /// `one machine, several names` or `name became another machine`.
    pub kind: String,
    pub hosts: Vec<String>,
    pub detail: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Inventory {
    pub hosts: Vec<InventoryHost>,
    pub duplicates: Vec<Duplicate>,
}

/// The inventory from the journal's identity rows (`(host, step, kind,
/// recorded_at, record JSON)`, oldest first); `only` keeps one host's
/// entries, duplicates are found across all.
pub fn inventory(rows: &[(String, String, String, String, String)], only: Option<&str>) -> Inventory {
    let mut hosts: Vec<InventoryHost> = Vec::new();
    for (host, step, kind, recorded_at, json) in rows {
        let Ok(record) = serde_json::from_str::<IdentityRecord>(json) else { continue };
        let position = match hosts.iter().position(|entry| &entry.host == host) {
            Some(position) => position,
            None => {
                hosts.push(InventoryHost { host: host.clone(), latest: None, history: Vec::new() });
                hosts.len() - 1
            }
        };
        let entry = &mut hosts[position];
        if kind == "observed" && !record.host.system_uuid.is_empty() {
            entry.latest = Some(record.clone());
        }
        entry.history.push(InventoryEntry {
            step: step.clone(),
            kind: kind.clone(),
            recorded_at: recorded_at.clone(),
            record,
        });
    }
    let mut duplicates = Vec::new();
    // One name, several machines over time.
    for entry in &hosts {
        let mut machines: Vec<&str> = Vec::new();
        for item in entry.history.iter().filter(|item| item.kind == "observed") {
            let uuid = item.record.host.system_uuid.as_str();
            if !uuid.is_empty() && !machines.contains(&uuid) {
                machines.push(uuid);
            }
        }
        if machines.len() > 1 {
            duplicates.push(Duplicate {
                kind: "name became another machine".into(),
                hosts: vec![entry.host.clone()],
                detail: format!("system UUIDs over time: {}", machines.join(" → ")),
            });
        }
    }
    // Several names, one machine (by system UUID, serial or a NIC MAC).
    for (index, first) in hosts.iter().enumerate() {
        let Some(a) = &first.latest else { continue };
        for second in &hosts[index + 1..] {
            let Some(b) = &second.latest else { continue };
            let shared = if a.host.system_uuid == b.host.system_uuid {
                Some(format!("system UUID {}", a.host.system_uuid))
            } else if !a.host.serial.is_empty() && a.host.serial == b.host.serial {
                Some(format!("serial {}", a.host.serial))
            } else {
                a.host.macs.iter().find(|mac| b.host.macs.contains(mac)).map(|mac| format!("MAC {mac}"))
            };
            if let Some(detail) = shared {
                duplicates.push(Duplicate {
                    kind: "one machine, several names".into(),
                    hosts: vec![first.host.clone(), second.host.clone()],
                    detail,
                });
            }
        }
    }
    if let Some(only) = only {
        hosts.retain(|entry| entry.host == only);
        duplicates.retain(|duplicate| duplicate.hosts.iter().any(|host| host == only));
    }
    Inventory { hosts, duplicates }
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error("{0}")]
    Facts(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "system_uuid=4C4C4544-0042-4410-8051-B4C04F563232\nserial=7XK2M3\nmachine_id=0123456789abcdef0123456789abcdef\n\
fqdn=hv001.lab.example.org\nips=172.16.0.1 10.0.0.5\nboot_mode=uefi\n--- host keys\n\
ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGZ+l7NbkDVNoHu0QR45vs/XyqMqRIOmsNQuSCUOACJx root@hv001\n--- links\n\
1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536\\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00 promiscuity 0\n\
2: eno1: <BROADCAST> mtu 1500\\    link/ether B8:2A:72:00:00:01 brd ff:ff:ff:ff:ff:ff promiscuity 0 parentbus pci parentdev 0000:01:00.0\n\
3: br0: <BROADCAST> mtu 1500\\    link/ether b8:2a:72:00:00:09 brd ff:ff:ff:ff:ff:ff promiscuity 0 bridge forward_delay 1500\n\
--- bmc\nIP Address              : 10.100.0.1\nMAC Address             : b8:2a:72:00:00:02\n";

    #[test]
    fn facts_are_parsed_and_only_physical_nics_count() {
        let facts = HostFacts::parse(OUTPUT);
        assert_eq!(facts.system_uuid, "4c4c4544-0042-4410-8051-b4c04f563232");
        assert_eq!(facts.serial, "7XK2M3");
        assert_eq!(facts.macs, ["b8:2a:72:00:00:01"]);
        assert_eq!(facts.bmc_mac.as_deref(), Some("b8:2a:72:00:00:02"));
        assert_eq!(facts.ips, ["172.16.0.1", "10.0.0.5"]);
        assert_eq!(facts.boot_mode, "uefi");
        // As `ssh-keygen -lf` prints it for this key.
        assert_eq!(facts.host_keys, ["SHA256:XEy8mjs4JKLLmTmi5Uagji7O/SFwm/EJja7n9zRXX80"]);
    }

    #[test]
    fn a_reinstall_changes_machine_id_and_keys_another_machine_its_hardware() {
        let before = HostFacts::parse(OUTPUT);
        let reinstalled =
            HostFacts { machine_id: "f".repeat(32), host_keys: vec!["SHA256:new".into()], ..before.clone() };
        let same = compare(&before, &reinstalled);
        assert!(same.same_machine());
        assert_eq!(same.expected_changes.len(), 2);
        let other = HostFacts { system_uuid: "other".into(), serial: "9ZZ".into(), ..reinstalled };
        let mismatch = compare(&before, &other);
        assert!(!mismatch.same_machine());
        assert!(mismatch.mismatches[0].contains("4c4c4544") && mismatch.mismatches[0].contains("other"));
        assert!(mismatch.mismatches[1].contains("7XK2M3") && mismatch.mismatches[1].contains("9ZZ"));
    }

    #[test]
    fn the_inventory_reports_one_machine_under_two_names_and_a_name_that_changed_machine() {
        let facts = HostFacts::parse(OUTPUT);
        let row = |host: &str, step: &str, facts: &HostFacts| {
            let record = IdentityRecord { host: facts.clone(), ..IdentityRecord::default() };
            (
                host.to_owned(),
                step.to_owned(),
                "observed".to_owned(),
                "t".to_owned(),
                serde_json::to_string(&record).unwrap(),
            )
        };
        let other = HostFacts { system_uuid: "other".into(), serial: "OTHER".into(), macs: vec![], ..facts.clone() };
        let rows = vec![
            row("hv01", "pre-drain", &facts),
            row("hv02", "pre-drain", &facts),
            row("hv03", "pre-drain", &other),
            row("hv03", "post-reinstall", &HostFacts { system_uuid: "third".into(), ..other.clone() }),
        ];
        let all = inventory(&rows, None);
        assert_eq!(all.hosts.len(), 3);
        assert_eq!(all.duplicates.len(), 2, "{:?}", all.duplicates);
        assert!(all.duplicates.iter().any(|d| d.hosts == ["hv01", "hv02"] && d.detail.contains("system UUID")));
        assert!(all.duplicates.iter().any(|d| d.hosts == ["hv03"] && d.detail.contains("other → third")));
        let one = inventory(&rows, Some("hv03"));
        assert_eq!((one.hosts.len(), one.hosts[0].history.len(), one.duplicates.len()), (1, 2, 1));
    }

    #[test]
    fn netbox_disagreements_name_both_values() {
        let record = IdentityRecord {
            host: HostFacts::parse(OUTPUT),
            netbox_serial: Some("ABC1234".into()),
            netbox_macs: vec![("bmc0".into(), "b8:2a:72:00:00:03".into()), ("eth0".into(), "b8:2a:72:00:00:01".into())],
            ..IdentityRecord::default()
        };
        let problems = netbox_disagreements(&record, "bmc");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("ABC1234") && problems[0].contains("7XK2M3"));
        assert!(problems[1].contains("b8:2a:72:00:00:03") && problems[1].contains("b8:2a:72:00:00:02"));
    }
}
