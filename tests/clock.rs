//! The simulated clock is process-wide: its test runs in a process of its own.

use hvmigrate::clock;
use jiff::{SignedDuration, Timestamp};

#[test]
fn a_simulated_clock_starts_where_set_jumps_forward_and_the_journal_follows_it() {
    let start: Timestamp = "2026-03-02T08:00:00Z".parse().unwrap();
    // Scale 0: the simulated clock only moves when advanced.
    clock::simulate(start, 0.0);
    assert_eq!(clock::now(), start);
    clock::advance(SignedDuration::from_hours(30));
    assert_eq!(clock::now(), "2026-03-03T14:00:00Z".parse::<Timestamp>().unwrap());
    let stamp = hvmigrate::journal::now();
    assert!(stamp.starts_with("2026-03-03T14:00:00"), "{stamp}");
    clock::real();
    let off = clock::now().duration_since(Timestamp::now()).abs();
    assert!(off < SignedDuration::from_secs(60), "back to real time: {off:?}");
}
