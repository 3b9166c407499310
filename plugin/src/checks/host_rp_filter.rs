//! `host-rp-filter`: Felix refuses to start when `net.ipv4.conf.all.rp_filter` is 2 (loose)
//! unless told to ignore it, leaving the node without policy or routes for new pods.

use super::{CheckId, Finding, NodeFacts};

pub const KEY: &str = "net.ipv4.conf.all.rp_filter";

pub fn check(f: &NodeFacts) -> Vec<Finding> {
    match f.sysctl(KEY) {
        Some(Ok(v)) if v == "2" => vec![Finding::new(
            CheckId::HostRpFilter,
            "the node",
            format!("{KEY} is 2 (loose reverse-path filtering)"),
            format!("{KEY} = 0 or 1"),
            "2",
            "Felix stops with \"kernel's RPF check is set to 'loose'\" and this node's pods get no policy: \
             set net.ipv4.conf.all.rp_filter=1 in /etc/sysctl.d/, or FELIX_IGNORELOOSERPF=true on \
             calico-node if loose mode is required here",
        )],
        _ => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::SysctlRead;

    #[test]
    fn only_loose_mode_fires() {
        for (v, n) in [("0", 0), ("1", 0), ("2", 1)] {
            let f = NodeFacts {
                sysctls: vec![SysctlRead {
                    key: KEY.into(),
                    value: Ok(v.into()),
                }],
                ..NodeFacts::default()
            };
            assert_eq!(check(&f).len(), n, "{v}");
        }
    }
}
