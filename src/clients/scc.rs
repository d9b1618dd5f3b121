//! SUSE Customer Center: virtualization hosts upload and a credentials check.

use std::io::Write;

use reqwest::header::{HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};
use reqwest::Method;
use serde::Serialize;

use super::http::{Auth, Body, HttpService, RetryPolicy, ServiceError};
use crate::config::credentials::Scc as SccConfig;

#[derive(Clone, Debug, Serialize)]
pub struct VirtualizationHosts {
    pub virtualization_hosts: Vec<VirtualizationHost>,
}

#[derive(Clone, Debug, Serialize)]
pub struct VirtualizationHost {
    pub identifier: String,
    pub group_name: String,
    pub properties: HostProperties,
    pub systems: Vec<GuestSystem>,
}

#[derive(Clone, Debug, Serialize)]
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

#[derive(Clone, Debug, Serialize)]
pub struct GuestSystem {
    /// RFC 4122 with dashes.
    pub uuid: String,
    pub properties: GuestProperties,
}

#[derive(Clone, Debug, Serialize)]
pub struct GuestProperties {
    pub vm_name: String,
    pub vm_state: String,
}

#[derive(Clone, Debug)]
pub struct SccClient {
    http: HttpService,
}

impl SccClient {
    pub fn new(config: &SccConfig) -> Result<Self, ServiceError> {
        Self::with_policy(config, RetryPolicy::default())
    }

    pub fn with_policy(config: &SccConfig, policy: RetryPolicy) -> Result<Self, ServiceError> {
        let auth = Auth::Basic { username: config.username.clone(), password: config.password.clone() };
        Ok(SccClient { http: HttpService::new("scc", config.url.as_url(), auth, policy)? })
    }

    /// `GET /connect/organizations/repositories`: 200 means the credentials work.
    pub async fn check_credentials(&self) -> Result<(), ServiceError> {
        self.http.get("connect/organizations/repositories", &[]).await?;
        Ok(())
    }

    /// Uploads the hosts' details, gzip-compressed. The upload replaces what
    /// SCC has for these hosts, so it is retried as a whole.
    pub async fn upload_hosts(&self, hosts: &VirtualizationHosts) -> Result<(), ServiceError> {
        let json = serde_json::to_vec(hosts).expect("hosts serialize");
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(&json).and_then(|()| encoder.flush()).expect("writing to memory");
        let bytes = encoder.finish().expect("writing to memory");
        let headers = vec![
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (CONTENT_ENCODING, HeaderValue::from_static("gzip")),
            (HeaderName::from_static("x-gatherer-version"), HeaderValue::from_static(env!("CARGO_PKG_VERSION"))),
        ];
        let body = Body::Raw { bytes, headers };
        self.http.idempotent(Method::PUT, "connect/organizations/virtualization_hosts", body).await?;
        Ok(())
    }
}
