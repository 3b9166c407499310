//! CNI spec versions this plugin speaks.

/// Exactly the versions advertised by VERSION.
pub const SUPPORTED: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The newest version, used when the request names none we can trust.
pub const LATEST: &str = "1.1.0";

pub fn is_supported(v: &str) -> bool {
    SUPPORTED.contains(&v)
}

/// 0.3.x and 0.4.0 results carry `version` on each IP; 1.x results do not.
pub fn ips_carry_version(v: &str) -> bool {
    v.starts_with("0.")
}

/// Whether `v` knows the CHECK verb (0.4.0 and later).
pub fn has_check(v: &str) -> bool {
    !matches!(v, "0.3.0" | "0.3.1")
}

/// VERSION's answer.
pub fn version_json(cni_version: &str) -> String {
    serde_json::json!({ "cniVersion": cni_version, "supportedVersions": SUPPORTED }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_set_is_exact() {
        assert_eq!(SUPPORTED, ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]);
        assert!(!is_supported("0.2.0"));
        assert!(!is_supported("1.2.0"));
        assert!(!is_supported(""));
    }

    #[test]
    fn version_shape_rules() {
        assert!(ips_carry_version("0.3.1"));
        assert!(ips_carry_version("0.4.0"));
        assert!(!ips_carry_version("1.0.0"));
        assert!(!has_check("0.3.1"));
        assert!(has_check("0.4.0"));
    }
}
