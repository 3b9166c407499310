//! `host-proxy-arp`: `net.ipv4.conf.<veth>.proxy_arp` = 1 (and `net.ipv6.conf.<veth>.proxy_ndp`
//! = 1 for IPv6 pods): the host answers the pod's ARP/ND for the fake gateway.

use super::{CheckId, Finding, PodFacts};

pub fn check(f: &PodFacts) -> Vec<Finding> {
    sysctl_findings(
        f,
        CheckId::HostProxyArp,
        &["proxy_arp", "proxy_ndp"],
        |veth| {
            format!(
            "without proxy ARP/NDP the host does not answer the pod's ARP for 169.254.1.1 and the pod \
             cannot send a packet. Calico's CNI plugin sets it; something reset it: check for tools \
             that manage sysctls or interfaces (NetworkManager, systemd-networkd, sysctl --system) and \
             make them ignore cali* interfaces; to repair now: sysctl -w net.ipv4.conf.{veth}.proxy_arp=1"
        )
        },
    )
}

/// Findings for per-veth sysctls whose last key component is in `settings` and is not "1".
pub(crate) fn sysctl_findings(
    f: &PodFacts,
    id: CheckId,
    settings: &[&str],
    remedy: impl Fn(&str) -> String,
) -> Vec<Finding> {
    let Some(veth) = f.host.veth() else {
        return vec![];
    };
    f.host
        .sysctls
        .iter()
        .filter(|s| {
            s.key
                .rsplit('.')
                .next()
                .is_some_and(|k| settings.contains(&k))
        })
        .filter_map(|s| {
            let found = match &s.value {
                Ok(v) if v == "1" => return None,
                Ok(v) => v.clone(),
                Err(e) => format!("unreadable ({e})"),
            };
            Some(Finding::new(
                id,
                format!("host veth {}", veth.name),
                format!("{} is not 1", s.key),
                "1",
                found,
                remedy(&veth.name),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixtures::*;

    #[test]
    fn healthy_is_quiet() {
        assert!(check(&healthy_dual().facts()).is_empty());
    }

    #[test]
    fn zero_proxy_arp_fires_and_names_the_key() {
        let mut fx = healthy_dual();
        for s in &mut fx.host.sysctls {
            if s.key.ends_with("proxy_arp") || s.key.ends_with("proxy_ndp") {
                s.value = Ok("0".into());
            }
        }
        let f = check(&fx.facts());
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].object, format!("host veth {VETH}"));
        assert_eq!(
            f[0].problem,
            format!("net.ipv4.conf.{VETH}.proxy_arp is not 1")
        );
        assert_eq!(
            f[1].problem,
            format!("net.ipv6.conf.{VETH}.proxy_ndp is not 1")
        );
        assert_eq!(f[0].found, "0");
    }

    #[test]
    fn unreadable_is_a_finding() {
        let mut fx = healthy_v4();
        fx.host.sysctls[0].value = Err("No such file".into());
        assert!(check(&fx.facts())[0].found.contains("unreadable"));
    }
}
