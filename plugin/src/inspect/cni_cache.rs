//! libcni's result cache, read-only: what the runtime recorded of each attachment it made
//! (containernetworking/cni libcni/api.go `cachedInfo`, `getCacheFilePath`, `cacheAdd`).
//!
//! Layout: `<cacheDir>/results/<networkName>-<containerID>-<ifName>` (libcni >= 0.7.0).
//! libcni >= 0.8.0 writes `{"kind": "cniCacheV1", "containerId", "config" (base64), "ifName",
//! "networkName", "cniArgs": [[k, v], ...], "capabilityArgs", "result"}`, >= 1.2.0 adds
//! `"netns"`; 0.7.x wrote the bare result (libcni's `getLegacyCachedResult` still reads that).
//! containerd, CRI-O and podman use libcni's default dir, /var/lib/cni; dockershim and
//! cri-dockerd pass kubelet's `--cni-cache-dir`, default /var/lib/cni/cache.
//!
//! Every file read is bounded (MAX_CONF_BYTES each, MAX_TOTAL_BYTES in all, at most
//! MAX_CACHE_ENTRIES entries), only regular files are opened, and a file that cannot be read
//! or parsed is a problem recorded with its path, never a reason to stop.

use super::runtime::conf_dir::read_regular;
use serde_json::Value;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Entries looked at in one results dir: far above any node's pods x interfaces.
pub const MAX_CACHE_ENTRIES: usize = 16384;
/// Bytes read from all entries together (a real entry is a few KiB, its config included).
pub const MAX_TOTAL_BYTES: u64 = 64 << 20;
/// libcni/api.go `CNICacheV1`.
pub const CNI_CACHE_V1: &str = "cniCacheV1";

/// One attachment as the runtime recorded it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheEntry {
    pub path: PathBuf,
    /// libcni 0.7.x's layout: the file is the bare result, so only the result's facts are known.
    pub legacy: bool,
    pub container_id: Option<String>,
    pub if_name: Option<String>,
    pub network_name: Option<String>,
    /// `netns` (libcni >= 1.2.0): the namespace path the runtime passed as CNI_NETNS.
    pub netns: Option<String>,
    /// From `cniArgs` (the kubelet's CNI_ARGS, as the runtime passed them).
    pub k8s_namespace: Option<String>,
    pub k8s_pod: Option<String>,
    pub k8s_pod_uid: Option<String>,
    /// The result's interfaces without a sandbox: the host ends (Calico: the `cali*` veth).
    pub host_ifaces: Vec<String>,
    /// The pod's namespace: the `sandbox` of the result's container interface (the one named
    /// `ifName` when there is one), else `netns`.
    pub sandbox: Option<String>,
    /// The result's addresses (`ips[].address`; 0.1.0/0.2.0: `ip4.ip`, `ip6.ip`).
    pub ips: Vec<String>,
    /// Whether the result lists routes (`None`: no result). Calico's calico-ipam returns none
    /// for a KubeVirt migration target and then programs no host routes (k8s.go
    /// skipHostSideRoutes): doctor judges such a pod as ADD did.
    pub result_has_routes: Option<bool>,
}

/// `namespace/name` (the name alone without a namespace), as kubectl names a pod.
pub fn k8s_name(namespace: Option<&str>, name: Option<&str>) -> Option<String> {
    match (namespace, name) {
        (Some(ns), Some(n)) => Some(format!("{ns}/{n}")),
        (None, Some(n)) => Some(n.to_string()),
        _ => None,
    }
}

impl CacheEntry {
    /// `namespace/name` from `cniArgs`, when the runtime passed them.
    pub fn k8s_name(&self) -> Option<String> {
        k8s_name(self.k8s_namespace.as_deref(), self.k8s_pod.as_deref())
    }
    /// How a person names the entry's pod in a message.
    pub fn describe(&self) -> String {
        let mut s = format!("cache entry {}", self.path.display());
        match (self.k8s_name(), &self.container_id) {
            (Some(n), Some(c)) => s.push_str(&format!(" (pod {n}, container {c})")),
            (Some(n), None) => s.push_str(&format!(" (pod {n})")),
            (None, Some(c)) => s.push_str(&format!(" (container {c})")),
            (None, None) => {}
        }
        s
    }
}

