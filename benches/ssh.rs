//! SSH benchmark (issue #4): the real `SshPool` (system OpenSSH client,
//! ControlMaster) on loopback against the simulated hosts of an in-process lab,
//! and against a real sshd when one is installed.
//!
//! Printed: connection set-up time (close, then the first `true`), the
//! per-command overhead on a reused connection (median and p90 over 200 `true`),
//! and a ramp of hosts driven at once (one master each, one `true` each, all in
//! parallel) with the memory of this process (the lab included) plus its ssh
//! masters at each step, until that passes 1 GiB (the masters counted by their
//! PSS, which shares their common pages out; their RSS sum is shown too) or the
//! lab runs out of hosts.
//!
//! `cargo bench --bench ssh`; COMMANDS (200), SETUPS (20), STEPS
//! (`50,100,200,400,800,1600`) and LIMIT_MIB (1024) override.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use hvmigrate::ssh::{RemoteCommand, RemoteShell, SshOptions, SshPool, Target};
use hvmigrate_lab::{Lab, LabOptions, SshSettings, WorldOptions};
use support::{mib, quantile_ms};

fn main() {
    // The pool's control sockets go under TMPDIR: a folder of our own tells our ssh masters apart.
    let marker = tempfile::Builder::new().prefix("hvs-").tempdir_in("/tmp").expect("temporary folder");
    std::env::set_var("TMPDIR", marker.path());
    let open_files = support::raise_open_files();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(bench(&marker.path().display().to_string(), open_files));
}

