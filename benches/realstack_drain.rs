//! Drain throughput on the real Nova (fake virt driver): the benchmark hosts
//! that `scripts/realstack up` seeded (3 hosts × 4 running servers, held
//! disabled so that no other drain lands there) drained in one run with the
//! binary, at most `LIMIT` live migrations at once across the run and 2 per
//! host. Prints the wall time against the bound `ceil(VMs / min(LIMIT, 2 ×
//! hosts)) × 5 s` (the fake driver's live migration sleeps 50 × 0.1 s) and
//! their ratio, beside the lab's figure for the same shape (`HOSTS=3 VMS=4
//! LIMIT=6 cargo bench --bench drain`).
//!
//! `HVMIGRATE_REALSTACK=<stack dir> cargo bench --bench realstack_drain`
//! (without it: SKIPPED). It drains the hosts: bring a fresh stack up to run
//! it again. `LIMIT` (6) and `POLL_MS` (500) adjust it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::{json, Value};

/// seed.py's reason on the benchmark's hosts.
const BENCH_REASON: &str = "realstack: held for the drain benchmark";
/// The fake driver's live migration: 50 sleeps of 0.1 s (nova/virt/fake.py, FakeLiveMigrateDriver).
const MIGRATION_SECS: f64 = 5.0;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|err| panic!("{}: {err}", dir.join(name).display()))
}

/// Plain reads of the real Nova, independent of the product's clients.
struct Nova {
    http: reqwest::Client,
    url: String,
    token: String,
    runtime: tokio::runtime::Runtime,
}

impl Nova {
    fn login(endpoints: &Value, credentials: &Value) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        // gunicorn closes idle connections after 2 s: a fresh connection per request.
        let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
        let os = &credentials["openstack"];
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": os["username"], "password": os["password"], "domain": {"name": "Default"}}}},
            "scope": {"project": {"name": os["project_name"], "domain": {"name": "Default"}}}}});
        let keystone = endpoints["keystone"].as_str().unwrap();
        let reply = runtime.block_on(http.post(format!("{keystone}/auth/tokens")).json(&body).send()).unwrap();
        let token = reply.headers()["x-subject-token"].to_str().unwrap().to_owned();
        Nova { http, url: endpoints["nova"].as_str().unwrap().to_owned(), token, runtime }
    }

    fn get(&self, path: &str) -> Value {
        self.runtime.block_on(async {
            let reply = self
                .http
                .get(format!("{}{path}", self.url))
                .header("X-Auth-Token", &self.token)
                .header("OpenStack-API-Version", "compute 2.80")
                .send()
                .await
                .unwrap();
            assert!(reply.status().is_success(), "GET {path}: {}", reply.status());
            reply.json().await.unwrap()
        })
    }
}

