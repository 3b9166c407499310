//! `install` / `uninstall`: put this binary in the CNI bin dir(s) and our entry in Calico's
//! conflist, and take them out again.
//!
//! Order matters for pods starting meanwhile: install copies the binary before a conflist
//! names it, uninstall removes the entries before the binary, so a runtime never reads a
//! chain naming a plugin it cannot find. Every file is replaced by rename, so a runtime never
//! reads half a conflist nor execs half a binary.

pub mod conflist;
pub mod fsops;
pub mod monitor;
pub mod runtime_config;
pub mod watch;

use conflist::Position;
use conflist::{Entries, PlanError, OUR_TYPE};
use fsops::{BinOutcome, Swap};
use runtime_config::{Dirs, Source};
use serde_json::{Map, Value};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The value of `--containerd-config` / `--crio-config` that turns the lookup off.
pub const NO_CONFIG: &str = "none";

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);

/// Flags both subcommands share.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Common {
    pub bin_dirs: Vec<PathBuf>,
    pub conf_dir: Option<PathBuf>,
    pub containerd_config: Option<PathBuf>,
    pub crio_config: Option<PathBuf>,
    pub dry_run: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InstallOpts {
    pub common: Common,
    pub position: Position,
    pub entry: Option<Map<String, Value>>,
    pub watch: bool,
    pub interval: Duration,
    /// Hidden, for tests: stop `--watch` after this many checks after the install.
    pub watch_iterations: Option<u64>,
    /// `--metrics-addr`: the watch also scans the node and serves metrics.
    pub monitor: Option<monitor::MonitorOpts>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UninstallOpts {
    pub common: Common,
    pub remove_binary: bool,
}

/// What failed, on which path, and what the operator can do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    what: String,
    remedy: String,
}

impl Failure {
    fn new(what: impl Into<String>, remedy: impl Into<String>) -> Failure {
        Failure {
            what: what.into(),
            remedy: remedy.into(),
        }
    }
    pub fn print(&self, cmd: &str) {
        eprintln!("calico-preflight {cmd}: {self}");
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\n  to fix: {}", self.what, self.remedy)
    }
}

/// Progress lines go to stdout, except with `--dry-run`, where stdout carries only the
/// resulting conflist so that it can be piped somewhere.
#[derive(Debug, Clone, Copy)]
struct Out {
    dry_run: bool,
}

