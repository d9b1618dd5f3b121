//! Everything the tool prints on stdout goes through here, in the format the
//! operator chose; logs and errors go to stderr.

use std::io::Write;

use crate::check_config::ConfigSummary;
use crate::error::Error;
use crate::journal::{ActionRecord, HostStatus};
use crate::reach::Reach;
use crate::tickets::TicketReport;
use crate::workflow::host_run::Progress;
use crate::workflow::manager::RunSummary;
use crate::workflow::report::HostReport;

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

    /// The end of a run: one row per host, then where to look.
    pub fn run_summary(&self, summary: &RunSummary, run_log: Option<&std::path::Path>) {
        if self.format == Format::Json {
            return self.json(summary);
        }
        let mut text =
            format!("\n{} over {} host{}:\n", summary.step, summary.hosts.len(), plural(summary.hosts.len()));
        if summary.dry_run {
            text.push_str(&format!("Plan of {} (dry run: nothing was changed)\n", summary.step));
            for host in &summary.hosts {
                text.push_str(&format!("{} ({}):\n", host.host, host.ticket));
                for action in &host.actions {
                    // An action that only records shows what it saw (the drain's census).
                    let detail = match action.outcome.detail() {
                        Some(detail) => format!(": {detail}"),
                        None if !action.observed.is_empty() => format!(": {}", action.observed),
                        None => String::new(),
                    };
                    text.push_str(&format!("  {:18} {}{detail}\n", action.action, action.outcome.label()));
                }
                if let Some(reason) = host.reason.as_deref().filter(|_| host.actions.is_empty()) {
                    text.push_str(&format!("  {reason}\n"));
                }
            }
            text.push('\n');
        }
        let rows: Vec<[String; 5]> = summary
            .hosts
            .iter()
            .map(|host| {
                [
                    host.host.clone(),
                    host.step.to_string(),
                    host.outcome.label().to_owned(),
                    format!("{:.1}s", host.duration.as_secs_f64()),
                    host.reason.clone().unwrap_or_default(),
                ]
            })
            .collect();
        text.push_str(&table(&["HOST", "STEP", "OUTCOME", "DURATION", "REASON"], &rows));
        text.push_str(&vm_table(summary));
        let failed = summary.hosts.iter().filter(|host| !host.outcome.is_success()).count();
        text.push_str(&format!(
            "\n{} host{}: {} ok, {failed} not ok. Run {}.\n",
            summary.hosts.len(),
            plural(summary.hosts.len()),
            summary.hosts.len() - failed,
            summary.run_id
        ));
        if !summary.dry_run {
            text.push_str(&format!("Journal: {}\n", summary.journal.display()));
        }
        if let Some(log) = run_log {
            text.push_str(&format!("Run log: {}\n", log.display()));
        }
        self.print(&text);
    }

    /// The demo's stand-in for the operator: the hosts it reinstalled over PXE.
    pub fn demo_reinstalled(&self, hosts: &[String]) {
        if self.format == Format::Json || hosts.is_empty() {
            return;
        }
        self.print(&format!(
            "\nReinstalled over PXE (the operator's part, simulated): {}\n",
            hosts.iter().map(|host| host.split('.').next().unwrap_or(host)).collect::<Vec<_>>().join(", ")
        ));
    }

    /// The end of the demo: where the tickets stand and where to look.
    pub fn demo_report(&self, report: &crate::demo::DemoReport) {
        if self.format == Format::Json {
            return self.json(report);
        }
        let rows: Vec<[String; 7]> = report
            .hosts
            .iter()
            .map(|host| {
                [
                    host.host.clone(),
                    host.ticket.clone(),
                    host.status.clone(),
                    host.os.clone(),
                    host.nova.clone(),
                    if host.in_scc { "uploaded" } else { "-" }.to_owned(),
                    host.stopped.clone().unwrap_or_default(),
                ]
            })
            .collect();
        let mut text = String::from("\nWhere the campaign left each host of the simulated site:\n");
        text.push_str(&table(&["HOST", "TICKET", "JIRA STATUS", "OS", "NOVA", "SCC", "STOPPED AT"], &rows));
        text.push_str(&format!("\nEverything the demo wrote is in {}:\n", report.dir.display()));
        text.push_str(&format!("  site files  {}\n", report.dir.join("site").display()));
        if let Some(log) = &report.run_log {
            text.push_str(&format!("  run log     {}\n", log.display()));
        }
        text.push_str(&format!("  journal     {}\n", report.journal.display()));
        text.push_str(&format!("  report      {}\n", report.report.display()));
        text.push_str(&format!(
            "The campaign report:    hvmigrate report --all --state {}\n",
            report.journal.display()
        ));
        text.push_str(&format!("Where each host stands: hvmigrate status --state {}\n", report.journal.display()));
        text.push_str(&format!(
            "One host's history:    hvmigrate status --state {} --host <host>\n",
            report.journal.display()
        ));
        text.push_str("To play with a live site: hvmigrate lab serve, then hvmigrate lab show\n");
        self.print(&text);
    }

    /// `hvmigrate status`: where every host stands.
    pub fn host_statuses(&self, statuses: &[HostStatus]) {
        if self.format == Format::Json {
            return self.json(&statuses);
        }
        if statuses.is_empty() {
            return self.print("The journal has no runs yet.\n");
        }
        // The position (the latest step that succeeded) and, apart from it,
        // the latest attempt: a re-run that was refused or failed does not
        // hide how far the host got.
        let rows: Vec<[String; 7]> = statuses
            .iter()
            .map(|status| {
                [
                    status.host.clone(),
                    status.position.clone().unwrap_or_else(|| "-".into()),
                    status.position_at.clone().unwrap_or_default(),
                    status.step.clone(),
                    status.outcome.as_str().to_owned(),
                    status.ended_at.clone().unwrap_or_else(|| status.started_at.clone()),
                    status.reason.clone().unwrap_or_default(),
                ]
            })
            .collect();
        let header = ["HOST", "POSITION", "SINCE", "LAST ATTEMPT", "OUTCOME", "AT", "REASON"];
        if statuses.iter().all(|status| status.held_by.is_none()) {
            return self.print(&table(&header, &rows));
        }
        // Who works on each host now, when some run does.
        let rows: Vec<[String; 8]> = rows
            .into_iter()
            .zip(statuses)
            .map(|(row, status)| {
                let held = status.held_by.as_ref().map(|lease| {
                    format!("run {} ({}, pid {}) until {}", lease.run_id, lease.holder(), lease.pid, lease.expires_at)
                });
                let [host, position, since, step, outcome, at, reason] = row;
                [host, held.unwrap_or_default(), position, since, step, outcome, at, reason]
            })
            .collect();
        let header = ["HOST", "HELD BY", "POSITION", "SINCE", "LAST ATTEMPT", "OUTCOME", "AT", "REASON"];
        self.print(&table(&header, &rows));
    }

    /// `hvmigrate status --runs`: the runs under way on the ledger.
    /// `journal copy`: the rows of each table on both sides.
    pub fn journal_copy(&self, report: &crate::journal::CopyReport) {
        if self.format == Format::Json {
            return self.json(report);
        }
        let rows: Vec<[String; 3]> = report
            .tables
            .iter()
            .map(|count| [count.table.clone(), count.source.to_string(), count.target.to_string()])
            .collect();
        let said = if report.copied { "Copied" } else { "Already copied before (nothing written)" };
        self.print(&format!("{said}; rows per table:\n{}", table(&["TABLE", "FROM", "TO"], &rows)));
    }

    pub fn runs_under_way(&self, runs: &[crate::journal::RunUnderWay]) {
        if self.format == Format::Json {
            return self.json(&runs);
        }
        if runs.is_empty() {
            return self.print("No run is under way.\n");
        }
        let rows: Vec<[String; 6]> = runs
            .iter()
            .map(|run| {
                let holding = match run.holding.len() {
                    0 => "none".to_owned(),
                    n if n <= 8 => run.holding.join(", "),
                    n => format!("{}, … ({n})", run.holding[..8].join(", ")),
                };
                [
                    run.run_id.clone(),
                    format!("{}@{} (pid {})", run.user, run.machine, run.pid),
                    run.step.clone(),
                    run.hosts.to_string(),
                    holding,
                    run.started_at.clone(),
                ]
            })
            .collect();
        self.print(&table(&["RUN", "WHO", "STEP", "HOSTS", "WORKING ON", "SINCE"], &rows));
    }

    /// `hvmigrate inventory`: each host's identity, its history, the duplicates.
    pub fn inventory(&self, inventory: &crate::identity::Inventory) {
        if self.format == Format::Json {
            return self.json(inventory);
        }
        if inventory.hosts.is_empty() {
            return self.print("The journal has no identity records yet (pre-drain and pre-reinstall record them).\n");
        }
        let mut rows: Vec<[String; 6]> = Vec::new();
        for host in &inventory.hosts {
            for entry in &host.history {
                let facts = &entry.record.host;
                rows.push([
                    host.host.clone(),
                    format!("{} {}", entry.step, entry.kind),
                    entry.recorded_at.clone(),
                    facts.system_uuid.clone(),
                    facts.serial.clone(),
                    format!("{} {}", facts.machine_id, facts.host_keys.join(" ")),
                ]);
            }
        }
        let mut text = table(&["HOST", "RECORD", "AT", "SYSTEM UUID", "SERIAL", "MACHINE-ID AND HOST KEYS"], &rows);
        for duplicate in &inventory.duplicates {
            text.push_str(&format!(
                "duplicate ({}): {}: {}\n",
                duplicate.kind,
                duplicate.hosts.join(", "),
                duplicate.detail
            ));
        }
        self.print(&text);
    }

    /// `hvmigrate lab history`: where the campaign's journal is.
    pub fn lab_history(&self, report: &crate::lab_history::HistoryReport) {
        if self.format == Format::Json {
            return self.json(report);
        }
        let mut text = format!(
            "Simulated campaign from {} to {}: {} runs, {} hosts through.\nJournal: {}\nSite files: {}\n",
            report.started,
            report.ended,
            report.runs,
            report.hosts_done,
            report.journal.display(),
            report.dir.display()
        );
        if !report.hosts_stuck.is_empty() {
            text.push_str(&format!("Given up on (blocked or failed): {}\n", report.hosts_stuck.join(", ")));
        }
        text.push_str(&format!("Report: hvmigrate report --all --state {}\n", report.journal.display()));
        self.print(&text);
    }

    /// `hvmigrate report`: every table, and where the files went.
    pub fn campaign_report(&self, report: &crate::report::Report, files: &[std::path::PathBuf]) {
        if self.format == Format::Json {
            return self.json(report);
        }
        let mut text = format!("Campaign report: {} hosts, {} to {}\n", report.hosts, report.since, report.until);
        for table in crate::report::tables::tables(report) {
            text.push_str(&format!("\n{}\n", table.title));
            if table.rows.is_empty() {
                text.push_str("  (none)\n");
                continue;
            }
            text.push_str(&indent(&dynamic_table(&table.header, &table.rows)));
        }
        if !files.is_empty() {
            text.push_str("\nWritten:\n");
            for file in files {
                text.push_str(&format!("  {}\n", file.display()));
            }
        }
        self.print(&text);
    }

    /// `hvmigrate status --host H`: every action on one host.
    pub fn host_history(&self, host: &str, records: &[ActionRecord]) {
        if self.format == Format::Json {
            return self.json(&records);
        }
        if records.is_empty() {
            return self.print(&format!("The journal has no actions for {host}.\n"));
        }
        let rows: Vec<[String; 6]> = records
            .iter()
            .map(|record| {
                let change = match (&record.change, &record.previous) {
                    (Some(change), Some(previous)) => format!("{change} (was {previous})"),
                    (Some(change), None) => change.clone(),
                    _ => record.reason.clone().or_else(|| record.observed.clone()).unwrap_or_default(),
                };
                [
                    record.started_at.clone(),
                    record.run_id.clone(),
                    record.step.clone(),
                    record.action.clone(),
                    record.outcome.as_str().to_owned(),
                    change,
                ]
            })
            .collect();
        self.print(&table(&["AT", "RUN", "STEP", "ACTION", "OUTCOME", "DETAIL"], &rows));
    }

    /// Where a run's progress is shown: live lines on a terminal, nothing otherwise.
    pub fn progress(&self, quiet: bool) -> std::sync::Arc<dyn Progress> {
        use std::io::IsTerminal;
        let live = !quiet
            && self.format == Format::Human
            && std::io::stderr().is_terminal()
            && std::env::var_os("CI").is_none();
        if live {
            let progress = LiveProgress::default();
            crate::logging::set_live_display(Some(progress.bars.clone()));
            std::sync::Arc::new(progress)
        } else {
            std::sync::Arc::new(NoProgress)
        }
    }

    /// Asks a yes/no question on the terminal. Without a terminal the answer
    /// cannot be given, which is an error that says to use `--yes`.
    pub fn confirm(&self, question: &str) -> crate::Result<bool> {
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() {
            return Err(Error::Usage(format!("{question} Not on a terminal to ask: pass --yes to confirm")));
        }
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "{question} [y/N] ");
        let _ = stderr.flush();
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer).map_err(|err| Error::Usage(format!("no answer: {err}")))?;
        Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
    }

    /// An error that ends the command, on stderr.
    pub fn error(&self, error: &Error) {
        let mut stderr = std::io::stderr().lock();
        for line in crate::untrusted::visible(&error.to_string()).lines() {
            let _ = writeln!(stderr, "error: {line}");
        }
    }

    /// `scc check`: the credentials work (a failure is an error).
    pub fn scc_check(&self) {
        if self.format == Format::Json {
            return self.json(&serde_json::json!({"scc": "credentials accepted"}));
        }
        self.print("SCC: credentials accepted\n");
    }

    /// `scc collect`: per host valid or not (with the reason); the details
    /// themselves as YAML unless they were saved to `saved`.
    pub fn scc_results(&self, results: &crate::scc::ResultsFile, saved: Option<&std::path::Path>) {
        if self.format == Format::Json {
            return match saved {
                Some(file) => self.json(&serde_json::json!({"saved": file, "hosts": scc_validity(results)})),
                None => self.json(results),
            };
        }
        let mut text = String::new();
        if saved.is_none() {
            text.push_str(&serde_yaml_ng::to_string(results).expect("results serialize"));
            text.push('\n');
        }
        let rows: Vec<[String; 4]> = results
            .hosts
            .iter()
            .map(|host| {
                let details = host.details.as_ref();
                [
                    host.host.clone(),
                    if host.valid { "valid".into() } else { "INVALID".into() },
                    details.map(|d| d.identifier.clone()).unwrap_or_default(),
                    match details {
                        Some(d) => format!(
                            "{} sockets, {} cores, {} threads, {} MiB, {} VMs",
                            d.properties.sockets,
                            d.properties.cores,
                            d.properties.threads,
                            d.properties.ram_mb.unwrap_or_default(),
                            d.systems.len()
                        ),
                        None => host.reason.clone().unwrap_or_default(),
                    },
                ]
            })
            .collect();
        text.push_str(&table(&["HOST", "RESULT", "IDENTIFIER", "DETAIL"], &rows));
        let invalid = results.hosts.iter().filter(|host| !host.valid).count();
        text.push_str(&format!("{} host{}, {invalid} invalid.\n", results.hosts.len(), plural(results.hosts.len())));
        if let Some(file) = saved {
            text.push_str(&format!("Saved to {} (mode 0600).\n", file.display()));
        }
        self.print(&text);
    }

    /// `scc upload`: one line per group, then the hosts that were not sent.
    pub fn scc_upload(&self, report: &crate::scc::UploadReport) {
        if self.format == Format::Json {
            return self.json(report);
        }
        let mut text = String::new();
        for group in &report.groups {
            let hosts = group.hosts.len();
            match (&group.receipt, &group.error) {
                (Some(receipt), _) => text.push_str(&format!(
                    "group {}: {hosts} host{} uploaded (HTTP {}, {})\n",
                    group.group,
                    plural(hosts),
                    receipt.status,
                    receipt.uploaded_at
                )),
                (None, error) => text.push_str(&format!(
                    "group {}: {hosts} host{} NOT uploaded: {}\n",
                    group.group,
                    plural(hosts),
                    error.as_deref().unwrap_or("unknown error")
                )),
            }
        }
        for host in &report.not_uploaded {
            text.push_str(&format!(
                "{}: not uploaded, its collection failed: {}\n",
                host.host,
                host.reason.as_deref().unwrap_or("no details")
            ));
        }
        if report.groups.is_empty() && report.not_uploaded.is_empty() {
            text.push_str("nothing to upload\n");
        }
        self.print(&text);
    }

    /// What `lab serve` started and wrote, and how to use it.
    pub fn lab_serving(&self, report: &crate::lab::ServeReport) {
        if self.format == Format::Json {
            return self.json(report);
        }
        let dir = report.dir.display();
        let urls = &report.urls;
        let mut text = format!(
            "The simulated site is running (seed {}, {} campaign host{}).\n",
            report.seed,
            report.hosts,
            plural(report.hosts)
        );
        for (name, url) in [
            ("jira", &urls.jira),
            ("netbox", &urls.netbox),
            ("keystone", &urls.keystone),
            ("nova", &urls.nova),
            ("placement", &urls.placement),
            ("alertmanager", &urls.alertmanager),
            ("scc", &urls.scc),
            ("control", &urls.control),
        ] {
            text.push_str(&format!("  {name:13}{url}\n"));
        }
        text.push_str(&format!("Files in {dir}:\n"));
        text.push_str(&format!("  {:17}every service's URL and secret (mode 0600)\n", "credentials.yaml"));
        text.push_str(&format!("  {:17}the campaign hosts and their tickets\n", "hypervisors.txt"));
        text.push_str(&format!("  {:17}the openstack CLI environment (mode 0600)\n", "openrc.sh"));
        text.push_str(&format!("  {:17}where `lab show --dir` finds the lab\n", "lab.json"));
        text.push_str(&format!("  {:17}ssh_config, known_hosts and the operator's key for the hosts\n", "ssh/"));
        text.push_str("Use it:\n");
        text.push_str(&format!(
            "  hvmigrate --creds-file {} --hypervisors-file {} check-config\n",
            report.credentials.display(),
            report.hypervisors.display()
        ));
        text.push_str(&format!("  hvmigrate lab show --dir {dir}\n"));
        text.push_str(&format!("  . {}    # sets ", report.openrc.display()));
        let names: Vec<&str> = report.openstack_env.iter().map(|(name, _)| name.as_str()).collect();
        text.push_str(&format!("{} and OS_PASSWORD\n", names.join(" ")));
        text.push_str("  openstack compute service list\n");
        if let Some(host) = report.first_host.as_deref() {
            text.push_str(&format!("  ssh -F {dir}/ssh/ssh_config {host} 'virsh list --all'\n"));
        }
        text.push_str("Ctrl-C stops it.\n");
        self.print(&text);
    }

    /// `lab show`: the raw world as JSON, or one line per host.
    pub fn lab_reinstalled(&self, host: &str) {
        if self.format == Format::Json {
            return self.json(&serde_json::json!({"reinstalled": host}));
        }
        self.print(&format!("{host} was reinstalled over PXE; it now runs the target OS (run post-reinstall next).\n"));
    }

    pub fn lab_view(&self, view: &crate::lab::LabView, raw: &serde_json::Value) {
        if self.format == Format::Json {
            return self.json(raw);
        }
        let mut text = format!(
            "Simulated site '{}' (seed {}), control {}: {} campaign host{}, {} spare\n",
            view.site,
            view.seed,
            view.control,
            view.campaign.len(),
            plural(view.campaign.len()),
            view.spares.len()
        );
        let width = view.campaign.iter().chain(&view.spares).map(|h| h.fqdn.len()).max().unwrap_or(4).max(4);
        let header = format!(
            "{:width$}  {:15} {:14} {:4} {:9} {:26} {:8} {}\n",
            "HOST", "NETBOX", "NOVA", "VMS", "TICKET", "JIRA STATUS", "SILENCES", "LAST COMMENT"
        );
        text.push_str(&header);
        for host in &view.campaign {
            text.push_str(&format!(
                "{:width$}  {:15} {:14} {:<4} {:9} {:26} {:<8} {}\n",
                host.fqdn,
                host.netbox.as_deref().unwrap_or("(missing)"),
                host.nova,
                host.vms,
                host.jira_key.as_deref().unwrap_or("-"),
                host.jira_status.as_deref().unwrap_or("-"),
                host.silences,
                host.last_comment.as_deref().unwrap_or("")
            ));
        }
        let attached: Vec<&crate::lab::HostView> = view.campaign.iter().filter(|h| !h.attachments.is_empty()).collect();
        if !attached.is_empty() {
            text.push_str("Attachments on the tickets:\n");
            for host in attached {
                let key = host.jira_key.as_deref().unwrap_or("-");
                text.push_str(&format!("  {key} ({}): {}\n", host.fqdn, host.attachments.join(", ")));
            }
        }
        if !view.spares.is_empty() {
            text.push_str("Spare hosts (they receive the drained VMs):\n");
            for host in &view.spares {
                let states = if host.vm_states.is_empty() { String::new() } else { format!(" ({})", host.vm_states) };
                text.push_str(&format!(
                    "  {:width$}  NetBox {}, Nova {}, {} VM{}{states}\n",
                    host.fqdn,
                    host.netbox.as_deref().unwrap_or("(missing)"),
                    host.nova,
                    host.vms,
                    plural(host.vms)
                ));
            }
        }
        text.push_str(&format!("Active silences: {}\n", view.silences_active));
        text.push_str(&format!(
            "SCC: {} upload{}, {} virtualization host{} reported\n",
            view.scc_uploads,
            plural(view.scc_uploads as usize),
            view.scc_hosts.len(),
            plural(view.scc_hosts.len())
        ));
        self.print(&text);
    }

    /// `vm list`: one line per domain, orphans marked.
    pub fn vm_list(&self, list: &crate::vm::VmList) {
        if self.format == Format::Json {
            return self.json(list);
        }
        let rows: Vec<[String; 8]> = list
            .domains
            .iter()
            .map(|vm| {
                [
                    vm.domain.clone(),
                    vm.state.clone(),
                    vm.vcpus.to_string(),
                    format!("{} MiB", vm.memory_mib),
                    if vm.autostart { "on" } else { "off" }.to_owned(),
                    vm.agent.label().to_owned(),
                    vm.nova_name.clone().unwrap_or_else(|| "-".into()),
                    match (&vm.nova_status, vm.orphan) {
                        (_, true) => "ORPHAN (Nova does not know it)".to_owned(),
                        (Some(status), _) => status.clone(),
                        (None, false) => "-".to_owned(),
                    },
                ]
            })
            .collect();
        let mut text = format!("{}: {} domain{}\n", list.host, list.domains.len(), plural(list.domains.len()));
        text.push_str(&table(
            &["DOMAIN", "STATE", "VCPUS", "MEMORY", "AUTOSTART", "AGENT", "NOVA NAME", "NOVA STATUS"],
            &rows,
        ));
        self.print(&text);
    }

    /// `vm info`: the domain, its devices and what they mean for migration.
    pub fn vm_info(&self, vm: &crate::vm::VmInfo) {
        if self.format == Format::Json {
            return self.json(vm);
        }
        let xml = &vm.definition;
        let mut text = format!("{} on {}\n", vm.info.name, vm.host);
        text.push_str(&format!("  uuid        {}\n  state       {}\n", vm.info.uuid, vm.info.state));
        text.push_str(&format!(
            "  vcpus       {}\n  memory      {} MiB\n",
            vm.info.vcpus,
            vm.info.max_memory_kib / 1024
        ));
        text.push_str(&format!("  autostart   {}\n", if vm.info.autostart { "on" } else { "off" }));
        text.push_str(&format!("  agent       {}\n", if xml.agent_channel { "channel present" } else { "no channel" }));
        match &xml.nova {
            Some(nova) => text.push_str(&format!(
                "  nova        {} (flavor {}, project {}), status {}\n",
                nova.name,
                nova.flavor.as_deref().unwrap_or("?"),
                nova.project.as_deref().unwrap_or("?"),
                vm.nova_status.as_deref().unwrap_or("unknown to Nova")
            )),
            None => text.push_str("  nova        none (no Nova metadata)\n"),
        }
        for disk in &xml.disks {
            let backing = if disk.backing.is_empty() {
                String::new()
            } else {
                format!(", backed by {}", disk.backing.join(" <- "))
            };
            text.push_str(&format!(
                "  disk        {} {} {} {}{backing}\n",
                disk.target,
                disk.kind,
                disk.format.as_deref().unwrap_or("-"),
                disk.source.as_deref().unwrap_or("-")
            ));
        }
        for nic in &xml.nics {
            text.push_str(&format!(
                "  nic         {} {} {} {}\n",
                nic.kind,
                nic.mac.as_deref().unwrap_or("-"),
                nic.source.as_deref().unwrap_or("-"),
                nic.model.as_deref().unwrap_or("-")
            ));
        }
        for device in &xml.host_devices {
            text.push_str(&format!("  host device {device}\n"));
        }
        if !xml.cpu_pinning.is_empty() {
            let pins: Vec<String> = xml.cpu_pinning.iter().map(|(vcpu, set)| format!("{vcpu}->{set}")).collect();
            text.push_str(&format!("  pinning     {}\n", pins.join(" ")));
        }
        if let Some(nodes) = &xml.numa_nodeset {
            text.push_str(&format!("  numa        host nodes {nodes}, {} guest cell(s)\n", xml.guest_numa_cells));
        }
        text.push_str(&format!("  migration   {}\n", vm.migration.label()));
        for reason in vm.migration.reasons() {
            text.push_str(&format!("    - {reason}\n"));
        }
        self.print(&text);
    }

    /// `vm stats`: figures per domain and their sum.
    pub fn vm_stats(&self, stats: &crate::vm::VmStats) {
        if self.format == Format::Json {
            return self.json(stats);
        }
        let row = |s: &crate::hosts::vm::DomainStats| {
            [
                s.name.clone(),
                format!("{:.1}", s.cpu_time_ns as f64 / 1e9),
                s.vcpus.to_string(),
                (s.memory_current_kib / 1024).to_string(),
                (s.memory_rss_kib / 1024).to_string(),
                s.net_rx_bytes.to_string(),
                s.net_tx_bytes.to_string(),
                s.block_read_bytes.to_string(),
                s.block_write_bytes.to_string(),
            ]
        };
        let mut rows: Vec<[String; 9]> = stats.domains.iter().map(row).collect();
        rows.push(row(&stats.total));
        let header =
            ["DOMAIN", "CPU S", "VCPUS", "MEM MIB", "RSS MIB", "NET RX B", "NET TX B", "DISK RD B", "DISK WR B"];
        self.print(&format!("{}\n{}", stats.host, table(&header, &rows)));
    }

    /// `vm exec`: the guest's stdout on stdout, its stderr on stderr (both
    /// already capped and escaped); JSON puts both in one document.
    pub fn vm_exec(&self, exec: &crate::vm::VmExec) {
        if self.format == Format::Json {
            return self.json(exec);
        }
        self.print(&exec.output.stdout);
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(crate::untrusted::visible(&exec.output.stderr).as_bytes());
        if exec.output.truncated {
            let _ = writeln!(stderr, "(output cut: head and tail kept)");
        }
    }

    /// `vm power` / `vm autostart`: what was done, and through what.
    pub fn vm_change(&self, change: &crate::vm::VmChange) {
        if self.format == Format::Json {
            return self.json(change);
        }
        self.print(&format!(
            "{} {}: {} {} through {}: {}\n",
            change.host, change.domain, change.action, change.outcome, change.through, change.detail
        ));
    }

    /// `serve`: where it listens (the first line, for whoever started it).
    pub fn serving(&self, address: std::net::SocketAddr, tls: bool) {
        let url = format!("{}://{address}", if tls { "https" } else { "http" });
        if self.format == Format::Json {
            return self.json(&serde_json::json!({"serving": url}));
        }
        self.print(&format!(
            "Serving on {url}: the dashboard at /, the API at /api/v1 (its document at /api/v1/docs), /metrics, \
             /health, /version. SIGTERM or Ctrl-C stops it.\n"
        ));
    }

    /// `serve add-token`: the token, only when it was generated (shown once, never stored).
    pub fn token_added(&self, file: &std::path::Path, name: &str, role: &str, generated: Option<&str>) {
        if self.format == Format::Json {
            return self.json(&serde_json::json!({"file": file, "name": name, "role": role, "token": generated}));
        }
        let mut text = format!("Added the {role} token {name} to {}.\n", file.display());
        if let Some(token) = generated {
            text.push_str(&format!("Its token (shown once, only its hash is kept):\n{token}\n"));
        }
        self.print(&text);
    }

    /// Text the tool generated itself (a completion script, a manual page),
    /// exactly as it is: it holds nothing from outside.
    pub fn generated(&self, bytes: &[u8]) {
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(bytes).and_then(|()| stdout.flush());
    }

    /// The files a command wrote, one per line (JSON: `{"written": [...]}`).
    pub fn files_written(&self, files: &[std::path::PathBuf]) {
        if self.format == Format::Json {
            return self.json(&serde_json::json!({ "written": files }));
        }
        let mut text = String::new();
        for file in files {
            text.push_str(&format!("{}\n", file.display()));
        }
        self.print(&text);
    }

    pub fn token_removed(&self, file: &std::path::Path, name: &str) {
        if self.format == Format::Json {
            return self.json(&serde_json::json!({"file": file, "removed": name}));
        }
        self.print(&format!("Removed the token {name} from {}; its sessions end.\n", file.display()));
    }

    fn json<T: serde::Serialize>(&self, value: &T) {
        let text = serde_json::to_string_pretty(value).expect("output types serialize");
        self.print(&format!("{text}\n"));
    }

    /// Every printed text passes here: what came from outside (a service's
    /// error, a remote command's output, a tenant's VM name) shows its
    /// control characters as visible escapes.
    fn print(&self, text: &str) {
        let text = crate::untrusted::visible(text);
        let mut stdout = std::io::stdout().lock();
        // A closed pipe (`| head`) is not an error worth a panic.
        let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
    }
}

