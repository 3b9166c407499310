//! The node's CNI files, checked by the real binary first in the chain: the plugin binaries of
//! our conflist against CNI_PATH (the dockershim -> containerd switch of the field report:
//! Calico installed into kubelet's --cni-bin-dir=/etc/cni/bin, containerd looks in
//! /opt/cni/bin), and another network's conflist sorting before ours. Everything lives in a
//! temp dir and a throw-away namespace; the machine's own /etc/cni is never read.

use calico_preflight_integration::*;
use serde_json::{json, Value};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

const STUB: &str = "#!/bin/sh\nexit 0\n";

/// A node: a namespace that forwards (so host-ip-forward stays quiet) and a temp tree with
/// net.d, the runtime's bin dir (CNI_PATH) and the dir kubelet's --cni-bin-dir pointed at.
struct Node {
    ns: Netns,
    root: PathBuf,
}

impl Node {
    fn new(tag: &str) -> Node {
        let ns = Netns::new(tag);
        ns.sysctl("net.ipv4.ip_forward", "1");
        let root = std::env::temp_dir().join(format!("cp-files-{}", ns.name));
        let _ = std::fs::remove_dir_all(&root);
        for d in ["net.d", "opt-cni-bin", "etc-cni-bin"] {
            std::fs::create_dir_all(root.join(d)).expect("mkdir");
        }
        // calico-node's nodename file, in the temp tree (calico-nodename reads it).
        std::fs::write(root.join("nodename"), "node-1").expect("nodename");
        let node = Node { ns, root };
        node.conflist("10-calico.conflist", "k8s-pod-network");
        node.stub("opt-cni-bin", "calico-preflight", 0o755);
        node.stub("opt-cni-bin", "portmap", 0o755);
        node
    }
    fn dir(&self, d: &str) -> PathBuf {
        self.root.join(d)
    }
    /// Calico's conflist with us first in the chain.
    fn conflist(&self, file: &str, name: &str) {
        let c = json!({"cniVersion": "1.0.0", "name": name, "plugins": [
            {"type": "calico-preflight"},
            {"type": "calico", "ipam": {"type": "calico-ipam"},
             "nodename_file": self.root.join("nodename")},
            {"type": "portmap", "capabilities": {"portMappings": true}},
        ]});
        std::fs::write(self.dir("net.d").join(file), c.to_string()).expect("conflist");
    }
    fn stub(&self, dir: &str, name: &str, mode: u32) -> PathBuf {
        let p = self.dir(dir).join(name);
        std::fs::write(&p, STUB).expect("stub");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        p
    }
    /// ADD with no prevResult, CNI_PATH = opt-cni-bin, etc-cni-bin as an extra search dir.
    fn add(&self, extra: Value) -> PluginRun {
        self.call("ADD", "1.0.0", extra)
    }
    fn call(&self, command: &str, version: &str, extra: Value) -> PluginRun {
        let mut conf = json!({"cniVersion": version, "name": "k8s-pod-network",
            "type": "calico-preflight", "confDir": self.dir("net.d"),
            "searchBinDirs": [self.dir("etc-cni-bin")], "nodeCheckTtlSeconds": 0});
        for (k, v) in extra.as_object().into_iter().flatten() {
            conf[k] = v.clone();
        }
        let mut env = CniEnv::new(command, &self.ns.path(), "eth0");
        env.path = self.dir("opt-cni-bin").display().to_string();
        let vars = if command == "STATUS" {
            vec![
                ("CNI_COMMAND", command.to_string()),
                ("CNI_PATH", env.path.clone()),
            ]
        } else {
            env.vars()
        };
        run_plugin(
            Some(&self.ns),
            &bin("calico-preflight"),
            &vars,
            conf.to_string().as_bytes(),
        )
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

use calico_preflight_integration::assert_check_fails as assert_fails;

fn show(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn bin_dirs_after_a_docker_to_containerd_switch_fail_naming_the_way_out() {
    let n = Node::new("bin-switch");
    let cal = n.stub("etc-cni-bin", "calico", 0o755);
    let ipam = n.stub("etc-cni-bin", "calico-ipam", 0o755);
    let opt = n.dir("opt-cni-bin");
    let run = n.add(json!({}));
    let e = assert_fails(
        &run,
        "cni-bin-dir",
        "plugin binary \"calico\" is not in the runtime's CNI bin dirs, on calico (needed by plugin calico in",
        &[
            &format!("an executable file calico in one of: {}", show(&opt)),
            &format!("it is in {}", show(&cal)),
            &format!("ln -s {} {}", show(&cal), show(&opt.join("calico"))),
            "plugins.\"io.containerd.grpc.v1.cri\".cni.bin_dir",
            "CRI-O: plugin_dirs",
            "cni-bin-dir hostPath",
            // The ipam binary is reported too, with its own link command.
            "calico-ipam (needed by ipam of plugin calico",
            &format!("ln -s {} {}", show(&ipam), show(&opt.join("calico-ipam"))),
        ],
    );
    assert!(
        e["msg"]
            .as_str()
            .unwrap_or_default()
            .ends_with("(and 1 more)"),
        "{e}"
    );
    // STATUS says the same, as "plugin not available".
    let status = n.call("STATUS", "1.1.0", json!({}));
    assert_eq!(status.status, 1, "{status:?}");
    assert_eq!(status.json()["code"], 50, "{status:?}");
}

#[test]
fn missing_ipam_binary_only_points_at_install_cni() {
    let n = Node::new("bin-ipam");
    n.stub("opt-cni-bin", "calico", 0o755);
    let run = n.add(json!({}));
    let e = assert_fails(
        &run,
        "cni-bin-dir",
        "plugin binary \"calico-ipam\" is not in the runtime's CNI bin dirs, on calico-ipam (needed by ipam of plugin calico",
        &[
            "nowhere in CNI_PATH nor in the usual CNI bin dirs",
            "install-cni init container did not install it",
        ],
    );
    assert!(
        !e["msg"].as_str().unwrap_or_default().contains("more"),
        "{e}"
    );
}

#[test]
fn non_executable_binary_has_its_own_finding() {
    let n = Node::new("bin-mode");
    let cal = n.stub("opt-cni-bin", "calico", 0o644);
    n.stub("opt-cni-bin", "calico-ipam", 0o755);
    let run = n.add(json!({}));
    assert_fails(
        &run,
        "cni-bin-dir",
        "plugin binary \"calico\" is not executable",
        &[
            &format!("{} is not executable (mode 0644)", show(&cal)),
            &format!("chmod 755 {}", show(&cal)),
        ],
    );
}

#[test]
fn dangling_symlink_has_its_own_finding() {
    let n = Node::new("bin-link");
    let link = n.dir("opt-cni-bin").join("calico");
    let gone = n.dir("etc-cni-bin").join("calico");
    symlink(&gone, &link).expect("symlink");
    n.stub("opt-cni-bin", "calico-ipam", 0o755);
    let run = n.add(json!({}));
    assert_fails(
        &run,
        "cni-bin-dir",
        "plugin binary \"calico\" is a dangling symlink",
        &[
            &format!("{} is a dangling symlink to {}", show(&link), show(&gone)),
            &format!("rm {}", show(&link)),
        ],
    );
}

#[test]
fn everything_present_passes_with_an_empty_result() {
    let n = Node::new("bin-ok");
    n.stub("opt-cni-bin", "calico", 0o755);
    // A symlink to an executable elsewhere is fine: the runtime follows it.
    let ipam = n.stub("etc-cni-bin", "calico-ipam", 0o755);
    symlink(&ipam, n.dir("opt-cni-bin").join("calico-ipam")).expect("symlink");
    let run = n.add(json!({}));
    assert_eq!(
        (run.status, run.stdout.trim()),
        (0, r#"{"cniVersion":"1.0.0"}"#),
        "{run:?}"
    );
}

#[test]
fn another_network_sorting_first_warns_and_can_be_made_an_error() {
    let n = Node::new("order");
    n.stub("opt-cni-bin", "calico", 0o755);
    n.stub("opt-cni-bin", "calico-ipam", 0o755);
    n.conflist("05-cbr0.conflist", "cbr0");
    let log = n.root.join("preflight.log");
    let run = n.add(json!({"logFile": log}));
    assert_eq!(
        (run.status, run.stdout.trim()),
        (0, r#"{"cniVersion":"1.0.0"}"#),
        "a warning does not fail: {run:?}"
    );
    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(
        logged.contains(
            "[WARNING conflist-order] another network's config file sorts before Calico's"
        ),
        "{logged}"
    );
    let other = show(&n.dir("net.d").join("05-cbr0.conflist"));
    let strict = n.add(json!({"checks": {"conflist-order": "error"}}));
    assert_fails(
        &strict,
        "conflist-order",
        &format!("another network's config file sorts before Calico's, so the runtime uses it, on CNI config file {other}"),
        &[
            "10-calico.conflist (network \"k8s-pod-network\") to be the first valid config file",
            "05-cbr0.conflist comes first (network \"cbr0\"",
            &format!("remove {other}"),
        ],
    );
    // A broken file sorting first is skipped by the runtime, and so by the check.
    std::fs::remove_file(n.dir("net.d").join("05-cbr0.conflist")).expect("rm");
    std::fs::write(n.dir("net.d").join("00-broken.conflist"), "{").expect("write");
    let run = n.add(json!({"checks": {"conflist-order": "error"}}));
    assert_eq!(run.status, 0, "{run:?}");
}
