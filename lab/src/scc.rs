//! The SUSE Customer Center emulator: the virtualization-hosts upload and the
//! repositories list the credentials check reads. Both take the
//! organisation's Basic credentials.

use std::io::Read;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::LabState;

/// Repositories per page, small so that clients page through them.
const PER_PAGE: usize = 2;
const REALM: &str = "SCC Connect API";

pub fn router(state: LabState) -> Router {
    Router::new()
        .route("/connect/organizations/virtualization_hosts", put(upload))
        .route("/connect/organizations/repositories", get(repositories))
        .layer(axum::middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state)
}

/// SCC's error body (as SUSEConnect reads it: `error`, `localized_error`).
fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"type": "error", "error": message, "localized_error": message}))).into_response()
}

/// Rails' HTTP Basic refusal: a challenge header and a plain-text body.
async fn authenticate(State(state): State<LabState>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| crate::jira::strip_scheme(value, "Basic"))
        .and_then(crate::jira::decode_basic);
    let secrets = &state.secrets;
    if given.is_some_and(|(user, password)| user == secrets.scc_username && password == secrets.scc_password) {
        return next.run(request).await;
    }
    let mut response = (StatusCode::UNAUTHORIZED, "HTTP Basic: Access denied.\n").into_response();
    let challenge = HeaderValue::from_str(&format!("Basic realm=\"{REALM}\"")).expect("a valid header");
    response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
    response
}

/// `PUT /connect/organizations/virtualization_hosts`: JSON, gzip-compressed
/// when `Content-Encoding: gzip` (the collector) or plain (Uyuni). Each host
/// replaces the previous upload with the same identifier.
async fn upload(State(state): State<LabState>, headers: HeaderMap, body: Bytes) -> Response {
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|encoding| encoding.trim().eq_ignore_ascii_case("gzip"));
    let text = if gzip {
        let mut text = Vec::new();
        if flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut text).is_err() {
            return error(StatusCode::BAD_REQUEST, "The request body could not be decompressed");
        }
        text
    } else {
        body.to_vec()
    };
    let request: Value = match serde_json::from_slice(&text) {
        Ok(request) => request,
        Err(_) => return error(StatusCode::BAD_REQUEST, "The request body is not valid JSON"),
    };
    let Some(hosts) = request.get("virtualization_hosts").and_then(Value::as_array) else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "Required parameter is missing: virtualization_hosts");
    };
    let mut identified = Vec::with_capacity(hosts.len());
    for host in hosts {
        match host.get("identifier").and_then(Value::as_str) {
            Some(identifier) if !identifier.is_empty() => identified.push((identifier.to_owned(), host.clone())),
            _ => return error(StatusCode::UNPROCESSABLE_ENTITY, "Required parameter is missing: identifier"),
        }
    }
    let mut world = state.world.lock();
    let count = identified.len();
    world.scc.hosts.extend(identified);
    world.scc.uploads += 1;
    world.scc.last_headers = headers
        .iter()
        .filter(|(name, _)| *name != header::AUTHORIZATION)
        .map(|(name, value)| (name.as_str().to_owned(), value.to_str().unwrap_or_default().to_owned()))
        .collect();
    tracing::debug!(hosts = count, "scc: virtualization hosts uploaded");
    StatusCode::OK.into_response()
}

/// The organisation's repositories, as the credentials check reads them.
fn all_repositories() -> Vec<Value> {
    let products = [
        (1_801, "SLE-Module-Basesystem15-SP5-Pool", "Basesystem/15-SP5/x86_64/product"),
        (1_802, "SLE-Module-Basesystem15-SP5-Updates", "Basesystem/15-SP5/x86_64/update"),
        (1_803, "SLE-Product-SLES15-SP5-Pool", "SLES/15-SP5/x86_64/product"),
        (1_804, "SLE-Product-SLES15-SP5-Updates", "SLES/15-SP5/x86_64/update"),
        (1_805, "SLE-Module-Server-Applications15-SP5-Pool", "Server-Applications/15-SP5/x86_64/product"),
    ];
    products
        .iter()
        .map(|(id, name, path)| {
            json!({
                "id": id,
                "name": name,
                "distro_target": "sle-15-x86_64",
                "description": format!("{name} for sle-15-x86_64"),
                "url": format!("https://updates.lab.example.org/SUSE/{path}/"),
                "enabled": true,
                "autorefresh": name.ends_with("Updates"),
                "installer_updates": false,
            })
        })
        .collect()
}

/// `GET /connect/organizations/repositories?page=N`, paged with `Link`,
/// `Per-Page` and `Total` headers.
async fn repositories(State(state): State<LabState>, uri: Uri) -> Response {
    let all = all_repositories();
    let pages = all.len().div_ceil(PER_PAGE).max(1);
    let page = crate::netbox::query_pairs(&uri)
        .into_iter()
        .find(|(key, _)| key == "page")
        .and_then(|(_, value)| value.parse::<usize>().ok())
        .filter(|page| *page >= 1)
        .unwrap_or(1);
    let items: Vec<Value> = all.iter().skip((page - 1) * PER_PAGE).take(PER_PAGE).cloned().collect();
    let link = |page: usize, rel: &str| format!("<{}{}?page={page}>; rel=\"{rel}\"", state.urls.scc, uri.path());
    let mut links = Vec::new();
    if page > 1 {
        links.push(link(1, "first"));
        links.push(link((page - 1).min(pages), "prev"));
    }
    if page < pages {
        links.push(link(pages, "last"));
        links.push(link(page + 1, "next"));
    }
    let mut response = Json(items).into_response();
    let headers = response.headers_mut();
    if !links.is_empty() {
        headers.insert(header::LINK, HeaderValue::from_str(&links.join(", ")).expect("a valid header"));
    }
    headers.insert("per-page", HeaderValue::from(PER_PAGE));
    headers.insert("total", HeaderValue::from(all.len()));
    response
}
