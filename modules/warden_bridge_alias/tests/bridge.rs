//! warden_bridge_alias against a simulated FreeBSD host (simulated ifconfig and sysrc).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly where module code may not

use serde_json::{json, Value};
use warden_sim::host::{with, ModuleRun, SimHost};

fn module(host: &SimHost, args: Value) -> ModuleRun {
    host.run_module(env!("CARGO_BIN_EXE_warden_bridge_alias"), &args)
}

fn params(host: &SimHost, addresses: &[&str]) -> Value {
    host.args(json!({ "addresses": addresses }))
}

/// The bridge's IPv4 lines as ifconfig prints them.
fn inet_lines(host: &SimHost, interface: &str) -> Vec<String> {
    let out = host.tool("ifconfig", &[interface]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("\tinet "))
        .map(|l| l.trim().to_string())
        .collect()
}

/// rc.conf lines that are not from the initial host.
fn rc_lines(host: &SimHost) -> Vec<String> {
    host.read("/etc/rc.conf")
        .lines()
        .filter(|l| {
            !l.starts_with("hostname=")
                && !l.starts_with("ifconfig_vtnet0=")
                && !l.starts_with("sshd_enable=")
        })
        .map(String::from)
        .collect()
}

#[test]
fn fresh_host_gets_the_bridge_and_the_first_address() {
    let host = SimHost::new();
    let run = module(&host, params(&host, &["10.0.0.1/24"]));
    assert_eq!(run.code, 0, "{}", run.result);
    assert_eq!(run.result["changed"], true);
    let ifconfig = host.bin.join("ifconfig").display().to_string();
    let sysrc = host.bin.join("sysrc").display().to_string();
    // The kernel picks the unit (`bridge create name warden0`): `bridge0 create` fails on
    // hosts where a renamed bridge holds unit 0 (issue 13 gap 2, sys/net/if_clone.c).
    assert_eq!(
        run.result["commands"],
        json!([
            format!("{ifconfig} bridge create name warden0"),
            format!("{ifconfig} warden0 up"),
            format!("{ifconfig} warden0 inet 10.0.0.1/24 alias"),
            format!("{sysrc} -f {} cloned_interfaces=bridge0 ifconfig_bridge0_name=warden0 'ifconfig_warden0=inet 10.0.0.1/24'", host.p("/etc/rc.conf")),
        ])
    );
    assert_eq!(run.result["addresses"], json!(["10.0.0.1/24"]));
    assert_eq!(
        inet_lines(&host, "warden0"),
        ["inet 10.0.0.1 netmask 0xffffff00 broadcast 10.0.0.255"]
    );
    assert_eq!(
        rc_lines(&host),
        [
            "cloned_interfaces=\"bridge0\"",
            "ifconfig_bridge0_name=\"warden0\"",
            "ifconfig_warden0=\"inet 10.0.0.1/24\""
        ]
    );

    host.clear_calls();
    let again = module(&host, params(&host, &["10.0.0.1/24"]));
    assert_eq!(again.result["changed"], false, "{}", again.result);
    assert!(
        host.mutating_calls().is_empty(),
        "{:?}",
        host.mutating_calls()
    );
    assert_eq!(
        host.calls().len(),
        1,
        "a no-op run reads the host once: {:?}",
        host.calls()
    );
}

#[test]
fn agents_take_contiguous_aliases_and_removal_renumbers() {
    let host = SimHost::new();
    for addr in ["10.0.0.1/24", "10.0.1.1/24", "10.0.2.1/24", "10.0.3.1/24"] {
        assert_eq!(module(&host, params(&host, &[addr])).code, 0);
    }
    assert_eq!(
        rc_lines(&host)[2..],
        [
            "ifconfig_warden0=\"inet 10.0.0.1/24\"",
            "ifconfig_warden0_alias0=\"inet 10.0.1.1/24\"",
            "ifconfig_warden0_alias1=\"inet 10.0.2.1/24\"",
            "ifconfig_warden0_alias2=\"inet 10.0.3.1/24\"",
        ]
    );
    let run = module(
        &host,
        with(params(&host, &["10.0.1.1/24"]), json!({"state": "absent"})),
    );
    assert_eq!(run.result["changed"], true, "{}", run.result);
    assert_eq!(
        run.result["addresses"],
        json!(["10.0.0.1/24", "10.0.2.1/24", "10.0.3.1/24"])
    );
    assert_eq!(
        rc_lines(&host)[2..],
        [
            "ifconfig_warden0=\"inet 10.0.0.1/24\"",
            "ifconfig_warden0_alias0=\"inet 10.0.2.1/24\"",
            "ifconfig_warden0_alias1=\"inet 10.0.3.1/24\"",
        ]
    );
    assert_eq!(inet_lines(&host, "warden0").len(), 3);
    let again = module(
        &host,
        with(params(&host, &["10.0.1.1/24"]), json!({"state": "absent"})),
    );
    assert_eq!(again.result["changed"], false);
}

