//! One plugin invocation: parse, dispatch on CNI_COMMAND, check, answer.

use crate::checks::{run_pod_checks, PodFacts};
use crate::cni::netconf::{read_stdin, sniff_version};
use crate::cni::result::{empty_result, pass_through};
use crate::cni::{version, CniError, Command, Env, ErrorCode, NetConf, PrevResult};
use crate::config::{Config, Mode};
use crate::inspect::{self, Deadline, Target};
use crate::logging::Logger;
use crate::report;
use std::io::Read;
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

pub fn run(get_env: impl Fn(&str) -> Option<String>, stdin: impl Read) -> Output {
    let started = Instant::now();
    let env = match Env::parse(get_env) {
        Ok(e) => e,
        Err(e) => return Output::err(&e, version::LATEST),
    };
    let command = env.command.unwrap_or(Command::Version);
    let bytes = match read_stdin(stdin) {
        Ok(b) => b,
        Err(e) => return Output::err(&e, version::LATEST),
    };
    let hint = sniff_version(&bytes).unwrap_or_else(|| version::LATEST.to_string());
    match command {
        Command::Version => return Output::ok(Some(version::version_json(&hint))),
        // Nothing of ours to tear down: DEL succeeds whatever state the pod is in, even with a
        // config we could not read (the runtime calls it again on sandbox removal).
        Command::Del => return Output::ok(None),
        _ => {}
    }
    let (conf, cfg) =
        match NetConf::parse(&bytes).and_then(|c| Config::from_json(&c.raw).map(|cfg| (c, cfg))) {
            Ok(x) => x,
            Err(e) => return Output::err(&e, &hint),
        };
    let context = format!("pod={} verb={}", env.pod_identity(), command.as_str());
    Logger::new(cfg.log_file.as_deref(), cfg.effective_log_level(), context).install();

    let result = match command {
        Command::Add | Command::Check => pod_call(command, &env, &conf, &cfg),
        // STATUS and GC have nothing pod-specific to do.
        _ => Ok(None),
    };
    let ms = started.elapsed().as_millis();
    match result {
        Ok(out) => {
            log::info!("outcome=ok duration_ms={ms}");
            Output::ok(out.map(|v| v.to_string()))
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

fn pod_call(
    command: Command,
    env: &Env,
    conf: &NetConf,
    cfg: &Config,
) -> Result<Option<serde_json::Value>, CniError> {
    if command == Command::Check && !version::has_check(&conf.cni_version) {
        return Err(CniError::new(
            ErrorCode::IncompatibleVersion,
            format!(
                "calico-preflight: CHECK is not defined for cniVersion {}",
                conf.cni_version
            ),
            "CHECK exists from cniVersion 0.4.0 on",
        ));
    }
    let Some(prev_json) = &conf.prev_result else {
        // First in the chain: nothing of the pod exists yet; hand an empty result on.
        return Ok((command == Command::Add).then(|| empty_result(&conf.cni_version)));
    };
    let prev = PrevResult::parse(prev_json)?;
    // Convert (and validate the version) before inspecting: a result we cannot pass on fails anyway.
    let out = pass_through(prev_json, &conf.cni_version)?;
    let target = Target {
        netns: env.netns.clone(),
        ifname: env.ifname.clone(),
        pod_ips: prev.pod_ips(&env.ifname),
        host_veth: prev.host_interfaces().next().map(|i| i.name.clone()),
    };
    let deadline = Deadline::after(cfg.timeout);
    let timeout_ms = cfg.timeout.as_millis();
    let pod =
        inspect::gather_pod(&target, deadline).map_err(|e| report::inspect_error(e, timeout_ms))?;
    let host = inspect::gather_host(&target, pod.as_ref().ok(), deadline)
        .map_err(|e| report::inspect_error(e, timeout_ms))?;
    let facts = PodFacts {
        target: &target,
        pod: &pod,
        host: &host,
    };
    let findings = run_pod_checks(&facts, |id| cfg.severity(id));
    report::log_findings(&findings);
    if let Some(err) = report::findings_error(&findings) {
        match cfg.mode {
            Mode::Enforce => return Err(err),
            Mode::Warn => log::warn!("mode=warn: passing through despite: {}", err.msg),
        }
    }
    Ok((command == Command::Add).then_some(out))
}
