//! Bounded time: when a kernel query does not answer, the plugin answers by `timeoutMs` with a
//! clear error (code 11) instead of holding the pod start.

use calico_preflight_integration::*;
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn a_stalled_pod_namespace_gives_code_11_naming_the_query() {
    let host = Netns::new("to-h");
    host.sysctl("net.ipv4.ip_forward", "1");
    let pod = Netns::new("to-p");
    let env = CniEnv::new("ADD", &pod.path(), "eth0");
    let prev = wire_pod(&host, &env, json!({"ips": ["10.244.3.5/32"]}));
    let conf = json!({"cniVersion":"1.0.0","name":"k8s-pod-network","type":"calico-preflight",
        "timeoutMs": 300, "nodeChecks": false, "prevResult": prev});
    let mut vars = env.vars();
    // Debug builds only: the namespace inspection sleeps far past the deadline.
    vars.push(("CALICO_PREFLIGHT_TEST_STALL_MS", "30000".to_string()));
    let started = Instant::now();
    let run = run_plugin(
        Some(&host),
        &bin("calico-preflight"),
        &vars,
        conf.to_string().as_bytes(),
    );
    // Not a timing assertion: only that the call came back at all instead of sleeping 30 s.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the plugin waited for the stalled query"
    );
    assert_eq!(run.status, 1, "{run:?}");
    let e = run.json();
    assert_eq!(e["code"], 11, "{e}");
    let msg = e["msg"].as_str().unwrap_or_default();
    assert!(msg.contains("timed out after 300 ms"), "{msg}");
    assert!(msg.contains(&pod.path()), "names the namespace: {msg}");
    assert!(
        e["details"]
            .as_str()
            .unwrap_or_default()
            .contains("timeoutMs"),
        "{e}"
    );
    // Without the stall the same call passes: the deadline, not the pod, made it fail.
    let ok = run_plugin(
        Some(&host),
        &bin("calico-preflight"),
        &env.vars(),
        conf.to_string().as_bytes(),
    );
    assert_eq!(ok.status, 0, "{ok:?}");
}

/// A panic anywhere becomes a CNI error (code 999) on stdout and exit status 1, never a bare
/// crash the runtime cannot explain.
#[test]
fn a_panic_becomes_a_cni_error() {
    let host = Netns::new("pa-h");
    let env = CniEnv::new("ADD", "/proc/self/ns/net", "eth0");
    let mut vars = env.vars();
    vars.push(("CALICO_PREFLIGHT_TEST_PANIC", "1".to_string()));
    let conf =
        json!({"cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "calico-preflight"});
    let run = run_plugin(
        Some(&host),
        &bin("calico-preflight"),
        &vars,
        conf.to_string().as_bytes(),
    );
    assert_eq!(run.status, 1, "{run:?}");
    let e = run.json();
    assert_eq!(e["code"], 999, "{e}");
    assert!(
        e["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("internal error"),
        "{e}"
    );
    assert!(
        e["details"]
            .as_str()
            .unwrap_or_default()
            .contains("test panic requested"),
        "{e}"
    );
}
