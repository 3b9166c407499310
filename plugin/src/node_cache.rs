//! A short-lived cache of node-check outcomes, so a burst of pod starts pays for the node
//! checks once. One small JSON file per distinct set of inputs, written atomically (temp file +
//! rename); anything unreadable, corrupt or stale is ignored, never fatal.
//!
//! The plugin runs as root, so the cache dir is handled as a place others might reach: it is
//! used only when owned by root or by us and not writable by group or others (else it is
//! ignored, with a log line saying why), every file is opened relative to that dir's fd with
//! `O_NOFOLLOW`, and the temp file has an unpredictable name created with `O_CREAT|O_EXCL`, so
//! a symlink planted at the temp or the final path never redirects a write.

use crate::checks::Finding;
use nix::fcntl::{openat, renameat, OFlag};
use nix::sys::stat::{fstat, fstatat, Mode};
use nix::unistd::{unlinkat, UnlinkatFlags};
use serde::{Deserialize, Serialize};
use std::cell::Cell;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const FORMAT: u32 = 1;
/// An entry is a few KiB; anything bigger is not ours.
const MAX_ENTRY: u64 = 1 << 20;

#[derive(Serialize, Deserialize)]
struct Entry {
    format: u32,
    key: String,
    written_at_ms: u64,
    findings: Vec<Finding>,
}

