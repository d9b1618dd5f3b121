//! The simulated site ("lab"): one world model shared by HTTP emulators of
//! Jira, NetBox, Keystone + Nova, Alertmanager and SCC, and by simulated hosts
//! reached over real SSH. The demo, the tests and the benchmarks all run on it.
//!
//! Every server binds 127.0.0.1 (random ports by default) and stops with
//! [`Lab::shutdown`] or when the [`Lab`] is dropped.

pub mod alertmanager;
pub mod control;
pub mod faults;
pub mod guests;
pub mod jira;
pub mod keystone;
pub mod mirror;
pub mod netbox;
pub mod nova;
pub mod placement;
pub mod policy;
pub mod scc;
pub mod shell;
pub mod site_files;
pub mod ssh;
pub mod world;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::http::Method;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use faults::{Fault, FaultConfig, Faults};
pub use mirror::{NovaMirror, NovaNode, NovaServer, NovaView, ServerSource};
pub use policy::NovaPolicy;
pub use ssh::{OutputFault, SshFaultConfig, SshFaults, SshHosts, SshSettings};
pub use world::{World, WorldOptions, WorldState};

/// The emulated services.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    Jira,
    NetBox,
    Keystone,
    Nova,
    Alertmanager,
    Scc,
    Placement,
}

impl Service {
    pub const ALL: [Service; 7] = [
        Service::Jira,
        Service::NetBox,
        Service::Keystone,
        Service::Nova,
        Service::Alertmanager,
        Service::Scc,
        Service::Placement,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Service::Jira => "jira",
            Service::NetBox => "netbox",
            Service::Keystone => "keystone",
            Service::Nova => "nova",
            Service::Alertmanager => "alertmanager",
            Service::Scc => "scc",
            Service::Placement => "placement",
        }
    }
}

impl std::str::FromStr for Service {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Service::ALL.into_iter().find(|service| service.name() == text).ok_or_else(|| {
            format!("unknown service '{text}' (one of jira, netbox, keystone, nova, alertmanager, scc, placement)")
        })
    }
}

/// The credentials the emulators accept, generated from the seed.
#[derive(Clone, Debug, Serialize)]
pub struct LabSecrets {
    pub jira_username: String,
    pub jira_api_token: String,
    pub jira_personal_access_token: String,
    pub netbox_token: String,
    pub openstack_username: String,
    pub openstack_password: String,
    pub openstack_project: String,
    pub openstack_project_id: String,
    pub application_credential_id: String,
    pub application_credential_secret: String,
    pub scc_username: String,
    pub scc_password: String,
    /// A Keystone user with the member and reader roles only.
    pub openstack_member_username: String,
    pub openstack_member_password: String,
}

impl LabSecrets {
    fn generate(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5ec7e7);
        let mut hex = |len| world::hex_id(&mut rng, len);
        LabSecrets {
            jira_username: "ops@lab.example.org".into(),
            jira_api_token: hex(24),
            jira_personal_access_token: hex(44),
            netbox_token: hex(40),
            openstack_username: "admin".into(),
            openstack_password: hex(20),
            openstack_project: "admin".into(),
            openstack_project_id: hex(32),
            application_credential_id: hex(32),
            application_credential_secret: hex(40),
            scc_username: "SCC_lab".into(),
            scc_password: hex(24),
            openstack_member_username: "hvmigrate-operator".into(),
            openstack_member_password: hex(20),
        }
    }
}

/// One request an emulator answered.
#[derive(Clone, Debug, Serialize)]
pub struct RequestRecord {
    pub service: Service,
    pub method: String,
    /// Path and query.
    pub path: String,
    pub status: u16,
    /// The reply was dropped after the request was committed.
    pub dropped: bool,
}

/// Every request the emulators answered, in order.
#[derive(Clone, Default)]
pub struct RequestLog {
    records: Arc<Mutex<Vec<RequestRecord>>>,
}

impl RequestLog {
    pub fn record(&self, service: Service, method: &Method, path: &str, status: u16, dropped: bool) {
        let record = RequestRecord { service, method: method.to_string(), path: path.to_owned(), status, dropped };
        self.records.lock().unwrap_or_else(|poison| poison.into_inner()).push(record);
    }

    pub fn all(&self) -> Vec<RequestRecord> {
        self.records.lock().unwrap_or_else(|poison| poison.into_inner()).clone()
    }

    /// Requests that could change something (every method but GET and HEAD).
    pub fn writes(&self) -> Vec<RequestRecord> {
        self.all().into_iter().filter(|r| r.method != "GET" && r.method != "HEAD").collect()
    }

    pub fn clear(&self) {
        self.records.lock().unwrap_or_else(|poison| poison.into_inner()).clear();
    }
}

/// Where each service listens, known before any router is built (Keystone's
/// catalog names Nova's URL).
#[derive(Clone, Debug, Serialize)]
pub struct Urls {
    pub jira: String,
    pub netbox: String,
    pub keystone: String,
    pub nova: String,
    pub alertmanager: String,
    pub scc: String,
    pub placement: String,
    /// The lab's own read-only view and fault settings.
    pub control: String,
}

