//! Host identity through the real binary against the simulated site: the
//! canonical facts, NetBox's agreement with the host, the machine answering
//! after a reinstall, its new SSH host keys and Nova's node identity.

mod post_reinstall_common;
mod support;

use hvmigrate_lab::WorldOptions;
use post_reinstall_common::{action, adoption, json, post_reinstall, reinstalled_site, report_of, LabSite};

#[test]
fn pre_drain_blocks_when_netbox_and_the_host_disagree_naming_both_values() {
    let site = LabSite::start(WorldOptions::default());
    let hosts = site.campaign_hosts();
    let (serial_host, bmc_host, healthy) = (&hosts[1], &hosts[2], &hosts[3]);
    let (real_serial, real_bmc) = {
        let mut world = site.world();
        let serial = world.host(serial_host).unwrap().machine.serial.clone();
        let bmc = world.host(bmc_host).unwrap().machine.bmc_mac.clone();
        let serial_device = world.host(serial_host).unwrap().netbox_device.unwrap();
        let bmc_device = world.host(bmc_host).unwrap().netbox_device.unwrap();
        for device in &mut world.netbox.devices {
            if device.id == serial_device {
                device.serial = "WRONG42".into();
            }
            if device.id == bmc_device {
                device.interfaces.iter_mut().find(|i| i.name == "bmc0").unwrap().mac_address =
                    Some("b8:00:00:00:00:01".into());
            }
        }
        (serial, bmc)
    };
    site.hvmigrate(&["run", "--step", "setup", "--parallel", "-q"]).run();
    let out = site.hvmigrate(&["run", "--step", "pre-drain", "--parallel", "--output", "json", "-q"]).expect_code(1);
    let summary = json(&out);
    let serial = report_of(&summary, serial_host);
    assert_eq!(serial["outcome"], "blocked", "{}", out.report());
    let reason = serial["reason"].as_str().unwrap();
    assert!(reason.contains("WRONG42") && reason.contains(&real_serial), "{reason}");
    let bmc = report_of(&summary, bmc_host);
    let reason = bmc["reason"].as_str().unwrap();
    assert!(reason.contains("b8:00:00:00:00:01") && reason.contains(&real_bmc), "{reason}");
    let passed = action(report_of(&summary, healthy), "identity");
    assert_eq!(passed["outcome"], "ok", "{}", out.report());
    let world = site.world();
    assert_eq!(world.host(serial_host).unwrap().compute.status, "enabled", "a blocked host is not disabled");
    assert_eq!(world.host(healthy).unwrap().compute.status, "disabled");
}

/// The SSH host key fingerprint of a lab host after `generation` real reinstalls.
fn fingerprint(site: &LabSite, host: &str, generation: u32) -> String {
    let seed = site.world().seed;
    let key = hvmigrate_lab::ssh::keys::host_key_of_generation(seed, host, generation);
    hvmigrate::identity::fingerprint(&hvmigrate_lab::ssh::keys::public_line(key.public_key())).unwrap()
}

fn pinned(site: &LabSite) -> String {
    std::fs::read_to_string(site.workspace.file("site/ssh/hvmigrate_known_hosts")).unwrap_or_default()
}

#[test]
fn a_whole_campaign_with_real_reinstalls_pins_the_new_keys_and_keeps_the_nova_node() {
    let world = WorldOptions { hosts: 2, oddities: false, vms_per_host: Some(1), ..WorldOptions::default() };
    let site = LabSite::start(world);
    let hosts = site.campaign_hosts();
    let nodes: Vec<String> = hosts.iter().map(|h| site.world().host(h).unwrap().hypervisor_uuid.clone()).collect();
    for step in ["setup", "pre-drain", "drain", "pre-reinstall"] {
        let out = site.hvmigrate(&["run", "--step", step, "--yes", "--parallel", "--output", "json", "-q"]).run();
        assert_eq!(out.code, 0, "{step}\n{}", out.report());
    }
    for host in &hosts {
        site.lab.world().reinstall(host).unwrap();
    }
    let out = post_reinstall(&site, &[]);
    assert_eq!(out.code, 0, "{}", out.report());
    let summary = json(&out);
    for (host, node) in hosts.iter().zip(&nodes) {
        let report = report_of(&summary, host);
        assert_eq!(action(report, "host-key")["outcome"], "done", "{}", out.report());
        assert_eq!(action(report, "identity")["outcome"], "ok", "{}", out.report());
        assert!(pinned(&site).contains(&format!("# hvmigrate pinned {host}")), "{}", pinned(&site));
        let (old, new) = (fingerprint(&site, host, 0), fingerprint(&site, host, 1));
        let comments = site.comments(host).join("\n");
        assert!(comments.contains(&old) && comments.contains(&new), "both fingerprints on the ticket:\n{comments}");
        let world = site.world();
        let shell = &world.host(host).unwrap().shell;
        let path = hvmigrate_lab::shell::KOLLA_COMPUTE_ID_PATH;
        assert_eq!(shell.files.get(path), Some(node), "compute_id restored");
        assert_eq!(shell.owners.get(path).map(String::as_str), Some("42436:42436"));
    }
    let out = adoption(&site, &[]);
    assert_eq!(out.code, 0, "{}", out.report());
    let summary = json(&out);
    for (host, node) in hosts.iter().zip(&nodes) {
        let report = report_of(&summary, host);
        assert_eq!(action(report, "node-identity")["outcome"], "ok", "{}", out.report());
        let world = site.world();
        let after = world.host(host).unwrap();
        assert_eq!((&after.hypervisor_uuid, after.compute.state.as_str()), (node, "up"), "the same Nova node");
    }
    // The history: pre-drain, pre-reinstall, the verifying connection, post-reinstall.
    let out = site.hvmigrate(&["inventory", "--host", &hosts[0], "--output", "json"]).expect_code(0);
    let inventory = json(&out);
    let entry = &inventory["hosts"][0];
    assert_eq!(entry["host"], hosts[0].as_str(), "{}", out.report());
    let steps: Vec<&str> = entry["history"].as_array().unwrap().iter().map(|h| h["step"].as_str().unwrap()).collect();
    assert_eq!(
        steps,
        ["pre-drain", "pre-reinstall", "post-reinstall", "post-reinstall", "post-reinstall"],
        "{}",
        out.report()
    );
    assert!(inventory["duplicates"].as_array().unwrap().is_empty(), "{}", out.report());
}

