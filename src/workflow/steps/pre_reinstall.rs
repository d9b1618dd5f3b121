//! pre-reinstall: prepare the host for its PXE reinstall. Destructive, so the
//! strict checks come first: the ticket can move, and every source agrees
//! the host is empty. Then alerts are silenced, NetBox says `planned`, the
//! Mellanox cards boot UEFI PXE, and Aquilon is told to reinstall the host.

use std::collections::HashMap;
use std::sync::Arc;

use crate::clients::alertmanager::{lasts_until, Matcher, NewSilence};
use crate::clients::netbox::DeviceChange;
use crate::config::Workflow;
use crate::hosts::aquilon::{AqHost, Aquilon, MakeProfile, Netbox2Aquilon};
use crate::hosts::kayobe::{HostOutcome as KayobeOutcome, KayobeRun};
use crate::hosts::Observed;
use crate::ssh::{RemoteCommand, Target};
use crate::workflow::action::{Action, ActionError, BoxFuture, Change, Decision};
use crate::workflow::context::{HostContext, RecordedOutput, RunContext};
use crate::workflow::drain::in_progress;
use crate::workflow::Step;

use super::common::{hypervisor, pci_devices, silence_matchers, GpuCheck, JiraStatus, NetBoxDevice};
use super::{JiraStatuses, StepPlan};

const STEP: &str = "pre-reinstall";
const REIMPORT: &str = "aquilon-reimport";
const MELLANOX: &str = "mellanox-uefi-pxe";
const PXESWITCH: &str = "aquilon-pxeswitch";

pub fn plan(workflow: &Workflow) -> StepPlan {
    let transitions = &workflow.transitions;
    StepPlan {
        step: Step::PreReinstall,
        actions: vec![
            Box::new(JiraStatus {
                name: "jira-start",
                target: |t| &t.working_on_pre_bios,
                finished: |t| &t.ready_for_reinstall,
            }),
            Box::new(HostEmpty),
            // Still disabled: someone may have re-enabled it since pre-drain.
            Box::new(super::pre_drain::DisableCompute),
            Box::new(NetBoxDevice { check_pre_drain_status: false }),
            // The machine and Nova's node identity, saved before the disk is wiped.
            Box::new(super::identity::NodeIdentitySaved),
            Box::new(BlockDevices),
            Box::new(GpuCheck),
            Box::new(Silences),
            Box::new(NetBoxPlanned),
            Box::new(MellanoxUefiPxe),
            Box::new(AquilonReimport),
            Box::new(AquilonInterfaces),
            Box::new(AquilonDisks),
            Box::new(AquilonMake),
            Box::new(AquilonPxeswitch),
            Box::new(IpmiAddress),
        ],
        jira: JiraStatuses {
            on_success: Some(transitions.ready_for_reinstall.clone()),
            on_failure: Some(transitions.pre_bios_failed.clone()),
        },
        services: &["jira", "netbox", "openstack", "alertmanager", "ssh", "aquilon"],
    }
}

/// Whether an earlier run of this campaign did `action` on the host.
fn done_before(host: &HostContext, action: &str) -> Result<bool, ActionError> {
    match &host.run.journal {
        Some(journal) => journal
            .action_ever_done(host.host.as_str(), STEP, action)
            .map_err(|err| ActionError(format!("cannot read the journal: {err}"))),
        None => Ok(false),
    }
}

/// Nova, its migrations and libvirt all say the host is empty. Any VM
/// anywhere blocks: a reinstall would destroy it.
struct HostEmpty;

