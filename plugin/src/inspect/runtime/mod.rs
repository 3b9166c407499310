//! Which CNI dirs the container runtime really uses, read from its config the way the runtime
//! reads it (containerd: versions, `imports`, merge, `bin_dir`/`bin_dirs`; CRI-O: main file
//! plus drop-ins), and the one reader of conf dirs. Used by `install`, `install --watch`,
//! `doctor` and the `cni-bin-dir` check's remedy. Read-only. Every pick carries the file and
//! key it came from, for the operator.

pub mod conf_dir;
pub mod containerd;
pub mod crio;
mod tree;

use crate::inspect::rooted;
use std::path::{Path, PathBuf};

pub const CONTAINERD_CONFIG: &str = "/etc/containerd/config.toml";
/// Where k3s and rke2 run their embedded containerd's config from (`containerd -c ...`).
pub const K3S_CONTAINERD_CONFIG: &str = "/var/lib/rancher/k3s/agent/etc/containerd/config.toml";
pub const RKE2_CONTAINERD_CONFIG: &str = "/var/lib/rancher/rke2/agent/etc/containerd/config.toml";
pub const CRIO_CONFIG: &str = "/etc/crio/crio.conf";
pub const CRIO_DROPINS: &str = "/etc/crio/crio.conf.d";
pub const DEFAULT_BIN_DIR: &str = "/opt/cni/bin";
pub const DEFAULT_CONF_DIR: &str = "/etc/cni/net.d";

/// Where a value was set: the file and the key as written there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    pub key: String,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.file, self.key)
    }
}

/// A dir and why it was picked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picked {
    pub dir: PathBuf,
    pub why: String,
    /// The runtime config file and key that set it, when one did.
    pub origin: Option<Origin>,
}

impl Picked {
    fn default_of(dir: &str, why: String) -> Picked {
        Picked {
            dir: dir.into(),
            why,
            origin: None,
        }
    }
    fn from(dir: impl Into<PathBuf>, origin: Origin) -> Picked {
        Picked {
            dir: dir.into(),
            why: format!("from {origin}"),
            origin: Some(origin),
        }
    }
}

/// What one runtime's config says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeDirs {
    pub runtime: &'static str,
    /// The files read, in the order the runtime applies them.
    pub files: Vec<String>,
    pub bin: Vec<Picked>,
    pub conf: Picked,
}

/// Which config to read for one runtime.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Source {
    /// The well-known locations; a missing file is no error.
    #[default]
    Default,
    /// Not read.
    Off,
    /// This file (CRI-O: or dir of drop-ins); missing is an error.
    File(PathBuf),
}

impl Source {
    /// install's and doctor's flag convention: no flag is the default, `none` turns it off.
    pub fn from_flag(flag: Option<&Path>) -> Source {
        match flag {
            None => Source::Default,
            Some(p) if p == Path::new("none") => Source::Off,
            Some(p) => Source::File(p.to_path_buf()),
        }
    }
}

/// The runtimes found and the default locations that held nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovery {
    pub runtimes: Vec<RuntimeDirs>,
    pub looked_at: Vec<String>,
}

/// A runtime config that exists but cannot be used: what and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub what: String,
    pub remedy: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.what)
    }
}

/// Reads containerd's and CRI-O's configs. For containerd's default, every well-known
/// location present is read (a stock node, k3s, rke2): their bin dirs are all used, the
/// first one's conf dir (see [`pick`]).
///
/// `root` is the host's root: the default locations are read under it, and so are the dirs
/// and `imports` the files name (host paths); an explicit `Source::File` is used as given.
pub fn discover(containerd: &Source, crio: &Source, root: &Path) -> Result<Discovery, ConfigError> {
    let mut d = Discovery::default();
    let fix = "fix the file, or pass the CNI bin and conf dirs as flags so it is not read";
    let failed = |runtime: &str, e: String| ConfigError {
        what: format!("cannot read {runtime}'s config as {runtime} does: {e}"),
        remedy: fix.into(),
    };
    match containerd {
        Source::Off => {}
        Source::File(p) => {
            if !p.exists() {
                return Err(ConfigError {
                    what: format!("containerd's config {} does not exist", p.display()),
                    remedy: "pass --containerd-config with the file containerd runs with (containerd -c), or none".into(),
                });
            }
            d.runtimes.push(
                containerd::load("containerd", p, root).map_err(|e| failed("containerd", e))?,
            );
        }
        Source::Default => {
            for (name, path) in [
                ("containerd", CONTAINERD_CONFIG),
                ("containerd (k3s)", K3S_CONTAINERD_CONFIG),
                ("containerd (rke2)", RKE2_CONTAINERD_CONFIG),
            ] {
                let p = rooted::resolve_under(root, Path::new(path));
                if std::fs::symlink_metadata(&p).is_ok() {
                    d.runtimes.push(
                        containerd::load(name, &p, root).map_err(|e| failed("containerd", e))?,
                    );
                } else if name == "containerd" {
                    d.looked_at.push(p.display().to_string());
                }
            }
        }
    }
    match crio::files(crio, root).map_err(|e| failed("CRI-O", e))? {
        Some(files) => d
            .runtimes
            .push(crio::dirs(&files).map_err(|e| failed("CRI-O", e))?),
        None => match crio {
            Source::Default => d.looked_at.push(
                rooted::resolve_under(root, Path::new(CRIO_CONFIG))
                    .display()
                    .to_string(),
            ),
            Source::File(p) => d.looked_at.push(format!("{}/*", p.display())),
            Source::Off => {}
        },
    }
    // The dirs a runtime's config names are the host's.
    for r in &mut d.runtimes {
        for b in &mut r.bin {
            b.dir = rooted::resolve_under(root, &b.dir);
        }
        r.conf.dir = rooted::resolve_under(root, &r.conf.dir);
    }
    Ok(d)
}

