//! The one argument grammar of every subcommand, on `lexopt`: `--flag value` and `--flag=value`
//! alike, `-h`, no positional arguments, and usage errors that exit 64 (EX_USAGE, sysexits.h)
//! so that a script can tell "you called me wrong" from "the node is broken".
//!
//! lexopt was picked over clap and pico-args for binary cost (no dependencies, a few KiB in a
//! binary exec'd per pod start) while it still tells a missing value from an unexpected one.

use std::ffi::OsString;
use std::path::PathBuf;

/// sysexits.h EX_USAGE: the command was used incorrectly.
pub const EX_USAGE: i32 = 64;

/// What a subcommand's parser returns.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed<T> {
    Help,
    Run(T),
}

/// The arguments of one subcommand, handed out flag by flag.
pub struct Args {
    p: lexopt::Parser,
    /// The flag last returned, for messages about its value.
    flag: String,
}

impl Args {
    pub fn new<I: IntoIterator<Item = OsString>>(args: I) -> Args {
        Args {
            p: lexopt::Parser::from_args(args),
            flag: String::new(),
        }
    }

    /// The next flag as written (`--timeout-ms`, `-h`), with an inline `=value` kept for
    /// [`Args::value`]; `None` at the end.
    pub fn next_flag(&mut self) -> Result<Option<String>, String> {
        let arg = match self.p.next() {
            Ok(None) => return Ok(None),
            Ok(Some(a)) => match a {
                lexopt::Arg::Long(l) => format!("--{l}"),
                lexopt::Arg::Short(c) => format!("-{c}"),
                lexopt::Arg::Value(v) => {
                    return Err(format!(
                        "unexpected argument {:?} (options start with --)",
                        v.to_string_lossy()
                    ))
                }
            },
            Err(lexopt::Error::UnexpectedValue { option, value }) => {
                return Err(format!(
                    "{option} takes no value, found {:?}",
                    value.to_string_lossy()
                ))
            }
            Err(e) => return Err(e.to_string()),
        };
        self.flag = arg.clone();
        Ok(Some(arg))
    }

    /// The value of the flag last returned (`--flag value` or `--flag=value`).
    pub fn value(&mut self) -> Result<OsString, String> {
        self.p
            .value()
            .map_err(|_| format!("{} needs a value", self.flag))
    }

    pub fn string(&mut self) -> Result<String, String> {
        let v = self.value()?;
        v.into_string()
            .map_err(|v| format!("{} needs UTF-8 text, found {v:?}", self.flag))
    }

    /// A path (any bytes, as the kernel takes them), never empty.
    pub fn path(&mut self) -> Result<PathBuf, String> {
        let v = self.value()?;
        if v.is_empty() {
            return Err(format!("{} needs a path, found an empty string", self.flag));
        }
        Ok(PathBuf::from(v))
    }

    /// The error for a flag this subcommand does not know.
    pub fn unknown(&self) -> String {
        format!("unknown option {:?}", self.flag)
    }
}

/// Prints a usage error the same way for every subcommand and returns [`EX_USAGE`].
pub fn usage_error(cmd: &str, e: &str) -> i32 {
    eprintln!("calico-preflight {cmd}: {e}\n  to fix: see `calico-preflight {cmd} --help`");
    EX_USAGE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Args {
        Args::new(a.iter().map(OsString::from))
    }

    #[test]
    fn both_value_spellings_and_errors() {
        let mut a = args(&["--x", "1", "--y=2", "-h", "--z"]);
        assert_eq!(a.next_flag().unwrap().as_deref(), Some("--x"));
        assert_eq!(a.string().unwrap(), "1");
        assert_eq!(a.next_flag().unwrap().as_deref(), Some("--y"));
        assert_eq!(a.string().unwrap(), "2");
        assert_eq!(a.next_flag().unwrap().as_deref(), Some("-h"));
        assert_eq!(a.next_flag().unwrap().as_deref(), Some("--z"));
        assert_eq!(a.value().unwrap_err(), "--z needs a value");
        assert_eq!(a.next_flag().unwrap(), None);

        let mut a = args(&["--flag=v", "--next"]);
        a.next_flag().unwrap();
        let e = a.next_flag().unwrap_err();
        assert!(e.contains("--flag takes no value"), "{e}");

        let mut a = args(&["stray"]);
        assert!(a.next_flag().unwrap_err().contains("unexpected argument"));

        let mut a = args(&["--p="]);
        a.next_flag().unwrap();
        assert!(a.path().unwrap_err().contains("empty string"));
    }
}
