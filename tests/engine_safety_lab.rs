//! Engine safety through the real binary against the simulated site: kill -9
//! and dropped SSH connections after every side effect of pre-reinstall's
//! Aquilon sequence, then a re-run that finishes the work with nothing
//! repeated and every change on the ticket; a whole campaign re-run step by
//! step writes nothing; the campaign position and `--redo`; an audit trail
//! that fails keeps the gate shut and is the only thing the next run redoes.

mod post_reinstall_common;
mod support;

use hvmigrate_lab::{Service, SshFaultConfig, WorldOptions};
use post_reinstall_common::*;
use support::lab_site::{kill_when, LabSite};

/// `hosts` standard hosts, emptied and disabled, through setup and drain.
fn drained(hosts: usize) -> (LabSite, Vec<String>) {
    let site =
        LabSite::drained(WorldOptions { hosts, vms_per_host: Some(0), oddities: false, ..WorldOptions::default() }, "");
    let hosts = site.campaign_hosts();
    (site, hosts)
}

fn aquilon_history(site: &LabSite) -> Vec<String> {
    let world = site.world();
    let name = world.aquilon_host_name();
    world.service_hosts.iter().find(|(host, _)| **host == name).map(|(_, shell)| shell.history.clone()).unwrap()
}

/// The commands of the Aquilon sequence that change something, for one host.
fn aquilon_writes(site: &LabSite, host: &str) -> Vec<String> {
    let machine = site.world().host(host).unwrap().aquilon.machine.clone();
    aquilon_history(site)
        .into_iter()
        .filter(|line| !line.starts_with("aq show") && (line.contains(host) || line.contains(&machine)))
        .collect()
}

/// A host's own names in an Aquilon command (its name, machine, addresses)
/// and the placeholders that stand for them in another host's sequence.
fn names_of(site: &LabSite, host: &str) -> Vec<(String, String)> {
    let world = site.world();
    let aquilon = &world.host(host).unwrap().aquilon;
    let mut names = vec![(host.to_owned(), "{host}".to_owned()), (aquilon.machine.clone(), "{machine}".to_owned())];
    for interface in &aquilon.interfaces {
        if let Some(ip) = &interface.ip {
            names.push((ip.clone(), format!("{{ip of {}}}", interface.name)));
        }
    }
    names
}

/// The sequence of Aquilon writes of an uninterrupted run on `host`, with placeholders.
fn sequence_of(site: &LabSite, host: &str) -> Vec<String> {
    let names = names_of(site, host);
    let writes = aquilon_writes(site, host);
    writes.into_iter().map(|line| names.iter().fold(line, |line, (name, holder)| line.replace(name, holder))).collect()
}

/// One command of a sequence, for another host: as much of it as names it
/// (an interface's address is its own to each host, and one interface has one).
fn command_for(site: &LabSite, template: &str, host: &str) -> String {
    let line = names_of(site, host).iter().fold(template.to_owned(), |line, (name, holder)| line.replace(holder, name));
    line.split(" --ip ").next().unwrap().to_owned()
}

fn has_run(site: &LabSite, command: &str) -> bool {
    aquilon_history(site).iter().any(|line| line.starts_with(command))
}

fn pre_reinstall(site: &LabSite, host: &str) -> support::Outcome {
    site.hvmigrate(&["run", "--step", "pre-reinstall", "--yes", "--only", host, "--output", "json", "-q"]).run()
}

/// After the interrupted run and the re-run: one re-import, every delete and
/// the import once, the host ready, and every change on the ticket.
fn assert_finished_once(site: &LabSite, host: &str, point: &str) {
    let out = pre_reinstall(site, host);
    let summary = json(&out);
    assert_eq!(report_of(&summary, host)["outcome"], "succeeded", "{point}\n{}", out.report());
    let world = site.world();
    let aquilon = &world.host(host).unwrap().aquilon;
    assert_eq!((aquilon.reimports, aquilon.pxe_install), (1, true), "{point}");
    let silences = world.silences.iter().filter(|s| s.matchers.iter().any(|m| m.matches_value(host))).count();
    assert_eq!(silences, 2, "{point}: hostname and instance, once");
    drop(world);
    let writes = aquilon_writes(site, host);
    for line in writes.iter().filter(|line| !line.contains("pxeswitch") && !line.contains("update_interface")) {
        assert_eq!(writes.iter().filter(|other| *other == line).count(), 1, "{point}: {line} ran once\n{writes:#?}");
    }
    assert_eq!(jira_status(site, host), "Ready For Reinstall", "{point}");
    let comments = site.comments(host).join("\n");
    for change in ["imported from NetBox", "silenced until", "→ planned"] {
        assert!(comments.contains(change), "{point}: the ticket says '{change}'\n{comments}");
    }
}

