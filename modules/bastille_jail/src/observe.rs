//! Reads the host once, through the runtime's `bastille`, `ifconfig` and `rcconf` files:
//! `bastille -v`, `jls name`, the jail's own files under the prefix (jail.conf, fstab, the
//! boot flag, its rc.conf — read without following links), and, only where the plan needs
//! them: inside a running jail that stays, its package list and the wanted services' states
//! (through `jexec`); for a jail this run may create, `ifconfig -g bridge`, the epair number
//! Bastille would take, the bootstrapped releases and, when a release needs bootstrapping,
//! sysrc's view of the host's rc.conf with bastille.conf; the other jails' networks for the
//! address collision check; the rc.conf chain rc.d/bastille reads at boot.
//!
//! Nothing here decides; [`crate::plan::plan`] does, from the [`Observed`] value alone.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Result;
use ipnet::Ipv4Net;

use warden_runtime::bastille::{self, JailConfig, JailPaths, JailRcConf, Version};
use warden_runtime::rcconf::{RcChain, RcConf};
use warden_runtime::{find_tool, ifconfig, sysrc, Host};

use crate::plan::{jail_network, rebuild_reasons};
use crate::{JailState, Settings};

/// The tools the plan's steps run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    pub bastille: PathBuf,
    pub jls: PathBuf,
    pub jexec: PathBuf,
    pub sysrc: PathBuf,
}

impl Tools {
    fn find(p: &Settings) -> Result<Tools> {
        Ok(Tools {
            bastille: match &p.bastille_path {
                Some(path) => PathBuf::from(path),
                None => find_tool("bastille")?,
            },
            jls: find_tool("jls")?,
            jexec: find_tool("jexec")?,
            // sysrc(8) is in every FreeBSD base system; without it in PATH only a plan with
            // an rc.conf to change fails (running this path).
            sysrc: sysrc::tool(),
        })
    }
}

/// The jail as its files and `jls` show it.
#[derive(Debug, Clone, Default)]
pub struct Jail {
    pub config: JailConfig,
    pub rc: JailRcConf,
    /// `jls name` lists it.
    pub running: bool,
    /// Its packages (the jail's own `pkg query %n`), read when it runs, stays and packages
    /// are wanted; `None` when not read.
    pub packages: Option<Vec<String>>,
    /// `service S onestatus` inside it, per wanted service, read when it runs and stays
    /// running; a service not read counts as not running.
    pub services: BTreeMap<String, bool>,
}

/// Another jail under the prefix, for the address collision check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherJail {
    pub name: String,
    /// Its files, or why they cannot be read (an error once its address matters).
    pub config: std::result::Result<JailConfig, String>,
    /// The address its rc.conf gives `vnet0`, or why it cannot be read safely (a link its
    /// root planted: a warning, the jail is skipped).
    pub ip: std::result::Result<Option<Ipv4Net>, String>,
}

/// Everything the planner may know.
#[derive(Debug, Clone)]
pub struct Observed {
    pub tools: Tools,
    pub version: Version,
    /// `bastille -v`'s line, returned as `bastille_version`.
    pub version_text: String,
    pub paths: JailPaths,
    /// `None`: no jail.conf, the jail does not exist.
    pub jail: Option<Jail>,
    /// Directories under `<prefix>/releases` (bootstrapped releases).
    pub releases: BTreeSet<String>,
    /// The epair number Bastille 0.10–0.12 would give a new jail.
    pub epair_unit: u32,
    /// `ifconfig -g bridge`, read when this run may create the jail.
    pub bridges: Option<Vec<String>>,
    /// The other jails under the prefix (not read for `state: absent`).
    pub others: Vec<OtherJail>,
    /// The chain rc.d/bastille reads at boot (`load_rc_config bastille`), read for `boot`.
    pub boot_rc: Option<RcChain>,
    /// What `bastille bootstrap` asks (`sysrc -n zfs_enable`: rc.conf, rc.conf.local) and
    /// bastille.conf, read when the release of a new jail needs bootstrapping.
    pub bootstrap_rc: Option<(RcChain, RcConf)>,
}

