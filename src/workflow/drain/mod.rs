//! The drain's working parts: the census of a host's servers, the capacity
//! check, and the migration scheduler ([`migrate`]).

pub mod migrate;

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::clients::nova::{Aggregate, Hypervisor, Migration, NovaClient, Server};
use crate::clients::placement::{ProviderRoom, Resources};
use crate::config::workflow::{CapacityScope, DrainSettings};

use super::action::ActionError;
use super::leases::RunLeases;
use super::report::{VmMove, VmOutcome};
use crate::journal::Reservation;

/// Migration statuses that mean Nova is still working on it; `finished` is a
/// cold migration waiting for its confirmation.
pub const IN_PROGRESS: [&str; 9] =
    ["accepted", "queued", "preparing", "running", "post-migrating", "pre-migrating", "migrating", "finished", "new"];

pub fn in_progress(migration: &Migration) -> bool {
    IN_PROGRESS.contains(&migration.status.as_str())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MoveKind {
    Live,
    Cold,
}

impl MoveKind {
    pub fn label(self) -> &'static str {
        match self {
            MoveKind::Live => "live",
            MoveKind::Cold => "cold",
        }
    }
}

/// A VM that must leave the host.
#[derive(Clone, Debug)]
pub struct PlannedMove {
    pub server: Server,
    pub kind: MoveKind,
    /// A migration already under way (from an interrupted run): awaited, not restarted.
    pub resume: Option<Migration>,
    /// The server's migration records at the census: the one a new migration
    /// creates is the one not among them.
    pub known_migrations: HashSet<String>,
    /// The host as Nova names it (`source_compute`, `OS-EXT-SRV-ATTR:host`).
    pub nova_host: String,
}

/// A VM that stays: not movable as it is, or skipped by the settings.
#[derive(Clone, Debug)]
pub struct LeftBehind {
    pub server: Server,
    pub reason: String,
}

/// What is on the host and what to do with each server.
#[derive(Clone, Debug, Default)]
pub struct Census {
    pub moves: Vec<PlannedMove>,
    pub left: Vec<LeftBehind>,
}

/// vCPUs and RAM (MB) of a server's flavor (embedded from microversion 2.47).
pub fn size(server: &Server) -> (u64, u64) {
    let number = |key: &str| server.flavor.get(key).and_then(serde_json::Value::as_u64).unwrap_or(0);
    (number("vcpus"), number("ram"))
}

/// What a server asks of Placement, by its embedded flavor (microversion
/// 2.47+): VCPU, or PCPU for `hw:cpu_policy=dedicated`; MEMORY_MB; DISK_GB
/// = root + ephemeral + swap rounded up to GiB (nova `scheduler/utils.py`
/// `resources_from_flavor`). `None` when the flavor's size is not there.
pub fn flavor_resources(server: &Server) -> Option<Resources> {
    let number = |key: &str| server.flavor.get(key).and_then(serde_json::Value::as_u64);
    let (vcpus, ram) = (number("vcpus")?, number("ram")?);
    let swap_gb = number("swap").unwrap_or(0).div_ceil(1024);
    let disk = number("disk").unwrap_or(0) + number("ephemeral").unwrap_or(0) + swap_gb;
    let dedicated = server.flavor["extra_specs"]["hw:cpu_policy"].as_str() == Some("dedicated");
    let cpu_class = if dedicated { "PCPU" } else { "VCPU" };
    Some(Resources::from([(cpu_class.to_owned(), vcpus), ("MEMORY_MB".to_owned(), ram), ("DISK_GB".to_owned(), disk)]))
}

/// `2 VCPU, 4096 MEMORY_MB, 20 DISK_GB`.
pub fn describe(resources: &Resources) -> String {
    let parts: Vec<String> = resources
        .iter()
        .filter(|(_, amount)| **amount > 0)
        .map(|(class, amount)| format!("{amount} {class}"))
        .collect();
    if parts.is_empty() {
        "nothing".to_owned()
    } else {
        parts.join(", ")
    }
}

