//! `bastille_jail`: one VNET service jail of an agent on the shared bridge, managed through
//! Bastille and verified after every mutating step, because Bastille's exit codes cannot be
//! trusted (see the runtime's `bastille` file).
//!
//! Shape: validate → observe once (`bastille -v`, `jls name`, the jail's files under the
//! prefix, read without following links, and, in a running jail, `pkg query %n` and
//! `service S onestatus` through `jexec`) → plan: create (or bootstrap + create), correct
//! drift in the jail's rc.conf (the host's sysrc on a private copy, written back link-safe),
//! start or stop, install missing packages, set rc.conf values, start services → the
//! runtime reports or applies it. Bastille's behaviour per version is in the runtime's
//! `bastille` file and `docs/bastille-facts.md`.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use ipnet::Ipv4Net;
use serde::Deserialize;

use warden_layout::rules;
use warden_runtime::bastille::{self, JailConfig, JailPaths, JailRcConf, JailRcEdit, Version};
use warden_runtime::ipv4;
use warden_runtime::netconf::{self, Part};
use warden_runtime::plan::{Checked, Step, Verify};
use warden_runtime::rcconf::{self, is_yes, RcChain, RcConf, RcFiles, RcLookup, RcValue};
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
    pub bastille_conf: String,
    pub bastille_path: Option<String>,
    pub rc_conf: String,
    pub rc_conf_local: String,
    pub rc_conf_d: Vec<String>,
    pub lock_file: String,
    pub lock_timeout: i64,
}

impl Module for BastilleJail {
    const NAME: &'static str = "bastille_jail";
    // `bastille pkg <jail> install` downloads packages (and pkg itself, in a fresh jail):
    // minutes on a slow mirror, where the other modules' tools take seconds.
    const TOOL_TIMEOUT: u64 = 600;
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
            Param::path("bastille_conf").default("/usr/local/etc/bastille/bastille.conf"),
            Param::path("bastille_path"),
            Param::path("rc_conf").default(rcconf::RC_CONF),
            Param::path("rc_conf_local").default(rcconf::RC_CONF_LOCAL),
            Param::list_of_str("rc_conf_d").default(serde_json::json!(rcconf::RC_CONF_D)),
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
    jexec: PathBuf,
}

