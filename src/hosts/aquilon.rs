//! The Aquilon host: `aq` operations over SSH, each a typed call whose exit
//! status is checked, and a defensive parse of `aq show host`.

use std::sync::Arc;

use super::{HostError, Observed, Remote};
use crate::ssh::{CommandOutput, RemoteCommand, RemoteShell, Target};

/// What `aq show host` says about a host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AqHost {
    pub primary_name: Option<String>,
    pub primary_ip: Option<String>,
    /// The machine (system id) the host runs on.
    pub machine: Option<String>,
    pub vendor: Option<String>,
    /// The hardware model, e.g. `hv-2022-lenovo`.
    pub model: Option<String>,
    pub interfaces: Vec<AqInterface>,
    /// Disk names (`sda`, `nvme0n1`).
    pub disks: Vec<String>,
    pub personality: Option<String>,
    pub archetype: Option<String>,
    pub os_name: Option<String>,
    pub os_version: Option<String>,
    pub domain: Option<String>,
    pub sandbox: Option<String>,
    pub status: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AqInterface {
    pub name: String,
    pub mac: Option<String>,
    /// Addresses it provides.
    pub ips: Vec<String>,
    pub network_environment: Option<String>,
}

/// Arguments of `aq make`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MakeProfile {
    pub personality: String,
    pub osname: String,
    pub osversion: String,
    pub archetype: Option<String>,
}

/// Arguments of `netbox2aquilon`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Netbox2Aquilon {
    pub archetype: String,
    pub domain: String,
    pub osname: String,
    pub osversion: String,
}

pub struct Aquilon {
    remote: Remote,
    aq: String,
}

impl Aquilon {
    /// `aquilon.username@aquilon.host`; `aq` is found on that account's PATH.
    pub fn new(shell: Arc<dyn RemoteShell>, target: Target) -> Self {
        Aquilon { remote: Remote::new(shell, target), aq: "aq".to_owned() }
    }

    /// Uses another `aq` program (a full path, a wrapper).
    pub fn with_aq_program(mut self, program: impl Into<String>) -> Self {
        self.aq = program.into();
        self
    }

    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    fn aq(&self, action: &str, subcommand: &str) -> RemoteCommand {
        RemoteCommand::new(action, self.aq.clone()).arg(subcommand)
    }

    /// `aq show host --hostname H`; `None` when Aquilon does not know it.
    pub async fn show_host(&self, hostname: &str) -> Result<Option<Observed<AqHost>>, HostError> {
        let action = "aq-show-host";
        let output = self.remote.run(&self.aq(action, "show").args(["host", "--hostname", hostname])).await?;
        if !output.success() {
            if is_not_found(&output) {
                return Ok(None);
            }
            return Err(self.remote.failed(action, &output));
        }
        let value = parse_show_host(&output.stdout);
        if value.primary_name.is_none() && value.machine.is_none() {
            return Err(self.remote.unexpected(action, "neither a Primary Name nor a Machine"));
        }
        Ok(Some(Observed { value, output }))
    }

    /// The hardware model of `hostname`, from `aq show host`.
    pub async fn model(&self, hostname: &str) -> Result<String, HostError> {
        let action = "aq-model";
        let Some(host) = self.show_host(hostname).await? else {
            return Err(self.remote.unexpected(action, format!("Aquilon does not know {hostname}")));
        };
        host.value.model.ok_or_else(|| self.remote.unexpected(action, format!("no Model for {hostname}")))
    }

    pub async fn del_host(&self, hostname: &str) -> Result<CommandOutput, HostError> {
        self.remote.run_ok(&self.aq("aq-del-host", "del_host").args(["--hostname", hostname])).await
    }

    pub async fn del_interface(&self, machine: &str, interface: &str) -> Result<CommandOutput, HostError> {
        let command =
            self.aq("aq-del-interface", "del_interface").args(["--machine", machine, "--interface", interface]);
        self.remote.run_ok(&command).await
    }

