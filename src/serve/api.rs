//! The REST API under `/api/v1`: hosts (filtered, paged), one host with its
//! steps, actions, identity record, lease and ticket, the runs, the report
//! and the inventory. Every text from the ledger goes through
//! [`crate::redact::secrets`] on its way out (none should be there).

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::middleware;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, ErrorBody, Shared};
use crate::error::Result;
use crate::journal::{HostStatus, Journal, Lease};
use crate::redact;

/// Where a host stands: its position (the latest campaign step it passed),
/// its latest step and how that ended, its OS as last seen, who holds it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct HostSummary {
    pub host: String,
    /// The latest campaign step the host passed; null before the first.
    pub position: Option<String>,
    pub position_at: Option<String>,
    /// The latest step run on the host (maybe not passed).
    pub step: String,
    /// How it ended: running, succeeded, blocked, failed or interrupted.
    pub outcome: String,
    /// Why it blocked or failed.
    pub reason: Option<String>,
    pub started_at: String,
    pub ended_at: Option<String>,
    /// The OS the latest os-check saw (`rocky 9.4`).
    pub os: Option<String>,
    /// The run holding the host now, if one does.
    pub held_by: Option<LeaseView>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct LeaseView {
    pub run_id: String,
    pub step: String,
    pub user: String,
    pub machine: String,
    pub pid: u32,
    pub acquired_at: String,
    pub expires_at: String,
}

impl From<&Lease> for LeaseView {
    fn from(lease: &Lease) -> Self {
        LeaseView {
            run_id: lease.run_id.clone(),
            step: lease.step.clone(),
            user: lease.user.clone(),
            machine: lease.machine.clone(),
            pid: lease.pid,
            acquired_at: lease.acquired_at.clone(),
            expires_at: lease.expires_at.clone(),
        }
    }
}

/// One page of hosts.
#[derive(Debug, Serialize, ToSchema)]
pub struct HostPage {
    /// Hosts matching the filters, on every page.
    pub total: usize,
    pub page: u32,
    pub per_page: u32,
    pub hosts: Vec<HostSummary>,
}

#[derive(Clone, Copy, Debug, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeFilter {
    Running,
    Succeeded,
    Blocked,
    Failed,
    Interrupted,
}

impl OutcomeFilter {
    fn as_str(self) -> &'static str {
        match self {
            OutcomeFilter::Running => "running",
            OutcomeFilter::Succeeded => "succeeded",
            OutcomeFilter::Blocked => "blocked",
            OutcomeFilter::Failed => "failed",
            OutcomeFilter::Interrupted => "interrupted",
        }
    }
}

/// The filters of `/api/v1/hosts`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HostsQuery {
    /// Only hosts at this position (a campaign step, or `none` for those before the first).
    pub position: Option<String>,
    /// Only hosts whose latest step ended so.
    #[param(inline)]
    pub outcome: Option<OutcomeFilter>,
    /// Only hosts whose OS starts with this (`rocky 9`).
    pub os: Option<String>,
    /// Only hosts whose name holds this.
    pub q: Option<String>,
    /// The page, from 1 (to a million).
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<u32>,
    /// Hosts per page (1 to 1000; 100 by default).
    #[param(minimum = 1, maximum = 1000)]
    pub per_page: Option<u32>,
}

