//! `doctor`'s node reconciliation against a throw-away node: pods wired by fake-calico in a host
//! namespace, then a route or an address changed the way a real node gets there, and the
//! `stale-host-route` / `duplicate-pod-ip` findings checked to name the route and the pods.

use calico_preflight_integration::*;
use serde_json::{json, Value};

struct Node {
    host: Netns,
    pods: Vec<Netns>,
    /// Each pod's host end, as fake-calico named it.
    veths: Vec<String>,
    dirs: CniDirs,
}

/// A node with one pod per entry of `ips` (each pod's addresses), wired as Calico does.
fn node(ips: &[&[&str]]) -> Node {
    let host = Netns::new("rc-h");
    host.sysctl("net.ipv4.ip_forward", "1");
    host.sysctl("net.ipv6.conf.all.forwarding", "1");
    let dirs = CniDirs::new("reconcile");
    let nodename = dirs.root.join("nodename");
    std::fs::write(&nodename, "node-1").expect("nodename");
    dirs.write_conflist(
        &json!({"name": "k8s-pod-network", "cniVersion": "1.0.0", "plugins": [
        {"type": "calico", "ipam": {"type": "calico-ipam"}, "nodename_file": nodename},
        {"type": "calico-preflight"}]}),
    );
    let mut pods = Vec::new();
    let mut veths = Vec::new();
    for pod_ips in ips {
        let pod = Netns::new("rc-p");
        let env = CniEnv::new("ADD", &pod.path(), "eth0");
        let result = wire_pod(&host, &env, json!({"ips": pod_ips}));
        let veth = result["interfaces"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|i| i.get("sandbox").is_none())
            .and_then(|i| i["name"].as_str())
            .expect("host end in the result")
            .to_string();
        pods.push(pod);
        veths.push(veth);
    }
    Node {
        host,
        pods,
        veths,
        dirs,
    }
}

/// `doctor --json` in the node's host namespace: its report and exit code.
fn doctor(n: &Node) -> (Value, i32) {
    let mut args: Vec<std::ffi::OsString> = [
        "doctor",
        "--json",
        "--netns-dir",
        "/run/netns",
        "--no-proc-scan",
    ]
    .map(Into::into)
    .into();
    args.extend(["--conf-dir".into(), n.dirs.conf_dir().into()]);
    args.extend(["--cni-bin-dir".into(), n.dirs.bin_dir().into()]);
    let run = preflight_in(&n.host.path(), &args);
    let report: Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("doctor --json: {e}: {run:?}"));
    (report, run.status)
}

/// The findings of check `check` on pod `i` (found by its namespace's name).
fn findings_of(r: &Value, n: &Node, i: usize, check: &str) -> Vec<Value> {
    let pod = r["pods"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["pod"] == n.pods[i].name.as_str())
        .unwrap_or_else(|| panic!("pod {} not in the report: {r:#}", n.pods[i].name));
    pod["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["check"] == check)
        .cloned()
        .collect()
}

fn text(f: &Value, key: &str) -> String {
    f[key].as_str().unwrap_or_default().to_string()
}

#[test]
fn a_healthy_dual_stack_node_has_no_findings() {
    let n = node(&[
        &["10.244.9.1/32", "fd00:10::1/128"],
        &["10.244.9.2/32", "fd00:10::2/128"],
        &["10.244.9.3/32"],
    ]);
    let (r, code) = doctor(&n);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["summary"]["healthy"], 3, "{r:#}");
    for p in r["pods"].as_array().expect("pods") {
        assert_eq!(p["findings"], json!([]), "{p:#}");
    }
}

