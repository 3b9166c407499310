//! `install` / `uninstall`: put this binary in the CNI bin dir(s) and our entry in Calico's
//! conflist, and take them out again.
//!
//! Order matters for pods starting meanwhile: install copies the binary before a conflist
//! names it, uninstall removes the entries before the binary, so a runtime never reads a
//! chain naming a plugin it cannot find. Every file is replaced by rename, so a runtime never
//! reads half a conflist nor execs half a binary.

pub mod conflist;
pub mod fsops;
pub mod runtime_config;
pub mod watch;

use conflist::Position;
use conflist::{Entries, PlanError, OUR_TYPE};
use fsops::BinOutcome;
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

/// One install pass. `verbose`: report what is already fine too (the first pass); later
/// `--watch` passes only report changes and look at the binary cheaply.
fn install_once(
    o: &InstallOpts,
    dirs: &Dirs,
    exe: &[u8],
    remembered: Option<&Entries>,
    out: Out,
    verbose: bool,
) -> Result<Entries, Failure> {
    let dir = &dirs.conf.dir;
    let explicit = o.entry.clone().map(Entries::same);
    let plan_now = || {
        let files = fsops::read_conf_dir(dir).map_err(|e| conf_dir_failure(dir, &e))?;
        conflist::plan_install(&files, o.position, explicit.as_ref(), remembered)
            .map_err(|e| plan_failure(dir, e))
    };
    // Plan first, so that a conf dir we must refuse leaves everything as it was.
    let plan = plan_now()?;
    let mut copied = false;
    for b in &dirs.bin {
        let target = b.dir.join(OUR_TYPE);
        if !verbose && fsops::binary_looks_present(&target, exe.len()) {
            continue;
        }
        if !b.dir.is_dir() {
            return Err(Failure::new(
                format!("CNI bin dir {} does not exist ({})", b.dir.display(), b.why),
                "create it, or pass --cni-bin-dir with the dir your container runtime searches for CNI plugins",
            ));
        }
        let done = fsops::install_binary(exe, &target, o.common.dry_run).map_err(|e| {
            Failure::new(
                format!("cannot install the binary: {e}"),
                format!(
                    "check that {} is writable by this user (root on a node)",
                    b.dir.display()
                ),
            )
        })?;
        copied |= done == BinOutcome::Copied;
        match done {
            BinOutcome::Copied => out.note(&format!(
                "installed {} ({} bytes, mode 0755)",
                target.display(),
                exe.len()
            )),
            BinOutcome::ModeFixed => {
                out.note(&format!("{}: same bytes, set mode 0755", target.display()))
            }
            BinOutcome::WouldCopy => {
                out.note(&format!("would install {} (dry run)", target.display()))
            }
            BinOutcome::UpToDate if verbose => {
                out.note(&format!("{}: already up to date", target.display()))
            }
            BinOutcome::UpToDate => {}
        }
    }

    // Read again: copying a binary takes a while, and Calico may have rewritten the file.
    let plan = if copied { plan_now()? } else { plan };
    let source = dir.join(&plan.source);
    let target = dir.join(&plan.target);
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
                    source.display()
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
        return Ok(plan.entries);
    }
    if !plan.changed {
        if verbose {
            out.note(&format!(
                "{}: already up to date ({})",
                target.display(),
                plan.chain_after
            ));
        }
        return Ok(plan.entries);
    }
    let meta = fs::metadata(&source).map_err(|e| {
        Failure::new(
            format!("cannot stat {}: {e}", source.display()),
            "the file changed while install ran; run install again",
        )
    })?;
    let (mode, owner) = fsops::mode_and_owner(&meta);
    let write_to = if plan.target == plan.source {
        fsops::resolve_link(&target)
    } else {
        target.clone()
    };
    fsops::write_atomic(&write_to, plan.text.as_bytes(), mode, owner).map_err(|e| {
        Failure::new(
            format!("cannot write {}: {e}", write_to.display()),
            format!(
                "check that {} is writable by this user; nothing was changed",
                dir.display()
            ),
        )
    })?;
    if plan.target != plan.source {
        fs::remove_file(&source).map_err(|e| {
            Failure::new(
                format!(
                    "wrote {} but cannot remove {}: {e}",
                    target.display(),
                    source.display()
                ),
                format!(
                    "remove {} by hand: it sorts first, so the runtime still uses it",
                    source.display()
                ),
            )
        })?;
        out.note(&format!(
            "{} was a single-plugin conf, which cannot chain: replaced it with {} ({})",
            source.display(),
            target.display(),
            plan.chain_after
        ));
    } else {
        out.note(&format!(
            "wrote {}: {} (was: {})",
            target.display(),
            plan.chain_after,
            plan.chain_before
        ));
    }
    Ok(plan.entries)
}

