//! Read-only inventory of iptables chains in the calling thread's network
//! namespace, for both backends:
//!
//! * **nf_tables** (what `iptables-nft` and `nft` write): two netlink dumps on a
//!   `NETLINK_NETFILTER` socket, `NFT_MSG_GETCHAIN` and `NFT_MSG_GETRULE`, for
//!   all families at once (`NFPROTO_UNSPEC`). A generation-id read
//!   (`NFT_MSG_GETGEN`) before and after makes the two dumps one consistent
//!   snapshot; if the ruleset changed in between we dump again.
//! * **legacy** x_tables (what `iptables-legacy` writes): for every table the
//!   kernel lists in `/proc/thread-self/net/ip{,6}_tables_names`,
//!   `IPT_SO_GET_INFO` and `IPT_SO_GET_ENTRIES` (resp. the IPv6 equivalents)
//!   on a raw socket, then a walk over the `ipt_entry` blob exactly as libiptc
//!   does it.
//!
//! Nothing here changes state or loads kernel modules:
//! * a legacy table is only queried if it is already listed, because
//!   `IPT_SO_GET_INFO` on an unknown table does `request_module("iptable_%s")`;
//! * the nf_tables dump is only sent when nf_tables is already present, because
//!   both opening a `NETLINK_NETFILTER` socket and sending to the
//!   `NFNL_SUBSYS_NFTABLES` subsystem autoload (`nfnetlink`, `nf_tables`).
//!
//! # Why hand-rolled encoding instead of a crate
//! * `rustables` (0.9) is GPL-3.0-or-later and builds its bindings with
//!   `bindgen` (needs libclang at build time): wrong licence and far too heavy
//!   for two read-only dumps.
//! * `netlink-packet-netfilter` (0.4, MIT) does model nf_tables chains and rules,
//!   but its rule parser decodes every expression of every rule (we only need
//!   two string attributes), and it pulls `derive_more` 0.99 (syn 1),
//!   `zerocopy` and `bitflags`. It has nothing for the legacy getsockopt ABI,
//!   which we must hand-write anyway.
//!
//! The nfnetlink framing we need is a 20-byte request and a flat attribute walk,
//! about a hundred lines with every length checked, so we write it here and
//! depend only on `netlink-sys` (socket), `libc`, `log` and `serde`.

use std::collections::HashMap;
use std::fmt::Display;
use std::fs;
use std::io;
use std::mem::{offset_of, size_of};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use netlink_sys::protocols::NETLINK_NETFILTER;
use netlink_sys::{Socket, SocketAddr};

use super::nlmsg::{self, c_string, read_u16, read_u32, Malformed, Request};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Backend {
    Legacy,
    Nft,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Chain {
    pub backend: Backend,
    /// "ip" | "ip6" | "inet" | "arp" | "bridge" | "netdev"
    pub family: String,
    pub table: String,
    pub name: String,
    pub rules: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct NetfilterState {
    pub chains: Vec<Chain>,
    /// Any table listed in /proc/net/ip_tables_names or ip6_tables_names.
    pub legacy_loaded: bool,
}

/// Reads both backends; every socket read is bounded by `deadline`
/// (SO_RCVTIMEO set to the remaining time; past the deadline ->
/// io::ErrorKind::TimedOut).
pub fn read_chains(deadline: Instant) -> io::Result<NetfilterState> {
    let mut state = NetfilterState::default();
    for fam in [&LEGACY_V4, &LEGACY_V6] {
        let tables = read_table_names(Path::new(fam.names_path))?;
        if tables.is_empty() {
            continue;
        }
        state.legacy_loaded = true;
        state
            .chains
            .extend(read_legacy_family(fam, &tables, deadline)?);
    }
    if nft_present() {
        state.chains.extend(read_nft(deadline)?);
    } else {
        log::debug!("nf_tables is neither loaded nor built in; not querying it (would autoload)");
    }
    Ok(state)
}

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

/// Prefixes an error with what we were doing, keeping its kind (callers match
/// on kind, e.g. PermissionDenied / TimedOut).
fn ctx(e: io::Error, what: impl Display) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Time left before `deadline`, or TimedOut if none is left.
fn remaining(deadline: Instant, what: impl Display) -> io::Result<Duration> {
    match deadline.checked_duration_since(Instant::now()) {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{what}: deadline passed"),
        )),
    }
}

