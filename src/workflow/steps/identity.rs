//! The host's identity: its canonical facts, read over SSH and recorded in
//! the journal with what NetBox, Nova and Aquilon say, then checked
//! against them (pre-drain) or against the machine recorded before the
//! reinstall (post-reinstall).

use crate::hosts::aquilon::Aquilon;
use crate::identity::{compare, netbox_disagreements, HostFacts, IdentityRecord};
use crate::ssh::{RemoteCommand, Target};
use crate::workflow::action::{Action, ActionError, BoxFuture, Decision};
use crate::workflow::context::HostContext;

/// The journal's kind of row for an observation of the host's identity.
pub const OBSERVED: &str = "observed";

/// Steps whose observation is the machine as it was before the reinstall.
pub const BEFORE_REINSTALL: [&str; 2] = ["pre-drain", "pre-reinstall"];

/// Reads the facts as root.
async fn host_facts(host: &HostContext) -> Result<HostFacts, ActionError> {
    let shell = host.run.shell()?.clone();
    HostFacts::gather(shell.as_ref(), &Target::root(host.host.as_str()), |command| command)
        .await
        .map_err(|err| ActionError(err.to_string()))
}

/// What NetBox, Nova, Aquilon and the host's `compute_id` say of the host.
async fn site_record(host: &mut HostContext, facts: HostFacts) -> Result<IdentityRecord, ActionError> {
    let mut record = IdentityRecord { host: facts, ..IdentityRecord::default() };
    if let (Some(device), Ok(netbox)) = (host.facts.netbox_device.clone(), host.run.netbox()) {
        record.netbox_serial = device.serial.clone();
        record.netbox_macs = netbox
            .interfaces(device.id)
            .await?
            .into_iter()
            .filter_map(|interface| interface.mac_address.map(|mac| (interface.name, mac.to_lowercase())))
            .collect();
    }
    if let Ok(nova) = host.run.nova() {
        record.nova_hypervisor_uuid = nova.hypervisor_of(host.host.as_str()).await?.map(|hv| hv.id);
    }
    let path = host.run.credentials.workflow.nova_compute_id_path.clone();
    let read = RemoteCommand::script("read-compute-id", r#"cat "$1" 2>/dev/null || true"#, &[path.as_str()]);
    let compute_id = host.run_as_root(&read).await?.stdout.trim().to_owned();
    record.compute_id = (!compute_id.is_empty()).then(|| compute_id.chars().take(64).collect());
    if let Some(aquilon) = &host.run.credentials.aquilon {
        let aq = Aquilon::new(host.run.shell()?.clone(), Target::new(&aquilon.username, &aquilon.host));
        // A turn as every Aquilon command takes: the limit holds across runs.
        let slot = host.run.aquilon_turn().await;
        record.aquilon_machine = aq.show_host(host.host.as_str()).await?.and_then(|shown| shown.value.machine);
        drop(slot);
    }
    Ok(record)
}

/// Keeps the record in the host's identity history (not in a dry run).
pub fn record(host: &HostContext, kind: &str, record: &IdentityRecord) -> Result<(), ActionError> {
    let (Some(journal), false) = (&host.run.journal, host.run.dry_run) else { return Ok(()) };
    let json = serde_json::to_string(record).map_err(|err| ActionError(format!("identity record: {err}")))?;
    journal
        .record_identity(host.host.as_str(), host.run.step.name(), &host.run.run_id, kind, &json)
        .map_err(|err| ActionError(err.to_string()))
}

/// The machine recorded before the reinstall, if any.
pub fn recorded_before_reinstall(host: &HostContext) -> Result<Option<IdentityRecord>, ActionError> {
    let Some(journal) = &host.run.journal else { return Ok(None) };
    let row = journal
        .latest_identity(host.host.as_str(), &BEFORE_REINSTALL, OBSERVED)
        .map_err(|err| ActionError(err.to_string()))?;
    Ok(row.and_then(|row| serde_json::from_str(&row.record).ok()))
}

/// pre-drain: the canonical facts, recorded; NetBox must agree with the host
/// on its serial and its MACs (BMC and Ethernet).
pub struct IdentityCheck;

impl Action for IdentityCheck {
    fn name(&self) -> &'static str {
        "identity"
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            let facts = host_facts(host).await?;
            let site = site_record(host, facts).await?;
            record(host, OBSERVED, &site)?;
            let observed = site.host.summary();
            let bmc_prefix = host.run.credentials.workflow.netbox.bmc_interface.clone();
            let problems = netbox_disagreements(&site, &bmc_prefix);
            if problems.is_empty() {
                Ok(Decision::passed(observed))
            } else {
                Ok(Decision::blocked(observed, format!("NetBox and the host disagree: {}", problems.join("; "))))
            }
        })
    }
}

