//! `install --watch --metrics-addr`: the watch process also scans the node like `doctor`, every
//! `--scan-interval`, and serves the result as Prometheus metrics (crate::engine::metrics).
//!
//! Threads, no async runtime: one runs the scans one after the other, each `doctor --json` in a
//! child process (they never overlap, and the conflist watch on the main thread never waits
//! for one), one answers HTTP (`http`: poll(2), bounded connections). Nothing of it is
//! reachable from ADD: only this subcommand starts it.
//!
//! Endpoints: `/metrics`; `/healthz` (liveness) answers 200 whenever the server runs, whatever
//! the node's health, so that a broken node does not get its monitor restarted; `/readyz`
//! answers 200 once the first scan finished, with a report or failed (a failure is a result:
//! it is in `calico_preflight_scan_errors_total`), 503 before.

use crate::engine::doctor::{self, Summary};
use crate::engine::metrics::{self, ScanResult, Snapshot};
use std::ffi::OsString;
use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

mod http;

pub const DEFAULT_SCAN_INTERVAL: Duration = Duration::from_secs(60);

/// How often the threads look at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

/// A scan still running after this is killed and counted as failed (at 500 pods one takes
/// about 0.1 s; each pod's queries are bounded by --timeout-ms).
const SCAN_DEADLINE: Duration = Duration::from_secs(600);

/// What a scan may print: the JSON report (about 1 KiB a pod) and its error message.
const MAX_SCAN_STDOUT: u64 = 32 << 20;
const MAX_SCAN_STDERR: u64 = 16 << 10;

/// What `--metrics-addr` and `--scan-interval` ask for, with the scan's options (doctor's).
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorOpts {
    /// `--metrics-addr`; `None`: the scans only report to the log (stderr) when the node's
    /// state changes.
    pub addr: Option<SocketAddr>,
    pub scan_interval: Duration,
    pub scan: doctor::Options,
}

/// What the threads share.
#[derive(Debug, Default)]
pub struct State {
    last: Mutex<Option<ScanResult>>,
    scan_errors: AtomicU64,
    repairs: AtomicU64,
    /// A scan has finished (with a report or not): ready.
    scanned: AtomicBool,
}

impl State {
    /// The watch wrote our entry into Calico's conflist.
    pub fn count_repair(&self) {
        self.repairs.fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        metrics::render(&Snapshot {
            last: last.as_ref(),
            scan_errors: self.scan_errors.load(Ordering::Relaxed),
            conflist_repairs: Some(self.repairs.load(Ordering::Relaxed)),
        })
    }

    fn record(&self, outcome: Result<ScanResult, String>) -> Option<String> {
        let err = match outcome {
            Ok(s) => {
                *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(s);
                None
            }
            Err(e) => {
                self.scan_errors.fetch_add(1, Ordering::Relaxed);
                Some(e)
            }
        };
        self.scanned.store(true, Ordering::Release);
        err
    }
}

/// A running monitor; the threads end when `stop()` says so.
pub struct Monitor {
    pub state: Arc<State>,
    /// Where the server listens (the port chosen by the kernel for port 0); `None`: no server.
    pub local_addr: Option<SocketAddr>,
}

/// Binds the server (an error here is the operator's to fix: the port is taken, the address
/// is not the node's), then starts the scan and HTTP threads.
pub fn start(o: &MonitorOpts, stop: fn() -> bool) -> Result<Monitor, String> {
    let server = match o.addr {
        Some(addr) => {
            let s = http::Server::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
            let local = s.local_addr().unwrap_or(addr);
            Some((s, local))
        }
        None => None,
    };
    let local_addr = server.as_ref().map(|(_, a)| *a);
    let state = Arc::new(State::default());
    let scans = {
        let state = state.clone();
        let (args, interval) = (crate::cli::doctor::scan_args(&o.scan), o.scan_interval);
        std::thread::Builder::new()
            .name("scan".into())
            .spawn(move || scan_loop(&state, &args, interval, stop))
    };
    let http = match server {
        Some((server, _)) => {
            let state = state.clone();
            std::thread::Builder::new()
                .name("metrics".into())
                .spawn(move || server.serve(STOP_POLL, stop, |r| answer(r, &state)))
                .map(|_| ())
        }
        None => Ok(()),
    };
    if let Err(e) = scans.map(|_| ()).and(http) {
        return Err(format!("cannot start a thread: {e}"));
    }
    Ok(Monitor { state, local_addr })
}

