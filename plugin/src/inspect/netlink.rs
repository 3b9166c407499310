//! A small synchronous rtnetlink client: one socket, one request at a time, every read bounded
//! by a deadline. Only GET requests exist here: the plugin never changes the network.
//!
//! The codec is hand-rolled for exactly the requests below (as [`super::netfilter`] does for
//! nf_tables): `netlink-packet-route` parses every attribute of every rtnetlink message and
//! was a quarter of the static binary. Requests and replies follow the uapi headers
//! `linux/netlink.h`, `linux/rtnetlink.h`, `linux/if_link.h`, `linux/if_addr.h`,
//! `linux/neighbour.h` and `linux/net_namespace.h`; only the fields we report are decoded.

use super::nlmsg::{self, Malformed, Msg, Request};
use super::{Addr, Deadline, InspectError, Link, Neighbour, Route};
use ipnetwork::IpNetwork;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;

pub struct Netlink {
    sock: Socket,
    seq: u32,
    deadline: Deadline,
    buf: Vec<u8>,
}

/// Non-dump replies are one message; dumps of a pod's or a single link's state stay small.
const RECV_BUF: usize = 64 * 1024;

// libc's netlink constants are c_int; the wire fields are u16.
const NLM_F_REQUEST: u16 = libc::NLM_F_REQUEST as u16;
const NLM_F_DUMP: u16 = libc::NLM_F_DUMP as u16;
const NLMSG_ERROR: u16 = libc::NLMSG_ERROR as u16;
const NLMSG_DONE: u16 = libc::NLMSG_DONE as u16;
/// Types below this are netlink control messages (NOOP, OVERRUN, ...), not rtnetlink data.
const NLMSG_MIN_TYPE: u16 = 0x10;

// Not in libc: uapi linux/net_namespace.h, enum { NETNSA_NONE, NETNSA_NSID, NETNSA_PID,
// NETNSA_FD, ... }.
const NETNSA_NSID: u16 = 1;
const NETNSA_FD: u16 = 3;

// Fixed headers (sizes from the uapi structs; the kernel's strict checking wants every field
// we do not set to be zero, which these zero-filled arrays give).
/// struct ifinfomsg { u8 family, pad; u16 type; i32 index; u32 flags, change; }
const IFINFOMSG_LEN: usize = 16;
/// struct ifaddrmsg { u8 family, prefixlen, flags, scope; u32 index; }
const IFADDRMSG_LEN: usize = 8;
/// struct rtmsg { u8 family, dst_len, src_len, tos, table, protocol, scope, type; u32 flags; }
const RTMSG_LEN: usize = 12;
/// struct ndmsg { u8 family, pad1; u16 pad2; i32 ifindex; u16 state; u8 flags, type; }
const NDMSG_LEN: usize = 12;
/// struct rtgenmsg { u8 family; }, padded: attributes start at NLMSG_ALIGN(1).
const RTGENMSG_LEN: usize = 4;

fn ifinfomsg(index: u32) -> [u8; IFINFOMSG_LEN] {
    let mut h = [0u8; IFINFOMSG_LEN];
    h[4..8].copy_from_slice(&index.to_ne_bytes());
    h
}

fn ifaddrmsg(index: u32) -> [u8; IFADDRMSG_LEN] {
    let mut h = [0u8; IFADDRMSG_LEN];
    h[4..8].copy_from_slice(&index.to_ne_bytes());
    h
}

fn rtmsg(family: u8, dst_len: u8, flags: u32) -> [u8; RTMSG_LEN] {
    let mut h = [0u8; RTMSG_LEN];
    h[0] = family;
    h[1] = dst_len;
    h[8..12].copy_from_slice(&flags.to_ne_bytes());
    h
}

fn ndmsg(family: u8) -> [u8; NDMSG_LEN] {
    let mut h = [0u8; NDMSG_LEN];
    h[0] = family;
    h
}