/// post-reinstall: the machine answering is the one recorded before the
/// reinstall (system UUID, serial, MACs); its new machine-id and host keys
/// are recorded as the changes a reinstall makes.
pub struct SameMachine;

impl Action for SameMachine {
    fn name(&self) -> &'static str {
        "identity"
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            let facts = host_facts(host).await?;
            let site = site_record(host, facts).await?;
            record(host, OBSERVED, &site)?;
            let Some(before) = recorded_before_reinstall(host)? else {
                return Ok(Decision::blocked(
                    site.host.summary(),
                    "identity: no record of the machine before the reinstall (run pre-drain or pre-reinstall first)",
                ));
            };
            same_machine_decision(&before.host, &site.host)
        })
    }
}

/// The decision on the machine answering now against the one recorded.
pub fn same_machine_decision(before: &HostFacts, now: &HostFacts) -> Result<Decision, ActionError> {
    let comparison = compare(before, now);
    if !comparison.same_machine() {
        return Ok(Decision::blocked(
            now.summary(),
            format!(
                "identity: the machine answering is not the one recorded before the reinstall: {}",
                comparison.mismatches.join("; ")
            ),
        ));
    }
    let mut seen = format!("the same machine (system UUID {}, serial {})", now.system_uuid, now.serial);
    if !comparison.expected_changes.is_empty() {
        seen.push_str(&format!("; as expected after a reinstall: {}", comparison.expected_changes.join("; ")));
    }
    Ok(Decision::passed(seen))
}

/// A reinstalled host's new key, checked with the machine's facts.
#[derive(Clone, Debug)]
pub struct NewHostKey {
    /// The known_hosts lines the verifying connection recorded.
    pub lines: Vec<String>,
    pub old_fingerprints: Vec<String>,
    pub new_fingerprints: Vec<String>,
    pub record: IdentityRecord,
}

/// Runs `command` as root through sudo, as the settings say.
fn through_sudo(sudo: &crate::config::credentials::Sudo, command: RemoteCommand) -> RemoteCommand {
    let wrapped = match (sudo.enabled, &sudo.password) {
        (true, Some(password)) => RemoteCommand::new(command.action.clone(), "sudo")
            .args(["-S", "-p", ""])
            .stdin(crate::secret::Secret::new(format!("{}\n", password.expose()))),
        _ => RemoteCommand::new(command.action.clone(), "sudo").arg("-n"),
    };
    wrapped.arg(command.program).args(command.args)
}

/// post-reinstall: the host's SSH host key, after a reinstall that made a
/// new one (`ssh.reinstalled_host_keys`). With `verify-identity`, a changed
/// key is accepted for one connection only for a host expected back from
/// its reinstall; the machine's canonical facts are read through it at once
/// and compared with the record from before the reinstall; only the same
/// machine gets its new key pinned in the tool's known-hosts file. With
/// `ssh-ca`, a certificate of the site's host CA is the proof (a changed
/// key without one is refused); with `strict`, every changed key is refused.
pub struct ReinstalledHostKey;