    pub async fn del_interface_by_mac(&self, mac: &str) -> Result<CommandOutput, HostError> {
        self.remote.run_ok(&self.aq("aq-del-interface", "del_interface").args(["--mac", mac])).await
    }

    pub async fn del_interface_address(
        &self,
        machine: &str,
        interface: &str,
        ip: &str,
        network_environment: Option<&str>,
    ) -> Result<CommandOutput, HostError> {
        let mut command = self.aq("aq-del-interface-address", "del_interface_address").args([
            "--machine",
            machine,
            "--interface",
            interface,
            "--ip",
            ip,
        ]);
        if let Some(environment) = network_environment {
            command = command.args(["--network_environment", environment]);
        }
        self.remote.run_ok(&command).await
    }

    pub async fn del_machine(&self, machine: &str) -> Result<CommandOutput, HostError> {
        self.remote.run_ok(&self.aq("aq-del-machine", "del_machine").args(["--machine", machine])).await
    }

    /// `aq del_disk --machine M --disk D` (the SATA disk of A100 models).
    pub async fn del_disk(&self, machine: &str, disk: &str) -> Result<CommandOutput, HostError> {
        self.remote.run_ok(&self.aq("aq-del-disk", "del_disk").args(["--machine", machine, "--disk", disk])).await
    }

    /// Re-creates the host and its machine from NetBox.
    pub async fn netbox2aquilon(&self, hostname: &str, import: &Netbox2Aquilon) -> Result<CommandOutput, HostError> {
        let command = RemoteCommand::new("netbox2aquilon", "netbox2aquilon").args([
            "--hostname",
            hostname,
            "--archetype",
            &import.archetype,
            "--domain",
            &import.domain,
            "--osname",
            &import.osname,
            "--osversion",
            &import.osversion,
        ]);
        self.remote.run_ok(&command).await
    }

    /// Makes `interface` the boot interface and default route.
    pub async fn update_interface_boot(&self, hostname: &str, interface: &str) -> Result<CommandOutput, HostError> {
        let command = self.aq("aq-update-interface", "update_interface").args([
            "--hostname",
            hostname,
            "--interface",
            interface,
            "--boot",
            "--default_route",
        ]);
        self.remote.run_ok(&command).await
    }

    /// `aq manage --hostname H --domain D --force`.
    pub async fn manage(&self, hostname: &str, domain: &str) -> Result<CommandOutput, HostError> {
        let command = self.aq("aq-manage", "manage").args(["--hostname", hostname, "--domain", domain, "--force"]);
        self.remote.run_ok(&command).await
    }

    pub async fn make(&self, hostname: &str, profile: &MakeProfile) -> Result<CommandOutput, HostError> {
        let mut command = self.aq("aq-make", "make").args([
            "--hostname",
            hostname,
            "--personality",
            &profile.personality,
            "--osname",
            &profile.osname,
            "--osversion",
            &profile.osversion,
        ]);
        if let Some(archetype) = &profile.archetype {
            command = command.args(["--archetype", archetype]);
        }
        self.remote.run_ok(&command).await
    }

    pub async fn pxeswitch_install(&self, hostname: &str) -> Result<CommandOutput, HostError> {
        self.remote.run_ok(&self.aq("aq-pxeswitch", "pxeswitch").args(["--hostname", hostname, "--install"])).await
    }
}

fn is_not_found(output: &CommandOutput) -> bool {
    let text = format!("{}\n{}", output.stdout, output.stderr).to_lowercase();
    text.contains("not found")
}

