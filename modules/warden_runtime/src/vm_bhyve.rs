//! vm-bhyve (freebsd/vm-bhyve 1.6, 1.7, 1.8-devel): the version, every command form warden
//! runs, the readers of its output (`vm list` by its header, `vm datastore list`, `vm img`)
//! and of its own files (`<name>.conf`, `system.conf`, the guest log, the cloud-init seed).
//! Each fact is recorded with its tag and file in `docs/vm-bhyve-facts.md`; the short form:
//! * `vm version` → `vm-bhyve: Bhyve virtual machine management v1.7.2` (`1.6-devel` for every
//!   1.6 tag, `1.8-devel` on master);
//! * `vm list` is `printf … | column -ts^`: cells start at the header's offsets, `Running
//!   (pid)` is one cell, 1.8-devel adds TAGS, STATE `Suspended` exists from 1.7;
//! * conf files are read by `config::load`: lines starting `[a-z]`, `#` comments, `"` deleted,
//!   the **first** assignment wins;
//! * `vm create -C` takes `-k` (all), `-u` (from 1.7.1) and `-n` with version-specific keys
//!   (1.6: `ip;gateway;nameservers;hostname`, 1.7: `interface;ip;gateway4;gateway6;
//!   nameservers;searchdomains;hostname`, unknown keys refused from 1.7.5);
//! * `vm destroy`/`vm poweroff` prompt unless `-f` comes before the name.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use ipnet::Ipv4Net;

use crate::exec::Cmd;

/// A vm-bhyve version: `1.7.2`, `1.6-devel` (every 1.6 tag), `1.8-devel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    /// `None` for a `-devel` version string (1.6 tags, master).
    pub patch: Option<u32>,
}

impl Version {
    pub const fn new(major: u32, minor: u32, patch: Option<u32>) -> Self {
        Version {
            major,
            minor,
            patch,
        }
    }

    /// Reads `vm version` output (or a bare version string).
    pub fn parse(text: &str) -> Result<Version> {
        let word = text
            .split_whitespace()
            .rev()
            .find(|w| {
                w.trim_start_matches('v')
                    .starts_with(|c: char| c.is_ascii_digit())
            })
            .ok_or_else(|| anyhow!("cannot read a vm-bhyve version from {:?}", text.trim()))?;
        let word = word.trim_start_matches('v');
        let (numbers, devel) = match word.strip_suffix("-devel") {
            Some(n) => (n, true),
            None => (word, false),
        };
        let parts: Vec<&str> = numbers.split('.').collect();
        let num = |i: usize| -> Result<Option<u32>> {
            parts
                .get(i)
                .map(|p| {
                    p.parse::<u32>()
                        .map_err(|_| anyhow!("cannot read a vm-bhyve version from {word:?}"))
                })
                .transpose()
        };
        let major = num(0)?.ok_or_else(|| anyhow!("empty vm-bhyve version"))?;
        let minor = num(1)?.unwrap_or(0);
        let patch = if devel {
            None
        } else {
            Some(num(2)?.unwrap_or(0))
        };
        Ok(Version::new(major, minor, patch))
    }

    fn at_least(&self, major: u32, minor: u32, patch: u32) -> bool {
        // A -devel line is ahead of every release of its own minor version.
        let p = self.patch.unwrap_or(u32::MAX);
        (self.major, self.minor, p) >= (major, minor, patch)
    }

    /// The versions warden knows: 1.6, 1.7 and the 1.8 development line.
    pub fn supported(&self) -> bool {
        self.major == 1 && (6..=8).contains(&self.minor)
    }

    /// `vm create -u user-data-file` (v1.7.1 `core::create`).
    pub fn has_user_data_flag(&self) -> bool {
        self.at_least(1, 7, 1)
    }

    /// 1.6 builds seed.iso inside `vm create`; 1.7+ at the first `vm _run`.
    pub fn builds_seed_at_create(&self) -> bool {
        !self.at_least(1, 7, 0)
    }

    /// The `-n` key names this version reads.
    pub fn netconfig_keys(&self) -> NetKeys {
        if self.at_least(1, 7, 0) {
            NetKeys::V17
        } else {
            NetKeys::V16
        }
    }

    /// 1.7.5 refuses unknown `-n` keys before creating anything.
    pub fn rejects_unknown_netconfig(&self) -> bool {
        self.at_least(1, 7, 5)
    }

    /// 1.7.0–1.7.4 drop `searchdomains` while compiling network-config.
    pub fn drops_searchdomains(&self) -> bool {
        self.netconfig_keys() == NetKeys::V17 && !self.at_least(1, 7, 5)
    }

    /// STATE `Suspended` (v1.7.0 `vm::running_check`).
    pub fn has_suspended_state(&self) -> bool {
        self.at_least(1, 7, 0)
    }

    /// The TAGS column and `tags` in the conf (master `core::list`, `lib/vm-tags`).
    pub fn lists_tags(&self) -> bool {
        self.at_least(1, 8, 0)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.patch {
            Some(p) => write!(f, "{}.{}.{p}", self.major, self.minor),
            None => write!(f, "{}.{}-devel", self.major, self.minor),
        }
    }
}

/// Which `vm create -n` keys a version reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetKeys {
    /// `ip;gateway;nameservers;hostname`
    V16,
    /// `interface;ip;gateway4;gateway6;nameservers;searchdomains;hostname`
    V17,
}

