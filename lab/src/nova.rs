//! The Nova (compute v2.1) emulator: version documents, microversions up to
//! [`MAX_MINOR`], compute services, servers, live and cold migrations that
//! progress over simulated time, migrations, hypervisors and aggregates.
//!
//! The compute host name (`service.host`, `OS-EXT-SRV-ATTR:host`,
//! migrations, aggregates) is the FQDN, or the short name with
//! [`crate::WorldOptions::short_service_hosts`] as Kolla deploys it;
//! `hypervisor_hostname` is always the FQDN. A token without the admin role gets
//! what Nova's policy gives it ([`crate::policy`]).
//! Migrations progress lazily: each request first brings them up to the
//! current simulated time ([`WorldState::advance_migrations`]).
// Refusals travel as ready replies; one per request, so their size does not matter.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use serde_json::{json, Map, Value};

use crate::policy::{not_allowed_message, Caller};
use crate::world::{Host, Migration, Server, WorldState};
use crate::{LabState, Urls};

/// The newest microversion served: 2.96 (Nova 2023.2). 2.88 dropped the
/// hypervisor statistics, which openstacksdk caps at anyway.
pub const MAX_MINOR: u16 = 96;
const MAX_LIMIT: usize = 1000;
const NOVA_TIME: &str = "%Y-%m-%dT%H:%M:%S%.6f";

/// Simulated time: advances `time_scale` simulated seconds per real second,
/// measured between calls so a changed scale applies from then on.
#[derive(Clone, Debug, Default)]
pub struct SimClock {
    last_real: Option<Instant>,
    elapsed_secs: f64,
}

impl SimClock {
    pub fn now(&mut self, time_scale: f64) -> f64 {
        let real = Instant::now();
        if let Some(last) = self.last_real {
            self.elapsed_secs += real.duration_since(last).as_secs_f64() * time_scale.max(0.0);
        }
        self.last_real = Some(real);
        self.elapsed_secs
    }
}

/// The requested microversion's minor number (the major is always 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Microversion(pub u16);

const LIVE_IN_PROGRESS: [&str; 4] = ["queued", "preparing", "running", "post-migrating"];
const IN_PROGRESS: [&str; 6] = ["queued", "preparing", "running", "post-migrating", "pre-migrating", "migrating"];

/// Whether Nova is still moving the server (its destination is claimed).
pub fn migration_in_progress(migration: &Migration) -> bool {
    in_progress(migration)
}

fn in_progress(migration: &Migration) -> bool {
    IN_PROGRESS.contains(&migration.status.as_str())
}

fn now_text() -> String {
    jiff::Timestamp::now().strftime(NOVA_TIME).to_string()
}

impl WorldState {
    /// Brings every migration in progress up to the current simulated time:
    /// its status, and the server's host and status when it ends.
    pub fn advance_migrations(&mut self) {
        let now = self.clock.now(self.time_scale);
        for index in 0..self.migrations.len() {
            if !in_progress(&self.migrations[index]) {
                continue;
            }
            let migration = &self.migrations[index];
            let (fail, hang) = match self.servers.get(&migration.server_id) {
                Some(server) => (server.fail_migration, server.hang_migration),
                None => (true, false),
            };
            let fraction = (now - migration.started_at_sim) / migration.duration_secs.max(0.001);
            let live = migration.migration_type == "live-migration";
            let status = match (live, fraction) {
                (_, f) if f >= 1.0 && hang => {
                    if live {
                        "running"
                    } else {
                        "migrating"
                    }
                }
                (_, f) if f >= 1.0 && fail => "error",
                (true, f) if f >= 1.0 => "completed",
                (false, f) if f >= 1.0 => "finished",
                (true, f) if f < 0.1 => "queued",
                (true, f) if f < 0.2 => "preparing",
                (true, f) if f < 0.95 => "running",
                (true, _) => "post-migrating",
                (false, f) if f < 0.1 => "pre-migrating",
                (false, f) if f < 0.9 => "migrating",
                (false, _) => "post-migrating",
            };
            if status == migration.status {
                continue;
            }
            let migration = &mut self.migrations[index];
            migration.status = status.to_owned();
            migration.updated_at = now_text();
            let migration = migration.clone();
            if let Some(server) = self.servers.get_mut(&migration.server_id) {
                match status {
                    "error" => {
                        server.status = migration.previous_status.clone();
                        server.task_state = None;
                        // The hook is for the next migration only: a retry succeeds.
                        server.fail_migration = false;
                    }
                    "completed" => {
                        if !server.stale_host_after_migration {
                            server.host = migration.dest_compute.clone();
                        }
                        server.status = migration.previous_status.clone();
                        server.task_state = None;
                    }
                    "finished" => {
                        server.host = migration.dest_compute.clone();
                        server.status = "VERIFY_RESIZE".into();
                        server.task_state = None;
                    }
                    _ => {}
                }
            }
        }
    }

    /// Records how many migrations run at once after one started.
    fn count_concurrent_migrations(&mut self, source: &str) {
        let running: Vec<&Migration> = self.migrations.iter().filter(|m| in_progress(m)).collect();
        let from_source = running.iter().filter(|m| m.source_compute == source).count();
        self.max_concurrent_migrations = self.max_concurrent_migrations.max(running.len());
        self.max_concurrent_migrations_per_source = self.max_concurrent_migrations_per_source.max(from_source);
        for destination in running.iter().map(|m| m.dest_compute.as_str()) {
            let to_destination = running.iter().filter(|m| m.dest_compute == destination).count();
            self.max_concurrent_migrations_per_destination =
                self.max_concurrent_migrations_per_destination.max(to_destination);
        }
    }
}

pub fn router(state: LabState) -> Router {
    let api = Router::new()
        .route("/os-services", get(list_services))
        .route("/os-services/{id}", put(update_service))
        .route("/servers", get(list_servers_brief))
        .route("/servers/detail", get(list_servers_detail))
        .route("/servers/{id}", get(show_server))
        .route("/servers/{id}/action", post(server_action))
        .route("/servers/{id}/migrations", get(server_migrations))
        .route("/servers/{id}/migrations/{mid}", get(server_migration).delete(abort_migration))
        .route("/servers/{id}/migrations/{mid}/action", post(force_complete_migration))
        .route("/os-migrations", get(list_migrations))
        .route("/os-hypervisors", get(list_hypervisors_brief))
        .route("/os-hypervisors/detail", get(list_hypervisors_detail))
        .route("/os-hypervisors/{id}", get(show_hypervisor))
        .route("/os-hypervisors/{id}/uptime", get(hypervisor_uptime))
        .route("/os-aggregates", get(list_aggregates))
        .route("/flavors/{id}", get(show_flavor))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), gate));
    Router::new()
        .route("/", get(versions))
        .route("/v2.1", get(version))
        .route("/v2.1/", get(version))
        .nest("/v2.1", api)
        .fallback(not_found)
        .with_state(state)
}

/// Nova's fault body: `{"<name>": {"code": N, "message": "..."}}`.
pub fn fault(status: StatusCode, message: &str) -> Response {
    let name = match status.as_u16() {
        400 => "badRequest",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "itemNotFound",
        405 => "badMethod",
        409 => "conflictingRequest",
        413 | 429 => "overLimit",
        415 => "badMediaType",
        501 => "notImplemented",
        503 => "serviceUnavailable",
        _ => "computeFault",
    };
    (status, Json(json!({name: {"code": status.as_u16(), "message": message}}))).into_response()
}

fn bad_request(message: &str) -> Response {
    fault(StatusCode::BAD_REQUEST, message)
}

/// `context.can(rule)`: 403 with Nova's message when the policy says no.
fn authorize(world: &WorldState, caller: &Caller, rule: &str) -> Result<(), Response> {
    if caller.can(world, rule) {
        Ok(())
    } else {
        Err(fault(StatusCode::FORBIDDEN, &not_allowed_message(rule)))
    }
}

async fn not_found() -> Response {
    fault(StatusCode::NOT_FOUND, "The resource could not be found.")
}

fn root_url(urls: &Urls) -> &str {
    urls.nova.trim_end_matches("/v2.1")
}

fn version_v21(urls: &Urls) -> Value {
    json!({
        "id": "v2.1",
        "status": "CURRENT",
        "version": format!("2.{MAX_MINOR}"),
        "min_version": "2.1",
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": format!("{}/", urls.nova)}],
    })
}

async fn versions(State(state): State<LabState>) -> Response {
    let root = root_url(&state.urls);
    let v20 = json!({
        "id": "v2.0", "status": "DEPRECATED", "version": "", "min_version": "", "updated": "2025-07-04T12:00:00Z",
        "links": [{"rel": "self", "href": format!("{root}/v2/")}],
    });
    Json(json!({"versions": [v20, version_v21(&state.urls)]})).into_response()
}

