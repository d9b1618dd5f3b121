//! `hvmigrate lab history`: the real engine over the simulated site with a
//! simulated clock leaves a journal spread over weeks, which `report` reads.

mod support;

use support::Workspace;

fn json_of(out: &support::Outcome) -> serde_json::Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|err| panic!("not JSON ({err})\n{}", out.report()))
}

#[test]
fn a_two_week_history_reads_as_a_campaign_spread_over_weeks() {
    let ws = Workspace::empty();
    let args = ["lab", "history", "--hosts", "6", "--weeks", "2", "--seed", "4", "--dir", "site", "-q"];
    let out = ws.hvmigrate(&args).args_state("state/history.db").arg("--output").arg("json").expect_code(0);
    let history = json_of(&out);
    assert!(history["runs"].as_u64().unwrap() >= 6, "{}", out.report());
    assert!(history["hosts_done"].as_u64().unwrap() >= 1, "{}", out.report());

    // Running it again would mix two campaigns: refused, nothing changed.
    ws.hvmigrate(&args).args_state("state/history.db").expect_code(2).stderr_has("exists");

    let report = ws.hvmigrate(&["report", "--all", "--output", "json"]).args_state("state/history.db").expect_code(0);
    let report = json_of(&report);
    assert_eq!(report["hosts"], 6);
    // The steps are spread over the weeks, not over the seconds the test took.
    let days = report["burn_down"]["days"].as_array().unwrap().len();
    assert!(days >= 8, "{days} days\n{report:#}");
    // The operators' wait for the reinstall: a day or more.
    let waits = report["time_spent"]["waits"].as_array().unwrap();
    let reinstall = waits.iter().find(|wait| wait["after"] == "pre-reinstall").expect("a wait for the reinstall");
    assert!(reinstall["median_s"].as_f64().unwrap() >= 20.0 * 3600.0, "{reinstall}");
    // The target OS ran for a while on the hosts through.
    let os = report["os_time"]["rows"].as_array().unwrap();
    assert!(os.iter().any(|row| row["os"].as_str().unwrap().starts_with("rocky 9")), "{os:?}");
    assert!(report["hold_ups"]["migrations"]["count"].as_u64().unwrap() > 0);
}

trait StateArg {
    fn args_state(self, state: &str) -> Self;
}

impl StateArg for support::Run {
    fn args_state(self, state: &str) -> Self {
        self.arg("--state").arg(state)
    }
}