impl Out {
    fn note(&self, line: &str) {
        if self.dry_run {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    fn document(&self, text: &str) {
        let mut out = io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }
}

pub fn run_install(o: &InstallOpts) -> Result<(), Failure> {
    let out = Out {
        dry_run: o.common.dry_run,
    };
    let dirs = resolve_dirs(&o.common, true)?;
    print_dirs(out, &dirs, true);
    let exe = fs::read("/proc/self/exe").map_err(|e| {
        Failure::new(
            format!("cannot read this binary through /proc/self/exe: {e}"),
            "run install from a system with /proc mounted",
        )
    })?;
    if !o.watch {
        return install_once(o, &dirs, &exe, None, out, true).map(|_| ());
    }
    watch_loop(o, &dirs, &exe, out)
}

/// How often one pass plans again from a fresh read because the file changed between the
/// read and the replace, before it gives up until the next pass.
const MAX_REPLANS: usize = 100;

/// "nothing was changed", or what was changed before the refusal came.
fn unchanged(done: &[String]) -> String {
    if done.is_empty() {
        "nothing was changed".into()
    } else {
        format!(
            "no conflist was changed (done before that: {})",
            done.join("; ")
        )
    }
}

/// What one install pass did.
struct Installed {
    entries: Entries,
    /// A conflist was written (our entry put in, or back).
    wrote: bool,
}

/// One install pass. `verbose`: report what is already fine too (the first pass); later
/// `--watch` passes only report changes and look at the binary cheaply.
fn install_once(
    o: &InstallOpts,
    dirs: &Dirs,
    exe: &[u8],
    remembered: Option<&Entries>,
    out: Out,
    verbose: bool,
) -> Result<Installed, Failure> {
    let as_it_was = |entries| Installed {
        entries,
        wrote: false,
    };
    let dir = &dirs.conf.dir;
    let explicit = o.entry.clone().map(Entries::same);
    let plan_now = |done: &[String]| {
        let files = fsops::read_conf_dir(dir).map_err(|e| conf_dir_failure(dir, &e))?;
        conflist::plan_install(&files, o.position, explicit.as_ref(), remembered)
            .map_err(|e| plan_failure(dir, e, done))
    };
    // Plan first, so that a conf dir we must refuse leaves everything as it was.
    let plan = plan_now(&[])?;
    check_links(dir, &plan, &[])?;
    let mut done: Vec<String> = Vec::new();
    for b in &dirs.bin {
        let target = b.dir.join(OUR_TYPE);
        if !verbose && fsops::binary_looks_present(&target, exe.len()) {
            continue;
        }
        if !b.dir.is_dir() {
            return Err(Failure::new(
                format!("CNI bin dir {} does not exist ({})", b.dir.display(), b.why),
                format!(
                    "create it, or pass --cni-bin-dir with the dir your container runtime searches for CNI plugins; {}",
                    unchanged(&done)
                ),
            ));
        }
        let outcome = fsops::install_binary(exe, &target, o.common.dry_run).map_err(|e| {
            Failure::new(
                format!("cannot install the binary: {e}"),
                format!(
                    "check that {} is writable by this user (root on a node); {}",
                    b.dir.display(),
                    unchanged(&done)
                ),
            )
        })?;
        let line = match outcome {
            BinOutcome::Copied => format!(
                "installed {} ({} bytes, mode 0755)",
                target.display(),
                exe.len()
            ),
            BinOutcome::ModeFixed => format!("{}: same bytes, set mode 0755", target.display()),
            BinOutcome::WouldCopy => format!("would install {} (dry run)", target.display()),
            BinOutcome::UpToDate if verbose => format!("{}: already up to date", target.display()),
            BinOutcome::UpToDate => continue,
        };
        out.note(&line);
        if matches!(outcome, BinOutcome::Copied | BinOutcome::ModeFixed) {
            done.push(line);
        }
    }

    // Read again: copying a binary takes a while, and Calico may have rewritten the file.
    let mut plan = if done.is_empty() {
        plan
    } else {
        plan_now(&done)?
    };
    if verbose {
        if let Some(first) = &plan.shadowed_by {
            out.note(&format!(
                "warning: {} sorts before {} in {}: containerd and CRI-O use only the first network \
                 file, so pods get that network, not Calico's chain (nor calico-preflight)",
                first,
                plan.source,
                dir.display()
            ));
        }
        if !plan.other_calico.is_empty() {
            out.note(&format!(
                "note: {} also hold calico and were left alone: the runtime reads only the first",
                plan.other_calico.join(", ")
            ));
        }
    }
    if o.common.dry_run {
        let target = dir.join(&plan.target);
        if plan.changed {
            out.note(&format!(
                "would write {} (dry run): {} (was: {})",
                target.display(),
                plan.chain_after,
                plan.chain_before
            ));
            if plan.target != plan.source {
                out.note(&format!(
                    "would remove {}: a single-plugin conf cannot chain",
                    dir.join(&plan.source).display()
                ));
            }
        } else {
            out.note(&format!(
                "{}: already up to date ({})",
                target.display(),
                plan.chain_after
            ));
        }
        out.document(&plan.text);
        return Ok(as_it_was(plan.entries));
    }
    let mut raced = 0;
    loop {
        if !plan.changed {
            if verbose {
                out.note(&format!(
                    "{}: already up to date ({})",
                    dir.join(&plan.target).display(),
                    plan.chain_after
                ));
            }
            return Ok(as_it_was(plan.entries));
        }
        if commit(dir, &plan, &done)? {
            if raced > 0 {
                out.note(&format!(
                    "note: {} changed while being rewritten ({raced} time{}): each time, its new \
                     version was kept and the edit planned again from it",
                    dir.join(&plan.source).display(),
                    if raced == 1 { "" } else { "s" }
                ));
            }
            report_written(out, dir, &plan);
            return Ok(Installed {
                entries: plan.entries,
                wrote: true,
            });
        }
        raced += 1;
        if raced >= MAX_REPLANS {
            return Err(Failure::new(
                format!(
                    "{} changed {raced} times while install was rewriting it",
                    dir.join(&plan.source).display()
                ),
                format!(
                    "something rewrites it continuously; find out what, then run install again; {} (every new version was kept)",
                    unchanged(&done)
                ),
            ));
        }
        plan = plan_now(&done)?;
    }
}

fn report_written(out: Out, dir: &Path, plan: &conflist::InstallPlan) {
    let (source, target) = (dir.join(&plan.source), dir.join(&plan.target));
    if plan.target == plan.source {
        out.note(&format!(
            "wrote {}: {} (was: {})",
            target.display(),
            plan.chain_after,
            plan.chain_before
        ));
    } else if plan.replaces.is_some() {
        out.note(&format!(
            "{} was rewritten as a single-plugin conf after install had converted it, and sorts \
             before {}, so the runtime used it without calico-preflight: converted it again, \
             replacing {} ({}), and removed it",
            source.display(),
            target.display(),
            target.display(),
            plan.chain_after
        ));
    } else {
        out.note(&format!(
            "{} was a single-plugin conf, which cannot chain: replaced it with {} ({})",
            source.display(),
            target.display(),
            plan.chain_after
        ));
    }
}

/// Writes `plan` if the files are still the ones it was made from. Ok(false): one of them
/// changed since the read (left as its writer made it): plan again from a fresh read.
fn commit(dir: &Path, plan: &conflist::InstallPlan, done: &[String]) -> Result<bool, Failure> {
    let cannot = |path: &Path, e: &dyn std::fmt::Display| {
        Failure::new(
            format!("cannot write {}: {e}", path.display()),
            format!(
                "check that {} is writable by this user; {}",
                dir.display(),
                unchanged(done)
            ),
        )
    };
    let (source, target) = check_links(dir, plan, done)?;
    let read = match fsops::open_regular(&source) {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(cannot(&source, &e)),
    };
    if read.bytes != plan.source_bytes {
        return Ok(false);
    }
    if plan.target == plan.source {
        return match fsops::replace_if_unchanged(&source, &read, plan.text.as_bytes()) {
            Ok(swap) => Ok(swap == Swap::Replaced),
            Err(e) => Err(cannot(&source, &e)),
        };
    }
    // A single-plugin conf becomes `<stem>.conflist`, then the conf goes.
    let wrote = match &plan.replaces {
        Some(bytes) => {
            let old = match fsops::open_regular(&target) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(cannot(&target, &e)),
            };
            if old.bytes != *bytes {
                return Ok(false);
            }
            fsops::replace_if_unchanged(&target, &old, plan.text.as_bytes())
        }
        None => fsops::create_if_absent(&target, &read, plan.text.as_bytes()),
    }
    .map_err(|e| cannot(&target, &e))?;
    if wrote != Swap::Replaced {
        return Ok(false);
    }
    match fsops::remove_if_unchanged(&source, &read) {
        Ok(Swap::Replaced) => Ok(true),
        // Rewritten again meanwhile: the next plan converts the new version.
        Ok(Swap::Changed) => Ok(false),
        Err(e) => Err(Failure::new(
            format!(
                "wrote {} but cannot remove {}: {e}",
                target.display(),
                source.display()
            ),
            format!(
                "remove {} by hand: it sorts first, so the runtime still uses it",
                source.display()
            ),
        )),
    }
}

/// Where the plan's writes land (see [`fsops::resolve_conf_path`]), or why they may not.
fn check_links(
    dir: &Path,
    plan: &conflist::InstallPlan,
    done: &[String],
) -> Result<(PathBuf, PathBuf), Failure> {
    let source = fsops::resolve_conf_path(dir, &plan.source)
        .map_err(|problem| link_failure(dir, &plan.source, &problem, done))?;
    if plan.target == plan.source {
        return Ok((source.clone(), source));
    }
    // A symlinked conf is not converted: removing what it names would leave a dangling
    // link, which containerd refuses to load.
    if source != dir.join(&plan.source) {
        return Err(link_failure(
            dir,
            &plan.source,
            "is a symlink to a single-plugin conf, which install would have to replace by a conflist",
            done,
        ));
    }
    let target = fsops::resolve_conf_path(dir, &plan.target)
        .map_err(|problem| link_failure(dir, &plan.target, &problem, done))?;
    Ok((source, target))
}

fn link_failure(dir: &Path, name: &str, problem: &str, done: &[String]) -> Failure {
    Failure::new(
        format!("{} {problem}", dir.join(name).display()),
        format!(
            "replace the link with the file it names, or pass --cni-conf-dir with the dir that holds the file; {}",
            unchanged(done)
        ),
    )
}

fn watch_loop(o: &InstallOpts, dirs: &Dirs, exe: &[u8], out: Out) -> Result<(), Failure> {
    watch::install_signal_handlers().map_err(|e| {
        Failure::new(
            format!("cannot install the SIGTERM/SIGINT handlers: {e}"),
            "run install without --watch",
        )
    })?;
    let mut waker = watch::Waker::new(&dirs.conf.dir);
    match &waker.unavailable {
        None => out.note(&format!(
            "watching {} (on every change, and every {:?}); SIGTERM or SIGINT stops",
            dirs.conf.dir.display(),
            o.interval
        )),
        Some(why) => out.note(&format!(
            "watching {} every {:?} (inotify not in use yet: {why}); SIGTERM or SIGINT stops",
            dirs.conf.dir.display(),
            o.interval
        )),
    }
    // Started after the first notes, before the first pass: a port that is taken fails the
    // start, and the scans run beside the watch from the beginning.
    let monitor = match &o.monitor {
        None => None,
        Some(m) => {
            let started = monitor::start(m, watch::stop_requested).map_err(|e| {
                Failure::new(
                    match m.addr {
                        Some(a) => format!("cannot serve metrics on {a}: {e}"),
                        None => format!("cannot start the node scans: {e}"),
                    },
                    "pass --metrics-addr with a free port on an address of this node (the \
                     DaemonSet uses hostNetwork: the port is the node's), or leave \
                     --metrics-addr out",
                )
            })?;
            out.note(&match started.local_addr {
                Some(a) => format!(
                    "serving metrics on http://{a}/metrics (also /healthz, /readyz); scanning \
                     the node every {:?}",
                    m.scan_interval
                ),
                None => format!(
                    "scanning the node every {:?} (no --metrics-addr: changes are logged here)",
                    m.scan_interval
                ),
            });
            Some(started)
        }
    };
    let mut remembered: Option<Entries> = None;
    let mut last_error: Option<Failure> = None;
    let mut installed_once = false;
    watch::run(
        o.interval,
        o.watch_iterations,
        &mut waker,
        || match install_once(o, dirs, exe, remembered.as_ref(), out, !installed_once) {
            Ok(done) => {
                if last_error.take().is_some() {
                    out.note("recovered: our entry is in place");
                }
                if done.wrote {
                    if let Some(m) = &monitor {
                        m.state.count_repair();
                    }
                }
                remembered = Some(done.entries);
                installed_once = true;
            }
            Err(f) => {
                // Calico's installer may be mid-rewrite, or not there yet: say it once, retry.
                if last_error.as_ref() != Some(&f) {
                    f.print("install --watch");
                    eprintln!(
                        "  (will retry on the next change, and every {:?})",
                        o.interval
                    );
                }
                last_error = Some(f);
            }
        },
        watch::stop_requested,
    );
    out.note("stopped watching");
    match last_error {
        Some(f) => Err(f),
        None => Ok(()),
    }
}

pub fn run_uninstall(o: &UninstallOpts) -> Result<(), Failure> {
    let out = Out {
        dry_run: o.common.dry_run,
    };
    let dirs = resolve_dirs(&o.common, o.remove_binary)?;
    print_dirs(out, &dirs, o.remove_binary);
    let dir = &dirs.conf.dir;
    let mut done: Vec<String> = Vec::new();
    let mut raced = 0;
    // Plan from a fresh read; a file that changed between the read and the rewrite is left
    // as its writer made it, and everything is planned again.
    let plan = loop {
        let files = fsops::read_conf_dir(dir).map_err(|e| conf_dir_failure(dir, &e))?;
        let plan = conflist::plan_uninstall(&files);
        if o.common.dry_run {
            break plan;
        }
        let mut again = false;
        for r in &plan.removals {
            if !remove_entries(dir, r, &done)? {
                again = true;
                continue;
            }
            let line = format!(
                "removed {} calico-preflight entr{} from {}: {}",
                r.removed,
                if r.removed == 1 { "y" } else { "ies" },
                dir.join(&r.name).display(),
                r.chain_after
            );
            out.note(&line);
            done.push(line);
        }
        if !again {
            break plan;
        }
        raced += 1;
        if raced >= MAX_REPLANS {
            return Err(Failure::new(
                format!(
                    "the conflists in {} kept changing while uninstall rewrote them",
                    dir.display()
                ),
                format!(
                    "find out what rewrites them, then run uninstall again; {}",
                    unchanged(&done)
                ),
            ));
        }
    };
    if plan.removals.is_empty() && plan.left_alone.is_empty() && done.is_empty() {
        out.note(&format!(
            "no conflist in {} holds calico-preflight",
            dir.display()
        ));
    }
    if o.common.dry_run {
        for r in &plan.removals {
            out.note(&format!(
                "would remove {} calico-preflight entr{} from {} (dry run): {}",
                r.removed,
                if r.removed == 1 { "y" } else { "ies" },
                dir.join(&r.name).display(),
                r.chain_after
            ));
            out.document(&r.text);
        }
    }
    for l in &plan.left_alone {
        out.note(&format!(
            "left {} unchanged: {}",
            dir.join(&l.name).display(),
            l.why
        ));
    }
    if o.remove_binary {
        for b in &dirs.bin {
            let target = b.dir.join(OUR_TYPE);
            // Entries first, binary last: never a chain naming a plugin the runtime cannot find.
            if let Some(l) = plan.left_alone.first() {
                out.note(&format!(
                    "kept {}: {} still names calico-preflight, and a network naming a plugin \
                     the runtime cannot find fails every pod start",
                    target.display(),
                    dir.join(&l.name).display()
                ));
                continue;
            }
            if o.common.dry_run {
                if target.exists() {
                    out.note(&format!("would remove {} (dry run)", target.display()));
                }
                continue;
            }
            match fs::remove_file(&target) {
                Ok(()) => out.note(&format!("removed {}", target.display())),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    out.note(&format!("{}: not there", target.display()))
                }
                Err(e) => {
                    return Err(Failure::new(
                        format!("cannot remove {}: {e}", target.display()),
                        "check that the dir is writable by this user, then run uninstall again",
                    ))
                }
            }
        }
    }
    if let Some(first) = plan.unparsable.first() {
        let names: Vec<_> = plan
            .unparsable
            .iter()
            .map(|u| format!("{}: {}", dir.join(&u.name).display(), u.error))
            .collect();
        return Err(Failure::new(
            format!("cannot parse {}", names.join("; ")),
            format!(
                "fix or remove {} (any calico-preflight entry in it is still there), then run uninstall again; the other files were handled",
                dir.join(&first.name).display()
            ),
        ));
    }
    if let Some(first) = plan.left_alone.first() {
        let names: Vec<_> = plan
            .left_alone
            .iter()
            .map(|l| dir.join(&l.name).display().to_string())
            .collect();
        return Err(Failure::new(
            format!(
                "{} still name{} calico-preflight as the only plugin of their network and were left unchanged",
                names.join(", "),
                if names.len() == 1 { "s" } else { "" }
            ),
            format!(
                "install never writes such a file: if that network is not needed, remove {} by hand (the runtime then uses the next network file), or add the plugins it should run; then run uninstall again; the other files were handled",
                dir.join(&first.name).display()
            ),
        ));
    }
    Ok(())
}

