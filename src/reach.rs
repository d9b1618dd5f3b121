//! `hvmigrate check-config --reach`: check the credentials against every
//! configured service, and how long each takes to answer.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::clients::alertmanager::AlertmanagerClient;
use crate::clients::jira::JiraClient;
use crate::clients::netbox::NetBoxClient;
use crate::clients::nova::NovaClient;
use crate::clients::openstack::{Keystone, KeystoneSettings};
use crate::clients::scc::SccClient;
use crate::clients::RetryPolicy;
use crate::config::Credentials;

/// What one service answered.
#[derive(Clone, Debug, Serialize)]
pub struct Reach {
    pub service: &'static str,
    pub ok: bool,
    pub latency_ms: u64,
    pub version: Option<String>,
    /// What was checked, or why it failed.
    pub detail: String,
}

/// A check should not take the operator's afternoon.
fn reach_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        max_total: Duration::from_secs(20),
        request_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(5),
        ..RetryPolicy::default()
    }
}

/// Checks every configured service at once; the order of the result is fixed.
pub async fn check_all(credentials: &Credentials) -> Vec<Reach> {
    let policy = reach_policy();
    let jira = async {
        let config = credentials.jira.as_ref()?;
        Some(timed("jira", async {
            let client = JiraClient::with_policy(config, policy)?;
            let user = client.myself().await?;
            let info = client.server_info().await?;
            let who = user.name.or(user.account_id).unwrap_or(user.display_name);
            Ok((Some(info.version), format!("authenticated as {who}")))
        }))
    };
    let netbox = async {
        let config = credentials.netbox.as_ref()?;
        Some(timed("netbox", async {
            let client = NetBoxClient::with_policy(config, policy)?;
            let version = client.version().await?;
            client.check_token().await?;
            Ok((Some(version), "token accepted".to_owned()))
        }))
    };
    let openstack = async {
        let config = credentials.openstack.as_ref()?;
        Some(timed("openstack", async {
            let settings = KeystoneSettings::from_config(config).map_err(|err| err.to_string())?;
            let keystone = Arc::new(Keystone::new(settings, policy)?);
            keystone.token(false).await?;
            let nova = NovaClient::connect(keystone).await?;
            let version = nova.version();
            Ok((
                Some(format!("compute {}", version.max)),
                format!("token issued; compute API {}–{}, using {}", version.min, version.max, version.used),
            ))
        }))
    };
    let alertmanager = async {
        let config = credentials.alertmanager.as_ref()?;
        Some(timed("alertmanager", async {
            let version = AlertmanagerClient::with_policy(config, policy)?.version().await?;
            Ok((Some(version), "status read".to_owned()))
        }))
    };
    let scc = async {
        let config = credentials.scc.as_ref()?;
        Some(timed("scc", async {
            SccClient::with_policy(config, policy)?.check_credentials().await?;
            Ok((None, "organisation credentials accepted".to_owned()))
        }))
    };
    let (jira, netbox, openstack, alertmanager, scc) = tokio::join!(
        async { Some(jira.await?.await) },
        async { Some(netbox.await?.await) },
        async { Some(openstack.await?.await) },
        async { Some(alertmanager.await?.await) },
        async { Some(scc.await?.await) },
    );
    [jira, netbox, openstack, alertmanager, scc].into_iter().flatten().collect()
}

/// Any error, as text: it is shown, not handled.
struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(err: E) -> Self {
        Failure(err.to_string())
    }
}

async fn timed(service: &'static str, check: impl Future<Output = Result<(Option<String>, String), Failure>>) -> Reach {
    let start = Instant::now();
    let result = check.await;
    let latency_ms = start.elapsed().as_millis() as u64;
    match result {
        Ok((version, detail)) => {
            tracing::info!(service, latency_ms, "reachable");
            Reach { service, ok: true, latency_ms, version, detail }
        }
        Err(Failure(detail)) => {
            tracing::warn!(service, latency_ms, error = %detail, "not reachable");
            Reach { service, ok: false, latency_ms, version: None, detail }
        }
    }
}
