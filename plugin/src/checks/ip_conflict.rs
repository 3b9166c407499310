//! `ip-conflict`: no other host interface or route claims a pod IP. A pod IP that is the
//! address of one of Calico's tunnel devices (`tunl0`, `vxlan.calico`, `wireguard.cali`, ...)
//! is named as such: IPAM handed the node's tunnel address out again (calico#3589, #6244).

use super::host_route::{is_conflict, may_be_migration_target, MIGRATION_TARGET};
use super::{CheckId, Finding, PodFacts, Severity};
use std::net::IpAddr;

/// Findings for pod IPs that are a tunnel device's address; those IPs are skipped below.
fn tunnel_conflicts(f: &PodFacts) -> Vec<(IpAddr, Finding)> {
    let mut out = Vec::new();
    for ip in f.target.pod_ips.iter().map(|n| n.ip()) {
        let Some(t) = f.host.net.tunnels.iter().find(|t| t.addrs.contains(&ip)) else {
            continue;
        };
        let dev = &t.link.name;
        out.push((
            ip,
            Finding::new(
                CheckId::IpConflict,
                format!("host interface {dev}"),
                format!("pod IP {ip} is also the address of Calico's tunnel device {dev}"),
                format!("{ip} used by this pod only, not by {dev}"),
                format!("{ip} is an address of {dev}"),
                format!(
                    "Calico IPAM gave this node's tunnel address to a pod as well: traffic for {ip} ends on the \
                     host, not the pod. Release the pod's address or the tunnel's (calicoctl ipam check, then \
                     calicoctl ipam release --ip={ip}), restart calico-node on this node so it reassigns {dev}'s \
                     address, and recreate the pod"
                ),
            ),
        ));
    }
    out
}

