//! Simulated Bastille (BastilleBSD/bastille `usr/local/share/bastille/*.sh`, tags 0.10 … 1.4.4;
//! the project's Bastille facts) and `jls`. The version is chosen per host in
//! `<root>/sim/bastille.version` (default `1.4.4`) and changes what the real tool changes:
//! * `info` lines (headers such as `\n[NAME]:`) go to stderr on 1.4.x, to stdout before;
//!   errors always to stderr, followed (1.x `error_exit`) by an empty stdout line, exit 1;
//! * VNET jail names with `-` or `_` are refused from 1.1.0 (`validate_name`);
//! * `-g` (gateway) and `destroy -y`, `pkg -y` exist from 1.0; without `-g` a VNET jail gets
//!   the host's default route as `defaultrouter` (here 192.168.122.1);
//! * epair names: `e0a_NAME` when that fits in 15 characters, else `e0a_bastilleN` (1.1.1+),
//!   `e0a_<7 chars>xx<2 chars>` (1.0–1.1.0), `epairNa` (0.14); 0.10 does not check, so such
//!   a jail fails to start;
//! * `start` on a running jail / `stop` on a stopped one, and a failing `jail -c`, exit 0;
//!   `pkg`/`sysrc`/`service` on a stopped jail print `Jail is not running.` and exit 0; from
//!   1.1 a failing inner command exits 1 with `[ERROR]: Command failed on 1 jails.`;
//! * `destroy` prompts from 1.0 unless `-y` (empty stdin: `Invalid input`), refuses a running
//!   jail without `-a` (`Jail is running.`, exit 0);
//! * `list`: 1.x table with a Name column, `list jails` one name per line, `list -j` JSON;
//!   0.14 `list` is plain `jls` and `list all` a table without names; 0.10 `list -a` puts
//!   the name in the JID column.
//!
//! Jails live under the prefix from `<root>/usr/local/etc/bastille/bastille.conf`, laid out
//! as Bastille does (`jails/N/{jail.conf,fstab,settings.conf,root/}`); packages installed in
//! a jail are recorded in its root (`var/db/pkg/sim-packages`), rc.d scripts of packages that
//! have a service appear in `root/usr/local/etc/rc.d/`, and running services in
//! `root/var/run/sim-services`.

use std::collections::BTreeMap;
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dispatch::{Out, SIM_FAILURE};
use crate::ifconfig::{IfKind, IfState, Iface};

/// The sim's package repository: name → rc.d service it installs.
const CATALOGUE: &[(&str, Option<&str>)] = &[
    ("git", None),
    ("git-lite", None),
    ("nginx", Some("nginx")),
    ("caddy", Some("caddy")),
    ("postgresql15-server", Some("postgresql")),
    ("postgresql16-server", Some("postgresql")),
    ("postgresql17-server", Some("postgresql")),
    ("ollama", Some("ollama")),
    ("llama-cpp", Some("llama_server")),
    ("node22", None),
    ("npm-node22", None),
    ("python311", None),
    ("redis", Some("redis")),
    ("curl", None),
    ("tmux", None),
];

/// The host's own default route, which Bastille gives a VNET jail when `-g` is missing.
const HOST_DEFAULT_ROUTE: &str = "192.168.122.1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(u32, u32, u32);

