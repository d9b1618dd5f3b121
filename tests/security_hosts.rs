//! Hostile hosts and text from outside, through the real binary against the
//! simulated site (real SSH) and a real sshd: escape sequences, Jira markup
//! in VM names, files without a final newline, option-like host names, huge
//! command output, the SSH control folder, a timed-out remote command, and
//! secrets in a Kayobe `fatal:`.

mod post_reinstall_common;
mod support;

use std::collections::VecDeque;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hvmigrate::ssh::{RemoteCommand, RemoteShell, SshError};
use hvmigrate_lab::world::TextFile;
use hvmigrate_lab::{Fault, FaultConfig, OutputFault, Service, SshFaultConfig, WorldOptions};
use post_reinstall_common::{
    action, adoption, json, post_reinstall, reinstalled_site, report_of, world_state, LabSite,
};
use support::sshd::Sshd;
use support::Workspace;

/// What a hostile server or host prints to take over the operator's terminal:
/// clear the screen, home the cursor, a green "OK", a bell, a carriage return.
const TERMINAL_ATTACK: &str = "\x1b[2J\x1b[H\x1b[32mOK all hosts migrated\x1b[0m\x07\rpwned";

/// Every run log of the workspace, concatenated.
fn run_logs(workspace: &Workspace) -> String {
    workspace.read_all("logs")
}

/// Fails naming the place when `text` holds a raw control character other than newline and tab.
fn assert_no_raw_controls(place: &str, text: &str) {
    let found: Vec<char> = text.chars().filter(|c| c.is_control() && *c != '\n' && *c != '\t').collect();
    assert!(found.is_empty(), "{place} holds raw control characters {found:?}:\n{text}");
}

#[test]
fn escape_sequences_from_a_service_and_a_host_are_shown_escaped() {
    let site = LabSite::start(WorldOptions { hosts: 3, oddities: false, ..WorldOptions::default() });
    let hosts = site.campaign_hosts();
    site.hvmigrate(&["run", "--step", "setup", "--parallel", "-q"]).expect_code(0);
    // NetBox refuses hosts[1] with an error text full of escapes; hosts[2]'s dnf prints them on stderr.
    site.lab.faults().set(
        Service::NetBox,
        FaultConfig {
            next: VecDeque::from([Fault::StatusMessage { status: 403, message: TERMINAL_ATTACK.into() }]),
            path_contains: Some(hosts[1].clone()),
            ..Default::default()
        },
    );
    let dnf = OutputFault {
        command_contains: "check-update".into(),
        stderr: format!("Error: {TERMINAL_ATTACK}\n"),
        status: Some(1),
        ..Default::default()
    };
    site.lab.ssh_faults().set(&hosts[2], SshFaultConfig { output: Some(dnf), ..Default::default() });

    let out = site.hvmigrate(&["run", "--step", "pre-drain", "--parallel", "-v"]).expect_code(1);
    assert_no_raw_controls("stdout", &out.stdout);
    assert_no_raw_controls("stderr", &out.stderr);
    assert_no_raw_controls("the run log", &run_logs(&site.workspace));
    // Shown, not obeyed: the escapes are visible in the summary.
    out.stdout_has("\\x1b[2J\\x1b[H\\x1b[32mOK all hosts migrated");
    let status = site.hvmigrate(&["status"]).expect_code(0);
    assert_no_raw_controls("status", &status.stdout);
    status.stdout_has("\\x1b[2J");
    for host in &hosts[1..] {
        let history = site.hvmigrate(&["status", "--host", host]).expect_code(0);
        assert_no_raw_controls("status --host", &history.stdout);
        for comment in site.comments(host) {
            assert_no_raw_controls("the Jira comment", &comment);
        }
    }
    let journal = std::fs::read(site.workspace.file("state/hvmigrate.db")).expect("the journal");
    assert!(!journal.windows(4).any(|w| w == b"\x1b[2J"), "the journal holds the raw escape");
    // Nothing else changed: the healthy host went through, the refused ones kept their service.
    let world = site.world();
    assert_eq!(world.host(&hosts[0]).unwrap().compute.status, "disabled", "{}", out.report());
    for host in &hosts[1..] {
        assert_eq!(world.host(host).unwrap().compute.status, "enabled", "{host}\n{}", out.report());
    }
}

