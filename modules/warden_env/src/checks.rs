//! Params → [`Settings`]: the keys and values of the `.env` checked (environment names, no
//! line breaks, no key both plain and secret), every problem reported at once.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Result};

use warden_runtime::fs as wfs;
use warden_runtime::shell::is_identifier;
use warden_runtime::spec::State;

use crate::Params;

/// The validated settings of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub path: PathBuf,
    pub values: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, String>,
    pub state: State,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub mode: u32,
    pub create_parent: bool,
}

/// Validates the params; every problem is reported at once.
pub fn settings(p: &Params) -> Result<Settings> {
    let values = p.values.clone().unwrap_or_default();
    let secrets = p.secret_values.clone().unwrap_or_default();
    let mut problems = Vec::new();
    let mode = wfs::parse_mode(&p.mode).unwrap_or_else(|e| {
        problems.push(e.to_string());
        0
    });
    for (key, value) in values.iter().chain(&secrets) {
        if !is_identifier(key) {
            problems.push(format!("{key:?} is not an environment variable name"));
        }
        if value.contains(['\n', '\r', '\0']) {
            problems.push(format!("the value of {key} contains a line break or NUL, which .env files cannot hold portably"));
        }
    }
    for key in secrets.keys() {
        if values.contains_key(key) {
            problems.push(format!("{key} is both in values and in secret_values"));
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("; "))
    }
    Ok(Settings {
        path: PathBuf::from(&p.path),
        values,
        secrets,
        state: p.state,
        owner: p.owner.clone(),
        group: p.group.clone(),
        mode,
        create_parent: p.create_parent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_all_at_once() {
        let err = settings(&warden_testkit::params::<crate::WardenEnv>(
            serde_json::json!({
                "path": "/home/mevy/agent/.env",
                "values": {"BAD-KEY": "1", "K": "a\nb", "S": "1"},
                "secret_values": {"S": "2"},
            }),
        ))
        .unwrap_err()
        .to_string();
        for needle in [
            "\"BAD-KEY\" is not an environment variable name",
            "the value of K contains a line break",
            "S is both in values and in secret_values",
        ] {
            assert!(err.contains(needle), "{needle} missing from: {err}");
        }
    }
}
