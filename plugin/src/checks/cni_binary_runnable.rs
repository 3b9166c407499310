//! `cni-binary-runnable`: every plugin binary of the chain (and each `ipam.type`) can be executed
//! by this node. `cni-bin-dir` says whether the runtime finds an executable file; this says
//! whether the kernel can run the file it finds: built for this machine (the
//! `fork/exec /opt/cni/bin/calico: exec format error` of calicoctl#1136, kubespray#8461,
//! calico#4256), its dynamic loader or `#!` interpreter present, and not on a `noexec` mount
//! (cni-plugin#891, which left nodes NotReady). Judged from the header alone.

use super::{CheckId, Finding, NodeFacts, Severity};
use crate::inspect::elf::{
    BinExec, ElfInfo, Format, InterpState, Machine, NodeMachine, EM_386, EM_AARCH64, EM_ARM,
    EM_X86_64,
};

pub fn check(f: &NodeFacts) -> Vec<Finding> {
    let Some(be) = &f.bin_exec else {
        return vec![];
    };
    let conflist = f
        .cni
        .as_ref()
        .and_then(|c| c.ours.and_then(|i| c.files.get(i)))
        .map(|c| c.path.display().to_string())
        .unwrap_or_else(|| "the conflist".into());
    let ours = f.cni.as_ref().map(|c| c.our_type.as_str()).unwrap_or("");
    let mut out = Vec::new();
    for b in &be.binaries {
        // A binfmt_misc handler (qemu-user, ...) runs what the kernel itself cannot.
        if b.binfmt.is_some() {
            continue;
        }
        let ctx = Ctx {
            b,
            object: format!(
                "{} (needed by {} in {conflist})",
                b.path.display(),
                b.needed_by
            ),
            reinstall: reinstall(b.plugin == ours),
        };
        out.extend(format_finding(&ctx, &be.node));
        out.extend(noexec_finding(&ctx));
    }
    out
}

struct Ctx<'a> {
    b: &'a BinExec,
    object: String,
    reinstall: String,
}

impl Ctx<'_> {
    fn finding(&self, problem: String, expected: &str, found: String, remedy: String) -> Finding {
        Finding::new(
            CheckId::CniBinaryRunnable,
            self.object.clone(),
            problem,
            expected,
            found,
            remedy,
        )
    }
}

fn reinstall(ours: bool) -> String {
    if ours {
        "run `calico-preflight install` with this node's build of calico-preflight".into()
    } else {
        "Calico's install-cni init container copies the binaries of its own image: check that \
         the calico-node (or calico/cni) image was pulled for this node's platform (a mirror or a \
         copy from another node can hold a single other architecture), then delete the calico-node \
         pod on this node to rerun install-cni"
            .into()
    }
}

const RUNNABLE: &str =
    "an ELF executable for this node's architecture, or a #! script whose interpreter exists";

fn format_finding(c: &Ctx, node: &NodeMachine) -> Option<Finding> {
    let b = c.b;
    let path = b.path.display();
    let plugin = &b.plugin;
    match &b.format {
        Format::Unreadable(e) => Some(
            c.finding(
                format!("plugin binary {plugin:?} could not be read to tell whether it can run"),
                RUNNABLE,
                format!("{path}: {e}"),
                "check the file's permissions and filesystem; this check only reads its header"
                    .into(),
            )
            .at(Severity::Warn),
        ),
        Format::Empty => Some(c.finding(
            format!("plugin binary {plugin:?} is an empty file"),
            RUNNABLE,
            format!("{path} has 0 bytes (an interrupted copy?)"),
            format!(
                "the kernel cannot run it (exec format error): {}",
                c.reinstall
            ),
        )),
        Format::Unknown { head } => Some(c.finding(
            format!("plugin binary {plugin:?} is neither an ELF binary nor a script"),
            RUNNABLE,
            format!("{path} starts with the bytes {head}"),
            format!(
                "the kernel cannot run it (exec format error): {}",
                c.reinstall
            ),
        )),
        Format::BadElf(e) => Some(c.finding(
            format!("plugin binary {plugin:?} is a corrupt or truncated ELF file"),
            RUNNABLE,
            format!("{path}: {e}"),
            format!("the kernel refuses it: {}", c.reinstall),
        )),
        Format::Elf(info) => elf_finding(c, node, info),
        Format::Script { interpreter } if interpreter.is_empty() => Some(c.finding(
            format!("plugin script {plugin:?} names no interpreter"),
            RUNNABLE,
            format!("{path} starts with a bare #!"),
            format!(
                "the kernel cannot run it (exec format error): {}",
                c.reinstall
            ),
        )),
        Format::Script { .. } => interp_finding(c, "interpreter", "#!"),
    }
}

