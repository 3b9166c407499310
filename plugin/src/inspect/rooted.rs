//! Host paths read under a host root (`hostRoot`, default `/`): a path named in Calico's config,
//! or found by a check, is the host's, so with the host's root mounted at `/host` the file is
//! read as `/host/<path>`, and symlinks inside resolve under `/host` too, never out of it.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// `path` as seen under `root`, lexically: `..` cannot climb above the root. For messages, and
/// where openat2 is missing (Linux < 5.6).
pub fn host_path(root: &Path, path: &Path) -> PathBuf {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p),
            Component::ParentDir => {
                parts.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    let mut out = root.to_path_buf();
    out.extend(parts);
    out
}

/// Opens a host path under `root`, read-only, non-blocking (a FIFO is never waited on).
/// `O_PATH` in `extra_flags` gives a handle for fstat only. Under a root other than `/`,
/// openat2(RESOLVE_IN_ROOT) makes `..` and absolute symlinks resolve inside the root, as the
/// host itself would resolve them.
pub fn open(root: &Path, path: &Path, extra_flags: i32) -> std::io::Result<File> {
    // openat2 refuses O_PATH with other open flags (EINVAL).
    let flags = if extra_flags & libc::O_PATH != 0 {
        libc::O_PATH | libc::O_CLOEXEC
    } else {
        libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC | extra_flags
    };
    if root == Path::new("/") {
        return open_plain(&host_path(root, path), flags);
    }
    let dir = open_plain(root, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)?;
    let rel = host_path(Path::new(""), path);
    let c_rel = std::ffi::CString::new(rel.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: open_how is plain data, zero-initialised then filled.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: a valid dirfd, NUL-terminated path and correctly sized open_how.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            c_rel.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd >= 0 {
        // SAFETY: the kernel just returned this fd to us; we own it.
        return Ok(unsafe { File::from_raw_fd(fd as i32) });
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::ENOSYS) | Some(libc::EPERM) => open_plain(&host_path(root, path), flags),
        _ => Err(err),
    }
}

fn open_plain(path: &Path, flags: i32) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.read(true).custom_flags(flags & !libc::O_RDONLY);
    o.open(path)
}

/// Reads a regular host file of at most `max` bytes. `Ok(None)`: it does not exist.
pub fn read_small(root: &Path, path: &Path, max: u64) -> Result<Option<Vec<u8>>, String> {
    let file = match open(root, path, 0) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot open: {e}")),
    };
    let meta = file.metadata().map_err(|e| format!("cannot stat: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > max {
        return Err(format!("{} bytes, more than the {max} read", meta.len()));
    }
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    Ok(Some(bytes))
}

/// `path` (absolute, as the host sees it) under `root`, for what [`open`] cannot do (listing a
/// dir, "does it exist"). Symlinks are followed inside the root
/// (an absolute target is taken relative to it, as under chroot), so a host's
/// `/lib -> /usr/lib` or an absolute link in /etc never reaches this machine's own files.
pub fn resolve_under(root: &Path, path: impl AsRef<Path>) -> PathBuf {
    let path = path.as_ref();
    if root == Path::new("/") {
        return path.to_path_buf();
    }
    let mut out = root.to_path_buf();
    let mut pending: VecDeque<OsString> = comps(path);
    let mut hops = 0;
    while let Some(c) = pending.pop_front() {
        if c == ".." {
            if out != root {
                out.pop();
            }
            continue;
        }
        let next = out.join(&c);
        match std::fs::symlink_metadata(&next) {
            Ok(m) if m.file_type().is_symlink() && hops < 40 => {
                hops += 1;
                let Ok(target) = std::fs::read_link(&next) else {
                    out = next;
                    continue;
                };
                if target.is_absolute() {
                    out = root.to_path_buf();
                }
                for t in comps(&target).into_iter().rev() {
                    pending.push_front(t);
                }
            }
            _ => out = next,
        }
    }
    out
}

fn comps(p: &Path) -> VecDeque<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::cni_files::tests::TempDir;

    #[test]
    fn lexical_join_never_climbs_out() {
        let r = Path::new("/host");
        assert_eq!(host_path(r, Path::new("/etc/x")), Path::new("/host/etc/x"));
        assert_eq!(
            host_path(r, Path::new("/../../etc/./x")),
            Path::new("/host/etc/x")
        );
        assert_eq!(host_path(r, Path::new("a/../../b")), Path::new("/host/b"));
        assert_eq!(
            host_path(Path::new("/"), Path::new("/a/b")),
            Path::new("/a/b")
        );
    }

    #[test]
    fn absolute_symlinks_resolve_inside_the_root() {
        let t = TempDir::new("rooted");
        let root = t.dir("host");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/real"), "inside").unwrap();
        // An absolute link, as the host wrote it: /etc/real on the host.
        std::os::unix::fs::symlink("/etc/real", root.join("etc/link")).unwrap();
        std::os::unix::fs::symlink("../../../../etc/real", root.join("etc/up")).unwrap();
        for p in ["/etc/link", "/etc/up", "/../etc/real"] {
            let got = read_small(&root, Path::new(p), 100).unwrap();
            assert_eq!(got.as_deref(), Some(&b"inside"[..]), "{p}");
        }
        assert_eq!(read_small(&root, Path::new("/etc/none"), 100), Ok(None));
        assert!(read_small(&root, Path::new("/etc"), 100)
            .unwrap_err()
            .contains("not a regular file"));
        // O_PATH handles (for fstat) resolve the same way.
        let f = open(&root, Path::new("/etc/link"), libc::O_PATH).unwrap();
        assert!(f.metadata().unwrap().is_file());
        assert!(read_small(&root, Path::new("/etc/real"), 3)
            .unwrap_err()
            .contains("more than"));
    }
}
