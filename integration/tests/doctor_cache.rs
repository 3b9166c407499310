//! doctor and libcni's result cache: pods wired by fake-calico in real namespaces, and a temp
//! cache dir holding the entries libcni would have written for them (containernetworking/cni
//! libcni/api.go `cacheAdd`): pods named `namespace/name`, `--pod`, the recreated-pod case,
//! `orphan-veth` and `leaked-cache-entry`.

use calico_preflight_integration::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

struct Pod {
    ns: Netns,
    env: CniEnv,
    result: Value,
}

struct Node {
    host: Netns,
    pods: Vec<Pod>,
    dir: TempDir,
}

impl Node {
    fn conf_dir(&self) -> PathBuf {
        self.dir.join("net.d")
    }
    fn cache_dir(&self) -> PathBuf {
        self.dir.join("cni")
    }
    /// The veth fake-calico reported for pod `i`.
    fn veth(&self, i: usize) -> String {
        self.pods[i].result["interfaces"][0]["name"]
            .as_str()
            .expect("host veth")
            .to_string()
    }
}

/// A node with one pod per `(namespace, name, knobs)`, Calico's conflist `k8s-pod-network`.
fn node(pods: &[(&str, &str, Value)]) -> Node {
    let host = Netns::new("dc-h");
    host.sysctl("net.ipv4.ip_forward", "1");
    let dir = TempDir::new(&format!("doctor-cache-{}", host.name)).create();
    let conf = dir.join("net.d");
    std::fs::create_dir_all(conf.join("bin")).expect("conf dir");
    let nodename = conf.join("nodename");
    std::fs::write(&nodename, "node-1").expect("nodename");
    let list = json!({"name": "k8s-pod-network", "cniVersion": "1.0.0", "plugins": [
        {"type": "calico", "ipam": {"type": "calico-ipam"}, "nodename_file": nodename},
        {"type": "calico-preflight"}]});
    std::fs::write(conf.join("10-calico.conflist"), list.to_string()).expect("conflist");
    for b in ["calico", "calico-ipam", "calico-preflight"] {
        let p = conf.join("bin").join(b);
        std::fs::write(&p, "#!/bin/sh\nexit 0\n").expect("stub plugin");
        sh(&["chmod", "755", &p.display().to_string()]);
    }
    let mut out = Vec::new();
    for (i, (k8s_ns, name, knobs)) in pods.iter().enumerate() {
        let ns = Netns::new("dc-p");
        // The runtime's path for the namespace is /var/run/netns/..., doctor finds it under
        // /run/netns: the same namespace by identity, not by string.
        let mut env = CniEnv::new("ADD", &format!("/var/run/netns/{}", ns.name), "eth0");
        env.args = format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={k8s_ns};K8S_POD_NAME={name};\
             K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID=uid-{name}",
            env.container_id
        );
        let mut k = json!({"ips": [format!("10.244.8.{}/32", i + 1)]});
        for (key, v) in knobs.as_object().into_iter().flatten() {
            k[key] = v.clone();
        }
        let result = wire_pod(&host, &env, k);
        out.push(Pod { ns, env, result });
    }
    Node {
        host,
        pods: out,
        dir,
    }
}

/// The entry libcni writes after a successful ADD: `results/<network>-<containerID>-<ifName>`,
/// `config` as Go encodes a []byte (base64), cniArgs as [[k, v], ...].
fn write_entry(cache: &Path, network: &str, cid: &str, netns: &str, args: &str, result: &Value) {
    let results = cache.join("results");
    std::fs::create_dir_all(&results).expect("results dir");
    let cni_args: Vec<Value> = args
        .split(';')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| json!([k, v]))
        .collect();
    let entry = json!({
        "kind": "cniCacheV1",
        "containerId": cid,
        "config": "eyJjbmlWZXJzaW9uIjoiMS4wLjAifQ==",
        "ifName": "eth0",
        "networkName": network,
        "netns": netns,
        "cniArgs": cni_args,
        "capabilityArgs": {"io.kubernetes.cri.pod-annotations": {}},
        "result": result,
    });
    std::fs::write(
        results.join(format!("{network}-{cid}-eth0")),
        entry.to_string(),
    )
    .expect("cache entry");
}