/// The pod's IP changed (an address swapped in place) and its old host route stayed on the link.
#[test]
fn a_route_left_on_the_link_after_the_pods_ip_changed() {
    let n = node(&[&["10.244.9.1/32"], &["10.244.9.2/32"]]);
    n.pods[0].ip(&["addr", "del", "10.244.9.1/32", "dev", "eth0"]);
    n.pods[0].ip(&["addr", "add", "10.244.9.61/32", "dev", "eth0"]);
    let veth = &n.veths[0];
    n.host.ip(&[
        "route",
        "add",
        "10.244.9.61/32",
        "dev",
        veth,
        "scope",
        "link",
    ]);
    let (r, code) = doctor(&n);
    assert_eq!(code, 2, "{r:#}");
    let stale = findings_of(&r, &n, 0, "stale-host-route");
    assert_eq!(stale.len(), 1, "{r:#}");
    let f = &stale[0];
    assert_eq!(f["severity"], "error");
    assert_eq!(
        text(f, "object"),
        format!("host route 10.244.9.1/32 dev {veth} scope link")
    );
    assert!(
        text(f, "problem").contains(&format!("({veth}) does not hold it")),
        "{f:#}"
    );
    assert!(
        text(f, "expected").contains("(10.244.9.61)"),
        "names what the pod holds: {f:#}"
    );
    assert!(
        text(f, "found").ends_with("no pod on this node holds 10.244.9.1"),
        "{f:#}"
    );
    assert!(
        text(f, "remedy").contains(&format!("`ip route del 10.244.9.1/32 dev {veth}`")),
        "{f:#}"
    );
    assert!(
        findings_of(&r, &n, 1, "stale-host-route").is_empty(),
        "{r:#}"
    );
}

/// The calico#1406 state: a pod's IP also routed via another pod's cali link (at a worse metric,
/// so the pod's own route still wins and only this check sees it); then as the only route.
#[test]
fn a_pod_ip_routed_via_another_cali_link() {
    let n = node(&[&["10.244.9.1/32"], &["10.244.9.2/32"]]);
    let (a, b) = (&n.veths[0], &n.veths[1]);
    n.host.ip(&[
        "route",
        "add",
        "10.244.9.1/32",
        "dev",
        b,
        "scope",
        "link",
        "metric",
        "100",
    ]);
    let (r, _) = doctor(&n);
    let on_b = findings_of(&r, &n, 1, "stale-host-route");
    assert_eq!(on_b.len(), 1, "{r:#}");
    let f = &on_b[0];
    assert_eq!(f["severity"], "error");
    assert_eq!(
        text(f, "object"),
        format!("host route 10.244.9.1/32 dev {b} scope link")
    );
    assert!(
        text(f, "found").contains(&format!(
            "10.244.9.1 is held by pod {} ({a})",
            n.pods[0].name
        )),
        "{f:#}"
    );
    assert!(
        text(f, "remedy").contains(&format!("ip route del 10.244.9.1/32 dev {b} metric 100")),
        "{f:#}"
    );
    // The holder hears of it too: its own route wins, so host-route and ip-conflict are quiet.
    assert_eq!(findings_of(&r, &n, 0, "stale-host-route"), on_b, "{r:#}");
    assert!(findings_of(&r, &n, 0, "ip-conflict").is_empty(), "{r:#}");

    // Only the wrong route left: ip-conflict tells the holder, stale-host-route the link's pod.
    n.host.ip(&["route", "del", "10.244.9.1/32", "dev", a]);
    let (r, code) = doctor(&n);
    assert_eq!(code, 2, "{r:#}");
    assert_eq!(findings_of(&r, &n, 1, "stale-host-route").len(), 1, "{r:#}");
    assert!(
        findings_of(&r, &n, 0, "stale-host-route").is_empty(),
        "{r:#}"
    );
    assert!(!findings_of(&r, &n, 0, "ip-conflict").is_empty(), "{r:#}");
}

