//! The workflow engine through the real binary against the simulated site:
//! each action's paths, dry runs, faults, and crash safety.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use hvmigrate_lab::{Fault, FaultConfig, LabOptions, Service, SshFaultConfig, WorldOptions};
use serde_json::Value;
use support::lab_site::{action, json, report_of, LabSite};

/// setup then pre-drain; returns pre-drain's summary.
fn setup_and_pre_drain(site: &LabSite) -> Value {
    site.hvmigrate(&["run", "--step", "setup", "--parallel", "-q"]).run();
    json(&site.hvmigrate(&["run", "--step", "pre-drain", "--parallel", "--output", "json", "-q"]).run())
}

#[test]
fn pre_drain_acts_skips_and_blocks() {
    let site = LabSite::start(WorldOptions::default());
    let hosts = site.campaign_hosts();
    // hosts[0] is missing from NetBox; hosts[6] already runs the target OS.
    let out = site.hvmigrate(&["run", "--step", "setup", "--parallel", "--output", "json", "-q"]).expect_code(0);
    assert!(json(&out)["hosts"].as_array().unwrap().iter().all(|r| r["outcome"] == "succeeded"), "{}", out.report());

    let out = site.hvmigrate(&["run", "--step", "pre-drain", "--parallel", "--output", "json", "-q"]).expect_code(1);
    let summary = json(&out);
    let healthy = report_of(&summary, &hosts[1]);
    assert_eq!(healthy["outcome"], "succeeded", "{}", out.report());
    assert_eq!(action(healthy, "disable-compute")["outcome"], "done");
    assert_eq!(action(healthy, "os-check")["outcome"], "ok");
    assert_eq!(action(healthy, "record-state")["outcome"], "recorded");
    let missing = report_of(&summary, &hosts[0]);
    assert_eq!(missing["outcome"], "blocked");
    assert!(missing["reason"].as_str().unwrap().contains("no device named"), "{}", out.report());
    let upgraded = report_of(&summary, &hosts[6]);
    assert_eq!(upgraded["outcome"], "blocked");
    assert!(upgraded["reason"].as_str().unwrap().contains("not rocky 8"), "{}", out.report());
    {
        let world = site.world();
        let compute = &world.host(&hosts[1]).unwrap().compute;
        assert_eq!(compute.status, "disabled");
        assert_eq!(compute.disabled_reason.as_deref(), Some("Migration to Rocky 9 - LAB"));
        assert_eq!(world.host(&hosts[6]).unwrap().compute.status, "enabled", "a blocked host keeps its service");
    }
    let comments = site.comments(&hosts[1]);
    assert_eq!(comments.iter().filter(|c| c.contains("hvmigrate pre-drain")).count(), 1, "{comments:#?}");

    // A re-run finds everything done and does not post the same news again.
    let again = json(&site.hvmigrate(&["run", "--step", "pre-drain", "--parallel", "--output", "json", "-q"]).run());
    let healthy = report_of(&again, &hosts[1]);
    assert_eq!(healthy["outcome"], "succeeded");
    assert_eq!(action(healthy, "disable-compute")["outcome"], "skipped");
    assert_eq!(site.comments(&hosts[1]).iter().filter(|c| c.contains("hvmigrate pre-drain")).count(), 1);
    let blocked_again = site.comments(&hosts[0]).iter().filter(|c| c.contains("hvmigrate pre-drain")).count();
    assert_eq!(blocked_again, 1, "the same block is not posted twice");

    // A service someone else disabled keeps its reason, and the comment says so.
    site.world().host_mut(&hosts[2]).unwrap().compute.disabled_reason = Some("hardware ticket 42".into());
    let kept = json(&site.hvmigrate(&["run", "--step", "pre-drain", "--only", &hosts[2], "--output", "json"]).run());
    let observed = action(report_of(&kept, &hosts[2]), "disable-compute")["observed"].as_str().unwrap().to_owned();
    assert!(observed.contains("kept: 'hardware ticket 42'"), "{observed}");

    // The order of steps is kept: drain needs pre-drain on that host.
    let status = site.hvmigrate(&["status"]).expect_code(0);
    status.stdout_has(&hosts[1]).stdout_has("pre-drain");
}

