//! `hvmigrate serve` over a team's PostgreSQL ledger: a campaign copied
//! there from its SQLite file, served by two instances at once (as behind a
//! load balancer), answers as the SQLite file does, on every API read, on
//! `/health` and on the hosts-per-position series of `/metrics`.

mod support;

use support::serve::{add_token, lab_ledger, Served};
use support::Workspace;

/// The answers a reader sees, by path; the report over a fixed window, so
/// that it does not move with the clock between two servers.
fn reads(served: &Served, token: &str, host: &str, until: &str) -> Vec<(String, serde_json::Value)> {
    let paths = [
        "/api/v1/hosts".to_owned(),
        "/api/v1/hosts?outcome=succeeded&per_page=2&page=1".to_owned(),
        format!("/api/v1/hosts/{host}"),
        "/api/v1/runs".to_owned(),
        "/api/v1/runs/under-way".to_owned(),
        format!("/api/v1/report?until={until}"),
        "/api/v1/inventory".to_owned(),
    ];
    paths
        .into_iter()
        .map(|path| {
            let answer = served.get_with(&path, token);
            assert_eq!(answer.status, 200, "{path}: {answer:?}\n{}", served.stderr());
            (path, answer.json())
        })
        .collect()
}

/// The `hvmigrate_hosts` series of `/metrics`, sorted.
fn hosts_series(served: &Served) -> Vec<String> {
    let metrics = served.get("/metrics", &[]);
    assert_eq!(metrics.status, 200, "{metrics:?}");
    let mut series: Vec<String> =
        metrics.body.lines().filter(|line| line.starts_with("hvmigrate_hosts{")).map(str::to_owned).collect();
    series.sort();
    series
}

#[test]
fn two_serves_on_one_postgresql_ledger_answer_as_its_sqlite_original() {
    let Some(database) = support::postgres::database("serve_postgres") else { return };
    let ws = Workspace::empty();
    let state = lab_ledger(&ws, 4);
    let copied = ws.hvmigrate(&["journal", "copy", "--from", state, "--to", &database]).run();
    assert_eq!(copied.code, 0, "{}", copied.report());
    let token = add_token(&ws, "tokens", "ann", "read");
    let host = {
        let status = ws.hvmigrate(&["status", "--state", state, "--output", "json"]).expect_code(0);
        let statuses: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
        statuses[0]["host"].as_str().expect("a host in the status").to_owned()
    };
    let until = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24)).strftime("%Y-%m-%d").to_string();

    let original = ws.serve(&["--state", state, "--tokens-file", "tokens"]);
    let shared = [
        ws.serve(&["--state", &database, "--tokens-file", "tokens"]),
        ws.serve(&["--state", &database, "--tokens-file", "tokens"]),
    ];
    let expected = reads(&original, &token, &host, &until);
    assert_eq!(expected[0].1["total"], 4, "{}", expected[0].1);
    let series = hosts_series(&original);
    assert!(!series.is_empty(), "hosts per position on the SQLite original");
    for served in &shared {
        assert_eq!(served.get("/health", &[]).status, 200, "{}", served.stderr());
        for ((path, want), (_, got)) in expected.iter().zip(reads(served, &token, &host, &until)) {
            assert_eq!(&got, want, "{path} on PostgreSQL");
        }
        assert_eq!(hosts_series(served), series, "/metrics on PostgreSQL");
        // The URL names no password, and none reaches the server's log.
        assert!(!served.stderr().contains("password"), "{}", served.stderr());
    }
    for served in shared {
        let (code, log) = served.stop();
        assert_eq!(code, Some(0), "{log}");
    }
}
