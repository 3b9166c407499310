//! `doctor`: every Calico pod on this node checked from the host, plus the node checks once;
//! the seed's troubleshooting list worked through by a program.

use crate::checks::{
    host_network_manager, run_node_checks, run_pod_checks, run_unpaired_veth_checks, CheckId,
    Finding, PodFacts, Severity,
};
use crate::config::Config;
use crate::engine::doctor_cache;
use crate::engine::install::conflist::OUR_TYPE;
use crate::engine::reconcile;
use crate::inspect::calico_conf::CalicoConf;
use crate::inspect::cni_files::{self, CniFilesQuery};
use crate::inspect::netlink::Netlink;
use crate::inspect::runtime::{self, Dirs, RuntimeFacts, Source};
use crate::inspect::scan::{self, NetnsRef};
use crate::inspect::{self, netmgr, netns, node, Deadline, InspectError, PodInterface, Target};
use ipnetwork::IpNetwork;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// libcni's default cache dir (containernetworking/cni libcni/api.go `CacheDir`); containerd,
/// CRI-O and podman all use it.
pub const DEFAULT_CNI_CACHE_DIR: &str = "/var/lib/cni";

/// Far above any chain's ADD (bounded by the runtime's timeouts, a few minutes at most in
/// practice under load, typically well under a second).
pub const DEFAULT_ORPHAN_GRACE_SECS: u64 = 120;

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Host interface name prefixes (Calico: "cali"; FELIX_INTERFACEPREFIX may list several).
    pub prefixes: Vec<String>,
    pub netns_dirs: Vec<PathBuf>,
    /// Also find pod namespaces through /proc/<pid>/ns/net.
    pub scan_procs: bool,
    /// Bound on the kernel queries of each pod (and of the node checks). At its default, our
    /// installed entry's `timeoutMs` applies, as in ADD.
    pub timeout: Duration,
    /// The CNI conf dir; empty: the runtime's (from its config), else /etc/cni/net.d.
    pub conf_dir: PathBuf,
    /// The runtime's CNI bin dirs; empty: from its config, else /opt/cni/bin.
    pub cni_path: Vec<PathBuf>,
    /// Searched for misplaced binaries, besides our installed entry's `searchBinDirs`.
    pub search_bin_dirs: Vec<PathBuf>,
    /// At its default, our installed entry's `iptablesCommand` applies, as in ADD.
    pub iptables_command: PathBuf,
    /// The `type` of the plugin whose conflist is checked for binaries (Calico's).
    pub main_plugin: String,
    /// containerd's config file (`None` or `none`: do not read it). At the default, k3s's and
    /// rke2's locations are read too when present, and a missing file is no error.
    pub containerd_config: Option<PathBuf>,
    /// CRI-O's config file or drop-in dir (`None` or `none`: do not read it). At the default,
    /// /etc/crio/crio.conf.d is read too.
    pub crio_config: Option<PathBuf>,
    /// `--host-root`: where the host's root is mounted (a DaemonSet pod's `/host`). Node files
    /// and doctor's *default* dirs (conf, bin, runtime configs, netns dirs, iptables command)
    /// are read under it; dirs given as flags are used as given; /proc is the live one. Given,
    /// it replaces the installed entry's `hostRoot`; `None`: `/` for the dirs, and the entry's
    /// `hostRoot` for the files Calico's config names, as ADD reads them.
    pub host_root: Option<PathBuf>,
    /// libcni's cache dir (`<dir>/results/<network>-<containerID>-<ifName>`); at the default,
    /// read under `--host-root`.
    pub cni_cache_dir: PathBuf,
    /// `--pod NAMESPACE/NAME`: only that pod is checked (the node checks still run).
    pub pod: Option<(String, String)>,
    /// The active gateway probe (`pod-gateway-probe`); on unless `--no-probe`.
    pub probe: bool,
    /// `orphan-veth` leaves pod namespaces younger than this alone: libcni writes a pod's
    /// cache entry only after the whole chain's ADD, so a pod being wired has none yet.
    pub orphan_grace: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            prefixes: vec!["cali".into()],
            netns_dirs: vec![PathBuf::from("/run/netns"), PathBuf::from("/var/run/netns")],
            scan_procs: true,
            timeout: Duration::from_secs(2),
            conf_dir: PathBuf::new(),
            cni_path: vec![],
            search_bin_dirs: vec![],
            iptables_command: PathBuf::from("/usr/sbin/iptables"),
            main_plugin: "calico".into(),
            containerd_config: Some(PathBuf::from(runtime::CONTAINERD_CONFIG)),
            crio_config: Some(PathBuf::from(runtime::CRIO_CONFIG)),
            host_root: None,
            cni_cache_dir: PathBuf::from(DEFAULT_CNI_CACHE_DIR),
            pod: None,
            probe: true,
            orphan_grace: Duration::from_secs(DEFAULT_ORPHAN_GRACE_SECS),
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
    /// From libcni's result cache entry of this pod's attachment (`cniArgs`); null when no
    /// entry claims the pod.
    pub k8s_namespace: Option<String>,
    pub k8s_pod: Option<String>,
    pub k8s_pod_uid: Option<String>,
    pub container_id: Option<String>,
    pub findings: Vec<Finding>,
}