/// An entry of Calico's network whose sandbox (a namespace made and deleted here) and host
/// link `veth` are both gone: DEL never ran.
fn write_leaked_entry(n: &Node, veth: &str, ip: &str) {
    let gone = Netns::new("dc-gone");
    let gone_path = format!("/var/run/netns/{}", gone.name);
    drop(gone);
    write_entry(
        &n.cache_dir(),
        "k8s-pod-network",
        "c-leaked",
        &gone_path,
        "K8S_POD_NAMESPACE=default;K8S_POD_NAME=old-1",
        &json!({"cniVersion": "1.0.0",
                "interfaces": [{"name": veth}, {"name": "eth0", "sandbox": gone_path}],
                "ips": [{"address": ip, "interface": 1}]}),
    );
}

fn write_pod_entry(n: &Node, i: usize) {
    let p = &n.pods[i];
    write_entry(
        &n.cache_dir(),
        "k8s-pod-network",
        &p.env.container_id,
        &p.env.netns,
        &p.env.args,
        &p.result,
    );
}

fn doctor(n: &Node, extra: &[&str]) -> PluginRun {
    let conf = n.conf_dir();
    let mut args: Vec<std::ffi::OsString> =
        ["doctor", "--netns-dir", "/run/netns", "--no-proc-scan"]
            .map(Into::into)
            .into();
    args.extend(["--conf-dir".into(), conf.clone().into()]);
    args.extend(["--cni-bin-dir".into(), conf.join("bin").into()]);
    args.extend(["--containerd-config", "none", "--crio-config", "none"].map(Into::into));
    args.extend(["--cni-cache-dir".into(), n.cache_dir().into()]);
    // The pods here are seconds old: judged as if wired long ago (the default grace is
    // tested on its own).
    args.extend(
        grace(extra)
            .into_iter()
            .chain(extra.iter().copied())
            .map(Into::into),
    );
    preflight_in(&n.host.path(), &args)
}

/// `--orphan-grace-seconds 0` unless the test gives its own.
fn grace(extra: &[&str]) -> Vec<&'static str> {
    if extra.contains(&"--orphan-grace-seconds") {
        vec![]
    } else {
        vec!["--orphan-grace-seconds", "0"]
    }
}

fn json_doctor(n: &Node, extra: &[&str]) -> (PluginRun, Value) {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let run = doctor(n, &args);
    let v = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {run:?}"));
    (run, v)
}

fn pod_by_veth<'a>(v: &'a Value, veth: &str) -> &'a Value {
    v["pods"]
        .as_array()
        .expect("pods")
        .iter()
        .find(|p| p["hostVeth"] == veth)
        .unwrap_or_else(|| panic!("no pod on {veth}: {v:#}"))
}

