//! `bastille_jail`: one VNET service jail of an agent on the shared bridge, managed through
//! Bastille and verified after every mutating step, because Bastille's exit codes cannot be
//! trusted (see the runtime's `bastille` file).
//!
//! Shape: validate → observe once (`bastille -v`, `jls name`, the jail's files under the
//! prefix, `pkg -r <root> query %n`, `bastille service … status` per service of a running
//! jail) → plan: create (or bootstrap + create), correct drift in the jail's rc.conf (with
//! the host's sysrc on the jail's file, which works whether the jail runs or not), start or
//! stop, install missing packages, set rc.conf values, start services → the runtime reports
//! or applies it.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use ipnet::Ipv4Net;
use serde::Deserialize;

use warden_layout::rules;
use warden_runtime::bastille::{self, JailConfig, JailPaths, Version};
use warden_runtime::ipv4;
use warden_runtime::netconf::{self, Part};
use warden_runtime::plan::{Checked, Step};
use warden_runtime::rcconf::{is_yes, RcConf};
use warden_runtime::shell::is_identifier;
use warden_runtime::spec::{Param, Spec};
use warden_runtime::sysrc::{self, Changes};
use warden_runtime::{find_tool, Cmd, Context, Diff, Module, Plan};

pub struct BastilleJail;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub name: String,
    pub release: Option<String>,
    pub ip: Option<String>,
    pub bridge: String,
    pub gateway: Option<String>,
    pub state: String,
    pub boot: bool,
    pub packages: Vec<String>,
    pub sysrc: Option<BTreeMap<String, String>>,
    pub services: Vec<String>,
    pub bootstrap: bool,
    pub recreate: bool,
    pub allow_public: bool,
    pub bastille_prefix: String,
    pub bastille_path: Option<String>,
    pub lock_file: String,
    pub lock_timeout: i64,
}

impl Module for BastilleJail {
    const NAME: &'static str = "bastille_jail";
    type Params = Params;

    fn spec() -> Spec {
        Spec::new(vec![
            Param::str("name").required(),
            Param::str("release"),
            Param::str("ip"),
            Param::str("bridge").default("warden0"),
            Param::str("gateway"),
            Param::str("state")
                .choices(&["present", "started", "stopped", "absent"])
                .default("started"),
            Param::bool("boot").default(true),
            Param::list_of_str("packages").default(serde_json::json!([])),
            Param::dict_of_str("sysrc"),
            Param::list_of_str("services").default(serde_json::json!([])),
            Param::bool("bootstrap").default(false),
            Param::bool("recreate").default(false),
            Param::bool("allow_public").default(false),
            Param::path("bastille_prefix").default("/usr/local/bastille"),
            Param::path("bastille_path"),
            Param::path("lock_file").default(warden_runtime::lock::DEFAULT_LOCK_FILE),
            Param::int("lock_timeout").default(300),
        ])
    }

    fn plan(params: Params, ctx: &mut Context) -> Result<Plan> {
        let want = validate(&params)?;
        ctx.lock_host(
            Path::new(&params.lock_file),
            Duration::from_secs(params.lock_timeout.max(0) as u64),
        )?;
        let tools = Tools::find(&params)?;
        let (version, version_text) = bastille::version(&tools.bastille)?;
        let mut plan = Plan::new();
        plan.value("bastille_version", version_text);
        Planner {
            params: &params,
            want,
            tools,
            version,
            check_mode: ctx.check_mode,
        }
        .plan(&mut plan)?;
        Ok(plan)
    }
}

/// Validated network settings.
#[derive(Debug, Clone, Copy)]
struct Want {
    ip: Option<Ipv4Net>,
    gateway: Option<Ipv4Addr>,
}

