//! `calico-preflight doctor`: the node and every Calico pod on it, as a report.

use super::grammar::{usage_error, Args, Parsed};
use super::npd;
use crate::checks::{Finding, Severity};
use crate::cni::env::escape_control;
use crate::engine::doctor::{Options, Report};
use crate::engine::install::NO_CONFIG;
use crate::engine::metrics;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const HELP: &str = "\
calico-preflight doctor: check this node and every Calico pod on it.

Finds the host's cali* veths, the pod namespace at the other end of each, runs the pod checks
for each pod and the node checks once, and prints one line per finding and a summary.
Read-only.

Options (each value as `--flag VALUE` or `--flag=VALUE`):
  --json                    print the report as JSON (stable: formatVersion 1)
  --prefix PREFIX[,PREFIX]  host veth name prefix(es) (default cali)
  --netns-dir DIR           where pod namespaces are bind-mounted; repeatable
                            (default /run/netns and /var/run/netns)
  --no-proc-scan            do not look for pod namespaces through /proc/<pid>/ns/net
  --cni-conf-dir DIR        CNI config dir (also --conf-dir; default: the runtime's, else
                            /etc/cni/net.d)
  --cni-bin-dir DIR         the runtime's CNI bin dir; repeatable (default: the runtime's,
                            else /opt/cni/bin)
  --search-bin-dir DIR      extra dir to look for misplaced plugin binaries; repeatable
  --containerd-config PATH  containerd's config (default /etc/containerd/config.toml, and
                            k3s's and rke2's when present); none: do not read it
  --crio-config PATH        CRI-O's config file or drop-in dir (default /etc/crio/crio.conf
                            and every file under /etc/crio/crio.conf.d); none: do not read it
  --iptables PATH           the node's iptables command (default /usr/sbin/iptables)
  --host-root DIR           where the host's root is mounted (default /; a DaemonSet pod's
                            /host). Node files (/etc, /var/lib/calico, /run, the kubeconfig)
                            and the defaults above are read under it; dirs and paths given
                            as flags are used as given; /proc is always the live one. It
                            replaces the hostRoot of calico-preflight's installed entry
  --timeout-ms MS           bound on the kernel queries of each pod (default 2000)
  --cni-cache-dir DIR       libcni's cache dir, whose results/<network>-<container>-<ifname>
                            entries name each pod namespace/name (DIR/results and, for
                            dockershim and cri-dockerd, DIR/cache/results; default
                            /var/lib/cni, read under --host-root; containerd, CRI-O and
                            podman write it)
  --orphan-grace-seconds N  orphan-veth leaves pod namespaces younger than N seconds alone
                            (default 120: libcni writes a pod's cache entry only once the
                            whole chain's ADD is done, so a pod being wired has none yet)
  --pod NAMESPACE/NAME      check only that pod, as the cache names it (the node checks
                            still run)
  --npd                     answer as a node-problem-detector custom plugin: one line on
                            stdout (the most important finding first), exit 0 OK, 1 a
                            problem (errors), 2 could not check (scan failed, usage error)
  --npd-warnings            with --npd: warnings are a problem too (exit 1)
  --max-output-length N     with --npd: the line's bound in bytes, cut on a UTF-8 boundary
                            (default 80, NPD's max_output_length; 1..4096)
  --no-probe                skip the active gateway probe (pod-gateway-probe: one ARP request
                            for 169.254.1.1 / one IPv6 neighbor solicitation from inside each
                            pod; the host learns the pod's neighbour entry, as from the pod's
                            first packet)
  --textfile PATH           also write the report as Prometheus metrics to PATH (must end
                            in .prom) for node_exporter's textfile collector, atomically
                            (temp file in the same dir + rename); the output and exit
                            status are as without it, except 3 when PATH cannot be written.
                            The metrics are those of install --metrics-addr (README, \"Run it
                            across the cluster\") without calico_preflight_conflist_repairs_total
  -h, --help                this text

Exit status: 0 all healthy, 1 warnings only, 2 errors, 3 the scan itself failed (or
--textfile could not be written), 4 the --pod named is on none of this node's links,
64 usage error. With --npd: 0 OK, 1 a problem, 2 could not check (see --npd; also a --pod
on none of this node's links).
";

pub fn main(args: Vec<OsString>) -> i32 {
    let npd_mode = npd::requested(&args);
    let Run {
        opts,
        json,
        textfile,
        npd,
    } = match parse(args) {
        Ok(Parsed::Run(x)) => x,
        Ok(Parsed::Help) => {
            print!("{HELP}");
            return 0;
        }
        // NPD shows stdout and treats every status but 0 and 1 as Unknown.
        Err(e) if npd_mode => return npd::usage_error(&e),
        Err(e) => return usage_error("doctor", &e),
    };
    if let Some(s) = npd {
        return npd::main(&opts, s);
    }
    let scan = metrics::timed_scan(&opts);
    let written = textfile.as_ref().is_none_or(|path| {
        write_textfile(path, scan.as_ref().ok().map(metrics::Scan::result).as_ref())
    });
    let report = match scan {
        Ok(s) => s.report,
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
    if !written {
        return 3;
    }
    report.exit_code
}

/// `--textfile PATH`: node_exporter's textfile collector reads only `*.prom` files, so any
/// other name would be written and never read.
fn textfile_path(a: &mut Args) -> Result<PathBuf, String> {
    let p = a.path()?;
    if !metrics::textfile_name_ok(&p) {
        return Err(format!(
            "--textfile must name a file ending in .prom (node_exporter's textfile collector \
             reads only *.prom), got {:?}",
            p.display().to_string()
        ));
    }
    Ok(p)
}

/// Writes the metrics of `scan` (`None`: the scan failed: only the error counter, so that an
/// older file's findings do not live on); false, with the reason on stderr, when it cannot.
fn write_textfile(path: &Path, scan: Option<&metrics::ScanResult>) -> bool {
    let text = metrics::render(&metrics::Snapshot {
        last: scan,
        scan_errors: metrics::previous_scan_errors(path) + u64::from(scan.is_none()),
        conflist_repairs: None,
    });
    match metrics::write_textfile(path, &text) {
        Ok(()) => true,
        Err(e) => {
            eprintln!(
                "calico-preflight doctor: cannot write the metrics to {}: {e}\n  to fix: \
                 pass --textfile with a file in node_exporter's --collector.textfile.directory \
                 that this user can write",
                path.display()
            );
            false
        }
    }
}

/// `--containerd-config` / `--crio-config`: a path, or `none` to not read it.
fn runtime_config(a: &mut Args) -> Result<Option<PathBuf>, String> {
    let p = a.path()?;
    Ok((p != Path::new(NO_CONFIG)).then_some(p))
}

/// Doctor's scan flags, shared with `install --watch` (whose scans take them with the same
/// spellings and defaults). A repeatable dir flag replaces the default list on its first use.
#[derive(Debug, Clone, Default)]
pub struct ScanFlags {
    pub opts: Options,
    netns_dirs: Vec<PathBuf>,
    bin_dirs: Vec<PathBuf>,
}

impl ScanFlags {
    /// Handles `flag` when it is a scan flag; `Ok(false)` when it is not one.
    pub fn flag(&mut self, a: &mut Args, flag: &str) -> Result<bool, String> {
        let o = &mut self.opts;
        match flag {
            "--no-proc-scan" => o.scan_procs = false,
            "--no-probe" => o.probe = false,
            "--cni-cache-dir" => o.cni_cache_dir = a.path()?,
            "--orphan-grace-seconds" => {
                let v = a.string()?;
                let secs: u64 =
                    v.parse().ok().filter(|s| *s <= 86_400).ok_or_else(|| {
                        format!("--orphan-grace-seconds must be 0..86400, got {v:?}")
                    })?;
                o.orphan_grace = Duration::from_secs(secs);
            }
            "--prefix" => {
                o.prefixes = a
                    .string()?
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(String::from)
                    .collect();
                if o.prefixes.is_empty() {
                    return Err("--prefix needs at least one prefix, e.g. cali".into());
                }
            }
            "--netns-dir" => self.netns_dirs.push(a.path()?),
            // install's spelling and doctor's original one.
            "--cni-conf-dir" | "--conf-dir" => o.conf_dir = a.path()?,
            "--cni-bin-dir" => self.bin_dirs.push(a.path()?),
            "--search-bin-dir" => o.search_bin_dirs.push(a.path()?),
            "--containerd-config" => o.containerd_config = runtime_config(a)?,
            "--crio-config" => o.crio_config = runtime_config(a)?,
            "--iptables" => o.iptables_command = a.path()?,
            "--host-root" => {
                let r = a.path()?;
                if !r.is_absolute() {
                    return Err(format!(
                        "--host-root must be an absolute path, got {:?}",
                        r.display().to_string()
                    ));
                }
                o.host_root = Some(r);
            }
            "--timeout-ms" => {
                let v = a.string()?;
                let ms: u64 = v
                    .parse()
                    .ok()
                    .filter(|m| (1..=60_000).contains(m))
                    .ok_or_else(|| format!("--timeout-ms must be 1..60000, got {v:?}"))?;
                o.timeout = Duration::from_millis(ms);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The options, with the repeatable dirs in place of the defaults when given.
    pub fn finish(self) -> Options {
        let mut o = self.opts;
        if !self.netns_dirs.is_empty() {
            o.netns_dirs = self.netns_dirs;
        }
        if !self.bin_dirs.is_empty() {
            o.cni_path = self.bin_dirs;
        }
        o
    }
}

/// The doctor flags that give `o` back through [`ScanFlags`]: `install --watch` runs each
/// scan as `doctor --json` with them in a child process (engine/install/monitor.rs). `pod`
/// and `main_plugin` are not scan flags of the watch.
pub fn scan_args(o: &Options) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut flag = |f: &str, v: OsString| {
        a.push(f.into());
        a.push(v);
    };
    flag("--prefix", o.prefixes.join(",").into());
    for d in &o.netns_dirs {
        flag("--netns-dir", d.into());
    }
    if !o.conf_dir.as_os_str().is_empty() {
        flag("--cni-conf-dir", (&o.conf_dir).into());
    }
    for d in &o.cni_path {
        flag("--cni-bin-dir", d.into());
    }
    for d in &o.search_bin_dirs {
        flag("--search-bin-dir", d.into());
    }
    let config = |c: &Option<PathBuf>| c.clone().unwrap_or_else(|| NO_CONFIG.into()).into();
    flag("--containerd-config", config(&o.containerd_config));
    flag("--crio-config", config(&o.crio_config));
    flag("--iptables", (&o.iptables_command).into());
    if let Some(r) = &o.host_root {
        flag("--host-root", r.into());
    }
    flag("--timeout-ms", o.timeout.as_millis().to_string().into());
    flag("--cni-cache-dir", (&o.cni_cache_dir).into());
    flag(
        "--orphan-grace-seconds",
        o.orphan_grace.as_secs().to_string().into(),
    );
    if !o.scan_procs {
        a.push("--no-proc-scan".into());
    }
    if !o.probe {
        a.push("--no-probe".into());
    }
    a
}

/// What doctor was asked to do.
struct Run {
    opts: Options,
    json: bool,
    /// `--textfile`: also write the metrics there.
    textfile: Option<PathBuf>,
    /// `--npd`: answer as a node-problem-detector plugin.
    npd: Option<npd::Settings>,
}

fn parse(args: Vec<OsString>) -> Result<Parsed<Run>, String> {
    let mut scan = ScanFlags::default();
    let mut json = false;
    let mut textfile = None;
    let (mut npd_on, mut npd_s, mut npd_len) = (false, npd::Settings::default(), false);
    let mut a = Args::new(args);
    while let Some(flag) = a.next_flag()? {
        if scan.flag(&mut a, &flag)? {
            continue;
        }
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--json" => json = true,
            "--textfile" => textfile = Some(textfile_path(&mut a)?),
            "--npd" => npd_on = true,
            "--npd-warnings" => npd_s.warnings = true,
            "--max-output-length" => {
                npd_s.max_len = npd::parse_max_output_length(&a.string()?)?;
                npd_len = true;
            }
            "--pod" => scan.opts.pod = Some(pod_selector(&a.string()?)?),
            _ => return Err(a.unknown()),
        }
    }
    if !npd_on && (npd_s.warnings || npd_len) {
        return Err("--npd-warnings and --max-output-length go with --npd".into());
    }
    if npd_on && json {
        return Err("--npd and --json are two different outputs: pick one".into());
    }
    if npd_on && textfile.is_some() {
        return Err(
            "--npd and --textfile are two different outputs: pick one (run doctor --textfile \
             from cron, or install --watch --metrics-addr, beside NPD)"
                .into(),
        );
    }
    Ok(Parsed::Run(Run {
        opts: scan.finish(),
        json,
        textfile,
        npd: npd_on.then_some(npd_s),
    }))
}

/// `--pod NAMESPACE/NAME`: both parts non-empty, as Kubernetes names are.
fn pod_selector(v: &str) -> Result<(String, String), String> {
    match v.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_string(), name.to_string()))
        }
        _ => Err(format!(
            "--pod takes NAMESPACE/NAME, e.g. default/web-0, got {v:?}"
        )),
    }
}

/// One finding per line: names taken from the node (a netns file name may hold a newline)
/// are escaped so that they cannot start a line of their own.
pub(super) fn line(who: &str, f: &Finding) -> String {
    let text = format!(
        "[{} {}] {}: {}, on {}. Expected: {}. Found: {}. What to do: {}",
        f.severity.label(),
        f.check,
        who,
        f.problem,
        f.object,
        f.expected,
        f.found,
        f.remedy
    );
    format!("{}\n", escape_control(&text))
}

/// The table's pod column: `namespace/name` (and the namespace's name) when the cache names
/// the pod, else the namespace's name as before.
fn table_name(p: &crate::engine::doctor::PodReport) -> String {
    match (p.k8s_name(), &p.pod) {
        (Some(k), Some(ns)) => format!("{k} ({ns})"),
        (Some(k), None) => k,
        (None, ns) => ns.clone().unwrap_or_else(|| "?".into()),
    }
}

/// The text report: findings first (node, then pods), then the summary table.
pub fn render(r: &Report, prefix: &str) -> String {
    let mut out = String::new();
    if let Some(nf) = &r.pod_not_found {
        let listed = if nf.found.is_empty() {
            String::new()
        } else {
            let more = nf.pods_found.saturating_sub(nf.found.len());
            format!(
                ": {}{}",
                nf.found.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            )
        };
        out.push_str(&escape_control(&format!(
            "No pod {} on this node's {prefix}* links ({} pod(s) found{listed}); its pod \
             checks did not run. Only pods that libcni's cache (--cni-cache-dir) names can be \
             selected.\n",
            nf.pod, nf.pods_found
        )));
        out.push('\n');
    }
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
                escape_control(&table_name(p))
            ));
        }
    }
    out
}

