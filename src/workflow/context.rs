//! What an action works with: the run's settings, the service clients, the
//! host, and the facts earlier actions of the step found.

use std::sync::Arc;

use crate::clients::alertmanager::AlertmanagerClient;
use crate::clients::http::RetryPolicy;
use crate::clients::jira::JiraClient;
use crate::clients::netbox::{Device, NetBoxClient};
use crate::clients::nova::{ComputeService, NovaClient};
use crate::clients::openstack::{Keystone, KeystoneSettings};
use crate::clients::placement::PlacementClient;
use crate::clients::scc::SccClient;
use crate::config::{Credentials, HostName, JiraKey};
use crate::error::{Error, Result};
use crate::maintenance_window::MaintenanceWindow;
use crate::ssh::{CommandOutput, RemoteCommand, RemoteShell, SshPool, Target};

/// The most of one command's output a comment shows (its start and its end).
const RECORDED_OUTPUT_LIMIT: usize = 8 * 1024;

use super::action::ActionError;
use super::Step;

/// The clients of every configured service, shared by all hosts of a run.
#[derive(Default)]
pub struct Services {
    pub jira: Option<JiraClient>,
    pub netbox: Option<NetBoxClient>,
    pub nova: Option<NovaClient>,
    /// The Keystone session Nova uses, for the clients connected when first needed.
    pub keystone: Option<Arc<Keystone>>,
    /// Placement, connected by the first capacity check (only the drain needs it).
    pub placement: tokio::sync::OnceCell<PlacementClient>,
    pub alertmanager: Option<AlertmanagerClient>,
    pub scc: Option<SccClient>,
    pub shell: Option<Arc<dyn RemoteShell>>,
}

impl Services {
    /// Builds a client for every configured section. Nova needs a token and
    /// its version document, so an unreachable Keystone fails here, before
    /// anything is changed.
    pub async fn connect(credentials: &Credentials, policy: RetryPolicy) -> Result<Self> {
        let policy = RetryPolicy { max_in_flight: credentials.workflow.limits.service_requests, ..policy };
        let unreachable = |err: crate::clients::http::ServiceError| Error::Refused(format!("cannot start: {err}"));
        let mut services = Services::default();
        if let Some(jira) = &credentials.jira {
            services.jira = Some(JiraClient::with_policy(jira, policy).map_err(unreachable)?);
        }
        if let Some(netbox) = &credentials.netbox {
            services.netbox = Some(NetBoxClient::with_policy(netbox, policy).map_err(unreachable)?);
        }
        if let Some(openstack) = &credentials.openstack {
            let keystone = Keystone::new(KeystoneSettings::from_config(openstack)?, policy).map_err(unreachable)?;
            let keystone = Arc::new(keystone);
            let nova = NovaClient::connect(keystone.clone()).await.map_err(unreachable)?;
            services.nova = Some(nova.with_host_names(openstack.compute_host_names));
            services.keystone = Some(keystone);
        }
        if let Some(alertmanager) = &credentials.alertmanager {
            services.alertmanager = Some(AlertmanagerClient::with_policy(alertmanager, policy).map_err(unreachable)?);
        }
        if let Some(scc) = &credentials.scc {
            services.scc = Some(SccClient::new(scc).map_err(unreachable)?);
        }
        if let Some(ssh) = &credentials.ssh {
            let pool = SshPool::new(crate::ssh::SshOptions::from_config(ssh))
                .map_err(|err| Error::Refused(format!("cannot prepare SSH: {err}")))?;
            services.shell = Some(Arc::new(pool));
        }
        Ok(services)
    }
}

fn missing(service: &str) -> ActionError {
    ActionError(format!("the '{service}' section is missing from the credentials file"))
}