fn elf_finding(c: &Ctx, node: &NodeMachine, info: &ElfInfo) -> Option<Finding> {
    let b = c.b;
    let path = b.path.display();
    let plugin = &b.plugin;
    // ET_EXEC and ET_DYN (PIE) are what execve loads.
    if !matches!(info.e_type, 2 | 3) {
        return Some(c.finding(
            format!("plugin binary {plugin:?} is an ELF file that is not an executable"),
            RUNNABLE,
            format!("{path} is of ELF type {} (not EXEC or DYN)", info.e_type),
            format!(
                "the kernel cannot run it (exec format error): {}",
                c.reinstall
            ),
        ));
    }
    let Some(native) = node.native.first() else {
        // An architecture we cannot name: the machine is not judged.
        return interp_finding(c, "dynamic loader", "PT_INTERP");
    };
    if node.native.contains(&info.target) {
        return interp_finding(c, "dynamic loader", "PT_INTERP");
    }
    let node_desc = format!(
        "this node is {} ({})",
        if node.uname.is_empty() {
            "?"
        } else {
            &node.uname
        },
        native.describe()
    );
    let expected = format!("an ELF executable for {}", native.describe());
    if compat32(&node.native, &info.target) {
        // A 64-bit kernel may run it, if built with its 32-bit ABI (IA32_EMULATION, COMPAT).
        return Some(
            c.finding(
                format!("plugin binary {plugin:?} is a 32-bit build"),
                &expected,
                format!("{path} is an ELF for {}; {node_desc}", info.target.describe()),
                format!(
                    "it runs only if the kernel has 32-bit support; prefer this node's native build: {}",
                    c.reinstall
                ),
            )
            .at(Severity::Warn),
        );
    }
    Some(c.finding(
        format!("plugin binary {plugin:?} is built for another architecture"),
        &expected,
        format!("{path} is an ELF for {}; {node_desc}", info.target.describe()),
        format!(
            "the runtime cannot start it (fork/exec {path}: exec format error) and every pod on this \
             node fails: replace it with the {} build. {}",
            if node.uname.is_empty() { "native" } else { &node.uname },
            capitalise(&c.reinstall)
        ),
    ))
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// 32-bit binaries a 64-bit kernel of the same family can run (with its compat support).
fn compat32(native: &[Machine], t: &Machine) -> bool {
    let has = |m: u16| native.iter().any(|n| n.machine == m && n.bits64);
    t.little_endian
        && ((has(EM_X86_64) && (t.machine == EM_386 || (t.machine == EM_X86_64 && !t.bits64)))
            || (has(EM_AARCH64) && t.machine == EM_ARM))
}

fn interp_finding(c: &Ctx, what: &str, named_by: &str) -> Option<Finding> {
    let b = c.b;
    let (named, resolved, state) = b.interpreter.as_ref()?;
    let path = b.path.display();
    let plugin = &b.plugin;
    let found_head = if named_by == "#!" {
        format!("{path} starts with #!{}", named.display())
    } else {
        format!("{path} names {} ({named_by})", named.display())
    };
    let (found, remedy) = match state {
        InterpState::Present => return None,
        InterpState::Missing => (
            format!(
                "{found_head}, which does not exist at {}",
                resolved.display()
            ),
            if named_by == "#!" {
                format!(
                    "the runtime gets `no such file or directory` for a file that is there: install {} on \
                     the node, or replace the script with the real plugin binary",
                    named.display()
                )
            } else {
                format!(
                    "the runtime gets `no such file or directory` for a file that is there: use a \
                     statically linked build (Calico ships static binaries) or install the C library \
                     providing {}; {}",
                    named.display(),
                    c.reinstall
                )
            },
        ),
        InterpState::NotExecutable { mode } => (
            format!(
                "{found_head}, which is not executable (mode {mode:04o}) at {}",
                resolved.display()
            ),
            format!(
                "the kernel refuses to load it (permission denied): chmod 755 {}",
                resolved.display()
            ),
        ),
        InterpState::NotRegular => (
            format!(
                "{found_head}, which is not a regular file at {}",
                resolved.display()
            ),
            format!(
                "the kernel cannot load it: make {} the {what} it should be",
                resolved.display()
            ),
        ),
        InterpState::Unreadable(e) => {
            return Some(
                c.finding(
                    format!("the {what} of plugin binary {plugin:?} could not be looked at"),
                    &format!("the {what} {} present", named.display()),
                    format!("{found_head}; looking at {}: {e}", resolved.display()),
                    "check that path's permissions".into(),
                )
                .at(Severity::Warn),
            )
        }
    };
    Some(c.finding(
        format!("the {what} of plugin binary {plugin:?} is missing"),
        &format!("the {what} {} present and executable", named.display()),
        found,
        remedy,
    ))
}

fn noexec_finding(c: &Ctx) -> Option<Finding> {
    let m = c.b.mount.as_ref().filter(|m| m.noexec)?;
    let real =
        c.b.real_path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
    let mp = m.mount_point.display();
    Some(c.finding(
        format!("plugin binary {:?} is on a filesystem mounted noexec", c.b.plugin),
        "the binary's filesystem mounted without noexec",
        format!("{real} is on {mp} ({} {}), mounted noexec", m.fstype, m.source),
        format!(
            "the kernel runs no file there (permission denied) and the node stays NotReady: remount it \
             (mount -o remount,exec {mp}) and drop noexec from its /etc/fstab line or mount unit, or \
             install the CNI binaries on another filesystem and point the runtime's bin dir there"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::elf::{BinExecFacts, Mount};
    use std::path::PathBuf;

    fn x86() -> NodeMachine {
        NodeMachine {
            uname: "x86_64".into(),
            native: vec![Machine::from_uname("x86_64").unwrap()],
        }
    }

    fn elf(m: &str, interp: Option<(&str, InterpState)>) -> BinExec {
        let target = Machine::from_uname(m).unwrap();
        BinExec {
            plugin: "calico".into(),
            needed_by: "plugin calico".into(),
            path: "/opt/cni/bin/calico".into(),
            real_path: Some("/opt/cni/bin/calico".into()),
            format: Format::Elf(ElfInfo {
                target,
                e_type: 2,
                interp: interp.as_ref().map(|(i, _)| PathBuf::from(i)),
            }),
            interpreter: interp.map(|(i, s)| (PathBuf::from(i), PathBuf::from(i), s)),
            binfmt: None,
            mount: Some(Mount {
                mount_point: "/".into(),
                fstype: "ext4".into(),
                source: "/dev/sda1".into(),
                noexec: false,
            }),
        }
    }

    fn run(b: Vec<BinExec>) -> Vec<Finding> {
        check(&NodeFacts {
            bin_exec: Some(BinExecFacts {
                node: x86(),
                binaries: b,
                mountinfo_error: None,
            }),
            ..NodeFacts::default()
        })
    }

    #[test]
    fn native_static_and_dynamic_binaries_are_quiet() {
        assert!(run(vec![elf("x86_64", None)]).is_empty());
        assert!(run(vec![elf(
            "x86_64",
            Some(("/lib64/ld-linux-x86-64.so.2", InterpState::Present))
        )])
        .is_empty());
        assert!(check(&NodeFacts::default()).is_empty());
    }

    #[test]
    fn another_architecture_is_an_error_naming_both() {
        // Its loader is missing too, for the same cause: one finding only.
        let f = run(vec![elf(
            "aarch64",
            Some(("/lib/ld-linux-aarch64.so.1", InterpState::Missing)),
        )]);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].severity, Severity::Error);
        assert_eq!(
            f[0].problem,
            "plugin binary \"calico\" is built for another architecture"
        );
        assert_eq!(
            f[0].found,
            "/opt/cni/bin/calico is an ELF for aarch64 (arm64), 64-bit, little-endian; this node is \
             x86_64 (x86_64 (amd64), 64-bit, little-endian)"
        );
        assert!(f[0].remedy.contains("exec format error"));
        assert!(f[0].remedy.contains("install-cni"));
    }

    #[test]
    fn a_32_bit_build_only_warns_and_binfmt_handlers_silence() {
        let f = run(vec![elf("i686", None)]);
        assert_eq!(f[0].severity, Severity::Warn, "{f:#?}");
        let mut b = elf("aarch64", None);
        b.binfmt = Some("qemu-aarch64".into());
        assert!(run(vec![b]).is_empty());
    }

    #[test]
    fn missing_loader_and_script_interpreter() {
        let f = run(vec![elf(
            "x86_64",
            Some(("/lib/ld-musl-x86_64.so.1", InterpState::Missing)),
        )]);
        assert_eq!(
            f[0].problem,
            "the dynamic loader of plugin binary \"calico\" is missing"
        );
        assert!(f[0]
            .found
            .contains("names /lib/ld-musl-x86_64.so.1 (PT_INTERP)"));
        let mut s = elf("x86_64", None);
        s.format = Format::Script {
            interpreter: "/usr/bin/python9".into(),
        };
        s.interpreter = Some((
            "/usr/bin/python9".into(),
            "/host/usr/bin/python9".into(),
            InterpState::Missing,
        ));
        let f = run(vec![s.clone()]);
        assert_eq!(
            f[0].found,
            "/opt/cni/bin/calico starts with #!/usr/bin/python9, which does not exist at /host/usr/bin/python9"
        );
        s.interpreter.as_mut().unwrap().2 = InterpState::NotExecutable { mode: 0o644 };
        assert!(run(vec![s.clone()])[0].remedy.contains("chmod 755"));
        s.format = Format::Script {
            interpreter: "".into(),
        };
        s.interpreter = None;
        assert!(run(vec![s])[0].problem.contains("names no interpreter"));
    }

    #[test]
    fn noexec_is_its_own_finding() {
        let mut b = elf("x86_64", None);
        b.mount = Some(Mount {
            mount_point: "/opt".into(),
            fstype: "tmpfs".into(),
            source: "tmpfs".into(),
            noexec: true,
        });
        let f = run(vec![b]);
        assert_eq!(f.len(), 1);
        assert_eq!(
            f[0].found,
            "/opt/cni/bin/calico is on /opt (tmpfs tmpfs), mounted noexec"
        );
        assert!(f[0].remedy.contains("mount -o remount,exec /opt"));
    }

    #[test]
    fn empty_unknown_corrupt_and_unreadable() {
        for (format, want, sev) in [
            (Format::Empty, "is an empty file", Severity::Error),
            (
                Format::Unknown {
                    head: "4d5a".into(),
                },
                "neither an ELF",
                Severity::Error,
            ),
            (
                Format::BadElf("program headers beyond".into()),
                "corrupt or truncated",
                Severity::Error,
            ),
            (
                Format::Unreadable("EIO".into()),
                "could not be read",
                Severity::Warn,
            ),
        ] {
            let mut b = elf("x86_64", None);
            b.format = format;
            let f = run(vec![b]);
            assert!(f[0].problem.contains(want), "{f:#?}");
            assert_eq!(f[0].severity, sev);
        }
    }
}
