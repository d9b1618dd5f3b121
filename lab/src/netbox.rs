//! The NetBox emulator: the DCIM and IPAM endpoints the tools use, in the
//! shapes of the version the world names (`world.netbox.version`): 4.x serves
//! `role`, 3.6/3.7 serve both `role` and the read-only `device_role`.
//!
//! Like NetBox behind Django: offset pagination with absolute links built from
//! the request's Host, `Token` auth answered 403, a 301 to the slashed path,
//! and an `API-Version` header on every response.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use crate::world::{NetBoxDevice, NetBoxDeviceType, NetBoxInterface, NetBoxRole, WorldState};
use crate::LabState;

/// NetBox's `PAGINATE_COUNT` and `MAX_PAGE_SIZE` defaults.
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 1000;

const STATUSES: [(&str, &str); 7] = [
    ("offline", "Offline"),
    ("active", "Active"),
    ("planned", "Planned"),
    ("staged", "Staged"),
    ("failed", "Failed"),
    ("inventory", "Inventory"),
    ("decommissioning", "Decommissioning"),
];

/// Paths served, with `{id}` for a numeric id (used for the slash redirect).
const ROUTES: [&str; 12] = [
    "/api/",
    "/api/status/",
    "/api/dcim/devices/",
    "/api/dcim/devices/{id}/",
    "/api/dcim/device-roles/",
    "/api/dcim/device-roles/{id}/",
    "/api/dcim/device-types/",
    "/api/dcim/device-types/{id}/",
    "/api/dcim/interfaces/",
    "/api/dcim/interfaces/{id}/",
    "/api/ipam/ip-addresses/",
    "/api/ipam/ip-addresses/{id}/",
];

pub fn router(state: LabState) -> Router {
    Router::new()
        .route(ROUTES[0], get(api_root))
        .route(ROUTES[1], get(status))
        .route(ROUTES[2], get(list_devices))
        .route(ROUTES[3], get(get_device).patch(patch_device))
        .route(ROUTES[4], get(list_roles))
        .route(ROUTES[5], get(get_role))
        .route(ROUTES[6], get(list_device_types))
        .route(ROUTES[7], get(get_device_type))
        .route(ROUTES[8], get(list_interfaces))
        .route(ROUTES[9], get(get_interface))
        .route(ROUTES[10], get(list_ip_addresses))
        .route(ROUTES[11], get(get_ip_address))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), gate))
        .layer(axum::middleware::from_fn_with_state(state.clone(), api_version_header))
        .with_state(state)
}

/// The `(key, value)` pairs of a query string, decoded, in order (keys may repeat).
pub(crate) fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()).into_owned().collect()
}

/// The NetBox release the world mimics, as `(major, minor)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Version(u32, u32);

impl Version {
    /// `"4.6"`, `"4.x"` (latest 4: 4.6), `"3.7"`, `"3.6"`.
    fn parse(text: &str) -> Version {
        let mut parts = text.split('.');
        let major = parts.next().and_then(|p| p.parse().ok()).unwrap_or(4);
        let minor = parts.next().and_then(|p| p.parse().ok()).unwrap_or(if major >= 4 { 6 } else { 7 });
        Version(major, minor)
    }

    fn of(state: &LabState) -> Version {
        Version::parse(&state.world.lock().netbox.version)
    }

    fn v4(self) -> bool {
        self.0 >= 4
    }

    fn at_least(self, major: u32, minor: u32) -> bool {
        self >= Version(major, minor)
    }
}

/// What every handler needs besides the world: the base of absolute URLs
/// (from the request's Host, as Django builds them) and the version.
struct Ctx {
    base: String,
    version: Version,
}

impl Ctx {
    fn new(state: &LabState, headers: &HeaderMap) -> Ctx {
        let base = headers
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
            .map_or_else(|| state.urls.netbox.clone(), |host| format!("http://{host}"));
        Ctx { base, version: Version::of(state) }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/{path}", self.base)
    }
}

fn detail(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({"detail": text}))).into_response()
}

fn object_not_found(ctx: &Ctx, model: &str) -> Response {
    // DRF 3.15 (NetBox 4.x) names the model; DRF 3.14 (NetBox 3.x) does not.
    let text = if ctx.version.v4() { format!("No {model} matches the given query.") } else { "Not found.".into() };
    detail(StatusCode::NOT_FOUND, &text)
}

fn validation_errors(errors: BTreeMap<String, Vec<String>>) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!(errors))).into_response()
}

async fn not_found() -> Response {
    detail(StatusCode::NOT_FOUND, "Not found.")
}

async fn api_version_header(State(state): State<LabState>, request: Request, next: Next) -> Response {
    let Version(major, minor) = Version::of(&state);
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&format!("{major}.{minor}")) {
        response.headers_mut().insert("api-version", value);
    }
    response
}

