//! `stale-host-route` (doctor): every /32 (/128) route on a host end is to an IP the pod behind
//! it holds. A leftover (the route of an earlier pod on a link that lives on, a pod whose IP
//! changed) is what makes Calico's CNI fail a later pod given that IP: `SetupRoutes`
//! (cni-plugin/pkg/dataplane/linux/dataplane_linux.go) gets EEXIST and reports `route ...
//! already exists for an interface other than 'caliXXXX'` (calico#1406, #3940, #8180).
//!
//! What is judged: unicast main-table routes of full length, on a listed host end, without a
//! gateway. Calico's own are exactly those (`Scope: SCOPE_LINK`, no gateway; Felix's
//! `calculateRoutes` in felix/dataplane/linux/endpoint_mgr.go too). A route *via* a gateway on
//! a host end routes through the pod to something behind it (BIRD's routes to a workload that
//! is a BGP peer, `IsWorkloadBGPPeerIface` in felix/routetable/ownershippol): not judged. A
//! route on a link doctor did not list (created since) is not judged either. The protocol is
//! not looked at: Felix owns every route on a workload interface whatever its protocol
//! (`RouteIsOurs` with RemoveExternalRoutes, the default) and the CNI's carry RTPROT_BOOT,
//! Felix's default `DeviceRouteProtocol` too.
//!
//! A pod IP routed by the FIB to another link is `ip-conflict`'s and `host-route`'s on that
//! pod; here it is reported on the link the route is on, and on the pod holding the IP only
//! when the pod's own route wins for now (then neither of those sees it).
//!
//! Where it cannot be sure, it warns: the pod behind the link was not found or not read, or
//! the IP is held by no pod and this node has floating IPs (Felix routes a workload's floating
//! IPs to its link; `calculateRoutes` adds `natInfo.ExtIp`), or the pod holds no IP at all.
//! The latter is a KubeVirt VM's pod in bridge binding, the one binding Calico supports for
//! VMs: KubeVirt deletes the IP from the pod's interface and gives it to the VM, in some
//! versions keeping it on a dummy `eth0` in the pod (kubevirt pkg/network,
//! `switchPodInterfaceWithDummy`). An IP on any link of the pod's namespace is the pod's (the
//! re-check reads them all, so a healthy node pays nothing).

use super::{describe_route, CheckId, Finding, Severity};
use crate::inspect::reconcile::{FloatingIps, HostEnd, ReconcileFacts};
use crate::inspect::Route;
use std::collections::HashMap;
use std::net::IpAddr;

/// A finding, and which host end's pod it goes to (an index into `facts.ends`).
pub type Placed = (usize, Finding);

/// The default metric of a route of each family (`ip route` does not show it).
fn default_metric(v6: bool) -> u32 {
    if v6 {
        1024
    } else {
        0
    }
}

