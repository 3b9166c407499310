//! The DaemonSet in deploy/ runs commands the binary accepts: its init container's `install`
//! and its main container's `install --watch`, with the ConfigMap's entry, against a copy of
//! Calico's default conflist (host paths mapped to temp dirs).

use calico_preflight_integration::*;
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;

fn manifest() -> Vec<serde_yaml::Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/calico-preflight.yaml");
    let text = std::fs::read_to_string(path).expect("manifest");
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde_yaml::Value::deserialize(d).expect("yaml document"))
        .collect()
}

#[test]
fn daemonset_commands_install_and_keep_our_entry() {
    let docs = manifest();
    let cm = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap")
        .expect("ConfigMap");
    let entry = cm["data"]["entry"].as_str().expect("entry").to_string();
    let ds = docs
        .iter()
        .find(|d| d["kind"] == "DaemonSet")
        .expect("DaemonSet");
    let spec = &ds["spec"]["template"]["spec"];
    let init = &spec["initContainers"][0]["command"];
    let main = &spec["containers"][0]["command"];

    let tmp = TempDir::new("deploy");
    for d in ["opt/cni/bin", "etc/cni/net.d"] {
        std::fs::create_dir_all(tmp.join(d)).expect("dirs");
    }
    let calico = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/install");
    let src = calico.join("10-calico.conflist");
    let conflist = tmp.join("etc/cni/net.d/10-calico.conflist");
    std::fs::copy(&src, &conflist).expect("copy conflist");

    // The container's view: /host/... is the host; $(PREFLIGHT_ENTRY) is expanded by the kubelet.
    let args = |cmd: &serde_yaml::Value| -> Vec<String> {
        cmd.as_sequence()
            .expect("command list")
            .iter()
            .skip(1) // "/calico-preflight": the binary under test instead
            .map(|a| {
                a.as_str()
                    .expect("string arg")
                    .replace("/host/", &format!("{}/", tmp.display()))
                    .replace("$(PREFLIGHT_ENTRY)", &entry)
            })
            .collect()
    };
    let mut init_args = args(init);
    init_args.extend([
        "--containerd-config".into(),
        "none".into(),
        "--crio-config".into(),
        "none".into(),
    ]);
    let out = std::process::Command::new(bin("calico-preflight"))
        .args(&init_args)
        .output()
        .expect("install");
    assert!(
        out.status.success(),
        "init container: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&std::fs::read(&conflist).expect("read")).expect("JSON");
    let types: Vec<&str> = v["plugins"]
        .as_array()
        .expect("plugins")
        .iter()
        .filter_map(|p| p["type"].as_str())
        .collect();
    // Preflight first (node checks before Calico runs), and after calico for the pod checks.
    assert_eq!(
        types[..3],
        ["calico-preflight", "calico", "calico-preflight"],
        "{types:?}"
    );
    for i in [0, 2] {
        assert_eq!(
            v["plugins"][i]["mode"], "warn",
            "the ConfigMap's entry: {v}"
        );
    }
    assert_eq!(v["plugins"][0].get("nodeChecks"), None, "{v}");
    assert_eq!(v["plugins"][2]["nodeChecks"], false, "{v}");
    assert!(tmp.join("opt/cni/bin/calico-preflight").exists());

    // The main container: one watch round (hidden flag) after Calico rewrote its file.
    std::fs::copy(&src, &conflist).expect("calico rewrites");
    let mut main_args = args(main);
    main_args.extend([
        "--containerd-config".into(),
        "none".into(),
        "--crio-config".into(),
        "none".into(),
        "--interval".into(),
        "0.2".into(),
        "--watch-iterations".into(),
        "1".into(),
    ]);
    let out = std::process::Command::new(bin("calico-preflight"))
        .args(&main_args)
        .output()
        .expect("watch");
    assert!(
        out.status.success(),
        "main container: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&std::fs::read(&conflist).expect("read")).expect("JSON");
    for i in [0, 2] {
        assert_eq!(
            v["plugins"][i]["type"], "calico-preflight",
            "entries put back: {v}"
        );
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

/// doctor in the DaemonSet reads the host under `--host-root /hostfs`: the host's root is
/// mounted there read-only, with the runtime's later netns bind mounts propagated.
#[test]
fn daemonset_mounts_the_host_root_read_only_for_doctor() {
    let docs = manifest();
    let ds = docs
        .iter()
        .find(|d| d["kind"] == "DaemonSet")
        .expect("DaemonSet");
    let spec = &ds["spec"]["template"]["spec"];
    let vol = spec["volumes"]
        .as_sequence()
        .expect("volumes")
        .iter()
        .find(|v| v["hostPath"]["path"] == "/")
        .expect("a volume of the host's root");
    let main = &spec["containers"][0];
    let mount = main["volumeMounts"]
        .as_sequence()
        .expect("mounts")
        .iter()
        .find(|m| m["name"] == vol["name"])
        .expect("the host root mounted in the main container");
    assert_eq!(mount["mountPath"], "/hostfs", "{mount:?}");
    assert_eq!(mount["readOnly"], true, "{mount:?}");
    assert_eq!(mount["mountPropagation"], "HostToContainer", "{mount:?}");
    // The flag the manifest's comment tells operators to use exists.
    let out = std::process::Command::new(bin("calico-preflight"))
        .args(["doctor", "--help"])
        .output()
        .expect("doctor --help");
    assert!(String::from_utf8_lossy(&out.stdout).contains("--host-root DIR"));
}