/// `vm version`.
pub fn version_cmd(vm: &Path) -> Cmd {
    Cmd::new(vm).arg("version")
}

/// Runs `vm version` and reads it.
pub fn version(vm: &Path) -> Result<Version> {
    let out = version_cmd(vm).run()?;
    Version::parse(&out.stdout)
}

/// A guest's STATE column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmState {
    Running(u32),
    Bootloader(u32),
    Stopped,
    Suspended,
    /// Stopped but `run.lock` names a host (this one, while `vm _run` starts, or another).
    Locked(String),
    Other(String),
}

impl VmState {
    pub fn parse(cell: &str) -> VmState {
        let cell = cell.trim();
        let inner = |prefix: &str| {
            cell.strip_prefix(prefix)
                .and_then(|r| r.strip_prefix(" ("))
                .and_then(|r| r.strip_suffix(')'))
                .map(str::to_string)
        };
        if let Some(pid) = inner("Running").and_then(|p| p.parse().ok()) {
            return VmState::Running(pid);
        }
        if let Some(pid) = inner("Bootloader").and_then(|p| p.parse().ok()) {
            return VmState::Bootloader(pid);
        }
        if let Some(host) = inner("Locked") {
            return VmState::Locked(host);
        }
        match cell {
            "Stopped" => VmState::Stopped,
            "Suspended" => VmState::Suspended,
            other => VmState::Other(other.to_string()),
        }
    }

    /// bhyve or its loader runs.
    pub fn is_running(&self) -> bool {
        matches!(self, VmState::Running(_) | VmState::Bootloader(_))
    }

    /// One lower-case word: running, bootloader, stopped, suspended, locked, unknown.
    pub fn word(&self) -> &'static str {
        match self {
            VmState::Running(_) => "running",
            VmState::Bootloader(_) => "bootloader",
            VmState::Stopped => "stopped",
            VmState::Suspended => "suspended",
            VmState::Locked(_) => "locked",
            VmState::Other(_) => "unknown",
        }
    }
}

impl fmt::Display for VmState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmState::Running(pid) => write!(f, "Running ({pid})"),
            VmState::Bootloader(pid) => write!(f, "Bootloader ({pid})"),
            VmState::Stopped => f.write_str("Stopped"),
            VmState::Suspended => f.write_str("Suspended"),
            VmState::Locked(host) => write!(f, "Locked ({host})"),
            VmState::Other(text) => f.write_str(text),
        }
    }
}

/// One row of `vm list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedVm {
    pub name: String,
    pub datastore: String,
    pub loader: String,
    pub cpu: String,
    pub memory: String,
    pub vnc: String,
    pub auto: String,
    pub state: VmState,
    /// From the TAGS column (1.8-devel); empty otherwise or for `-`.
    pub tags: Vec<String>,
}

/// `vm list`.
pub fn list_cmd(vm: &Path) -> Cmd {
    Cmd::new(vm).arg("list")
}

/// Runs `vm list` and reads it.
pub fn list(vm: &Path) -> Result<Vec<ListedVm>> {
    parse_list(&list_cmd(vm).run()?.stdout)
}

/// Reads `vm list` output by its header: each column's cells start at the offset of its
/// header word (column(1) pads every column to the same width), so cells with spaces
/// (`Running (4242)`, `Yes [1]`) stay whole. Columns are found by name, so the 1.6/1.7
/// layout and 1.8-devel's extra TAGS column read alike; `-v` columns are ignored.
pub fn parse_list(text: &str) -> Result<Vec<ListedVm>> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return Ok(Vec::new());
    };
    let columns = header_columns(header);
    let find = |name: &str| columns.iter().position(|(n, _)| n == name);
    let (Some(name_col), Some(state_col)) = (find("NAME"), find("STATE")) else {
        bail!("`vm list` printed no NAME and STATE header: {header:?}");
    };
    let mut vms = Vec::new();
    for line in lines {
        let cells = cut_cells(line, &columns);
        let cell = |i: Option<usize>| i.and_then(|i| cells.get(i).cloned()).unwrap_or_default();
        let name = cell(Some(name_col));
        if name.is_empty() {
            continue;
        }
        let tags = cell(find("TAGS"));
        vms.push(ListedVm {
            name,
            datastore: cell(find("DATASTORE")),
            loader: cell(find("LOADER")),
            cpu: cell(find("CPU")),
            memory: cell(find("MEMORY")),
            vnc: cell(find("VNC")),
            auto: cell(find("AUTO")),
            state: VmState::parse(&cell(Some(state_col))),
            tags: split_tags(&tags),
        });
    }
    Ok(vms)
}

fn split_tags(cell: &str) -> Vec<String> {
    if cell == "-" {
        return Vec::new();
    }
    cell.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty() && *t != "-")
        .map(str::to_string)
        .collect()
}

/// Header words with their start offsets (in chars). `%CPU` etc. are single words; the
/// `ZFS DATASET` header of `vm datastore list` is not read with this.
fn header_columns(header: &str) -> Vec<(String, usize)> {
    let chars: Vec<char> = header.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == ' ' {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && chars[i] != ' ' {
            i += 1;
        }
        out.push((chars[start..i].iter().collect(), start));
    }
    out
}

