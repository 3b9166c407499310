//! `pod-gateway-probe`: the pod's first hop answers. From inside the pod an ARP request for
//! 169.254.1.1 (IPv6: a neighbor solicitation for the host end's link-local) must be answered by
//! the host end's MAC (see inspect/probe.rs for what is sent). Pure: judges the probe's outcome;
//! no outcome (the probe is off, or there was no wiring to probe) is no finding.
//!
//! The causes are listed in the order they are met on Calico nodes. IPv4: the host answers for
//! 169.254.1.1 by proxy ARP only when proxy_arp and forwarding are on on the host end and it has
//! a unicast route to 169.254.1.1 out of another device (net/ipv4/arp.c `arp_process`,
//! `IN_DEV_FORWARD`, `arp_fwd_proxy`). IPv6: the target is the host end's own link-local, which
//! the kernel answers for whatever proxy_ndp and forwarding say (net/ipv6/ndisc.c
//! `ndisc_recv_ns`), so only the link itself, the address and filters are causes.

use super::{describe_route, CheckId, Finding, PodFacts, Severity, CALICO_GATEWAY_V4};
use crate::inspect::format_mac;
use crate::inspect::hostnet::GatewayRoute;
use crate::inspect::probe::{Answer, FamilyProbe, ProbeOutcome};
use std::net::IpAddr;

pub fn check(f: &PodFacts) -> Vec<Finding> {
    let Some(o) = f.probe else {
        return vec![];
    };
    o.families
        .iter()
        .filter_map(|p| finding(o, p, &seen_causes(f, p)))
        .collect()
}

/// The causes the gathered host facts show, in the order of the lists below: the probe names
/// them first (the config checks report them too, unless turned off).
fn seen_causes(f: &PodFacts, p: &FamilyProbe) -> Vec<String> {
    let mut out = vec![];
    let Some(veth) = f.host.veth() else {
        return out;
    };
    let sysctl = |family: &str, setting: &str| {
        let key = format!("net.{family}.conf.{}.{setting}", veth.name);
        match f.host.sysctl(&key) {
            Some(Ok(v)) if v != "1" => Some(format!("{key} is {v}")),
            _ => None,
        }
    };
    if !p.v6 {
        out.extend(sysctl("ipv4", "proxy_arp"));
        match &f.host.net.gateway_v4 {
            Some(GatewayRoute::NoRoute(_)) => {
                out.push(format!("the host has no route covering {CALICO_GATEWAY_V4}"))
            }
            Some(GatewayRoute::Route(r))
                if !r.unicast || r.paths().iter().all(|h| h.oif == Some(veth.index)) =>
            {
                out.push(format!(
                    "the host's route covering {CALICO_GATEWAY_V4} is not a unicast route out of another device: {}",
                    describe_route(r, |i| (i == veth.index).then(|| veth.name.clone()))
                ))
            }
            _ => {}
        }
        out.extend(sysctl("ipv4", "forwarding"));
    }
    if !veth.up {
        out.push(format!("the host end {} is down", veth.name));
    } else if !veth.lower_up {
        out.push(format!("the host end {} has no carrier", veth.name));
    }
    if let (true, IpAddr::V6(t)) = (p.v6, p.target) {
        // Known only when gathered (IPv6 pods); an empty list is not read as "absent".
        let lls = &f.host.veth_v6_link_local;
        if !lls.is_empty() && !lls.contains(&t) {
            out.push(format!("the host end {} does not have {t}", veth.name));
        }
    }
    out
}

