//! Benchmark of `hvmigrate report` (issue #19): a 200-host, 6-week campaign
//! laid down by `hvmigrate lab history` (the real engine over the simulated
//! site, with a simulated clock), then the report built from its journal.
//!
//! Printed: the history's size (hosts, host steps, actions) and the time it
//! took to lay down; the report's build time from the journal (median and
//! longest of several, in-process); the whole `hvmigrate report --csv --html`
//! command's wall time. The target: under a second.
//!
//! `cargo bench --bench report`. HOSTS (default 200), WEEKS (default 6) and
//! SEED override; HISTORY names an existing journal to read instead.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn main() {
    let env = |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let (hosts, weeks, seed) = (env("HOSTS", 200), env("WEEKS", 6), env("SEED", 1));
    let bin = env!("CARGO_BIN_EXE_hvmigrate");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let journal = match std::env::var_os("HISTORY") {
        Some(path) => PathBuf::from(path),
        None => {
            let journal = dir.path().join("history.db");
            let started = Instant::now();
            let status = Command::new(bin)
                .args(["--allow-root", "-q", "--log-dir"])
                .arg(dir.path().join("logs"))
                .arg("--state")
                .arg(&journal)
                .args(["lab", "history", "--hosts", &hosts.to_string(), "--weeks", &weeks.to_string()])
                .args(["--seed", &seed.to_string(), "--dir"])
                .arg(dir.path().join("site"))
                .status()
                .expect("hvmigrate runs");
            assert!(status.success(), "lab history failed: {status}");
            println!("history: {hosts} hosts, {weeks} weeks laid down in {:.1} s", started.elapsed().as_secs_f64());
            journal
        }
    };
    let ledger = hvmigrate::journal::Journal::open_read_only(&journal).expect("the journal").expect("a journal");
    let rows = hvmigrate::report::Ledger::read(&ledger).expect("its rows");
    println!(
        "journal: {} host steps, {} actions, {} VM migrations",
        rows.steps.len(),
        rows.actions.len(),
        rows.vm_migrations.len()
    );
    let mut times: Vec<Duration> = (0..7)
        .map(|_| {
            let started = Instant::now();
            let report = hvmigrate::report::from_journal(&ledger, &Default::default(), hvmigrate::clock::now())
                .expect("the report");
            let page = hvmigrate::report::html::page(&report).expect("the page");
            std::hint::black_box(page);
            started.elapsed()
        })
        .collect();
    times.sort();
    // Where it goes: reading the rows, computing the tables, drawing the page.
    let started = Instant::now();
    let rows = hvmigrate::report::Ledger::read(&ledger).expect("its rows");
    let read = started.elapsed();
    let started = Instant::now();
    let report = hvmigrate::report::build(rows, &Default::default(), hvmigrate::clock::now()).expect("the report");
    let compute = started.elapsed();
    let started = Instant::now();
    std::hint::black_box(hvmigrate::report::html::page(&report).expect("the page"));
    let page = started.elapsed();
    println!(
        "of which: read {:.0} ms, compute {:.0} ms, page {:.0} ms",
        read.as_secs_f64() * 1000.0,
        compute.as_secs_f64() * 1000.0,
        page.as_secs_f64() * 1000.0
    );
    println!(
        "report (read + compute + page), in-process: median {:.0} ms, longest {:.0} ms over {} runs",
        times[times.len() / 2].as_secs_f64() * 1000.0,
        times[times.len() - 1].as_secs_f64() * 1000.0,
        times.len()
    );
    let started_cmd = Instant::now();
    let status = Command::new(bin)
        .args(["--allow-root", "-q", "--state"])
        .arg(&journal)
        .args(["report", "--all", "--csv"])
        .arg(dir.path().join("csv"))
        .arg("--html")
        .arg(dir.path().join("report.html"))
        .stdout(std::process::Stdio::null())
        .status()
        .expect("hvmigrate runs");
    assert!(status.success(), "report failed: {status}");
    let wall = started_cmd.elapsed();
    println!("hvmigrate report --all --csv --html: {:.0} ms wall (target: under 1000 ms)", wall.as_secs_f64() * 1000.0);
}
