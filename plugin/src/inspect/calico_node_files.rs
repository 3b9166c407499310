//! The node files Calico's CNI plugin needs before it can do anything: the kubeconfig its entry
//! names (its API server credentials) and the nodename file calico-node writes. Read-only,
//! offline (no request to the API server), under the host root. The token itself is never
//! kept: only whether it is a JWT and its `exp`.

use super::cni_files::CniFiles;
use super::rooted;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use yaml_rust2::Yaml;

/// Where Calico's install-cni writes the kubeconfig it names in the entry
/// (cni-plugin/pkg/install/install.go: `c.CNINetDir + "/calico-kubeconfig"`).
pub const DEFAULT_KUBECONFIG: &str = "/etc/cni/net.d/calico-kubeconfig";
/// Calico's default (cni-plugin/pkg/plugin/plugin.go, `nodeNameFile`).
pub const DEFAULT_NODENAME_FILE: &str = "/var/lib/calico/nodename";
/// A kubeconfig with embedded certificates is a few KiB; a token file well under one.
const MAX_KUBECONFIG_BYTES: u64 = 256 << 10;
const MAX_TOKEN_BYTES: u64 = 64 << 10;
/// Kubernetes node names are at most 253 bytes.
const MAX_NODENAME_BYTES: u64 = 4096;

/// The keys of Calico's plugin entry these checks read (cni-plugin/pkg/types/types.go NetConf).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CalicoEntry {
    /// The conflist holding it.
    pub conflist: PathBuf,
    /// `kubernetes.kubeconfig`.
    pub kubeconfig: Option<String>,
    /// `datastore_type` (Calico's default is etcdv3, install-cni writes "kubernetes").
    pub datastore_type: Option<String>,
    /// `nodename`.
    pub nodename: Option<String>,
    /// `nodename_file`.
    pub nodename_file: Option<String>,
    /// `nodename_file_optional`.
    pub nodename_file_optional: bool,
}

/// Calico's entry, or why it could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryLookup {
    /// No conflist in the conf dir holds our network (cni-bin-dir says so).
    NoConflist,
    /// Our conflist has no plugin of type `calico`.
    NoCalicoPlugin {
        conflist: PathBuf,
    },
    /// A key has a type Go's json.Unmarshal refuses, as Calico would (it then fails to load).
    Invalid {
        conflist: PathBuf,
        detail: String,
    },
    Found(CalicoEntry),
}

/// Reads Calico's keys from its entry in our conflist.
pub fn calico_entry(cni: &CniFiles) -> EntryLookup {
    let (file, m) = match super::calico_conf::raw_entry(cni, super::calico_conf::CALICO_TYPE) {
        Ok(found) => found,
        Err(None) => return EntryLookup::NoConflist,
        Err(Some(file)) => {
            return EntryLookup::NoCalicoPlugin {
                conflist: file.path.clone(),
            }
        }
    };
    let conflist = file.path.clone();
    match entry_from(m) {
        Ok(mut e) => {
            e.conflist = conflist;
            EntryLookup::Found(e)
        }
        Err(detail) => EntryLookup::Invalid { conflist, detail },
    }
}

fn entry_from(m: &Map<String, Value>) -> Result<CalicoEntry, String> {
    let s = |m: &Map<String, Value>, k: &str, shown: &str| match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("'{shown}' is not a string")),
    };
    let kubeconfig = match m.get("kubernetes") {
        None | Some(Value::Null) => None,
        Some(Value::Object(k)) => s(k, "kubeconfig", "kubernetes.kubeconfig")?,
        Some(_) => return Err("'kubernetes' is not an object".into()),
    };
    Ok(CalicoEntry {
        conflist: PathBuf::new(),
        kubeconfig,
        datastore_type: s(m, "datastore_type", "datastore_type")?,
        nodename: s(m, "nodename", "nodename")?,
        nodename_file: s(m, "nodename_file", "nodename_file")?,
        nodename_file_optional: match m.get("nodename_file_optional") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err("'nodename_file_optional' is not true or false".into()),
        },
    })
}