impl Action for ReinstalledHostKey {
    fn name(&self) -> &'static str {
        "host-key"
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            use crate::config::credentials::ReinstalledHostKeys as Policy;
            let ssh = host.run.credentials.ssh.as_ref().ok_or_else(|| ActionError("no ssh section".into()))?;
            let operator = Target::new(&ssh.username, host.host.as_str());
            let probe = RemoteCommand::new("host-key-probe", "true");
            match host.run.shell()?.run(&operator, &probe).await {
                Err(crate::ssh::SshError::HostKeyMismatch { .. }) => {}
                Ok(_) => return Ok(Decision::passed("the host key is one known for the host")),
                // Not about the key: the actions that need the host report it.
                Err(err) => return Ok(Decision::passed(format!("host key not checked: {err}"))),
            }
            let observed = "the host presents a new SSH host key";
            let expected_back = match &host.run.journal {
                Some(journal) => {
                    let name = host.host.as_str();
                    let step_done =
                        |step: &str| journal.step_succeeded(name, step).map_err(|e| ActionError(e.to_string()));
                    step_done("pre-reinstall")? && !step_done("post-reinstall")?
                }
                None => false,
            };
            if !expected_back {
                return Ok(Decision::blocked(
                    observed,
                    format!(
                        "the host key changed but {} is not expected back from a reinstall (pre-reinstall has not \
                         succeeded, or post-reinstall already did): refusing it; check the machine, then replace \
                         its entry in {}",
                        host.host,
                        ssh.known_hosts.display()
                    ),
                ));
            }
            match ssh.reinstalled_host_keys {
                Policy::Strict => {
                    return Ok(Decision::blocked(
                        observed,
                        format!(
                            "ssh.reinstalled_host_keys is strict: the key changed with the reinstall and is refused. \
                             Check that the machine is the one drained (serial and system UUID on its console or \
                             BMC), then run `ssh-keygen -R {host} -f {known}` and add its new key (`ssh-keyscan`), \
                             or set ssh.reinstalled_host_keys: verify-identity to let hvmigrate check its canonical \
                             facts and pin the new key",
                            host = host.host,
                            known = ssh.known_hosts.display()
                        ),
                    ))
                }
                Policy::SshCa => {
                    return Ok(Decision::blocked(
                        observed,
                        format!(
                            "ssh.reinstalled_host_keys is ssh-ca: the new host key carries no certificate of a host \
                             CA trusted in {known} (`@cert-authority`). Sign it with the site's host CA \
                             (`ssh-keygen -s CA_KEY -h -I {host} -n {host} /etc/ssh/ssh_host_ed25519_key.pub`) and \
                             set HostCertificate in the host's sshd_config",
                            host = host.host,
                            known = ssh.known_hosts.display()
                        ),
                    ))
                }
                Policy::VerifyIdentity => {}
            }
            let Some(before) = recorded_before_reinstall(host)? else {
                return Ok(Decision::blocked(
                    observed,
                    "identity: no record of the machine before the reinstall, so its new key cannot be checked",
                ));
            };
            // One connection that accepts whatever key the host presents, into a
            // private file of its own: nothing it says is trusted until checked.
            let folder = tempfile::Builder::new()
                .prefix("hvmigrate-verify.")
                .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .tempdir()
                .map_err(|err| ActionError(format!("a private folder for the verifying connection: {err}")))?;
            let accepted = folder.path().join("known_hosts");
            let mut options = crate::ssh::SshOptions::from_config(ssh);
            options.known_hosts = accepted.clone();
            options.pinned_known_hosts = None;
            options.accept_new_host_keys = true;
            let pool = crate::ssh::SshPool::new(options)
                .map_err(|err| ActionError(format!("cannot prepare the verifying connection: {err}")))?;
            let gathered = HostFacts::gather(&pool, &operator, |command| through_sudo(&ssh.sudo, command)).await;
            pool.close_all().await;
            drop(pool);
            let facts = gathered.map_err(|err| ActionError(format!("identity: {err}")))?;
            let lines: Vec<String> = std::fs::read_to_string(&accepted)
                .unwrap_or_default()
                .lines()
                .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
                .map(str::to_owned)
                .collect();
            let new_fingerprints: Vec<String> =
                lines.iter().filter_map(|line| crate::identity::fingerprint(line)).collect();
            let site = IdentityRecord { host: facts.clone(), ..IdentityRecord::default() };
            record(host, OBSERVED, &site)?;
            if new_fingerprints.is_empty() || !new_fingerprints.iter().all(|fp| facts.host_keys.contains(fp)) {
                return Ok(Decision::blocked(
                    observed,
                    format!(
                        "identity: the key presented ({}) is not one the host reports having ({}); not trusted",
                        new_fingerprints.join(" "),
                        facts.host_keys.join(" ")
                    ),
                ));
            }
            let comparison = compare(&before.host, &facts);
            if !comparison.same_machine() {
                return Ok(Decision::blocked(
                    format!("{observed} ({}); {}", new_fingerprints.join(" "), facts.summary()),
                    format!(
                        "identity: the machine answering is not the one drained, its new key is not trusted: {}",
                        comparison.mismatches.join("; ")
                    ),
                ));
            }
            let plan = format!(
                "pin the new host key {} (was {}) in {}: the same machine (system UUID {}, serial {})",
                new_fingerprints.join(" "),
                before.host.host_keys.join(" "),
                crate::ssh::pinned::pinned_file(ssh).display(),
                facts.system_uuid,
                facts.serial
            );
            host.facts.new_host_key = Some(NewHostKey {
                lines,
                old_fingerprints: before.host.host_keys.clone(),
                new_fingerprints,
                record: site,
            });
            Ok(Decision::Do { observed: observed.into(), plan, previous: None })
        })
    }

    fn act<'a>(
        &'a self,
        host: &'a mut HostContext,
    ) -> BoxFuture<'a, Result<crate::workflow::action::Change, ActionError>> {
        Box::pin(async move {
            let ssh = host.run.credentials.ssh.as_ref().ok_or_else(|| ActionError("no ssh section".into()))?;
            let key = host.facts.new_host_key.clone().expect("observed before acting");
            let file = crate::ssh::pinned::pinned_file(ssh);
            crate::ssh::pinned::pin(&file, host.host.as_str(), &key.lines)
                .map_err(|err| ActionError(format!("cannot pin the new host key in {}: {err}", file.display())))?;
            record(host, "pinned-host-key", &key.record)?;
            Ok(crate::workflow::action::Change(format!(
                "new SSH host key {} pinned in {} after the machine's identity was checked; old key {}",
                key.new_fingerprints.join(" "),
                file.display(),
                key.old_fingerprints.join(" ")
            )))
        })
    }
}