/// Columns padded to their widest cell; the last one is left ragged.
/// A table whose number of columns is known at run time (the report's).
fn dynamic_table(header: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|title| title.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut line = String::new();
        for (index, cell) in cells.iter().enumerate() {
            let cell = crate::untrusted::visible_line(cell);
            line.push_str(&format!("{cell:width$}  ", width = widths.get(index).copied().unwrap_or(0)));
        }
        line.trim_end().to_owned() + "\n"
    };
    let mut text = line(header);
    for row in rows {
        text.push_str(&line(row));
    }
    text
}

fn indent(text: &str) -> String {
    text.lines().map(|line| format!("  {line}\n")).collect()
}

fn table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|title| title.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut line = String::new();
        for (index, cell) in cells.iter().enumerate() {
            if index + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:width$}  ", width = widths[index]));
            }
        }
        line.trim_end().to_owned() + "\n"
    };
    let mut text = line(header.to_vec());
    for row in rows {
        text.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    text
}

/// No live display (not a terminal, `-q`, CI, JSON).
struct NoProgress;

impl Progress for NoProgress {
    fn action_started(&self, _host: &str, _action: &str) {}
    fn host_finished(&self, _report: &HostReport) {}
}

/// One line per active host with its current action.
#[derive(Default)]
struct LiveProgress {
    bars: indicatif::MultiProgress,
    lines: std::sync::Mutex<std::collections::HashMap<String, indicatif::ProgressBar>>,
}

