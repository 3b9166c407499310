//! `iptables-backend`: Calico's rules must live in the backend (iptables-legacy or iptables-nft)
//! the rest of the host uses. When Felix programs one and kube-proxy/the host the other, both
//! rule sets run and cross-node pod traffic dies without an error anywhere (Calico issue 3709).

use super::{CheckId, Finding, NodeFacts, Severity};
use crate::inspect::netfilter::{Backend, Chain, NetfilterState};

fn name(b: Backend) -> &'static str {
    match b {
        Backend::Legacy => "iptables-legacy",
        Backend::Nft => "iptables-nft",
    }
}

/// The FELIX_IPTABLESBACKEND value that selects `b`.
fn felix_value(b: Backend) -> &'static str {
    match b {
        Backend::Legacy => "Legacy",
        Backend::Nft => "NFT",
    }
}

fn other(b: Backend) -> Backend {
    match b {
        Backend::Legacy => Backend::Nft,
        Backend::Nft => Backend::Legacy,
    }
}

/// Only the tables iptables manages: native nftables tables (firewalld's inet, ...) are not
/// "iptables rules" and say nothing about which backend Felix should use.
fn iptables_chains(s: &NetfilterState, b: Backend) -> impl Iterator<Item = &Chain> {
    s.chains
        .iter()
        .filter(move |c| c.backend == b && (c.family == "ip" || c.family == "ip6"))
}

#[derive(Debug, Default)]
struct Side {
    cali: usize,
    kube: usize,
    /// Rules outside Calico's and kube-proxy's chains: the host's own firewall.
    host_rules: u32,
}

fn side(s: &NetfilterState, b: Backend) -> Side {
    let mut out = Side::default();
    for c in iptables_chains(s, b) {
        if c.name.starts_with("cali-") {
            out.cali += 1;
        } else if c.name.starts_with("KUBE-") {
            out.kube += 1;
        } else {
            // Builtin chains also hold the jumps into cali-*/KUBE-* chains, so this over-counts;
            // it is only used as "does this backend have any rules of the host's at all".
            out.host_rules += c.rules;
        }
    }
    out
}

