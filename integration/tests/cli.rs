//! The one command-line grammar: `--flag value` and `--flag=value` on every subcommand, the
//! CNI dir flags under both spellings on every subcommand that reads them, exit status 64 for
//! every usage error, and the exit statuses written in each `--help`. Against temp dirs only.

use calico_preflight_integration::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const EX_USAGE: i32 = 64;

/// A node's CNI dirs in a temp dir (Calico's conflist, stub binaries), removed on drop.
struct Dirs(PathBuf);

impl Dirs {
    fn new(tag: &str) -> Dirs {
        let root = std::env::temp_dir().join(format!("cp-cli-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("bin")).unwrap();
        fs::create_dir_all(root.join("net.d")).unwrap();
        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/install/10-calico.conflist");
        fs::copy(fixture, root.join("net.d/10-calico.conflist")).unwrap();
        Dirs(root)
    }
    fn bin(&self) -> String {
        self.0.join("bin").display().to_string()
    }
    fn conf(&self) -> String {
        self.0.join("net.d").display().to_string()
    }
}

impl Drop for Dirs {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs the binary as a command-line tool (no CNI_COMMAND), bounded, in `ns` when given.
fn cli(ns: Option<&Netns>, args: &[&str]) -> PluginRun {
    let mut c = Command::new("timeout");
    c.arg("30");
    if let Some(ns) = ns {
        c.arg("nsenter").arg(format!("--net={}", ns.path()));
    }
    let out = c
        .arg(bin("calico-preflight"))
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .expect("run calico-preflight");
    PluginRun {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        status: out.status.code().unwrap_or(-1),
    }
}

/// doctor over an empty namespace (no veths to find) and the temp dirs, runtime configs off.
fn doctor(ns: &Netns, d: &Dirs, conf_flag: &str, extra: &[&str]) -> PluginRun {
    let empty = d.0.join("netns");
    fs::create_dir_all(&empty).unwrap();
    let (conf, bin, netns) = (d.conf(), d.bin(), empty.display().to_string());
    let mut args = vec![
        "doctor",
        "--json",
        "--no-proc-scan",
        "--netns-dir",
        &netns,
        conf_flag,
        &conf,
        "--cni-bin-dir",
        &bin,
        "--containerd-config",
        "none",
        "--crio-config=none",
    ];
    args.extend_from_slice(extra);
    cli(Some(ns), &args)
}

fn scanned(run: &PluginRun, ctx: &str) -> serde_json::Value {
    assert!(
        (0..=2).contains(&run.status),
        "{ctx}: doctor did not scan: {run:#?}"
    );
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{ctx}: not JSON ({e}): {run:#?}"))
}

#[test]
fn doctor_takes_flag_equals_value_and_both_conf_dir_spellings() {
    let ns = Netns::new("cli-dr");
    ns.sysctl("net.ipv4.ip_forward", "1");
    let d = Dirs::new("dr");
    for (conf_flag, extra) in [
        ("--conf-dir", &["--timeout-ms=500"][..]),
        ("--cni-conf-dir", &["--timeout-ms", "500"][..]),
        (
            "--cni-conf-dir",
            &["--prefix=cali,tap", "--iptables=/usr/sbin/iptables"][..],
        ),
    ] {
        let ctx = format!("{conf_flag} {extra:?}");
        let r = scanned(&doctor(&ns, &d, conf_flag, extra), &ctx);
        assert_eq!(r["formatVersion"], 1, "{ctx}");
        // Calico's conflist was read from that dir: its binaries are missing from the bin dir.
        assert!(r["node"].to_string().contains("cni-bin-dir"), "{ctx}: {r}");
    }
    // --conf-dir=DIR too, and the dir is really the one read: a missing one is reported.
    let missing = format!("--cni-conf-dir={}", d.0.join("nope").display());
    let run = doctor(&ns, &d, "--conf-dir", &["--timeout-ms=500", &missing]);
    let r = scanned(&run, "missing conf dir");
    assert!(
        !r["node"].to_string().contains("cni-bin-dir"),
        "the later flag wins: {r}"
    );
}

#[test]
fn install_and_uninstall_take_both_conf_dir_spellings_and_flag_equals_value() {
    let d = Dirs::new("in");
    let (conf, bin) = (d.conf(), d.bin());
    for conf_flag in ["--conf-dir", "--cni-conf-dir"] {
        let conf_eq = format!("{conf_flag}={conf}");
        let bin_eq = format!("--cni-bin-dir={bin}");
        for args in [
            vec![
                "install",
                "--dry-run",
                conf_flag,
                &conf,
                "--cni-bin-dir",
                &bin,
            ],
            vec![
                "install",
                "--dry-run",
                &conf_eq,
                &bin_eq,
                "--interval=0.5",
                "--position=both",
            ],
        ] {
            let mut args = args.clone();
            args.extend(["--containerd-config=none", "--crio-config", "none"]);
            let run = cli(None, &args);
            assert_eq!(run.status, 0, "{args:?}: {run:#?}");
            let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
                panic!("{args:?}: dry run prints the conflist ({e}): {run:#?}")
            });
            assert!(
                v["plugins"].to_string().contains("calico-preflight"),
                "{args:?}: {v}"
            );
        }
        let run = cli(
            None,
            &[
                "uninstall",
                "--dry-run",
                &conf_eq,
                "--cni-bin-dir",
                &bin,
                "--containerd-config=none",
                "--crio-config=none",
            ],
        );
        assert_eq!(run.status, 0, "uninstall {conf_flag}: {run:#?}");
    }
    // Nothing was changed by the dry runs.
    let now = fs::read(d.0.join("net.d/10-calico.conflist")).unwrap();
    let fixture =
        fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/install/10-calico.conflist"))
            .unwrap();
    assert_eq!(now, fixture);
    // The watch's interval in the `=` form reaches the watch (one round, then it stops).
    let run = cli(
        None,
        &[
            "install",
            "--watch",
            "--interval=0.5",
            "--watch-iterations=1",
            "--conf-dir",
            &conf,
            "--cni-bin-dir",
            &bin,
            "--containerd-config=none",
            "--crio-config=none",
        ],
    );
    assert_eq!(run.status, 0, "{run:#?}");
    assert!(run.stdout.contains("500ms"), "{run:#?}");
}

#[test]
fn usage_errors_exit_64_on_every_subcommand() {
    let d = Dirs::new("use");
    let conf = d.conf();
    for args in [
        &["doctor", "--bogus"][..],
        &["doctor", "--timeout-ms"],
        &["doctor", "--timeout-ms=0"],
        &["doctor", "--json=yes"],
        &["doctor", "stray"],
        &["doctor", "--containerd-config="],
        &["install", "--bogus"],
        &["install", "--interval=0"],
        &["install", "--dry-run=yes"],
        &["install", "--position", "last", "--conf-dir", &conf],
        &["install", "--watch", "--dry-run"],
        &["uninstall", "--bogus"],
        &["uninstall", "--position=first"],
        &["uninstall", "--cni-conf-dir"],
        &["frobnicate"],
        &["help", "frobnicate"],
    ] {
        let run = cli(None, args);
        assert_eq!(run.status, EX_USAGE, "{args:?}: {run:#?}");
        assert!(
            run.stdout.is_empty(),
            "{args:?}: usage errors go to stderr: {run:#?}"
        );
        assert!(
            run.stderr.contains("calico-preflight"),
            "{args:?}: {run:#?}"
        );
    }
    // The files were not touched by any of them.
    assert_eq!(fs::read_dir(d.0.join("net.d")).unwrap().count(), 1);
}

#[test]
fn every_help_lists_its_exit_statuses() {
    for (args, statuses) in [
        (
            &["doctor", "--help"][..],
            &[
                "0 all healthy",
                "1 warnings only",
                "2 errors",
                "3 the scan",
                "64 usage error",
            ][..],
        ),
        (
            &["install", "-h"],
            &["0 installed", "1 refused or failed", "64 usage error"],
        ),
        (
            &["uninstall", "--help"],
            &["0 removed", "1 refused or failed", "64 usage error"],
        ),
        (&["help", "doctor"], &["64 usage error"]),
        (&["--help"], &["64 for a usage error"]),
    ] {
        let run = cli(None, args);
        assert_eq!(run.status, 0, "{args:?}: {run:#?}");
        for s in statuses {
            assert!(
                run.stdout.contains(s),
                "{args:?}: {s:?} missing:\n{}",
                run.stdout
            );
        }
    }
    let v = cli(None, &["--version"]);
    assert_eq!(v.status, 0);
    assert!(v.stdout.starts_with("calico-preflight "), "{v:#?}");
}
