//! The service clients against a request-recording mock on loopback: exact
//! request shapes (bodies, headers, auth), retries of transient failures, and
//! look-before-write after a connection dropped once the write was committed.

use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use hvmigrate::clients::alertmanager::{AlertmanagerClient, Matcher, NewSilence};
use hvmigrate::clients::jira::{CommentOptions, Doc, JiraClient, Written};
use hvmigrate::clients::netbox::{DeviceChange, NetBoxClient};
use hvmigrate::clients::nova::{Microversion, NovaClient};
use hvmigrate::clients::openstack::{Keystone, KeystoneSettings};
use hvmigrate::clients::scc::{
    GuestProperties, GuestSystem, HostProperties, SccClient, VirtualizationHost, VirtualizationHosts,
};
use hvmigrate::clients::RetryPolicy;
use hvmigrate::config::Credentials;

/// One request as the mock saw it.
#[derive(Clone, Debug)]
struct Recorded {
    method: Method,
    /// Path and query.
    uri: String,
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Recorded {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
    fn query(&self, name: &str) -> Vec<String> {
        url::Url::parse(&format!("http://x{}", self.uri))
            .unwrap()
            .query_pairs()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
            .collect()
    }
}

/// What the mock answers.
enum Reply {
    Json(u16, Value),
    With(u16, Vec<(&'static str, String)>, Value),
    Empty(u16),
    /// Drop the connection without an answer (after the handler "committed").
    Drop,
    /// Answer after this long.
    Slow(Duration, Box<Reply>),
}

type Handler = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

struct Mock {
    url: String,
    log: Arc<Mutex<Vec<Recorded>>>,
}

impl Mock {
    async fn start(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Mock {
        let handler: Handler = Arc::new(handler);
        let log = Arc::new(Mutex::new(Vec::new()));
        let app = {
            let log = log.clone();
            axum::Router::new().fallback(
                move |method: Method, uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
                    let handler = handler.clone();
                    let log = log.clone();
                    async move {
                        let recorded = Recorded {
                            method,
                            uri: uri.path_and_query().map(|pq| pq.to_string()).unwrap_or_default(),
                            path: uri.path().to_owned(),
                            headers,
                            body: body.to_vec(),
                        };
                        log.lock().unwrap().push(recorded.clone());
                        let reply = handler(&recorded);
                        respond(reply).await
                    }
                },
            )
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Mock { url, log }
    }

    fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    fn writes(&self, path: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.method != Method::GET && r.path == path).collect()
    }
}

async fn respond(reply: Reply) -> Response {
    match reply {
        Reply::Json(status, body) => (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response(),
        Reply::With(status, headers, body) => {
            let mut response = (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
            for (name, value) in headers {
                response.headers_mut().insert(name, value.parse().unwrap());
            }
            response
        }
        Reply::Empty(status) => StatusCode::from_u16(status).unwrap().into_response(),
        // Unwinding out of the handler makes the server close the connection
        // without an answer; resume_unwind skips the panic message.
        Reply::Drop => std::panic::resume_unwind(Box::new("drop the connection")),
        Reply::Slow(delay, reply) => {
            tokio::time::sleep(delay).await;
            Box::pin(respond(*reply)).await
        }
    }
}

fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        max_total: Duration::from_secs(20),
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_secs(2),
        request_timeout: Duration::from_millis(700),
        connect_timeout: Duration::from_secs(1),
        ..RetryPolicy::default()
    }
}

fn credentials(yaml: &str) -> Credentials {
    Credentials::parse(Path::new("c.yaml"), yaml).unwrap()
}

fn jira_yaml(url: &str, flavour: &str) -> String {
    match flavour {
        "cloud" => {
            format!("jira:\n  url: {url}\n  allow_insecure_http: true\n  flavour: cloud\n  personal_access_token: pat-secret\n  project: MH\n")
        }
        _ => format!("jira:\n  url: {url}\n  allow_insecure_http: true\n  flavour: server\n  username: ops\n  api_token: tok\n  project: MH\n"),
    }
}

/// A small Jira: comments on issues, kept in memory, with injected faults
/// for the next requests.
struct FakeJira {
    comments: Mutex<Vec<(String, Value)>>,
    faults: Mutex<Vec<(Method, &'static str)>>,
}

impl FakeJira {
    fn new() -> Arc<Self> {
        Arc::new(FakeJira { comments: Mutex::new(Vec::new()), faults: Mutex::new(Vec::new()) })
    }

    fn handle(&self, request: &Recorded) -> Reply {
        let fault = {
            let mut faults = self.faults.lock().unwrap();
            let at = faults.iter().position(|(method, _)| *method == request.method);
            at.map(|at| faults.remove(at).1)
        };
        let parts: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
        match (fault, parts.as_slice()) {
            (Some("503"), _) => Reply::Json(503, json!({"errorMessages": ["busy"], "errors": {}})),
            (Some("429"), _) => {
                Reply::With(429, vec![("retry-after", "1".into())], json!({"errorMessages": ["slow down"]}))
            }
            (fault, ["rest", "api", _, "issue", key, "comment"]) => {
                let mut comments = self.comments.lock().unwrap();
                if request.method == Method::POST {
                    let id = (comments.len() + 1).to_string();
                    comments.push((key.to_string(), request.json()["body"].clone()));
                    if fault == Some("drop") {
                        return Reply::Drop;
                    }
                    return Reply::Json(201, json!({"id": id, "body": request.json()["body"]}));
                }
                let mine: Vec<Value> = comments
                    .iter()
                    .enumerate()
                    .filter(|(_, (k, _))| k == key)
                    .map(|(i, (_, body))| json!({"id": (i + 1).to_string(), "body": body}))
                    .collect();
                Reply::Json(200, json!({"startAt": 0, "maxResults": 100, "total": mine.len(), "comments": mine}))
            }
            (_, ["rest", "api", _, "myself"]) => Reply::Json(200, json!({"name": "ops", "displayName": "Ops"})),
            _ => Reply::Json(404, json!({"errorMessages": ["no such thing"], "errors": {}})),
        }
    }
}

#[tokio::test]
async fn jira_server_comment_is_wiki_with_basic_auth_and_survives_503_and_a_dropped_reply() {
    let jira = FakeJira::new();
    let mock = Mock::start({
        let jira = jira.clone();
        move |request| jira.handle(request)
    })
    .await;
    let creds = credentials(&jira_yaml(&mock.url, "server"));
    let client = JiraClient::with_policy(creds.jira.as_ref().unwrap(), fast_policy()).unwrap();
    let doc = Doc::new().paragraph("Disabled in Nova").code(Some("virsh list --all"), " Id   Name");

    // A 503 on the list, then the POST commits but its reply is lost.
    jira.faults.lock().unwrap().extend([(Method::GET, "503"), (Method::POST, "drop")]);
    let (_, written) = client.add_comment_once("MH-1", &doc, "run1-step2", &CommentOptions::default()).await.unwrap();
    // The retry found the comment it had posted: reported as already there, not posted twice.
    assert_eq!(written, Written::AlreadyThere);
    assert_eq!(jira.comments.lock().unwrap().len(), 1);
    assert_eq!(mock.writes("/rest/api/2/issue/MH-1/comment").len(), 1);

    // A re-run does not post again.
    let (_, written) = client.add_comment_once("MH-1", &doc, "run1-step2", &CommentOptions::default()).await.unwrap();
    assert_eq!(written, Written::AlreadyThere);
    assert_eq!(jira.comments.lock().unwrap().len(), 1);

    let post = &mock.writes("/rest/api/2/issue/MH-1/comment")[0];
    assert_eq!(post.header("authorization"), "Basic b3BzOnRvaw==");
    assert_eq!(post.header("user-agent"), format!("hvmigrate/{}", env!("CARGO_PKG_VERSION")));
    assert_eq!(post.header("content-type"), "application/json");
    let body = post.json()["body"].as_str().unwrap().to_owned();
    assert_eq!(
        body,
        "Disabled in Nova\n\n{code:title=virsh list --all}\n Id   Name\n{code}\n\nhvmigrate-marker:run1-step2"
    );
    assert!(post.json().get("properties").is_none());
}

#[tokio::test]
async fn jira_cloud_comment_is_adf_with_bearer_and_internal_property() {
    let jira = FakeJira::new();
    let mock = Mock::start({
        let jira = jira.clone();
        move |request| jira.handle(request)
    })
    .await;
    let creds = credentials(&jira_yaml(&mock.url, "cloud"));
    let client = JiraClient::with_policy(creds.jira.as_ref().unwrap(), fast_policy()).unwrap();
    let options = CommentOptions { internal: true, role: Some("Administrators".into()) };
    jira.faults.lock().unwrap().push((Method::GET, "429"));
    let (_, written) = client.add_comment_once("MH-2", &Doc::text("hello"), "m1", &options).await.unwrap();
    assert_eq!(written, Written::Created);
    let post = &mock.writes("/rest/api/3/issue/MH-2/comment")[0];
    assert_eq!(post.header("authorization"), "Bearer pat-secret");
    let body = post.json();
    assert_eq!(body["body"]["type"], "doc");
    assert_eq!(
        body["body"]["content"][0],
        json!({"type": "paragraph", "content": [{"type": "text", "text": "hello"}]})
    );
    assert_eq!(body["properties"], json!([{"key": "sd.public.comment", "value": {"internal": true}}]));
    assert_eq!(body["visibility"], json!({"type": "role", "value": "Administrators"}));
    // The 429 was retried after its Retry-After: serverInfo (429, then 404 from
    // this fake: the configured flavour is trusted), then the comments.
    let gets = mock.requests().into_iter().filter(|r| r.method == Method::GET).count();
    assert_eq!(gets, 3);
}

#[tokio::test]
async fn jira_transition_by_status_name_and_the_unavailable_case() {
    let status = Arc::new(Mutex::new("Open".to_owned()));
    let mock = Mock::start({
        let status = status.clone();
        move |request| match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/rest/api/2/issue/MH-3") => {
                Reply::Json(200, json!({"key": "MH-3", "fields": {"summary": "hv", "status": {"name": *status.lock().unwrap(), "statusCategory": {"key": "new"}}}}))
            }
            ("GET", "/rest/api/2/issue/MH-3/transitions") => Reply::Json(
                200,
                json!({"transitions": [
                    {"id": "21", "name": "Start", "to": {"name": "Working On Pre Bios"}},
                    {"id": "31", "name": "Done", "to": {"name": "Ready For Test"}}]}),
            ),
            ("POST", "/rest/api/2/issue/MH-3/transitions") => {
                *status.lock().unwrap() = "Working On Pre Bios".into();
                Reply::Empty(204)
            }
            _ => Reply::Json(404, json!({"errorMessages": ["nope"]})),
        }
    })
    .await;
    let creds = credentials(&jira_yaml(&mock.url, "server"));
    let client = JiraClient::with_policy(creds.jira.as_ref().unwrap(), fast_policy()).unwrap();
    assert_eq!(client.transition_to("MH-3", "working on pre bios").await.unwrap(), Written::Created);
    assert_eq!(mock.writes("/rest/api/2/issue/MH-3/transitions")[0].json(), json!({"transition": {"id": "21"}}));
    assert_eq!(client.transition_to("MH-3", "Working On Pre Bios").await.unwrap(), Written::AlreadyThere);
    let err = client.transition_to("MH-3", "Adoption Failed").await.unwrap_err().to_string();
    assert!(err.contains("cannot move to 'Adoption Failed' from 'Working On Pre Bios'"), "{err}");
    assert!(err.contains("'Start' (to 'Working On Pre Bios'), 'Done' (to 'Ready For Test')"), "{err}");
    assert_eq!(mock.writes("/rest/api/2/issue/MH-3/transitions").len(), 1);
    let err = client.issue("MH-9").await.unwrap_err();
    assert_eq!(err.to_string(), "jira: GET /rest/api/2/issue/MH-9: 404: nope");
}

#[tokio::test]
async fn jira_cloud_search_pages_with_next_page_token_and_matches_exactly() {
    let mock = Mock::start(|request| match request.path.as_str() {
        "/rest/api/2/serverInfo" => Reply::Json(200, json!({"deploymentType": "Cloud", "version": "1001.0.0-SNAPSHOT"})),
        "/rest/api/3/search/jql" => {
            let issue = |key: &str, summary: &str| json!({"key": key, "fields": {"summary": summary, "status": {"name": "Open"}}});
            if request.query("nextPageToken").is_empty() {
                Reply::Json(200, json!({"issues": [issue("MH-1", "hv01.example.org extra")], "nextPageToken": "p2", "isLast": false}))
            } else {
                Reply::Json(200, json!({"issues": [issue("MH-7", "hv01.example.org")], "isLast": true}))
            }
        }
        _ => Reply::Json(404, json!({})),
    })
    .await;
    let creds = credentials(&jira_yaml(&mock.url, "cloud"));
    let client = JiraClient::with_policy(creds.jira.as_ref().unwrap(), fast_policy()).unwrap();
    let (key, written) = client.create_issue_once("MH", "HyperVisor", "hv01.example.org", None).await.unwrap();
    assert_eq!((key.as_str(), written), ("MH-7", Written::AlreadyThere));
    assert_eq!(mock.requests()[0].path, "/rest/api/2/serverInfo", "the flavour checked first");
    let first = &mock.requests()[1];
    assert_eq!(first.query("jql"), ["project = \"MH\" AND summary ~ \"\\\"hv01.example.org\\\"\" ORDER BY key ASC"]);
    assert_eq!(mock.requests()[2].query("nextPageToken"), ["p2"]);
}

fn netbox_device(id: u64, name: &str, v4: bool) -> Value {
    let role = json!({"id": 5, "name": "Openstack Prod Kolla_Compute", "slug": "compute"});
    let mut device = json!({"id": id, "name": name, "status": {"value": "active", "label": "Active"},
        "device_type": {"id": 3, "model": "hv-2022-lenovo"}, "oob_ip": null, "custom_fields": {"x": null}});
    device[if v4 { "role" } else { "device_role" }] = role;
    device
}

#[tokio::test]
async fn netbox_patches_only_changed_fields_with_the_version_s_role_field() {
    let mock = Mock::start(|request| {
        let name = request.query("name").first().cloned().unwrap_or_default();
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/api/dcim/devices/") if name == "twice" => Reply::Json(
                200,
                json!({"count": 2, "next": null, "results": [netbox_device(1, "twice", true), netbox_device(2, "twice", true)]}),
            ),
            ("GET", "/api/dcim/devices/") if name == "old" => {
                Reply::Json(200, json!({"count": 1, "next": null, "results": [netbox_device(9, "old", false)]}))
            }
            ("GET", "/api/dcim/devices/") if name == "hv01" => {
                Reply::Json(200, json!({"count": 1, "next": null, "results": [netbox_device(7, "hv01", true)]}))
            }
            ("GET", "/api/dcim/devices/") => Reply::Json(200, json!({"count": 0, "next": null, "results": []})),
            ("GET", "/api/dcim/device-roles/") if name == "Spare" => {
                Reply::Json(200, json!({"count": 1, "next": null, "results": [{"id": 8, "name": "Spare", "slug": "spare"}]}))
            }
            ("GET", "/api/dcim/device-roles/") => Reply::Json(200, json!({"count": 0, "next": null, "results": []})),
            ("PATCH", path) => {
                let id: u64 = path.trim_start_matches("/api/dcim/devices/").trim_end_matches('/').parse().unwrap();
                let mut device = netbox_device(id, "patched", id != 9);
                for (key, value) in request.json().as_object().unwrap() {
                    device[key] = if key == "status" { json!({"value": value, "label": ""}) } else { json!({"id": value}) };
                }
                Reply::Json(200, device)
            }
            _ => Reply::Json(404, json!({"detail": "Not found."})),
        }
    })
    .await;
    let creds = credentials(&format!("netbox:\n  url: {}\n  allow_insecure_http: true\n  token: 0123abcd\n", mock.url));
    let client = NetBoxClient::with_policy(creds.netbox.as_ref().unwrap(), fast_policy()).unwrap();

