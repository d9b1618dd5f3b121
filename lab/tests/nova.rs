//! The Nova emulator answers as Nova does: version documents, microversions,
//! services, servers, migrations progressing over simulated time,
//! hypervisors, aggregates, fault bodies, and faults injected through it.

use std::time::Duration;

use hvmigrate_lab::{Fault, Lab, LabOptions, Service};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

struct Nova {
    lab: Lab,
    token: String,
    client: Client,
}

async fn nova() -> Nova {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let lab = Lab::start(LabOptions::default()).await.expect("lab starts");
    let secrets = lab.secrets();
    let body = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {"name": secrets.openstack_username, "domain": {"id": "default"}, "password": secrets.openstack_password}}},
        "scope": {"project": {"name": secrets.openstack_project, "domain": {"id": "default"}}},
    }});
    let client = Client::new();
    let response = client.post(format!("{}/auth/tokens", lab.urls().keystone)).json(&body).send().await.unwrap();
    let token = response.headers()["x-subject-token"].to_str().unwrap().to_owned();
    Nova { lab, token, client }
}

impl Nova {
    async fn call(
        &self,
        method: Method,
        path: &str,
        version: &str,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut request =
            self.client.request(method, format!("{}{path}", self.lab.urls().nova)).header("x-auth-token", &self.token);
        if !version.is_empty() {
            request = request.header("openstack-api-version", format!("compute {version}"));
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        (status, headers, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
    }

    async fn get(&self, path: &str, version: &str) -> (StatusCode, Value) {
        let (status, _, body) = self.call(Method::GET, path, version, None).await;
        (status, body)
    }

    fn campaign_host(&self, index: usize) -> String {
        self.lab.world().lock().campaign_hosts().nth(index).unwrap().fqdn.clone()
    }

    /// An ACTIVE server without test hooks, and its host.
    fn plain_active_server(&self) -> (String, String) {
        let world = self.lab.world().lock();
        let server =
            world.servers.values().find(|s| s.status == "ACTIVE" && !s.fail_migration && !s.hang_migration).unwrap();
        (server.id.clone(), server.host.clone())
    }
}

#[tokio::test]
async fn version_documents_need_no_token() {
    let nova = nova().await;
    let root = nova.lab.urls().nova.trim_end_matches("/v2.1").to_owned();
    let body: Value = nova.client.get(format!("{root}/")).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["versions"][1]["id"], "v2.1");
    assert_eq!(body["versions"][1]["version"], "2.96");
    assert_eq!(body["versions"][1]["min_version"], "2.1");
    let body: Value = nova.client.get(&nova.lab.urls().nova).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["version"]["status"], "CURRENT");
}

