//! A private containerd (Debian 12's 1.6) driven through its CRI plugin, for running a CNI conflist
//! the way a kubelet would: `RunPodSandbox` → CNI ADD of the whole chain, stop/remove → CNI DEL.
//!
//! Each [`Containerd`] owns everything it needs and nothing it shares with other instances:
//! a work dir under `/tmp` (root, state, config, socket, CNI conf dir, runc root, sandbox image),
//! and a network namespace of its own that containerd — and so the host side of every CNI plugin
//! it runs — lives in (plugins such as `ptp` flip sysctls and create host veths in that namespace).
//! Several instances may run concurrently (cargo test threads).
//!
//! The gRPC calls go through `integration/cri/cri_client.py` (PyPI `container-runtime-interface-api`
//! in a venv created by `integration/setup.sh`), so the crate needs no gRPC stack of its own.
//!
//! Requirements: root, and `integration/setup.sh` having run; call [`available`] first.
//!
//! Facts this relies on (Debian 12, no systemd, hybrid cgroups, no CAP_SYS_RESOURCE):
//! * containerd is started with `nsenter --net=/run/netns/<ns>`; `ip netns exec` would also
//!   remount /sys, which breaks runc.
//! * The CRI plugin needs `restrict_oom_score_adj`, `netns_mounts_under_state_dir`,
//!   `disable_apparmor`, and exactly one CNI `bin_dir` that also holds `loopback`
//!   (see [`make_bin_dir`]).
//! * containerd re-reads the CNI conf dir by inotify; [`Containerd::set_conflist`] waits until the
//!   CRI status reports the new conflist loaded.
//! * The sandbox ("pause") image is a busybox-static OCI image built locally and imported with
//!   `ctr images import`; nothing is pulled.
//!
//! IPAM note: host-local keeps its state in `/var/lib/cni/networks/<network name>` unless the
//! conflist sets `ipam.dataDir`; put it under [`Containerd::work_dir`] so concurrent instances
//! do not share (and nothing outlives the instance).

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// Where `integration/setup.sh` creates the venv; override with this environment variable
/// (setup.sh honours the same one).
pub const VENV_ENV: &str = "CALICO_PREFLIGHT_CRI_VENV";
pub const DEFAULT_VENV: &str = "/var/tmp/calico-preflight-cri-venv";

/// Debian's `containernetworking-plugins` location of the loopback plugin (CRI needs it).
pub const LOOPBACK_PLUGIN: &str = "/usr/lib/cni/loopback";

const CLIENT_PY: &str = include_str!("../cri/cri_client.py");
const BUSYBOX: &str = "/bin/busybox";
const SANDBOX_IMAGE: &str = "localhost/calico-preflight-pause:latest";
const CNI_RESULT_CACHE: &str = "/var/lib/cni/results";
const CONFLIST_NAME: &str = "10-calico-preflight-test.conflist";
const START_TIMEOUT: Duration = Duration::from_secs(10);
const CONF_TIMEOUT: Duration = Duration::from_secs(10);
const TOOLS: &[&str] = &[
    "containerd",
    "containerd-shim-runc-v2",
    "runc",
    "ctr",
    "nsenter",
    "ip",
    "tar",
    "sha256sum",
    "umount",
    "kill",
];

/// A pod sandbox started by [`Containerd::run_pod_sandbox`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    pub id: String,
    /// The pod IP from `PodSandboxStatus` (empty when the CNI result had none).
    pub ip: String,
}

