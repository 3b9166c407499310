//! `calico-preflight doctor` against a throw-away node: a host namespace holding several pods
//! wired like Calico, one healthy and the others broken in different ways.

use calico_preflight_integration::*;
use serde_json::{json, Value};

struct Node {
    host: Netns,
    pods: Vec<Netns>,
    conf_dir: std::path::PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        // The node's temp conf dir goes with it, also when a test fails.
        let _ = std::fs::remove_dir_all(&self.conf_dir);
    }
}

/// Wires one pod per entry of `faults` with fake-calico, in `host`.
fn node(faults: &[&[&str]]) -> Node {
    let host = Netns::new("dr-h");
    host.sysctl("net.ipv4.ip_forward", "1");
    // The node's CNI files: Calico's conflist and its binaries where the runtime looks.
    let conf_dir = std::env::temp_dir().join(format!("cp-doctor-{}", host.name));
    std::fs::create_dir_all(conf_dir.join("bin")).expect("conf dir");
    // calico-node's nodename file, kept in the temp dir (calico-nodename reads it).
    let nodename = conf_dir.join("nodename");
    std::fs::write(&nodename, "node-1").expect("nodename");
    let list = json!({"name": "k8s-pod-network", "cniVersion": "1.0.0", "plugins": [
        {"type": "calico", "ipam": {"type": "calico-ipam"}, "nodename_file": nodename},
        {"type": "calico-preflight"}, {"type": "portmap"}]});
    std::fs::write(conf_dir.join("10-calico.conflist"), list.to_string()).expect("conflist");
    for b in ["calico", "calico-ipam", "calico-preflight", "portmap"] {
        let p = conf_dir.join("bin").join(b);
        std::fs::write(&p, "#!/bin/sh\nexit 0\n").expect("stub plugin");
        sh(&["chmod", "755", &p.display().to_string()]);
    }
    let mut pods = Vec::new();
    for (i, f) in faults.iter().enumerate() {
        let pod = Netns::new("dr-p");
        let env = CniEnv::new("ADD", &pod.path(), "eth0");
        wire_pod(
            &host,
            &env,
            json!({"ips": [format!("10.244.9.{}/32", i + 1)], "break": f}),
        );
        pods.push(pod);
    }
    Node {
        host,
        pods,
        conf_dir,
    }
}

fn doctor(n: &Node, extra: &[&str]) -> PluginRun {
    let mut args = vec![
        "doctor".to_string(),
        "--netns-dir".into(),
        "/run/netns".into(),
        "--no-proc-scan".into(),
        "--conf-dir".into(),
        n.conf_dir.display().to_string(),
        "--cni-bin-dir".into(),
        n.conf_dir.join("bin").display().to_string(),
        // Hermetic: not the machine's /var/lib/cni, which containerd tests write.
        "--cni-cache-dir".into(),
        n.conf_dir.join("no-cni-cache").display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    preflight_in(&n.host.path(), &args)
}

#[test]
fn every_broken_pod_is_named_with_its_check() {
    let n = node(&[
        &[],
        &["no-host-route"],
        &["no-proxy-arp"],
        &["no-default-route"],
        &["no-host-mac"],
        &[],
    ]);
    // A stale ARP entry in the last pod: its gateway resolved to a MAC that is not the veth's.
    n.pods[5].ip(&[
        "neigh",
        "replace",
        "169.254.1.1",
        "lladdr",
        "02:00:00:00:00:09",
        "dev",
        "eth0",
        "nud",
        "permanent",
    ]);
    let run = doctor(&n, &[]);
    assert_eq!(run.status, 2, "{}\n{}", run.stdout, run.stderr);
    let pod_line = |i: usize, check: &str| {
        let label = format!("pod {} (", n.pods[i].name);
        run.stdout.lines().any(|l| {
            l.starts_with(&format!("[ERROR {check}] {label}"))
                || l.starts_with(&format!("[WARNING {check}] {label}"))
        })
    };
    assert!(pod_line(1, "host-route"), "{}", run.stdout);
    assert!(pod_line(2, "host-proxy-arp"), "{}", run.stdout);
    assert!(pod_line(3, "pod-default-route"), "{}", run.stdout);
    assert!(pod_line(4, "host-veth-mac"), "{}", run.stdout);
    assert!(pod_line(5, "pod-arp"), "{}", run.stdout);
    assert!(
        !run.stdout.contains(&format!("pod {} (", n.pods[0].name)),
        "healthy pod has no finding lines:\n{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(
            "Summary: 6 pod(s) on cali* veths: 1 healthy, 4 with errors, 1 with warnings only"
        ),
        "{}",
        run.stdout
    );
}