#[test]
fn kill_9_after_every_aquilon_side_effect_then_resume() {
    let (site, hosts) = drained(14);
    // An uninterrupted run gives the sequence.
    let out = pre_reinstall(&site, &hosts[0]);
    assert_eq!(report_of(&json(&out), &hosts[0])["outcome"], "succeeded", "{}", out.report());
    let sequence = sequence_of(&site, &hosts[0]);
    assert!(sequence.len() >= 6, "{sequence:#?}");
    assert!(sequence.len() < hosts.len(), "a host per kill point: {sequence:#?}");
    let aquilon = site.world().aquilon_host_name();
    // Each Aquilon command waits, so the kill lands after one command's effect and before the next.
    site.lab.ssh_faults().set(&aquilon, SshFaultConfig { latency_ms: Some((150, 150)), ..SshFaultConfig::default() });
    for (index, command) in sequence.iter().enumerate() {
        let host = &hosts[index + 1];
        let wanted = command_for(&site, command, host);
        let mut child = site.spawn(&["-q", "run", "--step", "pre-reinstall", "--yes", "--only", host]);
        kill_when(&mut child, &wanted, || has_run(&site, &wanted));
        assert_finished_once(&site, host, &format!("killed after {wanted}"));
    }
}

#[test]
fn a_dropped_connection_after_every_aquilon_side_effect_then_resume() {
    let (site, hosts) = drained(14);
    let out = pre_reinstall(&site, &hosts[0]);
    assert_eq!(report_of(&json(&out), &hosts[0])["outcome"], "succeeded", "{}", out.report());
    let sequence = sequence_of(&site, &hosts[0]);
    assert!(sequence.len() < hosts.len(), "a host per drop point: {sequence:#?}");
    let aquilon = site.world().aquilon_host_name();
    for (index, command) in sequence.iter().enumerate() {
        let host = &hosts[index + 1];
        let wanted = command_for(&site, command, host);
        let drop = SshFaultConfig { drop_command_containing: Some(wanted.clone()), ..SshFaultConfig::default() };
        site.lab.ssh_faults().set(&aquilon, drop);
        let out = pre_reinstall(&site, host);
        assert_eq!(out.code, 1, "the drop after {wanted} fails the step\n{}", out.report());
        let report = report_of(&json(&out), host).clone();
        assert_eq!(report["outcome"], "failed", "{wanted}: {report}");
        assert!(has_run(&site, &wanted), "{wanted} ran before the drop");
        site.lab.ssh_faults().clear();
        assert_finished_once(&site, host, &format!("connection dropped after {wanted}"));
    }
}

