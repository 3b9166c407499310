//! Read-only inspection of the kernel: the only place that talks to netlink or /proc/sys.
//!
//! Gathering is kept apart from deciding: this module returns plain data ([`PodView`],
//! [`HostView`]) and the checks judge it, so every check is testable without root.

pub mod calico_conf;
pub mod calico_node_files;
pub mod cni_cache;
pub mod cni_files;
pub mod elf;
pub mod hostnet;
pub mod netfilter;
pub mod netlink;
pub mod netmgr;
pub mod netns;
mod nlmsg;
pub mod node;
pub mod probe;
pub mod reconcile;
pub mod rooted;
pub mod runtime;
pub mod scan;
pub mod sysctl;

use ipnetwork::IpNetwork;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// A bound on all kernel queries of one plugin call.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(Instant);

impl Deadline {
    pub fn after(d: Duration) -> Deadline {
        Deadline(Instant::now() + d)
    }
    /// Time left, or `None` once it has passed.
    pub fn remaining(&self) -> Option<Duration> {
        self.0
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    }
    pub fn instant(&self) -> Instant {
        self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InspectError {
    TimedOut { what: String },
    Io { what: String, detail: String },
    Kernel { what: String, errno: i32 },
    Decode { what: String, detail: String },
}

impl InspectError {
    pub fn io(what: &str, e: std::io::Error) -> InspectError {
        InspectError::Io {
            what: what.to_string(),
            detail: e.to_string(),
        }
    }
}

impl std::fmt::Display for InspectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InspectError::TimedOut { what } => write!(f, "timed out trying to {what}"),
            InspectError::Io { what, detail } => write!(f, "could not {what}: {detail}"),
            InspectError::Kernel { what, errno } => write!(
                f,
                "could not {what}: {}",
                std::io::Error::from_raw_os_error(*errno)
            ),
            InspectError::Decode { what, detail } => {
                write!(f, "could not {what}: unexpected kernel answer: {detail}")
            }
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// IFLA_INFO_KIND: "veth", "bridge", ...; `None` for plain devices.
    pub kind: Option<String>,
    pub mac: Option<Vec<u8>>,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// Carrier (IFF_LOWER_UP): for a veth, the peer is up too.
    pub lower_up: bool,
    /// IFLA_LINK: for a veth, the peer's ifindex (in the peer's namespace).
    pub peer_index: Option<u32>,
    pub peer_netnsid: Option<i32>,
    /// IFLA_MTU.
    pub mtu: Option<u32>,
}

impl Link {
    pub fn mac_string(&self) -> String {
        match &self.mac {
            Some(m) => format_mac(m),
            None => "none".into(),
        }
    }
}

/// fe80::/10: the addresses a veth gets by itself, which are never a pod's.
pub fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => a.segments()[0] & 0xffc0 == 0xfe80,
    }
}

pub fn format_mac(m: &[u8]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    pub index: u32,
    pub ip: IpAddr,
    pub prefix_len: u8,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Route {
    pub v6: bool,
    /// `None` for a default route.
    pub dst: Option<IpNetwork>,
    pub dst_len: u8,
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
    pub scope_link: bool,
    pub scope_host: bool,
    /// RTN_LOCAL: the address is one of this namespace's own.
    pub local: bool,
    pub unicast: bool,
    pub table: u32,
    pub metric: u32,
    /// The next hops of a multipath route (RTA_MULTIPATH), or of the nexthop object the route
    /// names (RTA_NH_ID, resolved); empty when `gateway`/`oif` above are the only path.
    pub nexthops: Vec<NextHop>,
    /// RTA_NH_ID: the route uses a nexthop object (`ip nexthop`).
    pub nh_id: Option<u32>,
}

/// One path of a route.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NextHop {
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
}

impl Route {
    pub fn is_default(&self) -> bool {
        self.dst_len == 0
    }
    /// Every path of the route: its next hops when it has several (or a nexthop object),
    /// else its own gateway and oif.
    pub fn paths(&self) -> Vec<NextHop> {
        if self.nexthops.is_empty() {
            vec![NextHop {
                gateway: self.gateway,
                oif: self.oif,
            }]
        } else {
            self.nexthops.clone()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    pub index: u32,
    pub ip: IpAddr,
    pub mac: Option<Vec<u8>>,
    pub state: u16,
}

/// A `/proc/sys` value as read (trimmed), or why it could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysctlRead {
    pub key: String,
    pub value: Result<String, String>,
}

/// What the pod's namespace holds for the pod interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodView {
    pub link: Option<Link>,
    /// Addresses on the pod interface.
    pub addrs: Vec<Addr>,
    /// Main-table routes of the pod namespace.
    pub routes: Vec<Route>,
    /// IPv4 neighbours on the pod interface (for the ARP check).
    pub neighbours: Vec<Neighbour>,
}

/// Why the pod's namespace could not be entered (the `pod-netns` check reports it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetnsProblem {
    pub path: String,
    pub found: String,
}