/// Rewrites one conflist without our entries, if it is still the file planned from.
fn remove_entries(dir: &Path, r: &conflist::Removal, done: &[String]) -> Result<bool, Failure> {
    let cannot = |path: &Path, e: &dyn std::fmt::Display| {
        Failure::new(
            format!("cannot write {}: {e}", path.display()),
            format!(
                "check that {} is writable by this user, then run uninstall again; {}",
                dir.display(),
                unchanged(done)
            ),
        )
    };
    let path = fsops::resolve_conf_path(dir, &r.name).map_err(|problem| {
        let mut f = link_failure(dir, &r.name, &problem, done);
        f.remedy = f.remedy.replace("run install", "run uninstall");
        f
    })?;
    let read = match fsops::open_regular(&path) {
        Ok(read) => read,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(cannot(&path, &e)),
    };
    if read.bytes != r.bytes {
        return Ok(false);
    }
    match fsops::replace_if_unchanged(&path, &read, r.text.as_bytes()) {
        Ok(swap) => Ok(swap == Swap::Replaced),
        Err(e) => Err(cannot(&path, &e)),
    }
}

fn conf_dir_failure(dir: &Path, e: &io::Error) -> Failure {
    Failure::new(
        format!("cannot read CNI conf dir {}: {e}", dir.display()),
        "pass --cni-conf-dir with the dir holding Calico's conflist (is Calico installed on this node?)",
    )
}

