//! What libvirt knows of the VMs beyond Nova: each guest's QEMU guest agent,
//! its host devices (GPU passthrough, vGPU, SR-IOV), its autostart flag, the
//! processes `guest-exec` started in it, and the domains Nova does not know.
//! The defaults change nothing: every guest has an agent that answers, no
//! host devices, and there is no orphan domain; `WorldOptions::guest_oddities`
//! adds the odd ones.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Serialize;
use serde_json::{json, Value};

use crate::world::WorldState;

/// The guest agent of a VM, as libvirt meets it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum GuestAgent {
    /// The channel is in the domain XML and the agent answers.
    #[default]
    Answers,
    /// The channel is there, nothing listens in the guest.
    NotConnected,
    /// No agent channel in the domain XML (the image lacks `hw_qemu_guest_agent`).
    NotConfigured,
    /// Answers, except while a live migration of its server is in progress.
    SilentWhileMigrating,
}

/// A host device given to a guest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum HostDevice {
    /// A whole PCI device (a GPU) passed through: `<hostdev type='pci'>`.
    GpuPassthrough { address: String },
    /// A mediated device (vGPU): `<hostdev type='mdev'>`.
    Vgpu { uuid: String },
    /// An SR-IOV virtual function as a NIC: `<interface type='hostdev'>`.
    SriovVf { address: String, mac: String },
}

/// What libvirt holds for one domain beyond what Nova shows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GuestProfile {
    pub agent: GuestAgent,
    pub host_devices: Vec<HostDevice>,
    pub autostart: bool,
}

/// A domain defined in libvirt that Nova does not know (a leftover of a
/// deleted instance, or one defined by hand).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OrphanDomain {
    pub host: String,
    pub name: String,
    pub uuid: String,
    pub running: bool,
    pub vcpus: u32,
    pub ram_mb: u64,
    pub autostart: bool,
}

/// A process `guest-exec` started.
#[derive(Clone, Debug)]
pub struct GuestExec {
    pub domain: String,
    pub pid: u64,
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub capture: bool,
    /// Simulated time it exits at.
    pub ends_at: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct Guests {
    /// By domain name; a domain without an entry has the default profile.
    pub profiles: BTreeMap<String, GuestProfile>,
    pub orphans: Vec<OrphanDomain>,
    /// Processes started by `guest-exec` and not yet reaped by `guest-exec-status`.
    #[serde(skip)]
    pub execs: Vec<GuestExec>,
    /// Every agent command received, in order (`DOMAIN COMMAND`).
    pub agent_commands: Vec<String>,
    /// Every state change made through `virsh` (`start DOMAIN`…): what went
    /// behind Nova's back when the domain is Nova's.
    pub libvirt_changes: Vec<String>,
    next_pid: u64,
}

impl Guests {
    pub fn profile(&self, domain: &str) -> GuestProfile {
        self.profiles.get(domain).cloned().unwrap_or_default()
    }

    pub fn profile_mut(&mut self, domain: &str) -> &mut GuestProfile {
        self.profiles.entry(domain.to_owned()).or_default()
    }
}

/// The largest output a `guest-exec` keeps per stream (QEMU's qga/commands.c
/// `GUEST_EXEC_MAX_OUTPUT`, 16 MiB); more is dropped and flagged truncated.
const GUEST_EXEC_MAX_OUTPUT: usize = 16 * 1024 * 1024;

impl WorldState {
    /// The odd guests on the first campaign hosts (sorted by domain name):
    /// host 1: a GPU passed through, a guest without an agent channel, and an
    /// orphan domain; host 2: an SR-IOV VF, a vGPU, an agent that is not
    /// running; host 3: a guest that stops answering during its live migration.
    pub fn add_guest_oddities(&mut self) {
        let hosts: Vec<String> = self.campaign_hosts().take(3).map(|host| host.fqdn.clone()).collect();
        let domains_of = |world: &WorldState, fqdn: &str| -> Vec<String> {
            let mut names: Vec<String> = world
                .servers_on(fqdn)
                .filter(|server| server.status != "ERROR")
                .map(|server| server.instance_name.clone())
                .collect();
            names.sort();
            names
        };
        if let Some(fqdn) = hosts.first() {
            let names = domains_of(self, fqdn);
            if let Some(name) = names.first() {
                self.guests.profile_mut(name).host_devices =
                    vec![HostDevice::GpuPassthrough { address: "0000:81:00.0".into() }];
            }
            if let Some(name) = names.get(1) {
                self.guests.profile_mut(name).agent = GuestAgent::NotConfigured;
            }
            let number = self.next_id();
            self.guests.orphans.push(OrphanDomain {
                host: fqdn.clone(),
                name: format!("instance-{:08x}", 0xf000 + number),
                uuid: format!("0badc0de-0000-4000-8000-{number:012}"),
                running: true,
                vcpus: 2,
                ram_mb: 2048,
                autostart: false,
            });
        }
        if let Some(fqdn) = hosts.get(1) {
            let names = domains_of(self, fqdn);
            if let Some(name) = names.first() {
                self.guests.profile_mut(name).host_devices =
                    vec![HostDevice::SriovVf { address: "0000:3b:02.1".into(), mac: "fa:16:3e:5a:01:02".into() }];
            }
            if let Some(name) = names.get(1) {
                self.guests.profile_mut(name).host_devices =
                    vec![HostDevice::Vgpu { uuid: "a9b8c7d6-1234-4abc-9def-0123456789ab".into() }];
            }
            if let Some(name) = names.get(2) {
                self.guests.profile_mut(name).agent = GuestAgent::NotConnected;
            }
        }
        if let Some(fqdn) = hosts.get(2) {
            if let Some(name) = domains_of(self, fqdn).first() {
                self.guests.profile_mut(name).agent = GuestAgent::SilentWhileMigrating;
            }
        }
    }

