//! The pod checks against real namespaces wired like Calico does, for every CNI version and
//! both of Calico's result shapes.

use calico_preflight_integration::*;
use serde_json::{json, Value};

const V4: &[&str] = &["10.244.1.5/32"];
const DUAL: &[&str] = &["10.244.1.5/32", "fd00:10::5/128"];

/// A host namespace and a pod namespace; both deleted when dropped.
struct Pod {
    host: Netns,
    pod: Netns,
    env: CniEnv,
}

fn pod(ifname: &str) -> Pod {
    let host = Netns::new("h");
    // A node that forwards, as every Calico node does (host-ip-forward is checked too).
    host.sysctl("net.ipv4.ip_forward", "1");
    host.sysctl("net.ipv6.conf.all.forwarding", "1");
    let pod = Netns::new("p");
    let env = CniEnv::new("ADD", &pod.path(), ifname);
    Pod { host, pod, env }
}

fn calico(ips: &[&str], shape: &str, faults: &[&str]) -> Value {
    json!({"ips": ips, "shape": shape, "break": faults})
}

/// fake-calico then calico-preflight, like libcni; returns (calico's result, preflight's run).
fn add(p: &Pod, version: &str, calico_conf: Value, preflight_conf: Value) -> (Value, PluginRun) {
    let mut c = calico_conf;
    c["cniVersion"] = json!(version);
    let prev = wire_pod(&p.host, &p.env, c);
    let run = preflight(p, "ADD", version, &prev, preflight_conf);
    (prev, run)
}

fn preflight(p: &Pod, command: &str, version: &str, prev: &Value, conf: Value) -> PluginRun {
    let mut c = conf;
    // Never the machine's own /etc/cni/net.d: the node checks must see only this test's node.
    if c.get("confDir").is_none() {
        c["confDir"] = json!(format!("/nonexistent/cp-test-{}", p.host.name));
    }
    c["cniVersion"] = json!(version);
    c["name"] = json!("k8s-pod-network");
    c["type"] = json!("calico-preflight");
    c["prevResult"] = prev.clone();
    run_plugin(
        Some(&p.host),
        &bin("calico-preflight"),
        &p.env.with_command(command).vars(),
        c.to_string().as_bytes(),
    )
}

#[test]
fn healthy_wiring_passes_through_unchanged_for_every_version_and_shape() {
    for version in VERSIONS {
        for shape in ["v3.30", "v3.31"] {
            for (ips, ifname) in [(V4, "eth0"), (DUAL, "eth0"), (V4, "net1")] {
                let p = pod(ifname);
                let (prev, run) = add(&p, version, calico(ips, shape, &[]), json!({}));
                let ctx = format!("{version} {shape} {ips:?} {ifname}: {run:?}");
                assert_eq!(run.status, 0, "{ctx}");
                // The same JSON, key order included: never drop or reorder interfaces or IPs.
                assert_eq!(run.stdout.trim(), prev.to_string(), "{ctx}");
                if *version != "0.3.0" && *version != "0.3.1" {
                    let check = preflight(&p, "CHECK", version, &prev, json!({}));
                    assert_eq!(
                        (check.status, check.stdout.as_str()),
                        (0, ""),
                        "CHECK {ctx}"
                    );
                }
            }
        }
    }
}

/// Each fault of fake-calico and the check that must name it first.
const FAULTS: &[(&str, &[&str], &str)] = &[
    ("no-gateway-route", V4, "pod-gateway-route"),
    ("no-default-route", V4, "pod-default-route"),
    ("wrong-default-route", V4, "pod-default-route"),
    ("no-default-route6", DUAL, "pod-default-route"),
    ("pod-if-down", V4, "pod-interface"),
    ("no-pod-ip", DUAL, "pod-interface"),
    ("host-veth-down", V4, "host-veth"),
    ("wrong-host-veth-name", V4, "host-veth"),
    ("no-proxy-arp", DUAL, "host-proxy-arp"),
    ("no-forwarding", V4, "host-forwarding"),
    ("no-host-route", DUAL, "host-route"),
    ("conflict-route", V4, "ip-conflict"),
    ("conflict-address", V4, "ip-conflict"),
];

