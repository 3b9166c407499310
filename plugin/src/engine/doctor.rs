//! `doctor`: every Calico pod on this node checked from the host, plus the node checks once;
//! the seed's troubleshooting list worked through by a program.

use crate::checks::{
    host_network_manager, run_node_checks, run_pod_checks, CheckId, Finding, PodFacts, Severity,
};
use crate::inspect::cni_files::CniFilesQuery;
use crate::inspect::netlink::Netlink;
use crate::inspect::scan::{self, NetnsRef};
use crate::inspect::{self, netmgr, netns, node, Deadline, InspectError, PodInterface, Target};
use ipnetwork::IpNetwork;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Options {
    /// Host interface name prefixes (Calico: "cali"; FELIX_INTERFACEPREFIX may list several).
    pub prefixes: Vec<String>,
    pub netns_dirs: Vec<PathBuf>,
    /// Also find pod namespaces through /proc/<pid>/ns/net.
    pub scan_procs: bool,
    /// Bound on the kernel queries of each pod (and of the node checks).
    pub timeout: Duration,
    pub conf_dir: PathBuf,
    pub cni_path: Vec<PathBuf>,
    pub search_bin_dirs: Vec<PathBuf>,
    pub iptables_command: PathBuf,
    /// The `type` of the plugin whose conflist is checked for binaries (Calico's).
    pub main_plugin: String,
    /// containerd's config file (`None`: do not read it).
    pub containerd_config: Option<PathBuf>,
    /// CRI-O's config file or drop-in dir (`None`: do not read it).
    pub crio_config: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            prefixes: vec!["cali".into()],
            netns_dirs: vec![PathBuf::from("/run/netns"), PathBuf::from("/var/run/netns")],
            scan_procs: true,
            timeout: Duration::from_secs(2),
            conf_dir: PathBuf::from("/etc/cni/net.d"),
            cni_path: vec![PathBuf::from("/opt/cni/bin")],
            search_bin_dirs: vec![],
            iptables_command: PathBuf::from("/usr/sbin/iptables"),
            main_plugin: "calico".into(),
            containerd_config: Some(PathBuf::from("/etc/containerd/config.toml")),
            crio_config: Some(PathBuf::from("/etc/crio/crio.conf")),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodReport {
    pub host_veth: String,
    /// The pod's namespace as a person can find it, when it was found.
    pub pod: Option<String>,
    pub netns_path: Option<String>,
    pub interface: Option<String>,
    pub ips: Vec<String>,
    pub findings: Vec<Finding>,
}

impl PodReport {
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }
    /// "ns/name (cali1234)" style label.
    pub fn label(&self) -> String {
        match &self.pod {
            Some(p) => format!("pod {p} ({})", self.host_veth),
            None => format!("pod ? ({})", self.host_veth),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub pods: usize,
    pub healthy: usize,
    pub with_errors: usize,
    pub with_warnings_only: usize,
    pub node_errors: usize,
    pub node_warnings: usize,
    /// check id -> (errors, warnings)
    pub by_check: BTreeMap<String, (usize, usize)>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub format_version: u32,
    pub node: Vec<Finding>,
    pub pods: Vec<PodReport>,
    pub summary: Summary,
    /// 0: all healthy, 1: warnings only, 2: errors.
    pub exit_code: i32,
}

pub fn run(o: &Options) -> Result<Report, InspectError> {
    let mut nl = Netlink::open(Deadline::after(o.timeout))?;
    let veths = scan::host_veths(&mut nl, &o.prefixes)?;
    let candidates = scan::candidate_netns(&o.netns_dirs, o.scan_procs);
    let by_id = scan::by_nsid(&mut nl, candidates)?;

    // Pair each veth with its pod's namespace; read every pod side on one scanning thread.
    let pairs: Vec<(inspect::Link, Option<NetnsRef>)> = veths
        .into_iter()
        .map(|v| {
            let ns = v.peer_netnsid.and_then(|id| by_id.get(&id)).cloned();
            (v, ns)
        })
        .collect();
    let found: Vec<(String, u32)> = pairs
        .iter()
        .filter_map(|(v, ns)| Some((ns.as_ref()?.path.clone(), v.peer_index?)))
        .collect();
    let peers: Vec<u32> = found.iter().map(|(_, p)| *p).collect();
    let mut views = netns::in_each_netns(
        found.into_iter().map(|(p, _)| p).collect(),
        o.timeout,
        move |i, deadline| inspect::pod_view(&PodInterface::Index(peers[i]), deadline),
    )
    .into_iter();

    let mut pods = Vec::with_capacity(pairs.len());
    let mut want_v6 = false;
    for (veth, ns) in pairs {
        let view = match (&ns, veth.peer_index) {
            (Some(_), Some(_)) => views.next(),
            _ => None,
        };
        nl.set_deadline(Deadline::after(o.timeout));
        let report = pod_report(&mut nl, veth, ns, view)?;
        want_v6 |= report.ips.iter().any(|i| i.contains(':'));
        pods.push(report);
    }
    let (node, links) = node_findings(o, want_v6)?;
    for p in &mut pods {
        host_network_manager::name_mac_policy(&mut p.findings, &links);
    }
    Ok(summarize(node, pods))
}

type PodOutcome = Result<Result<inspect::PodView, inspect::NetnsProblem>, InspectError>;

fn pod_report(
    nl: &mut Netlink,
    veth: inspect::Link,
    ns: Option<NetnsRef>,
    view: Option<PodOutcome>,
) -> Result<PodReport, InspectError> {
    let mut report = PodReport {
        host_veth: veth.name.clone(),
        pod: ns.as_ref().map(|n| n.label.clone()),
        netns_path: ns.as_ref().map(|n| n.path.clone()),
        interface: None,
        ips: vec![],
        findings: vec![],
    };
    let (Some(ns), Some(view)) = (ns, view) else {
        report.findings.push(
            Finding::new(
                CheckId::HostVeth,
                format!("host veth {}", veth.name),
                "the pod namespace at the other end of the veth was not found",
                "a network namespace bind-mounted under /run/netns or held by a process",
                match (veth.kind.as_deref(), veth.peer_netnsid) {
                    (Some("veth"), Some(id)) => format!("peer in namespace id {id}, which no mount or process here holds"),
                    (Some("veth"), None) => "its peer is in this (the host) namespace".into(),
                    (kind, _) => format!("not a veth (kind {})", kind.unwrap_or("none")),
                },
                "a leftover of a pod whose sandbox is gone (delete the interface if no pod uses it), or \
                 the runtime mounts namespaces elsewhere: pass --netns-dir",
            )
            .at(Severity::Warn),
        );
        return Ok(report);
    };
    let pod = match view {
        Ok(p) => p,
        // One pod that cannot be read does not stop the scan of the others.
        Err(e) => {
            report.findings.push(Finding::new(
                CheckId::PodNetns,
                format!("pod network namespace {}", ns.path),
                "the pod's network state could not be read",
                "an answer from the kernel for the pod's interface, addresses and routes",
                e.to_string(),
                "retry; if it persists, the namespace is stuck (look at the runtime's log for this sandbox)",
            ));
            return Ok(report);
        }
    };
    let (ifname, ips) = match &pod {
        Ok(view) => {
            let ips: Vec<IpNetwork> = view
                .addrs
                .iter()
                .filter(|a| !inspect::is_link_local(a.ip) && !a.ip.is_loopback())
                .filter_map(|a| IpNetwork::new(a.ip, a.prefix_len).ok())
                .collect();
            (view.link.as_ref().map(|l| l.name.clone()), ips)
        }
        Err(_) => (None, vec![]),
    };
    let target = Target {
        netns: ns.path.clone(),
        ifname: ifname.clone().unwrap_or_default(),
        pod_ips: ips,
        host_veth: Some(veth.name.clone()),
    };
    let host = inspect::gather_host_with(nl, &target, pod.as_ref().ok())?;
    let facts = PodFacts {
        target: &target,
        pod: &pod,
        host: &host,
    };
    report.interface = ifname;
    report.ips = target.pod_ips.iter().map(|i| i.to_string()).collect();
    report.findings = run_pod_checks(&facts, |_| None);
    Ok(report)
}

fn node_findings(
    o: &Options,
    want_v6: bool,
) -> Result<(Vec<Finding>, netmgr::LinkFacts), InspectError> {
    // The network whose binaries matter is the one holding the main plugin (Calico's).
    let q = node::NodeQuery {
        files: CniFilesQuery {
            conf_dir: o.conf_dir.clone(),
            // Calico's conflist, whatever its network is called.
            network_name: String::new(),
            our_type: o.main_plugin.clone(),
            cni_path: o.cni_path.clone(),
            search_dirs: o.search_bin_dirs.clone(),
        },
        iptables_command: o.iptables_command.clone(),
        want_v6,
        host_root: PathBuf::from("/"),
    };
    let mut facts = node::gather(&q, Deadline::after(o.timeout))?;
    // Doctor only: udev's MAC policy for veths is on almost every systemd node and mostly
    // harmless, so ADD never reports it; here it is a warning under host-network-manager.
    let links = netmgr::gather_links(&q.host_root);
    if let Some(n) = facts.netmgr.as_mut() {
        n.veth_link = Some(links.clone());
    }
    Ok((run_node_checks(&facts, |_| None), links))
}

fn summarize(node: Vec<Finding>, pods: Vec<PodReport>) -> Report {
    let mut by_check: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for f in node
        .iter()
        .chain(pods.iter().flat_map(|p| p.findings.iter()))
    {
        let e = by_check.entry(f.check.as_str().to_string()).or_default();
        match f.severity {
            Severity::Error => e.0 += 1,
            Severity::Warn => e.1 += 1,
            Severity::Off => {}
        }
    }
    let count = |fs: &[Finding], s: Severity| fs.iter().filter(|f| f.severity == s).count();
    let summary = Summary {
        pods: pods.len(),
        healthy: pods.iter().filter(|p| p.worst().is_none()).count(),
        with_errors: pods
            .iter()
            .filter(|p| p.worst() == Some(Severity::Error))
            .count(),
        with_warnings_only: pods
            .iter()
            .filter(|p| p.worst() == Some(Severity::Warn))
            .count(),
        node_errors: count(&node, Severity::Error),
        node_warnings: count(&node, Severity::Warn),
        by_check,
    };
    let worst = node
        .iter()
        .chain(pods.iter().flat_map(|p| p.findings.iter()))
        .map(|f| f.severity)
        .max();
    let exit_code = match worst {
        Some(Severity::Error) => 2,
        Some(Severity::Warn) => 1,
        _ => 0,
    };
    Report {
        format_version: 1,
        node,
        pods,
        summary,
        exit_code,
    }
}