fn cut_cells(line: &str, columns: &[(String, usize)]) -> Vec<String> {
    let chars: Vec<char> = line.chars().collect();
    columns
        .iter()
        .enumerate()
        .map(|(i, (_, start))| {
            let end = columns.get(i + 1).map(|(_, s)| *s).unwrap_or(chars.len());
            let start = (*start).min(chars.len());
            let end = end.min(chars.len()).max(start);
            chars[start..end]
                .iter()
                .collect::<String>()
                .trim()
                .to_string()
        })
        .collect()
}

/// A datastore as `vm datastore list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datastore {
    pub name: String,
    /// `directory`, `zfs`, `iso` or `img`.
    pub kind: String,
    pub path: PathBuf,
}

impl Datastore {
    /// Only directory and ZFS datastores hold guests.
    pub fn holds_guests(&self) -> bool {
        self.kind == "directory" || self.kind == "zfs"
    }
}

/// The datastores of a host from vm-bhyve's own files (`datastore::load`, `get`): the
/// default store `vm_dir`, then `datastore_list` of `system.conf` in order, each `path_<ds>`
/// resolved (`zfs:` specs through `mount` output, `iso:`/`img:` kept as such).
pub fn datastores(vm_dir: &Path, system_conf: &VmConf, mount_output: &str) -> Vec<Datastore> {
    let mut out = vec![Datastore {
        name: "default".into(),
        kind: "directory".into(),
        path: vm_dir.to_owned(),
    }];
    for name in system_conf
        .get("datastore_list")
        .unwrap_or_default()
        .split_whitespace()
    {
        if name == "default" {
            continue;
        }
        let Some(spec) = system_conf.get(&format!("path_{name}")) else {
            continue;
        };
        let (kind, path) = match spec.split_once(':') {
            Some(("zfs", dataset)) => match zfs_mountpoint(mount_output, dataset) {
                Some(p) => ("zfs", PathBuf::from(p)),
                None => continue,
            },
            Some(("iso", p)) => ("iso", PathBuf::from(p)),
            Some(("img", p)) => ("img", PathBuf::from(p)),
            _ => ("directory", PathBuf::from(&spec)),
        };
        out.push(Datastore {
            name: name.to_string(),
            kind: kind.into(),
            path,
        });
    }
    out
}

/// The mountpoint of a ZFS dataset from `mount` output: the line `<dataset> on <path> (…)`
/// (vm-bhyve: `mount | grep "^${dataset} " | cut -d' ' -f3`).
pub fn zfs_mountpoint(mount_output: &str, dataset: &str) -> Option<String> {
    mount_output.lines().find_map(|line| {
        let mut words = line.split(' ');
        (words.next() == Some(dataset))
            .then(|| words.nth(1).map(str::to_string))
            .flatten()
    })
}

/// `mount` (to resolve `zfs:` specs).
pub fn mount_cmd(mount: &Path) -> Cmd {
    Cmd::new(mount)
}

/// A vm-bhyve configuration file (`<name>.conf`, a template, `system.conf`) as text, read the
/// way `config::load`/`config::get` read it, and edited in place keeping every other line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VmConf {
    text: String,
}

impl VmConf {
    pub fn parse(text: &str) -> VmConf {
        VmConf {
            text: text.to_string(),
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// `key=value` of a line as `config::load` keeps it: lines starting with `[a-z]`,
    /// everything after `#` dropped, trailing spaces trimmed, `"` deleted.
    fn entry(line: &str) -> Option<(String, String)> {
        if !line.starts_with(|c: char| c.is_ascii_lowercase()) {
            return None;
        }
        let kept = line
            .split('#')
            .next()
            .unwrap_or_default()
            .trim_end_matches(' ');
        let kept: String = kept.chars().filter(|c| *c != '"').collect();
        let (key, value) = kept.split_once('=')?;
        Some((key.to_string(), value.to_string()))
    }

    /// The value of the first assignment of `key` (vm-bhyve's rule; sh would take the last).
    pub fn get(&self, key: &str) -> Option<String> {
        self.text
            .lines()
            .filter_map(Self::entry)
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Every key with its (first) value, in file order.
    pub fn entries(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (k, v) in self.text.lines().filter_map(Self::entry) {
            if !out.iter().any(|(seen, _)| *seen == k) {
                out.push((k, v));
            }
        }
        out
    }

    /// Sets `key="value"`: replaces the first assignment (the one vm-bhyve reads), drops later
    /// ones, or appends a line.
    pub fn set(&mut self, key: &str, value: &str) {
        let wanted = format!("{key}=\"{value}\"");
        let mut out = Vec::new();
        let mut done = false;
        for line in self.text.lines() {
            match Self::entry(line) {
                Some((k, _)) if k == key => {
                    if !done {
                        out.push(wanted.clone());
                        done = true;
                    }
                }
                _ => out.push(line.to_string()),
            }
        }
        if !done {
            out.push(wanted);
        }
        self.text = out.join("\n") + "\n";
    }

    /// Removes every assignment of `key`.
    pub fn remove(&mut self, key: &str) {
        let kept: Vec<&str> = self
            .text
            .lines()
            .filter(|line| !matches!(Self::entry(line), Some((k, _)) if k == key))
            .collect();
        self.text = if kept.is_empty() {
            String::new()
        } else {
            kept.join("\n") + "\n"
        };
    }
}

/// A value `config::load` reads back unchanged: no `"`, `#` or line break.
pub fn conf_value_ok(value: &str) -> bool {
    !value.contains(['"', '#', '\n', '\r', '\0'])
}

/// `util::check_name` on FreeBSD 13 and later: `^[a-z0-9][.a-z0-9_-]{0,229}[a-z0-9]$`,
/// case-insensitive (guests, switches, datastores, tags).
pub fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let edge = |b: &u8| b.is_ascii_alphanumeric();
    (2..=231).contains(&bytes.len())
        && bytes.first().is_some_and(edge)
        && bytes.last().is_some_and(edge)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b".-_".contains(b))
}

/// A size as bhyve (`-m`, expand_number(3)) and truncate(1) (`-s`) read it: digits and an
/// optional K, M, G, T, P or E suffix, greater than zero.
pub fn valid_size(size: &str) -> bool {
    let digits = size.trim_end_matches(|c: char| "kKmMgGtTpPeE".contains(c));
    size.len() - digits.len() <= 1
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.bytes().any(|b| b != b'0')
}

/// Where a guest lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestPaths {
    pub datastore: String,
    pub dir: PathBuf,
    pub name: String,
}

