//! `host-ip-forward`: the node forwards IPv4 (and IPv6 where IPv6 pods exist). Pods are routed
//! through the host; with forwarding off nothing leaves the node.

use super::{CheckId, Finding, NodeFacts};

pub const IPV4: &str = "net.ipv4.ip_forward";
pub const IPV6: &str = "net.ipv6.conf.all.forwarding";

pub fn check(f: &NodeFacts) -> Vec<Finding> {
    let mut keys = vec![IPV4];
    if f.want_v6 {
        keys.push(IPV6);
    }
    keys.into_iter()
        .filter_map(|key| {
            let found = match f.sysctl(key)? {
                Ok(v) if v == "1" => return None,
                Ok(v) => v.clone(),
                Err(e) => format!("unreadable ({e})"),
            };
            Some(Finding::new(
                CheckId::HostIpForward,
                "the node",
                format!("{key} is not 1"),
                format!("{key} = 1"),
                found,
                format!(
                    "pod traffic to other nodes and the outside is routed through the host and is dropped \
                     while forwarding is off: set {key}=1 in /etc/sysctl.d/ (and find what turned it off: \
                     a hardening profile or a network manager)"
                ),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::SysctlRead;

    fn facts(v4: &str, v6: &str, want_v6: bool) -> NodeFacts {
        NodeFacts {
            sysctls: vec![
                SysctlRead {
                    key: IPV4.into(),
                    value: Ok(v4.into()),
                },
                SysctlRead {
                    key: IPV6.into(),
                    value: Ok(v6.into()),
                },
            ],
            want_v6,
            ..NodeFacts::default()
        }
    }

    #[test]
    fn fires_on_zero_and_ipv6_only_when_wanted() {
        assert!(check(&facts("1", "0", false)).is_empty());
        assert_eq!(check(&facts("1", "0", true)).len(), 1);
        let f = check(&facts("0", "1", true));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].problem, "net.ipv4.ip_forward is not 1");
        assert_eq!(f[0].found, "0");
    }
}
