//! The real-services tier: the product's binary against real NetBox,
//! Keystone, Placement, Nova (fake virt driver) and Alertmanager that
//! `scripts/realstack up` started, with the lab beside them for Jira, SCC,
//! SSH, Aquilon and Kayobe (its hosts' `virsh` mirrors the real Nova).
//!
//! `scripts/realstack-test` sets HVMIGRATE_REALSTACK to the stack's folder;
//! without it each test says why it is skipped and passes. Each test works
//! on its own campaign host with its own journal, so their order is free.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use support::lab_site::{action, json, report_of};
use support::{Run, Running, Workspace};

const TIER: &str = "HVMIGRATE_REALSTACK";

/// The running stack, or `None` (after saying so) when the tier is not up.
fn stack(test: &str) -> Option<Stack> {
    match std::env::var_os(TIER) {
        Some(dir) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            Some(Stack::open(PathBuf::from(dir)))
        }
        None => {
            eprintln!(
                "SKIPPED {test}: {TIER} is not set (scripts/realstack-test brings the real services up and sets it)"
            );
            None
        }
    }
}

struct Stack {
    dir: PathBuf,
    endpoints: Value,
    credentials: Value,
}

impl Stack {
    fn open(dir: PathBuf) -> Self {
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_else(|err| panic!("{name}: {err}"));
        let endpoints = serde_json::from_str(&read("endpoints.json")).expect("endpoints.json");
        let credentials = serde_yaml_ng::from_str(&read("credentials.yaml")).expect("credentials.yaml");
        Stack { dir, endpoints, credentials }
    }

    fn url(&self, service: &str) -> String {
        self.endpoints[service].as_str().unwrap_or_else(|| panic!("endpoints.json names no {service}")).to_owned()
    }

    /// A workspace whose hypervisors file lists only `host` (with its ticket).
    fn workspace(&self, host: &str) -> Workspace {
        let list = std::fs::read_to_string(self.dir.join("hypervisors.txt")).unwrap();
        let line = list.lines().find(|line| line.split_whitespace().next() == Some(host)).expect("a campaign host");
        let ws = Workspace::empty();
        ws.write("hypervisors.txt", format!("{line}\n"));
        ws
    }

    /// The binary with the stack's credentials (`credentials-member.yaml` for the member user).
    fn hvmigrate(&self, ws: &Workspace, creds: &str, args: &[&str]) -> Run {
        let creds = self.dir.join(creds);
        let mut all = vec!["--hypervisors-file", "hypervisors.txt", "--creds-file", creds.to_str().unwrap()];
        all.extend_from_slice(args);
        ws.hvmigrate(&all)
    }

    /// As [`Self::hvmigrate`] with a copy of the admin credentials whose `workflow`
    /// settings `adjust` changes, written into the workspace.
    fn hvmigrate_adjusted(&self, ws: &Workspace, adjust: impl FnOnce(&mut Value), args: &[&str]) -> Run {
        let mut credentials = self.credentials.clone();
        adjust(&mut credentials["workflow"]);
        let creds = ws.write_secret("credentials.yaml", serde_yaml_ng::to_string(&credentials).unwrap());
        let mut all = vec!["--hypervisors-file", "hypervisors.txt", "--creds-file", creds.to_str().unwrap()];
        all.extend_from_slice(args);
        ws.hvmigrate(&all)
    }

