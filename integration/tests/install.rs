//! `calico-preflight install` / `uninstall` over temp dirs laid out like a node's
//! /opt/cni/bin and /etc/cni/net.d (never the machine's own), with Calico's real default
//! conflist as the starting point.

use calico_preflight_integration::bin;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const OURS: &str = "calico-preflight";

/// A temp dir with `bin/` and `net.d/`, removed on drop.
struct Node {
    root: PathBuf,
}

static N: AtomicU32 = AtomicU32::new(0);

impl Node {
    fn new() -> Node {
        let root = std::env::temp_dir().join(format!(
            "cp-install-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("bin")).unwrap();
        fs::create_dir_all(root.join("net.d")).unwrap();
        Node { root }
    }
    fn bin(&self) -> PathBuf {
        self.root.join("bin")
    }
    fn conf(&self) -> PathBuf {
        self.root.join("net.d")
    }
    fn conf_file(&self, name: &str) -> PathBuf {
        self.conf().join(name)
    }
    /// Copies a fixture into net.d under `name`.
    fn with(self, fixture_name: &str, name: &str) -> Node {
        fs::write(self.conf_file(name), fixture(fixture_name)).unwrap();
        self
    }
    fn read(&self, name: &str) -> Vec<u8> {
        fs::read(self.conf_file(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }
    fn json(&self, name: &str) -> Value {
        serde_json::from_slice(&self.read(name)).unwrap()
    }
    fn conf_names(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.conf())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }
    /// Runs `install`/`uninstall` with explicit dirs plus `extra`.
    fn run(&self, cmd: &str, extra: &[&str]) -> Run {
        let mut args = vec![
            cmd.to_string(),
            "--cni-bin-dir".into(),
            self.bin().display().to_string(),
            "--cni-conf-dir".into(),
            self.conf().display().to_string(),
        ];
        // Most tests here are about file handling and were written against one entry after
        // calico; the default (both) is tested on its own (`the_default_is_both_...`).
        if cmd == "install" && !extra.iter().any(|a| a.starts_with("--position")) {
            args.extend(["--position".to_string(), "after-calico".into()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        run(&bin(OURS), &args)
    }
    /// `run` without any flag added beyond the dirs.
    fn run_as_is(&self, cmd: &str, extra: &[&str]) -> Run {
        let mut args = vec![
            cmd.to_string(),
            "--cni-bin-dir".into(),
            self.bin().display().to_string(),
            "--cni-conf-dir".into(),
            self.conf().display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        run(&bin(OURS), &args)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

fn fixture(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/install")
        .join(name);
    fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

#[derive(Debug)]
struct Run {
    status: i32,
    stdout: String,
    stderr: String,
}

fn run(exe: &Path, args: &[String]) -> Run {
    let out = Command::new(exe)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", exe.display()));
    Run {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Run {
    fn ok(self) -> Run {
        assert_eq!(self.status, 0, "{self:#?}");
        self
    }
    fn failed(self) -> Run {
        assert_eq!(self.status, 1, "{self:#?}");
        self
    }
    /// EX_USAGE: refused while reading the command line, before anything was looked at.
    fn usage_error(self) -> Run {
        assert_eq!(self.status, 64, "{self:#?}");
        self
    }
}

fn types(v: &Value) -> Vec<String> {
    v["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["type"].as_str().unwrap().to_string())
        .collect()
}

/// `v` without our entries: what uninstall must give back.
fn without_ours(v: &Value) -> Value {
    let mut v = v.clone();
    v["plugins"]
        .as_array_mut()
        .unwrap()
        .retain(|p| p["type"] != OURS);
    v
}

fn inode(p: &Path) -> u64 {
    fs::metadata(p).unwrap().ino()
}

#[test]
fn calico_default_conflist_install_is_idempotent_and_uninstall_restores_it() {
    let node = Node::new().with("10-calico.conflist", "10-calico.conflist");
    let file = node.conf_file("10-calico.conflist");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
    let original = fixture_json("10-calico.conflist");

    let first = node.run("install", &[]).ok();
    assert!(first.stdout.contains("installed "), "{first:#?}");
    assert!(
        first.stdout.contains(
            "calico, calico-preflight, portmap, bandwidth (was: calico, portmap, bandwidth)"
        ),
        "{first:#?}"
    );
    let installed = node.json("10-calico.conflist");
    assert_eq!(types(&installed), ["calico", OURS, "portmap", "bandwidth"]);
    assert_eq!(installed["plugins"][1], json!({"type": OURS}));
    assert_eq!(without_ours(&installed), original);
    // Key order of the untouched parts survives (preserve_order).
    let keys: Vec<_> = installed["plugins"][0]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        keys,
        [
            "type",
            "log_level",
            "log_file_path",
            "datastore_type",
            "nodename",
            "mtu",
            "ipam",
            "policy",
            "kubernetes"
        ]
    );
    let bytes = node.read("10-calico.conflist");
    assert!(bytes.starts_with(b"{\n  \"name\": \"k8s-pod-network\",\n"));
    assert!(bytes.ends_with(b"}\n"));
    let meta = fs::metadata(&file).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o640, "the file mode is kept");
    let binary = node.bin().join(OURS);
    assert_eq!(fs::read(&binary).unwrap(), fs::read(bin(OURS)).unwrap());
    assert_eq!(fs::metadata(&binary).unwrap().mode() & 0o7777, 0o755);
    assert_eq!(
        fs::read_dir(node.conf()).unwrap().count(),
        1,
        "no temp file is left behind"
    );

    // Second run: not one byte changes, and nothing is even rewritten.
    let (conf_ino, bin_ino) = (inode(&file), inode(&binary));
    let second = node.run("install", &[]).ok();
    assert!(second.stdout.contains("already up to date"), "{second:#?}");
    assert!(!second.stdout.contains("wrote"), "{second:#?}");
    assert_eq!(node.read("10-calico.conflist"), bytes);
    assert_eq!((inode(&file), inode(&binary)), (conf_ino, bin_ino));

    let un = node.run("uninstall", &[]).ok();
    assert!(
        un.stdout.contains("removed 1 calico-preflight entry"),
        "{un:#?}"
    );
    assert_eq!(node.json("10-calico.conflist"), original);
    assert!(binary.exists(), "the binary stays without --remove-binary");
    let un = node.run("uninstall", &["--remove-binary"]).ok();
    assert!(un.stdout.contains("no conflist"), "{un:#?}");
    assert!(!binary.exists());
    assert_eq!(node.json("10-calico.conflist"), original);
}

/// install's default: preflight first (the node checks before Calico runs) and after calico
/// (the pod checks) with `"nodeChecks": false` there, an operator's own setting kept; moving
/// back to after-calico alone runs the node checks there again.
#[test]
fn the_default_is_both_with_node_checks_off_after_calico() {
    let node = Node::new().with("10-calico.conflist", "10-calico.conflist");
    let r = node.run_as_is("install", &[]).ok();
    assert!(
        r.stdout.contains(
            "calico-preflight, calico, calico-preflight, portmap, bandwidth (was: calico, portmap, bandwidth)"
        ),
        "{r:#?}"
    );
    let v = node.json("10-calico.conflist");
    assert_eq!(v["plugins"][0], json!({"type": OURS}));
    assert_eq!(v["plugins"][2], json!({"type": OURS, "nodeChecks": false}));
    let bytes = node.read("10-calico.conflist");
    node.run_as_is("install", &[]).ok();
    assert_eq!(node.read("10-calico.conflist"), bytes, "idempotent");
    node.run_as_is("install", &["--position", "after-calico"])
        .ok();
    let v = node.json("10-calico.conflist");
    assert_eq!(types(&v), ["calico", OURS, "portmap", "bandwidth"]);
    assert_eq!(v["plugins"][1], json!({"type": OURS}), "{v}");
    node.run_as_is("install", &["--entry", r#"{"nodeChecks": true}"#])
        .ok();
    let v = node.json("10-calico.conflist");
    assert_eq!(v["plugins"][2]["nodeChecks"], true, "{v}");
}

#[test]
fn positions_first_and_both_and_moving_between_them() {
    let node = Node::new().with("10-calico.conflist", "10-calico.conflist");
    let original = fixture_json("10-calico.conflist");
    node.run("install", &["--position", "first"]).ok();
    assert_eq!(
        types(&node.json("10-calico.conflist")),
        [OURS, "calico", "portmap", "bandwidth"]
    );
    node.run("install", &["--position=both"]).ok();
    let both = node.read("10-calico.conflist");
    assert_eq!(
        types(&node.json("10-calico.conflist")),
        [OURS, "calico", OURS, "portmap", "bandwidth"]
    );
    node.run("install", &["--position", "both"]).ok();
    assert_eq!(
        node.read("10-calico.conflist"),
        both,
        "idempotent with both"
    );
    node.run("install", &[]).ok();
    assert_eq!(
        types(&node.json("10-calico.conflist")),
        ["calico", OURS, "portmap", "bandwidth"]
    );
    node.run("install", &["--position", "both"]).ok();
    let un = node.run("uninstall", &[]).ok();
    assert!(
        un.stdout.contains("removed 2 calico-preflight entries"),
        "{un:#?}"
    );
    assert_eq!(node.json("10-calico.conflist"), original);
}

#[test]
fn dry_run_writes_nothing_and_prints_the_result() {
    let node = Node::new().with("10-calico.conflist", "10-calico.conflist");
    let r = node
        .run("install", &["--dry-run", "--position", "both"])
        .ok();
    assert_eq!(
        node.read("10-calico.conflist"),
        fixture("10-calico.conflist")
    );
    assert!(!node.bin().join(OURS).exists());
    let printed: Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("stdout is only the conflist: {e}: {r:#?}"));
    assert_eq!(
        types(&printed),
        [OURS, "calico", OURS, "portmap", "bandwidth"]
    );
    assert!(r.stderr.contains("would install"), "{r:#?}");
    assert!(r.stderr.contains("would write"), "{r:#?}");

    node.run("install", &[]).ok();
    let installed = node.read("10-calico.conflist");
    let r = node
        .run("uninstall", &["--dry-run", "--remove-binary"])
        .ok();
    assert_eq!(node.read("10-calico.conflist"), installed);
    assert!(node.bin().join(OURS).exists());
    let printed: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(printed, fixture_json("10-calico.conflist"));
}

#[test]
fn already_installed_entry_is_moved_and_kept_unless_entry_is_given() {
    let node = Node::new().with("installed.conflist", "10-calico.conflist");
    let tuned = fixture_json("installed.conflist")["plugins"][3].clone();
    node.run("install", &[]).ok();
    let v = node.json("10-calico.conflist");
    assert_eq!(types(&v), ["calico", OURS, "portmap", "bandwidth"]);
    assert_eq!(v["plugins"][1], tuned, "the operator's tuning is kept");

    let r = node
        .run(
            "install",
            &[
                "--entry",
                r#"{"mode": "enforce", "type": "other", "timeoutMs": 500}"#,
            ],
        )
        .ok();
    assert!(r.stdout.contains("wrote"), "{r:#?}");
    let v = node.json("10-calico.conflist");
    assert_eq!(
        v["plugins"][1],
        json!({"type": OURS, "mode": "enforce", "timeoutMs": 500})
    );
    assert_eq!(types(&v).len(), 4);
}

#[test]
fn a_bad_entry_is_refused_before_it_can_fail_pods() {
    let node = Node::new().with("10-calico.conflist", "10-calico.conflist");
    let r = node
        .run("install", &["--entry", r#"{"mode": "loud"}"#])
        .usage_error();
    assert!(r.stderr.contains("--entry"), "{r:#?}");
    assert!(r.stderr.contains("mode"), "{r:#?}");
    assert!(r.stderr.contains("to fix:"), "{r:#?}");
    assert_eq!(
        node.read("10-calico.conflist"),
        fixture("10-calico.conflist")
    );
    assert!(!node.bin().join(OURS).exists());
}

#[test]
fn calico_alone_and_operator_chains() {
    let node = Node::new()
        .with("calico-only.conflist", "10-calico.conflist")
        .with("bandwidth-portmap.conflist", "20-other-calico.conflist");
    node.run("install", &[]).ok();
    assert_eq!(types(&node.json("10-calico.conflist")), ["calico", OURS]);
    // Only the first calico file (the one the runtime would read) is edited.
    assert_eq!(
        node.read("20-other-calico.conflist"),
        fixture("bandwidth-portmap.conflist")
    );

    let node = Node::new().with("bandwidth-portmap.conflist", "10-calico.conflist");
    node.run("install", &[]).ok();
    let v = node.json("10-calico.conflist");
    assert_eq!(types(&v), ["calico", OURS, "bandwidth", "portmap"]);
    assert_eq!(v["cniVersion"], "1.0.0");
    node.run("uninstall", &[]).ok();
    assert_eq!(
        node.json("10-calico.conflist"),
        fixture_json("bandwidth-portmap.conflist")
    );
}

#[test]
fn malformed_file_is_refused_naming_it_and_nothing_changes() {
    let node = Node::new().with("malformed.conflist", "10-calico.conflist");
    let r = node.run("install", &[]).failed();
    let path = node.conf_file("10-calico.conflist").display().to_string();
    assert!(r.stderr.contains(&format!("cannot parse {path}")), "{r:#?}");
    assert!(
        r.stderr.contains("line 10"),
        "the JSON error is shown: {r:#?}"
    );
    assert!(r.stderr.contains("nothing was changed"), "{r:#?}");
    assert_eq!(
        node.read("10-calico.conflist"),
        fixture("malformed.conflist")
    );
    assert!(
        !node.bin().join(OURS).exists(),
        "a refused conf dir leaves the bin dir alone too"
    );

    // A broken file elsewhere in the dir also stops install (containerd refuses it too)...
    let node = Node::new()
        .with("10-calico.conflist", "10-calico.conflist")
        .with("malformed.conflist", "99-broken.conf");
    let r = node.run("install", &[]).failed();
    assert!(r.stderr.contains("99-broken.conf"), "{r:#?}");
    assert_eq!(
        node.read("10-calico.conflist"),
        fixture("10-calico.conflist")
    );
    // ...but not uninstall, which cleans what it can read and then reports the rest.
    fs::remove_file(node.conf_file("99-broken.conf")).unwrap();
    node.run("install", &[]).ok();
    fs::write(
        node.conf_file("99-broken.conf"),
        fixture("malformed.conflist"),
    )
    .unwrap();
    let r = node.run("uninstall", &[]).failed();
    assert!(r.stderr.contains("99-broken.conf"), "{r:#?}");
    assert_eq!(
        node.json("10-calico.conflist"),
        fixture_json("10-calico.conflist")
    );
}

#[test]
fn single_plugin_conf_becomes_a_conflist() {
    let node = Node::new().with("10-calico.conf", "10-calico.conf");
    let r = node.run("install", &[]).ok();
    assert!(r.stdout.contains("single-plugin conf"), "{r:#?}");
    assert!(r.stdout.contains("10-calico.conflist"), "{r:#?}");
    assert_eq!(node.conf_names(), ["10-calico.conflist"]);
    let mut plugin = fixture_json("10-calico.conf");
    let obj = plugin.as_object_mut().unwrap();
    obj.remove("name");
    obj.remove("cniVersion");
    assert_eq!(
        node.json("10-calico.conflist"),
        json!({"name": "k8s-pod-network", "cniVersion": "0.3.1",
               "plugins": [plugin, {"type": OURS}]})
    );
    let again = node.read("10-calico.conflist");
    node.run("install", &[]).ok();
    assert_eq!(node.read("10-calico.conflist"), again);

    // A conflist already holding that name is never overwritten.
    let node = Node::new()
        .with("10-calico.conf", "10-calico.conf")
        .with("05-bridge.conflist", "10-calico.conflist");
    let r = node.run("install", &[]).failed();
    assert!(r.stderr.contains("already exists"), "{r:#?}");
    assert_eq!(node.read("10-calico.conf"), fixture("10-calico.conf"));
}

#[test]
fn another_network_sorting_first_is_left_alone_and_reported() {
    let node = Node::new()
        .with("05-bridge.conflist", "05-bridge.conflist")
        .with("10-calico.conflist", "10-calico.conflist");
    let r = node.run("install", &[]).ok();
    assert!(
        r.stdout
            .contains("warning: 05-bridge.conflist sorts before"),
        "{r:#?}"
    );
    assert_eq!(
        node.read("05-bridge.conflist"),
        fixture("05-bridge.conflist")
    );
    assert_eq!(
        types(&node.json("10-calico.conflist")),
        ["calico", OURS, "portmap", "bandwidth"]
    );
}

#[test]
fn no_calico_and_missing_dirs_say_what_to_do() {
    let node = Node::new().with("05-bridge.conflist", "05-bridge.conflist");
    let r = node.run("install", &[]).failed();
    assert!(r.stderr.contains("\"type\": \"calico\""), "{r:#?}");
    assert!(r.stderr.contains("looked at 05-bridge.conflist"), "{r:#?}");
    assert!(r.stderr.contains("to fix: install Calico first"), "{r:#?}");

    let node = Node::new().with("10-calico.conflist", "10-calico.conflist");
    let missing = node.root.join("no-such-bin");
    let r = run(
        &bin(OURS),
        &[
            "install".into(),
            "--position".into(),
            "after-calico".into(),
            "--cni-bin-dir".into(),
            missing.display().to_string(),
            "--cni-conf-dir".into(),
            node.conf().display().to_string(),
        ],
    )
    .failed();
    assert!(r.stderr.contains("does not exist"), "{r:#?}");
    assert!(r.stderr.contains(&missing.display().to_string()), "{r:#?}");
    assert_eq!(
        node.read("10-calico.conflist"),
        fixture("10-calico.conflist")
    );
}

#[test]
fn help_and_usage_errors() {
    for cmd in ["install", "uninstall"] {
        let r = run(&bin(OURS), &[cmd.into(), "--help".into()]).ok();
        assert!(
            r.stdout.contains(&format!("calico-preflight {cmd}")),
            "{r:#?}"
        );
        assert!(r.stdout.contains("--cni-conf-dir"), "{r:#?}");
        let r = run(&bin(OURS), &[cmd.into(), "--nope".into()]).usage_error();
        assert!(r.stderr.contains("unknown option \"--nope\""), "{r:#?}");
    }
}

/// Writes a runtime config fixture with the node's dirs filled in.
fn runtime_config(node: &Node, fixture_name: &str, dest: &Path) {
    let text = String::from_utf8(fixture(fixture_name))
        .unwrap()
        .replace("@BIN_DIR2@", &node.root.join("bin2").display().to_string())
        .replace("@BIN_DIR@", &node.bin().display().to_string())
        .replace("@CONF_DIR@", &node.conf().display().to_string());
    fs::write(dest, text).unwrap();
}

#[test]
fn dirs_come_from_containerd_config_unless_flags_say_otherwise() {
    let node = Node::new().with("10-calico.conflist", "10-calico.conflist");
    let cfg = node.root.join("config.toml");
    runtime_config(&node, "containerd-config.toml", &cfg);
    // An empty drop-in dir: no CRI-O config (and the machine's /etc/crio is not read).
    let no_crio = node.root.join("no-crio.d");
    fs::create_dir(&no_crio).unwrap();
    let r = run(
        &bin(OURS),
        &[
            "install".into(),
            "--position".into(),
            "after-calico".into(),
            "--containerd-config".into(),
            cfg.display().to_string(),
            "--crio-config".into(),
            no_crio.display().to_string(),
        ],
    )
    .ok();
    let want = format!(
        "bin dir {} (from {} plugins.\"io.containerd.grpc.v1.cri\".cni.bin_dir)",
        node.bin().display(),
        cfg.display()
    );
    assert!(r.stdout.contains(&want), "{want}\n{r:#?}");
    assert!(r.stdout.contains("cni.conf_dir)"), "{r:#?}");
    assert!(node.bin().join(OURS).exists());
    assert_eq!(types(&node.json("10-calico.conflist"))[1], OURS);

    // Explicit flags win over the config.
    let other = Node::new().with("10-calico.conflist", "10-calico.conflist");
    let r = run(
        &bin(OURS),
        &[
            "uninstall".into(),
            "--containerd-config".into(),
            cfg.display().to_string(),
            "--cni-conf-dir".into(),
            other.conf().display().to_string(),
        ],
    )
    .ok();
    assert!(r.stdout.contains("(from --cni-conf-dir)"), "{r:#?}");
    assert_eq!(
        types(&node.json("10-calico.conflist"))[1],
        OURS,
        "untouched"
    );

    // An unreadable config is an error naming the line, not a guess.
    fs::write(
        &cfg,
        "[plugins.\"io.containerd.grpc.v1.cri\".cni\nbin_dir = 1\n",
    )
    .unwrap();
    let r = run(
        &bin(OURS),
        &[
            "install".into(),
            "--position".into(),
            "after-calico".into(),
            "--containerd-config".into(),
            cfg.display().to_string(),
        ],
    )
    .failed();
    assert!(r.stderr.contains("line 1"), "{r:#?}");
}

#[test]
fn dirs_come_from_crio_config_and_dropins() {
    let node = Node::new().with("10-calico.conflist", "10-calico.conflist");
    fs::create_dir(node.root.join("bin2")).unwrap();
    let crio_d = node.root.join("crio.conf.d");
    fs::create_dir(&crio_d).unwrap();
    runtime_config(&node, "crio.conf", &crio_d.join("00-main.conf"));
    runtime_config(&node, "crio-dropin.conf", &crio_d.join("10-cni.conf"));
    let r = run(
        &bin(OURS),
        &[
            "install".into(),
            "--position".into(),
            "after-calico".into(),
            "--containerd-config".into(),
            node.root.join("absent").display().to_string(),
            "--crio-config".into(),
            crio_d.display().to_string(),
        ],
    );
    // An explicitly named containerd config that does not exist is an error...
    let r = r.failed();
    assert!(r.stderr.contains("containerd's config"), "{r:#?}");
    // ...`none` skips it (and keeps the machine's /etc/containerd out of the test).
    let r = run(
        &bin(OURS),
        &[
            "install".into(),
            "--position".into(),
            "after-calico".into(),
            "--containerd-config".into(),
            "none".into(),
            "--crio-config".into(),
            crio_d.display().to_string(),
        ],
    )
    .ok();
    // The drop-in's plugin_dirs override the main file's; every one gets the binary.
    for d in [node.root.join("bin2"), node.bin()] {
        let want = format!(
            "bin dir {} (from {} crio.network.plugin_dirs)",
            d.display(),
            crio_d.join("10-cni.conf").display()
        );
        assert!(r.stdout.contains(&want), "{want}\n{r:#?}");
        assert!(d.join(OURS).exists(), "{r:#?}");
    }
    let want = format!(
        "conf dir {}/ (from {} crio.network.network_dir)",
        node.conf().display(),
        crio_d.join("00-main.conf").display()
    );
    assert!(r.stdout.contains(&want), "{want}\n{r:#?}");
    assert_eq!(types(&node.json("10-calico.conflist"))[1], OURS);
}

#[test]
fn watch_puts_the_entry_back_after_calico_rewrites_the_conflist() {
    let node = Node::new().with("10-calico.conflist", "10-calico.conflist");
    let child = Command::new(bin(OURS))
        .args([
            "install",
            "--position",
            "after-calico",
            "--watch",
            "--interval",
            "0.1",
            "--cni-bin-dir",
            &node.bin().display().to_string(),
            "--cni-conf-dir",
            &node.conf().display().to_string(),
            "--entry",
            r#"{"mode": "warn"}"#,
        ])
        .env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let has_ours = |node: &Node| {
        serde_json::from_slice::<Value>(&node.read("10-calico.conflist"))
            .map(|v| types(&v) == ["calico", OURS, "portmap", "bandwidth"])
            .unwrap_or(false)
    };
    let wait_for = |what: &str, f: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for("the first install", &|| has_ours(&node));
    for round in 0..3 {
        // What Calico's install-cni does on a restart: write its own conflist again.
        let tmp = node.conf().join(format!(".calico-{round}.tmp"));
        fs::write(&tmp, fixture("10-calico.conflist")).unwrap();
        fs::rename(&tmp, node.conf_file("10-calico.conflist")).unwrap();
        wait_for("the entry to come back", &|| has_ours(&node));
        assert_eq!(
            node.json("10-calico.conflist")["plugins"][1]["mode"],
            "warn"
        );
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("stopped watching"), "{stdout}");
    assert!(stdout.matches("wrote ").count() >= 4, "{stdout}");
}

#[test]
fn watch_waits_for_calico_and_stops_after_n_checks() {
    let node = Node::new().with("05-bridge.conflist", "05-bridge.conflist");
    let conf = node.conf();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        fs::write(
            conf.join("10-calico.conflist"),
            fixture("10-calico.conflist"),
        )
        .unwrap();
    });
    let r = node
        .run(
            "install",
            &["--watch", "--interval", "0.1", "--watch-iterations", "15"],
        )
        .ok();
    writer.join().unwrap();
    assert!(r.stderr.contains("will retry"), "{r:#?}");
    assert!(r.stdout.contains("recovered"), "{r:#?}");
    assert_eq!(types(&node.json("10-calico.conflist"))[1], OURS);
}

/// The point of temp file + rename: while install replaces the binary again and again, a pod
/// start exec'ing it never sees ETXTBSY, ENOEXEC or a half-written file.
#[test]
fn binary_replaced_while_being_executed() {
    let node = Node::new().with("10-calico.conflist", "10-calico.conflist");
    // Two different source binaries: the real one, and the same with bytes appended (the ELF
    // loader ignores them), so every install really replaces the target.
    let a = node.root.join("a");
    let b = node.root.join("b");
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    let bytes = fs::read(bin(OURS)).unwrap();
    let mut other = bytes.clone();
    other.extend_from_slice(b"\0calico-preflight test padding\0");
    let src = [a.join(OURS), b.join(OURS)];
    fs::write(&src[0], &bytes).unwrap();
    fs::write(&src[1], &other).unwrap();
    for s in &src {
        fs::set_permissions(s, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = vec![
            "install".into(),
            "--position".into(),
            "after-calico".into(),
            "--cni-bin-dir".into(),
            node.bin().display().to_string(),
            "--cni-conf-dir".into(),
            node.conf().display().to_string(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    run(&src[0], &args(&[])).ok();
    let target = node.bin().join(OURS);

    // All writes of this process are done before the exec'ing thread starts: a writable fd
    // inherited across a concurrent fork would cause ETXTBSY of its own.
    let stop = Arc::new(AtomicBool::new(false));
    let execer = {
        let stop = stop.clone();
        let target = target.clone();
        std::thread::spawn(move || {
            let (mut ok, mut failures) = (0u32, Vec::new());
            while !stop.load(Ordering::SeqCst) {
                match Command::new(&target).arg("--version").env_clear().output() {
                    Ok(o)
                        if o.status.success()
                            && String::from_utf8_lossy(&o.stdout)
                                .starts_with("calico-preflight ") =>
                    {
                        ok += 1
                    }
                    Ok(o) => failures.push(format!("{o:?}")),
                    Err(e) => {
                        failures.push(format!("exec failed: {e} (errno {:?})", e.raw_os_error()))
                    }
                }
            }
            (ok, failures)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut installs = 0;
    while installs < 24 && Instant::now() < deadline {
        let r = run(&src[(installs + 1) % 2], &args(&[])).ok();
        assert!(r.stdout.contains("installed "), "{r:#?}");
        installs += 1;
    }
    stop.store(true, Ordering::SeqCst);
    let (ok, failures) = execer.join().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed execs: {failures:#?}",
        failures.len()
    );
    assert!(installs >= 4, "only {installs} installs ran");
    assert!(ok > 0, "the binary was never exec'd");
    assert_eq!(
        &fs::read(&target).unwrap(),
        if installs % 2 == 1 { &other } else { &bytes }
    );
    eprintln!("{installs} replacements, {ok} successful execs in between");
}

// ---- issue 9: install refuses what would break pods, keeps what it rewrites, never loses
// ---- Calico's update.

/// The fixture conflist with `f` applied, as Calico would write it.
fn calico_with(f: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v = fixture_json("10-calico.conflist");
    f(&mut v);
    let mut b = serde_json::to_vec_pretty(&v).unwrap();
    b.push(b'\n');
    b
}

/// Every file of the conf dir with its bytes: what "nothing was written" compares.
fn snapshot(node: &Node) -> Vec<(String, Vec<u8>)> {
    node.conf_names()
        .into_iter()
        .map(|n| {
            let b = fs::read(node.conf_file(&n)).unwrap_or_default();
            (n, b)
        })
        .collect()
}

type Edit = Box<dyn Fn(&mut Value)>;

#[test]
fn unsupported_cni_versions_are_refused_with_nothing_written() {
    let cases: Vec<(&str, Edit)> = vec![
        ("0.1.0", Box::new(|v| v["cniVersion"] = json!("0.1.0"))),
        ("0.2.0", Box::new(|v| v["cniVersion"] = json!("0.2.0"))),
        (
            "missing",
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("cniVersion");
            }),
        ),
        (
            "garbage",
            Box::new(|v| v["cniVersion"] = json!("v1-latest")),
        ),
        ("a number", Box::new(|v| v["cniVersion"] = json!(1.0))),
        ("too new", Box::new(|v| v["cniVersion"] = json!("1.2.0"))),
        (
            "cniVersions picks 0.2.0 on libcni 1.2+",
            Box::new(|v| {
                v["cniVersion"] = json!("0.1.0");
                v["cniVersions"] = json!(["0.2.0"]);
            }),
        ),
    ];
    for (what, edit) in &cases {
        let node = Node::new();
        fs::write(node.conf_file("10-calico.conflist"), calico_with(edit)).unwrap();
        let before = snapshot(&node);
        for extra in [&[][..], &["--dry-run"][..]] {
            let r = node.run("install", extra).failed();
            assert!(r.stderr.contains("cniVersion"), "{what}: {r:#?}");
            assert!(
                r.stderr.contains("every pod start") || r.stderr.contains("not a string"),
                "{what}: {r:#?}"
            );
            assert!(r.stderr.contains("nothing was changed"), "{what}: {r:#?}");
            assert_eq!(snapshot(&node), before, "{what}: the conf dir was changed");
            assert!(!node.bin().join(OURS).exists(), "{what}: binary installed");
        }
    }
    // A single-plugin conf of an old version is refused too, not converted.
    let node = Node::new();
    let mut conf = fixture_json("10-calico.conf");
    conf["cniVersion"] = json!("0.2.0");
    fs::write(node.conf_file("10-calico.conf"), conf.to_string()).unwrap();
    let r = node.run("install", &[]).failed();
    assert!(r.stderr.contains("\"0.2.0\""), "{r:#?}");
    assert_eq!(node.conf_names(), ["10-calico.conf"]);
    // Supported versions, including the one libcni 1.2+ picks from cniVersions, install.
    let node = Node::new();
    fs::write(
        node.conf_file("10-calico.conflist"),
        calico_with(|v| v["cniVersions"] = json!(["0.3.1", "1.0.0", "9.9.9"])),
    )
    .unwrap();
    node.run("install", &[]).ok();
}

#[test]
fn a_bad_entry_in_the_file_or_given_is_refused() {
    let node = Node::new();
    fs::write(
        node.conf_file("10-calico.conflist"),
        calico_with(|v| {
            v["plugins"]
                .as_array_mut()
                .unwrap()
                .insert(1, json!({"type": OURS, "mode": "loud"}))
        }),
    )
    .unwrap();
    let before = snapshot(&node);
    let r = node.run("install", &[]).failed();
    assert!(r.stderr.contains("plugins[1]"), "{r:#?}");
    assert!(r.stderr.contains("mode"), "{r:#?}");
    assert!(r.stderr.contains("nothing was changed"), "{r:#?}");
    assert!(
        r.stderr.contains("--entry"),
        "the remedy names the way out: {r:#?}"
    );
    assert_eq!(snapshot(&node), before);
    assert!(!node.bin().join(OURS).exists());
    // The remedy works: a valid --entry replaces the bad one.
    node.run("install", &["--entry", r#"{"mode": "warn"}"#])
        .ok();
    assert_eq!(
        node.json("10-calico.conflist")["plugins"][1],
        json!({"type": OURS, "mode": "warn"})
    );

    // Keys the runtime injects are refused in --entry: a prevResult in an entry placed first
    // would reach the plugin as if Calico had sent it.
    for (key, value) in [
        (
            "prevResult",
            json!({"cniVersion": "1.0.0", "interfaces": []}),
        ),
        ("cniVersion", json!("1.0.0")),
        ("name", json!("k8s-pod-network")),
        ("runtimeConfig", json!({})),
    ] {
        let node = Node::new().with("10-calico.conflist", "10-calico.conflist");
        let entry = json!({ key: value }).to_string();
        let r = node
            .run("install", &["--position", "first", "--entry", &entry])
            .failed();
        assert!(r.stderr.contains(key), "{key}: {r:#?}");
        assert!(r.stderr.contains("nothing was changed"), "{key}: {r:#?}");
        assert_eq!(
            node.read("10-calico.conflist"),
            fixture("10-calico.conflist")
        );
        assert!(!node.bin().join(OURS).exists(), "{key}");
    }
}

#[test]
fn uninstall_never_writes_an_empty_chain() {
    let node = Node::new().with("10-calico.conflist", "10-calico.conflist");
    node.run("install", &[]).ok();
    let only_ours = serde_json::to_vec_pretty(&json!({
        "cniVersion": "1.0.0", "name": "checks-only", "plugins": [{"type": OURS}]
    }))
    .unwrap();
    fs::write(node.conf_file("20-checks.conflist"), &only_ours).unwrap();
    let single = br#"{"cniVersion": "1.0.0", "name": "single", "type": "calico-preflight"}"#;
    fs::write(node.conf_file("30-single.conf"), single).unwrap();

    let r = node.run("uninstall", &["--remove-binary"]).failed();
    // Calico's file is cleaned...
    assert_eq!(
        node.json("10-calico.conflist"),
        fixture_json("10-calico.conflist")
    );
    // ...the only-ours networks are left exactly as they were, and said so...
    assert_eq!(node.read("20-checks.conflist"), only_ours);
    assert_eq!(node.read("30-single.conf"), single);
    for name in ["20-checks.conflist", "30-single.conf"] {
        let path = node.conf_file(name).display().to_string();
        assert!(
            r.stdout.contains(&format!("left {path} unchanged")),
            "{name}: {r:#?}"
        );
    }
    assert!(r.stderr.contains("remove"), "{r:#?}");
    // ...and the binary they name stays: a chain naming a missing plugin fails every pod.
    assert!(node.bin().join(OURS).exists());
    assert!(r.stdout.contains("kept "), "{r:#?}");
    // Once the operator removed them, uninstall finishes the job.
    fs::remove_file(node.conf_file("20-checks.conflist")).unwrap();
    fs::remove_file(node.conf_file("30-single.conf")).unwrap();
    node.run("uninstall", &["--remove-binary"]).ok();
    assert!(!node.bin().join(OURS).exists());
}

fn set_xattr(p: &Path, name: &str, value: &[u8]) -> std::io::Result<()> {
    let cp = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let cn = std::ffi::CString::new(name).unwrap();
    // SAFETY: NUL-terminated path and name, value buffer of value.len() bytes.
    let r = unsafe {
        libc::setxattr(
            cp.as_ptr(),
            cn.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn get_xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let cp = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let cn = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 4096];
    // SAFETY: NUL-terminated path and name, a writable buffer of buf.len() bytes.
    let n = unsafe { libc::getxattr(cp.as_ptr(), cn.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (n >= 0).then(|| buf[..n as usize].to_vec())
}

#[test]
fn rewrites_keep_mode_owner_and_xattrs() {
    let node = Node::new().with("10-calico.conflist", "10-calico.conflist");
    let file = node.conf_file("10-calico.conflist");
    std::os::unix::fs::chown(&file, Some(4321), Some(8765)).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o604)).unwrap();
    let label = b"system_u:object_r:container_file_t:s0\0";
    set_xattr(&file, "user.calico-test", b"kept").unwrap();
    // security.* needs root and a filesystem that stores it (ext4, xfs, tmpfs do).
    let selinux = set_xattr(&file, "security.selinux", label).is_ok();
    let check = |what: &str| {
        let m = fs::metadata(&file).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o604, "{what}: mode");
        assert_eq!((m.uid(), m.gid()), (4321, 8765), "{what}: owner");
        assert_eq!(
            get_xattr(&file, "user.calico-test").as_deref(),
            Some(&b"kept"[..]),
            "{what}: user xattr"
        );
        if selinux {
            assert_eq!(
                get_xattr(&file, "security.selinux").as_deref(),
                Some(&label[..]),
                "{what}: SELinux label"
            );
        }
    };
    let ino = inode(&file);
    node.run("install", &[]).ok();
    assert_ne!(inode(&file), ino, "a new file replaced the old one");
    assert_eq!(types(&node.json("10-calico.conflist"))[1], OURS);
    check("install");
    node.run("uninstall", &[]).ok();
    assert_eq!(
        node.json("10-calico.conflist"),
        fixture_json("10-calico.conflist")
    );
    check("uninstall");
    assert_eq!(
        node.conf_names(),
        ["10-calico.conflist"],
        "no temp file left"
    );
    if !selinux {
        eprintln!("security.selinux could not be set here: only the user xattr was checked");
    }
}

#[test]
fn symlinked_conflists_are_followed_only_inside_the_conf_dir() {
    // A link out of the conf dir: refused, nothing written on either side.
    let node = Node::new();
    let outside = node.root.join("elsewhere.conflist");
    fs::write(&outside, fixture("10-calico.conflist")).unwrap();
    std::os::unix::fs::symlink(&outside, node.conf_file("10-calico.conflist")).unwrap();
    let r = node.run("install", &[]).failed();
    assert!(r.stderr.contains("outside the conf dir"), "{r:#?}");
    assert!(r.stderr.contains("nothing was changed"), "{r:#?}");
    assert_eq!(fs::read(&outside).unwrap(), fixture("10-calico.conflist"));
    assert!(fs::symlink_metadata(node.conf_file("10-calico.conflist"))
        .unwrap()
        .file_type()
        .is_symlink());

    // A link to a file in a subdir of the conf dir: edited there, the link stays a link.
    let node = Node::new();
    fs::create_dir(node.conf().join("calico")).unwrap();
    let real = node.conf().join("calico/10-calico.conflist");
    fs::write(&real, fixture("10-calico.conflist")).unwrap();
    std::os::unix::fs::symlink(
        "calico/10-calico.conflist",
        node.conf_file("10-calico.conflist"),
    )
    .unwrap();
    node.run("install", &[]).ok();
    assert!(fs::symlink_metadata(node.conf_file("10-calico.conflist"))
        .unwrap()
        .file_type()
        .is_symlink());
    let v: Value = serde_json::from_slice(&fs::read(&real).unwrap()).unwrap();
    assert_eq!(types(&v)[1], OURS);
}

/// `install --watch` on `node` with a long interval: whatever it does within seconds, it
/// does because inotify woke it.
fn spawn_watch(node: &Node, extra: &[&str]) -> std::process::Child {
    let mut args: Vec<String> = vec![
        "install".into(),
        "--position".into(),
        "after-calico".into(),
        "--watch".into(),
        "--interval".into(),
        "3600".into(),
        "--cni-bin-dir".into(),
        node.bin().display().to_string(),
        "--cni-conf-dir".into(),
        node.conf().display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Command::new(bin(OURS))
        .args(&args)
        .env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Stops a watch with SIGTERM; its exit status and output.
fn stop_watch(child: std::process::Child) -> (Option<i32>, String, String) {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Kills the watch if a test fails before stopping it.
struct Reaper(Option<std::process::Child>);
impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_until(what: &str, secs: u64, f: &dyn Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The version counter Calico's (simulated) installer puts in its file, and whether our
/// entry follows calico. None: the file could not be read or parsed.
fn version_and_ours(bytes: &[u8]) -> Option<(u64, bool)> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    let ps = v["plugins"].as_array()?;
    let i = ps.iter().position(|p| p["type"] == "calico")?;
    let version = ps[i]["x_test_version"].as_u64()?;
    Some((version, ps.get(i + 1).is_some_and(|p| p["type"] == OURS)))
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Writer {
    /// Calico's install-cni: a temp file renamed over the conflist.
    Rename,
    /// An installer that truncates and rewrites the file in place.
    Truncate,
}

/// Races `--watch` against a writer putting a new Calico version every 5 ms, with a reader
/// checking that the version it sees never goes back (our rewrite of a stale read replacing
/// Calico's newer file) and that, once the writer stops, our entry converges in on top of
/// the writer's last version.
fn race(writer: Writer) {
    const WRITES: u64 = 400;
    let node = Node::new();
    let conf = node.conf_file("10-calico.conflist");
    let version = |n: u64| calico_with(|v| v["plugins"][0]["x_test_version"] = json!(n));
    fs::write(&conf, version(0)).unwrap();
    let mut reaper = Reaper(Some(spawn_watch(
        &node,
        &["--entry", r#"{"mode": "warn"}"#],
    )));
    wait_until("the first install", 20, &|| {
        fs::read(&conf)
            .ok()
            .and_then(|b| version_and_ours(&b))
            .is_some_and(|(_, ours)| ours)
    });

    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, conf) = (stop.clone(), conf.clone());
        std::thread::spawn(move || {
            let (mut reads, mut torn, mut max) = (0u64, 0u64, 0u64);
            let mut regressions: Vec<(u64, u64)> = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let Ok(bytes) = fs::read(&conf) else {
                    torn += 1;
                    continue;
                };
                reads += 1;
                match version_and_ours(&bytes) {
                    Some((v, _)) if v < max => regressions.push((max, v)),
                    Some((v, _)) => max = v,
                    None => torn += 1,
                }
            }
            (reads, torn, regressions)
        })
    };
    let tmp = node.conf().join(".calico-installer.tmp");
    for n in 1..=WRITES {
        match writer {
            Writer::Rename => {
                fs::write(&tmp, version(n)).unwrap();
                fs::rename(&tmp, &conf).unwrap();
            }
            Writer::Truncate => fs::write(&conf, version(n)).unwrap(),
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // Convergence: the writer's last version, with our entry (and its tuning) on top.
    wait_until("our entry on top of the last version", 20, &|| {
        fs::read(&conf).ok().and_then(|b| version_and_ours(&b)) == Some((WRITES, true))
    });
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::SeqCst);
    let (reads, torn, regressions) = reader.join().unwrap();
    let (status, stdout, stderr) = stop_watch(reaper.0.take().unwrap());
    let rewrites = stdout.matches("wrote ").count();
    let swapped_back = stdout.matches("changed while being rewritten").count();
    eprintln!(
        "{writer:?}: {reads} reads, {torn} unparsable, {rewrites} rewrites by --watch, \
         {swapped_back} passes that met a newer file and planned again, {} regressions",
        regressions.len()
    );
    assert!(
        regressions.is_empty(),
        "{writer:?}: Calico's file went back to an older version {} times (newest seen, then \
         seen): {:?}\n{stdout}\n{stderr}",
        regressions.len(),
        &regressions[..regressions.len().min(20)]
    );
    if writer == Writer::Rename {
        // Every file in place was complete: Calico's by rename, ours by exchange.
        assert_eq!(torn, 0, "{stdout}\n{stderr}");
    }
    assert!(
        rewrites >= 20,
        "--watch rewrote the file only {rewrites} times: no race was run\n{stdout}"
    );
    let v = node.json("10-calico.conflist");
    assert_eq!(v["plugins"][1], json!({"type": OURS, "mode": "warn"}));
    assert_eq!(status, Some(0), "{stdout}\n{stderr}");
    let leftovers: Vec<_> = node
        .conf_names()
        .into_iter()
        .filter(|n| n.contains("calico-preflight"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}

#[test]
fn watch_racing_a_renaming_installer_never_loses_its_update() {
    race(Writer::Rename);
}

#[test]
fn watch_racing_an_in_place_rewriter_never_loses_its_update() {
    race(Writer::Truncate);
}

#[test]
fn an_old_installer_rewriting_the_conf_converges() {
    let node = Node::new().with("10-calico.conf", "10-calico.conf");
    node.run("install", &["--entry", r#"{"mode": "warn"}"#])
        .ok();
    assert_eq!(node.conf_names(), ["10-calico.conflist"]);
    let old_installer = |mtu: u64| {
        let mut c = fixture_json("10-calico.conf");
        c["mtu"] = json!(mtu);
        fs::write(node.conf_file("10-calico.conf"), c.to_string()).unwrap();
    };
    // The runtime now uses the .conf (it sorts first), without our entry.
    old_installer(1400);
    let r = node.run("install", &[]).ok();
    assert!(r.stdout.contains("converted it again"), "{r:#?}");
    assert_eq!(node.conf_names(), ["10-calico.conflist"]);
    let v = node.json("10-calico.conflist");
    assert_eq!(
        v["plugins"][0]["mtu"], 1400,
        "the installer's new version is used"
    );
    assert_eq!(
        v["plugins"][1],
        json!({"type": OURS, "mode": "warn"}),
        "the tuning is kept"
    );

    // The same under --watch, woken by inotify (the interval is an hour).
    let mut reaper = Reaper(Some(spawn_watch(&node, &[])));
    std::thread::sleep(Duration::from_millis(300));
    for mtu in [1300, 1200, 1100] {
        old_installer(mtu);
        wait_until(
            &format!("conversion of the rewritten .conf (mtu {mtu})"),
            20,
            &|| {
                node.conf_names() == ["10-calico.conflist"]
                    && serde_json::from_slice::<Value>(&node.read("10-calico.conflist")).is_ok_and(
                        |v| v["plugins"][0]["mtu"] == mtu && v["plugins"][1]["type"] == OURS,
                    )
            },
        );
    }
    let (status, stdout, stderr) = stop_watch(reaper.0.take().unwrap());
    assert_eq!(status, Some(0), "{stdout}\n{stderr}");
    assert!(!stderr.contains("already exists"), "{stderr}");
}
