//! CRI-O's CNI dirs (cri-o/cri-o internal/criocli/criocli.go `mergeConfigFiles`, pkg/config
//! config.go `UpdateFromFile`, `UpdateFromPath`, `NetworkConfig.Validate`): the main file,
//! then every file under the drop-in dir (filepath.Walk: recursive, lexical order, any name),
//! each decoded over what came before (a key set replaces the value); then the deprecated
//! `plugin_dir`, if set, is appended to `plugin_dirs`. Defaults: `network_dir` /etc/cni/net.d/,
//! `plugin_dirs` ["/opt/cni/bin/"].

use super::conf_dir::MAX_DIR_ENTRIES;
use super::tree::{self, Node};
use super::{Origin, Picked, RuntimeDirs, Source, CRIO_CONFIG, CRIO_DROPINS};
use std::path::{Path, PathBuf};

const DEFAULT_NETWORK_DIR: &str = "/etc/cni/net.d/";
const DEFAULT_PLUGIN_DIR: &str = "/opt/cni/bin/";

/// CRI-O's config files in the order CRI-O applies them, each with its text; `None` when
/// the default locations hold none. An explicit path is one file, or a dir of drop-ins.
/// `root`: the host's root, under which the default locations are read.
pub fn files(source: &Source, root: &Path) -> Result<Option<Vec<(String, String)>>, String> {
    let mut paths: Vec<PathBuf> = Vec::new();
    match source {
        Source::Off => return Ok(None),
        Source::File(p) if p.is_dir() => walk(p, &mut paths, 0)?,
        Source::File(p) => paths.push(p.clone()),
        Source::Default => {
            let main = crate::inspect::rooted::resolve_under(root, Path::new(CRIO_CONFIG));
            if std::fs::symlink_metadata(&main).is_ok() {
                paths.push(main);
            }
            walk(
                &crate::inspect::rooted::resolve_under(root, Path::new(CRIO_DROPINS)),
                &mut paths,
                0,
            )?;
        }
    }
    if paths.is_empty() {
        return Ok(None);
    }
    paths
        .into_iter()
        .map(|p| Ok((p.display().to_string(), super::read_toml_file(&p)?)))
        .collect::<Result<Vec<_>, String>>()
        .map(Some)
}

/// filepath.Walk's order: entries sorted by name, a subdir's files at its place. Lstat, as
/// Walk: a symlink is read as a file. A missing dir is no files.
fn walk(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<(), String> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && depth == 0 => return Ok(()),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    let mut names: Vec<_> = rd
        .flatten()
        .map(|e| e.file_name())
        .take(MAX_DIR_ENTRIES)
        .collect();
    names.sort();
    for n in names {
        let p = dir.join(n);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() && depth < 8 => walk(&p, out, depth + 1)?,
            Ok(m) if m.is_dir() => {}
            Ok(_) => out.push(p),
            Err(_) => {}
        }
        if out.len() > MAX_DIR_ENTRIES {
            return Err(format!(
                "{}: more than {MAX_DIR_ENTRIES} files",
                dir.display()
            ));
        }
    }
    Ok(())
}

/// The CNI dirs of CRI-O's files, applied in order.
pub fn dirs(files: &[(String, String)]) -> Result<RuntimeDirs, String> {
    let mut plugin_dirs: Option<(Vec<String>, Origin)> = None;
    let mut plugin_dir: Option<(String, Origin)> = None;
    let mut network_dir: Option<(String, Origin)> = None;
    for (source, text) in files {
        let doc = tree::parse(source, text)?;
        let Some(net) = tree::table(&doc, &["crio", "network"]) else {
            continue;
        };
        if let Some(n) = net.get("plugin_dirs") {
            let (v, o) = tree::strings(n)?;
            plugin_dirs = Some((v, o.clone()));
        }
        if let Some(n) = net.get("plugin_dir") {
            let (v, o) = tree::string(n)?;
            plugin_dir = Some((v, o.clone()));
        }
        if let Some(n @ Node::Leaf(_)) = net.get("network_dir") {
            let (v, o) = tree::string(n)?;
            network_dir = Some((v, o.clone()));
        }
    }
    let names = files
        .iter()
        .map(|(s, _)| s.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let mut bin: Vec<Picked> = match plugin_dirs {
        Some((v, o)) => v.into_iter().map(|d| Picked::from(d, o.clone())).collect(),
        None => vec![Picked::default_of(
            DEFAULT_PLUGIN_DIR,
            format!("CRI-O's default: {names} set no crio.network.plugin_dirs"),
        )],
    };
    if let Some((d, o)) = plugin_dir.filter(|(d, _)| !d.is_empty()) {
        let mut p = Picked::from(d, o);
        p.why.push_str(" (deprecated, appended to plugin_dirs)");
        bin.push(p);
    }
    if bin.is_empty() {
        bin.push(Picked::default_of(
            DEFAULT_PLUGIN_DIR,
            format!("CRI-O's default: {names} set an empty crio.network.plugin_dirs"),
        ));
    }
    let conf = match network_dir {
        Some((d, o)) if !d.is_empty() => Picked::from(d, o),
        _ => Picked::default_of(
            DEFAULT_NETWORK_DIR,
            format!("CRI-O's default: {names} set no crio.network.network_dir"),
        ),
    };
    Ok(RuntimeDirs {
        runtime: "CRI-O",
        files: files.iter().map(|(s, _)| s.clone()).collect(),
        bin,
        conf,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::cni_files::tests::TempDir;

    #[test]
    fn dropins_override_in_order_and_plugin_dir_is_appended() {
        let t = TempDir::new("crio-d");
        let d = t.dir("crio.conf.d");
        std::fs::write(
            d.join("00-main.conf"),
            "[crio.network]\nnetwork_dir = \"/etc/cni/net.d/\"\nplugin_dirs = [\n  \"/opt/cni/bin/\",\n]\n",
        )
        .unwrap();
        std::fs::write(
            d.join("10-cni.conf"),
            "[crio.network]\nplugin_dirs = [\"/usr/libexec/cni\"]\nplugin_dir = \"/old\"\n",
        )
        .unwrap();
        std::fs::write(
            d.join("20-net.conf"),
            "[crio.network]\nnetwork_dir = \"/n\"\n",
        )
        .unwrap();
        let f = files(&Source::File(d.clone()), Path::new("/"))
            .unwrap()
            .unwrap();
        let r = dirs(&f).unwrap();
        let bins: Vec<_> = r.bin.iter().map(|p| p.dir.display().to_string()).collect();
        assert_eq!(bins, ["/usr/libexec/cni", "/old"]);
        assert!(
            r.bin[0]
                .why
                .ends_with("10-cni.conf crio.network.plugin_dirs"),
            "{}",
            r.bin[0].why
        );
        assert!(r.bin[1].why.contains("deprecated"), "{}", r.bin[1].why);
        assert_eq!(r.conf.dir, PathBuf::from("/n"));
        assert!(r.conf.why.ends_with("20-net.conf crio.network.network_dir"));
        let e = dirs(&[(
            "f".into(),
            "[crio.network]\nnetwork_dir = 'a'\nnetwork_dir = 'b'\n".into(),
        )])
        .unwrap_err();
        assert!(e.contains("f line 3") && e.contains("network_dir"), "{e}");
    }
}
