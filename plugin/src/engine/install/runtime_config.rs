//! Which CNI dirs the container runtime really uses, from containerd's or CRI-O's config, so
//! that a plain `install` lands where pods will look. Every pick carries the reason printed
//! to the operator.

use super::toml_lite::{self, Doc};
use std::path::{Path, PathBuf};

pub const CONTAINERD_CONFIG: &str = "/etc/containerd/config.toml";
pub const CRIO_CONFIG: &str = "/etc/crio/crio.conf";
pub const CRIO_DROPINS: &str = "/etc/crio/crio.conf.d";
pub const DEFAULT_BIN_DIR: &str = "/opt/cni/bin";
pub const DEFAULT_CONF_DIR: &str = "/etc/cni/net.d";

/// A dir and why it was picked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picked {
    pub dir: PathBuf,
    pub why: String,
}

/// What one runtime's config says; `None` fields: the runtime's own default applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeDirs {
    pub runtime: &'static str,
    pub bin: Vec<Picked>,
    pub conf: Picked,
}

/// containerd's CNI table across config versions: 3 (containerd 2.x), 2, 1.
const CONTAINERD_TABLES: &[(&[&str], &str)] = &[
    (
        &["plugins", "io.containerd.cri.v1.runtime", "cni"],
        "plugins.\"io.containerd.cri.v1.runtime\".cni",
    ),
    (
        &["plugins", "io.containerd.grpc.v1.cri", "cni"],
        "plugins.\"io.containerd.grpc.v1.cri\".cni",
    ),
    (&["plugins", "cri", "cni"], "plugins.cri.cni"),
];

fn lookup<'d>(doc: &'d Doc, table: &[&str], key: &str) -> Option<&'d toml_lite::Val> {
    let mut path = table.to_vec();
    path.push(key);
    doc.get(&path)
}

/// The CNI dirs in containerd's `config.toml` (`source` names the file in reasons).
pub fn containerd_dirs(source: &str, text: &str) -> Result<RuntimeDirs, String> {
    let doc = toml_lite::parse(text)?;
    let mut bin = None;
    let mut conf = None;
    for (table, label) in CONTAINERD_TABLES {
        // containerd 2.1 added the list `bin_dirs`; `bin_dir` is the older single dir.
        for key in ["bin_dirs", "bin_dir"] {
            if bin.is_none() {
                if let Some(v) = lookup(&doc, table, key) {
                    let dirs = v.strings().ok_or_else(|| {
                        format!("{label}.{key} is not a string or a list of strings")
                    })?;
                    bin = Some(
                        dirs.into_iter()
                            .map(|d| Picked {
                                dir: PathBuf::from(d),
                                why: format!("from {source} {label}.{key}"),
                            })
                            .collect::<Vec<_>>(),
                    );
                }
            }
        }
        if conf.is_none() {
            if let Some(v) = lookup(&doc, table, "conf_dir") {
                let d = single(v).ok_or_else(|| format!("{label}.conf_dir is not a string"))?;
                conf = Some(Picked {
                    dir: PathBuf::from(d),
                    why: format!("from {source} {label}.conf_dir"),
                });
            }
        }
    }
    let unset = |key: &str| {
        let mut why = format!(
            "containerd's default: {source} sets no {}.{key}",
            CONTAINERD_TABLES[1].1
        );
        if doc.get(&["imports"]).is_some() {
            why.push_str(" (its \"imports\" are not read; pass the flag if they set it)");
        }
        why
    };
    Ok(RuntimeDirs {
        runtime: "containerd",
        bin: match bin {
            Some(b) if !b.is_empty() => b,
            _ => vec![Picked {
                dir: DEFAULT_BIN_DIR.into(),
                why: unset("bin_dir"),
            }],
        },
        conf: conf.unwrap_or_else(|| Picked {
            dir: DEFAULT_CONF_DIR.into(),
            why: unset("conf_dir"),
        }),
    })
}

fn single(v: &toml_lite::Val) -> Option<String> {
    match v {
        toml_lite::Val::Str(s) => Some(s.clone()),
        _ => None,
    }
}

/// The CNI dirs in CRI-O's config files, read in order (later files override earlier ones,
/// as CRI-O's drop-ins do).
pub fn crio_dirs(files: &[(String, String)]) -> Result<RuntimeDirs, String> {
    let mut bin: Option<Vec<Picked>> = None;
    let mut conf: Option<Picked> = None;
    for (source, text) in files {
        let doc = toml_lite::parse(text).map_err(|e| format!("{source}: {e}"))?;
        let table = ["crio", "network"];
        for key in ["plugin_dir", "plugin_dirs"] {
            if let Some(v) = lookup(&doc, &table, key) {
                let dirs = v.strings().ok_or_else(|| {
                    format!("{source}: crio.network.{key} is not a string or a list of strings")
                })?;
                bin = Some(
                    dirs.into_iter()
                        .map(|d| Picked {
                            dir: PathBuf::from(d),
                            why: format!("from {source} crio.network.{key}"),
                        })
                        .collect(),
                );
            }
        }
        if let Some(v) = lookup(&doc, &table, "network_dir") {
            let d = single(v)
                .ok_or_else(|| format!("{source}: crio.network.network_dir is not a string"))?;
            conf = Some(Picked {
                dir: PathBuf::from(d),
                why: format!("from {source} crio.network.network_dir"),
            });
        }
    }
    let names = files
        .iter()
        .map(|(s, _)| s.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    Ok(RuntimeDirs {
        runtime: "CRI-O",
        bin: match bin {
            Some(b) if !b.is_empty() => b,
            _ => vec![Picked {
                dir: DEFAULT_BIN_DIR.into(),
                why: format!("CRI-O's default: {names} set no crio.network.plugin_dirs"),
            }],
        },
        conf: conf.unwrap_or_else(|| Picked {
            dir: DEFAULT_CONF_DIR.into(),
            why: format!("CRI-O's default: {names} set no crio.network.network_dir"),
        }),
    })
}

/// The dirs to use: explicit flags, else the runtimes' configs, else the CNI defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirs {
    pub bin: Vec<Picked>,
    pub conf: Picked,
    pub notes: Vec<String>,
}

