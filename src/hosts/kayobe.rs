//! The Kayobe host: runs a Kayobe command or playbook once for a batch of
//! hosts (after sourcing the Kayobe environment), keeps its log, and turns
//! the log into a result per host from `PLAY RECAP` and `fatal:` paragraphs.

use std::collections::BTreeMap;
use std::sync::Arc;

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
    /// The outcome of `host`; a short name in the log matches the FQDN given.
    pub fn outcome(&self, host: &str) -> HostOutcome {
        let matches = |name: &str| name == host || short_name(name) == short_name(host) && !name.is_empty();
        // A host may appear by its short name in one play and its FQDN in another: sum them.
        let recap =
            self.recap.iter().filter(|(name, _)| matches(name)).fold(None, |total: Option<HostRecap>, (_, recap)| {
                let mut total = total.unwrap_or_default();
                total.add(recap);
                Some(total)
            });
        let fatals: Vec<String> = self
            .fatals
            .iter()
            .filter(|paragraph| !paragraph.ignored && paragraph.hosts.iter().any(|name| matches(name)))
            .map(|paragraph| paragraph.text.clone())
            .collect();
        match recap {
            Some(recap) if recap.succeeded() && fatals.is_empty() => HostOutcome::Succeeded(recap),
            None if fatals.is_empty() => HostOutcome::NotRun,
            recap => HostOutcome::Failed { recap, fatals },
        }
    }
}

fn short_name(host: &str) -> &str {
    host.split('.').next().unwrap_or(host)
}

/// One Kayobe run: its output (the log), where the log stays, what it says.
#[derive(Clone, Debug)]
pub struct KayobeRun {
    /// The command's exit status and its log as standard output.
    pub output: CommandOutput,
    /// The log on the Kayobe host, relative to the login's home.
    pub log_path: String,
    pub report: KayobeReport,
}

pub struct Kayobe {
    remote: Remote,
    environment_path: String,
    log_dir: String,
    /// The login's home on the Kayobe host, asked once when the path starts with `~`.
    home: tokio::sync::OnceCell<String>,
}

/// Kayobe's `--limit` form of a host list: `h1:h2`.
fn join_hosts<S: AsRef<str>>(hosts: &[S]) -> String {
    hosts.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(":")
}

