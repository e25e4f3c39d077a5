//! Running a module: args file → validated params → plan → (check mode: report | apply) →
//! one JSON object on stdout, exit 0 on success and 1 on failure. Every error — a missing or
//! malformed args file, bad params, a failed command, even a panic — ends as failed JSON
//! with the cause chain in `msg`, never a stack trace, never a secret.

use std::any::Any;
use std::ffi::OsString;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, Result};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::args::{read_args_file, Internal};
use crate::lock::HostLock;
use crate::plan::Plan;
use crate::result::{invocation, ModuleResult};
use crate::spec::{validate, Spec};

/// A warden module: declares its params and turns them into a plan.
pub trait Module {
    /// The module name as Ansible knows it (used in messages; never read from argv[0],
    /// because Ansible uploads the binary as `AnsiballZ_<name>`).
    const NAME: &'static str;
    /// The typed params; deserialized from the validated spec values (every declared
    /// parameter present, null when unset).
    type Params: DeserializeOwned;

    fn spec() -> Spec;

    /// Observes the host and plans. Must not change the host: applying is the runtime's job.
    fn plan(params: Self::Params, ctx: &mut Context) -> Result<Plan>;
}

/// What a module may know about the run while planning.
#[derive(Debug, Default)]
pub struct Context {
    pub check_mode: bool,
    pub diff: bool,
    lock: Option<HostLock>,
}

impl Context {
    pub fn new(internal: &Internal) -> Self {
        Context {
            check_mode: internal.check_mode,
            diff: internal.diff,
            lock: None,
        }
    }

    /// Takes the host lock for the rest of the run (observe, plan and apply). In check
    /// mode a missing lock file is not created: check mode leaves the host untouched.
    pub fn lock_host(&mut self, path: &Path, timeout: Duration) -> Result<()> {
        if self.check_mode && !path.exists() {
            return Ok(());
        }
        self.lock = Some(HostLock::acquire(path, timeout)?);
        Ok(())
    }
}

static PANIC_MESSAGE: Mutex<Option<String>> = Mutex::new(None);

/// Entry point for a module binary's `main`.
pub fn run<M: Module>() -> ! {
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
    let spec = M::spec();
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

    let mut ctx = Context::new(&args.internal);
    let mut result = run_plan::<M>(Value::Object(validated.values), &mut ctx);
    report(&mut result, secrets);
    let ok = !matches!(result.get("failed"), Some(Value::Bool(true)));
    (result.to_json(secrets, inv), ok)
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
                (true, _) => format!("would change the host ({} step(s))", commands.len().max(1)),
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
