//! The Kayobe host: runs a Kayobe command or playbook once for a batch of
//! hosts (after sourcing the Kayobe environment), keeps its log, and turns
//! the log into a result per host from `PLAY RECAP` and `fatal:` paragraphs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::remote_job::{JobContext, JobSpec, RemoteJobs};
use super::{HostError, Remote};
use crate::ssh::{CommandOutput, RemoteCommand, RemoteShell, Target};

/// Counts of one host in `PLAY RECAP`, summed over every play of the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostRecap {
    pub ok: u32,
    pub changed: u32,
    pub unreachable: u32,
    pub failed: u32,
    pub skipped: u32,
    pub rescued: u32,
    pub ignored: u32,
}

impl HostRecap {
    pub fn succeeded(&self) -> bool {
        self.failed == 0 && self.unreachable == 0
    }

    fn add(&mut self, other: &HostRecap) {
        self.ok += other.ok;
        self.changed += other.changed;
        self.unreachable += other.unreachable;
        self.failed += other.failed;
        self.skipped += other.skipped;
        self.rescued += other.rescued;
        self.ignored += other.ignored;
    }
}

/// A blank-line separated paragraph of the log that holds `fatal:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FatalParagraph {
    /// The hosts of its `fatal: [host]` lines.
    pub hosts: Vec<String>,
    pub text: String,
    /// Ansible went on (`...ignoring`): not a failure of the host.
    pub ignored: bool,
}

/// What a log says, host by host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KayobeReport {
    pub recap: BTreeMap<String, HostRecap>,
    pub fatals: Vec<FatalParagraph>,
}

/// The result for one host of the batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostOutcome {
    Succeeded(HostRecap),
    Failed {
        recap: Option<HostRecap>,
        fatals: Vec<String>,
    },
    /// The host is in no `PLAY RECAP`: the run stopped before it, or it was not in the inventory.
    NotRun,
}

impl KayobeReport {
    /// The outcome of the host named `host` in the inventory. Names are
    /// compared whole: `hv1` is not `hv10`, and `hv01.a.example.org` is not
    /// `hv01.b.example.org` nor `hv01`.
    ///
    /// `PLAY RECAP` decides: a `fatal:` that a `rescue:` block caught or that
    /// `ignore_errors` let through (`...ignoring`) leaves `failed=0`, so it is
    /// not a failure. The `fatal:` paragraphs are the failure's detail; they
    /// decide alone only when the run stopped before its recap.
    pub fn outcome(&self, host: &str) -> HostOutcome {
        let recap = self.recap.get(host).copied();
        let fatals: Vec<String> = self
            .fatals
            .iter()
            .filter(|paragraph| !paragraph.ignored && paragraph.hosts.iter().any(|name| name == host))
            .map(|paragraph| paragraph.text.clone())
            .collect();
        match recap {
            Some(recap) if recap.succeeded() => HostOutcome::Succeeded(recap),
            None if fatals.is_empty() => HostOutcome::NotRun,
            recap => HostOutcome::Failed { recap, fatals },
        }
    }
}

/// One Kayobe run: its output (the log), where the log stays, what it says.
#[derive(Clone, Debug)]
pub struct KayobeRun {
    /// The command's exit status and its log as standard output.
    pub output: CommandOutput,
    /// The log on the Kayobe host (in the job's folder), relative to the login's home.
    pub log_path: String,
    pub report: KayobeReport,
    /// The job an earlier run started and left running, awaited by this one.
    pub reattached: Option<String>,
}

pub struct Kayobe {
    jobs: RemoteJobs,
    environment_path: String,
    timeouts: KayobeTimeouts,
    /// The login's home on the Kayobe host, asked once when the path starts with `~`.
    home: tokio::sync::OnceCell<String>,
}

/// How long runs on the Kayobe host may take.
#[derive(Clone, Copy, Debug)]
pub struct KayobeTimeouts {
    /// `kayobe …` runs.
    pub kayobe: Duration,
    /// `ansible-playbook …` runs (the Mellanox playbook).
    pub playbook: Duration,
}

