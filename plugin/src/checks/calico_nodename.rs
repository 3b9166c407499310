//! `calico-nodename`: Calico's `nodename_file` (default /var/lib/calico/nodename, written by
//! calico-node) exists unless `nodename_file_optional`; Calico's CNI fails every ADD otherwise
//! with `stat /var/lib/calico/nodename: no such file or directory` (calico#1795, #2841, #3847;
//! cni-plugin/pkg/plugin/plugin.go). When the entry also sets `nodename`, the CNI uses that
//! (cni-plugin/internal/pkg/utils/utils.go DetermineNodename) while calico-node uses the file's:
//! they must agree, or pods get no routes (calico#1093).

use super::{CheckId, Finding, NodeFacts, Severity};
use crate::inspect::calico_node_files::EntryLookup;

pub fn check(f: &NodeFacts) -> Vec<Finding> {
    let Some(cf) = &f.calico_files else {
        return vec![];
    };
    // An entry that cannot be found is reported once, by calico-kubeconfig.
    let (EntryLookup::Found(e), Some(n)) = (&cf.entry, &cf.nodename) else {
        return vec![];
    };
    let path = n.resolved.display().to_string();
    let object = format!("Calico's nodename file {path}");
    let conflist = e.conflist.display();
    match &n.read {
        Ok(None) if e.nodename_file_optional => vec![],
        Ok(None) => vec![Finding::new(
            CheckId::CalicoNodename,
            object,
            "Calico's nodename file does not exist",
            format!(
                "{} written by calico-node (nodename_file_optional is not set in {conflist})",
                n.named.display()
            ),
            format!("{path} does not exist"),
            format!(
                "Calico's CNI fails every pod with `stat {}: no such file or directory`: check that \
                 calico-node runs on this node and mounts the host's /var/lib/calico (its var-lib-calico \
                 hostPath); it writes the file when it starts",
                n.named.display()
            ),
        )],
        Err(err) => vec![Finding::new(
            CheckId::CalicoNodename,
            object,
            "Calico's nodename file cannot be read",
            "a regular file holding this node's name",
            format!("{path}: {err}"),
            "Calico's CNI then falls back to the host name, which may not be the node's name in Calico: \
             restart calico-node on this node to write it anew",
        )
        .at(Severity::Warn)],
        Ok(Some(file_name)) => match &e.nodename {
            Some(entry_name) if !file_name.is_empty() && entry_name != file_name => {
                vec![Finding::new(
                    CheckId::CalicoNodename,
                    object,
                    "Calico's entry and its nodename file name different nodes",
                    "the entry's nodename equal to the name calico-node wrote",
                    format!("nodename {entry_name:?} in {conflist}, {file_name:?} in {path}"),
                    format!(
                        "the CNI registers pods under {entry_name:?} (the entry wins) while calico-node, \
                         which programs their routes, is {file_name:?}: pods get no routes. Remove \
                         nodename from Calico's entry (or set it to {file_name:?})"
                    ),
                )]
            }
            _ => vec![],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::calico_node_files::{CalicoEntry, CalicoNodeFiles, NodenameFacts};

    fn facts(e: CalicoEntry, read: Result<Option<String>, String>) -> NodeFacts {
        NodeFacts {
            calico_files: Some(CalicoNodeFiles {
                entry: EntryLookup::Found(CalicoEntry {
                    conflist: "/etc/cni/net.d/10-calico.conflist".into(),
                    ..e
                }),
                kubeconfig: None,
                nodename: Some(NodenameFacts {
                    named: "/var/lib/calico/nodename".into(),
                    resolved: "/host/var/lib/calico/nodename".into(),
                    read,
                }),
                now_unix: 0,
            }),
            ..NodeFacts::default()
        }
    }

    #[test]
    fn present_and_matching_is_quiet() {
        assert!(check(&facts(CalicoEntry::default(), Ok(Some("node-1".into())))).is_empty());
        let e = CalicoEntry {
            nodename: Some("node-1".into()),
            ..CalicoEntry::default()
        };
        assert!(check(&facts(e, Ok(Some("node-1".into())))).is_empty());
        assert!(check(&NodeFacts::default()).is_empty());
    }

    #[test]
    fn missing_is_an_error_unless_optional() {
        let f = check(&facts(CalicoEntry::default(), Ok(None)));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Error);
        assert_eq!(f[0].found, "/host/var/lib/calico/nodename does not exist");
        assert!(f[0]
            .remedy
            .contains("stat /var/lib/calico/nodename: no such file or directory"));
        let e = CalicoEntry {
            nodename_file_optional: true,
            ..CalicoEntry::default()
        };
        assert!(check(&facts(e, Ok(None))).is_empty());
    }

    #[test]
    fn mismatch_is_an_error_and_unreadable_a_warning() {
        let e = CalicoEntry {
            nodename: Some("node-a".into()),
            ..CalicoEntry::default()
        };
        let f = check(&facts(e, Ok(Some("node-b".into()))));
        assert_eq!(
            f[0].found,
            "nodename \"node-a\" in /etc/cni/net.d/10-calico.conflist, \"node-b\" in /host/var/lib/calico/nodename"
        );
        let f = check(&facts(
            CalicoEntry::default(),
            Err("not a regular file".into()),
        ));
        assert_eq!(f[0].severity, Severity::Warn);
    }
}