/// Two pods hold the same IP (calico#13858): one finding on each, naming both.
#[test]
fn two_pods_with_the_same_ip() {
    let n = node(&[
        &["10.244.9.1/32", "fd00:10::1/128"],
        &["10.244.9.2/32", "fd00:10::2/128"],
        &["10.244.9.3/32"],
    ]);
    n.pods[1].ip(&["addr", "add", "10.244.9.1/32", "dev", "eth0"]);
    let (r, code) = doctor(&n);
    assert_eq!(code, 2, "{r:#}");
    let on_a = findings_of(&r, &n, 0, "duplicate-pod-ip");
    let on_b = findings_of(&r, &n, 1, "duplicate-pod-ip");
    assert_eq!(on_a.len(), 1, "{r:#}");
    assert_eq!(on_a, on_b);
    let f = &on_a[0];
    assert_eq!(f["severity"], "error");
    assert_eq!(text(f, "object"), "pod IP 10.244.9.1");
    for i in [0, 1] {
        let named = format!("pod {} ({})", n.pods[i].name, n.veths[i]);
        assert!(text(f, "problem").contains(&named), "{named}: {f:#}");
    }
    assert!(
        findings_of(&r, &n, 2, "duplicate-pod-ip").is_empty(),
        "{r:#}"
    );
    // Every pod's routes are right for what it holds but the extra address: none stale.
    for i in 0..3 {
        assert!(
            findings_of(&r, &n, i, "stale-host-route").is_empty(),
            "{r:#}"
        );
    }
    assert_eq!(r["summary"]["byCheck"]["duplicate-pod-ip"], json!([2, 0]));
}

/// The severities of check `check`'s findings on pod `i`.
fn severities(r: &Value, n: &Node, i: usize, check: &str) -> Vec<String> {
    findings_of(r, n, i, check)
        .iter()
        .map(|f| text(f, "severity"))
        .collect()
}

/// KubeVirt's bridge binding (pkg/network/.../bridge.go `preparePodNetworkInterface`): the
/// pod's IP is deleted from its interface, which is renamed `eth0-nic` and enslaved to the
/// bridge `k6t-eth0`, and a dummy `eth0` takes the IP (`switchPodInterfaceWithDummy`); the VM
/// uses it. Calico supports exactly this binding for KubeVirt: its host route is the VM's.
fn kubevirt_bridge_binding(pod: &Netns, ip: &str, dummy: bool) {
    pod.ip(&["link", "set", "eth0", "down"]);
    pod.ip(&["addr", "del", ip, "dev", "eth0"]);
    pod.ip(&["link", "set", "eth0", "name", "eth0-nic"]);
    pod.ip(&["link", "add", "k6t-eth0", "type", "bridge"]);
    pod.ip(&["link", "set", "eth0-nic", "master", "k6t-eth0", "up"]);
    pod.ip(&["link", "set", "k6t-eth0", "up"]);
    if dummy {
        // A bridge stands in for the dummy (these test kernels have no dummy module): a link
        // of the pod's namespace other than the host end's peer.
        pod.ip(&["link", "add", "eth0", "type", "bridge"]);
        pod.ip(&["addr", "add", ip, "dev", "eth0"]);
        pod.ip(&["link", "set", "eth0", "up"]);
    }
}

#[test]
fn a_kubevirt_vm_in_bridge_binding_is_not_a_stale_route() {
    let n = node(&[&["10.244.9.1/32"], &["10.244.9.2/32"]]);
    // The IP on the pod's dummy eth0: the pod holds it, in its namespace.
    kubevirt_bridge_binding(&n.pods[0], "10.244.9.1/32", true);
    // The IP in the VM only (no dummy): the pod's interface holds no IP at all.
    kubevirt_bridge_binding(&n.pods[1], "10.244.9.2/32", false);
    let (r, _) = doctor(&n);
    assert_eq!(
        severities(&r, &n, 0, "stale-host-route"),
        Vec::<String>::new(),
        "the IP is on the pod's dummy: {r:#}"
    );
    assert!(
        !severities(&r, &n, 1, "stale-host-route").contains(&"error".to_string()),
        "a pod whose interface holds no IP cannot be judged: {r:#}"
    );
    for i in [0, 1] {
        assert!(
            findings_of(&r, &n, i, "duplicate-pod-ip").is_empty(),
            "{r:#}"
        );
    }
}

/// keepalived (or any VIP a pod adds itself) in two pods holding the same address: no host
/// route leads to it, so it is not an address IPAM gave twice: a warning, not an error.
#[test]
fn a_vip_two_pods_add_themselves_only_warns() {
    let n = node(&[&["10.244.9.1/32"], &["10.244.9.2/32"]]);
    for p in &n.pods {
        p.ip(&["addr", "add", "10.244.9.100/32", "dev", "eth0"]);
    }
    let (r, _) = doctor(&n);
    for i in [0, 1] {
        assert_eq!(severities(&r, &n, i, "duplicate-pod-ip"), ["warn"], "{r:#}");
        let f = &findings_of(&r, &n, i, "duplicate-pod-ip")[0];
        assert!(text(f, "remedy").contains("VIP"), "{f:#}");
    }
}

