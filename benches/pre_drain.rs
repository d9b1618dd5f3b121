//! Fleet benchmark of pre-drain (issue #6): 10, 100 and 1,000 simulated hosts,
//! every HTTP request and every SSH command 20 ms late, all hosts at once.
//!
//! The site runs in its own process (`hvmigrate lab serve`), and so does the
//! measured `hvmigrate run --step pre-drain`, after an unmeasured `setup` (the
//! step order wants it). Printed per size: the wall time; the critical path
//! (one host's sequential HTTP requests and SSH commands, counted from the
//! lab's request log and the hosts' shell histories, plus the run-wide Keystone
//! token and Nova version requests, × the latency) and wall / critical; the
//! CPU time of the orchestrator, of its ssh masters and of the lab; the peak
//! memory of the orchestrator (VmHWM) and of its ssh masters (the sum of their
//! peaks, and the largest sum of their proportional set sizes).
//!
//! `cargo bench --bench pre_drain` builds the release binary with the bench.
//! SIZES (default `10,100,1000`) and LATENCY_MS (default 20) override; HVMIGRATE_BIN
//! names another binary; JOURNAL_DIR puts the journal elsewhere (a tmpfs shows
//! what its fsyncs cost); KEEP keeps each size's folder (logs, reports).

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{mib, ChildGuard};

/// What one size measured.
struct Figures {
    hosts: usize,
    succeeded: usize,
    wall: Duration,
    setup_wall: Duration,
    /// Run-wide requests before any host starts (token, version document).
    shared_http: usize,
    http_per_host: f64,
    ssh_per_host: f64,
    ssh_max_per_host: usize,
    critical: Duration,
    /// Orchestrator and the ssh launchers it reaped (wait4).
    cpu_orchestrator: Duration,
    cpu_masters: Duration,
    cpu_lab: Duration,
    memory: Memory,
    /// Median and longest time of one host in the run's report.
    host_durations: (Duration, Duration),
}

#[derive(Default)]
struct Memory {
    orchestrator_hwm: u64,
    masters_max: usize,
    /// Sum over the masters of each one's VmHWM.
    masters_hwm_sum: u64,
    /// Largest sum of the masters' PSS seen (shared pages counted once).
    masters_pss_max: u64,
    masters_cpu: Duration,
    /// The orchestrator's own CPU time at the last sample.
    orchestrator_cpu: Duration,
}

fn main() {
    let binary = std::env::var("HVMIGRATE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_hvmigrate").to_owned());
    let sizes: Vec<usize> =
        support::setting("SIZES", "10,100,1000").split(',').filter_map(|size| size.trim().parse().ok()).collect();
    let latency: u64 = support::setting("LATENCY_MS", "20").parse().expect("LATENCY_MS is a number");
    let open_files = support::raise_open_files();
    let _ = rustls::crypto::ring::default_provider().install_default();
    println!("pre-drain benchmark: {latency} ms on every HTTP request and every SSH command, --parallel = hosts");
    println!("  binary {binary}; open files limit {open_files}; {} CPUs", cpus());

    let mut results = Vec::new();
    for &hosts in &sizes {
        println!("\n{hosts} hosts ...");
        match bench(Path::new(&binary), hosts, latency) {
            Ok(figures) => {
                print_details(&figures, latency);
                results.push(Ok(figures));
            }
            Err(err) => {
                println!("  FAILED: {err}");
                results.push(Err((hosts, err)));
            }
        }
    }

    println!("\n| hosts | ok | wall | critical path | wall/critical | orchestrator CPU | masters CPU | lab CPU | orchestrator peak | ssh masters: count, Σ VmHWM / Σ PSS |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for result in &results {
        match result {
            Ok(f) => println!(
                "| {} | {} | {:.2} s | {:.0} ms | {:.2} | {:.2} s | {:.2} s | {:.2} s | {:.1} MiB | {}: {:.0} / {:.0} MiB |",
                f.hosts,
                f.succeeded,
                f.wall.as_secs_f64(),
                f.critical.as_secs_f64() * 1000.0,
                f.wall.as_secs_f64() / f.critical.as_secs_f64(),
                f.cpu_orchestrator.as_secs_f64(),
                f.cpu_masters.as_secs_f64(),
                f.cpu_lab.as_secs_f64(),
                mib(f.memory.orchestrator_hwm),
                f.memory.masters_max,
                mib(f.memory.masters_hwm_sum),
                mib(f.memory.masters_pss_max),
            ),
            Err((hosts, err)) => println!("| {hosts} | failed: {err} ||||||||"),
        }
    }
    println!("targets: wall/critical < 1.5 at 1,000 hosts; orchestrator peak < 300 MB");
}