#[test]
fn any_persisted_spelling_counts_as_persisted() {
    let host = SimHost::new();
    host.tool("ifconfig", &["bridge3", "create", "name", "warden0", "up"]);
    for addr in ["10.0.0.1/24", "10.0.1.1/24", "10.0.2.1/24", "10.0.3.1/24"] {
        host.tool("ifconfig", &["warden0", "inet", addr, "alias"]);
    }
    std::fs::write(
        host.path("/etc/rc.conf"),
        concat!(
            "cloned_interfaces=\"bridge3\"\n",
            "ifconfig_bridge3_name=\"warden0\"\n",
            "ifconfig_warden0=\"inet 10.0.0.1 netmask 255.255.255.0 up\"\n",
            "ifconfig_warden0_alias0='inet 10.0.1.1 netmask 0xffffff00'\n",
            "ifconfig_warden0_aliases=\"inet 10.0.2.1/24\"\n",
            "ipv4_addrs_warden0=\"10.0.3.1/24\"\n",
        ),
    )
    .unwrap();
    let before = host.snapshot();
    let run = module(
        &host,
        params(
            &host,
            &["10.0.0.1/24", "10.0.1.1/24", "10.0.2.1/24", "10.0.3.1/24"],
        ),
    );
    assert_eq!(run.result["changed"], false, "{}", run.result);
    assert_eq!(host.snapshot(), before);
}

#[test]
fn hand_made_bridge_is_reused_and_persisted() {
    let host = SimHost::new();
    host.tool("ifconfig", &["bridge", "create", "name", "warden0", "up"]);
    host.tool("ifconfig", &["warden0", "inet", "10.0.0.1/24", "alias"]);
    let run = module(&host, params(&host, &["10.0.0.1/24"]));
    let sysrc = host.bin.join("sysrc").display().to_string();
    assert_eq!(
        run.result["commands"],
        json!([format!("{sysrc} -f {} cloned_interfaces=bridge0 ifconfig_bridge0_name=warden0 'ifconfig_warden0=inet 10.0.0.1/24'", host.p("/etc/rc.conf"))]),
        "the runtime bridge was renamed away from bridge0, so bridge0 is free to clone at boot"
    );
}

#[test]
fn refusals_change_nothing() {
    let host = SimHost::new();
    assert_eq!(
        module(&host, params(&host, &["10.0.0.1/24", "10.0.1.1/24"])).code,
        0
    );
    let before = host.snapshot();
    host.clear_calls();
    for (addresses, extra, needle) in [
        (
            vec!["10.0.5.0/24"],
            json!({}),
            "is the network address of 10.0.5.0/24",
        ),
        (vec!["10.0.5.255/24"], json!({}), "is the broadcast address"),
        (vec!["8.8.8.1/24"], json!({}), "not in a private range"),
        (
            vec!["192.168.122.1/24"],
            json!({}),
            "overlaps vtnet0 (192.168.122.10/24)",
        ),
        (
            vec!["10.0.1.5/24"],
            json!({}),
            "overlaps 10.0.1.1/24, another agent's subnet on warden0",
        ),
        (
            vec!["10.0.0.1/16"],
            json!({}),
            "already on warden0 with prefix /24",
        ),
        (
            vec!["10.0.8.1/24", "10.0.8.2/24"],
            json!({}),
            "overlap; each agent needs its own subnet",
        ),
        (vec!["fd00::1/64"], json!({}), "IPv6 is not supported"),
        (vec!["10.0.9.1"], json!({}), "no prefix length"),
        (
            vec!["10.0.9.1/24"],
            json!({"bridge": "warden-0"}),
            "is not an interface name",
        ),
        (
            vec!["10.0.9.1/24"],
            json!({"bridge": "br1", "create": false}),
            "does not exist and create is false",
        ),
        (
            vec!["10.0.9.1/24"],
            json!({"bridge": "vtnet0"}),
            "exists but is not a bridge",
        ),
    ] {
        let run = module(&host, with(params(&host, &addresses), extra.clone()));
        assert_eq!(run.code, 1, "{addresses:?} {extra}: {}", run.result);
        assert!(run.msg().contains(needle), "{addresses:?}: {}", run.msg());
        assert_eq!(run.result["changed"], false);
    }
    assert_eq!(host.snapshot(), before);
    assert!(host.mutating_calls().is_empty());
}

