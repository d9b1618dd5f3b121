//! Where the time goes: how long each step and each action takes, how long
//! hosts wait between steps (in "Ready For Reinstall" for the operator, for
//! example), and the slowest hosts.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;

use super::{
    campaign_index, campaign_steps, hours_between, round2, seconds_between, HostHistory, Ledger, Spread, Window,
};
use crate::journal::{ActionOutcome, StepOutcome};

/// The slowest hosts listed.
pub const SLOWEST_HOSTS: usize = 10;

#[derive(Clone, Debug, Default, Serialize)]
pub struct TimeSpent {
    /// Steps that succeeded, started in the window.
    pub steps: Vec<StepTime>,
    /// Actions that ended, started in the window.
    pub actions: Vec<ActionTime>,
    /// From a step's success to the next step's first start, per pair of steps.
    pub waits: Vec<WaitTime>,
    pub slowest_hosts: Vec<SlowHost>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepTime {
    pub step: String,
    #[serde(flatten)]
    pub spread: Spread,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ActionTime {
    pub step: String,
    pub action: String,
    #[serde(flatten)]
    pub spread: Spread,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WaitTime {
    pub after: String,
    pub before: String,
    #[serde(flatten)]
    pub spread: Spread,
}

/// A host's time in the campaign so far.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SlowHost {
    pub host: String,
    /// From its first campaign step to its adoption (or the window's end).
    pub hours: f64,
    pub done: bool,
    /// Where it stands at the window's end.
    pub position: Option<String>,
    /// The step it spent the most time in or waiting before.
    pub longest_stretch: Option<String>,
    pub longest_stretch_hours: f64,
}

pub fn compute(ledger: &Ledger, histories: &BTreeMap<String, HostHistory>, window: &Window) -> TimeSpent {
    let in_window = |at: Timestamp| window.since <= at && at < window.until;
    let mut steps: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut waits: BTreeMap<(usize, usize), Vec<f64>> = BTreeMap::new();
    let mut slowest = Vec::new();
    for history in histories.values() {
        for step in &history.steps {
            if let (StepOutcome::Succeeded, Some(ended), true) = (step.row.outcome, step.ended, in_window(step.started))
            {
                steps.entry(step.row.step.clone()).or_default().push(seconds_between(step.started, ended));
            }
        }
        let host_waits = waits_of(history);
        for wait in &host_waits {
            if in_window(wait.from) {
                waits.entry((wait.after, wait.after + 1)).or_default().push(seconds_between(wait.from, wait.to));
            }
        }
        if let Some(slow) = slow_host(history, &host_waits, window) {
            slowest.push(slow);
        }
    }
    let mut actions: BTreeMap<(usize, String, String), Vec<f64>> = BTreeMap::new();
    for row in &ledger.actions {
        let (Some(started), Some(ended)) =
            (super::parse_time(&row.started_at), row.ended_at.as_deref().and_then(super::parse_time))
        else {
            continue;
        };
        if row.outcome == ActionOutcome::Intent || !in_window(started) {
            continue;
        }
        let order = campaign_index(&row.step).unwrap_or(usize::MAX);
        actions.entry((order, row.step.clone(), row.action.clone())).or_default().push(seconds_between(started, ended));
    }
    let names = campaign_steps();
    let mut steps: Vec<StepTime> =
        steps.into_iter().map(|(step, values)| StepTime { step, spread: Spread::of(&values) }).collect();
    steps.sort_by_key(|row| campaign_index(&row.step).unwrap_or(usize::MAX));
    slowest.sort_by(|a: &SlowHost, b| b.hours.total_cmp(&a.hours).then_with(|| a.host.cmp(&b.host)));
    slowest.truncate(SLOWEST_HOSTS);
    TimeSpent {
        steps,
        actions: actions
            .into_iter()
            .map(|((_, step, action), values)| ActionTime { step, action, spread: Spread::of(&values) })
            .collect(),
        waits: waits
            .into_iter()
            .map(|((after, before), values)| WaitTime {
                after: names[after].to_owned(),
                before: names[before].to_owned(),
                spread: Spread::of(&values),
            })
            .collect(),
        slowest_hosts: slowest,
    }
}

/// A host's wait after the success of the campaign step `after` until it
/// first started the next one.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Wait {
    after: usize,
    from: Timestamp,
    to: Timestamp,
}

fn waits_of(history: &HostHistory) -> Vec<Wait> {
    let mut waits = Vec::new();
    let mut succeeded: Option<(usize, Timestamp)> = None;
    for step in &history.steps {
        let Some(index) = campaign_index(&step.row.step) else { continue };
        if let Some((after, from)) = succeeded {
            if index == after + 1 && step.started >= from {
                waits.push(Wait { after, from, to: step.started });
                succeeded = None;
            }
        }
        if step.row.outcome == StepOutcome::Succeeded {
            // Re-running a step that already succeeded does not restart the wait.
            if succeeded.is_none_or(|(after, _)| after != index) {
                succeeded = Some((index, step.ended.unwrap_or(step.started)));
            }
        }
    }
    waits
}

fn slow_host(history: &HostHistory, waits: &[Wait], window: &Window) -> Option<SlowHost> {
    let first =
        history.steps.iter().filter(|step| campaign_index(&step.row.step).is_some()).map(|s| s.started).min()?;
    if first >= window.until {
        return None;
    }
    let adopted = history.successes().find(|(step, _)| *step == "adoption").map(|(_, at)| at);
    let end = adopted.filter(|at| *at <= window.until).unwrap_or(window.until);
    let mut stretches: BTreeMap<String, f64> = BTreeMap::new();
    for step in &history.steps {
        if campaign_index(&step.row.step).is_some() && step.started < end {
            let hours = hours_between(step.started, step.ended.unwrap_or(end).min(end));
            *stretches.entry(step.row.step.clone()).or_default() += hours.max(0.0);
        }
    }
    let names = campaign_steps();
    for wait in waits.iter().filter(|wait| wait.from < end) {
        let key = format!("waiting for {}", names[wait.after + 1]);
        *stretches.entry(key).or_default() += hours_between(wait.from, wait.to.min(end));
    }
    // A host not through: the time since its latest attempt ended (blocked, failed, or waiting).
    let latest = history.steps.iter().rfind(|step| campaign_index(&step.row.step).is_some());
    if let (None, Some(latest)) = (adopted.filter(|at| *at <= window.until), latest) {
        let since = latest.ended.unwrap_or(latest.started);
        if since < end {
            let key = format!("since {} {}", latest.row.step, latest.row.outcome.as_str());
            *stretches.entry(key).or_default() += hours_between(since, end);
        }
    }
    let longest = stretches.into_iter().max_by(|a, b| a.1.total_cmp(&b.1));
    Some(SlowHost {
        host: history.host.clone(),
        hours: round2(hours_between(first, end)),
        done: adopted.is_some_and(|at| at <= window.until),
        position: history.position_at(window.until).map(String::from),
        longest_stretch_hours: round2(longest.as_ref().map_or(0.0, |(_, hours)| *hours)),
        longest_stretch: longest.map(|(name, _)| name),
    })
}

#[cfg(test)]
mod tests {
    use crate::report::fixture::{self, at};
    use crate::report::{build, ReportSettings};