fn link_request(index: u32, name: Option<&str>) -> Result<Request, Malformed> {
    let req = Request::new(libc::RTM_GETLINK, NLM_F_REQUEST, &ifinfomsg(index));
    match name {
        Some(n) => {
            // IFLA_IFNAME is a NUL-terminated string (NLA_STRING policy).
            let mut v = n.as_bytes().to_vec();
            v.push(0);
            req.attr(libc::IFLA_IFNAME, &v)
        }
        None => Ok(req),
    }
}

fn fibmatch_request(ip: IpAddr) -> Result<Request, Malformed> {
    let (family, len, octets) = match ip {
        IpAddr::V4(a) => (libc::AF_INET, 32, a.octets().to_vec()),
        IpAddr::V6(a) => (libc::AF_INET6, 128, a.octets().to_vec()),
    };
    let h = rtmsg(family as u8, len, libc::RTM_F_FIB_MATCH);
    Request::new(libc::RTM_GETROUTE, NLM_F_REQUEST, &h).attr(libc::RTA_DST, &octets)
}

fn nsid_request(fd: std::os::fd::RawFd) -> Result<Request, Malformed> {
    let h = [libc::AF_UNSPEC as u8, 0, 0, 0];
    Request::new(libc::RTM_GETNSID, NLM_F_REQUEST, &h).attr(NETNSA_FD, &(fd as u32).to_ne_bytes())
}

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
            nlmsg::set_socket_timeout(sock.as_raw_fd(), libc::SO_SNDTIMEO, left).map_err(io_err)?;
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
        let h = ifinfomsg(0);
        let req = Request::new(libc::RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, &h);
        self.exchange(req, libc::RTM_NEWLINK, link_from, "list interfaces")
    }

    /// Addresses of one interface (`Some(index)`) or of all of them.
    pub fn addresses(&mut self, index: Option<u32>) -> Result<Vec<Addr>, InspectError> {
        // AF_UNSPEC: both families; with strict checking the kernel filters by ifa_index.
        let h = ifaddrmsg(index.unwrap_or(0));
        let req = Request::new(libc::RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, &h);
        let mut out = self.exchange(req, libc::RTM_NEWADDR, addr_from, "list addresses")?;
        // Old kernels ignore the filter; keep the contract either way.
        out.retain(|a| index.is_none_or(|i| a.index == i));
        Ok(out)
    }

    /// Every route of the main table, both families.
    pub fn main_routes(&mut self) -> Result<Vec<Route>, InspectError> {
        let mut routes = Vec::new();
        for family in [libc::AF_INET, libc::AF_INET6] {
            let h = rtmsg(family as u8, 0, 0);
            let req = Request::new(libc::RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, &h);
            routes.extend(self.exchange(req, libc::RTM_NEWROUTE, route_from, "list routes")?);
        }
        routes.retain(|r| r.table == u32::from(libc::RT_TABLE_MAIN));
        Ok(routes)
    }

    /// The FIB entry the kernel would use for `ip` (`ip route get fibmatch`): one lookup,
    /// independent of how many routes the host has. `None` when nothing matches.
    pub fn route_fibmatch(&mut self, ip: IpAddr) -> Result<Option<Route>, InspectError> {
        let what = format!("look up the route to {ip}");
        let req = fibmatch_request(ip).map_err(|e| bad_request(&what, e))?;
        absent_on(
            self.get_one(req, libc::RTM_NEWROUTE, route_from, &what),
            &[libc::ENETUNREACH, libc::EHOSTUNREACH],
        )
    }

    /// The id this namespace gives the namespace open at `fd` (what IFLA_LINK_NETNSID of a veth
    /// whose peer lives there says), or `None` when it has none. Reading never assigns one.
    pub fn nsid_of_fd(&mut self, fd: std::os::fd::RawFd) -> Result<Option<i32>, InspectError> {
        let what = "look up a namespace id";
        let req = nsid_request(fd).map_err(|e| bad_request(what, e))?;
        Ok(self
            .get_one(req, libc::RTM_NEWNSID, nsid_from, what)?
            .flatten())
    }

    pub fn neighbours(&mut self, index: u32) -> Result<Vec<Neighbour>, InspectError> {
        // Neighbour dumps filter by an NDA_IFINDEX attribute, not the header; a pod has few
        // neighbours, so filtering here is simpler.
        let h = ndmsg(libc::AF_INET as u8);
        let req = Request::new(libc::RTM_GETNEIGH, NLM_F_REQUEST | NLM_F_DUMP, &h);
        let mut out = self.exchange(req, libc::RTM_NEWNEIGH, neigh_from, "list neighbours")?;
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
            self.exchange(req, reply, decode, what).map(|mut v| v.pop()),
            &[libc::ENODEV],
        )
    }

    /// Sends `req` and collects the decoded `reply` messages until the kernel ends the
    /// exchange: after one message for a plain GET, at NLMSG_DONE for a dump.
    fn exchange<T>(
        &mut self,
        req: Request,
        reply: u16,
        decode: fn(&[u8]) -> Result<Option<T>, Malformed>,
        what: &str,
    ) -> Result<Vec<T>, InspectError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let is_dump = req.flags() & NLM_F_DUMP == NLM_F_DUMP;
        let out = req.finish(seq).map_err(|e| bad_request(what, e))?;
        self.sock.send(&out, 0).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock => InspectError::TimedOut {
                what: what.to_string(),
            },
            _ => InspectError::io(what, e),
        })?;

        let mut replies = Vec::new();
        loop {
            let n = self.recv(what)?;
            let datagram = self.buf.get(..n).unwrap_or_default();
            let ctx = Exchange {
                seq,
                reply,
                is_dump,
                what,
            };
            if ctx.absorb(datagram, decode, &mut replies)? {
                return Ok(replies);
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

/// What one exchange waits for, to sort the messages of each datagram it reads.
struct Exchange<'a> {
    seq: u32,
    reply: u16,
    is_dump: bool,
    what: &'a str,
}

impl Exchange<'_> {
    /// Decodes the messages of one datagram into `out`; returns whether the exchange is over.
    fn absorb<T>(
        &self,
        datagram: &[u8],
        decode: fn(&[u8]) -> Result<Option<T>, Malformed>,
        out: &mut Vec<T>,
    ) -> Result<bool, InspectError> {
        let malformed = |e: Malformed| decode_err(self.what, e);
        for m in nlmsg::messages(datagram) {
            let m: Msg = m.map_err(malformed)?;
            if m.seq != self.seq {
                continue; // a late answer to an earlier request
            }
            match m.kind {
                NLMSG_DONE => return Ok(true),
                NLMSG_ERROR => {
                    let code = m.code().ok_or_else(|| malformed(short("NLMSG_ERROR")))?;
                    if code == 0 {
                        return Ok(true); // an ACK
                    }
                    return Err(InspectError::Kernel {
                        what: self.what.to_string(),
                        errno: code.saturating_neg(),
                    });
                }
                k if k < NLMSG_MIN_TYPE => {} // NOOP, OVERRUN: nothing to decode
                k => {
                    if k == self.reply {
                        out.extend(decode(m.payload).map_err(malformed)?);
                    }
                    if !self.is_dump {
                        return Ok(true);
                    }
                }
            }
        }
        Ok(false)
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

fn decode_err(what: &str, e: Malformed) -> InspectError {
    InspectError::Decode {
        what: what.to_string(),
        detail: e.0,
    }
}

fn bad_request(what: &str, e: Malformed) -> InspectError {
    InspectError::Io {
        what: what.to_string(),
        detail: format!("request not encodable: {e}"),
    }
}

fn short(what: &str) -> Malformed {
    Malformed(format!("{what} too short"))
}

/// Splits a reply payload into its fixed header and its attributes.
fn split_fixed<'a>(p: &'a [u8], len: usize, what: &str) -> Result<(&'a [u8], &'a [u8]), Malformed> {
    if p.len() < len {
        return Err(short(what));
    }
    Ok(p.split_at(len))
}

fn attr_u32(kind: &str, v: &[u8]) -> Result<u32, Malformed> {
    v.try_into()
        .map(u32::from_ne_bytes)
        .map_err(|_| Malformed(format!("{kind} of {} bytes", v.len())))
}

/// An address attribute whose size the message's family fixes (RTA_DST, NDA_DST, ...).
fn ip_of_family(family: u8, kind: &str, v: &[u8]) -> Result<Option<IpAddr>, Malformed> {
    let bad = || Malformed(format!("{kind} of {} bytes for family {family}", v.len()));
    Ok(match i32::from(family) {
        libc::AF_INET => Some(IpAddr::V4(Ipv4Addr::from(
            <[u8; 4]>::try_from(v).map_err(|_| bad())?,
        ))),
        libc::AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(
            <[u8; 16]>::try_from(v).map_err(|_| bad())?,
        ))),
        _ => None, // MPLS labels and the like: not an IP
    })
}

