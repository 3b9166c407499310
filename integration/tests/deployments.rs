//! The deployment matrix: each common way Calico is deployed, wired by fake-calico from Calico's
//! own conflist entry in real namespaces, run through a libcni-like runner with calico-preflight
//! both first in the chain and after `calico` (`install --position both`), the conflist in a
//! temp confDir where the plugin finds Calico's entry, `calico` and `calico-preflight` resolved
//! through CNI_PATH.
//!
//! For every deployment: the healthy pod passes ADD (result passed through byte for byte), CHECK
//! (versions that have it) and STATUS (1.1.0) for every CNI version with no error logged, and
//! `doctor` finds it without errors; each listed fault is caught, with its check id and the
//! object (route, sysctl key, interface) named in that check's line of the error: a node fault
//! by the entry first in the chain, a pod fault by the one after calico, and both by CHECK (and
//! a node fault by STATUS). Assertions are on check ids and object names, not on prose.

use calico_preflight_integration::dataplane;
use calico_preflight_integration::*;
use serde_json::{json, Value};

/// The versions the faults are run for: the first of each result era, and the newest (CHECK and
/// STATUS). Healthy pods run for every version in `VERSIONS`.
const FAULT_VERSIONS: &[&str] = &["0.3.0", "0.4.0", "1.1.0"];

/// The check ids a missing in-pod route may be filed under: today's `pod-default-route` and
/// `pod-gateway-route`, or a route check of its own.
const ROUTE_CHECKS: &[&str] = &[
    "pod-default-route",
    "pod-gateway-route",
    "pod-route",
    "pod-routes",
];

/// Calico's IPv6 next hop: the host end's link-local from the ee MAC.
const HOST_LL: &str = "fe80::ecee:eeff:feee:eeee";

struct Deployment {
    /// Calico's conflist entry (without `type`), fixture knobs included.
    calico: Value,
    /// The node's setup: sysctls, Felix's and kube-proxy's rules.
    node: fn(&Netns),
    /// Check ids that must not appear in the log at all for the healthy pod (not even warnings).
    quiet: &'static [&'static str],
    /// The host end's name must start with this.
    veth_prefix: &'static str,
    faults: Vec<Fault>,
}

struct Fault {
    /// fake-calico's `break` list.
    breaks: &'static [&'static str],
    /// The node set up like this instead of the deployment's healthy node.
    node: Option<fn(&Netns)>,
    /// Added to both calico-preflight entries.
    preflight: Value,
    /// The node's `iptables` command drives this backend ("legacy" or "nft"); None: the node
    /// has no iptables command (as minimal all-nftables nodes do), so that the machine running
    /// the tests does not decide the outcome.
    iptables: Option<&'static str>,
    /// The check it must be caught by (any one of these ids).
    checks: &'static [&'static str],
    /// What that check's line must name; `{veth}` is the host end's name.
    objects: &'static [&'static str],
}

