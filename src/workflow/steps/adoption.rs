//! adoption: Kayobe deploys OpenStack on the reinstalled host (once for every
//! host of the run that gets there), Nova takes it back, its silences end,
//! and SCC learns about it.

use std::time::{Duration, Instant};

use crate::clients::alertmanager::{Matcher, Silence};
use crate::hosts::kayobe::{HostOutcome as KayobeOutcome, Kayobe, KayobeRun};
use crate::workflow::action::{Action, ActionError, BoxFuture, Change, Decision};
use crate::workflow::context::{HostContext, RecordedOutput};
use crate::workflow::Step;

use super::common::{no_compute_service, silence_matchers, JiraStatus};
use super::{JiraStatuses, StepPlan};

pub fn plan(workflow: &crate::config::Workflow) -> StepPlan {
    let transitions = &workflow.transitions;
    StepPlan {
        step: Step::Adoption,
        actions: vec![
            Box::new(JiraStatus {
                name: "jira-working",
                target: |t| &t.working_on_adoption,
                finished: |t| &t.ready_for_test,
            }),
            // Nova's node identity must be on the host before nova-compute starts.
            Box::new(super::identity::RestoreNodeIdentity),
            Box::new(KayobeDeploy),
            Box::new(super::identity::NodeIdentityKept),
            Box::new(EnableCompute),
            Box::new(ExpireSilences),
            Box::new(SccUpload),
        ],
        jira: JiraStatuses {
            on_success: Some(transitions.ready_for_test.clone()),
            on_failure: Some(transitions.adoption_failed.clone()),
        },
        services: &["ssh", "kayobe", "openstack", "alertmanager", "scc"],
    }
}

/// How long a freshly enabled nova-compute may take to report up.
const COMPUTE_UP_TIMEOUT: Duration = Duration::from_secs(300);

/// Kolla's services run on the host: Kayobe configured it and deployed them.
struct KayobeDeploy;

/// A host's result of a Kayobe batch: a summary, or the reason with the `fatal:` paragraphs.
type KayobeResult = Result<String, (String, Vec<String>)>;

