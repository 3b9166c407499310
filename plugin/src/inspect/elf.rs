//! Whether this node can execute a plugin binary, from its header alone (never run): the ELF
//! machine, class and byte order, the dynamic loader (`PT_INTERP`) a dynamic binary names, a
//! script's `#!` interpreter, binfmt_misc handlers, and whether its filesystem is mounted
//! `noexec`. Bounded reads: the first 4 KiB, the program headers, one mountinfo.

use super::cni_files::{BinState, CniFiles};
use super::rooted;
use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

/// How much of a binary is read to tell its format (the kernel reads 256 bytes for `#!`).
const HEAD_BYTES: usize = 4096;
/// Program header tables larger than this are not read (the kernel refuses > 64 KiB).
const MAX_PHDR_BYTES: u64 = 65536;
/// Bounds on /proc/self/mountinfo and the binfmt_misc dir.
const MAX_MOUNTINFO_BYTES: u64 = 4 << 20;
const MAX_BINFMT_ENTRIES: usize = 64;

pub const EM_386: u16 = 3;
pub const EM_ARM: u16 = 40;
pub const EM_X86_64: u16 = 62;
pub const EM_AARCH64: u16 = 183;

/// An ELF target: machine, class (32/64 bit) and byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Machine {
    pub machine: u16,
    pub bits64: bool,
    pub little_endian: bool,
}

impl Machine {
    /// The target this binary was built for: a kernel that runs us runs it.
    pub fn own() -> Option<Machine> {
        let machine = if cfg!(target_arch = "x86_64") {
            EM_X86_64
        } else if cfg!(target_arch = "aarch64") {
            EM_AARCH64
        } else if cfg!(target_arch = "x86") {
            EM_386
        } else if cfg!(target_arch = "arm") {
            EM_ARM
        } else if cfg!(target_arch = "riscv64") {
            243
        } else if cfg!(target_arch = "powerpc64") {
            21
        } else if cfg!(target_arch = "s390x") {
            22
        } else if cfg!(target_arch = "loongarch64") {
            258
        } else {
            return None;
        };
        Some(Machine {
            machine,
            bits64: cfg!(target_pointer_width = "64"),
            little_endian: cfg!(target_endian = "little"),
        })
    }

    /// The kernel's native target from `uname -m` (it may differ from ours: a 32-bit build on a
    /// 64-bit kernel).
    pub fn from_uname(m: &str) -> Option<Machine> {
        let (machine, bits64, little_endian) = match m {
            "x86_64" => (EM_X86_64, true, true),
            "aarch64" => (EM_AARCH64, true, true),
            "aarch64_be" => (EM_AARCH64, true, false),
            "i386" | "i486" | "i586" | "i686" => (EM_386, false, true),
            "riscv64" => (243, true, true),
            "ppc64le" => (21, true, true),
            "ppc64" => (21, true, false),
            "s390x" => (22, true, false),
            "loongarch64" => (258, true, true),
            m if m.starts_with("armv") => (EM_ARM, false, !m.ends_with('b')),
            _ => return None,
        };
        Some(Machine {
            machine,
            bits64,
            little_endian,
        })
    }

    /// `x86_64 (64-bit, little-endian)`: the architecture names people use.
    pub fn describe(&self) -> String {
        let name = match (self.machine, self.bits64) {
            (EM_X86_64, true) => "x86_64 (amd64)".to_string(),
            (EM_X86_64, false) => "x32".to_string(),
            (EM_AARCH64, _) => "aarch64 (arm64)".to_string(),
            (EM_386, _) => "i386".to_string(),
            (EM_ARM, _) => "arm (32-bit)".to_string(),
            (243, _) => "riscv64".to_string(),
            (21, _) => "ppc64".to_string(),
            (20, _) => "ppc".to_string(),
            (22, _) => "s390x".to_string(),
            (258, _) => "loongarch64".to_string(),
            (8, _) => "mips".to_string(),
            (m, _) => format!("machine {m}"),
        };
        format!(
            "{name}, {}-bit, {}-endian",
            if self.bits64 { 64 } else { 32 },
            if self.little_endian { "little" } else { "big" }
        )
    }
}