impl PodReport {
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }
    /// `namespace/name` when libcni's cache names the pod.
    pub fn k8s_name(&self) -> Option<String> {
        inspect::cni_cache::k8s_name(self.k8s_namespace.as_deref(), self.k8s_pod.as_deref())
    }
    /// How a person names the pod: `namespace/name`, else its namespace's bind-mount name.
    pub fn display_name(&self) -> String {
        self.k8s_name()
            .or_else(|| self.pod.clone())
            .unwrap_or_else(|| "?".into())
    }
    /// "pod ns/name (cali1234)" style label.
    pub fn label(&self) -> String {
        format!("pod {} ({})", self.display_name(), self.host_veth)
    }
}

#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
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
    /// 0: all healthy, 1: warnings only, 2: errors, 4: `--pod` names no pod found here.
    pub exit_code: i32,
    /// Where libcni's result cache was read and what it held; absent: no cache dir.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cni_cache: Option<super::doctor_cache::CacheSummary>,
    /// `--pod` named a pod that none of this node's links belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_not_found: Option<super::doctor_cache::PodNotFound>,
}

/// What doctor checks with: the runtime's dirs and our installed entry's settings, so that its
/// verdict on a pod is ADD's.
struct Setup {
    /// The probes' packet sockets, closed in batches by a child (see probe::Closer).
    closer: std::cell::RefCell<inspect::probe::Closer>,
    dirs: Dirs,
    runtime: RuntimeFacts,
    cfg: Config,
    timeout: Duration,
    iptables_command: PathBuf,
    search_dirs: Vec<PathBuf>,
    /// Calico's entry, read once per scan: every pod is judged against it, as ADD does.
    calico: Option<CalicoConf>,
    /// The host root the node files are read under (see [`Options::host_root`]).
    host_root: PathBuf,
    /// Calico's conflist `name` (libcni's cache entries are keyed by it).
    calico_network: Option<String>,
    /// [`Options::probe`].
    probe: bool,
}

impl Setup {
    fn overrides(&self) -> impl Fn(CheckId) -> Option<Severity> + '_ {
        |id| self.cfg.severity_override(id)
    }
}

/// A flag left at its default gives way to the installed entry's value.
fn source_of(flag: &Option<PathBuf>, default: &str) -> Source {
    match flag {
        None => Source::Off,
        Some(p) if p.as_path() == std::path::Path::new(default) => Source::Default,
        Some(p) => Source::from_flag(Some(p)),
    }
}

