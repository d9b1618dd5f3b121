//! setup: root SSH access for the operator's key.

use crate::hosts::hypervisor::{ensure_root_access, read_public_key, RootAccess, Sudo};
use crate::ssh::SshOptions;
use crate::workflow::action::{Action, ActionError, BoxFuture, Change, Decision};
use crate::workflow::context::HostContext;
use crate::workflow::Step;

use super::common::root_login_works;
use super::{JiraStatuses, StepPlan};

pub fn plan() -> StepPlan {
    StepPlan {
        step: Step::Setup,
        actions: vec![Box::new(RootAccessAction)],
        jira: JiraStatuses::default(),
        services: &["ssh"],
    }
}

/// Root logs in with the operator's key; if not, the key is added through sudo.
pub(super) struct RootAccessAction;

impl Action for RootAccessAction {
    fn name(&self) -> &'static str {
        "root-access"
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            if root_login_works(host).await? {
                return Ok(Decision::done("root login with the operator's key works"));
            }
            let user = &host.run.credentials.ssh.as_ref().expect("ssh is configured").username;
            Ok(Decision::act(
                "root login refused",
                format!("log in as {user} and add the operator's public key to /root/.ssh/authorized_keys with sudo"),
            ))
        })
    }

    fn act<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Change, ActionError>> {
        Box::pin(async move {
            let run = host.run.clone();
            let ssh = run.credentials.ssh.as_ref().expect("ssh is configured");
            let key_path = SshOptions::from_config(ssh).key_path.unwrap_or_else(|| ssh.key_path.clone());
            let public_key = read_public_key(&key_path)
                .map_err(|err| ActionError(format!("cannot read {}.pub: {err}", key_path.display())))?;
            let sudo = match (&ssh.sudo.enabled, &ssh.sudo.password) {
                (false, _) => Sudo::Disabled,
                (true, Some(password)) => Sudo::Password(password.clone()),
                (true, None) => Sudo::NoPassword,
            };
            let shell = host.run.shell()?.clone();
            match ensure_root_access(shell, host.host.as_str(), &ssh.username, &public_key, &sudo).await {
                Ok(RootAccess::AlreadyGranted) => Ok(Change("root login already worked".into())),
                Ok(RootAccess::Granted(output)) => {
                    host.record_output("root access", &output);
                    Ok(Change(format!("added the operator's key for root through {}", ssh.username)))
                }
                Err(err) => Err(ActionError(err.to_string())),
            }
        })
    }
}
