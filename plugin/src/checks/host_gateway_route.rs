//! `host-gateway-route`: the host has a route covering 169.254.1.1 that does not go out the
//! pod's own host end. The pod's gateway is answered by proxy ARP on the host end, and the
//! kernel answers a proxy ARP request only when it has a unicast route to the target that
//! leaves by another device (net/ipv4/arp.c `arp_process`: `rt->rt_type == RTN_UNICAST` and
//! `arp_fwd_proxy`: the route's device is not the one the request came in on). Without one
//! the pod's gateway never resolves: "Calico needs a default gateway on the host in order
//! for proxy_arp to function" (calico#7866). IPv6 has no dummy gateway: not applicable.

use super::{describe_route, CheckId, Finding, PodFacts, CALICO_GATEWAY_V4};
use crate::inspect::hostnet::GatewayRoute;

const REMEDY: &str = "give the host a default route (or any route covering 169.254.1.1) out of a \
     device other than the pod's: Calico's pods send everything to 169.254.1.1, and the host answers \
     their ARP for it by proxy_arp only when it has a route to that address leaving by another device";

pub fn check(f: &PodFacts) -> Vec<Finding> {
    if !f.target.has_v4() {
        return vec![];
    }
    let Some(gw) = &f.host.net.gateway_v4 else {
        return vec![];
    };
    let veth = f.host.veth();
    let found = match gw {
        GatewayRoute::NoRoute(errno) => match *errno {
            libc::EHOSTUNREACH => format!("an unreachable route covers {CALICO_GATEWAY_V4}"),
            libc::EACCES => format!("a prohibit route covers {CALICO_GATEWAY_V4}"),
            libc::EINVAL => format!("a blackhole route covers {CALICO_GATEWAY_V4}"),
            _ => format!("no route covers {CALICO_GATEWAY_V4} (no default route)"),
        },
        GatewayRoute::Route(r) => {
            // Known only with the host end (host-veth reports its absence).
            let Some(veth) = veth else {
                return vec![];
            };
            let only_veth = r.paths().iter().all(|p| p.oif == Some(veth.index));
            if r.unicast && !only_veth {
                return vec![];
            }
            let name_of = |i: u32| (i == veth.index).then(|| veth.name.clone());
            let route = describe_route(r, name_of);
            if r.unicast {
                format!("the only route covering {CALICO_GATEWAY_V4} goes out the pod's own host end: {route}")
            } else {
                format!("the route covering {CALICO_GATEWAY_V4} is not a unicast route: {route}")
            }
        }
    };
    vec![Finding::new(
        CheckId::HostGatewayRoute,
        "host route table",
        format!(
            "the host has no usable route to {CALICO_GATEWAY_V4}: proxy ARP stays silent and the pod's gateway never resolves"
        ),
        match veth {
            Some(v) => format!("a unicast route covering {CALICO_GATEWAY_V4} out of a device other than {}", v.name),
            None => format!("a unicast route covering {CALICO_GATEWAY_V4}"),
        },
        found,
        REMEDY,
    )]
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
    fn no_route_fires() {
        for (errno, word) in [
            (libc::ENETUNREACH, "no route"),
            (libc::EHOSTUNREACH, "unreachable"),
            (libc::EACCES, "prohibit"),
            (libc::EINVAL, "blackhole"),
        ] {
            let mut fx = healthy_v4();
            fx.host.net.gateway_v4 = Some(GatewayRoute::NoRoute(errno));
            let f = check(&fx.facts());
            assert_eq!(f.len(), 1);
            assert!(f[0].found.contains(word), "{:?}", f[0]);
            assert!(f[0].remedy.contains("default route"));
        }
    }

    #[test]
    fn a_route_only_via_the_host_end_fires() {
        let mut fx = healthy_v4();
        fx.host.net.gateway_v4 = Some(GatewayRoute::Route(route(
            Some("169.254.1.1/32"),
            None,
            VETH_IDX,
            true,
        )));
        let f = check(&fx.facts());
        assert_eq!(f.len(), 1);
        assert!(f[0].found.contains(VETH), "{:?}", f[0]);
        // Another pod's host end, or a covering subnet elsewhere, serves.
        fx.host.net.gateway_v4 = Some(GatewayRoute::Route(route(
            Some("169.254.0.0/16"),
            None,
            77,
            true,
        )));
        assert!(check(&fx.facts()).is_empty());
        // A multipath route with one path elsewhere serves too.
        let mut r = route(None, None, VETH_IDX, false);
        r.nexthops = vec![
            crate::inspect::NextHop {
                gateway: None,
                oif: Some(VETH_IDX),
            },
            crate::inspect::NextHop {
                gateway: None,
                oif: Some(UPLINK_IDX),
            },
        ];
        fx.host.net.gateway_v4 = Some(GatewayRoute::Route(r));
        assert!(check(&fx.facts()).is_empty());
    }

    #[test]
    fn ipv6_only_and_not_looked_up_are_quiet() {
        let mut fx = healthy_dual();
        fx.target.pod_ips.retain(|i| i.is_ipv6());
        fx.host.net.gateway_v4 = Some(GatewayRoute::NoRoute(libc::ENETUNREACH));
        assert!(check(&fx.facts()).is_empty());
        let mut fx = healthy_v4();
        fx.host.net.gateway_v4 = None;
        assert!(check(&fx.facts()).is_empty());
    }
}
