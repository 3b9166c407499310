//! containerd's CNI dirs, as containerd 2.x computes them from its config
//! (containerd/containerd cmd/containerd/server/config/config.go `LoadConfigWithPlugins`,
//! `resolveImports`, `mergeConfig`; plugins/cri/runtime/plugin.go `configMigration`;
//! internal/cri/config/config.go `ValidateRuntimeConfig`):
//! - the main file, then each file's `imports` (globs when they hold `*`, relative paths
//!   against the importing file's dir), breadth first, each file once;
//! - each file migrated from its own `version` to the current one (4) before it is merged:
//!   no version or 1: plugin `cri` is `io.containerd.grpc.v1.cri`; below 4: that plugin's `cni`
//!   table moves to `io.containerd.cri.v1.runtime` (keys already there win, except that a
//!   `bin_dir` always becomes `bin_dirs`);
//! - merge: tables merged by key, values replaced;
//! - `bin_dir` set (deprecated) and `bin_dirs` at its default `["/opt/cni/bin"]`: `bin_dir` is
//!   used; both set otherwise: containerd refuses the config.
//!
//! For containerd 1.x (config versions 1 and 2) this gives the same dirs: `bin_dir` and
//! `conf_dir` of the version's own table. One difference is not modelled: 1.x's mergeConfig
//! (services/server/config/config.go at v1.7) replaced a whole plugin table from an import
//! instead of merging it by key; which containerd runs cannot be told from its files.

use super::tree::{self, Node, Table};
use super::{Picked, RuntimeDirs, DEFAULT_BIN_DIR, DEFAULT_CONF_DIR};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// containerd's current config version (version/version.go `ConfigVersion`).
pub const CONFIG_VERSION: i64 = 4;
/// A bound on the files one config may pull in through `imports`.
pub const MAX_FILES: usize = 64;

const GRPC_CRI: &str = "io.containerd.grpc.v1.cri";
const RUNTIME: &str = "io.containerd.cri.v1.runtime";
/// The key the reasons name when nothing sets a dir (the current version's table).
const CNI_TABLE: &str = "plugins.\"io.containerd.cri.v1.runtime\".cni";

/// The CNI dirs containerd uses with `main` as its config (`runtime` names it in messages).
/// `root`: the host's root, under which absolute `imports` (host paths) are read.
pub fn load(runtime: &'static str, main: &Path, root: &Path) -> Result<RuntimeDirs, String> {
    let mut merged = Table::new();
    let mut loaded: HashSet<PathBuf> = HashSet::new();
    let mut files: Vec<String> = Vec::new();
    let mut pending = vec![main.to_path_buf()];
    let mut next = 0;
    while next < pending.len() {
        let path = pending[next].clone();
        next += 1;
        // As containerd: a file imported twice (or in a cycle) is read once.
        if !loaded.insert(path.clone()) {
            continue;
        }
        if loaded.len() > MAX_FILES {
            return Err(format!(
                "{} pulls in more than {MAX_FILES} files through imports",
                main.display()
            ));
        }
        let shown = path.display().to_string();
        let text = super::read_toml_file(&path)?;
        let mut doc = tree::parse(&shown, &text)?;
        let version = version_of(&doc, &shown)?;
        migrate(&mut doc, version)?;
        let imports = imports_of(&doc, &path, root)?;
        // `imports` and `version` are the file's own; only the plugin tables matter here.
        doc.remove("imports");
        doc.remove("version");
        tree::merge(&mut merged, doc);
        files.push(shown);
        pending.extend(imports);
    }
    dirs(runtime, &merged, files)
}

fn version_of(doc: &Table, file: &str) -> Result<i64, String> {
    let v = match doc.get("version") {
        None => 0,
        Some(Node::Leaf(l)) => l
            .value
            .as_integer()
            .ok_or_else(|| format!("{file}: version is not an integer"))?,
        Some(Node::Table(_)) => return Err(format!("{file}: version is not an integer")),
    };
    if v > CONFIG_VERSION {
        return Err(format!(
            "{file}: expected containerd config version equal to or less than {CONFIG_VERSION}, got {v}"
        ));
    }
    Ok(v)
}

