//! The Prometheus side: `install --watch --metrics-addr` scans a throw-away node (a host
//! namespace with pods wired like Calico) and serves the result, scraped here over the host
//! namespace's loopback with a plain HTTP/1.0 GET; `doctor --textfile` writes the same for
//! node_exporter. Every exposition passes `promtool check metrics` (Debian's `prometheus`
//! package, installed by integration/setup.sh).

use calico_preflight_integration::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The DaemonSet's port; free in a namespace of the test's own.
const PORT: u16 = 9276;

struct Node {
    host: Netns,
    _pods: Vec<Netns>,
    /// Each pod's fake-calico result (its host veth is `interfaces[0]`).
    results: Vec<Value>,
    dir: TempDir,
}

impl Node {
    fn conf(&self) -> PathBuf {
        self.dir.join("net.d")
    }
    fn bin(&self) -> PathBuf {
        self.dir.join("bin")
    }
    /// Calico's conflist as calico-node writes it, without our entry.
    fn calico_conflist(&self) -> String {
        json!({"name": "k8s-pod-network", "cniVersion": "1.0.0", "plugins": [
            {"type": "calico", "ipam": {"type": "calico-ipam"},
             "nodename_file": self.dir.join("nodename")},
            {"type": "portmap"}]})
        .to_string()
    }
    /// The flags that point doctor's scan (and install) at this node.
    fn scan_flags(&self) -> Vec<String> {
        [
            "--netns-dir",
            "/run/netns",
            "--no-proc-scan",
            "--containerd-config",
            "none",
            "--crio-config",
            "none",
            "--cni-conf-dir",
            &self.conf().display().to_string(),
            "--cni-bin-dir",
            &self.bin().display().to_string(),
        ]
        .map(String::from)
        .to_vec()
    }
}

/// A host namespace with one pod per entry of `faults` (fake-calico's `break` knobs), and the
/// node's CNI files (as integration/tests/doctor.rs lays them out) in a temp dir.
fn node(faults: &[&[&str]]) -> Node {
    let host = Netns::new("mt-h");
    host.sysctl("net.ipv4.ip_forward", "1");
    let dir = TempDir::new("metrics").create();
    std::fs::create_dir_all(dir.join("net.d")).expect("conf dir");
    std::fs::create_dir_all(dir.join("bin")).expect("bin dir");
    std::fs::write(dir.join("nodename"), "node-1").expect("nodename");
    for b in ["calico", "calico-ipam", "calico-preflight", "portmap"] {
        let p = dir.join("bin").join(b);
        std::fs::write(&p, "#!/bin/sh\nexit 0\n").expect("stub plugin");
        sh(&["chmod", "755", &p.display().to_string()]);
    }
    let mut pods = Vec::new();
    let mut results = Vec::new();
    for (i, f) in faults.iter().enumerate() {
        let pod = Netns::new("mt-p");
        let env = CniEnv::new("ADD", &pod.path(), "eth0");
        results.push(wire_pod(
            &host,
            &env,
            json!({"ips": [format!("10.244.7.{}/32", i + 1)], "break": f}),
        ));
        pods.push(pod);
    }
    let n = Node {
        host,
        _pods: pods,
        results,
        dir,
    };
    std::fs::write(n.conf().join("10-calico.conflist"), n.calico_conflist()).expect("conflist");
    n
}

/// The watch process; killed on drop, so that a failing test leaves none behind.
struct Watch {
    child: Option<Child>,
    out: PathBuf,
    err: PathBuf,
}

