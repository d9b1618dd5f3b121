//! The time the engine records (the journal's time stamps). Real time,
//! unless the lab lays down a long simulated campaign: then it runs from a
//! simulated start, faster than real time, and jumps over the waits.

use std::sync::RwLock;
use std::time::Instant;

use jiff::{SignedDuration, Timestamp};

#[derive(Clone, Copy, Debug)]
struct Simulated {
    /// The simulated time at `anchor`.
    base: Timestamp,
    anchor: Instant,
    /// Simulated seconds per real second.
    scale: f64,
}

static SIMULATED: RwLock<Option<Simulated>> = RwLock::new(None);

/// Now, as the engine records it.
pub fn now() -> Timestamp {
    let simulated = *SIMULATED.read().unwrap_or_else(|poison| poison.into_inner());
    match simulated {
        None => Timestamp::now(),
        Some(sim) => now_of(&sim),
    }
}

/// From now on the clock starts at `start` and runs `scale` times faster than real time.
/// Only the lab's simulated campaigns call this (the whole process follows it).
pub fn simulate(start: Timestamp, scale: f64) {
    let mut clock = SIMULATED.write().unwrap_or_else(|poison| poison.into_inner());
    *clock = Some(Simulated { base: start, anchor: Instant::now(), scale: scale.max(0.0) });
}

/// Moves a simulated clock forward by `by` (operators' waits, nights); real time is not moved.
pub fn advance(by: SignedDuration) {
    let mut clock = SIMULATED.write().unwrap_or_else(|poison| poison.into_inner());
    if let Some(sim) = clock.as_mut() {
        let now_base = now_of(sim);
        sim.base = now_base.checked_add(by).unwrap_or(now_base);
        sim.anchor = Instant::now();
    }
}

/// Back to real time.
pub fn real() {
    *SIMULATED.write().unwrap_or_else(|poison| poison.into_inner()) = None;
}

fn now_of(sim: &Simulated) -> Timestamp {
    let elapsed = sim.anchor.elapsed().as_secs_f64() * sim.scale;
    sim.base.checked_add(SignedDuration::from_secs_f64(elapsed)).unwrap_or(sim.base)
}
