//! post-reinstall through the real binary against the simulated site (real
//! SSH): each hardware model, the blockers, the disk guards, a re-run that
//! changes nothing, and kill -9 then resume.

mod post_reinstall_common;
mod support;

use std::time::{Duration, Instant};

use hvmigrate_lab::Service;
use post_reinstall_common::*;

const INSTANCES: &str = "/var/lib/nova/instances";

#[test]
fn every_model_then_a_rerun_that_changes_nothing() {
    let (site, hosts) = reinstalled_site("", |_| true);
    let out = post_reinstall(&site, &[]);
    assert_eq!(out.code, 1, "host [0] is not in NetBox\n{}", out.report());
    let summary = json(&out);
    for host in &hosts[1..] {
        let report = report_of(&summary, host);
        assert_eq!(report["outcome"], "succeeded", "{host}\n{}", out.report());
        assert_eq!(action(report, "jira-working")["outcome"], "done");
        assert_eq!(action(report, "root-access")["outcome"], "done", "the reinstall wiped root's key");
        assert_eq!(action(report, "os-check")["outcome"], "ok");
        assert_eq!(action(report, "netbox-active")["outcome"], "done");
        assert_eq!(jira_status(&site, host), "Ready For Adoption");
    }
    let gpu = action(report_of(&summary, &hosts[2]), "gpu-check");
    assert!(gpu["observed"].as_str().unwrap().contains("lspci: 3b:00.0 NVIDIA Corporation"), "{gpu}");
    assert_eq!(action(report_of(&summary, &hosts[1]), "disk-fix-xfs")["outcome"], "skipped", "not a Lenovo");
    assert_eq!(action(report_of(&summary, &hosts[5]), "disk-fix-xfs")["outcome"], "done");
    assert_eq!(action(report_of(&summary, &hosts[4]), "disk-fix-raid0")["outcome"], "done");
    {
        let world = site.world();
        for host in &hosts[1..] {
            let device = world.netbox_device(world.host(host).unwrap().netbox_device.unwrap()).unwrap().clone();
            assert_eq!(device.status, "active", "{host}");
            assert_eq!(device.role_id, 1, "{host}: the compute role");
        }
        // Lenovo: XFS on the NVMe disk, mounted, one fstab line.
        let lenovo = world.host(&hosts[5]).unwrap();
        let nvme = lenovo.disks.iter().find(|disk| disk.name == "nvme0n1").unwrap();
        assert_eq!((nvme.fstype.as_deref(), nvme.mountpoint.as_deref()), (Some("xfs"), Some(INSTANCES)));
        assert_eq!(lenovo.shell.fstab.lines().filter(|line| line.contains(INSTANCES)).count(), 1);
        // A100: one RAID partition per NVMe disk, md0 over both, XFS on it, recorded once.
        let a100 = world.host(&hosts[4]).unwrap();
        for disk in ["nvme0n1", "nvme1n1"] {
            let disk = a100.disks.iter().find(|d| d.name == disk).unwrap();
            assert_eq!(disk.children.len(), 1, "{disk:?}");
            let md0 = &disk.children[0].children;
            assert!(md0.iter().any(|md| md.name == "md0" && md.fstype.as_deref() == Some("xfs")), "{disk:?}");
        }
        assert_eq!(a100.shell.mdadm_conf.lines().filter(|line| line.starts_with("ARRAY /dev/md0")).count(), 1);
    }
    let comments: Vec<usize> = hosts.iter().map(|host| site.comments(host).len()).collect();
    assert_eq!(commands(&site, &hosts[5], "mkfs.xfs").len(), 1);
    assert_eq!(commands(&site, &hosts[4], "mkfs.xfs").len(), 1);

    // Again: nothing changes, on the hosts or in the services.
    let before = world_state(&site);
    site.lab.requests().clear();
    let again = json(&post_reinstall(&site, &[]));
    for host in &hosts[1..] {
        let report = report_of(&again, host);
        assert_eq!(report["outcome"], "succeeded", "{host}: {report}");
        for action in report["actions"].as_array().unwrap() {
            assert!(
                action["outcome"] == "skipped" || action["outcome"] == "ok" || action["outcome"] == "recorded",
                "{host}: {action}"
            );
        }
    }
    let writes: Vec<_> =
        site.lab.requests().writes().into_iter().filter(|request| request.service != Service::Keystone).collect();
    assert!(writes.is_empty(), "a re-run wrote: {writes:#?}");
    assert_eq!(world_state(&site), before);
    assert_eq!(hosts.iter().map(|host| site.comments(host).len()).collect::<Vec<_>>(), comments);
    assert_eq!(commands(&site, &hosts[5], "mkfs.xfs").len(), 1, "no second mkfs");
    assert_eq!(commands(&site, &hosts[4], "mdadm").iter().filter(|c| c.contains("--create")).count(), 1);
}

