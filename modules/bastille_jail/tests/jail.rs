//! bastille_jail against the simulated Bastille (several versions), jls, pkg and sysrc.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly where module code may not

use serde_json::{json, Value};
use warden_sim::host::{with, ModuleRun, SimHost};

fn module(host: &SimHost, args: Value) -> ModuleRun {
    host.run_module(env!("CARGO_BIN_EXE_bastille_jail"), &args)
}

fn host(version: &str) -> SimHost {
    let host = SimHost::new();
    std::fs::write(host.path("/sim/bastille.version"), version).unwrap();
    host.tool("ifconfig", &["bridge0", "create", "name", "warden0", "up"]);
    host.tool("ifconfig", &["warden0", "inet", "10.0.1.1/24", "alias"]);
    host.clear_calls();
    host
}
fn params(host: &SimHost, name: &str, ip: &str) -> Value {
    host.args(json!({
        "name": name,
        "release": "14.2-RELEASE",
        "ip": ip,
        "bootstrap": true,
        "bastille_prefix": host.p("/usr/local/bastille"),
        "bastille_conf": host.p("/usr/local/etc/bastille/bastille.conf"),
    }))
}

fn jail_rc(host: &SimHost, name: &str) -> String {
    host.read(&format!(
        "/usr/local/bastille/jails/{name}/root/etc/rc.conf"
    ))
}

/// A jail with 3 packages and 2 services, the closing note's benchmark case.
fn cms(host: &SimHost) -> Value {
    with(
        params(host, "mevycms", "10.0.1.3/24"),
        json!({"packages": ["nginx", "redis", "curl"], "services": ["nginx", "redis"], "sysrc": {"nginx_flags": "-q"}}),
    )
}

#[test]
fn create_then_nothing_to_do() {
    let host = host("1.4.4");
    let run = module(&host, cms(&host));
    assert_eq!(run.code, 0, "{}", run.result);
    let b = host.bin.join("bastille").display().to_string();
    let sysrc = host.bin.join("sysrc").display().to_string();
    let jexec = host.bin.join("jexec").display().to_string();
    let jail_rc_path = host.p("/usr/local/bastille/jails/mevycms/root/etc/rc.conf");
    // Adapted from the first release: the host's sysrc edits a private copy of the jail's
    // rc.conf (issue 14), and in-jail work runs through jexec, whose exit status is the
    // command's on every Bastille version (docs/bastille-facts.md §6).
    assert_eq!(
        run.result["commands"],
        json!([
            format!("{b} bootstrap 14.2-RELEASE"),
            format!("{b} create -B -g 10.0.1.1 mevycms 14.2-RELEASE 10.0.1.3/24 warden0"),
            format!("{sysrc} -f '<private copy of {jail_rc_path}>' nginx_flags=-q nginx_enable=YES redis_enable=YES"),
            format!("{jexec} -l -U root mevycms env ASSUME_ALWAYS_YES=yes /usr/sbin/pkg install -y nginx redis curl"),
            format!("{jexec} -l -U root mevycms /usr/sbin/service nginx start"),
            format!("{jexec} -l -U root mevycms /usr/sbin/service redis start"),
            format!("{sysrc} -f {} bastille_enable=YES", host.p("/etc/rc.conf")),
        ])
    );
    assert_eq!(run.result["bastille_version"], "1.4.4");
    assert_eq!(host.tool_out("jls", &["name"]).0, "mevycms\n");
    let rc = jail_rc(&host, "mevycms");
    assert!(
        rc.contains("ifconfig_vnet0=\"inet 10.0.1.3/24\"")
            && rc.contains("defaultrouter=\"10.0.1.1\""),
        "{rc}"
    );
    assert_eq!(
        host.tool_out("bastille", &["service", "mevycms", "redis", "status"])
            .1,
        0
    );
    assert_eq!(
        host.tool_out(
            "pkg",
            &[
                "-r",
                &host.p("/usr/local/bastille/jails/mevycms/root"),
                "query",
                "%n"
            ]
        )
        .0,
        "nginx\nredis\ncurl\n"
    );

    host.clear_calls();
    let again = module(&host, cms(&host));
    assert_eq!(again.result["changed"], false, "{}", again.result);
    assert!(
        host.mutating_calls().is_empty(),
        "{:?}",
        host.mutating_calls()
    );
    let calls: Vec<String> = host.calls().iter().map(|c| c.line()).collect();
    assert_eq!(
        calls.len(),
        5,
        "bastille -v, jls name, pkg query and 2 service onestatus in the jail: {calls:?}"
    );
}

