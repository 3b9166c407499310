//! What the host's network managers will do with Calico's interfaces: whether NetworkManager or
//! systemd-networkd runs (live `/proc`), what their config files say about `cali*` veths and
//! Calico's tunnel devices, and which udev `.link` file sets the MAC policy of veths. Files are
//! read under a host root (default `/`); `/proc` is always the live one. Read-only and bounded:
//! every file through the host-root reader (`rooted::read_small`), directory listings cut
//! at [`MAX_DIR_ENTRIES`].

use super::rooted;
use super::runtime::conf_dir::{MAX_CONF_BYTES, MAX_DIR_ENTRIES};

/// A bounded read of a regular host file under `root` (never a FIFO or device; symlinks and
/// `..` resolved inside the root by the kernel, see [`rooted::open`]).
fn read_bounded(root: &Path, host_path: &Path) -> Result<Vec<u8>, String> {
    rooted::read_small(root, host_path, MAX_CONF_BYTES)?.ok_or_else(|| "does not exist".to_string())
}
use super::Deadline;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// At most this many /proc entries are looked at for the managers' processes.
pub const MAX_PROCS: usize = 65536;

/// Everything the `host-network-manager` check looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetMgrFacts {
    /// NetworkManager's process and config, when it runs.
    pub network_manager: Option<NmFacts>,
    /// systemd-networkd's process and config, when it runs.
    pub networkd: Option<NetworkdFacts>,
    /// The `.link` file udev applies to a cali veth; `None` when not gathered (only doctor and
    /// a wrong host-veth MAC ask for it: it is on almost every systemd node).
    pub veth_link: Option<LinkFacts>,
}

/// One of the interfaces Calico creates on the host, as the managers' match rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CalicoIface {
    /// A name of the kind Calico gives it (the host end of a pod veth: cali + 11 hex).
    pub name: &'static str,
    /// How a person names the family ("cali*", "vxlan.calico").
    pub label: &'static str,
    /// Kernel link kind (systemd `Kind=`).
    pub kind: &'static str,
    /// ethtool driver (udev `ID_NET_DRIVER`, systemd `Driver=`, NetworkManager `driver:`).
    pub driver: &'static str,
    /// systemd's `Type=` (ARPHRD name, or DEVTYPE when set).
    pub systemd_type: &'static str,
    /// NetworkManager's device types (`type:`) that cover it.
    pub nm_types: &'static [&'static str],
    /// Its MAC when known in advance (Calico's ee MAC on the host end of a veth).
    pub mac: Option<&'static str>,
}

/// Calico's host interfaces: the pod veths and the tunnel devices of each encapsulation.
pub const CALICO_IFACES: &[CalicoIface] = &[
    CalicoIface {
        name: "cali0123456789a",
        label: "cali*",
        kind: "veth",
        driver: "veth",
        systemd_type: "ether",
        // NetworkManager before 1.16 reports veths as "ethernet".
        nm_types: &["veth", "ethernet"],
        mac: Some("ee:ee:ee:ee:ee:ee"),
    },
    CalicoIface {
        name: "tunl0",
        label: "tunl0",
        kind: "ipip",
        driver: "ipip",
        systemd_type: "tunnel",
        nm_types: &["ip-tunnel"],
        mac: None,
    },
    CalicoIface {
        name: "vxlan.calico",
        label: "vxlan.calico",
        kind: "vxlan",
        driver: "vxlan",
        systemd_type: "vxlan",
        nm_types: &["vxlan"],
        mac: None,
    },
    CalicoIface {
        name: "vxlan-v6.calico",
        label: "vxlan-v6.calico",
        kind: "vxlan",
        driver: "vxlan",
        systemd_type: "vxlan",
        nm_types: &["vxlan"],
        mac: None,
    },
    CalicoIface {
        name: "wireguard.cali",
        label: "wireguard.cali",
        kind: "wireguard",
        driver: "wireguard",
        systemd_type: "wireguard",
        nm_types: &["wireguard"],
        mac: None,
    },
    CalicoIface {
        name: "wg-v6.cali",
        label: "wg-v6.cali",
        kind: "wireguard",
        driver: "wireguard",
        systemd_type: "wireguard",
        nm_types: &["wireguard"],
        mac: None,
    },
];

/// The pod veth's host end, the first of [`CALICO_IFACES`].
pub fn cali_veth() -> &'static CalicoIface {
    &CALICO_IFACES[0]
}

/// A file that was there but could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub path: PathBuf,
    pub why: String,
}

// ---------------------------------------------------------------------------------------------
// Reading under a host root

/// A config file found in a directory, by name.
#[derive(Debug, Clone)]
struct Found {
    name: String,
    /// Where it is, as the host names it (for messages and remedies).
    host_path: String,
    /// Masked: an empty file or a symlink to /dev/null (systemd), which hides same-named files.
    masked: bool,
}

/// The files of `host_dir` (under `root`) whose name ends in `suffix`, sorted by name.
fn list(root: &Path, host_dir: &str, suffix: &str) -> Vec<Found> {
    let dir = rooted::resolve_under(root, host_dir);
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return vec![];
    };
    let mut out = Vec::new();
    for entry in rd.take(MAX_DIR_ENTRIES).flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !name.ends_with(suffix) || name.starts_with('.') {
            continue;
        }
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        let masked = if meta.file_type().is_symlink() {
            std::fs::read_link(entry.path()).is_ok_and(|t| t == Path::new("/dev/null"))
        } else {
            meta.is_file() && meta.len() == 0
        };
        if meta.is_dir() {
            continue;
        }
        out.push(Found {
            host_path: format!("{}/{name}", host_dir.trim_end_matches('/')),
            name,
            masked,
        });
    }
    out.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    out
}