impl HostsQuery {
    pub fn matches(&self, host: &HostSummary) -> bool {
        let position = host.position.as_deref().unwrap_or("none");
        self.position.as_deref().is_none_or(|wanted| wanted == position)
            && self.outcome.is_none_or(|wanted| wanted.as_str() == host.outcome)
            && self.os.as_deref().is_none_or(|wanted| host.os.as_deref().is_some_and(|os| os.starts_with(wanted)))
            && self.q.as_deref().is_none_or(|wanted| host.host.contains(wanted))
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StepView {
    pub step: String,
    pub outcome: String,
    pub reason: Option<String>,
    pub started_at: String,
    pub ended_at: Option<String>,
}

/// An action as recorded: what it observed, what it planned and changed, the value before.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionView {
    pub run_id: String,
    pub step: String,
    pub action: String,
    /// intent, done, skipped, ok, recorded, blocked or failed.
    pub outcome: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub observed: Option<String>,
    pub planned: Option<String>,
    pub change: Option<String>,
    pub previous: Option<String>,
    pub reason: Option<String>,
}

/// A row of the host's identity history (canonical facts as recorded).
#[derive(Debug, Serialize, ToSchema)]
pub struct IdentityView {
    pub step: String,
    pub run_id: String,
    pub kind: String,
    pub recorded_at: String,
    #[schema(value_type = Object)]
    pub record: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TakeoverView {
    pub from_run: String,
    pub to_run: String,
    pub at: String,
    pub why: String,
}

/// Everything the ledger knows of one host.
#[derive(Debug, Serialize, ToSchema)]
pub struct HostDetail {
    pub host: String,
    /// Its Jira ticket, from the hypervisors file `serve` was given.
    pub ticket: Option<String>,
    pub status: Option<HostSummary>,
    pub steps: Vec<StepView>,
    pub actions: Vec<ActionView>,
    pub identity: Vec<IdentityView>,
    pub lease: Option<LeaseView>,
    pub takeovers: Vec<TakeoverView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OutputView {
    pub run_id: String,
    pub step: String,
    pub action: String,
    pub outcome: String,
    pub started_at: String,
    pub output: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunView {
    pub id: String,
    pub step: String,
    pub operator: String,
    pub dry_run: bool,
    pub forced: bool,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub outcome: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunUnderWayView {
    pub run_id: String,
    pub step: String,
    pub user: String,
    pub machine: String,
    pub pid: u32,
    /// Hosts the run works on in all.
    pub hosts: u32,
    /// Hosts it holds now.
    pub holding: Vec<String>,
    pub started_at: String,
}

/// The window of `/api/v1/report`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// Start: a date (2026-03-01, midnight UTC) or a time stamp, within ten years of now; default the first record.
    #[param(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z)?$")]
    pub since: Option<String>,
    /// End (same forms, within ten years of now); default now.
    #[param(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z)?$")]
    pub until: Option<String>,
}

fn clean(text: &str) -> String {
    redact::secrets(text)
}

fn clean_opt(text: &Option<String>) -> Option<String> {
    text.as_deref().map(clean)
}

/// `rocky 9.4` of `rocky 9.4, UEFI`.
fn os_of(observed: &str) -> Option<String> {
    let os = observed.split(',').next()?.trim();
    (!os.is_empty()).then(|| os.to_owned())
}

fn summary(status: &HostStatus, os: Option<String>) -> HostSummary {
    HostSummary {
        host: status.host.clone(),
        position: status.position.clone(),
        position_at: status.position_at.clone(),
        step: status.step.clone(),
        outcome: status.outcome.as_str().to_owned(),
        reason: clean_opt(&status.reason),
        started_at: status.started_at.clone(),
        ended_at: status.ended_at.clone(),
        os,
        held_by: status.held_by.as_ref().map(LeaseView::from),
    }
}

/// Every host of the ledger, by name.
pub fn summaries(journal: &Journal) -> Result<Vec<HostSummary>> {
    let os: BTreeMap<String, String> = journal
        .latest_observations("os-check")?
        .into_iter()
        .filter_map(|seen| os_of(&seen.observed).map(|os| (seen.host, os)))
        .collect();
    Ok(journal.host_statuses()?.iter().map(|status| summary(status, os.get(&status.host).cloned())).collect())
}

/// One host, `None` when the ledger has nothing of it.
pub fn host_detail(journal: &Journal, host: &str, ticket: Option<String>) -> Result<Option<HostDetail>> {
    let steps = journal.host_steps(host)?;
    let identity = journal.identity_history(Some(host))?;
    if steps.is_empty() && identity.is_empty() {
        return Ok(None);
    }
    let status = journal.host_statuses()?.into_iter().find(|status| status.host == host);
    let os = journal.latest_observations("os-check")?.into_iter().find(|seen| seen.host == host);
    let status = status.map(|status| summary(&status, os.and_then(|seen| os_of(&seen.observed))));
    Ok(Some(HostDetail {
        host: host.to_owned(),
        ticket,
        lease: status.as_ref().and_then(|status| status.held_by.clone()),
        status,
        steps: steps
            .iter()
            .map(|row| StepView {
                step: row.step.clone(),
                outcome: row.outcome.as_str().to_owned(),
                reason: clean_opt(&row.reason),
                started_at: row.started_at.clone(),
                ended_at: row.ended_at.clone(),
            })
            .collect(),
        actions: journal
            .host_history(host)?
            .iter()
            .map(|record| ActionView {
                run_id: record.run_id.clone(),
                step: record.step.clone(),
                action: record.action.clone(),
                outcome: record.outcome.as_str().to_owned(),
                started_at: record.started_at.clone(),
                ended_at: record.ended_at.clone(),
                observed: clean_opt(&record.observed),
                planned: clean_opt(&record.planned),
                change: clean_opt(&record.change),
                previous: clean_opt(&record.previous),
                reason: clean_opt(&record.reason),
            })
            .collect(),
        identity: identity
            .into_iter()
            .map(|row| IdentityView {
                record: serde_json::from_str(&clean(&row.record)).unwrap_or(serde_json::Value::Null),
                step: row.step,
                run_id: row.run_id,
                kind: row.kind,
                recorded_at: row.recorded_at,
            })
            .collect(),
        takeovers: journal
            .takeovers(host)?
            .into_iter()
            .map(|takeover| TakeoverView {
                from_run: takeover.from_run,
                to_run: takeover.to_run,
                at: takeover.at,
                why: clean(&takeover.why),
            })
            .collect(),
    }))
}

/// The last page `/api/v1/hosts` takes.
const MAX_PAGE: u32 = 1_000_000;

/// How far from now `/api/v1/report`'s bounds may be (ten years).
const MAX_BOUND_DAYS: i64 = 3653;

/// The forms the document gives `since` and `until`: `2026-03-01`,
/// `2026-03-01T08:00:00Z`, `2026-03-01T08:00:00.5Z` (no other offset).
fn documented_bound(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits =
        |range: std::ops::Range<usize>| bytes.get(range).is_some_and(|part| part.iter().all(u8::is_ascii_digit));
    let at = |index: usize, byte: u8| bytes.get(index) == Some(&byte);
    let date = digits(0..4) && at(4, b'-') && digits(5..7) && at(7, b'-') && digits(8..10);
    if !date || bytes.len() == 10 {
        return date;
    }
    let time = at(10, b'T') && digits(11..13) && at(13, b':') && digits(14..16) && at(16, b':') && digits(17..19);
    let rest = &text[19.min(text.len())..];
    let fraction = |part: &str| (1..=9).contains(&part.len()) && part.bytes().all(|byte| byte.is_ascii_digit());
    time && (rest == "Z" || rest.strip_prefix('.').and_then(|rest| rest.strip_suffix('Z')).is_some_and(fraction))
}

fn bad_query(rejection: QueryRejection) -> ApiError {
    ApiError::bad_request(format!("bad query: {}", rejection.body_text()))
}

#[utoipa::path(get, path = "/api/v1/hosts", tag = "hosts", params(HostsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = HostPage, description = "One page of the hosts matching the filters"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn hosts(
    State(state): State<Shared>,
    query: std::result::Result<Query<HostsQuery>, QueryRejection>,
) -> std::result::Result<Json<HostPage>, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    let page = query.page.unwrap_or(1);
    let per_page = query.per_page.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&page) {
        return Err(ApiError::bad_request(format!("page is 1 to {MAX_PAGE}")));
    }
    if !(1..=1000).contains(&per_page) {
        return Err(ApiError::bad_request("per_page is 1 to 1000"));
    }
    let all = state.ledger.summaries().await?;
    let matching: Vec<&HostSummary> = all.iter().filter(|host| query.matches(host)).collect();
    let skip = (page as usize - 1).saturating_mul(per_page as usize);
    Ok(Json(HostPage {
        total: matching.len(),
        page,
        per_page,
        hosts: matching.into_iter().skip(skip).take(per_page as usize).cloned().collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/hosts/{host}", tag = "hosts",
    params(("host" = String, Path, description = "The host's name as in the hypervisors file")),
    security(("bearer" = [])),
    responses((status = 200, body = HostDetail), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn host(
    State(state): State<Shared>,
    Path(host): Path<String>,
) -> std::result::Result<Json<HostDetail>, ApiError> {
    let ticket = state.tickets.get(&host).cloned();
    let name = host.clone();
    state
        .ledger
        .read(move |journal| host_detail(journal, &name, ticket))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("the ledger has no record of this host"))
}

#[utoipa::path(get, path = "/api/v1/hosts/{host}/outputs", tag = "hosts",
    params(("host" = String, Path, description = "The host's name")),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<OutputView>, description = "The output the host's actions kept (operate role)"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn outputs(
    State(state): State<Shared>,
    Path(host): Path<String>,
) -> std::result::Result<Json<Vec<OutputView>>, ApiError> {
    let outputs = state
        .ledger
        .read(move |journal| {
            if journal.host_steps(&host)?.is_empty() {
                return Ok(None);
            }
            journal.action_outputs(&host).map(Some)
        })
        .await?
        .ok_or_else(|| ApiError::not_found("the ledger has no record of this host"))?;
    Ok(Json(
        outputs
            .into_iter()
            .map(|output| OutputView {
                run_id: output.run_id,
                step: output.step,
                action: output.action,
                outcome: output.outcome.as_str().to_owned(),
                started_at: output.started_at,
                output: clean(&output.output),
            })
            .collect(),
    ))
}

#[utoipa::path(get, path = "/api/v1/runs", tag = "runs", security(("bearer" = [])),
    responses((status = 200, body = Vec<RunView>, description = "Every run, the latest first"),
        (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn runs(State(state): State<Shared>) -> std::result::Result<Json<Vec<RunView>>, ApiError> {
    let runs = state.ledger.read(|journal| journal.runs()).await?;
    Ok(Json(
        runs.into_iter()
            .map(|run| RunView {
                operator: clean(&run.operator),
                id: run.id,
                step: run.step,
                dry_run: run.dry_run,
                forced: run.forced,
                started_at: run.started_at,
                ended_at: run.ended_at,
                outcome: run.outcome,
            })
            .collect(),
    ))
}

pub fn runs_under_way_of(journal: &Journal) -> Result<Vec<RunUnderWayView>> {
    Ok(journal
        .runs_under_way()?
        .into_iter()
        .map(|run| RunUnderWayView {
            run_id: run.run_id,
            step: run.step,
            user: run.user,
            machine: run.machine,
            pid: run.pid,
            hosts: run.hosts,
            holding: run.holding,
            started_at: run.started_at,
        })
        .collect())
}

#[utoipa::path(get, path = "/api/v1/runs/under-way", tag = "runs", security(("bearer" = [])),
    responses((status = 200, body = Vec<RunUnderWayView>, description = "The runs under way and the hosts they hold"),
        (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn runs_under_way(State(state): State<Shared>) -> std::result::Result<Json<Vec<RunUnderWayView>>, ApiError> {
    Ok(Json(state.ledger.read(runs_under_way_of).await?))
}

#[utoipa::path(get, path = "/api/v1/report", tag = "report", params(ReportQuery), security(("bearer" = [])),
    responses((status = 200, body = Object,
            description = "The campaign report of `hvmigrate report --all --output json` (docs/report.schema.json)"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn report(
    State(state): State<Shared>,
    query: std::result::Result<Query<ReportQuery>, QueryRejection>,
) -> std::result::Result<Json<serde_json::Value>, ApiError> {
    use crate::report::{self, ReportSettings};
    let Query(query) = query.map_err(bad_query)?;
    let bound = |name: &str, value: &Option<String>| {
        value
            .as_deref()
            .map(|text| {
                if !documented_bound(text) {
                    return Err(ApiError::bad_request(format!(
                        "{name}: a date (2026-03-01) or a UTC time stamp (2026-03-01T08:00:00Z)"
                    )));
                }
                report::parse_bound(text).map_err(|err| ApiError::bad_request(format!("{name}: {err}")))
            })
            .transpose()
    };
    let settings =
        ReportSettings { hosts: None, since: bound("since", &query.since)?, until: bound("until", &query.until)? };
    // The burn-down has a row per day: a window of centuries would be work for nothing.
    let now = crate::clock::now();
    for at in [settings.since, settings.until].into_iter().flatten() {
        if (at.as_second() - now.as_second()).abs() > MAX_BOUND_DAYS * 86_400 {
            return Err(ApiError::bad_request(format!("since and until are within {MAX_BOUND_DAYS} days of now")));
        }
    }
    let built = state.ledger.read(move |journal| report::from_journal(journal, &settings, crate::clock::now())).await?;
    serde_json::to_value(&built).map(Json).map_err(|err| ApiError::unavailable(err.to_string()))
}

#[utoipa::path(get, path = "/api/v1/inventory", tag = "report", security(("bearer" = [])),
    responses((status = 200, body = Object,
            description = "Every host's identity record and history, and the duplicates (`hvmigrate inventory --output json`)"),
        (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn inventory(State(state): State<Shared>) -> std::result::Result<Json<serde_json::Value>, ApiError> {
    let rows = state.ledger.read(|journal| journal.identity_history(None)).await?;
    let rows: Vec<_> =
        rows.into_iter().map(|row| (row.host, row.step, row.kind, row.recorded_at, clean(&row.record))).collect();
    let inventory = crate::identity::inventory(&rows, None);
    serde_json::to_value(&inventory).map(Json).map_err(|err| ApiError::unavailable(err.to_string()))
}

pub fn routes(state: Shared) -> Router<Shared> {
    let read = Router::new()
        .route("/api/v1/hosts", get(hosts))
        .route("/api/v1/hosts/{host}", get(host))
        .route("/api/v1/runs", get(runs))
        .route("/api/v1/runs/under-way", get(runs_under_way))
        .route("/api/v1/report", get(report))
        .route("/api/v1/inventory", get(inventory))
        .route("/api/v1/openapi.json", get(super::openapi::document))
        .route("/api/v1/docs", get(super::openapi::page))
        .route_layer(middleware::from_fn_with_state(state.clone(), super::auth::require_read_api));
    let operate = Router::new()
        .route("/api/v1/hosts/{host}/outputs", get(outputs))
        .route_layer(middleware::from_fn_with_state(state, super::auth::require_operate_api));
    read.merge(operate)
}

#[cfg(test)]
mod tests {
    use super::documented_bound;

    #[test]
    fn report_bounds_are_the_documented_forms_only() {
        for good in ["2026-03-01", "2026-03-01T08:00:00Z", "2026-03-01T08:00:00.123Z"] {
            assert!(documented_bound(good), "{good}");
        }
        for bad in ["2026-3-01", "2026-03-01T08:00:00", "2026-03-01T08:00:00+01:00", "2026-03-01T08:00:00.Z", "x", ""] {
            assert!(!documented_bound(bad), "{bad}");
        }
    }
}
