//! The one reader of config dirs and config files: what libcni sees in a CNI conf dir, and the
//! runtimes' own TOML files. Never opens anything but a regular file (a FIFO would block, a
//! device node may act on open: a watchdog, a tape), reads at most MAX_CONF_BYTES, looks at
//! at most MAX_DIR_ENTRIES entries, and takes names that are not UTF-8 as they are.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Directory entries looked at in one dir: a bound on work, far above any real node.
pub const MAX_DIR_ENTRIES: usize = 4096;
/// Every config file read (CNI configs, containerd's and CRI-O's TOML): larger ones are
/// reported, not read. Real ones are a few KiB.
pub const MAX_CONF_BYTES: u64 = 1 << 20;
/// The extensions runtimes read, as in libcni's `ConfFiles(dir, [".conf", ".conflist", ".json"])`.
pub const CNI_EXTENSIONS: &[&str] = &["conf", "conflist", "json"];

/// Why a file was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// A FIFO, socket, device node or directory (after following symlinks): never opened.
    NotRegular,
    /// A dangling symlink, or removed since the listing.
    Missing,
    TooBig {
        len: u64,
    },
    Io(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::NotRegular => f.write_str("not a regular file"),
            ReadError::Missing => f.write_str("no such file"),
            ReadError::TooBig { len } => {
                write!(f, "{len} bytes, more than the {MAX_CONF_BYTES} read")
            }
            ReadError::Io(e) => f.write_str(e),
        }
    }
}

/// Opens `path` only if it is a regular file (symlinks followed). The file is first opened
/// with O_PATH, which opens no device and waits on no FIFO, checked with fstat, and only then
/// reopened for reading through /proc/self/fd: the file checked is the file read, even if
/// the name is swapped in between.
pub fn open_regular(path: &Path) -> Result<File, ReadError> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| ReadError::Io("path holds a NUL byte".into()))?;
    // SAFETY: open with a valid NUL-terminated path; the fd is owned by `pathfd` below.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(match e.kind() {
            io::ErrorKind::NotFound => ReadError::Missing,
            _ => ReadError::Io(format!("cannot open: {e}")),
        });
    }
    // SAFETY: fd was just returned by open and is owned by nobody else.
    let pathfd = unsafe { File::from_raw_fd(fd) };
    let meta = pathfd
        .metadata()
        .map_err(|e| ReadError::Io(format!("cannot stat: {e}")))?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular);
    }
    let via = format!("/proc/self/fd/{}", pathfd.as_raw_fd());
    let reopened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags_nonblock()
        .open(&via);
    match reopened {
        Ok(f) => Ok(f),
        // No /proc (a chroot, a bare container): open the name, non-blocking, and check the
        // handle, so a file swapped for a FIFO is still not waited on.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags_nonblock()
                .open(path)
                .map_err(|e| ReadError::Io(format!("cannot open: {e}")))?;
            match f.metadata() {
                Ok(m) if m.is_file() => Ok(f),
                Ok(_) => Err(ReadError::NotRegular),
                Err(e) => Err(ReadError::Io(format!("cannot stat: {e}"))),
            }
        }
        Err(e) => Err(ReadError::Io(format!("cannot open: {e}"))),
    }
}

trait NonBlock {
    fn custom_flags_nonblock(&mut self) -> &mut Self;
}

impl NonBlock for std::fs::OpenOptions {
    fn custom_flags_nonblock(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
    }
}