#[test]
fn stop_start_and_absent() {
    let host = host("1.4.4");
    module(&host, params(&host, "mevygit", "10.0.1.2/24"));
    let stop = module(
        &host,
        with(
            params(&host, "mevygit", "10.0.1.2/24"),
            json!({"state": "stopped"}),
        ),
    );
    assert_eq!(stop.result["changed"], true, "{}", stop.result);
    assert_eq!(host.tool_out("jls", &["name"]).0, "");
    assert_eq!(
        module(
            &host,
            with(
                params(&host, "mevygit", "10.0.1.2/24"),
                json!({"state": "stopped"})
            )
        )
        .result["changed"],
        false
    );
    assert_eq!(
        module(
            &host,
            with(
                params(&host, "mevygit", "10.0.1.2/24"),
                json!({"state": "present"})
            )
        )
        .result["changed"],
        false
    );
    let start = module(&host, params(&host, "mevygit", "10.0.1.2/24"));
    assert_eq!(
        start.result["commands"],
        json!([format!(
            "{} start mevygit",
            host.bin.join("bastille").display()
        )])
    );
    let absent = module(
        &host,
        with(
            params(&host, "mevygit", "10.0.1.2/24"),
            json!({"state": "absent"}),
        ),
    );
    assert_eq!(absent.result["changed"], true);
    assert!(!host.path("/usr/local/bastille/jails/mevygit").exists());
    assert_eq!(
        module(
            &host,
            with(
                params(&host, "mevygit", "10.0.1.2/24"),
                json!({"state": "absent"})
            )
        )
        .result["changed"],
        false
    );
}

#[test]
fn drift_in_the_jails_rc_conf_is_corrected_and_the_jail_restarted() {
    let host = host("1.4.4");
    module(&host, params(&host, "mevygit", "10.0.1.2/24"));
    host.tool(
        "sysrc",
        &[
            "-f",
            &host.p("/usr/local/bastille/jails/mevygit/root/etc/rc.conf"),
            "defaultrouter=192.168.122.1",
            "ifconfig_vnet0=inet 10.0.1.9/24",
        ],
    );
    let run = module(
        &host,
        with(
            params(&host, "mevygit", "10.0.1.2/24"),
            json!({"_ansible_diff": true}),
        ),
    );
    assert_eq!(run.result["changed"], true, "{}", run.result);
    let b = host.bin.join("bastille").display().to_string();
    let commands = run.result["commands"].as_array().unwrap();
    assert_eq!(
        commands[1..],
        [
            json!(format!("{b} stop mevygit")),
            json!(format!("{b} start mevygit"))
        ]
    );
    let rc = jail_rc(&host, "mevygit");
    assert!(
        rc.contains("defaultrouter=\"10.0.1.1\"")
            && rc.contains("ifconfig_vnet0=\"inet 10.0.1.2/24\""),
        "{rc}"
    );
    assert_eq!(
        run.result["diff"][0]["before"],
        "defaultrouter=\"192.168.122.1\"\nifconfig_vnet0=\"inet 10.0.1.9/24\"\n"
    );
    assert_eq!(
        module(&host, params(&host, "mevygit", "10.0.1.2/24")).result["changed"],
        false
    );
}