fn setup(o: &Options) -> Result<Setup, InspectError> {
    let root = o.host_root.clone().unwrap_or_else(|| PathBuf::from("/"));
    let conf_flag = (!o.conf_dir.as_os_str().is_empty()).then_some(o.conf_dir.as_path());
    let need_runtime = o.cni_path.is_empty() || conf_flag.is_none();
    let mut rt = RuntimeFacts::default();
    let found = if need_runtime {
        runtime::discover(
            &source_of(&o.containerd_config, runtime::CONTAINERD_CONFIG),
            &source_of(&o.crio_config, runtime::CRIO_CONFIG),
            &root,
        )
        .unwrap_or_else(|e| {
            // The cni-bin-dir check reports it; the defaults are checked meanwhile.
            rt.problem = Some(e);
            runtime::Discovery::default()
        })
    } else {
        runtime::Discovery::default()
    };
    let dirs = runtime::pick(
        &o.cni_path,
        conf_flag,
        &found.runtimes,
        &found.looked_at,
        &root,
    );
    rt.dirs = Some(dirs.clone());

    // Our entry in Calico's conflist, parsed by the plugin's own parser: its severities and
    // settings are the ones ADD runs with.
    let files = cni_files::gather(&CniFilesQuery {
        conf_dir: dirs.conf.dir.clone(),
        our_type: OUR_TYPE.into(),
        main_type: o.main_plugin.clone(),
        ..CniFilesQuery::default()
    });
    // Calico's entry in the same conflist ADD reads it from (app.rs): its IPAM decides each
    // pod's expected routes and families, so doctor's verdict is ADD's.
    let calico = CalicoConf::from_files(&files, &o.main_plugin);
    let calico_network = files
        .ours
        .and_then(|i| files.files.get(i))
        .and_then(|f| f.name.clone());
    let cfg = match installed_entry(&files) {
        // ADD fails every pod with this config: doctor cannot say what ADD would decide.
        Some((path, entry)) => Config::from_json(&entry).map_err(|e| InspectError::Io {
            what: format!("use calico-preflight's entry in {}", path.display()),
            detail: format!(
                "{} (ADD fails every pod on this node with this error); fix the entry, e.g. \
                 calico-preflight install --entry '{{...}}' replaces it",
                e.msg
            ),
        })?,
        None => Config::default(),
    };
    let defaults = Options::default();
    let timeout = if o.timeout == defaults.timeout {
        cfg.timeout
    } else {
        o.timeout
    };
    // The entry's paths are the host's (the plugin runs there): under --host-root here.
    let iptables_command = if o.iptables_command == defaults.iptables_command {
        crate::inspect::rooted::resolve_under(&root, &cfg.iptables_command)
    } else {
        o.iptables_command.clone()
    };
    let mut search_dirs = o.search_bin_dirs.clone();
    search_dirs.extend(
        cfg.search_bin_dirs
            .iter()
            .map(|d| crate::inspect::rooted::resolve_under(&root, d)),
    );
    // --host-root, when given, is where the host is; the entry's hostRoot says where the
    // plugin sees it, which is not doctor's view. Not given: read as ADD reads.
    let host_root = match &o.host_root {
        Some(r) => r.clone(),
        None => cfg.host_root.clone(),
    };
    Ok(Setup {
        closer: Default::default(),
        dirs,
        runtime: rt,
        cfg,
        timeout,
        iptables_command,
        search_dirs,
        calico,
        host_root,
        calico_network,
        probe: o.probe,
    })
}

/// The first plugin entry of our type in Calico's conflist, with the file's path.
fn installed_entry(
    files: &cni_files::CniFiles,
) -> Option<(PathBuf, serde_json::Map<String, serde_json::Value>)> {
    let f = files.files.get(files.ours?)?;
    let entry = f
        .plugins
        .iter()
        .find(|p| p.get("type").and_then(|t| t.as_str()) == Some(OUR_TYPE))?;
    Some((f.path.clone(), entry.clone()))
}