/// Scans now, then every `interval` counted from the start of the previous scan; a scan that
/// takes longer is followed by the next one at once, never by two at the same time.
fn scan_loop(state: &State, args: &[OsString], interval: Duration, stop: fn() -> bool) {
    let mut last_error: Option<String> = None;
    let mut last_said: Option<String> = None;
    while !stop() {
        let started = Instant::now();
        let Some(outcome) = scan_in_child(args, stop) else {
            return; // stopped
        };
        // The node's state in the log (kubectl logs) whenever it changes, metrics or not.
        if let Ok(r) = &outcome {
            let line = summary_line(&r.summary);
            if last_said.as_ref() != Some(&line) {
                eprintln!("calico-preflight install --watch: {line}");
                last_said = Some(line);
            }
        }
        match state.record(outcome) {
            Some(e) => {
                // Said once per distinct error, like the conflist watch does.
                if last_error.as_ref() != Some(&e) {
                    eprintln!(
                        "calico-preflight install --watch: scan failed: {e}\n  (counted in \
                         calico_preflight_scan_errors_total; retried every {interval:?})"
                    );
                }
                last_error = Some(e);
            }
            None => {
                if last_error.take().is_some() {
                    eprintln!("calico-preflight install --watch: scan recovered");
                }
            }
        }
        while !stop() && started.elapsed() < interval {
            std::thread::sleep(STOP_POLL.min(interval.saturating_sub(started.elapsed())));
        }
    }
}

/// "node scan: 12 pods, 11 healthy, 1 with errors (host-route), ...": what a scan found.
fn summary_line(s: &Summary) -> String {
    let failing: Vec<&str> = s
        .by_check
        .iter()
        .filter(|(_, (e, w))| e + w > 0)
        .map(|(c, _)| c.as_str())
        .collect();
    let mut line = format!(
        "node scan: {} pod(s), {} healthy, {} with errors, {} with warnings only; node: {} \
         error(s), {} warning(s)",
        s.pods, s.healthy, s.with_errors, s.with_warnings_only, s.node_errors, s.node_warnings
    );
    if !failing.is_empty() {
        line.push_str(&format!(
            " (checks: {}; `calico-preflight doctor` names them)",
            failing.join(", ")
        ));
    }
    line
}

/// One scan: `doctor --json` with the watch's scan options, in a child process of this same
/// binary. A child, not a thread: a scan that panics (a bug; release builds abort on a
/// panic, and main.rs's hook exits) ends the child, not the watch; one stuck in a pod
/// namespace that does not answer is killed at [`SCAN_DEADLINE`] or at SIGTERM, with the
/// threads it left behind; and its memory goes back with it. `None`: stopped meanwhile.
fn scan_in_child(args: &[OsString], stop: fn() -> bool) -> Option<Result<ScanResult, String>> {
    let started = Instant::now();
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg("doctor")
        .arg("--json")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec. The scan
    // dies with this thread, which lives as long as the process: no scan outlives the watch.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Some(Err(format!("cannot start the scan (doctor): {e}"))),
    };
    let out = drain(child.stdout.take(), MAX_SCAN_STDOUT);
    let err = drain(child.stderr.take(), MAX_SCAN_STDERR);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => {}
            Err(e) => {
                kill(&mut child);
                return Some(Err(format!("cannot wait for the scan: {e}")));
            }
        }
        if stop() {
            kill(&mut child);
            return None;
        }
        if started.elapsed() > SCAN_DEADLINE {
            kill(&mut child);
            return Some(Err(format!(
                "the scan did not finish in {SCAN_DEADLINE:?} and was stopped"
            )));
        }
        std::thread::sleep(Duration::from_millis(20).min(STOP_POLL));
    };
    let duration = started.elapsed();
    // A grandchild may hold the pipes open: wait for their end a little, not for ever.
    let collect =
        |rx: mpsc::Receiver<Vec<u8>>| rx.recv_timeout(Duration::from_secs(2)).unwrap_or_default();
    let (stdout, stderr) = (collect(out), collect(err));
    Some(judge(status, &stdout, &stderr).map(|summary| ScanResult {
        summary,
        finished: SystemTime::now(),
        duration,
    }))
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Reads a pipe to its end (at most `max` bytes) on a thread of its own.
fn drain(pipe: Option<impl Read + Send + 'static>, max: u64) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    if let Some(p) = pipe {
        let _ = std::thread::Builder::new()
            .name("scan-output".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let mut buf = Vec::new();
                let _ = p.take(max).read_to_end(&mut buf);
                let _ = tx.send(buf);
            });
    }
    rx
}

