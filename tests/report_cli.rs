//! `hvmigrate report` over the journal a real campaign wrote (the demo: the
//! engine over the simulated site): the JSON output against its committed
//! JSON Schema, one CSV per table, and the HTML page rendered by a real
//! headless Chromium.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::Workspace;

/// The journal of a short campaign on the simulated site.
fn campaign(ws: &Workspace) -> PathBuf {
    let out = ws
        .hvmigrate(&["demo", "--hosts", "4", "--seed", "3", "--dir", "demo", "-q", "--output", "json"])
        .expect_code(0);
    // The demo writes its report's page and says where.
    // One JSON document per step, then the demo's own.
    let last = serde_json::Deserializer::from_str(&out.stdout).into_iter::<serde_json::Value>().last();
    let demo = last.and_then(Result::ok).unwrap_or_else(|| panic!("no JSON\n{}", out.report()));
    let page = demo["report"].as_str().map(|page| ws.path().join(page)).expect("the demo names its report");
    let html =
        std::fs::read_to_string(&page).unwrap_or_else(|err| panic!("{}: {err}\n{}", page.display(), out.report()));
    assert!(html.contains("<h2>VM migrations</h2>") && html.contains("<svg"), "{}", out.report());
    ws.file("demo/state/hvmigrate.db")
}

/// A tool a test needs: present, or skipped with a visible reason; never skipped in CI.
fn tool_or_skip(found: bool, what: &str) -> bool {
    if found {
        return true;
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{what} is needed in CI (scripts/ci-packages.txt, .ci/run)");
    eprintln!("SKIPPED: {what} is not installed here");
    false
}

fn json_of(out: &support::Outcome) -> serde_json::Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|err| panic!("not JSON ({err})\n{}", out.report()))
}

#[test]
fn report_json_matches_its_schema_and_the_campaign() {
    let ws = Workspace::empty();
    campaign(&ws);
    let out =
        ws.hvmigrate(&["report", "--all", "--state", "demo/state/hvmigrate.db", "--output", "json"]).expect_code(0);
    let report = json_of(&out);
    assert_eq!(report["hosts"], 4, "{}", out.report());
    let os: Vec<&str> =
        report["os_time"]["rows"].as_array().unwrap().iter().map(|row| row["os"].as_str().unwrap()).collect();
    assert!(os.iter().any(|os| os.starts_with("rocky 8")) && os.iter().any(|os| os.starts_with("rocky 9")), "{os:?}");
    assert!(report["hold_ups"]["migrations"]["count"].as_u64().unwrap() > 0, "{}", out.report());
    let steps: Vec<&str> =
        report["time_spent"]["steps"].as_array().unwrap().iter().map(|row| row["step"].as_str().unwrap()).collect();
    assert!(steps.contains(&"drain") && steps.contains(&"adoption"), "{steps:?}");

    // The list's hosts only: the demo's list names the same four.
    let listed = ws
        .hvmigrate(&[
            "report",
            "--hypervisors-file",
            "demo/site/hypervisors.txt",
            "--state",
            "demo/state/hvmigrate.db",
            "--output",
            "json",
        ])
        .expect_code(0);
    assert_eq!(json_of(&listed)["hosts"], 4);

    // Bad input: named, exit 2, nothing written.
    let state = ["--state", "demo/state/hvmigrate.db"];
    ws.hvmigrate(&["report", "--all", "--since", "last week", "--html", "bad.html"])
        .arg(state[0])
        .arg(state[1])
        .expect_code(2)
        .stderr_has("--since: 'last week' is neither a date");
    ws.hvmigrate(&["report", "--all", "--since", "2030-01-01", "--until", "2029-01-01"])
        .arg(state[0])
        .arg(state[1])
        .expect_code(2)
        .stderr_has("window is empty");
    ws.hvmigrate(&["report", "--all", "--state", "nowhere.db"]).expect_code(2).stderr_has("no journal here yet");
    assert!(!ws.file("bad.html").exists());

    let python_ok = Command::new("python3").args(["-c", "import jsonschema"]).status().is_ok_and(|s| s.success());
    if !tool_or_skip(python_ok, "python3 with jsonschema (tests/python/requirements.txt)") {
        return;
    }
    let output = ws.write("report.json", &out.stdout);
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/report.schema.json");
    let check = |file: &Path| {
        Command::new("python3")
            .args([
                "-c",
                "import json, sys, jsonschema\n\
                 schema = json.load(open(sys.argv[2]))\n\
                 jsonschema.Draft202012Validator.check_schema(schema)\n\
                 jsonschema.Draft202012Validator(schema).validate(json.load(open(sys.argv[1])))",
            ])
            .arg(file)
            .arg(&schema)
            .output()
            .unwrap()
    };
    let valid = check(&output);
    assert!(valid.status.success(), "{}\n{}", String::from_utf8_lossy(&valid.stderr), out.report());
    // The schema does refuse: a report missing a table does not pass.
    let mut broken = report.clone();
    broken.as_object_mut().unwrap().remove("hold_ups");
    let invalid = check(&ws.write("broken.json", broken.to_string()));
    assert!(!invalid.status.success(), "the schema accepted a report without hold_ups");
}

