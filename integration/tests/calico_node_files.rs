//! The faults that make `calico` itself fail ADD, explained by calico-preflight run first in the
//! chain: a plugin binary the kernel cannot run (another architecture, a noexec mount, a script
//! whose interpreter is missing), Calico's kubeconfig token expired, its nodename file missing or
//! disagreeing. Every node file lives in a temp host root (`hostRoot`); the plugins of the chain
//! are run from CNI_PATH as a runtime runs them.

use calico_preflight::inspect::elf::{self, Format};
use calico_preflight_integration::*;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const KUBECONFIG: &str = "/etc/cni/net.d/calico-kubeconfig";

/// A node: a forwarding namespace, and a temp tree with the runtime's conf dir (net.d), its bin
/// dir (CNI_PATH) and the host root Calico's files live under.
struct Node {
    ns: Netns,
    root: PathBuf,
}

use calico_preflight_integration::kubeconfig::{jwt, now, with_token as kubeconfig};

fn copy_exec(from: &Path, to: &Path) {
    if let Some(d) = to.parent() {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    std::fs::copy(from, to)
        .unwrap_or_else(|e| panic!("copy {} {}: {e}", from.display(), to.display()));
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// The dynamic loader a binary names, to give the host root the same one.
fn interp_of(p: &Path) -> Option<PathBuf> {
    match elf::read_format(p).0 {
        Format::Elf(e) => e.interp,
        other => panic!("{} is not an ELF: {other:?}", p.display()),
    }
}

impl Node {
    fn new(tag: &str) -> Node {
        let ns = Netns::new(tag);
        ns.sysctl("net.ipv4.ip_forward", "1");
        let root = std::env::temp_dir().join(format!("cp-calfiles-{}", ns.name));
        let _ = std::fs::remove_dir_all(&root);
        for d in ["net.d", "bin", "host/var/lib/calico", "host/etc/cni/net.d"] {
            std::fs::create_dir_all(root.join(d)).expect("mkdir");
        }
        let n = Node { ns, root };
        // The host has /bin/sh and the loader of the binaries (looked up under the host root).
        copy_exec(Path::new("/bin/sh"), &n.host("/bin/sh"));
        let real = PathBuf::from("/bin/true");
        for b in [real.clone(), bin("calico-preflight")] {
            if let Some(i) = interp_of(&b) {
                copy_exec(&i, &n.host(&i.display().to_string()));
            }
        }
        // The runtime's bin dir: us (the real binary), calico (a real ELF), calico-ipam (a script).
        copy_exec(&bin("calico-preflight"), &n.bin("calico-preflight"));
        copy_exec(&real, &n.bin("calico"));
        n.script("calico-ipam", "#!/bin/sh\nexit 0\n");
        n.conflist(json!({}));
        n.write_host("/var/lib/calico/nodename", "node-1");
        n.write_host(KUBECONFIG, &kubeconfig(&jwt(now() + 86_400)));
        n
    }
    fn host(&self, p: &str) -> PathBuf {
        self.root.join("host").join(p.trim_start_matches('/'))
    }
    fn bin(&self, name: &str) -> PathBuf {
        self.root.join("bin").join(name)
    }
    fn script(&self, name: &str, text: &str) {
        std::fs::write(self.bin(name), text).expect("script");
        std::fs::set_permissions(self.bin(name), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
    }
    fn write_host(&self, p: &str, text: &str) {
        std::fs::write(self.host(p), text).expect("host file");
    }
    /// Our conflist: calico-preflight first, then Calico's entry with `calico` merged in.
    fn conflist(&self, calico: Value) -> Value {
        let mut entry = json!({"type": "calico", "datastore_type": "kubernetes",
            "ipam": {"type": "calico-ipam"}, "kubernetes": {"kubeconfig": KUBECONFIG}});
        for (k, v) in calico.as_object().into_iter().flatten() {
            entry[k] = v.clone();
        }
        let list = json!({"cniVersion": "1.0.0", "name": "k8s-pod-network", "plugins": [
            {"type": "calico-preflight", "confDir": self.root.join("net.d"),
             "hostRoot": self.root.join("host"), "nodeCheckTtlSeconds": 0,
             "logFile": self.log(), "logLevel": "debug"},
            entry,
        ]});
        std::fs::write(self.root.join("net.d/10-calico.conflist"), list.to_string())
            .expect("conflist");
        list
    }
    fn log(&self) -> PathBuf {
        self.root.join("preflight.log")
    }
    fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = CniEnv::new("ADD", &self.ns.path(), "eth0");
        env.path = self.root.join("bin").display().to_string();
        env.vars()
    }
    /// The chain as a runtime runs it: each plugin from CNI_PATH, in order, stopping at the
    /// first failure. `wrap` runs the plugin through another command (unshare, for mounts).
    fn chain(&self, list: &Value, wrap: &[String]) -> PluginRun {
        let mut prev: Option<Value> = None;
        let mut last = None;
        for p in list["plugins"].as_array().into_iter().flatten() {
            let mut conf = p.clone();
            conf["cniVersion"] = list["cniVersion"].clone();
            conf["name"] = list["name"].clone();
            if let Some(pr) = &prev {
                conf["prevResult"] = pr.clone();
            }
            let ty = p["type"].as_str().unwrap_or_default();
            let run = self.exec(&self.bin(ty), wrap, &conf);
            if run.status != 0 {
                return run;
            }
            prev = serde_json::from_str(&run.stdout).ok();
            last = Some(run);
        }
        last.expect("empty chain")
    }
    fn exec(&self, plugin: &Path, wrap: &[String], conf: &Value) -> PluginRun {
        let mut argv: Vec<String> = wrap.to_vec();
        argv.extend([
            "nsenter".to_string(),
            format!("--net={}", self.ns.path()),
            plugin.display().to_string(),
        ]);
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .envs(self.env())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn");
        if let Some(mut si) = child.stdin.take() {
            use std::io::Write;
            let _ = si.write_all(conf.to_string().as_bytes());
        }
        let out = child.wait_with_output().expect("wait");
        PluginRun {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            status: out.status.code().unwrap_or(-1),
        }
    }
    fn logged(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The failed chain: code 100 from calico-preflight, headed by `check: headline`, with `parts`.
fn assert_fails(run: &PluginRun, check: &str, headline: &str, parts: &[&str]) -> String {
    let e = assert_check_fails(run, check, headline, parts);
    e["details"].as_str().unwrap_or_default().to_string()
}

fn assert_passes(run: &PluginRun) {
    assert_eq!(run.status, 0, "{run:?}");
}

#[test]
fn a_healthy_node_runs_the_whole_chain_quietly() {
    let n = Node::new("cf-ok");
    let list = n.conflist(json!({}));
    // calico here is /bin/true: it runs and prints nothing, which ends the chain's output.
    assert_passes(&n.chain(&list, &[]));
    let log = n.logged();
    for check in [
        "cni-binary-runnable",
        "calico-kubeconfig",
        "calico-nodename",
    ] {
        assert!(
            !log.contains(check),
            "{check} spoke on a healthy node: {log}"
        );
    }
    assert!(log.contains("outcome=ok"), "{log}");
}

#[test]
fn a_calico_binary_for_another_architecture_fails_with_our_explanation() {
    let n = Node::new("cf-arch");
    let cal = n.bin("calico");
    let mut bytes = std::fs::read(&cal).expect("read");
    let own = elf::Machine::own().expect("known arch");
    let other = if own.machine == elf::EM_AARCH64 {
        elf::EM_X86_64
    } else {
        elf::EM_AARCH64
    };
    // e_machine at offset 18, in the file's byte order.
    let patched = if own.little_endian {
        other.to_le_bytes()
    } else {
        other.to_be_bytes()
    };
    bytes[18..20].copy_from_slice(&patched);
    std::fs::write(&cal, &bytes).expect("write");
    // The fault is real: the kernel refuses it as the runtime would see it.
    let err = Command::new(&cal).output().expect_err("exec must fail");
    assert_eq!(err.raw_os_error(), Some(libc::ENOEXEC), "{err}");
    let list = n.conflist(json!({}));
    let details = assert_fails(
        &n.chain(&list, &[]),
        "cni-binary-runnable",
        "plugin binary \"calico\" is built for another architecture, on",
        &[
            &format!(
                "{} is an ELF for {}",
                cal.display(),
                elf::Machine {
                    machine: other,
                    ..own
                }
                .describe()
            ),
            "exec format error",
            "install-cni",
        ],
    );
    assert!(
        !details.contains("dynamic loader"),
        "one cause, one finding: {details}"
    );
}

#[test]
fn a_bin_dir_mounted_noexec_fails_naming_the_mount() {
    let n = Node::new("cf-noexec");
    let list = n.conflist(json!({}));
    let dir = n.root.join("bin").display().to_string();
    // A private mount namespace for the plugin only: the bind mount dies with it.
    let script =
        format!("mount --bind {dir} {dir} && mount -o remount,bind,noexec {dir} && exec \"$@\"");
    let wrap: Vec<String> = [
        "unshare",
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
        "sh",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // calico-preflight itself is run from the target dir, the chain's binaries stay in bin/.
    let run = n.exec(&bin("calico-preflight"), &wrap, &{
        let mut c = list["plugins"][0].clone();
        c["cniVersion"] = json!("1.0.0");
        c["name"] = json!("k8s-pod-network");
        c
    });
    assert_fails(
        &run,
        "cni-binary-runnable",
        "plugin binary \"calico-preflight\" is on a filesystem mounted noexec",
        &[
            &format!("{dir}/calico is on {dir} ("),
            "mounted noexec",
            &format!("mount -o remount,exec {dir}"),
        ],
    );
    // Outside that namespace the dir is as it was.
    assert_passes(&n.chain(&list, &[]));
}

#[test]
fn a_script_whose_interpreter_is_missing_fails() {
    let n = Node::new("cf-interp");
    n.script("calico-ipam", "#!/usr/bin/cp-no-such-python -u\nprint()\n");
    let list = n.conflist(json!({}));
    assert_fails(
        &n.chain(&list, &[]),
        "cni-binary-runnable",
        "the interpreter of plugin binary \"calico-ipam\" is missing",
        &[&format!(
            "starts with #!/usr/bin/cp-no-such-python, which does not exist at {}",
            n.host("/usr/bin/cp-no-such-python").display()
        )],
    );
}

#[test]
fn kubeconfig_tokens_expired_soon_valid_and_opaque() {
    let n = Node::new("cf-token");
    let list = n.conflist(json!({}));
    let expired = jwt(now() - 7200);
    n.write_host(KUBECONFIG, &kubeconfig(&expired));
    let run = n.chain(&list, &[]);
    assert_fails(
        &run,
        "calico-kubeconfig",
        "the token in Calico's kubeconfig has expired, on Calico's kubeconfig",
        &[
            &n.host(KUBECONFIG).display().to_string(),
            "connection is unauthorized: Unauthorized",
            "ago",
        ],
    );
    // Soon: a warning, the chain runs on.
    let soon = jwt(now() + 600);
    n.write_host(KUBECONFIG, &kubeconfig(&soon));
    assert_passes(&n.chain(&list, &[]));
    assert!(
        n.logged()
            .contains("[WARNING calico-kubeconfig] the token in Calico's kubeconfig expires soon"),
        "{}",
        n.logged()
    );
    // Never shown, in the error or the debug log.
    let shown = format!("{run:?}{}", n.logged());
    for t in [&expired, &soon] {
        for part in t.split('.') {
            assert!(!shown.contains(part), "token part {part} shown");
        }
    }
    for token in [jwt(now() + 86_400), "opaque-static-token".to_string()] {
        std::fs::remove_file(n.log()).expect("rm log");
        n.write_host(KUBECONFIG, &kubeconfig(&token));
        assert_passes(&n.chain(&list, &[]));
        assert!(!n.logged().contains("calico-kubeconfig"), "{}", n.logged());
    }
    // Gone: an error naming where it was looked for.
    std::fs::remove_file(n.host(KUBECONFIG)).expect("rm");
    assert_fails(
        &n.chain(&list, &[]),
        "calico-kubeconfig",
        "the kubeconfig Calico's entry names does not exist",
        &[&format!("{} does not exist", n.host(KUBECONFIG).display())],
    );
}

#[test]
fn nodename_file_missing_mismatched_and_optional() {
    let n = Node::new("cf-nodename");
    let file = n.host("/var/lib/calico/nodename");
    std::fs::remove_file(&file).expect("rm");
    let list = n.conflist(json!({}));
    assert_fails(
        &n.chain(&list, &[]),
        "calico-nodename",
        "Calico's nodename file does not exist",
        &[
            &format!("{} does not exist", file.display()),
            "stat /var/lib/calico/nodename: no such file or directory",
        ],
    );
    let list = n.conflist(json!({"nodename_file_optional": true}));
    assert_passes(&n.chain(&list, &[]));
    n.write_host("/var/lib/calico/nodename", "node-1\n");
    let list = n.conflist(json!({"nodename": "node-2"}));
    assert_fails(
        &n.chain(&list, &[]),
        "calico-nodename",
        "Calico's entry and its nodename file name different nodes",
        &[
            "nodename \"node-2\" in",
            "\"node-1\" in",
            "pods get no routes",
        ],
    );
    let list = n.conflist(json!({"nodename": "node-1"}));
    assert_passes(&n.chain(&list, &[]));
    // A nodename_file of its own, outside /var/lib/calico, is read under the host root too.
    n.write_host("/etc/cni/net.d/my-nodename", "node-1");
    let list = n.conflist(json!({"nodename_file": "/etc/../etc/cni/net.d/my-nodename"}));
    assert_passes(&n.chain(&list, &[]));
}

#[test]
fn no_calico_entry_warns_once_and_skips() {
    let n = Node::new("cf-noentry");
    let list = json!({"cniVersion": "1.0.0", "name": "k8s-pod-network", "plugins": [
        {"type": "calico-preflight", "confDir": n.root.join("net.d"),
         "hostRoot": n.root.join("host"), "nodeCheckTtlSeconds": 0, "logFile": n.log()},
        {"type": "calico-ipam"},
    ]});
    std::fs::write(n.root.join("net.d/10-calico.conflist"), list.to_string()).expect("conflist");
    std::fs::remove_file(n.host("/var/lib/calico/nodename")).expect("rm");
    assert_passes(&n.chain(&list, &[]));
    let log = n.logged();
    assert_eq!(
        log.matches("Calico's plugin entry was not found").count(),
        1,
        "{log}"
    );
    assert!(!log.contains("[ERROR"), "{log}");
}
