//! A small synchronous rtnetlink client: one socket, one request at a time, every read bounded
//! by a deadline ([`super::nlmsg::Transport`], shared with the nf_tables reader). Only GET
//! requests exist here: the plugin never changes the network. And only targeted ones on the
//! ADD path: a link by name or index, one interface's addresses, the FIB entry for one IP,
//! one nexthop object; whole-table dumps are only of the pod's own namespace (its routes and
//! neighbours) or for `doctor`.
//!
//! Messages are `netlink-packet-route`'s: requests are its message types, emitted; replies
//! decoded with its header and attribute parsers. We parse only the attributes we report,
//! each with the crate's parser for it, and skip the rest unparsed: a link message carries
//! dozens of attributes (stats, per-family devconf, driver data) whose layout changes with
//! kernels, and a parser that trips on one of those must not fail a healthy pod (as in
//! rust-netlink/netlink-packet-route#151, a link message rtnetlink 0.16 could not parse).
//! It also keeps the per-message cost down. The crate has no nexthop-object messages
//! (RTM_NEWNEXTHOP, uapi `linux/nexthop.h`); those few fields are decoded here.

use super::nlmsg::{InspectErrorKind, Malformed, Reply, Transport};
use super::{Addr, Deadline, InspectError, Link, Neighbour, NextHop, Route};
use ipnetwork::IpNetwork;
use netlink_packet_core::{
    parse_ip, parse_u32, Emitable, NlaBuffer, NlasIterator, Parseable, ParseableParametrized,
    NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressHeader, AddressMessage};
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkHeader, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourHeader, NeighbourMessage,
};
use netlink_packet_route::nsid::{NsidAttribute, NsidMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteLwEnCapType, RouteMessage,
    RouteNextHop, RouteScope, RouteType, RouteVia,
};
use netlink_packet_route::AddressFamily;
use netlink_sys::protocols::NETLINK_ROUTE;
use std::net::IpAddr;

pub struct Netlink {
    t: Transport,
}

// Fixed headers of the replies (sizes of the uapi structs): attributes start after them.
/// struct ifinfomsg
const IFINFOMSG_LEN: usize = 16;
/// struct ifaddrmsg
const IFADDRMSG_LEN: usize = 8;
/// struct rtmsg
const RTMSG_LEN: usize = 12;
/// struct ndmsg
const NDMSG_LEN: usize = 12;
/// struct rtgenmsg, padded to NLMSG_ALIGN.
const RTGENMSG_LEN: usize = 4;
/// struct nhmsg { u8 nh_family, nh_scope, nh_protocol, resvd; u32 nh_flags; }
const NHMSG_LEN: usize = 8;

// uapi linux/rtnetlink.h: not in netlink-packet-route (no nexthop messages) nor in libc.
const RTM_NEWNEXTHOP: u16 = 104;
const RTM_GETNEXTHOP: u16 = 106;
// uapi linux/nexthop.h
const NHA_ID: u16 = 1;
const NHA_GROUP: u16 = 2;
const NHA_OIF: u16 = 5;
const NHA_GATEWAY: u16 = 6;
/// sizeof(struct nexthop_grp) { u32 id; u8 weight, weight_high; u16 resvd2; }
const NEXTHOP_GRP_LEN: usize = 8;
/// A bound on the member lookups one route can cost: far above any pod's group; members past
/// it are not looked up (the route then shows fewer paths, never a wrong one).
const MAX_GROUP_LOOKUPS: usize = 256;

/// A request: its message type and everything after the nlmsghdr.
struct Request {
    kind: u16,
    payload: Vec<u8>,
}

/// `msg` (one of the crate's message types) as a request of type `kind`. Emitting the inner
/// message, not a `RouteNetlinkMessage`, keeps the encoders of every other rtnetlink message
/// (tc, bridge, ...) off the path: code a short-lived process must page in costs time.
fn request<M: Emitable>(kind: u16, msg: &M) -> Request {
    let mut payload = vec![0u8; msg.buffer_len()];
    msg.emit(&mut payload);
    Request { kind, payload }
}

fn link_request(index: u32, name: Option<&str>) -> Result<Request, Malformed> {
    let mut m = LinkMessage::default();
    m.header.index = index;
    if let Some(n) = name {
        // nla_len is 16 bits: a longer value cannot be encoded (the crate would not check).
        if n.len() > 1024 {
            return Err(Malformed(format!("{}-byte interface name", n.len())));
        }
        m.attributes.push(LinkAttribute::IfName(n.to_string()));
    }
    Ok(request(libc::RTM_GETLINK, &m))
}

fn addr_request(index: u32) -> Request {
    // AF_UNSPEC: both families; with strict checking the kernel filters by ifa_index.
    let mut m = AddressMessage::default();
    m.header.index = index;
    request(libc::RTM_GETADDR, &m)
}

fn route_dump_request(family: AddressFamily) -> Request {
    let mut m = RouteMessage::default();
    m.header.address_family = family;
    request(libc::RTM_GETROUTE, &m)
}

fn fibmatch_request(ip: IpAddr) -> Request {
    let mut m = RouteMessage::default();
    (m.header.address_family, m.header.destination_prefix_length) = match ip {
        IpAddr::V4(_) => (AddressFamily::Inet, 32),
        IpAddr::V6(_) => (AddressFamily::Inet6, 128),
    };
    m.header.flags = RouteFlags::FibMatch;
    m.attributes
        .push(RouteAttribute::Destination(RouteAddress::from(ip)));
    request(libc::RTM_GETROUTE, &m)
}

fn neigh_request() -> Request {
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Inet;
    request(libc::RTM_GETNEIGH, &m)
}

fn nsid_request(fd: std::os::fd::RawFd) -> Request {
    let mut m = NsidMessage::default();
    m.attributes.push(NsidAttribute::Fd(fd as u32));
    request(libc::RTM_GETNSID, &m)
}

/// RTM_GETNEXTHOP for one id: a zero nhmsg (strict checking wants it so) and NHA_ID.
fn nexthop_request(id: u32) -> Request {
    let mut payload = vec![0u8; NHMSG_LEN];
    payload.extend_from_slice(&8u16.to_ne_bytes());
    payload.extend_from_slice(&NHA_ID.to_ne_bytes());
    payload.extend_from_slice(&id.to_ne_bytes());
    Request {
        kind: RTM_GETNEXTHOP,
        payload,
    }
}

impl Netlink {
    /// Opens a socket in the calling thread's current network namespace.
    pub fn open(deadline: Deadline) -> Result<Netlink, InspectError> {
        let io_err = |e: std::io::Error| InspectError::io("open a netlink socket", e);
        let mut t = Transport::open(NETLINK_ROUTE, deadline.instant()).map_err(io_err)?;
        // Lets the kernel filter dumps by ifindex instead of sending us every address.
        t.socket_mut()
            .set_netlink_get_strict_chk(true)
            .map_err(io_err)?;
        Ok(Netlink { t })
    }

    /// A new bound for the queries that follow (a node scan reuses one socket for many pods).
    pub fn set_deadline(&mut self, deadline: Deadline) {
        self.t.set_deadline(deadline.instant());
    }

    pub fn link_by_name(&mut self, name: &str) -> Result<Option<Link>, InspectError> {
        let what = format!("look up interface {name}");
        let req = link_request(0, Some(name)).map_err(|e| bad_request(&what, e))?;
        self.get_one(req, libc::RTM_NEWLINK, link_from, &what)
    }

