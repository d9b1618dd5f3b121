//! The Alertmanager emulator's own checks; `alertmanager_real.rs` compares
//! it with the real binary.

use hvmigrate_lab::{Lab, LabOptions};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

async fn lab() -> Lab {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Lab::start(LabOptions::default()).await.expect("lab starts")
}

fn at(minutes: i64) -> String {
    (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(minutes * 60)).strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

async fn create(lab: &Lab, value: &str, starts: i64, ends: i64) -> String {
    let body = json!({"matchers": [{"name": "instance", "value": value, "isRegex": false}], "startsAt": at(starts),
                      "endsAt": at(ends), "createdBy": "t", "comment": ""});
    let response =
        Client::new().post(format!("{}/api/v2/silences", lab.urls().alertmanager)).json(&body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json::<Value>().await.unwrap()["silenceID"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn listing_order_states_and_time_format() {
    let lab = lab().await;
    let url = &lab.urls().alertmanager;
    let late_end = create(&lab, "a", 0, 120).await;
    let early_end = create(&lab, "b", 0, 60).await;
    let late_start = create(&lab, "c", 90, 120).await;
    let early_start = create(&lab, "d", 30, 120).await;
    let expired = create(&lab, "e", 0, 60).await;
    let response = Client::new().delete(format!("{url}/api/v2/silence/{expired}")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = Client::new().get(format!("{url}/api/v2/silences")).send().await.unwrap();
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["vary"], "Origin");
    let list: Vec<Value> = response.json().await.unwrap();
    let ids: Vec<&str> = list.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [early_end.as_str(), &late_end, &early_start, &late_start, &expired]);
    let states: Vec<&str> = list.iter().map(|s| s["status"]["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["active", "active", "pending", "pending", "expired"]);
    let ends_at = list[0]["endsAt"].as_str().unwrap();
    assert!(ends_at.ends_with(".000Z") && ends_at.len() == 24, "RFC 3339 UTC with milliseconds: {ends_at}");
    assert_eq!(lab.world().lock().silences.len(), 5);
}

#[tokio::test]
async fn health_status_and_alerts() {
    let lab = lab().await;
    let url = &lab.urls().alertmanager;
    for path in ["/-/ready", "/-/healthy"] {
        assert_eq!(Client::new().get(format!("{url}{path}")).send().await.unwrap().status(), StatusCode::OK);
    }
    let status: Value = Client::new().get(format!("{url}/api/v2/status")).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["versionInfo"]["version"], "0.25.0");
    assert_eq!(status["cluster"]["status"], "disabled");
    let alerts: Value = Client::new().get(format!("{url}/api/v2/alerts")).send().await.unwrap().json().await.unwrap();
    assert_eq!(alerts, json!([]));
}

#[tokio::test]
async fn unknown_ids_and_bad_filters() {
    let lab = lab().await;
    let url = &lab.urls().alertmanager;
    let unknown = "5a0bd9a3-6e5c-4c3e-9f55-0e6d2f3c4b1a";
    let response = Client::new().get(format!("{url}/api/v2/silence/{unknown}")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(response.text().await.unwrap(), "");
    let response = Client::new().delete(format!("{url}/api/v2/silence/{unknown}")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR, "as 0.25 answers");
    assert_eq!(response.json::<Value>().await.unwrap(), json!("silence not found"));
    let response = Client::new().get(format!("{url}/api/v2/silence/xyz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"code": 601, "message": "silenceID in path must be of type uuid: \"xyz\""})
    );
    let response = Client::new().get(format!("{url}/api/v2/silences?filter=%7Ba%3D%22b%22%7D")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response.json::<Value>().await.unwrap(), json!("bad matcher format: {a=\"b\"}"));
}
