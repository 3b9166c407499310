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

/// The tables iptables-nft writes (one per iptables table); native nftables tables (firewalld's
/// inet, Felix's `calico`, kube-proxy's `kube-proxy`, ...) are not "iptables rules" and say
/// nothing about which iptables backend Felix should use.
const XTABLES: &[&str] = &["filter", "nat", "mangle", "raw", "security"];

fn iptables_chains(s: &NetfilterState, b: Backend) -> impl Iterator<Item = &Chain> {
    s.chains.iter().filter(move |c| {
        c.backend == b
            && (c.family == "ip" || c.family == "ip6")
            && (b == Backend::Legacy || XTABLES.contains(&c.table.as_str()))
    })
}

/// Chains of a native nftables table in the `ip`/`ip6` families.
fn nft_table_chains(s: &NetfilterState, table: &str) -> usize {
    s.chains
        .iter()
        .filter(|c| {
            c.backend == Backend::Nft && (c.family == "ip" || c.family == "ip6") && c.table == table
        })
        .count()
}

/// Felix's nftables dataplane programs table `calico` in `ip` and `ip6`
/// (felix/dataplane/linux/int_dataplane.go `nftables.NewTable("calico", 4|6, ...)`).
const FELIX_TABLE: &str = "calico";
/// kube-proxy's nftables mode programs table `kube-proxy` in `ip` and `ip6`. Felix decides
/// "kube-proxy is in nftables mode" exactly by that table having chains
/// (felix/nftables/utils.go `KubeProxyNftablesEnabledFn`), and in its default
/// `NFTablesMode=Auto` follows it (`nftables.Enabled`).
const KUBE_PROXY_TABLE: &str = "kube-proxy";
/// Chains only kube-proxy's iptables and ipvs modes make (kubelet's own KUBE-KUBELET-CANARY
/// and KUBE-FIREWALL exist whatever kube-proxy does).
const KUBE_PROXY_IPTABLES_CHAINS: &[&str] =
    &["KUBE-SERVICES", "KUBE-PROXY-CANARY", "KUBE-NODEPORTS"];
