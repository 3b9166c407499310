//! Timing harness for bench/run.sh: starts each case's binary N times, round-robin across
//! cases, and reports whole-process wall time (spawn to reap) and the child's peak RSS.
//!
//! Built by run.sh with `rustc -O` (std only, no crates); not a workspace member.
//!
//! Usage: runner [-n RUNS] [-w WARMUP] [--floor NAME] [--ref NAME] [--raw FILE] [--tsv FILE]
//!               SPEC...
//! A SPEC file holds one case, `key=value` per line:
//!   name=calico-v4          case label
//!   netns=/run/netns/x      host namespace the process starts in (setns'd by the runner
//!                           before each spawn, so no nsenter is in the timed path)
//!   exe=/path/to/binary
//!   stdin=/path/to/file     fed through a pipe, as runtimes do
//!   stderr=/path/to/file    where the child's stderr goes (appended; checked afterwards)
//!   env=KEY=VALUE           repeatable; the environment is exactly these
//!   expect=STRING           optional: stdout of the first run must contain this
//!
//! Rounds: every case runs once per round, in a new random order each round.
//! Each run: setns(host) [untimed] -> t0 -> posix_spawn (std's Command, no pre_exec so it
//! takes the vfork/posix_spawn path, like Go's exec in containerd) -> write stdin, close ->
//! read stdout to EOF -> wait4 (rusage) -> t1. Any non-zero exit aborts the benchmark.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::Instant;

extern "C" {
    fn setns(fd: i32, nstype: i32) -> i32;
    fn wait4(pid: i32, status: *mut i32, options: i32, rusage: *mut Rusage) -> i32;
}
const CLONE_NEWNET: i32 = 0x4000_0000;

/// struct rusage on 64-bit Linux: two timevals then 14 longs.
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct Rusage {
    utime_s: i64,
    utime_us: i64,
    stime_s: i64,
    stime_us: i64,
    maxrss_kib: i64,
    rest: [i64; 13],
}

struct Case {
    name: String,
    netns: File,
    exe: String,
    stdin: Vec<u8>,
    stderr: File,
    stderr_path: String,
    env: Vec<(String, String)>,
    expect: Option<String>,
    wall_us: Vec<f64>,
    cpu_us: Vec<f64>,
    rss_kib: Vec<i64>,
}

fn die(msg: &str) -> ! {
    eprintln!("runner: {msg}");
    std::process::exit(2)
}

fn load(path: &str) -> Case {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| die(&format!("{path}: {e}")));
    let (mut name, mut netns, mut exe, mut stdin, mut stderr, mut expect) =
        (None, None, None, None, None, None);
    let mut env = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| die(&format!("{path}: bad line {line:?}")));
        match k {
            "name" => name = Some(v.to_string()),
            "netns" => netns = Some(v.to_string()),
            "exe" => exe = Some(v.to_string()),
            "stdin" => stdin = Some(v.to_string()),
            "stderr" => stderr = Some(v.to_string()),
            "expect" => expect = Some(v.to_string()),
            "env" => {
                let (ek, ev) = v
                    .split_once('=')
                    .unwrap_or_else(|| die(&format!("{path}: bad env {v:?}")));
                env.push((ek.to_string(), ev.to_string()));
            }
            _ => die(&format!("{path}: unknown key {k}")),
        }
    }
    let need = |o: Option<String>, k: &str| o.unwrap_or_else(|| die(&format!("{path}: no {k}=")));
    let netns = need(netns, "netns");
    let stdin = need(stdin, "stdin");
    let stderr_path = stderr.unwrap_or_else(|| "/dev/null".into());
    Case {
        name: need(name, "name"),
        netns: File::open(&netns).unwrap_or_else(|e| die(&format!("{netns}: {e}"))),
        exe: need(exe, "exe"),
        stdin: std::fs::read(&stdin).unwrap_or_else(|e| die(&format!("{stdin}: {e}"))),
        stderr: OpenOptions::new()
            .create(true)
            .append(true)
            .open(&stderr_path)
            .unwrap_or_else(|e| die(&format!("{stderr_path}: {e}"))),
        stderr_path,
        env,
        expect,
        wall_us: Vec::new(),
        cpu_us: Vec::new(),
        rss_kib: Vec::new(),
    }
}

