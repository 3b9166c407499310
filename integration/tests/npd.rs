//! node-problem-detector: deploy/node-problem-detector/calico-preflight-monitor.json against
//! NPD's own rules (kubernetes/node-problem-detector pkg/custompluginmonitor/types/config.go
//! `Validate`), its rules run as NPD runs them (path and args as written, the host's root at
//! /host) against a throw-away node with Calico-wired pods, and `doctor --npd`'s exit statuses
//! as NPD reads them (plugin.go: 0 OK, 1 NonOK, anything else Unknown).

use calico_preflight_integration::*;
use serde::Deserialize;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn monitor_text() -> String {
    std::fs::read_to_string(repo(
        "deploy/node-problem-detector/calico-preflight-monitor.json",
    ))
    .expect("monitor config")
}

fn monitor() -> Value {
    serde_json::from_str(&monitor_text()).expect("the monitor config is JSON")
}

/// Go's time.ParseDuration for the units NPD configs use ("1m30s", "500ms", "5s").
fn go_duration(s: &str) -> Duration {
    assert!(!s.is_empty(), "empty duration");
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or_else(|| panic!("{s:?}: a number without a unit"));
        let value: f64 = rest[..n]
            .parse()
            .unwrap_or_else(|_| panic!("{s:?}: bad number"));
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            other => panic!("{s:?}: unit {other:?} is not Go's"),
        };
        total += Duration::from_secs_f64(value * unit);
        rest = &rest[u..];
    }
    total
}

#[test]
fn go_durations_parse_as_go_does() {
    assert_eq!(go_duration("5s"), Duration::from_secs(5));
    assert_eq!(go_duration("500ms"), Duration::from_millis(500));
    assert_eq!(go_duration("1m30s"), Duration::from_secs(90));
    assert_eq!(go_duration("1.5h"), Duration::from_secs(5400));
}

/// The value after `flag` in a rule's args.
fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn rule_args(rule: &Value) -> Vec<String> {
    rule["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().expect("args are strings").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// NPD's Validate and ApplyConfiguration, plus what our doctor needs of the rules.
#[test]
fn monitor_config_passes_npds_validation() {
    let c = monitor();
    assert_eq!(c["plugin"], "custom", "NPD only supports the custom plugin");
    let g = &c["pluginConfig"];
    let global_timeout = go_duration(g["timeout"].as_str().expect("global timeout"));
    let interval = go_duration(g["invoke_interval"].as_str().expect("invoke_interval"));
    assert!(interval > Duration::ZERO);
    let max_len = g["max_output_length"].as_u64().expect("max_output_length");
    assert!(
        (1..=4096).contains(&max_len),
        "NPD reads at most 4096 bytes"
    );
    assert!(g["concurrency"].as_u64().expect("concurrency") >= 1);
    assert!(!c["source"].as_str().unwrap_or_default().is_empty());

    let conditions: Vec<&str> = c["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .map(|d| {
            assert!(!d["reason"].as_str().unwrap_or_default().is_empty(), "{d}");
            assert!(!d["message"].as_str().unwrap_or_default().is_empty(), "{d}");
            d["type"].as_str().expect("condition type")
        })
        .collect();
    assert!(conditions.contains(&"CalicoPodNetwork"));

    let rules = c["rules"].as_array().expect("rules");
    let mut types = vec![];
    for r in rules {
        let ty = r["type"].as_str().expect("rule type");
        assert!(
            ty == "temporary" || ty == "permanent",
            "rule type {ty:?}: NPD knows temporary and permanent"
        );
        types.push(ty);
        if ty == "permanent" {
            let cond = r["condition"]
                .as_str()
                .expect("a permanent rule's condition");
            assert!(
                conditions.contains(&cond),
                "permanent problem {cond} does not have preset default condition"
            );
        }
        assert!(!r["reason"].as_str().unwrap_or_default().is_empty(), "{r}");
        let timeout = r["timeout"].as_str().map(go_duration);
        if let Some(t) = timeout {
            assert!(
                t <= global_timeout,
                "plugin timeout is greater than global timeout: {r}"
            );
        }
        if let Some(i) = r["invoke_interval"].as_str() {
            assert!(go_duration(i) > Duration::ZERO, "{r}");
        }
        let path = r["path"].as_str().expect("path");
        assert!(
            Path::new(path).is_absolute(),
            "NPD stats the path at start: {path}"
        );
        // What the wrapper execs: our doctor in NPD mode, whose own bound fits in NPD's and
        // whose line is NPD's length.
        let args = rule_args(r);
        let doctor = args
            .iter()
            .position(|a| a == "doctor")
            .expect("the rule runs doctor");
        assert!(args[doctor - 1].ends_with("/calico-preflight"), "{args:?}");
        assert!(args.contains(&"--npd".to_string()));
        assert_eq!(
            args.contains(&"--npd-warnings".to_string()),
            ty == "temporary",
            "the permanent rule judges errors, the temporary one warnings too: {args:?}"
        );
        assert_eq!(flag_value(&args, "--host-root"), Some("/host"));
        assert_eq!(
            flag_value(&args, "--max-output-length"),
            Some(max_len.to_string().as_str())
        );
        let ms: u64 = flag_value(&args, "--timeout-ms")
            .expect("--timeout-ms")
            .parse()
            .expect("ms");
        let bound = timeout.unwrap_or(global_timeout);
        assert!(
            Duration::from_millis(ms) * 2 < bound,
            "doctor's --timeout-ms {ms} must fit well inside the rule's timeout {bound:?}"
        );
    }
    types.sort();
    assert_eq!(types, ["permanent", "temporary"]);
}

/// The same config as a ConfigMap in the DaemonSet manifest, byte for byte.
#[test]
fn manifest_carries_the_monitor_config_as_a_configmap() {
    let text = std::fs::read_to_string(repo("deploy/calico-preflight.yaml")).expect("manifest");
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde_yaml::Value::deserialize(d).expect("yaml document"))
        .collect();
    let cm = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "calico-preflight-npd")
        .expect("ConfigMap calico-preflight-npd");
    let ds_ns = docs
        .iter()
        .find(|d| d["kind"] == "DaemonSet")
        .map(|d| d["metadata"]["namespace"].clone())
        .expect("DaemonSet");
    assert_eq!(cm["metadata"]["namespace"], ds_ns);
    assert_eq!(
        cm["data"]["calico-preflight-monitor.json"].as_str(),
        Some(monitor_text().as_str()),
        "the ConfigMap's data must be deploy/node-problem-detector/calico-preflight-monitor.json"
    );
}

