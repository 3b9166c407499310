use std::io::Write;

fn main() {
    // A panic must still leave the runtime a CNI error, never a bare crash.
    std::panic::set_hook(Box::new(|info| {
        let e = calico_preflight::cni::CniError::new(
            calico_preflight::cni::ErrorCode::Internal,
            "calico-preflight: internal error (this is a bug, please report it)",
            info.to_string(),
        );
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", e.to_json(calico_preflight::cni::version::LATEST));
        let _ = out.flush();
        std::process::exit(1);
    }));
    // Runtimes always set CNI_COMMAND; without it and with arguments, a person is at the keyboard.
    // args_os: a path argument need not be UTF-8.
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if std::env::var_os("CNI_COMMAND").is_none() && !args.is_empty() {
        std::process::exit(calico_preflight::cli::main(args));
    }
    let out = calico_preflight::app::run(|k| std::env::var(k).ok(), std::io::stdin().lock());
    if let Some(s) = out.stdout {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{s}");
        let _ = stdout.flush();
    }
    std::process::exit(out.status);
}
