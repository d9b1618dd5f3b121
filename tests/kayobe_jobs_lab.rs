//! Kayobe as detached remote jobs, through the real binary against the
//! simulated site: a run longer than the SSH command timeout, a kill -9 of
//! the tool in the middle of it and a re-run that waits for it instead of
//! starting another; and one batch for every host with `--parallel 1`.

mod post_reinstall_common;
mod support;

use std::time::{Duration, Instant};

use hvmigrate_lab::world::KayobeRuns;
use post_reinstall_common::*;
use support::lab_site::kill_when;

/// Looks at running jobs often: the lab's Kayobe minutes are short.
const QUICK_POLLS: &str = "workflow:\n  remote_jobs:\n    poll_interval_ms: 100\n";

/// Sets the SSH command timeout of the site's credentials file.
fn ssh_command_timeout(site: &LabSite, secs: u64) {
    let path = site.workspace.file("site/credentials.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\nssh:\n"), "an ssh section:\n{text}");
    let text = text.replacen("\nssh:\n", &format!("\nssh:\n  command_timeout_secs: {secs}\n"), 1);
    std::fs::write(&path, text).unwrap();
}

fn kayobe_runs(site: &LabSite) -> KayobeRuns {
    site.world().kayobe_runs.clone()
}

#[test]
fn a_kayobe_run_outlasting_the_ssh_timeout_survives_a_kill_and_is_awaited_by_the_rerun() {
    let (site, hosts) = reinstalled_site(QUICK_POLLS, |_| true);
    post_reinstall(&site, &[]);
    let before = kayobe_runs(&site);
    // Host configure: 30 simulated minutes of 100 ms, 3 s; every SSH command may take 1 s.
    site.world().remote_job_minute = Duration::from_millis(100);
    ssh_command_timeout(&site, 1);

    let mut child = site.spawn(&["-q", "run", "--step", "adoption", "--yes", "--parallel"]);
    kill_when(&mut child, "host configure", || kayobe_runs(&site).host_configure != before.host_configure);
    assert_eq!(site.world().jobs.running(), 1, "the job outlives the tool");

    let out = adoption(&site, &[]);
    let summary = json(&out);
    for host in &hosts[1..] {
        let report = report_of(&summary, host);
        assert_eq!(report["outcome"], "succeeded", "{host}\n{}", out.report());
        let kayobe = action(report, "kayobe-deploy");
        let change = kayobe["change"].as_str().unwrap_or_default();
        assert!(change.contains("host configure: job kayobe-host-configure-"), "{host}: {kayobe}");
        assert_eq!(jira_status(&site, host), "Ready For Test");
        let world = site.world();
        assert_eq!(world.host(host).unwrap().kayobe.host_configures, 1, "{host}");
        assert_eq!(world.host(host).unwrap().compute.status, "enabled", "{host}");
    }
    let runs = kayobe_runs(&site);
    assert_eq!(runs.host_configure - before.host_configure, 1, "one host configure: the re-run re-attached");
    assert_eq!(runs.service_deploy - before.service_deploy, 1);
    assert_eq!(runs.controllers_common - before.controllers_common, 1);
    let comment = site.comments(&hosts[1]).into_iter().find(|c| c.contains("hvmigrate adoption")).unwrap();
    assert!(comment.contains("host configure: job kayobe-host-configure-"), "the ticket says so: {comment}");
}

/// Which counter a stage of the batch moves.
fn stage_count(runs: &KayobeRuns, stage: usize) -> u32 {
    [runs.inventory, runs.host_configure, runs.service_deploy, runs.controllers_common][stage]
}

#[test]
fn killed_during_every_job_of_the_batch_each_runs_once() {
    let (site, hosts) = reinstalled_site(QUICK_POLLS, |_| true);
    post_reinstall(&site, &[]);
    let before = kayobe_runs(&site);
    // Inventory 0.2 s, host configure 3 s, service deploy 2 s, controllers 1 s.
    site.world().remote_job_minute = Duration::from_millis(100);
    // One run killed as each job starts: the next run awaits that job, uses
    // what the killed runs finished, and starts only what is left.
    for stage in 0..4 {
        let mut child = site.spawn(&["-q", "run", "--step", "adoption", "--yes", "--parallel"]);
        let what = format!("stage {stage}");
        kill_when(&mut child, &what, || stage_count(&kayobe_runs(&site), stage) != stage_count(&before, stage));
    }
    let out = adoption(&site, &[]);
    let summary = json(&out);
    for host in &hosts[1..] {
        assert_eq!(report_of(&summary, host)["outcome"], "succeeded", "{host}\n{}", out.report());
        assert_eq!(jira_status(&site, host), "Ready For Test");
    }
    let runs = kayobe_runs(&site);
    for stage in 0..4 {
        assert_eq!(stage_count(&runs, stage) - stage_count(&before, stage), 1, "stage {stage}: {runs:?}");
    }
    assert_eq!(site.world().jobs.running(), 0);
}

