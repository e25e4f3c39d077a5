//! Simulated `kldstat(8)` and `kldload(8)`: the kernel modules loaded on the host, one
//! module name per line in `<root>/sim/kld` (the boot helper reads the same file). A fresh
//! host has none of the modules the simulator tracks loaded, so `pf` is not loaded until
//! something loads it (FreeBSD loads pf.ko at boot only through rc.d/pf's
//! `required_modules="pf"` when `pf_enable=YES`).
//!
//! Sources (freebsd/freebsd-src; the stable/14 copies read in sobomax/freebsd14_vendor at
//! 3f5fdd6c6beba3cb6da99b13280a684cf7a97be4, same code as freebsd-src 039ea811636f for -q/-m):
//! * sbin/kldstat/kldstat.c: options `dhi:m:n:qv`; `-m name` looks the module up with
//!   modfind(2): not found → `warn("can't find module %s")` (so `kldstat: can't find module
//!   pf: No such file or directory` on stderr) and exit 1, silent with `-q`; found → exit 0,
//!   silent with `-q`, else `Id  Refs Name` and `%3d %4d %s`; no option: the file list
//!   headed `Id Refs Address                Size Name`; a stray operand → usage, exit 1;
//! * sbin/kldload/kldload.c: options `nqv`; for each file kldload(2); EEXIST with `-n` is
//!   success (`-v` prints `%s is already loaded`), without it `kldload: can't load %s:
//!   module already loaded or in kernel`; other errors `kldload: can't load %s: <strerror>`;
//!   exit 1 if any file failed; `-v` prints `Loaded %s, id=%d`. No operand → usage, exit 1.

use std::fs;
use std::path::{Path, PathBuf};

use crate::dispatch::Out;

/// Modules a stock FreeBSD 14 amd64 install has under /boot/kernel that the simulated host
/// knows about (the ones warden or its tools load). Loading another name fails like a
/// missing file. Not an exhaustive list: a module absent here is simply unknown to the
/// simulator.
pub const AVAILABLE: [&str; 7] = [
    "pf",
    "pflog",
    "pfsync",
    "if_bridge",
    "if_epair",
    "ipfw",
    "vmm",
];

fn path(root: &Path) -> PathBuf {
    root.join("sim/kld")
}

/// The loaded modules, in load order.
pub fn loaded(root: &Path) -> Vec<String> {
    fs::read_to_string(path(root))
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// True when `name` is loaded (also what the simulated pfctl asks before opening /dev/pf).
pub fn is_loaded(root: &Path, name: &str) -> bool {
    loaded(root).iter().any(|m| m == name)
}

/// Loads a module (as kldload(2) does), without printing; false if it was loaded already.
/// Used by `kldload` and by the boot helper (rc.d's `required_modules`).
pub fn load(root: &Path, name: &str) -> std::io::Result<bool> {
    let mut list = loaded(root);
    if list.iter().any(|m| m == name) {
        return Ok(false);
    }
    list.push(name.to_string());
    let text: String = list.iter().map(|m| format!("{m}\n")).collect();
    fs::write(path(root), text)?;
    Ok(true)
}

/// `kldload foo.ko` and `kldload /boot/kernel/foo.ko` name module `foo`.
fn module_name(arg: &str) -> String {
    let base = arg.rsplit('/').next().unwrap_or(arg);
    base.strip_suffix(".ko").unwrap_or(base).to_string()
}

fn file_id(root: &Path, name: &str) -> usize {
    // The kernel itself is file id 1.
    loaded(root)
        .iter()
        .position(|m| m == name)
        .map(|i| i + 2)
        .unwrap_or(0)
}

pub fn kldstat(root: &Path, args: &[String]) -> Out {
    const USAGE: &str = "usage: kldstat [-d] [-h] [-q] [-v] [-i id] [-n filename]\n       kldstat [-d] [-q] [-m modname]\n";
    let mut quiet = false;
    let mut module: Option<String> = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "-q" => quiet = true,
            "-v" | "-d" | "-h" => {}
            "-m" => {
                i += 1;
                match args.get(i) {
                    Some(m) => module = Some(m.clone()),
                    None => return Out::err(1, USAGE),
                }
            }
            a if a.starts_with("-m") => module = Some(a[2..].to_string()),
            "-qm" => {
                quiet = true;
                i += 1;
                match args.get(i) {
                    Some(m) => module = Some(m.clone()),
                    None => return Out::err(1, USAGE),
                }
            }
            _ => return Out::err(1, USAGE),
        }
        i += 1;
    }
    if let Some(name) = module {
        if !is_loaded(root, &name) {
            if quiet {
                return Out::err(1, "");
            }
            return Out::err(
                1,
                format!("kldstat: can't find module {name}: No such file or directory\n"),
            );
        }
        if quiet {
            return Out::ok("");
        }
        return Out::ok(format!(
            "Id  Refs Name\n{:3} {:4} {name}\n",
            file_id(root, &name) + 100,
            1
        ));
    }
    let mut text = String::from("Id Refs Address                Size Name\n");
    text.push_str(" 1    1 0xffffffff80200000  1f4e5c8 kernel\n");
    for (n, m) in loaded(root).iter().enumerate() {
        text.push_str(&format!(
            "{:2} {:4} 0xffffffff8{:07x}    {:5x} {m}.ko\n",
            n + 2,
            1,
            0x2400000 + n * 0x40000,
            0x1000 + n * 0x100
        ));
    }
    Out::ok(text)
}

