//! The main job, shown: two throw-away pods wired like Calico in namespaces of their own, one
//! healthy and one with its host route missing, and what calico-preflight answers for each.
//! Needs root (it creates network namespaces); leaves nothing behind.

use calico_preflight_integration::{bin, run_plugin, CniEnv, Netns};
use serde_json::{json, Value};

fn main() {
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
        if let Some(details) = out["details"].as_str() {
            println!("\ndetails, one finding per line:");
            for d in details.split(" | ") {
                println!("  {d}");
            }
        }
        println!();
    }
}
