//! kill -9 in the middle of a drain, then a re-run: the migrations under way
//! are found and awaited, not started again, and the hosts end empty.

mod drain_common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use drain_common::{plain_world, DrainSite};
use hvmigrate::workflow::report::HostOutcome;

const IN_PROGRESS: [&str; 4] = ["queued", "preparing", "running", "post-migrating"];

/// The binary's drain over the site in the background, its output discarded.
fn spawn_drain(site: &DrainSite, extra: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_hvmigrate"))
        .arg("--creds-file")
        .arg(&site.paths.creds_file)
        .arg("--hypervisors-file")
        .arg(&site.paths.hypervisors_file)
        .arg("--state")
        .arg(&site.journal)
        .arg("--log-dir")
        .arg(site.dir.path().join("logs"))
        .args(["--allow-root", "-q", "run", "--step", "drain", "--force"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_resumes_after_kill_9() {
    let settings = "workflow:\n  drain:\n    poll_interval_ms: 20\n    timeout_base_secs: 30\n  limits:\n    live_migrations_global: 3\n    live_migrations_per_host: 2\n";
    // 4 to 10 simulated seconds per migration: 0.4 to 1 s of real time.
    let site = DrainSite::start(plain_world(2, 5), settings, 10.0).await;
    let mut child = spawn_drain(&site, &["--parallel"]);

    // Kill it once some migrations are done and others under way.
    let started = Instant::now();
    let in_flight: Vec<String> = loop {
        {
            let world = site.world();
            let done = world.migrations.iter().filter(|m| m.status == "completed").count();
            let running: Vec<String> = world
                .migrations
                .iter()
                .filter(|m| IN_PROGRESS.contains(&m.status.as_str()))
                .map(|m| m.server_id.clone())
                .collect();
            if done >= 1 && !running.is_empty() {
                break running;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the drain never got going");
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the drain ended before it could be killed: {status}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    let started_before = site.world().migrations.len();
    assert!(started_before < 10, "killed in the middle, not at the end");

    let summary = site.drain(false).await;
    for report in &summary.hosts {
        assert_eq!(report.outcome, HostOutcome::Succeeded, "{}: {:?}", report.host, report.reason);
    }
    let world = site.world();
    for host in world.campaign_hosts() {
        assert_eq!(world.servers_on(&host.fqdn).count(), 0, "{} is empty", host.fqdn);
    }
    for server in world.servers.values() {
        let records = world.migrations.iter().filter(|m| m.server_id == server.id).count();
        assert_eq!(records, 1, "{} was migrated once, not restarted", server.name);
    }
    for id in &in_flight {
        let record = world.migrations.iter().find(|m| &m.server_id == id).unwrap();
        assert_eq!(record.status, "completed", "the migration cut off by the kill was awaited");
    }
    assert!(world.max_concurrent_migrations <= 3);
}

/// The first Ctrl-C during a drain: the migrations under way are awaited and
/// recorded, and not one more starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_a_drain_starts_no_new_migration() {
    let settings = "workflow:\n  drain:\n    poll_interval_ms: 20\n    timeout_base_secs: 30\n  limits:\n    live_migrations_global: 2\n    live_migrations_per_host: 2\n";
    let site = DrainSite::start(plain_world(1, 10), settings, 10.0).await;
    let mut child = spawn_drain(&site, &[]);
    let started = Instant::now();
    loop {
        if site.world().migrations.iter().any(|m| IN_PROGRESS.contains(&m.status.as_str())) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the drain never got going");
        assert!(child.try_wait().unwrap().is_none(), "the drain ended before the signal");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // SAFETY: a signal to the child we started.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    // Once the signal is handled (well within this), nothing new may start.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let at_signal = site.world().migrations.len();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "an interrupted drain is not a success");
    let world = site.world();
    assert!(at_signal < 10, "interrupted in the middle");
    assert_eq!(world.migrations.len(), at_signal, "migrations started after the signal: none");
    for record in &world.migrations {
        assert_eq!(record.status, "completed", "the migrations under way were awaited");
    }
}
