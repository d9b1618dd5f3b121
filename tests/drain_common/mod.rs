//! The drain tests' site: the lab in-process, its files written, the engine
//! driven through its library API. `virsh list --all` is answered from the
//! world's servers, as the lab's hosts do.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

use hvmigrate::check_config::{self, InputPaths};
use hvmigrate::clients::http::RetryPolicy;
use hvmigrate::config::KeyMode;
use hvmigrate::ssh::{BoxFuture, CommandOutput, RemoteCommand, RemoteShell, SshError, Target};
use hvmigrate::workflow::context::Services;
use hvmigrate::workflow::host_run::{Progress, StopSignal};
use hvmigrate::workflow::manager::{self, RunSettings, RunSummary};
use hvmigrate::workflow::report::HostReport;
use hvmigrate::workflow::Step;
use hvmigrate_lab::{Lab, LabOptions, World, WorldOptions, WorldState};

/// Fast settings: the lab's minutes pass in milliseconds.
pub const FAST_DRAIN: &str = "workflow:\n  drain:\n    poll_interval_ms: 10\n    timeout_base_secs: 20\n";

pub struct DrainSite {
    pub lab: Lab,
    pub dir: tempfile::TempDir,
    pub paths: InputPaths,
    pub journal: PathBuf,
}

/// A world of `hosts` campaign hosts with `vms` ACTIVE VMs each and no oddities.
pub fn plain_world(hosts: usize, vms: u32) -> WorldOptions {
    WorldOptions { hosts, seed: 7, oddities: false, vms_per_host: Some(vms), ..WorldOptions::default() }
}

impl DrainSite {
    /// Starts the lab; pre-drain's effect (nova-compute disabled) is set in
    /// the world, and the runs use `--force` for the step order.
    pub async fn start(world: WorldOptions, workflow_yaml: &str, time_scale: f64) -> Self {
        let lab = Lab::start(LabOptions { world, ..LabOptions::default() }).await.expect("lab starts");
        {
            let mut world = lab.world().lock();
            world.time_scale = time_scale;
            for host in world.hosts.iter_mut().filter(|host| host.in_campaign) {
                host.compute.status = "disabled".into();
                host.compute.disabled_reason = Some("Migration to Rocky 9 - LAB".into());
            }
            for server in world.servers.values_mut() {
                server.status = "ACTIVE".into();
            }
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let site_dir = dir.path().join("site");
        let files = lab.write_site_files(&site_dir, workflow_yaml).expect("site files");
        // The step needs an ssh section; the lab writes one when its SSH hosts run.
        let written = std::fs::read_to_string(&files.credentials).expect("credentials");
        if !written.lines().any(|line| line == "ssh:") {
            let ssh = format!(
                "ssh:\n  username: ops\n  key_path: {0}/id_ed25519\n  known_hosts: {0}/known_hosts\n",
                site_dir.display()
            );
            std::fs::write(&files.credentials, format!("{written}{ssh}")).expect("credentials");
        }
        let paths = InputPaths { hypervisors_file: files.hypervisors, creds_file: files.credentials };
        let journal = dir.path().join("state/hvmigrate.db");
        DrainSite { lab, dir, paths, journal }
    }

    pub fn world(&self) -> MutexGuard<'_, WorldState> {
        self.lab.world().lock()
    }

    pub fn campaign_hosts(&self) -> Vec<String> {
        self.world().campaign_hosts().map(|host| host.fqdn.clone()).collect()
    }

    /// The servers on a host, by name.
    pub fn servers_on(&self, host: &str) -> Vec<String> {
        self.world().servers_on(host).map(|server| server.name.clone()).collect()
    }

    /// Runs the drain (or its dry run) over every host of the list at once.
    pub async fn drain(&self, dry_run: bool) -> RunSummary {
        self.run(Step::Drain, dry_run).await
    }

    pub async fn run(&self, step: Step, dry_run: bool) -> RunSummary {
        let (hypervisors, credentials) = check_config::load_inputs(&self.paths, KeyMode::Required).expect("inputs");
        let credentials = Arc::new(credentials);
        let mut services = Services::connect(&credentials, RetryPolicy::default()).await.expect("services");
        services.shell = Some(Arc::new(WorldShell(self.lab.world().clone())));
        let settings = RunSettings {
            step,
            parallel: hypervisors.len(),
            only: Vec::new(),
            dry_run,
            force: true,
            redo: None,
            claim: None,
            journal: self.journal.clone(),
        };
        let summary = manager::run(
            &settings,
            &hypervisors,
            credentials,
            Arc::new(services),
            Arc::new(Quiet),
            StopSignal::default(),
        )
        .await
        .expect("the run starts");
        // What went wrong, for the test's output.
        for host in summary.hosts.iter().filter(|host| !host.outcome.is_success()) {
            eprintln!("{}: {} {:?}", host.host, host.outcome.label(), host.reason);
            for vm in &host.vms {
                eprintln!("  {}: {}", vm.outcome.label(), vm.line());
            }
        }
        summary
    }

    /// The comments on a host's ticket.
    pub fn comments(&self, host: &str) -> Vec<String> {
        let world = self.world();
        let key = world.host(host).and_then(|host| host.jira_key.clone()).expect("campaign host");
        world.jira_issue(&key).expect("issue").comments.iter().map(|comment| format!("{:?}", comment.body)).collect()
    }
}

pub struct Quiet;

impl Progress for Quiet {
    fn action_started(&self, _host: &str, _action: &str) {}
    fn host_finished(&self, _report: &HostReport) {}
}

/// `virsh list --all` of each host from the world's servers; every other command is unknown.
pub struct WorldShell(pub World);

impl RemoteShell for WorldShell {
    fn run<'a>(
        &'a self,
        target: &'a Target,
        command: &'a RemoteCommand,
    ) -> BoxFuture<'a, Result<CommandOutput, SshError>> {
        Box::pin(async move {
            let line = command.command_line();
            let (exit_status, stdout) = if line == "virsh list --all" {
                let world = self.0.lock();
                let mut text = String::from(" Id   Name                State\n-----------------------------------\n");
                for (index, server) in world.servers_on(&target.host).enumerate() {
                    let state = if server.status == "SHUTOFF" { "shut off" } else { "running" };
                    let id = if state == "running" { (index + 1).to_string() } else { "-".into() };
                    text.push_str(&format!(" {id:4} {:19} {state}\n", server.instance_name));
                }
                (0, text)
            } else if line.starts_with("virsh ") {
                // The census reads each domain's XML, the guest check pings agents: the lab's virsh answers.
                let mut world = self.0.lock();
                let machine = hvmigrate_lab::shell::Machine::Hypervisor(target.host.clone());
                let login = hvmigrate_lab::shell::Login { user: "root".into(), sudo_password: None };
                let outcome = hvmigrate_lab::shell::run(&mut world, &machine, &login, &line, &[]);
                let stderr = String::from_utf8_lossy(&outcome.stderr).into_owned();
                let stdout = String::from_utf8_lossy(&outcome.stdout).into_owned();
                return Ok(CommandOutput {
                    command: line,
                    exit_status: outcome.status as i32,
                    stdout,
                    stderr,
                    duration: Duration::ZERO,
                });
            } else {
                (127, String::new())
            };
            Ok(CommandOutput { command: line, exit_status, stdout, stderr: String::new(), duration: Duration::ZERO })
        })
    }
}