async fn version(State(state): State<LabState>) -> Response {
    let mut version = version_v21(&state.urls);
    version["media-types"] =
        json!([{"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"}]);
    version["links"].as_array_mut().expect("links").push(json!({
        "rel": "describedby", "type": "text/html", "href": "http://docs.openstack.org/"
    }));
    Json(json!({"version": version})).into_response()
}

/// Parses the requested microversion: the new header wins over the legacy one;
/// none means 2.1.
fn requested_microversion(headers: &HeaderMap) -> Result<Microversion, Response> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).map(str::to_owned);
    let new_form = text("openstack-api-version").and_then(|value| {
        value.split(',').find_map(|part| {
            let mut words = part.split_whitespace();
            (words.next().is_some_and(|s| s.eq_ignore_ascii_case("compute")))
                .then(|| words.next().unwrap_or("").to_owned())
        })
    });
    let Some(requested) = new_form.or_else(|| text("x-openstack-nova-api-version")) else {
        return Ok(Microversion(1));
    };
    if requested.eq_ignore_ascii_case("latest") {
        return Ok(Microversion(MAX_MINOR));
    }
    let parsed = requested.split_once('.').and_then(|(major, minor)| {
        let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        (numeric(major) && numeric(minor)).then(|| (major.parse::<u32>().ok(), minor.parse::<u32>().ok()))
    });
    match parsed {
        Some((Some(2), Some(minor))) if (1..=MAX_MINOR as u32).contains(&minor) => Ok(Microversion(minor as u16)),
        Some(_) => Err(fault(
            StatusCode::NOT_ACCEPTABLE,
            &format!("Version {requested} is not supported by the API. Minimum is 2.1 and maximum is 2.{MAX_MINOR}."),
        )),
        None => Err(bad_request(&format!(
            "API Version String {requested} is of invalid format. Must be of format MajorNum.MinorNum."
        ))),
    }
}

/// Checks the token (keystonemiddleware's job), parses the microversion, and
/// echoes it on the reply.
async fn gate(State(state): State<LabState>, mut request: Request, next: Next) -> Response {
    let token = request.headers().get("x-auth-token").and_then(|v| v.to_str().ok());
    let Some(caller) = token.and_then(|token| crate::keystone::caller(&state, token)) else {
        return crate::keystone::unauthorized(&state.urls, "The request you have made requires authentication.");
    };
    request.extensions_mut().insert(caller);
    let version = match requested_microversion(request.headers()) {
        Ok(version) => version,
        Err(refusal) => return refusal,
    };
    request.extensions_mut().insert(version);
    state.world.lock().advance_migrations();
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&format!("compute 2.{}", version.0)) {
        headers.insert("openstack-api-version", value);
    }
    if let Ok(value) = HeaderValue::from_str(&format!("2.{}", version.0)) {
        headers.insert("x-openstack-nova-api-version", value);
    }
    headers.insert("vary", HeaderValue::from_static("OpenStack-API-Version, X-OpenStack-Nova-API-Version"));
    response
}

/// Query pairs in order, percent-decoded.
fn query_pairs(query: &Option<String>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_deref().unwrap_or_default().as_bytes()).into_owned().collect()
}

fn query_value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// `limit` and `marker` as Nova validates them.
fn paging(pairs: &[(String, String)]) -> Result<(usize, Option<String>), Response> {
    let limit = match query_value(pairs, "limit") {
        None => MAX_LIMIT,
        Some(text) => match text.parse::<i64>() {
            Ok(n) if n >= 0 => (n as usize).min(MAX_LIMIT),
            Ok(_) => return Err(bad_request("limit param must be positive")),
            Err(_) => return Err(bad_request("limit param must be an integer")),
        },
    };
    Ok((limit, query_value(pairs, "marker").map(str::to_owned)))
}

/// The `<collection>_links` entry pointing at the next page.
fn next_link(urls: &Urls, path: &str, pairs: &[(String, String)], marker: &str) -> Value {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs.iter().filter(|(k, _)| k != "marker") {
        query.append_pair(key, value);
    }
    query.append_pair("marker", marker);
    json!([{"rel": "next", "href": format!("{}{path}?{}", urls.nova, query.finish())}])
}

fn is_uuid_like(text: &str) -> bool {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit())
}

// ---------------------------------------------------------------- services

/// The controller services every real deployment lists next to the computes.
fn controller_services(state: &WorldState) -> Vec<Value> {
    let host = nova_name(state, &format!("ctl01.{}.example.org", state.site));
    [("nova-scheduler", 900_001, "3c1d7a52-8f0e-4c44-a0d4-6f3b1c2e9a01"), ("nova-conductor", 900_002, "3c1d7a52-8f0e-4c44-a0d4-6f3b1c2e9a02")]
        .iter()
        .map(|(binary, id, uuid)| {
            json!({"id": id, "uuid": uuid, "binary": binary, "host": host, "zone": "internal", "status": "enabled",
                   "state": "up", "updated_at": "2026-01-05T09:00:00.000000", "disabled_reason": null, "forced_down": false})
        })
        .collect()
}

/// The compute host name Nova uses for a host (`service.host`,
/// `OS-EXT-SRV-ATTR:host`, `source_compute`, aggregate members): the short
/// name when the site registers nova-compute so (Kolla's default, from
/// the `ansible_facts.hostname`), else the FQDN. `hypervisor_hostname` (and
/// the migrations' nodes) stay the FQDN libvirt reports.
pub fn nova_name(world: &WorldState, fqdn: &str) -> String {
    if world.short_service_hosts {
        fqdn.split('.').next().unwrap_or(fqdn).to_owned()
    } else {
        fqdn.to_owned()
    }
}

/// The host Nova's compute host name `name` stands for (matched exactly, as Nova does).
fn host_named<'a>(world: &'a WorldState, name: &str) -> Option<&'a Host> {
    world.hosts.iter().find(|host| nova_name(world, &host.fqdn) == name)
}

fn service_state(host: &Host) -> &str {
    if host.compute.forced_down {
        "down"
    } else {
        &host.compute.state
    }
}

fn service_json(host: &Host, name: String, version: Microversion) -> Value {
    let compute = &host.compute;
    let mut service = json!({
        "id": if version.0 >= 53 { json!(compute.uuid) } else { json!(compute.id) },
        "binary": "nova-compute",
        "host": name,
        "zone": host.availability_zone,
        "status": compute.status,
        "state": service_state(host),
        "updated_at": compute.updated_at,
        "disabled_reason": compute.disabled_reason,
    });
    if version.0 >= 11 {
        service["forced_down"] = json!(compute.forced_down);
    }
    service
}

fn controller_json(service: &Value, version: Microversion) -> Value {
    let mut service = service.clone();
    let object = service.as_object_mut().expect("object");
    let uuid = object.remove("uuid").unwrap_or_default();
    if version.0 >= 53 {
        object.insert("id".into(), uuid);
    }
    if version.0 < 11 {
        object.remove("forced_down");
    }
    service
}

async fn list_services(
    State(state): State<LabState>,
    Extension(version): Extension<Microversion>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Response {
    let pairs = query_pairs(&query);
    if version.0 >= 75 {
        if let Some((key, _)) = pairs.iter().find(|(k, _)| k != "host" && k != "binary") {
            return bad_request(&format!("Invalid input for query parameters {key}. Value: . Additional properties are not allowed ('{key}' was unexpected)"));
        }
    }
    let host_filter = query_value(&pairs, "host");
    let binary_filter = query_value(&pairs, "binary");
    let world = state.world.lock();
    if let Err(refusal) = authorize(&world, &caller, "os_compute_api:os-services:list") {
        return refusal;
    }
    let mut services: Vec<Value> = controller_services(&world)
        .iter()
        .filter(|s| host_filter.is_none_or(|h| s["host"] == h) && binary_filter.is_none_or(|b| s["binary"] == b))
        .map(|s| controller_json(s, version))
        .collect();
    if binary_filter.is_none_or(|b| b == "nova-compute") {
        match host_filter {
            Some(name) => services.extend(
                host_named(&world, name).map(|host| service_json(host, nova_name(&world, &host.fqdn), version)),
            ),
            None => services
                .extend(world.hosts.iter().map(|host| service_json(host, nova_name(&world, &host.fqdn), version))),
        }
    }
    Json(json!({"services": services})).into_response()
}

async fn update_service(
    State(state): State<LabState>,
    Extension(version): Extension<Microversion>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("Malformed request body");
    };
    if let Err(refusal) = authorize(&state.world.lock(), &caller, "os_compute_api:os-services:update") {
        return refusal;
    }
    if version.0 >= 53 {
        update_service_v253(&state, version, &id, &body)
    } else {
        update_service_legacy(&state, version, &id, &body)
    }
}

