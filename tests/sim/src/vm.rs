//! Simulated vm-bhyve (`vm`, freebsd/vm-bhyve 1.6 / 1.7 / 1.8-devel) and `makefs`, with the
//! guests it starts. Behaviours follow vm-bhyve's sources, recorded with tag and file in
//! `docs/vm-bhyve-facts.md`; the version is `<root>/sim/vm-bhyve.version` (`1.6-devel`,
//! `1.7.0` … `1.7.5`, `1.8-devel`; default `1.7.5`).
//!
//! * Files are vm-bhyve's: `$vm_dir` from rc.conf, `.config/system.conf` (datastores,
//!   switches), `.templates/*.conf`, `<ds>/<name>/<name>.conf` edited with (simulated)
//!   `sysrc -inqf` like `config::set`, `.cloud-init/{meta-data,user-data,network-config}`,
//!   `seed.iso`, `run.lock`, `vm-bhyve.log` with `vm::run`'s lines.
//! * `vm start` forks `vm _run <name>` into the background and returns, as `core::__start`
//!   does; `_run` is the guest's bhyve process: it holds `run.lock`, records its pid in
//!   `<root>/sim/vm/<name>.pid` (what `pgrep "bhyve: name"` would find: `vm list` says
//!   `Bootloader (pid)`, then `Running (pid)`), boots after `<root>/sim/vm-boot-ms` (default
//!   300) and runs until `vm stop` (ACPI: `<name>.acpi`, honoured after
//!   `<root>/sim/vm-shutdown-ms`, default 200) or `vm poweroff` (`<name>.poweroff`), or until
//!   the host root disappears. `-m lots`/`-c 0` are stored by `vm create` and make every start
//!   fail in the loader/bhyve, logged as vm-bhyve logs it; `vm start` still exits 0.
//! * A started guest is a simulated FreeBSD host of its own, rooted at
//!   `<ds>/<name>/sim-guest` (created by `freebsd-sim init` logic at first boot, so `vm
//!   destroy` removes it with the guest). On that first boot the seed is applied the way
//!   nuageinit does (freebsd-src libexec/nuageinit `nuageinit`, `nuage.lua`): hostname into
//!   `/etc/rc.conf.d/hostname`, users with keys, doas and sudo rules, network-config into
//!   `/etc/rc.conf.d/network` and `routing`; at every boot "netif" gives `vtnet0` (MAC from
//!   `network0_mac`, renamed by `ifconfig_vtnet0_name`) the configured address, and the
//!   guest's sshd answers with an OpenSSH banner on `<address>:<port>` (port from
//!   `<root>/sim/vm-ssh-port`, default 22) unless the guest's name is listed in
//!   `<root>/sim/vm-unreachable` (a guest that boots but never answers).
//! * Simplifications, all in the simulator only: no root check, no ZFS, disks are small files
//!   recording their size and image (not sparse images), switches are only recorded in
//!   `system.conf`, `seed.iso` is a JSON record of the seed directory with its label.

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::dispatch::{Out, ROOT_VAR, SIM_FAILURE};
use crate::ifconfig::{IfState, Inet};
use crate::yaml::{self, Yaml};
use crate::{init, sysrc};

/// `$0` as vm-bhyve's messages print it.
const PROG: &str = "/usr/local/sbin/vm";
pub const DEFAULT_VERSION: &str = "1.7.5";
/// The banner the simulated guest's sshd sends (FreeBSD 14.2's OpenSSH).
const SSH_BANNER: &[u8] = b"SSH-2.0-OpenSSH_9.7 FreeBSD-20240806\r\n";

/// A vm-bhyve version, `None` patch for `-devel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version(u32, u32, Option<u32>);

impl Version {
    fn parse(text: &str) -> Version {
        let text = text.trim();
        let (nums, devel) = match text.strip_suffix("-devel") {
            Some(n) => (n, true),
            None => (text, false),
        };
        let p: Vec<u32> = nums.split('.').map(|x| x.parse().unwrap_or(0)).collect();
        let get = |i: usize| p.get(i).copied().unwrap_or(0);
        Version(get(0), get(1), (!devel).then(|| get(2)))
    }
    fn at_least(&self, a: u32, b: u32, c: u32) -> bool {
        (self.0, self.1, self.2.unwrap_or(u32::MAX)) >= (a, b, c)
    }
    fn text(&self) -> String {
        match self.2 {
            Some(p) => format!("{}.{}.{p}", self.0, self.1),
            None => format!("{}.{}-devel", self.0, self.1),
        }
    }
}

fn err(msg: impl AsRef<str>) -> Out {
    Out::err(1, format!("{PROG}: ERROR: {}\n", msg.as_ref()))
}

fn warn(msg: impl AsRef<str>) -> String {
    format!("{PROG}: WARNING: {}\n", msg.as_ref())
}

/// `util::usage` (v1.7.2 lib/vm-util): version and usage on stdout, exit 1.
fn usage(v: Version) -> Out {
    Out {
        stdout: format!(
            "vm-bhyve: Bhyve virtual machine management v{}\nUsage: vm ...\n    version\n    init\n    list [-r]\n    create [-d datastore] [-t template] [-s size] [-m memory] [-c vCPUs] [-i vm-image] [-C [-k pubkey-file | -u user-data-file] [-n \"netconfig\"]] <name>\n    start [-fi] <name> [...]\n    stop <name> [...]\n    poweroff [-f] <name>\n    destroy [-f] <name>\n",
            v.text()
        ),
        stderr: String::new(),
        rc: 1,
    }
}

/// The host as vm-bhyve sees it after `lib/vm-base`.
struct Host {
    root: PathBuf,
    v: Version,
    vm_dir: PathBuf,
    hostname: String,
}

/// `config::load` + `config::get` (v1.7.2 lib/vm-config): first assignment wins, `#` ends the
/// value, `"` deleted, lines must start with `[a-z]`.
fn conf_get(text: &str, key: &str) -> Option<String> {
    text.lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_lowercase()))
        .filter_map(|l| {
            let kept = l
                .split('#')
                .next()
                .unwrap_or_default()
                .trim_end_matches(' ');
            let kept: String = kept.chars().filter(|c| *c != '"').collect();
            let (k, v) = kept.split_once('=')?;
            (k == key).then(|| v.to_string())
        })
        .next()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// `config::set`: a missing trailing newline is added, then `sysrc -inqf <file> key=value`.
fn conf_set(root: &Path, file: &Path, key: &str, value: &str) {
    let text = read(file);
    if !text.is_empty() && !text.ends_with('\n') {
        let _ = fs::write(file, format!("{text}\n"));
    }
    sysrc_f(root, file, "-inqf", &format!("{key}={value}"));
}

fn sysrc_f(root: &Path, file: &Path, flags: &str, operand: &str) {
    let args = [
        flags.to_string(),
        file.to_string_lossy().into_owned(),
        operand.to_string(),
    ];
    let _ = sysrc::run(root, &args);
}

fn rc_value(root: &Path, name: &str) -> Option<String> {
    sysrc::eval(
        &root.join("etc/defaults/rc.conf"),
        &[root.join("etc/rc.conf"), root.join("etc/rc.conf.local")],
        name,
    )
}

fn is_yes(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "yes" | "true" | "on" | "1")
}

/// `cmd::find` (v1.7.2 lib/vm-cmd): an exact name, or the one command it is a prefix of.
fn find_cmd<'a>(user: &str, valid: &[&'a str]) -> Result<Option<&'a str>, Out> {
    if let Some(exact) = valid.iter().find(|c| **c == user) {
        return Ok(Some(exact));
    }
    let matches: Vec<&&str> = valid
        .iter()
        .filter(|c| !user.is_empty() && c.to_lowercase().starts_with(&user.to_lowercase()))
        .collect();
    match matches.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        _ => Err(err(format!("ambiguous command '{user}'"))),
    }
}

const COMMANDS: &[&str] = &[
    "init",
    "switch",
    "datastore",
    "image",
    "get",
    "set",
    "list",
    "create",
    "destroy",
    "rename",
    "install",
    "start",
    "stop",
    "restart",
    "add",
    "reset",
    "poweroff",
    "startall",
    "stopall",
    "console",
    "iso",
    "img",
    "configure",
    "passthru",
    "_run",
    "info",
    "clone",
    "snapshot",
    "rollback",
    "migrate",
    "version",
    "usage",
    "edit",
    "suspend",
    "suspendall",
    "discard",
];

