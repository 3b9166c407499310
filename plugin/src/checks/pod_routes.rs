//! `pod-routes`: with host-local IPAM and `ipam.routes`, Calico programs exactly those
//! destinations in the pod, via 169.254.1.1 (IPv4) or the host end's link-local (IPv6), instead
//! of the default routes (plus the defaults with `include_default_routes`; those are
//! `pod-default-route`'s). Each missing one is a finding of its own, naming it.
//! Source: projectcalico/calico cni-plugin/pkg/k8s/k8s.go ("If any routes are specified in the
//! routes section then only the specified routes are programmed") and
//! cni-plugin/pkg/dataplane/linux/dataplane_linux.go (`ip.AddRoute(r, gw, contVeth)` per family).
//!
//! `prevResult.routes` plays no part: from Calico 3.32 calico-ipam returns one
//! `{dst: <podIP>/32}` per IP there, which is the *host* side of the wiring.

use super::{pod_routes_text, CheckId, Finding, PodFacts, CALICO_GATEWAY_V4, CALICO_UNFINISHED};
use crate::inspect::{Link, Route};
use ipnetwork::IpNetwork;
use std::net::IpAddr;

/// What Calico's config asks of the pod's routing table.
pub(crate) struct Expected {
    /// Calico programs the default routes (0.0.0.0/0, ::/0) for the pod's families.
    pub defaults: bool,
    /// The custom destinations (host-local `ipam.routes`), both families.
    pub custom: Vec<IpNetwork>,
    /// Whether this comes from Calico's entry; `false`: the entry was not found or read, and
    /// the defaults are only what Calico does unless configured otherwise.
    pub known: bool,
}

pub(crate) fn expected(f: &PodFacts) -> Expected {
    match f.calico {
        Some(c) => Expected {
            defaults: !c.custom_routes() || c.include_default_routes,
            custom: c.host_local_routes.clone(),
            known: true,
        },
        None => Expected {
            defaults: true,
            custom: vec![],
            known: false,
        },
    }
}

/// Whether `r` is a route to `dst` (a default route for a /0).
fn is_to(r: &Route, dst: &IpNetwork) -> bool {
    if r.v6 != dst.is_ipv6() {
        return false;
    }
    if dst.prefix() == 0 {
        return r.is_default();
    }
    r.dst_len == dst.prefix() && r.dst.map(|d| d.network()) == Some(dst.network())
}

/// Whether `r` reaches the pod's gateway for its family on the pod interface, on any of its
/// paths (a multipath route or a nexthop object counts by its next hops).
pub(crate) fn via_gateway(f: &PodFacts, r: &Route, link: &Link) -> bool {
    r.paths().iter().any(|p| {
        p.oif == Some(link.index)
            && match p.gateway {
                Some(IpAddr::V4(g)) => !r.v6 && g == CALICO_GATEWAY_V4,
                Some(IpAddr::V6(g)) => r.v6 && f.host.veth_v6_link_local.contains(&g),
                None => false,
            }
    })
}

/// The pod's route to `dst` via its gateway, if it has one.
pub(crate) fn has_route(f: &PodFacts, link: &Link, dst: &IpNetwork) -> bool {
    f.pod()
        .map(|p| p.routes.as_slice())
        .unwrap_or_default()
        .iter()
        .any(|r| is_to(r, dst) && via_gateway(f, r, link))
}

/// How the gateway of a family is written in "expected".
pub(crate) fn gateway_text(f: &PodFacts, v6: bool) -> String {
    if !v6 {
        return CALICO_GATEWAY_V4.to_string();
    }
    match (f.host.veth_v6_link_local.first(), f.host.veth()) {
        (Some(ll), _) => ll.to_string(),
        (None, Some(v)) => format!("<link-local of {}>", v.name),
        (None, None) => "<link-local of the host veth>".into(),
    }
}