#[test]
fn a_wrong_machine_is_blocked_on_identity_and_its_key_is_not_trusted() {
    let (site, hosts) = reinstalled_site("", |_| false);
    let host = &hosts[1];
    site.lab.world().reinstall_as(host, true).unwrap();
    site.lab.requests().clear();
    let out = post_reinstall(&site, &["--only", host]);
    let report = report_of(&json(&out), host).clone();
    assert_eq!(report["outcome"], "blocked", "{}", out.report());
    let reason = report["reason"].as_str().unwrap();
    assert!(reason.contains("identity") && reason.contains("system UUID"), "{reason}");
    assert!(!pinned(&site).contains(host), "the new key is not trusted: {}", pinned(&site));
    let writes = site.lab.requests().writes();
    assert!(
        writes.iter().all(|w| w.service == hvmigrate_lab::Service::Jira || w.path == "/v3/auth/tokens"),
        "nothing written to NetBox or Nova: {writes:?}"
    );
    let world = site.world();
    assert!(world.host(host).unwrap().shell.root_authorized_keys.is_empty(), "no key given to the wrong machine");
}

#[test]
fn the_strict_policy_refuses_a_new_key_and_says_what_to_do() {
    let (site, hosts) = reinstalled_site("", |index| index == 1);
    site.set_ssh_setting("reinstalled_host_keys", "strict");
    let out = post_reinstall(&site, &["--only", &hosts[1]]);
    let report = report_of(&json(&out), &hosts[1]).clone();
    assert_eq!(report["outcome"], "blocked", "{}", out.report());
    let reason = report["reason"].as_str().unwrap();
    assert!(
        reason.contains("strict") && reason.contains("ssh-keygen -R") && reason.contains("verify-identity"),
        "{reason}"
    );
    assert!(pinned(&site).is_empty());
}

#[test]
fn the_ssh_ca_policy_refuses_a_new_key_without_a_certificate() {
    let (site, hosts) = reinstalled_site("", |index| index == 1);
    site.set_ssh_setting("reinstalled_host_keys", "ssh-ca");
    let out = post_reinstall(&site, &["--only", &hosts[1]]);
    let report = report_of(&json(&out), &hosts[1]).clone();
    assert_eq!(report["outcome"], "blocked", "{}", out.report());
    assert!(report["reason"].as_str().unwrap().contains("@cert-authority"), "{}", out.report());
    assert!(pinned(&site).is_empty());
}

#[test]
fn without_the_compute_id_restore_adoption_fails_as_nova_would() {
    let (site, hosts) = reinstalled_site("workflow:\n  nova_compute_id_restore: false\n", |index| index == 1);
    let out = post_reinstall(&site, &["--only", &hosts[1]]);
    assert_eq!(report_of(&json(&out), &hosts[1])["outcome"], "succeeded", "{}", out.report());
    let out = adoption(&site, &["--only", &hosts[1]]);
    let report = report_of(&json(&out), &hosts[1]).clone();
    assert_eq!(report["outcome"], "blocked", "{}", out.report());
    let reason = report["reason"].as_str().unwrap();
    assert!(reason.contains(hvmigrate_lab::shell::NOVA_NO_NODE_IDENTITY.split(": ").nth(1).unwrap()), "{reason}");
    assert_eq!(site.world().host(&hosts[1]).unwrap().compute.state, "down");
}