    let device = client.device("hv01").await.unwrap();
    assert_eq!(device.role().unwrap().id, 5);
    let compute =
        hvmigrate::clients::netbox::Role { id: 5, name: "Openstack Prod Kolla_Compute".into(), slug: "compute".into() };
    // Same status, same role: nothing is sent.
    let change = DeviceChange { status: Some("active".into()), role: Some(compute.clone()) };
    assert!(!client.update_device(&device, &change).await.unwrap().1);
    // Only the status differs: only the status is sent.
    let change = DeviceChange { status: Some("planned".into()), role: Some(compute) };
    let (after, sent) = client.update_device(&device, &change).await.unwrap();
    assert!(sent);
    assert_eq!(after.status.value, "planned");
    let patch = &mock.writes("/api/dcim/devices/7/")[0];
    assert_eq!(patch.json(), json!({"status": "planned"}));
    assert_eq!(patch.header("authorization"), "Token 0123abcd");

    // NetBox ≤3.5 writes the role as device_role.
    let spare = client.role_by_name("Spare").await.unwrap();
    let old = client.device("old").await.unwrap();
    client.update_device(&old, &DeviceChange { status: None, role: Some(spare) }).await.unwrap();
    assert_eq!(mock.writes("/api/dcim/devices/9/")[0].json(), json!({"device_role": 8}));

