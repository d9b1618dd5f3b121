//! Team-ledger benchmark (issue #16): 1,000 simulated hosts through a
//! noops-sized step on a SQLite ledger and on PostgreSQL, by one run and by
//! four runs at once that `--claim` a quarter of the hosts each.
//!
//! The step is `noops` itself, the preflight: the smallest step that still
//! does, per host, everything the ledger sees in a real step. Every host is
//! leased (acquired, checked and renewed before its result is written, given
//! back), a host step is opened and closed, seven actions are journaled and
//! the audit trail's state is written; it changes nothing on the site, so
//! every configuration runs on the same lab after one `setup` (not measured,
//! on a scratch ledger). Its per-host work outside the ledger is three HTTP
//! reads, one Jira comment and one SSH login; the lab answers with no added
//! latency (`--http-latency-ms 0 --ssh-latency-ms 0`) so that the ledger
//! weighs as much as it can. The SSH masters still cost CPU (about 13 ms
//! each, see the pre-drain benchmark), which on a small machine bounds what
//! four runs at once can gain.
//!
//! Printed per configuration: the wall time (all runs started at once, until
//! the last ends) and its ratio to the single-run SQLite wall; the journal
//! rows the runs left in the campaign's tables (counted after the runs) and
//! those rows per second of wall time; on PostgreSQL also the server's own
//! count of row writes (inserts + updates + deletes, leases included) and
//! commits, from `pg_stat_database`.
//!
//! Lease overhead is measured apart, through the library on a fresh ledger
//! of each backend: per host, what a run does in the ledger for its lease
//! (`acquire_lease`; then `hold_lease` before the result is written,
//! `release_room` and `release_lease`), by one connection over all the hosts
//! and by four connections at once (one per run) over a quarter each: median
//! and p99 per host, against the 2 ms target; and one renewal of every lease
//! a run holds (`renew_leases` + `renew_room`, every third of the lease time).
//!
//! The PostgreSQL ledger is a private cluster (tests/support/postgres.rs) on
//! 127.0.0.1 with fsync on, as a production server has it (`PG_FSYNC=off`
//! for the tests' setting); it is stopped and removed when the benchmark
//! ends, however it ends. Without PostgreSQL binaries its rows say SKIPPED.
//!
//! `cargo bench --bench team_ledger` builds the release binary with the
//! bench. HOSTS (default 1000), RUNS (default `1,4`) and BACKENDS (default
//! `sqlite,postgres`) override; PARTS=leases measures only the lease path;
//! HVMIGRATE_BIN names another binary;
//! JOURNAL_DIR puts the SQLite ledgers elsewhere; KEEP keeps the folder.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use hvmigrate::journal::{Journal, LeaseCheck, LeaseHolder, LeaseOutcome};
use serde_json::Value;
use support::ChildGuard;

/// The lease time of the runs (`workflow.ledger.lease_secs`' default).
const LEASE: Duration = Duration::from_secs(300);