/// Kayobe's `--limit` form of a host list: `h1:h2`.
fn join_hosts<S: AsRef<str>>(hosts: &[S]) -> String {
    hosts.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(":")
}

impl Kayobe {
    /// `kayobe.username@kayobe.host`, with `kayobe.environment_path` sourced
    /// before each run; every run is a detached job ([`RemoteJobs`]).
    pub fn new(
        shell: Arc<dyn RemoteShell>,
        target: Target,
        environment_path: impl Into<String>,
        jobs: JobContext,
        timeouts: KayobeTimeouts,
    ) -> Self {
        Kayobe {
            jobs: RemoteJobs::new(shell, target, jobs),
            environment_path: environment_path.into(),
            timeouts,
            home: tokio::sync::OnceCell::new(),
        }
    }

    pub fn remote(&self) -> &Remote {
        self.jobs.remote()
    }

    /// The environment file as the remote shell must open it: `~/…` (the form
    /// the example credentials show) is under the login's home, which only the
    /// Kayobe host knows; the path itself stays a quoted argument.
    pub async fn environment_file(&self) -> Result<String, HostError> {
        let Some(rest) = self.environment_path.strip_prefix('~') else { return Ok(self.environment_path.clone()) };
        let action = "kayobe-home";
        let remote = self.remote();
        let home = self
            .home
            .get_or_try_init(|| async {
                let output = remote.run_ok(&RemoteCommand::script(action, r#"printf '%s\n' "$HOME""#, &[])).await?;
                let home = output.stdout.trim_end_matches('\n');
                if !home.starts_with('/') || home.contains('\n') {
                    return Err(remote.unexpected(action, "$HOME is not one absolute path"));
                }
                Ok(home.trim_end_matches('/').to_owned())
            })
            .await?;
        Ok(format!("{home}{rest}"))
    }

    /// Builds the Kayobe inventory from NetBox with `playbook`.
    pub async fn build_inventory(&self, playbook: &str) -> Result<KayobeRun, HostError> {
        self.run("kayobe-inventory", &["kayobe", "playbook", "run", playbook]).await
    }

    /// `kayobe overcloud host configure` for the hosts, with `-e` extra variables.
    pub async fn host_configure<S: AsRef<str>>(
        &self,
        hosts: &[S],
        extra_vars: &[String],
    ) -> Result<KayobeRun, HostError> {
        let limit = join_hosts(hosts);
        let mut args = vec!["kayobe", "overcloud", "host", "configure"];
        for extra in extra_vars {
            args.extend(["-e", extra.as_str()]);
        }
        args.extend(["--limit", &limit, "-kl", &limit]);
        self.run("kayobe-host-configure", &args).await
    }

    /// `kayobe overcloud service deploy` limited to the hosts.
    pub async fn service_deploy<S: AsRef<str>>(&self, hosts: &[S]) -> Result<KayobeRun, HostError> {
        let limit = join_hosts(hosts);
        let args = ["kayobe", "overcloud", "service", "deploy", "--limit", &limit, "-kl", &limit];
        self.run("kayobe-service-deploy", &args).await
    }

    /// Refreshes the controllers' services of the Kolla `tags` (`common`), once for a batch.
    pub async fn deploy_controllers(&self, tags: &str) -> Result<KayobeRun, HostError> {
        let args =
            ["kayobe", "overcloud", "service", "deploy", "--limit", "controllers", "-kl", "controllers", "-kt", tags];
        self.run("kayobe-controllers", &args).await
    }

    /// Enables UEFI PXE on the Mellanox cards of `hosts`.
    pub async fn mellanox_uefi_pxe(&self, hosts: &[&str]) -> Result<KayobeRun, HostError> {
        let inventory = format!("{},", hosts.join(","));
        let target = format!("pxe_target={}", hosts.join(":"));
        let args =
            ["ansible-playbook", "ansible/mellanox-enable-uefi-pxe.yml", "-i", &inventory, "--extra-vars", &target];
        self.run("mellanox-uefi-pxe", &args).await
    }

    /// Runs `program args…` with the Kayobe environment as a detached job
    /// on the Kayobe host (or waits for the one an earlier run left
    /// running), its log kept in the job's folder. A failed run is `Ok`: its
    /// result is data.
    pub async fn run(&self, action: &str, program_and_args: &[&str]) -> Result<KayobeRun, HostError> {
        let timeout = if program_and_args.first() == Some(&"ansible-playbook") {
            self.timeouts.playbook
        } else {
            self.timeouts.kayobe
        };
        let spec = JobSpec {
            action: action.to_owned(),
            environment: Some(self.environment_file().await?),
            command: program_and_args.iter().map(|arg| (*arg).to_owned()).collect(),
            timeout,
        };
        let job = self.jobs.run(&spec).await?;
        if job.output.exit_status == 98 {
            return Err(self.remote().failed(action, &job.output));
        }
        let report = parse_log(&job.output.stdout);
        let reattached = job.reattached.then(|| job.id.clone());
        Ok(KayobeRun { output: job.output, log_path: job.log_path, report, reattached })
    }
}

/// Reads an Ansible log: every `PLAY RECAP` (summed per host) and every
/// blank-line separated paragraph holding `fatal:`.
pub fn parse_log(log: &str) -> KayobeReport {
    let mut report = KayobeReport::default();
    for paragraph in paragraphs(log) {
        if paragraph.trim_start().starts_with("PLAY RECAP") {
            for (host, recap) in paragraph.lines().skip(1).filter_map(parse_recap_line) {
                report.recap.entry(host).or_default().add(&recap);
            }
        } else if paragraph.contains("fatal:") {
            let hosts = paragraph
                .lines()
                .filter_map(|line| line.trim_start().strip_prefix("fatal: ["))
                .filter_map(|rest| rest.split_once(']').map(|(host, _)| inventory_name(host).to_owned()))
                .fold(Vec::new(), |mut hosts, host| {
                    if !hosts.contains(&host) {
                        hosts.push(host);
                    }
                    hosts
                });
            let ignored = paragraph.lines().any(|line| line.trim() == "...ignoring");
            // Posted on tickets and journaled: Ansible prints variables, some of them secret.
            let text = crate::redact::secrets(&paragraph);
            report.fatals.push(FatalParagraph { hosts, text, ignored });
        }
    }
    report
}

/// The host of `fatal: [NAME]`; a delegated task reads `[NAME -> DELEGATE]`.
fn inventory_name(bracketed: &str) -> &str {
    bracketed.split_once(" -> ").map_or(bracketed, |(host, _)| host).trim()
}

/// Paragraphs separated by lines that are blank or only whitespace.
fn paragraphs(text: &str) -> Vec<String> {
    let mut paragraphs = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                paragraphs.push(current.join("\n"));
                current.clear();
            }
        } else {
            current.push(line);
        }
    }
    if !current.is_empty() {
        paragraphs.push(current.join("\n"));
    }
    paragraphs
}

