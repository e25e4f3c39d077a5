//! Bastille (BastilleBSD/bastille, 0.10 … 1.4.4) and `jls`: version detection, the command
//! forms each version takes, and reading a jail's state from the files Bastille itself
//! trusts (the project's Bastille facts):
//! * a jail exists iff `<prefix>/jails/NAME/jail.conf` exists (what `bastille list jails`
//!   prints); it runs iff `jls name` lists it;
//! * `-g` (gateway), `destroy -y` and `pkg -y` exist from 1.0; `destroy` prompts from 1.0;
//!   0.14 destroys with `-a`, 0.10 with `force`;
//! * VNET names with `-` or `_` are refused from 1.1.0; names longer than 11 characters
//!   overflow `e0a_NAME` (IFNAMSIZ): 1.1.1+ falls back to `e0a_bastilleN`, 1.0–1.1.0
//!   truncates to `e0a_<7>xx<2>` (collisions, issue #1245), 0.10 fails at start;
//! * `bastille -v` prints the bare version on stdout, or on stderr in 1.4.0–1.4.4.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};

use crate::exec::Cmd;
use crate::rcconf::RcConf;

/// A Bastille version, compared by its numeric fields (the date fields of `0.14.20250420`
/// or `1.0.20250714` are not versions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    pub fn parse(text: &str) -> Result<Version> {
        let fields: Vec<&str> = text.trim().split('.').collect();
        let number = |i: usize| -> Result<u32> {
            fields
                .get(i)
                .map(|f| {
                    f.parse::<u32>()
                        .map_err(|_| anyhow!("{text:?} is not a Bastille version"))
                })
                .unwrap_or(Ok(0))
        };
        if fields.len() < 2 {
            return Err(anyhow!("{text:?} is not a Bastille version"));
        }
        let patch = match fields.get(2) {
            Some(f) if f.len() >= 6 => 0,
            _ => number(2)?,
        };
        Ok(Version(number(0)?, number(1)?, patch))
    }

    /// `-g`, `destroy -y`, `pkg -y`.
    pub fn is_1x(&self) -> bool {
        *self >= Version(1, 0, 0)
    }

    /// VNET jail names may not contain `-` or `_`.
    pub fn forbids_dash_in_vnet_names(&self) -> bool {
        *self >= Version(1, 1, 0)
    }

    /// Why a jail name is unsafe for this version's epair naming, if it is.
    pub fn epair_problem(&self, name: &str) -> Option<String> {
        if format!("e0a_{name}").len() < 16 {
            return None;
        }
        if *self >= Version(1, 1, 1) || (*self >= Version(0, 11, 0) && *self < Version(1, 0, 0)) {
            return None; // e0a_bastilleN (1.1.1+) or epairN (0.14)
        }
        if self.is_1x() {
            return Some(format!(
                "jail name {name:?} is longer than 11 characters: this Bastille truncates its epair to e0a_<7 chars>xx<2 chars>, which can collide with another jail's (Bastille issue #1245); use at most 11 characters or Bastille 1.1.1 or later"
            ));
        }
        Some(format!(
            "jail name {name:?} is longer than 11 characters: this Bastille names the epair e0a_{name}, longer than an interface name may be (15), and the jail would not start; use at most 11 characters"
        ))
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// Asks `bastille -v` (stdout or stderr, depending on the version).
pub fn version(bastille: &Path) -> Result<(Version, String)> {
    let out = Cmd::new(bastille).arg("-v").run()?;
    parse_version_output(&format!("{}\n{}", out.stdout, out.stderr))
}

/// Reads what `bastille -v` printed (stdout and stderr together, as a probe run on the
/// host returns it): the version on its last non-empty line, and that line.
pub fn parse_version_output(text: &str) -> Result<(Version, String)> {
    let line = text
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .ok_or_else(|| anyhow!("`bastille -v` printed nothing"))?
        .to_string();
    Ok((Version::parse(&line)?, line))
}

/// Names of the running jails (`jls name`).
pub fn running(jls: &Path) -> Result<Vec<String>> {
    Ok(Cmd::new(jls)
        .arg("name")
        .run()?
        .stdout
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect())
}

/// Whether one jail runs (`jls -j NAME jid` exits 0).
pub fn is_running(jls: &Path, name: &str) -> Result<bool> {
    Ok(Cmd::new(jls).args(["-j", name, "jid"]).output()?.success())
}

/// Paths of a jail under Bastille's prefix.
#[derive(Debug, Clone)]
pub struct JailPaths {
    pub dir: PathBuf,
}

impl JailPaths {
    pub fn new(prefix: &Path, name: &str) -> Self {
        JailPaths {
            dir: prefix.join("jails").join(name),
        }
    }
    pub fn jail_conf(&self) -> PathBuf {
        self.dir.join("jail.conf")
    }
    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }
    pub fn rc_conf(&self) -> PathBuf {
        self.root().join("etc/rc.conf")
    }
    pub fn exists(&self) -> bool {
        self.jail_conf().is_file()
    }
}