#[test]
fn json_report_is_valid_and_complete() {
    let n = node(&[&[], &["no-forwarding"]]);
    let run = doctor(&n, &["--json"]);
    assert_eq!(run.status, 2, "{}", run.stderr);
    let r: Value = serde_json::from_str(&run.stdout).expect("doctor --json is JSON");
    assert_eq!(r["formatVersion"], 1);
    assert_eq!(r["exitCode"], 2);
    assert_eq!(r["summary"]["pods"], 2);
    let pods = r["pods"].as_array().expect("pods");
    let broken = pods
        .iter()
        .find(|p| p["pod"] == n.pods[1].name.as_str())
        .expect("broken pod listed by its namespace");
    assert_eq!(broken["interface"], "eth0");
    assert_eq!(broken["ips"], json!(["10.244.9.2/32"]));
    assert_eq!(broken["findings"][0]["check"], "host-forwarding");
    assert_eq!(broken["findings"][0]["severity"], "error");
    assert!(broken["hostVeth"]
        .as_str()
        .unwrap_or_default()
        .starts_with("cali"));
    let healthy = pods
        .iter()
        .find(|p| p["pod"] == n.pods[0].name.as_str())
        .expect("healthy pod");
    assert_eq!(healthy["findings"], json!([]));
}

#[test]
fn a_healthy_node_exits_0_and_warnings_exit_1() {
    let n = node(&[&[], &[]]);
    let run = doctor(&n, &[]);
    assert_eq!(run.status, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("2 healthy"), "{}", run.stdout);
    let w = node(&[&["no-host-mac"]]);
    let warned = doctor(&w, &[]);
    assert_eq!(warned.status, 1, "{}\n{}", warned.stdout, warned.stderr);
}

/// Whatever else sits in a netns directory (a namespace being deleted is a plain file for a
/// moment; a stray FIFO) is skipped, not a reason to fail or hang the scan.
#[test]
fn junk_in_the_netns_dir_does_not_stop_the_scan() {
    let n = node(&[&["no-host-route"]]);
    let junk_guard = TempDir::new("doctor-junk").create();
    let junk = junk_guard.path();
    std::fs::write(junk.join("plain-file"), b"").expect("file");
    sh(&["mkfifo", &junk.join("fifo").display().to_string()]);
    let run = doctor(
        &n,
        &[
            "--netns-dir",
            &junk.display().to_string(),
            "--netns-dir",
            "/run/netns",
        ],
    );
    assert_eq!(run.status, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains(&format!("[ERROR host-route] pod {} (", n.pods[0].name)),
        "{}",
        run.stdout
    );
}