/// `hv01   : ok=12   changed=3   unreachable=0   failed=1   skipped=5   rescued=0   ignored=0`
fn parse_recap_line(line: &str) -> Option<(String, HostRecap)> {
    let (host, counts) = line.split_once(" : ")?;
    let mut recap = HostRecap::default();
    let mut seen = 0;
    for pair in counts.split_whitespace() {
        let Some((key, value)) = pair.split_once('=') else { continue };
        let Ok(value) = value.parse() else { continue };
        let slot = match key {
            "ok" => &mut recap.ok,
            "changed" => &mut recap.changed,
            "unreachable" => &mut recap.unreachable,
            "failed" => &mut recap.failed,
            "skipped" => &mut recap.skipped,
            "rescued" => &mut recap.rescued,
            "ignored" => &mut recap.ignored,
            _ => continue,
        };
        *slot = value;
        seen += 1;
    }
    (seen > 0).then(|| (host.trim().to_owned(), recap))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = r#"
PLAY [Ensure the Kayobe Ansible user account exists] ***************************

TASK [Gathering Facts] *********************************************************
ok: [hv01.example.org]
ok: [hv02.example.org]
fatal: [hv03.example.org]: UNREACHABLE! => {"changed": false, "msg": "Failed to connect to the host via ssh: ssh: connect to host hv03.example.org port 22: No route to host", "unreachable": true}

TASK [kolla-ansible : Ensure SELinux is permissive] ****************************
fatal: [hv02.example.org]: FAILED! => {"changed": false, "msg": "Failed to set SELinux state"}
...ignoring

TASK [docker : Ensure docker service is running] *******************************
changed: [hv01.example.org]
fatal: [hv02.example.org]: FAILED! => {"changed": false, "msg": "Unable to start service docker: Job for docker.service failed because the control process exited with error code.\nSee \"systemctl status docker.service\" and \"journalctl -xe\" for details.\n"}

NO MORE HOSTS LEFT *************************************************************

PLAY RECAP *********************************************************************
hv01.example.org           : ok=42   changed=7    unreachable=0    failed=0    skipped=18   rescued=0    ignored=0   
hv02.example.org           : ok=30   changed=2    unreachable=0    failed=1    skipped=12   rescued=0    ignored=1   
hv03.example.org           : ok=0    changed=0    unreachable=1    failed=0    skipped=0    rescued=0    ignored=0   

PLAY [Apply role docker] *******************************************************

PLAY RECAP *********************************************************************
hv01                       : ok=3    changed=1    unreachable=0    failed=0    skipped=0    rescued=0    ignored=0   
"#;

    #[test]
    fn secrets_in_fatal_paragraphs_are_masked() {
        let log = "TASK [x]\nfatal: [hv01]: FAILED! => {\"changed\": false, \"msg\": \"boom\", \"db_password\": \"hunter2\"}\n";
        let report = parse_log(log);
        assert_eq!(report.fatals.len(), 1);
        assert!(!report.fatals[0].text.contains("hunter2"), "{}", report.fatals[0].text);
        assert!(report.fatals[0].text.contains(r#""db_password": "***""#));
    }

    #[tokio::test]
    async fn a_home_relative_environment_is_under_the_remote_home() {
        use crate::ssh::fake::{FakeShell, Reply};
        let shell = Arc::new(FakeShell::new());
        let home = RemoteCommand::script("kayobe-home", r#"printf '%s\n' "$HOME""#, &[]);
        shell.on(&home.command_line(), Reply::ok("/home/it's me\n"));
        let context = JobContext {
            folder: "j".into(),
            poll_interval: Duration::from_millis(1),
            journal: None,
            run_id: "r1".into(),
        };
        let timeouts = KayobeTimeouts { kayobe: Duration::from_secs(1), playbook: Duration::from_secs(1) };
        let target = Target::new("ubuntu", "kayobe");
        let kayobe = Kayobe::new(shell.clone(), target.clone(), "~/kayobe-prod/env-vars.sh", context.clone(), timeouts);
        assert_eq!(kayobe.environment_file().await.unwrap(), "/home/it's me/kayobe-prod/env-vars.sh");
        assert_eq!(kayobe.environment_file().await.unwrap(), "/home/it's me/kayobe-prod/env-vars.sh");
        assert_eq!(shell.command_lines().len(), 1, "the home is asked once");
        let absolute = Kayobe::new(shell.clone(), target, "/srv/env.sh", context, timeouts);
        assert_eq!(absolute.environment_file().await.unwrap(), "/srv/env.sh");
        assert_eq!(shell.command_lines().len(), 1);
    }

    #[test]
    fn recap_and_fatal_paragraphs_per_host() {
        let report = parse_log(LOG);
        assert_eq!(report.recap["hv01.example.org"].ok, 42);
        assert_eq!(
            report.recap["hv02.example.org"],
            HostRecap { ok: 30, changed: 2, failed: 1, skipped: 12, ignored: 1, ..HostRecap::default() }
        );
        assert_eq!(report.fatals.len(), 3);
        assert!(report.fatals[1].ignored);

        // hv01 appears once by FQDN and once by short name: two inventory names, never merged.
        match report.outcome("hv01.example.org") {
            HostOutcome::Failed { .. } | HostOutcome::NotRun => panic!("hv01 succeeded"),
            HostOutcome::Succeeded(recap) => assert_eq!(recap.ok, 42),
        }
        match report.outcome("hv02.example.org") {
            HostOutcome::Failed { recap, fatals } => {
                assert_eq!(recap.expect("in recap").failed, 1);
                assert_eq!(fatals.len(), 1, "the ignored fatal is not a failure");
                assert!(fatals[0].starts_with("TASK [docker : Ensure docker service is running]"), "{}", fatals[0]);
                assert!(fatals[0].contains("Unable to start service docker"));
            }
            other => panic!("hv02 failed: {other:?}"),
        }
        match report.outcome("hv03.example.org") {
            HostOutcome::Failed { recap, fatals } => {
                assert_eq!(recap.expect("in recap").unreachable, 1);
                assert!(fatals[0].contains("No route to host"));
            }
            other => panic!("hv03 failed: {other:?}"),
        }
        assert_eq!(report.outcome("hv09.example.org"), HostOutcome::NotRun);
    }

    #[test]
    fn a_short_name_is_another_inventory_name() {
        let report = parse_log(LOG);
        match report.outcome("hv01") {
            HostOutcome::Succeeded(recap) => assert_eq!(recap.ok, 3, "only the play that named it hv01"),
            other => panic!("hv01: {other:?}"),
        }
        assert_eq!(report.outcome("hv02"), HostOutcome::NotRun, "hv02.example.org is not hv02");
    }

    const RESCUED: &str = r#"
TASK [kolla-ansible : Ensure the kolla user exists] ****************************
fatal: [hv01.example.org]: FAILED! => {"changed": false, "msg": "useradd: group kolla exists"}

TASK [kolla-ansible : Reuse the existing kolla group] **************************
changed: [hv01.example.org]

TASK [selinux : Set SELinux state] *********************************************
fatal: [hv02.example.org]: FAILED! => {"changed": false, "msg": "SELinux is disabled"}
...ignoring

TASK [docker : Ensure docker is running] ***************************************
fatal: [hv03.example.org -> localhost]: FAILED! => {"changed": false, "msg": "docker did not start"}

PLAY RECAP *********************************************************************
hv01.example.org           : ok=10   changed=2    unreachable=0    failed=0    skipped=1    rescued=1    ignored=0
hv02.example.org           : ok=11   changed=1    unreachable=0    failed=0    skipped=1    rescued=0    ignored=1
hv03.example.org           : ok=4    changed=0    unreachable=0    failed=1    skipped=0    rescued=0    ignored=0
"#;

    #[test]
    fn rescued_and_ignored_fatals_are_not_failures() {
        let report = parse_log(RESCUED);
        match report.outcome("hv01.example.org") {
            HostOutcome::Succeeded(recap) => assert_eq!(recap.rescued, 1),
            other => panic!("a rescued fatal is no failure: {other:?}"),
        }
        match report.outcome("hv02.example.org") {
            HostOutcome::Succeeded(recap) => assert_eq!(recap.ignored, 1),
            other => panic!("an ignored fatal is no failure: {other:?}"),
        }
        match report.outcome("hv03.example.org") {
            HostOutcome::Failed { fatals, .. } => {
                assert_eq!(fatals.len(), 1, "a delegated task's fatal belongs to its host");
                assert!(fatals[0].contains("docker did not start"));
            }
            other => panic!("hv03 failed: {other:?}"),
        }
    }

    #[test]
    fn a_fatal_without_a_recap_fails_the_host() {
        let log = "TASK [Gathering Facts] ***\nfatal: [hv01.example.org]: UNREACHABLE! => {}\n";
        assert!(matches!(parse_log(log).outcome("hv01.example.org"), HostOutcome::Failed { recap: None, .. }));
    }

    const SIMILAR: &str = r#"
TASK [docker : Ensure docker is running] ***************************************
fatal: [hv1.a.example.org]: FAILED! => {"msg": "docker did not start"}
fatal: [hv10.b.example.org]: FAILED! => {"msg": "disk full"}

PLAY RECAP *********************************************************************
hv1.a.example.org          : ok=3    changed=0    unreachable=0    failed=1    skipped=0    rescued=0    ignored=0
hv1.b.example.org          : ok=9    changed=4    unreachable=0    failed=0    skipped=0    rescued=0    ignored=0
hv10.a.example.org         : ok=9    changed=4    unreachable=0    failed=0    skipped=0    rescued=0    ignored=0
hv10.b.example.org         : ok=3    changed=0    unreachable=0    failed=1    skipped=0    rescued=0    ignored=0
"#;

    #[test]
    fn similar_inventory_names_stay_apart() {
        let report = parse_log(SIMILAR);
        let failed_with = |host: &str| match report.outcome(host) {
            HostOutcome::Failed { recap, fatals } => {
                assert_eq!(recap.expect("in the recap").failed, 1, "{host}");
                fatals
            }
            other => panic!("{host} failed: {other:?}"),
        };
        // Same short name in two domains: each its own result.
        let a = failed_with("hv1.a.example.org");
        assert_eq!(a.len(), 1);
        assert!(a[0].contains("docker did not start") && a[0].contains("disk full"), "one paragraph: {}", a[0]);
        assert!(matches!(report.outcome("hv1.b.example.org"), HostOutcome::Succeeded(recap) if recap.ok == 9));
        // hv1 is not hv10.
        assert!(matches!(report.outcome("hv10.a.example.org"), HostOutcome::Succeeded(recap) if recap.ok == 9));
        assert_eq!(failed_with("hv10.b.example.org").len(), 1);
        assert_eq!(report.outcome("hv1"), HostOutcome::NotRun);
    }

    /// A Kayobe host whose job ends at once with `LOG` and exit status 2.
    #[derive(Default)]
    struct EndsAtOnce {
        lines: std::sync::Mutex<Vec<String>>,
    }

    impl RemoteShell for EndsAtOnce {
        fn run<'a>(
            &'a self,
            _target: &'a Target,
            command: &'a crate::ssh::RemoteCommand,
        ) -> crate::ssh::BoxFuture<'a, Result<CommandOutput, crate::ssh::SshError>> {
            self.lines.lock().unwrap().push(command.command_line());
            let stdout = match command.action.as_str() {
                action if action.ends_with("-poll") => "exit 2\n",
                action if action.ends_with("-log") => LOG,
                _ => "started\n",
            };
            let output = CommandOutput {
                command: command.command_line(),
                exit_status: 0,
                stdout: stdout.into(),
                stderr: String::new(),
                duration: Duration::ZERO,
            };
            Box::pin(async move { Ok(output) })
        }
    }

    #[tokio::test]
    async fn a_batch_run_is_a_job_with_the_environment_and_returns_its_log() {
        let shell = Arc::new(EndsAtOnce::default());
        let context = JobContext {
            folder: "hvmigrate-jobs".into(),
            poll_interval: Duration::from_millis(1),
            journal: None,
            run_id: "r1".into(),
        };
        let timeouts = KayobeTimeouts { kayobe: Duration::from_secs(60), playbook: Duration::from_secs(60) };
        let target = Target::new("stack", "kayobe.example.org");
        let kayobe = Kayobe::new(shell.clone(), target, "kayobe-env/env-vars.sh", context, timeouts);
        let extra = ["selinux_do_reboot=true".to_owned()];
        let run = kayobe.host_configure(&["hv01.example.org", "hv02.example.org"], &extra).await.expect("ran");
        assert_eq!(run.output.exit_status, 2);
        assert!(run.log_path.starts_with("hvmigrate-jobs/kayobe-host-configure-"), "{}", run.log_path);
        assert!(matches!(run.report.outcome("hv02.example.org"), HostOutcome::Failed { .. }));
        let lines = shell.lines.lock().unwrap().clone();
        let start = &lines[0];
        assert!(start.starts_with("bash -c "), "{start}");
        assert!(start.contains(" bash hvmigrate-jobs/kayobe-host-configure-"), "{start}");
        assert!(start.contains(" kayobe-env/env-vars.sh "), "{start}");
        assert!(
            start.ends_with(
                "kayobe overcloud host configure -e selinux_do_reboot=true --limit hv01.example.org:hv02.example.org \
                 -kl hv01.example.org:hv02.example.org"
            ),
            "{start}"
        );
        assert_eq!(lines.len(), 3, "start, one look, the log: {lines:?}");
    }
}
