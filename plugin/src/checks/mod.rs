//! The checks: each is a small pure function over gathered facts that returns findings.
//!
//! A check says what is wrong; whether that fails ADD is decided by its severity, which the
//! operator can change per check in the config.

pub mod calico_kubeconfig;
pub mod calico_nodename;
pub mod cni_bin_dir;
pub mod cni_binary_runnable;
pub mod conflist_order;
pub mod duplicate_pod_ip;
pub mod host_forwarding;
pub mod host_gateway_route;
pub mod host_ip_forward;
pub mod host_network_manager;
pub mod host_proxy_arp;
pub mod host_route;
pub mod host_rp_filter;
pub mod host_veth;
pub mod host_veth_mac;
pub mod host_veth_peer;
pub mod ip_conflict;
pub mod iptables_backend;
pub mod leaked_cache_entry;
pub mod orphan_veth;
pub mod pod_arp;
pub mod pod_default_route;
pub mod pod_gateway_probe;
pub mod pod_gateway_route;
pub mod pod_interface;
pub mod pod_mtu;
pub mod pod_netns;
pub mod pod_routes;
pub mod stale_host_route;

#[cfg(test)]
pub(crate) mod fixtures;

// Fact types live with the code that gathers them; re-exported for the checks.
use crate::inspect::calico_conf::CalicoConf;
pub use crate::inspect::node::{IptablesCommand, NodeFacts};
use crate::inspect::{HostView, NetnsProblem, PodView, Target};
use serde::{Deserialize, Serialize};

/// Calico's pod gateway: a link-local address the host answers for by proxy ARP.
pub const CALICO_GATEWAY_V4: std::net::Ipv4Addr = std::net::Ipv4Addr::new(169, 254, 1, 1);
/// The MAC Calico gives the host end of every pod veth.
pub const CALICO_HOST_MAC: [u8; 6] = [0xee; 6];

/// The remedy shared by every "a piece of Calico's wiring is missing" finding.
pub const CALICO_UNFINISHED: &str = "Calico did not finish wiring this pod: check calico-node and \
     the Calico CNI log (/var/log/calico/cni/cni.log) on this node, then delete the pod to have it wired again";

macro_rules! check_ids {
    ($($variant:ident => $id:literal, $sev:ident, $what:literal;)*) => {
        /// Stable check identifiers, used in messages, logs and the `checks` config map.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum CheckId { $($variant),* }
        impl CheckId {
            pub const ALL: &'static [CheckId] = &[$(CheckId::$variant),*];
            pub fn as_str(self) -> &'static str {
                match self { $(CheckId::$variant => $id),* }
            }
            pub fn default_severity(self) -> Severity {
                match self { $(CheckId::$variant => Severity::$sev),* }
            }
            /// One line on what the check verifies (README, `--help`).
            pub fn describe(self) -> &'static str {
                match self { $(CheckId::$variant => $what),* }
            }
            pub fn parse(s: &str) -> Option<CheckId> {
                match s { $($id => Some(CheckId::$variant),)* _ => None }
            }
        }
    };
}

