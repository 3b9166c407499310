//! `pod-mtu`: the pod interface's MTU fits the path its packets take. A packet larger than a
//! Calico tunnel device's MTU, or than the uplink can carry once encapsulated, is dropped
//! (large transfers hang while pings work: kubeasz#1444, calico#8953, #2334, #3895).
//!
//! Limits, as Felix sizes them (felix/dataplane/linux/int_dataplane.go, `ConfigureDefaultMTUs`
//! and the `*MTUOverhead` constants): IPIP 20, VXLAN 50, VXLAN over IPv6 70, WireGuard 60,
//! WireGuard over IPv6 80 bytes below the host's MTU; `determinePodMTU` gives pods the
//! smallest of the enabled ones. A tunnel counts when it is up (loading the ipip module makes a
//! `tunl0` that is down and unused), and only for the pod's own families (an IPv4-only pod
//! never sends through `vxlan-v6.calico`).

use super::{CheckId, Finding, PodFacts, Severity};
use crate::inspect::hostnet::Uplink;

/// Calico's tunnel devices: (name, carries IPv6, Felix's overhead).
const TUNNELS: &[(&str, bool, u32)] = &[
    ("tunl0", false, 20),
    ("vxlan.calico", false, 50),
    ("vxlan-v6.calico", true, 70),
    ("wireguard.cali", false, 60),
    ("wg-v6.cali", true, 80),
];

/// One upper bound on the pod's MTU and where it comes from.
struct Limit {
    mtu: u32,
    why: String,
    /// A tunnel device's own MTU is a bound for sure. The "uplink" is the device of the route to
    /// the default gateway, a guess at the NIC the traffic leaves by: on a node with several
    /// NICs (a jumbo-frame one for the cluster, a 1500 one for the default route) Felix sizes
    /// by the NICs its mtuIfacePattern matches, so a bound from the uplink only warns.
    certain: bool,
}

fn limits(f: &PodFacts) -> Vec<Limit> {
    let net = &f.host.net;
    let mut out = Vec::new();
    for (v6, wanted, uplink) in [
        (false, f.target.has_v4(), &net.uplink_v4),
        (true, f.target.has_v6(), &net.uplink_v6),
    ] {
        if !wanted {
            continue;
        }
        let in_use: Vec<(&str, u32, u32)> = TUNNELS
            .iter()
            .filter(|(_, t6, _)| *t6 == v6)
            .filter_map(|(name, _, overhead)| {
                let t = net.tunnel(name)?;
                let mtu = t.link.mtu.filter(|_| t.link.up)?;
                Some((*name, mtu, *overhead))
            })
            .collect();
        for (name, mtu, _) in &in_use {
            out.push(Limit {
                mtu: *mtu,
                why: format!("the MTU of Calico's tunnel device {name}"),
                certain: true,
            });
        }
        let Some(Uplink { link, .. }) = uplink else {
            continue;
        };
        let Some(up_mtu) = link.mtu else {
            continue;
        };
        if in_use.is_empty() {
            out.push(Limit {
                mtu: up_mtu,
                why: format!("the MTU of the host's uplink {}", link.name),
                certain: false,
            });
        }
        for (name, _, overhead) in &in_use {
            out.push(Limit {
                mtu: up_mtu.saturating_sub(*overhead),
                why: format!(
                    "the uplink {}'s MTU {up_mtu} less {name}'s {overhead}-byte overhead",
                    link.name
                ),
                certain: false,
            });
        }
    }
    out
}