fn watch_loop(o: &InstallOpts, dirs: &Dirs, exe: &[u8], out: Out) -> Result<(), Failure> {
    watch::install_signal_handlers().map_err(|e| {
        Failure::new(
            format!("cannot install the SIGTERM/SIGINT handlers: {e}"),
            "run install without --watch",
        )
    })?;
    out.note(&format!(
        "watching {} every {:?}; SIGTERM or SIGINT stops",
        dirs.conf.dir.display(),
        o.interval
    ));
    let mut remembered: Option<Entries> = None;
    let mut last_error: Option<Failure> = None;
    let mut installed_once = false;
    watch::run(
        o.interval,
        o.watch_iterations,
        || match install_once(o, dirs, exe, remembered.as_ref(), out, !installed_once) {
            Ok(e) => {
                if last_error.take().is_some() {
                    out.note("recovered: our entry is in place");
                }
                remembered = Some(e);
                installed_once = true;
            }
            Err(f) => {
                // Calico's installer may be mid-rewrite, or not there yet: say it once, retry.
                if last_error.as_ref() != Some(&f) {
                    f.print("install --watch");
                    eprintln!("  (will retry every {:?})", o.interval);
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
    let files = fsops::read_conf_dir(dir).map_err(|e| conf_dir_failure(dir, &e))?;
    let (removals, unparsable) = conflist::plan_uninstall(&files);
    if removals.is_empty() {
        out.note(&format!(
            "no conflist in {} holds calico-preflight",
            dir.display()
        ));
    }
    for r in &removals {
        let path = dir.join(&r.name);
        if o.common.dry_run {
            out.note(&format!(
                "would remove {} calico-preflight entr{} from {} (dry run): {}",
                r.removed,
                if r.removed == 1 { "y" } else { "ies" },
                path.display(),
                r.chain_after
            ));
            out.document(&r.text);
            continue;
        }
        let (mode, owner) = fs::metadata(&path)
            .map(|m| fsops::mode_and_owner(&m))
            .unwrap_or((0o644, None));
        let write_to = fsops::resolve_link(&path);
        fsops::write_atomic(&write_to, r.text.as_bytes(), mode, owner).map_err(|e| {
            Failure::new(
                format!("cannot write {}: {e}", write_to.display()),
                format!(
                    "check that {} is writable by this user, then run uninstall again",
                    dir.display()
                ),
            )
        })?;
        out.note(&format!(
            "removed {} calico-preflight entr{} from {}: {}",
            r.removed,
            if r.removed == 1 { "y" } else { "ies" },
            path.display(),
            r.chain_after
        ));
    }
    if o.remove_binary {
        for b in &dirs.bin {
            let target = b.dir.join(OUR_TYPE);
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
    if let Some(first) = unparsable.first() {
        let names: Vec<_> = unparsable
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
    Ok(())
}

fn conf_dir_failure(dir: &Path, e: &io::Error) -> Failure {
    Failure::new(
        format!("cannot read CNI conf dir {}: {e}", dir.display()),
        "pass --cni-conf-dir with the dir holding Calico's conflist (is Calico installed on this node?)",
    )
}

fn plan_failure(dir: &Path, e: PlanError) -> Failure {
    match e {
        PlanError::Unparsable(u) => Failure::new(
            format!("cannot parse {}: {}", dir.join(&u.name).display(), u.error),
            "fix or remove the file (containerd refuses a conf dir holding it too), then run install again; nothing was changed",
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
            "install Calico first (calico-node writes 10-calico.conflist), or pass --cni-conf-dir with the dir holding its conflist",
        ),
        PlanError::TargetExists { from, target } => Failure::new(
            format!(
                "{} is a single-plugin conf holding calico, which cannot chain, so it must become {}, but that file already exists",
                dir.join(&from).display(),
                dir.join(&target).display()
            ),
            "remove the stale one of the two, then run install again; nothing was changed",
        ),
        PlanError::Invalid { name, problem } => Failure::new(
            format!("{} {problem}", dir.join(&name).display()),
            "fix the file, then run install again; nothing was changed",
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
    ))
}
