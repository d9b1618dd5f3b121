//! Drain throughput: 100 hosts × 20 VMs on the simulated site, each migration
//! a simulated 2 s, at most 32 at once across the run. Prints the wall time
//! against the ideal `ceil(VMs / limit) × 2 s` and their ratio.
//!
//! `cargo bench --bench drain` (HOSTS, VMS, LIMIT and SCALE override the sizes).

#[path = "../tests/drain_common/mod.rs"]
mod drain_common;

use std::time::Instant;

use drain_common::{plain_world, DrainSite};
use hvmigrate::workflow::report::{HostOutcome, VmOutcome};

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let hosts = setting("HOSTS", 100);
    let vms = setting("VMS", 20);
    let limit = setting("LIMIT", 32);
    // Simulated seconds per real second: a 2 s migration takes 2 / SCALE s.
    let scale = setting("SCALE", 10) as f64;
    let workflow = format!(
        "workflow:\n  drain:\n    poll_interval_ms: 20\n    timeout_base_secs: 60\n  limits:\n    live_migrations_global: {limit}\n    live_migrations_per_host: 2\n"
    );
    let site = DrainSite::start(plain_world(hosts, vms as u32), &workflow, scale).await;
    {
        let mut world = site.world();
        // The lab's migration takes 2 s + 0.5 s per GiB: no RAM, exactly 2 s.
        for server in world.servers.values_mut() {
            server.ram_mb = 0;
            server.vcpus = 1;
        }
    }
    let sim_start = {
        let mut world = site.world();
        let scale = world.time_scale;
        world.clock.now(scale)
    };
    let started = Instant::now();
    let summary = site.drain(false).await;
    let wall = started.elapsed().as_secs_f64();

    let total = hosts * vms;
    let moved: usize =
        summary.hosts.iter().map(|h| h.vms.iter().filter(|vm| vm.outcome == VmOutcome::Moved).count()).sum();
    let succeeded = summary.hosts.iter().filter(|h| h.outcome == HostOutcome::Succeeded).count();
    let ideal_sim = total.div_ceil(limit) as f64 * 2.0;
    let ideal = ideal_sim / scale;
    let world = site.world();
    println!("drain benchmark: {hosts} hosts × {vms} VMs = {total} live migrations of a simulated 2 s each");
    println!("  global limit {limit}, per-host limit 2, time scale {scale} (simulated s per real s), poll 20 ms");
    println!("  hosts succeeded: {succeeded}/{hosts}; VMs moved: {moved}/{total}");
    println!(
        "  most migrations at once: {} across the site, {} from one host",
        world.max_concurrent_migrations, world.max_concurrent_migrations_per_source
    );
    println!("  wall time: {wall:.2} s (= {:.1} simulated s)", wall * scale);
    println!("  ideal:     {ideal:.2} s (= ceil({total} / {limit}) × 2 s = {ideal_sim:.0} simulated s)");
    println!("  ratio:     {:.3} (target < 1.2)", wall / ideal);
    // Where the time went: before the first migration (census, capacity), the
    // migrations themselves, and after the last (verify, Jira comments).
    let first = world.migrations.iter().map(|m| m.started_at_sim).fold(f64::MAX, f64::min);
    let last = world.migrations.iter().map(|m| m.started_at_sim + m.duration_secs).fold(0.0, f64::max);
    println!(
        "  of which: {:.2} s before the first migration, {:.2} s of migrations (ratio {:.3}), {:.2} s after the last",
        (first - sim_start) / scale,
        (last - first) / scale,
        (last - first) / ideal_sim,
        wall - (last - sim_start) / scale
    );
}
