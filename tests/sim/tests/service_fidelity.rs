//! The service(8) + rc.subr stand-in against the outputs captured from FreeBSD's real
//! `run_rc_command` with a tmux-hosted `mevy` script (docs/freebsd-facts.md §5.4, obtained as §10 says).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly where module code may not

use std::fs;
use std::os::unix::fs::PermissionsExt;

mod common;

use warden_sim::host::{which, SimHost};

fn install_fidelity_script(host: &SimHost) {
    let tmux = which("tmux").expect("tmux is required");
    let socket = host.p("/var/run/mevy-fidelity.sock");
    let script = format!(
        r#"#!/bin/sh
# PROVIDE: mevy
# REQUIRE: LOGIN
# KEYWORD: shutdown
. {rc_subr}
name=mevy
rcvar=mevy_enable
desc="Mevy test service hosted in tmux"
load_rc_config $name
: ${{mevy_enable:="NO"}}
start_cmd=mevy_start
stop_cmd=mevy_stop
status_cmd=mevy_status
mevy_status() {{
	if {tmux} -S {socket} has-session -t mevy 2>/dev/null; then echo "mevy is running."; else echo "mevy is not running."; return 1; fi
}}
mevy_start() {{
	if {tmux} -S {socket} has-session -t mevy 2>/dev/null; then echo "mevy already running."; return 1; fi
	echo "Starting mevy."
	{tmux} -S {socket} new-session -d -s mevy "sleep 3600"
}}
mevy_stop() {{
	if ! {tmux} -S {socket} has-session -t mevy 2>/dev/null; then echo "mevy is not running."; return 1; fi
	echo "Stopping mevy."
	{tmux} -S {socket} kill-session -t mevy
}}
run_rc_command "$1"
"#,
        rc_subr = host.p("/etc/rc.subr"),
        tmux = tmux.display(),
    );
    let path = host.path("/usr/local/etc/rc.d/mevy");
    fs::write(&path, script).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o555)).unwrap();
}

fn service(host: &SimHost, args: &[&str]) -> (String, String, i32) {
    let out = host.tool("service", args);
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

#[test]
fn disabled_service_matches_recorded_outputs() {
    let host = SimHost::new();
    install_fidelity_script(&host);
    assert_eq!(
        service(&host, &["mevy", "start"]),
        ("Cannot 'start' mevy. Set mevy_enable to YES in /etc/rc.conf or use 'onestart' instead of 'start'.\n".into(), String::new(), 0)
    );
    assert_eq!(
        service(&host, &["mevy", "status"]),
        ("mevy is not running.\n".into(), String::new(), 1)
    );
    assert_eq!(
        service(&host, &["mevy", "onestart"]),
        ("Starting mevy.\n".into(), String::new(), 0)
    );
    assert_eq!(
        service(&host, &["mevy", "onestart"]),
        ("mevy already running.\n".into(), String::new(), 1)
    );
    assert_eq!(
        service(&host, &["mevy", "onestatus"]),
        ("mevy is running.\n".into(), String::new(), 0)
    );
    assert_eq!(
        service(&host, &["mevy", "stop"]),
        ("Cannot 'stop' mevy. Set mevy_enable to YES in /etc/rc.conf or use 'onestop' instead of 'stop'.\n".into(), String::new(), 0)
    );
    assert_eq!(
        service(&host, &["mevy", "onestop"]),
        ("Stopping mevy.\n".into(), String::new(), 0)
    );
    assert_eq!(
        service(&host, &["mevy", "onestop"]),
        ("mevy is not running.\n".into(), String::new(), 1)
    );
    assert_eq!(
        service(&host, &["mevy", "rcvar"]),
        ("# mevy : Mevy test service hosted in tmux\n#\nmevy_enable=\"NO\"\n#   (default: \"\")\n\n".into(), String::new(), 0)
    );
    assert_eq!(service(&host, &["mevy", "enabled"]).2, 1);
    assert_eq!(
        service(&host, &["mevy", "describe"]),
        (
            "Mevy test service hosted in tmux\n".into(),
            String::new(),
            0
        )
    );
    let usage = "Usage: /usr/local/etc/rc.d/mevy [fast|force|one|quiet](start|stop|restart|rcvar|enable|disable|delete|enabled|describe|extracommands|status)\n";
    assert_eq!(
        service(&host, &["mevy", "foo"]),
        (
            String::new(),
            format!("/usr/local/etc/rc.d/mevy: unknown directive 'foo'.\n{usage}"),
            1
        )
    );
    assert_eq!(
        service(&host, &["mevy"]),
        (String::new(), usage.to_string(), 1)
    );
}

#[test]
fn enabled_service_starts_restarts_and_stops() {
    let host = SimHost::new();
    install_fidelity_script(&host);
    host.tool("sysrc", &["mevy_enable=YES"]);
    assert_eq!(
        service(&host, &["mevy", "start"]),
        ("Starting mevy.\n".into(), String::new(), 0)
    );
    assert_eq!(service(&host, &["mevy", "status"]).0, "mevy is running.\n");
    assert_eq!(service(&host, &["mevy", "enabled"]).2, 0);
    assert_eq!(
        service(&host, &["mevy", "restart"]).0,
        "Stopping mevy.\nStarting mevy.\n"
    );
    assert_eq!(service(&host, &["-e"]).0, "/usr/local/etc/rc.d/mevy\n");
    assert_eq!(
        service(&host, &["mevy", "stop"]),
        ("Stopping mevy.\n".into(), String::new(), 0)
    );
}

#[test]
fn missing_script_message() {
    let host = SimHost::new();
    assert_eq!(
        service(&host, &["nosuch", "start"]),
        (
            "nosuch does not exist in /etc/rc.d or the local startup\ndirectories (/usr/local/etc/rc.d), or is not executable\n".into(),
            String::new(),
            1
        )
    );
}

#[test]
fn scripts_run_with_service_environment() {
    let host = SimHost::new();
    let path = host.path("/usr/local/etc/rc.d/envcheck");
    fs::write(
        &path,
        "#!/bin/sh\necho \"HOME=$HOME PATH=$PATH ROOT=${WARDEN_SIM_ROOT:-unset}\"\n",
    )
    .unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o555)).unwrap();
    assert_eq!(
        service(&host, &["envcheck", "start"]).0,
        "HOME=/ PATH=/sbin:/bin:/usr/sbin:/usr/bin ROOT=unset\n"
    );
}

