//! drain: move every VM off the hypervisor, safely and visibly. The census
//! and the capacity check come first; the migrations run under the per-host
//! and run-wide limits; the host is then checked empty from every source.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::clients::nova::Microversion;
use crate::clients::placement::Resources;
use crate::journal::ActionOutcome;
use crate::workflow::action::{Action, ActionError, BoxFuture, Change, Decision};
use crate::workflow::context::HostContext;
use crate::workflow::drain::migrate::migrate_all;
use crate::workflow::drain::{self, describe, flavor_resources, in_progress, Census, Room};
use crate::workflow::report::{VmMove, VmOutcome};
use crate::workflow::Step;

use super::common::{hypervisor, no_compute_service};
use super::{JiraStatuses, StepPlan};

pub fn plan() -> StepPlan {
    StepPlan {
        step: Step::Drain,
        actions: vec![
            Box::new(ComputeDisabled),
            Box::new(TakeCensus),
            Box::new(Capacity),
            Box::new(Migrate),
            Box::new(VerifyEmpty),
        ],
        jira: JiraStatuses::default(),
        services: &["openstack", "ssh"],
    }
}

/// Nova's servers on the host, less those whose libvirt domain has host devices.
async fn census(host: &HostContext) -> Result<Census, ActionError> {
    let mut census = Census::take(host.run.nova()?, host.host.as_str(), &host.run.credentials.workflow.drain).await?;
    let domains = crate::hosts::vm::Domains::new(host.run.shell()?.clone(), host.host.as_str());
    census.hold_back_host_devices(&domains).await?;
    Ok(census)
}

/// Pre-drain is done: no new VM can land on the host while it drains.
struct ComputeDisabled;

impl Action for ComputeDisabled {
    fn name(&self) -> &'static str {
        "compute-disabled"
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            let Some(service) = host.run.nova()?.compute_service(host.host.as_str()).await? else {
                return Ok(no_compute_service(host));
            };
            let observed = format!(
                "nova-compute {} ({}), zone {}",
                service.status,
                service.disabled_reason.as_deref().unwrap_or("no reason"),
                service.zone.as_deref().unwrap_or("?")
            );
            let disabled = service.status == "disabled";
            host.facts.compute_service = Some(service);
            if disabled {
                Ok(Decision::passed(observed))
            } else {
                Ok(Decision::blocked(observed, "nova-compute is enabled: run pre-drain first, or new VMs land here"))
            }
        })
    }
}

/// Every server on the host, and what will happen to it.
struct TakeCensus;

impl Action for TakeCensus {
    fn name(&self) -> &'static str {
        "census"
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            let census = census(host).await?;
            host.facts.vm_moves = census.left_behind(host.host.as_str());
            // Other hosts must not start new migrations as if these were not running.
            host.facts.under_way = None;
            let under_way = census.moves.iter().filter(|m| m.resume.is_some()).count();
            if under_way > 0 && !host.run.dry_run {
                host.facts.under_way = Some(Arc::new(host.run.migration_slots.expect_under_way(under_way)));
            }
            let observed = census.summary();
            host.facts.census = Some(census);
            Ok(Decision::Recorded { observed })
        })
    }
}

/// The hypervisors that may receive the VMs have room for them.
struct Capacity;

