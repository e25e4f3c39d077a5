//! Bastille (BastilleBSD/bastille, every release 0.10.20231125 … 1.4.4), `jls` and `jexec`:
//! version detection, the command forms each version takes, reading a jail's state from the
//! files Bastille itself trusts, and editing the jail's own files without letting the jail
//! redirect a write. Every fact cites the tag and file it was read from; the whole list is
//! `docs/bastille-facts.md` in this repository (sections named `§N` below).
//!
//! * A jail exists iff `<prefix>/jails/NAME/jail.conf` exists (what `bastille list jails`
//!   prints); it runs iff `jls name` lists it (§2).
//! * `bastille -v` prints the version on stdout, on stderr in 1.4.0–1.4.4; 0.11.20241022
//!   prints `0.10.20231125` and 1.1.1.251118 prints `1.1.0.251001` (`BASTILLE_VERSION` in
//!   `usr/local/bin/bastille` at those tags), so every rule below is chosen to be right for
//!   both releases behind a reported version (§1).
//! * In-jail work goes through `jexec -l -U root NAME …`, which is what Bastille's own
//!   `pkg.sh`/`cmd.sh` run, because jexec(8) returns the command's own exit status on every
//!   version, while `bastille service` always exits 0 on 0.10–0.13 (`service.sh` ends its
//!   loop with `echo`), `bastille pkg|service|cmd` exit 0 for a stopped jail on 0.14+, and
//!   `bastille pkg` has no `-y` before 1.0 (so pkg(7) cannot bootstrap in a new jail, §6).
//! * Packages are read with the jail's own pkg(8) inside the jail, never with the host's
//!   `pkg -r <jail root>`: that reads the jail's `usr/local/etc/pkg.conf` (plugins included)
//!   as host root, and upgrades or refuses a jail database of an older schema (§7).

use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use crate::exec::Cmd;
use crate::fs::{self, Attrs, FileState};
use crate::plan::Step;
use crate::rcconf::{is_yes, RcConf};
use crate::sysrc;