    let err = client.device("twice").await.unwrap_err().to_string();
    assert!(err.contains("2 devices are named 'twice'"), "{err}");
    assert!(client.find_device("ghost").await.unwrap().is_none());
    let err = client.role_by_name("Nope").await.unwrap_err().to_string();
    assert!(err.contains("no device role named 'Nope'"), "{err}");
}

/// Keystone and Nova on one mock; `max` is the compute API's maximum
/// microversion, or None for a Nova without version documents.
async fn openstack_mock(max: Option<&'static str>) -> Mock {
    let url = Arc::new(Mutex::new(String::new()));
    let url_for_handler = url.clone();
    let throttled = Arc::new(Mutex::new(false));
    let mock = Mock::start(move |request| {
        let base = url_for_handler.lock().unwrap().clone();
        match (request.method.as_str(), request.path.as_str()) {
            ("POST", "/v3/auth/tokens") => Reply::With(
                201,
                vec![("x-subject-token", "tok-secret".into())],
                json!({"token": {"expires_at": "2099-01-01T00:00:00.000000Z", "catalog": [
                    {"type": "compute", "name": "nova", "endpoints": [
                        {"interface": "public", "region_id": "RegionOne", "url": format!("{base}/v2.1")}]}]}}),
            ),
            ("GET", "/v2.1") | ("GET", "/v2.1/") => match max {
                Some(max) => Reply::Json(200, json!({"version": {"id": "v2.1", "version": max, "min_version": "2.1"}})),
                None => Reply::Json(404, json!({"itemNotFound": {"code": 404, "message": "no"}})),
            },
            ("GET", "/") => Reply::Json(404, json!({})),
            ("GET", "/v2.1/os-services") => Reply::Json(200, json!({"services": [
                {"id": if max.is_some() { json!("5e1c-uuid") } else { json!(4) }, "binary": "nova-compute",
                 "host": "hv01", "zone": "nova", "status": "enabled", "state": "up", "disabled_reason": null}]})),
            ("PUT", _) => Reply::Json(200, json!({"service": {"binary": "nova-compute", "host": "hv01",
                "status": "disabled", "disabled_reason": request.json()["disabled_reason"]}})),
            ("GET", "/v2.1/servers/detail") => {
                let mut throttled = throttled.lock().unwrap();
                if !*throttled {
                    *throttled = true;
                    return Reply::With(429, vec![("retry-after", "1".into())], json!({"overLimit": {"code": 429, "message": "slow"}}));
                }
                if request.query("marker").is_empty() {
                    Reply::Json(200, json!({"servers": [{"id": "a", "status": "ACTIVE", "OS-EXT-SRV-ATTR:host": "hv01"}],
                        "servers_links": [{"rel": "next", "href": format!("{base}/v2.1/servers/detail?limit=1&marker=a&all_tenants=1")}]}))
                } else {
                    Reply::Json(200, json!({"servers": [{"id": "b", "status": "SHUTOFF", "OS-EXT-SRV-ATTR:host": "hv01"}]}))
                }
            }
            ("POST", "/v2.1/servers/a/action") => Reply::Empty(202),
            ("GET", "/v2.1/os-hypervisors/detail") => Reply::Json(200, json!({"hypervisors": [
                {"id": 1, "hypervisor_hostname": "hv01", "state": "up", "status": "enabled",
                 "service": {"host": "hv01", "id": 4, "disabled_reason": null}}]})),
            _ => Reply::Json(404, json!({"itemNotFound": {"code": 404, "message": "not here"}})),
        }
    })
    .await;
    *url.lock().unwrap() = mock.url.clone();
    mock
}

