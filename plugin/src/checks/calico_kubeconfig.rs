//! `calico-kubeconfig`: the kubeconfig Calico's entry names (`kubernetes.kubeconfig`, written by
//! install-cni as /etc/cni/net.d/calico-kubeconfig) exists, parses, names an API server, and its
//! token, when a JWT, has not expired. Otherwise Calico fails every ADD with `error getting
//! ClusterInformation: connection is unauthorized: Unauthorized` (calico#6546, #7208, #8777,
//! #9235). Offline: nothing is sent to the API server; the token is never shown.

use super::{CheckId, Finding, NodeFacts, Severity};
use crate::inspect::calico_node_files::{
    CalicoNodeFiles, EntryLookup, KubeconfigFacts, TokenKind, TokenSource,
};

/// How calico-node rewrites the kubeconfig (node/pkg/cni/token_watch.go refreshes the token).
const REWRITE: &str = "calico-node writes this kubeconfig and refreshes its token (with a quarter of \
     its lifetime left): check that calico-node runs on this node and can reach the API server (its \
     log says why a refresh fails), then delete the calico-node pod on this node to have it written anew";

pub fn check(f: &NodeFacts) -> Vec<Finding> {
    let Some(cf) = &f.calico_files else {
        return vec![];
    };
    if let Some(w) = entry_warning(cf) {
        return vec![w];
    }
    let (EntryLookup::Found(entry), Some(k)) = (&cf.entry, &cf.kubeconfig) else {
        return vec![];
    };
    kubeconfig_findings(
        k,
        &entry.conflist.display().to_string(),
        cf.now_unix,
        f.token_warn_seconds,
    )
}

/// Said once, here, for both checks that need Calico's entry (calico-nodename stays quiet).
fn entry_warning(cf: &CalicoNodeFiles) -> Option<Finding> {
    let (conflist, found) = match &cf.entry {
        // No conflist of ours at all: cni-bin-dir already says so.
        EntryLookup::NoConflist | EntryLookup::Found(_) => return None,
        EntryLookup::NoCalicoPlugin { conflist } => {
            (conflist, "it has no plugin of type calico".to_string())
        }
        EntryLookup::Invalid { conflist, detail } => {
            (conflist, format!("Calico's entry cannot be read: {detail}"))
        }
    };
    Some(
        Finding::new(
            CheckId::CalicoKubeconfig,
            format!("CNI config file {}", conflist.display()),
            "Calico's plugin entry was not found, so its kubeconfig and nodename file are not checked",
            "a plugin of type calico in our conflist, with the settings Calico reads",
            found,
            "if this chain has no Calico plugin, turn these checks off (\"checks\": {\"calico-kubeconfig\": \"off\", \
             \"calico-nodename\": \"off\"}); otherwise fix the entry as Calico's install-cni writes it",
        )
        .at(Severity::Warn),
    )
}

