//! `host-forwarding`: forwarding is enabled on the host veth (per-interface
//! `net.ipv4.conf.<veth>.forwarding`, and IPv6's for IPv6 pods).

use super::host_proxy_arp::sysctl_findings;
use super::{CheckId, Finding, PodFacts};

pub fn check(f: &PodFacts) -> Vec<Finding> {
    sysctl_findings(f, CheckId::HostForwarding, &["forwarding"], |veth| {
        format!(
            "the host will not forward the pod's packets. Calico's CNI plugin enables it per veth; a \
             host-wide setting (net.ipv4.conf.default.forwarding or ip_forward=0 at boot) or a network \
             manager reset it: enable IP forwarding on the node; to repair now: \
             sysctl -w net.ipv4.conf.{veth}.forwarding=1"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixtures::*;

    #[test]
    fn off_forwarding_fires_only_for_forwarding() {
        let mut fx = healthy_dual();
        assert!(check(&fx.facts()).is_empty());
        for s in &mut fx.host.sysctls {
            s.value = Ok("0".into());
        }
        let f = check(&fx.facts());
        assert_eq!(f.len(), 2);
        assert!(f.iter().all(|x| x.problem.contains(".forwarding ")));
    }
}