/// What one Kayobe batch did: each run in order, or why it could not run.
struct KayobeBatch {
    runs: Vec<(&'static str, Result<KayobeRun, String>)>,
}

impl KayobeBatch {
    /// The host's result: a summary, or the failure with its `fatal:` paragraphs.
    fn outcome_of(&self, host: &str) -> KayobeResult {
        let mut summary = Vec::new();
        for (what, run) in &self.runs {
            let run = run.as_ref().map_err(|err| (format!("{what}: {err}"), Vec::new()))?;
            if let Some(job) = &run.reattached {
                summary.push(format!("{what}: job {job} of an interrupted run, awaited or its result read"));
            }
            if *what == "inventory" || *what == "controllers" {
                let fatals: Vec<String> = run.report.fatals.iter().map(|fatal| fatal.text.clone()).collect();
                if run.output.exit_status != 0 {
                    let reason = format!("{what} failed (exit {}, log {})", run.output.exit_status, run.log_path);
                    return Err((reason, fatals));
                }
                summary.push(format!("{what} ok"));
                continue;
            }
            match run.report.outcome(host) {
                KayobeOutcome::Succeeded(recap) => {
                    summary.push(format!("{what} ok={} changed={}", recap.ok, recap.changed));
                }
                KayobeOutcome::Failed { fatals, .. } => {
                    return Err((format!("{what} failed for this host (log {})", run.log_path), fatals));
                }
                KayobeOutcome::NotRun => {
                    return Err((format!("{what}: the host is in no PLAY RECAP (log {})", run.log_path), Vec::new()));
                }
            }
        }
        Ok(summary.join(", "))
    }
}

/// Runs Kayobe once for `hosts`: the inventory from NetBox, host configure,
/// service deploy for those configured, then the controllers' common services.
/// Each run is a detached job on the Kayobe host; one an earlier run left
/// running is awaited instead of started again.
async fn run_kayobe_batch(kayobe: Kayobe, settings: KayobeArgs, hosts: Vec<String>) -> KayobeBatch {
    let mut runs = Vec::new();
    tracing::info!(hosts = hosts.len(), "kayobe: one batch for the run");
    let inventory = kayobe.build_inventory(&settings.inventory_playbook).await.map_err(|err| err.to_string());
    let inventory_ok = matches!(&inventory, Ok(run) if run.output.success());
    runs.push(("inventory", inventory));
    if inventory_ok {
        let configure = kayobe.host_configure(&hosts, &settings.extra_vars).await.map_err(|err| err.to_string());
        let configured: Vec<String> = match &configure {
            Ok(run) => hosts
                .iter()
                .filter(|host| matches!(run.report.outcome(host), KayobeOutcome::Succeeded(_)))
                .cloned()
                .collect(),
            Err(_) => Vec::new(),
        };
        runs.push(("host configure", configure));
        if !configured.is_empty() {
            let deploy = kayobe.service_deploy(&configured).await.map_err(|err| err.to_string());
            let any_deployed = matches!(&deploy, Ok(run) if configured.iter().any(|host| matches!(run.report.outcome(host), KayobeOutcome::Succeeded(_))));
            runs.push(("service deploy", deploy));
            if any_deployed {
                let controllers =
                    kayobe.deploy_controllers(&settings.controller_tags).await.map_err(|err| err.to_string());
                runs.push(("controllers", controllers));
            }
        }
    }
    kayobe.remote().close().await;
    KayobeBatch { runs }
}

/// The last Kayobe job for this host, when a killed run started it and no
/// controllers' deploy finished after it: nova-compute may be up already,
/// but that batch is not done.
fn interrupted_batch(host: &HostContext) -> Result<Option<String>, ActionError> {
    let (Some(journal), Some(config)) = (&host.run.journal, &host.run.credentials.kayobe) else { return Ok(None) };
    let target = format!("{}@{}", config.username, config.host);
    let jobs = journal.jobs_on(&target).map_err(|err| ActionError(err.to_string()))?;
    let names_host = |command: &str| command.split([' ', ':']).any(|word| word == host.host.as_str());
    let Some(last) = jobs.iter().rposition(|(job, _)| {
        matches!(job.action.as_str(), "kayobe-host-configure" | "kayobe-service-deploy") && names_host(&job.command)
    }) else {
        return Ok(None);
    };
    let (job, run_ended) = &jobs[last];
    let finished_after =
        jobs[last..].iter().any(|(later, _)| later.action == "kayobe-controllers" && later.state == "finished");
    Ok((!run_ended && !finished_after).then(|| job.id.clone()))
}

/// The Kayobe settings a batch needs, owned (the batch outlives the host's borrow).
struct KayobeArgs {
    inventory_playbook: String,
    extra_vars: Vec<String>,
    controller_tags: String,
}

impl Action for KayobeDeploy {
    fn name(&self) -> &'static str {
        "kayobe-deploy"
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            let Some(service) = host.run.nova()?.compute_service(host.host.as_str()).await? else {
                return Ok(Decision::act("Nova has no nova-compute on the host yet", "run Kayobe for the host"));
            };
            let state = service.state.clone().unwrap_or_else(|| "unknown".into());
            let observed = format!("nova-compute is {state}");
            host.facts.compute_service = Some(service);
            // After the reinstall nova-compute is down until Kolla runs it again.
            if let Some(job) = interrupted_batch(host)? {
                return Ok(Decision::act(
                    format!("{observed}; the Kayobe batch of an interrupted run did not finish (job {job})"),
                    "finish that batch: its finished jobs are read, its running one awaited, the rest run",
                ));
            }
            if state == "up" {
                // Nothing to do here: the run's Kayobe batch need not wait for this host.
                host.run.batches.point::<(), KayobeResult>("adoption-kayobe").pass(host.host.as_str());
                Ok(Decision::done(format!("{observed}: Kolla's services run on the host")))
            } else {
                Ok(Decision::act(
                    observed,
                    "Kayobe, once for the run's batch: inventory from NetBox, host configure, service deploy, controllers' common services",
                ))
            }
        })
    }

    fn act<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Change, ActionError>> {
        Box::pin(async move {
            let run = host.run.clone();
            let kayobe = run.kayobe()?;
            let settings = &run.credentials.workflow.kayobe;
            let args = KayobeArgs {
                inventory_playbook: settings.inventory_playbook.clone(),
                extra_vars: settings.host_configure_extra_vars.clone(),
                controller_tags: settings.controller_tags.clone(),
            };
            let point = run.batches.point::<(), KayobeResult>("adoption-kayobe");
            let ledger = run.clone();
            let result = point
                .join(host.host.as_str(), (), move |batch| async move {
                    let hosts: Vec<String> = batch.into_iter().map(|(host, ())| host).collect();
                    let _turn = ledger.kayobe_turn().await;
                    let done = run_kayobe_batch(kayobe, args, hosts.clone()).await;
                    hosts.into_iter().map(|host| (host.clone(), done.outcome_of(&host))).collect()
                })
                .await
                .unwrap_or_else(|| Err(("the batch gave no result for this host".into(), Vec::new())));
            match result {
                Ok(summary) => Ok(Change(format!("Kayobe: {summary}"))),
                Err((reason, fatals)) => {
                    for (index, text) in fatals.into_iter().enumerate() {
                        let title = format!("Kayobe fatal {} for {}", index + 1, host.host);
                        host.outputs.push(RecordedOutput { title, text });
                    }
                    Err(ActionError(format!("Kayobe: {reason}")))
                }
            }
        })
    }

    /// nova-compute may take a while to report up; enabling it waits for that.
    fn verify_by_observing(&self) -> bool {
        false
    }
}

