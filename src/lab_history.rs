//! `hvmigrate lab history`: a long campaign laid down for reports and demos.
//! The real engine runs every step over the simulated site, as an operator
//! would run it day after day, while the engine's clock ([`crate::clock`]) is
//! simulated: steps spread over weeks, operators wait between steps (the
//! reinstall waits longest), some migrations fail and are retried the next
//! day, and the site's odd hosts block. The journal it leaves is exactly
//! what real runs write.

use std::path::PathBuf;
use std::sync::Arc;

use hvmigrate_lab::{Lab, LabOptions, WorldOptions};
use jiff::{SignedDuration, Timestamp};
use rand::{Rng, SeedableRng};

use crate::check_config::{self, InputPaths};
use crate::clients::http::RetryPolicy;
use crate::config::{HostName, KeyMode};
use crate::error::{Error, Result};
use crate::workflow::context::Services;
use crate::workflow::host_run::StopSignal;
use crate::workflow::manager::{self, RunSettings};
use crate::workflow::report::HostOutcome;
use crate::workflow::Step;

/// Simulated seconds per real second while a step runs: a drain of a few
/// real seconds reads as ten minutes or so (remote jobs' timeouts follow
/// this clock: faster would time them out).
const CLOCK_SCALE: f64 = 120.0;
/// Tries of one step on one host before the operator gives up on it (it stays blocked or failed).
const TRIES: u32 = 3;

#[derive(Clone, Debug)]
pub struct HistorySettings {
    pub hosts: usize,
    pub weeks: u32,
    pub seed: u64,
    /// The journal to write (it must not exist yet).
    pub state: PathBuf,
    /// Where the site files go (a new temporary folder when unset).
    pub dir: Option<PathBuf>,
}

/// What the history left behind.
#[derive(Debug, serde::Serialize)]
pub struct HistoryReport {
    pub journal: PathBuf,
    pub dir: PathBuf,
    pub started: String,
    pub ended: String,
    pub runs: usize,
    pub hosts_done: usize,
    pub hosts_stuck: Vec<String>,
}

/// One host's way through the campaign, as the simulated operator sees it.
#[derive(Clone, Debug)]
struct Plan {
    host: HostName,
    /// The next step to run (an index into [`Step::CAMPAIGN`]); past the end when done.
    next: usize,
    /// Not before then (the operator's wait).
    ready_at: Timestamp,
    tries: u32,
    stuck: bool,
}

