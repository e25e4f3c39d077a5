//! `warden_rcd`: installs a warden agent's rc.d service — `/usr/local/etc/rc.d/<name>`,
//! `<name>_enable` in rc.conf — and keeps it running (or stopped) in its own tmux server
//! with the agent's UTF-8 locales.
//!
//! Shape: validate params → observe (script file, the rc.conf chain the script's
//! `load_rc_config <name>` reads — rc.conf, rc.conf.local, rc.conf.d/<name> — and
//! `service <name> onestatus`, whose answer does not depend on `<name>_enable`: FreeBSD
//! 13.x's rc.subr answers `status` of a disabled service with exit 0) → plan (stop old,
//! write script, sysrc, start + verify) → the runtime reports or applies.
//! A changed script on a running service means a restart: the old script stops the old
//! session (its socket may differ), the new one starts the new session.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod checks;
pub mod script;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Result};
use serde::Deserialize;
use serde_json::json;

use warden_runtime::fs::{self as wfs, Attrs, FileState};
use warden_runtime::plan::{RemoveFile, WriteFile};
use warden_runtime::rcconf::{self, is_yes, RcChain, RcFiles, RcLookup, RcValue};
use warden_runtime::service::{self, StartService, StopService};
use warden_runtime::spec::{Param, Spec};
use warden_runtime::{find_tool, sysrc, Context, Diff, Module, Plan};

use script::ScriptSpec;

/// The module.
pub struct WardenRcd;

/// Validated params (every declared option present; see `library/warden_rcd.yml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub name: String,
    pub state: String,
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
    pub rc_conf: String,
    pub rc_conf_local: String,
    pub rc_conf_d: Vec<String>,
    pub rc_subr: String,
    pub locale_dir: String,
    pub lock_file: String,
    pub lock_timeout: i64,
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
            Param::str("state")
                .choices(&["present", "absent"])
                .default("present"),
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
            Param::path("rc_conf").default(rcconf::RC_CONF),
            Param::path("rc_conf_local").default(rcconf::RC_CONF_LOCAL),
            Param::list_of_str("rc_conf_d").default(json!(rcconf::RC_CONF_D)),
            Param::path("rc_subr").default("/etc/rc.subr"),
            Param::path("locale_dir").default("/usr/share/locale"),
            Param::path("lock_file").default(warden_runtime::lock::DEFAULT_LOCK_FILE),
            Param::int("lock_timeout").default(300),
        ])
    }

    fn plan(params: Params, ctx: &mut Context) -> Result<Plan> {
        checks::validate(&params)?;
        ctx.lock_host(
            Path::new(&params.lock_file),
            Duration::from_secs(params.lock_timeout.max(0) as u64),
        )?;
        let observed = observe(&params)?;
        let mut plan = Plan::new();
        match params.state.as_str() {
            "absent" => plan_absent(&params, &observed, &mut plan)?,
            _ => plan_present(&params, &observed, ctx.check_mode, &mut plan)?,
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
}

impl Observed {
    fn enabled(&self) -> bool {
        matches!(&self.enable, Some(RcValue::Literal(v)) if is_yes(v))
    }
}

fn rcvar(name: &str) -> String {
    format!("{name}_enable")
}

fn observe(params: &Params) -> Result<Observed> {
    let script_path = Path::new(&params.rcd_dir).join(&params.name);
    let script = wfs::read_state(&script_path)?;
    let rc = RcChain::read(
        &RcFiles::new(&params.rc_conf, &params.rc_conf_local, &params.rc_conf_d),
        &[&params.name],
    )?;
    let enable = rc.lookup(&rcvar(&params.name)).cloned();
    // Only a script that exists can say whether it runs.
    let running = match script {
        Some(_) => service::is_running(&find_tool("service")?, &params.name)?,
        None => false,
    };
    Ok(Observed {
        script_path,
        script,
        rc,
        enable,
        running,
    })
}

/// The agent user as the host knows it.
struct Account {
    name: String,
    home: String,
}

fn account(params: &Params, check_mode: bool, plan: &mut Plan) -> Result<Account> {
    let name = params.user.clone().unwrap_or_else(|| params.name.clone());
    match nix::unistd::User::from_name(&name)? {
        Some(user) => Ok(Account {
            home: user.dir.to_string_lossy().into_owned(),
            name,
        }),
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
            params.name
        ),
    }
}

