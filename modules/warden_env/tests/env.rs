//! warden_env on a real file system.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly where module code may not

use std::os::unix::fs::PermissionsExt;

use serde_json::{json, Value};
use warden_sim::host::{with, ModuleRun, SimHost};

fn module(host: &SimHost, args: Value) -> ModuleRun {
    host.run_module(env!("CARGO_BIN_EXE_warden_env"), &args)
}

fn args(host: &SimHost) -> Value {
    json!({
        "path": host.p("/home/mevy/agent/.env"),
        "values": {"AGENT_NAME": "mevy", "ASSISTANT_NAME": "Mevy", "SYSTEM_LOCALE": "sl_SI.UTF-8"},
        "secret_values": {"WARDEN_DB_PASSWORD": "Canary-Secret-9"},
        "create_parent": true,
        // The simulated host's /home is a link to usr/home, as pw(8) leaves it.
        "trusted_links": [host.p("/home")],
    })
}

/// Issue 13, a fresh real host: /home is a link to usr/home (freebsd-src
/// usr.sbin/pw/pw_user.c), so a .env under /home is refused unless the link is trusted, and
/// written through it when it is (what the warden_env role passes from the layout).
#[test]
fn home_linked_to_usr_home_as_pw_leaves_it() {
    let host = SimHost::new();
    assert_eq!(
        std::fs::read_link(host.path("/home")).unwrap(),
        std::path::Path::new("usr/home")
    );
    let mut strict = args(&host);
    strict.as_object_mut().unwrap().remove("trusted_links");
    let before = host.snapshot();
    let refused = module(&host, strict);
    assert_eq!(refused.code, 1, "{}", refused.result);
    assert!(
        refused.msg().contains("symbolic link") && refused.msg().contains("trusted_links"),
        "{}",
        refused.msg()
    );
    assert_eq!(host.snapshot(), before);
    let run = module(&host, args(&host));
    assert_eq!(run.code, 0, "{}", run.result);
    assert!(host.path("/usr/home/mevy/agent/.env").is_file());
}

#[test]
fn write_then_nothing_to_do() {
    let host = SimHost::new();
    let run = module(&host, with(args(&host), json!({"_ansible_diff": true})));
    assert_eq!(run.code, 0, "{}", run.result);
    assert_eq!(run.result["changed"], true);
    let text = host.read("/home/mevy/agent/.env");
    assert!(
        text.contains("AGENT_NAME=mevy\n") && text.contains("WARDEN_DB_PASSWORD=Canary-Secret-9\n"),
        "{text}"
    );
    let mode = std::fs::metadata(host.path("/home/mevy/agent/.env"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let shown = run.result.to_string();
    assert!(!shown.contains("Canary-Secret"), "{shown}");
    assert!(run.result["diff"][0]["after"]
        .as_str()
        .unwrap()
        .contains("WARDEN_DB_PASSWORD=********"));
    assert_eq!(module(&host, args(&host)).result["changed"], false);
}

#[test]
fn check_mode_and_changes() {
    let host = SimHost::new();
    let before = host.snapshot();
    let check = module(
        &host,
        with(args(&host), json!({"_ansible_check_mode": true})),
    );
    assert_eq!(check.result["changed"], true);
    assert_eq!(host.snapshot(), before);
    module(&host, args(&host));
    let changed = module(
        &host,
        with(
            args(&host),
            json!({"secret_values": {"WARDEN_DB_PASSWORD": "new-Canary"}, "_ansible_diff": true}),
        ),
    );
    assert_eq!(changed.result["changed"], true);
    assert!(
        !changed.result.to_string().contains("Canary"),
        "{}",
        changed.result
    );
    std::fs::set_permissions(
        host.path("/home/mevy/agent/.env"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    assert_eq!(
        module(
            &host,
            with(
                args(&host),
                json!({"secret_values": {"WARDEN_DB_PASSWORD": "new-Canary"}})
            )
        )
        .result["changed"],
        true,
        "mode drift is corrected"
    );
    let gone = module(&host, with(args(&host), json!({"state": "absent"})));
    assert_eq!(gone.result["changed"], true);
    assert!(!host.path("/home/mevy/agent/.env").exists());
}

#[test]
fn refusals_change_nothing() {
    let host = SimHost::new();
    let before = host.snapshot();
    for (extra, needle) in [
        (
            json!({"values": {"BAD-KEY": "x"}}),
            "is not an environment variable name",
        ),
        (json!({"values": {"K": "a\nb"}}), "line break"),
        (
            json!({"create_parent": false}),
            "does not exist (the agent's checkout)",
        ),
        (
            json!({"owner": "nosuchuserwarden"}),
            "does not exist on this host",
        ),
    ] {
        let run = module(&host, with(args(&host), extra.clone()));
        assert_eq!(run.code, 1, "{extra}");
        assert!(run.msg().contains(needle), "{extra}: {}", run.msg());
        assert!(!run.result.to_string().contains("Canary-Secret"));
    }
    assert_eq!(host.snapshot(), before);
}
