//! pre-reinstall through the real binary against the simulated site (real
//! SSH to the hypervisors, the Aquilon host and the Kayobe host): each
//! hardware model, the blockers, a re-run that changes nothing, and kill -9.

mod support;

use std::time::{Duration, Instant};

use hvmigrate_lab::{SshFaultConfig, WorldOptions};
use support::lab_site::{action, json, report_of, LabSite};

/// Six hosts: [0] missing from NetBox, [1] standard, [2] GPU, [3] Mellanox,
/// [4] A100, [5] Lenovo. Every host is emptied and disabled, root access
/// is set up and the drain has succeeded, so pre-reinstall runs without --force.
fn drained_site() -> (LabSite, Vec<String>) {
    let site = LabSite::start(WorldOptions { hosts: 6, vms_per_host: Some(0), ..WorldOptions::default() });
    let hosts = site.campaign_hosts();
    {
        let mut world = site.world();
        world.servers.clear();
        for host in world.hosts.iter_mut().filter(|host| host.in_campaign) {
            host.compute.status = "disabled".into();
            host.compute.disabled_reason = Some("Migration to Rocky 9 - LAB".into());
        }
        // A second Mellanox host, so the playbook has a batch of two.
        let card = world.host(&hosts[3]).unwrap().pci.last().unwrap().clone();
        world.host_mut(&hosts[1]).unwrap().pci.push(card);
    }
    site.hvmigrate(&["run", "--step", "setup", "--parallel", "-q"]).expect_code(0);
    site.hvmigrate(&["run", "--step", "drain", "--force", "--parallel", "-q"]).expect_code(0);
    (site, hosts)
}

fn pre_reinstall(site: &LabSite, extra: &[&str]) -> support::Outcome {
    let mut args = vec!["run", "--step", "pre-reinstall", "--yes", "--parallel", "--output", "json", "-q"];
    args.extend_from_slice(extra);
    site.hvmigrate(&args).run()
}

fn service_history(site: &LabSite, name: &str) -> Vec<String> {
    let world = site.world();
    let (_, shell) = world.service_hosts.iter().find(|(host, _)| host.starts_with(name)).expect("service host");
    shell.history.clone()
}

fn jira_status(site: &LabSite, host: &str) -> String {
    let world = site.world();
    let key = world.host(host).unwrap().jira_key.clone().unwrap();
    world.jira_issue(&key).unwrap().status.clone()
}

