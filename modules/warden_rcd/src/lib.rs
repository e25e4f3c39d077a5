//! `warden_rcd`: installs a warden agent's rc.d service — `/usr/local/etc/rc.d/<name>`,
//! `<name>_enable` in rc.conf — and keeps it running (or stopped) in its own tmux server
//! with the agent's UTF-8 locales.
//!
//! Shape: params → [`Settings`] ([`checks::settings`], every problem at once) → observe
//! (script file, the rc.conf chain the script's `load_rc_config <name>` reads — rc.conf, rc.conf.local, rc.conf.d/<name> — and
//! `service <name> onestatus`, whose answer does not depend on `<name>_enable`: FreeBSD
//! 13.x's rc.subr answers `status` of a disabled service with exit 0; the agent user and the
//! script's owner and group from the host's accounts) → plan, pure: `plan_present` and
//! `plan_absent` read only [`Observed`] (stop old, write script, sysrc, start + verify) →
//! the runtime reports or applies.
//! A changed script on a running service means a restart: the old script stops the old
//! session (its socket may differ), the new one starts the new session.

pub mod checks;
pub mod script;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use serde::Deserialize;
use serde_json::json;

use warden_runtime::fs::{self as wfs, Attrs, FileState};
use warden_runtime::plan::{RemoveFile, WriteFile};
use warden_runtime::rcconf::{is_yes, RcChain, RcLookup, RcValue};
use warden_runtime::service::{self, StartService, StopService};
use warden_runtime::spec::{Param, Spec, State};
use warden_runtime::{sysrc, Context, Diff, Host, Module, Plan};

pub use checks::Settings;
use script::ScriptSpec;

/// The module.
pub struct WardenRcd;

/// The params as the spec delivers them (see `library/warden_rcd.yml`; the rc.conf chain and
/// the host lock come as `ctx.host()`); [`checks::settings`] validates them into
/// [`Settings`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub name: String,
    pub state: State,
    pub enabled: bool,
    pub started: bool,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub command: Option<String>,
    pub description: Option<String>,
    pub tmux_socket: Option<String>,
    pub tmux_path: String,
    pub env: Option<BTreeMap<String, String>>,
    pub display_locale: Option<String>,
    pub assistant_locale: Option<String>,
    pub system_locale: String,
    pub path: String,
    pub require: Vec<String>,
    pub owner: String,
    pub group: String,
    pub mode: String,
    pub rcd_dir: String,
    pub rc_subr: String,
    pub locale_dir: String,
}

/// PATH inside the agent's tmux server unless `path` says otherwise: service(8)'s PATH plus
/// the ports prefix, where node, python and friends live on FreeBSD.
pub const DEFAULT_PATH: &str = "/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin";

impl Module for WardenRcd {
    const NAME: &'static str = "warden_rcd";
    type Params = Params;

    fn spec() -> Spec {
        Spec::new(vec![
            Param::str("name").required(),
            Param::choice::<State>("state").default(State::Present),
            Param::bool("enabled").default(true),
            Param::bool("started").default(true),
            Param::str("user"),
            Param::path("workdir"),
            Param::str("command"),
            Param::str("description"),
            Param::str("tmux_socket"),
            Param::path("tmux_path").default("/usr/local/bin/tmux"),
            Param::dict_of_str("env"),
            Param::str("display_locale"),
            Param::str("assistant_locale"),
            Param::str("system_locale").default("C.UTF-8"),
            Param::str("path").default(DEFAULT_PATH),
            Param::list_of_str("require").default(json!(["LOGIN"])),
            Param::str("owner").default("root"),
            Param::str("group").default("wheel"),
            Param::mode("mode").default("0555"),
            Param::path("rcd_dir").default("/usr/local/etc/rc.d"),
            Param::path("rc_subr").default("/etc/rc.subr"),
            Param::path("locale_dir").default("/usr/share/locale"),
        ])
    }

    fn plan(params: Params, ctx: &mut Context) -> Result<Plan> {
        let settings = checks::settings(&params)?;
        ctx.lock_host()?;
        let observed = observe(&settings, ctx.host())?;
        let mut plan = Plan::new();
        match settings.state {
            State::Absent => plan_absent(&settings, &observed, &mut plan)?,
            State::Present => plan_present(&settings, &observed, ctx.check_mode, &mut plan)?,
        }
        Ok(plan)
    }
}

