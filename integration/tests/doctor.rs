//! `calico-preflight doctor` against a throw-away node: a host namespace holding several pods
//! wired like Calico, one healthy and the others broken in different ways.

use calico_preflight_integration::*;
use serde_json::{json, Value};

struct Node {
    host: Netns,
    pods: Vec<Netns>,
    conf_dir: std::path::PathBuf,
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
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    // A hung scan fails the test (exit 124) instead of hanging the suite.
    let out = std::process::Command::new("timeout")
        .args(["30", "nsenter"])
        .arg(format!("--net={}", n.host.path()))
        .arg(bin("calico-preflight"))
        .args(&args)
        .output()
        .expect("run doctor");
    PluginRun {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        status: out.status.code().unwrap_or(-1),
    }
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
    let junk = std::env::temp_dir().join(format!("cp-doctor-junk-{}", n.host.name));
    std::fs::create_dir_all(&junk).expect("junk dir");
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
    let _ = std::fs::remove_dir_all(&junk);
    assert_eq!(run.status, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains(&format!("[ERROR host-route] pod {} (", n.pods[0].name)),
        "{}",
        run.stdout
    );
}
