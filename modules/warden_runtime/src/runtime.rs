//! Running a module: args file → validated params → plan → (check mode: report | apply) →
//! one JSON object on stdout, exit 0 on success and 1 on failure. Every error — a missing or
//! malformed args file, bad params, a failed command, even a panic — ends as failed JSON
//! with the cause chain in `msg`, never a stack trace, never a secret.
//!
//! The runtime adds the parameters modules share to each spec, declared once (see
//! [`shared_params`]): `trusted_links` (the symbolic links the file layer may follow),
//! `tool_timeout` for modules that run host tools (every command of the run gets that
//! deadline), and the [`Host`] parameters (rc.conf chain, host lock) for modules that work
//! on the host. It validates them with the module's own, applies the first two to the run,
//! and hands the host parameters to the module as `ctx.host()`; the module's params struct
//! holds only its own. A module with a `no_log` parameter holds secrets: before it reads its
//! args the runtime sets `RLIMIT_CORE` to 0, so no core dump of it ever holds them.

use std::any::Any;
use std::ffi::OsString;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, Context as _, Result};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::args::{read_args_file, Internal};
use crate::host::Host;
use crate::lock::HostLock;
use crate::plan::Plan;
use crate::result::{invocation, ModuleResult};
use crate::spec::{validate, Param, Spec};

/// A warden module: declares its params and turns them into a plan.
pub trait Module {
    /// The module name as Ansible knows it (used in messages; never read from argv[0],
    /// because Ansible uploads the binary as `AnsiballZ_<name>`).
    const NAME: &'static str;
    /// The typed params; deserialized from the validated spec values (every declared
    /// parameter present, null when unset).
    type Params: DeserializeOwned;

    /// The module's own parameters (the runtime adds [`shared_params`]).
    fn spec() -> Spec;

    /// Whether the module runs host tools (then it gets `tool_timeout`).
    const RUNS_TOOLS: bool = true;
    /// The default of `tool_timeout`, in seconds.
    const TOOL_TIMEOUT: u32 = crate::exec::DEFAULT_TOOL_TIMEOUT.as_secs() as u32;
    /// Whether the module works on the host (then it gets the [`Host`] parameters).
    const HOST: bool = true;

    /// Observes the host and plans. Must not change the host: applying is the runtime's job.
    fn plan(params: Self::Params, ctx: &mut Context) -> Result<Plan>;
}

/// What a module may know about the run while planning.
#[derive(Debug, Default)]
pub struct Context {
    pub check_mode: bool,
    pub diff: bool,
    host: Host,
    lock: Option<HostLock>,
}

impl Context {
    pub fn new(internal: &Internal, host: Host) -> Self {
        Context {
            check_mode: internal.check_mode,
            diff: internal.diff,
            host,
            lock: None,
        }
    }

    /// The host parameters (FreeBSD's defaults for a module without [`Module::HOST`]).
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// Takes the host lock (`lock_file`, waiting at most `lock_timeout`) for the rest of the
    /// run (observe, plan and apply). In check mode a missing lock file is not created: check
    /// mode leaves the host untouched.
    pub fn lock_host(&mut self) -> Result<()> {
        let path = &self.host.lock_file;
        if self.check_mode && !path.exists() {
            return Ok(());
        }
        self.lock = Some(HostLock::acquire(path, self.host.lock_timeout)?);
        Ok(())
    }
}

static PANIC_MESSAGE: Mutex<Option<String>> = Mutex::new(None);

/// The longest `tool_timeout`: a day.
pub const MAX_TOOL_TIMEOUT: u32 = 86_400;

/// The parameters the runtime adds to module `M`'s spec: `trusted_links`, `tool_timeout`
/// when it runs tools, the [`Host`] parameters when it works on the host.
pub fn shared_params<M: Module>() -> Vec<Param> {
    let mut shared = Vec::new();
    if M::HOST {
        shared.extend(Host::params());
    }
    shared.push(Param::list_of_paths("trusted_links").default(json!([])));
    if M::RUNS_TOOLS {
        shared.push(Param::duration("tool_timeout", 1, MAX_TOOL_TIMEOUT).default(M::TOOL_TIMEOUT));
    }
    shared
}

/// The module's spec with the parameters the runtime adds.
pub fn full_spec<M: Module>() -> Spec {
    let mut spec = M::spec();
    spec.params.extend(shared_params::<M>());
    spec
}

