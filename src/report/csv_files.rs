//! `--csv DIR`: one CSV file per table of the report.

use std::path::{Path, PathBuf};

use super::Report;
use crate::error::{Error, Result};

/// One table: its file name, its header and its rows.
pub struct Table {
    pub file: &'static str,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

fn table(file: &'static str, header: &[&str], rows: Vec<Vec<String>>) -> Table {
    Table { file, header: header.iter().map(|name| name.to_string()).collect(), rows }
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
            "burn_down.csv",
            &burn_header,
            burn.days
                .iter()
                .map(|day| std::iter::once(day.date.clone()).chain(day.hosts.iter().map(usize::to_string)).collect())
                .collect(),
        ),
        table(
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
            "step_durations.csv",
            &["step", "count", "median_s", "p90_s", "max_s"],
            spent.steps.iter().map(|row| [vec![row.step.clone()], spread(&row.spread)].concat()).collect(),
        ),
        table(
            "action_durations.csv",
            &["step", "action", "count", "median_s", "p90_s", "max_s"],
            spent
                .actions
                .iter()
                .map(|row| [vec![row.step.clone(), row.action.clone()], spread(&row.spread)].concat())
                .collect(),
        ),
        table(
            "waits.csv",
            &["after", "before", "count", "median_s", "p90_s", "max_s"],
            spent
                .waits
                .iter()
                .map(|row| [vec![row.after.clone(), row.before.clone()], spread(&row.spread)].concat())
                .collect(),
        ),
        table(
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

/// Writes every table into `dir` (created private if missing); returns the files written.
pub fn write(report: &Report, dir: &Path) -> Result<Vec<PathBuf>> {
    crate::fs_security::refuse_symlink(dir)?;
    crate::fs_security::private_dir(dir)?;
    let mut written = Vec::new();
    for table in tables(report) {
        let path = dir.join(table.file);
        let mut writer = csv::Writer::from_writer(Vec::new());
        let io = |err: csv::Error| Error::io(&path, std::io::Error::other(err.to_string()));
        writer.write_record(&table.header).map_err(io)?;
        for row in &table.rows {
            writer.write_record(row.iter().map(|cell| csv_safe(cell).into_owned())).map_err(io)?;
        }
        let bytes = writer.into_inner().map_err(|err| Error::io(&path, std::io::Error::other(err.to_string())))?;
        crate::fs_security::write_private_file(&path, &bytes)?;
        written.push(path);
    }
    Ok(written)
}

/// A cell a spreadsheet would run as a formula (text from outside, such as a
/// reason) is kept as text.
fn csv_safe(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '@']) || (cell.starts_with('-') && cell.parse::<f64>().is_err()) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture::{self, at};
    use crate::report::{build, ReportSettings};

    #[test]
    fn one_file_per_table_with_its_header() {
        let settings = ReportSettings { until: Some(at("2026-03-03T00:00:00Z")), ..Default::default() };
        let report = build(fixture::ledger(), &settings, at("2026-03-10T00:00:00Z")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("csv");
        let files = write(&report, &out).unwrap();
        assert_eq!(files.len(), tables(&report).len());
        let mut reader = csv::Reader::from_path(out.join("burn_down.csv")).unwrap();
        let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(header[..3], ["date", "not started", "setup"]);
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 2, "1 and 2 March");
        assert_eq!(&rows[1][0], "2026-03-02");
        let causes = std::fs::read_to_string(out.join("hold_ups.csv")).unwrap();
        assert!(causes.contains("failed,drain,moved N of N VMs; not moved,1,hv02.example.org"), "{causes}");
        assert_eq!(csv_safe("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_safe("-1.5"), "-1.5");
    }
}
