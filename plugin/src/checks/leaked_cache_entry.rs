//! `leaked-cache-entry` (doctor): an entry of libcni's result cache for Calico's network whose
//! sandbox and host link are both gone. libcni removes the entry on DEL (libcni/api.go
//! `cacheDel`), after the plugins ran and before the runtime removes the namespace, so an
//! entry outliving both means DEL never ran: an unclean shutdown, a runtime that crashed or
//! lost its state. Only a sandbox path that does not exist counts as gone: one that exists
//! but is no namespace here (mounts not propagated into doctor's container) proves nothing.

use super::{CheckId, Finding};
use crate::inspect::cni_cache::{CacheEntry, Sandbox};
use std::collections::HashSet;

pub struct Facts<'a> {
    /// Every entry read, with where its sandbox stands.
    pub entries: &'a [(CacheEntry, Sandbox)],
    /// The names of every link in the host namespace.
    pub host_links: &'a HashSet<String>,
    /// Calico's conflist `name`.
    pub calico_network: Option<&'a str>,
    /// Calico's host interface prefixes.
    pub prefixes: &'a [String],
    /// `host_links` are the host's: doctor is in the host's network namespace (a Calico link
    /// is among them, or it is pid 1's). Run in a pod's namespace (a container without
    /// hostNetwork), every link would look gone, and every entry of a live pod leaked.
    pub host_netns: bool,
}

pub fn check(f: &Facts) -> Vec<Finding> {
    if !f.host_netns {
        return vec![];
    }
    f.entries
        .iter()
        .filter(|(e, state)| {
            *state == Sandbox::Gone
                && e.is_calicos(f.calico_network, f.prefixes)
                // With no host interface recorded, "its link is gone" cannot be told.
                && !e.host_ifaces.is_empty()
                && !e.host_ifaces.iter().any(|i| f.host_links.contains(i))
        })
        .map(|(e, _)| leaked(e))
        .collect()
}

fn leaked(e: &CacheEntry) -> Finding {
    let ips = if e.ips.is_empty() {
        String::new()
    } else {
        format!("; it recorded IP(s) {}", e.ips.join(", "))
    };
    let cid = e.container_id.as_deref().unwrap_or("<container id>");
    Finding::new(
        CheckId::LeakedCacheEntry,
        e.describe(),
        "the attachment's sandbox and host link are both gone but its cache entry remains: DEL never ran (unclean shutdown, or the runtime lost the sandbox)",
        "a cache entry only while its sandbox or its host link exists (libcni removes it on DEL)",
        format!(
            "sandbox {} does not exist and host link {} is not on this host{ips}",
            e.sandbox.as_deref().unwrap_or("?"),
            e.host_ifaces.join(", ")
        ),
        format!(
            "if the runtime still lists the sandbox (crictl inspectp {cid}), remove it (crictl \
             stopp {cid}; crictl rmp {cid}): its DEL releases the IP and the entry; if the \
             runtime knows no such sandbox, nothing reads the entry any more: check that Calico \
             released its IP (calicoctl ipam check), then delete {}",
            e.path.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(network: &str, veth: &str) -> CacheEntry {
        CacheEntry {
            path: format!("/var/lib/cni/results/{network}-c1-eth0").into(),
            container_id: Some("c1".into()),
            network_name: Some(network.into()),
            k8s_namespace: Some("default".into()),
            k8s_pod: Some("web-0".into()),
            host_ifaces: vec![veth.into()],
            sandbox: Some("/var/run/netns/cni-1".into()),
            ips: vec!["10.244.0.5/32".into()],
            ..CacheEntry::default()
        }
    }

    #[test]
    fn only_calicos_entries_whose_sandbox_and_link_are_both_gone() {
        let links: HashSet<String> = ["caliLive".to_string()].into();
        let prefixes = ["cali".to_string()];
        let run = |entries: &[(CacheEntry, Sandbox)]| {
            check(&Facts {
                entries,
                host_links: &links,
                calico_network: Some("k8s-pod-network"),
                prefixes: &prefixes,
                host_netns: true,
            })
        };
        let got = run(&[(entry("k8s-pod-network", "caliGone"), Sandbox::Gone)]);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].check, CheckId::LeakedCacheEntry);
        assert!(got[0].object.contains("pod default/web-0, container c1"));
        assert!(
            got[0].found.contains("cni-1 does not exist"),
            "{}",
            got[0].found
        );
        assert!(got[0].remedy.contains("crictl rmp c1"), "{}", got[0].remedy);
        // Multus's network name, Calico's host veth: Calico's too.
        assert_eq!(
            run(&[(entry("multus-cni-network", "caliGone"), Sandbox::Gone)]).len(),
            1
        );
        for (e, s) in [
            // The link is still there (host-veth/orphan-veth's case), or the sandbox.
            (entry("k8s-pod-network", "caliLive"), Sandbox::Gone),
            (entry("k8s-pod-network", "caliGone"), Sandbox::Live(1, 2)),
            // Cannot tell.
            (entry("k8s-pod-network", "caliGone"), Sandbox::Unknown),
            (entry("k8s-pod-network", "caliGone"), Sandbox::Unnamed),
            // Another network's.
            (entry("bridge-net", "cni0"), Sandbox::Gone),
        ] {
            assert!(run(&[(e.clone(), s)]).is_empty(), "{e:?} {s:?}");
        }
        let mut no_ifaces = entry("k8s-pod-network", "x");
        no_ifaces.host_ifaces.clear();
        assert!(run(&[(no_ifaces, Sandbox::Gone)]).is_empty());
        // Not the host's links: nothing can be told of them.
        let e = [(entry("k8s-pod-network", "caliGone"), Sandbox::Gone)];
        assert!(check(&Facts {
            entries: &e,
            host_links: &links,
            calico_network: Some("k8s-pod-network"),
            prefixes: &prefixes,
            host_netns: false,
        })
        .is_empty());
    }
}
