//! Collecting the hosts' details over SSH through `virsh`, many hosts at
//! once but a bounded number at a time; a host that cannot be read is
//! reported invalid with the reason, and the others go on.

use std::sync::Arc;

use crate::config::credentials::SccTopology;

use serde::{Deserialize, Serialize};

use crate::clients::scc::VirtualizationHost;
use crate::hosts::libvirt::{HostDetails, Libvirt};
use crate::hosts::HostError;
use crate::ssh::{RemoteShell, Target};

use super::payload::virtualization_host;

/// What collection found for one host: its SCC record, or why there is none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostResult {
    pub host: String,
    pub valid: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<VirtualizationHost>,
}

impl HostResult {
    pub fn valid(host: &str, details: VirtualizationHost) -> Self {
        HostResult { host: host.to_owned(), valid: true, reason: None, details: Some(details) }
    }

    pub fn invalid(host: &str, reason: impl Into<String>) -> Self {
        HostResult { host: host.to_owned(), valid: false, reason: Some(reason.into()), details: None }
    }
}

/// Reads one hypervisor's details through libvirt, as root.
pub async fn collect_host(shell: Arc<dyn RemoteShell>, host: &str) -> Result<HostDetails, HostError> {
    Libvirt::new(shell, host).host_details().await
}

/// One host, as a result that is valid or says why not.
pub async fn collect_result(shell: Arc<dyn RemoteShell>, host: &str, group: &str, topology: SccTopology) -> HostResult {
    let result = match collect_host(shell.clone(), host).await {
        Ok(details) => HostResult::valid(host, virtualization_host(host, group, &details, topology)),
        Err(err) => {
            tracing::warn!(host, action = "scc-collect", error = %err, "collection failed");
            HostResult::invalid(host, err.to_string())
        }
    };
    // Hundreds of hosts: do not keep a connection per host open.
    shell.close(&Target::root(host)).await;
    result
}

/// Every host, at most `parallel` at a time; the results keep the hosts' order.
pub async fn collect_all(
    shell: Arc<dyn RemoteShell>,
    hosts: &[String],
    group_of: impl Fn(&str) -> String,
    parallel: usize,
    topology: SccTopology,
) -> Vec<HostResult> {
    let permits = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
    let tasks: Vec<_> = hosts
        .iter()
        .map(|host| {
            let (shell, permits, host, group) = (shell.clone(), permits.clone(), host.clone(), group_of(host));
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await.expect("the semaphore is never closed");
                collect_result(shell, &host, &group, topology).await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(hosts.len());
    for (host, task) in hosts.iter().zip(tasks) {
        results.push(task.await.unwrap_or_else(|err| HostResult::invalid(host, format!("collection crashed: {err}"))));
    }
    results
}
