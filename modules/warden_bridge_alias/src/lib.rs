//! `warden_bridge_alias`: the shared agent bridge (`warden0`) and the host's gateway address
//! for each agent /24 on it — at runtime (`ifconfig`) and persisted in rc.conf (`sysrc`).
//!
//! Shape (issue 16): params → [`Settings`] ([`checks::settings`], every problem at once) →
//! [`observe::observe`] reads the host once (`ifconfig -a`, the rc.conf chain rc.d/netif
//! reads) → [`plan::plan`], pure: check the
//! requested addresses against everything the host holds, then create/up the bridge,
//! add/remove aliases, one sysrc call per file for the rc.conf changes → the runtime reports
//! or applies it, undoing completed steps if a later one fails. ifconfig's command forms and
//! its status reader are the runtime's (`warden_runtime::ifconfig`).
//!
//! FreeBSD facts used (docs/freebsd-facts.md §1–2 and §8; freebsd/freebsd-src
//! libexec/rc/rc.d/netif, libexec/rc/network.subr at 03ccfdd2, libexec/rc/rc.subr):
//! * a bridge is cloned as `bridgeN` and renamed; at boot rc.d/netif creates every word of
//!   `cloned_interfaces` (`clone_up`) and then applies `ifconfig_<clone>_name` — keyed by the
//!   clone's name — (`ifnet_rename`), while addresses are keyed by the new name
//!   (`ifconfig_warden0…`);
//! * clone units stay with an interface when it is renamed (sys/net/if_clone.c), so the
//!   runtime bridge is made on a unit the kernel picks (`ifconfig bridge create name X`),
//!   never on a unit guessed from interface names;
//! * netif reads rc.conf as a chain (`load_rc_config network`, then `netif`): rc.conf,
//!   rc.conf.local, rc.conf.d/network, rc.conf.d/netif; each variable is read and written
//!   where its effective assignment lives;
//! * with `network_interfaces` set to a list (not `AUTO`), netif configures only the listed
//!   names plus `cloned_interfaces` — the clone's pre-rename name — so the bridge's name is
//!   added to that list, or its addresses would not come back at boot (`list_net_interfaces`);
//! * re-adding an address the interface already has succeeds silently, so idempotence
//!   comes from observing first;
//! * older network.subr stops reading `ifconfig_<if>_aliasN` at the first gap, so removals
//!   renumber the aliases and never leave one.

pub mod checks;
pub mod observe;
pub mod plan;

use anyhow::Result;
use serde::Deserialize;

use warden_runtime::spec::{Param, Spec, State};
use warden_runtime::{Context, Module, Plan};

pub use checks::Settings;
pub use observe::{Observed, Tools};

pub struct WardenBridgeAlias;

/// The params as the spec delivers them (see `library/warden_bridge_alias.yml`; the rc.conf
/// chain and the host lock come as `ctx.host()`); [`checks::settings`] validates them into
/// [`Settings`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub bridge: String,
    pub addresses: Vec<String>,
    pub state: State,
    pub exclusive: bool,
    pub persist: bool,
    pub create: bool,
    pub allow_public: bool,
}

impl Module for WardenBridgeAlias {
    const NAME: &'static str = "warden_bridge_alias";
    type Params = Params;

    fn spec() -> Spec {
        Spec::new(vec![
            Param::str("bridge").default("warden0"),
            Param::list_of_str("addresses")
                .required()
                .aliases(&["address"]),
            Param::choice::<State>("state").default(State::Present),
            Param::bool("exclusive").default(false),
            Param::bool("persist").default(true),
            Param::bool("create").default(true),
            Param::bool("allow_public").default(false),
        ])
    }

    fn plan(params: Params, ctx: &mut Context) -> Result<Plan> {
        let settings = checks::settings(&params)?;
        ctx.lock_host()?;
        let observed = observe::observe(ctx.host())?;
        plan::plan(&settings, &observed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_spec_and_docs_agree() {
        warden_testkit::assert_params_agree::<WardenBridgeAlias>(include_str!(
            "../../../library/warden_bridge_alias.yml"
        ));
    }
}