fn kubeconfig_findings(k: &KubeconfigFacts, conflist: &str, now: i64, warn_s: u64) -> Vec<Finding> {
    let path = k.resolved.display().to_string();
    let object = format!("Calico's kubeconfig {path}");
    let named = if k.defaulted {
        format!(
            "{} (install-cni's default; {conflist} names no kubernetes.kubeconfig)",
            k.named.display()
        )
    } else {
        format!("kubernetes.kubeconfig {} in {conflist}", k.named.display())
    };
    let finding = |problem: &str, expected: &str, found: String, remedy: &str| {
        Finding::new(
            CheckId::CalicoKubeconfig,
            object.clone(),
            problem,
            expected,
            found,
            remedy,
        )
    };
    let kc = match &k.read {
        Ok(Some(kc)) => kc,
        Ok(None) => {
            return vec![finding(
                "the kubeconfig Calico's entry names does not exist",
                &format!("the file named by {named}"),
                format!("{path} does not exist"),
                &format!("Calico's CNI cannot reach its datastore and fails every pod. {REWRITE}"),
            )]
        }
        Err(e) => {
            return vec![finding(
                "Calico's kubeconfig cannot be read",
                "a readable kubeconfig (YAML)",
                format!("{path}: {e}"),
                &format!(
                "Calico's CNI fails every pod with `error building K8s client config`. {REWRITE}"
            ),
            )]
        }
    };
    if let Some(p) = &kc.problem {
        return vec![finding(
            "Calico's kubeconfig names no usable context",
            "a current-context whose context names a cluster and a user",
            format!("{path}: {p}"),
            &format!("client-go cannot build a client from it, so Calico's CNI fails every pod. {REWRITE}"),
        )];
    }
    if kc.server.is_none() {
        return vec![finding(
            "Calico's kubeconfig names no API server",
            &format!(
                "a server URL for cluster {:?}",
                kc.cluster.as_deref().unwrap_or_default()
            ),
            format!("{path}: the cluster's server is empty"),
            &format!(
                "install-cni writes the server from KUBERNETES_SERVICE_HOST/PORT; set them on calico-node if \
                 kube-proxy is not running. {REWRITE}"
            ),
        )];
    }
    let Some(t) = &kc.token else {
        return vec![];
    };
    let from = match &t.source {
        TokenSource::Inline => format!("the token in {path}"),
        TokenSource::File(p) => format!("the token file {}", p.display()),
    };
    let exp = match &t.kind {
        Err(e) => {
            return vec![finding(
                "the token file of Calico's kubeconfig cannot be read",
                "a readable tokenFile",
                e.clone(),
                &format!("Calico's CNI cannot authenticate and fails every pod. {REWRITE}"),
            )]
        }
        Ok(TokenKind::Exp(exp)) => *exp,
        // An opaque token or a JWT without expiry: nothing to tell offline.
        Ok(TokenKind::NotJwt | TokenKind::NoExp) => return vec![],
    };
    let when = format!(
        "{from} expires at {} (exp {exp}); the node's clock says {}",
        rfc3339(exp),
        rfc3339(now)
    );
    if exp <= now {
        return vec![finding(
            "the token in Calico's kubeconfig has expired",
            "a token whose exp is after the node's clock",
            format!("{when}, {} ago", span(now - exp)),
            &format!(
                "Calico's CNI fails every pod with `error getting ClusterInformation: connection is \
                 unauthorized: Unauthorized`. {REWRITE}. If the token looks fresh, check the node's clock \
                 (timedatectl)"
            ),
        )];
    }
    if (exp - now) as u64 <= warn_s {
        return vec![finding(
            "the token in Calico's kubeconfig expires soon",
            &format!("a token valid for more than tokenWarnSeconds ({warn_s} s)"),
            format!("{when}, in {}", span(exp - now)),
            &format!(
                "calico-node should have refreshed it long ago; once it expires every pod fails with \
                 `Unauthorized`. {REWRITE}"
            ),
        )
        .at(Severity::Warn)];
    }
    vec![]
}

