//! doctor and libcni's result cache: pods named by the entry the runtime recorded for them,
//! and the reconciliation of cache against node (`orphan-veth`, `leaked-cache-entry`).

use super::doctor::{Options, PodReport, DEFAULT_CNI_CACHE_DIR};
use crate::checks::{leaked_cache_entry, orphan_veth, CheckId, Finding, Severity};
use crate::inspect::cni_cache::{self, CacheEntry, Claim, CniCache, Sandbox};
use crate::inspect::rooted::resolve_under;
use crate::inspect::scan::NetnsRef;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// The cache as read for one scan, each entry with where its sandbox stands.
pub struct CacheView {
    pub cache: Option<CniCache>,
    pub entries: Vec<(CacheEntry, Sandbox)>,
    pub calico_network: Option<String>,
    pub prefixes: Vec<String>,
    /// The cache holds entries of Calico's network: "no entry" means something.
    pub in_use: bool,
    /// [`Options::orphan_grace`].
    pub orphan_grace: std::time::Duration,
    /// Indexes into `entries`: by host interface name, and by live sandbox, so that pairing
    /// every pod with its entries stays linear in pods + entries.
    by_link: HashMap<String, Vec<usize>>,
    by_sandbox: HashMap<(u64, u64), Vec<usize>>,
}

/// The results dirs to read: `<dir>/results` and `<dir>/cache/results`, where dockershim and
/// cri-dockerd keep theirs (kubelet's and cri-dockerd's `--cni-cache-dir` default
/// /var/lib/cni/cache). The default dir is the host's, read under --host-root; a dir given as a
/// flag is used as given (the DaemonSet mounts the host's at the same path).
pub fn results_dirs(o: &Options) -> Vec<PathBuf> {
    let d = if o.cni_cache_dir == Path::new(DEFAULT_CNI_CACHE_DIR) {
        let root = o.host_root.clone().unwrap_or_else(|| PathBuf::from("/"));
        resolve_under(&root, &o.cni_cache_dir)
    } else {
        o.cni_cache_dir.clone()
    };
    vec![d.join("results"), d.join("cache").join("results")]
}

impl CacheView {
    /// `root`: where the host's paths (the entries' sandboxes) are read under.
    pub fn gather(o: &Options, root: &Path, calico_network: Option<String>) -> CacheView {
        let cache = cni_cache::read(&results_dirs(o));
        let entries: Vec<(CacheEntry, Sandbox)> = cache
            .iter()
            .flat_map(|c| c.entries.iter())
            .map(|e| (e.clone(), cni_cache::sandbox_state(root, e)))
            .collect();
        // Entries of removed sandboxes are leftovers (leaked-cache-entry's), not evidence that
        // the runtime records today's pods here: it may have moved its cache since.
        let in_use = entries.iter().any(|(e, s)| {
            *s != Sandbox::Gone && e.is_calicos(calico_network.as_deref(), &o.prefixes)
        });
        let (mut by_link, mut by_sandbox) = (HashMap::new(), HashMap::new());
        for (i, (e, s)) in entries.iter().enumerate() {
            let mut names: Vec<&String> = e.host_ifaces.iter().collect();
            names.dedup();
            for n in names {
                by_link.entry(n.clone()).or_insert_with(Vec::new).push(i);
            }
            if let Sandbox::Live(d, ino) = s {
                by_sandbox
                    .entry((*d, *ino))
                    .or_insert_with(Vec::new)
                    .push(i);
            }
        }
        CacheView {
            cache,
            entries,
            calico_network,
            prefixes: o.prefixes.clone(),
            orphan_grace: o.orphan_grace,
            in_use,
            by_link,
            by_sandbox,
        }
    }