/// systemd's rule for `dirs` (highest priority first): one file per name, the first dir's
/// winning; sorted by name; masked names dropped.
fn systemd_files(root: &Path, dirs: &[&str], suffix: &str) -> Vec<Found> {
    let mut by_name: BTreeMap<Vec<u8>, Found> = BTreeMap::new();
    for d in dirs {
        for f in list(root, d, suffix) {
            by_name.entry(f.name.as_bytes().to_vec()).or_insert(f);
        }
    }
    by_name.into_values().filter(|f| !f.masked).collect()
}

/// Reads a host file under the root: bounded, regular files only.
fn read_text(root: &Path, host_path: &str) -> Result<String, String> {
    let bytes = read_bounded(root, Path::new(host_path))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// One `key=value` of an ini-style file, with its section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub section: String,
    pub key: String,
    pub value: String,
}

/// Parses the ini-style syntax shared by NetworkManager (GKeyFile) and systemd: `[section]`,
/// `key=value` (whitespace around both trimmed), `#` comments (`;` too in systemd), and, in
/// systemd only, a trailing backslash continuing the line. Order and repeats are kept:
/// both tools give later assignments meaning.
pub fn parse_ini(text: &str, systemd: bool) -> Vec<Assignment> {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let mut line = line.trim().to_string();
        while systemd && line.ends_with('\\') {
            line.pop();
            line.push(' ');
            match lines.next() {
                Some(next) => line.push_str(next.trim()),
                None => break,
            }
        }
        if line.is_empty() || line.starts_with('#') || (systemd && line.starts_with(';')) {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            if let Some(name) = rest.strip_suffix(']') {
                section = name.trim().to_string();
            }
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            out.push(Assignment {
                section: section.clone(),
                key: k.trim().to_string(),
                value: v.trim().to_string(),
            });
        }
    }
    out
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" | "y" | "t" => Some(true),
        "0" | "no" | "false" | "off" | "n" | "f" => Some(false),
        _ => None,
    }
}

/// fnmatch(3) with flags 0, as systemd matches `[Match]` globs: `*`, `?`, `[...]` (with `!`
/// or `^` negation and ranges) and backslash escapes; `*` also matches `/`.
pub fn fnmatch(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = s.chars().collect();
    glob_at(&p, &s, true)
}

/// NetworkManager's interface-name globs: only `*` and `?`, no ranges, no escapes.
pub fn nm_glob(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = s.chars().collect();
    glob_at(&p, &s, false)
}

fn glob_at(p: &[char], s: &[char], full: bool) -> bool {
    let Some((&c, rest)) = p.split_first() else {
        return s.is_empty();
    };
    match c {
        '*' => (0..=s.len()).any(|i| glob_at(rest, &s[i..], full)),
        '?' => !s.is_empty() && glob_at(rest, &s[1..], full),
        '[' if full => match bracket(rest, s.first().copied()) {
            Some((true, after)) => glob_at(after, &s[1..], full),
            Some((false, _)) => false,
            // An unclosed bracket is a literal '['.
            None => s.first() == Some(&'[') && glob_at(rest, &s[1..], full),
        },
        '\\' if full && !rest.is_empty() => {
            s.first() == Some(&rest[0]) && glob_at(&rest[1..], &s[1..], full)
        }
        _ => s.first() == Some(&c) && glob_at(rest, &s[1..], full),
    }
}

/// A bracket expression after its `[`: whether `c` is in it, and the pattern after its `]`.
fn bracket(p: &[char], c: Option<char>) -> Option<(bool, &[char])> {
    let c = c?;
    let (negate, mut i) = match p.first() {
        Some('!') | Some('^') => (true, 1),
        _ => (false, 0),
    };
    let mut hit = false;
    let mut first = true;
    while i < p.len() {
        let ch = p[i];
        if ch == ']' && !first {
            return Some((hit != negate, &p[i + 1..]));
        }
        first = false;
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            hit |= ch <= c && c <= p[i + 2];
            i += 3;
        } else {
            hit |= ch == c;
            i += 1;
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Processes

/// A live process of the given name, read from the live /proc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    /// How it was found ("pid file /run/NetworkManager/NetworkManager.pid", "/proc").
    pub found_by: String,
}

/// Read for every process on each cold node check, so kept to open, one read, close (the
/// bounded reader's O_PATH open, fstat and reopen cost 8 syscalls a process: ~60% of a cold
/// first-entry ADD on a node with 80 processes, bench/RESULTS.md). Safe without it: procfs's
/// comm is never a FIFO or device, never blocks, and holds at most TASK_COMM_LEN (16) bytes;
/// the buffer bounds the read anyway.
fn comm(pid: u32) -> Option<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(format!("/proc/{pid}/comm")).ok()?;
    let mut buf = [0u8; 64];
    let n = f.read(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).trim_end().to_string())
}

/// The basename of argv[0]: comm is cut at 15 bytes ("systemd-networkd" reads as
/// "systemd-network", like systemd-networkd-wait-online), so argv[0] tells them apart.
fn argv0_base(pid: u32) -> Option<String> {
    let b = read_bounded(Path::new("/"), Path::new(&format!("/proc/{pid}/cmdline"))).ok()?;
    let argv0 = b.split(|&c| c == 0).next()?;
    let s = String::from_utf8_lossy(argv0);
    Some(s.rsplit('/').next().unwrap_or_default().to_string())
}

fn is_networkmanager(pid: u32) -> bool {
    comm(pid).as_deref() == Some("NetworkManager")
}

fn is_networkd(pid: u32) -> bool {
    comm(pid).as_deref() == Some("systemd-network")
        && argv0_base(pid).as_deref() == Some("systemd-networkd")
}

const NM_RUN_DIR: &str = "/run/NetworkManager";
const NETWORKD_STATE: &str = "/run/systemd/netif/state";

