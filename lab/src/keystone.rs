//! The Keystone v3 emulator: version discovery, password and application
//! credential tokens with a service catalog, and token validation. Issued
//! tokens are kept in the world so Nova can check `X-Auth-Token`.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::{LabSecrets, LabState, Urls};

/// A token Keystone issued, with the body `GET /v3/auth/tokens` shows again.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    pub expires_at: jiff::Timestamp,
    pub body: Value,
    /// The token carries the admin role.
    pub admin: bool,
}

pub const DOMAIN_ID: &str = "default";
pub const DOMAIN_NAME: &str = "Default";
pub const REGION: &str = "RegionOne";
const UNAUTHORIZED: &str = "The request you have made requires authentication.";

pub fn router(state: LabState) -> Router {
    Router::new()
        .route("/", get(versions))
        .route("/v3", get(version))
        .route("/v3/", get(version))
        .route("/v3/auth/tokens", post(issue_token).get(validate_token))
        .fallback(not_found)
        .with_state(state)
}

/// The Keystone root, where `WWW-Authenticate` points.
fn root_url(urls: &Urls) -> &str {
    urls.keystone.trim_end_matches("/v3")
}

fn version_object(urls: &Urls) -> Value {
    json!({
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{}/", urls.keystone)}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
    })
}

async fn versions(State(state): State<LabState>) -> Response {
    let body = json!({"versions": {"values": [version_object(&state.urls)]}});
    (StatusCode::MULTIPLE_CHOICES, Json(body)).into_response()
}

async fn version(State(state): State<LabState>) -> Response {
    Json(json!({"version": version_object(&state.urls)})).into_response()
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "The resource could not be found.")
}

/// Keystone's error envelope.
pub fn error(status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    (status, Json(json!({"error": {"code": status.as_u16(), "message": message, "title": title}}))).into_response()
}

/// 401 with the `WWW-Authenticate` header Keystone (and keystonemiddleware) send.
pub fn unauthorized(urls: &Urls, message: &str) -> Response {
    let mut response = error(StatusCode::UNAUTHORIZED, message);
    if let Ok(value) = HeaderValue::from_str(&format!("Keystone uri=\"{}\"", root_url(urls))) {
        response.headers_mut().insert("www-authenticate", value);
    }
    response
}

/// The admin user's id, derived from the secrets so it is stable per seed.
pub fn user_id(secrets: &LabSecrets) -> String {
    secrets.openstack_project_id.chars().rev().collect()
}

/// The member user's id, stable per seed.
pub fn member_user_id(secrets: &LabSecrets) -> String {
    format!("{}0b", &secrets.openstack_project_id[..30])
}

/// Whether a token is one Keystone issued and still valid.
pub fn token_is_valid(state: &LabState, token: &str) -> bool {
    caller(state, token).is_some()
}

/// Who a valid token belongs to, as Nova's request context sees it.
pub fn caller(state: &LabState, token: &str) -> Option<crate::policy::Caller> {
    let world = state.world.lock();
    let issued = world.keystone_tokens.get(token).filter(|issued| issued.expires_at > jiff::Timestamp::now())?;
    Some(crate::policy::Caller { admin: issued.admin, project_id: state.secrets.openstack_project_id.clone() })
}

/// Revokes every token issued so far (an operator's `openstack token revoke`,
/// a Fernet key rotation gone wrong, a restarted Keystone with new keys): the
/// next request with one of them answers 401.
pub fn revoke_all(state: &LabState) -> usize {
    let mut world = state.world.lock();
    let count = world.keystone_tokens.len();
    world.keystone_tokens.clear();
    count
}

/// What the request authenticated as.
enum Method {
    Password,
    ApplicationCredential,
}

/// The lab's Keystone users: the admin, and a member (roles member and reader).
#[derive(Clone, Copy, PartialEq, Eq)]
enum User {
    Admin,
    Member,
}