/// Django's APPEND_SLASH redirect first, then DRF's token authentication.
async fn gate(State(state): State<LabState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if !path.ends_with('/') && is_served(&format!("{path}/")) {
        let query = request.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
        let location = format!("{path}/{query}");
        let mut response = StatusCode::MOVED_PERMANENTLY.into_response();
        if let Ok(value) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(header::LOCATION, value);
        }
        return response;
    }
    let given = request.headers().get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
    let token = given.and_then(|h| crate::jira::strip_scheme(h, "Token"));
    match token {
        None => detail(StatusCode::FORBIDDEN, "Authentication credentials were not provided."),
        Some(token) if token == state.secrets.netbox_token => next.run(request).await,
        Some(_) => {
            let text = if Version::of(&state).at_least(4, 5) { "Invalid v1 token" } else { "Invalid token" };
            detail(StatusCode::FORBIDDEN, text)
        }
    }
}

fn is_served(path: &str) -> bool {
    let segments: Vec<&str> = path.split('/').collect();
    ROUTES.iter().any(|route| {
        let pattern: Vec<&str> = route.split('/').collect();
        pattern.len() == segments.len()
            && pattern.iter().zip(&segments).all(|(p, s)| p == s || (*p == "{id}" && s.parse::<u64>().is_ok()))
    })
}

// ---------------------------------------------------------------------------
// Query filters and pagination.

struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    fn of(uri: &Uri) -> Params {
        Params { pairs: query_pairs(uri) }
    }

    /// `?brief=1`: the list answers with the brief (nested) shapes.
    fn brief(&self) -> bool {
        self.all("brief").iter().any(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
    }

    fn all(&self, key: &str) -> Vec<&str> {
        self.pairs.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }

    /// Integer values of a filter; a bad one is a validation error.
    fn ids(&self, key: &str, errors: &mut BTreeMap<String, Vec<String>>) -> Vec<u64> {
        let mut ids = Vec::new();
        for value in self.all(key) {
            match value.parse() {
                Ok(id) => ids.push(id),
                Err(_) => errors.entry(key.into()).or_default().push("Enter a number.".into()),
            }
        }
        ids
    }
}

/// A filter on related objects: every value must name an existing one.
fn choices(params: &Params, key: &str, exists: impl Fn(&str) -> bool, errors: &mut BTreeMap<String, Vec<String>>) {
    for value in params.all(key) {
        if !exists(value) {
            errors
                .entry(key.into())
                .or_default()
                .push(format!("Select a valid choice. {value} is not one of the available choices."));
        }
    }
}

fn page_size(params: &Params) -> usize {
    match params.all("limit").first().and_then(|l| l.parse::<i64>().ok()) {
        Some(0) => MAX_PAGE,
        Some(limit) if limit > 0 => (limit as usize).min(MAX_PAGE),
        _ => DEFAULT_PAGE,
    }
}

