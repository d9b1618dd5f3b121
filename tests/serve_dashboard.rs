//! The dashboard in a real headless Chromium, driven through the DevTools
//! protocol (tests/python/serve_dashboard_cdp.py): the login page, the host
//! table and its search, one host's page, at desktop and phone width. The
//! screenshots are not blank, no request leaves 127.0.0.1, the session
//! cookie is out of the scripts' reach.
//!
//! `HVMIGRATE_DASHBOARD_SHOT=<file>` keeps the overview's screenshot (the README's).

mod support;

use std::process::Command;

use support::png::decode_png;
use support::serve::{add_token, lab_ledger};
use support::Workspace;

fn tool_or_skip(found: bool, what: &str) -> bool {
    if found {
        return true;
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{what} is needed in CI (scripts/ci-packages.txt, .ci/run)");
    eprintln!("SKIPPED: {what} is not installed here");
    false
}

/// The share of pixels that are not near-white, and of those in colour.
fn ink(file: &str) -> (f64, usize) {
    let (width, height, pixels) = decode_png(&std::fs::read(file).unwrap_or_else(|err| panic!("{file}: {err}")));
    let inked = pixels.chunks(3).filter(|rgb| rgb.iter().any(|channel| *channel < 200)).count();
    let coloured = pixels.chunks(3).filter(|rgb| rgb.iter().max().unwrap() - rgb.iter().min().unwrap() > 60).count();
    (inked as f64 / (width * height) as f64, coloured)
}

#[test]
fn login_host_table_and_a_host_page_in_headless_chromium() {
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|name| Command::new(name).arg("--version").output().is_ok_and(|out| out.status.success()));
    if !tool_or_skip(chromium.is_some(), "chromium (Debian package)") {
        return;
    }
    let websocket =
        Command::new("python3").args(["-c", "import websocket"]).output().is_ok_and(|out| out.status.success());
    if !tool_or_skip(websocket, "websocket-client (pip install -r tests/python/requirements.txt)") {
        return;
    }
    let ws = Workspace::empty();
    let state = lab_ledger(&ws, 6);
    let token = add_token(&ws, "tokens", "viewer", "read");
    let served = ws.serve(&["--state", state, "--tokens-file", "tokens"]);
    std::fs::create_dir_all(ws.file("shots")).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/serve_dashboard_cdp.py");
    let output = Command::new("python3")
        .args([script, chromium.unwrap(), &served.url, &token])
        .arg(ws.file("shots"))
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = format!(
        "command: python3 {script} chromium {} <token> shots\n--- stdout\n{stdout}\n--- stderr\n{}\n--- serve\n{}",
        served.url,
        String::from_utf8_lossy(&output.stderr),
        served.stderr()
    );
    assert!(output.status.success(), "{report}");
    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|err| panic!("{err}\n{report}"));

    assert_eq!(seen["before_login"], "/login", "without a session, the login page\n{report}");
    assert_eq!(seen["after_login"], "/", "{report}");
    assert_eq!(seen["cookie_visible_to_scripts"], "", "the session cookie is HttpOnly\n{report}");
    assert_eq!(seen["host_rows"], 6, "{report}");
    assert_eq!(seen["svg"], 1, "the burn-down chart\n{report}");
    assert_eq!(seen["search_rows"], 1, "the search keeps one host\n{report}");
    let first = seen["hosts"][0].as_str().unwrap();
    assert_eq!(seen["host_title"], first, "{report}");
    assert!(seen["timeline_rows"].as_u64().unwrap() > 5, "{report}");
    assert!(seen["phone_overflow"].as_i64().unwrap() <= 0, "the page is wider than a phone\n{report}");

    let requests: Vec<&str> = seen["requests"].as_array().unwrap().iter().map(|url| url.as_str().unwrap()).collect();
    assert!(requests.len() >= 6, "{report}");
    for url in &requests {
        let local = url.starts_with(&format!("{}/", served.url)) || url.starts_with("data:") || *url == "about:blank";
        assert!(local, "a request left 127.0.0.1: {url}\n{report}");
    }

    // Every page has ink; those with the burn-down chart have its colours.
    for (shot, chart) in [("overview.png", true), ("host.png", false), ("phone.png", true)] {
        let file = ws.file("shots").join(shot).display().to_string();
        let (share, coloured) = ink(&file);
        assert!(share > 0.02, "{shot} is (nearly) blank: {:.2}% inked", share * 100.0);
        assert!(!chart || coloured > 500, "{shot} has no chart colours ({coloured} pixels)");
    }
    if let Ok(keep) = std::env::var("HVMIGRATE_DASHBOARD_SHOT") {
        std::fs::copy(ws.file("shots").join("overview.png"), keep).unwrap();
    }
}