impl Observed {
    pub fn exists(&self) -> bool {
        self.jail.is_some()
    }

    pub fn running(&self) -> bool {
        self.jail.as_ref().is_some_and(|j| j.running)
    }
}

pub fn observe(p: &Settings, host: &Host) -> Result<Observed> {
    let tools = Tools::find(p)?;
    let (version, version_text) = bastille::version(&tools.bastille)?;
    let prefix = Path::new(&p.bastille_prefix);
    let paths = JailPaths::new(prefix, &p.name);
    let exists = paths.exists();
    let running = exists && bastille::running(&tools.jls)?.contains(&p.name);
    let mut observed = Observed {
        tools,
        version,
        version_text,
        paths: paths.clone(),
        jail: None,
        releases: BTreeSet::new(),
        epair_unit: 0,
        bridges: None,
        others: Vec::new(),
        boot_rc: None,
        bootstrap_rc: None,
    };
    if p.state == JailState::Absent {
        observed.jail = exists.then(|| Jail {
            running,
            ..Jail::default()
        });
        return Ok(observed);
    }
    let jail = if exists {
        Some(Jail {
            config: JailConfig::read(&paths, version)?,
            rc: JailRcConf::read(&paths)?,
            running,
            packages: None,
            services: BTreeMap::new(),
        })
    } else {
        None
    };
    let may_create = match &jail {
        None => true,
        Some(j) => p.recreate && !rebuild_reasons(p, &j.config).is_empty(),
    };
    observed.releases = std::fs::read_dir(prefix.join("releases"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    if may_create {
        observed.epair_unit = bastille::next_epair_unit(prefix);
        observed.bridges = Some(ifconfig::group(&find_tool("ifconfig")?, "bridge")?);
        let release = p
            .release
            .clone()
            .or_else(|| jail.as_ref().and_then(|j| j.config.release.clone()));
        if let (true, Some(rel)) = (p.bootstrap, release) {
            if !observed.releases.contains(&rel) {
                observed.bootstrap_rc = Some((
                    RcChain::read(&host.rc, &[])?,
                    RcConf::read(Path::new(&p.bastille_conf))?,
                ));
            }
        }
    }
    if let Some(j) = jail {
        observed.jail = Some(read_inside(p, &observed, j, may_create)?);
    }
    if p.ip.is_some() || observed.jail.is_some() {
        observed.others = others(p, &observed)?;
    }
    if p.boot {
        observed.boot_rc = Some(RcChain::read(&host.rc, &["bastille"])?);
    }
    Ok(observed)
}

/// What only the running jail can say: its packages and services, when it keeps running.
fn read_inside(p: &Settings, o: &Observed, mut jail: Jail, may_create: bool) -> Result<Jail> {
    if !jail.running || may_create {
        return Ok(jail);
    }
    if !p.packages.is_empty() {
        jail.packages = Some(bastille::installed_packages(
            &o.tools.jexec,
            &p.name,
            &o.paths.root(),
        )?);
    }
    if matches!(p.state, JailState::Started | JailState::Present) {
        for service in &p.services {
            let up = bastille::service_status(&o.tools.jexec, &p.name, service)
                .output()?
                .success();
            jail.services.insert(service.clone(), up);
        }
    }
    Ok(jail)
}

/// Every other jail under the prefix with a jail.conf, in directory order.
fn others(p: &Settings, o: &Observed) -> Result<Vec<OtherJail>> {
    let Ok(entries) = std::fs::read_dir(Path::new(&p.bastille_prefix).join("jails")) else {
        return Ok(Vec::new());
    };
    let mut others = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == p.name {
            continue;
        }
        let paths = JailPaths::new(Path::new(&p.bastille_prefix), &name);
        if !paths.exists() {
            continue;
        }
        others.push(OtherJail {
            config: JailConfig::read(&paths, o.version).map_err(|e| format!("{e:#}")),
            ip: JailRcConf::read(&paths)
                .map(|r| jail_network(&r.rc).0)
                .map_err(|e| format!("{e:#}")),
            name,
        });
    }
    Ok(others)
}
