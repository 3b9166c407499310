//! The filesystem side: reading a conf dir the way libcni does, and replacing files so that a
//! reader (a runtime loading the conflist, a pod start exec'ing the plugin) only ever sees the
//! old file or the new one, never a half-written one.

use super::conflist::ConfFile;
use crate::inspect::runtime::conf_dir::{self, ReadError, MAX_CONF_BYTES};
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
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

/// Replaces `path` with `bytes`: a temp file in the same dir (same filesystem, so rename is
/// atomic), fsync'd, closed, then renamed over `path`. `owner`: (uid, gid) to keep. Used for
/// the plugin binary, which nobody else writes; conflists go through [`replace_if_unchanged`].
pub fn write_atomic(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> io::Result<()> {
    let (tmp, f) = create_temp(path)?;
    let result = fill(f, bytes, mode, owner, None).and_then(|f| {
        // The file must be closed before the rename: once renamed it is the plugin binary,
        // and exec of a file someone holds open for writing fails with ETXTBSY.
        drop(f);
        fs::rename(&tmp, path)
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|e| with_path(e, path))?;
    sync_dir(path);
    Ok(())
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Makes a rename durable; the new file is complete either way, so a failure here (some
/// filesystems refuse fsync on a dir) is not worth failing the install for.
fn sync_dir(path: &Path) {
    if let Ok(d) = File::open(parent(path)) {
        let _ = d.sync_all();
    }
}

/// A new, empty temp file beside `path`, under a name nobody can guess and created with
/// O_EXCL|O_NOFOLLOW, so a file or symlink planted in the dir is never written through.
/// Hidden and ending in ".tmp": neither libcni (extension filter) nor a PATH lookup of the
/// plugin's type ever picks it up.
fn create_temp(path: &Path) -> io::Result<(PathBuf, File)> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let mut last = None;
    for _ in 0..8 {
        let tmp = parent(path).join(format!(
            ".{name}.{:016x}.calico-preflight.tmp",
            random_u64()
        ));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(with_path(e, &tmp)),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("cannot create a temp file")))
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: getrandom writes at most b.len() bytes into b.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), libc::GRND_NONBLOCK) };
    if n == b.len() as isize {
        return u64::from_ne_bytes(b);
    }
    // No entropy yet (early boot): the time and pid still make a collision unlikely, and
    // O_EXCL makes one harmless.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ (u64::from(std::process::id()) << 32)
}

/// Content, owner, extended attributes, then mode (chown clears set-id bits, setting an ACL
/// rewrites the group bits), then fsync.
fn fill(
    mut f: File,
    bytes: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
    xattrs_from: Option<&File>,
) -> io::Result<File> {
    f.write_all(bytes)?;
    if let Some((uid, gid)) = owner {
        let m = f.metadata()?;
        if (m.uid(), m.gid()) != (uid, gid) {
            std::os::unix::fs::fchown(&f, Some(uid), Some(gid)).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot keep the owner {uid}:{gid} on the new file: {e}"),
                )
            })?;
        }
    }
    if let Some(from) = xattrs_from {
        copy_xattrs(from, &f)?;
    }
    // fchmod after creation: the umask cannot narrow it.
    f.set_permissions(fs::Permissions::from_mode(mode))?;
    f.sync_all()?;
    Ok(f)
}

/// Copies every extended attribute this process can see (security.selinux, user.*, the
/// POSIX ACLs in system.*) so the rewritten conflist keeps the label a confined runtime
/// needs to read it. A value the new file already has is not set again; one that cannot
/// be set fails the write: a conflist the runtime cannot read would break every pod.
pub fn copy_xattrs(from: &File, to: &File) -> io::Result<()> {
    for name in xattr_names(from)? {
        let value = xattr_get(from, &name)?;
        if xattr_get(to, &name).ok().as_deref() == Some(value.as_slice()) {
            continue;
        }
        // SAFETY: name is NUL-terminated, value is a valid buffer of value.len() bytes.
        let r = unsafe {
            libc::fsetxattr(
                to.as_raw_fd(),
                name.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        if r != 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!(
                    "cannot copy the extended attribute {} to the new file: {e}",
                    name.to_string_lossy()
                ),
            ));
        }
    }
    Ok(())
}

