//! `hvmigrate check-config` and the input-file rules, through the real binary.

mod support;

use support::{running_as_root, Workspace, EXAMPLE_CREDENTIALS, EXAMPLE_SECRETS};

/// Runs check-config on the workspace and expects exit 2 with `message`,
/// and that nothing was written.
fn refused(ws: &Workspace, message: &str) {
    let before = ws.files();
    ws.hvmigrate(&["check-config"]).expect_code(2).stderr_has(message);
    assert_eq!(ws.files(), before, "a refused run wrote files");
}

#[test]
fn examples_are_valid_and_summarised() {
    let ws = Workspace::with_examples();
    let out = ws.hvmigrate(&["check-config"]).expect_code(0);
    out.stdout_has("Hypervisors: hypervisors.txt (3 hosts)")
        .stdout_has("hv-a100-03.nubes.example.org     MH-183")
        .stdout_has("initials     ABC")
        .stdout_has("netbox       https://netbox.example.org/ (token ***)");
    let logs: Vec<_> = ws.files().into_iter().filter(|file| file.starts_with("logs/")).collect();
    assert_eq!(logs.len(), 1, "{}", out.report());
    let name = logs[0].strip_prefix("logs/hypervisors.txt.").expect("log named after the hypervisors file");
    assert!(name.len() == 16 && name.split('_').count() == 5, "log stamp {name}");
}

#[test]
fn json_summary() {
    let ws = Workspace::with_examples();
    let out = ws.hvmigrate(&["check-config", "--output", "json"]).expect_code(0);
    let summary: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(summary["hosts"].as_array().unwrap().len(), 3);
    assert_eq!(summary["services"][0]["service"], "jira");
}

#[test]
fn no_secret_reaches_output_or_logs() {
    let ws = Workspace::with_examples();
    let out = ws.hvmigrate(&["check-config", "-vv"]).expect_code(0);
    let json = ws.hvmigrate(&["check-config", "--output", "json"]).expect_code(0);
    let everything = format!("{}{}{}{}{}", out.stdout, out.stderr, json.stdout, json.stderr, ws.read_all("logs"));
    for secret in EXAMPLE_SECRETS {
        assert!(EXAMPLE_CREDENTIALS.contains(secret), "the list of secrets is stale: {secret}");
        assert!(!everything.contains(secret), "secret {secret} leaked\n{}", out.report());
    }
}

#[test]
fn hypervisors_file_errors_name_file_and_line() {
    let cases: &[(&str, &str)] = &[
        (
            "hv01.example.org MH-1 extra\n",
            "hypervisors.txt:1: expected 2 columns '<fqdn> <JIRA-KEY>' (then options name=value), found 3",
        ),
        ("# a comment\nhv01.example.org\n", "hypervisors.txt:2: expected 2 columns"),
        ("hv_01.example.org MH-1\n", "hypervisors.txt:1: invalid host name 'hv_01.example.org'"),
        ("hv01.example.org mh1\n", "hypervisors.txt:1: invalid Jira key 'mh1'"),
        (
            "hv01.example.org MH-1\n\nHV01.example.org MH-2\n",
            "hypervisors.txt:3: host hv01.example.org is listed twice (lines 1 and 3)",
        ),
        ("a.example.org MH-1\nb.example.org MH-1\n", "hypervisors.txt:2: Jira key MH-1 is used for two hosts"),
        ("# nothing\n\n", "hypervisors.txt: no hypervisors listed"),
    ];
    for (contents, message) in cases {
        let ws = Workspace::with_examples();
        ws.write("hypervisors.txt", contents);
        refused(&ws, message);
    }
}

#[test]
fn hypervisors_file_not_utf8_or_missing() {
    let ws = Workspace::with_examples();
    ws.write("hypervisors.txt", b"a.example.org MH-1\nb.example.org MH-\xe9\n");
    refused(&ws, "hypervisors.txt:2: not valid UTF-8");
    std::fs::remove_file(ws.file("hypervisors.txt")).unwrap();
    refused(&ws, "hypervisors.txt: cannot read the hypervisors file: No such file or directory");
}