fn set_rcvtimeo(fd: RawFd, d: Duration) -> io::Result<()> {
    nlmsg::set_socket_timeout(fd, libc::SO_RCVTIMEO, d)
        .map_err(|e| ctx(e, "setsockopt(SO_RCVTIMEO)"))
}

// ---------------------------------------------------------------------------
// Legacy x_tables: kernel ABI (linux/netfilter/x_tables.h,
// linux/netfilter_ipv4/ip_tables.h, linux/netfilter_ipv6/ip6_tables.h)
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// nf_tables over nfnetlink (linux/netlink.h, linux/netfilter/nfnetlink.h,
// linux/netfilter/nf_tables.h)
// ---------------------------------------------------------------------------

const NFGENMSG_LEN: usize = 4;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP_INTR: u16 = 0x10;
const NLM_F_DUMP: u16 = 0x300;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNETLINK_V0: u8 = 0;
const NFPROTO_UNSPEC: u8 = 0;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_NEWGEN: u16 = 15;
const NFT_MSG_GETGEN: u16 = 16;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_GEN_ID: u16 = 1;

/// Big enough for any dump datagram (the kernel caps them at 32 KiB); a
/// bigger one is reported via MSG_TRUNC rather than silently cut.
const RECV_BUF: usize = 64 * 1024;

fn nft_family(f: u8) -> String {
    match f {
        1 => "inet".into(),
        2 => "ip".into(),
        3 => "arp".into(),
        5 => "netdev".into(),
        7 => "bridge".into(),
        10 => "ip6".into(),
        other => format!("family{other}"),
    }
}

/// Whether nf_tables is already in the kernel. Talking to it otherwise would
/// autoload nfnetlink and nf_tables.
fn nft_present() -> bool {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    nft_present_at(
        Path::new("/proc/modules"),
        Path::new("/sys/module/nf_tables"),
        &Path::new("/lib/modules")
            .join(release.trim())
            .join("modules.builtin"),
    )
}

fn nft_present_at(proc_modules: &Path, sys_module: &Path, modules_builtin: &Path) -> bool {
    let modules = match fs::read_to_string(proc_modules) {
        Ok(m) => m,
        // No /proc/modules: kernel without module support, nothing can be
        // autoloaded, so asking is harmless (absent -> error from the kernel).
        Err(e) if e.kind() == io::ErrorKind::NotFound => return true,
        Err(_) => String::new(),
    };
    if modules
        .lines()
        .any(|l| l.split_whitespace().next() == Some("nf_tables"))
    {
        return true;
    }
    // Built-in modules do not show in /proc/modules.
    if sys_module.exists() {
        return true;
    }
    fs::read_to_string(modules_builtin)
        .map(|b| b.lines().any(|l| l.ends_with("/nf_tables.ko")))
        .unwrap_or(false)
}

fn nft_request(msg: u16, flags: u16, seq: u32) -> io::Result<Vec<u8>> {
    // nfgenmsg: UNSPEC family gives all families; res_id 0.
    let nfgenmsg: [u8; NFGENMSG_LEN] = [NFPROTO_UNSPEC, NFNETLINK_V0, 0, 0];
    Request::new((NFNL_SUBSYS_NFTABLES << 8) | msg, flags, &nfgenmsg)
        .finish(seq)
        .map_err(malformed)
}

fn malformed(e: Malformed) -> io::Error {
    invalid(e.0)
}

/// Iterates netlink attributes, bounds-checked.
fn for_each_attr(b: &[u8], mut f: impl FnMut(u16, &[u8])) -> io::Result<()> {
    for a in nlmsg::attrs(b) {
        let (kind, val) = a.map_err(malformed)?;
        f(kind, val);
    }
    Ok(())
}