/// DRF's LimitOffsetPagination: `count`, absolute `next`/`previous` with the
/// request's other parameters kept (sorted by key, as DRF re-encodes them).
/// With `start` (4.6+), cursor pagination by id instead.
fn paginate(ctx: &Ctx, uri: &Uri, params: &Params, items: Vec<Value>) -> Response {
    let limit = page_size(params);
    let link = |changes: &[(&'static str, Option<usize>)]| {
        let mut query: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (key, value) in &params.pairs {
            query.entry(key.as_str()).or_default().push(value.clone());
        }
        for (key, value) in changes {
            match value {
                Some(value) => query.insert(key, vec![value.to_string()]),
                None => query.remove(key),
            };
        }
        let mut encoded = form_urlencoded::Serializer::new(String::new());
        for (key, values) in &query {
            for value in values {
                encoded.append_pair(key, value);
            }
        }
        format!("{}{}?{}", ctx.base, uri.path(), encoded.finish())
    };
    if let Some(start) = params.all("start").first().filter(|_| ctx.version.at_least(4, 6)) {
        if !params.all("offset").is_empty() || !params.all("ordering").is_empty() {
            let message = "The 'start' parameter cannot be combined with 'offset' or 'ordering'.";
            return validation_errors(BTreeMap::from([("start".to_string(), vec![message.to_string()])]));
        }
        let Ok(start) = start.parse::<u64>() else {
            return validation_errors(BTreeMap::from([("start".to_string(), vec!["Enter a whole number.".into()])]));
        };
        let mut results: Vec<Value> =
            items.into_iter().filter(|item| item["id"].as_u64().is_some_and(|id| id >= start)).collect();
        results.sort_by_key(|item| item["id"].as_u64());
        results.truncate(limit);
        let next = (results.len() == limit).then(|| {
            let last = results.last().and_then(|item| item["id"].as_u64()).unwrap_or(start);
            link(&[("limit", Some(limit)), ("start", Some(last as usize + 1))])
        });
        return Json(json!({"count": null, "next": next, "previous": null, "results": results})).into_response();
    }
    let count = items.len();
    let offset = params.all("offset").first().and_then(|o| o.parse::<i64>().ok()).map_or(0, |o| o.max(0) as usize);
    let next = (offset + limit < count).then(|| link(&[("limit", Some(limit)), ("offset", Some(offset + limit))]));
    let previous = match offset {
        0 => None,
        o if o <= limit => Some(link(&[("limit", Some(limit)), ("offset", None)])),
        o => Some(link(&[("limit", Some(limit)), ("offset", Some(o - limit))])),
    };
    let results: Vec<Value> = items.into_iter().skip(offset).take(limit).collect();
    Json(json!({"count": count, "next": next, "previous": previous, "results": results})).into_response()
}

// ---------------------------------------------------------------------------
// Object shapes.

fn slugify(text: &str) -> String {
    let mut slug = String::new();
    for c in text.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    slug.trim_end_matches('-').to_owned()
}

/// Manufacturers are the distinct vendors of the device types, numbered in order.
fn manufacturer_id(world: &WorldState, name: &str) -> u64 {
    let mut names: Vec<&str> = Vec::new();
    for device_type in &world.netbox.device_types {
        if !names.contains(&device_type.manufacturer.as_str()) {
            names.push(&device_type.manufacturer);
        }
    }
    names.iter().position(|n| *n == name).map_or(1, |i| i as u64 + 1)
}

fn nested_manufacturer(ctx: &Ctx, world: &WorldState, name: &str) -> Value {
    let id = manufacturer_id(world, name);
    let mut value = json!({"id": id, "url": ctx.url(&format!("dcim/manufacturers/{id}/")), "display": name,
                           "name": name, "slug": slugify(name)});
    if ctx.version.v4() {
        value["description"] = json!("");
    }
    value
}

fn nested_device_type(ctx: &Ctx, world: &WorldState, device_type: &NetBoxDeviceType) -> Value {
    let id = device_type.id;
    let mut value = json!({
        "id": id,
        "url": ctx.url(&format!("dcim/device-types/{id}/")),
        "display": device_type.model,
        "manufacturer": nested_manufacturer(ctx, world, &device_type.manufacturer),
        "model": device_type.model,
        "slug": device_type.slug,
    });
    if ctx.version.v4() {
        value["description"] = json!(device_type.description);
    }
    value
}

fn nested_role(ctx: &Ctx, role: &NetBoxRole) -> Value {
    let id = role.id;
    let mut value = json!({"id": id, "url": ctx.url(&format!("dcim/device-roles/{id}/")), "display": role.name,
                           "name": role.name, "slug": role.slug});
    if ctx.version.v4() {
        value["description"] = json!("");
    }
    if ctx.version.at_least(4, 3) {
        value["_depth"] = json!(0);
    }
    value
}

fn nested_site(ctx: &Ctx, site: &str) -> Value {
    let mut value = json!({"id": 1, "url": ctx.url("dcim/sites/1/"), "display": site, "name": site,
                           "slug": slugify(site)});
    if ctx.version.v4() {
        value["description"] = json!("");
    }
    value
}

fn family(ctx: &Ctx, address: &str) -> Value {
    let number = if address.contains(':') { 6 } else { 4 };
    if ctx.version.v4() {
        json!({"value": number, "label": format!("IPv{number}")})
    } else {
        json!(number)
    }
}

fn nested_ip(ctx: &Ctx, id: u64, address: &str) -> Value {
    let mut value = json!({"id": id, "url": ctx.url(&format!("ipam/ip-addresses/{id}/")), "display": address,
                           "family": family(ctx, address), "address": address});
    if ctx.version.v4() {
        value["description"] = json!("");
    }
    value
}

fn nested_device(ctx: &Ctx, device: &NetBoxDevice) -> Value {
    let id = device.id;
    let mut value = json!({"id": id, "url": ctx.url(&format!("dcim/devices/{id}/")), "display": device.name,
                           "name": device.name});
    if ctx.version.v4() {
        value["description"] = json!("");
    }
    value
}

fn nested_interface(ctx: &Ctx, device: &NetBoxDevice, interface: &NetBoxInterface) -> Value {
    let id = interface.id;
    let mut value = json!({"id": id, "url": ctx.url(&format!("dcim/interfaces/{id}/")), "display": interface.name,
                           "device": nested_device(ctx, device), "name": interface.name, "cable": null,
                           "_occupied": false});
    if ctx.version.v4() {
        value["description"] = json!("");
    }
    value
}

fn status_value(status: &str) -> Value {
    let label = STATUSES.iter().find(|(value, _)| *value == status).map_or(status, |(_, label)| label);
    json!({"value": status, "label": label})
}

/// The IP address with this id, on whichever interface holds it.
fn find_ip(world: &WorldState, id: u64) -> Option<(&NetBoxDevice, &NetBoxInterface, &str)> {
    world.netbox.devices.iter().find_map(|device| {
        device.interfaces.iter().find_map(|interface| {
            interface.ip_addresses.iter().find(|(ip_id, _)| *ip_id == id).map(|(_, a)| (device, interface, a.as_str()))
        })
    })
}

fn device_json(ctx: &Ctx, world: &WorldState, device: &NetBoxDevice) -> Value {
    let id = device.id;
    let role = world.netbox.roles.iter().find(|r| r.id == device.role_id).map(|role| nested_role(ctx, role));
    let device_type = world
        .netbox
        .device_types
        .iter()
        .find(|t| t.id == device.device_type_id)
        .map(|t| nested_device_type(ctx, world, t));
    let oob_ip = device.oob_ip.as_deref().map(|address| {
        let ip_id = device
            .interfaces
            .iter()
            .flat_map(|i| &i.ip_addresses)
            .find(|(_, a)| a == address)
            .map_or(0, |(ip_id, _)| *ip_id);
        let mut ip = nested_ip(ctx, ip_id, address);
        if ctx.version.at_least(4, 6) {
            ip["dns_name"] = json!("");
            ip["nat_inside"] = json!(null);
            ip["nat_outside"] = json!([]);
        }
        ip
    });
    let mut value = Map::new();
    let mut put = |key: &str, field: Value| {
        value.insert(key.to_owned(), field);
    };
    put("id", json!(id));
    put("url", json!(ctx.url(&format!("dcim/devices/{id}/"))));
    if ctx.version.at_least(4, 1) {
        put("display_url", json!(format!("{}/dcim/devices/{id}/", ctx.base)));
    }
    put("display", json!(device.name));
    put("name", json!(device.name));
    put("device_type", json!(device_type));
    put("role", json!(role));
    if !ctx.version.v4() {
        put("device_role", json!(role));
    }
    for key in ["tenant", "platform"] {
        put(key, Value::Null);
    }
    put("serial", json!(device.serial));
    put("asset_tag", Value::Null);
    put("site", nested_site(ctx, &device.site));
    for key in ["location", "rack", "position", "face", "latitude", "longitude", "parent_device"] {
        put(key, Value::Null);
    }
    put("status", status_value(&device.status));
    for key in ["airflow", "primary_ip", "primary_ip4", "primary_ip6"] {
        put(key, Value::Null);
    }
    put("oob_ip", json!(oob_ip));
    for key in ["cluster", "virtual_chassis", "vc_position", "vc_priority"] {
        put(key, Value::Null);
    }
    put("description", json!(""));
    if ctx.version.at_least(4, 6) {
        put("owner", Value::Null);
    }
    put("comments", json!(""));
    put("config_template", Value::Null);
    put("config_context", json!({}));
    put("local_context_data", Value::Null);
    put("tags", json!([]));
    put("custom_fields", json!(device.custom_fields));
    put("created", json!(device.created));
    put("last_updated", json!(device.last_updated));
    if ctx.version.v4() {
        for key in [
            "console_port_count",
            "console_server_port_count",
            "power_port_count",
            "power_outlet_count",
            "front_port_count",
            "rear_port_count",
            "device_bay_count",
            "module_bay_count",
            "inventory_item_count",
        ] {
            put(key, json!(0));
        }
        put("interface_count", json!(device.interfaces.len()));
    }
    Value::Object(value)
}

fn role_json(ctx: &Ctx, world: &WorldState, role: &NetBoxRole) -> Value {
    let id = role.id;
    let device_count = world.netbox.devices.iter().filter(|d| d.role_id == id).count();
    let mut value = json!({
        "id": id,
        "url": ctx.url(&format!("dcim/device-roles/{id}/")),
        "display": role.name,
        "name": role.name,
        "slug": role.slug,
        "color": "2196f3",
        "vm_role": false,
        "config_template": null,
        "description": "",
        "tags": [],
        "custom_fields": {},
        "created": "2025-01-10T09:00:00.000000Z",
        "last_updated": "2025-01-10T09:00:00.000000Z",
        "device_count": device_count,
        "virtualmachine_count": 0,
    });
    if ctx.version.v4() {
        value["display_url"] = json!(format!("{}/dcim/device-roles/{id}/", ctx.base));
        value["parent"] = Value::Null;
        value["_depth"] = json!(0);
        value["comments"] = json!("");
    }
    if ctx.version.at_least(4, 6) {
        value["owner"] = Value::Null;
    }
    value
}

fn device_type_json(ctx: &Ctx, world: &WorldState, device_type: &NetBoxDeviceType) -> Value {
    let id = device_type.id;
    let device_count = world.netbox.devices.iter().filter(|d| d.device_type_id == id).count();
    let mut value = nested_device_type(ctx, world, device_type);
    let extra = json!({
        "default_platform": null,
        "part_number": "",
        "u_height": 1.0,
        "exclude_from_utilization": false,
        "is_full_depth": true,
        "subdevice_role": null,
        "airflow": null,
        "weight": null,
        "weight_unit": null,
        "front_image": null,
        "rear_image": null,
        "description": device_type.description,
        "comments": "",
        "tags": [],
        "custom_fields": {},
        "created": "2025-01-10T09:00:00.000000Z",
        "last_updated": "2025-01-10T09:00:00.000000Z",
        "device_count": device_count,
    });
    for (key, field) in extra.as_object().expect("an object") {
        value[key] = field.clone();
    }
    if ctx.version.at_least(4, 1) {
        value["display_url"] = json!(format!("{}/dcim/device-types/{id}/", ctx.base));
    }
    value
}

fn interface_json(ctx: &Ctx, device: &NetBoxDevice, interface: &NetBoxInterface) -> Value {
    let id = interface.id;
    let management = interface.name.starts_with("bmc");
    let (kind, label) =
        if management { ("1000base-t", "1000BASE-T (1GE)") } else { ("25gbase-x-sfp28", "SFP28 (25GE)") };
    let mut value = json!({
        "id": id,
        "url": ctx.url(&format!("dcim/interfaces/{id}/")),
        "display": interface.name,
        "device": nested_device(ctx, device),
        "module": null,
        "name": interface.name,
        "label": "",
        "type": {"value": kind, "label": label},
        "enabled": true,
        "parent": null,
        "bridge": null,
        "lag": null,
        "mtu": null,
        "mac_address": interface.mac_address,
        "speed": null,
        "duplex": null,
        "wwn": null,
        "mgmt_only": management,
        "description": "",
        "mode": null,
        "untagged_vlan": null,
        "tagged_vlans": [],
        "mark_connected": false,
        "cable": null,
        "link_peers": [],
        "link_peers_type": null,
        "connected_endpoints": null,
        "connected_endpoints_type": null,
        "connected_endpoints_reachable": null,
        "tags": [],
        "custom_fields": {},
        "created": device.created,
        "last_updated": device.last_updated,
        "count_ipaddresses": interface.ip_addresses.len(),
        "count_fhrp_groups": 0,
        "_occupied": false,
    });
    if ctx.version.v4() {
        value["vdcs"] = json!([]);
    }
    if ctx.version.at_least(4, 1) {
        value["display_url"] = json!(format!("{}/dcim/interfaces/{id}/", ctx.base));
    }
    value
}

fn ip_json(ctx: &Ctx, device: &NetBoxDevice, interface: &NetBoxInterface, id: u64, address: &str) -> Value {
    let mut value = json!({
        "id": id,
        "url": ctx.url(&format!("ipam/ip-addresses/{id}/")),
        "display": address,
        "family": family(ctx, address),
        "address": address,
        "vrf": null,
        "tenant": null,
        "status": status_value("active"),
        "role": null,
        "assigned_object_type": "dcim.interface",
        "assigned_object_id": interface.id,
        "assigned_object": nested_interface(ctx, device, interface),
        "nat_inside": null,
        "nat_outside": [],
        "dns_name": "",
        "description": "",
        "comments": "",
        "tags": [],
        "custom_fields": {},
        "created": device.created,
        "last_updated": device.last_updated,
    });
    if ctx.version.at_least(4, 1) {
        value["display_url"] = json!(format!("{}/ipam/ip-addresses/{id}/", ctx.base));
    }
    value
}

// ---------------------------------------------------------------------------
// Handlers.

async fn api_root(State(state): State<LabState>, headers: HeaderMap) -> Response {
    let ctx = Ctx::new(&state, &headers);
    let mut apps = vec!["circuits", "dcim", "extras", "ipam", "plugins", "status", "tenancy", "users"];
    apps.extend(["virtualization", "wireless"]);
    if ctx.version.v4() {
        apps.extend(["core", "vpn"]);
    }
    apps.sort_unstable();
    let root: Map<String, Value> =
        apps.iter().map(|app| (app.to_string(), json!(ctx.url(&format!("{app}/"))))).collect();
    Json(root).into_response()
}

async fn status(State(state): State<LabState>) -> Response {
    let Version(major, minor) = Version::of(&state);
    Json(json!({
        "django-version": if major >= 4 { "5.2.8" } else { "4.2.11" },
        "installed-apps": {},
        "netbox-version": format!("{major}.{minor}.0"),
        "netbox-full-version": format!("{major}.{minor}.0"),
        "plugins": {},
        "python-version": "3.12.3",
        "rq-workers-running": 1,
    }))
    .into_response()
}

fn parse_id(text: &str) -> Option<u64> {
    text.parse().ok()
}

async fn list_devices(State(state): State<LabState>, headers: HeaderMap, uri: Uri) -> Response {
    let ctx = Ctx::new(&state, &headers);
    let params = Params::of(&uri);
    let brief = params.brief();
    let mut errors = BTreeMap::new();
    let ids = params.ids("id", &mut errors);
    let mut role_ids = params.ids("role_id", &mut errors);
    let world = state.world.lock();
    let roles = &world.netbox.roles;
    let mut role_keys = vec!["role"];
    if !ctx.version.v4() {
        // 3.x keeps the old filter names beside the new ones.
        role_keys.push("device_role");
        role_ids.extend(params.ids("device_role_id", &mut errors));
    }
    for key in &role_keys {
        choices(&params, key, |slug| roles.iter().any(|r| r.slug == slug), &mut errors);
    }
    known_ids("role_id", &role_ids, |id| roles.iter().any(|r| r.id == id), &mut errors);
    choices(&params, "status", |s| STATUSES.iter().any(|(v, _)| *v == s), &mut errors);
    choices(&params, "site", |s| world.netbox.devices.iter().any(|d| slugify(&d.site) == s), &mut errors);
    if !errors.is_empty() {
        return validation_errors(errors);
    }
    let role_slugs: Vec<&str> = role_keys.iter().flat_map(|key| params.all(key)).collect();
    role_ids.extend(roles.iter().filter(|r| role_slugs.contains(&r.slug.as_str())).map(|r| r.id));
    let names = params.all("name");
    let names_ie = params.all("name__ie");
    let names_ic = params.all("name__ic");
    let statuses = params.all("status");
    let sites = params.all("site");
    let role_filtered = !role_slugs.is_empty() || !role_ids.is_empty();
    let results: Vec<Value> = world
        .netbox
        .devices
        .iter()
        .filter(|d| ids.is_empty() || ids.contains(&d.id))
        .filter(|d| names.is_empty() || names.contains(&d.name.as_str()))
        .filter(|d| names_ie.is_empty() || names_ie.iter().any(|n| n.to_lowercase() == d.name.to_lowercase()))
        .filter(|d| names_ic.is_empty() || names_ic.iter().any(|n| d.name.to_lowercase().contains(&n.to_lowercase())))
        .filter(|d| !role_filtered || role_ids.contains(&d.role_id))
        .filter(|d| statuses.is_empty() || statuses.contains(&d.status.as_str()))
        .filter(|d| sites.is_empty() || sites.contains(&slugify(&d.site).as_str()))
        .map(|d| if brief { nested_device(&ctx, d) } else { device_json(&ctx, &world, d) })
        .collect();
    drop(world);
    paginate(&ctx, &uri, &params, results)
}

async fn get_device(State(state): State<LabState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let ctx = Ctx::new(&state, &headers);
    let world = state.world.lock();
    match parse_id(&id).and_then(|id| world.netbox_device(id)) {
        Some(device) => Json(device_json(&ctx, &world, device)).into_response(),
        None => object_not_found(&ctx, "Device"),
    }
}

/// A related object given by id or by a dictionary of attributes, as
/// NetBox's writable nested serializers resolve it.
fn resolve_role(roles: &[NetBoxRole], given: &Value) -> Result<u64, String> {
    match given {
        Value::Number(n) => {
            let id = n.as_u64().unwrap_or(0);
            roles
                .iter()
                .find(|r| r.id == id)
                .map(|r| r.id)
                .ok_or_else(|| format!("Related object not found using the provided numeric ID: {n}"))
        }
        Value::String(text) if text.parse::<u64>().is_ok() => resolve_role(roles, &json!(text.parse::<u64>().ok())),
        Value::Object(attributes) => {
            let matching: Vec<&NetBoxRole> = roles
                .iter()
                .filter(|role| {
                    attributes.iter().all(|(key, value)| match key.as_str() {
                        "id" => value.as_u64() == Some(role.id),
                        "name" => value.as_str() == Some(role.name.as_str()),
                        "slug" => value.as_str() == Some(role.slug.as_str()),
                        _ => false,
                    })
                })
                .collect();
            let shown: Vec<String> = attributes.iter().map(|(k, v)| format!("'{k}': {}", python_repr(v))).collect();
            match matching.as_slice() {
                [role] => Ok(role.id),
                [] => Err(format!("Related object not found using the provided attributes: {{{}}}", shown.join(", "))),
                _ => Err(format!("Multiple objects match the provided attributes: {{{}}}", shown.join(", "))),
            }
        }
        other => Err(format!(
            "Related objects must be referenced by numeric ID or by dictionary of attributes. Received an unrecognized value: {}",
            other.as_str().map_or_else(|| other.to_string(), str::to_owned)
        )),
    }
}

fn python_repr(value: &Value) -> String {
    match value {
        Value::String(text) => format!("'{text}'"),
        other => other.to_string(),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "list",
        Value::String(_) => "str",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::Bool(_) => "bool",
        Value::Null => "NoneType",
        Value::Object(_) => "dict",
    }
}

async fn patch_device(
    State(state): State<LabState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let ctx = Ctx::new(&state, &headers);
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !content_type.starts_with("application/json") {
        return detail(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!("Unsupported media type \"{content_type}\" in request."),
        );
    }
    let body: Value = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(err) => return detail(StatusCode::BAD_REQUEST, &format!("JSON parse error - {err}")),
    };
    let Value::Object(changes) = body else {
        let message = format!("Invalid data. Expected a dictionary, but got {}.", json_kind(&body));
        return validation_errors(BTreeMap::from([("non_field_errors".to_string(), vec![message])]));
    };
    let mut world = state.world.lock();
    let Some(device) = parse_id(&id).and_then(|id| world.netbox_device(id)) else {
        return object_not_found(&ctx, "Device");
    };
    let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut error = |field: &str, message: String| errors.entry(field.to_owned()).or_default().push(message);
    let mut name = None;
    if let Some(given) = changes.get("name") {
        match given.as_str() {
            Some("") => error("name", "This field may not be blank.".into()),
            Some(text) => name = Some(text.to_owned()),
            None => error("name", "Not a valid string.".into()),
        }
    }
    let mut status = None;
    if let Some(given) = changes.get("status") {
        let text = given.as_str().map_or_else(|| given.to_string(), str::to_owned);
        if STATUSES.iter().any(|(value, _)| *value == text) {
            status = Some(text);
        } else {
            error("status", format!("\"{text}\" is not a valid choice."));
        }
    }
    // 3.6/3.7 still return `device_role` but only `role` is writable.
    let mut role = None;
    if let Some(given) = changes.get("role") {
        match resolve_role(&world.netbox.roles, given) {
            Ok(id) => role = Some(id),
            Err(message) => error("role", message),
        }
    }
    let mut custom_fields = device.custom_fields.clone();
    if let Some(given) = changes.get("custom_fields") {
        match given {
            Value::Object(fields) => {
                for (key, value) in fields {
                    if world.netbox.custom_field_names.contains(key) {
                        custom_fields.insert(key.clone(), value.clone());
                    } else {
                        error("custom_fields", format!("Custom field '{key}' does not exist for this object type."));
                    }
                }
            }
            other => {
                error("custom_fields", format!("Invalid data. Expected a dictionary, but got {}.", json_kind(other)))
            }
        }
    }
    if !errors.is_empty() {
        return validation_errors(errors);
    }
    let device_id = device.id;
    let device = world.netbox.devices.iter_mut().find(|d| d.id == device_id).expect("just found");
    if let Some(name) = name {
        device.name = name;
    }
    if let Some(status) = status {
        device.status = status;
    }
    if let Some(role) = role {
        device.role_id = role;
    }
    device.custom_fields = custom_fields;
    device.last_updated = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    tracing::debug!(device = %device.name, status = %device.status, "netbox: device updated");
    let device = world.netbox_device(device_id).expect("just updated");
    Json(device_json(&ctx, &world, device)).into_response()
}

