//! Simulated Bastille (BastilleBSD/bastille `usr/local/bin/bastille` and
//! `usr/local/share/bastille/*.sh`, every release 0.10.20231125 … 1.4.4), `jls` and `jexec`.
//! `<root>/sim/bastille.version` names the real release (default `1.4.4`); what it prints
//! for `-v` is what that release prints (0.11.20241022 says 0.10.20231125, 1.1.1.251118 says
//! 1.1.0.251001). Each behaviour below names the tag and file it follows; the list of facts
//! is `docs/bastille-facts.md`, and `tests/fixtures/bastille/<version>/` holds the outputs
//! the fidelity test compares this simulator with.
//!
//! Jails live under the prefix from `<root>/usr/local/etc/bastille/bastille.conf`, laid out
//! as Bastille does (`jails/N/{jail.conf,fstab,settings.conf|boot.conf,root/}`); packages
//! installed in a jail are recorded in its root (`var/db/pkg/sim-packages`, and
//! `usr/local/sbin/pkg` once pkg(8) is bootstrapped), rc.d scripts of packages that have a
//! service appear in `root/usr/local/etc/rc.d/`, and running services in
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

/// The host's own default route, which Bastille gives a VNET jail when `-g` is missing
/// (`create.sh`: `netstat -rn | awk '/default/ {print $2}'`, `netstat -4rn` from 1.0).
const HOST_DEFAULT_ROUTE: &str = "192.168.122.1";

/// A Bastille release: major, minor, patch and the date field of the tag (`0.12.20241124`
/// and `0.12.20250111` differ only there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(u32, u32, u32, u32);

