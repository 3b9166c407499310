//! `pod-default-route`: IPv4 `default via 169.254.1.1 dev <ifname>`; IPv6 `default via <host veth
//! link-local> dev <ifname>` (with the ee MAC that is fe80::ecee:eeff:feee:eeee).

use super::{pod_routes_text, CheckId, Finding, PodFacts, CALICO_GATEWAY_V4, CALICO_UNFINISHED};
use std::net::IpAddr;

pub fn check(f: &PodFacts) -> Vec<Finding> {
    let Some(link) = f.pod_link() else {
        return vec![];
    };
    let routes = f.pod().map(|p| p.routes.as_slice()).unwrap_or_default();
    let defaults = |v6: bool| {
        routes
            .iter()
            .filter(move |r| r.v6 == v6 && r.is_default() && r.oif == Some(link.index))
    };
    let mut out = Vec::new();
    if f.target.has_v4() {
        let gw = IpAddr::V4(CALICO_GATEWAY_V4);
        if !defaults(false).any(|r| r.gateway == Some(gw)) {
            out.push(Finding::new(
                CheckId::PodDefaultRoute,
                f.pod_object(),
                "IPv4 default route via 169.254.1.1 is missing in the pod",
                format!("default via 169.254.1.1 dev {}", link.name),
                pod_routes_text(f, false),
                format!("the pod has no way out. {CALICO_UNFINISHED}"),
            ));
        }
    }
    if f.target.has_v6() {
        let lls = &f.host.veth_v6_link_local;
        let expected = match (lls.first(), f.host.veth()) {
            (Some(ll), _) => format!("default via {ll} dev {}", link.name),
            (None, Some(v)) => format!("default via <link-local of {}> dev {}", v.name, link.name),
            (None, None) => format!(
                "default via <link-local of the host veth> dev {}",
                link.name
            ),
        };
        let ok = defaults(true).any(|r| match r.gateway {
            Some(IpAddr::V6(g)) => lls.contains(&g),
            _ => false,
        });
        if !ok {
            let mut found = pod_routes_text(f, true);
            if lls.is_empty() && f.host.veth().is_some() {
                found.push_str(
                    "; the host veth has no IPv6 link-local address (is IPv6 disabled on it?)",
                );
            }
            out.push(Finding::new(
                CheckId::PodDefaultRoute,
                f.pod_object(),
                "IPv6 default route via the host veth's link-local address is missing in the pod",
                expected,
                found,
                format!("the pod has no IPv6 way out. {CALICO_UNFINISHED}"),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixtures::*;

    #[test]
    fn healthy_is_quiet() {
        assert!(check(&healthy_v4().facts()).is_empty());
        assert!(check(&healthy_dual().facts()).is_empty());
    }

    #[test]
    fn v4_default_missing_or_wrong_gateway() {
        let mut fx = healthy_v4();
        fx.pod_mut().routes.retain(|r| !r.is_default());
        let f = check(&fx.facts());
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].expected, "default via 169.254.1.1 dev eth0");
        let mut fx = healthy_v4();
        fx.pod_mut().routes[1].gateway = Some("10.0.0.1".parse().unwrap());
        let f = check(&fx.facts());
        assert!(
            f[0].found.contains("default via 10.0.0.1 dev eth0"),
            "{}",
            f[0].found
        );
    }

    #[test]
    fn v6_default_must_use_host_link_local() {
        let mut fx = healthy_dual();
        fx.pod_mut().routes.last_mut().unwrap().gateway = Some("fe80::1".parse().unwrap());
        let f = check(&fx.facts());
        assert_eq!(f.len(), 1);
        assert!(f[0].expected.contains(LL), "{}", f[0].expected);
        assert!(f[0].found.contains("fe80::1"));
    }

    #[test]
    fn v6_host_without_link_local_is_explained() {
        let mut fx = healthy_dual();
        fx.host.veth_v6_link_local.clear();
        let f = check(&fx.facts());
        assert!(f[0].found.contains("no IPv6 link-local"), "{}", f[0].found);
    }
}