#[test]
fn setup_grants_root_once() {
    let site = LabSite::start(WorldOptions { hosts: 4, oddities: false, ..WorldOptions::default() });
    let without_root: Vec<String> = site
        .world()
        .campaign_hosts()
        .filter(|host| host.shell.root_authorized_keys.is_empty())
        .map(|host| host.fqdn.clone())
        .collect();
    assert!(!without_root.is_empty(), "the lab leaves some hosts without the root key");
    let first = json(&site.hvmigrate(&["run", "--step", "setup", "--output", "json"]).expect_code(0));
    let second = json(&site.hvmigrate(&["run", "--step", "setup", "--output", "json"]).expect_code(0));
    for host in &without_root {
        assert_eq!(action(report_of(&first, host), "root-access")["outcome"], "done");
        assert_eq!(action(report_of(&second, host), "root-access")["outcome"], "skipped");
        assert_eq!(
            site.world().host(host).unwrap().shell.root_authorized_keys.lines().count(),
            1,
            "the key is added once"
        );
    }
}

#[test]
fn dry_run_writes_nothing() {
    let site = LabSite::start(WorldOptions { hosts: 6, ..WorldOptions::default() });
    let before = serde_json::to_string(&*site.world()).unwrap();
    site.lab.requests().clear();
    let out = site.hvmigrate(&["run", "--step", "pre-drain", "--parallel", "--dry-run", "--force"]).run();
    assert!(out.code == 0 || out.code == 1, "{}", out.report());
    out.stdout_has("Plan of pre-drain").stdout_has("would do");
    let writes = site.lab.requests().writes();
    // Keystone's token request is a POST that changes nothing in the site.
    let writes: Vec<_> = writes.iter().filter(|r| r.service != Service::Keystone).collect();
    assert!(writes.is_empty(), "a dry run wrote: {writes:#?}\n{}", out.report());
    let mut after: Value = serde_json::from_str(&serde_json::to_string(&*site.world()).unwrap()).unwrap();
    let mut before: Value = serde_json::from_str(&before).unwrap();
    for world in [&mut before, &mut after] {
        // Tokens (and the ids they take) and the commands hosts ran are
        // bookkeeping, not state.
        world.as_object_mut().unwrap().remove("tokens");
        world.as_object_mut().unwrap().remove("next_id");
        for host in world["hosts"].as_array_mut().unwrap() {
            host["shell"].as_object_mut().unwrap().remove("history");
        }
        // The Aquilon host's commands too (pre-drain reads each host's machine there).
        for shell in world["service_hosts"].as_object_mut().unwrap().values_mut() {
            shell.as_object_mut().unwrap().remove("history");
        }
    }
    let changes = differences("world", &before, &after);
    assert!(changes.is_empty(), "the world changed during a dry run: {changes:#?}");
    assert!(!site.workspace.file("state/hvmigrate.db").exists(), "a dry run creates no journal");
}

#[test]
fn faults_fail_only_the_hosts_they_touch() {
    let site = LabSite::start(WorldOptions { hosts: 5, oddities: false, ..WorldOptions::default() });
    let hosts = site.campaign_hosts();
    site.hvmigrate(&["run", "--step", "setup", "--parallel"]).expect_code(0);
    // NetBox answers 503 for one host, every time; another host's SSH is down;
    // every service answers 429 now and then.
    site.lab.faults().set(
        Service::NetBox,
        FaultConfig {
            error_rate: 1.0,
            error_status: Some(503),
            path_contains: Some(hosts[1].clone()),
            ..Default::default()
        },
    );
    site.lab.faults().push(Service::Nova, Fault::RateLimited { retry_after_secs: 1 });
    site.lab.faults().push(Service::Jira, Fault::Status(503));
    site.lab.ssh_faults().set(&hosts[2], SshFaultConfig { refuse_connections: true, ..Default::default() });
    let out = site.hvmigrate(&["run", "--step", "pre-drain", "--parallel", "--output", "json", "-q"]).expect_code(1);
    let summary = json(&out);
    let netbox = report_of(&summary, &hosts[1]);
    assert_eq!(netbox["outcome"], "failed", "{}", out.report());
    assert!(netbox["reason"].as_str().unwrap().contains("503"), "{}", out.report());
    let down = report_of(&summary, &hosts[2]);
    assert_eq!(down["outcome"], "failed", "{}", out.report());
    assert!(down["reason"].as_str().unwrap().contains(&hosts[2]), "the reason names the host\n{}", out.report());
    for host in [&hosts[0], &hosts[3], &hosts[4]] {
        assert_eq!(report_of(&summary, host)["outcome"], "succeeded", "{}", out.report());
    }
}

/// The paths where two JSON values differ, with both sides.
fn differences(path: &str, before: &Value, after: &Value) -> Vec<String> {
    match (before, after) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<_> = a.keys().chain(b.keys()).collect();
            keys.into_iter()
                .flat_map(|key| {
                    differences(
                        &format!("{path}.{key}"),
                        a.get(key).unwrap_or(&Value::Null),
                        b.get(key).unwrap_or(&Value::Null),
                    )
                })
                .collect()
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            a.iter().zip(b).enumerate().flat_map(|(i, (x, y))| differences(&format!("{path}[{i}]"), x, y)).collect()
        }
        _ if before == after => Vec::new(),
        _ => vec![format!("{path}: {before} -> {after}")],
    }
}