/// One run; returns (wall µs, user+sys µs, maxrss KiB, stdout).
fn run_once(c: &Case) -> (f64, f64, i64, Vec<u8>) {
    // SAFETY: setns on an fd we hold open; the runner is single-threaded.
    if unsafe { setns(c.netns.as_raw_fd(), CLONE_NEWNET) } != 0 {
        die(&format!("setns for {}: {}", c.name, std::io::Error::last_os_error()));
    }
    let stderr = c.stderr.try_clone().unwrap_or_else(|e| die(&format!("dup: {e}")));
    let mut cmd = Command::new(&c.exe);
    cmd.env_clear()
        .envs(c.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr));
    let t0 = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| die(&format!("spawn {}: {e}", c.exe)));
    {
        let mut si = child.stdin.take().unwrap();
        // A child may exit without reading (the no-op floor does): EPIPE is fine.
        let _ = si.write_all(&c.stdin);
    }
    let mut out = Vec::new();
    if let Some(mut so) = child.stdout.take() {
        let _ = so.read_to_end(&mut out);
    }
    let mut status = 0i32;
    let mut ru = Rusage::default();
    loop {
        // SAFETY: wait4 on our own child with valid out-pointers.
        let r = unsafe { wait4(child.id() as i32, &mut status, 0, &mut ru) };
        if r >= 0 {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            die(&format!("wait4: {e}"));
        }
    }
    let wall = t0.elapsed().as_secs_f64() * 1e6;
    let exited_ok = status & 0x7f == 0 && (status >> 8) & 0xff == 0;
    if !exited_ok {
        die(&format!(
            "case {} failed (wait status {status:#x}); stdout: {}; stderr in {}",
            c.name,
            String::from_utf8_lossy(&out),
            c.stderr_path
        ));
    }
    let cpu = (ru.utime_s + ru.stime_s) as f64 * 1e6 + (ru.utime_us + ru.stime_us) as f64;
    (wall, cpu, ru.maxrss_kib, out)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    // Nearest-rank on a sorted sample; p in [0,1].
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p * (sorted.len() - 1) as f64).round() as usize).min(sorted.len() - 1);
    sorted[i]
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Distribution-free ~95% confidence interval of the median (order statistics,
/// ranks n/2 -+ 0.98*sqrt(n)).
fn median_ci(v: &[f64]) -> (f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = s.len() as f64;
    let half = 0.98 * n.sqrt();
    let lo = ((n / 2.0 - half).floor().max(0.0)) as usize;
    let hi = ((n / 2.0 + half).ceil() as usize).min(s.len() - 1);
    (s[lo], s[hi])
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut n, mut warm) = (200usize, 10usize);
    let (mut floor, mut reference) = (None::<String>, None::<String>);
    let (mut raw, mut tsv) = (None::<String>, None::<String>);
    let mut specs = Vec::new();
    while let Some(a) = args.next() {
        let mut val = |what: &str| args.next().unwrap_or_else(|| die(&format!("{what} needs a value")));
        match a.as_str() {
            "-n" => n = val("-n").parse().unwrap_or_else(|_| die("-n: not a number")),
            "-w" => warm = val("-w").parse().unwrap_or_else(|_| die("-w: not a number")),
            "--floor" => floor = Some(val("--floor")),
            "--ref" => reference = Some(val("--ref")),
            "--raw" => raw = Some(val("--raw")),
            "--tsv" => tsv = Some(val("--tsv")),
            _ => specs.push(a),
        }
    }
    if specs.is_empty() || n == 0 {
        die("usage: runner [-n N] [-w W] [--floor NAME] [--ref NAME] [--raw F] [--tsv F] SPEC...");
    }
    let mut cases: Vec<Case> = specs.iter().map(|s| load(s)).collect();

    // Warm-up (page cache, dentries, the node-check cache): discarded. The first run of each
    // case is also where its stdout is checked.
    for (i, c) in cases.iter().enumerate() {
        let (_, _, _, out) = run_once(c);
        if let Some(e) = &c.expect {
            if !String::from_utf8_lossy(&out).contains(e.as_str()) {
                die(&format!(
                    "case {}: stdout does not contain {e:?}: {}",
                    c.name,
                    String::from_utf8_lossy(&out)
                ));
            }
        }
        let _ = i;
    }
    for _ in 0..warm {
        for c in &cases {
            run_once(c);
        }
    }
    // Measured rounds: every case once per round, in a fresh random order each round (a fixed
    // cyclic order would make each case always follow the same one, and a Go plugin's exit
    // was measured to slow whichever case always ran right after it by ~15%).
    let k = cases.len();
    let mut order: Vec<usize> = (0..k).collect();
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..n {
        for i in (1..k).rev() {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            order.swap(i, (rng % (i as u64 + 1)) as usize);
        }
        for &idx in &order {
            let (w, cpu, rss, _) = run_once(&cases[idx]);
            let c = &mut cases[idx];
            c.wall_us.push(w);
            c.cpu_us.push(cpu);
            c.rss_kib.push(rss);
        }
    }

    if let Some(path) = raw {
        let mut f = File::create(&path).unwrap_or_else(|e| die(&format!("{path}: {e}")));
        let _ = writeln!(f, "case\trun\twall_us\tcpu_us\tmaxrss_kib");
        for c in &cases {
            for i in 0..c.wall_us.len() {
                let _ = writeln!(
                    f,
                    "{}\t{i}\t{:.1}\t{:.0}\t{}",
                    c.name, c.wall_us[i], c.cpu_us[i], c.rss_kib[i]
                );
            }
        }
    }

    let med_of = |name: &Option<String>| {
        name.as_ref()
            .and_then(|nm| cases.iter().find(|c| &c.name == nm))
            .map(|c| median(&c.wall_us))
    };
    let floor_med = med_of(&floor);
    let ref_excess = med_of(&reference).and_then(|r| floor_med.map(|f| r - f));

    let mut tsv_out = String::from(
        "case\tmedian_us\tci_lo_us\tci_hi_us\tp10_us\tp90_us\tmin_us\tmax_us\texcess_us\tratio_to_ref\tcpu_med_us\tmaxrss_med_kib\tmaxrss_max_kib\n",
    );
    println!(
        "wall time per ADD, µs, {n} runs per case, interleaved in random order ({warm} warm-up rounds discarded);"
    );
    println!(
        "excess = median - {} median; ÷ref = excess / {} excess; cpu = child user+sys (wait4)",
        floor.as_deref().unwrap_or("-"),
        reference.as_deref().unwrap_or("-")
    );
    println!(
        "{:<14} {:>7} {:>15} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>8}",
        "case", "median", "(95% CI)", "p10", "p90", "min", "max", "excess", "÷ref", "cpu med"
    );
    for c in &cases {
        let mut s = c.wall_us.clone();
        s.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let med = median(&s);
        let (lo, hi) = median_ci(&s);
        let excess = floor_med.map(|f| med - f);
        let ratio = match (excess, ref_excess) {
            (Some(e), Some(r)) if r > 0.0 => Some(e / r),
            _ => None,
        };
        let cpu = median(&c.cpu_us);
        let mut rss = c.rss_kib.clone();
        rss.sort();
        let rss_med = rss[rss.len() / 2];
        let rss_max = *rss.last().unwrap();
        let fmt_opt = |o: Option<f64>, prec: usize| match o {
            Some(v) => format!("{v:.prec$}"),
            None => "-".into(),
        };
        println!(
            "{:<14} {:>7.0} {:>15} {:>7.0} {:>7.0} {:>7.0} {:>7.0} {:>7} {:>7} {:>8.0}",
            c.name,
            med,
            format!("[{lo:.0}, {hi:.0}]"),
            pct(&s, 0.10),
            pct(&s, 0.90),
            s[0],
            s[s.len() - 1],
            fmt_opt(excess, 0),
            fmt_opt(ratio, 3),
            cpu,
        );
        tsv_out.push_str(&format!(
            "{}\t{med:.1}\t{lo:.1}\t{hi:.1}\t{:.1}\t{:.1}\t{:.1}\t{:.1}\t{}\t{}\t{cpu:.0}\t{rss_med}\t{rss_max}\n",
            c.name,
            pct(&s, 0.10),
            pct(&s, 0.90),
            s[0],
            s[s.len() - 1],
            fmt_opt(excess, 1),
            fmt_opt(ratio, 4),
        ));
    }
    if let Some(path) = tsv {
        std::fs::write(&path, tsv_out).unwrap_or_else(|e| die(&format!("{path}: {e}")));
    }
    for c in &cases {
        if let Ok(m) = std::fs::metadata(&c.stderr_path) {
            if m.is_file() && m.len() > 0 {
                eprintln!(
                    "runner: note: case {} wrote {} bytes to stderr ({})",
                    c.name,
                    m.len(),
                    c.stderr_path
                );
            }
        }
    }
}
