//! The legacy x_tables half of [`super::read_chains`] (what `iptables-legacy` writes): for
//! every table the kernel lists in `/proc/thread-self/net/ip{,6}_tables_names`,
//! `IPT_SO_GET_INFO` and `IPT_SO_GET_ENTRIES` (resp. the IPv6 equivalents) on a raw socket,
//! then a walk over the `ipt_entry` blob exactly as libiptc does it. Hand-written: this is a
//! getsockopt ABI, not netlink, and no crate reads it.
//!
//! Kernel ABI: linux/netfilter/x_tables.h, linux/netfilter_ipv4/ip_tables.h,
//! linux/netfilter_ipv6/ip6_tables.h.
//!
//! A table is only queried if it is already listed, because `IPT_SO_GET_INFO` on an unknown
//! table does `request_module("iptable_%s")`.

use std::fs;
use std::io;
use std::mem::{offset_of, size_of};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::Instant;

use super::{ctx, invalid, remaining, Backend, Chain};
use crate::inspect::nlmsg::c_string;

/// The chains of every legacy table already in the kernel, both families, and whether there
/// is any such table.
pub(super) fn read(deadline: Instant) -> io::Result<(Vec<Chain>, bool)> {
    let mut chains = Vec::new();
    let mut loaded = false;
    for fam in [&LEGACY_V4, &LEGACY_V6] {
        let tables = read_table_names(Path::new(fam.names_path))?;
        if tables.is_empty() {
            continue;
        }
        loaded = true;
        chains.extend(read_legacy_family(fam, &tables, deadline)?);
    }
    Ok((chains, loaded))
}

fn read_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

const XT_TABLE_MAXNAMELEN: usize = 32;
const XT_FUNCTION_MAXNAMELEN: usize = 30;
const XT_EXTENSION_MAXNAMELEN: usize = 29;
const IFNAMSIZ: usize = 16;
const NF_INET_NUMHOOKS: usize = 5;
/// IPT_BASE_CTL == IP6T_BASE_CTL == 64; GET_INFO = base, GET_ENTRIES = base + 1.
const SO_GET_INFO: libc::c_int = 64;
const SO_GET_ENTRIES: libc::c_int = 65;
/// Name of the target heading a user chain and ending the table.
const XT_ERROR_TARGET: &str = "ERROR";
/// Builtin chain names, indexed by NF_INET_* hook number.
const HOOK_NAMES: [&str; NF_INET_NUMHOOKS] =
    ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"];

/// struct ipt_getinfo == struct ip6t_getinfo.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct XtGetInfo {
    name: [u8; XT_TABLE_MAXNAMELEN],
    valid_hooks: u32,
    hook_entry: [u32; NF_INET_NUMHOOKS],
    underflow: [u32; NF_INET_NUMHOOKS],
    num_entries: u32,
    size: u32,
}

/// struct ipt_ip. Layout-only: we read entries through offset_of!, never by
/// casting (the blob is a byte buffer with no alignment guarantee).
#[allow(dead_code)]
#[repr(C)]
struct IptIp {
    src: u32,
    dst: u32,
    smsk: u32,
    dmsk: u32,
    iniface: [u8; IFNAMSIZ],
    outiface: [u8; IFNAMSIZ],
    iniface_mask: [u8; IFNAMSIZ],
    outiface_mask: [u8; IFNAMSIZ],
    proto: u16,
    flags: u8,
    invflags: u8,
}

/// struct xt_counters.
#[allow(dead_code)]
#[repr(C)]
struct XtCounters {
    pcnt: u64,
    bcnt: u64,
}

/// struct ipt_entry (layout-only, see IptIp).
#[allow(dead_code)]
#[repr(C)]
struct IptEntry {
    ip: IptIp,
    nfcache: u32,
    target_offset: u16,
    next_offset: u16,
    comefrom: u32,
    counters: XtCounters,
}

/// struct in6_addr: 16 bytes, 4-byte aligned (a union with u32[4]).
#[allow(dead_code)]
#[repr(C)]
struct In6Addr([u32; 4]);

