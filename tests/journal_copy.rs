//! `hvmigrate journal copy`: a finished campaign (laid down by `lab history`)
//! brought into another ledger — a SQLite file, and a PostgreSQL database on a
//! private cluster — reads the same there: `status` is identical. A second
//! copy writes nothing; a ledger of another campaign is refused, and so is a
//! URL with a password, which is never repeated.

mod support;

use support::Workspace;

fn status(ws: &Workspace, state: &str, extra: &[&str]) -> String {
    let mut args = vec!["status", "--state", state];
    args.extend_from_slice(extra);
    ws.hvmigrate(&args).expect_code(0).stdout
}

fn copy(ws: &Workspace, from: &str, to: &str) -> support::Outcome {
    ws.hvmigrate(&["journal", "copy", "--from", from, "--to", to]).run()
}

#[test]
fn a_finished_campaign_copied_reads_the_same_on_sqlite_and_postgresql() {
    let ws = Workspace::empty();
    let history = ["lab", "history", "--hosts", "4", "--weeks", "1", "--seed", "3", "--dir", "site", "-q"];
    ws.hvmigrate(&history).arg("--state").arg("state/alone.db").expect_code(0);
    let host = {
        let json = status(&ws, "state/alone.db", &["--output", "json"]);
        let statuses: serde_json::Value = serde_json::from_str(&json).unwrap();
        statuses[0]["host"].as_str().expect("a host in the status").to_owned()
    };
    let views = |state: &str| {
        [
            status(&ws, state, &[]),
            status(&ws, state, &["--output", "json"]),
            status(&ws, state, &["--host", &host]),
            status(&ws, state, &["--runs"]),
        ]
    };
    let alone = views("state/alone.db");

    let mut targets = vec!["state/copy.db".to_owned()];
    targets.extend(support::postgres::database("journal_copy"));
    for target in &targets {
        let copied = copy(&ws, "state/alone.db", target);
        assert_eq!(copied.code, 0, "{}", copied.report());
        copied.stdout_has("Copied").stdout_has("host_steps");
        // Every table counted on both sides, the same.
        for line in copied.stdout.lines().skip(2).filter(|line| !line.trim().is_empty()) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(fields.len(), 3, "{line}\n{}", copied.report());
            assert_eq!(fields[1], fields[2], "{line}\n{}", copied.report());
        }
        assert_eq!(views(target), alone, "status differs on {target}");

        // Once: the same campaign again writes nothing.
        let again = copy(&ws, "state/alone.db", target);
        assert_eq!(again.code, 0, "{}", again.report());
        again.stdout_has("Already copied");
        assert_eq!(views(target), alone);
    }

    // A ledger holding another campaign is refused, nothing changed.
    ws.hvmigrate(&["lab", "history", "--hosts", "2", "--weeks", "1", "--seed", "9", "--dir", "site2", "-q"])
        .arg("--state")
        .arg("state/other.db")
        .expect_code(0);
    for target in &targets {
        let refused = copy(&ws, "state/other.db", target);
        assert_eq!(refused.code, 2, "{}", refused.report());
        refused.stderr_has("another campaign");
        assert_eq!(views(target), alone, "{target} unchanged");
    }

    // A password on the command line is refused and never repeated.
    let refused = copy(&ws, "state/alone.db", "postgres://ops:s3cret-pw@127.0.0.1:1/ledger");
    assert_eq!(refused.code, 2, "{}", refused.report());
    refused.stderr_has("holds a password");
    assert!(!refused.stderr.contains("s3cret-pw") && !refused.stdout.contains("s3cret-pw"), "{}", refused.report());
}