pub fn pick(
    bin_flags: &[PathBuf],
    conf_flag: Option<&Path>,
    runtimes: &[RuntimeDirs],
    looked_at: &[String],
) -> Dirs {
    let mut notes = Vec::new();
    let bin = if !bin_flags.is_empty() {
        bin_flags
            .iter()
            .map(|d| Picked {
                dir: d.clone(),
                why: "from --cni-bin-dir".into(),
            })
            .collect()
    } else if runtimes.is_empty() {
        vec![Picked {
            dir: DEFAULT_BIN_DIR.into(),
            why: default_why(looked_at),
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
            dir: DEFAULT_CONF_DIR.into(),
            why: default_why(looked_at),
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
fn same_dir(a: &Path, b: &Path) -> bool {
    a.components().eq(b.components())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTAINERD_V2: &str = r#"version = 2
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/home/kubernetes/bin"
      conf_dir = "/etc/cni/net.d"
"#;

    #[test]
    fn containerd_v2_keys_are_named_in_the_reason() {
        let r = containerd_dirs("/etc/containerd/config.toml", CONTAINERD_V2).unwrap();
        assert_eq!(r.bin.len(), 1);
        assert_eq!(r.bin[0].dir, PathBuf::from("/home/kubernetes/bin"));
        assert_eq!(
            r.bin[0].why,
            "from /etc/containerd/config.toml plugins.\"io.containerd.grpc.v1.cri\".cni.bin_dir"
        );
        assert_eq!(r.conf.dir, PathBuf::from("/etc/cni/net.d"));
    }

    #[test]
    fn containerd_v3_bin_dirs_and_defaults() {
        let r = containerd_dirs(
            "c.toml",
            "version = 3\n[plugins.'io.containerd.cri.v1.runtime'.cni]\nbin_dirs = ['/a', '/b']\n",
        )
        .unwrap();
        let dirs: Vec<_> = r.bin.iter().map(|p| p.dir.clone()).collect();
        assert_eq!(dirs, [PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!(r.conf.dir, PathBuf::from(DEFAULT_CONF_DIR));
        assert!(
            r.conf.why.starts_with("containerd's default"),
            "{}",
            r.conf.why
        );
        let e = containerd_dirs("c.toml", "[plugins.cri.cni]\nbin_dir = 3\n").unwrap_err();
        assert!(e.contains("plugins.cri.cni.bin_dir"), "{e}");
        assert!(containerd_dirs("c.toml", "[plugins\n").is_err());
    }

    #[test]
    fn crio_dropins_override_in_order() {
        let r = crio_dirs(&[
            (
                "/etc/crio/crio.conf".into(),
                "[crio.network]\nnetwork_dir = \"/etc/cni/net.d/\"\nplugin_dirs = [\n  \"/opt/cni/bin/\",\n]\n"
                    .into(),
            ),
            (
                "/etc/crio/crio.conf.d/10-cni.conf".into(),
                "[crio.network]\nplugin_dirs = [\"/usr/libexec/cni\", \"/opt/cni/bin\"]\n".into(),
            ),
        ])
        .unwrap();
        let dirs: Vec<_> = r.bin.iter().map(|p| p.dir.clone()).collect();
        assert_eq!(
            dirs,
            [
                PathBuf::from("/usr/libexec/cni"),
                PathBuf::from("/opt/cni/bin")
            ]
        );
        assert!(r.bin[0]
            .why
            .contains("10-cni.conf crio.network.plugin_dirs"));
        assert_eq!(
            r.conf.why,
            "from /etc/crio/crio.conf crio.network.network_dir"
        );
    }

    #[test]
    fn flags_win_then_runtimes_then_defaults() {
        let c = containerd_dirs("/c", CONTAINERD_V2).unwrap();
        let mut o = crio_dirs(&[(
            "/o".into(),
            "[crio.network]\nnetwork_dir = \"/x\"\nplugin_dirs = [\"/opt/cni/bin\", \"/home/kubernetes/bin/\"]\n".into(),
        )])
        .unwrap();
        o.runtime = "CRI-O";
        let d = pick(&[], None, &[c.clone(), o], &[]);
        let bins: Vec<_> = d.bin.iter().map(|p| p.dir.clone()).collect();
        assert_eq!(
            bins,
            [
                PathBuf::from("/home/kubernetes/bin"),
                PathBuf::from("/opt/cni/bin")
            ]
        );
        assert_eq!(d.conf.dir, PathBuf::from("/etc/cni/net.d"));
        assert_eq!(d.notes.len(), 1, "{:?}", d.notes);
        let d = pick(&[PathBuf::from("/f")], Some(Path::new("/g")), &[c], &[]);
        assert_eq!(d.bin[0].why, "from --cni-bin-dir");
        assert_eq!(d.conf.dir, PathBuf::from("/g"));
        let d = pick(&[], None, &[], &["/etc/containerd/config.toml".into()]);
        assert_eq!(d.bin[0].dir, PathBuf::from(DEFAULT_BIN_DIR));
        assert!(d.conf.why.contains("no runtime config found"));
    }
}