/// Finds NetworkManager (its pid file under the root first, checked against /proc; else a
/// scan) and systemd-networkd (a scan) in one pass over /proc, bounded by count and deadline.
fn find_managers(root: &Path, deadline: Deadline) -> (Option<Process>, Option<Process>) {
    let pid_file = "/run/NetworkManager/NetworkManager.pid";
    let mut nm = read_text(root, pid_file)
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
        .filter(|pid| is_networkmanager(*pid))
        .map(|pid| Process {
            pid,
            found_by: format!("pid file {pid_file}"),
        });
    let mut networkd = None;
    // Each leaves a mark under /run (a tmpfs) once it has run: NetworkManager creates its
    // NMRUNDIR /run/NetworkManager, systemd-networkd writes its state file
    // /run/systemd/netif/state (networkd-state-file.c; the dir alone is made by systemd's
    // tmpfiles.d at boot, networkd or not). Without the mark it has not run since boot, and the
    // scan of every process (the largest cost of a cold node check) is skipped for it.
    let look_for_nm = nm.is_none() && rooted::resolve_under(root, NM_RUN_DIR).is_dir();
    let look_for_networkd = rooted::resolve_under(root, NETWORKD_STATE).is_file();
    if !look_for_nm && !look_for_networkd {
        return (nm, networkd);
    }
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return (nm, networkd);
    };
    let me = std::process::id();
    for (i, entry) in rd.take(MAX_PROCS).flatten().enumerate() {
        if (nm.is_some() || !look_for_nm) && (networkd.is_some() || !look_for_networkd) {
            break;
        }
        if i % 256 == 255 && deadline.remaining().is_none() {
            break;
        }
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        match comm(pid).as_deref() {
            Some("NetworkManager") if look_for_nm && nm.is_none() => {
                nm = Some(Process {
                    pid,
                    found_by: "/proc".into(),
                })
            }
            Some("systemd-network")
                if look_for_networkd && networkd.is_none() && is_networkd(pid) =>
            {
                networkd = Some(Process {
                    pid,
                    found_by: "/proc".into(),
                })
            }
            _ => {}
        }
    }
    (nm, networkd)
}

// ---------------------------------------------------------------------------------------------
// NetworkManager

/// NetworkManager's view of which devices it leaves alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NmFacts {
    pub process: Option<Process>,
    /// The config files read, in NetworkManager's order (later override earlier).
    pub files: Vec<String>,
    pub unreadable: Vec<Unreadable>,
    /// `[keyfile] unmanaged-devices` after every file (`+=`/`-=` applied).
    pub unmanaged_devices: Vec<String>,
    /// The last file that set or changed it.
    pub unmanaged_devices_in: Option<String>,
    /// `[device*]` sections, highest priority first.
    pub device_sections: Vec<NmDeviceSection>,
    /// NetworkManager's udev rule that unmanages veths (85-nm-unmanaged.rules), when present.
    pub veth_udev_rule: Option<String>,
}

/// A `[device]` / `[device-*]` section of NetworkManager.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NmDeviceSection {
    pub file: String,
    pub section: String,
    /// `match-device`; `None` matches every device.
    pub match_device: Option<Vec<String>>,
    /// `managed` (`unmanaged` inverted, as older docs spell it), when set.
    pub managed: Option<bool>,
    pub stop_match: bool,
}

/// The order NetworkManager reads its config (NetworkManager.conf(5), "Description"):
/// /usr/lib/NetworkManager/conf.d, then /run/NetworkManager/conf.d, each file skipped when one
/// of the same name is in a later-priority dir (/etc shadows both, /run shadows /usr/lib), then
/// NetworkManager.conf, then /etc/NetworkManager/conf.d; each dir in lexical order.
/// NetworkManager-intern.conf holds only NetworkManager's own `.intern.` keys and is not read.
fn nm_file_order(root: &Path) -> Vec<String> {
    let usr = list(root, "/usr/lib/NetworkManager/conf.d", ".conf");
    let run = list(root, "/run/NetworkManager/conf.d", ".conf");
    let etc = list(root, "/etc/NetworkManager/conf.d", ".conf");
    let has = |v: &[Found], n: &str| v.iter().any(|f| f.name == n);
    let mut out = Vec::new();
    for f in &usr {
        if !has(&etc, &f.name) && !has(&run, &f.name) {
            out.push(f.host_path.clone());
        }
    }
    for f in &run {
        if !has(&etc, &f.name) {
            out.push(f.host_path.clone());
        }
    }
    out.push("/etc/NetworkManager/NetworkManager.conf".into());
    out.extend(etc.into_iter().map(|f| f.host_path));
    out
}

/// NetworkManager's list syntax (NetworkManager.conf(5) "Device List Format"): specs separated
/// by `,` or `;`, whitespace trimmed, backslash escaping a separator.
pub fn nm_split_specs(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('s') => cur.push(' '),
                Some('t') => cur.push('\t'),
                Some('n') => cur.push('\n'),
                Some(n) => cur.push(n),
                None => {}
            },
            ',' | ';' => {
                let t = cur.trim();
                if !t.is_empty() {
                    out.push(t.to_string());
                }
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    let t = cur.trim();
    if !t.is_empty() {
        out.push(t.to_string());
    }
    out
}

/// Whether one positive spec (no `except:`) names `iface`.
fn nm_spec_hits(spec: &str, iface: &CalicoIface) -> bool {
    if spec == "*" {
        return true;
    }
    if let Some(n) = spec.strip_prefix("interface-name:") {
        return match n.strip_prefix('=') {
            Some(literal) => literal == iface.name,
            None => nm_glob(n.strip_prefix('~').unwrap_or(n), iface.name),
        };
    }
    if let Some(t) = spec.strip_prefix("type:") {
        return iface.nm_types.contains(&t);
    }
    if let Some(d) = spec.strip_prefix("driver:") {
        // "driver:NAME/VERSION": the name must match exactly.
        return d.split('/').next() == Some(iface.driver);
    }
    if let Some(m) = spec.strip_prefix("mac:") {
        return iface.mac.is_some_and(|mac| mac.eq_ignore_ascii_case(m));
    }
    if spec.contains(':') {
        // Another qualified spec (s390-subchannels:, a bare MAC ...): not one of ours.
        return iface.mac.is_some_and(|mac| mac.eq_ignore_ascii_case(spec));
    }
    // A bare name: literal, no globbing.
    spec == iface.name
}