/// `uname -m`.
fn uname_machine() -> Option<String> {
    // SAFETY: uname fills a zeroed utsname of the right size; machine is NUL-terminated.
    unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) != 0 {
            return None;
        }
        let m = std::ffi::CStr::from_ptr(u.machine.as_ptr());
        Some(m.to_string_lossy().into_owned())
    }
}

/// What this node executes natively: our own target and the kernel's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeMachine {
    /// `uname -m`.
    pub uname: String,
    pub native: Vec<Machine>,
}

impl NodeMachine {
    pub fn read() -> NodeMachine {
        let uname = uname_machine().unwrap_or_default();
        let mut native: Vec<Machine> = Machine::own().into_iter().collect();
        if let Some(m) = Machine::from_uname(&uname) {
            if !native.contains(&m) {
                native.push(m);
            }
        }
        NodeMachine { uname, native }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    pub target: Machine,
    /// e_type: 2 executable, 3 shared object / PIE; anything else cannot be exec'd.
    pub e_type: u16,
    /// The dynamic loader PT_INTERP names, for dynamic binaries.
    pub interp: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    Elf(ElfInfo),
    /// An ELF whose headers point outside the file (a truncated copy): the kernel refuses it.
    BadElf(String),
    /// `#!` followed by this interpreter (empty: none named).
    Script {
        interpreter: String,
    },
    /// An empty file.
    Empty,
    /// Neither ELF nor script: the first bytes, in hex.
    Unknown {
        head: String,
    },
    /// Could not be opened or read.
    Unreadable(String),
}

/// Whether an interpreter (a dynamic loader or a script's) can be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterpState {
    Present,
    Missing,
    NotExecutable { mode: u32 },
    NotRegular,
    Unreadable(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub mount_point: PathBuf,
    pub fstype: String,
    pub source: String,
    pub noexec: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinExec {
    pub plugin: String,
    pub needed_by: String,
    /// The file the runtime runs (libcni's pick in CNI_PATH).
    pub path: PathBuf,
    /// With symlinks resolved: what the mount is looked up for.
    pub real_path: Option<PathBuf>,
    pub format: Format,
    /// The interpreter as named, where it was looked for under the host root, and its state.
    pub interpreter: Option<(PathBuf, PathBuf, InterpState)>,
    /// A binfmt_misc handler whose match covers this file (it then runs whatever its format).
    pub binfmt: Option<String>,
    /// The mount holding `real_path`, when mountinfo could be read.
    pub mount: Option<Mount>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BinExecFacts {
    pub node: NodeMachine,
    pub binaries: Vec<BinExec>,
    /// Why /proc/self/mountinfo could not be read (noexec then not checked).
    pub mountinfo_error: Option<String>,
}

/// Looks at every executable binary cni-bin-dir found (libcni's pick): the others are
/// cni-bin-dir's findings, not ours.
pub fn gather(cni: &CniFiles, host_root: &Path) -> BinExecFacts {
    let node = NodeMachine::read();
    let picks: Vec<_> = cni
        .binaries
        .iter()
        .filter_map(|b| {
            let pick = b.libcni_pick()?;
            (pick.state == BinState::Executable).then_some((b, pick))
        })
        .collect();
    let mut out = BinExecFacts {
        node,
        ..BinExecFacts::default()
    };
    if picks.is_empty() {
        return out;
    }
    let mounts = match read_mountinfo(Path::new("/proc/self/mountinfo")) {
        Ok(m) => m,
        Err(e) => {
            out.mountinfo_error = Some(e);
            Vec::new()
        }
    };
    let binfmt = read_binfmt(Path::new("/proc/sys/fs/binfmt_misc"));
    for (b, pick) in picks {
        let (format, head) = read_format(&pick.path);
        let interpreter = match &format {
            Format::Elf(ElfInfo {
                interp: Some(i), ..
            }) => Some(i.clone()),
            // A relative interpreter resolves against the runtime's cwd, unknown here.
            Format::Script { interpreter } if interpreter.starts_with('/') => {
                Some(PathBuf::from(interpreter))
            }
            _ => None,
        }
        .map(|named| {
            let state = interp_state(host_root, &named);
            (named.clone(), rooted::host_path(host_root, &named), state)
        });
        let real_path = std::fs::canonicalize(&pick.path).ok();
        let mount = real_path.as_deref().and_then(|p| mount_of(&mounts, p));
        out.binaries.push(BinExec {
            plugin: b.plugin.clone(),
            needed_by: b.needed_by.clone(),
            path: pick.path.clone(),
            binfmt: binfmt_match(&binfmt, &head, &pick.path),
            real_path,
            format,
            interpreter,
            mount,
        });
    }
    out
}

/// The file's format from its first bytes and, for ELF, its program headers. Also returns the
/// bytes read, for binfmt_misc matching.
pub fn read_format(path: &Path) -> (Format, Vec<u8>) {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags_nonblock()
        .open(path)
    {
        Ok(f) => f,
        Err(e) => return (Format::Unreadable(format!("cannot open: {e}")), vec![]),
    };
    let size = match file.metadata() {
        Ok(m) if m.is_file() => m.len(),
        Ok(_) => return (Format::Unreadable("not a regular file".into()), vec![]),
        Err(e) => return (Format::Unreadable(format!("cannot stat: {e}")), vec![]),
    };
    let mut head = Vec::with_capacity(HEAD_BYTES);
    if let Err(e) = (&file).take(HEAD_BYTES as u64).read_to_end(&mut head) {
        return (Format::Unreadable(format!("cannot read: {e}")), vec![]);
    }
    let format = classify(&head, size, |off, len| read_at(&file, off, len));
    (format, head)
}

trait NonBlock {
    fn custom_flags_nonblock(&mut self) -> &mut Self;
}

impl NonBlock for std::fs::OpenOptions {
    fn custom_flags_nonblock(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
    }
}

fn read_at(file: &File, off: u64, len: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, off).ok()?;
    Some(buf)
}

/// The format of a file of `size` bytes starting with `head`; `read_at` reads beyond it.
pub fn classify(head: &[u8], size: u64, read_at: impl Fn(u64, usize) -> Option<Vec<u8>>) -> Format {
    if head.is_empty() {
        return Format::Empty;
    }
    if head.starts_with(b"\x7fELF") {
        return match parse_elf(head, size, read_at) {
            Ok(e) => Format::Elf(e),
            Err(e) => Format::BadElf(e),
        };
    }
    if let Some(rest) = head.strip_prefix(b"#!") {
        // As the kernel's binfmt_script: the first line, the interpreter up to a blank.
        let line = rest.split(|&c| c == b'\n').next().unwrap_or_default();
        let line = String::from_utf8_lossy(line);
        let interpreter = line
            .trim_matches([' ', '\t', '\r'])
            .split([' ', '\t'])
            .next()
            .unwrap_or_default()
            .to_string();
        return Format::Script { interpreter };
    }
    Format::Unknown {
        head: head.iter().take(8).map(|b| format!("{b:02x}")).collect(),
    }
}

struct Reader<'a> {
    b: &'a [u8],
    le: bool,
}

impl Reader<'_> {
    fn u16(&self, off: usize) -> Result<u16, String> {
        let s = self.b.get(off..off + 2).ok_or("header cut short")?;
        let a = [s[0], s[1]];
        Ok(if self.le {
            u16::from_le_bytes(a)
        } else {
            u16::from_be_bytes(a)
        })
    }
    fn u32(&self, off: usize) -> Result<u32, String> {
        let s = self.b.get(off..off + 4).ok_or("header cut short")?;
        let a = [s[0], s[1], s[2], s[3]];
        Ok(if self.le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        })
    }
    fn u64(&self, off: usize) -> Result<u64, String> {
        let s = self.b.get(off..off + 8).ok_or("header cut short")?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(if self.le {
            u64::from_le_bytes(a)
        } else {
            u64::from_be_bytes(a)
        })
    }
    /// A 32-bit or 64-bit address-sized field.
    fn word(&self, off: usize, bits64: bool) -> Result<u64, String> {
        if bits64 {
            self.u64(off)
        } else {
            self.u32(off).map(u64::from)
        }
    }
}