fn assert_fails_with(run: &PluginRun, version: &str, check: &str, ctx: &str) {
    assert_eq!(run.status, 1, "{ctx}: {run:?}");
    let e = run.json();
    assert_eq!(e["code"], 100, "{ctx}: {e}");
    assert_eq!(e["cniVersion"], version, "{ctx}");
    let msg = e["msg"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with(&format!("calico-preflight: {check}: ")),
        "{ctx}: msg {msg}"
    );
    let details = e["details"].as_str().unwrap_or_default();
    assert!(
        details.contains(&format!("[ERROR {check}]")),
        "{ctx}: details {details}"
    );
    assert!(
        details.contains("Expected: ")
            && details.contains("Found: ")
            && details.contains("What to do: "),
        "{ctx}: {details}"
    );
}

#[test]
fn every_check_fires_on_its_fault_for_every_version() {
    for version in VERSIONS {
        for (i, (fault, ips, check)) in FAULTS.iter().enumerate() {
            let shape = if i % 2 == 0 { "v3.31" } else { "v3.30" };
            let p = pod("eth0");
            let (prev, run) = add(&p, version, calico(ips, shape, &[fault]), json!({}));
            let ctx = format!("{version} {fault} {shape}");
            assert_fails_with(&run, version, check, &ctx);
            if *version != "0.3.0" && *version != "0.3.1" {
                let c = preflight(&p, "CHECK", version, &prev, json!({}));
                assert_fails_with(&c, version, check, &format!("CHECK {ctx}"));
            }
        }
    }
}

#[test]
fn host_veth_mac_warns_by_default_and_can_be_made_an_error() {
    for version in VERSIONS {
        let p = pod("eth0");
        let log = TempDir::new(&format!("mac-{version}.log"));
        let conf = json!({"logFile": log.display().to_string()});
        let (prev, run) = add(&p, version, calico(V4, "v3.31", &["no-host-mac"]), conf);
        assert_eq!(run.status, 0, "{version}: {run:?}");
        assert_eq!(run.stdout.trim(), prev.to_string());
        let logged = std::fs::read_to_string(&log).expect("log file");
        assert!(logged.contains("[WARNING host-veth-mac]"), "{logged}");
        assert!(
            logged.contains("pod=default/web-0 verb=ADD outcome=ok"),
            "{logged}"
        );
        let strict = preflight(
            &p,
            "ADD",
            version,
            &prev,
            json!({"checks": {"host-veth-mac": "error"}}),
        );
        assert_fails_with(&strict, version, "host-veth-mac", version);
        let _ = std::fs::remove_file(&log);
    }
}

#[test]
fn warn_mode_and_off_pass_through_a_broken_pod() {
    let p = pod("eth0");
    let (prev, run) = add(
        &p,
        "1.0.0",
        calico(V4, "v3.31", &["no-host-route"]),
        json!({}),
    );
    assert_fails_with(&run, "1.0.0", "host-route", "enforce");
    let warn = preflight(&p, "ADD", "1.0.0", &prev, json!({"mode": "warn"}));
    assert_eq!(
        (warn.status, warn.stdout.trim()),
        (0, prev.to_string().as_str())
    );
    assert!(
        warn.stderr.contains("[ERROR host-route]"),
        "stderr: {}",
        warn.stderr
    );
    let off = preflight(
        &p,
        "ADD",
        "1.0.0",
        &prev,
        json!({"checks": {"host-route": "off"}}),
    );
    assert_eq!(off.status, 0, "{off:?}");
}