/// What the host holds now.
#[derive(Debug, Clone)]
pub struct Observed {
    pub script_path: PathBuf,
    pub script: Option<FileState>,
    /// What the script's `load_rc_config <name>` reads at boot.
    pub rc: RcChain,
    pub enable: Option<RcValue>,
    pub running: bool,
    /// `service` and `sysrc`, for the steps.
    pub tools: Tools,
    /// The agent user (`user`, else the service's name) as the host knows it; `None`: no
    /// such user (read for `state: present`).
    pub account: Option<Account>,
    /// The script's `owner` and `group` as ids (read for `state: present`).
    pub owner: Option<(u32, u32)>,
}

/// The tools the plan's steps run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    pub service: PathBuf,
    pub sysrc: PathBuf,
}

impl Observed {
    fn enabled(&self) -> bool {
        matches!(&self.enable, Some(RcValue::Literal(v)) if is_yes(v))
    }
}

fn rcvar(name: &str) -> String {
    format!("{name}_enable")
}

fn observe(settings: &Settings, host: &Host) -> Result<Observed> {
    let script_path = settings.script_path.clone();
    let script = wfs::read_state(&script_path)?;
    let rc = RcChain::read(&host.rc, &[&settings.name])?;
    let enable = rc.lookup(&rcvar(&settings.name)).cloned();
    // service(8) and sysrc(8) are in every FreeBSD base system (found PATH-first, else
    // where FreeBSD has them).
    let tools = Tools {
        service: service::tool(),
        sysrc: sysrc::tool(),
    };
    // Only a script that exists can say whether it runs.
    let running = match script {
        Some(_) => service::is_running(&tools.service, &settings.name)?,
        None => false,
    };
    let (mut account, mut owner) = (None, None);
    if settings.state == State::Present {
        let name = settings
            .user
            .clone()
            .unwrap_or_else(|| settings.name.clone());
        account = nix::unistd::User::from_name(&name)?.map(|user| Account {
            home: user.dir.to_string_lossy().into_owned(),
            name,
        });
        owner = Some((
            wfs::resolve_user(&settings.owner)?,
            wfs::resolve_group(&settings.group)?,
        ));
    }
    Ok(Observed {
        script_path,
        script,
        rc,
        enable,
        running,
        tools,
        account,
        owner,
    })
}

/// The agent user as the host knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub home: String,
}

fn account(
    settings: &Settings,
    observed: &Observed,
    check_mode: bool,
    plan: &mut Plan,
) -> Result<Account> {
    let name = settings
        .user
        .clone()
        .unwrap_or_else(|| settings.name.clone());
    match &observed.account {
        Some(account) => Ok(account.clone()),
        // Check mode before an earlier task creates the user: predict with the usual home.
        None if check_mode => {
            plan.warnings.push(format!(
                "user {name:?} does not exist yet; a real run fails unless an earlier task creates it"
            ));
            Ok(Account {
                home: format!("/home/{name}"),
                name,
            })
        }
        None => bail!(
            "user {name:?} does not exist on this host; create it before installing the {} service",
            settings.name
        ),
    }
}

fn script_spec(settings: &Settings, account: &Account, script_path: &Path) -> ScriptSpec {
    let mut environment: Vec<(String, String)> = vec![
        ("HOME".into(), account.home.clone()),
        ("USER".into(), account.name.clone()),
        ("LOGNAME".into(), account.name.clone()),
        // tmux runs the command with the server's default-shell, taken from SHELL.
        ("SHELL".into(), "/bin/sh".into()),
        ("PATH".into(), settings.path.clone()),
        ("LANG".into(), settings.system_locale.clone()),
        ("LC_ALL".into(), settings.system_locale.clone()),
        ("SYSTEM_LOCALE".into(), settings.system_locale.clone()),
    ];
    if let Some(locale) = &settings.display_locale {
        environment.push(("DISPLAY_LOCALE".into(), locale.clone()));
    }
    if let Some(locale) = &settings.assistant_locale {
        environment.push(("ASSISTANT_LOCALE".into(), locale.clone()));
    }
    for (key, value) in &settings.env {
        environment.retain(|(k, _)| k != key);
        environment.push((key.clone(), value.clone()));
    }
    ScriptSpec {
        name: settings.name.clone(),
        description: settings.description.clone(),
        require: settings.require.clone(),
        rc_subr: settings.rc_subr.clone(),
        script_path: script_path.to_string_lossy().into_owned(),
        user: account.name.clone(),
        tmux_path: settings.tmux_path.clone(),
        tmux_socket: settings.tmux_socket.clone(),
        workdir: settings
            .workdir
            .clone()
            .unwrap_or_else(|| account.home.clone()),
        command: settings.command.clone(),
        environment,
    }
}

