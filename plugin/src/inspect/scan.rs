//! Finding every Calico pod on a node from the host side: the `cali*` veths, and for each the
//! namespace its peer lives in (matched by namespace id, as the kernel reports it for the veth).

use super::netlink::Netlink;
use super::{InspectError, Link};
use std::collections::{HashMap, HashSet};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A network namespace that may hold pods, and how a person would name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetnsRef {
    pub path: String,
    /// The bind-mount name (`cni-1b2c...` from containerd, `k8s_...` from dockershim), or
    /// `pid N (comm)` for a namespace only a process holds.
    pub label: String,
}

/// Host interfaces whose name starts with one of `prefixes` (Calico: "cali"), and the names of
/// every host interface (one link dump for both).
pub fn host_veths(
    nl: &mut Netlink,
    prefixes: &[String],
) -> Result<(Vec<Link>, HashSet<String>), InspectError> {
    let links = nl.links()?;
    let names = links.iter().map(|l| l.name.clone()).collect();
    Ok((host_ends(links, prefixes), names))
}

/// The links doctor pairs with pods, sorted by name: chosen by name, whatever their kind, so
/// a netkit host end (Calico's `device_type: "netkit"`) is paired by its peer like a veth,
/// and anything else with the prefix is reported by host-veth rather than skipped.
fn host_ends(links: Vec<Link>, prefixes: &[String]) -> Vec<Link> {
    let mut v: Vec<Link> = links
        .into_iter()
        .filter(|l| prefixes.iter().any(|p| l.name.starts_with(p.as_str())))
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// Namespaces bind-mounted in `dirs` and, with `procs`, those held by processes; each once.
pub fn candidate_netns(dirs: &[PathBuf], procs: bool) -> Vec<NetnsRef> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut add = |path: PathBuf, label: String| {
        if let Some(m) = may_be_netns(&path) {
            if seen.insert((m.dev(), m.ino())) {
                out.push(NetnsRef {
                    path: path.display().to_string(),
                    label,
                });
            }
        }
    };
    for dir in dirs {
        let Ok(rd) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut names: Vec<_> = rd.flatten().map(|e| e.file_name()).collect();
        names.sort();
        for n in names {
            add(dir.join(&n), n.to_string_lossy().into_owned());
        }
    }
    if procs {
        let Ok(rd) = std::fs::read_dir("/proc") else {
            return out;
        };
        let mut pids: Vec<u32> = rd
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        pids.sort_unstable();
        for pid in pids {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            add(
                PathBuf::from(format!("/proc/{pid}/ns/net")),
                format!("pid {pid} ({})", comm.trim()),
            );
        }
    }
    out
}

/// Only what can be a namespace: an nsfs inode shows as a regular file, bind-mounted
/// (/run/netns/x) or through a symlink (/proc/<pid>/ns/net). lstat first, so a FIFO, socket or
/// device node in a netns dir is never opened (a device may act on open).
fn may_be_netns(path: &Path) -> Option<std::fs::Metadata> {
    let t = std::fs::symlink_metadata(path).ok()?.file_type();
    if !(t.is_file() || t.is_symlink()) {
        return None;
    }
    std::fs::metadata(path).ok().filter(|m| m.is_file())
}

/// How long ago the namespace at `path` was made, as its nsfs inode tells (its times are set
/// when the inode is made: when the runtime bind-mounts the namespace, or first opens it).
/// `None` when it cannot be told (then callers take it as young). stat opens nothing.
pub fn netns_age(path: &str) -> Option<std::time::Duration> {
    let m = std::fs::metadata(path).ok()?;
    let made =
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(m.ctime()).ok()?);
    std::time::SystemTime::now().duration_since(made).ok()
}

/// Namespace id (as seen from the calling thread's namespace) -> namespace, for those that have one.
pub fn by_nsid(
    nl: &mut Netlink,
    candidates: Vec<NetnsRef>,
) -> Result<HashMap<i32, NetnsRef>, InspectError> {
    let mut map = HashMap::new();
    for c in candidates {
        // Opened only once checked, on the handle, to be a regular file (nsfs): a name swapped
        // for a FIFO or a device since the listing is still never opened for reading.
        let Ok(f) = super::runtime::conf_dir::open_regular(Path::new(&c.path)) else {
            continue;
        };
        match nl.nsid_of_fd(f.as_raw_fd()) {
            Ok(Some(id)) => {
                map.entry(id).or_insert(c);
            }
            Ok(None) => {}
            // Not a namespace (any more): `ip netns del` unmounts before it unlinks, and a
            // process may exit between the listing and the open. Not a reason to stop the scan.
            Err(InspectError::Kernel { errno, .. }) => {
                log::debug!(
                    "{}: no namespace id ({})",
                    c.path,
                    std::io::Error::from_raw_os_error(errno)
                );
            }
            Err(e) => return Err(e),
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netkit_host_ends_are_scanned_like_veths() {
        let l = |name: &str, kind: &str| Link {
            name: name.into(),
            kind: Some(kind.into()),
            peer_index: Some(2),
            peer_netnsid: Some(1),
            ..Link::default()
        };
        let links = vec![
            l("calib", "netkit"),
            l("eth0", "veth"),
            l("calia", "veth"),
            l("tap1", "netkit"),
        ];
        let names: Vec<String> = host_ends(links, &["cali".into(), "tap".into()])
            .into_iter()
            .map(|l| l.name)
            .collect();
        assert_eq!(names, ["calia", "calib", "tap1"]);
    }
}
