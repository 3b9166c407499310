//! `doctor`'s node reconciliation: the findings no single pod's checks can make
//! (`stale-host-route`, `duplicate-pod-ip`), from every pod's IPs and the host's routes, which
//! are dumped once per scan (one dump per family), so the cost grows with pods linearly.
//!
//! Each finding goes to the pods it concerns (their `findings`), so `doctor --pod`, the pod
//! counts and the per-check totals see it, and the JSON keeps its shape.
//!
//! The scan reads pods one after the other and the routes after them: a pod wired or torn
//! down meanwhile could look like a stale route or a duplicate. So whatever the first pass
//! finds is looked at again (the concerned pods' IPs read again, the routes dumped again) and
//! only what both passes find is reported. That costs nothing on a healthy node.

use crate::checks::{duplicate_pod_ip, stale_host_route, CheckId, Finding, Severity};
use crate::engine::doctor::PodReport;
use crate::inspect::netlink::Netlink;
use crate::inspect::reconcile::{self, FloatingIps, HostEnd, ReconcileFacts};
use crate::inspect::{Deadline, InspectError};
use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

/// A host end as doctor listed it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub name: String,
    pub index: u32,
    /// The pod interface's index in the pod's namespace (IFLA_LINK).
    pub peer_index: Option<u32>,
}

impl Listed {
    pub fn of(l: &crate::inspect::Link) -> Listed {
        Listed {
            name: l.name.clone(),
            index: l.index,
            peer_index: l.peer_index,
        }
    }
}

/// The facts' host ends, one per pod report on a listed link, and which report each is.
fn host_ends(listed: &[Listed], pods: &[PodReport]) -> (Vec<HostEnd>, Vec<usize>) {
    let mut ends = Vec::with_capacity(pods.len());
    let mut slot = Vec::with_capacity(pods.len());
    // By name: a lookup per pod, so the cost stays linear in pods.
    let by_name: std::collections::HashMap<&str, &Listed> =
        listed.iter().map(|l| (l.name.as_str(), l)).collect();
    for (i, p) in pods.iter().enumerate() {
        let Some(l) = by_name.get(p.host_veth.as_str()) else {
            continue;
        };
        // Known only when the pod's interface was read (doctor sets `interface` then).
        let ips = (p.interface.is_some() && p.netns_path.is_some()).then(|| {
            p.ips
                .iter()
                .filter_map(|s| s.parse::<ipnetwork::IpNetwork>().ok())
                .map(|n| n.ip())
                .collect::<Vec<IpAddr>>()
        });
        ends.push(HostEnd {
            index: l.index,
            name: l.name.clone(),
            pod: p.display_name(),
            netns_label: p.pod.clone(),
            netns_path: p.netns_path.clone(),
            ips,
            ns_ips: None,
        });
        slot.push(i);
    }
    (ends, slot)
}

type Key = (usize, CheckId, String);

fn findings(f: &ReconcileFacts, stale: bool, dup: bool) -> Vec<(usize, Finding)> {
    let mut out = Vec::new();
    if stale {
        out.extend(stale_host_route::check(f));
    }
    if dup {
        out.extend(duplicate_pod_ip::check(f));
    }
    out
}

