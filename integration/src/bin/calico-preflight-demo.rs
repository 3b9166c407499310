//! The main job, shown: two throw-away pods wired like Calico in namespaces of their own, one
//! healthy and one with its host route missing, and what calico-preflight answers for each.
//! Needs root (it creates network namespaces) and iproute2's `ip`; without them it says so and
//! exits 1. Leaves nothing behind, also when it fails half way.

use calico_preflight_integration::{bin, run_plugin, target_dir, CniEnv, Netns};
use serde_json::{json, Value};
use std::process::Command;

/// What this machine lacks for the demo, if anything: said before anything is created.
fn missing_prerequisite() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Some(format!(
            "needs root (it is uid {euid}): it creates throw-away network namespaces (ip netns \
             add) and runs the plugins inside them. Run it as root: \
             sudo target/release/calico-preflight-demo"
        ));
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some(
            "needs iproute2's `ip` command to create network namespaces: apt-get install iproute2"
                .into(),
        );
    }
    for b in ["calico-preflight", "fake-calico"] {
        if !target_dir().join(b).exists() {
            return Some(format!(
                "{b} is not built next to the demo in {}: run `cargo build --release --workspace` \
                 (or without --release for target/debug)",
                target_dir().display()
            ));
        }
    }
    None
}

fn main() {
    if let Some(why) = missing_prerequisite() {
        eprintln!("calico-preflight-demo: {why}");
        std::process::exit(1);
    }
    // A step that fails (no CAP_NET_ADMIN in a container, say) ends the demo with one line;
    // unwinding drops the namespaces made so far.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("calico-preflight-demo: failed: {info}");
    }));
    if std::panic::catch_unwind(demo).is_err() {
        std::process::exit(1);
    }
}

fn demo() {
    let host = Netns::new("demo-host");
    // The host namespace plays a Calico node: nodes forward (host-ip-forward checks it).
    host.sysctl("net.ipv4.ip_forward", "1");
    for (title, faults, ip) in [
        ("healthy pod", json!([]), "10.244.1.5/32"),
        (
            "pod whose host route is missing",
            json!(["no-host-route"]),
            "10.244.1.6/32",
        ),
    ] {
        let pod = Netns::new("demo-pod");
        let env = CniEnv::new("ADD", &pod.path(), "eth0");
        let calico = json!({"cniVersion":"1.0.0","name":"k8s-pod-network","type":"fake-calico",
                            "ips":[ip],"break":faults});
        let wired = run_plugin(
            Some(&host),
            &bin("fake-calico"),
            &env.vars(),
            calico.to_string().as_bytes(),
        );
        if wired.status != 0 {
            eprintln!("fake-calico could not wire the pod: {}", wired.stdout);
            std::process::exit(1);
        }
        let prev: Value = wired.json();
        // confDir: this throw-away node has no CNI config dir of its own (not the machine's).
        let conf = json!({"cniVersion":"1.0.0","name":"k8s-pod-network","type":"calico-preflight",
                          "confDir": "/nonexistent/calico-preflight-demo", "prevResult": prev});
        let run = run_plugin(
            Some(&host),
            &bin("calico-preflight"),
            &env.vars(),
            conf.to_string().as_bytes(),
        );
        println!("=== {title} ({ip}) ===");
        println!("$ CNI_COMMAND=ADD ... calico-preflight  # after calico in the conflist");
        println!("exit status {}", run.status);
        let out: Value =
            serde_json::from_str(run.stdout.trim()).unwrap_or(Value::String(run.stdout.clone()));
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        if let (Some(msg), details) = (out["msg"].as_str(), out["details"].as_str()) {
            // libcni's error text is `msg; details`; containerd prefixes it as below and the
            // kubelet puts that in the pod's FailedCreatePodSandBox event (integration/tests/cri.rs
            // checks it against a real containerd).
            let libcni = match details {
                Some(d) if !d.is_empty() => format!("{msg}; {d}"),
                _ => msg.to_string(),
            };
            println!("\nas `kubectl describe pod` shows it (containerd's event):");
            println!(
                "  failed to setup network for sandbox \"{}\": plugin type=\"calico-preflight\" failed (add): {libcni}",
                env.container_id
            );
        }
        if let Some(details) = out["details"].as_str() {
            println!("\ndetails, one finding per line:");
            for d in details.split(" | ") {
                println!("  {d}");
            }
        }
        println!();
    }
}
