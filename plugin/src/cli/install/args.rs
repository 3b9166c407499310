//! Flags of `install` and `uninstall`, in the grammar every subcommand shares (`super::super::grammar`).

use crate::cli::doctor::ScanFlags;
use crate::cli::grammar::Args;
pub use crate::cli::grammar::Parsed;
use crate::config::Config;
use crate::engine::install::conflist::{parse_entry, Position};
use crate::engine::install::monitor::{MonitorOpts, DEFAULT_SCAN_INTERVAL};
use crate::engine::install::{Common, InstallOpts, UninstallOpts, DEFAULT_INTERVAL, NO_CONFIG};
use serde_json::{Map, Value};
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub const INSTALL_HELP: &str = "\
calico-preflight install: put this binary in the CNI bin dir(s) and our entry in Calico's conflist

Usage: calico-preflight install [options]

  --cni-bin-dir DIR         copy the binary here (repeatable); default: the runtime's bin dirs
                            (containerd / CRI-O config), else /opt/cni/bin
  --cni-conf-dir DIR        the CNI config dir holding Calico's conflist (also --conf-dir);
                            default: the runtime's, else /etc/cni/net.d
  --position WHERE          both (default): an entry first in the chain runs the node checks
                            before Calico does (so a node fault is explained instead of
                            Calico's own error), and one after calico runs the pod checks on
                            Calico's result (with \"nodeChecks\": false unless the entry sets
                            it); after-calico: only the latter, with the node checks too;
                            first: only the former
  --entry JSON              our entry, e.g. '{\"mode\": \"warn\", \"logFile\": \"/var/log/calico-preflight.log\"}'
                            (\"type\" is set for you); default: keep the entry already installed,
                            else {\"type\": \"calico-preflight\"}
  --dry-run                 print the resulting conflist on stdout (notes on stderr), change nothing
  --watch                   after installing, keep our entry in place when Calico's installer
                            rewrites its conflist; runs until SIGTERM or SIGINT
  --interval SECONDS        how often --watch looks at the conf dir (default 2)
  --metrics-addr HOST:PORT  with --watch: also check the node like `doctor` every
                            --scan-interval and serve the result as Prometheus metrics on
                            http://HOST:PORT/metrics (HOST: an IP address, localhost, or
                            empty for every IPv4 address), with /healthz (200 while serving, for a
                            liveness probe: a broken node does not fail it) and /readyz (200
                            once the first scan finished); off unless given
  --scan-interval SECONDS   time between the starts of two scans (default 60); scans never
                            overlap and never delay the conflist watch. Given without
                            --metrics-addr (or with a scan option), the watch scans and only
                            logs each change of the node's state
  doctor's scan options     --prefix, --netns-dir, --no-proc-scan, --search-bin-dir,
                            --iptables, --host-root, --timeout-ms and doctor's other scan flags,
                            with doctor's spellings and defaults, for the scans of
                            --metrics-addr; the scans also use --cni-conf-dir, --cni-bin-dir,
                            --containerd-config and --crio-config. See `doctor --help`
  --containerd-config PATH  containerd's config (default /etc/containerd/config.toml);
                            none: do not read it
  --crio-config PATH        CRI-O's config file or drop-in dir (default /etc/crio/crio.conf and
                            /etc/crio/crio.conf.d/*.conf); none: do not read it
  -h, --help                this text

The conf dir's files (*.conf, *.conflist, *.json) are read in lexical order like libcni does;
the first one holding a plugin of type \"calico\" is edited. A single-plugin .conf cannot chain:
it is rewritten as <name>.conflist. Files are replaced atomically (temp file + rename); a run
that has nothing to change writes nothing. Explicit flags win over the runtime's config.
Every option takes its value as `--flag VALUE` or `--flag=VALUE`.

Exit status: 0 installed (or already in place; --watch: stopped by SIGTERM/SIGINT),
1 refused or failed (the message says why and what to do), 64 usage error.
";

pub const UNINSTALL_HELP: &str = "\
calico-preflight uninstall: remove our entries from the CNI conflists (and the binaries)

Usage: calico-preflight uninstall [options]

  --cni-conf-dir DIR        the CNI config dir (also --conf-dir; default: the runtime's, else
                            /etc/cni/net.d)
  --remove-binary           also delete calico-preflight from the CNI bin dir(s)
  --cni-bin-dir DIR         bin dir for --remove-binary (repeatable; default: the runtime's,
                            else /opt/cni/bin)
  --dry-run                 print what would change, change nothing
  --containerd-config PATH  containerd's config (default /etc/containerd/config.toml);
                            none: do not read it
  --crio-config PATH        CRI-O's config file or drop-in dir (default /etc/crio/crio.conf and
                            /etc/crio/crio.conf.d/*.conf); none: do not read it
  -h, --help                this text

Every entry of type \"calico-preflight\" is removed from every conflist in the conf dir; the
rest of each file is kept as it is (a .conf that install turned into a .conflist stays one).
Every option takes its value as `--flag VALUE` or `--flag=VALUE`.

Exit status: 0 removed (or nothing to remove), 1 refused or failed, 64 usage error.
";

const MAX_INTERVAL_SECS: f64 = 86_400.0;

/// Handles a flag both subcommands (and doctor, for the dirs) know; `Ok(false)` when it is
/// not one of them. `--conf-dir` is doctor's spelling of `--cni-conf-dir`: both work on both.
fn common_flag(a: &mut Args, c: &mut Common, flag: &str) -> Result<bool, String> {
    match flag {
        "--cni-bin-dir" => c.bin_dirs.push(a.path()?),
        "--cni-conf-dir" | "--conf-dir" => c.conf_dir = Some(a.path()?),
        "--containerd-config" => c.containerd_config = Some(a.path()?),
        "--crio-config" => c.crio_config = Some(a.path()?),
        "--dry-run" => c.dry_run = true,
        _ => return Ok(false),
    }
    Ok(true)
}

pub fn parse_install(args: Vec<OsString>) -> Result<Parsed<InstallOpts>, String> {
    let mut o = InstallOpts {
        common: Common::default(),
        position: Position::Both,
        entry: None,
        watch: false,
        interval: DEFAULT_INTERVAL,
        watch_iterations: None,
        monitor: None,
    };
    let mut scan = ScanFlags::default();
    // The first scan flag given, for the message when there is no scan to take it.
    let mut scan_flag: Option<String> = None;
    let (mut addr, mut scan_interval) = (None, None);
    let mut a = Args::new(args);
    while let Some(flag) = a.next_flag()? {
        if common_flag(&mut a, &mut o.common, &flag)? {
            continue;
        }
        if scan.flag(&mut a, &flag)? {
            scan_flag.get_or_insert(flag);
            continue;
        }
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--position" => {
                let v = a.string()?;
                o.position = Position::parse(&v).ok_or_else(|| {
                    format!("--position must be after-calico, first or both, found {v:?}")
                })?;
            }
            "--entry" => o.entry = Some(entry(&a.string()?)?),
            "--watch" => o.watch = true,
            "--interval" => o.interval = interval("--interval", &a.string()?)?,
            "--scan-interval" => scan_interval = Some(interval("--scan-interval", &a.string()?)?),
            "--metrics-addr" => addr = Some(metrics_addr(&a.string()?)?),
            "--watch-iterations" => {
                let v = a.string()?;
                o.watch_iterations = Some(v.parse().map_err(|_| {
                    format!("--watch-iterations must be a whole number, found {v:?}")
                })?);
            }
            _ => return Err(a.unknown()),
        }
    }
    if o.watch && o.common.dry_run {
        return Err("--watch and --dry-run do not go together: --dry-run changes nothing".into());
    }
    // The watch scans the node when asked to: --metrics-addr (its results are the metrics)
    // or --scan-interval (or a scan flag), which log each change of the node's state. Neither:
    // the watch does what it always did.
    let scan_asked = scan_interval
        .map(|_| "--scan-interval".to_string())
        .or(scan_flag);
    match (addr.is_some() || scan_asked.is_some(), o.watch) {
        (true, false) => {
            let f = if addr.is_some() {
                "--metrics-addr".to_string()
            } else {
                scan_asked.unwrap_or_default()
            };
            return Err(format!(
                "{f} needs --watch: the node scans run in the watch, which keeps running"
            ));
        }
        (false, _) => {}
        (true, true) => {
            o.monitor = Some(MonitorOpts {
                addr,
                scan_interval: scan_interval.unwrap_or(DEFAULT_SCAN_INTERVAL),
                scan: scan_options(scan, &o.common),
            })
        }
    }
    Ok(Parsed::Run(o))
}

/// The scan looks at the dirs install edits: install's own dir flags feed it, as doctor's
/// same-named flags would.
fn scan_options(scan: ScanFlags, c: &Common) -> crate::engine::doctor::Options {
    let mut s = scan.finish();
    if let Some(d) = &c.conf_dir {
        s.conf_dir = d.clone();
    }
    if !c.bin_dirs.is_empty() {
        s.cni_path = c.bin_dirs.clone();
    }
    // install: `none` turns the lookup off, no flag reads the default; doctor: `None` is off.
    let runtime = |flag: &Option<PathBuf>, default: Option<PathBuf>| match flag {
        None => default,
        Some(p) if p.as_os_str() == NO_CONFIG => None,
        Some(p) => Some(p.clone()),
    };
    s.containerd_config = runtime(&c.containerd_config, s.containerd_config.clone());
    s.crio_config = runtime(&c.crio_config, s.crio_config.clone());
    s
}

/// `--metrics-addr IP:PORT`: an address literal ([::]:9276 for IPv6), so that starting needs
/// no name lookup; port 0 lets the kernel pick one (printed at start).
/// `IP:PORT`, `[IPv6]:PORT`, `localhost:PORT`, or `:PORT` (every IPv4 address, as Go
/// exporters read it). No other names: resolving one would need DNS (unbounded, and NSS in a
/// static binary) at every start of the DaemonSet's container.
fn metrics_addr(v: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = v.parse() {
        return Ok(a);
    }
    let host_port = v
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)));
    match host_port {
        Some(("", port)) => Ok(SocketAddr::from(([0, 0, 0, 0], port))),
        Some((h, port)) if h.eq_ignore_ascii_case("localhost") => {
            Ok(SocketAddr::from(([127, 0, 0, 1], port)))
        }
        _ => Err(format!(
            "--metrics-addr must be HOST:PORT with an IP address, localhost or nothing as HOST, \
             e.g. 0.0.0.0:9276, [::]:9276, localhost:9276 or :9276, found {v:?}"
        )),
    }
}

pub fn parse_uninstall(args: Vec<OsString>) -> Result<Parsed<UninstallOpts>, String> {
    let mut o = UninstallOpts {
        common: Common::default(),
        remove_binary: false,
    };
    let mut a = Args::new(args);
    while let Some(flag) = a.next_flag()? {
        if common_flag(&mut a, &mut o.common, &flag)? {
            continue;
        }
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--remove-binary" => o.remove_binary = true,
            _ => return Err(a.unknown()),
        }
    }
    Ok(Parsed::Run(o))
}

/// `--entry`, checked with the plugin's own config reader: a typo here would otherwise fail
/// every pod start on the node.
fn entry(text: &str) -> Result<Map<String, Value>, String> {
    let e = parse_entry(text)?;
    Config::from_json(&e).map_err(|err| {
        let msg = err
            .msg
            .strip_prefix("calico-preflight: ")
            .unwrap_or(&err.msg);
        format!("--entry: {msg}")
    })?;
    Ok(e)
}

fn interval(flag: &str, v: &str) -> Result<Duration, String> {
    match v.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= MAX_INTERVAL_SECS => {
            Ok(Duration::from_secs_f64(s))
        }
        _ => Err(format!(
            "{flag} must be a number of seconds above 0 and at most {MAX_INTERVAL_SECS}, found {v:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_addr_takes_ips_localhost_and_an_empty_host() {
        let a = |v: &str| metrics_addr(v).map(|a| a.to_string());
        assert_eq!(a("0.0.0.0:9276").as_deref(), Ok("0.0.0.0:9276"));
        assert_eq!(a("[::]:9276").as_deref(), Ok("[::]:9276"));
        assert_eq!(a("localhost:9276").as_deref(), Ok("127.0.0.1:9276"));
        assert_eq!(a(":9276").as_deref(), Ok("0.0.0.0:9276"));
        for bad in [
            "example.com:9276",
            "9276",
            "localhost",
            "0.0.0.0:70000",
            ":",
            "",
        ] {
            assert!(a(bad).is_err(), "{bad}");
        }
    }

    use std::path::PathBuf;

    fn s(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn install(args: &[&str]) -> Result<InstallOpts, String> {
        match parse_install(s(args))? {
            Parsed::Run(o) => Ok(o),
            Parsed::Help => Err("help".into()),
        }
    }

    #[test]
    fn install_flags() {
        let o = install(&[
            "--cni-bin-dir",
            "/a",
            "--cni-bin-dir=/b",
            "--cni-conf-dir",
            "/c",
            "--position=both",
            "--entry",
            r#"{"mode":"warn"}"#,
            "--watch",
            "--interval",
            "0.5",
        ])
        .unwrap();
        assert_eq!(
            o.common.bin_dirs,
            [PathBuf::from("/a"), PathBuf::from("/b")]
        );
        assert_eq!(o.common.conf_dir, Some(PathBuf::from("/c")));
        assert_eq!(o.position, Position::Both);
        assert_eq!(o.entry.unwrap()["mode"], "warn");
        assert!(o.watch);
        assert_eq!(o.interval, Duration::from_millis(500));
        let d = install(&[]).unwrap();
        assert_eq!(d.position, Position::Both);
        assert_eq!(d.interval, DEFAULT_INTERVAL);
        assert!(d.common.bin_dirs.is_empty());
    }

    #[test]
    fn install_refusals_say_what_was_expected() {
        for (args, want) in [
            (&["--position", "last"][..], "after-calico, first or both"),
            (
                &["--entry", r#"{"mode":"loud"}"#],
                "--entry: invalid network",
            ),
            (&["--entry", "[]"], "JSON object"),
            (&["--interval", "0"], "above 0"),
            (&["--interval", "NaN"], "above 0"),
            (&["--cni-bin-dir"], "needs a value"),
            (&["--cni-bin-dir="], "empty string"),
            (&["--dry-run=yes"], "takes no value"),
            (&["--bogus"], "unknown option"),
            (&["install"], "unexpected argument"),
            (&["--watch", "--dry-run"], "do not go together"),
        ] {
            let e = install(args).unwrap_err();
            assert!(e.contains(want), "{args:?}: {e}");
        }
        assert_eq!(parse_install(s(&["-h"])), Ok(Parsed::Help));
    }

    #[test]
    fn metrics_flags_take_doctors_scan_options_and_installs_dirs() {
        let o = install(&[
            "--watch",
            "--metrics-addr",
            "127.0.0.1:0",
            "--scan-interval=1.5",
            "--cni-conf-dir",
            "/c",
            "--cni-bin-dir",
            "/b",
            "--containerd-config",
            "none",
            "--host-root",
            "/hostfs",
            "--netns-dir",
            "/n",
            "--prefix",
            "cali,tap",
            "--no-proc-scan",
            "--timeout-ms=500",
        ])
        .unwrap();
        let m = o.monitor.expect("monitor");
        assert_eq!(m.addr, Some("127.0.0.1:0".parse().unwrap()));
        assert_eq!(m.scan_interval, Duration::from_millis(1500));
        assert_eq!(m.scan.conf_dir, PathBuf::from("/c"));
        assert_eq!(m.scan.cni_path, [PathBuf::from("/b")]);
        assert_eq!(m.scan.containerd_config, None);
        let d = crate::engine::doctor::Options::default();
        assert_eq!(m.scan.crio_config, d.crio_config);
        assert_eq!(m.scan.host_root, Some(PathBuf::from("/hostfs")));
        assert_eq!(m.scan.netns_dirs, [PathBuf::from("/n")]);
        assert_eq!(m.scan.prefixes, ["cali", "tap"]);
        assert!(!m.scan.scan_procs);
        assert_eq!(m.scan.timeout, Duration::from_millis(500));
        // The defaults: doctor's.
        let m = install(&["--watch", "--metrics-addr", "[::]:9276"])
            .unwrap()
            .monitor
            .expect("monitor");
        assert_eq!(m.scan_interval, DEFAULT_SCAN_INTERVAL);
        assert_eq!(m.scan, d);
        assert!(install(&["--watch"]).unwrap().monitor.is_none());
        // Scans without an endpoint: asked for by --scan-interval or a scan flag, logged.
        let m = install(&["--watch", "--scan-interval", "5"])
            .unwrap()
            .monitor
            .expect("monitor");
        assert_eq!((m.addr, m.scan_interval), (None, Duration::from_secs(5)));
        let m = install(&["--watch", "--host-root", "/h"])
            .unwrap()
            .monitor
            .expect("monitor");
        assert_eq!(m.addr, None);
        assert_eq!(m.scan_interval, DEFAULT_SCAN_INTERVAL);
        for (args, want) in [
            (&["--metrics-addr", "127.0.0.1:9276"][..], "needs --watch"),
            (&["--scan-interval", "5"], "--scan-interval needs --watch"),
            (&["--host-root", "/h"], "--host-root needs --watch"),
            (
                &["--watch", "--metrics-addr", "example.com:9276"],
                "HOST:PORT",
            ),
            (
                &["--watch", "--metrics-addr", ":1", "--scan-interval", "0"],
                "--scan-interval must be",
            ),
            (
                &[
                    "--watch",
                    "--metrics-addr",
                    "0.0.0.0:1",
                    "--scan-interval",
                    "-1",
                ],
                "--scan-interval must be",
            ),
        ] {
            let e = install(args).unwrap_err();
            assert!(e.contains(want), "{args:?}: {e}");
        }
    }

    #[test]
    fn uninstall_flags() {
        let Ok(Parsed::Run(o)) = parse_uninstall(s(&["--remove-binary", "--cni-conf-dir", "/x"]))
        else {
            panic!("parse failed");
        };
        assert!(o.remove_binary);
        assert_eq!(o.common.conf_dir, Some(PathBuf::from("/x")));
        assert!(parse_uninstall(s(&["--position", "first"])).is_err());
        assert_eq!(parse_uninstall(s(&["--help"])), Ok(Parsed::Help));
    }
}
