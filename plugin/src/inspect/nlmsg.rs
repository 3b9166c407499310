//! The one netlink transport of the plugin, under both the rtnetlink client
//! ([`super::netlink`]) and the nf_tables reader ([`super::netfilter`]): a synchronous
//! `netlink-sys` socket, one request at a time, every read bounded by a deadline, and the
//! netlink-level replies (ACK, error, DONE, dump interrupted) handled in one place.
//!
//! Framing is `netlink-packet-core`'s (header, message and attribute buffers, every length
//! checked before use); what a message of a given protocol means is left to the caller, which
//! gets each data message of its request as (type, flags, payload).

use super::InspectError;
use netlink_packet_core::{
    Emitable, NetlinkBuffer, NetlinkHeader, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN,
    NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR,
};
use netlink_sys::{Socket, SocketAddr};
use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// sizeof(struct nlmsghdr).
pub const NLMSG_HDRLEN: usize = 16;

/// Big enough for any datagram the kernel sends us: dump parts are capped at 32 KiB (or a
/// page, whichever is larger); a larger one is detected (MSG_TRUNC), never silently cut.
const RECV_BUF: usize = 64 * 1024;

/// Bytes up to the first NUL (or all of them), as text.
pub fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(b.get(..end).unwrap_or_default()).into_owned()
}

/// Sets SO_RCVTIMEO or SO_SNDTIMEO on `fd` to `d`, never to zero (which means "block forever").
pub fn set_socket_timeout(fd: std::os::fd::RawFd, opt: libc::c_int, d: Duration) -> io::Result<()> {
    let d = d.max(Duration::from_micros(1));
    let tv = libc::timeval {
        tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_usec: libc::suseconds_t::from(d.subsec_micros() as i32),
    };
    // SAFETY: fd is a live socket owned by the caller; tv is a valid timeval whose exact size
    // we pass.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Framing or content that does not add up, with what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<netlink_packet_core::DecodeError> for Malformed {
    fn from(e: netlink_packet_core::DecodeError) -> Self {
        Malformed(e.to_string())
    }
}

/// One data message answering our request.
#[derive(Debug, Clone, Copy)]
pub struct Reply<'a> {
    pub kind: u16,
    /// Everything after the nlmsghdr, up to nlmsg_len.
    pub payload: &'a [u8],
}

/// What a finished exchange says beyond its replies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The kernel flagged a dump as inconsistent (NLM_F_DUMP_INTR): the table changed while it
    /// was being dumped.
    pub dump_intr: bool,
}

/// Called with each data message of the exchange.
pub type OnReply<'a> = dyn FnMut(Reply<'_>) -> Result<(), Malformed> + 'a;

/// The bytes of one request: header (nlmsg_pid 0 = the kernel), then `payload` as given.
pub fn frame(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Result<Vec<u8>, Malformed> {
    let total = NLMSG_HDRLEN + payload.len();
    let length = u32::try_from(total).map_err(|_| Malformed(format!("{total}-byte request")))?;
    let mut header = NetlinkHeader::default();
    header.length = length;
    header.message_type = kind;
    header.flags = flags;
    header.sequence_number = seq;
    let mut buf = vec![0u8; total];
    header.emit(&mut buf);
    buf[NLMSG_HDRLEN..].copy_from_slice(payload);
    Ok(buf)
}

/// The state of one exchange, to sort the messages of each datagram read for it.
#[derive(Debug, Clone, Copy)]
pub struct Exchange {
    pub seq: u32,
    /// The request was a dump: replies go on until NLMSG_DONE.
    pub dump: bool,
    /// The request asked for an ACK: a plain GET ends with it, not with its reply.
    pub ack: bool,
}

impl Exchange {
    pub fn for_request(seq: u32, flags: u16) -> Exchange {
        Exchange {
            seq,
            dump: flags & NLM_F_DUMP == NLM_F_DUMP,
            ack: flags & NLM_F_ACK != 0,
        }
    }

    /// Feeds the messages of one datagram for this exchange to `on_reply`; returns whether the
    /// exchange is over. Messages of other sequence numbers (late answers to an abandoned
    /// request) are skipped.
    pub fn absorb(
        &self,
        datagram: &[u8],
        outcome: &mut Outcome,
        on_reply: &mut OnReply<'_>,
    ) -> Result<bool, InspectErrorKind> {
        let mut rest = datagram;
        while !rest.is_empty() {
            let msg = NetlinkBuffer::new_checked(rest)
                .map_err(|e| InspectErrorKind::Decode(e.to_string()))?;
            let len = msg.length() as usize;
            // The last message of a datagram may come without its padding.
            rest = rest.get(len.saturating_add(3) & !3..).unwrap_or_default();
            if msg.sequence_number() != self.seq {
                continue;
            }
            if msg.flags() & NLM_F_DUMP_INTR != 0 {
                outcome.dump_intr = true;
            }
            let payload = msg.payload();
            match msg.message_type() {
                NLMSG_NOOP => {}
                NLMSG_ERROR => {
                    // struct nlmsgerr: int error, then the request's header (0: an ACK).
                    let code = read_i32(payload)
                        .ok_or_else(|| InspectErrorKind::Decode("NLMSG_ERROR too short".into()))?;
                    if code == 0 {
                        return Ok(true);
                    }
                    return Err(InspectErrorKind::Kernel(code.saturating_neg()));
                }
                NLMSG_DONE => {
                    // A dump can end in an error too (e.g. -EINTR, or the errno of a dump
                    // callback); older kernels send no code at all.
                    return match read_i32(payload) {
                        Some(e) if e < 0 => Err(InspectErrorKind::Kernel(e.saturating_neg())),
                        _ => Ok(true),
                    };
                }
                NLMSG_OVERRUN => {
                    return Err(InspectErrorKind::Decode("netlink overrun".into()));
                }
                // Other control messages (below NLMSG_MIN_TYPE): nothing to decode.
                k if k < 0x10 => {}
                kind => {
                    on_reply(Reply { kind, payload }).map_err(|e| InspectErrorKind::Decode(e.0))?;
                    if !self.dump && !self.ack {
                        return Ok(true);
                    }
                }
            }
        }
        Ok(false)
    }
}

fn read_i32(b: &[u8]) -> Option<i32> {
    Some(i32::from_ne_bytes(b.get(..4)?.try_into().ok()?))
}

/// Why an exchange failed, before the caller names what it was doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InspectErrorKind {
    TimedOut,
    Io(String),
    /// The kernel's errno (positive).
    Kernel(i32),
    Decode(String),
}