/// nova-compute is enabled again, if the campaign disabled it, and up.
struct EnableCompute;

impl Action for EnableCompute {
    fn name(&self) -> &'static str {
        "enable-compute"
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            let Some(service) = host.run.nova()?.compute_service(host.host.as_str()).await? else {
                return Ok(no_compute_service(host));
            };
            let state = service.state.clone().unwrap_or_else(|| "unknown".into());
            let reason = service.disabled_reason.clone().unwrap_or_default();
            let ours = disabled_by_this_campaign(host, &reason)?;
            let decision = match (service.status.as_str(), state.as_str()) {
                ("enabled", "up") => Decision::done("enabled and up"),
                ("enabled", _) => Decision::act(
                    format!("enabled, {state}"),
                    format!("wait (at most {} s) for nova-compute to report up", COMPUTE_UP_TIMEOUT.as_secs()),
                ),
                (_, _) if !ours => Decision::blocked(
                    format!("disabled: '{reason}'"),
                    format!(
                        "nova-compute was disabled by someone else ('{reason}'), not by this campaign: left as it is"
                    ),
                ),
                _ => Decision::Do {
                    observed: format!("disabled ('{reason}'), {state}"),
                    plan: "wait for nova-compute to report up, then enable it".into(),
                    previous: Some(format!("disabled: {reason}")),
                },
            };
            host.facts.compute_service = Some(service);
            Ok(decision)
        })
    }

    fn act<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Change, ActionError>> {
        Box::pin(async move {
            let nova = host.run.nova()?;
            let service = host.facts.compute_service.clone().expect("observed before acting");
            let started = Instant::now();
            // Kayobe has just (re)started it: it reports up within its report interval, not at once.
            let mut now = service.clone();
            while now.state.as_deref() != Some("up") {
                if started.elapsed() > COMPUTE_UP_TIMEOUT {
                    let state = now.state.as_deref().unwrap_or("unknown");
                    return Err(ActionError(format!("nova-compute still {state} after {COMPUTE_UP_TIMEOUT:?}")));
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
                now = nova
                    .compute_service(host.host.as_str())
                    .await?
                    .ok_or_else(|| ActionError("the nova-compute service of the host is gone from Nova".into()))?;
            }
            let waited = started.elapsed().as_secs_f64();
            if now.status == "enabled" {
                return Ok(Change(format!("nova-compute up after {waited:.0} s")));
            }
            nova.enable_service(&now).await?;
            Ok(Change(format!("nova-compute enabled, up after {waited:.0} s")))
        })
    }
}

/// Whether this campaign disabled the service with `reason`: today's
/// reason, or the one any operator's pre-drain set (the journal says).
fn disabled_by_this_campaign(host: &HostContext, reason: &str) -> Result<bool, ActionError> {
    if reason == host.run.disable_reason() {
        return Ok(true);
    }
    let Some(journal) = &host.run.journal else { return Ok(false) };
    let changes = journal
        .action_changes(host.host.as_str(), "pre-drain", "disable-compute")
        .map_err(|err| ActionError(format!("cannot read the journal: {err}")))?;
    Ok(!reason.is_empty() && changes.iter().any(|change| change.contains(&format!("'{reason}'"))))
}

/// The silences this tool made for the host are expired; others are left alone.
struct ExpireSilences;