/// The campaign's tables, as `journal copy` counts them.
const TABLES: [&str; 8] = [
    "runs",
    "host_steps",
    "actions",
    "sub_commands",
    "remote_jobs",
    "operator_actions",
    "host_identity",
    "lease_takeovers",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// What one configuration of runs measured.
struct RunFigures {
    backend: Backend,
    runs: usize,
    wall: Duration,
    /// Each run's own wall time.
    run_walls: Vec<Duration>,
    /// Hosts the runs worked on (claimed) and those that succeeded.
    worked: usize,
    succeeded: usize,
    /// CPU of the runs (with the ssh launchers they reaped).
    cpu: Duration,
    rows: Vec<(&'static str, i64)>,
    server: Option<ServerWrites>,
}

/// PostgreSQL's own count of what a database was written.
#[derive(Clone, Copy, Default)]
struct ServerWrites {
    commits: i64,
    inserted: i64,
    updated: i64,
    deleted: i64,
}

impl ServerWrites {
    fn rows(&self) -> i64 {
        self.inserted + self.updated + self.deleted
    }

    fn since(&self, before: &ServerWrites) -> ServerWrites {
        ServerWrites {
            commits: self.commits - before.commits,
            inserted: self.inserted - before.inserted,
            updated: self.updated - before.updated,
            deleted: self.deleted - before.deleted,
        }
    }
}

/// What the lease path measured for one backend and number of connections.
struct LeaseFigures {
    backend: Backend,
    connections: usize,
    /// Per host: acquire + hold + release, sorted.
    per_host: Vec<Duration>,
    acquire: Vec<Duration>,
    /// One renewal of every lease of a run, per run.
    renewals: Vec<Duration>,
    wall: Duration,
}

enum Row<T> {
    Measured(T),
    Skipped(String),
    Failed(String),
}

fn main() {
    let binary = std::env::var("HVMIGRATE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_hvmigrate").to_owned());
    let hosts: usize = support::setting("HOSTS", "1000").parse().expect("HOSTS is a number");
    let runs: Vec<usize> = support::setting("RUNS", "1,4")
        .split(',')
        .filter_map(|runs| runs.trim().parse().ok())
        .filter(|runs| *runs > 0)
        .collect();
    let backends: Vec<Backend> = support::setting("BACKENDS", "sqlite,postgres")
        .split(',')
        .filter_map(|name| match name.trim() {
            "sqlite" => Some(Backend::Sqlite),
            "postgres" | "postgresql" => Some(Backend::Postgres),
            _ => None,
        })
        .collect();
    // PARTS=leases measures only the lease path (no lab runs).
    let parts = support::setting("PARTS", "runs,leases");
    let (measure_runs, measure_leases) = (parts.contains("runs"), parts.contains("leases"));
    let fsync = support::setting("PG_FSYNC", "on") != "off";
    if fsync {
        support::postgres::durable();
    }
    let open_files = support::raise_open_files();
    println!(
        "team-ledger benchmark: {hosts} hosts, `run --step noops --parallel`, runs at once {runs:?}, no lab latency"
    );
    println!("  binary {binary}; open files limit {open_files}; {} CPUs; {}", cpus(), load());
    println!("  PostgreSQL: private cluster on 127.0.0.1, fsync {}", if fsync { "on" } else { "off" });

    let root = tempfile::Builder::new().prefix("hvl-").tempdir_in("/tmp").expect("a temporary folder");
    let (lab, site) = match start_lab(Path::new(&binary), root.path(), hosts) {
        Ok(lab) => lab,
        Err(err) => {
            println!("FAILED: {err}");
            std::process::exit(1);
        }
    };

    let mut run_rows: Vec<(Backend, usize, Row<RunFigures>)> = Vec::new();
    let mut lease_rows: Vec<(Backend, usize, Row<LeaseFigures>)> = Vec::new();
    for &backend in &backends {
        for &count in runs.iter().filter(|_| measure_runs) {
            println!("\n{} ledger, {count} run(s) ...", backend.name());
            let row = match ledger(backend, root.path(), &format!("runs{count}")) {
                Err(reason) => Row::Skipped(reason),
                Ok(state) => match bench_runs(Path::new(&binary), &site, root.path(), backend, &state, hosts, count) {
                    Ok(figures) => {
                        print_runs(&figures);
                        Row::Measured(figures)
                    }
                    Err(err) => Row::Failed(err),
                },
            };
            if let Row::Skipped(reason) | Row::Failed(reason) = &row {
                println!("  {}: {reason}", if matches!(row, Row::Skipped(_)) { "SKIPPED" } else { "FAILED" });
            }
            run_rows.push((backend, count, row));
        }
        for &connections in runs.iter().filter(|_| measure_leases) {
            println!("\n{} ledger, lease path, {connections} connection(s) ...", backend.name());
            let row = match ledger(backend, root.path(), &format!("leases{connections}")) {
                Err(reason) => Row::Skipped(reason),
                Ok(state) => match bench_leases(backend, &state, hosts, connections) {
                    Ok(figures) => {
                        print_leases(&figures);
                        Row::Measured(figures)
                    }
                    Err(err) => Row::Failed(err),
                },
            };
            if let Row::Skipped(reason) | Row::Failed(reason) = &row {
                println!("  {}: {reason}", if matches!(row, Row::Skipped(_)) { "SKIPPED" } else { "FAILED" });
            }
            lease_rows.push((backend, connections, row));
        }
    }
    drop(lab);

    let baseline = run_rows.iter().find_map(|(backend, count, row)| match (backend, count, row) {
        (Backend::Sqlite, 1, Row::Measured(figures)) => Some(figures.wall),
        _ => None,
    });
    println!("\n{hosts} hosts, noops; {}", load());
    println!("| ledger | runs | hosts ok | wall | wall / 1-run SQLite | journal rows | rows/s | server row writes (commits) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (backend, count, row) in &run_rows {
        match row {
            Row::Measured(f) => {
                let rows: i64 = f.rows.iter().map(|(_, count)| count).sum();
                println!(
                    "| {} | {} | {}/{} | {:.2} s | {} | {} | {:.0} | {} |",
                    backend.name(),
                    count,
                    f.succeeded,
                    f.worked,
                    f.wall.as_secs_f64(),
                    baseline.map_or("-".to_owned(), |base| format!("{:.2}", f.wall.as_secs_f64() / base.as_secs_f64())),
                    rows,
                    rows as f64 / f.wall.as_secs_f64(),
                    f.server.map_or("-".to_owned(), |server| format!("{} ({})", server.rows(), server.commits)),
                )
            }
            Row::Skipped(reason) => println!("| {} | {count} | SKIPPED: {reason} ||||||", backend.name()),
            Row::Failed(reason) => println!("| {} | {count} | FAILED: {reason} ||||||", backend.name()),
        }
    }
    println!("\n| ledger | connections at once | lease path per host, median / p99 | acquire alone, median / p99 | renewal of a run's leases | hosts/s |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (backend, connections, row) in &lease_rows {
        match row {
            Row::Measured(f) => println!(
                "| {} | {} | {:.3} / {:.3} ms | {:.3} / {:.3} ms | {:.1} ms | {:.0} |",
                backend.name(),
                connections,
                support::quantile_ms(&f.per_host, 0.5),
                support::quantile_ms(&f.per_host, 0.99),
                support::quantile_ms(&f.acquire, 0.5),
                support::quantile_ms(&f.acquire, 0.99),
                support::quantile_ms(&f.renewals, 0.5),
                f.per_host.len() as f64 / f.wall.as_secs_f64(),
            ),
            Row::Skipped(reason) => println!("| {} | {connections} | SKIPPED: {reason} ||||", backend.name()),
            Row::Failed(reason) => println!("| {} | {connections} | FAILED: {reason} ||||", backend.name()),
        }
    }
    println!("target: lease overhead ≤ 2 ms per host");
    if std::env::var_os("KEEP").is_some() {
        println!("kept {}", root.keep().display());
    }
}

fn cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// `load average: 1-min, 5-min, 15-min` (the machine may be shared).
fn load() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let fields: Vec<&str> = text.split_whitespace().take(3).collect();
    format!("load average {}", fields.join(", "))
}

