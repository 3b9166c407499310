//! The nf_tables half of [`super::read_chains`]: two dumps on a `NETLINK_NETFILTER` socket,
//! `NFT_MSG_GETCHAIN` and `NFT_MSG_GETRULE`, for all families at once (`NFPROTO_UNSPEC`), so
//! every table is seen whoever wrote it: `iptables-nft`'s `ip`/`ip6` `filter`/`nat`/...,
//! Felix's nftables dataplane's `calico` tables, kube-proxy's `kube-proxy` tables, `inet`,
//! `bridge`, `arp` and `netdev` ones. A generation-id read (`NFT_MSG_GETGEN`) before and after
//! makes the two dumps one consistent snapshot; if the ruleset changed in between we dump
//! again, for as long as the deadline allows.
//!
//! The exchange (socket, deadline, ACK/error/DONE, NLM_F_DUMP_INTR) is the shared
//! [`crate::inspect::nlmsg::Transport`]. The nfnetlink part is hand-written: a 4-byte
//! `nfgenmsg` request, and from each reply the two name attributes we count by, walked with
//! `netlink-packet-core`'s attribute iterator. `netlink-packet-netfilter` (0.4) models
//! nf_tables messages, but its rule parser decodes every expression of every rule (a node with
//! kube-proxy has thousands; we need two strings of each), and it pulls `derive_more` 0.99,
//! a second major version of `syn`, for a few dozen lines saved.
//!
//! uapi: linux/netfilter/nfnetlink.h, linux/netfilter/nf_tables.h.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::Path;
use std::time::Instant;

