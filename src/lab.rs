//! `hvmigrate lab serve` and `hvmigrate lab show`: the simulated site for
//! hands-on use. `serve` starts it on loopback and writes ready input files;
//! `show` reads its world from the control server, changing nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hvmigrate_lab::{FaultConfig, Lab, LabOptions, Service, SshFaultConfig, Urls, WorldOptions};
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, InputProblem, Result};
use crate::output::Output;

/// The file in the site folder that tells `lab show` where the lab runs.
pub const LAB_JSON: &str = "lab.json";

#[derive(Clone, Debug)]
pub struct ServeSettings {
    pub hosts: usize,
    pub seed: u64,
    /// Where the site files go (a new temporary folder when unset).
    pub dir: Option<PathBuf>,
    /// Services listen on consecutive ports from here, in the order of
    /// [`Service::ALL`] (random ports when unset).
    pub port_base: Option<u16>,
    /// Latency added to every HTTP request of every service.
    pub http_latency_ms: Option<u64>,
    /// Latency added before every command on every simulated host.
    pub ssh_latency_ms: Option<u64>,
    /// Leave out the demo's deliberate oddities: every campaign host standard.
    pub no_oddities: bool,
    /// Keystone's URL of a real Nova whose servers the hosts' `virsh` shows.
    pub mirror_nova: Option<String>,
}

/// What `lab serve` started and wrote, for the operator.
#[derive(Debug, Serialize)]
pub struct ServeReport {
    pub seed: u64,
    pub hosts: usize,
    pub dir: PathBuf,
    pub urls: Urls,
    pub credentials: PathBuf,
    pub hypervisors: PathBuf,
    /// `openstack` CLI environment (mode 0600: it holds the password).
    pub openrc: PathBuf,
    pub lab_json: PathBuf,
    /// The `OS_*` variables of `openrc`, without the password.
    pub openstack_env: Vec<(String, String)>,
    /// A hypervisor to show the `ssh` example with.
    pub first_host: Option<String>,
}

/// Starts the site, writes its files, reports, and serves until Ctrl-C.
pub async fn serve(settings: &ServeSettings, output: &Output) -> Result<()> {
    let mut ports = BTreeMap::new();
    if let Some(base) = settings.port_base {
        for (offset, service) in Service::ALL.into_iter().enumerate() {
            let port = base.checked_add(offset as u16).filter(|port| *port != 0).ok_or_else(|| {
                Error::input(InputProblem::new(
                    Path::new("--port-base"),
                    format!("{base} leaves no room for {} ports", Service::ALL.len()),
                ))
            })?;
            ports.insert(service, port);
        }
    }
    let world = WorldOptions {
        hosts: settings.hosts,
        seed: settings.seed,
        oddities: !settings.no_oddities,
        // A reinstall as strict as a real one: new host keys, no compute_id.
        reinstall_like_real: true,
        ..WorldOptions::default()
    };
    let faults = match settings.http_latency_ms {
        Some(ms) => Service::ALL
            .into_iter()
            .map(|service| (service, FaultConfig { latency_ms: Some((ms, ms)), ..FaultConfig::default() }))
            .collect(),
        None => BTreeMap::new(),
    };
    let mut ssh = hvmigrate_lab::SshSettings::default();
    if let Some(auth_url) = &settings.mirror_nova {
        ssh.nova_mirror = Some(crate::lab_mirror::mirror(crate::lab_mirror::MirrorAccount::from_env(auth_url)?)?);
    }
    let lab = Lab::start(LabOptions { world, ports, faults, ssh })
        .await
        .map_err(|err| Error::Refused(format!("cannot start the simulated site: {err}")))?;
    if let (Some(ms), Some(hosts)) = (settings.ssh_latency_ms, lab.ssh()) {
        for host in hosts.addresses().keys() {
            lab.ssh_faults().set(host, SshFaultConfig { latency_ms: Some((ms, ms)), ..SshFaultConfig::default() });
        }
    }
    let dir = match &settings.dir {
        Some(dir) => dir.clone(),
        None => tempfile::Builder::new()
            .prefix("hvmigrate-lab-")
            .tempdir()
            .map_err(|err| Error::io(&std::env::temp_dir(), err))?
            .keep(),
    };
    let files = lab.write_site_files(&dir, "").map_err(|err| Error::io(&dir, err))?;
    let openstack_env = openstack_env(&lab);
    let openrc = dir.join("openrc.sh");
    let mut rc = String::from("# The simulated site's OpenStack, for the openstack CLI: . ./openrc.sh\n");
    for (name, value) in &openstack_env {
        rc.push_str(&format!("export {name}={value}\n"));
    }
    rc.push_str(&format!("export OS_PASSWORD={}\n", lab.secrets().openstack_password));
    crate::fs_security::write_private_file(&openrc, rc.as_bytes())?;
    let lab_json = dir.join(LAB_JSON);
    let pointer = serde_json::json!({"control": lab.urls().control, "urls": lab.urls()});
    std::fs::write(&lab_json, format!("{pointer:#}\n")).map_err(|err| Error::io(&lab_json, err))?;
    output.lab_serving(&ServeReport {
        seed: settings.seed,
        hosts: settings.hosts,
        dir,
        urls: lab.urls().clone(),
        credentials: files.credentials,
        hypervisors: files.hypervisors,
        openrc,
        lab_json,
        openstack_env,
        first_host: lab.world().lock().campaign_hosts().nth(1).map(|host| host.fqdn.clone()),
    });
    if let Err(err) = tokio::signal::ctrl_c().await {
        tracing::warn!(%err, "cannot wait for Ctrl-C; stopping");
    }
    tracing::info!("stopping the simulated site");
    lab.shutdown().await;
    Ok(())
}