async fn issue_token(State(state): State<LabState>, RawQuery(query): RawQuery, body: Bytes) -> Response {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(value @ Value::Object(_)) => value,
        _ => return error(StatusCode::BAD_REQUEST, "Expecting to find valid JSON in request body. The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error."),
    };
    let Some(identity) = request.pointer("/auth/identity").filter(|v| v.is_object()) else {
        return error(StatusCode::BAD_REQUEST, "Invalid input for field 'auth': 'identity' is a required property");
    };
    let Some(methods) = identity.get("methods").and_then(Value::as_array) else {
        return error(StatusCode::BAD_REQUEST, "Invalid input for field 'identity': 'methods' is a required property");
    };
    let scope = request.pointer("/auth/scope");
    let secrets = &state.secrets;
    // Application credentials belong to the admin user.
    let mut who_asked = User::Admin;
    let method = if methods.iter().any(|m| m == "application_credential") {
        let Some(credential) = identity.get("application_credential").filter(|v| v.is_object()) else {
            return error(
                StatusCode::BAD_REQUEST,
                "Invalid input for field 'identity': 'application_credential' is a required property",
            );
        };
        if scope.is_some() {
            return unauthorized(&state.urls, "Application credentials cannot request a scope.");
        }
        let id_matches = credential.get("id").and_then(Value::as_str) == Some(&secrets.application_credential_id);
        let name_matches = credential.get("name").and_then(Value::as_str) == Some("hvmigrate")
            && user_matches(credential.get("user"), secrets) == Some(User::Admin);
        let secret_matches =
            credential.get("secret").and_then(Value::as_str) == Some(&secrets.application_credential_secret);
        if !(id_matches || name_matches) || !secret_matches {
            return unauthorized(&state.urls, UNAUTHORIZED);
        }
        Method::ApplicationCredential
    } else if methods.iter().any(|m| m == "password") {
        let Some(user) = identity.pointer("/password/user").filter(|v| v.is_object()) else {
            return error(StatusCode::BAD_REQUEST, "Invalid input for field 'password': 'user' is a required property");
        };
        let given = user.get("password").and_then(Value::as_str);
        let Some(who) = user_matches(Some(user), secrets) else {
            return unauthorized(&state.urls, UNAUTHORIZED);
        };
        let expected = match who {
            User::Admin => &secrets.openstack_password,
            User::Member => &secrets.openstack_member_password,
        };
        if given != Some(expected) {
            return unauthorized(&state.urls, UNAUTHORIZED);
        }
        if let Some(scope) = scope {
            if !scope_matches(scope, secrets) {
                return unauthorized(&state.urls, UNAUTHORIZED);
            }
        }
        who_asked = who;
        Method::Password
    } else {
        return unauthorized(&state.urls, "Attempted to authenticate with an unsupported method.");
    };
    let with_catalog =
        !query.as_deref().unwrap_or_default().split('&').any(|p| p.split('=').next() == Some("nocatalog"));
    let system_scope = scope.and_then(|s| s.get("system")).is_some();

    let (token, body) = {
        let mut world = state.world.lock();
        let mut rng = StdRng::seed_from_u64(world.seed ^ world.next_id().rotate_left(17) ^ 0x7043);
        let token = fernet_like_token(&mut rng);
        let issued_at = jiff::Timestamp::now();
        let expires_at = issued_at + jiff::SignedDuration::from_secs(world.token_lifetime_secs as i64);
        let audit_id = crate::world::hex_id(&mut rng, 22);
        let body = token_body(&state, &method, who_asked, system_scope, with_catalog, issued_at, expires_at, &audit_id);
        let admin = who_asked == User::Admin;
        world.keystone_tokens.insert(token.clone(), IssuedToken { expires_at, body: body.clone(), admin });
        (token, body)
    };
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&token) {
        response.headers_mut().insert("x-subject-token", value);
    }
    response.headers_mut().insert("vary", HeaderValue::from_static("X-Auth-Token"));
    response
}

/// The user given by id, or by name with its domain (by id or name).
fn user_matches(user: Option<&Value>, secrets: &LabSecrets) -> Option<User> {
    let user = user?;
    if let Some(id) = user.get("id").and_then(Value::as_str) {
        return match id {
            _ if id == user_id(secrets) => Some(User::Admin),
            _ if id == member_user_id(secrets) => Some(User::Member),
            _ => None,
        };
    }
    if !domain_matches(user.get("domain")) {
        return None;
    }
    match user.get("name").and_then(Value::as_str) {
        Some(name) if name == secrets.openstack_username => Some(User::Admin),
        Some(name) if name == secrets.openstack_member_username => Some(User::Member),
        _ => None,
    }
}

fn domain_matches(domain: Option<&Value>) -> bool {
    let Some(domain) = domain else { return false };
    match (domain.get("id").and_then(Value::as_str), domain.get("name").and_then(Value::as_str)) {
        (Some(id), _) => id == DOMAIN_ID,
        (None, Some(name)) => name == DOMAIN_NAME,
        _ => false,
    }
}

