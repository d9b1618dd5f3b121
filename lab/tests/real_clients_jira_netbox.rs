//! Unmodified real clients against the lab: pynetbox against the NetBox
//! emulator and the Python `jira` library against the Jira emulator. The
//! scripts live in tests/python/; install their pinned versions with
//! `pip install -r tests/python/requirements.txt`. A missing package skips
//! the test, except under CI (env `CI` set), where it fails.

use std::path::PathBuf;
use std::process::Command;

use hvmigrate_lab::{Lab, LabOptions, WorldOptions};

fn python_has(module: &str) -> bool {
    Command::new("python3").args(["-c", &format!("import {module}")]).output().is_ok_and(|out| out.status.success())
}

/// Whether the Python package is there; without it, skip (or fail under CI).
fn client_installed(module: &str) -> bool {
    if python_has(module) {
        return true;
    }
    let message = format!("python3 cannot import '{module}': pip install -r tests/python/requirements.txt");
    assert!(std::env::var_os("CI").is_none(), "{message}");
    eprintln!("skipped: {message}");
    false
}

/// Runs a script of tests/python/ with these environment variables, while
/// the lab keeps serving on this runtime's other threads.
async fn run_script(script: &str, env: Vec<(&'static str, String)>) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/python").join(script);
    let output = tokio::task::spawn_blocking(move || Command::new("python3").arg(&path).envs(env).output())
        .await
        .expect("the script ran")
        .expect("python3 starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{script} failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}", output.status);
    eprint!("{stdout}");
}

async fn lab() -> Lab {
    Lab::start(LabOptions { world: WorldOptions { hosts: 40, ..WorldOptions::default() }, ..LabOptions::default() })
        .await
        .expect("lab starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pynetbox_finds_saves_and_filters() {
    if !client_installed("pynetbox") {
        return;
    }
    let lab = lab().await;
    let device = {
        let world = lab.world().lock();
        let device = world.netbox.devices.iter().find(|d| d.oob_ip.is_some() && d.status == "active").expect("one");
        device.name.clone()
    };
    run_script(
        "test_netbox_pynetbox.py",
        vec![
            ("LAB_NETBOX_URL", lab.urls().netbox.clone()),
            ("LAB_NETBOX_TOKEN", lab.secrets().netbox_token.clone()),
            ("LAB_NETBOX_DEVICE", device.clone()),
        ],
    )
    .await;
    let world = lab.world().lock();
    let stored = world.netbox.devices.iter().find(|d| d.name == device).expect("still there");
    assert_eq!(stored.status, "offline", "pynetbox's save reached the world");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_jira_creates_comments_transitions_and_searches() {
    if !client_installed("jira") {
        return;
    }
    let lab = lab().await;
    let issues = lab.world().lock().jira.issues.len();
    let secrets = lab.secrets();
    run_script(
        "test_jira_client.py",
        vec![
            ("LAB_JIRA_URL", lab.urls().jira.clone()),
            ("LAB_JIRA_USER", secrets.jira_username.clone()),
            ("LAB_JIRA_TOKEN", secrets.jira_api_token.clone()),
            ("LAB_JIRA_PAT", secrets.jira_personal_access_token.clone()),
            ("LAB_JIRA_ISSUES", issues.to_string()),
        ],
    )
    .await;
    let unanswered: Vec<_> = lab.requests().all().into_iter().filter(|r| r.status == 404).collect();
    assert!(unanswered.is_empty(), "the client asked for paths the emulator does not serve: {unanswered:?}");
}
