//! `hvmigrate vm list|info|stats|exec|power|autostart` against the simulated
//! site: libvirt and the guest agents over SSH, Nova for its instances.

mod support;

use hvmigrate_lab::{LabOptions, WorldOptions};
use support::lab_site::{json, LabSite};

/// Three campaign hosts of three VMs each, with the odd guests: host 1 has a
/// GPU passed through, a guest without an agent channel and an orphan
/// domain; host 2 an SR-IOV VF, a vGPU and an agent that is not running.
fn site() -> LabSite {
    let world =
        WorldOptions { hosts: 3, oddities: false, vms_per_host: Some(3), guest_oddities: true, ..Default::default() };
    let site = LabSite::start_with(LabOptions { world, ..LabOptions::default() }, "");
    // Every guest running, so that each test picks its state.
    for server in site.world().servers.values_mut() {
        server.status = "ACTIVE".into();
    }
    site
}

/// The host's Nova domains by name, and its orphan domains.
fn domains(site: &LabSite, index: usize) -> (String, Vec<String>, Vec<String>) {
    let host = site.campaign_hosts()[index].clone();
    let world = site.world();
    let mut names: Vec<String> = world.servers_on(&host).map(|server| server.instance_name.clone()).collect();
    names.sort();
    let orphans = world.guests.orphans.iter().filter(|o| o.host == host).map(|o| o.name.clone()).collect();
    (host, names, orphans)
}

fn operator_actions(site: &LabSite, host: &str) -> Vec<hvmigrate::journal::OperatorAction> {
    let journal = hvmigrate::journal::Journal::open(&site.workspace.file("state/hvmigrate.db")).unwrap();
    journal.operator_actions(host).unwrap()
}

#[test]
fn vm_list_shows_agents_nova_status_and_orphans() {
    let site = site();
    let (host, names, orphans) = domains(&site, 0);
    let out = site.hvmigrate(&["--output", "json", "vm", "list", &host]).expect_code(0);
    let list = json(&out);
    let entries = list["domains"].as_array().unwrap();
    assert_eq!(entries.len(), 4, "{}", out.report());
    let entry =
        |name: &str| entries.iter().find(|e| e["domain"] == name).unwrap_or_else(|| panic!("{name}\n{}", out.report()));
    assert_eq!(entry(&names[0])["agent"]["agent"], "answers");
    assert_eq!(entry(&names[0])["nova_status"], "ACTIVE");
    assert_eq!(entry(&names[0])["orphan"], false);
    assert!(entry(&names[0])["nova_name"].as_str().unwrap().starts_with("vm-"));
    assert_eq!(entry(&names[1])["agent"]["agent"], "not_configured");
    let orphan = entry(&orphans[0]);
    assert_eq!(
        (orphan["orphan"].as_bool(), orphan["nova_status"].is_null(), orphan["nova_name"].is_null()),
        (Some(true), true, true)
    );

    let human = site.hvmigrate(&["vm", "list", &host]).expect_code(0);
    human.stdout_has("ORPHAN (Nova does not know it)").stdout_has("AGENT").stdout_has("none");
    let actions = operator_actions(&site, &host);
    assert_eq!(actions.len(), 2);
    assert_eq!(
        (actions[0].command.as_str(), actions[0].outcome.as_str(), actions[0].detail.as_deref()),
        ("vm list", "done", Some("4 domains"))
    );
}

