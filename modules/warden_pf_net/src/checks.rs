//! Params → [`Settings`]: the interface names and the requested subnets checked on their own
//! (before looking at the host), every problem reported at once.

use anyhow::{bail, Result};
use ipnet::Ipv4Net;

use warden_layout::rules;
use warden_runtime::spec::State;
use warden_runtime::{ifconfig, ipv4};

use crate::Params;

/// The validated settings of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The requested subnets (network addresses), without duplicates, in order.
    pub subnets: Vec<Ipv4Net>,
    pub state: State,
    pub exclusive: bool,
    /// The uplink; found in pf.conf's `ext_if` macro when unset.
    pub ext_if: Option<String>,
    pub bridge: String,
    /// The include file.
    pub path: String,
    /// The main ruleset.
    pub pf_conf: String,
    pub manage_include: bool,
    pub enable: bool,
    pub allow_host_access: bool,
    pub allow_inter_agent: bool,
}

/// Validates the params; every problem is reported at once.
pub fn settings(params: &Params) -> Result<Settings> {
    let mut problems = Vec::new();
    for (label, name) in [
        ("bridge", Some(&params.bridge)),
        ("ext_if", params.ext_if.as_ref()),
    ] {
        if let Some(Err(problem)) = name.map(|n| ifconfig::check_name(label, n)) {
            problems.push(problem);
        }
    }
    let mut subnets = Vec::new();
    for text in &params.subnets {
        match ipv4::parse_cidr(text.trim()) {
            Ok(net) if net.addr() != net.network() => problems.push(format!(
                "{net} is not a subnet (network address); did you mean {}?",
                net.trunc()
            )),
            Ok(net) => {
                if let Err(problem) = rules::check_private(net, &net, params.allow_public) {
                    problems.push(problem);
                } else if !subnets.contains(&net) {
                    subnets.push(net);
                }
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    for (i, a) in subnets.iter().enumerate() {
        for b in &subnets[i + 1..] {
            if ipv4::overlaps(a, b) {
                problems.push(format!(
                    "{a} and {b} overlap; each agent needs its own subnet"
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(Settings {
            subnets,
            state: params.state,
            exclusive: params.exclusive,
            ext_if: params.ext_if.clone(),
            bridge: params.bridge.clone(),
            path: params.path.clone(),
            pf_conf: params.pf_conf.clone(),
            manage_include: params.manage_include,
            enable: params.enable,
            allow_host_access: params.allow_host_access,
            allow_inter_agent: params.allow_inter_agent,
        })
    } else {
        bail!("{}", problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings_of(raw: serde_json::Value) -> std::result::Result<Settings, String> {
        let params = warden_testkit::validated::<crate::WardenPfNet>(raw)?;
        settings(&params).map_err(|e| e.to_string())
    }

    #[test]
    fn every_problem_at_once() {
        assert_eq!(
            settings_of(json!({"subnet": "10.0.1.0/24,10.0.1.0/24"}))
                .unwrap()
                .subnets,
            ["10.0.1.0/24".parse::<Ipv4Net>().unwrap()]
        );
        let err = settings_of(json!({
            "subnets": ["10.0.1.1/24", "8.8.8.0/24", "10.0.0.0/16", "10.0.2.0/24"],
            "ext_if": "vtnet 0",
        }))
        .unwrap_err();
        for needle in [
            "ext_if",
            "10.0.1.1/24 is not a subnet (network address); did you mean 10.0.1.0/24?",
            "8.8.8.0/24 is not in a private range",
            "10.0.0.0/16 and 10.0.2.0/24 overlap",
        ] {
            assert!(err.contains(needle), "{needle} missing from: {err}");
        }
    }
}
