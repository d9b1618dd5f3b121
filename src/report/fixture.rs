//! Small fixed histories for the report's unit tests, with times that make
//! the figures easy to compute by hand. Day 1 is 2026-03-01.

use jiff::Timestamp;

use super::Ledger;
use crate::journal::{ActionOutcome, ActionRow, StepOutcome, StepRow, SubCommandRow};

pub fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// `d1 08:00` → the journal's time stamp.
fn t(day_time: &str) -> String {
    let (day, time) = day_time.split_once(' ').unwrap();
    let day: u32 = day.trim_start_matches('d').parse().unwrap();
    format!("2026-03-{day:02}T{time}:00.000000Z")
}

#[derive(Default)]
struct Builder {
    ledger: Ledger,
    next_id: i64,
}

impl Builder {
    fn step(
        &mut self,
        host: &str,
        step: &str,
        from: &str,
        to: &str,
        outcome: StepOutcome,
        reason: Option<&str>,
    ) -> i64 {
        self.next_id += 1;
        self.ledger.steps.push(StepRow {
            id: self.next_id,
            host: host.into(),
            step: step.into(),
            started_at: t(from),
            ended_at: Some(t(to)),
            outcome,
            reason: reason.map(String::from),
        });
        self.next_id
    }

    fn action(&mut self, step_id: i64, action: &str, from: &str, to: &str, outcome: ActionOutcome, observed: &str) {
        let step = self.ledger.steps.iter().find(|row| row.id == step_id).unwrap().clone();
        self.ledger.actions.push(ActionRow {
            host_step_id: step_id,
            host: step.host,
            step: step.step,
            action: action.into(),
            started_at: t(from),
            ended_at: Some(t(to)),
            outcome,
            observed: Some(observed.into()),
            change: None,
        });
    }

    fn vm(&mut self, host: &str, at: &str, vm: &str, outcome: &str, seconds: u64) {
        let detail = serde_json::json!({
            "vm": vm, "name": vm, "kind": "live", "outcome": outcome, "duration_ms": seconds * 1000,
        });
        self.ledger.vm_migrations.push(SubCommandRow {
            host: host.into(),
            step: "drain".into(),
            action: "migrate".into(),
            name: super::VM_MIGRATION.into(),
            started_at: t(at),
            ended_at: Some(t(at)),
            outcome: if outcome == "failed" { ActionOutcome::Failed } else { ActionOutcome::Done },
            detail: Some(detail.to_string()),
        });
    }
}

const HV01: &str = "hv01.example.org";
const HV02: &str = "hv02.example.org";

/// hv01 goes through the campaign in two days (reinstalled on day 2 between
/// 10:00 and 16:00); hv02 is pre-drained on day 1 and its drain fails on day 2.
pub fn ledger() -> Ledger {
    use ActionOutcome::{Done, Ok, Recorded};
    use StepOutcome::Succeeded;
    let mut b = Builder::default();
    b.step(HV01, "setup", "d1 07:00", "d1 07:10", Succeeded, None);
    let pre_drain = b.step(HV01, "pre-drain", "d1 08:00", "d1 08:45", Succeeded, None);
    b.action(pre_drain, "os-check", "d1 07:59", "d1 08:00", Ok, "rocky 8.10");
    b.action(pre_drain, "disable-compute", "d1 08:20", "d1 08:30", Done, "enabled (up)");
    b.action(
        pre_drain,
        "record-state",
        "d1 08:30",
        "d1 08:40",
        Recorded,
        "Nova: compute host hv01 (names: hv01), disabled / up, 2 VMs, 6 of 64 vCPUs and 12288 of 262144 MB used; libvirt: 2 domains",
    );
    let drain = b.step(HV01, "drain", "d1 09:00", "d1 11:00", Succeeded, None);
    b.action(drain, "migrate", "d1 09:10", "d1 10:50", Done, "2 VMs to move");
    b.vm(HV01, "d1 09:10", "vm-a", "moved", 60);
    b.vm(HV01, "d1 09:12", "vm-b", "moved", 120);
    b.step(HV01, "pre-reinstall", "d2 09:00", "d2 10:00", Succeeded, None);
    let post = b.step(HV01, "post-reinstall", "d2 16:00", "d2 16:30", Succeeded, None);
    b.action(post, "os-check", "d2 15:59", "d2 16:00", Ok, "rocky 9.4, UEFI");
    let adoption = b.step(HV01, "adoption", "d2 18:00", "d2 20:10", Succeeded, None);
    b.action(adoption, "enable-compute", "d2 19:50", "d2 20:00", Done, "disabled ('hvmigrate'), up");

    let pre_drain = b.step(HV02, "pre-drain", "d1 09:00", "d1 12:40", Succeeded, None);
    b.action(pre_drain, "os-check", "d1 08:59", "d1 09:00", Ok, "rocky 8.10");
    b.action(pre_drain, "disable-compute", "d1 12:20", "d1 12:30", Done, "enabled (up)");
    let reason = "moved 1 of 2 VMs; not moved: vm-c (c0ffee, project p1) left on hv02.example.org, live, 90.0 s";
    let drain = b.step(HV02, "drain", "d2 08:00", "d2 08:30", StepOutcome::Failed, Some(reason));
    b.action(drain, "migrate", "d2 08:00", "d2 08:29", ActionOutcome::Failed, "3 VMs to move");
    b.vm(HV02, "d2 08:00", "vm-a", "moved", 30);
    b.vm(HV02, "d2 08:01", "vm-c", "failed", 90);
    b.vm(HV02, "d2 08:02", "vm-d", "blocked", 0);
    b.ledger
}

/// `hosts` hosts pre-drained on 27 February; `per_day` of them adopted at noon
/// on each of the first `days` days of March.
pub fn steady_campaign(hosts: usize, per_day: usize, days: usize) -> Ledger {
    let mut b = Builder::default();
    for index in 0..hosts {
        let host = format!("hv{index:03}.example.org");
        b.next_id += 1;
        b.ledger.steps.push(StepRow {
            id: b.next_id,
            host: host.clone(),
            step: "pre-drain".into(),
            started_at: "2026-02-27T10:00:00.000000Z".into(),
            ended_at: Some("2026-02-27T10:30:00.000000Z".into()),
            outcome: StepOutcome::Succeeded,
            reason: None,
        });
        if index < per_day * days {
            let day = index / per_day + 1;
            b.step(&host, "adoption", &format!("d{day} 11:00"), &format!("d{day} 12:00"), StepOutcome::Succeeded, None);
        }
    }
    b.ledger
}