#[test]
fn a_whole_campaign_then_every_step_again_writes_nothing() {
    let (site, hosts) = reinstalled_site("", |_| true);
    post_reinstall(&site, &[]);
    let out = adoption(&site, &[]);
    assert_eq!(out.code, 1, "the host missing from NetBox stays behind\n{}", out.report());
    let finished: Vec<&String> = hosts[1..].iter().collect();
    for host in &finished {
        assert_eq!(jira_status(&site, host), "Ready For Test", "{host}");
    }
    let status = |site: &LabSite| {
        let out = site.hvmigrate(&["--output", "json", "status"]).expect_code(0);
        let mut rows: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        for row in rows.as_array_mut().unwrap() {
            // The latest attempt of the step at the position is a new run; the rest must not move.
            for field in ["run_id", "started_at", "ended_at"] {
                row.as_object_mut().unwrap().remove(field);
            }
        }
        rows
    };
    let before_status = status(&site);
    let before_world = world_state(&site);
    let comments: Vec<usize> = hosts.iter().map(|host| site.comments(host).len()).collect();
    site.lab.requests().clear();
    let only: Vec<&str> = finished.iter().flat_map(|host| ["--only", host.as_str()]).collect();
    for step in ["setup", "pre-drain", "drain", "pre-reinstall", "post-reinstall", "adoption"] {
        let mut args = vec!["run", "--step", step, "--yes", "--parallel", "--output", "json", "-q"];
        args.extend_from_slice(&only);
        let out = site.hvmigrate(&args).run();
        assert_eq!(out.code, 0, "{step}\n{}", out.report());
        let summary = json(&out);
        for host in &finished {
            let report = report_of(&summary, host);
            if step == "adoption" {
                assert_eq!(report["outcome"], "succeeded", "{step} {host}: {report}");
            } else {
                assert_eq!(report["outcome"], "already_past", "{step} {host}: {report}");
                assert!(report["reason"].as_str().unwrap().starts_with("already past: adoption succeeded on"));
            }
        }
    }
    let writes: Vec<_> = site.lab.requests().writes().into_iter().filter(|r| r.path != "/v3/auth/tokens").collect();
    assert!(writes.is_empty(), "re-runs write nothing: {writes:#?}");
    assert_eq!(world_state(&site), before_world, "the world did not change");
    assert_eq!(hosts.iter().map(|host| site.comments(host).len()).collect::<Vec<_>>(), comments);
    assert_eq!(status(&site), before_status, "status unchanged");
}

#[test]
fn redo_takes_one_host_back_and_repeats_only_what_it_names() {
    let (site, hosts) = drained(2);
    let host = &hosts[0];
    let out = pre_reinstall(&site, host);
    assert_eq!(report_of(&json(&out), host)["outcome"], "succeeded", "{}", out.report());
    let drain = |extra: &[&str]| {
        let mut args = vec!["run", "--step", "drain", "--yes", "--only", host, "--output", "json", "-q"];
        args.extend_from_slice(extra);
        site.hvmigrate(&args).run()
    };

    // Earlier than the position: refused, not a failure, nothing recorded or posted.
    let comments = site.comments(host).len();
    let out = drain(&[]);
    assert_eq!(out.code, 0, "already past is not a failure\n{}", out.report());
    let report = report_of(&json(&out), host).clone();
    assert_eq!(report["outcome"], "already_past", "{report}");
    assert!(report["reason"].as_str().unwrap().starts_with("already past: pre-reinstall succeeded on"), "{report}");
    // --force passes a gate only: it does not go back.
    assert_eq!(report_of(&json(&drain(&["--force"])), host)["outcome"], "already_past");
    assert_eq!(site.comments(host).len(), comments);
    site.hvmigrate(&["run", "--step", "drain", "--yes", "--redo"]).expect_code(2).stderr_has("--only");
    site.hvmigrate(&["run", "--step", "pre-reinstall", "--yes", "--redo", "reimport", "--only", host])
        .expect_code(2)
        .stderr_has("no such action");

    // --redo goes back, says so on the ticket, and moves the position.
    let out = drain(&["--redo"]);
    let report = report_of(&json(&out), host).clone();
    assert_eq!(report["outcome"], "succeeded", "{}", out.report());
    let comment = site.comments(host).pop().unwrap();
    assert!(comment.contains("redo: the host may already have gone past drain"), "{comment}");
    let status = site.hvmigrate(&["--output", "json", "status"]).expect_code(0);
    let rows: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let row = rows.as_array().unwrap().iter().find(|row| row["host"] == host.as_str()).unwrap();
    assert_eq!(row["position"], "drain", "the host went back: {row}");

    // pre-reinstall again: the re-import is not repeated unless named.
    let out = pre_reinstall(&site, host);
    let summary = json(&out);
    assert_eq!(report_of(&summary, host)["outcome"], "succeeded", "{}", out.report());
    assert_eq!(action(report_of(&summary, host), "aquilon-reimport")["outcome"], "skipped");
    assert_eq!(site.world().host(host).unwrap().aquilon.reimports, 1);
    let out = site
        .hvmigrate(&[
            "run",
            "--step",
            "pre-reinstall",
            "--yes",
            "--redo",
            "aquilon-reimport",
            "--only",
            host,
            "--output",
            "json",
            "-q",
        ])
        .run();
    let summary = json(&out);
    let report = report_of(&summary, host);
    assert_eq!(report["outcome"], "succeeded", "{}", out.report());
    assert_eq!(report["redo"], "aquilon-reimport");
    assert_eq!(action(report, "aquilon-reimport")["outcome"], "done");
    assert_eq!(site.world().host(host).unwrap().aquilon.reimports, 2, "repeated because it was named");
    let comment = site.comments(host).pop().unwrap();
    assert!(comment.contains("redo, repeating aquilon-reimport"), "{comment}");
}

