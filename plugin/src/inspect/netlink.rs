//! A small synchronous rtnetlink client: one socket, one request at a time, every read bounded
//! by a deadline. Only GET requests exist here: the plugin never changes the network.

use super::{Addr, Deadline, InspectError, Link, Neighbour, Route};
use ipnetwork::IpNetwork;
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage};
use netlink_packet_route::nsid::{NsidAttribute, NsidMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

pub struct Netlink {
    sock: Socket,
    seq: u32,
    deadline: Deadline,
    buf: Vec<u8>,
}

/// Non-dump replies are one message; dumps of a pod's or a single link's state stay small.
const RECV_BUF: usize = 64 * 1024;

impl Netlink {
    /// Opens a socket in the calling thread's current network namespace.
    pub fn open(deadline: Deadline) -> Result<Netlink, InspectError> {
        let io_err = |e: io::Error| InspectError::io("open a netlink socket", e);
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(io_err)?;
        sock.bind_auto().map_err(io_err)?;
        sock.connect(&SocketAddr::new(0, 0)).map_err(io_err)?;
        // Lets the kernel filter dumps by ifindex instead of sending us every address.
        sock.set_netlink_get_strict_chk(true).map_err(io_err)?;
        // Sends to the kernel are handled synchronously and do not wait in practice; bound them
        // anyway, once, by the whole call's deadline.
        if let Some(left) = deadline.remaining() {
            let tv = libc::timeval {
                tv_sec: left.as_secs() as libc::time_t,
                tv_usec: (left.subsec_micros() as libc::suseconds_t).max(1),
            };
            // SAFETY: setsockopt with a valid fd and a timeval of the right size.
            let rc = unsafe {
                libc::setsockopt(
                    sock.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_SNDTIMEO,
                    &tv as *const libc::timeval as *const libc::c_void,
                    std::mem::size_of::<libc::timeval>() as libc::socklen_t,
                )
            };
            if rc != 0 {
                return Err(io_err(io::Error::last_os_error()));
            }
        }
        Ok(Netlink {
            sock,
            seq: 0,
            deadline,
            buf: vec![0; RECV_BUF],
        })
    }

    /// A new bound for the queries that follow (a node scan reuses one socket for many pods).
    pub fn set_deadline(&mut self, deadline: Deadline) {
        self.deadline = deadline;
    }

    pub fn link_by_name(&mut self, name: &str) -> Result<Option<Link>, InspectError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        let what = format!("look up interface {name}");
        self.get_one(RouteNetlinkMessage::GetLink(msg), &what)
            .map(|m| m.and_then(link_from))
    }

    pub fn link_by_index(&mut self, index: u32) -> Result<Option<Link>, InspectError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        let what = format!("look up interface index {index}");
        self.get_one(RouteNetlinkMessage::GetLink(msg), &what)
            .map(|m| m.and_then(link_from))
    }

    pub fn links(&mut self) -> Result<Vec<Link>, InspectError> {
        let msg = LinkMessage::default();
        Ok(self
            .dump(RouteNetlinkMessage::GetLink(msg), "list interfaces")?
            .into_iter()
            .filter_map(link_from)
            .collect())
    }

    /// Addresses of one interface (`Some(index)`) or of all of them.
    pub fn addresses(&mut self, index: Option<u32>) -> Result<Vec<Addr>, InspectError> {
        let mut msg = AddressMessage::default();
        msg.header.index = index.unwrap_or(0);
        let out = self.dump(RouteNetlinkMessage::GetAddress(msg), "list addresses")?;
        Ok(out
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) => addr_from(a),
                _ => None,
            })
            // Old kernels ignore the filter; keep the contract either way.
            .filter(|a| index.is_none_or(|i| a.index == i))
            .collect())
    }

    /// Every route of the main table, both families.
    pub fn main_routes(&mut self) -> Result<Vec<Route>, InspectError> {
        let mut routes = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut msg = RouteMessage::default();
            msg.header.address_family = family;
            let out = self.dump(RouteNetlinkMessage::GetRoute(msg), "list routes")?;
            routes.extend(out.into_iter().filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => route_from(r),
                _ => None,
            }));
        }
        routes.retain(|r| r.table == u32::from(RouteHeaderMain::MAIN));
        Ok(routes)
    }

    /// The FIB entry the kernel would use for `ip` (`ip route get fibmatch`): one lookup,
    /// independent of how many routes the host has. `None` when nothing matches.
    pub fn route_fibmatch(&mut self, ip: IpAddr) -> Result<Option<Route>, InspectError> {
        let mut msg = RouteMessage::default();
        let (family, len, dst) = match ip {
            IpAddr::V4(a) => (AddressFamily::Inet, 32, RouteAddress::Inet(a)),
            IpAddr::V6(a) => (AddressFamily::Inet6, 128, RouteAddress::Inet6(a)),
        };
        msg.header.address_family = family;
        msg.header.destination_prefix_length = len;
        msg.header.flags = RouteFlags::FibMatch;
        msg.attributes.push(RouteAttribute::Destination(dst));
        let what = format!("look up the route to {ip}");
        match self.get_one(RouteNetlinkMessage::GetRoute(msg), &what) {
            Ok(m) => Ok(m.and_then(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => route_from(r),
                _ => None,
            })),
            Err(InspectError::Kernel { errno, .. })
                if errno == libc::ENETUNREACH || errno == libc::EHOSTUNREACH =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The id this namespace gives the namespace open at `fd` (what IFLA_LINK_NETNSID of a veth
    /// whose peer lives there says), or `None` when it has none. Reading never assigns one.
    pub fn nsid_of_fd(&mut self, fd: std::os::fd::RawFd) -> Result<Option<i32>, InspectError> {
        let mut msg = NsidMessage::default();
        msg.attributes.push(NsidAttribute::Fd(fd as u32));
        let reply = self.get_one(RouteNetlinkMessage::GetNsId(msg), "look up a namespace id")?;
        Ok(match reply {
            Some(RouteNetlinkMessage::NewNsId(m)) => m.attributes.iter().find_map(|a| match a {
                NsidAttribute::Id(id) if *id >= 0 => Some(*id),
                _ => None,
            }),
            _ => None,
        })
    }

    pub fn neighbours(&mut self, index: u32) -> Result<Vec<Neighbour>, InspectError> {
        // Neighbour dumps filter by an NDA_IFINDEX attribute, not the header; a pod has few
        // neighbours, so filtering here is simpler.
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Inet;
        let out = self.dump(RouteNetlinkMessage::GetNeighbour(msg), "list neighbours")?;
        Ok(out
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewNeighbour(n) => neigh_from(n),
                _ => None,
            })
            .filter(|n| n.index == index)
            .collect())
    }

    fn get_one(
        &mut self,
        req: RouteNetlinkMessage,
        what: &str,
    ) -> Result<Option<RouteNetlinkMessage>, InspectError> {
        match self.exchange(req, NLM_F_REQUEST, what) {
            Ok(mut v) => Ok(v.pop()),
            Err(InspectError::Kernel { errno, .. }) if errno == libc::ENODEV => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn dump(
        &mut self,
        req: RouteNetlinkMessage,
        what: &str,
    ) -> Result<Vec<RouteNetlinkMessage>, InspectError> {
        self.exchange(req, NLM_F_REQUEST | NLM_F_DUMP, what)
    }

    fn exchange(
        &mut self,
        req: RouteNetlinkMessage,
        flags: u16,
        what: &str,
    ) -> Result<Vec<RouteNetlinkMessage>, InspectError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(req));
        msg.finalize();
        let mut out = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut out);
        self.sock.send(&out, 0).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock => InspectError::TimedOut {
                what: what.to_string(),
            },
            _ => InspectError::io(what, e),
        })?;

        let is_dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut replies = Vec::new();
        loop {
            let n = self.recv(what)?;
            let mut off = 0;
            while off < n {
                let bytes = &self.buf[off..n];
                let parsed =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes).map_err(|e| {
                        InspectError::Decode {
                            what: what.to_string(),
                            detail: e.to_string(),
                        }
                    })?;
                let len = parsed.header.length as usize;
                if len == 0 {
                    return Err(InspectError::Decode {
                        what: what.to_string(),
                        detail: "zero-length netlink message".into(),
                    });
                }
                // Netlink messages are 4-byte aligned within a datagram.
                off += (len + 3) & !3;
                if parsed.header.sequence_number != seq {
                    continue; // a late answer to an earlier request
                }
                match parsed.payload {
                    NetlinkPayload::Done(_) => return Ok(replies),
                    NetlinkPayload::Error(e) => {
                        let code = e.raw_code();
                        if code == 0 {
                            return Ok(replies);
                        }
                        return Err(InspectError::Kernel {
                            what: what.to_string(),
                            errno: -code,
                        });
                    }
                    NetlinkPayload::InnerMessage(m) => {
                        replies.push(m);
                        if !is_dump {
                            return Ok(replies);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// One datagram, waiting at most until the deadline. The kernel answers rtnetlink GETs
    /// while handling the send, so the non-blocking read almost always succeeds at once; poll
    /// only covers a kernel (or a namespace) that is slow to answer.
    fn recv(&mut self, what: &str) -> Result<usize, InspectError> {
        loop {
            match self.sock.recv(&mut &mut self.buf[..], libc::MSG_DONTWAIT) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.wait_readable(what)?,
                Err(e) => return Err(InspectError::io(what, e)),
            }
        }
    }

    fn wait_readable(&self, what: &str) -> Result<(), InspectError> {
        let timed_out = || InspectError::TimedOut {
            what: what.to_string(),
        };
        let left = self.deadline.remaining().ok_or_else(timed_out)?;
        let mut pfd = libc::pollfd {
            fd: self.sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // Round up: a sub-millisecond remainder must still wait, not spin.
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
        // SAFETY: one valid pollfd for the duration of the call.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        match rc {
            0 => Err(timed_out()),
            n if n > 0 => Ok(()),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    Ok(())
                } else {
                    Err(InspectError::io(what, e))
                }
            }
        }
    }
}

