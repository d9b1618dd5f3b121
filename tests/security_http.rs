//! Hostile services on 127.0.0.1: follow-up links to another host, pages
//! that link to themselves or never end, bodies of gigabytes, and plain
//! http without the operator's say-so.

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::Json;
use hvmigrate::clients::netbox::NetBoxClient;
use hvmigrate::clients::nova::NovaClient;
use hvmigrate::clients::openstack::{Keystone, KeystoneSettings};
use hvmigrate::clients::RetryPolicy;
use hvmigrate::config::Credentials;
use serde_json::{json, Value};
use support::Workspace;

const NETBOX_TOKEN: &str = "nb-token-never-elsewhere";
const OS_PASSWORD: &str = "os-password-never-elsewhere";
const OS_TOKEN: &str = "os-token-never-elsewhere";

/// One request a server saw: `path?query` and the credential headers it carried.
type SeenRequest = (String, Vec<String>);

/// Every request a server saw.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<SeenRequest>>>);

impl Seen {
    fn record(&self, request: &Request) {
        let credentials = ["authorization", "x-auth-token"]
            .iter()
            .filter_map(|name| request.headers().get(*name))
            .map(|value| value.to_str().unwrap_or_default().to_owned())
            .collect();
        self.0.lock().unwrap().push((request.uri().to_string(), credentials));
    }

    fn all(&self) -> Vec<SeenRequest> {
        self.0.lock().unwrap().clone()
    }
}

/// Serves `handler` on 127.0.0.1 until the test's runtime ends; returns its URL.
async fn serve<F, Fut>(handler: F) -> String
where
    F: Fn(Request) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = axum::Router::new().fallback(handler);
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

/// A server that records what it is sent and answers an empty page: the
/// place a hostile link points to.
async fn foreign_server() -> (String, Seen) {
    let seen = Seen::default();
    let url = serve({
        let seen = seen.clone();
        move |request: Request| {
            seen.record(&request);
            async { Json(json!({"results": [], "next": null, "servers": []})).into_response() }
        }
    })
    .await;
    (url, seen)
}

fn credentials(yaml: &str) -> Credentials {
    Credentials::parse(Path::new("c.yaml"), yaml).unwrap()
}

fn netbox(url: &str) -> NetBoxClient {
    let creds = credentials(&format!("netbox:\n  url: {url}\n  allow_insecure_http: true\n  token: {NETBOX_TOKEN}\n"));
    let policy = RetryPolicy { max_attempts: 1, ..RetryPolicy::default() };
    NetBoxClient::with_policy(creds.netbox.as_ref().unwrap(), policy).unwrap()
}

fn device() -> Value {
    json!({"id": 1, "name": "hv01.example.org", "status": {"value": "active", "label": "Active"}})
}

/// A NetBox whose `next` link names another server: the token never goes
/// there; the page is fetched from the configured NetBox instead.
#[tokio::test]
async fn a_next_link_to_another_host_gets_no_token() {
    let (foreign, foreign_seen) = foreign_server().await;
    let seen = Seen::default();
    let url = serve({
        let seen = seen.clone();
        move |request: Request| {
            seen.record(&request);
            let second = request.uri().query().unwrap_or_default().contains("offset=1000");
            let page = if second {
                json!({"results": [device()], "next": null})
            } else {
                json!({"results": [], "next": format!("{foreign}/api/dcim/devices/?name=hv01.example.org&offset=1000")})
            };
            async move { Json(page).into_response() }
        }
    })
    .await;
    let found = netbox(&url).device("hv01.example.org").await.expect("both pages are read from our NetBox");
    assert_eq!(found.id, 1);
    assert!(foreign_seen.all().is_empty(), "the foreign host was sent {:?}", foreign_seen.all());
    let seen = seen.all();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1].0, "/api/dcim/devices/?name=hv01.example.org&offset=1000");
    assert!(seen.iter().all(|(_, credentials)| credentials == &[format!("Token {NETBOX_TOKEN}")]), "{seen:?}");
}