    /// Every entry naming `link` as a host interface, with what it says of the pod in `ns`;
    /// then every other entry whose sandbox is the pod's namespace (`ThisPod`): the runtime
    /// knows the pod, even where the entry's result does not list Calico's link (Multus's own
    /// entry, whose result is the cluster network's when Calico is a secondary network).
    fn named_by(&self, link: &str, ns: Option<&NetnsRef>) -> Vec<(&CacheEntry, Claim)> {
        let pod = ns.and_then(|n| cni_cache::ns_identity(Path::new(&n.path)).ok());
        let naming = self.by_link.get(link).map(Vec::as_slice).unwrap_or(&[]);
        let mut out: Vec<(&CacheEntry, Claim)> = naming
            .iter()
            .map(|&i| (&self.entries[i].0, cni_cache::claim(self.entries[i].1, pod)))
            .collect();
        let sharing = pod
            .and_then(|p| self.by_sandbox.get(&p))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        out.extend(
            sharing
                .iter()
                .filter(|i| !naming.contains(i))
                .map(|&i| (&self.entries[i].0, Claim::ThisPod)),
        );
        out
    }

    /// The entry of the pod on `link` (peer in `ns`, when found): the one whose sandbox is the
    /// pod's namespace (naming the link first, Calico's next); failing that, the only one that
    /// may be; or, where several may be and all name the same pod (a recreated StatefulSet
    /// pod whose entries record no sandbox), that name alone, without uid or container.
    pub fn entry_for(&self, link: &str, ns: Option<&NetnsRef>) -> Option<CacheEntry> {
        let named = self.named_by(link, ns);
        let this = |calicos: bool| {
            named.iter().find(|(e, c)| {
                *c == Claim::ThisPod
                    && (!calicos || e.is_calicos(self.calico_network.as_deref(), &self.prefixes))
            })
        };
        if let Some((e, _)) = this(true) {
            return Some((*e).clone());
        }
        if let Some((e, _)) = this(false) {
            // Another network's result (Multus's, of the cluster network): its names are the
            // pod's, its routes are not what Calico's IPAM returned.
            return Some(CacheEntry {
                result_has_routes: None,
                ..(*e).clone()
            });
        }
        let maybe: Vec<&CacheEntry> = named
            .iter()
            .filter(|(_, c)| *c == Claim::Unsure)
            .map(|(e, _)| *e)
            .collect();
        match maybe.as_slice() {
            [] => None,
            [e] => Some((*e).clone()),
            [first, rest @ ..] => {
                let same = |e: &&CacheEntry| {
                    (&e.k8s_namespace, &e.k8s_pod) == (&first.k8s_namespace, &first.k8s_pod)
                };
                (first.k8s_pod.is_some() && rest.iter().all(same)).then(|| CacheEntry {
                    path: first.path.clone(),
                    k8s_namespace: first.k8s_namespace.clone(),
                    k8s_pod: first.k8s_pod.clone(),
                    network_name: first.network_name.clone(),
                    host_ifaces: first.host_ifaces.clone(),
                    // ADD's prevResult: where every candidate agrees.
                    result_has_routes: first
                        .result_has_routes
                        .filter(|r| rest.iter().all(|e| e.result_has_routes == Some(*r))),
                    ..CacheEntry::default()
                })
            }
        }
    }

    /// `orphan-veth` for a pod whose namespace was found (an unpaired link is host-veth's).
    pub fn orphan_findings(&self, link: &str, ns: &NetnsRef) -> Vec<Finding> {
        let dirs = self
            .cache
            .as_ref()
            .map(|c| c.dirs.clone())
            .unwrap_or_default();
        // libcni writes the entry only once the whole chain's ADD succeeded: a pod being wired
        // now has none yet. Its namespace's inode was made when the runtime bind-mounted it
        // (nsfs sets its times then), so a young one is left alone.
        let young =
            crate::inspect::scan::netns_age(&ns.path).is_none_or(|age| age < self.orphan_grace);
        if young {
            return vec![];
        }
        orphan_veth::check(&orphan_veth::Facts {
            link,
            netns: &ns.path,
            cache_dirs: &dirs,
            cache_in_use: self.in_use,
            cache_complete: self.cache.as_ref().is_some_and(|c| !c.truncated),
            named_by: self.named_by(link, Some(ns)),
        })
    }