/// One private containerd with the CRI plugin, running in a network namespace of its own.
/// Everything is torn down on drop, also when the test panicked.
pub struct Containerd {
    netns: String,
    netns_created: bool,
    /// Pod cgroups go under `/<tag>` in every hierarchy (not the shared default `/k8s.io`),
    /// so drop can remove them without touching other instances.
    cgroup_parent: String,
    work: PathBuf,
    socket: PathBuf,
    conf_dir: PathBuf,
    runc_root: PathBuf,
    client: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// Ok when everything [`Containerd`] needs is installed and usable: root, the tools, the loopback
/// plugin, busybox-static and the Python venv. The error names what is missing and
/// `integration/setup.sh`. Tests should fail (not skip) on Err. The result is cached.
pub fn available() -> Result<(), String> {
    static CHECK: OnceLock<Result<(), String>> = OnceLock::new();
    CHECK.get_or_init(check_available).clone()
}

fn check_available() -> Result<(), String> {
    let mut missing = Vec::new();
    match effective_uid() {
        Some(0) => {}
        Some(uid) => missing.push(format!("must run as root (euid {uid})")),
        None => missing.push("cannot read euid from /proc/self/status".to_string()),
    }
    for tool in TOOLS {
        if find_in_path(tool).is_none() {
            missing.push(format!("`{tool}` not in PATH"));
        }
    }
    for file in [LOOPBACK_PLUGIN, BUSYBOX] {
        if !Path::new(file).is_file() {
            missing.push(format!("{file} missing"));
        }
    }
    let python = venv_python();
    match Command::new(&python)
        .args([
            "-c",
            "import grpc; from cri_api.v1 import api_pb2, api_pb2_grpc",
        ])
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => {}
        Ok(out) => missing.push(format!(
            "{} cannot import the CRI client modules: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => missing.push(format!("{}: {e}", python.display())),
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "CRI test harness not usable: {}. Run `integration/setup.sh` as root \
             (apt packages containerd runc containernetworking-plugins busybox-static python3-venv, \
             and the venv {}).",
            missing.join("; "),
            venv_dir().display()
        ))
    }
}

/// Fills `dir` (created if needed) with symlinks `name -> path` for `plugins`, plus `loopback`
/// (from [`LOOPBACK_PLUGIN`]) unless `plugins` names one. Existing entries of those names are
/// replaced. Use the result as the `bin_dir` of [`Containerd::start`]: CRI takes one bin dir only.
pub fn make_bin_dir(dir: &Path, plugins: &[(&str, &Path)]) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let cwd = std::env::current_dir()?;
    let mut links: Vec<(&str, PathBuf)> = plugins
        .iter()
        .map(|(name, path)| (*name, cwd.join(path)))
        .collect();
    if !plugins.iter().any(|(name, _)| *name == "loopback") {
        links.push(("loopback", PathBuf::from(LOOPBACK_PLUGIN)));
    }
    for (name, target) in links {
        if name.is_empty() || name.contains('/') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad plugin name {name:?}"),
            ));
        }
        if !target.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("plugin {name}: {} is not a file", target.display()),
            ));
        }
        let link = dir.join(name);
        match fs::remove_file(&link) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::os::unix::fs::symlink(&target, &link)?;
    }
    Ok(())
}

impl Containerd {
    /// Starts a private containerd inside a fresh network namespace, CNI `bin_dir` = `bin_dir`
    /// (which must contain `loopback`, see [`make_bin_dir`]) and an empty CNI conf dir of its own,
    /// imports the sandbox image and waits until the CRI service answers (bounded). On failure
    /// everything created so far is removed and the Err carries the containerd log tail.
    pub fn start(bin_dir: &Path) -> Result<Containerd, String> {
        available()?;
        let bin_dir = std::env::current_dir()
            .map_err(|e| format!("current dir: {e}"))?
            .join(bin_dir);
        if !bin_dir.join("loopback").exists() {
            return Err(format!(
                "{} has no `loopback` plugin (CRI needs it; use cri::make_bin_dir)",
                bin_dir.display()
            ));
        }

        let tag = unique_tag();
        let work = PathBuf::from(format!("/tmp/{tag}"));
        fs::create_dir(&work).map_err(|e| format!("create {}: {e}", work.display()))?;
        // From here on `cd` owns what exists; an early return drops it and cleans up.
        let mut cd = Containerd {
            cgroup_parent: format!("/{tag}"),
            netns: tag,
            netns_created: false,
            socket: work.join("containerd.sock"),
            conf_dir: work.join("net.d"),
            runc_root: work.join("runc"),
            client: work.join("cri_client.py"),
            log: work.join("containerd.log"),
            work,
            child: None,
        };
        let t0 = Instant::now();
        cd.prepare_files(&bin_dir)?;
        cd.create_netns()?;
        cd.spawn()?;
        cd.wait_for_socket(t0 + START_TIMEOUT)?;
        cd.import_sandbox_image()?;
        let left = (t0 + START_TIMEOUT).saturating_duration_since(Instant::now());
        cd.client_call(&[
            "wait-ready",
            &secs(left.max(Duration::from_secs(1))),
            SANDBOX_IMAGE,
        ])
        .map_err(|e| format!("containerd CRI not ready: {e}\n{}", cd.log_tail(30)))?;
        Ok(cd)
    }