    /// `scripts/realstack VERB NAME` on this stack: kill, pause or start one service.
    fn service(&self, verb: &str, name: &str) -> Result<(), String> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/realstack");
        let out = Command::new(&script)
            .args([verb, name])
            .env("REALSTACK_DIR", &self.dir)
            .output()
            .expect("scripts/realstack runs");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("scripts/realstack {verb} {name}: {text}"))
        }
    }

    /// SIGSTOPs a service; it is killed and started again when the guard drops
    /// (even when the test fails), or by [`Downed::kill`] and [`Downed::start`].
    fn pause(&self, name: &'static str) -> Downed<'_> {
        self.service("pause", name).unwrap();
        Downed { stack: self, name, up: false }
    }

    /// SIGKILLs a service's processes; it is started again as for [`Self::pause`].
    fn kill(&self, name: &'static str) -> Downed<'_> {
        self.service("kill", name).unwrap();
        Downed { stack: self, name, up: false }
    }

    /// The Jira issue of a campaign host (the second word of its line).
    fn ticket(&self, host: &str) -> String {
        let list = std::fs::read_to_string(self.dir.join("hypervisors.txt")).unwrap();
        let line = list.lines().find(|line| line.split_whitespace().next() == Some(host)).expect("a campaign host");
        line.split_whitespace().nth(1).expect("its ticket").to_owned()
    }

    fn campaign_host(&self, index: usize) -> String {
        let list = std::fs::read_to_string(self.dir.join("hypervisors.txt")).unwrap();
        let hosts: Vec<&str> =
            list.lines().filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty()).collect();
        hosts[index].split_whitespace().next().unwrap().to_owned()
    }

    /// `virsh list --all` on a simulated host, through the real OpenSSH client.
    fn virsh_list(&self, host: &str) -> String {
        let lab = Path::new(self.endpoints["lab"].as_str().unwrap()).to_owned();
        let out = Command::new("ssh")
            .arg("-F")
            .arg(lab.join("ssh/ssh_config"))
            .arg(host)
            .arg("virsh list --all")
            .output()
            .expect("ssh runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "virsh on {host}: {}{}", text, String::from_utf8_lossy(&out.stderr));
        text
    }
}

/// A service a test stopped or killed: started again by [`Self::start`] or on drop.
struct Downed<'a> {
    stack: &'a Stack,
    name: &'static str,
    up: bool,
}

impl Downed<'_> {
    fn kill(&self) {
        self.stack.service("kill", self.name).unwrap();
    }

    fn start(mut self) {
        self.up = true;
        self.stack.service("start", self.name).unwrap();
    }
}

impl Drop for Downed<'_> {
    fn drop(&mut self) {
        if !self.up {
            // The test failed half-way: leave the stack whole for the next ones.
            let _ = self.stack.service("kill", self.name);
            if let Err(err) = self.stack.service("start", self.name) {
                eprintln!("{err}");
            }
        }
    }
}