/// Whether a module holds secrets (it has a `no_log` parameter).
pub fn holds_secrets(spec: &Spec) -> bool {
    spec.params.iter().any(|p| p.no_log)
}

/// No core dumps from here on (and none from the tools this process runs): a core of a
/// module holding a password would hold the password. `setrlimit(RLIMIT_CORE, 0, 0)`, the
/// same call on FreeBSD and Linux.
pub fn disable_core_dumps() -> Result<()> {
    use nix::sys::resource::{setrlimit, Resource};
    setrlimit(Resource::RLIMIT_CORE, 0, 0).context("cannot disable core dumps")
}

/// Entry point for a module binary's `main`.
pub fn run<M: Module>() -> ! {
    if holds_secrets(&M::spec()) {
        if let Err(e) = disable_core_dumps() {
            println!("{}", ModuleResult::from_error(&e, false).to_json(&[], None));
            std::process::exit(1);
        }
    }
    // Record the panic text instead of printing it: stdout must carry only our JSON.
    panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let text = panic_text(info.payload());
        if let Ok(mut slot) = PANIC_MESSAGE.lock() {
            *slot = Some(format!("{text}{location}"));
        }
    }));
    let argv: Vec<OsString> = std::env::args_os().collect();
    let mut secrets = Vec::new();
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| execute::<M>(&argv, &mut secrets)));
    let (json, ok) = match outcome {
        Ok(output) => output,
        Err(payload) => {
            let message = PANIC_MESSAGE
                .lock()
                .ok()
                .and_then(|mut slot| slot.take())
                .unwrap_or_else(|| panic_text(payload.as_ref()));
            let result = ModuleResult::failure(
                format!("internal error in module {}: {message}", M::NAME),
                false,
            );
            (result.to_json(&secrets, None), false)
        }
    };
    println!("{json}");
    std::process::exit(if ok { 0 } else { 1 });
}

fn panic_text(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_string())
}

/// Runs a module from argv to (result JSON, success). `secrets` receives the `no_log`
/// values as soon as they are known, so even a later panic is scrubbed.
pub fn execute<M: Module>(argv: &[OsString], secrets: &mut Vec<String>) -> (String, bool) {
    let Some(args_path) = argv.get(1) else {
        let msg = format!(
            "no args file given: Ansible runs a binary module as `{} <tmpdir>/args`",
            M::NAME
        );
        return (ModuleResult::failure(msg, false).to_json(&[], None), false);
    };
    let args = match read_args_file(Path::new(args_path)) {
        Ok(args) => args,
        Err(e) => {
            return (
                ModuleResult::from_error(&e, false).to_json(&[], None),
                false,
            )
        }
    };
    let spec = full_spec::<M>();
    let no_log_names: Vec<&str> = spec
        .params
        .iter()
        .filter(|p| p.no_log)
        .flat_map(|p| std::iter::once(p.name).chain(p.aliases.iter().copied()))
        .collect();
    // Secrets are scrubbed even when validation fails.
    for name in &no_log_names {
        if let Some(Value::String(s)) = args.params.get(*name) {
            secrets.push(s.clone());
        }
    }
    let want_invocation = args.internal.inject_invocation.unwrap_or(true);
    // Every no_log value is also reported to a controller that masks module-reported
    // secrets (ansible-core 2.22+): warden_db's passwords, warden_env's secret_values.
    let report = |result: &mut ModuleResult, secrets: &[String]| {
        if args.internal.takes_new_secrets() {
            result.report_secrets(secrets);
        }
    };
    let validated = match validate(
        M::NAME,
        &spec,
        &args.params,
        args.internal.ignore_unknown_opts,
    ) {
        Ok(v) => v,
        Err(e) => {
            let inv = want_invocation.then(|| invocation(&args.params, &no_log_names));
            let mut result = ModuleResult::failure(e.to_string(), false);
            report(&mut result, secrets);
            return (result.to_json(secrets, inv), false);
        }
    };
    secrets.extend(validated.secrets.iter().cloned());
    let inv = want_invocation.then(|| invocation(&validated.values, &no_log_names));
    let mut values = validated.values;
    let mut result = match take_shared::<M>(&mut values) {
        Ok(host) => run_plan::<M>(
            Value::Object(values),
            &mut Context::new(&args.internal, host),
        ),
        Err(e) => ModuleResult::from_error(&e, false),
    };
    report(&mut result, secrets);
    let ok = !matches!(result.get("failed"), Some(Value::Bool(true)));
    (result.to_json(secrets, inv), ok)
}