    /// Makes `conflist` (JSON text) the only file in the CNI conf dir and waits (bounded) until the
    /// CRI plugin reports exactly this text loaded and the network ready. A conflist that
    /// containerd refuses to load therefore returns Err after the timeout.
    pub fn set_conflist(&self, conflist: &str) -> Result<(), String> {
        let target = self.conf_dir.join(CONFLIST_NAME);
        let entries = fs::read_dir(&self.conf_dir)
            .map_err(|e| format!("{}: {e}", self.conf_dir.display()))?;
        for entry in entries.flatten() {
            if entry.path() != target {
                let _ = fs::remove_file(entry.path());
            }
        }
        // Staged inside conf_dir under a name libcni does not load (extension), then renamed:
        // containerd 1.6 ignores inotify CREATE events (so a file moved in from elsewhere is never
        // noticed) but reloads on WRITE/RENAME/REMOVE; the rename's MOVED_FROM triggers a reload
        // that sees the complete file.
        let staged = self.conf_dir.join(".staged.tmp");
        fs::write(&staged, conflist).map_err(|e| format!("write {}: {e}", staged.display()))?;
        fs::rename(&staged, &target).map_err(|e| format!("rename to {}: {e}", target.display()))?;
        let target = target.to_string_lossy().into_owned();
        self.client_call(&["wait-conf", &target, &secs(CONF_TIMEOUT)])
            .map(drop)
            .map_err(|e| {
                format!(
                    "conflist not picked up by containerd: {e}\n{}",
                    self.log_tail(20)
                )
            })
    }

    /// RunPodSandbox with metadata (name, namespace, random uid), then PodSandboxStatus for the IP.
    /// On a failed RunPodSandbox the Err is the gRPC error details string verbatim, e.g.
    /// `failed to setup network for sandbox "<id>": plugin type="x" failed (add): <msg>; <details>`.
    pub fn run_pod_sandbox(&self, name: &str, namespace: &str) -> Result<Sandbox, String> {
        let out = self
            .client(&["run", name, namespace, &self.cgroup_parent])
            .map_err(|e| match e {
                ClientError::Rpc { rpc, details, .. } if rpc == "RunPodSandbox" => details,
                other => other.to_string(),
            })?;
        Ok(Sandbox {
            id: json_str(&out, "id")?,
            ip: json_str(&out, "ip")?,
        })
    }

    /// StopPodSandbox (CNI DEL with the netns) then RemovePodSandbox (CNI DEL without).
    pub fn stop_and_remove(&self, sandbox_id: &str) -> Result<(), String> {
        self.client_call(&["stop-remove", sandbox_id]).map(drop)
    }

    /// IDs of all pod sandboxes this containerd knows, in any state.
    pub fn list_sandboxes(&self) -> Result<Vec<String>, String> {
        let out = self.client_call(&["list"])?;
        out.get("ids")
            .and_then(Value::as_array)
            .map(|ids| {
                ids.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .ok_or_else(|| format!("unexpected cri_client output: {out}"))
    }

    /// The network namespace (`/run/netns/<name>`) containerd, and the host side of every CNI
    /// plugin it runs, lives in.
    pub fn netns_name(&self) -> &str {
        &self.netns
    }

    /// This instance's private directory (removed on drop): a good place for `ipam.dataDir`.
    pub fn work_dir(&self) -> &Path {
        &self.work
    }

    /// containerd's gRPC socket (e.g. for `ctr --address`).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The last `lines` lines of containerd's log (CNI errors are logged there too).
    pub fn log_tail(&self, lines: usize) -> String {
        match fs::read(&self.log) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let all: Vec<&str> = text.lines().collect();
                all[all.len().saturating_sub(lines)..].join("\n")
            }
            Err(e) => format!("(no containerd log {}: {e})", self.log.display()),
        }
    }

    // ---- start-up steps ----

