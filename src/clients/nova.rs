//! Nova (compute API v2.1) with microversion negotiation: compute services,
//! servers, migrations, hypervisors, aggregates.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};
use url::Url;

use super::http::{Auth, Body, HttpService, Pages, ServiceError};
use super::openstack::{token_auth, Keystone};
use crate::config::credentials::ComputeHostNames;
use crate::config::hypervisors::NovaNames;

/// The microversion we would like: 2.53+ gives service UUIDs and the
/// non-legacy enable/disable; 2.88 drops the hypervisor statistics the
/// capacity check reads, so stay below it.
pub const WANTED_MICROVERSION: Microversion = Microversion(2, 87);

/// The Nova policies (nova/policies/servers.py, migrations.py) whose absence
/// changes answers without an error.
pub const ALL_FILTERS_POLICY: &str = "os_compute_api:servers:allow_all_filters";
pub const EXTENDED_ATTRIBUTES_POLICY: &str = "os_compute_api:os-extended-server-attributes";
pub const MIGRATION_HOSTS_POLICY: &str = "os_compute_api:os-migrations:index:host";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Microversion(pub u32, pub u32);

impl Microversion {
    pub fn parse(text: &str) -> Option<Self> {
        let (major, minor) = text.trim().split_once('.')?;
        Some(Microversion(major.parse().ok()?, minor.parse().ok()?))
    }
}

impl std::fmt::Display for Microversion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// An id that is an integer in old microversions and a UUID in new ones.
fn id_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::String(text) => text,
        other => other.to_string(),
    })
}

