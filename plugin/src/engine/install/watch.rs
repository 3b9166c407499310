//! `install --watch`: run the (idempotent) install again whenever the conf dir changes
//! (inotify) and at least every interval (polling, which also covers what inotify cannot
//! see: a dir replaced whole or behind a symlink, a file behind a link, inotify unavailable
//! or out of watches). inotify comes from `nix`, already a dependency: no extra crate, and
//! nothing of it runs on the plugin's ADD path.

use super::conflist::EXTENSIONS;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
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

/// Wakes the watch loop early when a CNI config file in the dir changes.
pub struct Waker {
    dir: PathBuf,
    inotify: Option<Inotify>,
    watching: bool,
    /// Why inotify is not in use, for the operator (None while it works).
    pub unavailable: Option<String>,
}

/// What Calico's installer (write + rename), an in-place rewrite (close after writing), a
/// removal or a chmod/chown/relabel do to a conf file, plus the dir itself going away.
fn flags() -> AddWatchFlags {
    AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_ATTRIB
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
        | AddWatchFlags::IN_ONLYDIR
}

impl Waker {
    pub fn new(dir: &Path) -> Waker {
        let mut w = Waker {
            dir: dir.to_path_buf(),
            inotify: None,
            watching: false,
            unavailable: None,
        };
        w.arm();
        w
    }

    /// (Re)starts watching; a dir not there yet is retried at the next wait.
    fn arm(&mut self) {
        if self.watching {
            return;
        }
        if self.inotify.is_none() {
            match Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC) {
                Ok(i) => self.inotify = Some(i),
                Err(e) => {
                    self.unavailable = Some(format!("inotify_init: {e}"));
                    return;
                }
            }
        }
        if let Some(i) = &self.inotify {
            match i.add_watch(&self.dir, flags()) {
                Ok(_) => {
                    self.watching = true;
                    self.unavailable = None;
                }
                Err(e) => self.unavailable = Some(format!("inotify_add_watch: {e}")),
            }
        }
    }

    /// Sleeps up to `timeout`; true when a conf file (or the dir) changed meanwhile.
    pub fn wait(&mut self, timeout: Duration) -> bool {
        self.arm();
        let (Some(i), true) = (&self.inotify, self.watching) else {
            std::thread::sleep(timeout);
            return false;
        };
        let mut pfd = libc::pollfd {
            fd: i.as_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd, count 1.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r <= 0 {
            // Timeout, or EINTR from SIGTERM: the caller looks at the stop flag either way.
            return false;
        }
        let events = match i.read_events() {
            Ok(ev) => ev,
            Err(_) => return false,
        };
        let mut relevant = false;
        let gone = AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_MOVE_SELF
            | AddWatchFlags::IN_IGNORED
            | AddWatchFlags::IN_Q_OVERFLOW;
        for ev in events {
            if ev.mask.intersects(gone) {
                // The dir was removed or moved, or events were lost: start over with a new
                // instance (closing the old one drops its watches) and look now.
                self.inotify = None;
                self.watching = false;
                return true;
            }
            // Our own temp files end in ".tmp": they wake nothing.
            relevant |= ev.name.as_ref().is_some_and(|n| {
                let n = n.as_encoded_bytes();
                let ext = n.rsplit(|&b| b == b'.').next().unwrap_or(&[]);
                n.contains(&b'.') && EXTENSIONS.iter().any(|e| e.as_bytes() == ext)
            });
        }
        relevant
    }
}

/// Calls `check` now, then whenever `waker` reports a change, and at least every `interval`,
/// until `stop()` says so, or after `iterations` further checks when given. Returns how many
/// checks ran.
pub fn run(
    interval: Duration,
    iterations: Option<u64>,
    waker: &mut Waker,
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
            if now >= next || waker.wait((next - now).min(STOP_POLL)) {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waker() -> Waker {
        Waker::new(Path::new("/nonexistent/calico-preflight-test"))
    }

    #[test]
    fn runs_the_install_plus_n_checks() {
        let mut n = 0;
        let ran = run(
            Duration::from_millis(1),
            Some(3),
            &mut waker(),
            || n += 1,
            || false,
        );
        assert_eq!((ran, n), (4, 4));
    }

    #[test]
    fn stops_when_asked_without_waiting_the_interval() {
        let started = Instant::now();
        let mut calls = 0;
        let ran = run(
            Duration::from_secs(3600),
            None,
            &mut waker(),
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

#[cfg(test)]
mod inotify_tests {
    use super::*;
    use std::fs;

    #[test]
    fn wakes_on_a_conf_file_not_on_a_temp_file() {
        let d = std::env::temp_dir().join(format!("cp-watch-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        let mut w = Waker::new(&d);
        assert!(w.unavailable.is_none(), "{:?}", w.unavailable);
        fs::write(d.join(".x.calico-preflight.tmp"), "{}").unwrap();
        assert!(!w.wait(Duration::from_millis(50)));
        fs::write(d.join("10-calico.conflist"), "{}").unwrap();
        let started = Instant::now();
        assert!(w.wait(Duration::from_secs(5)));
        assert!(started.elapsed() < Duration::from_secs(1));
        fs::remove_dir_all(&d).unwrap();
    }
}