impl Fault {
    fn pod(
        breaks: &'static [&'static str],
        checks: &'static [&'static str],
        objects: &'static [&'static str],
    ) -> Fault {
        Fault {
            breaks,
            node: None,
            preflight: json!({}),
            iptables: None,
            checks,
            objects,
        }
    }
    fn node(
        node: fn(&Netns),
        checks: &'static [&'static str],
        objects: &'static [&'static str],
    ) -> Fault {
        Fault {
            breaks: &[],
            node: Some(node),
            preflight: json!({}),
            iptables: None,
            checks,
            objects,
        }
    }
    fn with_preflight(mut self, extra: Value) -> Fault {
        self.preflight = extra;
        self
    }
    fn with_iptables(mut self, backend: &'static str) -> Fault {
        self.iptables = Some(backend);
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Nodes

fn v4_node(h: &Netns) {
    // An IPv4 cluster: Felix sets ip_forward (int_dataplane.go configureKernel), not IPv6's.
    h.sysctl("net.ipv4.ip_forward", "1");
}

fn dual_node(h: &Netns) {
    h.sysctl("net.ipv4.ip_forward", "1");
    h.sysctl("net.ipv6.conf.all.forwarding", "1");
}

/// An IPv6-only node whose operator manages forwarding (FELIX_IPFORWARDING=Disabled): IPv4
/// forwarding off, which no IPv6-only pod needs.
fn v6_only_node(h: &Netns) {
    h.sysctl("net.ipv4.ip_forward", "0");
    h.sysctl("net.ipv6.conf.all.forwarding", "1");
}

fn v4_forwarding_off(h: &Netns) {
    h.sysctl("net.ipv4.ip_forward", "0");
}

fn dual_v6_forwarding_off(h: &Netns) {
    h.sysctl("net.ipv4.ip_forward", "1");
    h.sysctl("net.ipv6.conf.all.forwarding", "0");
}

fn v6_only_forwarding_off(h: &Netns) {
    h.sysctl("net.ipv4.ip_forward", "0");
    h.sysctl("net.ipv6.conf.all.forwarding", "0");
}

/// Felix's nftables dataplane and kube-proxy in nftables mode, both families: what Felix's
/// FELIX_NFTABLESMODE=Auto chooses when it finds kube-proxy's table (felix/nftables/utils.go).
fn all_nftables_node(h: &Netns) {
    dual_node(h);
    dataplane::felix_nftables(h, &["ip", "ip6"]);
    dataplane::kube_proxy_nftables(h, &["ip", "ip6"]);
}

fn all_nftables_forwarding_off(h: &Netns) {
    all_nftables_node(h);
    h.sysctl("net.ipv4.ip_forward", "0");
}

/// kube-proxy in nftables mode (IPv4 table only, as on an IPv4 cluster) and Felix following it.
fn kube_proxy_nftables_node(h: &Netns) {
    v4_node(h);
    dataplane::felix_nftables(h, &["ip"]);
    dataplane::kube_proxy_nftables(h, &["ip"]);
}

/// kube-proxy in nftables mode while Felix programs iptables: Felix's Auto mode would have
/// followed kube-proxy (its detection: any chain in table `kube-proxy`), so Felix was forced
/// to iptables (FELIX_NFTABLESMODE=Disabled) or kube-proxy switched after Felix started.
fn kube_proxy_nftables_felix_legacy(h: &Netns) {
    v4_node(h);
    dataplane::kube_proxy_nftables(h, &["ip"]);
    dataplane::felix_iptables(h, "legacy");
}

fn kube_proxy_nftables_felix_iptables_nft(h: &Netns) {
    v4_node(h);
    dataplane::kube_proxy_nftables(h, &["ip"]);
    dataplane::felix_iptables(h, "nft");
}

// ---------------------------------------------------------------------------------------------
// One pod of one deployment

struct Case {
    host: Netns,
    pod: Netns,
    dirs: CniDirs,
    env: CniEnv,
    list: Value,
    version: String,
}

fn case(d: &Deployment, version: &str, fault: Option<&Fault>) -> Case {
    let host = Netns::new("dm-h");
    match fault.and_then(|f| f.node) {
        Some(node) => node(&host),
        None => (d.node)(&host),
    }
    let pod = Netns::new("dm-p");
    let dirs = CniDirs::new("dm");
    let mut env = CniEnv::new("ADD", &pod.path(), "eth0");
    env.path = dirs.bin_dir().display().to_string();
    let mut calico = d.calico.clone();
    calico["type"] = json!("calico");
    // calico-node writes the node's name here; Calico's CNI (and calico-nodename) needs it.
    let nodename = dirs.root.join("nodename");
    std::fs::write(&nodename, "node-1\n").expect("nodename file");
    calico["nodename_file"] = json!(nodename);
    if let Some(f) = fault {
        calico["break"] = json!(f.breaks);
    }
    let iptables = match fault.and_then(|f| f.iptables) {
        Some(backend) => dirs.fake_iptables(backend),
        None => dirs.root.join("no-iptables"),
    };
    let mut preflight = json!({"type": "calico-preflight", "confDir": dirs.conf_dir(),
        "cacheDir": dirs.cache_dir(), "logFile": dirs.log_file(), "nodeCheckTtlSeconds": 0,
        "iptablesCommand": iptables});
    if let Some(f) = fault {
        for (k, v) in f.preflight.as_object().into_iter().flatten() {
            preflight[k] = v.clone();
        }
    }
    let list = json!({"cniVersion": version, "name": "k8s-pod-network",
        "plugins": [preflight.clone(), calico, preflight]});
    dirs.write_conflist(&list);
    Case {
        host,
        pod,
        dirs,
        env,
        list,
        version: version.to_string(),
    }
}

impl Case {
    fn chain(&self, command: &str, cached: Option<&Value>) -> Vec<(String, PluginRun)> {
        run_chain_cached(
            &self.host,
            &self.list,
            &self.env.with_command(command),
            cached,
        )
    }
    /// Calico's entry alone (as the runtime runs it), for a pod the chain did not get to wire.
    fn wire(&self) -> Value {
        let mut conf = self.list["plugins"][1].clone();
        conf["cniVersion"] = json!(self.version);
        conf["name"] = self.list["name"].clone();
        let exe = find_in_path("calico", &self.env.path).expect("calico in CNI_PATH");
        let run = run_plugin(
            Some(&self.host),
            &exe,
            &self.env.vars(),
            conf.to_string().as_bytes(),
        );
        assert_eq!(run.status, 0, "calico could not wire the pod: {run:?}");
        run.json()
    }
    fn ctx(&self, what: &str, runs: &[(String, PluginRun)]) -> String {
        let mut s = format!("{} {what}", self.version);
        for (i, (ty, r)) in runs.iter().enumerate() {
            s.push_str(&format!(
                "\n  entry {i} {ty}: exit {} stdout {} stderr {}",
                r.status,
                cut(r.stdout.trim()),
                cut(r.stderr.trim())
            ));
        }
        s
    }
}

/// The first 600 chars: enough to see the error's check and object.
fn cut(s: &str) -> String {
    match s.char_indices().nth(600) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

fn has_check(version: &str) -> bool {
    !version.starts_with("0.3.")
}

/// The host end in a Calico result: the host-side interface that is not the `bwp…` extra one.
fn host_end(result: &Value) -> String {
    result["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i.get("sandbox").is_none())
        .filter_map(|i| i["name"].as_str())
        .find(|n| !n.starts_with("bwp"))
        .unwrap_or_default()
        .to_string()
}

/// Runs the healthy pod of `d` for every version; returns what went wrong.
fn healthy(d: &Deployment) -> Vec<String> {
    let mut problems = Vec::new();
    for version in VERSIONS {
        let c = case(d, version, None);
        let runs = c.chain("ADD", None);
        let ok = runs.len() == 3 && runs.iter().all(|(_, r)| r.status == 0);
        if !ok {
            problems.push(c.ctx("healthy ADD failed", &runs));
            continue;
        }
        let calico_out = runs[1].1.stdout.trim().to_string();
        if runs[2].1.stdout.trim() != calico_out {
            problems.push(c.ctx("ADD did not pass Calico's result through unchanged", &runs));
        }
        let result: Value = runs[1].1.json();
        let veth = host_end(&result);
        if !veth.starts_with(d.veth_prefix) {
            problems.push(format!(
                "{version}: host end {veth:?} does not start with {:?}",
                d.veth_prefix
            ));
        }
        if has_check(version) {
            let check = c.chain("CHECK", Some(&result));
            let ok = check.len() == 3
                && check.iter().all(|(_, r)| r.status == 0)
                && check[2].1.stdout.is_empty();
            if !ok {
                problems.push(c.ctx("healthy CHECK failed", &check));
            }
        }
        if *version == "1.1.0" {
            let status = c.chain("STATUS", None);
            if !status.iter().all(|(_, r)| r.status == 0) {
                problems.push(c.ctx("healthy STATUS failed", &status));
            }
        }
        let log = c.dirs.log();
        if log.contains("[ERROR ") {
            problems.push(format!(
                "{version}: an error was logged for a healthy pod:\n{log}"
            ));
        }
        for id in d.quiet {
            if log.contains(&format!(" {id}]")) {
                problems.push(format!(
                    "{version}: {id} has a finding on a healthy pod:\n{log}"
                ));
            }
        }
    }
    problems
}

/// `doctor` on the healthy node of `d` (Calico's conflist in its conf dir): the pod is found on
/// its host end and neither it nor the node has an error (warnings may be).
fn doctor(d: &Deployment) -> Vec<String> {
    let c = case(d, "1.0.0", None);
    let result = c.wire();
    let veth = host_end(&result);
    let mut args: Vec<std::ffi::OsString> = [
        "doctor",
        "--json",
        "--no-proc-scan",
        "--netns-dir",
        "/run/netns",
        "--prefix",
        d.veth_prefix,
    ]
    .map(Into::into)
    .into();
    args.extend(["--conf-dir".into(), c.dirs.conf_dir().into()]);
    args.extend(["--cni-bin-dir".into(), c.dirs.bin_dir().into()]);
    args.extend(["--iptables".into(), c.dirs.root.join("no-iptables").into()]);
    let run = preflight_in(&c.host.path(), &args);
    let ctx = format!(
        "doctor exit {}\nstdout {}\nstderr {}",
        run.status,
        cut(&run.stdout),
        cut(&run.stderr)
    );
    let Ok(report) = serde_json::from_str::<Value>(&run.stdout) else {
        return vec![ctx];
    };
    let mut problems = Vec::new();
    let pods = report["pods"].as_array().cloned().unwrap_or_default();
    match pods.iter().find(|p| p["hostVeth"] == json!(veth)) {
        None => problems.push(format!("the pod on {veth} was not found: {ctx}")),
        Some(p) => {
            let findings = p["findings"].to_string();
            if findings.contains("\"error\"") || findings.contains("\"Error\"") {
                problems.push(format!("the healthy pod on {veth} has errors: {findings}"));
            }
        }
    }
    if report["summary"]["nodeErrors"] != 0 || report["summary"]["withErrors"] != 0 {
        problems.push(format!("errors on a healthy node: {ctx}"));
    }
    // Doctor judges with Calico's entry, as ADD does: what ADD leaves quiet (e.g. the default
    // route on host-local custom-route nodes), doctor leaves quiet too, not even a warning.
    let node = report["node"].as_array().cloned().unwrap_or_default();
    let pod_findings = pods
        .iter()
        .filter(|p| p["hostVeth"] == json!(veth))
        .flat_map(|p| p["findings"].as_array().cloned().unwrap_or_default());
    for f in node.iter().cloned().chain(pod_findings) {
        if d.quiet.iter().any(|id| f["check"] == json!(id)) {
            problems.push(format!(
                "doctor: {} has a finding on a healthy pod: {f}",
                f["check"]
            ));
        }
    }
    problems
}

/// The error lines of check `id` in `details` (details join one line per finding with " | ").
fn error_lines<'a>(details: &'a str, id: &str) -> Vec<&'a str> {
    details
        .split(" | ")
        .filter(|l| l.starts_with(&format!("[ERROR {id}]")))
        .collect()
}

/// Whether `run` is calico-preflight failing with one of `f.checks`, naming `f.objects`.
fn caught(run: &PluginRun, version: &str, f: &Fault, veth: &str, code: u64) -> Result<(), String> {
    if run.status != 1 {
        return Err(format!("exit status {} (expected 1)", run.status));
    }
    let e: Value =
        serde_json::from_str(run.stdout.trim()).map_err(|e| format!("stdout not JSON: {e}"))?;
    if e["code"] != code || e["cniVersion"] != version {
        return Err(format!("code/cniVersion: {e}"));
    }
    let msg = e["msg"].as_str().unwrap_or_default();
    let details = e["details"].as_str().unwrap_or_default();
    let Some(id) = f
        .checks
        .iter()
        .find(|id| msg.starts_with(&format!("calico-preflight: {id}: ")))
    else {
        return Err(format!(
            "msg does not lead with one of {:?}: {msg}",
            f.checks
        ));
    };
    let objects: Vec<String> = f
        .objects
        .iter()
        .map(|o| o.replace("{veth}", veth))
        .collect();
    let lines = error_lines(details, id);
    if lines
        .iter()
        .any(|l| objects.iter().all(|o| l.contains(o.as_str())))
    {
        return Ok(());
    }
    Err(format!(
        "no [ERROR {id}] line names all of {objects:?}: {details}"
    ))
}

/// Runs every fault of `d` for FAULT_VERSIONS; returns what went wrong.
fn faults(d: &Deployment) -> Vec<String> {
    let mut problems = Vec::new();
    for version in FAULT_VERSIONS {
        for f in &d.faults {
            let what = format!("fault {:?} / node {}", f.breaks, f.node.is_some());
            let c = case(d, version, Some(f));
            let runs = c.chain("ADD", None);
            let Some((ty, last)) = runs.last() else {
                problems.push(c.ctx(&format!("{what}: nothing ran"), &runs));
                continue;
            };
            // The pod as Calico left it: from the chain when calico ran, else wired on its own
            // (a node fault stops the chain at the first entry, before calico).
            let result = match runs.get(1) {
                Some((_, r)) if r.status == 0 => r.json(),
                _ => c.wire(),
            };
            let veth = host_end(&result);
            // A node fault is the first entry's to catch (it checks the node before calico
            // runs, for the families Calico's IPAM config will assign); a pod fault the last's.
            let expected_at = if f.node.is_some() { 0 } else { 2 };
            let verdict = if last.status == 0 {
                Err("not caught: the whole chain passed".into())
            } else if ty != "calico-preflight" {
                Err(format!("{ty} failed, not calico-preflight"))
            } else if runs.len() != expected_at + 1 {
                Err(format!(
                    "caught by entry {} of the chain, not by entry {expected_at}",
                    runs.len() - 1
                ))
            } else {
                caught(last, version, f, &veth, 100)
            };
            if let Err(e) = verdict {
                problems.push(c.ctx(&format!("{what}: ADD did not catch it: {e}"), &runs));
            }
            if has_check(version) {
                let check = c.chain("CHECK", Some(&result));
                let verdict = match check.last() {
                    Some((ty, r)) if ty == "calico-preflight" => caught(r, version, f, &veth, 100),
                    _ => Err("CHECK passed or another plugin failed".into()),
                };
                if let Err(e) = verdict {
                    problems.push(c.ctx(&format!("{what}: CHECK did not catch it: {e}"), &check));
                }
            }
            if *version == "1.1.0" && f.node.is_some() {
                let status = c.chain("STATUS", None);
                let verdict = match status.last() {
                    Some((ty, r)) if ty == "calico-preflight" => caught(r, version, f, &veth, 50),
                    _ => Err("STATUS passed or another plugin failed".into()),
                };
                if let Err(e) = verdict {
                    problems.push(c.ctx(&format!("{what}: STATUS did not catch it: {e}"), &status));
                }
            }
        }
    }
    problems
}

fn assert_none(problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{} problem(s):\n\n{}",
        problems.len(),
        problems.join("\n\n")
    );
}

