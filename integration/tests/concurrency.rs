//! A burst of pod starts: 100 calico-preflight ADDs at once on one node, all logging to the same
//! file. Every answer must be the right one for its own pod, and the shared log must hold only
//! whole lines (one `write` per line on an O_APPEND file). The node checks run too, with their
//! cache in a private dir that another thread keeps corrupting during the burst: a corrupt entry
//! is a cache miss, never a wrong answer, and the cache ends as one whole, valid file.

use calico_preflight_integration::*;
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const PODS: usize = 100;
/// Pods wired at a time (fake-calico runs ~15 `ip` commands per pod).
const WIRING_THREADS: usize = 6;
/// Bound on the 100 concurrent ADDs, end to end.
const BURST_LIMIT: Duration = Duration::from_secs(40);

struct Pod {
    ns: Netns,
    env: CniEnv,
    broken: bool,
    /// calico's result, the prevResult the plugin gets.
    prev: Value,
    /// The same, printed: what a healthy pod's ADD must print, byte for byte.
    prev_text: String,
}

fn pod_ips(i: usize) -> Vec<String> {
    let mut ips = vec![format!("10.244.{}.{}/32", i / 200, i % 200 + 2)];
    // Every third pod is dual-stack.
    if i.is_multiple_of(3) {
        ips.push(format!("fd00:10::{:x}/128", i + 2));
    }
    ips
}

/// Wires pod `i` with fake-calico inside `host`; every 5th is left without its host route.
fn wire(host: &Netns, i: usize) -> Pod {
    let ns = Netns::new("cc");
    let mut env = CniEnv::new("ADD", &ns.path(), "eth0");
    env.args = format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=burst;K8S_POD_NAME=pod-{i}");
    let broken = i.is_multiple_of(5);
    let conf = json!({
        "cniVersion": "1.0.0",
        "name": "k8s-pod-network",
        "type": "fake-calico",
        "ips": pod_ips(i),
        "shape": if i.is_multiple_of(2) { "v3.31" } else { "v3.30" },
        "break": if broken { vec!["no-host-route"] } else { vec![] },
    });
    let run = run_plugin(
        Some(host),
        &bin("fake-calico"),
        &env.vars(),
        conf.to_string().as_bytes(),
    );
    assert_eq!(run.status, 0, "wiring pod {i}: {run:?}");
    Pod {
        ns,
        env,
        broken,
        prev_text: run.json().to_string(),
        prev: run.json(),
    }
}

fn wire_all(host: &Netns) -> Vec<Pod> {
    let chunks: Vec<Vec<usize>> = (0..WIRING_THREADS)
        .map(|t| (0..PODS).filter(|i| i % WIRING_THREADS == t).collect())
        .collect();
    let mut pods: Vec<(usize, Pod)> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|idx| {
                s.spawn(move || {
                    idx.into_iter()
                        .map(|i| (i, wire(host, i)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("wiring thread"))
            .collect()
    });
    pods.sort_by_key(|(i, _)| *i);
    pods.into_iter().map(|(_, p)| p).collect()
}

/// Kills the burst's processes if the test fails before they are reaped.
struct Reaper(Vec<u32>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for pid in &self.0 {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).output();
        }
    }
}

fn spawn_preflight(host: &Netns, pod: &Pod) -> Child {
    Command::new("nsenter")
        .arg(format!("--net={}", host.path()))
        .arg(bin("calico-preflight"))
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .envs(pod.env.vars())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn calico-preflight")
}

/// `2026-01-02T03:04:05.678Z `: the logger's RFC 3339 prefix.
fn starts_with_timestamp(line: &str) -> bool {
    let b = line.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        r.into_iter()
            .all(|i| b.get(i).is_some_and(u8::is_ascii_digit))
    };
    b.len() > 25
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'.'
        && digits(20..23)
        && b[23] == b'Z'
        && b[24] == b' '
}