/// The compute node UUID saved before the reinstall.
fn saved_node_uuid(host: &HostContext) -> Result<Option<String>, ActionError> {
    Ok(recorded_before_reinstall(host)?.and_then(|record| record.nova_hypervisor_uuid))
}

/// pre-reinstall: the machine's facts and Nova's node identity (the
/// hypervisor's `id` at microversion 2.53+, which is the UUID nova-compute
/// keeps in `compute_id`), saved before the reinstall wipes the disk. The
/// host's `compute_id`, when present, must name the same node.
pub struct NodeIdentitySaved;

impl Action for NodeIdentitySaved {
    fn name(&self) -> &'static str {
        "identity"
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            let facts = host_facts(host).await?;
            let site = site_record(host, facts).await?;
            let Some(uuid) = site.nova_hypervisor_uuid.clone() else {
                return Ok(Decision::blocked(
                    site.host.summary(),
                    "Nova has no hypervisor for the host: no node identity to save",
                ));
            };
            if !uuid.contains('-') {
                return Ok(Decision::blocked(
                    format!("hypervisor id {uuid}"),
                    "Nova answers hypervisor ids, not UUIDs (microversion below 2.53): the node identity cannot be saved",
                ));
            }
            if let Some(file) = site.compute_id.as_deref().filter(|file| *file != uuid) {
                return Ok(Decision::blocked(
                    format!("Nova hypervisor {uuid}, compute_id {file}"),
                    format!(
                        "Nova's hypervisor UUID {uuid} and the host's {} ({file}) differ: not saving a node identity in doubt",
                        host.run.credentials.workflow.nova_compute_id_path
                    ),
                ));
            }
            record(host, OBSERVED, &site)?;
            let file =
                if site.compute_id.is_some() { "the host's compute_id agrees" } else { "no compute_id on the host" };
            Ok(Decision::passed(format!("{}; Nova node {uuid} saved ({file})", site.host.summary())))
        })
    }
}

/// The host's `compute_id` holds the saved node UUID, owned by nova-compute
/// (post-reinstall, and adoption before Kolla deploys nova-compute).
pub struct RestoreNodeIdentity;