macro_rules! deployment {
    ($name:ident, $d:expr) => {
        mod $name {
            use super::*;
            pub fn deployment() -> Deployment {
                $d
            }
            #[test]
            fn healthy_passes_add_check_and_status_for_every_version() {
                assert_none(super::healthy(&deployment()));
            }
            #[test]
            fn doctor_finds_the_healthy_pod_without_errors() {
                assert_none(super::doctor(&deployment()));
            }
            #[test]
            fn faults_are_caught_with_the_object_named() {
                let d = deployment();
                assert!(!d.faults.is_empty());
                assert_none(super::faults(&d));
            }
        }
    };
}

fn calico_ipam(v4: bool, v6: bool) -> Value {
    json!({"type": "calico-ipam", "assign_ipv4": v4.to_string(), "assign_ipv6": v6.to_string()})
}

// ---------------------------------------------------------------------------------------------
// The matrix

deployment!(
    calico_ipam_ipv4,
    Deployment {
        // calico-ipam's defaults: assign_ipv4 "true", assign_ipv6 "false".
        calico: json!({"ipam": {"type": "calico-ipam"}}),
        node: v4_node,
        // IPv6 forwarding is off on this node, and no pod needs it. No iptables chains at all
        // (Felix not programmed yet, or the eBPF dataplane): no backend finding either.
        quiet: &["host-ip-forward", "iptables-backend"],
        veth_prefix: "cali",
        faults: vec![
            Fault::pod(
                &["no-route:0.0.0.0/0"],
                &["pod-default-route"],
                &["169.254.1.1"]
            ),
            Fault::node(
                v4_forwarding_off,
                &["host-ip-forward"],
                &["net.ipv4.ip_forward"]
            ),
        ],
    }
);

