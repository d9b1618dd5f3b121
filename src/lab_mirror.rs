//! `lab serve --mirror-nova`: a real Nova's servers as the simulated hosts'
//! libvirt domains. Reads `GET /servers/detail?all_tenants=1` (admin) with
//! a Keystone token it renews when Nova refuses it.

use std::sync::Arc;

use hvmigrate_lab::mirror::NovaFuture;
use hvmigrate_lab::{NovaMirror, NovaNode, NovaServer, NovaView, ServerSource};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::error::{Error, InputProblem, Result};

/// Where the real Nova is and who reads it: Keystone's URL from the command
/// line, the account from the `OS_*` variables, as the `openstack` CLI takes them.
#[derive(Clone)]
pub struct MirrorAccount {
    pub auth_url: String,
    pub username: String,
    pub password: String,
    pub project_name: String,
    pub user_domain_name: String,
    pub project_domain_name: String,
}

impl MirrorAccount {
    /// The account from `OS_USERNAME`, `OS_PASSWORD`, `OS_PROJECT_NAME` (and the
    /// domains, default `Default`); a missing one is named.
    pub fn from_env(auth_url: &str) -> Result<Self> {
        let var = |name: &str| {
            std::env::var(name).map_err(|_| {
                Error::input(InputProblem::new(
                    std::path::Path::new("--mirror-nova"),
                    format!("needs the environment variable {name} (the admin account that reads Nova)"),
                ))
            })
        };
        let or_default = |name: &str| std::env::var(name).unwrap_or_else(|_| "Default".into());
        Ok(MirrorAccount {
            auth_url: auth_url.trim_end_matches('/').to_owned(),
            username: var("OS_USERNAME")?,
            password: var("OS_PASSWORD")?,
            project_name: var("OS_PROJECT_NAME")?,
            user_domain_name: or_default("OS_USER_DOMAIN_NAME"),
            project_domain_name: or_default("OS_PROJECT_DOMAIN_NAME"),
        })
    }
}

struct Session {
    token: String,
    compute_url: String,
}

struct RealNova {
    account: MirrorAccount,
    http: reqwest::Client,
    session: Mutex<Option<Session>>,
}

pub fn mirror(account: MirrorAccount) -> Result<NovaMirror> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|err| Error::Refused(format!("cannot make an HTTP client for --mirror-nova: {err}")))?;
    Ok(NovaMirror(Arc::new(RealNova { account, http, session: Mutex::new(None) })))
}

impl RealNova {
    async fn authenticate(&self) -> std::result::Result<Session, String> {
        let a = &self.account;
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": a.username, "password": a.password, "domain": {"name": a.user_domain_name}}}},
            "scope": {"project": {"name": a.project_name, "domain": {"name": a.project_domain_name}}}}});
        let url = format!("{}/auth/tokens", a.auth_url);
        let reply = self.http.post(&url).json(&body).send().await.map_err(|err| format!("Keystone: {err}"))?;
        if !reply.status().is_success() {
            return Err(format!("Keystone refused the mirror's account: HTTP {}", reply.status().as_u16()));
        }
        let token = reply
            .headers()
            .get("x-subject-token")
            .and_then(|value| value.to_str().ok())
            .ok_or("Keystone gave no X-Subject-Token")?
            .to_owned();
        let body: Value = reply.json().await.map_err(|err| format!("Keystone: {err}"))?;
        let compute_url = body["token"]["catalog"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|service| service["type"] == "compute")
            .flat_map(|service| service["endpoints"].as_array().into_iter().flatten())
            .find(|endpoint| endpoint["interface"] == "public")
            .and_then(|endpoint| endpoint["url"].as_str())
            .ok_or("Keystone's catalog has no public compute endpoint")?
            .trim_end_matches('/')
            .to_owned();
        Ok(Session { token, compute_url })
    }

    async fn read(&self) -> std::result::Result<NovaView, String> {
        // 2.47: the flavor's sizes are embedded in each server.
        let servers = self.get("servers/detail?all_tenants=1", "2.47").await?;
        // 2.53: a hypervisor's id is its UUID, and it names its service host.
        let nodes = self.get("os-hypervisors/detail", "2.53").await?;
        Ok(NovaView {
            servers: servers["servers"].as_array().into_iter().flatten().map(server).collect(),
            nodes: nodes["hypervisors"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|node| NovaNode {
                    host: node["service"]["host"].as_str().unwrap_or_default().to_owned(),
                    uuid: node["id"].as_str().unwrap_or_default().to_owned(),
                })
                .collect(),
        })
    }

    /// `GET path` of the compute API at `microversion`, renewing a refused token once.
    async fn get(&self, path: &str, microversion: &str) -> std::result::Result<Value, String> {
        let mut session = self.session.lock().await;
        for attempt in 0..2 {
            if session.is_none() {
                *session = Some(self.authenticate().await?);
            }
            let Some(current) = session.as_ref() else { continue };
            let url = format!("{}/{path}", current.compute_url);
            let reply = self
                .http
                .get(&url)
                .header("X-Auth-Token", &current.token)
                .header("OpenStack-API-Version", format!("compute {microversion}"))
                .send()
                .await
                .map_err(|err| format!("Nova: {err}"))?;
            if reply.status().as_u16() == 401 && attempt == 0 {
                *session = None;
                continue;
            }
            if !reply.status().is_success() {
                return Err(format!("Nova answered HTTP {} to GET {path}", reply.status().as_u16()));
            }
            return reply.json().await.map_err(|err| format!("Nova: {err}"));
        }
        Err("Keystone's token was refused twice".into())
    }
}

fn server(value: &Value) -> NovaServer {
    let text = |key: &str| value[key].as_str().unwrap_or_default().to_owned();
    let flavor = &value["flavor"];
    NovaServer {
        id: text("id"),
        name: text("name"),
        project_id: text("tenant_id"),
        user_id: text("user_id"),
        status: text("status"),
        task_state: value["OS-EXT-STS:task_state"].as_str().map(str::to_owned),
        host: text("OS-EXT-SRV-ATTR:host"),
        instance_name: text("OS-EXT-SRV-ATTR:instance_name"),
        vcpus: flavor["vcpus"].as_u64().unwrap_or_default() as u32,
        ram_mb: flavor["ram"].as_u64().unwrap_or_default(),
        disk_gb: flavor["disk"].as_u64().unwrap_or_default(),
        flavor_name: flavor["original_name"].as_str().unwrap_or_default().to_owned(),
        created: text("created"),
    }
}

impl ServerSource for RealNova {
    fn servers(&self) -> NovaFuture<'_> {
        Box::pin(self.read())
    }
}