/// `3h 2m 5s` style.
fn span(s: i64) -> String {
    let s = s.max(0);
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) => format!("{m}m {sec}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// Unix seconds as `2024-05-01T12:00:00Z` (days to civil date: H. Hinnant's algorithm).
pub(crate) fn rfc3339(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::calico_node_files::tests::{calico_kubeconfig, jwt};
    use crate::inspect::calico_node_files::{
        parse_kubeconfig, token_kind, CalicoEntry, TokenFacts,
    };
    use std::path::PathBuf;

    const NOW: i64 = 1_800_000_000;

    fn facts(
        read: Result<Option<crate::inspect::calico_node_files::Kubeconfig>, String>,
    ) -> NodeFacts {
        NodeFacts {
            calico_files: Some(CalicoNodeFiles {
                entry: EntryLookup::Found(CalicoEntry {
                    conflist: "/etc/cni/net.d/10-calico.conflist".into(),
                    ..CalicoEntry::default()
                }),
                kubeconfig: Some(KubeconfigFacts {
                    named: "/etc/cni/net.d/calico-kubeconfig".into(),
                    defaulted: false,
                    resolved: "/etc/cni/net.d/calico-kubeconfig".into(),
                    read,
                }),
                nodename: None,
                now_unix: NOW,
            }),
            token_warn_seconds: 3600,
            ..NodeFacts::default()
        }
    }

    fn with_token(t: &str) -> NodeFacts {
        let k = parse_kubeconfig(
            calico_kubeconfig("https://10.96.0.1:443", &format!("token: {t}")).as_bytes(),
        );
        facts(k.map(Some))
    }

    #[test]
    fn valid_opaque_and_expless_tokens_are_quiet() {
        for t in [
            jwt(&format!(r#"{{"exp":{}}}"#, NOW + 86_400)),
            "opaque".into(),
            jwt(r#"{"sub":"x"}"#),
        ] {
            assert!(check(&with_token(&t)).is_empty(), "{t}");
        }
        assert!(check(&NodeFacts::default()).is_empty());
    }

    #[test]
    fn expired_is_an_error_and_soon_a_warning_never_showing_the_token() {
        let t = jwt(&format!(r#"{{"exp":{}}}"#, NOW - 7200));
        let f = check(&with_token(&t));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Error);
        assert_eq!(f[0].problem, "the token in Calico's kubeconfig has expired");
        assert!(f[0].found.contains("2h 0m ago"), "{}", f[0].found);
        assert!(
            f[0].found.contains("2027-01-15T06:00:00Z"),
            "{}",
            f[0].found
        );
        assert!(f[0].remedy.contains("Unauthorized"));
        let t2 = jwt(&format!(r#"{{"exp":{}}}"#, NOW + 600));
        let f2 = check(&with_token(&t2));
        assert_eq!(f2[0].severity, Severity::Warn);
        assert!(f2[0].found.contains("in 10m 0s"), "{}", f2[0].found);
        for (tok, f) in [(&t, &f), (&t2, &f2)] {
            let text = format!("{f:?}");
            for part in tok.split('.') {
                assert!(!text.contains(part), "token part shown: {part}");
            }
        }
        // A zero window warns never; the error stays.
        let mut fx = with_token(&t2);
        fx.token_warn_seconds = 0;
        assert!(check(&fx).is_empty());
    }

    #[test]
    fn missing_unreadable_and_unusable_files() {
        let f = check(&facts(Ok(None)));
        assert_eq!(
            f[0].problem,
            "the kubeconfig Calico's entry names does not exist"
        );
        assert!(f[0]
            .expected
            .contains("kubernetes.kubeconfig /etc/cni/net.d/calico-kubeconfig in"));
        let f = check(&facts(Err("not valid YAML: x".into())));
        assert!(f[0].found.contains("not valid YAML"));
        let f = check(&facts(parse_kubeconfig(b"apiVersion: v1\n").map(Some)));
        assert!(f[0].found.contains("no current-context"));
        let f = check(&facts(
            parse_kubeconfig(calico_kubeconfig("''", "token: x").as_bytes()).map(Some),
        ));
        assert_eq!(f[0].problem, "Calico's kubeconfig names no API server");
        let mut k =
            parse_kubeconfig(calico_kubeconfig("https://x", "token: x").as_bytes()).unwrap();
        k.token = Some(TokenFacts {
            source: TokenSource::File(PathBuf::from("/t")),
            kind: Err("/t does not exist".into()),
        });
        assert!(check(&facts(Ok(Some(k))))[0].problem.contains("token file"));
        assert_eq!(token_kind("x"), TokenKind::NotJwt);
    }

    #[test]
    fn entry_not_found_warns_once_and_no_conflist_is_quiet() {
        let mut fx = facts(Ok(None));
        let cf = fx.calico_files.as_mut().unwrap();
        cf.entry = EntryLookup::NoCalicoPlugin {
            conflist: "/etc/cni/net.d/10-x.conflist".into(),
        };
        let f = check(&fx);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Warn);
        assert!(super::super::calico_nodename::check(&fx).is_empty());
        fx.calico_files.as_mut().unwrap().entry = EntryLookup::NoConflist;
        assert!(check(&fx).is_empty());
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(span(90_000), "1d 1h");
    }
}