/// A service IP bound to a pod's lo (and lo's own 127.0.0.1, ::1) is not the pod's IP.
#[test]
fn addresses_on_a_pods_lo_are_not_duplicates() {
    let n = node(&[&["10.244.9.1/32"], &["10.244.9.2/32"]]);
    for p in &n.pods {
        p.ip(&["addr", "add", "10.96.0.10/32", "dev", "lo"]);
    }
    let (r, _) = doctor(&n);
    for i in [0, 1] {
        assert!(
            findings_of(&r, &n, i, "duplicate-pod-ip").is_empty(),
            "{r:#}"
        );
    }
}

/// A pod with two Calico interfaces (a second Calico network via Multus): one pod, its routes
/// on both links are its own.
#[test]
fn two_calico_interfaces_of_one_pod() {
    let n = node(&[&["10.244.9.1/32", "fd00:10::1/128"]]);
    let env = CniEnv::new("ADD", &n.pods[0].path(), "net1");
    wire_pod(
        &n.host,
        &env,
        // The pod's routes stay on eth0 (the kernel refuses a second 169.254.1.1/32).
        json!({"ips": ["10.244.10.1/32", "fd00:11::1/128"], "hostVeth": "calimultus1",
               "break": ["no-gateway-route", "no-default-route6"]}),
    );
    let (r, _) = doctor(&n);
    let all: Vec<&Value> = r["pods"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["findings"].as_array().into_iter().flatten())
        .filter(|f| f["check"] == "stale-host-route" || f["check"] == "duplicate-pod-ip")
        .collect();
    assert!(all.is_empty(), "{r:#}");
}

/// A route to an IP no pod holds on a node with Felix's floating IPs in use (a DNAT in
/// cali-fip-dnat): Felix routes a workload's floating IP to its link, so only a warning, in
/// each dataplane Felix programs the chain in.
#[test]
fn a_floating_ip_only_warns_in_every_dataplane() {
    for dataplane in ["nftables", "iptables-legacy", "iptables-nft"] {
        let n = node(&[&["10.244.9.1/32"]]);
        n.host.ip(&[
            "route",
            "add",
            "192.0.2.10/32",
            "dev",
            &n.veths[0],
            "scope",
            "link",
        ]);
        // Without floating IPs: an error.
        let (r, _) = doctor(&n);
        assert_eq!(
            severities(&r, &n, 0, "stale-host-route"),
            ["error"],
            "{dataplane}: {r:#}"
        );
        match dataplane {
            "nftables" => {
                let mut child = std::process::Command::new("nsenter")
                    .arg(format!("--net={}", n.host.path()))
                    .args(["nft", "-f", "-"])
                    .stdin(std::process::Stdio::piped())
                    .spawn()
                    .expect("nft");
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(
                        b"table ip calico {\n chain cali-fip-dnat {\n  ip daddr 192.0.2.10 dnat to 10.244.9.1\n }\n chain nat-PREROUTING {\n  type nat hook prerouting priority dstnat; policy accept;\n  jump cali-fip-dnat\n }\n}\n",
                    )
                    .expect("nft stdin");
                assert!(child.wait().expect("nft").success());
            }
            tool => {
                let ipt = tool;
                n.host.run(&[ipt, "-t", "nat", "-N", "cali-fip-dnat"]);
                n.host.run(&[
                    ipt,
                    "-t",
                    "nat",
                    "-A",
                    "cali-fip-dnat",
                    "-d",
                    "192.0.2.10/32",
                    "-j",
                    "DNAT",
                    "--to-destination",
                    "10.244.9.1",
                ]);
            }
        }
        let (r, _) = doctor(&n);
        assert_eq!(
            severities(&r, &n, 0, "stale-host-route"),
            ["warn"],
            "{dataplane}: {r:#}"
        );
    }
}