/// A cache file that was not used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheProblem {
    pub path: PathBuf,
    pub detail: String,
}

/// What the results dirs held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniCache {
    /// The results dirs that exist, in the order read.
    pub dirs: Vec<PathBuf>,
    pub entries: Vec<CacheEntry>,
    pub problems: Vec<CacheProblem>,
    /// More entries (or bytes) than the bounds: the rest were not read.
    pub truncated: bool,
}

/// Reads every `results` dir of `dirs` (each a `results` dir itself). `None`: none of them
/// exists, which is "this runtime keeps no cache here" (podman rootless, old runtimes, a
/// cache dir elsewhere), not a fault.
pub fn read(results_dirs: &[PathBuf]) -> Option<CniCache> {
    let mut out = CniCache::default();
    let mut budget = MAX_TOTAL_BYTES;
    for dir in results_dirs {
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                out.dirs.push(dir.clone());
                out.problems.push(CacheProblem {
                    path: dir.clone(),
                    detail: format!("cannot list: {e}"),
                });
                continue;
            }
        };
        out.dirs.push(dir.clone());
        let mut names = Vec::new();
        for (i, e) in rd.enumerate() {
            if i >= MAX_CACHE_ENTRIES {
                out.truncated = true;
                break;
            }
            let Ok(e) = e else { continue };
            // libcni writes files only; a dir here is not an entry.
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            names.push(e.file_name());
        }
        names.sort();
        for n in names {
            let path = dir.join(&n);
            match read_regular(&path) {
                Ok(bytes) => {
                    let len = bytes.len() as u64;
                    if len > budget {
                        out.truncated = true;
                        break;
                    }
                    budget -= len;
                    match parse(&path, &bytes) {
                        Ok(e) => out.entries.push(e),
                        Err(detail) => out.problems.push(CacheProblem { path, detail }),
                    }
                }
                Err(e) => out.problems.push(CacheProblem {
                    path,
                    detail: e.to_string(),
                }),
            }
        }
    }
    (!out.dirs.is_empty()).then_some(out)
}

fn s(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(String::from)
}

/// One cache file's content.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<CacheEntry, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let Some(obj) = v.as_object() else {
        return Err("not a JSON object".into());
    };
    let mut e = CacheEntry {
        path: path.to_path_buf(),
        ..CacheEntry::default()
    };
    let result = match obj.get("kind") {
        Some(k) if k.as_str() == Some(CNI_CACHE_V1) => {
            e.container_id = s(&v["containerId"]);
            e.if_name = s(&v["ifName"]);
            e.network_name = s(&v["networkName"]);
            e.netns = s(&v["netns"]);
            for kv in v["cniArgs"].as_array().into_iter().flatten() {
                let (Some(k), Some(val)) = (kv[0].as_str(), s(&kv[1])) else {
                    continue;
                };
                match k {
                    "K8S_POD_NAMESPACE" => e.k8s_namespace = Some(val),
                    "K8S_POD_NAME" => e.k8s_pod = Some(val),
                    "K8S_POD_UID" => e.k8s_pod_uid = Some(val),
                    _ => {}
                }
            }
            &v["result"]
        }
        Some(k) => return Err(format!("kind {k}, not {CNI_CACHE_V1}")),
        // libcni 0.7.x: the result itself (getLegacyCachedResult).
        None if obj.contains_key("cniVersion") => {
            e.legacy = true;
            &v
        }
        None => return Err(format!("no \"kind\" ({CNI_CACHE_V1}) and not a CNI result")),
    };
    let ifaces = result["interfaces"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let mut sandboxes = Vec::new();
    for i in ifaces {
        let Some(name) = s(&i["name"]) else { continue };
        match s(&i["sandbox"]) {
            None => e.host_ifaces.push(name),
            Some(sb) => sandboxes.push((name, sb)),
        }
    }
    let pod_if = sandboxes
        .iter()
        .find(|(n, _)| Some(n) == e.if_name.as_ref())
        .or(sandboxes.first());
    e.sandbox = pod_if.map(|(_, sb)| sb.clone()).or_else(|| e.netns.clone());
    for ip in result["ips"].as_array().into_iter().flatten() {
        e.ips.extend(s(&ip["address"]));
    }
    // 0.1.0/0.2.0 results.
    for fam in ["ip4", "ip6"] {
        e.ips.extend(s(&result[fam]["ip"]));
    }
    // As ADD reads its prevResult: absent and empty alike.
    e.result_has_routes = result.as_object().map(|_| {
        result["routes"].as_array().is_some_and(|r| !r.is_empty())
            || ["ip4", "ip6"].iter().any(|f| {
                result[f]["routes"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty())
            })
    });
    Ok(e)
}