impl InspectErrorKind {
    pub fn with(self, what: &str) -> InspectError {
        let what = what.to_string();
        match self {
            InspectErrorKind::TimedOut => InspectError::TimedOut { what },
            InspectErrorKind::Io(detail) => InspectError::Io { what, detail },
            InspectErrorKind::Kernel(errno) => InspectError::Kernel { what, errno },
            InspectErrorKind::Decode(detail) => InspectError::Decode { what, detail },
        }
    }
}

/// A netlink socket of one protocol in the calling thread's network namespace.
pub struct Transport {
    sock: Socket,
    seq: u32,
    deadline: Instant,
    buf: Vec<u8>,
}

impl Transport {
    /// Opens and binds a socket of `protocol` (`NETLINK_ROUTE`, `NETLINK_NETFILTER`).
    pub fn open(protocol: isize, deadline: Instant) -> io::Result<Transport> {
        let mut sock = Socket::new(protocol)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        // Sends to the kernel are handled synchronously and do not wait in practice; bound them
        // anyway, once, by the whole call's deadline.
        if let Some(left) = deadline.checked_duration_since(Instant::now()) {
            set_socket_timeout(sock.as_raw_fd(), libc::SO_SNDTIMEO, left)?;
        }
        Ok(Transport {
            sock,
            seq: 0,
            deadline,
            // Not zeroed: the kernel writes only what it sends, so a small answer touches a
            // page or two of this, not all 16 (page faults are much of a short process's cost).
            buf: Vec::with_capacity(RECV_BUF),
        })
    }

    pub fn socket_mut(&mut self) -> &mut Socket {
        &mut self.sock
    }

