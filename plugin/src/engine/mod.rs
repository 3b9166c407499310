//! The engines behind the subcommands: what `install`/`uninstall`/`install --watch` do to a
//! node's CNI files, and the node scan behind `doctor`. `cli/` only parses arguments and
//! renders what these return.

pub mod doctor;
pub mod doctor_cache;
pub mod install;
pub mod metrics;
pub mod reconcile;