#[test]
fn vm_info_names_devices_and_what_they_mean_for_migration() {
    let site = site();
    let (host, names, orphans) = domains(&site, 0);
    let gpu = json(&site.hvmigrate(&["--output", "json", "vm", "info", &host, &names[0]]).expect_code(0));
    assert_eq!(gpu["migration"]["migration"], "cold_only");
    let reasons = gpu["migration"]["reasons"].to_string();
    assert!(reasons.contains("PCI passthrough 0000:81:00.0"), "{reasons}");
    assert_eq!(gpu["definition"]["host_devices"][0]["kind"], "pci_passthrough");
    assert_eq!(
        gpu["definition"]["cpu_pinning"].as_array().unwrap().len() as u64,
        gpu["info"]["vcpus"].as_u64().unwrap()
    );
    assert_eq!(gpu["definition"]["numa_nodeset"], "1");
    assert!(gpu["definition"]["nova"]["name"].as_str().unwrap().starts_with("vm-"));

    let human = site.hvmigrate(&["vm", "info", &host, &names[2]]).expect_code(0);
    human.stdout_has("migration   live").stdout_has("disk        vda").stdout_has("nic         bridge");
    let orphan = site.hvmigrate(&["vm", "info", &host, &orphans[0]]).expect_code(0);
    orphan.stdout_has("migration   not at all").stdout_has("Nova does not know this domain");

    let (host2, names2, _) = domains(&site, 1);
    let sriov = json(&site.hvmigrate(&["--output", "json", "vm", "info", &host2, &names2[0]]).expect_code(0));
    assert_eq!(sriov["migration"]["migration"], "cold_only");
    assert!(sriov["migration"]["reasons"].to_string().contains("SR-IOV VF 0000:3b:02.1"), "{sriov}");
    let vgpu = json(&site.hvmigrate(&["--output", "json", "vm", "info", &host2, &names2[1]]).expect_code(0));
    assert_eq!(vgpu["definition"]["host_devices"][0]["kind"], "mdev");
}

#[test]
fn unknown_host_or_domain_is_bad_input() {
    let site = site();
    let (host, _, _) = domains(&site, 0);
    site.hvmigrate(&["vm", "list", "nope.lab.example.org"])
        .expect_code(2)
        .stderr_has("nope.lab.example.org is not in the hypervisors file");
    site.hvmigrate(&["vm", "info", &host, "instance-nope"])
        .expect_code(2)
        .stderr_has("has no libvirt domain 'instance-nope'");
    site.hvmigrate(&["vm", "stats", &host, "instance-nope"]).expect_code(2).stderr_has("instance-nope");
    let failed = operator_actions(&site, &host);
    assert!(failed.len() == 2 && failed.iter().all(|action| action.outcome == "failed"), "{failed:?}");
}

#[test]
fn vm_stats_per_domain_and_summed() {
    let site = site();
    let (host, names, _) = domains(&site, 0);
    let all = json(&site.hvmigrate(&["--output", "json", "vm", "stats", &host]).expect_code(0));
    let domains = all["domains"].as_array().unwrap();
    assert_eq!(domains.len(), 4);
    let vcpus: u64 = domains.iter().map(|d| d["vcpus"].as_u64().unwrap()).sum();
    assert_eq!(all["total"]["vcpus"].as_u64(), Some(vcpus));
    assert!(domains
        .iter()
        .all(|d| d["block_capacity_bytes"].as_u64().unwrap() > 0 && d["net_rx_bytes"].as_u64().unwrap() > 0));
    let one = json(&site.hvmigrate(&["--output", "json", "vm", "stats", &host, &names[1]]).expect_code(0));
    assert_eq!(one["domains"].as_array().unwrap().len(), 1);
    assert_eq!(one["domains"][0]["name"], names[1].as_str());
    site.hvmigrate(&["vm", "stats", &host]).expect_code(0).stdout_has("total").stdout_has("NET RX B");
}

