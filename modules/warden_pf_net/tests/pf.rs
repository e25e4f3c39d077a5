//! warden_pf_net against a simulated FreeBSD host (simulated pfctl, sysrc, sysctl, ifconfig).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly where module code may not

use serde_json::{json, Value};
use warden_sim::host::{with, ModuleRun, SimHost};

fn module(host: &SimHost, args: Value) -> ModuleRun {
    host.run_module(env!("CARGO_BIN_EXE_warden_pf_net"), &args)
}

fn params(host: &SimHost, subnets: &[&str]) -> Value {
    host.args(json!({
        "subnets": subnets,
        "path": host.p("/etc/pf.warden.conf"),
        "pf_conf": host.p("/etc/pf.conf"),
    }))
}

fn stdout(host: &SimHost, tool: &str, args: &[&str]) -> String {
    host.tool_out(tool, args).0
}

/// A pf.conf as an admin writes it: comments, options, scrub, NAT of its own, filter rules.
const ADMIN_PF_CONF: &str = "# Host firewall, hand-written.\next_if = \"vtnet0\"\nset skip on lo0\nscrub in all\n\
nat on $ext_if from 192.168.50.0/24 to any -> ($ext_if)\n\n# Filtering\nblock in all\npass out all keep state\npass in on $ext_if proto tcp to port 22 keep state\n";

#[test]
fn fresh_host_with_ext_if_gets_files_rules_and_forwarding() {
    let host = SimHost::new();
    let run = module(
        &host,
        with(params(&host, &["10.0.1.0/24"]), json!({"ext_if": "vtnet0"})),
    );
    assert_eq!(run.code, 0, "{}", run.result);
    assert_eq!(run.result["reloaded"], true);
    // The guide's lone `pass quick on warden0 … to any` opened the host and the other
    // agents to the jails (issue 14); the rules now close both before passing the rest.
    assert_eq!(
        host.read("/etc/pf.warden.conf"),
        format!(
            "# Managed by warden_pf_net; changes here are overwritten. NAT and filtering for the\n\
             # warden agents' subnets on warden0, included from {}; rules above the include\n\
             # line there come first.\n\
             warden_ext_if = \"vtnet0\"\nwarden_net = \"{{ 10.0.1.0/24 }}\"\nnat on $warden_ext_if from $warden_net to any -> ($warden_ext_if)\n\
             # The host's own addresses, every agent's .1 included, are closed to the jails\n\
             # (allow_host_access: false).\n\
             block drop in quick on warden0 inet from $warden_net to (self)\n\
             # Connections the host opens to its agents' jails.\n\
             pass out quick on warden0 inet from (self) to $warden_net keep state\n\
             # Each agent's jails reach each other (bridged: seen on warden0 and on the jails' epairs).\n\
             pass in quick on warden0 inet from 10.0.1.0/24 to 10.0.1.0/24 keep state\n\
             pass quick on epair inet from 10.0.1.0/24 to 10.0.1.0/24 keep state\n\
             # Everything else leaves through the NAT rule above.\n\
             pass in quick on warden0 inet from $warden_net to any keep state\n",
            host.p("/etc/pf.conf")
        )
    );
    assert_eq!(
        host.read("/etc/pf.conf"),
        format!(
            "# Created by warden_pf_net.\ninclude \"{}\"\n",
            host.p("/etc/pf.warden.conf")
        )
    );
    assert_eq!(
        stdout(&host, "pfctl", &["-s", "nat"]),
        "nat on vtnet0 inet from 10.0.1.0/24 to any -> (vtnet0) round-robin\n"
    );
    assert!(stdout(&host, "pfctl", &["-s", "info"]).starts_with("Status: Enabled"));
    assert_eq!(
        stdout(&host, "sysctl", &["-n", "net.inet.ip.forwarding"]),
        "1\n"
    );
    let rc = host.read("/etc/rc.conf");
    assert!(
        rc.contains("pf_enable=\"YES\"\n") && rc.contains("gateway_enable=\"YES\"\n"),
        "{rc}"
    );

    host.clear_calls();
    let again = module(
        &host,
        with(params(&host, &["10.0.1.0/24"]), json!({"ext_if": "vtnet0"})),
    );
    assert_eq!(again.result["changed"], false, "{}", again.result);
    assert_eq!(again.result["reloaded"], false);
    assert!(
        host.mutating_calls().is_empty(),
        "{:?}",
        host.mutating_calls()
    );
    assert_eq!(
        host.calls().len(),
        5,
        "ifconfig -l, kldstat -q -m pf, pfctl -s nat, pfctl -s info, sysctl -n: {:?}",
        host.calls()
    );
}