fn print_details(f: &Figures, latency: u64) {
    println!("  hosts succeeded {}/{}; setup (not measured) {:.2} s", f.succeeded, f.hosts, f.setup_wall.as_secs_f64());
    println!(
        "  per host: {:.2} HTTP requests + {:.2} SSH commands (at most {}), run-wide {} requests first",
        f.http_per_host, f.ssh_per_host, f.ssh_max_per_host, f.shared_http
    );
    println!(
        "  critical path ({} + {:.2} + {:.2}) × {latency} ms = {:.0} ms; wall {:.3} s; ratio {:.2}",
        f.shared_http,
        f.http_per_host,
        f.ssh_per_host,
        f.critical.as_secs_f64() * 1000.0,
        f.wall.as_secs_f64(),
        f.wall.as_secs_f64() / f.critical.as_secs_f64()
    );
    println!(
        "  one host's time in the report: median {:.0} ms, longest {:.0} ms",
        f.host_durations.0.as_secs_f64() * 1000.0,
        f.host_durations.1.as_secs_f64() * 1000.0
    );
    let total = f.cpu_orchestrator + f.cpu_masters + f.cpu_lab;
    println!(
        "  CPU: orchestrator {:.2} s ({:.2} s its own, the rest the ssh launchers it reaped), ssh masters {:.2} s, lab {:.2} s; {:.0}% of {} CPUs over the wall time",
        f.cpu_orchestrator.as_secs_f64(),
        f.memory.orchestrator_cpu.as_secs_f64(),
        f.cpu_masters.as_secs_f64(),
        f.cpu_lab.as_secs_f64(),
        100.0 * total.as_secs_f64() / (f.wall.as_secs_f64() * cpus() as f64),
        cpus()
    );
    println!(
        "  memory: orchestrator VmHWM {:.1} MiB; {} ssh masters at most, Σ VmHWM {:.0} MiB, Σ PSS at most {:.0} MiB",
        mib(f.memory.orchestrator_hwm),
        f.memory.masters_max,
        mib(f.memory.masters_hwm_sum),
        mib(f.memory.masters_pss_max)
    );
}