/// A project scope (by id, or by name and domain) or the system scope.
fn scope_matches(scope: &Value, secrets: &LabSecrets) -> bool {
    if let Some(system) = scope.get("system") {
        return system.get("all") == Some(&Value::Bool(true));
    }
    let Some(project) = scope.get("project") else { return false };
    if let Some(id) = project.get("id").and_then(Value::as_str) {
        return id == secrets.openstack_project_id;
    }
    project.get("name").and_then(Value::as_str) == Some(&secrets.openstack_project)
        && domain_matches(project.get("domain"))
}

/// Fernet tokens are url-safe base64 of about 180 characters starting `gAAAAAB`.
fn fernet_like_token(rng: &mut StdRng) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut token = String::from("gAAAAAB");
    token.extend((0..176).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char));
    token
}

/// Keystone's time format: microseconds and `Z`.
fn keystone_time(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

#[allow(clippy::too_many_arguments)]
fn token_body(
    state: &LabState,
    method: &Method,
    user: User,
    system_scope: bool,
    with_catalog: bool,
    issued_at: jiff::Timestamp,
    expires_at: jiff::Timestamp,
    audit_id: &str,
) -> Value {
    let secrets = &state.secrets;
    let domain = json!({"id": DOMAIN_ID, "name": DOMAIN_NAME});
    let (id, name) = match user {
        User::Admin => (user_id(secrets), secrets.openstack_username.clone()),
        User::Member => (member_user_id(secrets), secrets.openstack_member_username.clone()),
    };
    let mut roles = vec![
        json!({"id": "9fe2ff9ee4384b1894a90878d3e92bab", "name": "member"}),
        json!({"id": "a3f8c2d1e4b54f6a9c8d7e6f5a4b3c2d", "name": "reader"}),
    ];
    if user == User::Admin {
        roles.insert(0, json!({"id": "5f3c1b9a1c4d4e6f8a7b2c3d4e5f6a7b", "name": "admin"}));
    }
    let mut token = json!({
        "methods": [match method { Method::Password => "password", Method::ApplicationCredential => "application_credential" }],
        "user": {"domain": domain, "id": id, "name": name, "password_expires_at": null},
        "audit_ids": [audit_id],
        "expires_at": keystone_time(expires_at),
        "issued_at": keystone_time(issued_at),
        "roles": roles,
    });
    if system_scope {
        token["system"] = json!({"all": true});
    } else {
        token["project"] =
            json!({"domain": domain, "id": secrets.openstack_project_id, "name": secrets.openstack_project});
        token["is_domain"] = json!(false);
    }
    if let Method::ApplicationCredential = method {
        token["application_credential"] =
            json!({"id": secrets.application_credential_id, "name": "hvmigrate", "restricted": true});
    }
    if with_catalog {
        token["catalog"] = catalog(&state.urls);
    }
    json!({"token": token})
}

fn catalog(urls: &Urls) -> Value {
    let service = |id: &str, kind: &str, name: &str, url: &str| {
        let endpoints: Vec<Value> = ["public", "internal", "admin"]
            .iter()
            .enumerate()
            .map(|(n, interface)| {
                json!({"id": format!("{id}{n:02}"), "interface": interface, "region": REGION, "region_id": REGION, "url": url})
            })
            .collect();
        json!({"id": id, "type": kind, "name": name, "endpoints": endpoints})
    };
    json!([
        service("0b8f2c3e9d4a4f7e8c1b2a3d4e5f60", "compute", "nova", &urls.nova),
        service("1c9e3d4f0a5b4e8f9d2c3b4a5f6e70", "identity", "keystone", root_url(urls)),
        service("2d0f4e5a1b6c4f9a8e3d4c5b6a7f80", "placement", "placement", &urls.placement),
    ])
}

async fn validate_token(State(state): State<LabState>, headers: HeaderMap) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let Some(auth) = header("x-auth-token").filter(|t| token_is_valid(&state, t)) else {
        return unauthorized(&state.urls, UNAUTHORIZED);
    };
    let subject = header("x-subject-token").unwrap_or(auth);
    let issued = state.world.lock().keystone_tokens.get(&subject).cloned();
    match issued {
        Some(issued) if issued.expires_at > jiff::Timestamp::now() => {
            let mut response = Json(issued.body).into_response();
            if let Ok(value) = HeaderValue::from_str(&subject) {
                response.headers_mut().insert("x-subject-token", value);
            }
            response
        }
        _ => error(StatusCode::NOT_FOUND, &format!("Could not find token: {subject}.")),
    }
}
