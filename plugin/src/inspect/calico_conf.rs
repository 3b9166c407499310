//! Calico's own plugin entry in our network's conf file, read the way Calico reads it, so the
//! checks expect what Calico does with *this* config (routes, families, device type) instead of
//! one fixed picture. Read-only; built from the conf dir listing the node checks already make.
//!
//! Sources (projectcalico/calico): cni-plugin/pkg/types/types.go (`NetConf`),
//! cni-plugin/pkg/k8s/k8s.go (`CmdAddK8s`: host-local `ipam.routes`, `include_default_routes`),
//! cni-plugin/pkg/ipamplugin/ipam_plugin.go (`assign_ipv4`/`assign_ipv6`),
//! cni-plugin/internal/pkg/utils/utils.go (`usePodCidr`, `usePodCidrIPv6`),
//! cni-plugin/pkg/dataplane/linux/dataplane_linux.go (`addWorkloadLink`: veth or netkit).

use super::cni_files::{CniFiles, ConfFile};
use ipnetwork::IpNetwork;
use serde_json::{Map, Value};
use std::path::PathBuf;

/// The plugin `type` of Calico's CNI plugin.
pub const CALICO_TYPE: &str = "calico";

/// Which IP families pods get.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Families {
    pub v4: bool,
    pub v6: bool,
}

impl Families {
    pub const V4: Families = Families {
        v4: true,
        v6: false,
    };
    pub fn of<'a>(ips: impl IntoIterator<Item = &'a IpNetwork>) -> Families {
        ips.into_iter().fold(Families::default(), |f, ip| Families {
            v4: f.v4 || ip.is_ipv4(),
            v6: f.v6 || ip.is_ipv6(),
        })
    }
    pub fn any(self) -> bool {
        self.v4 || self.v6
    }
    pub fn union(self, o: Families) -> Families {
        Families {
            v4: self.v4 || o.v4,
            v6: self.v6 || o.v6,
        }
    }
}

/// What Calico's entry says, as far as the checks need it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CalicoConf {
    /// The conf file it was read from, for messages.
    pub path: PathBuf,
    /// `ipam.type`: "calico-ipam", "host-local", ...
    pub ipam_type: String,
    /// host-local only: the `dst` of each `ipam.routes` entry (gateways are ignored, as Calico
    /// does: its link is point-to-point), masked to the network as Go's `net.ParseCIDR` does.
    pub host_local_routes: Vec<IpNetwork>,
    /// host-local only: the family of each range's (or the old single `subnet`'s) subnet;
    /// `None` for a subnet this cannot tell (unparsable).
    pub host_local_subnets: Vec<Option<Families>>,
    /// `include_default_routes`: with custom routes, add the default routes too.
    pub include_default_routes: bool,
    /// calico-ipam's `assign_ipv4` / `assign_ipv6` as written (strings; absent: `None`).
    pub assign_ipv4: Option<String>,
    pub assign_ipv6: Option<String>,
    /// `device_type`: "" (veth), "veth" or "netkit".
    pub device_type: String,
}

/// Calico's plugin entry as written: the first plugin of type `plugin_type` in our network's
/// file (`files.ours`), with that file. `Err(None)`: no file holds our network; `Err(Some(f))`:
/// `f` does, but has no such plugin. Every reader of Calico's keys starts here.
pub fn raw_entry<'a>(
    files: &'a CniFiles,
    plugin_type: &str,
) -> Result<(&'a ConfFile, &'a Map<String, Value>), Option<&'a ConfFile>> {
    let file = files.ours.and_then(|i| files.files.get(i)).ok_or(None)?;
    file.plugins
        .iter()
        .find(|p| p.get("type").and_then(Value::as_str) == Some(plugin_type))
        .map(|m| (file, m))
        .ok_or(Some(file))
}

impl CalicoConf {
    /// Calico's entry in our network's file: the first plugin of type `plugin_type` in
    /// `files.ours`. `None` when there is no such file or entry, or it is not one Calico could
    /// have read (then Calico fails ADD itself, and the checks fall back to not knowing).
    pub fn from_files(files: &CniFiles, plugin_type: &str) -> Option<CalicoConf> {
        let (file, entry) = raw_entry(files, plugin_type).ok()?;
        let mut c = CalicoConf::from_entry(entry)?;
        c.path = file.path.clone();
        Some(c)
    }