impl GuestPaths {
    pub fn new(datastore: &str, datastore_path: &Path, name: &str) -> Self {
        GuestPaths {
            datastore: datastore.to_string(),
            dir: datastore_path.join(name),
            name: name.to_string(),
        }
    }
    pub fn conf(&self) -> PathBuf {
        self.dir.join(format!("{}.conf", self.name))
    }
    pub fn seed_dir(&self) -> PathBuf {
        self.dir.join(".cloud-init")
    }
    pub fn seed_file(&self, file: &str) -> PathBuf {
        self.seed_dir().join(file)
    }
    pub fn seed_iso(&self) -> PathBuf {
        self.dir.join("seed.iso")
    }
    pub fn log(&self) -> PathBuf {
        self.dir.join("vm-bhyve.log")
    }
    pub fn run_lock(&self) -> PathBuf {
        self.dir.join("run.lock")
    }
}

/// The arguments of one `vm create`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewGuest {
    pub name: String,
    pub datastore: Option<String>,
    pub template: Option<String>,
    pub disk_size: Option<String>,
    pub cpus: Option<u32>,
    pub memory: Option<String>,
    pub image: Option<String>,
    /// `-C`
    pub cloud_init: bool,
    /// `-k`
    pub key_file: Option<PathBuf>,
    /// `-u` (1.7.1+)
    pub user_data_file: Option<PathBuf>,
    /// `-n`, already in the version's key syntax.
    pub netconfig: Option<String>,
}

/// `vm create [-d ds] [-t template] [-s size] [-c cpus] [-m memory] [-i image] [-C [-k file |
/// -u file] [-n netconfig]] name` (v1.6.2/v1.7.1 `core::create` getopts).
pub fn create(vm: &Path, guest: &NewGuest) -> Cmd {
    let mut args: Vec<std::ffi::OsString> = vec!["create".into()];
    let options = [
        ("-d", guest.datastore.clone()),
        ("-t", guest.template.clone()),
        ("-s", guest.disk_size.clone()),
        ("-c", guest.cpus.map(|c| c.to_string())),
        ("-m", guest.memory.clone()),
        ("-i", guest.image.clone()),
    ];
    for (flag, value) in options {
        if let Some(v) = value {
            args.extend([flag.into(), v.into()]);
        }
    }
    if guest.cloud_init {
        args.push("-C".into());
    }
    if let Some(k) = &guest.key_file {
        args.extend(["-k".into(), k.clone().into_os_string()]);
    }
    if let Some(u) = &guest.user_data_file {
        args.extend(["-u".into(), u.clone().into_os_string()]);
    }
    if let Some(n) = &guest.netconfig {
        args.extend(["-n".into(), n.into()]);
    }
    args.push(guest.name.clone().into());
    Cmd::new(vm).args(args)
}

/// `vm start name`: returns before the guest is up.
pub fn start(vm: &Path, name: &str) -> Cmd {
    Cmd::new(vm).arg("start").arg(name)
}

/// `vm install name iso`: `vm start` with the ISO attached.
pub fn install(vm: &Path, name: &str, iso: &str) -> Cmd {
    Cmd::new(vm).arg("install").arg(name).arg(iso)
}

/// `vm stop name`: ACPI shutdown; returns at once.
pub fn stop(vm: &Path, name: &str) -> Cmd {
    Cmd::new(vm).arg("stop").arg(name)
}

/// `vm poweroff -f name` (the flag before the name, or it prompts).
pub fn poweroff(vm: &Path, name: &str) -> Cmd {
    Cmd::new(vm).args(["poweroff", "-f"]).arg(name)
}

/// `vm destroy -f name` (the flag before the name, or it prompts).
pub fn destroy(vm: &Path, name: &str) -> Cmd {
    Cmd::new(vm).args(["destroy", "-f"]).arg(name)
}

/// `vm img` (list the disk images).
pub fn img_list_cmd(vm: &Path) -> Cmd {
    Cmd::new(vm).arg("img")
}

/// `vm iso` (list the ISOs).
pub fn iso_list_cmd(vm: &Path) -> Cmd {
    Cmd::new(vm).arg("iso")
}