fn schema_error(field: &str, value: &Value, reason: &str) -> Response {
    bad_request(&format!("Invalid input for field/attribute {field}. Value: {value}. {reason}"))
}

fn update_service_v253(state: &LabState, version: Microversion, id: &str, body: &Map<String, Value>) -> Response {
    for (key, value) in body {
        match key.as_str() {
            "status" if value == "enabled" || value == "disabled" => {}
            "status" => return schema_error("status", value, &format!("{value} is not one of ['enabled', 'disabled']")),
            "disabled_reason" => match value.as_str() {
                Some(reason) if (1..=255).contains(&reason.chars().count()) => {}
                _ => return schema_error("disabled_reason", value, "is not a valid string of 1 to 255 characters"),
            },
            "forced_down" if value.is_boolean() => {}
            "forced_down" => return schema_error("forced_down", value, &format!("{value} is not of type 'boolean'")),
            other => {
                return bad_request(&format!(
                    "Invalid input for field/attribute request body. Value: {}. Additional properties are not allowed ('{other}' was unexpected)",
                    Value::Object(body.clone())
                ))
            }
        }
    }
    if !is_uuid_like(id) {
        return bad_request(&format!("Invalid uuid {id}"));
    }
    let mut world = state.world.lock();
    if controller_services(&world).iter().any(|s| s["uuid"] == id) {
        let binary =
            controller_services(&world).into_iter().find(|s| s["uuid"] == id).expect("found")["binary"].clone();
        return bad_request(&format!(
            "Updating a {} service is not supported. Only nova-compute services can be updated.",
            binary.as_str().unwrap_or_default()
        ));
    }
    let short = world.short_service_hosts;
    let Some(host) = world.hosts.iter_mut().find(|h| h.compute.uuid == id) else {
        return fault(StatusCode::NOT_FOUND, &format!("Service {id} could not be found."));
    };
    let status = body.get("status").and_then(Value::as_str);
    if status.is_none() && !body.contains_key("forced_down") {
        return bad_request("No updates were requested. Fields 'status' or 'forced_down' should be specified.");
    }
    match status {
        Some("enabled") if body.contains_key("disabled_reason") => {
            return bad_request("Specifying 'disabled_reason' with status 'enabled' is invalid.")
        }
        Some("enabled") => {
            host.compute.status = "enabled".into();
            host.compute.disabled_reason = None;
        }
        Some(_) => {
            host.compute.status = "disabled".into();
            host.compute.disabled_reason = body.get("disabled_reason").and_then(Value::as_str).map(str::to_owned);
        }
        None => {}
    }
    if let Some(forced_down) = body.get("forced_down").and_then(Value::as_bool) {
        host.compute.forced_down = forced_down;
    }
    let name = if short { host.fqdn.split('.').next().unwrap_or_default().to_owned() } else { host.fqdn.clone() };
    Json(json!({"service": service_json(host, name, version)})).into_response()
}

/// The pre-2.53 actions: `disable`, `disable-log-reason`, `enable`, `force-down`.
fn update_service_legacy(state: &LabState, version: Microversion, action: &str, body: &Map<String, Value>) -> Response {
    let known =
        ["enable", "disable", "disable-log-reason"].contains(&action) || (action == "force-down" && version.0 >= 11);
    if !known {
        return fault(StatusCode::NOT_FOUND, "Unknown action");
    }
    let text = |key: &str| body.get(key).and_then(Value::as_str);
    let (Some(host_name), Some(binary)) = (text("host"), text("binary")) else {
        return bad_request(&format!(
            "Invalid input for field/attribute request body. Value: {}. 'host' and 'binary' are required properties",
            Value::Object(body.clone())
        ));
    };
    let mut world = state.world.lock();
    let Some(fqdn) = host_named(&world, host_name).map(|host| host.fqdn.clone()) else {
        return fault(StatusCode::NOT_FOUND, "Unknown service");
    };
    let host = match world.hosts.iter_mut().find(|h| h.fqdn == fqdn) {
        Some(host) if binary == "nova-compute" => host,
        _ => return fault(StatusCode::NOT_FOUND, "Unknown service"),
    };
    let mut reply = json!({"host": host_name, "binary": binary});
    match action {
        "enable" => {
            host.compute.status = "enabled".into();
            host.compute.disabled_reason = None;
            reply["status"] = json!("enabled");
        }
        "disable" => {
            host.compute.status = "disabled".into();
            reply["status"] = json!("disabled");
        }
        "disable-log-reason" => {
            let Some(reason) = text("disabled_reason").filter(|r| (1..=255).contains(&r.chars().count())) else {
                return bad_request("Missing disabled reason field");
            };
            host.compute.status = "disabled".into();
            host.compute.disabled_reason = Some(reason.to_owned());
            reply["status"] = json!("disabled");
            reply["disabled_reason"] = json!(reason);
        }
        _ => {
            let Some(forced_down) = body.get("forced_down").and_then(Value::as_bool) else {
                return bad_request("Missing forced_down field");
            };
            host.compute.forced_down = forced_down;
            reply["forced_down"] = json!(forced_down);
        }
    }
    Json(json!({"service": reply})).into_response()
}

// ---------------------------------------------------------------- servers

/// `OS-EXT-STS:vm_state` and `OS-EXT-STS:power_state` for a server.
fn vm_and_power_state(world: &WorldState, server: &Server) -> (&'static str, u8) {
    let stopped_before = || {
        world.migrations.iter().rev().find(|m| m.server_id == server.id).is_some_and(|m| m.previous_status == "SHUTOFF")
    };
    match server.status.as_str() {
        "ACTIVE" | "MIGRATING" => ("active", 1),
        "SHUTOFF" => ("stopped", 4),
        "PAUSED" => ("paused", 3),
        "SUSPENDED" => ("suspended", 4),
        "ERROR" => ("error", 0),
        "BUILD" => ("building", 0),
        "RESIZE" if stopped_before() => ("stopped", 4),
        "RESIZE" => ("active", 1),
        "VERIFY_RESIZE" => ("resized", if stopped_before() { 4 } else { 1 }),
        _ => ("active", 1),
    }
}

/// Devstack's flavor ids for the lab's flavors.
fn flavor_id(name: &str) -> u64 {
    match name {
        "m1.small" => 2,
        "m1.medium" => 3,
        "m1.large" => 4,
        _ => 1,
    }
}

/// A stable 56-hex digest (Nova's `hostId` is a SHA-224 of project and host).
fn host_id(project: &str, host: &str) -> String {
    let mut digest = String::with_capacity(56);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for round in 0..4u64 {
        for byte in project.bytes().chain(host.bytes()).chain(round.to_le_bytes()) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3);
        }
        digest.push_str(&format!("{hash:016x}"));
    }
    digest.truncate(56);
    digest
}

fn host_ip(host: &Host) -> String {
    host.aquilon.interfaces.iter().find(|i| i.name == "eth0").and_then(|i| i.ip.clone()).unwrap_or_default()
}

fn server_brief(urls: &Urls, server: &Server) -> Value {
    json!({"id": server.id, "name": server.name, "links": server_links(urls, &server.id)})
}

fn server_links(urls: &Urls, id: &str) -> Value {
    json!([
        {"rel": "self", "href": format!("{}/servers/{id}", urls.nova)},
        {"rel": "bookmark", "href": format!("{}/servers/{id}", root_url(urls))},
    ])
}

