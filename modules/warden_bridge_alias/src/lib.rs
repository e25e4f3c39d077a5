//! `warden_bridge_alias`: the shared agent bridge (`warden0`) and the host's gateway address
//! for each agent /24 on it — at runtime (`ifconfig`) and persisted in rc.conf (`sysrc`).
//!
//! Shape: validate → observe (`ifconfig -a` once, rc.conf once) → check the requested
//! addresses against everything the host holds → plan (create/rename/up the bridge,
//! add/remove aliases, one sysrc call for the rc.conf changes) → the runtime reports or
//! applies it, undoing completed steps if a later one fails.
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

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use ipnet::Ipv4Net;
use serde::Deserialize;
use serde_json::json;

use warden_layout::rules;
use warden_runtime::ifconfig::{self, Interface};
use warden_runtime::ipv4;
use warden_runtime::netconf::{self, Part, Persisted, Slot};
use warden_runtime::plan::RunCmd;
use warden_runtime::rcconf;
use warden_runtime::rcconf::{RcChain, RcFiles, RcLookup, RcValue};
use warden_runtime::spec::{Param, Spec};
use warden_runtime::sysrc::Changes;
use warden_runtime::{find_tool, Context, Diff, Module, Plan};

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
        let ifconfig_tool = find_tool("ifconfig")?;
        let host = Host {
            interfaces: ifconfig::all(&ifconfig_tool)?,
            // What rc.d/netif reads: `load_rc_config network`, then `load_rc_config netif`.
            rc: RcChain::read(
                &RcFiles::new(&params.rc_conf, &params.rc_conf_local, &params.rc_conf_d),
                &["network", "netif"],
            )?,
        };
        let mut plan = Plan::new();
        Planner {
            params: &params,
            requested: &requested,
            host: &host,
            ifconfig: ifconfig_tool,
        }
        .plan(&mut plan)?;
        Ok(plan)
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

struct Host {
    interfaces: Vec<Interface>,
    rc: RcChain,
}

impl Host {
    fn interface(&self, name: &str) -> Option<&Interface> {
        self.interfaces.iter().find(|i| i.name == name)
    }

    fn cloned(&self) -> Result<Vec<String>> {
        match self.rc.lookup("cloned_interfaces") {
            None => Ok(Vec::new()),
            Some(RcValue::Literal(v)) => Ok(v.split_whitespace().map(String::from).collect()),
            Some(RcValue::Dynamic(_)) => {
                bail!(
                    "{} is set with a shell expansion; cannot add the bridge to it",
                    self.rc.describe("cloned_interfaces")
                )
            }
        }
    }
}

struct Planner<'a> {
    params: &'a Params,
    requested: &'a [Ipv4Net],
    host: &'a Host,
    ifconfig: PathBuf,
}

