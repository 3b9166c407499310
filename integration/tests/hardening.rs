//! Files and text an adversary on the node can shape: the node-check cache dir (a symlink
//! planted at the temp or the final name, a dir others can write), a `logFile` that is the
//! plugin's own stdout, and control characters in what the runtime passes in the environment.
//! Every case runs the real binary in a namespace of its own, against temp dirs.

use calico_preflight_integration::*;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A temp dir, removed on drop (also when the test panics).
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("cp-hard-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o700)).unwrap();
        Scratch(p)
    }
    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A node-like host namespace whose only error-severity node finding is a deterministic one:
/// `net.ipv4.ip_forward=0` (host-ip-forward), unless `forward`.
fn host(tag: &str, forward: bool) -> Netns {
    let h = Netns::new(tag);
    h.sysctl("net.ipv4.ip_forward", if forward { "1" } else { "0" });
    h
}

fn conf(extra: Value) -> Vec<u8> {
    let mut c = json!({"cniVersion": "1.1.0", "name": "k8s-pod-network",
        "type": "calico-preflight", "confDir": "/nonexistent/cp-hard"});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c.to_string().into_bytes()
}

fn status_vars() -> Vec<(&'static str, String)> {
    vec![
        ("CNI_COMMAND", "STATUS".into()),
        ("CNI_PATH", target_dir().display().to_string()),
    ]
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// Runs the plugin in `ns` and in a pid namespace of its own, where it is pid 1: a temp name
/// derived from the pid (as it once was) is then known to whoever plants a symlink.
fn run_as_pid1(ns: &Netns, vars: &[(&str, String)], stdin: &[u8]) -> PluginRun {
    let mut child = Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child", "nsenter"])
        .arg(format!("--net={}", ns.path()))
        .arg(bin("calico-preflight"))
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn unshare");
    {
        use std::io::Write;
        let _ = child.stdin.take().expect("stdin").write_all(stdin);
    }
    let out = child.wait_with_output().expect("wait");
    PluginRun {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        status: out.status.code().unwrap_or(-1),
    }
}

#[test]
fn a_symlink_planted_at_the_temp_name_is_not_written_through() {
    let h = host("hd-tmp", true);
    let s = Scratch::new("tmp");
    let cache = s.join("cache");
    fs::create_dir(&cache).unwrap();
    let victim = s.join("victim");
    fs::write(&victim, "precious\n").unwrap();
    // The names a writer that derives its temp name from pid and thread would use as pid 1.
    let planted: Vec<String> = (1..=4)
        .map(|t| format!(".node-checks.1.ThreadId({t}).tmp"))
        .collect();
    for name in &planted {
        std::os::unix::fs::symlink(&victim, cache.join(name)).unwrap();
    }
    let c = conf(json!({"mode": "warn", "cacheDir": cache}));
    let run = run_as_pid1(&h, &status_vars(), &c);
    assert_eq!(run.status, 0, "{run:#?}");
    assert_eq!(
        fs::read_to_string(&victim).unwrap(),
        "precious\n",
        "the cache write went through a planted symlink"
    );
    let names = entries(&cache);
    let written: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("node-checks-") && n.ends_with(".json"))
        .collect();
    assert_eq!(written.len(), 1, "one entry written: {names:?}");
    let entry = cache.join(written[0]);
    assert!(
        !fs::symlink_metadata(&entry).unwrap().is_symlink(),
        "the entry is a regular file"
    );
    // Nothing but the entry and what was planted: no temp file left behind.
    assert_eq!(names.len(), 1 + planted.len(), "{names:?}");
}

#[test]
fn a_symlink_planted_at_the_entry_is_neither_read_nor_written_through() {
    let h = host("hd-fin", false);
    let s = Scratch::new("fin");
    let cache = s.join("cache");
    // ip_forward=0 held at error: without Calico's entry in confDir the check only warns.
    let c = conf(json!({"cacheDir": cache, "checks": {"host-ip-forward": "error"}}));
    // A real entry first: ip_forward=0 is an error, STATUS answers 50.
    let first = run_plugin(Some(&h), &bin("calico-preflight"), &status_vars(), &c);
    assert_eq!(first.json()["code"], 50, "{first:#?}");
    assert!(first.stdout.contains("host-ip-forward"), "{first:#?}");
    let names = entries(&cache);
    assert_eq!(names.len(), 1, "{names:?}");
    let entry = cache.join(&names[0]);
    // The same entry without its findings, elsewhere, linked at the entry's name: read
    // through the link, it would make the broken node look healthy.
    let mut forged: Value = serde_json::from_slice(&fs::read(&entry).unwrap()).unwrap();
    forged["findings"] = json!([]);
    let victim = s.join("victim.json");
    fs::write(&victim, forged.to_string()).unwrap();
    fs::remove_file(&entry).unwrap();
    std::os::unix::fs::symlink(&victim, &entry).unwrap();

    let second = run_plugin(Some(&h), &bin("calico-preflight"), &status_vars(), &c);
    assert_eq!(
        second.json()["code"],
        50,
        "the planted entry was read through the symlink: {second:#?}"
    );
    assert_eq!(
        fs::read_to_string(&victim).unwrap(),
        forged.to_string(),
        "written through the symlink"
    );
    assert!(!fs::symlink_metadata(&entry).unwrap().is_symlink());
}