check_ids! {
    PodNetns => "pod-netns", Error, "CNI_NETNS can be opened and is a network namespace";
    PodInterface => "pod-interface", Error, "CNI_IFNAME exists in the pod, is up, and carries the pod's IPs";
    PodGatewayRoute => "pod-gateway-route", Error, "the pod has 169.254.1.1/32 dev <ifname> scope link";
    PodDefaultRoute => "pod-default-route", Error, "the pod's default route goes via 169.254.1.1 (IPv6: the host veth's link-local) on <ifname>, where Calico's config gives the pod default routes";
    PodRoutes => "pod-routes", Error, "each custom route of Calico's host-local ipam.routes is in the pod via 169.254.1.1 (IPv6: the host veth's link-local) on <ifname>";
    HostVeth => "host-veth", Error, "the host end of the pod's veth exists, is the pod interface's peer, is a veth (or Calico's netkit) and is up";
    HostVethMac => "host-veth-mac", Warn, "the host end of the veth has MAC ee:ee:ee:ee:ee:ee";
    HostProxyArp => "host-proxy-arp", Error, "proxy_arp (IPv4) and proxy_ndp (IPv6) are 1 on the host veth";
    HostForwarding => "host-forwarding", Error, "forwarding is enabled on the host veth";
    HostRoute => "host-route", Error, "each pod IP has a /32 (/128) scope-link route on the host veth";
    IpConflict => "ip-conflict", Error, "no other host interface or route claims a pod IP";
    PodArp => "pod-arp", Error, "the pod's ARP entry for 169.254.1.1, if any, points at the host veth's MAC";
    CniBinDir => "cni-bin-dir", Error, "every plugin (and ipam) binary of the conflist is an executable file in one of the CNI_PATH dirs";
    ConflistOrder => "conflist-order", Warn, "no other network's config file sorts before ours in the conf dir (the runtime uses the first)";
    IptablesBackend => "iptables-backend", Error, "Calico's iptables rules live in the same backend (legacy or nft) as kube-proxy's and the host's; Felix's nftables dataplane runs with kube-proxy's nftables mode";
    HostIpForward => "host-ip-forward", Error, "net.ipv4.ip_forward=1 where pods get IPv4, net.ipv6.conf.all.forwarding=1 where they get IPv6 (the pod's IPs, else Calico's IPAM config)";
    HostRpFilter => "host-rp-filter", Warn, "net.ipv4.conf.all.rp_filter is not 2 (loose), which Felix refuses";
    CniBinaryRunnable => "cni-binary-runnable", Error, "every plugin (and ipam) binary of the chain can be executed here: an ELF for this machine, its loader or #! interpreter present, not on a noexec mount";
    CalicoKubeconfig => "calico-kubeconfig", Error, "the kubeconfig Calico's entry names exists, parses, names a server, and its token has not expired (warns ahead of expiry)";
    CalicoNodename => "calico-nodename", Error, "Calico's nodename file exists (unless nodename_file_optional) and agrees with the entry's nodename";
    HostGatewayRoute => "host-gateway-route", Error, "the host has a route covering 169.254.1.1 that does not go out the pod's own host end (proxy ARP answers for the pod's gateway only then)";
    PodMtu => "pod-mtu", Error, "the pod interface's MTU is at most each Calico tunnel device's in use, and the uplink's less the tunnels' overhead";
    HostNetworkManager => "host-network-manager", Error, "NetworkManager and systemd-networkd, when running, leave Calico's interfaces (cali*, tunl0, vxlan.calico, wireguard.cali) alone";
    PodGatewayProbe => "pod-gateway-probe", Error, "opt-in (\"probe\": true; on in doctor): from inside the pod, an ARP request for 169.254.1.1 (IPv6: a neighbor solicitation for the host end's link-local) is answered by the host end's MAC";
    OrphanVeth => "orphan-veth", Warn, "doctor: every host cali* link has its peer in a live pod namespace and is claimed by an entry of libcni's result cache";
    StaleHostRoute => "stale-host-route", Error, "doctor: every /32 (/128) route on a cali* link is to an IP the pod on that link holds, and no pod IP is routed via another link";
    DuplicatePodIp => "duplicate-pod-ip", Error, "doctor: no two pods on the node hold the same IP";
    LeakedCacheEntry => "leaked-cache-entry", Warn, "doctor: no libcni result cache entry outlives both its sandbox and its host link (DEL never ran)";
}

impl std::fmt::Display for CheckId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for CheckId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CheckId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        CheckId::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown check {s:?}")))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Off,
    Warn,
    Error,
}

impl Severity {
    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "error" => Some(Severity::Error),
            "warn" | "warning" => Some(Severity::Warn),
            "off" => Some(Severity::Off),
            _ => None,
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Warn => "WARNING",
            Severity::Off => "OFF",
        }
    }
}

/// One thing found wrong: what, on which object, expected vs found, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub check: CheckId,
    pub severity: Severity,
    /// The object at fault: "pod interface eth0", "host veth cali12345".
    pub object: String,
    /// What is wrong, as a short standalone clause ("interface is down").
    pub problem: String,
    pub expected: String,
    pub found: String,
    pub remedy: String,
}

impl Finding {
    /// A finding at the check's default severity; the runner applies the configured one.
    pub fn new(
        check: CheckId,
        object: impl Into<String>,
        problem: impl Into<String>,
        expected: impl Into<String>,
        found: impl Into<String>,
        remedy: impl Into<String>,
    ) -> Finding {
        Finding {
            check,
            severity: check.default_severity(),
            object: object.into(),
            problem: problem.into(),
            expected: expected.into(),
            found: found.into(),
            remedy: remedy.into(),
        }
    }

    /// The same finding at a lower severity than its check's default (a check whose findings
    /// differ in weight, like iptables-backend's stale-rules warning).
    pub fn at(mut self, severity: Severity) -> Finding {
        self.severity = severity;
        self
    }