fn load_version(root: &Path) -> Version {
    let text = fs::read_to_string(root.join("sim/vm-bhyve.version"))
        .unwrap_or_else(|_| DEFAULT_VERSION.to_string());
    Version::parse(&text)
}

/// Runs `vm args…` on the host under `root`.
pub fn run(root: &Path, args: &[String]) -> Out {
    let v = load_version(root);
    let Some(first) = args.first() else {
        return err("no command specified");
    };
    let cmd = match find_cmd(first, COMMANDS) {
        Ok(Some(c)) => c,
        Ok(None) => return usage(v),
        Err(out) => return out,
    };
    // cmd::parse_info: no root, rc.conf or vm_dir needed.
    match cmd {
        "version" => {
            return Out::ok(format!(
                "vm-bhyve: Bhyve virtual machine management v{}\n",
                v.text()
            ))
        }
        "usage" => return usage(v),
        _ => {}
    }
    // lib/vm-base
    if !rc_value(root, "vm_enable").is_some_and(|e| is_yes(&e)) {
        return err("$vm_enable is not enabled in /etc/rc.conf!");
    }
    let vm_dir = rc_value(root, "vm_dir").unwrap_or_default();
    if vm_dir.starts_with("zfs:") {
        return err("ZFS support requested but ZFS not available");
    }
    let vm_dir = PathBuf::from(vm_dir);
    if vm_dir.as_os_str().is_empty() || !vm_dir.is_dir() {
        return err("$vm_dir has not been configured or is not a valid directory");
    }
    for d in [".config", ".templates", ".iso", ".img"] {
        let _ = fs::create_dir_all(vm_dir.join(d));
    }
    let null_iso = vm_dir.join(".config/null.iso");
    if !null_iso.exists() {
        let _ = fs::write(null_iso, "");
    }
    let host = Host {
        root: root.to_owned(),
        v,
        vm_dir,
        hostname: rc_value(root, "hostname").unwrap_or_else(|| "sim".into()),
    };
    let rest = &args[1..];
    match cmd {
        "init" => host.init(),
        "list" => host.list(rest),
        "create" => host.create(rest),
        "start" => host.start(rest, None),
        "install" => host.install(rest),
        "stop" => host.stop(rest),
        "poweroff" => host.poweroff(rest),
        "destroy" => host.destroy(rest),
        "datastore" => host.datastore(rest),
        "switch" => host.switch(rest),
        "img" => host.file_list(".img", "img"),
        "iso" => host.file_list(".iso", "iso"),
        "_run" => host.guest_run(rest),
        "configure" | "edit" => Out::err(
            SIM_FAILURE,
            "freebsd-sim: vm configure runs $EDITOR on the guest's files; not simulated\n",
        ),
        other => Out::err(
            SIM_FAILURE,
            format!("freebsd-sim: vm {other} is not simulated\n"),
        ),
    }
}

/// `cmd::parse_args` (getopts `fitv`): leading flags only, so `-f` after the name is an operand.
fn leading_flags(args: &[String]) -> (String, &[String]) {
    let mut flags = String::new();
    let mut i = 0;
    while let Some(a) = args.get(i) {
        match a.strip_prefix('-') {
            Some(f) if !f.is_empty() && a != "--" => flags.push_str(f),
            _ if a == "--" => {
                i += 1;
                break;
            }
            _ => break,
        }
        i += 1;
    }
    (flags, &args[i..])
}

/// A guest's process, as `pgrep "bhyve: name"` / `"bhyveload|grub-bhyve"` would find it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Proc {
    Loader(u32),
    Bhyve(u32),
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    let ok = fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_ok();
    if !ok {
        let seed = std::process::id() as u64
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (seed >> ((i % 8) * 8)) as u8 ^ (i as u8).wrapping_mul(31);
        }
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn uuidgen() -> String {
    let h = random_hex(16);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn now_iso() -> String {
    // `date -Iseconds` in UTC (the simulated hosts have no time zone).
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}+00:00",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// expand_number(3) as bhyve's `vm_parse_memsize` and truncate(1) use it.
fn size_ok(s: &str) -> bool {
    let digits = s.trim_end_matches(|c: char| "kKmMgGtTpPeE".contains(c));
    s.len() - digits.len() <= 1
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.bytes().any(|b| b != b'0')
}

/// `util::check_name` on FreeBSD 13+.
fn name_ok(name: &str) -> bool {
    let b = name.as_bytes();
    (2..=231).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b".-_".contains(c))
}

/// FreeBSD column(1) `-t -s^` (usr.bin/column/column.c `maketbl`): fields split with
/// wcstok (empty fields vanish), every column but the last padded to its widest cell + 2.
pub fn column(rows: &[String]) -> String {
    let rows: Vec<Vec<&str>> = rows
        .iter()
        .map(|r| r.split('^').filter(|c| !c.is_empty()).collect())
        .collect();
    let mut widths: Vec<usize> = Vec::new();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            let w = c.chars().count();
            if widths.len() <= i {
                widths.push(w);
            } else if widths[i] < w {
                widths[i] = w;
            }
        }
    }
    let mut out = String::new();
    for r in &rows {
        if r.is_empty() {
            continue;
        }
        for (i, c) in r.iter().enumerate() {
            out.push_str(c);
            if i + 1 < r.len() {
                out.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
            }
        }
        out.push('\n');
    }
    out
}

impl Host {
    fn system_conf(&self) -> PathBuf {
        self.vm_dir.join(".config/system.conf")
    }

    /// `datastore::load` + `datastore::get`: (name, path) of every store holding guests,
    /// default first.
    fn datastores(&self) -> Vec<(String, PathBuf, &'static str)> {
        let sys = read(&self.system_conf());
        let mut out = vec![("default".to_string(), self.vm_dir.clone(), "directory")];
        for ds in conf_get(&sys, "datastore_list")
            .unwrap_or_default()
            .split_whitespace()
        {
            let Some(spec) = conf_get(&sys, &format!("path_{ds}")) else {
                continue;
            };
            let (kind, path) = match spec.split_once(':') {
                Some(("iso", p)) => ("iso", p.to_string()),
                Some(("img", p)) => ("img", p.to_string()),
                Some(("zfs", _)) => continue,
                _ => ("directory", spec.clone()),
            };
            out.push((ds.to_string(), PathBuf::from(path), kind));
        }
        out
    }

    /// `datastore::get_guest`: the first store holding `<name>/<name>.conf`.
    fn guest(&self, name: &str) -> Option<(String, PathBuf)> {
        self.datastores()
            .into_iter()
            .filter(|(_, _, kind)| *kind == "directory")
            .find(|(_, path, _)| path.join(name).join(format!("{name}.conf")).is_file())
            .map(|(ds, path, _)| (ds, path.join(name)))
    }

    fn proc_file(&self, name: &str, ext: &str) -> PathBuf {
        self.root.join("sim/vm").join(format!("{name}.{ext}"))
    }

    /// The guest's bhyve/loader process, if one runs.
    fn proc(&self, name: &str) -> Option<Proc> {
        let text = read(&self.proc_file(name, "pid"));
        let mut words = text.split_whitespace();
        let pid: u32 = words.next()?.parse().ok()?;
        let phase = words.next().unwrap_or("bhyve");
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok();
        if !alive {
            return None;
        }
        Some(if phase == "bootloader" {
            Proc::Loader(pid)
        } else {
            Proc::Bhyve(pid)
        })
    }