/// The file's `imports`, resolved as containerd's `resolveImports` does.
fn imports_of(doc: &Table, path: &Path, root: &Path) -> Result<Vec<PathBuf>, String> {
    let Some(n) = doc.get("imports") else {
        return Ok(vec![]);
    };
    let (list, _) = tree::strings(n)?;
    let dir = path.parent().unwrap_or(Path::new("/"));
    let mut out = Vec::new();
    for imp in list {
        let p = Path::new(&imp);
        // filepath.Join cleans: `conf.d/../config.toml` is `config.toml`, one file.
        let p = clean(&if p.is_absolute() {
            // A host path; the importing file's own dir is already under the root.
            crate::inspect::rooted::resolve_under(root, clean(p))
        } else {
            dir.join(p)
        });
        let s = p.to_string_lossy().into_owned();
        if s.contains('*') {
            let matches = glob::glob(&s).map_err(|e| {
                format!(
                    "{}: import {imp:?} is not a valid pattern: {e}",
                    path.display()
                )
            })?;
            // Go's filepath.Glob ignores what it cannot read; so does this.
            let mut m: Vec<PathBuf> = matches.flatten().collect();
            m.sort();
            m.truncate(MAX_FILES + 1);
            out.extend(m);
        } else {
            out.push(p);
        }
    }
    Ok(out)
}

