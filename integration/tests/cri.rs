//! Through a real runtime: containerd's CRI RunPodSandbox with the conflist
//! [fake-calico, calico-preflight], as the kubelet would drive it.

use calico_preflight_integration::cri::{self, Containerd};
use calico_preflight_integration::{bin, TempDir};
use serde_json::json;

/// containerd and its bin dir, removed after containerd is gone (fields drop in order).
struct Node {
    c: Containerd,
    _bin: TempDir,
}

impl std::ops::Deref for Node {
    type Target = Containerd;
    fn deref(&self) -> &Containerd {
        &self.c
    }
}

fn containerd(tag: &str) -> Node {
    cri::available().unwrap_or_else(|e| panic!("{e}"));
    let dir = TempDir::new(&format!("cri-bin-{tag}"));
    let (fc, cp) = (bin("fake-calico"), bin("calico-preflight"));
    cri::make_bin_dir(
        dir.path(),
        &[
            ("fake-calico", fc.as_path()),
            ("calico-preflight", cp.as_path()),
        ],
    )
    .expect("bin dir");
    Node {
        c: start(dir.path()),
        _bin: dir,
    }
}

/// containerd with its CNI bin dir `bin_dir`, in a namespace of its own that plays the node.
fn start(bin_dir: &std::path::Path) -> Containerd {
    let c = Containerd::start(bin_dir).unwrap_or_else(|e| panic!("containerd: {e}"));
    // A Calico node forwards (host-ip-forward checks it).
    calico_preflight_integration::sh(&[
        "nsenter",
        &format!("--net=/run/netns/{}", c.netns_name()),
        "sh",
        "-c",
        "echo 1 > /proc/sys/net/ipv4/ip_forward",
    ]);
    c
}

fn conflist(faults: &[&str], ip: &str) -> String {
    json!({
        "cniVersion": "1.0.0",
        "name": "k8s-pod-network",
        "plugins": [
            {"type": "fake-calico", "ips": [ip], "break": faults},
            {"type": "calico-preflight", "mode": "enforce"}
        ]
    })
    .to_string()
}

#[test]
fn healthy_pod_starts_with_its_ip() {
    let c = containerd("ok");
    c.set_conflist(&conflist(&[], "10.244.7.5/32"))
        .expect("conflist");
    let sb = c
        .run_pod_sandbox("web-0", "default")
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", c.log_tail(30)));
    assert_eq!(sb.ip, "10.244.7.5");
    c.stop_and_remove(&sb.id).expect("stop/remove");
    assert_eq!(c.list_sandboxes().expect("list"), Vec::<String>::new());
}

#[test]
fn broken_pod_fails_with_the_plugins_explanation_and_leaves_no_sandbox() {
    let c = containerd("bad");
    c.set_conflist(&conflist(&["no-host-route"], "10.244.8.5/32"))
        .expect("conflist");
    let err = c
        .run_pod_sandbox("web-1", "default")
        .expect_err("ADD must fail");
    assert!(err.contains("failed to setup network for sandbox"), "{err}");
    assert!(
        err.contains("plugin type=\"calico-preflight\" failed (add)"),
        "{err}"
    );
    assert!(
        err.contains(
            "calico-preflight: host-route: host route 10.244.8.5/32 scope link is missing"
        ),
        "{err}"
    );
    assert!(err.contains("What to do: "), "{err}");
    assert_eq!(
        c.list_sandboxes().expect("list"),
        Vec::<String>::new(),
        "sandbox left behind"
    );
}

/// The docker -> containerd switch of the field report: Calico's binary sits in another dir
/// than the runtime's bin dir. With calico-preflight first in the chain, the sandbox error is
/// the plugin's explanation, not libcni's bare `failed to find plugin`.
#[test]
fn preflight_first_explains_a_plugin_missing_from_the_runtime_bin_dir() {
    cri::available().unwrap_or_else(|e| panic!("{e}"));
    // Declared before containerd, so removed after it (also when an assertion fails).
    let runtime_guard = TempDir::new("cri-bin-first");
    let calico_guard = TempDir::new("cri-etc-cni-bin-first").create();
    let (runtime_dir, calico_dir) = (runtime_guard.path(), calico_guard.path());
    std::fs::copy(bin("fake-calico"), calico_dir.join("fake-calico")).expect("copy fake-calico");
    let cp = bin("calico-preflight");
    cri::make_bin_dir(runtime_dir, &[("calico-preflight", cp.as_path())]).expect("bin dir");
    let c = start(runtime_dir);
    let conf_dir = c.work_dir().join("net.d");
    let list = json!({
        "cniVersion": "1.0.0",
        "name": "k8s-pod-network",
        "plugins": [
            {"type": "calico-preflight", "confDir": conf_dir, "searchBinDirs": [calico_dir], "nodeCheckTtlSeconds": 0},
            {"type": "fake-calico", "ips": ["10.244.9.5/32"]},
            {"type": "calico-preflight", "nodeChecks": false}
        ]
    });
    c.set_conflist(&list.to_string()).expect("conflist");
    let err = c
        .run_pod_sandbox("web-2", "default")
        .expect_err("ADD must fail");
    eprintln!("RunPodSandbox error: {err}");
    assert!(err.contains("failed to setup network for sandbox"), "{err}");
    assert!(
        err.contains(
            "plugin type=\"calico-preflight\" failed (add): calico-preflight: cni-bin-dir:"
        ),
        "{err}"
    );
    assert!(err.contains("fake-calico"), "{err}");
    assert!(
        err.contains(&calico_dir.display().to_string()),
        "names where it is: {err}"
    );
    assert!(!err.contains("failed to find plugin"), "{err}");
}