#[test]
fn crlf_bom_and_trailing_comments_are_fine() {
    let ws = Workspace::with_examples();
    ws.write("hypervisors.txt", "\u{feff}# fleet\r\nhv01.example.org MH-1 # first\r\n");
    ws.hvmigrate(&["check-config"]).expect_code(0).stdout_has("hv01.example.org  MH-1");
}

#[test]
fn credentials_errors_are_located() {
    let cases: &[(&str, &str)] = &[
        ("jira:\n  url: https://j\n  usrname: a\n", "credentials.yaml:3:3: jira: unknown key `usrname`"),
        ("jira:\n  url: https://j\n  usrname: a\n", "(did you mean `username`?)"),
        ("netbx:\n  url: https://n\n", "(did you mean `netbox`?)"),
        ("netbox:\n  url: not a url\n  token: t\n", "credentials.yaml:2:"),
        ("netbox:\n  url: not a url\n  token: t\n", "netbox.url: not a valid URL"),
        ("ssh:\n  username: [a, b]\n", "credentials.yaml:2:"),
        ("general: {initials: AB\n", "credentials.yaml:"),
        (
            "workflow:\n  limits:\n    live_migrations_global: 0\n",
            "workflow.limits.live_migrations_global must be at least 1",
        ),
        ("", "credentials.yaml: the credentials file is empty"),
    ];
    for (contents, message) in cases {
        let ws = Workspace::with_examples();
        ws.write_secret("credentials.yaml", contents);
        refused(&ws, message);
    }
}

#[test]
fn both_files_reported_at_once() {
    let ws = Workspace::with_examples();
    ws.write("hypervisors.txt", "bad_host MH-1\n");
    ws.write_secret("credentials.yaml", "jira: 3\n");
    let out = ws.hvmigrate(&["check-config"]).expect_code(2);
    out.stderr_has("hypervisors.txt:1:").stderr_has("credentials.yaml:1:");
}

#[test]
fn readable_credentials_file_is_refused() {
    let ws = Workspace::with_examples();
    ws.chmod("credentials.yaml", 0o644);
    refused(&ws, "has mode 0644; it must be 0600 (or 0400); run: chmod 600");
    ws.chmod("credentials.yaml", 0o400);
    ws.hvmigrate(&["check-config"]).expect_code(0);
}

#[test]
fn group_writable_folder_is_refused() {
    let ws = Workspace::with_examples();
    std::fs::create_dir(ws.file("etc")).unwrap();
    std::fs::copy(ws.file("credentials.yaml"), ws.file("etc/credentials.yaml")).unwrap();
    ws.chmod("etc", 0o775);
    refused_with(&ws, &["check-config", "--creds-file", "etc/credentials.yaml"], "writable by group or others");
}

fn refused_with(ws: &Workspace, args: &[&str], message: &str) {
    let before = ws.files();
    ws.hvmigrate(args).expect_code(2).stderr_has(message);
    assert_eq!(ws.files(), before, "a refused run wrote files");
}

#[test]
fn root_needs_allow_root() {
    let ws = Workspace::with_examples();
    let out = ws.command(&["check-config"]).run();
    if running_as_root() {
        assert_eq!(out.code, 2, "{}", out.report());
        out.stderr_has("refusing to run as root").stderr_has("--allow-root");
        ws.command(&["check-config", "--allow-root"]).expect_code(0);
    } else {
        assert_eq!(out.code, 0, "{}", out.report());
    }
}

#[test]
fn usage_errors_exit_2() {
    let ws = Workspace::with_examples();
    ws.hvmigrate(&["check-config", "--no-such-flag"]).expect_code(2);
    ws.hvmigrate(&["no-such-command"]).expect_code(2);
}

#[test]
fn help_snapshot() {
    let ws = Workspace::empty();
    let out = ws.command(&["--help"]).env("COLUMNS", "100").expect_code(0);
    insta::assert_snapshot!("help", out.stdout);
}