fn cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn bench(binary: &Path, hosts: usize, latency: u64) -> Result<Figures, String> {
    // Short: the ssh control sockets live under TMPDIR and their path must fit in 108 bytes.
    let root = tempfile::Builder::new().prefix("hvb-").tempdir_in("/tmp").map_err(|err| err.to_string())?;
    let site = root.path().join("site");
    let lab_log = std::fs::File::create(root.path().join("lab.log")).map_err(|err| err.to_string())?;
    let child = Command::new(binary)
        .args(["--allow-root", "-q", "lab", "serve", "--no-oddities", "--hosts", &hosts.to_string()])
        .args(["--http-latency-ms", &latency.to_string(), "--ssh-latency-ms", &latency.to_string(), "--dir"])
        .arg(&site)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(lab_log)
        .spawn()
        .map_err(|err| format!("cannot start the lab: {err}"))?;
    let mut lab = ChildGuard { child, grace: Duration::from_secs(5) };
    let control = wait_for_lab(&mut lab, &site)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;

    let started = Instant::now();
    run_step(binary, &site, "setup", root.path(), None)?;
    let setup_wall = started.elapsed();

    let requests_before = runtime.block_on(requests(&control))?.len();
    let history_before =
        histories(&runtime.block_on(hvmigrate::lab::fetch_world(&control)).map_err(|e| e.to_string())?);
    let lab_cpu_before = support::cpu_time(lab.pid()).unwrap_or_default();

    // The run's ssh masters are those whose control sockets are under this folder.
    let marker = root.path().join("t");
    std::fs::create_dir(&marker).map_err(|err| err.to_string())?;
    let measured = run_step(binary, &site, "pre-drain", root.path(), Some(&marker))?;
    let lab_cpu = support::cpu_time(lab.pid()).unwrap_or_default().saturating_sub(lab_cpu_before);

    let requests_after = runtime.block_on(requests(&control))?;
    let world = runtime.block_on(hvmigrate::lab::fetch_world(&control)).map_err(|e| e.to_string())?;
    let history_after = histories(&world);
    drop(lab);

    let new = &requests_after[requests_before.min(requests_after.len())..];
    let shared = new
        .iter()
        .filter(|r| {
            let path = r["path"].as_str().unwrap_or_default();
            (r["service"] == "keystone" && path.ends_with("/auth/tokens"))
                || (r["service"] == "nova" && r["method"] == "GET" && path.trim_end_matches('/').ends_with("/v2.1"))
        })
        .count();
    let http_per_host = (new.len() - shared) as f64 / hosts as f64;
    let ssh_counts: Vec<usize> =
        history_after.iter().map(|(host, after)| after - history_before.get(host).copied().unwrap_or(0)).collect();
    let ssh_per_host = ssh_counts.iter().sum::<usize>() as f64 / ssh_counts.len().max(1) as f64;
    let ssh_max_per_host = ssh_counts.iter().copied().max().unwrap_or(0);
    let critical = Duration::from_secs_f64((shared as f64 + http_per_host + ssh_per_host) * latency as f64 / 1000.0);

    let report: Value = serde_json::from_slice(&measured.stdout).map_err(|err| format!("pre-drain output: {err}"))?;
    let succeeded =
        report["hosts"].as_array().into_iter().flatten().filter(|host| host["outcome"] == "succeeded").count();
    let mut host_ms: Vec<u64> =
        report["hosts"].as_array().into_iter().flatten().filter_map(|host| host["duration"].as_u64()).collect();
    host_ms.sort_unstable();
    let host_durations = (
        Duration::from_millis(host_ms.get(host_ms.len() / 2).copied().unwrap_or(0)),
        Duration::from_millis(host_ms.last().copied().unwrap_or(0)),
    );
    if std::env::var_os("KEEP").is_some() {
        println!("  kept {}", root.keep().display());
    }
    let memory = measured.memory.unwrap_or_default();
    Ok(Figures {
        hosts,
        succeeded,
        wall: measured.wall,
        setup_wall,
        shared_http: shared,
        http_per_host,
        ssh_per_host,
        ssh_max_per_host,
        critical,
        cpu_orchestrator: measured.cpu,
        cpu_masters: memory.masters_cpu,
        cpu_lab: lab_cpu,
        memory,
        host_durations,
    })
}

/// Waits for `lab.json` (written once every server listens) and returns the control URL.
fn wait_for_lab(lab: &mut ChildGuard, site: &Path) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let pointer = site.join(hvmigrate::lab::LAB_JSON);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = lab.child.try_wait() {
            return Err(format!("the lab exited: {status}"));
        }
        if pointer.exists() {
            return hvmigrate::lab::control_url(&hvmigrate::lab::ShowSource::Dir(site.to_owned()))
                .map_err(|err| err.to_string());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err("the lab did not start within 120 s".into())
}

struct StepRun {
    wall: Duration,
    cpu: Duration,
    stdout: Vec<u8>,
    memory: Option<Memory>,
}

/// Runs one step over every host at once; with `marker`, measured (TMPDIR = marker).
fn run_step(binary: &Path, site: &Path, step: &str, root: &Path, marker: Option<&Path>) -> Result<StepRun, String> {
    let stdout_path = root.join(format!("{step}.json"));
    let stderr_path = root.join(format!("{step}.err"));
    let mut command = Command::new(binary);
    command
        .current_dir(site)
        .args(["--allow-root", "-q", "--output", "json", "--state"])
        .arg(journal_dir(root).join("state.db"))
        .arg("--log-dir")
        .arg(root.join("logs"))
        .args(["run", "--step", step, "--parallel"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).map_err(|err| err.to_string())?)
        .stderr(std::fs::File::create(&stderr_path).map_err(|err| err.to_string())?);
    if let Some(marker) = marker {
        command.env("TMPDIR", marker);
    }
    let started = Instant::now();
    let child = command.spawn().map_err(|err| format!("cannot start {step}: {err}"))?;
    let pid = child.id();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = marker.map(|marker| {
        let (stop, marker) = (stop.clone(), marker.display().to_string());
        std::thread::spawn(move || sample(pid, &marker, &stop))
    });
    let (status, cpu) = wait_with_usage(pid);
    let wall = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let memory = sampler.map(|thread| thread.join().expect("the sampler does not panic"));
    drop(child);
    let stdout = std::fs::read(&stdout_path).map_err(|err| err.to_string())?;
    if status != 0 {
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        return Err(format!("{step} exited with {status}: {}", tail.into_iter().rev().collect::<Vec<_>>().join(" / ")));
    }
    Ok(StepRun { wall, cpu, stdout, memory })
}