fn keystone(mock: &Mock) -> Arc<Keystone> {
    let creds = credentials(&format!(
        "openstack:\n  auth_url: {}/v3\n  allow_insecure_http: true\n  username: admin\n  password: os-secret\n  project_name: admin\n  region_name: RegionOne\n",
        mock.url
    ));
    let settings = KeystoneSettings::from_config(creds.openstack.as_ref().unwrap()).unwrap();
    Arc::new(Keystone::new(settings, fast_policy()).unwrap())
}

#[tokio::test]
async fn nova_negotiates_the_microversion_and_uses_the_new_paths() {
    let mock = openstack_mock(Some("2.95")).await;
    let nova = NovaClient::connect(keystone(&mock)).await.unwrap();
    assert_eq!(nova.version().used, Microversion(2, 87));

    let token_request = &mock.writes("/v3/auth/tokens")[0];
    assert_eq!(
        token_request.json(),
        json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin",
            "domain": {"name": "Default"}, "password": "os-secret"}}},
            "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}})
    );

    let service = nova.compute_service("hv01").await.unwrap().unwrap();
    let disabled = nova.disable_service(&service, "Migration to Rocky 9 - ABC").await.unwrap();
    assert_eq!(disabled.status, "disabled");
    let put = &mock.writes("/v2.1/os-services/5e1c-uuid")[0];
    assert_eq!(put.json(), json!({"status": "disabled", "disabled_reason": "Migration to Rocky 9 - ABC"}));
    assert_eq!(put.header("openstack-api-version"), "compute 2.87");
    assert_eq!(put.header("x-auth-token"), "tok-secret");

    // A 429 with Retry-After, then two pages.
    let servers = nova.servers_on_host("hv01").await.unwrap();
    assert_eq!(servers.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    let lists: Vec<Recorded> = mock.requests().into_iter().filter(|r| r.path == "/v2.1/servers/detail").collect();
    assert_eq!(lists.len(), 3);
    assert_eq!(lists[0].query("all_tenants"), ["1"]);
    assert_eq!(lists[0].query("host"), ["hv01"]);

    nova.live_migrate("a", None).await.unwrap();
    assert_eq!(
        mock.writes("/v2.1/servers/a/action")[0].json(),
        json!({"os-migrateLive": {"host": null, "block_migration": "auto"}})
    );
}