/// What a finished pre-drain leaves in the world: service state and the
/// number of pre-drain comments per ticket.
fn end_state(site: &LabSite) -> BTreeMap<String, (String, Option<String>, usize)> {
    let hosts = site.campaign_hosts();
    hosts
        .iter()
        .map(|host| {
            let comments = site.comments(host).iter().filter(|c| c.contains("hvmigrate pre-drain")).count();
            let world = site.world();
            let compute = &world.host(host).unwrap().compute;
            (host.clone(), (compute.status.clone(), compute.disabled_reason.clone(), comments))
        })
        .collect()
}

#[test]
fn killed_at_any_point_a_rerun_ends_as_an_uninterrupted_run() {
    let world = WorldOptions { hosts: 20, oddities: false, ..WorldOptions::default() };
    let reference = LabSite::start(world.clone());
    setup_and_pre_drain(&reference);
    let expected = end_state(&reference);
    assert!(expected.values().all(|(status, _, comments)| status == "disabled" && *comments == 1), "{expected:#?}");

    let site = LabSite::start_with(LabOptions { world, ..LabOptions::default() }, "");
    site.hvmigrate(&["run", "--step", "setup", "--parallel", "-q"]).expect_code(0);
    // Every SSH command and HTTP call is a little slow, so kills land mid-step.
    for host in site.campaign_hosts() {
        site.lab.ssh_faults().set(&host, SshFaultConfig { latency_ms: Some((5, 25)), ..Default::default() });
    }
    for service in Service::ALL {
        site.lab.faults().set(service, FaultConfig { latency_ms: Some((2, 10)), ..Default::default() });
    }
    let mut cut_mid_step = 0;
    // The run first checks every service's credentials, then starts hosts: kills spread well past that.
    for delay_ms in [150, 400, 700, 1000, 1400, 1900, 2500, 3200] {
        let mut child = site.hvmigrate(&["run", "--step", "pre-drain", "--parallel", "-q"]).command.spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let status = site.hvmigrate(&["status", "--output", "json"]).run();
        if let Ok(Value::Array(hosts)) = serde_json::from_str::<Value>(&status.stdout) {
            cut_mid_step += hosts
                .iter()
                .filter(|h| h["step"] == "pre-drain" && (h["outcome"] == "running" || h["outcome"] == "interrupted"))
                .count();
        }
    }
    assert!(cut_mid_step > 0, "no kill landed in the middle of a host's step");
    site.hvmigrate(&["run", "--step", "pre-drain", "--parallel", "-q"]).expect_code(0);
    assert_eq!(end_state(&site), expected, "a killed and resumed run differs from an uninterrupted one");

    // The journal lost nothing: every host's pre-drain ends in success, and
    // the runs that were killed are still there, unfinished.
    let status = site.hvmigrate(&["status", "--output", "json"]).expect_code(0);
    let statuses: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(statuses.as_array().unwrap().len(), 20);
    assert!(statuses.as_array().unwrap().iter().all(|s| s["step"] == "pre-drain" && s["outcome"] == "succeeded"));
}