/// Elf32/Elf64 header and program headers, either byte order; every offset checked against
/// the file's size.
fn parse_elf(
    head: &[u8],
    size: u64,
    read_at: impl Fn(u64, usize) -> Option<Vec<u8>>,
) -> Result<ElfInfo, String> {
    let bits64 = match head.get(4) {
        Some(1) => false,
        Some(2) => true,
        Some(c) => return Err(format!("unknown ELF class {c}")),
        None => return Err("ELF header cut short".into()),
    };
    let le = match head.get(5) {
        Some(1) => true,
        Some(2) => false,
        Some(d) => return Err(format!("unknown ELF byte order {d}")),
        None => return Err("ELF header cut short".into()),
    };
    let h = Reader { b: head, le };
    let cut = |e: String| format!("ELF header: {e}");
    let e_type = h.u16(16).map_err(cut)?;
    let machine = h.u16(18).map_err(cut)?;
    let (phoff, phentsize, phnum) = if bits64 {
        (h.u64(32), h.u16(54), h.u16(56))
    } else {
        (h.u32(28).map(u64::from), h.u16(42), h.u16(44))
    };
    let (phoff, phentsize, phnum) = (
        phoff.map_err(cut)?,
        phentsize.map_err(cut)?,
        phnum.map_err(cut)?,
    );
    let target = Machine {
        machine,
        bits64,
        little_endian: le,
    };
    let mut info = ElfInfo {
        target,
        e_type,
        interp: None,
    };
    if phnum == 0 {
        return Ok(info);
    }
    let want_ent: u16 = if bits64 { 56 } else { 32 };
    if phentsize != want_ent {
        return Err(format!("program header size {phentsize}, not {want_ent}"));
    }
    let table = u64::from(phnum) * u64::from(phentsize);
    if table > MAX_PHDR_BYTES {
        return Err(format!(
            "{phnum} program headers, more than the kernel reads"
        ));
    }
    let end = phoff
        .checked_add(table)
        .ok_or("program header offset overflows")?;
    if end > size {
        return Err(format!(
            "program headers at {phoff}..{end} lie beyond the file's {size} bytes (truncated?)"
        ));
    }
    let phdrs = match head.get(phoff as usize..end as usize) {
        Some(s) if end as usize <= head.len() => s.to_vec(),
        _ => read_at(phoff, table as usize).ok_or("cannot read the program headers")?,
    };
    let p = Reader { b: &phdrs, le };
    for i in 0..usize::from(phnum) {
        let base = i * usize::from(phentsize);
        const PT_INTERP: u32 = 3;
        if p.u32(base)? != PT_INTERP {
            continue;
        }
        let (off, filesz) = if bits64 {
            (p.word(base + 8, true)?, p.word(base + 32, true)?)
        } else {
            (p.word(base + 4, false)?, p.word(base + 16, false)?)
        };
        // The kernel: 2 <= p_filesz <= PATH_MAX, within the file, NUL-terminated.
        if !(2..=4096).contains(&filesz) {
            return Err(format!("PT_INTERP of {filesz} bytes"));
        }
        let iend = off
            .checked_add(filesz)
            .ok_or("PT_INTERP offset overflows")?;
        if iend > size {
            return Err(format!(
                "PT_INTERP at {off}..{iend} lies beyond the file's {size} bytes (truncated?)"
            ));
        }
        let raw = match head.get(off as usize..iend as usize) {
            Some(s) => s.to_vec(),
            None => read_at(off, filesz as usize).ok_or("cannot read PT_INTERP")?,
        };
        let Some(nul) = raw.iter().position(|&c| c == 0) else {
            return Err("PT_INTERP is not NUL-terminated".into());
        };
        info.interp = Some(PathBuf::from(std::ffi::OsStr::from_bytes(&raw[..nul])));
        break;
    }
    Ok(info)
}