#[tokio::test]
async fn microversion_negotiation() {
    let nova = nova().await;
    let (status, headers, _) = nova.call(Method::GET, "/os-services", "2.53", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["openstack-api-version"], "compute 2.53");
    assert_eq!(headers["x-openstack-nova-api-version"], "2.53");
    assert_eq!(headers["vary"], "OpenStack-API-Version, X-OpenStack-Nova-API-Version");
    let (_, headers, _) = nova.call(Method::GET, "/os-services", "latest", None).await;
    assert_eq!(headers["openstack-api-version"], "compute 2.96");
    let (_, headers, _) = nova.call(Method::GET, "/os-services", "", None).await;
    assert_eq!(headers["openstack-api-version"], "compute 2.1");
    // The legacy header alone.
    let response = nova
        .client
        .get(format!("{}/os-services", nova.lab.urls().nova))
        .header("x-auth-token", &nova.token)
        .header("x-openstack-nova-api-version", "2.11")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-openstack-nova-api-version"], "2.11");
    let (status, body) = nova.get("/os-services", "2.999").await;
    assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
    assert_eq!(
        body["computeFault"]["message"],
        "Version 2.999 is not supported by the API. Minimum is 2.1 and maximum is 2.96."
    );
    let (status, body) = nova.get("/os-services", "2.x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["badRequest"]["message"].as_str().unwrap().contains("is of invalid format"));
}

#[tokio::test]
async fn services_change_shape_with_the_microversion() {
    let nova = nova().await;
    let host = nova.campaign_host(0);
    let (_, body) = nova.get(&format!("/os-services?host={host}&binary=nova-compute"), "2.1").await;
    let service = &body["services"][0];
    assert_eq!(body["services"].as_array().unwrap().len(), 1);
    assert!(service["id"].is_u64());
    assert!(service.get("forced_down").is_none());
    assert_eq!(service["host"], host);
    assert_eq!(service["status"], "enabled");
    assert_eq!(service["state"], "up");
    let (_, body) = nova.get(&format!("/os-services?host={host}"), "2.53").await;
    assert!(body["services"][0]["id"].as_str().unwrap().len() == 36);
    assert_eq!(body["services"][0]["forced_down"], false);
    // Controllers are listed too, so clients must filter by binary.
    let (_, body) = nova.get("/os-services", "2.53").await;
    assert!(body["services"].as_array().unwrap().iter().any(|s| s["binary"] == "nova-scheduler"));
    let (status, _) = nova.get("/os-services?bogus=1", "2.75").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = nova.get("/os-services?bogus=1", "2.74").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn service_update_rules_at_2_53() {
    let nova = nova().await;
    let host = nova.campaign_host(0);
    let (_, body) = nova.get(&format!("/os-services?host={host}&binary=nova-compute"), "2.53").await;
    let uuid = body["services"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/os-services/{uuid}");
    let (status, _, body) = nova
        .call(Method::PUT, &path, "2.53", Some(json!({"status": "disabled", "disabled_reason": "hv migration MH-101"})))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["service"]["status"], "disabled");
    assert_eq!(body["service"]["disabled_reason"], "hv migration MH-101");
    assert_eq!(body["service"]["id"], uuid);
    assert_eq!(nova.lab.world().lock().host(&host).unwrap().compute.status, "disabled");

    let refusals = [
        json!({"status": "enabled", "disabled_reason": "x"}),
        json!({"disabled_reason": "only a reason"}),
        json!({}),
        json!({"status": "sideways"}),
        json!({"status": "disabled", "extra": 1}),
        json!({"status": "disabled", "disabled_reason": ""}),
    ];
    for body in refusals {
        let (status, _, reply) = nova.call(Method::PUT, &path, "2.53", Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(reply["badRequest"]["message"].is_string());
    }
    let (status, _, _) =
        nova.call(Method::PUT, "/os-services/not-a-uuid", "2.53", Some(json!({"status": "enabled"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, body) = nova
        .call(
            Method::PUT,
            "/os-services/00000000-0000-4000-a000-000000000000",
            "2.53",
            Some(json!({"status": "enabled"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["itemNotFound"]["message"].is_string());
    let (status, _, body) = nova.call(Method::PUT, &path, "2.53", Some(json!({"status": "enabled"}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["service"]["disabled_reason"], Value::Null);
    // The legacy paths are gone at 2.53.
    let (status, _, body) = nova
        .call(
            Method::PUT,
            "/os-services/disable-log-reason",
            "2.53",
            Some(json!({"host": host, "binary": "nova-compute", "disabled_reason": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the 2.53 schema refuses the old body first");
    assert!(body["badRequest"]["message"].as_str().unwrap().contains("Additional properties"));
    let (status, _, body) =
        nova.call(Method::PUT, "/os-services/disable-log-reason", "2.53", Some(json!({"status": "disabled"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["badRequest"]["message"], "Invalid uuid disable-log-reason");
}

#[tokio::test]
async fn legacy_service_actions_before_2_53() {
    let nova = nova().await;
    let host = nova.campaign_host(1);
    let (status, _, body) = nova
        .call(
            Method::PUT,
            "/os-services/disable-log-reason",
            "2.52",
            Some(json!({"host": host, "binary": "nova-compute", "disabled_reason": "why"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"service": {"host": host, "binary": "nova-compute", "status": "disabled", "disabled_reason": "why"}})
    );
    let (status, _, body) = nova
        .call(Method::PUT, "/os-services/enable", "2.1", Some(json!({"host": host, "binary": "nova-compute"})))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"service": {"host": host, "binary": "nova-compute", "status": "enabled"}}));
    let (status, _, _) = nova
        .call(
            Method::PUT,
            "/os-services/enable",
            "2.1",
            Some(json!({"host": "nope.example.org", "binary": "nova-compute"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn servers_detail_filters_and_pages() {
    let nova = nova().await;
    let host = nova.campaign_host(2);
    let expected = nova.lab.world().lock().servers_on(&host).count();
    let (_, body) = nova.get(&format!("/servers/detail?all_tenants=1&host={host}"), "2.53").await;
    let servers = body["servers"].as_array().unwrap();
    assert_eq!(servers.len(), expected);
    let server = &servers[0];
    assert_eq!(server["OS-EXT-SRV-ATTR:host"], host);
    assert_eq!(server["OS-EXT-SRV-ATTR:hypervisor_hostname"], host);
    assert!(server["OS-EXT-SRV-ATTR:instance_name"].as_str().unwrap().starts_with("instance-"));
    assert!(server["OS-EXT-STS:power_state"].is_u64());
    assert_eq!(server["OS-EXT-AZ:availability_zone"], "nova");
    assert!(server["flavor"]["original_name"].is_string(), "flavor embedded from 2.47");
    // Without all_tenants only the token's project, which has no servers.
    let (_, body) = nova.get(&format!("/servers/detail?host={host}"), "2.53").await;
    assert_eq!(body["servers"], json!([]));
    // Flavor by reference before 2.47.
    let (_, body) = nova.get(&format!("/servers/detail?all_tenants&host={host}"), "2.46").await;
    assert!(body["servers"][0]["flavor"]["id"].is_string());

    // Paging: follow servers_links until the end and see every server once.
    let total = nova.lab.world().lock().servers.len();
    let mut seen = Vec::new();
    let mut path = "/servers/detail?all_tenants=1&limit=5".to_owned();
    loop {
        let (status, body) = nova.get(&path, "2.53").await;
        assert_eq!(status, StatusCode::OK);
        seen.extend(body["servers"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()));
        match body.get("servers_links") {
            Some(links) => {
                let href = links[0]["href"].as_str().unwrap();
                assert_eq!(links[0]["rel"], "next");
                path = href.strip_prefix(&nova.lab.urls().nova).unwrap().to_owned();
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), total);
    let (status, body) = nova.get("/servers/detail?all_tenants=1&marker=nope", "2.53").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["badRequest"]["message"], "marker [nope] not found");
    let (status, body) = nova.get("/servers/00000000-0000-4000-a000-000000000000", "2.53").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["itemNotFound"]["message"].as_str().unwrap().contains("could not be found"));
}

async fn wait_for_status(nova: &Nova, id: &str, wanted: &str) -> Value {
    for _ in 0..200 {
        let (_, body) = nova.get(&format!("/servers/{id}"), "2.53").await;
        if body["server"]["status"] == wanted {
            return body["server"].clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("server {id} never reached {wanted}");
}

#[tokio::test]
async fn live_migration_progresses_and_moves_the_server() {
    let nova = nova().await;
    nova.lab.world().lock().time_scale = 200.0;
    let (id, source) = nova.plain_active_server();
    let action = format!("/servers/{id}/action");
    let (status, _, body) = nova
        .call(Method::POST, &action, "2.30", Some(json!({"os-migrateLive": {"host": null, "block_migration": "auto"}})))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body, Value::Null);
    let (_, body) = nova.get(&format!("/servers/{id}"), "2.53").await;
    assert_eq!(body["server"]["status"], "MIGRATING");
    assert_eq!(body["server"]["OS-EXT-STS:task_state"], "migrating");
    // A second request while it migrates is a conflict.
    let (status, _, body) = nova
        .call(Method::POST, &action, "2.30", Some(json!({"os-migrateLive": {"host": null, "block_migration": "auto"}})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        body["conflictingRequest"]["message"],
        format!("Cannot 'os-migrateLive' instance {id} while it is in task_state migrating")
    );
    let (_, body) = nova.get(&format!("/os-migrations?host={source}&migration_type=live-migration"), "2.59").await;
    let migration = &body["migrations"][0];
    assert_eq!(migration["instance_uuid"], id);
    assert_eq!(migration["source_compute"], source);
    assert!(migration["uuid"].is_string());
    let server = wait_for_status(&nova, &id, "ACTIVE").await;
    assert_ne!(server["OS-EXT-SRV-ATTR:host"], source);
    assert_eq!(server["OS-EXT-STS:task_state"], Value::Null);
    let (_, body) = nova.get(&format!("/os-migrations?instance_uuid={id}"), "2.80").await;
    assert_eq!(body["migrations"][0]["status"], "completed");
    assert!(body["migrations"][0]["user_id"].is_string());
    let world = nova.lab.world().lock();
    assert_eq!(world.servers[&id].host, server["OS-EXT-SRV-ATTR:host"].as_str().unwrap());
    assert_eq!(world.max_concurrent_migrations, 1);
}

#[tokio::test]
async fn live_migration_body_rules_and_bad_hosts() {
    let nova = nova().await;
    let (id, source) = nova.plain_active_server();
    let action = format!("/servers/{id}/action");
    let cases = [
        ("2.24", json!({"host": null, "block_migration": false})),
        ("2.25", json!({"host": null})),
        ("2.25", json!({"host": null, "block_migration": "auto", "disk_over_commit": false})),
        ("2.68", json!({"host": null, "block_migration": "auto", "force": true})),
        ("2.20", json!({"host": null, "block_migration": "auto", "disk_over_commit": false})),
    ];
    for (version, body) in cases {
        let (status, _, _) = nova.call(Method::POST, &action, version, Some(json!({"os-migrateLive": body}))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{version} {body}");
    }
    let (status, _, body) = nova
        .call(
            Method::POST,
            &action,
            "2.30",
            Some(json!({"os-migrateLive": {"host": "nope.example.org", "block_migration": "auto"}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["badRequest"]["message"], "Compute host nope.example.org could not be found.");
    let (status, _, _) = nova
        .call(
            Method::POST,
            &action,
            "2.30",
            Some(json!({"os-migrateLive": {"host": source, "block_migration": "auto", "force": true}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "to itself before 2.34");
    // From 2.34 the checks run in the background: accepted, and the migration errors.
    let (status, _, _) = nova
        .call(
            Method::POST,
            &action,
            "2.34",
            Some(json!({"os-migrateLive": {"host": source, "block_migration": "auto"}})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, body) = nova.get(&format!("/os-migrations?instance_uuid={id}"), "2.59").await;
    assert_eq!(body["migrations"][0]["status"], "error");
    let (_, body) = nova.get(&format!("/servers/{id}"), "2.53").await;
    assert_eq!(body["server"]["status"], "ACTIVE");
}

#[tokio::test]
async fn failing_and_hanging_migrations() {
    let nova = nova().await;
    nova.lab.world().lock().time_scale = 500.0;
    let failing = nova.lab.world().lock().servers.values().find(|s| s.fail_migration).unwrap().id.clone();
    let (hanging, hanging_host) = nova.plain_active_server();
    nova.lab.world().lock().servers.get_mut(&hanging).unwrap().hang_migration = true;
    let live = json!({"os-migrateLive": {"host": null, "block_migration": "auto"}});
    for id in [&failing, &hanging] {
        let (status, _, _) =
            nova.call(Method::POST, &format!("/servers/{id}/action"), "2.30", Some(live.clone())).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, body) = nova.get(&format!("/os-migrations?instance_uuid={failing}"), "2.59").await;
    assert_eq!(body["migrations"][0]["status"], "error");
    let (_, body) = nova.get(&format!("/servers/{failing}"), "2.53").await;
    assert_eq!(body["server"]["status"], "ACTIVE");
    let (_, body) = nova.get(&format!("/os-migrations?instance_uuid={hanging}"), "2.59").await;
    assert_eq!(body["migrations"][0]["status"], "running");
    let (_, body) = nova.get(&format!("/servers/{hanging}/migrations"), "2.59").await;
    let migration_id = body["migrations"][0]["id"].as_u64().unwrap();
    assert_eq!(body["migrations"][0]["server_uuid"], hanging);
    assert!(body["migrations"][0]["memory_total_bytes"].as_u64().unwrap() > 0);
    // Aborting a hung migration puts the server back on its host.
    let (status, _, _) =
        nova.call(Method::DELETE, &format!("/servers/{hanging}/migrations/{migration_id}"), "2.24", None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let server = wait_for_status(&nova, &hanging, "ACTIVE").await;
    assert_eq!(server["OS-EXT-SRV-ATTR:host"], hanging_host);
}

#[tokio::test]
async fn cold_migration_then_confirm() {
    let nova = nova().await;
    nova.lab.world().lock().time_scale = 500.0;
    let (id, source) = {
        let world = nova.lab.world().lock();
        let server = world.servers.values().find(|s| s.status == "SHUTOFF").unwrap();
        (server.id.clone(), server.host.clone())
    };
    let action = format!("/servers/{id}/action");
    let (status, _, _) = nova.call(Method::POST, &action, "2.53", Some(json!({"migrate": null}))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, body) = nova.get(&format!("/servers/{id}"), "2.53").await;
    assert_eq!(body["server"]["status"], "RESIZE");
    assert_eq!(body["server"]["OS-EXT-STS:task_state"], "resize_migrating");
    let server = wait_for_status(&nova, &id, "VERIFY_RESIZE").await;
    assert_ne!(server["OS-EXT-SRV-ATTR:host"], source);
    let (_, body) = nova.get(&format!("/os-migrations?instance_uuid={id}"), "2.59").await;
    assert_eq!(body["migrations"][0]["status"], "finished");
    assert_eq!(body["migrations"][0]["migration_type"], "migration");
    let (status, _, _) = nova.call(Method::POST, &action, "2.53", Some(json!({"confirmResize": null}))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, body) = nova.get(&format!("/servers/{id}"), "2.53").await;
    assert_eq!(body["server"]["status"], "SHUTOFF");
    let (_, body) = nova.get(&format!("/os-migrations?instance_uuid={id}"), "2.59").await;
    assert_eq!(body["migrations"][0]["status"], "confirmed");
    // An ERROR server cannot be migrated.
    let error_id = nova.lab.world().lock().servers.values().find(|s| s.status == "ERROR").unwrap().id.clone();
    let (status, _, body) =
        nova.call(Method::POST, &format!("/servers/{error_id}/action"), "2.53", Some(json!({"migrate": null}))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["conflictingRequest"]["message"].as_str().unwrap().contains("vm_state error"));
}

#[tokio::test]
async fn hypervisors_and_aggregates() {
    let nova = nova().await;
    let host = nova.campaign_host(0);
    let (_, body) = nova.get(&format!("/os-hypervisors/detail?hypervisor_hostname_pattern={host}"), "2.53").await;
    let hypervisor = &body["hypervisors"][0];
    assert_eq!(hypervisor["hypervisor_hostname"], host);
    assert_eq!(hypervisor["service"]["host"], host);
    assert_eq!(hypervisor["state"], "up");
    assert_eq!(hypervisor["status"], "enabled");
    assert_eq!(hypervisor["vcpus"], 64);
    let vms = nova.lab.world().lock().servers_on(&host).count();
    assert_eq!(hypervisor["running_vms"], vms);
    assert!(hypervisor["cpu_info"].is_object());
    let id = hypervisor["id"].as_str().unwrap().to_owned();
    let (_, body) = nova.get(&format!("/os-hypervisors/{id}"), "2.88").await;
    assert!(body["hypervisor"].get("vcpus").is_none(), "statistics gone at 2.88");
    assert!(body["hypervisor"]["uptime"].is_string());
    let (status, _) = nova.get("/os-hypervisors/detail?hypervisor_hostname_pattern=nomatch", "2.53").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = nova.get("/os-hypervisors/12", "2.53").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, body) = nova.get("/os-hypervisors/detail?limit=3", "2.53").await;
    assert_eq!(body["hypervisors"].as_array().unwrap().len(), 3);
    assert!(body["hypervisors_links"][0]["href"].as_str().unwrap().contains("marker="));
    let (_, body) = nova.get("/os-aggregates", "2.41").await;
    let aggregate = &body["aggregates"][0];
    assert_eq!(aggregate["availability_zone"], "nova");
    assert!(aggregate["hosts"].as_array().unwrap().iter().any(|h| *h == host));
    assert!(aggregate["uuid"].is_string());
}

#[tokio::test]
async fn injected_faults() {
    let nova = nova().await;
    let faults = nova.lab.faults();
    faults.push(Service::Nova, Fault::Status(503));
    let (status, body) = nova.get("/os-services", "2.53").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["serviceUnavailable"]["code"], 503);
    faults.push(Service::Nova, Fault::RateLimited { retry_after_secs: 7 });
    let (status, headers, body) = nova.call(Method::GET, "/os-services", "2.53", None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "7");
    assert_eq!(body["overLimit"]["code"], 429);
    // A service PUT is committed, then the reply is lost.
    let host = nova.campaign_host(3);
    let uuid = nova.lab.world().lock().host(&host).unwrap().compute.uuid.clone();
    faults.push(Service::Nova, Fault::DropAfterCommit);
    let result = nova
        .client
        .put(format!("{}/os-services/{uuid}", nova.lab.urls().nova))
        .header("x-auth-token", &nova.token)
        .header("openstack-api-version", "compute 2.53")
        .json(&json!({"status": "disabled", "disabled_reason": "dropped"}))
        .send()
        .await;
    let lost = match result {
        Err(_) => true,
        Ok(response) => response.bytes().await.is_err(),
    };
    assert!(lost, "the reply is lost");
    let world = nova.lab.world().lock();
    assert_eq!(world.host(&host).unwrap().compute.status, "disabled");
    assert_eq!(world.host(&host).unwrap().compute.disabled_reason.as_deref(), Some("dropped"));
}