#[test]
fn vm_exec_runs_through_the_agent_with_stdin_exit_codes_polling_and_timeout() {
    let site = site();
    let (host, names, _) = domains(&site, 0);
    let domain = &names[2];
    let server_name = site.world().servers.values().find(|s| &s.instance_name == domain).unwrap().name.clone();
    let out = site.hvmigrate(&["vm", "exec", &host, domain, "--", "hostname"]).expect_code(0);
    assert_eq!(out.stdout, format!("{server_name}\n"), "{}", out.report());

    site.workspace.write("input.txt", "line one\nline two\n");
    let cat = site.hvmigrate(&["vm", "exec", &host, domain, "--stdin", "input.txt", "--", "cat"]).expect_code(0);
    assert_eq!(cat.stdout, "line one\nline two\n", "{}", cat.report());

    let failing = site.hvmigrate(&["vm", "exec", &host, domain, "--", "cat", "/etc/missing"]).expect_code(1);
    failing.stderr_has("cat: /etc/missing: No such file or directory");
    site.hvmigrate(&["vm", "exec", &host, domain, "--", "false"]).expect_code(1);

    let long =
        json(&site.hvmigrate(&["--output", "json", "vm", "exec", &host, domain, "--", "sleep", "2"]).expect_code(0));
    assert!(long["polls"].as_u64().unwrap() > 1, "{long}");
    assert_eq!(long["exit_code"], 0);

    site.hvmigrate(&["vm", "exec", &host, domain, "--timeout", "1", "--", "sleep", "600"])
        .expect_code(1)
        .stderr_has("'sleep 600' did not exit within 1s");

    let escaped = site.hvmigrate(&["vm", "exec", &host, domain, "--", "echo", "a\u{1b}[2Jb"]).expect_code(0);
    assert_eq!(escaped.stdout, "a\\x1b[2Jb\n");

    site.hvmigrate(&["vm", "exec", &host, &names[1], "--", "hostname"])
        .expect_code(1)
        .stderr_has("the guest agent is not configured");
    let (host2, names2, _) = domains(&site, 1);
    site.hvmigrate(&["vm", "exec", &host2, &names2[2], "--", "hostname"])
        .expect_code(1)
        .stderr_has("does not answer: Guest agent is not responding: QEMU guest agent is not connected");
    site.hvmigrate(&["vm", "exec", &host, domain, "--", "nosuchprogram"])
        .expect_code(1)
        .stderr_has("Failed to execute child process");
    site.hvmigrate(&["vm", "exec", &host, domain, "--stdin", "absent.txt", "--", "cat"])
        .expect_code(2)
        .stderr_has("absent.txt");
    let journaled = operator_actions(&site, &host);
    assert!(journaled.iter().any(|action| action.command == "vm exec"
        && action.subject.as_deref() == Some(&format!("{domain}: false")[..])
        && action.outcome == "done"
        && action.detail.as_deref() == Some("exit code 1")));
    assert!(!journaled.iter().any(|action| format!("{action:?}").contains("line one")), "stdin is never journaled");
}

#[test]
fn vm_power_of_a_nova_instance_goes_through_nova_and_never_libvirt() {
    let site = site();
    let (host, names, _) = domains(&site, 0);
    let domain = &names[2];
    let id = site.world().servers.values().find(|s| &s.instance_name == domain).unwrap().id.clone();
    let out = site.hvmigrate(&["--output", "json", "vm", "power", &host, domain, "shutdown"]).expect_code(0);
    let change = json(&out);
    assert_eq!((change["through"].as_str(), change["outcome"].as_str()), (Some("nova"), Some("changed")));
    {
        let world = site.world();
        assert_eq!(world.nova_power_actions, vec![format!("os-stop {id}")]);
        assert_eq!(world.servers[&id].status, "SHUTOFF");
        assert!(world.guests.libvirt_changes.is_empty(), "{:?}", world.guests.libvirt_changes);
    }
    site.hvmigrate(&["vm", "power", &host, domain, "stop"]).expect_code(2).stderr_has("is not running");
    site.hvmigrate(&["vm", "power", &host, domain, "start"]).expect_code(0).stdout_has("through nova");
    site.hvmigrate(&["vm", "power", &host, domain, "reboot"]).expect_code(0);
    site.hvmigrate(&["vm", "power", &host, domain, "start"]).expect_code(2).stderr_has("already running");
    let world = site.world();
    assert_eq!(
        world.nova_power_actions,
        vec![format!("os-stop {id}"), format!("os-start {id}"), format!("reboot {id}")]
    );
    assert!(world.guests.libvirt_changes.is_empty());
    let history = &world.host(&host).unwrap().shell.history;
    assert!(
        !history.iter().any(|line| ["virsh start", "virsh shutdown", "virsh reboot", "virsh destroy"]
            .iter()
            .any(|verb| line.contains(verb))),
        "{history:?}"
    );
}