pub fn run(o: &Options) -> Result<Report, InspectError> {
    let s = setup(o)?;
    let mut nl = Netlink::open(Deadline::after(s.timeout))?;
    let (veths, host_links) = scan::host_veths(&mut nl, &o.prefixes)?;
    // The default netns dirs are the host's /run ones, under --host-root; flags as given.
    let netns_dirs: Vec<PathBuf> = match &o.host_root {
        Some(root) if o.netns_dirs == Options::default().netns_dirs => o
            .netns_dirs
            .iter()
            .map(|d| crate::inspect::rooted::resolve_under(root, d))
            .collect(),
        _ => o.netns_dirs.clone(),
    };
    let candidates = scan::candidate_netns(&netns_dirs, o.scan_procs);
    let by_id = scan::by_nsid(&mut nl, candidates)?;

    // Pair each veth with its pod's namespace; read every pod side on one scanning thread.
    let pairs: Vec<(inspect::Link, Option<NetnsRef>)> = veths
        .into_iter()
        .map(|v| {
            let ns = v.peer_netnsid.and_then(|id| by_id.get(&id)).cloned();
            (v, ns)
        })
        .collect();
    let (cache, pairs, claims, selected, not_found) = cache_and_selection(o, &s, pairs);
    let found: Vec<(String, u32)> = pairs
        .iter()
        .filter_map(|(v, ns)| Some((ns.as_ref()?.path.clone(), v.peer_index?)))
        .collect();
    let peers: Vec<u32> = found.iter().map(|(_, p)| *p).collect();
    let mut views = netns::in_each_netns(
        found.into_iter().map(|(p, _)| p).collect(),
        s.timeout,
        move |i, deadline| inspect::pod_view(&PodInterface::Index(peers[i]), deadline),
    )
    .into_iter();

    // Node-wide facts (gateway route, tunnel devices, uplink): once per scan, both families.
    let net = inspect::hostnet::gather(&mut nl, true, true)?;
    let mut pods = Vec::with_capacity(pairs.len());
    let mut families: Option<inspect::calico_conf::Families> = None;
    let listed: Vec<reconcile::Listed> = pairs
        .iter()
        .map(|(v, _)| reconcile::Listed::of(v))
        .collect();
    for (((veth, ns), claim), &chosen) in pairs.into_iter().zip(claims).zip(&selected) {
        let view = match (&ns, veth.peer_index) {
            (Some(_), Some(_)) => views.next(),
            _ => None,
        };
        nl.set_deadline(Deadline::after(s.timeout));
        let paired = view.is_some();
        let ctx = PodCtx {
            claim: claim.as_ref(),
            // The probe sends packets: only for the pods asked about.
            probe: s.probe && chosen,
        };
        let mut report = pod_report(&mut nl, veth, ns.clone(), view, ctx, &s, &net)?;
        cache_report(
            &cache,
            &mut report,
            claim.as_ref(),
            ns.as_ref().filter(|_| paired),
            &s,
        );
        let ips: Vec<IpNetwork> = report.ips.iter().filter_map(|i| i.parse().ok()).collect();
        let f = inspect::calico_conf::Families::of(&ips);
        families = Some(families.map_or(f, |a| a.union(f)));
        pods.push(report);
    }
    let (mut node, links) = node_findings(o, &s, families)?;
    for p in &mut pods {
        host_network_manager::name_mac_policy(&mut p.findings, &links);
    }
    node.extend(doctor_cache::with_overrides(
        cache.leak_findings(&host_links),
        s.overrides(),
    ));
    // Node-wide: stale host routes, duplicate pod IPs (attached to the pods concerned).
    reconcile::run(&mut nl, &listed, &mut pods, s.overrides(), s.timeout)?;
    // `--pod`: every pod was read (a stale route or a duplicate IP is judged against all of
    // them), only the one asked about is reported.
    let pods = pods
        .into_iter()
        .zip(&selected)
        .filter_map(|(p, &keep)| keep.then_some(p))
        .collect();
    let mut report = summarize(node, pods);
    report.cni_cache = cache.summary();
    if not_found.is_some() {
        report.exit_code = 4;
    }
    report.pod_not_found = not_found;
    Ok(report)
}

type Pair = (inspect::Link, Option<NetnsRef>);

/// What doctor knows of a pod besides its links: its cache entry, and whether to probe it.
#[derive(Clone, Copy)]
struct PodCtx<'a> {
    claim: Option<&'a inspect::cni_cache::CacheEntry>,
    probe: bool,
}

/// libcni's result cache, each link's entry, and `--pod`'s selection of the links (every
/// link is kept: the selection says which are reported).
#[allow(clippy::type_complexity)]
fn cache_and_selection(
    o: &Options,
    s: &Setup,
    pairs: Vec<Pair>,
) -> (
    doctor_cache::CacheView,
    Vec<Pair>,
    Vec<Option<inspect::cni_cache::CacheEntry>>,
    Vec<bool>,
    Option<doctor_cache::PodNotFound>,
) {
    let cache = doctor_cache::CacheView::gather(o, &s.host_root, s.calico_network.clone());
    let claims: Vec<_> = pairs
        .iter()
        .map(|(v, ns)| cache.entry_for(&v.name, ns.as_ref()))
        .collect();
    let Some(sel) = &o.pod else {
        let all = vec![true; pairs.len()];
        return (cache, pairs, claims, all, None);
    };
    let selected: Vec<bool> = claims
        .iter()
        .map(|c| doctor_cache::selects(sel, c.as_ref()))
        .collect();
    let not_found = (!selected.contains(&true)).then(|| {
        let found = pairs
            .iter()
            .zip(&claims)
            .take(doctor_cache::NOT_FOUND_LISTED)
            .map(|(p, c)| {
                let name = c
                    .as_ref()
                    .and_then(|e| e.k8s_name())
                    .or_else(|| p.1.as_ref().map(|n| n.label.clone()))
                    .unwrap_or_else(|| "?".into());
                format!("{name} ({})", p.0.name)
            })
            .collect();
        doctor_cache::PodNotFound {
            pod: format!("{}/{}", sel.0, sel.1),
            pods_found: pairs.len(),
            found,
        }
    });
    (cache, pairs, claims, selected, not_found)
}

