//! adoption through the real binary against the simulated site (real SSH to
//! the hypervisors and the Kayobe host): one Kayobe batch for the run, a
//! `fatal:` for one host of the batch, Nova, silences, SCC, a re-run that
//! changes nothing, and kill -9 then resume.

mod post_reinstall_common;
mod support;

use std::time::{Duration, Instant};

use hvmigrate_lab::Service;
use post_reinstall_common::*;

/// Every host of [1..] reinstalled and through post-reinstall; one extra
/// silence on [1] made by someone else.
fn adoptable_site() -> (support::lab_site::LabSite, Vec<String>) {
    let (site, hosts) = reinstalled_site("", |_| true);
    post_reinstall(&site, &[]);
    {
        let mut world = site.world();
        let mut theirs =
            world.silences.iter().find(|s| s.matchers.iter().any(|m| m.matches_value(&hosts[1]))).unwrap().clone();
        theirs.id = "0000aaaa-0000-4000-8000-000000000001".into();
        theirs.created_by = "oncall".into();
        world.silences.push(theirs);
    }
    (site, hosts)
}

fn silences_of(site: &support::lab_site::LabSite, host: &str, created_by: &str) -> usize {
    let now = jiff::Timestamp::now().to_string();
    let world = site.world();
    world
        .silences
        .iter()
        .filter(|s| s.created_by == created_by && s.matchers.iter().any(|m| m.matches_value(host)) && s.ends_at > now)
        .count()
}

#[test]
fn one_kayobe_batch_then_a_rerun_that_changes_nothing() {
    let (site, hosts) = adoptable_site();
    assert_eq!(silences_of(&site, &hosts[1], "hvmigrate"), 2, "pre-reinstall silenced the host (hostname, instance)");
    let out = adoption(&site, &[]);
    let summary = json(&out);
    for host in &hosts[1..] {
        let report = report_of(&summary, host);
        assert_eq!(report["outcome"], "succeeded", "{host}\n{}", out.report());
        for name in ["jira-working", "kayobe-deploy", "enable-compute", "expire-silences", "scc-upload"] {
            assert_eq!(action(report, name)["outcome"], "done", "{host} {name}: {report}");
        }
        assert_eq!(jira_status(&site, host), "Ready For Test");
        assert_eq!(silences_of(&site, host, "hvmigrate"), 0, "{host}: our silence expired");
        let world = site.world();
        let compute = &world.host(host).unwrap().compute;
        assert_eq!((compute.status.as_str(), compute.state.as_str()), ("enabled", "up"), "{host}");
        assert_eq!(world.host(host).unwrap().kayobe.host_configures, 1, "{host}");
        assert!(world.scc.hosts.values().any(|uploaded| uploaded["properties"]["name"] == host.as_str()), "{host}");
    }
    assert_eq!(silences_of(&site, &hosts[1], "oncall"), 1, "someone else's silence is left alone");
    // One Kayobe run of each kind for the whole batch.
    assert_eq!(kayobe_commands(&site, "overcloud host configure").len(), 1);
    assert_eq!(kayobe_commands(&site, "-kt common").len(), 1, "the controllers once");
    assert_eq!(kayobe_commands(&site, "overcloud service deploy").len(), 2, "the batch, then the controllers");
    let configure = &kayobe_commands(&site, "overcloud host configure")[0];
    for host in &hosts[1..] {
        assert!(configure.contains(host.as_str()), "{configure}");
    }
    let receipt = site.comments(&hosts[1]).into_iter().find(|c| c.contains("hvmigrate adoption")).unwrap();
    assert!(receipt.contains("SCC accepted group"), "{receipt}");

    // Again: nothing changes.
    let comments: Vec<usize> = hosts.iter().map(|host| site.comments(host).len()).collect();
    let before = world_state(&site);
    let uploads = site.world().scc.uploads;
    site.lab.requests().clear();
    let again = json(&adoption(&site, &[]));
    for host in &hosts[1..] {
        let report = report_of(&again, host);
        assert_eq!(report["outcome"], "succeeded", "{host}: {report}");
        for action in report["actions"].as_array().unwrap() {
            assert!(action["outcome"] == "skipped" || action["outcome"] == "ok", "{host}: {action}");
        }
    }
    let writes: Vec<_> =
        site.lab.requests().writes().into_iter().filter(|request| request.service != Service::Keystone).collect();
    assert!(writes.is_empty(), "a re-run wrote: {writes:#?}");
    assert_eq!(site.world().scc.uploads, uploads, "no second upload");
    assert_eq!(world_state(&site), before);
    assert_eq!(hosts.iter().map(|host| site.comments(host).len()).collect::<Vec<_>>(), comments);
    assert_eq!(kayobe_commands(&site, "overcloud host configure").len(), 1, "no second Kayobe run");
}