impl Action for HostEmpty {
    fn name(&self) -> &'static str {
        "empty-check"
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            let fqdn = host.host.as_str();
            let nova = host.run.nova()?;
            let servers = nova.servers_on_host(fqdn).await?;
            let migrations: Vec<_> = nova.migrations(fqdn, None).await?.into_iter().filter(in_progress).collect();
            let domains = hypervisor(host)?.virsh_list().await?;
            host.record_output("libvirt domains", &domains.output);
            let observed = format!(
                "Nova: {} servers, {} migrations under way; libvirt: {} domains",
                servers.len(),
                migrations.len(),
                domains.value.len()
            );
            let mut problems = Vec::new();
            if !servers.is_empty() {
                let names: Vec<String> =
                    servers.iter().map(|s| format!("{} ({}, {})", s.name, s.id, s.status)).collect();
                problems.push(format!("Nova lists servers on the host: {}", names.join(", ")));
            }
            if !migrations.is_empty() {
                let found: Vec<String> = migrations
                    .iter()
                    .map(|m| {
                        format!(
                            "{} of {} ({} → {})",
                            m.status,
                            m.instance_uuid,
                            m.source_compute.as_deref().unwrap_or("?"),
                            m.dest_compute.as_deref().unwrap_or("?")
                        )
                    })
                    .collect();
                problems.push(format!("migrations to or from the host are under way: {}", found.join(", ")));
            }
            if !domains.value.is_empty() {
                // A domain whose UUID is no server of Nova's on this host is an
                // orphan: a reinstall would destroy it with no one knowing.
                let libvirt = crate::hosts::vm::Domains::new(host.run.shell()?.clone(), host.host.as_str());
                let mut known = Vec::new();
                let mut orphans = Vec::new();
                for domain in &domains.value {
                    let uuid = match libvirt.dominfo(&domain.name).await {
                        Ok(info) => info.uuid,
                        Err(crate::hosts::vm::VmError::UnknownDomain { .. }) => continue,
                        // Whose it is stays unknown; it blocks all the same.
                        Err(err) => {
                            tracing::warn!(host = %host.host, domain = %domain.name, "cannot read the domain's UUID: {err}");
                            known.push(format!("{} ({})", domain.name, domain.state));
                            continue;
                        }
                    };
                    if servers.iter().any(|server| server.id == uuid) {
                        known.push(format!("{} ({})", domain.name, domain.state));
                    } else {
                        orphans.push(format!("{} ({uuid}, {})", domain.name, domain.state));
                    }
                }
                if !known.is_empty() {
                    problems.push(format!("libvirt has domains: {}", known.join(", ")));
                }
                if !orphans.is_empty() {
                    problems.push(format!(
                        "libvirt has orphan domains Nova does not know (remove or adopt them first): {}",
                        orphans.join(", ")
                    ));
                }
            }
            if problems.is_empty() {
                return Ok(Decision::passed(observed));
            }
            if servers.is_empty() != domains.value.is_empty() {
                problems.push("Nova and libvirt disagree: find out why before reinstalling".into());
            }
            Ok(Decision::blocked(observed, problems.join("; ")))
        })
    }
}

/// The disks as they are before the reinstall, for the record.
struct BlockDevices;

impl Action for BlockDevices {
    fn name(&self) -> &'static str {
        "block-devices"
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            let output = host.run_as_root(&RemoteCommand::new("lsblk", "lsblk")).await?;
            host.record_output("block devices", &output);
            if !output.success() {
                return Err(ActionError(format!("lsblk failed with exit status {}", output.exit_status)));
            }
            let disks = output.stdout.lines().filter(|line| line.contains(" disk")).count();
            Ok(Decision::Recorded { observed: format!("{disks} disks") })
        })
    }
}

fn describe(matchers: &[Matcher]) -> String {
    matchers.iter().map(Matcher::describe).collect::<Vec<_>>().join(",")
}

/// Alerts of the host are silenced until the end of the maintenance window;
/// an active silence with the same matchers is reused.
struct Silences;