/// struct ip6t_ip6 (layout-only).
#[allow(dead_code)]
#[repr(C)]
struct Ip6tIp6 {
    src: In6Addr,
    dst: In6Addr,
    smsk: In6Addr,
    dmsk: In6Addr,
    iniface: [u8; IFNAMSIZ],
    outiface: [u8; IFNAMSIZ],
    iniface_mask: [u8; IFNAMSIZ],
    outiface_mask: [u8; IFNAMSIZ],
    proto: u16,
    tos: u8,
    flags: u8,
    invflags: u8,
}

/// struct ip6t_entry (layout-only).
#[allow(dead_code)]
#[repr(C)]
struct Ip6tEntry {
    ipv6: Ip6tIp6,
    nfcache: u32,
    target_offset: u16,
    next_offset: u16,
    comefrom: u32,
    counters: XtCounters,
}

/// The `user` arm of struct xt_entry_target's union; the `kernel` arm
/// (u16 + pointer) is never larger, so this is the header size, and target
/// data starts right after it.
#[allow(dead_code)]
#[repr(C)]
struct XtEntryTargetUser {
    target_size: u16,
    name: [u8; XT_EXTENSION_MAXNAMELEN],
    revision: u8,
    /// The union also holds a pointer, which sets its alignment.
    _align: [*const u8; 0],
}

/// struct ipt_get_entries / ip6t_get_entries header; the zero-length
/// entrytable gives it the kernel's alignment padding.
#[allow(dead_code)]
#[repr(C)]
struct IptGetEntriesHdr {
    name: [u8; XT_TABLE_MAXNAMELEN],
    size: u32,
    entrytable: [IptEntry; 0],
}

#[allow(dead_code)]
#[repr(C)]
struct Ip6tGetEntriesHdr {
    name: [u8; XT_TABLE_MAXNAMELEN],
    size: u32,
    entrytable: [Ip6tEntry; 0],
}

// Sizes the kernel expects; the getsockopt length checks are exact.
const _: () = assert!(size_of::<XtGetInfo>() == 84);
const _: () = assert!(size_of::<IptIp>() == 84);
const _: () = assert!(size_of::<IptEntry>() == 112);
const _: () = assert!(size_of::<Ip6tIp6>() == 136);
const _: () = assert!(size_of::<XtEntryTargetUser>() == 32);
#[cfg(target_pointer_width = "64")]
const _: () = assert!(size_of::<Ip6tEntry>() == 168);
#[cfg(target_pointer_width = "64")]
const _: () = assert!(size_of::<IptGetEntriesHdr>() == 40);
#[cfg(target_pointer_width = "64")]
const _: () = assert!(size_of::<Ip6tGetEntriesHdr>() == 40);
const _: () = assert!(offset_of!(IptGetEntriesHdr, size) == XT_TABLE_MAXNAMELEN);
const _: () = assert!(offset_of!(Ip6tGetEntriesHdr, size) == XT_TABLE_MAXNAMELEN);

/// Where the fields we need sit in one family's entry struct.
struct EntryLayout {
    entry_size: usize,
    target_offset_at: usize,
    next_offset_at: usize,
}

const IPT_LAYOUT: EntryLayout = EntryLayout {
    entry_size: size_of::<IptEntry>(),
    target_offset_at: offset_of!(IptEntry, target_offset),
    next_offset_at: offset_of!(IptEntry, next_offset),
};

const IP6T_LAYOUT: EntryLayout = EntryLayout {
    entry_size: size_of::<Ip6tEntry>(),
    target_offset_at: offset_of!(Ip6tEntry, target_offset),
    next_offset_at: offset_of!(Ip6tEntry, next_offset),
};

const TARGET_HDR: usize = size_of::<XtEntryTargetUser>();

struct LegacyFamily {
    family: &'static str,
    /// Under thread-self, not /proc/net (= /proc/self/net): the latter shows
    /// the netns of the process's main thread, not of a thread that setns'd.
    names_path: &'static str,
    domain: libc::c_int,
    level: libc::c_int,
    layout: &'static EntryLayout,
    get_entries_hdr: usize,
}

const LEGACY_V4: LegacyFamily = LegacyFamily {
    family: "ip",
    names_path: "/proc/thread-self/net/ip_tables_names",
    domain: libc::AF_INET,
    level: libc::SOL_IP,
    layout: &IPT_LAYOUT,
    get_entries_hdr: size_of::<IptGetEntriesHdr>(),
};

