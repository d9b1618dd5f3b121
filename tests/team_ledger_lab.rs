//! A team on one ledger: several runs of the real binary at once on the same
//! journal, over overlapping host lists, with SSH latency so that they
//! overlap. Every host is worked on by exactly one run; the others say who
//! holds it. A run killed (-9) or stopped loses its hosts to the next run,
//! which finishes them with nothing repeated. `--claim` partitions the hosts.
//! The same tests run on a SQLite ledger and on PostgreSQL (a private cluster,
//! see tests/support/postgres.rs).

// Only its reinstalled site is used here.
#[allow(unused_imports)]
mod post_reinstall_common;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use hvmigrate::journal::Journal;
use hvmigrate_lab::{LabOptions, Service, SshFaultConfig, WorldOptions};
use serde_json::Value;
use support::lab_site::{kill_when, LabSite};

/// The ledger the runs share: the SQLite file, or a PostgreSQL database of
/// the test cluster (the test is skipped, the reason said, without PostgreSQL).
#[derive(Clone, Copy)]
enum Ledger {
    Sqlite,
    Postgres(&'static str),
}

impl Ledger {
    fn site(self, site: LabSite) -> Option<LabSite> {
        match self {
            Ledger::Sqlite => Some(site),
            Ledger::Postgres(test) => site.on_postgres(test),
        }
    }
}

/// `hosts` standard hosts through setup, every SSH command taking
/// `latency_ms`, runs holding their hosts `lease_secs` unrenewed.
fn set_up(ledger: Ledger, hosts: usize, latency_ms: u64, lease_secs: u64) -> Option<(LabSite, Vec<String>)> {
    let world = WorldOptions { hosts, vms_per_host: Some(0), oddities: false, ..WorldOptions::default() };
    let leases = format!("workflow:\n  ledger:\n    lease_secs: {lease_secs}\n");
    let site = ledger.site(LabSite::start_with(LabOptions { world, ..LabOptions::default() }, &leases))?;
    site.hvmigrate(&["run", "--step", "setup", "--parallel", "-q"]).expect_code(0);
    let hosts = site.campaign_hosts();
    for host in &hosts {
        let slow = SshFaultConfig { latency_ms: Some((latency_ms, latency_ms)), ..SshFaultConfig::default() };
        site.lab.ssh_faults().set(host, slow);
    }
    Some((site, hosts))
}

/// The binary in the background, its JSON summary kept.
fn start(site: &LabSite, args: &[&str]) -> Child {
    let mut all = vec!["-q", "--output", "json", "run"];
    all.extend_from_slice(args);
    let mut run = site.hvmigrate(&all);
    run.command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    run.command.spawn().expect("the binary starts")
}

/// Waits for the run; its summary (shown with its stderr when it is not one).
fn summary(child: Child) -> Value {
    let output = child.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(&stdout)
        .unwrap_or_else(|err| panic!("not a summary ({err}), exit {}\n{stdout}\n--- stderr\n{stderr}", output.status))
}

fn only<'a>(step: &'a str, hosts: &[&'a String]) -> Vec<&'a str> {
    let mut args = vec!["--step", step, "--parallel"];
    for host in hosts {
        args.extend(["--only", host.as_str()]);
    }
    args
}

fn journal(site: &LabSite) -> Journal {
    Journal::open_read_only(&site.journal_location()).unwrap().expect("a journal")
}

/// The runs that recorded actions of `step` on `host`.
fn runs_that_worked(site: &LabSite, host: &str, step: &str) -> BTreeSet<String> {
    journal(site)
        .host_history(host)
        .unwrap()
        .into_iter()
        .filter(|record| record.step == step)
        .map(|r| r.run_id)
        .collect()
}

fn step_comments(site: &LabSite, host: &str, step: &str) -> usize {
    site.comments(host).iter().filter(|comment| comment.contains(&format!("hvmigrate {step}"))).count()
}

/// Nova service updates (disable/enable) of one host.
fn service_updates(site: &LabSite) -> usize {
    site.lab
        .requests()
        .writes()
        .iter()
        .filter(|request| request.service == Service::Nova && request.path.contains("os-services"))
        .count()
}

/// `observe`'s value once two readings 300 ms apart agree.
fn settled<T: PartialEq>(observe: impl Fn() -> T) -> T {
    let mut last = observe();
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = observe();
        if now == last {
            return now;
        }
        last = now;
    }
}

fn disabled(site: &LabSite, host: &str) -> bool {
    site.world().host(host).unwrap().compute.status == "disabled"
}

/// The hosts answer nobody (their SSH commands wait) until released.
fn hold(site: &LabSite, hosts: &[String]) {
    for host in hosts {
        site.lab.ssh_faults().update(host, |faults| faults.hold = true);
    }
}

/// Once `runs` runs of `step` have started (the journal's runs table: a run
/// whose hosts are all held ends at once, so runs under way may never all
/// be seen together) and `leased` hosts are leased, and a moment later (each
/// run tries all its hosts at once when it starts, and none gives a host
/// back while the hosts answer nobody), the hosts answer.
fn release_when_started(site: &LabSite, hosts: &[String], step: &str, runs: usize, leased: usize) {
    let started = Instant::now();
    let mut seen = (0, 0);
    loop {
        if let Some(journal) = Journal::open_read_only(&site.journal_location()).unwrap() {
            seen = (journal.runs_started(step).unwrap().len(), journal.leases().unwrap().len());
        }
        if seen == (runs, leased) {
            break;
        }
        // Generous: three processes starting on a busy machine (the whole suite at once).
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the runs never all started: {} runs of {step} started and {} hosts leased, not {runs} and {leased}",
            seen.0,
            seen.1
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    for host in hosts {
        site.lab.ssh_faults().update(host, |faults| faults.hold = false);
    }
}

/// Runs at once over overlapping lists: each host worked on by exactly one
/// run, one comment per host, and every other run's report names the holder.
fn overlapping_runs(ledger: Ledger, lists: &[&[usize]]) {
    let Some((site, hosts)) = set_up(ledger, 6, 150, 60) else { return };
    let listed: BTreeSet<usize> = lists.iter().flat_map(|list| list.iter().copied()).collect();
    // However late a process starts (the machine may be busy), the runs overlap.
    hold(&site, &hosts);
    let children: Vec<Child> = lists
        .iter()
        .map(|list| {
            let list: Vec<&String> = list.iter().map(|index| &hosts[*index]).collect();
            start(&site, &only("pre-drain", &list))
        })
        .collect();
    release_when_started(&site, &hosts, "pre-drain", lists.len(), listed.len());
    let summaries: Vec<Value> = children.into_iter().map(summary).collect();
    let mut reports: BTreeMap<String, Vec<(String, Value)>> = BTreeMap::new();
    for summary in &summaries {
        let run_id = summary["run_id"].as_str().unwrap().to_owned();
        for report in summary["hosts"].as_array().unwrap() {
            reports
                .entry(report["host"].as_str().unwrap().to_owned())
                .or_default()
                .push((run_id.clone(), report.clone()));
        }
    }
    assert_eq!(reports.len(), listed.len(), "{summaries:#?}");
    for (host, reports) in &reports {
        let workers: Vec<&String> =
            reports.iter().filter(|(_, report)| report["outcome"] == "succeeded").map(|(run, _)| run).collect();
        assert_eq!(workers.len(), 1, "{host}: exactly one run works on it\n{reports:#?}");
        let worker = workers[0];
        for (run, report) in reports.iter().filter(|(run, _)| run != worker) {
            assert_eq!(report["outcome"], "blocked", "{host} in run {run}: {report:#?}");
            let reason = report["reason"].as_str().unwrap();
            assert!(reason.starts_with(&format!("leased by run {worker} (")), "{host} in run {run}: {reason}");
            assert!(reason.contains(", pid ") && reason.contains(") until "), "{reason}");
            assert!(report["actions"].as_array().unwrap().is_empty(), "{report:#?}");
        }
        assert_eq!(runs_that_worked(&site, host, "pre-drain"), BTreeSet::from([worker.clone()]), "{host}");
        assert_eq!(step_comments(&site, host, "pre-drain"), 1, "{host}: {:#?}", site.comments(host));
    }
    let overlapping = reports.values().filter(|reports| reports.len() > 1).count();
    assert!(overlapping > 0, "the lists overlap");
    assert_eq!(service_updates(&site), listed.len(), "one disable per host");
    assert!(journal(&site).leases().unwrap().is_empty(), "every lease was given back");
    assert!(journal(&site).runs_under_way().unwrap().is_empty(), "no run is under way any more");
}

#[test]
fn two_runs_at_once_over_overlapping_lists_work_each_host_once() {
    overlapping_runs(Ledger::Sqlite, &[&[0, 1, 2, 3], &[2, 3, 4, 5]]);
}

#[test]
fn two_runs_at_once_over_overlapping_lists_work_each_host_once_on_postgres() {
    overlapping_runs(Ledger::Postgres("two_runs_at_once_on_postgres"), &[&[0, 1, 2, 3], &[2, 3, 4, 5]]);
}

#[test]
fn three_runs_at_once_over_overlapping_lists_work_each_host_once() {
    overlapping_runs(Ledger::Sqlite, &[&[0, 1, 2, 3], &[2, 3, 4, 5], &[5, 3, 1]]);
}

#[test]
fn a_killed_run_loses_its_hosts_to_the_next_run_which_repeats_nothing() {
    a_killed_run_loses_its_hosts_to_the_next_run_which_repeats_nothing_on(Ledger::Sqlite);
}

#[test]
fn a_killed_run_loses_its_hosts_to_the_next_run_which_repeats_nothing_on_postgres() {
    a_killed_run_loses_its_hosts_to_the_next_run_which_repeats_nothing_on(Ledger::Postgres(
        "a_killed_run_loses_its_hosts_to_the_next_run_which_repeats_nothing",
    ));
}

fn a_killed_run_loses_its_hosts_to_the_next_run_which_repeats_nothing_on(ledger: Ledger) {
    // Long leases: the killed run's hosts are freed because its process is gone, not by time.
    let Some((site, hosts)) = set_up(ledger, 2, 200, 120) else { return };
    let list = [&hosts[0], &hosts[1]];
    let mut killed =
        site.spawn(&["-q", "run", "--step", "pre-drain", "--parallel", "--only", &hosts[0], "--only", &hosts[1]]);
    kill_when(&mut killed, "the host's service disabled", || disabled(&site, &hosts[0]));
    let held = journal(&site).leases().unwrap();
    assert_eq!(held.len(), 2, "the killed run still holds its hosts: {held:#?}");
    let killed_run = held[0].run_id.clone();

    // Its process is gone from this machine: the next run takes the hosts over at once.
    let next = summary(start(&site, &only("pre-drain", &list)));
    for host in &hosts {
        let report = next["hosts"].as_array().unwrap().iter().find(|report| report["host"] == host.as_str()).unwrap();
        assert_eq!(report["outcome"], "succeeded", "{report:#?}");
        let takeovers = journal(&site).takeovers(host).unwrap();
        assert_eq!(takeovers.len(), 1, "{host}: {takeovers:#?}");
        assert_eq!(takeovers[0].from_run, killed_run);
        assert_eq!(takeovers[0].to_run, next["run_id"].as_str().unwrap());
        assert!(takeovers[0].why.ends_with("is gone"), "{}", takeovers[0].why);
        assert_eq!(step_comments(&site, host, "pre-drain"), 1, "{host}: {:#?}", site.comments(host));
    }
    assert_eq!(service_updates(&site), 2, "one disable per host");
}

#[test]
fn a_stopped_run_holds_its_hosts_until_its_lease_runs_out_then_loses_them() {
    // Long enough that the status checks and the early run below, each a
    // process start on a possibly busy machine, see the stopped run's lease.
    let Some((site, hosts)) = set_up(Ledger::Sqlite, 2, 200, 10) else { return };
    let list = [&hosts[0], &hosts[1]];
    let mut stopped = start(&site, &only("pre-drain", &list));
    let started = Instant::now();
    while !disabled(&site, &hosts[0]) {
        assert!(started.elapsed() < Duration::from_secs(60), "the service was never disabled");
        assert!(stopped.try_wait().unwrap().is_none(), "the run ended before it disabled the service");
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: a plain signal to our own child.
    unsafe { libc::kill(stopped.id() as i32, libc::SIGSTOP) };
    let held = journal(&site).leases().unwrap();
    assert_eq!(held.len(), 2, "{held:#?}");
    // A request the run had sent before it stopped may still reach the lab: count once it is quiet.
    let (writes, comments) = settled(|| (service_updates(&site), site.comments(&hosts[0]).len()));
    let stopped_run = held[0].run_id.clone();

    // While its lease lasts, the stopped run keeps its hosts, and everyone can see who holds them.
    let status = site.hvmigrate(&["status"]).expect_code(0);
    status
        .stdout_has("HELD BY")
        .stdout_has(&format!("run {stopped_run} ("))
        .stdout_has(&format!("pid {}", stopped.id()));
    let runs = site.hvmigrate(&["status", "--runs"]).expect_code(0);
    runs.stdout_has(&stopped_run).stdout_has("pre-drain").stdout_has(&format!("(pid {})", stopped.id()));
    runs.stdout_has(&format!("{}, {}", hosts[0], hosts[1]));
    let runs = support::lab_site::json(&site.hvmigrate(&["status", "--runs", "--output", "json"]).expect_code(0));
    assert_eq!(runs[0]["step"], "pre-drain");
    assert_eq!(runs[0]["hosts"], 2);
    let early = summary(start(&site, &only("pre-drain", &list)));
    for report in early["hosts"].as_array().unwrap() {
        assert_eq!(report["outcome"], "blocked", "{report:#?}");
        assert!(report["reason"].as_str().unwrap().starts_with(&format!("leased by run {stopped_run} (")));
    }
    assert_eq!(service_updates(&site), writes, "the blocked run changed nothing");
    assert_eq!(site.comments(&hosts[0]).len(), comments, "the blocked run posted nothing");

    // Once the lease ran out, the next run takes the hosts over and finishes them.
    let expires = &journal(&site).leases().unwrap()[0].expires_at.clone();
    while hvmigrate::journal::now().as_str() <= expires.as_str() {
        std::thread::sleep(Duration::from_millis(100));
    }
    let late = summary(start(&site, &only("pre-drain", &list)));
    for host in &hosts {
        let report = late["hosts"].as_array().unwrap().iter().find(|report| report["host"] == host.as_str()).unwrap();
        assert_eq!(report["outcome"], "succeeded", "{report:#?}");
        let takeovers = journal(&site).takeovers(host).unwrap();
        assert_eq!(takeovers.len(), 1, "{takeovers:#?}");
        assert!(takeovers[0].why.starts_with("its lease ran out at "), "{}", takeovers[0].why);
    }

    // The stopped run, resumed, finds its hosts taken: it does and posts
    // nothing more. Whichever sees it first (the renewal, or the lease check
    // of the next intent) says who took the host over.
    let late_run = late["run_id"].as_str().unwrap();
    unsafe { libc::kill(stopped.id() as i32, libc::SIGCONT) };
    let resumed = summary(stopped);
    for report in resumed["hosts"].as_array().unwrap() {
        let outcome = report["outcome"].as_str().unwrap();
        assert!(["interrupted", "blocked", "failed"].contains(&outcome), "{report:#?}");
        let reason = report["reason"].as_str().unwrap();
        assert!(reason.contains(&format!("lease lost to run {late_run} (")), "{report:#?}");
    }
    for host in &hosts {
        assert_eq!(step_comments(&site, host, "pre-drain"), 1, "{host}: {:#?}", site.comments(host));
    }
    assert_eq!(service_updates(&site), 2, "one disable per host");
    let statuses = journal(&site).host_statuses().unwrap();
    assert!(statuses.iter().all(|status| status.position.as_deref() == Some("pre-drain")), "{statuses:#?}");
}

#[test]
fn three_runs_claiming_at_once_partition_the_hosts() {
    three_runs_claiming_at_once_partition_the_hosts_on(Ledger::Sqlite);
}

#[test]
fn three_runs_claiming_at_once_partition_the_hosts_on_postgres() {
    three_runs_claiming_at_once_partition_the_hosts_on(Ledger::Postgres(
        "three_runs_claiming_at_once_partition_the_hosts",
    ));
}

fn three_runs_claiming_at_once_partition_the_hosts_on(ledger: Ledger) {
    let Some((site, hosts)) = set_up(ledger, 9, 50, 60) else { return };
    // One host is already through pre-drain: nobody claims it again.
    site.hvmigrate(&["run", "--step", "pre-drain", "--only", &hosts[0], "-q"]).expect_code(0);
    let children: Vec<Child> =
        (0..3).map(|_| start(&site, &["--step", "pre-drain", "--parallel", "--claim", "3"])).collect();
    let summaries: Vec<Value> = children.into_iter().map(summary).collect();
    let mut claimed: Vec<Vec<String>> = Vec::new();
    for summary in &summaries {
        let reports = summary["hosts"].as_array().unwrap();
        assert!(reports.iter().all(|report| report["outcome"] == "succeeded"), "{summary:#?}");
        claimed.push(reports.iter().map(|report| report["host"].as_str().unwrap().to_owned()).collect());
    }
    let mut all: Vec<String> = claimed.iter().flatten().cloned().collect();
    all.sort();
    let mut expected = hosts[1..].to_vec();
    expected.sort();
    assert_eq!(all, expected, "every host but the one done, each once: {claimed:#?}");
    for list in &claimed {
        assert!(list.len() <= 3, "{claimed:#?}");
        // A claim is one transaction in list order: each run has a block of consecutive hosts.
        let order: Vec<usize> = list.iter().map(|host| hosts.iter().position(|h| h == host).unwrap()).collect();
        assert!(order.windows(2).all(|pair| pair[1] == pair[0] + 1), "claimed in list order: {claimed:#?}");
    }
    for host in &hosts {
        assert_eq!(step_comments(&site, host, "pre-drain"), 1, "{host}");
    }
    // Nothing left to claim: a fourth run takes no host and changes nothing.
    let fourth = summary(start(&site, &["--step", "pre-drain", "--claim", "3"]));
    assert!(fourth["hosts"].as_array().unwrap().is_empty(), "{fourth:#?}");
}

#[test]
fn two_drains_at_once_keep_to_the_global_live_migration_limit() {
    two_drains_at_once_keep_to_the_global_live_migration_limit_on(Ledger::Sqlite);
}

#[test]
fn two_drains_at_once_keep_to_the_global_live_migration_limit_on_postgres() {
    two_drains_at_once_keep_to_the_global_live_migration_limit_on(Ledger::Postgres(
        "two_drains_at_once_keep_to_the_global_live_migration_limit",
    ));
}

fn two_drains_at_once_keep_to_the_global_live_migration_limit_on(ledger: Ledger) {
    let settings = "workflow:\n  drain:\n    poll_interval_ms: 50\n    timeout_base_secs: 60\n  limits:\n    live_migrations_global: 2\n    live_migrations_per_host: 2\n";
    let world = WorldOptions { hosts: 4, seed: 7, vms_per_host: Some(4), oddities: false, ..WorldOptions::default() };
    let Some(site) = ledger.site(LabSite::start_with(LabOptions { world, ..LabOptions::default() }, settings)) else {
        return;
    };
    site.hvmigrate(&["run", "--step", "setup", "--parallel", "-q"]).expect_code(0);
    {
        let mut world = site.world();
        // Simulated migrations of 2 to 4 s take 1 to 2 s: the two drains overlap.
        world.time_scale = 2.0;
        for host in world.hosts.iter_mut().filter(|host| host.in_campaign) {
            host.compute.status = "disabled".into();
            host.compute.disabled_reason = Some("Migration to Rocky 9 - LAB".into());
        }
        for server in world.servers.values_mut() {
            server.status = "ACTIVE".into();
        }
    }
    let hosts = site.campaign_hosts();
    let drain = |list: &[&String]| {
        let mut args = only("drain", list);
        args.push("--force");
        start(&site, &args)
    };
    let (first, second) = (drain(&[&hosts[0], &hosts[1]]), drain(&[&hosts[2], &hosts[3]]));
    let summaries = [summary(first), summary(second)];
    for summary in &summaries {
        let reports = summary["hosts"].as_array().unwrap();
        assert!(reports.iter().all(|report| report["outcome"] == "succeeded"), "{summary:#?}");
    }
    let world = site.world();
    assert_eq!(world.migrations.len(), 16);
    assert!(world.max_concurrent_migrations <= 2, "across both runs: {}", world.max_concurrent_migrations);
    assert_eq!(world.max_concurrent_migrations, 2, "the limit is used, not only respected");
    drop(world);
    assert_eq!(journal(&site).slots_taken("live-migrations").unwrap(), 0, "every slot was given back");
}

#[test]
fn two_runs_at_once_take_turns_on_the_aquilon_host() {
    let world = WorldOptions { hosts: 4, vms_per_host: Some(0), oddities: false, ..WorldOptions::default() };
    let site = LabSite::drained(world, "");
    let hosts = site.campaign_hosts();
    let aquilon = site.world().aquilon_host_name();
    let slow = SshFaultConfig { latency_ms: Some((100, 100)), ..SshFaultConfig::default() };
    site.lab.ssh_faults().set(&aquilon, slow);
    hold(&site, &hosts);
    let pre_reinstall = |list: &[&String]| {
        let mut args = only("pre-reinstall", list);
        args.push("--yes");
        start(&site, &args)
    };
    let (first, second) = (pre_reinstall(&[&hosts[0], &hosts[1]]), pre_reinstall(&[&hosts[2], &hosts[3]]));
    release_when_started(&site, &hosts, "pre-reinstall", 2, 4);
    for summary in [summary(first), summary(second)] {
        let reports = summary["hosts"].as_array().unwrap();
        assert!(reports.iter().all(|report| report["outcome"] == "succeeded"), "{summary:#?}");
    }
    // workflow.limits.aquilon_commands is 1: one command at a time across both runs.
    assert_eq!(site.lab.ssh_faults().most_commands_at_once(&aquilon), 1);
    assert_eq!(journal(&site).slots_taken("aquilon-commands").unwrap(), 0, "every turn was given back");
}

#[test]
fn two_adoptions_at_once_take_turns_on_the_kayobe_host() {
    let quick_polls = "workflow:\n  remote_jobs:\n    poll_interval_ms: 100\n";
    let (site, hosts) = post_reinstall_common::reinstalled_site(quick_polls, |_| true);
    post_reinstall_common::post_reinstall(&site, &[]);
    let before = site.world().kayobe_runs.clone();
    // A batch takes 9 s (inventory 0.3 s, host configure 4.5 s, service
    // deploy 3 s, controllers 1.5 s): two runs started together overlap unless they take turns.
    site.world().remote_job_minute = Duration::from_millis(150);
    let adoption = |list: &[&String]| {
        let mut args = only("adoption", list);
        args.push("--yes");
        start(&site, &args)
    };
    let (first, second) = (adoption(&[&hosts[1], &hosts[2]]), adoption(&[&hosts[3], &hosts[4]]));
    for summary in [summary(first), summary(second)] {
        let reports = summary["hosts"].as_array().unwrap();
        assert!(reports.iter().all(|report| report["outcome"] == "succeeded"), "{summary:#?}");
    }
    let runs = site.world().kayobe_runs.clone();
    assert_eq!(runs.host_configure - before.host_configure, 2, "one batch per run: {runs:?}");
    assert_eq!(runs.service_deploy - before.service_deploy, 2, "{runs:?}");
    // One Kayobe batch at a time across both runs: never two Kayobe runs under way.
    assert_eq!(runs.most_at_once(), 1, "{:?}", runs.spans);
    let slot = hvmigrate::workflow::context::KAYOBE_BATCHES;
    assert_eq!(journal(&site).slots_taken(slot).unwrap(), 0, "the turn was given back");
}

#[test]
fn two_drains_at_once_do_not_both_count_the_same_free_room() {
    let settings = "workflow:\n  drain:\n    poll_interval_ms: 50\n    timeout_base_secs: 120\n";
    let world = WorldOptions { hosts: 2, seed: 7, vms_per_host: Some(2), oddities: false, ..WorldOptions::default() };
    let site = LabSite::start_with(LabOptions { world, ..LabOptions::default() }, settings);
    site.hvmigrate(&["run", "--step", "setup", "--parallel", "-q"]).expect_code(0);
    const VM_MB: u64 = 4096;
    {
        let mut world = site.world();
        // Simulated migrations of 2 to 4 s take 8 to 16 s: the first drain
        // still holds its room when the second checks.
        world.time_scale = 0.25;
        for host in world.hosts.iter_mut().filter(|host| host.in_campaign) {
            host.compute.status = "disabled".into();
            host.compute.disabled_reason = Some("Migration to Rocky 9 - LAB".into());
        }
        // Each spare has room for one VM's memory, not two: the two spares
        // take one campaign host's VMs, not both hosts'.
        for host in world.hosts.iter_mut().filter(|host| !host.in_campaign) {
            host.memory_mib = host.allocation.reserved_host_memory_mb + VM_MB + VM_MB / 2;
            host.allocation.ram_allocation_ratio = 1.0;
        }
        for server in world.servers.values_mut() {
            server.status = "ACTIVE".into();
            (server.vcpus, server.ram_mb, server.disk_gb) = (1, VM_MB, 1);
        }
    }
    let hosts = site.campaign_hosts();
    let drain = |host: &String| {
        let mut args = only("drain", &[host]);
        args.push("--force");
        start(&site, &args)
    };
    let (first, second) = (drain(&hosts[0]), drain(&hosts[1]));
    let summaries = [summary(first), summary(second)];
    let report = |summary: &Value| summary["hosts"][0].clone();
    let drained: Vec<&Value> = summaries.iter().filter(|s| report(s)["outcome"] == "succeeded").collect();
    assert_eq!(drained.len(), 1, "one drain has the room: {summaries:#?}");
    let (winner, winner_host) = (drained[0]["run_id"].as_str().unwrap(), report(drained[0])["host"].clone());
    let loser = summaries.iter().find(|s| report(s)["outcome"] != "succeeded").unwrap();
    assert_eq!(report(loser)["outcome"], "blocked", "{loser:#?}");
    let reason = report(loser)["reason"].as_str().unwrap().to_owned();
    assert!(reason.starts_with("capacity: not enough room"), "{reason}");
    let holder = format!("reserved for {} by run {winner} (", winner_host.as_str().unwrap());
    assert!(reason.contains(&holder), "the reason names who holds the room ({holder}): {reason}");

    let world = site.world();
    assert_eq!(world.migrations.len(), 2, "only the winner's VMs moved: {:#?}", world.migrations);
    let used = hvmigrate_lab::placement::usages(&world);
    for spare in world.hosts.iter().filter(|host| !host.in_campaign) {
        let capacity = hvmigrate_lab::placement::inventories(spare)["MEMORY_MB"].capacity() as u64;
        let memory = used.get(spare.fqdn.as_str()).and_then(|used| used.get("MEMORY_MB")).copied().unwrap_or(0);
        assert!(memory <= capacity, "{}: {memory} MB used of {capacity}", spare.fqdn);
    }
    drop(world);
    assert!(journal(&site).room_reserved().unwrap().is_empty(), "every reservation was given back");
}

#[test]
fn two_drains_to_the_same_target_host_keep_to_its_limit() {
    let settings = "workflow:\n  drain:\n    poll_interval_ms: 50\n    timeout_base_secs: 120\n  limits:\n    live_migrations_global: 8\n    live_migrations_per_host: 2\n";
    let world = WorldOptions { hosts: 2, seed: 7, vms_per_host: Some(4), oddities: false, ..WorldOptions::default() };
    let site = LabSite::start_with(LabOptions { world, ..LabOptions::default() }, settings);
    site.hvmigrate(&["run", "--step", "setup", "--parallel", "-q"]).expect_code(0);
    let target = {
        let mut world = site.world();
        // Migrations of 2.5 simulated seconds take 5 s: the two drains overlap.
        world.time_scale = 0.5;
        for host in world.hosts.iter_mut().filter(|host| host.in_campaign) {
            host.compute.status = "disabled".into();
            host.compute.disabled_reason = Some("Migration to Rocky 9 - LAB".into());
        }
        for server in world.servers.values_mut() {
            server.status = "ACTIVE".into();
            (server.vcpus, server.ram_mb, server.disk_gb) = (1, 1024, 1);
        }
        world.hosts.iter().find(|host| !host.in_campaign).unwrap().fqdn.clone()
    };
    // Both drains send every VM to the same host.
    let path = site.workspace.file("site/credentials.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\n  drain:\n"), "{text}");
    std::fs::write(&path, text.replacen("\n  drain:\n", &format!("\n  drain:\n    target_host: {target}\n"), 1))
        .unwrap();
    let hosts = site.campaign_hosts();
    let drain = |host: &String| {
        let mut args = only("drain", &[host]);
        args.push("--force");
        start(&site, &args)
    };
    let (first, second) = (drain(&hosts[0]), drain(&hosts[1]));
    for summary in [summary(first), summary(second)] {
        assert_eq!(summary["hosts"][0]["outcome"], "succeeded", "{summary:#?}");
    }
    let world = site.world();
    assert_eq!(world.migrations.len(), 8);
    assert!(world.migrations.iter().all(|migration| migration.dest_compute == target), "{:#?}", world.migrations);
    // live_migrations_per_host to the target across both runs, each of which may send two at once.
    let most = world.max_concurrent_migrations_per_destination;
    assert_eq!(most, 2, "at most two at once to {target}, and the limit used");
    drop(world);
    let slot = format!("{}{target}", hvmigrate::workflow::drain::migrate::MIGRATIONS_TO);
    assert_eq!(journal(&site).slots_taken(&slot).unwrap(), 0, "every place was given back");
}