#[test]
fn pod_netns_that_is_gone_or_not_a_netns() {
    let p = pod("eth0");
    let (prev, _) = add(&p, "1.0.0", calico(V4, "v3.31", &[]), json!({}));
    let file = TempDir::new("notns");
    std::fs::write(&file, b"").unwrap();
    for (netns, found) in [
        ("/run/netns/cpt-does-not-exist".to_string(), "No such file"),
        (file.display().to_string(), "not a namespace file"),
        ("/tmp".to_string(), "is a directory"),
        ("/proc/self/ns/uts".to_string(), "not a network namespace"),
    ] {
        let mut env = p.env.clone();
        env.netns = netns.clone();
        let mut c =
            json!({"cniVersion":"1.0.0","name":"k8s-pod-network","type":"calico-preflight"});
        c["prevResult"] = prev.clone();
        let run = run_plugin(
            Some(&p.host),
            &bin("calico-preflight"),
            &env.vars(),
            c.to_string().as_bytes(),
        );
        assert_fails_with(&run, "1.0.0", "pod-netns", &netns);
        assert!(run.stdout.contains(found), "{netns}: {}", run.stdout);
    }
    let _ = std::fs::remove_file(&file);
}

#[test]
fn add_and_check_change_nothing() {
    for faults in [&[][..], &["no-proxy-arp", "no-host-route"][..]] {
        let p = pod("eth0");
        let prev = wire_pod(&p.host, &p.env, calico(DUAL, "v3.31", faults));
        let before = (settled_snapshot(&p.host), settled_snapshot(&p.pod));
        for cmd in ["ADD", "CHECK", "ADD"] {
            let run = preflight(&p, cmd, "1.0.0", &prev, json!({}));
            assert_eq!(
                run.status != 0,
                !faults.is_empty(),
                "{cmd} {faults:?}: {run:?}"
            );
        }
        let after = (snapshot(&p.host), snapshot(&p.pod));
        assert_eq!(before.0, after.0, "host namespace changed ({faults:?})");
        assert_eq!(before.1, after.1, "pod namespace changed ({faults:?})");
    }
}

#[test]
fn del_succeeds_silently_both_times_the_runtime_calls_it() {
    let p = pod("eth0");
    let (prev, _) = add(&p, "1.0.0", calico(V4, "v3.31", &[]), json!({}));
    // Stop: with netns and prevResult.
    let stop = preflight(&p, "DEL", "1.0.0", &prev, json!({}));
    assert_eq!((stop.status, stop.stdout.as_str()), (0, ""), "{stop:?}");
    // Remove: empty CNI_NETNS, no prevResult.
    let mut env = p.env.with_command("DEL");
    env.netns = String::new();
    let conf = json!({"cniVersion":"1.0.0","name":"k8s-pod-network","type":"calico-preflight"});
    let rm = run_plugin(
        Some(&p.host),
        &bin("calico-preflight"),
        &env.vars(),
        conf.to_string().as_bytes(),
    );
    assert_eq!((rm.status, rm.stdout.as_str()), (0, ""), "{rm:?}");
}

#[test]
fn whole_chain_through_a_libcni_like_runner() {
    let p = pod("eth0");
    let list = calico_conflist(
        "1.0.0",
        calico(DUAL, "v3.30", &[]),
        json!({"mode": "enforce", "confDir": "/nonexistent/cp-test"}),
    );
    let run = run_chain(&p.host, &list, &p.env);
    assert_eq!(run.status, 0, "{run:?}");
    let out = run.json();
    assert_eq!(out["ips"].as_array().map(Vec::len), Some(2));
    let list = calico_conflist(
        "1.0.0",
        calico(DUAL, "v3.30", &["no-forwarding"]),
        json!({"confDir": "/nonexistent/cp-test"}),
    );
    let p2 = pod("eth0");
    let run = run_chain(&p2.host, &list, &p2.env);
    assert_fails_with(&run, "1.0.0", "host-forwarding", "chain");
}