/// A calico binary for another architecture (as from an image pulled for the wrong platform):
/// with calico-preflight first, the sandbox error is our explanation, not calico's bare
/// `fork/exec .../calico: exec format error`.
#[test]
fn preflight_first_explains_a_calico_binary_for_another_architecture() {
    use calico_preflight::inspect::elf;
    cri::available().unwrap_or_else(|e| panic!("{e}"));
    let tag = format!("arch-{}", std::process::id());
    let runtime_dir = std::env::temp_dir().join(format!("cp-cri-bin-{tag}"));
    let foreign_dir = std::env::temp_dir().join(format!("cp-cri-foreign-{tag}"));
    let _ = std::fs::remove_dir_all(&runtime_dir);
    let _ = std::fs::remove_dir_all(&foreign_dir);
    std::fs::create_dir_all(&foreign_dir).expect("dir");
    // A real binary whose e_machine names another machine.
    let calico = foreign_dir.join("calico");
    let mut bytes = std::fs::read(bin("fake-calico")).expect("read fake-calico");
    let own = elf::Machine::own().expect("known arch");
    let other = if own.machine == elf::EM_AARCH64 {
        elf::EM_X86_64
    } else {
        elf::EM_AARCH64
    };
    let patched = if own.little_endian {
        other.to_le_bytes()
    } else {
        other.to_be_bytes()
    };
    bytes[18..20].copy_from_slice(&patched);
    std::fs::write(&calico, &bytes).expect("write");
    calico_preflight_integration::sh(&["chmod", "755", &calico.display().to_string()]);
    let cp = bin("calico-preflight");
    cri::make_bin_dir(
        &runtime_dir,
        &[
            ("calico-preflight", cp.as_path()),
            ("calico", calico.as_path()),
        ],
    )
    .expect("bin dir");
    let c = start(&runtime_dir);
    let conf_dir = c.work_dir().join("net.d");
    let list = json!({
        "cniVersion": "1.0.0",
        "name": "k8s-pod-network",
        "plugins": [
            {"type": "calico-preflight", "confDir": conf_dir, "nodeCheckTtlSeconds": 0},
            {"type": "calico", "ips": ["10.244.9.6/32"], "nodename_file_optional": true},
            {"type": "calico-preflight", "nodeChecks": false}
        ]
    });
    c.set_conflist(&list.to_string()).expect("conflist");
    let err = c
        .run_pod_sandbox("web-3", "default")
        .expect_err("ADD must fail");
    eprintln!("RunPodSandbox error: {err}");
    assert!(
        err.contains(
            "plugin type=\"calico-preflight\" failed (add): calico-preflight: cni-binary-runnable: \
             plugin binary \"calico\" is built for another architecture"
        ),
        "{err}"
    );
    assert!(
        err.contains(&own_arch_desc(own)),
        "names this node's arch: {err}"
    );
    assert!(
        !err.contains("plugin type=\"calico\" failed"),
        "calico never ran: {err}"
    );
    // No sandbox check: containerd's cleanup DEL runs calico too, which cannot exec, so the
    // sandbox stays for containerd to retry; dropping the private containerd removes it.
    drop(c);
    let _ = std::fs::remove_dir_all(&runtime_dir);
    let _ = std::fs::remove_dir_all(&foreign_dir);
}

fn own_arch_desc(own: calico_preflight::inspect::elf::Machine) -> String {
    format!("an ELF executable for {}", own.describe())
}

/// The active gateway probe through the runtime: with `"probe": true` in our entry and every
/// ARP packet silently dropped on the node (an nftables `arp` table, deleted afterwards), the
/// wiring's configuration is fine and only the probe can tell: RunPodSandbox fails with its
/// message.
#[test]
fn a_silently_dropped_arp_fails_the_sandbox_with_the_probes_message() {
    let c = containerd("probe");
    let ns = format!("--net=/run/netns/{}", c.netns_name());
    let nft = |args: &[&str]| {
        let mut full = vec!["nsenter", ns.as_str(), "nft"];
        full.extend_from_slice(args);
        calico_preflight_integration::sh(&full)
    };
    /// Deletes the table however the test ends.
    struct Table(String);
    impl Drop for Table {
        fn drop(&mut self) {
            let _ = std::process::Command::new("nsenter")
                .args([self.0.as_str(), "nft", "delete", "table", "arp", "cpt"])
                .output();
        }
    }
    nft(&["add", "table", "arp", "cpt"]);
    let _table = Table(ns.clone());
    nft(&[
        "add",
        "chain",
        "arp",
        "cpt",
        "c",
        "{ type filter hook input priority 0; }",
    ]);
    nft(&["add", "rule", "arp", "cpt", "c", "drop"]);
    let list = json!({
        "cniVersion": "1.0.0",
        "name": "k8s-pod-network",
        "plugins": [
            {"type": "fake-calico", "ips": ["10.244.10.5/32"]},
            {"type": "calico-preflight", "mode": "enforce", "probe": true}
        ]
    });
    c.set_conflist(&list.to_string()).expect("conflist");
    let err = c
        .run_pod_sandbox("web-4", "default")
        .expect_err("ADD must fail");
    eprintln!("RunPodSandbox error: {err}");
    assert!(
        err.contains(
            "plugin type=\"calico-preflight\" failed (add): calico-preflight: pod-gateway-probe: \
             the pod's ARP request for 169.254.1.1 got no answer"
        ),
        "{err}"
    );
    assert!(err.contains("came back: nothing"), "{err}");
    assert!(err.contains("a firewall rule dropping ARP"), "{err}");
    assert_eq!(
        c.list_sandboxes().expect("list"),
        Vec::<String>::new(),
        "sandbox left behind"
    );
}
