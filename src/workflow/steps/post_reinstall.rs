//! post-reinstall: the host came back from its PXE reinstall. Check that it
//! runs the target OS on UEFI, record its disks and GPUs, apply the fixes of
//! its hardware model (guarded: nothing mounted or holding data is ever
//! formatted), and make it an active compute node in NetBox again.

use crate::clients::http::ErrorKind;
use crate::clients::netbox::DeviceChange;
use crate::config::workflow::DiskFix;
use crate::hosts::aquilon::Aquilon;
use crate::hosts::hypervisor::{FstabEntry, Hypervisor, Overwrite};
use crate::hosts::FixOutcome;
use crate::ssh::{RemoteCommand, Target};
use crate::workflow::action::{Action, ActionError, BoxFuture, Change, Decision};
use crate::workflow::context::HostContext;
use crate::workflow::Step;

use super::common::{hypervisor, GpuCheck, JiraStatus};
use super::setup::RootAccessAction;
use super::{JiraStatuses, StepPlan};

pub fn plan(workflow: &crate::config::Workflow) -> StepPlan {
    let transitions = &workflow.transitions;
    let mut actions: Vec<Box<dyn Action>> = vec![
        Box::new(JiraStatus {
            name: "jira-working",
            target: |t| &t.working_on_post_reinstall,
            finished: |t| &t.ready_for_adoption,
        }),
        // A real reinstall made new SSH host keys: trusted only for the same machine.
        Box::new(super::identity::ReinstalledHostKey),
        // The reinstall wiped root's authorized_keys.
        Box::new(RootAccessAction),
        // Nothing is changed on a machine that is not the one drained.
        Box::new(super::identity::SameMachine),
        Box::new(super::identity::RestoreNodeIdentity),
        Box::new(TargetOs),
        Box::new(RecordDisks),
        Box::new(GpuCheck),
        Box::new(HardwareModel),
    ];
    for (model, fixes) in &workflow.model_fixes {
        for fix in fixes {
            actions.push(Box::new(ModelFix { model: model.clone(), fix: fix.clone() }));
        }
    }
    actions.push(Box::new(NetBoxActive));
    StepPlan {
        step: Step::PostReinstall,
        actions,
        jira: JiraStatuses {
            on_success: Some(transitions.ready_for_adoption.clone()),
            on_failure: Some(transitions.post_reinstall_failed.clone()),
        },
        services: &["ssh", "netbox", "jira"],
    }
}

/// The host runs the target OS and booted with UEFI.
struct TargetOs;

impl Action for TargetOs {
    fn name(&self) -> &'static str {
        "os-check"
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            let hv = hypervisor(host)?;
            let os = hv.os_release().await?.value;
            let efi = hv.is_efi().await?;
            let target = &host.run.credentials.workflow.target_os;
            let observed = format!("{} {}, {}", os.id, os.version_id, if efi { "UEFI" } else { "legacy BIOS" });
            if !target.matches(&os.id, &os.version_id) {
                let reason = format!("the host runs {} {}, not {target}: reinstall it first", os.id, os.version_id);
                return Ok(Decision::blocked(observed, reason));
            }
            if !efi {
                return Ok(Decision::blocked(observed, "the host is not EFI enabled (no /sys/firmware/efi)"));
            }
            Ok(Decision::passed(observed))
        })
    }
}

/// The block devices after the reinstall, for the record.
struct RecordDisks;

impl Action for RecordDisks {
    fn name(&self) -> &'static str {
        "record-disks"
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            let output = host.run_as_root(&RemoteCommand::new("lsblk", "lsblk")).await?;
            if !output.success() {
                return Err(ActionError(format!("lsblk failed with exit status {}", output.exit_status)));
            }
            let disks = output.stdout.lines().filter(|line| line.split_whitespace().nth(5) == Some("disk")).count();
            host.record_output("block devices", &output);
            Ok(Decision::Recorded { observed: format!("{disks} disks") })
        })
    }
}

/// The hardware model, from Aquilon when it is configured, else NetBox's device type.
struct HardwareModel;

impl Action for HardwareModel {
    fn name(&self) -> &'static str {
        "hardware-model"
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            let (model, source) = match &host.run.credentials.aquilon {
                Some(aquilon) => {
                    let target = Target::new(&aquilon.username, &aquilon.host);
                    let aq = Aquilon::new(host.run.shell()?.clone(), target);
                    // One command at a time on the Aquilon host, by default.
                    let slot = host.run.aquilon_turn().await;
                    let model = aq.model(host.host.as_str()).await?;
                    drop(slot);
                    (model, "Aquilon")
                }
                None => match host.facts.device_type.as_ref() {
                    Some(device_type) => (device_type.model.clone(), "NetBox"),
                    None => return Ok(Decision::blocked("no model", "neither Aquilon nor NetBox gives the model")),
                },
            };
            let fixes = host.run.credentials.workflow.model_fixes.get(&model).map_or(0, Vec::len);
            host.facts.hardware_model = Some(model.clone());
            Ok(Decision::Recorded { observed: format!("{model} (from {source}); {fixes} disk fixes for it") })
        })
    }
}