#[derive(Clone, Debug, Deserialize)]
pub struct ComputeService {
    #[serde(deserialize_with = "id_string", default)]
    pub id: String,
    pub binary: String,
    pub host: String,
    #[serde(default)]
    pub zone: Option<String>,
    /// `enabled` or `disabled`.
    pub status: String,
    /// `up` or `down`.
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub disabled_reason: Option<String>,
    #[serde(default)]
    pub forced_down: Option<bool>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Server {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub status: String,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default, rename = "OS-EXT-SRV-ATTR:host")]
    pub host: Option<String>,
    #[serde(default, rename = "OS-EXT-SRV-ATTR:hypervisor_hostname")]
    pub hypervisor_hostname: Option<String>,
    #[serde(default, rename = "OS-EXT-STS:task_state")]
    pub task_state: Option<String>,
    #[serde(default, rename = "OS-EXT-STS:vm_state")]
    pub vm_state: Option<String>,
    #[serde(default, rename = "OS-EXT-AZ:availability_zone")]
    pub availability_zone: Option<String>,
    /// At 2.47+ `{vcpus, ram, disk, original_name, …}`.
    #[serde(default)]
    pub flavor: Value,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Migration {
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    #[serde(default)]
    pub uuid: Option<String>,
    pub instance_uuid: String,
    #[serde(default)]
    pub source_compute: Option<String>,
    #[serde(default)]
    pub dest_compute: Option<String>,
    pub status: String,
    #[serde(default)]
    pub migration_type: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct HypervisorService {
    pub host: String,
    #[serde(deserialize_with = "id_string", default)]
    pub id: String,
    #[serde(default)]
    pub disabled_reason: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Hypervisor {
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    pub hypervisor_hostname: String,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub host_ip: Option<String>,
    #[serde(default)]
    pub hypervisor_type: Option<String>,
    #[serde(default)]
    pub service: Option<HypervisorService>,
    #[serde(default)]
    pub vcpus: Option<u64>,
    #[serde(default)]
    pub vcpus_used: Option<u64>,
    #[serde(default)]
    pub memory_mb: Option<u64>,
    #[serde(default)]
    pub memory_mb_used: Option<u64>,
    #[serde(default)]
    pub running_vms: Option<u64>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Aggregate {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub availability_zone: Option<String>,
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub metadata: serde_json::Map<String, Value>,
}

/// The compute API's version range and the microversion we use.
#[derive(Clone, Copy, Debug)]
pub struct ComputeVersion {
    pub min: Microversion,
    pub max: Microversion,
    pub used: Microversion,
}

/// What Nova calls a host of the hypervisors file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComputeHost {
    /// Its `service.host`: `OS-EXT-SRV-ATTR:host` of its servers, the
    /// `source_compute` of its migrations, its name in aggregates.
    pub service_host: String,
    /// Its `hypervisor_hostname`, when Nova has a hypervisor record of it.
    pub hypervisor_hostname: Option<String>,
    /// Which mapping gave the names, for the record.
    pub mapping: String,
}

#[derive(Debug)]
pub struct NovaClient {
    keystone: Arc<Keystone>,
    http: HttpService,
    version: ComputeVersion,
    host_names: ComputeHostNames,
    /// Hosts already mapped (only those Nova has a hypervisor record of).
    mapped: std::sync::Mutex<HashMap<String, ComputeHost>>,
    /// Nova's names given on a host's line of the hypervisors file, by FQDN, with the line.
    overrides: std::sync::RwLock<HashMap<String, (NovaNames, usize)>>,
}

impl NovaClient {
    /// Finds the compute endpoint in the catalog and negotiates the microversion.
    pub async fn connect(keystone: Arc<Keystone>) -> Result<Self, ServiceError> {
        let endpoint = keystone.endpoint("compute").await?;
        let mut http = HttpService::new("nova", &endpoint, Auth::None, keystone.policy(), keystone.transport())?;
        http.set_auth(token_auth(&keystone.token(false).await?.value));
        let range = discover(&http, &endpoint).await?;
        let version = match range {
            Some((min, max)) => {
                let used = WANTED_MICROVERSION.min(max);
                http.set_header("openstack-api-version", &format!("compute {used}"));
                http.set_header("x-openstack-nova-api-version", &used.to_string());
                ComputeVersion { min, max, used }
            }
            // No version document: no microversions, the 2.1 behaviour.
            None => ComputeVersion { min: Microversion(2, 1), max: Microversion(2, 1), used: Microversion(2, 1) },
        };
        tracing::debug!(service = "nova", min = %version.min, max = %version.max, used = %version.used, "compute API version");
        Ok(NovaClient {
            keystone,
            http,
            version,
            host_names: ComputeHostNames::default(),
            mapped: Default::default(),
            overrides: Default::default(),
        })
    }

    /// The mapping of the hypervisors file's FQDNs to Nova's names (`openstack.compute_host_names`).
    pub fn with_host_names(mut self, host_names: ComputeHostNames) -> Self {
        self.host_names = host_names;
        self
    }

    /// Nova's names given on the hypervisors file's lines (`nova_host=`,
    /// `nova_hypervisor=`): they win over `openstack.compute_host_names`.
    pub fn set_line_overrides(&self, hypervisors: &crate::config::HypervisorList) {
        let mut overrides = self.overrides.write().unwrap_or_else(|poison| poison.into_inner());
        overrides.clear();
        for hv in hypervisors.hypervisors.iter().filter(|hv| !hv.nova.is_empty()) {
            overrides.insert(hv.host.to_string(), (hv.nova.clone(), hv.line));
        }
        self.mapped.lock().unwrap_or_else(|poison| poison.into_inner()).clear();
    }

    /// Nova's names of `fqdn`, by the configured mapping. Names are matched
    /// exactly: Nova's hypervisor search is a substring pattern (`hv1` also
    /// finds `hv10`) and answers 404 when nothing matches.
    pub async fn compute_host(&self, fqdn: &str) -> Result<ComputeHost, ServiceError> {
        if let Some(known) = self.mapped.lock().unwrap_or_else(|poison| poison.into_inner()).get(fqdn) {
            return Ok(known.clone());
        }
        let short = fqdn.split('.').next().unwrap_or(fqdn);
        let given = self.overrides.read().unwrap_or_else(|poison| poison.into_inner()).get(fqdn).cloned();
        let candidates = match &given {
            // Nova's pattern search matches hypervisor names; a service host alone needs them all.
            Some((names, _)) => match &names.hypervisor_hostname {
                Some(name) => self.hypervisors_like(name).await?,
                None => self.hypervisors().await?,
            },
            None => self.hypervisors_like(short).await?,
        };
        let service_of = |hv: &Hypervisor| hv.service.as_ref().map(|service| service.host.clone());
        let find = |wanted: &dyn Fn(&Hypervisor) -> bool| candidates.iter().find(|hv| wanted(hv));
        if let Some((names, line)) = given {
            let by_name = names.hypervisor_hostname.as_deref();
            let record = match (&names.service_host, by_name) {
                (_, Some(name)) => find(&|hv| hv.hypervisor_hostname == name),
                (Some(host), None) => find(&|hv| service_of(hv).as_deref() == Some(host.as_str())),
                (None, None) => None,
            };
            let service_host =
                names.service_host.clone().or_else(|| record.and_then(service_of)).unwrap_or_else(|| fqdn.to_owned());
            let found = ComputeHost {
                hypervisor_hostname: record.map(|hv| hv.hypervisor_hostname.clone()),
                service_host,
                mapping: format!("the hypervisors file, line {line}"),
            };
            tracing::info!(service = "nova", host = fqdn, service_host = %found.service_host, hypervisor = ?found.hypervisor_hostname, mapping = %found.mapping, "compute host names");
            if record.is_some() {
                self.mapped.lock().unwrap_or_else(|poison| poison.into_inner()).insert(fqdn.to_owned(), found.clone());
            }
            return Ok(found);
        }
        let (service_host, mapping) = match self.host_names {
            ComputeHostNames::Fqdn => (fqdn.to_owned(), "fqdn (openstack.compute_host_names)".to_owned()),
            ComputeHostNames::Short => (short.to_owned(), "short (openstack.compute_host_names)".to_owned()),
            ComputeHostNames::Auto => {
                let record = find(&|hv| service_of(hv).as_deref() == Some(fqdn))
                    .or_else(|| find(&|hv| service_of(hv).as_deref() == Some(short)))
                    .or_else(|| find(&|hv| hv.hypervisor_hostname == fqdn))
                    .or_else(|| find(&|hv| hv.hypervisor_hostname == short));
                match record.and_then(service_of) {
                    Some(name) if name == fqdn => (name, "auto: Nova's service host is the FQDN".to_owned()),
                    Some(name) if name == short => (name, "auto: Nova's service host is the short name".to_owned()),
                    Some(name) => {
                        let mapping = format!("auto: the hypervisor record names service host {name}");
                        (name, mapping)
                    }
                    None => (fqdn.to_owned(), "auto: Nova has no hypervisor record of it; the FQDN assumed".to_owned()),
                }
            }
        };
        let record = find(&|hv| service_of(hv).as_deref() == Some(service_host.as_str()))
            .or_else(|| find(&|hv| hv.hypervisor_hostname == fqdn));
        let found =
            ComputeHost { hypervisor_hostname: record.map(|hv| hv.hypervisor_hostname.clone()), service_host, mapping };
        tracing::info!(service = "nova", host = fqdn, service_host = %found.service_host, hypervisor = ?found.hypervisor_hostname, mapping = %found.mapping, "compute host names");
        if record.is_some() {
            self.mapped.lock().unwrap_or_else(|poison| poison.into_inner()).insert(fqdn.to_owned(), found.clone());
        }
        Ok(found)
    }

    /// The hypervisors whose name contains `pattern` (none when Nova's
    /// search answers 404); every hypervisor before microversion 2.53.
    async fn hypervisors_like(&self, pattern: &str) -> Result<Vec<Hypervisor>, ServiceError> {
        if self.version.used < Microversion(2, 53) {
            return self.hypervisors().await;
        }
        match self.list("os-hypervisors/detail", &[("hypervisor_hostname_pattern", pattern)], "hypervisors").await {
            Err(err) if err.status() == Some(404) => Ok(Vec::new()),
            other => other,
        }
    }

    pub fn version(&self) -> ComputeVersion {
        self.version
    }

    /// Runs `call` with a current token, renewed once after a 401 (see [`Keystone::authed`]).
    async fn authed<T, F, Fut>(&self, call: F) -> Result<T, ServiceError>
    where
        F: Fn(HttpService) -> Fut,
        Fut: Future<Output = Result<T, ServiceError>>,
    {
        self.keystone.authed(&self.http, call).await
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str, query: &[(&str, &str)]) -> Result<T, ServiceError> {
        self.authed(|http| async move { http.get_json(path, query).await }).await
    }

    /// Every item of a paginated collection, following `<collection>_links`.
    async fn list<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        collection: &str,
    ) -> Result<Vec<T>, ServiceError> {
        self.authed(|http| async move { list_pages(&http, path, query, collection).await }).await
    }

    /// The `nova-compute` service of `fqdn` (a host of the hypervisors file), if Nova knows it.
    pub async fn compute_service(&self, fqdn: &str) -> Result<Option<ComputeService>, ServiceError> {
        #[derive(Deserialize)]
        struct Services {
            services: Vec<ComputeService>,
        }
        let name = self.compute_host(fqdn).await?.service_host;
        let host = name.as_str();
        let found: Services = self.get_json("os-services", &[("host", host), ("binary", "nova-compute")]).await?;
        Ok(found.services.into_iter().find(|service| service.host == host && service.binary == "nova-compute"))
    }

    /// Disables the service with a reason. Setting a state is idempotent: retried.
    pub async fn disable_service(
        &self,
        service: &ComputeService,
        reason: &str,
    ) -> Result<ComputeService, ServiceError> {
        if self.version.used >= Microversion(2, 53) {
            let body = json!({"status": "disabled", "disabled_reason": reason});
            self.put_service(&format!("os-services/{}", service.id), body, service).await
        } else {
            let body = json!({"host": service.host, "binary": service.binary, "disabled_reason": reason});
            self.put_service("os-services/disable-log-reason", body, service).await
        }
    }

    pub async fn enable_service(&self, service: &ComputeService) -> Result<ComputeService, ServiceError> {
        if self.version.used >= Microversion(2, 53) {
            self.put_service(&format!("os-services/{}", service.id), json!({"status": "enabled"}), service).await
        } else {
            let body = json!({"host": service.host, "binary": service.binary});
            self.put_service("os-services/enable", body, service).await
        }
    }

    async fn put_service(
        &self,
        path: &str,
        body: Value,
        before: &ComputeService,
    ) -> Result<ComputeService, ServiceError> {
        #[derive(Deserialize)]
        struct Reply {
            service: Value,
        }
        let reply = self
            .authed(|http| {
                let body = body.clone();
                async move { http.idempotent(Method::PUT, path, Body::Json(body)).await }
            })
            .await?;
        let http = &self.http;
        let reply: Reply = http.decode(&Method::PUT, path, &reply)?;
        // The legacy answer is partial: fill in from what we had.
        let mut service = serde_json::to_value(ServiceJson::from(before)).expect("serializes");
        if let (Value::Object(merged), Value::Object(new)) = (&mut service, reply.service) {
            merged.extend(new);
        }
        serde_json::from_value(service).map_err(|err| http.unusable(&Method::PUT, path, err.to_string()))
    }

    /// Every server on `fqdn` (a host of the hypervisors file), in all projects.
    ///
    /// What Nova answers depends on the token's policy: without
    /// `os_compute_api:servers:allow_all_filters` it drops the `host` filter
    /// silently and lists every server the token sees; without
    /// `os_compute_api:os-extended-server-attributes` it leaves out
    /// `OS-EXT-SRV-ATTR:host`. Each server's host is checked, so a census
    /// never plans moves for servers of other hosts.
    pub async fn servers_on_host(&self, fqdn: &str) -> Result<Vec<Server>, ServiceError> {
        let name = self.compute_host(fqdn).await?.service_host;
        let host = name.as_str();
        let path = "servers/detail";
        let servers: Vec<Server> =
            self.list(path, &[("all_tenants", "1"), ("host", host), ("limit", "1000")], "servers").await?;
        for server in &servers {
            match server.host.as_deref() {
                None => {
                    return Err(self.policy_refusal(
                        path,
                        EXTENDED_ATTRIBUTES_POLICY,
                        format!("server {} came without OS-EXT-SRV-ATTR:host, so its host is unknown", server.id),
                    ))
                }
                Some(found) if found != host => {
                    return Err(self.policy_refusal(
                        path,
                        ALL_FILTERS_POLICY,
                        format!("the host filter was ignored: server {} is on {found}, not {host}", server.id),
                    ))
                }
                Some(_) => {}
            }
        }
        Ok(servers)
    }

    /// A refusal that names the Nova policy the token lacks.
    fn policy_refusal(&self, path: &str, policy: &str, what: String) -> ServiceError {
        self.http.unusable(
            &Method::GET,
            path,
            format!(
                "{what}; the token lacks the Nova policy {policy} (use an admin token, or grant the rule to this user's role in Nova's policy.yaml)"
            ),
        )
    }

    /// Checks that Nova showed the hosts of migrations (policy `…:index:host`).
    fn migrations_with_hosts(&self, path: &str, migrations: Vec<Migration>) -> Result<Vec<Migration>, ServiceError> {
        // Nova always knows a migration's source; only the policy blanks it.
        match migrations.iter().find(|m| m.source_compute.is_none()) {
            Some(blank) => Err(self.policy_refusal(
                path,
                MIGRATION_HOSTS_POLICY,
                format!("migration {} came with a null source_compute", blank.id),
            )),
            None => Ok(migrations),
        }
    }

    pub async fn server(&self, id: &str) -> Result<Server, ServiceError> {
        #[derive(Deserialize)]
        struct Reply {
            server: Server,
        }
        Ok(self.get_json::<Reply>(&format!("servers/{id}"), &[]).await?.server)
    }

    /// Starts a live migration (to `host`, or where the scheduler picks). Not
    /// retried: the caller checks the server's state before trying again.
    pub async fn live_migrate(&self, server_id: &str, host: Option<&str>) -> Result<(), ServiceError> {
        let body = if self.version.used >= Microversion(2, 25) {
            json!({"os-migrateLive": {"host": host, "block_migration": "auto"}})
        } else {
            json!({"os-migrateLive": {"host": host, "block_migration": false, "disk_over_commit": false}})
        };
        self.action(server_id, body).await
    }

    /// Starts a cold migration; it ends in `VERIFY_RESIZE`, see [`Self::confirm_migration`].
    pub async fn cold_migrate(&self, server_id: &str) -> Result<(), ServiceError> {
        self.action(server_id, json!({"migrate": null})).await
    }

    /// Powers a SHUTOFF server on (`os-start`); Nova answers 409 in any other state.
    pub async fn start_server(&self, server_id: &str) -> Result<(), ServiceError> {
        self.action(server_id, json!({"os-start": null})).await
    }

    /// Shuts an ACTIVE server down (`os-stop`: ACPI, then power off after Nova's timeout).
    pub async fn stop_server(&self, server_id: &str) -> Result<(), ServiceError> {
        self.action(server_id, json!({"os-stop": null})).await
    }

    /// Reboots a server, soft (through the guest) or hard.
    pub async fn reboot_server(&self, server_id: &str, hard: bool) -> Result<(), ServiceError> {
        self.action(server_id, json!({"reboot": {"type": if hard { "HARD" } else { "SOFT" }}})).await
    }

    pub async fn confirm_migration(&self, server_id: &str) -> Result<(), ServiceError> {
        self.action(server_id, json!({"confirmResize": null})).await
    }

    async fn action(&self, server_id: &str, body: Value) -> Result<(), ServiceError> {
        let path = format!("servers/{server_id}/action");
        let path = path.as_str();
        self.authed(|http| {
            let body = body.clone();
            async move { http.write_once(Method::POST, path, Body::Json(body)).await }
        })
        .await?;
        Ok(())
    }

    /// Migrations from or to `fqdn` (a host of the hypervisors file), optionally of one status.
    pub async fn migrations(&self, fqdn: &str, status: Option<&str>) -> Result<Vec<Migration>, ServiceError> {
        let name = self.compute_host(fqdn).await?.service_host;
        let mut query = vec![("host", name.as_str())];
        if let Some(status) = status {
            query.push(("status", status));
        }
        let migrations = if self.version.used >= Microversion(2, 59) {
            query.push(("limit", "1000"));
            self.list("os-migrations", &query, "migrations").await?
        } else {
            #[derive(Deserialize)]
            struct Reply {
                migrations: Vec<Migration>,
            }
            self.get_json::<Reply>("os-migrations", &query).await?.migrations
        };
        self.migrations_with_hosts("os-migrations", migrations)
    }

    /// The migrations of one server, newest first.
    pub async fn migrations_of_server(&self, server_id: &str) -> Result<Vec<Migration>, ServiceError> {
        #[derive(Deserialize)]
        struct Reply {
            migrations: Vec<Migration>,
        }
        let migrations = self.get_json::<Reply>("os-migrations", &[("instance_uuid", server_id)]).await?.migrations;
        self.migrations_with_hosts("os-migrations", migrations)
    }

    /// Aborts a live migration in progress (2.24+). Not retried: the caller
    /// reads the migration again to see how it ended.
    pub async fn abort_live_migration(&self, server_id: &str, migration_id: &str) -> Result<(), ServiceError> {
        let path = format!("servers/{server_id}/migrations/{migration_id}");
        let path = path.as_str();
        self.authed(|http| async move { http.write_once(Method::DELETE, path, Body::Empty).await }).await?;
        Ok(())
    }

    /// Every hypervisor.
    pub async fn hypervisors(&self) -> Result<Vec<Hypervisor>, ServiceError> {
        self.list("os-hypervisors/detail", &[], "hypervisors").await
    }

    /// The hypervisor record of `fqdn` (a host of the hypervisors file), matched exactly.
    pub async fn hypervisor_of(&self, fqdn: &str) -> Result<Option<Hypervisor>, ServiceError> {
        let names = self.compute_host(fqdn).await?;
        let Some(wanted) = names.hypervisor_hostname else { return Ok(None) };
        Ok(self.hypervisors_like(&wanted).await?.into_iter().find(|hv| hv.hypervisor_hostname == wanted))
    }

    pub async fn aggregates(&self) -> Result<Vec<Aggregate>, ServiceError> {
        #[derive(Deserialize)]
        struct Reply {
            aggregates: Vec<Aggregate>,
        }
        Ok(self.get_json::<Reply>("os-aggregates", &[]).await?.aggregates)
    }
}

/// For merging a partial legacy service answer.
#[derive(serde::Serialize)]
struct ServiceJson<'a> {
    id: &'a str,
    binary: &'a str,
    host: &'a str,
    zone: &'a Option<String>,
    status: &'a str,
    state: &'a Option<String>,
    disabled_reason: &'a Option<String>,
}