/// Where the journal goes: JOURNAL_DIR (e.g. a tmpfs, to see what its fsyncs cost), else the run's folder.
fn journal_dir(root: &Path) -> std::path::PathBuf {
    match std::env::var_os("JOURNAL_DIR").filter(|dir| !dir.is_empty()) {
        Some(dir) => Path::new(&dir).join(root.file_name().unwrap_or_default()),
        None => root.to_owned(),
    }
}

/// Reaps the child; its exit code and CPU time (its own and its reaped children's).
fn wait_with_usage(pid: u32) -> (i32, Duration) {
    let mut status = 0;
    // SAFETY: a zeroed rusage is valid; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
    if reaped < 0 {
        return (-1, Duration::ZERO);
    }
    let time = |tv: libc::timeval| Duration::from_secs(tv.tv_sec as u64) + Duration::from_micros(tv.tv_usec as u64);
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -1 };
    (code, time(usage.ru_utime) + time(usage.ru_stime))
}

/// Samples the orchestrator every 20 ms and its ssh masters every 200 ms
/// (their PSS every second: reading it costs more) until told to stop.
fn sample(pid: u32, marker: &str, stop: &AtomicBool) -> Memory {
    let mut memory = Memory::default();
    let mut hwm: BTreeMap<u32, u64> = BTreeMap::new();
    let mut cpu: BTreeMap<u32, Duration> = BTreeMap::new();
    let mut tick = 0u64;
    while !stop.load(Ordering::SeqCst) {
        if let Some(peak) = support::status_bytes(pid, "VmHWM") {
            memory.orchestrator_hwm = memory.orchestrator_hwm.max(peak);
        }
        if let Some(time) = support::cpu_time(pid) {
            memory.orchestrator_cpu = time;
        }
        if tick.is_multiple_of(10) {
            let masters = support::ssh_processes(marker);
            // PSS costs more to read: when the masters are most numerous, else every second.
            let read_pss = masters.len() >= memory.masters_max || tick.is_multiple_of(50);
            memory.masters_max = memory.masters_max.max(masters.len());
            let mut pss = 0;
            for &master in &masters {
                if let Some(peak) = support::status_bytes(master, "VmHWM") {
                    let entry = hwm.entry(master).or_default();
                    *entry = (*entry).max(peak);
                }
                if let Some(time) = support::cpu_time(master) {
                    cpu.insert(master, time);
                }
                if read_pss {
                    pss += support::rollup_bytes(master, "Pss").unwrap_or(0);
                }
            }
            memory.masters_pss_max = memory.masters_pss_max.max(pss);
        }
        tick += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    memory.masters_hwm_sum = hwm.values().sum();
    memory.masters_cpu = cpu.values().sum();
    memory
}

async fn requests(control: &str) -> Result<Vec<Value>, String> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().map_err(|e| e.to_string())?;
    let response = client.get(format!("{control}/_lab/requests")).send().await.map_err(|e| e.to_string())?;
    let records: Value = response.json().await.map_err(|e| e.to_string())?;
    records.as_array().cloned().ok_or_else(|| "the request log is not a list".to_owned())
}

/// Length of each campaign host's shell history.
fn histories(world: &Value) -> BTreeMap<String, usize> {
    world["hosts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|host| host["in_campaign"] == true)
        .map(|host| {
            let name = host["fqdn"].as_str().unwrap_or_default().to_owned();
            (name, host["shell"]["history"].as_array().map_or(0, Vec::len))
        })
        .collect()
}
