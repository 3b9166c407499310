//! Netlink framing shared by the rtnetlink ([`super::netlink`]) and nfnetlink
//! ([`super::netfilter`]) readers (uapi `linux/netlink.h`): building a request, and
//! bounds-checked walks over the messages of a datagram and the attributes of a message.
//!
//! Nothing here knows a message type: callers decode the few fields they need. Every length
//! read from the kernel is checked before it is used; a bad one ends the walk with
//! [`Malformed`], never a panic.

/// sizeof(struct nlmsghdr), already 4-byte aligned.
pub const NLMSG_HDRLEN: usize = 16;
/// sizeof(struct nlattr).
pub const NLA_HDRLEN: usize = 4;
/// Strips NLA_F_NESTED and NLA_F_NET_BYTEORDER from an attribute's type.
const NLA_TYPE_MASK: u16 = libc::NLA_TYPE_MASK as u16;

/// Messages and attributes are both padded to 4 bytes (NLMSG_ALIGN, NLA_ALIGN).
pub const fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

pub fn read_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

pub fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Bytes up to the first NUL (or all of them), as text.
pub fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(b.get(..end).unwrap_or_default()).into_owned()
}

/// Sets SO_RCVTIMEO or SO_SNDTIMEO on `fd` to `d`, never to zero (which means "block forever").
pub fn set_socket_timeout(
    fd: std::os::fd::RawFd,
    opt: libc::c_int,
    d: std::time::Duration,
) -> std::io::Result<()> {
    let d = d.max(std::time::Duration::from_micros(1));
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
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// One attribute as the kernel encodes it: for tests that hand-build kernel replies.
#[cfg(test)]
pub(crate) fn test_attr(kind: u16, val: &[u8]) -> Vec<u8> {
    let mut a = Vec::new();
    a.extend_from_slice(&((NLA_HDRLEN + val.len()) as u16).to_ne_bytes());
    a.extend_from_slice(&kind.to_ne_bytes());
    a.extend_from_slice(val);
    a.resize(align4(a.len()), 0);
    a
}

/// Framing that does not add up, with what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One request message: header, the family's fixed header, then attributes.
pub struct Request {
    buf: Vec<u8>,
}

impl Request {
    pub fn new(kind: u16, flags: u16, fixed: &[u8]) -> Request {
        let mut buf = vec![0u8; NLMSG_HDRLEN];
        buf[4..6].copy_from_slice(&kind.to_ne_bytes());
        buf[6..8].copy_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(fixed);
        // Attributes start at NLMSG_ALIGN(fixed header) (e.g. rtgenmsg is 1 byte).
        buf.resize(align4(buf.len()), 0);
        Request { buf }
    }

    /// Appends one attribute; fails only for a value too long for nla_len.
    pub fn attr(mut self, kind: u16, val: &[u8]) -> Result<Request, Malformed> {
        let len = u16::try_from(NLA_HDRLEN + val.len())
            .map_err(|_| Malformed(format!("{}-byte attribute value", val.len())))?;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(val);
        self.buf.resize(align4(self.buf.len()), 0);
        Ok(self)
    }

    pub fn flags(&self) -> u16 {
        read_u16(&self.buf, 6).unwrap_or(0)
    }

    /// The bytes to send, with nlmsg_len and nlmsg_seq filled in (nlmsg_pid 0 = the kernel).
    pub fn finish(mut self, seq: u32) -> Result<Vec<u8>, Malformed> {
        let len = u32::try_from(self.buf.len())
            .map_err(|_| Malformed(format!("{}-byte request", self.buf.len())))?;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        Ok(self.buf)
    }
}

/// One message of a received datagram.
#[derive(Debug, Clone, Copy)]
pub struct Msg<'a> {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    /// Everything after the nlmsghdr, up to nlmsg_len.
    pub payload: &'a [u8],
}

impl Msg<'_> {
    /// The `int error` that opens NLMSG_ERROR and NLMSG_DONE (0: ACK / clean end); `None` if
    /// the payload is too short to hold it.
    pub fn code(&self) -> Option<i32> {
        read_u32(self.payload, 0).map(|v| v as i32)
    }
}