    fn prepare_files(&self, bin_dir: &Path) -> Result<(), String> {
        for dir in [&self.conf_dir, &self.runc_root] {
            fs::create_dir(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        }
        fs::write(&self.client, CLIENT_PY)
            .map_err(|e| format!("write {}: {e}", self.client.display()))?;
        let config = self.work.join("config.toml");
        fs::write(&config, self.config_toml(bin_dir))
            .map_err(|e| format!("write {}: {e}", config.display()))?;
        build_oci_image(&self.work.join("image"), SANDBOX_IMAGE)
    }

    fn config_toml(&self, bin_dir: &Path) -> String {
        let w = |p: &Path| toml_str(&p.to_string_lossy());
        let cri = r#"plugins."io.containerd.grpc.v1.cri""#;
        format!(
            r#"version = 2
root = {root}
state = {state}
oom_score = 0

[grpc]
  address = {sock}
[ttrpc]
  address = {ttrpc}
[debug]
  level = "info"

[plugins."io.containerd.internal.v1.opt"]
  path = {opt}

[{cri}]
  sandbox_image = {image}
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.runc.options]
  Root = {runc_root}
  SystemdCgroup = false
[{cri}.cni]
  bin_dir = {bin_dir}
  conf_dir = {conf_dir}
  max_conf_num = 1
"#,
            root = w(&self.work.join("root")),
            state = w(&self.state_dir()),
            sock = w(&self.socket),
            ttrpc = w(&self.work.join("containerd.sock.ttrpc")),
            opt = w(&self.work.join("opt")),
            image = toml_str(SANDBOX_IMAGE),
            runc_root = w(&self.runc_root),
            bin_dir = w(bin_dir),
            conf_dir = w(&self.conf_dir),
        )
    }

    fn state_dir(&self) -> PathBuf {
        self.work.join("state")
    }