    /// Parses one plugin entry. Types follow Calico's `NetConf`: a wrong JSON type there makes
    /// Calico's own unmarshalling fail, so it yields `None` here too.
    pub fn from_entry(m: &Map<String, Value>) -> Option<CalicoConf> {
        let ipam = match m.get("ipam") {
            None | Some(Value::Null) => None,
            Some(Value::Object(i)) => Some(i),
            Some(_) => return None,
        };
        let empty = Map::new();
        let ipam = ipam.unwrap_or(&empty);
        let mut c = CalicoConf {
            ipam_type: opt_str(ipam, "type")?.unwrap_or_default(),
            assign_ipv4: opt_str(ipam, "assign_ipv4")?,
            assign_ipv6: opt_str(ipam, "assign_ipv6")?,
            include_default_routes: match m.get("include_default_routes") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => return None,
            },
            device_type: opt_str(m, "device_type")?.unwrap_or_default(),
            ..CalicoConf::default()
        };
        if c.ipam_type == "host-local" {
            c.host_local_routes = host_local_routes(ipam)?;
            c.host_local_subnets = host_local_subnets(ipam)?;
        }
        Some(c)
    }

    /// The destinations Calico routes via its gateway inside the pod (both families; each is
    /// programmed only for a family the pod has). k8s.go: with host-local and any
    /// `ipam.routes`, only those (plus the defaults with `include_default_routes`); otherwise
    /// the defaults 0.0.0.0/0 and ::/0.
    pub fn in_pod_routes(&self) -> Vec<IpNetwork> {
        let defaults = default_routes();
        if self.host_local_routes.is_empty() {
            return defaults;
        }
        let mut out = if self.include_default_routes {
            defaults
        } else {
            vec![]
        };
        out.extend(self.host_local_routes.iter().copied());
        out
    }

    /// Whether the pod's routes are custom (host-local `ipam.routes`) rather than the defaults.
    pub fn custom_routes(&self) -> bool {
        !self.host_local_routes.is_empty()
    }

    /// The families Calico's IPAM config assigns, when the config tells: calico-ipam by
    /// `assign_ipv4` (anything but "false" assigns) and `assign_ipv6` (only "true" assigns),
    /// exactly as ipam_plugin.go compares them; host-local by its subnets. `None` for other
    /// IPAM plugins or a subnet this cannot place.
    pub fn families(&self) -> Option<Families> {
        match self.ipam_type.as_str() {
            "calico-ipam" => Some(Families {
                v4: self.assign_ipv4.as_deref() != Some("false"),
                v6: self.assign_ipv6.as_deref() == Some("true"),
            }),
            "host-local" => {
                let mut f = Families::default();
                for s in &self.host_local_subnets {
                    f = f.union((*s)?);
                }
                f.any().then_some(f)
            }
            _ => None,
        }
    }

    pub fn netkit(&self) -> bool {
        self.device_type == "netkit"
    }
}

fn default_routes() -> Vec<IpNetwork> {
    // utils.DefaultRoutes: 0.0.0.0/0 and ::/0.
    let v4 = IpNetwork::new(std::net::Ipv4Addr::UNSPECIFIED.into(), 0);
    let v6 = IpNetwork::new(std::net::Ipv6Addr::UNSPECIFIED.into(), 0);
    v4.into_iter().chain(v6).collect()
}

/// `Some(None)` when absent or null, `None` when present with another type than string.
fn opt_str(m: &Map<String, Value>, key: &str) -> Option<Option<String>> {
    match m.get(key) {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(s.clone())),
        Some(_) => None,
    }
}

/// k8s.go: `routes` must be a list; an entry without `dst` is skipped; a `dst` that is not a
/// string or not a CIDR fails Calico's ADD (so `None`: nothing Calico could have wired).
fn host_local_routes(ipam: &Map<String, Value>) -> Option<Vec<IpNetwork>> {
    let list = match ipam.get("routes") {
        None | Some(Value::Null) => return Some(vec![]),
        Some(Value::Array(a)) => a,
        Some(_) => return None,
    };
    let mut out = Vec::new();
    for r in list {
        let Value::Object(r) = r else {
            return None;
        };
        match r.get("dst") {
            None => continue,
            Some(Value::String(d)) => out.push(masked(d)?),
            Some(_) => return None,
        }
    }
    Some(out)
}

