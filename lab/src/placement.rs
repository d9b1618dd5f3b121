//! The Placement emulator (openstack/placement): the version document,
//! microversions up to [`MAX_MINOR`], resource providers (one per compute
//! node, named by its `hypervisor_hostname`, with its UUID), their
//! inventories and usages, and the allocations of a consumer (a server).
//!
//! Inventories come from each host's [`HostAllocation`] as nova-compute
//! reports them: `total`, `reserved`, `allocation_ratio`, `max_unit`. The
//! lab's scheduler ([`crate::nova`]) counts room the same way, so a site
//! whose ratios differ from Nova's defaults refuses what they would allow.
//!
//! Every call needs a valid token and Placement's default policy
//! (`placement/policies/*.py`, `ADMIN_OR_SERVICE`): a token without the admin
//! role is refused with 403 unless the site grants the rule.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::{json, Value};

use crate::policy::Caller;
use crate::world::{Host, HostAllocation, WorldState};
use crate::LabState;

/// The newest microversion served: 1.39 (Placement 2023.1 and later).
pub const MAX_MINOR: u16 = 39;

pub const LIST_PROVIDERS: &str = "placement:resource_providers:list";
pub const SHOW_PROVIDER: &str = "placement:resource_providers:show";
pub const LIST_INVENTORIES: &str = "placement:resource_providers:inventories:list";
pub const PROVIDER_USAGES: &str = "placement:resource_providers:usages";
pub const LIST_ALLOCATIONS: &str = "placement:allocations:list";

/// The microversion of a request (`OpenStack-API-Version: placement 1.N`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Microversion(pub u16);

/// One resource class of a provider's inventory.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Inventory {
    pub total: u64,
    pub reserved: u64,
    pub allocation_ratio: f64,
    pub max_unit: u64,
}

impl Inventory {
    /// What Placement lets allocations reach: `(total - reserved) × ratio`.
    pub fn capacity(&self) -> f64 {
        self.total.saturating_sub(self.reserved) as f64 * self.allocation_ratio
    }
}

/// The inventory nova-compute reports for a host (libvirt driver): VCPU,
/// MEMORY_MB and DISK_GB; the reserved disk is rounded up to whole GiB
/// (nova `compute/utils.py` `convert_mb_to_ceil_gb`).
pub fn inventories(host: &Host) -> BTreeMap<&'static str, Inventory> {
    let HostAllocation {
        cpu_allocation_ratio,
        ram_allocation_ratio,
        disk_allocation_ratio,
        reserved_host_cpus,
        reserved_host_memory_mb,
        reserved_host_disk_mb,
    } = host.allocation.clone();
    let vcpus = u64::from(host.cpu.logical_cpus());
    let local_gb: u64 = host.disks.iter().map(|disk| disk.size_bytes >> 30).sum();
    BTreeMap::from([
        (
            "VCPU",
            Inventory {
                total: vcpus,
                reserved: u64::from(reserved_host_cpus),
                allocation_ratio: cpu_allocation_ratio,
                max_unit: vcpus,
            },
        ),
        (
            "MEMORY_MB",
            Inventory {
                total: host.memory_mib,
                reserved: reserved_host_memory_mb,
                allocation_ratio: ram_allocation_ratio,
                max_unit: host.memory_mib,
            },
        ),
        (
            "DISK_GB",
            Inventory {
                total: local_gb,
                reserved: reserved_host_disk_mb.div_ceil(1024),
                allocation_ratio: disk_allocation_ratio,
                max_unit: local_gb,
            },
        ),
    ])
}

/// What is allocated against each host's provider: its servers, and the
/// servers migrating to it (the scheduler claims the destination at once).
pub fn usages(world: &WorldState) -> BTreeMap<&str, BTreeMap<&'static str, u64>> {
    let mut used: BTreeMap<&str, BTreeMap<&'static str, u64>> = BTreeMap::new();
    let migrating = world
        .migrations
        .iter()
        .filter(|m| crate::nova::migration_in_progress(m))
        .filter_map(|m| Some((m.dest_compute.as_str(), world.servers.get(&m.server_id)?)));
    let placed = world.servers.values().map(|server| (server.host.as_str(), server));
    for (host, server) in placed.chain(migrating) {
        let Some(host) = world.host(host) else { continue };
        let entry = used.entry(host.fqdn.as_str()).or_default();
        *entry.entry("VCPU").or_default() += u64::from(server.vcpus);
        *entry.entry("MEMORY_MB").or_default() += server.ram_mb;
        *entry.entry("DISK_GB").or_default() += server.disk_gb;
    }
    used
}

