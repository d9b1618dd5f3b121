//! The Keystone emulator answers as Keystone v3 does: discovery, password and
//! application-credential tokens, the catalog, validation and error bodies.

use hvmigrate_lab::{Lab, LabOptions};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

async fn lab() -> Lab {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Lab::start(LabOptions::default()).await.expect("lab starts")
}

fn password_body(lab: &Lab, password: &str) -> Value {
    let secrets = lab.secrets();
    json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {"name": secrets.openstack_username, "domain": {"name": "Default"}, "password": password}}},
        "scope": {"project": {"name": secrets.openstack_project, "domain": {"name": "Default"}}},
    }})
}

async fn post_tokens(lab: &Lab, body: &Value) -> reqwest::Response {
    Client::new().post(format!("{}/auth/tokens", lab.urls().keystone)).json(body).send().await.unwrap()
}

#[tokio::test]
async fn version_documents() {
    let lab = lab().await;
    let root = lab.urls().keystone.trim_end_matches("/v3").to_owned();
    let response = Client::new().get(format!("{root}/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::MULTIPLE_CHOICES);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["versions"]["values"][0]["id"], "v3.14");
    let response = Client::new().get(&lab.urls().keystone).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["version"]["status"], "stable");
    assert_eq!(body["version"]["links"][0]["href"], format!("{}/", lab.urls().keystone));
}

#[tokio::test]
async fn password_token_is_201_with_subject_token_and_catalog() {
    let lab = lab().await;
    let response = post_tokens(&lab, &password_body(&lab, &lab.secrets().openstack_password)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let token = response.headers()["x-subject-token"].to_str().unwrap().to_owned();
    assert!(token.starts_with("gAAAAAB"));
    let body: Value = response.json().await.unwrap();
    let token_body = &body["token"];
    assert_eq!(token_body["methods"], json!(["password"]));
    assert_eq!(token_body["project"]["id"], lab.secrets().openstack_project_id);
    assert_eq!(token_body["user"]["domain"]["id"], "default");
    let expires: jiff::Timestamp = token_body["expires_at"].as_str().unwrap().parse().unwrap();
    let ahead = expires.duration_since(jiff::Timestamp::now()).as_secs();
    assert!((3500..=3600).contains(&ahead), "about an hour ahead: {ahead}");
    assert!(token_body["issued_at"].as_str().unwrap().ends_with('Z'));
    let compute = token_body["catalog"].as_array().unwrap().iter().find(|s| s["type"] == "compute").unwrap();
    let interfaces: Vec<&str> =
        compute["endpoints"].as_array().unwrap().iter().map(|e| e["interface"].as_str().unwrap()).collect();
    assert_eq!(interfaces, ["public", "internal", "admin"]);
    assert!(compute["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["url"] == lab.urls().nova && e["region_id"] == "RegionOne"));
    assert!(token_body["catalog"].as_array().unwrap().iter().any(|s| s["type"] == "identity"));

    // The token validates, and Nova accepts it.
    let response = Client::new()
        .get(format!("{}/auth/tokens", lab.urls().keystone))
        .header("x-auth-token", &token)
        .header("x-subject-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let nova = Client::new()
        .get(format!("{}/os-services", lab.urls().nova))
        .header("x-auth-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(nova.status(), StatusCode::OK);
}

#[tokio::test]
async fn ids_may_replace_names_and_nocatalog_drops_the_catalog() {
    let lab = lab().await;
    let secrets = lab.secrets();
    let token =
        post_tokens(&lab, &password_body(&lab, &secrets.openstack_password)).await.json::<Value>().await.unwrap();
    let user_id = token["token"]["user"]["id"].as_str().unwrap().to_owned();
    let body = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {"id": user_id, "password": secrets.openstack_password}}},
        "scope": {"project": {"id": secrets.openstack_project_id}},
    }});
    let response =
        Client::new().post(format!("{}/auth/tokens?nocatalog", lab.urls().keystone)).json(&body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert!(body["token"].get("catalog").is_none());
}

#[tokio::test]
async fn application_credential_by_id_and_scope_refused() {
    let lab = lab().await;
    let secrets = lab.secrets();
    let mut body = json!({"auth": {"identity": {"methods": ["application_credential"], "application_credential": {
        "id": secrets.application_credential_id, "secret": secrets.application_credential_secret}}}});
    let response = post_tokens(&lab, &body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let token: Value = response.json().await.unwrap();
    assert_eq!(token["token"]["methods"], json!(["application_credential"]));
    assert_eq!(token["token"]["application_credential"]["id"], secrets.application_credential_id);

    body["auth"]["scope"] = json!({"project": {"id": secrets.openstack_project_id}});
    let response = post_tokens(&lab, &body).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_password_is_401_with_www_authenticate_and_bad_json_is_400() {
    let lab = lab().await;
    let response = post_tokens(&lab, &password_body(&lab, "wrong")).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers()["www-authenticate"].to_str().unwrap().starts_with("Keystone uri=\"http://127.0.0.1:"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": {"code": 401, "message": "The request you have made requires authentication.", "title": "Unauthorized"}})
    );
    let response = Client::new()
        .post(format!("{}/auth/tokens", lab.urls().keystone))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["title"], "Bad Request");
}

#[tokio::test]
async fn nova_refuses_unknown_and_expired_tokens() {
    let lab = lab().await;
    let nova = format!("{}/os-services", lab.urls().nova);
    let response = Client::new().get(&nova).header("x-auth-token", "nope").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    lab.world().lock().token_lifetime_secs = 0;
    let response = post_tokens(&lab, &password_body(&lab, &lab.secrets().openstack_password)).await;
    let token = response.headers()["x-subject-token"].to_str().unwrap().to_owned();
    let response = Client::new().get(&nova).header("x-auth-token", token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}
