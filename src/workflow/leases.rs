//! A run's hold on its hosts in the shared ledger: each host is leased
//! before the run works on it and given back when its step ends; one task
//! renews every lease of the run while it works, and notices a lease taken
//! over (the run was stopped long enough for it to run out), after which
//! the run starts nothing more on that host. Each host's work runs inside
//! its lease as a [`Fence`], asked before every write and command.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::fence::Fence;
use crate::journal::{Amounts, Journal, LeaseCheck, LeaseHolder, LeaseLost, LeaseOutcome, Reservation};

/// The leases of one run.
pub struct RunLeases {
    journal: Arc<Journal>,
    holder: LeaseHolder,
    duration: Duration,
    /// The hosts the run believes it holds.
    held: Mutex<BTreeSet<String>>,
    /// Hosts whose lease another run took over, with what the renewal found.
    lost: Mutex<BTreeMap<String, String>>,
    /// When the ledger last said the run holds each host (taken before asking).
    confirmed: Mutex<BTreeMap<String, Instant>>,
}

impl RunLeases {
    /// Says the run is under way, holding nothing yet.
    pub fn start(journal: Arc<Journal>, holder: LeaseHolder, hosts: usize, duration: Duration) -> Result<Arc<Self>> {
        journal.run_under_way(&holder, hosts, duration)?;
        Ok(Arc::new(RunLeases {
            journal,
            holder,
            duration,
            held: Mutex::default(),
            lost: Mutex::default(),
            confirmed: Mutex::default(),
        }))
    }

    pub fn holder(&self) -> &LeaseHolder {
        &self.holder
    }

    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// Leases the host for the run, or says who holds it.
    pub fn acquire(&self, host: &str) -> Result<LeaseOutcome> {
        let asked = Instant::now();
        let outcome = self.journal.acquire_lease(host, &self.holder, self.duration)?;
        if let LeaseOutcome::Acquired { took_over } = &outcome {
            lock(&self.held).insert(host.to_owned());
            self.confirm(host, asked);
            if let Some((lease, why)) = took_over {
                tracing::warn!(host, from_run = %lease.run_id, holder = %lease.holder(), %why, "lease taken over");
            }
        }
        Ok(outcome)
    }

    /// The hosts leased by claiming, asked for at `asked`; the run holds them now.
    pub fn claimed(&self, hosts: &[String], asked: Instant) {
        lock(&self.held).extend(hosts.iter().cloned());
        for host in hosts {
            self.confirm(host, asked);
        }
    }

    /// The ledger said the run holds `host`, when asked at `asked`.
    pub fn confirm(&self, host: &str, asked: Instant) {
        let mut confirmed = lock(&self.confirmed);
        let at = confirmed.entry(host.to_owned()).or_insert(asked);
        *at = (*at).max(asked);
    }

    /// The fence of the run's work on `host`.
    pub fn fence(self: &Arc<Self>, host: &str) -> Arc<dyn Fence> {
        Arc::new(HostFence { leases: self.clone(), host: host.to_owned() })
    }

    /// Gives the host back.
    pub fn release(&self, host: &str) {
        // Forgotten first, so a renewal at the same moment does not take it for lost.
        lock(&self.held).remove(host);
        lock(&self.confirmed).remove(host);
        self.release_room(host);
        if let Err(err) = self.journal.release_lease(host, &self.holder.run_id) {
            tracing::error!(host, %err, "could not give the host's lease back; it runs out by itself");
        }
    }

    /// In one write transaction with the ledger: the other runs' room
    /// reserved on any of `destinations` goes to `check`, which says what to
    /// reserve for the host (see [`Journal::reserve_room`]).
    pub fn reserve_room<T>(
        &self,
        host: &str,
        destinations: &[String],
        check: impl FnOnce(&[Reservation]) -> (T, Option<Vec<Amounts>>),
    ) -> Result<T> {
        self.journal.reserve_room(host, destinations, &self.holder, self.duration, check)
    }

    /// The host's drain ended: the room reserved for it goes back.
    pub fn release_room(&self, host: &str) {
        if let Err(err) = self.journal.release_room(host, &self.holder.run_id) {
            tracing::error!(host, %err, "could not give the host's reserved room back; it runs out by itself");
        }
    }

    /// Why the run no longer holds the host, if another run took it over.
    pub fn lost(&self, host: &str) -> Option<String> {
        lock(&self.lost).get(host).cloned()
    }

    /// What an intent write checks (and renews) right before the host is acted on.
    pub fn check<'a>(&'a self, host: &'a str) -> LeaseCheck<'a> {
        LeaseCheck { host, run_id: &self.holder.run_id, duration: self.duration }
    }

    /// Why the run no longer holds the host, checked in the ledger now (and
    /// the lease renewed when it still does); `None` while it holds it.
    pub fn still_held(&self, host: &str) -> Option<String> {
        let asked = Instant::now();
        match self.journal.hold_lease(&self.check(host)) {
            Ok(Ok(())) => {
                self.confirm(host, asked);
                None
            }
            Ok(Err(lost)) => {
                self.found_lost(host, &lost);
                self.lost(host)
            }
            Err(err) => Some(format!("could not check the host's lease: {err}")),
        }
    }

    /// The intent write found the host's lease lost: the run starts nothing
    /// more on it and does not report it.
    pub fn found_lost(&self, host: &str, lost: &LeaseLost) {
        let mut known = lock(&self.lost);
        if !known.contains_key(host) {
            tracing::error!(host, %lost, "the host's lease was taken over; nothing more is done on it");
            known.insert(host.to_owned(), lost.to_string());
        }
    }

