//! The SCC emulator: the virtualization-hosts upload (gzip or plain JSON),
//! Basic auth with its challenge, 422 for a body without hosts, and the
//! paged repositories list of the credentials check.

use std::io::Write;

use hvmigrate_lab::{Fault, Lab, LabOptions, Service};
use reqwest::{Client, RequestBuilder, StatusCode};
use serde_json::{json, Value};

async fn lab() -> Lab {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Lab::start(LabOptions::default()).await.expect("lab starts")
}

fn upload(lab: &Lab) -> RequestBuilder {
    let secrets = lab.secrets();
    Client::new()
        .put(format!("{}/connect/organizations/virtualization_hosts", lab.urls().scc))
        .basic_auth(&secrets.scc_username, Some(&secrets.scc_password))
        .header("content-type", "application/json")
}

fn hosts_body(names: &[&str]) -> Value {
    let hosts: Vec<Value> = names
        .iter()
        .map(|name| {
            json!({"identifier": format!("{name}-uuid"), "group_name": "lab",
                   "properties": {"name": name, "arch": "x86_64", "cores": 32, "sockets": 2, "threads": 64,
                                  "ram_mb": 515000, "type": "kvm"},
                   "systems": [{"uuid": "8f3c3f36-2d9b-4a53-9d36-6b8d2f0f6a11",
                                "properties": {"vm_name": "vm1", "vm_state": "running"}}]})
        })
        .collect();
    json!({"virtualization_hosts": hosts})
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test]
async fn gzip_and_plain_uploads_are_stored_by_identifier() {
    let lab = lab().await;
    let compressed = gzip(&serde_json::to_vec(&hosts_body(&["hv001", "hv002"])).unwrap());
    let response = upload(&lab).header("content-encoding", "gzip").body(compressed).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let plain = upload(&lab).json(&hosts_body(&["hv002"])).send().await.unwrap();
    assert_eq!(plain.status(), StatusCode::OK);
    let world = lab.world().lock();
    assert_eq!(world.scc.uploads, 2);
    assert_eq!(world.scc.hosts.len(), 2, "the second upload of hv002 replaced the first");
    assert_eq!(world.scc.hosts["hv001-uuid"]["properties"]["cores"], 32);
}

#[tokio::test]
async fn bad_credentials_get_a_basic_challenge() {
    let lab = lab().await;
    let url = format!("{}/connect/organizations/virtualization_hosts", lab.urls().scc);
    for builder in
        [Client::new().put(&url), Client::new().put(&url).basic_auth(&lab.secrets().scc_username, Some("wrong"))]
    {
        let response = builder.json(&hosts_body(&["hv001"])).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let challenge = response.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(challenge.starts_with("Basic realm=\""), "{challenge}");
    }
    assert_eq!(lab.world().lock().scc.uploads, 0);
}

#[tokio::test]
async fn a_body_without_hosts_is_422_and_changes_nothing() {
    let lab = lab().await;
    let response = upload(&lab).json(&json!({"hosts": []})).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("virtualization_hosts"));
    let no_identifier =
        upload(&lab).json(&json!({"virtualization_hosts": [{"group_name": "x"}]})).send().await.unwrap();
    assert_eq!(no_identifier.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let not_gzip = upload(&lab).header("content-encoding", "gzip").body("{}").send().await.unwrap();
    assert_eq!(not_gzip.status(), StatusCode::BAD_REQUEST);
    assert_eq!(lab.world().lock().scc.uploads, 0);
}

#[tokio::test]
async fn repositories_are_paged_with_link_per_page_and_total() {
    let lab = lab().await;
    let secrets = lab.secrets();
    let mut url = format!("{}/connect/organizations/repositories", lab.urls().scc);
    let mut names = Vec::new();
    loop {
        let response = Client::new()
            .get(&url)
            .basic_auth(&secrets.scc_username, Some(&secrets.scc_password))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["total"], "5");
        assert_eq!(response.headers()["per-page"], "2");
        let link = response.headers().get("link").map(|l| l.to_str().unwrap().to_owned());
        let page: Vec<Value> = response.json().await.unwrap();
        names.extend(page.iter().map(|repo| repo["name"].as_str().unwrap().to_owned()));
        let next = link.as_deref().and_then(|link| {
            link.split(", ")
                .find(|part| part.ends_with("rel=\"next\""))
                .map(|part| part.trim_start_matches('<').split('>').next().unwrap().to_owned())
        });
        match next {
            Some(next) => url = next,
            None => break,
        }
    }
    assert_eq!(names.len(), 5);
    let anonymous =
        Client::new().get(format!("{}/connect/organizations/repositories", lab.urls().scc)).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn rate_limits_carry_retry_after_and_a_dropped_reply_still_commits() {
    let lab = lab().await;
    lab.faults().push(Service::Scc, Fault::RateLimited { retry_after_secs: 1 });
    let limited = upload(&lab).json(&hosts_body(&["hv001"])).send().await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers()["retry-after"], "1");
    assert_eq!(lab.world().lock().scc.uploads, 0);

    lab.faults().push(Service::Scc, Fault::DropAfterCommit);
    let reply = upload(&lab).json(&hosts_body(&["hv001"])).send().await;
    let lost = match reply {
        Err(_) => true,
        Ok(response) => response.bytes().await.is_err(),
    };
    assert!(lost);
    assert_eq!(lab.world().lock().scc.uploads, 1);
}