#[tokio::test]
async fn nova_without_version_documents_uses_the_legacy_paths() {
    let mock = openstack_mock(None).await;
    let nova = NovaClient::connect(keystone(&mock)).await.unwrap();
    assert_eq!(nova.version().used, Microversion(2, 1));
    let service = nova.compute_service("hv01").await.unwrap().unwrap();
    assert_eq!(service.id, "4");
    let disabled = nova.disable_service(&service, "why").await.unwrap();
    assert_eq!((disabled.id.as_str(), disabled.status.as_str()), ("4", "disabled"));
    let put = &mock.writes("/v2.1/os-services/disable-log-reason")[0];
    assert_eq!(put.json(), json!({"host": "hv01", "binary": "nova-compute", "disabled_reason": "why"}));
    assert_eq!(put.header("openstack-api-version"), "");
    nova.live_migrate("a", None).await.unwrap();
    assert_eq!(
        mock.writes("/v2.1/servers/a/action")[0].json(),
        json!({"os-migrateLive": {"host": null, "block_migration": false, "disk_over_commit": false}})
    );
}

#[tokio::test]
async fn alertmanager_silence_is_created_once_even_when_the_reply_is_lost() {
    let silences = Arc::new(Mutex::new(Vec::<Value>::new()));
    let drop_next = Arc::new(Mutex::new(true));
    let mock = Mock::start({
        let silences = silences.clone();
        move |request| match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/api/v2/silences") => Reply::Json(200, Value::Array(silences.lock().unwrap().clone())),
            ("POST", "/api/v2/silences") => {
                let mut silence = request.json();
                silence["id"] = json!("0f1e");
                silence["status"] = json!({"state": "active"});
                silences.lock().unwrap().push(silence);
                if std::mem::take(&mut *drop_next.lock().unwrap()) {
                    return Reply::Drop;
                }
                Reply::Json(200, json!({"silenceID": "0f1e"}))
            }
            ("DELETE", "/api/v2/silence/0f1e") => Reply::Empty(200),
            _ => Reply::Json(404, json!("not found")),
        }
    })
    .await;
    let creds = credentials(&format!("alertmanager:\n  url: {}\n  allow_insecure_http: true\n", mock.url));
    let client = AlertmanagerClient::with_policy(creds.alertmanager.as_ref().unwrap(), fast_policy()).unwrap();
    let start: jiff::Timestamp = "2026-11-21T04:39:09Z".parse().unwrap();
    let silence = NewSilence {
        matchers: vec![Matcher::equal("hostname", "hv01.example.org"), Matcher::equal("instance", "hv01.example.org")],
        starts_at: start,
        ends_at: start + jiff::SignedDuration::from_hours(24),
        created_by: "hvmigrate".into(),
        comment: "RL9 Reinstall - ABC".into(),
    };
    let (id, written) = client.ensure_silence(&silence).await.unwrap();
    assert_eq!((id.as_str(), written), ("0f1e", Written::AlreadyThere));
    let (_, written) = client.ensure_silence(&silence).await.unwrap();
    assert_eq!(written, Written::AlreadyThere);
    assert_eq!(silences.lock().unwrap().len(), 1);
    let post = &mock.writes("/api/v2/silences")[0];
    assert_eq!(
        post.json(),
        json!({"matchers": [
            {"name": "hostname", "value": "hv01.example.org", "isRegex": false, "isEqual": true},
            {"name": "instance", "value": "hv01.example.org", "isRegex": false, "isEqual": true}],
            "startsAt": "2026-11-21T04:39:09Z", "endsAt": "2026-11-22T04:39:09Z",
            "createdBy": "hvmigrate", "comment": "RL9 Reinstall - ABC"})
    );
    let list = mock.requests().into_iter().find(|r| r.path == "/api/v2/silences").unwrap();
    assert_eq!(list.query("filter"), ["hostname=\"hv01.example.org\"", "instance=\"hv01.example.org\""]);
    client.expire(&id).await.unwrap();
}

