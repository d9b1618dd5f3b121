//! What every service client shares: one `reqwest` client per service with
//! timeouts and our User-Agent, retries with backoff that honours
//! `Retry-After`, and [`ServiceError`], which never carries a secret.

use std::collections::HashSet;
use std::future::Future;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use url::Url;

use crate::config::credentials::Transport;
use crate::secret::Secret;

pub const USER_AGENT: &str = concat!("hvmigrate/", env!("CARGO_PKG_VERSION"));

/// The most bytes read of one response body: the biggest page we ask for
/// (1000 NetBox devices, 1000 Nova servers) is a few MiB; a hostile or broken
/// service must not make us hold gigabytes.
pub const MAX_BODY_BYTES: usize = 64 << 20;

/// The most pages followed for one list: 1000 pages of 1000 items.
pub const MAX_PAGES: usize = 1000;

/// The most bytes read of a `ca_file`.
const MAX_CA_FILE_BYTES: u64 = 1 << 20;

/// A failed request, described without secrets: the path never carries its
/// query string, and no header value is ever kept.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{service}: {method} {path}: {kind}")]
pub struct ServiceError {
    pub service: &'static str,
    pub method: String,
    pub path: String,
    pub kind: ErrorKind,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ErrorKind {
    /// The service answered with an error status; `message` is its own text.
    #[error("{status}{}", message_suffix(.message))]
    Status { status: u16, message: String, retry_after: Option<Duration> },
    /// No answer: connection refused or dropped, timeout.
    #[error("{0}")]
    Transport(String),
    /// The answer was not what the contract says.
    #[error("unexpected response: {0}")]
    Decode(String),
    /// The service answered, but not what the caller needs (not found, ambiguous,
    /// transition unavailable).
    #[error("{0}")]
    Unusable(String),
    /// The work's fence refused the write (see [`crate::fence`]); nothing was sent.
    #[error("not sent: {0}")]
    Fenced(String),
}

fn message_suffix(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

impl ServiceError {
    pub fn new(service: &'static str, method: &Method, path: &str, kind: ErrorKind) -> Self {
        ServiceError { service, method: method.to_string(), path: strip_query(path), kind }
    }

    /// The HTTP status, when the service answered.
    pub fn status(&self) -> Option<u16> {
        match self.kind {
            ErrorKind::Status { status, .. } => Some(status),
            _ => None,
        }
    }

    /// Worth trying again: no answer, or 429/502/503/504.
    pub fn is_transient(&self) -> bool {
        match &self.kind {
            ErrorKind::Transport(_) => true,
            ErrorKind::Status { status, .. } => matches!(status, 429 | 502 | 503 | 504),
            _ => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match &self.kind {
            ErrorKind::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

fn strip_query(path: &str) -> String {
    path.split(['?', '#']).next().unwrap_or(path).to_owned()
}

/// How hard to try before giving up.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    /// No new attempt starts after this much time since the first one.
    pub max_total: Duration,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Bound of one attempt.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Requests in flight at once to the service (`workflow.limits.service_requests`):
    /// hundreds of hosts must not flood one shared service.
    pub max_in_flight: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            max_total: Duration::from_secs(120),
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            max_in_flight: 32,
        }
    }
}

impl RetryPolicy {
    /// The delay before attempt `attempt + 1`: the service's `Retry-After` when
    /// it gave one, else exponential backoff with jitter.
    fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(self.max_delay);
        }
        let exponential = self.base_delay.saturating_mul(1 << attempt.min(16)).min(self.max_delay);
        // Jitter of 50–100% so that many hosts retrying do not move in step.
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
        let jitter = 0.5 + f64::from(nanos % 1000) / 2000.0;
        exponential.mul_f64(jitter)
    }
}

/// How a request authenticates.
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    Basic {
        username: String,
        password: Secret,
    },
    /// `Authorization: <scheme> <token>` (Bearer, Token).
    Scheme {
        scheme: &'static str,
        token: Secret,
    },
    /// A token in a header of its own (`X-Auth-Token`).
    Header {
        name: HeaderName,
        token: Secret,
    },
}

