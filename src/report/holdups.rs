//! What holds the campaign up: the hosts whose latest step was blocked or
//! failed, grouped by cause; and how the VM migrations went.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{parse_time, HostHistory, Ledger, Spread, Window};
use crate::journal::{ActionOutcome, StepOutcome};

/// The longest cause shown (a reason is text from outside).
const CAUSE_LIMIT: usize = 120;

#[derive(Clone, Debug, Default, Serialize)]
pub struct HoldUps {
    pub causes: Vec<Cause>,
    pub migrations: Migrations,
}

/// Hosts stopped for the same (normalised) reason.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cause {
    /// `blocked` or `failed`.
    pub outcome: String,
    pub step: String,
    pub cause: String,
    pub count: usize,
    pub hosts: Vec<String>,
}

/// The drains' VM migrations in the window.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Migrations {
    /// Migrations tried (moved or failed).
    pub count: usize,
    pub failures: usize,
    /// VMs left behind without a try (not movable, or the host's drain stopped).
    pub not_started: usize,
    /// Durations of the migrations that moved their VM.
    pub p50_s: f64,
    pub p90_s: f64,
    pub max_s: f64,
    /// Migrations that moved a VM, per VM moved (a VM moved again lands above 1).
    pub moves_per_vm: f64,
    pub most_moves_of_one_vm: usize,
}

/// What a drain journals per VM (the sub-command's detail).
#[derive(Clone, Debug, PartialEq, serde::Deserialize, Serialize)]
pub struct VmMigrationRecord {
    pub vm: String,
    pub name: String,
    /// `live` or `cold`.
    pub kind: String,
    /// `moved`, `failed` or `blocked` (not started).
    pub outcome: String,
    pub duration_ms: u64,
}

pub fn compute(ledger: &Ledger, histories: &BTreeMap<String, HostHistory>, window: &Window) -> HoldUps {
    let mut causes: BTreeMap<(String, String, String), BTreeSet<String>> = BTreeMap::new();
    for history in histories.values() {
        let latest = history.steps.iter().rfind(|step| step.started <= window.until);
        let Some(latest) = latest else { continue };
        let outcome = match latest.row.outcome {
            StepOutcome::Blocked => "blocked",
            StepOutcome::Failed => "failed",
            _ => continue,
        };
        if latest.ended.is_some_and(|ended| ended < window.since) {
            continue;
        }
        let reason = latest.row.reason.as_deref().unwrap_or("(no reason recorded)");
        causes
            .entry((outcome.to_owned(), latest.row.step.clone(), normalise(reason, &history.host)))
            .or_default()
            .insert(history.host.clone());
    }
    let mut causes: Vec<Cause> = causes
        .into_iter()
        .map(|((outcome, step, cause), hosts)| Cause {
            outcome,
            step,
            cause,
            count: hosts.len(),
            hosts: hosts.into_iter().collect(),
        })
        .collect();
    causes.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.cause.cmp(&b.cause)));
    HoldUps { causes, migrations: migrations(ledger, window) }
}

fn migrations(ledger: &Ledger, window: &Window) -> Migrations {
    let mut moved = Vec::new();
    let mut per_vm: BTreeMap<String, usize> = BTreeMap::new();
    let mut result = Migrations::default();
    for row in &ledger.vm_migrations {
        let in_window = parse_time(&row.started_at).is_some_and(|at| window.since <= at && at < window.until);
        if !in_window || row.outcome == ActionOutcome::Intent {
            continue;
        }
        let Some(record) =
            row.detail.as_deref().and_then(|detail| serde_json::from_str::<VmMigrationRecord>(detail).ok())
        else {
            continue;
        };
        match record.outcome.as_str() {
            "moved" => {
                result.count += 1;
                moved.push(record.duration_ms as f64 / 1000.0);
                *per_vm.entry(record.vm).or_default() += 1;
            }
            "failed" => {
                result.count += 1;
                result.failures += 1;
            }
            _ => result.not_started += 1,
        }
    }
    let spread = Spread::of(&moved);
    result.p50_s = spread.median_s;
    result.p90_s = spread.p90_s;
    result.max_s = spread.max_s;
    if !per_vm.is_empty() {
        result.moves_per_vm = super::round2(moved.len() as f64 / per_vm.len() as f64);
    }
    result.most_moves_of_one_vm = per_vm.values().copied().max().unwrap_or(0);
    result
}

/// One cause for reasons that differ only in their details: the text before
/// the first `: ` (the details follow it), with the host's name, numbers and
/// quoted values replaced, on one line and capped.
pub fn normalise(reason: &str, host: &str) -> String {
    let head = reason.split(": ").next().unwrap_or(reason);
    let short = host.split('.').next().unwrap_or(host);
    let head = head.replace(host, "<host>");
    let head = if short.is_empty() { head } else { head.replace(short, "<host>") };
    let mut out = String::with_capacity(head.len());
    let mut quoted = false;
    let mut last_digit = false;
    for c in head.chars() {
        if c == '\'' {
            if !quoted {
                out.push_str("'…'");
            }
            quoted = !quoted;
            continue;
        }
        if quoted {
            continue;
        }
        if c.is_ascii_digit() {
            if !last_digit {
                out.push('N');
            }
            last_digit = true;
            continue;
        }
        last_digit = false;
        out.push(if c.is_control() { ' ' } else { c });
    }
    let out = out.split_whitespace().collect::<Vec<_>>().join(" ");
    crate::untrusted::visible_line(&crate::untrusted::head_and_tail(&out, CAUSE_LIMIT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture::{self, at};
    use crate::report::{build, ReportSettings};

    #[test]
    fn reasons_differing_in_details_are_one_cause() {
        let host = "hv07.example.org";
        assert_eq!(
            normalise("moved 2 of 3 VMs; not moved: vm-a (1234) left on hv07.example.org", host),
            "moved N of N VMs; not moved"
        );
        assert_eq!(
            normalise("the host runs rocky 9.4, not rocky 8", host),
            normalise("the host runs rocky 9.2, not rocky 8", "hv01")
        );
        assert_eq!(normalise("NetBox status is 'planned' on hv07", host), "NetBox status is '…' on <host>");
    }

    #[test]
    fn blocked_and_failed_hosts_and_the_migrations() {
        let settings = ReportSettings { until: Some(at("2026-03-03T00:00:00Z")), ..Default::default() };
        let report = build(fixture::ledger(), &settings, at("2026-03-10T00:00:00Z")).unwrap();
        let holdups = &report.hold_ups;
        assert_eq!(
            holdups.causes,
            [Cause {
                outcome: "failed".into(),
                step: "drain".into(),
                cause: "moved N of N VMs; not moved".into(),
                count: 1,
                hosts: vec!["hv02.example.org".into()],
            }]
        );
        // hv01 moved vm-a (60 s) and vm-b (120 s); hv02 moved vm-a again (30 s), failed vm-c, left vm-d.
        let migrations = &holdups.migrations;
        assert_eq!((migrations.count, migrations.failures, migrations.not_started), (4, 1, 1));
        assert_eq!((migrations.p50_s, migrations.p90_s, migrations.max_s), (60.0, 120.0, 120.0));
        assert_eq!((migrations.moves_per_vm, migrations.most_moves_of_one_vm), (1.5, 2));
    }
}