/// What the host (the plugin's own namespace) holds for one pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostView {
    /// The prevResult's host interface that is the host end: the one that is the pod
    /// interface's peer; else, when the result names only one, that one (if it exists).
    pub veth_by_name: Option<Link>,
    /// The interface at the pod interface's peer index.
    pub veth_by_peer: Option<Link>,
    /// Link-local IPv6 addresses of the host veth (only gathered for IPv6 pods).
    pub veth_v6_link_local: Vec<Ipv6Addr>,
    pub sysctls: Vec<SysctlRead>,
    /// For each pod IP, the FIB entry the host would use to reach it.
    pub routes_to_pod: Vec<RouteLookup>,
    /// Node-wide facts (gateway route, tunnel devices, uplink), shared by every pod.
    pub net: hostnet::HostNet,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteLookup {
    pub ip: IpAddr,
    pub route: Option<Route>,
    /// Name of the route's output interface, when it is not the host veth.
    pub oif_name: Option<String>,
}

impl HostView {
    /// The host end of the pod's veth, as best known.
    pub fn veth(&self) -> Option<&Link> {
        self.veth_by_name.as_ref().or(self.veth_by_peer.as_ref())
    }
    pub fn sysctl(&self, key: &str) -> Option<&Result<String, String>> {
        self.sysctls.iter().find(|s| s.key == key).map(|s| &s.value)
    }
}

/// What to look at, from the CNI call and the prevResult.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    pub netns: String,
    pub ifname: String,
    pub pod_ips: Vec<IpNetwork>,
    /// Every host-side interface the prevResult names (no `sandbox`), in result order: Calico's
    /// host end, and whatever other plugins before us added (the bandwidth plugin's ifb, ...).
    /// The host end is the one that is the pod interface's peer.
    pub host_ifaces: Vec<String>,
    /// K8S_POD_NAME from CNI_ARGS, when the runtime passed it (KubeVirt's `virt-launcher-*`).
    pub pod_name: Option<String>,
    /// Whether the prevResult has any `routes`; `None` when unknown (doctor has no result).
    pub result_has_routes: Option<bool>,
}

impl Target {
    pub fn has_v4(&self) -> bool {
        self.pod_ips.iter().any(IpNetwork::is_ipv4)
    }
    pub fn has_v6(&self) -> bool {
        self.pod_ips.iter().any(IpNetwork::is_ipv6)
    }
}

/// How to find the pod interface inside the pod's namespace.
#[derive(Debug, Clone)]
pub enum PodInterface {
    /// CNI_IFNAME, during ADD/CHECK.
    Name(String),
    /// The host veth's peer index, when scanning a node.
    Index(u32),
}

/// Gathers the pod side, inside the pod's namespace, on a thread of its own.
pub fn gather_pod(
    target: &Target,
    deadline: Deadline,
) -> Result<Result<PodView, NetnsProblem>, InspectError> {
    gather_pod_at(
        &target.netns,
        PodInterface::Name(target.ifname.clone()),
        deadline,
    )
}

pub fn gather_pod_at(
    netns_path: &str,
    which: PodInterface,
    deadline: Deadline,
) -> Result<Result<PodView, NetnsProblem>, InspectError> {
    netns::in_netns(netns_path, deadline, move |deadline| {
        pod_view(&which, deadline)
    })
}

/// The pod view, read from inside the pod's namespace (the calling thread must be in it).
pub fn pod_view(which: &PodInterface, deadline: Deadline) -> Result<PodView, InspectError> {
    let mut nl = netlink::Netlink::open(deadline)?;
    let link = match which {
        PodInterface::Name(n) => nl.link_by_name(n)?,
        PodInterface::Index(i) => nl.link_by_index(*i)?,
    };
    let Some(link) = link else {
        return Ok(PodView::default());
    };
    let addrs = nl.addresses(Some(link.index))?;
    let routes = nl.main_routes()?;
    let neighbours = nl.neighbours(link.index)?;
    Ok(PodView {
        link: Some(link),
        addrs,
        routes,
        neighbours,
    })
}

/// Gathers the host side for one pod, in the calling thread's namespace.
pub fn gather_host(
    target: &Target,
    pod: Option<&PodView>,
    deadline: Deadline,
) -> Result<HostView, InspectError> {
    let mut nl = netlink::Netlink::open(deadline)?;
    gather_host_with(&mut nl, target, pod)
}

/// Host interfaces of a result looked up when none is the peer: a bound on requests.
const MAX_HOST_IFACES: usize = 8;

/// The device kinds Calico makes a pod's interface pair of (dataplane_linux.go
/// `addWorkloadLink`): a veth, or a netkit pair with `device_type: "netkit"`.
pub fn is_calico_kind(kind: Option<&str>) -> bool {
    matches!(kind, Some("veth") | Some("netkit"))
}

