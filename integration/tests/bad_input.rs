//! Catalogue of bad input: every malformed environment, stdin and config the runtime (or an
//! operator's typo) can hand the plugin, each answered with the right CNI error code, one JSON
//! error object on stdout, exit status 1, and a `msg` that names the culprit. No case may hang
//! (each run is killed after 10 s and fails the test) or panic (code 999 / "panicked").

use calico_preflight_integration::*;
use serde_json::{json, Value};
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Hard bound on one plugin run.
const LIMIT: Duration = Duration::from_secs(10);

const SUPPORTED: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// What one bounded run printed, how it exited, and how long it took.
#[derive(Debug)]
struct Run {
    stdout: String,
    stderr: String,
    status: i32,
    took: Duration,
}

type Vars = Vec<(&'static str, OsString)>;

/// The CNI_* variables of a normal call; the netns is never entered unless a prevResult is given.
fn vars(command: &str) -> Vars {
    let env = CniEnv::new(command, "/run/netns/cpt-bad-input-unused", "eth0");
    env.vars()
        .into_iter()
        .map(|(k, v)| (k, OsString::from(v)))
        .collect()
}

fn without(mut v: Vars, key: &str) -> Vars {
    v.retain(|(k, _)| *k != key);
    v
}

fn with(mut v: Vars, key: &'static str, value: impl Into<OsString>) -> Vars {
    v.retain(|(k, _)| *k != key);
    v.push((key, value.into()));
    v
}

/// Runs `program args...` with exactly `vars` (plus PATH) and `stdin`, killing it after LIMIT.
fn run_cmd(program: &Path, args: &[OsString], vars: &Vars, stdin: Vec<u8>, ctx: &str) -> Run {
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .envs(vars.iter().map(|(k, v)| (*k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{ctx}: spawn {}: {e}", program.display()));
    // Threads for every pipe: a plugin that stops reading stdin (its right, e.g. on a bad env)
    // or fills stdout must not block the harness; only the deadline below decides.
    let mut si = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        let _ = si.write_all(&stdin);
    });
    let mut so = child.stdout.take().expect("stdout");
    let out_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = so.read_to_end(&mut b);
        b
    });
    let mut se = child.stderr.take().expect("stderr");
    let err_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = se.read_to_end(&mut b);
        b
    });
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{ctx}: the plugin did not finish within {LIMIT:?} (killed)");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let took = started.elapsed();
    let _ = writer.join();
    let stdout = String::from_utf8_lossy(&out_reader.join().expect("stdout reader")).into_owned();
    let stderr = String::from_utf8_lossy(&err_reader.join().expect("stderr reader")).into_owned();
    let run = Run {
        stdout,
        stderr,
        status: status.code().unwrap_or(-1),
        took,
    };
    assert!(
        !run.stderr.contains("panicked"),
        "{ctx}: the plugin panicked: {run:?}"
    );
    assert!(
        !run.stdout.contains("\"code\":999"),
        "{ctx}: internal error: {run:?}"
    );
    assert!(
        run.status == 0 || run.status == 1,
        "{ctx}: exit status must be 0 or 1 (not a crash or signal): {run:?}"
    );
    run
}

/// The plugin, in this test's own namespace (it never gets to touch the network here).
fn plugin(vars: &Vars, stdin: impl Into<Vec<u8>>, ctx: &str) -> Run {
    run_cmd(&bin("calico-preflight"), &[], vars, stdin.into(), ctx)
}

/// The plugin run inside `host` (through nsenter), for cases that reach the inspection.
fn plugin_in(host: &Netns, vars: &Vars, stdin: impl Into<Vec<u8>>, ctx: &str) -> Run {
    let args = [
        OsString::from(format!("--net={}", host.path())),
        bin("calico-preflight").into_os_string(),
    ];
    run_cmd(Path::new("nsenter"), &args, vars, stdin.into(), ctx)
}

/// A plugin config with the usual runtime-injected keys plus `extra`.
fn conf(version: &str, extra: Value) -> Vec<u8> {
    let mut c =
        json!({"cniVersion": version, "name": "k8s-pod-network", "type": "calico-preflight"});
    if let (Some(o), Some(e)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            o.insert(k.clone(), v.clone());
        }
    }
    c.to_string().into_bytes()
}