impl Tools {
    fn find(p: &Params) -> Result<Tools> {
        Ok(Tools {
            bastille: match &p.bastille_path {
                Some(path) => PathBuf::from(path),
                None => find_tool("bastille")?,
            },
            jls: find_tool("jls")?,
            jexec: find_tool("jexec")?,
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

        if !p.boot && self.version.boot_file().is_none() {
            bail!(
                "boot: false cannot be kept with Bastille {}: it has no per-jail boot setting (that came with 0.14), and its `bastille config {} set boot off` writes `boot = off;` into jail.conf, which jail(8) refuses at the next start; jails start at boot through bastille_list in the host's rc.conf",
                self.version,
                p.name
            );
        }
        let config = if exists {
            Some(JailConfig::read(&paths, self.version)?)
        } else {
            None
        };
        let jail_rc = if exists {
            JailRcConf::read(&paths)?
        } else {
            JailRcConf::default()
        };
        let rc = &jail_rc.rc;
        let (have_ip, have_router) = jail_network(rc);
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
            self.check_collision(prefix, &net, plan)?;
        }

        let want_running = p.state == "started" || (p.state == "present" && (running || create));
        if !create && want_running && config.as_ref().is_some_and(|c| c.boot_param) {
            bail!(
                "jail {}'s jail.conf ({}) has a `boot` parameter, which jail(8) refuses (\"unknown parameter: boot\"), so the jail cannot start; Bastille before 0.14 writes it for `bastille config {} set boot …`: remove that line",
                p.name,
                paths.jail_conf().display(),
                p.name
            );
        }
        let fresh = RcConf::default();
        let mut changes = Changes::new(&paths.rc_conf(), if create { &fresh } else { rc });
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
                // No -g before 1.0: the VNET template wrote the host's own default route
                // (`netstat -rn`) into the jail's rc.conf (0.10.20231125 `create.sh`).
                changes.set("defaultrouter", &gateway)?;
                restart_for_network = true;
            } else {
                let jail_paths = paths.clone();
                let gw = gateway.clone();
                plan.step(Verify {
                    what: format!("jail {} routes through {gw}", p.name),
                    check: Box::new(move || {
                        let router = JailRcConf::read(&jail_paths)?
                            .rc
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

        // Boot flag (settings.conf on 1.0+, boot.conf on 0.14).
        if let (Some(file), false) = (self.version.boot_file(), create) {
            let want_boot = if p.boot { "on" } else { "off" };
            let have_boot = config
                .as_ref()
                .and_then(|c| c.boot.clone())
                .unwrap_or_else(|| "on".into());
            if have_boot != want_boot {
                let settings = paths.dir.join(file);
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
            for diff in changes.diffs() {
                plan.diff(diff);
            }
            plan.step(JailRcEdit::new(&find_tool("sysrc")?, &paths, &changes));
        }

        // Run state.
        let will_run = running || create;
        if restart_for_network && will_run && want_running {
            plan.step(self.run_state(false));
            plan.step(self.run_state(true));
        } else if want_running && !will_run {
            plan.step(self.run_state(true));
        } else if !want_running && will_run {
            plan.step(self.run_state(false));
        }

        // Packages and services need the jail running; they are read inside it.
        let known = running && !create;
        let mut installed = if known && !p.packages.is_empty() {
            bastille::installed_packages(&self.tools.jexec, &p.name, &paths.root())?
        } else {
            Vec::new()
        };
        let missing: Vec<String> = p
            .packages
            .iter()
            .filter(|w| !installed.contains(w))
            .cloned()
            .collect();
        if want_running && !missing.is_empty() {
            let jexec = self.tools.jexec.clone();
            let root = paths.root();
            let name = p.name.clone();
            let expect = p.packages.clone();
            plan.step(Packages {
                install: bastille::pkg_install(&self.tools.jexec, &p.name, &missing),
                query: (known || create).then_some(missing.clone()),
                check: Checked::new(
                    bastille::pkg_install(&self.tools.jexec, &p.name, &missing),
                    format!("jail {} has {}", p.name, missing.join(", ")),
                    move || {
                        let have = bastille::installed_packages(&jexec, &name, &root)?;
                        Ok(expect.iter().all(|w| have.contains(w)))
                    },
                ),
                jexec: self.tools.jexec.clone(),
                name: p.name.clone(),
                root: paths.root(),
                wanted: p.packages.clone(),
            });
        } else if !missing.is_empty() {
            plan.warnings.push(format!(
                "jail {} is stopped, so packages {} were neither checked nor installed",
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
                let up = known && !restart_for_network && self.service_status(service)?;
                if !up {
                    started_services.push(service.clone());
                    plan.step(ServiceUp {
                        jexec: self.tools.jexec.clone(),
                        jail: p.name.clone(),
                        service: service.clone(),
                    });
                }
            }
        }

        if p.boot {
            self.plan_host_boot(plan)?;
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
        if known || create {
            plan.diff(Diff::new(
                format!("jail {} packages", p.name),
                lines(&before_packages),
                lines(&installed),
            ));
        }
        plan.value("state", if want_running { "started" } else { "stopped" });
        plan.value("ip", ip.map(|n| n.to_string()));
        plan.value("gateway", gateway.or(have_router));
        plan.value("release", release);
        plan.value("created", create);
        plan.value("packages", installed);
        plan.value("services_started", started_services);
        Ok(())
    }

    /// A jail with `boot` on comes back at boot only through Bastille's rc.d script, which
    /// runs when the host's `bastille_enable` is YES (BastilleBSD/bastille
    /// usr/local/etc/rc.d/bastille, every tag 0.10–1.4.4; docs/freebsd-facts.md §9). Before
    /// 0.14 that script starts the jails of `bastille_list` (default `ALL`), so a list without
    /// this jail gets it added. Both are read and written where rc.d/bastille's
    /// `load_rc_config bastille` finds them (rc.conf, rc.conf.local, rc.conf.d/bastille).
    fn plan_host_boot(&self, plan: &mut Plan) -> Result<()> {
        let p = self.params;
        let chain = RcChain::read(
            &RcFiles::new(&p.rc_conf, &p.rc_conf_local, &p.rc_conf_d),
            &["bastille"],
        )?;
        let mut host = Changes::on(&chain);
        let enabled = chain
            .lookup("bastille_enable")
            .and_then(RcValue::literal)
            .is_some_and(is_yes);
        if !enabled {
            host.set("bastille_enable", "YES")?;
        }
        if self.version < bastille::Version(0, 14, 0) {
            match chain.lookup("bastille_list") {
                None => {}
                Some(RcValue::Dynamic(_)) => bail!(
                    "{} is set with a shell expansion, so it cannot be told whether jail {} starts at boot; set it to ALL or a plain list",
                    chain.describe("bastille_list"),
                    p.name
                ),
                Some(RcValue::Literal(list)) => {
                    let words: Vec<&str> = list.split_whitespace().collect();
                    if !words.contains(&"ALL") && !words.contains(&p.name.as_str()) {
                        let mut new = words.join(" ");
                        if !new.is_empty() {
                            new.push(' ');
                        }
                        new.push_str(&p.name);
                        host.set("bastille_list", &new)?;
                    }
                }
            }
        }
        if !host.is_empty() {
            host.apply_to(&find_tool("sysrc")?, plan)?;
        }
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
        if let Some(problem) = self
            .version
            .epair_problem(&p.name, bastille::next_epair_unit(prefix))
        {
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
            Some(rel) if !prefix.join("releases").join(rel).is_dir() => {
                if let Some(problem) = self.bootstrap_blocker()? {
                    problems.push(problem);
                }
            }
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

    /// `bastille bootstrap` stops at a question on ZFS hosts unless bastille.conf says ZFS.
    /// bootstrap.sh asks `sysrc -n zfs_enable`, which reads sysrc's rc_conf_files: rc.conf,
    /// then rc.conf.local (no rc.conf.d file).
    fn bootstrap_blocker(&self) -> Result<Option<String>> {
        let p = self.params;
        let chain = RcChain::read(
            &RcFiles::new(&p.rc_conf, &p.rc_conf_local, &p.rc_conf_d),
            &[],
        )?;
        let conf = Path::new(&p.bastille_conf);
        Ok(bastille::bootstrap_blocker(
            &chain,
            &RcConf::read(conf)?,
            conf,
        ))
    }

    /// Another jail on the same bridge with the same address is an error. A jail whose
    /// rc.conf cannot be read safely (a link its root planted) is skipped with a warning.
    fn check_collision(&self, prefix: &Path, ip: &Ipv4Net, plan: &mut Plan) -> Result<()> {
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
            let config = JailConfig::read(&paths, self.version)?;
            if config.bridge.as_deref() != Some(self.params.bridge.as_str()) {
                continue;
            }
            let their = match JailRcConf::read(&paths) {
                Ok(r) => r,
                Err(e) => {
                    plan.warnings.push(format!(
                        "jail {other}'s address was not compared with this one: {e:#}"
                    ));
                    continue;
                }
            };
            let (their_ip, _) = jail_network(&their.rc);
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
        Ok(
            bastille::service_status(&self.tools.jexec, &self.params.name, service)
                .output()?
                .success(),
        )
    }

    /// Starts (`up`) or stops the jail, unless it already is so when the step runs: `stop` of
    /// a stopped jail exits 1 before 0.14 and 0 later, `start` of a running one exits 0.
    fn run_state(&self, up: bool) -> RunState {
        let verb = if up { "start" } else { "stop" };
        let back = if up { "stop" } else { "start" };
        let jls = self.tools.jls.clone();
        let name = self.params.name.clone();
        RunState {
            up,
            jls: self.tools.jls.clone(),
            name: self.params.name.clone(),
            back: Cmd::new(&self.tools.bastille).args([back, &self.params.name]),
            step: Checked::new(
                Cmd::new(&self.tools.bastille).args([verb, &self.params.name]),
                if up {
                    format!("jail {} runs", self.params.name)
                } else {
                    format!("jail {} is stopped", self.params.name)
                },
                move || Ok(bastille::is_running(&jls, &name)? == up),
            ),
            changed: false,
        }
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

/// `bastille start|stop` as a step that does nothing when the jail already is in that state
/// when it runs, and whose undo puts it back only if it changed it.
struct RunState {
    up: bool,
    jls: PathBuf,
    name: String,
    step: Checked,
    back: Cmd,
    changed: bool,
}

impl Step for RunState {
    fn describe(&self) -> String {
        self.step.describe()
    }
    fn command(&self) -> Option<String> {
        self.step.command()
    }
    fn apply(&mut self) -> Result<()> {
        if bastille::is_running(&self.jls, &self.name)? == self.up {
            return Ok(());
        }
        self.step.apply()?;
        self.changed = true;
        Ok(())
    }
    fn undo(&mut self) -> Result<()> {
        if self.changed && bastille::is_running(&self.jls, &self.name)? == self.up {
            self.back.run()?;
        }
        Ok(())
    }
}

/// Installs the missing packages in the running jail, then checks with the jail's own pkg
/// that every wanted one is there. When the jail was not running while planning, what is
/// missing is read first, once it runs.
struct Packages {
    install: Cmd,
    /// What was known to be missing while planning (`None`: read when the step runs).
    query: Option<Vec<String>>,
    check: Checked,
    jexec: PathBuf,
    name: String,
    root: PathBuf,
    wanted: Vec<String>,
}

impl Step for Packages {
    fn describe(&self) -> String {
        self.install.to_string()
    }
    fn command(&self) -> Option<String> {
        Some(self.install.to_string())
    }
    fn apply(&mut self) -> Result<()> {
        if self.query.is_none() {
            let have = bastille::installed_packages(&self.jexec, &self.name, &self.root)?;
            let missing: Vec<String> = self
                .wanted
                .iter()
                .filter(|w| !have.contains(w))
                .cloned()
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            self.check.cmd = bastille::pkg_install(&self.jexec, &self.name, &missing);
        }
        self.check.apply()
    }
}

/// Starts a service inside the jail unless it already runs (the jail's own rc may have
/// started it when the jail came up), then checks `onestatus`.
struct ServiceUp {
    jexec: PathBuf,
    jail: String,
    service: String,
}

impl Step for ServiceUp {
    fn describe(&self) -> String {
        bastille::service_start(&self.jexec, &self.jail, &self.service).to_string()
    }
    fn command(&self) -> Option<String> {
        Some(self.describe())
    }
    fn apply(&mut self) -> Result<()> {
        let status = bastille::service_status(&self.jexec, &self.jail, &self.service);
        if status.output()?.success() {
            return Ok(());
        }
        let start = bastille::service_start(&self.jexec, &self.jail, &self.service);
        let out = start.run()?;
        if status.output()?.success() {
            return Ok(());
        }
        bail!(
            "`{start}` exited 0 but {} is not running in jail {}; it said: {}",
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

    /// 0.10–0.13 exit 1 for `stop` of a stopped jail (their main script's
    /// `check_target_is_running`), 0.14+ exit 0: the step asks `jls` first and calls nothing.
    #[test]
    fn stop_of_a_stopped_jail_is_rc_1_on_0_10() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("calls");
        let script = |name: &str, body: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            path
        };
        let jls = script("jls", "exit 1");
        let bastille = script(
            "bastille",
            &format!(
                "echo \"$*\" >> {}; echo \"[x]: Not started. See 'bastille start x'.\" >&2; exit 1",
                log.display()
            ),
        );
        let mut step = RunState {
            up: false,
            jls: jls.clone(),
            name: "x".into(),
            back: Cmd::new(&bastille).args(["start", "x"]),
            step: Checked::new(
                Cmd::new(&bastille).args(["stop", "x"]),
                "jail x is stopped",
                {
                    let jls = jls.clone();
                    move || Ok(!bastille::is_running(&jls, "x")?)
                },
            ),
            changed: false,
        };
        step.apply().unwrap();
        step.undo().unwrap();
        assert!(
            !log.exists(),
            "bastille was called: {:?}",
            std::fs::read_to_string(&log)
        );
        assert!(step.command().unwrap().ends_with("stop x"));
    }

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
