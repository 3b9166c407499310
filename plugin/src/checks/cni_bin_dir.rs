//! `cni-bin-dir`: every plugin (and ipam) binary our conflist names is an executable file in
//! one of the CNI_PATH dirs. Otherwise pods fail with a bare `failed to find plugin "calico" in
//! path [/opt/cni/bin]`, typically after switching from dockershim (kubelet's --cni-bin-dir,
//! where calico-node installed) to containerd or CRI-O (which look in their own bin dir).

use super::{CheckId, Finding, NodeFacts, Severity};
use crate::inspect::cni_files::{BinCandidate, BinLookup, BinState, CniFiles, ConfFile};
use crate::inspect::runtime::{ConfigError, Dirs};
use std::path::Path;

/// How many conf dir files the "network not found" finding lists before "and N more".
const MAX_LISTED: usize = 8;

pub fn check(f: &NodeFacts) -> Vec<Finding> {
    let mut out: Vec<Finding> = f
        .runtime
        .as_ref()
        .and_then(|r| r.problem.as_ref())
        .map(runtime_config_unreadable)
        .into_iter()
        .collect();
    let Some(cni) = &f.cni else {
        return out;
    };
    let dirs = f.runtime.as_ref().and_then(|r| r.dirs.as_ref());
    let Some(ours) = cni.ours.and_then(|i| cni.files.get(i)) else {
        out.extend(network_not_found(cni, dirs));
        return out;
    };
    out.extend(
        cni.binaries
            .iter()
            .filter_map(|b| binary_finding(cni, dirs, &ours.path, b)),
    );
    out
}

/// The runtime's config exists but the runtime would refuse it (or it cannot be read): the
/// dirs checked are then the defaults, which may not be the runtime's.
fn runtime_config_unreadable(e: &ConfigError) -> Finding {
    Finding::new(
        CheckId::CniBinDir,
        "the container runtime's config",
        "it cannot be read as the runtime reads it, so the CNI dirs checked are the defaults",
        "a config the runtime accepts, naming its CNI bin and conf dirs",
        e.what.clone(),
        format!(
            "{}; meanwhile pass doctor --cni-bin-dir and --conf-dir with the runtime's dirs",
            e.remedy
        ),
    )
    .at(Severity::Warn)
}

/// "bin dir /usr/lib/cni (from /etc/containerd/config.toml plugins...cni.bin_dir)": where
/// the dirs checked came from, when a runtime config or a flag set them.
fn dirs_origin(dirs: Option<&Dirs>) -> Option<String> {
    let d = dirs?;
    let parts: Vec<String> = d
        .bin
        .iter()
        .map(|b| format!("{} ({})", b.dir.display(), b.why))
        .collect();
    Some(parts.join(", "))
}

/// A warning when the conf dir exists but holds no file with our network: the binaries cannot
/// be checked. A missing conf dir is no finding (the plugin run by hand, or from elsewhere).
fn network_not_found(cni: &CniFiles, dirs: Option<&Dirs>) -> Option<Finding> {
    if cni.conf_dir_missing {
        return None;
    }
    let dir = cni.conf_dir.display();
    // `doctor` looks for Calico's file by plugin type alone, with no network name.
    let ty = if cni.main_type.is_empty() {
        &cni.our_type
    } else {
        &cni.main_type
    };
    let wanted = if cni.network_name.is_empty() {
        format!("a config file in {dir} listing type {ty}")
    } else {
        format!(
            "a config file in {dir} named {:?} listing type {ty}",
            cni.network_name
        )
    };
    let (problem, found) = match &cni.conf_dir_error {
        Some(e) => (
            "the CNI conf dir could not be listed".to_string(),
            e.clone(),
        ),
        None => (
            if cni.network_name.is_empty() {
                format!("no config file there has a {ty} plugin")
            } else {
                format!(
                    "no config file there holds network {:?} with a {ty} plugin",
                    cni.network_name
                )
            },
            files_summary(cni),
        ),
    };
    Some(
        Finding::new(
            CheckId::CniBinDir,
            format!("CNI conf dir {dir}"),
            problem,
            format!("{wanted}, whose binaries can then be checked"),
            match dirs {
                Some(d) => format!("{found} (conf dir {})", d.conf.why),
                None => found,
            },
            "if the runtime reads another dir (containerd: conf_dir in its cni table, \
             CRI-O: network_dir), set \"confDir\" to it in this plugin's config (doctor: --conf-dir); if the plugin is run by hand \
             or from a conflist elsewhere, set \"checks\": {\"cni-bin-dir\": \"off\"}",
        )
        .at(Severity::Warn),
    )
}