use netlink_packet_core::{NlasIterator, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_sys::protocols::NETLINK_NETFILTER;

use super::{ctx, invalid, remaining, Backend, Chain};
use crate::inspect::nlmsg::{c_string, InspectErrorKind, Malformed, Reply, Transport};

/// sizeof(struct nfgenmsg) { u8 nfgen_family, version; be16 res_id; }
const NFGENMSG_LEN: usize = 4;
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

/// The nfnetlink message type of an nf_tables message.
const fn nft_type(msg: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | msg
}

/// nfgen_family, as `nft list tables` names it.
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

/// Whether nf_tables is already in the kernel. Talking to it otherwise would autoload
/// nfnetlink and nf_tables.
pub(super) fn present() -> bool {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    present_at(
        Path::new("/proc/modules"),
        Path::new("/sys/module/nf_tables"),
        &Path::new("/lib/modules")
            .join(release.trim())
            .join("modules.builtin"),
    )
}

fn present_at(proc_modules: &Path, sys_module: &Path, modules_builtin: &Path) -> bool {
    let modules = match fs::read_to_string(proc_modules) {
        Ok(m) => m,
        // No /proc/modules: kernel without module support, nothing can be autoloaded, so
        // asking is harmless (absent -> error from the kernel).
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

/// nfgenmsg: UNSPEC family gives all families; res_id 0.
const NFGENMSG: [u8; NFGENMSG_LEN] = [NFPROTO_UNSPEC, NFNETLINK_V0, 0, 0];

/// Called with the family and attributes of each reply message.
type OnNft<'a> = dyn FnMut(u8, &[u8]) -> Result<(), Malformed> + 'a;

/// A reply handler that hands `f` the family and attributes of each `reply` message.
fn on_nft<'a>(
    reply: u16,
    f: &'a mut OnNft<'a>,
) -> impl FnMut(Reply<'_>) -> Result<(), Malformed> + 'a {
    move |r| {
        if r.kind != nft_type(reply) {
            return Ok(());
        }
        match (r.payload.first(), r.payload.get(NFGENMSG_LEN..)) {
            (Some(&family), Some(attrs)) => f(family, attrs),
            _ => Err(Malformed("message shorter than nfgenmsg".into())),
        }
    }
}

/// Two required string attributes (table and chain name) of a chain or rule.
fn parse_names(
    attrs: &[u8],
    table_attr: u16,
    chain_attr: u16,
) -> Result<(String, String), Malformed> {
    let (mut table, mut chain) = (None, None);
    for nla in NlasIterator::new(attrs) {
        let nla = nla?;
        if nla.kind() == table_attr {
            table = Some(c_string(nla.value()));
        } else if nla.kind() == chain_attr {
            chain = Some(c_string(nla.value()));
        }
    }
    match (table, chain) {
        (Some(t), Some(c)) => Ok((t, c)),
        _ => Err(Malformed("message lacks table or chain name".into())),
    }
}

fn parse_gen(attrs: &[u8]) -> Result<u32, Malformed> {
    for nla in NlasIterator::new(attrs) {
        let nla = nla?;
        if let (NFTA_GEN_ID, &[a, b, c, d]) = (nla.kind(), nla.value()) {
            return Ok(u32::from_be_bytes([a, b, c, d]));
        }
    }
    Err(Malformed("NEWGEN lacks NFTA_GEN_ID".into()))
}

/// The transport's failure as the io::Error read_chains reports (TimedOut stays TimedOut, a
/// kernel errno its own kind).
fn io_err(e: InspectErrorKind) -> io::Error {
    match e {
        InspectErrorKind::TimedOut => {
            io::Error::new(io::ErrorKind::TimedOut, "recv: deadline passed")
        }
        InspectErrorKind::Kernel(errno) => io::Error::from_raw_os_error(errno),
        InspectErrorKind::Io(detail) => io::Error::other(detail),
        InspectErrorKind::Decode(detail) => invalid(detail),
    }
}

struct NftConn {
    t: Transport,
}

impl NftConn {
    /// One request of the nf_tables subsystem; returns whether a dump was interrupted.
    fn exchange(
        &mut self,
        msg: u16,
        flags: u16,
        reply: u16,
        f: &mut OnNft<'_>,
    ) -> io::Result<bool> {
        self.t
            .exchange(nft_type(msg), flags, &NFGENMSG, &mut on_nft(reply, f))
            .map(|o| o.dump_intr)
            .map_err(io_err)
    }

    fn generation(&mut self) -> io::Result<u32> {
        let mut generation = None;
        self.exchange(
            NFT_MSG_GETGEN,
            NLM_F_REQUEST | NLM_F_ACK,
            NFT_MSG_NEWGEN,
            &mut |_, attrs| {
                generation = Some(parse_gen(attrs)?);
                Ok(())
            },
        )
        .map_err(|e| ctx(e, "nf_tables GETGEN"))?;
        generation.ok_or_else(|| invalid("nf_tables GETGEN: no NEWGEN reply"))
    }
}

pub(super) fn read(deadline: Instant) -> io::Result<Vec<Chain>> {
    remaining(deadline, "nf_tables")?;
    let t = Transport::open(NETLINK_NETFILTER, deadline)
        .map_err(|e| ctx(e, "nf_tables: socket(NETLINK_NETFILTER)"))?;
    let mut conn = NftConn { t };
    // Retry for as long as the deadline allows: a busy writer (e.g. a kube-proxy resync) can
    // invalidate several dumps in a row.
    let mut invalidated = 0u32;
    loop {
        match snapshot(&mut conn) {
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

/// One chain dump plus one rule dump, or None if the ruleset changed while we read (dump
/// flagged inconsistent, or the generation id moved).
fn snapshot(conn: &mut NftConn) -> io::Result<Option<Vec<Chain>>> {
    let gen_before = conn.generation()?;
    let mut chains: Vec<Chain> = Vec::new();
    let mut index: HashMap<(u8, String, String), usize> = HashMap::new();
    let intr_chains = conn
        .exchange(
            NFT_MSG_GETCHAIN,
            NLM_F_REQUEST | NLM_F_DUMP,
            NFT_MSG_NEWCHAIN,
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
            &mut |fam, attrs| {
                let key = parse_names(attrs, NFTA_RULE_TABLE, NFTA_RULE_CHAIN)?;
                // A miss can only be a concurrent change; the generation check below catches
                // it.
                if let Some(&i) = index.get(&(fam, key.0, key.1)) {
                    chains[i].rules = chains[i].rules.saturating_add(1);
                }
                Ok(())
            },
        )
        .map_err(|e| ctx(e, "nf_tables GETRULE dump"))?;
    let unchanged = !intr_chains && !intr_rules && conn.generation()? == gen_before;
    Ok(unchanged.then_some(chains))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::nlmsg::testing::{attr, done, error, nlmsg};
    use crate::inspect::nlmsg::{frame, Exchange, Outcome};
    use netlink_packet_core::NLM_F_DUMP_INTR;

    fn cstr(s: &str) -> Vec<u8> {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        v
    }

    fn nft_msg(msg: u16, fam: u8, seq: u32, attrs: &[Vec<u8>]) -> Vec<u8> {
        nlmsg(
            nft_type(msg),
            2, /* NLM_F_MULTI */
            seq,
            &[fam, 0, 0, 0],
            attrs,
        )
    }

    /// (family, table, chain) of one reply.
    type Named = (u8, String, String);

    /// One datagram of a dump of `reply` messages, as read() runs it: (replies, whether the
    /// dump ended, whether it was flagged interrupted).
    fn collect(buf: &[u8], seq: u32, reply: u16) -> io::Result<(Vec<Named>, bool, bool)> {
        let mut got = Vec::new();
        let mut out = Outcome::default();
        let chain_attr = if reply == NFT_MSG_NEWCHAIN {
            NFTA_CHAIN_NAME
        } else {
            NFTA_RULE_CHAIN
        };
        let mut f = |fam, attrs: &[u8]| {
            let (t, c) = parse_names(attrs, 1, chain_attr)?;
            got.push((fam, t, c));
            Ok(())
        };
        let over = Exchange::for_request(seq, NLM_F_REQUEST | NLM_F_DUMP)
            .absorb(buf, &mut out, &mut on_nft(reply, &mut f))
            .map_err(io_err)?;
        Ok((got, over, out.dump_intr))
    }

    #[test]
    fn request_encoding() {
        let r = frame(
            nft_type(NFT_MSG_GETCHAIN),
            NLM_F_REQUEST | NLM_F_DUMP,
            7,
            &NFGENMSG,
        )
        .unwrap();
        assert_eq!(&r[0..4], &20u32.to_ne_bytes());
        assert_eq!(&r[4..6], &0x0a04u16.to_ne_bytes());
        assert_eq!(&r[6..8], &0x301u16.to_ne_bytes());
        assert_eq!(&r[8..12], &7u32.to_ne_bytes());
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
        // Felix's nftables dataplane and kube-proxy's nftables mode: tables of their own.
        buf.extend(nft_msg(
            NFT_MSG_NEWCHAIN,
            2,
            5,
            &[
                attr(NFTA_CHAIN_TABLE, &cstr("calico")),
                attr(NFTA_CHAIN_NAME, &cstr("filter-FORWARD")),
            ],
        ));
        buf.extend(nft_msg(
            NFT_MSG_NEWCHAIN,
            10,
            5,
            &[
                attr(NFTA_CHAIN_TABLE, &cstr("kube-proxy")),
                attr(NFTA_CHAIN_NAME, &cstr("services")),
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
        let (got, over, intr) = collect(&buf, 5, NFT_MSG_NEWCHAIN).unwrap();
        assert_eq!(
            got,
            vec![
                (2, "nat".into(), "KUBE-SERVICES".into()),
                (10, "filter".into(), "INPUT".into()),
                (2, "calico".into(), "filter-FORWARD".into()),
                (10, "kube-proxy".into(), "services".into()),
            ]
        );
        assert!(!over && !intr);

        assert!(collect(&done(5, 0), 5, NFT_MSG_NEWCHAIN).unwrap().1);
        assert_eq!(nft_family(2), "ip");
        assert_eq!(nft_family(10), "ip6");
        assert_eq!(nft_family(1), "inet");
        assert_eq!(nft_family(7), "bridge");
        assert_eq!(nft_family(42), "family42");
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

        let e = collect(&error(1, libc::EPERM), 1, NFT_MSG_NEWRULE).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPERM));
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert!(collect(&error(1, 0), 1, NFT_MSG_NEWRULE).unwrap().1);
        assert!(collect(&done(1, -libc::EINTR), 1, NFT_MSG_NEWRULE).is_err());
        assert_eq!(
            io_err(InspectErrorKind::TimedOut).kind(),
            io::ErrorKind::TimedOut
        );
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
        let kind = |b: &[u8]| collect(b, 1, NFT_MSG_NEWCHAIN).unwrap_err().kind();
        // Every truncation is cleanly rejected.
        for cut in 1..good.len() {
            assert_eq!(kind(&good[..cut]), io::ErrorKind::InvalidData, "cut {cut}");
        }
        // nlmsg_len larger than the datagram.
        let mut big = good.clone();
        big[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert_eq!(kind(&big), io::ErrorKind::InvalidData);
        // Attribute length overrunning the message.
        let mut bad_attr = good.clone();
        bad_attr[20..22].copy_from_slice(&200u16.to_ne_bytes());
        assert_eq!(kind(&bad_attr), io::ErrorKind::InvalidData);
        // Attribute length below the header.
        let mut tiny = good.clone();
        tiny[20..22].copy_from_slice(&2u16.to_ne_bytes());
        assert_eq!(kind(&tiny), io::ErrorKind::InvalidData);
        // Missing chain name.
        let missing = nft_msg(
            NFT_MSG_NEWCHAIN,
            2,
            1,
            &[attr(NFTA_CHAIN_TABLE, &cstr("filter"))],
        );
        assert_eq!(kind(&missing), io::ErrorKind::InvalidData);
        // No room for nfgenmsg.
        let short = nlmsg(nft_type(NFT_MSG_NEWCHAIN), 0, 1, &[2, 0], &[]);
        assert_eq!(kind(&short), io::ErrorKind::InvalidData);
        // NLMSG_ERROR without errno.
        let short_err = nlmsg(libc::NLMSG_ERROR as u16, 0, 1, &[], &[]);
        assert_eq!(kind(&short_err), io::ErrorKind::InvalidData);
    }

    #[test]
    fn gen_id() {
        let attrs = attr(NFTA_GEN_ID | 0x4000, &42u32.to_be_bytes());
        assert_eq!(parse_gen(&attrs).unwrap(), 42);
        assert!(parse_gen(&attr(2, &[1, 2, 3, 4])).is_err());
        assert!(parse_gen(&attr(NFTA_GEN_ID, &[1, 2])).is_err());
    }

    #[test]
    fn nft_presence_probe() {
        let dir = std::env::temp_dir().join(format!("nfprobe-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing");
        let mods = dir.join("modules");
        let builtin = dir.join("modules.builtin");
        let checks = || {
            // No /proc/modules: no module support, safe to ask.
            assert!(present_at(&missing, &missing, &missing));
            fs::write(&mods, "nf_tables 352256 0 - Live 0x0\n").unwrap();
            assert!(present_at(&mods, &missing, &missing));
            fs::write(
                &mods,
                "nf_tables_foo 1 0 - Live 0x0\nip_tables 1 0 - Live 0x0\n",
            )
            .unwrap();
            assert!(!present_at(&mods, &missing, &missing));
            assert!(present_at(&mods, &dir, &missing));
            fs::write(&builtin, "kernel/net/netfilter/nf_tables.ko\n").unwrap();
            assert!(present_at(&mods, &missing, &builtin));
        };
        let r = std::panic::catch_unwind(checks);
        fs::remove_dir_all(&dir).unwrap();
        r.unwrap();
    }
}