/// Go's `net.ParseCIDR` result: the network, host bits cleared.
fn masked(cidr: &str) -> Option<IpNetwork> {
    if !cidr.contains('/') {
        return None;
    }
    let n: IpNetwork = cidr.parse().ok()?;
    IpNetwork::new(n.network(), n.prefix()).ok()
}

/// The family of each subnet host-local allocates from: the old top-level `subnet` and every
/// range of every range set. `usePodCidr` / `usePodCidrIPv6` (case-insensitive, utils.go) are
/// Calico's placeholders for the node's IPv4 / IPv6 pod CIDR.
fn host_local_subnets(ipam: &Map<String, Value>) -> Option<Vec<Option<Families>>> {
    let family = |r: &Map<String, Value>| -> Option<Option<Families>> {
        let s = match r.get("subnet") {
            // host-local refuses a range without a subnet; nothing to place.
            None | Some(Value::Null) => return Some(None),
            Some(Value::String(s)) => s,
            Some(_) => return None,
        };
        Some(if s.eq_ignore_ascii_case("usePodCidr") {
            Some(Families::V4)
        } else if s.eq_ignore_ascii_case("usePodCidrIPv6") {
            Some(Families {
                v4: false,
                v6: true,
            })
        } else {
            s.parse::<IpNetwork>().ok().map(|n| Families::of([&n]))
        })
    };
    let mut out = Vec::new();
    // The old single subnet (host-local turns it into the one range when `ranges` is empty).
    if ipam
        .get("subnet")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty())
    {
        out.push(family(ipam)?);
    }
    match ipam.get("ranges") {
        None | Some(Value::Null) => {}
        Some(Value::Array(sets)) => {
            for set in sets {
                let Value::Array(set) = set else {
                    return None;
                };
                for r in set {
                    let Value::Object(r) = r else {
                        return None;
                    };
                    out.push(family(r)?);
                }
            }
        }
        Some(_) => return None,
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::cni_files::ConfFile;
    use serde_json::json;

    fn entry(v: Value) -> Option<CalicoConf> {
        CalicoConf::from_entry(v.as_object().unwrap())
    }

    fn net(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    #[test]
    fn calico_ipam_defaults_are_ipv4_only_and_default_routes() {
        let c = entry(json!({"type":"calico","ipam":{"type":"calico-ipam"}})).unwrap();
        assert_eq!(c.families(), Some(Families::V4));
        assert_eq!(c.in_pod_routes(), vec![net("0.0.0.0/0"), net("::/0")]);
        assert!(!c.custom_routes());
        assert!(!c.netkit());
    }

    #[test]
    fn assign_strings_compare_as_calico_compares_them() {
        let fam = |v4: Value, v6: Value| {
            entry(json!({"type":"calico","ipam":{"type":"calico-ipam","assign_ipv4":v4,"assign_ipv6":v6}}))
                .and_then(|c| c.families())
        };
        assert_eq!(
            fam(json!("false"), json!("true")),
            Some(Families {
                v4: false,
                v6: true
            })
        );
        assert_eq!(
            fam(json!("true"), json!("true")),
            Some(Families { v4: true, v6: true })
        );
        // Only exactly "false" / "true" change the defaults (ipam_plugin.go).
        assert_eq!(fam(json!("False"), json!("TRUE")), Some(Families::V4));
        // A JSON boolean does not unmarshal into Calico's *string: Calico itself fails.
        assert_eq!(fam(json!(false), json!("true")), None);
    }

    #[test]
    fn host_local_routes_replace_the_defaults_unless_included() {
        let c = entry(json!({"type":"calico","ipam":{"type":"host-local","subnet":"usePodCidr",
            "routes":[{"dst":"10.0.0.1/8","gw":"10.244.0.1"},{"gw":"1.2.3.4"},{"dst":"fd00::/8"}]}}))
        .unwrap();
        assert!(c.custom_routes());
        assert_eq!(c.in_pod_routes(), vec![net("10.0.0.0/8"), net("fd00::/8")]);
        assert_eq!(c.families(), Some(Families::V4));
        let c = entry(json!({"type":"calico","include_default_routes":true,
            "ipam":{"type":"host-local","subnet":"usePodCidr","routes":[{"dst":"10.0.0.0/8"}]}}))
        .unwrap();
        assert_eq!(
            c.in_pod_routes(),
            vec![net("0.0.0.0/0"), net("::/0"), net("10.0.0.0/8")]
        );
        // include_default_routes alone changes nothing.
        let c = entry(json!({"type":"calico","include_default_routes":true,
            "ipam":{"type":"host-local","subnet":"usePodCidr"}}))
        .unwrap();
        assert_eq!(c.in_pod_routes(), vec![net("0.0.0.0/0"), net("::/0")]);
    }

    #[test]
    fn routes_only_count_for_host_local() {
        let c = entry(
            json!({"type":"calico","ipam":{"type":"calico-ipam","routes":[{"dst":"10.0.0.0/8"}]}}),
        )
        .unwrap();
        assert!(!c.custom_routes());
    }

    #[test]
    fn host_local_families_from_ranges() {
        let c = entry(json!({"type":"calico","ipam":{"type":"host-local",
            "ranges":[[{"subnet":"usePodCidrIPv6"}],[{"subnet":"fd00:1::/64"}]]}}))
        .unwrap();
        assert_eq!(
            c.families(),
            Some(Families {
                v4: false,
                v6: true
            })
        );
        let c = entry(json!({"type":"calico","ipam":{"type":"host-local",
            "ranges":[[{"subnet":"10.1.0.0/16"}],[{"subnet":"fd00:1::/64"}]]}}))
        .unwrap();
        assert_eq!(c.families(), Some(Families { v4: true, v6: true }));
        // A subnet that cannot be placed leaves the families unknown.
        let c = entry(
            json!({"type":"calico","ipam":{"type":"host-local","ranges":[[{"subnet":"nope"}]]}}),
        )
        .unwrap();
        assert_eq!(c.families(), None);
        let c = entry(json!({"type":"calico","ipam":{"type":"whereabouts"}})).unwrap();
        assert_eq!(c.families(), None);
    }

    #[test]
    fn what_calico_cannot_read_is_none() {
        for bad in [
            json!({"type":"calico","ipam":"x"}),
            json!({"type":"calico","include_default_routes":"yes","ipam":{"type":"calico-ipam"}}),
            json!({"type":"calico","ipam":{"type":"host-local","routes":{"dst":"10.0.0.0/8"}}}),
            json!({"type":"calico","ipam":{"type":"host-local","routes":[{"dst":"10.0.0.0"}]}}),
            json!({"type":"calico","ipam":{"type":"host-local","routes":[{"dst":7}]}}),
            json!({"type":"calico","device_type":1}),
        ] {
            assert_eq!(entry(bad.clone()), None, "{bad}");
        }
    }

    #[test]
    fn device_type_netkit() {
        let c =
            entry(json!({"type":"calico","device_type":"netkit","ipam":{"type":"calico-ipam"}}))
                .unwrap();
        assert!(c.netkit());
    }

    #[test]
    fn found_in_our_file_only() {
        let plugins = |v: Value| vec![v.as_object().unwrap().clone()];
        let files = CniFiles {
            files: vec![
                ConfFile {
                    path: "/etc/cni/net.d/05-other.conflist".into(),
                    plugins: plugins(
                        json!({"type":"calico","ipam":{"type":"calico-ipam","assign_ipv6":"true"}}),
                    ),
                    ..ConfFile::default()
                },
                ConfFile {
                    path: "/etc/cni/net.d/10-calico.conflist".into(),
                    plugins: vec![
                        json!({"type":"calico","device_type":"netkit","ipam":{"type":"calico-ipam"}})
                            .as_object()
                            .unwrap()
                            .clone(),
                        json!({"type":"calico-preflight"}).as_object().unwrap().clone(),
                    ],
                    ..ConfFile::default()
                },
            ],
            ours: Some(1),
            ..CniFiles::default()
        };
        let c = CalicoConf::from_files(&files, CALICO_TYPE).unwrap();
        assert!(c.netkit());
        assert_eq!(c.path, PathBuf::from("/etc/cni/net.d/10-calico.conflist"));
        assert_eq!(CalicoConf::from_files(&files, "nope"), None);
        let none = CniFiles {
            ours: None,
            ..files
        };
        assert_eq!(CalicoConf::from_files(&none, CALICO_TYPE), None);
    }
}
