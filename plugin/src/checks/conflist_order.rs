//! `conflist-order`: runtimes (containerd, CRI-O, kubelet) give pods the network of the first
//! valid config file in the conf dir, in lexical order. Another network's file sorting before
//! Calico's, typically a leftover flannel or podman bridge conflist, captures every new pod.

use super::cni_bin_dir::file_name;
use super::{CheckId, Finding, NodeFacts};
use crate::inspect::cni_files::ConfFile;

/// Plugins whose whole job is to delegate to other networks (Calico's among them): their file
/// is meant to come first.
const META_PLUGINS: &[&str] = &["multus", "multus-shim", "genie"];

/// What a runtime would accept: parsed, with at least one plugin.
fn usable(f: &ConfFile) -> bool {
    f.error.is_none() && !f.types.is_empty()
}

pub fn check(f: &NodeFacts) -> Vec<Finding> {
    let Some(cni) = &f.cni else {
        return vec![];
    };
    let Some(ours) = cni.ours.and_then(|i| cni.files.get(i)) else {
        return vec![]; // cni-bin-dir says our network was not found
    };
    let before = cni.ours.map_or(&[][..], |i| &cni.files[..i]);
    let Some(first) = before.iter().find(|f| usable(f)) else {
        return vec![];
    };
    // An earlier copy of our own network is not "another network"; a meta plugin delegates.
    if first.name == ours.name
        || first
            .types
            .iter()
            .any(|t| META_PLUGINS.contains(&t.as_str()))
    {
        return vec![];
    }
    let others = before
        .iter()
        .filter(|f| usable(f) && f.name != ours.name)
        .count();
    let mut found = format!(
        "{} comes first (network {:?}, plugins {})",
        file_name(&first.path),
        first.name.as_deref().unwrap_or_default(),
        first.types.join(", ")
    );
    if others > 1 {
        found.push_str(&format!(
            " ({} other networks' files sort before Calico's)",
            others
        ));
    }
    vec![Finding::new(
        CheckId::ConflistOrder,
        format!("CNI config file {}", first.path.display()),
        "another network's config file sorts before Calico's, so the runtime uses it",
        format!(
            "{} (network {:?}) to be the first valid config file in {}",
            file_name(&ours.path),
            ours.name.as_deref().unwrap_or_default(),
            cni.conf_dir.display()
        ),
        found,
        format!(
            "new pods get that network instead of Calico's (a leftover flannel or podman bridge conflist \
             captures every pod): remove {} or move it out of {}, or give Calico's file a name that sorts \
             first (install-cni's CNI_CONF_NAME, e.g. 00-calico.conflist)",
            first.path.display(),
            cni.conf_dir.display()
        ),
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Severity;
    use crate::inspect::cni_files::CniFiles;

    fn file(name: &str, net: &str, types: &[&str]) -> ConfFile {
        ConfFile {
            path: format!("/etc/cni/net.d/{name}").into(),
            name: Some(net.into()),
            types: types.iter().map(|t| t.to_string()).collect(),
            ..ConfFile::default()
        }
    }

    fn calico() -> ConfFile {
        file(
            "10-calico.conflist",
            "k8s-pod-network",
            &["calico", "calico-preflight"],
        )
    }

    fn facts(files: Vec<ConfFile>) -> NodeFacts {
        let ours = files
            .iter()
            .position(|f| f.path.ends_with("10-calico.conflist"));
        NodeFacts {
            cni: Some(CniFiles {
                conf_dir: "/etc/cni/net.d".into(),
                files,
                ours,
                ..CniFiles::default()
            }),
            ..NodeFacts::default()
        }
    }

    #[test]
    fn ours_first_or_only_later_files_is_quiet() {
        assert!(check(&facts(vec![calico()])).is_empty());
        assert!(check(&facts(vec![
            calico(),
            file("87-podman-bridge.conflist", "podman", &["bridge"])
        ]))
        .is_empty());
        assert!(check(&NodeFacts::default()).is_empty());
    }

    #[test]
    fn leftover_flannel_first_warns_naming_both_files() {
        let f = check(&facts(vec![
            file("05-cbr0.conflist", "cbr0", &["flannel", "portmap"]),
            calico(),
        ]));
        assert_eq!(f.len(), 1);
        let f = &f[0];
        assert_eq!(f.severity, Severity::Warn);
        assert_eq!(f.object, "CNI config file /etc/cni/net.d/05-cbr0.conflist");
        assert_eq!(
            f.expected,
            "10-calico.conflist (network \"k8s-pod-network\") to be the first valid config file in /etc/cni/net.d"
        );
        assert_eq!(
            f.found,
            "05-cbr0.conflist comes first (network \"cbr0\", plugins flannel, portmap)"
        );
        assert!(f.remedy.contains("remove /etc/cni/net.d/05-cbr0.conflist"));
        assert!(f.remedy.contains("00-calico.conflist"));
    }

    #[test]
    fn broken_files_are_skipped_like_the_runtime_does() {
        let mut broken = file("00-broken.conflist", "x", &[]);
        broken.error = Some("invalid JSON".into());
        assert!(check(&facts(vec![broken.clone(), calico()])).is_empty());
        let f = check(&facts(vec![
            broken,
            file("01-a.conf", "a", &["bridge"]),
            file("02-b.conf", "b", &["bridge"]),
            calico(),
        ]));
        assert!(f[0].object.ends_with("01-a.conf"), "{}", f[0].object);
        assert!(f[0].found.contains("2 other networks"), "{}", f[0].found);
    }

    #[test]
    fn multus_and_an_older_copy_of_our_network_are_not_flagged() {
        let multus = file("00-multus.conf", "multus-cni-network", &["multus"]);
        assert!(check(&facts(vec![multus, calico()])).is_empty());
        let older = file("05-calico.conflist", "k8s-pod-network", &["calico"]);
        assert!(check(&facts(vec![older, calico()])).is_empty());
    }
}
