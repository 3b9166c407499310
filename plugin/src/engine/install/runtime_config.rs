//! The runtime's CNI dirs now live in the read-only layer (crate::inspect::runtime), shared
//! with `doctor` and the `cni-bin-dir` check; re-exported here for the install engine.

pub use crate::inspect::runtime::{
    discover, pick, ConfigError, Dirs, Discovery, Origin, Picked, RuntimeDirs, Source,
    CONTAINERD_CONFIG, CRIO_CONFIG, CRIO_DROPINS, DEFAULT_BIN_DIR, DEFAULT_CONF_DIR,
};
