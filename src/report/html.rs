//! `--html FILE`: one self-contained page (no network, no external asset)
//! with the report's tables and SVG charts drawn by plotters: the burn-down
//! (positions stacked over time), the host-hours per OS and the step durations.
//! The charts' text is SVG text the browser lays out: no font is read here.

use std::path::Path;

use plotters::prelude::*;

use super::tables::tables;
use super::Report;
use crate::error::{Error, Result};

pub const BURN_DOWN_CHART: &str = "Burn-down: hosts per position";
pub const OS_CHART: &str = "Host-hours per OS";
pub const STEP_CHART: &str = "Step durations (median and p90, hours)";

const WIDTH: u32 = 860;
const HEIGHT: u32 = 360;
/// One colour per position, `not started` first.
const COLOURS: [RGBColor; 8] = [
    RGBColor(0xbd, 0xbd, 0xbd),
    RGBColor(0x9e, 0xca, 0xe1),
    RGBColor(0x42, 0x92, 0xc6),
    RGBColor(0xf1, 0x69, 0x13),
    RGBColor(0xfd, 0xae, 0x6b),
    RGBColor(0x74, 0xc4, 0x76),
    RGBColor(0x23, 0x8b, 0x45),
    RGBColor(0x6a, 0x51, 0xa3),
];

/// The page's titles (charts, then tables): each is on the page.
pub fn titles(report: &Report) -> Vec<String> {
    [BURN_DOWN_CHART, OS_CHART, STEP_CHART]
        .into_iter()
        .map(String::from)
        .chain(tables(report).into_iter().map(|table| table.title.to_owned()))
        .collect()
}

/// The whole page.
pub fn page(report: &Report) -> Result<String> {
    let mut html = String::with_capacity(64 * 1024);
    html.push_str(concat!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n",
        // Nothing may be fetched: the page carries everything it shows.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n",
        "<title>Campaign report</title>\n<style>\n",
        "body{font-family:sans-serif;margin:1.5em;color:#222;background:#fff}\n",
        "table{border-collapse:collapse;margin:.4em 0 1.4em}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}\n",
        "th{background:#eee}td.n{text-align:right}section.chart{margin-bottom:1.2em}\n",
        ".legend span{display:inline-block;margin-right:1em}.legend i{display:inline-block;width:.9em;height:.9em;margin-right:.3em;vertical-align:middle}\n",
        "</style></head><body>\n"
    ));
    html.push_str(&format!(
        "<h1>Campaign report</h1>\n<p>{} hosts, from {} to {}.</p>\n",
        report.hosts,
        escape(&report.since),
        escape(&report.until)
    ));
    let charts = [
        (BURN_DOWN_CHART, burn_down_svg(report)?, format!("<p class=\"legend\">{}</p>", legend(report))),
        (OS_CHART, os_svg(report)?, String::new()),
        (STEP_CHART, steps_svg(report)?, String::new()),
    ];
    for (title, svg, after) in charts {
        html.push_str(&format!("<section class=\"chart\"><h2>{}</h2>\n{svg}\n{after}</section>\n", escape(title)));
    }
    for table in tables(report) {
        html.push_str(&format!("<h2>{}</h2>\n<table><thead><tr>", escape(table.title)));
        for name in &table.header {
            html.push_str(&format!("<th>{}</th>", escape(name)));
        }
        html.push_str("</tr></thead><tbody>\n");
        if table.rows.is_empty() {
            html.push_str(&format!("<tr><td colspan=\"{}\">(none)</td></tr>\n", table.header.len()));
        }
        for row in &table.rows {
            html.push_str("<tr>");
            for cell in row {
                let class = if cell.parse::<f64>().is_ok() { " class=\"n\"" } else { "" };
                html.push_str(&format!("<td{class}>{}</td>", escape(cell)));
            }
            html.push_str("</tr>\n");
        }
        html.push_str("</tbody></table>\n");
    }
    html.push_str("</body></html>\n");
    Ok(html)
}

/// Writes the page (private: it names hosts and reasons).
pub fn write(report: &Report, file: &Path) -> Result<()> {
    crate::fs_security::refuse_symlink(file)?;
    crate::fs_security::write_private_file(file, page(report)?.as_bytes())
}

fn chart_error(err: impl std::fmt::Display) -> Error {
    Error::Refused(format!("cannot draw the report's chart: {err}"))
}

fn font() -> TextStyle<'static> {
    ("sans-serif", 13).into_font().into()
}

