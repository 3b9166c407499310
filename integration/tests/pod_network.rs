//! The node-network pod checks in real namespaces: host-gateway-route (the host's route to
//! 169.254.1.1), pod-mtu (Calico's tunnel devices and the uplink) and ip-conflict's tunnel
//! addresses, through ADD and through `doctor`. The kernel here has vxlan but not ipip or
//! wireguard: `tunl0` and `wireguard.cali` are covered by the unit tests over facts.

use calico_preflight_integration::*;
use serde_json::{json, Value};

const POD_IP: &str = "10.244.7.5";

struct Pod {
    host: Netns,
    pod: Netns,
    env: CniEnv,
    prev: Value,
}

/// A host and a pod wired by fake-calico (IPv4); `faults` as fake-calico's `break`.
fn wired(faults: &[&str]) -> Pod {
    let host = Netns::new("pn-h");
    host.sysctl("net.ipv4.ip_forward", "1");
    let pod = Netns::new("pn-p");
    let env = CniEnv::new("ADD", &pod.path(), "eth0");
    let prev = wire_pod(
        &host,
        &env,
        json!({"ips": [format!("{POD_IP}/32")], "break": faults}),
    );
    Pod {
        host,
        pod,
        env,
        prev,
    }
}

fn add(p: &Pod) -> PluginRun {
    let conf = json!({"cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "calico-preflight",
        "confDir": format!("/nonexistent/cp-pn-{}", p.host.name), "prevResult": p.prev});
    run_plugin(
        Some(&p.host),
        &bin("calico-preflight"),
        &p.env.vars(),
        conf.to_string().as_bytes(),
    )
}

/// The host end fake-calico made (the first host interface of its result).
fn host_veth(p: &Pod) -> String {
    p.prev["interfaces"][0]["name"]
        .as_str()
        .expect("host veth in result")
        .to_string()
}

fn assert_fails_with(run: &PluginRun, check: &str, ctx: &str) {
    assert_eq!(run.status, 1, "{ctx}: {run:?}");
    let e = run.json();
    let msg = e["msg"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with(&format!("calico-preflight: {check}: ")),
        "{ctx}: msg {msg}"
    );
    let details = e["details"].as_str().unwrap_or_default();
    assert!(
        details.contains(&format!("[ERROR {check}]")),
        "{ctx}: {details}"
    );
}

fn assert_passes(run: &PluginRun, ctx: &str) {
    assert_eq!(run.status, 0, "{ctx}: {run:?}");
}

/// `doctor` in the pod's host namespace: its text report.
fn doctor(p: &Pod) -> String {
    let conf = format!("/nonexistent/cp-pn-{}", p.host.name);
    let args = [
        "doctor",
        "--netns-dir",
        "/run/netns",
        "--no-proc-scan",
        "--conf-dir",
        &conf,
    ];
    preflight_in(&p.host.path(), args).stdout
}

/// A vxlan device named as Felix names its own, in the host.
fn vxlan_calico(p: &Pod, mtu: &str, up: bool) {
    p.host.ip(&[
        "link",
        "add",
        "vxlan.calico",
        "mtu",
        mtu,
        "type",
        "vxlan",
        "id",
        "4096",
        "dstport",
        "4789",
    ]);
    if up {
        p.host.ip(&["link", "set", "vxlan.calico", "up"]);
    }
}

#[test]
fn host_gateway_route_fires_without_a_covering_route_and_is_quiet_with_one() {
    // fake-calico's stand-in uplink gives the host a default route: healthy.
    let p = wired(&[]);
    assert_passes(&add(&p), "healthy host");
    assert!(!doctor(&p).contains("host-gateway-route"));

    // No route covering 169.254.1.1 at all (a test host, a node without a default route).
    let p = wired(&["no-host-gateway"]);
    let run = add(&p);
    assert_fails_with(&run, "host-gateway-route", "no route");
    assert!(run.stdout.contains("default route"), "{run:?}");
    let report = doctor(&p);
    assert!(
        report.contains("[ERROR host-gateway-route]"),
        "doctor: {report}"
    );

    // A route to 169.254.1.1 that goes out the pod's own host end: proxy ARP will not answer.
    let veth = host_veth(&p);
    p.host.ip(&[
        "route",
        "add",
        "169.254.1.1/32",
        "dev",
        &veth,
        "scope",
        "link",
    ]);
    let run = add(&p);
    assert_fails_with(&run, "host-gateway-route", "route via the host end");
    assert!(run.stdout.contains(&veth), "{run:?}");

    // A blackhole default route does not serve either.
    p.host.ip(&["route", "del", "169.254.1.1/32"]);
    p.host.ip(&["route", "add", "blackhole", "default"]);
    assert_fails_with(&add(&p), "host-gateway-route", "blackhole");

    // Any unicast route covering it out of another device does.
    p.host.ip(&["route", "del", "default"]);
    p.host
        .ip(&["link", "add", "up0", "type", "veth", "peer", "name", "up1"]);
    p.host.ip(&["link", "set", "up1", "up"]);
    p.host.ip(&["link", "set", "up0", "up"]);
    p.host.ip(&["route", "add", "169.254.0.0/16", "dev", "up0"]);
    assert_passes(&add(&p), "covering route elsewhere");
}