fn server_json(
    world: &WorldState,
    urls: &Urls,
    server: &Server,
    version: Microversion,
    show: bool,
    caller: &Caller,
) -> Value {
    let host = world.host(&server.host);
    let (vm_state, power_state) = vm_and_power_state(world, server);
    let flavor = if version.0 >= 47 {
        json!({"vcpus": server.vcpus, "ram": server.ram_mb, "disk": server.disk_gb, "ephemeral": 0, "swap": 0,
               "original_name": server.flavor_name, "extra_specs": {}})
    } else {
        let id = flavor_id(&server.flavor_name);
        json!({"id": id.to_string(), "links": [{"rel": "bookmark", "href": format!("{}/flavors/{id}", root_url(urls))}]})
    };
    let mut body = json!({
        "id": server.id,
        "name": server.name,
        "status": server.status,
        "tenant_id": server.project_id,
        "user_id": server.user_id,
        "metadata": {},
        "hostId": host_id(&server.project_id, &server.host),
        // Boot from volume: no image, so clients need no image service.
        "image": "",
        "flavor": flavor,
        "created": server.created,
        "updated": server.created,
        "addresses": {},
        "accessIPv4": "",
        "accessIPv6": "",
        "links": server_links(urls, &server.id),
        "OS-DCF:diskConfig": "MANUAL",
        "OS-EXT-AZ:availability_zone": host.map_or("nova", |h| h.availability_zone.as_str()),
        "config_drive": "",
        "key_name": null,
        "OS-SRV-USG:launched_at": server.created.trim_end_matches('Z').to_owned() + ".000000",
        "OS-SRV-USG:terminated_at": null,
        "OS-EXT-SRV-ATTR:host": nova_name(world, &server.host),
        "OS-EXT-SRV-ATTR:instance_name": server.instance_name,
        "OS-EXT-SRV-ATTR:hypervisor_hostname": server.host,
        "OS-EXT-STS:task_state": server.task_state,
        "OS-EXT-STS:vm_state": vm_state,
        "OS-EXT-STS:power_state": power_state,
        "os-extended-volumes:volumes_attached": [],
        "security_groups": [{"name": "default"}],
    });
    if ["ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING"].contains(&server.status.as_str()) {
        body["progress"] = json!(0);
    }
    let extra: &mut Map<String, Value> = body.as_object_mut().expect("object");
    let mut add = |minimum: u16, key: &str, value: Value| {
        if version.0 >= minimum {
            extra.insert(key.into(), value);
        }
    };
    add(3, "OS-EXT-SRV-ATTR:reservation_id", json!(format!("r-{}", &server.id[..8])));
    add(3, "OS-EXT-SRV-ATTR:launch_index", json!(0));
    add(3, "OS-EXT-SRV-ATTR:hostname", json!(server.name));
    add(3, "OS-EXT-SRV-ATTR:kernel_id", json!(""));
    add(3, "OS-EXT-SRV-ATTR:ramdisk_id", json!(""));
    add(3, "OS-EXT-SRV-ATTR:root_device_name", json!("/dev/vda"));
    add(3, "OS-EXT-SRV-ATTR:user_data", Value::Null);
    add(9, "locked", json!(false));
    let host_status = match host {
        Some(h) if service_state(h) == "down" => "DOWN",
        Some(h) if h.compute.status == "disabled" => "MAINTENANCE",
        Some(_) => "UP",
        None => "UNKNOWN",
    };
    add(16, "host_status", json!(host_status));
    add(19, "description", Value::Null);
    add(26, "tags", json!([]));
    add(63, "trusted_image_certificates", Value::Null);
    if show {
        add(71, "server_groups", json!([]));
    }
    add(73, "locked_reason", Value::Null);
    add(96, "pinned_availability_zone", Value::Null);
    // Nova's server view adds these only when the policy allows
    // (nova/api/openstack/compute/views/servers.py).
    let object = body.as_object_mut().expect("object");
    if !caller.can(world, "os_compute_api:os-extended-server-attributes") {
        object.retain(|key, _| !key.starts_with("OS-EXT-SRV-ATTR:"));
    }
    if !caller.can(world, "os_compute_api:servers:show:host_status") {
        object.remove("host_status");
    }
    body
}

/// The servers a listing shows, newest first (Nova sorts by created_at, id desc).
fn list_servers(
    state: &LabState,
    query: &Option<String>,
    detail: bool,
    version: Microversion,
    caller: &Caller,
) -> Response {
    let pairs = query_pairs(query);
    let (limit, marker) = match paging(&pairs) {
        Ok(paging) => paging,
        Err(refusal) => return refusal,
    };
    let all_tenants = query_value(&pairs, "all_tenants").is_some();
    let mut host_filter = query_value(&pairs, "host");
    let status_filter = query_value(&pairs, "status").map(str::to_ascii_uppercase);
    let mut project_filter = query_value(&pairs, "project_id").or_else(|| query_value(&pairs, "tenant_id"));
    let own_project = state.secrets.openstack_project_id.as_str();
    let world = state.world.lock();
    let kind = if detail { "detail" } else { "index" };
    if let Err(refusal) = authorize(&world, caller, &format!("os_compute_api:servers:{kind}")) {
        return refusal;
    }
    if all_tenants {
        if let Err(refusal) = authorize(&world, caller, &format!("os_compute_api:servers:{kind}:get_all_tenants")) {
            return refusal;
        }
    }
    // Without `allow_all_filters` Nova strips the options a project user may
    // not use (`host`, `project_id`, …) and answers as if they were not
    // given (nova/api/openstack/compute/servers.py, remove_invalid_options).
    if !caller.can(&world, "os_compute_api:servers:allow_all_filters") {
        host_filter = None;
        project_filter = None;
    }
    if let Some(marker) = &marker {
        if !world.servers.contains_key(marker) {
            return bad_request(&format!("marker [{marker}] not found"));
        }
    }
    let candidates: Box<dyn Iterator<Item = &Server>> = match &marker {
        Some(marker) => Box::new(world.servers.range::<String, _>(..marker.clone()).rev().map(|(_, s)| s)),
        None => Box::new(world.servers.values().rev()),
    };
    let page: Vec<&Server> = candidates
        .filter(|s| {
            if all_tenants {
                project_filter.is_none_or(|p| s.project_id == p)
            } else {
                s.project_id == own_project
            }
        })
        .filter(|s| host_filter.is_none_or(|h| nova_name(&world, &s.host) == h))
        .filter(|s| status_filter.as_deref().is_none_or(|st| s.status == st))
        .take(limit)
        .collect();
    let servers: Vec<Value> = page
        .iter()
        .map(|s| {
            if detail {
                server_json(&world, &state.urls, s, version, false, caller)
            } else {
                server_brief(&state.urls, s)
            }
        })
        .collect();
    let mut body = json!({"servers": servers});
    if limit > 0 && page.len() == limit {
        let path = if detail { "/servers/detail" } else { "/servers" };
        body["servers_links"] = next_link(&state.urls, path, &pairs, &page[page.len() - 1].id);
    }
    Json(body).into_response()
}

async fn list_servers_detail(
    State(state): State<LabState>,
    Extension(version): Extension<Microversion>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Response {
    list_servers(&state, &query, true, version, &caller)
}

async fn list_servers_brief(
    State(state): State<LabState>,
    Extension(version): Extension<Microversion>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Response {
    list_servers(&state, &query, false, version, &caller)
}

/// `common.get_instance`: a server the caller's context can read, else 404.
fn visible_server<'a>(world: &'a WorldState, caller: &Caller, id: &str) -> Result<&'a Server, Response> {
    world.servers.get(id).filter(|server| caller.sees_project(&server.project_id)).ok_or_else(|| server_not_found(id))
}

fn server_not_found(id: &str) -> Response {
    fault(StatusCode::NOT_FOUND, &format!("Instance {id} could not be found."))
}

async fn show_server(
    State(state): State<LabState>,
    Extension(version): Extension<Microversion>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    let world = state.world.lock();
    let server = match visible_server(&world, &caller, &id) {
        Ok(server) => server,
        Err(refusal) => return refusal,
    };
    if let Err(refusal) = authorize(&world, &caller, "os_compute_api:servers:show") {
        return refusal;
    }
    Json(json!({"server": server_json(&world, &state.urls, server, version, true, &caller)})).into_response()
}

async fn show_flavor(State(state): State<LabState>, Path(id): Path<String>) -> Response {
    let flavors = [("2", "m1.small", 2, 4096, 20), ("3", "m1.medium", 4, 8192, 40), ("4", "m1.large", 8, 16384, 80)];
    match flavors.iter().find(|f| f.0 == id) {
        Some((id, name, vcpus, ram, disk)) => Json(json!({"flavor": {
            "id": id, "name": name, "vcpus": vcpus, "ram": ram, "disk": disk, "OS-FLV-EXT-DATA:ephemeral": 0,
            "swap": "", "rxtx_factor": 1.0, "os-flavor-access:is_public": true, "OS-FLV-DISABLED:disabled": false,
            "links": [{"rel": "self", "href": format!("{}/flavors/{id}", state.urls.nova)}],
        }}))
        .into_response(),
        None => fault(StatusCode::NOT_FOUND, &format!("Flavor {id} could not be found.")),
    }
}

// ---------------------------------------------------------------- actions