/// The report's summary from doctor's exit status and output, or why there is none.
fn judge(status: ExitStatus, stdout: &[u8], stderr: &[u8]) -> Result<Summary, String> {
    #[derive(serde::Deserialize)]
    struct Report {
        summary: Summary,
    }
    // Exit 0, 1 or 2: a report (healthy, warnings, errors).
    if matches!(status.code(), Some(0..=2)) {
        if let Ok(r) = serde_json::from_slice::<Report>(stdout) {
            return Ok(r.summary);
        }
    }
    // main.rs's panic hook prints a CNI error on stdout.
    if let Ok(e) = serde_json::from_slice::<serde_json::Value>(stdout) {
        if e.get("code").and_then(|c| c.as_u64()) == Some(999) {
            let details = e.get("details").and_then(|d| d.as_str()).unwrap_or("");
            return Err(format!(
                "the scan panicked (a bug: please report it): {}",
                first_chars(details, 300)
            ));
        }
    }
    let said = String::from_utf8_lossy(stderr);
    let said = said.trim();
    let said = said
        .strip_prefix("calico-preflight doctor: ")
        .unwrap_or(said);
    let how = match (
        status.code(),
        std::os::unix::process::ExitStatusExt::signal(&status),
    ) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        (None, None) => "ended".into(),
    };
    Err(if said.is_empty() {
        format!("doctor {how}, without a report")
    } else {
        format!("{} (doctor {how})", first_chars(said, 500))
    })
}

fn first_chars(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// The answer to one request.
fn answer(r: &http::Request, state: &State) -> http::Answer {
    let (status, content_type, body) = route(r.method, r.path, state);
    http::Answer {
        status,
        content_type,
        body,
    }
}

/// Status, content type and body for one request.
fn route(method: &str, path: &str, state: &State) -> (u16, &'static str, String) {
    const TEXT: &str = http::TEXT;
    if !matches!(method, "GET" | "HEAD") {
        return (405, TEXT, "only GET and HEAD\n".into());
    }
    match path {
        "/metrics" => (200, metrics::CONTENT_TYPE, state.render()),
        "/healthz" => (200, TEXT, "ok\n".into()),
        "/readyz" if state.scanned.load(Ordering::Acquire) => (200, TEXT, "ok\n".into()),
        "/readyz" => (503, TEXT, "the first scan has not finished yet\n".into()),
        _ => (404, TEXT, "not found: /metrics, /healthz, /readyz\n".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_after_the_first_scan_even_a_failed_one_and_always_live() {
        let s = State::default();
        let get = "GET";
        let answer = |m: &str, p: &str, s: &State| route(m, p.split('?').next().unwrap(), s);
        assert_eq!(answer(get, "/healthz", &s).0, 200);
        assert_eq!(answer(get, "/readyz", &s).0, 503);
        let (code, ctype, body) = answer(get, "/metrics?x=1", &s);
        assert_eq!((code, ctype), (200, metrics::CONTENT_TYPE));
        assert!(
            body.contains("calico_preflight_scan_errors_total 0"),
            "{body}"
        );
        assert!(!body.contains("calico_preflight_pods"), "{body}");
        assert_eq!(
            s.record(Err("netlink: EPERM".into())).as_deref(),
            Some("netlink: EPERM")
        );
        assert_eq!(answer(get, "/readyz", &s).0, 200);
        assert_eq!(answer(get, "/healthz", &s).0, 200);
        s.count_repair();
        let body = answer(get, "/metrics", &s).2;
        assert!(
            body.contains("calico_preflight_scan_errors_total 1"),
            "{body}"
        );
        assert!(
            body.contains("calico_preflight_conflist_repairs_total 1"),
            "{body}"
        );
        assert_eq!(answer(get, "/", &s).0, 404);
        assert_eq!(answer("POST", "/metrics", &s).0, 405);
    }
}