/// Two required string attributes (table + chain name) of a chain or rule.
fn parse_names(attrs: &[u8], table_attr: u16, chain_attr: u16) -> io::Result<(String, String)> {
    let (mut table, mut chain) = (None, None);
    for_each_attr(attrs, |kind, val| {
        if kind == table_attr {
            table = Some(c_string(val));
        } else if kind == chain_attr {
            chain = Some(c_string(val));
        }
    })?;
    match (table, chain) {
        (Some(t), Some(c)) => Ok((t, c)),
        _ => Err(invalid("message lacks table or chain name")),
    }
}

fn parse_gen(attrs: &[u8]) -> io::Result<u32> {
    let mut id = None;
    for_each_attr(attrs, |kind, val| {
        if kind == NFTA_GEN_ID && val.len() == 4 {
            id = Some(u32::from_be_bytes([val[0], val[1], val[2], val[3]]));
        }
    })?;
    id.ok_or_else(|| invalid("NEWGEN lacks NFTA_GEN_ID"))
}

/// Parses one received datagram. Calls `on_reply(family, attrs)` for each
/// message of type `reply` with our `seq`; returns whether the exchange is
/// over (NLMSG_DONE, or an ACK). Sets `intr` when the kernel flags a dump as
/// inconsistent.
fn parse_datagram(
    buf: &[u8],
    seq: u32,
    reply: u16,
    intr: &mut bool,
    on_reply: &mut dyn FnMut(u8, &[u8]) -> io::Result<()>,
) -> io::Result<bool> {
    for msg in nlmsg::messages(buf) {
        let msg = msg.map_err(malformed)?;
        if msg.seq != seq {
            continue; // late answer to an earlier, abandoned request
        }
        if msg.flags & NLM_F_DUMP_INTR != 0 {
            *intr = true;
        }
        match msg.kind {
            NLMSG_NOOP => {}
            NLMSG_ERROR => {
                return match msg.code() {
                    Some(0) => Ok(true),
                    Some(e) => Err(io::Error::from_raw_os_error(e.saturating_neg())),
                    None => Err(invalid("truncated NLMSG_ERROR")),
                };
            }
            NLMSG_DONE => {
                return match msg.code() {
                    Some(e) if e < 0 => Err(io::Error::from_raw_os_error(e.saturating_neg())),
                    _ => Ok(true),
                };
            }
            NLMSG_OVERRUN => return Err(invalid("netlink overrun")),
            k if k == (NFNL_SUBSYS_NFTABLES << 8) | reply => {
                let (Some(&family), Some(attrs)) =
                    (msg.payload.first(), msg.payload.get(NFGENMSG_LEN..))
                else {
                    return Err(invalid("message shorter than nfgenmsg"));
                };
                on_reply(family, attrs)?;
            }
            _ => {}
        }
    }
    Ok(false)
}

struct NftConn {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl NftConn {
    fn open() -> io::Result<Self> {
        let mut sock =
            Socket::new(NETLINK_NETFILTER).map_err(|e| ctx(e, "socket(NETLINK_NETFILTER)"))?;
        sock.bind_auto()
            .map_err(|e| ctx(e, "bind(NETLINK_NETFILTER)"))?;
        Ok(NftConn {
            sock,
            seq: 0,
            buf: Vec::with_capacity(RECV_BUF),
        })
    }