deployment!(
    calico_ipam_dual_stack,
    Deployment {
        calico: json!({"ipam": calico_ipam(true, true)}),
        node: dual_node,
        quiet: &[],
        veth_prefix: "cali",
        faults: vec![
            Fault::pod(&["no-route:::/0"], &["pod-default-route"], &[HOST_LL]),
            Fault::node(
                dual_v6_forwarding_off,
                &["host-ip-forward"],
                &["net.ipv6.conf.all.forwarding"]
            ),
        ],
    }
);

deployment!(
    calico_ipam_ipv6_only,
    Deployment {
        calico: json!({"ipam": calico_ipam(false, true)}),
        node: v6_only_node,
        // No IPv4 assigned: nothing IPv4 is expected (forwarding, proxy_arp, 169.254.1.1).
        quiet: &["host-ip-forward", "host-proxy-arp", "pod-gateway-route"],
        veth_prefix: "cali",
        faults: vec![
            Fault::node(
                v6_only_forwarding_off,
                &["host-ip-forward"],
                &["net.ipv6.conf.all.forwarding"]
            ),
            Fault::pod(
                &["no-proxy-arp"],
                &["host-proxy-arp"],
                &["net.ipv6.conf.{veth}.proxy_ndp"]
            ),
            Fault::pod(&["no-route:::/0"], &["pod-default-route"], &[HOST_LL]),
        ],
    }
);

