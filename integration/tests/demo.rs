//! The README's first command runs the demo: it must keep showing a healthy pod passing and a
//! broken one failing with the right check.

use calico_preflight_integration::bin;

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
    assert!(
        !text.contains("host-ip-forward"),
        "the demo node forwards: {text}"
    );
}
