//! What several requests read of the whole ledger (every host's summary, the
//! metrics' text), computed once and shared while the ledger stays as it was.
//! Without it each `/api/v1/hosts` page and each scrape read every host's
//! steps again: on a 5,000-host ledger, tens of milliseconds per request on
//! one connection, and 16 clients at once queue behind each other.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::journal::Journal;

/// How long a snapshot is reused while the ledger has not changed: what
/// follows the clock rather than the ledger (a lease running out, the age of
/// the oldest block) is never older than this.
pub const MAX_AGE: Duration = Duration::from_secs(5);

/// One value computed from the ledger, with the ledger's data version it was computed at.
pub struct Snapshot<T> {
    kept: Mutex<Option<Kept<T>>>,
}

struct Kept<T> {
    /// SQLite's data version; `None` on PostgreSQL (then only the age counts).
    version: Option<i64>,
    at: Instant,
    value: Arc<T>,
}

impl<T> Default for Snapshot<T> {
    fn default() -> Self {
        Snapshot { kept: Mutex::new(None) }
    }
}

impl<T> Snapshot<T> {
    /// The kept value when nothing was written to the ledger since it was
    /// computed and it is younger than [`MAX_AGE`]; else `compute`'s, kept.
    /// Callers at the same time wait for one computation instead of each
    /// making its own. A ledger without a data version (PostgreSQL, which
    /// several serve instances may share) is read again once the value is
    /// [`MAX_AGE`] old: what it shows is at most that late.
    pub fn get(&self, journal: &Journal, compute: impl FnOnce(&Journal) -> Result<T>) -> Result<Arc<T>> {
        let mut kept = self.kept.lock().unwrap_or_else(|poison| poison.into_inner());
        // Read before computing: a write landing meanwhile makes the next caller compute again.
        let version = journal.data_version()?;
        if let Some(kept) = kept.as_ref() {
            if kept.version == version && kept.at.elapsed() < MAX_AGE {
                return Ok(kept.value.clone());
            }
        }
        let value = Arc::new(compute(journal)?);
        *kept = Some(Kept { version, at: Instant::now(), value: value.clone() });
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::NewRun;
    use std::cell::Cell;

    fn start_a_run(writer: &Journal) {
        let run = NewRun {
            id: "r1",
            step: "pre-drain",
            operator: "ann",
            hypervisors_file: "h.txt",
            dry_run: false,
            forced: false,
        };
        writer.start_run(&run).unwrap();
    }

    #[test]
    fn reused_until_the_ledger_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        let writer = Journal::open(&path).unwrap();
        let reader = Journal::open_read_only(&path).unwrap().unwrap();
        let snapshot = Snapshot::default();
        let computed = Cell::new(0);
        let runs = |journal: &Journal| {
            computed.set(computed.get() + 1);
            journal.runs().map(|runs| runs.len())
        };
        assert_eq!(*snapshot.get(&reader, runs).unwrap(), 0);
        assert_eq!(*snapshot.get(&reader, runs).unwrap(), 0);
        assert_eq!(computed.get(), 1, "the second read reuses the first");
        start_a_run(&writer);
        assert_eq!(*snapshot.get(&reader, runs).unwrap(), 1, "a write to the ledger is seen at once");
        assert_eq!(computed.get(), 2);
        assert_eq!(*snapshot.get(&reader, runs).unwrap(), 1);
        assert_eq!(computed.get(), 2);
    }

    #[test]
    fn without_a_data_version_reused_while_young() {
        let (_dir, locations) =
            crate::journal::test_ledgers::locations("serve_snapshot_without_a_data_version_reused_while_young");
        for location in locations.iter().filter(|location| location.to_string_lossy().starts_with("postgres")) {
            let writer = Journal::open(location).unwrap();
            let reader = Journal::open_read_only(location).unwrap().unwrap();
            assert_eq!(reader.data_version().unwrap(), None);
            let snapshot = Snapshot::default();
            let computed = Cell::new(0);
            let runs = |journal: &Journal| {
                computed.set(computed.get() + 1);
                journal.runs().map(|runs| runs.len())
            };
            assert_eq!(*snapshot.get(&reader, runs).unwrap(), 0);
            start_a_run(&writer);
            assert_eq!(*snapshot.get(&reader, runs).unwrap(), 0, "kept while younger than MAX_AGE");
            assert_eq!(computed.get(), 1);
            if let Some(kept) = snapshot.kept.lock().unwrap().as_mut() {
                kept.at = Instant::now() - MAX_AGE;
            }
            assert_eq!(*snapshot.get(&reader, runs).unwrap(), 1, "read again once MAX_AGE old");
            assert_eq!(computed.get(), 2);
        }
    }
}
