//! Fixtures for tests against real network namespaces: namespaces that clean themselves up,
//! a libcni-like chain runner, and snapshots of a namespace's network state.
//!
//! Every test builds its own "host" namespace and runs the whole chain inside it, so nothing
//! touches the machine's own network (ptp-like plugins flip ip_forward wherever they run).

pub mod cri;

use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

pub const VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// A network namespace under /run/netns, deleted on drop (also when the test panics).
pub struct Netns {
    pub name: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("cpt-{tag}-{}-{n}", std::process::id());
        sh(&["ip", "netns", "add", &name]);
        sh(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        Netns { name }
    }
    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }
    /// Runs a command inside this namespace (nsenter keeps /sys as is, unlike `ip netns exec`).
    pub fn run(&self, args: &[&str]) -> String {
        let mut full = vec!["nsenter".to_string(), format!("--net={}", self.path())];
        full.extend(args.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        sh(&refs)
    }
    /// `ip ...` in this namespace.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["ip", "-n", &self.name];
        full.extend_from_slice(args);
        sh(&full)
    }
    pub fn sysctl(&self, key: &str, value: &str) {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        self.run(&["sh", "-c", &format!("echo {value} > {path}")]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Runs a command and returns stdout; panics with stderr on failure (tests want to know).
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", args.join(" ")));
    assert!(
        out.status.success(),
        "{} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// target/<profile>/ of this workspace (tests run from target/<profile>/deps/).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().expect("deps dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// A binary built by this workspace (`cargo build --workspace` puts both plugins there).
pub fn bin(name: &str) -> PathBuf {
    let p = target_dir().join(name);
    assert!(
        p.exists(),
        "{} not found: run `cargo build --workspace` first (the README's test command does)",
        p.display()
    );
    p
}

/// What a plugin printed and how it exited.
#[derive(Debug, Clone)]
pub struct PluginRun {
    pub stdout: String,
    pub stderr: String,
    pub status: i32,
}

impl PluginRun {
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {:?} (stderr {:?})",
                self.stdout, self.stderr
            )
        })
    }
}

/// `calico-preflight ARGS` (a subcommand: doctor, install, ...) run in the network namespace at
/// `netns` (a path), bounded by `timeout 30`: a hang fails the test (exit 124) instead of
/// hanging the suite.
pub fn preflight_in<I, A>(netns: &str, args: I) -> PluginRun
where
    I: IntoIterator<Item = A>,
    A: AsRef<std::ffi::OsStr>,
{
    let out = std::process::Command::new("timeout")
        .args(["30", "nsenter"])
        .arg(format!("--net={netns}"))
        .arg(bin("calico-preflight"))
        .args(args)
        .output()
        .expect("run calico-preflight");
    let run = PluginRun {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        status: out.status.code().unwrap_or(-1),
    };
    assert_ne!(run.status, 124, "calico-preflight hung: {run:?}");
    run
}

/// The CNI_* environment for one call.
#[derive(Debug, Clone)]
pub struct CniEnv {
    pub command: String,
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    pub args: String,
    pub path: String,
}

impl CniEnv {
    pub fn new(command: &str, netns: &str, ifname: &str) -> CniEnv {
        CniEnv {
            command: command.into(),
            container_id: format!(
                "c{}x{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::SeqCst)
            ),
            netns: netns.into(),
            ifname: ifname.into(),
            args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0".into(),
            path: target_dir().display().to_string(),
        }
    }
    pub fn with_command(&self, c: &str) -> CniEnv {
        CniEnv {
            command: c.into(),
            ..self.clone()
        }
    }
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CNI_COMMAND", self.command.clone()),
            ("CNI_CONTAINERID", self.container_id.clone()),
            ("CNI_NETNS", self.netns.clone()),
            ("CNI_IFNAME", self.ifname.clone()),
            ("CNI_ARGS", self.args.clone()),
            ("CNI_PATH", self.path.clone()),
        ]
    }
}

/// Runs `plugin` inside namespace `host` (None: the test's own) with exactly `vars` and `stdin`.
pub fn run_plugin(
    host: Option<&Netns>,
    plugin: &std::path::Path,
    vars: &[(&str, String)],
    stdin: &[u8],
) -> PluginRun {
    let mut cmd = match host {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net={}", ns.path())).arg(plugin);
            c
        }
        None => Command::new(plugin),
    };
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn plugin");
    if let Some(mut si) = child.stdin.take() {
        // A plugin may exit before reading everything (e.g. on a bad env); that is its right.
        let _ = si.write_all(stdin);
    }
    let out = child.wait_with_output().expect("wait plugin");
    PluginRun {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        status: out.status.code().unwrap_or(-1),
    }
}