fn openstack_env(lab: &Lab) -> Vec<(String, String)> {
    let secrets = lab.secrets();
    [
        ("OS_AUTH_URL", lab.urls().keystone.as_str()),
        ("OS_IDENTITY_API_VERSION", "3"),
        ("OS_USERNAME", secrets.openstack_username.as_str()),
        ("OS_PROJECT_NAME", secrets.openstack_project.as_str()),
        ("OS_USER_DOMAIN_NAME", "Default"),
        ("OS_PROJECT_DOMAIN_NAME", "Default"),
        ("OS_REGION_NAME", "RegionOne"),
        ("OS_INTERFACE", "public"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect()
}

/// Where `lab show` finds the running lab.
#[derive(Clone, Debug)]
pub enum ShowSource {
    /// The folder `lab serve` wrote (its `lab.json` names the control URL).
    Dir(PathBuf),
    /// The control server's URL.
    Url(String),
}

/// The control server's URL for a source.
pub fn control_url(source: &ShowSource) -> Result<String> {
    match source {
        ShowSource::Url(url) => Ok(url.trim_end_matches('/').to_owned()),
        ShowSource::Dir(dir) => {
            let path = dir.join(LAB_JSON);
            let text = std::fs::read_to_string(&path).map_err(|err| {
                Error::input(InputProblem::new(
                    &path,
                    format!("{err} (is `hvmigrate lab serve --dir` using this folder?)"),
                ))
            })?;
            let pointer: Value = serde_json::from_str(&text)
                .map_err(|err| Error::input(InputProblem::new(&path, format!("not a lab pointer: {err}"))))?;
            pointer["control"]
                .as_str()
                .map(|url| url.trim_end_matches('/').to_owned())
                .ok_or_else(|| Error::input(InputProblem::new(&path, "no 'control' URL in it")))
        }
    }
}

/// The raw world, from the control server's `/_lab/world`.
pub async fn fetch_world(control: &str) -> Result<Value> {
    // reqwest's TLS backend needs a process-wide crypto provider even for plain HTTP.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let unreachable = |err: reqwest::Error| Error::Refused(format!("cannot read the lab at {control}: {err}"));
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build().map_err(unreachable)?;
    let response = client.get(format!("{control}/_lab/world")).send().await.map_err(unreachable)?;
    let response = response.error_for_status().map_err(unreachable)?;
    response.json().await.map_err(unreachable)
}

/// Asks the running lab to reinstall a host (`POST /_lab/reinstall/{host}`);
/// the lab's refusal (unknown host, not switched to PXE install) is the error.
pub async fn reinstall(control: &str, host: &str, wrong_machine: bool) -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let unreachable = |err: reqwest::Error| Error::Refused(format!("cannot reach the lab at {control}: {err}"));
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build().map_err(unreachable)?;
    let query = if wrong_machine { "?wrong_machine=true" } else { "" };
    let response = client.post(format!("{control}/_lab/reinstall/{host}{query}")).send().await.map_err(unreachable)?;
    if response.status().is_success() {
        return Ok(());
    }
    let reason = response.text().await.unwrap_or_default();
    Err(Error::Refused(format!("the lab refused to reinstall {host}: {reason}")))
}

/// A human view of the world: one line per host, then SCC.
#[derive(Debug, Serialize)]
pub struct LabView {
    pub site: String,
    pub seed: u64,
    pub control: String,
    pub campaign: Vec<HostView>,
    pub spares: Vec<HostView>,
    pub silences_active: usize,
    pub scc_uploads: u64,
    pub scc_hosts: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct HostView {
    pub fqdn: String,
    pub os: String,
    /// NetBox device status, or `None` when the host is missing from NetBox.
    pub netbox: Option<String>,
    /// `enabled/up`, `disabled/up`, ...
    pub nova: String,
    pub disabled_reason: Option<String>,
    pub vms: usize,
    /// VM count per status, e.g. `2 ACTIVE, 1 SHUTOFF`.
    pub vm_states: String,
    pub jira_key: Option<String>,
    pub jira_status: Option<String>,
    pub last_comment: Option<String>,
    /// Files attached to the ticket: `name (size bytes)`.
    pub attachments: Vec<String>,
    /// Active silences whose matchers name the host.
    pub silences: usize,
}

/// Builds the view from the raw world JSON (only reads fields it knows).
pub fn view(world: &Value, control: &str) -> LabView {
    let now = jiff::Timestamp::now();
    let list = |key: &str| world[key].as_array().cloned().unwrap_or_default();
    let silences: Vec<Value> = list("silences")
        .into_iter()
        .filter(|s| s["ends_at"].as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok()).is_none_or(|end| end > now))
        .collect();
    let devices = world["netbox"]["devices"].as_array().cloned().unwrap_or_default();
    let issues = world["jira"]["issues"].as_array().cloned().unwrap_or_default();
    let servers: Vec<Value> = world["servers"].as_object().map(|s| s.values().cloned().collect()).unwrap_or_default();
    let host_view = |host: &Value| {
        let fqdn = host["fqdn"].as_str().unwrap_or_default().to_owned();
        let short = fqdn.split('.').next().unwrap_or_default().to_owned();
        let netbox = host["netbox_device"].as_u64().and_then(|id| {
            devices.iter().find(|d| d["id"].as_u64() == Some(id)).and_then(|d| d["status"].as_str()).map(str::to_owned)
        });
        let mut states: BTreeMap<String, usize> = BTreeMap::new();
        for server in servers.iter().filter(|s| s["host"].as_str() == Some(fqdn.as_str())) {
            *states.entry(server["status"].as_str().unwrap_or("?").to_owned()).or_default() += 1;
        }
        let jira_key = host["jira_key"].as_str().map(str::to_owned);
        let issue = jira_key.as_deref().and_then(|key| issues.iter().find(|i| i["key"].as_str() == Some(key)));
        let last_comment = issue
            .and_then(|i| i["comments"].as_array().and_then(|c| c.last().cloned()))
            .map(|comment| one_line(&rich_text(&comment["body"]), 60));
        let attachments = issue
            .and_then(|i| i["attachments"].as_array())
            .into_iter()
            .flatten()
            .map(|a| format!("{} ({} bytes)", a["filename"].as_str().unwrap_or("?"), a["size"].as_u64().unwrap_or(0)))
            .collect();
        let silences = silences
            .iter()
            .filter(|s| {
                s["matchers"].as_array().into_iter().flatten().any(|m| {
                    let value = m["value"].as_str().unwrap_or_default();
                    value == fqdn || value == short || value.contains(&fqdn) || value.contains(&format!("{short}."))
                })
            })
            .count();
        HostView {
            fqdn: fqdn.clone(),
            os: host["os"]["pretty_name"].as_str().unwrap_or_default().to_owned(),
            netbox,
            nova: format!(
                "{}/{}",
                host["compute"]["status"].as_str().unwrap_or("?"),
                host["compute"]["state"].as_str().unwrap_or("?")
            ),
            disabled_reason: host["compute"]["disabled_reason"].as_str().map(str::to_owned),
            vms: states.values().sum(),
            vm_states: states.iter().map(|(state, n)| format!("{n} {state}")).collect::<Vec<_>>().join(", "),
            jira_key,
            jira_status: issue.and_then(|i| i["status"].as_str()).map(str::to_owned),
            last_comment,
            attachments,
            silences,
        }
    };
    let hosts = list("hosts");
    let (campaign, spares): (Vec<&Value>, Vec<&Value>) = hosts.iter().partition(|h| h["in_campaign"] == true);
    LabView {
        site: world["site"].as_str().unwrap_or_default().to_owned(),
        seed: world["seed"].as_u64().unwrap_or_default(),
        control: control.to_owned(),
        campaign: campaign.into_iter().map(host_view).collect(),
        spares: spares.into_iter().map(host_view).collect(),
        silences_active: silences.len(),
        scc_uploads: world["scc"]["uploads"].as_u64().unwrap_or_default(),
        scc_hosts: world["scc"]["hosts"].as_object().map(|h| h.keys().cloned().collect()).unwrap_or_default(),
    }
}

/// A comment body as text: wiki strings as they are, ADF documents by their text nodes.
fn rich_text(body: &Value) -> String {
    fn collect(node: &Value, out: &mut String) {
        if let Some(text) = node["text"].as_str() {
            out.push_str(text);
        }
        for child in node["content"].as_array().into_iter().flatten() {
            collect(child, out);
            if child["type"] == "paragraph" {
                out.push(' ');
            }
        }
    }
    match body {
        Value::String(text) => text.clone(),
        other => {
            let mut text = String::new();
            collect(other, &mut text);
            text
        }
    }
}

fn one_line(text: &str, width: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= width {
        flat
    } else {
        format!("{}…", flat.chars().take(width - 1).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_view_reads_a_live_world() {
        let lab = Lab::start(LabOptions::default()).await.unwrap();
        let world = fetch_world(&lab.urls().control).await.unwrap();
        let view = view(&world, &lab.urls().control);
        assert_eq!(view.campaign.len(), 12);
        assert!(!view.spares.is_empty());
        assert!(view.campaign.iter().any(|h| h.netbox.is_none()), "the host missing from NetBox");
        assert!(view.campaign.iter().all(|h| h.jira_status.as_deref() == Some("To Do")));
        assert!(view.campaign.iter().all(|h| h.vms >= 1));
    }

    #[test]
    fn control_url_from_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LAB_JSON), r#"{"control": "http://127.0.0.1:9/"}"#).unwrap();
        assert_eq!(control_url(&ShowSource::Dir(dir.path().into())).unwrap(), "http://127.0.0.1:9");
        assert!(control_url(&ShowSource::Dir(dir.path().join("nope"))).is_err());
    }

    #[test]
    fn comment_text() {
        let adf = serde_json::json!({"type": "doc", "version": 1, "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": "one"}]},
            {"type": "paragraph", "content": [{"type": "text", "text": "two"}]}]});
        assert_eq!(one_line(&rich_text(&adf), 60), "one two");
        assert_eq!(one_line("a\nb", 60), "a b");
        assert_eq!(one_line("abcdef", 4), "abc…");
    }

    #[test]
    fn the_view_lists_each_tickets_attachments() {
        let world = serde_json::json!({
            "hosts": [{"fqdn": "hv01.lab.example.org", "in_campaign": true, "jira_key": "MH-101"}],
            "jira": {"issues": [{"key": "MH-101", "status": "To Do", "comments": [], "attachments": [
                {"filename": "adoption-hv01-kayobe-fatal-1a2b3c4d.txt", "size": 40123, "content": "…"}]}]},
        });
        let view = view(&world, "http://127.0.0.1:1");
        assert_eq!(view.campaign[0].attachments, ["adoption-hv01-kayobe-fatal-1a2b3c4d.txt (40123 bytes)"]);
    }
}
