//! `host-veth`: the host end of the pod's veth is found (the prevResult's host interface,
//! cross-checked with the pod interface's peer index), is a veth, and is up.

use super::{CheckId, Finding, PodFacts, CALICO_UNFINISHED};

pub fn check(f: &PodFacts) -> Vec<Finding> {
    let named = f.target.host_veth.as_deref();
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
        if link.peer_index.is_none() || link.kind.as_deref() != Some("veth") {
            out.push(mk(
                f.pod_object(),
                "pod interface is not one end of a veth pair",
                "a veth whose peer is the host's cali* interface".into(),
                format!("interface kind {}", link.kind.as_deref().unwrap_or("none")),
            ));
            return out;
        }
    }
    let veth = match (named, by_name, by_peer) {
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
        (_, Some(v), _) | (None, None, Some(v)) => v,
        (None, None, None) => {
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
    if veth.kind.as_deref() != Some("veth") {
        out.push(mk(
            object.clone(),
            "host end is not a veth",
            "kind veth".into(),
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
        fx.target.host_veth = None;
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
}