deployment!(
    host_local_ipv6_only,
    Deployment {
        // host-local's ranges tell the families: one IPv6 range, so an IPv6-only pod.
        calico: json!({"ipam": {"type": "host-local", "ranges": [[{"subnet": "fd00:85::/64"}]]}}),
        node: v6_only_node,
        quiet: &["host-ip-forward", "host-proxy-arp", "pod-gateway-route"],
        veth_prefix: "cali",
        faults: vec![
            Fault::node(
                v6_only_forwarding_off,
                &["host-ip-forward"],
                &["net.ipv6.conf.all.forwarding"]
            ),
            Fault::pod(
                &["no-forwarding"],
                &["host-forwarding"],
                &["net.ipv6.conf.{veth}.forwarding"]
            ),
        ],
    }
);

deployment!(
    host_local_custom_routes,
    Deployment {
        // Canal-style: host-local on the node's podCIDR, routes only to the cluster ranges
        // (a gw, which Calico ignores, on one of them).
        calico: json!({"ipam": {"type": "host-local", "ranges": [[{"subnet": "usePodCidr"}]],
            "routes": [{"dst": "10.0.0.0/8"}, {"dst": "192.168.0.0/16", "gw": "10.244.1.1"}]}}),
        node: v4_node,
        quiet: &["pod-default-route"],
        veth_prefix: "cali",
        faults: vec![
            Fault::pod(&["no-route:10.0.0.0/8"], ROUTE_CHECKS, &["10.0.0.0/8"]),
            Fault::pod(
                &["no-gateway-route"],
                &["pod-gateway-route"],
                &["169.254.1.1"]
            ),
        ],
    }
);

deployment!(
    host_local_dual_stack_custom_routes,
    Deployment {
        calico: json!({"ipam": {"type": "host-local",
            "ranges": [[{"subnet": "usePodCidr"}], [{"subnet": "usePodCidrIPv6"}]],
            "routes": [{"dst": "10.0.0.0/8"}, {"dst": "fd00:99::/64"}]}}),
        node: dual_node,
        quiet: &["pod-default-route"],
        veth_prefix: "cali",
        faults: vec![Fault::pod(
            &["no-route:fd00:99::/64"],
            ROUTE_CHECKS,
            &["fd00:99::/64"]
        )],
    }
);

deployment!(
    host_local_include_default_routes,
    Deployment {
        calico: json!({"include_default_routes": true, "ipam": {"type": "host-local",
            "ranges": [[{"subnet": "10.85.0.0/16", "gateway": "10.85.0.254"}]],
            "routes": [{"dst": "192.168.0.0/16"}]}}),
        node: v4_node,
        quiet: &[],
        veth_prefix: "cali",
        faults: vec![
            Fault::pod(
                &["no-route:192.168.0.0/16"],
                ROUTE_CHECKS,
                &["192.168.0.0/16"]
            ),
            Fault::pod(
                &["no-route:0.0.0.0/0"],
                &["pod-default-route"],
                &["169.254.1.1"]
            ),
        ],
    }
);

deployment!(
    calico_ipam_v3_32_result_with_per_ip_routes,
    Deployment {
        calico: json!({"ipam": calico_ipam(true, true), "shape": "v3.32"}),
        node: dual_node,
        quiet: &[],
        veth_prefix: "cali",
        faults: vec![
            Fault::pod(&["no-host-route"], &["host-route"], &["10.244.1.5"]),
            Fault::pod(&["no-route:::/0"], &["pod-default-route"], &[HOST_LL]),
        ],
    }
);

deployment!(
    extra_host_interface_first_in_result,
    Deployment {
        // The bandwidth plugin's ifb, listed before Calico's host end.
        calico: json!({"ipam": {"type": "calico-ipam"}, "extraHostInterface": "ifb"}),
        node: v4_node,
        quiet: &["host-veth"],
        veth_prefix: "cali",
        faults: vec![Fault::pod(&["host-veth-down"], &["host-veth"], &["{veth}"])],
    }
);

deployment!(
    extra_host_veth_in_a_v3_30_result,
    Deployment {
        // No pod interface in the result and two host interfaces: only the veth peer tells.
        calico: json!({"ipam": calico_ipam(true, true), "extraHostInterface": "veth", "shape": "v3.30"}),
        node: dual_node,
        quiet: &["host-veth"],
        veth_prefix: "cali",
        faults: vec![Fault::pod(
            &["no-forwarding"],
            &["host-forwarding"],
            &["{veth}"]
        )],
    }
);

deployment!(
    interface_prefix_other_than_cali,
    Deployment {
        // FELIX_INTERFACEPREFIX=wkl,cali: Calico names the host end with the first.
        calico: json!({"ipam": {"type": "calico-ipam"}, "interfacePrefix": "wkl,cali"}),
        node: v4_node,
        quiet: &["host-veth"],
        veth_prefix: "wkl",
        faults: vec![
            Fault::pod(
                &["no-proxy-arp"],
                &["host-proxy-arp"],
                &["net.ipv4.conf.{veth}.proxy_arp"]
            ),
            Fault::pod(&["host-veth-down"], &["host-veth"], &["{veth}"]),
        ],
    }
);

