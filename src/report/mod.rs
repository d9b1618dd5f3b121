//! Campaign reports, from the journal alone (no service is contacted): how
//! long each OS ran, how the fleet burns down, where the time goes and what
//! holds it up. The journal hands back its rows as stored; the figures are
//! computed here, one file per table.

pub mod burn_down;
pub mod csv_files;
pub mod durations;
pub mod holdups;
pub mod html;
pub mod os_time;
pub mod tables;

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::journal::{ActionRow, Journal, StepRow, SubCommandRow};

pub use burn_down::BurnDown;
pub use durations::TimeSpent;
pub use holdups::HoldUps;
pub use os_time::OsTime;

/// The sub-command a drain journals per VM it moved or tried to move.
pub const VM_MIGRATION: &str = "vm-migration";

/// The period a report covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub since: Timestamp,
    pub until: Timestamp,
}

impl Window {
    pub fn hours(&self) -> f64 {
        hours_between(self.since, self.until)
    }

    /// The part of `[from, to)` inside the window, in hours.
    pub fn overlap_hours(&self, from: Timestamp, to: Timestamp) -> f64 {
        let from = from.max(self.since);
        let to = to.min(self.until);
        if to > from {
            hours_between(from, to)
        } else {
            0.0
        }
    }
}

/// What the report is asked for.
#[derive(Clone, Debug, Default)]
pub struct ReportSettings {
    /// Only these hosts (the list); every host of the journal when `None` (`--all`).
    pub hosts: Option<Vec<String>>,
    /// Start of the window; the journal's first record when `None`.
    pub since: Option<Timestamp>,
    /// End of the window; now when `None`.
    pub until: Option<Timestamp>,
}

/// The journal's rows a report reads.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    pub steps: Vec<StepRow>,
    pub actions: Vec<ActionRow>,
    pub vm_migrations: Vec<SubCommandRow>,
}

impl Ledger {
    pub fn read(journal: &Journal) -> Result<Self> {
        Ok(Ledger {
            steps: journal.report_steps()?,
            actions: journal.report_actions()?,
            vm_migrations: journal.report_sub_commands(VM_MIGRATION)?,
        })
    }

    /// Only the rows of `hosts`.
    fn only(mut self, hosts: &BTreeSet<String>) -> Self {
        self.steps.retain(|row| hosts.contains(&row.host));
        self.actions.retain(|row| hosts.contains(&row.host));
        self.vm_migrations.retain(|row| hosts.contains(&row.host));
        self
    }
}

/// The whole report: one field per table.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub since: String,
    pub until: String,
    pub hosts: usize,
    pub os_time: OsTime,
    pub burn_down: BurnDown,
    pub time_spent: TimeSpent,
    pub hold_ups: HoldUps,
}

/// Builds the report from the journal's rows.
pub fn build(ledger: Ledger, settings: &ReportSettings, now: Timestamp) -> Result<Report> {
    let hosts: BTreeSet<String> = match &settings.hosts {
        Some(hosts) => hosts.iter().cloned().collect(),
        None => ledger.steps.iter().map(|row| row.host.clone()).collect(),
    };
    let ledger = ledger.only(&hosts);
    let first = ledger.steps.iter().filter_map(|row| parse_time(&row.started_at)).min();
    let until = settings.until.unwrap_or(now);
    let since = settings.since.or(first).unwrap_or(until);
    if since >= until {
        return Err(Error::Usage(format!("the report's window is empty: {since} is not before {until}")));
    }
    let window = Window { since, until };
    let histories = histories(&ledger, &hosts);
    Ok(Report {
        since: stamp(since),
        until: stamp(until),
        hosts: hosts.len(),
        os_time: os_time::compute(&histories, &window),
        burn_down: burn_down::compute(&histories, &window),
        time_spent: durations::compute(&ledger, &histories, &window),
        hold_ups: holdups::compute(&ledger, &histories, &window),
    })
}

/// Reads the journal and builds the report.
pub fn from_journal(journal: &Journal, settings: &ReportSettings, now: Timestamp) -> Result<Report> {
    build(Ledger::read(journal)?, settings, now)
}

/// One host's rows, in the order written, with their times parsed.
#[derive(Clone, Debug, Default)]
pub struct HostHistory {
    pub host: String,
    pub steps: Vec<TimedStep>,
    pub actions: Vec<TimedAction>,
}

#[derive(Clone, Debug)]
pub struct TimedStep {
    pub row: StepRow,
    pub started: Timestamp,
    pub ended: Option<Timestamp>,
}

#[derive(Clone, Debug)]
pub struct TimedAction {
    pub row: ActionRow,
    pub started: Timestamp,
    pub ended: Option<Timestamp>,
}