#[test]
fn a_different_release_needs_recreate() {
    let host = host("1.4.4");
    module(
        &host,
        with(
            params(&host, "mevygit", "10.0.1.2/24"),
            json!({"release": "14.1-RELEASE"}),
        ),
    );
    let before = host.snapshot();
    let run = module(&host, params(&host, "mevygit", "10.0.1.2/24"));
    assert_eq!(run.code, 1);
    assert!(run.msg().contains("needs to be re-created (it runs 14.1-RELEASE instead of 14.2-RELEASE); set recreate: true"), "{}", run.msg());
    assert_eq!(host.snapshot(), before);
    let run = module(
        &host,
        with(
            params(&host, "mevygit", "10.0.1.2/24"),
            json!({"recreate": true}),
        ),
    );
    assert_eq!(run.code, 0, "{}", run.result);
    assert!(host
        .read("/usr/local/bastille/jails/mevygit/fstab")
        .contains("/releases/14.2-RELEASE "));
}

#[test]
fn names_bastille_would_refuse_or_break() {
    for (version, name, needle) in [
        (
            "1.4.4",
            "mevy-git",
            "refuses '-' and '_' in VNET jail names (since 1.1.0.251001): name it \"mevygit\"",
        ),
        ("1.1.0.251001", "mevy_git", "refuses '-' and '_'"),
        ("1.0.20250714", "mevyllamacpp", "#1245"),
        ("0.10.20231125", "mevyllamacpp", "would not start"),
        ("1.4.4", "12345", "all digits"),
        ("1.4.4", "-mevy", "is not valid"),
        ("1.4.4", "mevy.git", "is not valid"),
        ("1.4.4", "me vy", "is not valid"),
    ] {
        let host = host(version);
        let before = host.snapshot();
        let run = module(&host, params(&host, name, "10.0.1.2/24"));
        assert_eq!(run.code, 1, "{version} {name}: {}", run.result);
        assert!(
            run.msg().contains(needle),
            "{version} {name}: {}",
            run.msg()
        );
        assert_eq!(host.snapshot(), before, "{version} {name}");
        assert!(host.mutating_calls().is_empty());
    }
    // The same long name is fine where Bastille has a safe fallback.
    let host = host("1.4.4");
    assert_eq!(
        module(&host, params(&host, "mevyllamacpp", "10.0.1.4/24")).code,
        0
    );
    let old = self::host("1.0.20250714");
    assert_eq!(
        module(&old, params(&old, "mevy-git", "10.0.1.2/24")).code,
        0,
        "1.0 accepts dashes"
    );
}

#[test]
fn bad_addresses_and_collisions() {
    let host = host("1.4.4");
    module(&host, params(&host, "mevygit", "10.0.1.2/24"));
    let before = host.snapshot();
    for (ip, extra, needle) in [
        (
            "10.0.1.2/24",
            json!({"name": "other"}),
            "address 10.0.1.2 is already used by jail mevygit on warden0",
        ),
        ("8.8.8.2/24", json!({}), "not in a private range"),
        ("10.0.1.255/24", json!({}), "broadcast address"),
        (
            "10.0.1.3/24",
            json!({"gateway": "10.0.2.1"}),
            "is not a host address of the jail's subnet 10.0.1.0/24",
        ),
        (
            "10.0.1.3/24",
            json!({"gateway": "10.0.1.3"}),
            "is the jail's own address",
        ),
        ("fd00::2/64", json!({}), "IPv6 is not supported"),
        (
            "10.0.1.3/24",
            json!({"release": "latest"}),
            "not a FreeBSD release name",
        ),
        (
            "10.0.1.3/24",
            json!({"packages": ["-rf"]}),
            "is not a package name",
        ),
        (
            "10.0.1.3/24",
            json!({"sysrc": {"x": "$(reboot)"}}),
            "unescaped",
        ),
        (
            "10.0.1.3/24",
            json!({"bridge": "nosuch0", "name": "fresh"}),
            "bridge nosuch0 does not exist",
        ),
        (
            "10.0.1.3/24",
            json!({"bootstrap": false, "release": "13.4-RELEASE", "name": "fresh"}),
            "release 13.4-RELEASE is not bootstrapped",
        ),
    ] {
        let run = module(&host, with(params(&host, "mevycms", ip), extra.clone()));
        assert_eq!(run.code, 1, "{ip} {extra}: {}", run.result);
        assert!(run.msg().contains(needle), "{ip} {extra}: {}", run.msg());
    }
    assert_eq!(host.snapshot(), before);
}

