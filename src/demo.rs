//! `hvmigrate demo`: the campaign on a simulated site started in-process on
//! loopback, in a temporary folder: nothing to install, nothing outside it
//! touched.

use std::path::PathBuf;
use std::sync::Arc;

use hvmigrate_lab::{Lab, LabOptions, WorldOptions};

use crate::check_config::{self, InputPaths};
use crate::clients::http::RetryPolicy;
use crate::config::KeyMode;
use crate::error::{Error, ExitCode, Result};
use crate::output::Output;
use crate::workflow::context::Services;
use crate::workflow::host_run::StopSignal;
use crate::workflow::manager::{self, RunSettings, RunSummary};
use crate::workflow::report::HostOutcome;
use crate::workflow::{steps, Step};

#[derive(Clone, Debug)]
pub struct DemoSettings {
    pub hosts: usize,
    pub seed: u64,
    /// Where the site files, journal and logs go (a new temporary folder when unset).
    pub dir: Option<PathBuf>,
    pub quiet: bool,
}

/// What the demo leaves behind for the operator to look at.
#[derive(Debug, serde::Serialize)]
pub struct DemoReport {
    pub dir: PathBuf,
    pub journal: PathBuf,
    /// The campaign report's page (`hvmigrate report --html`).
    pub report: PathBuf,
    pub run_log: Option<PathBuf>,
    pub steps: Vec<RunSummary>,
    /// Per host: where it ended the campaign.
    pub hosts: Vec<DemoHost>,
}

/// Where one host of the simulated site stands at the end of the demo.
#[derive(Debug, serde::Serialize)]
pub struct DemoHost {
    pub host: String,
    pub ticket: String,
    /// The Jira status of its ticket.
    pub status: String,
    pub comments: usize,
    /// `rocky 9.4`.
    pub os: String,
    /// Its nova-compute service: `enabled/up`.
    pub nova: String,
    pub in_scc: bool,
    /// The step that stopped it and why; `None` when it went through.
    pub stopped: Option<String>,
}

impl DemoReport {
    pub fn exit_code(&self) -> ExitCode {
        // The site's deliberate oddities are expected to block; the demo
        // succeeds when it ran to the end.
        ExitCode::Success
    }
}

/// The steps the demo runs: setup, the preflight (which needs root access),
/// then the rest of the campaign.
pub fn demo_steps() -> Vec<Step> {
    let available = steps::available();
    [Step::Setup, Step::Noops]
        .into_iter()
        .chain(Step::CAMPAIGN.into_iter().skip(1))
        .filter(|step| available.contains(step))
        .collect()
}

pub async fn run(settings: &DemoSettings, output: &Output, run_log: &crate::logging::RunLog) -> Result<DemoReport> {
    let quiet = settings.quiet;
    let dir = match &settings.dir {
        Some(dir) => dir.clone(),
        None => tempfile::Builder::new()
            .prefix("hvmigrate-demo-")
            .tempdir()
            .map_err(|err| Error::io(&std::env::temp_dir(), err))?
            .keep(),
    };
    // A typical Kolla site: nova-compute registered under the short host name.
    let world = WorldOptions {
        hosts: settings.hosts,
        seed: settings.seed,
        short_service_hosts: true,
        // node_exporter's alerts labelled `instance="<fqdn>:9100"`.
        host_alerts: true,
        // Reinstalls as real ones: new SSH host keys, no compute_id left.
        reinstall_like_real: true,
        // nova.conf tuned as sites do: Placement's ratios and reservations are not Nova's defaults.
        // Disk over-committed as sites with thin-provisioned (qcow2) instances do: the
        // spare hosts' local disks alone would not take every drained VM at once.
        allocation: hvmigrate_lab::world::HostAllocation {
            disk_allocation_ratio: 4.0,
            ..hvmigrate_lab::world::HostAllocation::site_tuned()
        },
        ..WorldOptions::default()
    };
    let lab = Lab::start(LabOptions { world, ..LabOptions::default() })
        .await
        .map_err(|err| Error::Refused(format!("cannot start the simulated site: {err}")))?;
    // Minutes of migration pass in seconds of demo.
    lab.world().lock().time_scale = 120.0;
    // Migrations take a fraction of a second here: check them more often than on a real site.
    let settings = "workflow:\n  drain:\n    poll_interval_ms: 100\n";
    let site = lab.write_site_files(&dir.join("site"), settings).map_err(|err| Error::io(&dir, err))?;
    let paths = InputPaths { hypervisors_file: site.hypervisors.clone(), creds_file: site.credentials.clone() };
    let (hypervisors, credentials) = check_config::load_inputs(&paths, KeyMode::Required)?;
    let log = run_log.open(&dir.join("logs"), &paths.hypervisors_file)?;
    let credentials = Arc::new(credentials);
    let services = Arc::new(Services::connect(&credentials, RetryPolicy::default()).await?);
    let journal = dir.join("state/hvmigrate.db");
    let stop = StopSignal::default();

    let mut summaries = Vec::new();
    for step in demo_steps() {
        let settings = RunSettings {
            step,
            parallel: hypervisors.len(),
            only: Vec::new(),
            dry_run: false,
            force: false,
            redo: None,
            claim: None,
            journal: journal.clone(),
        };
        let progress = output.progress(quiet);
        let summary =
            manager::run(&settings, &hypervisors, credentials.clone(), services.clone(), progress, stop.clone())
                .await?;
        output.run_summary(&summary, None);
        if step == Step::PreReinstall {
            // The operator's part: PXE-reinstall every host that is ready for it.
            let ready: Vec<String> = summary
                .hosts
                .iter()
                .filter(|host| host.outcome == HostOutcome::Succeeded)
                .map(|host| host.host.clone())
                .collect();
            for host in &ready {
                lab.world()
                    .reinstall(host)
                    .map_err(|err| Error::Refused(format!("the simulated reinstall failed: {err}")))?;
            }
            output.demo_reinstalled(&ready);
        }
        summaries.push(summary);
    }

    let hosts = {
        let world = lab.world().lock();
        world
            .campaign_hosts()
            .filter_map(|host| {
                let key = host.jira_key.as_deref()?;
                let issue = world.jira_issue(key)?;
                let in_scc = world.scc.hosts.values().any(|uploaded| uploaded["properties"]["name"] == host.fqdn);
                // The first step that did not go through on this host says why it stopped.
                let stopped = summaries.iter().filter(|summary| summary.step != Step::Noops).find_map(|summary| {
                    let report = summary.hosts.iter().find(|report| report.host == host.fqdn)?;
                    (!report.outcome.is_success()).then(|| {
                        let reason = report.reason.as_deref().unwrap_or("");
                        format!("{} {}: {reason}", report.step, report.outcome.label())
                    })
                });
                Some(DemoHost {
                    host: host.fqdn.clone(),
                    ticket: key.to_owned(),
                    status: issue.status.clone(),
                    comments: issue.comments.len(),
                    os: format!("{} {}", host.os.id, host.os.version_id),
                    nova: format!("{}/{}", host.compute.status, host.compute.state),
                    in_scc,
                    stopped,
                })
            })
            .collect()
    };
    lab.shutdown().await;
    let report = dir.join("report.html");
    let ledger = crate::journal::Journal::open_read_only(&journal)?
        .ok_or_else(|| Error::Refused(format!("{}: the demo wrote no journal", journal.display())))?;
    let built = crate::report::from_journal(&ledger, &Default::default(), crate::clock::now())?;
    crate::report::html::write(&built, &report)?;
    Ok(DemoReport { dir, journal, report, run_log: Some(log), steps: summaries, hosts })
}
