//! Read-only, over every scenario of the suite: links, addresses, routes, neighbours, sysctls
//! and both iptables backends of host and pod are identical before and after ADD, CHECK and
//! `doctor`, on healthy pods, on every fault, first in the chain, on a node with the
//! iptables split, and on every deployment of the matrix (deployments.rs) with Calico's entry
//! in a real confDir, including nftables nodes.
//!
//! The active gateway probe (`"probe": true` on ADD and CHECK, on by default in `doctor`) runs
//! in each: the one change it is allowed is the host's neighbour entry for a pod IP on the pod's
//! host end (the host learns it answering the probe, as the pod's first packet would make it);
//! the pod's neighbour table stays untouched.

use calico_preflight_integration::dataplane;
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

/// The host end of the pod's interface `ifname`: the host link at its peer index.
fn host_end(host: &Netns, pod: &Netns, ifname: &str) -> Option<String> {
    let pod_link: serde_json::Value =
        serde_json::from_str(&pod.ip(&["-j", "-d", "link", "show", ifname])).ok()?;
    let peer = pod_link[0]["link_index"].as_u64()?;
    let links: serde_json::Value = serde_json::from_str(&host.ip(&["-j", "link", "show"])).ok()?;
    links
        .as_array()?
        .iter()
        .find(|l| l["ifindex"].as_u64() == Some(peer))
        .and_then(|l| l["ifname"].as_str().map(String::from))
}

/// `after` without the one change the probe may make: a neighbour entry, new since `before`,
/// for one of the pod's IPs on its host end (`<ip> dev <host end> lladdr ...`, in any state).
fn without_probe_entry(before: &str, after: &str, host_end: Option<&str>, ips: &[&str]) -> String {
    let Some(veth) = host_end else {
        return after.to_string();
    };
    let allowed = |l: &str| {
        !before.lines().any(|b| b == l)
            && ips.iter().any(|ip| {
                let ip = ip.split('/').next().unwrap_or_default();
                l.starts_with(&format!("{ip} dev {veth} lladdr "))
            })
    };
    after
        .lines()
        .filter(|l| !allowed(l))
        .map(|l| format!("{l}\n"))
        .collect()
}

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
            "confDir": "/nonexistent/cp-ro", "cacheDir": cache.path(), "probe": true, "prevResult": prev});
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
        let end = host_end(&host, &pod, "eth0");
        let ips = ["10.244.4.5/32", "fd00:44::5/128"];
        let raw = snapshot(&host);
        if faults.is_empty() {
            // The probe ran on healthy wiring: the allowance is used, not vacuous.
            let entry = format!("10.244.4.5 dev {} lladdr ", end.as_deref().unwrap_or("?"));
            assert!(raw.contains(&entry), "no probe entry {entry:?} in:\n{raw}");
        }
        let after = (
            without_probe_entry(&before.0, &raw, end.as_deref(), &ips),
            snapshot(&pod),
        );
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

/// The deployment matrix's pods (integration/tests/deployments.rs), healthy and broken: Calico's
/// entry in a real confDir (read by the plugin), calico-preflight first and after calico.
const DEPLOYMENTS: &[(&str, &str)] = &[
    (
        r#"{"ipam": {"type": "host-local", "ranges": [[{"subnet": "usePodCidr"}], [{"subnet": "usePodCidrIPv6"}]],
            "routes": [{"dst": "10.0.0.0/8"}, {"dst": "fd00:99::/64", "gw": "fd00:10::1"}]}}"#,
        "dual",
    ),
    (
        r#"{"include_default_routes": true, "break": ["no-route:192.168.0.0/16"],
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "usePodCidr"}]], "routes": [{"dst": "192.168.0.0/16"}]}}"#,
        "v4",
    ),
    (
        r#"{"ipam": {"type": "calico-ipam", "assign_ipv4": "false", "assign_ipv6": "true"}}"#,
        "v6",
    ),
    (
        r#"{"ipam": {"type": "calico-ipam", "assign_ipv4": "false", "assign_ipv6": "true"}, "break": ["no-proxy-arp"]}"#,
        "v6-forwarding-off",
    ),
    (
        r#"{"ipam": {"type": "calico-ipam", "assign_ipv6": "true"}, "shape": "v3.32"}"#,
        "dual",
    ),
    (
        r#"{"ipam": {"type": "calico-ipam"}, "extraHostInterface": "ifb"}"#,
        "v4",
    ),
    (
        r#"{"ipam": {"type": "calico-ipam", "assign_ipv6": "true"}, "extraHostInterface": "veth", "shape": "v3.30"}"#,
        "dual",
    ),
    (
        r#"{"ipam": {"type": "calico-ipam"}, "interfacePrefix": "wkl", "break": ["host-veth-down"]}"#,
        "v4",
    ),
    (
        r#"{"ipam": {"type": "calico-ipam", "assign_ipv6": "true"}, "podDefaultRoute6": "ecmp"}"#,
        "dual",
    ),
    (
        r#"{"ipam": {"type": "calico-ipam", "assign_ipv6": "true"}, "podDefaultRoute6": "ecmp", "break": ["ecmp-wrong-nexthops"]}"#,
        "dual",
    ),
    (
        r#"{"ipam": {"type": "calico-ipam", "assign_ipv6": "true"}}"#,
        "all-nftables",
    ),
    (
        r#"{"ipam": {"type": "calico-ipam"}}"#,
        "kube-proxy-nftables-felix-legacy",
    ),
];