/// Where a cache entry's sandbox stands, as seen from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sandbox {
    /// The entry names no sandbox.
    Unnamed,
    /// A live network namespace: its nsfs identity (st_dev, st_ino).
    Live(u64, u64),
    /// The path does not exist: the namespace was removed (or the node rebooted).
    Gone,
    /// The path exists but is no namespace here (an unmounted bind-mount file, or the host's
    /// mounts not propagated into this mount namespace): cannot tell.
    Unknown,
}

/// A network namespace's identity: two paths (`/var/run/netns/x`, `/run/netns/x`,
/// `/proc/<pid>/ns/net`) are the same namespace exactly when these agree. stat and statfs
/// open nothing, so a FIFO or device at the path is harmless.
pub fn ns_identity(path: &Path) -> Result<(u64, u64), std::io::Error> {
    let m = std::fs::metadata(path)?;
    let on_nsfs = nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
        .unwrap_or(false);
    if !on_nsfs {
        return Err(std::io::Error::other("not a namespace"));
    }
    Ok((m.dev(), m.ino()))
}

/// The initial pid namespace's inode number (include/linux/proc_ns.h `PROC_PID_INIT_INO`).
const PROC_PID_INIT_INO: u64 = 0xEFFF_FFFC;

/// Whether this process is, evidently, in the host's network namespace: in the initial pid
/// namespace and in pid 1's network namespace. `false` where it cannot be told (a container's
/// own pid namespace, no /proc): callers then need other evidence.
pub fn in_init_netns() -> bool {
    let id = |p: &str| ns_identity(Path::new(p)).ok();
    id("/proc/self/ns/pid").is_some_and(|(_, ino)| ino == PROC_PID_INIT_INO)
        && id("/proc/self/ns/net").is_some()
        && id("/proc/self/ns/net") == id("/proc/1/ns/net")
}

/// The state of `entry`'s sandbox. Its path is the host's: read under `root`, except /proc,
/// which is the live one (as doctor reads it).
pub fn sandbox_state(root: &Path, entry: &CacheEntry) -> Sandbox {
    let Some(sb) = entry.sandbox.as_deref() else {
        return Sandbox::Unnamed;
    };
    let p = Path::new(sb);
    let path = if p.starts_with("/proc") || !p.is_absolute() {
        p.to_path_buf()
    } else {
        super::rooted::resolve_under(root, p)
    };
    match ns_identity(&path) {
        Ok((dev, ino)) => Sandbox::Live(dev, ino),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Sandbox::Gone,
        Err(_) => Sandbox::Unknown,
    }
}

impl CacheEntry {
    /// Calico's attachment: of Calico's network (its conflist's `name`), or with a host
    /// interface of Calico's prefix (Multus records its own network name, with Calico's result).
    pub fn is_calicos(&self, calico_network: Option<&str>, prefixes: &[String]) -> bool {
        (calico_network.is_some() && self.network_name.as_deref() == calico_network)
            || self
                .host_ifaces
                .iter()
                .any(|i| prefixes.iter().any(|p| i.starts_with(p.as_str())))
    }
}

