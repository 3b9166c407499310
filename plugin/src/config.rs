//! The plugin's entry in the conflist: what the operator can tune.

use crate::checks::{CheckId, Severity};
use crate::cni::netconf::{invalid_key, kind_of};
use crate::cni::CniError;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// An error-severity finding fails ADD.
    Enforce,
    /// Findings are logged; ADD passes through.
    Warn,
}

pub const DEFAULT_TIMEOUT_MS: u64 = 2000;
pub const MAX_TIMEOUT_MS: u64 = 60_000;
pub const DEFAULT_NODE_CHECK_TTL_S: u64 = 30;
pub const MAX_NODE_CHECK_TTL_S: u64 = 86_400;
/// Calico refreshes its CNI token with a quarter of its 24 h left (node/pkg/cni/token_watch.go):
/// a token within an hour of expiry has missed many refreshes.
pub const DEFAULT_TOKEN_WARN_S: u64 = 3600;
pub const MAX_TOKEN_WARN_S: u64 = 30 * 86_400;
/// The gateway probe's wait per request: a healthy host end answers in microseconds.
pub const DEFAULT_PROBE_TIMEOUT_MS: u64 = 50;
/// Two requests of this each must fit well within ADD's budget.
pub const MAX_PROBE_TIMEOUT_MS: u64 = 5000;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub mode: Mode,
    pub checks: BTreeMap<CheckId, Severity>,
    /// `None`: info into a log file, warn on stderr (stderr ends up in the runtime's log).
    pub log_level: Option<log::LevelFilter>,
    pub log_file: Option<PathBuf>,
    pub timeout: Duration,
    /// Run the node checks after calico too (they always run first in the chain and on STATUS).
    pub node_checks: bool,
    /// How long a node-check outcome is reused; zero disables the cache.
    pub node_check_ttl: Duration,
    pub cache_dir: PathBuf,
    pub conf_dir: PathBuf,
    pub search_bin_dirs: Vec<PathBuf>,
    /// The host's iptables command, to tell which backend people and tools on the node use.
    pub iptables_command: PathBuf,
    /// Where the host's root is: host files named in Calico's config are read under it.
    pub host_root: PathBuf,
    /// Warn when Calico's kubeconfig token expires within this many seconds.
    pub token_warn_seconds: u64,
    /// Run the active gateway probe (`pod-gateway-probe`) on ADD and CHECK.
    pub probe: bool,
    /// How long the probe waits for each of its two requests' answer.
    pub probe_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Enforce,
            checks: BTreeMap::new(),
            log_level: None,
            log_file: None,
            timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS),
            node_checks: true,
            node_check_ttl: Duration::from_secs(DEFAULT_NODE_CHECK_TTL_S),
            cache_dir: PathBuf::from("/run/calico-preflight"),
            conf_dir: PathBuf::from("/etc/cni/net.d"),
            search_bin_dirs: Vec::new(),
            iptables_command: PathBuf::from("/usr/sbin/iptables"),
            host_root: PathBuf::from("/"),
            token_warn_seconds: DEFAULT_TOKEN_WARN_S,
            probe: false,
            probe_timeout: Duration::from_millis(DEFAULT_PROBE_TIMEOUT_MS),
        }
    }
}