#[test]
fn check_mode_predicts_and_changes_nothing() {
    let host = host("1.4.4");
    let before = host.snapshot();
    let check = module(
        &host,
        with(cms(&host), json!({"_ansible_check_mode": true})),
    );
    assert_eq!(check.code, 0, "{}", check.result);
    assert_eq!(check.result["changed"], true);
    assert_eq!(host.snapshot(), before);
    assert!(
        host.mutating_calls().is_empty(),
        "{:?}",
        host.mutating_calls()
    );
    let real = module(&host, cms(&host));
    assert_eq!(real.result["commands"], check.result["commands"]);
    let check = module(
        &host,
        with(
            cms(&host),
            json!({"_ansible_check_mode": true, "state": "absent"}),
        ),
    );
    assert_eq!(check.result["changed"], true);
    assert!(host.path("/usr/local/bastille/jails/mevycms").exists());
}

#[test]
fn bastille_0_14_gets_its_gateway_through_the_jails_rc_conf() {
    let host = host("0.14.20250420");
    let run = module(&host, params(&host, "mevy-git", "10.0.1.2/24"));
    assert_eq!(run.code, 0, "{}", run.result);
    let b = host.bin.join("bastille").display().to_string();
    let commands: Vec<String> = run.result["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        commands[1],
        format!("{b} create -B mevy-git 14.2-RELEASE 10.0.1.2/24 warden0")
    );
    assert!(
        commands[2].ends_with("defaultrouter=10.0.1.1"),
        "{commands:?}"
    );
    let sysrc = host.bin.join("sysrc").display().to_string();
    assert_eq!(
        commands[3..],
        [
            format!("{b} stop mevy-git"),
            format!("{b} start mevy-git"),
            format!("{sysrc} -f {} bastille_enable=YES", host.p("/etc/rc.conf")),
        ]
    );
    assert!(jail_rc(&host, "mevy-git").contains("defaultrouter=\"10.0.1.1\""));
    assert_eq!(
        module(&host, params(&host, "mevy-git", "10.0.1.2/24")).result["changed"],
        false
    );
    let absent = module(
        &host,
        with(
            params(&host, "mevy-git", "10.0.1.2/24"),
            json!({"state": "absent"}),
        ),
    );
    assert_eq!(
        absent.result["commands"],
        json!([format!("{b} destroy -a mevy-git")])
    );
}

#[test]
fn a_start_that_exits_0_without_starting_is_caught() {
    let host = host("1.4.4");
    module(
        &host,
        with(
            params(&host, "mevygit", "10.0.1.2/24"),
            json!({"state": "stopped"}),
        ),
    );
    host.add_fault("bastille", "start mevygit", 0, "");
    let run = module(&host, params(&host, "mevygit", "10.0.1.2/24"));
    assert_eq!(run.code, 1, "{}", run.result);
    assert!(
        run.msg()
            .contains("exited 0 but afterwards jail mevygit runs is not true"),
        "{}",
        run.msg()
    );
}

#[test]
fn failed_package_install_reports_bastilles_words() {
    let host = host("1.4.4");
    let run = module(
        &host,
        with(
            params(&host, "mevygit", "10.0.1.2/24"),
            json!({"packages": ["git", "nosuchpkg"]}),
        ),
    );
    assert_eq!(run.code, 1);
    assert!(
        run.msg()
            .contains("No packages available to install matching 'nosuchpkg'"),
        "{}",
        run.msg()
    );
    assert!(run.msg().contains("rolled back"), "{}", run.msg());
    assert!(
        !host.path("/usr/local/bastille/jails/mevygit").exists(),
        "the new jail was destroyed again"
    );
}

/// `host(version)` with its bridge persisted too, so it comes back at boot.
fn bootable_host(version: &str) -> SimHost {
    let host = host(version);
    let mut rc = host.read("/etc/rc.conf");
    rc.push_str("cloned_interfaces=\"bridge0\"\nifconfig_bridge0_name=\"warden0\"\nifconfig_warden0=\"inet 10.0.1.1/24\"\n");
    std::fs::write(host.path("/etc/rc.conf"), rc).unwrap();
    host
}

