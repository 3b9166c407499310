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

/// [`pass_through`], printed with the prevResult's own text wherever it is not changed: every
/// value but `cniVersion` (and, when converting, the IPs' `version`) is copied byte for byte
/// from `stdin`, so numbers keep their text (`1e3` stays `1e3`; serde_json would print
/// `1e+3`). Falls back to printing the converted value if the raw text cannot be spliced.
pub fn pass_through_text(
    stdin: &[u8],
    prev: &Value,
    cni_version: &str,
) -> Result<String, CniError> {
    let converted = pass_through(prev, cni_version)?;
    let converting = needs_conversion(prev, cni_version);
    Ok(raw::splice(stdin, cni_version, converting).unwrap_or_else(|| converted.to_string()))
}

fn needs_conversion(prev: &Value, cni_version: &str) -> bool {
    prev.get("cniVersion")
        .and_then(Value::as_str)
        .is_some_and(|pv| version::ips_carry_version(pv) != version::ips_carry_version(cni_version))
}

/// Splicing the prevResult's raw text: objects as ordered `(key, raw value)` lists.
mod raw {
    use super::version;
    use serde::de::{Deserializer, MapAccess, Visitor};
    use serde::Deserialize;
    use serde_json::value::RawValue;
    use std::borrow::Cow;

    type Entries<'a> = Vec<(String, Cow<'a, str>)>;

    struct Object<'a>(Vec<(String, &'a RawValue)>);

    impl<'de> Deserialize<'de> for Object<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Object<'de>;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<Object<'de>, M::Error> {
                    let mut out = Vec::new();
                    while let Some((k, v)) = m.next_entry::<String, &'de RawValue>()? {
                        out.push((k, v));
                    }
                    Ok(Object(out))
                }
            }
            d.deserialize_map(V)
        }
    }

    fn object(text: &str) -> Option<Object<'_>> {
        serde_json::from_str(text).ok()
    }

    fn write(entries: &Entries) -> Option<String> {
        let mut out = String::from("{");
        for (i, (k, v)) in entries.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&serde_json::to_string(k).ok()?);
            out.push(':');
            out.push_str(v);
        }
        out.push('}');
        Some(out)
    }

    /// Sets `key` in place, or appends it, as serde_json's ordered Map::insert does.
    fn set<'a>(entries: &mut Entries<'a>, key: &str, value: String) {
        match entries.iter_mut().find(|(k, _)| k == key) {
            Some(e) => e.1 = Cow::Owned(value),
            None => entries.push((key.to_string(), Cow::Owned(value))),
        }
    }

    pub(super) fn splice(stdin: &[u8], cni_version: &str, converting: bool) -> Option<String> {
        let text = std::str::from_utf8(stdin).ok()?;
        let conf = object(text)?;
        // The last one wins, as in serde_json's (and Go's) parse of the whole config.
        let prev = conf.0.iter().rev().find(|(k, _)| k == "prevResult")?.1;
        let prev = object(prev.get())?;
        let mut entries: Entries = prev
            .0
            .into_iter()
            .map(|(k, v)| (k, Cow::Borrowed(v.get())))
            .collect();
        if converting {
            let add = version::ips_carry_version(cni_version);
            for e in entries.iter_mut().filter(|(k, _)| k == "ips") {
                let Ok(ips) = serde_json::from_str::<Vec<&RawValue>>(&e.1) else {
                    continue; // not a list: left as it is, as pass_through does
                };
                let mut items = Vec::with_capacity(ips.len());
                for ip in ips {
                    let Some(o) = object(ip.get()) else {
                        items.push(ip.get().to_string());
                        continue;
                    };
                    let mut ip_entries: Entries =
                        o.0.into_iter()
                            .map(|(k, v)| (k, Cow::Borrowed(v.get())))
                            .collect();
                    if add {
                        let fam = ip_entries
                            .iter()
                            .rev()
                            .find(|(k, _)| k == "address")
                            .and_then(|(_, v)| serde_json::from_str::<String>(v).ok())
                            .map(|a| if a.contains(':') { "6" } else { "4" })
                            .unwrap_or("4");
                        set(&mut ip_entries, "version", serde_json::to_string(fam).ok()?);
                    } else {
                        ip_entries.retain(|(k, _)| k != "version");
                    }
                    items.push(write(&ip_entries)?);
                }
                e.1 = Cow::Owned(format!("[{}]", items.join(",")));
            }
        }
        set(
            &mut entries,
            "cniVersion",
            serde_json::to_string(cni_version).ok()?,
        );
        write(&entries)
    }
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

    /// Cargo.toml's promise (serde_json `arbitrary_precision`): numbers in the prevResult are
    /// passed on exactly as written, in every version and across conversions.
    #[test]
    fn numbers_keep_their_text_across_versions_and_conversions() {
        let numbers = r#"{"mtu":1e3,"ratio":1.50,"big":123456789012345678901234567890,"neg":-0.0,"exp":2E-7,"int":7}"#;
        for (from, to) in [
            ("0.3.1", "0.3.1"),
            ("0.3.1", "1.0.0"),
            ("0.4.0", "1.1.0"),
            ("1.0.0", "0.3.1"),
            ("1.0.0", "1.0.0"),
            ("1.1.0", "0.4.0"),
        ] {
            let text = format!(
                r#"{{"cniVersion":"{from}","interfaces":[{{"name":"cali1","mtu":1e3}}],
                   "ips":[{{"address":"10.244.1.5/32","weight":1.50}}],
                   "routes":[{{"dst":"10.244.1.5/32","priority":1.0e2}}],
                   "custom":{numbers}}}"#
            );
            let stdin = format!(
                r#"{{"cniVersion":"{to}","name":"k8s-pod-network","type":"calico-preflight","prevResult":{text}}}"#
            );
            let prev: Value = serde_json::from_str(&text).unwrap();
            let out = pass_through_text(stdin.as_bytes(), &prev, to).unwrap();
            // The same result as the converted value, only with the numbers as written.
            let reparsed: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(reparsed, pass_through(&prev, to).unwrap(), "{from}->{to}");
            for lit in [
                r#""mtu":1e3"#,
                r#""weight":1.50"#,
                r#""priority":1.0e2"#,
                r#""ratio":1.50"#,
                r#""big":123456789012345678901234567890"#,
                r#""neg":-0.0"#,
                r#""exp":2E-7"#,
                r#""int":7"#,
            ] {
                assert!(out.contains(lit), "{from}->{to}: {lit} not in {out}");
            }
        }
    }

    /// Calico 3.32's calico-ipam result has one `{dst: <podIP>/32}` per IP in `routes`: the
    /// host side. It is passed on untouched and plays no part in what the pod is expected to
    /// have (the typed view does not even read it).
    #[test]
    fn calico_332_per_ip_routes_are_passed_on_and_not_read() {
        let prev = json!({"cniVersion":"1.0.0",
            "interfaces":[{"name":"cali12345678901"},{"name":"eth0","sandbox":"/var/run/netns/x"}],
            "ips":[{"address":"10.244.1.5/32","interface":1},{"address":"fd00::5/128","interface":1}],
            "routes":[{"dst":"10.244.1.5/32"},{"dst":"fd00::5/128"}]});
        let typed = PrevResult::parse(&prev).unwrap();
        assert_eq!(typed.pod_ips("eth0").len(), 2);
        let out = pass_through(&prev, "1.0.0").unwrap();
        assert_eq!(out["routes"], prev["routes"]);
    }
}
