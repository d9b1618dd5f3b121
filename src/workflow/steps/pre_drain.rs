//! pre-drain: make sure the host is a candidate, and stop new VMs landing on it.

use crate::hosts::hypervisor::PackageUpdate;
use crate::ssh::RemoteCommand;
use crate::workflow::action::{Action, ActionError, BoxFuture, Change, Decision};
use crate::workflow::context::HostContext;
use crate::workflow::Step;

use super::common::{hypervisor, no_compute_service, NetBoxDevice};
use super::{JiraStatuses, StepPlan};

pub fn plan() -> StepPlan {
    StepPlan {
        step: Step::PreDrain,
        actions: vec![
            Box::new(SourceOs),
            Box::new(UpdatePackages),
            Box::new(NetBoxDevice { check_pre_drain_status: true }),
            // Before anything changes: NetBox and the host must agree on the machine.
            Box::new(super::identity::IdentityCheck),
            Box::new(DisableCompute),
            Box::new(RecordState),
        ],
        jira: JiraStatuses::default(),
        services: &["ssh", "netbox", "openstack"],
    }
}

/// The host runs the source OS of the campaign.
struct SourceOs;

impl Action for SourceOs {
    fn name(&self) -> &'static str {
        "os-check"
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            let os = hypervisor(host)?.os_release().await?;
            let (id, version) = (os.value.id.clone(), os.value.version_id.clone());
            let observed = format!("{id} {version}");
            let workflow = &host.run.credentials.workflow;
            if workflow.source_os.matches(&id, &version) {
                Ok(Decision::passed(observed))
            } else {
                Ok(Decision::blocked(observed, format!("the host runs {id} {version}, not {}", workflow.source_os)))
            }
        })
    }
}

/// The packages live migration needs are up to date (`qemu-kvm`).
struct UpdatePackages;

impl UpdatePackages {
    fn packages(host: &HostContext) -> Vec<String> {
        host.run.credentials.workflow.packages_to_update.clone()
    }
}

impl Action for UpdatePackages {
    fn name(&self) -> &'static str {
        "update-packages"
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            let packages = Self::packages(host);
            if packages.is_empty() {
                return Ok(Decision::done("no packages to update (workflow.packages_to_update is empty)"));
            }
            // `dnf check-update` exits 100 when updates are available, 0 when none.
            let command =
                RemoteCommand::new("dnf-check-update", "dnf").args(["-q", "check-update"]).args(packages.iter());
            let output = host.run_as_root(&command).await?;
            match output.exit_status {
                0 => Ok(Decision::done(format!("{} up to date", packages.join(", ")))),
                100 => Ok(Decision::act(
                    format!("updates available: {}", output.stdout.split_whitespace().next().unwrap_or("?")),
                    format!("dnf -y update {}", packages.join(" ")),
                )),
                status => {
                    host.record_output("dnf check-update", &output);
                    Err(ActionError(format!(
                        "dnf check-update failed with exit status {status}: {}",
                        output.stderr.trim()
                    )))
                }
            }
        })
    }

    fn act<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Change, ActionError>> {
        Box::pin(async move {
            let packages = Self::packages(host);
            let names: Vec<&str> = packages.iter().map(String::as_str).collect();
            // A detached job: a dropped connection or a crash does not leave dnf half-watched.
            let timeout =
                std::time::Duration::from_secs(host.run.credentials.workflow.remote_jobs.package_update_timeout_secs);
            let hypervisor = hypervisor(host)?.with_jobs(host.run.job_context(), timeout);
            let PackageUpdate { output, resolv_conf } = hypervisor.update_packages(&names).await?;
            host.record_output("package update", &output);
            if let Some(resolv_conf) = &resolv_conf {
                host.record_output("resolver configuration, for diagnosis", resolv_conf);
            }
            if output.success() {
                Ok(Change(format!("updated {}", packages.join(", "))))
            } else {
                Err(ActionError(format!("dnf -y update failed with exit status {}", output.exit_status)))
            }
        })
    }
}

/// The host's nova-compute service is disabled with the campaign's reason.
pub(super) struct DisableCompute;

impl Action for DisableCompute {
    fn name(&self) -> &'static str {
        "disable-compute"
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            let Some(service) = host.run.nova()?.compute_service(host.host.as_str()).await? else {
                return Ok(no_compute_service(host));
            };
            let reason = service.disabled_reason.clone().unwrap_or_default();
            let decision = if service.status == "disabled" && reason == host.run.disable_reason() {
                Decision::done(format!("disabled: {reason}"))
            } else if service.status == "disabled" {
                // Someone disabled it for their own reason: keep theirs, say so.
                Decision::done(format!("already disabled with another reason, kept: '{reason}'"))
            } else {
                Decision::Do {
                    observed: format!("{} ({})", service.status, service.state.as_deref().unwrap_or("state unknown")),
                    plan: format!("disable with reason '{}'", host.run.disable_reason()),
                    previous: Some(service.status.clone()),
                }
            };
            host.facts.compute_service = Some(service);
            Ok(decision)
        })
    }

    fn act<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Change, ActionError>> {
        Box::pin(async move {
            let service = host.facts.compute_service.clone().expect("observed before acting");
            let reason = host.run.disable_reason();
            let updated = host.run.nova()?.disable_service(&service, &reason).await?;
            Ok(Change(format!("nova-compute {} with reason '{reason}'", updated.status)))
        })
    }
}

/// The Nova hypervisor details and the host's libvirt domains, for the record.
struct RecordState;

impl Action for RecordState {
    fn name(&self) -> &'static str {
        "record-state"
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            let nova = host.run.nova()?;
            let names = nova.compute_host(host.host.as_str()).await?;
            let details = nova.hypervisor_of(host.host.as_str()).await?;
            let nova = match &details {
                Some(hv) => format!(
                    "Nova: compute host {} (names: {}), {} / {}, {} VMs, {} of {} vCPUs and {} of {} MB used",
                    names.service_host,
                    names.mapping,
                    hv.status.as_deref().unwrap_or("?"),
                    hv.state.as_deref().unwrap_or("?"),
                    hv.running_vms.unwrap_or(0),
                    hv.vcpus_used.unwrap_or(0),
                    hv.vcpus.unwrap_or(0),
                    hv.memory_mb_used.unwrap_or(0),
                    hv.memory_mb.unwrap_or(0),
                ),
                None => "Nova: no hypervisor record".to_owned(),
            };
            let domains = hypervisor(host)?.virsh_list().await?;
            host.record_output("libvirt domains", &domains.output);
            Ok(Decision::Recorded { observed: format!("{nova}; libvirt: {} domains", domains.value.len()) })
        })
    }
}