async fn server_action(
    State(state): State<LabState>,
    Extension(version): Extension<Microversion>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("Malformed request body");
    };
    let Some((action, argument)) = body.iter().next() else {
        return bad_request("Malformed request body");
    };
    let rule = match action.as_str() {
        "os-migrateLive" => "os_compute_api:os-migrate-server:migrate_live",
        "migrate" => "os_compute_api:os-migrate-server:migrate",
        "os-start" => "os_compute_api:servers:start",
        "os-stop" => "os_compute_api:servers:stop",
        "reboot" => "os_compute_api:servers:reboot",
        _ => "os_compute_api:servers:confirm_resize",
    };
    {
        let world = state.world.lock();
        if let Err(refusal) = visible_server(&world, &caller, &id).and_then(|_| authorize(&world, &caller, rule)) {
            return refusal;
        }
    }
    match action.as_str() {
        "os-migrateLive" => live_migrate(&state, version, &id, argument),
        "migrate" => cold_migrate(&state, version, &id, argument),
        "confirmResize" => confirm_resize(&state, &id),
        "os-start" | "os-stop" | "reboot" => power_action(&state, &id, action, argument),
        other => bad_request(&format!("There is no such action: {other}")),
    }
}

/// Checks the `os-migrateLive` body against the schema of the microversion.
fn validate_live_body(version: Microversion, argument: &Value) -> Result<(Option<String>, bool), Response> {
    let field = "os-migrateLive";
    let Some(object) = argument.as_object() else {
        return Err(schema_error(field, argument, &format!("{argument} is not of type 'object'")));
    };
    let mut required = vec!["block_migration", "host"];
    let mut allowed = vec!["block_migration", "host"];
    if version.0 < 25 {
        required.push("disk_over_commit");
        allowed.push("disk_over_commit");
    }
    if (30..68).contains(&version.0) {
        allowed.push("force");
    }
    if let Some(missing) = required.iter().find(|key| !object.contains_key(**key)) {
        return Err(schema_error(field, argument, &format!("'{missing}' is a required property")));
    }
    if let Some(extra) = object.keys().find(|key| !allowed.contains(&key.as_str())) {
        return Err(schema_error(
            field,
            argument,
            &format!("Additional properties are not allowed ('{extra}' was unexpected)"),
        ));
    }
    let block = &object["block_migration"];
    if !(block.is_boolean() || (version.0 >= 25 && block == "auto")) {
        return Err(schema_error("block_migration", block, &format!("{block} is not of type 'boolean'")));
    }
    for key in ["disk_over_commit", "force"] {
        if let Some(value) = object.get(key).filter(|v| !v.is_boolean()) {
            return Err(schema_error(key, value, &format!("{value} is not of type 'boolean'")));
        }
    }
    let host = match &object["host"] {
        Value::Null => None,
        Value::String(host) if !host.is_empty() => Some(host.clone()),
        other => return Err(schema_error("host", other, &format!("{other} is not of type 'string', 'null'"))),
    };
    // Before 2.30 a given host bypasses the scheduler; from 2.30 only with force.
    let forced = host.is_some() && (version.0 < 30 || object.get("force") == Some(&Value::Bool(true)));
    Ok((host, forced))
}

fn invalid_state(action: &str, server: &Server, attribute: &str, state: &str) -> Response {
    fault(StatusCode::CONFLICT, &format!("Cannot '{action}' instance {} while it is in {attribute} {state}", server.id))
}

/// Why no destination could be chosen.
enum NoDestination {
    ToSelf,
    NoValidHost,
}

/// Picks a destination like the scheduler: an enabled, up host in the same
/// AZ, not the source, with room for the server's vCPUs, RAM and disk as
/// Placement counts it, the one with most free RAM first. A forced host
/// skips the filters.
fn choose_destination(
    world: &WorldState,
    server: &Server,
    requested: Option<&str>,
    forced: bool,
) -> Result<String, NoDestination> {
    if requested == Some(server.host.as_str()) {
        return Err(NoDestination::ToSelf);
    }
    let source_az = world.host(&server.host).map(|h| h.availability_zone.clone());
    if let (Some(requested), true) = (requested, forced) {
        return match world.host(requested) {
            Some(host) if service_state(host) == "up" => Ok(requested.to_owned()),
            _ => Err(NoDestination::NoValidHost),
        };
    }
    // Placement's figures: (total - reserved) × allocation_ratio, less what is allocated.
    let used = crate::placement::usages(world);
    world
        .hosts
        .iter()
        .filter(|h| h.fqdn != server.host && requested.is_none_or(|r| r == h.fqdn))
        .filter(|h| h.compute.status == "enabled" && service_state(h) == "up")
        .filter(|h| source_az.as_ref().is_none_or(|az| *az == h.availability_zone))
        .filter(|h| crate::placement::fits(&used, h, server))
        .map(|h| {
            let memory = crate::placement::inventories(h)["MEMORY_MB"];
            let in_use = used.get(h.fqdn.as_str()).and_then(|used| used.get("MEMORY_MB")).copied().unwrap_or(0);
            (h, memory.capacity() - in_use as f64)
        })
        .max_by(|a, b| a.1.total_cmp(&b.1).then_with(|| b.0.fqdn.cmp(&a.0.fqdn)))
        .map(|(h, _)| h.fqdn.clone())
        .ok_or(NoDestination::NoValidHost)
}

const NO_VALID_HOST: &str = "No valid host was found. There are not enough hosts available.";

/// Simulated seconds a migration of this server takes: 2 s + 0.5 s per GiB of RAM.
pub fn migration_duration_secs(server: &Server) -> f64 {
    2.0 + server.ram_mb as f64 / 1024.0 * 0.5
}

fn start_migration(world: &mut WorldState, server_id: &str, dest: &str, live: bool, status: &str) {
    let time_scale = world.time_scale;
    let now_sim = world.clock.now(time_scale);
    let id = world.next_id();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(world.seed ^ id.rotate_left(23) ^ 0x316);
    let uuid = crate::world::uuid(&mut rng);
    let server = world.servers.get_mut(server_id).expect("server exists");
    let previous_status = server.status.clone();
    if status != "error" {
        server.status = if live { "MIGRATING" } else { "RESIZE" }.into();
        server.task_state = Some(if live { "migrating" } else { "resize_migrating" }.into());
    }
    let flavor = flavor_id(&server.flavor_name);
    let now = now_text();
    let migration = Migration {
        id,
        uuid,
        server_id: server_id.to_owned(),
        source_compute: server.host.clone(),
        dest_compute: dest.to_owned(),
        migration_type: if live { "live-migration" } else { "migration" }.into(),
        status: status.into(),
        old_instance_type_id: flavor,
        new_instance_type_id: flavor,
        created_at: now.clone(),
        updated_at: now,
        duration_secs: migration_duration_secs(server),
        started_at_sim: now_sim,
        previous_status,
    };
    let source = migration.source_compute.clone();
    world.migrations.push(migration);
    world.count_concurrent_migrations(&source);
}

fn live_migrate(state: &LabState, version: Microversion, id: &str, argument: &Value) -> Response {
    let (host, forced) = match validate_live_body(version, argument) {
        Ok(parsed) => parsed,
        Err(refusal) => return refusal,
    };
    let mut world = state.world.lock();
    let Some(server) = world.servers.get(id) else { return server_not_found(id) };
    let (vm_state, _) = vm_and_power_state(&world, server);
    if !["active", "paused"].contains(&vm_state) {
        return invalid_state("os-migrateLive", server, "vm_state", vm_state);
    }
    if let Some(task) = &server.task_state {
        return invalid_state("os-migrateLive", server, "task_state", task);
    }
    let host = match host.map(|name| host_named(&world, &name).map(|h| h.fqdn.clone()).ok_or(name)).transpose() {
        Ok(host) => host,
        Err(name) => return bad_request(&format!("Compute host {name} could not be found.")),
    };
    let server = server.clone();
    match choose_destination(&world, &server, host.as_deref(), forced) {
        Ok(dest) => start_migration(&mut world, id, &dest, true, "queued"),
        // From 2.34 the checks run in the background: the request is accepted
        // and the migration ends in error.
        Err(_) if version.0 >= 34 => {
            let dest = host.unwrap_or_default();
            start_migration(&mut world, id, &dest, true, "error");
        }
        Err(NoDestination::ToSelf) => {
            let current = nova_name(&world, &server.host);
            return bad_request(&format!("Unable to migrate instance ({id}) to current host ({current})."));
        }
        Err(NoDestination::NoValidHost) => return bad_request(NO_VALID_HOST),
    }
    StatusCode::ACCEPTED.into_response()
}

