//! SUSE Customer Center: virtualization hosts upload and a credentials check.

use std::io::Write;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::http::{Auth, Body, ErrorKind, HttpService, RetryPolicy, ServiceError};
use crate::config::credentials::Scc as SccConfig;

/// The scc-hypervisor-collector release whose upload this reproduces
/// (SUSE/scc-hypervisor-collector 0.1.0), sent as `X-Scc-Hypervisor-Collector-Version`.
pub const COLLECTOR_VERSION: &str = "0.1.0";
/// The virtual-host-gatherer release whose libvirt report this reproduces
/// (uyuni-project/virtual-host-gatherer 1.0.29), sent as `X-Gatherer-Version`.
pub const GATHERER_VERSION: &str = "1.0.29";

#[derive(Clone, Debug, Serialize)]
pub struct VirtualizationHosts {
    pub virtualization_hosts: Vec<VirtualizationHost>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualizationHost {
    pub identifier: String,
    pub group_name: String,
    pub properties: HostProperties,
    pub systems: Vec<GuestSystem>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostProperties {
    pub name: String,
    pub arch: String,
    pub cores: u32,
    pub sockets: u32,
    pub threads: u32,
    pub ram_mb: Option<u64>,
    #[serde(rename = "type")]
    pub hypervisor_type: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestSystem {
    /// RFC 4122 with dashes.
    pub uuid: String,
    pub properties: GuestProperties,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestProperties {
    pub vm_name: String,
    /// Named as the collector sends it (the gatherer's `optionalVmData`).
    #[serde(rename = "vmState")]
    pub vm_state: String,
}

#[derive(Clone, Debug)]
pub struct SccClient {
    http: HttpService,
}

impl SccClient {
    /// A client whose retries wait as long as SCC's `Retry-After` asks (up to
    /// five minutes), a bounded number of times.
    pub fn new(config: &SccConfig) -> Result<Self, ServiceError> {
        let policy = RetryPolicy {
            max_attempts: 4,
            max_delay: Duration::from_secs(300),
            max_total: Duration::from_secs(900),
            ..RetryPolicy::default()
        };
        Self::with_policy(config, policy)
    }

    pub fn with_policy(config: &SccConfig, policy: RetryPolicy) -> Result<Self, ServiceError> {
        let auth = Auth::Basic { username: config.username.clone(), password: config.password.clone() };
        Ok(SccClient { http: HttpService::new("scc", config.url.as_url(), auth, policy, &config.transport)? })
    }

    /// `GET /connect/organizations/repositories`: 200 means the credentials work.
    pub async fn check_credentials(&self) -> Result<(), ServiceError> {
        self.http.get("connect/organizations/repositories", &[]).await?;
        Ok(())
    }

    /// Uploads the hosts' details, gzip-compressed. The upload replaces what
    /// SCC has for these hosts, so it is retried as a whole. Only 200 is
    /// success (as for the collector and Uyuni); the status is returned.
    pub async fn upload_hosts(&self, hosts: &VirtualizationHosts) -> Result<u16, ServiceError> {
        let json = serde_json::to_vec(hosts).expect("hosts serialize");
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(&json).and_then(|()| encoder.flush()).expect("writing to memory");
        let bytes = encoder.finish().expect("writing to memory");
        let headers = vec![
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (CONTENT_ENCODING, HeaderValue::from_static("gzip")),
            // As scc-hypervisor-collector sends them (`uploader.py`): the versions
            // of the collector and gatherer whose payload this reproduces.
            (HeaderName::from_static("x-gatherer-version"), HeaderValue::from_static(GATHERER_VERSION)),
            (
                HeaderName::from_static("x-scc-hypervisor-collector-version"),
                HeaderValue::from_static(COLLECTOR_VERSION),
            ),
        ];
        let body = Body::Raw { bytes, headers };
        let path = "connect/organizations/virtualization_hosts";
        let reply = self.http.idempotent(Method::PUT, path, body).await?;
        let status = reply.status.as_u16();
        if status != 200 {
            let message = super::http::service_message(&reply.body);
            let kind = ErrorKind::Status { status, message, retry_after: None };
            return Err(ServiceError::new("scc", &Method::PUT, path, kind));
        }
        Ok(status)
    }
}