pub async fn history(settings: &HistorySettings, run_log: &crate::logging::RunLog) -> Result<HistoryReport> {
    if settings.hosts == 0 || settings.weeks == 0 {
        return Err(Error::Usage("lab history needs at least one host and one week".into()));
    }
    if settings.state.exists() {
        return Err(Error::Usage(format!(
            "{} exists: lab history writes a new journal (remove it or name another)",
            settings.state.display()
        )));
    }
    let dir = match &settings.dir {
        Some(dir) => dir.clone(),
        None => tempfile::Builder::new()
            .prefix("hvmigrate-history-")
            .tempdir()
            .map_err(|err| Error::io(&std::env::temp_dir(), err))?
            .keep(),
    };
    let world = WorldOptions {
        hosts: settings.hosts,
        seed: settings.seed,
        short_service_hosts: true,
        host_alerts: true,
        ..WorldOptions::default()
    };
    let lab = Lab::start(LabOptions { world, ..LabOptions::default() })
        .await
        .map_err(|err| Error::Refused(format!("cannot start the simulated site: {err}")))?;
    lab.world().lock().time_scale = 120.0;
    let site_settings = "workflow:\n  drain:\n    poll_interval_ms: 100\n";
    let site = lab.write_site_files(&dir.join("site"), site_settings).map_err(|err| Error::io(&dir, err))?;
    let paths = InputPaths { hypervisors_file: site.hypervisors.clone(), creds_file: site.credentials.clone() };
    let (hypervisors, credentials) = check_config::load_inputs(&paths, KeyMode::Required)?;
    run_log.open(&dir.join("logs"), &paths.hypervisors_file)?;
    let credentials = Arc::new(credentials);
    let services = Arc::new(Services::connect(&credentials, RetryPolicy::default()).await?);
    let stop = StopSignal::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(settings.seed);

    // The campaign starts `weeks` ago on a Monday morning, so that a report of "now" covers it.
    let start = monday_morning_weeks_ago(settings.weeks);
    let end = start.checked_add(SignedDuration::from_hours(24 * 7 * i64::from(settings.weeks))).unwrap_or(start);
    let working_days = 5 * settings.weeks as usize;
    // New hosts start over the first two thirds of the campaign.
    let starting_days = (working_days * 2 / 3).max(1);
    let mut plans: Vec<Plan> = hypervisors
        .hypervisors
        .iter()
        .enumerate()
        .map(|(index, hv)| Plan {
            host: hv.host.clone(),
            next: 0,
            ready_at: working_day(start, index * starting_days / settings.hosts),
            tries: 0,
            stuck: false,
        })
        .collect();
    crate::clock::simulate(start, CLOCK_SCALE);
    let mut runs = 0;
    let mut day = 0;
    while day < working_days && plans.iter().any(|plan| !plan.stuck && plan.next < Step::CAMPAIGN.len()) {
        let morning = working_day(start, day);
        set_clock(morning);
        for (index, step) in Step::CAMPAIGN.into_iter().enumerate() {
            let now = crate::clock::now();
            let due: Vec<usize> = (0..plans.len())
                .filter(|&i| !plans[i].stuck && plans[i].next == index && plans[i].ready_at <= now)
                .collect();
            if due.is_empty() {
                continue;
            }
            if step == Step::PostReinstall {
                // The operator's part: the PXE reinstall of the hosts ready for it.
                for &i in &due {
                    if plans[i].tries == 0 {
                        lab.world()
                            .reinstall(plans[i].host.as_str())
                            .map_err(|err| Error::Refused(format!("the simulated reinstall failed: {err}")))?;
                    }
                }
            }
            if step == Step::Drain {
                // Now and then a VM's live migration fails (the lab fails it once): a retry moves it.
                let mut world = lab.world().lock();
                for &i in &due {
                    if plans[i].tries == 0 && rng.random_bool(0.15) {
                        let host = plans[i].host.as_str().to_owned();
                        if let Some(server) = world
                            .servers
                            .values_mut()
                            .find(|server| host == server.host || host.starts_with(&format!("{}.", server.host)))
                        {
                            server.fail_migration = true;
                        }
                    }
                }
            }
            let only: Vec<HostName> = due.iter().map(|&i| plans[i].host.clone()).collect();
            let run = RunSettings {
                step,
                parallel: only.len(),
                only,
                dry_run: false,
                force: false,
                redo: None,
                claim: None,
                journal: settings.state.clone(),
            };
            let summary = manager::run(
                &run,
                &hypervisors,
                credentials.clone(),
                services.clone(),
                crate::output::Output::default().progress(true),
                stop.clone(),
            )
            .await?;
            runs += 1;
            let finished = crate::clock::now();
            for report in &summary.hosts {
                let Some(plan) = plans.iter_mut().find(|plan| plan.host.as_str() == report.host) else { continue };
                match report.outcome {
                    HostOutcome::Succeeded | HostOutcome::AlreadyPast => {
                        plan.next += 1;
                        plan.tries = 0;
                        plan.ready_at = finished + operator_wait(&mut rng, plan.next);
                    }
                    _ => {
                        plan.tries += 1;
                        plan.stuck = plan.tries >= TRIES;
                        // Someone looks into it the next day or the one after.
                        plan.ready_at = finished + SignedDuration::from_hours(rng.random_range(20..50));
                    }
                }
            }
            // The operator goes on with the next step later in the day.
            crate::clock::advance(SignedDuration::from_mins(rng.random_range(10..90)));
        }
        day += 1;
    }
    let ended = crate::clock::now().min(end.max(crate::clock::now()));
    crate::clock::real();
    lab.shutdown().await;
    Ok(HistoryReport {
        journal: settings.state.clone(),
        dir,
        started: crate::report::stamp(start),
        ended: crate::report::stamp(ended),
        runs,
        hosts_done: plans.iter().filter(|plan| plan.next >= Step::CAMPAIGN.len()).count(),
        hosts_stuck: plans.iter().filter(|plan| plan.stuck).map(|plan| plan.host.to_string()).collect(),
    })
}

/// How long the operator lets a host wait before its step `next` (hours): the
/// reinstall is booked with the data-centre team and waits longest.
fn operator_wait(rng: &mut impl Rng, next: usize) -> SignedDuration {
    let hours = match Step::CAMPAIGN.get(next) {
        Some(Step::PostReinstall) => rng.random_range(20..96),
        Some(Step::Drain) => rng.random_range(2..40),
        Some(_) => rng.random_range(0..24),
        None => 0,
    };
    SignedDuration::from_hours(hours)
}

/// The simulated clock jumps to `at`, if that is later.
fn set_clock(at: Timestamp) {
    let now = crate::clock::now();
    if at > now {
        crate::clock::advance(at.duration_since(now));
    }
}

/// 08:00 UTC of the `day`-th working day (Monday to Friday) from `start`, a Monday.
fn working_day(start: Timestamp, day: usize) -> Timestamp {
    let calendar_days = (day / 5) * 7 + day % 5;
    start.checked_add(SignedDuration::from_hours(24 * calendar_days as i64)).unwrap_or(start)
}

fn monday_morning_weeks_ago(weeks: u32) -> Timestamp {
    let utc = jiff::tz::TimeZone::UTC;
    let today = Timestamp::now().to_zoned(utc.clone()).date();
    let back = i64::from(weeks) * 7 + i64::from(today.weekday().to_monday_zero_offset());
    let monday = today.checked_sub(jiff::Span::new().days(back)).unwrap_or(today);
    monday.at(8, 0, 0, 0).to_zoned(utc).map(|zoned| zoned.timestamp()).unwrap_or_else(|_| Timestamp::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn working_days_skip_weekends() {
        let monday: Timestamp = "2026-03-02T08:00:00Z".parse().unwrap();
        assert_eq!(working_day(monday, 4).to_string(), "2026-03-06T08:00:00Z");
        assert_eq!(working_day(monday, 5).to_string(), "2026-03-09T08:00:00Z");
        let start = monday_morning_weeks_ago(6);
        assert_eq!(start.to_zoned(jiff::tz::TimeZone::UTC).weekday(), jiff::civil::Weekday::Monday);
    }
}
