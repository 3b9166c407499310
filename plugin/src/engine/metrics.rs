//! doctor's report as Prometheus metrics, in the text exposition format 0.0.4
//! (prometheus/docs content/docs/instrumenting/exposition_formats.md): served by
//! `install --watch --metrics-addr` and written by `doctor --textfile` for node_exporter's
//! textfile collector. Pure: a report and counters in, text out.
//!
//! Choices:
//! - `calico_preflight_findings{check,severity}` has a series for every check id and both
//!   severities, zeros included, so that a series does not vanish when its problem is fixed
//!   (an alert then resolves on a 0, not on missing data, and `rate`/`changes` keep working).
//!   That is a fixed 2 x |checks| series per node.
//! - No pod names, namespaces or IPs in labels: a node's pods come and go, and each would be
//!   a new series (cardinality). Which pods are broken is `doctor`'s text/JSON output.
//! - No sample timestamps: node_exporter's textfile collector refuses them
//!   (prometheus/node_exporter collector/textfile.go), and the scrape time is right for the
//!   endpoint too. When the scan was made is `calico_preflight_last_scan_timestamp_seconds`.
//! - Until a scan has produced a report (the watch's first scan, or every one failing), the
//!   report's series are absent rather than zeros that would read as "healthy"; after a failed
//!   scan the last report's values stay, and the timestamp says how old they are.

use crate::checks::{CheckId, Severity};
use crate::engine::doctor::{self, Options, Report, Summary};
use crate::inspect::InspectError;
use std::fmt::Write as _;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// A report and when it was made.
#[derive(Debug, Clone)]
pub struct Scan {
    pub report: Report,
    /// When the scan finished.
    pub finished: SystemTime,
    pub duration: Duration,
}

/// What the metrics take from a scan: its summary and when it was made.
#[derive(Debug, Clone)]
pub struct ScanResult {
    pub summary: Summary,
    /// When the scan finished.
    pub finished: SystemTime,
    pub duration: Duration,
}

impl Scan {
    pub fn result(&self) -> ScanResult {
        ScanResult {
            summary: self.report.summary.clone(),
            finished: self.finished,
            duration: self.duration,
        }
    }
}

/// One doctor scan, timed.
pub fn timed_scan(o: &Options) -> Result<Scan, InspectError> {
    let started = Instant::now();
    test_hooks();
    let report = doctor::run(o)?;
    Ok(Scan {
        report,
        finished: SystemTime::now(),
        duration: started.elapsed(),
    })
}

/// Test hooks, debug builds only (release builds do not read the variables): a scan that
/// panics (`CALICO_PREFLIGHT_TEST_SCAN_PANIC`), or that is stuck for that many ms
/// (`CALICO_PREFLIGHT_TEST_SCAN_STALL_MS`), to prove that the watch survives both.
#[cfg(debug_assertions)]
fn test_hooks() {
    if std::env::var_os("CALICO_PREFLIGHT_TEST_SCAN_PANIC").is_some() {
        panic!("CALICO_PREFLIGHT_TEST_SCAN_PANIC is set");
    }
    if let Some(ms) = std::env::var("CALICO_PREFLIGHT_TEST_SCAN_STALL_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

#[cfg(not(debug_assertions))]
fn test_hooks() {}

/// What the exposition is rendered from.
#[derive(Debug, Clone, Default)]
pub struct Snapshot<'a> {
    /// The last scan that produced a report; `None`: none yet.
    pub last: Option<&'a ScanResult>,
    /// Scans that failed (counter, since the process started).
    pub scan_errors: u64,
    /// Times `install --watch` put our entry back (counter); `None`: not a watch (doctor
    /// repairs nothing), the series is left out.
    pub conflist_repairs: Option<u64>,
}

/// `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A label value as the text format wants it: backslash, double quote and newline escaped.
pub fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// HELP text: backslash and newline escaped (quotes are fine there).
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Seconds as the text format writes floats (Go's ParseFloat reads Rust's `{}` output).
fn secs(d: Duration) -> String {
    format!("{}", d.as_secs_f64())
}

pub fn render(s: &Snapshot) -> String {
    let mut out = String::new();
    if let Some(scan) = s.last {
        let sm = &scan.summary;
        header(
            &mut out,
            "calico_preflight_findings",
            "gauge",
            "Findings of the last scan, by check id and severity (node and pods together).",
        );
        for id in CheckId::ALL {
            let (e, w) = sm.by_check.get(id.as_str()).copied().unwrap_or((0, 0));
            for (sev, n) in [(Severity::Error, e), (Severity::Warn, w)] {
                let _ = writeln!(
                    out,
                    "calico_preflight_findings{{check=\"{}\",severity=\"{}\"}} {n}",
                    escape_label(id.as_str()),
                    severity_label(sev)
                );
            }
        }
        header(
            &mut out,
            "calico_preflight_pods",
            "gauge",
            "Pods on this node by their worst finding in the last scan: healthy, warning or error.",
        );
        for (status, n) in [
            ("healthy", sm.healthy),
            ("warning", sm.with_warnings_only),
            ("error", sm.with_errors),
        ] {
            let _ = writeln!(out, "calico_preflight_pods{{status=\"{status}\"}} {n}");
        }
        header(
            &mut out,
            "calico_preflight_last_scan_timestamp_seconds",
            "gauge",
            "When the last scan that produced a report finished, in seconds since the Unix epoch.",
        );
        let ts = scan
            .finished
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "calico_preflight_last_scan_timestamp_seconds {}",
            secs(ts)
        );
        header(
            &mut out,
            "calico_preflight_scan_duration_seconds",
            "gauge",
            "How long the last scan that produced a report took.",
        );
        let _ = writeln!(
            out,
            "calico_preflight_scan_duration_seconds {}",
            secs(scan.duration)
        );
    }
    header(
        &mut out,
        "calico_preflight_scan_errors_total",
        "counter",
        "Scans that failed (the node could not be checked).",
    );
    let _ = writeln!(out, "calico_preflight_scan_errors_total {}", s.scan_errors);
    if let Some(n) = s.conflist_repairs {
        header(
            &mut out,
            "calico_preflight_conflist_repairs_total",
            "counter",
            "Times install --watch wrote calico-preflight's entry into Calico's conflist (put it in or back).",
        );
        let _ = writeln!(out, "calico_preflight_conflist_repairs_total {n}");
    }
    out
}