    pub fn link_by_index(&mut self, index: u32) -> Result<Option<Link>, InspectError> {
        let what = format!("look up interface index {index}");
        let req = link_request(index, None).map_err(|e| bad_request(&what, e))?;
        self.get_one(req, libc::RTM_NEWLINK, link_from, &what)
    }

    pub fn links(&mut self) -> Result<Vec<Link>, InspectError> {
        let req = link_request(0, None).map_err(|e| bad_request("list interfaces", e))?;
        self.dump(req, libc::RTM_NEWLINK, link_from, "list interfaces")
    }

    /// Addresses of one interface (`Some(index)`) or of all of them.
    pub fn addresses(&mut self, index: Option<u32>) -> Result<Vec<Addr>, InspectError> {
        let req = addr_request(index.unwrap_or(0));
        let mut out = self.dump(req, libc::RTM_NEWADDR, addr_from, "list addresses")?;
        // Old kernels ignore the filter; keep the contract either way.
        out.retain(|a| index.is_none_or(|i| a.index == i));
        Ok(out)
    }

    /// Every route of the main table, both families, with their next hops: a multipath
    /// route's from RTA_MULTIPATH, a nexthop-object route's from its object.
    pub fn main_routes(&mut self) -> Result<Vec<Route>, InspectError> {
        let mut routes = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let req = route_dump_request(family);
            routes.extend(self.dump(req, libc::RTM_NEWROUTE, route_from, "list routes")?);
        }
        routes.retain(|r| r.table == u32::from(libc::RT_TABLE_MAIN));
        for r in &mut routes {
            self.resolve_nexthop_object(r)?;
        }
        Ok(routes)
    }

    /// The FIB entry the kernel would use for `ip` (`ip route get fibmatch`): one lookup,
    /// independent of how many routes the host has. `None` when nothing matches.
    pub fn route_fibmatch(&mut self, ip: IpAddr) -> Result<Option<Route>, InspectError> {
        let what = format!("look up the route to {ip}");
        let found = absent_on(
            self.get_one(fibmatch_request(ip), libc::RTM_NEWROUTE, route_from, &what),
            &[libc::ENETUNREACH, libc::EHOSTUNREACH],
        )?;
        let Some(mut route) = found else {
            return Ok(None);
        };
        self.resolve_nexthop_object(&mut route)?;
        Ok(Some(route))
    }

    /// [`Self::route_fibmatch`], telling why there is no usable route: `Err(errno)` when the
    /// kernel's lookup ends in no route (ENETUNREACH), an `unreachable` (EHOSTUNREACH), a
    /// `prohibit` (EACCES) or a `blackhole` (EINVAL) route: what fib_props (net/ipv4/fib_semantics.c)
    /// gives each type, as `ip route get` shows.
    pub fn route_used(&mut self, ip: IpAddr) -> Result<Result<Route, i32>, InspectError> {
        let what = format!("look up the route to {ip}");
        match self.get_one(fibmatch_request(ip), libc::RTM_NEWROUTE, route_from, &what) {
            Ok(Some(mut route)) => {
                self.resolve_nexthop_object(&mut route)?;
                Ok(Ok(route))
            }
            Ok(None) => Ok(Err(libc::ENETUNREACH)),
            Err(InspectError::Kernel { errno, .. })
                if [
                    libc::ENETUNREACH,
                    libc::EHOSTUNREACH,
                    libc::EACCES,
                    libc::EINVAL,
                ]
                .contains(&errno) =>
            {
                Ok(Err(errno))
            }
            Err(e) => Err(e),
        }
    }

    /// The nexthop object `id` (`ip nexthop show id ID`), or `None` if there is none.
    pub fn nexthop(&mut self, id: u32) -> Result<Option<NexthopObject>, InspectError> {
        let what = format!("look up nexthop {id}");
        absent_on(
            self.get_one(nexthop_request(id), RTM_NEWNEXTHOP, nexthop_from, &what),
            // ENOENT: no such id; EOPNOTSUPP: a kernel without nexthop objects (< 5.3).
            &[libc::ENOENT, libc::EOPNOTSUPP],
        )
    }

    /// Fills `route.nexthops` from the nexthop object the route names (RTA_NH_ID): one hop
    /// for a plain nexthop, each member's for a group. The kernel also reports the object's
    /// hops as RTA_GATEWAY/RTA_OIF or RTA_MULTIPATH unless `nexthop_compat_mode` is 0; the
    /// object itself is what forwards, so it wins. An object gone since the route was read
    /// leaves the route as the kernel reported it.
    fn resolve_nexthop_object(&mut self, route: &mut Route) -> Result<(), InspectError> {
        let Some(id) = route.nh_id else {
            return Ok(());
        };
        let hops = match self.nexthop(id)? {
            None => return Ok(()),
            Some(NexthopObject::Single(h)) => vec![h],
            Some(NexthopObject::Group(members)) => {
                let mut hops = Vec::new();
                // Groups do not nest (the kernel refuses a group as a member).
                for m in members.into_iter().take(MAX_GROUP_LOOKUPS) {
                    if let Some(NexthopObject::Single(h)) = self.nexthop(m)? {
                        hops.push(h);
                    }
                }
                hops
            }
        };
        if let [only] = hops.as_slice() {
            // A single path: also where one-path readers look.
            route.gateway = route.gateway.or(only.gateway);
            route.oif = route.oif.or(only.oif);
        }
        if !hops.is_empty() {
            route.nexthops = hops;
        }
        Ok(())
    }

    /// The id this namespace gives the namespace open at `fd` (what IFLA_LINK_NETNSID of a veth
    /// whose peer lives there says), or `None` when it has none. Reading never assigns one.
    pub fn nsid_of_fd(&mut self, fd: std::os::fd::RawFd) -> Result<Option<i32>, InspectError> {
        let what = "look up a namespace id";
        Ok(self
            .get_one(nsid_request(fd), libc::RTM_NEWNSID, nsid_from, what)?
            .flatten())
    }

    pub fn neighbours(&mut self, index: u32) -> Result<Vec<Neighbour>, InspectError> {
        // Neighbour dumps filter by an NDA_IFINDEX attribute, not the header; a pod has few
        // neighbours, so filtering here is simpler.
        let mut out = self.dump(
            neigh_request(),
            libc::RTM_NEWNEIGH,
            neigh_from,
            "list neighbours",
        )?;
        out.retain(|n| n.index == index);
        Ok(out)
    }

    /// A single GET; `None` when the object does not exist (ENODEV).
    fn get_one<T>(
        &mut self,
        req: Request,
        reply: u16,
        decode: fn(&[u8]) -> Result<Option<T>, Malformed>,
        what: &str,
    ) -> Result<Option<T>, InspectError> {
        absent_on(
            self.exchange(req, NLM_F_REQUEST, reply, decode, what)
                .map(|mut v| v.pop()),
            &[libc::ENODEV],
        )
    }

    fn dump<T>(
        &mut self,
        req: Request,
        reply: u16,
        decode: fn(&[u8]) -> Result<Option<T>, Malformed>,
        what: &str,
    ) -> Result<Vec<T>, InspectError> {
        self.exchange(req, NLM_F_REQUEST | NLM_F_DUMP, reply, decode, what)
    }

    fn exchange<T>(
        &mut self,
        req: Request,
        flags: u16,
        reply: u16,
        decode: fn(&[u8]) -> Result<Option<T>, Malformed>,
        what: &str,
    ) -> Result<Vec<T>, InspectError> {
        let mut out = Vec::new();
        self.t
            .exchange(
                req.kind,
                flags,
                &req.payload,
                &mut collect(reply, decode, &mut out),
            )
            .map_err(|e| e.with(what))?;
        Ok(out)
    }
}