fn cold_migrate(state: &LabState, version: Microversion, id: &str, argument: &Value) -> Response {
    let host = match argument {
        Value::Null => None,
        Value::Object(object) if version.0 >= 56 => {
            if let Some(extra) = object.keys().find(|k| *k != "host") {
                return schema_error(
                    "migrate",
                    argument,
                    &format!("Additional properties are not allowed ('{extra}' was unexpected)"),
                );
            }
            match object.get("host") {
                None | Some(Value::Null) => None,
                Some(Value::String(host)) if !host.is_empty() => Some(host.clone()),
                Some(other) => return schema_error("host", other, &format!("{other} is not of type 'string', 'null'")),
            }
        }
        other => return schema_error("migrate", other, &format!("{other} is not of type 'null'")),
    };
    let mut world = state.world.lock();
    let Some(server) = world.servers.get(id) else { return server_not_found(id) };
    let (vm_state, _) = vm_and_power_state(&world, server);
    if !["active", "stopped"].contains(&vm_state) {
        return invalid_state("migrate", server, "vm_state", vm_state);
    }
    if let Some(task) = &server.task_state {
        return invalid_state("migrate", server, "task_state", task);
    }
    let host = match host.map(|name| host_named(&world, &name).map(|h| h.fqdn.clone()).ok_or(name)).transpose() {
        Ok(host) => host,
        Err(name) => return bad_request(&format!("Compute host {name} could not be found.")),
    };
    let server = server.clone();
    match choose_destination(&world, &server, host.as_deref(), false) {
        Ok(dest) => start_migration(&mut world, id, &dest, false, "pre-migrating"),
        Err(NoDestination::ToSelf) => return bad_request("Cannot migrate to the host where the server exists."),
        Err(NoDestination::NoValidHost) => return bad_request(NO_VALID_HOST),
    }
    StatusCode::ACCEPTED.into_response()
}

/// `os-start`, `os-stop`, `reboot`, with the vm_state checks of
/// nova/compute/api.py (`@check_instance_state`): start from `stopped`; stop
/// from `active` or `error`; a soft reboot from `active` only, a hard one
/// also from `stopped`, `paused`, `suspended` or `error`. The guest changes
/// state at once; every accepted request is recorded.
fn power_action(state: &LabState, id: &str, action: &str, argument: &Value) -> Response {
    let mut world = state.world.lock();
    let Some(server) = world.servers.get(id) else { return server_not_found(id) };
    let (vm_state, _) = vm_and_power_state(&world, server);
    let reboot_type = argument.get("type").and_then(Value::as_str).unwrap_or_default().to_owned();
    if action == "reboot" && !["SOFT", "HARD"].contains(&reboot_type.as_str()) {
        return bad_request("Invalid input for field/attribute type. Value: None. None is not one of ['HARD', 'Soft', 'hard', 'soft', 'SOFT', 'Hard']");
    }
    let (allowed, verb): (&[&str], &str) = match action {
        "os-start" => (&["stopped"], "start"),
        "os-stop" => (&["active", "error"], "stop"),
        _ if reboot_type == "HARD" => (&["active", "stopped", "paused", "suspended", "error"], "reboot"),
        _ => (&["active"], "reboot"),
    };
    if !allowed.contains(&vm_state) || server.task_state.is_some() {
        return invalid_state(verb, server, "vm_state", vm_state);
    }
    let status = if action == "os-stop" { "SHUTOFF" } else { "ACTIVE" };
    if let Some(server) = world.servers.get_mut(id) {
        server.status = status.into();
    }
    world.nova_power_actions.push(format!("{action} {id}"));
    StatusCode::ACCEPTED.into_response()
}

fn confirm_resize(state: &LabState, id: &str) -> Response {
    let mut world = state.world.lock();
    let Some(server) = world.servers.get(id) else { return server_not_found(id) };
    if server.status != "VERIFY_RESIZE" {
        let (vm_state, _) = vm_and_power_state(&world, server);
        return invalid_state("confirmResize", server, "vm_state", vm_state);
    }
    let Some(migration) = world.migrations.iter_mut().rev().find(|m| m.server_id == id && m.status == "finished")
    else {
        return bad_request(&format!("Migration for instance {id} with status finished could not be found."));
    };
    migration.status = "confirmed".into();
    migration.updated_at = now_text();
    let previous = migration.previous_status.clone();
    if let Some(server) = world.servers.get_mut(id) {
        server.status = if previous == "SHUTOFF" { previous } else { "ACTIVE".into() };
    }
    StatusCode::NO_CONTENT.into_response()
}

// ---------------------------------------------------------------- migrations

fn migration_json(
    world: &WorldState,
    urls: &Urls,
    migration: &Migration,
    version: Microversion,
    add_host: bool,
) -> Value {
    let server = world.servers.get(&migration.server_id);
    let dest_host = world.host(&migration.dest_compute).map(host_ip);
    let mut body = json!({
        "id": migration.id,
        "instance_uuid": migration.server_id,
        "source_compute": nova_name(world, &migration.source_compute),
        "dest_compute": nova_name(world, &migration.dest_compute),
        "source_node": migration.source_compute,
        "dest_node": migration.dest_compute,
        "source_region": "RegionOne",
        "dest_region": "RegionOne",
        "dest_host": dest_host,
        "status": migration.status,
        "old_instance_type_id": migration.old_instance_type_id,
        "new_instance_type_id": migration.new_instance_type_id,
        "created_at": migration.created_at,
        "updated_at": migration.updated_at,
    });
    let object = body.as_object_mut().expect("object");
    object.remove("source_region");
    object.remove("dest_region");
    if version.0 >= 23 {
        object.insert("migration_type".into(), json!(migration.migration_type));
        if migration.migration_type == "live-migration" && LIVE_IN_PROGRESS.contains(&migration.status.as_str()) {
            let path = format!("/servers/{}/migrations/{}", migration.server_id, migration.id);
            object.insert(
                "links".into(),
                json!([{"rel": "self", "href": format!("{}{path}", urls.nova)}, {"rel": "bookmark", "href": format!("{}{path}", root_url(urls))}]),
            );
        }
    }
    if version.0 >= 59 {
        object.insert("uuid".into(), json!(migration.uuid));
    }
    if version.0 >= 80 {
        object.insert("user_id".into(), json!(server.map(|s| s.user_id.clone())));
        object.insert("project_id".into(), json!(server.map(|s| s.project_id.clone())));
    }
    // Without `os-migrations:index:host` Nova blanks the host fields
    // (nova/api/openstack/compute/migrations.py, `_output(add_host=False)`).
    if !add_host {
        for key in ["source_compute", "dest_compute", "source_node", "dest_node", "dest_host"] {
            object.insert(key.into(), Value::Null);
        }
    }
    body
}

async fn list_migrations(
    State(state): State<LabState>,
    Extension(version): Extension<Microversion>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Response {
    let pairs = query_pairs(&query);
    let (limit, marker) = if version.0 >= 59 {
        match paging(&pairs) {
            Ok(paging) => paging,
            Err(refusal) => return refusal,
        }
    } else {
        (usize::MAX, None)
    };
    let host = query_value(&pairs, "host");
    let status = query_value(&pairs, "status");
    let kind = query_value(&pairs, "migration_type");
    let instance = query_value(&pairs, "instance_uuid");
    let world = state.world.lock();
    // nova/api/openstack/compute/migrations.py `_index`: the list, then all
    // projects unless the caller's own is asked for, then host info (not fatal).
    let project = query_value(&pairs, "project_id");
    let mut rules = vec!["os_compute_api:os-migrations:index"];
    if project.is_none_or(|project| project != caller.project_id) {
        rules.push("os_compute_api:os-migrations:index:all_projects");
    }
    if let Some(refusal) = rules.into_iter().find_map(|rule| authorize(&world, &caller, rule).err()) {
        return refusal;
    }
    let add_host = caller.can(&world, "os_compute_api:os-migrations:index:host");
    // Newest first (created_at desc, id desc).
    let mut ordered: Vec<&Migration> = world.migrations.iter().rev().collect();
    if let Some(marker) = &marker {
        match ordered.iter().position(|m| &m.uuid == marker) {
            Some(position) => ordered.drain(..=position),
            None => return bad_request(&format!("Marker {marker} could not be found.")),
        };
    }
    let page: Vec<&Migration> = ordered
        .into_iter()
        .filter(|m| {
            host.is_none_or(|h| nova_name(&world, &m.source_compute) == h || nova_name(&world, &m.dest_compute) == h)
        })
        .filter(|m| status.is_none_or(|s| m.status == s))
        .filter(|m| kind.is_none_or(|k| m.migration_type == k))
        .filter(|m| instance.is_none_or(|i| m.server_id == i))
        .take(limit)
        .collect();
    let migrations: Vec<Value> =
        page.iter().map(|m| migration_json(&world, &state.urls, m, version, add_host)).collect();
    let mut body = json!({"migrations": migrations});
    if version.0 >= 59 && limit > 0 && page.len() == limit {
        body["migrations_links"] = next_link(&state.urls, "/os-migrations", &pairs, &page[page.len() - 1].uuid);
    }
    Json(body).into_response()
}

/// `GET /servers/{id}/migrations/...` exists from 2.22.
fn check_server_migrations_version(version: Microversion) -> Result<(), Response> {
    if version.0 < 22 {
        return Err(fault(StatusCode::NOT_FOUND, "The resource could not be found."));
    }
    Ok(())
}

fn live_progress_json(world: &WorldState, migration: &Migration, version: Microversion) -> Value {
    let server = world.servers.get(&migration.server_id);
    let total = server.map_or(0, |s| s.ram_mb * 1024 * 1024);
    let processed = match migration.status.as_str() {
        "running" => total / 2,
        "post-migrating" => total,
        _ => 0,
    };
    let mut body = json!({
        "id": migration.id,
        "server_uuid": migration.server_id,
        "source_compute": nova_name(world, &migration.source_compute),
        "dest_compute": nova_name(world, &migration.dest_compute),
        "source_node": migration.source_compute,
        "dest_node": migration.dest_compute,
        "dest_host": world.host(&migration.dest_compute).map(host_ip),
        "status": migration.status,
        "memory_total_bytes": total,
        "memory_processed_bytes": processed,
        "memory_remaining_bytes": total - processed,
        "disk_total_bytes": 0,
        "disk_processed_bytes": 0,
        "disk_remaining_bytes": 0,
        "created_at": migration.created_at,
        "updated_at": migration.updated_at,
    });
    if version.0 >= 59 {
        body["uuid"] = json!(migration.uuid);
    }
    if version.0 >= 80 {
        body["user_id"] = json!(server.map(|s| s.user_id.clone()));
        body["project_id"] = json!(server.map(|s| s.project_id.clone()));
    }
    body
}

fn live_in_progress<'a>(world: &'a WorldState, server_id: &'a str) -> impl Iterator<Item = &'a Migration> + 'a {
    world.migrations.iter().filter(move |m| {
        m.server_id == server_id
            && m.migration_type == "live-migration"
            && LIVE_IN_PROGRESS.contains(&m.status.as_str())
    })
}

