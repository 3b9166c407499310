//! `host-veth` (doctor): a host `cali*` interface whose pod namespace was not found. ADD is
//! given the pod's namespace, so only `doctor`, which starts from the host's interfaces, has
//! this case: a leftover of a deleted sandbox, or namespaces mounted where doctor did not look.

use super::{CheckId, Finding, Severity};
use crate::inspect::{is_calico_kind, Link};

/// `veth`: a host interface with the doctor's prefix whose peer's namespace no mount or
/// process on this host holds (or that is no veth at all).
pub fn check(veth: &Link) -> Vec<Finding> {
    // A netkit pair (Calico's `device_type: "netkit"`) has a peer like a veth: the kernel
    // reports its IFLA_LINK and IFLA_LINK_NETNSID the same way (netkit_get_iflink,
    // netkit_get_link_net).
    let kind = veth.kind.as_deref();
    let found = match (is_calico_kind(kind), veth.peer_netnsid) {
        (true, Some(id)) => {
            format!("peer in namespace id {id}, which no mount or process here holds")
        }
        (true, None) => "its peer is in this (the host) namespace".into(),
        (false, _) => format!(
            "not a veth or netkit device (kind {})",
            kind.unwrap_or("none")
        ),
    };
    vec![Finding::new(
        CheckId::HostVeth,
        format!("host veth {}", veth.name),
        "the pod namespace at the other end of the veth was not found",
        "a network namespace bind-mounted under /run/netns or held by a process",
        found,
        "a leftover of a pod whose sandbox is gone (delete the interface if no pod uses it), or \
         the runtime mounts namespaces elsewhere: pass --netns-dir",
    )
    // No pod is known to be broken: a warning, whatever host-veth's default.
    .at(Severity::Warn)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(kind: Option<&str>, nsid: Option<i32>) -> Link {
        Link {
            index: 7,
            name: "cali0123456789a".into(),
            kind: kind.map(String::from),
            mac: None,
            up: true,
            lower_up: true,
            peer_index: Some(2),
            peer_netnsid: nsid,
            mtu: None,
        }
    }

    #[test]
    fn says_why_the_peer_was_not_found() {
        let f = check(&link(Some("veth"), Some(4)));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].check, CheckId::HostVeth);
        assert_eq!(f[0].severity, Severity::Warn);
        assert_eq!(f[0].object, "host veth cali0123456789a");
        assert!(f[0].found.contains("namespace id 4"), "{}", f[0].found);
        assert!(check(&link(Some("veth"), None))[0]
            .found
            .contains("host) namespace"));
        assert_eq!(
            check(&link(Some("bridge"), None))[0].found,
            "not a veth or netkit device (kind bridge)"
        );
    }

    #[test]
    fn a_netkit_host_end_is_judged_like_a_veth() {
        let f = check(&link(Some("netkit"), Some(4)));
        assert!(f[0].found.contains("namespace id 4"), "{}", f[0].found);
        assert!(!f[0].found.contains("not a veth"), "{}", f[0].found);
        assert!(check(&link(Some("netkit"), None))[0]
            .found
            .contains("host) namespace"));
    }
}