impl<'a> From<&'a ComputeService> for ServiceJson<'a> {
    fn from(service: &'a ComputeService) -> Self {
        ServiceJson {
            id: &service.id,
            binary: &service.binary,
            host: &service.host,
            zone: &service.zone,
            status: &service.status,
            state: &service.state,
            disabled_reason: &service.disabled_reason,
        }
    }
}

/// Every item of a paginated collection, following `<collection>_links`.
async fn list_pages<T: DeserializeOwned>(
    http: &HttpService,
    path: &str,
    query: &[(&str, &str)],
    collection: &str,
) -> Result<Vec<T>, ServiceError> {
    let mut url = http.url(path, query)?;
    let mut pages = Pages::default();
    let mut found = Vec::new();
    loop {
        pages.visit(http, path, &url)?;
        let reply = http.get_url(url.clone()).await?;
        let mut page: Value = http.decode(&Method::GET, path, &reply)?;
        let items: Vec<T> = serde_json::from_value(page[collection].take())
            .map_err(|err| http.unusable(&Method::GET, path, format!("unexpected {collection}: {err}")))?;
        let got = items.len();
        found.extend(items);
        let next = page[format!("{collection}_links")]
            .as_array()
            .and_then(|links| links.iter().find(|link| link["rel"] == "next"))
            .and_then(|link| link["href"].as_str());
        match next {
            // The token goes with the next request: only to our own Nova.
            Some(next) if got > 0 => url = http.follow_link(path, next)?,
            _ => return Ok(found),
        }
    }
}

/// The version range from the endpoint's version document, else from the
/// unversioned root; `None` when neither has one.
async fn discover(http: &HttpService, endpoint: &Url) -> Result<Option<(Microversion, Microversion)>, ServiceError> {
    fn range(version: &Value) -> Option<(Microversion, Microversion)> {
        let max = Microversion::parse(version["version"].as_str()?)?;
        let min = Microversion::parse(version["min_version"].as_str().unwrap_or("2.1")).unwrap_or(Microversion(2, 1));
        Some((min, max))
    }
    if let Ok(reply) = http.get_url(endpoint.clone()).await {
        if let Ok(document) = serde_json::from_slice::<Value>(&reply.body) {
            if let Some(found) = range(&document["version"]) {
                return Ok(Some(found));
            }
        }
    }
    let mut root = endpoint.clone();
    root.set_path("/");
    let reply = match http.get_url(root).await {
        Ok(reply) => reply.body,
        Err(_) => return Ok(None),
    };
    let document: Value = serde_json::from_slice(&reply).unwrap_or_default();
    Ok(document["versions"]
        .as_array()
        .and_then(|versions| versions.iter().find(|v| v["id"] == "v2.1" || v["status"] == "CURRENT"))
        .and_then(range))
}