/// A line of wiki markup that would render as something other than text.
fn live_markup(comment: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut in_code = false;
    for line in comment.lines() {
        // Inside `{code}` nothing is markup.
        if in_code {
            in_code = line != "{code}";
            continue;
        }
        if line.starts_with("{code") {
            in_code = true;
            continue;
        }
        let trimmed = line.trim_start();
        let lower = trimmed.to_ascii_lowercase();
        if ["h1.", "h2.", "h3.", "h4.", "h5.", "h6.", "bq."].iter().any(|p| lower.starts_with(p)) {
            found.push(format!("heading or quote: {line}"));
        }
        if trimmed.starts_with("----") {
            found.push(format!("rule: {line}"));
        }
        let chars: Vec<char> = line.chars().collect();
        for (at, c) in chars.iter().enumerate() {
            let escaped = at > 0 && chars[at - 1] == '\\';
            if *c == '!' && !escaped {
                found.push(format!("image: {line}"));
            }
            let word = |i: Option<usize>| i.and_then(|i| chars.get(i)).is_some_and(|c| c.is_alphanumeric());
            let blank = |i: Option<usize>| i.and_then(|i| chars.get(i)).is_none_or(|c| c.is_whitespace());
            let inert = (word(at.checked_sub(1)) && word(Some(at + 1)))
                || (at > 0 && blank(Some(at - 1)) && blank(Some(at + 1)));
            if matches!(c, '-' | '+') && !escaped && !inert {
                found.push(format!("effect: {line}"));
            }
        }
    }
    found
}

#[test]
fn markup_in_vm_names_reaches_the_ticket_as_text() {
    let site = LabSite::start(WorldOptions { hosts: 2, oddities: false, vms_per_host: Some(3), ..Default::default() });
    let hosts = site.campaign_hosts();
    let names = ["!https://attacker.example/px.png!", "h1. Hacked -struck- +inserted+", "----"];
    {
        let mut world = site.world();
        let mut on_host: Vec<_> = world.servers.values_mut().filter(|server| server.host == hosts[0]).collect();
        assert_eq!(on_host.len(), 3);
        for (server, name) in on_host.iter_mut().zip(names) {
            server.name = name.into();
        }
    }
    site.hvmigrate(&["run", "--step", "setup", "--parallel", "-q"]).expect_code(0);
    site.hvmigrate(&["run", "--step", "pre-drain", "--parallel", "-q"]).expect_code(0);
    let out = site.hvmigrate(&["run", "--step", "drain", "--parallel"]).expect_code(0);
    let comment = site
        .comments(&hosts[0])
        .into_iter()
        .find(|comment| comment.contains("hvmigrate drain"))
        .unwrap_or_else(|| panic!("no drain comment\n{}", out.report()));
    assert!(comment.contains("VMs moved (3)"), "{comment}");
    let live = live_markup(&comment);
    assert!(live.is_empty(), "live markup {live:#?} in\n{comment}");
    // The names are there, escaped: Jira shows them as typed.
    assert!(comment.contains("\\!https://attacker.example/px.png\\!"), "{comment}");
    assert!(comment.contains("h1\\. Hacked \\-struck\\- \\+inserted\\+"), "{comment}");
    assert!(comment.contains("\\-\\-\\-\\-"), "{comment}");
}

/// The lines of a file, with whether it ends with a newline.
fn ends_with_newline(file: &TextFile) -> bool {
    file.text().ends_with('\n')
}