/// Whether a server fits on a host as Placement would allow it, given the usages.
pub fn fits(used: &BTreeMap<&str, BTreeMap<&'static str, u64>>, host: &Host, server: &crate::world::Server) -> bool {
    let host_used = used.get(host.fqdn.as_str());
    let wanted = [("VCPU", u64::from(server.vcpus)), ("MEMORY_MB", server.ram_mb), ("DISK_GB", server.disk_gb)];
    let inventories = inventories(host);
    wanted.iter().all(|(class, amount)| {
        let inventory = inventories[class];
        let in_use = host_used.and_then(|used| used.get(class)).copied().unwrap_or(0);
        *amount <= inventory.max_unit && (in_use + amount) as f64 <= inventory.capacity()
    })
}

pub fn router(state: LabState) -> Router {
    let api = Router::new()
        .route("/resource_providers", get(list_providers))
        .route("/resource_providers/{uuid}", get(show_provider))
        .route("/resource_providers/{uuid}/inventories", get(list_inventories))
        .route("/resource_providers/{uuid}/usages", get(provider_usages))
        .route("/allocations/{consumer}", get(consumer_allocations))
        .fallback(not_found)
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), gate));
    Router::new().route("/", get(versions)).merge(api).with_state(state)
}

/// Placement's error envelope (`placement/util.py` `json_error_formatter`).
pub fn error(status: StatusCode, detail: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let body = json!({"errors": [{
        "status": status.as_u16(), "title": title, "detail": detail,
        "code": "placement.undefined_code", "request_id": "req-5b0e6f1c-3a7d-4c8e-9f21-0d4b6a8c2e17",
    }]});
    (status, Json(body)).into_response()
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "The resource could not be found.")
}

/// `GET /`: no token needed, one version with its microversion range.
async fn versions() -> Response {
    Json(json!({"versions": [{
        "id": "v1.0", "max_version": format!("1.{MAX_MINOR}"), "min_version": "1.0", "status": "CURRENT",
        "links": [{"rel": "self", "href": ""}],
    }]}))
    .into_response()
}

fn requested_microversion(headers: &HeaderMap) -> Result<Microversion, Response> {
    let header = headers.get("openstack-api-version").and_then(|v| v.to_str().ok()).unwrap_or("");
    let requested = header.split(',').find_map(|part| {
        let mut words = part.split_whitespace();
        words.next().is_some_and(|s| s.eq_ignore_ascii_case("placement")).then(|| words.next().unwrap_or("").to_owned())
    });
    let Some(requested) = requested else { return Ok(Microversion(0)) };
    if requested.eq_ignore_ascii_case("latest") {
        return Ok(Microversion(MAX_MINOR));
    }
    match requested.split_once('.').map(|(major, minor)| (major.parse::<u16>(), minor.parse::<u16>())) {
        Some((Ok(1), Ok(minor))) if minor <= MAX_MINOR => Ok(Microversion(minor)),
        Some((Ok(_), Ok(_))) => {
            Err(error(StatusCode::NOT_ACCEPTABLE, &format!("Unacceptable version header: {requested}")))
        }
        _ => Err(error(StatusCode::BAD_REQUEST, &format!("invalid version string: {requested}"))),
    }
}

/// keystonemiddleware's token check, then the microversion.
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
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&format!("placement 1.{}", version.0)) {
        response.headers_mut().insert("openstack-api-version", value);
    }
    response.headers_mut().insert("vary", HeaderValue::from_static("openstack-api-version"));
    response
}

fn authorize(world: &WorldState, caller: &Caller, rule: &str) -> Result<(), Response> {
    if caller.can(world, rule) {
        Ok(())
    } else {
        Err(error(StatusCode::FORBIDDEN, &format!("Policy does not allow {rule} to be performed.")))
    }
}

fn provider_json(host: &Host, version: Microversion) -> Value {
    let uuid = &host.hypervisor_uuid;
    let mut body = json!({
        "uuid": uuid, "name": host.fqdn, "generation": 3,
        "links": [{"rel": "self", "href": format!("/resource_providers/{uuid}")}],
    });
    if version.0 >= 14 {
        body["parent_provider_uuid"] = Value::Null;
        body["root_provider_uuid"] = json!(uuid);
    }
    body
}

fn provider<'a>(world: &'a WorldState, uuid: &str) -> Result<&'a Host, Response> {
    world
        .hosts
        .iter()
        .find(|host| host.hypervisor_uuid == uuid)
        .ok_or_else(|| error(StatusCode::NOT_FOUND, &format!("No resource provider with uuid {uuid} found")))
}