impl ExpireSilences {
    /// Active silences on this host's labels (one label each, as pre-reinstall
    /// makes them, or all labels together), split into ours and others'.
    async fn active(host: &HostContext) -> Result<(Vec<Silence>, Vec<Silence>), ActionError> {
        let mut shapes = silence_matchers(host);
        shapes.push(shapes.iter().flatten().cloned().collect());
        // Silences an earlier version made: each label equal to the FQDN.
        let fqdn = host.host.as_str();
        let names: Vec<String> = shapes.iter().flatten().map(|m| m.name.clone()).collect();
        for name in names {
            let legacy = vec![Matcher::equal(&name, fqdn)];
            if !shapes.contains(&legacy) {
                shapes.push(legacy);
            }
        }
        let alertmanager = host.run.alertmanager()?;
        let mut found: Vec<Silence> = Vec::new();
        for matchers in shapes {
            for silence in alertmanager.active_silences_with(&matchers).await? {
                if !found.iter().any(|seen| seen.id == silence.id) {
                    found.push(silence);
                }
            }
        }
        let created_by = host.run.silence_author();
        Ok(found.into_iter().partition(|silence| silence.created_by == created_by))
    }
}

impl Action for ExpireSilences {
    fn name(&self) -> &'static str {
        "expire-silences"
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            let created_by = host.run.silence_author();
            let (ours, others) = Self::active(host).await?;
            let others = if others.is_empty() {
                String::new()
            } else {
                let ids: Vec<&str> = others.iter().map(|silence| silence.id.as_str()).collect();
                format!("; left alone, made by others: {}", ids.join(", "))
            };
            if ours.is_empty() {
                return Ok(Decision::done(format!("no active silence by {created_by}{others}")));
            }
            let ids: Vec<&str> = ours.iter().map(|silence| silence.id.as_str()).collect();
            Ok(Decision::Do {
                observed: format!("{} active by {created_by}{others}", ours.len()),
                plan: format!("expire {}", ids.join(", ")),
                previous: Some(ids.join(", ")),
            })
        })
    }

    fn act<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Change, ActionError>> {
        Box::pin(async move {
            let (ours, _) = Self::active(host).await?;
            let alertmanager = host.run.alertmanager()?;
            let mut expired = Vec::new();
            for silence in ours {
                alertmanager.expire(&silence.id).await?;
                expired.push(silence.id);
            }
            Ok(Change(format!("expired {}", expired.join(", "))))
        })
    }
}

/// SCC has the host as it is now (libvirt's view over SSH); the receipt is
/// kept in the journal and on the ticket, where a re-run finds it.
struct SccUpload;

/// The mark of an upload on the ticket: the same details are not sent twice.
fn scc_mark(digest: &str) -> String {
    format!("SCC digest {digest}")
}

impl SccUpload {
    async fn details(host: &HostContext) -> Result<crate::clients::scc::VirtualizationHost, ActionError> {
        let details = crate::scc::collect_host(host.run.shell()?.clone(), host.host.as_str())
            .await
            .map_err(|err| ActionError(format!("cannot read the host's details through libvirt: {err}")))?;
        let group = crate::scc::group_for(None, &host.run.credentials, host.host.as_str());
        let topology = host.run.credentials.scc.as_ref().map(|scc| scc.topology).unwrap_or_default();
        Ok(crate::scc::virtualization_host(host.host.as_str(), &group, &details, topology))
    }
}

impl Action for SccUpload {
    fn name(&self) -> &'static str {
        "scc-upload"
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            let details = Self::details(host).await?;
            let digest = crate::scc::payload::digest(&details);
            let observed = format!("group {}, {} VMs, details {digest}", details.group_name, details.systems.len());
            let mark = scc_mark(&digest);
            let comments = host.run.jira()?.comments(host.key.as_str()).await?;
            if comments.iter().any(|comment| comment.contains(&mark)) {
                return Ok(Decision::done(format!("{observed}: already uploaded (the ticket has the receipt)")));
            }
            Ok(Decision::act(observed, format!("upload the host to SCC in group {}", details.group_name)))
        })
    }

    fn act<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Change, ActionError>> {
        Box::pin(async move {
            let details = Self::details(host).await?;
            let digest = crate::scc::payload::digest(&details);
            let group = details.group_name.clone();
            let receipt = crate::scc::upload(host.run.scc()?, &group, &[details]).await?;
            Ok(Change(format!("{}; {}", receipt.summary(), scc_mark(&digest))))
        })
    }

    /// SCC has no way to read an upload back; the receipt is the proof.
    fn verify_by_observing(&self) -> bool {
        false
    }
}