#[test]
fn a_hundred_concurrent_adds_each_get_their_own_answer_and_the_log_stays_whole() {
    let started = Instant::now();
    let host = Netns::new("cch");
    // Like a Calico node (calico-node turns forwarding on).
    host.sysctl("net.ipv4.ip_forward", "1");
    host.sysctl("net.ipv6.conf.all.forwarding", "1");
    let pods = wire_all(&host);
    let wired = started.elapsed();

    let log = std::env::temp_dir().join(format!("cp-burst-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    struct RmOnDrop(std::path::PathBuf);
    impl Drop for RmOnDrop {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _rm = RmOnDrop(log.clone());
    let cache_dir = std::env::temp_dir().join(format!("cp-burst-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache_dir);
    struct RmDirOnDrop(std::path::PathBuf);
    impl Drop for RmDirOnDrop {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _rm_cache = RmDirOnDrop(cache_dir.clone());
    let stdins: Vec<Vec<u8>> = pods
        .iter()
        .map(|p| {
            json!({
                "cniVersion": "1.0.0",
                "name": "k8s-pod-network",
                "type": "calico-preflight",
                "logFile": log.display().to_string(),
                "nodeChecks": true,
                "cacheDir": cache_dir.display().to_string(),
                "confDir": "/nonexistent/cp-burst",
                "prevResult": p.prev,
            })
            .to_string()
            .into_bytes()
        })
        .collect();

    // One call first, to learn the node's cache file; then a thread keeps tearing it during the
    // burst (a crash mid-write of an older version, a disk error: what a reader must survive).
    // (Logging elsewhere: the shared log must hold exactly the burst's lines.)
    let mut side: Value = serde_json::from_slice(&stdins[1]).expect("stdin JSON");
    side["logFile"] = json!(cache_dir.with_extension("side.log"));
    let side = side.to_string().into_bytes();
    let warm = run_plugin(
        Some(&host),
        &bin("calico-preflight"),
        &pods[1].env.vars(),
        &side,
    );
    assert_eq!(warm.status, 0, "warm-up call: {warm:?}");
    let cache_files = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&cache_dir)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    let cache_file = cache_files()
        .into_iter()
        .next()
        .expect("a node-check cache file");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let corrupter = {
        let (stop, path) = (stop.clone(), cache_file.clone());
        std::thread::spawn(move || {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let junk: &[u8] = if n.is_multiple_of(2) {
                    b"{\"format\":1,\"key\":\"trunc"
                } else {
                    b"\0\0\0"
                };
                let _ = std::fs::write(&path, junk);
                n += 1;
                std::thread::sleep(Duration::from_micros(300));
            }
        })
    };

    // Start all 100 first (each blocks reading stdin), then release them together.
    let mut children: Vec<Child> = pods.iter().map(|p| spawn_preflight(&host, p)).collect();
    let mut reaper = Reaper(children.iter().map(Child::id).collect());
    let burst = Instant::now();
    for (c, s) in children.iter_mut().zip(&stdins) {
        let mut si = c.stdin.take().expect("stdin");
        si.write_all(s).expect("write stdin");
    }
    let (tx, rx) = mpsc::channel();
    for (i, c) in children.into_iter().enumerate() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let _ = tx.send((i, c.wait_with_output()));
        });
    }
    drop(tx);
    let mut outputs: Vec<Option<std::process::Output>> = (0..PODS).map(|_| None).collect();
    for _ in 0..PODS {
        let left = BURST_LIMIT.saturating_sub(burst.elapsed());
        let (i, out) = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("the burst did not finish within {BURST_LIMIT:?}"));
        outputs[i] = Some(out.expect("wait calico-preflight"));
    }
    let burst_took = burst.elapsed();
    reaper.0.clear();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    corrupter.join().expect("corrupter thread");
    // Whatever the last torn write left, the next call replaces it with a whole entry.
    let after = run_plugin(
        Some(&host),
        &bin("calico-preflight"),
        &pods[1].env.vars(),
        &side,
    );
    let _ = std::fs::remove_file(cache_dir.with_extension("side.log"));
    assert_eq!(after.status, 0, "call after the burst: {after:?}");
    // One entry per distinct input: IPv4-only pods and dual-stack ones (IPv6 forwarding is
    // checked for the latter). No temp file is left behind.
    let files = cache_files();
    assert!(files.contains(&cache_file) && files.len() <= 2, "{files:?}");
    let entry: Value = serde_json::from_slice(&std::fs::read(&cache_file).expect("cache file"))
        .expect("the cache file is whole JSON");
    assert!(entry["findings"].is_array(), "{entry}");
    for f in &files {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        assert!(
            name.starts_with("node-checks-") && name.ends_with(".json"),
            "stray file {f:?}"
        );
    }

    let mut failures = Vec::new();
    for (i, (pod, out)) in pods.iter().zip(&outputs).enumerate() {
        let out = out.as_ref().expect("every pod answered");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let status = out.status.code().unwrap_or(-1);
        let ctx = format!(
            "pod-{i} (broken={}): status {status} stdout {stdout} stderr {stderr}",
            pod.broken
        );
        if stderr.contains("panicked") {
            failures.push(format!("panicked: {ctx}"));
            continue;
        }
        if pod.broken {
            let e: Value = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
            let msg = e["msg"].as_str().unwrap_or_default();
            if status != 1 || e["code"] != 100 || !msg.starts_with("calico-preflight: host-route: ")
            {
                failures.push(ctx);
            }
        } else if status != 0 || stdout.trim() != pod.prev_text {
            failures.push(ctx);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {PODS} answers wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );

    let text = std::fs::read_to_string(&log).expect("shared log file");
    assert!(text.ends_with('\n'), "the log ends mid-line");
    let lines: Vec<&str> = text.lines().collect();
    for l in &lines {
        assert!(
            starts_with_timestamp(l),
            "torn or interleaved log line: {l:?}"
        );
        assert!(
            l.contains(" calico-preflight pod=burst/pod-"),
            "foreign log line: {l:?}"
        );
        assert_eq!(
            l.matches("calico-preflight pod=").count(),
            1,
            "two lines in one: {l:?}"
        );
    }
    let outcomes: Vec<&&str> = lines.iter().filter(|l| l.contains("outcome=")).collect();
    assert_eq!(outcomes.len(), PODS, "outcome lines: {outcomes:#?}");
    for (i, pod) in pods.iter().enumerate() {
        let tag = format!("pod=burst/pod-{i} verb=ADD outcome=");
        let mine: Vec<&&&str> = outcomes.iter().filter(|l| l.contains(&tag)).collect();
        assert_eq!(mine.len(), 1, "pod-{i}: {mine:?}");
        let want = if pod.broken {
            "outcome=fail code=100"
        } else {
            "outcome=ok"
        };
        assert!(mine[0].contains(want), "pod-{i}: {}", mine[0]);
    }

    eprintln!(
        "wired {PODS} pods in {wired:?}; {PODS} concurrent ADDs took {burst_took:?}; total {:?}",
        started.elapsed()
    );
    // Pod namespaces go before the host one (drop order of the locals is the reverse anyway).
    drop(pods.into_iter().map(|p| p.ns).collect::<Vec<_>>());
}
