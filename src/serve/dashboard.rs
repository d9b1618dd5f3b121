//! The dashboard: server-rendered pages that refresh themselves, with no
//! external asset and no script, readable on a phone. The overview has the
//! report's burn-down chart, the hosts per position, the hosts blocked or
//! failed and why, the runs under way and what they hold, and a searchable
//! host table; each host has a page with its timeline. Every text from the
//! ledger is escaped.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::middleware;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::api::{self, HostDetail, HostSummary, HostsQuery, RunUnderWayView};
use super::{ApiError, Shared};
use crate::error::Result;
use crate::journal::Journal;
use crate::report::html::escape;

/// Seconds between the pages' own refreshes.
pub const REFRESH_SECONDS: u32 = 30;
/// Rows of the host table on one page.
const TABLE_ROWS: usize = 200;

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = "\
body{font-family:system-ui,sans-serif;margin:0;color:#1a202c;background:#f7fafc}\
header{background:#2d3748;color:#fff;padding:.6em 1em;display:flex;flex-wrap:wrap;gap:1em;align-items:center}\
header a,header button{color:#fff;background:none;border:0;font:inherit;cursor:pointer;text-decoration:underline}\
header form{margin:0}main{padding:0 1em 2em;max-width:80em}h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.6em}\
.scroll{overflow-x:auto}table{border-collapse:collapse;background:#fff;min-width:20em}\
td,th{border:1px solid #cbd5e0;padding:.25em .5em;text-align:left;vertical-align:top}th{background:#edf2f7}\
td.n{text-align:right}.blocked{color:#b7791f;font-weight:bold}.failed{color:#c53030;font-weight:bold}\
.succeeded{color:#276749}.running{color:#2b6cb0}.interrupted{color:#6b46c1}\
.chart svg{max-width:100%;height:auto;background:#fff}\
.legend span{display:inline-block;margin-right:1em}.legend i{display:inline-block;width:.9em;height:.9em;margin-right:.3em;vertical-align:middle}\
.cards{display:flex;flex-wrap:wrap;gap:.6em}.card{background:#fff;border:1px solid #cbd5e0;padding:.4em .8em;border-radius:4px}\
.card b{display:block;font-size:1.4em}input,select,button.go{font:inherit;padding:.2em .4em}\
small{color:#4a5568}pre{white-space:pre-wrap;word-break:break-word;margin:0}";