/// Nova's `servers_links` naming another server: neither the Keystone token
/// nor anything else goes there.
#[tokio::test]
async fn a_nova_link_to_another_host_gets_no_token() {
    let (foreign, foreign_seen) = foreign_server().await;
    let base = Arc::new(Mutex::new(String::new()));
    let seen = Seen::default();
    let url = serve({
        let (base, seen) = (base.clone(), seen.clone());
        move |request: Request| {
            seen.record(&request);
            let base = base.lock().unwrap().clone();
            let (method, path) = (request.method().to_string(), request.uri().path().to_owned());
            let query = request.uri().query().unwrap_or_default().to_owned();
            let foreign = foreign.clone();
            async move {
                match (method.as_str(), path.as_str()) {
                    ("POST", "/v3/auth/tokens") => (
                        axum::http::StatusCode::CREATED,
                        [("x-subject-token", OS_TOKEN)],
                        Json(json!({"token": {"expires_at": "2099-01-01T00:00:00.000000Z", "catalog": [
                            {"type": "compute", "name": "nova", "endpoints": [
                                {"interface": "public", "region_id": "RegionOne", "url": format!("{base}/v2.1")}]}]}})),
                    )
                        .into_response(),
                    ("GET", "/v2.1") | ("GET", "/v2.1/") => {
                        Json(json!({"version": {"id": "v2.1", "version": "2.95", "min_version": "2.1"}}))
                            .into_response()
                    }
                    ("GET", "/v2.1/servers/detail") if query.contains("marker=a") => {
                        Json(json!({"servers": [{"id": "b", "status": "ACTIVE", "OS-EXT-SRV-ATTR:host": "hv01"}]}))
                            .into_response()
                    }
                    ("GET", "/v2.1/servers/detail") => Json(json!({
                        "servers": [{"id": "a", "status": "ACTIVE", "OS-EXT-SRV-ATTR:host": "hv01"}],
                        "servers_links": [{"rel": "next", "href": format!("{foreign}/v2.1/servers/detail?marker=a")}]}))
                    .into_response(),
                    _ => (axum::http::StatusCode::NOT_FOUND, Json(json!({}))).into_response(),
                }
            }
        }
    })
    .await;
    *base.lock().unwrap() = url.clone();
    let creds = credentials(&format!(
        "openstack:\n  auth_url: {url}/v3\n  allow_insecure_http: true\n  username: admin\n  password: {OS_PASSWORD}\n  project_name: admin\n"
    ));
    let settings = KeystoneSettings::from_config(creds.openstack.as_ref().unwrap()).unwrap();
    let keystone = Arc::new(Keystone::new(settings, RetryPolicy::default()).unwrap());
    let nova = NovaClient::connect(keystone).await.unwrap();
    let servers = nova.servers_on_host("hv01").await.expect("both pages are read from our Nova");
    assert_eq!(servers.iter().map(|server| server.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert!(foreign_seen.all().is_empty(), "the foreign host was sent {:?}", foreign_seen.all());
    assert!(seen.all().iter().any(|(uri, _)| uri == "/v2.1/servers/detail?marker=a"), "{:?}", seen.all());
}

/// A page whose `next` link is itself: an error after one page, not a loop.
#[tokio::test]
async fn a_page_linking_to_itself_ends_with_an_error() {
    let seen = Seen::default();
    let url = serve({
        let seen = seen.clone();
        move |request: Request| {
            seen.record(&request);
            // The same page, named relative to the server.
            let next = request.uri().to_string();
            async move { Json(json!({"results": [device()], "next": next})).into_response() }
        }
    })
    .await;
    let err = netbox(&url).device("hv01.example.org").await.unwrap_err().to_string();
    assert!(err.contains("repeats an earlier page"), "{err}");
    assert_eq!(seen.all().len(), 1, "{:?}", seen.all());
}

/// Pages that never end: stopped at the cap, with an error.
#[tokio::test]
async fn endless_pages_stop_at_the_cap() {
    let count = Arc::new(AtomicU64::new(0));
    let url = serve({
        let count = count.clone();
        move |_request: Request| {
            let page = count.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                Json(json!({"results": [], "next": format!("/api/dcim/devices/?offset={}", page * 1000)}))
                    .into_response()
            }
        }
    })
    .await;
    let err = netbox(&url).device("hv01.example.org").await.unwrap_err().to_string();
    assert!(err.contains(&format!("more than {} pages", hvmigrate::clients::http::MAX_PAGES)), "{err}");
    assert_eq!(count.load(Ordering::SeqCst), hvmigrate::clients::http::MAX_PAGES as u64);
}

/// A raw server that answers one request with up to 3 GiB of body, with or
/// without announcing its length; returns its URL and the bytes it managed
/// to send before the client hung up.
async fn huge_body_server(announce_length: bool) -> (String, Arc<AtomicU64>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const TOTAL: u64 = 3 << 30;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        let Ok((mut socket, _)) = listener.accept().await else { return };
        let mut request = [0u8; 4096];
        let _ = socket.read(&mut request).await;
        let length = if announce_length { format!("content-length: {TOTAL}\r\n") } else { String::new() };
        let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{length}connection: close\r\n\r\n");
        if socket.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = vec![b' '; 1 << 20];
        while counter.load(Ordering::SeqCst) < TOTAL {
            if socket.write_all(&chunk).await.is_err() {
                return;
            }
            counter.fetch_add(chunk.len() as u64, Ordering::SeqCst);
        }
    });
    (url, sent)
}

