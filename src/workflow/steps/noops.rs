//! noops: the preflight. Reaches every service and host the campaign needs,
//! for every host of the list, and changes nothing.

use crate::ssh::{RemoteCommand, Target};
use crate::workflow::action::{Action, ActionError, BoxFuture, Decision};
use crate::workflow::context::HostContext;
use crate::workflow::Step;

use super::common::{no_compute_service, root_login_works, NetBoxDevice};
use super::{JiraStatuses, StepPlan};

pub fn plan() -> StepPlan {
    StepPlan {
        step: Step::Noops,
        actions: vec![
            Box::new(ServiceCredentials),
            Box::new(Ticket),
            Box::new(NetBoxDevice { check_pre_drain_status: false }),
            Box::new(ComputeService),
            Box::new(RootSsh),
            Box::new(AquilonHost),
            Box::new(KayobeHost),
        ],
        jira: JiraStatuses::default(),
        services: &["jira", "netbox", "openstack", "ssh"],
    }
}

/// An action that only observes, from its name and an async body.
macro_rules! observe_only {
    ($action:ty, $name:literal, |$host:ident| $body:block) => {
        impl Action for $action {
            fn name(&self) -> &'static str {
                $name
            }

            fn observe<'a>(&'a self, $host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
                Box::pin(async move { $body })
            }
        }
    };
}

/// Every configured service accepts the credentials; checked once for the
/// run, whichever host asks first.
struct ServiceCredentials;

observe_only!(ServiceCredentials, "service-credentials", |host| {
    let run = &host.run;
    let checks = run.services_checked.get_or_init(|| crate::reach::check_all(&run.credentials)).await;
    let seen: Vec<String> = checks
        .iter()
        .map(|check| {
            format!("{} {}", check.service, check.version.as_deref().unwrap_or(if check.ok { "ok" } else { "failed" }))
        })
        .collect();
    let failed: Vec<String> =
        checks.iter().filter(|check| !check.ok).map(|check| format!("{}: {}", check.service, check.detail)).collect();
    if failed.is_empty() {
        Ok(Decision::Recorded { observed: seen.join(", ") })
    } else {
        Ok(Decision::blocked(seen.join(", "), failed.join("; ")))
    }
});

/// The host's Jira issue exists.
struct Ticket;

observe_only!(Ticket, "jira-ticket", |host| {
    let issue = host.run.jira()?.issue(host.key.as_str()).await?;
    Ok(Decision::Recorded { observed: format!("{} is in '{}'", host.key, issue.status.name) })
});

/// Nova knows the host's compute service.
struct ComputeService;

observe_only!(ComputeService, "nova-service", |host| {
    match host.run.nova()?.compute_service(host.host.as_str()).await? {
        Some(service) => Ok(Decision::Recorded {
            observed: format!(
                "nova-compute {} / {}{}",
                service.status,
                service.state.as_deref().unwrap_or("?"),
                service.disabled_reason.as_deref().map(|reason| format!(" ({reason})")).unwrap_or_default()
            ),
        }),
        None => Ok(no_compute_service(host)),
    }
});

/// Root logs in on the hypervisor.
struct RootSsh;

observe_only!(RootSsh, "ssh-root", |host| {
    if root_login_works(host).await? {
        Ok(Decision::Recorded { observed: "root login works".into() })
    } else {
        Ok(Decision::blocked("root login refused", "root login with the operator's key is refused: run the setup step"))
    }
});

/// The Aquilon host answers over SSH.
struct AquilonHost;

observe_only!(AquilonHost, "aquilon-host", |host| {
    let aquilon = host.run.credentials.aquilon.as_ref();
    probe_helper(host, "aquilon", aquilon.map(|aq| Target::new(&aq.username, &aq.host))).await
});

/// The Kayobe host answers over SSH.
struct KayobeHost;

observe_only!(KayobeHost, "kayobe-host", |host| {
    let kayobe = host.run.credentials.kayobe.as_ref();
    probe_helper(host, "kayobe", kayobe.map(|k| Target::new(&k.username, &k.host))).await
});

async fn probe_helper(host: &HostContext, label: &str, target: Option<Target>) -> Result<Decision, ActionError> {
    let Some(target) = target else {
        return Ok(Decision::Recorded { observed: format!("{label}: not configured") });
    };
    let output = host.run.shell()?.run(&target, &RemoteCommand::new("probe", "true")).await?;
    if output.success() {
        Ok(Decision::Recorded { observed: format!("{label}: {target} answers") })
    } else {
        Ok(Decision::blocked(format!("{label}: exit {}", output.exit_status), format!("{target} did not run `true`")))
    }
}
