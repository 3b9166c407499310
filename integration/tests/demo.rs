//! The README's first command runs the demo: it must keep showing a healthy pod passing and a
//! broken one failing with the right check.

use calico_preflight_integration::{bin, TempDir};
use std::os::unix::fs::PermissionsExt;

#[test]
fn demo_shows_a_passing_and_a_failing_pod() {
    let out = std::process::Command::new(bin("calico-preflight-demo"))
        .output()
        .expect("run the demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (healthy, broken) = text
        .split_once("=== pod whose host route is missing")
        .expect("two sections");
    assert!(healthy.contains("exit status 0"), "{healthy}");
    assert!(
        healthy.contains("\"ips\""),
        "the result is passed through: {healthy}"
    );
    assert!(broken.contains("exit status 1"), "{broken}");
    assert!(broken.contains("\"msg\": \"calico-preflight: host-route: host route 10.244.1.6/32 scope link is missing"), "{broken}");
    // The line as the README shows it: containerd's prefix, then libcni's `msg; details`.
    assert!(
        broken.contains(
            "failed to setup network for sandbox \"c"
        ) && broken.contains(
            "\": plugin type=\"calico-preflight\" failed (add): calico-preflight: host-route: host route 10.244.1.6/32 scope link is missing, on host veth cali"
        ) && broken.contains("; [ERROR host-route] host route 10.244.1.6/32"),
        "{broken}"
    );
    assert!(!healthy.contains("failed to setup network"), "{healthy}");
    assert!(
        !text.contains("host-ip-forward"),
        "the demo node forwards: {text}"
    );
}

#[test]
fn demo_without_root_says_so_instead_of_panicking() {
    // A copy in a dir nobody can reach: the checkout itself may sit under a private home.
    let dir = TempDir::new("demo-nobody").create();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let demo = dir.join("calico-preflight-demo");
    std::fs::copy(bin("calico-preflight-demo"), &demo).expect("copy the demo");
    std::fs::set_permissions(&demo, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(&demo)
        .output()
        .expect("run the demo as nobody");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        err.starts_with("calico-preflight-demo: needs root") && err.contains("sudo"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}
