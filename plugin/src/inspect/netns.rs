//! Running a read-only closure inside another network namespace.
//!
//! The closure runs on a dedicated thread that enters the namespace with `setns` and ends with
//! it, so the plugin's own thread never changes namespace. The kernel rejects `setns` with
//! CLONE_NEWNET on any fd that is not a network namespace, which is what tells a regular file
//! or a mount namespace apart from the real thing.

use super::{Deadline, InspectError, NetnsProblem};
use nix::fcntl::{open, OFlag};
use nix::sched::{setns, CloneFlags};
use nix::sys::stat::{fstat, Mode, SFlag};
use nix::sys::statfs::{fstatfs, NSFS_MAGIC};
use std::sync::mpsc;

type Outcome<T> = Result<Result<T, NetnsProblem>, InspectError>;

/// The gathering threads need little stack; a small one is cheaper to map on every pod start.
const THREAD_STACK: usize = 256 * 1024;

/// One malloc arena for the whole process: a second thread would otherwise get an arena of its
/// own (a 64 MiB reservation and its page faults) on every pod start, for a few KiB of data.
fn single_arena() {
    // SAFETY: mallopt only adjusts allocator parameters; called before the thread allocates.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

pub fn in_netns<T, F>(path: &str, deadline: Deadline, f: F) -> Outcome<T>
where
    T: Send + 'static,
    F: FnOnce(Deadline) -> Result<T, InspectError> + Send + 'static,
{
    single_arena();
    let (tx, rx) = mpsc::channel();
    let owned = path.to_string();
    let spawned = std::thread::Builder::new()
        .name("netns".into())
        .stack_size(THREAD_STACK)
        .spawn(move || {
            test_stall();
            let result = match enter(&owned) {
                Err(problem) => Ok(Err(problem)),
                Ok(()) => f(deadline).map(Ok),
            };
            // The receiver may have given up after the deadline; nothing to do then.
            let _ = tx.send(result);
        });
    if let Err(e) = spawned {
        return Err(InspectError::io("start the namespace inspection thread", e));
    }
    let what = || format!("inspect the pod's network namespace {path}");
    let Some(left) = deadline.remaining() else {
        return Err(InspectError::TimedOut { what: what() });
    };
    match rx.recv_timeout(left) {
        Ok(r) => r,
        // The thread is left behind; the process exits right after reporting.
        Err(mpsc::RecvTimeoutError::Timeout) => Err(InspectError::TimedOut { what: what() }),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(InspectError::Io {
            what: what(),
            detail: "the inspection thread ended without an answer".into(),
        }),
    }
}

/// Test hook, debug builds only: a pod namespace whose inspection never answers in time, to
/// prove the deadline holds. Release builds do not read the variable.
#[cfg(debug_assertions)]
fn test_stall() {
    if let Some(ms) = std::env::var("CALICO_PREFLIGHT_TEST_STALL_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

#[cfg(not(debug_assertions))]
fn test_stall() {}

/// Runs `f(i, deadline)` inside each namespace of `paths` in turn, on one dedicated thread: a
/// node scan pays one thread for all pods, not one per pod. Each item gets `per_item` time; an
/// item that fails to answer in time is reported as timed out and the scan stops there.
pub fn in_each_netns<T, F>(
    paths: Vec<String>,
    per_item: std::time::Duration,
    f: F,
) -> Vec<Outcome<T>>
where
    T: Send + 'static,
    F: Fn(usize, Deadline) -> Result<T, InspectError> + Send + 'static,
{
    let n = paths.len();
    let (tx, rx) = mpsc::channel();
    let owned = paths.clone();
    single_arena();
    let spawned = std::thread::Builder::new()
        .name("netns-scan".into())
        .stack_size(THREAD_STACK)
        .spawn(move || {
            for (i, path) in owned.iter().enumerate() {
                let result = match enter(path) {
                    Err(problem) => Ok(Err(problem)),
                    Ok(()) => f(i, Deadline::after(per_item)).map(Ok),
                };
                if tx.send(result).is_err() {
                    return; // the caller gave up
                }
            }
        });
    if let Err(e) = spawned {
        let err = InspectError::io("start the namespace scan thread", e);
        return (0..n).map(|_| Err(err.clone())).collect();
    }
    let mut out = Vec::with_capacity(n);
    for path in &paths {
        // A little slack over the worker's own per-item deadline, for entering the namespace.
        match rx.recv_timeout(per_item + std::time::Duration::from_millis(100)) {
            Ok(r) => out.push(r),
            Err(_) => {
                let err = InspectError::TimedOut {
                    what: format!("inspect the pod's network namespace {path}"),
                };
                // The worker is stuck in this namespace: the rest cannot be inspected either.
                while out.len() < n {
                    out.push(Err(err.clone()));
                }
                break;
            }
        }
    }
    out
}

fn enter(path: &str) -> Result<(), NetnsProblem> {
    let problem = |found: String| NetnsProblem {
        path: path.to_string(),
        found,
    };
    // O_NONBLOCK: a FIFO planted at the path must not block the open.
    let fd = open(
        path,
        OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
        Mode::empty(),
    )
    .map_err(|e| problem(format!("cannot be opened: {}", e.desc())))?;
    let st = fstat(&fd).map_err(|e| problem(format!("cannot be examined: {}", e.desc())))?;
    let ftype = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    let on_nsfs = fstatfs(&fd)
        .map(|s| s.filesystem_type() == NSFS_MAGIC)
        .unwrap_or(false);
    if ftype == SFlag::S_IFDIR {
        return Err(problem("is a directory, not a network namespace".into()));
    }
    if !on_nsfs {
        return Err(problem(
            "is not a namespace file (expected a bind mount of /proc/<pid>/ns/net, e.g. under /var/run/netns)".into(),
        ));
    }
    setns(&fd, CloneFlags::CLONE_NEWNET).map_err(|e| {
        if e == nix::errno::Errno::EINVAL {
            problem("is a namespace, but not a network namespace".into())
        } else {
            problem(format!("cannot be entered: {}", e.desc()))
        }
    })
}