    fn create_netns(&mut self) -> Result<(), String> {
        let _serial = netns_lock();
        run_tool(Command::new("ip").args(["netns", "add", &self.netns]))?;
        self.netns_created = true;
        run_tool(Command::new("ip").args(["-n", &self.netns, "link", "set", "lo", "up"]))?;
        Ok(())
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log =
            fs::File::create(&self.log).map_err(|e| format!("{}: {e}", self.log.display()))?;
        let log2 = log
            .try_clone()
            .map_err(|e| format!("{}: {e}", self.log.display()))?;
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.netns))
            .arg("containerd")
            .arg("--config")
            .arg(self.work.join("config.toml"))
            .env_remove("CONTAINERD_ADDRESS")
            .env_remove("CONTAINERD_NAMESPACE")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("spawn nsenter containerd: {e}"))?;
        self.child = Some(child);
        Ok(())
    }

    fn wait_for_socket(&mut self, deadline: Instant) -> Result<(), String> {
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!(
                        "containerd exited during start-up ({status}):\n{}",
                        self.log_tail(30)
                    ));
                }
            }
            if self.socket.exists() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "containerd socket {} did not appear within {START_TIMEOUT:?}:\n{}",
                    self.socket.display(),
                    self.log_tail(30)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn import_sandbox_image(&self) -> Result<(), String> {
        run_tool(
            Command::new("ctr")
                .arg("--address")
                .arg(&self.socket)
                .args(["--namespace", "k8s.io", "images", "import"])
                .arg(self.work.join("image/oci.tar")),
        )
        .map(drop)
        .map_err(|e| format!("sandbox image import: {e}\n{}", self.log_tail(20)))
    }

    // ---- CRI client ----

    fn client(&self, args: &[&str]) -> Result<Value, ClientError> {
        let out = Command::new(venv_python())
            .arg(&self.client)
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| ClientError::Other(format!("run cri_client.py: {e}")))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let parsed: Option<Value> = stdout
            .lines()
            .last()
            .and_then(|l| serde_json::from_str(l).ok());
        match (out.status.code(), parsed) {
            (Some(0), Some(v)) => Ok(v),
            (Some(1), Some(v)) if v.get("error").is_some() => {
                let e = &v["error"];
                let s = |k: &str| {
                    e.get(k)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                Err(ClientError::Rpc {
                    rpc: s("rpc"),
                    code: s("code"),
                    details: s("details"),
                })
            }
            _ => Err(ClientError::Other(format!(
                "cri_client.py {} failed ({}): {}{}",
                args.join(" "),
                out.status,
                stdout.trim(),
                describe_stderr(&out),
            ))),
        }
    }

    fn client_call(&self, args: &[&str]) -> Result<Value, String> {
        self.client(args).map_err(|e| e.to_string())
    }

    // ---- tear-down steps (best effort, must not panic) ----

    fn remove_sandboxes(&self, problems: &mut Vec<String>) {
        match self.list_sandboxes() {
            Ok(ids) => {
                for id in ids {
                    if let Err(e) = self.stop_and_remove(&id) {
                        problems.push(format!("sandbox {id}: {e}"));
                    }
                }
            }
            Err(e) => problems.push(format!("list sandboxes: {e}")),
        }
    }

    /// Containers and shims that survived (containerd died, or a stop failed): delete the runc
    /// containers in our own runc root, then kill the shims serving our socket.
    fn kill_leftover_tasks(&self, problems: &mut Vec<String>) {
        let root = self.runc_root.join("k8s.io");
        if root.is_dir() {
            if let Ok(entries) = fs::read_dir(&root) {
                for entry in entries.flatten() {
                    let id = entry.file_name().to_string_lossy().into_owned();
                    let res = Command::new("runc")
                        .arg("--root")
                        .arg(&root)
                        .args(["delete", "--force", &id])
                        .stdin(Stdio::null())
                        .output();
                    if !matches!(res, Ok(ref o) if o.status.success()) {
                        problems.push(format!("runc delete --force {id} failed"));
                    }
                }
            }
        }
        let shims = find_shims(&self.socket);
        for shim in &shims {
            let _ = Command::new("kill")
                .args(["-KILL", &shim.pid.to_string()])
                .output();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while shims.iter().any(|s| process_alive(s.pid)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        for shim in &shims {
            // A killed shim leaves its socket behind: containerd 1.6 names it
            // /run/containerd/s/<sha256("<containerd address>/<namespace>/<id>")>.
            let key = format!("{}/{}/{}", self.socket.display(), shim.namespace, shim.id);
            if let Ok(hex) = sha256_hex(key.as_bytes()) {
                let _ = fs::remove_file(Path::new("/run/containerd/s").join(hex));
            }
        }
        // No CNI DEL ran for these sandboxes, so libcni's result cache (a fixed, shared dir in
        // containerd 1.6) still holds `<network>-<sandbox id>-<ifname>` entries for them.
        if let Ok(entries) = fs::read_dir(CNI_RESULT_CACHE) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if shims.iter().any(|s| name.contains(&format!("-{}-", s.id))) {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        if !shims.is_empty() {
            let pids: Vec<u32> = shims.iter().map(|s| s.pid).collect();
            problems.push(format!("killed leftover shims {pids:?}"));
        }
    }

    fn stop_containerd(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Sandboxes are gone by now and the state is discarded: no need for a graceful stop.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// rmdir `<hierarchy>/<cgroup_parent>` in every cgroup (v1 and v2) mount; the pod cgroups
    /// below it are gone once runc deleted the containers.
    fn remove_cgroups(&self, problems: &mut Vec<String>) {
        let rel = self.cgroup_parent.trim_start_matches('/');
        for hierarchy in cgroup_mounts() {
            let dir = hierarchy.join(rel);
            match fs::remove_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => problems.push(format!("rmdir {}: {e}", dir.display())),
            }
        }
    }

    fn unmount_all(&self, problems: &mut Vec<String>) {
        for pass in 0..3 {
            let mounts = mounts_under(&self.work);
            if mounts.is_empty() {
                return;
            }
            for m in mounts {
                let ok = |args: &[&str]| {
                    Command::new("umount")
                        .args(args)
                        .arg(&m)
                        .stderr(Stdio::null())
                        .status()
                        .map(|s| s.success())
                        .unwrap_or(false)
                };
                if !ok(&[]) && pass > 0 && !ok(&["--lazy"]) {
                    problems.push(format!("umount {} failed", m.display()));
                }
            }
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let mut problems = Vec::new();
        let running = match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => true,
            Some(Ok(Some(status))) => {
                problems.push(format!("containerd had exited ({status})"));
                false
            }
            _ => false,
        };
        if running && self.socket.exists() {
            // Through CRI, so that the CNI DELs run and shims exit cleanly.
            self.remove_sandboxes(&mut problems);
        }
        self.stop_containerd();
        self.kill_leftover_tasks(&mut problems);
        self.unmount_all(&mut problems);
        self.remove_cgroups(&mut problems);
        if self.netns_created {
            let _serial = netns_lock();
            if let Err(e) = run_tool(Command::new("ip").args(["netns", "del", &self.netns])) {
                problems.push(e);
            }
        }
        if let Err(e) = fs::remove_dir_all(&self.work) {
            if e.kind() != io::ErrorKind::NotFound {
                problems.push(format!("remove {}: {e}", self.work.display()));
            }
        }
        if !problems.is_empty() {
            eprintln!(
                "cri::Containerd {} cleanup: {}",
                self.netns,
                problems.join("; ")
            );
        }
    }
}

#[derive(Debug)]
enum ClientError {
    Rpc {
        rpc: String,
        code: String,
        details: String,
    },
    Other(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Rpc { rpc, code, details } => {
                write!(f, "{rpc} failed ({code}): {details}")
            }
            ClientError::Other(msg) => f.write_str(msg),
        }
    }
}

/// Builds `<dir>/oci.tar`: an OCI image layout whose one layer is busybox-static, named `reference`
/// (the `io.containerd.image.name` annotation `ctr images import` uses), command `sleep forever`.
fn build_oci_image(dir: &Path, reference: &str) -> Result<(), String> {
    let io_err = |what: &Path, e: io::Error| format!("sandbox image: {}: {e}", what.display());
    let rootfs = dir.join("rootfs");
    for sub in ["bin", "etc", "proc", "sys", "dev", "tmp"] {
        let d = rootfs.join(sub);
        fs::create_dir_all(&d).map_err(|e| io_err(&d, e))?;
    }
    fs::copy(BUSYBOX, rootfs.join("bin/busybox")).map_err(|e| io_err(Path::new(BUSYBOX), e))?;
    for applet in ["sh", "sleep", "ip", "cat", "ls", "true"] {
        let link = rootfs.join("bin").join(applet);
        std::os::unix::fs::symlink("busybox", &link).map_err(|e| io_err(&link, e))?;
    }
    let passwd = rootfs.join("etc/passwd");
    fs::write(&passwd, "root:x:0:0:root:/root:/bin/sh\n").map_err(|e| io_err(&passwd, e))?;

    let oci = dir.join("oci");
    let blobs = oci.join("blobs/sha256");
    fs::create_dir_all(&blobs).map_err(|e| io_err(&blobs, e))?;
    let layer = dir.join("layer.tar");
    run_tool(
        Command::new("tar")
            .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
            .arg(&rootfs)
            .arg("-cf")
            .arg(&layer)
            .arg("."),
    )?;
    let (layer_digest, layer_size) = add_blob_file(&blobs, &layer)?;

    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": { "Cmd": ["/bin/sleep", "2147483647"] },
        "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{layer_digest}")] },
    });
    let (config_digest, config_size) = add_blob(&blobs, &config.to_string())?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{config_digest}"),
            "size": config_size,
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": format!("sha256:{layer_digest}"),
            "size": layer_size,
        }],
    });
    let (manifest_digest, manifest_size) = add_blob(&blobs, &manifest.to_string())?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{manifest_digest}"),
            "size": manifest_size,
            "platform": { "architecture": arch, "os": "linux" },
            "annotations": {
                "io.containerd.image.name": reference,
                "org.opencontainers.image.ref.name": "latest",
            },
        }],
    });
    let write = |name: &str, text: String| {
        let p = oci.join(name);
        fs::write(&p, text).map_err(|e| io_err(&p, e))
    };
    write("index.json", index.to_string())?;
    write(
        "oci-layout",
        r#"{"imageLayoutVersion":"1.0.0"}"#.to_string(),
    )?;
    run_tool(
        Command::new("tar")
            .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
            .arg(&oci)
            .arg("-cf")
            .arg(dir.join("oci.tar"))
            .args(["oci-layout", "index.json", "blobs"]),
    )?;
    Ok(())
}