#[test]
fn pods_are_named_in_text_and_json_and_a_healthy_node_has_no_new_findings() {
    let n = node(&[
        ("default", "web-0", json!({})),
        ("kube-system", "dns-1", json!({})),
    ]);
    write_pod_entry(&n, 0);
    write_pod_entry(&n, 1);
    let (run, v) = json_doctor(&n, &[]);
    assert_eq!(run.status, 0, "{run:?}");
    let web = pod_by_veth(&v, &n.veth(0));
    assert_eq!(web["k8sNamespace"], "default");
    assert_eq!(web["k8sPod"], "web-0");
    assert_eq!(web["k8sPodUid"], "uid-web-0");
    assert_eq!(web["containerId"], n.pods[0].env.container_id.as_str());
    // Every key doctor reported before is still there.
    for k in [
        "hostVeth",
        "pod",
        "netnsPath",
        "interface",
        "ips",
        "findings",
    ] {
        assert!(web.get(k).is_some(), "{k} missing: {web:#}");
    }
    assert_eq!(web["pod"], n.pods[0].ns.name.as_str());
    assert_eq!(pod_by_veth(&v, &n.veth(1))["k8sPod"], "dns-1");
    assert_eq!(v["cniCache"]["calicoEntries"], 2, "{v:#}");
    assert_eq!(v["node"], json!([]), "{v:#}");

    let text = doctor(&n, &[]);
    assert_eq!(text.status, 0, "{text:?}");
    let row = text
        .stdout
        .lines()
        .find(|l| l.contains(&n.veth(0)))
        .unwrap_or_else(|| panic!("{}", text.stdout));
    assert!(
        row.contains(&format!("default/web-0 ({})", n.pods[0].ns.name)),
        "{row}"
    );
    assert!(text.stdout.contains("kube-system/dns-1"), "{}", text.stdout);

    // A broken pod's finding lines name it namespace/name too.
    let b = node(&[("default", "api-2", json!({"break": ["no-host-route"]}))]);
    write_pod_entry(&b, 0);
    let run = doctor(&b, &[]);
    assert_eq!(run.status, 2, "{run:?}");
    let label = format!("[ERROR host-route] pod default/api-2 ({}):", b.veth(0));
    assert!(run.stdout.contains(&label), "{}", run.stdout);
}

#[test]
fn pod_selects_one_pod_and_an_unknown_one_is_reported() {
    let n = node(&[
        ("default", "web-0", json!({})),
        ("default", "web-1", json!({"break": ["no-host-route"]})),
    ]);
    write_pod_entry(&n, 0);
    write_pod_entry(&n, 1);
    // The broken pod is not the one asked for: healthy.
    let (run, v) = json_doctor(&n, &["--pod", "default/web-0"]);
    assert_eq!(run.status, 0, "{run:?}");
    let pods = v["pods"].as_array().expect("pods");
    assert_eq!(pods.len(), 1, "{v:#}");
    assert_eq!(pods[0]["k8sPod"], "web-0");
    let (run, v) = json_doctor(&n, &["--pod=default/web-1"]);
    assert_eq!(run.status, 2, "{run:?}");
    assert_eq!(v["pods"][0]["k8sPod"], "web-1");

    let run = doctor(&n, &["--pod", "default/nope"]);
    assert_eq!(run.status, 4, "{run:?}");
    assert!(
        run.stdout
            .starts_with("No pod default/nope on this node's cali* links (2 pod(s) found: "),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("default/web-0"), "{}", run.stdout);
    let (_, v) = json_doctor(&n, &["--pod", "default/nope"]);
    assert_eq!(v["podNotFound"]["pod"], "default/nope", "{v:#}");
    assert_eq!(v["podNotFound"]["podsFound"], 2);
    assert_eq!(v["exitCode"], 4);
    for bad in ["web-0", "/web-0", "default/", "a/b/c"] {
        assert_eq!(doctor(&n, &["--pod", bad]).status, 64, "{bad}");
    }
}

#[test]
fn a_recreated_pod_is_named_by_the_entry_of_its_live_sandbox() {
    // The StatefulSet pod's predecessor had the same host veth name (a hash of
    // namespace.name) and its DEL never ran: its entry remains, with its removed sandbox.
    let veth = "cali5f3a1b2c3d4";
    let n = node(&[("default", "db-0", json!({"hostVeth": veth}))]);
    write_pod_entry(&n, 0);
    let gone = Netns::new("dc-gone");
    let gone_path = format!("/var/run/netns/{}", gone.name);
    drop(gone);
    let mut old = n.pods[0].result.clone();
    old["interfaces"][1]["sandbox"] = json!(gone_path);
    // Sorts before the live pod's entry: the match is not "the first file".
    write_entry(
        &n.cache_dir(),
        "k8s-pod-network",
        "0000old",
        &gone_path,
        "K8S_POD_NAMESPACE=default;K8S_POD_NAME=db-0;K8S_POD_UID=uid-old",
        &old,
    );
    let (run, v) = json_doctor(&n, &[]);
    assert_eq!(run.status, 0, "{run:?}");
    let p = pod_by_veth(&v, veth);
    assert_eq!(p["k8sPodUid"], "uid-db-0", "{v:#}");
    assert_eq!(p["containerId"], n.pods[0].env.container_id.as_str());
    // The old entry's link is there (the new pod's): no leak; the pod is claimed: no orphan.
    assert_eq!(v["node"], json!([]), "{v:#}");
}

