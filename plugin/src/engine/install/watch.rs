//! `install --watch`: run the (idempotent) install again every interval until told to stop.
//! Polling, not inotify: Calico's installer replaces the file at most every few seconds, a
//! re-check costs a few small reads, and polling also notices a dir that is replaced whole.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_sig: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, Ordering::SeqCst);
}

/// SIGTERM and SIGINT end the loop between two checks instead of killing the process in the
/// middle of one (a write is atomic anyway, but a clean exit also removes no-one's temp file).
pub fn install_signal_handlers() -> std::io::Result<()> {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the handler is
        // an extern "C" fn that only touches an atomic.
        let r = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// How long to sleep at most before looking at the stop condition again.
const STOP_POLL: Duration = Duration::from_millis(100);

/// Calls `check` now and then every `interval` until `stop()` says so, or after `iterations`
/// further checks when given. Returns how many checks ran.
pub fn run(
    interval: Duration,
    iterations: Option<u64>,
    mut check: impl FnMut(),
    mut stop: impl FnMut() -> bool,
) -> u64 {
    let mut ran = 0;
    loop {
        check();
        ran += 1;
        if iterations.is_some_and(|n| ran > n) {
            return ran;
        }
        let next = Instant::now() + interval;
        loop {
            if stop() {
                return ran;
            }
            let now = Instant::now();
            if now >= next {
                break;
            }
            std::thread::sleep((next - now).min(STOP_POLL));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_the_install_plus_n_checks() {
        let mut n = 0;
        let ran = run(Duration::from_millis(1), Some(3), || n += 1, || false);
        assert_eq!((ran, n), (4, 4));
    }

    #[test]
    fn stops_when_asked_without_waiting_the_interval() {
        let started = Instant::now();
        let mut calls = 0;
        let ran = run(
            Duration::from_secs(3600),
            None,
            || {},
            || {
                calls += 1;
                calls > 2
            },
        );
        assert_eq!(ran, 1);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
