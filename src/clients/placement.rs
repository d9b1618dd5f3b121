//! Placement (openstack/placement API 1.x): the resource providers of the
//! compute nodes, their inventories and usages, and the allocations of a
//! server, for the drain's capacity check. Nova's own hypervisor statistics
//! ignore allocation ratios and reservations and are gone from microversion
//! 2.88; Placement is what the scheduler asks.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use super::http::{Auth, HttpService, ServiceError};
use super::openstack::Keystone;

/// The microversion we use: 1.14 (Queens) brings nested providers and
/// `in_tree` (a compute node's NUMA and device providers hang below it).
pub const MICROVERSION: (u32, u32) = (1, 14);

/// The resource classes of a server that the capacity check counts.
pub const RESOURCE_CLASSES: [&str; 4] = ["VCPU", "PCPU", "MEMORY_MB", "DISK_GB"];

/// Amounts by resource class.
pub type Resources = BTreeMap<String, u64>;

#[derive(Clone, Debug, Deserialize)]
pub struct ResourceProvider {
    pub uuid: String,
    pub name: String,
    #[serde(default)]
    pub root_provider_uuid: Option<String>,
    #[serde(default)]
    pub parent_provider_uuid: Option<String>,
}

/// One resource class of a provider's inventory (`GET …/inventories`).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
pub struct Inventory {
    pub total: u64,
    #[serde(default)]
    pub reserved: u64,
    #[serde(default = "one")]
    pub allocation_ratio: f64,
    #[serde(default)]
    pub max_unit: Option<u64>,
}

fn one() -> f64 {
    1.0
}

impl Inventory {
    /// What allocations may reach: `(total - reserved) × allocation_ratio`
    /// (placement `objects/allocation.py`, the capacity check of a claim).
    pub fn capacity(&self) -> f64 {
        self.total.saturating_sub(self.reserved) as f64 * self.allocation_ratio
    }
}

/// Room on one compute node (its provider tree), by resource class.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProviderRoom {
    /// Capacity less usage, summed over the tree.
    pub free: BTreeMap<String, f64>,
    /// The largest single allocation any provider of the tree takes.
    pub max_unit: BTreeMap<String, u64>,
}

impl ProviderRoom {
    /// From the inventories and usages of every provider of a tree.
    pub fn of_tree(providers: &[(BTreeMap<String, Inventory>, Resources)]) -> Self {
        let mut room = ProviderRoom::default();
        for (inventories, usages) in providers {
            for (class, inventory) in inventories {
                let used = usages.get(class).copied().unwrap_or(0) as f64;
                *room.free.entry(class.clone()).or_default() += inventory.capacity() - used;
                let unit = inventory.max_unit.unwrap_or(inventory.total);
                let largest = room.max_unit.entry(class.clone()).or_default();
                *largest = (*largest).max(unit);
            }
        }
        room
    }

    /// Whether `need` fits: every class is offered, with room and within `max_unit`.
    pub fn fits(&self, need: &Resources) -> bool {
        need.iter().filter(|(_, amount)| **amount > 0).all(|(class, amount)| {
            let free = self.free.get(class).copied().unwrap_or(0.0);
            let unit = self.max_unit.get(class).copied().unwrap_or(0);
            free >= *amount as f64 && unit >= *amount
        })
    }

    pub fn take(&mut self, need: &Resources) {
        for (class, amount) in need {
            *self.free.entry(class.clone()).or_default() -= *amount as f64;
        }
    }
}

#[derive(Debug)]
pub struct PlacementClient {
    keystone: Arc<Keystone>,
    http: HttpService,
    /// The newest microversion the service offers.
    pub max_version: (u32, u32),
}

