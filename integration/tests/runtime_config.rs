//! The runtime's CNI dirs as the runtime reads its config (containerd's versions, imports,
//! merge and bin_dir/bin_dirs; CRI-O's drop-ins), and the one conf-dir reader, through the
//! `install`/`uninstall` commands over temp dirs. The machine's own runtime configs are never
//! read: every run names its configs, or `none`.

use calico_preflight_integration::{bin, sh};
use serde_json::json;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const OURS: &str = "calico-preflight";

/// A temp dir, removed on drop (also when the test fails).
struct Tmp(PathBuf);

impl Tmp {
    fn new(tag: &str) -> Tmp {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "cp-rtcfg-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        Tmp(p)
    }
    fn dir(&self, name: &str) -> PathBuf {
        let d = self.0.join(name);
        fs::create_dir_all(&d).unwrap();
        d
    }
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        if let Some(d) = p.parent() {
            fs::create_dir_all(d).unwrap();
        }
        fs::write(&p, text).unwrap();
        p
    }
    fn s(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[derive(Debug)]
struct Run {
    status: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs the plugin binary with `args`, killed after 20 s (status 124: it hung).
fn run(args: &[&str]) -> Run {
    let started = Instant::now();
    let out = Command::new("timeout")
        .arg("20")
        .arg(bin(OURS))
        .args(args)
        .output()
        .expect("run calico-preflight");
    let r = Run {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_ne!(r.status, 124, "hung: {args:?} {r:#?}");
    assert!(started.elapsed() < Duration::from_secs(20), "{r:#?}");
    r
}

/// The dirs an `uninstall --dry-run --remove-binary` picks with containerd config `cfg`:
/// it prints them with their reasons and needs none of them to exist but the conf dir.
fn picked_with_containerd(t: &Tmp, cfg: &Path) -> Run {
    let conf = t.dir("net.d");
    let r = run(&[
        "uninstall",
        "--dry-run",
        "--remove-binary",
        "--cni-conf-dir",
        &conf.display().to_string(),
        "--containerd-config",
        &cfg.display().to_string(),
        "--crio-config",
        "none",
    ]);
    r
}

fn bin_line(dir: &str, cfg: &Path, key: &str) -> String {
    format!("bin dir {dir} (from {} {key}", cfg.display())
}

#[test]
fn every_containerd_config_version_reads_its_own_table() {
    let t = Tmp::new("versions");
    for (version, table, key) in [
        ("", "plugins.cri.cni", "bin_dir"),
        ("version = 1\n", "plugins.cri.cni", "bin_dir"),
        (
            "version = 2\n",
            "plugins.\"io.containerd.grpc.v1.cri\".cni",
            "bin_dir",
        ),
        (
            "version = 3\n",
            "plugins.\"io.containerd.cri.v1.runtime\".cni",
            "bin_dirs",
        ),
        (
            "version = 4\n",
            "plugins.\"io.containerd.cri.v1.runtime\".cni",
            "bin_dirs",
        ),
    ] {
        let value = if key == "bin_dirs" {
            "['/v/bin']"
        } else {
            "'/v/bin'"
        };
        let cfg = t.file(
            "config.toml",
            &format!("{version}[{table}]\n{key} = {value}\n"),
        );
        let r = picked_with_containerd(&t, &cfg);
        assert_eq!(r.status, 0, "{version}: {r:#?}");
        let want = bin_line("/v/bin", &cfg, &format!("{table}.{key}"));
        assert!(r.stderr.contains(&want), "{version}: {want}\n{r:#?}");
    }
    // A table of another version is not read by containerd: version 2 has no plugins.cri,
    // version 4 migrates nothing from io.containerd.grpc.v1.cri.
    for text in [
        "version = 2\n[plugins.cri.cni]\nbin_dir = '/x'\n",
        "version = 4\n[plugins.\"io.containerd.grpc.v1.cri\".cni]\nbin_dir = '/x'\n",
    ] {
        let cfg = t.file("config.toml", text);
        let r = picked_with_containerd(&t, &cfg);
        assert!(
            r.stderr
                .contains("bin dir /opt/cni/bin (containerd's default"),
            "{text}\n{r:#?}"
        );
        assert!(!r.stderr.contains("/x"), "{text}\n{r:#?}");
    }
    let cfg = t.file("config.toml", "version = 5\n");
    let r = picked_with_containerd(&t, &cfg);
    assert_eq!(r.status, 1, "{r:#?}");
    assert!(
        r.stderr.contains("equal to or less than 4, got 5"),
        "{r:#?}"
    );
}

#[test]
fn imports_with_globs_and_relative_paths_merge_by_key() {
    let t = Tmp::new("imports");
    let main = t.file(
        "etc/containerd/config.toml",
        &format!(
            "version = 3\nimports = ['conf.d/*.toml', '{}']\n\
             [plugins.'io.containerd.cri.v1.runtime'.cni]\nbin_dirs = ['/main/bin']\nconf_dir = '{}'\n",
            t.s("elsewhere/abs.toml"),
            t.s("main-net.d")
        ),
    );
    t.dir("main-net.d");
    // A version-2 drop-in is migrated before the merge, then the later drop-in replaces the
    // value; the main file's conf_dir, a sibling key, stays.
    t.file(
        "etc/containerd/conf.d/10-old.toml",
        "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".cni]\nbin_dir = '/from/10'\n",
    );
    let twenty = t.file(
        "etc/containerd/conf.d/20-new.toml",
        "version = 3\n[plugins.'io.containerd.cri.v1.runtime'.cni]\nbin_dirs = ['/from/20', '/from/20b']\n",
    );
    // An import of an import, and a cycle back to the main file.
    let abs = t.file(
        "elsewhere/abs.toml",
        "version = 3\nimports = ['../etc/containerd/config.toml', 'nested.toml']\n",
    );
    let nested = t.file(
        "elsewhere/nested.toml",
        "version = 3\n[plugins.'io.containerd.cri.v1.runtime'.cni]\nmax_conf_num = 1\n",
    );
    let r = run(&[
        "uninstall",
        "--dry-run",
        "--remove-binary",
        "--containerd-config",
        &main.display().to_string(),
        "--crio-config",
        "none",
    ]);
    assert_eq!(r.status, 0, "{r:#?}");
    let key = "plugins.\"io.containerd.cri.v1.runtime\".cni.bin_dirs";
    for d in ["/from/20", "/from/20b"] {
        assert!(r.stderr.contains(&bin_line(d, &twenty, key)), "{r:#?}");
    }
    assert!(
        !r.stderr.contains("/main/bin") && !r.stderr.contains("/from/10"),
        "{r:#?}"
    );
    assert!(
        r.stderr.contains(&format!(
            "conf dir {} (from {} plugins.\"io.containerd.cri.v1.runtime\".cni.conf_dir)",
            t.s("main-net.d"),
            main.display()
        )),
        "{r:#?}"
    );
    let _ = (abs, nested);
    // A plain import that is missing stops containerd; so it stops install.
    fs::remove_file(t.0.join("elsewhere/nested.toml")).unwrap();
    let r = run(&[
        "install",
        "--dry-run",
        "--containerd-config",
        &main.display().to_string(),
        "--crio-config",
        "none",
    ]);
    assert_eq!(r.status, 1, "{r:#?}");
    assert!(r.stderr.contains("nested.toml"), "{r:#?}");
}

#[test]
fn bin_dir_beside_bin_dirs_is_containerds_choice() {
    let t = Tmp::new("bindirs");
    let table = "version = 3\n[plugins.'io.containerd.cri.v1.runtime'.cni]\n";
    // containerd 2.1+ writes bin_dirs = ['/opt/cni/bin'] as its default: a bin_dir beside it wins.
    let cfg = t.file(
        "config.toml",
        &format!("{table}bin_dirs = ['/opt/cni/bin']\nbin_dir = '/usr/lib/cni'\n"),
    );
    let r = picked_with_containerd(&t, &cfg);
    assert_eq!(r.status, 0, "{r:#?}");
    assert!(
        r.stderr.contains(&bin_line(
            "/usr/lib/cni",
            &cfg,
            "plugins.\"io.containerd.cri.v1.runtime\".cni.bin_dir"
        )),
        "{r:#?}"
    );
    assert!(!r.stderr.contains("bin dir /opt/cni/bin"), "{r:#?}");
    // Anything else beside it: containerd refuses to start; so does install.
    let cfg = t.file(
        "config.toml",
        &format!("{table}bin_dirs = ['/a']\nbin_dir = '/usr/lib/cni'\n"),
    );
    let r = picked_with_containerd(&t, &cfg);
    assert_eq!(r.status, 1, "{r:#?}");
    assert!(
        r.stderr.contains("cannot be set at the same time"),
        "{r:#?}"
    );
    assert!(r.stderr.contains("cni.bin_dir and"), "{r:#?}");
    assert!(r.stderr.contains(&cfg.display().to_string()), "{r:#?}");
}

#[test]
fn a_key_defined_twice_is_refused_naming_file_line_and_key() {
    let t = Tmp::new("dup");
    let cfg = t.file(
        "config.toml",
        "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".cni]\n  bin_dir = \"/a\"\n  conf_dir = \"/etc/cni/net.d\"\n  bin_dir = \"/b\"\n",
    );
    let r = picked_with_containerd(&t, &cfg);
    assert_eq!(r.status, 1, "{r:#?}");
    let want = format!("{} line 5: duplicate key", cfg.display());
    assert!(r.stderr.contains(&want), "{want}\n{r:#?}");
    assert!(r.stderr.contains("bin_dir"), "{r:#?}");
    assert!(!r.all().contains("bin dir /b"), "not last-wins: {r:#?}");
}

#[test]
fn crio_dropins_apply_in_order_and_plugin_dir_is_appended() {
    let t = Tmp::new("crio");
    let d = t.dir("crio.conf.d");
    let main = t.file(
        "crio.conf.d/00-main.conf",
        "[crio.network]\nnetwork_dir = \"/etc/cni/net.d/\"\nplugin_dirs = [\"/opt/cni/bin/\"]\n",
    );
    let ten = t.file(
        "crio.conf.d/10-cni.conf",
        "[crio.network]\nplugin_dirs = [\"/usr/libexec/cni\", \"/first\"]\n",
    );
    let sub = t.file(
        "crio.conf.d/20-sub/x.conf",
        "[crio.network]\nplugin_dir = \"/old-style\"\n",
    );
    let net = t.dir("crio-net.d");
    let last = t.file(
        "crio.conf.d/30-net.conf",
        &format!("[crio.network]\nnetwork_dir = \"{}\"\n", net.display()),
    );
    let r = run(&[
        "uninstall",
        "--dry-run",
        "--remove-binary",
        "--containerd-config",
        "none",
        "--crio-config",
        &d.display().to_string(),
    ]);
    assert_eq!(r.status, 0, "{r:#?}");
    let lines: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("bin dir "))
        .collect();
    assert_eq!(
        lines,
        [
            format!("bin dir /usr/libexec/cni (from {} crio.network.plugin_dirs)", ten.display()),
            format!("bin dir /first (from {} crio.network.plugin_dirs)", ten.display()),
            format!(
                "bin dir /old-style (from {} crio.network.plugin_dir (deprecated, appended to plugin_dirs))",
                sub.display()
            ),
        ],
        "{r:#?}"
    );
    assert!(
        r.stderr.contains(&format!(
            "conf dir {} (from {} crio.network.network_dir)",
            net.display(),
            last.display()
        )),
        "{r:#?}"
    );
    let _ = main;
}