#[test]
fn a_failed_audit_trail_keeps_the_gate_shut_and_is_all_the_next_run_redoes() {
    let (site, hosts) = drained(2);
    let host = &hosts[0];
    // Every comment POST fails: the actions end, their trail does not.
    site.lab.faults().set(
        Service::Jira,
        hvmigrate_lab::FaultConfig {
            error_rate: 1.0,
            error_status: Some(503),
            path_contains: Some("/comment".into()),
            method: Some("POST".into()),
            ..Default::default()
        },
    );
    let out = pre_reinstall(&site, host);
    assert_eq!(out.code, 1, "{}", out.report());
    let report = report_of(&json(&out), host).clone();
    assert_eq!(report["outcome"], "failed", "{report}");
    assert!(report["reason"].as_str().unwrap().starts_with("audit trail:"), "{report}");
    // The next step's gate stays shut.
    site.hvmigrate(&["run", "--step", "post-reinstall", "--yes", "--only", host, "-q"]).expect_code(1);
    let reimports = site.world().host(host).unwrap().aquilon.reimports;
    assert_eq!(reimports, 1);

    site.lab.faults().set(Service::Jira, hvmigrate_lab::FaultConfig::default());
    let history_before = aquilon_history(&site).len();
    site.lab.requests().clear();
    let out = pre_reinstall(&site, host);
    let summary = json(&out);
    let report = report_of(&summary, host);
    assert_eq!(report["outcome"], "succeeded", "{}", out.report());
    assert!(report["actions"].as_array().unwrap().is_empty(), "only the trail: {report}");
    assert_eq!(aquilon_history(&site).len(), history_before, "nothing ran on Aquilon");
    let writes: Vec<String> = site
        .lab
        .requests()
        .writes()
        .into_iter()
        .filter(|r| r.path != "/v3/auth/tokens")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(writes.iter().all(|w| w.contains("/comment") || w.contains("/transitions")), "{writes:#?}");
    let comment = site.comments(host).pop().unwrap();
    assert!(comment.contains("imported from NetBox"), "the kept comment: {comment}");
    assert_eq!(jira_status(&site, host), "Ready For Reinstall");
    assert_eq!(site.world().host(host).unwrap().aquilon.reimports, 1);
}

