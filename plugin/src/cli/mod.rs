//! The command-line face of the same binary: run by an operator (no CNI_COMMAND in the
//! environment) rather than by a container runtime. Every subcommand parses its arguments with
//! the one grammar of [`grammar`].

pub mod doctor;
pub mod grammar;
pub mod install;
pub mod npd;

use grammar::EX_USAGE;
use std::ffi::OsString;
use std::io::Write;

pub const USAGE: &str = "\
calico-preflight: a CNI chained plugin that checks Calico's pod wiring and the node's CNI setup.

As a CNI plugin it is run by the container runtime (CNI_COMMAND set); as a tool:

  calico-preflight install    [--help]   put the binary in the CNI bin dir(s) and our entry in Calico's conflist
  calico-preflight uninstall  [--help]   remove our entries (and, with --remove-binary, the binaries)
  calico-preflight doctor     [--help]   check this node and every Calico pod on it (read-only report)
  calico-preflight help [COMMAND]
  calico-preflight --version

Options take their value as `--flag VALUE` or `--flag=VALUE`; the CNI dirs are
--cni-conf-dir (also --conf-dir) and --cni-bin-dir on every subcommand that reads them.
Exit status: 64 for a usage error, on every subcommand; the others are in each --help.
";

/// Runs a subcommand; returns the process exit status.
pub fn main(args: Vec<OsString>) -> i32 {
    let mut args = args.into_iter();
    let Some(cmd) = args.next() else {
        eprint!("{USAGE}");
        return EX_USAGE;
    };
    let rest: Vec<OsString> = args.collect();
    match cmd.to_str().unwrap_or("") {
        "install" => install::install_main(rest),
        "uninstall" => install::uninstall_main(rest),
        "doctor" => doctor::main(rest),
        "--version" | "-V" | "version" => {
            println!("calico-preflight {}", env!("CARGO_PKG_VERSION"));
            0
        }
        "--help" | "-h" | "help" => help(&rest),
        _ => {
            eprintln!(
                "calico-preflight: unknown command {:?}\n\n{USAGE}",
                cmd.to_string_lossy()
            );
            EX_USAGE
        }
    }
}

/// `help [COMMAND]`: the same text as `COMMAND --help`.
fn help(rest: &[OsString]) -> i32 {
    let text = match rest.first().map(|c| c.to_str().unwrap_or("")) {
        None => USAGE,
        Some("install") if rest.len() == 1 => install::INSTALL_HELP,
        Some("uninstall") if rest.len() == 1 => install::UNINSTALL_HELP,
        Some("doctor") if rest.len() == 1 => doctor::HELP,
        Some(_) => {
            eprintln!(
                "calico-preflight help: unknown command {:?}\n\n{USAGE}",
                rest.iter()
                    .map(|a| a.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            return EX_USAGE;
        }
    };
    let _ = std::io::stdout().write_all(text.as_bytes());
    0
}