pub fn project(server: &Server) -> String {
    server.tenant_id.clone().unwrap_or_else(|| "?".into())
}

impl Census {
    /// Reads the host's servers (all projects) and its migrations in progress.
    pub async fn take(nova: &NovaClient, host: &str, settings: &DrainSettings) -> Result<Census, ActionError> {
        let servers = nova.servers_on_host(host).await?;
        let migrations = nova.migrations(host, None).await?;
        let nova_host = nova.compute_host(host).await?.service_host;
        let mut census = Census::default();
        let mut resumed = HashSet::new();
        // Newest first: the first record of a server is its latest migration.
        for migration in migrations.iter().filter(|m| m.source_compute.as_deref() == Some(&nova_host) && in_progress(m))
        {
            if !resumed.insert(migration.instance_uuid.clone()) {
                continue;
            }
            let server = match servers.iter().find(|server| server.id == migration.instance_uuid) {
                Some(server) => server.clone(),
                // A cold migration waiting for confirmation has already moved the server.
                None => nova.server(&migration.instance_uuid).await?,
            };
            let kind = if migration.migration_type.as_deref() == Some("live-migration") {
                MoveKind::Live
            } else {
                MoveKind::Cold
            };
            census.moves.push(PlannedMove {
                server,
                kind,
                resume: Some(migration.clone()),
                known_migrations: HashSet::new(),
                nova_host: nova_host.clone(),
            });
        }
        for server in servers.into_iter().filter(|server| !resumed.contains(&server.id)) {
            let skipped = settings.skip_servers.iter().any(|skip| *skip == server.name || *skip == server.id);
            let status = server.status.as_str();
            let kind = match (&server.task_state, status) {
                _ if skipped => Err("skipped by the settings (workflow.drain.skip_servers)".to_owned()),
                (Some(task), _) => Err(format!("a task is in progress: {task} (status {status})")),
                (None, "ACTIVE") => Ok(MoveKind::Live),
                (None, "SHUTOFF") => Ok(MoveKind::Cold),
                // Nova moves a paused server only live (it stays paused), and a suspended one not at all.
                (None, "PAUSED") if settings.allow_cold_migrate_paused => Ok(MoveKind::Live),
                (None, "PAUSED") => Err("status PAUSED (workflow.drain.allow_cold_migrate_paused is off)".to_owned()),
                (None, "SUSPENDED") => {
                    Err("status SUSPENDED: Nova migrates it neither live nor cold; resume or stop it first".to_owned())
                }
                (None, _) => Err(format!("status {status} cannot be migrated")),
            };
            match kind {
                Ok(kind) => {
                    let known_migrations =
                        migrations.iter().filter(|m| m.instance_uuid == server.id).map(|m| m.id.clone()).collect();
                    let nova_host = nova_host.clone();
                    census.moves.push(PlannedMove { server, kind, resume: None, known_migrations, nova_host })
                }
                Err(reason) => census.left.push(LeftBehind { server, reason }),
            }
        }
        Ok(census)
    }

    /// Holds back every VM to move whose domain has host devices (PCI
    /// passthrough, vGPU, SR-IOV): Nova cannot live-migrate them, and a cold
    /// migration needs the same device free elsewhere, so each is a blocker
    /// named with the reason read from its libvirt XML. A migration already
    /// under way is awaited, not second-guessed.
    pub async fn hold_back_host_devices(&mut self, domains: &crate::hosts::vm::Domains) -> Result<(), ActionError> {
        let mut kept = Vec::new();
        for planned in std::mem::take(&mut self.moves) {
            if planned.resume.is_some() {
                kept.push(planned);
                continue;
            }
            let xml = match domains.dumpxml(&planned.server.id).await {
                Ok(xml) => xml,
                // Nova's server has no domain here (yet): nothing in it to hold it back.
                Err(crate::hosts::vm::VmError::UnknownDomain { .. }) => {
                    kept.push(planned);
                    continue;
                }
                Err(err) => return Err(ActionError(err.to_string())),
            };
            if xml.host_devices.is_empty() {
                kept.push(planned);
                continue;
            }
            let devices: Vec<String> = xml.host_devices.iter().map(ToString::to_string).collect();
            let migration = xml.migratability(planned.kind == MoveKind::Live);
            self.left.push(LeftBehind {
                server: planned.server,
                reason: format!(
                    "host devices ({}): migration {} — {}",
                    devices.join(", "),
                    migration.label(),
                    migration.reasons().join("; ")
                ),
            });
        }
        self.moves = kept;
        Ok(())
    }