/// What a jail's files say about it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JailConfig {
    pub vnet: bool,
    /// The bridge its epair joins (`exec.prestart += "ifconfig BRIDGE addm …"`).
    pub bridge: Option<String>,
    /// `vnet.interface`, the jail side of the epair.
    pub interface: Option<String>,
    /// The release its base comes from (the `releases/REL` nullfs mount in its fstab).
    pub release: Option<String>,
    /// `boot` from settings.conf (1.0+).
    pub boot: Option<String>,
}

impl JailConfig {
    pub fn read(paths: &JailPaths) -> Result<JailConfig> {
        let conf = std::fs::read_to_string(paths.jail_conf())
            .with_context(|| format!("cannot read {}", paths.jail_conf().display()))?;
        let fstab = std::fs::read_to_string(paths.dir.join("fstab")).unwrap_or_default();
        let settings = RcConf::read(&paths.dir.join("settings.conf"))?;
        Ok(JailConfig::parse(
            &conf,
            &fstab,
            settings.get("boot").and_then(|v| v.literal()),
        ))
    }

    pub fn parse(jail_conf: &str, fstab: &str, boot: Option<&str>) -> JailConfig {
        let statements: Vec<&str> = jail_conf.lines().map(str::trim).collect();
        let value = |key: &str| {
            statements.iter().find_map(|l| {
                let rest = l.strip_prefix(key)?.trim_start();
                let rest = rest.strip_prefix('=')?;
                Some(
                    rest.trim()
                        .trim_end_matches(';')
                        .trim()
                        .trim_matches('"')
                        .to_string(),
                )
            })
        };
        let bridge = statements.iter().find_map(|l| {
            let words: Vec<&str> = l
                .split(|c: char| c.is_whitespace() || c == '"')
                .filter(|w| !w.is_empty())
                .collect();
            words
                .windows(3)
                .find(|w| w[0] == "ifconfig" && w[2] == "addm")
                .map(|w| w[1].to_string())
        });
        let release = fstab.lines().find_map(|l| {
            let source = l.split_whitespace().next()?;
            let (_, rel) = source.rsplit_once("/releases/")?;
            Some(rel.trim_end_matches('/').to_string())
        });
        JailConfig {
            vnet: statements.contains(&"vnet;"),
            bridge,
            interface: value("vnet.interface"),
            release,
            boot: boot.map(String::from),
        }
    }
}

/// What a new VNET jail is created with.
#[derive(Debug, Clone)]
pub struct NewJail<'a> {
    pub name: &'a str,
    pub release: &'a str,
    /// `A.B.C.D/P`
    pub ip: &'a str,
    pub bridge: &'a str,
    pub gateway: &'a str,
    pub boot: bool,
}

/// `bastille create -B [-g GW] [--no-boot] NAME RELEASE IP BRIDGE` (`-g`/`--no-boot`: 1.0+).
pub fn create(bastille: &Path, version: Version, jail: &NewJail) -> Cmd {
    let mut cmd = Cmd::new(bastille).arg("create").arg("-B");
    if version.is_1x() {
        cmd = cmd.arg("-g").arg(jail.gateway);
        if !jail.boot {
            cmd = cmd.arg("--no-boot");
        }
    }
    cmd.args([jail.name, jail.release, jail.ip, jail.bridge])
}

/// Destroys a jail, stopping it first, without prompting, in this version's words.
pub fn destroy(bastille: &Path, version: Version, name: &str) -> Cmd {
    let cmd = Cmd::new(bastille).arg("destroy");
    if version.is_1x() {
        cmd.args(["-a", "-y", name])
    } else if version >= Version(0, 11, 0) {
        cmd.args(["-a", name])
    } else {
        cmd.args(["force", name])
    }
}

/// Installs packages in a running jail, answering pkg's prompts.
pub fn pkg_install(bastille: &Path, version: Version, name: &str, packages: &[String]) -> Cmd {
    let cmd = Cmd::new(bastille).arg("pkg");
    let cmd = if version.is_1x() { cmd.arg("-y") } else { cmd };
    cmd.arg(name).args(["install", "-y"]).args(packages)
}