impl Silences {
    /// Active silences found per matcher set (`None`: none yet).
    async fn find(host: &HostContext) -> Result<Vec<(Vec<Matcher>, Option<String>)>, ActionError> {
        let alertmanager = host.run.alertmanager()?;
        let author = host.run.silence_author();
        let mut found = Vec::new();
        for matchers in silence_matchers(host) {
            let active = alertmanager.active_silences_with(&matchers).await?;
            // Only a silence of ours that lasts the whole window is reused:
            // someone else's may be expired by them at any time.
            let reusable = active.iter().find(|silence| {
                silence.created_by == author && silence.ends_at.is_some_and(|end| lasts_until(end, host.run.window.end))
            });
            let description = reusable.map(|silence| {
                let until = silence.ends_at.map(|end| end.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
                format!("{} until {}", silence.id, until.unwrap_or_else(|| "?".into()))
            });
            found.push((matchers, description));
        }
        Ok(found)
    }
}

impl Action for Silences {
    fn name(&self) -> &'static str {
        "silences"
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            let found = Self::find(host).await?;
            let observed: Vec<String> = found
                .iter()
                .map(|(matchers, silence)| {
                    format!("{}: {}", describe(matchers), silence.as_deref().unwrap_or("no active silence"))
                })
                .collect();
            let missing: Vec<String> =
                found.iter().filter(|(_, silence)| silence.is_none()).map(|(m, _)| describe(m)).collect();
            if missing.is_empty() {
                return Ok(Decision::done(observed.join("; ")));
            }
            let window = &host.run.window;
            Ok(Decision::act(
                observed.join("; "),
                format!("silence {} from {} until {}", missing.join(" and "), window.start_text(), window.end_text()),
            ))
        })
    }

    fn act<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Change, ActionError>> {
        Box::pin(async move {
            let run = &host.run;
            let settings = &run.credentials.workflow.silence;
            let fill =
                |text: &str| text.replace("{start}", &run.window.start_text()).replace("{initials}", &run.initials);
            let alertmanager = run.alertmanager()?;
            let base = run.credentials.alertmanager.as_ref().map(|am| am.url.as_str().trim_end_matches('/').to_owned());
            let mut made = Vec::new();
            for (matchers, existing) in Self::find(host).await? {
                if existing.is_some() {
                    continue;
                }
                let silence = NewSilence {
                    matchers: matchers.clone(),
                    starts_at: run.window.start,
                    ends_at: run.window.end,
                    created_by: run.silence_author(),
                    comment: fill(&settings.comment),
                };
                let (id, _) = alertmanager.ensure_silence(&silence).await?;
                let link = base.as_deref().map(|base| format!(" ({base}/#/silences/{id})")).unwrap_or_default();
                // Checked against the alerts the matchers select: a matcher
                // that mutes nothing is worth knowing before the reinstall.
                let (selected, muted) = alertmanager.muted_by(&id, &matchers).await?;
                made.push(format!(
                    "{}: {id}{link}, mutes {muted} of the {selected} alerts it selects now",
                    describe(&matchers)
                ));
            }
            Ok(Change(format!("silenced until {}: {}", run.window.end_text(), made.join("; "))))
        })
    }
}

/// The NetBox device's status is `planned` (the previous one journaled).
struct NetBoxPlanned;

impl Action for NetBoxPlanned {
    fn name(&self) -> &'static str {
        "netbox-planned"
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            let wanted = host.run.credentials.workflow.netbox.reinstall_status.clone();
            let Some(device) = host.run.netbox()?.find_device(host.host.as_str()).await? else {
                return Ok(Decision::blocked("no device", format!("there is no device named {} in NetBox", host.host)));
            };
            let current = device.status.value.clone();
            host.facts.netbox_device = Some(device);
            if current.eq_ignore_ascii_case(&wanted) {
                return Ok(Decision::done(format!("status {current}")));
            }
            Ok(Decision::Do {
                observed: format!("status {current}"),
                plan: format!("set the status to {wanted}"),
                previous: Some(current),
            })
        })
    }

    fn act<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Change, ActionError>> {
        Box::pin(async move {
            let wanted = host.run.credentials.workflow.netbox.reinstall_status.clone();
            let device = host.facts.netbox_device.clone().expect("observed before acting");
            let previous = device.status.value.clone();
            let change = DeviceChange { status: Some(wanted.clone()), ..DeviceChange::default() };
            let (updated, _) = host.run.netbox()?.update_device(&device, &change).await?;
            host.facts.netbox_device = Some(updated);
            Ok(Change(format!("status {previous} → {wanted}")))
        })
    }
}

/// What one Mellanox playbook run gives every host of its batch.
struct MellanoxBatch {
    hosts: Vec<String>,
    run: Result<KayobeRun, String>,
}

/// Hosts with a Mellanox card get UEFI PXE enabled on it by the playbook,
/// run once from the Kayobe host for every host of the run that needs it.
struct MellanoxUefiPxe;

impl MellanoxUefiPxe {
    async fn run_playbook(run: &RunContext, hosts: &[String]) -> Result<KayobeRun, String> {
        let kayobe = run.kayobe().map_err(|err| err.0)?;
        let inventory = format!("{},", hosts.join(","));
        let target = format!("pxe_target={}", hosts.join(":"));
        let playbook = run.credentials.workflow.kayobe.mellanox_playbook.as_str();
        let args = ["ansible-playbook", playbook, "-i", &inventory, "--extra-vars", &target];
        kayobe.run(MELLANOX, &args).await.map_err(|err| err.to_string())
    }
}