#[test]
fn every_model_is_prepared_and_a_rerun_changes_nothing() {
    let (site, hosts) = drained_site();
    let out = pre_reinstall(&site, &[]);
    assert_eq!(out.code, 1, "the host missing from NetBox blocks\n{}", out.report());
    let summary = json(&out);
    let missing = report_of(&summary, &hosts[0]);
    assert_eq!(missing["outcome"], "blocked");
    assert!(missing["reason"].as_str().unwrap().contains("no device named"), "{}", out.report());
    for host in &hosts[1..] {
        let report = report_of(&summary, host);
        assert_eq!(report["outcome"], "succeeded", "{host}\n{}", out.report());
        assert_eq!(action(report, "jira-start")["outcome"], "done");
        assert_eq!(action(report, "silences")["outcome"], "done");
        assert!(action(report, "ipmi-address")["observed"]
            .as_str()
            .unwrap()
            .contains("IPMI address according to NetBox: 10."));
        assert_eq!(jira_status(&site, host), "Ready For Reinstall");
    }
    // The GPU models: NetBox says GPU and lspci shows NVIDIA.
    for host in [&hosts[2], &hosts[4]] {
        let gpu = action(report_of(&summary, host), "gpu-check");
        assert_eq!(gpu["outcome"], "ok", "{gpu}");
        assert!(gpu["observed"].as_str().unwrap().contains("NVIDIA"), "{gpu}");
    }
    // The Mellanox hosts: one playbook run for both.
    for host in [&hosts[1], &hosts[3]] {
        let mellanox = action(report_of(&summary, host), "mellanox-uefi-pxe");
        assert_eq!(mellanox["outcome"], "done", "{mellanox}");
        assert!(mellanox["change"].as_str().unwrap_or_default().contains("batch of 2 host(s)"), "{mellanox}");
    }
    assert_eq!(action(report_of(&summary, &hosts[2]), "mellanox-uefi-pxe")["outcome"], "skipped");
    assert_eq!(site.world().kayobe_runs.mellanox, 1, "one playbook run for both");
    // The job's start names the playbook; the looks at it name only its folder.
    let playbook_runs: Vec<String> =
        service_history(&site, "kayobe").into_iter().filter(|line| line.contains("ansible-playbook")).collect();
    assert_eq!(playbook_runs.len(), 1, "{playbook_runs:#?}");
    assert!(playbook_runs[0].contains(&hosts[1]) && playbook_runs[0].contains(&hosts[3]), "{playbook_runs:#?}");
    // The A100 host loses its sda in Aquilon; the others keep theirs.
    assert_eq!(action(report_of(&summary, &hosts[4]), "aquilon-disks")["outcome"], "done");
    assert_eq!(action(report_of(&summary, &hosts[5]), "aquilon-disks")["outcome"], "skipped");
    {
        let world = site.world();
        for host in &hosts[1..] {
            let aquilon = &world.host(host).unwrap().aquilon;
            assert_eq!(aquilon.reimports, 1, "{host}");
            assert!(aquilon.pxe_install, "{host}");
            assert_eq!((aquilon.personality.as_str(), aquilon.osversion.as_str()), ("kayobe-prod", "9x-x86_64"));
            let names: Vec<&str> = aquilon.interfaces.iter().map(|i| i.name.as_str()).collect();
            assert!(names.iter().all(|name| ["bmc0", "eth0"].contains(name)), "{host}: {names:?}");
            assert_eq!(aquilon.disks.contains(&"sda".to_owned()), host != &hosts[4], "{host}: {:?}", aquilon.disks);
            let device = world.netbox_device(world.host(host).unwrap().netbox_device.unwrap()).unwrap();
            assert_eq!(device.status, "planned");
            let silences = world.silences.iter().filter(|s| s.matchers.iter().any(|m| m.matches_value(host))).count();
            assert_eq!(silences, 2, "{host}: hostname and instance");
        }
    }
    let comments: Vec<usize> = hosts[1..].iter().map(|host| site.comments(host).len()).collect();
    assert!(site.comments(&hosts[4]).last().unwrap().contains("IPMI address according to NetBox"));

    // The second run: everything is found done; nothing is written anywhere.
    site.lab.requests().clear();
    let aquilon_before = service_history(&site, "aquilon").len();
    let kayobe_before = service_history(&site, "kayobe").len();
    let again = json(&pre_reinstall(&site, &["--only", &hosts[1], "--only", &hosts[3], "--only", &hosts[4]]));
    for host in [&hosts[1], &hosts[3], &hosts[4]] {
        let report = report_of(&again, host);
        assert_eq!(report["outcome"], "succeeded", "{report}");
        for action in report["actions"].as_array().unwrap() {
            assert_ne!(action["outcome"], "done", "{host}: {action}");
        }
    }
    // Logging in to Keystone is the only POST a re-run makes.
    let writes: Vec<_> = site.lab.requests().writes().into_iter().filter(|r| r.path != "/v3/auth/tokens").collect();
    assert!(writes.is_empty(), "a re-run writes nothing: {writes:#?}");
    let aquilon_new: Vec<String> = service_history(&site, "aquilon").split_off(aquilon_before);
    assert!(aquilon_new.iter().all(|line| line.starts_with("aq show host")), "{aquilon_new:#?}");
    assert_eq!(service_history(&site, "kayobe").len(), kayobe_before);
    let world = site.world();
    for host in &hosts[1..] {
        assert_eq!(world.host(host).unwrap().aquilon.reimports, 1);
    }
    drop(world);
    assert_eq!(hosts[1..].iter().map(|host| site.comments(host).len()).collect::<Vec<_>>(), comments);
}

#[test]
fn a_server_nova_knows_but_libvirt_does_not_blocks() {
    let (site, hosts) = drained_site();
    {
        // An ERROR server has no libvirt domain: Nova and virsh disagree.
        let mut world = site.world();
        let mut server = stray_server(&world);
        server.host = hosts[1].clone();
        server.status = "ERROR".into();
        world.servers.insert(server.id.clone(), server);
    }
    let out = pre_reinstall(&site, &["--only", &hosts[1]]);
    assert_eq!(out.code, 1, "{}", out.report());
    let report = report_of(&json(&out), &hosts[1]).clone();
    assert_eq!(report["outcome"], "blocked");
    let reason = report["reason"].as_str().unwrap();
    assert!(reason.starts_with("empty-check: Nova lists servers on the host"), "{reason}");
    assert!(reason.contains("Nova and libvirt disagree"), "{reason}");
    let world = site.world();
    assert_eq!(world.host(&hosts[1]).unwrap().aquilon.reimports, 0, "nothing destructive ran");
    assert!(world.silences.is_empty());
    drop(world);
    assert_eq!(jira_status(&site, &hosts[1]), "Pre Bios Failed");
}