/// Reads `aq show host` line by line. Indentation is ignored; a line may
/// hold several `Key: value` pairs (`Vendor: lenovo Model: hv-2022-lenovo`);
/// `Provides`/`Network Environment` lines belong to the last `Interface`.
pub fn parse_show_host(text: &str) -> AqHost {
    let mut host = AqHost::default();
    for line in text.lines() {
        for (key, value) in line_pairs(line) {
            let first_word = || value.split_whitespace().next().map(ToOwned::to_owned);
            match key.as_str() {
                "Primary Name" if host.primary_name.is_none() => {
                    host.primary_name = first_word();
                    host.primary_ip = bracketed_ip(&value);
                }
                "Machine" if host.machine.is_none() => host.machine = first_word(),
                "Vendor" if host.vendor.is_none() => host.vendor = first_word(),
                "Model" if host.model.is_none() => host.model = first_word(),
                "Disk" => host.disks.extend(first_word()),
                "Interface" => {
                    let mut words = value.split_whitespace();
                    let Some(name) = words.next() else { continue };
                    let mac = words.next().filter(|word| looks_like_mac(word)).map(ToOwned::to_owned);
                    host.interfaces.push(AqInterface { name: name.to_owned(), mac, ..AqInterface::default() });
                }
                "Provides" => {
                    if let (Some(interface), Some(ip)) = (host.interfaces.last_mut(), bracketed_ip(&value)) {
                        interface.ips.push(ip);
                    }
                }
                "Network Environment" => {
                    if let Some(interface) = host.interfaces.last_mut() {
                        interface.network_environment = first_word();
                    }
                }
                "Host Personality" | "Personality" if host.personality.is_none() => host.personality = first_word(),
                "Archetype" if host.archetype.is_none() => host.archetype = first_word(),
                "Operating System" if host.os_name.is_none() => host.os_name = first_word(),
                "Version" if host.os_version.is_none() => host.os_version = first_word(),
                "Domain" if host.domain.is_none() => host.domain = first_word(),
                "Sandbox" if host.sandbox.is_none() => host.sandbox = first_word(),
                "Status" if host.status.is_none() => host.status = first_word(),
                _ => {}
            }
        }
    }
    host
}

/// The `Key: value` pairs of one line. The first key may have several words
/// (`Operating System:`); later keys are one word (`Version:`).
fn line_pairs(line: &str) -> Vec<(String, String)> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let is_key = |word: &str| word.len() > 1 && word.ends_with(':') && !word[..word.len() - 1].contains(':');
    let Some(first) = words.iter().position(|word| is_key(word)) else { return Vec::new() };
    let mut pairs = Vec::new();
    let mut key = words[..=first].join(" ");
    let mut value: Vec<&str> = Vec::new();
    for word in &words[first + 1..] {
        let capitalised = word.chars().next().is_some_and(char::is_uppercase);
        if is_key(word) && capitalised && !value.is_empty() {
            pairs.push((key.trim_end_matches(':').to_owned(), value.join(" ")));
            key = (*word).to_owned();
            value.clear();
        } else {
            value.push(word);
        }
    }
    pairs.push((key.trim_end_matches(':').to_owned(), value.join(" ")));
    pairs
}

fn bracketed_ip(value: &str) -> Option<String> {
    let start = value.find('[')? + 1;
    let end = start + value[start..].find(']')?;
    let candidate = value[start..end].trim();
    candidate.parse::<std::net::IpAddr>().is_ok().then(|| candidate.to_owned())
}