/// An interpreter's state, looked up under the host root (the kernel resolves it in the
/// runtime's mount namespace, the host's).
pub fn interp_state(host_root: &Path, named: &Path) -> InterpState {
    match rooted::open(host_root, named, libc::O_PATH) {
        Ok(f) => match f.metadata() {
            Ok(m) if m.is_file() && m.mode() & 0o111 != 0 => InterpState::Present,
            Ok(m) if m.is_file() => InterpState::NotExecutable {
                mode: m.mode() & 0o7777,
            },
            Ok(_) => InterpState::NotRegular,
            Err(e) => InterpState::Unreadable(e.to_string()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => InterpState::Missing,
        // A dangling symlink or a path through a non-directory: exec fails with ENOENT/ENOTDIR.
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => InterpState::Missing,
        Err(e) => InterpState::Unreadable(e.to_string()),
    }
}

/// One mount of mountinfo: its mount point (octal escapes decoded) and options.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let sep = fields.iter().position(|f| *f == "-")?;
            let mount_point: PathBuf =
                <std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(unescape(
                    fields.get(4)?,
                ))
                .into();
            let opts = fields.get(5)?;
            Some(Mount {
                mount_point,
                fstype: fields.get(sep + 1).unwrap_or(&"").to_string(),
                source: String::from_utf8_lossy(&unescape(fields.get(sep + 2).unwrap_or(&"")))
                    .into_owned(),
                noexec: opts.split(',').any(|o| o == "noexec"),
            })
        })
        .collect()
}

