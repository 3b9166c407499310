//! `host-route`: each pod IP has a /32 (/128) scope-link route on the host veth, so the host
//! (and Felix's routing) can deliver to the pod.

use super::{describe_route, CheckId, Finding, PodFacts, Severity};
use crate::inspect::RouteLookup;

/// A KubeVirt live-migration target, which Calico leaves without a host route on purpose:
/// calico-ipam returns no `routes` for it (cni-plugin/pkg/ipamplugin/ipam_plugin.go, for a
/// pod `getVMIInfoForPod` finds to be a migration target; only `virt-launcher-*` pods are
/// looked at), and then cni-plugin/pkg/k8s/k8s.go sets `skipHostSideRoutes` when
/// `conf.IPAM.Type == "calico-ipam" && len(result.Routes) == 0`, so dataplane_linux.go skips
/// `SetupRoutes`: Felix programs the route once the VM has moved. Calico ≤3.31 returned no
/// routes for any pod, so "no routes" alone cannot tell; with the name it may be one, and a
/// missing route only warns. An unknown IPAM (Calico's entry not found) is ambiguous too.
pub(crate) fn may_be_migration_target(f: &PodFacts) -> bool {
    f.target
        .pod_name
        .as_deref()
        .is_some_and(|n| n.starts_with("virt-launcher-"))
        && f.target.result_has_routes == Some(false)
        && !matches!(f.calico, Some(c) if c.ipam_type != "calico-ipam")
}

/// What the message adds when [`may_be_migration_target`].
pub(crate) const MIGRATION_TARGET: &str = "only a warning: this virt-launcher pod has      calico-ipam and no routes in its result, as Calico gives a KubeVirt live-migration target,      whose host route Calico's CNI skips and Felix programs after the migration; if the pod is      no migration target, ";

/// True when the lookup shows another interface claiming the IP: `ip-conflict` reports those.
pub(crate) fn is_conflict(l: &RouteLookup, veth_index: Option<u32>) -> bool {
    let Some(r) = &l.route else {
        return false;
    };
    let full = if l.ip.is_ipv4() { 32 } else { 128 };
    r.local
        || (veth_index.is_some()
            && r.dst_len == full
            && !r.paths().iter().any(|p| p.oif == veth_index))
}

pub fn check(f: &PodFacts) -> Vec<Finding> {
    let Some(veth) = f.host.veth() else {
        return vec![]; // host-veth reports it
    };
    let mut out = Vec::new();
    for l in &f.host.routes_to_pod {
        if is_conflict(l, Some(veth.index)) {
            continue;
        }
        let full = if l.ip.is_ipv4() { 32 } else { 128 };
        // IPv6 routes have no scope in the kernel (always "global"): only IPv4 can be checked for it.
        let ok = l.route.as_ref().is_some_and(|r| {
            r.dst_len == full
                && r.paths()
                    .iter()
                    .any(|p| p.oif == Some(veth.index) && p.gateway.is_none())
                && (r.scope_link || l.ip.is_ipv6())
        });
        if ok {
            continue;
        }
        let name_of = |i: u32| {
            if i == veth.index {
                Some(veth.name.clone())
            } else {
                l.oif_name.clone()
            }
        };
        let found = match &l.route {
            None => format!("no route to {} at all", l.ip),
            Some(r) => format!("the host routes {} by {}", l.ip, describe_route(r, name_of)),
        };
        let remedy = "without it the host cannot deliver packets to the pod. Calico's CNI plugin \
             adds it and Felix keeps it: check that calico-node is running and ready on this node, \
             then delete the pod to have it wired again";
        let finding = |remedy: String| {
            Finding::new(
                CheckId::HostRoute,
                format!("host veth {}", veth.name),
                format!("host route {}/{full} scope link is missing", l.ip),
                format!("{}/{full} dev {} scope link", l.ip, veth.name),
                found.clone(),
                remedy,
            )
        };
        out.push(if may_be_migration_target(f) {
            finding(format!("{MIGRATION_TARGET}{remedy}")).at(Severity::Warn)
        } else {
            finding(remedy.to_string())
        });
    }
    out
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
    fn missing_route_shows_what_the_host_would_use() {
        let mut fx = healthy_v4();
        fx.host.routes_to_pod[0].route = Some(route(Some("10.244.1.0/26"), None, 1, false));
        fx.host.routes_to_pod[0].oif_name = Some("eth0".into());
        let f = check(&fx.facts());
        assert_eq!(f.len(), 1);
        assert_eq!(
            f[0].expected,
            format!("10.244.1.5/32 dev {VETH} scope link")
        );
        assert!(
            f[0].found.contains("10.244.1.0/26 dev eth0"),
            "{}",
            f[0].found
        );
    }

    #[test]
    fn no_route_at_all_and_v6() {
        let mut fx = healthy_dual();
        fx.host.routes_to_pod[1].route = None;
        let f = check(&fx.facts());
        assert_eq!(f.len(), 1);
        assert!(f[0].problem.contains("fd00:10::5/128"));
    }

    #[test]
    fn conflicts_are_left_to_ip_conflict() {
        let mut fx = healthy_v4();
        fx.host.routes_to_pod[0].route = Some(route(Some("10.244.1.5/32"), None, 5, true));
        assert!(check(&fx.facts()).is_empty());
    }

    fn migration_target(fx: &mut Fixture) {
        fx.target.pod_name = Some("virt-launcher-vm1-abcde".into());
        fx.target.result_has_routes = Some(false);
    }

    #[test]
    fn a_kubevirt_migration_target_without_host_route_warns_saying_why() {
        let mut fx = healthy_v4();
        migration_target(&mut fx);
        fx.host.routes_to_pod[0].route = None;
        let f = check(&fx.facts());
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Warn);
        assert!(
            f[0].remedy.contains("live-migration target"),
            "{}",
            f[0].remedy
        );
        // Calico's entry unknown: ambiguous, warns too.
        fx.calico = None;
        assert_eq!(check(&fx.facts())[0].severity, Severity::Warn);
    }

    #[test]
    fn only_that_case_is_exempt() {
        let fail = |edit: &dyn Fn(&mut Fixture)| {
            let mut fx = healthy_v4();
            migration_target(&mut fx);
            fx.host.routes_to_pod[0].route = None;
            edit(&mut fx);
            check(&fx.facts())[0].severity
        };
        // Another pod name, routes in the result, or host-local: Calico adds the route.
        assert_eq!(
            fail(&|fx| fx.target.pod_name = Some("web-0".into())),
            Severity::Error
        );
        assert_eq!(fail(&|fx| fx.target.pod_name = None), Severity::Error);
        assert_eq!(
            fail(&|fx| fx.target.result_has_routes = Some(true)),
            Severity::Error
        );
        assert_eq!(
            fail(&|fx| fx.target.result_has_routes = None),
            Severity::Error
        );
        assert_eq!(
            fail(&|fx| {
                if let Some(c) = fx.calico.as_mut() {
                    c.ipam_type = "host-local".into();
                }
            }),
            Severity::Error
        );
    }

    #[test]
    fn wrong_scope_fires() {
        let mut fx = healthy_dual();
        fx.host.routes_to_pod[0].route.as_mut().unwrap().scope_link = false;
        fx.host.routes_to_pod[1].route.as_mut().unwrap().scope_link = false;
        assert_eq!(check(&fx.facts()).len(), 1, "IPv6 routes carry no scope");
    }
}
