//! CNI results: the typed view we check, and the verbatim JSON we pass on.

use super::error::{CniError, ErrorCode};
use super::netconf::{invalid_key, kind_of};
use super::version;
use ipnetwork::IpNetwork;
use serde_json::{Map, Value};
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultInterface {
    pub name: String,
    pub mac: Option<String>,
    /// Set for interfaces inside a container; empty for host-side ones.
    pub sandbox: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpConfig {
    pub address: IpNetwork,
    /// Index into `interfaces`.
    pub interface: Option<usize>,
    pub gateway: Option<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrevResult {
    pub cni_version: Option<String>,
    pub interfaces: Vec<ResultInterface>,
    pub ips: Vec<IpConfig>,
}

impl PrevResult {
    /// Typed view of a prevResult, with the offending key named on any error (code 7).
    pub fn parse(v: &Value) -> Result<PrevResult, CniError> {
        let obj = v
            .as_object()
            .ok_or_else(|| invalid_key("prevResult", "must be an object"))?;
        let cni_version = match obj.get("cniVersion") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(o) => {
                return Err(invalid_key(
                    "prevResult.cniVersion",
                    &format!("must be a string, found {}", kind_of(o)),
                ))
            }
        };
        let mut interfaces = Vec::new();
        for (i, item) in array(obj, "interfaces")?.iter().enumerate() {
            let key = format!("prevResult.interfaces[{i}]");
            let o = item
                .as_object()
                .ok_or_else(|| invalid_key(&key, "must be an object"))?;
            interfaces.push(ResultInterface {
                name: str_field(o, &key, "name")?.unwrap_or_default(),
                mac: str_field(o, &key, "mac")?,
                sandbox: str_field(o, &key, "sandbox")?.filter(|s| !s.is_empty()),
            });
        }
        let mut ips = Vec::new();
        for (i, item) in array(obj, "ips")?.iter().enumerate() {
            let key = format!("prevResult.ips[{i}]");
            let o = item
                .as_object()
                .ok_or_else(|| invalid_key(&key, "must be an object"))?;
            let addr_s = str_field(o, &key, "address")?
                .ok_or_else(|| invalid_key(&format!("{key}.address"), "is missing"))?;
            let address: IpNetwork = addr_s.parse().map_err(|_| {
                invalid_key(
                    &format!("{key}.address"),
                    &format!("{addr_s:?} is not an IP address in CIDR form"),
                )
            })?;
            let interface = match o.get("interface") {
                None | Some(Value::Null) => None,
                Some(Value::Number(n)) => {
                    let idx = n.as_u64().ok_or_else(|| {
                        invalid_key(
                            &format!("{key}.interface"),
                            "must be a non-negative integer",
                        )
                    })?;
                    if idx as usize >= interfaces.len() || idx > usize::MAX as u64 {
                        return Err(invalid_key(
                            &format!("{key}.interface"),
                            &format!(
                                "is {idx} but prevResult.interfaces has {} entries",
                                interfaces.len()
                            ),
                        ));
                    }
                    Some(idx as usize)
                }
                Some(o) => {
                    return Err(invalid_key(
                        &format!("{key}.interface"),
                        &format!("must be an integer, found {}", kind_of(o)),
                    ))
                }
            };
            let gateway = match str_field(o, &key, "gateway")? {
                None => None,
                Some(g) if g.is_empty() => None,
                Some(g) => Some(g.parse().map_err(|_| {
                    invalid_key(
                        &format!("{key}.gateway"),
                        &format!("{g:?} is not an IP address"),
                    )
                })?),
            };
            ips.push(IpConfig {
                address,
                interface,
                gateway,
            });
        }
        Ok(PrevResult {
            cni_version,
            interfaces,
            ips,
        })
    }

    /// The pod's interface: the sandboxed entry named `ifname`, if the result lists it.
    pub fn pod_interface_index(&self, ifname: &str) -> Option<usize> {
        self.interfaces
            .iter()
            .position(|i| i.sandbox.is_some() && i.name == ifname)
    }

    /// IPs that belong to the pod interface: those pointing at it, and those with no index
    /// (a result that only lists host-side interfaces still means the container's).
    pub fn pod_ips(&self, ifname: &str) -> Vec<IpNetwork> {
        let pod_idx = self.pod_interface_index(ifname);
        self.ips
            .iter()
            .filter(|ip| match ip.interface {
                None => true,
                Some(i) => Some(i) == pod_idx,
            })
            .map(|ip| ip.address)
            .collect()
    }

    /// Host-side interfaces (no sandbox), in result order.
    pub fn host_interfaces(&self) -> impl Iterator<Item = &ResultInterface> {
        self.interfaces.iter().filter(|i| i.sandbox.is_none())
    }
}

fn array<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a [Value], CniError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(o) => Err(invalid_key(
            &format!("prevResult.{key}"),
            &format!("must be an array, found {}", kind_of(o)),
        )),
    }
}

fn str_field(o: &Map<String, Value>, at: &str, key: &str) -> Result<Option<String>, CniError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(invalid_key(
            &format!("{at}.{key}"),
            &format!("must be a string, found {}", kind_of(other)),
        )),
    }
}

