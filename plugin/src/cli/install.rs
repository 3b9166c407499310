//! `install` / `uninstall`: placeholder, see issue 4.

pub fn install_main(_args: &[String]) -> i32 {
    eprintln!("calico-preflight install: not implemented yet");
    2
}

pub fn uninstall_main(_args: &[String]) -> i32 {
    eprintln!("calico-preflight uninstall: not implemented yet");
    2
}
