//! CNI error results: `{"cniVersion","code","msg","details"}` on stdout, exit 1.

use serde::Serialize;

/// Error codes from the CNI SPEC (section "Error") plus the plugin-specific range (>= 100).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    IncompatibleVersion = 1,
    UnsupportedField = 2,
    ContainerUnknown = 3,
    InvalidEnv = 4,
    IoFailure = 5,
    DecodeFailure = 6,
    InvalidConfig = 7,
    TryAgainLater = 11,
    /// STATUS: the plugin is not available to serve ADD.
    PluginNotAvailable = 50,
    /// A preflight check failed (plugin-specific range).
    CheckFailed = 100,
    Internal = 999,
}

impl ErrorCode {
    pub fn as_u32(self) -> u32 {
        self as u32
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniError {
    pub code: ErrorCode,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: ErrorCode, msg: impl Into<String>, details: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
            details: details.into(),
        }
    }

    /// The error JSON, with the cniVersion the runtime asked for (or our newest when unknown).
    pub fn to_json(&self, cni_version: &str) -> String {
        #[derive(Serialize)]
        struct Wire<'a> {
            #[serde(rename = "cniVersion")]
            cni_version: &'a str,
            code: u32,
            msg: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            details: &'a str,
        }
        // The one place messages leave the plugin: text from the environment inside them
        // (CNI_NETNS, CNI_PATH, CNI_ARGS) reaches `kubectl describe pod` with its control
        // characters escaped, one line as the runtime prints it.
        let (msg, details) = (
            super::env::escape_control(&self.msg),
            super::env::escape_control(&self.details),
        );
        let wire = Wire {
            cni_version,
            code: self.code.as_u32(),
            msg: &msg,
            details: &details,
        };
        // Serializing plain strings and integers cannot fail; keep a literal fallback anyway
        // so that an error is always printed.
        serde_json::to_string(&wire).unwrap_or_else(|_| {
            format!(
                "{{\"cniVersion\":\"{}\",\"code\":999,\"msg\":\"calico-preflight: could not encode error\"}}",
                cni_version
            )
        })
    }
}

impl std::fmt::Display for CniError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (code {})", self.msg, self.code.as_u32())?;
        if !self.details.is_empty() {
            write!(f, ": {}", self.details)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_json_has_spec_fields() {
        let e = CniError::new(ErrorCode::InvalidEnv, "missing CNI_NETNS", "set it");
        let v: serde_json::Value = serde_json::from_str(&e.to_json("1.0.0")).unwrap();
        assert_eq!(v["cniVersion"], "1.0.0");
        assert_eq!(v["code"], 4);
        assert_eq!(v["msg"], "missing CNI_NETNS");
        assert_eq!(v["details"], "set it");
    }

    #[test]
    fn empty_details_are_omitted() {
        let e = CniError::new(ErrorCode::Internal, "boom", "");
        let v: serde_json::Value = serde_json::from_str(&e.to_json("0.4.0")).unwrap();
        assert!(v.get("details").is_none());
        assert_eq!(v["code"], 999);
    }
}