#[test]
fn blockers_say_why() {
    // [1] booted legacy BIOS, [2] was never reinstalled, and NetBox lost the compute role.
    let (site, hosts) = reinstalled_site("", |index| index != 2);
    {
        let mut world = site.world();
        world.host_mut(&hosts[1]).unwrap().efi = false;
        world.netbox.roles.retain(|role| role.name != "Openstack Prod Kolla_Compute");
    }
    let out = post_reinstall(&site, &[]);
    let summary = json(&out);
    let legacy = report_of(&summary, &hosts[1]);
    assert_eq!(legacy["outcome"], "blocked");
    assert!(legacy["reason"].as_str().unwrap().contains("not EFI enabled"), "{}", out.report());
    let old_os = report_of(&summary, &hosts[2]);
    assert_eq!(old_os["outcome"], "blocked");
    assert!(old_os["reason"].as_str().unwrap().contains("runs rocky 8.10, not rocky 9"), "{}", out.report());
    let no_role = report_of(&summary, &hosts[3]);
    assert_eq!(no_role["outcome"], "blocked");
    assert!(
        no_role["reason"].as_str().unwrap().contains("no device role named 'Openstack Prod Kolla_Compute'"),
        "{}",
        out.report()
    );
    for host in &hosts[1..4] {
        assert_eq!(jira_status(&site, host), "Post Reinstall Failed", "{host}");
    }
    // From a failed status the ticket comes back once the cause is fixed.
    site.world().host_mut(&hosts[1]).unwrap().efi = true;
    let again = json(&post_reinstall(&site, &["--only", &hosts[1]]));
    assert_eq!(report_of(&again, &hosts[1])["outcome"], "blocked", "the role is still missing");
    assert!(report_of(&again, &hosts[1])["reason"].as_str().unwrap().contains("no device role"));
}

#[test]
fn a_mounted_device_or_one_with_data_is_never_formatted() {
    let (site, hosts) = reinstalled_site("", |_| true);
    let lenovo = &hosts[5];
    {
        // Someone put ext4 on the Lenovo's NVMe disk and mounted it elsewhere.
        let mut world = site.world();
        let host = world.host_mut(lenovo).unwrap();
        let nvme = host.disks.iter_mut().find(|disk| disk.name == "nvme0n1").unwrap();
        nvme.fstype = Some("ext4".into());
        nvme.fs_uuid = Some("0f0f0f0f-1111-2222-3333-444444444444".into());
        nvme.mountpoint = Some("/data".into());
    }
    let summary = json(&post_reinstall(&site, &["--only", lenovo]));
    let report = report_of(&summary, lenovo);
    assert_eq!(report["outcome"], "blocked");
    assert!(report["reason"].as_str().unwrap().contains("workflow.allow_reformat is off"), "{report}");

    // Even where reformatting is allowed, a mounted device is refused.
    let credentials = site.workspace.file("site/credentials.yaml");
    let text = std::fs::read_to_string(&credentials).unwrap();
    let text = if text.contains("\nworkflow:\n") {
        text.replace("\nworkflow:\n", "\nworkflow:\n  allow_reformat: true\n")
    } else {
        format!("{text}workflow:\n  allow_reformat: true\n")
    };
    std::fs::write(&credentials, text).unwrap();
    let summary = json(&post_reinstall(&site, &["--only", lenovo]));
    let report = report_of(&summary, lenovo);
    assert_eq!(report["outcome"], "blocked");
    assert!(report["reason"].as_str().unwrap().contains("is mounted at /data"), "{report}");
    assert!(commands(&site, lenovo, "mkfs.xfs").is_empty(), "nothing was formatted");

    // Unmounted, and allowed: the old filesystem is replaced, once.
    site.world().host_mut(lenovo).unwrap().disks.iter_mut().find(|d| d.name == "nvme0n1").unwrap().mountpoint = None;
    let summary = json(&post_reinstall(&site, &["--only", lenovo]));
    assert_eq!(report_of(&summary, lenovo)["outcome"], "succeeded", "{summary}");
    let summary = json(&post_reinstall(&site, &["--only", lenovo]));
    assert_eq!(report_of(&summary, lenovo)["outcome"], "succeeded");
    assert_eq!(commands(&site, lenovo, "mkfs.xfs").len(), 1, "{:?}", commands(&site, lenovo, "mkfs.xfs"));
}

#[test]
fn kill_9_in_the_middle_then_resume() {
    let (site, hosts) = reinstalled_site("", |_| true);
    // Slow commands on the hypervisors, so the kill lands inside the step.
    for host in &hosts {
        site.lab.ssh_faults().set(
            host,
            hvmigrate_lab::SshFaultConfig { latency_ms: Some((40, 40)), ..hvmigrate_lab::SshFaultConfig::default() },
        );
    }
    let mut child = site.spawn(&["-q", "run", "--step", "post-reinstall", "--yes", "--parallel"]);
    // Kill it once the Lenovo's disk fix has begun.
    let started = Instant::now();
    loop {
        if !commands(&site, &hosts[5], "mkfs.xfs").is_empty() || !commands(&site, &hosts[4], "sgdisk").is_empty() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the disk fixes never started");
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the step ended before it could be killed: {status}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    for host in &hosts {
        site.lab.ssh_faults().set(host, hvmigrate_lab::SshFaultConfig::default());
    }

    let summary = json(&post_reinstall(&site, &[]));
    for host in &hosts[1..] {
        assert_eq!(report_of(&summary, host)["outcome"], "succeeded", "{host}: {summary}");
        assert_eq!(jira_status(&site, host), "Ready For Adoption");
    }
    let world = site.world();
    let lenovo = world.host(&hosts[5]).unwrap();
    assert_eq!(lenovo.shell.fstab.lines().filter(|line| line.contains(INSTANCES)).count(), 1);
    assert_eq!(lenovo.shell.history.iter().filter(|line| line.starts_with("mkfs.xfs")).count(), 1);
    let a100 = world.host(&hosts[4]).unwrap();
    assert_eq!(a100.shell.history.iter().filter(|line| line.starts_with("mkfs.xfs")).count(), 1);
    assert_eq!(a100.shell.mdadm_conf.lines().filter(|line| line.starts_with("ARRAY /dev/md0")).count(), 1);
}
