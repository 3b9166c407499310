//! A short-lived cache of node-check outcomes, so a burst of pod starts pays for the node
//! checks once. One small JSON file per distinct set of inputs, written atomically (temp file +
//! rename); anything unreadable, corrupt or stale is ignored, never fatal.

use crate::checks::Finding;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Entry {
    format: u32,
    key: String,
    written_at_ms: u64,
    findings: Vec<Finding>,
}

pub struct NodeCache {
    path: PathBuf,
    key: String,
    ttl: Duration,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// FNV-1a: stable across builds and processes (std's hasher is randomly seeded).
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

impl NodeCache {
    /// `key` must describe every input of the node checks (dirs, CNI_PATH, netns, overrides...).
    pub fn new(dir: &Path, key: String, ttl: Duration) -> NodeCache {
        let path = dir.join(format!("node-checks-{:016x}.json", fnv1a(&key)));
        NodeCache { path, key, ttl }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn load(&self) -> Option<Vec<Finding>> {
        if self.ttl.is_zero() {
            return None;
        }
        let meta = std::fs::metadata(&self.path).ok()?;
        if !meta.is_file() || meta.len() > 1 << 20 {
            return None;
        }
        let bytes = std::fs::read(&self.path).ok()?;
        let e: Entry = serde_json::from_slice(&bytes).ok()?;
        let age = now_ms().checked_sub(e.written_at_ms)?;
        (e.format == FORMAT && e.key == self.key && age < self.ttl.as_millis() as u64)
            .then_some(e.findings)
    }

    /// Best effort: a node whose /run is read-only simply runs the checks every time.
    pub fn store(&self, findings: &[Finding]) {
        if self.ttl.is_zero() {
            return;
        }
        if let Err(e) = self.try_store(findings) {
            log::debug!("node-check cache {} not written: {e}", self.path.display());
        }
    }

    fn try_store(&self, findings: &[Finding]) -> std::io::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("/"));
        std::fs::create_dir_all(dir)?;
        let entry = Entry {
            format: FORMAT,
            key: self.key.clone(),
            written_at_ms: now_ms(),
            findings: findings.to_vec(),
        };
        let bytes = serde_json::to_vec(&entry).map_err(std::io::Error::other)?;
        // Unique per process and thread: concurrent writers never share a temp file.
        let tmp = dir.join(format!(
            ".node-checks.{}.{:?}.tmp",
            std::process::id(),
            std::thread::current().id()
        ));
        let result = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            std::fs::rename(&tmp, &self.path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        self.prune(dir);
        result
    }

    /// Removes entries nobody refreshed within the TTL (other namespaces, other configs), so
    /// the directory does not grow with every namespace ever checked. Runs only on a cache
    /// miss, at most once per TTL per key; an entry of a longer-TTL config removed early is
    /// just a miss for it.
    fn prune(&self, dir: &Path) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let now = SystemTime::now();
        for e in rd.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if !name.starts_with("node-checks-")
                || !name.ends_with(".json")
                || e.path() == self.path
            {
                continue;
            }
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > self.ttl);
            if old {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::CheckId;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("cp-cache-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn finding() -> Finding {
        Finding::new(CheckId::HostIpForward, "the node", "p", "e", "f", "r")
    }

    #[test]
    fn round_trip_and_key_isolation() {
        let d = dir("rt");
        let c = NodeCache::new(&d, "k1".into(), Duration::from_secs(30));
        assert!(c.load().is_none());
        c.store(&[finding()]);
        assert_eq!(c.load(), Some(vec![finding()]));
        assert!(NodeCache::new(&d, "k2".into(), Duration::from_secs(30))
            .load()
            .is_none());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn corrupt_or_expired_entries_are_ignored() {
        let d = dir("bad");
        let c = NodeCache::new(&d, "k".into(), Duration::from_secs(30));
        std::fs::create_dir_all(&d).unwrap();
        for junk in [&b"{not json"[..], b"", b"[]", b"{\"format\":1}"] {
            std::fs::write(c.path(), junk).unwrap();
            assert!(c.load().is_none());
        }
        let old = Entry {
            format: FORMAT,
            key: "k".into(),
            written_at_ms: now_ms() - 60_000,
            findings: vec![],
        };
        std::fs::write(c.path(), serde_json::to_vec(&old).unwrap()).unwrap();
        assert!(c.load().is_none(), "expired");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn stale_entries_of_other_keys_are_pruned_on_store() {
        let d = dir("prune");
        let old = NodeCache::new(&d, "old".into(), Duration::from_secs(30));
        old.store(&[finding()]);
        let past = SystemTime::now() - Duration::from_secs(120);
        let f = std::fs::File::options()
            .write(true)
            .open(old.path())
            .unwrap();
        f.set_modified(past).unwrap();
        let fresh = NodeCache::new(&d, "fresh".into(), Duration::from_secs(30));
        fresh.store(&[finding()]);
        assert!(!old.path().exists(), "stale entry removed");
        assert!(fresh.path().exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn zero_ttl_disables() {
        let d = dir("off");
        let c = NodeCache::new(&d, "k".into(), Duration::ZERO);
        c.store(&[finding()]);
        assert!(!d.exists());
    }
}