const LEGACY_V6: LegacyFamily = LegacyFamily {
    family: "ip6",
    names_path: "/proc/thread-self/net/ip6_tables_names",
    domain: libc::AF_INET6,
    level: libc::SOL_IPV6,
    layout: &IP6T_LAYOUT,
    get_entries_hdr: size_of::<Ip6tGetEntriesHdr>(),
};

/// Table names from ip{,6}_tables_names. A missing file means the
/// ip(6)_tables code is not loaded: no legacy tables, and nothing to query.
fn read_table_names(path: &Path) -> io::Result<Vec<String>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ctx(e, format!("reading {}", path.display()))),
    };
    parse_table_names(&text).map_err(|e| ctx(e, path.display()))
}

fn parse_table_names(text: &str) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        // The name must fit, NUL-terminated, in xt_getinfo.name.
        if line.len() >= XT_TABLE_MAXNAMELEN || line.contains('\0') {
            return Err(invalid(format!("bad table name {line:?}")));
        }
        out.push(line.to_owned());
    }
    Ok(out)
}

fn read_legacy_family(
    fam: &LegacyFamily,
    tables: &[String],
    deadline: Instant,
) -> io::Result<Vec<Chain>> {
    // SAFETY: plain socket(2); the result is checked before being owned.
    let fd = unsafe {
        libc::socket(
            fam.domain,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_RAW,
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::PermissionDenied {
            // No CAP_NET_RAW: same treatment as EPERM on a table.
            log::debug!("legacy {}: raw socket: {e}; skipping", fam.family);
            return Ok(Vec::new());
        }
        return Err(ctx(e, format!("legacy {}: socket(SOCK_RAW)", fam.family)));
    }
    // SAFETY: fd is a fresh, valid descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };

    let mut chains = Vec::new();
    for table in tables {
        let what = format!("legacy {} table {table}", fam.family);
        remaining(deadline, &what)?;
        match read_legacy_table(&sock, fam, table, deadline) {
            Ok(c) => chains.extend(c),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::PermissionDenied | io::ErrorKind::NotFound
                ) =>
            {
                // Table vanished between listing and query, or we may not
                // read it: report what we can instead of failing everything.
                log::debug!("{what}: {e}; skipping");
            }
            Err(e) => return Err(ctx(e, what)),
        }
    }
    Ok(chains)
}

fn getsockopt_bytes(
    sock: &OwnedFd,
    level: libc::c_int,
    opt: libc::c_int,
    buf: *mut libc::c_void,
    len: usize,
) -> io::Result<usize> {
    let mut l = libc::socklen_t::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "getsockopt buffer too big"))?;
    // SAFETY: callers pass a pointer to `len` writable bytes they own.
    let r = unsafe { libc::getsockopt(sock.as_raw_fd(), level, opt, buf, &mut l) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(l as usize)
}

fn read_legacy_table(
    sock: &OwnedFd,
    fam: &LegacyFamily,
    table: &str,
    deadline: Instant,
) -> io::Result<Vec<Chain>> {
    // The table can change between GET_INFO and GET_ENTRIES; the kernel then
    // answers EAGAIN (size mismatch) and we start over, as libiptc does.
    const ATTEMPTS: usize = 5;
    for _ in 0..ATTEMPTS {
        remaining(deadline, "GET_INFO")?;
        let mut info = XtGetInfo {
            name: [0; XT_TABLE_MAXNAMELEN],
            valid_hooks: 0,
            hook_entry: [0; NF_INET_NUMHOOKS],
            underflow: [0; NF_INET_NUMHOOKS],
            num_entries: 0,
            size: 0,
        };
        info.name[..table.len()].copy_from_slice(table.as_bytes());
        getsockopt_bytes(
            sock,
            fam.level,
            SO_GET_INFO,
            (&mut info as *mut XtGetInfo).cast(),
            size_of::<XtGetInfo>(),
        )
        .map_err(|e| ctx(e, "getsockopt(SO_GET_INFO)"))?;

        let size = info.size as usize;
        let total = fam
            .get_entries_hdr
            .checked_add(size)
            .ok_or_else(|| invalid("GET_INFO size overflows"))?;
        let mut buf = vec![0u8; total];
        buf[..table.len()].copy_from_slice(table.as_bytes());
        buf[XT_TABLE_MAXNAMELEN..XT_TABLE_MAXNAMELEN + 4].copy_from_slice(&info.size.to_ne_bytes());
        match getsockopt_bytes(
            sock,
            fam.level,
            SO_GET_ENTRIES,
            buf.as_mut_ptr().cast(),
            total,
        ) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                log::debug!(
                    "legacy {} table {table} changed while reading; retrying",
                    fam.family
                );
                continue;
            }
            Err(e) => return Err(ctx(e, "getsockopt(SO_GET_ENTRIES)")),
        }
        if read_u32(&buf, XT_TABLE_MAXNAMELEN) != Some(info.size) {
            return Err(invalid(
                "GET_ENTRIES returned a different size than GET_INFO",
            ));
        }
        let blob = buf.get(fam.get_entries_hdr..).unwrap_or_default();
        return parse_legacy_table(fam.family, table, fam.layout, &info, blob);
    }
    Err(io::Error::other(format!(
        "table kept changing over {ATTEMPTS} reads"
    )))
}