impl Action for Capacity {
    fn name(&self) -> &'static str {
        "capacity"
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            // The census action's, taken just before.
            let census = match host.facts.census.clone() {
                Some(census) => census,
                None => census(host).await?,
            };
            // Migrations under way already hold their room at the destination.
            let to_move: Vec<_> = census.moves.iter().filter(|m| m.resume.is_none()).map(|m| &m.server).collect();
            if to_move.is_empty() {
                return Ok(Decision::done("nothing to move"));
            }
            let nova = host.run.nova()?;
            let settings = &host.run.credentials.workflow.drain;
            let hypervisors = nova.hypervisors().await?;
            let nova_host = nova.compute_host(host.host.as_str()).await?.service_host;
            let aggregates = nova.aggregates().await?;
            let zone = host.facts.compute_service.as_ref().and_then(|service| service.zone.clone());
            // The run's hosts by every name Nova may give them (a line of the
            // hypervisors file may name them otherwise).
            let mut run_hosts: BTreeSet<String> = BTreeSet::new();
            for fqdn in &host.run.run_hosts {
                let names = nova.compute_host(fqdn.as_str()).await?;
                run_hosts.insert(fqdn.to_string());
                run_hosts.insert(names.service_host);
                run_hosts.extend(names.hypervisor_hostname);
            }
            let targets = drain::destinations(
                &nova_host,
                zone.as_deref(),
                settings.capacity_scope,
                &hypervisors,
                &aggregates,
                &run_hosts,
            );
            // Placement's inventories (reserved, allocation_ratio, max_unit) and
            // usages: what the scheduler will count, not Nova's raw statistics.
            let placement = host.run.placement().await?;
            let mut rooms = Vec::with_capacity(targets.len());
            for hv in &targets {
                // From 2.53 the hypervisor id is the compute node's UUID, its provider's UUID.
                let provider = (nova.version().used >= Microversion(2, 53)).then_some(hv.id.as_str());
                let room = placement.room(provider, &hv.hypervisor_hostname).await?;
                rooms.push(Room { host: hv.hypervisor_hostname.clone(), room });
            }
            // What each VM holds in Placement (the scheduler asks the same of its
            // destination); its flavor when Placement has no allocation of it.
            let mut needs: Vec<drain::Need> = Vec::with_capacity(to_move.len());
            for server in &to_move {
                let held = placement.allocations(&server.id).await?;
                let need = if held.values().any(|amount| *amount > 0) { Some(held) } else { flavor_resources(server) };
                needs.push((*server, need));
            }
            let mut need_total = Resources::new();
            for resources in needs.iter().filter_map(|(_, need)| need.as_ref()) {
                for (class, amount) in resources {
                    *need_total.entry(class.clone()).or_default() += amount;
                }
            }
            let mut free_total = Resources::new();
            for room in &rooms {
                for (class, free) in &room.room.free {
                    *free_total.entry(class.clone()).or_default() += free.max(0.0).floor() as u64;
                }
            }
            let free_total: Resources =
                free_total.into_iter().filter(|(class, _)| need_total.contains_key(class)).collect();
            let scope = match settings.capacity_scope {
                crate::config::workflow::CapacityScope::AvailabilityZone => {
                    format!("availability zone {}", zone.as_deref().unwrap_or("?"))
                }
                crate::config::workflow::CapacityScope::Aggregate => "the host's aggregates".to_owned(),
            };
            let mut observed = format!(
                "{} VMs need {}; {} enabled, up hypervisors of {scope} (not drained in this run) have {} free in Placement",
                to_move.len(),
                describe(&need_total),
                rooms.len(),
                describe(&free_total),
            );
            let unknown: Vec<&str> =
                needs.iter().filter(|(_, need)| need.is_none()).map(|(server, _)| server.name.as_str()).collect();
            if !unknown.is_empty() {
                observed.push_str(&format!(
                    " (the size of {} VMs is unknown: no allocation in Placement and no flavor size; they block: {})",
                    unknown.len(),
                    unknown.join(", ")
                ));
            }
            let shared = host.run.leases.as_deref();
            let check = host
                .run
                .capacity
                .check(host.host.as_str(), &rooms, &needs, shared)
                .map_err(|err| ActionError(format!("the capacity ledger: {err}")))?;
            if check.promised_vms > 0 {
                observed.push_str(&format!(", before {} VMs of other hosts of this run", check.promised_vms));
            }
            if check.reserved_vms > 0 {
                observed.push_str(&format!(
                    ", before {} VMs of other runs whose room is reserved ({})",
                    check.reserved_vms,
                    check.reserved_by.join("; ")
                ));
            }
            let unplaced = check.unplaced;
            if unplaced.is_empty() {
                // Recorded, so the figures reach the ticket.
                Ok(Decision::Recorded { observed })
            } else {
                let names: Vec<String> = unplaced
                    .iter()
                    .map(|server| {
                        let need = needs.iter().find(|(s, _)| s.id == server.id).and_then(|(_, need)| need.as_ref());
                        let size = need.map(describe).unwrap_or_else(|| "size unknown".to_owned());
                        format!("{} ({size})", server.name)
                    })
                    .collect();
                let reason = format!("not enough room: {observed}; no room for {}", names.join(", "));
                Ok(Decision::blocked(observed, reason))
            }
        })
    }
}

/// Every movable VM moved (or a migration under way awaited).
struct Migrate;

impl Action for Migrate {
    fn name(&self) -> &'static str {
        "migrate"
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            let census = census(host).await?;
            if census.moves.is_empty() {
                host.run.capacity.release(host.host.as_str(), host.run.leases.as_deref());
                let left = census.left.len();
                return Ok(Decision::done(format!("no VM left to move ({left} left behind)")));
            }
            let decision = Decision::act(census.summary(), census.plan());
            host.facts.census = Some(census);
            Ok(decision)
        })
    }

    fn act<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Change, ActionError>> {
        Box::pin(async move {
            // What observe found just before; migrations under way are awaited, not restarted.
            let census = match host.facts.census.take() {
                Some(census) => census,
                None => census(host).await?,
            };
            let under_way = host.facts.under_way.take();
            let rows = migrate_all(host.run.clone(), host.host.to_string(), census.moves, under_way).await;
            // Nova's figures now show where the VMs went.
            host.run.capacity.release(host.host.as_str(), host.run.leases.as_deref());
            let moved = rows.iter().filter(|row| row.outcome == VmOutcome::Moved).count();
            let not_moved: Vec<String> =
                rows.iter().filter(|row| row.outcome != VmOutcome::Moved).map(VmMove::line).collect();
            let total = rows.len();
            journal_vm_migrations(host, &rows);
            host.facts.vm_moves.extend(rows);
            if not_moved.is_empty() {
                Ok(Change(format!("moved {moved} VMs")))
            } else {
                Err(ActionError(format!("moved {moved} of {total} VMs; not moved: {}", not_moved.join("; "))))
            }
        })
    }
}

