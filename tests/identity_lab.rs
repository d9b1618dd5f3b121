//! Host identity through the real binary against the simulated site: the
//! canonical facts, NetBox's agreement with the host, the machine answering
//! after a reinstall, its new SSH host keys and Nova's node identity.

mod support;

use hvmigrate_lab::WorldOptions;
use support::lab_site::{action, json, report_of, LabSite};

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