    /// `leaked-cache-entry` over every entry; `host_links`: every link name in the host.
    pub fn leak_findings(&self, host_links: &HashSet<String>) -> Vec<Finding> {
        leaked_cache_entry::check(&leaked_cache_entry::Facts {
            entries: &self.entries,
            host_links,
            calico_network: self.calico_network.as_deref(),
            prefixes: &self.prefixes,
            host_netns: host_links
                .iter()
                .any(|l| self.prefixes.iter().any(|p| l.starts_with(p.as_str())))
                || cni_cache::in_init_netns(),
        })
    }

    /// For the report: where the cache was read, what it held, what could not be read.
    pub fn summary(&self) -> Option<CacheSummary> {
        let c = self.cache.as_ref()?;
        Some(CacheSummary {
            dirs: c.dirs.iter().map(|d| d.display().to_string()).collect(),
            entries: c.entries.len(),
            calico_entries: self
                .entries
                .iter()
                .filter(|(e, _)| e.is_calicos(self.calico_network.as_deref(), &self.prefixes))
                .count(),
            problems: c
                .problems
                .iter()
                .map(|p| format!("{}: {}", p.path.display(), p.detail))
                .collect(),
            truncated: c.truncated,
        })
    }
}

/// The `cniCache` section of doctor's JSON report (absent when no results dir exists).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheSummary {
    pub dirs: Vec<String>,
    pub entries: usize,
    pub calico_entries: usize,
    pub problems: Vec<String>,
    pub truncated: bool,
}

/// The pod's names, from its entry.
pub fn name_report(r: &mut PodReport, e: Option<&CacheEntry>) {
    let Some(e) = e else { return };
    r.k8s_namespace = e.k8s_namespace.clone();
    r.k8s_pod = e.k8s_pod.clone();
    r.k8s_pod_uid = e.k8s_pod_uid.clone();
    r.container_id = e.container_id.clone();
}

/// `--pod NAMESPACE/NAME` selects the entry's pod.
pub fn selects(sel: &(String, String), e: Option<&CacheEntry>) -> bool {
    e.is_some_and(|e| {
        e.k8s_namespace.as_deref() == Some(sel.0.as_str())
            && e.k8s_pod.as_deref() == Some(sel.1.as_str())
    })
}

/// The operator's severity for a doctor-only check, as the pod and node checks get theirs.
pub fn with_overrides(
    findings: Vec<Finding>,
    overrides: impl Fn(CheckId) -> Option<Severity>,
) -> Vec<Finding> {
    findings
        .into_iter()
        .filter_map(|f| match overrides(f.check) {
            Some(Severity::Off) => None,
            Some(sev) => Some(f.at(sev)),
            None => Some(f),
        })
        .collect()
}

/// `--pod` named a pod that is not on this node's links.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodNotFound {
    /// `namespace/name` as given.
    pub pod: String,
    /// How many pods (host links) were found, and the first of them by name.
    pub pods_found: usize,
    pub found: Vec<String>,
}

/// How many names a "not found" lists.
pub const NOT_FOUND_LISTED: usize = 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_dir_is_the_hosts_and_includes_dockershims() {
        let mut o = Options::default();
        assert_eq!(
            results_dirs(&o),
            [
                PathBuf::from("/var/lib/cni/results"),
                PathBuf::from("/var/lib/cni/cache/results")
            ]
        );
        o.host_root = Some("/nonexistent-root".into());
        assert_eq!(
            results_dirs(&o)[0],
            PathBuf::from("/nonexistent-root/var/lib/cni/results")
        );
        // A dir given as a flag is used as given.
        o.cni_cache_dir = "/srv/cni".into();
        assert_eq!(
            results_dirs(&o),
            [
                PathBuf::from("/srv/cni/results"),
                PathBuf::from("/srv/cni/cache/results")
            ]
        );
    }
}