fn state_word(running: bool) -> &'static str {
    if running {
        "running\n"
    } else {
        "stopped\n"
    }
}

fn plan_present(
    settings: &Settings,
    observed: &Observed,
    check_mode: bool,
    plan: &mut Plan,
) -> Result<()> {
    let account = account(settings, observed, check_mode, plan)?;
    let text = script_spec(settings, &account, &observed.script_path).render();
    let (uid, gid) = observed.owner.ok_or_else(|| {
        anyhow!(
            "the owner of {} was not looked up",
            observed.script_path.display()
        )
    })?;
    let attrs = Attrs {
        mode: Some(settings.mode),
        uid: Some(uid),
        gid: Some(gid),
    };
    let content_differs = observed
        .script
        .as_ref()
        .is_none_or(|s| s.content != text.as_bytes());
    let attrs_differ = observed
        .script
        .as_ref()
        .is_none_or(|s| !attrs.satisfied_by(s));
    let was_enabled = observed.enabled();
    let enable_differs = settings.enabled != was_enabled;
    let restart = observed.running && settings.started && content_differs;

    if observed.running && (!settings.started || content_differs) {
        plan.step(StopService {
            service: observed.tools.service.clone(),
            name: settings.name.clone(),
            enabled: was_enabled,
        });
    }
    if content_differs || attrs_differ {
        plan.step(WriteFile {
            path: observed.script_path.clone(),
            content: text.clone().into_bytes(),
            attrs,
            previous: observed.script.clone(),
        });
    }
    let before = observed
        .script
        .as_ref()
        .map(|s| String::from_utf8_lossy(&s.content).into_owned())
        .unwrap_or_default();
    plan.diff(Diff::new(
        observed.script_path.display().to_string(),
        before,
        text,
    ));
    let mut rc_changes = sysrc::Changes::on(&observed.rc);
    if enable_differs {
        rc_changes.set(
            &rcvar(&settings.name),
            if settings.enabled { "YES" } else { "NO" },
        )?;
    }
    if !rc_changes.is_empty() {
        rc_changes.apply_to(&observed.tools.sysrc, plan)?;
    }
    if settings.started && (!observed.running || content_differs) {
        plan.step(StartService {
            service: observed.tools.service.clone(),
            name: settings.name.clone(),
            enabled: settings.enabled,
        });
    }

    plan.diff(Diff::new(
        format!("service {}", settings.name),
        state_word(observed.running),
        state_word(settings.started),
    ));

    plan.value("name", settings.name.clone());
    plan.value("script", observed.script_path.display().to_string());
    plan.value("enabled", settings.enabled);
    plan.value("running", settings.started);
    plan.value("restarted", restart);
    plan.value("user", account.name);
    plan.msg = Some(match (plan.changes(), restart) {
        (false, _) => format!("service {} is up to date", settings.name),
        (true, true) => format!("service {} updated and restarted", settings.name),
        (true, false) => format!("service {} updated", settings.name),
    });
    Ok(())
}