pub fn check(f: &NodeFacts) -> Vec<Finding> {
    let Some(nf) = &f.netfilter else {
        return vec![];
    };
    let state = match nf {
        Ok(s) => s,
        Err(e) => {
            return vec![Finding::new(
            CheckId::IptablesBackend,
            "the host's iptables rules",
            "the iptables backends could not be read",
            "a readable list of chains in iptables-legacy and iptables-nft",
            e.clone(),
            "the plugin needs CAP_NET_ADMIN and CAP_NET_RAW (it runs as root under the runtime); \
                 set \"checks\": {\"iptables-backend\": \"off\"} if this node cannot allow it",
        )
        .at(Severity::Warn)]
        }
    };
    let legacy = side(state, Backend::Legacy);
    let nft = side(state, Backend::Nft);
    let mut out = Vec::new();
    let calico_in = match (legacy.cali > 0, nft.cali > 0) {
        (false, false) => return out, // Felix has not programmed yet, or the eBPF dataplane
        (true, true) => {
            out.push(
                Finding::new(
                    CheckId::IptablesBackend,
                    "the host's iptables rules",
                    "Calico's chains (cali-*) exist in both iptables-legacy and iptables-nft",
                    "cali-* chains in one backend only",
                    format!("{} cali-* chains in iptables-legacy, {} in iptables-nft", legacy.cali, nft.cali),
                    "one set is stale, left by Felix running in the other mode earlier: after making sure \
                     FELIX_IPTABLESBACKEND on calico-node matches the host, flush the stale backend's \
                     cali-* chains or reboot the node",
                )
                .at(Severity::Warn),
            );
            None
        }
        (true, false) => Some(Backend::Legacy),
        (false, true) => Some(Backend::Nft),
    };
    let Some(cal) = calico_in else {
        return out;
    };
    let (mine, theirs) = match cal {
        Backend::Legacy => (&legacy, &nft),
        Backend::Nft => (&nft, &legacy),
    };
    let kube_elsewhere = theirs.kube > 0 && mine.kube == 0;
    let host_elsewhere = theirs.host_rules > 0 && mine.host_rules == 0;
    if kube_elsewhere || host_elsewhere {
        let what = match (kube_elsewhere, host_elsewhere) {
            (true, true) => "kube-proxy's chains (KUBE-*) and the host's rules",
            (true, false) => "kube-proxy's chains (KUBE-*)",
            _ => "the host's rules",
        };
        out.push(Finding::new(
            CheckId::IptablesBackend,
            "the host's iptables rules",
            format!(
                "Calico programs {} while {what} live in {}",
                name(cal),
                name(other(cal))
            ),
            format!("Calico's cali-* chains in {}, with the rest of the host", name(other(cal))),
            format!(
                "cali-* chains: {} in {}; KUBE-* chains: {} in iptables-legacy, {} in iptables-nft; \
                 other rules: {} in iptables-legacy, {} in iptables-nft",
                mine.cali,
                name(cal),
                legacy.kube,
                nft.kube,
                legacy.host_rules,
                nft.host_rules
            ),
            format!(
                "both rule sets run and cross-node pod traffic is silently dropped: set \
                 FELIX_IPTABLESBACKEND={} in the calico-node DaemonSet's env (the default Auto \
                 guesses wrong here), then flush the stale {} cali-* chains or reboot the node",
                felix_value(other(cal)),
                name(cal)
            ),
        ));
        return out;
    }
    if let Some(cmd) = &f.iptables_command {
        if cmd.backend != cal {
            out.push(
                Finding::new(
                    CheckId::IptablesBackend,
                    format!("the host's iptables command {}", cmd.path),
                    format!("the iptables command drives {} but Calico's rules are in {}", name(cmd.backend), name(cal)),
                    format!("{} to resolve to the {} variant", cmd.path, name(cal)),
                    format!("{} -> {}", cmd.path, cmd.resolved),
                    format!(
                        "tools and people using `iptables` on this node see none of Calico's rules, and \
                         anything they add lands in the other backend: switch the alternative \
                         (update-alternatives --set iptables /usr/sbin/iptables-{}) or set \
                         FELIX_IPTABLESBACKEND={} so both agree",
                        match cal {
                            Backend::Legacy => "legacy",
                            Backend::Nft => "nft",
                        },
                        felix_value(cmd.backend)
                    ),
                )
                .at(Severity::Warn),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::IptablesCommand;

    fn chain(b: Backend, table: &str, name: &str, rules: u32) -> Chain {
        Chain {
            backend: b,
            family: "ip".into(),
            table: table.into(),
            name: name.into(),
            rules,
        }
    }

    fn facts(chains: Vec<Chain>, cmd: Option<Backend>) -> NodeFacts {
        NodeFacts {
            netfilter: Some(Ok(NetfilterState {
                chains,
                legacy_loaded: true,
            })),
            iptables_command: cmd.map(|b| IptablesCommand {
                path: "/usr/sbin/iptables".into(),
                resolved: format!(
                    "/usr/sbin/xtables-{}-multi",
                    if b == Backend::Nft { "nft" } else { "legacy" }
                ),
                backend: b,
            }),
            ..NodeFacts::default()
        }
    }

    use Backend::{Legacy, Nft};

    #[test]
    fn split_felix_legacy_kube_nft_is_an_error_naming_nft() {
        let f = check(&facts(
            vec![
                chain(Legacy, "filter", "cali-INPUT", 3),
                chain(Legacy, "filter", "INPUT", 1),
                chain(Nft, "nat", "KUBE-SERVICES", 4),
                chain(Nft, "nat", "PREROUTING", 1),
            ],
            Some(Nft),
        ));
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].severity, Severity::Error);
        assert!(
            f[0].problem.contains("Calico programs iptables-legacy while kube-proxy's chains (KUBE-*) live in iptables-nft"),
            "{}",
            f[0].problem
        );
        assert!(f[0].remedy.contains("FELIX_IPTABLESBACKEND=NFT"));
    }

    #[test]
    fn split_the_other_way_names_legacy() {
        let f = check(&facts(
            vec![
                chain(Nft, "filter", "cali-FORWARD", 9),
                chain(Legacy, "nat", "KUBE-SERVICES", 2),
            ],
            None,
        ));
        assert_eq!(f.len(), 1);
        assert!(f[0].remedy.contains("FELIX_IPTABLESBACKEND=Legacy"));
    }

    #[test]
    fn host_firewall_only_elsewhere_is_an_error_too() {
        let f = check(&facts(
            vec![
                chain(Nft, "filter", "cali-FORWARD", 9),
                chain(Legacy, "filter", "INPUT", 12),
            ],
            None,
        ));
        assert!(
            f[0].problem
                .ends_with("the host's rules live in iptables-legacy"),
            "{}",
            f[0].problem
        );
    }

    #[test]
    fn both_backends_is_a_warning() {
        let f = check(&facts(
            vec![
                chain(Nft, "filter", "cali-FORWARD", 9),
                chain(Legacy, "filter", "cali-FORWARD", 9),
            ],
            None,
        ));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Warn);
        assert!(f[0].problem.contains("both"));
    }

    #[test]
    fn consistent_node_is_quiet_and_command_mismatch_warns() {
        let chains = vec![
            chain(Nft, "filter", "cali-FORWARD", 9),
            chain(Nft, "nat", "KUBE-SERVICES", 2),
            chain(Nft, "filter", "INPUT", 2),
        ];
        assert!(check(&facts(chains.clone(), Some(Nft))).is_empty());
        let f = check(&facts(chains, Some(Legacy)));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Warn);
        assert!(f[0].found.contains("xtables-legacy-multi"));
    }

    #[test]
    fn no_calico_chains_no_finding() {
        assert!(check(&facts(
            vec![chain(Legacy, "nat", "KUBE-SERVICES", 2)],
            Some(Nft)
        ))
        .is_empty());
        assert!(check(&NodeFacts::default()).is_empty());
    }

    #[test]
    fn native_nft_tables_do_not_count() {
        let mut inet = chain(Nft, "firewalld", "filter_INPUT", 30);
        inet.family = "inet".into();
        let f = check(&facts(
            vec![chain(Legacy, "filter", "cali-INPUT", 3), inet],
            None,
        ));
        assert!(f.is_empty(), "{f:#?}");
    }
}
