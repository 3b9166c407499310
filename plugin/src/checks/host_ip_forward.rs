//! `host-ip-forward`: the node forwards each IP family its pods get. Pods are routed through the
//! host; with forwarding off nothing leaves the node. The families are the pod's own (after
//! calico), else those Calico's IPAM config assigns (first in the chain, STATUS): an IPv6-only
//! node (`assign_ipv4: "false"`, or host-local ranges all IPv6) needs no IPv4 forwarding.

use super::{CheckId, Finding, NodeFacts, Severity};
use crate::inspect::node::FamiliesFrom;

pub const IPV4: &str = "net.ipv4.ip_forward";
pub const IPV6: &str = "net.ipv6.conf.all.forwarding";

pub fn check(f: &NodeFacts) -> Vec<Finding> {
    let (fam, from) = f.families();
    let mut keys = vec![];
    if fam.v4 {
        keys.push(IPV4);
    }
    if fam.v6 {
        keys.push(IPV6);
    }
    keys.into_iter()
        .filter_map(|key| {
            let found = match f.sysctl(key)? {
                Ok(v) if v == "1" => return None,
                Ok(v) => v.clone(),
                Err(e) => format!("unreadable ({e})"),
            };
            let finding = Finding::new(
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
            );
            Some(match from {
                FamiliesFrom::Assumed => {
                    // No pod and no readable Calico entry: whether pods get IPv4 is a guess.
                    let mut w = finding.at(Severity::Warn);
                    w.remedy.push_str(
                        ". Calico's entry was not found in the conf dir, so IPv4 pods are assumed; \
                         set confDir in this plugin's config to the runtime's conf dir to know",
                    );
                    w
                }
                _ => finding,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::calico_conf::{CalicoConf, Families};
    use crate::inspect::SysctlRead;

    fn facts(v4: &str, v6: &str, pod: Option<Families>, calico: Option<CalicoConf>) -> NodeFacts {
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
            pod_families: pod,
            calico,
            ..NodeFacts::default()
        }
    }

    const DUAL: Families = Families { v4: true, v6: true };
    const V6: Families = Families {
        v4: false,
        v6: true,
    };

    fn calico_ipam(v4: Option<&str>, v6: Option<&str>) -> Option<CalicoConf> {
        Some(CalicoConf {
            ipam_type: "calico-ipam".into(),
            assign_ipv4: v4.map(String::from),
            assign_ipv6: v6.map(String::from),
            ..CalicoConf::default()
        })
    }

    #[test]
    fn after_calico_the_pods_families_decide() {
        assert!(check(&facts("1", "0", Some(Families::V4), None)).is_empty());
        assert_eq!(check(&facts("1", "0", Some(DUAL), None)).len(), 1);
        let f = check(&facts("0", "1", Some(DUAL), None));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].problem, "net.ipv4.ip_forward is not 1");
        assert_eq!(f[0].found, "0");
        assert_eq!(f[0].severity, Severity::Error);
        // An IPv6-only pod on a node that does not forward IPv4: fine. Even when Calico's
        // config says IPv4 (a pod annotation can pick the families), the pod's IPs win.
        assert!(check(&facts("0", "1", Some(V6), calico_ipam(None, None))).is_empty());
        let f = check(&facts("0", "0", Some(V6), None));
        assert_eq!(f[0].problem, "net.ipv6.conf.all.forwarding is not 1");
    }

    #[test]
    fn first_in_chain_and_status_follow_calicos_ipam_config() {
        // IPv6-only calico-ipam node, IPv4 forwarding off: nothing to say.
        let v6only = calico_ipam(Some("false"), Some("true"));
        assert!(check(&facts("0", "1", None, v6only.clone())).is_empty());
        // ...but IPv6 forwarding off there is an error.
        let f = check(&facts("0", "0", None, v6only));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].problem, "net.ipv6.conf.all.forwarding is not 1");
        assert_eq!(f[0].severity, Severity::Error);
        // Calico's defaults: IPv4 only.
        let f = check(&facts("0", "0", None, calico_ipam(None, None)));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].problem, "net.ipv4.ip_forward is not 1");
        // host-local with only IPv6 ranges.
        let hl = CalicoConf {
            ipam_type: "host-local".into(),
            host_local_subnets: vec![Some(V6)],
            ..CalicoConf::default()
        };
        assert!(check(&facts("0", "1", None, Some(hl))).is_empty());
    }

    #[test]
    fn without_calicos_entry_ipv4_is_assumed_and_only_warned() {
        let f = check(&facts("0", "0", None, None));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].problem, "net.ipv4.ip_forward is not 1");
        assert_eq!(f[0].severity, Severity::Warn);
        assert!(f[0].remedy.contains("confDir"), "{}", f[0].remedy);
    }
}
