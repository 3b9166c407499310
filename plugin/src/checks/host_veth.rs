//! `host-veth`: the host end of the pod's veth is found (of the prevResult's host interfaces, the
//! one that is the pod interface's peer), is a veth (or Calico's netkit), and is up.

use super::{CheckId, Finding, PodFacts, Severity, CALICO_UNFINISHED};
use crate::inspect::is_calico_kind;

pub fn check(f: &PodFacts) -> Vec<Finding> {
    let named = &f.target.host_ifaces;
    let pod_link = f.pod_link();
    let by_name = f.host.veth_by_name.as_ref();
    let by_peer = f.host.veth_by_peer.as_ref();
    let mk = |object: String, problem: &str, expected: String, found: String| {
        Finding::new(
            CheckId::HostVeth,
            object,
            problem,
            expected,
            found,
            CALICO_UNFINISHED,
        )
    };
    let mut out = Vec::new();

    if let Some(link) = pod_link {
        if link.peer_index.is_none() || !is_calico_kind(link.kind.as_deref()) {
            out.push(mk(
                f.pod_object(),
                "pod interface is not one end of a veth (or netkit) pair",
                "a veth (or netkit, with device_type netkit) whose peer is the host's cali* interface"
                    .into(),
                format!("interface kind {}", link.kind.as_deref().unwrap_or("none")),
            ));
            return out;
        }
    }
    // With one host interface in the result, it must be the peer (Calico names its host end);
    // with several, the others belong to other plugins (bandwidth's ifb, ...) and are left alone.
    let single = match named.as_slice() {
        [n] => Some(n.as_str()),
        _ => None,
    };
    let veth = match (single, by_name, by_peer) {
        (Some(n), None, _) => {
            let found = match by_peer {
                Some(p) => format!(
                    "no interface named {n}; the pod interface's peer on the host is {}",
                    p.name
                ),
                None => format!("no interface named {n}"),
            };
            out.push(mk(
                format!("host veth {n}"),
                "host end of the veth does not exist",
                format!("interface {n}, peer of the pod's {}", f.target.ifname),
                found,
            ));
            return out;
        }
        (Some(n), Some(a), Some(b)) if a.index != b.index => {
            out.push(mk(
                format!("host veth {n}"),
                "host veth is not the peer of the pod interface",
                format!("{n} to be the peer of the pod's {}", f.target.ifname),
                format!(
                    "the pod's {} is paired with {} (ifindex {})",
                    f.target.ifname, b.name, b.index
                ),
            ));
            return out;
        }
        (None, None, Some(b)) if !named.is_empty() => {
            // Several host interfaces and none is the peer: which one Calico meant cannot be
            // told, so this warns and goes on with the real peer.
            out.push(
                mk(
                    format!("host veth {}", b.name),
                    "none of the result's host interfaces is the pod interface's peer",
                    format!(
                        "one of {} to be the peer of the pod's {}",
                        named.join(", "),
                        f.target.ifname
                    ),
                    format!(
                        "the pod's {} is paired with {} (ifindex {})",
                        f.target.ifname, b.name, b.index
                    ),
                )
                .at(Severity::Warn),
            );
            b
        }
        (_, Some(v), _) | (None, None, Some(v)) => v,
        (_, None, None) => {
            if pod_link.is_some() {
                out.push(mk(
                    f.pod_object(),
                    "host end of the veth was not found",
                    format!(
                        "the peer of the pod's {} in the host namespace",
                        f.target.ifname
                    ),
                    format!(
                        "no host interface at index {}",
                        pod_link.and_then(|l| l.peer_index).unwrap_or_default()
                    ),
                ));
            }
            return out;
        }
    };
    let object = format!("host veth {}", veth.name);
    // The host end must point back at the pod interface.
    if let (Some(link), Some(peer)) = (pod_link, veth.peer_index) {
        if peer != link.index {
            out.push(mk(
                object.clone(),
                "host veth is not the peer of the pod interface",
                format!(
                    "{}'s peer to be the pod's {} (ifindex {})",
                    veth.name, link.name, link.index
                ),
                format!("its peer is ifindex {peer}"),
            ));
        }
    }
    if !is_calico_kind(veth.kind.as_deref()) {
        out.push(mk(
            object.clone(),
            "host end is not a veth",
            "kind veth (or netkit, with device_type netkit)".into(),
            format!("kind {}", veth.kind.as_deref().unwrap_or("none")),
        ));
    }
    if !veth.up {
        out.push(mk(
            object,
            "host veth is down",
            "state UP".into(),
            "state DOWN".into(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixtures::*;
    use crate::inspect::Link;

    #[test]
    fn healthy_is_quiet() {
        assert!(check(&healthy_v4().facts()).is_empty());
    }

    #[test]
    fn missing_named_veth() {
        let mut fx = healthy_v4();
        fx.host.veth_by_name = None;
        let f = check(&fx.facts());
        assert_eq!(f.len(), 1);
        assert!(f[0].problem.contains("does not exist"));
        assert!(f[0].found.contains(VETH), "peer named: {}", f[0].found);
    }

    #[test]
    fn prev_result_names_another_interface() {
        let mut fx = healthy_v4();
        fx.host.veth_by_peer = Some(Link {
            index: 77,
            name: "caliother".into(),
            ..fx.host.veth_by_name.clone().unwrap()
        });
        let f = check(&fx.facts());
        assert!(f[0].found.contains("caliother"), "{:?}", f[0]);
    }

    #[test]
    fn down_or_not_veth() {
        let mut fx = healthy_v4();
        fx.host.veth_by_name.as_mut().unwrap().up = false;
        assert_eq!(check(&fx.facts())[0].problem, "host veth is down");
        let mut fx = healthy_v4();
        fx.host.veth_by_name.as_mut().unwrap().kind = Some("dummy".into());
        assert_eq!(check(&fx.facts())[0].problem, "host end is not a veth");
    }

    #[test]
    fn result_without_host_interface_uses_the_peer() {
        let mut fx = healthy_v4();
        fx.target.host_ifaces.clear();
        fx.host.veth_by_name = None;
        assert!(check(&fx.facts()).is_empty());
    }

    #[test]
    fn pod_interface_not_a_veth() {
        let mut fx = healthy_v4();
        let l = fx.pod_mut().link.as_mut().unwrap();
        l.kind = Some("dummy".into());
        l.peer_index = None;
        let f = check(&fx.facts());
        assert!(f[0].problem.contains("not one end of a veth"));
    }

    fn netkit(fx: &mut Fixture) {
        fx.pod_mut().link.as_mut().unwrap().kind = Some("netkit".into());
        for l in [&mut fx.host.veth_by_name, &mut fx.host.veth_by_peer] {
            l.as_mut().unwrap().kind = Some("netkit".into());
        }
    }

    #[test]
    fn netkit_pair_is_calicos_too() {
        let mut fx = healthy_v4();
        netkit(&mut fx);
        assert!(check(&fx.facts()).is_empty());
        // The whole pod check set passes over a netkit pair with the same MAC, sysctls, routes.
        let all = crate::checks::run_pod_checks(&fx.facts(), |_| None);
        assert!(all.is_empty(), "{all:#?}");
        fx.host.veth_by_peer.as_mut().unwrap().up = false;
        fx.host.veth_by_name.as_mut().unwrap().up = false;
        assert_eq!(check(&fx.facts())[0].problem, "host veth is down");
    }

    /// The bandwidth plugin's ifb (or multus, ...) listed before Calico's host end.
    #[test]
    fn other_host_interfaces_are_left_alone() {
        let mut fx = healthy_v4();
        fx.target.host_ifaces = vec!["bwp1234567890a".into(), VETH.into()];
        assert!(check(&fx.facts()).is_empty());
        // Order does not matter either.
        fx.target.host_ifaces.reverse();
        assert!(check(&fx.facts()).is_empty());
    }

    #[test]
    fn several_host_interfaces_none_the_peer_warns_and_checks_the_peer() {
        let mut fx = healthy_v4();
        fx.target.host_ifaces = vec!["bwp1".into(), "calinotthis".into()];
        fx.host.veth_by_name = None;
        let f = check(&fx.facts());
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].severity, Severity::Warn);
        assert_eq!(f[0].object, format!("host veth {VETH}"));
        assert!(f[0].expected.contains("bwp1, calinotthis"));
        // ...and the real peer is still judged.
        fx.host.veth_by_peer.as_mut().unwrap().up = false;
        let f = check(&fx.facts());
        assert_eq!(f[1].problem, "host veth is down");
    }
}
