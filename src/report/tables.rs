//! The report's tables as text cells: printed, written as CSV, shown on the page.

use super::Report;

/// One table: its file name, its header and its rows.
pub struct Table {
    /// Its title, in the human output and on the HTML page.
    pub title: &'static str,
    pub file: &'static str,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

fn table(title: &'static str, file: &'static str, header: &[&str], rows: Vec<Vec<String>>) -> Table {
    Table { title, file, header: header.iter().map(|name| name.to_string()).collect(), rows }
}

fn opt(value: &Option<String>) -> String {
    value.clone().unwrap_or_default()
}

/// Every table of the report, as text cells.
pub fn tables(report: &Report) -> Vec<Table> {
    let os = &report.os_time;
    let out = &os.out_of_service;
    let burn = &report.burn_down;
    let forecast = &burn.forecast;
    let spent = &report.time_spent;
    let holdups = &report.hold_ups;
    let m = &holdups.migrations;
    let spread =
        |s: &super::Spread| vec![s.count.to_string(), s.median_s.to_string(), s.p90_s.to_string(), s.max_s.to_string()];
    let mut burn_header = vec!["date"];
    burn_header.extend(burn.positions.iter().map(String::as_str));
    vec![
        table(
            "OS over time (host-hours)",
            "os_time.csv",
            &["os", "hosts_at_start", "hosts_at_end", "host_hours"],
            os.rows
                .iter()
                .map(|row| {
                    vec![
                        row.os.clone(),
                        row.hosts_at_start.to_string(),
                        row.hosts_at_end.to_string(),
                        row.host_hours.to_string(),
                    ]
                })
                .collect(),
        ),
        table(
            "Out of service",
            "out_of_service.csv",
            &["host_hours", "vcpu_hours", "ram_gib_hours", "hosts_out_at_end", "hosts_without_capacity"],
            vec![vec![
                out.host_hours.to_string(),
                out.vcpu_hours.to_string(),
                out.ram_gib_hours.to_string(),
                out.hosts_out_at_end.to_string(),
                out.hosts_without_capacity.join(" "),
            ]],
        ),
        table(
            "Burn-down (hosts per position)",
            "burn_down.csv",
            &burn_header,
            burn.days
                .iter()
                .map(|day| std::iter::once(day.date.clone()).chain(day.hosts.iter().map(usize::to_string)).collect())
                .collect(),
        ),
        table(
            "Forecast",
            "forecast.csv",
            &[
                "hosts_done",
                "hosts_left",
                "days_used",
                "rate_per_day",
                "spread_per_day",
                "expected_end",
                "earliest_end",
                "latest_end",
            ],
            vec![vec![
                forecast.hosts_done.to_string(),
                forecast.hosts_left.to_string(),
                forecast.days_used.to_string(),
                forecast.rate_per_day.to_string(),
                forecast.spread_per_day.to_string(),
                opt(&forecast.expected_end),
                opt(&forecast.earliest_end),
                opt(&forecast.latest_end),
            ]],
        ),
        table(
            "Step durations",
            "step_durations.csv",
            &["step", "count", "median_s", "p90_s", "max_s"],
            spent.steps.iter().map(|row| [vec![row.step.clone()], spread(&row.spread)].concat()).collect(),
        ),
        table(
            "Action durations",
            "action_durations.csv",
            &["step", "action", "count", "median_s", "p90_s", "max_s"],
            spent
                .actions
                .iter()
                .map(|row| [vec![row.step.clone(), row.action.clone()], spread(&row.spread)].concat())
                .collect(),
        ),
        table(
            "Waiting between steps",
            "waits.csv",
            &["after", "before", "count", "median_s", "p90_s", "max_s"],
            spent
                .waits
                .iter()
                .map(|row| [vec![row.after.clone(), row.before.clone()], spread(&row.spread)].concat())
                .collect(),
        ),
        table(
            "Slowest hosts",
            "slowest_hosts.csv",
            &["host", "hours", "done", "position", "longest_stretch", "longest_stretch_hours"],
            spent
                .slowest_hosts
                .iter()
                .map(|row| {
                    vec![
                        row.host.clone(),
                        row.hours.to_string(),
                        row.done.to_string(),
                        opt(&row.position),
                        opt(&row.longest_stretch),
                        row.longest_stretch_hours.to_string(),
                    ]
                })
                .collect(),
        ),
        table(
            "What holds it up",
            "hold_ups.csv",
            &["outcome", "step", "cause", "count", "hosts"],
            holdups
                .causes
                .iter()
                .map(|row| {
                    vec![
                        row.outcome.clone(),
                        row.step.clone(),
                        row.cause.clone(),
                        row.count.to_string(),
                        row.hosts.join(" "),
                    ]
                })
                .collect(),
        ),
        table(
            "VM migrations",
            "migrations.csv",
            &["count", "failures", "not_started", "p50_s", "p90_s", "max_s", "moves_per_vm", "most_moves_of_one_vm"],
            vec![vec![
                m.count.to_string(),
                m.failures.to_string(),
                m.not_started.to_string(),
                m.p50_s.to_string(),
                m.p90_s.to_string(),
                m.max_s.to_string(),
                m.moves_per_vm.to_string(),
                m.most_moves_of_one_vm.to_string(),
            ]],
        ),
    ]
}
