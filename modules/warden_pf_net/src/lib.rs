//! `warden_pf_net`: PF NAT for every warden agent's /24. The rules live in an include file
//! (`/etc/pf.warden.conf`, the deployment guide's layout) that holds the set of agent
//! subnets; adding one agent's subnet merges into the set, never drops another's. The main
//! ruleset gets an `include` line where PF's statement order accepts it and is otherwise left
//! alone.
//!
//! Shape (issue 16): [`validate`] → [`observe::observe`] reads the host once (the two files,
//! `ifconfig -l`, `kldstat -q -m pf`, and while pf.ko is loaded `pfctl -s nat` when the files
//! are already right, `pfctl -s info`, `sysctl`, rc.conf) → [`plan::plan`], pure: `kldload -n
//! pf` when pf.ko is not loaded (every pfctl call but `-n` needs /dev/pf, which exists only
//! with the module, and `pf_enable=YES` loads it at the next boot only: rc.d/pf's
//! `required_modules`), one ruleset transaction (candidates checked with `pfctl -nf`, then
//! replaced and loaded with `pfctl -f`, restored and reloaded if the load fails),
//! `pf_enable`/`gateway_enable` via sysrc (in the file of the rc.conf chain where each takes
//! effect at boot, docs/freebsd-facts.md §8), `pfctl -e`, IP forwarding. A module that is
//! not loaded yet is predicted as a freshly loaded pf.ko: disabled, no rules. pfctl's,
//! kldstat's and sysctl's command forms and output readers are the runtime's.
//!
//! The include's filter rules are all `quick` and come before the operator's own rules (the
//! include sits before the first filter rule), so they decide only warden traffic and never
//! open more than the agents need: the jails reach the outside through NAT and each other
//! within their agent's /24; the host's own addresses and the other agents' subnets stay
//! closed unless `allow_host_access` / `allow_inter_agent` say otherwise (see [`render`]).

pub mod checks;
pub mod observe;
pub mod plan;

use anyhow::{anyhow, Context as _, Result};
use ipnet::Ipv4Net;
use serde::Deserialize;

use warden_runtime::fs::FileState;
use warden_runtime::spec::{Param, Spec, State};
use warden_runtime::{Context, Module, Plan};

pub use checks::Settings;
pub use observe::{Enabling, Observed, Tools};

pub struct WardenPfNet;

/// The params as the spec delivers them (see `library/warden_pf_net.yml`; the rc.conf chain
/// and the host lock come as `ctx.host()`); [`checks::settings`] validates them into
/// [`Settings`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub subnets: Vec<String>,
    pub state: State,
    pub exclusive: bool,
    pub ext_if: Option<String>,
    pub bridge: String,
    pub path: String,
    pub pf_conf: String,
    pub manage_include: bool,
    pub enable: bool,
    pub allow_public: bool,
    pub allow_host_access: bool,
    pub allow_inter_agent: bool,
}

/// The macro holding the agents' subnets in the include file.
const SET_MACRO: &str = "warden_net";
/// Our own name for the uplink when the `ext_if` parameter gives it, so the include never
/// redefines the main ruleset's `ext_if`.
const EXT_MACRO: &str = "warden_ext_if";

impl Module for WardenPfNet {
    const NAME: &'static str = "warden_pf_net";
    type Params = Params;

    fn spec() -> Spec {
        Spec::new(vec![
            Param::list_of_str("subnets")
                .required()
                .aliases(&["subnet"]),
            Param::choice::<State>("state").default(State::Present),
            Param::bool("exclusive").default(false),
            Param::str("ext_if"),
            Param::str("bridge").default("warden0"),
            Param::path("path").default("/etc/pf.warden.conf"),
            Param::path("pf_conf").default("/etc/pf.conf"),
            Param::bool("manage_include").default(true),
            Param::bool("enable").default(true),
            Param::bool("allow_public").default(false),
            Param::bool("allow_host_access").default(false),
            Param::bool("allow_inter_agent").default(false),
        ])
    }