    /// Whether a live migration of the server behind `domain` is in progress.
    fn live_migrating(&self, domain: &str) -> bool {
        let Some(server) = self.servers.values().find(|server| server.instance_name == domain) else {
            return false;
        };
        self.migrations.iter().any(|m| {
            m.server_id == server.id
                && m.migration_type == "live-migration"
                && ["queued", "preparing", "running", "post-migrating"].contains(&m.status.as_str())
        })
    }

    /// `virsh qemu-agent-command DOMAIN JSON` on a running domain: the agent's
    /// JSON reply, or virsh's error text (without the `error: ` prefix).
    /// Messages as libvirt's qemu driver and QEMU's qga report them.
    pub fn agent_command(&mut self, domain: &str, guest_name: &str, request: &str) -> Result<String, String> {
        self.advance_migrations();
        let profile = self.guests.profile(domain);
        let request: Value = serde_json::from_str(request)
            .map_err(|err| format!("internal error: cannot parse json {request}: {err}"))?;
        let command = request.get("execute").and_then(Value::as_str).unwrap_or_default().to_owned();
        self.guests.agent_commands.push(format!("{domain} {command}"));
        match profile.agent {
            GuestAgent::NotConfigured => return Err("argument unsupported: QEMU guest agent is not configured".into()),
            GuestAgent::NotConnected => {
                return Err("Guest agent is not responding: QEMU guest agent is not connected".into())
            }
            GuestAgent::SilentWhileMigrating if self.live_migrating(domain) => {
                return Err("Guest agent is not responding: Guest agent not available for now".into())
            }
            _ => {}
        }
        let arguments = request.get("arguments").cloned().unwrap_or(json!({}));
        let failed = |desc: String| format!("internal error: unable to execute QEMU agent command '{command}': {desc}");
        let result = match command.as_str() {
            "guest-ping" => json!({}),
            "guest-exec" => {
                let path = arguments
                    .get("path")
                    .and_then(Value::as_str)
                    .ok_or_else(|| failed("Parameter 'path' is missing".into()))?;
                let args: Vec<String> = arguments
                    .get("arg")
                    .and_then(Value::as_array)
                    .map(|list| list.iter().filter_map(Value::as_str).map(ToOwned::to_owned).collect())
                    .unwrap_or_default();
                let input = match arguments.get("input-data").and_then(Value::as_str) {
                    Some(data) => base64::engine::general_purpose::STANDARD
                        .decode(data)
                        .map_err(|_| failed("Invalid parameter 'input-data'".into()))?,
                    None => Vec::new(),
                };
                let capture =
                    arguments.get("capture-output").is_some_and(|v| v.as_bool() == Some(true) || v.is_string());
                let (exit_code, stdout, stderr, secs) =
                    run_in_guest(guest_name, path, &args, &input).ok_or_else(|| {
                        failed(format!("Failed to execute child process “{path}” (No such file or directory)"))
                    })?;
                self.guests.next_pid += 1;
                let pid = 1000 + self.guests.next_pid;
                let now = self.clock.now(self.time_scale);
                self.guests.execs.push(GuestExec {
                    domain: domain.to_owned(),
                    pid,
                    exit_code,
                    stdout,
                    stderr,
                    capture,
                    ends_at: now + secs,
                });
                json!({ "pid": pid })
            }
            "guest-exec-status" => {
                let pid = arguments
                    .get("pid")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| failed("Parameter 'pid' is missing".into()))?;
                let index = self
                    .guests
                    .execs
                    .iter()
                    .position(|exec| exec.domain == domain && exec.pid == pid)
                    .ok_or_else(|| failed("Invalid parameter 'pid'".into()))?;
                let now = self.clock.now(self.time_scale);
                if self.guests.execs[index].ends_at > now {
                    json!({ "exited": false })
                } else {
                    // qga forgets a process once its exit has been reported.
                    let exec = self.guests.execs.remove(index);
                    let mut status = json!({ "exited": true, "exitcode": exec.exit_code });
                    if exec.capture {
                        let encode = |bytes: &[u8]| {
                            base64::engine::general_purpose::STANDARD
                                .encode(&bytes[..bytes.len().min(GUEST_EXEC_MAX_OUTPUT)])
                        };
                        if !exec.stdout.is_empty() {
                            status["out-data"] = json!(encode(&exec.stdout));
                        }
                        if !exec.stderr.is_empty() {
                            status["err-data"] = json!(encode(&exec.stderr));
                        }
                        if exec.stdout.len() > GUEST_EXEC_MAX_OUTPUT {
                            status["out-truncated"] = json!(true);
                        }
                    }
                    status
                }
            }
            other => return Err(failed(format!("The command {other} has not been found"))),
        };
        Ok(json!({ "return": result }).to_string())
    }
}