/// One run's settings, shared by all hosts.
pub struct RunContext {
    pub run_id: String,
    pub step: Step,
    pub dry_run: bool,
    /// `--force`: only passes the step gate.
    pub force: bool,
    /// `--redo [ACTION]`: the step runs again on hosts already past it;
    /// with an action, that once-per-campaign action is repeated.
    pub redo: Option<String>,
    /// The first Ctrl-C or SIGTERM: no new action or migration starts.
    pub stop: super::host_run::StopSignal,
    pub initials: String,
    pub credentials: Arc<Credentials>,
    pub services: Arc<Services>,
    /// Fixed once per run, so every host's silences end together.
    pub window: MaintenanceWindow,
    /// Every host this run works on (a drain never sends VMs to one of them).
    pub run_hosts: Vec<HostName>,
    /// Migrations at once across the run (`workflow.limits.live_migrations_global`).
    pub migration_slots: Arc<super::drain::MigrationSlots>,
    /// Destination room promised to the hosts of the run that are draining.
    pub capacity: super::drain::CapacityLedger,
    /// Where long actions report how far they are.
    pub progress: Option<Arc<dyn super::host_run::Progress>>,
    /// Work done once for all hosts of the run that reach it (Kayobe).
    pub batches: Arc<super::batch::Batches>,
    /// The journal, for actions that must know what earlier runs did (a
    /// re-import done once in the campaign). Read-only in a dry run.
    pub journal: Option<Arc<crate::journal::Journal>>,
    /// Commands at once on the Aquilon host (`workflow.limits.aquilon_commands`).
    pub aquilon_slots: Arc<tokio::sync::Semaphore>,
    /// Every service's credentials checked once for the run (the preflight).
    pub services_checked: tokio::sync::OnceCell<Vec<crate::reach::Reach>>,
    /// The run's hold on its hosts in the ledger (none in a dry run).
    pub leases: Option<Arc<super::leases::RunLeases>>,
}

impl RunContext {
    pub fn jira(&self) -> Result<&JiraClient, ActionError> {
        self.services.jira.as_ref().ok_or_else(|| missing("jira"))
    }

    pub fn netbox(&self) -> Result<&NetBoxClient, ActionError> {
        self.services.netbox.as_ref().ok_or_else(|| missing("netbox"))
    }

    pub fn nova(&self) -> Result<&NovaClient, ActionError> {
        self.services.nova.as_ref().ok_or_else(|| missing("openstack"))
    }

    /// Placement, connected on first use with Nova's Keystone session.
    pub async fn placement(&self) -> Result<&PlacementClient, ActionError> {
        let keystone = self.services.keystone.clone().ok_or_else(|| missing("openstack"))?;
        self.services.placement.get_or_try_init(|| PlacementClient::connect(keystone)).await.map_err(ActionError::from)
    }

    pub fn alertmanager(&self) -> Result<&AlertmanagerClient, ActionError> {
        self.services.alertmanager.as_ref().ok_or_else(|| missing("alertmanager"))
    }

    pub fn scc(&self) -> Result<&SccClient, ActionError> {
        self.services.scc.as_ref().ok_or_else(|| missing("scc"))
    }

    pub fn shell(&self) -> Result<&Arc<dyn RemoteShell>, ActionError> {
        self.services.shell.as_ref().ok_or_else(|| missing("ssh"))
    }

    /// A turn on the Aquilon host: one of `workflow.limits.aquilon_commands`
    /// across every run on the ledger, not only this one's.
    pub async fn aquilon_turn(&self) -> AquilonTurn {
        let local = self.aquilon_slots.clone().acquire_owned().await.expect("the semaphore is never closed");
        let limit = self.credentials.workflow.limits.aquilon_commands.max(1);
        let shared = match &self.leases {
            Some(leases) => {
                Some(leases.slot("aquilon-commands", limit, false, std::time::Duration::from_millis(50)).await)
            }
            None => None,
        };
        AquilonTurn { _local: local, _shared: shared }
    }

    /// The Kayobe host's turn for a batch: one Kayobe batch at a time across
    /// every run on the ledger (two batches at once would fight over the
    /// inventory and Kolla's configuration). Waits while another run's batch
    /// holds it; given back when dropped, however the batch ends.
    pub async fn kayobe_turn(&self) -> Option<super::leases::LedgerSlot> {
        let leases = self.leases.as_ref()?;
        Some(leases.slot(KAYOBE_BATCHES, 1, false, std::time::Duration::from_millis(100)).await)
    }

    /// Whether the operator asked to repeat this once-per-campaign action.
    pub fn redo_action(&self, action: &str) -> bool {
        self.redo.as_deref() == Some(action)
    }

    /// Who the tool's silences say made them: `workflow.silence.created_by`
    /// with its `{initials}`. Silences are reused and expired only when
    /// their author reads exactly so.
    pub fn silence_author(&self) -> String {
        self.credentials.workflow.silence.created_by.replace("{initials}", &self.initials)
    }

    /// How this run's detached jobs are kept and recorded (`workflow.remote_jobs`).
    pub fn job_context(&self) -> crate::hosts::remote_job::JobContext {
        let settings = &self.credentials.workflow.remote_jobs;
        crate::hosts::remote_job::JobContext {
            folder: settings.folder.clone(),
            poll_interval: settings.poll_interval(),
            journal: self.journal.clone().filter(|_| !self.dry_run),
            run_id: self.run_id.clone(),
        }
    }

