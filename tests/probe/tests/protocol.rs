//! Runtime conformance on a real binary: what Ansible sends, what the module must print.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly where module code may not

use assert_cmd::Command;
use serde_json::{json, Value};

struct Reply {
    json: Value,
    code: i32,
    stderr: String,
}

fn run_raw(bytes: &[u8]) -> Reply {
    let dir = tempfile::tempdir().unwrap();
    let args = dir.path().join("args");
    std::fs::write(&args, bytes).unwrap();
    run_argv(&[args.to_str().unwrap()])
}

fn run_argv(argv: &[&str]) -> Reply {
    let out = Command::cargo_bin("warden_probe")
        .unwrap()
        .args(argv)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.lines().count(),
        1,
        "one line of JSON expected, got: {stdout:?}"
    );
    Reply {
        json: serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}")),
        code: out.status.code().unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn run(args: Value) -> Reply {
    run_raw(args.to_string().as_bytes())
}

fn failed_with(reply: &Reply, needle: &str) {
    assert_eq!(reply.code, 1, "{}", reply.json);
    assert_eq!(reply.json["failed"], true, "{}", reply.json);
    let msg = reply.json["msg"].as_str().unwrap();
    assert!(msg.contains(needle), "{needle:?} not in {msg:?}");
}

#[test]
fn success_is_one_object_with_failed_false_and_exit_zero() {
    let reply = run(json!({"name": "mevy", "_ansible_check_mode": false}));
    assert_eq!(reply.code, 0);
    assert_eq!(reply.json["failed"], false);
    assert_eq!(reply.json["changed"], false);
    assert_eq!(reply.json["params"]["name"], "mevy");
    assert_eq!(reply.stderr, "");
}

#[test]
fn args_file_problems_end_as_failed_json() {
    failed_with(&run_argv(&[]), "no args file given");
    failed_with(
        &run_argv(&["/nonexistent/args"]),
        "cannot read the module args file /nonexistent/args",
    );
    failed_with(&run_raw(b"{\"name\": "), "not valid JSON");
    failed_with(&run_raw(b"{\"name\": \"\xff\xfe\"}"), "not valid UTF-8");
    failed_with(&run_raw(b"[\"name\"]"), "must hold a JSON object, got list");
    failed_with(&run_raw(b""), "not valid JSON");
}

#[test]
fn unknown_missing_and_bad_params_are_named() {
    failed_with(
        &run(json!({"name": "x", "foo": 1})),
        "Unsupported parameters for (warden_probe) module: foo. Supported parameters include: content, count, enabled, env, fail, file, items, mode, name, panic, password, state, trusted_links (probe_name).",
    );
    failed_with(
        &run(json!({"count": 1})),
        "missing required arguments: name",
    );
    failed_with(
        &run(json!({"name": "x", "state": "on"})),
        "value of state must be one of: present, absent, got: on",
    );
    failed_with(
        &run(json!({"name": "x", "count": "many"})),
        "argument 'count' is of type str and we were unable to convert to int",
    );
    failed_with(
        &run(json!({"name": "x", "enabled": "maybe"})),
        "The value 'maybe' is not a valid boolean",
    );
    failed_with(
        &run(json!({"name": "x", "file": "relative/path"})),
        "is not an absolute path",
    );
    // All problems at once.
    let reply = run(json!({"foo": 1, "count": "x"}));
    let msg = reply.json["msg"].as_str().unwrap();
    assert!(
        msg.contains("Unsupported") && msg.contains("missing required") && msg.contains("'count'"),
        "{msg}"
    );
}

#[test]
fn key_value_strings_are_coerced() {
    let reply = run(json!({
        "probe_name": "x", "count": "5", "enabled": "yes", "items": "a,b", "env": "A=1 B=2", "mode": 493
    }));
    assert_eq!(reply.code, 0, "{}", reply.json);
    assert_eq!(
        reply.json["params"],
        json!({"name": "x", "state": "present", "count": 5, "enabled": true, "items": ["a", "b"],
               "env": {"A": "1", "B": "2"}, "mode": "0755"})
    );
}