async fn list_roles(State(state): State<LabState>, headers: HeaderMap, uri: Uri) -> Response {
    let ctx = Ctx::new(&state, &headers);
    let params = Params::of(&uri);
    let brief = params.brief();
    let mut errors = BTreeMap::new();
    let ids = params.ids("id", &mut errors);
    if !errors.is_empty() {
        return validation_errors(errors);
    }
    let (names, slugs) = (params.all("name"), params.all("slug"));
    let world = state.world.lock();
    let results: Vec<Value> = world
        .netbox
        .roles
        .iter()
        .filter(|r| ids.is_empty() || ids.contains(&r.id))
        .filter(|r| names.is_empty() || names.contains(&r.name.as_str()))
        .filter(|r| slugs.is_empty() || slugs.contains(&r.slug.as_str()))
        .map(|r| if brief { nested_role(&ctx, r) } else { role_json(&ctx, &world, r) })
        .collect();
    drop(world);
    paginate(&ctx, &uri, &params, results)
}

async fn get_role(State(state): State<LabState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let ctx = Ctx::new(&state, &headers);
    let world = state.world.lock();
    match parse_id(&id).and_then(|id| world.netbox.roles.iter().find(|r| r.id == id)) {
        Some(role) => Json(role_json(&ctx, &world, role)).into_response(),
        None => object_not_found(&ctx, "DeviceRole"),
    }
}

