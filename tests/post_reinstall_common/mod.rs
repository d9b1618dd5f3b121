//! The post-reinstall and adoption tests' site: the lab in-process with real
//! SSH, the real binary, and hosts brought through setup, drain and
//! pre-reinstall, then reinstalled over PXE as the operator would.
#![allow(dead_code)]

use serde_json::Value;

pub use crate::support::lab_site::{action, json, report_of, LabSite};
use crate::support::Outcome;
use hvmigrate_lab::WorldOptions;

/// Six hosts: [0] missing from NetBox, [1] standard, [2] GPU, [3] Mellanox,
/// [4] A100, [5] Lenovo. Every host is emptied, goes through setup, drain and
/// pre-reinstall; `reinstall` says which of [1..] are then reinstalled.
pub fn reinstalled_site(workflow_yaml: &str, reinstall: impl Fn(usize) -> bool) -> (LabSite, Vec<String>) {
    let world = WorldOptions { hosts: 6, vms_per_host: Some(0), ..WorldOptions::default() };
    let site = LabSite::drained(world, workflow_yaml);
    let hosts = site.campaign_hosts();
    site.hvmigrate(&["run", "--step", "pre-reinstall", "--yes", "--parallel", "-q"]).expect_code(1);
    for (index, host) in hosts.iter().enumerate().skip(1) {
        if reinstall(index) {
            site.lab.world().reinstall(host).expect("pre-reinstall made it ready for PXE");
        }
    }
    (site, hosts)
}

pub fn post_reinstall(site: &LabSite, extra: &[&str]) -> Outcome {
    let mut args = vec!["run", "--step", "post-reinstall", "--yes", "--parallel", "--output", "json", "-q"];
    args.extend_from_slice(extra);
    site.hvmigrate(&args).run()
}

pub fn adoption(site: &LabSite, extra: &[&str]) -> Outcome {
    let mut args = vec!["run", "--step", "adoption", "--yes", "--parallel", "--output", "json", "-q"];
    args.extend_from_slice(extra);
    site.hvmigrate(&args).run()
}

pub fn jira_status(site: &LabSite, host: &str) -> String {
    let world = site.world();
    let key = world.host(host).and_then(|host| host.jira_key.clone()).expect("campaign host");
    world.jira_issue(&key).expect("issue").status.clone()
}

/// The commands a hypervisor ran that start with `program`.
pub fn commands(site: &LabSite, host: &str, program: &str) -> Vec<String> {
    let world = site.world();
    let history = &world.host(host).expect("host").shell.history;
    history.iter().filter(|line| line.split_whitespace().next() == Some(program)).cloned().collect()
}

/// The commands the Kayobe host ran that hold `needle`.
pub fn kayobe_commands(site: &LabSite, needle: &str) -> Vec<String> {
    let world = site.world();
    let (_, shell) = world.service_hosts.iter().find(|(host, _)| host.starts_with("kayobe")).expect("kayobe host");
    shell.history.iter().filter(|line| line.contains(needle)).cloned().collect()
}

/// The world as JSON without the bookkeeping that changes on every read
/// (tokens, ids, command histories, clocks).
pub fn world_state(site: &LabSite) -> Value {
    let mut world: Value = serde_json::to_value(&*site.world()).unwrap();
    let object = world.as_object_mut().unwrap();
    for key in ["tokens", "next_id", "clock", "keystone_tokens", "service_hosts"] {
        object.remove(key);
    }
    for host in world["hosts"].as_array_mut().unwrap() {
        host["shell"].as_object_mut().unwrap().remove("history");
        host["compute"].as_object_mut().unwrap().remove("updated_at");
    }
    world
}
