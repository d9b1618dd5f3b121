//! A simulated site for the binary's tests: the lab runs in this process on
//! its own runtime, its files are written into a private workspace, and the
//! real binary is pointed at them.

use std::process::{Child, Stdio};
use std::sync::MutexGuard;

use hvmigrate_lab::{Lab, LabOptions, WorldOptions, WorldState};
use serde_json::Value;

use super::{Outcome, Run, Workspace};

/// A run's `--output json` summary.
pub fn json(out: &Outcome) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|err| panic!("not JSON ({err})\n{}", out.report()))
}

/// Kills the binary (SIGKILL) as soon as `happened` is true; fails the test
/// if it ends first or `what` never happens.
pub fn kill_when(child: &mut Child, what: &str, mut happened: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !happened() {
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "{what} never happened");
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before {what}");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
}

/// One host's report in a summary.
pub fn report_of<'a>(summary: &'a Value, host: &str) -> &'a Value {
    summary["hosts"].as_array().unwrap().iter().find(|report| report["host"] == host).expect("a report per host")
}

/// One action in a host's report.
pub fn action<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["actions"].as_array().unwrap().iter().find(|action| action["action"] == name).expect("the action ran")
}

pub struct LabSite {
    pub lab: Lab,
    pub workspace: Workspace,
    /// Keeps the lab's servers running while the binary talks to them.
    runtime: tokio::runtime::Runtime,
    /// `--state`: the journal in the workspace, or a PostgreSQL ledger (see [`Self::on_postgres`]).
    pub state: String,
}

impl LabSite {
    pub fn start(world: WorldOptions) -> Self {
        Self::start_with(LabOptions { world, ..LabOptions::default() }, "")
    }

    /// `workflow_yaml` is appended to the credentials file. The site's
    /// reinstalls are as strict as real ones (new host keys and machine-id,
    /// no compute_id left), whatever the options say.
    pub fn start_with(mut options: LabOptions, workflow_yaml: &str) -> Self {
        options.world.reinstall_like_real = true;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the lab");
        let lab = runtime.block_on(Lab::start(options)).expect("the lab starts");
        let workspace = Workspace::empty();
        lab.write_site_files(&workspace.file("site"), workflow_yaml).expect("site files");
        LabSite { lab, workspace, runtime, state: "state/hvmigrate.db".into() }
    }

    /// The site's runs on a new database of the test PostgreSQL cluster;
    /// `None` (the reason said) when this machine has no PostgreSQL.
    pub fn on_postgres(mut self, test: &str) -> Option<Self> {
        self.state = super::postgres::database(test)?;
        Some(self)
    }

    /// Where the journal is, for `Journal::open…`: the file in the workspace, or the URL.
    pub fn journal_location(&self) -> std::path::PathBuf {
        match self.state.starts_with("postgres") {
            true => std::path::PathBuf::from(&self.state),
            false => self.workspace.file(&self.state),
        }
    }

    pub fn world(&self) -> MutexGuard<'_, WorldState> {
        self.lab.world().lock()
    }

    /// The binary with the site's files, a journal in the workspace and `--allow-root` when needed.
    pub fn hvmigrate(&self, args: &[&str]) -> Run {
        let mut all = vec![
            "--hypervisors-file",
            "site/hypervisors.txt",
            "--creds-file",
            "site/credentials.yaml",
            "--state",
            &self.state,
        ];
        all.extend_from_slice(args);
        self.workspace.hvmigrate(&all)
    }

    /// The binary started in the background, its output discarded: for tests that kill it.
    pub fn spawn(&self, args: &[&str]) -> Child {
        let mut run = self.hvmigrate(args);
        run.command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        run.command.spawn().expect("the binary starts")
    }

    pub fn campaign_hosts(&self) -> Vec<String> {
        self.world().campaign_hosts().map(|host| host.fqdn.clone()).collect()
    }

    /// The bodies of the comments on a host's ticket, as text.
    pub fn comments(&self, host: &str) -> Vec<String> {
        let world = self.world();
        let key = world.host(host).and_then(|host| host.jira_key.clone()).expect("a campaign host");
        let issue = world.jira_issue(&key).expect("its issue");
        issue
            .comments
            .iter()
            .map(|comment| match &comment.body {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            })
            .collect()
    }

    /// A site whose campaign hosts are empty, disabled with the campaign's
    /// reason, and through setup and drain.
    pub fn drained(world: WorldOptions, workflow_yaml: &str) -> Self {
        let site = Self::start_with(LabOptions { world, ..LabOptions::default() }, workflow_yaml);
        {
            let mut world = site.world();
            world.servers.clear();
            for host in world.hosts.iter_mut().filter(|host| host.in_campaign) {
                host.compute.status = "disabled".into();
                host.compute.disabled_reason = Some("Migration to Rocky 9 - LAB".into());
            }
        }
        site.hvmigrate(&["run", "--step", "setup", "--parallel", "-q"]).expect_code(0);
        site.hvmigrate(&["run", "--step", "drain", "--force", "--parallel", "-q"]).expect_code(0);
        site
    }

    /// Sets a key of the credentials' `ssh` section (written before the lab's own keys).
    pub fn set_ssh_setting(&self, key: &str, value: &str) {
        let path = self.workspace.file("site/credentials.yaml");
        let text = std::fs::read_to_string(&path).expect("credentials");
        let text = text.replacen("ssh:\n", &format!("ssh:\n  {key}: {value}\n"), 1);
        std::fs::write(&path, text).expect("credentials");
    }

    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}