fn script_spec(params: &Params, account: &Account, script_path: &Path) -> ScriptSpec {
    let mut environment: Vec<(String, String)> = vec![
        ("HOME".into(), account.home.clone()),
        ("USER".into(), account.name.clone()),
        ("LOGNAME".into(), account.name.clone()),
        // tmux runs the command with the server's default-shell, taken from SHELL.
        ("SHELL".into(), "/bin/sh".into()),
        ("PATH".into(), params.path.clone()),
        ("LANG".into(), params.system_locale.clone()),
        ("LC_ALL".into(), params.system_locale.clone()),
        ("SYSTEM_LOCALE".into(), params.system_locale.clone()),
    ];
    if let Some(locale) = &params.display_locale {
        environment.push(("DISPLAY_LOCALE".into(), locale.clone()));
    }
    if let Some(locale) = &params.assistant_locale {
        environment.push(("ASSISTANT_LOCALE".into(), locale.clone()));
    }
    for (key, value) in params.env.iter().flatten() {
        environment.retain(|(k, _)| k != key);
        environment.push((key.clone(), value.clone()));
    }
    ScriptSpec {
        name: params.name.clone(),
        description: params
            .description
            .clone()
            .unwrap_or_else(|| format!("warden agent {}", params.name)),
        require: params.require.clone(),
        rc_subr: params.rc_subr.clone(),
        script_path: script_path.to_string_lossy().into_owned(),
        user: account.name.clone(),
        tmux_path: params.tmux_path.clone(),
        tmux_socket: params
            .tmux_socket
            .clone()
            .unwrap_or_else(|| params.name.clone()),
        workdir: params
            .workdir
            .clone()
            .unwrap_or_else(|| account.home.clone()),
        command: params.command.clone().unwrap_or_default(),
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
    params: &Params,
    observed: &Observed,
    check_mode: bool,
    plan: &mut Plan,
) -> Result<()> {
    let account = account(params, check_mode, plan)?;
    let text = script_spec(params, &account, &observed.script_path).render();
    let attrs = Attrs {
        mode: Some(wfs::parse_mode(&params.mode)?),
        uid: Some(wfs::resolve_user(&params.owner)?),
        gid: Some(wfs::resolve_group(&params.group)?),
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
    let enable_differs = params.enabled != was_enabled;
    let restart = observed.running && params.started && content_differs;
    let service_tool = || find_tool("service");

    if observed.running && (!params.started || content_differs) {
        plan.step(StopService {
            service: service_tool()?,
            name: params.name.clone(),
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
            &rcvar(&params.name),
            if params.enabled { "YES" } else { "NO" },
        )?;
    }
    if !rc_changes.is_empty() {
        rc_changes.apply_to(&find_tool("sysrc")?, plan)?;
    }
    if params.started && (!observed.running || content_differs) {
        plan.step(StartService {
            service: service_tool()?,
            name: params.name.clone(),
            enabled: params.enabled,
        });
    }

    plan.diff(Diff::new(
        format!("service {}", params.name),
        state_word(observed.running),
        state_word(params.started),
    ));

    plan.value("name", params.name.clone());
    plan.value("script", observed.script_path.display().to_string());
    plan.value("enabled", params.enabled);
    plan.value("running", params.started);
    plan.value("restarted", restart);
    plan.value("user", account.name);
    plan.msg = Some(match (plan.changes(), restart) {
        (false, _) => format!("service {} is up to date", params.name),
        (true, true) => format!("service {} updated and restarted", params.name),
        (true, false) => format!("service {} updated", params.name),
    });
    Ok(())
}

fn plan_absent(params: &Params, observed: &Observed, plan: &mut Plan) -> Result<()> {
    if observed.running {
        plan.step(StopService {
            service: find_tool("service")?,
            name: params.name.clone(),
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
    rc_changes.delete(&rcvar(&params.name))?;
    if !rc_changes.is_empty() {
        rc_changes.apply_to(&find_tool("sysrc")?, plan)?;
    }
    plan.diff(Diff::new(
        format!("service {}", params.name),
        state_word(observed.running),
        state_word(false),
    ));
    plan.value("name", params.name.clone());
    plan.value("script", observed.script_path.display().to_string());
    plan.value("enabled", false);
    plan.value("running", false);
    plan.value("restarted", false);
    plan.msg = Some(if plan.changes() {
        format!("service {} removed", params.name)
    } else {
        format!("service {} is absent", params.name)
    });
    Ok(())
}