fn finding(o: &ProbeOutcome, p: &FamilyProbe, seen: &[String]) -> Option<Finding> {
    let host_mac = format_mac(&o.host_mac);
    let (asked, answer) = if p.v6 {
        (
            format!("neighbor solicitation for {}", p.target),
            "neighbor advertisement",
        )
    } else {
        (format!("ARP request for {}", p.target), "ARP reply")
    };
    let expected = format!(
        "a {answer} from the host end {} ({host_mac}) within {} ms",
        o.host_veth, o.timeout_ms
    );
    let mut sent = p.describe_sent(o);
    if o.timeout_ms < o.asked_timeout_ms {
        sent.push_str(&format!(
            " (probeTimeoutMs {} cut to fit half the time left within timeoutMs)",
            o.asked_timeout_ms
        ));
    }
    let object = format!("pod interface {}", o.ifname);
    let (problem, came_back, remedy) = match &p.answer {
        Answer::Host { .. } => return None,
        Answer::NotRun(why) => {
            return Some(
                Finding::new(
                    CheckId::PodGatewayProbe,
                    object,
                    format!("the pod's {asked} could not be sent"),
                    expected,
                    why.clone(),
                    "the probe needs CAP_NET_RAW in the pod's namespace and the pod interface up; \
                     this says nothing about the path itself. Set \"probe\": false (or \
                     checks.pod-gateway-probe \"off\") if the probe cannot run here",
                )
                .at(Severity::Warn),
            );
        }
        Answer::HostTentative => {
            return Some(
                Finding::new(
                    CheckId::PodGatewayProbe,
                    object,
                    format!(
                        "the pod's {asked} was not sent: the host end {} holds {} only \
                         tentatively (duplicate address detection in progress), so it answers \
                         nothing yet",
                        o.host_veth, p.target
                    ),
                    expected,
                    format!("{} tentative on {}", p.target, o.host_veth),
                    format!(
                        "it answers once DAD ends (about a second); run `calico-preflight doctor` \
                         then. Calico turns DAD off on the host end before bringing it up: a \
                         tentative address means `sysctl net.ipv6.conf.all.accept_dad` is above 0 \
                         (it overrides the device's) or the address was added again: `ip -6 addr \
                         show dev {}`",
                        o.host_veth
                    ),
                )
                .at(Severity::Warn),
            );
        }
        Answer::Nothing => (
            format!("the pod's {asked} got no answer: the pod cannot reach its gateway"),
            "nothing".to_string(),
            {
                let list = if p.v6 {
                    causes_v6(&o.host_veth, p)
                } else {
                    causes_v4(&o.host_veth)
                };
                if seen.is_empty() {
                    let first = if p.v6 {
                        "a firewall rule dropping neighbor discovery"
                    } else {
                        "a firewall rule dropping ARP"
                    };
                    format!(
                        "the host end's configuration shows no cause, so {first} (or a change since it \
                         was read) is the most likely. {list}"
                    )
                } else {
                    format!(
                        "the host's configuration shows: {}. {list}",
                        seen.join("; ")
                    )
                }
            },
        ),
        Answer::OtherMacs(macs) => (
            format!(
                "the pod's {asked} was answered by another MAC than the host end's: the pod \
                 sends its traffic elsewhere"
            ),
            format!(
                "{answer}(s) from {}",
                macs.iter()
                    .map(|m| format_mac(m))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            format!(
                "likely causes: (1) the host end's MAC changed after Calico wired it (Calico \
                 sets ee:ee:ee:ee:ee:ee): `ip link show {v}`; (2) something other than the host \
                 end is on the pod's link (a bridge, macvlan or second plugin): `ip -d link show` \
                 in the pod's namespace. Delete the pod to have it wired again",
                v = o.host_veth
            ),
        ),
    };
    Some(Finding::new(
        CheckId::PodGatewayProbe,
        object,
        problem,
        expected,
        format!("sent {sent}; came back: {came_back}"),
        remedy,
    ))
}

fn causes_v4(v: &str) -> String {
    format!(
        "Likely causes, in order: (1) proxy ARP off on the host end: `sysctl \
         net.ipv4.conf.{v}.proxy_arp` must be 1; (2) no host route covering 169.254.1.1 out of \
         another device: `ip route get 169.254.1.1` must succeed and not leave by {v} (a node needs \
         a default route); (3) forwarding off on the host end: `sysctl net.ipv4.conf.{v}.forwarding` \
         must be 1; (4) a firewall rule dropping ARP: `nft list ruleset` (an `arp` family table, or \
         arptables/ebtables rules); (5) the host end down: `ip link show {v}` must show UP and \
         LOWER_UP; (6) a proxy delay: `sysctl net.ipv4.neigh.{v}.proxy_delay` must be 0 as Calico \
         sets it. Fix the cause, or delete the pod to have Calico wire it again"
    )
}

fn causes_v6(v: &str, p: &FamilyProbe) -> String {
    format!(
        "Likely causes, in order: (1) the host end down: `ip link show {v}` must show UP and \
         LOWER_UP; (2) the host end lacks {t} or IPv6 is off on it: `ip -6 addr show dev {v}` must \
         list it (not tentative or dadfailed) and `sysctl net.ipv6.conf.{v}.disable_ipv6` be 0; \
         (3) a firewall rule dropping ICMPv6 neighbor discovery: `nft list ruleset`, \
         `ip6tables-save`; (4) the pod's IPv6 default route names a gateway the host end does not \
         have: compare `ip -6 route` in the pod with (2). Fix the cause, or delete the pod to have \
         Calico wire it again",
        t = p.target
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixtures::*;

    fn outcome(answers: &[(bool, Answer)]) -> ProbeOutcome {
        ProbeOutcome {
            ifname: "eth0".into(),
            host_veth: VETH.into(),
            pod_mac: vec![0x0a, 0x58, 1, 2, 3, 4],
            host_mac: vec![0xee; 6],
            timeout_ms: 50,
            asked_timeout_ms: 50,
            families: answers
                .iter()
                .map(|(v6, a)| FamilyProbe {
                    v6: *v6,
                    target: if *v6 {
                        LL.parse::<IpAddr>().unwrap()
                    } else {
                        "169.254.1.1".parse().unwrap()
                    },
                    source: if *v6 {
                        "fd00:10::5".parse().unwrap()
                    } else {
                        "10.244.1.5".parse().unwrap()
                    },
                    dst_mac: if *v6 {
                        vec![0x33, 0x33, 0xff, 0xee, 0xee, 0xee]
                    } else {
                        vec![0xff; 6]
                    },
                    sent: 2,
                    answer: a.clone(),
                })
                .collect(),
        }
    }

    #[test]
    fn no_probe_and_answered_probe_are_quiet() {
        let mut fx = healthy_dual();
        assert!(check(&fx.facts()).is_empty());
        fx.probe = Some(outcome(&[
            (
                false,
                Answer::Host {
                    attempt: 1,
                    micros: 40,
                },
            ),
            (
                true,
                Answer::Host {
                    attempt: 2,
                    micros: 40,
                },
            ),
        ]));
        assert!(check(&fx.facts()).is_empty());
    }

    #[test]
    fn silence_is_an_error_naming_what_was_sent_and_the_causes() {
        let mut fx = healthy_v4();
        fx.probe = Some(outcome(&[(false, Answer::Nothing)]));
        let f = check(&fx.facts());
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Error);
        assert!(f[0]
            .problem
            .contains("ARP request for 169.254.1.1 got no answer"));
        assert!(f[0].found.contains(
            "ARP request who-has 169.254.1.1 tell 10.244.1.5, from 0a:58:01:02:03:04 to ff:ff:ff:ff:ff:ff, then to the host end's ee:ee:ee:ee:ee:ee on eth0, 2 time(s)"
        ), "{}", f[0].found);
        assert!(f[0].found.ends_with("came back: nothing"));
        for cmd in [
            format!("sysctl net.ipv4.conf.{VETH}.proxy_arp"),
            "ip route get 169.254.1.1".into(),
            format!("sysctl net.ipv4.conf.{VETH}.forwarding"),
            "nft list ruleset".into(),
            format!("ip link show {VETH}"),
        ] {
            assert!(f[0].remedy.contains(&cmd), "{cmd}: {}", f[0].remedy);
        }
        // In order: proxy_arp first, the link last but one.
        let at = |s: &str| f[0].remedy.find(s).unwrap();
        assert!(at("proxy_arp") < at("ip route get") && at("ip route get") < at("nft list"));
        assert!(f[0].remedy.starts_with(
            "the host end's configuration shows no cause, so a firewall rule dropping ARP"
        ));
    }

    #[test]
    fn causes_the_host_facts_show_come_first() {
        let mut fx = healthy_v4();
        fx.probe = Some(outcome(&[(false, Answer::Nothing)]));
        fx.host.sysctls[0].value = Ok("0".into());
        fx.host.net.gateway_v4 = Some(GatewayRoute::NoRoute(libc::ENETUNREACH));
        fx.host.veth_by_name.as_mut().unwrap().up = false;
        let f = check(&fx.facts());
        assert!(
            f[0].remedy.starts_with(&format!(
                "the host's configuration shows: net.ipv4.conf.{VETH}.proxy_arp is 0; the host has \
                 no route covering 169.254.1.1; the host end {VETH} is down. Likely causes"
            )),
            "{}",
            f[0].remedy
        );
    }

    #[test]
    fn v6_silence_and_another_mac() {
        let mut fx = healthy_dual();
        fx.probe = Some(outcome(&[
            (false, Answer::OtherMacs(vec![vec![2, 0, 0, 0, 0, 9]])),
            (true, Answer::Nothing),
        ]));
        let f = check(&fx.facts());
        assert_eq!(f.len(), 2);
        assert!(f[0]
            .found
            .ends_with("came back: ARP reply(s) from 02:00:00:00:00:09"));
        assert!(f[0].problem.contains("another MAC"));
        assert!(f[1].found.contains(&format!(
            "ICMPv6 neighbor solicitation for {LL} from fd00:10::5 to ff02::1:ffee:eeee, from 0a:58:01:02:03:04 to 33:33:ff:ee:ee:ee"
        )), "{}", f[1].found);
        assert!(f[1].remedy.contains(&format!("ip -6 addr show dev {VETH}")));
    }

    #[test]
    fn a_tentative_host_address_only_warns() {
        let mut fx = healthy_dual();
        fx.probe = Some(outcome(&[(true, Answer::HostTentative)]));
        let f = check(&fx.facts());
        assert_eq!(f[0].severity, Severity::Warn);
        assert!(f[0].problem.contains("tentatively"), "{}", f[0].problem);
        assert!(f[0].remedy.contains("net.ipv6.conf.all.accept_dad"));
    }

    #[test]
    fn a_probe_that_could_not_run_only_warns() {
        let mut fx = healthy_v4();
        fx.probe = Some(outcome(&[(false, Answer::NotRun("EPERM".into()))]));
        let f = check(&fx.facts());
        assert_eq!(f[0].severity, Severity::Warn);
    }
}
