//! Read-only, over every scenario of the suite: links, addresses, routes, neighbours, sysctls
//! and both iptables backends of host and pod are identical before and after ADD, CHECK and
//! `doctor`, on healthy pods, on every fault, first in the chain, and on a node with the
//! iptables split.

use calico_preflight_integration::*;
use serde_json::json;

/// Every fault fake-calico can inject (see its header), plus healthy wiring.
const SCENARIOS: &[&[&str]] = &[
    &[],
    &["no-gateway-route"],
    &["no-default-route"],
    &["wrong-default-route"],
    &["no-default-route6"],
    &["pod-if-down"],
    &["no-pod-ip"],
    &["host-veth-down"],
    &["wrong-host-veth-name"],
    &["no-host-mac"],
    &["no-proxy-arp"],
    &["no-forwarding"],
    &["no-host-route"],
    &["conflict-route"],
    &["conflict-address"],
];

fn preflight(host: &Netns, env: &CniEnv, cmd: &str, conf: &serde_json::Value) -> PluginRun {
    run_plugin(
        Some(host),
        &bin("calico-preflight"),
        &env.with_command(cmd).vars(),
        conf.to_string().as_bytes(),
    )
}

#[test]
fn no_scenario_changes_the_network() {
    for faults in SCENARIOS {
        let host = Netns::new("ro-h");
        host.sysctl("net.ipv4.ip_forward", "1");
        let pod = Netns::new("ro-p");
        let env = CniEnv::new("ADD", &pod.path(), "eth0");
        let prev = wire_pod(
            &host,
            &env,
            json!({"ips": ["10.244.4.5/32", "fd00:44::5/128"], "break": faults}),
        );
        let cache = TempDir::new("ro-cache");
        let conf = json!({"cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "calico-preflight",
            "confDir": "/nonexistent/cp-ro", "cacheDir": cache.path(), "prevResult": prev});
        let first = json!({"cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "calico-preflight",
            "confDir": "/nonexistent/cp-ro", "cacheDir": cache.path()});

        let before = (settled_snapshot(&host), settled_snapshot(&pod));
        for (cmd, c) in [
            ("ADD", &first),
            ("ADD", &conf),
            ("CHECK", &conf),
            ("STATUS", &first),
            ("DEL", &conf),
        ] {
            let run = preflight(&host, &env, cmd, c);
            assert!(
                run.status == 0 || run.status == 1,
                "{faults:?} {cmd}: {run:?}"
            );
        }
        let doctor = std::process::Command::new("nsenter")
            .arg(format!("--net={}", host.path()))
            .arg(bin("calico-preflight"))
            .args([
                "doctor",
                "--no-proc-scan",
                "--conf-dir",
                "/nonexistent/cp-ro",
                "--json",
            ])
            .output()
            .expect("doctor");
        assert!(
            doctor.status.code().is_some_and(|c| c <= 2),
            "{faults:?}: doctor {doctor:?}"
        );
        let after = (snapshot(&host), snapshot(&pod));
        assert!(
            before.0 == after.0,
            "host namespace changed ({faults:?}):\n{}",
            snapshot_diff(&before.0, &after.0)
        );
        assert!(
            before.1 == after.1,
            "pod namespace changed ({faults:?}):\n{}",
            snapshot_diff(&before.1, &after.1)
        );
    }
}

#[test]
fn node_checks_on_an_iptables_split_change_nothing() {
    let host = Netns::new("ro-ipt");
    host.sysctl("net.ipv4.ip_forward", "1");
    host.run(&["iptables-legacy", "-t", "filter", "-N", "cali-INPUT"]);
    host.run(&[
        "iptables-legacy",
        "-t",
        "filter",
        "-A",
        "INPUT",
        "-j",
        "cali-INPUT",
    ]);
    host.run(&["iptables-nft", "-t", "nat", "-N", "KUBE-SERVICES"]);
    host.run(&[
        "iptables-nft",
        "-t",
        "nat",
        "-A",
        "PREROUTING",
        "-j",
        "KUBE-SERVICES",
    ]);
    let env = CniEnv::new("ADD", "/proc/self/ns/net", "eth0");
    let conf = json!({"cniVersion": "1.1.0", "name": "k8s-pod-network", "type": "calico-preflight",
        "confDir": "/nonexistent/cp-ro", "nodeCheckTtlSeconds": 0});
    let before = settled_snapshot(&host);
    for cmd in ["ADD", "STATUS"] {
        let run = preflight(&host, &env, cmd, &conf);
        assert_eq!(run.status, 1, "the split is found: {run:?}");
    }
    let after = snapshot(&host);
    assert!(
        before == after,
        "host namespace changed:\n{}",
        snapshot_diff(&before, &after)
    );
}