/// NetworkManager's match of a spec list against a device (libnm-core `nm_match_spec_device`):
/// a matching `except:` wins; a list of only `except:` specs matches every other device.
pub fn nm_specs_match(specs: &[String], iface: &CalicoIface) -> bool {
    let (mut has_except, mut has_plain, mut hit, mut hit_except) = (false, false, false, false);
    for s in specs {
        match s.strip_prefix("except:") {
            Some(inner) => {
                has_except = true;
                hit_except |= nm_spec_hits(inner, iface);
            }
            None => {
                has_plain = true;
                hit |= nm_spec_hits(s, iface);
            }
        }
    }
    if hit_except {
        return false;
    }
    if has_except && !has_plain {
        return true;
    }
    hit
}

impl NmFacts {
    /// Why NetworkManager leaves `iface` alone, if it does.
    pub fn leaves_alone(&self, iface: &CalicoIface) -> Option<String> {
        // [device*] sections: the first that matches and sets `managed` decides.
        for s in &self.device_sections {
            let matches = s
                .match_device
                .as_ref()
                .is_none_or(|m| nm_specs_match(m, iface));
            if !matches {
                continue;
            }
            match s.managed {
                Some(false) => return Some(format!("[{}] managed=false in {}", s.section, s.file)),
                Some(true) => break,
                None if s.stop_match => break,
                None => {}
            }
        }
        if nm_specs_match(&self.unmanaged_devices, iface) {
            return Some(format!(
                "unmanaged-devices in {}",
                self.unmanaged_devices_in.as_deref().unwrap_or("its config")
            ));
        }
        if iface.kind == "veth" {
            if let Some(rule) = &self.veth_udev_rule {
                return Some(format!("NetworkManager's udev rule {rule} (veths)"));
            }
        }
        None
    }
}

/// NetworkManager's udev rule that unmanages veths: the 85-nm-unmanaged.rules udev uses
/// (/etc shadows /run shadows /usr/lib and /lib), when it carries the veth line of
/// NetworkManager's data/85-nm-unmanaged.rules.
fn nm_veth_rule(root: &Path) -> Option<String> {
    let name = "85-nm-unmanaged.rules";
    let winner = [
        "/etc/udev/rules.d",
        "/run/udev/rules.d",
        "/usr/lib/udev/rules.d",
        "/lib/udev/rules.d",
    ]
    .iter()
    .map(|d| format!("{d}/{name}"))
    .find(|p| std::fs::symlink_metadata(rooted::resolve_under(root, p)).is_ok())?;
    let text = read_text(root, &winner).ok()?;
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .any(|l| l.contains("ID_NET_DRIVER}==\"veth\"") && l.contains("NM_UNMANAGED}=\"1\""))
        .then_some(winner)
}

/// NetworkManager's config, read under `root` for a running NetworkManager.
pub fn gather_nm(root: &Path, process: Option<Process>) -> NmFacts {
    let mut facts = NmFacts {
        process,
        veth_udev_rule: nm_veth_rule(root),
        ..NmFacts::default()
    };
    let mut sections: Vec<Vec<NmDeviceSection>> = Vec::new();
    for path in nm_file_order(root) {
        let main = path == "/etc/NetworkManager/NetworkManager.conf";
        let text = match read_text(root, &path) {
            Ok(t) => t,
            Err(_) if main && !rooted::resolve_under(root, &path).exists() => continue,
            Err(why) => {
                facts.unreadable.push(Unreadable {
                    path: PathBuf::from(&path),
                    why,
                });
                continue;
            }
        };
        let entries = parse_ini(&text, false);
        // [.config] enable=false skips a conf.d file (never the main file). Other predicates
        // (nm-version:, env:) cannot be judged here: the file counts as read.
        let disabled = entries.iter().any(|a| {
            a.section == ".config" && a.key == "enable" && parse_bool(&a.value) == Some(false)
        });
        if disabled && !main {
            continue;
        }
        facts.files.push(path.clone());
        let mut file_sections: Vec<NmDeviceSection> = Vec::new();
        for a in &entries {
            if a.section == "keyfile" {
                let specs = nm_split_specs(&a.value);
                match a.key.as_str() {
                    "unmanaged-devices" => facts.unmanaged_devices = specs,
                    "unmanaged-devices+" => facts.unmanaged_devices.extend(specs),
                    "unmanaged-devices-" => facts.unmanaged_devices.retain(|s| !specs.contains(s)),
                    _ => continue,
                }
                facts.unmanaged_devices_in = Some(path.clone());
            } else if a.section == "device" || a.section.starts_with("device-") {
                let idx = match file_sections.iter().position(|s| s.section == a.section) {
                    Some(i) => i,
                    None => {
                        file_sections.push(NmDeviceSection {
                            file: path.clone(),
                            section: a.section.clone(),
                            match_device: None,
                            managed: None,
                            stop_match: false,
                        });
                        file_sections.len() - 1
                    }
                };
                let s = &mut file_sections[idx];
                match a.key.as_str() {
                    "match-device" => s.match_device = Some(nm_split_specs(&a.value)),
                    "managed" => s.managed = parse_bool(&a.value),
                    "unmanaged" => s.managed = parse_bool(&a.value).map(|b| !b),
                    "stop-match" => s.stop_match = parse_bool(&a.value) == Some(true),
                    _ => {}
                }
            }
        }
        // Within a file, [device] (unnamed) is considered last.
        file_sections.sort_by_key(|s| s.section == "device");
        sections.push(file_sections);
    }
    // Later files take precedence.
    facts.device_sections = sections.into_iter().rev().flatten().collect();
    facts
}

// ---------------------------------------------------------------------------------------------
// systemd-networkd and udev .link files