#[test]
fn files_without_a_final_newline_get_whole_lines_once() {
    let (site, hosts) = reinstalled_site("", |_| true);
    let (a100, lenovo) = (&hosts[4], &hosts[5]);
    let foreign_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIForeignKeyOfSomeoneElse1234567890abc other@elsewhere";
    {
        let mut world = site.world();
        for host in &hosts[1..] {
            let shell = &mut world.host_mut(host).unwrap().shell;
            shell.directories.insert("/root/.ssh".into());
            shell.root_authorized_keys = TextFile::new(foreign_key);
        }
        let fstab = &mut world.host_mut(lenovo).unwrap().shell.fstab;
        *fstab = TextFile::new(fstab.text().trim_end_matches('\n').to_owned());
        assert!(!ends_with_newline(fstab));
        world.host_mut(a100).unwrap().shell.mdadm_conf = TextFile::new("MAILADDR root");
    }
    let last_fstab_line = site.world().host(lenovo).unwrap().shell.fstab.lines().last().unwrap().to_owned();

    let out = post_reinstall(&site, &[]);
    let summary = json(&out);
    for host in &hosts[1..] {
        let report = report_of(&summary, host);
        // Root's key on a line of its own is what lets the step go on as root.
        assert_eq!(action(report, "root-access")["outcome"], "done", "{host}\n{}", out.report());
        assert_eq!(report["outcome"], "succeeded", "{host}\n{}", out.report());
    }
    let (keys, fstab, mdadm) = {
        let world = site.world();
        (
            world.host(&hosts[1]).unwrap().shell.root_authorized_keys.clone(),
            world.host(lenovo).unwrap().shell.fstab.clone(),
            world.host(a100).unwrap().shell.mdadm_conf.clone(),
        )
    };
    let keys: Vec<&str> = keys.lines().collect();
    assert_eq!(keys.len(), 2, "{keys:#?}");
    assert_eq!(keys[0], foreign_key, "the existing key is intact");
    assert!(keys[1].starts_with("ssh-ed25519 ") && !keys[1].contains("other@elsewhere"), "{keys:#?}");
    let fstab_lines: Vec<&str> = fstab.lines().collect();
    assert!(fstab_lines.contains(&last_fstab_line.as_str()), "the old last line is intact: {fstab_lines:#?}");
    assert!(fstab_lines.last().is_some_and(|line| line.contains(" /var/lib/nova/instances ")), "{fstab_lines:#?}");
    assert!(ends_with_newline(&fstab));
    let mdadm_lines: Vec<&str> = mdadm.lines().collect();
    assert_eq!(mdadm_lines[0], "MAILADDR root", "{mdadm_lines:#?}");
    assert!(mdadm_lines[1].starts_with("ARRAY /dev/md0"), "{mdadm_lines:#?}");
    assert_eq!(mdadm_lines.len(), 2);

    // A re-run finds every line and appends nothing.
    let before = world_state(&site);
    let again = json(&post_reinstall(&site, &[]));
    for host in &hosts[1..] {
        assert_eq!(report_of(&again, host)["outcome"], "succeeded", "{host}: {again}");
    }
    assert_eq!(world_state(&site)["hosts"], before["hosts"], "a re-run changed the hosts");
}

#[test]
fn option_like_service_host_names_are_refused_at_load() {
    let cases = [
        ("host: aquilon.example.org", "host: \"-oProxyCommand=touch PWNED\"", "aquilon.host"),
        ("host: kayobe.example.org", "host: -oProxyCommand=sh", "kayobe.host"),
        ("username: ubuntu", "username: -oProxyCommand=sh", "kayobe.username"),
        ("environment_path: ~/kayobe-prod", "environment_path: ~ubuntu/kayobe-prod", "kayobe.environment_path"),
    ];
    for (from, to, key) in cases {
        let ws = Workspace::with_examples();
        let credentials = support::EXAMPLE_CREDENTIALS.replace(from, to);
        assert_ne!(credentials, support::EXAMPLE_CREDENTIALS, "{from}");
        ws.write_secret("credentials.yaml", credentials);
        let before = ws.files();
        let out = ws.hvmigrate(&["check-config"]).expect_code(2);
        out.stderr_has(key).stderr_has("credentials.yaml");
        let out = ws.hvmigrate(&["run", "--step", "noops"]).expect_code(2);
        out.stderr_has(key);
        assert_eq!(ws.files(), before, "nothing was started or written for {key}\n{}", out.report());
        assert!(!ws.file("PWNED").exists());
    }
}