#[test]
fn admin_pf_conf_gets_one_include_line_before_the_filter_rules() {
    let host = SimHost::new();
    std::fs::write(host.path("/etc/pf.conf"), ADMIN_PF_CONF).unwrap();
    let run = module(&host, params(&host, &["10.0.1.0/24"]));
    assert_eq!(run.code, 0, "{}", run.result);
    let include = format!(
        "include \"{}\"  # warden agents' NAT (warden_pf_net)",
        host.p("/etc/pf.warden.conf")
    );
    let got = host.read("/etc/pf.conf");
    assert_eq!(got.matches("include").count(), 1);
    assert_eq!(
        got.replace(&format!("{include}\n"), ""),
        ADMIN_PF_CONF,
        "only the include line was added"
    );
    assert!(got.find(&include).unwrap() < got.find("block in all").unwrap());
    assert!(got.find(&include).unwrap() > got.find("nat on $ext_if").unwrap());
    assert_eq!(
        stdout(&host, "pfctl", &["-s", "nat"]),
        "nat on vtnet0 inet from 192.168.50.0/24 to any -> (vtnet0) round-robin\nnat on vtnet0 inet from 10.0.1.0/24 to any -> (vtnet0) round-robin\n"
    );
    assert_eq!(run.result["ext_if"], "vtnet0");
}

#[test]
fn agents_merge_into_one_sorted_set_and_leave_one_by_one() {
    let host = SimHost::new();
    std::fs::write(host.path("/etc/pf.conf"), ADMIN_PF_CONF).unwrap();
    module(&host, params(&host, &["10.0.1.0/24"]));
    let run = module(&host, params(&host, &["10.0.0.0/24"]));
    assert_eq!(run.result["subnets"], json!(["10.0.0.0/24", "10.0.1.0/24"]));
    assert!(host
        .read("/etc/pf.warden.conf")
        .contains("warden_net = \"{ 10.0.0.0/24, 10.0.1.0/24 }\"\n"));
    assert_eq!(
        module(&host, params(&host, &["10.0.1.0/24"])).result["changed"],
        false
    );

    let run = module(
        &host,
        with(params(&host, &["10.0.1.0/24"]), json!({"state": "absent"})),
    );
    assert_eq!(run.result["subnets"], json!(["10.0.0.0/24"]));
    let nat = stdout(&host, "pfctl", &["-s", "nat"]);
    assert!(
        nat.contains("10.0.0.0/24") && !nat.contains("10.0.1.0/24"),
        "{nat}"
    );

    let run = module(
        &host,
        with(params(&host, &["10.0.5.0/24"]), json!({"exclusive": true})),
    );
    assert_eq!(run.result["subnets"], json!(["10.0.5.0/24"]));
    let run = module(
        &host,
        with(params(&host, &["10.0.5.0/24"]), json!({"state": "absent"})),
    );
    assert_eq!(run.result["subnets"], json!([]));
    assert!(host
        .read("/etc/pf.warden.conf")
        .contains("# No agent subnets.\n"));
    assert_eq!(
        stdout(&host, "pfctl", &["-s", "nat"]),
        "nat on vtnet0 inet from 192.168.50.0/24 to any -> (vtnet0) round-robin\n"
    );
}

#[test]
fn a_ruleset_pfctl_rejects_changes_nothing() {
    let host = SimHost::new();
    // The admin's file is already broken: NAT after a filter rule.
    let broken = "ext_if = \"vtnet0\"\npass out all\nnat on $ext_if from 192.168.50.0/24 to any -> ($ext_if)\n";
    std::fs::write(host.path("/etc/pf.conf"), broken).unwrap();
    let before = host.snapshot();
    let run = module(&host, params(&host, &["10.0.1.0/24"]));
    assert_eq!(run.code, 1, "{}", run.result);
    assert!(
        run.msg()
            .contains("pfctl rejected the new ruleset, nothing was changed"),
        "{}",
        run.msg()
    );
    assert!(
        run.msg().contains(&format!(
            "{}:4: Rules must be in order",
            host.p("/etc/pf.conf")
        )),
        "pfctl's message names the real file: {}",
        run.msg()
    );
    assert_eq!(host.snapshot(), before);
    assert!(
        !run.msg().contains("warden-check"),
        "no temporary names leak: {}",
        run.msg()
    );
}