/// A Bastille version as `bastille -v` reports it, compared by its numeric fields (the date
/// fields of `0.14.20250420` or `1.0.20250714` are not versions).
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

    /// `create -g`, `destroy -y`, `pkg -y`, `settings.conf` (1.0.20250714 `create.sh`,
    /// `destroy.sh`, `pkg.sh`; §3, §4).
    pub fn is_1x(&self) -> bool {
        *self >= Version(1, 0, 0)
    }

    /// VNET jail names may not contain `-` or `_` (1.1.0.251001 `create.sh` `validate_name`).
    pub fn forbids_dash_in_vnet_names(&self) -> bool {
        *self >= Version(1, 1, 0)
    }

    /// Where the per-jail boot flag lives: `settings.conf` (1.0+) or `boot.conf`
    /// (0.14.20250420 `create.sh`/`config.sh`); `None` before 0.14, where `config set boot`
    /// writes `boot = off;` into jail.conf, which jail(8) refuses (§5).
    pub fn boot_file(&self) -> Option<&'static str> {
        if self.is_1x() {
            Some("settings.conf")
        } else if *self >= Version(0, 14, 0) {
            Some("boot.conf")
        } else {
            None
        }
    }

    /// `bastille stop` of a stopped jail exits 1 (`Not started`) before 0.14: 0.10–0.13
    /// `usr/local/bin/bastille` runs `check_target_is_running` for `stop` (§3).
    pub fn stop_of_stopped_fails(&self) -> bool {
        *self < Version(0, 14, 0)
    }

    /// Why a jail name is unsafe for this version's epair naming, if it is. `next_unit` is
    /// the epair number a 0.10–0.12 Bastille would pick ([`next_epair_unit`]).
    ///
    /// Interface names hold 15 characters (IFNAMSIZ 16). 0.10–0.12 name the host side
    /// `e<N>a_NAME` with no length check, so a longer name fails at `jail -c`; 0.13–0.14 fall
    /// back to `epair<N>a`; 1.0–1.1.0 truncate to `e0a_<7 chars>xx<2 chars>` (collisions,
    /// Bastille issue #1245); 1.1.1+ fall back to `e0a_bastille<N>` — but 1.1.1 reports
    /// itself as 1.1.0.251001, so that version is treated as truncating (§2).
    pub fn epair_problem(&self, name: &str, next_unit: u32) -> Option<String> {
        if *self < Version(0, 13, 0) {
            let host_side = format!("e{next_unit}a_{name}");
            if host_side.len() < 16 {
                return None;
            }
            return Some(format!(
                "jail name {name:?} is too long for this Bastille: it names the epair {host_side}, longer than an interface name may be (15), and the jail would not start; use at most {} characters",
                15 - format!("e{next_unit}a_").len()
            ));
        }
        if format!("e0a_{name}").len() < 16 || *self < Version(1, 0, 0) {
            return None; // fits, or 0.13–0.14's epairN fallback
        }
        if *self >= Version(1, 1, 1) {
            return None; // e0a_bastilleN
        }
        Some(format!(
            "jail name {name:?} is longer than 11 characters: this Bastille truncates its epair to e0a_<7 chars>xx<2 chars>, which can collide with another jail's (Bastille issue #1245; 1.1.1 reports itself as 1.1.0.251001, so it is treated the same); use at most 11 characters or Bastille 1.1.2 or later"
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
    let text = format!("{}\n{}", out.stdout, out.stderr);
    if text.contains("Configuration file not found") {
        // 0.12.20250111–0.14 `usr/local/bin/bastille`: asks whether to create the config,
        // reads an empty answer and exits 0 having done nothing.
        bail!("Bastille is not configured (no bastille.conf): it asked on the terminal whether to create one; run `bastille setup` first");
    }
    parse_version_output(&text)
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

/// Paths of a jail under Bastille's prefix. `dir` is Bastille's (root-only, 0700); `root()`
/// and everything below it belong to the jail's own root user.
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

/// Refuses a path inside a jail's root that the jail could have redirected: any symbolic
/// link on the way below `root`, or a final component that is not a regular file. The
/// runtime's `fs` reads and writes are themselves link-safe; this check names the jail file
/// in the message and keeps the refusal independent of how they are built.
pub fn check_jail_path(root: &Path, path: &Path) -> Result<()> {
    let rel = path
        .strip_prefix(root)
        .map_err(|_| anyhow!("{} is not inside {}", path.display(), root.display()))?;
    let mut at = root.to_path_buf();
    let parts: Vec<Component> = rel.components().collect();
    for (i, part) in parts.iter().enumerate() {
        let Component::Normal(name) = part else {
            bail!("{} is not a plain path inside the jail", path.display());
        };
        at.push(name);
        match std::fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => bail!(
                "{} is a symbolic link inside the jail (the jail's root user can point it anywhere on the host); refusing to read or write through it",
                at.display()
            ),
            Ok(meta) if i + 1 == parts.len() && !meta.is_file() => bail!(
                "{} is not a regular file; refusing to read or write it",
                at.display()
            ),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", at.display())),
        }
    }
    Ok(())
}

/// A jail's rc.conf as it is now: its parsed assignments and the file itself (`None` when
/// missing), read without following links.
#[derive(Debug, Clone, Default)]
pub struct JailRcConf {
    pub rc: RcConf,
    pub state: Option<FileState>,
}

impl JailRcConf {
    pub fn read(paths: &JailPaths) -> Result<JailRcConf> {
        let path = paths.rc_conf();
        check_jail_path(&paths.root(), &path)?;
        let state = fs::read_state(&path)?;
        let rc = state
            .as_ref()
            .map(|s| RcConf::parse(&String::from_utf8_lossy(&s.content)))
            .unwrap_or_default();
        Ok(JailRcConf { rc, state })
    }
}

/// Edits a jail's rc.conf with the host's sysrc(8) — the one rc.conf editor — on a private
/// copy in a fresh root-only temporary directory, then writes the result back atomically
/// and without following links. The jail's root user owns the file and the directories
/// above it, so the host's sysrc never touches them: `sysrc -f` appends with `>>` and would
/// follow a link planted in their place. Undo writes back what was there before.
pub struct JailRcEdit {
    pub sysrc: PathBuf,
    /// The jail's root directory, below which no link is followed.
    pub root: PathBuf,
    pub path: PathBuf,
    pub sets: Vec<(String, String)>,
    pub deletes: Vec<String>,
    previous: Option<FileState>,
    written: bool,
}

impl JailRcEdit {
    pub fn new(sysrc: &Path, paths: &JailPaths, changes: &sysrc::Changes) -> JailRcEdit {
        let mut sets = Vec::new();
        let mut deletes = Vec::new();
        for name in changes.names() {
            match changes.value(&name) {
                Some(v) => sets.push((name, v)),
                None => deletes.push(name),
            }
        }
        JailRcEdit {
            sysrc: sysrc.to_owned(),
            root: paths.root(),
            path: paths.rc_conf(),
            sets,
            deletes,
            previous: None,
            written: false,
        }
    }

    fn commands(&self, file: &Path) -> Result<Vec<Cmd>> {
        let mut cmds = Vec::new();
        if !self.sets.is_empty() {
            cmds.push(sysrc::set_many(
                &self.sysrc,
                file,
                self.sets.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            )?);
        }
        if !self.deletes.is_empty() {
            cmds.push(sysrc::delete_many(
                &self.sysrc,
                file,
                self.deletes.iter().map(String::as_str),
            )?);
        }
        Ok(cmds)
    }

    fn shown(&self) -> String {
        let copy = PathBuf::from(format!("<private copy of {}>", self.path.display()));
        self.commands(&copy)
            .map(|c| {
                c.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default()
    }
}

impl Step for JailRcEdit {
    fn describe(&self) -> String {
        format!(
            "edit {} ({}, then write the copy back)",
            self.path.display(),
            self.shown()
        )
    }
    fn command(&self) -> Option<String> {
        Some(self.shown())
    }
    fn apply(&mut self) -> Result<()> {
        check_jail_path(&self.root, &self.path)?;
        let previous = fs::read_state(&self.path)?;
        // tempfile creates the directory with mode 0700, owned by this (root) process.
        let dir = tempfile::Builder::new()
            .prefix(".warden-jail-rc-")
            .tempdir()
            .context("cannot create a private directory for the jail's rc.conf")?;
        let copy = dir.path().join("rc.conf");
        fs::write_atomic(
            &copy,
            previous
                .as_ref()
                .map(|p| p.content.as_slice())
                .unwrap_or(b""),
            Attrs {
                mode: Some(0o600),
                ..Attrs::default()
            },
        )?;
        for cmd in self.commands(&copy)? {
            cmd.run()?;
        }
        let edited = fs::read_state(&copy)?
            .ok_or_else(|| anyhow!("sysrc removed the private copy of {}", self.path.display()))?;
        let attrs = match &previous {
            Some(p) => Attrs {
                mode: Some(p.mode),
                uid: Some(p.uid),
                gid: Some(p.gid),
            },
            None => Attrs {
                mode: Some(0o644),
                uid: Some(0),
                gid: Some(0),
            },
        };
        check_jail_path(&self.root, &self.path)?;
        fs::write_atomic(&self.path, &edited.content, attrs)?;
        self.previous = previous;
        self.written = true;
        Ok(())
    }
    fn undo(&mut self) -> Result<()> {
        if !self.written {
            return Ok(());
        }
        check_jail_path(&self.root, &self.path)?;
        fs::restore(&self.path, self.previous.as_ref())
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
    /// `boot` from settings.conf (1.0+) or boot.conf (0.14).
    pub boot: Option<String>,
    /// jail.conf holds a `boot` parameter, as `bastille config J set boot …` writes it
    /// before 0.14; jail(8) refuses to start such a jail (§5).
    pub boot_param: bool,
}

impl JailConfig {
    pub fn read(paths: &JailPaths, version: Version) -> Result<JailConfig> {
        let text = |path: &Path| -> Result<Option<String>> {
            Ok(crate::fs::read_state(path)
                .with_context(|| format!("cannot read {}", path.display()))?
                .map(|s| String::from_utf8_lossy(&s.content).into_owned()))
        };
        let conf = text(&paths.jail_conf())?.with_context(|| {
            format!(
                "cannot read {}: it does not exist",
                paths.jail_conf().display()
            )
        })?;
        let fstab = text(&paths.dir.join("fstab"))?.unwrap_or_default();
        let boot = match version.boot_file() {
            Some(file) => boot_flag(paths, file)?,
            None => None,
        };
        Ok(JailConfig::parse(&conf, &fstab, boot.as_deref()))
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
        let boot_param = statements.iter().any(|l| {
            l.strip_prefix("boot")
                .is_some_and(|r| r.starts_with([' ', '=', ';']))
        });
        JailConfig {
            vnet: statements.contains(&"vnet;"),
            bridge,
            interface: value("vnet.interface"),
            release,
            boot: boot.map(String::from),
            boot_param,
        }
    }
}

/// The epair number 0.10–0.12 give a new `-B` jail (`common.sh`
/// `generate_vnet_jail_netblock`): the first N from 0 to (jails + 1) that no jail.conf
/// mentions as `epairN` or `e?b_bastilleN` (a substring match, as `grep -q` does). The new
/// jail's directory already exists then, so it counts among the jails.
pub fn next_epair_unit(prefix: &Path) -> u32 {
    let confs: Vec<String> = std::fs::read_dir(prefix.join("jails"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    crate::fs::read_state(&e.path().join("jail.conf"))
                        .ok()
                        .flatten()
                })
                .map(|s| String::from_utf8_lossy(&s.content).into_owned())
                .collect()
        })
        .unwrap_or_default();
    let jails = std::fs::read_dir(prefix.join("jails"))
        .map(|rd| rd.flatten().count())
        .unwrap_or(0) as u32
        + 1;
    (0..=jails + 1)
        .find(|n| {
            !confs.iter().any(|c| {
                c.contains(&format!("epair{n}"))
                    || (0..10).any(|d| c.contains(&format!("e{d}b_bastille{n}")))
            })
        })
        .unwrap_or(0)
}

/// Why `bastille bootstrap` cannot run unattended on this host, if it cannot: when the
/// host's rc.conf has `zfs_enable="YES"` and bastille.conf's `bastille_zfs_enable` is not a
/// yes value (unset, empty or NO), every version's `bootstrap.sh` asks
/// `ZFS is enabled in rc.conf but not bastille.conf. Do you want to continue? (N|y)` and,
/// reading no answer, exits 1 with `Missing ZFS parameters. See bastille_zfs_enable.` (§8).
pub fn bootstrap_blocker(
    host_rc: &impl crate::rcconf::RcLookup,
    bastille_conf: &RcConf,
    conf_path: &Path,
) -> Option<String> {
    let zfs_host = host_rc.lookup("zfs_enable").and_then(|v| v.literal()) == Some("YES");
    let zfs_bastille = bastille_conf
        .get("bastille_zfs_enable")
        .and_then(|v| v.literal())
        .is_some_and(is_yes);
    if zfs_host && !zfs_bastille {
        Some(format!(
            "`bastille bootstrap` would stop at its question \"ZFS is enabled in rc.conf but not bastille.conf. Do you want to continue?\" and, with no terminal to answer it, fail with \"Missing ZFS parameters\": the host's rc.conf has zfs_enable=\"YES\" but bastille_zfs_enable in {} is not YES. Set bastille_zfs_enable=\"YES\" and bastille_zfs_zpool there (Bastille then keeps releases and jails on ZFS), or bootstrap the release once by hand",
            conf_path.display()
        ))
    } else {
        None
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

/// `bastille create -B [-g GW] [--no-boot] NAME RELEASE IP BRIDGE`: `-g` from 1.0
/// (1.0.20250714 `create.sh`), `--no-boot` from 0.14 (0.14.20250420 `create.sh`).
pub fn create(bastille: &Path, version: Version, jail: &NewJail) -> Cmd {
    let mut cmd = Cmd::new(bastille).arg("create").arg("-B");
    if version.is_1x() {
        cmd = cmd.arg("-g").arg(jail.gateway);
    }
    if !jail.boot && version.boot_file().is_some() {
        cmd = cmd.arg("--no-boot");
    }
    cmd.args([jail.name, jail.release, jail.ip, jail.bridge])
}

/// Destroys a jail, stopping it first, without prompting, in this version's words (§4):
/// 1.0+ `destroy -a -y` (without `-y` 1.x stops the jail, then the y/n prompt fails with no
/// terminal: exit 1, jail left stopped); 0.14 `destroy -a`; 0.10–0.13 only know
/// `-f|--force|force`, which stops a running jail first, and exit 1 `Unknown Option.` on
/// `-a`. `force` is right for 0.11, which reports itself as 0.10.
pub fn destroy(bastille: &Path, version: Version, name: &str) -> Cmd {
    let cmd = Cmd::new(bastille).arg("destroy");
    if version.is_1x() {
        cmd.args(["-a", "-y", name])
    } else if version >= Version(0, 14, 0) {
        cmd.args(["-a", name])
    } else {
        cmd.args(["force", name])
    }
}

/// `bastille bootstrap RELEASE`: fetches and extracts a release under `<prefix>/releases`
/// (every version's `share/bootstrap.sh`; on ZFS hosts see [`bootstrap_blocker`]).
pub fn bootstrap(bastille: &Path, release: &str) -> Cmd {
    Cmd::new(bastille).args(["bootstrap", release])
}

/// `bastille start NAME` or `bastille stop NAME`. Both exit 0 without doing anything on
/// several failures, and `stop` of a stopped jail exits 1 before 0.14
/// ([`Version::stop_of_stopped_fails`]), so a step asks `jls` before and after (§3).
pub fn set_running(bastille: &Path, name: &str, up: bool) -> Cmd {
    Cmd::new(bastille).args([if up { "start" } else { "stop" }, name])
}

/// `bastille config NAME set boot on|off`: settings.conf on 1.0+, boot.conf on 0.14; before
/// 0.14 it writes a `boot` parameter into jail.conf that jail(8) refuses, so callers check
/// [`Version::boot_file`] first (§5).
pub fn set_boot(bastille: &Path, name: &str, on: bool) -> Cmd {
    Cmd::new(bastille).args(["config", name, "set", "boot", if on { "on" } else { "off" }])
}

/// The per-jail boot flag as `bastille config … set boot` leaves it in [`Version::boot_file`].
pub fn boot_flag(paths: &JailPaths, file: &str) -> Result<Option<String>> {
    Ok(RcConf::read(&paths.dir.join(file))?
        .get("boot")
        .and_then(|v| v.literal())
        .map(String::from))
}

/// `jexec -l -U root NAME …`, as Bastille's `cmd.sh` and `pkg.sh` run commands in a jail.
fn jexec(jexec: &Path, name: &str) -> Cmd {
    Cmd::new(jexec).args(["-l", "-U", "root", name])
}

/// `service SVC onestatus` inside the jail: the answer does not depend on `SVC_enable`
/// (rc.subr before the status exemption prints `Cannot 'status' …` and exits 0 for a
/// disabled service), and jexec(8) passes service(8)'s exit status through (§6).
pub fn service_status(jexec_path: &Path, name: &str, service: &str) -> Cmd {
    jexec(jexec_path, name).args(["/usr/sbin/service", service, "onestatus"])
}

/// `service SVC start` inside the jail (the module enables SVC first, so rc.subr's enable
/// check is what the jail will do at its next boot too).
pub fn service_start(jexec_path: &Path, name: &str, service: &str) -> Cmd {
    jexec(jexec_path, name).args(["/usr/sbin/service", service, "start"])
}

/// Installs packages in a running jail: pkg(7) bootstraps pkg(8) only with
/// `ASSUME_ALWAYS_YES` when stdin is not a terminal (freebsd-src `usr.sbin/pkg/pkg.c`), which
/// 1.x's `bastille pkg -y` sets and 0.x cannot (§6, §7).
pub fn pkg_install(jexec_path: &Path, name: &str, packages: &[String]) -> Cmd {
    jexec(jexec_path, name)
        .args([
            "env",
            "ASSUME_ALWAYS_YES=yes",
            "/usr/sbin/pkg",
            "install",
            "-y",
        ])
        .args(packages)
}

/// `pkg query %n` run by the jail's own pkg(8) inside the running jail.
pub fn pkg_query(jexec_path: &Path, name: &str) -> Cmd {
    jexec(jexec_path, name).args(["/usr/local/sbin/pkg", "query", "%n"])
}

/// Packages installed in a running jail. A jail whose pkg(8) was never bootstrapped (no
/// `usr/local/sbin/pkg` in its root) has none, and nothing is run.
pub fn installed_packages(jexec_path: &Path, name: &str, root: &Path) -> Result<Vec<String>> {
    if std::fs::symlink_metadata(root.join("usr/local/sbin/pkg")).is_err() {
        return Ok(Vec::new());
    }
    Ok(pkg_query(jexec_path, name)
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
        assert_eq!(Version(0, 14, 0).boot_file(), Some("boot.conf"));
        assert_eq!(Version(0, 13, 0).boot_file(), None);
        assert!(Version(0, 13, 0).stop_of_stopped_fails());
        assert!(!Version(0, 14, 0).stop_of_stopped_fails());
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
        assert_eq!(Version(1, 4, 4).epair_problem("mevyllamacpp", 0), None);
        assert_eq!(Version(1, 1, 2).epair_problem("mevyllamacpp", 0), None);
        assert_eq!(Version(0, 14, 0).epair_problem("mevyllamacpp", 0), None);
        assert_eq!(Version(0, 13, 0).epair_problem("mevyllamacpp", 0), None);
        assert!(Version(1, 0, 0)
            .epair_problem("mevyllamacpp", 0)
            .unwrap()
            .contains("#1245"));
        assert_eq!(Version(1, 0, 0).epair_problem("mevyollama", 0), None);
    }

    /// 0.11–0.12 were treated as having 0.14's `epairN` fallback; they have none
    /// (0.11.20241022 and 0.12.20250111 `common.sh` `generate_vnet_jail_netblock`).
    #[test]
    fn epair_names_without_length_fallback_on_0_11_and_0_12() {
        for v in [Version(0, 10, 0), Version(0, 12, 0)] {
            assert!(v
                .epair_problem("mevyllamacpp", 0)
                .unwrap()
                .contains("would not start"));
            assert_eq!(v.epair_problem("mevyollama1", 0), None, "e0a_ + 11 fits");
            // With ten or more epairs in use the unit takes two digits.
            assert!(v.epair_problem("mevyollama1", 10).is_some());
        }
    }

    /// 1.1.1.251118 prints `1.1.0.251001`, and 1.1.0 truncates long epair names.
    #[test]
    fn reported_1_1_0_may_be_1_1_1_and_is_treated_as_truncating() {
        let v = Version::parse("1.1.0.251001").unwrap();
        assert!(v
            .epair_problem("mevyllamacpp", 0)
            .unwrap()
            .contains("1.1.1"));
    }

    #[test]
    fn jail_conf_of_1_4_4_and_0_10() {
        let conf = "mevygit {\n  vnet;\n  vnet.interface = e0b_mevygit;\n  exec.prestart += \"ifconfig warden0 addm e0a_mevygit\";\n}\n";
        let fstab = "/usr/local/bastille/releases/14.2-RELEASE /usr/local/bastille/jails/mevygit/root/.bastille nullfs ro 0 0\n";
        let c = JailConfig::parse(conf, fstab, Some("on"));
        assert!(c.vnet && !c.boot_param);
        assert_eq!(c.bridge.as_deref(), Some("warden0"));
        assert_eq!(c.interface.as_deref(), Some("e0b_mevygit"));
        assert_eq!(c.release.as_deref(), Some("14.2-RELEASE"));
        let old = "x {\n  vnet;\n  vnet.interface = \"e0b_mevy-git\";\n  exec.prestart += \"ifconfig warden0 addm epair0a\";\n  boot = off;\n}\n";
        let old = JailConfig::parse(old, "", None);
        assert_eq!(old.interface.as_deref(), Some("e0b_mevy-git"));
        assert!(old.boot_param, "0.10's `config set boot` line");
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
            create(
                b,
                Version(0, 14, 0),
                &NewJail {
                    boot: false,
                    ..jail("mevy-git")
                }
            )
            .to_string(),
            "/usr/local/bin/bastille create -B --no-boot mevy-git 14.2-RELEASE 10.0.1.2/24 warden0"
        );
        assert_eq!(
            create(b, Version(0, 10, 0), &jail("mevy-git")).to_string(),
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
            bootstrap(b, "14.2-RELEASE").to_string(),
            "/usr/local/bin/bastille bootstrap 14.2-RELEASE"
        );
        assert_eq!(
            set_running(b, "x", true).to_string(),
            "/usr/local/bin/bastille start x"
        );
        assert_eq!(
            set_running(b, "x", false).to_string(),
            "/usr/local/bin/bastille stop x"
        );
        assert_eq!(
            set_boot(b, "x", false).to_string(),
            "/usr/local/bin/bastille config x set boot off"
        );
        let j = Path::new("/usr/sbin/jexec");
        assert_eq!(
            pkg_install(j, "x", &["git".into()]).to_string(),
            "/usr/sbin/jexec -l -U root x env ASSUME_ALWAYS_YES=yes /usr/sbin/pkg install -y git"
        );
        assert_eq!(
            service_status(j, "x", "nginx").to_string(),
            "/usr/sbin/jexec -l -U root x /usr/sbin/service nginx onestatus"
        );
    }

    /// 0.12.x and 0.13.x take only `-f|--force|force` and exit 1 `Unknown Option.` on `-a`
    /// (0.13.20250126 `destroy.sh`); 0.11 reports itself as 0.10.
    #[test]
    fn destroy_a_is_unknown_before_0_14() {
        let b = Path::new("bastille");
        for v in [
            "0.10.20231125",
            "0.12.20241124",
            "0.12.20250111",
            "0.13.20250126",
        ] {
            let cmd = destroy(b, Version::parse(v).unwrap(), "x").to_string();
            assert_eq!(cmd, "bastille destroy force x", "{v}");
        }
    }

    #[test]
    fn bootstrap_prompts_on_zfs_hosts_without_bastille_zfs_enable() {
        let conf = Path::new("/usr/local/etc/bastille/bastille.conf");
        let zfs = RcConf::parse("zfs_enable=\"YES\"\n");
        for bastille in [
            "",
            "bastille_zfs_enable=\"\"\n",
            "bastille_zfs_enable=\"NO\"\n",
        ] {
            let msg = bootstrap_blocker(&zfs, &RcConf::parse(bastille), conf).unwrap();
            assert!(msg.contains("bastille_zfs_enable") && msg.contains("Missing ZFS parameters"));
        }
        assert!(
            bootstrap_blocker(&zfs, &RcConf::parse("bastille_zfs_enable=YES\n"), conf).is_none()
        );
        assert!(
            bootstrap_blocker(&RcConf::parse("zfs_enable=NO\n"), &RcConf::default(), conf)
                .is_none()
        );
        // bootstrap.sh compares the literal string YES.
        assert!(
            bootstrap_blocker(&RcConf::parse("zfs_enable=yes\n"), &RcConf::default(), conf)
                .is_none()
        );
    }

    #[test]
    fn epair_unit_like_0_10() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(next_epair_unit(dir.path()), 0);
        for (name, unit) in [("a", 0), ("b", 1)] {
            let d = dir.path().join("jails").join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(
                d.join("jail.conf"),
                format!("  exec.prestart += \"ifconfig epair{unit} create\";\n"),
            )
            .unwrap();
        }
        assert_eq!(next_epair_unit(dir.path()), 2);
    }

    #[test]
    fn jail_paths_with_links_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        let outside = dir.path().join("host-file");
        std::fs::write(&outside, "secret=1\n").unwrap();
        assert!(check_jail_path(&root, &root.join("etc/rc.conf")).is_ok());
        std::os::unix::fs::symlink(&outside, root.join("etc/rc.conf")).unwrap();
        let err = check_jail_path(&root, &root.join("etc/rc.conf")).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        std::fs::remove_file(root.join("etc/rc.conf")).unwrap();
        std::fs::remove_dir(root.join("etc")).unwrap();
        std::os::unix::fs::symlink(dir.path(), root.join("etc")).unwrap();
        assert!(check_jail_path(&root, &root.join("etc/rc.conf")).is_err());
    }
}
