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
            // The metrics port on loopback, kernel-chosen (no clash with anything running
            // here); the scan reads this machine's root, read-only.
            .map(|a| match a.as_str() {
                "0.0.0.0:9276" => "127.0.0.1:0".to_string(),
                "/hostfs" => "/".to_string(),
                _ => a,
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

fn daemonset(docs: &[serde_yaml::Value]) -> &serde_yaml::Value {
    docs.iter()
        .find(|d| d["kind"] == "DaemonSet")
        .expect("DaemonSet")
}

/// Every container's command is one our CLI accepts: each flag known to its subcommand and
/// each value valid (`--help` at the end is reached only when everything before it parsed).
#[test]
fn every_flag_in_the_manifest_parses() {
    let docs = manifest();
    let spec = &daemonset(&docs)["spec"]["template"]["spec"];
    let mut checked = 0;
    for list in ["initContainers", "containers"] {
        for c in spec[list].as_sequence().into_iter().flatten() {
            let cmd: Vec<String> = c["command"]
                .as_sequence()
                .expect("command list")
                .iter()
                .map(|a| a.as_str().expect("string arg").to_string())
                .collect();
            assert_eq!(cmd[0], "/calico-preflight", "{cmd:?}");
            let args: Vec<String> = cmd[1..]
                .iter()
                .map(|a| a.replace("$(PREFLIGHT_ENTRY)", r#"{"type": "calico-preflight"}"#))
                .collect();
            let out = std::process::Command::new(bin("calico-preflight"))
                .args(&args)
                .arg("--help")
                .output()
                .expect("run");
            assert!(
                out.status.success(),
                "{}: {args:?}: {}",
                c["name"].as_str().unwrap_or("?"),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked >= 2, "init and main container");
}

/// The main container: the capabilities it needs and no others, each named with its reason in
/// the manifest; hostPID; host paths read-only except the two CNI dirs install writes; probes
/// and the scrape annotation on the port --metrics-addr serves.
#[test]
fn daemonset_capabilities_probes_and_metrics_port() {
    let docs = manifest();
    let ds = daemonset(&docs);
    let tmpl = &ds["spec"]["template"];
    let spec = &tmpl["spec"];
    assert_eq!(spec["hostPID"], true, "pods found through /proc");
    assert_eq!(spec["hostNetwork"], true);
    let main = &spec["containers"][0];
    let caps = &main["securityContext"]["capabilities"];
    assert_eq!(
        caps["drop"],
        serde_yaml::to_value(["ALL"]).unwrap(),
        "{caps:?}"
    );
    let added: Vec<&str> = caps["add"]
        .as_sequence()
        .expect("capabilities.add")
        .iter()
        .map(|c| c.as_str().expect("cap"))
        .collect();
    for need in ["SYS_ADMIN", "NET_ADMIN", "NET_RAW"] {
        assert!(added.contains(&need), "{need} missing: {added:?}");
    }
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/calico-preflight.yaml"),
    )
    .expect("manifest");
    for cap in &added {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(&format!("#   {cap} "))),
            "{cap} is not explained in the manifest"
        );
    }

    // --metrics-addr's port is the container's metrics port, the probes' and the annotation's.
    let cmd: Vec<&str> = main["command"]
        .as_sequence()
        .expect("command")
        .iter()
        .map(|a| a.as_str().expect("arg"))
        .collect();
    let addr = cmd
        .iter()
        .position(|a| *a == "--metrics-addr")
        .map(|i| cmd[i + 1])
        .expect("--metrics-addr in the main container");
    let port: u64 = addr.rsplit(':').next().unwrap().parse().expect("port");
    let ports = main["ports"].as_sequence().expect("ports");
    let named = ports
        .iter()
        .find(|p| p["containerPort"].as_u64() == Some(port))
        .expect("the metrics port listed");
    let resolves = |p: &serde_yaml::Value| p.as_u64() == Some(port) || *p == named["name"];
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &main[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}: {get:?}");
        assert!(resolves(&get["port"]), "{probe} port: {get:?}");
    }
    let ann = &tmpl["metadata"]["annotations"];
    assert_eq!(ann["prometheus.io/scrape"], "true");
    assert_eq!(ann["prometheus.io/port"], port.to_string().as_str());
    assert_eq!(ann["prometheus.io/path"], "/metrics");
    // The scans read the host through the read-only root.
    let h = cmd
        .iter()
        .position(|a| *a == "--host-root")
        .expect("--host-root");
    assert_eq!(cmd[h + 1], "/hostfs");

    // Nothing writable but the two CNI dirs: not the container's own root either (the image
    // is one binary; neither install nor the scans write anywhere else).
    for list in ["initContainers", "containers"] {
        for c in spec[list].as_sequence().expect("containers") {
            assert_eq!(
                c["securityContext"]["readOnlyRootFilesystem"], true,
                "{list}: {:?}",
                c["name"]
            );
        }
    }
    let writable = ["cni-bin-dir", "cni-net-dir"];
    for m in main["volumeMounts"].as_sequence().expect("mounts") {
        let name = m["name"].as_str().expect("name");
        if !writable.contains(&name) {
            assert_eq!(m["readOnly"], true, "{name} is only read: {m:?}");
        }
    }
}

/// A mount namespace seen as the DaemonSet's main container sees the host: the host's root
/// rbind-mounted at a dir with HostToContainer (rslave) propagation. The sleeping process
/// holds it; killed (and the empty mount point removed with rmdir, never recursively) on drop.
struct ContainerView {
    holder: std::process::Child,
    hostfs: std::path::PathBuf,
}

impl ContainerView {
    fn new() -> ContainerView {
        let hostfs = std::path::PathBuf::from(format!("/run/cp-hostfs-{}", std::process::id()));
        std::fs::create_dir_all(&hostfs).expect("mount point");
        let holder = std::process::Command::new("unshare")
            .args(["-m", "--propagation", "slave", "sh", "-c"])
            .arg(format!(
                "mount --rbind / {h} && mount --make-rslave {h} && exec sleep 300",
                h = hostfs.display()
            ))
            .spawn()
            .expect("unshare");
        let v = ContainerView { holder, hostfs };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mounted = |pid: u32| {
            std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
                .unwrap_or_default()
                .contains(&format!(" {} ", v.hostfs.display()))
        };
        while !mounted(v.holder.id()) {
            assert!(std::time::Instant::now() < deadline, "rbind not done");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        v
    }
}

impl Drop for ContainerView {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
        let _ = std::fs::remove_dir(&self.hostfs);
    }
}

/// The scan's view in the DaemonSet (`--host-root /hostfs`, the host's root mounted there
/// read-only with HostToContainer propagation): a pod whose namespace the runtime bind-mounts
/// under the host's /run/netns *after* the container started is found under
/// /hostfs/run/netns, and named by that path.
#[test]
fn the_containers_view_finds_pods_created_after_it_started() {
    let view = ContainerView::new();
    let host = Netns::new("dv-h");
    host.sysctl("net.ipv4.ip_forward", "1");
    let pod = Netns::new("dv-p");
    let env = CniEnv::new("ADD", &pod.path(), "eth0");
    wire_pod(&host, &env, serde_json::json!({"ips": ["10.244.9.1/32"]}));
    let hostfs = view.hostfs.display().to_string();
    let out = std::process::Command::new("nsenter")
        .arg(format!("--mount=/proc/{}/ns/mnt", view.holder.id()))
        .arg(format!("--net={}", host.path()))
        .arg(bin("calico-preflight"))
        .args([
            "doctor",
            "--json",
            "--no-proc-scan",
            "--no-probe",
            "--host-root",
            &hostfs,
        ])
        .output()
        .expect("doctor");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    let pods = report["pods"].as_array().expect("pods");
    assert_eq!(pods.len(), 1, "{report}");
    let want = format!("{hostfs}/run/netns/{}", pod.name);
    assert_eq!(pods[0]["netnsPath"], want.as_str(), "{report}");
}