impl Watch {
    fn output(&self) -> String {
        format!(
            "--- stdout\n{}--- stderr\n{}",
            std::fs::read_to_string(&self.out).unwrap_or_default(),
            std::fs::read_to_string(&self.err).unwrap_or_default()
        )
    }
    /// SIGTERM, as the kubelet stops it; the exit status.
    fn stop(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        c.wait().ok()?.code()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `install --watch --metrics-addr 127.0.0.1:PORT --scan-interval 1` in the node's host
/// namespace (nsenter execs it: killing the child kills the watch).
fn spawn_watch(n: &Node) -> Watch {
    spawn_watch_env(n, &[])
}

/// [`spawn_watch`] with extra environment (the debug builds' test hooks).
fn spawn_watch_env(n: &Node, env: &[(&str, &str)]) -> Watch {
    spawn_watch_with(n, &["--metrics-addr", &format!("127.0.0.1:{PORT}")], env)
}

/// `install --watch --interval 0.2 --scan-interval 1`, `extra` and the node's scan flags.
fn spawn_watch_with(n: &Node, extra: &[&str], env: &[(&str, &str)]) -> Watch {
    let out = n.dir.join("watch.out");
    let err = n.dir.join("watch.err");
    let mut args: Vec<String> = [
        "install",
        "--watch",
        "--interval",
        "0.2",
        "--scan-interval",
        "1",
    ]
    .map(String::from)
    .into();
    args.extend(extra.iter().map(|a| a.to_string()));
    args.extend(n.scan_flags());
    let child = Command::new("nsenter")
        .arg(format!("--net={}", n.host.path()))
        .arg(bin("calico-preflight"))
        .args(&args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("spawn install --watch");
    Watch {
        child: Some(child),
        out,
        err,
    }
}

/// `GET path` over HTTP/1.0 to 127.0.0.1:PORT inside `ns`, from a thread that entered it
/// (setns changes only the calling thread's namespace); status and body, None when there is
/// no answer (not listening yet).
fn get(ns: &Netns, path: &str) -> Option<(u16, String)> {
    let (nspath, path) = (ns.path(), path.to_string());
    std::thread::spawn(move || -> Option<(u16, String)> {
        let f = std::fs::File::open(nspath).ok()?;
        nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).ok()?;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], PORT));
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
        let mut raw = String::new();
        s.read_to_string(&mut raw).ok()?;
        let (head, body) = raw.split_once("\r\n\r\n")?;
        let status = head.split(' ').nth(1)?.parse().ok()?;
        Some((status, body.to_string()))
    })
    .join()
    .ok()?
}

