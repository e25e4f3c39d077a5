//! Simulated `sysctl(8)` for the few OIDs warden touches; values live in
//! `<root>/sim/sysctl.json`. Formats (sbin/sysctl/sysctl.c): `name: value`, `-n` value only,
//! `name=value` prints `name: old -> new`; an unknown OID is `sysctl: unknown oid 'x'`,
//! exit 1.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use crate::dispatch::{Out, SIM_FAILURE};

fn defaults() -> BTreeMap<String, String> {
    [("net.inet.ip.forwarding", "0"), ("kern.securelevel", "-1")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load(root: &Path) -> BTreeMap<String, String> {
    fs::read_to_string(root.join("sim/sysctl.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(defaults)
}

pub fn run(root: &Path, args: &[String]) -> Out {
    let mut values = load(root);
    let mut value_only = false;
    let mut changed = false;
    let mut out = Out::default();
    for arg in args {
        if arg == "-n" {
            value_only = true;
            continue;
        }
        if arg.starts_with('-') {
            return Out::err(
                SIM_FAILURE,
                format!("freebsd-sim: sysctl {arg} is not simulated\n"),
            );
        }
        let (name, new) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (arg.as_str(), None),
        };
        let Some(old) = values.get(name).cloned() else {
            out.stderr
                .push_str(&format!("sysctl: unknown oid '{name}'\n"));
            out.rc = 1;
            continue;
        };
        match new {
            Some(v) => {
                values.insert(name.to_string(), v.to_string());
                changed = true;
                out.stdout.push_str(&if value_only {
                    format!("{old} -> {v}\n")
                } else {
                    format!("{name}: {old} -> {v}\n")
                });
            }
            None => out.stdout.push_str(&if value_only {
                format!("{old}\n")
            } else {
                format!("{name}: {old}\n")
            }),
        }
    }
    if changed {
        if let Ok(text) = serde_json::to_string_pretty(&values) {
            let _ = fs::write(root.join("sim/sysctl.json"), text);
        }
    }
    out
}
