//! pre-reinstall blocks on a libvirt domain that Nova does not know, before
//! anything is changed but the ticket's status (the library against the lab,
//! with a host whose `virsh list --all` shows a stray domain).

mod drain_common;

use std::sync::Arc;
use std::time::Duration;

use drain_common::{plain_world, DrainSite, Quiet};
use hvmigrate::check_config;
use hvmigrate::clients::http::RetryPolicy;
use hvmigrate::config::KeyMode;
use hvmigrate::ssh::{BoxFuture, CommandOutput, RemoteCommand, RemoteShell, SshError, Target};
use hvmigrate::workflow::context::Services;
use hvmigrate::workflow::host_run::StopSignal;
use hvmigrate::workflow::manager::{self, RunSettings};
use hvmigrate::workflow::report::HostOutcome;
use hvmigrate::workflow::Step;

/// Every host shows one domain that no Nova server stands for.
struct StrayDomain;

impl RemoteShell for StrayDomain {
    fn run<'a>(
        &'a self,
        _target: &'a Target,
        command: &'a RemoteCommand,
    ) -> BoxFuture<'a, Result<CommandOutput, SshError>> {
        Box::pin(async move {
            let line = command.command_line();
            let (exit_status, stdout) = if line == "virsh list --all" {
                (0, " Id   Name                State\n-----------------------------------\n 1    instance-0000dead   running\n".to_owned())
            } else {
                (127, String::new())
            };
            Ok(CommandOutput { command: line, exit_status, stdout, stderr: String::new(), duration: Duration::ZERO })
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_libvirt_has_but_nova_does_not_blocks() {
    let site = DrainSite::start(plain_world(1, 0), "", 1.0).await;
    let host = site.campaign_hosts()[0].clone();
    let (hypervisors, credentials) = check_config::load_inputs(&site.paths, KeyMode::Required).expect("inputs");
    let credentials = Arc::new(credentials);
    let mut services = Services::connect(&credentials, RetryPolicy::default()).await.expect("services");
    services.shell = Some(Arc::new(StrayDomain));
    let settings = RunSettings {
        step: Step::PreReinstall,
        parallel: 1,
        only: Vec::new(),
        dry_run: false,
        force: true,
        redo: None,
        claim: None,
        journal: site.journal.clone(),
    };
    let summary =
        manager::run(&settings, &hypervisors, credentials, Arc::new(services), Arc::new(Quiet), StopSignal::default())
            .await
            .expect("the run starts");
    let report = &summary.hosts[0];
    assert_eq!(report.outcome, HostOutcome::Blocked);
    let reason = report.reason.as_deref().unwrap_or_default();
    assert!(reason.starts_with("empty-check: libvirt has domains: instance-0000dead (running)"), "{reason}");
    assert!(reason.contains("Nova and libvirt disagree"), "{reason}");
    let world = site.world();
    assert!(world.silences.is_empty());
    assert_eq!(world.host(&host).unwrap().aquilon.reimports, 0);
    let device = world.netbox_device(world.host(&host).unwrap().netbox_device.unwrap()).unwrap();
    assert_ne!(device.status, "planned");
}
