//! The simulated hosts' libvirt domains taken from a real Nova: when the lab
//! runs beside real OpenStack services, each host's `virsh` shows the servers
//! that Nova places on it, read afresh before every command that runs `virsh`,
//! so the host and Nova never disagree by a polling interval.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::world::{Server, WorldState};

/// One server as Nova reports it (`GET /servers/detail?all_tenants=1`, admin).
#[derive(Clone, Debug, PartialEq)]
pub struct NovaServer {
    pub id: String,
    pub name: String,
    pub project_id: String,
    pub user_id: String,
    pub status: String,
    pub task_state: Option<String>,
    /// `OS-EXT-SRV-ATTR:host`: Nova's service host name (FQDN or short name).
    pub host: String,
    /// `OS-EXT-SRV-ATTR:instance_name`: the libvirt domain name.
    pub instance_name: String,
    pub vcpus: u32,
    pub ram_mb: u64,
    pub disk_gb: u64,
    pub flavor_name: String,
    pub created: String,
}

/// One compute node as Nova reports it (`GET /os-hypervisors/detail`, 2.53+).
#[derive(Clone, Debug, PartialEq)]
pub struct NovaNode {
    /// `service.host`: Nova's service host name (FQDN or short name).
    pub host: String,
    /// The node's UUID, which nova-compute keeps in its `compute_id` file.
    pub uuid: String,
}

/// What the hosts mirror of Nova: the servers and the compute nodes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NovaView {
    pub servers: Vec<NovaServer>,
    pub nodes: Vec<NovaNode>,
}

pub type NovaFuture<'a> = Pin<Box<dyn Future<Output = Result<NovaView, String>> + Send + 'a>>;

/// Where the servers come from: a real Nova, read with admin credentials.
pub trait ServerSource: Send + Sync {
    fn servers(&self) -> NovaFuture<'_>;
}

/// The source the simulated hosts' `virsh` mirrors (see [`crate::SshSettings`]).
#[derive(Clone)]
pub struct NovaMirror(pub Arc<dyn ServerSource>);

impl fmt::Debug for NovaMirror {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NovaMirror")
    }
}

impl WorldState {
    /// Replaces the lab's servers with Nova's, each on the lab host Nova names
    /// (matched by FQDN or short name; others keep Nova's name and appear on no
    /// simulated host). The lab's own Nova emulator then shows them too.
    pub fn mirror_nova(&mut self, view: NovaView) {
        // A host's compute_id is the one its real nova-compute wrote: the node
        // identity checks compare it with Nova's hypervisor UUID, as on a site.
        for node in view.nodes {
            let short = |fqdn: &str| fqdn.split('.').next() == Some(node.host.as_str());
            if let Some(host) = self.hosts.iter_mut().find(|host| host.fqdn == node.host || short(&host.fqdn)) {
                host.hypervisor_uuid = node.uuid.clone();
                // Only where nova-compute's file is there (a reinstall wiped it until restored).
                if let Some(file) = host.shell.files.get_mut(crate::shell::KOLLA_COMPUTE_ID_PATH) {
                    *file = node.uuid;
                }
            }
        }
        let servers = view.servers;
        let fqdn_of = |host: &str| {
            self.hosts
                .iter()
                .find(|candidate| candidate.fqdn == host || candidate.fqdn.split('.').next() == Some(host))
                .map_or_else(|| host.to_owned(), |candidate| candidate.fqdn.clone())
        };
        let mirrored: Vec<Server> = servers
            .into_iter()
            .map(|server| Server {
                host: fqdn_of(&server.host),
                id: server.id,
                name: server.name,
                project_id: server.project_id,
                user_id: server.user_id,
                status: server.status,
                task_state: server.task_state,
                vcpus: server.vcpus,
                ram_mb: server.ram_mb,
                disk_gb: server.disk_gb,
                flavor_name: server.flavor_name,
                instance_name: server.instance_name,
                created: server.created,
                fail_migration: false,
                hang_migration: false,
                stale_host_after_migration: false,
                no_allocation: false,
            })
            .collect();
        self.servers = mirrored.into_iter().map(|server| (server.id.clone(), server)).collect();
    }
}
