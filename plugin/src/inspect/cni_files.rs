//! The node's CNI files: config files in the conf dir as libcni reads them, and where the
//! plugin binaries a conflist needs really are. Read-only.

use serde_json::Value;
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Directory entries looked at in the conf dir: a bound on work, far above any real node.
pub const MAX_DIR_ENTRIES: usize = 4096;
/// Config files parsed (the first ones in lexical order, the ones a runtime would use).
pub const MAX_CONF_FILES: usize = 256;
/// Config files larger than this are recorded as errors without being read.
pub const MAX_CONF_BYTES: u64 = 1 << 20;
/// The extensions runtimes read, as in libcni's `ConfFiles(dir, [".conf", ".conflist", ".json"])`.
const EXTENSIONS: &[&str] = &["conf", "conflist", "json"];

/// What to look for.
#[derive(Debug, Clone, Default)]
pub struct CniFilesQuery {
    pub conf_dir: PathBuf,
    /// The network name the runtime passed (`name` in our stdin config); empty: the first file
    /// holding `our_type`, whatever its network (`doctor`, which has no runtime to ask).
    pub network_name: String,
    /// Our own plugin `type` (as in our stdin config), to recognise our conflist.
    pub our_type: String,
    /// CNI_PATH, in order.
    pub cni_path: Vec<PathBuf>,
    /// Extra places to look for binaries missing from CNI_PATH (config `searchBinDirs`), searched
    /// after the usual ones.
    pub search_dirs: Vec<PathBuf>,
}