/// A server record to place on a host (the lab makes them only at start).
fn stray_server(world: &hvmigrate_lab::WorldState) -> hvmigrate_lab::world::Server {
    hvmigrate_lab::world::Server {
        id: "0b5c7d0e-1111-4222-8333-944455556666".into(),
        name: "vm-stray".into(),
        project_id: world.projects[0].id.clone(),
        user_id: "u".repeat(32),
        status: "ACTIVE".into(),
        task_state: None,
        host: String::new(),
        vcpus: 2,
        ram_mb: 4096,
        disk_gb: 20,
        flavor_name: "m1.small".into(),
        instance_name: "instance-0000beef".into(),
        created: "2026-01-05T09:00:00Z".into(),
        fail_migration: false,
        hang_migration: false,
        stale_host_after_migration: false,
        no_allocation: false,
    }
}

#[test]
fn a_failing_aquilon_command_fails_the_step_and_a_rerun_finishes_the_import() {
    let (site, hosts) = drained_site();
    let host = &hosts[5];
    // netbox2aquilon cannot find the device: the re-import stops after the delete.
    let device = site.world().host_mut(host).unwrap().netbox_device.take();
    let out = pre_reinstall(&site, &["--only", host]);
    assert_eq!(out.code, 1, "{}", out.report());
    let report = report_of(&json(&out), host).clone();
    assert_eq!(report["outcome"], "failed", "{report}");
    let reason = report["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("aquilon-reimport:") && reason.contains("netbox2aquilon failed with exit status 1"),
        "{reason}"
    );
    assert_eq!(jira_status(&site, host), "Pre Bios Failed");
    assert!(!site.world().host(host).unwrap().aquilon.host_exists);

    site.world().host_mut(host).unwrap().netbox_device = device;
    let out = pre_reinstall(&site, &["--only", host]);
    let summary = json(&out);
    let report = report_of(&summary, host);
    assert_eq!(report["outcome"], "succeeded", "{}", out.report());
    assert_eq!(action(report, "jira-start")["outcome"], "done", "from Pre Bios Failed back to work");
    assert_eq!(action(report, "silences")["outcome"], "skipped", "the first run's silences are reused");
    assert_eq!(action(report, "aquilon-reimport")["observed"], "Aquilon does not know the host");
    let world = site.world();
    assert_eq!(world.host(host).unwrap().aquilon.reimports, 1);
    assert_eq!(world.silences.iter().filter(|s| s.matchers.iter().any(|m| m.matches_value(host))).count(), 2);
    drop(world);
    assert_eq!(jira_status(&site, host), "Ready For Reinstall");
}

#[test]
fn kill_9_during_the_step_then_resume() {
    let (site, hosts) = drained_site();
    let host = &hosts[1];
    // Slow Aquilon commands, so the kill lands in the middle of its part.
    let aquilon = site.world().aquilon_host_name();
    site.lab.ssh_faults().set(&aquilon, SshFaultConfig { latency_ms: Some((150, 150)), ..SshFaultConfig::default() });
    let mut child = site.spawn(&["-q", "run", "--step", "pre-reinstall", "--yes", "--only", host]);
    let started = Instant::now();
    loop {
        if !site.world().host(host).unwrap().aquilon.host_exists {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the re-import never started");
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the step ended before it could be killed: {status}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    site.lab.ssh_faults().clear();
    assert_eq!(site.world().host(host).unwrap().aquilon.reimports, 0, "killed between the delete and the import");

    let out = pre_reinstall(&site, &["--only", host]);
    let summary = json(&out);
    assert_eq!(report_of(&summary, host)["outcome"], "succeeded", "{}", out.report());
    let world = site.world();
    let aquilon = &world.host(host).unwrap().aquilon;
    assert_eq!((aquilon.reimports, aquilon.pxe_install), (1, true));
    assert_eq!(world.silences.iter().filter(|s| s.matchers.iter().any(|m| m.matches_value(host))).count(), 2);
    drop(world);
    assert_eq!(jira_status(&site, host), "Ready For Reinstall");
    let successes = site.comments(host).iter().filter(|c| c.contains("pre-reinstall")).count();
    assert_eq!(successes, 1, "the killed run posted nothing; the resumed one posted once");
}
