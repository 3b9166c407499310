//! One plugin invocation: parse, dispatch on CNI_COMMAND, check, answer.

use crate::checks::{run_node_checks, run_pod_checks, Finding, PodFacts};
use crate::cni::netconf::{read_stdin, sniff_version};
use crate::cni::result::{empty_result, pass_through_text};
use crate::cni::{version, CniError, Command, Env, ErrorCode, NetConf, PrevResult};
use crate::config::{Config, Mode};
use crate::inspect::calico_conf::{CalicoConf, Families, CALICO_TYPE};
use crate::inspect::cni_files::{self, CniFilesQuery};
use crate::inspect::{self, node, Deadline, Target};
use crate::logging::Logger;
use crate::node_cache::NodeCache;
use crate::report;
use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

/// What to print on stdout and the exit status.
#[derive(Debug, PartialEq, Eq)]
pub struct Output {
    pub stdout: Option<String>,
    pub status: i32,
}

impl Output {
    fn ok(stdout: Option<String>) -> Output {
        Output { stdout, status: 0 }
    }
    fn err(e: &CniError, cni_version: &str) -> Output {
        Output {
            stdout: Some(e.to_json(cni_version)),
            status: 1,
        }
    }
}

/// One call's inputs, parsed.
struct Call<'a> {
    command: Command,
    env: &'a Env,
    conf: &'a NetConf,
    cfg: &'a Config,
    deadline: Deadline,
    /// The raw stdin config: the prevResult is passed on with its own text.
    stdin: &'a [u8],
}

pub fn run(get_env: impl Fn(&str) -> Option<String>, stdin: impl Read) -> Output {
    let started = Instant::now();
    // Test hook, debug builds only: proves a panic still leaves the runtime a CNI error.
    #[cfg(debug_assertions)]
    if get_env("CALICO_PREFLIGHT_TEST_PANIC").is_some() {
        panic!("test panic requested by CALICO_PREFLIGHT_TEST_PANIC");
    }
    let env = match Env::parse(get_env) {
        Ok(e) => e,
        Err(e) => return Output::err(&e, version::LATEST),
    };
    let command = env.command.unwrap_or(Command::Version);
    // Nothing of ours to tear down: DEL succeeds whatever state the pod is in, even with a
    // config we could not read (the runtime calls it again on sandbox removal). GC: nothing
    // to collect. VERSION needs the config only to echo its version.
    let bytes = match (read_stdin(stdin), command) {
        (Ok(b), _) => b,
        (Err(_), Command::Del | Command::Gc) => return Output::ok(None),
        (Err(_), Command::Version) => {
            return Output::ok(Some(version::version_json(version::LATEST)))
        }
        (Err(e), _) => return Output::err(&e, version::LATEST),
    };
    let hint = sniff_version(&bytes).unwrap_or_else(|| version::LATEST.to_string());
    match command {
        Command::Version => return Output::ok(Some(version::version_json(&hint))),
        Command::Del | Command::Gc => return Output::ok(None),
        _ => {}
    }
    let parsed = NetConf::parse(&bytes).and_then(|c| Config::from_json(&c.raw).map(|cfg| (c, cfg)));
    let (conf, cfg) = match parsed {
        Ok(x) => x,
        Err(e) => return Output::err(&e, &hint),
    };
    let context = format!("pod={} verb={}", env.pod_identity(), command.as_str());
    Logger::new(cfg.log_file.as_deref(), cfg.effective_log_level(), context).install();

    let call = Call {
        command,
        env: &env,
        conf: &conf,
        cfg: &cfg,
        deadline: Deadline::after(cfg.timeout),
        stdin: &bytes,
    };
    let result = match command {
        Command::Add | Command::Check => pod_call(&call),
        _ => status_call(&call).map(|()| None),
    };
    let ms = started.elapsed().as_millis();
    match result {
        Ok(out) => {
            log::info!("outcome=ok duration_ms={ms}");
            Output::ok(out)
        }
        Err(e) => {
            log::error!(
                "outcome=fail code={} duration_ms={ms} {}",
                e.code.as_u32(),
                e.msg
            );
            Output::err(&e, &conf.cni_version)
        }
    }
}