#[test]
fn public_range_allowed_on_request() {
    let host = SimHost::new();
    let run = module(
        &host,
        with(
            params(&host, &["100.64.1.1/24"]),
            json!({"allow_public": true}),
        ),
    );
    assert_eq!(run.code, 0, "{}", run.result);
}

#[test]
fn check_mode_predicts_exactly_and_touches_nothing() {
    let host = SimHost::new();
    let before = host.snapshot();
    let check = module(
        &host,
        with(
            params(&host, &["10.0.0.1/24"]),
            json!({"_ansible_check_mode": true, "_ansible_diff": true}),
        ),
    );
    assert_eq!(check.code, 0, "{}", check.result);
    assert_eq!(check.result["changed"], true);
    assert_eq!(host.snapshot(), before);
    assert!(host.mutating_calls().is_empty());
    let diff = check.result["diff"].as_array().unwrap();
    assert_eq!(diff[0]["after"], "cloned_interfaces=\"bridge0\"\nifconfig_bridge0_name=\"warden0\"\nifconfig_warden0=\"inet 10.0.0.1/24\"\n");
    assert_eq!(
        (diff[1]["before"].as_str(), diff[1]["after"].as_str()),
        (Some(""), Some("10.0.0.1/24\n"))
    );
    let real = module(&host, params(&host, &["10.0.0.1/24"]));
    assert_eq!(real.result["commands"], check.result["commands"]);
}

#[test]
fn exclusive_removes_what_is_not_listed() {
    let host = SimHost::new();
    for addr in ["10.0.0.1/24", "10.0.1.1/24", "10.0.2.1/24"] {
        module(&host, params(&host, &[addr]));
    }
    let run = module(
        &host,
        with(
            params(&host, &["10.0.2.1/24", "10.0.7.1/24"]),
            json!({"exclusive": true}),
        ),
    );
    assert_eq!(run.code, 0, "{}", run.result);
    assert_eq!(
        run.result["addresses"],
        json!(["10.0.2.1/24", "10.0.7.1/24"])
    );
    assert_eq!(
        rc_lines(&host)[2..],
        [
            "ifconfig_warden0=\"inet 10.0.7.1/24\"",
            "ifconfig_warden0_alias0=\"inet 10.0.2.1/24\""
        ]
    );
    assert_eq!(
        module(
            &host,
            with(
                params(&host, &["10.0.2.1/24", "10.0.7.1/24"]),
                json!({"exclusive": true})
            )
        )
        .result["changed"],
        false
    );
}

#[test]
fn failed_persist_rolls_back_and_the_next_run_completes() {
    let host = SimHost::new();
    module(&host, params(&host, &["10.0.0.1/24"]));
    let before = host.snapshot();
    host.add_fault(
        "sysrc",
        "ifconfig_warden0_alias0",
        1,
        "sysrc: /etc/rc.conf: Read-only file system",
    );
    let run = module(&host, params(&host, &["10.0.1.1/24"]));
    assert_eq!(run.code, 1, "{}", run.result);
    assert!(
        run.msg().contains("Read-only file system") && run.msg().contains("rolled back"),
        "{}",
        run.msg()
    );
    assert_eq!(host.snapshot(), before, "the runtime alias is undone");
    host.clear_faults();
    let run = module(&host, params(&host, &["10.0.1.1/24"]));
    assert_eq!(run.result["changed"], true);
    assert_eq!(inet_lines(&host, "warden0").len(), 2);
}