fn plan_absent(settings: &Settings, observed: &Observed, plan: &mut Plan) -> Result<()> {
    if observed.running {
        plan.step(StopService {
            service: observed.tools.service.clone(),
            name: settings.name.clone(),
            enabled: observed.enabled(),
        });
    }
    if let Some(previous) = &observed.script {
        plan.step(RemoveFile {
            path: observed.script_path.clone(),
            previous: Some(previous.clone()),
        });
        plan.diff(Diff::new(
            observed.script_path.display().to_string(),
            String::from_utf8_lossy(&previous.content).into_owned(),
            "",
        ));
    }
    let mut rc_changes = sysrc::Changes::on(&observed.rc);
    rc_changes.delete(&rcvar(&settings.name))?;
    if !rc_changes.is_empty() {
        rc_changes.apply_to(&observed.tools.sysrc, plan)?;
    }
    plan.diff(Diff::new(
        format!("service {}", settings.name),
        state_word(observed.running),
        state_word(false),
    ));
    plan.value("name", settings.name.clone());
    plan.value("script", observed.script_path.display().to_string());
    plan.value("enabled", false);
    plan.value("running", false);
    plan.value("restarted", false);
    plan.msg = Some(if plan.changes() {
        format!("service {} removed", settings.name)
    } else {
        format!("service {} is absent", settings.name)
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Table tests of the planner: every case builds the host as [`Observed`] in code.
    use serde_json::Value;
    use warden_runtime::rcconf::RcConf;

    use super::*;

    const SCRIPT: &str = "/usr/local/etc/rc.d/mevy";
    const SERVICE: &str = "/usr/sbin/service";

    /// The settings of service mevy running `npm start`, with `args` (no locale directory:
    /// whether a locale is installed is the checks' business, not the planner's).
    fn params(args: Value) -> Settings {
        let mut raw = json!({"name": "mevy", "command": "npm start", "locale_dir": "/nonexistent"});
        raw.as_object_mut()
            .unwrap()
            .extend(args.as_object().unwrap().clone());
        checks::settings(&warden_testkit::params::<WardenRcd>(raw)).unwrap()
    }

    fn account() -> Account {
        Account {
            name: "mevy".into(),
            home: "/home/mevy".into(),
        }
    }

    /// A host with user mevy and neither the script nor `mevy_enable`.
    fn host(rc: &str) -> Observed {
        let chain = RcChain::single(Path::new("/etc/rc.conf"), RcConf::parse(rc));
        Observed {
            script_path: SCRIPT.into(),
            script: None,
            enable: chain.lookup("mevy_enable").cloned(),
            rc: chain,
            running: false,
            tools: Tools {
                service: SERVICE.into(),
                sysrc: "/usr/sbin/sysrc".into(),
            },
            account: Some(account()),
            owner: Some((0, 0)),
        }
    }

    fn script_of(p: &Settings) -> FileState {
        FileState {
            content: script_spec(p, &account(), Path::new(SCRIPT))
                .render()
                .into_bytes(),
            mode: 0o555,
            uid: 0,
            gid: 0,
        }
    }

    /// The service as a run with `args` left it, running or not.
    fn installed(args: Value, running: bool) -> Observed {
        let mut o = host("mevy_enable=\"YES\"\n");
        o.script = Some(script_of(&params(args)));
        o.running = running;
        o
    }

    fn present(args: Value, o: &Observed, check_mode: bool) -> Result<Plan> {
        let mut plan = Plan::new();
        plan_present(&params(args), o, check_mode, &mut plan)?;
        Ok(plan)
    }

    fn ok(args: Value, o: &Observed) -> Plan {
        present(args, o, false).unwrap()
    }

    #[test]
    fn a_fresh_host_gets_the_script_enabled_and_started() {
        let plan = ok(json!({}), &host(""));
        assert_eq!(
            plan.describe(),
            [
                format!("write {SCRIPT}"),
                "/usr/sbin/sysrc -f /etc/rc.conf mevy_enable=YES".into(),
                format!("{SERVICE} mevy start"),
            ]
        );
        assert_eq!(plan.values["restarted"], false);
        assert_eq!(plan.values["user"], "mevy");
        assert_eq!(plan.msg.as_deref(), Some("service mevy updated"));
        let script = &plan.diffs[0];
        assert_eq!(
            (script.before_header.as_str(), script.before.as_str()),
            (SCRIPT, "")
        );
        assert!(
            script.after.contains("HOME=/home/mevy ")
                && script.after.contains("-c /home/mevy 'npm start'"),
            "{}",
            script.after
        );
        assert_eq!(plan.diffs.last().unwrap().after, "running\n");
    }

    #[test]
    fn a_converged_service_changes_nothing() {
        for (args, running) in [
            (json!({}), true),
            (json!({"started": false}), false),
            (
                json!({"env": {"A": "1"}, "system_locale": "sl_SI.UTF-8"}),
                true,
            ),
        ] {
            let plan = ok(args.clone(), &installed(args.clone(), running));
            assert!(plan.describe().is_empty(), "{args}: {:?}", plan.describe());
            assert!(plan.diffs.is_empty(), "{args}");
            assert_eq!(plan.msg.as_deref(), Some("service mevy is up to date"));
        }
    }

    #[test]
    fn drift() {
        // A changed script on a running service: the old one stops it, the new one starts it.
        let plan = ok(json!({"command": "node ."}), &installed(json!({}), true));
        assert_eq!(
            plan.describe(),
            [
                format!("{SERVICE} mevy stop"),
                format!("write {SCRIPT}"),
                format!("{SERVICE} mevy start"),
            ]
        );
        assert_eq!(plan.values["restarted"], true);
        assert_eq!(
            plan.msg.as_deref(),
            Some("service mevy updated and restarted")
        );
        // Only the mode: rewritten, not restarted.
        let mut o = installed(json!({}), true);
        o.script.as_mut().unwrap().mode = 0o755;
        assert_eq!(ok(json!({}), &o).describe(), [format!("write {SCRIPT}")]);
        // Stopped although it should run; running although it should not.
        assert_eq!(
            ok(json!({}), &installed(json!({}), false)).describe(),
            [format!("{SERVICE} mevy start")]
        );
        assert_eq!(
            ok(
                json!({"started": false}),
                &installed(json!({"started": false}), true)
            )
            .describe(),
            [format!("{SERVICE} mevy stop")]
        );
        // Disabling: sysrc; the verbs take the `one` prefix where rc.subr needs it.
        assert_eq!(
            ok(
                json!({"enabled": false, "started": false}),
                &installed(json!({}), true)
            )
            .describe(),
            [
                format!("{SERVICE} mevy stop"),
                "/usr/sbin/sysrc -f /etc/rc.conf mevy_enable=NO".into(),
            ]
        );
        let mut off = installed(json!({}), true);
        off.enable = Some(RcValue::Literal("NO".into()));
        off.rc = RcChain::single(
            Path::new("/etc/rc.conf"),
            RcConf::parse("mevy_enable=\"NO\"\n"),
        );
        assert_eq!(
            ok(json!({"enabled": false, "started": false}), &off).describe(),
            [format!("{SERVICE} mevy onestop")]
        );
        assert_eq!(
            ok(json!({"command": "x"}), &off).describe(),
            [
                format!("{SERVICE} mevy onestop"),
                format!("write {SCRIPT}"),
                "/usr/sbin/sysrc -f /etc/rc.conf mevy_enable=YES".into(),
                format!("{SERVICE} mevy start"),
            ]
        );
    }

    #[test]
    fn a_missing_user_fails_a_real_run_and_is_predicted_in_check_mode() {
        let mut o = host("");
        o.account = None;
        let msg = format!("{:#}", present(json!({}), &o, false).err().unwrap());
        assert_eq!(
            msg,
            "user \"mevy\" does not exist on this host; create it before installing the mevy service"
        );
        let plan = present(json!({}), &o, true).unwrap();
        assert_eq!(
            plan.warnings,
            ["user \"mevy\" does not exist yet; a real run fails unless an earlier task creates it"]
        );
        assert_eq!(plan.describe().len(), 3);
        assert!(plan.diffs[0].after.contains("HOME=/home/mevy "));
    }

    #[test]
    fn absent() {
        let mut plan = Plan::new();
        plan_absent(
            &params(json!({"state": "absent"})),
            &installed(json!({}), true),
            &mut plan,
        )
        .unwrap();
        assert_eq!(
            plan.describe(),
            [
                format!("{SERVICE} mevy stop"),
                format!("remove {SCRIPT}"),
                "/usr/sbin/sysrc -f /etc/rc.conf -x mevy_enable".into(),
            ]
        );
        assert_eq!(plan.msg.as_deref(), Some("service mevy removed"));
        assert_eq!(plan.diffs.last().unwrap().before, "running\n");
        let mut gone = host("");
        gone.account = None;
        gone.owner = None;
        let mut plan = Plan::new();
        plan_absent(&params(json!({"state": "absent"})), &gone, &mut plan).unwrap();
        assert!(!plan.changes());
        assert_eq!(plan.msg.as_deref(), Some("service mevy is absent"));
    }

    #[test]
    fn params_spec_and_docs_agree() {
        warden_testkit::assert_params_agree::<WardenRcd>(include_str!(
            "../../../library/warden_rcd.yml"
        ));
    }
}
