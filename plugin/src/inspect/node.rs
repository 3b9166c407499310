//! Gathering the node's state for the node checks: CNI files, both iptables backends, the
//! iptables command, forwarding and rp_filter sysctls. Read-only, in the calling thread's
//! namespace (the host's).

use super::calico_conf::{CalicoConf, Families, CALICO_TYPE};
use super::cni_files::CniFiles;
use super::cni_files::{self, CniFilesQuery};
use super::netfilter::NetfilterState;
use super::netfilter::{self, Backend};
use super::{netmgr, sysctl, Deadline, InspectError, SysctlRead};
use std::path::Path;

pub struct NodeQuery {
    pub files: CniFilesQuery,
    pub iptables_command: std::path::PathBuf,
    /// The IP families of the pod(s) being checked, when there are any (after calico: the
    /// prevResult's IPs); `None` first in the chain and on STATUS.
    pub pod_families: Option<Families>,
    /// Where the host's root is (`/`, or where a container mounted it): host paths named in
    /// Calico's config, and node files the checks find, are read under it.
    pub host_root: std::path::PathBuf,
    /// Warn when Calico's kubeconfig token expires within this many seconds.
    pub token_warn_seconds: u64,
}

/// Everything the node checks look at.
#[derive(Debug, Clone, Default)]
pub struct NodeFacts {
    /// The conf dir and the binaries our conflist needs; `None` when not gathered.
    pub cni: Option<CniFiles>,
    /// Chains of both iptables backends in the host namespace, or why they could not be read.
    pub netfilter: Option<Result<NetfilterState, String>>,
    /// What the host's `iptables` command is (legacy or nft), if it could be told.
    pub iptables_command: Option<IptablesCommand>,
    /// net.ipv4.ip_forward, net.ipv6.conf.all.forwarding, net.ipv4.conf.all.rp_filter.
    pub sysctls: Vec<SysctlRead>,
    /// The families of the pod(s) being checked, when known (see [`NodeQuery`]).
    pub pod_families: Option<Families>,
    /// Calico's entry in our network's conf file, when found and readable.
    pub calico: Option<CalicoConf>,
    /// Where the CNI dirs checked came from (the runtime's config, flags, defaults), for
    /// remedies; `doctor` sets it, ADD (given CNI_PATH by the runtime) does not.
    pub runtime: Option<super::runtime::RuntimeFacts>,
    /// Whether each plugin binary of the chain can be executed here (cni-binary-runnable).
    pub bin_exec: Option<super::elf::BinExecFacts>,
    /// Calico's kubeconfig and nodename file (calico-kubeconfig, calico-nodename).
    pub calico_files: Option<super::calico_node_files::CalicoNodeFiles>,
    /// From the config: the warning window before the kubeconfig token expires.
    pub token_warn_seconds: u64,
    /// NetworkManager, systemd-networkd and udev .link files; `None` when not gathered.
    pub netmgr: Option<netmgr::NetMgrFacts>,
}

/// Where the families the node must serve were learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FamiliesFrom {
    /// The pod's own IPs.
    Pod,
    /// Calico's IPAM config (no pod yet: first in the chain, STATUS).
    CalicoConf,
    /// Neither: IPv4 assumed, as Calico's default; checks that depend on it only warn.
    Assumed,
}

impl NodeFacts {
    pub fn sysctl(&self, key: &str) -> Option<&Result<String, String>> {
        self.sysctls.iter().find(|s| s.key == key).map(|s| &s.value)
    }

    /// The IP families pods on this node get: the pod's, else what Calico's IPAM config
    /// assigns, else IPv4 (Calico's default) as a guess.
    pub fn families(&self) -> (Families, FamiliesFrom) {
        if let Some(f) = self.pod_families.filter(|f| f.any()) {
            return (f, FamiliesFrom::Pod);
        }
        match self.calico.as_ref().and_then(CalicoConf::families) {
            Some(f) => (f, FamiliesFrom::CalicoConf),
            None => (Families::V4, FamiliesFrom::Assumed),
        }
    }
}

