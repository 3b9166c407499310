//! The CNI_* environment the runtime sets for each call.

use super::error::{CniError, ErrorCode};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    Status,
    Gc,
}

impl Command {
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
            Command::Status => "STATUS",
            Command::Gc => "GC",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    pub command: Option<Command>,
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    /// CNI_ARGS as a set of `K=V`.
    pub args: BTreeMap<String, String>,
    pub path: Vec<String>,
}

impl Env {
    pub fn from_process() -> Result<Env, CniError> {
        Env::parse(|k| std::env::var(k).ok())
    }

    /// Parses and validates the variables `command` needs; `get` abstracts the process env for tests.
    pub fn parse(get: impl Fn(&str) -> Option<String>) -> Result<Env, CniError> {
        let raw_cmd = get("CNI_COMMAND").unwrap_or_default();
        let command = match raw_cmd.as_str() {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            "" => {
                return Err(missing(
                    "CNI_COMMAND",
                    "one of ADD, DEL, CHECK, VERSION, STATUS, GC",
                ))
            }
            other => {
                return Err(CniError::new(
                    ErrorCode::InvalidEnv,
                    format!("calico-preflight: unknown CNI_COMMAND {other:?}"),
                    "expected one of ADD, DEL, CHECK, VERSION, STATUS, GC",
                ))
            }
        };
        let mut env = Env {
            command: Some(command),
            ..Env::default()
        };
        let needs_container = matches!(command, Command::Add | Command::Del | Command::Check);
        if needs_container {
            env.container_id = required(&get, "CNI_CONTAINERID")?;
            validate_container_id(&env.container_id)?;
            env.ifname = required(&get, "CNI_IFNAME")?;
            validate_ifname(&env.ifname).map_err(|why| {
                CniError::new(
                    ErrorCode::InvalidEnv,
                    format!("calico-preflight: invalid CNI_IFNAME {:?}", env.ifname),
                    why,
                )
            })?;
        }
        // DEL may come with an empty netns (the runtime already tore the sandbox down).
        env.netns = get("CNI_NETNS").unwrap_or_default();
        if matches!(command, Command::Add | Command::Check) && env.netns.is_empty() {
            return Err(missing(
                "CNI_NETNS",
                "the path of the pod's network namespace",
            ));
        }
        let path = get("CNI_PATH").unwrap_or_default();
        if needs_container && path.is_empty() {
            return Err(missing("CNI_PATH", "the runtime's CNI plugin directories"));
        }
        env.path = path
            .split(':')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect();
        env.args = parse_args(&get("CNI_ARGS").unwrap_or_default());
        Ok(env)
    }

    /// `namespace/name` of the pod from CNI_ARGS, or the container id when not run by Kubernetes.
    pub fn pod_identity(&self) -> String {
        match (
            self.args.get("K8S_POD_NAMESPACE"),
            self.args.get("K8S_POD_NAME"),
        ) {
            (Some(ns), Some(name)) => format!("{ns}/{name}"),
            _ if !self.container_id.is_empty() => {
                format!("container {}", short_id(&self.container_id))
            }
            _ => "-".to_string(),
        }
    }
}

/// Escapes control characters (newline, carriage return, escape, ...) as Rust's `\n`, `\u{1b}`
/// notation, leaving everything else as it is. Anything taken from the environment (CNI_ARGS,
/// CNI_NETNS, CNI_PATH, file names on the node) passes through here on its way into a log line
/// or a message a person reads, so that a `K8S_POD_NAME` holding a newline cannot forge a log
/// line nor an escape sequence repaint a terminal.
pub fn escape_control(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn missing(var: &str, what: &str) -> CniError {
    CniError::new(
        ErrorCode::InvalidEnv,
        format!("calico-preflight: required environment variable {var} is missing, empty or not valid UTF-8"),
        format!("{var} must hold {what}; calico-preflight is a CNI plugin meant to be run by the container runtime"),
    )
}

fn required(get: &impl Fn(&str) -> Option<String>, var: &str) -> Result<String, CniError> {
    match get(var) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(missing(var, &format!("a value for {var}"))),
    }
}

