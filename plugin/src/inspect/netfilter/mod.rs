//! Read-only inventory of iptables chains in the calling thread's network namespace, for both
//! backends:
//!
//! * **legacy** x_tables (what `iptables-legacy` writes): [`xtables`], getsockopt on a raw
//!   socket, for the tables the kernel already lists.
//! * **nf_tables** (what `iptables-nft`, `nft`, Felix's nftables dataplane and kube-proxy's
//!   nftables mode write): [`nftables`], chain and rule dumps of every family over the
//!   plugin's one netlink transport ([`super::nlmsg`]), read as one consistent snapshot.
//!
//! Nothing here changes state or loads kernel modules: a legacy table is only queried if it is
//! already listed (asking for another would `request_module("iptable_%s")`), and nf_tables is
//! only asked if it is already in the kernel (opening a `NETLINK_NETFILTER` socket and sending
//! to `NFNL_SUBSYS_NFTABLES` autoload `nfnetlink` and `nf_tables`).

mod nftables;
mod xtables;

use std::fmt::Display;
use std::io;
use std::time::{Duration, Instant};

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

/// Reads both backends; every socket read is bounded by `deadline` (past it:
/// io::ErrorKind::TimedOut).
pub fn read_chains(deadline: Instant) -> io::Result<NetfilterState> {
    let (mut chains, legacy_loaded) = xtables::read(deadline)?;
    if nftables::present() {
        chains.extend(nftables::read(deadline)?);
    } else {
        log::debug!("nf_tables is neither loaded nor built in; not querying it (would autoload)");
    }
    Ok(NetfilterState {
        chains,
        legacy_loaded,
    })
}

/// Prefixes an error with what we were doing, keeping its kind (callers match on kind, e.g.
/// PermissionDenied / TimedOut).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_in_past_times_out() {
        let e = remaining(Instant::now(), "x").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