/// The pod's addresses in a conf's prevResult.
fn prev_ips(conf: &serde_json::Value) -> Vec<String> {
    conf["prevResult"]["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["address"].as_str().map(String::from))
        .collect()
}

fn deployment_node(host: &Netns, node: &str) {
    let (v4, v6) = match node {
        "v6" => ("0", "1"),
        "v6-forwarding-off" => ("0", "0"),
        "v4" | "kube-proxy-nftables-felix-legacy" => ("1", "0"),
        _ => ("1", "1"),
    };
    host.sysctl("net.ipv4.ip_forward", v4);
    host.sysctl("net.ipv6.conf.all.forwarding", v6);
    match node {
        "all-nftables" => {
            dataplane::felix_nftables(host, &["ip", "ip6"]);
            dataplane::kube_proxy_nftables(host, &["ip", "ip6"]);
        }
        "kube-proxy-nftables-felix-legacy" => {
            dataplane::kube_proxy_nftables(host, &["ip"]);
            dataplane::felix_iptables(host, "legacy");
        }
        _ => {}
    }
}

#[test]
fn no_deployment_changes_the_network() {
    for (calico, node) in DEPLOYMENTS {
        let host = Netns::new("ro-dh");
        deployment_node(&host, node);
        let pod = Netns::new("ro-dp");
        let dirs = CniDirs::new("ro-d");
        let mut env = CniEnv::new("ADD", &pod.path(), "eth0");
        env.path = dirs.bin_dir().display().to_string();
        let mut calico: serde_json::Value = serde_json::from_str(calico).expect("scenario json");
        calico["type"] = json!("calico");
        let entry = json!({"type": "calico-preflight", "confDir": dirs.conf_dir(),
            "cacheDir": dirs.cache_dir(), "nodeCheckTtlSeconds": 0, "probe": true,
            "checks": {"iptables-backend": "error"}});
        let list = json!({"cniVersion": "1.1.0", "name": "k8s-pod-network",
            "plugins": [entry, calico.clone()]});
        dirs.write_conflist(&list);
        let ctx = format!("{calico} on node {node}");
        // Calico's entry alone wires the pod; every later call is the plugin's.
        let mut c = calico.clone();
        c["cniVersion"] = json!("1.1.0");
        c["name"] = json!("k8s-pod-network");
        let wired = run_plugin(
            Some(&host),
            &dirs.bin_dir().join("calico"),
            &env.vars(),
            c.to_string().as_bytes(),
        );
        assert_eq!(wired.status, 0, "{ctx}: {wired:?}");
        let prev = wired.json();
        let mut after = list["plugins"][0].clone();
        after["cniVersion"] = json!("1.1.0");
        after["name"] = json!("k8s-pod-network");
        let first = after.clone();
        after["prevResult"] = prev;

        let before = (settled_snapshot(&host), settled_snapshot(&pod));
        for (cmd, c) in [
            ("ADD", &first),
            ("ADD", &after),
            ("CHECK", &after),
            ("STATUS", &first),
            ("DEL", &after),
        ] {
            let run = preflight(&host, &env, cmd, c);
            assert!(run.status == 0 || run.status == 1, "{ctx} {cmd}: {run:?}");
        }
        let prefix = calico["interfacePrefix"].as_str().unwrap_or("cali");
        let doctor = std::process::Command::new("nsenter")
            .arg(format!("--net={}", host.path()))
            .arg(bin("calico-preflight"))
            .args(["doctor", "--no-proc-scan", "--json", "--prefix", prefix])
            .arg("--conf-dir")
            .arg(dirs.conf_dir())
            .arg("--cni-bin-dir")
            .arg(dirs.bin_dir())
            .output()
            .expect("doctor");
        assert!(
            doctor.status.code().is_some_and(|c| c <= 2),
            "{ctx}: doctor {doctor:?}"
        );
        let end = host_end(&host, &pod, "eth0");
        let ips: Vec<String> = prev_ips(&after);
        let ips: Vec<&str> = ips.iter().map(String::as_str).collect();
        let after = (
            without_probe_entry(&before.0, &snapshot(&host), end.as_deref(), &ips),
            snapshot(&pod),
        );
        assert!(
            before.0 == after.0,
            "host namespace changed ({ctx}):\n{}",
            snapshot_diff(&before.0, &after.0)
        );
        assert!(
            before.1 == after.1,
            "pod namespace changed ({ctx}):\n{}",
            snapshot_diff(&before.1, &after.1)
        );
    }
}