fn pod_call(call: &Call) -> Result<Option<String>, CniError> {
    let Call {
        command,
        env,
        conf,
        cfg,
        ..
    } = call;
    if *command == Command::Check && !version::has_check(&conf.cni_version) {
        return Err(CniError::new(
            ErrorCode::IncompatibleVersion,
            format!(
                "calico-preflight: CHECK is not defined for cniVersion {}",
                conf.cni_version
            ),
            "CHECK exists from cniVersion 0.4.0 on: raise the conflist's cniVersion, or do not \
             call CHECK for this network",
        ));
    }
    let Some(prev_json) = &conf.prev_result else {
        // First in the chain: the pod is not wired yet, only the node can be checked.
        let findings = node_findings(call, None)?;
        verdict(&findings, cfg, ErrorCode::CheckFailed)?;
        return Ok((*command == Command::Add).then(|| empty_result(&conf.cni_version).to_string()));
    };
    let prev = PrevResult::parse(prev_json)?;
    // Convert (and validate the version) before inspecting: a result we cannot pass on fails anyway.
    let out = pass_through_text(call.stdin, prev_json, &conf.cni_version)?;
    let target = Target {
        netns: env.netns.clone(),
        ifname: env.ifname.clone(),
        pod_ips: prev.pod_ips(&env.ifname),
        host_ifaces: prev.host_interfaces().map(|i| i.name.clone()).collect(),
        pod_name: env.args.get("K8S_POD_NAME").cloned(),
        // Absent and empty alike: Calico tests `len(result.Routes) == 0`.
        result_has_routes: Some(
            prev_json
                .get("routes")
                .and_then(serde_json::Value::as_array)
                .is_some_and(|r| !r.is_empty()),
        ),
    };
    // Calico's own entry decides which routes the pod should have. Only the conf dir is read
    // (no binary lookups): this runs on every pod start.
    let calico = CalicoConf::from_files(&cni_files::read_conf_dir(&files_query(call)), CALICO_TYPE);
    if calico.is_none() {
        log::debug!(
            "Calico's entry (type {CALICO_TYPE}) not found in network {:?} in {}: route and family \
             expectations fall back to Calico's defaults, ambiguous findings warn",
            conf.name,
            cfg.conf_dir.display()
        );
    }
    let timeout_ms = cfg.timeout.as_millis();
    let pod = inspect::gather_pod(&target, call.deadline)
        .map_err(|e| report::inspect_error(e, timeout_ms))?;
    let host = inspect::gather_host(&target, pod.as_ref().ok(), call.deadline)
        .map_err(|e| report::inspect_error(e, timeout_ms))?;
    let probe = run_probe(call, &target, &pod, &host);
    let facts = PodFacts {
        target: &target,
        pod: &pod,
        host: &host,
        calico: calico.as_ref(),
        probe: probe.as_ref(),
    };
    let mut findings = run_pod_checks(&facts, |id| cfg.severity_override(id));
    if findings
        .iter()
        .any(|f| f.check == crate::checks::CheckId::HostVethMac)
    {
        // Only a wrong host-veth MAC pays for reading the udev .link files.
        let links = inspect::netmgr::gather_links(&cfg.host_root);
        crate::checks::host_network_manager::name_mac_policy(&mut findings, &links);
    }
    if cfg.node_checks {
        findings.extend(node_findings(call, Some(Families::of(&target.pod_ips)))?);
    }
    verdict(&findings, cfg, ErrorCode::CheckFailed)?;
    Ok((*command == Command::Add).then_some(out))
}

