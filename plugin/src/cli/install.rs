//! `install` / `uninstall` on the command line: parse, run the engine, print.

mod args;

use crate::engine::install::{run_install, run_uninstall};
use args::Parsed;

fn usage_error(cmd: &str, e: &str) -> i32 {
    eprintln!("calico-preflight {cmd}: {e}\n  to fix: see `calico-preflight {cmd} --help`");
    1
}

pub fn install_main(args: &[String]) -> i32 {
    let opts = match args::parse_install(args) {
        Ok(Parsed::Help) => {
            print!("{}", args::INSTALL_HELP);
            return 0;
        }
        Ok(Parsed::Run(o)) => o,
        Err(e) => return usage_error("install", &e),
    };
    match run_install(&opts) {
        Ok(()) => 0,
        Err(f) => {
            f.print("install");
            1
        }
    }
}

pub fn uninstall_main(args: &[String]) -> i32 {
    let opts = match args::parse_uninstall(args) {
        Ok(Parsed::Help) => {
            print!("{}", args::UNINSTALL_HELP);
            return 0;
        }
        Ok(Parsed::Run(o)) => o,
        Err(e) => return usage_error("uninstall", &e),
    };
    match run_uninstall(&opts) {
        Ok(()) => 0,
        Err(f) => {
            f.print("uninstall");
            1
        }
    }
}