#[test]
fn a_failed_load_restores_and_reloads_the_previous_files() {
    let host = SimHost::new();
    std::fs::write(host.path("/etc/pf.conf"), ADMIN_PF_CONF).unwrap();
    module(&host, params(&host, &["10.0.1.0/24"]));
    let before = host.snapshot();
    let nat_before = stdout(&host, "pfctl", &["-s", "nat"]);
    host.add_fault_times(
        "pfctl",
        &format!("-f {}", host.p("/etc/pf.conf")),
        1,
        "pfctl: DIOCXCOMMIT: Device busy",
        1,
    );
    let run = module(&host, params(&host, &["10.0.2.0/24"]));
    assert_eq!(run.code, 1, "{}", run.result);
    assert!(
        run.msg()
            .contains("previous files were restored and loaded"),
        "{}",
        run.msg()
    );
    assert!(run.msg().contains("Device busy"), "{}", run.msg());
    assert_eq!(host.snapshot(), before);
    assert_eq!(stdout(&host, "pfctl", &["-s", "nat"]), nat_before);
    let retry = module(&host, params(&host, &["10.0.2.0/24"]));
    assert_eq!(
        retry.result["subnets"],
        json!(["10.0.1.0/24", "10.0.2.0/24"])
    );
}

#[test]
fn flushed_rules_are_reloaded() {
    let host = SimHost::new();
    std::fs::write(host.path("/etc/pf.conf"), ADMIN_PF_CONF).unwrap();
    module(&host, params(&host, &["10.0.1.0/24"]));
    std::fs::write(
        host.path("/sim/pf.json"),
        r#"{"enabled": true, "ever_enabled": true, "nat": [], "rules": []}"#,
    )
    .unwrap();
    let run = module(&host, params(&host, &["10.0.1.0/24"]));
    assert_eq!(
        (
            run.result["changed"].clone(),
            run.result["reloaded"].clone()
        ),
        (json!(true), json!(true)),
        "{}",
        run.result
    );
    assert!(stdout(&host, "pfctl", &["-s", "nat"]).contains("10.0.1.0/24"));
}

#[test]
fn check_mode_predicts_and_changes_nothing() {
    let host = SimHost::new();
    std::fs::write(host.path("/etc/pf.conf"), ADMIN_PF_CONF).unwrap();
    let before = host.snapshot();
    let check = module(
        &host,
        with(
            params(&host, &["10.0.1.0/24"]),
            json!({"_ansible_check_mode": true, "_ansible_diff": true}),
        ),
    );
    assert_eq!(check.result["changed"], true, "{}", check.result);
    assert_eq!(host.snapshot(), before);
    assert!(
        host.mutating_calls().is_empty(),
        "{:?}",
        host.mutating_calls()
    );
    let diff = check.result["diff"].as_array().unwrap();
    assert!(
        diff[1]["after"].as_str().unwrap().contains("include \""),
        "{diff:?}"
    );
    let real = module(&host, params(&host, &["10.0.1.0/24"]));
    assert_eq!(real.result["commands"], check.result["commands"]);
}

#[test]
fn bad_input_is_refused_before_anything_changes() {
    let host = SimHost::new();
    let before = host.snapshot();
    for (subnets, extra, needle) in [
        (
            vec!["10.0.1.1/24"],
            json!({"ext_if": "vtnet0"}),
            "is not a subnet (network address); did you mean 10.0.1.0/24?",
        ),
        (
            vec!["8.8.8.0/24"],
            json!({"ext_if": "vtnet0"}),
            "not in a private range",
        ),
        (
            vec!["10.0.1.0"],
            json!({"ext_if": "vtnet0"}),
            "no prefix length",
        ),
        (
            vec!["10.0.1.0/24"],
            json!({}),
            "defines no ext_if macro before the warden include; set the ext_if parameter",
        ),
        (
            vec!["10.0.1.0/24"],
            json!({"ext_if": "vtnet9"}),
            "ext_if vtnet9 is not an interface on this host",
        ),
        (
            vec!["10.0.1.0/24"],
            json!({"ext_if": "vt net0"}),
            "is not an interface name",
        ),
    ] {
        let run = module(&host, with(params(&host, &subnets), extra.clone()));
        assert_eq!(run.code, 1, "{extra}");
        assert!(
            run.msg().contains(needle),
            "{subnets:?} {extra}: {}",
            run.msg()
        );
    }
    assert_eq!(host.snapshot(), before);
    assert!(host.mutating_calls().is_empty());
}

