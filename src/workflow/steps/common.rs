//! Actions several steps share.

use crate::clients::alertmanager::Matcher;
use crate::config::workflow::Transitions;
use crate::hosts::hypervisor::{Hypervisor, PciDevices};
use crate::ssh::{RemoteCommand, SshError, Target};

use crate::workflow::action::{Action, ActionError, BoxFuture, Change, Decision};
use crate::workflow::context::HostContext;

/// The hypervisor of this host, driven as root.
pub fn hypervisor(host: &HostContext) -> Result<Hypervisor, ActionError> {
    Ok(Hypervisor::new(host.run.shell()?.clone(), host.host.as_str()))
}

/// Root can log in on the hypervisor with the operator's key.
pub async fn root_login_works(host: &HostContext) -> Result<bool, ActionError> {
    let probe = RemoteCommand::new("root-probe", "true");
    match host.run.shell()?.run(&Target::root(host.host.as_str()), &probe).await {
        Ok(output) => Ok(output.success()),
        Err(SshError::AuthenticationRefused { .. }) => Ok(false),
        Err(err) => Err(err.into()),
    }
}

/// One matcher set per entry of `workflow.silence.matchers`, filled in for
/// this host (`hostname="<fqdn>"`, `instance=~"<fqdn>(:[0-9]+)?"` by default).
pub fn silence_matchers(host: &HostContext) -> Vec<Vec<Matcher>> {
    let settings = &host.run.credentials.workflow.silence.matchers;
    settings
        .iter()
        .map(|setting| {
            let (name, regex, value) = setting.for_host(host.host.as_str());
            vec![if regex { Matcher::regex(&name, &value) } else { Matcher::equal(&name, &value) }]
        })
        .collect()
}

/// What an action decides when Nova knows no nova-compute service on the host.
pub fn no_compute_service(host: &HostContext) -> Decision {
    Decision::blocked("no service", format!("Nova has no nova-compute service on {}", host.host))
}

/// The NetBox device with this host's exact name exists.
pub struct NetBoxDevice {
    /// Whether its status must be one the settings allow before a drain.
    pub check_pre_drain_status: bool,
}

impl Action for NetBoxDevice {
    fn name(&self) -> &'static str {
        "netbox-device"
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            let Some(device) = host.run.netbox()?.find_device(host.host.as_str()).await? else {
                return Ok(Decision::blocked("no device", format!("there is no device named {} in NetBox", host.host)));
            };
            let status = device.status.value.to_lowercase();
            let url = device.url.clone().unwrap_or_default();
            let observed = format!("device #{} ({url}), status {status}", device.id);
            host.facts.netbox_device = Some(device);
            let allowed = &host.run.credentials.workflow.netbox.pre_drain_statuses;
            if !self.check_pre_drain_status || allowed.iter().any(|allowed| allowed.eq_ignore_ascii_case(&status)) {
                Ok(Decision::passed(observed))
            } else {
                Ok(Decision::blocked(observed, format!("NetBox status is {status}, not one of {}", allowed.join(", "))))
            }
        })
    }
}

/// The PCI devices of the host, read once for the step.
pub async fn pci_devices(host: &mut HostContext) -> Result<PciDevices, ActionError> {
    if let Some(devices) = &host.facts.pci_devices {
        return Ok(devices.clone());
    }
    let devices = hypervisor(host)?.pci_devices().await?.value;
    host.facts.pci_devices = Some(devices.clone());
    Ok(devices)
}

/// When NetBox says the device type has a GPU, `lspci` shows an NVIDIA card.
pub struct GpuCheck;

impl Action for GpuCheck {
    fn name(&self) -> &'static str {
        "gpu-check"
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            let netbox = host.run.netbox()?;
            let device = match host.facts.netbox_device.clone() {
                Some(device) => device,
                None => match netbox.find_device(host.host.as_str()).await? {
                    Some(device) => device,
                    None => {
                        let reason = format!("there is no device named {} in NetBox", host.host);
                        return Ok(Decision::blocked("no device", reason));
                    }
                },
            };
            let device_type = match &device.device_type {
                Some(nested) => Some(netbox.device_type(nested.id).await?),
                None => None,
            };
            let description = device_type.as_ref().map(|kind| kind.description.clone()).unwrap_or_default();
            host.facts.netbox_device = Some(device);
            host.facts.device_type = device_type;
            let expects_gpu = description.to_lowercase().contains("gpu");
            let devices = pci_devices(host).await?;
            // No NVIDIA line is an answer, not an error (the original's grep aborted here).
            let nvidia: Vec<String> =
                devices.nvidia().iter().map(|d| format!("{} {}", d.slot, d.description)).collect();
            let found = if nvidia.is_empty() { "no NVIDIA device".to_owned() } else { nvidia.join("; ") };
            let observed = format!("device type '{description}'; lspci: {found}");
            Ok(match (expects_gpu, nvidia.is_empty()) {
                (true, false) | (false, true) => Decision::passed(observed),
                (true, true) => Decision::blocked(
                    observed,
                    "NetBox says the device type has a GPU but lspci shows no NVIDIA device: check the hardware \
                     or NetBox",
                ),
                (false, false) => Decision::Recorded {
                    observed: format!("{observed} (mismatch: NetBox's device type does not mention a GPU)"),
                },
            })
        })
    }
}

/// The ticket is in a status of the Jira workflow; a status the ticket
/// cannot reach from where it is blocks, naming the transitions it offers.
pub struct JiraStatus {
    pub name: &'static str,
    pub target: fn(&Transitions) -> &String,
    /// The status the step ends in on success: a re-run finds it there and leaves it.
    pub finished: fn(&Transitions) -> &String,
}

impl Action for JiraStatus {
    fn name(&self) -> &'static str {
        self.name
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            let target = (self.target)(&host.run.credentials.workflow.transitions).clone();
            let jira = host.run.jira()?;
            let key = host.key.as_str();
            let status = jira.issue(key).await?.status.name;
            let finished = (self.finished)(&host.run.credentials.workflow.transitions);
            if status.eq_ignore_ascii_case(&target) || status.eq_ignore_ascii_case(finished) {
                return Ok(Decision::done(format!("{key} is in '{status}'")));
            }
            let transitions = jira.transitions(key).await?;
            if transitions
                .iter()
                .any(|t| t.to.name.eq_ignore_ascii_case(&target) || t.name.eq_ignore_ascii_case(&target))
            {
                return Ok(Decision::Do {
                    observed: format!("{key} is in '{status}'"),
                    plan: format!("move {key} to '{target}'"),
                    previous: Some(status),
                });
            }
            let available: Vec<String> = transitions.iter().map(|t| format!("'{}'", t.to.name)).collect();
            let available = if available.is_empty() { "none".to_owned() } else { available.join(", ") };
            Ok(Decision::blocked(
                format!("{key} is in '{status}'"),
                format!("{key} cannot move to '{target}' from '{status}'; available: {available}"),
            ))
        })
    }

    fn act<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Change, ActionError>> {
        Box::pin(async move {
            let target = (self.target)(&host.run.credentials.workflow.transitions).clone();
            host.run.jira()?.transition_to(host.key.as_str(), &target).await?;
            Ok(Change(format!("{} moved to '{target}'", host.key)))
        })
    }
}