#[test]
fn a_cache_dir_others_can_write_is_refused_with_a_reason() {
    let h = host("hd-dir", true);
    let s = Scratch::new("dir");
    let cache = s.join("cache");
    fs::create_dir(&cache).unwrap();
    fs::set_permissions(&cache, fs::Permissions::from_mode(0o777)).unwrap();
    let log = s.join("log");
    let c = conf(json!({"mode": "warn", "cacheDir": cache, "logFile": log}));
    let run = run_plugin(Some(&h), &bin("calico-preflight"), &status_vars(), &c);
    assert_eq!(run.status, 0, "{run:#?}");
    assert!(
        entries(&cache).is_empty(),
        "written into a dir others can write: {:?}",
        entries(&cache)
    );
    let text = fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(&format!("cacheDir {} refused", cache.display()))
            && text.contains("writable by others"),
        "{text}"
    );
}

/// ADD first in the chain (no prevResult): the node checks, then an empty result on stdout.
fn first_add_vars(h: &Netns, pod_args: &str) -> Vec<(&'static str, String)> {
    let mut env = CniEnv::new("ADD", &h.path(), "eth0");
    env.args = pod_args.into();
    env.vars()
}

#[test]
fn a_log_file_that_is_stdout_is_refused_and_stdout_holds_only_the_result() {
    let h = host("hd-out", true);
    let vars = first_add_vars(&h, "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0");
    for log in ["/dev/stdout", "/proc/self/fd/1"] {
        let c = conf(json!({"mode": "warn", "logFile": log, "logLevel": "debug",
            "nodeCheckTtlSeconds": 0}));
        let run = run_plugin(Some(&h), &bin("calico-preflight"), &vars, &c);
        assert_eq!(run.status, 0, "{log}: {run:#?}");
        let v: Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("{log}: stdout is not one JSON value ({e}): {run:#?}"));
        assert_eq!(v["cniVersion"], "1.1.0", "{log}");
        assert!(
            run.stderr.contains("is this process's stdout"),
            "{log}: {run:#?}"
        );
    }

    // The runtime captures stdout into a file, and logFile names that very file.
    let s = Scratch::new("out");
    let captured = s.join("stdout");
    let c = conf(
        json!({"mode": "warn", "logFile": captured, "logLevel": "debug",
        "nodeCheckTtlSeconds": 0}),
    );
    let out_file = fs::File::create(&captured).unwrap();
    let mut child = Command::new("nsenter")
        .arg(format!("--net={}", h.path()))
        .arg(bin("calico-preflight"))
        .env_clear()
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(out_file)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let _ = child.stdin.take().unwrap().write_all(&c);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = fs::read_to_string(&captured).unwrap();
    let v: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("captured stdout is not one JSON value ({e}): {text:?}"));
    assert_eq!(v["cniVersion"], "1.1.0");
}

#[test]
fn a_newline_in_the_pod_name_does_not_forge_a_log_line() {
    let h = host("hd-nl", true);
    let s = Scratch::new("nl");
    let forged_line = "2026-01-01T00:00:00.000Z error calico-preflight pod=kube-system/x verb=ADD outcome=fail code=100";
    let mut lines = vec![];
    for name in ["web-0".to_string(), format!("web-0\n{forged_line}\r")] {
        let log = s.join(&format!("log-{}", lines.len()));
        let c = conf(json!({"mode": "warn", "logFile": log, "logLevel": "debug",
            "nodeCheckTtlSeconds": 0}));
        let vars = first_add_vars(
            &h,
            &format!("K8S_POD_NAMESPACE=default;K8S_POD_NAME={name}"),
        );
        let run = run_plugin(Some(&h), &bin("calico-preflight"), &vars, &c);
        assert_eq!(run.status, 0, "{run:#?}");
        lines.push(fs::read_to_string(&log).unwrap());
    }
    let (plain, evil) = (&lines[0], &lines[1]);
    assert!(plain.lines().count() >= 1, "{plain}");
    assert_eq!(
        evil.lines().count(),
        plain.lines().count(),
        "the pod name added lines:\n{evil}"
    );
    for l in evil.lines() {
        assert!(
            l.contains(&format!("pod=default/web-0\\n{forged_line}\\r verb=ADD")),
            "not escaped: {l}"
        );
    }
}

#[test]
fn control_characters_from_the_environment_are_escaped_in_the_error() {
    // A CNI_NETNS that cannot be opened is named in the error; its newline must not reach
    // `kubectl describe pod` as a line break.
    let h = host("hd-ns", true);
    let mut env = CniEnv::new("ADD", "/run/netns/cpt-gone\nforged: line", "eth0");
    env.args = "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0".into();
    let c = conf(json!({"nodeChecks": false, "prevResult": {
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "calie1", "mac": "ee:ee:ee:ee:ee:ee"}],
        "ips": [{"address": "10.244.8.5/32"}]}}));
    let run = run_plugin(Some(&h), &bin("calico-preflight"), &env.vars(), &c);
    assert_eq!(run.status, 1, "{run:#?}");
    let v = run.json();
    let text = format!("{} {}", v["msg"], v["details"]);
    let msg = v["msg"].as_str().unwrap();
    let details = v["details"].as_str().unwrap_or("");
    assert!(
        !msg.contains('\n') && !details.contains('\n'),
        "raw newline in the error: {text}"
    );
    assert!(
        msg.contains("cpt-gone\\nforged: line") || details.contains("cpt-gone\\nforged: line"),
        "the netns is not named, escaped: {text}"
    );
}
