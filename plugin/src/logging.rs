//! Log lines to the configured file (append) or stderr; never stdout, which carries the result.
//!
//! Each line is written with one `write` on an O_APPEND file, so lines from concurrent plugin
//! processes never interleave mid-line.

use crate::cni::env::escape_control;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

pub struct Logger {
    sink: Mutex<Sink>,
    level: log::LevelFilter,
    /// `pod=ns/name container=abc verb=ADD`, on every line.
    context: String,
}

enum Sink {
    File(File),
    Stderr,
}

impl Logger {
    /// Opens `file` for append; when it cannot be opened, logs to stderr and says why.
    pub fn new(file: Option<&Path>, level: log::LevelFilter, context: String) -> Logger {
        let mut fallback_reason = None;
        let sink = match file {
            None => Sink::Stderr,
            // O_NONBLOCK: a FIFO without a reader at that path must not hang the pod start.
            Some(p) => match OpenOptions::new()
                .create(true)
                .append(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(p)
            {
                Ok(f) if is_stdout(&f) => {
                    fallback_reason = Some(format!(
                        "logFile {} is this process's stdout, which carries the CNI result for the \
                         runtime to parse: logging to stderr instead; set logFile to a file of its own",
                        p.display()
                    ));
                    Sink::Stderr
                }
                Ok(f) => Sink::File(f),
                Err(e) => {
                    fallback_reason = Some(format!(
                        "cannot open logFile {}: {e}; logging to stderr",
                        p.display()
                    ));
                    Sink::Stderr
                }
            },
        };
        let logger = Logger {
            sink: Mutex::new(sink),
            level,
            context,
        };
        if let Some(why) = fallback_reason {
            logger.write_line(log::Level::Warn, &why);
        }
        logger
    }

    /// Installs as the `log` crate's logger (once per process; later calls are ignored).
    pub fn install(self) {
        let level = self.level;
        if log::set_boxed_logger(Box::new(self)).is_ok() {
            log::set_max_level(level);
        }
    }

    fn write_line(&self, level: log::Level, msg: &str) {
        // The one place text reaches the log: the context (pod name from CNI_ARGS) and the
        // message (paths from CNI_NETNS, CNI_PATH) are escaped, so a newline there can never
        // start a forged line of its own ("one line per event").
        let line = format!(
            "{} {} calico-preflight {} {}",
            timestamp(),
            level.as_str().to_ascii_lowercase(),
            self.context,
            msg
        );
        let line = format!("{}\n", escape_control(&line));
        let Ok(mut sink) = self.sink.lock() else {
            return;
        };
        // A failed log write must never fail the pod; there is nowhere left to report it.
        let _ = match &mut *sink {
            Sink::File(f) => f.write_all(line.as_bytes()),
            Sink::Stderr => std::io::stderr().lock().write_all(line.as_bytes()),
        };
    }
}

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= self.level
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            self.write_line(r.level(), &r.args().to_string());
        }
    }
    fn flush(&self) {}
}

/// Whether `f` is the file behind fd 1 (`/dev/stdout`, `/proc/self/fd/1`, or the very file the
/// runtime captures our stdout into): log lines there would come before the result JSON and
/// break the runtime's parse of it.
fn is_stdout(f: &File) -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let (Ok(ours), Ok(out)) = (
        f.metadata(),
        nix::sys::stat::fstat(std::io::stdout().as_fd()),
    ) else {
        return false;
    };
    ours.dev() == out.st_dev && ours.ino() == out.st_ino
}

/// RFC 3339 UTC with milliseconds, without pulling in a date crate.
pub fn timestamp() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        now.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(20_513), (2026, 3, 1));
    }

    #[test]
    fn lines_go_to_the_file_one_per_event() {
        /// Removed on drop, also when an assertion fails.
        struct TempDir(std::path::PathBuf);
        impl Drop for TempDir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        let dir = TempDir(std::env::temp_dir().join(format!("cp-log-{}", std::process::id())));
        std::fs::create_dir_all(&dir.0).unwrap();
        let p = dir.0.join("x.log");
        let l = Logger::new(Some(&p), log::LevelFilter::Info, "pod=a/b verb=ADD".into());
        l.write_line(log::Level::Warn, "two\nlines");
        let s = std::fs::read_to_string(&p).unwrap();
        assert_eq!(s.lines().count(), 1);
        assert!(
            s.contains("warn calico-preflight pod=a/b verb=ADD two\\nlines"),
            "{s}"
        );
        // The context (the pod name from CNI_ARGS) is escaped like the message.
        let l = Logger::new(
            Some(&p),
            log::LevelFilter::Info,
            "pod=a/b\r\nforged verb=ADD".into(),
        );
        l.write_line(log::Level::Info, "x");
        let s = std::fs::read_to_string(&p).unwrap();
        assert_eq!(s.lines().count(), 2, "{s}");
        assert!(s.contains("pod=a/b\\r\\nforged verb=ADD x"), "{s}");
    }
}