/// One entry's view: where the next one starts and its target.
struct RawEntry<'a> {
    next_offset: usize,
    target_name: String,
    target_data: &'a [u8],
}

fn parse_entry<'a>(blob: &'a [u8], off: usize, layout: &EntryLayout) -> io::Result<RawEntry<'a>> {
    let rec = blob
        .get(off..)
        .filter(|r| r.len() >= layout.entry_size)
        .ok_or_else(|| invalid(format!("truncated entry at offset {off}")))?;
    let field = |at| read_u16(rec, at).map(usize::from).unwrap_or(0);
    let target_offset = field(layout.target_offset_at);
    let next_offset = field(layout.next_offset_at);
    // next_offset >= target_offset + target header, all within the blob;
    // this also guarantees progress (no zero-length entries).
    if target_offset < layout.entry_size
        || next_offset < target_offset + TARGET_HDR
        || next_offset > rec.len()
    {
        return Err(invalid(format!(
            "bad entry at offset {off}: target_offset {target_offset}, next_offset {next_offset}, {} bytes left",
            rec.len()
        )));
    }
    let target = &rec[target_offset..next_offset];
    let target_size = usize::from(read_u16(target, 0).unwrap_or(0));
    if target_size < TARGET_HDR || target_size > target.len() {
        return Err(invalid(format!(
            "bad target at offset {off}: target_size {target_size}, room {}",
            target.len()
        )));
    }
    let name_at = offset_of!(XtEntryTargetUser, name);
    Ok(RawEntry {
        next_offset,
        target_name: c_string(&target[name_at..name_at + XT_EXTENSION_MAXNAMELEN]),
        target_data: &target[TARGET_HDR..target_size],
    })
}

/// Walks a table blob the way libiptc does: a builtin chain starts at its
/// hook_entry and its policy is the entry at its underflow; a user chain
/// starts with an ERROR entry naming it and ends with a RETURN entry; the
/// table ends with an ERROR entry named "ERROR". Rules are everything else.
fn parse_legacy_table(
    family: &str,
    table: &str,
    layout: &EntryLayout,
    info: &XtGetInfo,
    blob: &[u8],
) -> io::Result<Vec<Chain>> {
    if blob.len() != info.size as usize {
        return Err(invalid(format!(
            "entries blob is {} bytes, GET_INFO said {}",
            blob.len(),
            info.size
        )));
    }
    enum Cur {
        None,
        Builtin { idx: usize, underflow: usize },
        User { idx: usize, entries: u32 },
    }
    // A user chain's last entry is its RETURN tail, not a rule.
    fn close(cur: &Cur, chains: &mut [Chain]) {
        if let Cur::User { idx, entries } = *cur {
            chains[idx].rules = entries.saturating_sub(1);
        }
    }
    let new_chain = |name: String| Chain {
        backend: Backend::Legacy,
        family: family.to_owned(),
        table: table.to_owned(),
        name,
        rules: 0,
    };

    let mut chains: Vec<Chain> = Vec::new();
    let mut cur = Cur::None;
    let mut ended = false;
    let mut off = 0usize;
    let mut count = 0u32;
    while off < blob.len() {
        if ended {
            return Err(invalid(format!(
                "data after the table's end marker at offset {off}"
            )));
        }
        let e = parse_entry(blob, off, layout)?;
        count += 1;
        let hook = (0..NF_INET_NUMHOOKS)
            .find(|&h| info.valid_hooks & (1 << h) != 0 && info.hook_entry[h] as usize == off);
        if let Some(h) = hook {
            close(&cur, &mut chains);
            cur = Cur::Builtin {
                idx: chains.len(),
                underflow: info.underflow[h] as usize,
            };
            chains.push(new_chain(HOOK_NAMES[h].to_owned()));
        } else if e.target_name == XT_ERROR_TARGET {
            close(&cur, &mut chains);
            let data = &e.target_data[..e.target_data.len().min(XT_FUNCTION_MAXNAMELEN)];
            let name = c_string(data);
            if name == XT_ERROR_TARGET {
                ended = true;
                cur = Cur::None;
            } else {
                cur = Cur::User {
                    idx: chains.len(),
                    entries: 0,
                };
                chains.push(new_chain(name));
            }
            off += e.next_offset;
            continue;
        }
        match &mut cur {
            Cur::Builtin { idx, underflow } => {
                // The policy entry sits at underflow; nothing after it is a rule.
                if off < *underflow {
                    chains[*idx].rules += 1;
                }
            }
            Cur::User { entries, .. } => *entries += 1,
            Cur::None => {
                return Err(invalid(format!(
                    "entry at offset {off} belongs to no chain"
                )));
            }
        }
        off += e.next_offset;
    }
    close(&cur, &mut chains);
    if !ended {
        return Err(invalid("table has no end marker"));
    }
    if count != info.num_entries {
        return Err(invalid(format!(
            "walked {count} entries, GET_INFO said {}",
            info.num_entries
        )));
    }
    Ok(chains)
}