/// The prevResult to print after the checks pass: unchanged except for `cniVersion`, which must be
/// the config's. When the previous plugin answered in another supported version, the IPs are
/// given (0.x) or stripped of (1.x) their `version` field, as libcni's converters do.
pub fn pass_through(prev: &Value, cni_version: &str) -> Result<Value, CniError> {
    let mut out = prev.clone();
    let Some(obj) = out.as_object_mut() else {
        return Err(invalid_key("prevResult", "must be an object"));
    };
    let prev_version = obj
        .get("cniVersion")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(pv) = &prev_version {
        if !version::is_supported(pv) {
            return Err(CniError::new(
                ErrorCode::IncompatibleVersion,
                format!("calico-preflight: prevResult has unsupported cniVersion {pv:?}"),
                format!(
                    "the previous plugin answered in a version this plugin cannot convert to {cni_version}; supported: {}",
                    version::SUPPORTED.join(", ")
                ),
            ));
        }
    }
    let converting = prev_version.as_deref().is_some_and(|pv| {
        version::ips_carry_version(pv) != version::ips_carry_version(cni_version)
    });
    if converting {
        if let Some(Value::Array(ips)) = obj.get_mut("ips") {
            for ip in ips.iter_mut().filter_map(Value::as_object_mut) {
                if version::ips_carry_version(cni_version) {
                    let fam = ip
                        .get("address")
                        .and_then(Value::as_str)
                        .map(|a| if a.contains(':') { "6" } else { "4" })
                        .unwrap_or("4");
                    ip.insert("version".into(), Value::String(fam.into()));
                } else {
                    ip.remove("version");
                }
            }
        }
    }
    obj.insert("cniVersion".into(), Value::String(cni_version.to_string()));
    Ok(out)
}

/// The result a plugin placed first in a chain hands on: nothing, in the config's version.
pub fn empty_result(cni_version: &str) -> Value {
    serde_json::json!({ "cniVersion": cni_version })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn calico_330() -> Value {
        json!({"cniVersion":"0.3.1","interfaces":[{"name":"cali12345678901"}],
               "ips":[{"version":"4","address":"10.244.1.5/32"}],"dns":{}})
    }
    fn calico_331() -> Value {
        json!({"cniVersion":"1.0.0","interfaces":[{"name":"cali12345678901"},
                 {"name":"eth0","mac":"aa:bb:cc:dd:ee:ff","sandbox":"/var/run/netns/x"}],
               "ips":[{"address":"10.244.1.5/32","interface":1},{"address":"fd00::5/128","interface":1}],
               "dns":{}})
    }

    #[test]
    fn both_calico_shapes_yield_the_pod_ips() {
        let old = PrevResult::parse(&calico_330()).unwrap();
        assert_eq!(
            old.pod_ips("eth0"),
            vec!["10.244.1.5/32".parse::<IpNetwork>().unwrap()]
        );
        assert_eq!(
            old.host_interfaces().next().unwrap().name,
            "cali12345678901"
        );
        let new = PrevResult::parse(&calico_331()).unwrap();
        assert_eq!(new.pod_ips("eth0").len(), 2);
        assert_eq!(new.pod_interface_index("eth0"), Some(1));
        assert_eq!(new.host_interfaces().count(), 1);
    }

    #[test]
    fn bad_shapes_name_the_key() {
        let cases = [
            (json!({"ips":{}}), "prevResult.ips"),
            (
                json!({"ips":[{"address":"nope"}]}),
                "prevResult.ips[0].address",
            ),
            (
                json!({"ips":[{"address":"10.0.0.1/32","interface":3}]}),
                "prevResult.ips[0].interface",
            ),
            (
                json!({"ips":[{"address":"10.0.0.1/32","interface":-1}]}),
                "prevResult.ips[0].interface",
            ),
            (
                json!({"interfaces":[{"name":7}]}),
                "prevResult.interfaces[0].name",
            ),
            (json!({"ips":[{}]}), "prevResult.ips[0].address"),
        ];
        for (v, key) in cases {
            let e = PrevResult::parse(&v).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidConfig);
            assert!(e.msg.contains(key), "{key}: {}", e.msg);
        }
    }

    #[test]
    fn pass_through_keeps_everything_in_order() {
        let out = pass_through(&calico_331(), "1.0.0").unwrap();
        assert_eq!(out, calico_331());
        let keys: Vec<_> = out.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["cniVersion", "interfaces", "ips", "dns"]);
    }

    #[test]
    fn pass_through_converts_between_shapes() {
        let up = pass_through(&calico_330(), "1.0.0").unwrap();
        assert_eq!(up["cniVersion"], "1.0.0");
        assert!(up["ips"][0].get("version").is_none());
        let down = pass_through(&calico_331(), "0.3.1").unwrap();
        assert_eq!(down["ips"][0]["version"], "4");
        assert_eq!(down["ips"][1]["version"], "6");
        assert_eq!(down["interfaces"], calico_331()["interfaces"]);
    }

    #[test]
    fn unsupported_prev_version_is_code_1() {
        let e = pass_through(&json!({"cniVersion":"0.2.0","ip4":{}}), "1.0.0").unwrap_err();
        assert_eq!(e.code, ErrorCode::IncompatibleVersion);
    }
}