/// An interface address attribute: its size says the family.
fn ip_of_len(kind: &str, v: &[u8]) -> Result<IpAddr, Malformed> {
    if let Ok(a) = <[u8; 4]>::try_from(v) {
        return Ok(IpAddr::V4(Ipv4Addr::from(a)));
    }
    <[u8; 16]>::try_from(v)
        .map(|a| IpAddr::V6(Ipv6Addr::from(a)))
        .map_err(|_| Malformed(format!("{kind} of {} bytes", v.len())))
}

fn link_from(p: &[u8]) -> Result<Option<Link>, Malformed> {
    let (h, attrs) = split_fixed(p, IFINFOMSG_LEN, "RTM_NEWLINK")?;
    let flags = nlmsg::read_u32(h, 8).unwrap_or(0);
    let mut link = Link {
        index: nlmsg::read_u32(h, 4).unwrap_or(0),
        up: flags & libc::IFF_UP as u32 != 0,
        lower_up: flags & libc::IFF_LOWER_UP as u32 != 0,
        ..Link::default()
    };
    for a in nlmsg::attrs(attrs) {
        let (kind, v) = a?;
        match kind {
            libc::IFLA_IFNAME => link.name = nlmsg::c_string(v),
            libc::IFLA_ADDRESS => link.mac = Some(v.to_vec()),
            libc::IFLA_LINK => link.peer_index = Some(attr_u32("IFLA_LINK", v)?),
            libc::IFLA_LINK_NETNSID => {
                link.peer_netnsid = Some(attr_u32("IFLA_LINK_NETNSID", v)? as i32)
            }
            libc::IFLA_LINKINFO => {
                for i in nlmsg::attrs(v) {
                    if let (libc::IFLA_INFO_KIND, k) = i? {
                        // The kernel's own name ("veth", "bridge", ...), as `ip -d link` shows.
                        link.kind = Some(nlmsg::c_string(k));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(Some(link))
}

fn addr_from(p: &[u8]) -> Result<Option<Addr>, Malformed> {
    let (h, attrs) = split_fixed(p, IFADDRMSG_LEN, "RTM_NEWADDR")?;
    // IFA_LOCAL is the interface's own address on point-to-point links; IFA_ADDRESS otherwise.
    let mut address = None;
    let mut local = None;
    for a in nlmsg::attrs(attrs) {
        match a? {
            (libc::IFA_ADDRESS, v) => address = Some(ip_of_len("IFA_ADDRESS", v)?),
            (libc::IFA_LOCAL, v) => local = Some(ip_of_len("IFA_LOCAL", v)?),
            _ => {}
        }
    }
    Ok(local.or(address).map(|ip| Addr {
        index: nlmsg::read_u32(h, 4).unwrap_or(0),
        ip,
        prefix_len: h[1],
    }))
}

fn route_from(p: &[u8]) -> Result<Option<Route>, Malformed> {
    let (h, attrs) = split_fixed(p, RTMSG_LEN, "RTM_NEWROUTE")?;
    let (family, dst_len, table, scope, kind) = (h[0], h[1], h[4], h[6], h[7]);
    let mut route = Route {
        v6: i32::from(family) == libc::AF_INET6,
        dst_len,
        scope_link: scope == libc::RT_SCOPE_LINK,
        scope_host: scope == libc::RT_SCOPE_HOST,
        local: kind == libc::RTN_LOCAL,
        unicast: kind == libc::RTN_UNICAST,
        // rtm_table is 8 bits; RTA_TABLE below carries the full id.
        table: u32::from(table),
        ..Route::default()
    };
    let mut dst_ip = None;
    for a in nlmsg::attrs(attrs) {
        match a? {
            (libc::RTA_DST, v) => dst_ip = ip_of_family(family, "RTA_DST", v)?,
            (libc::RTA_GATEWAY, v) => route.gateway = ip_of_family(family, "RTA_GATEWAY", v)?,
            (libc::RTA_OIF, v) => route.oif = Some(attr_u32("RTA_OIF", v)?),
            (libc::RTA_TABLE, v) => route.table = attr_u32("RTA_TABLE", v)?,
            (libc::RTA_PRIORITY, v) => route.metric = attr_u32("RTA_PRIORITY", v)?,
            _ => {}
        }
    }
    route.dst = dst_ip.and_then(|ip| IpNetwork::new(ip, dst_len).ok());
    Ok(Some(route))
}

fn neigh_from(p: &[u8]) -> Result<Option<Neighbour>, Malformed> {
    let (h, attrs) = split_fixed(p, NDMSG_LEN, "RTM_NEWNEIGH")?;
    let family = h[0];
    let mut ip = None;
    let mut mac = None;
    for a in nlmsg::attrs(attrs) {
        match a? {
            (libc::NDA_DST, v) => ip = ip_of_family(family, "NDA_DST", v)?,
            (libc::NDA_LLADDR, v) => mac = Some(v.to_vec()),
            _ => {}
        }
    }
    Ok(ip.map(|ip| Neighbour {
        index: nlmsg::read_u32(h, 4).unwrap_or(0),
        ip,
        mac,
        state: nlmsg::read_u16(h, 8).unwrap_or(0),
    }))
}

/// `Some(None)`: the kernel answered, and the namespace has no id here (NETNSA_NSID -1).
fn nsid_from(p: &[u8]) -> Result<Option<Option<i32>>, Malformed> {
    let (_, attrs) = split_fixed(p, RTGENMSG_LEN, "RTM_NEWNSID")?;
    let mut id = None;
    for a in nlmsg::attrs(attrs) {
        if let (NETNSA_NSID, v) = a? {
            id = Some(attr_u32("NETNSA_NSID", v)? as i32).filter(|id| *id >= 0);
        }
    }
    Ok(Some(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::nlmsg::{read_u16, read_u32, NLMSG_HDRLEN};
    use std::time::Duration;

    const NLM_F_MULTI: u16 = libc::NLM_F_MULTI as u16;
    const NLA_F_NESTED: u16 = libc::NLA_F_NESTED as u16;

    use crate::inspect::nlmsg::test_attr as attr;

    fn nlmsg(kind: u16, flags: u16, seq: u32, fixed: &[u8], attrs: &[Vec<u8>]) -> Vec<u8> {
        let mut payload = fixed.to_vec();
        attrs.iter().for_each(|a| payload.extend_from_slice(a));
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDRLEN + payload.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&4242u32.to_ne_bytes());
        m.extend_from_slice(&payload);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        m
    }

    fn done(seq: u32) -> Vec<u8> {
        nlmsg(NLMSG_DONE, NLM_F_MULTI, seq, &0i32.to_ne_bytes(), &[])
    }

    fn error(seq: u32, errno: i32) -> Vec<u8> {
        // int error, then the request's header (the kernel echoes it back).
        let mut p = (-errno).to_ne_bytes().to_vec();
        p.extend_from_slice(&[0; NLMSG_HDRLEN]);
        nlmsg(NLMSG_ERROR, 0, seq, &p, &[])
    }

    fn ex(seq: u32, reply: u16, is_dump: bool) -> Exchange<'static> {
        Exchange {
            seq,
            reply,
            is_dump,
            what: "test",
        }
    }

    /// Decodes one datagram; (replies, whether the exchange ended).
    fn absorb<T>(
        e: &Exchange,
        datagram: &[u8],
        decode: fn(&[u8]) -> Result<Option<T>, Malformed>,
    ) -> Result<(Vec<T>, bool), InspectError> {
        let mut out = Vec::new();
        let over = e.absorb(datagram, decode, &mut out)?;
        Ok((out, over))
    }

    fn is_decode<T: std::fmt::Debug>(r: Result<T, InspectError>) -> bool {
        matches!(r, Err(InspectError::Decode { .. }))
    }

    fn veth_reply(seq: u32) -> Vec<u8> {
        let mut h = [0u8; IFINFOMSG_LEN];
        h[0] = libc::AF_UNSPEC as u8;
        h[2..4].copy_from_slice(&1u16.to_ne_bytes()); // ARPHRD_ETHER
        h[4..8].copy_from_slice(&7u32.to_ne_bytes());
        let flags = (libc::IFF_UP | libc::IFF_LOWER_UP | libc::IFF_BROADCAST) as u32;
        h[8..12].copy_from_slice(&flags.to_ne_bytes());
        let info = [
            attr(libc::IFLA_INFO_KIND, b"veth\0"),
            attr(2 /* IFLA_INFO_DATA */ | NLA_F_NESTED, &[]),
        ]
        .concat();
        nlmsg(
            libc::RTM_NEWLINK,
            0,
            seq,
            &h,
            &[
                attr(libc::IFLA_IFNAME, b"cali12345\0"),
                attr(4 /* IFLA_MTU */, &1450u32.to_ne_bytes()),
                attr(libc::IFLA_ADDRESS, &[0xee; 6]),
                attr(libc::IFLA_LINK, &3u32.to_ne_bytes()),
                attr(libc::IFLA_LINKINFO | NLA_F_NESTED, &info),
                attr(libc::IFLA_LINK_NETNSID, &2i32.to_ne_bytes()),
            ],
        )
    }

    #[test]
    fn link_reply_with_linkinfo_kind() {
        let (got, over) =
            absorb(&ex(5, libc::RTM_NEWLINK, false), &veth_reply(5), link_from).unwrap();
        assert!(over, "a plain GET ends with its one reply");
        assert_eq!(
            got,
            vec![Link {
                index: 7,
                name: "cali12345".into(),
                kind: Some("veth".into()),
                mac: Some(vec![0xee; 6]),
                up: true,
                lower_up: true,
                peer_index: Some(3),
                peer_netnsid: Some(2),
            }]
        );
        // A plain device: no IFLA_LINKINFO, no carrier.
        let mut h = [0u8; IFINFOMSG_LEN];
        h[4..8].copy_from_slice(&1u32.to_ne_bytes());
        h[8..12].copy_from_slice(&(libc::IFF_UP as u32).to_ne_bytes());
        let lo = nlmsg(
            libc::RTM_NEWLINK,
            0,
            1,
            &h,
            &[attr(libc::IFLA_IFNAME, b"lo\0")],
        );
        let (got, _) = absorb(&ex(1, libc::RTM_NEWLINK, false), &lo, link_from).unwrap();
        assert_eq!(got[0].kind, None);
        assert!(got[0].up && !got[0].lower_up);
        assert_eq!(got[0].peer_index, None);
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
        let e = ex(9, libc::RTM_NEWADDR, true);
        let (got, over) = absorb(&e, &first, addr_from).unwrap();
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
        let (got, over) = absorb(&e, &done(9), addr_from).unwrap();
        assert!(over && got.is_empty());
        // A DONE for another request does not end this one.
        assert!(!absorb(&e, &done(8), addr_from).unwrap().1);
        // An address of the wrong size is an unexpected answer.
        let bad = nlmsg(
            libc::RTM_NEWADDR,
            NLM_F_MULTI,
            9,
            &ifa(libc::AF_INET, 32, 4),
            &[attr(libc::IFA_ADDRESS, &[10, 0, 0])],
        );
        assert!(is_decode(absorb(&e, &bad, addr_from)));
    }

    fn rtm(family: i32, dst_len: u8, table: u8, scope: u8, kind: u8) -> [u8; RTMSG_LEN] {
        let mut h = rtmsg(family as u8, dst_len, 0);
        h[4] = table;
        h[5] = 4; // RTPROT_STATIC
        h[6] = scope;
        h[7] = kind;
        h
    }

    #[test]
    fn route_replies() {
        let e = ex(3, libc::RTM_NEWROUTE, true);
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
        dg.extend(done(3));
        let (got, over) = absorb(&e, &dg, route_from).unwrap();
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

        // The fibmatch answer for a local address.
        let local = nlmsg(
            libc::RTM_NEWROUTE,
            0,
            4,
            &rtm(libc::AF_INET, 32, 255, libc::RT_SCOPE_HOST, libc::RTN_LOCAL),
            &[attr(libc::RTA_DST, &[127, 0, 0, 1])],
        );
        let (got, over) = absorb(&ex(4, libc::RTM_NEWROUTE, false), &local, route_from).unwrap();
        assert!(over && got[0].local && got[0].scope_host && got[0].table == 255);

        // RTA_OIF must be a u32.
        let bad = nlmsg(
            libc::RTM_NEWROUTE,
            NLM_F_MULTI,
            3,
            &rtm(libc::AF_INET, 0, 254, 0, 1),
            &[attr(libc::RTA_OIF, &[1, 0])],
        );
        assert!(is_decode(absorb(&e, &bad, route_from)));
    }

    #[test]
    fn neighbour_dump() {
        let nd = |index: u32, state: u16| {
            let mut h = ndmsg(libc::AF_INET as u8);
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
        let (got, over) = absorb(&ex(6, libc::RTM_NEWNEIGH, true), &dg, neigh_from).unwrap();
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
        let e = ex(2, libc::RTM_NEWNSID, false);
        assert_eq!(absorb(&e, &reply(3), nsid_from).unwrap().0, vec![Some(3)]);
        // NETNSA_NSID_NOT_ASSIGNED.
        assert_eq!(absorb(&e, &reply(-1), nsid_from).unwrap().0, vec![None]);
    }

    #[test]
    fn errors_and_acks() {
        let e = ex(11, libc::RTM_NEWLINK, false);
        let r = absorb(&e, &error(11, libc::ENODEV), link_from);
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
        let unreach =
            absorb(&e, &error(11, libc::ENETUNREACH), link_from).map(|(mut v, _)| v.pop());
        assert_eq!(
            absent_on(unreach, &[libc::ENETUNREACH, libc::EHOSTUNREACH]),
            Ok(None)
        );
        // An error for an older request is not ours.
        assert_eq!(
            absorb(&e, &error(10, libc::EPERM), link_from),
            Ok((vec![], false))
        );
        // ACK.
        assert_eq!(absorb(&e, &error(11, 0), link_from), Ok((vec![], true)));
        // NOOP is skipped; NLMSG_ERROR without its errno is malformed.
        let noop = nlmsg(libc::NLMSG_NOOP as u16, 0, 11, &[], &[]);
        assert_eq!(absorb(&e, &noop, link_from), Ok((vec![], false)));
        let short = nlmsg(NLMSG_ERROR, 0, 11, &[0, 0], &[]);
        assert!(is_decode(absorb(&e, &short, link_from)));
        // Another message type answering a GET ends it with nothing.
        let other = nlmsg(libc::RTM_NEWADDR, 0, 11, &[0; 8], &[]);
        assert_eq!(absorb(&e, &other, link_from), Ok((vec![], true)));
    }

    #[test]
    fn malformed_replies_are_decode_errors() {
        let good = veth_reply(1);
        let e = ex(1, libc::RTM_NEWLINK, false);
        // Every truncation is rejected cleanly (nlmsg_len then overruns the datagram).
        for cut in 1..good.len() {
            assert!(is_decode(absorb(&e, &good[..cut], link_from)), "cut {cut}");
        }
        // A truncated attribute inside an intact message: IFLA_IFNAME claims 200 bytes.
        let name_at = NLMSG_HDRLEN + IFINFOMSG_LEN;
        let mut bad = good.clone();
        bad[name_at..name_at + 2].copy_from_slice(&200u16.to_ne_bytes());
        let r = absorb(&e, &bad, link_from);
        assert!(
            matches!(&r, Err(InspectError::Decode { detail, .. }) if detail.contains("attribute length")),
            "{r:?}"
        );
        // Attribute length below its own header.
        bad[name_at..name_at + 2].copy_from_slice(&2u16.to_ne_bytes());
        assert!(is_decode(absorb(&e, &bad, link_from)));
        // A nested attribute overrunning IFLA_LINKINFO.
        let info = attr(libc::IFLA_INFO_KIND, b"veth\0");
        let mut nested = attr(libc::IFLA_LINKINFO, &info);
        nested[4..6].copy_from_slice(&64u16.to_ne_bytes());
        let m = nlmsg(libc::RTM_NEWLINK, 0, 1, &[0; IFINFOMSG_LEN], &[nested]);
        assert!(is_decode(absorb(&e, &m, link_from)));
        // A message shorter than its fixed header.
        let m = nlmsg(libc::RTM_NEWLINK, 0, 1, &[0; 8], &[]);
        assert!(is_decode(absorb(&e, &m, link_from)));
        // nlmsg_len smaller than the netlink header.
        let mut m = good.clone();
        m[0..4].copy_from_slice(&8u32.to_ne_bytes());
        assert!(is_decode(absorb(&e, &m, link_from)));
    }

    #[test]
    fn request_encoding() {
        let r = link_request(0, Some("eth0")).unwrap().finish(3).unwrap();
        assert_eq!(read_u32(&r, 0), Some(r.len() as u32));
        assert_eq!(read_u16(&r, 4), Some(libc::RTM_GETLINK));
        assert_eq!(read_u16(&r, 6), Some(NLM_F_REQUEST));
        assert_eq!(read_u32(&r, 8), Some(3));
        assert_eq!(&r[16..32], &[0; 16]);
        assert_eq!(&r[32..], &attr(libc::IFLA_IFNAME, b"eth0\0")[..]);

        let r = fibmatch_request("10.65.0.7".parse().unwrap())
            .unwrap()
            .finish(1)
            .unwrap();
        assert_eq!(read_u16(&r, 4), Some(libc::RTM_GETROUTE));
        let h = &r[16..28];
        assert_eq!((h[0], h[1]), (libc::AF_INET as u8, 32));
        assert_eq!(read_u32(h, 8), Some(libc::RTM_F_FIB_MATCH));
        assert_eq!(&r[28..], &attr(libc::RTA_DST, &[10, 65, 0, 7])[..]);
        let r = fibmatch_request("fd00::1".parse().unwrap())
            .unwrap()
            .finish(1)
            .unwrap();
        assert_eq!((r[16], r[17], r.len()), (libc::AF_INET6 as u8, 128, 48));

        let r = nsid_request(9).unwrap().finish(1).unwrap();
        assert_eq!(read_u16(&r, 4), Some(libc::RTM_GETNSID));
        assert_eq!(&r[16..20], &[0; 4]);
        assert_eq!(&r[20..], &attr(NETNSA_FD, &9u32.to_ne_bytes())[..]);

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
        let own = std::fs::File::open("/proc/thread-self/ns/net").unwrap();
        nl.nsid_of_fd(own.as_raw_fd()).unwrap();
    }
}