pub fn check(f: &PodFacts) -> Vec<Finding> {
    let veth = f.host.veth();
    let veth_index = veth.map(|v| v.index);
    let tunnel = tunnel_conflicts(f);
    let generic: Vec<Finding> = f
        .host
        .routes_to_pod
        .iter()
        .filter(|l| !tunnel.iter().any(|(ip, _)| *ip == l.ip))
        .filter(|l| is_conflict(l, veth_index))
        .filter_map(|l| {
            let r = l.route.as_ref()?;
            let other = l
                .oif_name
                .clone()
                .unwrap_or_else(|| {
                    let oif = r.paths().iter().find_map(|p| p.oif);
                    format!("ifindex {}", oif.unwrap_or_default())
                });
            let veth_name = veth.map(|v| v.name.as_str()).unwrap_or("the pod's veth");
            let (problem, found) = if r.local {
                (
                    format!("pod IP {} is also a local address of {other}", l.ip),
                    format!("{} is a local address on {other}", l.ip),
                )
            } else {
                (
                    format!("pod IP {} is routed to {other}, not to {veth_name}", l.ip),
                    format!("{}/{} dev {other}", l.ip, r.dst_len),
                )
            };
            let remedy = format!(
                "two things on this node claim {}: remove the stale address or route from {other} \
                 (a leftover of another CNI, a deleted pod, or a manual setup), and check Calico IPAM for a \
                 duplicate allocation (calicoctl ipam check)",
                l.ip
            );
            // Until Felix moves it, a migration target's IP is still routed elsewhere (towards
            // the source node); a local address stays a conflict.
            let waiting = !r.local && may_be_migration_target(f);
            let remedy = if waiting {
                format!("{MIGRATION_TARGET}{remedy}")
            } else {
                remedy
            };
            let finding = Finding::new(
                CheckId::IpConflict,
                format!("host interface {other}"),
                problem,
                format!("{} reachable only through {veth_name}", l.ip),
                found,
                remedy,
            );
            Some(if waiting {
                finding.at(Severity::Warn)
            } else {
                finding
            })
        })
        .collect();
    tunnel.into_iter().map(|(_, f)| f).chain(generic).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixtures::*;

    #[test]
    fn healthy_is_quiet() {
        assert!(check(&healthy_dual().facts()).is_empty());
    }

    #[test]
    fn route_on_another_interface_is_named() {
        let mut fx = healthy_v4();
        fx.host.routes_to_pod[0].route = Some(route(Some("10.244.1.5/32"), None, 5, true));
        fx.host.routes_to_pod[0].oif_name = Some("caliold".into());
        let f = check(&fx.facts());
        assert_eq!(f.len(), 1);
        assert!(f[0].problem.contains("caliold"));
    }

    #[test]
    fn a_kubevirt_migration_target_routed_elsewhere_warns_but_a_local_address_fails() {
        let mut fx = healthy_v4();
        fx.target.pod_name = Some("virt-launcher-vm1-abcde".into());
        fx.target.result_has_routes = Some(false);
        fx.host.routes_to_pod[0].route = Some(route(Some("10.244.1.5/32"), None, 9, false));
        fx.host.routes_to_pod[0].oif_name = Some("vxlan.calico".into());
        let f = check(&fx.facts());
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, crate::checks::Severity::Warn);
        assert!(f[0].remedy.contains("migration"), "{}", f[0].remedy);
        fx.host.routes_to_pod[0].route.as_mut().unwrap().local = true;
        assert_eq!(
            check(&fx.facts())[0].severity,
            crate::checks::Severity::Error
        );
        // Routes in the result: Calico added the host route, so this is a conflict.
        fx.host.routes_to_pod[0].route.as_mut().unwrap().local = false;
        fx.target.result_has_routes = Some(true);
        assert_eq!(
            check(&fx.facts())[0].severity,
            crate::checks::Severity::Error
        );
    }

    #[test]
    fn local_address_is_named() {
        let mut fx = healthy_v4();
        let mut r = route(Some("10.244.1.5/32"), None, 2, false);
        r.local = true;
        fx.host.routes_to_pod[0].route = Some(r);
        fx.host.routes_to_pod[0].oif_name = Some("dummy0".into());
        let f = check(&fx.facts());
        assert!(f[0].problem.contains("local address of dummy0"));
    }

    #[test]
    fn tunnel_address_is_named_once() {
        for dev in ["tunl0", "vxlan.calico", "wireguard.cali"] {
            let mut fx = healthy_v4();
            fx.host.net.tunnels = vec![crate::inspect::hostnet::Tunnel {
                link: crate::inspect::Link {
                    index: 40,
                    name: dev.into(),
                    ..crate::inspect::Link::default()
                },
                addrs: vec!["10.244.1.5".parse().unwrap()],
            }];
            // The host's FIB says so too (a local route on the tunnel device): one finding.
            let mut r = route(Some("10.244.1.5/32"), None, 40, false);
            r.local = true;
            fx.host.routes_to_pod[0].route = Some(r);
            fx.host.routes_to_pod[0].oif_name = Some(dev.into());
            let f = check(&fx.facts());
            assert_eq!(f.len(), 1, "{f:#?}");
            assert!(f[0].problem.contains(&format!("tunnel device {dev}")));
            assert!(f[0].remedy.contains("calicoctl ipam"));
        }
        // A tunnel with another address: quiet.
        let mut fx = healthy_v4();
        fx.host.net.tunnels = vec![crate::inspect::hostnet::Tunnel {
            link: crate::inspect::Link {
                name: "vxlan.calico".into(),
                ..crate::inspect::Link::default()
            },
            addrs: vec!["10.244.1.0".parse().unwrap()],
        }];
        assert!(check(&fx.facts()).is_empty());
    }

    #[test]
    fn a_covering_subnet_is_not_a_conflict() {
        let mut fx = healthy_v4();
        fx.host.routes_to_pod[0].route = Some(route(Some("10.244.0.0/16"), None, 2, false));
        assert!(check(&fx.facts()).is_empty());
    }
}