#[cfg(test)]
mod scan_args_tests {
    use super::*;

    fn parsed(args: Vec<OsString>) -> Options {
        match parse(args) {
            Ok(Parsed::Run(r)) => r.opts,
            other => panic!("{:?}", other.err()),
        }
    }

    #[test]
    fn scan_args_give_the_options_back() {
        let defaults = Options::default();
        assert_eq!(parsed(scan_args(&defaults)), defaults);
        let args: Vec<OsString> = [
            "--prefix",
            "cali,tap",
            "--netns-dir",
            "/a",
            "--netns-dir",
            "/b",
            "--no-proc-scan",
            "--cni-conf-dir",
            "/c",
            "--cni-bin-dir",
            "/d",
            "--search-bin-dir",
            "/e",
            "--containerd-config",
            "none",
            "--crio-config",
            "/f",
            "--iptables",
            "/g",
            "--host-root",
            "/hostfs",
            "--timeout-ms",
            "1234",
            "--cni-cache-dir",
            "/h",
            "--orphan-grace-seconds",
            "7",
            "--no-probe",
        ]
        .map(OsString::from)
        .to_vec();
        let o = parsed(args);
        assert_eq!(parsed(scan_args(&o)), o);
        assert_eq!(o.crio_config.as_deref(), Some(Path::new("/f")));
        assert_eq!(o.containerd_config, None);
    }
}

