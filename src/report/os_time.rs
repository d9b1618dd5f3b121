//! OS over time, as cloudigrade reports it: per OS observed on the hosts, the
//! hosts running it at the start and the end of the window and the host-hours
//! it ran in it; and what the campaign took out of service (from disabling
//! nova-compute to enabling it again), in host-hours and capacity-hours.
//!
//! A host runs the OS its latest `os-check` saw (pre-drain sees the source OS,
//! post-reinstall the target) from the moment it was seen; from the PXE switch
//! (pre-reinstall succeeded) until the new OS is seen it is reinstalling.
//! Before its first check the journal does not know, and nothing is counted.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde::Serialize;

use super::{round2, HostHistory, Window};
use crate::journal::{ActionOutcome, StepOutcome};

/// What a host counts as between its PXE switch and its new OS being seen.
pub const REINSTALLING: &str = "(reinstalling)";

#[derive(Clone, Debug, Default, Serialize)]
pub struct OsTime {
    pub rows: Vec<OsRow>,
    pub out_of_service: OutOfService,
}

/// One OS in the window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OsRow {
    /// As observed: `rocky 8.10`.
    pub os: String,
    pub hosts_at_start: usize,
    pub hosts_at_end: usize,
    pub host_hours: f64,
}

/// The hosts out of service (nova-compute disabled by the campaign) in the window.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct OutOfService {
    pub host_hours: f64,
    /// vCPUs × hours, from the Nova details pre-drain recorded.
    pub vcpu_hours: f64,
    /// RAM (GiB) × hours, from the same details.
    pub ram_gib_hours: f64,
    pub hosts_out_at_end: usize,
    /// Hosts out of service whose Nova details the journal lacks (not in the capacity figures).
    pub hosts_without_capacity: Vec<String>,
}

/// What the host ran from a moment on.
#[derive(Clone, Debug, PartialEq)]
struct Segment {
    from: Timestamp,
    os: String,
}

pub fn compute(histories: &BTreeMap<String, HostHistory>, window: &Window) -> OsTime {
    let mut rows: BTreeMap<String, OsRow> = BTreeMap::new();
    let mut out = OutOfService::default();
    let mut without_capacity = BTreeSet::new();
    for history in histories.values() {
        let segments = os_segments(history);
        for (index, segment) in segments.iter().enumerate() {
            let to = segments.get(index + 1).map(|next| next.from).unwrap_or(window.until.max(segment.from));
            let row = rows.entry(segment.os.clone()).or_insert_with(|| OsRow {
                os: segment.os.clone(),
                hosts_at_start: 0,
                hosts_at_end: 0,
                host_hours: 0.0,
            });
            row.host_hours += window.overlap_hours(segment.from, to);
            let covers = |at: Timestamp| segment.from <= at && (at < to || index + 1 == segments.len());
            row.hosts_at_start += usize::from(covers(window.since));
            row.hosts_at_end += usize::from(covers(window.until));
        }
        for (from, to) in out_of_service(history) {
            let hours = window.overlap_hours(from, to.unwrap_or(window.until));
            out.hosts_out_at_end += usize::from(from <= window.until && to.is_none_or(|to| to > window.until));
            if hours <= 0.0 {
                continue;
            }
            out.host_hours += hours;
            match capacity_before(history, to.unwrap_or(window.until)) {
                Some((vcpus, memory_mb)) => {
                    out.vcpu_hours += vcpus as f64 * hours;
                    out.ram_gib_hours += memory_mb as f64 / 1024.0 * hours;
                }
                None => {
                    without_capacity.insert(history.host.clone());
                }
            }
        }
    }
    let rows = rows
        .into_values()
        .filter(|row| row.host_hours > 0.0 || row.hosts_at_end > 0)
        .map(|row| OsRow { host_hours: round2(row.host_hours), ..row })
        .collect();
    out.host_hours = round2(out.host_hours);
    out.vcpu_hours = round2(out.vcpu_hours);
    out.ram_gib_hours = round2(out.ram_gib_hours);
    out.hosts_without_capacity = without_capacity.into_iter().collect();
    OsTime { rows, out_of_service: out }
}

/// The host's OS from each moment on, oldest first, repeats merged.
fn os_segments(history: &HostHistory) -> Vec<Segment> {
    let mut events: Vec<(Timestamp, String)> = Vec::new();
    for action in &history.actions {
        let seen = matches!(action.row.outcome, ActionOutcome::Ok | ActionOutcome::Blocked);
        if action.row.action == "os-check" && seen {
            if let Some(os) = action.row.observed.as_deref().and_then(observed_os) {
                events.push((action.ended.unwrap_or(action.started), os));
            }
        }
    }
    for step in &history.steps {
        if step.row.step == "pre-reinstall" && step.row.outcome == StepOutcome::Succeeded {
            events.push((step.ended.unwrap_or(step.started), REINSTALLING.to_owned()));
        }
    }
    events.sort_by_key(|(at, _)| *at);
    let mut segments: Vec<Segment> = Vec::new();
    for (from, os) in events {
        if segments.last().is_some_and(|last| last.os == os) {
            continue;
        }
        segments.push(Segment { from, os });
    }
    segments
}