/// Waits (polling) until `happened`; fails the test if the run ends first or a minute passes.
fn wait_while_running(run: &mut Running, what: &str, mut happened: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !happened() {
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "{what} never happened");
        assert!(!run.ended(), "the run ended before {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The run logs (`logs/` of the workspace) as one text.
fn run_log(ws: &Workspace) -> String {
    let mut names: Vec<PathBuf> = match std::fs::read_dir(ws.file("logs")) {
        Ok(entries) => entries.flatten().map(|entry| entry.path()).collect(),
        Err(_) => return String::new(),
    };
    names.sort();
    names.iter().map(|name| std::fs::read_to_string(name).unwrap_or_default()).collect()
}

/// Plain HTTP reads of the real services, independent of the product's clients.
struct Admin {
    http: reqwest::Client,
    token: String,
    nova: String,
}

impl Admin {
    async fn login(stack: &Stack) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        // gunicorn closes idle connections after 2 s: a fresh connection per request.
        let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
        let os = &stack.credentials["openstack"];
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": os["username"], "password": os["password"], "domain": {"name": "Default"}}}},
            "scope": {"project": {"name": os["project_name"], "domain": {"name": "Default"}}}}});
        let reply = http.post(format!("{}/auth/tokens", stack.url("keystone"))).json(&body).send().await.unwrap();
        let token = reply.headers()["x-subject-token"].to_str().unwrap().to_owned();
        Admin { http, token, nova: stack.url("nova") }
    }

    async fn nova(&self, path: &str) -> Value {
        let reply = self
            .http
            .get(format!("{}{path}", self.nova))
            .header("X-Auth-Token", &self.token)
            .header("OpenStack-API-Version", "compute 2.80")
            .send()
            .await
            .unwrap();
        assert!(reply.status().is_success(), "GET {path}: {}", reply.status());
        reply.json().await.unwrap()
    }

    /// (name, status, libvirt domain name) of each server Nova places on `host`.
    async fn servers_on(&self, host: &str) -> Vec<(String, String, String)> {
        let servers = self.nova(&format!("/servers/detail?all_tenants=1&host={host}")).await;
        let text = |s: &Value, key: &str| s[key].as_str().unwrap_or_default().to_owned();
        let mut found: Vec<(String, String, String)> = servers["servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (text(s, "name"), text(s, "status"), text(s, "OS-EXT-SRV-ATTR:instance_name")))
            .collect();
        found.sort();
        found
    }

    async fn compute_service(&self, host: &str) -> Value {
        let services = self.nova(&format!("/os-services?binary=nova-compute&host={host}")).await;
        services["services"][0].clone()
    }

    /// The ids of the servers Nova places on `host`.
    async fn server_ids_on(&self, host: &str) -> Vec<String> {
        let servers = self.nova(&format!("/servers?all_tenants=1&host={host}")).await;
        let mut ids: Vec<String> =
            servers["servers"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect();
        ids.sort();
        ids
    }

    /// How many migration records each of `servers` has from `host`.
    async fn migrations_from(&self, host: &str, servers: &[String]) -> Vec<(String, usize)> {
        let all = self.migrations().await;
        servers
            .iter()
            .map(|id| {
                let count =
                    all.iter().filter(|m| m["instance_uuid"] == id.as_str() && m["source_compute"] == host).count();
                (id.clone(), count)
            })
            .collect()
    }

    async fn migrations(&self) -> Vec<Value> {
        self.nova("/os-migrations").await["migrations"].as_array().unwrap().clone()
    }
}

/// The domain names of `virsh list --all` (` Id   Name   State` rows under the dashes), sorted.
/// The drain looks at its migrations each second rather than every 15 s: the
/// fake driver's live migration takes 5 s, and the tier's time is CI's.
fn poll_each_second(workflow: &mut Value) {
    workflow["drain"]["poll_interval_ms"] = json!(1000);
}

fn domains(virsh: &str) -> Vec<&str> {
    let mut names: Vec<&str> = virsh
        .lines()
        .skip_while(|line| !line.starts_with("---"))
        .skip(1)
        .filter_map(|line| line.split_whitespace().nth(1))
        .collect();
    names.sort_unstable();
    names
}

/// GET of a NetBox API path with the stack's token.
async fn netbox_get(stack: &Stack, path: &str) -> Value {
    let token = stack.credentials["netbox"]["token"].as_str().unwrap();
    let reply = reqwest::Client::new()
        .get(format!("{}{path}", stack.url("netbox")))
        .header("Authorization", format!("Token {token}"))
        .send()
        .await
        .unwrap();
    assert!(reply.status().is_success(), "GET {path}: {}", reply.status());
    reply.json().await.unwrap()
}

/// The device's status changes in NetBox's own changelog (`core/object-changes`,
/// NetBox ≥ 4.1), oldest first: (from, to).
async fn netbox_status_changes(stack: &Stack, host: &str) -> Vec<(String, String)> {
    let device = netbox_get(stack, &format!("/api/dcim/devices/?name={host}")).await;
    let id = device["results"][0]["id"].as_u64().expect("the device");
    let changes = netbox_get(
        stack,
        &format!("/api/core/object-changes/?changed_object_type=dcim.device&changed_object_id={id}&limit=1000"),
    )
    .await;
    let status = |data: &Value| data["status"].as_str().unwrap_or_default().to_owned();
    let mut found: Vec<(String, String, String)> = changes["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"]["value"] == "update")
        .map(|c| (c["time"].as_str().unwrap().to_owned(), status(&c["prechange_data"]), status(&c["postchange_data"])))
        .filter(|(_, before, after)| before != after)
        .collect();
    found.sort();
    found.into_iter().map(|(_, before, after)| (before, after)).collect()
}

/// The bodies of the comments on a campaign host's ticket in the lab's Jira.
async fn jira_comments(stack: &Stack, host: &str) -> Vec<String> {
    let jira = &stack.credentials["jira"];
    let url = format!("{}/rest/api/2/issue/{}/comment", jira["url"].as_str().unwrap(), stack.ticket(host));
    let mut request = reqwest::Client::new().get(url);
    request = match (jira["username"].as_str(), jira["api_token"].as_str(), jira["token"].as_str()) {
        (Some(user), Some(token), _) => request.basic_auth(user, Some(token)),
        (_, _, Some(token)) => request.bearer_auth(token),
        _ => request,
    };
    let reply: Value = request.send().await.unwrap().json().await.unwrap();
    reply["comments"]
        .as_array()
        .unwrap_or_else(|| panic!("Jira comments: {reply}"))
        .iter()
        .map(|c| c["body"].as_str().map(str::to_owned).unwrap_or_else(|| c["body"].to_string()))
        .collect()
}