/// Reads `vm img`/`vm iso`: `printf "%-20s%s\n" DATASTORE FILENAME` rows.
pub fn parse_file_list(text: &str) -> Vec<(String, String)> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let (ds, file) = if line.len() > 20 && line.is_char_boundary(20) {
                line.split_at(20)
            } else {
                line.split_once(' ')?
            };
            let (ds, file) = (ds.trim(), file.trim());
            (!ds.is_empty() && !file.is_empty()).then(|| (ds.to_string(), file.to_string()))
        })
        .collect()
}

/// `vm datastore list`.
pub fn datastore_list_cmd(vm: &Path) -> Cmd {
    Cmd::new(vm).args(["datastore", "list"])
}

/// vm-bhyve's own seed image command: `makefs -t cd9660 -o R,L=cidata <iso> <dir>`
/// (v1.6.2 `core::create_cloud_init`, v1.7.2 `vm::run`).
pub fn makefs_seed(makefs: &Path, iso: &Path, dir: &Path) -> Cmd {
    Cmd::new(makefs)
        .args(["-t", "cd9660", "-o", "R,L=cidata"])
        .arg(iso)
        .arg(dir)
}

/// The network part of a seed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetSeed {
    pub interface: String,
    pub address: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    pub nameservers: Vec<String>,
    pub search_domains: Vec<String>,
    pub hostname: Option<String>,
}

/// The `-n` argument in this version's keys. Values holding `;` cannot be passed (the
/// separator); 1.6 has no key for the interface or search domains, which warden then writes
/// into network-config itself.
pub fn netconfig_arg(version: Version, net: &NetSeed) -> String {
    let mut pairs: Vec<String> = Vec::new();
    let v17 = version.netconfig_keys() == NetKeys::V17;
    if v17 && !net.interface.is_empty() {
        pairs.push(format!("interface={}", net.interface));
    }
    if let Some(a) = net.address {
        pairs.push(format!("ip={a}"));
    }
    if let Some(g) = net.gateway {
        pairs.push(format!("{}={g}", if v17 { "gateway4" } else { "gateway" }));
    }
    if !net.nameservers.is_empty() {
        pairs.push(format!("nameservers={}", net.nameservers.join(",")));
    }
    if v17 && !net.search_domains.is_empty() {
        pairs.push(format!("searchdomains={}", net.search_domains.join(",")));
    }
    if let Some(h) = &net.hostname {
        pairs.push(format!("hostname={h}"));
    }
    pairs.join(";")
}

/// The network-config nuageinit reads (freebsd-src libexec/nuageinit `network_config`): the
/// NIC matched by MAC and named `interface`, `addresses`, `gateway4` (nuageinit ignores a
/// `routes:` list, which is how vm-bhyve 1.7 writes the gateway), nameservers.
pub fn render_network_config(mac: &str, net: &NetSeed) -> String {
    let mut out = String::from("version: 2\nethernets:\n  id0:\n");
    if !net.interface.is_empty() {
        out.push_str(&format!("    set-name: {}\n", net.interface));
    }
    out.push_str(&format!("    match:\n      macaddress: {mac}\n"));
    match net.address {
        Some(a) => out.push_str(&format!("    addresses: [{a}]\n")),
        None => out.push_str("    dhcp4: true\n"),
    }
    if let Some(g) = net.gateway {
        out.push_str(&format!("    gateway4: {g}\n"));
    }
    if !net.nameservers.is_empty() || !net.search_domains.is_empty() {
        out.push_str("    nameservers:\n");
        if !net.nameservers.is_empty() {
            out.push_str(&format!(
                "      addresses: [{}]\n",
                net.nameservers.join(", ")
            ));
        }
        if !net.search_domains.is_empty() {
            out.push_str(&format!(
                "      search: [{}]\n",
                net.search_domains.join(", ")
            ));
        }
    }
    out
}

/// The first `addresses` entry of a network-config's first ethernet, in either layout vm-bhyve
/// writes (`addresses: [a, b]`, 1.7; `addresses:` then `- a` lines, 1.6), with its prefix.
pub fn network_config_address(text: &str) -> Option<String> {
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        let Some(rest) = trimmed.strip_prefix("addresses:") else {
            continue;
        };
        // nameservers' `addresses:` is nested deeper than the interface's.
        if line.len() - trimmed.len() > 4 {
            continue;
        }
        let rest = rest.trim();
        let first = if let Some(list) = rest.strip_prefix('[') {
            list.trim_end_matches(']').split(',').next().map(str::trim)
        } else if rest.is_empty() {
            lines
                .peek()
                .and_then(|l| l.trim_start().strip_prefix("- "))
                .map(str::trim)
        } else {
            Some(rest)
        };
        let first = first.map(|a| a.trim_matches(|c| c == '"' || c == '\''));
        if let Some(a) = first.filter(|a| !a.is_empty()) {
            return Some(a.to_string());
        }
    }
    None
}

/// Who the seed logs Ansible in as.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserSeed {
    pub user: String,
    pub keys: Vec<String>,
    /// `doas.conf` lines (nuageinit `adddoas`, `%u` = the user).
    pub doas: Vec<String>,
    /// sudoers lines after the user name (nuageinit `addsudo`).
    pub sudo: Vec<String>,
}

