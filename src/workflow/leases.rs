//! A run's hold on its hosts in the shared ledger: each host is leased
//! before the run works on it and given back when its step ends; one task
//! renews every lease of the run while it works, and notices a lease taken
//! over (the run was stopped long enough for it to run out), after which
//! the run starts nothing more on that host.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::Result;
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
}

impl RunLeases {
    /// Says the run is under way, holding nothing yet.
    pub fn start(journal: Arc<Journal>, holder: LeaseHolder, hosts: usize, duration: Duration) -> Result<Arc<Self>> {
        journal.run_under_way(&holder, hosts, duration)?;
        Ok(Arc::new(RunLeases { journal, holder, duration, held: Mutex::default(), lost: Mutex::default() }))
    }

    pub fn holder(&self) -> &LeaseHolder {
        &self.holder
    }

    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// Leases the host for the run, or says who holds it.
    pub fn acquire(&self, host: &str) -> Result<LeaseOutcome> {
        let outcome = self.journal.acquire_lease(host, &self.holder, self.duration)?;
        if let LeaseOutcome::Acquired { took_over } = &outcome {
            lock(&self.held).insert(host.to_owned());
            if let Some((lease, why)) = took_over {
                tracing::warn!(host, from_run = %lease.run_id, holder = %lease.holder(), %why, "lease taken over");
            }
        }
        Ok(outcome)
    }

    /// The hosts leased by claiming; the run holds them now.
    pub fn claimed(&self, hosts: &[String]) {
        lock(&self.held).extend(hosts.iter().cloned());
    }

    /// Gives the host back.
    pub fn release(&self, host: &str) {
        // Forgotten first, so a renewal at the same moment does not take it for lost.
        lock(&self.held).remove(host);
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
        match self.journal.hold_lease(&self.check(host)) {
            Ok(Ok(())) => None,
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
        let still = self.journal.renew_leases(&self.holder.run_id, self.duration)?;
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
        if let Err(err) = self.journal.release_run_room(&self.holder.run_id) {
            tracing::error!(%err, "could not give the run's reserved room back; it runs out by itself");
        }
        if let Err(err) = self.journal.run_ended(&self.holder.run_id) {
            tracing::error!(%err, "could not give the run's leases back; they run out by themselves");
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
