//! `hvmigrate check-config --reach` and `comment`, through the real binary,
//! against a small Jira on loopback and a NetBox that is not there.

mod support;

use axum::routing::{get, post};
use axum::Json;
use serde_json::{json, Value};

use support::Workspace;

/// Serves a Jira that accepts any comment, on a background runtime.
fn start_jira() -> (tokio::runtime::Runtime, String) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let url = runtime.block_on(async {
        let app = axum::Router::new()
            .route("/rest/api/2/myself", get(|| async { Json(json!({"name": "ops", "displayName": "Ops"})) }))
            .route("/rest/api/2/serverInfo", get(|| async { Json(json!({"version": "9.12.2"})) }))
            .route(
                "/rest/api/2/issue/{key}/comment",
                get(|| async { Json(json!({"startAt": 0, "total": 0, "comments": []})) }).post(
                    |Json(body): Json<Value>| async move {
                        (axum::http::StatusCode::CREATED, Json(json!({"id": "1", "body": body["body"]})))
                    },
                ),
            )
            .route("/unused", post(|| async {}));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    });
    (runtime, url)
}

fn workspace(jira_url: &str) -> Workspace {
    let ws = Workspace::empty();
    ws.write("hypervisors.txt", "hv01.example.org MH-1\n");
    ws.write_secret(
        "credentials.yaml",
        format!(
            "jira:\n  url: {jira_url}\n  allow_insecure_http: true\n  username: ops\n  api_token: tok-secret\n  project: MH\n\
             netbox:\n  url: http://127.0.0.1:9\n  allow_insecure_http: true\n  token: nb-secret\n"
        ),
    );
    ws
}

#[test]
fn reach_reports_each_service_and_exits_2_when_one_fails() {
    let (_runtime, url) = start_jira();
    let ws = workspace(&url);
    let out = ws.hvmigrate(&["check-config", "--reach"]).expect_code(2);
    out.stdout_has("jira").stdout_has("reachable").stdout_has("9.12.2").stdout_has("UNREACHABLE");
    let shown = format!("{}{}{}", out.stdout, out.stderr, ws.read_all("logs"));
    assert!(!shown.contains("tok-secret") && !shown.contains("nb-secret"), "{}", out.report());

    let out = ws.hvmigrate(&["check-config", "--reach", "--output", "json"]).expect_code(2);
    out.stdout_has("\"service\": \"netbox\"").stdout_has("\"ok\": false");
}

#[test]
fn comment_needs_text_and_posts() {
    let (_runtime, url) = start_jira();
    let ws = workspace(&url);
    ws.hvmigrate(&["comment"]).expect_code(2);
    ws.hvmigrate(&["comment", "--text", "hello"]).expect_code(0).stdout_has("posted");
}