fn plan_failure(dir: &Path, e: PlanError, done: &[String]) -> Failure {
    let unchanged = unchanged(done);
    match e {
        PlanError::Unparsable(u) => Failure::new(
            format!("cannot parse {}: {}", dir.join(&u.name).display(), u.error),
            format!("fix or remove the file (containerd refuses a conf dir holding it too), then run install again; {unchanged}"),
        ),
        PlanError::NoCalico { looked_at } => Failure::new(
            format!(
                "no CNI config in {} holds a plugin with \"type\": \"calico\" ({})",
                dir.display(),
                if looked_at.is_empty() {
                    "it holds no *.conf, *.conflist or *.json file".to_string()
                } else {
                    format!("looked at {}", looked_at.join(", "))
                }
            ),
            format!("install Calico first (calico-node writes 10-calico.conflist), or pass --cni-conf-dir with the dir holding its conflist; {unchanged}"),
        ),
        PlanError::TargetExists { from, target } => Failure::new(
            format!(
                "{} is a single-plugin conf holding calico, which cannot chain, so it must become {}, but that file already exists and is not one install wrote (it holds no calico-preflight entry after calico)",
                dir.join(&from).display(),
                dir.join(&target).display()
            ),
            format!("remove the stale one of the two, then run install again; {unchanged}"),
        ),
        PlanError::Invalid { name, problem } => Failure::new(
            format!("{} {problem}", dir.join(&name).display()),
            format!("fix the file, then run install again; {unchanged}"),
        ),
        PlanError::Version { name, problem } => Failure::new(
            format!("{} {problem}", dir.join(&name).display()),
            format!(
                "set \"cniVersion\" to one of {} (Calico's own conflist uses 0.3.1), then run install again; {unchanged}",
                crate::cni::version::SUPPORTED.join(", ")
            ),
        ),
        PlanError::BadEntry { in_file: None, problem } => Failure::new(
            format!("the calico-preflight entry given with --entry {problem}: the plugin would refuse it at every pod start"),
            format!("fix --entry (see the README's configuration keys); {unchanged}"),
        ),
        PlanError::BadEntry { in_file: Some((name, i)), problem } => Failure::new(
            format!(
                "{}: the calico-preflight entry already there (plugins[{i}]) {problem}: the plugin refuses it, so every pod start that runs it fails",
                dir.join(&name).display()
            ),
            format!("pass --entry with a valid entry to replace it, or run uninstall to take it out; {unchanged}"),
        ),
    }
}

