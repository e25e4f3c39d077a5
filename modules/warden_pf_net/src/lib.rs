//! `warden_pf_net`: PF NAT for every warden agent's /24. The rules live in an include file
//! (`/etc/pf.warden.conf`, the deployment guide's layout) that holds the set of agent
//! subnets; adding one agent's subnet merges into the set, never drops another's. The main
//! ruleset gets an `include` line where PF's statement order accepts it and is otherwise left
//! alone.
//!
//! Shape: validate → observe (the two files, rc.conf, `pfctl -s info`, `pfctl -s nat` when
//! the files are already right, `sysctl`) → plan: one ruleset transaction (candidates checked
//! with `pfctl -nf`, then replaced and loaded with `pfctl -f`, restored and reloaded if the
//! load fails), `pf_enable`/`gateway_enable` via sysrc, `pfctl -e`, IP forwarding.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use ipnet::Ipv4Net;
use serde::Deserialize;

use warden_layout::rules;
use warden_runtime::fs::{self as wfs, FileState};
use warden_runtime::ifconfig;
use warden_runtime::ipv4;
use warden_runtime::pfctl::{self, LoadRuleset, RulesetFile};
use warden_runtime::plan::RunCmd;
use warden_runtime::rcconf::RcConf;
use warden_runtime::spec::{Param, Spec};
use warden_runtime::sysrc::Changes;
use warden_runtime::{find_tool, sysctl, Cmd, Context, Diff, Module, Plan};

pub struct WardenPfNet;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub subnets: Vec<String>,
    pub state: String,
    pub exclusive: bool,
    pub ext_if: Option<String>,
    pub bridge: String,
    pub path: String,
    pub pf_conf: String,
    pub manage_include: bool,
    pub enable: bool,
    pub allow_public: bool,
    pub rc_conf: String,
    pub lock_file: String,
    pub lock_timeout: i64,
}

/// The macro holding the agents' subnets in the include file.
const SET_MACRO: &str = "warden_net";
/// Our own name for the uplink when the `ext_if` parameter gives it, so the include never
/// redefines the main ruleset's `ext_if`.
const EXT_MACRO: &str = "warden_ext_if";
const FORWARDING: &str = "net.inet.ip.forwarding";

impl Module for WardenPfNet {
    const NAME: &'static str = "warden_pf_net";
    type Params = Params;

    fn spec() -> Spec {
        Spec::new(vec![
            Param::list_of_str("subnets")
                .required()
                .aliases(&["subnet"]),
            Param::str("state")
                .choices(&["present", "absent"])
                .default("present"),
            Param::bool("exclusive").default(false),
            Param::str("ext_if"),
            Param::str("bridge").default("warden0"),
            Param::path("path").default("/etc/pf.warden.conf"),
            Param::path("pf_conf").default("/etc/pf.conf"),
            Param::bool("manage_include").default(true),
            Param::bool("enable").default(true),
            Param::bool("allow_public").default(false),
            Param::path("rc_conf").default("/etc/rc.conf"),
            Param::path("lock_file").default(warden_runtime::lock::DEFAULT_LOCK_FILE),
            Param::int("lock_timeout").default(300),
        ])
    }

    fn plan(params: Params, ctx: &mut Context) -> Result<Plan> {
        let requested = validate(&params)?;
        ctx.lock_host(
            Path::new(&params.lock_file),
            Duration::from_secs(params.lock_timeout.max(0) as u64),
        )?;
        let mut plan = Plan::new();
        plan_all(&params, &requested, &mut plan)?;
        Ok(plan)
    }
}

fn validate(params: &Params) -> Result<Vec<Ipv4Net>> {
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
        Ok(subnets)
    } else {
        bail!("{}", problems.join("; "))
    }
}

/// Reads the subnet set back from the include file this module wrote.
pub fn parse_set(content: &str, path: &str) -> Result<Vec<Ipv4Net>> {
    let Some(line) = content
        .lines()
        .find(|l| l.trim_start().starts_with(SET_MACRO) && l.contains('='))
    else {
        return Ok(Vec::new());
    };
    let inner = line
        .split_once('{')
        .and_then(|(_, rest)| rest.split_once('}'))
        .map(|(inner, _)| inner)
        .ok_or_else(|| {
            anyhow!("{path}: cannot read the subnet set in {line:?}; fix or remove the file")
        })?;
    inner
        .split([',', ' '])
        .filter(|w| !w.is_empty())
        .map(|w| {
            w.parse::<Ipv4Net>().with_context(|| {
                format!("{path}: {w:?} in the subnet set is not a subnet; fix or remove the file")
            })
        })
        .collect()
}

