//! The simulated site ("lab"): one world model shared by HTTP emulators of
//! Jira, NetBox, Keystone + Nova, Alertmanager and SCC, and by simulated hosts
//! reached over real SSH. The demo, the tests and the benchmarks all run on it.

pub mod world;

pub use world::{World, WorldOptions};
