//! The command-line face of the same binary: run by an operator (no CNI_COMMAND in the
//! environment) rather than by a container runtime.

pub mod doctor;
pub mod install;

use std::io::Write;

pub const USAGE: &str = "\
calico-preflight: a CNI chained plugin that checks Calico's pod wiring and the node's CNI setup.

As a CNI plugin it is run by the container runtime (CNI_COMMAND set); as a tool:

  calico-preflight install    [--help]   put the binary in the CNI bin dir(s) and our entry in Calico's conflist
  calico-preflight uninstall  [--help]   remove our entries (and, with --remove-binary, the binaries)
  calico-preflight doctor    [--help]   check this node and every Calico pod on it (read-only report)
  calico-preflight --version
  calico-preflight --help
";

/// Runs a subcommand; returns the process exit status.
pub fn main(args: &[String]) -> i32 {
    let Some(cmd) = args.first() else {
        eprint!("{USAGE}");
        return 2;
    };
    let rest = &args[1..];
    match cmd.as_str() {
        "install" => install::install_main(rest),
        "uninstall" => install::uninstall_main(rest),
        "doctor" => doctor::main(rest),
        "--version" | "-V" | "version" => {
            println!("calico-preflight {}", env!("CARGO_PKG_VERSION"));
            0
        }
        "--help" | "-h" | "help" => {
            let _ = std::io::stdout().write_all(USAGE.as_bytes());
            0
        }
        other => {
            eprintln!("calico-preflight: unknown command {other:?}\n\n{USAGE}");
            2
        }
    }
}