/// A new empty ledger: a SQLite file, or a database of the private cluster
/// (`Err` with why when this machine has no PostgreSQL).
fn ledger(backend: Backend, root: &Path, name: &str) -> Result<String, String> {
    match backend {
        Backend::Sqlite => Ok(journal_dir(root).join(format!("{name}.db")).display().to_string()),
        Backend::Postgres => match support::postgres::bindir() {
            None => Err("no PostgreSQL binaries (install the postgresql package)".into()),
            Some(_) => support::postgres::database(name).ok_or_else(|| "no PostgreSQL".to_owned()),
        },
    }
}

/// Where the SQLite ledgers go: JOURNAL_DIR, else the bench's folder.
fn journal_dir(root: &Path) -> PathBuf {
    match std::env::var_os("JOURNAL_DIR").filter(|dir| !dir.is_empty()) {
        Some(dir) => Path::new(&dir).join(root.file_name().unwrap_or_default()),
        None => root.to_owned(),
    }
}

/// The site in its own process, every host standard and no added latency;
/// `setup` run once over it (root logins work from then on).
fn start_lab(binary: &Path, root: &Path, hosts: usize) -> Result<(ChildGuard, PathBuf), String> {
    let site = root.join("site");
    let lab_log = std::fs::File::create(root.join("lab.log")).map_err(|err| err.to_string())?;
    let child = Command::new(binary)
        .args(["--allow-root", "-q", "lab", "serve", "--no-oddities", "--hosts", &hosts.to_string()])
        .args(["--http-latency-ms", "0", "--ssh-latency-ms", "0", "--dir"])
        .arg(&site)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(lab_log)
        .spawn()
        .map_err(|err| format!("cannot start the lab: {err}"))?;
    let mut lab = ChildGuard { child, grace: Duration::from_secs(5) };
    wait_for_lab(&mut lab, &site)?;
    let started = Instant::now();
    let scratch = root.join("setup.db").display().to_string();
    let setup = run_command(binary, &site, root, &scratch, "setup", &["--step", "setup", "--parallel"])?;
    let (status, _) = wait_with_usage(setup.id());
    if status != 0 {
        return Err(format!("setup exited with {status}: {}", tail(&root.join("setup.err"))));
    }
    println!("  lab up, setup over {hosts} hosts in {:.1} s (not measured)", started.elapsed().as_secs_f64());
    Ok((lab, site))
}