pub struct NodeCache {
    dir: PathBuf,
    /// The entry's file name inside `dir`.
    name: String,
    path: PathBuf,
    key: String,
    ttl: Duration,
    /// The refusal of `dir` is logged once per call, not on load and again on store.
    refusal_logged: Cell<bool>,
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

/// 128 unpredictable bits as hex, from getrandom(2), else /dev/urandom.
fn random_hex() -> std::io::Result<String> {
    let mut buf = [0u8; 16];
    // SAFETY: getrandom writes at most buf.len() bytes into buf.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), libc::GRND_NONBLOCK) };
    if usize::try_from(n).ok() != Some(buf.len()) {
        File::open("/dev/urandom")?.read_exact(&mut buf)?;
    }
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn io(e: nix::Error) -> std::io::Error {
    std::io::Error::from(e)
}

/// Why a dir must not hold the cache, if it must not: `st` is its fstat.
fn unsafe_dir_reason(st: &nix::sys::stat::FileStat, euid: u32) -> Option<String> {
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Some("it is not a directory".into());
    }
    if st.st_uid != 0 && st.st_uid != euid {
        return Some(format!(
            "it is owned by uid {}, not by root or by this process (uid {euid})",
            st.st_uid
        ));
    }
    if st.st_mode & 0o022 != 0 {
        return Some(format!(
            "it is writable by {} (mode {:04o}), who could plant files for root to overwrite or read",
            if st.st_mode & 0o002 != 0 { "others" } else { "its group" },
            st.st_mode & 0o7777
        ));
    }
    None
}

enum DirState {
    Ready(OwnedFd),
    Absent,
    Refused(String),
}

impl NodeCache {
    /// `key` must describe every input of the node checks (dirs, CNI_PATH, netns, overrides...).
    pub fn new(dir: &Path, key: String, ttl: Duration) -> NodeCache {
        let name = format!("node-checks-{:016x}.json", fnv1a(&key));
        NodeCache {
            dir: dir.to_path_buf(),
            path: dir.join(&name),
            name,
            key,
            ttl,
            refusal_logged: Cell::new(false),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the cache dir (creating it first when `create`), or says why it is not used.
    fn open_dir(&self, create: bool) -> DirState {
        if create {
            // 0755 whatever the umask says is checked below; an error shows up as the open's.
            let _ = std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(&self.dir);
        }
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = match openat(nix::fcntl::AT_FDCWD, &self.dir, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(nix::Error::ENOENT) if !create => return DirState::Absent,
            Err(nix::Error::ELOOP) => {
                return DirState::Refused(
                    "it is a symbolic link (point cacheDir at the real dir)".into(),
                )
            }
            Err(e) => return DirState::Refused(format!("it cannot be opened: {e}")),
        };
        match fstat(&fd) {
            Ok(st) => match unsafe_dir_reason(&st, euid()) {
                None => DirState::Ready(fd),
                Some(why) => DirState::Refused(why),
            },
            Err(e) => DirState::Refused(format!("it cannot be examined: {e}")),
        }
    }

    fn usable_dir(&self, create: bool) -> Option<OwnedFd> {
        match self.open_dir(create) {
            DirState::Ready(fd) => Some(fd),
            DirState::Absent => None,
            DirState::Refused(why) => {
                if !self.refusal_logged.replace(true) {
                    log::warn!(
                        "node-check cache not used: cacheDir {} refused: {why}; make it a dir \
                         owned by root with mode 0755 or stricter, or point cacheDir elsewhere",
                        self.dir.display()
                    );
                }
                None
            }
        }
    }

    pub fn load(&self) -> Option<Vec<Finding>> {
        if self.ttl.is_zero() {
            return None;
        }
        let dir = self.usable_dir(false)?;
        // O_NONBLOCK: a FIFO at that name must not hang the pod start (it is then refused as
        // not a regular file).
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
        let fd = openat(dir, self.name.as_str(), flags, Mode::empty()).ok()?;
        let mut f = File::from(fd);
        let meta = f.metadata().ok()?;
        if !meta.is_file() || meta.len() > MAX_ENTRY {
            return None;
        }
        let mut bytes = Vec::new();
        (&mut f).take(MAX_ENTRY).read_to_end(&mut bytes).ok()?;
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
        let Some(dir) = self.usable_dir(true) else {
            return;
        };
        if let Err(e) = self.try_store(&dir, findings) {
            log::debug!("node-check cache {} not written: {e}", self.path.display());
        }
        self.prune(&dir);
    }

    fn try_store(&self, dir: &OwnedFd, findings: &[Finding]) -> std::io::Result<()> {
        let entry = Entry {
            format: FORMAT,
            key: self.key.clone(),
            written_at_ms: now_ms(),
            findings: findings.to_vec(),
        };
        let bytes = serde_json::to_vec(&entry).map_err(std::io::Error::other)?;
        // Unpredictable and created exclusively: concurrent writers never share a temp file,
        // and nothing planted at that name (a symlink included) is ever written through.
        let tmp = format!(".node-checks.{}.tmp", random_hex()?);
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat(dir, tmp.as_str(), flags, Mode::from_bits_truncate(0o644)).map_err(io)?;
        let result = File::from(fd).write_all(&bytes).and_then(|()| {
            // rename replaces whatever is at the final name (a symlink too) without following it.
            renameat(dir, tmp.as_str(), dir, self.name.as_str()).map_err(io)
        });
        if result.is_err() {
            let _ = unlinkat(dir, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
        }
        result
    }

    /// Removes entries nobody refreshed within the TTL (other namespaces, other configs), so
    /// the directory does not grow with every namespace ever checked. Runs only on a cache
    /// miss, at most once per TTL per key; an entry of a longer-TTL config removed early is
    /// just a miss for it.
    fn prune(&self, dir: &OwnedFd) {
        // The dir through our fd, not its path: the same dir that was checked.
        let Ok(rd) = std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd())) else {
            return;
        };
        let now = now_ms() / 1000;
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else {
                continue;
            };
            if !name.starts_with("node-checks-") || !name.ends_with(".json") || name == self.name {
                continue;
            }
            let Ok(st) = fstatat(dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) else {
                continue;
            };
            let age = now.saturating_sub(u64::try_from(st.st_mtime).unwrap_or(u64::MAX));
            if age > self.ttl.as_secs() {
                let _ = unlinkat(dir, name, UnlinkatFlags::NoRemoveDir);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::CheckId;
    use std::os::unix::fs::PermissionsExt;

    /// A temp dir removed on drop, also when the test panics.
    struct TempDir(PathBuf);
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A fresh path under a guarded parent; the cache dir itself does not exist yet.
    fn dir(tag: &str) -> (TempDir, PathBuf) {
        let parent = std::env::temp_dir().join(format!("cp-cache-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&parent);
        std::fs::create_dir_all(&parent).unwrap();
        std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o755)).unwrap();
        let d = parent.join("cache");
        (TempDir(parent), d)
    }

    fn finding() -> Finding {
        Finding::new(CheckId::HostIpForward, "the node", "p", "e", "f", "r")
    }

    fn entry_bytes(key: &str) -> Vec<u8> {
        serde_json::to_vec(&Entry {
            format: FORMAT,
            key: key.into(),
            written_at_ms: now_ms(),
            findings: vec![finding()],
        })
        .unwrap()
    }

    #[test]
    fn round_trip_and_key_isolation() {
        let (_g, d) = dir("rt");
        let c = NodeCache::new(&d, "k1".into(), Duration::from_secs(30));
        assert!(c.load().is_none());
        c.store(&[finding()]);
        assert_eq!(c.load(), Some(vec![finding()]));
        assert!(NodeCache::new(&d, "k2".into(), Duration::from_secs(30))
            .load()
            .is_none());
        let names: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec![c.name.as_str()], "no temp file left behind");
    }

    #[test]
    fn corrupt_or_expired_entries_are_ignored() {
        let (_g, d) = dir("bad");
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
    }

    #[test]
    fn stale_entries_of_other_keys_are_pruned_on_store() {
        let (_g, d) = dir("prune");
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
    }

    #[test]
    fn zero_ttl_disables() {
        let (_g, d) = dir("off");
        let c = NodeCache::new(&d, "k".into(), Duration::ZERO);
        c.store(&[finding()]);
        assert!(!d.exists());
    }

    #[test]
    fn symlinks_at_the_entry_are_neither_followed_nor_written_through() {
        let (g, d) = dir("link");
        std::fs::create_dir_all(&d).unwrap();
        let c = NodeCache::new(&d, "k".into(), Duration::from_secs(30));
        // A valid entry elsewhere, linked at the entry's name: not read through the link.
        let victim = g.0.join("victim");
        let planted = entry_bytes("k");
        std::fs::write(&victim, &planted).unwrap();
        std::os::unix::fs::symlink(&victim, c.path()).unwrap();
        assert!(c.load().is_none(), "read through a symlink");
        c.store(&[]);
        assert_eq!(std::fs::read(&victim).unwrap(), planted, "written through");
        assert!(!std::fs::symlink_metadata(c.path()).unwrap().is_symlink());
        assert_eq!(c.load(), Some(vec![]));
    }

    #[test]
    fn a_dir_others_can_write_or_a_symlinked_dir_is_refused() {
        for mode in [0o777, 0o775, 0o1777] {
            let (_g, d) = dir("open");
            std::fs::create_dir_all(&d).unwrap();
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).unwrap();
            let c = NodeCache::new(&d, "k".into(), Duration::from_secs(30));
            std::fs::write(c.path(), entry_bytes("k")).unwrap();
            assert!(c.load().is_none(), "mode {mode:o}: entry read");
            std::fs::remove_file(c.path()).unwrap();
            c.store(&[finding()]);
            assert_eq!(
                std::fs::read_dir(&d).unwrap().count(),
                0,
                "mode {mode:o}: written"
            );
        }
        let (g, d) = dir("dirlink");
        let real = g.0.join("real");
        std::fs::create_dir_all(&real).unwrap();
        std::os::unix::fs::symlink(&real, &d).unwrap();
        let c = NodeCache::new(&d, "k".into(), Duration::from_secs(30));
        c.store(&[finding()]);
        assert_eq!(std::fs::read_dir(&real).unwrap().count(), 0);
    }

    #[test]
    fn temp_names_are_unpredictable() {
        let (a, b) = (random_hex().unwrap(), random_hex().unwrap());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
