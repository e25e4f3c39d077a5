//! Multi-call dispatch on the basename of argv[0], the call log and fault injection.
//!
//! * Every tool invocation is appended to `<root>/sim/calls.log` as one JSON line
//!   (`{"tool": …, "argv": […], "rc": …}`), so tests can count calls and prove that check
//!   mode ran no mutating command.
//! * `<root>/sim/faults` (one rule per line: `tool<TAB>substring<TAB>rc<TAB>stderr text`,
//!   optionally `<TAB>times`) makes a matching invocation skip its real work, print the text
//!   on stderr and exit with `rc` — `rc` 0 simulates a tool that claims success but did
//!   nothing. A rule with `times` fires that many times, then disappears. An `rc` of `hang`
//!   makes the call write `<root>/sim/hanging` (its argv) and wait until `<root>/sim/release`
//!   exists (at most 60 s), then fail having done nothing: a tool that is slow while its
//!   caller is killed.
//!
//! `freebsd-sim boot <root>` reboots a simulated host (see the boot module).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde_json::json;

use crate::{bastille, boot, ifconfig, init, kld, pfctl, service, sysctl, sysrc, vm};

/// What a simulated tool printed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Out {
    pub stdout: String,
    pub stderr: String,
    pub rc: i32,
}

impl Out {
    pub fn ok(stdout: impl Into<String>) -> Out {
        Out {
            stdout: stdout.into(),
            ..Out::default()
        }
    }
    pub fn err(rc: i32, stderr: impl Into<String>) -> Out {
        Out {
            stderr: stderr.into(),
            rc,
            ..Out::default()
        }
    }
    /// Appends another tool output (several operands in one invocation).
    pub fn then(mut self, other: Out) -> Out {
        self.stdout.push_str(&other.stdout);
        self.stderr.push_str(&other.stderr);
        if other.rc != 0 {
            self.rc = other.rc;
        }
        self
    }
}

/// Exit code for misuse of the simulator itself (sysexits EX_SOFTWARE), never a FreeBSD code.
pub const SIM_FAILURE: i32 = 70;

/// Environment variable naming the simulated host's root directory.
pub const ROOT_VAR: &str = "WARDEN_SIM_ROOT";

pub fn main(argv: &[String]) -> i32 {
    let tool = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let args = argv.get(1..).unwrap_or_default();
    if tool == "freebsd-sim" {
        return admin(args);
    }
    let Some(root) = std::env::var_os(ROOT_VAR).map(PathBuf::from) else {
        eprintln!("freebsd-sim: {ROOT_VAR} is not set; cannot simulate `{tool}`");
        return SIM_FAILURE;
    };
    let out = match fault(&root, &tool, args) {
        Some(out) => out,
        None => run_tool(&root, &tool, args),
    };
    log_call(&root, &tool, args, out.rc);
    print!("{}", out.stdout);
    eprint!("{}", out.stderr);
    let _ = std::io::stdout().flush();
    out.rc
}

/// Runs one simulated tool against the host under `root`: what its link does, minus fault
/// rules and the call log. The boot sequence drives the tools through this, so it always
/// follows their current behaviour.
pub fn run_tool(root: &Path, tool: &str, args: &[String]) -> Out {
    match tool {
        "ifconfig" => ifconfig::run(root, args),
        "sysrc" => sysrc::run(root, args),
        "service" => service::run(root, args),
        "pfctl" => pfctl::run(root, args),
        "sysctl" => sysctl::run(root, args),
        "bastille" => bastille::run(root, args),
        "jls" => bastille::jls(root, args),
        "jexec" => bastille::jexec(root, args),
        "pkg" => bastille::host_pkg(args),
        "kldstat" => kld::kldstat(root, args),
        "kldload" => kld::kldload(root, args),
        "vm" => vm::run(root, args),
        "makefs" => vm::makefs(args),
        other => Out::err(
            SIM_FAILURE,
            format!("freebsd-sim: no simulated tool named `{other}`\n"),
        ),
    }
}

/// [`run_tool`], logged to the call log like an invocation through a link.
pub fn run_logged(root: &Path, tool: &str, args: &[String]) -> Out {
    let out = run_tool(root, tool, args);
    log_call(root, tool, args, out.rc);
    out
}

fn admin(args: &[String]) -> i32 {
    match args.first().map(String::as_str) {
        Some("init") if args.len() >= 2 => {
            match init::init_host(Path::new(&args[1]), args.get(2).map(String::as_str)) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("freebsd-sim: {e:#}");
                    SIM_FAILURE
                }
            }
        }
        Some("links") if args.len() == 2 => match init::make_links(Path::new(&args[1])) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("freebsd-sim: {e:#}");
                SIM_FAILURE
            }
        },
        Some("boot") if args.len() == 2 => match boot::boot(Path::new(&args[1])) {
            Ok(console) => {
                print!("{console}");
                0
            }
            Err(e) => {
                eprintln!("freebsd-sim: boot: {e:#}");
                SIM_FAILURE
            }
        },
        _ => {
            eprintln!("usage: freebsd-sim init <root> [hostname] | freebsd-sim links <bin-dir> | freebsd-sim boot <root>");
            SIM_FAILURE
        }
    }
}

fn fault(root: &Path, tool: &str, args: &[String]) -> Option<Out> {
    let path = root.join("sim/faults");
    if !path.exists() {
        return None;
    }
    // Rules with a count are rewritten as they fire; serialize concurrent calls.
    let _lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(root.join("sim/faults.lock"))
        .ok()
        .and_then(|f| Flock::lock(f, FlockArg::LockExclusive).ok());
    let rules = std::fs::read_to_string(&path).ok()?;
    let joined = args.join(" ");
    let mut fired = None;
    let mut hang = false;
    let mut kept = Vec::new();
    for line in rules.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let matches =
            fired.is_none() && fields.len() >= 3 && fields[0] == tool && joined.contains(fields[1]);
        if !matches {
            kept.push(line.to_string());
            continue;
        }
        let message = fields.get(3).copied().unwrap_or("");
        hang = fields[2].trim() == "hang";
        fired = Some(Out {
            stdout: String::new(),
            stderr: if message.is_empty() {
                String::new()
            } else {
                format!("{message}\n")
            },
            rc: fields[2].trim().parse().unwrap_or(1),
        });
        // Optional fifth field: how many more times the rule fires.
        match fields.get(4).and_then(|n| n.trim().parse::<u32>().ok()) {
            Some(n) if n > 1 => {
                let mut f: Vec<String> = fields[..4].iter().map(|s| s.to_string()).collect();
                f.push((n - 1).to_string());
                kept.push(f.join("\t"));
            }
            Some(_) => {}
            None => kept.push(line.to_string()),
        }
    }
    if fired.is_some() {
        let text: String = kept.iter().map(|l| format!("{l}\n")).collect();
        let _ = std::fs::write(&path, text);
    }
    drop(_lock);
    if hang {
        let _ = std::fs::write(root.join("sim/hanging"), format!("{tool} {joined}\n"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !root.join("sim/release").exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    fired
}

fn log_call(root: &Path, tool: &str, args: &[String], rc: i32) {
    let line = json!({"tool": tool, "argv": args, "rc": rc}).to_string() + "\n";
    // One write(2) on an O_APPEND file: lines from concurrent calls never interleave.
    if let Ok(mut file) = OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.join("sim/calls.log"))
    {
        let _ = file.write_all(line.as_bytes());
    }
}