pub fn check(f: &PodFacts) -> Vec<Finding> {
    let Some(link) = f.pod_link() else {
        return vec![];
    };
    let exp = expected(f);
    let from = f
        .calico
        .map(|c| c.path.display().to_string())
        .unwrap_or_default();
    exp.custom
        .iter()
        .filter(|d| {
            if d.is_ipv6() {
                f.target.has_v6()
            } else {
                f.target.has_v4()
            }
        })
        .filter(|d| !has_route(f, link, d))
        .map(|d| {
            let v6 = d.is_ipv6();
            let mut found = pod_routes_text(f, v6);
            if v6 && f.host.veth_v6_link_local.is_empty() && f.host.veth().is_some() {
                found.push_str(
                    "; the host veth has no IPv6 link-local address (is IPv6 disabled on it?)",
                );
            }
            Finding::new(
                CheckId::PodRoutes,
                f.pod_object(),
                format!(
                    "route {d} via {} (from ipam.routes in {from}) is missing in the pod",
                    gateway_text(f, v6)
                ),
                format!("{d} via {} dev {}", gateway_text(f, v6), link.name),
                found,
                format!("the pod cannot reach {d}. {CALICO_UNFINISHED}"),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixtures::*;
    use crate::checks::{run_pod_checks, Severity};

    #[test]
    fn calico_ipam_pods_have_no_custom_routes_to_check() {
        assert!(check(&healthy_v4().facts()).is_empty());
        assert!(check(&healthy_dual().facts()).is_empty());
    }

    #[test]
    fn custom_routes_without_defaults_are_healthy_and_each_missing_one_is_named() {
        let mut fx = host_local_custom(&["10.0.0.0/8", "192.168.0.0/16"], false);
        let all = run_pod_checks(&fx.facts(), |_| None);
        assert!(all.is_empty(), "{all:#?}");
        fx.pod_mut()
            .routes
            .retain(|r| r.dst.map(|d| d.to_string()) != Some("10.0.0.0/8".into()));
        let f = check(&fx.facts());
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].check, CheckId::PodRoutes);
        assert_eq!(f[0].severity, Severity::Error);
        assert_eq!(f[0].object, "pod interface eth0");
        assert_eq!(f[0].expected, "10.0.0.0/8 via 169.254.1.1 dev eth0");
        assert!(f[0].problem.contains("10.0.0.0/8"), "{}", f[0].problem);
        assert!(
            f[0].found
                .contains("192.168.0.0/16 via 169.254.1.1 dev eth0"),
            "{}",
            f[0].found
        );
        // Both missing: two findings, each naming its route.
        fx.pod_mut().routes.retain(|r| r.dst_len == 32);
        let f = check(&fx.facts());
        assert_eq!(f.len(), 2);
        assert!(f[1].expected.starts_with("192.168.0.0/16 via"));
    }

    #[test]
    fn custom_route_via_another_gateway_or_device_is_missing() {
        let mut fx = host_local_custom(&["10.0.0.0/8"], false);
        let r = fx.pod_mut().routes.last_mut().unwrap();
        r.gateway = Some("10.244.0.1".parse().unwrap());
        assert_eq!(check(&fx.facts()).len(), 1);
        let mut fx = host_local_custom(&["10.0.0.0/8"], false);
        fx.pod_mut().routes.last_mut().unwrap().oif = Some(99);
        assert_eq!(check(&fx.facts()).len(), 1);
    }

    #[test]
    fn with_include_default_routes_the_defaults_are_needed_too() {
        let mut fx = host_local_custom(&["10.0.0.0/8"], true);
        assert!(run_pod_checks(&fx.facts(), |_| None).is_empty());
        fx.pod_mut().routes.retain(|r| !r.is_default());
        let f = run_pod_checks(&fx.facts(), |_| None);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].check, CheckId::PodDefaultRoute);
        assert_eq!(f[0].severity, Severity::Error);
    }

    #[test]
    fn ipv6_custom_routes_go_via_the_host_link_local() {
        let mut fx = host_local_custom(&["10.0.0.0/8", "fd00:99::/48"], false);
        make_dual_custom(&mut fx, "fd00:99::/48");
        assert!(run_pod_checks(&fx.facts(), |_| None).is_empty());
        fx.pod_mut().routes.last_mut().unwrap().gateway = Some("fe80::1".parse().unwrap());
        let f = check(&fx.facts());
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].expected, format!("fd00:99::/48 via {LL} dev eth0"));
    }

    #[test]
    fn routes_of_a_family_the_pod_lacks_are_not_expected() {
        // An IPv6 dst in ipam.routes on an IPv4-only pod: Calico skips it ("Skipping non-IPv4").
        let fx = host_local_custom(&["10.0.0.0/8", "fd00:99::/48"], false);
        assert!(check(&fx.facts()).is_empty());
    }

    #[test]
    fn ecmp_custom_route_counts_by_its_next_hops() {
        let mut fx = host_local_custom(&["10.0.0.0/8"], false);
        let r = fx.pod_mut().routes.last_mut().unwrap();
        r.gateway = None;
        r.oif = None;
        r.nexthops = vec![
            crate::inspect::NextHop {
                gateway: Some("169.254.1.1".parse().unwrap()),
                oif: Some(POD_IDX),
            },
            crate::inspect::NextHop {
                gateway: Some("10.1.1.1".parse().unwrap()),
                oif: Some(98),
            },
        ];
        assert!(check(&fx.facts()).is_empty());
        fx.pod_mut().routes.last_mut().unwrap().nexthops.remove(0);
        let f = check(&fx.facts());
        assert!(
            f[0].found.contains("nexthop via 10.1.1.1"),
            "{}",
            f[0].found
        );
    }
}
