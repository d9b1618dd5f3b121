//! The drain's capacity ledger across runs: the destination room a host's
//! VMs need, reserved by the run draining it once its capacity check passed,
//! so that two operators draining at once do not both count the same free
//! room. A reservation lives as long as its run renews it (with its leases)
//! and goes when the host's drain ends; a lapsed one, or one of a process
//! gone from this machine, is not counted.

use std::collections::BTreeMap;
use std::time::Duration;

use super::db::{params, Conn, DbResult};

use super::leases::{later, LeaseHolder};
use super::{now, Journal};
use crate::error::Result;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS reservations (
    id INTEGER PRIMARY KEY,
    host TEXT NOT NULL,
    destinations TEXT NOT NULL,
    needs TEXT NOT NULL,
    run_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    machine TEXT NOT NULL,
    process_scope TEXT NOT NULL,
    pid INTEGER NOT NULL,
    pid_start TEXT NOT NULL,
    taken_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reservations_by_run ON reservations(run_id);
";

/// Amounts by resource class (Placement's).
pub type Amounts = BTreeMap<String, u64>;

/// Room another run holds for one of its hosts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reservation {
    pub host: String,
    /// The destination hypervisors its capacity check counted.
    pub destinations: Vec<String>,
    /// What each of the host's VMs needs.
    pub needs: Vec<Amounts>,
    pub run_id: String,
    pub user: String,
    pub machine: String,
    pub pid: u32,
    pub expires_at: String,
}

impl Reservation {
    /// `reserved for <host> by run <id> (<user>@<machine>, pid <n>) until <time>`.
    pub fn held_reason(&self) -> String {
        format!(
            "reserved for {} by run {} ({}@{}, pid {}) until {}",
            self.host, self.run_id, self.user, self.machine, self.pid, self.expires_at
        )
    }
}

impl Journal {
    /// In one write transaction: the other runs' live reservations on any of
    /// `destinations` go to `check`, which says what it found and the room
    /// to reserve for `host` (`None`: nothing, the VMs do not fit). The
    /// host's earlier reservation by this run is replaced.
    pub fn reserve_room<T>(
        &self,
        host: &str,
        destinations: &[String],
        holder: &LeaseHolder,
        duration: Duration,
        check: impl FnOnce(&[Reservation]) -> (T, Option<Vec<Amounts>>),
    ) -> Result<T> {
        self.bookkeeping(|conn| {
            super::slots::free_lapsed(conn, "reservations", None, holder)?;
            conn.execute("DELETE FROM reservations WHERE host = ?1 AND run_id = ?2", params![host, holder.run_id])?;
            let others: Vec<Reservation> = reservations(conn)?
                .into_iter()
                .filter(|other| other.run_id != holder.run_id)
                .filter(|other| other.destinations.iter().any(|name| destinations.contains(name)))
                .collect();
            let (found, reserve) = check(&others);
            if let Some(needs) = reserve {
                // JSON in plain TEXT columns: portable to any SQL engine.
                let (destinations, needs) = (to_text(&destinations), to_text(&needs));
                conn.execute(
                    "INSERT INTO reservations (host, destinations, needs, run_id, user_name, machine, process_scope,
                                               pid, pid_start, taken_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    params![
                        host,
                        destinations,
                        needs,
                        holder.run_id,
                        holder.user,
                        holder.machine,
                        holder.process_scope,
                        holder.pid,
                        holder.pid_start,
                        now(),
                        later(duration)
                    ],
                )?;
            }
            Ok(found)
        })
    }

    /// The host's drain ended: its room is no longer held for it.
    pub fn release_room(&self, host: &str, run_id: &str) -> Result<()> {
        self.bookkeeping(|conn| {
            conn.execute("DELETE FROM reservations WHERE host = ?1 AND run_id = ?2", params![host, run_id]).map(drop)
        })
    }

    /// Every reservation of the run goes (the run ended).
    pub fn release_run_room(&self, run_id: &str) -> Result<()> {
        self.bookkeeping(|conn| conn.execute("DELETE FROM reservations WHERE run_id = ?1", params![run_id]).map(drop))
    }