#[test]
fn a_jail_with_boot_on_comes_back_after_a_host_reboot() {
    // Issue 13, "a reboot gives the same host": rc.d/bastille starts jails at boot only with
    // bastille_enable=YES, which nothing set.
    let host = bootable_host("1.4.4");
    let run = module(&host, cms(&host));
    assert_eq!(run.code, 0, "{}", run.result);
    assert!(host
        .read("/etc/rc.conf")
        .contains("bastille_enable=\"YES\"\n"));
    host.boot();
    assert_eq!(host.tool_out("jls", &["name"]).0, "mevycms\n");

    // Bastille 0.10 starts the jails of bastille_list: one that names other jails gets
    // this one added.
    let old = bootable_host("0.10.20231125");
    std::fs::write(old.path("/etc/rc.conf.local"), "bastille_list=\"other\"\n").unwrap();
    let run = module(&old, params(&old, "mevygit", "10.0.1.2/24"));
    assert_eq!(run.code, 0, "{}", run.result);
    assert_eq!(
        old.read("/etc/rc.conf.local"),
        "bastille_list=\"other mevygit\"\n"
    );
    let console = old.boot();
    assert!(
        console.contains("Starting Bastille Container: mevygit"),
        "{console}"
    );
    assert_eq!(old.tool_out("jls", &["name"]).0, "mevygit\n");
}

// ---- Bastille's behaviour per release (docs/bastille-facts.md), each a gap found by reading
// ---- the tags; every test below failed against the module before its fix.

fn calls_of(host: &SimHost, tool: &str) -> Vec<String> {
    host.calls()
        .iter()
        .filter(|c| c.tool == tool)
        .map(|c| c.line())
        .collect()
}

/// 0.10–0.13 `service.sh` ends its loop with `echo`, so `bastille service J S status` exits
/// 0 for a stopped service; the module asks `service S onestatus` through jexec instead.
#[test]
fn bastille_service_status_exits_0_on_0_10() {
    let host = host("0.10.20231125");
    let args = with(
        params(&host, "mevy-cms", "10.0.1.3/24"),
        json!({"packages": ["nginx"], "services": ["nginx"]}),
    );
    let run = module(&host, args.clone());
    assert_eq!(run.code, 0, "{}", run.result);
    // nginx dies inside the jail; Bastille 0.10 would still say status 0.
    host.tool(
        "jexec",
        &["mevy-cms", "/usr/sbin/service", "nginx", "onestop"],
    );
    assert_eq!(
        host.tool_out("bastille", &["service", "mevy-cms", "nginx", "status"])
            .1,
        0
    );
    let again = module(&host, args.clone());
    assert_eq!(again.result["changed"], true, "{}", again.result);
    assert_eq!(again.result["services_started"], json!(["nginx"]));
    assert_eq!(
        host.tool_out(
            "jexec",
            &["mevy-cms", "/usr/sbin/service", "nginx", "onestatus"]
        )
        .1,
        0
    );
    assert_eq!(module(&host, args).result["changed"], false);
}

/// pkg(7) bootstraps pkg(8) in a new jail only with ASSUME_ALWAYS_YES when stdin is not a
/// terminal (freebsd-src usr.sbin/pkg/pkg.c); `bastille pkg` has no `-y` before 1.0.
#[test]
fn packages_install_in_a_new_jail_on_0_x() {
    for version in ["0.10.20231125", "0.14.20250420"] {
        let host = host(version);
        let run = module(
            &host,
            with(
                params(&host, "mevy-git", "10.0.1.2/24"),
                json!({"packages": ["git"]}),
            ),
        );
        assert_eq!(run.code, 0, "{version}: {}", run.result);
        assert_eq!(
            host.tool_out("jexec", &["mevy-git", "/usr/local/sbin/pkg", "query", "%n"])
                .0,
            "git\n",
            "{version}"
        );
    }
}