#[test]
fn a_fatal_for_one_host_fails_it_alone() {
    let (site, hosts) = adoptable_site();
    let message = "Unable to start service docker: Job for docker.service failed";
    site.world().host_mut(&hosts[3]).unwrap().kayobe.fail_with = Some(message.into());
    // Someone else disabled [2]'s nova-compute meanwhile: it is not ours to enable.
    site.world().host_mut(&hosts[2]).unwrap().compute.disabled_reason = Some("hardware ticket 42".into());
    let out = adoption(&site, &[]);
    assert_eq!(out.code, 1);
    let summary = json(&out);
    let failed = report_of(&summary, &hosts[3]);
    assert_eq!(failed["outcome"], "failed", "{}", out.report());
    assert!(failed["reason"].as_str().unwrap().contains("failed for this host"), "{failed}");
    assert_eq!(jira_status(&site, &hosts[3]), "Adoption Failed");
    let comment = site.comments(&hosts[3]).into_iter().find(|c| c.contains("hvmigrate adoption")).unwrap();
    assert!(comment.contains("fatal: [") && comment.contains(message), "{comment}");
    assert_eq!(site.world().host(&hosts[3]).unwrap().compute.status, "disabled", "a failed host stays out");

    let kept = report_of(&summary, &hosts[2]);
    assert_eq!(kept["outcome"], "blocked");
    assert!(kept["reason"].as_str().unwrap().contains("'hardware ticket 42'"), "{kept}");
    assert_eq!(site.world().host(&hosts[2]).unwrap().compute.status, "disabled");
    for host in [&hosts[1], &hosts[4], &hosts[5]] {
        assert_eq!(report_of(&summary, host)["outcome"], "succeeded", "{host}: {}", out.report());
    }
    assert_eq!(kayobe_commands(&site, "overcloud host configure").len(), 1, "one batch for all");

    // Fixed, the failed host goes through on its own.
    site.world().host_mut(&hosts[3]).unwrap().kayobe.fail_with = None;
    let again = json(&adoption(&site, &["--only", &hosts[3]]));
    assert_eq!(report_of(&again, &hosts[3])["outcome"], "succeeded", "{again}");
    assert_eq!(jira_status(&site, &hosts[3]), "Ready For Test");
}

#[test]
fn kill_9_in_the_middle_then_resume() {
    let (site, hosts) = adoptable_site();
    let kayobe = site.world().kayobe_host_name();
    // A slow Kayobe host, so the kill lands inside the batch.
    let slow = hvmigrate_lab::SshFaultConfig { latency_ms: Some((300, 300)), ..Default::default() };
    site.lab.ssh_faults().set(&kayobe, slow);
    let mut child = site.spawn(&["-q", "run", "--step", "adoption", "--yes", "--parallel"]);
    let started = Instant::now();
    while kayobe_commands(&site, "overcloud host configure").is_empty() {
        assert!(started.elapsed() < Duration::from_secs(60), "Kayobe never started");
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the step ended before it could be killed: {status}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    site.lab.ssh_faults().set(&kayobe, hvmigrate_lab::SshFaultConfig::default());

    let summary = json(&adoption(&site, &[]));
    for host in &hosts[1..] {
        assert_eq!(report_of(&summary, host)["outcome"], "succeeded", "{host}: {summary}");
        assert_eq!(jira_status(&site, host), "Ready For Test");
        assert_eq!(site.world().host(host).unwrap().compute.status, "enabled");
    }
    let hosts_in_scc = site.world().scc.hosts.len();
    assert!(hosts_in_scc >= hosts.len() - 1, "every adopted host is in SCC");
}
