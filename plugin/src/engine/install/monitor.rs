//! `install --watch --metrics-addr`: the watch process also scans the node like `doctor`, every
//! `--scan-interval`, and serves the result as Prometheus metrics (crate::engine::metrics).
//!
//! Threads, no async runtime: one runs the scans one after the other (they never overlap, and
//! the conflist watch on the main thread never waits for one), one answers HTTP through
//! `tiny_http` (which reads requests on its own small pool). Nothing of it is reachable from
//! ADD: only this subcommand starts it.
//!
//! Endpoints: `/metrics`; `/healthz` (liveness) answers 200 whenever the server runs, whatever
//! the node's health, so that a broken node does not get its monitor restarted; `/readyz`
//! answers 200 once the first scan finished, with a report or failed (a failure is a result:
//! it is in `calico_preflight_scan_errors_total`), 503 before.

use crate::engine::doctor;
use crate::engine::metrics::{self, Scan, Snapshot};
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const DEFAULT_SCAN_INTERVAL: Duration = Duration::from_secs(60);

/// How often the threads look at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

/// What `--metrics-addr` and `--scan-interval` ask for, with the scan's options (doctor's).
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorOpts {
    pub addr: SocketAddr,
    pub scan_interval: Duration,
    pub scan: doctor::Options,
}

/// What the threads share.
#[derive(Debug, Default)]
pub struct State {
    last: Mutex<Option<Scan>>,
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

    fn record(&self, outcome: Result<Scan, String>) -> Option<String> {
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
    /// Where the server listens (the port chosen by the kernel for port 0).
    pub local_addr: SocketAddr,
}

/// Binds the server (an error here is the operator's to fix: the port is taken, the address
/// is not the node's), then starts the scan and HTTP threads.
pub fn start(o: &MonitorOpts, stop: fn() -> bool) -> Result<Monitor, String> {
    let server = tiny_http::Server::http(o.addr).map_err(|e| format!("bind {}: {e}", o.addr))?;
    let local_addr = server.server_addr().to_ip().unwrap_or(o.addr);
    let state = Arc::new(State::default());
    let scans = {
        let (state, opts, interval) = (state.clone(), o.scan.clone(), o.scan_interval);
        std::thread::Builder::new()
            .name("scan".into())
            .spawn(move || scan_loop(&state, &opts, interval, stop))
    };
    let http = {
        let state = state.clone();
        std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || serve(&server, &state, stop))
    };
    if let Err(e) = scans.and(http) {
        return Err(format!("cannot start a thread: {e}"));
    }
    Ok(Monitor { state, local_addr })
}

/// Scans now, then every `interval` counted from the start of the previous scan; a scan that
/// takes longer is followed by the next one at once, never by two at the same time.
fn scan_loop(state: &State, opts: &doctor::Options, interval: Duration, stop: fn() -> bool) {
    let mut last_error: Option<String> = None;
    while !stop() {
        let started = Instant::now();
        // A panic is a bug, but one that must not silently freeze the metrics: it counts as
        // a failed scan (the panic message is on stderr).
        let outcome = match catch_unwind(AssertUnwindSafe(|| metrics::timed_scan(opts))) {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("the scan panicked (a bug: please report it)".into()),
        };
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

fn serve(server: &tiny_http::Server, state: &State, stop: fn() -> bool) {
    while !stop() {
        match server.recv_timeout(STOP_POLL) {
            Ok(Some(req)) => respond(req, state),
            Ok(None) => {}
            Err(_) => std::thread::sleep(STOP_POLL),
        }
    }
}

fn respond(req: tiny_http::Request, state: &State) {
    let (status, ctype, body) = answer(req.method(), req.url(), state);
    let mut resp = tiny_http::Response::from_string(body).with_status_code(status);
    if let Ok(h) = tiny_http::Header::from_bytes(&b"Content-Type"[..], ctype.as_bytes()) {
        resp = resp.with_header(h);
    }
    // The client may be gone already: nothing to do about it.
    let _ = req.respond(resp);
}

/// Status, content type and body for one request.
fn answer(method: &tiny_http::Method, url: &str, state: &State) -> (u16, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    if !matches!(method, tiny_http::Method::Get | tiny_http::Method::Head) {
        return (405, TEXT, "only GET\n".into());
    }
    // Prometheus may add query parameters; the path decides.
    let path = url.split('?').next().unwrap_or("");
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
        let get = tiny_http::Method::Get;
        assert_eq!(answer(&get, "/healthz", &s).0, 200);
        assert_eq!(answer(&get, "/readyz", &s).0, 503);
        let (code, ctype, body) = answer(&get, "/metrics?x=1", &s);
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
        assert_eq!(answer(&get, "/readyz", &s).0, 200);
        assert_eq!(answer(&get, "/healthz", &s).0, 200);
        s.count_repair();
        let body = answer(&get, "/metrics", &s).2;
        assert!(
            body.contains("calico_preflight_scan_errors_total 1"),
            "{body}"
        );
        assert!(
            body.contains("calico_preflight_conflist_repairs_total 1"),
            "{body}"
        );
        assert_eq!(answer(&get, "/", &s).0, 404);
        assert_eq!(answer(&tiny_http::Method::Post, "/metrics", &s).0, 405);
    }
}