    /// Renews every lease of the run every third of the lease's duration,
    /// until the returned task is aborted.
    pub fn keep_renewed(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let leases = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(leases.duration / 3);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every.tick().await;
            loop {
                every.tick().await;
                let renewing = leases.clone();
                let renewed = tokio::task::spawn_blocking(move || renewing.renew()).await;
                if let Ok(Err(err)) = renewed {
                    tracing::error!(%err, "could not renew the run's leases");
                }
            }
        })
    }

    fn renew(&self) -> Result<()> {
        let asked = Instant::now();
        let still = self.journal.renew_leases(&self.holder.run_id, self.duration)?;
        for host in &still {
            self.confirm(host, asked);
        }
        self.journal.renew_room(&self.holder.run_id, self.duration)?;
        let held = lock(&self.held);
        let mut lost = lock(&self.lost);
        for host in held.iter().filter(|host| !still.contains(host)) {
            if !lost.contains_key(host) {
                let whom = match self.journal.lease_lost(host, &self.holder.run_id) {
                    Ok(Some(lost)) => lost.to_string(),
                    Ok(None) | Err(_) => "lease lost".to_owned(),
                };
                let why = format!("{whom}; its lease ran out while the run was stopped and another run took it over");
                tracing::error!(host = %host, "{why}");
                lost.insert(host.clone(), why);
            }
        }
        Ok(())
    }

    /// The run ended: every lease goes back and it is no longer under way.
    pub fn end(&self) {
        lock(&self.held).clear();
        lock(&self.confirmed).clear();
        if let Err(err) = self.journal.release_run_room(&self.holder.run_id) {
            tracing::error!(%err, "could not give the run's reserved room back; it runs out by itself");
        }
        if let Err(err) = self.journal.run_ended(&self.holder.run_id) {
            tracing::error!(%err, "could not give the run's leases back; they run out by themselves");
        }
    }
}

/// The run's lease on one host as the fence of the work on it. A
/// confirmation is trusted for half the lease (the renewal comes every
/// third); an older one means the run was stopped, and the ledger is asked.
struct HostFence {
    leases: Arc<RunLeases>,
    host: String,
}

impl Fence for HostFence {
    fn may_act(&self) -> std::result::Result<(), String> {
        if let Some(lost) = self.leases.lost(&self.host) {
            return Err(lost);
        }
        let fresh = lock(&self.leases.confirmed)
            .get(&self.host)
            .is_some_and(|asked| asked.elapsed() < self.leases.duration / 2);
        match fresh {
            true => Ok(()),
            false => self.leases.still_held(&self.host).map_or(Ok(()), Err),
        }
    }
}

/// One place in a limit shared by every run on the ledger; given back when dropped.
pub struct LedgerSlot {
    leases: Arc<RunLeases>,
    id: i64,
}

impl Drop for LedgerSlot {
    fn drop(&mut self) {
        if let Err(err) = self.leases.journal.release_slot(self.id) {
            tracing::error!(%err, "could not give a shared slot back; it runs out by itself");
        }
    }
}

impl RunLeases {
    /// Waits for one of the `limit` slots of `name` across every run on the
    /// ledger, looking again every `poll`; with `beyond_limit` (a use
    /// already under way) it is counted at once, free or not.
    pub async fn slot(self: &Arc<Self>, name: &str, limit: usize, beyond_limit: bool, poll: Duration) -> LedgerSlot {
        loop {
            match self.journal.take_slot(name, limit, &self.holder, self.duration, beyond_limit) {
                Ok(Some(id)) => return LedgerSlot { leases: self.clone(), id },
                Ok(None) => {}
                Err(err) => tracing::error!(name, %err, "could not take a shared slot; trying again"),
            }
            tokio::time::sleep(poll).await;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fence_trusts_a_fresh_lease_asks_the_ledger_about_an_old_one_and_refuses_a_lost_one() {
        let (_dir, locations) = crate::journal::test_ledgers::locations("the_fence_asks_the_ledger");
        let lease = Duration::from_secs(2);
        for location in locations {
            let journal = Arc::new(Journal::open(&location).unwrap());
            // Another machine: only the expiry frees its hosts.
            let stopped = LeaseHolder {
                machine: "laptop".into(),
                process_scope: "other-boot/pid:[1]".into(),
                ..LeaseHolder::this_process("r1", "pre-drain")
            };
            let leases = RunLeases::start(journal.clone(), stopped, 1, lease).unwrap();
            assert!(matches!(leases.acquire("hv01").unwrap(), LeaseOutcome::Acquired { .. }));
            let fence = leases.fence("hv01");
            assert_eq!(fence.may_act(), Ok(()), "just leased");

            // Past half the lease with no renewal: the fence asks the ledger, which renews the lease.
            std::thread::sleep(lease / 2 + Duration::from_millis(100));
            assert_eq!(fence.may_act(), Ok(()));
            std::thread::sleep(lease / 2 + Duration::from_millis(100));
            let other = LeaseHolder::this_process("r2", "pre-drain");
            assert!(
                matches!(journal.acquire_lease("hv01", &other, lease).unwrap(), LeaseOutcome::Held(_)),
                "the fence's look renewed the lease past its first expiry"
            );

            // Stopped past the lease: another run takes the host over, and the fence says so.
            std::thread::sleep(lease + Duration::from_millis(100));
            assert!(matches!(journal.acquire_lease("hv01", &other, lease).unwrap(), LeaseOutcome::Acquired { .. }));
            let why = fence.may_act().unwrap_err();
            assert!(why.starts_with("lease lost to run r2 ("), "{why}");
            assert_eq!(leases.lost("hv01"), Some(why), "the run starts nothing more on the host");
        }
    }
}