/// The kernel escapes space, tab, newline and backslash in mountinfo as `\ooo`.
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|o| b[i] == b'\\' && o.iter().all(|c| (b'0'..=b'7').contains(c)));
        match oct {
            Some(o) => {
                let v = o.iter().fold(0u32, |a, c| a * 8 + u32::from(c - b'0'));
                out.push(v as u8);
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    out
}

fn read_mountinfo(path: &Path) -> Result<Vec<Mount>, String> {
    let bytes = rooted::read_small(Path::new("/"), path, MAX_MOUNTINFO_BYTES)
        .and_then(|b| b.ok_or_else(|| "does not exist".to_string()));
    // /proc files report size 0: read_small bounds by what it reads, so a 0 size passes.
    bytes.map(|b| parse_mountinfo(&String::from_utf8_lossy(&b)))
}

/// The mount holding `path`: the longest mount point containing it; of mounts stacked on the
/// same point, the last listed (the top one) wins.
pub fn mount_of(mounts: &[Mount], path: &Path) -> Option<Mount> {
    let mut best: Option<&Mount> = None;
    for m in mounts {
        if !path.starts_with(&m.mount_point) {
            continue;
        }
        let longer = match best {
            None => true,
            Some(b) => m.mount_point.as_os_str().len() >= b.mount_point.as_os_str().len(),
        };
        if longer {
            best = Some(m);
        }
    }
    best.cloned()
}

/// An enabled binfmt_misc handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binfmt {
    pub name: String,
    pub offset: usize,
    pub magic: Vec<u8>,
    pub mask: Vec<u8>,
    pub extension: Option<String>,
}