/// stdout holds exactly one JSON value, an object with only the spec's error keys.
fn one_error_object(run: &Run, ctx: &str) -> Value {
    let mut it = serde_json::Deserializer::from_str(&run.stdout).into_iter::<Value>();
    let first = match it.next() {
        Some(Ok(v)) => v,
        other => panic!("{ctx}: stdout is not JSON ({other:?}): {run:?}"),
    };
    assert!(
        it.next().is_none(),
        "{ctx}: stdout holds more than one JSON value: {run:?}"
    );
    let obj = first
        .as_object()
        .unwrap_or_else(|| panic!("{ctx}: not an object: {run:?}"));
    for k in obj.keys() {
        assert!(
            ["cniVersion", "code", "msg", "details"].contains(&k.as_str()),
            "{ctx}: unexpected key {k} in the error: {first}"
        );
    }
    let v = obj["cniVersion"]
        .as_str()
        .unwrap_or_else(|| panic!("{ctx}: cniVersion: {first}"));
    assert!(SUPPORTED.contains(&v), "{ctx}: error cniVersion {v}");
    assert!(obj["code"].is_u64(), "{ctx}: code: {first}");
    assert!(obj["msg"].is_string(), "{ctx}: msg: {first}");
    if let Some(d) = obj.get("details") {
        assert!(d.is_string(), "{ctx}: details: {first}");
    }
    first
}

/// Exit 1, one error object with `code`, and `msg` containing every one of `names`.
fn assert_error(run: &Run, code: u64, names: &[&str], ctx: &str) -> Value {
    assert_eq!(run.status, 1, "{ctx}: exit status: {run:?}");
    let e = one_error_object(run, ctx);
    assert_eq!(e["code"], code, "{ctx}: code: {e}");
    let msg = e["msg"].as_str().unwrap_or_default();
    assert!(msg.starts_with("calico-preflight: "), "{ctx}: msg {msg:?}");
    for n in names {
        assert!(msg.contains(n), "{ctx}: msg does not name {n:?}: {msg:?}");
    }
    e
}

