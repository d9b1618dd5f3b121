//! Actions several steps share.

use crate::hosts::hypervisor::Hypervisor;
use crate::ssh::{RemoteCommand, SshError, Target};

use crate::workflow::action::{Action, ActionError, BoxFuture, Decision};
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
                Ok(Decision::done(observed))
            } else {
                Ok(Decision::blocked(observed, format!("NetBox status is {status}, not one of {}", allowed.join(", "))))
            }
        })
    }
}
