//! Everything the tool prints on stdout goes through here, in the format the
//! operator chose; logs and errors go to stderr.

use std::io::Write;

use crate::check_config::ConfigSummary;
use crate::error::Error;

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