#[test]
fn orphan_veths_and_leaked_entries_are_found_only_where_the_cache_is_in_use() {
    let n = node(&[
        ("default", "web-0", json!({})),
        ("default", "stray", json!({})),
    ]);
    // No cache dir at all (a runtime that keeps none): nothing to reconcile.
    let (run, v) = json_doctor(&n, &[]);
    assert_eq!(run.status, 0, "{run:?}");
    assert!(v.get("cniCache").is_none(), "{v:#}");
    // Only another network's entries: the runtime's cache for Calico's pods is elsewhere.
    write_entry(
        &n.cache_dir(),
        "bridge-net",
        "c-other",
        "/var/run/netns/none",
        "",
        &json!({"cniVersion": "1.0.0", "interfaces": [{"name": "cni0"}], "ips": []}),
    );
    let (run, _) = json_doctor(&n, &[]);
    assert_eq!(run.status, 0, "{run:?}");

    // The runtime records web-0; nothing claims the other wired pod.
    write_pod_entry(&n, 0);
    // And an entry of a pod whose sandbox and host veth are both gone (DEL never ran).
    write_leaked_entry(&n, "cali0deadbeef00", "10.244.8.99/32");
    // A pod namespace younger than the grace period is being wired (libcni writes the entry
    // after the whole chain's ADD): no orphan yet.
    let (run, v) = json_doctor(&n, &["--orphan-grace-seconds", "120"]);
    let young = pod_by_veth(&v, &n.veth(1));
    assert_eq!(young["findings"], json!([]), "{run:?}");
    let (run, v) = json_doctor(&n, &[]);
    assert_eq!(run.status, 1, "{run:?}");
    let stray = pod_by_veth(&v, &n.veth(1));
    assert_eq!(stray["k8sPod"], Value::Null);
    let f = stray["findings"].as_array().expect("findings");
    assert_eq!(f.len(), 1, "{stray:#}");
    assert_eq!(f[0]["check"], "orphan-veth");
    assert_eq!(f[0]["severity"], "warn");
    assert_eq!(f[0]["object"], format!("host veth {}", n.veth(1)));
    assert_eq!(pod_by_veth(&v, &n.veth(0))["findings"], json!([]));
    let node_f = v["node"].as_array().expect("node");
    assert_eq!(node_f.len(), 1, "{v:#}");
    assert_eq!(node_f[0]["check"], "leaked-cache-entry");
    assert!(
        node_f[0]["object"]
            .as_str()
            .unwrap()
            .contains("k8s-pod-network-c-leaked-eth0 (pod default/old-1, container c-leaked)"),
        "{v:#}"
    );
    assert!(
        node_f[0]["found"].as_str().unwrap().contains("10.244.8.99"),
        "{v:#}"
    );

    // The text report names both.
    let text = doctor(&n, &[]);
    assert!(
        text.stdout.contains(&format!(
            "[WARNING orphan-veth] pod {} ({}):",
            n.pods[1].ns.name,
            n.veth(1)
        )),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout
            .contains("[WARNING leaked-cache-entry] node: the attachment's sandbox"),
        "{}",
        text.stdout
    );
}