async fn server_migrations(
    State(state): State<LabState>,
    Extension(version): Extension<Microversion>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    if let Err(refusal) = check_server_migrations_version(version) {
        return refusal;
    }
    let world = state.world.lock();
    if let Err(refusal) = visible_server(&world, &caller, &id)
        .and_then(|_| authorize(&world, &caller, "os_compute_api:servers:migrations:index"))
    {
        return refusal;
    }
    let migrations: Vec<Value> =
        live_in_progress(&world, &id).map(|m| live_progress_json(&world, m, version)).collect();
    Json(json!({"migrations": migrations})).into_response()
}

fn migration_not_in_progress(mid: &str, id: &str) -> Response {
    fault(StatusCode::NOT_FOUND, &format!("In-progress live migration {mid} is not found for server {id}."))
}

async fn server_migration(
    State(state): State<LabState>,
    Extension(version): Extension<Microversion>,
    Extension(caller): Extension<Caller>,
    Path((id, mid)): Path<(String, String)>,
) -> Response {
    if let Err(refusal) = check_server_migrations_version(version) {
        return refusal;
    }
    let world = state.world.lock();
    if let Err(refusal) = visible_server(&world, &caller, &id)
        .and_then(|_| authorize(&world, &caller, "os_compute_api:servers:migrations:show"))
    {
        return refusal;
    }
    let found = live_in_progress(&world, &id).find(|m| m.id.to_string() == mid).cloned();
    match found {
        Some(migration) => Json(json!({"migration": live_progress_json(&world, &migration, version)})).into_response(),
        None => migration_not_in_progress(&mid, &id),
    }
}

/// Finds a live migration of a server for abort or force-complete.
fn migration_index(world: &WorldState, caller: &Caller, rule: &str, id: &str, mid: &str) -> Result<usize, Response> {
    visible_server(world, caller, id)?;
    authorize(world, caller, rule)?;
    world
        .migrations
        .iter()
        .position(|m| m.server_id == id && m.id.to_string() == mid && m.migration_type == "live-migration")
        .ok_or_else(|| fault(StatusCode::NOT_FOUND, &format!("Migration {mid} could not be found.")))
}

fn invalid_migration_state(migration: &Migration, method: &str) -> Response {
    bad_request(&format!(
        "Migration {} state of instance {} is {}. Cannot {method} while the migration is in this state.",
        migration.id, migration.server_id, migration.status
    ))
}

async fn abort_migration(
    State(state): State<LabState>,
    Extension(version): Extension<Microversion>,
    Extension(caller): Extension<Caller>,
    Path((id, mid)): Path<(String, String)>,
) -> Response {
    if version.0 < 24 {
        return fault(StatusCode::NOT_FOUND, "The resource could not be found.");
    }
    let mut world = state.world.lock();
    let index = match migration_index(&world, &caller, "os_compute_api:servers:migrations:delete", &id, &mid) {
        Ok(index) => index,
        Err(refusal) => return refusal,
    };
    let abortable: &[&str] = if version.0 >= 65 { &["queued", "preparing", "running"] } else { &["running"] };
    let migration = &mut world.migrations[index];
    if !abortable.contains(&migration.status.as_str()) {
        return invalid_migration_state(migration, "abort live migration");
    }
    migration.status = "cancelled".into();
    migration.updated_at = now_text();
    let previous = migration.previous_status.clone();
    if let Some(server) = world.servers.get_mut(&id) {
        server.status = previous;
        server.task_state = None;
    }
    StatusCode::ACCEPTED.into_response()
}