fn print_dirs(out: Out, dirs: &Dirs, with_bin: bool) {
    if with_bin {
        for b in &dirs.bin {
            out.note(&format!("bin dir {} ({})", b.dir.display(), b.why));
        }
    }
    out.note(&format!(
        "conf dir {} ({})",
        dirs.conf.dir.display(),
        dirs.conf.why
    ));
    for n in &dirs.notes {
        out.note(&format!("note: {n}"));
    }
}

/// Flags, else what the runtimes' configs say, else the CNI defaults. The configs are read
/// only when a flag is missing: explicit flags make a run independent of the node's files.
/// The configs are read as the runtimes read them (crate::inspect::runtime).
fn resolve_dirs(c: &Common, need_bin: bool) -> Result<Dirs, Failure> {
    let need_runtime = (need_bin && c.bin_dirs.is_empty()) || c.conf_dir.is_none();
    let found = if need_runtime {
        runtime_config::discover(
            &Source::from_flag(c.containerd_config.as_deref()),
            &Source::from_flag(c.crio_config.as_deref()),
            // install runs where the runtime's files are (its DaemonSet passes the dirs).
            std::path::Path::new("/"),
        )
        .map_err(|e| {
            Failure::new(
                e.what,
                format!(
                    "{}; --containerd-config none / --crio-config none skip a runtime",
                    e.remedy
                ),
            )
        })?
    } else {
        runtime_config::Discovery::default()
    };
    Ok(runtime_config::pick(
        &c.bin_dirs,
        c.conf_dir.as_deref(),
        &found.runtimes,
        &found.looked_at,
        std::path::Path::new("/"),
    ))
}
