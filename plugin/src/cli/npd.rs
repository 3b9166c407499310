//! `doctor --npd`: the report as a node-problem-detector custom plugin's answer.
//!
//! The contract is NPD's (kubernetes/node-problem-detector
//! pkg/custompluginmonitor/plugin/plugin.go): the exit status is the verdict, 0 OK, 1 NonOK
//! (the condition turns True, or a temporary rule's event), anything else Unknown (NPD's own
//! plugins use 2, config/plugin/check_ntp.sh); stdout, read up to 4096 bytes and trimmed, is
//! the condition's or event's message, cut by NPD at `max_output_length` bytes, which may split
//! a UTF-8 character. So we print one line that already fits, cut on a character boundary,
//! the most important finding first; stderr (which NPD logs) gets the full finding lines.

use super::doctor::line as finding_line;
use crate::checks::{Finding, Severity};
use crate::cni::env::escape_control;
use crate::engine::doctor::{self, Options, PodReport, Report};
use std::io::Write;

/// NPD's default `max_output_length` (pkg/custompluginmonitor/types/config.go).
pub const DEFAULT_MAX_OUTPUT_LENGTH: usize = 80;
/// NPD reads no more of a plugin's stdout than this (plugin.go `maxCustomPluginBufferBytes`).
pub const MAX_OUTPUT_LENGTH_LIMIT: usize = 4096;

/// The exit statuses NPD tells apart (plugin.go, custompluginmonitor/types Status).
pub const OK: i32 = 0;
pub const NON_OK: i32 = 1;
pub const UNKNOWN: i32 = 2;

/// What `--npd` was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// `--npd-warnings`: warnings are a problem too (exit 1), not only errors.
    pub warnings: bool,
    /// `--max-output-length`: stdout's one line is at most this many bytes (newline aside).
    pub max_len: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            warnings: false,
            max_len: DEFAULT_MAX_OUTPUT_LENGTH,
        }
    }
}

/// The plugin's answer: one line and the exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub line: String,
    pub exit_code: i32,
}

/// Whether the arguments ask for NPD mode, looked for before parsing so that a usage error
/// is answered the NPD way too (a line on stdout and exit 2, not 64 and stderr only, which
/// would leave the condition Unknown with an empty message).
pub fn requested(args: &[std::ffi::OsString]) -> bool {
    args.iter().any(|a| a == "--npd" || a == "--npd-warnings")
}