impl Action for MellanoxUefiPxe {
    fn name(&self) -> &'static str {
        MELLANOX
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            let point = host.run.batches.point::<(), Arc<MellanoxBatch>>(MELLANOX);
            let devices = pci_devices(host).await?;
            let cards: Vec<String> =
                devices.mellanox().iter().map(|d| format!("{} {}", d.slot, d.description)).collect();
            if cards.is_empty() {
                point.pass(host.host.as_str());
                return Ok(Decision::done("no Mellanox card"));
            }
            let observed = format!("Mellanox: {}", cards.join("; "));
            // The cards' firmware setting cannot be read from here: the journal says whether it was done.
            if done_before(host, MELLANOX)? && !host.run.redo_action(MELLANOX) {
                point.pass(host.host.as_str());
                return Ok(Decision::done(format!(
                    "{observed}; UEFI PXE enabled by an earlier run (again only with --redo {MELLANOX} --only {})",
                    host.host
                )));
            }
            Ok(Decision::act(observed, "enable UEFI PXE with the Mellanox playbook, one Kayobe run for the batch"))
        })
    }

    fn act<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Change, ActionError>> {
        Box::pin(async move {
            let fqdn = host.host.to_string();
            let point = host.run.batches.point::<(), Arc<MellanoxBatch>>(MELLANOX);
            let run = host.run.clone();
            let batch = point
                .join(&fqdn, (), |batch| async move {
                    let hosts: Vec<String> = batch.into_iter().map(|(name, _)| name).collect();
                    tracing::info!(hosts = hosts.len(), "Mellanox playbook for the batch");
                    let _turn = run.kayobe_turn().await;
                    let result = Arc::new(MellanoxBatch { run: Self::run_playbook(&run, &hosts).await, hosts });
                    result.hosts.iter().map(|name| (name.clone(), result.clone())).collect::<HashMap<_, _>>()
                })
                .await
                .ok_or_else(|| ActionError("the Mellanox batch gave no result for this host".into()))?;
            let kayobe_run = batch.run.as_ref().map_err(|err| ActionError(format!("Mellanox playbook: {err}")))?;
            let batch_note = format!("batch of {} host(s), log {}", batch.hosts.len(), kayobe_run.log_path);
            match kayobe_run.report.outcome(&fqdn) {
                KayobeOutcome::Succeeded(recap) => {
                    Ok(Change(format!("UEFI PXE enabled (ok={} changed={}; {batch_note})", recap.ok, recap.changed)))
                }
                KayobeOutcome::Failed { fatals, .. } => {
                    for fatal in &fatals {
                        host.outputs
                            .push(RecordedOutput { title: "Mellanox playbook: fatal".into(), text: fatal.clone() });
                    }
                    Err(ActionError(format!("the Mellanox playbook failed on this host ({batch_note})")))
                }
                KayobeOutcome::NotRun => Err(ActionError(format!(
                    "the Mellanox playbook did not reach this host (exit status {}; {batch_note})",
                    kayobe_run.output.exit_status
                ))),
            }
        })
    }

    /// The firmware setting cannot be read back; the PLAY RECAP is the check.
    fn verify_by_observing(&self) -> bool {
        false
    }
}

// Aquilon: every command on the Aquilon host holds one of the run's slots.

fn aquilon(host: &HostContext) -> Result<Aquilon, ActionError> {
    let settings = host
        .run
        .credentials
        .aquilon
        .as_ref()
        .ok_or_else(|| ActionError("the 'aquilon' section is missing from the credentials file".into()))?;
    Ok(Aquilon::new(host.run.shell()?.clone(), Target::new(&settings.username, &settings.host)))
}

async fn aquilon_slot(host: &HostContext) -> crate::workflow::context::AquilonTurn {
    host.run.aquilon_turn().await
}

/// `aq show host`, which must know the host.
async fn aq_show_host(host: &HostContext) -> Result<Observed<AqHost>, ActionError> {
    let aq = aquilon(host)?;
    let _slot = aquilon_slot(host).await;
    aq.show_host(host.host.as_str()).await?.ok_or_else(|| ActionError(format!("Aquilon does not know {}", host.host)))
}

fn machine_of(shown: &AqHost) -> Result<String, ActionError> {
    shown.machine.clone().ok_or_else(|| ActionError("aq show host names no machine".into()))
}

/// The host is deleted and re-imported from NetBox, once in the campaign.
/// Each command is journaled: a re-run after a kill or a dropped connection
/// finishes the sequence instead of deleting and importing again.
struct AquilonReimport;