/// Through a real runtime: containerd's CRI writes the cache entry itself (its default dir,
/// /var/lib/cni), with the kubelet's pod name and namespace from the sandbox config.
#[test]
fn doctor_names_a_pod_containerd_started() {
    use calico_preflight_integration::cri::{self, Containerd};
    cri::available().unwrap_or_else(|e| panic!("{e}"));
    let dir = TempDir::new("dc-cri-bin");
    let (fc, cp) = (bin("fake-calico"), bin("calico-preflight"));
    cri::make_bin_dir(
        dir.path(),
        &[
            ("fake-calico", fc.as_path()),
            ("calico-preflight", cp.as_path()),
        ],
    )
    .expect("bin dir");
    let c = Containerd::start(dir.path()).unwrap_or_else(|e| panic!("containerd: {e}"));
    let list = json!({"cniVersion": "1.0.0", "name": "k8s-pod-network", "plugins": [
        {"type": "fake-calico", "ips": ["10.244.7.9/32"]},
        {"type": "calico-preflight", "mode": "warn"}]});
    c.set_conflist(&list.to_string()).expect("conflist");
    let sb = c
        .run_pod_sandbox("web-7", "shop")
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", c.log_tail(30)));
    let out = std::process::Command::new("timeout")
        .args(["30", "nsenter"])
        .arg(format!("--net=/run/netns/{}", c.netns_name()))
        .arg(bin("calico-preflight"))
        .args([
            "doctor",
            "--json",
            "--netns-dir",
            "/run/netns",
            "--no-proc-scan",
        ])
        .arg("--conf-dir")
        .arg(c.work_dir().join("net.d"))
        .args(["--containerd-config", "none", "--crio-config", "none"])
        .output()
        .expect("run doctor");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let pods = v["pods"].as_array().expect("pods").clone();
    let removed = c.stop_and_remove(&sb.id);
    assert_eq!(pods.len(), 1, "{v:#}");
    assert_eq!(pods[0]["k8sNamespace"], "shop", "{v:#}");
    assert_eq!(pods[0]["k8sPod"], "web-7", "{v:#}");
    assert_eq!(pods[0]["containerId"], sb.id.as_str(), "{v:#}");
    assert!(pods[0]["k8sPodUid"].is_string(), "{v:#}");
    removed.expect("stop/remove");
}