impl Drop for LiveProgress {
    fn drop(&mut self) {
        crate::logging::set_live_display(None);
    }
}

impl Progress for LiveProgress {
    fn action_started(&self, host: &str, action: &str) {
        let mut lines = self.lines.lock().unwrap_or_else(|poison| poison.into_inner());
        let bar = lines.entry(host.to_owned()).or_insert_with(|| {
            let bar = self.bars.add(indicatif::ProgressBar::new_spinner());
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        bar.set_message(format!("{host}: {action}"));
    }

    fn action_detail(&self, host: &str, detail: &str) {
        if let Some(bar) = self.lines.lock().unwrap_or_else(|poison| poison.into_inner()).get(host) {
            bar.set_message(format!("{host}: {}", crate::untrusted::visible_line(detail)));
        }
    }

    fn host_finished(&self, report: &HostReport) {
        let bar = self.lines.lock().unwrap_or_else(|poison| poison.into_inner()).remove(&report.host);
        if let Some(bar) = bar {
            bar.finish_and_clear();
            self.bars.remove(&bar);
        }
        let _ = self.bars.println(format!("{}: {} {}", report.host, report.step, report.outcome.label()));
    }
}

/// Host, valid and reason: the summary of saved results.
fn scc_validity(results: &crate::scc::ResultsFile) -> Vec<serde_json::Value> {
    results
        .hosts
        .iter()
        .map(|host| serde_json::json!({"host": host.host, "valid": host.valid, "reason": host.reason}))
        .collect()
}

/// The drain's VMs: moved, failed and blocked, per host, with durations.
fn vm_table(summary: &RunSummary) -> String {
    let rows: Vec<[String; 6]> = summary
        .hosts
        .iter()
        .flat_map(|host| {
            host.vms.iter().map(|vm| {
                [
                    host.host.clone(),
                    vm.name.clone(),
                    vm.outcome.label().to_owned(),
                    vm.to.clone().map(|to| format!("→ {to}")).unwrap_or_default(),
                    format!("{:.1}s", vm.duration.as_secs_f64()),
                    vm.reason.clone().unwrap_or_default(),
                ]
            })
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut text = String::from("\nVMs:\n");
    text.push_str(&table(&["HOST", "VM", "OUTCOME", "TO", "DURATION", "REASON"], &rows));
    for host in summary.hosts.iter().filter(|host| !host.vms.is_empty()) {
        let count = |outcome| host.vms.iter().filter(|vm| vm.outcome == outcome).count();
        text.push_str(&format!(
            "{}: {} moved, {} failed, {} blocked\n",
            host.host,
            count(crate::workflow::report::VmOutcome::Moved),
            count(crate::workflow::report::VmOutcome::Failed),
            count(crate::workflow::report::VmOutcome::Blocked)
        ));
    }
    text
}

fn plural(count: usize) -> &'static str {
    if count == 1 {
        ""
    } else {
        "s"
    }
}