async fn netbox_status(stack: &Stack, host: &str) -> String {
    let reply = netbox_get(stack, &format!("/api/dcim/devices/?name={host}")).await;
    reply["results"][0]["status"]["value"].as_str().unwrap().to_owned()
}

#[test]
fn check_config_reach_reports_every_real_service_with_its_version() {
    let Some(stack) = stack("check_config_reach_reports_every_real_service_with_its_version") else { return };
    let ws = stack.workspace(&stack.campaign_host(0));
    let out = stack.hvmigrate(&ws, "credentials.yaml", &["check-config", "--reach", "--output", "json"]).expect_code(0);
    // Two documents: the configuration, then what each service answered.
    let documents: Vec<Value> = serde_json::Deserializer::from_str(&out.stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|err| panic!("{err}\n{}", out.report()));
    let results = documents.last().expect("the reach results").clone();
    let of = |service: &str| {
        results["reach"]
            .as_array()
            .or_else(|| results.as_array())
            .unwrap()
            .iter()
            .find(|r| r["service"] == service)
            .unwrap_or_else(|| panic!("{service} checked\n{}", out.report()))
            .clone()
    };
    for service in ["jira", "netbox", "openstack", "alertmanager", "scc"] {
        assert_eq!(of(service)["ok"], true, "{service}\n{}", out.report());
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // Nova's own version document (unauthenticated) and NetBox's status page say what the product must report.
    let (nova_max, netbox_version) = runtime.block_on(async {
        let versions: Value = reqwest::get(format!("{}/", stack.url("nova"))).await.unwrap().json().await.unwrap();
        let status = netbox_get(&stack, "/api/status/").await;
        (
            versions["version"]["version"].as_str().unwrap().to_owned(),
            status["netbox-version"].as_str().unwrap().to_owned(),
        )
    });
    assert_eq!(of("openstack")["version"], format!("compute {nova_max}"), "{}", out.report());
    assert_eq!(of("netbox")["version"], netbox_version, "{}", out.report());
    eprintln!("real Nova max microversion {nova_max}, NetBox {netbox_version}");
}

#[test]
fn noops_reaches_every_service_and_host_and_changes_nothing() {
    let Some(stack) = stack("noops_reaches_every_service_and_host_and_changes_nothing") else { return };
    let host = stack.campaign_host(0);
    let ws = stack.workspace(&host);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let admin = runtime.block_on(Admin::login(&stack));
    let before = runtime
        .block_on(async { (admin.compute_service(&host).await["status"].clone(), admin.servers_on(&host).await) });
    let out =
        stack.hvmigrate(&ws, "credentials.yaml", &["run", "--step", "noops", "--output", "json", "-q"]).expect_code(0);
    assert_eq!(report_of(&json(&out), &host)["outcome"], "succeeded", "{}", out.report());
    let after = runtime
        .block_on(async { (admin.compute_service(&host).await["status"].clone(), admin.servers_on(&host).await) });
    assert_eq!(before, after, "noops changed Nova\n{}", out.report());
}

/// pre-drain, drain and the pre-reinstall parts that touch the real services, on one host.
#[test]
fn pre_drain_then_drain_empty_the_host_in_nova_and_in_virsh() {
    let Some(stack) = stack("pre_drain_then_drain_empty_the_host_in_nova_and_in_virsh") else { return };
    let host = stack.campaign_host(0);
    let ws = stack.workspace(&host);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let admin = runtime.block_on(Admin::login(&stack));
    let run = |args: &[&str]| stack.hvmigrate_adjusted(&ws, poll_each_second, args).run();

    run(&["run", "--step", "setup", "-q"]);
    let out = run(&["run", "--step", "pre-drain", "--output", "json", "-q"]);
    let summary = json(&out);
    let report = report_of(&summary, &host);
    assert_eq!(report["outcome"], "succeeded", "{}", out.report());
    let service = runtime.block_on(admin.compute_service(&host));
    assert_eq!(service["status"], "disabled", "{}", out.report());
    assert_eq!(service["disabled_reason"], "Migration to Rocky 9 - LAB");
    // A re-run finds it done and changes nothing.
    let again = json(&run(&["run", "--step", "pre-drain", "--output", "json", "-q"]));
    assert_eq!(action(report_of(&again, &host), "disable-compute")["outcome"], "skipped");

    let servers_before = runtime.block_on(admin.servers_on(&host));
    assert!(!servers_before.is_empty(), "the seeded servers are on {host}");
    assert!(servers_before.iter().any(|(_, status, _)| status == "SHUTOFF"), "{servers_before:?}");
    // The host's libvirt mirrors the real Nova: its domains are exactly Nova's servers there.
    let virsh = stack.virsh_list(&host);
    let mut nova_domains: Vec<&str> = servers_before.iter().map(|(_, _, domain)| domain.as_str()).collect();
    nova_domains.sort_unstable();
    assert_eq!(domains(&virsh), nova_domains, "virsh:\n{virsh}");
    let out = run(&["run", "--step", "drain", "--output", "json", "-q"]);
    assert_eq!(report_of(&json(&out), &host)["outcome"], "succeeded", "{}", out.report());
    assert!(runtime.block_on(admin.servers_on(&host)).is_empty(), "Nova still places servers on {host}");
    let virsh = stack.virsh_list(&host);
    assert!(domains(&virsh).is_empty(), "virsh still shows domains:\n{virsh}");
    // Real migration records: live for the running VMs, cold (confirmed) for the stopped one.
    let migrations = runtime.block_on(admin.migrations());
    let from_host: Vec<&Value> = migrations.iter().filter(|m| m["source_compute"] == host.as_str()).collect();
    assert!(
        from_host.iter().any(|m| m["migration_type"] == "live-migration" && m["status"] == "completed"),
        "{from_host:#?}"
    );
    assert!(
        from_host.iter().any(|m| m["migration_type"] == "migration" && m["status"] == "confirmed"),
        "{from_host:#?}"
    );

    // pre-reinstall's empty check, silences and NetBox `planned` against the real services.
    let out = run(&["run", "--step", "pre-reinstall", "--yes", "--output", "json", "-q"]);
    let summary = json(&out);
    let report = report_of(&summary, &host);
    assert_eq!(action(report, "empty-check")["outcome"], "ok", "{}", out.report());
    assert_eq!(runtime.block_on(netbox_status(&stack, &host)), "planned", "{}", out.report());
    let silences: Value = runtime.block_on(async {
        reqwest::get(format!("{}/api/v2/silences", stack.url("alertmanager"))).await.unwrap().json().await.unwrap()
    });
    let ours = silences
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"]["state"] == "active" && s["matchers"].to_string().contains(host.as_str()))
        .count();
    assert!(ours >= 1, "a real silence for {host}: {silences:#}\n{}", out.report());
}

#[test]
fn member_role_user_drain_refuses_naming_the_policy_and_moves_nothing() {
    let Some(stack) = stack("member_role_user_drain_refuses_naming_the_policy_and_moves_nothing") else { return };
    let host = stack.campaign_host(1);
    let ws = stack.workspace(&host);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let admin = runtime.block_on(Admin::login(&stack));
    let before = runtime.block_on(async { (admin.servers_on(&host).await, admin.migrations().await.len()) });
    let out = stack
        .hvmigrate(&ws, "credentials-member.yaml", &["run", "--step", "drain", "--force", "--output", "json", "-q"])
        .run();
    let summary = json(&out);
    let report = report_of(&summary, &host);
    assert_ne!(report["outcome"], "succeeded", "{}", out.report());
    let reason = report["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("os_compute_api:"), "the refusal names Nova's policy rule: {reason}\n{}", out.report());
    let after = runtime.block_on(async { (admin.servers_on(&host).await, admin.migrations().await.len()) });
    assert_eq!(before, after, "nothing migrated\n{}", out.report());
}

/// NetBox killed (-9) with a request of pre-reinstall in flight (NetBox paused
/// first, so that the request is surely waiting on it): the host fails naming
/// NetBox and the action. Once NetBox is back, a re-run finishes the step with
/// one status change in NetBox's changelog and no step's comment repeated.
#[test]
fn netbox_killed_mid_pre_reinstall_fails_the_host_then_a_rerun_changes_the_status_once() {
    let Some(stack) = stack("netbox_killed_mid_pre_reinstall_fails_the_host_then_a_rerun_changes_the_status_once")
    else {
        return;
    };
    let host = stack.campaign_host(2);
    let ws = stack.workspace(&host);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let run = |args: &[&str]| stack.hvmigrate(&ws, "credentials.yaml", args).run();
    for step in ["setup", "pre-drain", "drain"] {
        let out = run(&["run", "--step", step, "--output", "json", "-q"]);
        assert_eq!(report_of(&json(&out), &host)["outcome"], "succeeded", "{step}\n{}", out.report());
    }
    let status_before = runtime.block_on(netbox_status(&stack, &host));
    let comments_before = runtime.block_on(jira_comments(&stack, &host));

    // The run's own log says when its preflight has reached NetBox; then NetBox
    // is paused, and killed once the host's next request to it is on its way.
    let pre_reinstall = ["run", "--step", "pre-reinstall", "--yes", "--output", "json", "-q"];
    let earlier = run_log(&ws).len();
    let this_run = || run_log(&ws)[earlier..].to_owned();
    let mut running = stack.hvmigrate(&ws, "credentials.yaml", &pre_reinstall).start();
    let reached = "reachable service=\"netbox\"";
    wait_while_running(&mut running, "the preflight's reach of NetBox", || this_run().contains(reached));
    let netbox = stack.pause("netbox");
    let address = stack.url("netbox").trim_start_matches("http://").to_owned();
    wait_while_running(&mut running, "a request to NetBox after the preflight", || {
        let log = this_run();
        log[log.find(reached).unwrap()..].contains(&address)
    });
    netbox.kill();
    let out = running.finish();
    let summary = json(&out);
    let report = report_of(&summary, &host);
    assert_eq!(report["outcome"], "failed", "{}", out.report());
    let reason = report["reason"].as_str().unwrap_or_default();
    assert!(
        (reason.contains("netbox-device") || reason.contains("netbox-planned")) && reason.contains("netbox: "),
        "the reason names the action and NetBox: {reason}\n{}",
        out.report()
    );
    netbox.start();
    assert_eq!(runtime.block_on(netbox_status(&stack, &host)), status_before, "nothing changed in NetBox");

    let out = run(&pre_reinstall);
    assert_eq!(report_of(&json(&out), &host)["outcome"], "succeeded", "{}", out.report());
    assert_eq!(
        runtime.block_on(netbox_status_changes(&stack, &host)),
        [(status_before.clone(), "planned".to_owned())],
        "one status change in NetBox's changelog\n{}",
        out.report()
    );
    let comments = runtime.block_on(jira_comments(&stack, &host));
    let added = &comments[comments_before.len()..];
    // The failed run said so once, the re-run its step once.
    assert_eq!(added.len(), 2, "{added:#?}");
    let mut distinct = comments.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), comments.len(), "no comment repeated: {comments:#?}");
}