/// The bytes of a regular file of at most MAX_CONF_BYTES.
pub fn read_regular(path: &Path) -> Result<Vec<u8>, ReadError> {
    let file = open_regular(path)?;
    let len = file
        .metadata()
        .map_err(|e| ReadError::Io(format!("cannot stat: {e}")))?
        .len();
    if len > MAX_CONF_BYTES {
        return Err(ReadError::TooBig { len });
    }
    let mut bytes = Vec::new();
    file.take(MAX_CONF_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ReadError::Io(format!("cannot read: {e}")))?;
    // It grew since the fstat.
    if bytes.len() as u64 > MAX_CONF_BYTES {
        return Err(ReadError::TooBig {
            len: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

/// One config file of a conf dir, as libcni lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The name as the dir holds it (not necessarily UTF-8).
    pub name: OsString,
    pub path: PathBuf,
    pub content: Result<Vec<u8>, ReadError>,
}

impl Entry {
    /// The name, when it is UTF-8.
    pub fn utf8_name(&self) -> Option<&str> {
        self.name.to_str()
    }
}

/// A conf dir's CNI config files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Sorted bytewise by name, as libcni (Go's os.ReadDir) sorts them.
    pub entries: Vec<Entry>,
    /// The dir held more than MAX_DIR_ENTRIES entries (or more than `max_files` config
    /// files) and the rest were not looked at.
    pub truncated: bool,
}

/// The CNI config files of `dir` as libcni's `ConfFiles` lists them (containernetworking/cni
/// libcni/conf.go: every entry that is not a directory, by extension, in name order), each
/// read unless it is not a regular file or too big; at most `max_files` are read, the first
/// ones in order (those a runtime would use). `Ok(None)`: the dir does not exist, which
/// libcni takes as "no files".
pub fn list(dir: &Path, max_files: usize) -> io::Result<Option<Listing>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut names = Vec::new();
    let mut truncated = false;
    for (i, entry) in rd.enumerate() {
        if i >= MAX_DIR_ENTRIES {
            truncated = true;
            break;
        }
        let entry = entry?;
        // Like ConfFiles: skip directories (from the entry's own type, so a symlink to a
        // directory is listed, and then fails to load, as in libcni).
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let name = entry.file_name();
        if has_cni_extension(&name) {
            names.push(name);
        }
    }
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    if names.len() > max_files {
        truncated = true;
        names.truncate(max_files);
    }
    let entries = names
        .into_iter()
        .map(|name| {
            let path = dir.join(&name);
            let content = read_regular(&path);
            Entry {
                name,
                path,
                content,
            }
        })
        .collect();
    Ok(Some(Listing { entries, truncated }))
}

/// Go's `filepath.Ext`: the suffix from the last dot, so ".conf" alone counts too.
pub fn has_cni_extension(name: &OsStr) -> bool {
    let b = name.as_bytes();
    b.iter()
        .rposition(|&c| c == b'.')
        .is_some_and(|i| CNI_EXTENSIONS.iter().any(|e| &b[i + 1..] == e.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::cni_files::tests::TempDir;

    fn mknod(path: &Path, mode: libc::mode_t, dev: libc::dev_t) {
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: mknod on a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mknod(c.as_ptr(), mode, dev) }, 0, "mknod");
    }

    #[test]
    fn fifos_and_devices_are_listed_unread_and_regular_files_read() {
        let t = TempDir::new("cd-nodes");
        let d = t.dir("net.d");
        std::fs::write(d.join("10-calico.conflist"), "{}").unwrap();
        mknod(&d.join("00-fifo.conf"), libc::S_IFIFO | 0o644, 0);
        // /dev/null's numbers: opening it would be harmless, but it must not be opened at all.
        mknod(
            &d.join("01-chr.conf"),
            libc::S_IFCHR | 0o644,
            libc::makedev(1, 3),
        );
        mknod(
            &d.join("02-blk.json"),
            libc::S_IFBLK | 0o644,
            libc::makedev(7, 0),
        );
        std::os::unix::fs::symlink(d.join("00-fifo.conf"), d.join("03-link.conf")).unwrap();
        std::fs::write(d.join("x.yaml"), "{}").unwrap();
        let l = list(&d, 100).unwrap().unwrap();
        let got: Vec<(String, Result<Vec<u8>, ReadError>)> = l
            .entries
            .iter()
            .map(|e| (e.utf8_name().unwrap().to_string(), e.content.clone()))
            .collect();
        assert_eq!(
            got,
            [
                ("00-fifo.conf".into(), Err(ReadError::NotRegular)),
                ("01-chr.conf".into(), Err(ReadError::NotRegular)),
                ("02-blk.json".into(), Err(ReadError::NotRegular)),
                ("03-link.conf".into(), Err(ReadError::NotRegular)),
                ("10-calico.conflist".into(), Ok(b"{}".to_vec())),
            ]
        );
    }

    #[test]
    fn non_utf8_names_big_files_and_bounds() {
        let t = TempDir::new("cd-names");
        let d = t.dir("net.d");
        let odd = OsStr::from_bytes(b"05-\xff.conf");
        std::fs::write(d.join(odd), "{}").unwrap();
        std::fs::write(
            d.join("06-big.conf"),
            vec![b' '; MAX_CONF_BYTES as usize + 1],
        )
        .unwrap();
        std::fs::write(d.join("07-ok.json"), "{}").unwrap();
        let l = list(&d, 100).unwrap().unwrap();
        assert_eq!(l.entries.len(), 3);
        assert_eq!(l.entries[0].name, odd);
        assert!(l.entries[0].utf8_name().is_none());
        assert_eq!(
            l.entries[1].content,
            Err(ReadError::TooBig {
                len: MAX_CONF_BYTES + 1
            })
        );
        let l = list(&d, 2).unwrap().unwrap();
        assert_eq!(l.entries.len(), 2);
        assert!(l.truncated);
        assert_eq!(list(&t.0.join("nope"), 1).unwrap(), None);
        assert_eq!(read_regular(&t.0.join("nope")), Err(ReadError::Missing));
    }
}
