//! The simulator's multi-call binary: invoked through links named `ifconfig`, `sysrc`,
//! `service`, `pfctl`, `sysctl`, `bastille` and `jls`, or directly as `freebsd-sim init|links …`.
fn main() {
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    std::process::exit(warden_sim::dispatch::main(&argv));
}