impl Config {
    /// Reads our keys from the plugin's config object; unknown keys are ignored (runtimes
    /// inject `name`, `cniVersion`, `runtimeConfig`, ...). A bad value is code 7 naming the key.
    pub fn from_json(raw: &Map<String, Value>) -> Result<Config, CniError> {
        let mut c = Config::default();
        if let Some(v) = present(raw, "mode") {
            c.mode = match v.as_str() {
                Some("enforce") => Mode::Enforce,
                Some("warn") => Mode::Warn,
                _ => {
                    return Err(invalid_key(
                        "mode",
                        &format!("must be \"enforce\" or \"warn\", found {}", show(v)),
                    ))
                }
            };
        }
        if let Some(v) = present(raw, "checks") {
            let Some(map) = v.as_object() else {
                return Err(invalid_key("checks", &format!("must be an object mapping check ids to \"error\", \"warn\" or \"off\", found {}", kind_of(v))));
            };
            for (k, sev) in map {
                let id = CheckId::parse(k).ok_or_else(|| {
                    invalid_key(
                        &format!("checks.{k}"),
                        &format!(
                            "names no known check; known checks: {}",
                            CheckId::ALL
                                .iter()
                                .map(|c| c.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                })?;
                let s = sev.as_str().and_then(Severity::parse).ok_or_else(|| {
                    invalid_key(
                        &format!("checks.{k}"),
                        &format!(
                            "must be \"error\", \"warn\" or \"off\", found {}",
                            show(sev)
                        ),
                    )
                })?;
                c.checks.insert(id, s);
            }
        }
        if let Some(v) = present(raw, "logLevel") {
            c.log_level = Some(match v.as_str().map(str::to_ascii_lowercase).as_deref() {
                Some("off") => log::LevelFilter::Off,
                Some("error") => log::LevelFilter::Error,
                Some("warn") | Some("warning") => log::LevelFilter::Warn,
                Some("info") => log::LevelFilter::Info,
                Some("debug") => log::LevelFilter::Debug,
                Some("trace") => log::LevelFilter::Trace,
                _ => {
                    return Err(invalid_key(
                        "logLevel",
                        &format!(
                            "must be one of off, error, warn, info, debug, trace, found {}",
                            show(v)
                        ),
                    ))
                }
            });
        }
        if let Some(v) = present(raw, "logFile") {
            match v.as_str() {
                Some("") => {}
                Some(p) if p.starts_with('/') => c.log_file = Some(PathBuf::from(p)),
                _ => {
                    return Err(invalid_key(
                        "logFile",
                        &format!("must be an absolute path, found {}", show(v)),
                    ))
                }
            }
        }
        if let Some(v) = present(raw, "timeoutMs") {
            match v.as_u64() {
                Some(ms) if (1..=MAX_TIMEOUT_MS).contains(&ms) => {
                    c.timeout = Duration::from_millis(ms)
                }
                _ => {
                    return Err(invalid_key(
                        "timeoutMs",
                        &format!(
                        "must be an integer from 1 to {MAX_TIMEOUT_MS} (milliseconds), found {}",
                        show(v)
                    ),
                    ))
                }
            }
        }
        if let Some(v) = present(raw, "nodeChecks") {
            c.node_checks = v.as_bool().ok_or_else(|| {
                invalid_key(
                    "nodeChecks",
                    &format!("must be true or false, found {}", show(v)),
                )
            })?;
        }
        if let Some(v) = present(raw, "nodeCheckTtlSeconds") {
            match v.as_u64() {
                Some(s) if s <= MAX_NODE_CHECK_TTL_S => c.node_check_ttl = Duration::from_secs(s),
                _ => {
                    return Err(invalid_key(
                        "nodeCheckTtlSeconds",
                        &format!(
                        "must be an integer from 0 (no cache) to {MAX_NODE_CHECK_TTL_S}, found {}",
                        show(v)
                    ),
                    ))
                }
            }
        }
        for (key, slot) in [
            ("cacheDir", &mut c.cache_dir),
            ("confDir", &mut c.conf_dir),
            ("iptablesCommand", &mut c.iptables_command),
            ("hostRoot", &mut c.host_root),
        ] {
            if let Some(v) = present(raw, key) {
                *slot = abs_path(key, v)?;
            }
        }
        if let Some(v) = present(raw, "tokenWarnSeconds") {
            match v.as_u64() {
                Some(s) if s <= MAX_TOKEN_WARN_S => c.token_warn_seconds = s,
                _ => {
                    return Err(invalid_key(
                        "tokenWarnSeconds",
                        &format!(
                            "must be an integer from 0 (no early warning) to {MAX_TOKEN_WARN_S}, found {}",
                            show(v)
                        ),
                    ))
                }
            }
        }
        if let Some(v) = present(raw, "probe") {
            c.probe = v.as_bool().ok_or_else(|| {
                invalid_key(
                    "probe",
                    &format!("must be true or false, found {}", show(v)),
                )
            })?;
        }
        if let Some(v) = present(raw, "probeTimeoutMs") {
            match v.as_u64() {
                Some(ms) if (1..=MAX_PROBE_TIMEOUT_MS).contains(&ms) => {
                    c.probe_timeout = Duration::from_millis(ms)
                }
                _ => {
                    return Err(invalid_key(
                        "probeTimeoutMs",
                        &format!(
                            "must be an integer from 1 to {MAX_PROBE_TIMEOUT_MS} (milliseconds), found {}",
                            show(v)
                        ),
                    ))
                }
            }
        }
        if let Some(v) = present(raw, "searchBinDirs") {
            let list = v.as_array().ok_or_else(|| {
                invalid_key(
                    "searchBinDirs",
                    &format!("must be a list of absolute paths, found {}", show(v)),
                )
            })?;
            c.search_bin_dirs = list
                .iter()
                .enumerate()
                .map(|(i, p)| abs_path(&format!("searchBinDirs[{i}]"), p))
                .collect::<Result<_, _>>()?;
        }
        Ok(c)
    }

    pub fn effective_log_level(&self) -> log::LevelFilter {
        self.log_level.unwrap_or(if self.log_file.is_some() {
            log::LevelFilter::Info
        } else {
            log::LevelFilter::Warn
        })
    }

    /// The severity the operator set for a check, if any.
    pub fn severity_override(&self, id: CheckId) -> Option<Severity> {
        self.checks.get(&id).copied()
    }
}

fn abs_path(key: &str, v: &Value) -> Result<PathBuf, CniError> {
    match v.as_str() {
        Some(p) if p.starts_with('/') => Ok(PathBuf::from(p)),
        _ => Err(invalid_key(
            key,
            &format!("must be an absolute path, found {}", show(v)),
        )),
    }
}

fn present<'a>(raw: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    raw.get(key).filter(|v| !v.is_null())
}

/// A value as it appears in JSON, shortened: enough to recognise, never a 10 MB echo.
fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        let cut = (0..=60).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0);
        format!("{}...", &s[..cut])
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::ErrorCode;
    use serde_json::json;