impl Urls {
    pub fn of(&self, service: Service) -> &str {
        match service {
            Service::Jira => &self.jira,
            Service::NetBox => &self.netbox,
            Service::Keystone => &self.keystone,
            Service::Nova => &self.nova,
            Service::Alertmanager => &self.alertmanager,
            Service::Scc => &self.scc,
            Service::Placement => &self.placement,
        }
    }
}

/// What every emulator's handlers share.
#[derive(Clone)]
pub struct LabState {
    pub world: World,
    pub secrets: Arc<LabSecrets>,
    pub urls: Arc<Urls>,
    pub requests: RequestLog,
    pub faults: Faults,
    /// Faults of the simulated SSH hosts.
    pub ssh_faults: SshFaults,
}

#[derive(Clone, Debug, Default)]
pub struct LabOptions {
    pub world: WorldOptions,
    /// Faults per service from the start.
    pub faults: BTreeMap<Service, FaultConfig>,
    /// Fixed ports (0 or absent: random).
    pub ports: BTreeMap<Service, u16>,
    /// The simulated hosts over SSH.
    pub ssh: SshSettings,
}

/// A running simulated site.
pub struct Lab {
    pub state: LabState,
    shutdown: watch::Sender<bool>,
    servers: Vec<JoinHandle<()>>,
    ssh: Option<SshHosts>,
}

impl Lab {
    /// Generates the world and starts every emulator on 127.0.0.1.
    pub async fn start(options: LabOptions) -> std::io::Result<Lab> {
        let world = World::generate(&options.world);
        let secrets = Arc::new(LabSecrets::generate(options.world.seed));
        let mut listeners = BTreeMap::new();
        for service in Service::ALL {
            let port = options.ports.get(&service).copied().unwrap_or(0);
            listeners.insert(service, tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?);
        }
        let control_listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let url = |listener: &tokio::net::TcpListener| -> std::io::Result<String> {
            Ok(format!("http://{}", listener.local_addr()?))
        };
        let urls = Urls {
            jira: url(&listeners[&Service::Jira])?,
            netbox: url(&listeners[&Service::NetBox])?,
            keystone: format!("{}/v3", url(&listeners[&Service::Keystone])?),
            nova: format!("{}/v2.1", url(&listeners[&Service::Nova])?),
            alertmanager: url(&listeners[&Service::Alertmanager])?,
            scc: url(&listeners[&Service::Scc])?,
            placement: url(&listeners[&Service::Placement])?,
            control: url(&control_listener)?,
        };
        let state = LabState {
            world,
            secrets,
            urls: Arc::new(urls),
            requests: RequestLog::default(),
            faults: Faults::new(options.world.seed, options.faults),
            ssh_faults: SshFaults::new(options.world.seed),
        };
        let (shutdown, _) = watch::channel(false);
        let mut servers = Vec::new();
        for (service, listener) in listeners {
            let router = match service {
                Service::Jira => jira::router(state.clone()),
                Service::NetBox => netbox::router(state.clone()),
                Service::Keystone => keystone::router(state.clone()),
                Service::Nova => nova::router(state.clone()),
                Service::Alertmanager => alertmanager::router(state.clone()),
                Service::Scc => scc::router(state.clone()),
                Service::Placement => placement::router(state.clone()),
            };
            let layer = faults::FaultLayer { service, faults: state.faults.clone(), requests: state.requests.clone() };
            let router = router.layer(axum::middleware::from_fn_with_state(layer, faults::apply));
            servers.push(serve(listener, router, shutdown.subscribe()));
        }
        servers.push(serve(control_listener, control::router(state.clone()), shutdown.subscribe()));
        let ssh = if options.ssh.enabled {
            let world = state.world.clone();
            Some(SshHosts::start(world, state.ssh_faults.clone(), options.ssh, shutdown.subscribe()).await?)
        } else {
            None
        };
        Ok(Lab { state, shutdown, servers, ssh })
    }

    pub fn world(&self) -> &World {
        &self.state.world
    }

    pub fn urls(&self) -> &Urls {
        &self.state.urls
    }

    pub fn secrets(&self) -> &LabSecrets {
        &self.state.secrets
    }

    pub fn faults(&self) -> &Faults {
        &self.state.faults
    }

    pub fn requests(&self) -> &RequestLog {
        &self.state.requests
    }

    /// The simulated SSH hosts (`None` when started without them).
    pub fn ssh(&self) -> Option<&SshHosts> {
        self.ssh.as_ref()
    }

    /// Revokes every Keystone token issued so far: the next request with
    /// one answers 401, as after `openstack token revoke` or a Fernet key
    /// rotation. Answers how many there were.
    pub fn revoke_tokens(&self) -> usize {
        keystone::revoke_all(&self.state)
    }

    pub fn ssh_faults(&self) -> &SshFaults {
        &self.state.ssh_faults
    }

    /// Stops every server and waits for them.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for mut server in self.servers.drain(..) {
            // A hanging reply (an injected fault) would hold a graceful stop forever.
            if tokio::time::timeout(std::time::Duration::from_secs(2), &mut server).await.is_err() {
                server.abort();
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

fn serve(listener: tokio::net::TcpListener, router: axum::Router, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let stopped = async move {
            let _ = stop.wait_for(|stop| *stop).await;
        };
        if let Err(err) = axum::serve(listener, router).with_graceful_shutdown(stopped).await {
            tracing::warn!(%err, "lab server stopped with an error");
        }
    })
}