    /// `vm::has_saved_state` (1.7+): `<name>.save*` in the guest directory.
    fn has_saved_state(&self, dir: &Path, name: &str) -> bool {
        self.v.at_least(1, 7, 0)
            && fs::read_dir(dir)
                .map(|entries| {
                    entries.flatten().any(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .starts_with(&format!("{name}.save"))
                    })
                })
                .unwrap_or(false)
    }

    /// STATE as `vm::running_check` and `core::list` print it.
    fn state(&self, dir: &Path, name: &str) -> String {
        match self.proc(name) {
            Some(Proc::Bhyve(pid)) => return format!("Running ({pid})"),
            Some(Proc::Loader(pid)) => return format!("Bootloader ({pid})"),
            None => {}
        }
        let run_lock = dir.join("run.lock");
        if run_lock.exists() {
            let host = read(&run_lock)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string();
            return format!("Locked ({host})");
        }
        if self.has_saved_state(dir, name) {
            "Suspended".into()
        } else {
            "Stopped".into()
        }
    }

    /// `vm init`: `util::setup` copies the example template if `.templates/default.conf` is
    /// missing (v1.7.2 lib/vm-util); switches are only recorded in this simulator.
    fn init(&self) -> Out {
        let example = self
            .root
            .join("usr/local/share/examples/vm-bhyve/default.conf");
        let target = self.vm_dir.join(".templates/default.conf");
        if example.is_file() && !target.exists() {
            let _ = fs::copy(example, target);
        }
        Out::ok("")
    }

    /// `vm list [-r]` (core::list, per version).
    fn list(&self, args: &[String]) -> Out {
        let running_only = args.iter().any(|a| a == "-r");
        let tags = self.v.at_least(1, 8, 0);
        let mut header = "NAME^DATASTORE^LOADER^CPU^MEMORY^VNC^AUTO^STATE".to_string();
        if tags {
            header.push_str("^TAGS");
        }
        let mut rows = vec![header];
        let vm_list: Vec<String> = rc_value(&self.root, "vm_list")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        for (ds, path, kind) in self.datastores() {
            if kind != "directory" {
                continue;
            }
            let mut names: Vec<String> = fs::read_dir(&path)
                .map(|e| {
                    e.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| !n.starts_with('.'))
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            for name in names {
                let dir = path.join(&name);
                let conf = dir.join(format!("{name}.conf"));
                if !conf.exists() {
                    continue;
                }
                let text = read(&conf);
                let get = |k: &str| conf_get(&text, k);
                let state = self.state(&dir, &name);
                if running_only && (state == "Stopped" || state == "Suspended") {
                    continue;
                }
                let vnc = if state.starts_with("Running")
                    && get("graphics").is_some_and(|g| is_yes(&g))
                {
                    read(&dir.join("console"))
                        .lines()
                        .find_map(|l| l.strip_prefix("vnc=").map(str::to_string))
                        .unwrap_or_else(|| "-".into())
                } else {
                    "-".into()
                };
                let auto = vm_list
                    .iter()
                    .position(|v| *v == name)
                    .map(|i| format!("Yes [{}]", i + 1))
                    .unwrap_or_else(|| "No".into());
                let mut row = [
                    name.clone(),
                    ds.clone(),
                    get("loader").unwrap_or_else(|| "none".into()),
                    get("cpu").unwrap_or_default(),
                    get("memory").unwrap_or_default(),
                    vnc,
                    auto,
                    state,
                ]
                .join("^");
                if tags {
                    let t = get("tags").unwrap_or_default();
                    let t: Vec<&str> = t.split_whitespace().collect();
                    row.push('^');
                    row.push_str(&if t.is_empty() {
                        "-".into()
                    } else {
                        t.join(",")
                    });
                }
                rows.push(row);
            }
        }
        Out::ok(column(&rows))
    }

    /// `vm datastore list` (datastore::list): `%-15s %-11s %-25s %s`.
    fn datastore(&self, args: &[String]) -> Out {
        match args.first().map(String::as_str) {
            Some("list") | None => {}
            Some(other) => {
                return Out::err(
                    SIM_FAILURE,
                    format!("freebsd-sim: vm datastore {other} is not simulated\n"),
                )
            }
        }
        let mut out = format!(
            "{:<15} {:<11} {:<25} {}\n",
            "NAME", "TYPE", "PATH", "ZFS DATASET"
        );
        for (name, path, kind) in self.datastores() {
            out.push_str(&format!(
                "{:<15} {:<11} {:<25} -\n",
                name,
                kind,
                path.display()
            ));
        }
        Out::ok(out)
    }

    /// `vm switch create [-t type] [-b bridge] name` and `vm switch list`: recorded in
    /// system.conf as switch::create does (`switch_list`, `type_<name>`, `bridge_<name>`).
    fn switch(&self, args: &[String]) -> Out {
        match args.first().map(String::as_str) {
            Some("create") => {
                let mut kind = "standard".to_string();
                let mut bridge = None;
                let mut i = 1;
                while i < args.len() && args[i].starts_with('-') {
                    match args[i].as_str() {
                        "-t" => kind = args.get(i + 1).cloned().unwrap_or_default(),
                        "-b" => bridge = args.get(i + 1).cloned(),
                        _ => {}
                    }
                    i += 2;
                }
                let Some(name) = args.get(i) else {
                    return usage(self.v);
                };
                if !name_ok(name) {
                    return err(format!("invalid switch name - '{name}'"));
                }
                let sys = self.system_conf();
                let list = conf_get(&read(&sys), "switch_list").unwrap_or_default();
                if list.split_whitespace().any(|s| s == name) {
                    return err(format!("switch {name} already exists"));
                }
                if !sys.exists() {
                    let _ = fs::write(&sys, "");
                }
                sysrc_f(&self.root, &sys, "-inqf", &format!("switch_list+={name}"));
                sysrc_f(&self.root, &sys, "-inqf", &format!("type_{name}={kind}"));
                if let Some(b) = bridge {
                    sysrc_f(&self.root, &sys, "-inqf", &format!("bridge_{name}={b}"));
                }
                Out::ok("")
            }
            Some("list") => {
                let sys = read(&self.system_conf());
                let mut rows = vec!["NAME^TYPE^IFACE^ADDRESS^PRIVATE^MTU^VLAN^PORTS".to_string()];
                for s in conf_get(&sys, "switch_list")
                    .unwrap_or_default()
                    .split_whitespace()
                {
                    let kind = conf_get(&sys, &format!("type_{s}")).unwrap_or("standard".into());
                    let iface = conf_get(&sys, &format!("bridge_{s}")).unwrap_or(format!("vm-{s}"));
                    rows.push(format!("{s}^{kind}^{iface}^-^no^-^-^-"));
                }
                Out::ok(column(&rows))
            }
            _ => Out::err(
                SIM_FAILURE,
                "freebsd-sim: only vm switch create|list are simulated\n",
            ),
        }
    }

    /// `vm img` / `vm iso` (datastore::img_list): `%-20s%s`.
    fn file_list(&self, sub: &str, kind: &str) -> Out {
        let mut out = format!("{:<20}{}\n", "DATASTORE", "FILENAME");
        let mut dirs = vec![("default".to_string(), self.vm_dir.join(sub))];
        dirs.extend(
            self.datastores()
                .into_iter()
                .filter(|(_, _, k)| *k == kind)
                .map(|(n, p, _)| (n, p)),
        );
        for (ds, dir) in dirs {
            let mut files: Vec<String> = fs::read_dir(&dir)
                .map(|e| {
                    e.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| !n.starts_with('.'))
                        .collect()
                })
                .unwrap_or_default();
            files.sort();
            for f in files {
                out.push_str(&format!("{ds:<20}{f}\n"));
            }
        }
        Out::ok(out)
    }

    /// `datastore::img_find` / `iso_find`: a readable absolute path, `$vm_dir/.img/<file>`
    /// (`.iso`), or the file in an img (iso) datastore.
    fn find_file(&self, file: &str, sub: &str, kind: &str) -> Option<PathBuf> {
        if file.starts_with('/') && Path::new(file).is_file() {
            return Some(PathBuf::from(file));
        }
        let default = self.vm_dir.join(sub).join(file);
        if default.is_file() {
            return Some(default);
        }
        self.datastores()
            .into_iter()
            .filter(|(_, _, k)| *k == kind)
            .map(|(_, p, _)| p.join(file))
            .find(|p| p.is_file())
    }

    /// `vm create` (core::create, per version).
    fn create(&self, args: &[String]) -> Out {
        let v = self.v;
        let with_u = v.at_least(1, 7, 1);
        let mut o = CreateOpts::new();
        let mut i = 0;
        // getopts d:t:s:i:c:m:Ck:n: (u: from 1.7.1)
        while i < args.len() {
            let a = &args[i];
            if a == "--" {
                i += 1;
                break;
            }
            let Some(flags) = a.strip_prefix('-').filter(|f| !f.is_empty()) else {
                break;
            };
            let chars: Vec<char> = flags.chars().collect();
            let mut k = 0;
            while k < chars.len() {
                let c = chars[k];
                let takes = matches!(c, 'd' | 't' | 's' | 'i' | 'c' | 'm' | 'k' | 'n')
                    || (c == 'u' && with_u);
                if c == 'C' {
                    o.cloud_init = true;
                    k += 1;
                    continue;
                }
                if !takes {
                    let mut out = usage(v);
                    out.stderr = format!("Illegal option -{c}\n");
                    return out;
                }
                let rest: String = chars[k + 1..].iter().collect();
                let value = if rest.is_empty() {
                    i += 1;
                    match args.get(i) {
                        Some(x) => x.clone(),
                        None => return usage(v),
                    }
                } else {
                    rest
                };
                match c {
                    'd' => o.ds = value,
                    't' => o.template = value,
                    's' => o.size = Some(value),
                    'i' => o.img = Some(value),
                    'c' => o.cpu = Some(value),
                    'm' => o.memory = Some(value),
                    'k' => o.key_file = Some(value),
                    'n' => o.netconfig = Some(value),
                    _ => o.user_data = Some(value),
                }
                break;
            }
            i += 1;
        }
        let Some(name) = args.get(i).cloned() else {
            return usage(v);
        };
        if !name_ok(&name) {
            return err(format!("invalid virtual machine name - '{name}'"));
        }
        if let Some((_, dir)) = self.guest(&name) {
            return err(format!(
                "virtual machine already exists in {}",
                dir.display()
            ));
        }
        let Some((_, ds_path, _)) = self
            .datastores()
            .into_iter()
            .find(|(n, _, k)| *n == o.ds && *k == "directory")
        else {
            return err(format!("unable to load datastore - '{}'", o.ds));
        };
        let template = self
            .vm_dir
            .join(".templates")
            .join(format!("{}.conf", o.template));
        if !template.is_file() {
            return err(format!("unable to find template {}", template.display()));
        }
        let ttext = read(&template);
        if conf_get(&ttext, "disk0_name").is_none() {
            return err("template is missing disk0_name specification");
        }
        let mut keys = Vec::new();
        if let Some(k) = &o.key_file {
            if !o.cloud_init {
                return err(
                    "cloud-init is required for injecting public key. Use -C to enable it.",
                );
            }
            let Ok(text) = fs::read_to_string(k) else {
                return err(format!("can't read file with public key ({k})"));
            };
            keys = if v.at_least(1, 7, 0) {
                // sed -e '/^$/d' -e '/^#/d'
                text.lines()
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_string)
                    .collect()
            } else {
                // 1.6: "$(cat file)", one entry
                vec![text.trim_end_matches('\n').to_string()]
            };
        }
        if let Some(u) = &o.user_data {
            if !o.cloud_init {
                return err("cloud-init is required for user-data file. Use -C to enable it.");
            }
            if fs::metadata(u).is_err() {
                return err(format!("can't read user-data file ({u})"));
            }
            if o.key_file.is_some() {
                return err("-u and -k are mutually exclusive; use one or the other");
            }
        }
        let mut net = None;
        if let Some(n) = &o.netconfig {
            if v.at_least(1, 7, 1) && !o.cloud_init {
                return err("cloud-init is required for network config. Use -C to enable it.");
            }
            if v.at_least(1, 7, 5) {
                // parsed before anything is created (v1.7.5 core::parse_netconfig)
                match parse_netconfig_175(n) {
                    Ok(parsed) => net = Some(parsed),
                    Err(out) => return out,
                }
            }
        }

        // From here on the guest exists, whatever fails later.
        let dir = ds_path.join(&name);
        if fs::create_dir(&dir).is_err() && !dir.is_dir() {
            return err(format!(
                "unable to create virtual machine directory {}",
                dir.display()
            ));
        }
        let conf = dir.join(format!("{name}.conf"));
        if fs::copy(&template, &conf).is_err() {
            return err("unable to copy template to virtual machine directory");
        }
        let uuid = uuidgen();
        conf_set(&self.root, &conf, "uuid", &uuid);
        // vm::generate_static_mac: openssl rand -hex 3, first digit forced to 0
        let mut dev = random_hex(3);
        dev.replace_range(0..1, "0");
        let mac = format!("58:9c:fc:{}:{}:{}", &dev[0..2], &dev[2..4], &dev[4..6]);
        conf_set(&self.root, &conf, "network0_mac", &mac);
        if let Some(c) = &o.cpu {
            conf_set(&self.root, &conf, "cpu", c);
        }
        if let Some(m) = &o.memory {
            conf_set(&self.root, &conf, "memory", m);
        }
        let mut num = 0;
        loop {
            let text = read(&conf);
            let Some(disk) = conf_get(&text, &format!("disk{num}_name")) else {
                break;
            };
            let dev = conf_get(&text, &format!("disk{num}_dev")).unwrap_or_default();
            let size = if num == 0 { o.size.clone() } else { None }
                .or_else(|| conf_get(&text, &format!("disk{num}_size")))
                .unwrap_or_else(|| "20G".into());
            match dev.as_str() {
                "zvol" | "sparse-zvol" => return err("this simulator has no ZFS"),
                "custom" | "iscsi" => {}
                _ => {
                    if !size_ok(&size) {
                        return err("failed to create sparse file for disk image");
                    }
                    let path = dir.join(&disk);
                    let mut record = format!("sim-disk size={size}\n");
                    if num == 0 {
                        if let Some(img) = &o.img {
                            match self.find_file(img, ".img", "img") {
                                Some(p) => record.push_str(&format!("image={}\n", p.display())),
                                None => return err(format!("unable to locate img file - '{img}'")),
                            }
                        }
                    }
                    let _ = fs::write(&path, record);
                    let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o600));
                }
            }
            sysrc_f(&self.root, &conf, "-inxqf", &format!("disk{num}_size"));
            num += 1;
        }
        if o.cloud_init {
            let net = match (&o.netconfig, net) {
                (Some(_), Some(parsed)) => Some(parsed),
                (Some(n), None) if v.at_least(1, 7, 0) => Some(parse_netconfig_grep(n, true)),
                (Some(n), None) => Some(parse_netconfig_grep(n, false)),
                (None, _) => None,
            };
            if let Err(out) = self.create_cloud_init(
                &dir,
                &conf,
                &name,
                &uuid,
                &mac,
                num,
                &keys,
                o.user_data.as_deref(),
                net,
            ) {
                return out;
            }
        }
        Out::ok("")
    }

    /// `core::create_cloud_init` (v1.6.2 / v1.7.x / master).
    #[allow(clippy::too_many_arguments)]
    fn create_cloud_init(
        &self,
        dir: &Path,
        conf: &Path,
        name: &str,
        uuid: &str,
        mac: &str,
        num: usize,
        keys: &[String],
        user_data: Option<&str>,
        net: Option<NetConfig>,
    ) -> Result<(), Out> {
        let ci = dir.join(".cloud-init");
        let _ = fs::create_dir_all(&ci);
        let mut hostname = name.to_string();
        if let Some(net) = &net {
            let text = if self.v.at_least(1, 7, 0) {
                compile_network_config_17(net, mac, self.v.at_least(1, 7, 5))
            } else {
                network_config_16(net, mac)
            };
            let _ = fs::write(ci.join("network-config"), text);
            if !net.hostname.is_empty() {
                hostname = net.hostname.clone();
            }
        }
        let _ = fs::write(
            ci.join("meta-data"),
            format!("instance-id: {uuid}\nlocal-hostname: {hostname}\n"),
        );
        match user_data {
            Some(file) => {
                let _ = fs::copy(file, ci.join("user-data"));
            }
            None => {
                let mut ud = String::from(
                    "#cloud-config\nresize_rootfs: True\nmanage_etc_hosts: localhost\n",
                );
                if !keys.is_empty() {
                    ud.push_str("ssh_authorized_keys:\n");
                    for k in keys {
                        ud.push_str(&format!("  - {k}\n"));
                    }
                }
                let _ = fs::write(ci.join("user-data"), ud);
            }
        }
        if !self.v.at_least(1, 7, 0) {
            // 1.6 builds the seed image here
            if makefs_cd9660(&dir.join("seed.iso"), &ci).is_err() {
                return Err(err("Can't write seed.iso for cloud-init"));
            }
        }
        conf_set(&self.root, conf, &format!("disk{num}_type"), "ahci-cd");
        conf_set(&self.root, conf, &format!("disk{num}_name"), "seed.iso");
        conf_set(&self.root, conf, &format!("disk{num}_dev"), "file");
        Ok(())
    }

    /// `vm start name…` (core::start / core::__start).
    fn start(&self, args: &[String], iso: Option<PathBuf>) -> Out {
        let (_, names) = leading_flags(args);
        if names.is_empty() {
            return usage(self.v);
        }
        let delay: u64 = rc_value(&self.root, "vm_delay")
            .and_then(|d| d.parse().ok())
            .unwrap_or(2);
        let mut out = Out::default();
        let mut failed = 0;
        for (n, name) in names.iter().enumerate() {
            if n > 0 {
                out.stdout.push_str(&format!("Waiting {delay} second(s)\n"));
                std::thread::sleep(Duration::from_secs(delay));
            }
            out.stdout.push_str(&format!("Starting {name}\n"));
            let Some((_, dir)) = self.guest(name) else {
                out.stdout.push_str(&format!(
                    "  ! {name} does not seem to be a valid virtual machine\n"
                ));
                failed += 1;
                continue;
            };
            out.stdout
                .push_str(&format!("  * found guest in {}\n", dir.display()));
            // vm::confirm_stopped with skip_lock=1: our own stale lock is fine
            let lock_host = read(&dir.join("run.lock"))
                .lines()
                .next()
                .map(str::to_string);
            let locked_elsewhere = lock_host.as_ref().is_some_and(|h| *h != self.hostname);
            if self.proc(name).is_some() || locked_elsewhere {
                out.stdout
                    .push_str("  ! guest appears to be running already\n");
                failed += 1;
                continue;
            }
            let text = read(&dir.join(format!("{name}.conf")));
            if conf_get(&text, "cpu").is_none() || conf_get(&text, "memory").is_none() {
                out.stdout
                    .push_str("  ! incomplete virtual machine configuration\n");
                failed += 1;
                continue;
            }
            out.stdout.push_str("  * booting...\n");
            if let Err(e) = self.spawn_run(name, iso.as_deref()) {
                return Out::err(
                    SIM_FAILURE,
                    format!("freebsd-sim: cannot fork vm _run: {e}\n"),
                );
            }
        }
        out.rc = failed;
        out
    }

    /// `$0 _run "${_name}" "${_iso}" >/dev/null 2>&1 &`
    fn spawn_run(&self, name: &str, iso: Option<&Path>) -> Result<()> {
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        cmd.arg0("vm")
            .arg("_run")
            .arg(name)
            .env(ROOT_VAR, &self.root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        if let Some(iso) = iso {
            cmd.arg(iso);
        }
        cmd.spawn()?;
        Ok(())
    }

    /// `vm install name iso` (core::install).
    fn install(&self, args: &[String]) -> Out {
        let (_, rest) = leading_flags(args);
        let (Some(name), Some(iso)) = (rest.first(), rest.get(1)) else {
            return usage(self.v);
        };
        let Some(path) = self.find_file(iso, ".iso", "iso") else {
            return err(format!("unable to locate iso file - '{iso}'"));
        };
        self.start(std::slice::from_ref(name), Some(path))
    }

    /// `vm stop name…` (core::stop): ACPI shutdown, returns at once.
    fn stop(&self, args: &[String]) -> Out {
        if args.is_empty() {
            return usage(self.v);
        }
        let mut out = Out::default();
        for name in args {
            match self.proc(name) {
                None => out.stderr.push_str(&warn(format!(
                    "{name} doesn't appear to be a running virtual machine"
                ))),
                Some(_) => {
                    out.stdout
                        .push_str(&format!("Sending ACPI shutdown to {name}\n"));
                    let _ = fs::write(self.proc_file(name, "acpi"), "");
                }
            }
        }
        out
    }

    /// `util::confirm`: `while read -p …; do case y*/n*; done` — EOF ends the loop with 0.
    fn confirm(prompt: &str, out: &mut Out) -> bool {
        out.stdout.push_str(&format!("{prompt} (y/n)? "));
        let mut line = String::new();
        loop {
            line.clear();
            match std::io::stdin().read_line(&mut line) {
                Ok(0) | Err(_) => return true,
                Ok(_) if line.starts_with('y') => return true,
                Ok(_) if line.starts_with('n') => return false,
                Ok(_) => out.stdout.push_str(&format!("{prompt} (y/n)? ")),
            }
        }
    }

    /// `vm poweroff [-f] name` (core::poweroff).
    fn poweroff(&self, args: &[String]) -> Out {
        let (flags, rest) = leading_flags(args);
        let Some(name) = rest.first() else {
            return usage(self.v);
        };
        if self.proc(name).is_none() {
            return err(format!(
                "{name} doesn't appear to be a running virtual machine"
            ));
        }
        let mut out = Out::default();
        if !flags.contains('f')
            && !Self::confirm(
                "Are you sure you want to forcefully poweroff this virtual machine",
                &mut out,
            )
        {
            return out;
        }
        let _ = fs::write(self.proc_file(name, "poweroff"), "");
        // bhyvectl --force-poweroff returns once the vmm is gone
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.proc(name).is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        out
    }

    /// `vm destroy [-f] name` (core::destroy).
    fn destroy(&self, args: &[String]) -> Out {
        let (flags, rest) = leading_flags(args);
        let Some(name) = rest.first() else {
            return usage(self.v);
        };
        let Some((_, dir)) = self.guest(name) else {
            return err(format!(
                "{name} doesn't appear to be a valid virtual machine"
            ));
        };
        let lock = dir.join("run.lock");
        if lock.exists() {
            let host = read(&lock).lines().next().unwrap_or_default().to_string();
            return Out {
                stderr: warn(format!("{name} appears to be running on {host} (locked)")),
                rc: 1,
                ..Out::default()
            };
        }
        if self.proc(name).is_some() {
            return Out {
                stderr: warn(format!("{name} appears to be running locally (vmm exists)")),
                rc: 1,
                ..Out::default()
            };
        }
        let mut out = Out::default();
        if !flags.contains('f')
            && !Self::confirm(
                "Are you sure you want to completely remove this virtual machine",
                &mut out,
            )
        {
            return out;
        }
        let _ = fs::remove_dir_all(&dir);
        out
    }

    fn log(&self, dir: &Path, lines: &[String]) {
        let text: String = lines
            .iter()
            .map(|l| format!("{}: {l}\n", now_iso()))
            .collect();
        if let Ok(mut f) = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("vm-bhyve.log"))
        {
            let _ = f.write_all(text.as_bytes());
        }
    }

    fn knob_ms(&self, file: &str, default: u64) -> Duration {
        Duration::from_millis(
            read(&self.root.join("sim").join(file))
                .trim()
                .parse()
                .unwrap_or(default),
        )
    }

    /// `vm _run name [iso]` (vm::run): the guest's lifetime, in the background.
    fn guest_run(&self, args: &[String]) -> Out {
        let Some(name) = args.first() else {
            return Out::err(5, "");
        };
        let Some((_, dir)) = self.guest(name) else {
            return Out::err(5, "");
        };
        if dir.join("run.lock").exists() && read(&dir.join("run.lock")).trim() != self.hostname
            || self.proc(name).is_some()
        {
            return Out::err(10, "");
        }
        let ci = dir.join(".cloud-init");
        if self.v.at_least(1, 7, 0) && ci.is_dir() && !dir.join("seed.iso").exists() {
            if makefs_cd9660(&dir.join("seed.iso"), &ci).is_err() {
                return err("Can't write seed.iso for cloud-init");
            }
            self.log(
                &dir,
                &[format!("created {}/seed.iso for cloud-init", dir.display())],
            );
        }
        let conf = dir.join(format!("{name}.conf"));
        let text = read(&conf);
        let get = |k: &str| conf_get(&text, k).unwrap_or_default();
        let (loader, cpu, memory) = (get("loader"), get("cpu"), get("memory"));
        let mut uuid = get("uuid");
        if uuid.is_empty() {
            uuid = uuidgen();
            conf_set(&self.root, &conf, "uuid", &uuid);
        }
        if cpu.is_empty() {
            return err("fatal; unable to determine cpu count");
        }
        self.log(
            &dir,
            &[
                "initialising".into(),
                format!(" [loader: {loader}]"),
                format!(" [cpu: {cpu}]"),
                format!(" [memory: {memory}]"),
                " [hostbridge: standard]".into(),
                " [com ports: com1]".into(),
                format!(" [uuid: {uuid}]"),
                " [debug mode: no]".into(),
                format!(" [primary disk: {}]", get("disk0_name")),
                " [primary disk dev: file]".into(),
            ],
        );
        if loader.is_empty() || memory.is_empty() {
            self.log(
                &dir,
                &["fatal; unable to start - missing required configuration".into()],
            );
            return Out::err(15, "");
        }
        // vm::lock
        let _ = fs::write(dir.join("run.lock"), format!("{}\n", self.hostname));
        self.log(&dir, &["booting".into()]);
        let _ = fs::create_dir_all(self.root.join("sim/vm"));
        let pid = std::process::id();
        for ext in ["acpi", "poweroff"] {
            let _ = fs::remove_file(self.proc_file(name, ext));
        }
        let _ = fs::remove_file(dir.join("sim-guest/sim/booted"));
        let boot = self.knob_ms("vm-boot-ms", 300);
        let finish = |status: i32, lines: &[String]| {
            let mut all = lines.to_vec();
            all.push(format!("bhyve exited with status {status}"));
            all.push("stopped".into());
            self.log(&dir, &all);
            // vm::unlock
            let _ = fs::remove_file(dir.join("run.lock"));
            let _ = fs::remove_file(dir.join("console"));
            let _ = fs::remove_file(self.proc_file(name, "pid"));
            Out::err(status, "")
        };
        if loader == "bhyveload" || loader == "grub" {
            let _ = fs::write(self.proc_file(name, "pid"), format!("{pid} bootloader\n"));
            std::thread::sleep(boot / 2);
            // bhyveload: errx(EX_USAGE, "Invalid memsize '%s'") (usr.sbin/bhyveload)
            if !size_ok(&memory) {
                self.log(&dir, &["fatal; loader returned error 64".into()]);
                let _ = fs::remove_file(dir.join("run.lock"));
                let _ = fs::remove_file(self.proc_file(name, "pid"));
                self.log(&dir, &["stopped".into()]);
                return Out::err(64, "");
            }
        }
        self.log(&dir, &["starting bhyve (run 1)".into()]);
        // bhyve refuses a vCPU count of 0 and an unparsable memory size (usr.sbin/bhyve)
        if cpu
            .split(',')
            .next()
            .and_then(|c| c.parse::<u32>().ok())
            .unwrap_or(0)
            == 0
            || !size_ok(&memory)
        {
            return finish(4, &[]);
        }
        let _ = fs::write(self.proc_file(name, "pid"), format!("{pid} bhyve\n"));
        std::thread::sleep(boot.saturating_sub(boot / 2));
        let listener = match self.guest_boot(&dir, name, &text) {
            Ok(l) => l,
            Err(e) => {
                self.log(&dir, &[format!("sim: guest boot failed: {e:#}")]);
                None
            }
        };
        let shutdown = self.knob_ms("vm-shutdown-ms", 200);
        let max_life = Instant::now() + Duration::from_secs(4 * 3600);
        loop {
            if self.proc_file(name, "poweroff").exists() {
                let _ = fs::remove_file(self.proc_file(name, "poweroff"));
                kill_guest_tmux(&dir.join("sim-guest"));
                return finish(1, &[]);
            }
            if self.proc_file(name, "acpi").exists() {
                let _ = fs::remove_file(self.proc_file(name, "acpi"));
                std::thread::sleep(shutdown);
                kill_guest_tmux(&dir.join("sim-guest"));
                return finish(1, &[]);
            }
            if !dir.is_dir() || !self.root.join("sim").is_dir() || Instant::now() > max_life {
                return Out::err(1, "");
            }
            if let Some(l) = &listener {
                while let Ok((mut stream, _)) = l.accept() {
                    let _ = stream.write_all(SSH_BANNER);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A boot of the guest: first boot creates its root and applies the seed (nuageinit),
    /// every boot configures vtnet0 from rc.conf.d/network (netif) and starts sshd.
    fn guest_boot(&self, dir: &Path, name: &str, conf: &str) -> Result<Option<TcpListener>> {
        let groot = dir.join("sim-guest");
        let listener = self.boot_steps(&groot, dir, name, conf);
        // The simulator's own marker: this boot has finished (tests wait for it).
        let _ = fs::write(groot.join("sim/booted"), "");
        listener
    }

    fn boot_steps(
        &self,
        groot: &Path,
        dir: &Path,
        name: &str,
        conf: &str,
    ) -> Result<Option<TcpListener>> {
        let groot = groot.to_path_buf();
        let mac = conf_get(conf, "network0_mac").unwrap_or_default();
        if !groot.exists() {
            fs::create_dir_all(&groot)?;
            let seed = self.seed(dir, conf);
            let hostname = seed
                .as_ref()
                .and_then(|s| s.get("meta-data"))
                .and_then(Value::as_str)
                .and_then(|m| yaml::parse(m).ok())
                .and_then(|m| {
                    m.get("local-hostname")
                        .and_then(Yaml::as_str)
                        .map(str::to_string)
                })
                .unwrap_or_else(|| name.to_string());
            init::init_host(&groot, Some(&hostname))?;
            fs::write(groot.join("firstboot"), "")?;
            if let Some(seed) = seed {
                nuageinit(&groot, &seed, &mac)?;
            }
            let _ = fs::remove_file(groot.join("firstboot"));
        }
        let address = netif(&groot, &mac)?;
        let unreachable = read(&self.root.join("sim/vm-unreachable"))
            .split_whitespace()
            .any(|n| n == name);
        let sshd = rc_value(&groot, "sshd_enable").is_some_and(|v| is_yes(&v));
        let (Some(addr), false, true) = (address, unreachable, sshd) else {
            return Ok(None);
        };
        let port: u16 = read(&self.root.join("sim/vm-ssh-port"))
            .trim()
            .parse()
            .unwrap_or(22);
        match TcpListener::bind((addr, port)) {
            Ok(l) => {
                l.set_nonblocking(true)?;
                Ok(Some(l))
            }
            Err(e) => {
                append(
                    &groot.join("var/log/messages"),
                    &format!("sshd: bind to {addr} port {port}: {e}\n"),
                );
                Ok(None)
            }
        }
    }

    /// The seed disk's files, if the conf attaches `seed.iso` and it is a cidata image.
    fn seed(&self, dir: &Path, conf: &str) -> Option<serde_json::Map<String, Value>> {
        let attached = (0..16)
            .any(|n| conf_get(conf, &format!("disk{n}_name")).as_deref() == Some("seed.iso"));
        if !attached {
            return None;
        }
        let image: Value = serde_json::from_str(&read(&dir.join("seed.iso"))).ok()?;
        (image["label"] == "cidata")
            .then(|| image["files"].as_object().cloned())
            .flatten()
    }
}

#[derive(Debug, Default)]
struct CreateOpts {
    ds: String,
    template: String,
    size: Option<String>,
    img: Option<String>,
    cpu: Option<String>,
    memory: Option<String>,
    cloud_init: bool,
    key_file: Option<String>,
    user_data: Option<String>,
    netconfig: Option<String>,
}

impl CreateOpts {
    fn new() -> Self {
        CreateOpts {
            ds: "default".into(),
            template: "default".into(),
            ..Default::default()
        }
    }
}

/// The parsed `-n` values.
#[derive(Debug, Default, Clone)]
struct NetConfig {
    interface: String,
    ip: String,
    gateway: String,
    gateway6: String,
    nameservers: String,
    searchdomains: String,
    hostname: String,
}

/// 1.6 and 1.7.0–1.7.4: each key grepped out of the string (`grep -oE 'key=[^;]*'`); unknown
/// keys are ignored. 1.6 knows `ip`, `gateway`, `nameservers`, `hostname`.
fn parse_netconfig_grep(text: &str, v17: bool) -> NetConfig {
    let grab = |key: &str| {
        let pat = format!("{key}=");
        text.match_indices(&pat)
            .next()
            .map(|(i, _)| {
                text[i + pat.len()..]
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
            .unwrap_or_default()
    };
    if v17 {
        NetConfig {
            interface: grab("interface"),
            ip: grab("ip"),
            gateway: grab("gateway4"),
            gateway6: grab("gateway6"),
            nameservers: grab("nameservers"),
            searchdomains: grab("searchdomains"),
            hostname: grab("hostname"),
        }
    } else {
        NetConfig {
            ip: grab("ip"),
            gateway: grab("gateway"),
            nameservers: grab("nameservers"),
            hostname: grab("hostname"),
            ..NetConfig::default()
        }
    }
}

/// 1.7.5: `;`-separated `key=value`, empty fields skipped, unknown keys and entries without
/// `=` refused.
fn parse_netconfig_175(text: &str) -> Result<NetConfig, Out> {
    let mut n = NetConfig::default();
    for pair in text.split(';').filter(|p| !p.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(err(format!("invalid netconfig entry - '{pair}'")));
        };
        let slot = match key {
            "interface" => &mut n.interface,
            "ip" => &mut n.ip,
            "gateway4" => &mut n.gateway,
            "gateway6" => &mut n.gateway6,
            "nameservers" => &mut n.nameservers,
            "searchdomains" => &mut n.searchdomains,
            "hostname" => &mut n.hostname,
            _ => return Err(err(format!("invalid netconfig option - '{key}'"))),
        };
        *slot = value.to_string();
    }
    Ok(n)
}

/// v1.6.2 `core::create_cloud_init`'s network-config.
fn network_config_16(n: &NetConfig, mac: &str) -> String {
    format!(
        "version: 2\nethernets:\n  id0:\n    set-name: eth0\n    match:\n      macaddress: \"{mac}\"\n    addresses:\n      - {}\n    gateway4: {}\n    nameservers:\n      search: []\n      addresses: [{}]\n",
        n.ip, n.gateway, n.nameservers
    )
}

/// v1.7.x `core::compile_network_config`; before 1.7.5 the search domains are lost.
fn compile_network_config_17(n: &NetConfig, mac: &str, keeps_search: bool) -> String {
    let mut out = String::from("version: 2\nethernets:\n  id0:\n");
    let iface = if n.interface.is_empty() {
        "eth0"
    } else {
        &n.interface
    };
    out.push_str(&format!(
        "    set-name: {iface}\n    match:\n      macaddress: {mac}\n"
    ));
    let (mut v4, mut v6) = (false, false);
    if !n.ip.is_empty() {
        for a in n.ip.split(',') {
            if a.contains(':') {
                v6 = true;
            } else if a.contains('.') {
                v4 = true;
            }
        }
        out.push_str(&format!("    addresses: [{}]\n", n.ip));
    }
    if !v4 {
        out.push_str("    dhcp4: true\n");
    }
    if !v6 {
        out.push_str("    dhcp6: true\n    accept-ra: true\n");
    }
    let search = if keeps_search {
        n.searchdomains.as_str()
    } else {
        ""
    };
    if !n.nameservers.is_empty() || (keeps_search && !search.is_empty()) {
        out.push_str("    nameservers:\n");
        if !n.nameservers.is_empty() {
            out.push_str(&format!("      addresses: [{}]\n", n.nameservers));
        }
        if !search.is_empty() {
            out.push_str(&format!("      search: [{search}]\n"));
        }
    }
    if !n.gateway.is_empty() || !n.gateway6.is_empty() {
        out.push_str("    routes:\n");
        if !n.gateway.is_empty() {
            out.push_str(&format!(
                "      - to: 0.0.0.0/0\n        via: {}\n",
                n.gateway
            ));
        }
        if !n.gateway6.is_empty() {
            out.push_str(&format!("      - to: ::/0\n        via: {}\n", n.gateway6));
        }
    }
    out
}

/// `makefs -t cd9660 -o R,L=<label> <image> <dir>`: the simulator's image is a JSON record of
/// the directory's regular files and the label.
fn makefs_cd9660(image: &Path, dir: &Path) -> Result<String> {
    makefs_label(image, dir, "cidata")
}

fn makefs_label(image: &Path, dir: &Path, label: &str) -> Result<String> {
    let mut files = serde_json::Map::new();
    let mut entries: Vec<_> = fs::read_dir(dir)
        .with_context(|| format!("{}: No such file or directory", dir.display()))?
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        if e.file_type().map(|t| t.is_file()).unwrap_or(false) {
            files.insert(
                e.file_name().to_string_lossy().into_owned(),
                Value::String(read(&e.path())),
            );
        }
    }
    let text =
        serde_json::to_string_pretty(&json!({"sim": "cd9660", "label": label, "files": files}))?;
    fs::write(image, &text)?;
    Ok(text)
}

/// Simulated `makefs(8)`: only vm-bhyve's form, `makefs -t cd9660 -o R,L=cidata image dir`.
pub fn makefs(args: &[String]) -> Out {
    match args {
        [t, cd9660, o, opts, image, dir]
            if t == "-t" && cd9660 == "cd9660" && o == "-o" && opts.starts_with("R,L=") =>
        {
            match makefs_label(Path::new(image), Path::new(dir), &opts[4..]) {
                Ok(_) => Out::ok(""),
                Err(e) => Out::err(1, format!("makefs: {e:#}\n")),
            }
        }
        _ => Out::err(
            SIM_FAILURE,
            "freebsd-sim: only `makefs -t cd9660 -o R,L=<label> <image> <dir>` is simulated\n",
        ),
    }
}

fn append(path: &Path, text: &str) {
    if let Some(dir) = path.parent() {
        let _ = fs::create_dir_all(dir);
    }
    if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = f.write_all(text.as_bytes());
    }
}

fn mkdir_mode(path: &Path, mode: u32) -> Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    fs::create_dir_all(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(true)
}

/// `nuage.adduser` (pw useradd -m -M 0755, shell /bin/sh, home /home/<name>); returns the home.
fn adduser(groot: &Path, name: &str, groups: &str, log: &mut String) -> Result<String> {
    let passwd = groot.join("etc/passwd");
    let existing = read(&passwd);
    if let Some(line) = existing.lines().find(|l| l.split(':').next() == Some(name)) {
        return Ok(line.split(':').nth(5).unwrap_or_default().to_string());
    }
    let uid = 1001 + existing.lines().filter(|l| !l.starts_with('#')).count();
    let home = format!("/home/{name}");
    append(
        &passwd,
        &format!("{name}:*:{uid}:{uid}:{name} User:{home}:/bin/sh\n"),
    );
    append(&groot.join("etc/group"), &format!("{name}:*:{uid}:\n"));
    if !groups.is_empty() {
        append(&groot.join("etc/group"), &format!("{groups}:*:0:{name}\n"));
    }
    mkdir_mode(&groot.join(home.trim_start_matches('/')), 0o755)?;
    log.push_str(&format!(
        "pw useradd -n {name} -M 0755 -w none -m -d {home} -s /bin/sh\n"
    ));
    Ok(home)
}

/// `nuage.addsshkey`: appended to `~/.ssh/authorized_keys` (0600, `.ssh` 0700 when new).
fn addsshkey(groot: &Path, home: &str, key: &str) -> Result<()> {
    let dot = groot.join(home.trim_start_matches('/')).join(".ssh");
    mkdir_mode(&dot, 0o700)?;
    let ak = dot.join("authorized_keys");
    let new = !ak.exists();
    append(&ak, &format!("{key}\n"));
    if new {
        fs::set_permissions(&ak, fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Appends rule lines to a file, setting `mode` when it is new (`adddoas` 0640, `addsudo` 0440).
fn add_rules(path: &Path, lines: &[String], mode: u32) -> Result<()> {
    let new = !path.exists();
    for l in lines {
        append(path, &format!("{l}\n"));
    }
    if new && path.exists() {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// nuageinit's first boot on a nocloud seed (freebsd-src libexec/nuageinit `nuageinit`).
fn nuageinit(groot: &Path, seed: &serde_json::Map<String, Value>, mac: &str) -> Result<()> {
    let mut log = String::new();
    let file = |n: &str| {
        seed.get(n)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let meta = yaml::parse(&file("meta-data")).context("meta-data")?;
    let ud = file("user-data");
    let first = ud.lines().next().unwrap_or_default().trim().to_string();
    let obj = if first == "#cloud-config" {
        Some(yaml::parse(&ud).context("user-data")?)
    } else {
        None
    };
    // sethostname: fqdn, hostname, then meta-data local-hostname / hostname
    let hostname = obj
        .as_ref()
        .and_then(|o| o.get("fqdn").or_else(|| o.get("hostname")))
        .and_then(Yaml::as_str)
        .or_else(|| meta.get("local-hostname").and_then(Yaml::as_str))
        .or_else(|| meta.get("hostname").and_then(Yaml::as_str))
        .map(str::to_string);
    if let Some(h) = hostname {
        let path = groot.join("etc/rc.conf.d/hostname");
        fs::create_dir_all(groot.join("etc/rc.conf.d"))?;
        fs::write(path, format!("hostname=\"{h}\"\n"))?;
    }
    if first.starts_with("#!") {
        // run at the end of boot by nuageinit_user_data_script: recorded, not executed here
        let cache = groot.join("var/cache/nuageinit");
        fs::create_dir_all(&cache)?;
        fs::write(cache.join("user_data"), &ud)?;
        fs::set_permissions(cache.join("user_data"), fs::Permissions::from_mode(0o755))?;
    }
    let users = obj.as_ref().and_then(|o| o.get("users"));
    let wants_default =
        users.is_none_or(|u| u.items().iter().any(|i| i.as_str() == Some("default")));
    if wants_default {
        // default_user: freebsd, wheel, keys from ssh_authorized_keys
        let home = adduser(groot, "freebsd", "wheel", &mut log)?;
        for k in obj
            .as_ref()
            .and_then(|o| o.get("ssh_authorized_keys"))
            .map(Yaml::strings)
            .unwrap_or_default()
        {
            addsshkey(groot, &home, &k)?;
        }
    }
    if obj.is_some() {
        if let Some(nc) = seed.get("network-config").and_then(Value::as_str) {
            network_config(
                groot,
                &yaml::parse(nc).context("network-config")?,
                mac,
                &mut log,
            )?;
        }
    }
    for u in users.map(Yaml::items).unwrap_or_default() {
        let Some(name) = u.get("name").and_then(Yaml::as_str) else {
            continue;
        };
        let home = adduser(groot, name, "", &mut log)?;
        for k in u
            .get("ssh_authorized_keys")
            .map(Yaml::strings)
            .unwrap_or_default()
        {
            addsshkey(groot, &home, &k)?;
        }
        if let Some(sudo) = u.get("sudo") {
            let lines: Vec<String> = sudo
                .strings()
                .iter()
                .map(|l| format!("{name} {l}"))
                .collect();
            add_rules(
                &groot.join("usr/local/etc/sudoers.d/90-nuageinit-users"),
                &lines,
                0o440,
            )?;
        }
        if let Some(doas) = u.get("doas") {
            let lines: Vec<String> = doas
                .strings()
                .iter()
                .map(|l| l.replace("%u", name))
                .collect();
            add_rules(&groot.join("usr/local/etc/doas.conf"), &lines, 0o640)?;
        }
    }
    append(&groot.join("var/log/nuageinit.log"), &log);
    Ok(())
}

/// nuageinit `network_config`: rc.conf.d/network and routing from network-config.
fn network_config(groot: &Path, nc: &Yaml, mac: &str, log: &mut String) -> Result<()> {
    let mut network = String::new();
    let mut routing = String::new();
    let mut gateway_set = false;
    for (id, v) in nc.get("ethernets").map(Yaml::entries).unwrap_or_default() {
        let mut iface = id.clone();
        if let Some(m) = v.get("match") {
            match m.get("macaddress").and_then(Yaml::as_str) {
                Some(want) if want.eq_ignore_ascii_case(mac) => iface = "vtnet0".into(),
                Some(want) => {
                    log.push_str(&format!(
                        "nuageinit: not interface matching by MAC address: {want}\n"
                    ));
                    continue;
                }
                None => {}
            }
            if let Some(new) = v.get("set-name").and_then(Yaml::as_str) {
                network.push_str(&format!("ifconfig_{iface}_name={new}\n"));
                iface = new.to_string();
            }
        }
        if v.get("dhcp4")
            .and_then(Yaml::as_str)
            .is_some_and(|d| d == "true")
        {
            network.push_str(&format!("ifconfig_{iface}=\"DHCP\"\n"));
        } else if let Some(addrs) = v.get("addresses") {
            for a in addrs.strings() {
                if a.parse::<Ipv4Addr>().is_ok()
                    || a.split('/')
                        .next()
                        .is_some_and(|h| h.parse::<Ipv4Addr>().is_ok())
                {
                    network.push_str(&format!("ifconfig_{iface}=\"inet {a}\"\n"));
                } else {
                    network.push_str(&format!("ifconfig_{iface}_ipv6=\"inet6 {a}\"\n"));
                }
            }
            if let Some(ns) = v.get("nameservers") {
                let mut conf = String::new();
                if let Some(s) = ns.get("search") {
                    conf.push_str(&format!("search_domains=\"{}\"\n", s.strings().join(" ")));
                }
                if let Some(a) = ns.get("addresses") {
                    conf.push_str(&format!("name_servers=\"{}\"\n", a.strings().join(" ")));
                }
                fs::write(groot.join("etc/resolvconf.conf"), conf)?;
            }
            if let (Some(g), false) = (v.get("gateway4").and_then(Yaml::as_str), gateway_set) {
                if !g.is_empty() {
                    routing.push_str(&format!("defaultrouter=\"{g}\"\n"));
                    gateway_set = true;
                }
            }
        }
    }
    fs::create_dir_all(groot.join("etc/rc.conf.d"))?;
    fs::write(groot.join("etc/rc.conf.d/network"), network)?;
    fs::write(groot.join("etc/rc.conf.d/routing"), routing)?;
    Ok(())
}

/// netif at boot, for the guest's one NIC: `vtnet0` gets the guest's MAC, is renamed by
/// `ifconfig_vtnet0_name`, and gets the `inet` address of rc.conf.d/network or rc.conf
/// (DHCP finds no server in the simulator). Returns that address.
fn netif(groot: &Path, mac: &str) -> Result<Option<Ipv4Addr>> {
    let mut text = read(&groot.join("etc/rc.conf"));
    text.push_str(&read(&groot.join("etc/rc.conf.d/network")));
    let value = |key: &str| {
        text.lines().rev().find_map(|l| {
            l.strip_prefix(&format!("{key}="))
                .map(|v| v.trim_matches('"').to_string())
        })
    };
    let name = value("ifconfig_vtnet0_name").unwrap_or_else(|| "vtnet0".into());
    let inet = value(&format!("ifconfig_{name}"))
        .and_then(|v| v.strip_prefix("inet ").map(str::to_string))
        .and_then(|a| {
            let (addr, prefix) = a.split_once('/').unwrap_or((&a, "24"));
            Some(Inet {
                addr: addr.trim().parse().ok()?,
                prefix: prefix.trim().parse().ok()?,
            })
        });
    let mut state = IfState::load(groot)?;
    if let Some(nic) = state
        .ifaces
        .iter_mut()
        .find(|i| i.name == "vtnet0" || i.name == name)
    {
        nic.name = name;
        if !mac.is_empty() {
            nic.ether = Some(mac.to_string());
        }
        nic.inet = inet.iter().cloned().collect();
    }
    state.save(groot)?;
    Ok(inet.map(|i| i.addr))
}

/// Ends every running guest of a simulated bhyve host (its `vm _run` processes), for tests
/// tearing the host down.
pub fn kill_guests(root: &Path) {
    let Ok(entries) = fs::read_dir(root.join("sim/vm")) else {
        return;
    };
    for e in entries.flatten() {
        if e.path().extension().is_some_and(|x| x == "pid") {
            let pid = read(&e.path())
                .split_whitespace()
                .next()
                .and_then(|p| p.parse::<i32>().ok());
            if let Some(pid) = pid {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
    }
}

/// Powering a guest off ends its processes: the tmux servers of agents inside it.
fn kill_guest_tmux(groot: &Path) {
    let mut sockets = Vec::new();
    find_sockets(groot, &mut sockets);
    let tmux = std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("tmux"))
                .find(|t| t.is_file())
        })
        .or_else(|| {
            ["/usr/bin/tmux", "/usr/local/bin/tmux"]
                .iter()
                .map(PathBuf::from)
                .find(|t| t.is_file())
        });
    if let Some(tmux) = tmux {
        for s in sockets {
            let _ = Command::new(&tmux)
                .arg("-S")
                .arg(&s)
                .arg("kill-server")
                .output();
        }
    }
}

fn find_sockets(dir: &Path, out: &mut Vec<PathBuf>) {
    use std::os::unix::fs::FileTypeExt;
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            find_sockets(&e.path(), out);
        } else if ft.is_socket() {
            out.push(e.path());
        }
    }
}