#[tokio::test]
async fn a_huge_body_is_abandoned_at_the_cap() {
    for announce_length in [false, true] {
        let (url, sent) = huge_body_server(announce_length).await;
        let err = netbox(&url).version().await.unwrap_err().to_string();
        assert!(err.contains("the body is larger than 64 MiB (the limit); stopped reading it"), "{err}");
        assert!(err.starts_with("netbox: GET /api/status/"), "{err}");
        // The client hung up near the cap; the server could not send the rest.
        let sent = sent.load(Ordering::SeqCst);
        assert!(sent < 256 << 20, "the server sent {sent} bytes (length announced: {announce_length})");
    }
}

/// Plain http with a credential is refused at load, unless the section says so.
#[test]
fn plain_http_is_refused_without_the_flag() {
    let ws = Workspace::empty();
    ws.write("hypervisors.txt", "hv01.example.org MH-1\n");
    let section = format!("netbox:\n  url: http://127.0.0.1:9\n  token: {NETBOX_TOKEN}\n");
    ws.write_secret("credentials.yaml", &section);
    let before = ws.files();
    let out = ws
        .hvmigrate(&["--hypervisors-file", "hypervisors.txt", "--creds-file", "credentials.yaml", "check-config"])
        .expect_code(2);
    out.stderr_has("credentials.yaml: netbox.url: plain http:// would send the credentials unencrypted")
        .stderr_has("'allow_insecure_http: true' in the 'netbox' section");
    assert!(!out.stderr.contains(NETBOX_TOKEN), "{}", out.report());
    assert_eq!(ws.files(), before, "nothing is written when the input is refused\n{}", out.report());

    ws.write_secret("credentials.yaml", section.replace("  token:", "  allow_insecure_http: true\n  token:"));
    ws.hvmigrate(&["--hypervisors-file", "hypervisors.txt", "--creds-file", "credentials.yaml", "check-config"])
        .expect_code(0);
}

