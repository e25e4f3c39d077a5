//! `bastille_jail`: one VNET service jail of an agent on the shared bridge, managed through
//! Bastille and verified after every mutating step, because Bastille's exit codes cannot be
//! trusted (see the runtime's `bastille` file).
//!
//! Shape (issue 16): [`validate`] → [`observe::observe`] reads the host once (`bastille -v`,
//! `jls name`, the jail's files under the prefix, read without following links, and, in a
//! running jail, `pkg query %n` and `service S onestatus` through `jexec`; for a new jail
//! `ifconfig -g bridge` and what `bastille bootstrap` would ask) → [`plan::plan`], pure:
//! create (or bootstrap + create), correct drift in the jail's rc.conf (the host's sysrc on a
//! private copy, written back link-safe), start or stop, install missing packages, set
//! rc.conf values, start services → the runtime reports or applies it. Bastille's command
//! forms and behaviour per version are in the runtime's `bastille` file and
//! `docs/bastille-facts.md`.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod observe;
pub mod plan;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Result};
use ipnet::Ipv4Net;
use serde::Deserialize;

use warden_layout::rules;
use warden_runtime::ipv4;
use warden_runtime::rcconf;
use warden_runtime::shell::is_identifier;
use warden_runtime::spec::{Param, Spec};
use warden_runtime::sysrc;
use warden_runtime::{Context, Module, Plan};

pub use observe::{Jail, Observed, OtherJail, Tools};

pub struct BastilleJail;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub name: String,
    pub release: Option<String>,
    pub ip: Option<String>,
    pub bridge: String,
    pub gateway: Option<String>,
    pub state: String,
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
    pub rc_conf: String,
    pub rc_conf_local: String,
    pub rc_conf_d: Vec<String>,
    pub lock_file: String,
    pub lock_timeout: i64,
}

impl Module for BastilleJail {
    const NAME: &'static str = "bastille_jail";
    // `bastille pkg <jail> install` downloads packages (and pkg itself, in a fresh jail):
    // minutes on a slow mirror, where the other modules' tools take seconds.
    const TOOL_TIMEOUT: u64 = 600;
    type Params = Params;

    fn spec() -> Spec {
        Spec::new(vec![
            Param::str("name").required(),
            Param::str("release"),
            Param::str("ip"),
            Param::str("bridge").default("warden0"),
            Param::str("gateway"),
            Param::str("state")
                .choices(&["present", "started", "stopped", "absent"])
                .default("started"),
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
            Param::path("rc_conf").default(rcconf::RC_CONF),
            Param::path("rc_conf_local").default(rcconf::RC_CONF_LOCAL),
            Param::list_of_str("rc_conf_d").default(serde_json::json!(rcconf::RC_CONF_D)),
            Param::path("lock_file").default(warden_runtime::lock::DEFAULT_LOCK_FILE),
            Param::int("lock_timeout").default(300),
        ])
    }

    fn plan(params: Params, ctx: &mut Context) -> Result<Plan> {
        let want = validate(&params)?;
        ctx.lock_host(
            Path::new(&params.lock_file),
            Duration::from_secs(params.lock_timeout.max(0) as u64),
        )?;
        let observed = observe::observe(&params, &want)?;
        plan::plan(&params, &want, &observed, ctx.check_mode)
    }
}

/// Validated network settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Want {
    pub ip: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
}

fn validate(p: &Params) -> Result<Want> {
    let mut problems = Vec::new();
    let name = &p.name;
    if name.is_empty()
        || name.len() > 63
        || name.starts_with(['-', '_'])
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        problems.push(format!(
            "jail name {name:?} is not valid: Bastille and jail(8) accept letters, digits, '-' and '_' (at most 63, not first)"
        ));
    } else if name.bytes().all(|b| b.is_ascii_digit()) {
        problems.push(format!(
            "jail name {name:?} is all digits; Bastille reads such a name as a JID"
        ));
    }
    let mut ip = None;
    if let Some(text) = &p.ip {
        match ipv4::parse_cidr(text.trim()) {
            Ok(net) => {
                if let Err(e) = ipv4::check_host_address(&net) {
                    problems.push(e.to_string());
                }
                if let Err(problem) = rules::check_private(net, &net, p.allow_public) {
                    problems.push(problem);
                }
                ip = Some(net);
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    let mut gateway = None;
    if let Some(text) = &p.gateway {
        match text.trim().parse::<Ipv4Addr>() {
            Ok(g) => gateway = Some(g),
            Err(_) => problems.push(format!("gateway {text:?} is not an IPv4 address")),
        }
    }
    if let (Some(net), None) = (ip, gateway) {
        gateway = Some(Ipv4Addr::from(u32::from(net.network()).wrapping_add(1)));
    }
    if let (Some(net), Some(g)) = (ip, gateway) {
        if !net.contains(&g) || g == net.network() || g == net.broadcast() {
            problems.push(format!(
                "gateway {g} is not a host address of the jail's subnet {}",
                net.trunc()
            ));
        } else if g == net.addr() {
            problems.push(format!("gateway {g} is the jail's own address"));
        }
    }
    if let Some(release) = &p.release {
        if !is_release(release) {
            problems.push(format!(
                "release {release:?} is not a FreeBSD release name such as 14.2-RELEASE"
            ));
        }
    }
    for package in &p.packages {
        if package.is_empty()
            || !package
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._+-@/".contains(&b))
            || package.starts_with('-')
        {
            problems.push(format!("package {package:?} is not a package name"));
        }
    }
    for service in &p.services {
        if !is_identifier(service) {
            problems.push(format!("services: {service:?} is not an rc.d service name"));
        }
    }
    for (key, value) in p.sysrc.iter().flatten() {
        if let Err(e) = sysrc::check_name(key).and_then(|_| sysrc::check_value(key, value)) {
            problems.push(e.to_string());
        }
    }
    if let Err(problem) = warden_runtime::ifconfig::check_name("bridge", &p.bridge) {
        problems.push(problem);
    }
    if problems.is_empty() {
        Ok(Want { ip, gateway })
    } else {
        bail!("{}", problems.join("; "))
    }
}

fn is_release(s: &str) -> bool {
    let Some((number, kind)) = s.split_once('-') else {
        return false;
    };
    let number_ok = number.split('.').count() == 2
        && number
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let kind = kind.split("-p").next().unwrap_or(kind);
    number_ok
        && (kind == "RELEASE"
            || kind == "CURRENT"
            || kind == "STABLE"
            || kind
                .strip_prefix("RC")
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
            || kind
                .strip_prefix("BETA")
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_names() {
        for ok in [
            "14.2-RELEASE",
            "13.4-RELEASE",
            "15.0-CURRENT",
            "14.3-RC1",
            "14.2-RELEASE-p1",
            "14.0-BETA2",
        ] {
            assert!(is_release(ok), "{ok}");
        }
        for bad in [
            "14.2",
            "latest",
            "14-RELEASE",
            "14.2-release",
            "14.2-RELEASE;rm",
        ] {
            assert!(!is_release(bad), "{bad}");
        }
    }
}