/// Adds the reconciliation's findings to `pods` (a report per listed host end, as doctor made
/// them). `overrides` is the installed entry's severities, as for every other check.
pub fn run(
    nl: &mut Netlink,
    listed: &[Listed],
    pods: &mut [PodReport],
    overrides: impl Fn(CheckId) -> Option<Severity>,
    timeout: Duration,
) -> Result<(), InspectError> {
    let on = |id| overrides(id) != Some(Severity::Off);
    let (stale, dup) = (on(CheckId::StaleHostRoute), on(CheckId::DuplicatePodIp));
    if !stale && !dup {
        return Ok(());
    }
    let (mut ends, slot) = host_ends(listed, pods);
    if ends.is_empty() {
        return Ok(()); // no pod: nothing to compare (routes on other links are not judged)
    }
    // The routes: stale-host-route's, and duplicate-pod-ip's to tell an IP Calico routes to a
    // pod from a VIP pods add themselves.
    nl.set_deadline(Deadline::after(timeout));
    let routes = if stale || dup {
        reconcile::main_routes(nl)?
    } else {
        vec![]
    };
    let first_facts = ReconcileFacts {
        ends: ends.clone(),
        routes,
        floating_ips: FloatingIps::NotRead,
    };
    let first = findings(&first_facts, stale, dup);
    if first.is_empty() {
        return Ok(());
    }

    // Look again at what the first pass found: the concerned pods' IPs, the routes.
    let concerned: Vec<usize> = {
        let mut seen = HashSet::new();
        first
            .iter()
            .map(|(i, _)| *i)
            .filter(|i| seen.insert(*i))
            .collect()
    };
    let again: Vec<(usize, String, u32)> = concerned
        .iter()
        .filter(|i| ends[**i].ips.is_some())
        .filter_map(|i| {
            let path = ends[*i].netns_path.clone()?;
            let peer = listed
                .iter()
                .find(|l| l.index == ends[*i].index)?
                .peer_index?;
            Some((*i, path, peer))
        })
        .collect();
    let reread = reconcile::reread_ips(
        again
            .iter()
            .map(|(_, p, peer)| (p.clone(), *peer))
            .collect(),
        timeout,
    );
    for ((i, _, _), ips) in again.iter().zip(reread) {
        let (own, all) = ips.unzip();
        ends[*i].ips = own;
        ends[*i].ns_ips = all;
    }
    nl.set_deadline(Deadline::after(timeout));
    let routes = if stale || dup {
        reconcile::main_routes(nl)?
    } else {
        vec![]
    };
    let floating_ips = if first
        .iter()
        .any(|(_, f)| stale_host_route::needs_floating_ips(f))
    {
        reconcile::floating_ips(Deadline::after(timeout))
    } else {
        FloatingIps::NotRead
    };
    let facts = ReconcileFacts {
        ends,
        routes,
        floating_ips,
    };
    let seen: HashSet<Key> = first
        .into_iter()
        .map(|(i, f)| (i, f.check, f.object))
        .collect();
    for (i, f) in findings(&facts, stale, dup) {
        if !seen.contains(&(i, f.check, f.object.clone())) {
            continue; // not there the first time: the node changed under the scan
        }
        let f = match overrides(f.check) {
            Some(sev) => f.at(sev),
            None => f,
        };
        if let Some(p) = slot.get(i).and_then(|s| pods.get_mut(*s)) {
            p.findings.push(f);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(veth: &str, ips: &[&str], read: bool) -> PodReport {
        PodReport {
            host_veth: veth.into(),
            pod: Some(format!("cni-{veth}")),
            netns_path: Some(format!("/run/netns/cni-{veth}")),
            interface: read.then(|| "eth0".into()),
            ips: ips.iter().map(|s| s.to_string()).collect(),
            k8s_namespace: None,
            k8s_pod: None,
            k8s_pod_uid: None,
            container_id: None,
            findings: vec![],
        }
    }

    #[test]
    fn ends_follow_the_reports() {
        let listed = vec![
            Listed {
                name: "calib".into(),
                index: 11,
                peer_index: Some(2),
            },
            Listed {
                name: "calia".into(),
                index: 10,
                peer_index: Some(2),
            },
        ];
        let pods = vec![
            report("calia", &["10.0.0.1/32", "fd00::1/128"], true),
            report("calib", &[], false),
            report("calix", &[], true),
        ];
        let (ends, slot) = host_ends(&listed, &pods);
        assert_eq!(slot, [0, 1], "a report on no listed link is left out");
        assert_eq!(ends[0].index, 10);
        assert_eq!(
            ends[0].ips,
            Some(vec![
                "10.0.0.1".parse().unwrap(),
                "fd00::1".parse().unwrap()
            ])
        );
        assert_eq!(
            ends[1].ips, None,
            "an unread pod's IPs are unknown, not none"
        );
        assert_eq!(ends[0].label(), "pod cni-calia (calia)");
    }
}