/// Packages installed in a jail, read by the host's pkg(8) from the jail's root, which
/// works whether or not the jail runs (`pkg -r ROOT query %n`).
pub fn installed_packages(pkg: &Path, root: &Path) -> Result<Vec<String>> {
    Ok(Cmd::new(pkg)
        .arg("-r")
        .arg(root)
        .args(["query", "%n"])
        .run()?
        .stdout
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(Version::parse("1.4.4").unwrap(), Version(1, 4, 4));
        assert_eq!(Version::parse("1.1.0.251001").unwrap(), Version(1, 1, 0));
        assert_eq!(Version::parse("1.0.20250714").unwrap(), Version(1, 0, 0));
        assert_eq!(Version::parse("0.14.20250420").unwrap(), Version(0, 14, 0));
        assert!(Version::parse("bastille").is_err());
        assert!(Version::parse("1").is_err());
        assert!(Version(1, 1, 0).forbids_dash_in_vnet_names());
        assert!(!Version(1, 0, 1).forbids_dash_in_vnet_names());
    }

    #[test]
    fn version_output_as_a_probe_returns_it() {
        // 1.4.x prints on stderr: after whatever stdout held; over ssh lines end in \r\n.
        let (v, line) = parse_version_output("\n1.4.4\r\n\n").unwrap();
        assert_eq!((v, line.as_str()), (Version(1, 4, 4), "1.4.4"));
        assert_eq!(
            parse_version_output("0.14.20250420").unwrap().0,
            Version(0, 14, 0)
        );
        assert!(
            format!("{:#}", parse_version_output(" \n").unwrap_err()).contains("printed nothing")
        );
        assert!(parse_version_output("bastille: not found").is_err());
    }

    #[test]
    fn epair_limits() {
        assert_eq!(Version(1, 4, 4).epair_problem("mevyllamacpp"), None);
        assert_eq!(Version(0, 14, 0).epair_problem("mevyllamacpp"), None);
        assert!(Version(1, 0, 0)
            .epair_problem("mevyllamacpp")
            .unwrap()
            .contains("#1245"));
        assert!(Version(0, 10, 0)
            .epair_problem("mevy-llamacpp")
            .unwrap()
            .contains("would not start"));
        assert_eq!(Version(1, 0, 0).epair_problem("mevyollama"), None);
    }

    #[test]
    fn jail_conf_of_1_4_4_and_0_10() {
        let conf = "mevygit {\n  vnet;\n  vnet.interface = e0b_mevygit;\n  exec.prestart += \"ifconfig warden0 addm e0a_mevygit\";\n}\n";
        let fstab = "/usr/local/bastille/releases/14.2-RELEASE /usr/local/bastille/jails/mevygit/root/.bastille nullfs ro 0 0\n";
        let c = JailConfig::parse(conf, fstab, Some("on"));
        assert!(c.vnet);
        assert_eq!(c.bridge.as_deref(), Some("warden0"));
        assert_eq!(c.interface.as_deref(), Some("e0b_mevygit"));
        assert_eq!(c.release.as_deref(), Some("14.2-RELEASE"));
        let old = "x {\n  vnet;\n  vnet.interface = \"e0b_mevy-git\";\n  exec.prestart += \"ifconfig warden0 addm epair0a\";\n}\n";
        assert_eq!(
            JailConfig::parse(old, "", None).interface.as_deref(),
            Some("e0b_mevy-git")
        );
        let plain = JailConfig::parse("x {\n  ip4.addr = bastille0|10.0.0.5;\n}\n", "", None);
        assert!(!plain.vnet && plain.bridge.is_none());
    }

    fn jail(name: &str) -> NewJail<'_> {
        NewJail {
            name,
            release: "14.2-RELEASE",
            ip: "10.0.1.2/24",
            bridge: "warden0",
            gateway: "10.0.1.1",
            boot: true,
        }
    }

    #[test]
    fn commands_per_version() {
        let b = Path::new("/usr/local/bin/bastille");
        assert_eq!(
            create(b, Version(1, 4, 4), &NewJail { boot: false, ..jail("mevygit") }).to_string(),
            "/usr/local/bin/bastille create -B -g 10.0.1.1 --no-boot mevygit 14.2-RELEASE 10.0.1.2/24 warden0"
        );
        assert_eq!(
            create(b, Version(0, 14, 0), &jail("mevy-git")).to_string(),
            "/usr/local/bin/bastille create -B mevy-git 14.2-RELEASE 10.0.1.2/24 warden0"
        );
        assert_eq!(
            destroy(b, Version(1, 0, 0), "x").to_string(),
            "/usr/local/bin/bastille destroy -a -y x"
        );
        assert_eq!(
            destroy(b, Version(0, 14, 0), "x").to_string(),
            "/usr/local/bin/bastille destroy -a x"
        );
        assert_eq!(
            destroy(b, Version(0, 10, 0), "x").to_string(),
            "/usr/local/bin/bastille destroy force x"
        );
        assert_eq!(
            pkg_install(b, Version(1, 4, 4), "x", &["git".into()]).to_string(),
            "/usr/local/bin/bastille pkg -y x install -y git"
        );
    }
}