/// The directories systemd reads .network and .link files from, highest priority first
/// (systemd.network(5), systemd.link(5); /lib on distributions with a split /usr).
pub const NETWORK_DIRS: &[&str] = &[
    "/etc/systemd/network",
    "/run/systemd/network",
    "/usr/local/lib/systemd/network",
    "/usr/lib/systemd/network",
    "/lib/systemd/network",
];

/// How sure a `[Match]` section is to match one of Calico's interfaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchResult {
    Yes,
    No,
    /// It depends on something not read here (the host: `Virtualization=`, a udev
    /// `Property=`, ...); the reason names it.
    Uncertain(String),
}

/// A .network or .link file as systemd parses it, with its drop-ins appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitFile {
    pub name: String,
    /// As the host names it.
    pub path: String,
    pub entries: Vec<Assignment>,
}

const MATCH_LISTS: &[&str] = &[
    "Name",
    "OriginalName",
    "MACAddress",
    "PermanentMACAddress",
    "Path",
    "Driver",
    "Type",
    "Kind",
    "Property",
    "WLANInterfaceType",
    "SSID",
    "BSSID",
];
/// `[Match]` conditions on the host, not the link (systemd's Condition*= tests).
const HOST_CONDITIONS: &[&str] = &[
    "Host",
    "Virtualization",
    "KernelCommandLine",
    "KernelVersion",
    "Credential",
    "Architecture",
    "Firmware",
];

impl UnitFile {
    /// The last value of `section`.`key`.
    pub fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|a| a.section == section && a.key == key)
            .map(|a| a.value.as_str())
    }

    /// The `[Match]` lines, as written.
    pub fn match_text(&self) -> String {
        let m: Vec<String> = self
            .entries
            .iter()
            .filter(|a| a.section == "Match")
            .map(|a| format!("{}={}", a.key, a.value))
            .collect();
        if m.is_empty() {
            "no [Match] section".into()
        } else {
            format!("[Match] {}", m.join(", "))
        }
    }

    /// systemd's `net_match_config` (src/shared/net-condition.c) for one of Calico's
    /// interfaces: each list key must match (a positive pattern matching, or only `!`
    /// patterns none of which match: `net_condition_test_strv`); an empty assignment resets a
    /// list; a leading `!` inverts every word of its line. No valid [Match] matches all.
    /// `name_key` is `Name` for .network and `OriginalName` for .link files.
    pub fn matches(&self, iface: &CalicoIface, name_key: &str) -> MatchResult {
        let mut lists: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        let mut conditions = Vec::new();
        let mut unknown = Vec::new();
        for a in self.entries.iter().filter(|a| a.section == "Match") {
            if let Some(k) = MATCH_LISTS.iter().find(|k| **k == a.key) {
                let l = lists.entry(k).or_default();
                if a.value.is_empty() {
                    l.clear();
                    continue;
                }
                let (invert, rest) = match a.value.strip_prefix('!') {
                    Some(r) => (true, r),
                    None => (false, a.value.as_str()),
                };
                for w in rest.split_whitespace() {
                    let w = w.trim_matches('"');
                    l.push(if invert {
                        format!("!{w}")
                    } else {
                        w.to_string()
                    });
                }
            } else if HOST_CONDITIONS.contains(&a.key.as_str()) {
                if !a.value.is_empty() {
                    conditions.push(format!("{}={}", a.key, a.value));
                }
            } else {
                unknown.push(format!("{}={}", a.key, a.value));
            }
        }
        let mut uncertain = Vec::new();
        for (key, patterns) in &lists {
            if patterns.is_empty() {
                continue;
            }
            let value: Option<&str> = match *key {
                k if k == name_key => Some(iface.name),
                "Name" | "OriginalName" => None,
                "Driver" => Some(iface.driver),
                "Type" => Some(iface.systemd_type),
                "Kind" => Some(iface.kind),
                "MACAddress" => {
                    // A set of addresses, not globs. Udev sees a veth before Calico sets the
                    // ee MAC, so for .link files an ee entry is a maybe.
                    let ee = iface
                        .mac
                        .is_some_and(|m| patterns.iter().any(|p| p.eq_ignore_ascii_case(m)));
                    if !ee {
                        return MatchResult::No;
                    }
                    if name_key == "OriginalName" {
                        uncertain.push("MACAddress=".to_string());
                    }
                    continue;
                }
                "Property" => {
                    uncertain.push(format!("Property={}", patterns.join(" ")));
                    continue;
                }
                // PermanentMACAddress, Path, WLANInterfaceType, SSID, BSSID: a virtual device
                // has none of them.
                _ => None,
            };
            if !strv_match(patterns, value) {
                return MatchResult::No;
            }
        }
        uncertain.extend(conditions);
        uncertain.extend(unknown);
        if uncertain.is_empty() {
            MatchResult::Yes
        } else {
            MatchResult::Uncertain(format!("it depends on {}", uncertain.join(", ")))
        }
    }

    /// `[Link] Unmanaged=yes` (.network): networkd leaves the link alone.
    pub fn unmanaged(&self) -> bool {
        self.get("Link", "Unmanaged").and_then(parse_bool) == Some(true)
    }
}

/// systemd's `net_condition_test_strv`.
fn strv_match(patterns: &[String], value: Option<&str>) -> bool {
    let mut positive = false;
    let mut hit = false;
    for p in patterns {
        let (invert, q) = match p.strip_prefix('!') {
            Some(q) => (true, q),
            None => (false, p.as_str()),
        };
        if !invert {
            positive = true;
        }
        if value.is_some_and(|v| fnmatch(q, v)) {
            if invert {
                return false;
            }
            hit = true;
        }
    }
    if positive {
        hit
    } else {
        true
    }
}