/// Reads a runtime's TOML file: a regular file (never a FIFO or device), bounded, UTF-8.
pub(crate) fn read_toml_file(path: &Path) -> Result<String, String> {
    let bytes = conf_dir::read_regular(path).map_err(|e| format!("{}: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8 text", path.display()))
}

/// What `doctor` learnt about the runtime's CNI dirs, for the checks' remedies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeFacts {
    /// The dirs checked and why each (flag, runtime config file and key, default).
    pub dirs: Option<Dirs>,
    /// A runtime config that exists but could not be read as the runtime reads it.
    pub problem: Option<ConfigError>,
}

/// The dirs to use: explicit flags, else the runtimes' configs, else the CNI defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirs {
    pub bin: Vec<Picked>,
    pub conf: Picked,
    pub notes: Vec<String>,
}

/// `root`: the host's root, under which the CNI defaults are taken (flags are used as given;
/// [`discover`] already put the runtimes' dirs under it).
pub fn pick(
    bin_flags: &[PathBuf],
    conf_flag: Option<&Path>,
    runtimes: &[RuntimeDirs],
    looked_at: &[String],
    root: &Path,
) -> Dirs {
    let mut notes = Vec::new();
    let bin = if !bin_flags.is_empty() {
        bin_flags
            .iter()
            .map(|d| Picked {
                dir: d.clone(),
                why: "from --cni-bin-dir".into(),
                origin: None,
            })
            .collect()
    } else if runtimes.is_empty() {
        vec![Picked {
            dir: rooted::resolve_under(root, Path::new(DEFAULT_BIN_DIR)),
            why: default_why(looked_at),
            origin: None,
        }]
    } else {
        // Every runtime's bin dirs: an extra copy costs nothing, a missing one fails pods.
        let mut out: Vec<Picked> = Vec::new();
        for p in runtimes.iter().flat_map(|r| r.bin.iter()) {
            if !out.iter().any(|o| same_dir(&o.dir, &p.dir)) {
                out.push(p.clone());
            }
        }
        out
    };
    let conf = match (conf_flag, runtimes.first()) {
        (Some(d), _) => Picked {
            dir: d.to_path_buf(),
            why: "from --cni-conf-dir".into(),
            origin: None,
        },
        (None, Some(first)) => {
            for other in &runtimes[1..] {
                if !same_dir(&other.conf.dir, &first.conf.dir) {
                    notes.push(format!(
                        "{} uses conf dir {} ({}); run again with --cni-conf-dir {} for it",
                        other.runtime,
                        other.conf.dir.display(),
                        other.conf.why,
                        other.conf.dir.display()
                    ));
                }
            }
            first.conf.clone()
        }
        (None, None) => Picked {
            dir: rooted::resolve_under(root, Path::new(DEFAULT_CONF_DIR)),
            why: default_why(looked_at),
            origin: None,
        },
    };
    Dirs { bin, conf, notes }
}

fn default_why(looked_at: &[String]) -> String {
    if looked_at.is_empty() {
        "default".into()
    } else {
        format!(
            "default: no runtime config found at {}",
            looked_at.join(", ")
        )
    }
}

/// `/etc/cni/net.d/` and `/etc/cni/net.d` are one dir.
pub fn same_dir(a: &Path, b: &Path) -> bool {
    a.components().eq(b.components())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(name: &'static str, bins: &[&str], conf: &str) -> RuntimeDirs {
        RuntimeDirs {
            runtime: name,
            files: vec![],
            bin: bins
                .iter()
                .map(|b| {
                    Picked::from(
                        *b,
                        Origin {
                            file: "/c".into(),
                            key: "k".into(),
                        },
                    )
                })
                .collect(),
            conf: Picked::default_of(conf, "x".into()),
        }
    }

    #[test]
    fn flags_win_then_runtimes_then_defaults() {
        let c = rt("containerd", &["/home/kubernetes/bin"], "/etc/cni/net.d");
        let o = rt("CRI-O", &["/opt/cni/bin", "/home/kubernetes/bin/"], "/x");
        let d = pick(&[], None, &[c.clone(), o], &[], Path::new("/"));
        let bins: Vec<_> = d.bin.iter().map(|p| p.dir.clone()).collect();
        assert_eq!(
            bins,
            [
                PathBuf::from("/home/kubernetes/bin"),
                PathBuf::from("/opt/cni/bin")
            ]
        );
        assert_eq!(d.bin[0].why, "from /c k");
        assert_eq!(d.conf.dir, PathBuf::from("/etc/cni/net.d"));
        assert_eq!(d.notes.len(), 1, "{:?}", d.notes);
        let d = pick(
            &[PathBuf::from("/f")],
            Some(Path::new("/g")),
            &[c],
            &[],
            Path::new("/host"),
        );
        assert_eq!(d.bin[0].why, "from --cni-bin-dir");
        assert_eq!(d.conf.dir, PathBuf::from("/g"));
        let d = pick(
            &[],
            None,
            &[],
            &["/etc/containerd/config.toml".into()],
            Path::new("/"),
        );
        assert_eq!(d.bin[0].dir, PathBuf::from(DEFAULT_BIN_DIR));
        assert!(d.conf.why.contains("no runtime config found"));
        // doctor --host-root: the defaults move under it (flags, above, do not).
        let d = pick(&[], None, &[], &[], Path::new("/nonexistent-root"));
        assert_eq!(d.bin[0].dir, PathBuf::from("/nonexistent-root/opt/cni/bin"));
        assert_eq!(d.conf.dir, PathBuf::from("/nonexistent-root/etc/cni/net.d"));
    }
}
