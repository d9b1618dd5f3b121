//! `hvmigrate vm …`: the VMs of one hypervisor of the list as libvirt and
//! their guest agents see them (list, info, stats, exec), and their power
//! and autostart. A Nova instance's power goes through Nova, never behind
//! its back; only a domain Nova does not know is driven through libvirt.
//! Every command is journaled as an operator action.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::clients::nova::{NovaClient, Server};
use crate::config::{Credentials, HostName, HypervisorList};
use crate::error::{Error, ExitCode, InputProblem};
use crate::hosts::vm::{
    AgentState, DomInfo, DomainStats, DomainXml, Domains, GuestOutput, Migratability, PowerAction, VmError,
};
use crate::journal::Journal;
use crate::ssh::{SshOptions, SshPool};

/// A failed `vm` command: its message and exit code (2: bad input or a
/// refusal, nothing changed; 1: the host or guest failed).
#[derive(Debug)]
pub struct VmFailure {
    pub error: Error,
    pub code: ExitCode,
}

impl From<Error> for VmFailure {
    fn from(error: Error) -> Self {
        let code = error.exit_code();
        VmFailure { error, code }
    }
}

impl From<VmError> for VmFailure {
    fn from(err: VmError) -> Self {
        let code = match err {
            VmError::UnknownDomain { .. } | VmError::Refused { .. } => ExitCode::Input,
            _ => ExitCode::HostFailed,
        };
        VmFailure { error: Error::Refused(err.to_string()), code }
    }
}

pub type VmResult<T> = std::result::Result<T, VmFailure>;

/// One line of `vm list`.
#[derive(Clone, Debug, Serialize)]
pub struct VmListEntry {
    pub domain: String,
    pub uuid: String,
    pub state: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub autostart: bool,
    pub agent: AgentState,
    /// The instance's name from the domain's Nova metadata.
    pub nova_name: Option<String>,
    /// Nova's status of the instance (`ACTIVE`, `SHUTOFF`…).
    pub nova_status: Option<String>,
    /// Nova does not know this domain.
    pub orphan: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct VmList {
    pub host: String,
    pub domains: Vec<VmListEntry>,
}

#[derive(Clone, Debug, Serialize)]
pub struct VmInfo {
    pub host: String,
    pub info: DomInfo,
    pub definition: DomainXml,
    pub nova_status: Option<String>,
    pub migration: Migratability,
}

#[derive(Clone, Debug, Serialize)]
pub struct VmStats {
    pub host: String,
    pub domains: Vec<DomainStats>,
    pub total: DomainStats,
}

#[derive(Clone, Debug, Serialize)]
pub struct VmExec {
    pub host: String,
    pub domain: String,
    pub command: Vec<String>,
    #[serde(flatten)]
    pub output: GuestOutput,
}

/// What `vm power` or `vm autostart` did.
#[derive(Clone, Debug, Serialize)]
pub struct VmChange {
    pub host: String,
    pub domain: String,
    /// `start`, `shutdown`, `reboot`, `stop`, `autostart on|off`.
    pub action: String,
    /// `nova` or `libvirt`.
    pub through: &'static str,
    /// `changed`, or `already` when it was so.
    pub outcome: &'static str,
    pub detail: String,
}

/// The settings of a `vm` command.
pub struct VmTarget<'a> {
    pub credentials: &'a Credentials,
    pub hypervisors: &'a HypervisorList,
    pub journal_path: &'a std::path::Path,
    pub host: &'a str,
}

/// One hypervisor of the list, over SSH, with Nova and the journal.
pub struct VmSession {
    host: String,
    operator: String,
    domains: Domains,
    pool: Arc<SshPool>,
    nova: Option<NovaClient>,
    journal: Journal,
}

impl VmSession {
    /// Checks the host is one of the list (exit 2 otherwise) and prepares SSH,
    /// Nova (when configured) and the journal.
    pub async fn open(target: &VmTarget<'_>) -> VmResult<Self> {
        let host = HostName::parse(target.host).map_err(|err| Error::Usage(format!("host: {err}")))?;
        if !target.hypervisors.hypervisors.iter().any(|hv| hv.host == host) {
            return Err(Error::input(InputProblem::new(
                &target.hypervisors.path,
                format!("{host} is not in the hypervisors file"),
            ))
            .into());
        }
        let ssh = target.credentials.ssh.as_ref().ok_or_else(|| {
            Error::Refused("the credentials file has no 'ssh' section: the vm commands reach hosts over SSH".into())
        })?;
        let pool = Arc::new(
            SshPool::new(SshOptions::from_config(ssh))
                .map_err(|err| Error::Refused(format!("cannot prepare SSH: {err}")))?,
        );
        let nova = match &target.credentials.openstack {
            Some(openstack) => {
                let policy = crate::clients::http::RetryPolicy::default();
                let keystone = crate::clients::openstack::Keystone::new(
                    crate::clients::openstack::KeystoneSettings::from_config(openstack)?,
                    policy,
                )
                .map_err(|err| Error::Refused(format!("cannot start: {err}")))?;
                let nova = NovaClient::connect(Arc::new(keystone))
                    .await
                    .map_err(|err| Error::Refused(format!("cannot start: {err}")))?;
                Some(nova.with_host_names(openstack.compute_host_names))
            }
            None => None,
        };
        let operator = target
            .credentials
            .general
            .as_ref()
            .map(|general| general.initials.clone())
            .unwrap_or_else(|| std::env::var("USER").unwrap_or_else(|_| "operator".into()));
        let journal = Journal::open(target.journal_path)?;
        Ok(VmSession {
            host: host.as_str().to_owned(),
            operator,
            domains: Domains::new(pool.clone(), host.as_str()),
            pool,
            nova,
            journal,
        })
    }