/// Go's filepath.Clean, lexically: no `.`, `..` resolved against what precedes it.
fn clean(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            // `/..` is `/`; a relative path keeps a leading `..`.
            Component::ParentDir => {
                if out.file_name().is_some() {
                    out.pop();
                } else if !out.has_root() {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Brings one file's plugin tables to the current version, as containerd does before merging.
fn migrate(doc: &mut Table, version: i64) -> Result<(), String> {
    let Some(plugins) = tree::table_mut(doc, &["plugins"]) else {
        return Ok(());
    };
    // v1Migrate: short plugin names became URIs (only `cri` holds CNI settings).
    if version <= 1 {
        if let Some(cri) = plugins.remove("cri") {
            plugins.insert(GRPC_CRI.to_string(), cri);
        }
    }
    if version >= CONFIG_VERSION {
        return Ok(());
    }
    let Some(Node::Table(old_cni)) = tree::get(plugins, &[GRPC_CRI, "cni"]).cloned() else {
        return Ok(());
    };
    let runtime = match plugins
        .entry(RUNTIME.to_string())
        .or_insert_with(|| Node::Table(Table::new()))
    {
        Node::Table(t) => t,
        Node::Leaf(l) => return Err(format!("{} is not a table", l.origin)),
    };
    let cni = match runtime
        .entry("cni".to_string())
        .or_insert_with(|| Node::Table(Table::new()))
    {
        Node::Table(t) => t,
        Node::Leaf(l) => return Err(format!("{} is not a table", l.origin)),
    };
    for (k, v) in old_cni {
        if k == "bin_dir" {
            // migrateConfig checks for a []string `bin_dirs`, which a decoded file never
            // holds ([]any), so the old `bin_dir` always lands in `bin_dirs`.
            let (dir, origin) = tree::string(&v)?;
            cni.insert(
                "bin_dirs".into(),
                Node::Leaf(tree::Leaf {
                    value: toml::Value::Array(vec![toml::Value::String(dir)]),
                    origin: origin.clone(),
                }),
            );
        } else {
            cni.entry(k).or_insert(v);
        }
    }
    Ok(())
}

/// `bin_dirs`/`bin_dir`/`conf_dir` of the merged config, with containerd's precedence.
fn dirs(runtime: &'static str, merged: &Table, files: Vec<String>) -> Result<RuntimeDirs, String> {
    let cni = tree::table(merged, &["plugins", RUNTIME, "cni"]);
    let key = |k: &str| cni.and_then(|t| t.get(k));
    let bin_dir = key("bin_dir")
        .map(tree::string)
        .transpose()?
        .filter(|(d, _)| !d.is_empty());
    let bin_dirs = key("bin_dirs").map(tree::strings).transpose()?;
    let read = files.join(", ");
    let unset = |k: &str| format!("containerd's default: {read} set no {CNI_TABLE}.{k}");
    let bin = match (bin_dir, bin_dirs) {
        (Some((d, o)), None) => vec![Picked::from(d, o.clone())],
        // ValidateRuntimeConfig: a `bin_dir` beside the default `bin_dirs` (which containerd
        // cannot tell from one written out) replaces it.
        (Some((d, o)), Some((list, lo)))
            if list.is_empty() || list == [DEFAULT_BIN_DIR] =>
        {
            let mut p = Picked::from(d, o.clone());
            if !list.is_empty() {
                p.why.push_str(&format!(
                    ", which containerd uses instead of {lo} = [\"{DEFAULT_BIN_DIR}\"], its default"
                ));
            }
            vec![p]
        }
        (Some((_, o)), Some((_, lo))) => {
            return Err(format!(
                "containerd refuses this config: `cni.bin_dir` and `cni.bin_dirs` cannot be set at the same time ({o} and {lo})"
            ))
        }
        (None, Some((list, o))) if !list.is_empty() => list
            .into_iter()
            .map(|d| Picked::from(d, o.clone()))
            .collect(),
        (None, Some(_)) | (None, None) => vec![Picked::default_of(DEFAULT_BIN_DIR, unset("bin_dirs"))],
    };
    let conf = match key("conf_dir").map(tree::string).transpose()? {
        Some((d, o)) if !d.is_empty() => Picked::from(d, o.clone()),
        _ => Picked::default_of(DEFAULT_CONF_DIR, unset("conf_dir")),
    };
    Ok(RuntimeDirs {
        runtime,
        files,
        bin,
        conf,
    })
}

/// For messages elsewhere: the key an operator sets for containerd's bin dirs.
pub fn bin_dirs_key() -> String {
    format!("{CNI_TABLE}.bin_dirs")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::cni_files::tests::TempDir;

    fn load_text(t: &TempDir, text: &str) -> Result<RuntimeDirs, String> {
        let p = t.0.join("config.toml");
        std::fs::write(&p, text).unwrap();
        load("containerd", &p, Path::new("/"))
    }

    fn bins(r: &RuntimeDirs) -> Vec<String> {
        r.bin.iter().map(|p| p.dir.display().to_string()).collect()
    }

    #[test]
    fn each_version_reads_its_own_table() {
        let t = TempDir::new("ctd-versions");
        for (text, key) in [
            ("[plugins.cri.cni]\nbin_dir = '/v1'\nconf_dir = '/c1'\n", "plugins.cri.cni"),
            ("version = 1\n[plugins.cri.cni]\nbin_dir = '/v1'\nconf_dir = '/c1'\n", "plugins.cri.cni"),
            (
                "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".cni]\nbin_dir = '/v1'\nconf_dir = '/c1'\n",
                "plugins.\"io.containerd.grpc.v1.cri\".cni",
            ),
            (
                "version = 3\n[plugins.'io.containerd.cri.v1.runtime'.cni]\nbin_dirs = ['/v1']\nconf_dir = '/c1'\n",
                "plugins.\"io.containerd.cri.v1.runtime\".cni",
            ),
            (
                "version = 4\n[plugins.'io.containerd.cri.v1.runtime'.cni]\nbin_dir = '/v1'\nconf_dir = '/c1'\n",
                "plugins.\"io.containerd.cri.v1.runtime\".cni",
            ),
        ] {
            let r = load_text(&t, text).unwrap();
            assert_eq!(bins(&r), ["/v1"], "{text}");
            assert_eq!(r.conf.dir, PathBuf::from("/c1"), "{text}");
            assert!(r.bin[0].why.ends_with(&format!("{key}.bin_dir")) || r.bin[0].why.ends_with(&format!("{key}.bin_dirs")), "{}", r.bin[0].why);
            assert_eq!(r.conf.origin.as_ref().unwrap().key, format!("{key}.conf_dir"));
        }
    }

    #[test]
    fn a_table_of_another_version_is_ignored_like_containerd_does() {
        let t = TempDir::new("ctd-other");
        // version 2 does not read plugins.cri; version 4 does not migrate grpc.v1.cri.
        for text in [
            "version = 2\n[plugins.cri.cni]\nbin_dir = '/x'\n",
            "version = 4\n[plugins.\"io.containerd.grpc.v1.cri\".cni]\nbin_dir = '/x'\n",
        ] {
            let r = load_text(&t, text).unwrap();
            assert_eq!(bins(&r), [DEFAULT_BIN_DIR], "{text}");
            assert!(
                r.bin[0].why.starts_with("containerd's default"),
                "{}",
                r.bin[0].why
            );
        }
        let e = load_text(&t, "version = 5\n").unwrap_err();
        assert!(e.contains("equal to or less than 4, got 5"), "{e}");
    }

    #[test]
    fn bin_dir_beside_bin_dirs() {
        let t = TempDir::new("ctd-bindirs");
        let table = "version = 3\n[plugins.'io.containerd.cri.v1.runtime'.cni]\n";
        let r = load_text(
            &t,
            &format!("{table}bin_dir = '/usr/lib/cni'\nbin_dirs = ['/opt/cni/bin']\n"),
        )
        .unwrap();
        assert_eq!(bins(&r), ["/usr/lib/cni"]);
        assert!(r.bin[0].why.contains("its default"), "{}", r.bin[0].why);
        let e = load_text(
            &t,
            &format!("{table}bin_dir = '/usr/lib/cni'\nbin_dirs = ['/a']\n"),
        )
        .unwrap_err();
        assert!(e.contains("cannot be set at the same time"), "{e}");
        assert!(e.contains("cni.bin_dir and"), "{e}");
        let r = load_text(&t, &format!("{table}bin_dirs = ['/a', '/b']\n")).unwrap();
        assert_eq!(bins(&r), ["/a", "/b"]);
        let e = load_text(&t, &format!("{table}bin_dirs = '/a'\n")).unwrap_err();
        assert!(e.contains("bin_dirs is not a list of strings"), "{e}");
    }

    #[test]
    fn imports_glob_relative_merge_and_cycles() {
        let t = TempDir::new("ctd-imports");
        let d = t.dir("etc");
        let confd = t.dir("etc/conf.d");
        std::fs::write(
            d.join("config.toml"),
            "version = 3\nimports = ['conf.d/*.toml', 'extra.toml']\n\
             [plugins.'io.containerd.cri.v1.runtime'.cni]\nbin_dirs = ['/main']\nconf_dir = '/main-conf'\nmax_conf_num = 1\n",
        )
        .unwrap();
        // Lexical order: 20 overrides 10; a version-2 drop-in is migrated first.
        std::fs::write(
            confd.join("10-a.toml"),
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".cni]\nbin_dir = '/from-10'\n",
        )
        .unwrap();
        std::fs::write(
            confd.join("20-b.toml"),
            "version = 3\nimports = ['../config.toml']\n[plugins.'io.containerd.cri.v1.runtime'.cni]\nbin_dirs = ['/from-20']\n",
        )
        .unwrap();
        std::fs::write(confd.join("30-c.txt"), "not toml [").unwrap();
        std::fs::write(
            d.join("extra.toml"),
            "[plugins.'io.containerd.cri.v1.runtime'.cni]\nconf_dir = '/extra-conf'\n",
        )
        .unwrap();
        let r = load("containerd", &d.join("config.toml"), Path::new("/")).unwrap();
        assert_eq!(bins(&r), ["/from-20"]);
        assert_eq!(
            r.bin[0].origin.as_ref().unwrap().file,
            confd.join("20-b.toml").display().to_string()
        );
        assert_eq!(r.conf.dir, PathBuf::from("/extra-conf"));
        assert_eq!(r.files.len(), 4, "{:?}", r.files);
        // A missing plain import: containerd fails to start.
        std::fs::remove_file(d.join("extra.toml")).unwrap();
        let e = load("containerd", &d.join("config.toml"), Path::new("/")).unwrap_err();
        assert!(e.contains("extra.toml"), "{e}");
    }
}
