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

pub mod checks;
pub mod observe;
pub mod plan;
pub mod steps;

use std::time::Duration;

use anyhow::Result;
use serde::Deserialize;
use serde_json::json;

use warden_runtime::spec::{Param, Spec};
use warden_runtime::{choices, Context, Module, Plan};

pub use checks::{Image, Privilege, Seed, Settings};
pub use observe::{Guest, Observed, Tools};
pub use plan::{Action, VmPlan};

/// The module.
pub struct WardenVm;

choices! {
    /// What the guest should be.
    pub enum State {
        /// Exists (created if missing); running or not is left as it is.
        Present = "present",
        Running = "running",
        Stopped = "stopped",
        Absent = "absent",
    }
}

/// The longest wait for a guest to start or stop: a day.
const MAX_WAIT: u32 = 86_400;

/// The params as the spec delivers them (see `library/warden_vm.yml`; the rc.conf chain that
/// holds `vm_dir` and the host lock come as `ctx.host()`); [`checks::settings`] validates
/// them into [`Settings`].
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
    #[serde(deserialize_with = "warden_runtime::spec::seconds")]
    pub wait_timeout: Duration,
    #[serde(deserialize_with = "warden_runtime::spec::seconds")]
    pub stop_timeout: Duration,
    pub vm_dir: Option<String>,
}

/// The module's parameters, in the order of the docs.
pub fn spec() -> Spec {
    Spec::new(vec![
        Param::str("name").required(),
        Param::choice::<State>("state").default(State::Present),
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
        Param::choice::<Privilege>("privilege"),
        Param::str("address"),
        Param::str("gateway"),
        Param::list_of_str("nameservers").default(json!([])),
        Param::list_of_str("search_domains").default(json!([])),
        Param::str("hostname"),
        Param::str("interface").default("vtnet0"),
        Param::bool("restart").default(false),
        Param::duration("wait_timeout", 1, MAX_WAIT).default(120),
        Param::duration("stop_timeout", 1, MAX_WAIT).default(60),
        Param::path("vm_dir"),
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
        ctx.lock_host()?;
        let observed = observe::observe(&settings, ctx.host())?;
        let vm_plan = plan::plan(&settings, &observed)?;
        Ok(steps::runtime_plan(vm_plan, &settings, &observed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_spec_and_docs_agree() {
        warden_testkit::assert_params_agree::<WardenVm>(include_str!(
            "../../../library/warden_vm.yml"
        ));
    }
}