/// Waits for `lab.json` (written once every server listens).
fn wait_for_lab(lab: &mut ChildGuard, site: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = lab.child.try_wait() {
            return Err(format!("the lab exited: {status}"));
        }
        if site.join(hvmigrate::lab::LAB_JSON).exists() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err("the lab did not start within 120 s".into())
}

/// `hvmigrate run` on the site with the ledger `state`; stdout and stderr into `<label>.json` / `.err`.
fn run_command(
    binary: &Path,
    site: &Path,
    root: &Path,
    state: &str,
    label: &str,
    args: &[&str],
) -> Result<std::process::Child, String> {
    let file = |suffix: &str| std::fs::File::create(root.join(format!("{label}.{suffix}"))).map_err(|e| e.to_string());
    Command::new(binary)
        .current_dir(site)
        .args(["--allow-root", "-q", "--output", "json", "--state", state, "--log-dir"])
        .arg(root.join(format!("logs-{label}")))
        .arg("run")
        .args(args)
        .stdin(Stdio::null())
        .stdout(file("json")?)
        .stderr(file("err")?)
        .spawn()
        .map_err(|err| format!("cannot start {label}: {err}"))
}

/// `runs` runs of noops at once on the ledger `state`; with more than one,
/// each claims its share of the hosts.
fn bench_runs(
    binary: &Path,
    site: &Path,
    root: &Path,
    backend: Backend,
    state: &str,
    hosts: usize,
    runs: usize,
) -> Result<RunFigures, String> {
    let before = match backend {
        Backend::Postgres => Some(server_writes(state)?),
        Backend::Sqlite => None,
    };
    let share = hosts.div_ceil(runs).to_string();
    let mut args = vec!["--step", "noops", "--parallel"];
    if runs > 1 {
        args.extend(["--claim", share.as_str()]);
    }
    let labels: Vec<String> =
        (0..runs).map(|index| format!("{}-{runs}-{index}", backend.name().to_lowercase())).collect();
    let started = Instant::now();
    let mut children = Vec::new();
    for label in &labels {
        children.push(run_command(binary, site, root, state, label, &args)?);
    }
    // One waiter per run, so that each run's end is seen when it comes.
    let waiters: Vec<_> = children
        .iter()
        .map(|child| {
            let pid = child.id();
            std::thread::spawn(move || {
                let (status, cpu) = wait_with_usage(pid);
                (status, cpu, started.elapsed())
            })
        })
        .collect();
    let ended: Vec<(i32, Duration, Duration)> =
        waiters.into_iter().map(|waiter| waiter.join().expect("a waiter does not panic")).collect();
    let wall = started.elapsed();
    drop(children);

    let (mut worked, mut succeeded, mut cpu, mut run_walls) = (0, 0, Duration::ZERO, Vec::new());
    for (label, (status, run_cpu, run_wall)) in labels.iter().zip(&ended) {
        if *status != 0 {
            return Err(format!("{label} exited with {status}: {}", tail(&root.join(format!("{label}.err")))));
        }
        let text = std::fs::read(root.join(format!("{label}.json"))).map_err(|err| err.to_string())?;
        let summary: Value = serde_json::from_slice(&text).map_err(|err| format!("{label}'s summary: {err}"))?;
        let reports = summary["hosts"].as_array().cloned().unwrap_or_default();
        worked += reports.len();
        succeeded += reports.iter().filter(|host| host["outcome"] == "succeeded").count();
        cpu += *run_cpu;
        run_walls.push(*run_wall);
    }
    let rows = count_rows(backend, state)?;
    let server = match before {
        Some(before) => Some(settled_server_writes(state)?.since(&before)),
        None => None,
    };
    Ok(RunFigures { backend, runs, wall, run_walls, worked, succeeded, cpu, rows, server })
}