/// Journals each VM's migration (a sub-command of `migrate`) for the reports:
/// how long it took and how it ended. A failure to journal is logged; the VMs
/// have moved either way.
fn journal_vm_migrations(host: &HostContext, rows: &[VmMove]) {
    let journal = host.run.journal.as_deref().filter(|_| !host.run.dry_run);
    let (Some(journal), Some(action_id)) = (journal, host.attempt.action_id) else { return };
    for row in rows {
        let record = crate::report::holdups::VmMigrationRecord {
            vm: row.id.clone(),
            name: row.name.clone(),
            kind: row.kind.clone(),
            outcome: row.outcome.label().to_owned(),
            duration_ms: row.duration.as_millis() as u64,
        };
        let detail = serde_json::to_string(&record).unwrap_or_default();
        let outcome = if row.outcome == VmOutcome::Failed { ActionOutcome::Failed } else { ActionOutcome::Done };
        let written = journal
            .sub_command_intent(action_id, crate::report::VM_MIGRATION)
            .and_then(|id| journal.sub_command_result(id, outcome, &crate::untrusted::visible(&detail)));
        if let Err(err) = written {
            tracing::error!(host = %host.host, vm = %row.name, %err, "could not journal the VM's migration");
        }
    }
}

/// Nova, its migrations and libvirt all agree the host is empty.
struct VerifyEmpty;

impl Action for VerifyEmpty {
    fn name(&self) -> &'static str {
        "verify-empty"
    }

    fn observe<'a>(&'a self, host: &'a mut HostContext) -> BoxFuture<'a, Result<Decision, ActionError>> {
        Box::pin(async move {
            let name = host.host.to_string();
            let nova = host.run.nova()?;
            let servers = nova.servers_on_host(&name).await?;
            let moving: Vec<_> = nova.migrations(&name, None).await?.into_iter().filter(in_progress).collect();
            let domains = hypervisor(host)?.virsh_list().await.map_err(|err| ActionError(err.to_string()))?;
            host.record_output("libvirt domains after the drain", &domains.output);
            let observed = format!(
                "Nova: {} servers on the host, {} migrations in progress to or from it; libvirt: {} domains",
                servers.len(),
                moving.len(),
                domains.value.len()
            );
            if servers.is_empty() && moving.is_empty() && domains.value.is_empty() {
                return Ok(Decision::passed(observed));
            }
            if host.run.dry_run {
                let staying: Vec<String> = host
                    .facts
                    .vm_moves
                    .iter()
                    .map(|vm| format!("{} ({})", vm.name, vm.reason.as_deref().unwrap_or("left behind")))
                    .collect();
                if !staying.is_empty() {
                    let reason = format!("the host will not be empty: {}", staying.join("; "));
                    return Ok(Decision::blocked(observed, reason));
                }
                return Ok(Decision::act(observed, "check that Nova and libvirt show the host empty"));
            }
            let mut problems = Vec::new();
            if !servers.is_empty() {
                let listed: Vec<String> =
                    servers.iter().map(|s| format!("{} ({}, {})", s.name, s.id, s.status)).collect();
                problems.push(format!("Nova still lists {}", listed.join(", ")));
            }
            for server in &servers {
                if !host.facts.vm_moves.iter().any(|row| row.id == server.id && row.outcome != VmOutcome::Moved) {
                    host.facts.vm_moves.push(VmMove {
                        id: server.id.clone(),
                        name: server.name.clone(),
                        project: drain::project(server),
                        kind: String::new(),
                        outcome: VmOutcome::Blocked,
                        from: name.clone(),
                        to: None,
                        reason: Some(format!("still on the host ({})", server.status)),
                        duration: Default::default(),
                        guest_check: None,
                    });
                }
            }
            if !moving.is_empty() {
                let listed: Vec<String> =
                    moving.iter().map(|m| format!("{} of {} ({})", m.id, m.instance_uuid, m.status)).collect();
                problems.push(format!("migrations in progress: {}", listed.join(", ")));
            }
            if !domains.value.is_empty() {
                let listed: Vec<String> = domains.value.iter().map(|d| format!("{} ({})", d.name, d.state)).collect();
                problems.push(format!("libvirt still has {}", listed.join(", ")));
            }
            Ok(Decision::blocked(observed, format!("the host is not empty: {}", problems.join("; "))))
        })
    }
}