    fn cfg(v: Value) -> Result<Config, CniError> {
        Config::from_json(v.as_object().unwrap())
    }

    #[test]
    fn defaults_and_unknown_keys() {
        let c = cfg(json!({"name":"n","runtimeConfig":{},"whatever":1})).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.severity_override(CheckId::HostVethMac), None);
    }

    #[test]
    fn all_keys() {
        let c = cfg(
            json!({"mode":"warn","checks":{"host-veth-mac":"error","ip-conflict":"off"},
            "logLevel":"debug","logFile":"/var/log/x.log","timeoutMs":500}),
        )
        .unwrap();
        assert_eq!(c.mode, Mode::Warn);
        assert_eq!(
            c.severity_override(CheckId::HostVethMac),
            Some(Severity::Error)
        );
        assert_eq!(
            c.severity_override(CheckId::IpConflict),
            Some(Severity::Off)
        );
        assert_eq!(c.effective_log_level(), log::LevelFilter::Debug);
        assert_eq!(c.timeout, Duration::from_millis(500));
        let c = cfg(
            json!({"nodeChecks":false,"nodeCheckTtlSeconds":0,"confDir":"/tmp/n",
            "searchBinDirs":["/a","/b"],"cacheDir":"/tmp/c"}),
        )
        .unwrap();
        assert!(!c.node_checks);
        assert_eq!(c.node_check_ttl, Duration::ZERO);
        assert_eq!(
            c.search_bin_dirs,
            vec![PathBuf::from("/a"), PathBuf::from("/b")]
        );
        let c = cfg(json!({"hostRoot":"/host","tokenWarnSeconds":60})).unwrap();
        assert_eq!(c.host_root, PathBuf::from("/host"));
        assert_eq!(c.token_warn_seconds, 60);
        assert!(!Config::default().probe);
        let c = cfg(json!({"probe":true,"probeTimeoutMs":20})).unwrap();
        assert!(c.probe);
        assert_eq!(c.probe_timeout, Duration::from_millis(20));
    }

    #[test]
    fn bad_values_name_the_key() {
        for (v, key) in [
            (json!({"mode":"strict"}), "mode"),
            (
                json!({"checks":{"no-such-check":"warn"}}),
                "checks.no-such-check",
            ),
            (
                json!({"checks":{"host-route":"fatal"}}),
                "checks.host-route",
            ),
            (json!({"checks":[1]}), "checks"),
            (json!({"timeoutMs":0}), "timeoutMs"),
            (json!({"timeoutMs":86400000}), "timeoutMs"),
            (json!({"timeoutMs":"2s"}), "timeoutMs"),
            (json!({"logFile":"relative.log"}), "logFile"),
            (json!({"logLevel":"loud"}), "logLevel"),
            (json!({"nodeChecks":"yes"}), "nodeChecks"),
            (json!({"nodeCheckTtlSeconds":-1}), "nodeCheckTtlSeconds"),
            (json!({"confDir":"net.d"}), "confDir"),
            (json!({"hostRoot":"host"}), "hostRoot"),
            (json!({"tokenWarnSeconds":-5}), "tokenWarnSeconds"),
            (json!({"tokenWarnSeconds":"1h"}), "tokenWarnSeconds"),
            (json!({"searchBinDirs":"/opt"}), "searchBinDirs"),
            (json!({"probe":"yes"}), "probe"),
            (json!({"probeTimeoutMs":0}), "probeTimeoutMs"),
            (json!({"probeTimeoutMs":5001}), "probeTimeoutMs"),
            (json!({"probeTimeoutMs":"50ms"}), "probeTimeoutMs"),
            (json!({"searchBinDirs":["/opt", 3]}), "searchBinDirs[1]"),
        ] {
            let e = cfg(v).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidConfig);
            assert!(e.msg.contains(key), "{key}: {}", e.msg);
        }
    }
}