pub fn check(f: &PodFacts) -> Vec<Finding> {
    let Some(pod_mtu) = f.pod_link().and_then(|l| l.mtu) else {
        return vec![];
    };
    let broken: Vec<Limit> = limits(f).into_iter().filter(|l| pod_mtu > l.mtu).collect();
    // The tightest bound is named; the finding is an error only when a certain bound is broken.
    let certain = broken.iter().any(|l| l.certain);
    let Some(tightest) = broken.into_iter().min_by_key(|l| l.mtu) else {
        return vec![];
    };
    let finding = Finding::new(
        CheckId::PodMtu,
        f.pod_object(),
        format!(
            "MTU {pod_mtu} is above {}: large packets vanish",
            tightest.why
        ),
        format!("MTU at most {} ({})", tightest.mtu, tightest.why),
        format!("MTU {pod_mtu}"),
        format!(
            "set Calico's MTU to at most {}: the `mtu` of Calico's CNI entry (veth_mtu in the calico-config \
             ConfigMap, or the Installation's calicoNetwork.mtu), or let Felix detect it (mtuIfacePattern \
             matching this uplink); then recreate the pod",
            tightest.mtu
        ),
    );
    vec![if certain {
        finding
    } else {
        finding.at(Severity::Warn)
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixtures::*;
    use crate::inspect::hostnet::{Tunnel, Uplink};
    use crate::inspect::Link;

    fn tunnel(name: &str, mtu: u32, up: bool) -> Tunnel {
        Tunnel {
            link: Link {
                index: 50,
                name: name.into(),
                up,
                mtu: Some(mtu),
                ..Link::default()
            },
            addrs: vec![],
        }
    }

    fn uplink(mtu: u32) -> Option<Uplink> {
        Some(Uplink {
            link: Link {
                index: UPLINK_IDX,
                name: "eth0".into(),
                up: true,
                mtu: Some(mtu),
                ..Link::default()
            },
            route: route(None, Some("192.168.0.1"), UPLINK_IDX, false),
        })
    }

    fn with_pod_mtu(mut fx: Fixture, mtu: u32) -> Fixture {
        fx.pod_mut().link.as_mut().unwrap().mtu = Some(mtu);
        fx
    }

    #[test]
    fn healthy_is_quiet() {
        assert!(check(&healthy_dual().facts()).is_empty());
        // Felix's own sizing for each tunnel over a 1500 uplink.
        for (name, mtu) in [
            ("tunl0", 1480),
            ("vxlan.calico", 1450),
            ("wireguard.cali", 1440),
        ] {
            let mut fx = with_pod_mtu(healthy_v4(), mtu);
            fx.host.net.tunnels = vec![tunnel(name, mtu, true)];
            fx.host.net.uplink_v4 = uplink(1500);
            assert!(check(&fx.facts()).is_empty(), "{name}");
        }
        // No tunnel: the uplink's MTU itself.
        let mut fx = with_pod_mtu(healthy_v4(), 1500);
        fx.host.net.uplink_v4 = uplink(1500);
        assert!(check(&fx.facts()).is_empty());
        // No uplink known, no tunnel: nothing to judge.
        assert!(check(&with_pod_mtu(healthy_v4(), 9000).facts()).is_empty());
    }

    #[test]
    fn above_a_tunnel_device_fires() {
        let mut fx = with_pod_mtu(healthy_v4(), 1500);
        fx.host.net.tunnels = vec![tunnel("vxlan.calico", 1450, true)];
        let f = check(&fx.facts());
        assert_eq!(f.len(), 1);
        assert!(f[0].problem.contains("vxlan.calico"), "{:?}", f[0]);
        assert!(f[0].expected.contains("1450"));
        // A down tunl0 (the ipip module's own) is not in use.
        fx.host.net.tunnels = vec![tunnel("tunl0", 1480, false)];
        assert!(check(&fx.facts()).is_empty());
        fx.host.net.tunnels = vec![tunnel("tunl0", 1480, true)];
        assert!(!check(&fx.facts()).is_empty());
    }

    #[test]
    fn uplink_less_overhead_fires() {
        // The tunnel device was sized for a 1500 uplink, the uplink is 1450 (calico#8953).
        let mut fx = with_pod_mtu(healthy_v4(), 1440);
        fx.host.net.tunnels = vec![tunnel("wireguard.cali", 1440, true)];
        fx.host.net.uplink_v4 = uplink(1450);
        let f = check(&fx.facts());
        assert_eq!(f.len(), 1);
        assert!(f[0].expected.contains("1390"), "{:?}", f[0]);
        // The uplink is a guess at the NIC the tunnel uses (multi-NIC nodes): a warning.
        assert_eq!(f[0].severity, Severity::Warn);
        // No tunnel: above the uplink itself, a warning too.
        let mut fx = with_pod_mtu(healthy_v4(), 1500);
        fx.host.net.uplink_v4 = uplink(1450);
        let f = check(&fx.facts());
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Warn);
        // Above the tunnel device too: an error, naming the tightest bound.
        let mut fx = with_pod_mtu(healthy_v4(), 1500);
        fx.host.net.tunnels = vec![tunnel("vxlan.calico", 1450, true)];
        fx.host.net.uplink_v4 = uplink(1450);
        let f = check(&fx.facts());
        assert_eq!(f[0].severity, Severity::Error);
        assert!(f[0].expected.contains("1400"), "{:?}", f[0]);
    }

    #[test]
    fn v6_tunnels_count_for_v6_pods_only() {
        let mut fx = with_pod_mtu(healthy_v4(), 1450);
        fx.host.net.tunnels = vec![
            tunnel("vxlan.calico", 1450, true),
            tunnel("vxlan-v6.calico", 1430, true),
        ];
        fx.host.net.uplink_v4 = uplink(1500);
        fx.host.net.uplink_v6 = uplink(1500);
        assert!(check(&fx.facts()).is_empty());
        // A dual-stack pod at 1450: VXLAN over IPv6 costs 70, so 1430 is the bound.
        let mut fx = with_pod_mtu(healthy_dual(), 1450);
        fx.host.net.tunnels = vec![
            tunnel("vxlan.calico", 1450, true),
            tunnel("vxlan-v6.calico", 1450, true),
        ];
        fx.host.net.uplink_v4 = uplink(1500);
        fx.host.net.uplink_v6 = uplink(1500);
        let f = check(&fx.facts());
        assert_eq!(f.len(), 1);
        assert!(f[0].expected.contains("1430"), "{:?}", f[0]);
        // wg-v6.cali: 80.
        fx.host.net.tunnels = vec![tunnel("wg-v6.cali", 1440, true)];
        let f = check(&fx.facts());
        assert!(f[0].expected.contains("1420"), "{:?}", f[0]);
    }
}