    /// `7 servers: 4 live, 1 cold, 1 in progress (awaited), 1 left behind (vm-3 …: ERROR)`.
    pub fn summary(&self) -> String {
        let count = |kind: MoveKind| self.moves.iter().filter(|m| m.resume.is_none() && m.kind == kind).count();
        let resumed = self.moves.iter().filter(|m| m.resume.is_some()).count();
        let mut text = format!(
            "{} servers: {} to live-migrate, {} to cold-migrate, {resumed} migrations in progress to await, {} left behind",
            self.moves.len() + self.left.len(),
            count(MoveKind::Live),
            count(MoveKind::Cold),
            self.left.len()
        );
        if !self.left.is_empty() {
            let left: Vec<String> = self
                .left
                .iter()
                .map(|left| {
                    format!(
                        "{} ({}, project {}): {}",
                        left.server.name,
                        left.server.id,
                        project(&left.server),
                        left.reason
                    )
                })
                .collect();
            text.push_str(&format!(" — {}", left.join("; ")));
        }
        text
    }

    /// The plan of migrations, one per VM.
    pub fn plan(&self) -> String {
        let lines: Vec<String> = self
            .moves
            .iter()
            .map(|planned| {
                let (vcpus, ram) = size(&planned.server);
                let what = match &planned.resume {
                    Some(migration) => {
                        format!("await {} migration {} ({})", planned.kind.label(), migration.id, migration.status)
                    }
                    None => format!("{}-migrate", planned.kind.label()),
                };
                format!("{what} {} ({}, {vcpus} vCPU, {ram} MB)", planned.server.name, planned.server.id)
            })
            .collect();
        lines.join("; ")
    }

    /// The table rows of the VMs that stay.
    pub fn left_behind(&self, host: &str) -> Vec<VmMove> {
        self.left
            .iter()
            .map(|left| VmMove {
                id: left.server.id.clone(),
                name: left.server.name.clone(),
                project: project(&left.server),
                kind: String::new(),
                outcome: VmOutcome::Blocked,
                from: host.to_owned(),
                to: None,
                reason: Some(left.reason.clone()),
                duration: Duration::ZERO,
                guest_check: None,
            })
            .collect()
    }
}

/// Room on one destination hypervisor, as Placement counts it.
#[derive(Clone, Debug)]
pub struct Room {
    pub host: String,
    pub room: ProviderRoom,
}

