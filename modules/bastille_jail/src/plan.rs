//! The pure planner: `(&Settings, &Observed) -> Plan`. It reads nothing and runs
//! nothing — the steps it builds ask the host only when they are applied — so the table
//! tests below build [`Observed`] in code and check the steps, the commands check mode
//! shows, the diff, `changed`, the values and the refusals, with no process spawned.
//!
//! Every mutating step is a runtime [`Checked`]: Bastille's command, then the state it
//! should have produced (jail.conf there, `jls` listing the jail, the release directory,
//! the boot flag, the packages, `service S onestatus` in the jail), because Bastille's exit
//! codes cannot be trusted (the runtime's `bastille` file).

use anyhow::{anyhow, bail, Result};
use ipnet::Ipv4Net;

use warden_runtime::bastille::{self, JailConfig, JailRcConf, JailRcEdit};
use warden_runtime::netconf::{self, Part};
use warden_runtime::plan::{Checked, Verify};
use warden_runtime::rcconf::{self, is_yes, RcConf, RcLookup, RcValue};
use warden_runtime::sysrc::Changes;
use warden_runtime::{Diff, Plan};

use crate::observe::Observed;
use crate::{JailState, Settings};

/// The jail's network settings as its rc.conf holds them: the `vnet0` address and the
/// default route.
pub fn jail_network(rc: &RcConf) -> (Option<Ipv4Net>, Option<String>) {
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

/// Drift only a new jail can correct (observe asks it too, to know whether this run may
/// create the jail).
pub fn rebuild_reasons(p: &Settings, config: &JailConfig) -> Vec<String> {
    let mut rebuild = Vec::new();
    if !config.vnet {
        rebuild.push("it is not a VNET jail".to_string());
    }
    if config.vnet && config.bridge.as_deref() != Some(p.bridge.as_str()) {
        rebuild.push(format!(
            "it is on {} instead of {}",
            config.bridge.as_deref().unwrap_or("no bridge"),
            p.bridge
        ));
    }
    if let (Some(want), Some(have)) = (&p.release, &config.release) {
        if want != have {
            rebuild.push(format!("it runs {have} instead of {want}"));
        }
    }
    rebuild
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

pub fn plan(p: &Settings, o: &Observed, check_mode: bool) -> Result<Plan> {
    let mut plan = Plan::new();
    plan.value("bastille_version", o.version_text.clone());
    plan.value("name", p.name.clone());
    plan.value("path", o.paths.root().display().to_string());
    if p.state == JailState::Absent {
        plan_absent(p, o, &mut plan);
    } else {
        plan_present(p, o, check_mode, &mut plan)?;
    }
    Ok(plan)
}

fn plan_absent(p: &Settings, o: &Observed, plan: &mut Plan) {
    if o.exists() {
        let jls = o.tools.jls.clone();
        let conf = o.paths.jail_conf();
        let name = p.name.clone();
        plan.step(Checked::new(
            bastille::destroy(&o.tools.bastille, o.version, &p.name),
            format!("jail {} is gone", p.name),
            move || Ok(!conf.exists() && !bastille::is_running(&jls, &name)?),
        ));
    }
    plan.diff(Diff::new(
        format!("jail {}", p.name),
        state_word(o.exists(), o.running()),
        "absent\n",
    ));
    plan.value("state", "absent");
}

fn plan_present(p: &Settings, o: &Observed, check_mode: bool, plan: &mut Plan) -> Result<()> {
    let t = &o.tools;
    let paths = &o.paths;
    let exists = o.exists();
    let running = o.running();
    if !p.boot && o.version.boot_file().is_none() {
        bail!(
            "boot: false cannot be kept with Bastille {}: it has no per-jail boot setting (that came with 0.14), and its `bastille config {} set boot off` writes `boot = off;` into jail.conf, which jail(8) refuses at the next start; jails start at boot through bastille_list in the host's rc.conf",
            o.version,
            p.name
        );
    }
    let config = o.jail.as_ref().map(|j| &j.config);
    let fresh = RcConf::default();
    let rc = o.jail.as_ref().map(|j| &j.rc.rc).unwrap_or(&fresh);
    let (have_ip, have_router) = jail_network(rc);
    let ip = p.ip.or(have_ip);
    let gateway = p.gateway.map(|g| g.to_string());
    let release = p
        .release
        .clone()
        .or_else(|| config.and_then(|c| c.release.clone()));

    let rebuild = config.map(|c| rebuild_reasons(p, c)).unwrap_or_default();
    if !rebuild.is_empty() && !p.recreate {
        bail!(
            "jail {} needs to be re-created ({}); set recreate: true to destroy and create it again",
            p.name,
            rebuild.join(", ")
        );
    }
    let create = !exists || !rebuild.is_empty();
    if create {
        check_new_jail(p, o, ip, release.as_deref(), check_mode, plan)?;
    }
    if let Some(net) = ip {
        check_collision(p, o, &net, plan)?;
    }

    let want_running =
        p.state == JailState::Started || (p.state == JailState::Present && (running || create));
    if !create && want_running && config.is_some_and(|c| c.boot_param) {
        bail!(
            "jail {}'s jail.conf ({}) has a `boot` parameter, which jail(8) refuses (\"unknown parameter: boot\"), so the jail cannot start; Bastille before 0.14 writes it for `bastille config {} set boot …`: remove that line",
            p.name,
            paths.jail_conf().display(),
            p.name
        );
    }
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
            let conf = paths.jail_conf();
            plan.step(Checked::new(
                bastille::destroy(&t.bastille, o.version, &p.name),
                format!("the old jail {} is gone", p.name),
                move || Ok(!conf.exists()),
            ));
        }
        if !o.releases.contains(&release) {
            let dir = std::path::Path::new(&p.bastille_prefix)
                .join("releases")
                .join(&release);
            plan.step(Checked::new(
                bastille::bootstrap(&t.bastille, &release),
                format!("release {release} is bootstrapped"),
                move || Ok(dir.is_dir()),
            ));
        }
        let jls = t.jls.clone();
        let conf = paths.jail_conf();
        let name = p.name.clone();
        plan.step(
            Checked::new(
                bastille::create(
                    &t.bastille,
                    o.version,
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
            .undo_with(bastille::destroy(&t.bastille, o.version, &p.name)),
        );
        if !o.version.is_1x() {
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
                    let (_, router) = jail_network(&JailRcConf::read(&jail_paths)?.rc);
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
        if let Some(net) = p.ip {
            if have_ip != Some(net) {
                changes.set("ifconfig_vnet0", &netconf::inet_words(&net))?;
                restart_for_network = true;
            }
        }
        if let Some(g) = &gateway {
            if have_router.as_deref() != Some(g.as_str()) && p.ip.is_some() {
                changes.set("defaultrouter", g)?;
                restart_for_network = true;
            }
        }
    }

    // Boot flag (settings.conf on 1.0+, boot.conf on 0.14).
    if let (Some(file), false) = (o.version.boot_file(), create) {
        let have_boot = config
            .and_then(|c| c.boot.clone())
            .unwrap_or_else(|| "on".into());
        let want_boot = if p.boot { "on" } else { "off" };
        if have_boot != want_boot {
            let jail_paths = paths.clone();
            plan.step(Checked::new(
                bastille::set_boot(&t.bastille, &p.name, p.boot),
                format!("jail {} boot is {want_boot}", p.name),
                move || Ok(bastille::boot_flag(&jail_paths, file)?.as_deref() == Some(want_boot)),
            ));
        }
    }

    for (key, value) in &p.sysrc {
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
        plan.step(JailRcEdit::new(&t.sysrc, paths, &changes));
    }

    // Run state.
    let will_run = running || create;
    if restart_for_network && will_run && want_running {
        plan.step(run_state(p, o, false));
        plan.step(run_state(p, o, true));
    } else if want_running && !will_run {
        plan.step(run_state(p, o, true));
    } else if !want_running && will_run {
        plan.step(run_state(p, o, false));
    }

    // Packages and services need the jail running; they are read inside it.
    let known = running && !create;
    let inside = o.jail.as_ref().filter(|_| known);
    let mut installed = inside
        .and_then(|j| j.packages.clone())
        .filter(|_| !p.packages.is_empty())
        .unwrap_or_default();
    let missing: Vec<String> = p
        .packages
        .iter()
        .filter(|w| !installed.contains(w))
        .cloned()
        .collect();
    if want_running && !missing.is_empty() {
        plan.step(packages_step(p, o, &missing, known || create));
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
            let up = !restart_for_network
                && inside.is_some_and(|j| j.services.get(service) == Some(&true));
            if !up {
                started_services.push(service.clone());
                plan.step(service_up(p, o, service));
            }
        }
    }

    if p.boot {
        plan_host_boot(p, o, plan)?;
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
fn plan_host_boot(p: &Settings, o: &Observed, plan: &mut Plan) -> Result<()> {
    let Some(chain) = &o.boot_rc else {
        bail!("the host's rc.conf was not read");
    };
    let mut host = Changes::on(chain);
    let enabled = chain
        .lookup("bastille_enable")
        .and_then(RcValue::literal)
        .is_some_and(is_yes);
    if !enabled {
        host.set("bastille_enable", "YES")?;
    }
    if o.version < bastille::Version(0, 14, 0) {
        match chain.lookup("bastille_list") {
            None => {}
            Some(RcValue::Dynamic(_)) => bail!(
                "{} is set with a shell expansion, so it cannot be told whether jail {} starts at boot; set it to ALL or a plain list",
                chain.describe("bastille_list"),
                p.name
            ),
            // rc.d/bastille before 0.14 (BastilleBSD/bastille usr/local/etc/rc.d/bastille at
            // 0.10.20231125 … 0.13.20250126) says `: ${bastille_list:="ALL"}`: `:=` assigns
            // when the variable is unset or empty, so an empty list starts every jail.
            Some(RcValue::Literal(list)) if list.is_empty() => {}
            // Each word is `bastille start <word>`, and `bastille start ALL` starts them all.
            Some(RcValue::Literal(list)) if list.split_whitespace().any(|w| w == "ALL") => {}
            Some(RcValue::Literal(list)) => {
                if let Some(new) = rcconf::list_adding(list, &p.name) {
                    host.set("bastille_list", &new)?;
                }
            }
        }
    }
    if !host.is_empty() {
        host.apply_to(&o.tools.sysrc, plan)?;
    }
    Ok(())
}

/// Refuses what Bastille would refuse, or get wrong, for a new jail on this version.
fn check_new_jail(
    p: &Settings,
    o: &Observed,
    ip: Option<Ipv4Net>,
    release: Option<&str>,
    check_mode: bool,
    plan: &mut Plan,
) -> Result<()> {
    let mut problems = Vec::new();
    if o.version.forbids_dash_in_vnet_names() && p.name.contains(['-', '_']) {
        problems.push(format!(
            "name {:?}: Bastille {} refuses '-' and '_' in VNET jail names (since 1.1.0.251001): name it {:?} instead (the warden_jails role does this when the separator is empty)",
            p.name,
            o.version,
            p.name.replace(['-', '_'], "")
        ));
    }
    if let Some(problem) = o.version.epair_problem(&p.name, o.epair_unit) {
        problems.push(problem);
    }
    if ip.is_none() {
        problems.push(format!(
            "jail {} does not exist: ip is required to create it",
            p.name
        ));
    }
    let releases = std::path::Path::new(&p.bastille_prefix).join("releases");
    match release {
        None => problems.push(format!(
            "jail {} does not exist: release is required to create it",
            p.name
        )),
        Some(rel) if o.releases.contains(rel) => {}
        Some(rel) if !p.bootstrap => problems.push(format!(
            "release {rel} is not bootstrapped (no {}); run `bastille bootstrap {rel}` or set bootstrap: true",
            releases.join(rel).display()
        )),
        Some(_) => {
            if let Some((chain, conf)) = &o.bootstrap_rc {
                if let Some(problem) =
                    bastille::bootstrap_blocker(chain, conf, std::path::Path::new(&p.bastille_conf))
                {
                    problems.push(problem);
                }
            }
        }
    }
    let bridges = o.bridges.as_deref().unwrap_or_default();
    if !bridges.contains(&p.bridge) {
        // In check mode an earlier task of the same run may be about to create it.
        if check_mode {
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

/// Another jail on the same bridge with the same address is an error. A jail whose
/// rc.conf cannot be read safely (a link its root planted) is skipped with a warning.
fn check_collision(p: &Settings, o: &Observed, ip: &Ipv4Net, plan: &mut Plan) -> Result<()> {
    for other in &o.others {
        let config = other.config.as_ref().map_err(|e| anyhow!("{e}"))?;
        if config.bridge.as_deref() != Some(p.bridge.as_str()) {
            continue;
        }
        let their_ip = match &other.ip {
            Ok(ip) => *ip,
            Err(e) => {
                plan.warnings.push(format!(
                    "jail {}'s address was not compared with this one: {e}",
                    other.name
                ));
                continue;
            }
        };
        if their_ip.map(|n| n.addr()) == Some(ip.addr()) {
            bail!(
                "address {} is already used by jail {} on {}",
                ip.addr(),
                other.name,
                p.bridge
            );
        }
    }
    Ok(())
}

/// `bastille start|stop` unless the jail already is so when the step runs (`stop` of a
/// stopped jail exits 1 before 0.14 and 0 later, `start` of a running one exits 0); undo
/// puts it back only if this step changed it and it still is so.
fn run_state(p: &Settings, o: &Observed, up: bool) -> Checked {
    let jls = o.tools.jls.clone();
    let name = p.name.clone();
    Checked::new(
        bastille::set_running(&o.tools.bastille, &p.name, up),
        if up {
            format!("jail {} runs", p.name)
        } else {
            format!("jail {} is stopped", p.name)
        },
        move || Ok(bastille::is_running(&jls, &name)? == up),
    )
    .unless_holds()
    .undo_with(bastille::set_running(&o.tools.bastille, &p.name, !up))
}

/// Installs the missing packages in the running jail, then checks with the jail's own pkg
/// that every wanted one is there. When what is missing was not known while planning (the
/// jail was stopped), it is read first, once the jail runs.
fn packages_step(p: &Settings, o: &Observed, missing: &[String], known: bool) -> Checked {
    let (jexec, name, root) = (o.tools.jexec.clone(), p.name.clone(), o.paths.root());
    let wanted = p.packages.clone();
    let step = Checked::new(
        bastille::pkg_install(&jexec, &name, missing),
        format!("jail {} has {}", p.name, missing.join(", ")),
        {
            let (jexec, name, root, wanted) =
                (jexec.clone(), name.clone(), root.clone(), wanted.clone());
            move || {
                let have = bastille::installed_packages(&jexec, &name, &root)?;
                Ok(wanted.iter().all(|w| have.contains(w)))
            }
        },
    );
    if known {
        return step;
    }
    step.decide_when_run(move || {
        let have = bastille::installed_packages(&jexec, &name, &root)?;
        let missing: Vec<String> = wanted
            .iter()
            .filter(|w| !have.contains(w))
            .cloned()
            .collect();
        Ok((!missing.is_empty()).then(|| bastille::pkg_install(&jexec, &name, &missing)))
    })
}

/// Starts a service inside the jail unless it already runs (the jail's own rc may have
/// started it when the jail came up), then checks `onestatus`.
fn service_up(p: &Settings, o: &Observed, service: &str) -> Checked {
    let (jexec, name, svc) = (o.tools.jexec.clone(), p.name.clone(), service.to_string());
    Checked::new(
        bastille::service_start(&o.tools.jexec, &p.name, service),
        format!("{service} runs in jail {}", p.name),
        move || {
            Ok(bastille::service_status(&jexec, &name, &svc)
                .output()?
                .success())
        },
    )
    .unless_holds()
}

#[cfg(test)]
mod tests {
    //! Table tests of the planner: every case builds the host as [`Observed`] in code.
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    use serde_json::{json, Value};
    use warden_runtime::bastille::{JailPaths, Version};
    use warden_runtime::rcconf::RcChain;

    use super::*;
    use crate::observe::{Jail, OtherJail, Tools};
    use crate::{checks, BastilleJail};

    const B: &str = "/usr/local/bin/bastille";
    const JEXEC: &str = "/usr/sbin/jexec";
    const SYSRC: &str = "/usr/sbin/sysrc";
    const PREFIX: &str = "/usr/local/bastille";

    /// The settings of jail mevygit (14.2-RELEASE, 10.0.1.2/24) with `args`, through the
    /// spec and the checks.
    fn params(args: Value) -> Settings {
        let mut raw = json!({"name": "mevygit", "release": "14.2-RELEASE", "ip": "10.0.1.2/24"});
        raw.as_object_mut()
            .unwrap()
            .extend(args.as_object().unwrap().clone());
        checks::settings(&warden_testkit::params::<BastilleJail>(raw)).unwrap()
    }

    /// A host with Bastille `version`, bridge warden0, 14.2-RELEASE bootstrapped,
    /// `bastille_enable=YES` and no jail.
    fn host(version: &str) -> Observed {
        Observed {
            tools: Tools {
                bastille: B.into(),
                jls: "/usr/sbin/jls".into(),
                jexec: JEXEC.into(),
                sysrc: SYSRC.into(),
            },
            version: Version::parse(version).unwrap(),
            version_text: version.into(),
            paths: JailPaths::new(Path::new(PREFIX), "mevygit"),
            jail: None,
            releases: BTreeSet::from(["14.2-RELEASE".to_string()]),
            epair_unit: 0,
            bridges: Some(vec!["warden0".into()]),
            others: Vec::new(),
            boot_rc: Some(rc_conf("bastille_enable=\"YES\"\n")),
            bootstrap_rc: None,
        }
    }

    fn rc_conf(text: &str) -> RcChain {
        RcChain::single(Path::new("/etc/rc.conf"), RcConf::parse(text))
    }

    fn config() -> JailConfig {
        JailConfig {
            vnet: true,
            bridge: Some("warden0".into()),
            interface: Some("e0b_mevygit".into()),
            release: Some("14.2-RELEASE".into()),
            boot: Some("on".into()),
            boot_param: false,
        }
    }

    const JAIL_RC: &str = "ifconfig_vnet0=\"inet 10.0.1.2/24\"\ndefaultrouter=\"10.0.1.1\"\n";

    /// `host(version)` with jail mevygit as the module left it, running or not.
    fn with_jail(version: &str, running: bool, jail_rc: &str) -> Observed {
        let mut o = host(version);
        o.jail = Some(Jail {
            config: config(),
            rc: JailRcConf {
                rc: RcConf::parse(jail_rc),
                state: None,
            },
            running,
            packages: None,
            services: BTreeMap::new(),
        });
        o
    }

    fn jail(o: &mut Observed) -> &mut Jail {
        o.jail.as_mut().unwrap()
    }

    fn run(p: &Settings, o: &Observed) -> Result<Plan> {
        plan(p, o, false)
    }

    fn ok(args: Value, o: &Observed) -> Plan {
        run(&params(args), o).unwrap()
    }

    fn refused(args: Value, o: &Observed) -> String {
        match run(&params(args), o) {
            Ok(p) => panic!("planned {:?}", p.describe()),
            Err(e) => format!("{e:#}"),
        }
    }

    fn jail_rc_path() -> String {
        format!("{PREFIX}/jails/mevygit/root/etc/rc.conf")
    }

    fn edit(assignments: &str) -> String {
        format!(
            "{SYSRC} -f '<private copy of {}>' {assignments}",
            jail_rc_path()
        )
    }

    fn diff_of<'a>(plan: &'a Plan, header: &str) -> Option<(&'a str, &'a str)> {
        plan.diffs
            .iter()
            .find(|d| d.before_header == header)
            .map(|d| (d.before.as_str(), d.after.as_str()))
    }

    #[test]
    fn a_new_jail_per_version() {
        let create_1x =
            format!("{B} create -B -g 10.0.1.1 mevygit 14.2-RELEASE 10.0.1.2/24 warden0");
        let create_0x = format!("{B} create -B mevygit 14.2-RELEASE 10.0.1.2/24 warden0");
        for (version, steps) in [
            (
                "1.4.4",
                vec![
                    create_1x.clone(),
                    "check that jail mevygit routes through 10.0.1.1".to_string(),
                ],
            ),
            (
                "1.0.20250714",
                vec![
                    create_1x.clone(),
                    "check that jail mevygit routes through 10.0.1.1".to_string(),
                ],
            ),
            (
                "0.14.20250420",
                vec![
                    create_0x.clone(),
                    format!(
                        "edit {} ({}, then write the copy back)",
                        jail_rc_path(),
                        edit("defaultrouter=10.0.1.1")
                    ),
                    format!("{B} stop mevygit"),
                    format!("{B} start mevygit"),
                ],
            ),
        ] {
            let plan = ok(json!({}), &host(version));
            assert_eq!(plan.describe(), steps, "{version}");
            assert!(plan.changes(), "{version}");
            assert_eq!(plan.values["created"], true);
            assert_eq!(plan.values["state"], "started");
            assert_eq!(plan.values["gateway"], "10.0.1.1");
            assert_eq!(plan.values["bastille_version"], version);
            assert_eq!(
                diff_of(&plan, "jail mevygit"),
                Some(("absent\n", "running\n"))
            );
            assert!(plan.warnings.is_empty());
        }
    }

    #[test]
    fn a_fresh_host_bootstraps_the_release_and_enables_bastille_at_boot() {
        let mut o = host("1.4.4");
        o.releases.clear();
        o.boot_rc = Some(rc_conf("hostname=\"h\"\n"));
        let plan = ok(
            json!({"bootstrap": true, "packages": ["git"], "services": ["gitdaemon"], "sysrc": {"gitdaemon_flags": "-q"}}),
            &o,
        );
        assert_eq!(
            plan.commands(),
            [
                format!("{B} bootstrap 14.2-RELEASE"),
                format!("{B} create -B -g 10.0.1.1 mevygit 14.2-RELEASE 10.0.1.2/24 warden0"),
                edit("gitdaemon_flags=-q gitdaemon_enable=YES"),
                format!("{JEXEC} -l -U root mevygit env ASSUME_ALWAYS_YES=yes /usr/sbin/pkg install -y git"),
                format!("{JEXEC} -l -U root mevygit /usr/sbin/service gitdaemon start"),
                format!("{SYSRC} -f /etc/rc.conf bastille_enable=YES"),
            ]
        );
        assert_eq!(plan.values["packages"], json!(["git"]));
        assert_eq!(plan.values["services_started"], json!(["gitdaemon"]));
        assert_eq!(diff_of(&plan, "jail mevygit packages"), Some(("", "git\n")));
        assert_eq!(
            diff_of(&plan, &jail_rc_path()),
            Some(("", "gitdaemon_enable=\"YES\"\ngitdaemon_flags=\"-q\"\n"))
        );
    }

    #[test]
    fn a_converged_jail_changes_nothing() {
        let mut o = with_jail("1.4.4", true, &format!("{JAIL_RC}nginx_enable=\"YES\"\n"));
        jail(&mut o).packages = Some(vec!["nginx".into(), "curl".into()]);
        jail(&mut o).services.insert("nginx".into(), true);
        let args = json!({"packages": ["nginx"], "services": ["nginx"]});
        for state in ["started", "present"] {
            let plan = ok(
                json!({"state": state, "packages": args["packages"], "services": args["services"]}),
                &o,
            );
            assert!(plan.describe().is_empty(), "{state}: {:?}", plan.describe());
            assert!(!plan.changes());
            assert!(plan.diffs.is_empty(), "{:?}", plan.diffs);
            assert_eq!(plan.values["created"], false);
            assert_eq!(plan.values["state"], "started");
            assert_eq!(plan.values["ip"], "10.0.1.2/24");
            assert_eq!(plan.values["packages"], json!(["nginx", "curl"]));
            assert_eq!(plan.values["services_started"], json!([]));
        }
        // Stopped and meant to be: nothing either.
        let stopped = with_jail("1.4.4", false, JAIL_RC);
        for state in ["stopped", "present"] {
            let plan = ok(json!({"state": state}), &stopped);
            assert!(!plan.changes(), "{state}: {:?}", plan.describe());
            assert_eq!(plan.values["state"], "stopped");
        }
    }

    #[test]
    fn run_state_changes() {
        let start = format!("{B} start mevygit");
        let stop = format!("{B} stop mevygit");
        for (running, state, commands, diff) in [
            (
                false,
                "started",
                vec![start.clone()],
                ("stopped\n", "running\n"),
            ),
            (
                true,
                "stopped",
                vec![stop.clone()],
                ("running\n", "stopped\n"),
            ),
        ] {
            let plan = ok(
                json!({"state": state}),
                &with_jail("1.4.4", running, JAIL_RC),
            );
            assert_eq!(plan.commands(), commands, "{state}");
            assert_eq!(diff_of(&plan, "jail mevygit"), Some(diff));
        }
    }

    #[test]
    fn drift_in_the_jails_network_is_corrected_with_a_restart() {
        for (rc, assignments) in [
            (
                "ifconfig_vnet0=\"inet 10.0.1.9/24\"\ndefaultrouter=\"10.0.1.1\"\n",
                "'ifconfig_vnet0=inet 10.0.1.2/24'",
            ),
            (
                "ifconfig_vnet0=\"inet 10.0.1.2/24\"\ndefaultrouter=\"192.168.122.1\"\n",
                "defaultrouter=10.0.1.1",
            ),
            (
                "ifconfig_vnet0=\"inet 10.0.1.9/24\"\ndefaultrouter=\"192.168.122.1\"\n",
                "'ifconfig_vnet0=inet 10.0.1.2/24' defaultrouter=10.0.1.1",
            ),
        ] {
            let mut o = with_jail("1.4.4", true, &format!("{rc}nginx_enable=\"YES\"\n"));
            // The service runs, but the restart for the network takes it down.
            jail(&mut o).services.insert("nginx".into(), true);
            let plan = ok(json!({"services": ["nginx"]}), &o);
            assert_eq!(
                plan.commands(),
                [
                    edit(assignments),
                    format!("{B} stop mevygit"),
                    format!("{B} start mevygit"),
                    format!("{JEXEC} -l -U root mevygit /usr/sbin/service nginx start"),
                ],
                "{rc}"
            );
            assert_eq!(plan.values["services_started"], json!(["nginx"]));
        }
        // A stopped jail is corrected without being started.
        let plan = ok(
            json!({"state": "stopped"}),
            &with_jail("1.4.4", false, "ifconfig_vnet0=\"inet 10.0.1.9/24\"\n"),
        );
        assert_eq!(
            plan.commands(),
            [edit(
                "'ifconfig_vnet0=inet 10.0.1.2/24' defaultrouter=10.0.1.1"
            )]
        );
        // Without ip the jail's own address is kept, and so is its router.
        let p = params(json!({"ip": null, "release": null}));
        let plan = run(
            &p,
            &with_jail(
                "1.4.4",
                true,
                "ifconfig_vnet0=\"inet 10.0.1.9/24\"\ndefaultrouter=\"10.0.1.254\"\n",
            ),
        )
        .unwrap();
        assert!(!plan.changes(), "{:?}", plan.describe());
        assert_eq!(plan.values["ip"], "10.0.1.9/24");
        assert_eq!(plan.values["gateway"], "10.0.1.254");
        assert_eq!(plan.values["release"], "14.2-RELEASE");
    }

    #[test]
    fn packages_and_services_of_a_running_jail() {
        let mut o = with_jail("1.4.4", true, &format!("{JAIL_RC}nginx_enable=\"YES\"\n"));
        jail(&mut o).packages = Some(vec!["nginx".into()]);
        jail(&mut o).services.insert("nginx".into(), true);
        jail(&mut o).services.insert("redis".into(), false);
        let plan = ok(
            json!({"packages": ["nginx", "redis"], "services": ["nginx", "redis"]}),
            &o,
        );
        assert_eq!(
            plan.commands(),
            [
                edit("redis_enable=YES"),
                format!("{JEXEC} -l -U root mevygit env ASSUME_ALWAYS_YES=yes /usr/sbin/pkg install -y redis"),
                format!("{JEXEC} -l -U root mevygit /usr/sbin/service redis start"),
            ]
        );
        assert_eq!(
            diff_of(&plan, "jail mevygit packages"),
            Some(("nginx\n", "nginx\nredis\n"))
        );
        assert_eq!(plan.values["services_started"], json!(["redis"]));
        assert_eq!(diff_of(&plan, "jail mevygit"), None, "it stays running");
    }

    #[test]
    fn packages_of_a_stopped_jail_are_read_once_it_runs_or_warned_about() {
        let o = with_jail("1.4.4", false, JAIL_RC);
        // Started by this run: the install is planned for every wanted package and decided
        // when the step runs; no packages diff, as nothing was read.
        let plan = ok(json!({"packages": ["git"]}), &o);
        assert_eq!(
            plan.commands(),
            [
                format!("{B} start mevygit"),
                format!("{JEXEC} -l -U root mevygit env ASSUME_ALWAYS_YES=yes /usr/sbin/pkg install -y git"),
            ]
        );
        assert_eq!(diff_of(&plan, "jail mevygit packages"), None);
        // Kept stopped: nothing is installed, and the run says so.
        let plan = ok(json!({"packages": ["git"], "state": "stopped"}), &o);
        assert!(!plan.changes());
        assert_eq!(
            plan.warnings,
            ["jail mevygit is stopped, so packages git were neither checked nor installed"]
        );
        assert_eq!(plan.values["packages"], json!([]));
    }

    #[test]
    fn absent() {
        let plan = ok(
            json!({"state": "absent"}),
            &with_jail("1.4.4", true, JAIL_RC),
        );
        assert_eq!(plan.commands(), [format!("{B} destroy -a -y mevygit")]);
        assert_eq!(
            diff_of(&plan, "jail mevygit"),
            Some(("running\n", "absent\n"))
        );
        assert_eq!(plan.values["state"], "absent");
        for (version, cmd) in [
            ("0.14.20250420", "destroy -a mevygit"),
            ("0.13.20250126", "destroy force mevygit"),
        ] {
            let plan = ok(
                json!({"state": "absent"}),
                &with_jail(version, false, JAIL_RC),
            );
            assert_eq!(plan.commands(), [format!("{B} {cmd}")], "{version}");
        }
        let plan = ok(json!({"state": "absent"}), &host("1.4.4"));
        assert!(!plan.changes());
        assert!(plan.diffs.is_empty());
        // Nothing about the jail's files or the host matters for absent.
        let mut o = with_jail("1.4.4", false, JAIL_RC);
        o.boot_rc = None;
        o.bridges = None;
        jail(&mut o).config.boot_param = true;
        assert!(ok(json!({"state": "absent", "boot": false}), &o).changes());
    }

    #[test]
    fn drift_that_needs_a_new_jail() {
        let mut other_release = with_jail("1.4.4", true, JAIL_RC);
        jail(&mut other_release).config.release = Some("14.1-RELEASE".into());
        let mut not_vnet = with_jail("1.4.4", true, JAIL_RC);
        jail(&mut not_vnet).config.vnet = false;
        let mut other_bridge = with_jail("1.4.4", true, JAIL_RC);
        jail(&mut other_bridge).config.bridge = Some("bastille1".into());
        for (o, reason) in [
            (
                &other_release,
                "it runs 14.1-RELEASE instead of 14.2-RELEASE",
            ),
            (&not_vnet, "it is not a VNET jail"),
            (&other_bridge, "it is on bastille1 instead of warden0"),
        ] {
            assert_eq!(
                refused(json!({}), o),
                format!("jail mevygit needs to be re-created ({reason}); set recreate: true to destroy and create it again")
            );
            let plan = ok(json!({"recreate": true}), o);
            assert_eq!(
                plan.commands(),
                [
                    format!("{B} destroy -a -y mevygit"),
                    format!("{B} create -B -g 10.0.1.1 mevygit 14.2-RELEASE 10.0.1.2/24 warden0"),
                ],
                "{reason}"
            );
            assert_eq!(plan.values["created"], true);
        }
        // Without a release the jail's own is kept: no drift.
        let plan = ok(json!({"release": null}), &other_release);
        assert!(!plan.changes());
        assert_eq!(plan.values["release"], "14.1-RELEASE");
    }

    #[test]
    fn what_bastille_would_refuse_for_a_new_jail_is_refused_first() {
        for (version, name, needle) in [
            (
                "1.4.4",
                "mevy-git",
                "refuses '-' and '_' in VNET jail names (since 1.1.0.251001): name it \"mevygit\"",
            ),
            ("1.1.0.251001", "mevy_git", "refuses '-' and '_'"),
            ("1.0.20250714", "mevyllamacpp", "#1245"),
            ("0.10.20231125", "mevyllamacpp", "would not start"),
        ] {
            let msg = refused(json!({"name": name}), &host(version));
            assert!(msg.contains(needle), "{version} {name}: {msg}");
        }
        // The same names where Bastille has a safe fallback or allows them.
        assert!(ok(json!({"name": "mevyllamacpp"}), &host("1.4.4")).changes());
        assert!(ok(json!({"name": "mevy-git"}), &host("1.0.20250714")).changes());
        // 0.10–0.12 count the epair units already in use.
        let mut busy = host("0.10.20231125");
        busy.epair_unit = 10;
        assert!(refused(json!({"name": "mevyollama1"}), &busy).contains("too long"));
        assert!(ok(json!({"name": "mevyollama1"}), &host("0.10.20231125")).changes());

        assert_eq!(
            refused(json!({"ip": null}), &host("1.4.4")),
            "jail mevygit does not exist: ip is required to create it"
        );
        assert_eq!(
            refused(json!({"release": null}), &host("1.4.4")),
            "jail mevygit does not exist: release is required to create it"
        );
        assert_eq!(
            refused(json!({"release": "13.4-RELEASE"}), &host("1.4.4")),
            format!("release 13.4-RELEASE is not bootstrapped (no {PREFIX}/releases/13.4-RELEASE); run `bastille bootstrap 13.4-RELEASE` or set bootstrap: true")
        );
        // Several problems at once.
        let msg = refused(json!({"name": "mevy-git", "ip": null}), &host("1.4.4"));
        assert!(
            msg.contains("refuses '-'") && msg.contains("ip is required"),
            "{msg}"
        );
    }

    #[test]
    fn bootstrap_on_a_zfs_host_without_bastille_zfs_enable_is_refused() {
        let mut o = host("1.4.4");
        o.releases.clear();
        o.bootstrap_rc = Some((rc_conf("zfs_enable=\"YES\"\n"), RcConf::default()));
        let msg = refused(json!({"bootstrap": true}), &o);
        assert!(
            msg.contains("Missing ZFS parameters")
                && msg.contains("/usr/local/etc/bastille/bastille.conf"),
            "{msg}"
        );
        o.bootstrap_rc = Some((
            rc_conf("zfs_enable=\"YES\"\n"),
            RcConf::parse("bastille_zfs_enable=\"YES\"\n"),
        ));
        assert_eq!(
            ok(json!({"bootstrap": true}), &o).commands()[0],
            format!("{B} bootstrap 14.2-RELEASE")
        );
    }

    #[test]
    fn a_missing_bridge_fails_a_real_run_and_warns_in_check_mode() {
        let mut o = host("1.4.4");
        o.bridges = Some(vec!["bridge0".into()]);
        assert_eq!(
            refused(json!({}), &o),
            "bridge warden0 does not exist; create it first (warden_bridge_alias)"
        );
        let p = params(json!({}));
        let check = plan(&p, &o, true).unwrap();
        assert_eq!(
            check.warnings,
            ["bridge warden0 does not exist yet; a real run fails unless an earlier task creates it"]
        );
        assert!(check.changes());
        // An existing jail does not need the bridge checked (it is not read then).
        let mut existing = with_jail("1.4.4", true, JAIL_RC);
        existing.bridges = None;
        assert!(!ok(json!({}), &existing).changes());
    }

    fn other(name: &str, bridge: &str, ip: Option<&str>) -> OtherJail {
        OtherJail {
            name: name.into(),
            config: Ok(JailConfig {
                bridge: Some(bridge.into()),
                ..config()
            }),
            ip: Ok(ip.map(|i| i.parse().unwrap())),
        }
    }

    #[test]
    fn addresses_of_other_jails() {
        let mut o = host("1.4.4");
        o.others = vec![other("mevycms", "warden0", Some("10.0.1.3/24"))];
        assert!(ok(json!({}), &o).changes());
        assert_eq!(
            refused(json!({"ip": "10.0.1.3/24"}), &o),
            "address 10.0.1.3 is already used by jail mevycms on warden0"
        );
        // The same address on another bridge is another network.
        o.others = vec![other("elsewhere", "bastille0", Some("10.0.1.2/24"))];
        assert!(ok(json!({}), &o).changes());
        // A jail whose rc.conf is a planted link is skipped with a warning ...
        o.others = vec![OtherJail {
            ip: Err("… is a symbolic link inside the jail".into()),
            ..other("sneaky", "warden0", None)
        }];
        let plan = ok(json!({}), &o);
        assert_eq!(
            plan.warnings,
            ["jail sneaky's address was not compared with this one: … is a symbolic link inside the jail"]
        );
        // ... one whose jail.conf cannot be read is an error.
        o.others = vec![OtherJail {
            config: Err("cannot read x/jail.conf: denied".into()),
            ..other("broken", "warden0", None)
        }];
        assert_eq!(refused(json!({}), &o), "cannot read x/jail.conf: denied");
        // An existing jail is compared with its own address when no ip is given.
        let mut existing = with_jail("1.4.4", true, JAIL_RC);
        existing.others = vec![other("twin", "warden0", Some("10.0.1.2/24"))];
        assert!(refused(json!({"ip": null}), &existing).contains("already used by jail twin"));
    }

    #[test]
    fn the_boot_flag() {
        // Before 0.14 there is no per-jail flag to keep boot: false with.
        let msg = refused(json!({"boot": false}), &host("0.10.20231125"));
        assert!(msg.contains("boot = off;") && msg.contains("0.14"), "{msg}");
        // 1.x and 0.14 set it with `bastille config`, checked in its file.
        for version in ["1.4.4", "0.14.20250420"] {
            let plan = ok(json!({"boot": false}), &with_jail(version, true, JAIL_RC));
            assert_eq!(
                plan.commands(),
                [format!("{B} config mevygit set boot off")],
                "{version}"
            );
        }
        let mut off = with_jail("1.4.4", true, JAIL_RC);
        jail(&mut off).config.boot = Some("off".into());
        assert!(!ok(json!({"boot": false}), &off).changes());
        assert_eq!(
            ok(json!({}), &off).commands(),
            [format!("{B} config mevygit set boot on")]
        );
        // A new jail gets --no-boot, and the host's boot settings are left alone.
        let mut o = host("1.4.4");
        o.boot_rc = None;
        assert_eq!(
            ok(json!({"boot": false}), &o).commands(),
            [format!(
                "{B} create -B -g 10.0.1.1 --no-boot mevygit 14.2-RELEASE 10.0.1.2/24 warden0"
            )]
        );
        // A `boot` line in jail.conf (0.10's `config set boot`) keeps the jail from starting.
        let mut old = with_jail("0.10.20231125", false, JAIL_RC);
        jail(&mut old).config.boot_param = true;
        let msg = refused(json!({}), &old);
        assert!(
            msg.contains("unknown parameter: boot") && msg.contains("remove that line"),
            "{msg}"
        );
        assert!(!ok(json!({"state": "stopped"}), &old).changes());
    }

    #[test]
    fn the_host_starts_the_jail_at_boot() {
        for (version, rc, commands) in [
            (
                "1.4.4",
                "",
                vec![format!("{SYSRC} -f /etc/rc.conf bastille_enable=YES")],
            ),
            (
                "1.4.4",
                "bastille_enable=\"NO\"\n",
                vec![format!("{SYSRC} -f /etc/rc.conf bastille_enable=YES")],
            ),
            (
                "1.4.4",
                "bastille_enable=\"YES\"\nbastille_list=\"other\"\n",
                vec![],
            ),
            ("0.10.20231125", "bastille_enable=\"YES\"\n", vec![]),
            (
                "0.10.20231125",
                "bastille_enable=\"YES\"\nbastille_list=\"ALL\"\n",
                vec![],
            ),
            (
                "0.10.20231125",
                "bastille_enable=\"YES\"\nbastille_list=\"other\"\n",
                vec![format!(
                    "{SYSRC} -f /etc/rc.conf 'bastille_list=other mevygit'"
                )],
            ),
            // An empty bastille_list is ALL (`: ${bastille_list:="ALL"}`): not narrowed to this jail.
            (
                "0.13.20250126",
                "bastille_list=\"\"\n",
                vec![format!("{SYSRC} -f /etc/rc.conf bastille_enable=YES")],
            ),
            (
                "0.13.20250126",
                "bastille_list=\" \"\n",
                vec![format!(
                    "{SYSRC} -f /etc/rc.conf bastille_enable=YES bastille_list=mevygit"
                )],
            ),
        ] {
            let mut o = with_jail(version, true, JAIL_RC);
            o.boot_rc = Some(rc_conf(rc));
            assert_eq!(ok(json!({}), &o).commands(), commands, "{version} {rc:?}");
            // boot: false never touches the host's settings.
            if version != "0.10.20231125" && version != "0.13.20250126" {
                let mut off = o.clone();
                jail(&mut off).config.boot = Some("off".into());
                off.boot_rc = None;
                assert!(!ok(json!({"boot": false}), &off).changes());
            }
        }
        let mut o = with_jail("0.10.20231125", true, JAIL_RC);
        o.boot_rc = Some(rc_conf("bastille_list=\"$(ls)\"\n"));
        assert!(refused(json!({}), &o).contains("shell expansion"));
    }

    #[test]
    fn sysrc_values_and_enabled_services_in_the_jails_rc_conf() {
        let o = with_jail(
            "1.4.4",
            true,
            &format!("{JAIL_RC}nginx_enable=\"NO\"\nnginx_flags=\"-q\"\n"),
        );
        let plan = ok(
            json!({"sysrc": {"nginx_flags": "-q", "redis_flags": "--x"}, "services": ["nginx"]}),
            &o,
        );
        assert_eq!(plan.commands()[0], edit("redis_flags=--x nginx_enable=YES"));
        assert_eq!(
            diff_of(&plan, &jail_rc_path()),
            Some((
                "nginx_enable=\"NO\"\n",
                "nginx_enable=\"YES\"\nredis_flags=\"--x\"\n"
            ))
        );
        // A value sysrc would write unescaped is refused by the checks, before any planning.
        let raw = json!({"name": "mevygit", "sysrc": {"x": "$(reboot)"}});
        let err = checks::settings(&warden_testkit::params::<BastilleJail>(raw)).unwrap_err();
        assert!(err.to_string().contains("unescaped"), "{err}");
    }

    /// Check mode reports the plan a real run applies: the same commands, whatever the case.
    #[test]
    fn check_mode_predicts_the_real_commands() {
        let mut running = with_jail("1.4.4", true, "ifconfig_vnet0=\"inet 10.0.1.9/24\"\n");
        jail(&mut running).packages = Some(vec![]);
        let cases: Vec<(Value, Observed)> = vec![
            (json!({}), host("1.4.4")),
            (json!({}), host("0.14.20250420")),
            (
                json!({"packages": ["git"], "services": ["sshd"]}),
                running.clone(),
            ),
            (json!({"state": "stopped"}), running.clone()),
            (json!({"state": "absent"}), running),
            (json!({"boot": false}), with_jail("1.4.4", false, JAIL_RC)),
        ];
        for (args, o) in cases {
            let p = params(args.clone());
            let real = plan(&p, &o, false).unwrap();
            let check = plan(&p, &o, true).unwrap();
            assert_eq!(check.commands(), real.commands(), "{args}");
            assert_eq!(check.changes(), real.changes(), "{args}");
            assert_eq!(check.diffs, real.diffs, "{args}");
        }
    }

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// 0.10–0.13 exit 1 for `stop` of a stopped jail (their main script's
    /// `check_target_is_running`), 0.14+ exit 0: the planned stop asks `jls` first when it
    /// runs (the jail stopped since planning) and calls nothing.
    #[test]
    fn stop_of_a_stopped_jail_is_rc_1_on_0_10() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("calls");
        let mut o = with_jail("0.10.20231125", true, JAIL_RC);
        o.tools.jls = script(dir.path(), "jls", "exit 1");
        o.tools.bastille = script(
            dir.path(),
            "bastille",
            &format!(
                "echo \"$*\" >> {}; echo \"[x]: Not started. See 'bastille start x'.\" >&2; exit 1",
                log.display()
            ),
        );
        let mut plan = ok(json!({"state": "stopped"}), &o);
        assert!(plan.commands()[0].ends_with("stop mevygit"));
        plan.apply().unwrap();
        assert!(
            !log.exists(),
            "bastille was called: {:?}",
            std::fs::read_to_string(&log)
        );
    }
}
