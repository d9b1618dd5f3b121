//! Input files: the hypervisors list and the credentials file.

pub mod credentials;
pub mod hypervisors;
pub mod input;
pub mod workflow;

pub use credentials::Credentials;
pub use hypervisors::{HostName, Hypervisor, HypervisorList, JiraKey, KeyMode};
pub use workflow::Workflow;