/// The raw chain only Felix's eBPF dataplane makes (felix/rules/static.go
/// `StaticBPFModeRawChains`, `ChainRawBPFUntrackedPolicy`): eBPF replaces kube-proxy.
const FELIX_BPF_CHAIN: &str = "cali-untracked-policy";

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
    let felix_nft = nft_table_chains(state, FELIX_TABLE);
    let kube_nft = nft_table_chains(state, KUBE_PROXY_TABLE);
    let bpf = state
        .chains
        .iter()
        .any(|c| c.name.ends_with(FELIX_BPF_CHAIN));
    let mut out = Vec::new();
    if felix_nft > 0 {
        return nftables_dataplane(state, felix_nft, kube_nft, bpf, &legacy, &nft);
    }
    let calico_in = match (legacy.cali > 0, nft.cali > 0) {
        // Felix has not programmed yet, or the eBPF dataplane without iptables chains.
        (false, false) => return out,
        _ if kube_nft > 0 && !bpf => {
            out.push(Finding::new(
                CheckId::IptablesBackend,
                "the host's netfilter rules",
                "kube-proxy runs in nftables mode while Felix programs iptables",
                "Felix's nftables dataplane (table calico) with kube-proxy's nftables mode, or both on iptables",
                format!(
                    "{kube_nft} chains in nftables table {KUBE_PROXY_TABLE}; cali-* iptables chains: {} in \
                     iptables-legacy, {} in iptables-nft; no nftables table {FELIX_TABLE}",
                    legacy.cali, nft.cali
                ),
                "Calico and kube-proxy must use the same netfilter generation, or Services and policy \
                 break: Felix's default nftablesMode Auto follows kube-proxy (it restarts within seconds \
                 of a kube-proxy mode change), so nftablesMode is probably set to Disabled here. Set it to Auto \
                 or Enabled (FelixConfiguration nftablesMode, FELIX_NFTABLESMODE on calico-node, or the \
                 operator's Installation linuxDataplane: Nftables), or put kube-proxy back in iptables mode",
            ));
            return out;
        }
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

/// Felix's nftables dataplane: its rules are in table `calico`, the iptables backends hold
/// nothing of Felix's (it sweeps them), and kube-proxy must be in nftables mode too.
fn nftables_dataplane(
    state: &NetfilterState,
    felix_nft: usize,
    kube_nft: usize,
    bpf: bool,
    legacy: &Side,
    nft: &Side,
) -> Vec<Finding> {
    let mut out = Vec::new();
    if legacy.cali > 0 || nft.cali > 0 {
        out.push(
            Finding::new(
                CheckId::IptablesBackend,
                "the host's netfilter rules",
                "Felix programs its nftables dataplane but Calico's iptables chains (cali-*) remain",
                "Calico's rules in nftables table calico only",
                format!(
                    "{felix_nft} chains in nftables table {FELIX_TABLE}; cali-* chains: {} in \
                     iptables-legacy, {} in iptables-nft",
                    legacy.cali, nft.cali
                ),
                "they are left from Felix's iptables mode and still run: Felix sweeps them when it \
                 starts, so restart calico-node on this node; if they stay, flush them or reboot the node",
            )
            .at(Severity::Warn),
        );
    }
    let kube_ipt: Vec<&str> = KUBE_PROXY_IPTABLES_CHAINS
        .iter()
        .copied()
        .filter(|k| {
            [Backend::Legacy, Backend::Nft]
                .into_iter()
                .any(|b| iptables_chains(state, b).any(|c| c.name == *k))
        })
        .collect();
    if kube_nft == 0 && !kube_ipt.is_empty() && !bpf {
        out.push(Finding::new(
            CheckId::IptablesBackend,
            "the host's netfilter rules",
            "Felix runs its nftables dataplane while kube-proxy runs in iptables (or ipvs) mode",
            "kube-proxy in nftables mode (nftables table kube-proxy), as Calico's nftables dataplane requires",
            format!(
                "{felix_nft} chains in nftables table {FELIX_TABLE}; kube-proxy's iptables chains {}; \
                 no nftables table {KUBE_PROXY_TABLE}",
                kube_ipt.join(", ")
            ),
            "Calico and kube-proxy must use the same netfilter generation, or Services and policy \
             break: Felix's default nftablesMode Auto would follow kube-proxy, so it is probably set to \
             Enabled here. Put kube-proxy in nftables mode (KubeProxyConfiguration mode: nftables), or set \
             Felix's nftablesMode to Auto or Disabled (FelixConfiguration nftablesMode, \
             FELIX_NFTABLESMODE on calico-node, or the operator's Installation linuxDataplane: Iptables)",
        ));
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

    fn nft_chain(family: &str, table: &str, name: &str) -> Chain {
        Chain {
            backend: Nft,
            family: family.into(),
            table: table.into(),
            name: name.into(),
            rules: 3,
        }
    }

    /// Felix's nftables dataplane and kube-proxy's nftables mode, both families.
    fn all_nftables() -> Vec<Chain> {
        let mut v = vec![];
        for fam in ["ip", "ip6"] {
            v.push(nft_chain(fam, "calico", "filter-FORWARD"));
            v.push(nft_chain(fam, "calico", "filter-cali-from-wl-dispatch"));
            v.push(nft_chain(fam, "kube-proxy", "services"));
            v.push(nft_chain(fam, "kube-proxy", "filter-forward"));
        }
        v
    }

    #[test]
    fn healthy_all_nftables_node_is_quiet() {
        assert!(check(&facts(all_nftables(), Some(Nft))).is_empty());
        // Whatever the iptables command is, and with kubelet's canaries in iptables-nft.
        let mut c = all_nftables();
        c.push(chain(Nft, "mangle", "KUBE-KUBELET-CANARY", 0));
        c.push(chain(Legacy, "filter", "INPUT", 4));
        assert!(check(&facts(c, Some(Legacy))).is_empty());
        // IPv6 only: Felix's and kube-proxy's tables in ip6 alone.
        let v6: Vec<Chain> = all_nftables()
            .into_iter()
            .filter(|c| c.family == "ip6")
            .collect();
        assert!(check(&facts(v6, None)).is_empty());
    }

    #[test]
    fn kube_proxy_nftables_with_felix_iptables_is_an_error() {
        let mut c: Vec<Chain> = all_nftables()
            .into_iter()
            .filter(|c| c.table == "kube-proxy")
            .collect();
        c.push(chain(Nft, "filter", "cali-FORWARD", 9));
        c.push(chain(Nft, "filter", "FORWARD", 2));
        let f = check(&facts(c, Some(Nft)));
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].severity, Severity::Error);
        assert_eq!(
            f[0].problem,
            "kube-proxy runs in nftables mode while Felix programs iptables"
        );
        assert!(f[0].remedy.contains("nftablesMode"), "{}", f[0].remedy);
        assert!(f[0].found.contains("table kube-proxy"), "{}", f[0].found);
    }

    #[test]
    fn felix_nftables_with_kube_proxy_iptables_is_an_error() {
        let mut c: Vec<Chain> = all_nftables()
            .into_iter()
            .filter(|c| c.table == "calico")
            .collect();
        c.push(chain(Legacy, "nat", "KUBE-SERVICES", 20));
        c.push(chain(Legacy, "nat", "KUBE-MARK-MASQ", 1));
        let f = check(&facts(c, Some(Legacy)));
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].severity, Severity::Error);
        assert!(f[0]
            .problem
            .starts_with("Felix runs its nftables dataplane"));
        assert!(f[0].found.contains("KUBE-SERVICES"), "{}", f[0].found);
        assert!(f[0].remedy.contains("mode: nftables"), "{}", f[0].remedy);
    }

    #[test]
    fn felix_nftables_without_any_kube_proxy_is_quiet() {
        // No kube-proxy at all (another service proxy), kubelet's canary in iptables only.
        let mut c: Vec<Chain> = all_nftables()
            .into_iter()
            .filter(|c| c.table == "calico")
            .collect();
        c.push(chain(Nft, "nat", "KUBE-KUBELET-CANARY", 0));
        assert!(check(&facts(c, None)).is_empty());
    }

    #[test]
    fn felix_nftables_with_stale_iptables_chains_warns() {
        let mut c = all_nftables();
        c.push(chain(Legacy, "filter", "cali-FORWARD", 9));
        let f = check(&facts(c, None));
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].severity, Severity::Warn);
        assert!(f[0].problem.contains("remain"));
    }

    #[test]
    fn ebpf_dataplane_gets_no_finding() {
        // eBPF without iptables chains: nothing of Felix's in netfilter at all.
        assert!(check(&facts(vec![chain(Nft, "filter", "INPUT", 3)], Some(Nft))).is_empty());
        // eBPF with its few iptables chains and a kube-proxy in nftables mode Felix has not
        // cleaned up yet: eBPF replaces kube-proxy, not a backend disagreement.
        let mut c: Vec<Chain> = all_nftables()
            .into_iter()
            .filter(|c| c.table == "kube-proxy")
            .collect();
        c.push(chain(Nft, "raw", "cali-PREROUTING", 3));
        c.push(chain(Nft, "raw", "cali-untracked-policy", 1));
        assert!(check(&facts(c, Some(Nft))).is_empty());
    }

    #[test]
    fn native_tables_in_ip_families_are_not_host_iptables_rules() {
        // A user's own `table ip mytable` does not make iptables-nft "the host's backend".
        let f = check(&facts(
            vec![
                chain(Legacy, "filter", "cali-INPUT", 3),
                nft_chain("ip", "mytable", "input"),
            ],
            None,
        ));
        assert!(f.is_empty(), "{f:#?}");
    }
}