/// A `#cloud-config` user-data with one user (nuageinit `users`), in the same preamble vm-bhyve
/// generates (v1.7.0 `core::create_cloud_init`).
pub fn render_user_data(seed: &UserSeed) -> String {
    let mut out = String::from("#cloud-config\nresize_rootfs: True\nmanage_etc_hosts: localhost\n");
    out.push_str(&format!("users:\n  - name: {}\n", seed.user));
    if !seed.keys.is_empty() {
        out.push_str("    ssh_authorized_keys:\n");
        for k in &seed.keys {
            out.push_str(&format!("      - {}\n", yaml_quote(k)));
        }
    }
    for (key, lines) in [("doas", &seed.doas), ("sudo", &seed.sudo)] {
        if !lines.is_empty() {
            out.push_str(&format!("    {key}:\n"));
            for l in lines {
                out.push_str(&format!("      - {}\n", yaml_quote(l)));
            }
        }
    }
    out
}

/// The user-data vm-bhyve's `-k` writes (keys for nuageinit's default user `freebsd`).
pub fn render_key_user_data(keys: &[String]) -> String {
    let mut out = String::from("#cloud-config\nresize_rootfs: True\nmanage_etc_hosts: localhost\n");
    if !keys.is_empty() {
        out.push_str("ssh_authorized_keys:\n");
        for k in keys {
            out.push_str(&format!("  - {k}\n"));
        }
    }
    out
}

/// A double-quoted YAML scalar (`\` and `"` escaped).
fn yaml_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The cpu and memory of the guest's last start, from the last `initialising` block of
/// `vm-bhyve.log` (`vm::run`: ` [cpu: …]`, ` [memory: …]`). `cpu` is the plain count (a
/// topology suffix `,sockets=…` is dropped).
pub fn last_started_with(log: &str) -> Option<(String, String)> {
    let lines: Vec<&str> = log.lines().collect();
    let start = lines.iter().rposition(|l| l.ends_with(": initialising"))?;
    let field = |name: &str| {
        lines[start..].iter().find_map(|l| {
            let (_, rest) = l.split_once(&format!("[{name}: "))?;
            rest.strip_suffix(']').map(str::to_string)
        })
    };
    let cpu = field("cpu")?;
    let cpu = cpu.split(',').next().unwrap_or_default().to_string();
    Some((cpu, field("memory")?))
}