fn main() {
    let Some(dir) = std::env::var_os("HVMIGRATE_REALSTACK").map(PathBuf::from) else {
        println!("SKIPPED realstack_drain: HVMIGRATE_REALSTACK is not set (scripts/realstack up, then set it to the stack's folder)");
        return;
    };
    let limit = setting("LIMIT", 6);
    let poll_ms = setting("POLL_MS", 500);
    let endpoints: Value = serde_json::from_str(&read(&dir, "endpoints.json")).expect("endpoints.json");
    let mut credentials: Value = serde_yaml_ng::from_str(&read(&dir, "credentials.yaml")).expect("credentials.yaml");
    let nova = Nova::login(&endpoints, &credentials);

    // The benchmark's hosts: held by seed.py, each still with its servers.
    let services = nova.get("/os-services?binary=nova-compute");
    let held: Vec<String> = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["disabled_reason"] == BENCH_REASON)
        .map(|s| s["host"].as_str().unwrap().to_owned())
        .collect();
    let servers_on =
        |host: &str| nova.get(&format!("/servers?all_tenants=1&host={host}"))["servers"].as_array().unwrap().len();
    let counts: Vec<(String, usize)> = held.iter().map(|h| (h.clone(), servers_on(h))).collect();
    if held.is_empty() || counts.iter().any(|(_, n)| *n == 0) {
        println!("SKIPPED realstack_drain: no benchmark hosts with their servers in this stack ({counts:?}); bring a fresh stack up");
        return;
    }
    let hosts = held.len();
    let vms: usize = counts.iter().map(|(_, n)| n).sum();

    let list = read(&dir, "hypervisors.txt");
    let lines: Vec<&str> = list
        .lines()
        .filter(|line| line.split_whitespace().next().is_some_and(|h| held.iter().any(|x| x == h)))
        .collect();
    assert_eq!(lines.len(), hosts, "every held host is a campaign host of {}", dir.join("hypervisors.txt").display());
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("hypervisors.txt"), lines.join("\n") + "\n").unwrap();
    let workflow = &mut credentials["workflow"];
    workflow["drain"]["poll_interval_ms"] = json!(poll_ms);
    workflow["limits"]["live_migrations_global"] = json!(limit);
    workflow["limits"]["live_migrations_per_host"] = json!(2);
    let creds = work.path().join("credentials.yaml");
    std::fs::write(&creds, serde_yaml_ng::to_string(&credentials).unwrap()).unwrap();
    std::fs::set_permissions(&creds, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();

    let hvmigrate = |step: &str| {
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_hvmigrate"))
            .current_dir(work.path())
            .env("NO_COLOR", "1")
            .args(["--allow-root", "run", "--step", step, "--parallel", "--yes", "--output", "json", "-q"])
            .args(["--creds-file", creds.to_str().unwrap()])
            .output()
            .expect("the binary runs");
        let wall = started.elapsed().as_secs_f64();
        let summary: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|err| {
            panic!(
                "{step}: not JSON ({err})\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        for host in summary["hosts"].as_array().unwrap() {
            assert_eq!(host["outcome"], "succeeded", "{step}: {host:#}");
        }
        wall
    };
    hvmigrate("setup");
    hvmigrate("pre-drain");
    let wall = hvmigrate("drain");

    // Nova's own records of the run's migrations: when the first started, when the last ended.
    let migrations = nova.get("/os-migrations?migration_type=live-migration");
    let ours: Vec<&Value> = migrations["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| held.iter().any(|h| m["source_compute"] == h.as_str()) && m["status"] == "completed")
        .collect();
    let time = |m: &Value, key: &str| {
        let text = m[key].as_str().unwrap();
        text.parse::<jiff::civil::DateTime>()
            .unwrap_or_else(|err| panic!("{key} {text}: {err}"))
            .to_zoned(jiff::tz::TimeZone::UTC)
            .unwrap()
            .timestamp()
            .as_millisecond() as f64
            / 1000.0
    };
    let first = ours.iter().map(|m| time(m, "created_at")).fold(f64::MAX, f64::min);
    let last = ours.iter().map(|m| time(m, "updated_at")).fold(0.0, f64::max);

    let at_once = limit.min(2 * hosts);
    let ideal = vms.div_ceil(at_once) as f64 * MIGRATION_SECS;
    println!("real Nova drain benchmark: {hosts} hosts, {vms} running servers, fake virt driver (5 s live migrations)");
    println!(
        "  global limit {limit}, per-host limit 2, poll {poll_ms} ms; Nova's completed live migrations: {}",
        ours.len()
    );
    println!("  wall time of `run --step drain`: {wall:.2} s");
    println!("  ideal: {ideal:.2} s (= ceil({vms} / {at_once}) × {MIGRATION_SECS} s)");
    println!("  ratio: {:.3}", wall / ideal);
    println!(
        "  of which Nova's migrations span {:.2} s (ratio {:.3}); the rest is census, capacity, checks and comments",
        last - first,
        (last - first) / ideal
    );
}