#[test]
fn report_writes_csv_and_a_page_chromium_renders() {
    let ws = Workspace::empty();
    campaign(&ws);
    let out = ws
        .hvmigrate(&[
            "report",
            "--all",
            "--state",
            "demo/state/hvmigrate.db",
            "--since",
            "2020-01-01",
            "--csv",
            "csv",
            "--html",
            "report.html",
        ])
        .expect_code(0);
    out.stdout_has("OS over time").stdout_has("Burn-down").stdout_has("csv/burn_down.csv").stdout_has("report.html");
    for file in ["os_time.csv", "burn_down.csv", "step_durations.csv", "hold_ups.csv", "migrations.csv"] {
        let text = std::fs::read_to_string(ws.file("csv").join(file)).unwrap_or_else(|err| panic!("{file}: {err}"));
        assert!(text.lines().count() >= 2, "{file} has a header and rows:\n{text}\n{}", out.report());
    }
    let page = std::fs::read_to_string(ws.file("report.html")).unwrap();
    assert_eq!(page.matches("<svg").count(), 3, "{}", out.report());

    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|name| Command::new(name).arg("--version").output().is_ok_and(|out| out.status.success()));
    if !tool_or_skip(chromium.is_some(), "chromium (Debian package)") {
        return;
    }
    let chromium = chromium.unwrap();
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", ws.file("report.html").display());
    let browser = |extra: &[String]| {
        let output = Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--window-size=1000,1400",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(&url)
            .output()
            .unwrap();
        assert!(output.status.success(), "chromium failed: {}", String::from_utf8_lossy(&output.stderr));
        output
    };
    let shot = ws.file("shot.png");
    browser(&[format!("--screenshot={}", shot.display())]);
    let (width, height, pixels) = support::png::decode_png(&std::fs::read(&shot).unwrap());
    assert_eq!((width, height), (1000, 1400));
    let inked = pixels.chunks(3).filter(|rgb| rgb.iter().any(|channel| *channel < 200)).count();
    let share = inked as f64 / (width * height) as f64;
    assert!(share > 0.02, "the screenshot is (nearly) blank: {:.2}% of its pixels are not white", share * 100.0);
    let coloured = pixels.chunks(3).filter(|rgb| rgb.iter().max().unwrap() - rgb.iter().min().unwrap() > 60).count();
    assert!(coloured > 1000, "no chart colours in the screenshot ({coloured} coloured pixels)");

    let dom = String::from_utf8(browser(&["--dump-dom".to_owned()]).stdout).unwrap();
    for title in [
        "Burn-down: hosts per position",
        "Host-hours per OS",
        "Step durations (median and p90, hours)",
        "OS over time (host-hours)",
        "Out of service",
        "Burn-down (hosts per position)",
        "Forecast",
        "Step durations",
        "Action durations",
        "Waiting between steps",
        "Slowest hosts",
        "What holds it up",
        "VM migrations",
    ] {
        assert!(dom.contains(&format!("<h2>{title}</h2>")), "the rendered DOM lacks the title {title:?}");
    }
    assert_eq!(dom.matches("<svg").count(), 3, "every chart is in the rendered DOM");
}