/// The host's `iptables` command and the backend it drives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IptablesCommand {
    /// The path asked about, e.g. /usr/sbin/iptables.
    pub path: String,
    /// What it resolves to, e.g. /usr/sbin/xtables-nft-multi.
    pub resolved: String,
    pub backend: Backend,
}

pub fn gather(q: &NodeQuery, deadline: Deadline) -> Result<NodeFacts, InspectError> {
    let netfilter = match netfilter::read_chains(deadline.instant()) {
        Ok(s) => Some(Ok(s)),
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
            return Err(InspectError::TimedOut {
                what: "read the iptables chains".into(),
            })
        }
        Err(e) => Some(Err(e.to_string())),
    };
    let cni = cni_files::gather(&q.files);
    let calico = CalicoConf::from_files(&cni, CALICO_TYPE);
    Ok(NodeFacts {
        bin_exec: Some(super::elf::gather(&cni, &q.host_root)),
        calico_files: Some(super::calico_node_files::gather(&cni, &q.host_root)),
        token_warn_seconds: q.token_warn_seconds,
        cni: Some(cni),
        netfilter,
        iptables_command: iptables_command(&q.iptables_command),
        sysctls: [
            "net.ipv4.ip_forward",
            "net.ipv6.conf.all.forwarding",
            "net.ipv4.conf.all.rp_filter",
        ]
        .into_iter()
        .map(sysctl::read)
        .collect(),
        pod_families: q.pod_families,
        calico,
        runtime: None,
        netmgr: Some(netmgr::gather(&q.host_root, deadline)),
    })
}

/// Which backend the node's `iptables` drives, from what the command resolves to through the
/// alternatives symlinks (`xtables-nft-multi` vs `xtables-legacy-multi`, as `iptables -V` says).
pub fn iptables_command(path: &Path) -> Option<IptablesCommand> {
    let resolved = std::fs::canonicalize(path).ok()?;
    let file = resolved.file_name()?.to_string_lossy().to_string();
    let backend = if file.contains("nft") {
        Backend::Nft
    } else if file.contains("legacy") || file == "xtables-multi" || file == "iptables" {
        // iptables before 1.8 (xtables-multi, or a plain binary) only speaks the legacy API.
        Backend::Legacy
    } else {
        return None;
    };
    Some(IptablesCommand {
        path: path.display().to_string(),
        resolved: resolved.display().to_string(),
        backend,
    })
}

/// An identity of the calling thread's network namespace: node-check outcomes are only valid
/// for the namespace they were gathered in. The netns cookie (Linux 5.14+) is never reused;
/// the nsfs inode, the fallback, can be reused once a namespace is gone.
pub fn netns_id() -> String {
    if let Some(cookie) = netns_cookie() {
        return format!("cookie:{cookie}");
    }
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata("/proc/thread-self/ns/net")
        .map(|m| m.ino())
        .unwrap_or(0);
    format!("ino:{ino}")
}

fn netns_cookie() -> Option<u64> {
    const SO_NETNS_COOKIE: libc::c_int = 71;
    // SAFETY: plain socket/getsockopt/close on an fd we own, with a correctly sized buffer.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return None;
        }
        let mut cookie: u64 = 0;
        let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
        let rc = libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            &mut cookie as *mut u64 as *mut libc::c_void,
            &mut len,
        );
        libc::close(fd);
        (rc == 0).then_some(cookie)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_iptables_variants_by_resolved_name() {
        let dir = std::env::temp_dir().join(format!("cp-ipt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (target, want) in [
            ("xtables-nft-multi", Some(Backend::Nft)),
            ("xtables-legacy-multi", Some(Backend::Legacy)),
            ("xtables-multi", Some(Backend::Legacy)),
            ("something-else", None),
        ] {
            let t = dir.join(target);
            std::fs::write(&t, b"").unwrap();
            let link = dir.join(format!("iptables-{target}"));
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&t, &link).unwrap();
            assert_eq!(iptables_command(&link).map(|c| c.backend), want, "{target}");
        }
        assert!(iptables_command(&dir.join("missing")).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
