//! `warden_vm`: one bhyve guest managed with vm-bhyve (freebsd/vm-bhyve 1.6, 1.7, 1.8-devel),
//! run on the bhyve host: created from a template with its cloud-init seed (the user Ansible
//! logs in as, its keys, a doas or sudo rule, a static address), started, stopped, changed
//! (`<name>.conf` edited in place) and destroyed — each action followed by a bounded wait for
//! what `vm list` shows.
//!
//! Shape (issue 16): [`checks::settings`] turns the params into [`Settings`] reporting every
//! problem at once; [`observe::observe`] reads the host once (`vm version`, `vm list`, vm-bhyve's
//! own files); [`plan::plan`] is pure — `(&Settings, &Observed) -> VmPlan` — and
//! [`steps::runtime_plan`] turns its actions into runtime steps that verify themselves.
//! vm-bhyve's command forms and output readers live in `warden_runtime::vm_bhyve`; the facts
//! behind them, with tags and files, in `docs/vm-bhyve-facts.md`.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod checks;
pub mod observe;
pub mod plan;
pub mod steps;

use anyhow::Result;
use serde::Deserialize;
use serde_json::json;

use warden_runtime::spec::{Kind, Param, Spec};
use warden_runtime::{Context, Module, Plan};

pub use checks::{Image, Privilege, Seed, Settings};
pub use observe::{Guest, Observed, Tools};
pub use plan::{Action, VmPlan};

/// The module.
pub struct WardenVm;

/// What the guest should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Exists (created if missing); running or not is left as it is.
    Present,
    Running,
    Stopped,
    Absent,
}

impl State {
    pub fn word(&self) -> &'static str {
        match self {
            State::Present => "present",
            State::Running => "running",
            State::Stopped => "stopped",
            State::Absent => "absent",
        }
    }
}

/// The params as the spec delivers them (see `library/warden_vm.yml`); [`checks::settings`]
/// validates them into [`Settings`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub name: String,
    pub state: State,
    pub template: String,
    pub cpus: Option<i64>,
    pub memory: Option<String>,
    pub disk_size: Option<String>,
    pub image: Option<String>,
    pub switch: Option<String>,
    pub datastore: String,
    pub tags: Option<Vec<String>>,
    pub config: Option<std::collections::BTreeMap<String, String>>,
    pub cloud_init: Option<bool>,
    pub user: Option<String>,
    pub authorized_keys: Vec<String>,
    pub privilege: Option<Privilege>,
    pub address: Option<String>,
    pub gateway: Option<String>,
    pub nameservers: Vec<String>,
    pub search_domains: Vec<String>,
    pub hostname: Option<String>,
    pub interface: String,
    pub restart: bool,
    pub wait_timeout: String,
    pub stop_timeout: String,
    pub vm_dir: Option<String>,
    pub rc_conf: String,
    pub lock_file: String,
    pub lock_timeout: String,
}

/// The module's parameters, in the order of the docs.
pub fn spec() -> Spec {
    Spec::new(vec![
        Param::str("name").required(),
        Param::str("state")
            .choices(&["present", "running", "stopped", "absent"])
            .default("present"),
        Param::str("template").default("default"),
        Param::int("cpus"),
        Param::str("memory"),
        Param::str("disk_size"),
        Param::str("image"),
        Param::str("switch"),
        Param::str("datastore").default("default"),
        Param::list_of_str("tags"),
        Param::dict_of_str("config"),
        Param::bool("cloud_init"),
        Param::str("user"),
        Param::list_of_str("authorized_keys").default(json!([])),
        Param::str("privilege").choices(&["none", "doas", "sudo"]),
        Param::str("address"),
        Param::str("gateway"),
        Param::list_of_str("nameservers").default(json!([])),
        Param::list_of_str("search_domains").default(json!([])),
        Param::str("hostname"),
        Param::str("interface").default("vtnet0"),
        Param::bool("restart").default(false),
        // Durations: seconds, or a number with s, m or h.
        Param::new("wait_timeout", Kind::Str).default("120"),
        Param::new("stop_timeout", Kind::Str).default("60"),
        Param::path("vm_dir"),
        Param::path("rc_conf").default("/etc/rc.conf"),
        Param::path("lock_file").default(warden_runtime::lock::DEFAULT_LOCK_FILE),
        Param::new("lock_timeout", Kind::Str).default("300"),
    ])
}

impl Module for WardenVm {
    const NAME: &'static str = "warden_vm";
    type Params = Params;

    fn spec() -> Spec {
        spec()
    }

    fn plan(params: Params, ctx: &mut Context) -> Result<Plan> {
        let settings = checks::settings(&params)?;
        ctx.lock_host(&settings.lock_file, settings.lock_timeout)?;
        let observed = observe::observe(&settings)?;
        let vm_plan = plan::plan(&settings, &observed)?;
        Ok(steps::runtime_plan(vm_plan, &settings, &observed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sidecar docs, the spec and the params struct name the same options with the same
    /// defaults and choices.
    #[test]
    fn spec_params_and_docs_agree() {
        let docs = include_str!("../../../library/warden_vm.yml");
        let options = docs
            .split("\n  options:\n")
            .nth(1)
            .and_then(|rest| rest.split("\n  attributes:").next())
            .unwrap();
        let documented: Vec<&str> = options
            .lines()
            .filter(|l| l.starts_with("    ") && !l.starts_with("     ") && l.ends_with(':'))
            .map(|l| l.trim().trim_end_matches(':'))
            .collect();
        let spec = spec();
        // The docs cover what the runtime adds too (trusted_links, tool_timeout).
        let full = warden_runtime::runtime::full_spec::<WardenVm>();
        let names: Vec<&str> = full.params.iter().map(|p| p.name).collect();
        assert_eq!(documented, names);
        // every spec param deserializes into Params
        let mut values = serde_json::Map::new();
        for p in &spec.params {
            values.insert(
                p.name.to_string(),
                p.default.clone().unwrap_or(serde_json::Value::Null),
            );
        }
        values.insert("name".into(), json!("vm01"));
        let params: Params = serde_json::from_value(serde_json::Value::Object(values)).unwrap();
        assert_eq!(params.state, State::Present);
        for p in &full.params {
            let block = options
                .split(&format!("\n    {}:\n", p.name))
                .nth(1)
                .or_else(|| options.strip_prefix(&format!("    {}:\n", p.name)))
                .unwrap_or_else(|| panic!("{} undocumented", p.name));
            let block: String = block
                .lines()
                .take_while(|l| l.starts_with("      "))
                .collect::<Vec<_>>()
                .join("\n");
            if let Some(default) = &p.default {
                let shown = match default {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let line = block
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("default: "))
                    .unwrap_or_else(|| panic!("{} has no documented default", p.name));
                assert_eq!(line.trim_matches('"'), shown, "default of {}", p.name);
            }
            if !p.choices.is_empty() {
                let line = block
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("choices: "))
                    .unwrap_or_else(|| panic!("{} has no documented choices", p.name));
                assert_eq!(
                    line,
                    format!("[{}]", p.choices.join(", ")),
                    "choices of {}",
                    p.name
                );
            }
        }
    }
}