/// The messages of one datagram, in order; stops after the first malformed one.
pub fn messages(buf: &[u8]) -> Messages<'_> {
    Messages { rest: buf }
}

pub struct Messages<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<Msg<'a>, Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.rest;
        if b.is_empty() {
            return None;
        }
        let len = read_u32(b, 0).map_or(0, |l| l as usize);
        let (Some(msg), true) = (b.get(..len), len >= NLMSG_HDRLEN) else {
            self.rest = &[];
            return Some(Err(Malformed(format!(
                "bad netlink message length {len} with {} bytes left",
                b.len()
            ))));
        };
        // The last message of a datagram may come without its padding.
        self.rest = b.get(align4(len)..).unwrap_or_default();
        Some(Ok(Msg {
            kind: read_u16(msg, 4).unwrap_or(0),
            flags: read_u16(msg, 6).unwrap_or(0),
            seq: read_u32(msg, 8).unwrap_or(0),
            payload: msg.get(NLMSG_HDRLEN..).unwrap_or_default(),
        }))
    }
}

/// The attributes in `buf` as (type without flag bits, value); stops after the first
/// malformed one.
pub fn attrs(buf: &[u8]) -> Attrs<'_> {
    Attrs { rest: buf }
}

pub struct Attrs<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<(u16, &'a [u8]), Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.rest;
        if b.is_empty() {
            return None;
        }
        let len = read_u16(b, 0).map_or(0, usize::from);
        let kind = read_u16(b, 2).unwrap_or(0) & NLA_TYPE_MASK;
        let (Some(val), true) = (b.get(NLA_HDRLEN..len), len >= NLA_HDRLEN) else {
            self.rest = &[];
            return Some(Err(Malformed(format!(
                "bad attribute length {len} with {} bytes left",
                b.len()
            ))));
        };
        self.rest = b.get(align4(len)..).unwrap_or_default();
        Some(Ok((kind, val)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_layout() {
        let r = Request::new(18, 0x301, &[7])
            .attr(3, b"eth0\0")
            .unwrap()
            .finish(9)
            .unwrap();
        // 16 header + 1 fixed padded to 4 + 4 attr header + 5 value padded to 8.
        assert_eq!(r.len(), 32);
        assert_eq!(read_u32(&r, 0), Some(32));
        assert_eq!(read_u16(&r, 4), Some(18));
        assert_eq!(read_u16(&r, 6), Some(0x301));
        assert_eq!(read_u32(&r, 8), Some(9));
        assert_eq!(&r[16..20], &[7, 0, 0, 0]);
        assert_eq!(read_u16(&r, 20), Some(9));
        assert_eq!(read_u16(&r, 22), Some(3));
        assert_eq!(&r[24..32], b"eth0\0\0\0\0");
        assert!(Request::new(1, 0, &[]).attr(1, &vec![0; 70_000]).is_err());
    }

    #[test]
    fn walks_stop_on_bad_lengths() {
        // Two attributes, the second unpadded at the end; flag bits are masked off.
        let mut b = vec![5, 0, 0x01, 0x80, b'x', 0, 0, 0];
        b.extend_from_slice(&[6, 0, 2, 0, 1, 2]);
        let got: Vec<_> = attrs(&b).collect::<Result<_, _>>().unwrap();
        assert_eq!(got, vec![(1, &b"x"[..]), (2, &[1u8, 2][..])]);
        for bad in [&[3u8, 0, 1, 0][..], &[9, 0, 1, 0, 0][..], &[4, 0][..]] {
            let mut it = attrs(bad);
            assert!(it.next().unwrap().is_err(), "{bad:?}");
            assert!(it.next().is_none());
        }
        let mut m = messages(&[15, 0, 0, 0]);
        assert!(m.next().unwrap().is_err());
        assert!(m.next().is_none());
        assert_eq!(c_string(b"lo\0junk"), "lo");
        assert_eq!(c_string(b"lo"), "lo");
    }
}
