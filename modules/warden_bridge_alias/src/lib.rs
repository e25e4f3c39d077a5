//! `warden_bridge_alias`: the shared agent bridge (`warden0`) and the host's gateway address
//! for each agent /24 on it — at runtime (`ifconfig`) and persisted in rc.conf (`sysrc`).
//!
//! Shape (issue 16): [`parse_request`] → [`observe::observe`] reads the host once
//! (`ifconfig -a`, the rc.conf chain rc.d/netif reads) → [`plan::plan`], pure: check the
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
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod observe;
pub mod plan;

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Result};
use ipnet::Ipv4Net;
use serde::Deserialize;
use serde_json::json;

use warden_layout::rules;
use warden_runtime::ifconfig;
use warden_runtime::ipv4;
use warden_runtime::rcconf;
use warden_runtime::spec::{Param, Spec};
use warden_runtime::{Context, Module, Plan};

pub use observe::{Observed, Tools};

pub struct WardenBridgeAlias;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub bridge: String,
    pub addresses: Vec<String>,
    pub state: String,
    pub exclusive: bool,
    pub persist: bool,
    pub create: bool,
    pub allow_public: bool,
    pub rc_conf: String,
    pub rc_conf_local: String,
    pub rc_conf_d: Vec<String>,
    pub lock_file: String,
    pub lock_timeout: i64,
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
            Param::str("state")
                .choices(&["present", "absent"])
                .default("present"),
            Param::bool("exclusive").default(false),
            Param::bool("persist").default(true),
            Param::bool("create").default(true),
            Param::bool("allow_public").default(false),
            Param::path("rc_conf").default(rcconf::RC_CONF),
            Param::path("rc_conf_local").default(rcconf::RC_CONF_LOCAL),
            Param::list_of_str("rc_conf_d").default(json!(rcconf::RC_CONF_D)),
            Param::path("lock_file").default(warden_runtime::lock::DEFAULT_LOCK_FILE),
            Param::int("lock_timeout").default(300),
        ])
    }

    fn plan(params: Params, ctx: &mut Context) -> Result<Plan> {
        let requested = parse_request(&params)?;
        ctx.lock_host(
            Path::new(&params.lock_file),
            Duration::from_secs(params.lock_timeout.max(0) as u64),
        )?;
        let observed = observe::observe(&params)?;
        plan::plan(&params, &requested, &observed)
    }
}

/// Parses and checks the requested addresses on their own (before looking at the host).
fn parse_request(params: &Params) -> Result<Vec<Ipv4Net>> {
    let mut problems = Vec::new();
    if let Err(problem) = ifconfig::check_name("bridge", &params.bridge) {
        problems.push(problem);
    }
    let mut requested: Vec<Ipv4Net> = Vec::new();
    for text in &params.addresses {
        let net = match ipv4::parse_cidr(text.trim()) {
            Ok(net) => net,
            Err(e) => {
                problems.push(e.to_string());
                continue;
            }
        };
        if let Err(e) = ipv4::check_host_address(&net) {
            problems.push(e.to_string());
        }
        if let Err(problem) = rules::check_private(net, &net, params.allow_public) {
            problems.push(problem);
        }
        if requested.contains(&net) {
            continue;
        }
        if let Some(other) = requested.iter().find(|o| ipv4::overlaps(o, &net)) {
            problems.push(format!(
                "{net} and {other} overlap; each agent needs its own subnet"
            ));
        }
        requested.push(net);
    }
    if problems.is_empty() {
        Ok(requested)
    } else {
        bail!("{}", problems.join("; "))
    }
}
