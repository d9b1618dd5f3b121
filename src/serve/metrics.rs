//! `/metrics`: the ledger in the Prometheus text format (OpenMetrics), through
//! the Prometheus client crate, computed from the ledger (again only when it
//! changed, or after [`super::snapshot::MAX_AGE`]): hosts
//! per position and outcome, step and action durations, VM migrations by
//! outcome, runs and leases under way, the age of the oldest blocked host.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::api::HostSummary;
use super::{ApiError, Shared};
use crate::error::Result;
use crate::journal::{ActionRow, Journal, StepRow, SubCommandRow};
use crate::report::{parse_time, seconds_between, VM_MIGRATION};

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HostLabels {
    position: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    step: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    step: String,
    action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

/// What one scrape reads of the ledger.
pub struct Scrape {
    pub hosts: Vec<HostSummary>,
    pub steps: Vec<StepRow>,
    pub actions: Vec<ActionRow>,
    pub migrations: Vec<SubCommandRow>,
    pub runs_under_way: usize,
    pub leases: usize,
}

impl Scrape {
    pub fn read(journal: &Journal) -> Result<Self> {
        Ok(Scrape {
            hosts: super::api::summaries(journal)?,
            steps: journal.report_steps()?,
            actions: journal.report_actions()?,
            migrations: journal.report_sub_commands(VM_MIGRATION)?,
            runs_under_way: journal.runs_under_way()?.len(),
            leases: journal.leases()?.len(),
        })
    }
}

fn took(started: &str, ended: Option<&str>) -> Option<f64> {
    let (started, ended) = (parse_time(started)?, parse_time(ended?)?);
    Some(seconds_between(started, ended).max(0.0))
}

/// The text of one scrape at `now`.
pub fn encode(scrape: &Scrape, now: jiff::Timestamp) -> String {
    let mut registry = Registry::with_prefix("hvmigrate");

    let hosts = Family::<HostLabels, Gauge>::default();
    for host in &scrape.hosts {
        let position = host.position.clone().unwrap_or_else(|| "none".to_owned());
        hosts.get_or_create(&HostLabels { position, outcome: host.outcome.clone() }).inc();
    }
    registry.register("hosts", "Hosts per position (latest campaign step passed) and latest step outcome", hosts);

    let steps = Family::<StepLabels, Histogram, fn() -> Histogram>::new_with_constructor(|| {
        // One second to about three days.
        Histogram::new(exponential_buckets(1.0, 4.0, 10))
    });
    for row in &scrape.steps {
        if let Some(seconds) = took(&row.started_at, row.ended_at.as_deref()) {
            steps.get_or_create(&StepLabels { step: row.step.clone() }).observe(seconds);
        }
    }
    registry.register("step_duration_seconds", "Time each finished host step took", steps);

    let actions = Family::<ActionLabels, Histogram, fn() -> Histogram>::new_with_constructor(|| {
        // A tenth of a second to about seven hours.
        Histogram::new(exponential_buckets(0.1, 4.0, 10))
    });
    for row in &scrape.actions {
        if let Some(seconds) = took(&row.started_at, row.ended_at.as_deref()) {
            let labels = ActionLabels { step: row.step.clone(), action: row.action.clone() };
            actions.get_or_create(&labels).observe(seconds);
        }
    }
    registry.register("action_duration_seconds", "Time each finished action took", actions);

    let migrations = Family::<OutcomeLabels, Counter>::default();
    for row in &scrape.migrations {
        migrations.get_or_create(&OutcomeLabels { outcome: row.outcome.as_str().to_owned() }).inc();
    }
    registry.register("vm_migrations", "VM migrations the drains made or tried, by outcome", migrations);

    let runs = Gauge::<i64>::default();
    runs.set(scrape.runs_under_way as i64);
    registry.register("runs_under_way", "Runs under way on the ledger now", runs);
    let leases = Gauge::<i64>::default();
    leases.set(scrape.leases as i64);
    registry.register("leases_held", "Hosts held by a run now", leases);

    let oldest = scrape
        .hosts
        .iter()
        .filter(|host| host.outcome == "blocked")
        .filter_map(|host| parse_time(host.ended_at.as_deref().unwrap_or(&host.started_at)))
        .map(|since| seconds_between(since, now).max(0.0))
        .fold(0.0, f64::max);
    let blocked = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    blocked.set(oldest);
    registry.register(
        "oldest_blocked_host_age_seconds",
        "How long the host blocked longest has been blocked (0: none)",
        blocked,
    );

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("writing to a String cannot fail");
    text
}

#[utoipa::path(get, path = "/metrics", tag = "management",
    responses((status = 200, content_type = "application/openmetrics-text", body = String,
            description = "The Prometheus text format"),
        (status = 401, body = super::ErrorBody, description = "With --protect-metrics, without a token"),
        (status = 503, body = super::ErrorBody)))]