    /// A new bound for the exchanges that follow.
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = deadline;
    }

    /// Sends one request (`payload` is everything after the nlmsghdr) and feeds each data
    /// message answering it to `on_reply`, until the kernel ends the exchange: after one
    /// message for a plain GET, at the ACK for a GET that asks for one, at NLMSG_DONE for a
    /// dump.
    pub fn exchange(
        &mut self,
        kind: u16,
        flags: u16,
        payload: &[u8],
        on_reply: &mut OnReply<'_>,
    ) -> Result<Outcome, InspectErrorKind> {
        self.seq = self.seq.wrapping_add(1);
        let ex = Exchange::for_request(self.seq, flags);
        let req = frame(kind, flags, ex.seq, payload)
            .map_err(|e| InspectErrorKind::Io(format!("request not encodable: {e}")))?;
        self.sock.send(&req, 0).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock => InspectErrorKind::TimedOut,
            _ => InspectErrorKind::Io(e.to_string()),
        })?;
        let mut outcome = Outcome::default();
        loop {
            self.recv()?;
            if ex.absorb(&self.buf, &mut outcome, on_reply)? {
                return Ok(outcome);
            }
        }
    }

    /// One datagram into `buf`, waiting at most until the deadline. The kernel answers most
    /// requests while handling the send, so the non-blocking read almost always succeeds at
    /// once; poll only covers a kernel (or a namespace) that is slow to answer.
    fn recv(&mut self) -> Result<(), InspectErrorKind> {
        loop {
            let flags = libc::MSG_DONTWAIT | libc::MSG_TRUNC;
            self.buf.clear();
            // Into the spare capacity; `buf` then holds what was received.
            match self.sock.recv(&mut self.buf, flags) {
                // With MSG_TRUNC netlink reports the datagram's full length.
                Ok(n) if n > self.buf.len() => {
                    return Err(InspectErrorKind::Decode(format!(
                        "{n}-byte datagram exceeds the receive buffer"
                    )))
                }
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.wait_readable()?,
                Err(e) => return Err(InspectErrorKind::Io(e.to_string())),
            }
        }
    }

    fn wait_readable(&self) -> Result<(), InspectErrorKind> {
        let left = self
            .deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or(InspectErrorKind::TimedOut)?;
        let mut pfd = libc::pollfd {
            fd: self.sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // Round up: a sub-millisecond remainder must still wait, not spin.
        let ms = left.as_micros().div_ceil(1000).clamp(1, i32::MAX as u128) as libc::c_int;
        // SAFETY: one valid pollfd for the duration of the call.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        match rc {
            0 => Err(InspectErrorKind::TimedOut),
            n if n > 0 => Ok(()),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    Ok(())
                } else {
                    Err(InspectErrorKind::Io(e.to_string()))
                }
            }
        }
    }
}

/// Test helpers that build messages as the kernel encodes them.
#[cfg(test)]
pub(crate) mod testing {
    use super::NLMSG_HDRLEN;

    /// One attribute: nla_len, nla_type, value, padding to 4.
    pub fn attr(kind: u16, val: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + val.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(val);
        a.resize((a.len() + 3) & !3, 0);
        a
    }

