//! `pod-netns`: CNI_NETNS can be opened and is a network namespace.

use super::{CheckId, Finding, PodFacts};

pub fn check(f: &PodFacts) -> Vec<Finding> {
    let Err(p) = f.pod else {
        return vec![];
    };
    vec![Finding::new(
        CheckId::PodNetns,
        format!("pod network namespace {}", p.path),
        "CNI_NETNS is not a usable network namespace",
        "a network namespace file (a bind mount of /proc/<pid>/ns/net)",
        format!("the path {}", p.found),
        "the runtime passed a CNI_NETNS that is gone or is not a network namespace: the sandbox was \
         probably torn down while its network was being set up; look at the container runtime's log \
         (containerd or CRI-O) for this sandbox",
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixtures::healthy_v4;
    use crate::inspect::NetnsProblem;

    #[test]
    fn fires_only_when_netns_unusable() {
        let mut fx = healthy_v4();
        assert!(check(&fx.facts()).is_empty());
        fx.pod = Err(NetnsProblem {
            path: "/run/netns/gone".into(),
            found: "cannot be opened: No such file or directory".into(),
        });
        let f = check(&fx.facts());
        assert_eq!(f.len(), 1);
        assert!(f[0].object.contains("/run/netns/gone"));
        assert!(f[0].found.contains("No such file"));
    }
}