/// The include file for a subnet set (sorted, so it changes only when the set does).
pub fn render(subnets: &[Ipv4Net], ext_if: Option<&str>, bridge: &str, pf_conf: &str) -> String {
    let mut text = format!(
        "# Managed by warden_pf_net; changes here are overwritten. NAT for the warden agents'\n\
         # subnets, included from {pf_conf}.\n"
    );
    if subnets.is_empty() {
        text.push_str("# No agent subnets.\n");
        return text;
    }
    let ext = match ext_if {
        Some(name) => {
            text.push_str(&format!("{EXT_MACRO} = \"{name}\"\n"));
            EXT_MACRO
        }
        None => "ext_if",
    };
    let list: Vec<String> = subnets.iter().map(|s| s.to_string()).collect();
    text.push_str(&format!("{SET_MACRO} = \"{{ {} }}\"\n", list.join(", ")));
    text.push_str(&format!(
        "nat on ${ext} from ${SET_MACRO} to any -> (${ext})\n"
    ));
    text.push_str(&format!(
        "pass quick on {bridge} inet from ${SET_MACRO} to any keep state\n"
    ));
    text
}

fn sort_subnets(set: &mut Vec<Ipv4Net>) {
    set.sort_by_key(|n| (u32::from(n.network()), n.prefix_len()));
    set.dedup();
}

fn text_of(state: &Option<FileState>) -> String {
    state
        .as_ref()
        .map(|s| String::from_utf8_lossy(&s.content).into_owned())
        .unwrap_or_default()
}