#[test]
fn a_refused_credential_stops_the_step_before_any_host_starts() {
    let (site, hosts) = drained(2);
    let creds = site.workspace.file("site/credentials.yaml");
    let text = std::fs::read_to_string(&creds).unwrap();
    let bad: String = text
        .lines()
        .map(|line| {
            if line.starts_with("  token: ") {
                "  token: 0123456789abcdef0123456789abcdef01234567".to_owned()
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&creds, bad + "\n").unwrap();
    let before = world_state(&site);
    let comments: Vec<usize> = hosts.iter().map(|host| site.comments(host).len()).collect();
    site.lab.requests().clear();
    let out = site.hvmigrate(&["run", "--step", "pre-reinstall", "--yes", "--parallel"]).expect_code(2);
    out.stderr_has("netbox").stderr_has("nothing was changed");
    let writes: Vec<_> = site.lab.requests().writes().into_iter().filter(|r| r.path != "/v3/auth/tokens").collect();
    assert!(writes.is_empty(), "{writes:#?}");
    assert_eq!(world_state(&site), before);
    assert_eq!(hosts.iter().map(|host| site.comments(host).len()).collect::<Vec<_>>(), comments);
}

/// The commands of a disk fix that change the host, in the order an
/// uninterrupted run gives them.
fn disk_writes(history: &[String]) -> Vec<String> {
    const CHANGES: [&str; 6] = ["mkfs.xfs", "sgdisk", "mdadm --create", "mkdir", "mount ", "systemctl daemon-reload"];
    history
        .iter()
        .filter(|line| {
            CHANGES.iter().any(|change| line.starts_with(change))
                || ((line.contains("/etc/fstab") || line.contains("/etc/mdadm.conf")) && line.contains(">>"))
        })
        .cloned()
        .collect()
}

/// A host's command history, with the UUIDs a new array gets each time made alike.
fn host_history(site: &LabSite, host: &str) -> Vec<String> {
    site.world().host(host).unwrap().shell.history.iter().map(|line| without_uuids(line)).collect()
}

fn without_uuids(text: &str) -> String {
    let mut parts = text.split("UUID=");
    let mut out = parts.next().unwrap_or_default().to_owned();
    for part in parts {
        let end = part.find(|c: char| !(c.is_ascii_hexdigit() || c == ':' || c == '-')).unwrap_or(part.len());
        out.push_str("UUID=*");
        out.push_str(&part[end..]);
    }
    out
}

/// Reinstalls the host again, its extra disks blank, as pre-reinstall left it.
fn reinstall_again(site: &LabSite, host: &str) {
    let mut world = site.lab.world().lock();
    world.host_mut(host).unwrap().aquilon.pxe_install = true;
    drop(world);
    site.lab.world().reinstall(host).expect("reinstalled");
}

fn post_reinstall_only(site: &LabSite, host: &str) -> support::Outcome {
    site.hvmigrate(&["run", "--step", "post-reinstall", "--yes", "--only", host, "--output", "json", "-q"]).run()
}

/// Each disk fix interrupted after each of its commands, by kill -9 and by a
/// dropped connection: the re-run ends as an uninterrupted run does, every
/// command once.
#[test]
fn disk_fixes_interrupted_after_every_command_then_resumed() {
    let (site, hosts) = reinstalled_site("", |_| true);
    for host in [&hosts[4], &hosts[5]] {
        let start = host_history(&site, host).len();
        let out = post_reinstall_only(&site, host);
        assert_eq!(report_of(&json(&out), host)["outcome"], "succeeded", "{}", out.report());
        let sequence = disk_writes(&host_history(&site, host)[start..]);
        let files = |site: &LabSite| {
            let shell = site.world().host(host).unwrap().shell.clone();
            (without_uuids(&format!("{:?}", shell.fstab)), without_uuids(&format!("{:?}", shell.mdadm_conf)))
        };
        let expected = files(&site);
        assert!(sequence.len() >= 4, "{host}: {sequence:#?}");
        for (index, command) in sequence.iter().enumerate() {
            for by_kill in [true, false] {
                let point =
                    format!("{host}: {} after '{command}' (#{index})", if by_kill { "kill -9" } else { "drop" });
                reinstall_again(&site, host);
                let start = host_history(&site, host).len();
                if by_kill {
                    site.lab
                        .ssh_faults()
                        .set(host, SshFaultConfig { latency_ms: Some((150, 150)), ..Default::default() });
                    let mut child = site.spawn(&["-q", "run", "--step", "post-reinstall", "--yes", "--only", host]);
                    kill_when(&mut child, &point, || host_history(&site, host)[start..].contains(command));
                } else {
                    // The part before a new array's UUID names the command.
                    let named = command.split("UUID=*").next().unwrap().to_owned();
                    let drop = SshFaultConfig { drop_command_containing: Some(named), ..Default::default() };
                    site.lab.ssh_faults().set(host, drop);
                    let out = post_reinstall_only(&site, host);
                    assert_eq!(report_of(&json(&out), host)["outcome"], "failed", "{point}\n{}", out.report());
                }
                site.lab.ssh_faults().clear();
                let out = post_reinstall_only(&site, host);
                assert_eq!(report_of(&json(&out), host)["outcome"], "succeeded", "{point}\n{}", out.report());
                let writes = disk_writes(&host_history(&site, host)[start..]);
                for line in &sequence {
                    let times = writes.iter().filter(|other| *other == line).count();
                    // Reloading systemd's view of fstab is harmless to repeat.
                    if !line.starts_with("systemctl") {
                        assert_eq!(times, 1, "{point}: '{line}' ran once\n{writes:#?}");
                    }
                }
                assert_eq!(
                    files(&site),
                    expected,
                    "{point}: /etc/fstab and /etc/mdadm.conf as an uninterrupted run leaves them"
                );
                let comments = site.comments(host).join("\n");
                assert!(comments.contains("disk-fix"), "{point}: {comments}");
            }
        }
    }
}
