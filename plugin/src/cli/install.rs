//! `install` / `uninstall` on the command line: parse, run the engine, print.

mod args;

use super::grammar::usage_error;
use crate::engine::install::{run_install, run_uninstall};
use args::Parsed;
use std::ffi::OsString;

pub use args::{INSTALL_HELP, UNINSTALL_HELP};

pub fn install_main(args: Vec<OsString>) -> i32 {
    let opts = match args::parse_install(args) {
        Ok(Parsed::Help) => {
            print!("{INSTALL_HELP}");
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

pub fn uninstall_main(args: Vec<OsString>) -> i32 {
    let opts = match args::parse_uninstall(args) {
        Ok(Parsed::Help) => {
            print!("{UNINSTALL_HELP}");
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