    #[test]
    fn steps_actions_waits_and_the_slowest_hosts() {
        let settings = ReportSettings { since: None, until: Some(at("2026-03-03T00:00:00Z")), ..Default::default() };
        let report = build(fixture::ledger(), &settings, at("2026-03-10T00:00:00Z")).unwrap();
        let spent = &report.time_spent;
        let step = |name: &str| spent.steps.iter().find(|row| row.step == name).unwrap().spread;
        // pre-drain: hv01 45 min, hv02 3 h 40 min.
        assert_eq!(
            (step("pre-drain").count, step("pre-drain").median_s, step("pre-drain").max_s),
            (2, 2700.0, 13200.0)
        );
        assert_eq!(step("pre-drain").p90_s, 13200.0);
        // migrate: hv01 100 min, hv02 29 min (failed: its time counts too).
        let migrate = spent.actions.iter().find(|row| row.action == "migrate").unwrap();
        assert_eq!((migrate.spread.count, migrate.spread.median_s, migrate.spread.max_s), (2, 1740.0, 6000.0));
        // hv01 waited from pre-reinstall (day 2 10:00) to post-reinstall (16:00).
        let wait = spent.waits.iter().find(|row| row.after == "pre-reinstall").unwrap();
        assert_eq!((wait.before.as_str(), wait.spread.max_s), ("post-reinstall", 6.0 * 3600.0));
        // hv01 went through in 37 h 10 min (day 1 07:00 to day 2 20:10); hv02 is still
        // going from day 1 09:00: 39 h, its longest stretch the wait before the drain (19 h 20 min),
        // longer than the 15 h 30 min since its drain failed (day 2 08:30).
        let hosts: Vec<(&str, f64, bool)> =
            spent.slowest_hosts.iter().map(|host| (host.host.as_str(), host.hours, host.done)).collect();
        assert_eq!(hosts, [("hv02.example.org", 39.0, false), ("hv01.example.org", 37.17, true)]);
        assert_eq!(spent.slowest_hosts[0].longest_stretch.as_deref(), Some("waiting for drain"));
        assert_eq!(spent.slowest_hosts[0].longest_stretch_hours, 19.33);
        // Three days later, the 63 h 30 min since the failed drain is the longest.
        let later = ReportSettings { until: Some(at("2026-03-05T00:00:00Z")), ..Default::default() };
        let report = build(fixture::ledger(), &later, at("2026-03-10T00:00:00Z")).unwrap();
        let stuck = &report.time_spent.slowest_hosts[0];
        assert_eq!(stuck.host, "hv02.example.org");
        assert_eq!(stuck.longest_stretch.as_deref(), Some("since drain failed"));
        assert_eq!(stuck.longest_stretch_hours, 63.5);
    }
}
