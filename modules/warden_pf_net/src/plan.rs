//! The pure planner: `(&Settings, &Observed) -> Plan`. It reads nothing and runs nothing;
//! the table tests below build [`Observed`] in code and check the steps, the
//! commands, the diff, `changed` and the values. [`target`] — what the two files should
//! hold — is pure too, and observe uses it to know what else to ask.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use ipnet::Ipv4Net;

use warden_runtime::fs::FileState;
use warden_runtime::ipv4;
use warden_runtime::pfctl::{self, CheckRuleset, LoadRuleset, RulesetFile};
use warden_runtime::plan::RunCmd;
use warden_runtime::spec::State;
use warden_runtime::sysrc::Changes;
use warden_runtime::{kld, sysctl, Diff, Plan};

use crate::observe::Observed;
use crate::{parse_set, render, sort_subnets, text_of, RenderOpts, Settings};

/// What the include file and pf.conf should hold.
#[derive(Debug, Clone)]
pub struct Target {
    /// The subnet set after this run, sorted.
    pub set: Vec<Ipv4Net>,
    pub include: String,
    pub main: String,
    /// The uplink the NAT rule uses (empty when the set is).
    pub ext_if: String,
    /// The files that change; the main file last.
    pub files: Vec<RulesetFile>,
}

/// The subnet set, the include file and the main ruleset this run wants, from the files as
/// they are.
pub fn target(
    params: &Settings,
    include: &Option<FileState>,
    main: &Option<FileState>,
) -> Result<Target> {
    let requested = &params.subnets;
    let current = parse_set(&text_of(include), &params.path)?;
    let mut set: Vec<Ipv4Net> = match (params.state, params.exclusive) {
        (State::Absent, _) => current
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
    let main_text = text_of(main);
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
    let new_include = render(
        &set,
        RenderOpts {
            ext_if: params.ext_if.as_deref(),
            bridge: &params.bridge,
            pf_conf: &params.pf_conf,
            allow_host_access: params.allow_host_access,
            allow_inter_agent: params.allow_inter_agent,
        },
    );
    let mut files = Vec::new();
    if text_of(include) != new_include || include.is_none() {
        files.push(RulesetFile {
            path: PathBuf::from(&params.path),
            content: new_include.clone(),
            previous: include.clone(),
        });
    }
    if new_main != main_text || main.is_none() {
        files.push(RulesetFile {
            path: PathBuf::from(&params.pf_conf),
            content: new_main.clone(),
            previous: main.clone(),
        });
    }
    Ok(Target {
        set,
        include: new_include,
        main: new_main,
        ext_if,
        files,
    })
}

pub fn plan(params: &Settings, o: &Observed) -> Result<Plan> {
    let mut plan = Plan::new();
    let Target {
        set,
        include: new_include,
        main: new_main,
        ext_if,
        files,
    } = target(params, &o.include, &o.main)?;
    if !set.is_empty() {
        let names = o.interfaces.as_deref().unwrap_or_default();
        if !names.contains(&ext_if) {
            bail!(
                "ext_if {ext_if} is not an interface on this host (it has: {})",
                names.join(" ")
            );
        }
    }
    let pfctl_tool = &o.tools.pfctl;
    let nets: Vec<String> = set.iter().map(|n| n.to_string()).collect();
    // Files already right: make sure the loaded rules still translate every subnet (a
    // fresh pf.ko holds none).
    let stale_rules = files.is_empty()
        && !set.is_empty()
        && (!o.pf_loaded
            || !pfctl::translates_all(
                o.nat_rules.as_deref().unwrap_or_default(),
                o.filter_rules.as_deref().unwrap_or_default(),
                &nets,
            ));
    let reload = !files.is_empty() || stale_rules;
    // pf.ko: without it only `pfctl -n` works, and a fresh module holds no rules and is off.
    let load_module = !o.pf_loaded && (reload || params.enable);
    // Check the candidates before loading the module, so a rejected ruleset changes nothing.
    let check_first = load_module && !files.is_empty();
    if check_first {
        plan.step(CheckRuleset {
            pfctl: pfctl_tool.clone(),
            main: PathBuf::from(&params.pf_conf),
            files: files.clone(),
        });
    }
    if load_module {
        plan.run(kld::load(&o.tools.kldload, pfctl::KERNEL_MODULE));
    }
    if reload {
        plan.step(LoadRuleset {
            pfctl: pfctl_tool.clone(),
            main: PathBuf::from(&params.pf_conf),
            files,
            check: !check_first,
        });
    }
    plan.diff(Diff::new(
        params.path.clone(),
        text_of(&o.include),
        new_include,
    ));
    plan.diff(Diff::new(
        params.pf_conf.clone(),
        text_of(&o.main),
        new_main,
    ));

    if params.enable {
        let Some(e) = &o.enabling else {
            bail!("the host's rc.conf and forwarding were not read");
        };
        // Each variable where the rc.d script that reads it at boot finds it: rc.d/pf
        // (`load_rc_config pf`) and rc.d/routing (`load_rc_config routing`).
        let mut changes = Changes::on(&e.pf_rc);
        changes.set("pf_enable", "YES")?;
        changes.set_in(&e.routing_rc, "gateway_enable", "YES")?;
        changes.apply_to(&o.tools.sysrc, &mut plan)?;
        if !e.pf_enabled {
            plan.step(RunCmd::new(pfctl::enable(pfctl_tool)).undo_with(pfctl::disable(pfctl_tool)));
        }
        if e.forwarding != "1" {
            plan.step(
                RunCmd::new(sysctl::set(&o.tools.sysctl, sysctl::IP_FORWARDING, "1")).undo_with(
                    sysctl::set(&o.tools.sysctl, sysctl::IP_FORWARDING, &e.forwarding),
                ),
            );
        }
    }

    plan.value("subnets", nets);
    plan.value("reloaded", reload);
    plan.value("pf_module_loaded", load_module);
    plan.value("path", params.path.clone());
    plan.value("ext_if", ext_if);
    Ok(plan)
}

#[cfg(test)]
mod tests {
    //! Table tests of the planner: every case builds the host as [`Observed`] in code.
    use serde_json::{json, Value};
    use warden_runtime::rcconf::{RcChain, RcConf};

    use super::*;
    use crate::observe::{Enabling, Tools};
    use crate::{checks, WardenPfNet};

    const PFCTL: &str = "/sbin/pfctl";
    const INCLUDE: &str = "/etc/pf.warden.conf";
    const PF_CONF: &str = "/etc/pf.conf";
    const ADMIN: &str = "ext_if = \"vtnet0\"\nset skip on lo0\nnat on $ext_if from 192.168.50.0/24 to any -> ($ext_if)\nblock in all\npass out all keep state\n";

    /// The settings of a run with `args` (10.0.1.0/24 over vtnet0 unless they say otherwise).
    fn params(args: Value) -> Settings {
        let mut raw = json!({"subnets": ["10.0.1.0/24"], "ext_if": "vtnet0"});
        raw.as_object_mut()
            .unwrap()
            .extend(args.as_object().unwrap().clone());
        checks::settings(&warden_testkit::params::<WardenPfNet>(raw)).unwrap()
    }

    fn file(text: &str) -> Option<FileState> {
        Some(FileState {
            content: text.as_bytes().to_vec(),
            mode: 0o644,
            uid: 0,
            gid: 0,
        })
    }

    fn rc(text: &str) -> RcChain {
        RcChain::single(std::path::Path::new("/etc/rc.conf"), RcConf::parse(text))
    }

    fn nets(list: &[&str]) -> Vec<Ipv4Net> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn include_for(subnets: &[&str], p: &Settings) -> String {
        render(
            &nets(subnets),
            RenderOpts {
                ext_if: p.ext_if.as_deref(),
                bridge: &p.bridge,
                pf_conf: &p.pf_conf,
                allow_host_access: p.allow_host_access,
                allow_inter_agent: p.allow_inter_agent,
            },
        )
    }

    /// A host where PF never ran: no files, pf.ko not loaded, forwarding off.
    fn fresh() -> Observed {
        Observed {
            tools: Tools {
                pfctl: PFCTL.into(),
                kldload: "/sbin/kldload".into(),
                sysrc: "/usr/sbin/sysrc".into(),
                sysctl: "/sbin/sysctl".into(),
            },
            include: None,
            main: None,
            interfaces: Some(vec!["vtnet0".into(), "lo0".into(), "warden0".into()]),
            pf_loaded: false,
            nat_rules: None,
            filter_rules: None,
            enabling: Some(Enabling {
                pf_rc: rc(""),
                routing_rc: rc(""),
                pf_enabled: false,
                forwarding: "0".into(),
            }),
        }
    }

    const NAT_1: &str = "nat on vtnet0 inet from 10.0.1.0/24 to any -> (vtnet0) round-robin";

    /// Everything as a run for `subnets` left it.
    fn converged(subnets: &[&str]) -> Observed {
        let p = params(json!({}));
        let mut o = fresh();
        o.include = file(&include_for(subnets, &p));
        o.main = file(&format!(
            "# Created by warden_pf_net.\ninclude \"{INCLUDE}\"\n"
        ));
        o.pf_loaded = true;
        o.nat_rules = Some(
            subnets
                .iter()
                .map(|s| NAT_1.replace("10.0.1.0/24", s))
                .collect(),
        );
        o.enabling = Some(Enabling {
            pf_rc: rc("pf_enable=\"YES\"\ngateway_enable=\"YES\"\n"),
            routing_rc: rc("pf_enable=\"YES\"\ngateway_enable=\"YES\"\n"),
            pf_enabled: true,
            forwarding: "1".into(),
        });
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
    fn a_fresh_host_is_predicted_as_a_freshly_loaded_pf_ko() {
        let plan = ok(json!({}), &fresh());
        assert_eq!(
            plan.describe(),
            [
                format!("{PFCTL} -nf {PF_CONF}"),
                "/sbin/kldload -n pf".into(),
                format!("{PFCTL} -f {PF_CONF}"),
                "/usr/sbin/sysrc -f /etc/rc.conf pf_enable=YES gateway_enable=YES".into(),
                format!("{PFCTL} -e"),
                "/sbin/sysctl net.inet.ip.forwarding=1".into(),
            ]
        );
        // The check changes nothing, so it is not in the trail; the two files the load writes
        // are, before its `pfctl -f`.
        assert_eq!(
            plan.commands()[..3],
            [
                "/sbin/kldload -n pf".to_string(),
                format!("write {INCLUDE}"),
                format!("write {PF_CONF}"),
            ]
        );
        assert_eq!(plan.commands().len(), 7);
        assert!(plan.changes());
        assert_eq!(plan.values["reloaded"], true);
        assert_eq!(plan.values["pf_module_loaded"], true);
        assert_eq!(plan.values["subnets"], json!(["10.0.1.0/24"]));
        assert_eq!(plan.values["ext_if"], "vtnet0");
        let p = params(json!({}));
        assert_eq!(
            diff_of(&plan, INCLUDE),
            Some(("", include_for(&["10.0.1.0/24"], &p).as_str()))
        );
        assert_eq!(
            diff_of(&plan, PF_CONF),
            Some((
                "",
                format!("# Created by warden_pf_net.\ninclude \"{INCLUDE}\"\n").as_str()
            ))
        );
    }

    #[test]
    fn a_converged_host_changes_nothing() {
        for subnets in [&["10.0.1.0/24"][..], &["10.0.0.0/24", "10.0.1.0/24"]] {
            let plan = ok(json!({}), &converged(subnets));
            assert!(plan.describe().is_empty(), "{:?}", plan.describe());
            assert!(plan.diffs.is_empty());
            assert_eq!(plan.values["reloaded"], false);
            assert_eq!(plan.values["pf_module_loaded"], false);
            assert_eq!(plan.values["subnets"], json!(subnets));
        }
    }

    #[test]
    fn loaded_rules_that_lost_a_subnet_are_reloaded() {
        let reload = vec![format!("{PFCTL} -f {PF_CONF}")];
        for (nat, rules, commands) in [
            // Flushed: `-s nat` and `-s rules` both empty.
            (vec![], Some(vec![]), reload.clone()),
            // Only another subnet is translated.
            (
                vec![NAT_1.replace("10.0.1.0", "10.0.9.0")],
                Some(vec![]),
                reload.clone(),
            ),
            // OpenBSD-style nat-to, listed with the filter rules.
            (
                vec![],
                Some(vec!["pass out on vtnet0 inet from 10.0.1.0/24 to any flags S/SA keep state nat-to (vtnet0) round-robin".to_string()]),
                vec![],
            ),
        ] {
            let mut o = converged(&["10.0.1.0/24"]);
            o.nat_rules = Some(nat.clone());
            o.filter_rules = rules;
            let plan = ok(json!({}), &o);
            assert_eq!(plan.commands(), commands, "{nat:?}");
            assert_eq!(plan.values["reloaded"], !commands.is_empty());
            assert!(plan.diffs.is_empty());
        }
    }

    #[test]
    fn files_right_but_pf_ko_missing_loads_module_and_rules() {
        let mut o = converged(&["10.0.1.0/24"]);
        o.pf_loaded = false;
        o.nat_rules = None;
        o.enabling = None;
        let plan = ok(json!({"enable": false}), &o);
        assert_eq!(
            plan.describe(),
            [
                "/sbin/kldload -n pf".to_string(),
                format!("{PFCTL} -f {PF_CONF}")
            ]
        );
        assert_eq!(plan.values["pf_module_loaded"], true);
        // With enable, a freshly loaded pf.ko is off: -e follows.
        let mut o = converged(&["10.0.1.0/24"]);
        o.pf_loaded = false;
        o.nat_rules = None;
        o.enabling.as_mut().unwrap().pf_enabled = false;
        assert_eq!(
            ok(json!({}), &o).commands(),
            [
                "/sbin/kldload -n pf".to_string(),
                format!("{PFCTL} -f {PF_CONF}"),
                format!("{PFCTL} -e")
            ]
        );
    }

    #[test]
    fn with_pf_ko_loaded_changed_files_are_checked_inside_the_load() {
        let mut o = converged(&["10.0.0.0/24"]);
        o.nat_rules = None;
        let plan = ok(json!({}), &o);
        assert_eq!(plan.describe(), [format!("{PFCTL} -f {PF_CONF}")]);
        assert_eq!(
            plan.values["subnets"],
            json!(["10.0.0.0/24", "10.0.1.0/24"])
        );
        let p = params(json!({}));
        assert_eq!(
            diff_of(&plan, INCLUDE).unwrap().1,
            include_for(&["10.0.0.0/24", "10.0.1.0/24"], &p)
        );
        assert_eq!(diff_of(&plan, PF_CONF), None, "pf.conf already includes it");
    }

    #[test]
    fn the_subnet_set_per_state() {
        let two = converged(&["10.0.0.0/24", "10.0.1.0/24"]);
        for (args, set) in [
            (json!({}), vec!["10.0.0.0/24", "10.0.1.0/24"]),
            (
                json!({"subnets": ["10.0.2.0/24"]}),
                vec!["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"],
            ),
            (
                json!({"subnets": ["10.0.10.0/24"]}),
                vec!["10.0.0.0/24", "10.0.1.0/24", "10.0.10.0/24"],
            ),
            (json!({"state": "absent"}), vec!["10.0.0.0/24"]),
            (
                json!({"state": "absent", "subnets": ["10.0.5.0/24"]}),
                vec!["10.0.0.0/24", "10.0.1.0/24"],
            ),
            (
                json!({"exclusive": true, "subnets": ["10.0.2.0/24"]}),
                vec!["10.0.2.0/24"],
            ),
        ] {
            let mut o = two.clone();
            o.nat_rules = None;
            let plan = ok(args.clone(), &o);
            assert_eq!(plan.values["subnets"], json!(set), "{args}");
        }
        // The last agent leaves: no subnets, no uplink needed, nothing else of the host asked.
        let mut o = converged(&["10.0.1.0/24"]);
        o.interfaces = None;
        let plan = ok(json!({"state": "absent", "ext_if": null}), &o);
        assert_eq!(plan.values["subnets"], json!([]));
        assert_eq!(plan.values["ext_if"], "");
        assert!(diff_of(&plan, INCLUDE)
            .unwrap()
            .1
            .ends_with("# No agent subnets.\n"));
        assert_eq!(
            plan.commands(),
            [format!("write {INCLUDE}"), format!("{PFCTL} -f {PF_CONF}")]
        );
    }

    #[test]
    fn refusals() {
        let o = converged(&["10.0.0.0/16"]);
        assert_eq!(
            refused(json!({}), &o),
            format!("10.0.1.0/24 overlaps 10.0.0.0/16, already in the subnet set in {INCLUDE}; each agent needs its own subnet")
        );
        // exclusive replaces the set, so nothing overlaps.
        assert!(ok(json!({"exclusive": true}), &o).changes());
        assert_eq!(
            refused(json!({"ext_if": "em9"}), &fresh()),
            "ext_if em9 is not an interface on this host (it has: vtnet0 lo0 warden0)"
        );
        assert_eq!(
            refused(json!({"ext_if": null}), &fresh()),
            format!("{PF_CONF} defines no ext_if macro before the warden include; set the ext_if parameter (the uplink interface, e.g. vtnet0)")
        );
        let mut broken = fresh();
        broken.include = file("warden_net = \"{ 10.0.0.0/24, bogus }\"\n");
        assert!(refused(json!({}), &broken).contains("\"bogus\" in the subnet set is not a subnet"));
    }

    #[test]
    fn an_admin_pf_conf_gets_the_include_before_its_first_filter_rule() {
        let mut o = fresh();
        o.main = file(ADMIN);
        let plan = ok(json!({"ext_if": null}), &o);
        assert_eq!(
            plan.values["ext_if"], "vtnet0",
            "from the main ruleset's macro"
        );
        let after = diff_of(&plan, PF_CONF).unwrap().1;
        assert_eq!(
            after,
            ADMIN.replace(
                "block in all\n",
                &format!(
                    "include \"{INCLUDE}\"  # warden agents' NAT (warden_pf_net)\nblock in all\n"
                )
            )
        );
        assert!(diff_of(&plan, INCLUDE)
            .unwrap()
            .1
            .contains("nat on $ext_if from $warden_net"));
        // manage_include: false leaves it alone.
        let plan = ok(json!({"manage_include": false}), &o);
        assert_eq!(diff_of(&plan, PF_CONF), None);
    }

    #[test]
    fn enabling_pf_and_forwarding() {
        let base = converged(&["10.0.1.0/24"]);
        let sysrc = "/usr/sbin/sysrc";
        for (pf_rc, enabled, forwarding, commands) in [
            (
                "gateway_enable=\"YES\"\n",
                true,
                "1",
                vec![format!("{sysrc} -f /etc/rc.conf pf_enable=YES")],
            ),
            (
                "pf_enable=\"YES\"\ngateway_enable=\"YES\"\n",
                false,
                "1",
                vec![format!("{PFCTL} -e")],
            ),
            (
                "pf_enable=\"YES\"\ngateway_enable=\"YES\"\n",
                true,
                "0",
                vec!["/sbin/sysctl net.inet.ip.forwarding=1".to_string()],
            ),
        ] {
            let mut o = base.clone();
            o.enabling = Some(Enabling {
                pf_rc: rc(pf_rc),
                routing_rc: rc(pf_rc),
                pf_enabled: enabled,
                forwarding: forwarding.into(),
            });
            assert_eq!(
                ok(json!({}), &o).commands(),
                commands,
                "{pf_rc:?} {enabled} {forwarding}"
            );
        }
        // enable: false touches none of it.
        let mut o = base.clone();
        o.enabling = None;
        assert!(!ok(json!({"enable": false}), &o).changes());
    }

    /// `gateway_enable` goes where rc.d/routing reads it, `pf_enable` where rc.d/pf does.
    #[test]
    fn each_variable_in_the_file_where_it_takes_effect() {
        let mut o = converged(&["10.0.1.0/24"]);
        let pf_rc = RcChain {
            sources: vec![
                warden_runtime::rcconf::RcSource {
                    path: "/etc/rc.conf".into(),
                    conf: RcConf::parse("pf_enable=\"YES\"\n"),
                },
                warden_runtime::rcconf::RcSource {
                    path: "/etc/rc.conf.d/pf".into(),
                    conf: RcConf::parse("pf_enable=\"NO\"\n"),
                },
            ],
            primary: "/etc/rc.conf".into(),
        };
        let routing_rc = RcChain {
            sources: vec![warden_runtime::rcconf::RcSource {
                path: "/etc/rc.conf.local".into(),
                conf: RcConf::parse("gateway_enable=\"NO\"\n"),
            }],
            primary: "/etc/rc.conf".into(),
        };
        o.enabling = Some(Enabling {
            pf_rc,
            routing_rc,
            pf_enabled: true,
            forwarding: "1".into(),
        });
        assert_eq!(
            ok(json!({}), &o).commands(),
            [
                "/usr/sbin/sysrc -f /etc/rc.conf.d/pf pf_enable=YES",
                "/usr/sbin/sysrc -f /etc/rc.conf.local gateway_enable=YES"
            ]
        );
    }
}
