//! `calico-preflight doctor`: the node and every Calico pod on it, as a report.

use crate::checks::{Finding, Severity};
use crate::engine::doctor::{self, Options, Report};
use std::path::PathBuf;
use std::time::Duration;

pub const HELP: &str = "\
calico-preflight doctor: check this node and every Calico pod on it.

Finds the host's cali* veths, the pod namespace at the other end of each, runs the pod checks
for each pod and the node checks once, and prints one line per finding and a summary.
Read-only. Exit status: 0 all healthy, 1 warnings only, 2 errors, 3 the scan itself failed.

Options:
  --json                    print the report as JSON (stable: formatVersion 1)
  --prefix PREFIX           host veth name prefix (default cali)
  --netns-dir DIR           where pod namespaces are bind-mounted; repeatable
                            (default /run/netns and /var/run/netns)
  --no-proc-scan            do not look for pod namespaces through /proc/<pid>/ns/net
  --conf-dir DIR            CNI config dir (default: the runtime's, else /etc/cni/net.d)
  --cni-bin-dir DIR         the runtime's CNI bin dir; repeatable (default: the runtime's,
                            else /opt/cni/bin)
  --containerd-config PATH  containerd's config (default /etc/containerd/config.toml, and
                            k3s's and rke2's when present); none: do not read it
  --crio-config PATH        CRI-O's config file or drop-in dir (default /etc/crio/crio.conf
                            and /etc/crio/crio.conf.d); none: do not read it
  --search-bin-dir DIR      extra dir to look for misplaced plugin binaries; repeatable
  --iptables PATH           the node's iptables command (default /usr/sbin/iptables)
  --timeout-ms MS           bound on the kernel queries of each pod (default 2000)
  -h, --help                this text
";

pub fn main(args: &[String]) -> i32 {
    let (opts, json) = match parse(args) {
        Ok(Some(x)) => x,
        Ok(None) => {
            print!("{HELP}");
            return 0;
        }
        Err(e) => {
            eprintln!("calico-preflight doctor: {e}\n\n{HELP}");
            return 3;
        }
    };
    let report = match doctor::run(&opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("calico-preflight doctor: {e}");
            return 3;
        }
    };
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("calico-preflight doctor: cannot encode the report: {e}");
                return 3;
            }
        }
    } else {
        print!("{}", render(&report, &opts.prefixes.join(",")));
    }
    report.exit_code
}

fn parse(args: &[String]) -> Result<Option<(Options, bool)>, String> {
    let mut o = Options::default();
    let mut json = false;
    let (mut netns_dirs, mut bin_dirs) = (vec![], vec![]);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "--json" => json = true,
            "--no-proc-scan" => o.scan_procs = false,
            "--prefix" => {
                o.prefixes = value(a)?
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(String::from)
                    .collect()
            }
            "--netns-dir" => netns_dirs.push(PathBuf::from(value(a)?)),
            "--conf-dir" => o.conf_dir = PathBuf::from(value(a)?),
            "--cni-bin-dir" => bin_dirs.push(PathBuf::from(value(a)?)),
            "--search-bin-dir" => o.search_bin_dirs.push(PathBuf::from(value(a)?)),
            "--iptables" => o.iptables_command = PathBuf::from(value(a)?),
            "--containerd-config" => o.containerd_config = Some(PathBuf::from(value(a)?)),
            "--crio-config" => o.crio_config = Some(PathBuf::from(value(a)?)),
            "--timeout-ms" => {
                let v = value(a)?;
                let ms: u64 = v
                    .parse()
                    .ok()
                    .filter(|m| (1..=60_000).contains(m))
                    .ok_or_else(|| format!("--timeout-ms must be 1..60000, got {v:?}"))?;
                o.timeout = Duration::from_millis(ms);
            }
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    if !netns_dirs.is_empty() {
        o.netns_dirs = netns_dirs;
    }
    if !bin_dirs.is_empty() {
        o.cni_path = bin_dirs;
    }
    Ok(Some((o, json)))
}

fn line(who: &str, f: &Finding) -> String {
    format!(
        "[{} {}] {}: {}, on {}. Expected: {}. Found: {}. What to do: {}\n",
        f.severity.label(),
        f.check,
        who,
        f.problem,
        f.object,
        f.expected,
        f.found,
        f.remedy
    )
}

/// The text report: findings first (node, then pods), then the summary table.
pub fn render(r: &Report, prefix: &str) -> String {
    let mut out = String::new();
    for f in &r.node {
        out.push_str(&line("node", f));
    }
    for p in &r.pods {
        for f in &p.findings {
            out.push_str(&line(&p.label(), f));
        }
    }
    if !out.is_empty() {
        out.push('\n');
    }
    let s = &r.summary;
    out.push_str(&format!(
        "Summary: {} pod(s) on {prefix}* veths: {} healthy, {} with errors, {} with warnings only; node: {} error(s), {} warning(s)\n",
        s.pods, s.healthy, s.with_errors, s.with_warnings_only, s.node_errors, s.node_warnings
    ));
    if !s.by_check.is_empty() {
        out.push_str(&format!(
            "\n  {:<20} {:>6} {:>8}\n",
            "check", "errors", "warnings"
        ));
        for (check, (e, w)) in &s.by_check {
            out.push_str(&format!("  {check:<20} {e:>6} {w:>8}\n"));
        }
    }
    if !r.pods.is_empty() {
        out.push_str(&format!(
            "\n  {:<16} {:<8} {:<34} pod\n",
            "host veth", "status", "ips"
        ));
        for p in &r.pods {
            let status = match p.worst() {
                Some(Severity::Error) => "ERROR",
                Some(Severity::Warn) => "WARNING",
                _ => "ok",
            };
            out.push_str(&format!(
                "  {:<16} {:<8} {:<34} {}\n",
                p.host_veth,
                status,
                p.ips.join(","),
                p.pod.as_deref().unwrap_or("?")
            ));
        }
    }
    out
}