/// The usual places CNI binaries end up, searched when one is missing from CNI_PATH.
pub const USUAL_BIN_DIRS: &[&str] = &[
    "/opt/cni/bin",
    "/etc/cni/bin",
    "/usr/libexec/cni",
    "/usr/lib/cni",
    "/var/lib/rancher/k3s/data/current/bin",
    "/home/kubernetes/bin",
];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniFiles {
    pub conf_dir: PathBuf,
    /// The network name and our type that were looked for (from the query), for messages.
    pub network_name: String,
    pub our_type: String,
    /// Why the conf dir could not be listed, if it exists but could not be.
    pub conf_dir_error: Option<String>,
    /// The conf dir does not exist (libcni treats that as "no files", not an error).
    pub conf_dir_missing: bool,
    /// The dir held more entries or config files than were looked at (see MAX_*).
    pub truncated: bool,
    /// Config files (`.conflist`, `.conf`, `.json`) in lexical order, as libcni loads them.
    pub files: Vec<ConfFile>,
    /// Index in `files` of the file holding our network (name matches and it has our type).
    pub ours: Option<usize>,
    /// For every plugin type our conflist needs (plugins and nested `ipam.type`), where it is.
    pub binaries: Vec<BinLookup>,
    pub cni_path: Vec<PathBuf>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfFile {
    pub path: PathBuf,
    /// The network `name`, when the file parsed.
    pub name: Option<String>,
    /// Plugin types in order (for a `.conf`, the single plugin's type).
    pub types: Vec<String>,
    /// `(plugin type, ipam type)` for each plugin that has an `ipam.type`, in order.
    pub ipam: Vec<(String, String)>,
    /// Why the file could not be read or parsed (libcni skips such files).
    pub error: Option<String>,
    /// The file's `cniVersion`, when it has one.
    pub cni_version: Option<String>,
    /// Each plugin entry as written (for a `.conf`, the whole object): what the checks read
    /// Calico's own settings from (ipam, routes, device type, ...).
    pub plugins: Vec<serde_json::Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinLookup {
    /// The binary name (a plugin `type` or an `ipam.type`).
    pub plugin: String,
    /// Who needs it: "plugin calico" or "ipam of plugin calico".
    pub needed_by: String,
    /// What each CNI_PATH directory holds under that name (only dirs where something exists).
    pub in_path: Vec<BinCandidate>,
    /// Where it exists outside CNI_PATH (usual dirs, then searchBinDirs); only looked up when
    /// no executable was found in CNI_PATH.
    pub elsewhere: Vec<BinCandidate>,
}

impl BinLookup {
    /// The first executable in CNI_PATH.
    pub fn found(&self) -> Option<&BinCandidate> {
        self.in_path
            .iter()
            .find(|c| c.state == BinState::Executable)
    }

    /// The candidate libcni's `FindInPath` picks: the first regular file (symlinks followed),
    /// executable or not, so a non-executable file shadows an executable one in a later dir.
    pub fn libcni_pick(&self) -> Option<&BinCandidate> {
        self.in_path.iter().find(|c| c.state.is_regular())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinCandidate {
    pub path: PathBuf,
    pub state: BinState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinState {
    Executable,
    /// A regular file without any execute bit.
    NotExecutable {
        mode: u32,
    },
    /// A symlink whose target does not exist.
    DanglingSymlink {
        target: PathBuf,
    },
    /// A directory or other non-regular file.
    NotRegular,
}

impl BinState {
    pub fn is_regular(&self) -> bool {
        matches!(self, BinState::Executable | BinState::NotExecutable { .. })
    }
}

/// Reads the conf dir and looks every needed binary up. Never fails: what cannot be read is
/// recorded in the result for the checks to report. Only metadata and regular files are read,
/// so a FIFO or device planted in a directory cannot block the plugin.
pub fn gather(q: &CniFilesQuery) -> CniFiles {
    let mut out = CniFiles {
        conf_dir: q.conf_dir.clone(),
        network_name: q.network_name.clone(),
        our_type: q.our_type.clone(),
        cni_path: q.cni_path.clone(),
        ..CniFiles::default()
    };
    match conf_file_names(&q.conf_dir) {
        Ok(None) => out.conf_dir_missing = true,
        Ok(Some((names, truncated))) => {
            out.truncated = truncated || names.len() > MAX_CONF_FILES;
            out.files = names
                .into_iter()
                .take(MAX_CONF_FILES)
                .map(|n| read_conf_file(q.conf_dir.join(n)))
                .collect();
        }
        Err(e) => out.conf_dir_error = Some(e.to_string()),
    }
    out.ours = out.files.iter().position(|f| {
        f.error.is_none()
            && (q.network_name.is_empty() || f.name.as_deref() == Some(q.network_name.as_str()))
            && f.types.contains(&q.our_type)
    });
    if let Some(i) = out.ours {
        out.binaries = needed_binaries(&out.files[i])
            .into_iter()
            .map(|(plugin, needed_by)| look_up(q, plugin, needed_by))
            .collect();
    }
    out
}

/// Config file names in `dir`, sorted as libcni sorts them (bytewise); `None` when the dir
/// does not exist. The bool says the listing stopped at MAX_DIR_ENTRIES.
fn conf_file_names(dir: &Path) -> std::io::Result<Option<(Vec<OsString>, bool)>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
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
        // Like ConfFiles: skip directories (not symlinks to them), keep the rest by extension.
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let name = entry.file_name();
        if has_conf_extension(&name) {
            names.push(name);
        }
    }
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(Some((names, truncated)))
}

/// Go's `filepath.Ext`: the suffix from the last dot, so ".conf" alone counts too.
fn has_conf_extension(name: &std::ffi::OsStr) -> bool {
    let b = name.as_bytes();
    b.iter()
        .rposition(|&c| c == b'.')
        .is_some_and(|i| EXTENSIONS.iter().any(|e| &b[i + 1..] == e.as_bytes()))
}

fn read_conf_file(path: PathBuf) -> ConfFile {
    let mut f = ConfFile {
        path,
        ..ConfFile::default()
    };
    let parsed = read_bounded(&f.path).and_then(|bytes| {
        // As the runtimes do: strings.HasSuffix(file, ".conflist").
        if f.path.as_os_str().as_bytes().ends_with(b".conflist") {
            parse_conflist(&bytes)
        } else {
            parse_conf(&bytes)
        }
    });
    match parsed {
        Ok(p) => {
            f.name = Some(p.name);
            f.types = p.types;
            f.ipam = p.ipam;
            f.cni_version = p.cni_version;
            f.plugins = p.plugins;
        }
        Err(e) => f.error = Some(e),
    }
    f
}

/// Reads a regular file of at most MAX_CONF_BYTES. Opened non-blocking and checked with fstat
/// on the open handle, so a FIFO is never waited on and a swapped-in file is not misjudged.
pub(crate) fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot open: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot stat: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > MAX_CONF_BYTES {
        return Err(format!(
            "{} bytes, more than the {MAX_CONF_BYTES} read",
            meta.len()
        ));
    }
    let mut bytes = Vec::new();
    file.take(MAX_CONF_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    Ok(bytes)
}

#[derive(Debug)]
struct Parsed {
    name: String,
    types: Vec<String>,
    ipam: Vec<(String, String)>,
    cni_version: Option<String>,
    plugins: Vec<serde_json::Map<String, Value>>,
}

fn parse_object(bytes: &[u8]) -> Result<serde_json::Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("not a JSON object".into()),
        Err(e) => Err(format!("invalid JSON: {e}")),
    }
}

/// An optional string key; present with another type is an error, as in Go's json.Unmarshal.
fn opt_str<'a>(
    m: &'a serde_json::Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, String> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("'{key}' is not a string")),
    }
}