#[test]
fn pod_mtu_above_vxlan_calico_fires_and_fitting_is_quiet() {
    let p = wired(&[]);
    // A pod at 1500 over a VXLAN device of 1450 (Felix's size for a 1500 uplink).
    vxlan_calico(&p, "1450", true);
    let run = add(&p);
    assert_fails_with(&run, "pod-mtu", "pod 1500 over vxlan.calico 1450");
    assert!(run.stdout.contains("vxlan.calico"), "{run:?}");
    let report = doctor(&p);
    assert!(report.contains("[ERROR pod-mtu]"), "doctor: {report}");

    // Sized as Felix sizes it: quiet.
    p.pod.ip(&["link", "set", "eth0", "mtu", "1450"]);
    assert_passes(&add(&p), "pod 1450 over vxlan.calico 1450");
    assert!(!doctor(&p).contains("pod-mtu"));

    // The uplink shrinks under it: 1450 - 50 = 1400 is the bound now. The uplink (the default
    // route's device) is a guess at the NIC the tunnel uses, so this warns and passes.
    p.host.ip(&["link", "set", "cp-uplink0", "mtu", "1450"]);
    assert_passes(&add(&p), "uplink 1450 less VXLAN's 50: a warning");
    let report = doctor(&p);
    assert!(report.contains("[WARNING pod-mtu]"), "doctor: {report}");
    assert!(report.contains("1400"), "doctor: {report}");
    // Above the tunnel device as well: an error again.
    p.pod.ip(&["link", "set", "eth0", "mtu", "1500"]);
    assert_fails_with(
        &add(&p),
        "pod-mtu",
        "pod 1500 over vxlan.calico 1450 and uplink 1450",
    );
}

#[test]
fn pod_mtu_ignores_a_tunnel_device_that_is_down() {
    let p = wired(&[]);
    vxlan_calico(&p, "1450", false);
    assert_passes(&add(&p), "down vxlan.calico");
    // No tunnel: the uplink's own MTU is the bound.
    p.host.ip(&["link", "del", "vxlan.calico"]);
    p.host.ip(&["link", "set", "cp-uplink0", "mtu", "1400"]);
    assert_passes(&add(&p), "pod 1500 over a 1400 uplink: a warning");
    assert!(doctor(&p).contains("[WARNING pod-mtu]"));
}

#[test]
fn ip_conflict_names_a_pod_ip_held_by_vxlan_calico() {
    let p = wired(&[]);
    vxlan_calico(&p, "1450", true);
    p.pod.ip(&["link", "set", "eth0", "mtu", "1450"]);
    // Felix's tunnel address handed out again as this pod's (calico#3589).
    p.host.ip(&[
        "addr",
        "add",
        &format!("{POD_IP}/32"),
        "dev",
        "vxlan.calico",
    ]);
    let run = add(&p);
    assert_fails_with(&run, "ip-conflict", "pod IP on vxlan.calico");
    assert!(run.stdout.contains("tunnel device vxlan.calico"), "{run:?}");
    assert!(doctor(&p).contains("[ERROR ip-conflict]"));
    // Another address on the tunnel: quiet.
    p.host.ip(&[
        "addr",
        "del",
        &format!("{POD_IP}/32"),
        "dev",
        "vxlan.calico",
    ]);
    p.host
        .ip(&["addr", "add", "10.244.7.0/32", "dev", "vxlan.calico"]);
    assert_passes(&add(&p), "tunnel with its own address");
}