#[test]
fn huge_command_output_keeps_its_head_and_tail() {
    let site = LabSite::start(WorldOptions { hosts: 2, oddities: false, ..WorldOptions::default() });
    let hosts = site.campaign_hosts();
    site.hvmigrate(&["run", "--step", "setup", "--parallel", "-q"]).expect_code(0);
    let limit = hvmigrate::ssh::OUTPUT_LIMIT_BYTES;
    let filler = "the same line of a runaway command, again and again\n";
    let huge = OutputFault {
        command_contains: "check-update".into(),
        stdout_first: "HEAD-OF-THE-OUTPUT\n".into(),
        stdout: filler.into(),
        stdout_repeat: 2 * limit / filler.len(),
        stdout_last: "TAIL-OF-THE-OUTPUT\n".into(),
        status: Some(1),
        ..Default::default()
    };
    site.lab.ssh_faults().set(&hosts[1], SshFaultConfig { output: Some(huge), ..Default::default() });
    let out = site.hvmigrate(&["run", "--step", "pre-drain", "--parallel", "-q"]).expect_code(1);
    let comment = site
        .comments(&hosts[1])
        .into_iter()
        .find(|comment| comment.contains("hvmigrate pre-drain"))
        .unwrap_or_else(|| panic!("no comment\n{}", out.report()));
    // Read at most the limit: attached whole as read (head, the cut, tail); the comment quotes its end.
    let attached: String = {
        let world = site.world();
        let key = world.host(&hosts[1]).unwrap().jira_key.clone().unwrap();
        world.jira_issue(&key).unwrap().attachments.iter().map(|file| file.content.clone()).collect()
    };
    assert!(attached.contains("HEAD-OF-THE-OUTPUT"), "the head is kept");
    assert!(attached.contains("TAIL-OF-THE-OUTPUT"), "the tail is kept");
    assert!(attached.contains("bytes cut here"), "the cut is said");
    assert!(comment.contains("TAIL-OF-THE-OUTPUT"), "the comment quotes the end");
    assert!(comment.chars().count() < 32_767, "{} bytes posted", comment.len());
    let notice = format!("bytes cut from the middle of the output of dnf-check-update on root@{}", hosts[1]);
    let logs = run_logs(&site.workspace);
    assert!(logs.contains(&notice), "the run log names host, command and the cut: {notice}\n{}", out.report());
    // The other host was not touched by it.
    assert_eq!(site.world().host(&hosts[0]).unwrap().compute.status, "disabled");
    assert_eq!(site.world().host(&hosts[1]).unwrap().compute.status, "enabled");
}

#[test]
fn a_timed_out_remote_command_is_stopped_and_the_control_folder_is_private_and_removed() {
    let sshd = Sshd::start();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let marker = sshd.path("survived");
    let control_dir = runtime.block_on(async {
        let pool = sshd.pool();
        let control_dir = pool.control_dir().to_owned();
        let mode = std::fs::metadata(&control_dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "the control folder is private");
        // A unique duration names the remote process; it would write the marker if it survived.
        let script = r#"sleep 317; echo survived > "$1""#;
        let command =
            RemoteCommand::script("slow", script, &[&marker.display().to_string()]).timeout(Duration::from_secs(2));
        match pool.run(&sshd.target(), &command).await {
            Err(SshError::Timeout { .. }) => {}
            other => panic!("expected a timeout, got {other:?}"),
        }
        let left = std::process::Command::new("pgrep").args(["-f", "sleep 317"]).output().expect("pgrep runs");
        assert!(!left.status.success(), "the remote command still runs: {}", String::from_utf8_lossy(&left.stdout));
        assert!(pool.open_connections() > 0);
        control_dir
    });
    assert!(!control_dir.exists(), "the control folder outlived the pool");
    assert!(!marker.exists());
    drop(runtime);
}