    /// Sends one request and feeds every reply message to `on_reply` until
    /// the kernel ends the exchange. Returns whether a dump was interrupted.
    fn exchange(
        &mut self,
        msg: u16,
        flags: u16,
        reply: u16,
        deadline: Instant,
        on_reply: &mut dyn FnMut(u8, &[u8]) -> io::Result<()>,
    ) -> io::Result<bool> {
        self.seq = self.seq.wrapping_add(1);
        let req = nft_request(msg, flags, self.seq)?;
        self.sock.send_to(&req, &SocketAddr::new(0, 0), 0)?;
        let mut intr = false;
        loop {
            set_rcvtimeo(self.sock.as_raw_fd(), remaining(deadline, "recv")?)?;
            self.buf.clear();
            let n = match self.sock.recv(&mut self.buf, libc::MSG_TRUNC) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "recv: deadline passed",
                    ));
                }
                Err(e) => return Err(ctx(e, "recv")),
            };
            // With MSG_TRUNC netlink reports the full datagram length.
            if n > self.buf.len() {
                return Err(invalid(format!("{n}-byte datagram exceeds receive buffer")));
            }
            if parse_datagram(&self.buf, self.seq, reply, &mut intr, on_reply)? {
                return Ok(intr);
            }
        }
    }

    fn generation(&mut self, deadline: Instant) -> io::Result<u32> {
        let mut generation = None;
        self.exchange(
            NFT_MSG_GETGEN,
            NLM_F_REQUEST | NLM_F_ACK,
            NFT_MSG_NEWGEN,
            deadline,
            &mut |_, attrs| {
                generation = Some(parse_gen(attrs)?);
                Ok(())
            },
        )
        .map_err(|e| ctx(e, "nf_tables GETGEN"))?;
        generation.ok_or_else(|| invalid("nf_tables GETGEN: no NEWGEN reply"))
    }
}

fn read_nft(deadline: Instant) -> io::Result<Vec<Chain>> {
    let mut conn = NftConn::open().map_err(|e| ctx(e, "nf_tables"))?;
    // Retry for as long as the deadline allows: a busy writer (e.g. a
    // kube-proxy resync) can invalidate several dumps in a row.
    let mut invalidated = 0u32;
    loop {
        match nft_snapshot(&mut conn, deadline) {
            Ok(Some(chains)) => return Ok(chains),
            Ok(None) => {
                invalidated += 1;
                log::debug!("nf_tables ruleset changed during dump {invalidated}; retrying");
            }
            Err(e) if invalidated > 0 => {
                let what = format!("{invalidated} earlier dumps invalidated by ruleset changes");
                return Err(ctx(e, what));
            }
            Err(e) => return Err(e),
        }
    }
}