#[cfg(test)]
mod textfile_tests {
    use super::*;

    #[test]
    fn scan_errors_carry_on_across_runs() {
        // Removed on drop, also when an assertion fails.
        let t = crate::inspect::cni_files::tests::TempDir::new("textfile-carry");
        let d = t.0.clone();
        let path = d.join("calico.prom");
        let errors = || {
            let t = std::fs::read_to_string(&path).unwrap();
            t.lines()
                .find_map(|l| l.strip_prefix("calico_preflight_scan_errors_total "))
                .map(String::from)
        };
        assert!(write_textfile(&path, None));
        assert_eq!(errors().as_deref(), Some("1"));
        assert!(write_textfile(&path, None));
        assert_eq!(
            errors().as_deref(),
            Some("2"),
            "a second failure in a row is counted"
        );
        let ok = metrics::ScanResult {
            summary: crate::engine::doctor::Summary::default(),
            finished: std::time::SystemTime::now(),
            duration: Duration::from_millis(1),
        };
        assert!(write_textfile(&path, Some(&ok)));
        assert_eq!(
            errors().as_deref(),
            Some("2"),
            "monotonic: a good run keeps it"
        );
        // A planted symlink is neither followed for the read nor written through.
        let victim = d.join("victim");
        std::fs::write(&victim, "calico_preflight_scan_errors_total 99\n").unwrap();
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        assert!(write_textfile(&path, None));
        assert_eq!(errors().as_deref(), Some("1"));
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "calico_preflight_scan_errors_total 99\n"
        );
    }
}