/// nova-api killed (-9) once the drain's first migration is under way: the host
/// fails with a reason naming Nova. Once nova-api is back, a re-run empties the
/// host in Nova and in virsh with each server migrated from it exactly once.
#[test]
fn nova_api_killed_mid_drain_fails_the_host_then_a_rerun_migrates_each_server_once() {
    let Some(stack) = stack("nova_api_killed_mid_drain_fails_the_host_then_a_rerun_migrates_each_server_once") else {
        return;
    };
    let host = stack.campaign_host(3);
    let ws = stack.workspace(&host);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let admin = runtime.block_on(Admin::login(&stack));
    // A short migration timeout, so that the run with Nova gone ends soon (the fake
    // driver's live migration takes 5 s), polled each second (not every 15 s).
    let short = |workflow: &mut Value| {
        workflow["drain"]["timeout_base_secs"] = json!(20);
        poll_each_second(workflow);
    };
    let run = |args: &[&str]| stack.hvmigrate_adjusted(&ws, short, args);
    for step in ["setup", "pre-drain"] {
        let out = run(&["run", "--step", step, "--output", "json", "-q"]).run();
        assert_eq!(report_of(&json(&out), &host)["outcome"], "succeeded", "{step}\n{}", out.report());
    }
    let servers = runtime.block_on(admin.server_ids_on(&host));
    assert!(servers.len() >= 2, "the seeded servers are on {host}: {servers:?}");
    assert!(runtime.block_on(admin.migrations_from(&host, &servers)).iter().all(|(_, n)| *n == 0));

    let drain = ["run", "--step", "drain", "--output", "json", "-q"];
    let mut running = run(&drain).start();
    wait_while_running(&mut running, "a migration from the host", || {
        runtime.block_on(admin.migrations_from(&host, &servers)).iter().any(|(_, n)| *n > 0)
    });
    let nova = stack.kill("nova-api");
    let out = running.finish();
    let summary = json(&out);
    let report = report_of(&summary, &host);
    assert_eq!(report["outcome"], "failed", "{}", out.report());
    assert!(report.to_string().contains("nova: "), "a reason names Nova\n{}", out.report());
    nova.start();

    let out = run(&drain).run();
    assert_eq!(report_of(&json(&out), &host)["outcome"], "succeeded", "{}", out.report());
    assert!(runtime.block_on(admin.servers_on(&host)).is_empty(), "Nova still places servers on {host}");
    let virsh = stack.virsh_list(&host);
    assert!(domains(&virsh).is_empty(), "virsh still shows domains:\n{virsh}");
    let counts = runtime.block_on(admin.migrations_from(&host, &servers));
    assert!(counts.iter().all(|(_, n)| *n == 1), "each server migrated once: {counts:?}\n{}", out.report());
}