/// One disk fix of one hardware model: observing runs the guards, acting
/// does only the parts found missing, each guarded again.
struct ModelFix {
    model: String,
    fix: DiskFix,
}

/// What a fix found on the host.
#[derive(Debug, Default)]
struct FixState {
    missing: Vec<String>,
    found: Vec<String>,
}

impl ModelFix {
    fn applies(&self, host: &HostContext) -> bool {
        host.facts.hardware_model.as_deref() == Some(self.model.as_str())
    }

    fn overwrite(host: &HostContext) -> Overwrite {
        if host.run.credentials.workflow.allow_reformat {
            Overwrite::Allowed
        } else {
            Overwrite::Never
        }
    }

    /// The guards of an XFS filesystem on `device` (no formatting of a device
    /// in use, nor of another filesystem unless the settings allow it).
    async fn check_xfs(hv: &Hypervisor, device: &str, reformat: bool, state: &mut FixState) -> Result<(), String> {
        let Some(found) = hv.block_device(device).await.map_err(|e| e.to_string())? else {
            return Err(format!("{device} does not exist"));
        };
        match hv.filesystem_type(device).await.map_err(|e| e.to_string())? {
            Some(fstype) if fstype == "xfs" => state.found.push(format!("xfs on {device}")),
            Some(fstype) if !reformat => {
                return Err(format!("{device} holds a {fstype} filesystem and workflow.allow_reformat is off"))
            }
            fstype => {
                if let Some(reason) = found.in_use() {
                    return Err(format!("{reason}: it is never formatted"));
                }
                let replacing = fstype.map(|fstype| format!(", replacing its {fstype}")).unwrap_or_default();
                state.missing.push(format!("mkfs.xfs {device}{replacing}"));
            }
        }
        Ok(())
    }

    /// The guards of `device` mounted at `mount_point` through `/etc/fstab`.
    async fn check_mount(hv: &Hypervisor, device: &str, mount_point: &str, state: &mut FixState) -> Result<(), String> {
        match hv.fstab_entry_for(mount_point).await.map_err(|e| e.to_string())? {
            Some(entry) if entry.device == device => state.found.push(format!("fstab line for {mount_point}")),
            Some(entry) => return Err(format!("/etc/fstab already mounts {mount_point} from {}", entry.device)),
            None => state.missing.push(format!("add {device} at {mount_point} to /etc/fstab")),
        }
        match hv.mounted_at(mount_point).await.map_err(|e| e.to_string())? {
            Some(mount) if mount.source == device => state.found.push(format!("{device} mounted at {mount_point}")),
            Some(mount) => return Err(format!("{mount_point} already has {} mounted", mount.source)),
            None => state.missing.push(format!("mount {mount_point}")),
        }
        Ok(())
    }

    async fn mdadm_conf_lists(host: &HostContext, array: &str) -> Result<bool, ActionError> {
        let output = host.run_as_root(&RemoteCommand::new("read-mdadm-conf", "cat").arg("/etc/mdadm.conf")).await?;
        Ok(output.success() && output.stdout.lines().any(|line| line.split_whitespace().take(2).eq(["ARRAY", array])))
    }

    async fn inspect(&self, host: &HostContext) -> Result<Result<FixState, String>, ActionError> {
        let hv = hypervisor(host)?;
        let reformat = host.run.credentials.workflow.allow_reformat;
        let mut state = FixState::default();
        let checked = match &self.fix {
            DiskFix::XfsMount { device, mount_point, .. } => {
                match Self::check_xfs(&hv, device, reformat, &mut state).await {
                    Ok(()) => Self::check_mount(&hv, device, mount_point, &mut state).await,
                    Err(reason) => Err(reason),
                }
            }
            DiskFix::Raid0 { array, members, mount_point } => {
                self.check_raid0(host, &hv, array, members, mount_point.as_deref(), reformat, &mut state).await?
            }
        };
        Ok(checked.map(|()| state))
    }