/// The pod's names from its cache entry, and `orphan-veth` when its namespace was found.
fn cache_report(
    cache: &doctor_cache::CacheView,
    r: &mut PodReport,
    claim: Option<&inspect::cni_cache::CacheEntry>,
    paired_ns: Option<&NetnsRef>,
    s: &Setup,
) {
    doctor_cache::name_report(r, claim);
    if let Some(ns) = paired_ns {
        let f = cache.orphan_findings(&r.host_veth, ns);
        r.findings
            .extend(doctor_cache::with_overrides(f, s.overrides()));
    }
}

type PodOutcome = Result<Result<inspect::PodView, inspect::NetnsProblem>, InspectError>;

fn pod_report(
    nl: &mut Netlink,
    veth: inspect::Link,
    ns: Option<NetnsRef>,
    view: Option<PodOutcome>,
    ctx: PodCtx,
    s: &Setup,
    net: &inspect::hostnet::HostNet,
) -> Result<PodReport, InspectError> {
    let mut report = PodReport {
        host_veth: veth.name.clone(),
        pod: ns.as_ref().map(|n| n.label.clone()),
        netns_path: ns.as_ref().map(|n| n.path.clone()),
        interface: None,
        ips: vec![],
        k8s_namespace: None,
        k8s_pod: None,
        k8s_pod_uid: None,
        container_id: None,
        findings: vec![],
    };
    let (Some(ns), Some(view)) = (ns, view) else {
        report.findings = run_unpaired_veth_checks(&veth, s.overrides());
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
        host_ifaces: vec![veth.name.clone()],
        // What ADD knew from CNI_ARGS and its prevResult, from the runtime's cache entry.
        pod_name: ctx.claim.and_then(|c| c.k8s_pod.clone()),
        result_has_routes: ctx.claim.and_then(|c| c.result_has_routes),
    };
    let host = inspect::gather_host_shared(nl, &target, pod.as_ref().ok(), net.clone())?;
    // The active probe, unless --no-probe or the entry turns the check off; with the entry's
    // probeTimeoutMs, as ADD would wait.
    let probe = (ctx.probe
        && s.cfg.severity_override(CheckId::PodGatewayProbe) != Some(Severity::Off))
    .then(|| inspect::probe::plan(&target, pod.as_ref().ok(), &host, s.cfg.probe_timeout))
    .flatten()
    .map(|plan| {
        let mut closer = s.closer.borrow_mut();
        inspect::probe::run(&target.netns, plan, Deadline::after(s.timeout), &mut closer)
    });
    let facts = PodFacts {
        target: &target,
        pod: &pod,
        host: &host,
        calico: s.calico.as_ref(),
        probe: probe.as_ref(),
    };
    report.interface = ifname;
    report.ips = target.pod_ips.iter().map(|i| i.to_string()).collect();
    report.findings = run_pod_checks(&facts, s.overrides());
    Ok(report)
}

fn node_findings(
    o: &Options,
    s: &Setup,
    pod_families: Option<inspect::calico_conf::Families>,
) -> Result<(Vec<Finding>, netmgr::LinkFacts), InspectError> {
    // The binaries that matter are those of Calico's conflist, whatever its network is called;
    // CNI_PATH is what the runtime passes: its bin dirs.
    let q = node::NodeQuery {
        files: CniFilesQuery {
            conf_dir: s.dirs.conf.dir.clone(),
            network_name: String::new(),
            our_type: OUR_TYPE.into(),
            main_type: o.main_plugin.clone(),
            cni_path: s.dirs.bin.iter().map(|b| b.dir.clone()).collect(),
            search_dirs: s.search_dirs.clone(),
        },
        iptables_command: s.iptables_command.clone(),
        pod_families,
        host_root: s.host_root.clone(),
        token_warn_seconds: s.cfg.token_warn_seconds,
    };
    let mut facts = node::gather(&q, Deadline::after(s.timeout))?;
    facts.runtime = Some(s.runtime.clone());
    // Doctor only: udev's MAC policy for veths is on almost every systemd node and mostly
    // harmless, so ADD never reports it; here it is a warning under host-network-manager.
    let links = netmgr::gather_links(&q.host_root);
    if let Some(n) = facts.netmgr.as_mut() {
        n.veth_link = Some(links.clone());
    }
    Ok((run_node_checks(&facts, s.overrides()), links))
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
        cni_cache: None,
        pod_not_found: None,
    }
}