/// Which of the result's host interfaces is the host end.
#[derive(Debug, PartialEq, Eq)]
enum Named<'a> {
    /// The pod interface's peer is one of them: that one; the others are left alone.
    Peer,
    /// The result names one interface, not the peer: look it up, for host-veth to say what
    /// is wrong with it.
    Lookup(&'a str),
    /// No peer is known: the first of them of Calico's kind.
    Scan,
    /// Several (or none), none the peer: host-veth goes on with the peer.
    None,
}

fn pick_named<'a>(named: &'a [String], peer: Option<&Link>) -> Named<'a> {
    match (peer, named) {
        (Some(p), _) if named.contains(&p.name) => Named::Peer,
        (_, [one]) => Named::Lookup(one),
        (None, [_, _, ..]) => Named::Scan,
        _ => Named::None,
    }
}

fn lookup_named(nl: &mut netlink::Netlink, name: &str) -> Result<Option<Link>, InspectError> {
    // An invalid name cannot exist; the host-veth check reports it as not found.
    if crate::cni::env::validate_ifname(name).is_err() {
        return Ok(None);
    }
    nl.link_by_name(name)
}

/// [`gather_host`] on an open socket (a node scan reuses one for every pod).
pub fn gather_host_with(
    nl: &mut netlink::Netlink,
    target: &Target,
    pod: Option<&PodView>,
) -> Result<HostView, InspectError> {
    let net = hostnet::gather(nl, target.has_v4(), target.has_v6())?;
    gather_host_shared(nl, target, pod, net)
}

/// [`gather_host_with`] with the node-wide facts already gathered (a node scan gathers them
/// once, for both families).
pub fn gather_host_shared(
    nl: &mut netlink::Netlink,
    target: &Target,
    pod: Option<&PodView>,
    net: hostnet::HostNet,
) -> Result<HostView, InspectError> {
    let mut view = HostView {
        net,
        ..HostView::default()
    };
    if let Some(peer) = pod.and_then(|p| p.link.as_ref()).and_then(|l| l.peer_index) {
        view.veth_by_peer = nl.link_by_index(peer)?;
    }
    view.veth_by_name = match pick_named(&target.host_ifaces, view.veth_by_peer.as_ref()) {
        Named::Peer => view.veth_by_peer.clone(),
        Named::Lookup(name) => lookup_named(nl, name)?,
        Named::Scan => {
            let mut found = None;
            for name in target.host_ifaces.iter().take(MAX_HOST_IFACES) {
                if let Some(l) = lookup_named(nl, name)? {
                    if is_calico_kind(l.kind.as_deref()) {
                        found = Some(l);
                        break;
                    }
                }
            }
            found
        }
        Named::None => None,
    };
    let veth = view.veth().cloned();
    if let Some(veth) = &veth {
        if target.has_v6() {
            view.veth_v6_link_local = nl
                .addresses(Some(veth.index))?
                .into_iter()
                .filter_map(|a| match a.ip {
                    IpAddr::V6(v6) if is_link_local(a.ip) => Some(v6),
                    _ => None,
                })
                .collect();
        }
        view.sysctls = sysctl::read_veth_sysctls(&veth.name, target.has_v4(), target.has_v6());
    }
    for ip in &target.pod_ips {
        let route = nl.route_fibmatch(ip.ip())?;
        // Only another interface needs naming (ip-conflict, host-route's "found").
        let veth_index = veth.as_ref().map(|v| v.index);
        let other_oif = route.as_ref().and_then(|r| {
            r.paths()
                .into_iter()
                .filter_map(|p| p.oif)
                .find(|oif| Some(*oif) != veth_index)
        });
        let oif_name = match other_oif {
            Some(oif) => nl.link_by_index(oif)?.map(|l| l.name),
            None => None,
        };
        view.routes_to_pod.push(RouteLookup {
            ip: ip.ip(),
            route,
            oif_name,
        });
    }
    Ok(view)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_end_is_the_named_interface_that_is_the_peer() {
        let peer = Link {
            name: "cali1".into(),
            index: 10,
            ..Link::default()
        };
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // The bandwidth plugin's ifb first, Calico's host end second: the peer is picked.
        assert_eq!(
            pick_named(&names(&["bwp1", "cali1"]), Some(&peer)),
            Named::Peer
        );
        assert_eq!(pick_named(&names(&["cali1"]), Some(&peer)), Named::Peer);
        // One name, not the peer: looked up so host-veth can say what is wrong.
        assert_eq!(
            pick_named(&names(&["cali2"]), Some(&peer)),
            Named::Lookup("cali2")
        );
        // Several, none the peer: none picked (host-veth warns and judges the peer).
        assert_eq!(
            pick_named(&names(&["bwp1", "cali2"]), Some(&peer)),
            Named::None
        );
        // No peer known: scan them for Calico's kind.
        assert_eq!(pick_named(&names(&["bwp1", "cali2"]), None), Named::Scan);
        assert_eq!(pick_named(&[], Some(&peer)), Named::None);
        assert!(is_calico_kind(Some("netkit")) && is_calico_kind(Some("veth")));
        assert!(!is_calico_kind(Some("ifb")) && !is_calico_kind(None));
    }
}