fn assert_silent_success(run: &Run, ctx: &str) {
    assert_eq!(
        (run.status, run.stdout.as_str()),
        (0, ""),
        "{ctx}: expected exit 0 and no stdout: {run:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Environment

#[test]
fn each_required_variable_missing_or_empty_for_add_is_code_4() {
    for var in [
        "CNI_COMMAND",
        "CNI_CONTAINERID",
        "CNI_NETNS",
        "CNI_IFNAME",
        "CNI_PATH",
    ] {
        let ctx = format!("{var} missing");
        let run = plugin(&without(vars("ADD"), var), conf("1.0.0", json!({})), &ctx);
        assert_error(&run, 4, &[var], &ctx);
        let ctx = format!("{var} empty");
        let run = plugin(&with(vars("ADD"), var, ""), conf("1.0.0", json!({})), &ctx);
        assert_error(&run, 4, &[var], &ctx);
    }
}

#[test]
fn unknown_cni_command_is_code_4_and_named() {
    for cmd in ["FROB", "add", "ADD ", "DELETE"] {
        let ctx = format!("CNI_COMMAND={cmd:?}");
        let run = plugin(
            &with(vars("ADD"), "CNI_COMMAND", cmd),
            conf("1.0.0", json!({})),
            &ctx,
        );
        let e = assert_error(&run, 4, &["CNI_COMMAND"], &ctx);
        assert!(
            e["msg"].as_str().unwrap_or_default().contains(cmd.trim()),
            "{ctx}: {e}"
        );
    }
}

#[test]
fn invalid_ifname_is_code_4() {
    let cases: &[&str] = &[
        "",
        "sixteen-chars-xx",
        "a-very-long-interface-name",
        "a/b",
        "/",
        ".",
        "..",
        "has space",
        "new\nline",
        "tab\there",
        "eth0:1",
    ];
    for name in cases {
        let ctx = format!("CNI_IFNAME={name:?}");
        let run = plugin(
            &with(vars("ADD"), "CNI_IFNAME", *name),
            conf("1.0.0", json!({})),
            &ctx,
        );
        assert_error(&run, 4, &["CNI_IFNAME"], &ctx);
    }
    // Not UTF-8 at all: still code 4 naming the variable.
    let ctx = "CNI_IFNAME not UTF-8";
    let raw = OsString::from_vec(b"eth\xff".to_vec());
    let run = plugin(
        &with(vars("ADD"), "CNI_IFNAME", raw),
        conf("1.0.0", json!({})),
        ctx,
    );
    assert_error(&run, 4, &["CNI_IFNAME"], ctx);
}

#[test]
fn invalid_container_id_is_code_4() {
    for id in ["../etc", "-leading-dash", "a b", "x/y"] {
        let ctx = format!("CNI_CONTAINERID={id:?}");
        let run = plugin(
            &with(vars("ADD"), "CNI_CONTAINERID", id),
            conf("1.0.0", json!({})),
            &ctx,
        );
        assert_error(&run, 4, &["CNI_CONTAINERID"], &ctx);
    }
}

// ---------------------------------------------------------------------------------------------
// stdin decoding

#[test]
fn undecodable_stdin_is_code_6() {
    let cases: &[(&str, &[u8])] = &[
        ("empty", b""),
        ("whitespace", b"  \n\t "),
        ("truncated", b"{\"cniVersion\":\"1.0.0\""),
        ("not json", b"cniVersion: 1.0.0"),
        ("not utf-8", b"\xff\xfe{\x00}"),
        ("trailing garbage", b"{\"cniVersion\":\"1.0.0\"} x"),
        (
            "two objects",
            b"{\"cniVersion\":\"1.0.0\"}{\"cniVersion\":\"1.0.0\"}",
        ),
        ("array", b"[1,2]"),
        ("string", b"\"str\""),
        ("null", b"null"),
        ("number", b"42"),
        ("bool", b"true"),
    ];
    for (what, stdin) in cases {
        let run = plugin(&vars("ADD"), *stdin, what);
        let e = assert_error(&run, 6, &["stdin"], what);
        // Nothing to echo a version from: the error speaks our newest.
        assert_eq!(e["cniVersion"], "1.1.0", "{what}");
    }
}

#[test]
fn ten_megabytes_of_stdin_is_code_6_and_fast() {
    let mut big = br#"{"cniVersion":"1.0.0","name":"k8s-pod-network","pad":""#.to_vec();
    big.resize(10 << 20, b'x');
    big.extend_from_slice(b"\"}");
    let run = plugin(&vars("ADD"), big, "10 MB stdin");
    assert_error(&run, 6, &["larger than"], "10 MB stdin");
    assert!(
        run.took < Duration::from_secs(3),
        "10 MB stdin took {:?}",
        run.took
    );
}

#[test]
fn deeply_nested_json_is_code_6() {
    let depth = 100_000;
    let mut arrays = String::from(r#"{"cniVersion":"1.0.0","x":"#);
    arrays.push_str(&"[".repeat(depth));
    arrays.push_str(&"]".repeat(depth));
    arrays.push('}');
    let mut objects = String::from(r#"{"cniVersion":"1.0.0","prevResult":"#);
    objects.push_str(&r#"{"a":"#.repeat(depth));
    objects.push('1');
    objects.push_str(&"}".repeat(depth));
    objects.push('}');
    // Unclosed: the parser must give up at its depth limit, not walk 500k levels.
    let unclosed = "[".repeat(500_000);
    for (what, s) in [
        ("nested arrays", arrays),
        ("nested objects", objects),
        ("unclosed", unclosed),
    ] {
        let run = plugin(&vars("ADD"), s.into_bytes(), what);
        assert_error(&run, 6, &["JSON"], what);
    }
}

// ---------------------------------------------------------------------------------------------
// cniVersion

#[test]
fn unsupported_missing_or_mistyped_cni_version() {
    for v in ["0.1.0", "0.2.0", "1.2.0", "2.0.0", "", "1.0", "v1.0.0"] {
        let ctx = format!("cniVersion {v:?}");
        let run = plugin(&vars("ADD"), conf(v, json!({})), &ctx);
        let e = assert_error(&run, 1, &["cniVersion", "not supported"], &ctx);
        assert!(
            e["details"].as_str().unwrap_or_default().contains("1.1.0"),
            "{ctx}: details should list the supported versions: {e}"
        );
    }
    let run = plugin(
        &vars("ADD"),
        br#"{"name":"k8s-pod-network"}"#.to_vec(),
        "missing",
    );
    assert_error(&run, 7, &["cniVersion", "missing"], "cniVersion missing");
    for v in [
        json!(1),
        json!(null),
        json!(["1.0.0"]),
        json!({"v": "1.0.0"}),
    ] {
        let ctx = format!("cniVersion {v}");
        let body = json!({"cniVersion": v, "name": "n"}).to_string();
        let run = plugin(&vars("ADD"), body, &ctx);
        // null reads as missing; anything else is the wrong type. Both name the key.
        assert_error(&run, 7, &["cniVersion"], &ctx);
    }
}

#[test]
fn prev_result_with_unsupported_cni_version_is_code_1() {
    for pv in ["0.2.0", "0.1.0", "9.9.9"] {
        let ctx = format!("prevResult.cniVersion {pv}");
        let c = conf(
            "1.0.0",
            json!({"prevResult": {"cniVersion": pv, "ip4": {"ip": "10.244.1.5/32"}}}),
        );
        let run = plugin(&vars("ADD"), c, &ctx);
        let e = assert_error(&run, 1, &["prevResult", pv], &ctx);
        // The error is in the config's version, not the prevResult's.
        assert_eq!(e["cniVersion"], "1.0.0", "{ctx}");
    }
}

#[test]
fn check_with_a_pre_0_4_0_version_is_code_1() {
    for v in ["0.3.0", "0.3.1"] {
        let ctx = format!("CHECK {v}");
        let run = plugin(&vars("CHECK"), conf(v, json!({})), &ctx);
        let e = assert_error(&run, 1, &["CHECK", v], &ctx);
        assert_eq!(e["cniVersion"], v, "{ctx}");
    }
}

// ---------------------------------------------------------------------------------------------
// prevResult shape

#[test]
fn prev_result_of_the_wrong_shape_is_code_7_naming_the_key() {
    let cases: Vec<(Value, &str)> = vec![
        (json!([1]), "prevResult"),
        (json!("x"), "prevResult"),
        (json!(7), "prevResult"),
        (json!({"cniVersion": 1}), "prevResult.cniVersion"),
        (json!({"interfaces": "cali1"}), "prevResult.interfaces"),
        (json!({"interfaces": {}}), "prevResult.interfaces"),
        (json!({"interfaces": [7]}), "prevResult.interfaces[0]"),
        (
            json!({"interfaces": [{"name": "a"}, {"name": 7}]}),
            "prevResult.interfaces[1].name",
        ),
        (
            json!({"interfaces": [{"name": "a", "mac": 1}]}),
            "prevResult.interfaces[0].mac",
        ),
        (
            json!({"interfaces": [{"name": "a", "sandbox": []}]}),
            "prevResult.interfaces[0].sandbox",
        ),
        (json!({"ips": {}}), "prevResult.ips"),
        (json!({"ips": "10.244.1.5/32"}), "prevResult.ips"),
        (json!({"ips": ["10.244.1.5/32"]}), "prevResult.ips[0]"),
        (json!({"ips": [{}]}), "prevResult.ips[0].address"),
        (
            json!({"ips": [{"address": 10}]}),
            "prevResult.ips[0].address",
        ),
        (
            json!({"ips": [{"address": "10.0.0.1/32", "gateway": 5}]}),
            "prevResult.ips[0].gateway",
        ),
    ];
    for (prev, key) in cases {
        let ctx = format!("prevResult {prev}");
        let run = plugin(
            &vars("ADD"),
            conf("1.0.0", json!({"prevResult": prev})),
            &ctx,
        );
        assert_error(&run, 7, &[key], &ctx);
    }
}

#[test]
fn ips_that_do_not_parse_are_code_7() {
    let addresses = [
        "nope",
        "",
        "10.0.0.300/32",
        "10.0.0.1/33",
        "fd00::1/129",
        "10.0.0.1/",
        "10.0.0.1/-1",
        "::g/128",
    ];
    for a in addresses {
        let ctx = format!("address {a:?}");
        let prev =
            json!({"cniVersion": "1.0.0", "ips": [{"address": "10.244.1.5/32"}, {"address": a}]});
        let run = plugin(
            &vars("ADD"),
            conf("1.0.0", json!({"prevResult": prev})),
            &ctx,
        );
        assert_error(&run, 7, &["prevResult.ips[1].address"], &ctx);
    }
    for g in ["nope", "10.0.0.300", "10.0.0.1/32"] {
        let ctx = format!("gateway {g:?}");
        let prev = json!({"ips": [{"address": "10.244.1.5/32", "gateway": g}]});
        let run = plugin(
            &vars("ADD"),
            conf("1.0.0", json!({"prevResult": prev})),
            &ctx,
        );
        assert_error(&run, 7, &["prevResult.ips[0].gateway"], &ctx);
    }
}

#[test]
fn interface_index_out_of_range_or_mistyped_is_code_7() {
    let ifaces = json!([{"name": "cali12345678901"}, {"name": "eth0", "sandbox": "/run/netns/x"}]);
    for idx in [
        json!(2),
        json!(-1),
        json!(1.5),
        json!(u64::MAX),
        json!(1e300),
        json!("1"),
        json!(true),
        json!([1]),
    ] {
        let ctx = format!("interface {idx}");
        let prev =
            json!({"interfaces": ifaces, "ips": [{"address": "10.244.1.5/32", "interface": idx}]});
        let run = plugin(
            &vars("ADD"),
            conf("1.0.0", json!({"prevResult": prev})),
            &ctx,
        );
        assert_error(&run, 7, &["prevResult.ips[0].interface"], &ctx);
    }
    // No interfaces at all: index 0 is out of range too.
    let prev = json!({"ips": [{"address": "10.244.1.5/32", "interface": 0}]});
    let run = plugin(
        &vars("ADD"),
        conf("1.0.0", json!({"prevResult": prev})),
        "no interfaces",
    );
    assert_error(&run, 7, &["prevResult.ips[0].interface"], "no interfaces");
}

// ---------------------------------------------------------------------------------------------
// Our own keys

#[test]
fn unknown_check_ids_and_severities_are_code_7_naming_the_check() {
    let cases: Vec<(Value, &str)> = vec![
        (json!({"no-such-check": "warn"}), "checks.no-such-check"),
        (json!({"HOST-ROUTE": "warn"}), "checks.HOST-ROUTE"),
        (json!({"": "warn"}), "checks."),
        (json!({"host-route": "fatal"}), "checks.host-route"),
        (json!({"host-route": "Error"}), "checks.host-route"),
        (json!({"host-route": 1}), "checks.host-route"),
        (json!({"host-route": null}), "checks.host-route"),
        (
            json!({"host-route": "off", "pod-netns": "loud"}),
            "checks.pod-netns",
        ),
    ];
    for (checks, key) in cases {
        let ctx = format!("checks {checks}");
        let run = plugin(&vars("ADD"), conf("0.4.0", json!({"checks": checks})), &ctx);
        let e = assert_error(&run, 7, &[key], &ctx);
        assert_eq!(
            e["cniVersion"], "0.4.0",
            "{ctx}: the error echoes the config's version"
        );
    }
    for checks in [json!([1]), json!("host-route"), json!(true)] {
        let ctx = format!("checks {checks}");
        let run = plugin(&vars("ADD"), conf("1.0.0", json!({"checks": checks})), &ctx);
        assert_error(&run, 7, &["checks"], &ctx);
    }
}

#[test]
fn timeout_ms_zero_negative_or_absurd_is_code_7() {
    for t in [
        json!(0),
        json!(-1),
        json!(60_001),
        json!(86_400_000),
        json!(u64::MAX),
        json!(1e20),
        json!(1.5),
        json!("2000"),
        json!("2s"),
        json!(true),
    ] {
        let ctx = format!("timeoutMs {t}");
        let run = plugin(&vars("ADD"), conf("1.0.0", json!({"timeoutMs": t})), &ctx);
        assert_error(&run, 7, &["timeoutMs"], &ctx);
    }
}

#[test]
fn other_bad_values_of_our_keys_are_code_7() {
    for (extra, key) in [
        (json!({"mode": "strict"}), "mode"),
        (json!({"mode": 1}), "mode"),
        (json!({"logLevel": "loud"}), "logLevel"),
        (json!({"logFile": "relative.log"}), "logFile"),
        (json!({"logFile": 7}), "logFile"),
        (json!({"name": 7}), "name"),
        (json!({"type": ["x"]}), "type"),
    ] {
        let ctx = format!("{extra}");
        let run = plugin(&vars("ADD"), conf("1.0.0", extra), &ctx);
        assert_error(&run, 7, &[key], &ctx);
    }
}

// ---------------------------------------------------------------------------------------------
// logFile that cannot be used: never fails the pod

fn tmp_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("cp-bad-{tag}-{}", std::process::id()))
}

/// A temporary file or directory, removed on drop (also when the test panics).
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let p = tmp_path(tag);
        let _ = std::fs::remove_dir_all(&p);
        let _ = std::fs::remove_file(&p);
        Scratch(p)
    }
    fn dir(tag: &str) -> Scratch {
        let s = Scratch::new(tag);
        std::fs::create_dir_all(&s.0).unwrap();
        s
    }
    fn show(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A healthy pod wired by fake-calico in a host namespace set up like a Calico node: a logFile
/// problem is then the only thing that could make ADD fail.
struct Wired {
    host: Netns,
    _pod: Netns,
    env: CniEnv,
    prev: Value,
}

fn wired_pod() -> Wired {
    wired_pod_with(json!({"ips": ["10.244.1.5/32"]}))
}

/// A pod wired by fake-calico from `calico` (its entry's keys: ipam, shape, ...).
fn wired_pod_with(calico: Value) -> Wired {
    let host = Netns::new("bih");
    host.sysctl("net.ipv4.ip_forward", "1");
    host.sysctl("net.ipv6.conf.all.forwarding", "1");
    let pod = Netns::new("bip");
    let env = CniEnv::new("ADD", &pod.path(), "eth0");
    let mut c = json!({"cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "fake-calico"});
    for (k, v) in calico.as_object().into_iter().flatten() {
        c[k] = v.clone();
    }
    let fc = run_plugin(
        Some(&host),
        &bin("fake-calico"),
        &env.vars(),
        c.to_string().as_bytes(),
    );
    assert_eq!(fc.status, 0, "fake-calico: {fc:?}");
    let prev = fc.json();
    Wired {
        host,
        _pod: pod,
        env,
        prev,
    }
}

impl Wired {
    fn vars(&self) -> Vars {
        self.env
            .vars()
            .into_iter()
            .map(|(k, v)| (k, OsString::from(v)))
            .collect()
    }
    /// The pod checks only (the node checks read the machine's files and are not the point here).
    fn conf(&self, log_file: &str) -> Vec<u8> {
        conf(
            "1.0.0",
            json!({"prevResult": self.prev, "nodeChecks": false, "logFile": log_file}),
        )
    }
    fn add(&self, log_file: &str, ctx: &str) -> Run {
        plugin_in(&self.host, &self.vars(), self.conf(log_file), ctx)
    }
    /// ADD passed the prevResult through: the log file problem did not fail the pod.
    fn assert_passed(&self, run: &Run, ctx: &str) {
        assert_eq!(run.status, 0, "{ctx}: {run:?}");
        assert_eq!(run.stdout.trim(), self.prev.to_string(), "{ctx}");
    }
}

fn assert_fell_back_to_stderr(run: &Run, path: &str, ctx: &str) {
    assert!(
        run.stderr.contains(&format!("cannot open logFile {path}"))
            && run.stderr.contains("logging to stderr"),
        "{ctx}: stderr must say the log file was not usable: {:?}",
        run.stderr
    );
    assert!(
        run.stderr.contains("outcome=ok"),
        "{ctx}: the outcome line goes to stderr instead: {:?}",
        run.stderr
    );
}

#[test]
fn log_file_in_a_missing_directory_falls_back_to_stderr() {
    let w = wired_pod();
    let path = format!("{}/no/such/dir/preflight.log", tmp_path("nodir").display());
    let run = w.add(&path, "missing dir");
    w.assert_passed(&run, "missing dir");
    assert_fell_back_to_stderr(&run, &path, "missing dir");
    assert!(!Path::new(&path).exists());
}

#[test]
fn log_file_that_is_a_directory_falls_back_to_stderr() {
    let w = wired_pod();
    let dir = Scratch::dir("isdir");
    let run = w.add(&dir.show(), "logFile is a directory");
    w.assert_passed(&run, "logFile is a directory");
    assert_fell_back_to_stderr(&run, &dir.show(), "logFile is a directory");
}

#[test]
fn log_file_in_a_read_only_directory_falls_back_to_stderr() {
    // Root ignores directory permissions, so "read-only" has to be a read-only mount: one in a
    // private mount namespace of the plugin's own, so nothing leaks onto the machine.
    let w = wired_pod();
    let dir = Scratch::dir("rodir");
    let path = format!("{}/preflight.log", dir.show());
    let args: Vec<OsString> = [
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        "mount -t tmpfs -o ro cp-ro \"$0\" && exec nsenter --net=\"$1\" \"$2\"",
    ]
    .iter()
    .map(OsString::from)
    .chain([
        dir.0.clone().into_os_string(),
        OsString::from(w.host.path()),
        bin("calico-preflight").into_os_string(),
    ])
    .collect();
    let run = run_cmd(
        Path::new("unshare"),
        &args,
        &w.vars(),
        w.conf(&path),
        "read-only dir",
    );
    w.assert_passed(&run, "read-only dir");
    assert_fell_back_to_stderr(&run, &path, "read-only dir");
    assert!(
        run.stderr.contains("Read-only file system"),
        "{:?}",
        run.stderr
    );
}

#[test]
fn log_file_on_a_full_device_does_not_fail_the_pod() {
    let w = wired_pod();
    let run = w.add("/dev/full", "/dev/full");
    w.assert_passed(&run, "/dev/full");
}

#[test]
fn log_file_that_is_a_fifo_without_reader_does_not_hang() {
    let w = wired_pod();
    let fifo = Scratch::new("fifo");
    sh(&["mkfifo", &fifo.show()]);
    let run = w.add(&fifo.show(), "fifo logFile");
    w.assert_passed(&run, "fifo logFile");
    assert_fell_back_to_stderr(&run, &fifo.show(), "fifo logFile");
}

// ---------------------------------------------------------------------------------------------
// CNI_NETNS that is not a usable network namespace: a check failure (code 100, pod-netns)

#[test]
fn unusable_netns_is_a_pod_netns_check_failure() {
    // A fresh "host" namespace so the host-side lookups read nothing of the machine's.
    let host = Netns::new("bi");
    let file = Scratch::new("notns");
    std::fs::write(&file.0, b"").unwrap();
    let dir = Scratch::dir("nsdir");
    let prev = json!({"cniVersion": "1.0.0",
        "interfaces": [{"name": "cali12345678901"}],
        "ips": [{"address": "10.244.1.5/32"}], "dns": {}});
    let cases = [
        ("/run/netns/cpt-does-not-exist".to_string(), "No such file"),
        (file.show(), "not a namespace file"),
        (dir.show(), "is a directory"),
        ("/proc/self/ns/uts".to_string(), "not a network namespace"),
        ("/proc/self/ns/mnt".to_string(), "not a network namespace"),
        ("/dev/null".to_string(), "not a namespace file"),
    ];
    for (netns, found) in cases {
        for command in ["ADD", "CHECK"] {
            let ctx = format!("{command} CNI_NETNS={netns}");
            let v = with(vars(command), "CNI_NETNS", &netns);
            // Pod checks only: pod-netns must be the first (and the reported) error either way.
            let c = conf("1.0.0", json!({"prevResult": prev, "nodeChecks": false}));
            let run = plugin_in(&host, &v, c, &ctx);
            let e = assert_error(&run, 100, &["pod-netns", &netns], &ctx);
            let details = e["details"].as_str().unwrap_or_default();
            assert!(details.contains("[ERROR pod-netns]"), "{ctx}: {details}");
            assert!(details.contains(found), "{ctx}: {details}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Verbs that must succeed whatever

#[test]
fn version_prints_exactly_the_supported_versions() {
    for (stdin, echoed) in [
        (br#"{"cniVersion":"1.0.0"}"#.to_vec(), "1.0.0"),
        (br#"{"cniVersion":"0.3.1"}"#.to_vec(), "0.3.1"),
        (Vec::new(), "1.1.0"),
        (b"garbage".to_vec(), "1.1.0"),
        (br#"{"cniVersion":"0.2.0"}"#.to_vec(), "1.1.0"),
    ] {
        let ctx = format!("VERSION {:?}", String::from_utf8_lossy(&stdin));
        // VERSION needs no other variable.
        let v = vec![("CNI_COMMAND", OsString::from("VERSION"))];
        let run = plugin(&v, stdin, &ctx);
        assert_eq!(run.status, 0, "{ctx}: {run:?}");
        let out: Value = serde_json::from_str(run.stdout.trim()).expect("VERSION JSON");
        assert_eq!(
            out,
            json!({"cniVersion": echoed, "supportedVersions": SUPPORTED}),
            "{ctx}"
        );
    }
}

#[test]
fn del_with_garbage_stdin_and_empty_netns_succeeds_silently() {
    for stdin in [
        &b""[..],
        b"garbage",
        b"[1,2]",
        br#"{"cniVersion":"0.2.0"}"#,
        br#"{"cniVersion":"1.0.0","prevResult":[1],"checks":{"nope":"x"},"timeoutMs":0}"#,
    ] {
        let ctx = format!("DEL {:?}", String::from_utf8_lossy(stdin));
        let v = with(vars("DEL"), "CNI_NETNS", "");
        assert_silent_success(&plugin(&v, stdin, &ctx), &ctx);
        let v = without(vars("DEL"), "CNI_NETNS");
        assert_silent_success(&plugin(&v, stdin, &ctx), &ctx);
    }
}

#[test]
fn del_with_oversized_stdin_succeeds_silently() {
    let v = with(vars("DEL"), "CNI_NETNS", "");
    let run = plugin(&v, vec![b' '; 2 << 20], "DEL 2 MiB");
    assert_silent_success(&run, "DEL 2 MiB");
}

#[test]
fn gc_succeeds_silently() {
    let gc_conf = conf(
        "1.1.0",
        json!({"cni.dev/valid-attachments": [{"containerID": "abc", "ifname": "eth0"}],
               "cni.dev/attachments": [{"containerID": "abc", "ifname": "eth0"}]}),
    );
    // The spec requires only CNI_COMMAND and CNI_PATH for GC.
    let v = vec![
        ("CNI_COMMAND", OsString::from("GC")),
        ("CNI_PATH", OsString::from("/opt/cni/bin")),
    ];
    assert_silent_success(&plugin(&v, gc_conf.clone(), "GC"), "GC");
    assert_silent_success(&plugin(&vars("GC"), gc_conf, "GC"), "GC full env");
    // Nothing to collect, so nothing to parse either.
    assert_silent_success(&plugin(&v, b"garbage".to_vec(), "GC"), "GC garbage");
}

#[test]
fn status_succeeds_silently() {
    // STATUS reports whether the node can serve ADD (the node checks). In warn mode it must
    // answer 0 whatever it finds; run it in a fresh namespace set up like a node, with its cache
    // kept out of /run.
    let host = Netns::new("bis");
    host.sysctl("net.ipv4.ip_forward", "1");
    let cache = Scratch::dir("status-cache");
    let c = conf("1.1.0", json!({"mode": "warn", "cacheDir": cache.show()}));
    let v = vec![
        ("CNI_COMMAND", OsString::from("STATUS")),
        ("CNI_PATH", OsString::from(target_dir())),
    ];
    assert_silent_success(&plugin_in(&host, &v, c.clone(), "STATUS"), "STATUS");
    assert_silent_success(
        &plugin_in(
            &host,
            &with(vars("STATUS"), "CNI_PATH", target_dir()),
            c,
            "STATUS",
        ),
        "STATUS full env",
    );
}

// ---------------------------------------------------------------------------------------------
// The newer Calico results and the Calico entry the plugin reads from confDir

#[test]
fn newer_result_shapes_are_not_bad_input() {
    for calico in [
        // Calico 3.32's calico-ipam: one {dst: podIP/32|/128} per IP in `routes`.
        json!({"ipam": {"type": "calico-ipam", "assign_ipv6": "true"}, "shape": "v3.32"}),
        // host-local: a gateway on each IP and its configured routes (gw included).
        json!({"ipam": {"type": "host-local", "ranges": [[{"subnet": "10.85.0.0/16"}]],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.85.0.1"}]}}),
    ] {
        let ctx = format!("{calico}");
        let w = wired_pod_with(calico);
        let c = conf("1.0.0", json!({"prevResult": w.prev, "nodeChecks": false}));
        let run = plugin_in(&w.host, &w.vars(), c, &ctx);
        w.assert_passed(&run, &ctx);
    }
}

#[test]
fn malformed_routes_in_prev_result_never_crash_and_are_named_if_refused() {
    // libcni parses every result it passes on, so these cannot come from a real chain; a
    // plugin may ignore `routes` (they are the host side's) or refuse them naming the key.
    let w = wired_pod_with(json!({"ipam": {"type": "calico-ipam"}, "shape": "v3.32"}));
    for routes in [
        json!("10.244.1.5/32"),
        json!({}),
        json!([7]),
        json!([{"dst": 5}]),
        json!([{"dst": "nope"}]),
        json!([{"dst": "10.244.1.5/33"}]),
        json!([{"gw": "10.0.0.1"}]),
        json!([{"dst": "10.244.1.5/32", "gw": "nope"}]),
    ] {
        let ctx = format!("prevResult.routes {routes}");
        let mut prev = w.prev.clone();
        prev["routes"] = routes;
        let c = conf("1.0.0", json!({"prevResult": prev, "nodeChecks": false}));
        let run = plugin_in(&w.host, &w.vars(), c, &ctx);
        if run.status == 0 {
            assert_eq!(
                serde_json::from_str::<Value>(run.stdout.trim()).ok(),
                Some(prev),
                "{ctx}: passed, so the result must pass through"
            );
        } else {
            assert_error(&run, 7, &["prevResult.routes"], &ctx);
        }
    }
}

#[test]
fn malformed_calico_entry_in_conf_dir_never_crashes_and_is_named_if_refused() {
    // Calico's own entry, which the plugin reads from confDir for the expected routes and
    // families. Calico itself refuses most of these; whatever the plugin makes of them, it must
    // answer (no panic, no hang), and a refusal must say where the bad value is.
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"type": "host-local", "routes": "10.0.0.0/8"}),
            "routes",
        ),
        (
            json!({"type": "host-local", "routes": [{"dst": 5}]}),
            "routes",
        ),
        (
            json!({"type": "host-local", "routes": [{"dst": "nope"}]}),
            "routes",
        ),
        (json!({"type": "host-local", "routes": [7]}), "routes"),
        (
            json!({"type": "host-local", "ranges": "10.0.0.0/8"}),
            "ranges",
        ),
        (
            json!({"type": "host-local", "ranges": [[{"subnet": 7}]]}),
            "ranges",
        ),
        (
            json!({"type": "calico-ipam", "assign_ipv4": false}),
            "assign_ipv4",
        ),
        (
            json!({"type": "calico-ipam", "assign_ipv6": ["true"]}),
            "assign_ipv6",
        ),
        (
            json!({"type": "calico-ipam", "assign_ipv4": "false", "assign_ipv6": "false"}),
            "assign_ipv",
        ),
        (json!("calico-ipam"), "ipam"),
        (json!(null), "ipam"),
    ];
    let extra_keys: Vec<(&str, Value)> = vec![
        ("include_default_routes", json!("yes")),
        ("device_type", json!(7)),
        ("device_type", json!("macvlan")),
    ];
    let mut entries: Vec<(Value, String)> = cases
        .into_iter()
        .map(|(ipam, key)| (json!({"type": "calico", "ipam": ipam}), key.to_string()))
        .collect();
    for (k, v) in extra_keys {
        entries.push((
            json!({"type": "calico", "ipam": {"type": "host-local",
                "ranges": [[{"subnet": "10.244.1.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}, k: v}),
            k.to_string(),
        ));
    }
    let w = wired_pod();
    let dirs = CniDirs::new("bi-conf");
    for (calico, key) in entries {
        let list = json!({"cniVersion": "1.0.0", "name": "k8s-pod-network",
            "plugins": [{"type": "calico-preflight"}, calico, {"type": "calico-preflight"}]});
        let file = dirs.write_conflist(&list);
        let v = with(w.vars(), "CNI_PATH", dirs.bin_dir());
        for (position, prev) in [("first", None), ("after calico", Some(&w.prev))] {
            let ctx = format!("{position}, {calico}");
            let mut extra = json!({"confDir": dirs.conf_dir(), "cacheDir": dirs.cache_dir(),
                "nodeCheckTtlSeconds": 0, "iptablesCommand": dirs.root.join("no-iptables")});
            if let Some(p) = prev {
                extra["prevResult"] = p.clone();
            }
            let run = plugin_in(&w.host, &v, conf("1.0.0", extra), &ctx);
            if run.status == 1 {
                let e = one_error_object(&run, &ctx);
                let text = format!("{} {}", e["msg"], e["details"]);
                assert!(
                    text.contains(&key) || text.contains(&file.display().to_string()),
                    "{ctx}: a refusal must name {key:?} or the file: {e}"
                );
            }
        }
    }
}
