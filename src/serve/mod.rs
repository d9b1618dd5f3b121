//! `hvmigrate serve`: the campaign's dashboard, REST API and Prometheus
//! metrics over the ledger, read-only by design (runs are started from the
//! CLI, where the SSH keys and service credentials are). One file per
//! concern: the API, the dashboard, the metrics, the tokens and sessions,
//! the OpenAPI document.

pub mod api;
pub mod auth;
pub mod dashboard;
pub mod metrics;
pub mod openapi;
pub mod snapshot;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{Error, InputProblem, Result};
use crate::journal::Journal;

/// What `serve` is asked for.
#[derive(Clone, Debug)]
pub struct ServeSettings {
    pub listen: SocketAddr,
    /// The ledger (SQLite file); it may not exist yet (`/health` says 503 until it does).
    pub state: PathBuf,
    pub tokens_file: PathBuf,
    /// `/metrics` needs a token too.
    pub protect_metrics: bool,
    /// Certificate chain and private key (PEM) to serve HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The hypervisors file, when there is one: the hosts' tickets.
    pub hypervisors_file: Option<PathBuf>,
}

/// The ledger, opened read-only on first need (it may be made after `serve`
/// starts), and what requests share of it.
pub struct Ledger {
    path: PathBuf,
    journal: Mutex<Option<Arc<Journal>>>,
    hosts: snapshot::Snapshot<Vec<api::HostSummary>>,
    metrics: snapshot::Snapshot<String>,
}

impl Ledger {
    pub fn new(path: &Path) -> Self {
        Ledger {
            path: path.to_owned(),
            journal: Mutex::new(None),
            hosts: Default::default(),
            metrics: Default::default(),
        }
    }

    /// Every host's summary, by name (shared while the ledger stays as it was).
    pub async fn summaries(self: &Arc<Self>) -> std::result::Result<Arc<Vec<api::HostSummary>>, ApiError> {
        let ledger = self.clone();
        self.read(move |journal| ledger.hosts.get(journal, api::summaries)).await
    }

    /// The text of `/metrics` (shared while the ledger stays as it was).
    pub async fn metrics(self: &Arc<Self>) -> std::result::Result<Arc<String>, ApiError> {
        let ledger = self.clone();
        self.read(move |journal| {
            ledger.metrics.get(journal, |journal| {
                metrics::Scrape::read(journal).map(|scrape| metrics::encode(&scrape, crate::clock::now()))
            })
        })
        .await
    }

    fn journal(&self) -> Result<Arc<Journal>> {
        let mut slot = self.journal.lock().unwrap_or_else(|poison| poison.into_inner());
        if let Some(journal) = slot.as_ref() {
            return Ok(journal.clone());
        }
        let journal = Journal::open_read_only(&self.path)?
            .ok_or_else(|| Error::input(InputProblem::new(&self.path, "no ledger here yet: no step has run")))?;
        let journal = Arc::new(journal);
        *slot = Some(journal.clone());
        Ok(journal)
    }

    /// Runs a read on the ledger off the async threads (SQLite blocks).
    pub async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        read: impl FnOnce(&Journal) -> Result<T> + Send + 'static,
    ) -> std::result::Result<T, ApiError> {
        let ledger = self.clone();
        tokio::task::spawn_blocking(move || read(&*ledger.journal()?))
            .await
            .map_err(|err| ApiError::unavailable(format!("the ledger read stopped: {err}")))?
            .map_err(|err| match err {
                Error::Usage(message) => ApiError::bad_request(message),
                other => {
                    tracing::warn!("ledger read failed: {other}");
                    ApiError::unavailable(format!("the ledger does not answer: {other}"))
                }
            })
    }
}

/// Shared by every handler.
pub struct AppState {
    pub ledger: Arc<Ledger>,
    pub tokens: auth::Tokens,
    pub sessions: auth::Sessions,
    pub protect_metrics: bool,
    pub secure_cookies: bool,
    /// Jira key per host, from the hypervisors file.
    pub tickets: std::collections::BTreeMap<String, String>,
}

pub type Shared = Arc<AppState>;

/// Every error the server answers, as JSON: `{"error": {"status", "code", "message"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// The HTTP status, repeated.
    pub status: u16,
    /// Stable, for programs: `unauthorized`, `forbidden`, `not_found`, `bad_request`, `unavailable`.
    pub code: String,
    /// For people.
    pub message: String,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::UNAUTHORIZED, code: "unauthorized", message: message.into() }
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::FORBIDDEN, code: "forbidden", message: message.into() }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::NOT_FOUND, code: "not_found", message: message.into() }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::BAD_REQUEST, code: "bad_request", message: message.into() }
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::SERVICE_UNAVAILABLE, code: "unavailable", message: message.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail { status: self.status.as_u16(), code: self.code.to_owned(), message: self.message },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// `/health`: 200 when the ledger answers, 503 otherwise.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// `/version`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Version {
    pub name: String,
    pub version: String,
    pub commit: String,
}

#[utoipa::path(get, path = "/health", tag = "management",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn health(State(state): State<Shared>) -> Response {
    match state.ledger.read(|journal| journal.ping()).await {
        Ok(()) => Json(Health { status: "ok".into(), detail: None }).into_response(),
        Err(err) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(Health { status: "unavailable".into(), detail: Some(err.message) }))
                .into_response()
        }
    }
}