#[test]
fn rc_conf_chain_pf_and_gateway_enable_are_changed_where_they_take_effect() {
    // Issue 13 gap 4: rc.conf.local (read by every rc.d script) and rc.conf.d/routing (read
    // by rc.d/routing only) override rc.conf, so writing YES into rc.conf left PF and
    // forwarding off after a boot.
    let host = SimHost::new();
    std::fs::write(host.path("/etc/rc.conf.local"), "pf_enable=\"NO\"\n").unwrap();
    std::fs::write(
        host.path("/etc/rc.conf.d/routing"),
        "gateway_enable=\"NO\"\n",
    )
    .unwrap();
    let run = module(
        &host,
        with(params(&host, &["10.0.1.0/24"]), json!({"ext_if": "vtnet0"})),
    );
    assert_eq!(run.code, 0, "{}", run.result);
    assert_eq!(host.read("/etc/rc.conf.local"), "pf_enable=\"YES\"\n");
    assert_eq!(
        host.read("/etc/rc.conf.d/routing"),
        "gateway_enable=\"YES\"\n"
    );
    let rc_conf = host.read("/etc/rc.conf");
    assert!(
        !rc_conf.contains("pf_enable") && !rc_conf.contains("gateway_enable"),
        "{rc_conf}"
    );
    host.boot();
    assert!(stdout(&host, "pfctl", &["-s", "info"]).starts_with("Status: Enabled"));
    assert_eq!(
        stdout(&host, "pfctl", &["-s", "nat"]),
        "nat on vtnet0 inet from 10.0.1.0/24 to any -> (vtnet0) round-robin\n"
    );
    assert_eq!(
        stdout(&host, "sysctl", &["-n", "net.inet.ip.forwarding"]),
        "1\n"
    );
    let again = module(
        &host,
        with(params(&host, &["10.0.1.0/24"]), json!({"ext_if": "vtnet0"})),
    );
    assert_eq!(again.result["changed"], false, "{}", again.result);
}

