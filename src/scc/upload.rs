//! Uploading to SCC: one request per group holding that group's hosts, as
//! the collector does. A 429 is waited out (`Retry-After`, seconds or an
//! HTTP date) a bounded number of times by the client; anything but 200 is a
//! failure reported with its status and SCC's answer, never a silent exit.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::clients::http::ServiceError;
use crate::clients::scc::{SccClient, VirtualizationHost, VirtualizationHosts};

use super::collect::HostResult;
use super::payload::digest;

/// What SCC accepted: kept in the journal and on the ticket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub group: String,
    /// The HTTP status SCC answered (200).
    pub status: u16,
    pub uploaded_at: String,
    pub hosts: Vec<UploadedHost>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadedHost {
    pub name: String,
    pub identifier: String,
    pub systems: usize,
    /// See [`super::payload::digest`].
    pub digest: String,
}

impl Receipt {
    /// One line for a log or a ticket.
    pub fn summary(&self) -> String {
        let hosts: Vec<String> = self
            .hosts
            .iter()
            .map(|host| format!("{} ({}, {} VMs)", host.name, host.identifier, host.systems))
            .collect();
        format!(
            "SCC accepted group {} at {} (HTTP {}): {}",
            self.group,
            self.uploaded_at,
            self.status,
            hosts.join(", ")
        )
    }
}

/// Uploads `hosts` as group `group` in one request.
pub async fn upload(client: &SccClient, group: &str, hosts: &[VirtualizationHost]) -> Result<Receipt, ServiceError> {
    let hosts: Vec<VirtualizationHost> =
        hosts.iter().cloned().map(|host| VirtualizationHost { group_name: group.to_owned(), ..host }).collect();
    let status = client.upload_hosts(&VirtualizationHosts { virtualization_hosts: hosts.clone() }).await?;
    Ok(Receipt {
        group: group.to_owned(),
        status,
        uploaded_at: jiff::Timestamp::now().round(jiff::Unit::Second).unwrap_or_default().to_string(),
        hosts: hosts
            .iter()
            .map(|host| UploadedHost {
                name: host.properties.name.clone(),
                identifier: host.identifier.clone(),
                systems: host.systems.len(),
                digest: digest(host),
            })
            .collect(),
    })
}

/// How one group's upload went.
#[derive(Clone, Debug, Serialize)]
pub struct GroupUpload {
    pub group: String,
    pub hosts: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
    /// The HTTP status when SCC refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What `scc upload` did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct UploadReport {
    pub groups: Vec<GroupUpload>,
    /// Hosts whose collection failed: not uploaded.
    pub not_uploaded: Vec<HostResult>,
}

impl UploadReport {
    /// Every group accepted and every host collected.
    pub fn all_ok(&self) -> bool {
        self.not_uploaded.is_empty() && self.groups.iter().all(|group| group.receipt.is_some())
    }
}

/// Uploads the valid results, one request per group (`group` replaces the
/// groups the results carry); the invalid ones are listed, not sent.
pub async fn upload_results(client: &SccClient, results: &[HostResult], group: Option<&str>) -> UploadReport {
    let mut report = UploadReport::default();
    let mut groups: BTreeMap<String, Vec<(String, VirtualizationHost)>> = BTreeMap::new();
    for result in results {
        match (&result.details, result.valid) {
            (Some(details), true) => {
                let name = group.map_or_else(|| details.group_name.clone(), ToOwned::to_owned);
                groups.entry(name).or_default().push((result.host.clone(), details.clone()));
            }
            _ => report.not_uploaded.push(result.clone()),
        }
    }
    for (name, members) in groups {
        let (hosts, details): (Vec<String>, Vec<VirtualizationHost>) = members.into_iter().unzip();
        let outcome = upload(client, &name, &details).await;
        let mut entry = GroupUpload { group: name.clone(), hosts, receipt: None, status: None, error: None };
        match outcome {
            Ok(receipt) => {
                tracing::info!(group = %name, hosts = receipt.hosts.len(), "scc: uploaded");
                entry.receipt = Some(receipt);
            }
            Err(err) => {
                tracing::error!(group = %name, error = %err, "scc: upload failed");
                entry.status = err.status();
                entry.error = Some(err.to_string());
            }
        }
        report.groups.push(entry);
    }
    report
}