/// Calls `f(buf)` with a growing buffer until the value fits (sizes can change between the
/// size query and the read). `f` returns what the xattr syscalls return.
fn sized_read(mut f: impl FnMut(&mut [u8]) -> isize) -> io::Result<Vec<u8>> {
    for _ in 0..4 {
        let n = f(&mut []);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; n as usize];
        let m = f(&mut buf);
        if m >= 0 {
            buf.truncate(m as usize);
            return Ok(buf);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ERANGE) {
            return Err(e);
        }
    }
    Err(io::Error::from_raw_os_error(libc::ERANGE))
}

fn xattr_names(f: &File) -> io::Result<Vec<CString>> {
    let fd = f.as_raw_fd();
    let list = match sized_read(|buf| {
        let ptr = if buf.is_empty() {
            std::ptr::null_mut()
        } else {
            buf.as_mut_ptr().cast()
        };
        // SAFETY: ptr is null with size 0, or a writable buffer of buf.len() bytes.
        unsafe { libc::flistxattr(fd, ptr, buf.len()) }
    }) {
        Ok(l) => l,
        // A filesystem without xattrs: there is nothing to keep.
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(list
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .filter_map(|n| CString::new(n).ok())
        .collect())
}

fn xattr_get(f: &File, name: &CString) -> io::Result<Vec<u8>> {
    let fd = f.as_raw_fd();
    sized_read(|buf| {
        let ptr = if buf.is_empty() {
            std::ptr::null_mut()
        } else {
            buf.as_mut_ptr().cast()
        };
        // SAFETY: name is NUL-terminated; ptr is null with size 0 or a buffer of buf.len().
        unsafe { libc::fgetxattr(fd, name.as_ptr(), ptr, buf.len()) }
    })
}

/// A conf file opened for a compare-and-swap: the open file (holding it also keeps its inode
/// number from being reused while we compare), its metadata and its bytes.
#[derive(Debug)]
pub struct Opened {
    pub file: File,
    pub meta: fs::Metadata,
    pub bytes: Vec<u8>,
}

/// Opens a regular file without following a final symlink and without blocking on a FIFO.
pub fn open_regular(path: &Path) -> io::Result<Opened> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| with_path(e, path))?;
    let meta = file.metadata().map_err(|e| with_path(e, path))?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a regular file", path.display()),
        ));
    }
    let bytes = read_from_start(&file).map_err(|e| with_path(e, path))?;
    Ok(Opened { file, meta, bytes })
}

/// The whole file from offset 0, whatever the fd's position, within the size limit.
fn read_from_start(f: &File) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 << 10];
    loop {
        let n = f.read_at(&mut buf, out.len() as u64)?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
        if out.len() as u64 > MAX_CONF_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("larger than {MAX_CONF_BYTES} bytes, not a CNI config"),
            ));
        }
    }
}

/// Where an edit of the conf file `name` lands. A plain file: itself. A symlink: the file it
/// names, but only a regular file inside the conf dir (a layout such as `10-calico.conflist ->
/// calico/10-calico.conflist`). A link leading out of the conf dir is refused: root following
/// a link someone else placed could replace any file on the node.
pub fn resolve_conf_path(dir: &Path, name: &str) -> Result<PathBuf, String> {
    let path = dir.join(name);
    match fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_symlink() => {}
        // Not a link (or gone: the open that follows says so).
        _ => return Ok(path),
    }
    let real = fs::canonicalize(&path)
        .map_err(|e| format!("is a symlink that cannot be followed ({e})"))?;
    let cdir =
        fs::canonicalize(dir).map_err(|e| format!("is in a dir that cannot be resolved ({e})"))?;
    if real == cdir || !real.starts_with(&cdir) {
        return Err(format!(
            "is a symlink to {}, outside the conf dir {}: install only writes through a link \
             that stays inside the conf dir",
            real.display(),
            cdir.display()
        ));
    }
    match fs::symlink_metadata(&real) {
        Ok(m) if m.is_file() => Ok(real),
        _ => Err(format!(
            "is a symlink to {}, which is not a regular file",
            real.display()
        )),
    }
}

/// What a guarded replace found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Swap {
    /// The file was still the one read and now holds the new bytes.
    Replaced,
    /// Someone changed the file since it was read; it holds their version, untouched by us.
    Changed,
}

fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

fn c_path(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))
}

/// renameat2(RENAME_EXCHANGE): both names stay, their files trade places, atomically.
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    let (ca, cb) = (c_path(a)?, c_path(b)?);
    // SAFETY: two NUL-terminated paths relative to the cwd; the syscall takes no buffers.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The file at `path` is still the one read: same inode, same bytes. Bytes first, the cheap