/// Issue 13, gap 1: on a fresh host PF was never started, so pf.ko is not loaded and every
/// pfctl call but `-n` fails with `pfctl: /dev/pf: No such file or directory`. Check mode
/// must predict loading it without running such a call; a real run loads it the way
/// rc.d/pf does (`kldstat -q -m pf`, then `kldload`), then loads and enables the rules.
#[test]
fn issue13_gap1_pf_ko_not_loaded_on_a_fresh_host() {
    let host = SimHost::new();
    assert_eq!(
        host.tool("kldstat", &["-q", "-m", "pf"]).status.code(),
        Some(1)
    );
    let args = with(params(&host, &["10.0.1.0/24"]), json!({"ext_if": "vtnet0"}));
    let before = host.snapshot();
    let check = module(
        &host,
        with(args.clone(), json!({"_ansible_check_mode": true})),
    );
    assert_eq!(check.code, 0, "{}", check.result);
    assert_eq!(check.result["changed"], true);
    assert_eq!(host.snapshot(), before);
    assert!(
        host.mutating_calls().is_empty(),
        "{:?}",
        host.mutating_calls()
    );
    // Nothing that needs /dev/pf ran.
    assert!(
        host.calls()
            .iter()
            .all(|c| c.rc == 0 || c.tool == "kldstat"),
        "{:?}",
        host.calls()
    );
    let kldload = host.bin.join("kldload").display().to_string();
    let commands: Vec<String> = check.result["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(commands[0], format!("{kldload} -n pf"), "{commands:?}");
    assert!(commands.iter().any(|c| c.ends_with(" -e")), "{commands:?}");

    let run = module(&host, args.clone());
    assert_eq!(run.code, 0, "{}", run.result);
    assert_eq!(run.result["commands"], check.result["commands"]);
    assert_eq!(run.result["pf_module_loaded"], true);
    assert_eq!(
        host.tool("kldstat", &["-q", "-m", "pf"]).status.code(),
        Some(0)
    );
    assert!(stdout(&host, "pfctl", &["-s", "info"]).starts_with("Status: Enabled"));
    assert_eq!(
        stdout(&host, "pfctl", &["-s", "nat"]),
        "nat on vtnet0 inet from 10.0.1.0/24 to any -> (vtnet0) round-robin\n"
    );
    let again = module(&host, args);
    assert_eq!(again.result["changed"], false, "{}", again.result);
    assert_eq!(again.result["pf_module_loaded"], false);
}

/// With pf.ko missing but the files already right (written by an earlier run on a host that
/// rebooted without pf_enable taking effect, or by hand), the module still loads it and the
/// rules.
#[test]
fn files_right_but_pf_ko_missing_loads_module_and_rules() {
    let host = SimHost::new();
    let args = with(
        params(&host, &["10.0.1.0/24"]),
        json!({"ext_if": "vtnet0", "enable": false}),
    );
    module(&host, args.clone());
    // A reboot without pf: the module and its rules are gone, the files stay.
    std::fs::remove_file(host.path("/sim/kld")).unwrap();
    std::fs::remove_file(host.path("/sim/pf.json")).unwrap();
    let run = module(&host, args);
    assert_eq!(run.code, 0, "{}", run.result);
    assert_eq!(
        (
            run.result["reloaded"].clone(),
            run.result["pf_module_loaded"].clone()
        ),
        (json!(true), json!(true))
    );
    assert!(stdout(&host, "pfctl", &["-s", "nat"]).contains("10.0.1.0/24"));
}

/// Issue 14: the bridge's pass rule must not override the operator's rules for traffic to
/// the host itself or between agents. The loaded rules close both before anything passes;
/// the module options open them, and say so in the file.
#[test]
fn issue14_pass_rule_keeps_the_host_and_other_agents_closed() {
    let host = SimHost::new();
    std::fs::write(host.path("/etc/pf.conf"), ADMIN_PF_CONF).unwrap();
    module(&host, params(&host, &["10.0.0.0/24"]));
    let run = module(&host, params(&host, &["10.0.1.0/24"]));
    assert_eq!(run.code, 0, "{}", run.result);
    let rules: Vec<String> = stdout(&host, "pfctl", &["-s", "rules"])
        .lines()
        .map(String::from)
        .collect();
    let at = |rule: &str| {
        rules
            .iter()
            .position(|r| r == rule)
            .unwrap_or_else(|| panic!("{rule} not loaded: {rules:#?}"))
    };
    let to_host = at("block drop in quick on warden0 inet from 10.0.1.0/24 to (self)");
    let a_to_b = at("block drop in quick on warden0 inet from 10.0.0.0/24 to 10.0.1.0/24");
    let b_to_a = at("block drop in quick on warden0 inet from 10.0.1.0/24 to 10.0.0.0/24");
    let own =
        at("pass in quick on warden0 inet from 10.0.1.0/24 to 10.0.1.0/24 flags S/SA keep state");
    let out = at("pass in quick on warden0 inet from 10.0.1.0/24 to any flags S/SA keep state");
    let admin = at("block drop in all");
    // First match wins among quick rules: the host block before the agent's own pass, the
    // inter-agent blocks before the catch-all pass, all before the operator's own rules.
    assert!(to_host < own && own < a_to_b && a_to_b < out && b_to_a < out && out < admin);
    assert!(
        rules
            .iter()
            .all(|r| !(r.starts_with("pass") && r.contains("to (self)"))),
        "{rules:#?}"
    );

    // Opened on request: no blocks of warden's own, and the file says which option did it.
    let run = module(
        &host,
        with(
            params(&host, &["10.0.1.0/24"]),
            json!({"allow_host_access": true, "allow_inter_agent": true}),
        ),
    );
    assert_eq!(run.result["changed"], true, "{}", run.result);
    let include = host.read("/etc/pf.warden.conf");
    assert!(
        include.contains("(allow_host_access: true)")
            && include.contains("(allow_inter_agent: true)"),
        "{include}"
    );
    let rules = stdout(&host, "pfctl", &["-s", "rules"]);
    assert!(
        !rules.contains("to (self)\n") && !rules.contains("block drop in quick"),
        "{rules}"
    );
}

/// Issue 13, gap 6: the loaded-NAT check reads both forms — `-s nat` translation rules
/// (FreeBSD 13–15) and OpenBSD-style `nat-to` filter rules listed by `-s rules` — so a
/// ruleset loaded in either form is not reloaded needlessly, and a missing subnet is.
#[test]
fn issue13_gap6_loaded_nat_check_reads_nat_to_rules_too() {
    let host = SimHost::new();
    host.load_kernel_modules(&["pf"]);
    let args = with(params(&host, &["10.0.1.0/24"]), json!({"ext_if": "vtnet0"}));
    module(&host, args.clone());
    std::fs::write(
        host.path("/sim/pf.json"),
        r#"{"enabled": true, "ever_enabled": true, "nat": [],
            "rules": ["pass out on vtnet0 inet from 10.0.1.0/24 to any flags S/SA keep state nat-to (vtnet0) round-robin"]}"#,
    )
    .unwrap();
    let run = module(&host, args.clone());
    assert_eq!(run.result["reloaded"], false, "{}", run.result);
    std::fs::write(
        host.path("/sim/pf.json"),
        r#"{"enabled": true, "ever_enabled": true, "nat": [], "rules": []}"#,
    )
    .unwrap();
    let run = module(&host, args);
    assert_eq!(run.result["reloaded"], true, "{}", run.result);
}
