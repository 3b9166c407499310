//! Through a real runtime: containerd's CRI RunPodSandbox with the conflist
//! [fake-calico, calico-preflight], as the kubelet would drive it.

use calico_preflight_integration::bin;
use calico_preflight_integration::cri::{self, Containerd};
use serde_json::json;

fn containerd(tag: &str) -> Containerd {
    cri::available().unwrap_or_else(|e| panic!("{e}"));
    let dir = std::env::temp_dir().join(format!("cp-cri-bin-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (fc, cp) = (bin("fake-calico"), bin("calico-preflight"));
    cri::make_bin_dir(
        &dir,
        &[
            ("fake-calico", fc.as_path()),
            ("calico-preflight", cp.as_path()),
        ],
    )
    .expect("bin dir");
    let c = Containerd::start(&dir).unwrap_or_else(|e| panic!("containerd: {e}"));
    // containerd's namespace is the node: a Calico node forwards (host-ip-forward checks it).
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