fn looks_like_mac(word: &str) -> bool {
    let parts: Vec<&str> = word.split(':').collect();
    parts.len() == 6 && parts.iter().all(|part| part.len() == 2 && part.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssh::fake::{FakeShell, Reply};

    const SHOW_HOST: &str = "\
Primary Name: hv42.example.org [10.1.2.42]
  Machine: system7890
    Model Type: rackmount
    Primary Name: hv42.example.org [10.1.2.42]
    Building: r89
    Rack: r89-hv-12
      Row: a
      Column: 12
    Vendor: lenovo Model: hv-2022-lenovo
      Model Type: rackmount
    Cpu: xeon_6338 x 2
    Memory: 1048576 MB
    Disk: sda 480 GB sata (local) [boot]
    Disk: nvme0n1 3840 GB nvme (local)
    Interface: eth0 b8:ce:f6:12:34:56 [boot, default_route]
      Type: public
      Network Environment: internal
      Provides: hv42.example.org [10.1.2.42]
    Interface: bond0.100 b8:ce:f6:12:34:57
      Type: vlan
      Network Environment: internal
      Provides: hv42-storage.example.org [10.9.2.42]
    Interface: bmc0 0c:c4:7a:aa:bb:cc
      Type: management
      Network Environment: mgmt
      Provides: hv42-bmc.example.org [10.250.2.42]
  Domain: prod
  Status: ready
  Advertise Status: False
  Host Personality: kayobe-prod Archetype: cloud
    Environment: prod
    Stage: current
  Operating System: rocky Version: 8x-x86_64 Archetype: cloud
  Build Status: ready
";

    #[test]
    fn show_host_is_read_defensively() {
        let host = parse_show_host(SHOW_HOST);
        assert_eq!(host.primary_name.as_deref(), Some("hv42.example.org"));
        assert_eq!(host.primary_ip.as_deref(), Some("10.1.2.42"));
        assert_eq!(host.machine.as_deref(), Some("system7890"));
        assert_eq!((host.vendor.as_deref(), host.model.as_deref()), (Some("lenovo"), Some("hv-2022-lenovo")));
        assert_eq!(host.disks, vec!["sda", "nvme0n1"]);
        let names: Vec<&str> = host.interfaces.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, vec!["eth0", "bond0.100", "bmc0"]);
        assert_eq!(host.interfaces[2].ips, vec!["10.250.2.42"]);
        assert_eq!(host.interfaces[2].network_environment.as_deref(), Some("mgmt"));
        assert_eq!(host.interfaces[0].mac.as_deref(), Some("b8:ce:f6:12:34:56"));
        assert_eq!((host.personality.as_deref(), host.archetype.as_deref()), (Some("kayobe-prod"), Some("cloud")));
        assert_eq!((host.os_name.as_deref(), host.os_version.as_deref()), (Some("rocky"), Some("8x-x86_64")));
        assert_eq!((host.domain.as_deref(), host.status.as_deref()), (Some("prod"), Some("ready")));
        // Indentation changes nothing.
        let flat: String = SHOW_HOST.lines().map(|line| format!("{}\n", line.trim())).collect();
        assert_eq!(parse_show_host(&flat), host);
    }

    fn aquilon(shell: &Arc<FakeShell>) -> Aquilon {
        Aquilon::new(shell.clone(), Target::new("aqadmin", "aquilon.example.org"))
    }

    #[tokio::test]
    async fn model_lookup_and_unknown_host() {
        let shell = Arc::new(FakeShell::new());
        shell.on("aq show host --hostname hv42.example.org", Reply::ok(SHOW_HOST));
        shell.on(
            "aq show host --hostname hv43.example.org",
            Reply::exit(4, "", "Not Found: Host hv43.example.org not found.\n"),
        );
        let aq = aquilon(&shell);
        assert_eq!(aq.model("hv42.example.org").await.expect("model"), "hv-2022-lenovo");
        assert!(aq.show_host("hv43.example.org").await.expect("answered").is_none());
    }

    #[tokio::test]
    async fn every_call_checks_its_exit_status() {
        let shell = Arc::new(FakeShell::new());
        shell.on(
            "aq make --hostname hv42.example.org --personality kayobe-prod --osname rocky --osversion 9x-x86_64 --archetype cloud",
            Reply::exit(1, "", "Bad Request: personality kayobe-prod not found\n"),
        );
        shell.on("aq pxeswitch --hostname hv42.example.org --install", Reply::ok("ok\n"));
        let aq = aquilon(&shell);
        let profile = MakeProfile {
            personality: "kayobe-prod".into(),
            osname: "rocky".into(),
            osversion: "9x-x86_64".into(),
            archetype: Some("cloud".into()),
        };
        let err = aq.make("hv42.example.org", &profile).await.expect_err("failed");
        assert_eq!(
            err.to_string(),
            "aqadmin@aquilon.example.org: aq-make failed with exit status 1: Bad Request: personality kayobe-prod not found"
        );
        aq.pxeswitch_install("hv42.example.org").await.expect("switched");
    }
}
