//! Thin typed clients of the external services. They know HTTP and the
//! services' contracts, nothing of the workflow.

pub mod alertmanager;
pub mod clouds_yaml;
pub mod http;
pub mod jira;
pub mod netbox;
pub mod nova;
pub mod openstack;
pub mod placement;
pub mod scc;

pub use http::{ErrorKind, RetryPolicy, ServiceError};