async fn list_providers(
    State(state): State<LabState>,
    Extension(version): Extension<Microversion>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Response {
    let world = state.world.lock();
    if let Err(refusal) = authorize(&world, &caller, LIST_PROVIDERS) {
        return refusal;
    }
    let pairs: Vec<(String, String)> =
        form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
    // The query schema of each microversion admits only its parameters
    // (`placement/schemas/resource_provider.py`): `in_tree` from 1.14.
    let allowed: &[&str] = if version.0 >= 14 { &["uuid", "name", "in_tree"] } else { &["uuid", "name"] };
    if let Some((unknown, _)) = pairs.iter().find(|(key, _)| !allowed.contains(&key.as_str())) {
        return error(
            StatusCode::BAD_REQUEST,
            &format!(
                "Invalid query string parameters: Additional properties are not allowed ('{unknown}' was unexpected)"
            ),
        );
    }
    let value = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let providers: Vec<Value> = world
        .hosts
        .iter()
        .filter(|host| value("uuid").is_none_or(|uuid| host.hypervisor_uuid == uuid))
        .filter(|host| value("name").is_none_or(|name| host.fqdn == name))
        // Every provider is a root of its own tree here.
        .filter(|host| value("in_tree").is_none_or(|root| host.hypervisor_uuid == root))
        .map(|host| provider_json(host, version))
        .collect();
    Json(json!({"resource_providers": providers})).into_response()
}

async fn show_provider(
    State(state): State<LabState>,
    Extension(version): Extension<Microversion>,
    Extension(caller): Extension<Caller>,
    Path(uuid): Path<String>,
) -> Response {
    let world = state.world.lock();
    if let Err(refusal) = authorize(&world, &caller, SHOW_PROVIDER) {
        return refusal;
    }
    match provider(&world, &uuid) {
        Ok(host) => Json(provider_json(host, version)).into_response(),
        Err(refusal) => refusal,
    }
}

async fn list_inventories(
    State(state): State<LabState>,
    Extension(caller): Extension<Caller>,
    Path(uuid): Path<String>,
) -> Response {
    let world = state.world.lock();
    if let Err(refusal) = authorize(&world, &caller, LIST_INVENTORIES) {
        return refusal;
    }
    let host = match provider(&world, &uuid) {
        Ok(host) => host,
        Err(refusal) => return refusal,
    };
    let inventories: serde_json::Map<String, Value> = inventories(host)
        .into_iter()
        .map(|(class, inventory)| {
            let body = json!({
                "total": inventory.total, "reserved": inventory.reserved, "min_unit": 1,
                "max_unit": inventory.max_unit, "step_size": 1, "allocation_ratio": inventory.allocation_ratio,
            });
            (class.to_owned(), body)
        })
        .collect();
    Json(json!({"resource_provider_generation": 3, "inventories": inventories})).into_response()
}

async fn provider_usages(
    State(state): State<LabState>,
    Extension(caller): Extension<Caller>,
    Path(uuid): Path<String>,
) -> Response {
    let world = state.world.lock();
    if let Err(refusal) = authorize(&world, &caller, PROVIDER_USAGES) {
        return refusal;
    }
    let host = match provider(&world, &uuid) {
        Ok(host) => host,
        Err(refusal) => return refusal,
    };
    let used = usages(&world);
    // Every class of the inventory is listed, unused ones with 0.
    let usages: serde_json::Map<String, Value> = inventories(host)
        .into_keys()
        .map(|class| {
            let amount = used.get(host.fqdn.as_str()).and_then(|used| used.get(class)).copied().unwrap_or(0);
            (class.to_owned(), json!(amount))
        })
        .collect();
    Json(json!({"resource_provider_generation": 3, "usages": usages})).into_response()
}

/// A consumer's allocations; an unknown consumer has none (200, not 404:
/// Placement cannot tell, `handlers/allocation.py`).
async fn consumer_allocations(
    State(state): State<LabState>,
    Extension(version): Extension<Microversion>,
    Extension(caller): Extension<Caller>,
    Path(consumer): Path<String>,
) -> Response {
    let world = state.world.lock();
    if let Err(refusal) = authorize(&world, &caller, LIST_ALLOCATIONS) {
        return refusal;
    }
    let Some(server) = world.servers.get(&consumer).filter(|server| !server.no_allocation) else {
        return Json(json!({"allocations": {}})).into_response();
    };
    let Some(host) = world.host(&server.host) else {
        return Json(json!({"allocations": {}})).into_response();
    };
    let resources = json!({"VCPU": server.vcpus, "MEMORY_MB": server.ram_mb, "DISK_GB": server.disk_gb});
    let mut body = json!({"allocations": {host.hypervisor_uuid.clone(): {"generation": 3, "resources": resources}}});
    if version.0 >= 12 {
        body["project_id"] = json!(server.project_id);
        body["user_id"] = json!(server.user_id);
    }
    if version.0 >= 28 {
        body["consumer_generation"] = json!(1);
    }
    if version.0 >= 38 {
        body["consumer_type"] = json!("INSTANCE");
    }
    Json(body).into_response()
}
