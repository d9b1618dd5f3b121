//! `hvmigrate check-config`: load and validate both input files and describe
//! them, secrets masked.

use std::path::PathBuf;

use serde::Serialize;

use crate::config::credentials::{JiraAuth, OpenStackAuth};
use crate::config::{Credentials, HypervisorList, KeyMode};
use crate::error::Result;
use crate::fs_security;

/// Where the input files are.
#[derive(Clone, Debug)]
pub struct InputPaths {
    pub hypervisors_file: PathBuf,
    pub creds_file: PathBuf,
}

/// Both files, loaded and checked. Permissions are checked before the
/// credentials are read, so a readable-by-all file is never parsed.
pub fn load_inputs(paths: &InputPaths, mode: KeyMode) -> Result<(HypervisorList, Credentials)> {
    let hypervisors = HypervisorList::load(&paths.hypervisors_file, mode);
    let credentials =
        fs_security::check_secret_file(&paths.creds_file).and_then(|()| Credentials::load(&paths.creds_file));
    match (hypervisors, credentials) {
        (Ok(hypervisors), Ok(credentials)) => {
            // The ledger is opened later, by whichever command needs it.
            if let Some(password) = credentials.state.as_ref().and_then(|state| state.password.as_ref()) {
                crate::journal::use_configured_password(password);
            }
            Ok((hypervisors, credentials))
        }
        // Report the problems of both files at once.
        (Err(crate::Error::Input(mut first)), Err(crate::Error::Input(second))) => {
            first.extend(second);
            Err(crate::Error::Input(first))
        }
        (Err(err), _) | (_, Err(err)) => Err(err),
    }
}

#[derive(Debug, Serialize)]
pub struct ConfigSummary {
    pub hypervisors_file: PathBuf,
    pub hosts: Vec<HostSummary>,
    pub creds_file: PathBuf,
    pub initials: Option<String>,
    pub services: Vec<ServiceSummary>,
}

#[derive(Debug, Serialize)]
pub struct HostSummary {
    pub host: String,
    pub ticket: Option<String>,
    pub line: usize,
}

#[derive(Debug, Serialize)]
pub struct ServiceSummary {
    pub service: &'static str,
    pub configured: bool,
    /// Where and how, secrets shown as `***`.
    pub detail: String,
}

pub fn summarize(hypervisors: &HypervisorList, credentials: &Credentials, paths: &InputPaths) -> ConfigSummary {
    let hosts = hypervisors
        .hypervisors
        .iter()
        .map(|hv| HostSummary {
            host: hv.host.to_string(),
            ticket: hv.key.as_ref().map(ToString::to_string),
            line: hv.line,
        })
        .collect();
    let services = credentials
        .configured_services()
        .into_iter()
        .map(|(service, configured)| ServiceSummary {
            service,
            configured,
            detail: if configured { describe(service, credentials) } else { "not configured".into() },
        })
        .collect();
    ConfigSummary {
        hypervisors_file: paths.hypervisors_file.clone(),
        hosts,
        creds_file: paths.creds_file.clone(),
        initials: credentials.general.as_ref().map(|general| general.initials.clone()),
        services,
    }
}

fn describe(service: &str, creds: &Credentials) -> String {
    match service {
        "jira" => {
            let jira = creds.jira.as_ref().expect("configured");
            let auth = match jira.auth() {
                JiraAuth::Basic { username, token } => format!("user {username}, api_token {token}"),
                JiraAuth::Bearer(token) => format!("personal_access_token {token}"),
            };
            format!("{} ({}, project {}, {auth})", jira.url, jira.flavour.as_str(), jira.project)
        }
        "netbox" => {
            let netbox = creds.netbox.as_ref().expect("configured");
            format!("{} (token {})", netbox.url, netbox.token)
        }
        "openstack" => {
            let os = creds.openstack.as_ref().expect("configured");
            let auth = match os.auth() {
                OpenStackAuth::Password { auth_url, username, password, project_name } => {
                    format!("{auth_url} (user {username}, password {password}, project {project_name}")
                }
                OpenStackAuth::ApplicationCredential { auth_url, id, secret } => {
                    format!("{auth_url} (application credential {id}, secret {secret}")
                }
                OpenStackAuth::Cloud(cloud) => format!("clouds.yaml entry '{cloud}' ("),
            };
            let region = os.region_name.as_deref().map(|region| format!(", region {region}")).unwrap_or_default();
            format!("{auth}, interface {}{region})", os.interface)
        }
        "alertmanager" => {
            let am = creds.alertmanager.as_ref().expect("configured");
            match (&am.username, &am.password) {
                (Some(user), Some(password)) => format!("{} (basic auth as {user}, password {password})", am.url),
                _ => format!("{} (no auth)", am.url),
            }
        }
        "ssh" => {
            let ssh = creds.ssh.as_ref().expect("configured");
            let config =
                ssh.config_file.as_ref().map(|file| format!(", ssh_config {}", file.display())).unwrap_or_default();
            format!(
                "user {} with key {}, known_hosts {}{config}, timeouts {}s connect / {}s command",
                ssh.username,
                ssh.key_path.display(),
                ssh.known_hosts.display(),
                ssh.connect_timeout_secs,
                ssh.command_timeout_secs
            )
        }
        "aquilon" => {
            let aq = creds.aquilon.as_ref().expect("configured");
            format!("{}@{}", aq.username, aq.host)
        }
        "kayobe" => {
            let kayobe = creds.kayobe.as_ref().expect("configured");
            format!("{}@{} (environment {})", kayobe.username, kayobe.host, kayobe.environment_path)
        }
        "scc" => {
            let scc = creds.scc.as_ref().expect("configured");
            format!("{} (user {}, password {})", scc.url, scc.username, scc.password)
        }
        other => unreachable!("unknown service {other}"),
    }
}