#[tokio::test]
async fn scc_upload_is_gzip_json_with_basic_auth() {
    let mock = Mock::start(|request| match request.path.as_str() {
        "/connect/organizations/virtualization_hosts" => Reply::Empty(200),
        "/connect/organizations/repositories" => Reply::Json(200, json!([])),
        _ => Reply::Empty(404),
    })
    .await;
    let creds = credentials(&format!(
        "scc:\n  url: {}\n  allow_insecure_http: true\n  username: org\n  password: scc-pass\n",
        mock.url
    ));
    let client = SccClient::with_policy(creds.scc.as_ref().unwrap(), fast_policy()).unwrap();
    client.check_credentials().await.unwrap();
    let hosts = VirtualizationHosts {
        virtualization_hosts: vec![VirtualizationHost {
            identifier: "hv01".into(),
            group_name: "cloud".into(),
            properties: HostProperties {
                name: "hv01".into(),
                arch: "x86_64".into(),
                cores: 32,
                sockets: 2,
                threads: 64,
                ram_mb: Some(515000),
                hypervisor_type: "kvm".into(),
            },
            systems: vec![GuestSystem {
                uuid: "4c4c4544-0031-3210-8053-b4c04f4b4b31".into(),
                properties: GuestProperties { vm_name: "vm1".into(), vm_state: "running".into() },
            }],
        }],
    };
    client.upload_hosts(&hosts).await.unwrap();
    let put = &mock.writes("/connect/organizations/virtualization_hosts")[0];
    assert_eq!(put.method, Method::PUT);
    assert_eq!(put.header("content-encoding"), "gzip");
    assert_eq!(put.header("content-type"), "application/json");
    assert_eq!(put.header("authorization"), "Basic b3JnOnNjYy1wYXNz");
    let mut json = String::new();
    flate2::read::GzDecoder::new(&put.body[..]).read_to_string(&mut json).unwrap();
    let json: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["virtualization_hosts"][0]["properties"]["ram_mb"], 515000);
    assert_eq!(json["virtualization_hosts"][0]["systems"][0]["properties"]["vmState"], "running");
}