/// The hypervisors that may receive the VMs: enabled, up, in the scope of
/// the host, and not drained in this run.
pub fn destinations<'a>(
    host: &str,
    zone: Option<&str>,
    scope: CapacityScope,
    hypervisors: &'a [Hypervisor],
    aggregates: &[Aggregate],
    run_hosts: &BTreeSet<String>,
) -> Vec<&'a Hypervisor> {
    let in_scope: Option<BTreeSet<&str>> = match scope {
        CapacityScope::Aggregate => Some(
            aggregates
                .iter()
                .filter(|aggregate| aggregate.hosts.iter().any(|member| member == host))
                .flat_map(|aggregate| aggregate.hosts.iter().map(String::as_str))
                .collect(),
        ),
        CapacityScope::AvailabilityZone => match zone {
            Some(zone) if aggregates.iter().any(|a| a.availability_zone.as_deref() == Some(zone)) => Some(
                aggregates
                    .iter()
                    .filter(|aggregate| aggregate.availability_zone.as_deref() == Some(zone))
                    .flat_map(|aggregate| aggregate.hosts.iter().map(String::as_str))
                    .collect(),
            ),
            // The default zone: every host outside a zone's aggregate.
            _ => {
                let zoned: BTreeSet<&str> = aggregates
                    .iter()
                    .filter(|aggregate| aggregate.availability_zone.is_some())
                    .flat_map(|aggregate| aggregate.hosts.iter().map(String::as_str))
                    .collect();
                Some(hypervisors.iter().map(service_host).filter(|name| !zoned.contains(name)).collect())
            }
        },
    };
    hypervisors
        .iter()
        .filter(|hv| hv.status.as_deref() == Some("enabled") && hv.state.as_deref() == Some("up"))
        .filter(|hv| {
            let name = service_host(hv);
            name != host && !is_run_host(run_hosts, hv) && in_scope.as_ref().is_none_or(|scope| scope.contains(name))
        })
        .collect()
}

/// Whether a hypervisor is one of this run's hosts (FQDNs), whether Nova
/// names its service by the FQDN or the short name.
fn is_run_host(run_hosts: &BTreeSet<String>, hv: &Hypervisor) -> bool {
    let name = service_host(hv);
    run_hosts.contains(&hv.hypervisor_hostname)
        || run_hosts.contains(name)
        || run_hosts.iter().any(|fqdn| is_named(fqdn, name))
}

/// Whether Nova's compute host name `name` names the host `fqdn` (itself or its short name).
pub fn is_named(fqdn: &str, name: &str) -> bool {
    fqdn == name || fqdn.split('.').next() == Some(name)
}

/// The compute host name of a hypervisor (what servers and services call it).
fn service_host(hv: &Hypervisor) -> &str {
    hv.service.as_ref().map(|service| service.host.as_str()).unwrap_or(&hv.hypervisor_hostname)
}

/// A VM to place, with what it asks of Placement (`None`: unknown, so it
/// cannot be placed: counting it as nothing would hide a shortage).
pub type Need<'a> = (&'a Server, Option<Resources>);

/// Places the VMs, largest first, on the destinations' free room; the VMs
/// that fit nowhere. Total room is not enough: one VM must fit on one host.
pub fn unplaced<'a>(moves: &[Need<'a>], rooms: &[Room]) -> Vec<&'a Server> {
    unplaced_after(&[], moves, rooms)
}

/// The order VMs are placed in: largest first (memory, then CPUs).
fn largest_first(resources: &Resources) -> std::cmp::Reverse<(u64, u64)> {
    let amount = |class: &str| resources.get(class).copied().unwrap_or(0);
    std::cmp::Reverse((amount("MEMORY_MB"), amount("VCPU") + amount("PCPU")))
}

/// As [`unplaced`], once the room promised to other hosts is taken.
fn unplaced_after<'a>(promised: &[Resources], moves: &[Need<'a>], rooms: &[Room]) -> Vec<&'a Server> {
    let mut rooms: Vec<Room> = rooms.to_vec();
    let mut promised = promised.to_vec();
    promised.sort_by_key(largest_first);
    for need in promised {
        if let Some(room) = rooms.iter_mut().find(|room| room.room.fits(&need)) {
            room.room.take(&need);
        }
    }
    let mut unplaced: Vec<&Server> =
        moves.iter().filter(|(_, need)| need.is_none()).map(|(server, _)| *server).collect();
    let mut known: Vec<(&Server, &Resources)> =
        moves.iter().filter_map(|(server, need)| Some((*server, need.as_ref()?))).collect();
    known.sort_by_key(|(_, need)| largest_first(need));
    for (server, need) in known {
        match rooms.iter_mut().find(|room| room.room.fits(need)) {
            Some(room) => room.room.take(need),
            None => unplaced.push(server),
        }
    }
    unplaced
}