async fn list_device_types(State(state): State<LabState>, headers: HeaderMap, uri: Uri) -> Response {
    let ctx = Ctx::new(&state, &headers);
    let params = Params::of(&uri);
    let brief = params.brief();
    let mut errors = BTreeMap::new();
    let ids = params.ids("id", &mut errors);
    if !errors.is_empty() {
        return validation_errors(errors);
    }
    let (models, slugs) = (params.all("model"), params.all("slug"));
    let world = state.world.lock();
    let results: Vec<Value> = world
        .netbox
        .device_types
        .iter()
        .filter(|t| ids.is_empty() || ids.contains(&t.id))
        .filter(|t| models.is_empty() || models.contains(&t.model.as_str()))
        .filter(|t| slugs.is_empty() || slugs.contains(&t.slug.as_str()))
        .map(|t| if brief { nested_device_type(&ctx, &world, t) } else { device_type_json(&ctx, &world, t) })
        .collect();
    drop(world);
    paginate(&ctx, &uri, &params, results)
}

async fn get_device_type(State(state): State<LabState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let ctx = Ctx::new(&state, &headers);
    let world = state.world.lock();
    match parse_id(&id).and_then(|id| world.netbox.device_types.iter().find(|t| t.id == id)) {
        Some(device_type) => Json(device_type_json(&ctx, &world, device_type)).into_response(),
        None => object_not_found(&ctx, "DeviceType"),
    }
}