#[test]
fn internal_keys_of_any_version_are_ignored() {
    let reply = run(json!({
        "name": "x", "_ansible_version": "2.21.5", "_ansible_tracebacks_for": [],
        "_ansible_some_key_from_2_30": {"nested": true}, "_ansible_string_conversion_action": "warn"
    }));
    assert_eq!(reply.code, 0, "{}", reply.json);
    assert!(
        reply.json.get("invocation").is_some(),
        "invocation expected before 2.21's opt-out"
    );
    let reply = run(json!({"name": "x", "_ansible_inject_invocation": false}));
    assert!(reply.json.get("invocation").is_none());
}

#[test]
fn check_mode_predicts_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    let args = json!({"name": "x", "file": file.to_str().unwrap(), "content": "hello\n"});
    let mut check = args.clone();
    check["_ansible_check_mode"] = json!(true);
    check["_ansible_diff"] = json!(true);
    let reply = run(check);
    assert_eq!(reply.json["changed"], true);
    assert!(!file.exists());
    assert_eq!(reply.json["diff"][0]["after"], "hello\n");
    assert_eq!(reply.json["diff"][0]["before"], "");

    let reply = run(args.clone());
    assert_eq!(reply.json["changed"], true);
    assert!(reply.json.get("diff").is_none(), "diff only when asked");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "hello\n");
    let reply = run(args);
    assert_eq!(reply.json["changed"], false);
}

#[test]
fn no_log_values_never_leave_the_module() {
    let secret = "s3cr3t-canary";
    for extra in [
        json!({}),
        json!({"fail": true}),
        json!({"panic": true}),
        json!({"bogus": secret}),
    ] {
        let mut args = json!({"name": "x", "password": secret});
        for (k, v) in extra.as_object().unwrap() {
            args[k] = v.clone();
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("args");
        std::fs::write(&path, args.to_string()).unwrap();
        let out = Command::cargo_bin("warden_probe")
            .unwrap()
            .arg(&path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
        // A bogus param's value is not declared no_log; only check the password canary
        // where it is the password.
        if extra.get("bogus").is_none() {
            assert!(!text.contains(secret), "{extra}: {text}");
        }
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        if let Some(inv) = json.get("invocation") {
            assert_eq!(
                inv["module_args"]["password"], "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER",
                "{extra}"
            );
        }
    }
    let reply = run(json!({"name": "x", "password": secret, "fail": true}));
    assert_eq!(
        reply.json["msg"],
        "probe failed on purpose for x with password ********"
    );
}

#[test]
fn no_log_values_are_reported_as_new_secrets_to_ansible_core_2_22_only() {
    let secret = "s3cr3t-canary";
    for (version, reported) in [("2.19.14", false), ("2.21.5", false), ("2.22.0rc1", true)] {
        for fail in [false, true] {
            let reply = run(json!({"name": "x", "password": secret, "fail": fail,
                                   "_ansible_version": version}));
            let expected = if reported {
                json!([secret])
            } else {
                Value::Null
            };
            assert_eq!(
                reply.json["_ansible_new_secrets"], expected,
                "{version} fail={fail}"
            );
            let mut rest = reply.json.clone();
            rest.as_object_mut().unwrap().remove("_ansible_new_secrets");
            assert!(!rest.to_string().contains(secret), "{version}: {rest}");
        }
    }
    // Bad params fail validation, and the secret is still reported.
    let reply = run(json!({"name": "x", "password": secret, "count": "many",
                           "_ansible_version": "2.22.0"}));
    assert_eq!(reply.json["failed"], true);
    assert_eq!(reply.json["_ansible_new_secrets"], json!([secret]));
    // No secret given: no key at all.
    let reply = run(json!({"name": "x", "_ansible_version": "2.22.0"}));
    assert!(
        reply.json.get("_ansible_new_secrets").is_none(),
        "{}",
        reply.json
    );
}

#[test]
fn a_panic_is_failed_json_without_a_trace() {
    let reply = run(json!({"name": "x", "panic": true, "password": "pw"}));
    failed_with(
        &reply,
        "internal error in module warden_probe: probe panicked on purpose (password ********)",
    );
    assert_eq!(reply.stderr, "", "nothing but the JSON may be printed");
    assert!(!reply.json["msg"]
        .as_str()
        .unwrap()
        .contains("stack backtrace"));
}
