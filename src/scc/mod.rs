//! SUSE Customer Center reporting, as scc-hypervisor-collector does it but
//! over SSH: each hypervisor's details through libvirt (`virsh`), saved to a
//! private results file or uploaded per group. The adoption step calls the
//! same [`collect_host`] and [`upload`] for one host.

pub mod collect;
pub mod payload;
pub mod results_file;
pub mod upload;

pub use collect::{collect_all, collect_host, collect_result, HostResult};
pub use payload::{site_of, virtualization_host};
pub use results_file::ResultsFile;
pub use upload::{upload, upload_results, Receipt, UploadReport};

use std::sync::Arc;

use crate::config::{Credentials, HostName, HypervisorList};
use crate::error::{Error, InputProblem, Result};
use crate::ssh::{SshOptions, SshPool};

/// The group a host is uploaded in: the one asked for, else the site's
/// setting, else the host's site.
pub fn group_for(asked: Option<&str>, credentials: &Credentials, host: &str) -> String {
    asked.or(credentials.workflow.scc_group.as_deref()).map_or_else(|| site_of(host).to_owned(), ToOwned::to_owned)
}

/// The hosts of the list, or only those named (each must be in the list).
pub fn listed_hosts(list: &HypervisorList, only: &[HostName]) -> Result<Vec<String>> {
    let unknown: Vec<String> = only
        .iter()
        .filter(|host| !list.hypervisors.iter().any(|hv| &hv.host == *host))
        .map(|h| h.to_string())
        .collect();
    if !unknown.is_empty() {
        let message = format!("--only names hosts that are not in the list: {}", unknown.join(", "));
        return Err(Error::input(InputProblem::new(&list.path, message)));
    }
    Ok(list
        .hypervisors
        .iter()
        .filter(|hv| only.is_empty() || only.contains(&hv.host))
        .map(|hv| hv.host.to_string())
        .collect())
}

/// `scc collect`: every host over SSH with the credentials' `ssh` settings.
pub async fn collect_listed(
    credentials: &Credentials,
    creds_file: &std::path::Path,
    hosts: &[String],
    group: Option<&str>,
    parallel: usize,
) -> Result<ResultsFile> {
    let ssh = credentials.ssh.as_ref().ok_or_else(|| {
        Error::input(InputProblem::new(creds_file, "collecting needs the 'ssh' section (how to reach the hosts)"))
    })?;
    let pool = Arc::new(
        SshPool::new(SshOptions::from_config(ssh))
            .map_err(|err| Error::Refused(format!("cannot prepare SSH: {err}")))?,
    );
    let topology = credentials.scc.as_ref().map(|scc| scc.topology).unwrap_or_default();
    let results =
        collect_all(pool.clone(), hosts, |host| group_for(group, credentials, host), parallel, topology).await;
    pool.close_all().await;
    Ok(ResultsFile::new(results))
}