/// Every interface of the site with its device, in id order.
fn interfaces(world: &WorldState) -> Vec<(&NetBoxDevice, &NetBoxInterface)> {
    let mut all: Vec<_> = world.netbox.devices.iter().flat_map(|d| d.interfaces.iter().map(move |i| (d, i))).collect();
    all.sort_by_key(|(_, interface)| interface.id);
    all
}

/// Checks that every id of a related-object filter exists.
fn known_ids(key: &str, ids: &[u64], exists: impl Fn(u64) -> bool, errors: &mut BTreeMap<String, Vec<String>>) {
    for id in ids.iter().filter(|id| !exists(**id)) {
        errors
            .entry(key.into())
            .or_default()
            .push(format!("Select a valid choice. {id} is not one of the available choices."));
    }
}

async fn list_interfaces(State(state): State<LabState>, headers: HeaderMap, uri: Uri) -> Response {
    let ctx = Ctx::new(&state, &headers);
    let params = Params::of(&uri);
    let brief = params.brief();
    let mut errors = BTreeMap::new();
    let ids = params.ids("id", &mut errors);
    let device_ids = params.ids("device_id", &mut errors);
    let world = state.world.lock();
    known_ids("device_id", &device_ids, |id| world.netbox_device(id).is_some(), &mut errors);
    choices(&params, "device", |name| world.netbox.devices.iter().any(|d| d.name == name), &mut errors);
    if !errors.is_empty() {
        return validation_errors(errors);
    }
    let (names, devices) = (params.all("name"), params.all("device"));
    let results: Vec<Value> = interfaces(&world)
        .into_iter()
        .filter(|(_, i)| ids.is_empty() || ids.contains(&i.id))
        .filter(|(d, _)| device_ids.is_empty() || device_ids.contains(&d.id))
        .filter(|(d, _)| devices.is_empty() || devices.contains(&d.name.as_str()))
        .filter(|(_, i)| names.is_empty() || names.contains(&i.name.as_str()))
        .map(|(d, i)| if brief { nested_interface(&ctx, d, i) } else { interface_json(&ctx, d, i) })
        .collect();
    drop(world);
    paginate(&ctx, &uri, &params, results)
}