/// One host through every step up to adoption (the reinstall itself is the lab's
/// PXE boot): adoption enables the real nova-compute again, its disabled reason
/// gone, and expires our silences in the real Alertmanager.
#[test]
fn adoption_enables_the_real_compute_and_expires_our_real_silences() {
    let Some(stack) = stack("adoption_enables_the_real_compute_and_expires_our_real_silences") else { return };
    let host = stack.campaign_host(4);
    let ws = stack.workspace(&host);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let admin = runtime.block_on(Admin::login(&stack));
    let step = |step: &str| {
        let args = ["run", "--step", step, "--yes", "--output", "json", "-q"];
        let out = stack.hvmigrate_adjusted(&ws, poll_each_second, &args).run();
        assert_eq!(report_of(&json(&out), &host)["outcome"], "succeeded", "{step}\n{}", out.report());
    };
    for name in ["setup", "pre-drain", "drain", "pre-reinstall"] {
        step(name);
    }
    let silences = || -> Vec<Value> {
        let all: Value = runtime.block_on(async {
            reqwest::get(format!("{}/api/v2/silences", stack.url("alertmanager"))).await.unwrap().json().await.unwrap()
        });
        all.as_array().unwrap().iter().filter(|s| s["matchers"].to_string().contains(host.as_str())).cloned().collect()
    };
    let ours = silences();
    assert!(!ours.is_empty() && ours.iter().all(|s| s["status"]["state"] == "active"), "{ours:#?}");
    // The operator's PXE reinstall, on the lab's host.
    let lab: Value =
        serde_json::from_str(&std::fs::read_to_string(Path::new(&stack.url("lab")).join("lab.json")).unwrap()).unwrap();
    let control = lab["control"].as_str().unwrap();
    let reply =
        runtime.block_on(reqwest::Client::new().post(format!("{control}/_lab/reinstall/{host}")).send()).unwrap();
    assert!(reply.status().is_success(), "the lab's reinstall of {host}: {}", reply.status());
    step("post-reinstall");
    assert_eq!(runtime.block_on(admin.compute_service(&host))["status"], "disabled", "still disabled before adoption");

    step("adoption");
    let service = runtime.block_on(admin.compute_service(&host));
    assert_eq!(service["status"], "enabled", "{service:#}");
    assert!(service["disabled_reason"].is_null(), "{service:#}");
    let after = silences();
    assert_eq!(after.len(), ours.len(), "{after:#?}");
    for silence in &after {
        assert_eq!(silence["status"]["state"], "expired", "{silence:#}");
    }
}