fn validate(p: &Params) -> Result<Want> {
    let mut problems = Vec::new();
    let name = &p.name;
    if name.is_empty()
        || name.len() > 63
        || name.starts_with(['-', '_'])
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        problems.push(format!(
            "jail name {name:?} is not valid: Bastille and jail(8) accept letters, digits, '-' and '_' (at most 63, not first)"
        ));
    } else if name.bytes().all(|b| b.is_ascii_digit()) {
        problems.push(format!(
            "jail name {name:?} is all digits; Bastille reads such a name as a JID"
        ));
    }
    let mut ip = None;
    if let Some(text) = &p.ip {
        match ipv4::parse_cidr(text.trim()) {
            Ok(net) => {
                if let Err(e) = ipv4::check_host_address(&net) {
                    problems.push(e.to_string());
                }
                if let Err(problem) = rules::check_private(net, &net, p.allow_public) {
                    problems.push(problem);
                }
                ip = Some(net);
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    let mut gateway = None;
    if let Some(text) = &p.gateway {
        match text.trim().parse::<Ipv4Addr>() {
            Ok(g) => gateway = Some(g),
            Err(_) => problems.push(format!("gateway {text:?} is not an IPv4 address")),
        }
    }
    if let (Some(net), None) = (ip, gateway) {
        gateway = Some(Ipv4Addr::from(u32::from(net.network()).wrapping_add(1)));
    }
    if let (Some(net), Some(g)) = (ip, gateway) {
        if !net.contains(&g) || g == net.network() || g == net.broadcast() {
            problems.push(format!(
                "gateway {g} is not a host address of the jail's subnet {}",
                net.trunc()
            ));
        } else if g == net.addr() {
            problems.push(format!("gateway {g} is the jail's own address"));
        }
    }
    if let Some(release) = &p.release {
        if !is_release(release) {
            problems.push(format!(
                "release {release:?} is not a FreeBSD release name such as 14.2-RELEASE"
            ));
        }
    }
    for package in &p.packages {
        if package.is_empty()
            || !package
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._+-@/".contains(&b))
            || package.starts_with('-')
        {
            problems.push(format!("package {package:?} is not a package name"));
        }
    }
    for service in &p.services {
        if !is_identifier(service) {
            problems.push(format!("services: {service:?} is not an rc.d service name"));
        }
    }
    for (key, value) in p.sysrc.iter().flatten() {
        if let Err(e) = sysrc::check_name(key).and_then(|_| sysrc::check_value(key, value)) {
            problems.push(e.to_string());
        }
    }
    if let Err(problem) = warden_runtime::ifconfig::check_name("bridge", &p.bridge) {
        problems.push(problem);
    }
    if problems.is_empty() {
        Ok(Want { ip, gateway })
    } else {
        bail!("{}", problems.join("; "))
    }
}

fn is_release(s: &str) -> bool {
    let Some((number, kind)) = s.split_once('-') else {
        return false;
    };
    let number_ok = number.split('.').count() == 2
        && number
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let kind = kind.split("-p").next().unwrap_or(kind);
    number_ok
        && (kind == "RELEASE"
            || kind == "CURRENT"
            || kind == "STABLE"
            || kind
                .strip_prefix("RC")
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
            || kind
                .strip_prefix("BETA")
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())))
}

struct Tools {
    bastille: PathBuf,
    jls: PathBuf,
}

impl Tools {
    fn find(p: &Params) -> Result<Tools> {
        Ok(Tools {
            bastille: match &p.bastille_path {
                Some(path) => PathBuf::from(path),
                None => find_tool("bastille")?,
            },
            jls: find_tool("jls")?,
        })
    }
}

struct Planner<'a> {
    params: &'a Params,
    want: Want,
    tools: Tools,
    version: Version,
    check_mode: bool,
}

/// The jail's network settings as its rc.conf holds them.
fn jail_network(rc: &RcConf) -> (Option<Ipv4Net>, Option<String>) {
    let ip = rc
        .get("ifconfig_vnet0")
        .and_then(|v| v.literal())
        .and_then(|v| netconf::parts(v).ok())
        .and_then(|parts| {
            parts.into_iter().find_map(|p| match p {
                Part::Inet { net, .. } => Some(net),
                Part::Other(_) => None,
            })
        });
    let router = rc
        .get("defaultrouter")
        .and_then(|v| v.literal())
        .map(String::from);
    (ip, router)
}