fn severity_label(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warn => "warning",
        Severity::Off => "off",
    }
}

/// node_exporter's textfile collector reads only `*.prom` files
/// (prometheus/node_exporter collector/textfile.go).
pub fn textfile_name_ok(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.len() > ".prom".len() && n.ends_with(".prom"))
}

/// `calico_preflight_scan_errors_total` of the file the last run wrote, carried on: a counter
/// that every run set to 0 or 1 stayed at 1 through failed runs in a row, so `rate()` and
/// `increase()` saw no failure after the first (and a failed run drops the timestamp). Read as
/// install reads conf files (fsops::open_regular: no final symlink followed, no FIFO waited
/// on, bounded); anything unreadable counts from 0.
pub fn previous_scan_errors(path: &Path) -> u64 {
    let Ok(f) = crate::engine::install::fsops::open_regular(path) else {
        return 0;
    };
    String::from_utf8_lossy(&f.bytes)
        .lines()
        .find_map(|l| l.strip_prefix("calico_preflight_scan_errors_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Writes `text` to `path` atomically: a temp file in the same dir (O_EXCL|O_NOFOLLOW, named
/// `.<name>.<random>.calico-preflight.tmp`, which the collector skips), fsync'd, renamed over
/// `path`. A symlink at `path` is replaced, not followed. Mode 0644: node_exporter often runs
/// as another user.
pub fn write_textfile(path: &Path, text: &str) -> io::Result<()> {
    crate::engine::install::fsops::write_atomic(path, text.as_bytes(), 0o644, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Finding;
    use crate::engine::doctor::{PodReport, Summary};
    use std::collections::BTreeMap;

    fn finding(id: CheckId, sev: Severity) -> Finding {
        let mut f = Finding::new(id, "obj", "problem", "expected", "found", "remedy");
        f.severity = sev;
        f
    }

    fn pod(findings: Vec<Finding>) -> PodReport {
        PodReport {
            host_veth: "cali1".into(),
            pod: Some("cni-x\"y".into()),
            netns_path: None,
            interface: None,
            ips: vec![],
            k8s_namespace: Some("team-a".into()),
            k8s_pod: Some("web-0".into()),
            k8s_pod_uid: None,
            container_id: None,
            findings,
        }
    }

    fn report() -> Report {
        let pods = vec![
            pod(vec![]),
            pod(vec![finding(CheckId::HostRoute, Severity::Error)]),
            pod(vec![
                finding(CheckId::HostRoute, Severity::Error),
                finding(CheckId::PodArp, Severity::Warn),
            ]),
            pod(vec![finding(CheckId::PodArp, Severity::Warn)]),
        ];
        let mut by_check = BTreeMap::new();
        by_check.insert("host-route".to_string(), (2, 0));
        by_check.insert("pod-arp".to_string(), (0, 2));
        Report {
            format_version: 1,
            node: vec![],
            pods,
            summary: Summary {
                pods: 4,
                healthy: 1,
                with_errors: 2,
                with_warnings_only: 1,
                node_errors: 0,
                node_warnings: 0,
                by_check,
            },
            exit_code: 2,
            cni_cache: None,
            pod_not_found: None,
        }
    }

    fn scan() -> ScanResult {
        ScanResult {
            summary: report().summary,
            finished: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_250),
            duration: Duration::from_millis(125),
        }
    }

    fn value(text: &str, series: &str) -> Option<String> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ').map(String::from))
    }

    #[test]
    fn every_metric_with_help_type_and_values() {
        let s = scan();
        let text = render(&Snapshot {
            last: Some(&s),
            scan_errors: 3,
            conflist_repairs: Some(7),
        });
        let v = |series: &str| value(&text, series).unwrap_or_else(|| panic!("{series}\n{text}"));
        assert_eq!(
            v(r#"calico_preflight_findings{check="host-route",severity="error"}"#),
            "2"
        );
        assert_eq!(
            v(r#"calico_preflight_findings{check="pod-arp",severity="warning"}"#),
            "2"
        );
        assert_eq!(v(r#"calico_preflight_pods{status="healthy"}"#), "1");
        assert_eq!(v(r#"calico_preflight_pods{status="warning"}"#), "1");
        assert_eq!(v(r#"calico_preflight_pods{status="error"}"#), "2");
        assert_eq!(
            v("calico_preflight_last_scan_timestamp_seconds"),
            "1700000000.25"
        );
        assert_eq!(v("calico_preflight_scan_duration_seconds"), "0.125");
        assert_eq!(v("calico_preflight_scan_errors_total"), "3");
        assert_eq!(v("calico_preflight_conflist_repairs_total"), "7");
        for (name, kind) in [
            ("calico_preflight_findings", "gauge"),
            ("calico_preflight_pods", "gauge"),
            ("calico_preflight_last_scan_timestamp_seconds", "gauge"),
            ("calico_preflight_scan_duration_seconds", "gauge"),
            ("calico_preflight_scan_errors_total", "counter"),
            ("calico_preflight_conflist_repairs_total", "counter"),
        ] {
            assert_eq!(
                text.matches(&format!("# TYPE {name} {kind}\n")).count(),
                1,
                "{text}"
            );
            assert_eq!(
                text.matches(&format!("# HELP {name} ")).count(),
                1,
                "{text}"
            );
        }
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn zeros_for_every_check_and_severity_and_no_pod_names() {
        let s = scan();
        let text = render(&Snapshot {
            last: Some(&s),
            ..Snapshot::default()
        });
        for id in CheckId::ALL {
            for sev in ["error", "warning"] {
                let series = format!(
                    "calico_preflight_findings{{check=\"{}\",severity=\"{sev}\"}}",
                    id.as_str()
                );
                assert!(value(&text, &series).is_some(), "{series}\n{text}");
            }
        }
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("calico_preflight_findings{"))
                .count(),
            2 * CheckId::ALL.len()
        );
        for name in ["web-0", "team-a", "cni-x", "cali1"] {
            assert!(!text.contains(name), "{name} in\n{text}");
        }
        // A one-shot doctor is no watch: no repairs counter.
        assert!(!text.contains("conflist_repairs"), "{text}");
    }

    #[test]
    fn before_any_report_only_the_counters() {
        let text = render(&Snapshot {
            last: None,
            scan_errors: 1,
            conflist_repairs: Some(0),
        });
        assert!(!text.contains("calico_preflight_findings"), "{text}");
        assert!(!text.contains("calico_preflight_pods"), "{text}");
        assert!(!text.contains("last_scan_timestamp"), "{text}");
        assert_eq!(
            value(&text, "calico_preflight_scan_errors_total").as_deref(),
            Some("1")
        );
        assert_eq!(
            value(&text, "calico_preflight_conflist_repairs_total").as_deref(),
            Some("0")
        );
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        assert_eq!(escape_label(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
        assert_eq!(escape_label("host-route"), "host-route");
        assert_eq!(escape_help("a\\b\nc \"q\""), "a\\\\b\\nc \"q\"");
    }

    #[test]
    fn textfile_names() {
        assert!(textfile_name_ok(Path::new(
            "/var/lib/node_exporter/calico.prom"
        )));
        assert!(!textfile_name_ok(Path::new("/x/calico.txt")));
        assert!(!textfile_name_ok(Path::new("/x/.prom")));
        assert!(!textfile_name_ok(Path::new("/x/")));
    }

    #[test]
    fn textfile_is_replaced_atomically_and_a_symlink_is_not_followed() {
        // Removed on drop, also when an assertion fails.
        let t = crate::inspect::cni_files::tests::TempDir::new("metrics-unit");
        let d = t.0.clone();
        let victim = d.join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let path = d.join("calico.prom");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        write_textfile(&path, "calico_preflight_scan_errors_total 0\n").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert!(!std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "calico_preflight_scan_errors_total 0\n"
        );
        let names: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temp file left: {names:?}");
    }

    #[test]
    fn a_textfile_path_that_is_a_dir_fails_and_leaves_no_temp_file() {
        let t = crate::inspect::cni_files::tests::TempDir::new("metrics-dir");
        let d = t.0.clone();
        let path = d.join("calico.prom");
        std::fs::create_dir_all(path.join("inside")).unwrap();
        assert!(write_textfile(&path, "x 0\n").is_err());
        assert!(path.join("inside").is_dir());
        let names: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["calico.prom"], "no temp file left");
    }
}
