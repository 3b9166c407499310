//! Turning findings into what people read: the CNI error (which ends up in `kubectl describe
//! pod`) and the log lines.

use crate::checks::{Finding, Severity};
use crate::cni::{CniError, ErrorCode};
use crate::inspect::InspectError;

/// The error that fails ADD/CHECK: the first error-severity finding in `msg`, every finding in
/// `details`. `None` when nothing is at error severity.
pub fn findings_error(findings: &[Finding]) -> Option<CniError> {
    let errors: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    let first = errors.first()?;
    let mut msg = format!("calico-preflight: {}", first.headline());
    if errors.len() > 1 {
        msg.push_str(&format!(" (and {} more)", errors.len() - 1));
    }
    Some(CniError::new(
        ErrorCode::CheckFailed,
        msg,
        details(findings),
    ))
}

/// Every finding, errors first, as one line each joined by " | ".
pub fn details(findings: &[Finding]) -> String {
    let mut sorted: Vec<&Finding> = findings.iter().collect();
    sorted.sort_by_key(|f| std::cmp::Reverse(f.severity));
    sorted
        .iter()
        .map(|f| f.detail())
        .collect::<Vec<_>>()
        .join(" | ")
}

pub fn log_findings(findings: &[Finding]) {
    for f in findings {
        match f.severity {
            Severity::Error => log::error!("{}", f.detail()),
            Severity::Warn => log::warn!("{}", f.detail()),
            Severity::Off => {}
        }
    }
}

pub fn inspect_error(e: InspectError, timeout_ms: u128) -> CniError {
    match e {
        InspectError::TimedOut { what } => CniError::new(
            ErrorCode::TryAgainLater,
            format!("calico-preflight: timed out after {timeout_ms} ms trying to {what}"),
            format!(
                "the kernel did not answer within timeoutMs={timeout_ms}; the node may be overloaded \
                 (a burst of pod starts) or a namespace is stuck: retry, or raise timeoutMs in the \
                 calico-preflight entry of the conflist"
            ),
        ),
        other => CniError::new(
            ErrorCode::IoFailure,
            format!("calico-preflight: {other}"),
            "the plugin could not read the network state it checks; it needs CAP_NET_ADMIN and \
             CAP_SYS_ADMIN (it runs as root under the container runtime)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{CheckId, Finding};

    fn f(id: CheckId, sev: Severity) -> Finding {
        let mut f = Finding::new(id, "host veth cali1", "thing is wrong", "a", "b", "fix it");
        f.severity = sev;
        f
    }

    #[test]
    fn message_names_first_error_and_counts_the_rest() {
        let fs = [
            f(CheckId::HostVethMac, Severity::Warn),
            f(CheckId::HostRoute, Severity::Error),
            f(CheckId::IpConflict, Severity::Error),
        ];
        let e = findings_error(&fs).unwrap();
        assert_eq!(e.code, ErrorCode::CheckFailed);
        assert_eq!(
            e.msg,
            "calico-preflight: host-route: thing is wrong, on host veth cali1 (and 1 more)"
        );
        assert!(e.details.starts_with("[ERROR host-route]"), "{}", e.details);
        assert!(e.details.contains("[WARNING host-veth-mac]"));
        assert!(e
            .details
            .contains("Expected: a. Found: b. What to do: fix it"));
    }

    #[test]
    fn warnings_alone_do_not_fail() {
        assert!(findings_error(&[f(CheckId::HostVethMac, Severity::Warn)]).is_none());
    }

    #[test]
    fn timeouts_are_try_again_later() {
        let e = inspect_error(
            InspectError::TimedOut {
                what: "look up interface eth0".into(),
            },
            2000,
        );
        assert_eq!(e.code, ErrorCode::TryAgainLater);
        assert!(e.msg.contains("2000 ms") && e.msg.contains("eth0"));
    }
}
