//! Params → [`Settings`]: the jail's name, address, gateway, release, packages, services and
//! rc.conf values checked on their own (before looking at the host), every problem reported
//! at once.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use anyhow::{bail, Result};
use ipnet::Ipv4Net;

use warden_layout::rules;
use warden_runtime::ipv4;
use warden_runtime::shell::is_identifier;
use warden_runtime::sysrc;

use crate::{JailState, Params};

/// The validated settings of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub name: String,
    pub release: Option<String>,
    /// The jail's address with its prefix.
    pub ip: Option<Ipv4Net>,
    pub bridge: String,
    /// The jail's default router: the parameter, else the `.1` of `ip`'s subnet.
    pub gateway: Option<Ipv4Addr>,
    pub state: JailState,
    pub boot: bool,
    pub packages: Vec<String>,
    /// Values for the jail's rc.conf.
    pub sysrc: BTreeMap<String, String>,
    pub services: Vec<String>,
    pub bootstrap: bool,
    pub recreate: bool,
    pub bastille_prefix: String,
    pub bastille_conf: String,
    pub bastille_path: Option<String>,
}

/// Validates the params; every problem is reported at once.
pub fn settings(p: &Params) -> Result<Settings> {
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
        Ok(Settings {
            name: p.name.clone(),
            release: p.release.clone(),
            ip,
            bridge: p.bridge.clone(),
            gateway,
            state: p.state,
            boot: p.boot,
            packages: p.packages.clone(),
            sysrc: p.sysrc.clone().unwrap_or_default(),
            services: p.services.clone(),
            bootstrap: p.bootstrap,
            recreate: p.recreate,
            bastille_prefix: p.bastille_prefix.clone(),
            bastille_conf: p.bastille_conf.clone(),
            bastille_path: p.bastille_path.clone(),
        })
    } else {
        bail!("{}", problems.join("; "))
    }
}

pub fn is_release(s: &str) -> bool {
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
    use serde_json::json;

    fn settings_of(raw: serde_json::Value) -> std::result::Result<Settings, String> {
        let params = warden_testkit::validated::<crate::BastilleJail>(raw)?;
        settings(&params).map_err(|e| e.to_string())
    }

    #[test]
    fn the_gateway_defaults_to_the_subnets_first_address() {
        let s = settings_of(json!({"name": "mevygit", "ip": "10.0.1.2/24"})).unwrap();
        assert_eq!(s.gateway, Some(Ipv4Addr::new(10, 0, 1, 1)));
        let s = settings_of(json!({"name": "mevygit"})).unwrap();
        assert_eq!((s.ip, s.gateway), (None, None));
    }

    #[test]
    fn every_problem_at_once() {
        let err = settings_of(json!({
            "name": "-bad", "ip": "10.0.1.2/24", "gateway": "10.0.2.1", "release": "latest",
            "packages": ["git", "-x"], "services": ["bad-name"],
        }))
        .unwrap_err();
        for needle in [
            "jail name \"-bad\" is not valid",
            "gateway 10.0.2.1 is not a host address of the jail's subnet 10.0.1.0/24",
            "release \"latest\" is not a FreeBSD release name",
            "package \"-x\" is not a package name",
            "services: \"bad-name\" is not an rc.d service name",
        ] {
            assert!(err.contains(needle), "{needle} missing from: {err}");
        }
    }

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