#[test]
fn a_dropped_connection_during_every_job_of_the_batch_repeats_nothing() {
    let (site, hosts) = reinstalled_site(QUICK_POLLS, |_| true);
    post_reinstall(&site, &[]);
    let before = kayobe_runs(&site);
    site.world().remote_job_minute = Duration::from_millis(100);
    let kayobe = site.world().kayobe_host_name();
    let mut drops = 0;
    let out = std::thread::scope(|scope| {
        let run = scope.spawn(|| adoption(&site, &[]));
        // As each job starts, the Kayobe host's next command loses its answer.
        for stage in 0..4 {
            let started = Instant::now();
            while stage_count(&kayobe_runs(&site), stage) == stage_count(&before, stage) && !run.is_finished() {
                assert!(started.elapsed() < Duration::from_secs(90), "stage {stage} never started");
                std::thread::sleep(Duration::from_millis(5));
            }
            let drop = hvmigrate_lab::SshFaultConfig { drop_next_commands: 1, ..Default::default() };
            site.lab.ssh_faults().set(&kayobe, drop);
            drops += 1;
        }
        run.join().expect("the run")
    });
    assert_eq!(drops, 4);
    assert_eq!(site.lab.ssh_faults().get(&kayobe).drop_next_commands, 0, "the last drop happened");
    let summary = json(&out);
    for host in &hosts[1..] {
        assert_eq!(report_of(&summary, host)["outcome"], "succeeded", "{host}\n{}", out.report());
    }
    let runs = kayobe_runs(&site);
    for stage in 0..4 {
        assert_eq!(stage_count(&runs, stage) - stage_count(&before, stage), 1, "stage {stage}: {runs:?}");
    }
}

#[test]
fn killed_once_the_hosts_are_deployed_the_rerun_still_deploys_the_controllers() {
    let (site, hosts) = reinstalled_site(QUICK_POLLS, |_| true);
    post_reinstall(&site, &[]);
    let before = kayobe_runs(&site);
    site.world().remote_job_minute = Duration::from_millis(100);
    let mut child = site.spawn(&["-q", "run", "--step", "adoption", "--yes", "--parallel"]);
    let started = Instant::now();
    kill_when(&mut child, "service deploy", || kayobe_runs(&site).service_deploy != before.service_deploy);
    // The deploy ends while no one looks: nova-compute is up before the re-run.
    while site.world().jobs.running() > 0 {
        assert!(started.elapsed() < Duration::from_secs(90), "the deploy never ended");
        std::thread::sleep(Duration::from_millis(20));
    }
    site.world().advance_jobs();
    for host in &hosts[1..] {
        assert_eq!(site.world().host(host).unwrap().compute.state, "up", "{host}");
    }

    let out = adoption(&site, &[]);
    let summary = json(&out);
    for host in &hosts[1..] {
        assert_eq!(report_of(&summary, host)["outcome"], "succeeded", "{host}\n{}", out.report());
    }
    let runs = kayobe_runs(&site);
    assert_eq!(runs.controllers_common - before.controllers_common, 1, "the batch was finished: {runs:?}");
    assert_eq!(runs.service_deploy - before.service_deploy, 1, "{runs:?}");
    assert_eq!(runs.host_configure - before.host_configure, 1, "{runs:?}");

    // Done: another run starts no Kayobe.
    let again = json(&adoption(&site, &[]));
    for host in &hosts[1..] {
        assert_eq!(action(report_of(&again, host), "kayobe-deploy")["outcome"], "skipped", "{host}: {again}");
    }
    assert_eq!(kayobe_runs(&site), runs);
}