/// A KubeVirt migration target (calico-ipam returned no routes, Calico skipped the host route:
/// k8s.go `skipHostSideRoutes`): doctor, knowing the pod's name and result from the cache,
/// warns as ADD does; the same wiring for another pod name is an error.
#[test]
fn a_kubevirt_migration_target_warns_as_in_add() {
    let n = node(&[
        (
            "vms",
            "virt-launcher-vm1-x7k2p",
            json!({"break": ["no-host-route"]}),
        ),
        ("default", "web-0", json!({"break": ["no-host-route"]})),
    ]);
    write_pod_entry(&n, 0);
    write_pod_entry(&n, 1);
    let (run, v) = json_doctor(&n, &[]);
    assert_eq!(run.status, 2, "{run:?}");
    let severity = |i: usize| {
        pod_by_veth(&v, &n.veth(i))["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .find(|f| f["check"] == "host-route")
            .map(|f| f["severity"].clone())
    };
    assert_eq!(severity(0), Some(json!("warn")), "{v:#}");
    assert_eq!(severity(1), Some(json!("error")), "{v:#}");
}

/// `--pod` reports one pod but judges it against every pod of the node: a duplicate IP held by
/// a pod that was not asked about is still found.
#[test]
fn pod_selection_still_sees_a_duplicate_ip_on_another_pod() {
    let n = node(&[
        ("default", "web-0", json!({})),
        ("default", "web-1", json!({})),
    ]);
    write_pod_entry(&n, 0);
    write_pod_entry(&n, 1);
    // web-1 also holds web-0's address (calico#13858).
    n.pods[1]
        .ns
        .ip(&["addr", "add", "10.244.8.1/32", "dev", "eth0"]);
    let (run, v) = json_doctor(&n, &["--pod", "default/web-0"]);
    assert_eq!(run.status, 2, "{run:?}");
    let pods = v["pods"].as_array().expect("pods");
    assert_eq!(pods.len(), 1, "{v:#}");
    assert_eq!(pods[0]["k8sPod"], "web-0");
    let dup = pods[0]["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["check"] == "duplicate-pod-ip")
        .unwrap_or_else(|| panic!("no duplicate-pod-ip: {v:#}"));
    assert!(
        dup.to_string().contains(&n.veth(1)),
        "the other holder is not named: {dup:#}"
    );
}

/// Multus with Calico as a secondary network (net1) of a pod whose cluster network is another
/// plugin: the runtime's one entry is Multus's (`multus-cni-network`), whose result is the
/// primary network's (bridge-like: its own host veth, the pod's eth0); Calico's attachment is
/// recorded only in Multus's own cache. The pod's sandbox is the entry's: the runtime knows the
/// pod, so its cali link is no orphan, and the pod is named from that entry.
#[test]
fn an_entry_of_the_pods_sandbox_claims_its_calico_link() {
    let n = node(&[
        ("default", "web-0", json!({})),
        ("cnf", "router-1", json!({})),
    ]);
    // web-0: Calico is the primary network, its entry names the cali link.
    write_pod_entry(&n, 0);
    // router-1: only Multus's entry, naming the primary network's links, not Calico's.
    let p = &n.pods[1];
    write_entry(
        &n.cache_dir(),
        "multus-cni-network",
        &p.env.container_id,
        &p.env.netns,
        &p.env.args,
        &json!({"cniVersion": "0.3.1",
                "interfaces": [{"name": "veth5e2a91c0"},
                               {"name": "eth0", "mac": "0a:58:0a:f4:00:05",
                                "sandbox": p.env.netns}],
                "ips": [{"version": "4", "address": "10.128.0.5/23", "interface": 1}]}),
    );
    let (run, v) = json_doctor(&n, &[]);
    assert_eq!(run.status, 0, "{run:?}");
    let r = pod_by_veth(&v, &n.veth(1));
    assert_eq!(r["findings"], json!([]), "{v:#}");
    assert_eq!(r["k8sPod"], "router-1", "{v:#}");
    assert_eq!(v["node"], json!([]), "{v:#}");
    let (run, v) = json_doctor(&n, &["--pod", "cnf/router-1"]);
    assert_eq!(run.status, 0, "{run:?}");
    assert_eq!(v["pods"].as_array().map(Vec::len), Some(1), "{v:#}");
}

/// Calico <= v3.30 (its result lists only the host veth, no sandbox) with libcni < 1.2 (no
/// `netns` in the entry: containerd 1.7): no entry says which sandbox it is. A recreated
/// StatefulSet pod whose predecessor's DEL never ran has two entries naming its link: which
/// container is the live one cannot be told, but both name the same pod, so the pod is named
/// (and `--pod` finds it); its uid and container stay unknown.
#[test]
fn a_recreated_pod_without_sandboxes_in_its_entries_is_still_named() {
    let veth = "cali77aa1b2c3d4";
    let n = node(&[(
        "default",
        "db-0",
        json!({"hostVeth": veth, "shape": "v3.30"}),
    )]);
    let p = &n.pods[0];
    for (cid, uid) in [
        (p.env.container_id.as_str(), "uid-new"),
        ("0000old", "uid-old"),
    ] {
        write_entry(
            &n.cache_dir(),
            "k8s-pod-network",
            cid,
            &p.env.netns,
            &format!("K8S_POD_NAMESPACE=default;K8S_POD_NAME=db-0;K8S_POD_UID={uid}"),
            &p.result,
        );
    }
    // libcni < 1.2 wrote no netns.
    for f in std::fs::read_dir(n.cache_dir().join("results")).expect("results") {
        let f = f.expect("entry").path();
        let mut e: Value = serde_json::from_slice(&std::fs::read(&f).expect("read")).expect("json");
        e.as_object_mut().expect("object").remove("netns");
        std::fs::write(&f, e.to_string()).expect("write");
    }
    let (run, v) = json_doctor(&n, &[]);
    assert_eq!(run.status, 0, "{run:?}");
    let r = pod_by_veth(&v, veth);
    assert_eq!(r["k8sNamespace"], "default", "{v:#}");
    assert_eq!(r["k8sPod"], "db-0", "{v:#}");
    assert_eq!(r["k8sPodUid"], Value::Null, "{v:#}");
    assert_eq!(r["containerId"], Value::Null, "{v:#}");
    let (run, v) = json_doctor(&n, &["--pod", "default/db-0"]);
    assert_eq!(run.status, 0, "{run:?}");
    assert_eq!(v["pods"].as_array().map(Vec::len), Some(1), "{v:#}");
}

/// A runtime that writes its cache elsewhere now (or no longer keeps one), over a default dir
/// that still holds Calico entries of sandboxes long gone: those leaks are reported, but they
/// are no evidence that the runtime records today's pods here, so no live pod is an orphan.
#[test]
fn only_stale_entries_do_not_make_live_pods_orphans() {
    let n = node(&[("default", "web-0", json!({}))]);
    write_leaked_entry(&n, "cali0deadbeef01", "10.244.8.98/32");
    let (run, v) = json_doctor(&n, &[]);
    assert_eq!(run.status, 1, "{run:?}");
    assert_eq!(pod_by_veth(&v, &n.veth(0))["findings"], json!([]), "{v:#}");
    assert_eq!(v["node"][0]["check"], "leaked-cache-entry", "{v:#}");
}

/// doctor run outside the host's network namespace (NPD's or another container without
/// hostNetwork): no cali link is there, and no entry's link; sandboxes it cannot see look
/// removed (a /proc/<pid> one outside the host's pid namespace). Reporting every entry as
/// leaked, with "delete the entry" as the remedy, would break live pods' DEL: it says nothing.
#[test]
fn no_leaks_are_judged_from_outside_the_hosts_network_namespace() {
    let n = node(&[]);
    write_entry(
        &n.cache_dir(),
        "k8s-pod-network",
        "c-live-elsewhere",
        "/proc/999999999/ns/net",
        "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0",
        &json!({"cniVersion": "1.0.0",
                "interfaces": [{"name": "cali0feedbeef02"},
                               {"name": "eth0", "sandbox": "/proc/999999999/ns/net"}],
                "ips": [{"address": "10.244.8.97/32", "interface": 1}]}),
    );
    let (run, v) = json_doctor(&n, &[]);
    assert_eq!(run.status, 0, "{run:?}");
    assert_eq!(v["node"], json!([]), "{v:#}");
    assert_eq!(v["cniCache"]["calicoEntries"], 1, "{v:#}");
}

/// A cali link whose peer's namespace no bind mount holds (here: only a process doctor is told
/// not to scan): the pod's sandbox is gone as far as the node shows, an `orphan-veth`, with
/// the `host-veth` warning it always had; cache or not.
#[test]
fn a_link_whose_peer_namespace_is_gone_is_an_orphan_veth() {
    let n = node(&[("default", "web-0", json!({}))]);
    // A namespace held only by a process, outside the netns dirs.
    let mut holder = std::process::Command::new("nsenter")
        .arg(format!("--net={}", n.host.path()))
        .args(["unshare", "--net", "sleep", "60"])
        .spawn()
        .expect("start a namespace holder");
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let pid = holder.id();
    let _guard = Kill(&mut holder);
    // nsenter and unshare exec in turn (neither forks): once the process is `sleep`, it is in
    // its own namespace. Never before: the link's peer would land in nsenter's or ours.
    let in_own_netns = (0..250).any(|_| {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
        let done = exe.file_name().is_some_and(|n| n == "sleep");
        if !done {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        done
    });
    assert!(in_own_netns, "the namespace holder did not start");
    let holder_pid = pid.to_string();
    let link = "cali0rphan00001";
    n.host.ip(&[
        "link",
        "add",
        link,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        &holder_pid,
    ]);
    n.host.ip(&["link", "set", link, "up"]);
    let (run, v) = json_doctor(&n, &[]);
    let p = pod_by_veth(&v, link);
    let checks: Vec<&str> = p["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["check"].as_str())
        .collect();
    assert_eq!(checks, ["host-veth", "orphan-veth"], "{run:?}");
    assert_eq!(run.status, 1, "warnings only: {run:?}");
}
