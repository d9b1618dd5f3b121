//! hvmigrate: takes a fleet of OpenStack hypervisors through an OS migration.
//!
//! The binary only turns arguments into settings and calls in here.

pub mod check_config;
pub mod clients;
pub mod clock;
pub mod config;
pub mod demo;
pub mod digest;
pub mod error;
pub mod fence;
pub mod fs_security;
pub mod hosts;
pub mod identity;
pub mod journal;
pub mod lab;
pub mod lab_history;
pub mod lab_mirror;
pub mod logging;
pub mod maintenance_window;
pub mod manual;
pub mod output;
pub mod reach;
pub mod redact;
pub mod report;
pub mod scc;
pub mod secret;
pub mod serve;
pub mod ssh;
pub mod tickets;
pub mod untrusted;
pub mod vm;
pub mod workflow;

pub use error::{Error, ExitCode, Result};

/// The commit this binary was built from (short hash), or "unknown" when it
/// was built outside a clone without `HVMIGRATE_BUILD_COMMIT` (see build.rs).
pub const BUILD_COMMIT: &str = env!("HVMIGRATE_BUILD_COMMIT");