/// Log lines that say a start failed (`fatal; …`, `bhyve exited with status N` for N ≠ 0
/// before the guest ran), from `vm::run`.
pub fn start_failure(log_tail: &str) -> Option<String> {
    log_tail
        .lines()
        .map(|l| l.split_once(": ").map(|(_, m)| m).unwrap_or(l))
        .find(|m| m.starts_with("fatal;") || m.starts_with("bhyve exited with status"))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST_16: &str = include_str!("../../../tests/fixtures/vm/list-1.6.txt");
    const LIST_17: &str = include_str!("../../../tests/fixtures/vm/list-1.7.txt");
    const LIST_18: &str = include_str!("../../../tests/fixtures/vm/list-1.8-devel.txt");

    #[test]
    fn versions() {
        let v = |s: &str| Version::parse(s).unwrap();
        assert_eq!(
            v("vm-bhyve: Bhyve virtual machine management v1.7.2\n"),
            Version::new(1, 7, Some(2))
        );
        assert_eq!(
            v("vm-bhyve: Bhyve virtual machine management v1.6-devel"),
            Version::new(1, 6, None)
        );
        assert_eq!(v("1.8-devel").to_string(), "1.8-devel");
        assert!(Version::parse("vm-bhyve: nothing").is_err());
        assert!(v("1.6-devel").builds_seed_at_create());
        assert!(!v("1.7.0").builds_seed_at_create());
        assert!(!v("1.7.0").has_user_data_flag());
        assert!(v("1.7.1").has_user_data_flag());
        assert!(v("1.8-devel").has_user_data_flag());
        assert_eq!(v("1.6-devel").netconfig_keys(), NetKeys::V16);
        assert_eq!(v("1.7.0").netconfig_keys(), NetKeys::V17);
        assert!(!v("1.7.4").rejects_unknown_netconfig());
        assert!(v("1.7.5").rejects_unknown_netconfig());
        assert!(v("1.7.4").drops_searchdomains());
        assert!(!v("1.7.5").drops_searchdomains());
        assert!(!v("1.6-devel").has_suspended_state());
        assert!(v("1.7.0").has_suspended_state());
        assert!(!v("1.7.5").lists_tags());
        assert!(v("1.8-devel").lists_tags());
        assert!(!v("1.5.0").supported());
        assert!(v("1.6-devel").supported() && v("1.8-devel").supported());
    }

    #[test]
    fn list_reader_on_the_1_6_layout() {
        let vms = parse_list(LIST_16).unwrap();
        let names: Vec<&str> = vms.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["agent01", "agent02", "old", "db-vm.test"]);
        assert_eq!(vms[0].state, VmState::Running(4242));
        assert_eq!(vms[0].auto, "Yes [1]");
        assert_eq!(vms[1].state, VmState::Stopped);
        assert_eq!(vms[2].state, VmState::Locked("bhyve2".into()));
        assert_eq!(
            (
                vms[3].datastore.as_str(),
                vms[3].vnc.as_str(),
                vms[3].cpu.as_str()
            ),
            ("ssd", "0.0.0.0:5900", "4")
        );
        assert!(vms.iter().all(|v| v.tags.is_empty()));
    }

    #[test]
    fn list_reader_on_the_1_7_layout_with_suspended() {
        let vms = parse_list(LIST_17).unwrap();
        let sleepy = vms.iter().find(|v| v.name == "sleepy").unwrap();
        assert_eq!(sleepy.state, VmState::Suspended);
        assert!(!sleepy.state.is_running());
        assert_eq!(vms.len(), 5);
        assert_eq!(vms[4].memory, "8G");
    }

    #[test]
    fn list_reader_on_the_1_8_devel_layout_with_tags() {
        let vms = parse_list(LIST_18).unwrap();
        assert_eq!(vms[0].tags, ["warden", "agent"]);
        assert_eq!(vms[0].state, VmState::Running(4242));
        assert_eq!(vms[1].tags, ["warden"]);
        assert_eq!(vms[2].state, VmState::Locked("bhyve2".into()));
        assert!(vms[3].tags.is_empty());
    }

    #[test]
    fn list_reader_tolerates_an_empty_list_and_verbose_columns() {
        assert!(parse_list("").unwrap().is_empty());
        let header_only = "NAME  DATASTORE  LOADER  CPU  MEMORY  VNC  AUTO  STATE\n";
        assert!(parse_list(header_only).unwrap().is_empty());
        // `vm list -v` (1.7): `%5s^%8s^%14s` cells keep their leading spaces inside the column.
        let verbose = "NAME  DATASTORE  LOADER     CPU  MEMORY  VNC  AUTO  %CPU   RSZ       UPTIME          STATE\n\
                       a1    default    bhyveload  1    1G      -    No      0.0      120M        01:02:03  Running (7)\n";
        let vms = parse_list(verbose).unwrap();
        assert_eq!(vms[0].state, VmState::Running(7));
        assert!(parse_list("garbage\nmore\n").is_err());
    }

    #[test]
    fn states_round_trip() {
        for s in [
            "Running (12)",
            "Bootloader (3)",
            "Stopped",
            "Suspended",
            "Locked (h1)",
        ] {
            assert_eq!(VmState::parse(s).to_string(), s);
        }
        assert_eq!(VmState::parse("Weird"), VmState::Other("Weird".into()));
        assert!(VmState::Bootloader(1).is_running());
    }

    #[test]
    fn conf_reads_like_config_load_and_edits_keep_other_lines() {
        let mut conf = VmConf::parse(
            "loader=\"bhyveload\"\ncpu=1 # one\n# cpu=9\nmemory=256M\ncpu=3\n Indented=x\n",
        );
        assert_eq!(conf.get("cpu").as_deref(), Some("1"));
        assert_eq!(conf.get("loader").as_deref(), Some("bhyveload"));
        assert_eq!(conf.get("Indented"), None);
        conf.set("cpu", "4");
        assert_eq!(
            conf.text(),
            "loader=\"bhyveload\"\ncpu=\"4\"\n# cpu=9\nmemory=256M\n Indented=x\n"
        );
        conf.set("tags", "warden agent");
        assert_eq!(conf.get("tags").as_deref(), Some("warden agent"));
        conf.remove("tags");
        assert_eq!(conf.get("tags"), None);
        assert!(conf_value_ok("2G") && !conf_value_ok("a\"b") && !conf_value_ok("a#b"));
    }

    #[test]
    fn names_and_sizes() {
        for ok in ["vm01", "a1", "db-vm.test", "A_b"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["a", "-vm", "vm-", "vm 1", "vm;1", "", "é1"] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert!(valid_name(&"a".repeat(231)) && !valid_name(&"a".repeat(232)));
        for ok in ["20G", "512M", "1024", "2t"] {
            assert!(valid_size(ok), "{ok}");
        }
        for bad in ["lots", "0", "0G", "G", "2GB", "-1G", "1.5G", ""] {
            assert!(!valid_size(bad), "{bad}");
        }
    }

    #[test]
    fn command_forms() {
        let vm = Path::new("/usr/local/sbin/vm");
        let guest = NewGuest {
            name: "vm01".into(),
            datastore: Some("default".into()),
            template: Some("default".into()),
            disk_size: Some("20G".into()),
            cpus: Some(2),
            memory: Some("2G".into()),
            image: Some("FreeBSD-14.2.raw".into()),
            cloud_init: true,
            key_file: None,
            user_data_file: Some("/vm/.warden-vm01-user-data".into()),
            netconfig: Some("interface=vtnet0;ip=10.0.0.11/24".into()),
        };
        assert_eq!(
            create(vm, &guest).to_string(),
            "/usr/local/sbin/vm create -d default -t default -s 20G -c 2 -m 2G -i FreeBSD-14.2.raw -C \
             -u /vm/.warden-vm01-user-data -n 'interface=vtnet0;ip=10.0.0.11/24' vm01"
        );
        assert_eq!(
            destroy(vm, "vm01").to_string(),
            "/usr/local/sbin/vm destroy -f vm01"
        );
        assert_eq!(
            poweroff(vm, "vm01").to_string(),
            "/usr/local/sbin/vm poweroff -f vm01"
        );
        assert_eq!(
            start(vm, "vm01").to_string(),
            "/usr/local/sbin/vm start vm01"
        );
        assert_eq!(
            makefs_seed(
                Path::new("/usr/sbin/makefs"),
                Path::new("/vm/a/seed.iso"),
                Path::new("/vm/a/.cloud-init")
            )
            .to_string(),
            "/usr/sbin/makefs -t cd9660 -o R,L=cidata /vm/a/seed.iso /vm/a/.cloud-init"
        );
    }

    #[test]
    fn netconfig_per_version() {
        let net = NetSeed {
            interface: "vtnet0".into(),
            address: Some("10.0.0.11/24".parse().unwrap()),
            gateway: Some(Ipv4Addr::new(10, 0, 0, 1)),
            nameservers: vec!["1.1.1.1".into(), "9.9.9.9".into()],
            search_domains: vec!["lan".into()],
            hostname: Some("vm01".into()),
        };
        assert_eq!(
            netconfig_arg(Version::new(1, 6, None), &net),
            "ip=10.0.0.11/24;gateway=10.0.0.1;nameservers=1.1.1.1,9.9.9.9;hostname=vm01"
        );
        assert_eq!(
            netconfig_arg(Version::new(1, 7, Some(5)), &net),
            "interface=vtnet0;ip=10.0.0.11/24;gateway4=10.0.0.1;nameservers=1.1.1.1,9.9.9.9;searchdomains=lan;hostname=vm01"
        );
        let text = render_network_config("58:9c:fc:01:02:03", &net);
        assert_eq!(
            text,
            "version: 2\nethernets:\n  id0:\n    set-name: vtnet0\n    match:\n      macaddress: 58:9c:fc:01:02:03\n    \
             addresses: [10.0.0.11/24]\n    gateway4: 10.0.0.1\n    nameservers:\n      addresses: [1.1.1.1, 9.9.9.9]\n      \
             search: [lan]\n"
        );
        assert_eq!(
            network_config_address(&text).as_deref(),
            Some("10.0.0.11/24")
        );
    }

    #[test]
    fn network_config_address_in_both_vm_bhyve_layouts() {
        // v1.6.2 core::create_cloud_init
        let v16 = "version: 2\nethernets:\n  id0:\n    set-name: eth0\n    match:\n      macaddress: \"58:9c:fc:0a:0b:0c\"\n    \
                   addresses:\n      - 10.0.0.12/24\n    gateway4: 10.0.0.1\n    nameservers:\n      search: []\n      addresses: [1.1.1.1]\n";
        assert_eq!(network_config_address(v16).as_deref(), Some("10.0.0.12/24"));
        // v1.7.x core::compile_network_config, DHCP: no address
        let dhcp = "version: 2\nethernets:\n  id0:\n    set-name: eth0\n    match:\n      macaddress: 58:9c:fc:0a:0b:0c\n    \
                    dhcp4: true\n    dhcp6: true\n    accept-ra: true\n    nameservers:\n      addresses: [1.1.1.1]\n";
        assert_eq!(network_config_address(dhcp), None);
    }

    #[test]
    fn user_data_and_logs() {
        let text = render_user_data(&UserSeed {
            user: "admin".into(),
            keys: vec!["ssh-ed25519 AAAA k@h".into()],
            doas: vec!["permit nopass %u".into()],
            sudo: vec![],
        });
        assert!(text.starts_with("#cloud-config\n"));
        assert!(text.contains(
            "users:\n  - name: admin\n    ssh_authorized_keys:\n      - \"ssh-ed25519 AAAA k@h\"\n"
        ));
        assert!(text.contains("    doas:\n      - \"permit nopass %u\"\n"));
        let log = "2025-01-01T00:00:00+00:00: initialising\n2025-01-01T00:00:00+00:00:  [loader: bhyveload]\n\
                   2025-01-01T00:00:00+00:00:  [cpu: 1]\n2025-01-01T00:00:00+00:00:  [memory: 256M]\n\
                   2025-01-02T00:00:00+00:00: initialising\n2025-01-02T00:00:00+00:00:  [cpu: 2,sockets=1]\n\
                   2025-01-02T00:00:00+00:00:  [memory: 2G]\n2025-01-02T00:00:01+00:00: fatal; loader returned error 1\n";
        assert_eq!(last_started_with(log), Some(("2".into(), "2G".into())));
        assert_eq!(
            start_failure(log).as_deref(),
            Some("fatal; loader returned error 1")
        );
        assert_eq!(start_failure("x: booting\n"), None);
    }

    #[test]
    fn datastores_and_file_lists() {
        let system = VmConf::parse(
            "datastore_list=\"ssd tank isos\"\npath_ssd=\"/ssd/vm\"\npath_tank=\"zfs:tank/vm\"\npath_isos=\"iso:/isos\"\nswitch_list=\"public\"\n",
        );
        let mount = "tank/vm on /tank/vm (zfs, local, nfsv4acls)\n/dev/ada0p2 on / (ufs, local)\n";
        let stores = datastores(Path::new("/vm"), &system, mount);
        let got: Vec<(&str, &str, bool)> = stores
            .iter()
            .map(|d| (d.name.as_str(), d.path.to_str().unwrap(), d.holds_guests()))
            .collect();
        assert_eq!(
            got,
            [
                ("default", "/vm", true),
                ("ssd", "/ssd/vm", true),
                ("tank", "/tank/vm", true),
                ("isos", "/isos", false)
            ]
        );
        let img = "DATASTORE           FILENAME\ndefault             FreeBSD-14.2-RELEASE-amd64.raw\nimages              disk.qcow2\n";
        assert_eq!(
            parse_file_list(img),
            [
                ("default".into(), "FreeBSD-14.2-RELEASE-amd64.raw".into()),
                ("images".into(), "disk.qcow2".into())
            ]
        );
    }
}
