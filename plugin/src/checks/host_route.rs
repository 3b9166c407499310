//! `host-route`: each pod IP has a /32 (/128) scope-link route on the host veth, so the host
//! (and Felix's routing) can deliver to the pod.

use super::{describe_route, CheckId, Finding, PodFacts};
use crate::inspect::RouteLookup;

/// True when the lookup shows another interface claiming the IP: `ip-conflict` reports those.
pub(crate) fn is_conflict(l: &RouteLookup, veth_index: Option<u32>) -> bool {
    let Some(r) = &l.route else {
        return false;
    };
    let full = if l.ip.is_ipv4() { 32 } else { 128 };
    r.local
        || (veth_index.is_some()
            && r.dst_len == full
            && !r.paths().iter().any(|p| p.oif == veth_index))
}

pub fn check(f: &PodFacts) -> Vec<Finding> {
    let Some(veth) = f.host.veth() else {
        return vec![]; // host-veth reports it
    };
    let mut out = Vec::new();
    for l in &f.host.routes_to_pod {
        if is_conflict(l, Some(veth.index)) {
            continue;
        }
        let full = if l.ip.is_ipv4() { 32 } else { 128 };
        // IPv6 routes have no scope in the kernel (always "global"): only IPv4 can be checked for it.
        let ok = l.route.as_ref().is_some_and(|r| {
            r.dst_len == full
                && r.paths()
                    .iter()
                    .any(|p| p.oif == Some(veth.index) && p.gateway.is_none())
                && (r.scope_link || l.ip.is_ipv6())
        });
        if ok {
            continue;
        }
        let name_of = |i: u32| {
            if i == veth.index {
                Some(veth.name.clone())
            } else {
                l.oif_name.clone()
            }
        };
        let found = match &l.route {
            None => format!("no route to {} at all", l.ip),
            Some(r) => format!("the host routes {} by {}", l.ip, describe_route(r, name_of)),
        };
        out.push(Finding::new(
            CheckId::HostRoute,
            format!("host veth {}", veth.name),
            format!("host route {}/{full} scope link is missing", l.ip),
            format!("{}/{full} dev {} scope link", l.ip, veth.name),
            found,
            "without it the host cannot deliver packets to the pod. Calico's CNI plugin adds it and Felix \
             keeps it: check that calico-node is running and ready on this node, then delete the pod to \
             have it wired again",
        ));
    }
    out
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
    fn missing_route_shows_what_the_host_would_use() {
        let mut fx = healthy_v4();
        fx.host.routes_to_pod[0].route = Some(route(Some("10.244.1.0/26"), None, 1, false));
        fx.host.routes_to_pod[0].oif_name = Some("eth0".into());
        let f = check(&fx.facts());
        assert_eq!(f.len(), 1);
        assert_eq!(
            f[0].expected,
            format!("10.244.1.5/32 dev {VETH} scope link")
        );
        assert!(
            f[0].found.contains("10.244.1.0/26 dev eth0"),
            "{}",
            f[0].found
        );
    }

    #[test]
    fn no_route_at_all_and_v6() {
        let mut fx = healthy_dual();
        fx.host.routes_to_pod[1].route = None;
        let f = check(&fx.facts());
        assert_eq!(f.len(), 1);
        assert!(f[0].problem.contains("fd00:10::5/128"));
    }

    #[test]
    fn conflicts_are_left_to_ip_conflict() {
        let mut fx = healthy_v4();
        fx.host.routes_to_pod[0].route = Some(route(Some("10.244.1.5/32"), None, 5, true));
        assert!(check(&fx.facts()).is_empty());
    }

    #[test]
    fn wrong_scope_fires() {
        let mut fx = healthy_dual();
        fx.host.routes_to_pod[0].route.as_mut().unwrap().scope_link = false;
        fx.host.routes_to_pod[1].route.as_mut().unwrap().scope_link = false;
        assert_eq!(check(&fx.facts()).len(), 1, "IPv6 routes carry no scope");
    }
}