#[tokio::test]
async fn a_slow_answer_times_out_and_is_retried_and_errors_hold_no_secret() {
    let calls = Arc::new(Mutex::new(0));
    let mock = Mock::start({
        let calls = calls.clone();
        move |request| {
            let mut calls = calls.lock().unwrap();
            *calls += 1;
            match request.path.as_str() {
                "/api/status/" if *calls == 1 => {
                    Reply::Slow(Duration::from_secs(3), Box::new(Reply::Json(200, json!({}))))
                }
                "/api/status/" => Reply::Json(200, json!({"netbox-version": "4.1.3"})),
                _ => Reply::Json(403, json!({"detail": "Invalid token"})),
            }
        }
    })
    .await;
    let creds =
        credentials(&format!("netbox:\n  url: {}\n  allow_insecure_http: true\n  token: supersecrettoken\n", mock.url));
    let client = NetBoxClient::with_policy(creds.netbox.as_ref().unwrap(), fast_policy()).unwrap();
    assert_eq!(client.version().await.unwrap(), "4.1.3");
    assert_eq!(*calls.lock().unwrap(), 2);
    let err = client.check_token().await.unwrap_err();
    assert_eq!(err.status(), Some(403));
    let text = format!("{err} {err:?}");
    assert_eq!(err.to_string(), "netbox: GET /api/dcim/devices/: 403: Invalid token");
    assert!(!text.contains("supersecrettoken") && !text.contains("limit="), "{text}");

    // Nobody listening: a transport error, retried, then given up.
    let creds =
        credentials("netbox:\n  url: http://127.0.0.1:9\n  allow_insecure_http: true\n  token: supersecrettoken\n");
    let client = NetBoxClient::with_policy(creds.netbox.as_ref().unwrap(), fast_policy()).unwrap();
    let err = client.version().await.unwrap_err();
    assert!(err.is_transient() && err.status().is_none(), "{err}");
    assert!(!format!("{err:?}").contains("supersecrettoken"));
}

/// A Jira with issues and comments, for the two ticket commands.
#[derive(Default)]
struct TicketJira {
    issues: Mutex<Vec<(String, String)>>,
    comments: Mutex<Vec<(String, String)>>,
}

impl TicketJira {
    fn handle(&self, request: &Recorded) -> Reply {
        let parts: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
        match (request.method.as_str(), parts.as_slice()) {
            ("GET", ["rest", "api", "2", "myself"]) => Reply::Json(200, json!({"name": "ops", "displayName": "Ops"})),
            ("GET", ["rest", "api", "2", "search"]) => {
                let jql = request.query("jql").concat();
                let issues: Vec<Value> = self
                    .issues
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|(_, summary)| jql.contains(&format!("\\\"{summary}\\\"")))
                    .map(|(key, summary)| json!({"key": key, "fields": {"summary": summary, "status": {"name": "Open"}}}))
                    .collect();
                Reply::Json(200, json!({"startAt": 0, "total": issues.len(), "issues": issues}))
            }
            ("POST", ["rest", "api", "2", "issue"]) => {
                let mut issues = self.issues.lock().unwrap();
                let key = format!("MH-{}", 100 + issues.len());
                let fields = &request.json()["fields"];
                assert_eq!(fields["project"], json!({"key": "MH"}));
                assert_eq!(fields["issuetype"], json!({"name": "HyperVisor"}));
                issues.push((key.clone(), fields["summary"].as_str().unwrap().to_owned()));
                Reply::Json(201, json!({"id": "1", "key": key}))
            }
            ("GET", ["rest", "api", "2", "issue", key, "comment"]) => {
                let mine: Vec<Value> = self
                    .comments
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|(k, _)| k == key)
                    .map(|(_, body)| json!({"id": "1", "body": body}))
                    .collect();
                Reply::Json(200, json!({"startAt": 0, "total": mine.len(), "comments": mine}))
            }
            ("POST", ["rest", "api", "2", "issue", key, "comment"]) => {
                let body = request.json()["body"].as_str().unwrap().to_owned();
                self.comments.lock().unwrap().push((key.to_string(), body.clone()));
                Reply::Json(201, json!({"id": "1", "body": body}))
            }
            _ => Reply::Json(404, json!({"errorMessages": ["no"]})),
        }
    }
}

