//! Facts for `doctor`'s node reconciliation (`stale-host-route`, `duplicate-pod-ip`): every
//! host end doctor listed with the IPs of the pod behind it, and the host's main-table routes,
//! read once per scan (one route dump per family, whatever the number of pods).
//!
//! Only the main table: Calico's CNI adds a pod's host route there
//! (cni-plugin/pkg/dataplane/linux/dataplane_linux.go `SetupRoutes`, no table given) and Felix
//! keeps it there (felix/dataplane/linux/int_dataplane.go, `unix.RT_TABLE_MAIN`); a route in
//! another table never makes that `RouteAdd` fail with EEXIST.

use super::netlink::Netlink;
use super::{Addr, Deadline, InspectError, Route};
use std::net::IpAddr;
use std::time::Duration;

/// One host end (a link with one of the prefixes) and what is known of the pod behind it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostEnd {
    pub index: u32,
    pub name: String,
    /// How a person names the pod: `namespace/name`, else its namespace's bind-mount name.
    pub pod: String,
    /// The namespace's bind-mount name (or `pid N (comm)`), when found.
    pub netns_label: Option<String>,
    /// The namespace's path: two host ends with the same path are one pod's interfaces.
    pub netns_path: Option<String>,
    /// The pod's IPs on its interface (neither link-local nor loopback); `None` when unknown:
    /// its namespace was not found or not read, or it has no interface at the peer's index.
    pub ips: Option<Vec<IpAddr>>,
    /// Every address of the pod's namespace, on any of its links (neither link-local nor
    /// loopback), read in the re-check only (`None` before): KubeVirt's bridge binding moves the
    /// pod's IP off the interface Calico wired onto a dummy `eth0` (kubevirt pkg/network,
    /// `switchPodInterfaceWithDummy`), and the route to it is the VM's, not a stale one.
    pub ns_ips: Option<Vec<IpAddr>>,
}

impl HostEnd {
    /// "pod default/web-0 (cali123, netns cni-1b2c...)": how findings name a pod.
    pub fn label(&self) -> String {
        match &self.netns_label {
            Some(ns) if *ns != self.pod => format!("pod {} ({}, netns {ns})", self.pod, self.name),
            _ => format!("pod {} ({})", self.pod, self.name),
        }
    }
    pub fn holds(&self, ip: IpAddr) -> bool {
        self.ips.as_ref().is_some_and(|v| v.contains(&ip))
    }
    /// Whether the pod holds `ip` on any of its namespace's links (known after the re-check).
    pub fn holds_in_netns(&self, ip: IpAddr) -> bool {
        self.holds(ip) || self.ns_ips.as_ref().is_some_and(|v| v.contains(&ip))
    }
    /// Whether the pod's interface is known to hold no IP, nor any other link of its namespace
    /// (read in the re-check): a KubeVirt VM's pod in bridge binding, whose VM holds the IP.
    pub fn holds_none(&self) -> bool {
        self.ips.as_ref().is_some_and(|v| v.is_empty())
            && self.ns_ips.as_ref().is_some_and(|v| v.is_empty())
    }
    /// Whether `other` is the same pod (another interface of the same namespace).
    pub fn same_pod(&self, other: &HostEnd) -> bool {
        self.netns_path.is_some() && self.netns_path == other.netns_path
    }
}

/// Whether Felix's floating-IP DNAT chain has rules on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatingIps {
    /// Not looked at (no finding needed it).
    NotRead,
    /// `cali-fip-dnat` has no rules (or does not exist): no workload has a floating IP.
    None,
    /// It has rules: some workload has a floating IP, which Felix routes to its link.
    InUse,
    /// The chains could not be read.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileFacts {
    pub ends: Vec<HostEnd>,
    /// The main table's routes, both families, next hops resolved.
    pub routes: Vec<Route>,
    pub floating_ips: FloatingIps,
}

/// The pod IPs among a pod interface's addresses, as doctor reports them.
pub fn pod_ips(addrs: &[Addr]) -> Vec<IpAddr> {
    addrs
        .iter()
        .map(|a| a.ip)
        .filter(|ip| !super::is_link_local(*ip) && !ip.is_loopback())
        .collect()
}

/// The main table's routes: one dump per family.
pub fn main_routes(nl: &mut Netlink) -> Result<Vec<Route>, InspectError> {
    nl.main_routes()
}

/// The IPs of one pod, read again: its interface's, and its whole namespace's.
pub type Reread = Option<(Vec<IpAddr>, Vec<IpAddr>)>;

/// The IPs of the interface at index `peer` in each namespace, and of every link there, read
/// again (a re-check of the few pods a finding is about; one address dump per pod): `None`
/// where it could not be read or the interface is gone.
pub fn reread_ips(pods: Vec<(String, u32)>, per_pod: Duration) -> Vec<Reread> {
    let peers: Vec<u32> = pods.iter().map(|(_, p)| *p).collect();
    let paths = pods.into_iter().map(|(p, _)| p).collect();
    super::netns::in_each_netns(paths, per_pod, move |i, deadline| {
        let mut nl = Netlink::open(deadline)?;
        let Some(link) = nl.link_by_index(peers[i])? else {
            return Ok(None);
        };
        let all = nl.addresses(None)?;
        let own: Vec<Addr> = all
            .iter()
            .filter(|a| a.index == link.index)
            .cloned()
            .collect();
        Ok(Some((pod_ips(&own), pod_ips(&all))))
    })
    .into_iter()
    .map(|r| r.ok().and_then(|r| r.ok()).flatten())
    .collect()
}

/// Felix's floating-IP chain (felix/rules/rule_defs.go `ChainFIPDnat`, "cali-fip-dnat"), which
/// floating_ip_mgr.go fills with a DNAT per floating IP; the nftables dataplane prefixes chain
/// names with their table, hence the suffix match.
pub fn floating_ips(deadline: Deadline) -> FloatingIps {
    match super::netfilter::read_chains(deadline.instant()) {
        Ok(state) => {
            if state
                .chains
                .iter()
                .any(|c| c.name.ends_with("cali-fip-dnat") && c.rules > 0)
            {
                FloatingIps::InUse
            } else {
                FloatingIps::None
            }
        }
        Err(e) => {
            log::debug!("floating IPs: could not read the iptables chains: {e}");
            FloatingIps::Unknown
        }
    }
}