    /// The Kayobe host (`kayobe` section), its runs detached jobs.
    pub fn kayobe(&self) -> Result<crate::hosts::kayobe::Kayobe, ActionError> {
        let config = self.credentials.kayobe.as_ref().ok_or_else(|| missing("kayobe"))?;
        let settings = &self.credentials.workflow.remote_jobs;
        let timeouts = crate::hosts::kayobe::KayobeTimeouts {
            kayobe: std::time::Duration::from_secs(settings.kayobe_timeout_secs),
            playbook: std::time::Duration::from_secs(settings.playbook_timeout_secs),
        };
        Ok(crate::hosts::kayobe::Kayobe::new(
            self.shell()?.clone(),
            Target::new(&config.username, &config.host),
            config.environment_path.clone(),
            self.job_context(),
            timeouts,
        ))
    }

    /// The Nova disable reason of this campaign.
    pub fn disable_reason(&self) -> String {
        self.credentials.workflow.disable_reason_for(&self.initials)
    }
}

/// The ledger's slot of the Kayobe host: one batch at a time across runs.
pub const KAYOBE_BATCHES: &str = "kayobe-batches";

/// A turn on the Aquilon host, given back when dropped.
pub struct AquilonTurn {
    _local: tokio::sync::OwnedSemaphorePermit,
    _shared: Option<super::leases::LedgerSlot>,
}

/// What earlier actions of the step found out about the host.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    pub netbox_device: Option<Device>,
    pub compute_service: Option<ComputeService>,
    /// What the drain found and did, VM by VM (the report's table).
    pub vm_moves: Vec<super::report::VmMove>,
    /// Migrations the census found under way, counted against the run's limit until they are awaited.
    pub under_way: Option<Arc<super::drain::UnderWay>>,
    /// The drain's latest census of the host (the next action acts on it).
    pub census: Option<super::drain::Census>,
    /// The host's PCI devices (`lspci`), read once per step.
    pub pci_devices: Option<crate::hosts::hypervisor::PciDevices>,
    /// The NetBox device type of the host (its description may say GPU).
    pub device_type: Option<crate::clients::netbox::DeviceType>,
    /// The hardware model (Aquilon's, else NetBox's), which picks the disk fixes.
    pub hardware_model: Option<String>,
    /// The NetBox role a compute node must have.
    pub compute_role: Option<crate::clients::netbox::Role>,
    /// This run re-imported or re-made the host in Aquilon (its PXE switch must follow).
    pub aquilon_changed: bool,
    /// A reinstalled host's new SSH host key, checked with its identity and to be pinned.
    pub new_host_key: Option<crate::workflow::steps::NewHostKey>,
}

/// A command's output kept for the Jira comment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedOutput {
    pub title: String,
    pub text: String,
}

/// One host going through one step.
pub struct HostContext {
    pub host: HostName,
    pub key: JiraKey,
    pub run: Arc<RunContext>,
    pub facts: Facts,
    pub outputs: Vec<RecordedOutput>,
    /// The action being reconciled: its journal record and the earlier
    /// attempt it may resume (see [`super::resume`]).
    pub attempt: super::resume::ActionAttempt,
}

impl HostContext {
    pub fn new(host: HostName, key: JiraKey, run: Arc<RunContext>) -> Self {
        HostContext { host, key, run, facts: Facts::default(), outputs: Vec::new(), attempt: Default::default() }
    }

    /// Runs a command on the hypervisor as root.
    pub async fn run_as_root(&self, command: &RemoteCommand) -> Result<CommandOutput, ActionError> {
        let target = Target::root(self.host.as_str());
        let output = self.run.shell()?.run(&target, command).await?;
        tracing::debug!(host = %self.host, action = %command.action, exit = output.exit_status, "command ran");
        Ok(output)
    }

    /// Keeps a command's output for the Jira comment.
    pub fn record_output(&mut self, title: impl Into<String>, output: &CommandOutput) {
        let mut text = output.stdout.trim_end().to_owned();
        if !output.stderr.trim().is_empty() {
            text.push_str(&format!("\n[stderr]\n{}", output.stderr.trim_end()));
        }
        let title = format!("{} — {} (exit {})", title.into(), output.command, output.exit_status);
        // A Jira comment holds at most 32,767 characters: a long output keeps its start and its end.
        let text = crate::untrusted::head_and_tail(&text, RECORDED_OUTPUT_LIMIT).into_owned();
        self.outputs.push(RecordedOutput { title, text });
    }
}