impl Version {
    pub fn parse(text: &str) -> Version {
        let parts: Vec<u32> = text
            .trim()
            .split('.')
            .map(|p| p.parse().unwrap_or(0))
            .collect();
        let get = |i: usize| parts.get(i).copied().unwrap_or(0);
        // 0.14.20250420, 1.0.20250714: the third field is a date.
        if get(2) >= 100_000 {
            Version(get(0), get(1), 0, get(2))
        } else {
            Version(get(0), get(1), get(2), get(3))
        }
    }
    fn at_least(&self, major: u32, minor: u32, patch: u32) -> bool {
        (self.0, self.1, self.2) >= (major, minor, patch)
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

/// What `bastille -v` prints for a release: `BASTILLE_VERSION` in `usr/local/bin/bastille`
/// at that tag (0.11.20241022 and 1.1.1.251118 were released with the previous value).
pub fn reported_version(real: &str) -> &str {
    match real {
        "0.11.20241022" => "0.10.20231125",
        "1.1.1.251118" => "1.1.0.251001",
        other => other,
    }
}

pub fn run(root: &Path, args: &[String]) -> Out {
    let version_text = fs::read_to_string(root.join("sim/bastille.version"))
        .map(|t| t.trim().to_string())
        .unwrap_or_else(|_| "1.4.4".into());
    let version = Version::parse(&version_text);
    let conf = root.join("usr/local/etc/bastille/bastille.conf");
    let prefix = crate::sysrc::eval(
        &root.join("etc/defaults/rc.conf"),
        std::slice::from_ref(&conf),
        "bastille_prefix",
    );
    let Some(prefix) = prefix.filter(|_| conf.is_file()) else {
        return missing_config(version);
    };
    let mut b = Bastille {
        root: root.to_owned(),
        version,
        version_text,
        prefix: PathBuf::from(prefix),
        out: Out::default(),
    };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let rc = match args.first().copied() {
        Some("-v" | "--version" | "version") => {
            let text = reported_version(&b.version_text).to_string();
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
        Some("cmd") => b.in_jail("cmd", &args[1..]),
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

/// No readable bastille.conf: 0.10–0.12.20241124 `error_exit "Missing Configuration"`;
/// 0.12.20250111–0.14 ask whether to create it, read an empty answer and exit 0 having done
/// nothing; 1.x print `[ERROR]: No config file found!` on stdout and exit 1
/// (`usr/local/bin/bastille` `bastille_conf_check` at those tags).
fn missing_config(v: Version) -> Out {
    if v.at_least(1, 0, 0) {
        Out {
            stdout: "\n[ERROR]: No config file found!\nPlease run 'bastille setup' to configure Bastille.\n\n".into(),
            stderr: String::new(),
            rc: 1,
        }
    } else if v >= Version(0, 12, 0, 20250111) {
        Out::ok("[INFO] Configuration file not found. Do you want to create it with default values? [y/N]\n[INFO] No configuration file has been generated. Exiting.\n")
    } else {
        Out::err(1, "Missing Configuration\n")
    }
}

impl Bastille {
    fn v1(&self) -> bool {
        self.version.at_least(1, 0, 0)
    }

    /// The 0.10–0.13 main script (`usr/local/bin/bastille`) checks the target of
    /// `cmd|pkg|service|stop|sysrc|…` itself: `[N]: Not found.` / `[N]: Not started. See
    /// 'bastille start N'.` with `error_exit` (rc 1).
    fn old_main_checks(&self) -> bool {
        !self.version.at_least(0, 14, 0)
    }

    /// `info`: stderr on 1.4.x (`info 1`), stdout before (`echo -e`) (`common.sh`).
    fn info(&mut self, text: &str) {
        if self.version.at_least(1, 4, 0) {
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

    /// The target of a command. 0.10–0.13: exact name (`[ -d jails/N ]`), `[N]: Not found.`
    /// (rc 1). 0.14+: `set_target` (`common.sh`): exact name, else a unique prefix
    /// (`jail_autocomplete`), all digits = a JID; missing → `Jail not found "N"` (rc 1).
    fn target(&mut self, target: &str) -> Option<String> {
        if self.exists(target) {
            return Some(target.to_string());
        }
        if self.old_main_checks() {
            self.out
                .stderr
                .push_str(&format!("[{target}]: Not found.\n"));
            return None;
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
                self.error_exit(&format!("Jail not found \"{target}\""));
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
        let v = self.version;
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
                // --no-boot: 0.14.20250420 `create.sh`; -g: 1.0.20250714 `create.sh`.
                "--no-boot" if v.at_least(0, 14, 0) => boot = false,
                "-g" | "--gateway" | "--defaultrouter" if self.v1() => {
                    i += 1;
                    gateway = args.get(i).map(|s| s.to_string());
                }
                other => {
                    // 1.x `[ERROR]: Unknown Option: "X"`, 0.14 `Unknown Option: "X"`,
                    // before: `Unknown Option.` then the usage text (`create.sh`).
                    let msg = if self.v1() {
                        format!("[ERROR]: Unknown Option: \"{other}\"")
                    } else if v.at_least(0, 14, 0) {
                        format!("Unknown Option: \"{other}\"")
                    } else {
                        "Unknown Option.\nUsage: bastille create [option(s)] name release ip [interface]".into()
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
        // create.sh: `\nAttempting to create jail: N` (1.0–1.4.2), `\nCreating jail: N...`
        // (1.4.3+); 0.x prints no header.
        if v.at_least(1, 4, 3) {
            self.info(&format!("\nCreating jail: {name}..."));
        } else if self.v1() {
            self.info(&format!("\nAttempting to create jail: {name}"));
        }
        // validate_name, in Bastille's order; 0.x says "Container", 1.x "[ERROR]: Jail".
        let (pre, noun) = if self.v1() {
            ("[ERROR]: ", "Jail")
        } else {
            ("", "Container")
        };
        if v.at_least(0, 14, 0) && self.exists(name) {
            let msg = if self.v1() {
                format!("[ERROR]: Jail already exists: {name}")
            } else {
                format!("Jail: {name} already created.")
            };
            return self.error_exit(&msg);
        }
        if name.starts_with(['-', '_']) {
            return self.error_exit(&format!(
                "{pre}{noun} names may not begin with (-|_) characters!"
            ));
        }
        if any_vnet && name.contains(['-', '_']) && v.at_least(1, 1, 0) {
            return self.error_exit("[ERROR]: VNET jail names may not contain (-|_) characters.");
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return self.error_exit(&format!(
                "{pre}{noun} names may not contain special characters!"
            ));
        }
        if v.at_least(0, 13, 0) && name.bytes().all(|b| b.is_ascii_digit()) {
            return self.error_exit(&format!("{pre}{noun} names may not contain only digits."));
        }
        let interfaces = IfState::load(&self.root)
            .map(|s| s.ifaces)
            .unwrap_or_default();
        if vnet_bridge
            && v.at_least(0, 14, 0)
            && !interfaces
                .iter()
                .any(|i| i.name == iface && i.groups.iter().any(|g| g == "bridge"))
        {
            return self.error_exit(&format!("{pre}Interface is not a bridge: {iface}"));
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
            return self.error_exit(if self.v1() {
                "[ERROR]: Release must be bootstrapped first.\nSee 'bastille bootstrap'."
            } else {
                "Release must be bootstrapped first; see 'bastille bootstrap'."
            });
        }
        let ip = if ip.contains('/') || !any_vnet || !self.v1() {
            ip.to_string()
        } else {
            format!("{ip}/24")
        };
        let (addr, prefix) = ip.split_once('/').unwrap_or((&ip, "24"));
        if addr.parse::<Ipv4Addr>().is_err() || prefix.parse::<u8>().map(|p| p > 32).unwrap_or(true)
        {
            return self.error_exit(&if self.v1() {
                format!("[ERROR]: Invalid IP: {ip}")
            } else {
                format!("Invalid: ({ip}).")
            });
        }
        // `Valid IP: X` from 1.3.0 (common.sh validate_ip), `\nValid: (X).` in 1.0–1.2,
        // `Valid: (X).` in 0.x (create.sh validate_ip); the same for the interface.
        if v.at_least(1, 3, 0) {
            self.info(&format!("\nValid IP: {ip}"));
        } else if self.v1() {
            self.info(&format!("\nValid: ({ip})."));
        } else {
            self.info(&format!("Valid: ({ip})."));
        }
        if !interfaces.iter().any(|i| i.name == iface) {
            return self.error_exit(&if self.v1() {
                format!("[ERROR]: Invalid interface: {iface}")
            } else {
                format!("Invalid: ({iface}).")
            });
        }
        if v.at_least(1, 3, 0) {
            self.info(&format!("\nValid interface: {iface}"));
        } else if self.v1() {
            self.info(&format!("\nValid: ({iface})."));
        } else {
            self.info(&format!("Valid: ({iface})."));
        }
        if !v.at_least(0, 14, 0) && self.exists(name) {
            // 0.10–0.13 `running_jail` runs last.
            return self.error_exit(&format!("Jail: {name} already created."));
        }
        if let Some(g) = &gateway {
            if g.parse::<Ipv4Addr>().is_err() {
                return self.error_exit(&format!("[ERROR]: Not a valid gateway: {g}"));
            }
        }
        if self.v1() {
            self.info("\nCreating a thinjail...\n");
        } else {
            self.info("Creating a thinjail...\n");
        }

        let dir = self.jail_dir(name);
        let jroot = self.jail_root(name);
        // The jail's directory exists before its jail.conf is generated (`create_jail`).
        if fs::create_dir_all(&jroot).is_err() {
            return self.error_exit(&format!("[ERROR]: Failed to create jail: {name}"));
        }
        let epair = self.epair_name(name, &interfaces);
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
        let conf = self.jail_conf(name, &release, iface, &epair);
        let gw = gateway
            .clone()
            .unwrap_or_else(|| HOST_DEFAULT_ROUTE.to_string());
        let rc = self.jail_rc_conf(&epair.1, &ip, iface, &gw);
        let defaults =
            fs::read_to_string(self.root.join("etc/defaults/rc.conf")).unwrap_or_default();
        let mut writes = vec![
            (dir.join("jail.conf"), conf),
            (
                dir.join("fstab"),
                format!(
                    "{} {}/.bastille nullfs ro 0 0\n",
                    release_path.display(),
                    jroot.display()
                ),
            ),
            (jroot.join("etc/rc.conf"), rc),
            (jroot.join("etc/defaults/rc.conf"), defaults),
            (jroot.join("var/db/pkg/sim-packages"), String::new()),
        ];
        let boot = if boot { "on" } else { "off" };
        if self.v1() {
            // 1.0.20250714 `create.sh`: sysrc -f settings.conf boot depend priority.
            writes.push((
                dir.join("settings.conf"),
                format!("boot=\"{boot}\"\ndepend=\"\"\npriority=\"99\"\n"),
            ));
        } else if v.at_least(0, 14, 0) {
            // 0.14.20250420 `create.sh`: sysrc -f boot.conf boot=… priority=….
            writes.push((
                dir.join("boot.conf"),
                format!("boot=\"{boot}\"\npriority=\"99\"\n"),
            ));
        }
        for (path, text) in writes {
            if fs::write(&path, text).is_err() {
                return self.error_exit(&format!("[ERROR]: Failed to create jail: {name}"));
            }
        }
        // create starts the jail, applies the templates, and restarts it.
        self.start_one(name);
        if !self.running(name) {
            if self.v1() {
                // 1.x: `bastille destroy -afy NAME`, `[ERROR]: Failed to create jail: NAME`.
                let _ = fs::remove_dir_all(&dir);
                return self.error_exit(&format!("[ERROR]: Failed to create jail: {name}"));
            }
            // 0.x leaves the jail behind and exits 0 (the last command is `bastille restart`).
            return 0;
        }
        0
    }

    /// jail.conf of a `-B` jail, per release (`create.sh` `generate_vnet_jail_conf` and
    /// `common.sh` `generate_vnet_jail_netblock` at each tag).
    fn jail_conf(&self, name: &str, release: &str, iface: &str, epair: &Epair) -> String {
        let v = self.version;
        let dir = self.jail_dir(name);
        let jroot = self.jail_root(name);
        let release_path = self.prefix.join("releases").join(release);
        let patch_level = fs::read_to_string(release_path.join("bin/freebsd-version"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| release.to_string());
        let osrelease = if v.at_least(1, 4, 4) {
            format!("osrelease = \"{patch_level}\";")
        } else if v.at_least(1, 2, 0) {
            format!("osrelease = {patch_level};")
        } else {
            format!("osrelease = {release};")
        };
        let log = format!("/var/log/bastille/{name}_console.log");
        let head = if v < Version(0, 11, 0, 0) {
            // 0.10.20231125: devfs_ruleset first.
            format!("{name} {{\n  devfs_ruleset = 13;\n  enforce_statfs = 2;\n")
        } else {
            format!("{name} {{\n  enforce_statfs = 2;\n  devfs_ruleset = 13;\n")
        };
        let body = format!(
            "  exec.clean;\n  exec.consolelog = {log};\n  exec.start = '/bin/sh /etc/rc';\n  exec.stop = '/bin/sh /etc/rc.shutdown';\n  \
             host.hostname = {name};\n  mount.devfs;\n  mount.fstab = {dir}/fstab;\n  path = {jroot};\n  securelevel = 2;\n  {osrelease}\n\n",
            dir = dir.display(),
            jroot = jroot.display(),
        );
        let (a, b) = (&epair.0, &epair.1);
        let net = match epair.2 {
            // 1.0+: the kernel picks the epair, which is renamed at once.
            None => format!(
                "  vnet;\n  vnet.interface = {b};\n  exec.prestart += \"epair0=\\$(ifconfig epair create) && ifconfig \\${{epair0}} up name {a} && ifconfig \\${{epair0%a}}b up name {b}\";\n  \
                 exec.prestart += \"ifconfig {iface} addm {a}\";\n  exec.prestart += \"ifconfig {a} description \\\"vnet0 host interface for Bastille jail {name}\\\"\";\n  \
                 exec.poststop += \"ifconfig {a} destroy\";\n"
            ),
            Some(n) => {
                let quoted = if v < Version(0, 12, 0, 20250111) {
                    format!("\"{b}\"")
                } else {
                    b.clone()
                };
                let mut s = format!(
                    "  vnet;\n  vnet.interface = {quoted};\n  exec.prestart += \"ifconfig epair{n} create\";\n  exec.prestart += \"ifconfig {iface} addm epair{n}a\";\n  \
                     exec.prestart += \"ifconfig epair{n}a up name {a}\";\n  exec.prestart += \"ifconfig epair{n}b up name {b}\";\n"
                );
                if v == Version(0, 12, 0, 20250111) {
                    // 0.12.20250111 always sets a MAC derived from sha256 (`generate_static_mac`).
                    s.push_str(&format!(
                        "  exec.prestart += \"ifconfig {a} ether 58:9c:fc:00:00:0{n}a\";\n  exec.prestart += \"ifconfig {b} ether 58:9c:fc:00:00:0{n}b\";\n"
                    ));
                }
                if v.at_least(0, 14, 0) {
                    s.push_str(&format!("  exec.prestart += \"ifconfig {a} description \\\"vnet0 host interface for Bastille jail {name}\\\"\";\n"));
                } else if v.at_least(0, 13, 0) {
                    s.push_str(&format!("  exec.prestart += \"ifconfig {a} description \\\"vnet host interface for Bastille jail {name}\\\"\";\n"));
                }
                s.push_str(&format!(
                    "  exec.poststop += \"ifconfig {iface} deletem {a}\";\n  exec.poststop += \"ifconfig {a} destroy\";\n"
                ));
                s
            }
        };
        format!("{head}{body}{net}}}\n")
    }

    /// The jail's rc.conf after `create -B`: the VNET template's SYSRC lines and the base
    /// template's, in the order the release applies them (`templates/default/{vnet,base}/
    /// Bastillefile` and `create.sh` at each tag). 0.10–0.13 INCLUDE base first; 0.14+ apply
    /// vnet, then thin (→ base). 0.x/1.0 build IFCONFIG with stray blanks.
    fn jail_rc_conf(&self, jail_side: &str, ip: &str, iface: &str, gw: &str) -> String {
        let v = self.version;
        let base = "syslogd_flags=\"-ss\"\nsendmail_enable=\"NO\"\nsendmail_submit_enable=\"NO\"\nsendmail_outbound_enable=\"NO\"\nsendmail_msp_queue_enable=\"NO\"\ncron_flags=\"-J 60\"\n";
        let epair_var = jail_side.replace('-', "_");
        let ifconfig = if v.at_least(1, 1, 0) {
            format!("inet {ip}")
        } else if self.v1() {
            format!(" inet {ip}")
        } else {
            format!(" inet {ip} ")
        };
        let mut vnet =
            format!("ifconfig_{epair_var}_name=\"vnet0\"\nifconfig_vnet0=\"{ifconfig}\"\n");
        if v.at_least(1, 3, 0) {
            vnet.push_str(&format!(
                "ifconfig_vnet0_descr=\"jail interface for {iface}\"\nifconfig_vnet0_ipv6=\"\"\ndefaultrouter=\"{gw}\"\nipv6_defaultrouter=\"NO\"\n"
            ));
        } else if v.at_least(1, 1, 1) {
            vnet.push_str(&format!(
                "ifconfig_vnet0_descr=\"jail interface for {iface}\"\ndefaultrouter=\"{gw}\"\n"
            ));
        } else {
            vnet.push_str(&format!("defaultrouter=\"{gw}\"\n"));
        }
        if v.at_least(0, 14, 0) {
            format!("{vnet}{base}")
        } else {
            format!("{base}{vnet}")
        }
    }

    /// (host side, jail side, explicit epair unit) of a new `-B` jail (`common.sh`
    /// `generate_vnet_jail_netblock` per tag; interface names hold 15 characters):
    /// * 0.10–0.12: `e<N>b_NAME`, N the first of 0…(jails + 1) no jail.conf mentions as
    ///   `epairN`, no length check (a long name fails at `jail -c`);
    /// * 0.13–0.14: N also skips the host's `e<N>a_*`/`epair<N>a`; too long → `epair<N>a/b`;
    /// * 1.0–1.1.0: `e0a_NAME`, too long → `e0a_<7 chars>xx<2 chars>`;
    /// * 1.1.1+: too long → `e0a_bastille<N>`, N from 1 up, not in any jail.conf or epair.
    fn epair_name(&self, name: &str, interfaces: &[Iface]) -> Epair {
        let v = self.version;
        let confs: Vec<String> = fs::read_dir(self.jails_dir())
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| fs::read_to_string(e.path().join("jail.conf")).ok())
                    .collect()
            })
            .unwrap_or_default();
        if !v.at_least(0, 13, 0) {
            let jails = fs::read_dir(self.jails_dir())
                .map(|rd| rd.count())
                .unwrap_or(0) as u32;
            let n = (0..=jails + 1)
                .find(|n| {
                    !confs.iter().any(|c| {
                        c.contains(&format!("epair{n}"))
                            || (0..10).any(|d| c.contains(&format!("e{d}b_bastille{n}")))
                    })
                })
                .unwrap_or(0);
            return (format!("e{n}a_{name}"), format!("e{n}b_{name}"), Some(n));
        }
        if !self.v1() {
            let used: Vec<u32> = confs
                .iter()
                .flat_map(|c| {
                    numbers_after(c, "epair")
                        .into_iter()
                        .chain(numbers_after(c, "bastille"))
                })
                .chain(interfaces.iter().filter_map(|i| {
                    let rest = i.name.strip_prefix('e')?;
                    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
                    rest[digits.len()..]
                        .starts_with("a_")
                        .then(|| digits.parse().ok())?
                }))
                .collect();
            let n = (0..).find(|n| !used.contains(n)).unwrap_or(0);
            if format!("e{n}a_{name}").len() < 16 {
                return (format!("e{n}a_{name}"), format!("e{n}b_{name}"), Some(n));
            }
            return (format!("epair{n}a"), format!("epair{n}b"), Some(n));
        }
        if format!("e0a_{name}").len() < 16 {
            return (format!("e0a_{name}"), format!("e0b_{name}"), None);
        }
        if v.at_least(1, 1, 1) {
            let mut used: String = confs.concat();
            for i in interfaces {
                used.push_str(&i.name);
                used.push('\n');
            }
            let n = (1..)
                .find(|n| !used.contains(&format!("bastille{n}")))
                .unwrap_or(1);
            return (format!("e0a_bastille{n}"), format!("e0b_bastille{n}"), None);
        }
        let first: String = name.chars().take(7).collect();
        let last: String = name
            .chars()
            .rev()
            .take(2)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        (
            format!("e0a_{first}xx{last}"),
            format!("e0b_{first}xx{last}"),
            None,
        )
    }

    fn start_cmd(&mut self, args: &[&str]) -> i32 {
        let Some(target) = args.iter().find(|a| !a.starts_with('-')) else {
            return self.error_exit("Usage: bastille start [option(s)] TARGET");
        };
        let Some(name) = self.target(target) else {
            return 1;
        };
        if self.running(&name) {
            if self.old_main_checks() {
                // 0.10–0.13 `start.sh`: error_notify, then the loop's `echo`.
                self.out
                    .stderr
                    .push_str(&format!("[{name}]: Already started.\n"));
                self.out.stdout.push('\n');
                return 0;
            }
            self.header(&name);
            return self.error_continue("Jail is already running.");
        }
        self.start_one(&name);
        if self.old_main_checks() {
            // 0.10–0.13 `start.sh`/`stop.sh` end each jail with `echo` (0.14 does not).
            self.out.stdout.push('\n');
        }
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
            if self.old_main_checks() {
                // 0.10–0.13 `usr/local/bin/bastille` `check_target_is_running`.
                self.out.stderr.push_str(&format!(
                    "[{name}]: Not started. See 'bastille start {name}'.\n"
                ));
                return 1;
            }
            self.header(&name);
            return self.error_continue("Jail is already stopped.");
        }
        self.stop_one(&name);
        if self.old_main_checks() {
            self.out.stdout.push('\n');
        }
        0
    }

    /// The per-jail header: `[N]:` (0.x) or `\n[N]:` (1.x), through `info`.
    fn header(&mut self, name: &str) {
        if self.v1() {
            self.info(&format!("\n[{name}]:"));
        } else {
            self.info(&format!("[{name}]:"));
        }
    }

    /// `jail -f jail.conf -c N`: runs the prestart lines (epair, bridge), starts the enabled
    /// services. Failures are printed the way jail(8) does and do not change Bastille's exit
    /// code (`start.sh` ends with `echo`/`sleep`).
    fn start_one(&mut self, name: &str) {
        self.header(name);
        let conf = fs::read_to_string(self.jail_dir(name).join("jail.conf")).unwrap_or_default();
        let field = |key: &str| {
            conf.lines().find_map(|l| {
                l.trim().strip_prefix(key).map(|r| {
                    r.trim_start_matches([' ', '='])
                        .trim_end_matches(';')
                        .trim()
                        .trim_matches('"')
                        .to_string()
                })
            })
        };
        // jail(8) refuses parameters the kernel does not know (lib/libjail/jail.c
        // `jailparam_type`: "unknown parameter: %s"); 0.10–0.13 `config set boot` writes one.
        if conf.lines().any(|l| {
            l.trim()
                .strip_prefix("boot")
                .is_some_and(|r| r.starts_with([' ', '=', ';']))
        }) {
            self.out
                .stderr
                .push_str(&format!("jail: {name}: unknown parameter: boot\n"));
            return;
        }
        let jail_side = field("vnet.interface").unwrap_or_default();
        let host_side = host_side_of(&jail_side);
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
            self.out.stdout.push_str(&format!(
                "ifconfig: ioctl SIOCSIFNAME (set name): Invalid argument\njail: {name}: ifconfig epair0a up name {host_side}: failed\n"
            ));
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
        self.header(name);
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

    /// `destroy.sh` per tag: 0.10–0.13 `[-f|--force|force] NAME` (force stops a running jail
    /// first; any other option → `Unknown Option.` + usage, rc 1); 0.14 `-a|-c|-f|-x`
    /// (`-a` stops first; a running jail without it → `Jail is running.`, rc 0); 1.0+ adds
    /// `-y` and asks `Are you sure…` otherwise (no answer → `Invalid input`, rc 1).
    fn destroy(&mut self, args: &[&str]) -> i32 {
        let v = self.version;
        let mut auto = false;
        let mut yes = false;
        let mut force = false;
        let mut target = None;
        for (i, a) in args.iter().enumerate() {
            match *a {
                "-f" | "--force" => force = true,
                "force" if !v.at_least(0, 14, 0) && i == 0 => force = true,
                "-a" | "--auto" if v.at_least(0, 14, 0) => auto = true,
                "-c" | "--no-cache" if v.at_least(0, 14, 0) => {}
                "-y" | "--yes" if self.v1() => yes = true,
                flag if flag.starts_with('-') => {
                    return if self.v1() {
                        self.error_exit(&format!("[ERROR]: Unknown Option: \"{flag}\""))
                    } else if v.at_least(0, 14, 0) {
                        self.error_exit(&format!("Unknown Option: \"{flag}\""))
                    } else {
                        self.error_exit(
                            "Unknown Option.\nUsage: bastille destroy [force] | [container|release]",
                        )
                    };
                }
                name => target = Some(name),
            }
        }
        let Some(name) = target else {
            return self.error_exit("Usage: bastille destroy [option(s)] JAIL|RELEASE");
        };
        if !v.at_least(0, 14, 0) {
            if self.running(name) {
                if !force {
                    return self.error_exit(&format!("Jail running.\nSee 'bastille stop {name}'."));
                }
                self.stop_one(name);
                self.out.stdout.push('\n');
            }
            if !self.exists(name) {
                return self.error_exit("Jail not found.");
            }
            self.info(&format!("Deleting Jail: {name}."));
            let _ = fs::remove_dir_all(self.jail_dir(name));
            self.out.stdout.push('\n');
            return 0;
        }
        if !self.exists(name) {
            return self.error_exit(&format!("Jail not found \"{name}\""));
        }
        if self.running(name) {
            if auto {
                self.stop_one(name);
            } else {
                self.header(name);
                self.out
                    .stderr
                    .push_str("Jail is running.\nUse [-a|--auto] to auto-stop the jail.\n");
                return 0;
            }
        }
        if self.v1() && !yes {
            self.header(name);
            // `warn 1` (stderr on 1.4, stdout before), then `read -p` on stderr.
            self.info(&format!("\nAttempting to destroy jail: {name}\n"));
            self.out
                .stderr
                .push_str("Are you sure you want to continue? [y|n]:");
            return self.error_exit("[ERROR]: Invalid input. Please answer 'y' or 'n'.");
        }
        if self.v1() {
            self.header(name);
        }
        let _ = fs::remove_dir_all(self.jail_dir(name));
        self.info("Destroying jail...");
        0
    }

    /// `bootstrap.sh`: on a host whose rc.conf has `zfs_enable` exactly `YES` and whose
    /// bastille.conf `bastille_zfs_enable` is not a yes value, every release asks `ZFS is
    /// enabled in rc.conf but not bastille.conf. Do you want to continue? (N|y)`, reads an
    /// empty answer and exits 1 with `Missing ZFS parameters. See bastille_zfs_enable.`.
    fn bootstrap(&mut self, args: &[&str]) -> i32 {
        let Some(release) = args.iter().find(|a| !a.starts_with('-')) else {
            return self.error_exit("Usage: bastille bootstrap [option(s)] RELEASE|TEMPLATE");
        };
        let host_zfs = crate::sysrc::eval(
            &self.root.join("etc/defaults/rc.conf"),
            &[
                self.root.join("etc/rc.conf"),
                self.root.join("etc/rc.conf.local"),
            ],
            "zfs_enable",
        );
        let bastille_zfs = crate::sysrc::eval(
            &self.root.join("etc/defaults/rc.conf"),
            &[self.root.join("usr/local/etc/bastille/bastille.conf")],
            "bastille_zfs_enable",
        )
        .unwrap_or_default();
        if host_zfs.as_deref() == Some("YES")
            && !matches!(
                bastille_zfs.to_ascii_lowercase().as_str(),
                "yes" | "true" | "on" | "1"
            )
        {
            let question =
                "ZFS is enabled in rc.conf but not bastille.conf. Do you want to continue? (N|y)";
            if self.version.at_least(1, 4, 0) {
                self.out.stderr.push_str(&format!("{question}\n"));
            } else {
                self.out.stdout.push_str(&format!("{question}\n"));
            }
            return self.error_exit(if self.v1() {
                "[ERROR]: Missing ZFS parameters. See bastille_zfs_enable."
            } else {
                "ERROR: Missing ZFS parameters. See bastille_zfs_enable."
            });
        }
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

    /// `config.sh`: 1.0+ `boot`/`priority` in settings.conf, 0.14 in boot.conf (sysrc
    /// prints `boot: on -> off`); 0.10–0.13 write `  boot = off;` into jail.conf before the
    /// closing brace (awk) and say a restart is required.
    fn config(&mut self, args: &[&str]) -> i32 {
        let v = self.version;
        let boot_file = if self.v1() {
            Some("settings.conf")
        } else if v.at_least(0, 14, 0) {
            Some("boot.conf")
        } else {
            None
        };
        match args {
            [name, "get", key] if self.exists(name) => {
                let value = match boot_file {
                    Some(file) if matches!(*key, "boot" | "priority") => crate::sysrc::eval(
                        &self.root.join("etc/defaults/rc.conf"),
                        &[self.jail_dir(name).join(file)],
                        key,
                    ),
                    _ => None,
                };
                self.out
                    .stdout
                    .push_str(&format!("{}\n", value.unwrap_or_else(|| "not set".into())));
                0
            }
            [name, "set", key, value] if self.exists(name) && boot_file.is_none() => {
                let path = self.jail_dir(name).join("jail.conf");
                let text = fs::read_to_string(&path).unwrap_or_default();
                let line = format!("  {key} = {value};");
                let mut out = String::new();
                let mut found = false;
                for l in text.lines() {
                    if l.split('=').next().map(str::trim) == Some(*key) && !found {
                        out.push_str(&line);
                        found = true;
                    } else {
                        if l == "}" && !found {
                            out.push_str(&line);
                            out.push('\n');
                        }
                        out.push_str(l);
                    }
                    out.push('\n');
                }
                let _ = fs::write(&path, out);
                self.info(&format!(
                    "A restart is required for the changes to be applied. See 'bastille restart {name}'."
                ));
                0
            }
            [name, "set", key @ ("boot" | "priority"), value] if self.exists(name) => {
                if *key == "boot" && !matches!(*value, "on" | "off") {
                    return self.error_exit("Boot value must be 'on' or 'off'.");
                }
                let settings = self
                    .jail_dir(name)
                    .join(boot_file.unwrap_or("settings.conf"));
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

    /// `list.sh` per tag: `list jails` one name per line (all); 1.x `list` a table with a
    /// Name column; 0.x `list` = plain jls; `list -a|all`: 0.10–0.12.20241124 put the name in
    /// the JID column, 0.12.20250111–0.13 a numeric JID, 0.14 adds Boot and Prio.
    fn list(&mut self, args: &[&str]) -> i32 {
        let running = Running::load(&self.root);
        let names = self.jail_names();
        let json = args.contains(&"-j") || args.contains(&"--json");
        let all_flag = args.contains(&"-a") || args.contains(&"--all");
        let words: Vec<&str> = args
            .iter()
            .copied()
            .filter(|a| !a.starts_with('-'))
            .collect();
        if self.v1() && all_flag {
            return self.error_exit("[ERROR]: \"-a\" is deprecated. Use \"all\" instead.");
        }
        let first = if all_flag && !self.v1() {
            Some("all")
        } else {
            words.first().copied()
        };
        match (first, self.v1()) {
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
                let name_as_jid = self.version < Version(0, 12, 0, 20250111);
                let boot_prio = self.version.at_least(0, 14, 0);
                let mut header = vec!["JID"];
                if boot_prio {
                    header.extend(["Boot", "Prio"]);
                }
                header.extend([
                    "State",
                    "IP Address",
                    "Published Ports",
                    "Hostname",
                    "Release",
                    "Path",
                ]);
                let rows: Vec<Vec<String>> = names
                    .iter()
                    .map(|n| {
                        let state = if running.jails.contains_key(n) {
                            "Up"
                        } else {
                            "Down"
                        };
                        let first = if name_as_jid {
                            n.clone()
                        } else {
                            running
                                .jails
                                .get(n)
                                .map(|j| j.to_string())
                                .unwrap_or_else(|| "-".into())
                        };
                        let mut row = vec![first];
                        if boot_prio {
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
        let file = if self.v1() {
            "settings.conf"
        } else {
            "boot.conf"
        };
        crate::sysrc::eval(
            &self.root.join("etc/defaults/rc.conf"),
            &[self.jail_dir(name).join(file)],
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

    /// `pkg`, `sysrc`, `service`, `cmd` inside a jail, per tag:
    /// * 0.10–0.13: the main script refuses a stopped jail (`[N]: Not started…`, rc 1);
    ///   `service.sh` and `sysrc.sh` end their loop with `echo`, so they exit 0 whatever the
    ///   inner command did; `pkg.sh` exits 1 `Failed to apply on some jails, please check
    ///   logs`; `cmd.sh` returns the inner status (and prints `[N]: <rc>`);
    /// * 0.14: a stopped jail → `Jail is not running.` + `Use [-a|--auto]…`, rc 0; service,
    ///   sysrc and cmd return the inner status, pkg as before;
    /// * 1.0.x: the inner status (`bastille_return_exit_code`) and `[ERROR CODE]: <rc>`;
    /// * 1.1+: `[ERROR]: Command failed on 1 jails.`, rc 1. `pkg -y` (1.0+) runs pkg with
    ///   `ASSUME_ALWAYS_YES=yes`.
    fn in_jail(&mut self, tool: &str, args: &[&str]) -> i32 {
        let v = self.version;
        let mut i = 0;
        let mut auto = false;
        let mut yes = false;
        while !self.old_main_checks() && i < args.len() && args[i].starts_with('-') {
            match args[i] {
                "-a" | "--auto" => auto = true,
                "-y" | "--yes" if tool == "pkg" && self.v1() => yes = true,
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
            if self.old_main_checks() {
                self.out.stderr.push_str(&format!(
                    "[{name}]: Not started. See 'bastille start {name}'.\n"
                ));
                return 1;
            }
            if auto {
                self.start_one(&name);
            } else {
                self.header(&name);
                self.out.stderr.push_str("Jail is not running.\n");
                return self.error_continue("Use [-a|--auto] to auto-start the jail.");
            }
        }
        self.header(&name);
        let jroot = self.jail_root(&name);
        let result = match tool {
            "sysrc" => crate::sysrc::run(&jroot, &inner),
            "pkg" => jail_pkg7(&jroot, &name, yes, &inner),
            "cmd" => jail_exec(&jroot, &name, &inner),
            _ => jail_service(&jroot, &self.jail_major_release(&name), &inner),
        };
        let inner_rc = result.rc;
        self.out = std::mem::take(&mut self.out).then(Out { rc: 0, ..result });
        if !self.v1() {
            let rc = match tool {
                "pkg" if inner_rc != 0 => {
                    self.out.stdout.push('\n');
                    return self.error_exit("Failed to apply on some jails, please check logs");
                }
                "service" | "sysrc" if !v.at_least(0, 14, 0) => 0,
                _ => inner_rc,
            };
            if tool == "cmd" && !v.at_least(0, 14, 0) {
                self.info(&format!("[{name}]: {inner_rc}"));
            }
            if !v.at_least(0, 14, 0) {
                self.out.stdout.push('\n');
            }
            return rc;
        }
        if inner_rc == 0 {
            return 0;
        }
        if v.at_least(1, 1, 0) {
            return self.error_exit("[ERROR]: Command failed on 1 jails.");
        }
        self.out
            .stderr
            .push_str(&format!("[ERROR CODE]: {inner_rc}\n"));
        inner_rc
    }

    /// The major FreeBSD release of a jail's base (its fstab's `releases/REL` mount).
    fn jail_major_release(&self, name: &str) -> String {
        jail_release_of(&self.jail_dir(name))
    }
}

/// (host side, jail side, explicit `epair<N>` unit of the 0.x prestart lines).
type Epair = (String, String, Option<u32>);

/// The host side of an epair from its jail side: `e<N>b_X` → `e<N>a_X`, `epair<N>b` →
/// `epair<N>a`.
fn host_side_of(jail_side: &str) -> String {
    if let Some(rest) = jail_side.strip_prefix("epair") {
        return format!("epair{}a", rest.trim_end_matches('b'));
    }
    let digits: String = jail_side
        .chars()
        .skip(1)
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let prefix = format!("e{digits}b_");
    match jail_side.strip_prefix(&prefix) {
        Some(rest) => format!("e{digits}a_{rest}"),
        None => jail_side.to_string(),
    }
}

/// Every number written right after `word` in `text` (`epair3` → 3).
fn numbers_after(text: &str, word: &str) -> Vec<u32> {
    text.match_indices(word)
        .filter_map(|(i, _)| {
            let digits: String = text[i + word.len()..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            digits.parse().ok()
        })
        .collect()
}

fn jail_release_of(jail_dir: &Path) -> String {
    fs::read_to_string(jail_dir.join("fstab"))
        .ok()
        .and_then(|f| {
            f.lines().find_map(|l| {
                let src = l.split_whitespace().next()?;
                src.rsplit_once("/releases/").map(|(_, r)| r.to_string())
            })
        })
        .unwrap_or_default()
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

/// pkg(8) is bootstrapped in a jail once `usr/local/sbin/pkg` exists in its root.
fn pkg8_installed(jroot: &Path) -> bool {
    jroot.join("usr/local/sbin/pkg").is_file()
}

/// `/usr/sbin/pkg` inside a jail, i.e. pkg(7) (freebsd-src `usr.sbin/pkg/pkg.c` `main`):
/// without pkg(8) it bootstraps only with `ASSUME_ALWAYS_YES` (stdin is not a terminal
/// here), else prints the non-interactive message and exits 1; then it runs pkg(8).
fn jail_pkg7(jroot: &Path, jail: &str, assume_yes: bool, args: &[String]) -> Out {
    if !pkg8_installed(jroot) {
        if !assume_yes {
            return Out::err(1, "The package management tool is not yet installed on your system.\nPlease set ASSUME_ALWAYS_YES=yes environment variable to be able to bootstrap in non-interactive (stdin not being a tty)\n");
        }
        let _ = fs::create_dir_all(jroot.join("usr/local/sbin"));
        let _ = fs::write(
            jroot.join("usr/local/sbin/pkg"),
            "#!/bin/sh\n# sim pkg(8)\n",
        );
        let out = pkg(jroot, jail, args);
        return Out {
            stdout: format!(
                "Bootstrapping pkg from pkg+https://pkg.FreeBSD.org/FreeBSD:14:amd64/quarterly, please wait...\nInstalling pkg-2.1.2...\n{}",
                out.stdout
            ),
            ..out
        };
    }
    pkg(jroot, jail, args)
}

/// pkg(8) inside a jail: `install [-y] NAME…`, `query %n`, `info`.
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

/// service(8) inside a jail for package services (no real scripts run here), with the
/// jail's own rc.subr: `status` needs `<svc>_enable` on releases before 14 (it prints
/// `Cannot 'status' …` and exits 0, as cfengine/masterfiles PR #1878 shows for a disabled
/// ntpd), while current rc.subr (freebsd-src `libexec/rc/rc.subr`) exempts `status`;
/// `one<verb>` bypasses the check everywhere.
fn jail_service(jroot: &Path, release: &str, args: &[String]) -> Out {
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
    let major: u32 = release
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(14);
    let status_exempt = major >= 14;
    let cannot = |verb: &str| {
        Out::ok(format!("Cannot '{verb}' {svc}. Set {svc}_enable to YES in /etc/rc.conf or use 'one{verb}' instead of '{verb}'.\n"))
    };
    match verb {
        "status" if !enabled && !one && !status_exempt => cannot("status"),
        "status" if is_running => Out::ok(format!("{svc} is running as pid 4242.\n")),
        "status" => Out {
            stdout: format!("{svc} is not running.\n"),
            stderr: String::new(),
            rc: 1,
        },
        "enable" => {
            let rc = jroot.join("etc/rc.conf");
            crate::sysrc::run(
                jroot,
                &[
                    "-f".into(),
                    rc.to_string_lossy().into_owned(),
                    format!("{svc}_enable=YES"),
                ],
            );
            Out::ok(format!("{svc} enabled in /etc/rc.conf\n"))
        }
        "start" | "stop" | "restart" if !enabled && !one => cannot(verb),
        "start" if is_running => Out::err(1, format!("{svc} already running? (pid=4242).\n")),
        "start" => {
            running.push(svc.clone());
            write_running_services(jroot, &running);
            Out::ok(format!("Starting {svc}.\n"))
        }
        "stop" if !is_running => Out::err(
            1,
            format!("{svc} not running? (check /var/run/{svc}.pid).\n"),
        ),
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
        other => Out::err(
            1,
            format!("/usr/local/etc/rc.d/{svc}: unknown directive '{other}'.\n"),
        ),
    }
}

/// A command run inside a jail (by `jexec` or `bastille cmd`): the jail's service(8),
/// pkg(7), pkg(8) and sysrc(8), `env VAR=…` in front of them.
fn jail_exec(jroot: &Path, jail: &str, argv: &[String]) -> Out {
    let mut argv: Vec<String> = argv.to_vec();
    let mut assume_yes = false;
    if argv.first().map(String::as_str) == Some("env")
        || argv.first().map(String::as_str) == Some("/usr/bin/env")
    {
        argv.remove(0);
        while let Some(a) = argv.first().cloned() {
            let Some((k, v)) = a.split_once('=') else {
                break;
            };
            if k == "ASSUME_ALWAYS_YES" {
                assume_yes = matches!(v.to_ascii_lowercase().as_str(), "yes" | "true" | "on" | "1");
            }
            argv.remove(0);
        }
    }
    let Some(cmd) = argv.first().cloned() else {
        return Out::err(1, "usage: env [-0iv] [-L|-U user[/class]] [-P utilpath] [-S string] [-u name] [name=value ...] [utility [argument ...]]\n");
    };
    let rest = &argv[1..];
    let release = jroot.parent().map(jail_release_of).unwrap_or_default();
    match cmd.as_str() {
        "/usr/sbin/service" | "service" => jail_service(jroot, &release, rest),
        "/usr/sbin/pkg" | "pkg" => jail_pkg7(jroot, jail, assume_yes, rest),
        "/usr/local/sbin/pkg" if pkg8_installed(jroot) => pkg(jroot, jail, rest),
        "/usr/local/sbin/pkg" => Out::err(
            1,
            "jexec: execvp: /usr/local/sbin/pkg: No such file or directory\n",
        ),
        "/usr/sbin/sysrc" | "sysrc" => crate::sysrc::run(jroot, rest),
        other => Out::err(
            SIM_FAILURE,
            format!("freebsd-sim: {other} inside a jail is not simulated\n"),
        ),
    }
}

/// The host's pkg(8) for what tests read of it: `pkg -r <jail root> query %n` lists the
/// packages installed in a jail's root without entering the jail. (The module no longer
/// uses it: with `-r` the real pkg reads the jail's own pkg.conf, plugins included, as
/// host root — freebsd/pkg `libpkg/pkg_config.c` `pkg_ini`, `src/main.c`.)
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

/// `jexec [-l] [-u user|-U user] jail command …` (freebsd-src `usr.sbin/jexec/jexec.c`):
/// runs the command in a running jail and exits with its status; an unknown jail →
/// `jexec: jail "NAME" not found`, exit 1. jexec prints nothing of its own.
pub fn jexec(root: &Path, args: &[String]) -> Out {
    let mut i = 0;
    while i < args.len() && args[i].starts_with('-') {
        match args[i].as_str() {
            "-l" => i += 1,
            "-u" | "-U" => i += 2,
            flag => {
                return Out::err(
                    SIM_FAILURE,
                    format!("freebsd-sim: jexec {flag} is not simulated\n"),
                )
            }
        }
    }
    let Some(name) = args.get(i) else {
        return Out::err(1, "usage: jexec [-l] [-d working-directory] [-u username | -U username] jail [command ...]\n");
    };
    let running = Running::load(root);
    let name = match running
        .jails
        .iter()
        .find(|(n, jid)| *n == name || jid.to_string() == *name)
    {
        Some((n, _)) => n.clone(),
        None => return Out::err(1, format!("jexec: jail \"{name}\" not found\n")),
    };
    let conf = root.join("usr/local/etc/bastille/bastille.conf");
    let prefix = crate::sysrc::eval(
        &root.join("etc/defaults/rc.conf"),
        std::slice::from_ref(&conf),
        "bastille_prefix",
    )
    .unwrap_or_default();
    let jroot = PathBuf::from(prefix).join("jails").join(&name).join("root");
    jail_exec(&jroot, &name, &args[i + 1..])
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
        assert_eq!(Version::parse("1.4.4"), Version(1, 4, 4, 0));
        assert_eq!(Version::parse("1.1.0.251001"), Version(1, 1, 0, 251001));
        assert_eq!(Version::parse("1.0.20250714"), Version(1, 0, 0, 20250714));
        assert_eq!(Version::parse("0.14.20250420"), Version(0, 14, 0, 20250420));
        assert!(Version::parse("0.12.20241124") < Version::parse("0.12.20250111"));
        assert_eq!(reported_version("1.1.1.251118"), "1.1.0.251001");
        assert_eq!(host_side_of("e12b_mevy-git"), "e12a_mevy-git");
        assert_eq!(host_side_of("epair3b"), "epair3a");
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
