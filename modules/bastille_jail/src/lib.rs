//! `bastille_jail`: one VNET service jail of an agent on the shared bridge, managed through
//! Bastille and verified after every mutating step, because Bastille's exit codes cannot be
//! trusted (see the runtime's `bastille` file).
//!
//! Shape (issue 16): params → [`Settings`] ([`checks::settings`], every problem at once) →
//! [`observe::observe`] reads the host once (`bastille -v`, `jls name`, the jail's files
//! under the prefix, read without following links, and, in a running jail, `pkg query %n`
//! and `service S onestatus` through `jexec`; for a new jail `ifconfig -g bridge` and what
//! `bastille bootstrap` would ask) → [`plan::plan`], pure:
//! create (or bootstrap + create), correct drift in the jail's rc.conf (the host's sysrc on a
//! private copy, written back link-safe), start or stop, install missing packages, set
//! rc.conf values, start services → the runtime reports or applies it. Bastille's command
//! forms and behaviour per version are in the runtime's `bastille` file and
//! `docs/bastille-facts.md`.

pub mod checks;
pub mod observe;
pub mod plan;

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Deserialize;

use warden_runtime::spec::{Param, Spec};
use warden_runtime::{choices, Context, Module, Plan};

pub use checks::Settings;
pub use observe::{Jail, Observed, OtherJail, Tools};

pub struct BastilleJail;

choices! {
    /// What the jail should be.
    pub enum JailState {
        /// Exists (created if missing); running or not is left as it is, and a new jail starts.
        Present = "present",
        Started = "started",
        Stopped = "stopped",
        Absent = "absent",
    }
}

/// The params as the spec delivers them (see `library/bastille_jail.yml`; the host's rc.conf
/// chain and the host lock come as `ctx.host()`); [`checks::settings`] validates them into
/// [`Settings`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub name: String,
    pub release: Option<String>,
    pub ip: Option<String>,
    pub bridge: String,
    pub gateway: Option<String>,
    pub state: JailState,
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
}

impl Module for BastilleJail {
    const NAME: &'static str = "bastille_jail";
    // `bastille pkg <jail> install` downloads packages (and pkg itself, in a fresh jail):
    // minutes on a slow mirror, where the other modules' tools take seconds.
    const TOOL_TIMEOUT: u32 = 600;
    type Params = Params;

    fn spec() -> Spec {
        Spec::new(vec![
            Param::str("name").required(),
            Param::str("release"),
            Param::str("ip"),
            Param::str("bridge").default("warden0"),
            Param::str("gateway"),
            Param::choice::<JailState>("state").default(JailState::Started),
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
        ])
    }

    fn plan(params: Params, ctx: &mut Context) -> Result<Plan> {
        let settings = checks::settings(&params)?;
        ctx.lock_host()?;
        let observed = observe::observe(&settings, ctx.host())?;
        plan::plan(&settings, &observed, ctx.check_mode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_spec_and_docs_agree() {
        warden_testkit::assert_params_agree::<BastilleJail>(include_str!(
            "../../../library/bastille_jail.yml"
        ));
    }
}