fn print_runs(f: &RunFigures) {
    let rows: i64 = f.rows.iter().map(|(_, count)| count).sum();
    let walls: Vec<String> = f.run_walls.iter().map(|wall| format!("{:.2} s", wall.as_secs_f64())).collect();
    println!(
        "  {} run(s) on {}: wall {:.2} s (each {}); hosts worked {}, succeeded {}; CPU of the runs {:.1} s",
        f.runs,
        f.backend.name(),
        f.wall.as_secs_f64(),
        walls.join(", "),
        f.worked,
        f.succeeded,
        f.cpu.as_secs_f64()
    );
    let tables: Vec<String> =
        f.rows.iter().filter(|(_, count)| *count > 0).map(|(table, count)| format!("{table} {count}")).collect();
    println!("  journal rows {rows} ({}): {:.0} rows/s", tables.join(", "), rows as f64 / f.wall.as_secs_f64());
    if let Some(server) = f.server {
        println!(
            "  server: {} row writes ({} inserted, {} updated, {} deleted), {} commits: {:.0} row writes/s",
            server.rows(),
            server.inserted,
            server.updated,
            server.deleted,
            server.commits,
            server.rows() as f64 / f.wall.as_secs_f64()
        );
    }
}

/// The rows of each campaign table.
fn count_rows(backend: Backend, state: &str) -> Result<Vec<(&'static str, i64)>, String> {
    match backend {
        Backend::Sqlite => {
            let conn = rusqlite::Connection::open_with_flags(state, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .map_err(|err| format!("{state}: {err}"))?;
            TABLES
                .iter()
                .map(|table| {
                    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| row.get(0))
                        .map(|count| (*table, count))
                        .map_err(|err| format!("{table}: {err}"))
                })
                .collect()
        }
        Backend::Postgres => {
            let mut client = postgres::Client::connect(state, postgres::NoTls).map_err(|err| err.to_string())?;
            TABLES
                .iter()
                .map(|table| {
                    client
                        .query_one(&format!("SELECT COUNT(*) FROM {table}"), &[])
                        .map(|row| (*table, row.get::<_, i64>(0)))
                        .map_err(|err| format!("{table}: {err}"))
                })
                .collect()
        }
    }
}

/// The database's counters in `pg_stat_database`.
fn server_writes(url: &str) -> Result<ServerWrites, String> {
    let mut client = postgres::Client::connect(url, postgres::NoTls).map_err(|err| err.to_string())?;
    let row = client
        .query_one(
            "SELECT xact_commit, tup_inserted, tup_updated, tup_deleted FROM pg_stat_database
             WHERE datname = current_database()",
            &[],
        )
        .map_err(|err| err.to_string())?;
    Ok(ServerWrites { commits: row.get(0), inserted: row.get(1), updated: row.get(2), deleted: row.get(3) })
}