/// `--max-output-length N`: 1..=4096 (NPD never reads more than 4096 bytes of stdout).
pub fn parse_max_output_length(v: &str) -> Result<usize, String> {
    v.parse()
        .ok()
        .filter(|n| (1..=MAX_OUTPUT_LENGTH_LIMIT).contains(n))
        .ok_or_else(|| {
            format!(
                "--max-output-length must be 1..{MAX_OUTPUT_LENGTH_LIMIT} \
                 (node-problem-detector's max_output_length), got {v:?}"
            )
        })
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

const MORE: &str = ", ...";

/// Joins `pieces` (each after the first starts with its separator) into at most `max` bytes:
/// whole pieces while they fit with room for ", ..." after them, else the first piece cut on
/// a character boundary with "..." after it.
fn fit(pieces: &[String], max: usize) -> String {
    let full: String = pieces.concat();
    if full.len() <= max {
        return full;
    }
    let mut out = String::new();
    for p in pieces {
        if out.len() + p.len() + MORE.len() > max {
            break;
        }
        out.push_str(p);
    }
    if !out.is_empty() {
        out.push_str(MORE);
        return out;
    }
    if max < 3 {
        return cut(&full, max).to_string();
    }
    format!("{}...", cut(&full, max - 3))
}

/// How a pod is named in the line: `namespace/name` (libcni's cache), else its namespace's
/// bind-mount name, else its host veth; control characters escaped (names come from the node).
fn pod_name(p: &PodReport) -> String {
    let name = if p.k8s_name().is_some() || p.pod.is_some() {
        p.display_name()
    } else {
        p.host_veth.clone()
    };
    escape_control(&name).into_owned()
}

/// The distinct check ids of `findings` at severity `s`, in report order.
fn checks_at(findings: &[Finding], s: Severity) -> Vec<&'static str> {
    let mut ids: Vec<&'static str> = Vec::new();
    for f in findings.iter().filter(|f| f.severity == s) {
        let id = f.check.as_str();
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// One group of the line: "node: a, b" or "3 pods broken: a on x, b on y".
fn push_group(pieces: &mut Vec<String>, header: String, items: Vec<String>) {
    for (i, item) in items.into_iter().enumerate() {
        let sep = match (i, pieces.is_empty()) {
            (0, true) => "",
            (0, false) => "; ",
            _ => ", ",
        };
        if i == 0 {
            pieces.push(format!("{sep}{header}{item}"));
        } else {
            pieces.push(format!("{sep}{item}"));
        }
    }
}

/// The pods whose worst finding is `s`, as "check[,check] on name", by name so that the
/// message (which NPD may compare between runs) does not change with the scan order.
fn pod_items(pods: &[PodReport], s: Severity) -> Vec<String> {
    let mut items: Vec<(String, String)> = pods
        .iter()
        .filter(|p| p.worst() == Some(s))
        .map(|p| (pod_name(p), checks_at(&p.findings, s).join(",")))
        .collect();
    items.sort();
    items
        .into_iter()
        .map(|(name, checks)| format!("{checks} on {name}"))
        .collect()
}

/// The report as NPD's answer: errors first (the node's before the pods', since every new pod
/// on a broken node fails), then, with `warnings`, the warnings in the same order.
pub fn summarize(r: &Report, s: Settings) -> Answer {
    // `--pod` naming a pod this node does not have: no verdict on it, not "healthy".
    if let Some(nf) = &r.pod_not_found {
        return unknown(
            &format!(
                "no pod {} on this node ({} pods found)",
                nf.pod, nf.pods_found
            ),
            s.max_len,
        );
    }
    let node_errors = checks_at(&r.node, Severity::Error);
    let node_warnings = checks_at(&r.node, Severity::Warn);
    let error_pods = pod_items(&r.pods, Severity::Error);
    let warn_pods = pod_items(&r.pods, Severity::Warn);
    let has_errors = !node_errors.is_empty() || !error_pods.is_empty();
    let has_warnings = !node_warnings.is_empty() || !warn_pods.is_empty();

    if has_errors || (s.warnings && has_warnings) {
        let mut pieces = Vec::new();
        let item = |c: &str| c.to_string();
        push_group(
            &mut pieces,
            "node: ".into(),
            node_errors.iter().map(|c| item(c)).collect(),
        );
        let n = error_pods.len();
        push_group(
            &mut pieces,
            format!("{} broken: ", plural(n, "pod", "pods")),
            error_pods,
        );
        if s.warnings {
            push_group(
                &mut pieces,
                "node warnings: ".into(),
                node_warnings.iter().map(|c| item(c)).collect(),
            );
            let n = warn_pods.len();
            push_group(
                &mut pieces,
                format!("{} with warnings: ", plural(n, "pod", "pods")),
                warn_pods,
            );
        }
        return Answer {
            line: fit(&pieces, s.max_len),
            exit_code: NON_OK,
        };
    }

    let scope = match r.pods.len() {
        0 => "node (no pods)".to_string(),
        n => format!("node and {}", plural(n, "pod", "pods")),
    };
    let line = if has_warnings {
        let n = r
            .node
            .iter()
            .chain(r.pods.iter().flat_map(|p| p.findings.iter()))
            .filter(|f| f.severity == Severity::Warn)
            .count();
        format!(
            "calico-preflight: no errors on {scope}; {}",
            plural(n, "warning", "warnings")
        )
    } else {
        format!("calico-preflight: {scope} healthy")
    };
    Answer {
        line: fit(&[line], s.max_len),
        exit_code: OK,
    }
}

/// The answer when there is no verdict: the scan failed, or the arguments are wrong.
pub fn unknown(what: &str, max_len: usize) -> Answer {
    let text = format!("could not check: {}", escape_control(what));
    Answer {
        line: fit(&[text], max_len),
        exit_code: UNKNOWN,
    }
}

/// Writes that cannot panic: NPD may have gone (killed us on timeout) and closed the pipes.
fn print(a: &Answer) -> i32 {
    let _ = writeln!(std::io::stdout(), "{}", a.line);
    a.exit_code
}

/// A usage error in NPD mode: the usual message on stderr, a line on stdout, exit 2.
pub fn usage_error(e: &str) -> i32 {
    super::grammar::usage_error("doctor", e);
    print(&unknown(
        &format!("usage error: {e} (see calico-preflight doctor --help)"),
        DEFAULT_MAX_OUTPUT_LENGTH,
    ))
}

/// `doctor --npd`: scan, answer on stdout, the full finding lines on stderr for NPD's log.
pub fn main(opts: &Options, s: Settings) -> i32 {
    match doctor::run(opts) {
        Ok(r) => {
            let mut log = String::new();
            for f in &r.node {
                log.push_str(&finding_line("node", f));
            }
            for p in &r.pods {
                for f in &p.findings {
                    log.push_str(&finding_line(&p.label(), f));
                }
            }
            let _ = std::io::stderr().write_all(log.as_bytes());
            print(&summarize(&r, s))
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "calico-preflight doctor: {e}");
            print(&unknown(&e.to_string(), s.max_len))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::CheckId;
    use crate::engine::doctor::Summary;

    fn finding(check: CheckId, severity: Severity) -> Finding {
        let mut f = Finding::new(check, "obj", "problem", "expected", "found", "remedy");
        f.severity = severity;
        f
    }

    fn pod(
        ns: Option<&str>,
        name: Option<&str>,
        netns: Option<&str>,
        fs: Vec<Finding>,
    ) -> PodReport {
        PodReport {
            host_veth: "cali0123456789a".into(),
            pod: netns.map(String::from),
            netns_path: None,
            interface: Some("eth0".into()),
            ips: vec![],
            k8s_namespace: ns.map(String::from),
            k8s_pod: name.map(String::from),
            k8s_pod_uid: None,
            container_id: None,
            findings: fs,
        }
    }

    fn report(node: Vec<Finding>, pods: Vec<PodReport>) -> Report {
        Report {
            format_version: 1,
            node,
            pods,
            summary: Summary::default(),
            exit_code: 0,
            cni_cache: None,
            pod_not_found: None,
        }
    }

    fn at(max_len: usize, warnings: bool) -> Settings {
        Settings { warnings, max_len }
    }

    #[test]
    fn healthy_node_is_ok_with_a_short_line() {
        let r = report(
            vec![],
            (0..12)
                .map(|_| pod(Some("default"), Some("web"), None, vec![]))
                .collect(),
        );
        let a = summarize(&r, Settings::default());
        assert_eq!(a.exit_code, OK);
        assert_eq!(a.line, "calico-preflight: node and 12 pods healthy");
        let none = summarize(&report(vec![], vec![]), Settings::default());
        assert_eq!(none.line, "calico-preflight: node (no pods) healthy");
    }

    #[test]
    fn warnings_are_ok_unless_asked_for() {
        let r = report(
            vec![finding(CheckId::HostNetworkManager, Severity::Warn)],
            vec![pod(
                Some("default"),
                Some("web-0"),
                None,
                vec![finding(CheckId::HostVethMac, Severity::Warn)],
            )],
        );
        let a = summarize(&r, Settings::default());
        assert_eq!(a.exit_code, OK);
        assert_eq!(
            a.line,
            "calico-preflight: no errors on node and 1 pod; 2 warnings"
        );
        let w = summarize(&r, at(200, true));
        assert_eq!(w.exit_code, NON_OK);
        assert_eq!(
            w.line,
            "node warnings: host-network-manager; 1 pod with warnings: host-veth-mac on default/web-0"
        );
    }

    #[test]
    fn errors_node_first_then_pods_by_name_then_warnings() {
        let r = report(
            vec![
                finding(CheckId::CniBinDir, Severity::Error),
                finding(CheckId::CniBinDir, Severity::Error),
                finding(CheckId::HostNetworkManager, Severity::Warn),
            ],
            vec![
                pod(
                    Some("default"),
                    Some("web-1"),
                    None,
                    vec![
                        finding(CheckId::HostRoute, Severity::Error),
                        finding(CheckId::HostVethMac, Severity::Warn),
                        finding(CheckId::PodDefaultRoute, Severity::Error),
                    ],
                ),
                pod(
                    Some("default"),
                    Some("web-0"),
                    None,
                    vec![finding(CheckId::HostRoute, Severity::Error)],
                ),
                // No cache entry: the bind-mount name; not even that: the host veth.
                pod(
                    None,
                    None,
                    Some("cni-1234"),
                    vec![finding(CheckId::HostRoute, Severity::Error)],
                ),
                pod(
                    None,
                    None,
                    None,
                    vec![finding(CheckId::HostVethMac, Severity::Warn)],
                ),
            ],
        );
        let a = summarize(&r, at(4096, false));
        assert_eq!(a.exit_code, NON_OK);
        assert_eq!(
            a.line,
            "node: cni-bin-dir; 3 pods broken: host-route on cni-1234, \
             host-route on default/web-0, host-route,pod-default-route on default/web-1"
        );
        let w = summarize(&r, at(4096, true));
        assert!(
            w.line.starts_with(&a.line)
                && w.line.ends_with(
                    "; node warnings: host-network-manager; \
                     1 pod with warnings: host-veth-mac on cali0123456789a"
                ),
            "{}",
            w.line
        );
        // At NPD's default length: whole items that fit, then ", ...".
        let short = summarize(&r, Settings::default());
        assert_eq!(
            short.line,
            "node: cni-bin-dir; 3 pods broken: host-route on cni-1234, ..."
        );
        assert!(short.line.len() <= DEFAULT_MAX_OUTPUT_LENGTH);
    }

    #[test]
    fn names_from_the_node_are_escaped() {
        let r = report(
            vec![],
            vec![pod(
                Some("default"),
                Some("evil\nline"),
                None,
                vec![finding(CheckId::HostRoute, Severity::Error)],
            )],
        );
        let a = summarize(&r, at(4096, false));
        assert_eq!(a.line, "1 pod broken: host-route on default/evil\\nline");
        assert!(!a.line.contains('\n'));
    }

    #[test]
    fn cut_never_splits_a_character() {
        // "é" is 2 bytes, "日" 3, "🦀" 4: at every length each cut is valid UTF-8 and as long
        // as it can be.
        let s = "aé日🦀b";
        for max in 0..=s.len() + 1 {
            let c = cut(s, max);
            assert!(c.len() <= max, "{max}: {c:?}");
            assert!(s.starts_with(c));
            let next = s[c.len()..].chars().next().map_or(0, char::len_utf8);
            assert!(c.len() == s.len() || c.len() + next > max, "{max}: {c:?}");
        }
        assert_eq!(cut(s, 2), "a");
        assert_eq!(cut(s, 3), "aé");
        assert_eq!(cut(s, 5), "aé");
        assert_eq!(cut(s, 6), "aé日");
    }

    #[test]
    fn a_multibyte_name_at_the_cut_point() {
        // One pod whose name runs past the limit: the line is cut inside the name, on a
        // character boundary, with "..." after it, and stays within max at every length.
        let name = "日本語のポッド名".repeat(4);
        let r = report(
            vec![],
            vec![pod(
                Some("名前空間"),
                Some(&name),
                None,
                vec![finding(CheckId::HostRoute, Severity::Error)],
            )],
        );
        let full = summarize(&r, at(4096, false)).line;
        assert!(full.len() > 80);
        for max in 1..=full.len() {
            let a = summarize(&r, at(max, false));
            assert!(a.line.len() <= max, "{max}: {:?}", a.line);
            assert_eq!(a.exit_code, NON_OK);
            if max >= 3 && max < full.len() {
                assert!(a.line.ends_with("..."), "{max}: {:?}", a.line);
                assert!(full.starts_with(a.line.trim_end_matches("...")));
            }
        }
        let a = summarize(&r, Settings::default());
        assert!(a
            .line
            .starts_with("1 pod broken: host-route on 名前空間/日本語"));
        assert!(a.line.len() <= 80 && a.line.len() >= 77, "{:?}", a.line);
    }

    #[test]
    fn a_pod_not_on_this_node_is_unknown_not_healthy() {
        let mut r = report(vec![], vec![]);
        r.pod_not_found = Some(crate::engine::doctor_cache::PodNotFound {
            pod: "default/web-0".into(),
            pods_found: 3,
            found: vec![],
        });
        let a = summarize(&r, Settings::default());
        assert_eq!(a.exit_code, UNKNOWN);
        assert_eq!(
            a.line,
            "could not check: no pod default/web-0 on this node (3 pods found)"
        );
    }

    #[test]
    fn unknown_is_exit_2_and_fits() {
        let a = unknown("cannot open netlink: Permission denied\nmore", 30);
        assert_eq!(a.exit_code, UNKNOWN);
        assert!(a.line.len() <= 30 && !a.line.contains('\n'), "{:?}", a.line);
        assert!(a.line.starts_with("could not check: "));
    }

    #[test]
    fn max_output_length_is_validated() {
        assert_eq!(parse_max_output_length("80"), Ok(80));
        assert_eq!(parse_max_output_length("1"), Ok(1));
        assert_eq!(parse_max_output_length("4096"), Ok(4096));
        for bad in ["0", "4097", "-1", "", "80s", " 80", "1e3"] {
            let e = parse_max_output_length(bad).unwrap_err();
            assert!(
                e.contains("--max-output-length must be 1..4096"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn npd_mode_is_seen_before_parsing() {
        let a = |v: &[&str]| requested(&v.iter().map(std::ffi::OsString::from).collect::<Vec<_>>());
        assert!(a(&["--bogus", "--npd"]));
        assert!(a(&["--npd-warnings"]));
        assert!(!a(&["--json"]));
    }
}