/// A node as NPD's pod sees it: the host's root in a temp dir (our `/host`), with Calico's
/// conflist, the CNI binaries (ours the one under test), calico-node's nodename file; pods
/// wired by fake-calico in a host namespace of their own.
struct Node {
    host: Netns,
    pods: Vec<Netns>,
    root: TempDir,
}

impl Node {
    fn new(faults: &[&[&str]]) -> Node {
        let host = Netns::new("npd-h");
        host.sysctl("net.ipv4.ip_forward", "1");
        let root = TempDir::new("npd-root").create();
        let n = Node {
            host,
            pods: vec![],
            root,
        };
        n.write("/var/lib/calico/nodename", "node-1", false);
        n.conflist(json!({"type": "calico-preflight"}));
        // The stubs' interpreter, as the cni-binary-runnable check looks for it: under the root.
        n.write("/bin/sh", "stub interpreter\n", true);
        for b in ["calico", "calico-ipam", "portmap"] {
            n.write(&format!("/opt/cni/bin/{b}"), "#!/bin/sh\nexit 0\n", true);
        }
        // Ours is this build, dynamically linked: its loader (PT_INTERP) must be there too.
        for loader in ["/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1"] {
            if Path::new(loader).exists() {
                n.write(loader, "stub loader\n", true);
            }
        }
        let ours = n.path("/opt/cni/bin/calico-preflight");
        std::fs::copy(bin("calico-preflight"), &ours).expect("install the binary under test");
        let mut n = n;
        for (i, f) in faults.iter().enumerate() {
            let pod = Netns::new("npd-p");
            let env = CniEnv::new("ADD", &pod.path(), "eth0");
            wire_pod(
                &n.host,
                &env,
                json!({"ips": [format!("10.244.7.{}/32", i + 1)], "break": f}),
            );
            n.pods.push(pod);
        }
        n
    }
    fn path(&self, host_path: &str) -> PathBuf {
        self.root.join(host_path.trim_start_matches('/'))
    }
    fn write(&self, host_path: &str, text: &str, exec: bool) {
        let p = self.path(host_path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, text).expect("write");
        if exec {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
    }
    fn conflist(&self, preflight: Value) {
        let list = json!({"name": "k8s-pod-network", "cniVersion": "1.0.0", "plugins": [
            {"type": "calico", "ipam": {"type": "calico-ipam"}}, preflight, {"type": "portmap"}]});
        self.write(
            "/etc/cni/net.d/10-calico.conflist",
            &list.to_string(),
            false,
        );
    }

    /// Runs `cmd` as NPD's container would, in the node's host namespace: `/host` in its
    /// arguments is the temp root, and the host's /run/netns (where `ip netns` keeps the
    /// pods) is bind-mounted at the root's /run/netns in a mount namespace of its own, gone
    /// when the command exits. A hung run fails the test (exit 124) instead of the suite.
    fn run_as_npd(&self, cmd: &[String]) -> PluginRun {
        let root = self.root.display().to_string();
        let cmd: Vec<String> = cmd
            .iter()
            .map(|a| match a.strip_prefix("/host") {
                Some(rest) if rest.is_empty() || rest.starts_with('/') => format!("{root}{rest}"),
                _ => a.clone(),
            })
            .collect();
        let netns = self.path("/run/netns");
        std::fs::create_dir_all(&netns).expect("mount point");
        let out = std::process::Command::new("timeout")
            .args(["30", "nsenter"])
            .arg(format!("--net={}", self.host.path()))
            .args(["unshare", "--mount", "--propagation", "private", "sh", "-c"])
            .arg(r#"mount --rbind /run/netns "$0" && exec "$@""#)
            .arg(&netns)
            .args(&cmd)
            .output()
            .expect("run the rule");
        let run = PluginRun {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            status: out.status.code().unwrap_or(-1),
        };
        assert_ne!(run.status, 124, "the rule hung: {run:?}");
        run
    }

    /// The rule of `ty` from the shipped config, run as written.
    fn rule(&self, ty: &str) -> PluginRun {
        let c = monitor();
        let r = c["rules"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["type"] == ty))
            .expect("rule")
            .clone();
        let mut cmd = vec![r["path"].as_str().expect("path").to_string()];
        cmd.extend(rule_args(&r));
        self.run_as_npd(&cmd)
    }

    /// `calico-preflight doctor --npd` + `extra` against this node, the rule's way.
    fn doctor(&self, extra: &[&str]) -> PluginRun {
        let mut cmd: Vec<String> = [
            "/host/opt/cni/bin/calico-preflight",
            "doctor",
            "--npd",
            "--host-root",
            "/host",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        cmd.extend(extra.iter().map(|s| s.to_string()));
        self.run_as_npd(&cmd)
    }
}

fn max_len() -> usize {
    monitor()["pluginConfig"]["max_output_length"]
        .as_u64()
        .expect("max_output_length") as usize
}

/// NPD's view of stdout: trimmed (plugin.go); ours must be one line within the limit already.
fn one_line(run: &PluginRun, max: usize) -> String {
    let line = run.stdout.trim().to_string();
    assert!(
        run.stdout.ends_with('\n') && run.stdout.matches('\n').count() == 1,
        "exactly one line on stdout: {run:?}"
    );
    assert!(line.len() <= max, "{} bytes > {max}: {line:?}", line.len());
    line
}

#[test]
fn rules_as_written_judge_a_real_node() {
    let max = max_len();
    let healthy = Node::new(&[&[], &[]]);
    let p = healthy.rule("permanent");
    assert_eq!(p.status, 0, "{p:?}");
    assert_eq!(
        one_line(&p, max),
        "calico-preflight: node and 2 pods healthy",
        "{p:?}"
    );
    let t = healthy.rule("temporary");
    assert_eq!(t.status, 0, "{t:?}");

    // A pod whose host route is missing (an error) and one whose veth MAC is not Calico's (a
    // warning): the condition names the broken pod; warnings are the temporary rule's.
    let broken = Node::new(&[&[], &["no-host-route"], &["no-host-mac"]]);
    let p = broken.rule("permanent");
    assert_eq!(p.status, 1, "{p:?}");
    let line = one_line(&p, max);
    assert!(
        line.starts_with(&format!(
            "1 pod broken: host-route on {}",
            broken.pods[1].name
        )),
        "{line}"
    );
    assert!(
        p.stderr.contains("[ERROR host-route]"),
        "the full finding for NPD's log: {p:?}"
    );
    let t = broken.rule("temporary");
    assert_eq!(t.status, 1, "{t:?}");
    let line = one_line(&t, max);
    assert!(line.starts_with("1 pod broken: host-route on "), "{line}");

    let warned = Node::new(&[&["no-host-mac"]]);
    let p = warned.rule("permanent");
    assert_eq!(p.status, 0, "warnings leave the condition False: {p:?}");
    assert_eq!(
        one_line(&p, max),
        "calico-preflight: no errors on node and 1 pod; 1 warning"
    );
    let t = warned.rule("temporary");
    assert_eq!(t.status, 1, "{t:?}");
    assert_eq!(
        one_line(&t, max),
        format!(
            "1 pod with warnings: host-veth-mac on {}",
            warned.pods[0].name
        )
    );
}

#[test]
fn many_broken_pods_fit_the_line_at_every_length() {
    let n = Node::new(&[&["no-host-route"], &["no-host-route"], &["no-proxy-arp"]]);
    let full = n.doctor(&["--max-output-length", "4096"]);
    assert_eq!(full.status, 1, "{full:?}");
    let full = one_line(&full, 4096);
    assert!(full.starts_with("3 pods broken: "), "{full}");
    for name in n.pods.iter().map(|p| &p.name) {
        assert!(full.contains(name.as_str()), "{full}");
    }
    for max in [1usize, 10, 40, 80] {
        let run = n.doctor(&["--max-output-length", &max.to_string()]);
        assert_eq!(run.status, 1, "{run:?}");
        let line = one_line(&run, max);
        assert!(line.len() <= max);
        if max >= 40 {
            assert!(
                line.starts_with("3 pods broken: ") && line.ends_with("..."),
                "{line}"
            );
        }
    }
}

/// No verdict is Unknown to NPD: the scan failing (an installed entry ADD refuses), the binary
/// not installed (the wrapper's answer), a usage error. Each still gives one line, exit 2.
#[test]
fn no_verdict_is_exit_2_with_a_line() {
    let max = max_len();
    let n = Node::new(&[&[]]);
    n.conflist(json!({"type": "calico-preflight", "mode": "loud"}));
    let p = n.rule("permanent");
    assert_eq!(p.status, 2, "{p:?}");
    let line = one_line(&p, max);
    assert!(line.starts_with("could not check: "), "{line}");
    assert!(p.stderr.contains("mode must be"), "{p:?}");
    // Plain doctor keeps its own status for the same failure.
    let plain = n.run_as_npd(&[
        "/host/opt/cni/bin/calico-preflight".into(),
        "doctor".into(),
        "--host-root".into(),
        "/host".into(),
    ]);
    assert_eq!(plain.status, 3, "{plain:?}");

    std::fs::remove_file(n.path("/opt/cni/bin/calico-preflight")).expect("uninstall");
    let p = n.rule("permanent");
    assert_eq!(p.status, 2, "{p:?}");
    assert_eq!(
        one_line(&p, max),
        "could not check: calico-preflight is not installed on this node",
        "{p:?}"
    );
    assert!(p.stderr.contains("no executable "), "{p:?}");
}

#[test]
fn usage_errors_in_npd_mode_are_exit_2_with_a_line() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin("calico-preflight"))
            .args(args)
            .output()
            .expect("run");
        PluginRun {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            status: out.status.code().unwrap_or(-1),
        }
    };
    for args in [
        &["doctor", "--npd", "--bogus"][..],
        &["doctor", "--bogus", "--npd"],
        &["doctor", "--npd", "--max-output-length", "0"],
        &["doctor", "--npd", "--max-output-length", "5000"],
        &["doctor", "--npd", "--json"],
        &["doctor", "--npd-warnings"],
    ] {
        let r = run(args);
        assert_eq!(r.status, 2, "{args:?}: {r:?}");
        let line = one_line(&r, 80);
        assert!(line.starts_with("could not check: usage error: "), "{line}");
        assert!(r.stderr.contains("calico-preflight doctor: "), "{r:?}");
    }
    // Without --npd, usage errors stay 64 (EX_USAGE), as on every subcommand.
    let r = run(&["doctor", "--max-output-length", "80"]);
    assert_eq!(r.status, 64, "{r:?}");
    assert!(r.stdout.is_empty(), "{r:?}");
    let r = run(&["doctor", "--bogus"]);
    assert_eq!(r.status, 64, "{r:?}");
}