/// What the kubeconfig's token is, never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenKind {
    /// Not three base64url parts with a JSON payload (an opaque token): no expiry to read.
    NotJwt,
    /// A JWT without a numeric `exp`.
    NoExp,
    /// A JWT expiring at this Unix time.
    Exp(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `user.token` in the kubeconfig.
    Inline,
    /// `user.tokenFile` (resolved as client-go does: relative to the kubeconfig's dir).
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFacts {
    pub source: TokenSource,
    /// The token's kind, or why the token file could not be read.
    pub kind: Result<TokenKind, String>,
}

/// What client-go would take from the kubeconfig: current-context -> context -> cluster, user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kubeconfig {
    pub current_context: Option<String>,
    pub cluster: Option<String>,
    pub server: Option<String>,
    pub user: Option<String>,
    /// Why client-go could not build a client from it (no current-context, unknown context...).
    pub problem: Option<String>,
    pub token: Option<TokenFacts>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeconfigFacts {
    /// The path as Calico's entry names it (or the default, see `defaulted`).
    pub named: PathBuf,
    /// The entry names none: `named` is install-cni's default path, looked at only if present.
    pub defaulted: bool,
    /// Where it was read: `named` under the host root.
    pub resolved: PathBuf,
    /// `Ok(None)`: the file does not exist; `Err`: it could not be read or parsed.
    pub read: Result<Option<Kubeconfig>, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodenameFacts {
    pub named: PathBuf,
    pub resolved: PathBuf,
    /// The file's contents, trimmed (`Ok(None)`: it does not exist).
    pub read: Result<Option<String>, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalicoNodeFiles {
    pub entry: EntryLookup,
    /// `None` when the entry was not found or names no kubeconfig.
    pub kubeconfig: Option<KubeconfigFacts>,
    pub nodename: Option<NodenameFacts>,
    /// The node's clock when gathered (Unix seconds), for the token's expiry.
    pub now_unix: i64,
}

/// Gathers Calico's kubeconfig and nodename file as Calico's entry names them.
pub fn gather(cni: &CniFiles, host_root: &Path) -> CalicoNodeFiles {
    let now_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let entry = calico_entry(cni);
    let (kubeconfig, nodename) = match &entry {
        EntryLookup::Found(e) => (
            kubeconfig_facts(e, host_root),
            Some(nodename_facts(e, host_root)),
        ),
        _ => (None, None),
    };
    CalicoNodeFiles {
        entry,
        kubeconfig,
        nodename,
        now_unix,
    }
}

fn kubeconfig_facts(e: &CalicoEntry, host_root: &Path) -> Option<KubeconfigFacts> {
    // install-cni always names its kubeconfig in the entry; one naming none reads no file of its
    // own (its datastore is etcd, or its client comes from the environment). Then the default
    // path is checked only when a kubeconfig is there (a missing one is no finding).
    let (named, defaulted) = match e.kubeconfig.as_deref() {
        Some(k) => (PathBuf::from(k), false),
        None => (PathBuf::from(DEFAULT_KUBECONFIG), true),
    };
    let read = match rooted::read_small(host_root, &named, MAX_KUBECONFIG_BYTES) {
        Ok(Some(bytes)) => parse_kubeconfig(&bytes).map(|mut k| {
            if let Some(t) = &mut k.token {
                if let TokenSource::File(p) = &t.source {
                    let p = if p.is_relative() {
                        named.parent().unwrap_or(Path::new("/")).join(p)
                    } else {
                        p.clone()
                    };
                    t.kind = token_file_kind(host_root, &p);
                    t.source = TokenSource::File(p);
                }
            }
            Some(k)
        }),
        Ok(None) => Ok(None),
        Err(e) => Err(e),
    };
    if defaulted && matches!(read, Ok(None)) {
        return None;
    }
    Some(KubeconfigFacts {
        resolved: rooted::host_path(host_root, &named),
        named,
        defaulted,
        read,
    })
}

fn token_file_kind(host_root: &Path, p: &Path) -> Result<TokenKind, String> {
    match rooted::read_small(host_root, p, MAX_TOKEN_BYTES) {
        // client-go trims the file's contents (transport/token_source.go).
        Ok(Some(bytes)) => Ok(token_kind(String::from_utf8_lossy(&bytes).trim())),
        Ok(None) => Err(format!(
            "{} does not exist",
            rooted::host_path(host_root, p).display()
        )),
        Err(e) => Err(format!(
            "{}: {e}",
            rooted::host_path(host_root, p).display()
        )),
    }
}

fn nodename_facts(e: &CalicoEntry, host_root: &Path) -> NodenameFacts {
    let named = PathBuf::from(e.nodename_file.as_deref().unwrap_or(DEFAULT_NODENAME_FILE));
    let read = rooted::read_small(host_root, &named, MAX_NODENAME_BYTES)
        .map(|o| o.map(|b| String::from_utf8_lossy(&b).trim().to_string()));
    NodenameFacts {
        resolved: rooted::host_path(host_root, &named),
        named,
        read,
    }
}

/// The token's kind: a JWT's `exp` from its payload (base64url JSON), never verified.
pub fn token_kind(token: &str) -> TokenKind {
    use base64::Engine;
    let parts: Vec<&str> = token.split('.').collect();
    let [_, payload, _] = parts.as_slice() else {
        return TokenKind::NotJwt;
    };
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let Ok(bytes) = engine.decode(payload) else {
        return TokenKind::NotJwt;
    };
    let Ok(Value::Object(claims)) = serde_json::from_slice::<Value>(&bytes) else {
        return TokenKind::NotJwt;
    };
    match claims.get("exp") {
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .map_or(TokenKind::NoExp, TokenKind::Exp),
        _ => TokenKind::NoExp,
    }
}

/// Parses a kubeconfig (YAML, or JSON, which is YAML) the way client-go picks from it.
pub fn parse_kubeconfig(bytes: &[u8]) -> Result<Kubeconfig, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?;
    let docs = yaml_rust2::YamlLoader::load_from_str(text).map_err(|e| {
        // The scanner's message names line and column, never the content.
        format!("not valid YAML: {e}")
    })?;
    let doc = match docs.first() {
        Some(d @ Yaml::Hash(_)) => d,
        Some(_) => return Err("not a YAML mapping".into()),
        None => return Err("empty".into()),
    };
    let str_of = |y: &Yaml| y.as_str().map(str::to_string).filter(|s| !s.is_empty());
    let mut k = Kubeconfig {
        current_context: str_of(&doc["current-context"]),
        ..Kubeconfig::default()
    };
    // A named entry of a list (`clusters`, `contexts`, `users`): its inner mapping.
    let named = |list: &str, inner: &str, name: &str| -> Option<Yaml> {
        doc[list]
            .as_vec()?
            .iter()
            .find(|e| e["name"].as_str() == Some(name))
            .map(|e| e[inner].clone())
    };
    let Some(ctx_name) = k.current_context.clone() else {
        k.problem = Some("it sets no current-context".into());
        return Ok(k);
    };
    let Some(ctx) = named("contexts", "context", &ctx_name) else {
        k.problem = Some(format!(
            "its current-context {ctx_name:?} is not among its contexts"
        ));
        return Ok(k);
    };
    k.cluster = str_of(&ctx["cluster"]);
    k.user = str_of(&ctx["user"]);
    match &k.cluster {
        None => k.problem = Some(format!("context {ctx_name:?} names no cluster")),
        Some(c) => match named("clusters", "cluster", c) {
            None => k.problem = Some(format!("cluster {c:?} is not among its clusters")),
            Some(cl) => k.server = str_of(&cl["server"]),
        },
    }
    if let Some(u) = named("users", "user", k.user.as_deref().unwrap_or_default()) {
        // client-go: tokenFile, when set, is what the transport sends (re-read as it changes).
        if let Some(f) = str_of(&u["tokenFile"]) {
            k.token = Some(TokenFacts {
                source: TokenSource::File(PathBuf::from(f)),
                kind: Ok(TokenKind::NotJwt),
            });
        } else if let Some(t) = u["token"].as_str().filter(|t| !t.is_empty()) {
            k.token = Some(TokenFacts {
                source: TokenSource::Inline,
                kind: Ok(token_kind(t.trim())),
            });
        }
    }
    Ok(k)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use base64::Engine;

    /// A JWT with this payload (header and signature are never looked at).
    pub(crate) fn jwt(payload: &str) -> String {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.{}",
            e.encode(r#"{"alg":"RS256","kid":"x"}"#),
            e.encode(payload),
            e.encode("not-a-signature")
        )
    }

    /// Calico's install-cni template (cni-plugin/pkg/install/install.go calculateKubeconfig).
    pub(crate) fn calico_kubeconfig(server: &str, user_line: &str) -> String {
        format!(
            "# Kubeconfig file for Calico CNI plugin.\napiVersion: v1\nkind: Config\nclusters:\n\
             - name: local\n  cluster:\n    server: {server}\n    certificate-authority-data: \"TFMwdA==\"\n\
             users:\n- name: calico\n  user:\n    {user_line}\ncontexts:\n- name: calico-context\n  \
             context:\n    cluster: local\n    user: calico\ncurrent-context: calico-context\n"
        )
    }

    #[test]
    fn install_cni_template_parses() {
        let t = jwt(
            r#"{"exp":1700000000,"sub":"system:serviceaccount:calico-system:calico-cni-plugin"}"#,
        );
        let k = parse_kubeconfig(
            calico_kubeconfig("https://10.96.0.1:443", &format!("token: {t}")).as_bytes(),
        )
        .unwrap();
        assert_eq!(k.problem, None);
        assert_eq!(k.server.as_deref(), Some("https://10.96.0.1:443"));
        assert_eq!(
            k.token,
            Some(TokenFacts {
                source: TokenSource::Inline,
                kind: Ok(TokenKind::Exp(1700000000))
            })
        );
        // The facts never hold the token.
        assert!(!format!("{k:?}").contains(&t));
    }

    #[test]
    fn json_kubeconfig_and_structural_problems() {
        let j = r#"{"apiVersion":"v1","clusters":[{"name":"c","cluster":{"server":"https://x"}}],
            "contexts":[{"name":"ctx","context":{"cluster":"c","user":"u"}}],"current-context":"ctx",
            "users":[{"name":"u","user":{"tokenFile":"token"}}]}"#;
        let k = parse_kubeconfig(j.as_bytes()).unwrap();
        assert_eq!(k.server.as_deref(), Some("https://x"));
        assert!(matches!(
            k.token,
            Some(TokenFacts {
                source: TokenSource::File(_),
                ..
            })
        ));
        let k = parse_kubeconfig(b"apiVersion: v1\nkind: Config\n").unwrap();
        assert_eq!(k.problem.as_deref(), Some("it sets no current-context"));
        let k = parse_kubeconfig(b"current-context: a\ncontexts: []\n").unwrap();
        assert!(k.problem.unwrap().contains("not among its contexts"));
        let no_server = calico_kubeconfig("\"\"", "token: abc");
        let k = parse_kubeconfig(no_server.as_bytes()).unwrap();
        assert_eq!((k.problem, k.server), (None, None));
        assert!(parse_kubeconfig(b"a: [\n")
            .unwrap_err()
            .contains("not valid YAML"));
        assert_eq!(parse_kubeconfig(b"").unwrap_err(), "empty");
        assert_eq!(
            parse_kubeconfig(b"- 1\n").unwrap_err(),
            "not a YAML mapping"
        );
        assert!(parse_kubeconfig(&[0xff, 0xfe]).is_err());
        // Deep flow nesting stops at the scanner's recursion limit, not the stack.
        let deep = format!("a: {}", "[".repeat(100_000));
        assert!(parse_kubeconfig(deep.as_bytes()).is_err());
    }

    #[test]
    fn token_kinds() {
        assert_eq!(token_kind(&jwt(r#"{"exp":42}"#)), TokenKind::Exp(42));
        assert_eq!(token_kind(&jwt(r#"{"exp":42.9}"#)), TokenKind::Exp(42));
        assert_eq!(token_kind(&jwt(r#"{"sub":"x"}"#)), TokenKind::NoExp);
        assert_eq!(token_kind(&jwt(r#"{"exp":"soon"}"#)), TokenKind::NoExp);
        assert_eq!(token_kind(&jwt("[1]")), TokenKind::NotJwt);
        assert_eq!(token_kind("opaque-static-token"), TokenKind::NotJwt);
        assert_eq!(token_kind("a.!!!.c"), TokenKind::NotJwt);
        // Padded base64url is accepted too.
        let padded = format!(
            "h.{}.s",
            base64::engine::general_purpose::URL_SAFE.encode(r#"{"exp":7}"#)
        );
        assert_eq!(token_kind(&padded), TokenKind::Exp(7));
    }

    #[test]
    fn an_entry_naming_no_kubeconfig_has_the_default_checked_only_when_present() {
        use crate::inspect::cni_files::tests::{write, TempDir};
        use crate::inspect::cni_files::{CniFiles, ConfFile};
        let t = TempDir::new("calfiles-default");
        let root = t.dir("host");
        let netd = t.dir("host/etc/cni/net.d");
        let entry = serde_json::json!({"type": "calico"});
        let cni = CniFiles {
            files: vec![ConfFile {
                path: "/etc/cni/net.d/10-calico.conflist".into(),
                plugins: vec![entry.as_object().unwrap().clone()],
                ..ConfFile::default()
            }],
            ours: Some(0),
            ..CniFiles::default()
        };
        // Nothing there: an etcd-datastore Calico reads none; no fact, so no finding.
        assert_eq!(gather(&cni, &root).kubeconfig, None);
        // install-cni's file there: it is read and judged.
        let token = jwt(r#"{"exp":1234}"#);
        write(
            &netd.join("calico-kubeconfig"),
            &calico_kubeconfig("https://x", &format!("token: {token}")),
            0o600,
        );
        let k = gather(&cni, &root).kubeconfig.unwrap();
        assert!(k.defaulted);
        assert_eq!(k.named, PathBuf::from(DEFAULT_KUBECONFIG));
        let kc = k.read.unwrap().unwrap();
        assert_eq!(kc.token.unwrap().kind, Ok(TokenKind::Exp(1234)));
    }

    #[test]
    fn gathers_under_a_host_root_with_a_relative_token_file() {
        use crate::inspect::cni_files::tests::{write, TempDir};
        use crate::inspect::cni_files::{CniFiles, ConfFile};
        let t = TempDir::new("calfiles");
        let root = t.dir("host");
        let netd = t.dir("host/etc/cni/net.d");
        t.dir("host/var/lib/calico");
        let token = jwt(r#"{"exp":1234}"#);
        // tokenFile relative to the kubeconfig's dir, as client-go resolves it; the token file
        // an absolute symlink that must resolve inside the host root.
        write(
            &netd.join("calico-kubeconfig"),
            &calico_kubeconfig("https://x", "tokenFile: token-link"),
            0o600,
        );
        write(&netd.join("token"), &format!("{token}\n"), 0o600);
        std::os::unix::fs::symlink("/etc/cni/net.d/token", netd.join("token-link")).unwrap();
        write(&root.join("var/lib/calico/nodename"), "node-1\n", 0o644);
        let entry = serde_json::json!({"type": "calico",
            "kubernetes": {"kubeconfig": "/etc/cni/net.d/calico-kubeconfig"}});
        let cni = CniFiles {
            files: vec![ConfFile {
                path: "/etc/cni/net.d/10-calico.conflist".into(),
                plugins: vec![entry.as_object().unwrap().clone()],
                ..ConfFile::default()
            }],
            ours: Some(0),
            ..CniFiles::default()
        };
        let g = gather(&cni, &root);
        let k = g.kubeconfig.unwrap();
        assert_eq!(k.resolved, root.join("etc/cni/net.d/calico-kubeconfig"));
        let tok = k.read.unwrap().unwrap().token.unwrap();
        assert_eq!(
            tok.source,
            TokenSource::File("/etc/cni/net.d/token-link".into())
        );
        assert_eq!(tok.kind, Ok(TokenKind::Exp(1234)));
        let n = g.nodename.unwrap();
        assert_eq!(n.read, Ok(Some("node-1".into())));
        assert!(g.now_unix > 1_600_000_000);
        // Our conflist without a calico plugin: said, not guessed.
        let mut other = cni.clone();
        other.files[0].plugins[0].insert("type".into(), "bridge".into());
        assert!(matches!(
            gather(&other, &root).entry,
            EntryLookup::NoCalicoPlugin { .. }
        ));
        let mut none = cni;
        none.ours = None;
        let g = gather(&none, &root);
        assert_eq!(
            (g.entry, g.kubeconfig, g.nodename),
            (EntryLookup::NoConflist, None, None)
        );
    }

    #[test]
    fn entry_keys_and_types() {
        let m = serde_json::json!({"type":"calico","kubernetes":{"kubeconfig":"/k"},
            "nodename":"n1","nodename_file":"/f","nodename_file_optional":true,"datastore_type":"kubernetes"});
        let e = entry_from(m.as_object().unwrap()).unwrap();
        assert_eq!(e.kubeconfig.as_deref(), Some("/k"));
        assert_eq!(e.nodename.as_deref(), Some("n1"));
        assert_eq!(e.nodename_file.as_deref(), Some("/f"));
        assert!(e.nodename_file_optional);
        let e = entry_from(serde_json::json!({"type":"calico"}).as_object().unwrap()).unwrap();
        assert_eq!(e, CalicoEntry::default());
        for bad in [
            serde_json::json!({"nodename_file_optional":"true"}),
            serde_json::json!({"kubernetes":"x"}),
            serde_json::json!({"kubernetes":{"kubeconfig":1}}),
        ] {
            assert!(entry_from(bad.as_object().unwrap()).is_err(), "{bad}");
        }
    }
}
