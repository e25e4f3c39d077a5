//! The pure planner: `(&Settings, &Observed) -> Plan`. It reads nothing
//! and runs nothing; the table tests below build [`Observed`] in code and check the steps,
//! the commands, the diff, `changed`, the values and the refusals.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{anyhow, bail, Result};
use ipnet::Ipv4Net;

use warden_runtime::ifconfig::{self, Interface};
use warden_runtime::ipv4;
use warden_runtime::netconf::{self, Part, Persisted, Slot};
use warden_runtime::plan::RunCmd;
use warden_runtime::rcconf::{self, RcLookup, RcValue};
use warden_runtime::spec::State;
use warden_runtime::sysrc::Changes;
use warden_runtime::{Diff, Plan};

use crate::observe::Observed;
use crate::Settings;

pub fn plan(settings: &Settings, observed: &Observed) -> Result<Plan> {
    let mut plan = Plan::new();
    Planner {
        settings,
        requested: &settings.addresses,
        host: observed,
        ifconfig: &observed.tools.ifconfig,
    }
    .plan(&mut plan)?;
    Ok(plan)
}

struct Planner<'a> {
    settings: &'a Settings,
    requested: &'a [Ipv4Net],
    host: &'a Observed,
    ifconfig: &'a Path,
}

impl Planner<'_> {
    fn plan(&self, plan: &mut Plan) -> Result<()> {
        let bridge = &self.settings.bridge;
        let present = self.settings.state == State::Present;
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
                if self.settings.exclusive {
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
                    RunCmd::new(ifconfig::add_alias(self.ifconfig, bridge, addr))
                        .undo_with(ifconfig::remove_alias(self.ifconfig, bridge, addr)),
                );
            }
            after.retain(|a| !remove.contains(a));
            after.extend(add);
            if self.settings.persist {
                let stale: Vec<Ipv4Net> = if self.settings.exclusive {
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
            rc.apply_to(&self.host.tools.sysrc, plan)?;
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
        let bridge = &self.settings.bridge;
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
                        "cannot add {want} to {bridge}: {} overlaps {} ({other}); give this agent another subnet",
                        want.trunc(),
                        iface.name
                    ));
                }
            }
            for have in &on_bridge {
                // Equal, or going away in an exclusive run: no clash.
                if have == want || (self.settings.exclusive && !self.requested.contains(have)) {
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
        let bridge = &self.settings.bridge;
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
            None if !self.settings.create => {
                bail!("bridge {bridge} does not exist and create is false")
            }
            None => {
                let create = if is_clone_name(bridge) {
                    ifconfig::create(self.ifconfig, bridge)
                } else {
                    ifconfig::create_named(self.ifconfig, "bridge", bridge)
                };
                plan.step(RunCmd::new(create).undo_with(ifconfig::destroy(self.ifconfig, bridge)));
                plan.run(ifconfig::up(self.ifconfig, bridge));
            }
            Some(iface) if !iface.is_bridge() => {
                bail!(
                    "{bridge} exists but is not a bridge (groups: {})",
                    iface.groups.join(" ")
                )
            }
            Some(iface) if !iface.is_up() => plan.run(ifconfig::up(self.ifconfig, bridge)),
            Some(_) => {}
        }
        if self.settings.persist && persisted_clone.is_none() {
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
        let bridge = &self.settings.bridge;
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
        // network.subr matches the whole value against [Aa][Uu][Tt][Oo].
        if list.trim().eq_ignore_ascii_case("auto") {
            return Ok(());
        }
        match rcconf::list_adding(&list, bridge) {
            Some(new) => rc.set("network_interfaces", &new),
            None => Ok(()),
        }
    }

    fn remove_runtime(&self, addr: &Ipv4Net, plan: &mut Plan) {
        let bridge = &self.settings.bridge;
        plan.step(
            RunCmd::new(ifconfig::remove_alias(self.ifconfig, bridge, addr))
                .undo_with(ifconfig::add_alias(self.ifconfig, bridge, addr)),
        );
    }

    /// Persists one address: the main `ifconfig_<bridge>` slot if it holds no address yet,
    /// else the lowest free `aliasN`.
    fn persist(&self, addr: &Ipv4Net, rc: &mut Changes) -> Result<()> {
        let main = netconf::if_var(&self.settings.bridge);
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
        let main = netconf::if_var(&self.settings.bridge);
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

#[cfg(test)]
mod tests {
    //! Table tests of the planner: every case builds the host as [`Observed`] in code.
    use serde_json::{json, Value};
    use warden_runtime::rcconf::{RcChain, RcConf, RcSource};

    use super::*;
    use crate::observe::Tools;
    use crate::{checks, WardenBridgeAlias};

    const IFCONFIG: &str = "/sbin/ifconfig";
    const SYSRC: &str = "/usr/sbin/sysrc -f /etc/rc.conf";

    /// The settings of a run with `args` (10.0.0.1/24 on warden0 unless they say otherwise).
    fn params(args: Value) -> Settings {
        let mut raw = json!({"addresses": ["10.0.0.1/24"]});
        raw.as_object_mut()
            .unwrap()
            .extend(args.as_object().unwrap().clone());
        checks::settings(&warden_testkit::params::<WardenBridgeAlias>(raw)).unwrap()
    }

    fn iface(name: &str, up: bool, groups: &[&str], inet: &[&str]) -> Interface {
        Interface {
            name: name.into(),
            flags: if up { vec!["UP".into()] } else { vec![] },
            description: None,
            inet: inet.iter().map(|a| a.parse().unwrap()).collect(),
            members: Vec::new(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    /// A host with an uplink, no bridge, and `rc` as its rc.conf.
    fn host(rc: &str) -> Observed {
        Observed {
            tools: Tools {
                ifconfig: IFCONFIG.into(),
                sysrc: "/usr/sbin/sysrc".into(),
            },
            interfaces: vec![
                iface("vtnet0", true, &[], &["192.168.1.10/24"]),
                iface("lo0", true, &["lo"], &["127.0.0.1/8"]),
            ],
            rc: RcChain::single(Path::new("/etc/rc.conf"), RcConf::parse(rc)),
        }
    }

    const BRIDGE_RC: &str = "cloned_interfaces=\"bridge0\"\nifconfig_bridge0_name=\"warden0\"\n";

    /// `host` with warden0 up, holding `addrs`, and rc.conf persisting the bridge and `rc`.
    fn with_bridge(addrs: &[&str], rc: &str) -> Observed {
        let mut o = host(&format!("{BRIDGE_RC}{rc}"));
        o.interfaces
            .push(iface("warden0", true, &["bridge"], addrs));
        o
    }

    fn ok(args: Value, o: &Observed) -> Plan {
        plan(&params(args), o).unwrap()
    }

    fn refused(args: Value, o: &Observed) -> String {
        match plan(&params(args), o) {
            Ok(plan) => panic!("planned {:?}", plan.describe()),
            Err(e) => format!("{e:#}"),
        }
    }

    fn diff_of<'a>(plan: &'a Plan, header: &str) -> Option<(&'a str, &'a str)> {
        plan.diffs
            .iter()
            .find(|d| d.before_header == header)
            .map(|d| (d.before.as_str(), d.after.as_str()))
    }

    #[test]
    fn a_fresh_host_gets_the_bridge_on_a_unit_the_kernel_picks() {
        let plan = ok(json!({}), &host(""));
        assert_eq!(
            plan.commands(),
            [
                format!("{IFCONFIG} bridge create name warden0"),
                format!("{IFCONFIG} warden0 up"),
                format!("{IFCONFIG} warden0 inet 10.0.0.1/24 alias"),
                format!("{SYSRC} cloned_interfaces=bridge0 ifconfig_bridge0_name=warden0 'ifconfig_warden0=inet 10.0.0.1/24'"),
            ]
        );
        assert_eq!(plan.values["addresses"], json!(["10.0.0.1/24"]));
        assert_eq!(
            plan.values["rc_conf_vars"],
            json!([
                "cloned_interfaces",
                "ifconfig_bridge0_name",
                "ifconfig_warden0"
            ])
        );
        assert_eq!(plan.values["rc_conf_files"], json!(["/etc/rc.conf"]));
        assert_eq!(
            diff_of(&plan, "warden0 addresses"),
            Some(("", "10.0.0.1/24\n"))
        );
        assert_eq!(
            diff_of(&plan, "/etc/rc.conf"),
            Some((
                "",
                "cloned_interfaces=\"bridge0\"\nifconfig_bridge0_name=\"warden0\"\nifconfig_warden0=\"inet 10.0.0.1/24\"\n"
            ))
        );
    }

    #[test]
    fn a_converged_host_changes_nothing() {
        for (addrs, rc, args) in [
            (
                &["10.0.0.1/24"][..],
                "ifconfig_warden0=\"inet 10.0.0.1/24\"\n",
                json!({}),
            ),
            (
                &["10.0.0.1/24", "10.0.1.1/24"],
                "ifconfig_warden0=\"inet 10.0.0.1/24\"\nifconfig_warden0_alias0=\"inet 10.0.1.1/24\"\n",
                json!({"addresses": ["10.0.1.1/24"]}),
            ),
            // Other spellings network.subr reads count as persisted.
            (
                &["10.0.0.1/24"],
                "ifconfig_warden0=\"inet 10.0.0.1 netmask 0xffffff00\"\n",
                json!({}),
            ),
            (&["10.0.0.1/24"], "ipv4_addrs_warden0=\"10.0.0.1/24\"\n", json!({})),
        ] {
            let plan = ok(args.clone(), &with_bridge(addrs, rc));
            assert!(plan.describe().is_empty(), "{rc}: {:?}", plan.describe());
            assert!(plan.diffs.is_empty(), "{rc}");
            assert!(!plan.changes());
        }
    }

    #[test]
    fn a_second_agent_takes_the_next_alias() {
        let o = with_bridge(&["10.0.0.1/24"], "ifconfig_warden0=\"inet 10.0.0.1/24\"\n");
        let plan = ok(json!({"addresses": ["10.0.1.1/24"]}), &o);
        assert_eq!(
            plan.commands(),
            [
                format!("{IFCONFIG} warden0 inet 10.0.1.1/24 alias"),
                format!("{SYSRC} 'ifconfig_warden0_alias0=inet 10.0.1.1/24'"),
            ]
        );
        assert_eq!(
            plan.values["addresses"],
            json!(["10.0.0.1/24", "10.0.1.1/24"])
        );
        assert_eq!(
            diff_of(&plan, "warden0 addresses"),
            Some(("10.0.0.1/24\n", "10.0.0.1/24\n10.0.1.1/24\n"))
        );
        // A gap in the alias numbers is filled first.
        let gap = with_bridge(
            &["10.0.0.1/24", "10.0.2.1/24"],
            "ifconfig_warden0=\"inet 10.0.0.1/24\"\nifconfig_warden0_alias1=\"inet 10.0.2.1/24\"\n",
        );
        assert_eq!(
            ok(json!({"addresses": ["10.0.1.1/24"]}), &gap).commands()[1],
            format!("{SYSRC} 'ifconfig_warden0_alias0=inet 10.0.1.1/24'")
        );
        // The main slot without an address (just `up`) takes it first.
        let up_only = with_bridge(&[], "ifconfig_warden0=\"up\"\n");
        assert_eq!(
            ok(json!({}), &up_only).commands()[1],
            format!("{SYSRC} 'ifconfig_warden0=inet 10.0.0.1/24 up'")
        );
    }

    #[test]
    fn the_bridge_itself() {
        // Down: brought up.
        let mut down = with_bridge(&["10.0.0.1/24"], "ifconfig_warden0=\"inet 10.0.0.1/24\"\n");
        down.interfaces.last_mut().unwrap().flags.clear();
        assert_eq!(
            ok(json!({}), &down).commands(),
            [format!("{IFCONFIG} warden0 up")]
        );
        // A clone name is made with its own unit and persisted without a rename.
        let plan = ok(json!({"bridge": "bridge3"}), &host(""));
        assert_eq!(plan.commands()[0], format!("{IFCONFIG} bridge3 create"));
        assert_eq!(
            plan.commands()[3],
            format!("{SYSRC} cloned_interfaces=bridge3 'ifconfig_bridge3=inet 10.0.0.1/24'")
        );
        // The clone for boot is the lowest bridgeN no interface and no cloned_interfaces
        // word uses.
        let mut busy = host("cloned_interfaces=\"bridge1 tap0\"\n");
        busy.interfaces
            .push(iface("bridge0", true, &["bridge"], &[]));
        assert_eq!(
            ok(json!({}), &busy).commands()[3],
            format!("{SYSRC} 'cloned_interfaces=bridge1 tap0 bridge2' ifconfig_bridge2_name=warden0 'ifconfig_warden0=inet 10.0.0.1/24'")
        );
        // Persisted already but missing now: created, rc.conf's clone kept.
        let plan = ok(
            json!({}),
            &host(&format!(
                "{BRIDGE_RC}ifconfig_warden0=\"inet 10.0.0.1/24\"\n"
            )),
        );
        assert_eq!(
            plan.commands(),
            [
                format!("{IFCONFIG} bridge create name warden0"),
                format!("{IFCONFIG} warden0 up"),
                format!("{IFCONFIG} warden0 inet 10.0.0.1/24 alias"),
            ]
        );
        // persist: false leaves rc.conf alone.
        assert_eq!(ok(json!({"persist": false}), &host("")).commands().len(), 3);
    }

    #[test]
    fn refusals() {
        assert_eq!(
            refused(json!({"create": false}), &host("")),
            "bridge warden0 does not exist and create is false"
        );
        let mut not_bridge = host("");
        not_bridge
            .interfaces
            .push(iface("warden0", true, &["tap"], &[]));
        assert_eq!(
            refused(json!({}), &not_bridge),
            "warden0 exists but is not a bridge (groups: tap)"
        );
        assert!(refused(json!({"addresses": ["192.168.1.1/24"]}), &host(""))
            .contains("192.168.1.0/24 overlaps vtnet0 (192.168.1.10/24)"));
        let o = with_bridge(&["10.0.0.1/24"], "ifconfig_warden0=\"inet 10.0.0.1/24\"\n");
        assert_eq!(
            refused(json!({"addresses": ["10.0.0.1/16"]}), &o),
            "10.0.0.1 is already on warden0 with prefix /24; refusing /16 (a subnet keeps one prefix on the host)"
        );
        assert!(refused(json!({"addresses": ["10.0.0.129/25"]}), &o)
            .contains("10.0.0.128/25 overlaps 10.0.0.1/24, another agent's subnet on warden0"));
        // Persisted only (not up at runtime) counts too.
        let persisted = with_bridge(&[], "ifconfig_warden0=\"inet 10.0.0.1/24\"\n");
        assert!(refused(json!({"addresses": ["10.0.0.2/24"]}), &persisted)
            .contains("another agent's subnet"));
        // In an exclusive run what goes away does not clash.
        assert!(ok(
            json!({"addresses": ["10.0.0.129/25"], "exclusive": true}),
            &o
        )
        .changes());
        // rc.conf values the module cannot follow.
        assert!(refused(json!({}), &host("cloned_interfaces=\"$(list)\"\n"))
            .contains("shell expansion"));
        assert!(
            refused(json!({}), &host("network_interfaces=\"${x}\"\n")).contains("shell expansion")
        );
        assert!(
            refused(json!({}), &host("ifconfig_warden0_alias0=\"`x`\"\n"))
                .contains("shell expansion")
        );
    }

    #[test]
    fn network_interfaces_lists_get_the_bridge() {
        for (rc, expected) in [
            (
                "network_interfaces=\"lo0 vtnet0\"\n",
                Some("'network_interfaces=lo0 vtnet0 warden0'"),
            ),
            ("network_interfaces=\"AUTO\"\n", None),
            ("network_interfaces=\"auto\"\n", None),
            ("network_interfaces=\"lo0 warden0\"\n", None),
        ] {
            let plan = ok(json!({}), &host(rc));
            let sysrc = plan.commands()[3].clone();
            assert_eq!(
                expected.is_some_and(|e| sysrc.ends_with(e)),
                expected.is_some(),
                "{rc}: {sysrc}"
            );
            if expected.is_none() {
                assert!(!sysrc.contains("network_interfaces"), "{rc}: {sysrc}");
            }
        }
    }

    #[test]
    fn absent_removes_and_renumbers() {
        let o = with_bridge(
            &["10.0.0.1/24", "10.0.1.1/24", "10.0.2.1/24"],
            "ifconfig_warden0=\"inet 10.0.0.1/24\"\nifconfig_warden0_alias0=\"inet 10.0.1.1/24\"\nifconfig_warden0_alias1=\"inet 10.0.2.1/24\"\n",
        );
        let plan = ok(json!({"state": "absent", "addresses": ["10.0.1.1/24"]}), &o);
        assert_eq!(
            plan.commands(),
            [
                format!("{IFCONFIG} warden0 inet 10.0.1.1 -alias"),
                format!("{SYSRC} 'ifconfig_warden0_alias0=inet 10.0.2.1/24'"),
                format!("{SYSRC} -x ifconfig_warden0_alias1"),
            ]
        );
        assert_eq!(
            plan.values["addresses"],
            json!(["10.0.0.1/24", "10.0.2.1/24"])
        );
        // The main slot's address: the variable goes, the aliases stay as they are.
        let plan = ok(json!({"state": "absent"}), &o);
        assert_eq!(
            plan.commands(),
            [
                format!("{IFCONFIG} warden0 inet 10.0.0.1 -alias"),
                format!("{SYSRC} -x ifconfig_warden0"),
            ]
        );
        // Matched by address whatever the prefix; nothing there: nothing to do.
        assert_eq!(
            ok(json!({"state": "absent", "addresses": ["10.0.2.1/16"]}), &o).commands()[0],
            format!("{IFCONFIG} warden0 inet 10.0.2.1 -alias")
        );
        assert!(!ok(json!({"state": "absent", "addresses": ["10.0.9.1/24"]}), &o).changes());
        // No bridge at all: nothing to remove, and absent never creates it.
        assert!(!ok(json!({"state": "absent"}), &host("")).changes());
    }

    #[test]
    fn exclusive_keeps_only_the_requested_addresses() {
        let o = with_bridge(
            &["10.0.0.1/24", "10.0.1.1/24"],
            "ifconfig_warden0=\"inet 10.0.0.1/24\"\nifconfig_warden0_alias0=\"inet 10.0.1.1/24\"\n",
        );
        let plan = ok(json!({"exclusive": true, "addresses": ["10.0.1.1/24"]}), &o);
        assert_eq!(
            plan.commands(),
            [
                format!("{IFCONFIG} warden0 inet 10.0.0.1 -alias"),
                format!("{SYSRC} -x ifconfig_warden0"),
            ]
        );
        assert_eq!(plan.values["addresses"], json!(["10.0.1.1/24"]));
    }

    /// Each variable is changed in the file of netif's chain that holds its effective value.
    #[test]
    fn rc_conf_chain_values_are_changed_where_they_take_effect() {
        let mut o = host("");
        o.rc = RcChain {
            sources: vec![
                RcSource {
                    path: "/etc/rc.conf".into(),
                    conf: RcConf::parse("cloned_interfaces=\"bridge0\"\n"),
                },
                RcSource {
                    path: "/etc/rc.conf.d/network".into(),
                    conf: RcConf::parse("cloned_interfaces=\"tap0\"\n"),
                },
            ],
            primary: "/etc/rc.conf".into(),
        };
        let plan = ok(json!({}), &o);
        assert_eq!(
            plan.commands()[3..],
            [
                "/usr/sbin/sysrc -f /etc/rc.conf.d/network 'cloned_interfaces=tap0 bridge0'"
                    .to_string(),
                format!(
                    "{SYSRC} ifconfig_bridge0_name=warden0 'ifconfig_warden0=inet 10.0.0.1/24'"
                ),
            ]
        );
        assert_eq!(
            plan.values["rc_conf_files"],
            json!(["/etc/rc.conf.d/network", "/etc/rc.conf"])
        );
    }
}