async fn get_interface(State(state): State<LabState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let ctx = Ctx::new(&state, &headers);
    let world = state.world.lock();
    let wanted = parse_id(&id);
    match interfaces(&world).into_iter().find(|(_, i)| Some(i.id) == wanted) {
        Some((device, interface)) => Json(interface_json(&ctx, device, interface)).into_response(),
        None => object_not_found(&ctx, "Interface"),
    }
}

async fn list_ip_addresses(State(state): State<LabState>, headers: HeaderMap, uri: Uri) -> Response {
    let ctx = Ctx::new(&state, &headers);
    let params = Params::of(&uri);
    let brief = params.brief();
    let mut errors = BTreeMap::new();
    let ids = params.ids("id", &mut errors);
    let interface_ids = params.ids("interface_id", &mut errors);
    let device_ids = params.ids("device_id", &mut errors);
    let world = state.world.lock();
    let all = interfaces(&world);
    known_ids("interface_id", &interface_ids, |id| all.iter().any(|(_, i)| i.id == id), &mut errors);
    known_ids("device_id", &device_ids, |id| world.netbox_device(id).is_some(), &mut errors);
    choices(&params, "device", |name| world.netbox.devices.iter().any(|d| d.name == name), &mut errors);
    if !errors.is_empty() {
        return validation_errors(errors);
    }
    let (addresses, devices) = (params.all("address"), params.all("device"));
    let mut found: Vec<(&NetBoxDevice, &NetBoxInterface, u64, &str)> = all
        .iter()
        .flat_map(|(d, i)| i.ip_addresses.iter().map(move |(id, address)| (*d, *i, *id, address.as_str())))
        .filter(|(_, _, id, _)| ids.is_empty() || ids.contains(id))
        .filter(|(_, i, _, _)| interface_ids.is_empty() || interface_ids.contains(&i.id))
        .filter(|(d, _, _, _)| device_ids.is_empty() || device_ids.contains(&d.id))
        .filter(|(d, _, _, _)| devices.is_empty() || devices.contains(&d.name.as_str()))
        .filter(|(_, _, _, a)| {
            addresses.is_empty() || addresses.iter().any(|w| *w == *a || Some(*w) == a.split('/').next())
        })
        .collect();
    found.sort_by_key(|(_, _, id, _)| *id);
    let results: Vec<Value> = found
        .into_iter()
        .map(|(d, i, id, a)| if brief { nested_ip(&ctx, id, a) } else { ip_json(&ctx, d, i, id, a) })
        .collect();
    drop(world);
    paginate(&ctx, &uri, &params, results)
}

async fn get_ip_address(State(state): State<LabState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let ctx = Ctx::new(&state, &headers);
    let world = state.world.lock();
    match parse_id(&id).and_then(|id| find_ip(&world, id).map(|found| (id, found))) {
        Some((id, (device, interface, address))) => Json(ip_json(&ctx, device, interface, id, address)).into_response(),
        None => object_not_found(&ctx, "IPAddress"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(Version::parse("4.x"), Version(4, 6));
        assert_eq!(Version::parse("3.7"), Version(3, 7));
        assert!(Version::parse("4.6").at_least(4, 5));
        assert!(!Version::parse("3.6").v4());
    }

    #[test]
    fn slash_redirect_targets() {
        assert!(is_served("/api/dcim/devices/"));
        assert!(is_served("/api/dcim/devices/12/"));
        assert!(!is_served("/api/dcim/devices/x/"));
        assert!(!is_served("/api/dcim/cables/"));
    }

    #[test]
    fn slugs() {
        assert_eq!(slugify("Dell Inc."), "dell-inc");
        assert_eq!(slugify("lab"), "lab");
    }
}