pub fn kldload(root: &Path, args: &[String]) -> Out {
    const USAGE: &str = "usage: kldload [-nqv] file ...\n";
    let (mut check_loaded, mut quiet, mut verbose) = (false, false, false);
    let mut files = Vec::new();
    let mut options_done = false;
    for a in args {
        if !options_done && a.starts_with('-') && a.len() > 1 {
            for c in a[1..].chars() {
                match c {
                    'n' => check_loaded = true,
                    'q' => {
                        quiet = true;
                        verbose = false
                    }
                    'v' => {
                        verbose = true;
                        quiet = false
                    }
                    _ => return Out::err(1, USAGE),
                }
            }
        } else {
            options_done = true;
            files.push(a.clone());
        }
    }
    let _ = quiet; // only path_check's warnings use it; the simulator has no module path
    if files.is_empty() {
        return Out::err(1, USAGE);
    }
    let mut out = Out::default();
    let mut errors = 0;
    for file in &files {
        let name = module_name(file);
        if !AVAILABLE.contains(&name.as_str()) {
            out.stderr.push_str(&format!(
                "kldload: can't load {file}: No such file or directory\n"
            ));
            errors += 1;
            continue;
        }
        match load(root, &name) {
            Ok(true) => {
                if verbose {
                    out.stdout
                        .push_str(&format!("Loaded {file}, id={}\n", file_id(root, &name)));
                }
            }
            Ok(false) if check_loaded => {
                if verbose {
                    out.stdout.push_str(&format!("{file} is already loaded\n"));
                }
            }
            Ok(false) => {
                out.stderr.push_str(&format!(
                    "kldload: can't load {file}: module already loaded or in kernel\n"
                ));
                errors += 1;
            }
            Err(e) => {
                out.stderr
                    .push_str(&format!("kldload: can't load {file}: {e}\n"));
                errors += 1;
            }
        }
    }
    if errors > 0 {
        out.rc = 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn fresh_host_then_load() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("sim")).unwrap();
        let out = kldstat(root, &args("-q -m pf"));
        assert_eq!(
            (out.rc, out.stdout.as_str(), out.stderr.as_str()),
            (1, "", "")
        );
        let out = kldstat(root, &args("-m pf"));
        assert_eq!(
            (out.rc, out.stderr.as_str()),
            (
                1,
                "kldstat: can't find module pf: No such file or directory\n"
            )
        );
        assert_eq!(kldload(root, &args("-n pf")).rc, 0);
        assert_eq!(kldstat(root, &args("-q -m pf")).rc, 0);
        assert!(kldstat(root, &args("-m pf"))
            .stdout
            .starts_with("Id  Refs Name\n"));
        // Loading again: fine with -n, an error without.
        assert_eq!(kldload(root, &args("-n pf")), Out::default());
        let again = kldload(root, &args("pf"));
        assert_eq!(
            (again.rc, again.stderr.as_str()),
            (
                1,
                "kldload: can't load pf: module already loaded or in kernel\n"
            )
        );
        let v = kldload(root, &args("-nv pf.ko"));
        assert_eq!(v.stdout, "pf.ko is already loaded\n");
        let missing = kldload(root, &args("nosuch"));
        assert_eq!(
            (missing.rc, missing.stderr.as_str()),
            (1, "kldload: can't load nosuch: No such file or directory\n")
        );
        assert_eq!(kldload(root, &[]).rc, 1);
        assert_eq!(loaded(root), ["pf"]);
    }
}
