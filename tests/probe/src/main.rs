//! `warden_probe`: exercises every part of the runtime (param kinds, no_log, check mode,
//! diff, errors, panics) so the protocol can be tested on a real binary, and doubles as the
//! trivial binary module benchmarks compare against. Never shipped in `library/`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Result};
use serde::Deserialize;
use serde_json::json;
use warden_runtime::fs::{read_state, Attrs};
use warden_runtime::plan::WriteFile;
use warden_runtime::spec::{Param, Spec};
use warden_runtime::{Context, Diff, Module, Plan};

struct Probe;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    name: String,
    state: String,
    count: Option<i64>,
    enabled: bool,
    items: Option<Vec<String>>,
    env: Option<BTreeMap<String, String>>,
    password: Option<String>,
    mode: String,
    file: Option<String>,
    content: String,
    fail: bool,
    panic: bool,
}

impl Module for Probe {
    const NAME: &'static str = "warden_probe";
    const RUNS_TOOLS: bool = false;
    // A protocol probe: it touches no host, so it takes no host parameters.
    const HOST: bool = false;
    type Params = Params;

    fn spec() -> Spec {
        Spec::new(vec![
            Param::str("name").required().aliases(&["probe_name"]),
            Param::str("state")
                .choices(&["present", "absent"])
                .default("present"),
            Param::int("count"),
            Param::bool("enabled").default(false),
            Param::list_of_str("items"),
            Param::dict_of_str("env"),
            Param::str("password").no_log(),
            Param::mode("mode").default("0644"),
            Param::path("file"),
            Param::str("content").default(""),
            Param::bool("fail").default(false),
            Param::bool("panic").default(false),
        ])
    }

    fn plan(p: Params, _ctx: &mut Context) -> Result<Plan> {
        if p.panic {
            panic!(
                "probe panicked on purpose (password {})",
                p.password.unwrap_or_default()
            );
        }
        if p.fail {
            bail!(
                "probe failed on purpose for {} with password {}",
                p.name,
                p.password.unwrap_or_default()
            );
        }
        let mut plan = Plan::new();
        if let Some(file) = p.file {
            let path = PathBuf::from(&file);
            let previous = read_state(&path)?;
            let before = previous
                .as_ref()
                .map(|s| String::from_utf8_lossy(&s.content).into_owned())
                .unwrap_or_default();
            if previous.as_ref().map(|s| s.content.as_slice()) != Some(p.content.as_bytes()) {
                plan.step(WriteFile {
                    path,
                    content: p.content.clone().into_bytes(),
                    attrs: Attrs {
                        mode: Some(warden_runtime::fs::parse_mode(&p.mode)?),
                        ..Attrs::default()
                    },
                    previous,
                });
            }
            plan.diff(Diff::new(file, before, p.content));
        }
        plan.value(
            "params",
            json!({"name": p.name, "state": p.state, "count": p.count, "enabled": p.enabled,
                   "items": p.items, "env": p.env, "mode": p.mode}),
        );
        Ok(plan)
    }
}

fn main() {
    warden_runtime::run::<Probe>()
}
