//! warden_rcd against a simulated FreeBSD host: the real binary, the simulator's sysrc and
//! service, the generated script run by the rc.subr stand-in, and real tmux.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly where module code may not

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use warden_sim::host::{which, with, SimHost};

type Run = warden_sim::host::ModuleRun;

fn module(host: &SimHost, args: Value) -> Run {
    host.run_module(env!("CARGO_BIN_EXE_warden_rcd"), &args)
}

fn whoami(flag: &str) -> String {
    let out = Command::new("id").arg(flag).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Params for agent `mevy` on `host`: every path under the host root, the invoking user
/// as the agent user (tests may run unprivileged), the command dumps its environment.
fn params(host: &SimHost) -> Value {
    with(params_without_chain(host), host.rc_params())
}

fn params_without_chain(host: &SimHost) -> Value {
    json!({
        "name": "mevy",
        "user": whoami("-un"),
        "owner": whoami("-un"),
        "group": whoami("-gn"),
        "workdir": host.p("/home"),
        "command": format!("env > {}; exec sleep 3600", host.p("/tmp/mevy.env")),
        "tmux_path": which("tmux").unwrap().to_string_lossy(),
        "tmux_socket": host.p("/var/run/mevy.tmux"),
        "display_locale": "sl-SI",
        "assistant_locale": "sl-SI",
        "system_locale": "sl_SI.UTF-8",
        "env": {"AGENT_NAME": "mevy"},
        "rcd_dir": host.p("/usr/local/etc/rc.d"),
        "rc_conf": host.p("/etc/rc.conf"),
        "rc_subr": host.p("/etc/rc.subr"),
        "locale_dir": host.p("/usr/share/locale"),
        "lock_file": host.p("/var/run/warden.lock"),
    })
}

fn status(host: &SimHost) -> (String, i32) {
    let out = host.tool("service", &["mevy", "status"]);
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code().unwrap(),
    )
}