/// The .network or .link files systemd uses, in its order, each with its drop-ins
/// (`<name>.d/*.conf` in the same dirs, same-name rule, in name order) appended.
fn unit_files(root: &Path, suffix: &str, unreadable: &mut Vec<Unreadable>) -> Vec<UnitFile> {
    let mut out = Vec::new();
    for f in systemd_files(root, NETWORK_DIRS, suffix) {
        let mut entries = match read_text(root, &f.host_path) {
            Ok(t) => parse_ini(&t, true),
            Err(why) => {
                unreadable.push(Unreadable {
                    path: PathBuf::from(&f.host_path),
                    why,
                });
                continue;
            }
        };
        let dropin_dirs: Vec<String> = NETWORK_DIRS
            .iter()
            .map(|d| format!("{d}/{}.d", f.name))
            .collect();
        let refs: Vec<&str> = dropin_dirs.iter().map(String::as_str).collect();
        for d in systemd_files(root, &refs, ".conf") {
            match read_text(root, &d.host_path) {
                Ok(t) => entries.extend(parse_ini(&t, true)),
                Err(why) => unreadable.push(Unreadable {
                    path: PathBuf::from(&d.host_path),
                    why,
                }),
            }
        }
        out.push(UnitFile {
            name: f.name,
            path: f.host_path,
            entries,
        });
    }
    out
}

/// systemd-networkd's config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkdFacts {
    pub process: Option<Process>,
    /// `[Network] ManageForeignRoutes=` after networkd.conf and its drop-ins, and where.
    pub manage_foreign_routes: Option<(bool, String)>,
    /// The .network files in networkd's order.
    pub network_files: Vec<UnitFile>,
    pub unreadable: Vec<Unreadable>,
}

impl NetworkdFacts {
    /// The .network file networkd would apply to `iface` (the first by name that matches),
    /// with how sure that is; an uncertain match counts, since it may be the one.
    pub fn first_match(&self, iface: &CalicoIface) -> Option<(&UnitFile, MatchResult)> {
        self.network_files
            .iter()
            .find_map(|f| match f.matches(iface, "Name") {
                MatchResult::No => None,
                m => Some((f, m)),
            })
    }
}

/// networkd.conf: the main file, then `networkd.conf.d/*.conf` drop-ins (same-name rule, in
/// name order); the last `ManageForeignRoutes=` wins (networkd.conf(5)).
fn manage_foreign_routes(root: &Path, unreadable: &mut Vec<Unreadable>) -> Option<(bool, String)> {
    let mut files: Vec<String> = [
        "/etc/systemd/networkd.conf",
        "/run/systemd/networkd.conf",
        "/usr/local/lib/systemd/networkd.conf",
        "/usr/lib/systemd/networkd.conf",
    ]
    .iter()
    .find(|p| rooted::resolve_under(root, p).exists())
    .map(|p| vec![p.to_string()])
    .unwrap_or_default();
    let dirs: Vec<String> = [
        "/etc/systemd",
        "/run/systemd",
        "/usr/local/lib/systemd",
        "/usr/lib/systemd",
    ]
    .iter()
    .map(|d| format!("{d}/networkd.conf.d"))
    .collect();
    let refs: Vec<&str> = dirs.iter().map(String::as_str).collect();
    files.extend(
        systemd_files(root, &refs, ".conf")
            .into_iter()
            .map(|f| f.host_path),
    );
    let mut out = None;
    for p in files {
        match read_text(root, &p) {
            Ok(t) => {
                for a in parse_ini(&t, true) {
                    if a.section == "Network" && a.key == "ManageForeignRoutes" {
                        out = parse_bool(&a.value).map(|b| (b, p.clone()));
                    }
                }
            }
            Err(why) => unreadable.push(Unreadable {
                path: PathBuf::from(&p),
                why,
            }),
        }
    }
    out
}

pub fn gather_networkd(root: &Path, process: Option<Process>) -> NetworkdFacts {
    let mut unreadable = Vec::new();
    let manage_foreign_routes = manage_foreign_routes(root, &mut unreadable);
    let network_files = unit_files(root, ".network", &mut unreadable);
    NetworkdFacts {
        process,
        manage_foreign_routes,
        network_files,
        unreadable,
    }
}

/// The `.link` file udev applies to a cali veth (the first by name that matches:
/// systemd.link(5)) and the MAC it gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkFacts {
    /// The file, and how sure its match is; `None` when no .link file matches.
    pub file: Option<(UnitFile, MatchResult)>,
    pub unreadable: Vec<Unreadable>,
}

impl LinkFacts {
    /// `MACAddressPolicy=` of the matching file, or `MACAddress=` (a fixed MAC), when either
    /// changes the MAC udev leaves on the veth: the setting as written.
    pub fn mac_change(&self) -> Option<String> {
        let (f, _) = self.file.as_ref()?;
        if let Some(p) = f.get("Link", "MACAddressPolicy") {
            if p == "persistent" || p == "random" {
                return Some(format!("MACAddressPolicy={p}"));
            }
        }
        f.get("Link", "MACAddress")
            .filter(|m| !m.is_empty())
            .map(|m| format!("MACAddress={m}"))
    }
}

/// The .link file of a cali veth, read under `root`.
pub fn gather_links(root: &Path) -> LinkFacts {
    let mut unreadable = Vec::new();
    let files = unit_files(root, ".link", &mut unreadable);
    let file = files
        .into_iter()
        .find_map(|f| match f.matches(cali_veth(), "OriginalName") {
            MatchResult::No => None,
            m => Some((f, m)),
        });
    LinkFacts { file, unreadable }
}