#[utoipa::path(get, path = "/version", tag = "management", responses((status = 200, body = Version)))]
pub async fn version() -> Json<Version> {
    Json(Version {
        name: env!("CARGO_PKG_NAME").into(),
        version: env!("CARGO_PKG_VERSION").into(),
        commit: crate::BUILD_COMMIT.into(),
    })
}

/// Every route: the open ones, the API and the dashboard behind a token.
pub fn router(state: Shared) -> Router {
    let metrics_route = if state.protect_metrics {
        Router::new()
            .route("/metrics", get(metrics::metrics))
            .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_read_api))
    } else {
        Router::new().route("/metrics", get(metrics::metrics))
    };
    Router::new()
        .route("/health", get(health))
        .route("/version", get(version))
        .merge(metrics_route)
        .merge(auth::routes())
        .merge(api::routes(state.clone()))
        .merge(dashboard::routes(state.clone()))
        .fallback(|| async { ApiError::not_found("no such page") })
        .layer(middleware::from_fn(access_log))
        .with_state(state)
}

/// One log line per request: method, path (never the query), status, time taken.
async fn access_log(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = crate::untrusted::visible_line(request.uri().path());
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|info| info.0.to_string())
        .unwrap_or_default();
    let mut response = next.run(request).await;
    let status = response.status().as_u16();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(target: "hvmigrate::serve::access", %peer, %method, %path, status, ms = format!("{ms:.1}"), "request");
    // Nothing of the ledger is cached by a browser or a proxy.
    response.headers_mut().entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response.headers_mut().insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    response
}

/// Runs the server until SIGTERM or Ctrl-C; `ready` is told the address it listens on.
pub async fn serve(settings: &ServeSettings, ready: impl FnOnce(SocketAddr, bool)) -> Result<()> {
    let tokens = auth::Tokens::load(&settings.tokens_file)?;
    let tickets = match &settings.hypervisors_file {
        Some(file) => crate::config::HypervisorList::load(file, crate::config::KeyMode::Optional)?
            .hypervisors
            .into_iter()
            .filter_map(|hv| hv.key.map(|key| (hv.host.as_str().to_owned(), key.to_string())))
            .collect(),
        None => Default::default(),
    };
    let tls = match &settings.tls {
        Some((cert, key)) => Some(tls_acceptor(cert, key)?),
        None => None,
    };
    let state = Arc::new(AppState {
        ledger: Arc::new(Ledger::new(&settings.state)),
        tokens,
        sessions: auth::Sessions::default(),
        protect_metrics: settings.protect_metrics,
        secure_cookies: tls.is_some(),
        tickets,
    });
    let app = router(state);
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|err| Error::Refused(format!("cannot listen on {}: {err}", settings.listen)))?;
    let address = listener.local_addr().map_err(|err| Error::Refused(format!("no local address: {err}")))?;
    ready(address, tls.is_some());
    let served = match tls {
        Some(acceptor) => {
            // (The peer's address is logged for plain HTTP only: behind TLS here, or a proxy, it says little.)
            axum::serve(TlsListener::new(listener, acceptor), app.into_make_service())
                .with_graceful_shutdown(stop_signal())
                .await
        }
        None => {
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(stop_signal())
                .await
        }
    };
    served.map_err(|err| Error::Refused(format!("the server stopped: {err}")))?;
    tracing::info!("stopped");
    Ok(())
}

/// SIGTERM (a service manager) or Ctrl-C: requests under way finish, no new one starts.
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(terminate) => terminate,
        Err(err) => {
            tracing::warn!("cannot watch SIGTERM: {err}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    let name = tokio::select! {
        _ = tokio::signal::ctrl_c() => "Ctrl-C",
        _ = terminate.recv() => "SIGTERM",
    };
    tracing::info!("stopping on {name}: the requests under way finish");
}

fn tls_acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |file: &Path, what: String| Error::input(InputProblem::new(file, what));
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|err| bad(cert, format!("not a PEM certificate chain: {err}")))?;
    if certs.is_empty() {
        return Err(bad(cert, "no certificate in this file".into()));
    }
    crate::fs_security::check_secret_file(key)?;
    let private = PrivateKeyDer::from_pem_file(key).map_err(|err| bad(key, format!("not a PEM private key: {err}")))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(certs, private))
        .map_err(|err| bad(cert, format!("the certificate and key do not make a TLS server: {err}")))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Accepts TCP connections and does their TLS handshakes in their own tasks,
/// so that a slow or silent client holds up no other.
struct TlsListener {
    local: SocketAddr,
    ready: tokio::sync::mpsc::Receiver<(tokio_rustls::server::TlsStream<tokio::net::TcpStream>, SocketAddr)>,
}

impl TlsListener {
    fn new(listener: tokio::net::TcpListener, acceptor: tokio_rustls::TlsAcceptor) -> Self {
        let local = listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        let (sender, ready) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        tracing::warn!("accept failed: {err}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (acceptor, handshaken) = (acceptor.clone(), sender.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = handshaken.send((stream, peer)).await;
                        }
                        Ok(Err(err)) => tracing::debug!(%peer, "TLS handshake failed: {err}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
                if sender.is_closed() {
                    return;
                }
            }
        });
        TlsListener { local, ready }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accepting task never ends while this listener lives.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