pub async fn metrics(State(state): State<Shared>) -> Response {
    match state.ledger.metrics().await {
        Ok(text) => (StatusCode::OK, [(header::CONTENT_TYPE, CONTENT_TYPE)], String::clone(&text)).into_response(),
        Err(err) => ApiError::into_response(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{ActionOutcome, StepOutcome};

    fn host(name: &str, position: Option<&str>, outcome: &str, ended: &str) -> HostSummary {
        HostSummary {
            host: name.into(),
            position: position.map(String::from),
            position_at: None,
            step: "drain".into(),
            outcome: outcome.into(),
            reason: None,
            started_at: ended.into(),
            ended_at: Some(ended.into()),
            os: None,
            held_by: None,
        }
    }

    #[test]
    fn the_scrape_counts_hosts_durations_migrations_and_the_oldest_block() {
        let step = |host: &str, started: &str, ended: &str| StepRow {
            id: 1,
            host: host.into(),
            step: "drain".into(),
            started_at: started.into(),
            ended_at: Some(ended.into()),
            outcome: StepOutcome::Succeeded,
            reason: None,
        };
        let migration = |outcome| SubCommandRow {
            host: "hv01".into(),
            step: "drain".into(),
            action: "migrate-vms".into(),
            name: VM_MIGRATION.into(),
            started_at: "2026-03-01T00:00:00Z".into(),
            ended_at: None,
            outcome,
            detail: None,
        };
        let scrape = Scrape {
            hosts: vec![
                host("hv01", Some("pre-drain"), "blocked", "2026-03-01T00:00:00Z"),
                host("hv02", Some("pre-drain"), "blocked", "2026-03-02T00:00:00Z"),
                host("hv03", None, "failed", "2026-03-02T00:00:00Z"),
            ],
            steps: vec![step("hv01", "2026-03-01T00:00:00Z", "2026-03-01T00:10:00Z")],
            actions: vec![],
            migrations: vec![
                migration(ActionOutcome::Done),
                migration(ActionOutcome::Done),
                migration(ActionOutcome::Failed),
            ],
            runs_under_way: 2,
            leases: 5,
        };
        let text = encode(&scrape, "2026-03-03T00:00:00Z".parse().unwrap());
        for line in [
            "hvmigrate_hosts{position=\"pre-drain\",outcome=\"blocked\"} 2",
            "hvmigrate_hosts{position=\"none\",outcome=\"failed\"} 1",
            "hvmigrate_step_duration_seconds_sum{step=\"drain\"} 600.0",
            "hvmigrate_step_duration_seconds_bucket{le=\"1024.0\",step=\"drain\"} 1",
            "hvmigrate_vm_migrations_total{outcome=\"done\"} 2",
            "hvmigrate_vm_migrations_total{outcome=\"failed\"} 1",
            "hvmigrate_runs_under_way 2",
            "hvmigrate_leases_held 5",
            "hvmigrate_oldest_blocked_host_age_seconds 172800.0",
        ] {
            assert!(text.lines().any(|got| got == line), "no line {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