/// Writes `text` as a blob; returns (hex sha256, size).
fn add_blob(blobs: &Path, text: &str) -> Result<(String, u64), String> {
    let staged = blobs.join("staged");
    fs::write(&staged, text).map_err(|e| format!("{}: {e}", staged.display()))?;
    let res = add_blob_file(blobs, &staged);
    let _ = fs::remove_file(&staged);
    res
}

fn add_blob_file(blobs: &Path, file: &Path) -> Result<(String, u64), String> {
    let out = run_tool(Command::new("sha256sum").arg(file))?;
    let digest = parse_sha256sum(&out.stdout)
        .ok_or_else(|| format!("sha256sum {}: unexpected output", file.display()))?;
    let size =
        fs::copy(file, blobs.join(&digest)).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok((digest, size))
}

/// Runs a tool to completion; Err (with its stderr) unless it exits 0.
fn run_tool(cmd: &mut Command) -> Result<Output, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{cmd:?} failed ({}){}",
            out.status,
            describe_stderr(&out)
        ))
    }
}

fn describe_stderr(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    let err = err.trim();
    if err.is_empty() {
        String::new()
    } else {
        format!("; stderr: {err}")
    }
}

fn json_str(v: &Value, key: &str) -> Result<String, String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("cri_client.py output lacks {key:?}: {v}"))
}

