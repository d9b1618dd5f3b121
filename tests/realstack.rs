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
use support::{Run, Workspace};

const TIER: &str = "HVMIGRATE_REALSTACK";

/// The running stack, or `None` (after saying so) when the tier is not up.
fn stack(test: &str) -> Option<Stack> {
    match std::env::var_os(TIER) {
        Some(dir) => Some(Stack::open(PathBuf::from(dir))),
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

    async fn migrations(&self) -> Vec<Value> {
        self.nova("/os-migrations").await["migrations"].as_array().unwrap().clone()
    }
}

/// The domain names of `virsh list --all` (` Id   Name   State` rows under the dashes), sorted.
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

async fn netbox_status(stack: &Stack, host: &str) -> String {
    let token = stack.credentials["netbox"]["token"].as_str().unwrap();
    let reply: Value = reqwest::Client::new()
        .get(format!("{}/api/dcim/devices/?name={host}", stack.url("netbox")))
        .header("Authorization", format!("Token {token}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
        let token = stack.credentials["netbox"]["token"].as_str().unwrap();
        let status: Value = reqwest::Client::new()
            .get(format!("{}/api/status/", stack.url("netbox")))
            .header("Authorization", format!("Token {token}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
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
    let run = |args: &[&str]| stack.hvmigrate(&ws, "credentials.yaml", args).run();

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
