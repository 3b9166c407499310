//! `doctor --host-root DIR`: the host's root mounted elsewhere (a DaemonSet pod's `/host`).
//! Node files and doctor's default dirs are read under it (the conflist in its
//! /etc/cni/net.d, containerd's config and the bin dir that config names, Calico's nodename
//! file and kubeconfig, a script's interpreter); dirs given as flags are used as given; an
//! installed entry's own `hostRoot` does not move doctor's view. Everything lives in a temp
//! host root whose paths exist nowhere on this machine, so a read outside it cannot pass.

use calico_preflight_integration::*;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

const KUBECONFIG: &str = "/etc/cni/net.d/calico-kubeconfig";
/// The bin dir containerd's config names: not /opt/cni/bin, so only the config can name it.
const BIN_DIR: &str = "/opt/cp-hostroot/bin";
/// The interpreter of the stub plugins: present only under the host root.
const INTERP: &str = "/usr/local/lib/cp-hostroot-sh";

struct Host {
    ns: Netns,
    root: TempDir,
}

impl Host {
    fn path(&self, host_path: &str) -> PathBuf {
        self.root.path().join(host_path.trim_start_matches('/'))
    }
    fn write(&self, host_path: &str, text: &str) {
        let p = self.path(host_path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, text).expect("write");
    }
    fn write_exec(&self, host_path: &str, text: &str) {
        self.write(host_path, text);
        std::fs::set_permissions(self.path(host_path), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
    }
    fn conflist(&self, preflight: Value) {
        let list = json!({"name": "k8s-pod-network", "cniVersion": "1.0.0", "plugins": [
            {"type": "calico", "ipam": {"type": "calico-ipam"},
             "kubernetes": {"kubeconfig": KUBECONFIG}},
            preflight, {"type": "portmap"}]});
        self.write("/etc/cni/net.d/10-calico.conflist", &list.to_string());
    }

    /// doctor in the host namespace, JSON report; the pod scan is kept to the namespace dir
    /// given (there are no pods), the rest is the defaults under `--host-root`.
    fn doctor(&self, extra: &[String]) -> (PluginRun, Value) {
        let mut args: Vec<std::ffi::OsString> =
            ["doctor", "--json", "--no-proc-scan", "--netns-dir"]
                .map(Into::into)
                .into();
        args.push(self.path("/run/netns").into());
        args.extend(extra.iter().map(Into::into));
        let run = preflight_in(&self.ns.path(), &args);
        let v =
            serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {run:?}"));
        (run, v)
    }
    fn root_flag(&self) -> Vec<String> {
        vec!["--host-root".into(), self.root.path().display().to_string()]
    }
}

/// Node findings of the report as (check, severity, text of the whole finding).
fn node_findings(report: &Value) -> Vec<(String, String, String)> {
    report["node"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| {
                    (
                        f["check"].as_str().unwrap_or("").to_string(),
                        f["severity"].as_str().unwrap_or("").to_string(),
                        f.to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn errors_of(report: &Value, check: &str) -> Vec<String> {
    node_findings(report)
        .into_iter()
        .filter(|(c, s, _)| c == check && s == "error")
        .map(|(_, _, t)| t)
        .collect()
}

/// A kubeconfig whose token expires at `exp`.
fn kubeconfig(exp: i64) -> String {
    calico_preflight_integration::kubeconfig::with_token(
        &calico_preflight_integration::kubeconfig::jwt(exp),
    )
}

use calico_preflight_integration::kubeconfig::now;

/// A healthy node's files under a temp host root: Calico's conflist in /etc/cni/net.d, the
/// plugins in the bin dir containerd's /etc/containerd/config.toml names, calico-node's
/// nodename file and a valid kubeconfig.
fn host() -> Host {
    let ns = Netns::new("hr-h");
    ns.sysctl("net.ipv4.ip_forward", "1");
    let root = TempDir::new("cp-hostroot").create();
    let h = Host { ns, root };
    h.conflist(json!({"type": "calico-preflight"}));
    h.write(
        "/etc/containerd/config.toml",
        &format!(
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".cni]\n  bin_dir = \"{BIN_DIR}\"\n  \
             conf_dir = \"/etc/cni/net.d\"\n"
        ),
    );
    h.write_exec(INTERP, "stub interpreter\n");
    for b in ["calico", "calico-ipam", "calico-preflight", "portmap"] {
        h.write_exec(&format!("{BIN_DIR}/{b}"), &format!("#!{INTERP}\nexit 0\n"));
    }
    h.write("/var/lib/calico/nodename", "node-1\n");
    h.write(KUBECONFIG, &kubeconfig(now() + 86_400));
    std::fs::create_dir_all(h.path("/run/netns")).expect("netns dir");
    h
}

const NODE_FILE_CHECKS: [&str; 4] = [
    "cni-bin-dir",
    "cni-binary-runnable",
    "calico-nodename",
    "calico-kubeconfig",
];

#[test]
fn doctor_reads_the_node_under_host_root() {
    let h = host();
    let (run, report) = h.doctor(&h.root_flag());
    for c in NODE_FILE_CHECKS {
        assert!(errors_of(&report, c).is_empty(), "{c}: {run:?}");
    }
    // The conflist was found (no "Calico's entry not found" warning) and containerd's bin dir
    // under the root is the one checked.
    let text = run.stdout.clone();
    assert!(!text.contains("no conflist"), "{text}");

    // Without --host-root the same files are looked for on this machine: the conflist is not
    // there, so nothing of the above can be judged the same way. Pointing doctor at the conf
    // and bin dirs explicitly still reads Calico's nodename file and the interpreter on this
    // machine's root, where they do not exist: errors, which --host-root is what avoids.
    let conf = h.path("/etc/cni/net.d").display().to_string();
    let bin_dir = h.path(BIN_DIR).display().to_string();
    let explicit = vec![
        "--cni-conf-dir".to_string(),
        conf.clone(),
        "--cni-bin-dir".into(),
        bin_dir.clone(),
    ];
    let (run, report) = h.doctor(&explicit);
    assert!(!errors_of(&report, "calico-nodename").is_empty(), "{run:?}");
    assert!(
        !errors_of(&report, "calico-kubeconfig").is_empty(),
        "{run:?}"
    );
    assert!(
        !errors_of(&report, "cni-binary-runnable").is_empty(),
        "{run:?}"
    );

    // Dirs given as flags are used as given, also with --host-root (not ROOT/ROOT/...).
    let mut both = h.root_flag();
    both.extend(explicit);
    let (run, report) = h.doctor(&both);
    for c in NODE_FILE_CHECKS {
        assert!(errors_of(&report, c).is_empty(), "{c}: {run:?}");
    }
}

#[test]
fn faults_under_host_root_are_found_and_named_by_their_path_there() {
    let h = host();
    std::fs::remove_file(h.path("/var/lib/calico/nodename")).expect("rm nodename");
    h.write(KUBECONFIG, &kubeconfig(now() - 60));
    std::fs::remove_file(h.path(INTERP)).expect("rm interpreter");
    let (run, report) = h.doctor(&h.root_flag());
    assert_eq!(run.status, 2, "{run:?}");
    let nodename = errors_of(&report, "calico-nodename");
    assert_eq!(nodename.len(), 1, "{run:?}");
    let where_ = h.path("/var/lib/calico/nodename").display().to_string();
    assert!(nodename[0].contains(&where_), "{where_}: {}", nodename[0]);
    assert!(
        errors_of(&report, "calico-kubeconfig")
            .iter()
            .any(|f| f.contains("expired")),
        "{run:?}"
    );
    assert!(
        errors_of(&report, "cni-binary-runnable")
            .iter()
            .any(|f| f.contains(INTERP)),
        "{run:?}"
    );
}

/// The installed entry's `hostRoot` describes where the plugin sees the host; given
/// --host-root, doctor reads under the flag, not under flag + entry nor under the entry.
#[test]
fn the_flag_wins_over_the_installed_entrys_host_root() {
    let h = host();
    h.conflist(json!({"type": "calico-preflight", "hostRoot": "/nonexistent-cp-root"}));
    let (run, report) = h.doctor(&h.root_flag());
    for c in NODE_FILE_CHECKS {
        assert!(errors_of(&report, c).is_empty(), "{c}: {run:?}");
    }
}

#[test]
fn a_relative_host_root_is_a_usage_error() {
    let out = std::process::Command::new(bin("calico-preflight"))
        .args(["doctor", "--host-root", "host"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--host-root must be an absolute path"));
}
