//! The drain step against the simulated site: census, capacity, migrations
//! under limits, the three-condition "done", failures, timeouts, resume.

mod drain_common;

use drain_common::{plain_world, DrainSite, FAST_DRAIN};
use hvmigrate::workflow::action::Outcome;
use hvmigrate::workflow::report::{HostOutcome, VmOutcome};

/// Simulated seconds per real second: a 4 GiB VM's migration (4 s) takes 40 ms.
const SCALE: f64 = 100.0;

fn migrations_of(site: &DrainSite, name: &str) -> Vec<(String, String)> {
    let world = site.world();
    let id = world.servers.values().find(|s| s.name == name).expect("server").id.clone();
    world
        .migrations
        .iter()
        .filter(|m| m.server_id == id)
        .map(|m| (m.migration_type.clone(), m.status.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_all_live() {
    let site = DrainSite::start(plain_world(2, 3), FAST_DRAIN, SCALE).await;
    let summary = site.drain(false).await;
    for (host, report) in site.campaign_hosts().iter().zip(&summary.hosts) {
        assert_eq!(report.outcome, HostOutcome::Succeeded, "{:?}", report.reason);
        assert!(site.servers_on(host).is_empty());
        assert_eq!(report.vms.len(), 3);
        for vm in &report.vms {
            assert_eq!(vm.outcome, VmOutcome::Moved);
            assert_eq!(vm.kind, "live");
            let to = vm.to.as_deref().unwrap();
            assert!(!site.campaign_hosts().iter().any(|h| h == to), "never onto a host drained in the run: {to}");
            assert_eq!(migrations_of(&site, &vm.name), [("live-migration".to_owned(), "completed".to_owned())]);
        }
        let comment = site.comments(host).join("\n");
        assert!(comment.contains("VMs moved (3)"), "{comment}");
        assert!(comment.contains(&format!("{} ({}) {host} → ", report.vms[0].name, report.vms[0].id)), "{comment}");
    }
    // A re-run finds nothing to do.
    let again = site.drain(false).await;
    assert!(again.hosts.iter().all(|h| h.outcome == HostOutcome::Succeeded));
    assert!(again.hosts[0].actions.iter().any(|a| a.action == "migrate" && a.outcome == Outcome::Skipped));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_mixed_live_and_cold() {
    let site = DrainSite::start(plain_world(1, 4), FAST_DRAIN, SCALE).await;
    let host = site.campaign_hosts()[0].clone();
    let stopped: Vec<String> = {
        let mut world = site.world();
        let mut servers: Vec<_> = world.servers.values_mut().filter(|s| s.host == host).collect();
        servers
            .iter_mut()
            .take(2)
            .map(|s| {
                s.status = "SHUTOFF".into();
                s.name.clone()
            })
            .collect()
    };
    let summary = site.drain(false).await;
    let report = &summary.hosts[0];
    assert_eq!(report.outcome, HostOutcome::Succeeded, "{:?}", report.reason);
    assert!(site.servers_on(&host).is_empty());
    for name in &stopped {
        assert_eq!(migrations_of(&site, name), [("migration".to_owned(), "confirmed".to_owned())]);
        let world = site.world();
        let server = world.servers.values().find(|s| &s.name == name).unwrap();
        assert_eq!(server.status, "SHUTOFF", "a cold-migrated VM stays off");
        drop(world);
        let row = report.vms.iter().find(|vm| &vm.name == name).unwrap();
        assert_eq!((row.kind.as_str(), row.outcome), ("cold", VmOutcome::Moved));
    }
    assert_eq!(report.vms.iter().filter(|vm| vm.kind == "live" && vm.outcome == VmOutcome::Moved).count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_blocker_vms_are_reported_and_the_rest_moves() {
    let site = DrainSite::start(plain_world(1, 4), FAST_DRAIN, SCALE).await;
    let host = site.campaign_hosts()[0].clone();
    let (broken, paused) = {
        let mut world = site.world();
        let mut servers: Vec<_> = world.servers.values_mut().filter(|s| s.host == host).collect();
        servers[0].status = "ERROR".into();
        servers[1].status = "PAUSED".into();
        (servers[0].name.clone(), servers[1].name.clone())
    };
    let summary = site.drain(false).await;
    let report = &summary.hosts[0];
    assert_eq!(report.outcome, HostOutcome::Blocked);
    let reason = report.reason.clone().unwrap();
    assert!(reason.starts_with("verify-empty: the host is not empty"), "{reason}");
    assert!(reason.contains(&broken) && reason.contains(&paused), "{reason}");
    let mut left = site.servers_on(&host);
    left.sort();
    let mut expected = vec![broken.clone(), paused.clone()];
    expected.sort();
    assert_eq!(left, expected, "only the blockers stay");
    let row = report.vms.iter().find(|vm| vm.name == broken).unwrap();
    assert_eq!(row.outcome, VmOutcome::Blocked);
    assert!(row.reason.as_deref().unwrap().contains("status ERROR"));
    assert!(!row.project.is_empty() && row.project != "?");
    let census = report.actions.iter().find(|a| a.action == "census").unwrap();
    assert!(census.observed.contains(&format!("{broken} (")), "{}", census.observed);
    let comment = site.comments(&host).join("\n");
    assert!(comment.contains("VMs left behind (2)") && comment.contains("VMs moved (2)"), "{comment}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_blocked_without_capacity() {
    let site = DrainSite::start(plain_world(2, 3), FAST_DRAIN, SCALE).await;
    for host in site.world().hosts.iter_mut().filter(|h| !h.in_campaign) {
        host.memory_mib = 2048;
    }
    let summary = site.drain(false).await;
    for report in &summary.hosts {
        assert_eq!(report.outcome, HostOutcome::Blocked);
        let reason = report.reason.as_deref().unwrap();
        assert!(reason.starts_with("capacity: not enough room"), "{reason}");
        assert!(
            reason.contains("MEMORY_MB") && reason.contains("free in Placement") && reason.contains("no room for"),
            "{reason}"
        );
    }
    assert!(site.world().migrations.is_empty(), "nothing was started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_failed_migration_is_reported_then_a_rerun_moves_it() {
    let site = DrainSite::start(plain_world(1, 3), FAST_DRAIN, SCALE).await;
    let host = site.campaign_hosts()[0].clone();
    let failing = {
        let mut world = site.world();
        let server = world.servers.values_mut().find(|s| s.host == host).unwrap();
        server.fail_migration = true;
        server.name.clone()
    };
    let summary = site.drain(false).await;
    let report = &summary.hosts[0];
    assert_eq!(report.outcome, HostOutcome::Failed);
    let row = report.vms.iter().find(|vm| vm.name == failing).unwrap();
    assert_eq!(row.outcome, VmOutcome::Failed);
    let reason = row.reason.as_deref().unwrap();
    assert!(reason.contains("ended in error") && reason.contains(&format!("({host} → ")), "{reason}");
    assert_eq!(report.vms.iter().filter(|vm| vm.outcome == VmOutcome::Moved).count(), 2, "the others went on");
    assert_eq!(site.servers_on(&host), std::slice::from_ref(&failing));

    // The lab's hook fails only once: the re-run moves what is still there.
    let again = site.drain(false).await;
    assert_eq!(again.hosts[0].outcome, HostOutcome::Succeeded, "{:?}", again.hosts[0].reason);
    assert_eq!(again.hosts[0].vms.len(), 1);
    assert!(site.servers_on(&host).is_empty());

    // The journal holds every VM's migration, for the reports: 3 tried, 1 failed, 4 in all.
    let journal = hvmigrate::journal::Journal::open_read_only(&site.journal).unwrap().unwrap();
    let report = hvmigrate::report::from_journal(&journal, &Default::default(), jiff::Timestamp::now()).unwrap();
    let migrations = &report.hold_ups.migrations;
    assert_eq!((migrations.count, migrations.failures, migrations.not_started), (4, 1, 0), "{migrations:?}");
    assert_eq!((migrations.moves_per_vm, migrations.most_moves_of_one_vm), (1.0, 1));
    assert!(migrations.max_s > 0.0, "{migrations:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_retry_once_moves_a_vm_whose_first_migration_fails() {
    let settings = format!("{FAST_DRAIN}    on_failure: retry_once\n");
    let site = DrainSite::start(plain_world(1, 2), &settings, SCALE).await;
    let host = site.campaign_hosts()[0].clone();
    let failing = {
        let mut world = site.world();
        let server = world.servers.values_mut().find(|s| s.host == host).unwrap();
        server.fail_migration = true;
        server.name.clone()
    };
    let summary = site.drain(false).await;
    assert_eq!(summary.hosts[0].outcome, HostOutcome::Succeeded, "{:?}", summary.hosts[0].reason);
    let row = summary.hosts[0].vms.iter().find(|vm| vm.name == failing).unwrap();
    assert!(row.reason.as_deref().unwrap().contains("second attempt"));
    assert_eq!(migrations_of(&site, &failing).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_hung_migration_times_out_and_is_aborted() {
    let settings =
        "workflow:\n  drain:\n    poll_interval_ms: 10\n    timeout_base_secs: 1\n    timeout_secs_per_gib: 0\n";
    let site = DrainSite::start(plain_world(1, 2), settings, SCALE).await;
    let host = site.campaign_hosts()[0].clone();
    let hanging = {
        let mut world = site.world();
        let server = world.servers.values_mut().find(|s| s.host == host).unwrap();
        server.hang_migration = true;
        server.name.clone()
    };
    let summary = site.drain(false).await;
    let report = &summary.hosts[0];
    assert_eq!(report.outcome, HostOutcome::Failed);
    let row = report.vms.iter().find(|vm| vm.name == hanging).unwrap();
    let reason = row.reason.as_deref().unwrap();
    assert!(reason.contains("did not finish within 1.0 s") && reason.contains("aborted"), "{reason}");
    assert_eq!(migrations_of(&site, &hanging), [("live-migration".to_owned(), "cancelled".to_owned())]);
    assert_eq!(site.servers_on(&host), [hanging]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_completed_migration_on_the_old_host_is_not_done() {
    let settings =
        "workflow:\n  drain:\n    poll_interval_ms: 10\n    timeout_base_secs: 2\n    timeout_secs_per_gib: 0\n";
    let site = DrainSite::start(plain_world(1, 2), settings, SCALE).await;
    let host = site.campaign_hosts()[0].clone();
    let stale = {
        let mut world = site.world();
        let server = world.servers.values_mut().find(|s| s.host == host).unwrap();
        server.stale_host_after_migration = true;
        server.name.clone()
    };
    let summary = site.drain(false).await;
    let report = &summary.hosts[0];
    assert_eq!(report.outcome, HostOutcome::Failed);
    let row = report.vms.iter().find(|vm| vm.name == stale).unwrap();
    assert_eq!(row.outcome, VmOutcome::Failed);
    let reason = row.reason.as_deref().unwrap();
    assert!(reason.contains("completed") && reason.contains("has not settled on another host"), "{reason}");
    assert_eq!(migrations_of(&site, &stale), [("live-migration".to_owned(), "completed".to_owned())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_never_exceeds_the_concurrency_limits() {
    let settings = format!("{FAST_DRAIN}  limits:\n    live_migrations_global: 3\n    live_migrations_per_host: 2\n");
    let site = DrainSite::start(plain_world(4, 4), &settings, SCALE).await;
    let summary = site.drain(false).await;
    assert!(summary.hosts.iter().all(|h| h.outcome == HostOutcome::Succeeded));
    let world = site.world();
    assert_eq!(world.migrations.len(), 16);
    assert!(world.max_concurrent_migrations <= 3, "global: {}", world.max_concurrent_migrations);
    assert!(
        world.max_concurrent_migrations_per_source <= 2,
        "per host: {}",
        world.max_concurrent_migrations_per_source
    );
    assert!(world.max_concurrent_migrations >= 2, "the limits are used, not just respected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_dry_run_plans_without_moving() {
    let site = DrainSite::start(plain_world(1, 3), FAST_DRAIN, SCALE).await;
    let summary = site.drain(true).await;
    let report = &summary.hosts[0];
    assert_eq!(report.outcome, HostOutcome::Planned, "{:?}", report.reason);
    let names: Vec<_> = report.actions.iter().map(|a| (a.action.as_str(), a.outcome.label())).collect();
    assert_eq!(
        names,
        [
            ("compute-disabled", "ok"),
            ("census", "recorded"),
            ("capacity", "recorded"),
            ("migrate", "would do"),
            ("verify-empty", "would do"),
        ]
    );
    let plan = report.actions[3].outcome.detail().unwrap();
    assert_eq!(plan.matches("live-migrate vm-").count(), 3, "{plan}");
    assert!(report.actions[2].observed.contains("3 VMs need"), "{}", report.actions[2].observed);
    assert!(site.world().migrations.is_empty());

    // A VM that cannot move makes the plan say the host will not end empty.
    let host = site.campaign_hosts()[0].clone();
    let broken = {
        let mut world = site.world();
        let server = world.servers.values_mut().find(|s| s.host == host).unwrap();
        server.status = "ERROR".into();
        server.name.clone()
    };
    let summary = site.drain(true).await;
    assert_eq!(summary.hosts[0].outcome, HostOutcome::Blocked);
    let reason = summary.hosts[0].reason.as_deref().unwrap();
    assert!(reason.starts_with("verify-empty: the host will not be empty") && reason.contains(&broken), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_awaits_a_migration_already_in_progress() {
    // A slow site (4 to 10 s a migration), so the migration started "by an
    // earlier run" is still going when the drain looks, even on a loaded machine.
    let site = DrainSite::start(plain_world(1, 2), FAST_DRAIN, 1.0).await;
    let host = site.campaign_hosts()[0].clone();
    let (id, name) = {
        let world = site.world();
        let server = world.servers.values().find(|s| s.host == host).unwrap();
        (server.id.clone(), server.name.clone())
    };
    let (_, credentials) =
        hvmigrate::check_config::load_inputs(&site.paths, hvmigrate::config::KeyMode::Required).unwrap();
    let services = hvmigrate::workflow::context::Services::connect(&credentials, Default::default()).await.unwrap();
    services.nova.as_ref().unwrap().live_migrate(&id, None).await.unwrap();

    let summary = site.drain(false).await;
    assert_eq!(summary.hosts[0].outcome, HostOutcome::Succeeded, "{:?}", summary.hosts[0].reason);
    let census = summary.hosts[0].actions.iter().find(|a| a.action == "census").unwrap();
    assert!(census.observed.contains("1 migrations in progress to await"), "{}", census.observed);
    assert_eq!(migrations_of(&site, &name).len(), 1, "awaited, not restarted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_notes_a_vm_the_scheduler_sent_to_another_host_of_the_run() {
    let site = DrainSite::start(plain_world(2, 2), FAST_DRAIN, SCALE).await;
    let hosts = site.campaign_hosts();
    {
        let mut world = site.world();
        // The second host's pre-drain did not happen, and the spares have less free RAM than it.
        let second = world.host_mut(&hosts[1]).unwrap();
        second.compute.status = "enabled".into();
        second.compute.disabled_reason = None;
        for spare in world.hosts.iter_mut().filter(|h| !h.in_campaign) {
            spare.memory_mib = 65_536;
        }
    }
    let summary = site.drain(false).await;
    assert_eq!(summary.hosts[0].outcome, HostOutcome::Succeeded, "{:?}", summary.hosts[0].reason);
    assert_eq!(summary.hosts[1].outcome, HostOutcome::Blocked);
    assert!(summary.hosts[1].reason.as_deref().unwrap().contains("nova-compute is enabled"));
    for vm in &summary.hosts[0].vms {
        assert_eq!(vm.to.as_deref(), Some(hosts[1].as_str()), "the scheduler's choice");
        assert!(vm.reason.as_deref().unwrap().contains("a host of this run whose nova-compute is still enabled"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_abort_host_starts_nothing_after_a_failure() {
    let settings = format!("{FAST_DRAIN}    on_failure: abort_host\n  limits:\n    live_migrations_per_host: 1\n");
    let site = DrainSite::start(plain_world(1, 4), &settings, SCALE).await;
    for server in site.world().servers.values_mut() {
        server.fail_migration = true;
    }
    let summary = site.drain(false).await;
    let report = &summary.hosts[0];
    assert_eq!(report.outcome, HostOutcome::Failed);
    let count = |outcome| report.vms.iter().filter(|vm| vm.outcome == outcome).count();
    assert_eq!((count(VmOutcome::Failed), count(VmOutcome::Blocked)), (1, 3));
    assert!(report.vms.iter().filter(|vm| vm.outcome == VmOutcome::Blocked).all(|vm| vm
        .reason
        .as_deref()
        .unwrap()
        .contains("not started")));
    assert_eq!(site.world().migrations.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_hosts_draining_at_once_do_not_count_the_same_room_twice() {
    let site = DrainSite::start(plain_world(2, 2), FAST_DRAIN, SCALE).await;
    {
        let mut world = site.world();
        for server in world.servers.values_mut() {
            (server.vcpus, server.ram_mb) = (2, 4096);
        }
        // Room for one VM on each spare: one host's two VMs, not both hosts'.
        for spare in world.hosts.iter_mut().filter(|h| !h.in_campaign) {
            spare.memory_mib = 6144;
        }
    }
    let summary = site.drain(false).await;
    let outcomes: Vec<HostOutcome> = summary.hosts.iter().map(|h| h.outcome).collect();
    assert!(outcomes.contains(&HostOutcome::Succeeded) && outcomes.contains(&HostOutcome::Blocked), "{outcomes:?}");
    let blocked = summary.hosts.iter().find(|h| h.outcome == HostOutcome::Blocked).unwrap();
    assert!(blocked.reason.as_deref().unwrap().starts_with("capacity: not enough room"), "{:?}", blocked.reason);
    assert_eq!(site.world().migrations.len(), 2, "only the host with room moved its VMs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_settings_move_paused_vms_and_skip_named_ones() {
    let site = DrainSite::start(plain_world(1, 4), FAST_DRAIN, SCALE).await;
    let host = site.campaign_hosts()[0].clone();
    let (paused, suspended, skipped) = {
        let mut world = site.world();
        let mut servers: Vec<_> = world.servers.values_mut().filter(|s| s.host == host).collect();
        servers[0].status = "PAUSED".into();
        servers[1].status = "SUSPENDED".into();
        (servers[0].name.clone(), servers[1].name.clone(), servers[2].name.clone())
    };
    let settings = format!("{FAST_DRAIN}    allow_cold_migrate_paused: true\n    skip_servers: [{skipped}]\n");
    let credentials = std::fs::read_to_string(&site.paths.creds_file).unwrap().replace(FAST_DRAIN, &settings);
    std::fs::write(&site.paths.creds_file, credentials).unwrap();

    let summary = site.drain(false).await;
    let report = &summary.hosts[0];
    assert_eq!(report.outcome, HostOutcome::Blocked);
    let row = |name: &str| report.vms.iter().find(|vm| vm.name == name).unwrap().clone();
    assert_eq!((row(&paused).outcome, row(&paused).kind.as_str()), (VmOutcome::Moved, "live"));
    assert_eq!(site.world().servers.values().find(|s| s.name == paused).unwrap().status, "PAUSED", "still paused");
    assert!(row(&suspended).reason.unwrap().contains("neither live nor cold"));
    assert!(row(&skipped).reason.unwrap().contains("skip_servers"));
    let mut left = site.servers_on(&host);
    left.sort();
    let mut expected = vec![suspended, skipped];
    expected.sort();
    assert_eq!(left, expected);
}