/// One plugin entry: its non-empty `type` and its `ipam.type`, if any.
fn plugin_entry(m: &serde_json::Map<String, Value>) -> Result<(String, Option<String>), String> {
    let ty = opt_str(m, "type")?.unwrap_or_default();
    let ipam = match m.get("ipam") {
        None | Some(Value::Null) => None,
        Some(Value::Object(i)) => opt_str(i, "type")?
            .filter(|t| !t.is_empty())
            .map(str::to_string),
        Some(_) => return Err("'ipam' is not an object".into()),
    };
    Ok((ty.to_string(), ipam))
}

/// A `.conflist`, as libcni's ConfListFromBytes: a string `name`, a non-empty `plugins` list,
/// each with a `type`.
fn parse_conflist(bytes: &[u8]) -> Result<Parsed, String> {
    let m = parse_object(bytes)?;
    let name = opt_str(&m, "name")?.ok_or("no 'name'")?.to_string();
    // Newer libcni can load a list without `plugins` from <confDir>/<name>/*.conf; runtimes
    // in the field (and older libcni) reject it, so this reports it as unusable.
    let plugins = match m.get("plugins") {
        Some(Value::Array(p)) if !p.is_empty() => p,
        Some(Value::Array(_)) | None => return Err("no plugins in list".into()),
        Some(_) => return Err("'plugins' is not a list".into()),
    };
    let mut types = Vec::new();
    let mut ipam = Vec::new();
    for (i, p) in plugins.iter().enumerate() {
        let Value::Object(p) = p else {
            return Err(format!("plugin {i} is not a JSON object"));
        };
        let (ty, ip) = plugin_entry(p).map_err(|e| format!("plugin {i}: {e}"))?;
        if ty.is_empty() {
            return Err(format!("plugin {i}: missing 'type'"));
        }
        if let Some(ip) = ip {
            ipam.push((ty.clone(), ip));
        }
        types.push(ty);
    }
    Ok(Parsed {
        name,
        types,
        ipam,
        cni_version: opt_str(&m, "cniVersion")?.map(str::to_string),
        plugins: plugins
            .iter()
            .filter_map(|p| p.as_object().cloned())
            .collect(),
    })
}

/// A `.conf`/`.json`: a single plugin. Runtimes (containerd's go-cni, CRI-O's ocicni, kubelet)
/// skip one without `type` even when it holds a `plugins` list, so that is an error here too.
fn parse_conf(bytes: &[u8]) -> Result<Parsed, String> {
    let m = parse_object(bytes)?;
    let name = opt_str(&m, "name")?.unwrap_or_default().to_string();
    let (ty, ip) = plugin_entry(&m)?;
    if ty.is_empty() {
        return Err(if m.contains_key("plugins") {
            "no 'type'; it holds a 'plugins' list, which runtimes read only from a .conflist file"
                .into()
        } else {
            "no 'type'".into()
        });
    }
    let ipam = ip.map(|i| vec![(ty.clone(), i)]).unwrap_or_default();
    Ok(Parsed {
        name,
        types: vec![ty],
        ipam,
        cni_version: opt_str(&m, "cniVersion")?.map(str::to_string),
        plugins: vec![m],
    })
}

/// Every binary a config file needs, in chain order (each plugin, then its ipam), once each.
fn needed_binaries(f: &ConfFile) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut push = |bin: &str, by: String| {
        // libcni refuses names with a path separator; never stat outside the dirs for them.
        let valid = !bin.is_empty() && !bin.contains('/') && bin != "." && bin != "..";
        if valid && !out.iter().any(|(b, _)| b == bin) {
            out.push((bin.to_string(), by));
        }
    };
    for t in &f.types {
        push(t, format!("plugin {t}"));
        for (_, ip) in f.ipam.iter().filter(|(p, _)| p == t) {
            push(ip, format!("ipam of plugin {t}"));
        }
    }
    out
}