async fn force_complete_migration(
    State(state): State<LabState>,
    Extension(version): Extension<Microversion>,
    Extension(caller): Extension<Caller>,
    Path((id, mid)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if let Err(refusal) = check_server_migrations_version(version) {
        return refusal;
    }
    let valid = serde_json::from_slice::<Value>(&body).is_ok_and(|b| b.get("force_complete") == Some(&Value::Null));
    if !valid {
        return bad_request("Malformed request body");
    }
    let mut world = state.world.lock();
    let rule = "os_compute_api:servers:migrations:force_complete";
    let index = match migration_index(&world, &caller, rule, &id, &mid) {
        Ok(index) => index,
        Err(refusal) => return refusal,
    };
    let time_scale = world.time_scale;
    let now = world.clock.now(time_scale);
    let migration = &mut world.migrations[index];
    if migration.status != "running" {
        return invalid_migration_state(migration, "force complete");
    }
    // Switching to post-copy ends it at once (a hung one stays hung).
    migration.duration_secs = (now - migration.started_at_sim).max(0.001);
    world.advance_migrations();
    StatusCode::ACCEPTED.into_response()
}

// ---------------------------------------------------------------- hypervisors

/// vCPUs, RAM, disk and VM count in use per host.
fn usage_by_host(world: &WorldState) -> HashMap<&str, (u64, u64, u64, u64)> {
    let mut used: HashMap<&str, (u64, u64, u64, u64)> = HashMap::with_capacity(world.hosts.len());
    for server in world.servers.values() {
        let entry = used.entry(server.host.as_str()).or_default();
        entry.0 += u64::from(server.vcpus);
        entry.1 += server.ram_mb;
        entry.2 += server.disk_gb;
        entry.3 += 1;
    }
    used
}

fn cpu_info(host: &Host) -> Value {
    json!({
        "arch": host.cpu.arch, "model": host.cpu.model, "vendor": host.cpu.vendor,
        "topology": {"cells": host.cpu.numa_cells, "sockets": host.cpu.sockets, "cores": host.cpu.cores_per_socket, "threads": host.cpu.threads_per_core},
        "features": ["avx2", "pdpe1gb", "svm", "x2apic"],
    })
}

const UPTIME: &str = " 09:00:00 up 93 days, 18:25,  1 user,  load average: 0.20, 0.12, 0.14";

fn hypervisor_json(
    world: &WorldState,
    host: &Host,
    usage: (u64, u64, u64, u64),
    version: Microversion,
    detail: bool,
    with_servers: bool,
) -> Value {
    let mut body = json!({
        "id": if version.0 >= 53 { json!(host.hypervisor_uuid) } else { json!(host.hypervisor_id) },
        "hypervisor_hostname": host.fqdn,
        "state": service_state(host),
        "status": host.compute.status,
    });
    if detail {
        let local_gb: u64 = host.disks.iter().map(|d| d.size_bytes >> 30).sum();
        let (vcpus_used, ram_used, disk_used, running) = usage;
        let object = body.as_object_mut().expect("object");
        object.insert("hypervisor_type".into(), json!("QEMU"));
        object.insert("hypervisor_version".into(), json!(6_002_000));
        object.insert("host_ip".into(), json!(host_ip(host)));
        object.insert(
            "service".into(),
            json!({
                "host": nova_name(world, &host.fqdn),
                "id": if version.0 >= 53 { json!(host.compute.uuid) } else { json!(host.compute.id) },
                "disabled_reason": host.compute.disabled_reason,
            }),
        );
        if version.0 < 88 {
            let stats = [
                ("vcpus", json!(host.cpu.logical_cpus())),
                ("vcpus_used", json!(vcpus_used)),
                ("memory_mb", json!(host.memory_mib)),
                ("memory_mb_used", json!(ram_used)),
                ("free_ram_mb", json!(host.memory_mib as i64 - ram_used as i64)),
                ("local_gb", json!(local_gb)),
                ("local_gb_used", json!(disk_used)),
                ("free_disk_gb", json!(local_gb as i64 - disk_used as i64)),
                ("disk_available_least", json!(local_gb as i64 - disk_used as i64)),
                ("running_vms", json!(running)),
                ("current_workload", json!(0)),
                ("cpu_info", if version.0 >= 28 { cpu_info(host) } else { json!(cpu_info(host).to_string()) }),
            ];
            object.extend(stats.into_iter().map(|(k, v)| (k.to_owned(), v)));
        } else {
            object.insert("uptime".into(), json!(UPTIME));
        }
    }
    if with_servers {
        let servers: Vec<Value> =
            world.servers_on(&host.fqdn).map(|s| json!({"name": s.instance_name, "uuid": s.id})).collect();
        if !servers.is_empty() {
            body["servers"] = json!(servers);
        }
    }
    body
}

fn list_hypervisors(
    state: &LabState,
    query: &Option<String>,
    version: Microversion,
    detail: bool,
    caller: &Caller,
) -> Response {
    let pairs = query_pairs(query);
    let (limit, marker) = if version.0 >= 33 {
        match paging(&pairs) {
            Ok(paging) => paging,
            Err(refusal) => return refusal,
        }
    } else {
        (usize::MAX, None)
    };
    let pattern = query_value(&pairs, "hypervisor_hostname_pattern").filter(|_| version.0 >= 53);
    let with_servers = version.0 >= 53 && query_value(&pairs, "with_servers").is_some_and(|v| v == "true" || v == "1");
    if pattern.is_some() && (query_value(&pairs, "limit").is_some() || marker.is_some()) {
        return bad_request(
            "Paging over hypervisors with the hypervisor_hostname_pattern query parameter is not supported.",
        );
    }
    let world = state.world.lock();
    let rule = if detail { "os_compute_api:os-hypervisors:list-detail" } else { "os_compute_api:os-hypervisors:list" };
    if let Err(refusal) = authorize(&world, caller, rule) {
        return refusal;
    }
    let id_of = |h: &Host| if version.0 >= 53 { h.hypervisor_uuid.clone() } else { h.hypervisor_id.to_string() };
    let mut hosts: Vec<&Host> = world.hosts.iter().collect();
    if version.0 >= 53 {
        hosts.sort_by(|a, b| a.hypervisor_uuid.cmp(&b.hypervisor_uuid));
    }
    if let Some(marker) = &marker {
        match hosts.iter().position(|h| id_of(h) == *marker) {
            Some(position) => hosts.drain(..=position),
            None => return bad_request(&format!("marker [{marker}] not found")),
        };
    }
    if let Some(pattern) = pattern {
        hosts.retain(|h| h.fqdn.contains(pattern));
        if hosts.is_empty() {
            return fault(StatusCode::NOT_FOUND, &format!("No hypervisor matching '{pattern}' could be found."));
        }
    }
    hosts.truncate(limit);
    let usage = if detail { usage_by_host(&world) } else { HashMap::new() };
    let hypervisors: Vec<Value> = hosts
        .iter()
        .map(|h| {
            let used = usage.get(h.fqdn.as_str()).copied().unwrap_or_default();
            hypervisor_json(&world, h, used, version, detail, with_servers)
        })
        .collect();
    let mut body = json!({"hypervisors": hypervisors});
    if version.0 >= 33 && limit > 0 && hosts.len() == limit {
        let path = if detail { "/os-hypervisors/detail" } else { "/os-hypervisors" };
        body["hypervisors_links"] = next_link(&state.urls, path, &pairs, &id_of(hosts[hosts.len() - 1]));
    }
    Json(body).into_response()
}

async fn list_hypervisors_detail(
    State(state): State<LabState>,
    Extension(version): Extension<Microversion>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Response {
    list_hypervisors(&state, &query, version, true, &caller)
}

async fn list_hypervisors_brief(
    State(state): State<LabState>,
    Extension(version): Extension<Microversion>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Response {
    list_hypervisors(&state, &query, version, false, &caller)
}

/// Finds a hypervisor by its id for the microversion (UUID from 2.53).
fn find_hypervisor<'a>(world: &'a WorldState, id: &str, version: Microversion) -> Result<&'a Host, Response> {
    if version.0 >= 53 && !is_uuid_like(id) {
        return Err(bad_request(&format!("Invalid uuid {id}")));
    }
    world
        .hosts
        .iter()
        .find(|h| if version.0 >= 53 { h.hypervisor_uuid == id } else { h.hypervisor_id.to_string() == id })
        .ok_or_else(|| fault(StatusCode::NOT_FOUND, &format!("Hypervisor with ID '{id}' could not be found.")))
}

async fn show_hypervisor(
    State(state): State<LabState>,
    Extension(version): Extension<Microversion>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let pairs = query_pairs(&query);
    let with_servers = version.0 >= 53 && query_value(&pairs, "with_servers").is_some_and(|v| v == "true" || v == "1");
    let world = state.world.lock();
    if let Err(refusal) = authorize(&world, &caller, "os_compute_api:os-hypervisors:show") {
        return refusal;
    }
    let host = match find_hypervisor(&world, &id, version) {
        Ok(host) => host,
        Err(refusal) => return refusal,
    };
    let mut used = (0, 0, 0, 0);
    for server in world.servers_on(&host.fqdn) {
        used.0 += u64::from(server.vcpus);
        used.1 += server.ram_mb;
        used.2 += server.disk_gb;
        used.3 += 1;
    }
    Json(json!({"hypervisor": hypervisor_json(&world, host, used, version, true, with_servers)})).into_response()
}

async fn hypervisor_uptime(
    State(state): State<LabState>,
    Extension(version): Extension<Microversion>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    if version.0 >= 88 {
        return fault(StatusCode::NOT_FOUND, "The resource could not be found.");
    }
    let world = state.world.lock();
    if let Err(refusal) = authorize(&world, &caller, "os_compute_api:os-hypervisors:uptime") {
        return refusal;
    }
    let host = match find_hypervisor(&world, &id, version) {
        Ok(host) => host,
        Err(refusal) => return refusal,
    };
    let mut body = hypervisor_json(&world, host, (0, 0, 0, 0), version, false, false);
    body["uptime"] = json!(UPTIME);
    Json(json!({"hypervisor": body})).into_response()
}

// ---------------------------------------------------------------- aggregates

async fn list_aggregates(
    State(state): State<LabState>,
    Extension(version): Extension<Microversion>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let world = state.world.lock();
    if let Err(refusal) = authorize(&world, &caller, "os_compute_api:os-aggregates:index") {
        return refusal;
    }
    let mut groups: Vec<(String, String, Vec<String>)> = Vec::new();
    for host in &world.hosts {
        match groups.iter_mut().find(|(name, _, _)| *name == host.aggregate) {
            Some(group) => group.2.push(nova_name(&world, &host.fqdn)),
            None => groups.push((
                host.aggregate.clone(),
                host.availability_zone.clone(),
                vec![nova_name(&world, &host.fqdn)],
            )),
        }
    }
    let aggregates: Vec<Value> = groups
        .into_iter()
        .enumerate()
        .map(|(index, (name, zone, hosts))| {
            let mut aggregate = json!({
                "id": index + 1, "name": name, "availability_zone": zone, "hosts": hosts,
                "metadata": {"availability_zone": zone}, "created_at": "2025-06-01T10:00:00.000000",
                "updated_at": null, "deleted": false, "deleted_at": null,
            });
            if version.0 >= 41 {
                aggregate["uuid"] = json!(format!("6ba28ba7-f29b-45cc-a30b-{:012x}", index + 1));
            }
            aggregate
        })
        .collect();
    Json(json!({"aggregates": aggregates})).into_response()
}