    /// One message: header (nlmsg_pid 4242), fixed header, attributes, padding to 4.
    pub fn nlmsg(kind: u16, flags: u16, seq: u32, fixed: &[u8], attrs: &[Vec<u8>]) -> Vec<u8> {
        let mut payload = fixed.to_vec();
        attrs.iter().for_each(|a| payload.extend_from_slice(a));
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDRLEN + payload.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&4242u32.to_ne_bytes());
        m.extend_from_slice(&payload);
        m.resize((m.len() + 3) & !3, 0);
        m
    }

    pub fn done(seq: u32, code: i32) -> Vec<u8> {
        nlmsg(libc::NLMSG_DONE as u16, 2, seq, &code.to_ne_bytes(), &[])
    }

    /// NLMSG_ERROR with `-errno` (0: an ACK), then the echoed request header.
    pub fn error(seq: u32, errno: i32) -> Vec<u8> {
        let mut p = (-errno).to_ne_bytes().to_vec();
        p.extend_from_slice(&[0; NLMSG_HDRLEN]);
        nlmsg(libc::NLMSG_ERROR as u16, 0, seq, &p, &[])
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    /// The data messages of one datagram as (kind, payload), whether the exchange ended, and
    /// whether a dump was flagged inconsistent.
    type Absorbed = (Vec<(u16, Vec<u8>)>, bool, bool);

    fn absorb(ex: Exchange, dg: &[u8]) -> Result<Absorbed, InspectErrorKind> {
        let mut got = Vec::new();
        let mut out = Outcome::default();
        let over = ex.absorb(dg, &mut out, &mut |r| {
            got.push((r.kind, r.payload.to_vec()));
            Ok(())
        })?;
        Ok((got, over, out.dump_intr))
    }

    const GET: u16 = 1; // NLM_F_REQUEST
    const DUMP: u16 = 0x301;

    #[test]
    fn request_framing() {
        let r = frame(18, 0x301, 9, &[7, 0, 0, 0]).unwrap();
        assert_eq!(r.len(), 20);
        assert_eq!(&r[0..4], &20u32.to_ne_bytes());
        assert_eq!(&r[4..6], &18u16.to_ne_bytes());
        assert_eq!(&r[6..8], &0x301u16.to_ne_bytes());
        assert_eq!(&r[8..12], &9u32.to_ne_bytes());
        assert_eq!(&r[12..16], &[0; 4], "nlmsg_pid 0: to the kernel");
        assert_eq!(&r[16..], &[7, 0, 0, 0]);
    }

    #[test]
    fn plain_get_ends_with_its_reply_dump_with_done() {
        let m = nlmsg(16, 0, 5, &[1, 2, 3, 4], &[]);
        let (got, over, _) = absorb(Exchange::for_request(5, GET), &m).unwrap();
        assert!(over);
        assert_eq!(got, vec![(16, vec![1, 2, 3, 4])]);
        // A dump goes on; a late message of request 4 is skipped; DONE of 4 does not end it.
        let mut dg = m.clone();
        dg.extend(nlmsg(16, 2, 4, &[9], &[]));
        dg.extend(done(4, 0));
        let dump = Exchange::for_request(5, DUMP);
        let (got, over, _) = absorb(dump, &dg).unwrap();
        assert!(!over);
        assert_eq!(got.len(), 1);
        assert_eq!(absorb(dump, &done(5, 0)).unwrap(), (vec![], true, false));
        // A GET that asked for an ACK waits for it after its reply.
        let acked = Exchange::for_request(5, GET | NLM_F_ACK);
        assert!(!absorb(acked, &m).unwrap().1);
        assert!(absorb(acked, &error(5, 0)).unwrap().1);
    }

    #[test]
    fn errors_acks_and_interrupted_dumps() {
        let get = Exchange::for_request(11, GET);
        assert_eq!(
            absorb(get, &error(11, libc::ENODEV)),
            Err(InspectErrorKind::Kernel(libc::ENODEV))
        );
        assert_eq!(
            absorb(get, &error(10, libc::EPERM)),
            Ok((vec![], false, false))
        );
        assert_eq!(absorb(get, &error(11, 0)), Ok((vec![], true, false)));
        let noop = nlmsg(libc::NLMSG_NOOP as u16, 0, 11, &[], &[]);
        assert_eq!(absorb(get, &noop), Ok((vec![], false, false)));
        let short = nlmsg(libc::NLMSG_ERROR as u16, 0, 11, &[0, 0], &[]);
        assert!(matches!(
            absorb(get, &short),
            Err(InspectErrorKind::Decode(_))
        ));
        let overrun = nlmsg(libc::NLMSG_OVERRUN as u16, 0, 11, &[], &[]);
        assert!(matches!(
            absorb(get, &overrun),
            Err(InspectErrorKind::Decode(_))
        ));

        let dump = Exchange::for_request(1, DUMP);
        assert_eq!(
            absorb(dump, &done(1, -libc::EINTR)),
            Err(InspectErrorKind::Kernel(libc::EINTR))
        );
        // DONE without its code (old kernels) still ends the dump.
        let bare = nlmsg(libc::NLMSG_DONE as u16, 2, 1, &[], &[]);
        assert!(absorb(dump, &bare).unwrap().1);
        let intr = nlmsg(16, 2 | NLM_F_DUMP_INTR, 1, &[0; 4], &[]);
        let (got, over, flagged) = absorb(dump, &intr).unwrap();
        assert!(got.len() == 1 && !over && flagged);
        // A decoder's complaint is a decode error of the exchange.
        let mut out = Outcome::default();
        let r = dump.absorb(&intr, &mut out, &mut |_| Err(Malformed("no".into())));
        assert_eq!(r, Err(InspectErrorKind::Decode("no".into())));
    }

    #[test]
    fn bad_lengths_are_decode_errors_never_panics() {
        let good = nlmsg(16, 0, 1, &[0; 16], &[attr(3, b"eth0\0")]);
        let get = Exchange::for_request(1, GET);
        for cut in 1..good.len() {
            assert!(
                matches!(absorb(get, &good[..cut]), Err(InspectErrorKind::Decode(_))),
                "cut {cut}"
            );
        }
        // nlmsg_len below the header, and beyond the datagram.
        for len in [8u32, 15, 1000] {
            let mut m = good.clone();
            m[0..4].copy_from_slice(&len.to_ne_bytes());
            assert!(
                matches!(absorb(get, &m), Err(InspectErrorKind::Decode(_))),
                "{len}"
            );
        }
        assert_eq!(c_string(b"lo\0junk"), "lo");
        assert_eq!(c_string(b"lo"), "lo");
    }

    #[test]
    fn an_unanswered_request_times_out_at_the_deadline() {
        // A message without NLM_F_REQUEST is not a request: the kernel drops it unanswered
        // (netlink_rcv_skb), and without NLM_F_ACK does not even ACK it.
        let deadline = Instant::now() + Duration::from_millis(50);
        let mut t = Transport::open(netlink_sys::protocols::NETLINK_ROUTE, deadline).unwrap();
        let start = Instant::now();
        let r = t.exchange(libc::RTM_GETLINK, 0, &[0; 16], &mut |_| Ok(()));
        assert_eq!(r, Err(InspectErrorKind::TimedOut));
        assert!(start.elapsed() < Duration::from_secs(2));
    }
}
