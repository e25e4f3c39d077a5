//! Simulated `service(8)` (usr.sbin/service/service.sh): finds the script in /etc/rc.d, then
//! in each `local_startup` directory, and runs it the way the real tool does —
//! `env -i HOME=/ PATH=/sbin:/bin:/usr/sbin:/usr/bin <script> <verb>` — so the generated
//! script really runs, against the rc.subr stand-in, with the real tmux.
//! Not found or not executable: `X does not exist in /etc/rc.d or the local startup` /
//! `directories (/usr/local/etc/rc.d), or is not executable` on stdout, exit 1.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::dispatch::{Out, SIM_FAILURE};

const LOCAL_STARTUP: &str = "/usr/local/etc/rc.d";

fn executable(path: &Path) -> bool {
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn script_dirs(root: &Path) -> Vec<(PathBuf, &'static str)> {
    vec![
        (root.join("etc/rc.d"), "/etc/rc.d"),
        (
            root.join(LOCAL_STARTUP.trim_start_matches('/')),
            LOCAL_STARTUP,
        ),
    ]
}

pub fn run(root: &Path, args: &[String]) -> Out {
    match args.first().map(String::as_str) {
        None => Out::err(1, "usage: service [-j <jail name or id>] [-rv] <rc.d script> start|stop|etc.\n       or: service [-j <jail name or id>] -e\n       or: service [-j <jail name or id>] -R\n       or: service [-j <jail name or id>] -l | -r\n"),
        Some("-l") => list(root),
        Some("-e") => enabled(root),
        Some(flag) if flag.starts_with('-') => {
            Out::err(SIM_FAILURE, format!("freebsd-sim: service {flag} is not simulated\n"))
        }
        Some(name) => {
            let Some(script) = script_dirs(root)
                .into_iter()
                .map(|(dir, _)| dir.join(name))
                .find(|p| executable(p))
            else {
                return Out {
                    stdout: format!("{name} does not exist in /etc/rc.d or the local startup\ndirectories ({LOCAL_STARTUP}), or is not executable\n"),
                    stderr: String::new(),
                    rc: 1,
                };
            };
            run_script(&script, &args[1..])
        }
    }
}

fn run_script(script: &Path, args: &[String]) -> Out {
    let result = Command::new(script)
        .args(args)
        .env_clear()
        .env("HOME", "/")
        .env("PATH", "/sbin:/bin:/usr/sbin:/usr/bin")
        .stdin(Stdio::null())
        .output();
    match result {
        Ok(out) => Out {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            rc: out.status.code().unwrap_or(1),
        },
        Err(e) => Out::err(1, format!("service: {}: {e}\n", script.display())),
    }
}

fn list(root: &Path) -> Out {
    let mut out = String::new();
    for (dir, _) in script_dirs(root) {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        for n in names {
            out.push_str(&n);
            out.push('\n');
        }
    }
    Out::ok(out)
}

/// `service -e`: scripts whose `rcvar` is enabled, by their FreeBSD paths (alphabetical
/// here; the real tool uses rcorder order).
fn enabled(root: &Path) -> Out {
    let mut out = String::new();
    for (dir, freebsd_dir) in script_dirs(root) {
        let mut scripts: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| executable(p))
                    .collect()
            })
            .unwrap_or_default();
        scripts.sort();
        for script in scripts {
            let status = Command::new(&script)
                .arg("enabled")
                .env_clear()
                .env("HOME", "/")
                .env("PATH", "/sbin:/bin:/usr/sbin:/usr/bin")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if status.map(|s| s.success()).unwrap_or(false) {
                if let Some(name) = script.file_name() {
                    out.push_str(&format!("{freebsd_dir}/{}\n", name.to_string_lossy()));
                }
            }
        }
    }
    Out::ok(out)
}