const IMPORT: &str = "netbox2aquilon";
const BOOT_INTERFACE: &str = "update_interface boot eth0";

/// Whether an earlier attempt's import took place: finished, or started and
/// never seen to end while Aquilon knows the host again after its deletion.
fn earlier_import_done(host: &HostContext, aquilon_knows_host: bool) -> bool {
    use crate::journal::ActionOutcome::{Done, Intent};
    let attempt = &host.attempt;
    match attempt.earlier(IMPORT) {
        Some(Done) => true,
        Some(Intent) => aquilon_knows_host,
        _ => false,
    }
}

impl Action for AquilonReimport {
    fn name(&self) -> &'static str {
        REIMPORT
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            let aq = aquilon(host)?;
            let shown = {
                let _slot = aquilon_slot(host).await;
                aq.show_host(host.host.as_str()).await?
            };
            if earlier_import_done(host, shown.is_some()) {
                return Ok(Decision::act(
                    format!("run {} imported the host and stopped before the end", host.attempt.earlier_run()),
                    "finish the re-import: set the boot interface",
                ));
            }
            let Some(shown) = shown else {
                // An earlier run stopped between the delete and the import.
                return Ok(Decision::act("Aquilon does not know the host", "import it from NetBox"));
            };
            let machine = shown.value.machine.clone().unwrap_or_else(|| "?".into());
            let observed = format!(
                "machine {machine}, personality {}, OS {} {}",
                shown.value.personality.as_deref().unwrap_or("?"),
                shown.value.os_name.as_deref().unwrap_or("?"),
                shown.value.os_version.as_deref().unwrap_or("?")
            );
            if done_before(host, REIMPORT)? && !host.run.redo_action(REIMPORT) {
                return Ok(Decision::done(format!(
                    "{observed}; re-imported by an earlier run (again only with --redo {REIMPORT} --only {})",
                    host.host
                )));
            }
            Ok(Decision::Do {
                observed,
                plan: format!("delete the host, the interfaces and machine {machine}, then re-import from NetBox"),
                previous: Some(shown.output.stdout),
            })
        })
    }

    fn act<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Change, ActionError>> {
        Box::pin(async move {
            let aq = aquilon(host)?;
            let fqdn = host.host.to_string();
            let settings = &host.run.credentials.workflow.aquilon;
            let import = Netbox2Aquilon {
                archetype: settings.archetype.clone(),
                domain: settings.domain.clone(),
                osname: settings.osname.clone(),
                osversion: settings.osversion.clone(),
            };
            let shown = {
                let _slot = aquilon_slot(host).await;
                aq.show_host(&fqdn).await?
            };
            let mut done = Vec::new();
            if earlier_import_done(host, shown.is_some()) {
                host.carried_over(IMPORT);
                done.push(format!("imported from NetBox by run {}", host.attempt.earlier_run()));
            } else {
                if let Some(shown) = shown {
                    let machine = machine_of(&shown.value)?;
                    let slot = aquilon_slot(host).await;
                    host.side_effect("del_host", aq.del_host(&fqdn)).await?;
                    for interface in &shown.value.interfaces {
                        for ip in &interface.ips {
                            let environment = interface.network_environment.as_deref();
                            let name = format!("del_interface_address {} {ip}", interface.name);
                            host.side_effect(
                                &name,
                                aq.del_interface_address(&machine, &interface.name, ip, environment),
                            )
                            .await?;
                        }
                    }
                    for interface in &shown.value.interfaces {
                        let name = format!("del_interface {}", interface.name);
                        host.side_effect(&name, aq.del_interface(&machine, &interface.name)).await?;
                    }
                    host.side_effect(&format!("del_machine {machine}"), aq.del_machine(&machine)).await?;
                    drop(slot);
                    done.push(format!("deleted host and machine {machine}"));
                    // The record as it was, on the ticket: what the re-import replaced.
                    host.record_output("Aquilon record before the re-import", &shown.output);
                }
                let output = {
                    let _slot = aquilon_slot(host).await;
                    host.side_effect(IMPORT, aq.netbox2aquilon(&fqdn, &import)).await?
                };
                host.record_output("netbox2aquilon", &output);
                done.push("imported from NetBox".into());
            }
            {
                // Safe to repeat: it sets the same boot interface again.
                let _slot = aquilon_slot(host).await;
                host.side_effect(BOOT_INTERFACE, aq.update_interface_boot(&fqdn, "eth0")).await?;
            }
            host.facts.aquilon_changed = true;
            let shown = aq_show_host(host).await?;
            Ok(Change(format!("{}; machine {}", done.join("; "), machine_of(&shown.value)?)))
        })
    }

    /// Aquilon shows a host either way; the journal remembers the re-import.
    fn verify_by_observing(&self) -> bool {
        false
    }
}