#[test]
fn call_log_and_faults() {
    let host = SimHost::new();
    host.tool("sysrc", &["-n", "hostname"]);
    host.add_fault("sysrc", "mevy_enable=YES", 1, "sysrc: simulated failure");
    let out = host.tool("sysrc", &["mevy_enable=YES"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "sysrc: simulated failure\n"
    );
    assert!(!host.read("/etc/rc.conf").contains("mevy_enable"));
    let lines: Vec<String> = host
        .calls()
        .iter()
        .map(|c| format!("{} rc={}", c.line(), c.rc))
        .collect();
    assert_eq!(
        lines,
        ["sysrc -n hostname rc=0", "sysrc mevy_enable=YES rc=1"]
    );
    assert_eq!(host.mutating_calls(), ["sysrc mevy_enable=YES"]);
}

#[test]
fn snapshot_sees_changes_but_not_bookkeeping() {
    let host = SimHost::new();
    let before = host.snapshot();
    host.tool("sysrc", &["-n", "hostname"]);
    host.tool("ifconfig", &["-l"]);
    assert_eq!(host.snapshot(), before);
    host.tool("ifconfig", &["bridge", "create"]);
    assert_ne!(host.snapshot(), before);
}

/// FreeBSD 13.x's rc.subr applies the rcvar check to `status`: a disabled service answers
/// "Cannot 'status' …" with exit 0 (tests/fixtures/service/freebsd13-disabled-status.transcript
/// names the sources); 14's exempts it.
#[test]
fn freebsd13_status_of_a_disabled_service_exits_0() {
    let host = SimHost::new();
    install_fidelity_script(&host);
    let problems = common::replay(
        &host,
        &common::fixtures().join("service/freebsd13-disabled-status.transcript"),
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Back on the default release the same call is truthful.
    host.set_freebsd_version("14.3-RELEASE");
    assert_eq!(
        service(&host, &["mevy", "status"]),
        ("mevy is not running.\n".into(), String::new(), 1)
    );
}