/// Runs doctor in the node's host namespace with exactly `args` (no dirs added).
fn doctor_with(n: &Node, args: &[String]) -> PluginRun {
    let mut all = vec!["doctor".to_string()];
    all.extend_from_slice(args);
    preflight_in(&n.host.path(), &all)
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A node whose containerd has `bin_dir` elsewhere than /opt/cni/bin (Debian's containerd:
/// /usr/lib/cni): doctor checks the dir containerd uses, and when a binary is missing there it
/// names the config file and key to change.
#[test]
fn doctor_reads_containerds_config_for_the_cni_dirs() {
    let n = node(&[&[]]);
    let cfg = n.conf_dir.join("containerd.toml");
    let write_cfg = |bin_dir: &std::path::Path| {
        std::fs::write(
            &cfg,
            format!(
                "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".cni]\n  bin_dir = \"{}\"\n  conf_dir = \"{}\"\n",
                bin_dir.display(),
                n.conf_dir.display()
            ),
        )
        .expect("containerd config");
    };
    write_cfg(&n.conf_dir.join("bin"));
    let base = args(&[
        "--netns-dir",
        "/run/netns",
        "--no-proc-scan",
        "--containerd-config",
        &cfg.display().to_string(),
        "--crio-config",
        "none",
    ]);
    let run = doctor_with(&n, &base);
    assert_eq!(run.status, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(!run.stdout.contains("cni-bin-dir"), "{}", run.stdout);

    // containerd now looks in an empty dir; the binaries are where --search-bin-dir says.
    let empty = n.conf_dir.join("empty-bin");
    std::fs::create_dir_all(&empty).expect("dir");
    write_cfg(&empty);
    let mut more = base.clone();
    more.extend(args(&[
        "--search-bin-dir",
        &n.conf_dir.join("bin").display().to_string(),
    ]));
    let run = doctor_with(&n, &more);
    assert_eq!(run.status, 2, "{}\n{}", run.stdout, run.stderr);
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("[ERROR cni-bin-dir] node: plugin binary \"calico\""))
        .unwrap_or_else(|| panic!("{}", run.stdout));
    let want = format!(
        "add {} to the runtime's CNI bin dirs (plugins.\"io.containerd.grpc.v1.cri\".cni.bin_dir in {})",
        n.conf_dir.join("bin").display(),
        cfg.display()
    );
    assert!(line.contains(&want), "{want}\n{line}");
    let _ = std::fs::remove_dir_all(&n.conf_dir);
}

/// Calico's own binary missing is Calico's installer's business; ours is ours.
#[test]
fn doctor_sends_each_missing_binary_to_its_installer() {
    let n = node(&[&[]]);
    for b in ["calico", "calico-preflight"] {
        std::fs::remove_file(n.conf_dir.join("bin").join(b)).expect("remove stub");
        assert!(
            !std::path::Path::new("/opt/cni/bin").join(b).exists(),
            "this machine has {b} in /opt/cni/bin, which the test needs absent"
        );
    }
    let run = doctor(
        &n,
        &["--crio-config", "none", "--containerd-config", "none"],
    );
    let _ = std::fs::remove_dir_all(&n.conf_dir);
    assert_eq!(run.status, 2, "{}\n{}", run.stdout, run.stderr);
    let finding = |plugin: &str| {
        run.stdout
            .lines()
            .find(|l| l.contains(&format!("plugin binary \"{plugin}\" is not in")))
            .unwrap_or_else(|| panic!("{plugin}: {}", run.stdout))
            .to_string()
    };
    let calico = finding("calico");
    assert!(
        calico.contains("What to do: Calico's install-cni init container did not install it"),
        "{calico}"
    );
    let ours = finding("calico-preflight");
    assert!(
        ours.contains("What to do: calico-preflight's installer did not install it"),
        "{ours}"
    );
}

/// Our installed entry's `checks` apply to doctor as they apply to ADD: the same pod gets
/// the same verdict from both.
#[test]
fn doctor_and_add_agree_on_the_installed_entrys_severities() {
    for (severity, add_fails, doctor_status) in [("error", true, 2), ("off", false, 0)] {
        let host = Netns::new("dr-h");
        host.sysctl("net.ipv4.ip_forward", "1");
        let conf_dir = std::env::temp_dir().join(format!("cp-doctor-{}", host.name));
        std::fs::create_dir_all(conf_dir.join("bin")).expect("conf dir");
        for b in ["calico", "calico-ipam", "calico-preflight"] {
            let p = conf_dir.join("bin").join(b);
            std::fs::write(&p, "#!/bin/sh\nexit 0\n").expect("stub plugin");
            sh(&["chmod", "755", &p.display().to_string()]);
        }
        let entry = json!({"type": "calico-preflight", "nodeChecks": false,
            "checks": {"host-veth-mac": severity}});
        let list = json!({"name": "k8s-pod-network", "cniVersion": "1.0.0", "plugins": [
            {"type": "calico", "ipam": {"type": "calico-ipam"}, "nodename_file_optional": true},
            entry]});
        std::fs::write(conf_dir.join("10-calico.conflist"), list.to_string()).expect("conflist");
        let pod = Netns::new("dr-p");
        let env = CniEnv::new("ADD", &pod.path(), "eth0");
        // A wrong host veth MAC: host-veth-mac, a warning by default.
        let prev = wire_pod(
            &host,
            &env,
            json!({"ips": ["10.244.9.1/32"], "break": ["no-host-mac"]}),
        );
        let mut conf = entry.clone();
        conf["name"] = json!("k8s-pod-network");
        conf["cniVersion"] = json!("1.0.0");
        conf["prevResult"] = prev;
        let add = run_plugin(
            Some(&host),
            &bin("calico-preflight"),
            &env.vars(),
            conf.to_string().as_bytes(),
        );
        let n = Node {
            host,
            pods: vec![pod],
            conf_dir,
        };
        let run = doctor(&n, &[]);
        let _ = std::fs::remove_dir_all(&n.conf_dir);
        assert_eq!(add.status != 0, add_fails, "{severity}: ADD {add:?}");
        if add_fails {
            assert!(add.stdout.contains("host-veth-mac"), "{add:?}");
        }
        assert_eq!(
            run.status, doctor_status,
            "{severity}: {}\n{}",
            run.stdout, run.stderr
        );
        assert_eq!(
            run.stdout.contains("[ERROR host-veth-mac]"),
            add_fails,
            "{severity}: {}",
            run.stdout
        );
        assert!(
            !run.stdout.contains("[WARNING host-veth-mac]"),
            "{}",
            run.stdout
        );
    }
}

/// FIFOs and device nodes in the conf dir and in a netns dir are never opened: a FIFO opened
/// for reading would release the writer waiting on it, a device open shows as IN_OPEN.
#[test]
fn doctor_never_opens_fifos_or_device_nodes() {
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    let n = node(&[&["no-host-route"]]);
    let junk = std::env::temp_dir().join(format!("cp-doctor-nodes-{}", n.host.name));
    std::fs::create_dir_all(&junk).expect("junk dir");
    let fifos = [n.conf_dir.join("00-fifo.conf"), junk.join("fifo")];
    let devices = [
        n.conf_dir.join("01-chr.conf"),
        junk.join("chr"),
        junk.join("blk"),
    ];
    for f in &fifos {
        sh(&["mkfifo", &f.display().to_string()]);
    }
    sh(&["mknod", &devices[0].display().to_string(), "c", "1", "3"]);
    sh(&["mknod", &devices[1].display().to_string(), "c", "1", "3"]);
    sh(&["mknod", &devices[2].display().to_string(), "b", "7", "0"]);
    let ino = Inotify::init(InitFlags::IN_NONBLOCK).expect("inotify");
    for d in &devices {
        ino.add_watch(d, AddWatchFlags::IN_OPEN).expect("watch");
    }
    // A writer per FIFO: its open returns only once someone opens the FIFO for reading.
    let released: Vec<std::sync::mpsc::Receiver<()>> = fifos
        .iter()
        .map(|f| {
            let (tx, rx) = std::sync::mpsc::channel();
            let f = f.clone();
            std::thread::spawn(move || {
                let _w = std::fs::OpenOptions::new().write(true).open(&f);
                let _ = tx.send(());
            });
            rx
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let run = doctor(
        &n,
        &[
            "--netns-dir",
            &junk.display().to_string(),
            "--netns-dir",
            "/run/netns",
        ],
    );
    let opened: Vec<String> = fifos
        .iter()
        .zip(&released)
        .filter(|(_, rx)| rx.try_recv().is_ok())
        .map(|(f, _)| f.display().to_string())
        .collect();
    let events = ino.read_events().map(|e| e.len()).unwrap_or(0);
    // Release the writers, then clean up.
    for f in &fifos {
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(f);
    }
    let _ = std::fs::remove_dir_all(&junk);
    let _ = std::fs::remove_dir_all(&n.conf_dir);
    assert_eq!(run.status, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains(&format!("[ERROR host-route] pod {} (", n.pods[0].name)),
        "{}",
        run.stdout
    );
    assert!(opened.is_empty(), "FIFOs opened for reading: {opened:?}");
    assert_eq!(events, 0, "a device node was opened");
}

/// An installed entry the plugin's own parser rejects fails every pod's ADD: doctor says so
/// instead of guessing what ADD would decide.
#[test]
fn doctor_refuses_an_installed_entry_that_add_refuses() {
    let n = node(&[&[]]);
    let list = json!({"name": "k8s-pod-network", "cniVersion": "1.0.0", "plugins": [
        {"type": "calico", "ipam": {"type": "calico-ipam"}}, {"type": "calico-preflight", "mode": "loud"}]});
    std::fs::write(n.conf_dir.join("10-calico.conflist"), list.to_string()).expect("conflist");
    let run = doctor(&n, &[]);
    assert_eq!(run.status, 3, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("mode must be"), "{}", run.stderr);
    assert!(
        run.stderr.contains("ADD fails every pod on this node"),
        "{}",
        run.stderr
    );
}