/// Only the interfaces the settings keep (bmc0, eth0) remain.
struct AquilonInterfaces;

fn extra_interfaces(host: &HostContext, shown: &AqHost) -> Vec<crate::hosts::aquilon::AqInterface> {
    let keep = &host.run.credentials.workflow.aquilon.keep_interfaces;
    shown.interfaces.iter().filter(|interface| !keep.contains(&interface.name)).cloned().collect()
}

impl Action for AquilonInterfaces {
    fn name(&self) -> &'static str {
        "aquilon-interfaces"
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            let shown = aq_show_host(host).await?;
            let names: Vec<&str> = shown.value.interfaces.iter().map(|i| i.name.as_str()).collect();
            let observed = format!("interfaces {}", names.join(", "));
            let extra: Vec<String> = extra_interfaces(host, &shown.value).into_iter().map(|i| i.name).collect();
            if extra.is_empty() {
                return Ok(Decision::done(observed));
            }
            Ok(Decision::Do { observed, plan: format!("remove {}", extra.join(", ")), previous: Some(names.join(",")) })
        })
    }

    fn act<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Change, ActionError>> {
        Box::pin(async move {
            let shown = aq_show_host(host).await?;
            let machine = machine_of(&shown.value)?;
            let extra = extra_interfaces(host, &shown.value);
            let aq = aquilon(host)?;
            let _slot = aquilon_slot(host).await;
            for interface in &extra {
                for ip in &interface.ips {
                    let environment = interface.network_environment.as_deref();
                    let name = format!("del_interface_address {} {ip}", interface.name);
                    host.side_effect(&name, aq.del_interface_address(&machine, &interface.name, ip, environment))
                        .await?;
                }
                let name = format!("del_interface {}", interface.name);
                host.side_effect(&name, aq.del_interface(&machine, &interface.name)).await?;
            }
            let names: Vec<&str> = extra.iter().map(|i| i.name.as_str()).collect();
            Ok(Change(format!("removed {}", names.join(", "))))
        })
    }
}

/// Disks the settings remove for this model (sda on A100 hosts) are gone.
struct AquilonDisks;

fn disks_to_remove(host: &HostContext, shown: &AqHost) -> Vec<String> {
    let by_model = &host.run.credentials.workflow.aquilon.remove_disks;
    let wanted = shown.model.as_deref().and_then(|model| by_model.get(model)).cloned().unwrap_or_default();
    wanted.into_iter().filter(|disk| shown.disks.contains(disk)).collect()
}

impl Action for AquilonDisks {
    fn name(&self) -> &'static str {
        "aquilon-disks"
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            let shown = aq_show_host(host).await?;
            let model = shown.value.model.clone().unwrap_or_else(|| "?".into());
            let observed = format!("model {model}, disks {}", shown.value.disks.join(", "));
            let remove = disks_to_remove(host, &shown.value);
            if remove.is_empty() {
                return Ok(Decision::done(observed));
            }
            Ok(Decision::Do {
                observed,
                plan: format!("remove {} (model {model})", remove.join(", ")),
                previous: Some(shown.value.disks.join(",")),
            })
        })
    }

    fn act<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Change, ActionError>> {
        Box::pin(async move {
            let shown = aq_show_host(host).await?;
            let machine = machine_of(&shown.value)?;
            let remove = disks_to_remove(host, &shown.value);
            let aq = aquilon(host)?;
            let _slot = aquilon_slot(host).await;
            for disk in &remove {
                host.side_effect(&format!("del_disk {disk}"), aq.del_disk(&machine, disk)).await?;
            }
            Ok(Change(format!("removed {} from machine {machine}", remove.join(", "))))
        })
    }
}

/// The host is in the domain and made with the target personality and OS.
struct AquilonMake;