#[cfg(test)]
mod tests {
    use super::*;

    enum Ent<'a> {
        /// A rule or policy (standard target).
        Std,
        /// ERROR target carrying a chain name (or "ERROR" for the end).
        Err(&'a str),
    }

    /// Builds a table blob plus matching info, with entry sizes as the
    /// kernel lays them out (XT_ALIGN'd standard/error targets).
    fn blob(layout: &EntryLayout, ents: &[Ent]) -> (Vec<u8>, Vec<usize>) {
        let mut b = Vec::new();
        let mut offs = Vec::new();
        for e in ents {
            offs.push(b.len());
            let mut rec = vec![0u8; layout.entry_size];
            let (name, data): (&str, Vec<u8>) = match e {
                Ent::Std => ("", vec![0u8; 8]), // verdict + pad -> 40 bytes
                Ent::Err(n) => {
                    let mut d = vec![0u8; 32]; // errorname[30] + pad -> 64 bytes
                    d[..n.len()].copy_from_slice(n.as_bytes());
                    ("ERROR", d)
                }
            };
            let tsize = TARGET_HDR + data.len();
            let mut t = vec![0u8; TARGET_HDR];
            t[0..2].copy_from_slice(&(tsize as u16).to_ne_bytes());
            t[2..2 + name.len()].copy_from_slice(name.as_bytes());
            t.extend(data);
            let to = layout.entry_size as u16;
            let no = (layout.entry_size + tsize) as u16;
            rec[layout.target_offset_at..][..2].copy_from_slice(&to.to_ne_bytes());
            rec[layout.next_offset_at..][..2].copy_from_slice(&no.to_ne_bytes());
            rec.extend(t);
            b.extend(rec);
        }
        (b, offs)
    }

    fn info(blob: &[u8], n: usize, hooks: &[(usize, usize, usize)]) -> XtGetInfo {
        let mut i = XtGetInfo {
            name: [0; 32],
            valid_hooks: 0,
            hook_entry: [0; 5],
            underflow: [0; 5],
            num_entries: n as u32,
            size: blob.len() as u32,
        };
        for &(h, e, u) in hooks {
            i.valid_hooks |= 1 << h;
            i.hook_entry[h] = e as u32;
            i.underflow[h] = u as u32;
        }
        i
    }

    /// filter: INPUT (2 rules), FORWARD (0), OUTPUT (1), cali-INPUT (1 rule),
    /// cali-empty (0 rules).
    fn filter_table(layout: &EntryLayout) -> (Vec<u8>, XtGetInfo) {
        use Ent::*;
        let ents = [
            Std,
            Std,
            Std, // INPUT: 2 rules + policy
            Std, // FORWARD: policy
            Std,
            Std, // OUTPUT: 1 rule + policy
            Err("cali-INPUT"),
            Std,
            Std, // head, rule, RETURN
            Err("cali-empty"),
            Std, // head, RETURN
            Err("ERROR"),
        ];
        let (b, o) = blob(layout, &ents);
        let i = info(
            &b,
            ents.len(),
            &[(1, o[0], o[2]), (2, o[3], o[3]), (3, o[4], o[5])],
        );
        (b, i)
    }

