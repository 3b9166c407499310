//! `pod-arp`: the pod's neighbour entry for 169.254.1.1 points at the host veth's MAC. A stale
//! entry (the host end's MAC changed after the pod resolved it, or a static entry) sends every
//! packet to a MAC nobody answers to.

use super::{CheckId, Finding, PodFacts, CALICO_GATEWAY_V4};
use crate::inspect::format_mac;
use std::net::IpAddr;

/// Neighbour states that carry no usable MAC.
const NUD_INCOMPLETE: u16 = 0x01;
const NUD_FAILED: u16 = 0x20;

pub fn check(f: &PodFacts) -> Vec<Finding> {
    let (Some(pod), Some(veth)) = (f.pod(), f.host.veth()) else {
        return vec![];
    };
    let Some(want) = &veth.mac else {
        return vec![];
    };
    let gw = IpAddr::V4(CALICO_GATEWAY_V4);
    pod.neighbours
        .iter()
        .filter(|n| n.ip == gw && n.state & (NUD_INCOMPLETE | NUD_FAILED) == 0)
        .filter_map(|n| {
            let have = n.mac.as_ref()?;
            (have != want).then(|| {
                Finding::new(
                    CheckId::PodArp,
                    f.pod_object(),
                    format!("ARP entry for 169.254.1.1 points at {}, not at the host veth", format_mac(have)),
                    format!("169.254.1.1 lladdr {} (the MAC of {})", format_mac(want), veth.name),
                    format!("169.254.1.1 lladdr {}", format_mac(have)),
                    format!(
                        "the pod sends every packet to a MAC nobody answers to: flush it in the pod \
                         (nsenter --net=<pod netns> ip neigh flush dev {}) and find what changed the host \
                         veth's MAC (see host-veth-mac)",
                        f.target.ifname
                    ),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixtures::*;
    use crate::inspect::Neighbour;

    fn neigh(mac: [u8; 6], state: u16) -> Neighbour {
        Neighbour {
            index: POD_IDX,
            ip: "169.254.1.1".parse().unwrap(),
            mac: Some(mac.to_vec()),
            state,
        }
    }

    #[test]
    fn matching_or_absent_entry_is_quiet() {
        let mut fx = healthy_v4();
        assert!(check(&fx.facts()).is_empty());
        fx.pod_mut().neighbours.push(neigh([0xee; 6], 0x02));
        assert!(check(&fx.facts()).is_empty());
    }

    #[test]
    fn stale_entry_fires_but_failed_one_does_not() {
        let mut fx = healthy_v4();
        fx.pod_mut()
            .neighbours
            .push(neigh([2, 0, 0, 0, 0, 9], 0x80));
        let f = check(&fx.facts());
        assert_eq!(f.len(), 1);
        assert!(f[0].problem.contains("02:00:00:00:00:09"));
        fx.pod_mut().neighbours[0].state = NUD_FAILED;
        assert!(check(&fx.facts()).is_empty());
    }
}