/// Which managers run, and the config of those that do (the .link files are not read: see
/// [`NetMgrFacts::veth_link`]).
pub fn gather(root: &Path, deadline: Deadline) -> NetMgrFacts {
    let (nm, networkd) = find_managers(root, deadline);
    NetMgrFacts {
        network_manager: nm.map(|p| gather_nm(root, Some(p))),
        networkd: networkd.map(|p| gather_networkd(root, Some(p))),
        veth_link: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::cni_files::tests::TempDir;

    fn unit(text: &str) -> UnitFile {
        UnitFile {
            name: "t.network".into(),
            path: "/etc/systemd/network/t.network".into(),
            entries: parse_ini(text, true),
        }
    }

    fn iface(name: &str) -> &'static CalicoIface {
        CALICO_IFACES.iter().find(|i| i.name == name).unwrap()
    }

    #[test]
    fn fnmatch_like_libc() {
        assert!(fnmatch("cali*", "cali0123456789a"));
        assert!(fnmatch("*", "x"));
        assert!(fnmatch("en?", "en0"));
        assert!(!fnmatch("eth*", "cali0123456789a"));
        assert!(fnmatch("[ce]ali*", "cali1"));
        assert!(!fnmatch("[!c]ali*", "cali1"));
        assert!(fnmatch("vxlan\\.calico", "vxlan.calico"));
        assert!(fnmatch("a[0-9]b", "a5b"));
        assert!(!fnmatch("a[0-9]b", "axb"));
        assert!(!nm_glob("[c]ali*", "cali1"), "NetworkManager has no ranges");
    }

    #[test]
    fn ini_keeps_order_sections_and_continuations() {
        let a = parse_ini(
            "# c\n[Match]\nName=eth0 \\\n  eth1\n; c\n[Link]\nUnmanaged = yes\n",
            true,
        );
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].value, "eth0  eth1");
        assert_eq!(
            (a[1].section.as_str(), a[1].key.as_str()),
            ("Link", "Unmanaged")
        );
        assert_eq!(a[1].value, "yes");
    }

    #[test]
    fn network_match_semantics() {
        let veth = cali_veth();
        for (text, want) in [
            ("[Network]\nDHCP=yes\n", MatchResult::Yes),
            ("[Match]\nName=*\n", MatchResult::Yes),
            ("[Match]\nName=cali*\n", MatchResult::Yes),
            ("[Match]\nType=ether\n", MatchResult::Yes),
            ("[Match]\nDriver=veth\n", MatchResult::Yes),
            ("[Match]\nKind=veth\n", MatchResult::Yes),
            ("[Match]\nName=eth*\n", MatchResult::No),
            ("[Match]\nName=en* eth*\n", MatchResult::No),
            ("[Match]\nName=!eth0\n", MatchResult::Yes),
            ("[Match]\nName=!cali*\n", MatchResult::No),
            ("[Match]\nName=eth0\nName=\n", MatchResult::Yes),
            ("[Match]\nPath=pci-*\n", MatchResult::No),
            ("[Match]\nMACAddress=52:54:00:12:34:56\n", MatchResult::No),
            ("[Match]\nMACAddress=EE:EE:EE:EE:EE:EE\n", MatchResult::Yes),
            ("[Match]\nType=ether\nName=eth0\n", MatchResult::No),
            ("[Match]\nType=wlan\n", MatchResult::No),
        ] {
            assert_eq!(unit(text).matches(veth, "Name"), want, "{text}");
        }
        for text in [
            "[Match]\nVirtualization=vm\n",
            "[Match]\nName=*\nHost=node1\n",
            "[Match]\nProperty=ID_NET_DRIVER=veth\n",
        ] {
            assert!(
                matches!(unit(text).matches(veth, "Name"), MatchResult::Uncertain(_)),
                "{text}"
            );
        }
        // The tunnels: Type=ether does not cover ipip, Kind=vxlan only vxlan.
        assert_eq!(
            unit("[Match]\nType=ether\n").matches(iface("tunl0"), "Name"),
            MatchResult::No
        );
        assert_eq!(
            unit("[Match]\nKind=vxlan\n").matches(iface("vxlan.calico"), "Name"),
            MatchResult::Yes
        );
        assert!(unit("[Match]\nName=cali*\n[Link]\nUnmanaged=yes\n").unmanaged());
    }

    #[test]
    fn nm_specs_like_networkmanager() {
        let specs = nm_split_specs(
            "interface-name:cali*;interface-name:tunl*, interface-name:vxlan.calico;;",
        );
        assert_eq!(specs.len(), 3);
        let veth = cali_veth();
        assert!(nm_specs_match(&specs, veth));
        assert!(nm_specs_match(&specs, iface("tunl0")));
        assert!(!nm_specs_match(&specs, iface("wireguard.cali")));
        let s = |v: &str| nm_split_specs(v);
        assert!(nm_specs_match(&s("*"), veth));
        assert!(nm_specs_match(&s("*,except:interface-name:eth0"), veth));
        assert!(!nm_specs_match(&s("*,except:interface-name:cali*"), veth));
        assert!(nm_specs_match(&s("except:interface-name:eth0"), veth));
        assert!(!nm_specs_match(&s("cali*"), veth), "a bare name is literal");
        assert!(!nm_specs_match(&s("interface-name:=cali*"), veth));
        assert!(nm_specs_match(&s("driver:veth"), veth));
        assert!(nm_specs_match(&s("type:veth"), veth));
        assert!(nm_specs_match(&s("interface-name:~cali*"), veth));
        assert!(!nm_specs_match(&s("interface-name:eth*"), veth));
        assert!(!nm_specs_match(&[], veth));
    }

    fn put(root: &Path, host_path: &str, text: &str) {
        let p = root.join(host_path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn nm_config_order_shadowing_and_append() {
        let t = TempDir::new("nm-order");
        let r = &t.0;
        put(
            r,
            "/usr/lib/NetworkManager/conf.d/10-a.conf",
            "[keyfile]\nunmanaged-devices=interface-name:docker0\n",
        );
        // Shadowed by /etc's file of the same name: never read.
        put(
            r,
            "/usr/lib/NetworkManager/conf.d/20-b.conf",
            "[keyfile]\nunmanaged-devices=*\n",
        );
        put(r, "/etc/NetworkManager/conf.d/20-b.conf", "[main]\n");
        put(
            r,
            "/etc/NetworkManager/NetworkManager.conf",
            "[keyfile]\nunmanaged-devices+=interface-name:cali*\n",
        );
        put(
            r,
            "/etc/NetworkManager/conf.d/30-off.conf",
            "[.config]\nenable=false\n[keyfile]\nunmanaged-devices=\n",
        );
        let f = gather_nm(r, None);
        assert_eq!(
            f.files,
            vec![
                "/usr/lib/NetworkManager/conf.d/10-a.conf",
                "/etc/NetworkManager/NetworkManager.conf",
                "/etc/NetworkManager/conf.d/20-b.conf",
            ]
        );
        assert_eq!(
            f.unmanaged_devices,
            vec!["interface-name:docker0", "interface-name:cali*"]
        );
        assert!(f.leaves_alone(cali_veth()).is_some());
        assert!(f.leaves_alone(iface("tunl0")).is_none());
        // A later file replacing the list drops cali*.
        put(
            r,
            "/etc/NetworkManager/conf.d/40-x.conf",
            "[keyfile]\nunmanaged-devices=interface-name:eth9\n",
        );
        assert!(gather_nm(r, None).leaves_alone(cali_veth()).is_none());
        // A [device] section unmanages too; a later file's section wins.
        put(
            r,
            "/etc/NetworkManager/conf.d/50-dev.conf",
            "[device-calico]\nmatch-device=interface-name:cali*\nmanaged=0\n",
        );
        let f = gather_nm(r, None);
        assert!(f
            .leaves_alone(cali_veth())
            .unwrap()
            .contains("device-calico"));
        put(
            r,
            "/etc/NetworkManager/conf.d/60-dev.conf",
            "[device]\nmanaged=1\n",
        );
        assert!(gather_nm(r, None).leaves_alone(cali_veth()).is_none());
    }

    #[test]
    fn nm_udev_rule_unmanages_veths_unless_overridden() {
        let t = TempDir::new("nm-udev");
        let r = &t.0;
        let rule = "ENV{ID_NET_DRIVER}==\"veth\", ENV{INTERFACE}!=\"eth[0-9]*\", ENV{NM_UNMANAGED}=\"1\"\n";
        put(r, "/usr/lib/udev/rules.d/85-nm-unmanaged.rules", rule);
        let f = gather_nm(r, None);
        assert!(f.leaves_alone(cali_veth()).unwrap().contains("udev rule"));
        assert!(f.leaves_alone(iface("vxlan.calico")).is_none());
        put(r, "/etc/udev/rules.d/85-nm-unmanaged.rules", "# emptied\n");
        assert!(gather_nm(r, None).leaves_alone(cali_veth()).is_none());
    }

    #[test]
    fn network_files_precedence_masking_and_dropins() {
        let t = TempDir::new("nd-order");
        let r = &t.0;
        put(
            r,
            "/usr/lib/systemd/network/80-all.network",
            "[Match]\nName=*\n",
        );
        put(
            r,
            "/usr/lib/systemd/network/10-eth.network",
            "[Match]\nName=eth*\n",
        );
        let f = gather_networkd(r, None);
        assert_eq!(f.first_match(cali_veth()).unwrap().0.name, "80-all.network");
        assert!(f.manage_foreign_routes.is_none());
        // An empty file of the same name in /etc masks it.
        put(r, "/etc/systemd/network/80-all.network", "");
        assert!(gather_networkd(r, None).first_match(cali_veth()).is_none());
        std::fs::remove_file(r.join("etc/systemd/network/80-all.network")).unwrap();
        // A drop-in makes it Unmanaged.
        put(
            r,
            "/etc/systemd/network/80-all.network.d/calico.conf",
            "[Link]\nUnmanaged=yes\n",
        );
        assert!(gather_networkd(r, None)
            .first_match(cali_veth())
            .unwrap()
            .0
            .unmanaged());
        put(
            r,
            "/etc/systemd/networkd.conf",
            "[Network]\nManageForeignRoutes=yes\n",
        );
        put(
            r,
            "/usr/lib/systemd/networkd.conf.d/k8s.conf",
            "[Network]\nManageForeignRoutes=no\n",
        );
        assert_eq!(
            gather_networkd(r, None).manage_foreign_routes,
            Some((false, "/usr/lib/systemd/networkd.conf.d/k8s.conf".into()))
        );
    }

    #[test]
    fn link_policy_first_match_wins() {
        let t = TempDir::new("links");
        let r = &t.0;
        put(
            r,
            "/usr/lib/systemd/network/99-default.link",
            "[Match]\nOriginalName=*\n[Link]\nNamePolicy=keep kernel\nMACAddressPolicy=persistent\n",
        );
        put(
            r,
            "/usr/lib/systemd/network/73-usb.link",
            "[Match]\nPath=*usb*\n[Link]\nMACAddressPolicy=random\n",
        );
        let l = gather_links(r);
        assert_eq!(l.file.as_ref().unwrap().0.name, "99-default.link");
        assert_eq!(
            l.mac_change().as_deref(),
            Some("MACAddressPolicy=persistent")
        );
        put(
            r,
            "/etc/systemd/network/50-calico-veth.link",
            "[Match]\nDriver=veth\n[Link]\nMACAddressPolicy=none\n",
        );
        let l = gather_links(r);
        assert_eq!(l.file.as_ref().unwrap().0.name, "50-calico-veth.link");
        assert!(l.mac_change().is_none());
    }

    #[test]
    fn host_root_symlinks_stay_inside_and_fifos_are_not_read() {
        let t = TempDir::new("root-links");
        let r = &t.0;
        std::fs::create_dir_all(r.join("usr/lib/systemd/network")).unwrap();
        // /lib -> /usr/lib, absolute, as on a merged-/usr host.
        std::os::unix::fs::symlink("/usr/lib", r.join("lib")).unwrap();
        assert_eq!(
            rooted::resolve_under(r, "/lib/systemd/network"),
            r.join("usr/lib/systemd/network")
        );
        assert_eq!(rooted::resolve_under(r, "/../../etc"), r.join("etc"));
        let fifo = r.join("usr/lib/systemd/network/10-fifo.network");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let f = gather_networkd(r, None);
        assert!(f.network_files.is_empty());
        assert_eq!(f.unreadable.len(), 1, "{:?}", f.unreadable);
    }
}