/// The reply handler of an exchange: decodes the messages of type `reply` into `out`; another
/// type answering a GET ends it with nothing.
fn collect<'a, T>(
    reply: u16,
    decode: fn(&[u8]) -> Result<Option<T>, Malformed>,
    out: &'a mut Vec<T>,
) -> impl FnMut(Reply<'_>) -> Result<(), Malformed> + 'a {
    move |r| {
        if r.kind == reply {
            out.extend(decode(r.payload)?);
        }
        Ok(())
    }
}

/// Maps the given kernel errors (the object or route does not exist) to `None`.
fn absent_on<T>(
    r: Result<Option<T>, InspectError>,
    errnos: &[i32],
) -> Result<Option<T>, InspectError> {
    match r {
        Err(InspectError::Kernel { errno, .. }) if errnos.contains(&errno) => Ok(None),
        other => other,
    }
}

fn bad_request(what: &str, e: Malformed) -> InspectError {
    InspectErrorKind::Io(format!("request not encodable: {e}")).with(what)
}

/// The attributes after a reply's fixed header of `len` bytes (the header itself is parsed by
/// the crate, which checks its size).
fn attrs_after(p: &[u8], len: usize) -> NlasIterator<&[u8]> {
    NlasIterator::new(p.get(len..).unwrap_or_default())
}

fn route_ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None, // MPLS labels and the like: not an IP
    }
}