fn look_up(q: &CniFilesQuery, plugin: String, needed_by: String) -> BinLookup {
    let in_path: Vec<BinCandidate> = q
        .cni_path
        .iter()
        .filter_map(|d| candidate(&d.join(&plugin)))
        .collect();
    let mut lookup = BinLookup {
        plugin,
        needed_by,
        in_path,
        elsewhere: Vec::new(),
    };
    if lookup.found().is_none() {
        lookup.elsewhere = other_dirs(q)
            .iter()
            .filter_map(|d| candidate(&d.join(&lookup.plugin)))
            .collect();
    }
    lookup
}

/// USUAL_BIN_DIRS then searchBinDirs, without CNI_PATH dirs and duplicates.
fn other_dirs(q: &CniFilesQuery) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let all = USUAL_BIN_DIRS
        .iter()
        .map(PathBuf::from)
        .chain(q.search_dirs.iter().cloned());
    for d in all {
        if !q.cni_path.contains(&d) && !out.contains(&d) {
            out.push(d);
        }
    }
    out
}

/// What is at `path`, from metadata only; `None` when nothing is.
fn candidate(path: &Path) -> Option<BinCandidate> {
    let lmeta = std::fs::symlink_metadata(path).ok()?;
    let state = match std::fs::metadata(path) {
        Ok(m) if m.is_file() && m.mode() & 0o111 != 0 => BinState::Executable,
        Ok(m) if m.is_file() => BinState::NotExecutable {
            mode: m.mode() & 0o7777,
        },
        Ok(_) => BinState::NotRegular,
        // The name exists but cannot be followed: a link to nowhere (or a loop).
        Err(_) if lmeta.file_type().is_symlink() => BinState::DanglingSymlink {
            target: std::fs::read_link(path).unwrap_or_default(),
        },
        Err(_) => BinState::NotRegular,
    };
    Some(BinCandidate {
        path: path.to_path_buf(),
        state,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A directory under the system temp dir, removed on drop.
    pub(crate) struct TempDir(pub PathBuf);

    impl TempDir {
        pub(crate) fn new(tag: &str) -> TempDir {
            static N: AtomicU32 = AtomicU32::new(0);
            let n = N.fetch_add(1, Ordering::SeqCst);
            let p = std::env::temp_dir().join(format!("cp-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
        pub(crate) fn dir(&self, name: &str) -> PathBuf {
            let d = self.0.join(name);
            std::fs::create_dir_all(&d).unwrap();
            d
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    pub(crate) fn write(path: &Path, text: &str, mode: u32) {
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// Names no machine has in its real CNI dirs, so USUAL_BIN_DIRS cannot interfere.
    const CAL: &str = "cp-test-calico";
    const IPAM: &str = "cp-test-calico-ipam";
    const US: &str = "cp-test-preflight";

    fn calico_conflist() -> String {
        format!(
            r#"{{"cniVersion":"1.0.0","name":"k8s-pod-network","plugins":[
                {{"type":"{CAL}","ipam":{{"type":"{IPAM}"}}}},
                {{"type":"portmap-cp-test"}},
                {{"type":"{US}"}}]}}"#
        )
    }

    fn query(t: &TempDir) -> CniFilesQuery {
        CniFilesQuery {
            conf_dir: t.dir("net.d"),
            network_name: "k8s-pod-network".into(),
            our_type: US.into(),
            cni_path: vec![t.dir("opt-bin")],
            search_dirs: vec![t.dir("etc-bin")],
        }
    }

    fn lookup<'a>(c: &'a CniFiles, name: &str) -> &'a BinLookup {
        c.binaries.iter().find(|b| b.plugin == name).unwrap()
    }

    #[test]
    fn lists_config_files_sorted_and_parses_each_kind() {
        let t = TempDir::new("cf-list");
        let q = query(&t);
        let d = &q.conf_dir;
        write(&d.join("10-calico.conflist"), &calico_conflist(), 0o644);
        write(
            &d.join("05-bridge.conf"),
            r#"{"name":"podman","type":"bridge","ipam":{"type":"host-local"}}"#,
            0o644,
        );
        write(
            &d.join("99-x.json"),
            r#"{"name":"j","plugins":[{"type":"a"}]}"#,
            0o644,
        );
        write(&d.join("00-broken.conflist"), "{", 0o644);
        write(&d.join("README.md"), "not config", 0o644);
        write(&d.join(".conf"), r#"{"type":"hidden"}"#, 0o644);
        std::fs::create_dir(d.join("20-dir.conflist")).unwrap();
        let c = gather(&q);
        let names: Vec<String> = c
            .files
            .iter()
            .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                ".conf",
                "00-broken.conflist",
                "05-bridge.conf",
                "10-calico.conflist",
                "99-x.json"
            ]
        );
        assert_eq!(c.files[0].types, ["hidden"]);
        assert_eq!(c.files[0].name.as_deref(), Some(""));
        assert!(c.files[1]
            .error
            .as_deref()
            .unwrap()
            .contains("invalid JSON"));
        assert_eq!(c.files[2].types, ["bridge"]);
        assert_eq!(
            c.files[2].ipam,
            [("bridge".to_string(), "host-local".to_string())]
        );
        assert_eq!(c.files[3].types, [CAL, "portmap-cp-test", US]);
        // A .json holding a list is skipped by the runtimes ("perhaps this is a .conflist?").
        assert!(
            c.files[4]
                .error
                .as_deref()
                .unwrap()
                .contains("'plugins' list"),
            "{:?}",
            c.files[4]
        );
        assert_eq!(c.ours, Some(3));
        let bins: Vec<(&str, &str)> = c
            .binaries
            .iter()
            .map(|b| (b.plugin.as_str(), b.needed_by.as_str()))
            .collect();
        assert_eq!(
            bins,
            [
                (CAL, "plugin cp-test-calico"),
                (IPAM, "ipam of plugin cp-test-calico"),
                ("portmap-cp-test", "plugin portmap-cp-test"),
                (US, "plugin cp-test-preflight"),
            ]
        );
        assert!(!c.conf_dir_missing && c.conf_dir_error.is_none() && !c.truncated);
    }

    #[test]
    fn conflist_errors_match_libcni() {
        for (text, want) in [
            (r#"{"plugins":[{"type":"a"}]}"#, "no 'name'"),
            (
                r#"{"name":1,"plugins":[{"type":"a"}]}"#,
                "'name' is not a string",
            ),
            (r#"{"name":"n"}"#, "no plugins in list"),
            (r#"{"name":"n","plugins":[]}"#, "no plugins in list"),
            (
                r#"{"name":"n","plugins":[{"type":"a"},{}]}"#,
                "plugin 1: missing 'type'",
            ),
            (
                r#"{"name":"n","plugins":[{"type":"a","ipam":[]}]}"#,
                "plugin 0: 'ipam' is not an object",
            ),
            ("[]", "not a JSON object"),
        ] {
            assert_eq!(parse_conflist(text.as_bytes()).unwrap_err(), want, "{text}");
        }
        assert_eq!(parse_conf(br#"{"name":"n"}"#).unwrap_err(), "no 'type'");
    }

    #[test]
    fn ours_needs_both_name_and_type() {
        let t = TempDir::new("cf-ours");
        let q = query(&t);
        write(
            &q.conf_dir.join("10-calico.conflist"),
            &calico_conflist().replace(US, "other"),
            0o644,
        );
        write(
            &q.conf_dir.join("20-other.conflist"),
            &calico_conflist().replace("k8s-pod-network", "else"),
            0o644,
        );
        let c = gather(&q);
        assert_eq!(c.ours, None);
        assert!(c.binaries.is_empty());
    }

    #[test]
    fn an_empty_network_name_takes_the_first_file_with_our_type() {
        let t = TempDir::new("cf-anyname");
        let mut q = query(&t);
        write(
            &q.conf_dir.join("10-calico.conflist"),
            &calico_conflist().replace("k8s-pod-network", "renamed"),
            0o644,
        );
        assert_eq!(
            gather(&q).ours,
            None,
            "the name must match when one is given"
        );
        q.network_name.clear();
        let c = gather(&q);
        assert_eq!(c.ours, Some(0));
        assert!(!c.binaries.is_empty());
    }

    #[test]
    fn missing_and_unreadable_conf_dirs() {
        let t = TempDir::new("cf-missing");
        let mut q = query(&t);
        q.conf_dir = t.0.join("nope");
        let c = gather(&q);
        assert!(c.conf_dir_missing && c.conf_dir_error.is_none() && c.files.is_empty());
        q.conf_dir = t.0.join("file");
        write(&q.conf_dir, "", 0o644);
        let c = gather(&q);
        assert!(!c.conf_dir_missing && c.conf_dir_error.is_some());
    }

    #[test]
    fn fifos_big_files_and_symlinks_to_dirs_are_errors_not_hangs() {
        let t = TempDir::new("cf-fifo");
        let q = query(&t);
        let fifo = q.conf_dir.join("00-fifo.conf");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: mkfifo on a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0);
        std::fs::write(
            q.conf_dir.join("01-big.conf"),
            vec![b' '; MAX_CONF_BYTES as usize + 1],
        )
        .unwrap();
        symlink(&t.0, q.conf_dir.join("02-dirlink.conf")).unwrap();
        let c = gather(&q);
        assert_eq!(c.files.len(), 3);
        assert_eq!(c.files[0].error.as_deref(), Some("not a regular file"));
        assert!(c.files[1].error.as_deref().unwrap().contains("more than"));
        assert_eq!(c.files[2].error.as_deref(), Some("not a regular file"));
    }

    #[test]
    fn many_files_are_bounded() {
        let t = TempDir::new("cf-many");
        let q = query(&t);
        for i in 0..MAX_CONF_FILES + 3 {
            write(&q.conf_dir.join(format!("{i:04}.conf")), "{}", 0o644);
        }
        let c = gather(&q);
        assert_eq!(c.files.len(), MAX_CONF_FILES);
        assert!(c.truncated);
    }

    #[test]
    fn classifies_what_is_in_each_bin_dir() {
        let t = TempDir::new("cf-bins");
        let mut q = query(&t);
        q.cni_path.push(t.dir("opt-bin2"));
        write(
            &q.conf_dir.join("10-calico.conflist"),
            &calico_conflist(),
            0o644,
        );
        let (p1, p2, etc) = (
            q.cni_path[0].clone(),
            q.cni_path[1].clone(),
            q.search_dirs[0].clone(),
        );
        // calico: not executable in the first dir, executable in the second (libcni picks the first).
        write(&p1.join(CAL), "#!/bin/sh\n", 0o644);
        write(&p2.join(CAL), "#!/bin/sh\n", 0o755);
        // ipam: a dangling link in CNI_PATH, the real one elsewhere.
        symlink(etc.join("gone"), p1.join(IPAM)).unwrap();
        write(&etc.join(IPAM), "#!/bin/sh\n", 0o755);
        // portmap: a directory; ours: a FIFO (never opened).
        std::fs::create_dir(p1.join("portmap-cp-test")).unwrap();
        let c_path = std::ffi::CString::new(p1.join(US).as_os_str().as_bytes()).unwrap();
        // SAFETY: mkfifo on a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o755) }, 0);
        let c = gather(&q);

        let cal = lookup(&c, CAL);
        assert_eq!(
            cal.in_path[0].state,
            BinState::NotExecutable { mode: 0o644 }
        );
        assert_eq!(cal.found().unwrap().path, p2.join(CAL));
        assert_eq!(cal.libcni_pick().unwrap().path, p1.join(CAL));
        assert!(
            cal.elsewhere.is_empty(),
            "only looked for when CNI_PATH has none"
        );

        let ipam = lookup(&c, IPAM);
        assert_eq!(
            ipam.in_path,
            [BinCandidate {
                path: p1.join(IPAM),
                state: BinState::DanglingSymlink {
                    target: etc.join("gone")
                }
            }]
        );
        assert_eq!(
            ipam.elsewhere,
            [BinCandidate {
                path: etc.join(IPAM),
                state: BinState::Executable
            }]
        );
        assert!(ipam.libcni_pick().is_none());

        assert_eq!(
            lookup(&c, "portmap-cp-test").in_path[0].state,
            BinState::NotRegular
        );
        assert_eq!(lookup(&c, US).in_path[0].state, BinState::NotRegular);
    }

    #[test]
    fn search_dirs_skip_cni_path_and_duplicates() {
        let t = TempDir::new("cf-dirs");
        let mut q = query(&t);
        let extra = q.search_dirs[0].clone();
        q.search_dirs = vec![
            q.cni_path[0].clone(),
            extra.clone(),
            extra.clone(),
            PathBuf::from("/opt/cni/bin"),
        ];
        let dirs = other_dirs(&q);
        assert_eq!(dirs.iter().filter(|d| **d == extra).count(), 1);
        assert!(!dirs.contains(&q.cni_path[0]));
        assert_eq!(
            dirs.iter()
                .filter(|d| *d == Path::new("/opt/cni/bin"))
                .count(),
            1
        );
        assert_eq!(dirs.last(), Some(&extra));
    }

    #[test]
    fn path_like_types_are_not_looked_up() {
        let f = ConfFile {
            types: vec!["../../bin/sh".into(), "ok".into(), "ok".into()],
            ipam: vec![("ok".into(), "/abs".into())],
            ..ConfFile::default()
        };
        assert_eq!(
            needed_binaries(&f),
            [("ok".to_string(), "plugin ok".to_string())]
        );
    }
}