/// Room promised to the hosts of a run whose capacity check passed, so that
/// hosts draining at once do not all count the same free room. A host's
/// promise ends when its migrations do (Nova's figures then show them).
#[derive(Debug, Default)]
pub struct CapacityLedger {
    promised: Mutex<Vec<Promise>>,
}

#[derive(Debug)]
struct Promise {
    host: String,
    /// The destinations the promise is on (hosts with other destinations do not share it).
    scope: Vec<String>,
    needs: Vec<Resources>,
}

/// What the capacity check found, with the room promised to other hosts.
pub struct CapacityCheck<'a> {
    pub unplaced: Vec<&'a Server>,
    /// VMs of other hosts of the run that the same destinations must take first.
    pub promised_vms: usize,
    /// VMs of other runs' hosts whose room is reserved in the ledger on
    /// these destinations, and who holds each reservation.
    pub reserved_vms: usize,
    pub reserved_by: Vec<String>,
}

impl CapacityLedger {
    /// Places `servers` after what was promised to the other hosts on the same
    /// destinations, and (with `shared`, the run's hold on the ledger) after
    /// the room other runs reserved on any of them; when they all fit,
    /// promises their room to `host`. Other runs' reservations are read and
    /// this one written in one write transaction, so two runs cannot both
    /// count the same free room.
    pub fn check<'a>(
        &self,
        host: &str,
        rooms: &[Room],
        moves: &[Need<'a>],
        shared: Option<&RunLeases>,
    ) -> crate::error::Result<CapacityCheck<'a>> {
        let mut scope: Vec<String> = rooms.iter().map(|room| room.host.clone()).collect();
        scope.sort();
        let mut promised = self.promised.lock().unwrap_or_else(|poison| poison.into_inner());
        promised.retain(|promise| promise.host != host);
        let ours: Vec<Resources> =
            promised.iter().filter(|p| p.scope == scope).flat_map(|p| p.needs.iter().cloned()).collect();
        let needs: Vec<Resources> = moves.iter().filter_map(|(_, need)| need.clone()).collect();
        let place = |theirs: &[Reservation]| {
            let mut before = ours.clone();
            before.extend(theirs.iter().flat_map(|reservation| reservation.needs.iter().cloned()));
            let unplaced = unplaced_after(&before, moves, rooms);
            let reserve = unplaced.is_empty().then(|| needs.clone());
            let reserved_vms = theirs.iter().map(|reservation| reservation.needs.len()).sum::<usize>();
            let reserved_by = theirs.iter().map(Reservation::held_reason).collect::<Vec<_>>();
            ((unplaced, reserved_vms, reserved_by), reserve)
        };
        let (unplaced, reserved_vms, reserved_by) = match shared {
            Some(leases) => leases.reserve_room(host, &scope, place)?,
            None => place(&[]).0,
        };
        if unplaced.is_empty() {
            promised.push(Promise { host: host.to_owned(), scope, needs });
        }
        Ok(CapacityCheck { unplaced, promised_vms: ours.len(), reserved_vms, reserved_by })
    }

    /// The host's drain ended: its promise, and its reservation in the ledger, go.
    pub fn release(&self, host: &str, shared: Option<&RunLeases>) {
        self.promised.lock().unwrap_or_else(|poison| poison.into_inner()).retain(|promise| promise.host != host);
        if let Some(leases) = shared {
            leases.release_room(host);
        }
    }
}

/// A limit on migrations at once (per host, or across the run). Migrations
/// found under way (an interrupted run's) count against it even when no slot
/// is free for them: new ones then wait until the total is back under the limit.
pub struct MigrationSlots {
    semaphore: Arc<Semaphore>,
    /// Migrations under way that hold no slot.
    owed: AtomicUsize,
    /// The same limit across every run on the ledger (the run-wide limit only).
    shared: Option<(Arc<crate::workflow::leases::RunLeases>, usize)>,
}