/// stat last, so that what follows comes as close to this look as possible.
fn still_same(path: &Path, read: &Opened) -> io::Result<bool> {
    if read_from_start(&read.file)? != read.bytes {
        return Ok(false);
    }
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(same_file(&m, &read.meta)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Upper bound on swap-backs while a writer keeps replacing the file under us; each round
/// takes microseconds, so reaching it means something is very wrong.
const MAX_SWAPS: usize = 64;

/// Replaces `path` with `bytes` only if it still is the file `read` came from, so a newer
/// file that Calico's installer put there meanwhile is never lost:
/// 1. the new file is made complete beside it (mode, owner and xattrs of the file read);
/// 2. a last look: same inode, same bytes; else [`Swap::Changed`];
/// 3. renameat2(RENAME_EXCHANGE) puts it in place and the replaced file under the temp name;
/// 4. if what came out is not the file read (a writer got in between 2 and 3, or rewrote it
///    in place), it is swapped back at once, and again while writers keep getting in.
///
/// Where the filesystem has no RENAME_EXCHANGE (EINVAL), a plain rename after the last look.
///
/// What no rename can guard: a writer that opened the old file by name before step 3 and
/// truncates or writes it only after step 4 writes into the file we just took out. Its open
/// and its truncation are one syscall, so the window is that syscall's own length.
pub fn replace_if_unchanged(path: &Path, read: &Opened, bytes: &[u8]) -> io::Result<Swap> {
    let (mode, owner) = mode_and_owner(&read.meta);
    let (tmp, f) = create_temp(path)?;
    let ours = match fill(f, bytes, mode, owner, Some(&read.file)) {
        Ok(f) => f,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(with_path(e, path));
        }
    };
    let ours_meta = ours.metadata()?;
    let (result, discard) = swap_in(path, &tmp, read, &ours_meta);
    if discard {
        let _ = fs::remove_file(&tmp);
    }
    drop(ours);
    if result.as_ref().is_ok_and(|s| *s == Swap::Replaced) {
        sync_dir(path);
    }
    result.map_err(|e| with_path(e, path))
}

/// Returns the outcome and whether the temp name now holds a file that may be discarded
/// (ours, or one we replaced): false only when a swap-back failed halfway, when it may hold
/// a newer file of someone else's, left there for a person to look at.
fn swap_in(
    path: &Path,
    tmp: &Path,
    read: &Opened,
    ours: &fs::Metadata,
) -> (io::Result<Swap>, bool) {
    match still_same(path, read) {
        Ok(true) => {}
        Ok(false) => return (Ok(Swap::Changed), true),
        Err(e) => return (Err(e), true),
    }
    match exchange(tmp, path) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            // No RENAME_EXCHANGE here (some network and FUSE filesystems): the last look
            // above is all the guard there is.
            return (fs::rename(tmp, path).map(|()| Swap::Replaced), true);
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return (Ok(Swap::Changed), true),
        Err(e) => return (Err(e), true),
    }
    let out = match fs::symlink_metadata(tmp) {
        Ok(m) => m,
        Err(e) => return (Err(e), false),
    };
    if same_file(&out, &read.meta) && read_from_start(&read.file).is_ok_and(|b| b == read.bytes) {
        return (Ok(Swap::Replaced), true);
    }
    // Not the file read: put it back. Each exchange pushes the temp name's file into place
    // and takes out what was there, which must be what we pushed in the round before; if it
    // is not, a writer replaced the file again meanwhile, and theirs goes back in.
    let mut expected = ours.clone();
    let mut pushing = out;
    for _ in 0..MAX_SWAPS {
        if let Err(e) = exchange(tmp, path) {
            return (Err(e), false);
        }
        let came_out = match fs::symlink_metadata(tmp) {
            Ok(m) => m,
            Err(e) => return (Err(e), false),
        };
        if same_file(&came_out, &expected) {
            return (Ok(Swap::Changed), true);
        }
        expected = pushing;
        pushing = came_out;
    }
    (
        Err(io::Error::other(format!(
            "the file kept changing while being swapped back; the file at {} may be newer than the one in place",
            tmp.display()
        ))),
        false,
    )
}

/// Creates `path` with `bytes` unless a file of that name exists by then (a hard link never
/// replaces anything). Mode, owner and xattrs come from `like`.
pub fn create_if_absent(path: &Path, like: &Opened, bytes: &[u8]) -> io::Result<Swap> {
    let (mode, owner) = mode_and_owner(&like.meta);
    let (tmp, f) = create_temp(path)?;
    let result = fill(f, bytes, mode, owner, Some(&like.file)).and_then(|f| {
        drop(f);
        match fs::hard_link(&tmp, path) {
            Ok(()) => Ok(Swap::Replaced),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(Swap::Changed),
            Err(e) => Err(e),
        }
    });
    let _ = fs::remove_file(&tmp);
    if result.as_ref().is_ok_and(|s| *s == Swap::Replaced) {
        sync_dir(path);
    }
    result.map_err(|e| with_path(e, path))
}

