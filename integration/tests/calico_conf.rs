//! Expected state from Calico's own entry in the conf dir, on real namespaces: host-local
//! `ipam.routes` instead of the default route (Canal), a missing custom route named, the
//! fallback to a warning when Calico's entry cannot be found, and a result whose first host
//! interface is the bandwidth plugin's ifb.

use calico_preflight_integration::*;
use serde_json::{json, Value};
use std::path::PathBuf;

/// A conf dir removed on drop, also when the test fails.
struct ConfDir(PathBuf);

impl ConfDir {
    fn new(tag: &str, calico: Value) -> ConfDir {
        let d = std::env::temp_dir().join(format!("cp-cc-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let list = json!({"cniVersion": "1.0.0", "name": "k8s-pod-network",
            "plugins": [calico, {"type": "calico-preflight"}]});
        std::fs::write(d.join("10-calico.conflist"), list.to_string()).unwrap();
        ConfDir(d)
    }
}

impl Drop for ConfDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn add(host: &Netns, env: &CniEnv, prev: &Value, conf_dir: &str) -> PluginRun {
    let cache = std::env::temp_dir().join(format!("cp-cc-cache-{}", host.name));
    let conf = json!({"cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "calico-preflight",
        "confDir": conf_dir, "cacheDir": cache, "nodeChecks": false, "prevResult": prev});
    let run = run_plugin(
        Some(host),
        &bin("calico-preflight"),
        &env.with_command("ADD").vars(),
        conf.to_string().as_bytes(),
    );
    let _ = std::fs::remove_dir_all(&cache);
    run
}

fn host_local(routes: Value) -> Value {
    json!({"type": "calico", "ipam": {"type": "host-local", "subnet": "usePodCidr", "routes": routes}})
}

#[test]
fn host_local_custom_routes_replace_the_default_route() {
    let host = Netns::new("cc-h");
    let pod = Netns::new("cc-p");
    let env = CniEnv::new("ADD", &pod.path(), "eth0");
    // Calico with ipam.routes wires no default route, only the custom ones via 169.254.1.1.
    let prev = wire_pod(
        &host,
        &env,
        json!({"ips": ["10.244.7.5/32"], "break": ["no-default-route"]}),
    );
    pod.ip(&[
        "route",
        "add",
        "10.0.0.0/8",
        "via",
        "169.254.1.1",
        "dev",
        "eth0",
    ]);
    let dir = ConfDir::new(
        "hl",
        host_local(json!([{"dst": "10.0.0.0/8", "gw": "10.244.7.1"}])),
    );
    let conf_dir = dir.0.display().to_string();

    let run = add(&host, &env, &prev, &conf_dir);
    assert_eq!(run.status, 0, "a Canal-style pod must pass: {run:?}");

    // With include_default_routes, the default route is expected too.
    let with_defaults = ConfDir::new(
        "hl-def",
        json!({"type": "calico", "include_default_routes": true,
               "ipam": {"type": "host-local", "subnet": "usePodCidr", "routes": [{"dst": "10.0.0.0/8"}]}}),
    );
    let run = add(&host, &env, &prev, &with_defaults.0.display().to_string());
    assert_eq!(run.status, 1, "{run:?}");
    assert!(run.stdout.contains("pod-default-route"), "{}", run.stdout);

    // Without Calico's entry to say so, gateway routes and no default route only warn.
    let run = add(&host, &env, &prev, "/nonexistent/cp-cc");
    assert_eq!(run.status, 0, "no config, no guess: {run:?}");

    // A missing custom route is named.
    pod.ip(&["route", "del", "10.0.0.0/8"]);
    let run = add(&host, &env, &prev, &conf_dir);
    assert_eq!(run.status, 1, "{run:?}");
    let out = run.json();
    let msg = out["msg"].as_str().unwrap_or_default();
    let details = out["details"].as_str().unwrap_or_default();
    assert!(msg.contains("pod-routes"), "{out}");
    assert!(
        details.contains("10.0.0.0/8 via 169.254.1.1 dev eth0"),
        "{out}"
    );
    assert!(!msg.contains("pod-default-route"), "{out}");
}

#[test]
fn an_ifb_before_calicos_host_end_is_left_alone() {
    let host = Netns::new("cc-h");
    let pod = Netns::new("cc-p");
    let env = CniEnv::new("ADD", &pod.path(), "eth0");
    let mut prev = wire_pod(&host, &env, json!({"ips": ["10.244.8.5/32"]}));
    // The bandwidth plugin's ifb, as it appears in the result before us.
    host.ip(&["link", "add", "bwp0123456789a", "type", "ifb"]);
    let ifaces = prev["interfaces"].as_array_mut().unwrap();
    ifaces.insert(
        0,
        json!({"name": "bwp0123456789a", "mac": "02:00:00:00:00:01"}),
    );
    for ip in prev["ips"].as_array_mut().unwrap() {
        if let Some(i) = ip["interface"].as_u64() {
            ip["interface"] = json!(i + 1);
        }
    }
    let run = add(&host, &env, &prev, "/nonexistent/cp-cc");
    assert_eq!(run.status, 0, "{run:?}");
    // The host end itself is still judged: down, it fails, named.
    let veth = prev["interfaces"][1]["name"].as_str().unwrap().to_string();
    host.ip(&["link", "set", &veth, "down"]);
    let run = add(&host, &env, &prev, "/nonexistent/cp-cc");
    assert_eq!(run.status, 1, "{run:?}");
    assert!(
        run.stdout.contains(&format!("host veth {veth}")),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("bwp0123456789a"), "{}", run.stdout);
}