/// Sets `workflow.remote_jobs.kayobe_timeout_secs` in the site's credentials file.
fn kayobe_timeout(site: &LabSite, secs: u64) {
    let path = site.workspace.file("site/credentials.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut kept: Vec<&str> = text.lines().filter(|line| !line.contains("kayobe_timeout_secs")).collect();
    let at = kept.iter().position(|line| *line == "  remote_jobs:").expect("a remote_jobs section") + 1;
    let setting = format!("    kayobe_timeout_secs: {secs}");
    kept.insert(at, &setting);
    std::fs::write(&path, kept.join("\n") + "\n").unwrap();
}

#[test]
fn a_kayobe_job_past_its_timeout_is_left_running_and_awaited_next_time() {
    let (site, hosts) = reinstalled_site(QUICK_POLLS, |index| index == 1);
    post_reinstall(&site, &[]);
    let before = kayobe_runs(&site);
    // Host configure takes 3 s; Kayobe runs may take 1 s.
    site.world().remote_job_minute = Duration::from_millis(100);
    kayobe_timeout(&site, 1);
    let out = adoption(&site, &["--only", &hosts[1]]);
    let report = report_of(&json(&out), &hosts[1]).clone();
    assert_eq!(report["outcome"], "failed", "{}", out.report());
    let reason = report["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("host configure") && reason.contains("still running after 1 s"), "{reason}");
    assert_eq!(site.world().jobs.running(), 1, "left running");

    kayobe_timeout(&site, 3600);
    let out = adoption(&site, &["--only", &hosts[1]]);
    let report = report_of(&json(&out), &hosts[1]).clone();
    assert_eq!(report["outcome"], "succeeded", "{}", out.report());
    assert!(action(&report, "kayobe-deploy")["change"].as_str().unwrap().contains("host configure: job"), "{report}");
    let runs = kayobe_runs(&site);
    assert_eq!(runs.host_configure - before.host_configure, 1, "awaited, not started again");
    assert_eq!(runs.service_deploy - before.service_deploy, 1);
}

#[test]
fn three_hosts_with_parallel_1_make_one_kayobe_batch() {
    // [1] standard, [2] GPU and [5] Lenovo are reinstalled; the others stop before adoption.
    let (site, hosts) = reinstalled_site(QUICK_POLLS, |index| [1, 2, 5].contains(&index));
    post_reinstall(&site, &[]);
    let before = kayobe_runs(&site);
    let out =
        site.hvmigrate(&["run", "--step", "adoption", "--yes", "--parallel", "1", "--output", "json", "-q"]).run();
    let summary = json(&out);
    for index in [1, 2, 5] {
        let report = report_of(&summary, &hosts[index]);
        assert_eq!(report["outcome"], "succeeded", "{}\n{}", hosts[index], out.report());
    }
    let runs = kayobe_runs(&site);
    assert_eq!(runs.host_configure - before.host_configure, 1, "one host configure for the three hosts");
    assert_eq!(runs.controllers_common - before.controllers_common, 1, "one common deploy");
    assert_eq!(runs.service_deploy - before.service_deploy, 1);
    let configure = kayobe_commands(&site, "overcloud host configure");
    assert_eq!(configure.len(), 1, "{configure:#?}");
    for index in [1, 2, 5] {
        assert!(configure[0].contains(hosts[index].as_str()), "{}", configure[0]);
    }
}

/// The Mellanox UEFI-PXE playbook, interrupted by kill -9 and, separately, by
/// a dropped connection while it runs: the next pre-reinstall awaits or reads
/// the job it left, and the lab counts one playbook run.
#[test]
fn the_mellanox_playbook_interrupted_runs_once() {
    for by_kill in [true, false] {
        let world = hvmigrate_lab::WorldOptions { hosts: 6, vms_per_host: Some(0), ..Default::default() };
        let site = LabSite::drained(world, QUICK_POLLS);
        let hosts = site.campaign_hosts();
        let mellanox = &hosts[3];
        site.world().remote_job_minute = Duration::from_millis(100);
        let before = kayobe_runs(&site).mellanox;
        let args = ["run", "--step", "pre-reinstall", "--yes", "--only", mellanox.as_str()];
        if by_kill {
            let mut child = site.spawn(&[&["-q"][..], &args[..]].concat());
            kill_when(&mut child, "the Mellanox playbook", || kayobe_runs(&site).mellanox > before);
        } else {
            let kayobe = site.world().kayobe_host_name();
            std::thread::scope(|scope| {
                let run = scope.spawn(|| site.hvmigrate(&[&args[..], &["-q"][..]].concat()).run());
                while kayobe_runs(&site).mellanox == before && !run.is_finished() {
                    std::thread::sleep(Duration::from_millis(5));
                }
                let drop = hvmigrate_lab::SshFaultConfig { drop_next_commands: 1, ..Default::default() };
                site.lab.ssh_faults().set(&kayobe, drop);
                run.join().expect("the run");
            });
        }
        let out = site.hvmigrate(&[&args[..], &["--output", "json", "-q"][..]].concat()).run();
        let summary = json(&out);
        let report = report_of(&summary, mellanox);
        assert_eq!(report["outcome"], "succeeded", "kill: {by_kill}\n{}", out.report());
        assert_eq!(kayobe_runs(&site).mellanox - before, 1, "kill: {by_kill}: one playbook run");
        let comments = site.comments(mellanox).join("\n");
        assert!(comments.contains("UEFI PXE enabled"), "kill: {by_kill}: the ticket says it\n{comments}");
    }
}