/// Where libcni's `FindInPath` finds plugin `ty`: the first regular file (symlinks followed) named
/// so in one of the `CNI_PATH` dirs, in order (containernetworking/cni pkg/invoke/find.go).
pub fn find_in_path(ty: &str, cni_path: &str) -> Option<PathBuf> {
    cni_path
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| std::path::Path::new(d).join(ty))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file()))
}

/// Runs a conflist's plugins the way libcni does: in order for ADD/CHECK, each receiving its
/// entry plus `name`, `cniVersion` and the previous result; in reverse for DEL. Each `type` is
/// looked up through the env's CNI_PATH as libcni does. Returns the last plugin's run (the
/// failing one, if any).
pub fn run_chain(host: &Netns, conflist: &Value, env: &CniEnv) -> PluginRun {
    run_chain_cached(host, conflist, env, None)
        .pop()
        .map(|(_, run)| run)
        .expect("empty conflist")
}

/// [`run_chain`] with libcni's cached result: for CHECK and DEL, libcni hands every plugin the
/// result the whole chain's ADD returned as `prevResult` (libcni/api.go `CheckNetworkList`,
/// `DelNetworkList`); for ADD each plugin gets the one before's. Returns every plugin's run, in
/// the order they ran, with its type, up to and including the first that failed.
pub fn run_chain_cached(
    host: &Netns,
    conflist: &Value,
    env: &CniEnv,
    cached: Option<&Value>,
) -> Vec<(String, PluginRun)> {
    let version = conflist["cniVersion"].as_str().unwrap_or("1.0.0");
    let name = conflist["name"].as_str().unwrap_or("k8s-pod-network");
    let mut plugins: Vec<Value> = conflist["plugins"].as_array().cloned().unwrap_or_default();
    if env.command == "DEL" {
        plugins.reverse();
    }
    let mut prev: Option<Value> = cached.cloned();
    let mut runs = Vec::new();
    for p in plugins {
        let mut conf = p.clone();
        conf["cniVersion"] = json!(version);
        conf["name"] = json!(name);
        if let Some(pr) = &prev {
            conf["prevResult"] = pr.clone();
        }
        let ty = p["type"].as_str().expect("plugin type");
        let exe = find_in_path(ty, &env.path)
            .unwrap_or_else(|| panic!("failed to find plugin {ty:?} in path [{}]", env.path));
        let run = run_plugin(Some(host), &exe, &env.vars(), conf.to_string().as_bytes());
        let failed = run.status != 0;
        if env.command == "ADD" && !failed {
            prev = Some(run.json());
        }
        runs.push((ty.to_string(), run));
        if failed {
            break;
        }
    }
    runs
}

/// A node's CNI dirs in a temp dir, removed on drop (also when the test panics): `net.d/` (the
/// runtime's confDir) and `bin/` (its CNI_PATH), where `calico` is fake-calico and
/// `calico-preflight` is the plugin under test, both symlinks as installers often make them.
/// Calico's IPAM binaries are there too (the node checks want every `ipam.type` present; they
/// are never run: fake-calico does its own IPAM).
pub struct CniDirs {
    pub root: PathBuf,
}