impl Planner<'_> {
    fn plan(&self, plan: &mut Plan) -> Result<()> {
        let p = self.params;
        let prefix = Path::new(&p.bastille_prefix);
        let paths = JailPaths::new(prefix, &p.name);
        let exists = paths.exists();
        let running_jails = bastille::running(&self.tools.jls)?;
        let running = exists && running_jails.contains(&p.name);
        plan.value("name", p.name.clone());
        plan.value("path", paths.root().display().to_string());

        if p.state == "absent" {
            if exists {
                let jls = self.tools.jls.clone();
                let conf = paths.jail_conf();
                let name = p.name.clone();
                plan.step(Checked::new(
                    bastille::destroy(&self.tools.bastille, self.version, &p.name),
                    format!("jail {} is gone", p.name),
                    move || Ok(!conf.exists() && !bastille::is_running(&jls, &name)?),
                ));
            }
            plan.diff(Diff::new(
                format!("jail {}", p.name),
                state_word(exists, running),
                "absent\n",
            ));
            plan.value("state", "absent");
            return Ok(());
        }

        let config = if exists {
            Some(JailConfig::read(&paths)?)
        } else {
            None
        };
        let rc = RcConf::read(&paths.rc_conf())?;
        let (have_ip, have_router) = jail_network(&rc);
        let ip = self.want.ip.or(have_ip);
        let gateway = self.want.gateway.map(|g| g.to_string());
        let release = p
            .release
            .clone()
            .or_else(|| config.as_ref().and_then(|c| c.release.clone()));

        // Drift that needs a new jail.
        let mut rebuild = Vec::new();
        if let Some(c) = &config {
            if !c.vnet {
                rebuild.push("it is not a VNET jail".to_string());
            }
            if c.vnet && c.bridge.as_deref() != Some(p.bridge.as_str()) {
                rebuild.push(format!(
                    "it is on {} instead of {}",
                    c.bridge.as_deref().unwrap_or("no bridge"),
                    p.bridge
                ));
            }
            if let (Some(want), Some(have)) = (&p.release, &c.release) {
                if want != have {
                    rebuild.push(format!("it runs {have} instead of {want}"));
                }
            }
        }
        if !rebuild.is_empty() && !p.recreate {
            bail!(
                "jail {} needs to be re-created ({}); set recreate: true to destroy and create it again",
                p.name,
                rebuild.join(", ")
            );
        }
        let create = !exists || !rebuild.is_empty();
        if create {
            self.check_new_jail(prefix, ip, release.as_deref(), plan)?;
        }
        if let Some(net) = ip {
            self.check_collision(prefix, &net)?;
        }

        let want_running = p.state == "started" || (p.state == "present" && (running || create));
        let fresh = RcConf::default();
        let mut changes = Changes::new(&paths.rc_conf(), if create { &fresh } else { &rc });
        let mut restart_for_network = false;

        if create {
            let (Some(net), Some(release), Some(gateway)) = (ip, release.clone(), gateway.clone())
            else {
                bail!(
                    "jail {} does not exist: ip and release are required to create it",
                    p.name
                );
            };
            if exists {
                plan.step(self.destroy_step(&paths));
            }
            let releases = prefix.join("releases").join(&release);
            if !releases.is_dir() {
                let dir = releases.clone();
                plan.step(Checked::new(
                    Cmd::new(&self.tools.bastille).args(["bootstrap", &release]),
                    format!("release {release} is bootstrapped"),
                    move || Ok(dir.is_dir()),
                ));
            }
            let jls = self.tools.jls.clone();
            let conf = paths.jail_conf();
            let name = p.name.clone();
            plan.step(
                Checked::new(
                    bastille::create(
                        &self.tools.bastille,
                        self.version,
                        &bastille::NewJail {
                            name: &p.name,
                            release: &release,
                            ip: &net.to_string(),
                            bridge: &p.bridge,
                            gateway: &gateway,
                            boot: p.boot,
                        },
                    ),
                    format!("jail {} exists and runs", p.name),
                    move || Ok(conf.exists() && bastille::is_running(&jls, &name)?),
                )
                .undo_with(bastille::destroy(
                    &self.tools.bastille,
                    self.version,
                    &p.name,
                )),
            );
            if !self.version.is_1x() {
                // No -g before 1.0: the jail got the host's default route.
                changes.set("defaultrouter", &gateway)?;
                restart_for_network = true;
            } else {
                let rc_path = paths.rc_conf();
                let gw = gateway.clone();
                plan.step(warden_runtime::plan::Verify {
                    what: format!("jail {} routes through {gw}", p.name),
                    check: Box::new(move || {
                        let router = RcConf::read(&rc_path)?
                            .get("defaultrouter")
                            .and_then(|v| v.literal())
                            .map(String::from);
                        if router.as_deref() == Some(gw.as_str()) {
                            Ok(())
                        } else {
                            Err(anyhow!("its defaultrouter is {router:?}"))
                        }
                    }),
                });
            }
        } else {
            // Drift corrected in place: address and default route in the jail's rc.conf.
            if let Some(net) = self.want.ip {
                if have_ip != Some(net) {
                    changes.set("ifconfig_vnet0", &netconf::inet_words(&net))?;
                    restart_for_network = true;
                }
            }
            if let Some(g) = &gateway {
                if have_router.as_deref() != Some(g.as_str()) && self.want.ip.is_some() {
                    changes.set("defaultrouter", g)?;
                    restart_for_network = true;
                }
            }
        }

        // Boot flag (settings.conf, Bastille 1.0+).
        if self.version.is_1x() && !create {
            let want_boot = if p.boot { "on" } else { "off" };
            let have_boot = config
                .as_ref()
                .and_then(|c| c.boot.clone())
                .unwrap_or_else(|| "on".into());
            if have_boot != want_boot {
                let settings = paths.dir.join("settings.conf");
                let wanted = want_boot.to_string();
                plan.step(Checked::new(
                    Cmd::new(&self.tools.bastille)
                        .args(["config", &p.name, "set", "boot", want_boot]),
                    format!("jail {} boot is {want_boot}", p.name),
                    move || {
                        Ok(RcConf::read(&settings)?
                            .get("boot")
                            .and_then(|v| v.literal())
                            == Some(wanted.as_str()))
                    },
                ));
            }
        }

        for (key, value) in p.sysrc.iter().flatten() {
            changes.set(key, value)?;
        }
        for service in &p.services {
            let var = format!("{service}_enable");
            let enabled = rc.get(&var).and_then(|v| v.literal()).is_some_and(is_yes);
            if create || !enabled {
                changes.set(&var, "YES")?;
            }
        }
        if !changes.is_empty() {
            changes.apply_to(&find_tool("sysrc")?, plan)?;
        }

        // Run state.
        let will_run = running || create;
        if restart_for_network && will_run && want_running {
            plan.step(self.stop_step());
            plan.step(self.start_step());
        } else if want_running && !will_run {
            plan.step(self.start_step());
        } else if !want_running && will_run {
            plan.step(self.stop_step());
        }

        // Packages and services need the jail running.
        let mut installed = if create || p.packages.is_empty() {
            Vec::new()
        } else {
            bastille::installed_packages(&find_tool("pkg")?, &paths.root())?
        };
        let missing: Vec<String> = p
            .packages
            .iter()
            .filter(|w| !installed.contains(w))
            .cloned()
            .collect();
        if want_running && !missing.is_empty() {
            let pkg = find_tool("pkg")?;
            let root = paths.root();
            let expect = p.packages.clone();
            plan.step(Checked::new(
                bastille::pkg_install(&self.tools.bastille, self.version, &p.name, &missing),
                format!("jail {} has {}", p.name, missing.join(", ")),
                move || {
                    let have = bastille::installed_packages(&pkg, &root)?;
                    Ok(expect.iter().all(|w| have.contains(w)))
                },
            ));
        } else if !missing.is_empty() {
            plan.warnings.push(format!(
                "jail {} is stopped, so packages {} were not installed",
                p.name,
                missing.join(", ")
            ));
        }
        let before_packages = installed.clone();
        if want_running {
            installed.extend(missing.iter().cloned());
        }
        let mut started_services = Vec::new();
        if want_running {
            for service in &p.services {
                let up =
                    running && !create && !restart_for_network && self.service_status(service)?;
                if !up {
                    started_services.push(service.clone());
                    plan.step(ServiceUp {
                        bastille: self.tools.bastille.clone(),
                        jail: p.name.clone(),
                        service: service.clone(),
                    });
                }
            }
        }

        plan.diff(Diff::new(
            format!("jail {}", p.name),
            state_word(exists, running),
            if want_running {
                "running\n"
            } else {
                "stopped\n"
            },
        ));
        plan.diff(Diff::new(
            format!("jail {} packages", p.name),
            lines(&before_packages),
            lines(&installed),
        ));
        plan.value("state", if want_running { "started" } else { "stopped" });
        plan.value("ip", ip.map(|n| n.to_string()));
        plan.value("gateway", gateway.or(have_router));
        plan.value("release", release);
        plan.value("created", create);
        plan.value("packages", installed);
        plan.value("services_started", started_services);
        Ok(())
    }

    /// Refuses what Bastille would refuse, or get wrong, for a new jail on this version.
    fn check_new_jail(
        &self,
        prefix: &Path,
        ip: Option<Ipv4Net>,
        release: Option<&str>,
        plan: &mut Plan,
    ) -> Result<()> {
        let p = self.params;
        let mut problems = Vec::new();
        if self.version.forbids_dash_in_vnet_names() && p.name.contains(['-', '_']) {
            problems.push(format!(
                "name {:?}: Bastille {} refuses '-' and '_' in VNET jail names (since 1.1.0.251001): name it {:?} instead (the warden_jails role does this when the separator is empty)",
                p.name,
                self.version,
                p.name.replace(['-', '_'], "")
            ));
        }
        if let Some(problem) = self.version.epair_problem(&p.name) {
            problems.push(problem);
        }
        if ip.is_none() {
            problems.push(format!(
                "jail {} does not exist: ip is required to create it",
                p.name
            ));
        }
        match release {
            None => problems.push(format!("jail {} does not exist: release is required to create it", p.name)),
            Some(rel) if !p.bootstrap && !prefix.join("releases").join(rel).is_dir() => problems.push(format!(
                "release {rel} is not bootstrapped (no {}); run `bastille bootstrap {rel}` or set bootstrap: true",
                prefix.join("releases").join(rel).display()
            )),
            Some(_) => {}
        }
        let bridges = Cmd::new(find_tool("ifconfig")?)
            .args(["-g", "bridge"])
            .run()?
            .stdout;
        if !bridges.lines().any(|b| b.trim() == p.bridge) {
            // In check mode an earlier task of the same run may be about to create it.
            if self.check_mode {
                plan.warnings.push(format!(
                    "bridge {} does not exist yet; a real run fails unless an earlier task creates it",
                    p.bridge
                ));
            } else {
                problems.push(format!(
                    "bridge {} does not exist; create it first (warden_bridge_alias)",
                    p.bridge
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            bail!("{}", problems.join("; "))
        }
    }

    /// Another jail on the same bridge with the same address is an error.
    fn check_collision(&self, prefix: &Path, ip: &Ipv4Net) -> Result<()> {
        let Ok(entries) = std::fs::read_dir(prefix.join("jails")) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            let other = entry.file_name().to_string_lossy().into_owned();
            if other == self.params.name {
                continue;
            }
            let paths = JailPaths::new(prefix, &other);
            if !paths.exists() {
                continue;
            }
            let config = JailConfig::read(&paths)?;
            if config.bridge.as_deref() != Some(self.params.bridge.as_str()) {
                continue;
            }
            let (their_ip, _) = jail_network(&RcConf::read(&paths.rc_conf())?);
            if their_ip.map(|n| n.addr()) == Some(ip.addr()) {
                bail!(
                    "address {} is already used by jail {other} on {}",
                    ip.addr(),
                    self.params.bridge
                );
            }
        }
        Ok(())
    }

    fn service_status(&self, service: &str) -> Result<bool> {
        Ok(Cmd::new(&self.tools.bastille)
            .args(["service", &self.params.name, service, "status"])
            .output()?
            .success())
    }

    fn start_step(&self) -> Checked {
        let jls = self.tools.jls.clone();
        let name = self.params.name.clone();
        Checked::new(
            Cmd::new(&self.tools.bastille).args(["start", &self.params.name]),
            format!("jail {} runs", self.params.name),
            move || bastille::is_running(&jls, &name),
        )
        .undo_with(Cmd::new(&self.tools.bastille).args(["stop", &self.params.name]))
    }

    fn stop_step(&self) -> Checked {
        let jls = self.tools.jls.clone();
        let name = self.params.name.clone();
        Checked::new(
            Cmd::new(&self.tools.bastille).args(["stop", &self.params.name]),
            format!("jail {} is stopped", self.params.name),
            move || Ok(!bastille::is_running(&jls, &name)?),
        )
        .undo_with(Cmd::new(&self.tools.bastille).args(["start", &self.params.name]))
    }

    fn destroy_step(&self, paths: &JailPaths) -> Checked {
        let conf = paths.jail_conf();
        Checked::new(
            bastille::destroy(&self.tools.bastille, self.version, &self.params.name),
            format!("the old jail {} is gone", self.params.name),
            move || Ok(!conf.exists()),
        )
    }
}

/// Starts a service inside the jail unless it already runs (the jail's own rc may have
/// started it when the jail came up), then checks `status`.
struct ServiceUp {
    bastille: PathBuf,
    jail: String,
    service: String,
}

impl ServiceUp {
    fn cmd(&self, verb: &str) -> Cmd {
        Cmd::new(&self.bastille).args(["service", &self.jail, &self.service, verb])
    }
}

impl Step for ServiceUp {
    fn describe(&self) -> String {
        self.cmd("start").to_string()
    }
    fn command(&self) -> Option<String> {
        Some(self.describe())
    }
    fn apply(&mut self) -> Result<()> {
        if self.cmd("status").output()?.success() {
            return Ok(());
        }
        let out = self.cmd("start").run()?;
        if self.cmd("status").output()?.success() {
            return Ok(());
        }
        bail!(
            "`{}` exited 0 but {} is not running in jail {}; it said: {}",
            self.cmd("start"),
            self.service,
            self.jail,
            format!("{}{}", out.stdout, out.stderr).trim()
        )
    }
}

fn state_word(exists: bool, running: bool) -> &'static str {
    match (exists, running) {
        (false, _) => "absent\n",
        (true, true) => "running\n",
        (true, false) => "stopped\n",
    }
}

fn lines(items: &[String]) -> String {
    let mut sorted = items.to_vec();
    sorted.sort();
    sorted.iter().map(|i| format!("{i}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_names() {
        for ok in [
            "14.2-RELEASE",
            "13.4-RELEASE",
            "15.0-CURRENT",
            "14.3-RC1",
            "14.2-RELEASE-p1",
            "14.0-BETA2",
        ] {
            assert!(is_release(ok), "{ok}");
        }
        for bad in [
            "14.2",
            "latest",
            "14-RELEASE",
            "14.2-release",
            "14.2-RELEASE;rm",
        ] {
            assert!(!is_release(bad), "{bad}");
        }
    }
}