#[test]
fn single_address_alias_and_persist_false() {
    let host = SimHost::new();
    let args = host.args(json!({"address": "10.0.4.1/24", "persist": false}));
    let run = module(&host, args);
    assert_eq!(run.code, 0, "{}", run.result);
    assert_eq!(rc_lines(&host).len(), 0);
    assert_eq!(
        inet_lines(&host, "warden0"),
        ["inet 10.0.4.1 netmask 0xffffff00 broadcast 10.0.4.255"]
    );
}

/// A host whose bridge booted from rc.conf: the bridge and 10.0.0.1 in rc.conf, plus `extra`
/// files of the chain, then a boot so the runtime matches the files.
fn booted_host(rc_conf: &str, extra: &[(&str, &str)]) -> SimHost {
    let host = SimHost::new();
    let mut text = host.read("/etc/rc.conf");
    text.push_str("cloned_interfaces=\"bridge0\"\nifconfig_bridge0_name=\"warden0\"\n");
    text.push_str(rc_conf);
    std::fs::write(host.path("/etc/rc.conf"), text).unwrap();
    for (path, content) in extra {
        let path = host.path(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    host.boot();
    host
}

fn addresses_after_boot(host: &SimHost) -> Vec<String> {
    host.boot();
    inet_lines(host, "warden0")
}

#[test]
fn rc_conf_chain_removal_reaches_rc_conf_local() {
    // Issue 13 gap 4: an alias in rc.conf.local came back at the next boot.
    let host = booted_host(
        "ifconfig_warden0=\"inet 10.0.0.1/24\"\n",
        &[(
            "/etc/rc.conf.local",
            "ifconfig_warden0_alias0=\"inet 10.0.1.1/24\"\n",
        )],
    );
    assert_eq!(inet_lines(&host, "warden0").len(), 2);
    let run = module(
        &host,
        with(params(&host, &["10.0.1.1/24"]), json!({"state": "absent"})),
    );
    assert_eq!(run.code, 0, "{}", run.result);
    assert!(!host.read("/etc/rc.conf.local").contains("10.0.1.1"));
    assert_eq!(
        run.result["rc_conf_files"],
        json!([host.p("/etc/rc.conf.local")])
    );
    assert_eq!(
        addresses_after_boot(&host),
        ["inet 10.0.0.1 netmask 0xffffff00 broadcast 10.0.0.255"]
    );
}

#[test]
fn rc_conf_chain_value_in_rc_conf_d_network_is_changed_there() {
    // Issue 13 gap 4: rc.conf.d/network overrides rc.conf for rc.d/netif.
    let host = booted_host(
        "",
        &[(
            "/etc/rc.conf.d/network",
            "ifconfig_warden0=\"inet 10.0.0.1/24\"\n",
        )],
    );
    let run = module(
        &host,
        with(params(&host, &["10.0.2.1/24"]), json!({"exclusive": true})),
    );
    assert_eq!(run.code, 0, "{}", run.result);
    let sysrc = host.bin.join("sysrc").display().to_string();
    let commands = run.result["commands"].as_array().unwrap();
    assert!(
        commands.contains(&json!(format!(
            "{sysrc} -f {} 'ifconfig_warden0=inet 10.0.2.1/24'",
            host.p("/etc/rc.conf.d/network")
        ))),
        "{commands:?}"
    );
    assert!(!host.read("/etc/rc.conf").contains("ifconfig_warden0"));
    assert_eq!(
        addresses_after_boot(&host),
        ["inet 10.0.2.1 netmask 0xffffff00 broadcast 10.0.2.255"]
    );
    let again = module(
        &host,
        with(params(&host, &["10.0.2.1/24"]), json!({"exclusive": true})),
    );
    assert_eq!(again.result["changed"], false, "{}", again.result);
}

#[test]
fn network_interfaces_list_gets_the_bridge_so_it_comes_back_at_boot() {
    // Issue 13 gap 4: with network_interfaces not AUTO, netif configures only the listed
    // names and the clone's pre-rename name, so warden0 booted without addresses.
    let host = SimHost::new();
    let mut text = host.read("/etc/rc.conf");
    text.push_str("network_interfaces=\"lo0 vtnet0\"\n");
    std::fs::write(host.path("/etc/rc.conf"), text).unwrap();
    let run = module(&host, params(&host, &["10.0.0.1/24"]));
    assert_eq!(run.code, 0, "{}", run.result);
    assert!(host
        .read("/etc/rc.conf")
        .contains("network_interfaces=\"lo0 vtnet0 warden0\"\n"));
    assert_eq!(
        addresses_after_boot(&host),
        ["inet 10.0.0.1 netmask 0xffffff00 broadcast 10.0.0.255"]
    );
    let again = module(&host, params(&host, &["10.0.0.1/24"]));
    assert_eq!(again.result["changed"], false, "{}", again.result);
}

#[test]
fn network_interfaces_with_a_shell_expansion_is_refused() {
    let host = SimHost::new();
    std::fs::write(
        host.path("/etc/rc.conf.local"),
        "network_interfaces=\"lo0 ${uplink}\"\n",
    )
    .unwrap();
    let before = host.snapshot();
    let run = module(&host, params(&host, &["10.0.0.1/24"]));
    assert_eq!(run.code, 1, "{}", run.result);
    assert!(
        run.msg().contains("network_interfaces (in ")
            && run.msg().contains("rc.conf.local")
            && run.msg().contains("shell expansion"),
        "{}",
        run.msg()
    );
    assert_eq!(host.snapshot(), before);
}

/// Issue 13, gap 2: bridge units belong to the cloner and survive a rename. On a host where
/// jib renamed bridge0 to vtnet0bridge, `ifconfig bridge0 create` fails with "interface
/// bridge0 already exists"; the module must get a free unit from the kernel and persist a
/// clone that is free at boot.
#[test]
fn issue13_gap2_bridge_unit_held_by_a_renamed_bridge() {
    let host = SimHost::new();
    // What jib does when a jail on vtnet0 starts.
    host.tool("ifconfig", &["bridge", "create"]);
    host.tool("ifconfig", &["bridge0", "name", "vtnet0bridge"]);
    let before = host.snapshot();
    let check = module(
        &host,
        with(
            params(&host, &["10.0.0.1/24"]),
            json!({"_ansible_check_mode": true}),
        ),
    );
    assert_eq!(check.code, 0, "{}", check.result);
    assert_eq!(host.snapshot(), before);

    let run = module(&host, params(&host, &["10.0.0.1/24"]));
    assert_eq!(run.code, 0, "{}", run.result);
    assert_eq!(run.result["commands"], check.result["commands"]);
    assert_eq!(
        inet_lines(&host, "warden0"),
        ["inet 10.0.0.1 netmask 0xffffff00 broadcast 10.0.0.255"]
    );
    let bridges =
        String::from_utf8_lossy(&host.tool("ifconfig", &["-g", "bridge"]).stdout).into_owned();
    assert_eq!(bridges, "vtnet0bridge\nwarden0\n");
    // rc.conf creates its own clone at boot, before jib makes vtnet0bridge again.
    assert_eq!(
        rc_lines(&host),
        [
            "cloned_interfaces=\"bridge0\"",
            "ifconfig_bridge0_name=\"warden0\"",
            "ifconfig_warden0=\"inet 10.0.0.1/24\""
        ]
    );
    let again = module(&host, params(&host, &["10.0.0.1/24"]));
    assert_eq!(again.result["changed"], false, "{}", again.result);
}

/// A bridge parameter that is itself a clone name is created with that unit; if a renamed
/// bridge holds it, ifconfig's message reaches the user.
#[test]
fn explicit_clone_name_on_a_held_unit_fails_clearly() {
    let host = SimHost::new();
    host.tool("ifconfig", &["bridge", "create"]);
    host.tool("ifconfig", &["bridge0", "name", "vtnet0bridge"]);
    let run = module(
        &host,
        with(
            params(&host, &["10.0.0.1/24"]),
            json!({"bridge": "bridge0"}),
        ),
    );
    assert_eq!(run.code, 1, "{}", run.result);
    assert!(
        run.msg().contains("interface bridge0 already exists"),
        "{}",
        run.msg()
    );
    assert_eq!(host.tool("ifconfig", &["bridge0"]).status.code(), Some(1));
    assert!(!host.read("/etc/rc.conf").contains("bridge0"));
}