/// RTA_VIA: a gateway of another family (an IPv4 route via an IPv6 next hop, RFC 5549).
fn via_ip(v: &RouteVia) -> Option<IpAddr> {
    match v {
        RouteVia::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteVia::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn link_from(p: &[u8]) -> Result<Option<Link>, Malformed> {
    let h = LinkHeader::parse(p)?;
    let mut link = Link {
        index: h.index,
        up: h.flags.contains(LinkFlags::Up),
        lower_up: h.flags.contains(LinkFlags::LowerUp),
        ..Link::default()
    };
    for nla in attrs_after(p, IFINFOMSG_LEN) {
        let nla = nla?;
        match nla.kind() {
            libc::IFLA_IFNAME
            | libc::IFLA_ADDRESS
            | libc::IFLA_LINK
            | libc::IFLA_LINK_NETNSID
            | libc::IFLA_MTU => {}
            libc::IFLA_LINKINFO => {
                link.kind = info_kind(&nla)?;
                continue;
            }
            _ => continue, // not reported: left unparsed
        }
        match LinkAttribute::parse_with_param(&nla, h.interface_family)? {
            LinkAttribute::IfName(n) => link.name = n,
            LinkAttribute::Address(m) => link.mac = Some(m),
            // For a veth, and for a netkit device (Calico's `device_type: netkit`), IFLA_LINK
            // is the peer's ifindex and IFLA_LINK_NETNSID the peer's namespace: netkit has
            // `ndo_get_iflink = netkit_get_iflink` (the peer's ifindex) and
            // `rtnl_link_ops.get_link_net = netkit_get_link_net` (the peer's net), as veth has
            // `veth_get_iflink` and `veth_get_link_net` (drivers/net/netkit.c, veth.c).
            LinkAttribute::Link(i) => link.peer_index = Some(i),
            LinkAttribute::LinkNetNsId(id) => link.peer_netnsid = Some(id),
            LinkAttribute::Mtu(m) => link.mtu = Some(m),
            _ => {}
        }
    }
    Ok(Some(link))
}

/// IFLA_INFO_KIND inside IFLA_LINKINFO, as the kernel names the driver ("veth", "netkit",
/// "bridge", ...; what `ip -d link` shows). IFLA_INFO_DATA is driver-specific and not read.
fn info_kind(linkinfo: &NlaBuffer<&[u8]>) -> Result<Option<String>, Malformed> {
    for nla in NlasIterator::new(linkinfo.value()) {
        let nla = nla?;
        if nla.kind() == libc::IFLA_INFO_KIND {
            return Ok(Some(InfoKind::parse(&nla)?.to_string()));
        }
    }
    Ok(None)
}

fn addr_from(p: &[u8]) -> Result<Option<Addr>, Malformed> {
    let h = AddressHeader::parse(p)?;
    // IFA_LOCAL is the interface's own address on point-to-point links; IFA_ADDRESS otherwise.
    let mut address = None;
    let mut local = None;
    for nla in attrs_after(p, IFADDRMSG_LEN) {
        let nla = nla?;
        if !matches!(nla.kind(), libc::IFA_ADDRESS | libc::IFA_LOCAL) {
            continue;
        }
        match AddressAttribute::parse(&nla)? {
            AddressAttribute::Address(ip) => address = Some(ip),
            AddressAttribute::Local(ip) => local = Some(ip),
            _ => {}
        }
    }
    Ok(local.or(address).map(|ip| Addr {
        index: h.index,
        ip,
        prefix_len: h.prefix_len,
    }))
}

fn route_from(p: &[u8]) -> Result<Option<Route>, Malformed> {
    let h = RouteHeader::parse(p)?;
    let mut route = Route {
        v6: h.address_family == AddressFamily::Inet6,
        dst_len: h.destination_prefix_length,
        scope_link: h.scope == RouteScope::Link,
        scope_host: h.scope == RouteScope::Host,
        local: h.kind == RouteType::Local,
        unicast: h.kind == RouteType::Unicast,
        // rtm_table is 8 bits; RTA_TABLE below carries the full id.
        table: u32::from(h.table),
        ..Route::default()
    };
    // Encapsulation (RTA_ENCAP) is not read, so its type does not matter to the parser.
    let param = (h.address_family, h.kind, RouteLwEnCapType::None);
    let mut dst_ip = None;
    for nla in attrs_after(p, RTMSG_LEN) {
        let nla = nla?;
        match nla.kind() {
            libc::RTA_DST
            | libc::RTA_GATEWAY
            | libc::RTA_OIF
            | libc::RTA_PRIORITY
            | libc::RTA_TABLE
            | libc::RTA_MULTIPATH
            | libc::RTA_VIA
            | RTA_NH_ID => {}
            _ => continue,
        }
        match RouteAttribute::parse_with_param(&nla, param)? {
            RouteAttribute::Destination(a) => dst_ip = route_ip(&a),
            RouteAttribute::Gateway(a) => route.gateway = route_ip(&a),
            RouteAttribute::Via(v) => route.gateway = via_ip(&v),
            RouteAttribute::Oif(i) => route.oif = Some(i),
            RouteAttribute::Table(t) => route.table = t,
            RouteAttribute::Priority(m) => route.metric = m,
            RouteAttribute::MultiPath(hops) => {
                route.nexthops = hops.iter().map(next_hop).collect();
            }
            RouteAttribute::NhId(id) => route.nh_id = Some(id),
            _ => {}
        }
    }
    route.dst = dst_ip.and_then(|ip| IpNetwork::new(ip, h.destination_prefix_length).ok());
    Ok(Some(route))
}

/// RTA_NH_ID; the crate knows it but does not name the constant.
const RTA_NH_ID: u16 = 30;

/// One `struct rtnexthop` of RTA_MULTIPATH: its ifindex, and its own RTA_GATEWAY or RTA_VIA.
fn next_hop(nh: &RouteNextHop) -> NextHop {
    let mut hop = NextHop {
        gateway: None,
        // rtnh_ifindex 0: no device given (the gateway alone decides).
        oif: Some(nh.interface_index).filter(|i| *i != 0),
    };
    for a in &nh.attributes {
        match a {
            RouteAttribute::Gateway(g) => hop.gateway = route_ip(g),
            RouteAttribute::Via(v) => hop.gateway = via_ip(v),
            _ => {}
        }
    }
    hop
}

fn neigh_from(p: &[u8]) -> Result<Option<Neighbour>, Malformed> {
    let h = NeighbourHeader::parse(p)?;
    let mut ip = None;
    let mut mac = None;
    for nla in attrs_after(p, NDMSG_LEN) {
        let nla = nla?;
        if !matches!(nla.kind(), libc::NDA_DST | libc::NDA_LLADDR) {
            continue;
        }
        match NeighbourAttribute::parse_with_param(&nla, h.family)? {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => ip = Some(a.into()),
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => ip = Some(a.into()),
            NeighbourAttribute::LinkLayerAddress(m) => mac = Some(m),
            _ => {}
        }
    }
    Ok(ip.map(|ip| Neighbour {
        index: h.ifindex,
        ip,
        mac,
        state: u16::from(h.state),
    }))
}

/// `Some(None)`: the kernel answered, and the namespace has no id here (NETNSA_NSID -1).
fn nsid_from(p: &[u8]) -> Result<Option<Option<i32>>, Malformed> {
    if p.len() < RTGENMSG_LEN {
        return Err(Malformed("RTM_NEWNSID too short".into()));
    }
    let mut id = None;
    for nla in attrs_after(p, RTGENMSG_LEN) {
        let nla = nla?;
        if nla.kind() != NETNSA_NSID {
            continue;
        }
        if let NsidAttribute::Id(v) = NsidAttribute::parse(&nla)? {
            id = Some(v).filter(|id| *id >= 0);
        }
    }
    Ok(Some(id))
}

/// uapi linux/net_namespace.h: NETNSA_NSID.
const NETNSA_NSID: u16 = 1;

/// What a nexthop object (`ip nexthop`) is: one hop, or a group of other objects' ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NexthopObject {
    /// A plain nexthop: gateway and/or device (neither for a blackhole).
    Single(NextHop),
    Group(Vec<u32>),
}

fn nexthop_from(p: &[u8]) -> Result<Option<NexthopObject>, Malformed> {
    if p.len() < NHMSG_LEN {
        return Err(Malformed("RTM_NEWNEXTHOP too short".into()));
    }
    let mut hop = NextHop::default();
    let mut group = None;
    for nla in attrs_after(p, NHMSG_LEN) {
        let nla = nla?;
        let v = nla.value();
        match nla.kind() {
            NHA_OIF => hop.oif = Some(parse_u32(v)?),
            // be32 or in6_addr: its size says the family.
            NHA_GATEWAY => hop.gateway = Some(parse_ip(v)?),
            NHA_GROUP => {
                if v.len() % NEXTHOP_GRP_LEN != 0 {
                    return Err(Malformed(format!("NHA_GROUP of {} bytes", v.len())));
                }
                group = Some(
                    v.chunks_exact(NEXTHOP_GRP_LEN)
                        .map(|g| parse_u32(&g[..4]))
                        .collect::<Result<Vec<_>, _>>()?,
                );
            }
            _ => {}
        }
    }
    Ok(Some(match group {
        Some(ids) => NexthopObject::Group(ids),
        None => NexthopObject::Single(hop),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::nlmsg::testing::{attr, done, error, nlmsg};
    use crate::inspect::nlmsg::{Exchange, Outcome, NLMSG_HDRLEN};
    use std::net::Ipv6Addr;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    const NLM_F_MULTI: u16 = libc::NLM_F_MULTI as u16;
    const NLA_F_NESTED: u16 = libc::NLA_F_NESTED as u16;

    /// Feeds one datagram to an exchange as `Netlink` runs it: (replies, whether it ended).
    fn absorb<T>(
        seq: u32,
        dump: bool,
        reply: u16,
        datagram: &[u8],
        decode: fn(&[u8]) -> Result<Option<T>, Malformed>,
    ) -> Result<(Vec<T>, bool), InspectError> {
        let flags = if dump {
            NLM_F_REQUEST | NLM_F_DUMP
        } else {
            NLM_F_REQUEST
        };
        let mut out = Vec::new();
        let over = Exchange::for_request(seq, flags)
            .absorb(
                datagram,
                &mut Outcome::default(),
                &mut collect(reply, decode, &mut out),
            )
            .map_err(|e| e.with("test"))?;
        Ok((out, over))
    }

    fn is_decode<T: std::fmt::Debug>(r: Result<T, InspectError>) -> bool {
        matches!(r, Err(InspectError::Decode { .. }))
    }

    fn ifinfo(index: u32, flags: u32) -> [u8; IFINFOMSG_LEN] {
        let mut h = [0u8; IFINFOMSG_LEN];
        h[2..4].copy_from_slice(&1u16.to_ne_bytes()); // ARPHRD_ETHER
        h[4..8].copy_from_slice(&index.to_ne_bytes());
        h[8..12].copy_from_slice(&flags.to_ne_bytes());
        h
    }

    /// A host end as the kernel reports it: `kind` with some driver data, its peer's index and
    /// namespace id, and attributes we do not read around them (one of them garbage for its
    /// type, which must not matter).
    fn host_end_reply(seq: u32, kind: &str, data: &[Vec<u8>]) -> Vec<u8> {
        let flags = (libc::IFF_UP | libc::IFF_LOWER_UP | libc::IFF_BROADCAST) as u32;
        let mut k = kind.as_bytes().to_vec();
        k.push(0);
        let info = [
            attr(libc::IFLA_INFO_KIND, &k),
            attr(2 /* IFLA_INFO_DATA */ | NLA_F_NESTED, &data.concat()),
        ]
        .concat();
        nlmsg(
            libc::RTM_NEWLINK,
            0,
            seq,
            &ifinfo(7, flags),
            &[
                attr(libc::IFLA_IFNAME, b"cali12345\0"),
                attr(4 /* IFLA_MTU */, &1450u32.to_ne_bytes()),
                attr(libc::IFLA_ADDRESS, &[0xee; 6]),
                attr(libc::IFLA_LINK, &3u32.to_ne_bytes()),
                // IFLA_STATS64 of the wrong size: unread, so no error.
                attr(23, &[1, 2, 3]),
                attr(libc::IFLA_LINKINFO | NLA_F_NESTED, &info),
                attr(libc::IFLA_LINK_NETNSID, &2i32.to_ne_bytes()),
            ],
        )
    }

    fn host_end(kind: &str) -> Link {
        Link {
            index: 7,
            name: "cali12345".into(),
            kind: Some(kind.into()),
            mac: Some(vec![0xee; 6]),
            up: true,
            lower_up: true,
            peer_index: Some(3),
            peer_netnsid: Some(2),
            mtu: Some(1450),
        }
    }

    #[test]
    fn link_reply_with_linkinfo_kind() {
        let (got, over) = absorb(
            5,
            false,
            libc::RTM_NEWLINK,
            &host_end_reply(5, "veth", &[]),
            link_from,
        )
        .unwrap();
        assert!(over, "a plain GET ends with its one reply");
        assert_eq!(got, vec![host_end("veth")]);
        // A plain device: no IFLA_LINKINFO, no carrier.
        let lo = nlmsg(
            libc::RTM_NEWLINK,
            0,
            1,
            &ifinfo(1, libc::IFF_UP as u32),
            &[attr(libc::IFLA_IFNAME, b"lo\0")],
        );
        let (got, _) = absorb(1, false, libc::RTM_NEWLINK, &lo, link_from).unwrap();
        assert_eq!(got[0].kind, None);
        assert!(got[0].up && !got[0].lower_up);
        assert_eq!(got[0].peer_index, None);
    }

    /// Calico's netkit host end (`device_type: netkit`) as drivers/net/netkit.c reports it:
    /// IFLA_INFO_KIND "netkit", netkit_fill_info's IFLA_NETKIT_* data, and IFLA_LINK /
    /// IFLA_LINK_NETNSID from netkit_get_iflink / netkit_get_link_net. This kernel has no
    /// CONFIG_NETKIT, so the bytes are built here.
    #[test]
    fn netkit_link_decodes_like_a_veth() {
        let data = [
            attr(4 /* IFLA_NETKIT_POLICY */, &0u32.to_ne_bytes()),
            attr(3 /* IFLA_NETKIT_PRIMARY */, &[1]),
            attr(5 /* IFLA_NETKIT_MODE: L2 */, &0u32.to_ne_bytes()),
            attr(6 /* IFLA_NETKIT_PEER_POLICY */, &0u32.to_ne_bytes()),
        ];
        let (got, _) = absorb(
            2,
            false,
            libc::RTM_NEWLINK,
            &host_end_reply(2, "netkit", &data),
            link_from,
        )
        .unwrap();
        assert_eq!(got, vec![host_end("netkit")]);
    }

    #[test]
    fn address_dump_over_two_datagrams() {
        let ifa = |family: i32, prefix: u8, index: u32| {
            let mut h = [0u8; IFADDRMSG_LEN];
            h[0] = family as u8;
            h[1] = prefix;
            h[4..8].copy_from_slice(&index.to_ne_bytes());
            h
        };
        let mut first = nlmsg(
            libc::RTM_NEWADDR,
            NLM_F_MULTI,
            9,
            &ifa(libc::AF_INET, 32, 4),
            // Point-to-point: IFA_LOCAL is ours, IFA_ADDRESS the peer.
            &[
                attr(libc::IFA_ADDRESS, &[10, 0, 0, 1]),
                attr(libc::IFA_LOCAL, &[10, 0, 0, 2]),
                attr(3 /* IFA_LABEL */, b"eth0\0"),
            ],
        );
        // A late reply to request 8 is skipped.
        first.extend(nlmsg(
            libc::RTM_NEWADDR,
            NLM_F_MULTI,
            8,
            &ifa(libc::AF_INET, 8, 1),
            &[attr(libc::IFA_ADDRESS, &[127, 0, 0, 1])],
        ));
        let v6: Ipv6Addr = "fe80::ecee:eeff:feee:eeee".parse().unwrap();
        first.extend(nlmsg(
            libc::RTM_NEWADDR,
            NLM_F_MULTI,
            9,
            &ifa(libc::AF_INET6, 64, 4),
            &[attr(libc::IFA_ADDRESS, &v6.octets())],
        ));
        let (got, over) = absorb(9, true, libc::RTM_NEWADDR, &first, addr_from).unwrap();
        assert!(!over, "a dump goes on until NLMSG_DONE");
        assert_eq!(
            got,
            vec![
                Addr {
                    index: 4,
                    ip: "10.0.0.2".parse().unwrap(),
                    prefix_len: 32
                },
                Addr {
                    index: 4,
                    ip: IpAddr::V6(v6),
                    prefix_len: 64
                },
            ]
        );
        let (got, over) = absorb(9, true, libc::RTM_NEWADDR, &done(9, 0), addr_from).unwrap();
        assert!(over && got.is_empty());
        // A DONE for another request does not end this one.
        assert!(
            !absorb(9, true, libc::RTM_NEWADDR, &done(8, 0), addr_from)
                .unwrap()
                .1
        );
        // An address of the wrong size is an unexpected answer.
        let bad = nlmsg(
            libc::RTM_NEWADDR,
            NLM_F_MULTI,
            9,
            &ifa(libc::AF_INET, 32, 4),
            &[attr(libc::IFA_ADDRESS, &[10, 0, 0])],
        );
        assert!(is_decode(absorb(
            9,
            true,
            libc::RTM_NEWADDR,
            &bad,
            addr_from
        )));
    }

    fn rtm(family: i32, dst_len: u8, table: u8, scope: u8, kind: u8) -> [u8; RTMSG_LEN] {
        let mut h = [0u8; RTMSG_LEN];
        h[0] = family as u8;
        h[1] = dst_len;
        h[4] = table;
        h[5] = 4; // RTPROT_STATIC
        h[6] = scope;
        h[7] = kind;
        h
    }

    fn one_route(fixed: &[u8], attrs: &[Vec<u8>]) -> Route {
        let m = nlmsg(libc::RTM_NEWROUTE, 0, 4, fixed, attrs);
        let (mut got, over) = absorb(4, false, libc::RTM_NEWROUTE, &m, route_from).unwrap();
        assert!(over && got.len() == 1);
        got.remove(0)
    }

    #[test]
    fn route_replies() {
        let mut dg = nlmsg(
            libc::RTM_NEWROUTE,
            NLM_F_MULTI,
            3,
            &rtm(
                libc::AF_INET,
                32,
                libc::RT_TABLE_MAIN,
                libc::RT_SCOPE_LINK,
                libc::RTN_UNICAST,
            ),
            &[
                attr(
                    libc::RTA_TABLE,
                    &u32::from(libc::RT_TABLE_MAIN).to_ne_bytes(),
                ),
                attr(libc::RTA_DST, &[10, 65, 0, 7]),
                attr(libc::RTA_OIF, &12u32.to_ne_bytes()),
                // RTA_CACHEINFO truncated: not read, so no error.
                attr(12, &[0; 3]),
            ],
        );
        // A v6 default route via a gateway, in table 1000 (rtm_table says RT_TABLE_COMPAT).
        let gw: Ipv6Addr = "fe80::1".parse().unwrap();
        dg.extend(nlmsg(
            libc::RTM_NEWROUTE,
            NLM_F_MULTI,
            3,
            &rtm(libc::AF_INET6, 0, 252, 0, libc::RTN_UNICAST),
            &[
                attr(libc::RTA_TABLE, &1000u32.to_ne_bytes()),
                attr(libc::RTA_GATEWAY, &gw.octets()),
                attr(libc::RTA_PRIORITY, &1024u32.to_ne_bytes()),
                attr(libc::RTA_OIF, &2u32.to_ne_bytes()),
            ],
        ));
        dg.extend(done(3, 0));
        let (got, over) = absorb(3, true, libc::RTM_NEWROUTE, &dg, route_from).unwrap();
        assert!(over);
        assert_eq!(
            got[0],
            Route {
                v6: false,
                dst: Some("10.65.0.7/32".parse().unwrap()),
                dst_len: 32,
                gateway: None,
                oif: Some(12),
                scope_link: true,
                scope_host: false,
                local: false,
                unicast: true,
                table: 254,
                metric: 0,
                ..Route::default()
            }
        );
        assert!(got[1].is_default() && got[1].v6 && got[1].dst.is_none());
        assert_eq!(got[1].gateway, Some(IpAddr::V6(gw)));
        assert_eq!(
            (got[1].table, got[1].metric, got[1].oif),
            (1000, 1024, Some(2))
        );
        assert_eq!(
            got[1].paths(),
            vec![NextHop {
                gateway: Some(IpAddr::V6(gw)),
                oif: Some(2)
            }]
        );

        // The fibmatch answer for a local address.
        let local = one_route(
            &rtm(libc::AF_INET, 32, 255, libc::RT_SCOPE_HOST, libc::RTN_LOCAL),
            &[attr(libc::RTA_DST, &[127, 0, 0, 1])],
        );
        assert!(local.local && local.scope_host && local.table == 255);

        // RTA_OIF must be a u32.
        let bad = nlmsg(
            libc::RTM_NEWROUTE,
            NLM_F_MULTI,
            3,
            &rtm(libc::AF_INET, 0, 254, 0, 1),
            &[attr(libc::RTA_OIF, &[1, 0])],
        );
        assert!(is_decode(absorb(
            3,
            true,
            libc::RTM_NEWROUTE,
            &bad,
            route_from
        )));
    }

    /// struct rtnexthop { u16 len; u8 flags, hops; i32 ifindex; } then its attributes.
    fn rtnh(ifindex: u32, attrs: &[Vec<u8>]) -> Vec<u8> {
        let a = attrs.concat();
        let mut v = ((8 + a.len()) as u16).to_ne_bytes().to_vec();
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(&ifindex.to_ne_bytes());
        v.extend(a);
        v
    }

    /// `ip -6 route add default nexthop via fe80::1 dev vA nexthop via fe80::2 dev vB`, as the
    /// kernel dumps it (one message, RTA_MULTIPATH, no RTA_GATEWAY/RTA_OIF of its own).
    #[test]
    fn multipath_route_has_one_path_per_hop() {
        let (g1, g2): (Ipv6Addr, Ipv6Addr) =
            ("fe80::1".parse().unwrap(), "fe80::2".parse().unwrap());
        let mp = [
            rtnh(5, &[attr(libc::RTA_GATEWAY, &g1.octets())]),
            rtnh(6, &[attr(libc::RTA_GATEWAY, &g2.octets())]),
        ]
        .concat();
        let r = one_route(
            &rtm(libc::AF_INET6, 0, 254, 0, libc::RTN_UNICAST),
            &[
                attr(libc::RTA_TABLE, &254u32.to_ne_bytes()),
                attr(libc::RTA_PRIORITY, &1024u32.to_ne_bytes()),
                attr(libc::RTA_MULTIPATH, &mp),
            ],
        );
        assert!(r.is_default() && r.gateway.is_none() && r.oif.is_none());
        let want = vec![
            NextHop {
                gateway: Some(g1.into()),
                oif: Some(5),
            },
            NextHop {
                gateway: Some(g2.into()),
                oif: Some(6),
            },
        ];
        assert_eq!(r.nexthops, want);
        assert_eq!(r.paths(), want);
        // An IPv4 hop via an IPv6 gateway (RTA_VIA: u16 family, then the address).
        let mut via = (libc::AF_INET6 as u16).to_ne_bytes().to_vec();
        via.extend_from_slice(&g1.octets());
        let r = one_route(
            &rtm(libc::AF_INET, 0, 254, 0, libc::RTN_UNICAST),
            &[attr(
                libc::RTA_MULTIPATH,
                &rtnh(9, &[attr(libc::RTA_VIA, &via)]),
            )],
        );
        assert_eq!(
            r.paths(),
            vec![NextHop {
                gateway: Some(g1.into()),
                oif: Some(9)
            }]
        );
        // A hop whose length overruns RTA_MULTIPATH is an unexpected answer.
        let mut bad = rtnh(5, &[]);
        bad[0..2].copy_from_slice(&40u16.to_ne_bytes());
        let m = nlmsg(
            libc::RTM_NEWROUTE,
            0,
            1,
            &rtm(libc::AF_INET6, 0, 254, 0, libc::RTN_UNICAST),
            &[attr(libc::RTA_MULTIPATH, &bad)],
        );
        assert!(is_decode(absorb(
            1,
            false,
            libc::RTM_NEWROUTE,
            &m,
            route_from
        )));
    }

    /// `ip route add default nhid 7`: RTA_NH_ID, plus (nexthop_compat_mode 1, the default) the
    /// object's hop as RTA_GATEWAY/RTA_OIF; then the object itself, a plain one and a group.
    #[test]
    fn nexthop_object_route_and_objects() {
        let r = one_route(
            &rtm(libc::AF_INET, 0, 254, 0, libc::RTN_UNICAST),
            &[
                attr(RTA_NH_ID, &7u32.to_ne_bytes()),
                attr(libc::RTA_GATEWAY, &[169, 254, 1, 1]),
                attr(libc::RTA_OIF, &2u32.to_ne_bytes()),
            ],
        );
        assert_eq!(r.nh_id, Some(7));
        assert_eq!(r.gateway, Some("169.254.1.1".parse().unwrap()));
        // nexthop_compat_mode 0: only the id.
        let bare = one_route(
            &rtm(libc::AF_INET6, 0, 254, 0, libc::RTN_UNICAST),
            &[attr(RTA_NH_ID, &8u32.to_ne_bytes())],
        );
        assert_eq!((bare.nh_id, bare.gateway, bare.oif), (Some(8), None, None));

        let nh = |attrs: &[Vec<u8>]| {
            let mut h = [0u8; NHMSG_LEN];
            h[0] = libc::AF_INET6 as u8;
            nlmsg(RTM_NEWNEXTHOP, 0, 3, &h, attrs)
        };
        let gw: Ipv6Addr = "fe80::1".parse().unwrap();
        let single = nh(&[
            attr(NHA_ID, &7u32.to_ne_bytes()),
            attr(NHA_GATEWAY, &gw.octets()),
            attr(NHA_OIF, &4u32.to_ne_bytes()),
            attr(12 /* NHA_FDB */, &[]),
        ]);
        let (got, over) = absorb(3, false, RTM_NEWNEXTHOP, &single, nexthop_from).unwrap();
        assert!(over);
        assert_eq!(
            got,
            vec![NexthopObject::Single(NextHop {
                gateway: Some(gw.into()),
                oif: Some(4)
            })]
        );
        // A group of ids 7 and 9 (struct nexthop_grp: u32 id, u8 weight, u8, u16).
        let mut grp = 7u32.to_ne_bytes().to_vec();
        grp.extend_from_slice(&[0, 0, 0, 0]);
        grp.extend_from_slice(&9u32.to_ne_bytes());
        grp.extend_from_slice(&[1, 0, 0, 0]);
        let group = nh(&[
            attr(NHA_ID, &10u32.to_ne_bytes()),
            attr(NHA_GROUP, &grp),
            attr(3 /* NHA_GROUP_TYPE */, &0u16.to_ne_bytes()),
        ]);
        let (got, _) = absorb(3, false, RTM_NEWNEXTHOP, &group, nexthop_from).unwrap();
        assert_eq!(got, vec![NexthopObject::Group(vec![7, 9])]);
        // A blackhole: no path attributes.
        let bh = nh(&[attr(NHA_ID, &11u32.to_ne_bytes()), attr(4, &[])]);
        let (got, _) = absorb(3, false, RTM_NEWNEXTHOP, &bh, nexthop_from).unwrap();
        assert_eq!(got, vec![NexthopObject::Single(NextHop::default())]);
        // Malformed: a group not made of whole entries, a 3-byte gateway, a short nhmsg.
        for bad in [
            nh(&[attr(NHA_GROUP, &[0; 12])]),
            nh(&[attr(NHA_GATEWAY, &[1, 2, 3])]),
            nlmsg(RTM_NEWNEXTHOP, 0, 3, &[0; 4], &[]),
        ] {
            assert!(is_decode(absorb(
                3,
                false,
                RTM_NEWNEXTHOP,
                &bad,
                nexthop_from
            )));
        }
    }

    #[test]
    fn neighbour_dump() {
        let nd = |index: u32, state: u16| {
            let mut h = [0u8; NDMSG_LEN];
            h[0] = libc::AF_INET as u8;
            h[4..8].copy_from_slice(&index.to_ne_bytes());
            h[8..10].copy_from_slice(&state.to_ne_bytes());
            h
        };
        let mut dg = nlmsg(
            libc::RTM_NEWNEIGH,
            NLM_F_MULTI,
            6,
            &nd(2, 0x02 /* NUD_REACHABLE */),
            &[
                attr(libc::NDA_DST, &[169, 254, 1, 1]),
                attr(libc::NDA_LLADDR, &[0xee; 6]),
                attr(3 /* NDA_CACHEINFO */, &[0; 16]),
            ],
        );
        // No NDA_DST: nothing to report.
        dg.extend(nlmsg(
            libc::RTM_NEWNEIGH,
            NLM_F_MULTI,
            6,
            &nd(2, 0x40),
            &[attr(libc::NDA_LLADDR, &[0; 6])],
        ));
        let (got, over) = absorb(6, true, libc::RTM_NEWNEIGH, &dg, neigh_from).unwrap();
        assert!(!over);
        assert_eq!(
            got,
            vec![Neighbour {
                index: 2,
                ip: "169.254.1.1".parse().unwrap(),
                mac: Some(vec![0xee; 6]),
                state: 0x02,
            }]
        );
    }

    #[test]
    fn nsid_reply() {
        let reply = |id: i32| {
            nlmsg(
                libc::RTM_NEWNSID,
                0,
                2,
                &[0, 0, 0, 0],
                &[attr(NETNSA_NSID, &id.to_ne_bytes())],
            )
        };
        let get = |m: &[u8]| absorb(2, false, libc::RTM_NEWNSID, m, nsid_from).unwrap().0;
        assert_eq!(get(&reply(3)), vec![Some(3)]);
        // NETNSA_NSID_NOT_ASSIGNED.
        assert_eq!(get(&reply(-1)), vec![None]);
    }

    #[test]
    fn errors_and_acks() {
        let r = absorb(
            11,
            false,
            libc::RTM_NEWLINK,
            &error(11, libc::ENODEV),
            link_from,
        );
        assert_eq!(
            r,
            Err(InspectError::Kernel {
                what: "test".into(),
                errno: libc::ENODEV
            })
        );
        // What get_one and route_fibmatch make of it.
        let r = r.map(|(mut v, _)| v.pop());
        assert_eq!(absent_on(r.clone(), &[libc::ENODEV]), Ok(None));
        assert!(absent_on(r, &[libc::ENETUNREACH]).is_err());
        // Another message type answering a GET ends it with nothing.
        let other = nlmsg(libc::RTM_NEWADDR, 0, 11, &[0; 8], &[]);
        assert_eq!(
            absorb(11, false, libc::RTM_NEWLINK, &other, link_from),
            Ok((vec![], true))
        );
    }

    #[test]
    fn malformed_replies_are_decode_errors() {
        let good = host_end_reply(1, "veth", &[]);
        let get = |m: &[u8]| absorb(1, false, libc::RTM_NEWLINK, m, link_from);
        // Every truncation is rejected cleanly (nlmsg_len then overruns the datagram).
        for cut in 1..good.len() {
            assert!(is_decode(get(&good[..cut])), "cut {cut}");
        }
        // A truncated attribute inside an intact message: IFLA_IFNAME claims 200 bytes.
        let name_at = NLMSG_HDRLEN + IFINFOMSG_LEN;
        let mut bad = good.clone();
        bad[name_at..name_at + 2].copy_from_slice(&200u16.to_ne_bytes());
        assert!(is_decode(get(&bad)));
        // Attribute length below its own header.
        bad[name_at..name_at + 2].copy_from_slice(&2u16.to_ne_bytes());
        assert!(is_decode(get(&bad)));
        // A nested attribute overrunning IFLA_LINKINFO.
        let info = attr(libc::IFLA_INFO_KIND, b"veth\0");
        let mut nested = attr(libc::IFLA_LINKINFO, &info);
        nested[4..6].copy_from_slice(&64u16.to_ne_bytes());
        let m = nlmsg(libc::RTM_NEWLINK, 0, 1, &[0; IFINFOMSG_LEN], &[nested]);
        assert!(is_decode(get(&m)));
        // A message shorter than its fixed header.
        let m = nlmsg(libc::RTM_NEWLINK, 0, 1, &[0; 8], &[]);
        assert!(is_decode(get(&m)));
        // A short rtmsg, a short ndmsg, a short ifaddrmsg.
        let m = nlmsg(libc::RTM_NEWROUTE, 0, 1, &[0; 8], &[]);
        assert!(is_decode(absorb(
            1,
            false,
            libc::RTM_NEWROUTE,
            &m,
            route_from
        )));
        let m = nlmsg(libc::RTM_NEWNEIGH, 0, 1, &[0; 8], &[]);
        assert!(is_decode(absorb(
            1,
            false,
            libc::RTM_NEWNEIGH,
            &m,
            neigh_from
        )));
        let m = nlmsg(libc::RTM_NEWADDR, 0, 1, &[0; 4], &[]);
        assert!(is_decode(absorb(
            1,
            false,
            libc::RTM_NEWADDR,
            &m,
            addr_from
        )));
    }

    /// Every decoder over mutated kernel replies (bytes flipped, lengths bent, cuts):
    /// an error or a value, never a panic. Deterministic (a fixed LCG), so a failure
    /// reproduces.
    #[test]
    fn decoders_never_panic_on_mutated_replies() {
        let mp = [
            rtnh(
                5,
                &[attr(
                    libc::RTA_GATEWAY,
                    &[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                )],
            ),
            rtnh(
                6,
                &[attr(
                    libc::RTA_VIA,
                    &[10, 0, 0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                )],
            ),
        ]
        .concat();
        let samples: Vec<Vec<u8>> = vec![
            host_end_reply(1, "veth", &[]),
            host_end_reply(1, "netkit", &[attr(3, &[1]), attr(5, &0u32.to_ne_bytes())]),
            nlmsg(
                libc::RTM_NEWROUTE,
                0,
                1,
                &rtm(libc::AF_INET6, 0, 254, 0, libc::RTN_UNICAST),
                &[
                    attr(libc::RTA_MULTIPATH, &mp),
                    attr(RTA_NH_ID, &7u32.to_ne_bytes()),
                    attr(libc::RTA_DST, &[0; 16]),
                ],
            ),
            nlmsg(
                RTM_NEWNEXTHOP,
                0,
                1,
                &[0; NHMSG_LEN],
                &[
                    attr(NHA_GROUP, &[7, 0, 0, 0, 1, 0, 0, 0]),
                    attr(NHA_OIF, &[1, 0, 0, 0]),
                ],
            ),
            nlmsg(
                libc::RTM_NEWADDR,
                0,
                1,
                &[2, 24, 0, 0, 4, 0, 0, 0],
                &[attr(libc::IFA_LOCAL, &[10, 0, 0, 1])],
            ),
            nlmsg(
                libc::RTM_NEWNEIGH,
                0,
                1,
                &[2, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0],
                &[
                    attr(libc::NDA_DST, &[169, 254, 1, 1]),
                    attr(libc::NDA_LLADDR, &[0xee; 6]),
                ],
            ),
            nlmsg(
                libc::RTM_NEWNSID,
                0,
                1,
                &[0; 4],
                &[attr(NETNSA_NSID, &[1, 0, 0, 0])],
            ),
        ];
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (x >> 33) as usize
        };
        for round in 0..20_000 {
            let mut m = samples[round % samples.len()].clone();
            for _ in 0..1 + next() % 4 {
                let at = next() % m.len();
                match next() % 3 {
                    0 => m[at] = next() as u8,
                    // Attribute lengths are small numbers: bend one toward the edges.
                    1 => m[at] = m[at].wrapping_add(if next() % 2 == 0 { 4 } else { 252 }),
                    _ => m.truncate(at.max(1)),
                }
            }
            // Keep nlmsg_len consistent half the time, so the decoders see the bad bodies.
            if round % 2 == 0 && m.len() >= NLMSG_HDRLEN {
                let len = m.len() as u32;
                m[0..4].copy_from_slice(&len.to_ne_bytes());
            }
            let _ = absorb(1, false, libc::RTM_NEWLINK, &m, link_from);
            let _ = absorb(1, false, libc::RTM_NEWROUTE, &m, route_from);
            let _ = absorb(1, false, RTM_NEWNEXTHOP, &m, nexthop_from);
            let _ = absorb(1, false, libc::RTM_NEWADDR, &m, addr_from);
            let _ = absorb(1, false, libc::RTM_NEWNEIGH, &m, neigh_from);
            let _ = absorb(1, false, libc::RTM_NEWNSID, &m, nsid_from);
        }
    }

    fn u16_at(b: &[u8], at: usize) -> u16 {
        u16::from_ne_bytes(b[at..at + 2].try_into().unwrap())
    }

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_ne_bytes(b[at..at + 4].try_into().unwrap())
    }

    /// The requests' bytes, as the kernel's strict checking wants them (every header field we
    /// do not set is zero).
    #[test]
    fn request_encoding() {
        let r = link_request(0, Some("eth0")).unwrap();
        assert_eq!(r.kind, libc::RTM_GETLINK);
        assert_eq!(&r.payload[..16], &[0; 16]);
        assert_eq!(&r.payload[16..], &attr(libc::IFLA_IFNAME, b"eth0\0")[..]);
        let r = link_request(9, None).unwrap();
        assert_eq!((r.payload.len(), u32_at(&r.payload, 4)), (16, 9));

        let r = fibmatch_request("10.65.0.7".parse().unwrap());
        assert_eq!(r.kind, libc::RTM_GETROUTE);
        let h = &r.payload[..12];
        assert_eq!((h[0], h[1]), (libc::AF_INET as u8, 32));
        assert_eq!(
            &h[2..8],
            &[0; 6],
            "src_len, tos, table, protocol, scope, type"
        );
        assert_eq!(u32_at(h, 8), libc::RTM_F_FIB_MATCH);
        assert_eq!(&r.payload[12..], &attr(libc::RTA_DST, &[10, 65, 0, 7])[..]);
        let r = fibmatch_request("fd00::1".parse().unwrap());
        assert_eq!(
            (r.payload[0], r.payload[1], r.payload.len()),
            (libc::AF_INET6 as u8, 128, 32)
        );

        let r = route_dump_request(AddressFamily::Inet6);
        assert_eq!(r.payload, {
            let mut h = vec![0u8; 12];
            h[0] = libc::AF_INET6 as u8;
            h
        });
        let r = addr_request(4);
        assert_eq!(
            (r.kind, r.payload.len(), u32_at(&r.payload, 4)),
            (libc::RTM_GETADDR, 8, 4)
        );
        assert_eq!(&r.payload[..4], &[0; 4]);
        let r = neigh_request();
        assert_eq!(r.kind, libc::RTM_GETNEIGH);
        assert_eq!(r.payload, {
            let mut h = vec![0u8; 12];
            h[0] = libc::AF_INET as u8;
            h
        });

        let r = nsid_request(9);
        assert_eq!(r.kind, libc::RTM_GETNSID);
        assert_eq!(&r.payload[..4], &[0; 4]);
        assert_eq!(
            &r.payload[4..],
            &attr(3 /* NETNSA_FD */, &9u32.to_ne_bytes())[..]
        );

        let r = nexthop_request(7);
        assert_eq!(r.kind, RTM_GETNEXTHOP);
        assert_eq!(&r.payload[..8], &[0; 8]);
        assert_eq!(&r.payload[8..], &attr(NHA_ID, &7u32.to_ne_bytes())[..]);
        assert_eq!(u16_at(&r.payload, 8), 8);

        assert!(link_request(0, Some(&"x".repeat(70_000))).is_err());
    }

    /// Against the kernel of the test's own namespace: every request is one the kernel accepts
    /// under strict checking. Needs no privilege (rtnetlink GETs are open to all).
    #[test]
    fn live_requests_in_own_namespace() {
        let mut nl = Netlink::open(Deadline::after(Duration::from_secs(5))).unwrap();
        let lo = nl.link_by_name("lo").unwrap().expect("lo exists");
        assert_eq!(lo.index, 1);
        assert_eq!(
            nl.link_by_index(1).unwrap().map(|l| l.name),
            Some("lo".into())
        );
        assert_eq!(nl.link_by_name("nosuchdev0").unwrap(), None);
        assert_eq!(nl.link_by_index(0x7fff_fff0).unwrap(), None);
        assert!(nl.links().unwrap().iter().any(|l| l.index == 1));
        assert!(nl.addresses(Some(1)).unwrap().iter().all(|a| a.index == 1));
        nl.addresses(None).unwrap();
        assert!(nl.main_routes().unwrap().iter().all(|r| r.table == 254));
        nl.neighbours(1).unwrap();
        if lo.up {
            let r = nl.route_fibmatch("127.0.0.1".parse().unwrap()).unwrap();
            assert!(r.is_some_and(|r| r.local));
        }
        // Whatever this machine routes there, the lookup is answered (a route or why none).
        let _ = nl.route_used("169.254.1.1".parse().unwrap()).unwrap();
        let _ = nl.route_used("2001:db8::1".parse().unwrap()).unwrap();
        // An id no one uses: absent, not an error.
        assert_eq!(nl.nexthop(0x7fff_fff0).unwrap(), None);
        let own = std::fs::File::open("/proc/thread-self/ns/net").unwrap();
        nl.nsid_of_fd(own.as_raw_fd()).unwrap();
    }
}
