//! The filesystem side: reading a conf dir the way libcni does, and replacing files so that a
//! reader (a runtime loading the conflist, a pod start exec'ing the plugin) only ever sees the
//! old file or the new one, never a half-written one.

use super::conflist::ConfFile;
use crate::inspect::runtime::conf_dir::{self, ReadError};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The dir's CNI config files, sorted by name, as libcni's `ConfFiles` lists them, read by the
/// one conf-dir reader (crate::inspect::runtime::conf_dir): what is not a regular file (a
/// FIFO, a device node, a symlink to a dir) is never opened and is skipped here, as is a
/// dangling symlink; a file over the size limit is an error. Names that are not UTF-8 cannot
/// be written back by name and are skipped.
pub fn read_conf_dir(dir: &Path) -> io::Result<Vec<ConfFile>> {
    let listing = conf_dir::list(dir, conf_dir::MAX_DIR_ENTRIES)?.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "No such file or directory (os error 2)",
        )
    })?;
    let mut files = Vec::new();
    for e in listing.entries {
        let Ok(name) = e.name.into_string() else {
            continue;
        };
        match e.content {
            Ok(bytes) => files.push(ConfFile { name, bytes }),
            Err(ReadError::NotRegular | ReadError::Missing) => {}
            Err(err @ ReadError::TooBig { .. }) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {err}, not a CNI config", e.path.display()),
                ))
            }
            Err(ReadError::Io(err)) => {
                return Err(io::Error::other(format!("{}: {err}", e.path.display())))
            }
        }
    }
    Ok(files)
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Where a write to `path` must land: through a symlink to the file it names, so a conf dir
/// made of links (a mounted ConfigMap, a hand-made layout) keeps its shape.
pub fn resolve_link(path: &Path) -> PathBuf {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
        }
        _ => path.to_path_buf(),
    }
}

/// Replaces `path` with `bytes`: a temp file in the same dir (same filesystem, so rename is
/// atomic), fsync'd, closed, then renamed over `path`. `owner`: (uid, gid) to keep.
pub fn write_atomic(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    // Hidden and ending in ".tmp": neither libcni (extension filter) nor a PATH lookup of the
    // plugin's type ever picks it up.
    let tmp = dir.join(format!(
        ".{name}.{}.calico-preflight.tmp",
        std::process::id()
    ));
    // Only a previous run of this very pid could have left this name.
    let _ = fs::remove_file(&tmp);
    let result = fill(&tmp, bytes, mode, owner).and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|e| with_path(e, path))?;
    // Make the rename itself durable; the new file is complete either way, so a failure here
    // (some filesystems refuse fsync on a dir) is not worth failing the install for.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn fill(tmp: &Path, bytes: &[u8], mode: u32, owner: Option<(u32, u32)>) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)?;
    f.write_all(bytes)?;
    // fchmod after creation: the umask cannot narrow it.
    f.set_permissions(fs::Permissions::from_mode(mode))?;
    if let Some((uid, gid)) = owner {
        // Keeping the owner is best effort: an unprivileged run may not chown, and the
        // content and mode are what the runtime depends on.
        let _ = std::os::unix::fs::fchown(&f, Some(uid), Some(gid));
    }
    f.sync_all()?;
    // The file must be closed before the rename: once renamed it is the plugin binary, and
    // exec of a file someone holds open for writing fails with ETXTBSY.
    drop(f);
    Ok(())
}

/// The mode bits and owner of an existing file, to carry over to its replacement.
pub fn mode_and_owner(meta: &fs::Metadata) -> (u32, Option<(u32, u32)>) {
    (meta.mode() & 0o7777, Some((meta.uid(), meta.gid())))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOutcome {
    Copied,
    UpToDate,
    /// Same bytes, but the mode was not 0755.
    ModeFixed,
    /// Dry run: a copy is needed.
    WouldCopy,
}

pub const BIN_MODE: u32 = 0o755;

/// Puts `exe` at `target` unless it already holds exactly these bytes.
pub fn install_binary(exe: &[u8], target: &Path, dry_run: bool) -> io::Result<BinOutcome> {
    match fs::metadata(target) {
        Ok(m) if m.is_file() && m.len() == exe.len() as u64 => {
            if fs::read(target).map_err(|e| with_path(e, target))? == exe {
                if m.mode() & 0o7777 == BIN_MODE {
                    return Ok(BinOutcome::UpToDate);
                }
                if dry_run {
                    return Ok(BinOutcome::WouldCopy);
                }
                fs::set_permissions(target, fs::Permissions::from_mode(BIN_MODE))
                    .map_err(|e| with_path(e, target))?;
                return Ok(BinOutcome::ModeFixed);
            }
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(with_path(e, target)),
    }
    if dry_run {
        return Ok(BinOutcome::WouldCopy);
    }
    write_atomic(target, exe, BIN_MODE, None)?;
    Ok(BinOutcome::Copied)
}

/// A cheap look for `--watch`: is something of the right size still there?
pub fn binary_looks_present(target: &Path, len: usize) -> bool {
    fs::metadata(target).is_ok_and(|m| m.is_file() && m.len() == len as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("cp-fsops-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn atomic_write_keeps_mode_and_leaves_no_temp() {
        let d = tempdir("w");
        let p = d.join("10-calico.conflist");
        fs::write(&p, "old").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        let (mode, owner) = mode_and_owner(&fs::metadata(&p).unwrap());
        write_atomic(&p, b"new", mode, owner).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o640);
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn conf_dir_reads_like_libcni() {
        let d = tempdir("r");
        for n in [
            "20-b.conflist",
            "10-a.conf",
            "05-c.json",
            "x.yaml",
            "10-a.conf.bak",
        ] {
            fs::write(d.join(n), "{}").unwrap();
        }
        fs::create_dir(d.join("sub.conf")).unwrap();
        let names: Vec<_> = read_conf_dir(&d)
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(names, ["05-c.json", "10-a.conf", "20-b.conflist"]);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn binary_copy_is_idempotent_and_fixes_mode() {
        let d = tempdir("b");
        let t = d.join("calico-preflight");
        assert_eq!(
            install_binary(b"abc", &t, true).unwrap(),
            BinOutcome::WouldCopy
        );
        assert!(!t.exists());
        assert_eq!(
            install_binary(b"abc", &t, false).unwrap(),
            BinOutcome::Copied
        );
        assert_eq!(fs::metadata(&t).unwrap().mode() & 0o7777, 0o755);
        assert_eq!(
            install_binary(b"abc", &t, false).unwrap(),
            BinOutcome::UpToDate
        );
        fs::set_permissions(&t, fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(
            install_binary(b"abc", &t, false).unwrap(),
            BinOutcome::ModeFixed
        );
        assert_eq!(
            install_binary(b"abd", &t, false).unwrap(),
            BinOutcome::Copied
        );
        assert_eq!(fs::read(&t).unwrap(), b"abd");
        assert!(binary_looks_present(&t, 3));
        fs::remove_dir_all(&d).unwrap();
    }
}
