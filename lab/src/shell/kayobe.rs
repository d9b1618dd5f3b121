//! The Kayobe host: `kayobe ...` and `ansible-playbook ...` print Ansible's
//! output (per-host task lines, `fatal:` paragraphs, `PLAY RECAP`) and exit 2
//! when a host failed. A host fails when its `kayobe.fail_with` is set, or
//! when it does not run the target OS yet. `service deploy` brings the host's
//! nova-compute up.
//!
//! Each run takes simulated minutes (the world's `remote_job_minute` each)
//! and counts in `kayobe_runs` when it starts. In the foreground the answer
//! comes after that time; in a background job its log, its exit and its
//! effects on the site land then.

use super::jobs::Change;
use super::{Io, Shell};
use crate::world::WorldState;

pub fn run(shell: &mut Shell<'_>, name: &str, args: &[String], io: &mut Io) -> Option<i32> {
    let status = match name {
        "kayobe" => kayobe(shell, args, io),
        "ansible-playbook" => ansible_playbook(shell, args, io),
        _ => return None,
    };
    Some(status)
}

/// Hosts named by a limit such as `h1:h2`, `h1,h2,` or a group (`controllers`).
fn hosts_of(world: &WorldState, limit: &str) -> (Vec<String>, Vec<String>) {
    let mut found = Vec::new();
    let mut unknown = Vec::new();
    for pattern in limit.split([':', ',']).map(str::trim).filter(|p| !p.is_empty()) {
        if pattern == "controllers" {
            for n in 1..=3 {
                found.push(format!("ctl{n:02}.{}.example.org", world.site));
            }
            continue;
        }
        let host = world.hosts.iter().find(|h| h.fqdn == pattern || h.fqdn.split('.').next() == Some(pattern));
        match host {
            Some(host) if host.netbox_device.is_some() => found.push(pattern.to_owned()),
            _ => unknown.push(pattern.to_owned()),
        }
    }
    (found, unknown)
}

fn option(args: &[String], names: &[&str]) -> Option<String> {
    let mut index = 0;
    while index < args.len() {
        let arg = &args[index];
        for name in names {
            if arg == name {
                return args.get(index + 1).cloned();
            }
            if let Some(value) = arg.strip_prefix(&format!("{name}=")) {
                return Some(value.to_owned());
            }
        }
        index += 1;
    }
    None
}

fn kayobe(shell: &mut Shell<'_>, args: &[String], io: &mut Io) -> i32 {
    if !shell.env.contains_key("KAYOBE_CONFIG_PATH") {
        io.err("ERROR! Kayobe configuration not found: KAYOBE_CONFIG_PATH is not set (source the environment's env-vars.sh first)\n");
        return 1;
    }
    let words: Vec<&str> = args.iter().map(String::as_str).take_while(|a| !a.starts_with('-')).collect();
    let play = match words.as_slice() {
        ["overcloud", "host", "configure"] => Play::HostConfigure,
        ["overcloud", "service", "deploy"] => Play::ServiceDeploy,
        ["playbook", "run", playbook, ..] => Play::Playbook((*playbook).to_owned()),
        _ => {
            io.err(&format!("kayobe: '{}' is not a kayobe command. See 'kayobe --help'.\n", words.join(" ")));
            return 2;
        }
    };
    let limit = option(args, &["--limit", "-l", "--kolla-limit", "-kl"]);
    let tags = option(args, &["--kolla-tags", "-kt", "--tags", "-t"]);
    run_play(shell, &play, limit.as_deref(), tags.as_deref(), io)
}

fn ansible_playbook(shell: &mut Shell<'_>, args: &[String], io: &mut Io) -> i32 {
    let Some(playbook) = args.iter().find(|a| a.ends_with(".yml") || a.ends_with(".yaml")).cloned() else {
        io.err("usage: ansible-playbook [-h] [--version] [-v] ... playbook [playbook ...]\nansible-playbook: error: the following arguments are required: playbook\n");
        return 2;
    };
    let limit = option(args, &["-i", "--inventory", "--limit", "-l"]);
    run_play(shell, &Play::Playbook(playbook), limit.as_deref(), None, io)
}

enum Play {
    HostConfigure,
    ServiceDeploy,
    Playbook(String),
}

fn banner(text: &str) -> String {
    let stars = 80usize.saturating_sub(text.len() + 1).max(3);
    format!("{text} {}\n", "*".repeat(stars))
}

/// Simulated minutes of a run, and counts it.
fn start_run(shell: &mut Shell<'_>, play: &Play, tags: Option<&str>) -> u32 {
    let runs = &mut shell.world.kayobe_runs;
    let (count, minutes) = match play {
        Play::HostConfigure => (&mut runs.host_configure, 30),
        Play::ServiceDeploy if tags == Some("common") => (&mut runs.controllers_common, 10),
        Play::ServiceDeploy => (&mut runs.service_deploy, 20),
        Play::Playbook(name) if name.contains("build-inventory") => (&mut runs.inventory, 2),
        Play::Playbook(name) if name.contains("mellanox") => (&mut runs.mellanox, 15),
        Play::Playbook(_) => (&mut runs.other_playbooks, 5),
    };
    *count += 1;
    minutes
}

fn run_play(shell: &mut Shell<'_>, play: &Play, limit: Option<&str>, tags: Option<&str>, io: &mut Io) -> i32 {
    let minutes = start_run(shell, play, tags);
    let (status, changes) = play_output(shell.world, play, limit, tags, io);
    // The run takes its time; what it changed is there at its end.
    let clock = shell.job.map_or_else(std::time::Instant::now, |job| job.started);
    let starts = clock + shell.delay;
    shell.take_minutes(minutes);
    shell.world.kayobe_runs.spans.push((starts, clock + shell.delay));
    for change in changes {
        shell.change_site(change);
    }
    status
}