/// The OS an `os-check` saw: `rocky 9.4` of `rocky 9.4, UEFI`.
fn observed_os(observed: &str) -> Option<String> {
    let os = observed.split(',').next()?.trim();
    (!os.is_empty()).then(|| os.to_owned())
}

/// The periods the host was out of service: from pre-drain's disable-compute
/// to adoption's enable-compute (`None`: not enabled again yet).
fn out_of_service(history: &HostHistory) -> Vec<(Timestamp, Option<Timestamp>)> {
    let mut periods = Vec::new();
    let mut open: Option<Timestamp> = None;
    for action in &history.actions {
        let took = matches!(action.row.outcome, ActionOutcome::Done | ActionOutcome::Skipped);
        let at = action.ended.unwrap_or(action.started);
        match (action.row.action.as_str(), took, open) {
            ("disable-compute", true, None) => open = Some(at),
            ("enable-compute", true, Some(from)) => {
                periods.push((from, Some(at)));
                open = None;
            }
            _ => {}
        }
    }
    if let Some(from) = open {
        periods.push((from, None));
    }
    periods
}

/// The host's vCPUs and RAM (MB) from the latest Nova details recorded before `at`.
fn capacity_before(history: &HostHistory, at: Timestamp) -> Option<(u64, u64)> {
    history
        .actions
        .iter()
        .filter(|action| action.row.action == "record-state" && action.started <= at)
        .filter_map(|action| action.row.observed.as_deref().and_then(nova_capacity))
        .next_back()
}

/// The totals of pre-drain's record-state: `... 6 of 64 vCPUs and 12288 of 262144 MB used`.
pub fn nova_capacity(observed: &str) -> Option<(u64, u64)> {
    let vcpus = number_before(observed, " vCPUs")?;
    let memory_mb = number_before(observed, " MB used")?;
    Some((vcpus, memory_mb))
}

fn number_before(text: &str, suffix: &str) -> Option<u64> {
    let end = text.find(suffix)?;
    text[..end].rsplit(' ').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture::{self, at};
    use crate::report::{build, ReportSettings};

    #[test]
    fn host_hours_per_os_in_a_window_that_cuts_through_a_reinstall() {
        // hv01: rocky 8.10 seen day 1 08:00, PXE switch day 2 10:00,
        // rocky 9.4 seen day 2 16:00. Window: day 1 12:00 to day 3 00:00.
        // hv02: rocky 8.10 seen day 1 09:00, nothing since.
        let settings = ReportSettings {
            since: Some(at("2026-03-01T12:00:00Z")),
            until: Some(at("2026-03-03T00:00:00Z")),
            ..Default::default()
        };
        let report = build(fixture::ledger(), &settings, at("2026-03-10T00:00:00Z")).unwrap();
        let row = |os: &str| report.os_time.rows.iter().find(|row| row.os == os).cloned().unwrap();
        // hv01 ran 8.10 from 12:00 (window start) to day 2 10:00: 22 h; hv02 the whole 36 h.
        assert_eq!(
            row("rocky 8.10"),
            OsRow { os: "rocky 8.10".into(), hosts_at_start: 2, hosts_at_end: 1, host_hours: 58.0 }
        );
        assert_eq!(
            row(REINSTALLING),
            OsRow { os: REINSTALLING.into(), hosts_at_start: 0, hosts_at_end: 0, host_hours: 6.0 }
        );
        assert_eq!(
            row("rocky 9.4"),
            OsRow { os: "rocky 9.4".into(), hosts_at_start: 0, hosts_at_end: 1, host_hours: 8.0 }
        );
        // hv01 disabled day 1 08:30, enabled again day 2 20:00: 32 h in the window,
        // at 64 vCPUs and 256 GiB; hv02 disabled day 1 12:30, still out: 35.5 h with no Nova details.
        let out = &report.os_time.out_of_service;
        assert_eq!(out.host_hours, 67.5);
        assert_eq!(out.vcpu_hours, 64.0 * 32.0);
        assert_eq!(out.ram_gib_hours, 256.0 * 32.0);
        assert_eq!(out.hosts_out_at_end, 1);
        assert_eq!(out.hosts_without_capacity, ["hv02.example.org"]);
    }

    #[test]
    fn capacity_is_read_from_pre_drain_record_state() {
        let observed = "Nova: compute host hv01 (names: hv01), enabled / up, 3 VMs, 6 of 64 vCPUs and 12288 of 262144 MB used; libvirt: 3 domains";
        assert_eq!(nova_capacity(observed), Some((64, 262144)));
        assert_eq!(nova_capacity("Nova: no hypervisor record; libvirt: 0 domains"), None);
        assert_eq!(observed_os("rocky 9.4, UEFI").as_deref(), Some("rocky 9.4"));
    }
}