    /// `<check-id>: <what is wrong>, on <object>`: the one-line summary.
    pub fn headline(&self) -> String {
        format!("{}: {}, on {}", self.check, self.problem, self.object)
    }

    /// The full text: headline, expected, found, remedy.
    pub fn detail(&self) -> String {
        format!(
            "[{} {}] {}, on {}. Expected: {}. Found: {}. What to do: {}",
            self.severity.label(),
            self.check,
            self.problem,
            self.object,
            self.expected,
            self.found,
            self.remedy
        )
    }
}

/// Everything the pod checks look at.
pub struct PodFacts<'a> {
    pub target: &'a Target,
    pub pod: &'a Result<PodView, NetnsProblem>,
    pub host: &'a HostView,
    /// Calico's entry in our network's conf file; `None` when it could not be found or read
    /// (then what Calico meant is unknown, and checks that depend on it warn instead of fail).
    pub calico: Option<&'a CalicoConf>,
    /// The active gateway probe's outcome; `None` when it did not run (off, or nothing to probe).
    pub probe: Option<&'a crate::inspect::probe::ProbeOutcome>,
}

impl<'a> PodFacts<'a> {
    /// The pod view when the namespace could be entered.
    pub fn pod(&self) -> Option<&'a PodView> {
        self.pod.as_ref().ok()
    }
    /// The pod interface when it exists.
    pub fn pod_link(&self) -> Option<&'a crate::inspect::Link> {
        self.pod().and_then(|p| p.link.as_ref())
    }
    pub fn pod_object(&self) -> String {
        format!("pod interface {}", self.target.ifname)
    }
}

/// A check: a pure function from gathered facts to findings.
type Check<F> = fn(&F) -> Vec<Finding>;
type PodCheck = for<'a> fn(&PodFacts<'a>) -> Vec<Finding>;

/// The pod checks in the order their findings are reported (causes before consequences).
pub const POD_CHECKS: &[(CheckId, PodCheck)] = &[
    (CheckId::PodNetns, pod_netns::check),
    (CheckId::PodInterface, pod_interface::check),
    (CheckId::PodGatewayRoute, pod_gateway_route::check),
    (CheckId::PodDefaultRoute, pod_default_route::check),
    (CheckId::PodRoutes, pod_routes::check),
    (CheckId::HostVeth, host_veth::check),
    (CheckId::HostVethMac, host_veth_mac::check),
    (CheckId::HostProxyArp, host_proxy_arp::check),
    (CheckId::HostForwarding, host_forwarding::check),
    (CheckId::HostRoute, host_route::check),
    (CheckId::IpConflict, ip_conflict::check),
    (CheckId::HostGatewayRoute, host_gateway_route::check),
    (CheckId::PodArp, pod_arp::check),
    (CheckId::PodMtu, pod_mtu::check),
    // Last: the path itself, after the configuration that explains a failure.
    (CheckId::PodGatewayProbe, pod_gateway_probe::check),
];

/// Runs every enabled pod check. `overrides` gives a check's configured severity, if the
/// operator set one; otherwise each finding keeps the severity its check gave it.
pub fn run_pod_checks(
    facts: &PodFacts,
    overrides: impl Fn(CheckId) -> Option<Severity>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for (id, check) in POD_CHECKS {
        apply(&mut out, *id, &overrides, || check(facts));
    }
    out
}

/// Runs one check unless it is off, then applies the operator's severity, if any.
fn apply(
    out: &mut Vec<Finding>,
    id: CheckId,
    overrides: &impl Fn(CheckId) -> Option<Severity>,
    check: impl FnOnce() -> Vec<Finding>,
) {
    let forced = overrides(id);
    if forced == Some(Severity::Off) {
        return;
    }
    out.extend(check().into_iter().map(|f| match forced {
        Some(sev) => f.at(sev),
        None => f,
    }));
}

type VethCheck = fn(&crate::inspect::Link) -> Vec<Finding>;

/// `doctor`'s checks of a host veth whose pod namespace was not found (no pod facts exist).
pub const UNPAIRED_VETH_CHECKS: &[(CheckId, VethCheck)] = &[
    (CheckId::HostVeth, host_veth_peer::check),
    (CheckId::OrphanVeth, orphan_veth::unpaired),
];

pub fn run_unpaired_veth_checks(
    veth: &crate::inspect::Link,
    overrides: impl Fn(CheckId) -> Option<Severity>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for (id, check) in UNPAIRED_VETH_CHECKS {
        apply(&mut out, *id, &overrides, || check(veth));
    }
    out
}

type NodeCheck = Check<NodeFacts>;