fn read_binfmt(dir: &Path) -> Vec<Binfmt> {
    let status = rooted::read_small(Path::new("/"), &dir.join("status"), 64);
    if !matches!(status, Ok(Some(s)) if s.starts_with(b"enabled")) {
        return Vec::new();
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.take(MAX_BINFMT_ENTRIES)
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name == "status" || name == "register" {
                return None;
            }
            let text = rooted::read_small(Path::new("/"), &e.path(), 4096).ok()??;
            parse_binfmt(&name, &String::from_utf8_lossy(&text))
        })
        .collect()
}

/// One `/proc/sys/fs/binfmt_misc/<name>` file, when enabled.
pub fn parse_binfmt(name: &str, text: &str) -> Option<Binfmt> {
    let mut lines = text.lines();
    if lines.next()? != "enabled" {
        return None;
    }
    let hex = |s: &str| -> Option<Vec<u8>> {
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
            .collect()
    };
    let mut b = Binfmt {
        name: name.to_string(),
        offset: 0,
        magic: vec![],
        mask: vec![],
        extension: None,
    };
    for l in lines {
        if let Some(v) = l.strip_prefix("offset ") {
            b.offset = v.trim().parse().ok()?;
        } else if let Some(v) = l.strip_prefix("magic ") {
            b.magic = hex(v.trim())?;
        } else if let Some(v) = l.strip_prefix("mask ") {
            b.mask = hex(v.trim())?;
        } else if let Some(v) = l.strip_prefix("extension ") {
            b.extension = Some(v.trim().trim_start_matches('.').to_string());
        }
    }
    (!b.magic.is_empty() || b.extension.is_some()).then_some(b)
}