impl std::fmt::Debug for MigrationSlots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MigrationSlots").field("owed", &self.owed).field("shared", &self.shared.is_some()).finish()
    }
}

/// The name of the global live-migration limit in the ledger.
const SHARED_MIGRATIONS: &str = "live-migrations";

/// Migrations found under way that have not taken their slots yet; they stop
/// counting when dropped (when they take their slots, or the host's step ends).
#[derive(Debug)]
pub struct UnderWay {
    slots: Arc<MigrationSlots>,
    count: usize,
}

impl Drop for UnderWay {
    fn drop(&mut self) {
        self.slots.owed.fetch_sub(self.count, Ordering::SeqCst);
    }
}

/// The place of one migration in a limit, given back when dropped.
pub struct Slot {
    local: LocalSlot,
    /// Its place in the limit shared by every run on the ledger.
    _shared: Option<crate::workflow::leases::LedgerSlot>,
}

enum LocalSlot {
    Held(#[allow(dead_code)] OwnedSemaphorePermit),
    Owed(Arc<MigrationSlots>),
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let LocalSlot::Owed(slots) = &self.local {
            slots.owed.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl MigrationSlots {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(MigrationSlots {
            semaphore: Arc::new(Semaphore::new(limit.max(1))),
            owed: AtomicUsize::new(0),
            shared: None,
        })
    }

    /// The run-wide limit, held across every run on the ledger too.
    pub fn shared(limit: usize, leases: Option<Arc<crate::workflow::leases::RunLeases>>) -> Arc<Self> {
        Arc::new(MigrationSlots {
            semaphore: Arc::new(Semaphore::new(limit.max(1))),
            owed: AtomicUsize::new(0),
            shared: leases.map(|leases| (leases, limit.max(1))),
        })
    }

    async fn shared_slot(&self, beyond_limit: bool, poll: Duration) -> Option<crate::workflow::leases::LedgerSlot> {
        let (leases, limit) = self.shared.as_ref()?;
        Some(leases.slot(SHARED_MIGRATIONS, *limit, beyond_limit, poll).await)
    }

    /// For a new migration: waits for a free slot, and until the migrations
    /// holding none fit in the limit too.
    pub async fn for_new(self: &Arc<Self>, poll: Duration) -> Slot {
        let permit = self.semaphore.clone().acquire_owned().await.expect("never closed");
        // Held slots (this one included) plus owed ones must stay within the limit.
        while self.owed.load(Ordering::SeqCst) > self.semaphore.available_permits() {
            tokio::time::sleep(poll).await;
        }
        // Then a place among the migrations of every run on the ledger.
        let shared = self.shared_slot(false, poll).await;
        Slot { local: LocalSlot::Held(permit), _shared: shared }
    }

    /// Migrations a host's census found under way, counted from then on (other
    /// hosts may start new ones before this host's migrations take their slots).
    pub fn expect_under_way(self: &Arc<Self>, count: usize) -> UnderWay {
        self.owed.fetch_add(count, Ordering::SeqCst);
        UnderWay { slots: self.clone(), count }
    }

    /// For a migration already under way: a free slot, or one owed.
    pub async fn for_running(self: &Arc<Self>) -> Slot {
        let local = match self.semaphore.clone().try_acquire_owned() {
            Ok(permit) => LocalSlot::Held(permit),
            Err(_) => {
                self.owed.fetch_add(1, Ordering::SeqCst);
                LocalSlot::Owed(self.clone())
            }
        };
        // Counted across runs at once, free or not: it is under way.
        let shared = self.shared_slot(true, Duration::ZERO).await;
        Slot { local, _shared: shared }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(name: &str, vcpus: u64, ram: u64) -> Server {
        serde_json::from_value(serde_json::json!({
            "id": name, "name": name, "status": "ACTIVE", "flavor": {"vcpus": vcpus, "ram": ram}
        }))
        .unwrap()
    }

    fn room(host: &str, vcpus: f64, ram_mb: f64) -> Room {
        let classes = [("VCPU", vcpus), ("MEMORY_MB", ram_mb)];
        Room {
            host: host.into(),
            room: ProviderRoom {
                free: classes.iter().map(|(class, free)| ((*class).to_owned(), *free)).collect(),
                max_unit: classes.iter().map(|(class, _)| ((*class).to_owned(), 1 << 20)).collect(),
            },
        }
    }

    fn need(server: &Server) -> Need<'_> {
        let (vcpus, ram) = size(server);
        (server, Some(Resources::from([("VCPU".to_owned(), vcpus), ("MEMORY_MB".to_owned(), ram)])))
    }

    #[test]
    fn one_vm_must_fit_on_one_host() {
        let rooms = [room("a", 4.0, 8192.0), room("b", 4.0, 8192.0)];
        let big = server("big", 8, 4096);
        let small = server("small", 2, 4096);
        let left = unplaced(&[need(&big), need(&small)], &rooms);
        assert_eq!(left.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["big"]);
        let two = [server("x", 4, 8192), server("y", 4, 8192)];
        assert!(unplaced(&two.iter().map(need).collect::<Vec<_>>(), &rooms).is_empty());
    }

    #[test]
    fn a_vm_of_unknown_size_is_not_placed() {
        let rooms = [room("a", 64.0, 65536.0)];
        let unknown: Server = serde_json::from_value(serde_json::json!({
            "id": "u", "name": "unknown", "status": "ACTIVE", "flavor": {"original_name": "m1.small"}
        }))
        .unwrap();
        assert_eq!(flavor_resources(&unknown), None);
        let left = unplaced(&[(&unknown, None)], &rooms);
        assert_eq!(left.len(), 1, "unknown counts as blocking, not as zero");
    }

    #[test]
    fn flavor_resources_as_the_scheduler_asks() {
        let server: Server = serde_json::from_value(serde_json::json!({
            "id": "p", "name": "pinned", "status": "ACTIVE",
            "flavor": {"vcpus": 4, "ram": 8192, "disk": 20, "ephemeral": 10, "swap": 1536,
                       "extra_specs": {"hw:cpu_policy": "dedicated"}}
        }))
        .unwrap();
        let resources = flavor_resources(&server).unwrap();
        assert_eq!(describe(&resources), "32 DISK_GB, 8192 MEMORY_MB, 4 PCPU");
    }

    #[test]
    fn room_promised_to_one_host_is_not_counted_again() {
        let rooms = [room("spare", 8.0, 16384.0)];
        let ledger = CapacityLedger::default();
        let first = [server("a", 4, 8192), server("b", 4, 8192)];
        let first: Vec<Need> = first.iter().map(need).collect();
        assert!(ledger.check("hv1", &rooms, &first, None).unwrap().unplaced.is_empty());
        let second = [server("c", 2, 2048)];
        let second: Vec<Need> = second.iter().map(need).collect();
        let check = ledger.check("hv2", &rooms, &second, None).unwrap();
        assert_eq!((check.unplaced.len(), check.promised_vms), (1, 2));
        ledger.release("hv1", None);
        assert!(ledger.check("hv2", &rooms, &second, None).unwrap().unplaced.is_empty());
    }

    #[tokio::test]
    async fn migrations_under_way_count_against_the_limit() {
        let slots = MigrationSlots::new(2);
        let mut running: Vec<Slot> = Vec::new();
        for _ in 0..3 {
            running.push(slots.for_running().await);
        }
        let poll = Duration::from_millis(1);
        let waiting = tokio::time::timeout(Duration::from_millis(30), slots.for_new(poll)).await;
        assert!(waiting.is_err(), "three under way for a limit of two: a new one waits");
        drop(running);
        let _new = tokio::time::timeout(Duration::from_millis(30), slots.for_new(poll)).await.expect("a free slot");
    }
}