async fn bench(marker: &str, open_files: u64) {
    let commands: usize = support::setting("COMMANDS", "200").parse().expect("COMMANDS is a number");
    let setups: usize = support::setting("SETUPS", "20").parse().expect("SETUPS is a number");
    let steps: Vec<usize> = support::setting("STEPS", "50,100,200,400,800,1600")
        .split(',')
        .filter_map(|step| step.trim().parse().ok())
        .collect();
    let limit = support::setting("LIMIT_MIB", "1024").parse::<u64>().expect("LIMIT_MIB is a number") * 1024 * 1024;
    let most = steps.iter().copied().max().unwrap_or(50);

    let started = Instant::now();
    let world = WorldOptions { hosts: most, oddities: false, ..WorldOptions::default() };
    let ssh = SshSettings { root_key_missing_every: 0, ..SshSettings::default() };
    let lab = Lab::start(LabOptions { world, ssh, ..LabOptions::default() }).await.expect("the lab starts");
    let files_dir = tempfile::tempdir().expect("temporary folder");
    let files = lab.ssh().expect("SSH hosts").write_files(files_dir.path()).expect("ssh files");
    let hosts: Vec<String> = lab.world().lock().hosts.iter().map(|host| host.fqdn.clone()).collect();
    let baseline = self_rss();
    println!("SSH benchmark: system OpenSSH client with ControlMaster (SshPool), loopback");
    println!(
        "  lab in this process: {} simulated hosts over SSH, started in {:.2} s; process RSS {:.0} MiB; open files limit {open_files}",
        hosts.len(),
        started.elapsed().as_secs_f64(),
        mib(baseline)
    );
    let options = SshOptions {
        key_path: Some(files.private_key.clone()),
        known_hosts: files.known_hosts.clone(),
        config_file: Some(files.config.clone()),
        connect_timeout: Duration::from_secs(30),
        command_timeout: Duration::from_secs(120),
        keep_alive_interval: Duration::from_secs(15),
        pinned_known_hosts: None,
        accept_new_host_keys: false,
    };

    let mut rows = Vec::new();
    let target = Target::root(hosts[0].clone());
    rows.push(("simulated host (russh)", latencies(options.clone(), &target, setups, commands).await));
    let sshd = support::sshd::Sshd::try_start().ok();
    match &sshd {
        Some(sshd) => rows.push(("OpenSSH sshd", latencies(sshd.options(), &sshd.target(), setups, commands).await)),
        None => println!("  no real sshd ({} missing or not starting): only the simulated hosts", support::sshd::SSHD),
    }
    drop(sshd);

    println!("\n| server | set-up (close + first `true`) median / p90 | per command on a reused master: median / p90 / min |");
    println!("|---|---:|---:|");
    for (server, figures) in &rows {
        match figures {
            Ok(f) => println!(
                "| {server} | {:.1} / {:.1} ms | {:.2} / {:.2} / {:.2} ms |",
                f.setup_median, f.setup_p90, f.command_median, f.command_p90, f.command_min
            ),
            Err(err) => println!("| {server} | failed: {err} | |"),
        }
    }
    println!("target: per-command median < 5 ms");

    println!("\n| hosts at once | all connected + ran in | failures | ssh masters | process RSS | masters Σ RSS | masters Σ PSS | process + masters (RSS) |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut last_ok = None;
    let mut rss_passed = false;
    for &step in &steps {
        if step > hosts.len() {
            println!("| {step} | the lab has {} hosts ||||||", hosts.len());
            break;
        }
        let figures = ramp_step(options.clone(), &hosts[..step], marker).await;
        println!(
            "| {step} | {:.2} s | {} | {} | {:.0} MiB | {:.0} MiB | {:.0} MiB | {:.0} MiB |",
            figures.elapsed.as_secs_f64(),
            figures.failures,
            figures.masters,
            mib(figures.process_rss),
            mib(figures.masters_rss),
            mib(figures.masters_pss),
            mib(figures.process_rss + figures.masters_rss)
        );
        // RSS counts the masters' shared pages once per master; PSS shares them out.
        if figures.process_rss + figures.masters_rss > limit && !rss_passed {
            rss_passed = true;
            println!("(process + masters RSS passed {} MiB at {step} hosts)", limit / 1024 / 1024);
        }
        if figures.process_rss + figures.masters_pss > limit {
            println!("memory (process RSS + masters PSS) passed {} MiB at {step} hosts", limit / 1024 / 1024);
            break;
        }
        if figures.failures == 0 {
            last_ok = Some(step);
        }
    }
    if let Some(step) = last_ok {
        println!("largest step with every host driven and process RSS + masters PSS under the limit: {step}");
    }
    lab.shutdown().await;
}

struct Latencies {
    setup_median: f64,
    setup_p90: f64,
    command_median: f64,
    command_p90: f64,
    command_min: f64,
}

/// Set-up: `setups` times close the master, then time the first `true`. Then
/// `commands` × `true` on the open master, one after another.
async fn latencies(options: SshOptions, target: &Target, setups: usize, commands: usize) -> Result<Latencies, String> {
    let pool = SshPool::new(options).map_err(|err| err.to_string())?;
    let command = RemoteCommand::new("true", "true");
    let mut setup = Vec::with_capacity(setups);
    for _ in 0..setups {
        pool.close(target).await;
        let started = Instant::now();
        let output = pool.run(target, &command).await.map_err(|err| err.to_string())?;
        setup.push(started.elapsed());
        if !output.success() {
            return Err(format!("`true` exited with {}", output.exit_status));
        }
    }
    // Warm: the first few after the set-up.
    for _ in 0..5 {
        pool.run(target, &command).await.map_err(|err| err.to_string())?;
    }
    let mut each = Vec::with_capacity(commands);
    for _ in 0..commands {
        let started = Instant::now();
        pool.run(target, &command).await.map_err(|err| err.to_string())?;
        each.push(started.elapsed());
    }
    pool.close_all().await;
    setup.sort();
    each.sort();
    Ok(Latencies {
        setup_median: quantile_ms(&setup, 0.5),
        setup_p90: quantile_ms(&setup, 0.9),
        command_median: quantile_ms(&each, 0.5),
        command_p90: quantile_ms(&each, 0.9),
        command_min: quantile_ms(&each, 0.0),
    })
}

struct Step {
    elapsed: Duration,
    failures: usize,
    masters: usize,
    process_rss: u64,
    masters_rss: u64,
    masters_pss: u64,
}

/// One master and one `true` per host, all at once; memory measured while every master is open.
async fn ramp_step(options: SshOptions, hosts: &[String], marker: &str) -> Step {
    let pool = Arc::new(SshPool::new(options).expect("pool"));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for host in hosts {
        let (pool, target) = (pool.clone(), Target::root(host.clone()));
        tasks.spawn(async move { pool.run(&target, &RemoteCommand::new("true", "true")).await.map(|o| o.success()) });
    }
    let mut failures = 0;
    let mut first_error = None;
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => failures += 1,
            Ok(Err(err)) => {
                failures += 1;
                first_error.get_or_insert(err.to_string());
            }
            Err(err) => {
                failures += 1;
                first_error.get_or_insert(err.to_string());
            }
        }
    }
    let elapsed = started.elapsed();
    if let Some(err) = first_error {
        println!("  ({failures} of {} failed; first: {err})", hosts.len());
    }
    let masters = support::ssh_processes(marker);
    let masters_rss = masters.iter().filter_map(|&pid| support::status_bytes(pid, "VmRSS")).sum();
    let masters_pss = masters.iter().filter_map(|&pid| support::rollup_bytes(pid, "Pss")).sum();
    let step = Step { elapsed, failures, masters: masters.len(), process_rss: self_rss(), masters_rss, masters_pss };
    pool.close_all().await;
    drop(pool);
    // Wait for the masters to go before the next step.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !support::ssh_processes(marker).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    step
}

fn self_rss() -> u64 {
    support::status_bytes(std::process::id(), "VmRSS").unwrap_or(0)
}