fn profile_of(shown: &AqHost) -> String {
    let field = |value: &Option<String>| value.clone().unwrap_or_else(|| "?".into());
    format!(
        "domain {}, personality {}, archetype {}, OS {} {}",
        field(&shown.domain),
        field(&shown.personality),
        field(&shown.archetype),
        field(&shown.os_name),
        field(&shown.os_version)
    )
}

impl Action for AquilonMake {
    fn name(&self) -> &'static str {
        "aquilon-make"
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            let shown = aq_show_host(host).await?.value;
            let settings = &host.run.credentials.workflow.aquilon;
            let is = |value: &Option<String>, wanted: &str| value.as_deref() == Some(wanted);
            let observed = profile_of(&shown);
            if is(&shown.domain, &settings.domain)
                && is(&shown.personality, &settings.personality)
                && is(&shown.archetype, &settings.archetype)
                && is(&shown.os_name, &settings.osname)
                && is(&shown.os_version, &settings.osversion)
            {
                return Ok(Decision::done(observed));
            }
            Ok(Decision::Do {
                plan: format!(
                    "make with domain {}, personality {}, archetype {}, OS {} {}",
                    settings.domain, settings.personality, settings.archetype, settings.osname, settings.osversion
                ),
                previous: Some(observed.clone()),
                observed,
            })
        })
    }

    fn act<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Change, ActionError>> {
        Box::pin(async move {
            let shown = aq_show_host(host).await?.value;
            let settings = &host.run.credentials.workflow.aquilon;
            let fqdn = host.host.as_str();
            let aq = aquilon(host)?;
            let _slot = aquilon_slot(host).await;
            if shown.domain.as_deref() != Some(settings.domain.as_str()) {
                host.side_effect("manage", aq.manage(fqdn, &settings.domain)).await?;
            }
            let profile = MakeProfile {
                personality: settings.personality.clone(),
                osname: settings.osname.clone(),
                osversion: settings.osversion.clone(),
                archetype: Some(settings.archetype.clone()),
            };
            host.side_effect("make", aq.make(fqdn, &profile)).await?;
            drop(_slot);
            host.facts.aquilon_changed = true;
            Ok(Change(format!(
                "made with personality {}, OS {} {}",
                settings.personality, settings.osname, settings.osversion
            )))
        })
    }
}

/// The host will PXE-install at its next boot.
struct AquilonPxeswitch;

fn build_status(shown: &Observed<AqHost>) -> Option<String> {
    shown.output.stdout.lines().find_map(|line| line.trim().strip_prefix("Build Status:").map(|s| s.trim().to_owned()))
}

impl Action for AquilonPxeswitch {
    fn name(&self) -> &'static str {
        PXESWITCH
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            let shown = aq_show_host(host).await?;
            let status = build_status(&shown).unwrap_or_else(|| "unknown".into());
            let observed = format!("build status {status}");
            // The build status does not say whether the host will PXE-install;
            // only the journal does. A re-import or make of this run undoes it.
            if done_before(host, PXESWITCH)? && !host.facts.aquilon_changed && !host.run.redo_action(PXESWITCH) {
                return Ok(Decision::done(format!(
                    "{observed}; switched by an earlier run (safe to repeat: --redo {PXESWITCH})"
                )));
            }
            Ok(Decision::act(observed, "aq pxeswitch --install"))
        })
    }

    fn act<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Change, ActionError>> {
        Box::pin(async move {
            let aq = aquilon(host)?;
            let _slot = aquilon_slot(host).await;
            host.side_effect("pxeswitch --install", aq.pxeswitch_install(host.host.as_str())).await?;
            Ok(Change("set to PXE-install at the next boot".into()))
        })
    }

    /// Not every Aquilon shows the PXE setting; the exit status is the check
    /// (and `pxeswitch --install` is safe to repeat).
    fn verify_by_observing(&self) -> bool {
        false
    }
}

/// The IPMI address the operator reinstalls through.
struct IpmiAddress;

impl Action for IpmiAddress {
    fn name(&self) -> &'static str {
        "ipmi-address"
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            let device = host.facts.netbox_device.clone().ok_or_else(|| ActionError("no NetBox device".into()))?;
            let bmc = &host.run.credentials.workflow.netbox.bmc_interface;
            let observed = match host.run.netbox()?.oob_address(&device, bmc).await? {
                Some(address) => format!("IPMI address according to NetBox: {address}"),
                None => format!("NetBox has no IPMI address for this host (no oob_ip, no address on {bmc})"),
            };
            Ok(Decision::Recorded { observed })
        })
    }
}