impl Planner<'_> {
    fn plan(&self, plan: &mut Plan) -> Result<()> {
        let bridge = &self.params.bridge;
        let present = self.params.state == "present";
        let runtime = self.host.interface(bridge);
        let runtime_addrs: Vec<Ipv4Net> = runtime.map(|i| i.inet.clone()).unwrap_or_default();
        let persisted = netconf::persisted(&self.host.rc, bridge)?;
        if present {
            self.check_against_host(&runtime_addrs, &persisted)?;
        }

        let mut rc = Changes::on(&self.host.rc);
        let mut after = runtime_addrs.clone();
        if present {
            self.ensure_bridge(runtime, &mut rc, plan)?;
            let (remove, add): (Vec<Ipv4Net>, Vec<Ipv4Net>) = (
                if self.params.exclusive {
                    runtime_addrs
                        .iter()
                        .filter(|a| !self.requested.contains(a))
                        .copied()
                        .collect()
                } else {
                    Vec::new()
                },
                self.requested
                    .iter()
                    .filter(|a| !runtime_addrs.contains(a))
                    .copied()
                    .collect(),
            );
            for addr in &remove {
                self.remove_runtime(addr, plan);
            }
            for addr in &add {
                plan.step(
                    RunCmd::new(ifconfig::add_alias(&self.ifconfig, bridge, addr))
                        .undo_with(ifconfig::remove_alias(&self.ifconfig, bridge, addr)),
                );
            }
            after.retain(|a| !remove.contains(a));
            after.extend(add);
            if self.params.persist {
                let stale: Vec<Ipv4Net> = if self.params.exclusive {
                    persisted
                        .iter()
                        .map(|p| p.net)
                        .filter(|n| !self.requested.contains(n))
                        .collect()
                } else {
                    Vec::new()
                };
                self.unpersist(&persisted, &stale, &mut rc)?;
                let already: BTreeSet<Ipv4Net> = persisted.iter().map(|p| p.net).collect();
                for addr in self.requested.iter().filter(|a| !already.contains(a)) {
                    self.persist(addr, &mut rc)?;
                }
                self.ensure_configured_at_boot(&mut rc)?;
            }
        } else {
            let remove: Vec<Ipv4Net> = runtime_addrs
                .iter()
                .filter(|a| self.requested.iter().any(|r| r.addr() == a.addr()))
                .copied()
                .collect();
            for addr in &remove {
                self.remove_runtime(addr, plan);
            }
            after.retain(|a| !remove.contains(a));
            let stale: Vec<Ipv4Net> = persisted
                .iter()
                .map(|p| p.net)
                .filter(|n| self.requested.iter().any(|r| r.addr() == n.addr()))
                .collect();
            self.unpersist(&persisted, &stale, &mut rc)?;
        }

        if !rc.is_empty() {
            rc.apply_to(&find_tool("sysrc")?, plan)?;
        }
        let list = |addrs: &[Ipv4Net]| addrs.iter().map(|a| format!("{a}\n")).collect::<String>();
        plan.diff(Diff::new(
            format!("{bridge} addresses"),
            list(&runtime_addrs),
            list(&after),
        ));
        plan.value("bridge", bridge.clone());
        plan.value(
            "addresses",
            after.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        );
        plan.value("rc_conf_vars", rc.names());
        plan.value(
            "rc_conf_files",
            rc.files()
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>(),
        );
        Ok(())
    }

    /// Refuses addresses that clash with what the host already holds.
    fn check_against_host(&self, runtime: &[Ipv4Net], persisted: &[Persisted]) -> Result<()> {
        let bridge = &self.params.bridge;
        let mut problems = Vec::new();
        // The bridge's own addresses (runtime and persisted) that stay after this run.
        let mut on_bridge: Vec<Ipv4Net> = runtime.to_vec();
        on_bridge.extend(persisted.iter().map(|p| p.net));
        for want in self.requested {
            for iface in &self.host.interfaces {
                if iface.name == *bridge {
                    continue;
                }
                if let Some(other) = iface.inet.iter().find(|a| ipv4::overlaps(a, want)) {
                    problems.push(format!(
                        "cannot add {want} to {bridge}: {} overlaps {} ({other}); choose another agent_subnet_base",
                        want.trunc(),
                        iface.name
                    ));
                }
            }
            for have in &on_bridge {
                // Equal, or going away in an exclusive run: no clash.
                if have == want || (self.params.exclusive && !self.requested.contains(have)) {
                    continue;
                }
                if have.addr() == want.addr() {
                    problems.push(format!(
                        "{} is already on {bridge} with prefix /{}; refusing /{} (a subnet keeps one prefix on the host)",
                        want.addr(),
                        have.prefix_len(),
                        want.prefix_len()
                    ));
                } else if ipv4::overlaps(have, want) {
                    problems.push(format!(
                        "cannot add {want} to {bridge}: {} overlaps {have}, another agent's subnet on {bridge}",
                        want.trunc()
                    ));
                }
            }
        }
        problems.dedup();
        if problems.is_empty() {
            Ok(())
        } else {
            bail!("{}", problems.join("; "))
        }
    }

    /// Creates, renames and brings up the bridge when needed, and persists it.
    ///
    /// At runtime a bridge with another name is made with `ifconfig bridge create name
    /// <bridge>`: the kernel picks a unit free in the bridge cloner, which also holds the
    /// units of bridges that were renamed (jib's `vtnet0bridge`, …) and that no interface
    /// name shows (sys/net/if_clone.c `ifc_alloc_unit_next`); asking for `bridgeN create`
    /// by name fails on such a host. rc.conf gets a clone name of its own:
    /// `cloned_interfaces` is created at boot by rc.d/netif before anything renames a bridge
    /// (jib and Bastille make theirs when jails start), so the lowest `bridgeN` that no
    /// `cloned_interfaces` word and no interface uses now is free then.
    fn ensure_bridge(
        &self,
        runtime: Option<&Interface>,
        rc: &mut Changes,
        plan: &mut Plan,
    ) -> Result<()> {
        let bridge = &self.params.bridge;
        let cloned = self.host.cloned()?;
        let is_clone_name = |n: &str| matches!(ifconfig::split_unit(n), Some(("bridge", _)));
        // The clone that becomes the bridge at boot, if rc.conf already has one.
        let persisted_clone = cloned.iter().find(|c| {
            *c == bridge
                || self
                    .host
                    .rc
                    .lookup(&format!("ifconfig_{c}_name"))
                    .and_then(RcValue::literal)
                    == Some(bridge.as_str())
        });
        match runtime {
            None if !self.params.create => {
                bail!("bridge {bridge} does not exist and create is false")
            }
            None => {
                let create = if is_clone_name(bridge) {
                    ifconfig::create(&self.ifconfig, bridge)
                } else {
                    ifconfig::create_named(&self.ifconfig, "bridge", bridge)
                };
                plan.step(RunCmd::new(create).undo_with(ifconfig::destroy(&self.ifconfig, bridge)));
                plan.run(ifconfig::up(&self.ifconfig, bridge));
            }
            Some(iface) if !iface.is_bridge() => {
                bail!(
                    "{bridge} exists but is not a bridge (groups: {})",
                    iface.groups.join(" ")
                )
            }
            Some(iface) if !iface.is_up() => plan.run(ifconfig::up(&self.ifconfig, bridge)),
            Some(_) => {}
        }
        if self.params.persist && persisted_clone.is_none() {
            let clone = if is_clone_name(bridge) {
                bridge.clone()
            } else {
                (0..)
                    .map(|n| format!("bridge{n}"))
                    .find(|name| self.host.interface(name).is_none() && !cloned.contains(name))
                    .ok_or_else(|| anyhow!("no free bridge unit"))?
            };
            let mut words = cloned.clone();
            words.push(clone.clone());
            rc.set("cloned_interfaces", &words.join(" "))?;
            if clone != *bridge {
                rc.set(&format!("ifconfig_{clone}_name"), bridge)?;
            }
        }
        Ok(())
    }

    /// rc.d/netif configures `list_net_interfaces`: with `network_interfaces` left at `AUTO`
    /// every interface that exists after the rename, else only the listed names plus
    /// `cloned_interfaces` — the clone's name, gone after `ifnet_rename` (network.subr at
    /// 03ccfdd2). A list without the bridge would leave it without addresses at boot, so the
    /// bridge's name is added to the list where it is set.
    fn ensure_configured_at_boot(&self, rc: &mut Changes) -> Result<()> {
        let bridge = &self.params.bridge;
        let list = match rc.value("network_interfaces") {
            None => return Ok(()),
            Some(list) => list,
        };
        if self
            .host
            .rc
            .lookup("network_interfaces")
            .is_some_and(|v| v.literal().is_none())
        {
            bail!(
                "{} is set with a shell expansion, so it cannot be told whether rc.d/netif configures {bridge} at boot; set it to AUTO or to a plain list",
                self.host.rc.describe("network_interfaces")
            );
        }
        let words: Vec<&str> = list.split_whitespace().collect();
        if words.len() == 1 && words[0].eq_ignore_ascii_case("auto")
            || words.contains(&bridge.as_str())
        {
            return Ok(());
        }
        let mut new = words.join(" ");
        if !new.is_empty() {
            new.push(' ');
        }
        new.push_str(bridge);
        rc.set("network_interfaces", &new)
    }

    fn remove_runtime(&self, addr: &Ipv4Net, plan: &mut Plan) {
        let bridge = &self.params.bridge;
        plan.step(
            RunCmd::new(ifconfig::remove_alias(&self.ifconfig, bridge, addr))
                .undo_with(ifconfig::add_alias(&self.ifconfig, bridge, addr)),
        );
    }

    /// Persists one address: the main `ifconfig_<bridge>` slot if it holds no address yet,
    /// else the lowest free `aliasN`.
    fn persist(&self, addr: &Ipv4Net, rc: &mut Changes) -> Result<()> {
        let main = netconf::if_var(&self.params.bridge);
        let main_parts = match rc.value(&main) {
            Some(v) => netconf::parts(&v)?,
            None => Vec::new(),
        };
        if !main_parts.iter().any(|p| matches!(p, Part::Inet { .. })) {
            let mut value = netconf::inet_words(addr);
            let rest = netconf::join(&main_parts);
            if !rest.is_empty() {
                value = format!("{value} {rest}");
            }
            return rc.set(&main, &value);
        }
        let n = (0..)
            .find(|n| rc.value(&format!("{main}_alias{n}")).is_none())
            .ok_or_else(|| anyhow!("no free alias slot"))?;
        rc.set(&format!("{main}_alias{n}"), &netconf::inet_words(addr))
    }

    /// Removes addresses from every rc.conf form that holds them; `aliasN` are renumbered
    /// from 0 without gaps.
    fn unpersist(
        &self,
        persisted: &[Persisted],
        remove: &[Ipv4Net],
        rc: &mut Changes,
    ) -> Result<()> {
        if remove.is_empty() {
            return Ok(());
        }
        let main = netconf::if_var(&self.params.bridge);
        let touched: BTreeSet<&str> = persisted
            .iter()
            .filter(|p| remove.contains(&p.net))
            .map(|p| p.var.as_str())
            .collect();
        let without = |value: &str, legacy: bool| -> Result<String> {
            if legacy {
                return Ok(value
                    .split_whitespace()
                    .filter(|w| {
                        netconf::address(w, None)
                            .map(|n| !remove.contains(&n))
                            .unwrap_or(true)
                    })
                    .collect::<Vec<_>>()
                    .join(" "));
            }
            let kept: Vec<Part> = netconf::parts(value)?
                .into_iter()
                .filter(|p| !matches!(p, Part::Inet { net, .. } if remove.contains(net)))
                .collect();
            Ok(netconf::join(&kept))
        };
        let mut aliases: Vec<(u32, String)> = Vec::new();
        let mut renumber = false;
        for p in persisted {
            if let Slot::Alias(n) = p.slot {
                if !aliases.iter().any(|(m, _)| *m == n) {
                    aliases.push((n, p.var.clone()));
                }
            }
        }
        // Aliases without any IPv4 address (inet6, …) still take part in the numbering.
        for var in self.host.rc.names_with_prefix(&format!("{main}_alias")) {
            if let Ok(n) = var[main.len() + "_alias".len()..].parse::<u32>() {
                if !aliases.iter().any(|(m, _)| *m == n) {
                    aliases.push((n, var.to_string()));
                }
            }
        }
        aliases.sort();
        for var in &touched {
            let Some(p) = persisted.iter().find(|p| p.var == *var) else {
                continue;
            };
            let value = rc.value(var).unwrap_or_default();
            let new = without(&value, p.slot == Slot::Ipv4Addrs)?;
            match p.slot {
                Slot::Alias(_) => renumber = true,
                _ if new.is_empty() => rc.delete(var)?,
                _ => rc.set(var, &new)?,
            }
        }
        if renumber {
            let mut values = Vec::new();
            for (_, var) in &aliases {
                let value = rc.value(var).unwrap_or_default();
                let new = if touched.contains(var.as_str()) {
                    without(&value, false)?
                } else {
                    value
                };
                if !new.is_empty() {
                    values.push(new);
                }
            }
            for (i, value) in values.iter().enumerate() {
                rc.set(&format!("{main}_alias{i}"), value)?;
            }
            for (n, var) in &aliases {
                if *n as usize >= values.len() {
                    rc.delete(var)?;
                }
            }
        }
        Ok(())
    }
}