fn plan_all(params: &Params, requested: &[Ipv4Net], plan: &mut Plan) -> Result<()> {
    let include = wfs::read_state(Path::new(&params.path))?;
    let main = wfs::read_state(Path::new(&params.pf_conf))?;
    let current = parse_set(&text_of(&include), &params.path)?;

    let mut set: Vec<Ipv4Net> = match (params.state.as_str(), params.exclusive) {
        ("absent", _) => current
            .iter()
            .filter(|n| !requested.contains(n))
            .copied()
            .collect(),
        (_, true) => requested.to_vec(),
        _ => {
            // Another agent's subnet that overlaps a new one would NAT the same addresses twice.
            for new in requested.iter().filter(|n| !current.contains(n)) {
                if let Some(old) = current.iter().find(|c| ipv4::overlaps(c, new)) {
                    bail!(
                        "{new} overlaps {old}, already in the subnet set in {}; each agent needs its own subnet",
                        params.path
                    );
                }
            }
            current.iter().chain(requested).copied().collect()
        }
    };
    sort_subnets(&mut set);

    // The main ruleset, with the include line where PF accepts it.
    let main_text = text_of(&main);
    let new_main = if !params.manage_include || pfctl::includes(&main_text, &params.path) {
        main_text.clone()
    } else if main.is_none() {
        format!("# Created by warden_pf_net.\ninclude \"{}\"\n", params.path)
    } else {
        let mut lines: Vec<String> = main_text.lines().map(String::from).collect();
        let at = pfctl::include_position(&main_text);
        lines.insert(
            at,
            format!(
                "include \"{}\"  # warden agents' NAT (warden_pf_net)",
                params.path
            ),
        );
        lines.join("\n") + "\n"
    };

    // The uplink: the parameter, or what the main ruleset defines before the include.
    let ext_if = match &params.ext_if {
        Some(name) => name.clone(),
        None if set.is_empty() => String::new(),
        None => {
            let at = new_main
                .lines()
                .position(|l| {
                    l.trim_start()
                        .starts_with(&format!("include \"{}\"", params.path))
                })
                .unwrap_or(usize::MAX);
            pfctl::macro_value(&new_main, "ext_if", at).ok_or_else(|| {
                anyhow!(
                    "{} defines no ext_if macro before the warden include; set the ext_if parameter (the uplink interface, e.g. vtnet0)",
                    params.pf_conf
                )
            })?
        }
    };
    if !set.is_empty() {
        let names = ifconfig::parse_list(&Cmd::new(find_tool("ifconfig")?).arg("-l").run()?.stdout);
        if !names.contains(&ext_if) {
            bail!(
                "ext_if {ext_if} is not an interface on this host (it has: {})",
                names.join(" ")
            );
        }
    }
    let new_include = render(
        &set,
        params.ext_if.as_deref(),
        &params.bridge,
        &params.pf_conf,
    );

    let mut files = Vec::new();
    if text_of(&include) != new_include || include.is_none() {
        files.push(RulesetFile {
            path: params.path.clone().into(),
            content: new_include.clone(),
            previous: include.clone(),
        });
    }
    if new_main != main_text || main.is_none() {
        files.push(RulesetFile {
            path: params.pf_conf.clone().into(),
            content: new_main.clone(),
            previous: main.clone(),
        });
    }

    let pfctl_tool = find_tool("pfctl")?;
    // Files already right: make sure the loaded rules still carry every subnet.
    let stale_rules = files.is_empty() && !set.is_empty() && {
        let loaded = pfctl::nat_rules(&pfctl_tool)?;
        set.iter().any(|net| {
            !loaded
                .iter()
                .any(|rule| rule.contains(&format!(" from {net} to ")))
        })
    };
    let reload = !files.is_empty() || stale_rules;
    if reload {
        plan.step(LoadRuleset {
            pfctl: pfctl_tool.clone(),
            main: params.pf_conf.clone().into(),
            files,
        });
    }

    plan.diff(Diff::new(
        params.path.clone(),
        text_of(&include),
        new_include,
    ));
    plan.diff(Diff::new(params.pf_conf.clone(), main_text, new_main));

    if params.enable {
        let rc = RcConf::read(Path::new(&params.rc_conf))?;
        let mut changes = Changes::new(Path::new(&params.rc_conf), &rc);
        changes.set("pf_enable", "YES")?;
        changes.set("gateway_enable", "YES")?;
        changes.apply_to(&find_tool("sysrc")?, plan)?;
        if !pfctl::is_enabled(&pfctl_tool)? {
            plan.step(
                RunCmd::new(Cmd::new(&pfctl_tool).arg("-e"))
                    .undo_with(Cmd::new(&pfctl_tool).arg("-d")),
            );
        }
        let sysctl_tool = find_tool("sysctl")?;
        let forwarding = sysctl::get(&sysctl_tool, FORWARDING)?;
        if forwarding != "1" {
            plan.step(
                RunCmd::new(sysctl::set(&sysctl_tool, FORWARDING, "1")).undo_with(sysctl::set(
                    &sysctl_tool,
                    FORWARDING,
                    &forwarding,
                )),
            );
        }
    }

    plan.value(
        "subnets",
        set.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
    );
    plan.value("reloaded", reload);
    plan.value("path", params.path.clone());
    plan.value("ext_if", ext_if);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<Ipv4Net> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn render_and_read_back() {
        let set = nets(&["10.0.0.0/24", "10.0.1.0/24"]);
        let text = render(&set, None, "warden0", "/etc/pf.conf");
        assert!(text.contains("warden_net = \"{ 10.0.0.0/24, 10.0.1.0/24 }\"\n"));
        assert!(text.contains("nat on $ext_if from $warden_net to any -> ($ext_if)\n"));
        assert!(text.contains("pass quick on warden0 inet from $warden_net to any keep state\n"));
        assert_eq!(parse_set(&text, "f").unwrap(), set);
        let own = render(&set, Some("vtnet0"), "warden0", "/etc/pf.conf");
        assert!(own.contains("warden_ext_if = \"vtnet0\"\nwarden_net"));
        assert!(own.contains("-> ($warden_ext_if)"));
        assert_eq!(
            parse_set(&render(&[], None, "warden0", "/etc/pf.conf"), "f").unwrap(),
            vec![]
        );
    }

    #[test]
    fn sorted_numerically() {
        let mut set = nets(&[
            "10.0.10.0/24",
            "10.0.2.0/24",
            "10.0.2.0/24",
            "172.16.0.0/24",
        ]);
        sort_subnets(&mut set);
        assert_eq!(set, nets(&["10.0.2.0/24", "10.0.10.0/24", "172.16.0.0/24"]));
    }

    #[test]
    fn broken_set_is_an_error() {
        assert!(parse_set("warden_net = \"{ 10.0.0.0/24, bogus }\"\n", "f").is_err());
        assert!(parse_set("warden_net = 10.0.0.0/24\n", "f").is_err());
    }
}
