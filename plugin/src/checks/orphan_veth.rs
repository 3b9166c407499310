//! `orphan-veth` (doctor): a host `cali*` link whose pod namespace is live but that no entry of
//! libcni's result cache claims. Every runtime that keeps the cache writes an entry on each
//! successful ADD and removes it on DEL (containernetworking/cni libcni/api.go `cacheAdd`,
//! `cacheDel`), so where it evidently does (it holds entries of Calico's network), a wired
//! pod without one was not made, or not remembered, by the runtime: no DEL will clean it up.
//! A link whose peer's namespace no mount or process holds is an orphan too ([`unpaired`]):
//! `host-veth` has always reported it (host_veth_peer.rs) and still does, for scripts keyed on
//! it; `orphan-veth` names it as what it most likely is.

use super::{CheckId, Finding};
use crate::inspect::cni_cache::{CacheEntry, Claim};
use crate::inspect::{is_calico_kind, Link};
use std::path::PathBuf;

/// A veth (or netkit) host end whose peer lives in a namespace that no bind mount or process
/// doctor looked at holds: its pod's sandbox is gone, as far as this node shows. Links whose
/// peer is in the host's own namespace, and other kinds, are host-veth's alone.
pub fn unpaired(link: &Link) -> Vec<Finding> {
    let (true, Some(id)) = (is_calico_kind(link.kind.as_deref()), link.peer_netnsid) else {
        return vec![];
    };
    vec![Finding::new(
        CheckId::OrphanVeth,
        format!("host veth {}", link.name),
        "the pod namespace at the other end of this link is gone, as far as this node shows",
        "the peer in a pod namespace bind-mounted under the netns dirs or held by a process",
        format!("peer in namespace id {id}, which no mount or process here holds"),
        format!(
            "if no sandbox of the runtime uses it (crictl pods; crictl inspectp shows each \
             sandbox's netns), the link is a leftover of a removed pod and `ip link del {}` \
             removes it; if the runtime mounts its namespaces elsewhere, run doctor again with \
             --netns-dir first (a live pod's link must not be deleted)",
            link.name
        ),
    )]
}

pub struct Facts<'a> {
    /// The host end's name.
    pub link: &'a str,
    /// The pod namespace its peer was found in.
    pub netns: &'a str,
    /// The results dirs read (those that exist).
    pub cache_dirs: &'a [PathBuf],
    /// The cache holds entries of Calico's network: the runtime records attachments there.
    /// Not so (no cache, or only other networks' entries: dockershim's cache is elsewhere),
    /// "no entry" says nothing.
    pub cache_in_use: bool,
    /// Every entry of the results dirs was read (not cut at the bounds): the pod's entry may
    /// be among the ones left unread otherwise.
    pub cache_complete: bool,
    /// Every entry naming `link` as a host interface, with what it says of this pod, and every
    /// other entry of this pod's sandbox (`ThisPod`).
    pub named_by: Vec<(&'a CacheEntry, Claim)>,
}

pub fn check(f: &Facts) -> Vec<Finding> {
    if !f.cache_in_use || !f.cache_complete || f.named_by.iter().any(|(_, c)| *c != Claim::Other) {
        return vec![];
    }
    let dirs: Vec<String> = f
        .cache_dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    let found = if f.named_by.is_empty() {
        format!("no entry names {}", f.link)
    } else {
        let others: Vec<String> = f
            .named_by
            .iter()
            .map(|(e, _)| {
                format!(
                    "{} for sandbox {}",
                    e.describe(),
                    e.sandbox.as_deref().unwrap_or("?")
                )
            })
            .collect();
        format!(
            "only entries of other (or removed) sandboxes name it: {}",
            others.join("; ")
        )
    };
    vec![Finding::new(
        CheckId::OrphanVeth,
        format!("host veth {}", f.link),
        "no libcni cache entry claims this pod's attachment, so no runtime DEL will clean it up",
        format!(
            "an entry in {} naming {} with sandbox {} (the runtime writes one on every ADD)",
            dirs.join(", "),
            f.link,
            f.netns
        ),
        found,
        format!(
            "find the sandbox of namespace {} (crictl inspectp shows each sandbox's netns path): \
             if the runtime knows none, the namespace is a leftover, and removing it (ip netns \
             delete, for a bind mount under /run/netns) deletes the veth with it; if it is a \
             running pod, its runtime keeps its cache elsewhere (pass --cni-cache-dir) or the \
             pod was still being wired: run doctor again",
            f.netns
        ),
    )]
}

#[cfg(test)]
mod tests {
    use crate::inspect::Link;

    #[test]
    fn a_link_whose_peer_namespace_is_gone_is_an_orphan() {
        let link = |kind: &str, nsid: Option<i32>| Link {
            index: 9,
            name: "cali0123456789a".into(),
            kind: Some(kind.into()),
            peer_index: Some(2),
            peer_netnsid: nsid,
            ..Link::default()
        };
        let f = unpaired(&link("veth", Some(3)));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].check, CheckId::OrphanVeth);
        assert_eq!(f[0].severity, crate::checks::Severity::Warn);
        assert!(f[0].remedy.contains("ip link del cali0123456789a"));
        assert!(f[0].remedy.contains("--netns-dir"));
        assert_eq!(unpaired(&link("netkit", Some(3))).len(), 1);
        // Peer in the host's own namespace, or no veth at all: host-veth's alone.
        assert!(unpaired(&link("veth", None)).is_empty());
        assert!(unpaired(&link("bridge", Some(3))).is_empty());
    }

    use super::*;

    fn entry(sandbox: &str) -> CacheEntry {
        CacheEntry {
            path: "/var/lib/cni/results/k8s-pod-network-old-eth0".into(),
            container_id: Some("old".into()),
            k8s_namespace: Some("default".into()),
            k8s_pod: Some("web-0".into()),
            host_ifaces: vec!["caliA".into()],
            sandbox: Some(sandbox.into()),
            ..CacheEntry::default()
        }
    }

    #[test]
    fn only_where_the_cache_is_in_use_and_nothing_may_claim_the_pod() {
        let dirs = [PathBuf::from("/var/lib/cni/results")];
        let old = entry("/run/netns/cni-old");
        let g = |in_use: bool, complete: bool, named_by: Vec<(&CacheEntry, Claim)>| {
            check(&Facts {
                link: "caliA",
                netns: "/run/netns/cni-new",
                cache_dirs: &dirs,
                cache_in_use: in_use,
                cache_complete: complete,
                named_by,
            })
        };
        let f = |in_use: bool, named_by: Vec<(&CacheEntry, Claim)>| g(in_use, true, named_by);
        let got = f(true, vec![]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].check, CheckId::OrphanVeth);
        assert_eq!(got[0].object, "host veth caliA");
        assert_eq!(got[0].found, "no entry names caliA");
        // The recreated pod's predecessor names the link, but not this pod.
        let got = f(true, vec![(&old, Claim::Other)]);
        assert!(
            got[0].found.contains("pod default/web-0"),
            "{}",
            got[0].found
        );
        assert!(got[0].found.contains("cni-old"), "{}", got[0].found);
        // Claimed, or maybe claimed: nothing to say.
        assert!(f(true, vec![(&old, Claim::Other), (&old, Claim::ThisPod)]).is_empty());
        assert!(f(true, vec![(&old, Claim::Unsure)]).is_empty());
        // A runtime that keeps no cache here: "no entry" is no evidence.
        assert!(f(false, vec![]).is_empty());
        // More entries than the bounds let doctor read: the pod's may be among the rest.
        assert!(g(true, false, vec![]).is_empty());
    }
}