/// The host's `pkg -r <jail root>` reads the jail's own pkg.conf (plugins included) as host
/// root, and upgrades (pkg < 2.7) or refuses (2.7+) a jail database of an older schema
/// (freebsd/pkg libpkg/pkg_config.c, libpkg/pkgdb.c, src/query.c).
#[test]
fn packages_are_read_inside_the_jail_not_with_the_hosts_pkg_r() {
    let host = host("1.4.4");
    let args = cms(&host);
    module(&host, args.clone());
    host.clear_calls();
    assert_eq!(module(&host, args).result["changed"], false);
    assert!(calls_of(&host, "pkg").is_empty(), "{:?}", host.calls());
    assert!(
        calls_of(&host, "jexec")
            .iter()
            .any(|c| c.contains("mevycms /usr/local/sbin/pkg query %n")),
        "{:?}",
        calls_of(&host, "jexec")
    );
}

/// 0.12.x and 0.13.x `destroy.sh` take only `-f|--force|force` and exit 1 `Unknown Option.`
/// on `-a`.
#[test]
fn destroy_a_is_unknown_before_0_14() {
    for version in [
        "0.12.20241124",
        "0.12.20250111",
        "0.13.20250126",
        "0.11.20241022",
    ] {
        let host = host(version);
        assert_eq!(
            module(&host, params(&host, "mevy-git", "10.0.1.2/24")).code,
            0
        );
        let absent = module(
            &host,
            with(
                params(&host, "mevy-git", "10.0.1.2/24"),
                json!({"state": "absent"}),
            ),
        );
        assert_eq!(absent.code, 0, "{version}: {}", absent.result);
        assert_eq!(
            absent.result["commands"],
            json!([format!(
                "{} destroy force mevy-git",
                host.bin.join("bastille").display()
            )])
        );
        assert!(
            !host.path("/usr/local/bastille/jails/mevy-git").exists(),
            "{version}"
        );
        assert_eq!(host.tool_out("jls", &["name"]).0, "", "{version}");
    }
}

/// 0.11–0.12 name the epair `e<N>a_NAME` with no length fallback (0.14's `epairN` came with
/// 0.13), so a 12-character name would give a jail that never starts.
#[test]
fn epair_names_without_length_fallback_on_0_11_and_0_12() {
    for version in ["0.11.20241022", "0.12.20241124", "0.12.20250111"] {
        let host = host(version);
        let before = host.snapshot();
        let run = module(&host, params(&host, "mevyllamacpp", "10.0.1.4/24"));
        assert_eq!(run.code, 1, "{version}: {}", run.result);
        assert!(
            run.msg().contains("e0a_mevyllamacpp") && run.msg().contains("would not start"),
            "{}",
            run.msg()
        );
        assert_eq!(host.snapshot(), before, "{version}");
    }
    // 0.13 falls back to epairN, 1.1.2 to e0a_bastilleN; 1.1.1 says it is 1.1.0 (truncation).
    for (version, code) in [
        ("0.13.20250126", 0),
        ("1.1.2.251119", 0),
        ("1.1.1.251118", 1),
    ] {
        let host = host(version);
        let run = module(&host, params(&host, "mevyllamacpp", "10.0.1.4/24"));
        assert_eq!(run.code, code, "{version}: {}", run.result);
    }
}

/// Every release's `bootstrap.sh` asks a question when the host's rc.conf has
/// `zfs_enable="YES"` and bastille.conf's `bastille_zfs_enable` is not YES, and with no
/// answer exits "Missing ZFS parameters"; the module says so before calling it.
#[test]
fn bootstrap_on_a_zfs_host_without_bastille_zfs_enable() {
    let host = host("1.4.4");
    host.tool("sysrc", &["-f", &host.p("/etc/rc.conf"), "zfs_enable=YES"]);
    host.clear_calls();
    let before = host.snapshot();
    for check in [true, false] {
        let run = module(
            &host,
            with(
                params(&host, "mevygit", "10.0.1.2/24"),
                json!({"_ansible_check_mode": check}),
            ),
        );
        assert_eq!(run.code, 1, "{}", run.result);
        assert!(
            run.msg().contains("zfs_enable=\"YES\"") && run.msg().contains("bastille_zfs_enable"),
            "{}",
            run.msg()
        );
        assert!(
            host.mutating_calls().is_empty(),
            "{:?}",
            host.mutating_calls()
        );
        assert_eq!(host.snapshot(), before);
    }
    // With bastille_zfs_enable=YES Bastille does not ask.
    host.tool(
        "sysrc",
        &[
            "-f",
            &host.p("/usr/local/etc/bastille/bastille.conf"),
            "bastille_zfs_enable=YES",
        ],
    );
    let run = module(&host, params(&host, "mevygit", "10.0.1.2/24"));
    assert_eq!(run.code, 0, "{}", run.result);
}

