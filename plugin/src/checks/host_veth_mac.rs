//! `host-veth-mac`: the host end has MAC ee:ee:ee:ee:ee:ee. Calico only warns when it cannot
//! set it, so this check defaults to warn. (Calico's old Docker driver put the ee MAC on the
//! container's cali0; under Kubernetes it is on the host end.)

use super::{CheckId, Finding, PodFacts, CALICO_HOST_MAC};
use crate::inspect::format_mac;

pub fn check(f: &PodFacts) -> Vec<Finding> {
    let Some(veth) = f.host.veth() else {
        return vec![];
    };
    if veth.mac.as_deref() == Some(&CALICO_HOST_MAC[..]) {
        return vec![];
    }
    vec![Finding::new(
        CheckId::HostVethMac,
        format!("host veth {}", veth.name),
        "MAC is not Calico's ee:ee:ee:ee:ee:ee",
        format_mac(&CALICO_HOST_MAC),
        veth.mac_string(),
        "Calico sets this MAC and only warns in its CNI log ('failed to Set MAC') when it cannot; \
         traffic can still flow, but a MAC that changes (udev/systemd-networkd MACAddressPolicy, \
         NetworkManager) breaks the pod's ARP cache: make those tools ignore cali* interfaces",
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixtures::*;
    use crate::checks::Severity;

    #[test]
    fn ee_mac_is_quiet_other_mac_warns() {
        let mut fx = healthy_v4();
        assert!(check(&fx.facts()).is_empty());
        fx.host.veth_by_name.as_mut().unwrap().mac = Some(vec![0x02, 0x42, 0xac, 0x11, 0, 2]);
        let f = check(&fx.facts());
        assert_eq!(f[0].severity, Severity::Warn);
        assert_eq!(f[0].found, "02:42:ac:11:00:02");
        assert_eq!(f[0].expected, "ee:ee:ee:ee:ee:ee");
    }
}
