//! Params → [`Settings`]: the bridge's name and the requested addresses checked on their own
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
    pub bridge: String,
    /// The requested host addresses with their prefixes, without duplicates, in order.
    pub addresses: Vec<Ipv4Net>,
    pub state: State,
    pub exclusive: bool,
    pub persist: bool,
    pub create: bool,
}

/// Validates the params; every problem is reported at once.
pub fn settings(params: &Params) -> Result<Settings> {
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
        Ok(Settings {
            bridge: params.bridge.clone(),
            addresses: requested,
            state: params.state,
            exclusive: params.exclusive,
            persist: params.persist,
            create: params.create,
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
        let params = warden_testkit::validated::<crate::WardenBridgeAlias>(raw)?;
        settings(&params).map_err(|e| e.to_string())
    }

    #[test]
    fn addresses_deduplicated_in_order() {
        let s =
            settings_of(json!({"address": ["10.0.1.1/24", "10.0.0.1/24", "10.0.1.1/24"]})).unwrap();
        assert_eq!(
            s.addresses,
            [
                "10.0.1.1/24".parse().unwrap(),
                "10.0.0.1/24".parse().unwrap()
            ]
        );
    }

    #[test]
    fn every_problem_at_once() {
        let err = settings_of(json!({
            "bridge": "warden 0",
            "addresses": ["10.0.1.0/24", "8.8.8.1/24", "10.0.2.1/24", "10.0.2.9/16", "fd00::1/64"],
        }))
        .unwrap_err();
        for needle in [
            "bridge",
            "10.0.1.0/24 is the network address",
            "8.8.8.1/24 is not in a private range",
            "10.0.2.9/16 and 10.0.1.0/24 overlap",
            "IPv6 is not supported",
        ] {
            assert!(err.contains(needle), "{needle} missing from: {err}");
        }
    }
}