fn page(title: &str, body: &str, refresh: bool) -> Response {
    let refresh =
        if refresh { format!("<meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">") } else { String::new() };
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">{refresh}\
         <title>{} · hvmigrate</title><style>{STYLE}</style></head><body>\
         <header><b>hvmigrate</b><a href=\"/\">Overview</a><a href=\"/api/v1/docs\">API</a>\
         <form method=\"post\" action=\"/logout\"><button type=\"submit\">Log out</button></form></header>\
         <main>{body}</main></body></html>\n",
        escape(title)
    );
    with_policy(Html(html).into_response())
}

fn with_policy(mut response: Response) -> Response {
    response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    response.headers_mut().insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// The login page (`error`: why the last try failed).
pub fn login_page(error: Option<&str>) -> String {
    let error = error.map(|error| format!("<p class=\"failed\">{}</p>", escape(error))).unwrap_or_default();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'\">\
         <title>Log in · hvmigrate</title><style>{STYLE}</style></head><body>\
         <header><b>hvmigrate</b></header><main><h1>Log in</h1>{error}\
         <form method=\"post\" action=\"/login\"><p><label>Token<br>\
         <input type=\"password\" name=\"token\" id=\"token\" autocomplete=\"current-password\" required size=\"40\"></label></p>\
         <p><button class=\"go\" type=\"submit\" id=\"login\">Log in</button></p></form>\
         <p><small>A token of the tokens file: <code>hvmigrate serve add-token --role read</code>.</small></p>\
         </main></body></html>\n"
    )
}

fn host_link(host: &str) -> String {
    let path: String = url::form_urlencoded::byte_serialize(host.as_bytes()).collect();
    format!("<a href=\"/hosts/{}\">{}</a>", escape(&path), escape(host))
}

fn outcome(text: &str) -> String {
    format!("<span class=\"{0}\">{0}</span>", escape(text))
}

fn opt(text: &Option<String>) -> String {
    text.as_deref().map(escape).unwrap_or_default()
}

/// What the overview shows, read at once.
struct Overview {
    hosts: Vec<HostSummary>,
    runs: Vec<RunUnderWayView>,
    chart: std::result::Result<String, String>,
}

fn read_overview(journal: &Journal) -> Result<Overview> {
    let hosts = api::summaries(journal)?;
    let runs = api::runs_under_way_of(journal)?;
    let settings = crate::report::ReportSettings::default();
    let chart = crate::report::from_journal(journal, &settings, crate::clock::now())
        .and_then(|report| crate::report::html::burn_down_chart(&report))
        .map_err(|err| err.to_string());
    Ok(Overview { hosts, runs, chart })
}

/// The positions in campaign order, `none` first, then any other found.
fn positions(hosts: &[HostSummary]) -> Vec<String> {
    let mut order: Vec<String> = std::iter::once("none".to_owned())
        .chain(crate::report::campaign_steps().into_iter().map(String::from))
        .collect();
    for host in hosts {
        let position = host.position.clone().unwrap_or_else(|| "none".to_owned());
        if !order.contains(&position) {
            order.push(position);
        }
    }
    order
}

/// The host table's search form: an empty field is no filter.
#[derive(Debug, Default, serde::Deserialize)]
struct Search {
    q: Option<String>,
    outcome: Option<String>,
}

async fn overview(State(state): State<Shared>, search: std::result::Result<Query<Search>, QueryRejection>) -> Response {
    let Ok(Query(search)) = search else {
        return ApiError::bad_request("bad query").into_response();
    };
    let wanted_outcome = search.outcome.clone().filter(|outcome| !outcome.is_empty());
    let query = HostsQuery {
        q: search.q.filter(|q| !q.is_empty()),
        outcome: match &wanted_outcome {
            Some(outcome) => match serde_json::from_value(serde_json::Value::String(outcome.clone())) {
                Ok(outcome) => Some(outcome),
                Err(_) => {
                    return ApiError::bad_request("outcome: running, succeeded, blocked, failed or interrupted")
                        .into_response()
                }
            },
            None => None,
        },
        ..HostsQuery::default()
    };
    let overview = match state.ledger.read(read_overview).await {
        Ok(overview) => overview,
        Err(err) => {
            return page(
                "Overview",
                &format!("<h1>The ledger does not answer</h1><p>{}</p>", escape(&err.message)),
                true,
            )
        }
    };
    let mut body = String::with_capacity(64 * 1024);
    let hosts = &overview.hosts;
    let count = |outcome: &str| hosts.iter().filter(|host| host.outcome == outcome).count();
    let done = hosts.iter().filter(|host| host.position.as_deref() == Some("adoption")).count();
    body.push_str(&format!(
        "<h1>Campaign</h1><div class=\"cards\" id=\"cards\">\
         <div class=\"card\"><b>{}</b>hosts</div><div class=\"card\"><b>{done}</b>through (adoption)</div>\
         <div class=\"card\"><b class=\"blocked\">{}</b>blocked</div><div class=\"card\"><b class=\"failed\">{}</b>failed</div>\
         <div class=\"card\"><b>{}</b>runs under way</div></div>",
        hosts.len(),
        count("blocked"),
        count("failed"),
        overview.runs.len()
    ));

    body.push_str("<h2>Burn-down</h2>");
    match &overview.chart {
        Ok(chart) => body.push_str(&format!("<div class=\"chart\">{chart}</div>")),
        Err(why) => body.push_str(&format!("<p>No chart yet: {}</p>", escape(why))),
    }

    // Hosts per position, by the outcome of their latest step.
    let outcomes = ["succeeded", "running", "blocked", "failed", "interrupted"];
    let mut grid: BTreeMap<(String, &str), usize> = BTreeMap::new();
    for host in hosts {
        let position = host.position.clone().unwrap_or_else(|| "none".to_owned());
        let column = outcomes.iter().find(|name| **name == host.outcome).copied().unwrap_or("running");
        *grid.entry((position, column)).or_default() += 1;
    }
    body.push_str(
        "<h2>Hosts per position</h2><div class=\"scroll\"><table id=\"positions\"><tr><th>position</th><th>hosts</th>",
    );
    for name in outcomes {
        body.push_str(&format!("<th>latest step {name}</th>"));
    }
    body.push_str("</tr>");
    for position in positions(hosts) {
        let row: Vec<usize> =
            outcomes.iter().map(|name| grid.get(&(position.clone(), *name)).copied().unwrap_or(0)).collect();
        let total: usize = row.iter().sum();
        body.push_str(&format!("<tr><td>{}</td><td class=\"n\">{total}</td>", escape(&position)));
        for cell in row {
            body.push_str(&format!("<td class=\"n\">{cell}</td>"));
        }
        body.push_str("</tr>");
    }
    body.push_str("</table></div>");

    let stuck: Vec<&HostSummary> =
        hosts.iter().filter(|host| host.outcome == "blocked" || host.outcome == "failed").collect();
    body.push_str(&format!("<h2>Blocked or failed ({})</h2>", stuck.len()));
    if stuck.is_empty() {
        body.push_str("<p>None.</p>");
    } else {
        body.push_str("<div class=\"scroll\"><table id=\"stuck\"><tr><th>host</th><th>step</th><th>outcome</th><th>since</th><th>why</th></tr>");
        for host in stuck {
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                host_link(&host.host),
                escape(&host.step),
                outcome(&host.outcome),
                escape(host.ended_at.as_deref().unwrap_or(&host.started_at)),
                opt(&host.reason)
            ));
        }
        body.push_str("</table></div>");
    }

    body.push_str(&format!("<h2>Runs under way ({})</h2>", overview.runs.len()));
    if overview.runs.is_empty() {
        body.push_str("<p>None.</p>");
    } else {
        body.push_str("<div class=\"scroll\"><table id=\"runs\"><tr><th>run</th><th>step</th><th>who</th><th>since</th><th>hosts</th><th>holding now</th></tr>");
        for run in &overview.runs {
            let holding: Vec<String> = run.holding.iter().map(|host| host_link(host)).collect();
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}@{} (pid {})</td><td>{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                escape(&run.run_id),
                escape(&run.step),
                escape(&run.user),
                escape(&run.machine),
                run.pid,
                escape(&run.started_at),
                run.hosts,
                holding.join(", ")
            ));
        }
        body.push_str("</table></div>");
    }

    let matching: Vec<&HostSummary> = hosts.iter().filter(|host| query.matches(host)).collect();
    body.push_str(&format!(
        "<h2>Hosts</h2><form method=\"get\" action=\"/\" id=\"search\"><input type=\"search\" name=\"q\" id=\"q\" \
         placeholder=\"host name\" value=\"{}\"> <select name=\"outcome\"><option value=\"\">any outcome</option>",
        opt(&query.q)
    ));
    for name in outcomes {
        let selected = if wanted_outcome.as_deref() == Some(name) { " selected" } else { "" };
        body.push_str(&format!("<option value=\"{name}\"{selected}>{name}</option>"));
    }
    body.push_str(&format!(
        "</select> <button class=\"go\" type=\"submit\">Search</button></form><p><small>{} of {} hosts{}</small></p>",
        matching.len(),
        hosts.len(),
        if matching.len() > TABLE_ROWS { format!(", the first {TABLE_ROWS} shown") } else { String::new() }
    ));
    body.push_str("<div class=\"scroll\"><table id=\"hosts\"><tr><th>host</th><th>position</th><th>latest step</th><th>outcome</th><th>OS</th><th>held by</th></tr>");
    for host in matching.iter().take(TABLE_ROWS) {
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            host_link(&host.host),
            escape(host.position.as_deref().unwrap_or("none")),
            escape(&host.step),
            outcome(&host.outcome),
            opt(&host.os),
            host.held_by
                .as_ref()
                .map(|lease| escape(&format!("{}@{} ({})", lease.user, lease.machine, lease.run_id)))
                .unwrap_or_default()
        ));
    }
    body.push_str("</table></div>");
    page("Overview", &body, true)
}