/// Removes `path` only if it still is the file `read` came from: it is first moved to a temp
/// name, looked at there, and put back (unless a newer one took its name) if it is not.
pub fn remove_if_unchanged(path: &Path, read: &Opened) -> io::Result<Swap> {
    if !still_same(path, read).map_err(|e| with_path(e, path))? {
        return Ok(Swap::Changed);
    }
    let (tmp, f) = create_temp(path)?;
    drop(f);
    let result = fs::rename(path, &tmp).and_then(|()| {
        let out = fs::symlink_metadata(&tmp)?;
        if same_file(&out, &read.meta) && read_from_start(&read.file)? == read.bytes {
            return Ok(Swap::Replaced);
        }
        // A newer file: back under its name, unless an even newer one took it meanwhile.
        match fs::hard_link(&tmp, path) {
            Ok(()) | Err(_) => Ok(Swap::Changed),
        }
    });
    let _ = fs::remove_file(&tmp);
    sync_dir(path);
    result.map_err(|e| with_path(e, path))
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

    #[test]
    fn guarded_replace_keeps_a_newer_file() {
        let d = tempdir("cas");
        let p = d.join("10-calico.conflist");
        fs::write(&p, "v1").unwrap();
        let read = open_regular(&p).unwrap();
        // Someone replaces the file after our read: ours must not go in.
        fs::write(d.join("x.tmp"), "v2").unwrap();
        fs::rename(d.join("x.tmp"), &p).unwrap();
        assert_eq!(
            replace_if_unchanged(&p, &read, b"ours").unwrap(),
            Swap::Changed
        );
        assert_eq!(fs::read(&p).unwrap(), b"v2");
        // Rewritten in place (same inode, new bytes): the same.
        let read = open_regular(&p).unwrap();
        fs::write(&p, "v3").unwrap();
        assert_eq!(
            replace_if_unchanged(&p, &read, b"ours").unwrap(),
            Swap::Changed
        );
        assert_eq!(fs::read(&p).unwrap(), b"v3");
        // Unchanged: replaced, and the file taken out is gone.
        let read = open_regular(&p).unwrap();
        assert_eq!(
            replace_if_unchanged(&p, &read, b"ours").unwrap(),
            Swap::Replaced
        );
        assert_eq!(fs::read(&p).unwrap(), b"ours");
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
        // Guarded removal and creation.
        let read = open_regular(&p).unwrap();
        fs::write(&p, "v4").unwrap();
        assert_eq!(remove_if_unchanged(&p, &read).unwrap(), Swap::Changed);
        assert_eq!(fs::read(&p).unwrap(), b"v4");
        let read = open_regular(&p).unwrap();
        assert_eq!(create_if_absent(&p, &read, b"x").unwrap(), Swap::Changed);
        assert_eq!(remove_if_unchanged(&p, &read).unwrap(), Swap::Replaced);
        assert!(!p.exists());
        assert_eq!(fs::read_dir(&d).unwrap().count(), 0);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn links_are_followed_only_inside_the_dir_and_fifos_are_not_opened() {
        let d = tempdir("links");
        fs::create_dir(d.join("sub")).unwrap();
        fs::write(d.join("sub/a.conflist"), "{}").unwrap();
        std::os::unix::fs::symlink("sub/a.conflist", d.join("in.conflist")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", d.join("out.conflist")).unwrap();
        std::os::unix::fs::symlink("sub", d.join("dir.conflist")).unwrap();
        let real = fs::canonicalize(d.join("sub/a.conflist")).unwrap();
        assert_eq!(resolve_conf_path(&d, "in.conflist").unwrap(), real);
        assert!(resolve_conf_path(&d, "out.conflist")
            .unwrap_err()
            .contains("outside the conf dir"));
        assert!(resolve_conf_path(&d, "dir.conflist")
            .unwrap_err()
            .contains("not a regular file"));
        assert!(open_regular(&d.join("in.conflist")).is_err(), "O_NOFOLLOW");
        let fifo = d.join("f.conf");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(open_regular(&fifo).is_err());
        fs::remove_dir_all(&d).unwrap();
    }
}
