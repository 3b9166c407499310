//! `ip-conflict`: no other host interface or route claims a pod IP.

use super::host_route::{is_conflict, may_be_migration_target, MIGRATION_TARGET};
use super::{CheckId, Finding, PodFacts, Severity};

pub fn check(f: &PodFacts) -> Vec<Finding> {
    let veth = f.host.veth();
    let veth_index = veth.map(|v| v.index);
    f.host
        .routes_to_pod
        .iter()
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
        .collect()
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
    fn a_covering_subnet_is_not_a_conflict() {
        let mut fx = healthy_v4();
        fx.host.routes_to_pod[0].route = Some(route(Some("10.244.0.0/16"), None, 2, false));
        assert!(check(&fx.facts()).is_empty());
    }
}
