//! The network configuration the runtime writes to stdin.

use super::error::{CniError, ErrorCode};
use super::version;
use serde_json::{Map, Value};
use std::io::Read;

/// Runtimes send a few KiB; anything this large is not a network configuration.
pub const MAX_STDIN_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    pub cni_version: String,
    pub name: String,
    pub plugin_type: String,
    /// The previous plugin's result, as the runtime passed it (kept verbatim for pass-through).
    pub prev_result: Option<Value>,
    /// The whole object: plugin-specific keys are read from here by the application layer.
    pub raw: Map<String, Value>,
}

pub fn read_stdin(input: impl Read) -> Result<Vec<u8>, CniError> {
    let mut buf = Vec::new();
    input
        .take(MAX_STDIN_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| {
            CniError::new(
                ErrorCode::IoFailure,
                "calico-preflight: could not read the network configuration from stdin",
                e.to_string(),
            )
        })?;
    if buf.len() as u64 > MAX_STDIN_BYTES {
        return Err(CniError::new(
            ErrorCode::DecodeFailure,
            format!(
                "calico-preflight: the network configuration on stdin is larger than {} bytes",
                MAX_STDIN_BYTES
            ),
            "a CNI network configuration is a few KiB; check what the runtime is passing",
        ));
    }
    Ok(buf)
}

/// Only the cniVersion, best effort: used to label errors and VERSION answers.
pub fn sniff_version(bytes: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    let s = v.get("cniVersion")?.as_str()?;
    version::is_supported(s).then(|| s.to_string())
}

impl NetConf {
    pub fn parse(bytes: &[u8]) -> Result<NetConf, CniError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(CniError::new(
                ErrorCode::DecodeFailure,
                "calico-preflight: stdin is empty, expected the network configuration as JSON",
                "the container runtime writes the plugin's entry of the conflist to stdin",
            ));
        }
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            CniError::new(
                ErrorCode::DecodeFailure,
                "calico-preflight: the network configuration on stdin is not valid JSON",
                format!(
                    "expected a JSON object, found a syntax error ({e}); the runtime sends this \
                     plugin's entry of the conflist: check that file in the CNI conf dir"
                ),
            )
        })?;
        let Value::Object(raw) = value else {
            return Err(CniError::new(
                ErrorCode::DecodeFailure,
                "calico-preflight: the network configuration on stdin is not a JSON object",
                format!(
                    "expected a JSON object, found {}; check this plugin's entry in the conflist",
                    kind_of(&value)
                ),
            ));
        };
        let cni_version = match raw.get("cniVersion") {
            Some(Value::String(s)) => s.clone(),
            None => return Err(invalid_key("cniVersion", "is missing")),
            Some(other) => {
                return Err(invalid_key(
                    "cniVersion",
                    &format!("must be a string, found {}", kind_of(other)),
                ))
            }
        };
        if !version::is_supported(&cni_version) {
            return Err(CniError::new(
                ErrorCode::IncompatibleVersion,
                format!("calico-preflight: cniVersion {cni_version:?} is not supported"),
                format!("supported versions: {}", version::SUPPORTED.join(", ")),
            ));
        }
        let name = opt_string(&raw, "name")?.unwrap_or_default();
        let plugin_type = opt_string(&raw, "type")?.unwrap_or_default();
        let prev_result = match raw.get("prevResult") {
            None | Some(Value::Null) => None,
            Some(v @ Value::Object(_)) => Some(v.clone()),
            Some(other) => {
                return Err(invalid_key(
                    "prevResult",
                    &format!("must be an object, found {}", kind_of(other)),
                ))
            }
        };
        Ok(NetConf {
            cni_version,
            name,
            plugin_type,
            prev_result,
            raw,
        })
    }
}

fn opt_string(raw: &Map<String, Value>, key: &str) -> Result<Option<String>, CniError> {
    match raw.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(invalid_key(
            key,
            &format!("must be a string, found {}", kind_of(other)),
        )),
    }
}

/// Code 7 naming the offending key.
pub fn invalid_key(key: &str, problem: &str) -> CniError {
    CniError::new(
        ErrorCode::InvalidConfig,
        format!("calico-preflight: invalid network configuration: {key} {problem}"),
        format!("fix \"{key}\" in this plugin's entry of the conflist"),
    )
}

pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_minimal_conf() {
        let c = NetConf::parse(
            br#"{"cniVersion":"1.0.0","name":"k8s-pod-network","type":"calico-preflight"}"#,
        )
        .unwrap();
        assert_eq!(c.cni_version, "1.0.0");
        assert_eq!(c.name, "k8s-pod-network");
        assert!(c.prev_result.is_none());
    }

    #[test]
    fn decode_failures_are_code_6() {
        for bad in [&b""[..], b"   ", b"{", b"[1,2]", b"\"str\""] {
            assert_eq!(
                NetConf::parse(bad).unwrap_err().code,
                ErrorCode::DecodeFailure,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn version_problems() {
        let e = NetConf::parse(br#"{"name":"x"}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidConfig);
        assert!(e.msg.contains("cniVersion"));
        let e = NetConf::parse(br#"{"cniVersion":"0.2.0"}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::IncompatibleVersion);
        let e = NetConf::parse(br#"{"cniVersion":1}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidConfig);
    }

    #[test]
    fn prev_result_must_be_object() {
        let e = NetConf::parse(br#"{"cniVersion":"1.0.0","prevResult":[1]}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidConfig);
        assert!(e.msg.contains("prevResult"));
    }

    #[test]
    fn oversized_stdin_is_refused() {
        let big = vec![b' '; (MAX_STDIN_BYTES + 10) as usize];
        assert_eq!(
            read_stdin(&big[..]).unwrap_err().code,
            ErrorCode::DecodeFailure
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let mut s = String::new();
        for _ in 0..100_000 {
            s.push('[');
        }
        assert_eq!(
            NetConf::parse(s.as_bytes()).unwrap_err().code,
            ErrorCode::DecodeFailure
        );
    }
}