deployment!(
    ecmp_ipv6_default_route,
    Deployment {
        calico: json!({"ipam": calico_ipam(true, true), "podDefaultRoute6": "ecmp"}),
        node: dual_node,
        quiet: &[],
        veth_prefix: "cali",
        faults: vec![Fault::pod(
            &["ecmp-wrong-nexthops"],
            &["pod-default-route"],
            &[HOST_LL]
        )],
    }
);

deployment!(
    default_routes_on_nexthop_objects,
    Deployment {
        calico: json!({"ipam": calico_ipam(true, true), "nexthopObjects": true}),
        node: dual_node,
        quiet: &["pod-default-route"],
        veth_prefix: "cali",
        faults: vec![
            Fault::pod(
                &["no-route:0.0.0.0/0"],
                &["pod-default-route"],
                &["169.254.1.1"]
            ),
            Fault::pod(&["no-route:::/0"], &["pod-default-route"], &[HOST_LL]),
        ],
    }
);

deployment!(
    netkit_requested_veth_fallback,
    Deployment {
        // This kernel lacks CONFIG_NETKIT: Calico falls back to a veth (addWorkloadLink).
        calico: json!({"ipam": {"type": "calico-ipam"}, "device_type": "netkit"}),
        node: v4_node,
        quiet: &["host-veth"],
        veth_prefix: "cali",
        faults: vec![Fault::pod(
            &["no-host-route"],
            &["host-route"],
            &["10.244.1.5"]
        )],
    }
);

deployment!(
    all_nftables_node,
    Deployment {
        calico: json!({"ipam": calico_ipam(true, true)}),
        node: all_nftables_node,
        // No finding at all on a healthy all-nftables node.
        quiet: &["iptables-backend"],
        veth_prefix: "cali",
        faults: vec![
            Fault::node(
                all_nftables_forwarding_off,
                &["host-ip-forward"],
                &["net.ipv4.ip_forward"]
            ),
            Fault::pod(&["no-proxy-arp"], &["host-proxy-arp"], &["{veth}"]),
        ],
    }
);

deployment!(
    kube_proxy_nftables_mode,
    Deployment {
        calico: json!({"ipam": {"type": "calico-ipam"}}),
        node: kube_proxy_nftables_node,
        quiet: &["iptables-backend"],
        veth_prefix: "cali",
        // Felix in iptables mode (either backend) while kube-proxy is in nftables mode. Raised
        // to error here so the finding is asserted whatever severity it has by default.
        faults: vec![
            Fault::node(
                kube_proxy_nftables_felix_legacy,
                &["iptables-backend"],
                &["kube-proxy"]
            )
            .with_preflight(json!({"checks": {"iptables-backend": "error"}}))
            .with_iptables("legacy"),
            Fault::node(
                kube_proxy_nftables_felix_iptables_nft,
                &["iptables-backend"],
                &["kube-proxy"]
            )
            .with_preflight(json!({"checks": {"iptables-backend": "error"}}))
            .with_iptables("nft"),
        ],
    }
);

// ---------------------------------------------------------------------------------------------
// The fixtures themselves: fake-calico wires each deployment as Calico would (so that a
// healthy case failing is the plugin's fault, not the fixture's).

/// Wires the healthy pod of `d` with Calico's entry alone; returns (case, result, host end).
fn wired(d: &Deployment) -> (Case, Value, String) {
    let c = case(d, "1.0.0", None);
    let result = c.wire();
    let veth = host_end(&result);
    (c, result, veth)
}