impl Version {
    pub fn parse(text: &str) -> Version {
        let parts: Vec<u32> = text
            .trim()
            .split('.')
            .map(|p| p.parse().unwrap_or(0))
            .collect();
        let patch = match parts.get(2) {
            // 0.14.20250420, 1.0.20250714: the third field is a date.
            Some(p) if *p >= 100_000 => 0,
            Some(p) => *p,
            None => 0,
        };
        Version(
            parts.first().copied().unwrap_or(0),
            parts.get(1).copied().unwrap_or(0),
            patch,
        )
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Running {
    jails: BTreeMap<String, u32>,
    next_jid: u32,
}

impl Running {
    fn load(root: &Path) -> Running {
        fs::read_to_string(root.join("sim/jails.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Running {
                jails: BTreeMap::new(),
                next_jid: 1,
            })
    }
    fn save(&self, root: &Path) {
        if let Ok(text) = serde_json::to_string_pretty(self) {
            let _ = fs::write(root.join("sim/jails.json"), text);
        }
    }
}

struct Bastille {
    root: PathBuf,
    version: Version,
    version_text: String,
    prefix: PathBuf,
    out: Out,
}

pub fn run(root: &Path, args: &[String]) -> Out {
    let version_text = fs::read_to_string(root.join("sim/bastille.version"))
        .map(|t| t.trim().to_string())
        .unwrap_or_else(|_| "1.4.4".into());
    let conf = root.join("usr/local/etc/bastille/bastille.conf");
    let prefix = crate::sysrc::eval(
        &root.join("etc/defaults/rc.conf"),
        std::slice::from_ref(&conf),
        "bastille_prefix",
    );
    let Some(prefix) = prefix else {
        return Out {
            stdout: "\n[ERROR]: No config file found!\nPlease run 'bastille setup' to configure Bastille.\n".into(),
            stderr: String::new(),
            rc: 1,
        };
    };
    let mut b = Bastille {
        root: root.to_owned(),
        version: Version::parse(&version_text),
        version_text,
        prefix: PathBuf::from(prefix),
        out: Out::default(),
    };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let rc = match args.first().copied() {
        Some("-v" | "--version" | "version") => {
            let text = b.version_text.clone();
            b.info(&text);
            0
        }
        Some("create") => b.create(&args[1..]),
        Some("start") => b.start_cmd(&args[1..]),
        Some("stop") => b.stop_cmd(&args[1..]),
        Some("restart") => {
            let stop = b.stop_cmd(&args[1..]);
            if stop != 0 {
                stop
            } else {
                b.start_cmd(&args[1..])
            }
        }
        Some("destroy") => b.destroy(&args[1..]),
        Some("list") => b.list(&args[1..]),
        Some("bootstrap") => b.bootstrap(&args[1..]),
        Some("pkg") => b.in_jail("pkg", &args[1..]),
        Some("sysrc") => b.in_jail("sysrc", &args[1..]),
        Some("service") => b.in_jail("service", &args[1..]),
        Some("config") => b.config(&args[1..]),
        Some(other) => {
            return Out::err(
                SIM_FAILURE,
                format!("freebsd-sim: bastille {other} is not simulated\n"),
            );
        }
        None => {
            b.out.stdout.push_str("Bastille is an open-source system for automating deployment and management of\ncontainerized applications on FreeBSD.\n\nUsage:\n  bastille command TARGET [args]\n");
            1
        }
    };
    b.out.rc = rc;
    b.out
}

impl Bastille {
    fn v1(&self) -> bool {
        self.version >= Version(1, 0, 0)
    }

    /// `info`: stderr on 1.4.x, stdout before.
    fn info(&mut self, text: &str) {
        if self.version >= Version(1, 4, 0) {
            self.out.stderr.push_str(&format!("{text}\n"));
        } else {
            self.out.stdout.push_str(&format!("{text}\n"));
        }
    }

    /// `error_exit`: the message on stderr, then (1.x) an empty line on stdout; exit 1.
    fn error_exit(&mut self, text: &str) -> i32 {
        self.out.stderr.push_str(&format!("{text}\n"));
        if self.v1() {
            self.out.stdout.push('\n');
        }
        1
    }

    fn error_continue(&mut self, text: &str) -> i32 {
        self.out.stderr.push_str(&format!("{text}\n"));
        0
    }

    fn jails_dir(&self) -> PathBuf {
        self.prefix.join("jails")
    }

    fn jail_dir(&self, name: &str) -> PathBuf {
        self.jails_dir().join(name)
    }

    fn jail_root(&self, name: &str) -> PathBuf {
        self.jail_dir(name).join("root")
    }

    fn exists(&self, name: &str) -> bool {
        self.jail_dir(name).join("jail.conf").is_file()
    }

    fn jail_names(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.jails_dir())
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.retain(|n| self.exists(n));
        names.sort();
        names
    }

    /// `set_target`: exact name, else a unique prefix (autocomplete); all digits = a JID.
    fn target(&mut self, target: &str) -> Option<String> {
        if self.exists(target) {
            return Some(target.to_string());
        }
        if !target.is_empty() && target.bytes().all(|b| b.is_ascii_digit()) {
            let running = Running::load(&self.root);
            if let Some((name, _)) = running
                .jails
                .iter()
                .find(|(_, jid)| jid.to_string() == target)
            {
                return Some(name.clone());
            }
        }
        let matches: Vec<String> = self
            .jail_names()
            .into_iter()
            .filter(|n| n.starts_with(target))
            .collect();
        match matches.len() {
            1 => Some(matches[0].clone()),
            0 => {
                if self.v1() {
                    self.error_exit(&format!("Jail not found \"{target}\""));
                } else {
                    self.out
                        .stderr
                        .push_str(&format!("[{target}]: Not found.\n"));
                }
                None
            }
            _ => {
                self.error_exit(&format!(
                    "Multiple jails found for {target}:\n{}",
                    matches.join("\n")
                ));
                None
            }
        }
    }

    fn running(&self, name: &str) -> bool {
        Running::load(&self.root).jails.contains_key(name)
    }

    fn create(&mut self, args: &[&str]) -> i32 {
        let mut vnet_bridge = false;
        let mut vnet = false;
        let mut gateway: Option<String> = None;
        let mut boot = true;
        let mut i = 0;
        while i < args.len() && args[i].starts_with('-') {
            match args[i] {
                "-B" | "--bridge" => vnet_bridge = true,
                "-V" | "--vnet" => vnet = true,
                "-T" | "--thick" => {}
                "--no-boot" if self.v1() => boot = false,
                "-g" | "--gateway" | "--defaultrouter" if self.v1() => {
                    i += 1;
                    gateway = args.get(i).map(|s| s.to_string());
                }
                other => {
                    let msg = if self.v1() {
                        format!("[ERROR]: Unknown Option: \"{other}\"")
                    } else {
                        "Unknown Option.".into()
                    };
                    return self.error_exit(&msg);
                }
            }
            i += 1;
        }
        let rest = &args[i..];
        if rest.len() < 3 || rest.len() > 4 {
            return self
                .error_exit("Usage: bastille create [option(s)] NAME RELEASE IP [INTERFACE]");
        }
        let (name, release, ip, iface) = (
            rest[0],
            rest[1],
            rest[2],
            rest.get(3).copied().unwrap_or(""),
        );
        let any_vnet = vnet || vnet_bridge;
        self.info(&format!(
            "\n{} jail: {name}...",
            if self.v1() {
                "Creating"
            } else {
                "Attempting to create"
            }
        ));
        // validate_name, in Bastille's order.
        if self.exists(name) {
            return self.error_exit(&format!("[ERROR]: Jail already exists: {name}"));
        }
        if name.starts_with(['-', '_']) {
            return self.error_exit("[ERROR]: Jail names may not begin with (-|_) characters!");
        }
        if any_vnet && name.contains(['-', '_']) && self.version >= Version(1, 1, 0) {
            return self.error_exit("[ERROR]: VNET jail names may not contain (-|_) characters.");
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return self.error_exit("[ERROR]: Jail names may not contain special characters!");
        }
        if name.bytes().all(|b| b.is_ascii_digit()) {
            return self.error_exit("[ERROR]: Jail names may not contain only digits.");
        }
        let interfaces = IfState::load(&self.root)
            .map(|s| s.ifaces)
            .unwrap_or_default();
        if vnet_bridge
            && !interfaces
                .iter()
                .any(|i| i.name == iface && i.groups.iter().any(|g| g == "bridge"))
        {
            return self.error_exit(&format!("[ERROR]: Interface is not a bridge: {iface}"));
        }
        let release = release.to_uppercase();
        if !release.ends_with("-RELEASE")
            && !release.contains("-RC")
            && !release.ends_with("-CURRENT")
            && !release.ends_with("-STABLE")
        {
            return self.error_exit(&format!("Unknown release: {release}"));
        }
        if !self.prefix.join("releases").join(&release).is_dir() {
            return self.error_exit(
                "[ERROR]: Release must be bootstrapped first.\nSee 'bastille bootstrap'.",
            );
        }
        let ip = if ip.contains('/') || !any_vnet {
            ip.to_string()
        } else {
            format!("{ip}/24")
        };
        let (addr, prefix) = ip.split_once('/').unwrap_or((&ip, "24"));
        if addr.parse::<Ipv4Addr>().is_err() {
            return self.error_exit(&format!("[ERROR]: Invalid IP: {ip}"));
        }
        if prefix.parse::<u8>().map(|p| p > 32).unwrap_or(true) {
            return self.error_exit(&format!("[ERROR]: Invalid subnet: /{prefix}"));
        }
        self.info(&format!("\nValid IP: {ip}"));
        if !interfaces.iter().any(|i| i.name == iface) {
            return self.error_exit(&format!("[ERROR]: Invalid interface: {iface}"));
        }
        self.info(&format!("\nValid interface: {iface}"));
        if let Some(g) = &gateway {
            if g.parse::<Ipv4Addr>().is_err() {
                return self.error_exit(&format!("[ERROR]: Not a valid gateway: {g}"));
            }
        }
        self.info("\nCreating a thinjail...\n");

        let epair = self.epair_name(name);
        let dir = self.jail_dir(name);
        let jroot = self.jail_root(name);
        for sub in [
            "etc/defaults",
            "var/db/pkg",
            "var/run",
            "usr/local/etc/rc.d",
            "tmp",
        ] {
            if fs::create_dir_all(jroot.join(sub)).is_err() {
                return self.error_exit(&format!("[ERROR]: Failed to create jail: {name}"));
            }
        }
        let release_path = self.prefix.join("releases").join(&release);
        let osrelease = fs::read_to_string(release_path.join("bin/freebsd-version"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| release.clone());
        let conf = format!(
            "{name} {{\n  enforce_statfs = 2;\n  devfs_ruleset = 13;\n  exec.clean;\n  exec.consolelog = /var/log/bastille/{name}_console.log;\n  \
             exec.start = '/bin/sh /etc/rc';\n  exec.stop = '/bin/sh /etc/rc.shutdown';\n  host.hostname = {name};\n  mount.devfs;\n  \
             mount.fstab = {dir}/fstab;\n  path = {jroot};\n  securelevel = 2;\n  osrelease = \"{osrelease}\";\n\n  vnet;\n  \
             vnet.interface = {b};\n  exec.prestart += \"epair0=\\$(ifconfig epair create) && ifconfig \\${{epair0}} up name {a} && ifconfig \\${{epair0%a}}b up name {b}\";\n  \
             exec.prestart += \"ifconfig {iface} addm {a}\";\n  exec.prestart += \"ifconfig {a} description \\\"vnet0 host interface for Bastille jail {name}\\\"\";\n  \
             exec.poststop += \"ifconfig {a} destroy\";\n}}\n",
            dir = dir.display(),
            jroot = jroot.display(),
            a = epair.0,
            b = epair.1,
        );
        let gw = gateway
            .clone()
            .unwrap_or_else(|| HOST_DEFAULT_ROUTE.to_string());
        let rc = format!(
            "ifconfig_{}_name=\"vnet0\"\nifconfig_vnet0=\"inet {ip}\"\nifconfig_vnet0_descr=\"jail interface for {iface}\"\nifconfig_vnet0_ipv6=\"\"\n\
             defaultrouter=\"{gw}\"\nipv6_defaultrouter=\"NO\"\nsyslogd_flags=\"-ss\"\nsendmail_enable=\"NO\"\nsendmail_submit_enable=\"NO\"\n\
             sendmail_outbound_enable=\"NO\"\nsendmail_msp_queue_enable=\"NO\"\ncron_flags=\"-J 60\"\n",
            epair.1.replace('-', "_")
        );
        let defaults =
            fs::read_to_string(self.root.join("etc/defaults/rc.conf")).unwrap_or_default();
        let writes = [
            (dir.join("jail.conf"), conf),
            (
                dir.join("fstab"),
                format!(
                    "{} {}/.bastille nullfs ro 0 0\n",
                    release_path.display(),
                    jroot.display()
                ),
            ),
            (
                dir.join("settings.conf"),
                format!(
                    "boot=\"{}\"\ndepend=\"\"\npriority=\"99\"\n",
                    if boot { "on" } else { "off" }
                ),
            ),
            (jroot.join("etc/rc.conf"), rc),
            (jroot.join("etc/defaults/rc.conf"), defaults),
            (jroot.join("var/db/pkg/sim-packages"), String::new()),
        ];
        for (path, text) in writes {
            if fs::write(&path, text).is_err() {
                return self.error_exit(&format!("[ERROR]: Failed to create jail: {name}"));
            }
        }
        // create starts the jail, applies the templates, and restarts it.
        self.start_one(name);
        if !self.running(name) {
            let _ = fs::remove_dir_all(&dir);
            return self.error_exit(&format!("[ERROR]: Failed to create jail: {name}"));
        }
        0
    }

    /// (host side, jail side) epair names for a new jail.
    fn epair_name(&self, name: &str) -> (String, String) {
        if format!("e0a_{name}").len() < 16 || self.version < Version(0, 11, 0) {
            return (format!("e0a_{name}"), format!("e0b_{name}"));
        }
        if self.version >= Version(1, 1, 1) {
            let used: String = self
                .jail_names()
                .iter()
                .filter_map(|j| fs::read_to_string(self.jail_dir(j).join("jail.conf")).ok())
                .collect();
            let n = (0..)
                .find(|n| !used.contains(&format!("e0b_bastille{n};")))
                .unwrap_or(0);
            return (format!("e0a_bastille{n}"), format!("e0b_bastille{n}"));
        }
        if self.version >= Version(1, 0, 0) {
            let first: String = name.chars().take(7).collect();
            let last: String = name
                .chars()
                .rev()
                .take(2)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            return (
                format!("e0a_{first}xx{last}"),
                format!("e0b_{first}xx{last}"),
            );
        }
        let n = self.jail_names().len();
        (format!("epair{n}a"), format!("epair{n}b"))
    }

    fn start_cmd(&mut self, args: &[&str]) -> i32 {
        let Some(target) = args.iter().find(|a| !a.starts_with('-')) else {
            return self.error_exit("Usage: bastille start [option(s)] TARGET");
        };
        let Some(name) = self.target(target) else {
            return 1;
        };
        if self.running(&name) {
            self.info(&format!("\n[{name}]:"));
            return self.error_continue("Jail is already running.");
        }
        self.start_one(&name);
        0
    }

    fn stop_cmd(&mut self, args: &[&str]) -> i32 {
        let Some(target) = args.iter().find(|a| !a.starts_with('-')) else {
            return self.error_exit("Usage: bastille stop [option(s)] TARGET");
        };
        let Some(name) = self.target(target) else {
            return 1;
        };
        if !self.running(&name) {
            if self.v1() {
                self.info(&format!("\n[{name}]:"));
                return self.error_continue("Jail is already stopped.");
            }
            self.out.stderr.push_str(&format!(
                "[{name}]: Not started. See 'bastille start {name}'.\n"
            ));
            return 1;
        }
        self.stop_one(&name);
        0
    }

    /// `jail -c`: creates the epair, adds it to the bridge, starts the enabled services.
    /// Failures are printed the way jail(8) does and do not change the exit code.
    fn start_one(&mut self, name: &str) {
        self.info(&format!("\n[{name}]:"));
        let conf = fs::read_to_string(self.jail_dir(name).join("jail.conf")).unwrap_or_default();
        let field = |key: &str| {
            conf.lines().find_map(|l| {
                l.trim().strip_prefix(key).map(|r| {
                    r.trim_start_matches([' ', '='])
                        .trim_end_matches(';')
                        .trim()
                        .to_string()
                })
            })
        };
        let jail_side = field("vnet.interface").unwrap_or_default();
        let host_side = match jail_side.strip_prefix("e0b_") {
            Some(rest) => format!("e0a_{rest}"),
            None => format!("{}a", jail_side.trim_end_matches('b')),
        };
        let bridge = conf
            .lines()
            .find_map(|l| {
                l.split("ifconfig ")
                    .nth(1)
                    .and_then(|r| r.split_once(" addm "))
                    .map(|(b, _)| b.to_string())
            })
            .unwrap_or_default();
        let Ok(mut state) = IfState::load(&self.root) else {
            return;
        };
        if host_side.len() > 15 {
            self.out.stdout.push_str(&format!("ifconfig: ioctl SIOCSIFNAME (set name): Invalid argument\njail: {name}: exec.prestart failed\n"));
            return;
        }
        if !state.ifaces.iter().any(|i| i.name == bridge) {
            self.out.stdout.push_str(&format!(
                "ifconfig: interface {bridge} does not exist\njail: {name}: ifconfig {bridge} addm {host_side}: failed\n"
            ));
            return;
        }
        state.serial += 1;
        state.ifaces.push(Iface {
            name: host_side.clone(),
            kind: IfKind::Epair,
            up: true,
            mtu: 1500,
            ether: Some(format!(
                "58:9c:fc:10:{:02x}:{:02x}",
                (state.serial >> 8) & 0xff,
                state.serial & 0xff
            )),
            description: Some(format!("vnet0 host interface for Bastille jail {name}")),
            inet: vec![],
            inet6: vec![],
            members: vec![],
            groups: vec!["epair".into()],
        });
        if let Some(b) = state.ifaces.iter_mut().find(|i| i.name == bridge) {
            b.members.push(host_side);
        }
        let _ = state.save(&self.root);
        let mut running = Running::load(&self.root);
        let jid = running.next_jid;
        running.next_jid += 1;
        running.jails.insert(name.to_string(), jid);
        running.save(&self.root);
        // rc inside the jail starts its enabled services.
        let jroot = self.jail_root(name);
        let enabled: Vec<String> = installed_services(&jroot)
            .into_iter()
            .filter(|s| {
                jail_var(&jroot, &format!("{s}_enable"))
                    .is_some_and(|v| v.eq_ignore_ascii_case("yes"))
            })
            .collect();
        write_running_services(&jroot, &enabled);
        self.out.stdout.push_str(&format!("{name}: created\n"));
    }

    fn stop_one(&mut self, name: &str) {
        self.info(&format!("\n[{name}]:"));
        let mut running = Running::load(&self.root);
        running.jails.remove(name);
        running.save(&self.root);
        if let Ok(mut state) = IfState::load(&self.root) {
            let desc = format!("vnet0 host interface for Bastille jail {name}");
            let gone: Vec<String> = state
                .ifaces
                .iter()
                .filter(|i| i.description.as_deref() == Some(desc.as_str()))
                .map(|i| i.name.clone())
                .collect();
            state.ifaces.retain(|i| !gone.contains(&i.name));
            for iface in &mut state.ifaces {
                iface.members.retain(|m| !gone.contains(m));
            }
            let _ = state.save(&self.root);
        }
        write_running_services(&self.jail_root(name), &[]);
        self.out.stdout.push_str(&format!("{name}: removed\n"));
    }

    fn destroy(&mut self, args: &[&str]) -> i32 {
        let mut auto = false;
        let mut yes = false;
        let mut force = false;
        let mut target = None;
        for a in args {
            match *a {
                "-a" | "--auto" => auto = true,
                "-y" | "--yes" if self.v1() => yes = true,
                "-f" | "--force" => force = true,
                "force" if !self.v1() && self.version < Version(0, 11, 0) => force = true,
                flag if flag.starts_with('-') => {
                    return self.error_exit(&format!("[ERROR]: Unknown Option: \"{flag}\""))
                }
                name => target = Some(name),
            }
        }
        let Some(name) = target else {
            return self.error_exit("Usage: bastille destroy [option(s)] JAIL|RELEASE");
        };
        if !self.exists(name) {
            return self.error_exit(&format!("Jail not found \"{name}\""));
        }
        if self.running(name) {
            if auto || (force && self.version < Version(0, 11, 0)) {
                self.stop_one(name);
            } else if self.v1() {
                self.info(&format!("\n[{name}]:"));
                self.out
                    .stderr
                    .push_str("Jail is running.\nUse [-a|--auto] to auto-stop the jail.\n");
                return 0;
            } else {
                return self.error_exit(&format!("Jail running.\nSee 'bastille stop {name}'."));
            }
        }
        if self.v1() && !yes {
            self.info(&format!("\nAttempting to destroy jail: {name}"));
            self.out
                .stdout
                .push_str("Are you sure you want to continue? [y|n]:");
            return self.error_exit("[ERROR]: Invalid input. Please answer 'y' or 'n'.");
        }
        let _ = fs::remove_dir_all(self.jail_dir(name));
        self.info("Destroying jail...");
        0
    }

    fn bootstrap(&mut self, args: &[&str]) -> i32 {
        let Some(release) = args.iter().find(|a| !a.starts_with('-')) else {
            return self.error_exit("Usage: bastille bootstrap [option(s)] RELEASE|TEMPLATE");
        };
        let release = release.to_uppercase();
        let dir = self.prefix.join("releases").join(&release);
        if dir.is_dir() {
            self.info(&format!("Bootstrap appears complete: {release}"));
            return 0;
        }
        if fs::create_dir_all(dir.join("bin")).is_err() {
            return self.error_exit(&format!("[ERROR]: Failed to bootstrap release: {release}"));
        }
        let _ = fs::write(dir.join("COPYRIGHT"), "FreeBSD\n");
        let _ = fs::write(dir.join("bin/freebsd-version"), format!("{release}-p1\n"));
        self.info(&format!("Bootstrap successful: {release}"));
        0
    }

    fn config(&mut self, args: &[&str]) -> i32 {
        match args {
            [name, "get", key] if self.exists(name) => {
                let value = crate::sysrc::eval(
                    &self.root.join("etc/defaults/rc.conf"),
                    &[self.jail_dir(name).join("settings.conf")],
                    key,
                );
                self.out
                    .stdout
                    .push_str(&format!("{}\n", value.unwrap_or_else(|| "not set".into())));
                0
            }
            [name, "set", key @ ("boot" | "priority"), value] if self.exists(name) => {
                if *key == "boot" && !matches!(*value, "on" | "off") {
                    return self.error_exit("Boot value must be 'on' or 'off'.");
                }
                let settings = self.jail_dir(name).join("settings.conf");
                let out = crate::sysrc::run(
                    &self.root,
                    &[
                        "-f".into(),
                        settings.to_string_lossy().into_owned(),
                        format!("{key}={value}"),
                    ],
                );
                self.out = std::mem::take(&mut self.out).then(out);
                0
            }
            [name, ..] if !self.exists(name) => {
                self.error_exit(&format!("Jail not found \"{name}\""))
            }
            _ => self.error_exit("Usage: bastille config TARGET [get|set] PROPERTY [VALUE]"),
        }
    }

    fn list(&mut self, args: &[&str]) -> i32 {
        let running = Running::load(&self.root);
        let names = self.jail_names();
        let json = args.contains(&"-j") || args.contains(&"--json");
        let words: Vec<&str> = args
            .iter()
            .copied()
            .filter(|a| !a.starts_with('-'))
            .collect();
        match (words.first().copied(), self.v1()) {
            (Some("jails" | "jail" | "container" | "containers"), _) => {
                for n in names {
                    self.out.stdout.push_str(&format!("{n}\n"));
                }
                0
            }
            (Some("releases" | "release"), _) => {
                let mut rels: Vec<String> = fs::read_dir(self.prefix.join("releases"))
                    .map(|rd| {
                        rd.filter_map(|e| e.ok())
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                rels.sort();
                for r in rels {
                    self.out.stdout.push_str(&format!("{r}\n"));
                }
                0
            }
            (None, true) => {
                let header = [
                    "JID",
                    "Name",
                    "Boot",
                    "Prio",
                    "State",
                    "Type",
                    "IP Address",
                    "Published Ports",
                    "Release",
                    "Tags",
                ];
                let rows: Vec<Vec<String>> = names
                    .iter()
                    .map(|n| {
                        vec![
                            running
                                .jails
                                .get(n)
                                .map(|j| j.to_string())
                                .unwrap_or_else(|| "-".into()),
                            n.clone(),
                            self.setting(n, "boot").unwrap_or_else(|| "on".into()),
                            self.setting(n, "priority").unwrap_or_else(|| "99".into()),
                            if running.jails.contains_key(n) {
                                "Up".into()
                            } else {
                                "Down".into()
                            },
                            "thin".into(),
                            self.jail_ip(n),
                            "-".into(),
                            self.jail_release(n),
                            "-".into(),
                        ]
                    })
                    .collect();
                if json {
                    let objects: Vec<serde_json::Value> = rows
                        .iter()
                        .map(|r| {
                            serde_json::Value::Object(
                                header
                                    .iter()
                                    .zip(r)
                                    .map(|(h, v)| {
                                        (h.to_string(), serde_json::Value::String(v.clone()))
                                    })
                                    .collect(),
                            )
                        })
                        .collect();
                    self.out
                        .stdout
                        .push_str(&serde_json::to_string_pretty(&objects).unwrap_or_default());
                    self.out.stdout.push('\n');
                } else {
                    self.out.stdout.push_str(&table(&header, &rows));
                }
                0
            }
            (None, false) => {
                // 0.x: plain jls.
                self.out.stdout.push_str(&jls_table(&self.root));
                0
            }
            (Some("all"), false) => {
                let old = self.version < Version(0, 11, 0);
                let header: Vec<&str> = if old {
                    vec![
                        "JID",
                        "State",
                        "IP Address",
                        "Published Ports",
                        "Hostname",
                        "Release",
                        "Path",
                    ]
                } else {
                    vec![
                        "JID",
                        "Boot",
                        "Prio",
                        "State",
                        "IP Address",
                        "Published Ports",
                        "Hostname",
                        "Release",
                        "Path",
                    ]
                };
                let rows: Vec<Vec<String>> = names
                    .iter()
                    .map(|n| {
                        let state = if running.jails.contains_key(n) {
                            "Up"
                        } else {
                            "Down"
                        };
                        let first = if old {
                            n.clone()
                        } else {
                            running
                                .jails
                                .get(n)
                                .map(|j| j.to_string())
                                .unwrap_or_else(|| "-".into())
                        };
                        let mut row = vec![first];
                        if !old {
                            row.push(self.setting(n, "boot").unwrap_or_else(|| "on".into()));
                            row.push(self.setting(n, "priority").unwrap_or_else(|| "99".into()));
                        }
                        row.extend([
                            state.to_string(),
                            self.jail_ip(n),
                            "-".into(),
                            n.clone(),
                            self.jail_release(n),
                            self.jail_root(n).display().to_string(),
                        ]);
                        row
                    })
                    .collect();
                self.out.stdout.push_str(&table(&header, &rows));
                0
            }
            (Some(other), _) => self.error_exit(&format!(
                "freebsd-sim: bastille list {other} is not simulated"
            )),
        }
    }

    fn setting(&self, name: &str, key: &str) -> Option<String> {
        crate::sysrc::eval(
            &self.root.join("etc/defaults/rc.conf"),
            &[self.jail_dir(name).join("settings.conf")],
            key,
        )
    }

    fn jail_ip(&self, name: &str) -> String {
        jail_var(&self.jail_root(name), "ifconfig_vnet0")
            .and_then(|v| {
                v.split_whitespace()
                    .nth(1)
                    .map(|a| a.split('/').next().unwrap_or(a).to_string())
            })
            .unwrap_or_else(|| "-".into())
    }

    fn jail_release(&self, name: &str) -> String {
        fs::read_to_string(self.jail_dir(name).join("jail.conf"))
            .ok()
            .and_then(|c| {
                c.lines().find_map(|l| {
                    l.trim()
                        .strip_prefix("osrelease = ")
                        .map(|r| r.trim_end_matches(';').trim_matches('"').to_string())
                })
            })
            .unwrap_or_else(|| "-".into())
    }

    /// `pkg`, `sysrc`, `service` inside a jail.
    fn in_jail(&mut self, tool: &str, args: &[&str]) -> i32 {
        let mut i = 0;
        let mut auto = false;
        while i < args.len() && args[i].starts_with('-') {
            match args[i] {
                "-a" | "--auto" => auto = true,
                "-y" | "--yes" if tool == "pkg" && self.v1() => {}
                flag => return self.error_exit(&format!("[ERROR]: Unknown Option: \"{flag}\"")),
            }
            i += 1;
        }
        let Some(target) = args.get(i) else {
            return self.error_exit(&format!("Usage: bastille {tool} [option(s)] TARGET ARGS"));
        };
        let Some(name) = self.target(target) else {
            return 1;
        };
        let inner: Vec<String> = args[i + 1..].iter().map(|s| s.to_string()).collect();
        if !self.running(&name) {
            if auto {
                self.start_one(&name);
            } else if self.v1() || self.version >= Version(0, 11, 0) {
                self.info(&format!("\n[{name}]:"));
                return self.error_continue(
                    "Jail is not running.\nUse [-a|--auto] to auto-start the jail.",
                );
            } else {
                self.out.stderr.push_str(&format!(
                    "[{name}]: Not started. See 'bastille start {name}'.\n"
                ));
                return 1;
            }
        }
        self.info(&format!("\n[{name}]:"));
        let jroot = self.jail_root(&name);
        let result = match tool {
            "sysrc" => crate::sysrc::run(&jroot, &inner),
            "pkg" => pkg(&jroot, &name, &inner),
            _ => jail_service(&jroot, &inner),
        };
        let failed = result.rc != 0;
        self.out = std::mem::take(&mut self.out).then(Out { rc: 0, ..result });
        if !failed {
            return 0;
        }
        if self.version >= Version(1, 1, 0) {
            return self.error_exit("[ERROR]: Command failed on 1 jails.");
        }
        if self.v1() {
            self.out.stderr.push_str("[ERROR CODE]: 1\n");
        }
        1
    }
}

/// Columns left-aligned, two spaces apart, as `list.sh` prints them.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            rows.iter()
                .map(|r| r[c].len())
                .chain([header[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let text: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!(" {}\n", text.join("  ").trim_end())
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

fn jail_var(jroot: &Path, name: &str) -> Option<String> {
    crate::sysrc::eval(
        &jroot.join("etc/defaults/rc.conf"),
        &[jroot.join("etc/rc.conf")],
        name,
    )
}

fn installed(jroot: &Path) -> Vec<String> {
    fs::read_to_string(jroot.join("var/db/pkg/sim-packages"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

fn installed_services(jroot: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(jroot.join("usr/local/etc/rc.d"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn running_services(jroot: &Path) -> Vec<String> {
    fs::read_to_string(jroot.join("var/run/sim-services"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

fn write_running_services(jroot: &Path, names: &[String]) {
    let text: String = names.iter().map(|n| format!("{n}\n")).collect();
    let _ = fs::write(jroot.join("var/run/sim-services"), text);
}

/// pkg(8) inside a jail: `install [-y] NAME…`, `query %n`, `info`, `delete [-y] NAME…`.
fn pkg(jroot: &Path, jail: &str, args: &[String]) -> Out {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut have = installed(jroot);
    match args.first().copied() {
        Some("query") if args.get(1) == Some(&"%n") => {
            Out::ok(have.iter().map(|p| format!("{p}\n")).collect::<String>())
        }
        Some("info") => Out::ok(
            have.iter()
                .map(|p| format!("{p}-1.0                          {p}\n"))
                .collect::<String>(),
        ),
        Some("install") => {
            let wanted: Vec<&str> = args[1..]
                .iter()
                .copied()
                .filter(|a| !a.starts_with('-'))
                .collect();
            for w in &wanted {
                if !CATALOGUE.iter().any(|(n, _)| n == w) {
                    return Out::err(1, format!("pkg: No packages available to install matching '{w}' have been found in the repositories\n"));
                }
            }
            let new: Vec<&str> = wanted
                .iter()
                .copied()
                .filter(|w| !have.iter().any(|h| h == w))
                .collect();
            let mut out = String::from("Updating FreeBSD repository catalogue...\nFreeBSD repository is up to date.\nAll repositories are up to date.\n");
            if new.is_empty() {
                out.push_str("Checking integrity... done (0 conflicting)\nThe most recent versions of packages are already installed\n");
                return Out::ok(out);
            }
            out.push_str(&format!("The following {} package(s) will be affected (of 0 checked):\n\nNew packages to be INSTALLED:\n", new.len()));
            for p in &new {
                out.push_str(&format!("\t{p}: 1.0\n"));
            }
            for (i, p) in new.iter().enumerate() {
                out.push_str(&format!(
                    "[{jail}] [{}/{}] Installing {p}-1.0...\n",
                    i + 1,
                    new.len()
                ));
                have.push(p.to_string());
                if let Some((_, Some(service))) = CATALOGUE.iter().find(|(n, _)| n == p) {
                    let _ = fs::write(
                        jroot.join("usr/local/etc/rc.d").join(service),
                        "#!/bin/sh\n# PROVIDE: sim\n",
                    );
                }
            }
            let _ = fs::write(
                jroot.join("var/db/pkg/sim-packages"),
                have.iter().map(|p| format!("{p}\n")).collect::<String>(),
            );
            Out::ok(out)
        }
        _ => Out::err(
            SIM_FAILURE,
            format!("freebsd-sim: pkg {} is not simulated\n", args.join(" ")),
        ),
    }
}

/// service(8) inside a jail for package services (no real scripts run here).
fn jail_service(jroot: &Path, args: &[String]) -> Out {
    let (Some(svc), Some(verb)) = (args.first(), args.get(1)) else {
        return Out::err(
            1,
            "usage: service [-j <jail name or id>] [-rv] <rc.d script> start|stop|etc.\n",
        );
    };
    if !installed_services(jroot).contains(svc) {
        return Out {
            stdout: format!("{svc} does not exist in /etc/rc.d or the local startup\ndirectories (/usr/local/etc/rc.d), or is not executable\n"),
            stderr: String::new(),
            rc: 1,
        };
    }
    let enabled =
        jail_var(jroot, &format!("{svc}_enable")).is_some_and(|v| v.eq_ignore_ascii_case("yes"));
    let mut running = running_services(jroot);
    let is_running = running.contains(svc);
    let (one, verb) = match verb.strip_prefix("one") {
        Some(v) => (true, v),
        None => (false, verb.as_str()),
    };
    match verb {
        "status" if is_running => Out::ok(format!("{svc} is running as pid 4242.\n")),
        "status" => Out { stdout: format!("{svc} is not running.\n"), stderr: String::new(), rc: 1 },
        "enable" => {
            let rc = jroot.join("etc/rc.conf");
            crate::sysrc::run(jroot, &["-f".into(), rc.to_string_lossy().into_owned(), format!("{svc}_enable=YES")]);
            Out::ok(format!("{svc} enabled in /etc/rc.conf\n"))
        }
        "start" | "stop" | "restart" if !enabled && !one => {
            Out::ok(format!("Cannot '{verb}' {svc}. Set {svc}_enable to YES in /etc/rc.conf or use 'one{verb}' instead of '{verb}'.\n"))
        }
        "start" if is_running => Out::err(1, format!("{svc} already running? (pid=4242).\n")),
        "start" => {
            running.push(svc.clone());
            write_running_services(jroot, &running);
            Out::ok(format!("Starting {svc}.\n"))
        }
        "stop" if !is_running => Out::err(1, format!("{svc} not running? (check /var/run/{svc}.pid).\n")),
        "stop" => {
            running.retain(|s| s != svc);
            write_running_services(jroot, &running);
            Out::ok(format!("Stopping {svc}.\n"))
        }
        "restart" => {
            if !is_running {
                running.push(svc.clone());
                write_running_services(jroot, &running);
            }
            Out::ok(format!("Stopping {svc}.\nStarting {svc}.\n"))
        }
        other => Out::err(1, format!("/usr/local/etc/rc.d/{svc}: unknown directive '{other}'.\n")),
    }
}

/// The host's pkg(8) for what warden needs of it: `pkg -r <jail root> query %n` lists the
/// packages installed in a jail's root without entering the jail.
pub fn host_pkg(args: &[String]) -> Out {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["-r", jroot, rest @ ..] if matches!(rest.first(), Some(&"query") | Some(&"info")) => {
            let jroot = Path::new(jroot);
            if !jroot.join("var/db/pkg").is_dir() {
                return Out::err(
                    1,
                    format!(
                        "pkg: Unable to open the database in {}/var/db/pkg\n",
                        jroot.display()
                    ),
                );
            }
            pkg(
                jroot,
                "",
                &rest.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )
        }
        _ => Out::err(
            SIM_FAILURE,
            format!("freebsd-sim: pkg {} is not simulated\n", args.join(" ")),
        ),
    }
}

fn jls_table(root: &Path) -> String {
    let running = Running::load(root);
    let mut out = String::from("   JID  IP Address      Hostname                      Path\n");
    for (name, jid) in &running.jails {
        out.push_str(&format!(
            "{jid:>6}  {:<15.15} {:<29.29} {:.74}\n",
            "", name, name
        ));
    }
    out
}

/// `jls` (usr.sbin/jls): `jls name` one running jail name per line; `jls -j NAME jid` prints
/// the JID or `jls: jail "NAME" not found` (exit 1); plain `jls` a table.
pub fn jls(root: &Path, args: &[String]) -> Out {
    let running = Running::load(root);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        [] => Out::ok(jls_table(root)),
        ["name"] => Out::ok(
            running
                .jails
                .keys()
                .map(|n| format!("{n}\n"))
                .collect::<String>(),
        ),
        ["-j", name, "jid"] | ["-j", name] => match running.jails.get(*name) {
            Some(jid) => Out::ok(format!("{jid}\n")),
            None => Out::err(1, format!("jls: jail \"{name}\" not found\n")),
        },
        _ => Out::err(
            SIM_FAILURE,
            format!("freebsd-sim: jls {} is not simulated\n", args.join(" ")),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(Version::parse("1.4.4"), Version(1, 4, 4));
        assert_eq!(Version::parse("1.1.0.251001"), Version(1, 1, 0));
        assert_eq!(Version::parse("1.0.20250714"), Version(1, 0, 0));
        assert_eq!(Version::parse("0.14.20250420"), Version(0, 14, 0));
        assert!(Version::parse("1.0.1.250714") < Version::parse("1.1.0.251001"));
    }

    #[test]
    fn table_layout() {
        let t = table(
            &["JID", "Name"],
            &[
                vec!["1".into(), "mevygit".into()],
                vec!["-".into(), "x".into()],
            ],
        );
        assert_eq!(t, " JID  Name\n 1    mevygit\n -    x\n");
    }
}