impl Action for RestoreNodeIdentity {
    fn name(&self) -> &'static str {
        "restore-node-identity"
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            let workflow = &host.run.credentials.workflow;
            if !workflow.nova_compute_id_restore {
                return Ok(Decision::passed("not restored (workflow.nova_compute_id_restore is false)"));
            }
            let path = workflow.nova_compute_id_path.clone();
            let Some(uuid) = saved_node_uuid(host)? else {
                return Ok(Decision::blocked(
                    "no saved node identity",
                    "no Nova node UUID was saved before the reinstall (pre-reinstall records it)",
                ));
            };
            let read = RemoteCommand::script("read-compute-id", r#"cat "$1" 2>/dev/null || true"#, &[path.as_str()]);
            let current = host.run_as_root(&read).await?.stdout.trim().to_owned();
            if current == uuid {
                return Ok(Decision::done(format!("{path} holds node {uuid}")));
            }
            let observed = if current.is_empty() { format!("no {path}") } else { format!("{path} holds {current}") };
            Ok(Decision::act(
                observed,
                format!("write node {uuid} to {path} (owner {}, mode 0644)", workflow.nova_compute_id_owner),
            ))
        })
    }

    fn act<'a>(
        &'a self,
        host: &'a mut HostContext,
    ) -> BoxFuture<'a, Result<crate::workflow::action::Change, ActionError>> {
        Box::pin(async move {
            let workflow = &host.run.credentials.workflow;
            let path = workflow.nova_compute_id_path.clone();
            let owner = workflow.nova_compute_id_owner.clone();
            let uuid = saved_node_uuid(host)?.expect("observed before acting");
            // Written aside, then renamed: nova-compute never reads half a UUID.
            let script = r#"mkdir -p "$(dirname "$1")" && printf %s "$2" > "$1.hvmigrate" && chown "$3" "$1.hvmigrate" && chmod 0644 "$1.hvmigrate" && mv "$1.hvmigrate" "$1""#;
            let command =
                RemoteCommand::script("write-compute-id", script, &[path.as_str(), uuid.as_str(), owner.as_str()]);
            let output = host.run_as_root(&command).await?;
            if !output.success() {
                host.record_output("write compute_id", &output);
                return Err(ActionError(format!("writing {path} failed with exit status {}", output.exit_status)));
            }
            Ok(crate::workflow::action::Change(format!("wrote Nova node {uuid} to {path} (owner {owner}, mode 0644)")))
        })
    }
}

/// adoption, after Kolla deployed nova-compute: it started as the same
/// node. Without its `compute_id` it refuses to start (its log says why);
/// Nova's hypervisor must have kept the UUID saved before the reinstall.
pub struct NodeIdentityKept;

impl Action for NodeIdentityKept {
    fn name(&self) -> &'static str {
        "node-identity"
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            let path = host.run.credentials.workflow.nova_compute_id_path.clone();
            let read = RemoteCommand::script(
                "nova-compute-identity",
                r#"if [ -f "$1" ]; then echo present; else echo missing; tail -n 20 /var/log/kolla/nova/nova-compute.log 2>/dev/null; fi"#,
                &[path.as_str()],
            );
            let output = host.run_as_root(&read).await?;
            if output.stdout.starts_with("missing") {
                let refusal = output
                    .stdout
                    .lines()
                    .rev()
                    .find(|line| line.contains("ERROR") || line.contains("Exception"))
                    .map(|line| crate::untrusted::head_and_tail(line.trim(), 600).into_owned())
                    .unwrap_or_else(|| "(nothing in /var/log/kolla/nova/nova-compute.log)".into());
                return Ok(Decision::blocked(
                    format!("no {path}"),
                    format!("nova-compute has no node identity and refuses to start: {refusal}"),
                ));
            }
            let saved = saved_node_uuid(host)?;
            let now = host.run.nova()?.hypervisor_of(host.host.as_str()).await?.map(|hv| hv.id);
            match (saved, now) {
                (Some(saved), Some(now)) if saved == now => {
                    Ok(Decision::passed(format!("Nova hypervisor {now} unchanged")))
                }
                (Some(saved), Some(now)) => Ok(Decision::blocked(
                    format!("Nova hypervisor {now}"),
                    format!(
                        "Nova's hypervisor UUID changed from {saved} to {now}: nova-compute came back as another node"
                    ),
                )),
                (saved, None) => Ok(Decision::blocked(
                    format!("saved node {}", saved.unwrap_or_default()),
                    "Nova has no hypervisor for the host after the deploy",
                )),
                (None, Some(now)) => Ok(Decision::passed(format!("Nova hypervisor {now} (no UUID saved to compare)"))),
            }
        })
    }
}