/// The pod's routes of one family as `ip` prints them, one per line.
fn pod_routes(c: &Case, v6: bool) -> Vec<String> {
    let fam = if v6 { "-6" } else { "-4" };
    c.pod
        .ip(&[fam, "route", "show"])
        .lines()
        // Right after wiring the pod end's carrier may not be up yet (linkwatch is async).
        .map(|l| l.replace(" linkdown", "").trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

fn host_sysctl(c: &Case, key: &str) -> String {
    c.host
        .run(&["cat", &format!("/proc/sys/{}", key.replace('.', "/"))])
        .trim()
        .to_string()
}

#[test]
fn fixture_host_local_routes_replace_the_defaults_unless_included() {
    let (c, result, _) = wired(&host_local_custom_routes::deployment());
    assert_eq!(
        pod_routes(&c, false),
        [
            "10.0.0.0/8 via 169.254.1.1 dev eth0",
            "169.254.1.1 dev eth0 scope link",
            "192.168.0.0/16 via 169.254.1.1 dev eth0"
        ]
    );
    // host-local's own result: its gateway and its routes, as configured.
    assert_eq!(result["ips"][0]["gateway"], "10.244.1.1");
    assert_eq!(result["ips"][0]["address"], "10.244.1.5/32");
    assert_eq!(
        result["routes"],
        json!([{"dst": "10.0.0.0/8"}, {"dst": "192.168.0.0/16", "gw": "10.244.1.1"}])
    );
    let (c, _, _) = wired(&host_local_include_default_routes::deployment());
    assert_eq!(
        pod_routes(&c, false),
        [
            "default via 169.254.1.1 dev eth0",
            "169.254.1.1 dev eth0 scope link",
            "192.168.0.0/16 via 169.254.1.1 dev eth0"
        ]
    );
    let (c, _, _) = wired(&host_local_dual_stack_custom_routes::deployment());
    let v6 = pod_routes(&c, true);
    assert!(
        v6.iter()
            .any(|r| r.starts_with(&format!("fd00:99::/64 via {HOST_LL} dev eth0"))),
        "{v6:?}"
    );
    assert!(!v6.iter().any(|r| r.starts_with("default")), "{v6:?}");
}

#[test]
fn fixture_ipv6_only_pod_has_nothing_ipv4() {
    let (c, result, veth) = wired(&calico_ipam_ipv6_only::deployment());
    assert_eq!(
        result["ips"],
        json!([{"address": "fd00:10::5/128", "interface": 1}])
    );
    assert_eq!(pod_routes(&c, false), Vec::<String>::new());
    let v6 = pod_routes(&c, true);
    assert!(
        v6.iter()
            .any(|r| r.starts_with(&format!("default via {HOST_LL} dev eth0"))),
        "{v6:?}"
    );
    // configureSysctls sets the IPv4 ones only when IPv4 is assigned.
    assert_eq!(
        host_sysctl(&c, &format!("net.ipv4.conf.{veth}.proxy_arp")),
        "0"
    );
    assert_eq!(
        host_sysctl(&c, &format!("net.ipv4.conf.{veth}.route_localnet")),
        "0"
    );
    assert_eq!(
        host_sysctl(&c, &format!("net.ipv6.conf.{veth}.proxy_ndp")),
        "1"
    );
    assert_eq!(
        host_sysctl(&c, &format!("net.ipv6.conf.{veth}.forwarding")),
        "1"
    );
    assert_eq!(host_sysctl(&c, "net.ipv4.ip_forward"), "0");
}

#[test]
fn fixture_v3_32_result_lists_one_route_per_ip() {
    let (_, result, _) = wired(&calico_ipam_v3_32_result_with_per_ip_routes::deployment());
    assert_eq!(
        result["routes"],
        json!([{"dst": "10.244.1.5/32"}, {"dst": "fd00:10::5/128"}])
    );
}

#[test]
fn fixture_extra_host_interface_is_real_and_listed_first() {
    let (c, result, veth) = wired(&extra_host_interface_first_in_result::deployment());
    let extra = result["interfaces"][0]["name"].as_str().unwrap_or_default();
    assert!(extra.starts_with("bwp") && extra.len() == 15, "{result}");
    assert!(c.host.ip(&["-d", "link", "show", extra]).contains(" ifb "));
    assert_eq!(result["interfaces"][1]["name"], json!(veth));
    // The IPs still point at the pod interface.
    assert_eq!(result["interfaces"][2]["name"], "eth0");
    assert_eq!(result["ips"][0]["interface"], 2);
    let (c, result, _) = wired(&extra_host_veth_in_a_v3_30_result::deployment());
    let extra = result["interfaces"][0]["name"].as_str().unwrap_or_default();
    assert!(c.host.ip(&["-d", "link", "show", extra]).contains("veth"));
    assert_eq!(result["interfaces"].as_array().map(Vec::len), Some(2));
}

#[test]
fn fixture_prefix_ecmp_netkit_and_nftables_nodes() {
    let (c, _, veth) = wired(&interface_prefix_other_than_cali::deployment());
    assert!(veth.starts_with("wkl") && veth.len() == 14, "{veth}");
    assert!(c.host.ip(&["link", "show", &veth]).contains("state UP"));

    let (c, _, _) = wired(&ecmp_ipv6_default_route::deployment());
    let v6 = c.pod.ip(&["-6", "route", "show", "default"]);
    assert!(
        v6.contains(&format!("nexthop via {HOST_LL} dev eth0"))
            && v6.contains("nexthop via fe80::1 dev net1"),
        "{v6}"
    );

    let (c, _, _) = wired(&default_routes_on_nexthop_objects::deployment());
    let v4 = c.pod.ip(&["route", "show", "default"]);
    let v6 = c.pod.ip(&["-6", "route", "show", "default"]);
    assert!(v4.contains("nhid 41 via 169.254.1.1 dev eth0"), "{v4}");
    assert!(
        v6.contains(&format!("nhid 61 via {HOST_LL} dev eth0")),
        "{v6}"
    );

    let (c, _, veth) = wired(&netkit_requested_veth_fallback::deployment());
    assert!(c.host.ip(&["-d", "link", "show", &veth]).contains("veth"));

    let (c, _, _) = wired(&all_nftables_node::deployment());
    let tables = c.host.run(&["nft", "list", "tables"]);
    for t in [
        "table ip calico",
        "table ip6 calico",
        "table ip kube-proxy",
        "table ip6 kube-proxy",
    ] {
        assert!(tables.contains(t), "{tables}");
    }
    let c = case(
        &kube_proxy_nftables_mode::deployment(),
        "1.0.0",
        kube_proxy_nftables_mode::deployment().faults.first(),
    );
    assert!(c
        .host
        .run(&["iptables-legacy-save"])
        .contains("-A INPUT -j cali-INPUT"));
    assert!(c
        .host
        .run(&["nft", "list", "tables"])
        .contains("table ip kube-proxy"));
}

/// A KubeVirt migration target: calico-ipam returned no routes and Calico skipped the host
/// route (k8s.go `skipHostSideRoutes`; Felix adds it after the migration). ADD passes with a
/// warning that says why; the same wiring for another pod name fails (the fault above).
#[test]
fn kubevirt_migration_target_without_host_route_passes_with_a_warning() {
    let d = calico_ipam_ipv4::deployment();
    let fault = Fault::pod(&["no-host-route"], &["host-route"], &[]);
    let mut c = case(&d, "1.0.0", Some(&fault));
    c.env.args =
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=vms;K8S_POD_NAME=virt-launcher-vm1-x7k2p".into();
    let runs = c.chain("ADD", None);
    assert!(
        runs.len() == 3 && runs.iter().all(|(_, r)| r.status == 0),
        "{}",
        c.ctx("migration target ADD failed", &runs)
    );
    let log = c.dirs.log();
    assert!(
        log.contains("host-route") && log.contains("live-migration target"),
        "no warning saying why:\n{log}"
    );
}

/// Adversarial: healthy wiring with another CNI_IFNAME (runtimes may pass net0, multus names
/// its own): every deployment's healthy pod still passes ADD and CHECK.
#[test]
fn healthy_pod_with_an_ifname_other_than_eth0_passes() {
    let mut problems = Vec::new();
    for d in [
        calico_ipam_dual_stack::deployment(),
        host_local_dual_stack_custom_routes::deployment(),
    ] {
        let mut c = case(&d, "1.0.0", None);
        c.env.ifname = "net0".into();
        let runs = c.chain("ADD", None);
        if !(runs.len() == 3 && runs.iter().all(|(_, r)| r.status == 0)) {
            problems.push(c.ctx("ADD with CNI_IFNAME net0 failed", &runs));
            continue;
        }
        let result: Value = runs[1].1.json();
        let check = c.chain("CHECK", Some(&result));
        if !check.iter().all(|(_, r)| r.status == 0) {
            problems.push(c.ctx("CHECK with CNI_IFNAME net0 failed", &check));
        }
        if c.dirs.log().contains("[ERROR") {
            problems.push(format!("an error was logged:\n{}", c.dirs.log()));
        }
    }
    assert_none(problems);
}

/// Adversarial: a CNI 1.1 conflist with `cniVersions` and no `cniVersion` (libcni picks the
/// version and passes it on stdin): Calico's entry is still found, so a host-local
/// custom-route pod has no default-route finding, and nothing errors.
#[test]
fn conflist_with_cni_versions_list_only_is_read() {
    let d = host_local_custom_routes::deployment();
    let c = case(&d, "1.0.0", None);
    let mut on_disk = c.list.clone();
    if let Some(o) = on_disk.as_object_mut() {
        o.remove("cniVersion");
        o.insert("cniVersions".into(), json!(["0.4.0", "1.0.0"]));
    }
    c.dirs.write_conflist(&on_disk);
    let runs = c.chain("ADD", None);
    assert!(
        runs.len() == 3 && runs.iter().all(|(_, r)| r.status == 0),
        "{}",
        c.ctx("ADD failed", &runs)
    );
    let log = c.dirs.log();
    assert!(
        !log.contains("[ERROR ") && !log.contains(" pod-default-route]"),
        "{log}"
    );
}

/// Adversarial: dual-stack host-local whose `ipam.routes` has only the IPv4 default: Calico
/// programs only that (k8s.go), so the pod has no IPv6 route via the host end at all. Healthy.
#[test]
fn dual_stack_host_local_with_only_an_ipv4_default_in_routes_is_healthy() {
    let d = Deployment {
        calico: json!({"ipam": {"type": "host-local",
            "ranges": [[{"subnet": "usePodCidr"}], [{"subnet": "usePodCidrIPv6"}]],
            "routes": [{"dst": "0.0.0.0/0"}]}}),
        node: dual_node,
        quiet: &["pod-default-route", "pod-routes", "pod-gateway-route"],
        veth_prefix: "cali",
        faults: vec![],
    };
    let mut problems = healthy(&d);
    problems.extend(doctor(&d));
    assert_none(problems);
}

/// Adversarial: multus adds `net1` to the pod after Calico's chain (its own subnet and a
/// route of its own): CHECK of Calico's network, and doctor, still pass.
#[test]
fn a_second_pod_interface_from_multus_is_left_alone() {
    let d = calico_ipam_dual_stack::deployment();
    let c = case(&d, "1.0.0", None);
    let runs = c.chain("ADD", None);
    assert!(
        runs.iter().all(|(_, r)| r.status == 0),
        "{}",
        c.ctx("ADD failed", &runs)
    );
    let result: Value = runs[1].1.json();
    c.pod.ip(&[
        "link", "add", "net1", "type", "veth", "peer", "name", "net1p",
    ]);
    c.pod.ip(&["addr", "add", "192.168.50.5/24", "dev", "net1"]);
    c.pod.ip(&["addr", "add", "fd00:50::5/64", "dev", "net1"]);
    c.pod.ip(&["link", "set", "net1", "up"]);
    c.pod.ip(&["link", "set", "net1p", "up"]);
    c.pod.ip(&[
        "route",
        "add",
        "172.16.0.0/12",
        "via",
        "192.168.50.1",
        "dev",
        "net1",
    ]);
    let check = c.chain("CHECK", Some(&result));
    assert!(
        check.iter().all(|(_, r)| r.status == 0),
        "{}",
        c.ctx("CHECK with net1 failed", &check)
    );
    assert!(!c.dirs.log().contains("[ERROR "), "{}", c.dirs.log());
}