/// A request body.
#[derive(Clone, Debug)]
pub enum Body {
    Empty,
    Json(serde_json::Value),
    /// Raw bytes with their own headers (a gzip-encoded JSON upload).
    Raw {
        bytes: Vec<u8>,
        headers: Vec<(HeaderName, HeaderValue)>,
    },
    /// One file as `multipart/form-data` (a Jira attachment), with extra headers.
    File {
        field: &'static str,
        file_name: String,
        mime_type: &'static str,
        bytes: Vec<u8>,
        headers: Vec<(HeaderName, HeaderValue)>,
    },
}

impl Body {
    pub fn json<T: serde::Serialize>(value: &T) -> Self {
        Body::Json(serde_json::to_value(value).expect("request bodies serialize"))
    }
}

/// A successful answer, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub latency: Duration,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// One service: its base URL, its HTTP client, how it authenticates and how
/// it retries.
#[derive(Clone, Debug)]
pub struct HttpService {
    pub name: &'static str,
    base: Url,
    client: reqwest::Client,
    auth: Auth,
    policy: RetryPolicy,
    headers: HeaderMap,
    /// Shared by every clone of this service's client.
    in_flight: std::sync::Arc<tokio::sync::Semaphore>,
}

impl HttpService {
    /// Refuses a plain `http://` base unless the section allows it (every
    /// service we talk to gets a credential, in a header or in the body).
    pub fn new(
        name: &'static str,
        base: &Url,
        auth: Auth,
        policy: RetryPolicy,
        transport: &Transport,
    ) -> Result<Self, ServiceError> {
        install_crypto_provider();
        let refuse = |message: String| ServiceError::new(name, &Method::GET, base.path(), ErrorKind::Unusable(message));
        if base.scheme() != "https" && !transport.allow_insecure_http {
            return Err(refuse(format!(
                "refusing to send credentials over plain {}:// to {}; use https:// or set \
                 'allow_insecure_http: true' in the '{}' section",
                base.scheme(),
                base.host_str().unwrap_or_default(),
                transport.section
            )));
        }
        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(policy.request_timeout)
            .connect_timeout(policy.connect_timeout)
            .redirect(reqwest::redirect::Policy::none());
        let mut extra_roots = Vec::new();
        for file in &transport.ca_files {
            extra_roots.extend(load_ca_file(file).map_err(refuse)?);
        }
        if !extra_roots.is_empty() {
            // Added to the system's roots, not instead of them.
            builder = builder.tls_certs_merge(extra_roots);
        }
        let client = builder.build().map_err(|err| {
            ServiceError::new(name, &Method::GET, "", ErrorKind::Transport(error_chain(&err.without_url())))
        })?;
        // Paths are joined to the base: make sure it ends in '/'.
        let mut base = base.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let in_flight = std::sync::Arc::new(tokio::sync::Semaphore::new(policy.max_in_flight.max(1)));
        Ok(HttpService { name, base, client, auth, policy, headers: HeaderMap::new(), in_flight })
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    pub fn policy(&self) -> RetryPolicy {
        self.policy
    }

    pub fn set_auth(&mut self, auth: Auth) {
        self.auth = auth;
    }

    /// A header sent with every request (a microversion, `Accept`).
    pub fn set_header(&mut self, name: &'static str, value: &str) {
        self.headers.insert(name, HeaderValue::from_str(value).expect("static header values are valid"));
    }

    /// The absolute URL of `path` (relative to the base; a leading '/' is
    /// kept under the base path) with `query`.
    pub fn url(&self, path: &str, query: &[(&str, &str)]) -> Result<Url, ServiceError> {
        let mut url = self.base.join(path.trim_start_matches('/')).map_err(|err| {
            ServiceError::new(self.name, &Method::GET, path, ErrorKind::Unusable(format!("bad path: {err}")))
        })?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// A follow-up link from a reply (`next`, `*_links`) as a URL to fetch
    /// with our credentials: only on the configured origin (scheme, host and
    /// port). A link naming another origin keeps only its path and query, on
    /// the configured origin: the credentials never go anywhere else. Both
    /// services build these links from what they were told, not from our URL
    /// (NetBox: DRF's `request.build_absolute_uri()`, so a TLS-terminating
    /// proxy yields `http://…`; Nova: `[api] compute_link_prefix` or the
    /// request's host), so a foreign origin is a real case, not only an attack.
    pub fn follow_link(&self, path: &str, link: &str) -> Result<Url, ServiceError> {
        let url = self
            .base
            .join(link)
            .map_err(|err| self.unusable(&Method::GET, path, format!("bad follow-up link: {err}")))?;
        if url.origin() == self.base.origin() {
            return Ok(url);
        }
        tracing::warn!(
            service = self.name,
            path,
            link_origin = %url.origin().ascii_serialization(),
            "a follow-up link names another origin; following its path on the configured one"
        );
        let mut rebuilt = self.base.clone();
        rebuilt.set_path(url.path());
        rebuilt.set_query(url.query());
        rebuilt.set_fragment(None);
        Ok(rebuilt)
    }

    /// One attempt, no retry. Any status other than 2xx is an error.
    pub async fn send_once(&self, method: Method, url: Url, body: &Body) -> Result<Reply, ServiceError> {
        let path = url.path().to_owned();
        let _slot = self.in_flight.acquire().await.expect("the semaphore is never closed");
        let start = Instant::now();
        let mut request = self.client.request(method.clone(), url).headers(self.headers.clone());
        request = match &self.auth {
            Auth::None => request,
            Auth::Basic { username, password } => request.basic_auth(username, Some(password.expose())),
            Auth::Scheme { scheme, token } => {
                request.header(reqwest::header::AUTHORIZATION, sensitive(&format!("{scheme} {}", token.expose())))
            }
            Auth::Header { name, token } => request.header(name.clone(), sensitive(token.expose())),
        };
        request = request.header(reqwest::header::ACCEPT, "application/json");
        request = match body {
            Body::Empty => request,
            Body::Json(value) => request.json(value),
            Body::Raw { bytes, headers } => {
                let mut request = request.body(bytes.clone());
                for (name, value) in headers {
                    request = request.header(name.clone(), value.clone());
                }
                request
            }
            Body::File { field, file_name, mime_type, bytes, headers } => {
                let part = reqwest::multipart::Part::bytes(bytes.clone())
                    .file_name(file_name.clone())
                    .mime_str(mime_type)
                    .map_err(|err| {
                        ServiceError::new(self.name, &method, &path, ErrorKind::Unusable(err.to_string()))
                    })?;
                let mut request = request.multipart(reqwest::multipart::Form::new().part(*field, part));
                for (name, value) in headers {
                    request = request.header(name.clone(), value.clone());
                }
                request
            }
        };
        let error = |kind| ServiceError::new(self.name, &method, &path, kind);
        if !matches!(method, Method::GET | Method::HEAD) {
            crate::fence::may_act().map_err(|why| error(ErrorKind::Fenced(why)))?;
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) => {
                let err = error(ErrorKind::Transport(error_chain(&err.without_url())));
                tracing::debug!(service = self.name, %method, path, elapsed_ms = ms(start), error = %err.kind, "request failed");
                return Err(err);
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = read_body(response, MAX_BODY_BYTES).await.map_err(error)?;
        tracing::debug!(service = self.name, %method, path, status = status.as_u16(), elapsed_ms = ms(start), "request");
        if !status.is_success() {
            let retry_after =
                headers.get("retry-after").and_then(|value| value.to_str().ok()).and_then(parse_retry_after);
            let message = service_message(&body);
            return Err(error(ErrorKind::Status { status: status.as_u16(), message, retry_after }));
        }
        Ok(Reply { status, headers, body, latency: start.elapsed() })
    }

    /// Runs `attempt` until it succeeds, fails for good, or the policy's
    /// attempts or time run out. Use it for reads, for writes that are
    /// idempotent, and for writes whose attempt looks before it writes.
    pub async fn retrying<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T, ServiceError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ServiceError>>,
    {
        let start = Instant::now();
        let mut tries = 0;
        loop {
            tries += 1;
            let err = match attempt().await {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            let delay = self.policy.delay(tries - 1, err.retry_after());
            let out_of_time = start.elapsed() + delay > self.policy.max_total;
            if !err.is_transient() || tries >= self.policy.max_attempts || out_of_time {
                if err.is_transient() {
                    tracing::warn!(service = self.name, what, attempts = tries, error = %err, "giving up");
                }
                return Err(err);
            }
            tracing::info!(service = self.name, what, attempt = tries, delay_ms = delay.as_millis() as u64, error = %err, "transient failure, retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// GET with retries.
    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Reply, ServiceError> {
        let url = self.url(path, query)?;
        self.get_url(url).await
    }

    /// GET of an absolute URL (a `next` link), with retries.
    pub async fn get_url(&self, url: Url) -> Result<Reply, ServiceError> {
        let what = url.path().to_owned();
        self.retrying(&what, || self.send_once(Method::GET, url.clone(), &Body::Empty)).await
    }

    pub async fn get_json<T: DeserializeOwned>(&self, path: &str, query: &[(&str, &str)]) -> Result<T, ServiceError> {
        let reply = self.get(path, query).await?;
        self.decode(&Method::GET, path, &reply)
    }

    /// A write retried as a whole: only for idempotent writes (PUT of a state,
    /// PATCH of fields, DELETE).
    pub async fn idempotent(&self, method: Method, path: &str, body: Body) -> Result<Reply, ServiceError> {
        let url = self.url(path, &[])?;
        self.retrying(path, || self.send_once(method.clone(), url.clone(), &body)).await
    }

    /// A write tried once: for writes that are not safe to repeat blindly.
    pub async fn write_once(&self, method: Method, path: &str, body: Body) -> Result<Reply, ServiceError> {
        let url = self.url(path, &[])?;
        self.send_once(method, url, &body).await
    }

    pub fn decode<T: DeserializeOwned>(&self, method: &Method, path: &str, reply: &Reply) -> Result<T, ServiceError> {
        serde_json::from_slice(&reply.body)
            .map_err(|err| ServiceError::new(self.name, method, path, ErrorKind::Decode(err.to_string())))
    }

    pub fn unusable(&self, method: &Method, path: &str, message: impl Into<String>) -> ServiceError {
        ServiceError::new(self.name, method, path, ErrorKind::Unusable(message.into()))
    }
}

/// The body, read as it arrives and abandoned past `limit` bytes: a huge
/// or endless body costs at most `limit` bytes of memory.
async fn read_body(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, ErrorKind> {
    let too_large =
        || ErrorKind::Decode(format!("the body is larger than {} (the limit); stopped reading it", bytes_shown(limit)));
    if response.content_length().is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) =
        response.chunk().await.map_err(|err| ErrorKind::Transport(error_chain(&err.without_url())))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn bytes_shown(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

/// The certificates of a PEM bundle, for a `ca_file`; the error starts
/// with `ca_file <path>:`.
pub fn load_ca_file(file: &std::path::Path) -> Result<Vec<reqwest::Certificate>, String> {
    use std::io::Read;
    let shown = file.display();
    let mut pem = Vec::new();
    std::fs::File::open(file)
        .and_then(|opened| opened.take(MAX_CA_FILE_BYTES + 1).read_to_end(&mut pem))
        .map_err(|err| format!("ca_file {shown}: {err}"))?;
    if pem.len() as u64 > MAX_CA_FILE_BYTES {
        return Err(format!("ca_file {shown}: larger than 1 MiB; a PEM bundle is far smaller"));
    }
    let certificates = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|err| format!("ca_file {shown}: not a PEM bundle: {err}"))?;
    if certificates.is_empty() {
        return Err(format!("ca_file {shown}: holds no PEM certificate"));
    }
    Ok(certificates)
}

/// The pages of one list: at most [`MAX_PAGES`], and never the same one twice
/// (a `next` link that points back would loop forever).
#[derive(Debug, Default)]
pub struct Pages {
    seen: HashSet<Url>,
}

impl Pages {
    /// Records `url` as the next page to fetch; an error when it was fetched
    /// already or when there are too many.
    pub fn visit(&mut self, http: &HttpService, path: &str, url: &Url) -> Result<(), ServiceError> {
        if self.seen.len() >= MAX_PAGES {
            return Err(http.unusable(
                &Method::GET,
                path,
                format!("more than {MAX_PAGES} pages; stopped following the next links"),
            ));
        }
        if !self.seen.insert(url.clone()) {
            return Err(http.unusable(
                &Method::GET,
                path,
                format!("the next link after page {} repeats an earlier page; stopped", self.seen.len()),
            ));
        }
        Ok(())
    }
}

fn sensitive(value: &str) -> HeaderValue {
    let mut value = HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    value.set_sensitive(true);
    value
}

fn ms(start: Instant) -> u64 {
    start.elapsed().as_millis() as u64
}

/// rustls needs one crypto provider for the process; we use ring.
fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Another part of the process may have installed one already: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// An error and its causes on one line ("error sending request: connection refused").
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// `Retry-After` as seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let wait = when.duration_since(jiff::Timestamp::now());
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// The service's own error text, from any of the error shapes of the
/// services we talk to; plain text as is. Kept short.
pub fn service_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let message = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) => json_message(&value).unwrap_or_else(|| value.to_string()),
        Err(_) => text.trim().to_owned(),
    };
    let mut message = message.replace('\n', " ");
    if message.len() > 500 {
        let mut cut = 500;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
    message
}

fn json_message(value: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Object(map) => {
            // Placement: {"errors": [{"status", "title", "detail"}]}.
            if let Some(Value::Array(errors)) = map.get("errors") {
                let details: Vec<String> = errors
                    .iter()
                    .filter_map(|error| error.get("detail").or_else(|| error.get("title"))?.as_str().map(str::to_owned))
                    .collect();
                return Some(details.join("; "));
            }
            // Jira: {"errorMessages": [...], "errors": {field: msg}}
            if map.contains_key("errorMessages") || map.contains_key("errors") {
                let mut parts: Vec<String> = Vec::new();
                if let Some(Value::Array(messages)) = map.get("errorMessages") {
                    parts.extend(messages.iter().filter_map(|m| m.as_str().map(str::to_owned)));
                }
                if let Some(Value::Object(errors)) = map.get("errors") {
                    parts
                        .extend(errors.iter().map(|(field, m)| format!("{field}: {}", m.as_str().unwrap_or_default())));
                }
                return Some(parts.join("; "));
            }
            // Keystone, Alertmanager, DRF: message / detail.
            for key in ["message", "detail"] {
                if let Some(text) = map.get(key).and_then(Value::as_str) {
                    return Some(text.to_owned());
                }
            }
            // Keystone {"error": {...}}, Nova {"badRequest": {"message"}}.
            if map.len() == 1 {
                if let Some(Value::Object(inner)) = map.values().next() {
                    if let Some(text) = inner.get("message").and_then(Value::as_str) {
                        return Some(text.to_owned());
                    }
                }
            }
            // DRF field errors: {"status": ["msg"]}.
            let fields: Vec<String> = map
                .iter()
                .filter_map(|(field, messages)| {
                    let messages = messages.as_array()?;
                    let texts: Vec<&str> = messages.iter().filter_map(Value::as_str).collect();
                    Some(format!("{field}: {}", texts.join(" ")))
                })
                .collect();
            (!fields.is_empty()).then(|| fields.join("; "))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback server that answers each request after 30 ms and counts how
    /// many it is answering at once.
    async fn counting_server() -> (Url, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        let (now, most) = (std::sync::Arc::new(AtomicUsize::new(0)), std::sync::Arc::new(AtomicUsize::new(0)));
        let seen = most.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (now, most) = (now.clone(), most.clone());
                tokio::spawn(async move {
                    let mut buffer = [0u8; 4096];
                    let _ = socket.read(&mut buffer).await;
                    let current = now.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(current, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                    let reply = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}";
                    let _ = socket.write_all(reply.as_bytes()).await;
                });
            }
        });
        (url, seen)
    }

    #[tokio::test]
    async fn requests_in_flight_are_limited() {
        let (url, most) = counting_server().await;
        let policy = RetryPolicy { max_in_flight: 3, ..RetryPolicy::default() };
        let service = HttpService::new(
            "test",
            &url,
            Auth::None,
            policy,
            &Transport { section: "test", allow_insecure_http: true, ca_files: Vec::new() },
        )
        .unwrap();
        let mut requests = tokio::task::JoinSet::new();
        for _ in 0..12 {
            let service = service.clone();
            requests.spawn(async move { service.get("x", &[]).await });
        }
        while let Some(reply) = requests.join_next().await {
            reply.unwrap().unwrap();
        }
        let most = most.load(std::sync::atomic::Ordering::SeqCst);
        assert!((1..=3).contains(&most), "{most} requests in flight at once");
    }

    #[tokio::test]
    async fn a_write_the_fence_refuses_is_never_sent_and_reads_still_are() {
        struct Lost;
        impl crate::fence::Fence for Lost {
            fn may_act(&self) -> Result<(), String> {
                Err("lease lost to run r2".to_owned())
            }
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut socket, _)) = listener.accept().await {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = socket.read(&mut [0u8; 4096]).await;
                let reply = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}";
                let _ = socket.write_all(reply.as_bytes()).await;
            }
        });
        let transport = Transport { section: "test", allow_insecure_http: true, ca_files: Vec::new() };
        let service = HttpService::new("nova", &url, Auth::None, RetryPolicy::default(), &transport).unwrap();
        crate::fence::within(std::sync::Arc::new(Lost), async {
            let err = service.idempotent(Method::PUT, "os-services/1", Body::Empty).await.unwrap_err();
            assert_eq!(err.to_string(), "nova: PUT /os-services/1: not sent: lease lost to run r2");
            assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 0, "nothing reached the service");
            service.get("os-services", &[]).await.unwrap();
        })
        .await;
        assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 1, "the read went out");
    }

    #[test]
    fn retry_after_seconds_and_date() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        let soon = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(30);
        let text = jiff::fmt::rfc2822::to_string(&soon.to_zoned(jiff::tz::TimeZone::UTC)).unwrap();
        let wait = parse_retry_after(&text).unwrap();
        assert!(wait > Duration::from_secs(25) && wait <= Duration::from_secs(30), "{wait:?}");
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn messages_of_every_service() {
        let cases: [(&str, &str); 8] = [
            (r#"{"errorMessages":["Issue does not exist"],"errors":{}}"#, "Issue does not exist"),
            (
                r#"{"errorMessages":[],"errors":{"comment":"Comment body is not valid!"}}"#,
                "comment: Comment body is not valid!",
            ),
            (r#"{"detail":"Invalid token"}"#, "Invalid token"),
            (
                r#"{"errors":[{"status":403,"title":"Forbidden","detail":"Policy does not allow placement:resource_providers:list to be performed."}]}"#,
                "Policy does not allow placement:resource_providers:list to be performed.",
            ),
            (r#"{"status":["\"bogus\" is not a valid choice."]}"#, "status: \"bogus\" is not a valid choice."),
            (
                r#"{"error":{"code":401,"message":"requires authentication","title":"Unauthorized"}}"#,
                "requires authentication",
            ),
            (r#"{"conflictingRequest":{"code":409,"message":"Cannot migrate"}}"#, "Cannot migrate"),
            (r#""silence not found""#, "silence not found"),
        ];
        for (body, expected) in cases {
            assert_eq!(service_message(body.as_bytes()), expected);
        }
        assert_eq!(service_message(b"plain text\n"), "plain text");
    }

    #[test]
    fn errors_have_no_query() {
        let err = ServiceError::new(
            "jira",
            &Method::GET,
            "/rest/api/2/search?jql=secret",
            ErrorKind::Status { status: 400, message: "bad".into(), retry_after: None },
        );
        assert_eq!(err.to_string(), "jira: GET /rest/api/2/search: 400: bad");
    }

    #[test]
    fn backoff_honours_retry_after_and_caps() {
        let policy = RetryPolicy { max_delay: Duration::from_secs(10), ..RetryPolicy::default() };
        assert_eq!(policy.delay(0, Some(Duration::from_secs(2))), Duration::from_secs(2));
        assert_eq!(policy.delay(0, Some(Duration::from_secs(100))), Duration::from_secs(10));
        assert!(policy.delay(20, None) <= Duration::from_secs(10));
    }
}