    /// Runs `work` journaled as an operator action: intent first, then how it ended.
    async fn journaled<T>(
        &self,
        command: &str,
        subject: Option<&str>,
        work: impl std::future::Future<Output = VmResult<(T, String)>>,
    ) -> VmResult<T> {
        let id = self.journal.operator_action_start(&self.operator, &self.host, command, subject)?;
        let result = work.await;
        let (outcome, detail) = match &result {
            Ok((_, detail)) => ("done", detail.clone()),
            Err(failure) => ("failed", failure.error.to_string()),
        };
        if let Err(err) = self.journal.operator_action_end(id, outcome, Some(&detail)) {
            tracing::warn!(host = %self.host, command, "the journal did not take the action's end: {err}");
        }
        self.pool.close_all().await;
        result.map(|(value, _)| value)
    }

    /// Nova's servers on this host, by id (= domain UUID); empty without Nova.
    async fn nova_servers(&self) -> VmResult<Vec<Server>> {
        match &self.nova {
            Some(nova) => Ok(nova.servers_on_host(&self.host).await.map_err(Error::from)?),
            None => Ok(Vec::new()),
        }
    }

    fn nova(&self) -> VmResult<&NovaClient> {
        self.nova.as_ref().ok_or_else(|| {
            Error::Refused(
                "the credentials file has no 'openstack' section: a Nova instance is driven through Nova".into(),
            )
            .into()
        })
    }

    pub async fn list(&self) -> VmResult<VmList> {
        self.journaled("vm list", None, async {
            let servers = self.nova_servers().await?;
            let mut domains = Vec::new();
            for name in self.domains.names().await? {
                let info = self.domains.dominfo(&name).await?;
                let xml = self.domains.dumpxml(&name).await?;
                let agent = if info.running() { self.domains.ping(&name).await? } else { AgentState::DomainNotRunning };
                let server = servers.iter().find(|server| server.id == info.uuid);
                domains.push(VmListEntry {
                    domain: info.name.clone(),
                    uuid: info.uuid.clone(),
                    state: info.state.clone(),
                    vcpus: info.vcpus,
                    memory_mib: info.max_memory_kib / 1024,
                    autostart: info.autostart,
                    agent,
                    nova_name: xml.nova.map(|nova| nova.name),
                    nova_status: server.map(|server| server.status.clone()),
                    orphan: self.nova.is_some() && server.is_none(),
                });
            }
            let detail = format!("{} domains", domains.len());
            Ok((VmList { host: self.host.clone(), domains }, detail))
        })
        .await
    }

    pub async fn info(&self, domain: &str) -> VmResult<VmInfo> {
        self.journaled("vm info", Some(domain), async {
            let info = self.domains.dominfo(domain).await?;
            let definition = self.domains.dumpxml(domain).await?;
            let servers = self.nova_servers().await?;
            let nova_status = servers.iter().find(|server| server.id == info.uuid).map(|server| server.status.clone());
            let mut migration = definition.migratability(info.running());
            if self.nova.is_some() && nova_status.is_none() && definition.nova.is_some() {
                migration = Migratability::NotAtAll(vec![
                    "Nova has no instance with this UUID on this host (a leftover of a deleted instance?)".into(),
                ]);
            }
            let detail = format!("migration: {}", migration.label());
            Ok((VmInfo { host: self.host.clone(), info, definition, nova_status, migration }, detail))
        })
        .await
    }

    pub async fn stats(&self, domain: Option<&str>) -> VmResult<VmStats> {
        self.journaled("vm stats", domain, async {
            let domains = self.domains.stats(domain).await?;
            let total = DomainStats::total(&domains);
            let detail = format!("{} domains", domains.len());
            Ok((VmStats { host: self.host.clone(), domains, total }, detail))
        })
        .await
    }