/// A FIFO or a device node named like a CNI config is never opened: install, uninstall and
/// --dry-run return promptly and handle Calico's conflist as usual.
#[test]
fn fifos_and_device_nodes_in_the_conf_dir_do_not_hang_install() {
    let t = Tmp::new("nodes");
    let conf = t.dir("net.d");
    let bin_dir = t.dir("bin");
    let calico = json!({"name": "k8s-pod-network", "cniVersion": "1.0.0", "plugins": [
        {"type": "calico", "ipam": {"type": "calico-ipam"}}, {"type": "portmap"}]});
    fs::write(conf.join("10-calico.conflist"), calico.to_string()).unwrap();
    sh(&["mkfifo", &conf.join("00-fifo.conf").display().to_string()]);
    sh(&["mkfifo", &conf.join("99-x.conflist").display().to_string()]);
    sh(&[
        "mknod",
        &conf.join("01-chr.conf").display().to_string(),
        "c",
        "1",
        "3",
    ]);
    sh(&[
        "mknod",
        &conf.join("02-blk.json").display().to_string(),
        "b",
        "7",
        "0",
    ]);
    let dirs = [
        "--cni-bin-dir",
        &bin_dir.display().to_string(),
        "--cni-conf-dir",
        &conf.display().to_string(),
    ]
    .map(String::from);
    let with = |cmd: &[&str]| {
        let mut a: Vec<&str> = cmd.to_vec();
        a.extend(dirs.iter().map(String::as_str));
        run(&a)
    };
    let r = with(&["install", "--dry-run"]);
    assert_eq!(r.status, 0, "{r:#?}");
    assert!(r.stdout.contains(OURS), "the planned conflist: {r:#?}");
    let r = with(&["install"]);
    assert_eq!(r.status, 0, "{r:#?}");
    let after: serde_json::Value =
        serde_json::from_slice(&fs::read(conf.join("10-calico.conflist")).unwrap()).unwrap();
    // install's default, both: first in the chain and after calico.
    assert_eq!(after["plugins"][0]["type"], OURS, "{after}");
    assert_eq!(after["plugins"][2]["type"], OURS, "{after}");
    let r = with(&["uninstall", "--dry-run"]);
    assert_eq!(r.status, 0, "{r:#?}");
    let r = with(&["uninstall"]);
    assert_eq!(r.status, 0, "{r:#?}");
    // The nodes are still what they were.
    let kind = |n: &str| sh(&["stat", "-c", "%F", &conf.join(n).display().to_string()]);
    assert!(kind("00-fifo.conf").contains("fifo"));
    assert!(kind("01-chr.conf").contains("character special"));
}