/// Ids, times and paths that change from run to run.
fn snapshot_filters() -> Vec<(&'static str, &'static str)> {
    vec![
        (r"\d{8}T\d{6}Z-[0-9a-f]{4}", "[RUN]"),
        (r"\d+ ms\b", "[N] ms"),
        (r"\d+\.\d s\b", "[T] s"),
        (r"\d+\.\ds\b", "[T]s"),
        (r"/[^\s]*/(state|logs)/", "[DIR]/$1/"),
        (r"hypervisors\.txt\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}", "hypervisors.txt.[STAMP]"),
        (r#"\\"duration\\":\d+"#, r#"\"duration\":[N]"#),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]"),
    ]
}

#[test]
fn jira_comment_and_summary_snapshots() {
    for flavour in ["server", "cloud"] {
        let jira_cloud = flavour == "cloud";
        let site = LabSite::start(WorldOptions { hosts: 2, oddities: false, jira_cloud, ..WorldOptions::default() });
        let credentials = site.workspace.file("site/credentials.yaml");
        let text = std::fs::read_to_string(&credentials).unwrap();
        std::fs::write(&credentials, text.replace("flavour: auto", &format!("flavour: {flavour}"))).unwrap();
        let host = site.campaign_hosts()[0].clone();
        let out = site.hvmigrate(&["run", "--step", "pre-drain", "--only", &host, "--force", "-q"]).expect_code(0);
        let comments = site.comments(&host);
        assert_eq!(comments.len(), 1, "{comments:#?}");
        // An ADF document is easier to read, and to review, pretty-printed.
        let comment = match serde_json::from_str::<Value>(&comments[0]) {
            Ok(adf) => serde_json::to_string_pretty(&adf).unwrap(),
            Err(_) => comments[0].clone(),
        };
        insta::with_settings!({ filters => snapshot_filters() }, {
            insta::assert_snapshot!(format!("pre_drain_comment_{flavour}"), comment);
            if flavour == "server" {
                insta::assert_snapshot!("pre_drain_summary", out.stdout);
            }
        });
    }
}

#[test]
fn ctrl_c_lets_running_actions_finish_and_records_them() {
    let site = LabSite::start(WorldOptions { hosts: 6, oddities: false, ..WorldOptions::default() });
    site.hvmigrate(&["run", "--step", "setup", "--parallel", "-q"]).expect_code(0);
    for host in site.campaign_hosts() {
        site.lab.ssh_faults().set(&host, SshFaultConfig { latency_ms: Some((150, 150)), ..Default::default() });
    }
    // One host at a time, so the interrupt lands with hosts still to start.
    let mut command = site.hvmigrate(&["run", "--step", "pre-drain", "--output", "json"]).command;
    let child = command.stdout(std::process::Stdio::piped()).spawn().unwrap();
    // Interrupt once the first host has finished, while the others wait their turn.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = site.hvmigrate(&["status", "--output", "json"]).run();
        let statuses: Value = serde_json::from_str(&status.stdout).unwrap_or(Value::Null);
        let finished = statuses
            .as_array()
            .is_some_and(|hosts| hosts.iter().any(|h| h["step"] == "pre-drain" && h["outcome"] == "succeeded"));
        if finished || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", String::from_utf8_lossy(&output.stdout));
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    let outcomes: Vec<&str> =
        summary["hosts"].as_array().unwrap().iter().map(|h| h["outcome"].as_str().unwrap()).collect();
    assert!(outcomes.contains(&"interrupted"), "{outcomes:?}");
    assert!(outcomes.contains(&"succeeded"), "the hosts under way finished: {outcomes:?}");
    // The journal says the same: nothing is left "running".
    let status = site.hvmigrate(&["status", "--output", "json"]).expect_code(0);
    let statuses: Value = serde_json::from_str(&status.stdout).unwrap();
    assert!(statuses.as_array().unwrap().iter().all(|s| s["outcome"] != "running"), "{statuses:#}");
}

#[test]
fn noops_checks_every_service_once_and_changes_nothing() {
    let site = LabSite::start(WorldOptions { hosts: 3, oddities: false, ..WorldOptions::default() });
    site.hvmigrate(&["run", "--step", "setup", "--parallel", "-q"]).expect_code(0);
    site.lab.requests().clear();
    let out = site.hvmigrate(&["run", "--step", "noops", "--parallel", "--output", "json", "-q"]).expect_code(0);
    let summary = json(&out);
    for host in site.campaign_hosts() {
        let check = action(report_of(&summary, &host), "service-credentials");
        assert_eq!(check["outcome"], "recorded", "{}", out.report());
        assert!(check["observed"].as_str().unwrap().contains("alertmanager 0.25.0"), "{check}");
    }
    let scc_checks = site.lab.requests().all().iter().filter(|r| r.service == Service::Scc).count();
    assert_eq!(scc_checks, 1, "the services are checked once for the run, not per host");
    let writes: Vec<_> = site.lab.requests().writes().into_iter().filter(|r| r.service != Service::Keystone).collect();
    // The audit comments are the only writes.
    assert!(writes.iter().all(|r| r.service == Service::Jira && r.method == "POST"), "{writes:#?}");

    let credentials = site.workspace.file("site/credentials.yaml");
    let text = std::fs::read_to_string(&credentials).unwrap();
    let scc_password = text.lines().skip_while(|line| *line != "scc:").find(|line| line.contains("password:")).unwrap();
    std::fs::write(&credentials, text.replace(scc_password, "  password: wrong-password")).unwrap();
    let out = site.hvmigrate(&["run", "--step", "noops", "--parallel", "--output", "json", "-q"]).expect_code(1);
    let reason = report_of(&json(&out), &site.campaign_hosts()[0])["reason"].as_str().unwrap().to_owned();
    assert!(reason.starts_with("service-credentials: scc:"), "{reason}");
    assert!(!out.stdout.contains("wrong-password") && !out.stderr.contains("wrong-password"), "{}", out.report());
}