/// The value of one series (`name{labels}` exactly as rendered).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; integration/setup.sh installs it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Scrapes until `ok` holds for the body (the scans run every second), at most `secs`.
fn scrape_until(n: &Node, w: &Watch, what: &str, secs: u64, ok: &dyn Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut last = None;
    loop {
        if let Some((200, body)) = get(&n.host, "/metrics") {
            if ok(&body) {
                return body;
            }
            last = Some(body);
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last scrape:\n{}\n{}",
            last.unwrap_or_default(),
            w.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn watch_serves_the_nodes_findings_and_counts_repairs() {
    let n = node(&[&[], &["no-host-route"]]);
    let mut w = spawn_watch(&n);

    // Ready once the first scan finished; alive from the start.
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&n.host, "/readyz").map(|r| r.0) != Some(200) {
        assert!(Instant::now() < deadline, "never ready\n{}", w.output());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(get(&n.host, "/healthz").map(|r| r.0), Some(200));

    let err = r#"calico_preflight_findings{check="host-route",severity="error"}"#;
    // The scans start beside the first install pass, which may still be copying the binary.
    let text = scrape_until(&n, &w, "a report after the install", 30, &|t| {
        value(t, err).is_some() && value(t, "calico_preflight_conflist_repairs_total") == Some(1.0)
    });
    promtool_check(&text);
    assert_eq!(value(&text, err), Some(1.0), "{text}\n{}", w.output());
    for (series, want) in [
        (r#"calico_preflight_pods{status="error"}"#, 1.0),
        (r#"calico_preflight_pods{status="healthy"}"#, 1.0),
        (r#"calico_preflight_pods{status="warning"}"#, 0.0),
        (
            r#"calico_preflight_findings{check="pod-arp",severity="error"}"#,
            0.0,
        ),
        ("calico_preflight_scan_errors_total", 0.0),
        // The watch's first pass put our entry into Calico's file.
        ("calico_preflight_conflist_repairs_total", 1.0),
    ] {
        assert_eq!(value(&text, series), Some(want), "{series}\n{text}");
    }
    assert!(
        value(&text, "calico_preflight_last_scan_timestamp_seconds").is_some_and(|t| t > 1.0e9),
        "{text}"
    );
    assert!(
        value(&text, "calico_preflight_scan_duration_seconds").is_some_and(|d| d > 0.0),
        "{text}"
    );
    // No pod names, namespaces or IPs in labels.
    assert!(
        !text.contains("cpt-") && !text.contains("10.244.7."),
        "{text}"
    );

    // Calico's installer rewrites its conflist: the watch puts our entry back and counts it.
    let tmp = n.conf().join(".calico-rewrite");
    std::fs::write(&tmp, n.calico_conflist()).expect("write");
    std::fs::rename(&tmp, n.conf().join("10-calico.conflist")).expect("rename");
    scrape_until(&n, &w, "the repair to be counted", 30, &|t| {
        value(t, "calico_preflight_conflist_repairs_total") == Some(2.0)
    });

    // The broken pod is fixed: the next scan says so, and the series stays, at 0.
    let veth = n.results[1]["interfaces"][0]["name"]
        .as_str()
        .expect("host veth in fake-calico's result")
        .to_string();
    n.host.ip(&[
        "route",
        "add",
        "10.244.7.2/32",
        "dev",
        &veth,
        "scope",
        "link",
    ]);
    let text = scrape_until(&n, &w, "the fixed pod", 30, &|t| value(t, err) == Some(0.0));
    assert_eq!(
        value(&text, r#"calico_preflight_pods{status="healthy"}"#),
        Some(2.0),
        "{text}"
    );
    promtool_check(&text);

    let status = w.stop();
    assert_eq!(status, Some(0), "{}", w.output());
    assert!(w.output().contains("stopped watching"), "{}", w.output());
}

/// doctor in the node's host namespace with `--textfile`.
fn doctor_textfile(n: &Node, path: &Path) -> PluginRun {
    let out = Command::new("timeout")
        .args(["30", "nsenter"])
        .arg(format!("--net={}", n.host.path()))
        .arg(bin("calico-preflight"))
        .arg("doctor")
        .args(n.scan_flags())
        .arg("--textfile")
        .arg(path)
        .output()
        .expect("run doctor");
    PluginRun {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        status: out.status.code().unwrap_or(-1),
    }
}

#[test]
fn doctor_textfile_is_atomic_valid_and_does_not_follow_links() {
    let n = node(&[&["no-host-route"]]);
    let out = TempDir::new("metrics-textfile").create();
    let path = out.join("calico-preflight.prom");
    // A link planted where the file goes: replaced, its target untouched.
    let victim = n.dir.join("victim");
    std::fs::write(&victim, "not yours").expect("victim");
    std::os::unix::fs::symlink(&victim, &path).expect("plant symlink");

    let run = doctor_textfile(&n, &path);
    // Output and exit status as without --textfile.
    assert_eq!(run.status, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("[ERROR host-route] pod "),
        "{}",
        run.stdout
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "not yours");
    let meta = std::fs::symlink_metadata(&path).expect("textfile");
    assert!(meta.file_type().is_file(), "{meta:?}");
    let text = std::fs::read_to_string(&path).expect("textfile");
    promtool_check(&text);
    assert_eq!(
        value(
            &text,
            r#"calico_preflight_findings{check="host-route",severity="error"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, r#"calico_preflight_pods{status="error"}"#),
        Some(1.0)
    );
    assert!(
        !text.contains("conflist_repairs"),
        "doctor repairs nothing: {text}"
    );
    // The temp file was renamed into place: nothing else in the dir.
    let names: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["calico-preflight.prom"], "temp file left behind");

    // Rewritten by the next run; a name node_exporter would not read is refused up front.
    let again = doctor_textfile(&n, &path);
    assert_eq!(again.status, 2, "{}", again.stderr);
    let refused = doctor_textfile(&n, &out.join("calico-preflight.txt"));
    assert_eq!(refused.status, 64, "{}", refused.stderr);
    assert!(refused.stderr.contains(".prom"), "{}", refused.stderr);

    // An unwritable dir: exit 3 with the reason, the report still printed.
    let missing = out.join("no-such-dir/calico-preflight.prom");
    let failed = doctor_textfile(&n, &missing);
    assert_eq!(failed.status, 3, "{}", failed.stderr);
    assert!(
        failed.stderr.contains("cannot write the metrics"),
        "{}",
        failed.stderr
    );
}

/// Runs `f` on a thread that entered `ns` (setns changes only the calling thread's namespace).
fn in_ns<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> T {
    let nspath = ns.path();
    std::thread::spawn(move || {
        let file = std::fs::File::open(nspath).expect("open the netns");
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("the thread in the namespace panicked")
}

/// A connection to the endpoint (from a thread inside the node's namespace).
fn connect() -> TcpStream {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], PORT));
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s.set_write_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s
}

/// Sends `raw` on a new connection and reads until the server closes it.
fn exchange(raw: &[u8]) -> String {
    let mut s = connect();
    s.write_all(raw).expect("send");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A field of /proc/<pid>/status, as a number (the unit, kB, dropped).
fn proc_status(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

impl Watch {
    fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }
    /// Still running (not exited, e.g. on a panic).
    fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

fn wait_ready(n: &Node, w: &Watch) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&n.host, "/readyz").map(|r| r.0) != Some(200) {
        assert!(Instant::now() < deadline, "never ready\n{}", w.output());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// tiny_http gave every connection a thread of its own, read without any timeout, and a
/// header line without any bound: idle connections grew threads (and memory) without end, and
/// one long header line grew the process past the DaemonSet's memory limit.
#[test]
fn idle_slow_and_huge_requests_neither_block_the_endpoint_nor_grow_the_process() {
    let n = node(&[&[]]);
    let mut w = spawn_watch(&n);
    wait_ready(&n, &w);
    let pid = w.pid();
    let threads_before = proc_status(pid, "Threads");

    let (threads, metrics, first_idle) = in_ns(&n.host, move || {
        // Idle connections, and slow ones that started a request and never finish it.
        let mut idle: Vec<TcpStream> = (0..200).map(|_| connect()).collect();
        for s in idle.iter_mut().take(20) {
            let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n");
        }
        std::thread::sleep(Duration::from_millis(500));
        let threads = proc_status(pid, "Threads");
        let metrics = exchange(b"GET /metrics HTTP/1.0\r\n\r\n");
        // The server closes (or resets) an idle connection itself, sooner or later.
        let mut buf = [0u8; 1];
        let first_idle = idle[0].read(&mut buf);
        (threads, metrics, first_idle.map_err(|e| e.kind()))
    });
    assert!(
        metrics.starts_with("HTTP/1.") && metrics.contains("calico_preflight_scan_errors_total"),
        "{metrics}\n{}",
        w.output()
    );
    assert!(
        threads <= threads_before + 4,
        "200 connections took {threads} threads (from {threads_before})"
    );
    assert!(
        matches!(first_idle, Ok(0) | Err(std::io::ErrorKind::ConnectionReset)),
        "an idle connection stayed open: {first_idle:?}"
    );

    // One header line of 64 MiB: refused long before its end. (The peak before it is the
    // install's copy of the binary, 50+ MiB in a debug build.)
    let hwm_before = proc_status(pid, "VmHWM");
    let refused = in_ns(&n.host, || {
        let mut s = connect();
        s.set_write_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nX-Big: ");
        let chunk = vec![b'a'; 1 << 20];
        (0..64).any(|_| s.write_all(&chunk).is_err())
    });
    let hwm = proc_status(pid, "VmHWM");
    assert!(
        refused,
        "the server read a 64 MiB header line (peak RSS {hwm} kB)"
    );
    assert!(
        hwm < hwm_before + 16 * 1024,
        "peak RSS {hwm} kB, from {hwm_before} kB"
    );
    // Slowloris alone (nothing to evict it): closed at the connection's deadline, 10 s.
    let slow = in_ns(&n.host, || {
        let mut s = connect();
        let mut buf = [0u8; 64];
        for b in b"GET /metr" {
            let _ = s.write_all(&[*b]);
            std::thread::sleep(Duration::from_millis(200));
        }
        s.read(&mut buf).map_err(|e| e.kind())
    });
    assert!(
        matches!(slow, Ok(0) | Err(std::io::ErrorKind::ConnectionReset)),
        "a slow request held its connection: {slow:?}"
    );
    assert!(w.alive(), "{}", w.output());
    assert_eq!(get(&n.host, "/healthz").map(|r| r.0), Some(200));
    assert_eq!(w.stop(), Some(0), "{}", w.output());
}

/// The answers to what Prometheus and probes send, and to what they do not.
#[test]
fn methods_paths_and_keep_alive() {
    let n = node(&[&[]]);
    let mut w = spawn_watch(&n);
    wait_ready(&n, &w);
    let (head, post, unknown, query, garbage, keepalive) = in_ns(&n.host, || {
        let head = exchange(b"HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let post = exchange(
            b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        );
        let unknown = exchange(b"GET /nope HTTP/1.0\r\n\r\n");
        let query = exchange(b"GET /metrics?collect[]=x HTTP/1.0\r\n\r\n");
        let garbage = exchange(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n");
        // HTTP/1.1 as Prometheus sends it (keep-alive): a whole answer, then either the next
        // one on the same connection or a close the client was told about.
        let mut s = connect();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
            .expect("send");
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        let complete = loop {
            let text = String::from_utf8_lossy(&raw).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len: Option<usize> = head.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                });
                if len.is_some_and(|l| body.len() >= l) {
                    break Some(text);
                }
            }
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break None,
                Ok(k) => raw.extend_from_slice(&buf[..k]),
            }
        };
        let second = match s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") {
            Ok(()) => {
                let mut rest = Vec::new();
                let _ = s.read_to_end(&mut rest);
                String::from_utf8_lossy(&rest).into_owned()
            }
            Err(_) => String::new(),
        };
        (head, post, unknown, query, garbage, (complete, second))
    });
    let status = |r: &str| r.split(' ').nth(1).unwrap_or("").to_string();
    assert_eq!(status(&head), "200", "{head}");
    let (head_head, head_body) = head.split_once("\r\n\r\n").unwrap_or((&head, ""));
    assert!(head_body.is_empty(), "HEAD has no body: {head}");
    assert!(
        head_head
            .to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert_eq!(status(&post), "405", "{post}");
    assert!(
        post.to_ascii_lowercase().contains("allow: get, head"),
        "{post}"
    );
    assert_eq!(status(&unknown), "404", "{unknown}");
    assert_eq!(status(&query), "200", "{query}");
    assert_eq!(status(&garbage), "400", "{garbage}");
    let (complete, second) = keepalive;
    let first = complete.expect("a whole answer to an HTTP/1.1 GET");
    assert_eq!(status(&first), "200", "{first}");
    let told_close = first.to_ascii_lowercase().contains("connection: close");
    assert!(
        told_close || second.contains(" 200 "),
        "neither a close announced nor the second answer:\n{first}\n---\n{second}"
    );
    assert!(w.alive(), "{}", w.output());
    assert_eq!(w.stop(), Some(0), "{}", w.output());
}

/// A scan that panics (a bug) is a failed scan: counted, and the next one runs. The panic hook
/// of main.rs ended the whole process (and release builds abort on a panic anyway).
#[test]
fn a_scan_that_panics_is_counted_and_the_watch_keeps_going() {
    let n = node(&[&[]]);
    // Debug builds only: every scan panics.
    let mut w = spawn_watch_env(&n, &[("CALICO_PREFLIGHT_TEST_SCAN_PANIC", "1")]);
    let text = scrape_until(&n, &w, "two failed scans", 30, &|t| {
        value(t, "calico_preflight_scan_errors_total").is_some_and(|v| v >= 2.0)
    });
    promtool_check(&text);
    assert!(!text.contains("calico_preflight_findings"), "{text}");
    assert!(w.alive(), "{}", w.output());
    assert_eq!(get(&n.host, "/readyz").map(|r| r.0), Some(200));
    assert!(w.output().contains("panicked"), "{}", w.output());
    assert_eq!(w.stop(), Some(0), "{}", w.output());
}

/// A scan stuck for minutes (a pod namespace that does not answer): the conflist watch and
/// the endpoint go on, and SIGTERM still stops everything at once (the DaemonSet's
/// terminationGracePeriodSeconds is 5), leaving no scan behind.
#[test]
fn a_stuck_scan_blocks_neither_the_watch_nor_the_endpoint_nor_sigterm() {
    let n = node(&[&[]]);
    // Debug builds only: every scan sleeps 10 minutes before it starts.
    let mut w = spawn_watch_env(&n, &[("CALICO_PREFLIGHT_TEST_SCAN_STALL_MS", "600000")]);
    scrape_until(&n, &w, "the first install", 30, &|t| {
        value(t, "calico_preflight_conflist_repairs_total") == Some(1.0)
    });
    let tmp = n.conf().join(".calico-rewrite");
    std::fs::write(&tmp, n.calico_conflist()).expect("write");
    std::fs::rename(&tmp, n.conf().join("10-calico.conflist")).expect("rename");
    let text = scrape_until(&n, &w, "the repair during the stuck scan", 30, &|t| {
        value(t, "calico_preflight_conflist_repairs_total") == Some(2.0)
    });
    promtool_check(&text);
    assert!(!text.contains("calico_preflight_pods"), "{text}");
    assert_eq!(get(&n.host, "/readyz").map(|r| r.0), Some(503));
    assert_eq!(get(&n.host, "/healthz").map(|r| r.0), Some(200));
    let pid = w.pid();
    let started = Instant::now();
    assert_eq!(w.stop(), Some(0), "{}", w.output());
    // Not a timing assertion on speed: only that it did not wait for the stuck scan.
    assert!(started.elapsed() < Duration::from_secs(5), "{}", w.output());
    // No process of the watch's left behind (a scan in a child would be its child).
    let conf = n.conf().display().to_string();
    let left: Vec<String> = std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| {
            let p = e.ok()?.path();
            let cmd = std::fs::read(p.join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            (cmd.contains(&conf) && cmd.contains("calico-preflight")).then_some(cmd)
        })
        .collect();
    assert!(left.is_empty(), "left behind (watch pid {pid}): {left:?}");
}

/// `--scan-interval` without `--metrics-addr`: the watch scans and logs the node's state when
/// it changes (kubectl logs), and serves nothing.
#[test]
fn scans_without_an_endpoint_log_the_nodes_state() {
    let n = node(&[&[], &["no-host-route"]]);
    let mut w = spawn_watch_with(&n, &[], &[]);
    // The first scan starts at once; wait for its line (20 s at most).
    let said = (0..200).find_map(|_| {
        let text = std::fs::read_to_string(&w.err).unwrap_or_default();
        let line = text
            .lines()
            .find(|l| l.contains("node scan: "))
            .map(String::from);
        if line.is_none() {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        line
    });
    let Some(line) = said else {
        panic!("no scan logged: {}", w.output());
    };
    assert!(
        line.contains("2 pod(s), 1 healthy, 1 with errors") && line.contains("host-route"),
        "{line}\n{}",
        w.output()
    );
    assert!(get(&n.host, "/metrics").is_none(), "nothing is served");
    assert_eq!(w.stop(), Some(0), "{}", w.output());
}
