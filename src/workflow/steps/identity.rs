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
        let slot = host.run.aquilon_slots.clone().acquire_owned().await;
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