/// The SSH control folders the binary made under `tmp`.
fn control_dirs(tmp: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(tmp)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.path())
                .filter(|path| {
                    path.file_name().is_some_and(|name| name.to_string_lossy().starts_with("hvmigrate-ssh."))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether some process has `needle` in its command line.
fn process_running(needle: &str) -> bool {
    std::process::Command::new("pgrep").args(["-f", needle]).output().is_ok_and(|out| out.status.success())
}

/// Starts the binary with `args` on a slow site, sends `signal` once an SSH
/// master is up, and checks the exit code, the folder and the masters.
fn stop_with_a_signal_while_connected(args: &[&str], signal: i32, expected_code: i32) {
    let site = LabSite::start(WorldOptions { hosts: 2, oddities: false, ..WorldOptions::default() });
    site.hvmigrate(&["run", "--step", "setup", "--parallel", "-q"]).expect_code(0);
    // Slow commands keep the run going while it is stopped.
    for host in site.campaign_hosts() {
        site.lab.ssh_faults().set(&host, SshFaultConfig { latency_ms: Some((400, 400)), ..Default::default() });
    }
    let tmp = site.workspace.file("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let mut run = site.hvmigrate(args).env("TMPDIR", tmp.to_str().unwrap());
    run.command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let mut child = run.command.spawn().expect("the binary starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    let dir = loop {
        let with_master = control_dirs(&tmp).into_iter().find(|dir| {
            std::fs::read_dir(dir).into_iter().flatten().flatten().any(|entry| entry.path().join("master").exists())
        });
        if let Some(dir) = with_master {
            break dir;
        }
        assert!(Instant::now() < deadline, "no master connection was opened");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before a master was opened");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{}", dir.display());
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, signal) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(expected_code), "{args:?}: {status:?}");
    assert!(control_dirs(&tmp).is_empty(), "the control folder outlived the run: {:?}", control_dirs(&tmp));
    // A stopped master takes a moment to go.
    let deadline = Instant::now() + Duration::from_secs(10);
    while process_running(&dir.display().to_string()) {
        assert!(Instant::now() < deadline, "an ssh master outlived the run");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_closes_the_ssh_masters_and_removes_their_folder() {
    // `run` stops on SIGTERM as on the first Ctrl-C: running actions end, the
    // hosts not finished are interrupted (exit 1), and the masters close.
    stop_with_a_signal_while_connected(&["run", "--step", "pre-drain", "--parallel", "-q"], libc::SIGTERM, 1);
}

#[test]
fn ctrl_c_during_a_collection_closes_the_ssh_masters_and_removes_their_folder() {
    stop_with_a_signal_while_connected(&["scc", "collect", "--parallel", "2"], libc::SIGINT, 130);
}

#[test]
fn kayobe_secrets_are_redacted_and_a_home_relative_environment_works() {
    let (site, hosts) = reinstalled_site("", |_| true);
    post_reinstall(&site, &[]);
    // The form the example credentials show: under the Kayobe login's home.
    let credentials = site.workspace.file("site/credentials.yaml");
    let text = std::fs::read_to_string(&credentials).unwrap();
    let home_relative = text.replace("environment_path: /home/ops/", "environment_path: ~/");
    assert_ne!(home_relative, text, "the lab names an absolute environment path");
    std::fs::write(&credentials, home_relative).unwrap();
    let message = "cannot log in: mysql --user=nova --password=hunter2-db api_token: tok-5ecret login failed";
    site.world().host_mut(&hosts[3]).unwrap().kayobe.fail_with = Some(message.into());

    let out = adoption(&site, &[]);
    assert_eq!(out.code, 1, "{}", out.report());
    let summary = json(&out);
    for host in [&hosts[1], &hosts[2], &hosts[4], &hosts[5]] {
        assert_eq!(report_of(&summary, host)["outcome"], "succeeded", "{host}\n{}", out.report());
    }
    assert_eq!(report_of(&summary, &hosts[3])["outcome"], "failed");
    let comment = site.comments(&hosts[3]).into_iter().find(|c| c.contains("hvmigrate adoption")).unwrap();
    assert!(comment.contains("fatal: ["), "{comment}");
    assert!(comment.contains("--password=*** api_token: *** login failed"), "{comment}");
    for secret in ["hunter2", "tok-5ecret"] {
        assert!(!comment.contains(secret), "{secret} posted:\n{comment}");
        assert!(!out.stdout.contains(secret) && !out.stderr.contains(secret), "{secret} printed");
        assert!(!run_logs(&site.workspace).contains(secret), "{secret} in the run log");
        let journal = std::fs::read(site.workspace.file("state/hvmigrate.db")).unwrap();
        assert!(!journal.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} journaled");
    }
}
