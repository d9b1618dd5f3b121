//! The lab's own endpoints: a read-only view of the world and the request
//! log, and fault settings at run time.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::{Fault, FaultConfig, LabState, Service};

pub fn router(state: LabState) -> Router {
    Router::new()
        .route("/_lab/world", get(world))
        .route("/_lab/urls", get(urls))
        .route("/_lab/requests", get(requests))
        .route("/_lab/faults/{service}", get(get_faults).put(set_faults))
        .route("/_lab/faults/{service}/next", post(push_fault))
        .route("/_lab/reinstall/{host}", post(reinstall))
        .route("/_lab/keystone/revoke", post(revoke_tokens))
        .route("/_lab/ssh-faults/{host}", get(get_ssh_faults).put(set_ssh_faults))
        .with_state(state)
}

async fn world(State(state): State<LabState>) -> Response {
    let world = state.world.lock();
    Json(&*world).into_response()
}

async fn urls(State(state): State<LabState>) -> Json<crate::Urls> {
    Json((*state.urls).clone())
}

async fn requests(State(state): State<LabState>) -> Json<Vec<crate::RequestRecord>> {
    Json(state.requests.all())
}

fn service(name: &str) -> Result<Service, (StatusCode, String)> {
    name.parse().map_err(|err: String| (StatusCode::NOT_FOUND, err))
}

async fn get_faults(State(state): State<LabState>, Path(name): Path<String>) -> Response {
    match service(&name) {
        Ok(service) => Json(state.faults.get(service)).into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

async fn set_faults(
    State(state): State<LabState>,
    Path(name): Path<String>,
    Json(config): Json<FaultConfig>,
) -> Response {
    match service(&name) {
        Ok(service) => {
            state.faults.set(service, config);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(refusal) => refusal.into_response(),
    }
}

async fn push_fault(State(state): State<LabState>, Path(name): Path<String>, Json(fault): Json<Fault>) -> Response {
    match service(&name) {
        Ok(service) => {
            state.faults.push(service, fault);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(refusal) => refusal.into_response(),
    }
}

/// Revokes every Keystone token issued so far; answers how many.
async fn revoke_tokens(State(state): State<LabState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({"revoked": crate::keystone::revoke_all(&state)}))
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct ReinstallQuery {
    /// Another machine answers to the name afterwards (a DNS or PXE mix-up).
    wrong_machine: bool,
}

/// The PXE reinstall of a host that Aquilon switched to install.
async fn reinstall(
    State(state): State<LabState>,
    Path(host): Path<String>,
    axum::extract::Query(query): axum::extract::Query<ReinstallQuery>,
) -> Response {
    match state.world.reinstall_as(&host, query.wrong_machine) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(err @ crate::shell::ReinstallError::UnknownHost(_)) => {
            (StatusCode::NOT_FOUND, err.to_string()).into_response()
        }
        Err(err) => (StatusCode::CONFLICT, err.to_string()).into_response(),
    }
}

async fn get_ssh_faults(State(state): State<LabState>, Path(host): Path<String>) -> Json<crate::SshFaultConfig> {
    Json(state.ssh_faults.get(&host))
}

async fn set_ssh_faults(
    State(state): State<LabState>,
    Path(host): Path<String>,
    Json(config): Json<crate::SshFaultConfig>,
) -> StatusCode {
    state.ssh_faults.set(&host, config);
    StatusCode::NO_CONTENT
}