    fn summary(c: &[Chain]) -> Vec<(String, u32)> {
        c.iter().map(|c| (c.name.clone(), c.rules)).collect()
    }

    #[test]
    fn walks_ipv4_and_ipv6_tables() {
        for (layout, fam) in [(&IPT_LAYOUT, "ip"), (&IP6T_LAYOUT, "ip6")] {
            let (b, i) = filter_table(layout);
            let chains = parse_legacy_table(fam, "filter", layout, &i, &b).unwrap();
            assert_eq!(
                summary(&chains),
                vec![
                    ("INPUT".into(), 2),
                    ("FORWARD".into(), 0),
                    ("OUTPUT".into(), 1),
                    ("cali-INPUT".into(), 1),
                    ("cali-empty".into(), 0),
                ]
            );
            let labelled =
                |c: &Chain| c.family == fam && c.table == "filter" && c.backend == Backend::Legacy;
            assert!(chains.iter().all(labelled));
        }
    }

    #[test]
    fn malformed_legacy_is_invalid_data() {
        let layout = &IPT_LAYOUT;
        let (b, i) = filter_table(layout);
        // Every truncation errors (size mismatch or bad entry), never panics.
        for cut in 0..b.len() {
            let mut i2 = i;
            i2.size = cut as u32;
            let e = parse_legacy_table("ip", "filter", layout, &i2, &b[..cut]).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "cut {cut}");
        }
        // next_offset 0 (would loop forever) and huge.
        for bad in [0u16, 0xffff, 100] {
            let mut b2 = b.clone();
            b2[layout.next_offset_at..][..2].copy_from_slice(&bad.to_ne_bytes());
            assert!(
                parse_legacy_table("ip", "filter", layout, &i, &b2).is_err(),
                "next {bad}"
            );
        }
        // target_offset inside the entry header / past the end.
        for bad in [0u16, 10, 0xfff0] {
            let mut b2 = b.clone();
            b2[layout.target_offset_at..][..2].copy_from_slice(&bad.to_ne_bytes());
            assert!(
                parse_legacy_table("ip", "filter", layout, &i, &b2).is_err(),
                "target {bad}"
            );
        }
        // target_size too small / too large.
        for bad in [0u16, 4, 0x7fff] {
            let mut b2 = b.clone();
            b2[layout.entry_size..][..2].copy_from_slice(&bad.to_ne_bytes());
            assert!(
                parse_legacy_table("ip", "filter", layout, &i, &b2).is_err(),
                "tsize {bad}"
            );
        }
        // Entry count mismatch.
        let mut i2 = i;
        i2.num_entries += 1;
        assert!(parse_legacy_table("ip", "filter", layout, &i2, &b).is_err());
        // No end marker.
        let (b3, o3) = blob(layout, &[Ent::Std]);
        let i3 = info(&b3, 1, &[(1, o3[0], o3[0])]);
        assert!(parse_legacy_table("ip", "filter", layout, &i3, &b3).is_err());
        // Entry before any chain.
        let (b4, _) = blob(layout, &[Ent::Std, Ent::Err("ERROR")]);
        let i4 = info(&b4, 2, &[]);
        assert!(parse_legacy_table("ip", "filter", layout, &i4, &b4).is_err());
        // Data after the end marker.
        let (b5, o5) = blob(layout, &[Ent::Std, Ent::Err("ERROR"), Ent::Std]);
        let i5 = info(&b5, 3, &[(1, o5[0], o5[0])]);
        assert!(parse_legacy_table("ip", "filter", layout, &i5, &b5).is_err());
    }

    #[test]
    fn table_names() {
        assert_eq!(
            parse_table_names("filter\nnat\n\n").unwrap(),
            vec!["filter", "nat"]
        );
        assert!(parse_table_names(&"x".repeat(40)).is_err());
        let none = read_table_names(Path::new("/nonexistent/ip_tables_names")).unwrap();
        assert!(none.is_empty());
    }
}
