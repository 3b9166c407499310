//! The CNI protocol (SPEC 1.1.0): environment, versions, stdin config, results and errors.
//!
//! Nothing in here knows about Calico: this layer would serve any chained plugin.

pub mod env;
pub mod error;
pub mod netconf;
pub mod result;
pub mod version;

pub use env::{Command, Env};
pub use error::{CniError, ErrorCode};
pub use netconf::NetConf;
pub use result::{IpConfig, PrevResult, ResultInterface};