    fn plan(params: Params, ctx: &mut Context) -> Result<Plan> {
        let settings = checks::settings(&params)?;
        ctx.lock_host()?;
        let observed = observe::observe(&settings, ctx.host())?;
        plan::plan(&settings, &observed)
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

/// What the include file says besides the subnet set.
#[derive(Debug, Clone, Copy)]
pub struct RenderOpts<'a> {
    pub ext_if: Option<&'a str>,
    pub bridge: &'a str,
    pub pf_conf: &'a str,
    pub allow_host_access: bool,
    pub allow_inter_agent: bool,
}

/// The include file for a subnet set (sorted, so it changes only when the set does).
///
/// Every filter rule is `quick` and only matches traffic of the agents' subnets, in this
/// order (first match wins):
/// 1. `block drop in quick on BRIDGE inet from $warden_net to (self)`: the host's own
///    addresses, each agent's `.1` included, are closed to the jails (unless
///    `allow_host_access`); `(self)` is every address of the host, kept current (pf.conf(5);
///    pfctl_parser.c `host_if` / `ifa_lookup` treat `self` as all interfaces);
/// 2. `pass out quick on BRIDGE inet from (self) to $warden_net keep state`: what the host
///    opens to its agents' jails (the agent process talks to its git, cms, db jails);
/// 3. per agent /24 S: `pass in quick on BRIDGE inet from S to S keep state` and `pass quick
///    on epair inet from S to S keep state`: an agent's jails talk to each other. That
///    traffic is bridged, and sys/net/if_bridge.c runs the pfil hooks for forwarded frames
///    on the bridge (`pfil_bridge`, default 1) and on the member interfaces (`pfil_member`,
///    default 1), so it is also seen on the jails' epairs (group `epair`, kept through
///    Bastille's renames), where a host's default block would drop it;
/// 4. per agent /24 S: `block drop in quick on BRIDGE inet from S to { other agents }`
///    (unless `allow_inter_agent`, which writes `pass out quick on BRIDGE inet from
///    $warden_net to $warden_net keep state` instead);
/// 5. `pass in quick on BRIDGE inet from $warden_net to any keep state`: the rest, i.e. the
///    outside world through the NAT rule. Frames for the bridge's own address (routed
///    traffic) reach pf on the bridge only (if_bridge.c `GRAB_OUR_PACKETS`: member filtering
///    of local traffic needs `pfil_local_phys`, default 0), so these rules cover them.
pub fn render(subnets: &[Ipv4Net], opts: RenderOpts) -> String {
    let RenderOpts {
        ext_if,
        bridge,
        pf_conf,
        allow_host_access,
        allow_inter_agent,
    } = opts;
    let mut text = format!(
        "# Managed by warden_pf_net; changes here are overwritten. NAT and filtering for the\n\
         # warden agents' subnets on {bridge}, included from {pf_conf}; rules above the include\n\
         # line there come first.\n"
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
    if allow_host_access {
        text.push_str(
            "# The host's own addresses are open to the jails (allow_host_access: true).\n",
        );
    } else {
        text.push_str(&format!(
            "# The host's own addresses, every agent's .1 included, are closed to the jails\n\
             # (allow_host_access: false).\n\
             block drop in quick on {bridge} inet from ${SET_MACRO} to (self)\n"
        ));
    }
    text.push_str(&format!(
        "# Connections the host opens to its agents' jails.\n\
         pass out quick on {bridge} inet from (self) to ${SET_MACRO} keep state\n\
         # Each agent's jails reach each other (bridged: seen on {bridge} and on the jails' epairs).\n"
    ));
    for net in subnets {
        text.push_str(&format!(
            "pass in quick on {bridge} inet from {net} to {net} keep state\n\
             pass quick on epair inet from {net} to {net} keep state\n"
        ));
    }
    if allow_inter_agent {
        text.push_str(&format!(
            "# Agents reach each other (allow_inter_agent: true).\n\
             pass out quick on {bridge} inet from ${SET_MACRO} to ${SET_MACRO} keep state\n"
        ));
    } else if subnets.len() > 1 {
        text.push_str("# Agents do not reach each other (allow_inter_agent: false).\n");
        for net in subnets {
            let others: Vec<String> = subnets
                .iter()
                .filter(|o| *o != net)
                .map(|o| o.to_string())
                .collect();
            text.push_str(&format!(
                "block drop in quick on {bridge} inet from {net} to {{ {} }}\n",
                others.join(", ")
            ));
        }
    }
    text.push_str(&format!(
        "# Everything else leaves through the NAT rule above.\n\
         pass in quick on {bridge} inet from ${SET_MACRO} to any keep state\n"
    ));
    text
}

pub(crate) fn sort_subnets(set: &mut Vec<Ipv4Net>) {
    set.sort_by_key(|n| (u32::from(n.network()), n.prefix_len()));
    set.dedup();
}

pub(crate) fn text_of(state: &Option<FileState>) -> String {
    state
        .as_ref()
        .map(|s| String::from_utf8_lossy(&s.content).into_owned())
        .unwrap_or_default()
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
        let opts = RenderOpts {
            ext_if: None,
            bridge: "warden0",
            pf_conf: "/etc/pf.conf",
            allow_host_access: false,
            allow_inter_agent: false,
        };
        let text = render(&set, opts);
        assert!(text.contains("warden_net = \"{ 10.0.0.0/24, 10.0.1.0/24 }\"\n"));
        assert!(text.contains("nat on $ext_if from $warden_net to any -> ($ext_if)\n"));
        assert!(text.contains("pass in quick on warden0 inet from $warden_net to any keep state\n"));
        assert_eq!(parse_set(&text, "f").unwrap(), set);
        let own = render(
            &set,
            RenderOpts {
                ext_if: Some("vtnet0"),
                ..opts
            },
        );
        assert!(own.contains("warden_ext_if = \"vtnet0\"\nwarden_net"));
        assert!(own.contains("-> ($warden_ext_if)"));
        assert_eq!(parse_set(&render(&[], opts), "f").unwrap(), vec![]);
    }

    /// The rule order decides: the block to the host comes before every pass, the
    /// inter-agent blocks before the catch-all pass.
    #[test]
    fn isolation_rules_in_order() {
        let set = nets(&["10.0.0.0/24", "10.0.1.0/24"]);
        let opts = RenderOpts {
            ext_if: None,
            bridge: "warden0",
            pf_conf: "/etc/pf.conf",
            allow_host_access: false,
            allow_inter_agent: false,
        };
        let rules: Vec<String> = render(&set, opts)
            .lines()
            .filter(|l| l.starts_with("pass") || l.starts_with("block"))
            .map(String::from)
            .collect();
        assert_eq!(
            rules,
            [
                "block drop in quick on warden0 inet from $warden_net to (self)",
                "pass out quick on warden0 inet from (self) to $warden_net keep state",
                "pass in quick on warden0 inet from 10.0.0.0/24 to 10.0.0.0/24 keep state",
                "pass quick on epair inet from 10.0.0.0/24 to 10.0.0.0/24 keep state",
                "pass in quick on warden0 inet from 10.0.1.0/24 to 10.0.1.0/24 keep state",
                "pass quick on epair inet from 10.0.1.0/24 to 10.0.1.0/24 keep state",
                "block drop in quick on warden0 inet from 10.0.0.0/24 to { 10.0.1.0/24 }",
                "block drop in quick on warden0 inet from 10.0.1.0/24 to { 10.0.0.0/24 }",
                "pass in quick on warden0 inet from $warden_net to any keep state",
            ]
        );
        let open = render(
            &set,
            RenderOpts {
                allow_host_access: true,
                allow_inter_agent: true,
                ..opts
            },
        );
        assert!(!open.contains("to (self)\n"), "{open}");
        assert!(!open.contains("block"), "{open}");
        assert!(open.contains(
            "pass out quick on warden0 inet from $warden_net to $warden_net keep state\n"
        ));
        // One agent: nothing to isolate it from.
        let one = render(&nets(&["10.0.0.0/24"]), opts);
        assert_eq!(one.matches("block drop").count(), 1, "{one}");
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
    fn params_spec_and_docs_agree() {
        warden_testkit::assert_params_agree::<WardenPfNet>(include_str!(
            "../../../library/warden_pf_net.yml"
        ));
    }

    #[test]
    fn broken_set_is_an_error() {
        assert!(parse_set("warden_net = \"{ 10.0.0.0/24, bogus }\"\n", "f").is_err());
        assert!(parse_set("warden_net = 10.0.0.0/24\n", "f").is_err());
    }
}