fn play_output(
    world: &mut WorldState,
    play: &Play,
    limit: Option<&str>,
    tags: Option<&str>,
    io: &mut Io,
) -> (i32, Vec<Change>) {
    let (title, tasks): (&str, &[&str]) = match play {
        Play::HostConfigure => (
            "Ensure the overcloud hosts are configured",
            &[
                "Gathering Facts",
                "selinux : Ensure SELinux is configured",
                "network : Ensure interfaces are configured",
                "docker : Ensure Docker is installed",
            ],
        ),
        Play::ServiceDeploy if tags == Some("common") => {
            ("Apply role common", &["Gathering Facts", "common : Ensure fluentd and kolla-toolbox are running"])
        }
        Play::ServiceDeploy => (
            "Apply role nova-cell",
            &[
                "Gathering Facts",
                "nova-cell : Copying over nova.conf",
                "nova-cell : Check nova-compute containers",
                "nova-cell : Waiting for nova-compute services to register themselves",
            ],
        ),
        Play::Playbook(name) if name.contains("build-inventory") => (
            "Build the Kayobe inventory from NetBox",
            &["Gathering Facts", "Query NetBox for devices", "Write the overcloud inventory"],
        ),
        Play::Playbook(name) if name.contains("mellanox") => (
            "Enable UEFI PXE on Mellanox cards",
            &["Gathering Facts", "Query the firmware configuration", "Enable UEFI PXE boot on ConnectX cards"],
        ),
        Play::Playbook(_) => ("Run playbook", &["Gathering Facts", "Run the tasks"]),
    };
    // The inventory playbook runs on the Kayobe host itself.
    let (hosts, unknown) = match (play, limit) {
        (Play::Playbook(name), _) if name.contains("build-inventory") => (vec!["localhost".to_owned()], Vec::new()),
        (_, Some(limit)) => hosts_of(world, limit),
        (_, None) => {
            (world.campaign_hosts().filter(|h| h.netbox_device.is_some()).map(|h| h.fqdn.clone()).collect(), Vec::new())
        }
    };
    for pattern in &unknown {
        io.err(&format!("[WARNING]: Could not match supplied host pattern, ignoring: {pattern}\n"));
    }
    if hosts.is_empty() {
        io.err("ERROR! Specified inventory, host pattern and/or --limit leaves us with no hosts to target.\n");
        return (1, Vec::new());
    }
    // Why each host fails, if it does.
    let failures: Vec<Option<String>> = hosts
        .iter()
        .map(|name| {
            let host = world.hosts.iter().find(|h| h.fqdn == *name || h.fqdn.split('.').next() == Some(name))?;
            if let Some(message) = &host.kayobe.fail_with {
                return Some(message.clone());
            }
            let needs_target_os = matches!(play, Play::HostConfigure | Play::ServiceDeploy);
            (needs_target_os && host.os.version_id.starts_with('8')).then(|| {
                format!(
                    "The host runs Rocky Linux {}; this environment deploys Rocky Linux 9 hosts",
                    host.os.version_id
                )
            })
        })
        .collect();
    let mut out = String::new();
    out.push_str(&format!("\n{}", banner(&format!("PLAY [{title}]"))));
    let mut failed_at: Vec<Option<usize>> = vec![None; hosts.len()];
    for (task_index, task) in tasks.iter().enumerate() {
        out.push_str(&format!("\n{}", banner(&format!("TASK [{task}]"))));
        for (host_index, host) in hosts.iter().enumerate() {
            if failed_at[host_index].is_some() {
                continue;
            }
            let last = task_index + 1 == tasks.len();
            match &failures[host_index] {
                Some(message) if last => {
                    failed_at[host_index] = Some(task_index);
                    let detail = serde_json::json!({"changed": false, "msg": message});
                    out.push_str(&format!("fatal: [{host}]: FAILED! => {detail}\n"));
                }
                _ if task_index == 0 => out.push_str(&format!("ok: [{host}]\n")),
                _ => out.push_str(&format!("changed: [{host}]\n")),
            }
        }
    }
    // Hosts that failed are left out of the next plays; the recap counts tasks.
    out.push_str(&format!("\n{}", banner("PLAY RECAP")));
    let width = hosts.iter().map(String::len).max().unwrap_or(0).max(26);
    for (host_index, host) in hosts.iter().enumerate() {
        let failed = failed_at[host_index].is_some();
        let ran = tasks.len() - usize::from(failed);
        out.push_str(&format!(
            "{host:<width$} : ok={:<4} changed={:<4} unreachable=0    failed={:<4} skipped=3    rescued=0    ignored=0   \n",
            ran,
            ran.saturating_sub(1),
            usize::from(failed)
        ));
    }
    out.push('\n');
    io.out(&out);
    let mut changes = Vec::new();
    for (host_index, name) in hosts.iter().enumerate() {
        if failed_at[host_index].is_some() {
            continue;
        }
        if let Some(host) = world.hosts.iter().find(|h| h.fqdn == *name || h.fqdn.split('.').next() == Some(name)) {
            match play {
                Play::HostConfigure => changes.push(Change::HostConfigured(host.fqdn.clone())),
                Play::ServiceDeploy => changes.push(Change::ServiceDeployed(host.fqdn.clone())),
                Play::Playbook(_) => {}
            }
        }
    }
    (if failed_at.iter().any(Option::is_some) { 2 } else { 0 }, changes)
}