impl CniDirs {
    pub fn new(tag: &str) -> CniDirs {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let root = std::env::temp_dir().join(format!("cp-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dirs = CniDirs { root };
        std::fs::create_dir_all(dirs.conf_dir()).expect("conf dir");
        std::fs::create_dir_all(dirs.bin_dir()).expect("bin dir");
        std::fs::create_dir_all(dirs.cache_dir()).expect("cache dir");
        for (name, target) in [
            ("calico", "fake-calico"),
            ("calico-ipam", "fake-calico"),
            ("host-local", "fake-calico"),
            ("calico-preflight", "calico-preflight"),
        ] {
            std::os::unix::fs::symlink(bin(target), dirs.bin_dir().join(name))
                .expect("symlink plugin");
        }
        dirs
    }
    pub fn conf_dir(&self) -> PathBuf {
        self.root.join("net.d")
    }
    pub fn bin_dir(&self) -> PathBuf {
        self.root.join("bin")
    }
    pub fn cache_dir(&self) -> PathBuf {
        self.root.join("cache")
    }
    pub fn log_file(&self) -> PathBuf {
        self.root.join("preflight.log")
    }
    /// Writes `list` as the node's Calico conflist (`10-calico.conflist`); returns its path.
    pub fn write_conflist(&self, list: &Value) -> PathBuf {
        let p = self.conf_dir().join("10-calico.conflist");
        std::fs::write(&p, serde_json::to_string_pretty(list).expect("json")).expect("conflist");
        p
    }
    /// An `iptables` command that resolves to `xtables-<variant>-multi` ("legacy" or "nft"), as
    /// the alternatives make it; the plugin reads only the link.
    pub fn fake_iptables(&self, variant: &str) -> PathBuf {
        let dir = self.root.join("sbin");
        std::fs::create_dir_all(&dir).expect("sbin dir");
        let target = dir.join(format!("xtables-{variant}-multi"));
        std::fs::write(&target, b"").expect("fake xtables");
        let link = dir.join("iptables");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&target, &link).expect("symlink iptables");
        link
    }
    /// The log file's content so far (empty when nothing was logged).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }
}

impl Drop for CniDirs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Wires a pod as Calico does: fake-calico ADD in `host` for the pod of `env`, with `knobs`
/// merged into its config (`ips`, `shape`, `break`, `cniVersion`...: see fake-calico's header).
/// Returns its result, the prevResult calico-preflight gets; panics when wiring fails.
pub fn wire_pod(host: &Netns, env: &CniEnv, knobs: Value) -> Value {
    let mut conf = json!({"cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "fake-calico"});
    for (k, v) in knobs.as_object().into_iter().flatten() {
        conf[k] = v.clone();
    }
    let run = run_plugin(
        Some(host),
        &bin("fake-calico"),
        &env.vars(),
        conf.to_string().as_bytes(),
    );
    assert_eq!(run.status, 0, "fake-calico could not wire the pod: {run:?}");
    run.json()
}

/// A conflist [fake-calico, calico-preflight] as a Calico node would have it.
pub fn calico_conflist(version: &str, calico: Value, preflight: Value) -> Value {
    let mut c = calico;
    c["type"] = json!("fake-calico");
    let mut p = preflight;
    p["type"] = json!("calico-preflight");
    json!({"cniVersion": version, "name": "k8s-pod-network", "plugins": [c, p]})
}

/// Everything observable about a namespace's network config: links, addresses, routes (all
/// tables), neighbours, net.* sysctls, and the iptables/nftables rules of both backends. Used to
/// prove the plugin changes nothing.
pub fn snapshot(ns: &Netns) -> String {
    let mut s = String::new();
    for args in [
        &["-d", "link", "show"][..],
        &["addr", "show"],
        &["route", "show", "table", "all"],
        &["-6", "route", "show", "table", "all"],
        &["neigh", "show"],
    ] {
        s.push_str(&ns.ip(args));
    }
    let sysctls = ns.run(&["sysctl", "-a", "--pattern", "^net\\."]);
    // Counters are not configuration.
    for line in sysctls
        .lines()
        .filter(|l| !l.contains("nf_conntrack_count") && !l.contains("base_reachable_time"))
    {
        s.push_str(line);
        s.push('\n');
    }
    // Packet counters are not configuration either (an interface's own IPv6 MLD or router
    // solicitation may pass a chain at any time).
    for line in ns.run(&["nft", "list", "ruleset"]).lines() {
        s.push_str(&without_counters(line));
        s.push('\n');
    }
    for save in ["iptables-legacy-save", "ip6tables-legacy-save"] {
        // The "# Generated ... on <date>" lines are not rules.
        for line in ns.run(&[save]).lines().filter(|l| !l.starts_with('#')) {
            s.push_str(&without_counters(line));
            s.push('\n');
        }
    }
    s
}

/// A ruleset line without its packet and byte counts: nft's `counter packets N bytes M` and
/// iptables-save's chain header `[N:M]`.
fn without_counters(line: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let mut words = line.split(' ').peekable();
    while let Some(w) = words.next() {
        if w == "packets" || w == "bytes" {
            words.next();
            continue;
        }
        if line.starts_with(':') && w.starts_with('[') && w.ends_with(']') {
            continue;
        }
        out.push(w);
    }
    out.join(" ")
}

/// A snapshot once the kernel has settled: carrier changes (linkwatch) and IPv6 DAD finish
/// asynchronously for up to a few seconds after wiring, and must not pass for changes.
pub fn settled_snapshot(ns: &Netns) -> String {
    let mut last = snapshot(ns);
    for _ in 0..50 {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let now = snapshot(ns);
        // An address still in DAD ("tentative") changes later without anyone touching it (a
        // v4-only pod's host end keeps DAD on, as Calico leaves it).
        if now == last && !now.contains(" tentative") {
            return now;
        }
        last = now;
    }
    last
}

/// The lines that differ between two snapshots, for a readable assertion message.
pub fn snapshot_diff(before: &str, after: &str) -> String {
    let b: std::collections::BTreeSet<&str> = before.lines().collect();
    let a: std::collections::BTreeSet<&str> = after.lines().collect();
    let mut out = String::new();
    for l in b.difference(&a) {
        out.push_str(&format!("- {l}\n"));
    }
    for l in a.difference(&b) {
        out.push_str(&format!("+ {l}\n"));
    }
    out
}

/// A path under the temp dir (`$TMPDIR`, else /tmp) named after `tag` and this process,
/// removed with everything under it on drop, also when the test panics. Nothing is created:
/// `TempDir::new(..).create()` makes it a directory.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("cp-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        let _ = std::fs::remove_file(&p);
        TempDir(p)
    }
    /// Creates it as a directory (and returns it, for chaining).
    pub fn create(self) -> TempDir {
        std::fs::create_dir_all(&self.0).unwrap_or_else(|e| panic!("{}: {e}", self.0.display()));
        self
    }
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

/// Used where a path is: `dir.join(..)`, `&dir` for a `&Path`, `fs::read(&dir)`.
impl std::ops::Deref for TempDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::path::Path> for TempDir {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Felix's and kube-proxy's rules in a node namespace, built with the real tools (`nft`,
/// `iptables-legacy`, `iptables-nft`), for the node checks to read.
pub mod dataplane {
    use super::Netns;
    use std::io::Write;
    use std::process::{Command, Stdio};

    fn nft_load(ns: &Netns, ruleset: &str) {
        let mut child = Command::new("nsenter")
            .arg(format!("--net={}", ns.path()))
            .args(["nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nft");
        if let Some(mut si) = child.stdin.take() {
            si.write_all(ruleset.as_bytes()).expect("nft stdin");
        }
        let out = child.wait_with_output().expect("nft");
        assert!(
            out.status.success(),
            "nft -f failed: {}\n{ruleset}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Felix's nftables dataplane: table `calico` in family `ip` (and `ip6`), with its base chains
    /// named by layer and hook and its own `cali-*` chains (felix/nftables/table.go `baseChains`,
    /// felix/dataplane/linux/int_dataplane.go `nftables.NewTable("calico", 4|6, ...)`).
    pub fn felix_nftables(ns: &Netns, families: &[&str]) {
        for fam in families {
            nft_load(
                ns,
                &format!(
                    "table {fam} calico {{
	chain cali-INPUT {{
		meta mark set mark or 0x10000
	}}
	chain cali-FORWARD {{
		counter
	}}
	chain cali-wl-to-host {{
		counter
	}}
	chain filter-INPUT {{
		type filter hook input priority filter; policy accept;
		jump cali-INPUT
	}}
	chain filter-FORWARD {{
		type filter hook forward priority filter; policy accept;
		jump cali-FORWARD
	}}
	chain filter-OUTPUT {{
		type filter hook output priority filter; policy accept;
	}}
	chain nat-PREROUTING {{
		type nat hook prerouting priority dstnat; policy accept;
	}}
	chain nat-POSTROUTING {{
		type nat hook postrouting priority srcnat + 10; policy accept;
	}}
	chain mangle-PREROUTING {{
		type filter hook prerouting priority mangle; policy accept;
	}}
	chain raw-PREROUTING {{
		type filter hook prerouting priority raw; policy accept;
	}}
}}
"
                ),
            );
        }
    }

    /// kube-proxy in nftables mode: table `kube-proxy` in family `ip` (and `ip6`), the chains
    /// Felix's detection lists (felix/nftables/utils.go `KubeProxyNftablesEnabledFn`: any chain in
    /// that table means nftables mode); names as kubernetes pkg/proxy/nftables/proxier.go has them.
    pub fn kube_proxy_nftables(ns: &Netns, families: &[&str]) {
        for fam in families {
            let addr = if *fam == "ip6" {
                "ipv6_addr"
            } else {
                "ipv4_addr"
            };
            nft_load(
                ns,
                &format!(
                    "table {fam} kube-proxy {{
	comment \"rules for kube-proxy\"
	map service-ips {{
		type {addr} . inet_proto . inet_service : verdict
	}}
	chain mark-for-masquerade {{
		mark set mark or 0x4000
	}}
	chain masquerading {{
		mark and 0x4000 == 0 return
		mark set mark xor 0x4000
		masquerade fully-random
	}}
	chain services {{
		{fam} daddr . meta l4proto . th dport vmap @service-ips
	}}
	chain filter-forward {{
		type filter hook forward priority -110; policy accept;
		ct state new jump services
	}}
	chain filter-output {{
		type filter hook output priority -110; policy accept;
		ct state new jump services
	}}
	chain nat-prerouting {{
		type nat hook prerouting priority dstnat; policy accept;
		jump services
	}}
	chain nat-postrouting {{
		type nat hook postrouting priority srcnat; policy accept;
		jump masquerading
	}}
}}
"
                ),
            );
        }
    }

    /// Felix in iptables mode with `backend` "legacy" or "nft": `cali-*` chains in filter and nat
    /// and the jumps to them from the builtin chains, for IPv4 and IPv6.
    pub fn felix_iptables(ns: &Netns, backend: &str) {
        for tool in [
            format!("iptables-{backend}"),
            format!("ip6tables-{backend}"),
        ] {
            for rule in [
                "-t filter -N cali-INPUT",
                "-t filter -A cali-INPUT -j MARK --set-xmark 0x10000/0x10000",
                "-t filter -A INPUT -j cali-INPUT",
                "-t filter -N cali-FORWARD",
                "-t filter -A cali-FORWARD -j ACCEPT",
                "-t filter -A FORWARD -j cali-FORWARD",
                "-t nat -N cali-PREROUTING",
                "-t nat -A PREROUTING -j cali-PREROUTING",
            ] {
                let mut args = vec![tool.as_str()];
                args.extend(rule.split(' '));
                ns.run(&args);
            }
        }
    }
}

/// Calico's CNI kubeconfig as its install-cni writes it, with a service-account token.
pub mod kubeconfig {
    /// Seconds since the epoch.
    pub fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }

    /// base64url without padding (RFC 4648 5), as JWTs encode their parts.
    pub fn b64url(s: &str) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for c in s.as_bytes().chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            for i in 0..=c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out
    }

    /// A JWT as the API server issues them (header.payload.signature), expiring at `exp`; the
    /// signature is junk (nothing here checks it).
    pub fn jwt(exp: i64) -> String {
        format!(
            "{}.{}.{}",
            b64url(r#"{"alg":"RS256","kid":"k"}"#),
            b64url(&format!(
                r#"{{"aud":["https://kubernetes.default.svc"],"exp":{exp},"sub":"system:serviceaccount:calico-system:calico-cni-plugin"}}"#
            )),
            b64url("signature-bytes-not-checked")
        )
    }

    /// install-cni's template (cni-plugin/pkg/install/install.go calculateKubeconfig).
    pub fn with_token(token: &str) -> String {
        format!(
            "# Kubeconfig file for Calico CNI plugin.\napiVersion: v1\nkind: Config\nclusters:\n- name: local\n  \
             cluster:\n    server: https://10.96.0.1:443\n    certificate-authority-data: TFMwdExTMUNSVWRKVGc9PQ==\n\
             users:\n- name: calico\n  user:\n    token: {token}\ncontexts:\n- name: calico-context\n  context:\n    \
             cluster: local\n    user: calico\ncurrent-context: calico-context\n"
        )
    }
}

/// A call that failed ADD/CHECK on `check`: exit 1, code 100, `msg` headed by `check:
/// headline`, `details` holding `[ERROR check]` and every one of `parts`. The error JSON.
pub fn assert_check_fails(run: &PluginRun, check: &str, headline: &str, parts: &[&str]) -> Value {
    assert_eq!(run.status, 1, "{run:?}");
    let e = run.json();
    assert_eq!(e["code"], 100, "{e}");
    let msg = e["msg"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with(&format!("calico-preflight: {check}: {headline}")),
        "msg: {msg}"
    );
    let details = e["details"].as_str().unwrap_or_default();
    assert!(details.contains(&format!("[ERROR {check}]")), "{details}");
    for p in parts {
        assert!(details.contains(p), "details lack {p:?}: {details}");
    }
    e
}
