//! Fault and latency injection, per service, settable at start and at run
//! time. Random choices come from a seeded generator, so a run is reproducible.

use std::collections::{BTreeMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::Service;

/// One injected fault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Answer with this status (500, 503, ...) and the service's error body, doing nothing.
    Status(u16),
    /// As `Status`, the error body carrying `message` (text a hostile or broken server chose).
    StatusMessage { status: u16, message: String },
    /// Answer 429 with `Retry-After: <secs>`, doing nothing.
    RateLimited { retry_after_secs: u64 },
    /// Do the request (a write is committed), then drop the connection before the reply.
    DropAfterCommit,
    /// Never answer (until the client gives up).
    Hang,
}

/// The faults of one service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Latency added to every request, uniformly between the two bounds (ms).
    pub latency_ms: Option<(u64, u64)>,
    /// Share of requests answered with `error_status` (500 or 503).
    pub error_rate: f64,
    pub error_status: Option<u16>,
    /// Share of requests answered 429 with `Retry-After: retry_after_secs`.
    pub rate_limit_rate: f64,
    pub retry_after_secs: u64,
    /// Share of writes (non-GET) that are committed and then lose their reply.
    pub drop_after_commit_rate: f64,
    /// Share of requests that hang.
    pub hang_rate: f64,
    /// Faults for the next requests, one each, before any random one.
    pub next: VecDeque<Fault>,
    /// Only requests whose path contains this are affected (all when unset).
    pub path_contains: Option<String>,
    /// Only requests with this method are affected (all when unset).
    pub method: Option<String>,
}

/// The faults of every service, shared with the running servers.
#[derive(Clone)]
pub struct Faults {
    inner: Arc<Mutex<FaultsInner>>,
}

struct FaultsInner {
    configs: BTreeMap<Service, FaultConfig>,
    rng: StdRng,
}

impl Faults {
    pub fn new(seed: u64, configs: BTreeMap<Service, FaultConfig>) -> Self {
        Faults { inner: Arc::new(Mutex::new(FaultsInner { configs, rng: StdRng::seed_from_u64(seed ^ 0xfa17) })) }
    }

    /// Replaces the faults of one service.
    pub fn set(&self, service: Service, config: FaultConfig) {
        self.lock().configs.insert(service, config);
    }

    /// Queues one fault for the next matching request of a service.
    pub fn push(&self, service: Service, fault: Fault) {
        self.lock().configs.entry(service).or_default().next.push_back(fault);
    }

    pub fn clear(&self) {
        self.lock().configs.clear();
    }

    pub fn get(&self, service: Service) -> FaultConfig {
        self.lock().configs.get(&service).cloned().unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FaultsInner> {
        self.inner.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// Decides what happens to one request: a latency and maybe a fault.
    fn decide(&self, service: Service, method: &Method, path: &str) -> (Duration, Option<Fault>) {
        let mut inner = self.lock();
        let FaultsInner { configs, rng } = &mut *inner;
        let Some(config) = configs.get_mut(&service) else { return (Duration::ZERO, None) };
        if config.path_contains.as_deref().is_some_and(|part| !path.contains(part))
            || config.method.as_deref().is_some_and(|m| !m.eq_ignore_ascii_case(method.as_str()))
        {
            return (Duration::ZERO, None);
        }
        let latency = match config.latency_ms {
            Some((low, high)) if high > low => Duration::from_millis(rng.random_range(low..=high)),
            Some((low, _)) => Duration::from_millis(low),
            None => Duration::ZERO,
        };
        if let Some(fault) = config.next.pop_front() {
            return (latency, Some(fault));
        }
        let write = *method != Method::GET && *method != Method::HEAD;
        let fault = if chance(rng, config.error_rate) {
            Some(Fault::Status(config.error_status.unwrap_or(503)))
        } else if chance(rng, config.rate_limit_rate) {
            Some(Fault::RateLimited { retry_after_secs: config.retry_after_secs })
        } else if write && chance(rng, config.drop_after_commit_rate) {
            Some(Fault::DropAfterCommit)
        } else if chance(rng, config.hang_rate) {
            Some(Fault::Hang)
        } else {
            None
        };
        (latency, fault)
    }
}

fn chance(rng: &mut StdRng, rate: f64) -> bool {
    rate > 0.0 && rng.random_bool(rate.min(1.0))
}

/// What the fault middleware needs.
#[derive(Clone)]
pub struct FaultLayer {
    pub service: Service,
    pub faults: Faults,
    pub requests: crate::RequestLog,
}

/// Middleware: records the request, then applies latency and faults.
pub async fn apply(State(layer): State<FaultLayer>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path_and_query().map_or_else(|| request.uri().path().to_owned(), |pq| pq.to_string());
    let (latency, fault) = layer.faults.decide(layer.service, &method, &path);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let response = match fault {
        None => next.run(request).await,
        Some(Fault::Status(status)) => {
            error_response(layer.service, StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE), None)
        }
        Some(Fault::StatusMessage { status, message }) => error_response(
            layer.service,
            StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            Some(&message),
        ),
        Some(Fault::RateLimited { retry_after_secs }) => {
            let mut response = error_response(layer.service, StatusCode::TOO_MANY_REQUESTS, None);
            response.headers_mut().insert("retry-after", HeaderValue::from(retry_after_secs));
            response
        }
        Some(Fault::DropAfterCommit) => {
            let committed = next.run(request).await;
            layer.requests.record(layer.service, &method, &path, committed.status().as_u16(), true);
            let (parts, _) = committed.into_parts();
            return Response::from_parts(parts, Body::new(BrokenBody));
        }
        Some(Fault::Hang) => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            error_response(layer.service, StatusCode::GATEWAY_TIMEOUT, None)
        }
    };
    layer.requests.record(layer.service, &method, &path, response.status().as_u16(), false);
    response
}

/// The error body each service really sends for a status it chose.
fn error_response(service: Service, status: StatusCode, message: Option<&str>) -> Response {
    let reason = message.unwrap_or(status.canonical_reason().unwrap_or("Error"));
    let code = status.as_u16();
    let body = match service {
        Service::Jira => serde_json::json!({"errorMessages": [reason], "errors": {}}),
        Service::NetBox => serde_json::json!({"detail": reason}),
        Service::Keystone => serde_json::json!({"error": {"code": code, "message": reason, "title": reason}}),
        Service::Nova => {
            let name = match code {
                429 => "overLimit",
                503 => "serviceUnavailable",
                _ => "computeFault",
            };
            serde_json::json!({name: {"code": code, "message": reason}})
        }
        Service::Placement => serde_json::json!({"errors": [{"status": code, "title": reason, "detail": reason}]}),
        Service::Alertmanager | Service::Scc => serde_json::Value::String(reason.to_owned()),
    };
    (status, axum::Json(body)).into_response()
}

/// A body that fails at once: the server closes the connection mid-reply.
struct BrokenBody;

impl http_body::Body for BrokenBody {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Poll::Ready(Some(Err(std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "injected drop after commit"))))
    }
}
