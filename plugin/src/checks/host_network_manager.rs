//! `host-network-manager`: a network manager on the node that will take Calico's interfaces
//! away. NetworkManager not told to leave `cali*` and the tunnel devices alone manages them
//! (Calico's docs, "Configure NetworkManager"); systemd-networkd with a `.network` file
//! matching a cali veth brings it under its control and, with ManageForeignRoutes (the
//! default), removes the routes Calico put on it (calico#2471, #4779,
//! bottlerocket-os/bottlerocket#3437). In doctor, also udev's MAC policy for veths, which races
//! Calico's setting of the ee MAC (aws/amazon-vpc-cni-k8s#2103, calico#8689).

use super::{CheckId, Finding, NodeFacts, Severity};
use crate::inspect::netmgr::{
    cali_veth, LinkFacts, MatchResult, NetworkdFacts, NmFacts, CALICO_IFACES,
};

/// The keyfile of Calico's docs ("Configure NetworkManager").
pub const NM_UNMANAGED: &str = "interface-name:cali*;interface-name:tunl*;\
     interface-name:vxlan.calico;interface-name:vxlan-v6.calico;interface-name:wireguard.cali;\
     interface-name:wg-v6.cali";

/// Names of Calico's interfaces for a networkd `[Match] Name=`.
pub const NETWORKD_NAMES: &str =
    "cali* tunl* vxlan.calico vxlan-v6.calico wireguard.cali wg-v6.cali";

pub fn check(f: &NodeFacts) -> Vec<Finding> {
    let Some(n) = &f.netmgr else {
        return vec![];
    };
    let mut out = Vec::new();
    if let Some(nm) = &n.network_manager {
        out.extend(network_manager(nm));
    }
    if let Some(nd) = &n.networkd {
        out.extend(networkd(nd));
    }
    if let Some(l) = &n.veth_link {
        out.extend(veth_mac_policy(l));
    }
    out
}

fn pid_text(p: &Option<crate::inspect::netmgr::Process>) -> String {
    match p {
        Some(p) => format!(" (pid {}, found by {})", p.pid, p.found_by),
        None => String::new(),
    }
}

fn network_manager(nm: &NmFacts) -> Vec<Finding> {
    let managed: Vec<&str> = CALICO_IFACES
        .iter()
        .filter(|i| nm.leaves_alone(i).is_none())
        .map(|i| i.label)
        .collect();
    if managed.is_empty() {
        return vec![];
    }
    // The pod veths are on every Calico node; the tunnels only with their encapsulation.
    let severity = if managed.contains(&cali_veth().label) {
        Severity::Error
    } else {
        Severity::Warn
    };
    let last_etc = nm
        .files
        .iter()
        .filter_map(|p| p.strip_prefix("/etc/NetworkManager/conf.d/"))
        .next_back();
    let name = ["99-calico.conf", "zz-calico.conf"]
        .into_iter()
        .find(|c| last_etc.is_none_or(|l| *c > l))
        .unwrap_or("zz-calico.conf");
    // Appending keeps an unmanaged-devices list set elsewhere; Calico's exact keyfile otherwise.
    let op = if nm.unmanaged_devices.is_empty() {
        "="
    } else {
        "+="
    };
    let found = format!(
        "managed by NetworkManager: {}; unmanaged-devices = {} (files read: {}){}",
        managed.join(", "),
        if nm.unmanaged_devices.is_empty() {
            "unset".to_string()
        } else {
            nm.unmanaged_devices.join(";")
        },
        if nm.files.is_empty() {
            "none".to_string()
        } else {
            nm.files.join(", ")
        },
        unreadable_text(&nm.unreadable),
    );
    vec![Finding::new(
        CheckId::HostNetworkManager,
        format!("NetworkManager{}", pid_text(&nm.process)),
        "NetworkManager runs and does not leave Calico's interfaces alone",
        "[keyfile] unmanaged-devices covering cali*, tunl*, vxlan.calico, vxlan-v6.calico, \
         wireguard.cali and wg-v6.cali",
        found,
        format!(
            "NetworkManager takes over what it manages and rewrites its routes, so pods lose traffic: \
             add /etc/NetworkManager/conf.d/{name} with \"[keyfile]\\nunmanaged-devices{op}{NM_UNMANAGED}\" \
             and run systemctl reload NetworkManager"
        ),
    )
    .at(severity)]
}