/// Before 0.14 `bastille config J set boot off` writes `boot = off;` into jail.conf, which
/// jail(8) refuses at the next start ("unknown parameter: boot").
#[test]
fn config_set_boot_on_0_10_writes_jail_conf() {
    let host = host("0.10.20231125");
    let before = host.snapshot();
    let run = module(
        &host,
        with(
            params(&host, "mevy-git", "10.0.1.2/24"),
            json!({"boot": false}),
        ),
    );
    assert_eq!(run.code, 1, "{}", run.result);
    assert!(
        run.msg().contains("boot = off;") && run.msg().contains("0.14"),
        "{}",
        run.msg()
    );
    assert_eq!(host.snapshot(), before);
    // A jail.conf someone already gave a boot line is named, not started blindly.
    assert_eq!(
        module(&host, params(&host, "mevy-git", "10.0.1.2/24")).code,
        0
    );
    let (_, rc) = host.tool_out("bastille", &["config", "mevy-git", "set", "boot", "off"]);
    assert_eq!(rc, 0);
    module(
        &host,
        with(
            params(&host, "mevy-git", "10.0.1.2/24"),
            json!({"state": "stopped"}),
        ),
    );
    let run = module(&host, params(&host, "mevy-git", "10.0.1.2/24"));
    assert_eq!(run.code, 1, "{}", run.result);
    assert!(
        run.msg().contains("unknown parameter: boot") && run.msg().contains("remove that line"),
        "{}",
        run.msg()
    );
    // 0.14 keeps it in boot.conf.
    let host = self::host("0.14.20250420");
    let run = module(
        &host,
        with(
            params(&host, "mevy-git", "10.0.1.2/24"),
            json!({"boot": false}),
        ),
    );
    assert_eq!(run.code, 0, "{}", run.result);
    assert!(host
        .read("/usr/local/bastille/jails/mevy-git/boot.conf")
        .contains("boot=\"off\""));
}

/// 0.10 (no `-g`) writes the host's own default route into a `-B` jail's rc.conf, with
/// stray blanks around `ifconfig_vnet0`; the module corrects the router and reads the
/// address back (this already held before; kept as the 0.10 case of the matrix).
#[test]
fn bastille_0_10_writes_the_hosts_router_into_the_jail() {
    let host = host("0.10.20231125");
    let run = module(&host, params(&host, "mevy-git", "10.0.1.2/24"));
    assert_eq!(run.code, 0, "{}", run.result);
    let rc = jail_rc(&host, "mevy-git");
    assert!(
        rc.contains("ifconfig_vnet0=\" inet 10.0.1.2/24 \"")
            && rc.contains("defaultrouter=\"10.0.1.1\""),
        "{rc}"
    );
    assert_eq!(
        module(&host, params(&host, "mevy-git", "10.0.1.2/24")).result["changed"],
        false
    );
}

