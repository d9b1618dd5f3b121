//! A real Prometheus (the Debian package) scrapes `hvmigrate serve` over a
//! `lab history` ledger, and its query API returns the hosts-per-position
//! series with the ledger's numbers.

mod support;

use std::process::{Child, Command, Stdio};

use support::serve::{add_token, lab_ledger, Served};
use support::Workspace;

/// A tool a test needs: present, or skipped with a visible reason; never skipped in CI.
fn tool_or_skip(found: bool, what: &str) -> bool {
    if found {
        return true;
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{what} is needed in CI (scripts/ci-packages.txt, .ci/run)");
    eprintln!("SKIPPED: {what} is not installed here");
    false
}

/// Prometheus, killed when dropped.
struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `GET path` on a plain HTTP server of 127.0.0.1 (Prometheus), through the support client.
fn query(prometheus: &Served, promql: &str) -> serde_json::Value {
    try_query(prometheus, promql).unwrap_or_else(|| panic!("Prometheus does not answer {promql}"))
}

/// `None` while Prometheus starts (503).
fn try_query(prometheus: &Served, promql: &str) -> Option<serde_json::Value> {
    let encoded: String = url::form_urlencoded::byte_serialize(promql.as_bytes()).collect();
    let answer = prometheus.get(&format!("/api/v1/query?query={encoded}"), &[]);
    (answer.status == 200).then(|| answer.json())
}

#[test]
fn prometheus_scrapes_serve_and_answers_the_hosts_per_position() {
    let found = Command::new("prometheus").arg("--version").output().is_ok_and(|out| out.status.success());
    if !tool_or_skip(found, "prometheus (Debian package)") {
        return;
    }
    let ws = Workspace::empty();
    let state = lab_ledger(&ws, 6);
    let token = add_token(&ws, "tokens", "prometheus", "read");
    std::fs::write(ws.file("scrape-token"), &token).unwrap();
    // Protected, as a team would run it: Prometheus sends its read token.
    let served = ws.serve(&["--state", state, "--tokens-file", "tokens", "--protect-metrics"]);
    let expected = served.get_with("/api/v1/hosts?per_page=1000", &token).json();

    let port = free_port();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: hvmigrate\n    \
         authorization:\n      credentials_file: {}\n    static_configs:\n      - targets: ['{}']\n",
        ws.file("scrape-token").display(),
        served.address
    );
    std::fs::write(ws.file("prometheus.yml"), config).unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", ws.file("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", ws.file("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(ws.file("prometheus.log")).unwrap()))
        .spawn()
        .expect("prometheus starts");
    let _prometheus = Prometheus(child);
    let api = Served::at(&format!("127.0.0.1:{port}"));

    // Until the first scrape is in (Prometheus scrapes every second once ready).
    let mut result = serde_json::Value::Null;
    for _ in 0..120 {
        std::thread::sleep(std::time::Duration::from_millis(500));
        if !api.answers() {
            continue;
        }
        let Some(answer) = try_query(&api, "hvmigrate_hosts") else { continue };
        result = answer;
        if result["data"]["result"].as_array().is_some_and(|series| !series.is_empty()) {
            break;
        }
    }
    let series = result["data"]["result"].as_array().cloned().unwrap_or_default();
    let log = std::fs::read_to_string(ws.file("prometheus.log")).unwrap_or_default();
    assert!(
        !series.is_empty(),
        "no hvmigrate_hosts series: {result}\nprometheus log:\n{log}\nserve:\n{}",
        served.stderr()
    );

    // The same hosts per position as the API says.
    let mut from_api = std::collections::BTreeMap::<(String, String), u64>::new();
    for host in expected["hosts"].as_array().unwrap() {
        let position = host["position"].as_str().unwrap_or("none").to_owned();
        *from_api.entry((position, host["outcome"].as_str().unwrap().to_owned())).or_default() += 1;
    }
    let mut from_prometheus = std::collections::BTreeMap::new();
    for one in &series {
        let labels = &one["metric"];
        assert_eq!(labels["job"], "hvmigrate");
        let key = (labels["position"].as_str().unwrap().to_owned(), labels["outcome"].as_str().unwrap().to_owned());
        let value: u64 = one["value"][1].as_str().unwrap().parse().unwrap();
        from_prometheus.insert(key, value);
    }
    assert_eq!(from_prometheus, from_api, "{result}");
    let total = query(&api, "sum(hvmigrate_hosts)");
    assert_eq!(total["data"]["result"][0]["value"][1], "6", "{total}");
    // The target is up, and the histograms came through.
    assert_eq!(query(&api, "up{job=\"hvmigrate\"}")["data"]["result"][0]["value"][1], "1");
    let steps = query(&api, "hvmigrate_step_duration_seconds_count");
    assert!(steps["data"]["result"].as_array().is_some_and(|series| !series.is_empty()), "{steps}");
}