impl HostHistory {
    /// The campaign steps that succeeded, with when: the host's positions over time.
    pub fn successes(&self) -> impl Iterator<Item = (&str, Timestamp)> {
        self.steps.iter().filter(|step| step.row.outcome == crate::journal::StepOutcome::Succeeded).filter_map(|step| {
            let at = step.ended.unwrap_or(step.started);
            campaign_index(&step.row.step).map(|_| (step.row.step.as_str(), at))
        })
    }

    /// Where the host stood at `at`: the latest campaign step that succeeded by then.
    pub fn position_at(&self, at: Timestamp) -> Option<&str> {
        self.successes().filter(|(_, when)| *when <= at).last().map(|(step, _)| step)
    }
}

/// Per host (every host asked for, even those the journal never saw).
fn histories(ledger: &Ledger, hosts: &BTreeSet<String>) -> BTreeMap<String, HostHistory> {
    let mut by_host: BTreeMap<String, HostHistory> =
        hosts.iter().map(|host| (host.clone(), HostHistory { host: host.clone(), ..Default::default() })).collect();
    for row in &ledger.steps {
        let (Some(history), Some(started)) = (by_host.get_mut(&row.host), parse_time(&row.started_at)) else {
            continue;
        };
        let ended = row.ended_at.as_deref().and_then(parse_time);
        history.steps.push(TimedStep { row: row.clone(), started, ended });
    }
    for row in &ledger.actions {
        let (Some(history), Some(started)) = (by_host.get_mut(&row.host), parse_time(&row.started_at)) else {
            continue;
        };
        let ended = row.ended_at.as_deref().and_then(parse_time);
        history.actions.push(TimedAction { row: row.clone(), started, ended });
    }
    by_host
}

/// The campaign's steps in order, as the journal names them.
pub fn campaign_steps() -> Vec<&'static str> {
    crate::workflow::Step::CAMPAIGN.iter().map(|step| step.name()).collect()
}

pub fn campaign_index(step: &str) -> Option<usize> {
    crate::workflow::Step::CAMPAIGN.iter().position(|s| s.name() == step)
}

pub fn parse_time(text: &str) -> Option<Timestamp> {
    text.parse().ok()
}

/// A time stamp as the report prints it (to the second).
pub fn stamp(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn hours_between(from: Timestamp, to: Timestamp) -> f64 {
    (to.as_microsecond() - from.as_microsecond()) as f64 / 3_600_000_000.0
}

pub fn seconds_between(from: Timestamp, to: Timestamp) -> f64 {
    (to.as_microsecond() - from.as_microsecond()) as f64 / 1_000_000.0
}

/// A `--since`/`--until` value: a date (`2026-03-01`, midnight UTC) or a time stamp.
pub fn parse_bound(text: &str) -> std::result::Result<Timestamp, String> {
    if let Ok(at) = text.parse::<Timestamp>() {
        return Ok(at);
    }
    text.parse::<jiff::civil::Date>()
        .ok()
        .and_then(|date| date.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|zoned| zoned.timestamp())
        .ok_or_else(|| format!("'{text}' is neither a date (2026-03-01) nor a time stamp (2026-03-01T08:00:00Z)"))
}

/// Rounded for the tables (two decimals).
pub fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// Median, 90th percentile and longest of some durations (seconds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Spread {
    pub count: usize,
    pub median_s: f64,
    pub p90_s: f64,
    pub max_s: f64,
}

impl Spread {
    pub fn of(values: &[f64]) -> Self {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|value| value.is_finite()).collect();
        sorted.sort_by(f64::total_cmp);
        Spread {
            count: sorted.len(),
            median_s: round2(percentile(&sorted, 50.0)),
            p90_s: round2(percentile(&sorted, 90.0)),
            max_s: round2(sorted.last().copied().unwrap_or(0.0)),
        }
    }
}

/// The nearest-rank percentile of sorted values: the smallest value with at
/// least `p` percent of the values at or below it (0 for none).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

#[cfg(test)]
pub(crate) mod fixture;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles_of_known_durations() {
        let sorted: Vec<f64> = (1..=10).map(|n| n as f64 * 10.0).collect();
        assert_eq!(percentile(&sorted, 50.0), 50.0);
        assert_eq!(percentile(&sorted, 90.0), 90.0);
        assert_eq!(percentile(&sorted, 100.0), 100.0);
        // 20 values: p90 is the 18th.
        let twenty: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&twenty, 90.0), 18.0);
        let spread = Spread::of(&[7.0, 1.0, 3.0]);
        assert_eq!(spread, Spread { count: 3, median_s: 3.0, p90_s: 7.0, max_s: 7.0 });
        assert_eq!(Spread::of(&[]), Spread::default());
    }

    #[test]
    fn bounds_are_dates_or_time_stamps() {
        assert_eq!(stamp(parse_bound("2026-03-01").unwrap()), "2026-03-01T00:00:00Z");
        assert_eq!(stamp(parse_bound("2026-03-01T08:30:00Z").unwrap()), "2026-03-01T08:30:00Z");
        assert!(parse_bound("yesterday").unwrap_err().contains("'yesterday'"));
    }
}