impl Kayobe {
    /// `kayobe.username@kayobe.host`, with `kayobe.environment_path` sourced before each run.
    pub fn new(shell: Arc<dyn RemoteShell>, target: Target, environment_path: impl Into<String>) -> Self {
        Kayobe {
            remote: Remote::new(shell, target),
            environment_path: environment_path.into(),
            log_dir: "hvmigrate-logs".into(),
            home: tokio::sync::OnceCell::new(),
        }
    }

    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    /// The environment file as the remote shell must open it: `~/…` (the form
    /// the example credentials show) is under the login's home, which only the
    /// Kayobe host knows; the path itself stays a quoted argument.
    pub async fn environment_file(&self) -> Result<String, HostError> {
        let Some(rest) = self.environment_path.strip_prefix('~') else { return Ok(self.environment_path.clone()) };
        let action = "kayobe-home";
        let home = self
            .home
            .get_or_try_init(|| async {
                let output =
                    self.remote.run_ok(&RemoteCommand::script(action, r#"printf '%s\n' "$HOME""#, &[])).await?;
                let home = output.stdout.trim_end_matches('\n');
                if !home.starts_with('/') || home.contains('\n') {
                    return Err(self.remote.unexpected(action, "$HOME is not one absolute path"));
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

    /// Runs `program args…` with the Kayobe environment, its output kept in a
    /// log on the Kayobe host and returned. A failed run is `Ok`: its result is data.
    pub async fn run(&self, action: &str, program_and_args: &[&str]) -> Result<KayobeRun, HostError> {
        let stamp = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ").to_string();
        let log_path = format!("{}/{action}-{stamp}.log", self.log_dir);
        // Values arrive as positional arguments; the environment script is bash.
        let script = r#"env_file=$1 log=$2; shift 2
mkdir -p "$(dirname "$log")" || exit 97
. "$env_file" >"$log" 2>&1 || { cat "$log"; echo "cannot source $env_file" >&2; exit 98; }
"$@" >>"$log" 2>&1; status=$?
cat "$log"; exit $status"#;
        let environment_file = self.environment_file().await?;
        let command = RemoteCommand::new(action, "bash")
            .args(["-c", script, "bash", &environment_file, &log_path])
            .args(program_and_args.iter().copied());
        let output = self.remote.run(&command).await?;
        if output.exit_status == 98 {
            return Err(self.remote.failed(action, &output));
        }
        let report = parse_log(&output.stdout);
        Ok(KayobeRun { output, log_path, report })
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
                .filter_map(|rest| rest.split_once(']').map(|(host, _)| host.to_owned()))
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
    use crate::ssh::fake::{FakeShell, Reply};

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

    #[tokio::test]
    async fn a_home_relative_environment_is_under_the_remote_home() {
        let shell = Arc::new(FakeShell::new());
        let home = RemoteCommand::script("kayobe-home", r#"printf '%s\n' "$HOME""#, &[]);
        shell.on(&home.command_line(), Reply::ok("/home/it's me\n"));
        let kayobe = Kayobe::new(shell.clone(), Target::new("ubuntu", "kayobe"), "~/kayobe-prod/env-vars.sh");
        assert_eq!(kayobe.environment_file().await.unwrap(), "/home/it's me/kayobe-prod/env-vars.sh");
        assert_eq!(kayobe.environment_file().await.unwrap(), "/home/it's me/kayobe-prod/env-vars.sh");
        assert_eq!(shell.command_lines().len(), 1, "the home is asked once");
        let absolute = Kayobe::new(shell.clone(), Target::new("ubuntu", "kayobe"), "/srv/env.sh");
        assert_eq!(absolute.environment_file().await.unwrap(), "/srv/env.sh");
        assert_eq!(shell.command_lines().len(), 1);
    }

    #[test]
    fn secrets_in_fatal_paragraphs_are_masked() {
        let log = "TASK [x]\nfatal: [hv01]: FAILED! => {\"changed\": false, \"msg\": \"boom\", \"db_password\": \"hunter2\"}\n";
        let report = parse_log(log);
        assert_eq!(report.fatals.len(), 1);
        assert!(!report.fatals[0].text.contains("hunter2"), "{}", report.fatals[0].text);
        assert!(report.fatals[0].text.contains(r#""db_password": "***""#));
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

        // hv01 appears once by FQDN and once by short name; both count.
        match report.outcome("hv01.example.org") {
            HostOutcome::Failed { .. } | HostOutcome::NotRun => panic!("hv01 succeeded"),
            HostOutcome::Succeeded(recap) => assert_eq!(recap.ok, 45),
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
    fn short_and_long_names_match_each_other() {
        let report = parse_log(LOG);
        assert!(matches!(report.outcome("hv01"), HostOutcome::Succeeded(_)));
    }

    #[tokio::test]
    async fn a_batch_run_sources_the_environment_and_returns_the_log() {
        let shell = Arc::new(FakeShell::new());
        let kayobe = Kayobe::new(shell.clone(), Target::new("stack", "kayobe.example.org"), "kayobe-env/env-vars.sh");
        // The log path has a time stamp: answer whatever line comes.
        shell.on_user("stack", Reply::exit(2, LOG, ""));
        let extra = ["selinux_do_reboot=true".to_owned()];
        let run = kayobe.host_configure(&["hv01.example.org", "hv02.example.org"], &extra).await.expect("ran");
        assert_eq!(run.output.exit_status, 2);
        assert!(matches!(run.report.outcome("hv02.example.org"), HostOutcome::Failed { .. }));
        let line = &shell.command_lines()[0];
        assert!(line.starts_with("bash -c "), "{line}");
        assert!(line.contains(" bash kayobe-env/env-vars.sh hvmigrate-logs/kayobe-host-configure-"), "{line}");
        assert!(
            line.ends_with(
                "kayobe overcloud host configure -e selinux_do_reboot=true --limit hv01.example.org:hv02.example.org \
                 -kl hv01.example.org:hv02.example.org"
            ),
            "{line}"
        );
    }
}