#[test]
fn vm_power_and_autostart_of_an_orphan_go_through_libvirt() {
    let site = site();
    let (host, names, orphans) = domains(&site, 0);
    let orphan = &orphans[0];
    site.hvmigrate(&["vm", "power", &host, orphan, "stop"]).expect_code(0).stdout_has("through libvirt");
    assert!(!site.world().guests.orphans[0].running);
    site.hvmigrate(&["vm", "power", &host, orphan, "shutdown"]).expect_code(2).stderr_has("the domain is not running");
    site.hvmigrate(&["vm", "power", &host, orphan, "start"]).expect_code(0);
    assert!(site.world().guests.orphans[0].running);

    site.hvmigrate(&["vm", "autostart", &host, orphan, "on"]).expect_code(0).stdout_has("autostart on changed");
    site.hvmigrate(&["vm", "autostart", &host, orphan, "on"]).expect_code(0).stdout_has("autostart on already");
    assert!(site.world().guests.orphans[0].autostart);
    site.hvmigrate(&["vm", "autostart", &host, &names[0], "off"]).expect_code(2).stderr_has("started by Nova");
    let world = site.world();
    assert_eq!(
        world.guests.libvirt_changes,
        vec![format!("destroy {orphan}"), format!("start {orphan}"), format!("autostart {orphan}")]
    );
    assert!(world.nova_power_actions.is_empty());
}

/// `workflow_yaml` for quick drains; the lab's minutes pass in a blink.
const FAST_DRAIN: &str = "workflow:\n  drain:\n    poll_interval_ms: 10\n";

/// Host 1 as pre-drain leaves it (nova-compute disabled), set up for root SSH.
fn ready_to_drain(site: &LabSite, host: &str) {
    {
        let mut world = site.world();
        world.time_scale = 600.0;
        let compute = &mut world.host_mut(host).unwrap().compute;
        compute.status = "disabled".into();
        compute.disabled_reason = Some("Migration to Rocky 9 - LAB".into());
    }
    site.hvmigrate(&["-q", "run", "--step", "setup", "--only", host]).expect_code(0);
}

#[test]
fn drain_census_blocks_a_gpu_passthrough_vm_with_the_reason_and_moves_the_others() {
    let world =
        WorldOptions { hosts: 3, oddities: false, vms_per_host: Some(3), guest_oddities: true, ..Default::default() };
    let site = LabSite::start_with(LabOptions { world, ..LabOptions::default() }, FAST_DRAIN);
    for server in site.world().servers.values_mut() {
        server.status = "ACTIVE".into();
    }
    let (host, names, _) = domains(&site, 0);
    ready_to_drain(&site, &host);
    let gpu = site.world().servers.values().find(|s| s.instance_name == names[0]).unwrap().name.clone();
    let out = site
        .hvmigrate(&["--output", "json", "run", "--step", "drain", "--force", "--yes", "--only", &host])
        .expect_code(1);
    let summary = json(&out);
    let report = support::lab_site::report_of(&summary, &host);
    let census = support::lab_site::action(report, "census").to_string();
    assert!(census.contains(&gpu) && census.contains("PCI passthrough 0000:81:00.0"), "{census}");
    let row =
        report["vms"].as_array().unwrap().iter().find(|vm| vm["name"] == gpu.as_str()).expect("a row for the GPU VM");
    assert!(row["reason"].as_str().unwrap().contains("Nova cannot live-migrate PCI passthrough"), "{row}");
    let world = site.world();
    let left: Vec<&str> = world.servers_on(&host).map(|s| s.name.as_str()).collect();
    assert_eq!(left, vec![gpu.as_str()], "only the GPU VM stays\n{}", out.report());
    assert!(
        world.migrations.iter().all(|m| world.servers.get(&m.server_id).is_none_or(|s| s.name != gpu)),
        "no migration of the GPU VM was tried"
    );
}