/// One line of a host's timeline.
struct Event {
    at: String,
    html: String,
}

async fn host_page(State(state): State<Shared>, Path(host): Path<String>) -> Response {
    let ticket = state.tickets.get(&host).cloned();
    let name = host.clone();
    let detail = match state.ledger.read(move |journal| api::host_detail(journal, &name, ticket)).await {
        Ok(Some(detail)) => detail,
        Ok(None) => {
            return page(
                &host,
                &format!("<h1>{}</h1><p>The ledger has no record of this host.</p>", escape(&host)),
                false,
            )
        }
        Err(err) => {
            return page(&host, &format!("<h1>The ledger does not answer</h1><p>{}</p>", escape(&err.message)), true)
        }
    };
    page(&detail.host, &host_body(&detail), true)
}

fn host_body(detail: &HostDetail) -> String {
    let mut body = format!("<h1 id=\"host\">{}</h1>", escape(&detail.host));
    body.push_str("<div class=\"scroll\"><table id=\"summary\">");
    let row = |key: &str, value: String| format!("<tr><th>{key}</th><td>{value}</td></tr>");
    if let Some(status) = &detail.status {
        body.push_str(&row("position", escape(status.position.as_deref().unwrap_or("none"))));
        body.push_str(&row("latest step", format!("{} {}", escape(&status.step), outcome(&status.outcome))));
        body.push_str(&row("why", opt(&status.reason)));
        body.push_str(&row("OS", opt(&status.os)));
    }
    body.push_str(&row("ticket", opt(&detail.ticket)));
    body.push_str(&row(
        "held by",
        detail
            .lease
            .as_ref()
            .map(|lease| {
                escape(&format!(
                    "run {} ({}@{}, pid {}) until {}",
                    lease.run_id, lease.user, lease.machine, lease.pid, lease.expires_at
                ))
            })
            .unwrap_or_else(|| "nobody".into()),
    ));
    if let Some(identity) = detail.identity.last() {
        body.push_str(&row(
            "identity",
            format!(
                "<pre>{}</pre><small>{} by {} ({})</small>",
                escape(&serde_json::to_string_pretty(&identity.record).unwrap_or_default()),
                escape(&identity.recorded_at),
                escape(&identity.step),
                escape(&identity.kind)
            ),
        ));
    }
    body.push_str("</table></div>");

    let mut events: Vec<Event> = Vec::new();
    for step in &detail.steps {
        events.push(Event {
            at: step.started_at.clone(),
            html: format!(
                "<tr><td>{}</td><td><b>{}</b></td><td>step</td><td>{}</td><td>{}</td></tr>",
                escape(&step.started_at),
                escape(&step.step),
                outcome(&step.outcome),
                opt(&step.reason)
            ),
        });
    }
    for action in &detail.actions {
        let mut what = Vec::new();
        for (label, value) in [
            ("observed", &action.observed),
            ("planned", &action.planned),
            ("changed", &action.change),
            ("previous", &action.previous),
            ("why", &action.reason),
        ] {
            if let Some(value) = value {
                what.push(format!("<small>{label}:</small> {}", escape(value)));
            }
        }
        events.push(Event {
            at: action.started_at.clone(),
            html: format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&action.started_at),
                escape(&action.step),
                escape(&action.action),
                outcome(&action.outcome),
                what.join("<br>")
            ),
        });
    }
    // Steps before their actions at the same instant.
    events.sort_by(|a, b| a.at.cmp(&b.at));
    body.push_str(&format!(
        "<h2>Timeline ({} steps, {} actions)</h2><div class=\"scroll\"><table id=\"timeline\">\
         <tr><th>when</th><th>step</th><th>action</th><th>outcome</th><th>details</th></tr>",
        detail.steps.len(),
        detail.actions.len()
    ));
    for event in events {
        body.push_str(&event.html);
    }
    body.push_str("</table></div>");
    body
}

pub fn routes(state: Shared) -> Router<Shared> {
    Router::new()
        .route("/", get(overview))
        .route("/hosts/{host}", get(host_page))
        .route_layer(middleware::from_fn_with_state(state, super::auth::require_dashboard))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_the_ledger_is_escaped_on_the_host_page() {
        let detail = HostDetail {
            host: "hv<script>".into(),
            ticket: Some("OPS-1\"><b>".into()),
            status: None,
            steps: vec![],
            actions: vec![api::ActionView {
                run_id: "r1".into(),
                step: "drain".into(),
                action: "migrate-vms".into(),
                outcome: "failed".into(),
                started_at: "2026-03-01T00:00:00Z".into(),
                ended_at: None,
                observed: Some("<img src=x onerror=alert(1)>".into()),
                planned: None,
                change: None,
                previous: None,
                reason: Some("a & b".into()),
            }],
            identity: vec![],
            lease: None,
            takeovers: vec![],
        };
        let html = host_body(&detail);
        assert!(!html.contains("<script>") && !html.contains("<img") && !html.contains("\"><b>"), "{html}");
        assert!(html.contains("hv&lt;script&gt;") && html.contains("&lt;img src=x") && html.contains("a &amp; b"));
    }
}
