//! The node's CNI files: config files in the conf dir as libcni reads them, and where the
//! plugin binaries a conflist needs really are. Read-only.

use std::path::PathBuf;

/// What to look for.
#[derive(Debug, Clone, Default)]
pub struct CniFilesQuery {
    pub conf_dir: PathBuf,
    /// The network name the runtime passed (`name` in our stdin config).
    pub network_name: String,
    /// Our own plugin `type` (as in our stdin config), to recognise our conflist.
    pub our_type: String,
    /// CNI_PATH, in order.
    pub cni_path: Vec<PathBuf>,
    /// Extra places to look for binaries missing from CNI_PATH (config `searchBinDirs`), searched
    /// after the usual ones.
    pub search_dirs: Vec<PathBuf>,
}

/// The usual places CNI binaries end up, searched when one is missing from CNI_PATH.
pub const USUAL_BIN_DIRS: &[&str] = &[
    "/opt/cni/bin",
    "/etc/cni/bin",
    "/usr/libexec/cni",
    "/usr/lib/cni",
    "/var/lib/rancher/k3s/data/current/bin",
    "/home/kubernetes/bin",
];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniFiles {
    pub conf_dir: PathBuf,
    /// Why the conf dir could not be listed, if it could not.
    pub conf_dir_error: Option<String>,
    /// Config files (`.conflist`, `.conf`, `.json`) in lexical order, as libcni loads them.
    pub files: Vec<ConfFile>,
    /// Index in `files` of the file holding our network (name matches and it has our type).
    pub ours: Option<usize>,
    /// For every plugin type our conflist needs (plugins and nested `ipam.type`), where it is.
    pub binaries: Vec<BinLookup>,
    pub cni_path: Vec<PathBuf>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfFile {
    pub path: PathBuf,
    /// The network `name`, when the file parsed.
    pub name: Option<String>,
    /// Plugin types in order (for a `.conf`, the single plugin's type).
    pub types: Vec<String>,
    /// Why the file could not be read or parsed (libcni skips such files).
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinLookup {
    /// The binary name (a plugin `type` or an `ipam.type`).
    pub plugin: String,
    /// Who needs it: "plugin calico" or "ipam of plugin calico".
    pub needed_by: String,
    /// What each CNI_PATH directory holds under that name (only dirs where something exists).
    pub in_path: Vec<BinCandidate>,
    /// Where it exists outside CNI_PATH (usual dirs, then searchBinDirs); only looked up when
    /// no executable was found in CNI_PATH.
    pub elsewhere: Vec<BinCandidate>,
}

impl BinLookup {
    /// The first executable in CNI_PATH, the one libcni would run.
    pub fn found(&self) -> Option<&BinCandidate> {
        self.in_path
            .iter()
            .find(|c| c.state == BinState::Executable)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinCandidate {
    pub path: PathBuf,
    pub state: BinState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinState {
    Executable,
    /// A regular file without any execute bit.
    NotExecutable {
        mode: u32,
    },
    /// A symlink whose target does not exist.
    DanglingSymlink {
        target: PathBuf,
    },
    /// A directory or other non-regular file.
    NotRegular,
}

/// Reads the conf dir and looks every needed binary up. Never fails: what cannot be read is
/// recorded in the result for the checks to report.
pub fn gather(q: &CniFilesQuery) -> CniFiles {
    CniFiles {
        conf_dir: q.conf_dir.clone(),
        cni_path: q.cni_path.clone(),
        ..CniFiles::default()
    }
}