/// CNI_ARGS is `K=V;K=V`; entries without `=` are ignored (they carry nothing we use).
pub fn parse_args(raw: &str) -> BTreeMap<String, String> {
    raw.split(';')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn validate_container_id(id: &str) -> Result<(), CniError> {
    let ok = id.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(CniError::new(
            ErrorCode::InvalidEnv,
            format!("calico-preflight: invalid CNI_CONTAINERID {id:?}"),
            "the container id must start with a letter or digit and hold only letters, digits, '_', '.' and '-'",
        ))
    }
}

/// A Linux interface name: what the kernel accepts, and safe inside a `/proc/sys` path.
pub fn validate_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("an interface name cannot be empty".into());
    }
    if name.len() > 15 {
        return Err(format!(
            "an interface name has at most 15 bytes, this one has {}",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err("an interface name cannot be '.' or '..'".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| *c == '/' || *c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "an interface name cannot contain {c:?} (no '/', ':', spaces or control characters)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> Result<Env, CniError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Env::parse(move |k| m.get(k).cloned())
    }

    const ADD: &[(&str, &str)] = &[
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "abc123"),
        ("CNI_NETNS", "/run/netns/x"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
        (
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;bogus",
        ),
    ];

    #[test]
    fn parses_a_full_add() {
        let e = env_of(ADD).unwrap();
        assert_eq!(e.command, Some(Command::Add));
        assert_eq!(e.path, vec!["/opt/cni/bin", "/usr/lib/cni"]);
        assert_eq!(e.pod_identity(), "default/web-0");
        assert_eq!(e.args.get("IgnoreUnknown").map(String::as_str), Some("1"));
        assert!(!e.args.contains_key("bogus"));
    }

    #[test]
    fn each_required_var_is_named_when_missing() {
        for var in [
            "CNI_COMMAND",
            "CNI_CONTAINERID",
            "CNI_NETNS",
            "CNI_IFNAME",
            "CNI_PATH",
        ] {
            let pairs: Vec<_> = ADD.iter().copied().filter(|(k, _)| *k != var).collect();
            let err = env_of(&pairs).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidEnv, "{var}");
            assert!(err.msg.contains(var), "{var}: {}", err.msg);
        }
    }

    #[test]
    fn del_tolerates_empty_netns() {
        let pairs: Vec<_> = ADD
            .iter()
            .map(|(k, v)| match *k {
                "CNI_COMMAND" => (*k, "DEL"),
                "CNI_NETNS" => (*k, ""),
                _ => (*k, *v),
            })
            .collect();
        let e = env_of(&pairs).unwrap();
        assert_eq!(e.command, Some(Command::Del));
        assert!(e.netns.is_empty());
    }

    #[test]
    fn version_needs_nothing_else() {
        assert!(env_of(&[("CNI_COMMAND", "VERSION")]).is_ok());
    }

    #[test]
    fn unknown_command_is_code_4() {
        let err = env_of(&[("CNI_COMMAND", "FROB")]).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidEnv);
        assert!(err.msg.contains("FROB"));
    }

    #[test]
    fn bad_ifnames_are_rejected() {
        for bad in [
            "",
            "a/b",
            ".",
            "..",
            "has space",
            "new\nline",
            "sixteen-chars-xx",
        ] {
            assert!(validate_ifname(bad).is_err(), "{bad:?}");
        }
        for good in ["eth0", "net1", "cali1234567890a"] {
            assert!(validate_ifname(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape_control("web-0"), "web-0");
        assert_eq!(
            escape_control("a\nb\r\tc\u{1b}[31m"),
            "a\\nb\\r\\tc\\u{1b}[31m"
        );
        assert_eq!(escape_control("naïve/ü"), "naïve/ü");
    }

    #[test]
    fn bad_container_id_is_rejected() {
        let pairs: Vec<_> = ADD
            .iter()
            .map(|(k, v)| {
                if *k == "CNI_CONTAINERID" {
                    (*k, "../etc")
                } else {
                    (*k, *v)
                }
            })
            .collect();
        assert_eq!(env_of(&pairs).unwrap_err().code, ErrorCode::InvalidEnv);
    }
}