fn parse_version(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.trim().split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

impl PlacementClient {
    /// Finds the placement endpoint in the catalog and checks it offers
    /// [`MICROVERSION`] (its root document: `versions[0].max_version`).
    pub async fn connect(keystone: Arc<Keystone>) -> Result<Self, ServiceError> {
        let endpoint = keystone.endpoint("placement").await?;
        let mut http = HttpService::new("placement", &endpoint, Auth::None, keystone.policy(), keystone.transport())?;
        let (major, minor) = MICROVERSION;
        http.set_header("openstack-api-version", &format!("placement {major}.{minor}"));
        let reply = http.get("", &[]).await?;
        let document: Value = http.decode(&Method::GET, "", &reply)?;
        let max_version = document["versions"]
            .as_array()
            .and_then(|versions| versions.iter().find_map(|v| parse_version(v["max_version"].as_str()?)))
            .ok_or_else(|| http.unusable(&Method::GET, "", "no max_version in the version document"))?;
        if max_version < MICROVERSION {
            return Err(http.unusable(
                &Method::GET,
                "",
                format!(
                    "Placement offers microversions up to {}.{}; the capacity check needs {major}.{minor} (Queens or newer)",
                    max_version.0, max_version.1
                ),
            ));
        }
        tracing::debug!(service = "placement", max = ?max_version, "placement API version");
        Ok(PlacementClient { keystone, http, max_version })
    }

    /// Runs `call` with a current token, renewed once after a 401 (see [`Keystone::authed`]).
    async fn authed<T, F, Fut>(&self, call: F) -> Result<T, ServiceError>
    where
        F: Fn(HttpService) -> Fut,
        Fut: Future<Output = Result<T, ServiceError>>,
    {
        self.keystone.authed(&self.http, call).await
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, ServiceError> {
        self.authed(|http| async move { http.get_json(path, query).await }).await
    }

    /// The providers named `name` (a compute node's provider is named by its
    /// `hypervisor_hostname`).
    pub async fn providers_named(&self, name: &str) -> Result<Vec<ResourceProvider>, ServiceError> {
        #[derive(Deserialize)]
        struct Reply {
            resource_providers: Vec<ResourceProvider>,
        }
        Ok(self.get_json::<Reply>("resource_providers", &[("name", name)]).await?.resource_providers)
    }

    /// Every provider of the tree of `root` (the root included).
    pub async fn tree(&self, root: &str) -> Result<Vec<ResourceProvider>, ServiceError> {
        #[derive(Deserialize)]
        struct Reply {
            resource_providers: Vec<ResourceProvider>,
        }
        Ok(self.get_json::<Reply>("resource_providers", &[("in_tree", root)]).await?.resource_providers)
    }

    pub async fn inventories(&self, provider: &str) -> Result<BTreeMap<String, Inventory>, ServiceError> {
        #[derive(Deserialize)]
        struct Reply {
            inventories: BTreeMap<String, Inventory>,
        }
        let path = format!("resource_providers/{provider}/inventories");
        Ok(self.get_json::<Reply>(&path, &[]).await?.inventories)
    }

    pub async fn usages(&self, provider: &str) -> Result<Resources, ServiceError> {
        #[derive(Deserialize)]
        struct Reply {
            usages: Resources,
        }
        let path = format!("resource_providers/{provider}/usages");
        Ok(self.get_json::<Reply>(&path, &[]).await?.usages)
    }

    /// What a server (a consumer) holds, summed over its providers, in the
    /// classes the capacity check counts; empty when Placement has none.
    pub async fn allocations(&self, consumer: &str) -> Result<Resources, ServiceError> {
        #[derive(Deserialize)]
        struct Held {
            #[serde(default)]
            resources: Resources,
        }
        #[derive(Deserialize)]
        struct Reply {
            #[serde(default)]
            allocations: BTreeMap<String, Held>,
        }
        let path = format!("allocations/{consumer}");
        let reply: Reply = self.get_json(&path, &[]).await?;
        let mut total = Resources::new();
        for held in reply.allocations.into_values() {
            for (class, amount) in held.resources {
                if RESOURCE_CLASSES.contains(&class.as_str()) {
                    *total.entry(class).or_default() += amount;
                }
            }
        }
        Ok(total)
    }

    /// The room of a compute node's provider tree. `provider` is its
    /// hypervisor's UUID (Nova's compute node UUID is its provider's UUID,
    /// microversion 2.53+); else it is found by `hypervisor_hostname`.
    pub async fn room(&self, provider: Option<&str>, hypervisor_hostname: &str) -> Result<ProviderRoom, ServiceError> {
        let root = match provider {
            Some(uuid) => uuid.to_owned(),
            None => {
                let found = self.providers_named(hypervisor_hostname).await?;
                match found.into_iter().next() {
                    Some(provider) => provider.root_provider_uuid.unwrap_or(provider.uuid),
                    None => {
                        return Err(self.http.unusable(
                            &Method::GET,
                            "resource_providers",
                            format!("no resource provider named {hypervisor_hostname}"),
                        ))
                    }
                }
            }
        };
        let mut providers = Vec::new();
        for provider in self.tree(&root).await? {
            let inventories = self.inventories(&provider.uuid).await?;
            let usages = self.usages(&provider.uuid).await?;
            providers.push((inventories, usages));
        }
        Ok(ProviderRoom::of_tree(&providers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inventory(total: u64, reserved: u64, ratio: f64, max_unit: u64) -> Inventory {
        Inventory { total, reserved, allocation_ratio: ratio, max_unit: Some(max_unit) }
    }

    #[test]
    fn room_counts_reserved_ratio_usage_and_max_unit() {
        let inventories = BTreeMap::from([
            ("VCPU".to_owned(), inventory(64, 4, 2.0, 16)),
            ("MEMORY_MB".to_owned(), inventory(65536, 16384, 1.0, 65536)),
        ]);
        let usages = Resources::from([("VCPU".to_owned(), 100), ("MEMORY_MB".to_owned(), 8192)]);
        let room = ProviderRoom::of_tree(&[(inventories, usages)]);
        assert_eq!(room.free["VCPU"], 20.0, "(64 - 4) × 2 - 100");
        assert_eq!(room.free["MEMORY_MB"], 40960.0);
        let need = |vcpus, ram| Resources::from([("VCPU".to_owned(), vcpus), ("MEMORY_MB".to_owned(), ram)]);
        assert!(room.fits(&need(16, 4096)));
        assert!(!room.fits(&need(18, 4096)), "above max_unit though there is room");
        assert!(!room.fits(&need(8, 50000)));
        assert!(!room.fits(&Resources::from([("PCPU".to_owned(), 2)])), "a class the node does not offer");
    }
}
