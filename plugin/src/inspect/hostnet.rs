//! Node-wide network facts the pod checks judge: the host's route to Calico's pod gateway,
//! Calico's tunnel devices, the uplink. The same for every pod of the node, so `doctor`
//! gathers them once per scan; ADD gathers them once per call, with targeted requests only
//! (a link by name per tunnel device, one FIB lookup each for the gateway and the uplink).

use super::netlink::Netlink;
use super::{InspectError, Link, Route};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Calico's tunnel devices, by the names Felix gives them: `tunl0` (IPIP; the kernel's own
/// fallback device, which Felix configures), `vxlan.calico` / `vxlan-v6.calico`
/// (felix/config/config_params.go has no knob for those) and `wireguard.cali` / `wg-v6.cali`
/// (`WireguardInterfaceName`, `WireguardInterfaceNameV6` defaults in config_params.go).
pub const TUNNEL_DEVICES: &[&str] = &[
    "tunl0",
    "vxlan.calico",
    "vxlan-v6.calico",
    "wireguard.cali",
    "wg-v6.cali",
];

/// Destinations no one routes specially (RFC 5737 / RFC 3849 documentation ranges): their FIB
/// lookup lands on the default route. 0.0.0.0 cannot stand in: the kernel's output lookup
/// turns a zero destination into a loopback one.
pub const DEFAULT_PROBE_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const DEFAULT_PROBE_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

/// A Calico tunnel device that exists on the host, with its addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tunnel {
    pub link: Link,
    pub addrs: Vec<IpAddr>,
}

/// What the host's FIB gives for 169.254.1.1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayRoute {
    /// The entry that covers it.
    Route(Route),
    /// No usable route: the errno of the lookup (ENETUNREACH: none at all; EHOSTUNREACH,
    /// EACCES, EINVAL: an unreachable, prohibit or blackhole route).
    NoRoute(i32),
}

/// The uplink of one family: the device of the route to a default destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uplink {
    pub link: Link,
    pub route: Route,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostNet {
    /// `None` when not looked up (no IPv4 pod: IPv6 has no dummy gateway).
    pub gateway_v4: Option<GatewayRoute>,
    /// The tunnel devices of [`TUNNEL_DEVICES`] that exist, up or not.
    pub tunnels: Vec<Tunnel>,
    /// `None` when not looked up, or when the host has no route to a default destination.
    pub uplink_v4: Option<Uplink>,
    pub uplink_v6: Option<Uplink>,
}

impl HostNet {
    pub fn tunnel(&self, name: &str) -> Option<&Tunnel> {
        self.tunnels.iter().find(|t| t.link.name == name)
    }
}

/// Gathers the node-wide facts for pods of the given families.
pub fn gather(nl: &mut Netlink, v4: bool, v6: bool) -> Result<HostNet, InspectError> {
    let mut net = HostNet::default();
    if v4 {
        let gw = IpAddr::V4(crate::checks::CALICO_GATEWAY_V4);
        net.gateway_v4 = Some(match nl.route_used(gw)? {
            Ok(r) => GatewayRoute::Route(r),
            Err(errno) => GatewayRoute::NoRoute(errno),
        });
        net.uplink_v4 = uplink(nl, IpAddr::V4(DEFAULT_PROBE_V4))?;
    }
    if v6 {
        net.uplink_v6 = uplink(nl, IpAddr::V6(DEFAULT_PROBE_V6))?;
    }
    if v4 || v6 {
        for name in TUNNEL_DEVICES {
            let Some(link) = nl.link_by_name(name)? else {
                continue;
            };
            let addrs = nl
                .addresses(Some(link.index))?
                .into_iter()
                .map(|a| a.ip)
                .collect();
            net.tunnels.push(Tunnel { link, addrs });
        }
    }
    Ok(net)
}

/// The device the host would send `probe` out of (the first path's, for a multipath route).
fn uplink(nl: &mut Netlink, probe: IpAddr) -> Result<Option<Uplink>, InspectError> {
    let Ok(route) = nl.route_used(probe)? else {
        return Ok(None);
    };
    if route.local {
        return Ok(None);
    }
    let Some(oif) = route.paths().into_iter().find_map(|p| p.oif) else {
        return Ok(None);
    };
    Ok(nl
        .link_by_index(oif)?
        .filter(is_uplink)
        .map(|link| Uplink { link, route }))
}

/// A default route out of one of Calico's own tunnels (WireGuard host encryption, a pool
/// covering the probe) says nothing about the underlay: no uplink is known then.
fn is_uplink(link: &Link) -> bool {
    !TUNNEL_DEVICES.contains(&link.name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tunnel_is_not_an_uplink() {
        let named = |n: &str| Link {
            name: n.into(),
            ..Link::default()
        };
        assert!(is_uplink(&named("eth0")));
        assert!(!is_uplink(&named("wireguard.cali")));
        assert!(!is_uplink(&named("vxlan.calico")));
    }
}