/// The environment the agent's command saw, once it has written it.
fn agent_env(host: &SimHost, file: &str) -> String {
    let path: PathBuf = host.path(file);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = std::fs::read_to_string(&path) {
            if text.contains("SYSTEM_LOCALE=") {
                return text;
            }
        }
        assert!(Instant::now() < deadline, "{file} was never written");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn install_then_idempotent_rerun() {
    let host = SimHost::new();
    let first = module(&host, params(&host));
    assert_eq!(first.code, 0, "{}", first.result);
    assert_eq!(first.result["changed"], true);
    assert_eq!(first.result["running"], true);
    assert_eq!(
        first.result["commands"],
        json!([
            format!("write {}", host.p("/usr/local/etc/rc.d/mevy")),
            format!(
                "{} -f {} mevy_enable=YES",
                host.bin.join("sysrc").display(),
                host.p("/etc/rc.conf")
            ),
            format!("{} mevy start", host.bin.join("service").display()),
        ])
    );
    // Independent reads of the host.
    assert!(host.read("/etc/rc.conf").ends_with("mevy_enable=\"YES\"\n"));
    let meta = std::fs::metadata(host.path("/usr/local/etc/rc.d/mevy")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777,
        0o555
    );
    assert_eq!(status(&host), ("mevy is running.\n".into(), 0));
    let env = agent_env(&host, "/tmp/mevy.env");
    for line in [
        "LANG=sl_SI.UTF-8",
        "LC_ALL=sl_SI.UTF-8",
        "DISPLAY_LOCALE=sl-SI",
        "ASSISTANT_LOCALE=sl-SI",
        "AGENT_NAME=mevy",
    ] {
        assert!(env.lines().any(|l| l == line), "{line} missing from {env}");
    }

    host.clear_calls();
    let second = module(&host, params(&host));
    assert_eq!(second.code, 0);
    assert_eq!(second.result["changed"], false, "{}", second.result);
    assert_eq!(second.result["commands"], json!([]));
    assert!(
        host.mutating_calls().is_empty(),
        "{:?}",
        host.mutating_calls()
    );
    assert_eq!(status(&host).1, 0);
}

#[test]
fn new_panes_inherit_the_agent_locale() {
    let host = SimHost::new();
    assert_eq!(module(&host, params(&host)).code, 0);
    agent_env(&host, "/tmp/mevy.env");
    let pane_env = host.p("/tmp/pane.env");
    let out = Command::new(which("tmux").unwrap())
        .args([
            "-S",
            &host.p("/var/run/mevy.tmux"),
            "new-window",
            "-d",
            "-t",
            "=mevy",
        ])
        .arg(format!("env > {pane_env}; sleep 30"))
        .env("LANG", "C")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let env = agent_env(&host, "/tmp/pane.env");
    assert!(env.lines().any(|l| l == "LANG=sl_SI.UTF-8"), "{env}");
}

#[test]
fn check_mode_on_a_fresh_host_changes_nothing_and_predicts_the_real_run() {
    let host = SimHost::new();
    let before = host.snapshot();
    let check = module(
        &host,
        with(
            params(&host),
            json!({"_ansible_check_mode": true, "_ansible_diff": true}),
        ),
    );
    assert_eq!(check.code, 0, "{}", check.result);
    assert_eq!(check.result["changed"], true);
    assert_eq!(host.snapshot(), before);
    assert!(
        host.mutating_calls().is_empty(),
        "{:?}",
        host.mutating_calls()
    );
    let diff = check.result["diff"].as_array().unwrap();
    assert_eq!(diff[0]["before"], "");
    assert!(diff[0]["after"]
        .as_str()
        .unwrap()
        .contains("# PROVIDE: mevy"));
    assert_eq!(diff[1]["after"], "mevy_enable=\"YES\"\n");
    assert_eq!(
        (diff[2]["before"].as_str(), diff[2]["after"].as_str()),
        (Some("stopped\n"), Some("running\n"))
    );

    let real = module(&host, params(&host));
    assert_eq!(real.result["changed"], true);
    assert_eq!(real.result["commands"], check.result["commands"]);
}

#[test]
fn changed_locale_restarts_and_check_mode_predicts_it() {
    let host = SimHost::new();
    assert_eq!(module(&host, params(&host)).code, 0);
    agent_env(&host, "/tmp/mevy.env");
    std::fs::remove_file(host.path("/tmp/mevy.env")).unwrap();
    let changed = with(params(&host), json!({"system_locale": "de_DE.UTF-8"}));

    host.clear_calls();
    let before = host.snapshot();
    let check = module(
        &host,
        with(changed.clone(), json!({"_ansible_check_mode": true})),
    );
    assert_eq!(
        (
            check.result["changed"].clone(),
            check.result["restarted"].clone()
        ),
        (json!(true), json!(true))
    );
    assert_eq!(host.snapshot(), before);
    assert!(host.mutating_calls().is_empty());

    let real = module(&host, changed.clone());
    assert_eq!(real.result["restarted"], true, "{}", real.result);
    let service = host.bin.join("service").display().to_string();
    // The script's rewrite is in the trail too, between the old script's stop and the new
    // one's start.
    assert_eq!(
        real.result["commands"],
        json!([
            format!("{service} mevy stop"),
            format!("write {}", host.p("/usr/local/etc/rc.d/mevy")),
            format!("{service} mevy start")
        ])
    );
    assert!(agent_env(&host, "/tmp/mevy.env")
        .lines()
        .any(|l| l == "LANG=de_DE.UTF-8"));
    assert_eq!(module(&host, changed).result["changed"], false);
}

#[test]
fn stopped_and_disabled_then_absent() {
    let host = SimHost::new();
    assert_eq!(module(&host, params(&host)).code, 0);
    let stopped = module(
        &host,
        with(params(&host), json!({"started": false, "enabled": false})),
    );
    assert_eq!(stopped.result["changed"], true);
    assert_eq!(status(&host).1, 1);
    assert!(host.read("/etc/rc.conf").ends_with("mevy_enable=\"NO\"\n"));

    // Started while disabled: the `one` prefix, as the seed's `service mevy onestart`.
    let one = module(&host, with(params(&host), json!({"enabled": false})));
    let service = host.bin.join("service").display().to_string();
    assert_eq!(
        one.result["commands"],
        json!([format!("{service} mevy onestart")])
    );
    assert_eq!(status(&host).1, 0);

    let absent = module(&host, with(params(&host), json!({"state": "absent"})));
    assert_eq!(absent.result["changed"], true, "{}", absent.result);
    assert!(!host.path("/usr/local/etc/rc.d/mevy").exists());
    assert!(!host.read("/etc/rc.conf").contains("mevy_enable"));
    let after = module(&host, with(params(&host), json!({"state": "absent"})));
    assert_eq!(after.result["changed"], false);
}

#[test]
fn hostile_values_are_quoted_and_the_script_still_runs() {
    let host = SimHost::new();
    let pwned = host.p("/tmp/pwned");
    let hostile = format!("x'; touch {pwned}; '\"$(touch {pwned})\"`touch {pwned}`\nline2");
    let args = with(
        params(&host),
        json!({
            "description": hostile.clone(),
            "env": {"AGENT_NAME": "mevy", "HOSTILE": hostile.clone()},
            "command": format!("printf '%s' \"$HOSTILE\" > {}; env > {}; exec sleep 3600", host.p("/tmp/hostile"), host.p("/tmp/mevy.env")),
        }),
    );
    let run = module(&host, args);
    assert_eq!(run.code, 0, "{}", run.result);
    agent_env(&host, "/tmp/mevy.env");
    assert_eq!(
        std::fs::read_to_string(host.path("/tmp/hostile")).unwrap(),
        hostile
    );
    assert!(
        !std::path::Path::new(&pwned).exists(),
        "a value was executed"
    );
    assert_eq!(status(&host).1, 0);
    assert_eq!(
        host.tool("service", &["mevy", "describe"]).stdout,
        format!("{hostile}\n").into_bytes()
    );
}

#[test]
fn invalid_input_fails_cleanly_and_changes_nothing() {
    let host = SimHost::new();
    let before = host.snapshot();
    for (extra, needle) in [
        (json!({"name": "me-vy"}), "is not a valid service name"),
        (
            json!({"name": "x; rm -rf /"}),
            "is not a valid service name",
        ),
        (
            json!({"system_locale": "sl_SI.ISO8859-2"}),
            "legacy encodings are not supported",
        ),
        (
            json!({"system_locale": "en_US.utf8"}),
            "FreeBSD spells it en_US.UTF-8",
        ),
        (
            json!({"system_locale": "fr_FR.UTF-8"}),
            "is not installed on this host",
        ),
        (json!({"display_locale": "sl_SI"}), "BCP 47"),
        (
            json!({"env": {"BAD-KEY": "1"}}),
            "not a valid environment variable name",
        ),
        (
            json!({"env": {"LANG": "C"}}),
            "set from the locale parameters",
        ),
        (json!({"command": null}), "command is required"),
        (
            json!({"state": "running"}),
            "value of state must be one of: present, absent, got: running",
        ),
        (
            json!({"user": "Root Admin"}),
            "not a valid FreeBSD user name",
        ),
        (json!({"tmux_socket": "a/b"}), "tmux_socket"),
        (
            json!({"bogus": 1}),
            "Unsupported parameters for (warden_rcd) module: bogus.",
        ),
        (json!({"require": ["LOGIN", "bad word"]}), "require entry"),
    ] {
        let run = module(&host, with(params(&host), extra.clone()));
        assert_eq!(run.code, 1, "{extra}: {}", run.result);
        assert_eq!(run.result["failed"], true);
        assert_eq!(run.result["changed"], false);
        let msg = run.result["msg"].as_str().unwrap();
        assert!(msg.contains(needle), "{extra}: {msg}");
    }
    assert_eq!(host.snapshot(), before);
    assert!(host.calls().is_empty(), "{:?}", host.calls());
}

#[test]
fn missing_user_fails_before_any_change_but_check_mode_warns() {
    let host = SimHost::new();
    let before = host.snapshot();
    let args = with(params(&host), json!({"user": "nosuchwardenuser"}));
    let run = module(&host, args.clone());
    assert_eq!(run.code, 1);
    assert!(run.result["msg"]
        .as_str()
        .unwrap()
        .contains("does not exist on this host"));
    let check = module(&host, with(args, json!({"_ansible_check_mode": true})));
    assert_eq!(check.code, 0, "{}", check.result);
    assert!(check.result["warnings"][0]
        .as_str()
        .unwrap()
        .contains("does not exist yet"));
    assert_eq!(host.snapshot(), before);
}

#[test]
fn start_that_does_nothing_is_caught_and_rolled_back() {
    let host = SimHost::new();
    let before = host.snapshot();
    // A start that claims success but does nothing.
    host.add_fault("service", "mevy start", 0, "");
    let run = module(&host, params(&host));
    host.clear_faults();
    assert_eq!(run.code, 1, "{}", run.result);
    let msg = run.result["msg"].as_str().unwrap();
    assert!(msg.contains("exited 0 but mevy is not running"), "{msg}");
    assert!(msg.contains("rolled back"), "{msg}");
    assert_eq!(run.result["changed"], false);
    assert_eq!(host.snapshot(), before);
    // The next run completes.
    assert_eq!(module(&host, params(&host)).result["changed"], true);
    assert_eq!(status(&host).1, 0);
}

#[test]
fn failed_restart_restores_the_old_service() {
    let host = SimHost::new();
    assert_eq!(module(&host, params(&host)).code, 0);
    let script_before = host.read("/usr/local/etc/rc.d/mevy");
    host.add_fault_times("service", "mevy start", 1, "start: simulated failure", 1);
    let run = module(
        &host,
        with(params(&host), json!({"system_locale": "de_DE.UTF-8"})),
    );
    assert_eq!(run.code, 1);
    assert!(
        run.result["msg"].as_str().unwrap().contains("rolled back"),
        "{}",
        run.result
    );
    assert_eq!(run.result["rc"], 1);
    assert_eq!(host.read("/usr/local/etc/rc.d/mevy"), script_before);
    // Undo of the stop restarted the old session (the fault only blocked the first start).
    assert_eq!(status(&host).1, 0);
    assert_eq!(run.result["changed"], false);
    assert!(
        run.result.get("running").is_none(),
        "a failed run reports no state"
    );
}

#[test]
fn diff_shows_rc_conf_and_script_changes() {
    let host = SimHost::new();
    module(&host, params(&host));
    let run = module(
        &host,
        with(
            params(&host),
            json!({"enabled": false, "_ansible_diff": true}),
        ),
    );
    let diff = &run.result["diff"];
    assert_eq!(diff.as_array().unwrap().len(), 1, "{diff}");
    assert_eq!(diff[0]["before"], "mevy_enable=\"YES\"\n");
    assert_eq!(diff[0]["after"], "mevy_enable=\"NO\"\n");
    let quiet = module(&host, with(params(&host), json!({"enabled": false})));
    assert!(quiet.result.get("diff").is_none());
}

/// Runs warden_rcd for every agent at once with `extra` params.
fn all_at_once(host: &SimHost, agents: &[&str], extra: Value) {
    std::thread::scope(|scope| {
        for name in agents {
            let extra = extra.clone();
            scope.spawn(move || {
                let args = with(
                    with(
                        params(host),
                        json!({
                            "name": name,
                            "tmux_socket": host.p(&format!("/var/run/{name}.tmux")),
                            "command": "exec sleep 3600",
                        }),
                    ),
                    extra,
                );
                let run = module(host, args);
                assert_eq!(run.code, 0, "{name}: {}", run.result);
            });
        }
    });
}

#[test]
fn agents_provisioned_at_once_lose_nothing() {
    let host = SimHost::new();
    let agents = ["mevy", "kira", "ana", "bo", "cy", "dee", "eli", "fay"];
    all_at_once(&host, &agents, json!({}));
    let rc_conf = host.read("/etc/rc.conf");
    for name in agents {
        assert_eq!(
            rc_conf.matches(&format!("{name}_enable=\"YES\"\n")).count(),
            1,
            "{name}: {rc_conf}"
        );
        assert!(host.path(&format!("/usr/local/etc/rc.d/{name}")).exists());
        assert_eq!(
            host.tool("service", &[name, "status"]).status.code(),
            Some(0),
            "{name}"
        );
    }
    // Edits rewrite rc.conf (sysrc's temp file + mv): only the host lock keeps them all.
    all_at_once(&host, &agents, json!({"enabled": false, "started": false}));
    let rc_conf = host.read("/etc/rc.conf");
    for name in agents {
        assert!(
            rc_conf.contains(&format!("{name}_enable=\"NO\"\n")),
            "{name} lost its change: {rc_conf}"
        );
        assert_eq!(
            host.tool("service", &[name, "status"]).status.code(),
            Some(1),
            "{name}"
        );
    }
}

#[test]
fn rc_conf_chain_enable_in_rc_conf_d_is_changed_there() {
    // Issue 13 gap 4: the script's `load_rc_config mevy` reads rc.conf.d/mevy after
    // rc.conf, so mevy_enable="YES" in rc.conf did not enable it there.
    let host = SimHost::new();
    std::fs::write(host.path("/etc/rc.conf.d/mevy"), "mevy_enable=\"NO\"\n").unwrap();
    let run = module(&host, params(&host));
    assert_eq!(run.code, 0, "{}", run.result);
    assert_eq!(host.read("/etc/rc.conf.d/mevy"), "mevy_enable=\"YES\"\n");
    assert!(!host.read("/etc/rc.conf").contains("mevy_enable"));
    assert_eq!(status(&host), ("mevy is running.\n".into(), 0));
    // And it comes back at boot.
    host.boot();
    assert_eq!(status(&host), ("mevy is running.\n".into(), 0));

    let removed = module(&host, with(params(&host), json!({"state": "absent"})));
    assert_eq!(removed.code, 0, "{}", removed.result);
    assert_eq!(host.read("/etc/rc.conf.d/mevy"), "");
}

/// Issue 13, gap 5: on FreeBSD 13.x's rc.subr `service NAME status` of a disabled service
/// prints "Cannot 'status' …" and exits 0, so it reads as running. Whether the service runs
/// must be asked with `onestatus`, which does not depend on `<name>_enable`.
#[test]
fn issue13_gap5_status_of_a_disabled_service_on_freebsd13() {
    let host = SimHost::new();
    host.set_freebsd_version("13.5-RELEASE");
    let off = with(params(&host), json!({"started": false, "enabled": false}));
    let first = module(&host, off.clone());
    assert_eq!(first.code, 0, "{}", first.result);
    assert_eq!(
        status(&host).0.split('.').next(),
        Some("Cannot 'status' mevy")
    );
    // Installed, disabled and stopped: a second run has nothing to do.
    let again = module(&host, off);
    assert_eq!(
        (again.code, again.result["changed"].clone()),
        (0, json!(false)),
        "{}",
        again.result
    );

    // Started while disabled (`onestart`), and a start that claims success but does
    // nothing is caught: `status` would have said 0 whatever happened.
    host.add_fault("service", "mevy onestart", 0, "");
    let fake = module(&host, with(params(&host), json!({"enabled": false})));
    host.clear_faults();
    assert_eq!(fake.code, 1, "{}", fake.result);
    assert!(
        fake.msg().contains("exited 0 but mevy is not running"),
        "{}",
        fake.msg()
    );
    let real = module(&host, with(params(&host), json!({"enabled": false})));
    assert_eq!(real.code, 0, "{}", real.result);
    assert_eq!(
        host.tool("service", &["mevy", "onestatus"]).status.code(),
        Some(0)
    );
    let idle = module(&host, with(params(&host), json!({"enabled": false})));
    assert_eq!(idle.result["changed"], false, "{}", idle.result);
}