/// The positions stacked over the days: each layer is the count of hosts at
/// that position or a later one, drawn from the back (every host) to the front.
fn burn_down_svg(report: &Report) -> Result<String> {
    let burn = &report.burn_down;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let days = burn.days.len().max(1);
        let hosts = report.hosts.max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(BURN_DOWN_CHART, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(44)
            .build_cartesian_2d(0f64..(days.max(2) - 1) as f64, 0f64..hosts as f64)
            .map_err(chart_error)?;
        let dates: Vec<String> = burn.days.iter().map(|day| day.date.clone()).collect();
        chart
            .configure_mesh()
            .x_labels(days.min(8))
            .x_label_formatter(&|x| dates.get(x.round() as usize).cloned().unwrap_or_default())
            .y_desc("hosts")
            .label_style(font())
            .draw()
            .map_err(chart_error)?;
        for layer in 0..burn.positions.len() {
            // Hosts at this position or further along.
            let points: Vec<(f64, f64)> = burn
                .days
                .iter()
                .enumerate()
                .map(|(index, day)| (index as f64, day.hosts[layer..].iter().sum::<usize>() as f64))
                .collect();
            let colour = COLOURS[layer % COLOURS.len()];
            chart.draw_series(AreaSeries::new(points, 0.0, colour.filled())).map_err(chart_error)?;
        }
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

fn os_svg(report: &Report) -> Result<String> {
    let bars: Vec<(String, f64)> = report.os_time.rows.iter().map(|row| (row.os.clone(), row.host_hours)).collect();
    bar_chart(OS_CHART, "host-hours", &bars, &[])
}

fn steps_svg(report: &Report) -> Result<String> {
    let steps = &report.time_spent.steps;
    let medians: Vec<(String, f64)> =
        steps.iter().map(|row| (row.step.clone(), row.spread.median_s / 3600.0)).collect();
    let p90s: Vec<f64> = steps.iter().map(|row| row.spread.p90_s / 3600.0).collect();
    bar_chart(STEP_CHART, "hours", &medians, &p90s)
}

/// One bar per label; with `behind`, a paler, wider bar behind each (the p90).
fn bar_chart(title: &str, unit: &str, bars: &[(String, f64)], behind: &[f64]) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let top = bars.iter().map(|(_, value)| *value).chain(behind.iter().copied()).fold(0.0, f64::max);
        let top = if top > 0.0 { top * 1.1 } else { 1.0 };
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(-0.5f64..(bars.len().max(1) as f64 - 0.5), 0f64..top)
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc(unit)
            .label_style(font())
            .draw()
            .map_err(chart_error)?;
        let pale = COLOURS[1];
        chart
            .draw_series(behind.iter().enumerate().map(|(index, value)| {
                let x = index as f64;
                Rectangle::new([(x - 0.35, 0.0), (x + 0.35, *value)], pale.filled())
            }))
            .map_err(chart_error)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(index, (_, value))| {
                let x = index as f64;
                Rectangle::new([(x - 0.2, 0.0), (x + 0.2, *value)], COLOURS[2].filled())
            }))
            .map_err(chart_error)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(index, (label, value))| {
                EmptyElement::at((index as f64, 0.0))
                    + Text::new(label.clone(), (-30, 8), font())
                    + Text::new(format!("{value:.1}"), (-12, -18), font())
            }))
            .map_err(chart_error)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

/// The burn-down chart (SVG) and its legend, for other pages (`serve`'s dashboard).
pub fn burn_down_chart(report: &Report) -> Result<String> {
    Ok(format!("{}\n<p class=\"legend\">{}</p>", burn_down_svg(report)?, legend(report)))
}

/// One coloured square and name per position.
fn legend(report: &Report) -> String {
    report
        .burn_down
        .positions
        .iter()
        .enumerate()
        .map(|(index, position)| {
            let RGBColor(r, g, b) = COLOURS[index % COLOURS.len()];
            format!("<span><i style=\"background:#{r:02x}{g:02x}{b:02x}\"></i>{}</span>", escape(position))
        })
        .collect()
}

/// Text from the journal (host names, reasons) is shown, never run.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture::{self, at};
    use crate::report::{build, ReportSettings};

    #[test]
    fn the_page_holds_every_title_three_charts_and_no_outside_reference() {
        let settings = ReportSettings { until: Some(at("2026-03-03T00:00:00Z")), ..Default::default() };
        let mut ledger = fixture::ledger();
        ledger.steps.last_mut().unwrap().reason = Some("<script>alert(1)</script>".into());
        let report = build(ledger, &settings, at("2026-03-10T00:00:00Z")).unwrap();
        let page = page(&report).unwrap();
        for title in titles(&report) {
            assert!(page.contains(&format!("<h2>{}</h2>", escape(&title))), "{title}");
        }
        assert_eq!(page.matches("<svg").count(), 3);
        assert!(!page.contains("<script"), "text from the journal is escaped");
        // The SVG namespace is a name, not a fetch.
        let page = page.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
        assert!(!page.contains("http://") && !page.contains("https://") && !page.contains("src="), "self-contained");
    }
}