    #[allow(clippy::too_many_arguments)]
    async fn check_raid0(
        &self,
        host: &HostContext,
        hv: &Hypervisor,
        array: &str,
        members: &[String],
        mount_point: Option<&str>,
        reformat: bool,
        state: &mut FixState,
    ) -> Result<Result<(), String>, ActionError> {
        let partitions: Vec<String> = members.iter().map(|disk| partition_of(disk)).collect();
        match hv.md_array(array).await? {
            Some(found) if found.level != "raid0" => {
                return Ok(Err(format!("{array} exists as a {} array, not raid0", found.level)))
            }
            Some(found) => state.found.push(format!("{array} (raid0 of {})", found.members.join(", "))),
            None => {
                for (disk, partition) in members.iter().zip(&partitions) {
                    let Some(device) = hv.block_device(disk).await? else {
                        return Ok(Err(format!("{disk} does not exist")));
                    };
                    if device.find(partition).is_some() {
                        state.found.push(format!("partition {partition}"));
                    } else if let Some(reason) = device.in_use() {
                        return Ok(Err(format!("{reason}: it is never repartitioned")));
                    } else if let Some(fstype) = hv.filesystem_type(disk).await? {
                        return Ok(Err(format!("{disk} holds a {fstype} signature; it is never repartitioned")));
                    } else {
                        state.missing.push(format!("partition {disk} (one Linux RAID partition)"));
                    }
                }
                state.missing.push(format!("mdadm --create {array} --level=raid0 of {}", partitions.join(", ")));
                state.missing.push(format!("mkfs.xfs {array}"));
                state.missing.push(format!("record {array} in /etc/mdadm.conf"));
                if let Some(mount_point) = mount_point {
                    state.missing.push(format!("add {array} at {mount_point} to /etc/fstab and mount it"));
                }
                return Ok(Ok(()));
            }
        }
        if let Err(reason) = Self::check_xfs(hv, array, reformat, state).await {
            return Ok(Err(reason));
        }
        if Self::mdadm_conf_lists(host, array).await? {
            state.found.push(format!("{array} in /etc/mdadm.conf"));
        } else {
            state.missing.push(format!("record {array} in /etc/mdadm.conf"));
        }
        if let Some(mount_point) = mount_point {
            if let Err(reason) = Self::check_mount(hv, array, mount_point, state).await {
                return Ok(Err(reason));
            }
        }
        Ok(Ok(()))
    }

    /// `mkfs.xfs` unless the device already holds XFS (a re-run after a
    /// crash never formats again what an earlier run formatted).
    async fn ensure_xfs(
        host: &mut HostContext,
        hv: &Hypervisor,
        device: &str,
        done: &mut Vec<String>,
    ) -> Result<(), ActionError> {
        if hv.filesystem_type(device).await?.as_deref() == Some("xfs") {
            return Ok(());
        }
        let made = host.side_effect(&format!("mkfs.xfs {device}"), hv.make_xfs(device, Self::overwrite(host))).await?;
        if let FixOutcome::Changed(output) = made {
            host.record_output(format!("XFS on {device}"), &output);
            done.push(format!("made XFS on {device}"));
        }
        Ok(())
    }

    async fn ensure_mounted(
        host: &mut HostContext,
        hv: &Hypervisor,
        device: &str,
        mount_point: &str,
        options: &str,
        done: &mut Vec<String>,
    ) -> Result<(), ActionError> {
        let entry = FstabEntry {
            device: device.to_owned(),
            mountpoint: mount_point.to_owned(),
            fstype: "xfs".into(),
            options: options.to_owned(),
        };
        if host.side_effect(&format!("fstab line for {mount_point}"), hv.ensure_fstab_entry(&entry)).await?.changed() {
            done.push(format!("added '{}' to /etc/fstab", entry.line()));
        }
        host.side_effect(&format!("mkdir {mount_point}"), hv.make_dir(mount_point)).await?;
        if let FixOutcome::Changed(output) =
            host.side_effect(&format!("mount {mount_point}"), hv.mount(mount_point)).await?
        {
            host.record_output(format!("mount {mount_point}"), &output);
            done.push(format!("mounted {device} at {mount_point}"));
            host.side_effect("systemctl daemon-reload", hv.daemon_reload()).await?;
        }
        Ok(())
    }
}

/// The first partition of a disk: `nvme0n1` → `nvme0n1p1`, `sdb` → `sdb1`.
fn partition_of(disk: &str) -> String {
    if disk.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{disk}p1")
    } else {
        format!("{disk}1")
    }
}