/// The counters once the runs' sessions have flushed theirs (at their end):
/// read until two readings a second apart agree on the row writes.
fn settled_server_writes(url: &str) -> Result<ServerWrites, String> {
    let mut last = server_writes(url)?;
    for _ in 0..10 {
        std::thread::sleep(Duration::from_secs(1));
        let now = server_writes(url)?;
        if now.rows() == last.rows() {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

/// The ledger work of a host's lease, through the library: `connections`
/// runs at once (one connection each) over their share of `hosts`.
fn bench_leases(backend: Backend, state: &str, hosts: usize, connections: usize) -> Result<LeaseFigures, String> {
    let names: Vec<String> = (0..hosts).map(|index| format!("hv{index:04}.bench.example.org")).collect();
    let share = hosts.div_ceil(connections);
    let barrier = Arc::new(Barrier::new(connections));
    let mut journals = Vec::new();
    for _ in 0..connections {
        journals.push(Journal::open(Path::new(state)).map_err(|err| err.to_string())?);
    }
    let started = Instant::now();
    let mut workers = Vec::new();
    for (index, (hosts, journal)) in names.chunks(share).zip(journals).enumerate() {
        let hosts = hosts.to_vec();
        let barrier = barrier.clone();
        let holder = LeaseHolder::this_process(&format!("bench-{index}"), "noops");
        workers.push(std::thread::spawn(move || one_run_of_leases(&journal, &holder, &hosts, &barrier)));
    }
    let (mut per_host, mut acquire, mut renewals) = (Vec::new(), Vec::new(), Vec::new());
    for worker in workers {
        let (host_times, acquire_times, renewal) = worker.join().map_err(|_| "a lease worker panicked")??;
        per_host.extend(host_times);
        acquire.extend(acquire_times);
        renewals.push(renewal);
    }
    let wall = started.elapsed();
    per_host.sort_unstable();
    acquire.sort_unstable();
    renewals.sort_unstable();
    Ok(LeaseFigures { backend, connections, per_host, acquire, renewals, wall })
}

type LeaseTimes = (Vec<Duration>, Vec<Duration>, Duration);

/// One run's leases, as the workflow takes them: said under way; every
/// host acquired; one renewal of them all; then each host checked before
/// its result is written and given back; the run ended.
fn one_run_of_leases(
    journal: &Journal,
    holder: &LeaseHolder,
    hosts: &[String],
    barrier: &Barrier,
) -> Result<LeaseTimes, String> {
    let failed = |err: hvmigrate::error::Error| err.to_string();
    barrier.wait();
    journal.run_under_way(holder, hosts.len(), LEASE).map_err(failed)?;
    let mut acquire = Vec::with_capacity(hosts.len());
    for host in hosts {
        let started = Instant::now();
        match journal.acquire_lease(host, holder, LEASE).map_err(failed)? {
            LeaseOutcome::Acquired { .. } => acquire.push(started.elapsed()),
            LeaseOutcome::Held(lease) => return Err(format!("{host}: {}", lease.held_reason())),
        }
    }
    let started = Instant::now();
    let held = journal.renew_leases(&holder.run_id, LEASE).map_err(failed)?;
    journal.renew_room(&holder.run_id, LEASE).map_err(failed)?;
    let renewal = started.elapsed();
    if held.len() != hosts.len() {
        return Err(format!("{} holds {} of its {} hosts", holder.run_id, held.len(), hosts.len()));
    }
    let mut per_host = Vec::with_capacity(hosts.len());
    for (host, acquired) in hosts.iter().zip(&acquire) {
        let started = Instant::now();
        let check = LeaseCheck { host, run_id: &holder.run_id, duration: LEASE };
        if let Err(lost) = journal.hold_lease(&check).map_err(failed)? {
            return Err(format!("{host}: {lost}"));
        }
        journal.release_room(host, &holder.run_id).map_err(failed)?;
        journal.release_lease(host, &holder.run_id).map_err(failed)?;
        per_host.push(*acquired + started.elapsed());
    }
    journal.run_ended(&holder.run_id).map_err(failed)?;
    Ok((per_host, acquire, renewal))
}

fn print_leases(f: &LeaseFigures) {
    println!(
        "  {} on {}: per host (acquire + hold + release) median {:.3} ms, p99 {:.3} ms, longest {:.1} ms; acquire median {:.3} ms, p99 {:.3} ms",
        f.per_host.len(),
        f.backend.name(),
        support::quantile_ms(&f.per_host, 0.5),
        support::quantile_ms(&f.per_host, 0.99),
        support::quantile_ms(&f.per_host, 1.0),
        support::quantile_ms(&f.acquire, 0.5),
        support::quantile_ms(&f.acquire, 0.99),
    );
    let renewals: Vec<String> = f.renewals.iter().map(|r| format!("{:.1} ms", r.as_secs_f64() * 1000.0)).collect();
    println!(
        "  {} connection(s): {:.2} s for all, {:.0} hosts/s; one renewal of a run's leases: {}",
        f.connections,
        f.wall.as_secs_f64(),
        f.per_host.len() as f64 / f.wall.as_secs_f64(),
        renewals.join(", ")
    );
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

/// The last lines of a run's stderr, for its failure.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" / ")
}
