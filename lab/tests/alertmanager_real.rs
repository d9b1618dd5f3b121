//! Differential test: one list of silence operations runs against the real
//! Alertmanager 0.25 binary and against the emulator, and the answers
//! (status codes, content types and bodies, with ids and times normalised)
//! must match. Needs `/usr/bin/prometheus-alertmanager` (Debian package
//! `prometheus-alertmanager`): fails without it under CI, else skips.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hvmigrate_lab::{Lab, LabOptions};
use reqwest::{Client, Method};
use serde_json::{json, Value};

const BINARY: &str = "/usr/bin/prometheus-alertmanager";

/// The real Alertmanager, killed when dropped.
struct RealAlertmanager {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for RealAlertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_real() -> Option<RealAlertmanager> {
    if !Path::new(BINARY).exists() {
        assert!(std::env::var_os("CI").is_none(), "{BINARY} is missing (install the prometheus-alertmanager package)");
        eprintln!("skipped: {BINARY} is missing (apt-get install prometheus-alertmanager)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("am.yml");
    std::fs::write(&config, "route:\n  receiver: 'null'\nreceivers:\n  - name: 'null'\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(BINARY)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("alertmanager starts");
    let real = RealAlertmanager { child, url: format!("http://127.0.0.1:{port}"), _dir: dir };
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(response) = Client::new().get(format!("{}/-/ready", real.url)).send().await {
            if response.status().is_success() {
                return Some(real);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("alertmanager never became ready");
}

/// One answer, normalised: ids numbered by first appearance, times replaced.
#[derive(Debug, PartialEq)]
struct Answer {
    step: &'static str,
    status: u16,
    content_type: Option<String>,
    body: Value,
}

struct Runner {
    url: String,
    client: Client,
    ids: HashMap<String, String>,
    answers: Vec<Answer>,
}

fn rfc3339(minutes_from_now: i64) -> String {
    let at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(minutes_from_now * 60);
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl Runner {
    fn normalise(&mut self, value: Value) -> Value {
        match value {
            Value::String(text) if text.len() == 36 && text.chars().filter(|c| *c == '-').count() == 4 => {
                let next = format!("<id-{}>", self.ids.len() + 1);
                Value::String(self.ids.entry(text).or_insert(next).clone())
            }
            Value::String(text) if text.parse::<jiff::Timestamp>().is_ok() => Value::String("<time>".into()),
            Value::String(text) if text.starts_with("parsing silence body") => {
                Value::String("parsing silence body ...".into())
            }
            Value::Array(items) => Value::Array(items.into_iter().map(|v| self.normalise(v)).collect()),
            Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, self.normalise(v))).collect()),
            other => other,
        }
    }

    /// Sends one request and records its normalised answer; returns the raw body.
    async fn step(&mut self, step: &'static str, method: Method, path: &str, body: Option<&str>) -> Value {
        let mut request = self.client.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.to_owned());
        }
        let response = request.send().await.expect("a reply");
        let status = response.status().as_u16();
        let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
        let text = response.text().await.unwrap();
        let raw: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        let body = self.normalise(raw.clone());
        self.answers.push(Answer { step, status, content_type, body });
        raw
    }
}

fn silence(matchers: Value, starts: i64, ends: i64) -> Value {
    json!({"matchers": matchers, "startsAt": rfc3339(starts), "endsAt": rfc3339(ends), "createdBy": "hvmigrate", "comment": "MH-101"})
}

/// The scenario: every silence operation hvmigrate relies on, and the errors.
async fn run_scenario(url: &str) -> Vec<Answer> {
    let mut run = Runner { url: url.to_owned(), client: Client::new(), ids: HashMap::new(), answers: Vec::new() };
    let regex_matcher = json!([{"name": "instance", "value": "hv01.*", "isRegex": true, "isEqual": true}]);
    let host_matcher = json!([{"name": "host", "value": "hv02", "isRegex": false}]);

    let created = run
        .step(
            "create active (start in the past)",
            Method::POST,
            "/api/v2/silences",
            Some(&silence(regex_matcher.clone(), -10, 60).to_string()),
        )
        .await;
    let a = created["silenceID"].as_str().unwrap().to_owned();
    let stored = run.step("get active", Method::GET, &format!("/api/v2/silence/{a}"), None).await;
    let created = run
        .step(
            "create pending",
            Method::POST,
            "/api/v2/silences",
            Some(&silence(host_matcher.clone(), 60, 120).to_string()),
        )
        .await;
    let b = created["silenceID"].as_str().unwrap().to_owned();
    run.step("filter regex", Method::GET, "/api/v2/silences?filter=instance%3D~%22hv01.*%22", None).await;
    run.step("filter same value, other operator", Method::GET, "/api/v2/silences?filter=instance%3D%22hv01.*%22", None)
        .await;
    run.step("filter unquoted", Method::GET, "/api/v2/silences?filter=host%3Dhv02", None).await;
    run.step("two filters", Method::GET, "/api/v2/silences?filter=host%3Dhv02&filter=instance%3D~hv01.*", None).await;
    run.step("list all", Method::GET, "/api/v2/silences", None).await;

    // Only the end and comment change: in place, same id.
    let mut update = stored.clone();
    update["endsAt"] = json!(rfc3339(180));
    update["comment"] = json!("MH-101 extended");
    for key in ["status", "updatedAt"] {
        update.as_object_mut().unwrap().remove(key);
    }
    run.step("update end of active", Method::POST, "/api/v2/silences", Some(&update.to_string())).await;
    // Changed matchers: a new id, the old one expired.
    let mut changed = silence(json!([{"name": "instance", "value": "hv01", "isRegex": false, "isEqual": true}]), 0, 60);
    changed["id"] = json!(a);
    let replaced =
        run.step("update with changed matchers", Method::POST, "/api/v2/silences", Some(&changed.to_string())).await;
    let c = replaced["silenceID"].as_str().unwrap().to_owned();
    run.step("old one expired", Method::GET, &format!("/api/v2/silence/{a}"), None).await;
    let mut pending_update = silence(host_matcher.clone(), 90, 150);
    pending_update["id"] = json!(b);
    run.step("update pending in place", Method::POST, "/api/v2/silences", Some(&pending_update.to_string())).await;
    let mut unknown = silence(host_matcher.clone(), 0, 60);
    unknown["id"] = json!("5a0bd9a3-6e5c-4c3e-9f55-0e6d2f3c4b1a");
    run.step("update unknown id", Method::POST, "/api/v2/silences", Some(&unknown.to_string())).await;

    run.step("delete active", Method::DELETE, &format!("/api/v2/silence/{c}"), None).await;
    run.step("deleted is expired", Method::GET, &format!("/api/v2/silence/{c}"), None).await;
    run.step("delete pending", Method::DELETE, &format!("/api/v2/silence/{b}"), None).await;
    run.step("delete unknown", Method::DELETE, "/api/v2/silence/5a0bd9a3-6e5c-4c3e-9f55-0e6d2f3c4b1a", None).await;
    run.step("get unknown", Method::GET, "/api/v2/silence/5a0bd9a3-6e5c-4c3e-9f55-0e6d2f3c4b1a", None).await;
    run.step("get non-uuid", Method::GET, "/api/v2/silence/xyz", None).await;
    run.step("delete non-uuid", Method::DELETE, "/api/v2/silence/xyz", None).await;
    run.step("filter with braces", Method::GET, "/api/v2/silences?filter=%7Ba%3D%22b%22%7D", None).await;
    run.step("filter without operator", Method::GET, "/api/v2/silences?filter=justaname", None).await;

    let mut missing_creator = silence(host_matcher.clone(), 0, 60);
    missing_creator.as_object_mut().unwrap().remove("createdBy");
    run.step("missing createdBy", Method::POST, "/api/v2/silences", Some(&missing_creator.to_string())).await;
    let mut missing_comment = silence(host_matcher.clone(), 0, 60);
    missing_comment.as_object_mut().unwrap().remove("comment");
    run.step("missing comment", Method::POST, "/api/v2/silences", Some(&missing_comment.to_string())).await;
    let no_regex_flag = silence(json!([{"name": "host", "value": "hv02"}]), 0, 60);
    run.step("matcher without isRegex", Method::POST, "/api/v2/silences", Some(&no_regex_flag.to_string())).await;
    run.step("no matchers", Method::POST, "/api/v2/silences", Some(&silence(json!([]), 0, 60).to_string())).await;
    run.step(
        "end before start",
        Method::POST,
        "/api/v2/silences",
        Some(&silence(host_matcher.clone(), 60, 30).to_string()),
    )
    .await;
    run.step(
        "end in the past",
        Method::POST,
        "/api/v2/silences",
        Some(&silence(host_matcher.clone(), -60, -30).to_string()),
    )
    .await;
    let match_all = json!([{"name": "instance", "value": ".*", "isRegex": true}]);
    run.step(
        "only empty-matching matchers",
        Method::POST,
        "/api/v2/silences",
        Some(&silence(match_all, 0, 60).to_string()),
    )
    .await;
    let bad_name = json!([{"name": "1x", "value": "a", "isRegex": false}]);
    run.step("bad label name", Method::POST, "/api/v2/silences", Some(&silence(bad_name, 0, 60).to_string())).await;
    run.step("invalid JSON", Method::POST, "/api/v2/silences", Some("{not json")).await;
    let with_empty_comment = {
        let mut body = silence(json!([{"name": "host", "value": "hv03", "isRegex": false, "isEqual": false}]), 0, 60);
        body["comment"] = json!("");
        body
    };
    run.step(
        "empty comment, not-equal matcher",
        Method::POST,
        "/api/v2/silences",
        Some(&with_empty_comment.to_string()),
    )
    .await;
    run.step("filter not-equal", Method::GET, "/api/v2/silences?filter=host%21%3Dhv03", None).await;
    run.step("final list", Method::GET, "/api/v2/silences", None).await;
    run.step("alerts", Method::GET, "/api/v2/alerts", None).await;
    run.answers
}

#[tokio::test]
async fn emulator_answers_like_the_real_alertmanager() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(real) = start_real().await else { return };
    let expected = run_scenario(&real.url).await;
    drop(real);
    let lab = Lab::start(LabOptions::default()).await.unwrap();
    let actual = run_scenario(&lab.urls().alertmanager).await;
    let mut differences = Vec::new();
    for (want, got) in expected.iter().zip(&actual) {
        if want != got {
            differences.push(format!("step '{}':\n  real:     {want:?}\n  emulator: {got:?}", want.step));
        }
    }
    assert!(
        differences.is_empty(),
        "{} of {} steps differ:\n{}",
        differences.len(),
        expected.len(),
        differences.join("\n")
    );
}