impl Action for ModelFix {
    fn name(&self) -> &'static str {
        match self.fix {
            DiskFix::XfsMount { .. } => "disk-fix-xfs",
            DiskFix::Raid0 { .. } => "disk-fix-raid0",
        }
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            if !self.applies(host) {
                let model = host.facts.hardware_model.as_deref().unwrap_or("unknown");
                return Ok(Decision::done(format!("for {} only; this host is a {model}", self.model)));
            }
            let state = match self.inspect(host).await? {
                Ok(state) => state,
                Err(reason) => return Ok(Decision::blocked(format!("{}: {reason}", self.model), reason)),
            };
            let found = if state.found.is_empty() { "nothing yet".to_owned() } else { state.found.join(", ") };
            let observed = format!("{}: found {found}", self.model);
            if state.missing.is_empty() {
                Ok(Decision::done(observed))
            } else {
                Ok(Decision::act(observed, state.missing.join("; ")))
            }
        })
    }

    fn act<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Change, ActionError>> {
        Box::pin(async move {
            let hv = hypervisor(host)?;
            let mut done = Vec::new();
            match &self.fix {
                DiskFix::XfsMount { device, mount_point, options } => {
                    Self::ensure_xfs(host, &hv, device, &mut done).await?;
                    Self::ensure_mounted(host, &hv, device, mount_point, options, &mut done).await?;
                }
                DiskFix::Raid0 { array, members, mount_point } => {
                    let partitions: Vec<String> = members.iter().map(|disk| partition_of(disk)).collect();
                    if hv.md_array(array).await?.is_none() {
                        for disk in members {
                            let made = host
                                .side_effect(&format!("partition {disk}"), hv.create_partition(disk, "fd00"))
                                .await?;
                            if let FixOutcome::Changed(output) = made {
                                host.record_output(format!("partition {disk}"), &output);
                                done.push(format!("partitioned {disk}"));
                            }
                        }
                        let names: Vec<&str> = partitions.iter().map(String::as_str).collect();
                        let made = host
                            .side_effect(&format!("mdadm --create {array}"), hv.create_md_array(array, "raid0", &names))
                            .await?;
                        if let FixOutcome::Changed(output) = made {
                            host.record_output(format!("RAID0 {array}"), &output);
                            done.push(format!("created RAID0 {array} of {}", partitions.join(", ")));
                        }
                    }
                    Self::ensure_xfs(host, &hv, array, &mut done).await?;
                    if host
                        .side_effect(&format!("{array} in /etc/mdadm.conf"), hv.record_md_array(array))
                        .await?
                        .changed()
                    {
                        done.push(format!("recorded {array} in /etc/mdadm.conf"));
                    }
                    if let Some(mount_point) = mount_point {
                        let options = "defaults";
                        Self::ensure_mounted(host, &hv, array, mount_point, options, &mut done).await?;
                    }
                }
            }
            Ok(Change(format!("{}: {}", self.model, done.join("; "))))
        })
    }
}

/// NetBox has the device active, with the compute role; the previous values are journaled.
struct NetBoxActive;

impl Action for NetBoxActive {
    fn name(&self) -> &'static str {
        "netbox-active"
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            let names = &host.run.credentials.workflow.netbox;
            let netbox = host.run.netbox()?;
            let Some(device) = netbox.find_device(host.host.as_str()).await? else {
                return Ok(Decision::blocked("no device", format!("there is no device named {} in NetBox", host.host)));
            };
            let role = match netbox.role_by_name(&names.compute_role).await {
                Ok(role) => role,
                Err(err) if matches!(err.kind, ErrorKind::Unusable(_)) => {
                    return Ok(Decision::blocked(
                        "role missing",
                        format!("NetBox has no device role named '{}'", names.compute_role),
                    ))
                }
                Err(err) => return Err(err.into()),
            };
            let status = device.status.value.clone();
            let current_role = device.role().map(|role| role.label().to_owned()).unwrap_or_else(|| "none".into());
            let observed = format!("status {status}, role {current_role}");
            let role_ok = device.role().map(|current| current.id) == Some(role.id);
            let status_ok = status.eq_ignore_ascii_case(&names.active_status);
            host.facts.netbox_device = Some(device);
            host.facts.compute_role = Some(role);
            if role_ok && status_ok {
                return Ok(Decision::done(observed));
            }
            Ok(Decision::Do {
                plan: format!("set status {} and role {}", names.active_status, names.compute_role),
                previous: Some(observed.clone()),
                observed,
            })
        })
    }

    fn act<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Change, ActionError>> {
        Box::pin(async move {
            let device = host.facts.netbox_device.clone().expect("observed before acting");
            let role = host.facts.compute_role.clone().expect("observed before acting");
            let change = DeviceChange {
                status: Some(host.run.credentials.workflow.netbox.active_status.clone()),
                role: Some(role.clone()),
            };
            let (updated, _) = host.run.netbox()?.update_device(&device, &change).await?;
            Ok(Change(format!("NetBox device #{}: status {}, role {}", updated.id, updated.status.value, role.name)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::partition_of;

    #[test]
    fn partitions_of_nvme_and_sata_disks() {
        assert_eq!(partition_of("/dev/nvme0n1"), "/dev/nvme0n1p1");
        assert_eq!(partition_of("/dev/sdb"), "/dev/sdb1");
    }
}