/// The first handler that claims a file with these first bytes and this name.
pub fn binfmt_match(handlers: &[Binfmt], head: &[u8], path: &Path) -> Option<String> {
    handlers
        .iter()
        .find(|h| {
            if let Some(ext) = &h.extension {
                return path
                    .extension()
                    .is_some_and(|e| e.as_bytes() == ext.as_bytes());
            }
            h.magic.iter().enumerate().all(|(i, m)| {
                let mask = h.mask.get(i).copied().unwrap_or(0xff);
                head.get(h.offset + i).is_some_and(|c| c & mask == m & mask)
            })
        })
        .map(|h| h.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF header (+ one PT_INTERP phdr and its string when `interp` is given).
    pub(crate) fn elf(bits64: bool, le: bool, machine: u16, interp: Option<&str>) -> Vec<u8> {
        let mut b = vec![0u8; if bits64 { 64 } else { 52 }];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = if bits64 { 2 } else { 1 };
        b[5] = if le { 1 } else { 2 };
        b[6] = 1;
        let put16 = |b: &mut Vec<u8>, off: usize, v: u16| {
            let a = if le { v.to_le_bytes() } else { v.to_be_bytes() };
            b[off..off + 2].copy_from_slice(&a);
        };
        let put32 = |b: &mut Vec<u8>, off: usize, v: u32| {
            let a = if le { v.to_le_bytes() } else { v.to_be_bytes() };
            b[off..off + 4].copy_from_slice(&a);
        };
        let put64 = |b: &mut Vec<u8>, off: usize, v: u64| {
            let a = if le { v.to_le_bytes() } else { v.to_be_bytes() };
            b[off..off + 8].copy_from_slice(&a);
        };
        put16(&mut b, 16, 2);
        put16(&mut b, 18, machine);
        let Some(interp) = interp else {
            return b;
        };
        let phoff = b.len() as u64;
        let ent = if bits64 { 56 } else { 32 };
        let str_off = phoff + ent;
        let s = format!("{interp}\0");
        if bits64 {
            put64(&mut b, 32, phoff);
            put16(&mut b, 54, ent as u16);
            put16(&mut b, 56, 1);
            b.resize(b.len() + ent as usize, 0);
            let base = phoff as usize;
            put32(&mut b, base, 3);
            put64(&mut b, base + 8, str_off);
            put64(&mut b, base + 32, s.len() as u64);
        } else {
            put32(&mut b, 28, phoff as u32);
            put16(&mut b, 42, ent as u16);
            put16(&mut b, 44, 1);
            b.resize(b.len() + ent as usize, 0);
            let base = phoff as usize;
            put32(&mut b, base, 3);
            put32(&mut b, base + 4, str_off as u32);
            put32(&mut b, base + 16, s.len() as u32);
        }
        b.extend_from_slice(s.as_bytes());
        b
    }

    fn classify_all(b: &[u8]) -> Format {
        classify(b, b.len() as u64, |_, _| None)
    }

    #[test]
    fn elf_headers_in_both_classes_and_byte_orders() {
        for (bits64, le, m) in [
            (true, true, EM_X86_64),
            (true, true, EM_AARCH64),
            (false, true, EM_ARM),
            (true, false, 22),
            (false, false, 8),
        ] {
            let f = classify_all(&elf(bits64, le, m, Some("/lib/ld-x.so.1")));
            let Format::Elf(e) = f else { panic!("{f:?}") };
            assert_eq!(
                e.target,
                Machine {
                    machine: m,
                    bits64,
                    little_endian: le
                }
            );
            assert_eq!(e.e_type, 2);
            assert_eq!(e.interp.as_deref(), Some(Path::new("/lib/ld-x.so.1")));
            let Format::Elf(e) = classify_all(&elf(bits64, le, m, None)) else {
                panic!()
            };
            assert_eq!(e.interp, None);
        }
    }

    #[test]
    fn truncated_and_malformed_elves_are_named() {
        let full = elf(true, true, EM_X86_64, Some("/lib64/ld-linux-x86-64.so.2"));
        // The file ends inside the program headers.
        let f = classify(&full[..70], 70, |_, _| None);
        assert!(
            matches!(&f, Format::BadElf(e) if e.contains("beyond the file")),
            "{f:?}"
        );
        // The interpreter string lies past the end.
        let f = classify(&full[..125], 125, |_, _| None);
        assert!(
            matches!(&f, Format::BadElf(e) if e.contains("PT_INTERP")),
            "{f:?}"
        );
        assert!(matches!(classify_all(&full[..10]), Format::BadElf(_)));
        let mut bad = full.clone();
        bad[4] = 9;
        assert!(matches!(classify_all(&bad), Format::BadElf(e) if e.contains("class")));
        let mut bad = full.clone();
        bad[54] = 40;
        assert!(
            matches!(classify_all(&bad), Format::BadElf(e) if e.contains("program header size"))
        );
        let mut bad = full;
        // An offset near u64::MAX must not overflow.
        bad[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(classify_all(&bad), Format::BadElf(_)));
    }

    #[test]
    fn program_headers_past_the_head_are_read_at_their_offset() {
        let mut b = elf(true, true, EM_X86_64, Some("/lib/ld.so"));
        // Move the phdr table and string beyond 4 KiB, as in a binary with a big header.
        let tail = b.split_off(64);
        let phoff = 8192u64;
        b[32..40].copy_from_slice(&phoff.to_le_bytes());
        let mut file = b.clone();
        file.resize(phoff as usize, 0);
        let mut t = tail;
        t[8..16].copy_from_slice(&(phoff + 56).to_le_bytes());
        file.extend_from_slice(&t);
        let head = &file[..HEAD_BYTES];
        let f = classify(head, file.len() as u64, |off, len| {
            file.get(off as usize..off as usize + len)
                .map(<[u8]>::to_vec)
        });
        assert!(
            matches!(&f, Format::Elf(e) if e.interp.as_deref() == Some(Path::new("/lib/ld.so"))),
            "{f:?}"
        );
    }

    #[test]
    fn scripts_empty_and_unknown() {
        assert_eq!(
            classify_all(b"#! /usr/bin/python3 -u\nprint()"),
            Format::Script {
                interpreter: "/usr/bin/python3".into()
            }
        );
        assert_eq!(
            classify_all(b"#!\n"),
            Format::Script {
                interpreter: "".into()
            }
        );
        assert_eq!(classify_all(b""), Format::Empty);
        assert_eq!(
            classify_all(b"MZ\x90\x00"),
            Format::Unknown {
                head: "4d5a9000".into()
            }
        );
    }

    #[test]
    fn uname_and_own_machines() {
        let own = Machine::own().unwrap();
        assert!(NodeMachine::read().native.contains(&own));
        assert_eq!(Machine::from_uname("x86_64").unwrap().machine, EM_X86_64);
        assert_eq!(Machine::from_uname("armv7l").unwrap().machine, EM_ARM);
        assert!(Machine::from_uname("m68k").is_none());
        assert_eq!(
            Machine::from_uname("aarch64").unwrap().describe(),
            "aarch64 (arm64), 64-bit, little-endian"
        );
    }

    #[test]
    fn mount_lookup_takes_the_longest_and_topmost() {
        let text = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
            30 22 0:5 / /opt rw,noexec shared:2 - tmpfs tmpfs rw\n\
            31 22 0:6 / /opt/cni\\040bin rw - tmpfs t2 rw\n\
            32 30 0:7 / /opt rw - tmpfs t3 rw\n\
            garbage line\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 4);
        assert_eq!(m[2].mount_point, Path::new("/opt/cni bin"));
        let at = |p: &str| mount_of(&m, Path::new(p)).unwrap();
        assert_eq!(at("/usr/bin/x").fstype, "ext4");
        // /opt is stacked: the later, exec-able mount is on top.
        assert_eq!(at("/opt/x").source, "t3");
        assert!(!at("/opt/x").noexec);
        assert_eq!(at("/opt/cni bin/calico").source, "t2");
        // A prefix by characters is not a prefix by components.
        assert_eq!(at("/optional/x").fstype, "ext4");
        let m = parse_mountinfo("30 22 0:5 / /opt rw,nosuid,noexec - tmpfs tmpfs rw\n");
        assert!(
            mount_of(&m, Path::new("/opt/cni/bin/calico"))
                .unwrap()
                .noexec
        );
    }

    #[test]
    fn binfmt_handlers_match_by_magic_or_extension() {
        let qemu = parse_binfmt(
            "qemu-aarch64",
            "enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: F\noffset 0\n\
             magic 7f454c460201010000000000000000000200b700\n\
             mask ffffffffffffff00fffffffffffffffffeffffff\n",
        )
        .unwrap();
        assert!(parse_binfmt("x", "disabled\nmagic 00\n").is_none());
        let head = elf(true, true, EM_AARCH64, None);
        assert_eq!(
            binfmt_match(
                std::slice::from_ref(&qemu),
                &head,
                Path::new("/opt/cni/bin/calico")
            )
            .as_deref(),
            Some("qemu-aarch64")
        );
        let x86 = elf(true, true, EM_X86_64, None);
        assert!(binfmt_match(&[qemu], &x86, Path::new("/a")).is_none());
        let ext = parse_binfmt("wine", "enabled\nextension .exe\n").unwrap();
        assert!(binfmt_match(std::slice::from_ref(&ext), b"", Path::new("/a/b.exe")).is_some());
        assert!(binfmt_match(&[ext], b"", Path::new("/a/calico")).is_none());
    }

    #[test]
    fn reads_this_test_binary_as_a_native_elf() {
        let me = std::env::current_exe().unwrap();
        let (f, head) = read_format(&me);
        assert!(!head.is_empty());
        let Format::Elf(e) = f else { panic!("{f:?}") };
        assert_eq!(Some(e.target), Machine::own());
        if let Some(i) = e.interp {
            assert_eq!(interp_state(Path::new("/"), &i), InterpState::Present);
        }
        assert_eq!(
            interp_state(Path::new("/"), Path::new("/no/such/ld.so")),
            InterpState::Missing
        );
    }
}
