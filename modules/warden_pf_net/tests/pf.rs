//! warden_pf_net against a simulated FreeBSD host (simulated pfctl, sysrc, sysctl, ifconfig).

use serde_json::{json, Value};
use warden_sim::host::{with, ModuleRun, SimHost};

fn module(host: &SimHost, args: Value) -> ModuleRun {
    host.run_module(env!("CARGO_BIN_EXE_warden_pf_net"), &args)
}

fn params(host: &SimHost, subnets: &[&str]) -> Value {
    with(
        json!({
            "subnets": subnets,
            "path": host.p("/etc/pf.warden.conf"),
            "pf_conf": host.p("/etc/pf.conf"),
            "lock_file": host.p("/var/run/warden.lock"),
        }),
        host.rc_params(),
    )
}

fn stdout(host: &SimHost, tool: &str, args: &[&str]) -> String {
    String::from_utf8_lossy(&host.tool(tool, args).stdout).into_owned()
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
    assert_eq!(
        host.read("/etc/pf.warden.conf"),
        format!(
            "# Managed by warden_pf_net; changes here are overwritten. NAT for the warden agents'\n# subnets, included from {}.\n\
             warden_ext_if = \"vtnet0\"\nwarden_net = \"{{ 10.0.1.0/24 }}\"\nnat on $warden_ext_if from $warden_net to any -> ($warden_ext_if)\n\
             pass quick on warden0 inet from $warden_net to any keep state\n",
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
        4,
        "ifconfig -l, pfctl -s nat, pfctl -s info, sysctl -n: {:?}",
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