fn unreadable_text(u: &[crate::inspect::netmgr::Unreadable]) -> String {
    if u.is_empty() {
        return String::new();
    }
    let list: Vec<String> = u
        .iter()
        .map(|u| format!("{} ({})", u.path.display(), u.why))
        .collect();
    format!("; not read: {}", list.join(", "))
}

/// A file name for our .network (or .link) that sorts before `before`, or `None`.
fn name_before(candidates: &[&'static str], before: &str) -> Option<&'static str> {
    candidates.iter().copied().find(|c| *c < before)
}

fn networkd(nd: &NetworkdFacts) -> Vec<Finding> {
    if let Some((false, _)) = &nd.manage_foreign_routes {
        // networkd keeps routes it did not configure: Calico's survive on any link.
        return vec![];
    }
    // The first file matching any of Calico's interfaces and not leaving it unmanaged.
    let mut hits: Vec<(&str, &crate::inspect::netmgr::UnitFile, MatchResult)> = Vec::new();
    for i in CALICO_IFACES {
        if let Some((file, m)) = nd.first_match(i) {
            if !file.unmanaged() {
                hits.push((i.label, file, m));
            }
        }
    }
    let Some((_, file, _)) = hits.first() else {
        return vec![];
    };
    let veth_sure = hits
        .iter()
        .any(|(l, _, m)| *l == cali_veth().label && *m == MatchResult::Yes);
    let severity = if veth_sure {
        Severity::Error
    } else {
        Severity::Warn
    };
    let described: Vec<String> = hits
        .iter()
        .map(|(l, f, m)| match m {
            MatchResult::Uncertain(why) => format!("{l}: {} ({}; {why})", f.path, f.match_text()),
            _ => format!("{l}: {} ({})", f.path, f.match_text()),
        })
        .collect();
    let first = hits
        .iter()
        .map(|(_, f, _)| f.name.as_str())
        .min()
        .unwrap_or(&file.name);
    let ours = match name_before(&["10-calico.network", "00-calico.network"], first) {
        Some(n) => format!("/etc/systemd/network/{n}"),
        None => format!("a file in /etc/systemd/network whose name sorts before {first}"),
    };
    let mfr = match &nd.manage_foreign_routes {
        Some((true, p)) => format!("ManageForeignRoutes=yes in {p}"),
        _ => "ManageForeignRoutes not set (default yes)".into(),
    };
    vec![Finding::new(
        CheckId::HostNetworkManager,
        format!("systemd-networkd{}", pid_text(&nd.process)),
        "systemd-networkd runs with a .network file that matches Calico's interfaces",
        "no .network file matching cali* (or Calico's tunnels) unless it sets [Link] Unmanaged=yes, \
         or ManageForeignRoutes=no in networkd.conf",
        format!(
            "{}; {mfr}{}",
            described.join("; "),
            unreadable_text(&nd.unreadable)
        ),
        format!(
            "networkd configures the links it matches and removes routes it did not add, \
             Calico's pod routes among them: add {ours} with \
             \"[Match]\\nName={NETWORKD_NAMES}\\n\\n[Link]\\nUnmanaged=yes\" (or set \
             \"[Network]\\nManageForeignRoutes=no\" in /etc/systemd/networkd.conf.d/calico.conf), \
             then run networkctl reload"
        ),
    )
    .at(severity)]
}

/// The override file that stops udev changing veth MACs, named to sort before `offender`.
fn link_override(offender: &str) -> String {
    match name_before(&["50-calico-veth.link", "00-calico-veth.link"], offender) {
        Some(n) => format!("/etc/systemd/network/{n}"),
        None => format!("a file in /etc/systemd/network whose name sorts before {offender}"),
    }
}

const LINK_OVERRIDE_TEXT: &str = "\"[Match]\\nDriver=veth\\n\\n[Link]\\nMACAddressPolicy=none\"";

fn veth_mac_policy(l: &LinkFacts) -> Vec<Finding> {
    let (Some(change), Some((file, m))) = (l.mac_change(), &l.file) else {
        return vec![];
    };
    let maybe = match m {
        MatchResult::Uncertain(why) => format!(" (if it matches: {why})"),
        _ => String::new(),
    };
    vec![Finding::new(
        CheckId::HostNetworkManager,
        format!("udev link file {}", file.path),
        format!("udev gives new veths a MAC of its own ({change}){maybe}"),
        "no .link file changing the MAC of veths (MACAddressPolicy=none for Driver=veth)",
        format!("{} with {}, {change}", file.path, file.match_text()),
        format!(
            "udev may overwrite the ee:ee:ee:ee:ee:ee MAC Calico sets on a pod's host veth (mostly harmless, \
             but a changed MAC breaks the pod's ARP entry for its gateway): add {} with {LINK_OVERRIDE_TEXT} \
             and run udevadm control --reload",
            link_override(&file.name)
        ),
    )
    .at(Severity::Warn)]
}

/// Names the node's udev MAC policy in `host-veth-mac` findings (a host end whose MAC really is
/// wrong): the override file when a .link file changes veth MACs, else that none does.
pub fn name_mac_policy(findings: &mut [Finding], links: &LinkFacts) {
    let extra = match (links.mac_change(), &links.file) {
        (Some(change), Some((file, _))) => format!(
            "; on this node udev's {} sets {change} for veths: add {} with {LINK_OVERRIDE_TEXT} and run \
             udevadm control --reload",
            file.path,
            link_override(&file.name)
        ),
        _ => "; no udev .link file on this node changes veth MACs, so look at NetworkManager or \
              scripts touching cali* interfaces"
            .to_string(),
    };
    for f in findings
        .iter_mut()
        .filter(|f| f.check == CheckId::HostVethMac)
    {
        // Once: doctor and ADD may both pass a finding through here.
        if !f.remedy.contains("on this node") {
            f.remedy.push_str(&extra);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::netmgr::{parse_ini, NetMgrFacts, Process, UnitFile};

    fn facts(n: NetMgrFacts) -> NodeFacts {
        NodeFacts {
            netmgr: Some(n),
            ..NodeFacts::default()
        }
    }

    fn unit(name: &str, text: &str) -> UnitFile {
        UnitFile {
            name: name.into(),
            path: format!("/usr/lib/systemd/network/{name}"),
            entries: parse_ini(text, true),
        }
    }

    fn nm(unmanaged: &str) -> NmFacts {
        NmFacts {
            process: Some(Process {
                pid: 42,
                found_by: "/proc".into(),
            }),
            files: vec!["/etc/NetworkManager/NetworkManager.conf".into()],
            unmanaged_devices: crate::inspect::netmgr::nm_split_specs(unmanaged),
            ..NmFacts::default()
        }
    }

    #[test]
    fn nothing_running_is_quiet() {
        assert!(check(&NodeFacts::default()).is_empty());
        assert!(check(&facts(NetMgrFacts::default())).is_empty());
    }

    #[test]
    fn network_manager_with_calicos_keyfile_is_quiet() {
        let f = check(&facts(NetMgrFacts {
            network_manager: Some(nm(NM_UNMANAGED)),
            ..NetMgrFacts::default()
        }));
        assert!(f.is_empty(), "{f:#?}");
    }

    #[test]
    fn network_manager_without_it_is_an_error_with_the_file() {
        let f = check(&facts(NetMgrFacts {
            network_manager: Some(nm("")),
            ..NetMgrFacts::default()
        }));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Error);
        assert!(f[0].object.contains("pid 42"));
        assert!(f[0].found.contains("cali*"), "{}", f[0].found);
        assert!(f[0]
            .remedy
            .contains("/etc/NetworkManager/conf.d/99-calico.conf"));
        assert!(f[0]
            .remedy
            .contains(&format!("unmanaged-devices={NM_UNMANAGED}")));
    }

    #[test]
    fn network_manager_missing_only_tunnels_warns_and_appends() {
        let f = check(&facts(NetMgrFacts {
            network_manager: Some(nm("interface-name:cali*;interface-name:docker0")),
            ..NetMgrFacts::default()
        }));
        assert_eq!(f[0].severity, Severity::Warn);
        assert!(!f[0].found.contains("managed by NetworkManager: cali*"));
        assert!(
            f[0].remedy.contains("unmanaged-devices+="),
            "{}",
            f[0].remedy
        );
    }

    fn nd(files: Vec<UnitFile>, mfr: Option<bool>) -> NetMgrFacts {
        NetMgrFacts {
            networkd: Some(NetworkdFacts {
                process: None,
                manage_foreign_routes: mfr.map(|b| (b, "/etc/systemd/networkd.conf".into())),
                network_files: files,
                unreadable: vec![],
            }),
            ..NetMgrFacts::default()
        }
    }

    #[test]
    fn networkd_catch_all_is_an_error_naming_an_earlier_file() {
        let f = check(&facts(nd(
            vec![
                unit("10-eth.network", "[Match]\nName=eth*\n"),
                unit("80-all.network", "[Match]\nName=*\n[Network]\nDHCP=yes\n"),
            ],
            None,
        )));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Error);
        assert!(f[0].found.contains("80-all.network"), "{}", f[0].found);
        assert!(f[0]
            .remedy
            .contains("/etc/systemd/network/10-calico.network"));
        assert!(f[0].remedy.contains("Unmanaged=yes"));
    }

    #[test]
    fn networkd_quiet_when_unmatched_unmanaged_or_foreign_routes_kept() {
        for facts_ in [
            nd(vec![unit("10-eth.network", "[Match]\nName=eth* en*\n")], None),
            nd(
                vec![
                    unit("05-calico.network", "[Match]\nName=cali* tunl* vxlan.calico vxlan-v6.calico wireguard.cali wg-v6.cali\n[Link]\nUnmanaged=yes\n"),
                    unit("80-all.network", "[Match]\nName=*\n"),
                ],
                None,
            ),
            nd(vec![unit("80-all.network", "[Match]\nName=*\n")], Some(false)),
        ] {
            let f = check(&facts(facts_));
            assert!(f.is_empty(), "{f:#?}");
        }
    }

    #[test]
    fn networkd_uncertain_match_warns_and_early_names_are_handled() {
        let f = check(&facts(nd(
            vec![unit("00-a.network", "[Match]\nVirtualization=vm\n")],
            Some(true),
        )));
        assert_eq!(f[0].severity, Severity::Warn);
        assert!(f[0].found.contains("Virtualization=vm"));
        assert!(f[0].found.contains("ManageForeignRoutes=yes"));
        assert!(f[0].remedy.contains("sorts before 00-a.network"));
    }

    fn links(text: &str, name: &str) -> LinkFacts {
        let u = unit(name, text);
        let m = u.matches(cali_veth(), "OriginalName");
        LinkFacts {
            file: (m != MatchResult::No).then_some((u, m)),
            unreadable: vec![],
        }
    }

    #[test]
    fn udev_mac_policy_warns_in_doctor_only_when_it_changes_macs() {
        let default = links(
            "[Match]\nOriginalName=*\n[Link]\nMACAddressPolicy=persistent\n",
            "99-default.link",
        );
        let f = check(&facts(NetMgrFacts {
            veth_link: Some(default.clone()),
            ..NetMgrFacts::default()
        }));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Warn);
        assert!(f[0]
            .remedy
            .contains("/etc/systemd/network/50-calico-veth.link"));
        let none = links(
            "[Match]\nDriver=veth\n[Link]\nMACAddressPolicy=none\n",
            "50-calico-veth.link",
        );
        assert!(check(&facts(NetMgrFacts {
            veth_link: Some(none.clone()),
            ..NetMgrFacts::default()
        }))
        .is_empty());

        // host-veth-mac's remedy names it, or says no .link file is to blame.
        let mut fx = crate::checks::fixtures::healthy_v4();
        fx.host.veth_by_name.as_mut().unwrap().mac = Some(vec![2, 0, 0, 0, 0, 1]);
        let mut found = crate::checks::host_veth_mac::check(&fx.facts());
        name_mac_policy(&mut found, &default);
        assert!(
            found[0].remedy.contains("50-calico-veth.link"),
            "{}",
            found[0].remedy
        );
        assert!(found[0].remedy.contains("99-default.link"));
        let mut found = crate::checks::host_veth_mac::check(&fx.facts());
        name_mac_policy(&mut found, &none);
        assert!(found[0].remedy.contains("no udev .link file"));
    }
}
