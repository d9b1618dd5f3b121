//! Burn-down: hosts per campaign position at the end of each day, and when
//! the campaign will be done at the recent rate.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::{campaign_steps, round2, stamp, HostHistory, Window};

/// The position of a host no campaign step succeeded on yet.
pub const NOT_STARTED: &str = "not started";
/// Days the forecast's rate is taken over (the window's last ones).
pub const RECENT_DAYS: usize = 14;

#[derive(Clone, Debug, Serialize)]
pub struct BurnDown {
    /// The positions, in campaign order (`not started` first, `adoption` = done, last).
    pub positions: Vec<String>,
    pub days: Vec<BurnDownDay>,
    pub forecast: Forecast,
}

/// Hosts per position at the end of one day (or at the window's end).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BurnDownDay {
    pub date: String,
    /// One count per position, in the order of `positions`.
    pub hosts: Vec<usize>,
}

/// When the last host will be done, at the recent rate.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Forecast {
    pub hosts_done: usize,
    pub hosts_left: usize,
    /// The days the rate was taken over.
    pub days_used: usize,
    /// Hosts done per day, on average over those days.
    pub rate_per_day: f64,
    /// The standard deviation of the hosts done per day over those days.
    pub spread_per_day: f64,
    /// At the rate: `None` when every host is done or none was done lately.
    pub expected_end: Option<String>,
    /// At the rate plus its spread.
    pub earliest_end: Option<String>,
    /// At the rate less its spread: `None` when that is no progress at all.
    pub latest_end: Option<String>,
}

pub fn compute(histories: &BTreeMap<String, HostHistory>, window: &Window) -> BurnDown {
    let steps = campaign_steps();
    let positions: Vec<String> = std::iter::once(NOT_STARTED).chain(steps.iter().copied()).map(String::from).collect();
    let count_at = |at: Timestamp| -> Vec<usize> {
        let mut counts = vec![0; positions.len()];
        for history in histories.values() {
            let index = history.position_at(at).and_then(|step| positions.iter().position(|p| p == step));
            counts[index.unwrap_or(0)] += 1;
        }
        counts
    };
    let mut days = Vec::new();
    let mut done_per_day = Vec::new();
    let mut done_before = *count_at(window.since).last().unwrap_or(&0);
    let utc = jiff::tz::TimeZone::UTC;
    let mut day = window.since.to_zoned(utc.clone()).date();
    loop {
        let Ok(start) = day.to_zoned(utc.clone()).map(|zoned| zoned.timestamp()) else { break };
        if start >= window.until {
            break;
        }
        let end = day.tomorrow().ok().and_then(|next| next.to_zoned(utc.clone()).ok()).map(|z| z.timestamp());
        let end = end.map_or(window.until, |end| end.min(window.until));
        let hosts = count_at(end);
        let done = *hosts.last().unwrap_or(&0);
        done_per_day.push(done as f64 - done_before as f64);
        done_before = done;
        days.push(BurnDownDay { date: day.to_string(), hosts });
        let Ok(next) = day.tomorrow() else { break };
        day = next;
    }
    let hosts_done = days.last().and_then(|day| day.hosts.last().copied()).unwrap_or(0);
    let forecast = forecast(hosts_done, histories.len() - hosts_done.min(histories.len()), &done_per_day, window.until);
    BurnDown { positions, days, forecast }
}

/// The forecast from the hosts done per day over the last [`RECENT_DAYS`].
fn forecast(hosts_done: usize, hosts_left: usize, done_per_day: &[f64], until: Timestamp) -> Forecast {
    let recent = &done_per_day[done_per_day.len().saturating_sub(RECENT_DAYS)..];
    let days_used = recent.len();
    let rate = if days_used == 0 { 0.0 } else { recent.iter().sum::<f64>() / days_used as f64 };
    let spread = if days_used == 0 {
        0.0
    } else {
        (recent.iter().map(|done| (done - rate).powi(2)).sum::<f64>() / days_used as f64).sqrt()
    };
    let end_at = |per_day: f64| -> Option<String> {
        if hosts_left == 0 || per_day <= 0.0 {
            return None;
        }
        let seconds = (hosts_left as f64 / per_day * 86_400.0).round() as i64;
        until.checked_add(SignedDuration::from_secs(seconds)).ok().map(stamp)
    };
    Forecast {
        hosts_done,
        hosts_left,
        days_used,
        rate_per_day: round2(rate),
        spread_per_day: round2(spread),
        expected_end: end_at(rate),
        earliest_end: end_at(rate + spread),
        latest_end: end_at(rate - spread),
    }
}

/// A day later, for the tests.
#[cfg(test)]
fn days_after(at: Timestamp, days: i64) -> Timestamp {
    use jiff::ToSpan;
    at.to_zoned(jiff::tz::TimeZone::UTC).checked_add(days.days()).unwrap().timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture::{self, at};
    use crate::report::{build, ReportSettings};

    #[test]
    fn a_constant_rate_forecasts_an_exact_end() {
        // Ten hosts; two are adopted on each of 1, 2 and 3 March.
        let since = at("2026-03-01T00:00:00Z");
        let until = at("2026-03-04T00:00:00Z");
        let settings = ReportSettings { since: Some(since), until: Some(until), ..Default::default() };
        let report = build(fixture::steady_campaign(10, 2, 3), &settings, until).unwrap();
        let burn = &report.burn_down;
        let dates: Vec<&str> = burn.days.iter().map(|day| day.date.as_str()).collect();
        assert_eq!(dates, ["2026-03-01", "2026-03-02", "2026-03-03"]);
        let done: Vec<usize> = burn.days.iter().map(|day| *day.hosts.last().unwrap()).collect();
        assert_eq!(done, [2, 4, 6]);
        // Each day: the two adopted, the rest pre-drained.
        assert_eq!(burn.days[0].hosts, [0, 0, 8, 0, 0, 0, 2]);
        let f = &burn.forecast;
        assert_eq!((f.hosts_done, f.hosts_left, f.days_used), (6, 4, 3));
        assert_eq!((f.rate_per_day, f.spread_per_day), (2.0, 0.0));
        // Four left at two a day: two days after the window's end.
        let expected = stamp(days_after(until, 2));
        assert_eq!(f.expected_end.as_deref(), Some(expected.as_str()));
        assert_eq!(f.earliest_end, f.expected_end);
        assert_eq!(f.latest_end, f.expected_end);
    }

    #[test]
    fn an_uneven_rate_has_a_spread_and_no_progress_no_end() {
        let f = forecast(4, 6, &[1.0, 3.0], at("2026-03-04T00:00:00Z"));
        assert_eq!((f.rate_per_day, f.spread_per_day), (2.0, 1.0));
        assert_eq!(f.earliest_end.as_deref(), Some("2026-03-06T00:00:00Z"), "6 at 3 a day");
        assert_eq!(f.latest_end.as_deref(), Some("2026-03-10T00:00:00Z"), "6 at 1 a day");
        let stalled = forecast(4, 6, &[0.0, 0.0], at("2026-03-04T00:00:00Z"));
        assert_eq!(stalled.expected_end, None);
    }
}