/// One chain dump plus one rule dump, or None if the ruleset changed while
/// we read (dump flagged inconsistent, or the generation id moved).
fn nft_snapshot(conn: &mut NftConn, deadline: Instant) -> io::Result<Option<Vec<Chain>>> {
    let gen_before = conn.generation(deadline)?;
    let mut chains: Vec<Chain> = Vec::new();
    let mut index: HashMap<(u8, String, String), usize> = HashMap::new();
    let intr_chains = conn
        .exchange(
            NFT_MSG_GETCHAIN,
            NLM_F_REQUEST | NLM_F_DUMP,
            NFT_MSG_NEWCHAIN,
            deadline,
            &mut |fam, attrs| {
                let (table, name) = parse_names(attrs, NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME)?;
                index.insert((fam, table.clone(), name.clone()), chains.len());
                chains.push(Chain {
                    backend: Backend::Nft,
                    family: nft_family(fam),
                    table,
                    name,
                    rules: 0,
                });
                Ok(())
            },
        )
        .map_err(|e| ctx(e, "nf_tables GETCHAIN dump"))?;
    let intr_rules = conn
        .exchange(
            NFT_MSG_GETRULE,
            NLM_F_REQUEST | NLM_F_DUMP,
            NFT_MSG_NEWRULE,
            deadline,
            &mut |fam, attrs| {
                let key = parse_names(attrs, NFTA_RULE_TABLE, NFTA_RULE_CHAIN)?;
                // A miss can only be a concurrent change; the generation
                // check below catches it.
                if let Some(&i) = index.get(&(fam, key.0, key.1)) {
                    chains[i].rules = chains[i].rules.saturating_add(1);
                }
                Ok(())
            },
        )
        .map_err(|e| ctx(e, "nf_tables GETRULE dump"))?;
    let unchanged = !intr_chains && !intr_rules && conn.generation(deadline)? == gen_before;
    Ok(unchanged.then_some(chains))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::nlmsg::NLMSG_HDRLEN;

    // ---- nft ------------------------------------------------------------

    use crate::inspect::nlmsg::test_attr as attr;

    fn cstr(s: &str) -> Vec<u8> {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        v
    }

    fn nlmsg(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDRLEN + payload.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(payload);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        m
    }

    fn nft_msg(msg: u16, fam: u8, seq: u32, attrs: &[Vec<u8>]) -> Vec<u8> {
        let mut p = vec![fam, 0, 0, 0];
        for a in attrs {
            p.extend_from_slice(a);
        }
        nlmsg(
            (NFNL_SUBSYS_NFTABLES << 8) | msg,
            2, /* NLM_F_MULTI */
            seq,
            &p,
        )
    }

    /// (family, table, chain) of one reply.
    type Named = (u8, String, String);

    fn collect(buf: &[u8], seq: u32, reply: u16) -> io::Result<(Vec<Named>, bool, bool)> {
        let mut got = Vec::new();
        let mut intr = false;
        let done = parse_datagram(buf, seq, reply, &mut intr, &mut |fam, attrs| {
            let (t, c) = parse_names(attrs, 1, if reply == NFT_MSG_NEWCHAIN { 3 } else { 2 })?;
            got.push((fam, t, c));
            Ok(())
        })?;
        Ok((got, done, intr))
    }

    #[test]
    fn request_encoding() {
        let r = nft_request(NFT_MSG_GETCHAIN, NLM_F_REQUEST | NLM_F_DUMP, 7).unwrap();
        assert_eq!(read_u32(&r, 0), Some(20));
        assert_eq!(read_u16(&r, 4), Some(0x0a04));
        assert_eq!(read_u16(&r, 6), Some(0x301));
        assert_eq!(read_u32(&r, 8), Some(7));
        assert_eq!(&r[16..20], &[0, 0, 0, 0]);
    }

    #[test]
    fn parses_chain_dump_and_done() {
        let mut buf = nft_msg(
            NFT_MSG_NEWCHAIN,
            2,
            5,
            &[
                attr(NFTA_CHAIN_TABLE, &cstr("nat")),
                attr(2 /* handle */, &1u64.to_be_bytes()),
                attr(NFTA_CHAIN_NAME, &cstr("KUBE-SERVICES")),
            ],
        );
        buf.extend(nft_msg(
            NFT_MSG_NEWCHAIN,
            10,
            5,
            &[
                attr(NFTA_CHAIN_TABLE, &cstr("filter")),
                attr(NFTA_CHAIN_NAME, &cstr("INPUT")),
            ],
        ));
        // A stale message from another request must be ignored.
        buf.extend(nft_msg(
            NFT_MSG_NEWCHAIN,
            2,
            4,
            &[
                attr(NFTA_CHAIN_TABLE, &cstr("x")),
                attr(NFTA_CHAIN_NAME, &cstr("y")),
            ],
        ));
        let (got, done, intr) = collect(&buf, 5, NFT_MSG_NEWCHAIN).unwrap();
        assert_eq!(
            got,
            vec![
                (2, "nat".into(), "KUBE-SERVICES".into()),
                (10, "filter".into(), "INPUT".into())
            ]
        );
        assert!(!done && !intr);

        let done_msg = nlmsg(NLMSG_DONE, 2, 5, &0i32.to_ne_bytes());
        assert!(collect(&done_msg, 5, NFT_MSG_NEWCHAIN).unwrap().1);
        assert_eq!(nft_family(2), "ip");
        assert_eq!(nft_family(10), "ip6");
        assert_eq!(nft_family(1), "inet");
    }

    #[test]
    fn dump_intr_and_errors() {
        let mut m = nft_msg(
            NFT_MSG_NEWRULE,
            2,
            1,
            &[
                attr(NFTA_RULE_TABLE, &cstr("nat")),
                attr(NFTA_RULE_CHAIN, &cstr("C")),
            ],
        );
        m[6..8].copy_from_slice(&(2 | NLM_F_DUMP_INTR).to_ne_bytes());
        let (got, _, intr) = collect(&m, 1, NFT_MSG_NEWRULE).unwrap();
        assert_eq!(got.len(), 1);
        assert!(intr);

        let err = nlmsg(NLMSG_ERROR, 0, 1, &(-libc::EPERM).to_ne_bytes());
        let e = collect(&err, 1, NFT_MSG_NEWRULE).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPERM));
        let ack = nlmsg(NLMSG_ERROR, 0, 1, &0i32.to_ne_bytes());
        assert!(collect(&ack, 1, NFT_MSG_NEWRULE).unwrap().1);
        let done_err = nlmsg(NLMSG_DONE, 0, 1, &(-libc::EINTR).to_ne_bytes());
        assert!(collect(&done_err, 1, NFT_MSG_NEWRULE).is_err());
    }

    #[test]
    fn malformed_nft_is_invalid_data() {
        let good = nft_msg(
            NFT_MSG_NEWCHAIN,
            2,
            1,
            &[
                attr(NFTA_CHAIN_TABLE, &cstr("filter")),
                attr(NFTA_CHAIN_NAME, &cstr("INPUT")),
            ],
        );
        // Every truncation is either cleanly rejected or (at 0) empty.
        for cut in 1..good.len() {
            let r = collect(&good[..cut], 1, NFT_MSG_NEWCHAIN);
            assert_eq!(
                r.unwrap_err().kind(),
                io::ErrorKind::InvalidData,
                "cut {cut}"
            );
        }
        // nlmsg_len larger than the datagram.
        let mut big = good.clone();
        big[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert_eq!(
            collect(&big, 1, NFT_MSG_NEWCHAIN).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        // Attribute length overrunning the message.
        let mut bad_attr = good.clone();
        bad_attr[20..22].copy_from_slice(&200u16.to_ne_bytes());
        assert_eq!(
            collect(&bad_attr, 1, NFT_MSG_NEWCHAIN).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        // Attribute length below the header.
        let mut tiny = good.clone();
        tiny[20..22].copy_from_slice(&2u16.to_ne_bytes());
        assert!(collect(&tiny, 1, NFT_MSG_NEWCHAIN).is_err());
        // Missing chain name.
        let missing = nft_msg(
            NFT_MSG_NEWCHAIN,
            2,
            1,
            &[attr(NFTA_CHAIN_TABLE, &cstr("filter"))],
        );
        assert_eq!(
            collect(&missing, 1, NFT_MSG_NEWCHAIN).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        // No room for nfgenmsg.
        let short = nlmsg(
            (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWCHAIN,
            0,
            1,
            &[2, 0],
        );
        assert!(collect(&short, 1, NFT_MSG_NEWCHAIN).is_err());
        // NLMSG_ERROR without errno.
        let short_err = nlmsg(NLMSG_ERROR, 0, 1, &[]);
        assert!(collect(&short_err, 1, NFT_MSG_NEWCHAIN).is_err());
    }

    #[test]
    fn gen_id() {
        let attrs = attr(NFTA_GEN_ID | 0x4000, &42u32.to_be_bytes());
        assert_eq!(parse_gen(&attrs).unwrap(), 42);
        assert!(parse_gen(&attr(2, &[1, 2, 3, 4])).is_err());
    }

    #[test]
    fn nft_presence_probe() {
        let dir = std::env::temp_dir().join(format!("nfprobe-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing");
        let mods = dir.join("modules");
        let builtin = dir.join("modules.builtin");
        // No /proc/modules: no module support, safe to ask.
        assert!(nft_present_at(&missing, &missing, &missing));
        fs::write(&mods, "nf_tables 352256 0 - Live 0x0\n").unwrap();
        assert!(nft_present_at(&mods, &missing, &missing));
        fs::write(
            &mods,
            "nf_tables_foo 1 0 - Live 0x0\nip_tables 1 0 - Live 0x0\n",
        )
        .unwrap();
        assert!(!nft_present_at(&mods, &missing, &missing));
        assert!(nft_present_at(&mods, &dir, &missing));
        fs::write(&builtin, "kernel/net/netfilter/nf_tables.ko\n").unwrap();
        assert!(nft_present_at(&mods, &missing, &builtin));
        fs::remove_dir_all(&dir).unwrap();
    }

    // ---- legacy ---------------------------------------------------------

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

    #[test]
    fn deadline_in_past_times_out() {
        let e = remaining(Instant::now(), "x").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