    /// Runs `argv` in the guest; the command line is journaled, never its input.
    pub async fn exec(
        &self,
        domain: &str,
        argv: &[String],
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> VmResult<VmExec> {
        let subject = format!("{domain}: {}", argv.join(" "));
        self.journaled("vm exec", Some(&subject), async {
            let output = self.domains.exec(domain, argv, stdin, timeout).await?;
            let detail = format!("exit code {}", output.exit_code);
            Ok((VmExec { host: self.host.clone(), domain: domain.to_owned(), command: argv.to_vec(), output }, detail))
        })
        .await
    }

    /// Power: a Nova instance through Nova's API, a domain Nova does not know
    /// through libvirt; what the state does not allow is refused (exit 2).
    pub async fn power(&self, domain: &str, action: PowerAction) -> VmResult<VmChange> {
        self.journaled(&format!("vm power {}", action.name()), Some(domain), async {
            let info = self.domains.dominfo(domain).await?;
            let servers = self.nova_servers().await?;
            let refuse = |reason: String| -> VmFailure {
                VmError::Refused { host: self.host.clone(), domain: info.name.clone(), reason }.into()
            };
            let change = |through, detail: String| VmChange {
                host: self.host.clone(),
                domain: info.name.clone(),
                action: action.name().to_owned(),
                through,
                outcome: "changed",
                detail,
            };
            match servers.iter().find(|server| server.id == info.uuid) {
                Some(server) => {
                    let running = match server.status.as_str() {
                        "ACTIVE" => true,
                        "SHUTOFF" => false,
                        other => {
                            return Err(refuse(format!(
                                "Nova instance {} is {other}: {} waits until it is ACTIVE or SHUTOFF",
                                server.id,
                                action.name()
                            )))
                        }
                    };
                    if let Some(why) = action.refusal(running) {
                        return Err(refuse(format!("cannot {}: Nova instance {} {why}", action.name(), server.id)));
                    }
                    let nova = self.nova()?;
                    let done = match action {
                        PowerAction::Start => nova.start_server(&server.id).await,
                        PowerAction::Shutdown | PowerAction::Stop => nova.stop_server(&server.id).await,
                        PowerAction::Reboot => nova.reboot_server(&server.id, false).await,
                    };
                    done.map_err(|err| VmFailure { error: Error::from(err), code: ExitCode::HostFailed })?;
                    let detail = format!("asked Nova to {} instance {}", nova_verb(action), server.id);
                    Ok((change("nova", detail.clone()), detail))
                }
                None if self.nova.is_none() => Err(Error::Refused(
                    "without the 'openstack' section the tool cannot tell whether Nova owns this domain; it does not act behind Nova's back"
                        .into(),
                )
                .into()),
                None => {
                    if let Some(why) = action.refusal(info.running()) {
                        return Err(refuse(format!("cannot {}: the domain {why}", action.name())));
                    }
                    let said = self.domains.power(domain, action).await?;
                    Ok((change("libvirt", said.clone()), said))
                }
            }
        })
        .await
    }

    /// Autostart on or off. Nova starts its instances itself
    /// (`resume_guests_state_on_host_boot`), so a Nova instance is refused.
    pub async fn autostart(&self, domain: &str, enable: bool) -> VmResult<VmChange> {
        let label = format!("autostart {}", if enable { "on" } else { "off" });
        self.journaled(&format!("vm {label}"), Some(domain), async {
            let info = self.domains.dominfo(domain).await?;
            let servers = self.nova_servers().await?;
            if self.nova.is_none() {
                return Err(Error::Refused(
                    "without the 'openstack' section the tool cannot tell whether Nova owns this domain".into(),
                )
                .into());
            }
            if let Some(server) = servers.iter().find(|server| server.id == info.uuid) {
                return Err(VmError::Refused {
                    host: self.host.clone(),
                    domain: info.name.clone(),
                    reason: format!(
                        "Nova instance {} is started by Nova (resume_guests_state_on_host_boot), not by libvirt's autostart; Nova's API has no autostart to set",
                        server.id
                    ),
                }
                .into());
            }
            let mut change = VmChange {
                host: self.host.clone(),
                domain: info.name.clone(),
                action: label.clone(),
                through: "libvirt",
                outcome: "already",
                detail: format!("autostart was already {}", if enable { "on" } else { "off" }),
            };
            if info.autostart != enable {
                change.detail = self.domains.set_autostart(domain, enable).await?;
                change.outcome = "changed";
            }
            let detail = change.detail.clone();
            Ok((change, detail))
        })
        .await
    }
}

fn nova_verb(action: PowerAction) -> &'static str {
    match action {
        PowerAction::Start => "start (os-start)",
        PowerAction::Shutdown | PowerAction::Stop => "stop (os-stop)",
        PowerAction::Reboot => "reboot (soft)",
    }
}
