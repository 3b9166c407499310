//! `duplicate-pod-ip` (doctor): no two pods on the node hold the same IP (calico#13858: IPAM
//! handed an address out twice). Each pod holding it gets one finding naming all of them.
//!
//! Two host ends in one namespace are one pod (a pod with two Calico interfaces). Link-local
//! and loopback addresses never count (doctor leaves them out of a pod's IPs). A KubeVirt
//! live migration gives the target pod the source's IP, but on another node (KubeVirt never
//! migrates to the source's node), so it does not show here.
//!
//! An IP Calico routes to a pod has its host route on a `cali*` link. One that no host route
//! leads to is an address the pods added themselves, a VIP (keepalived's, which two pods hold
//! at once only in a split brain; an anycast address some pods bind on purpose): ambiguous, so
//! only a warning.

use super::stale_host_route::is_host_route;
use super::stale_host_route::Placed;
use super::{CheckId, Finding, Severity};
use crate::inspect::reconcile::ReconcileFacts;
use std::collections::BTreeMap;
use std::net::IpAddr;

pub fn check(f: &ReconcileFacts) -> Vec<Placed> {
    // Sorted by IP, for a stable report order.
    let mut by_ip: BTreeMap<IpAddr, Vec<usize>> = BTreeMap::new();
    for (i, e) in f.ends.iter().enumerate() {
        for ip in e.ips.iter().flatten() {
            let v = by_ip.entry(*ip).or_default();
            // One entry per pod: another interface of a pod already listed does not count.
            if !v.iter().any(|j| f.ends[*j].same_pod(e) || *j == i) {
                v.push(i);
            }
        }
    }
    let ends: std::collections::HashSet<u32> = f.ends.iter().map(|e| e.index).collect();
    // Whether a host route to `ip` (no gateway) is on one of the pods' links.
    let routed = |ip: IpAddr| {
        f.routes.iter().any(|r| {
            is_host_route(r) == Some(ip)
                && r.paths()
                    .iter()
                    .any(|p| p.gateway.is_none() && p.oif.is_some_and(|o| ends.contains(&o)))
        })
    };
    let mut out = Vec::new();
    for (ip, pods) in by_ip.into_iter().filter(|(_, v)| v.len() > 1) {
        let labels: Vec<String> = pods.iter().map(|i| f.ends[*i].label()).collect();
        let names = labels.join(" and ");
        let vip = !routed(ip);
        for i in &pods {
            let finding = Finding::new(
                    CheckId::DuplicatePodIp,
                    format!("pod IP {ip}"),
                    format!("{ip} is held by {} pods on this node: {names}", pods.len()),
                    format!("{ip} held by one pod only"),
                    format!("{ip} is an address of {names}"),
                    format!(
                        "{}traffic for {ip} reaches only one of them, whichever the host route \
                         points at. Find which pod IPAM gave it to (calicoctl ipam show --ip={ip}), \
                         delete the other pod(s) so they get a new IP, then run calicoctl ipam check",
                        if vip {
                            "only a warning: no host route on a cali* link leads to it, so \
                             Calico routes it to none of them: it looks like a VIP the pods add \
                             themselves (keepalived holds it in two pods only in a split brain). \
                             If it is not one, "
                                .to_string()
                        } else {
                            String::new()
                        }
                    ),
                );
            out.push((
                *i,
                if vip {
                    finding.at(Severity::Warn)
                } else {
                    finding
                },
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixtures::route;
    use crate::inspect::reconcile::{FloatingIps, HostEnd};

    fn end(i: u32, ns: &str, ips: Option<&[&str]>) -> HostEnd {
        HostEnd {
            index: i,
            name: format!("cali{i}"),
            pod: format!("default/{ns}"),
            netns_label: Some(format!("cni-{ns}")),
            netns_path: Some(format!("/run/netns/cni-{ns}")),
            ips: ips.map(|v| v.iter().map(|s| s.parse().expect("ip")).collect()),
            ns_ips: None,
        }
    }

    fn facts(ends: Vec<HostEnd>) -> ReconcileFacts {
        ReconcileFacts {
            ends,
            routes: vec![],
            floating_ips: FloatingIps::NotRead,
        }
    }

    #[test]
    fn distinct_ips_are_quiet() {
        let f = facts(vec![
            end(1, "a", Some(&["10.0.0.1", "fd00::1"])),
            end(2, "b", Some(&["10.0.0.2", "fd00::2"])),
            end(3, "c", None),
        ]);
        assert!(check(&f).is_empty());
    }

    #[test]
    fn both_pods_are_told_and_named() {
        let f = facts(vec![
            end(1, "a", Some(&["10.0.0.1", "fd00::1"])),
            end(2, "b", Some(&["10.0.0.2", "fd00::1"])),
            end(3, "c", Some(&["10.0.0.3"])),
        ]);
        let out = check(&f);
        assert_eq!(out.len(), 2, "{out:#?}");
        assert_eq!((out[0].0, out[1].0), (0, 1));
        let g = &out[0].1;
        assert_eq!(g.object, "pod IP fd00::1");
        assert_eq!(
            g.problem,
            "fd00::1 is held by 2 pods on this node: pod default/a (cali1, netns cni-a) and pod default/b (cali2, netns cni-b)"
        );
        assert_eq!(out[1].1, out[0].1);
        assert_eq!(g.severity, Severity::Warn, "no host route leads to it");
        assert!(g.remedy.contains("VIP"), "{}", g.remedy);
        // A host route to it on one of the pods' links: an IP Calico routes, given twice.
        let mut f = f;
        let mut r = route(Some("fd00::1/128"), None, 2, false);
        r.metric = 1024;
        f.routes.push(r);
        let out = check(&f);
        assert_eq!(out.len(), 2, "{out:#?}");
        assert_eq!(out[0].1.severity, Severity::Error);
        assert!(out[0].1.remedy.starts_with("traffic for fd00::1"));
        // Via a gateway, or on a link that is no pod's: not Calico's route to a pod.
        f.routes = vec![
            route(Some("fd00::1/128"), Some("fd00::9"), 2, false),
            route(Some("fd00::1/128"), None, 77, false),
        ];
        assert_eq!(check(&f)[0].1.severity, Severity::Warn);
    }

    #[test]
    fn two_interfaces_of_one_pod_are_one_pod() {
        let mut second = end(2, "a", Some(&["10.0.0.1"]));
        second.name = "cali2".into();
        let f = facts(vec![end(1, "a", Some(&["10.0.0.1"])), second]);
        assert!(check(&f).is_empty());
    }
}