#[test]
fn pre_reinstall_empty_check_names_orphan_domains() {
    let site = site();
    let (host, _, orphans) = domains(&site, 0);
    site.world().servers.retain(|_, server| server.host != host);
    ready_to_drain(&site, &host);
    let out = site
        .hvmigrate(&["--output", "json", "run", "--step", "pre-reinstall", "--force", "--dry-run", "--only", &host])
        .run();
    let summary = json(&out);
    let empty = support::lab_site::action(support::lab_site::report_of(&summary, &host), "empty-check").to_string();
    assert!(
        empty.contains("orphan domains Nova does not know") && empty.contains(&orphans[0]),
        "{empty}\n{}",
        out.report()
    );
}

#[test]
fn drain_aborts_the_live_migration_of_a_guest_that_stops_answering_and_moves_the_others() {
    let yaml = "workflow:\n  drain:\n    poll_interval_ms: 10\n    guest_timeout_secs: 1\n";
    let world =
        WorldOptions { hosts: 3, oddities: false, vms_per_host: Some(3), guest_oddities: true, ..Default::default() };
    let site = LabSite::start_with(LabOptions { world, ..LabOptions::default() }, yaml);
    for server in site.world().servers.values_mut() {
        server.status = "ACTIVE".into();
    }
    let (host, names, _) = domains(&site, 2);
    ready_to_drain(&site, &host);
    let (id, silent) = {
        let mut world = site.world();
        let server = world.servers.values_mut().find(|s| s.instance_name == names[0]).unwrap();
        // Its migration would otherwise end before the guest's silence outlasts the timeout.
        server.hang_migration = true;
        (server.id.clone(), server.name.clone())
    };
    let out = site
        .hvmigrate(&["--output", "json", "run", "--step", "drain", "--force", "--yes", "--only", &host])
        .expect_code(1);
    let summary = json(&out);
    let report = support::lab_site::report_of(&summary, &host);
    assert!(report["reason"].to_string().contains(&silent), "the host's drain fails naming it\n{}", out.report());
    let vms = report["vms"].as_array().unwrap();
    let row = vms.iter().find(|vm| vm["name"] == silent.as_str()).unwrap();
    let reason = row["reason"].as_str().unwrap();
    assert!(
        reason.contains("the guest agent stopped answering during the live migration")
            && reason.contains("aborted through Nova"),
        "{row}"
    );
    assert!(row["guest_check"].as_str().unwrap().contains("agent answered before"), "{row}");
    let moved: Vec<&serde_json::Value> = vms.iter().filter(|vm| vm["name"] != silent.as_str()).collect();
    assert_eq!(moved.len(), 2);
    for vm in &moved {
        assert!(vm["to"].is_string(), "{vm}");
        assert!(vm["guest_check"].as_str().unwrap().contains("answered on"), "{vm}");
    }
    {
        let world = site.world();
        let server = &world.servers[&id];
        assert_eq!((server.status.as_str(), server.host.as_str()), ("ACTIVE", host.as_str()), "ACTIVE on its source");
        let migration = world.migrations.iter().find(|m| m.server_id == id).unwrap();
        assert_eq!(migration.status, "cancelled");
        assert_eq!(world.servers_on(&host).count(), 1);
    }
    let comments = site.comments(&host).join("\n");
    assert!(comments.contains("guest check: agent answered before"), "{comments}");
}