/// The active gateway probe, when the entry asks for it (`"probe": true`) and the check is not
/// off; `None` also when there is no wiring to probe (other checks report that).
fn run_probe(
    call: &Call,
    target: &Target,
    pod: &Result<inspect::PodView, inspect::NetnsProblem>,
    host: &inspect::HostView,
) -> Option<inspect::probe::ProbeOutcome> {
    let cfg = call.cfg;
    if !cfg.probe
        || cfg.severity_override(crate::checks::CheckId::PodGatewayProbe)
            == Some(crate::checks::Severity::Off)
    {
        return None;
    }
    let plan = inspect::probe::plan(target, pod.as_ref().ok(), host, cfg.probe_timeout)?;
    let started = Instant::now();
    let mut closer = inspect::probe::Closer::default();
    let outcome = inspect::probe::run(&target.netns, plan, call.deadline, &mut closer);
    log::debug!(
        "probe: {:?} in {} µs",
        outcome
            .families
            .iter()
            .map(|f| &f.answer)
            .collect::<Vec<_>>(),
        started.elapsed().as_micros()
    );
    Some(outcome)
}

/// STATUS: whether this node can serve ADD, i.e. the node checks.
fn status_call(call: &Call) -> Result<(), CniError> {
    let findings = node_findings(call, None)?;
    verdict(&findings, call.cfg, ErrorCode::PluginNotAvailable)
}

/// Logs the findings and fails when one is at error severity (unless in warn mode).
fn verdict(findings: &[Finding], cfg: &Config, code: ErrorCode) -> Result<(), CniError> {
    report::log_findings(findings);
    let Some(mut err) = report::findings_error(findings) else {
        return Ok(());
    };
    err.code = code;
    match cfg.mode {
        Mode::Enforce => Err(err),
        Mode::Warn => {
            log::warn!("mode=warn: passing through despite: {}", err.msg);
            Ok(())
        }
    }
}

/// What the node checks (and the pod call's Calico lookup) read in the conf dir.
fn files_query(call: &Call) -> CniFilesQuery {
    let Call { env, conf, cfg, .. } = call;
    CniFilesQuery {
        conf_dir: cfg.conf_dir.clone(),
        network_name: conf.name.clone(),
        our_type: conf.plugin_type.clone(),
        cni_path: env.path.iter().map(PathBuf::from).collect(),
        search_dirs: cfg.search_bin_dirs.clone(),
        ..CniFilesQuery::default()
    }
}

/// The node checks, from the cache when a recent outcome for the same inputs exists.
/// `pod_families`: the pod's IP families after calico; `None` first in the chain and on STATUS.
fn node_findings(call: &Call, pod_families: Option<Families>) -> Result<Vec<Finding>, CniError> {
    let cfg = call.cfg;
    let query = node::NodeQuery {
        files: files_query(call),
        iptables_command: cfg.iptables_command.clone(),
        pod_families,
        host_root: cfg.host_root.clone(),
        token_warn_seconds: cfg.token_warn_seconds,
    };
    let overrides: Vec<_> = crate::checks::CheckId::ALL
        .iter()
        .filter_map(|id| cfg.severity_override(*id).map(|s| (id.as_str(), s)))
        .collect();
    // The token expiry makes an outcome time-dependent: a cached "valid" can turn "expiring" or
    // "expired" within the TTL. The TTL (30 s default, a day at most) is far below any sane
    // tokenWarnSeconds window, so a cached outcome is at most one TTL late to warn.
    let key = format!(
        "netns={} q={:?}/{:?}/{:?}/{:?}/{:?} ipt={:?} families={pod_families:?} overrides={overrides:?} root={:?} tokwarn={}",
        node::netns_id(),
        query.files.conf_dir,
        query.files.network_name,
        query.files.our_type,
        query.files.cni_path,
        query.files.search_dirs,
        query.iptables_command,
        query.host_root,
        query.token_warn_seconds,
    );
    let cache = NodeCache::new(&cfg.cache_dir, key, cfg.node_check_ttl);
    if let Some(f) = cache.load() {
        log::debug!("node checks from cache {}", cache.path().display());
        return Ok(f);
    }
    let facts = node::gather(&query, call.deadline)
        .map_err(|e| report::inspect_error(e, cfg.timeout.as_millis()))?;
    let findings = run_node_checks(&facts, |id| cfg.severity_override(id));
    cache.store(&findings);
    Ok(findings)
}
