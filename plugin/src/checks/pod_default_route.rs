//! `pod-default-route`: IPv4 `default via 169.254.1.1 dev <ifname>`; IPv6 `default via <host veth
//! link-local> dev <ifname>` (with the ee MAC that is fe80::ecee:eeff:feee:eeee), for each family
//! the pod has, wherever Calico's config gives the pod default routes: always, except with
//! host-local `ipam.routes` and no `include_default_routes` (then `pod-routes` checks those).
//! A default route counts by any of its paths (ECMP, nexthop objects).

use super::pod_routes::{expected, gateway_text, via_gateway};
use super::{pod_routes_text, CheckId, Finding, PodFacts, Severity, CALICO_UNFINISHED};

pub fn check(f: &PodFacts) -> Vec<Finding> {
    let Some(link) = f.pod_link() else {
        return vec![];
    };
    let exp = expected(f);
    if !exp.defaults {
        return vec![];
    }
    let routes = f.pod().map(|p| p.routes.as_slice()).unwrap_or_default();
    let mut out = Vec::new();
    for v6 in [false, true] {
        let wanted = if v6 {
            f.target.has_v6()
        } else {
            f.target.has_v4()
        };
        if !wanted {
            continue;
        }
        let ok = routes
            .iter()
            .any(|r| r.v6 == v6 && r.is_default() && via_gateway(f, r, link));
        if ok {
            continue;
        }
        let fam = if v6 { "IPv6" } else { "IPv4" };
        let mut found = pod_routes_text(f, v6);
        if v6 && f.host.veth_v6_link_local.is_empty() && f.host.veth().is_some() {
            found.push_str(
                "; the host veth has no IPv6 link-local address (is IPv6 disabled on it?)",
            );
        }
        let problem = if v6 {
            "IPv6 default route via the host veth's link-local address is missing in the pod"
                .to_string()
        } else {
            "IPv4 default route via 169.254.1.1 is missing in the pod".to_string()
        };
        let mut finding = Finding::new(
            CheckId::PodDefaultRoute,
            f.pod_object(),
            problem,
            format!("default via {} dev {}", gateway_text(f, v6), link.name),
            found,
            format!(
                "the pod has no {}way out. {CALICO_UNFINISHED}",
                if v6 { "IPv6 " } else { "" }
            ),
        );
        // Without Calico's entry, routes via the gateway but no default may be host-local
        // `ipam.routes` doing what they should: say so, and do not fail the pod on a guess.
        let custom_looking = routes
            .iter()
            .any(|r| r.v6 == v6 && !r.is_default() && via_gateway(f, r, link));
        if !exp.known && custom_looking {
            finding = finding.at(Severity::Warn);
            finding.remedy = format!(
                "the pod has {fam} routes via its gateway but no default route, which is what \
                 Calico does with host-local ipam.routes; Calico's entry was not found in the conf \
                 dir to tell (set confDir in this plugin's config to the runtime's conf dir). If \
                 the pod should have a default route: {CALICO_UNFINISHED}"
            );
        }
        out.push(finding);
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
    fn custom_routes_without_include_need_no_default() {
        let fx = host_local_custom(&["10.0.0.0/8"], false);
        assert!(check(&fx.facts()).is_empty());
    }

    #[test]
    fn without_calicos_entry_gateway_routes_and_no_default_only_warn() {
        let mut fx = host_local_custom(&["10.0.0.0/8"], false);
        fx.calico = None;
        let f = check(&fx.facts());
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Warn);
        assert!(f[0].remedy.contains("ipam.routes"), "{}", f[0].remedy);
        // With nothing via the gateway at all, the pod is plainly unwired: an error.
        let mut fx = healthy_v4();
        fx.calico = None;
        fx.pod_mut().routes.retain(|r| !r.is_default());
        assert_eq!(check(&fx.facts())[0].severity, Severity::Error);
    }

    #[test]
    fn ecmp_and_nexthop_object_defaults_count() {
        use crate::inspect::NextHop;
        let mut fx = healthy_dual();
        let r = fx.pod_mut().routes.last_mut().unwrap();
        r.gateway = None;
        r.oif = None;
        r.nexthops = vec![
            NextHop {
                gateway: Some("fe80::99".parse().unwrap()),
                oif: Some(42),
            },
            NextHop {
                gateway: Some(LL.parse().unwrap()),
                oif: Some(POD_IDX),
            },
        ];
        assert!(check(&fx.facts()).is_empty());
        // A nexthop-object route: RTA_NH_ID, its one path resolved.
        let r = fx.pod_mut().routes.last_mut().unwrap();
        r.nh_id = Some(7);
        r.nexthops.remove(0);
        assert!(check(&fx.facts()).is_empty());
        // No path via the link-local: missing, and the paths are shown.
        fx.pod_mut().routes.last_mut().unwrap().nexthops[0].oif = Some(42);
        let f = check(&fx.facts());
        assert_eq!(f.len(), 1);
        assert!(f[0].found.contains("nhid 7 nexthop via"), "{}", f[0].found);
    }

    #[test]
    fn v6_only_pod_needs_only_the_v6_default() {
        let mut fx = healthy_dual();
        fx.target.pod_ips.retain(|i| i.is_ipv6());
        fx.pod_mut().routes.retain(|r| r.v6);
        assert!(check(&fx.facts()).is_empty());
    }

    #[test]
    fn v6_host_without_link_local_is_explained() {
        let mut fx = healthy_dual();
        fx.host.veth_v6_link_local.clear();
        let f = check(&fx.facts());
        assert!(f[0].found.contains("no IPv6 link-local"), "{}", f[0].found);
    }
}
