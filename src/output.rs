//! Everything the tool prints on stdout goes through here, in the format the
//! operator chose; logs and errors go to stderr.

use std::io::Write;

use crate::check_config::ConfigSummary;
use crate::error::Error;
use crate::reach::Reach;
use crate::tickets::TicketReport;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Human,
    Json,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Output {
    pub format: Format,
}

impl Output {
    pub fn new(format: Format) -> Self {
        Output { format }
    }

    pub fn config_summary(&self, summary: &ConfigSummary) {
        if self.format == Format::Json {
            return self.json(summary);
        }
        let mut text = String::new();
        let hosts = summary.hosts.len();
        text.push_str(&format!(
            "Hypervisors: {} ({hosts} host{})\n",
            summary.hypervisors_file.display(),
            plural(hosts)
        ));
        let width = summary.hosts.iter().map(|host| host.host.len()).max().unwrap_or(0);
        for host in &summary.hosts {
            let ticket = host.ticket.as_deref().unwrap_or("(no ticket)");
            text.push_str(&format!("  {:width$}  {ticket}\n", host.host));
        }
        text.push_str(&format!("Credentials: {}\n", summary.creds_file.display()));
        text.push_str(&format!(
            "  {:13}{}\n",
            "initials",
            summary.initials.as_deref().unwrap_or("not set (general.initials)")
        ));
        for service in &summary.services {
            text.push_str(&format!("  {:13}{}\n", service.service, service.detail));
        }
        self.print(&text);
    }

    /// The `--reach` table: one line per configured service.
    pub fn reach_table(&self, results: &[Reach]) {
        if self.format == Format::Json {
            return self.json(&results);
        }
        let mut text = String::from("Services:\n");
        let width = results.iter().map(|reach| reach.service.len()).max().unwrap_or(0).max("service".len());
        text.push_str(&format!(
            "  {:width$}  {:11}  {:>8}  {:16}  detail\n",
            "service", "result", "latency", "version"
        ));
        for reach in results {
            let result = if reach.ok { "reachable" } else { "UNREACHABLE" };
            let latency = format!("{} ms", reach.latency_ms);
            let version = reach.version.as_deref().unwrap_or("-");
            text.push_str(&format!(
                "  {:width$}  {result:11}  {latency:>8}  {version:16}  {}\n",
                reach.service, reach.detail
            ));
        }
        if results.is_empty() {
            text.push_str("  no service configured\n");
        }
        self.print(&text);
    }

    /// What `create-tickets` or `comment` did, host by host.
    pub fn ticket_report(&self, report: &TicketReport) {
        if self.format == Format::Json {
            return self.json(report);
        }
        let mut text = String::new();
        if report.dry_run {
            text.push_str("Dry run: nothing was changed.\n");
        }
        let width = report.entries.iter().map(|entry| entry.host.len()).max().unwrap_or(0);
        for entry in &report.entries {
            let key = entry.key.as_deref().unwrap_or("-");
            text.push_str(&format!("  {:width$}  {key:10}  {}", entry.host, entry.outcome));
            if let Some(error) = &entry.error {
                text.push_str(&format!(": {error}"));
            }
            text.push('\n');
        }
        if let (Some(file), Some(backup)) = (&report.rewritten, &report.backup) {
            text.push_str(&format!("Wrote the new keys into {} (backup: {})\n", file.display(), backup.display()));
        }
        let failed = report.failed();
        text.push_str(&format!(
            "{}: {} host{}, {failed} failed\n",
            report.command,
            report.entries.len(),
            plural(report.entries.len())
        ));
        self.print(&text);
    }

    /// An error that ends the command, on stderr.
    pub fn error(&self, error: &Error) {
        let mut stderr = std::io::stderr().lock();
        for line in error.to_string().lines() {
            let _ = writeln!(stderr, "error: {line}");
        }
    }

    fn json<T: serde::Serialize>(&self, value: &T) {
        let text = serde_json::to_string_pretty(value).expect("output types serialize");
        self.print(&format!("{text}\n"));
    }

    fn print(&self, text: &str) {
        let mut stdout = std::io::stdout().lock();
        // A closed pipe (`| head`) is not an error worth a panic.
        let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
    }
}

fn plural(count: usize) -> &'static str {
    if count == 1 {
        ""
    } else {
        "s"
    }
}