/// What an entry naming a pod's host link says of that pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Its sandbox is the pod's namespace.
    ThisPod,
    /// Its sandbox is unnamed or cannot be judged here: it may be this pod's.
    Unsure,
    /// Its sandbox is another namespace, or gone: an older attachment that reused the name
    /// (Calico's host veth name is a hash of namespace.pod, so a recreated StatefulSet pod
    /// gets its predecessor's).
    Other,
}

/// How the entry whose sandbox stands at `state` relates to the pod in namespace `pod`.
pub fn claim(state: Sandbox, pod: Option<(u64, u64)>) -> Claim {
    match (state, pod) {
        (Sandbox::Live(d, i), Some(p)) if (d, i) == p => Claim::ThisPod,
        (Sandbox::Live(..), Some(_)) | (Sandbox::Gone, _) => Claim::Other,
        _ => Claim::Unsure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::cni_files::tests::TempDir;

    /// As libcni's cacheAdd writes it (Go's encoding/json: `config` is []byte, so base64),
    /// for a Calico pod: the result's host veth without a sandbox, eth0 with one.
    fn calico_entry(cid: &str, veth: &str, netns: &str) -> String {
        serde_json::json!({
            "kind": "cniCacheV1",
            "containerId": cid,
            "config": "eyJ0eXBlIjoiY2FsaWNvIn0=",
            "ifName": "eth0",
            "networkName": "k8s-pod-network",
            "netns": netns,
            "cniArgs": [["K8S_POD_INFRA_CONTAINER_ID", cid], ["K8S_POD_UID", "0f9c-11"],
                        ["IgnoreUnknown", "1"], ["K8S_POD_NAMESPACE", "default"],
                        ["K8S_POD_NAME", "web-0"]],
            "capabilityArgs": {"io.kubernetes.cri.pod-annotations": {}},
            "result": {
                "cniVersion": "1.0.0",
                "interfaces": [{"name": veth},
                               {"name": "eth0", "mac": "6a:1b:2c:3d:4e:5f", "sandbox": netns}],
                "ips": [{"address": "10.244.1.5/32", "interface": 1}],
                "dns": {}
            }
        })
        .to_string()
    }

    #[test]
    fn a_calico_entry_names_its_pod_veth_and_sandbox() {
        let e = parse(
            Path::new("/x"),
            calico_entry("abc", "cali1234567890a", "/var/run/netns/cni-1").as_bytes(),
        )
        .unwrap();
        assert!(!e.legacy);
        assert_eq!(e.container_id.as_deref(), Some("abc"));
        assert_eq!(e.if_name.as_deref(), Some("eth0"));
        assert_eq!(e.network_name.as_deref(), Some("k8s-pod-network"));
        assert_eq!(e.k8s_name().as_deref(), Some("default/web-0"));
        assert_eq!(e.k8s_pod_uid.as_deref(), Some("0f9c-11"));
        assert_eq!(e.host_ifaces, ["cali1234567890a"]);
        assert_eq!(e.sandbox.as_deref(), Some("/var/run/netns/cni-1"));
        assert_eq!(e.ips, ["10.244.1.5/32"]);
    }

    #[test]
    fn older_layouts_and_results_are_read() {
        // libcni < 1.2: no netns; a v3.30-shaped result (host veth only): no sandbox known.
        let v = serde_json::json!({"kind": "cniCacheV1", "containerId": "c1", "ifName": "eth0",
            "networkName": "k8s-pod-network",
            "result": {"cniVersion": "0.3.1", "interfaces": [{"name": "caliX"}],
                       "ips": [{"version": "4", "address": "10.0.0.2/32"}]}});
        let e = parse(Path::new("/x"), v.to_string().as_bytes()).unwrap();
        assert_eq!(
            (e.sandbox, e.host_ifaces, e.k8s_pod),
            (None, vec!["caliX".into()], None)
        );
        // A 0.2.0 result (ip4/ip6), in libcni 0.7's bare layout.
        let v = serde_json::json!({"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.3/24"},
            "ip6": {"ip": "fd00::3/64"}});
        let e = parse(Path::new("/x"), v.to_string().as_bytes()).unwrap();
        assert!(e.legacy);
        assert_eq!(e.ips, ["10.0.0.3/24", "fd00::3/64"]);
        assert_eq!(e.container_id, None);
        // Not a cache entry.
        assert!(parse(Path::new("/x"), br#"{"kind":"other"}"#).is_err());
        assert!(parse(Path::new("/x"), b"[1]").is_err());
        assert!(parse(Path::new("/x"), b"{").is_err());
        assert!(parse(Path::new("/x"), b"{}").is_err());
    }

    #[test]
    fn a_dir_is_read_with_bad_files_as_problems() {
        let t = TempDir::new("cnicache");
        let root = t.dir("cni");
        let results = root.join("results");
        assert_eq!(read(std::slice::from_ref(&results)), None);
        std::fs::create_dir_all(&results).unwrap();
        std::fs::write(
            results.join("k8s-pod-network-abc-eth0"),
            calico_entry("abc", "caliA", "/run/netns/gone-x"),
        )
        .unwrap();
        std::fs::write(results.join("k8s-pod-network-bad-eth0"), "garbage").unwrap();
        std::fs::create_dir(results.join("subdir")).unwrap();
        let fifo = std::ffi::CString::new(
            results
                .join("k8s-pod-network-fifo-eth0")
                .display()
                .to_string(),
        )
        .unwrap();
        // SAFETY: mkfifo on a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let c = read(&[results.clone(), root.join("cache/results")]).unwrap();
        assert_eq!(c.dirs, std::slice::from_ref(&results));
        assert_eq!(c.entries.len(), 1);
        assert_eq!(c.problems.len(), 2, "{:?}", c.problems);
        assert!(c.problems.iter().any(|p| p.detail.contains("not JSON")));
        assert!(c
            .problems
            .iter()
            .any(|p| p.detail.contains("not a regular file")));
        assert_eq!(sandbox_state(Path::new("/"), &c.entries[0]), Sandbox::Gone);
    }

    #[test]
    fn sandboxes_are_host_paths_read_under_the_root() {
        let t = TempDir::new("cnicache-root");
        let root = t.dir("host");
        std::fs::create_dir_all(root.join("run/netns")).unwrap();
        std::os::unix::fs::symlink("/run", root.join("var-run")).unwrap();
        // An unmounted bind-mount file (or mounts not propagated here): cannot tell.
        std::fs::write(root.join("run/netns/cni-x"), "").unwrap();
        let e = |p: &str| CacheEntry {
            sandbox: Some(p.into()),
            ..CacheEntry::default()
        };
        assert_eq!(
            sandbox_state(&root, &e("/run/netns/cni-x")),
            Sandbox::Unknown
        );
        // Through the host's own absolute symlink, inside the root.
        assert_eq!(
            sandbox_state(&root, &e("/var-run/netns/cni-x")),
            Sandbox::Unknown
        );
        assert_eq!(sandbox_state(&root, &e("/run/netns/cni-y")), Sandbox::Gone);
        // /proc is the live one, whatever the root.
        assert!(matches!(
            sandbox_state(&root, &e("/proc/self/ns/net")),
            Sandbox::Live(..)
        ));
    }

    #[test]
    fn namespaces_are_compared_by_identity() {
        // This process's own namespace, by two paths.
        let a = ns_identity(Path::new("/proc/self/ns/net")).unwrap();
        let b = ns_identity(Path::new(&format!("/proc/{}/ns/net", std::process::id()))).unwrap();
        assert_eq!(a, b);
        // A regular file is not a namespace.
        assert!(ns_identity(Path::new("/proc/self/status")).is_err());
        let e = CacheEntry {
            sandbox: Some("/proc/self/ns/net".into()),
            ..CacheEntry::default()
        };
        assert_eq!(sandbox_state(Path::new("/"), &e), Sandbox::Live(a.0, a.1));
        let e = CacheEntry {
            sandbox: Some("/proc/self/status".into()),
            ..CacheEntry::default()
        };
        assert_eq!(sandbox_state(Path::new("/"), &e), Sandbox::Unknown);
        assert_eq!(
            sandbox_state(Path::new("/"), &CacheEntry::default()),
            Sandbox::Unnamed
        );
    }
}