fn full_len(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

/// Routes whose destination is one host (a pod IP's route), by that IP.
pub(crate) fn is_host_route(r: &Route) -> Option<IpAddr> {
    let ip = r.dst?.ip();
    let judged = r.unicast
        && !r.local
        && r.dst_len == full_len(ip)
        && !crate::inspect::is_link_local(ip)
        && !ip.is_loopback()
        && !ip.is_multicast();
    judged.then_some(ip)
}

/// `ip route del` for the route: the dst, its one device, and a metric that is not the default.
fn delete_command(r: &Route, dst: IpAddr, dev: &str) -> String {
    let mut s = format!("ip route del {dst}/{}", full_len(dst));
    if r.nexthops.len() <= 1 {
        s.push_str(&format!(" dev {dev}"));
    }
    if r.metric != default_metric(r.v6) {
        s.push_str(&format!(" metric {}", r.metric));
    }
    s
}

pub fn check(f: &ReconcileFacts) -> Vec<Placed> {
    let by_index: HashMap<u32, usize> = f
        .ends
        .iter()
        .enumerate()
        .map(|(i, e)| (e.index, i))
        .collect();
    let mut holders: HashMap<IpAddr, Vec<usize>> = HashMap::new();
    for (i, e) in f.ends.iter().enumerate() {
        for ip in e.ips.iter().flatten() {
            holders.entry(*ip).or_default().push(i);
        }
    }
    let name_of = |i: u32| by_index.get(&i).map(|e| f.ends[*e].name.clone());
    let mut out: Vec<Placed> = Vec::new();
    for r in &f.routes {
        let Some(ip) = is_host_route(r) else {
            continue;
        };
        for path in r.paths() {
            let Some(&at) = path.oif.and_then(|o| by_index.get(&o)) else {
                continue;
            };
            if path.gateway.is_some() {
                continue;
            }
            let owner = &f.ends[at];
            let holding: Vec<usize> = holders.get(&ip).cloned().unwrap_or_default();
            // The pod behind the link holds it (on this or another of its interfaces, or on
            // another link of its namespace: KubeVirt's bridge binding moves it to a dummy).
            if owner.holds_in_netns(ip) || holding.iter().any(|h| f.ends[*h].same_pod(owner)) {
                continue;
            }
            let shown = describe_route(r, name_of);
            let wins: Vec<usize> = holding
                .iter()
                .copied()
                .filter(|h| own_route_wins(f, *h, ip, r.metric))
                .collect();
            let finding = finding(f, r, ip, owner, &holding, !wins.is_empty(), &shown);
            if out
                .iter()
                .any(|(i, g)| *i == at && g.object == finding.object)
            {
                continue; // another path of the same route on the same link
            }
            out.push((at, finding.clone()));
            // The holder's own route wins for now: neither host-route nor ip-conflict sees this
            // one, so the holder hears of it here.
            for h in &wins {
                let told = out
                    .iter()
                    .any(|(i, g)| i == h && g.object == finding.object);
                if !told {
                    out.push((*h, finding.clone()));
                }
            }
        }
    }
    out
}

/// Whether the pod at `h` has its own route to `ip` on its link at a metric no worse than
/// `metric` (then the FIB uses it, and the other route only lurks).
fn own_route_wins(f: &ReconcileFacts, h: usize, ip: IpAddr, metric: u32) -> bool {
    let link = f.ends[h].index;
    f.routes.iter().any(|r| {
        is_host_route(r) == Some(ip)
            && r.metric <= metric
            && r.paths()
                .iter()
                .any(|p| p.oif == Some(link) && p.gateway.is_none())
    })
}

fn finding(
    f: &ReconcileFacts,
    r: &Route,
    ip: IpAddr,
    owner: &HostEnd,
    holding: &[usize],
    shadowed: bool,
    shown: &str,
) -> Finding {
    let link = &owner.name;
    let held_by: Vec<String> = holding.iter().map(|h| f.ends[*h].label()).collect();
    let owner_ips = |ips: &[IpAddr]| {
        if ips.is_empty() {
            "no IP".to_string()
        } else {
            ips.iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let (problem, expected) = match &owner.ips {
        Some(ips) => (
            format!(
                "{ip} is routed to {link}, but {} does not hold it",
                owner.label()
            ),
            format!(
                "routes on {link} only to its pod's IPs ({})",
                owner_ips(ips)
            ),
        ),
        None => (
            format!("{ip} is routed to {link}, whose pod was not found or could not be read"),
            format!("routes on {link} only to the IPs of a live pod behind it"),
        ),
    };
    let found = if held_by.is_empty() {
        format!("{shown}; no pod on this node holds {ip}")
    } else {
        format!("{shown}; {ip} is held by {}", held_by.join(", "))
    };
    let del = delete_command(r, ip, link);
    // What it does while it is there: SetupRoutes' RouteAdd (no metric) collides with a
    // route of the default metric only.
    let mut impact = String::new();
    if !held_by.is_empty() {
        impact.push_str(&if shadowed {
            format!("It takes {ip}'s traffic from its pod once the pod's own route goes. ")
        } else {
            format!("Traffic for {ip} goes to {link}, not to its pod. ")
        });
    }
    if r.metric == default_metric(r.v6) {
        impact.push_str(&format!(
            "Calico's CNI fails ADD for a pod given {ip} while it is there (\"route ... already \
             exists for an interface other than\"). "
        ));
    }
    let remedy = format!(
        "{impact}Felix deletes routes on cali* links that no WorkloadEndpoint asks for, so it \
         stays only while calico-node is down, FELIX_REMOVEEXTERNALROUTES is false, or a stale \
         WorkloadEndpoint lists {ip} (calicoctl get workloadendpoints -o wide | grep {ip}); once \
         confirmed, `{del}`"
    );
    let warn = if owner.ips.is_none() {
        Some(format!(
            "only a warning: the pod behind {link} is unknown (see its host-veth, pod-netns or \
             orphan-veth finding); if the link is orphaned its routes are stale too: "
        ))
    } else if held_by.is_empty() && owner.holds_none() {
        Some(format!(
            "only a warning: {} holds no IP at all, as the pod of a KubeVirt VM in bridge \
             binding does (the VM holds its IP; Calico routes it to the pod's link); if {link} \
             is no such pod's, ",
            owner.label()
        ))
    } else if held_by.is_empty() {
        match f.floating_ips {
            FloatingIps::None => None,
            FloatingIps::InUse => Some(format!(
                "only a warning: this node has floating IPs (Felix's cali-fip-dnat has rules) and \
                 Felix routes a pod's floating IPs to its link; if {ip} is none of \
                 {}'s (cni.projectcalico.org/floatingIPs), ",
                owner.pod
            )),
            FloatingIps::Unknown | FloatingIps::NotRead => Some(format!(
                "only a warning: the iptables chains could not be read to rule out a floating IP \
                 (Felix routes a pod's floating IPs to its link); if {ip} is none of {}'s, ",
                owner.pod
            )),
        }
    } else {
        None
    };
    let finding = |remedy: String| {
        Finding::new(
            CheckId::StaleHostRoute,
            format!("host route {shown}"),
            problem.clone(),
            expected.clone(),
            found.clone(),
            remedy,
        )
    };
    match warn {
        Some(w) => finding(format!("{w}{remedy}")).at(Severity::Warn),
        None => finding(remedy),
    }
}

/// Whether a finding is about an IP that no pod holds (the floating-IP question decides it).
pub fn needs_floating_ips(f: &Finding) -> bool {
    f.found.contains("; no pod on this node holds ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixtures::route;

    fn end(i: u32, name: &str, ns: &str, ips: Option<&[&str]>) -> HostEnd {
        HostEnd {
            index: i,
            name: name.into(),
            pod: format!("default/{ns}"),
            netns_label: Some(format!("cni-{ns}")),
            netns_path: Some(format!("/run/netns/cni-{ns}")),
            ips: ips.map(|v| v.iter().map(|s| s.parse().expect("ip")).collect()),
            ns_ips: None,
        }
    }

    fn facts(ends: Vec<HostEnd>, routes: Vec<Route>) -> ReconcileFacts {
        ReconcileFacts {
            ends,
            routes,
            floating_ips: FloatingIps::None,
        }
    }

    fn healthy() -> ReconcileFacts {
        let mut v6 = route(Some("fd00:10::5/128"), None, 10, false);
        v6.metric = 1024;
        facts(
            vec![
                end(10, "calia", "web-0", Some(&["10.244.1.5", "fd00:10::5"])),
                end(11, "calib", "web-1", Some(&["10.244.1.6"])),
            ],
            vec![
                route(Some("10.244.1.5/32"), None, 10, true),
                v6,
                route(Some("10.244.1.6/32"), None, 11, true),
                // Not judged: link-local, a block's route, a route via a gateway, another link.
                route(Some("fe80::/64"), None, 10, false),
                route(Some("10.244.1.0/26"), None, 2, false),
                route(Some("192.168.5.7/32"), Some("10.244.1.6"), 11, false),
                route(Some("10.244.1.9/32"), None, 2, true),
                route(Some("10.244.1.5/32"), None, 99, true),
            ],
        )
    }

    #[test]
    fn healthy_node_is_quiet() {
        assert!(check(&healthy()).is_empty());
    }

    #[test]
    fn a_route_to_an_ip_no_pod_holds_is_stale() {
        let mut f = healthy();
        f.routes.push(route(Some("10.244.1.7/32"), None, 11, true));
        let out = check(&f);
        assert_eq!(out.len(), 1, "{out:#?}");
        let (at, g) = &out[0];
        assert_eq!(*at, 1);
        assert_eq!(g.severity, Severity::Error);
        assert_eq!(g.object, "host route 10.244.1.7/32 dev calib scope link");
        assert!(
            g.problem
                .contains("pod default/web-1 (calib, netns cni-web-1) does not hold it"),
            "{}",
            g.problem
        );
        assert!(
            g.found.ends_with("no pod on this node holds 10.244.1.7"),
            "{}",
            g.found
        );
        assert!(
            g.remedy.contains("`ip route del 10.244.1.7/32 dev calib`"),
            "{}",
            g.remedy
        );
        assert!(
            g.remedy
                .starts_with("Calico's CNI fails ADD for a pod given 10.244.1.7"),
            "{}",
            g.remedy
        );
        assert!(needs_floating_ips(g));
        // Floating IPs in use, or unknown: it may be one, so only a warning.
        for fl in [FloatingIps::InUse, FloatingIps::Unknown] {
            f.floating_ips = fl;
            assert_eq!(check(&f)[0].1.severity, Severity::Warn);
        }
    }

    #[test]
    fn a_pod_ip_on_another_link_names_its_pod() {
        let mut f = healthy();
        // The calico#1406 state: web-0's IP also routed to calib, at a worse metric (web-0's
        // own route wins, so host-route and ip-conflict see nothing): both pods hear of it.
        let mut r = route(Some("10.244.1.5/32"), None, 11, true);
        r.metric = 100;
        f.routes.push(r);
        let out = check(&f);
        assert_eq!(out.len(), 2, "{out:#?}");
        assert_eq!(out[0].0, 1, "the link's pod first");
        assert_eq!(out[1].0, 0, "then the holder");
        let g = &out[0].1;
        assert_eq!(g.severity, Severity::Error);
        assert!(
            g.found
                .contains("10.244.1.5 is held by pod default/web-0 (calia, netns cni-web-0)"),
            "{}",
            g.found
        );
        assert!(
            g.remedy
                .contains("ip route del 10.244.1.5/32 dev calib metric 100"),
            "{}",
            g.remedy
        );
        assert!(
            g.remedy
                .starts_with("It takes 10.244.1.5's traffic from its pod once"),
            "{}",
            g.remedy
        );
        assert!(
            !g.remedy.contains("fails ADD"),
            "not at metric 100: {}",
            g.remedy
        );
        // Floating IPs do not excuse it: the IP is a pod's.
        f.floating_ips = FloatingIps::InUse;
        assert_eq!(check(&f)[0].1.severity, Severity::Error);
        // When it is the only route (web-0's missing), ip-conflict tells web-0: only calib's pod here.
        f.routes.retain(|r| {
            !(r.dst == Some("10.244.1.5/32".parse().expect("cidr")) && r.oif == Some(10))
        });
        let out = check(&f);
        assert_eq!(out.len(), 1, "{out:#?}");
        assert_eq!(out[0].0, 1);
        assert!(out[0]
            .1
            .remedy
            .starts_with("Traffic for 10.244.1.5 goes to calib, not to its pod"));
    }

    #[test]
    fn unknown_pod_or_same_pod() {
        let mut f = healthy();
        f.ends.push(end(12, "calic", "gone", None));
        f.routes.push(route(Some("10.244.1.8/32"), None, 12, true));
        let out = check(&f);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1.severity, Severity::Warn);
        assert!(out[0].1.problem.contains("whose pod was not found"));
        // A second interface of web-0's namespace holding the IP: the same pod, not stale.
        let mut f = healthy();
        let mut second = end(13, "calid", "web-0", Some(&["10.244.1.9"]));
        second.netns_path = f.ends[0].netns_path.clone();
        f.ends.push(second);
        f.routes.push(route(Some("10.244.1.9/32"), None, 10, true));
        assert!(check(&f).is_empty());
    }

    #[test]
    fn a_kubevirt_pod_in_bridge_binding() {
        // The IP moved off the pod's interface onto another link of its namespace: its own.
        let mut f = healthy();
        f.ends[1].ips = Some(vec![]);
        assert_eq!(check(&f).len(), 1, "before the re-check: looked at again");
        f.ends[1].ns_ips = Some(vec!["10.244.1.6".parse().expect("ip")]);
        assert!(check(&f).is_empty());
        // Held by nothing in the pod's namespace (the VM holds it): only a warning.
        f.ends[1].ns_ips = Some(vec![]);
        let out = check(&f);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1.severity, Severity::Warn);
        assert!(out[0].1.remedy.contains("KubeVirt"), "{}", out[0].1.remedy);
        // A pod holding another IP is judged as before.
        f.ends[1].ips = Some(vec!["10.244.1.60".parse().expect("ip")]);
        f.ends[1].ns_ips = f.ends[1].ips.clone();
        assert_eq!(check(&f)[0].1.severity, Severity::Error);
    }

    #[test]
    fn v6_and_ecmp() {
        let mut f = healthy();
        let mut r = route(Some("fd00:10::9/128"), None, 10, false);
        r.metric = 1024;
        f.routes.push(r);
        let out = check(&f);
        assert_eq!(out.len(), 1);
        assert!(
            out[0]
                .1
                .remedy
                .contains("`ip route del fd00:10::9/128 dev calia`"),
            "{}",
            out[0].1.remedy
        );
        // A multipath route with one path on the right link and one on another pod's link.
        let mut f = healthy();
        let mut r = route(Some("10.244.1.6/32"), None, 11, true);
        r.metric = 5;
        r.nexthops = vec![
            crate::inspect::NextHop {
                gateway: None,
                oif: Some(11),
            },
            crate::inspect::NextHop {
                gateway: None,
                oif: Some(10),
            },
        ];
        f.routes.push(r);
        let out = check(&f);
        assert_eq!(out.len(), 2, "{out:#?}");
        assert_eq!(out[0].0, 0, "the calia path is the stale one");
        assert_eq!(out[1].0, 1, "web-1's own route wins: it hears of it too");
        assert!(out[0]
            .1
            .remedy
            .contains("`ip route del 10.244.1.6/32 metric 5`"));
    }
}
