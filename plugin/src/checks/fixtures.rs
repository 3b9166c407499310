//! Healthy Calico wiring as gathered facts; tests break one piece at a time.

use super::PodFacts;
use crate::inspect::calico_conf::CalicoConf;
use crate::inspect::hostnet::{GatewayRoute, HostNet};
use crate::inspect::*;
use std::net::IpAddr;

pub const POD_IDX: u32 = 3;
pub const VETH_IDX: u32 = 10;
pub const VETH: &str = "cali1234567890a";
pub const UPLINK_IDX: u32 = 2;
pub const LL: &str = "fe80::ecee:eeff:feee:eeee";

pub struct Fixture {
    pub target: Target,
    pub pod: Result<PodView, NetnsProblem>,
    pub host: HostView,
    pub calico: Option<CalicoConf>,
    pub probe: Option<crate::inspect::probe::ProbeOutcome>,
}

impl Fixture {
    pub fn facts(&self) -> PodFacts<'_> {
        PodFacts {
            target: &self.target,
            pod: &self.pod,
            host: &self.host,
            calico: self.calico.as_ref(),
            probe: self.probe.as_ref(),
        }
    }
    pub fn pod_mut(&mut self) -> &mut PodView {
        self.pod.as_mut().expect("fixture pod view")
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("fixture ip")
}

pub fn route(dst: Option<&str>, gw: Option<&str>, oif: u32, scope_link: bool) -> Route {
    let dst = dst.map(|d| d.parse().expect("fixture cidr"));
    let dst_len = dst.map(|d: ipnetwork::IpNetwork| d.prefix()).unwrap_or(0);
    Route {
        v6: dst
            .map(|d| d.is_ipv6())
            .unwrap_or_else(|| gw.is_some_and(|g| g.contains(':'))),
        dst,
        dst_len,
        gateway: gw.map(ip),
        oif: Some(oif),
        scope_link,
        unicast: true,
        table: 254,
        ..Route::default()
    }
}

pub fn healthy_v4() -> Fixture {
    let pod_link = Link {
        index: POD_IDX,
        name: "eth0".into(),
        kind: Some("veth".into()),
        mac: Some(vec![0x0a, 0x58, 1, 2, 3, 4]),
        up: true,
        lower_up: true,
        peer_index: Some(VETH_IDX),
        peer_netnsid: Some(0),
        mtu: Some(1450),
    };
    let veth = Link {
        index: VETH_IDX,
        name: VETH.into(),
        kind: Some("veth".into()),
        mac: Some(vec![0xee; 6]),
        up: true,
        lower_up: true,
        peer_index: Some(POD_IDX),
        peer_netnsid: Some(1),
        mtu: Some(1450),
    };
    let sysctl = |k: &str| SysctlRead {
        key: k.to_string(),
        value: Ok("1".into()),
    };
    Fixture {
        target: Target {
            netns: "/run/netns/pod".into(),
            ifname: "eth0".into(),
            pod_ips: vec!["10.244.1.5/32".parse().expect("cidr")],
            host_ifaces: vec![VETH.into()],
            ..Target::default()
        },
        pod: Ok(PodView {
            link: Some(pod_link),
            addrs: vec![Addr {
                index: POD_IDX,
                ip: ip("10.244.1.5"),
                prefix_len: 32,
            }],
            routes: vec![
                route(Some("169.254.1.1/32"), None, POD_IDX, true),
                route(None, Some("169.254.1.1"), POD_IDX, false),
            ],
            neighbours: vec![],
        }),
        host: HostView {
            veth_by_name: Some(veth.clone()),
            veth_by_peer: Some(veth),
            veth_v6_link_local: vec![],
            sysctls: vec![
                sysctl(&format!("net.ipv4.conf.{VETH}.proxy_arp")),
                sysctl(&format!("net.ipv4.conf.{VETH}.forwarding")),
            ],
            routes_to_pod: vec![RouteLookup {
                ip: ip("10.244.1.5"),
                route: Some(route(Some("10.244.1.5/32"), None, VETH_IDX, true)),
                oif_name: None,
            }],
            net: HostNet {
                gateway_v4: Some(GatewayRoute::Route(route(
                    None,
                    Some("192.168.0.1"),
                    UPLINK_IDX,
                    false,
                ))),
                ..HostNet::default()
            },
        },
        calico: Some(calico_ipam()),
        probe: None,
    }
}

/// Calico's entry of a default calico-ipam install.
pub fn calico_ipam() -> CalicoConf {
    CalicoConf {
        path: "/etc/cni/net.d/10-calico.conflist".into(),
        ipam_type: "calico-ipam".into(),
        ..CalicoConf::default()
    }
}

/// Canal / host-local with `ipam.routes`: the pod has a route per IPv4 dst via 169.254.1.1,
/// and the default route only with `include_default_routes`.
pub fn host_local_custom(dsts: &[&str], include_default_routes: bool) -> Fixture {
    let mut fx = healthy_v4();
    fx.calico = Some(CalicoConf {
        ipam_type: "host-local".into(),
        host_local_routes: dsts.iter().map(|d| d.parse().expect("cidr")).collect(),
        host_local_subnets: vec![Some(calico_conf::Families::V4)],
        include_default_routes,
        ..calico_ipam()
    });
    let pod = fx.pod_mut();
    if !include_default_routes {
        pod.routes.retain(|r| !r.is_default());
    }
    for d in dsts.iter().filter(|d| !d.contains(':')) {
        pod.routes
            .push(route(Some(d), Some("169.254.1.1"), POD_IDX, false));
    }
    fx
}

/// Gives a host-local fixture an IPv6 address, wired as Calico does, with `dst` via the host
/// end's link-local as its one IPv6 route.
pub fn make_dual_custom(fx: &mut Fixture, dst: &str) {
    let dual = healthy_dual();
    fx.target.pod_ips = dual.target.pod_ips.clone();
    fx.host = dual.host;
    let pod = fx.pod_mut();
    pod.addrs.push(Addr {
        index: POD_IDX,
        ip: ip("fd00:10::5"),
        prefix_len: 128,
    });
    pod.routes.push(route(Some(dst), Some(LL), POD_IDX, false));
}

pub fn healthy_dual() -> Fixture {
    let mut fx = healthy_v4();
    fx.target
        .pod_ips
        .push("fd00:10::5/128".parse().expect("cidr"));
    let pod = fx.pod_mut();
    pod.addrs.push(Addr {
        index: POD_IDX,
        ip: ip("fd00:10::5"),
        prefix_len: 128,
    });
    pod.routes.push(route(None, Some(LL), POD_IDX, false));
    fx.host.veth_v6_link_local = vec![LL.parse().expect("ll")];
    for k in ["proxy_ndp", "forwarding"] {
        fx.host.sysctls.push(SysctlRead {
            key: format!("net.ipv6.conf.{VETH}.{k}"),
            value: Ok("1".into()),
        });
    }
    fx.host.routes_to_pod.push(RouteLookup {
        ip: ip("fd00:10::5"),
        route: Some(route(Some("fd00:10::5/128"), None, VETH_IDX, true)),
        oif_name: None,
    });
    fx
}