/// A few programs of the guest: exit code, stdout, stderr and how many
/// simulated seconds they run. `None`: no such program.
fn run_in_guest(guest_name: &str, path: &str, args: &[String], input: &[u8]) -> Option<(i32, Vec<u8>, Vec<u8>, f64)> {
    let program = path.rsplit('/').next().unwrap_or(path);
    let done = |code: i32, out: Vec<u8>, err: Vec<u8>| Some((code, out, err, 0.0));
    match program {
        "hostname" => done(0, format!("{guest_name}\n").into_bytes(), Vec::new()),
        "uptime" => {
            done(0, b" 09:41:07 up 3 days,  2:11,  0 users,  load average: 0.08, 0.03, 0.01\n".to_vec(), Vec::new())
        }
        "cat" if args.is_empty() => done(0, input.to_vec(), Vec::new()),
        "cat" => {
            let mut out = Vec::new();
            let mut err = Vec::new();
            for file in args {
                match file.as_str() {
                    "/etc/hostname" => out.extend_from_slice(format!("{guest_name}\n").as_bytes()),
                    "-" => out.extend_from_slice(input),
                    other => err.extend_from_slice(format!("cat: {other}: No such file or directory\n").as_bytes()),
                }
            }
            done(if err.is_empty() { 0 } else { 1 }, out, err)
        }
        "echo" => done(0, format!("{}\n", args.join(" ")).into_bytes(), Vec::new()),
        "true" => done(0, Vec::new(), Vec::new()),
        "false" => done(1, Vec::new(), Vec::new()),
        "sleep" => {
            let secs: f64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(0.0);
            Some((0, Vec::new(), Vec::new(), secs.max(0.0)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::WorldOptions;

    fn world() -> (WorldState, String) {
        let mut world = WorldState::generate(&WorldOptions {
            hosts: 3,
            oddities: false,
            vms_per_host: Some(3),
            ..Default::default()
        });
        world.add_guest_oddities();
        let host = world.campaign_hosts().next().unwrap().fqdn.clone();
        let mut names: Vec<String> = world.servers_on(&host).map(|s| s.instance_name.clone()).collect();
        names.sort();
        (world, names[2].clone())
    }

    #[test]
    fn exec_and_status_follow_the_qga_shapes() {
        let (mut world, domain) = world();
        assert_eq!(world.agent_command(&domain, "vm", r#"{"execute":"guest-ping"}"#).unwrap(), r#"{"return":{}}"#);
        let started = world
            .agent_command(
                &domain,
                "vm",
                r#"{"execute":"guest-exec","arguments":{"path":"cat","input-data":"aGVsbG8=","capture-output":true}}"#,
            )
            .unwrap();
        let pid = serde_json::from_str::<Value>(&started).unwrap()["return"]["pid"].as_u64().unwrap();
        let status = world
            .agent_command(&domain, "vm", &format!(r#"{{"execute":"guest-exec-status","arguments":{{"pid":{pid}}}}}"#))
            .unwrap();
        assert_eq!(status, r#"{"return":{"exitcode":0,"exited":true,"out-data":"aGVsbG8="}}"#);
        let again = world.agent_command(
            &domain,
            "vm",
            &format!(r#"{{"execute":"guest-exec-status","arguments":{{"pid":{pid}}}}}"#),
        );
        assert!(again.unwrap_err().ends_with("Invalid parameter 'pid'"));
    }

    #[test]
    fn a_guest_without_a_channel_says_so_as_libvirt_does() {
        let (mut world, _) = world();
        let host = world.campaign_hosts().next().unwrap().fqdn.clone();
        let mut names: Vec<String> = world.servers_on(&host).map(|s| s.instance_name.clone()).collect();
        names.sort();
        let err = world.agent_command(&names[1], "vm", r#"{"execute":"guest-ping"}"#).unwrap_err();
        assert_eq!(err, "argument unsupported: QEMU guest agent is not configured");
        let err = world.agent_command(&names[2], "vm", r#"{"execute":"guest-nope"}"#).unwrap_err();
        assert!(err.contains("The command guest-nope has not been found"), "{err}");
    }
}