/// Takes the [`shared_params`] out of the values (the module's params struct does not know
/// them): `tool_timeout` and `trusted_links` apply to the whole run, the host parameters
/// become the run's [`Host`].
fn take_shared<M: Module>(values: &mut serde_json::Map<String, Value>) -> Result<Host> {
    if let Some(secs) = values.remove("tool_timeout").and_then(|v| v.as_u64()) {
        crate::exec::set_default_timeout(Duration::from_secs(secs));
    }
    let links: Vec<PathBuf> =
        serde_json::from_value(values.remove("trusted_links").unwrap_or_default())
            .unwrap_or_default();
    crate::fs::set_trusted_links(links);
    if M::HOST {
        Host::take(values)
    } else {
        Ok(Host::default())
    }
}

fn run_plan<M: Module>(values: Value, ctx: &mut Context) -> ModuleResult {
    let params: M::Params = match serde_json::from_value(values).map_err(|e| {
        anyhow!(
            "internal error: the params of {} do not match its spec: {e}",
            M::NAME
        )
    }) {
        Ok(p) => p,
        Err(e) => return ModuleResult::from_error(&e, false),
    };
    let mut plan = match M::plan(params, ctx) {
        Ok(plan) => plan,
        Err(e) => return ModuleResult::from_error(&e, false),
    };
    let changed = plan.changes();
    let commands = plan.commands();
    let mut result = if ctx.check_mode || !changed {
        let msg = plan
            .msg
            .clone()
            .unwrap_or_else(|| match (changed, ctx.check_mode) {
                (false, _) => "already in the desired state".to_string(),
                (true, _) => format!("would change the host ({} step(s))", commands.len()),
            });
        ModuleResult::success(changed, msg)
    } else {
        match plan.apply() {
            Ok(()) => ModuleResult::success(
                true,
                plan.msg.clone().unwrap_or_else(|| "changed".to_string()),
            ),
            Err(e) => {
                let mut failed = ModuleResult::from_error(&e.error, e.host_changed);
                failed.set(
                    "msg",
                    format!("{} failed at `{}`: {}", M::NAME, e.failed_step, e.message()),
                );
                failed
            }
        }
    };
    result.set("commands", commands);
    if ctx.diff && !plan.diffs.is_empty() {
        let diffs: Vec<Value> = plan.diffs.iter().map(|d| d.to_json()).collect();
        result.set("diff", Value::Array(diffs));
    }
    if !plan.warnings.is_empty() {
        result.set("warnings", plan.warnings.clone());
    }
    // Return values describe the host after a successful run; a failed one says only why.
    if result.get("failed") == Some(&Value::Bool(false)) {
        result.extend(std::mem::take(&mut plan.values));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    struct Tools;
    struct NoTools;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Params {
        name: String,
    }

    impl Module for Tools {
        const NAME: &'static str = "tools";
        type Params = Params;
        fn spec() -> Spec {
            Spec::new(vec![Param::str("name").required()])
        }
        fn plan(params: Params, _ctx: &mut Context) -> Result<Plan> {
            let mut plan = Plan::new();
            plan.value("name", params.name);
            plan.value(
                "timeout_ms",
                crate::exec::default_timeout().as_millis() as u64,
            );
            Ok(plan)
        }
    }

    impl Module for NoTools {
        const NAME: &'static str = "no_tools";
        const RUNS_TOOLS: bool = false;
        const HOST: bool = false;
        type Params = Params;
        fn spec() -> Spec {
            Spec::new(vec![
                Param::str("name").required(),
                Param::str("password").no_log(),
            ])
        }
        fn plan(_params: Params, _ctx: &mut Context) -> Result<Plan> {
            Ok(Plan::new())
        }
    }

    fn names(spec: &Spec) -> Vec<&'static str> {
        spec.params.iter().map(|p| p.name).collect()
    }

    #[test]
    fn the_runtime_adds_its_parameters() {
        assert_eq!(
            names(&full_spec::<Tools>()),
            [
                "name",
                "rc_conf",
                "rc_conf_local",
                "rc_conf_d",
                "lock_file",
                "lock_timeout",
                "trusted_links",
                "tool_timeout"
            ]
        );
        assert_eq!(
            names(&full_spec::<NoTools>()),
            ["name", "password", "trusted_links"]
        );
    }

    #[test]
    fn tool_timeout_reaches_every_command_and_leaves_the_params_struct_alone() {
        let dir = tempfile::tempdir().unwrap();
        let args = dir.path().join("args");
        std::fs::write(&args, r#"{"name": "x", "tool_timeout": 7}"#).unwrap();
        let (json, ok) = execute::<Tools>(&["m".into(), args.into()], &mut Vec::new());
        assert!(ok, "{json}");
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["timeout_ms"], 7000);
        assert_eq!(v["invocation"]["module_args"]["tool_timeout"], 7);
        crate::exec::set_default_timeout(crate::exec::DEFAULT_TOOL_TIMEOUT);
    }

    struct Writes;

    impl Module for Writes {
        const NAME: &'static str = "writes";
        const HOST: bool = false;
        type Params = Params;
        fn spec() -> Spec {
            Spec::new(vec![Param::str("name").required()])
        }
        fn plan(params: Params, _ctx: &mut Context) -> Result<Plan> {
            let mut plan = Plan::new();
            plan.step(crate::plan::WriteFile {
                path: PathBuf::from(&params.name).join("a"),
                content: b"a".to_vec(),
                attrs: Default::default(),
                previous: None,
            });
            plan.step(crate::plan::WriteFile {
                path: PathBuf::from(&params.name).join("b"),
                content: b"b".to_vec(),
                attrs: Default::default(),
                previous: None,
            });
            plan.run(crate::Cmd::new("/bin/true"));
            Ok(plan)
        }
    }

    /// "would change the host (N steps)" counted only steps that ran a command, so a run
    /// that writes two files and runs one tool said 1, and the writes were missing from
    /// `commands`.
    #[test]
    fn would_change_counts_file_writes_like_commands() {
        let dir = tempfile::tempdir().unwrap();
        let args = dir.path().join("args");
        let target = dir.path().join("t");
        std::fs::write(
            &args,
            json!({"name": target, "_ansible_check_mode": true}).to_string(),
        )
        .unwrap();
        let (json, ok) = execute::<Writes>(&["m".into(), args.into()], &mut Vec::new());
        assert!(ok, "{json}");
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["msg"], "would change the host (3 step(s))");
        assert_eq!(
            v["commands"],
            json!([
                format!("write {}", target.join("a").display()),
                format!("write {}", target.join("b").display()),
                "/bin/true"
            ])
        );
        assert!(!target.exists());
    }

    #[test]
    fn a_zero_tool_timeout_is_refused_with_the_other_problems() {
        let dir = tempfile::tempdir().unwrap();
        let args = dir.path().join("args");
        std::fs::write(
            &args,
            r#"{"tool_timeout": 0, "trusted_links": ["/a/../b"]}"#,
        )
        .unwrap();
        let (json, ok) = execute::<Tools>(&["m".into(), args.clone().into()], &mut Vec::new());
        assert!(!ok);
        let msg = serde_json::from_str::<Value>(&json).unwrap()["msg"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(msg.contains("missing required arguments: name"), "{msg}");
        assert!(
            msg.contains("value of tool_timeout must be between 1 and 86400 seconds, got: 0"),
            "{msg}"
        );
        assert!(
            msg.contains("argument 'trusted_links'") && msg.contains("`..`"),
            "{msg}"
        );
        std::fs::write(&args, r#"{"name": "x", "tool_timeout": 5}"#).unwrap();
        let (json, _) = execute::<NoTools>(&["m".into(), args.into()], &mut Vec::new());
        assert!(
            json.contains("Unsupported parameters for (no_tools) module: tool_timeout"),
            "{json}"
        );
    }

    #[test]
    fn modules_with_secrets_dump_no_core() {
        assert!(holds_secrets(&NoTools::spec()));
        assert!(!holds_secrets(&Tools::spec()));
        disable_core_dumps().unwrap();
        assert_eq!(
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_CORE).unwrap(),
            (0, 0)
        );
    }
}