/// `cpfcri-<pid>-<n>-<time>`: unique among concurrent instances of this process (counter) and
/// against leftovers of earlier processes that had the same pid (time). Used for the netns name
/// and the work dir; short enough for unix socket paths.
fn unique_tag() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    format!("cpfcri-{}-{n}-{:x}", std::process::id(), t & 0xff_ffff)
}

/// `ip netns add/del` set up and tear down the shared /run/netns mount; serialise them.
fn netns_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn venv_dir() -> PathBuf {
    std::env::var_os(VENV_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_VENV))
}

fn venv_python() -> PathBuf {
    venv_dir().join("bin/python")
}

fn secs(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64())
}

fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn find_in_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

fn effective_uid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Mount points strictly under `dir`, deepest first (from /proc/self/mountinfo; containerd shares
/// our mount namespace).
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mountinfo(p)))
        .filter(|p| p.starts_with(dir) && p != dir)
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// Mount points of cgroup and cgroup2 file systems.
fn cgroup_mounts() -> Vec<PathBuf> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    info.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let fstype = post.split(' ').next()?;
            let mount_point = pre.split(' ').nth(4)?;
            matches!(fstype, "cgroup" | "cgroup2")
                .then(|| PathBuf::from(unescape_mountinfo(mount_point)))
        })
        .collect()
}

fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .and_then(|d| std::str::from_utf8(d).ok());
        if bytes[i] == b'\\' {
            if let Some(v) = octal.and_then(|d| u8::from_str_radix(d, 8).ok()) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Shim {
    pid: u32,
    namespace: String,
    id: String,
}

/// `containerd-shim*` processes serving the containerd at `socket` (its `-address` argument).
fn find_shims(socket: &Path) -> Vec<Shim> {
    let Ok(procs) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let socket = socket.to_string_lossy();
    procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let program = Path::new(args.first()?).file_name()?.to_string_lossy();
            if !program.starts_with("containerd-shim") {
                return None;
            }
            let flag = |name: &str| args.windows(2).find(|w| w[0] == name).map(|w| w[1].clone());
            let address = flag("-address")?;
            if address != socket && address != format!("unix://{socket}") {
                return None;
            }
            Some(Shim {
                pid,
                namespace: flag("-namespace")?,
                id: flag("-id")?,
            })
        })
        .collect()
}

fn sha256_hex(data: &[u8]) -> Result<String, String> {
    use std::io::Write as _;
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("sha256sum: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(data)
            .map_err(|e| format!("sha256sum: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("sha256sum: {e}"))?;
    parse_sha256sum(&out.stdout).ok_or_else(|| "sha256sum: unexpected output".to_string())
}

fn parse_sha256sum(stdout: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(stdout);
    let hex = text.split_whitespace().next()?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| hex.to_owned())
}

/// Alive and not a zombie (reparented shims may linger as zombies when PID 1 does not reap).
fn process_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}