#[tokio::test]
async fn tickets_create_find_rewrite_and_comment_once() {
    use hvmigrate::config::{HypervisorList, KeyMode};
    use hvmigrate::tickets::{comment_all, create_tickets, CommentAll, CreateTickets};

    let jira = Arc::new(TicketJira::default());
    jira.issues.lock().unwrap().push(("MH-7".into(), "hv02.example.org".into()));
    let mock = Mock::start({
        let jira = jira.clone();
        move |request| jira.handle(request)
    })
    .await;
    let creds = credentials(&jira_yaml(&mock.url, "server"));
    let client = JiraClient::with_policy(creds.jira.as_ref().unwrap(), fast_policy()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hypervisors.txt");
    let original = "# fleet\nhv01.example.org   # first\n\nhv02.example.org\nhv03.example.org MH-3\n";
    std::fs::write(&path, original).unwrap();
    let settings = CreateTickets { project: "MH".into(), issue_type: "HyperVisor".into(), dry_run: true };

    // Dry run: nothing created, nothing rewritten.
    let list = HypervisorList::load(&path, KeyMode::Optional).unwrap();
    let report = create_tickets(&client, &list, &settings).await.unwrap();
    let outcomes: Vec<_> = report.entries.iter().map(|e| (e.outcome, e.key.as_deref())).collect();
    assert_eq!(outcomes, [("would create", None), ("found", Some("MH-7")), ("listed", Some("MH-3"))]);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), original);
    assert!(mock.writes("/rest/api/2/issue").is_empty());

    let settings = CreateTickets { dry_run: false, ..settings };
    let report = create_tickets(&client, &list, &settings).await.unwrap();
    let outcomes: Vec<_> = report.entries.iter().map(|e| (e.outcome, e.key.as_deref())).collect();
    assert_eq!(outcomes, [("created", Some("MH-101")), ("found", Some("MH-7")), ("listed", Some("MH-3"))]);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "# fleet\nhv01.example.org MH-101   # first\n\nhv02.example.org MH-7\nhv03.example.org MH-3\n"
    );
    assert_eq!(std::fs::read_to_string(report.backup.unwrap()).unwrap(), original);

    // A re-run has nothing to do.
    let list = HypervisorList::load(&path, KeyMode::Required).unwrap();
    let report = create_tickets(&client, &list, &settings).await.unwrap();
    assert!(report.entries.iter().all(|e| e.outcome == "listed") && report.rewritten.is_none());
    assert_eq!(mock.writes("/rest/api/2/issue").len(), 1);

    // The same comment twice: posted once per ticket.
    let comment = CommentAll {
        text: "Maintenance starts Tuesday.".into(),
        options: CommentOptions::default(),
        dry_run: false,
        parallel: 2,
    };
    let first = comment_all(&client, &list, &comment).await.unwrap();
    assert!(first.entries.iter().all(|e| e.outcome == "posted"), "{:?}", first.entries);
    let again = comment_all(&client, &list, &comment).await.unwrap();
    assert!(again.entries.iter().all(|e| e.outcome == "already posted"), "{:?}", again.entries);
    let comments = jira.comments.lock().unwrap().clone();
    assert_eq!(comments.len(), 3);
    let marker = hvmigrate::tickets::comment_marker("Maintenance starts Tuesday.");
    assert!(comments.iter().all(|(_, body)| body.starts_with("Maintenance starts Tuesday.") && body.contains(&marker)));
}

#[tokio::test]
async fn reach_checks_every_configured_service() {
    let url = Arc::new(Mutex::new(String::new()));
    let base = url.clone();
    let mock = Mock::start(move |request| {
        let base = base.lock().unwrap().clone();
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/rest/api/2/myself") => Reply::Json(200, json!({"name": "ops", "displayName": "Ops"})),
            ("GET", "/rest/api/2/serverInfo") => Reply::Json(200, json!({"version": "9.12.2", "deploymentType": "Server"})),
            ("GET", "/api/status/") => Reply::Json(200, json!({"netbox-version": "4.1.3"})),
            ("GET", "/api/dcim/devices/") => Reply::Json(200, json!({"count": 0, "results": []})),
            ("POST", "/v3/auth/tokens") => Reply::With(
                201,
                vec![("x-subject-token", "t".into())],
                json!({"token": {"expires_at": "2099-01-01T00:00:00Z", "catalog": [{"type": "compute",
                    "endpoints": [{"interface": "public", "region_id": "RegionOne", "url": format!("{base}/v2.1")}]}]}}),
            ),
            ("GET", "/v2.1") => Reply::Json(200, json!({"version": {"version": "2.95", "min_version": "2.1"}})),
            ("GET", "/api/v2/status") => Reply::Json(200, json!({"versionInfo": {"version": "0.25.0"}})),
            // SCC refuses the credentials.
            _ => Reply::Json(401, json!("Unauthorized")),
        }
    })
    .await;
    *url.lock().unwrap() = mock.url.clone();
    let u = &mock.url;
    let creds = credentials(&format!(
        "{}netbox:\n  url: {u}\n  allow_insecure_http: true\n  token: t\nopenstack:\n  auth_url: {u}/v3\n  allow_insecure_http: true\n  username: a\n  password: p\n  project_name: a\nalertmanager:\n  url: {u}\n  allow_insecure_http: true\nscc:\n  url: {u}\n  allow_insecure_http: true\n  username: s\n  password: wrong\n",
        jira_yaml(u, "server")
    ));
    let results = hvmigrate::reach::check_all(&creds).await;
    let summary: Vec<_> = results.iter().map(|r| (r.service, r.ok, r.version.as_deref())).collect();
    assert_eq!(
        summary,
        [
            ("jira", true, Some("9.12.2")),
            ("netbox", true, Some("4.1.3")),
            ("openstack", true, Some("compute 2.95")),
            ("alertmanager", true, Some("0.25.0")),
            ("scc", false, None),
        ]
    );
    assert_eq!(results[4].detail, "scc: GET /connect/organizations/repositories: 401: Unauthorized");
    assert!(!format!("{results:?}").contains("wrong"));
}
