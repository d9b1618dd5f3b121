//! The NetBox emulator answers as NetBox does: filters, pagination links,
//! PATCH semantics, DRF error shapes, auth, slashes, version headers and
//! shapes, and faults injected through it.

use hvmigrate_lab::{Fault, Lab, LabOptions, Service, WorldOptions};
use reqwest::{Client, Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};

async fn lab() -> Lab {
    lab_with(WorldOptions::default()).await
}

async fn lab_with(world: WorldOptions) -> Lab {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Lab::start(LabOptions { world, ..LabOptions::default() }).await.expect("lab starts")
}

fn client() -> Client {
    Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn request(lab: &Lab, method: Method, path: &str) -> RequestBuilder {
    client()
        .request(method, format!("{}{path}", lab.urls().netbox))
        .header("authorization", format!("Token {}", lab.secrets().netbox_token))
}

async fn json_of(builder: RequestBuilder) -> (StatusCode, Value) {
    let response = builder.send().await.expect("a reply");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// An active device with its out-of-band IP set.
fn a_device(lab: &Lab) -> (u64, String) {
    let world = lab.world().lock();
    let device = world.netbox.devices.iter().find(|d| d.oob_ip.is_some() && d.status == "active").unwrap();
    (device.id, device.name.clone())
}

#[tokio::test]
async fn auth_is_a_token_and_failures_are_403_with_detail() {
    let lab = lab().await;
    let url = format!("{}/api/dcim/devices/", lab.urls().netbox);
    let none = client().get(&url).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::FORBIDDEN);
    assert_eq!(none.headers()["api-version"], "4.6", "every response carries API-Version");
    assert_eq!(none.json::<Value>().await.unwrap(), json!({"detail": "Authentication credentials were not provided."}));
    let bad = client().get(&url).header("authorization", "Token 0000").send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::FORBIDDEN);
    assert_eq!(bad.json::<Value>().await.unwrap(), json!({"detail": "Invalid v1 token"}));
    let (status, root) = json_of(request(&lab, Method::GET, "/api/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(root["dcim"].as_str().unwrap().ends_with("/api/dcim/"));
    let (_, state) = json_of(request(&lab, Method::GET, "/api/status/")).await;
    assert_eq!(state["netbox-version"], "4.6.0");
}

#[tokio::test]
async fn a_missing_trailing_slash_redirects() {
    let lab = lab().await;
    let response = request(&lab, Method::GET, "/api/dcim/devices?name=x").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(response.headers()["location"], "/api/dcim/devices/?name=x");
    let unknown = request(&lab, Method::GET, "/api/dcim/cables/").send().await.unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn devices_by_exact_or_insensitive_name_with_nested_objects() {
    let lab = lab().await;
    let (id, name) = a_device(&lab);
    let (status, page) = json_of(request(&lab, Method::GET, &format!("/api/dcim/devices/?name={name}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["count"], 1);
    assert_eq!(page["next"], Value::Null);
    let device = &page["results"][0];
    assert_eq!(device["id"], id);
    assert_eq!(device["url"], format!("{}/api/dcim/devices/{id}/", lab.urls().netbox));
    assert_eq!(device["status"], json!({"value": "active", "label": "Active"}));
    assert_eq!(device["role"]["slug"], "openstack-prod-kolla-compute");
    assert!(device.get("device_role").is_none(), "4.x has only role");
    assert!(device["device_type"]["manufacturer"]["name"].is_string());
    assert_eq!(device["site"]["slug"], "lab");
    assert_eq!(device["oob_ip"]["family"], json!({"value": 4, "label": "IPv4"}));
    assert!(device["oob_ip"]["address"].as_str().unwrap().contains('/'));
    assert_eq!(device["custom_fields"], json!({"maintenance_ticket": null, "migration_state": null}));

    let upper = name.to_uppercase();
    let (_, exact) = json_of(request(&lab, Method::GET, &format!("/api/dcim/devices/?name={upper}"))).await;
    assert_eq!(exact["count"], 0, "name is case-sensitive");
    let (_, insensitive) = json_of(request(&lab, Method::GET, &format!("/api/dcim/devices/?name__ie={upper}"))).await;
    assert_eq!(insensitive["count"], 1);
    let (_, ignored) =
        json_of(request(&lab, Method::GET, &format!("/api/dcim/devices/?name={name}&no_such_filter=1"))).await;
    assert_eq!(ignored["count"], 1, "unknown parameters are ignored");

    let (_, brief) = json_of(request(&lab, Method::GET, &format!("/api/dcim/devices/?name={name}&brief=1"))).await;
    let mut brief_keys: Vec<&String> = brief["results"][0].as_object().unwrap().keys().collect();
    brief_keys.sort();
    assert_eq!(brief_keys, ["description", "display", "id", "name", "url"], "brief=1 gives the brief shape");

    let (status, detail) = json_of(request(&lab, Method::GET, &format!("/api/dcim/devices/{id}/"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["name"], name.as_str());
    let (status, missing) = json_of(request(&lab, Method::GET, "/api/dcim/devices/999999/")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing, json!({"detail": "No Device matches the given query."}));
}

#[tokio::test]
async fn filters_on_role_status_and_id_and_bad_choices_are_400() {
    let lab = lab().await;
    let total = lab.world().lock().netbox.devices.len();
    let (_, by_role) =
        json_of(request(&lab, Method::GET, "/api/dcim/devices/?role=openstack-prod-kolla-compute&limit=0")).await;
    assert_eq!(by_role["count"], total);
    let (_, by_role_id) = json_of(request(&lab, Method::GET, "/api/dcim/devices/?role_id=2")).await;
    assert_eq!(by_role_id["count"], 0);
    let offline = lab.world().lock().netbox.devices.iter().filter(|d| d.status == "offline").count();
    let (_, by_status) = json_of(request(&lab, Method::GET, "/api/dcim/devices/?status=offline")).await;
    assert_eq!(by_status["count"], offline);
    let (id, _) = a_device(&lab);
    let (_, by_id) = json_of(request(&lab, Method::GET, &format!("/api/dcim/devices/?id={id}"))).await;
    assert_eq!(by_id["count"], 1);

    let (status, body) = json_of(request(&lab, Method::GET, "/api/dcim/devices/?role=nope")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({"role": ["Select a valid choice. nope is not one of the available choices."]}));
    let (status, body) = json_of(request(&lab, Method::GET, "/api/dcim/devices/?status=bogus")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["status"][0].as_str().unwrap().contains("bogus"));
}

#[tokio::test]
async fn offset_pagination_with_absolute_links() {
    let lab = lab_with(WorldOptions { hosts: 80, ..WorldOptions::default() }).await;
    let total = lab.world().lock().netbox.devices.len();
    assert!(total > 50);
    let base = &lab.urls().netbox;
    let (_, first) = json_of(request(&lab, Method::GET, "/api/dcim/devices/?role=openstack-prod-kolla-compute")).await;
    assert_eq!(first["count"], total);
    assert_eq!(first["results"].as_array().unwrap().len(), 50, "default page of 50");
    assert_eq!(
        first["next"],
        format!("{base}/api/dcim/devices/?limit=50&offset=50&role=openstack-prod-kolla-compute"),
        "absolute, other parameters kept"
    );
    assert_eq!(first["previous"], Value::Null);
    let next = first["next"].as_str().unwrap().strip_prefix(base.as_str()).unwrap().to_owned();
    let (_, second) = json_of(request(&lab, Method::GET, &next)).await;
    assert_eq!(second["results"].as_array().unwrap().len(), total - 50);
    assert_eq!(second["next"], Value::Null);
    assert_eq!(second["previous"], format!("{base}/api/dcim/devices/?limit=50&role=openstack-prod-kolla-compute"));

    let (_, all) = json_of(request(&lab, Method::GET, "/api/dcim/devices/?limit=0")).await;
    assert_eq!(all["results"].as_array().unwrap().len(), total, "limit=0 gives up to 1000");
    let (_, middle) = json_of(request(&lab, Method::GET, "/api/dcim/devices/?limit=10&offset=30")).await;
    assert_eq!(middle["previous"], format!("{base}/api/dcim/devices/?limit=10&offset=20"));
    assert_eq!(middle["next"], format!("{base}/api/dcim/devices/?limit=10&offset=40"));
    let (_, bad_limit) = json_of(request(&lab, Method::GET, "/api/dcim/devices/?limit=-3")).await;
    assert_eq!(bad_limit["results"].as_array().unwrap().len(), 50, "a negative limit is ignored");
}

#[tokio::test]
async fn cursor_pagination_by_start_on_4_6() {
    let lab = lab_with(WorldOptions { hosts: 30, ..WorldOptions::default() }).await;
    let total = lab.world().lock().netbox.devices.len();
    let base = &lab.urls().netbox;
    let mut path = "/api/dcim/devices/?start=0&limit=10".to_owned();
    let mut seen = 0;
    loop {
        let (status, page) = json_of(request(&lab, Method::GET, &path)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(page["count"], Value::Null);
        assert_eq!(page["previous"], Value::Null);
        seen += page["results"].as_array().unwrap().len();
        match page["next"].as_str() {
            Some(next) => {
                assert!(next.contains("start="), "{next}");
                path = next.strip_prefix(base.as_str()).unwrap().to_owned();
            }
            None => break,
        }
    }
    assert_eq!(seen, total);
    let (status, _) = json_of(request(&lab, Method::GET, "/api/dcim/devices/?start=0&offset=5")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn patch_is_partial_and_merges_custom_fields() {
    let lab = lab().await;
    let (id, name) = a_device(&lab);
    let path = format!("/api/dcim/devices/{id}/");
    let (status, device) = json_of(request(&lab, Method::PATCH, &path).json(&json!({"status": "offline"}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(device["status"]["value"], "offline");
    assert_eq!(device["name"], name.as_str());

    let (_, device) =
        json_of(request(&lab, Method::PATCH, &path).json(&json!({"custom_fields": {"maintenance_ticket": "MH-101"}})))
            .await;
    assert_eq!(device["custom_fields"], json!({"maintenance_ticket": "MH-101", "migration_state": null}));
    let (_, device) =
        json_of(request(&lab, Method::PATCH, &path).json(&json!({"custom_fields": {"migration_state": "drained"}})))
            .await;
    assert_eq!(device["custom_fields"]["maintenance_ticket"], "MH-101", "merged, not replaced");

    let (_, device) = json_of(request(&lab, Method::PATCH, &path).json(&json!({"role": 2}))).await;
    assert_eq!(device["role"]["id"], 2);
    let (_, device) =
        json_of(request(&lab, Method::PATCH, &path).json(&json!({"role": {"slug": "openstack-prod-kolla-compute"}})))
            .await;
    assert_eq!(device["role"]["id"], 1);
    assert_eq!(lab.world().lock().netbox_device(id).unwrap().status, "offline");

    for (body, field, fragment) in [
        (json!({"status": "bogus"}), "status", "\"bogus\" is not a valid choice."),
        (json!({"role": 99}), "role", "numeric ID: 99"),
        (json!({"role": {"slug": "nope"}}), "role", "{'slug': 'nope'}"),
        (json!({"custom_fields": {"nope": 1}}), "custom_fields", "Custom field 'nope' does not exist"),
    ] {
        let (status, errors) = json_of(request(&lab, Method::PATCH, &path).json(&body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(errors[field][0].as_str().unwrap().contains(fragment), "{body}: {errors}");
    }
    let unchanged = lab.world().lock().netbox_device(id).unwrap().custom_fields.clone();
    assert!(!unchanged.contains_key("nope"), "a refused PATCH changes nothing");

    let plain = request(&lab, Method::PATCH, &path).body("{}").send().await.unwrap();
    assert_eq!(plain.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn roles_types_interfaces_and_ip_addresses() {
    let lab = lab().await;
    let (_, roles) =
        json_of(request(&lab, Method::GET, "/api/dcim/device-roles/?slug=openstack-prod-maintenance")).await;
    assert_eq!(roles["count"], 1);
    assert_eq!(roles["results"][0]["name"], "Openstack Prod Maintenance");
    let (_, none) = json_of(request(&lab, Method::GET, "/api/dcim/device-roles/?slug=nope")).await;
    assert_eq!(none["count"], 0, "an unknown slug on the role list is just no match");
    let (_, by_name) =
        json_of(request(&lab, Method::GET, "/api/dcim/device-roles/?name=Openstack%20Prod%20Kolla_Compute")).await;
    assert_eq!(by_name["results"][0]["id"], 1);
    let (_, types) = json_of(request(&lab, Method::GET, "/api/dcim/device-types/")).await;
    assert!(types["count"].as_u64().unwrap() >= 1);
    assert!(types["results"][0]["manufacturer"]["slug"].is_string());

    let (id, _) = a_device(&lab);
    let (_, interfaces) =
        json_of(request(&lab, Method::GET, &format!("/api/dcim/interfaces/?device_id={id}&name=bmc0"))).await;
    assert_eq!(interfaces["count"], 1);
    let interface = &interfaces["results"][0];
    assert_eq!(interface["device"]["id"], id);
    let interface_id = interface["id"].as_u64().unwrap();
    let (_, ips) =
        json_of(request(&lab, Method::GET, &format!("/api/ipam/ip-addresses/?interface_id={interface_id}"))).await;
    assert_eq!(ips["count"], 1);
    assert_eq!(ips["results"][0]["assigned_object_id"], interface_id);
    assert_eq!(ips["results"][0]["family"]["value"], 4);
    let (_, by_device) = json_of(request(&lab, Method::GET, &format!("/api/ipam/ip-addresses/?device_id={id}"))).await;
    assert_eq!(by_device["count"], 1);
    let (status, body) = json_of(request(&lab, Method::GET, "/api/dcim/interfaces/?device_id=999999")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["device_id"][0].as_str().unwrap().contains("999999"));
}

#[tokio::test]
async fn version_3_serves_role_and_device_role_and_integer_families() {
    let lab = lab().await;
    lab.world().lock().netbox.version = "3.7".into();
    let (id, _) = a_device(&lab);
    let response = request(&lab, Method::GET, &format!("/api/dcim/devices/{id}/")).send().await.unwrap();
    assert_eq!(response.headers()["api-version"], "3.7");
    let device: Value = response.json().await.unwrap();
    assert_eq!(device["role"], device["device_role"]);
    assert!(device["role"].get("description").is_none());
    assert_eq!(device["oob_ip"]["family"], 4);
    assert!(device.get("display_url").is_none());
    let (_, by_old_filter) =
        json_of(request(&lab, Method::GET, "/api/dcim/devices/?device_role=openstack-prod-kolla-compute")).await;
    assert!(by_old_filter["count"].as_u64().unwrap() > 0);
    let (_, missing) = json_of(request(&lab, Method::GET, "/api/dcim/devices/999999/")).await;
    assert_eq!(missing, json!({"detail": "Not found."}));
}

#[tokio::test]
async fn injected_faults_answer_in_netbox_shapes() {
    let lab = lab().await;
    lab.faults().push(Service::NetBox, Fault::Status(503));
    let (status, body) = json_of(request(&lab, Method::GET, "/api/dcim/devices/")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["detail"].is_string());
    lab.faults().push(Service::NetBox, Fault::RateLimited { retry_after_secs: 2 });
    let response = request(&lab, Method::GET, "/api/dcim/devices/").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "2");

    let (id, _) = a_device(&lab);
    lab.faults().push(Service::NetBox, Fault::DropAfterCommit);
    let reply = request(&lab, Method::PATCH, &format!("/api/dcim/devices/{id}/"))
        .json(&json!({"status": "planned"}))
        .send()
        .await;
    let lost = match reply {
        Err(_) => true,
        Ok(response) => response.text().await.is_err(),
    };
    assert!(lost);
    assert_eq!(lab.world().lock().netbox_device(id).unwrap().status, "planned", "committed");
}
