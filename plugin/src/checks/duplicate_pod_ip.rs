//! `duplicate-pod-ip` (doctor): no two pods on the node hold the same IP (calico#13858: IPAM
//! handed an address out twice). Each pod holding it gets one finding naming all of them.
//!
//! Two host ends in one namespace are one pod (a pod with two Calico interfaces). Link-local
//! and loopback addresses never count (doctor leaves them out of a pod's IPs). A KubeVirt
//! live migration gives the target pod the source's IP, but on another node (KubeVirt never
//! migrates to the source's node), so it does not show here.

use super::stale_host_route::Placed;
use super::{CheckId, Finding};
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
    let mut out = Vec::new();
    for (ip, pods) in by_ip.into_iter().filter(|(_, v)| v.len() > 1) {
        let labels: Vec<String> = pods.iter().map(|i| f.ends[*i].label()).collect();
        let names = labels.join(" and ");
        for i in &pods {
            out.push((
                *i,
                Finding::new(
                    CheckId::DuplicatePodIp,
                    format!("pod IP {ip}"),
                    format!("{ip} is held by {} pods on this node: {names}", pods.len()),
                    format!("{ip} held by one pod only"),
                    format!("{ip} is an address of {names}"),
                    format!(
                        "traffic for {ip} reaches only one of them, whichever the host route \
                         points at. Find which pod IPAM gave it to (calicoctl ipam show --ip={ip}), \
                         delete the other pod(s) so they get a new IP, then run calicoctl ipam check"
                    ),
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
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
    }

    #[test]
    fn two_interfaces_of_one_pod_are_one_pod() {
        let mut second = end(2, "a", Some(&["10.0.0.1"]));
        second.name = "cali2".into();
        let f = facts(vec![end(1, "a", Some(&["10.0.0.1"])), second]);
        assert!(check(&f).is_empty());
    }
}
