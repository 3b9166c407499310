//! `pod-interface`: CNI_IFNAME exists in the pod, is up, and carries every pod IP.

use super::{CheckId, Finding, PodFacts, CALICO_UNFINISHED};

pub fn check(f: &PodFacts) -> Vec<Finding> {
    let Some(pod) = f.pod() else {
        return vec![]; // pod-netns reports it
    };
    let object = f.pod_object();
    let Some(link) = &pod.link else {
        return vec![Finding::new(
            CheckId::PodInterface,
            object,
            "interface does not exist in the pod's network namespace",
            format!("an interface named {}", f.target.ifname),
            "no such interface",
            CALICO_UNFINISHED,
        )];
    };
    let mut out = Vec::new();
    if f.target.pod_ips.is_empty() {
        out.push(Finding::new(
            CheckId::PodInterface,
            object.clone(),
            "the previous plugin's result assigns no IP to this interface",
            format!("at least one IP for {} in prevResult.ips", f.target.ifname),
            "none",
            "calico-preflight must come after calico in the conflist, and Calico IPAM must have \
             assigned an address: look at the Calico CNI log on this node",
        ));
    }
    if !link.up {
        out.push(Finding::new(
            CheckId::PodInterface,
            object.clone(),
            "interface is down",
            "state UP",
            "state DOWN",
            CALICO_UNFINISHED,
        ));
    }
    let have: Vec<_> = pod.addrs.iter().map(|a| a.ip).collect();
    for ip in &f.target.pod_ips {
        if !have.contains(&ip.ip()) {
            let found = if have.is_empty() {
                "no addresses".to_string()
            } else {
                have.iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            out.push(Finding::new(
                CheckId::PodInterface,
                object.clone(),
                format!("pod IP {} is not assigned", ip.ip()),
                format!("{} on {}", ip, f.target.ifname),
                found,
                CALICO_UNFINISHED,
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixtures::{healthy_dual, healthy_v4};

    #[test]
    fn healthy_is_quiet() {
        assert!(check(&healthy_v4().facts()).is_empty());
        assert!(check(&healthy_dual().facts()).is_empty());
    }

    #[test]
    fn no_ips_in_result() {
        let mut fx = healthy_v4();
        fx.target.pod_ips.clear();
        let f = check(&fx.facts());
        assert_eq!(f.len(), 1);
        assert!(f[0].problem.contains("no IP"));
    }

    #[test]
    fn missing_interface() {
        let mut fx = healthy_v4();
        fx.pod_mut().link = None;
        let f = check(&fx.facts());
        assert_eq!(f.len(), 1);
        assert!(f[0].problem.contains("does not exist"));
    }

    #[test]
    fn down_interface() {
        let mut fx = healthy_v4();
        fx.pod_mut().link.as_mut().unwrap().up = false;
        let f = check(&fx.facts());
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].problem, "interface is down");
    }

    #[test]
    fn missing_v6_address_is_named() {
        let mut fx = healthy_dual();
        fx.pod_mut().addrs.retain(|a| a.ip.is_ipv4());
        let f = check(&fx.facts());
        assert_eq!(f.len(), 1);
        assert!(f[0].problem.contains("fd00:10::5"), "{:?}", f[0]);
        assert_eq!(f[0].found, "10.244.1.5");
    }
}