pub const NODE_CHECKS: &[(CheckId, NodeCheck)] = &[
    (CheckId::CniBinDir, cni_bin_dir::check),
    (CheckId::CniBinaryRunnable, cni_binary_runnable::check),
    (CheckId::CalicoKubeconfig, calico_kubeconfig::check),
    (CheckId::CalicoNodename, calico_nodename::check),
    (CheckId::ConflistOrder, conflist_order::check),
    (CheckId::IptablesBackend, iptables_backend::check),
    (CheckId::HostIpForward, host_ip_forward::check),
    (CheckId::HostRpFilter, host_rp_filter::check),
    (CheckId::HostNetworkManager, host_network_manager::check),
];

pub fn run_node_checks(
    facts: &NodeFacts,
    overrides: impl Fn(CheckId) -> Option<Severity>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for (id, check) in NODE_CHECKS {
        apply(&mut out, *id, &overrides, || check(facts));
    }
    out
}

/// Whether a check is one of the node checks (cached, run first in the chain and on STATUS).
pub fn is_node_check(id: CheckId) -> bool {
    NODE_CHECKS.iter().any(|(c, _)| *c == id)
}

/// `ip route`-like text for a route; `name_of` resolves an ifindex to a name where known.
pub fn describe_route(
    r: &crate::inspect::Route,
    name_of: impl Fn(u32) -> Option<String>,
) -> String {
    let mut s = match r.dst {
        _ if r.is_default() => "default".to_string(),
        Some(d) => d.to_string(),
        None => "?".to_string(),
    };
    if r.local {
        s = format!("local {s}");
    }
    let dev = |oif: u32| match name_of(oif) {
        Some(n) => format!(" dev {n}"),
        None => format!(" dev if{oif}"),
    };
    if r.nexthops.is_empty() {
        if let Some(gw) = r.gateway {
            s.push_str(&format!(" via {gw}"));
        }
        if let Some(oif) = r.oif {
            s.push_str(&dev(oif));
        }
    } else {
        // ECMP / nexthop object: every path, as `ip route` shows them.
        if let Some(id) = r.nh_id {
            s.push_str(&format!(" nhid {id}"));
        }
        for p in &r.nexthops {
            s.push_str(" nexthop");
            if let Some(gw) = p.gateway {
                s.push_str(&format!(" via {gw}"));
            }
            if let Some(oif) = p.oif {
                s.push_str(&dev(oif));
            }
        }
    }
    if r.scope_link {
        s.push_str(" scope link");
    }
    s
}

/// The pod's routes of one family, rendered for a "found" field.
pub(crate) fn pod_routes_text(f: &PodFacts, v6: bool) -> String {
    let Some(pod) = f.pod() else {
        return "unknown".into();
    };
    let link = f.pod_link();
    let rendered: Vec<String> = pod
        .routes
        .iter()
        .filter(|r| r.v6 == v6)
        .filter(|r| !(v6 && r.dst.is_some_and(|d| crate::inspect::is_link_local(d.ip()))))
        .map(|r| describe_route(r, |i| link.filter(|l| l.index == i).map(|l| l.name.clone())))
        .collect();
    if rendered.is_empty() {
        format!("no IPv{} routes", if v6 { 6 } else { 4 })
    } else {
        format!("routes: {}", rendered.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for id in CheckId::ALL {
            assert_eq!(CheckId::parse(id.as_str()), Some(*id));
            assert!(!id.describe().is_empty());
        }
        assert_eq!(CheckId::parse("nope"), None);
    }

    #[test]
    fn healthy_wiring_has_no_findings() {
        for fx in [fixtures::healthy_v4(), fixtures::healthy_dual()] {
            let f = run_pod_checks(&fx.facts(), |_| None);
            assert!(f.is_empty(), "{f:#?}");
        }
    }

    #[test]
    fn severity_overrides_apply_and_off_skips() {
        let mut fx = fixtures::healthy_v4();
        fx.host.veth_by_name.as_mut().unwrap().mac = Some(vec![2, 0, 0, 0, 0, 1]);
        let f = run_pod_checks(&fx.facts(), |_| None);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Warn);
        let f = run_pod_checks(&fx.facts(), |id| {
            (id == CheckId::HostVethMac).then_some(Severity::Error)
        });
        assert_eq!(f[0].severity, Severity::Error);
        let f = run_pod_checks(&fx.facts(), |id| {
            (id == CheckId::HostVethMac).then_some(Severity::Off)
        });
        assert!(f.is_empty());
    }
}