/// A service found in the catalog over plain http is refused at connection
/// time when the section did not allow it.
#[tokio::test]
async fn plain_http_is_refused_by_the_client_too() {
    let creds = credentials(&format!("netbox:\n  url: https://netbox.example.org\n  token: {NETBOX_TOKEN}\n"));
    let mut settings = KeystoneSettings::from_config(
        credentials(&format!(
            "openstack:\n  auth_url: https://keystone.example.org/v3\n  username: a\n  password: {OS_PASSWORD}\n  project_name: a\n"
        ))
        .openstack
        .as_ref()
        .unwrap(),
    )
    .unwrap();
    settings.auth_url = url::Url::parse("http://keystone.example.org/v3").unwrap();
    let err = Keystone::new(settings, RetryPolicy::default()).unwrap_err().to_string();
    assert!(err.contains("refusing to send credentials over plain http:// to keystone.example.org"), "{err}");
    assert!(err.contains("'openstack' section"), "{err}");
    assert!(NetBoxClient::new(creds.netbox.as_ref().unwrap()).is_ok());
}

/// An https server on 127.0.0.1 whose certificate a private CA signed
/// (`tests/fixtures/private-ca`: made for these tests, valid until 2126);
/// it answers every request with NetBox's status document.
async fn private_ca_server() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/private-ca");
    let certificate = rustls::pki_types::CertificateDer::from(std::fs::read(fixtures.join("server.der")).unwrap());
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(std::fs::read(fixtures.join("server-key.der")).unwrap().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certificate], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that does not trust the CA ends the handshake: nothing to answer.
                let Ok(mut tls) = acceptor.accept(socket).await else { return };
                let mut request = [0u8; 4096];
                let _ = tls.read(&mut request).await;
                let body = r#"{"netbox-version": "4.1.0"}"#;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(reply.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    url
}

/// `ca_file`, in the section or in `general`, adds a private CA to the
/// system's roots; without it the server is not trusted.
#[tokio::test]
async fn a_private_ca_is_trusted_through_ca_file() {
    let url = private_ca_server().await;
    let ca = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/private-ca/ca.pem");
    let ca = ca.display();
    let policy = RetryPolicy { max_attempts: 1, ..RetryPolicy::default() };
    let section = format!("netbox:\n  url: {url}\n  token: {NETBOX_TOKEN}\n");
    let trusted =
        [format!("{section}  ca_file: {ca}\n"), format!("general:\n  initials: AB\n  ca_file: {ca}\n{section}")];
    for yaml in trusted {
        let creds = credentials(&yaml);
        let client = NetBoxClient::with_policy(creds.netbox.as_ref().unwrap(), policy).unwrap();
        assert_eq!(client.version().await.unwrap(), "4.1.0", "{yaml}");
    }
    let creds = credentials(&section);
    let client = NetBoxClient::with_policy(creds.netbox.as_ref().unwrap(), policy).unwrap();
    let err = client.version().await.unwrap_err().to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

/// A Jira Cloud search whose `nextPageToken` never changes: an error after
/// one page, not a loop.
#[tokio::test]
async fn a_repeating_jira_page_token_ends_with_an_error() {
    let seen = Seen::default();
    let url = serve({
        let seen = seen.clone();
        move |request: Request| {
            // The client first asks which Jira this is: a Cloud one, as configured.
            let server_info = request.uri().path().ends_with("/serverInfo");
            if !server_info {
                seen.record(&request);
            }
            async move {
                if server_info {
                    return Json(json!({"deploymentType": "Cloud", "version": "1001.0.0"})).into_response();
                }
                Json(json!({"issues": [{"key": "MH-1", "fields": {"summary": "hv01"}}], "nextPageToken": "again"}))
                    .into_response()
            }
        }
    })
    .await;
    let creds = credentials(&format!(
        "jira:\n  url: {url}\n  allow_insecure_http: true\n  flavour: cloud\n  personal_access_token: pat\n  project: MH\n"
    ));
    let policy = RetryPolicy { max_attempts: 1, ..RetryPolicy::default() };
    let jira = hvmigrate::clients::jira::JiraClient::with_policy(creds.jira.as_ref().unwrap(), policy).unwrap();
    let err = jira.search("project = MH").await.unwrap_err().to_string();
    assert!(err.contains("repeats an earlier page"), "{err}");
    assert_eq!(seen.all().len(), 2, "{:?}", seen.all());
}
