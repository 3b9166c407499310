//! `pod-gateway-route`: `169.254.1.1/32 dev <ifname> scope link` in the pod, the connected route
//! that makes Calico's fake gateway reachable (IPv4 pods only).

use super::{pod_routes_text, CheckId, Finding, PodFacts, CALICO_GATEWAY_V4, CALICO_UNFINISHED};
use std::net::IpAddr;

pub fn check(f: &PodFacts) -> Vec<Finding> {
    let Some(link) = f.pod_link() else {
        return vec![];
    };
    if !f.target.has_v4() {
        return vec![];
    }
    let pod = f.pod().map(|p| p.routes.as_slice()).unwrap_or_default();
    let gw = IpAddr::V4(CALICO_GATEWAY_V4);
    let ok = pod.iter().any(|r| {
        r.dst_len == 32
            && r.dst.map(|d| d.ip()) == Some(gw)
            && r.paths().iter().any(|p| p.oif == Some(link.index))
            && r.scope_link
    });
    if ok {
        return vec![];
    }
    vec![Finding::new(
        CheckId::PodGatewayRoute,
        f.pod_object(),
        "route 169.254.1.1/32 scope link is missing in the pod",
        format!("169.254.1.1/32 dev {} scope link", link.name),
        pod_routes_text(f, false),
        format!(
            "without it the pod cannot reach its gateway 169.254.1.1 and sends nothing. {CALICO_UNFINISHED}"
        ),
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixtures::*;

    #[test]
    fn healthy_is_quiet() {
        assert!(check(&healthy_v4().facts()).is_empty());
    }

    #[test]
    fn missing_route_fires_and_lists_what_is_there() {
        let mut fx = healthy_v4();
        fx.pod_mut().routes.remove(0);
        let f = check(&fx.facts());
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].expected, "169.254.1.1/32 dev eth0 scope link");
        assert!(
            f[0].found.contains("default via 169.254.1.1 dev eth0"),
            "{}",
            f[0].found
        );
    }

    #[test]
    fn wrong_scope_or_device_fires() {
        let mut fx = healthy_v4();
        fx.pod_mut().routes[0].scope_link = false;
        assert_eq!(check(&fx.facts()).len(), 1);
        let mut fx = healthy_v4();
        fx.pod_mut().routes[0].oif = Some(99);
        assert_eq!(check(&fx.facts()).len(), 1);
    }

    #[test]
    fn v6_only_pod_needs_no_v4_gateway() {
        let mut fx = healthy_dual();
        fx.target.pod_ips.retain(|i| i.is_ipv6());
        fx.pod_mut().routes.retain(|r| r.v6);
        assert!(check(&fx.facts()).is_empty());
    }
}
