//! calico-preflight: a CNI chained plugin that checks the network state Calico built for a pod
//! (and, placed first in the chain, the node) and fails ADD with an error that says what is
//! wrong and what to do.
//!
//! Layers, kept apart on purpose:
//! - [`cni`]: the CNI protocol, with no Calico knowledge;
//! - [`inspect`]: read-only kernel inspection (netlink, /proc/sys), the only code that touches the network;
//! - [`checks`]: one small pure unit per check, over what `inspect` gathered;
//! - [`app`]: verb dispatch tying them together; `main` only calls it;
//! - [`engine`]: install/uninstall/watch and the doctor scan; [`cli`] parses and renders for them.

pub mod app;
pub mod checks;
pub mod cli;
pub mod cni;
pub mod config;
pub mod engine;
pub mod inspect;
pub mod logging;
pub mod node_cache;
pub mod report;