    /// The run still works: its reservations last another `duration`.
    pub fn renew_room(&self, run_id: &str, duration: Duration) -> Result<()> {
        self.with(|conn| {
            conn.execute("UPDATE reservations SET expires_at = ?1 WHERE run_id = ?2", params![later(duration), run_id])
                .map(drop)
        })
    }

    /// The live reservations, oldest first.
    pub fn room_reserved(&self) -> Result<Vec<Reservation>> {
        self.with(|conn| {
            Ok(reservations(conn)?.into_iter().filter(|reservation| reservation.expires_at > now()).collect())
        })
    }
}

fn to_text(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn reservations(conn: &Conn) -> DbResult<Vec<Reservation>> {
    let mut query = conn.prepare(
        "SELECT host, destinations, needs, run_id, user_name, machine, pid, expires_at FROM reservations ORDER BY id",
    )?;
    let rows = query.query_map(params![], |row| {
        let destinations: String = row.get(1)?;
        let needs: String = row.get(2)?;
        Ok(Reservation {
            host: row.get(0)?,
            destinations: serde_json::from_str(&destinations).unwrap_or_default(),
            needs: serde_json::from_str(&needs).unwrap_or_default(),
            run_id: row.get(3)?,
            user: row.get(4)?,
            machine: row.get(5)?,
            pid: row.get(6)?,
            expires_at: row.get(7)?,
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn amounts(vcpu: u64) -> Amounts {
        Amounts::from([("VCPU".to_owned(), vcpu)])
    }

    #[test]
    fn room_reserved_by_one_run_is_seen_by_another_until_released_or_lapsed() {
        let (_dir, locations) = crate::journal::test_ledgers::locations(
            "room_reserved_by_one_run_is_seen_by_another_until_released_or_lapsed",
        );
        for location in locations {
            let journal = Journal::open(&location).unwrap();
            let (first, second) = (LeaseHolder::this_process("r1", "drain"), LeaseHolder::this_process("r2", "drain"));
            let pool = ["hv10".to_owned(), "hv11".to_owned()];
            let seen =
                journal.reserve_room("hv01", &pool, &first, MINUTE, |others| (others.len(), Some(vec![amounts(4)])));
            assert_eq!(seen.unwrap(), 0);
            // The same run's own reservations are not another run's.
            let seen =
                journal.reserve_room("hv02", &pool, &first, MINUTE, |others| (others.len(), Some(vec![amounts(2)])));
            assert_eq!(seen.unwrap(), 0);
            let others =
                journal.reserve_room("hv05", &pool[1..], &second, MINUTE, |others| (others.to_vec(), None)).unwrap();
            assert_eq!(others.len(), 2, "overlapping destinations: {others:?}");
            assert_eq!(others[0].needs, vec![amounts(4)]);
            assert!(
                others[0].held_reason().starts_with("reserved for hv01 by run r1 ("),
                "{}",
                others[0].held_reason()
            );
            let elsewhere = journal.reserve_room("hv05", &["hv99".to_owned()], &second, MINUTE, |o| (o.len(), None));
            assert_eq!(elsewhere.unwrap(), 0, "other destinations");
            assert_eq!(journal.room_reserved().unwrap().len(), 2, "nothing reserved when nothing fits");

            journal.release_room("hv01", "r1").unwrap();
            let seen = journal.reserve_room("hv05", &pool, &second, MINUTE, |o| (o.len(), None)).unwrap();
            assert_eq!(seen, 1);
            journal.release_run_room("r1").unwrap();
            assert!(journal.room_reserved().unwrap().is_empty());

            // Not renewed, a reservation lapses.
            let quick = LeaseHolder::this_process("r3", "drain");
            let short = Duration::from_millis(100);
            journal.reserve_room("hv03", &pool, &quick, short, |_| ((), Some(vec![amounts(1)]))).unwrap();
            journal.renew_room("r3", short).unwrap();
            assert_eq!(journal.reserve_room("hv05", &pool, &second, MINUTE, |o| (o.len(), None)).unwrap(), 1);
            std::thread::sleep(Duration::from_millis(150));
            assert_eq!(journal.reserve_room("hv05", &pool, &second, MINUTE, |o| (o.len(), None)).unwrap(), 0);
        }
    }
}