struct RouteHeaderMain;
impl RouteHeaderMain {
    const MAIN: u8 = netlink_packet_route::route::RouteHeader::RT_TABLE_MAIN;
}

fn link_from(m: RouteNetlinkMessage) -> Option<Link> {
    let RouteNetlinkMessage::NewLink(l) = m else {
        return None;
    };
    let mut link = Link {
        index: l.header.index,
        up: l.header.flags.contains(LinkFlags::Up),
        lower_up: l.header.flags.contains(LinkFlags::LowerUp),
        ..Link::default()
    };
    for a in l.attributes {
        match a {
            LinkAttribute::IfName(n) => link.name = n,
            LinkAttribute::Address(mac) => link.mac = Some(mac),
            LinkAttribute::Link(peer) => link.peer_index = Some(peer),
            LinkAttribute::LinkNetNsId(id) => link.peer_netnsid = Some(id),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        link.kind = Some(match k {
                            InfoKind::Veth => "veth".to_string(),
                            other => format!("{other:?}").to_lowercase(),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    Some(link)
}

fn addr_from(a: AddressMessage) -> Option<Addr> {
    // IFA_LOCAL is the interface's own address on point-to-point links; IFA_ADDRESS otherwise.
    let mut address = None;
    let mut local = None;
    for attr in &a.attributes {
        match attr {
            AddressAttribute::Address(ip) => address = Some(*ip),
            AddressAttribute::Local(ip) => local = Some(*ip),
            _ => {}
        }
    }
    let ip = local.or(address)?;
    Some(Addr {
        index: a.header.index,
        ip,
        prefix_len: a.header.prefix_len,
    })
}

fn route_from(r: RouteMessage) -> Option<Route> {
    let mut route = Route {
        v6: r.header.address_family == AddressFamily::Inet6,
        dst_len: r.header.destination_prefix_length,
        scope_link: r.header.scope == RouteScope::Link,
        scope_host: r.header.scope == RouteScope::Host,
        local: r.header.kind == RouteType::Local,
        unicast: r.header.kind == RouteType::Unicast,
        table: u32::from(r.header.table),
        ..Route::default()
    };
    let mut dst_ip = None;
    for a in r.attributes {
        match a {
            RouteAttribute::Destination(d) => dst_ip = ip_of(d),
            RouteAttribute::Gateway(g) => route.gateway = ip_of(g),
            RouteAttribute::Oif(i) => route.oif = Some(i),
            RouteAttribute::Table(t) => route.table = t,
            RouteAttribute::Priority(p) => route.metric = p,
            _ => {}
        }
    }
    route.dst = match dst_ip {
        Some(ip) => IpNetwork::new(ip, route.dst_len).ok(),
        None => None,
    };
    Some(route)
}

fn neigh_from(n: NeighbourMessage) -> Option<Neighbour> {
    let mut ip = None;
    let mut mac = None;
    for a in n.attributes {
        match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => {
                ip = Some(IpAddr::V4(v4))
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => {
                ip = Some(IpAddr::V6(v6))
            }
            NeighbourAttribute::LinkLayerAddress(m) => mac = Some(m),
            _ => {}
        }
    }
    Some(Neighbour {
        index: n.header.ifindex,
        ip: ip?,
        mac,
        state: u16::from(n.header.state),
    })
}

fn ip_of(a: RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(v6)),
        _ => None,
    }
}