/// 1.x `destroy -a` without `-y` stops the jail, then the y/n prompt fails with no terminal:
/// rc 1 and the jail left stopped. The module always passes `-y` on 1.x.
#[test]
fn destroy_without_y_on_1_4_4_leaves_the_jail_stopped() {
    let host = host("1.4.4");
    module(&host, params(&host, "mevygit", "10.0.1.2/24"));
    let (_, rc) = host.tool_out("bastille", &["destroy", "-a", "mevygit"]);
    assert_eq!(rc, 1);
    assert_eq!(host.tool_out("jls", &["name"]).0, "", "stopped by -a");
    assert!(host
        .path("/usr/local/bastille/jails/mevygit/jail.conf")
        .exists());
    let absent = module(
        &host,
        with(
            params(&host, "mevygit", "10.0.1.2/24"),
            json!({"state": "absent"}),
        ),
    );
    assert_eq!(absent.code, 0, "{}", absent.result);
    assert!(absent.result["commands"][0]
        .as_str()
        .unwrap()
        .ends_with("destroy -a -y mevygit"));
    assert!(!host.path("/usr/local/bastille/jails/mevygit").exists());
}

// ---- Issue 14: the jail's rc.conf belongs to the jail's root.

/// A jail's root replaces its etc/rc.conf with a link to a host file: the module refuses,
/// the host file is unchanged, and none of it shows in the result or the diff.
#[test]
fn a_jail_rc_conf_symlinked_to_a_host_file_is_refused() {
    let host = host("1.4.4");
    module(&host, params(&host, "mevygit", "10.0.1.2/24"));
    let secret = host.path("/etc/host-secret.conf");
    std::fs::write(&secret, "api_token=\"hunter2-canary\"\n").unwrap();
    let jail_rc = host.path("/usr/local/bastille/jails/mevygit/root/etc/rc.conf");
    std::fs::remove_file(&jail_rc).unwrap();
    std::os::unix::fs::symlink(&secret, &jail_rc).unwrap();
    // Creating the jail ran the host's sysrc (bastille_enable); only what follows counts.
    host.clear_calls();
    for check in [true, false] {
        let run = module(
            &host,
            with(
                params(&host, "mevygit", "10.0.1.9/24"),
                json!({"_ansible_check_mode": check, "_ansible_diff": true}),
            ),
        );
        assert_eq!(run.code, 1, "{}", run.result);
        assert!(run.msg().contains("symbolic link"), "{}", run.msg());
        assert!(
            !run.result.to_string().contains("hunter2"),
            "{}",
            run.result
        );
        assert_eq!(
            std::fs::read_to_string(&secret).unwrap(),
            "api_token=\"hunter2-canary\"\n"
        );
        assert!(calls_of(&host, "sysrc").is_empty());
    }
    // The same through a linked etc directory.
    std::fs::remove_file(&jail_rc).unwrap();
    let etc = host.path("/usr/local/bastille/jails/mevygit/root/etc");
    std::fs::rename(
        &etc,
        host.path("/usr/local/bastille/jails/mevygit/root/etc.real"),
    )
    .unwrap();
    std::os::unix::fs::symlink(host.path("/etc"), &etc).unwrap();
    let run = module(&host, params(&host, "mevygit", "10.0.1.9/24"));
    assert_eq!(run.code, 1, "{}", run.result);
    assert!(run.msg().contains("symbolic link"), "{}", run.msg());
}

/// The edit goes through a private copy: the jail's rc.conf keeps its mode and owner and
/// gets exactly sysrc's result.
#[test]
fn the_jail_rc_conf_is_edited_on_a_private_copy() {
    use std::os::unix::fs::PermissionsExt;
    let host = host("1.4.4");
    module(&host, params(&host, "mevygit", "10.0.1.2/24"));
    let path = host.path("/usr/local/bastille/jails/mevygit/root/etc/rc.conf");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    host.clear_calls();
    let run = module(
        &host,
        with(
            params(&host, "mevygit", "10.0.1.2/24"),
            json!({"sysrc": {"nginx_flags": "-q"}}),
        ),
    );
    assert_eq!(run.code, 0, "{}", run.result);
    let sysrc = calls_of(&host, "sysrc");
    assert_eq!(sysrc.len(), 1, "{sysrc:?}");
    assert!(
        !sysrc[0].contains("/usr/local/bastille"),
        "sysrc ran on the jail's file: {sysrc:?}"
    );
    assert!(jail_rc(&host, "mevygit").ends_with("nginx_flags=\"-q\"\n"));
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o640
    );
}