/// One line per file of the conf dir: its network and plugins, or why it is unusable.
fn files_summary(cni: &CniFiles) -> String {
    if cni.files.is_empty() {
        return "no .conflist, .conf or .json files".into();
    }
    let mut parts: Vec<String> = cni
        .files
        .iter()
        .take(MAX_LISTED)
        .map(describe_file)
        .collect();
    if cni.files.len() > MAX_LISTED {
        parts.push(format!("and {} more", cni.files.len() - MAX_LISTED));
    }
    if cni.truncated {
        parts.push("(the dir has more files than were read)".into());
    }
    parts.join("; ")
}

fn describe_file(f: &ConfFile) -> String {
    let name = file_name(&f.path);
    match (&f.error, &f.name) {
        (Some(e), _) => format!("{name}: unusable ({e})"),
        (None, n) => format!(
            "{name}: network {:?}, plugins {}",
            n.as_deref().unwrap_or_default(),
            f.types.join(", ")
        ),
    }
}

pub(crate) fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

fn binary_finding(
    cni: &CniFiles,
    rt_dirs: Option<&Dirs>,
    conflist: &Path,
    b: &BinLookup,
) -> Option<Finding> {
    let dirs = if cni.cni_path.is_empty() {
        "the CNI_PATH dirs (CNI_PATH is empty)".to_string()
    } else {
        cni.cni_path
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let object = format!(
        "{} (needed by {} in {})",
        b.plugin,
        b.needed_by,
        conflist.display()
    );
    let expected = format!("an executable file {} in one of: {dirs}", b.plugin);
    let finding = |problem: String, found: String, remedy: String| {
        Some(Finding::new(
            CheckId::CniBinDir,
            object.clone(),
            problem,
            expected.clone(),
            found,
            remedy,
        ))
    };
    // libcni runs the first regular file it finds, executable or not.
    if let Some(pick) = b.libcni_pick() {
        let BinState::NotExecutable { mode } = pick.state else {
            return None;
        };
        let path = pick.path.display();
        let mut found = format!("{path} is not executable (mode {mode:04o})");
        let mut remedy = format!(
            "the runtime finds this file first and cannot run it (permission denied): chmod 755 {path}"
        );
        if let Some(later) = b.found() {
            found.push_str(&format!(
                "; the runtime stops there before the executable {}",
                later.path.display()
            ));
            remedy.push_str(&format!(
                ", or remove it so {} is used",
                later.path.display()
            ));
        }
        return finding(
            format!("plugin binary {:?} is not executable", b.plugin),
            found,
            remedy,
        );
    }
    let elsewhere: Vec<&BinCandidate> = b
        .elsewhere
        .iter()
        .filter(|c| c.state == BinState::Executable)
        .collect();
    let in_dir = cni
        .cni_path
        .first()
        .map(|d| d.join(&b.plugin).display().to_string())
        .unwrap_or_else(|| b.plugin.clone());
    let dangling = b
        .in_path
        .iter()
        .find(|c| matches!(c.state, BinState::DanglingSymlink { .. }));
    if let Some(link) = dangling {
        let path = link.path.display();
        let mut found = describe(link);
        let remedy = match elsewhere.first() {
            Some(real) => {
                found.push_str(&format!("; {} is in {}", b.plugin, real.path.display()));
                format!(
                    "the link's target is gone, so the runtime cannot find the plugin: point it at the \
                     real binary (ln -sfn {} {path}) or remove it",
                    real.path.display()
                )
            }
            None => format!(
                "the link's target is gone, so the runtime cannot find the plugin: remove it (rm {path}); {}",
                reinstall(cni, b, "installs the real binary")
            ),
        };
        return finding(
            format!("plugin binary {:?} is a dangling symlink", b.plugin),
            found,
            remedy,
        );
    }
    // Nothing runnable in CNI_PATH: say what is there, and where the binary is instead.
    let mut found: Vec<String> = b.in_path.iter().map(describe).collect();
    let remedy = match elsewhere.first() {
        Some(real) => {
            let paths: Vec<String> = elsewhere
                .iter()
                .map(|c| c.path.display().to_string())
                .collect();
            found.push(format!(
                "nowhere in CNI_PATH; it is in {}",
                paths.join(" and ")
            ));
            let real_dir = real
                .path
                .parent()
                .map(|d| d.display().to_string())
                .unwrap_or_default();
            let runtime_dir = cni
                .cni_path
                .first()
                .map(|d| d.display().to_string())
                .unwrap_or_else(|| "the runtime's bin dir".into());
            let set_it = match rt_dirs.and_then(|d| d.bin.iter().find_map(|p| p.origin.as_ref())) {
                Some(o) => format!("{} in {}", o.key, o.file),
                None => format!(
                    "containerd: {} (config version 3 and later) or plugins.\"io.containerd.grpc.v1.cri\".cni.bin_dir \
                     (version 2), CRI-O: plugin_dirs",
                    crate::inspect::runtime::containerd::bin_dirs_key()
                ),
            };
            if let Some(origin) = dirs_origin(rt_dirs) {
                found.push(format!("the runtime's CNI bin dirs: {origin}"));
            }
            format!(
                "the runtime looks only in its CNI bin dirs, but the binary is in {real_dir} (as after switching from \
                 dockershim, which used kubelet's --cni-bin-dir, to containerd or CRI-O). Either symlink it in \
                 (ln -s {} {in_dir}), or add {real_dir} to the runtime's CNI bin dirs ({set_it}) and restart it, or change \
                 Calico's install path (the calico-node DaemonSet's cni-bin-dir hostPath volume) to {runtime_dir}",
                real.path.display()
            )
        }
        None => {
            let others: Vec<String> = b.elsewhere.iter().map(describe).collect();
            found.push(if others.is_empty() {
                "nowhere in CNI_PATH nor in the usual CNI bin dirs".into()
            } else {
                format!("nowhere in CNI_PATH; elsewhere only {}", others.join(", "))
            });
            reinstall(cni, b, "did not install it")
        }
    };
    finding(
        format!(
            "plugin binary {:?} is not in the runtime's CNI bin dirs",
            b.plugin
        ),
        found.join("; "),
        remedy,
    )
}

/// How the binary gets (re)installed: ours by our installer, the rest by Calico's install-cni.
/// `lead` says what went wrong with the install, e.g. "did not install it".
fn reinstall(cni: &CniFiles, b: &BinLookup, lead: &str) -> String {
    if b.plugin == cni.our_type {
        return format!(
            "calico-preflight's installer {lead}: run `calico-preflight install` on this node, which \
             copies the binary into the runtime's bin dirs"
        );
    }
    format!(
        "Calico's install-cni init container {lead}: check its logs (kubectl logs -n calico-system \
         <calico-node pod> -c install-cni; kube-system for manifest installs) and that its cni-bin-dir \
         hostPath is the runtime's bin dir, then delete the calico-node pod to rerun it (a plugin Calico \
         does not ship must be installed there by hand)"
    )
}

fn describe(c: &BinCandidate) -> String {
    let path = c.path.display();
    match &c.state {
        BinState::Executable => format!("{path}"),
        BinState::NotExecutable { mode } => format!("{path} is not executable (mode {mode:04o})"),
        BinState::DanglingSymlink { target } => {
            format!("{path} is a dangling symlink to {}", target.display())
        }
        BinState::NotRegular => format!("{path} is not a regular file"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::cni_files::tests::{write, TempDir};
    use crate::inspect::cni_files::{gather, CniFilesQuery};
    use std::path::PathBuf;

    fn cand(path: &str, state: BinState) -> BinCandidate {
        BinCandidate {
            path: path.into(),
            state,
        }
    }

    fn lookup(plugin: &str, in_path: Vec<BinCandidate>, elsewhere: Vec<BinCandidate>) -> BinLookup {
        BinLookup {
            plugin: plugin.into(),
            needed_by: format!("plugin {plugin}"),
            in_path,
            elsewhere,
        }
    }

    fn facts(binaries: Vec<BinLookup>) -> NodeFacts {
        NodeFacts {
            cni: Some(CniFiles {
                conf_dir: "/etc/cni/net.d".into(),
                network_name: "k8s-pod-network".into(),
                our_type: "calico-preflight".into(),
                files: vec![ConfFile {
                    path: "/etc/cni/net.d/10-calico.conflist".into(),
                    name: Some("k8s-pod-network".into()),
                    types: vec!["calico".into(), "calico-preflight".into()],
                    ..ConfFile::default()
                }],
                ours: Some(0),
                binaries,
                cni_path: vec!["/opt/cni/bin".into()],
                ..CniFiles::default()
            }),
            ..NodeFacts::default()
        }
    }

    const OPT: &str = "/opt/cni/bin/calico";
    const ETC: &str = "/etc/cni/bin/calico";

    #[test]
    fn all_present_is_quiet_and_no_facts_is_quiet() {
        let ok = lookup("calico", vec![cand(OPT, BinState::Executable)], vec![]);
        assert!(check(&facts(vec![ok])).is_empty());
        assert!(check(&NodeFacts::default()).is_empty());
    }

    #[test]
    fn docker_to_containerd_switch_names_the_three_ways_out() {
        let f = check(&facts(vec![lookup(
            "calico",
            vec![],
            vec![cand(ETC, BinState::Executable)],
        )]));
        assert_eq!(f.len(), 1, "{f:#?}");
        let f = &f[0];
        assert_eq!(f.severity, Severity::Error);
        assert_eq!(
            f.problem,
            "plugin binary \"calico\" is not in the runtime's CNI bin dirs"
        );
        assert_eq!(
            f.object,
            "calico (needed by plugin calico in /etc/cni/net.d/10-calico.conflist)"
        );
        assert_eq!(
            f.expected,
            "an executable file calico in one of: /opt/cni/bin"
        );
        assert_eq!(f.found, "nowhere in CNI_PATH; it is in /etc/cni/bin/calico");
        for part in [
            "ln -s /etc/cni/bin/calico /opt/cni/bin/calico",
            "plugins.\"io.containerd.grpc.v1.cri\".cni.bin_dir",
            "plugin_dirs",
            "cni-bin-dir hostPath",
        ] {
            assert!(f.remedy.contains(part), "{part}: {}", f.remedy);
        }
    }

    #[test]
    fn nowhere_at_all_points_at_install_cni() {
        let f = check(&facts(vec![lookup("calico", vec![], vec![])]));
        assert!(f[0].found.contains("nor in the usual CNI bin dirs"));
        assert!(f[0].remedy.contains("install-cni"), "{}", f[0].remedy);
    }

    #[test]
    fn our_own_binary_missing_points_at_our_installer() {
        let f = check(&facts(vec![lookup("calico-preflight", vec![], vec![])]));
        assert!(f[0].remedy.contains("calico-preflight install"));
    }

    /// doctor's view: Calico's conflist found by Calico's type, our type still ours, so each
    /// missing binary is sent to the installer that puts it there.
    #[test]
    fn doctor_sends_each_missing_binary_to_its_own_installer() {
        let mut fx = facts(vec![
            lookup("calico", vec![], vec![]),
            lookup("calico-preflight", vec![], vec![]),
        ]);
        let cni = fx.cni.as_mut().unwrap();
        cni.network_name.clear();
        cni.main_type = "calico".into();
        let f = check(&fx);
        assert_eq!(f.len(), 2);
        assert!(
            f[0].remedy.starts_with("Calico's install-cni"),
            "{}",
            f[0].remedy
        );
        assert!(
            f[1].remedy.starts_with("calico-preflight's installer"),
            "{}",
            f[1].remedy
        );
    }

    #[test]
    fn the_remedy_names_the_runtime_config_key_that_set_the_dir() {
        use crate::inspect::runtime::{Origin, Picked, RuntimeFacts};
        let mut fx = facts(vec![lookup(
            "calico",
            vec![],
            vec![cand(ETC, BinState::Executable)],
        )]);
        let origin = Origin {
            file: "/etc/containerd/config.toml".into(),
            key: "plugins.\"io.containerd.grpc.v1.cri\".cni.bin_dir".into(),
        };
        fx.runtime = Some(RuntimeFacts {
            dirs: Some(Dirs {
                bin: vec![Picked {
                    dir: "/opt/cni/bin".into(),
                    why: format!("from {origin}"),
                    origin: Some(origin),
                }],
                conf: Picked {
                    dir: "/etc/cni/net.d".into(),
                    why: "default".into(),
                    origin: None,
                },
                notes: vec![],
            }),
            problem: None,
        });
        let f = check(&fx);
        assert!(
            f[0].remedy.contains(
                "add /etc/cni/bin to the runtime's CNI bin dirs (plugins.\"io.containerd.grpc.v1.cri\".cni.bin_dir in /etc/containerd/config.toml)"
            ),
            "{}",
            f[0].remedy
        );
        assert!(
            f[0].found
                .contains("/opt/cni/bin (from /etc/containerd/config.toml"),
            "{}",
            f[0].found
        );
        fx.runtime.as_mut().unwrap().problem = Some(ConfigError {
            what: "cannot read containerd's config: duplicate key".into(),
            remedy: "fix the file".into(),
        });
        let f = check(&fx);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].severity, Severity::Warn);
        assert_eq!(f[0].found, "cannot read containerd's config: duplicate key");
    }

    #[test]
    fn not_executable_has_its_own_finding_even_when_a_later_dir_has_one() {
        let f = check(&facts(vec![lookup(
            "calico",
            vec![
                cand(OPT, BinState::NotExecutable { mode: 0o644 }),
                cand("/usr/lib/cni/calico", BinState::Executable),
            ],
            vec![],
        )]));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].problem, "plugin binary \"calico\" is not executable");
        assert!(
            f[0].found
                .starts_with("/opt/cni/bin/calico is not executable (mode 0644)"),
            "{}",
            f[0].found
        );
        assert!(f[0].remedy.contains("chmod 755 /opt/cni/bin/calico"));
        assert!(f[0].remedy.contains("/usr/lib/cni/calico is used"));
    }

    #[test]
    fn dangling_link_with_and_without_the_real_binary() {
        let link = cand(OPT, BinState::DanglingSymlink { target: ETC.into() });
        let f = check(&facts(vec![lookup(
            "calico",
            vec![link.clone()],
            vec![cand("/usr/lib/cni/calico", BinState::Executable)],
        )]));
        assert_eq!(
            f[0].problem,
            "plugin binary \"calico\" is a dangling symlink"
        );
        assert!(f[0]
            .found
            .starts_with("/opt/cni/bin/calico is a dangling symlink to /etc/cni/bin/calico"));
        assert!(f[0]
            .remedy
            .contains("ln -sfn /usr/lib/cni/calico /opt/cni/bin/calico"));
        let f = check(&facts(vec![lookup("calico", vec![link], vec![])]));
        assert!(f[0].remedy.contains("rm /opt/cni/bin/calico"));
        assert!(f[0].remedy.contains("install-cni"));
    }

    #[test]
    fn one_finding_per_missing_binary_with_ipam_named() {
        let mut ipam = lookup("calico-ipam", vec![], vec![]);
        ipam.needed_by = "ipam of plugin calico".into();
        let f = check(&facts(vec![
            lookup("calico", vec![cand(OPT, BinState::Executable)], vec![]),
            ipam,
        ]));
        assert_eq!(f.len(), 1);
        assert!(f[0]
            .object
            .starts_with("calico-ipam (needed by ipam of plugin calico"));
    }

    #[test]
    fn network_not_in_conf_dir_warns_naming_what_was_looked_for() {
        let mut fx = facts(vec![]);
        let cni = fx.cni.as_mut().unwrap();
        cni.ours = None;
        cni.files.push(ConfFile {
            path: "/etc/cni/net.d/00-bad.conf".into(),
            error: Some("invalid JSON".into()),
            ..ConfFile::default()
        });
        let f = check(&fx);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Warn);
        assert_eq!(f[0].object, "CNI conf dir /etc/cni/net.d");
        assert!(f[0]
            .problem
            .contains("\"k8s-pod-network\" with a calico-preflight plugin"));
        assert_eq!(
            f[0].found,
            "10-calico.conflist: network \"k8s-pod-network\", plugins calico, calico-preflight; \
             00-bad.conf: unusable (invalid JSON)"
        );
        assert!(f[0].remedy.contains("confDir"));
        // A conf dir that does not exist says nothing (run by hand); an unreadable one warns.
        let cni = fx.cni.as_mut().unwrap();
        cni.conf_dir_missing = true;
        assert!(check(&fx).is_empty());
        let cni = fx.cni.as_mut().unwrap();
        cni.conf_dir_missing = false;
        cni.conf_dir_error = Some("Permission denied (os error 13)".into());
        assert_eq!(check(&fx)[0].found, "Permission denied (os error 13)");
    }

    #[test]
    fn end_to_end_over_a_real_dir_after_a_runtime_switch() {
        let t = TempDir::new("bindir");
        let (net, opt, etc) = (t.dir("net.d"), t.dir("opt"), t.dir("etc"));
        // Unusual names, so the machine's real CNI dirs cannot interfere.
        write(
            &net.join("10-calico.conflist"),
            r#"{"name":"k8s-pod-network","plugins":[{"type":"cpt-calico","ipam":{"type":"cpt-ipam"}},{"type":"cpt-us"}]}"#,
            0o644,
        );
        write(&etc.join("cpt-calico"), "#!/bin/sh\nexit 0\n", 0o755);
        write(&etc.join("cpt-ipam"), "#!/bin/sh\nexit 0\n", 0o755);
        write(&opt.join("cpt-us"), "#!/bin/sh\nexit 0\n", 0o755);
        let q = CniFilesQuery {
            conf_dir: net,
            network_name: "k8s-pod-network".into(),
            our_type: "cpt-us".into(),
            cni_path: vec![opt.clone()],
            search_dirs: vec![etc.clone()],
            main_type: String::new(),
        };
        let f = check(&NodeFacts {
            cni: Some(gather(&q)),
            ..NodeFacts::default()
        });
        assert_eq!(f.len(), 2, "{f:#?}");
        let real: PathBuf = etc.join("cpt-ipam");
        assert!(f[1].found.contains(&real.display().to_string()));
        assert!(f[1].remedy.contains(&format!(
            "ln -s {} {}",
            real.display(),
            opt.join("cpt-ipam").display()
        )));
    }
}
