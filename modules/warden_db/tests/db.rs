//! warden_db against a real PostgreSQL server (a throw-away cluster per test).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly where module code may not

mod common;

use common::{module, module_within, with, Cluster, Pki};
use serde_json::{json, Value};

const SECRET: &str = "Canary-pw-7f3a'\"$x";

fn agent(cluster: &Cluster, name: &str) -> Value {
    with(cluster.login(), json!({"name": name, "password": SECRET}))
}

/// DDL statements the server logged (log_statement=all).
fn ddl_in_log(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("statement: "))
        .map(|l| l.split("statement: ").nth(1).unwrap_or("").to_string())
        .filter(|s| {
            let up = s.trim_start().to_ascii_uppercase();
            ["CREATE", "ALTER", "DROP", "GRANT", "REVOKE"]
                .iter()
                .any(|k| up.starts_with(k))
        })
        .collect()
}

#[test]
fn create_then_nothing_to_do() {
    let c = Cluster::start();
    let run = module(&agent(&c, "mevy"));
    assert_eq!(run.code, 0, "{}", run.result);
    assert_eq!(run.result["changed"], true);
    assert_eq!(
        run.result["queries"],
        json!([
            "CREATE ROLE \"mevy\" LOGIN PASSWORD '<SCRAM-SHA-256 verifier>'",
            "CREATE DATABASE \"mevy\" OWNER \"mevy\" TEMPLATE \"template0\" ENCODING 'UTF8'",
            "REVOKE CONNECT, TEMPORARY ON DATABASE \"mevy\" FROM PUBLIC"
        ])
    );
    c.can_login("mevy", SECRET, "mevy").unwrap();
    assert_eq!(
        c.value("SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = 'mevy'")
            .as_deref(),
        Some("mevy")
    );
    assert_eq!(
        c.value("SELECT has_database_privilege('public', 'mevy', 'CONNECT')::text")
            .as_deref(),
        Some("false")
    );
    let stored = c
        .value("SELECT rolpassword FROM pg_authid WHERE rolname = 'mevy'")
        .unwrap();
    assert!(stored.starts_with("SCRAM-SHA-256$4096:"), "{stored}");

    let before = ddl_in_log(&c.log()).len();
    let again = module(&agent(&c, "mevy"));
    assert_eq!(again.result["changed"], false, "{}", again.result);
    assert_eq!(again.result["queries"], json!([]));
    assert_eq!(
        ddl_in_log(&c.log()).len(),
        before,
        "an unchanged password is no change"
    );
    // The plaintext never reached the server.
    assert!(
        !c.log().contains("Canary-pw"),
        "the password is in the server log"
    );
    assert!(!run.stdout.contains("Canary-pw") && !again.stdout.contains("Canary-pw"));
}

#[test]
fn password_change_and_md5_upgrade() {
    let c = Cluster::start();
    module(&agent(&c, "mevy"));
    let changed = module(&with(
        agent(&c, "mevy"),
        json!({"password": "new-secret-1"}),
    ));
    assert_eq!(
        (
            changed.result["changed"].clone(),
            changed.result["password_changed"].clone()
        ),
        (json!(true), json!(true))
    );
    c.can_login("mevy", "new-secret-1", "mevy").unwrap();
    assert!(c.can_login("mevy", SECRET, "mevy").is_err());

    // A role whose password an older setup stored as MD5.
    c.client()
        .batch_execute(
            "SET password_encryption = 'md5'; CREATE ROLE kira LOGIN PASSWORD 'old-md5-pw'",
        )
        .unwrap();
    assert!(c
        .value("SELECT rolpassword FROM pg_authid WHERE rolname = 'kira'")
        .unwrap()
        .starts_with("md5"));
    let upgraded = module(&with(agent(&c, "kira"), json!({"password": "old-md5-pw"})));
    assert_eq!(
        upgraded.result["password_changed"], true,
        "{}",
        upgraded.result
    );
    assert!(c
        .value("SELECT rolpassword FROM pg_authid WHERE rolname = 'kira'")
        .unwrap()
        .starts_with("SCRAM-SHA-256$"));
    c.can_login("kira", "old-md5-pw", "kira").unwrap();
    assert_eq!(
        module(&with(agent(&c, "kira"), json!({"password": "old-md5-pw"}))).result["changed"],
        false
    );
}

#[test]
fn check_mode_runs_only_selects() {
    let c = Cluster::start();
    let before = ddl_in_log(&c.log()).len();
    let check = module(&with(
        agent(&c, "mevy"),
        json!({"_ansible_check_mode": true, "_ansible_diff": true}),
    ));
    assert_eq!(check.code, 0, "{}", check.result);
    assert_eq!(check.result["changed"], true);
    assert_eq!(check.result["queries"].as_array().unwrap().len(), 3);
    assert_eq!(
        ddl_in_log(&c.log()).len(),
        before,
        "check mode ran DDL: {:?}",
        ddl_in_log(&c.log())
    );
    assert!(c
        .value("SELECT rolname::text FROM pg_roles WHERE rolname = 'mevy'")
        .is_none());
    assert!(!c.log().contains("Canary-pw") && !check.stdout.contains("Canary-pw"));
    let diff = check.result["diff"].as_array().unwrap();
    assert_eq!(
        diff[0]["after"],
        "role: mevy\nlogin: true\npassword: scram-sha-256 (new)\n"
    );
    assert!(diff[1]["after"]
        .as_str()
        .unwrap()
        .contains("owner: mevy\nencoding: UTF8\n"));
    // The prediction holds.
    let real = module(&agent(&c, "mevy"));
    assert_eq!(real.result["queries"], check.result["queries"]);
    // Check mode with a different password on an existing role: changed, still no DDL.
    let before = ddl_in_log(&c.log()).len();
    let check = module(&with(
        agent(&c, "mevy"),
        json!({"password": "other", "_ansible_check_mode": true}),
    ));
    assert_eq!(check.result["password_changed"], true);
    assert_eq!(ddl_in_log(&c.log()).len(), before);
    c.can_login("mevy", SECRET, "mevy").unwrap();
}

#[test]
fn absent_drops_in_order_and_twice_is_fine() {
    let c = Cluster::start();
    module(&agent(&c, "mevy"));
    // A session in the database and a grant elsewhere must not block the drop.
    let _session = c.connect_as("mevy", SECRET, "mevy").unwrap();
    c.client()
        .batch_execute("GRANT CONNECT ON DATABASE postgres TO mevy")
        .unwrap();
    let gone = module(&with(agent(&c, "mevy"), json!({"state": "absent"})));
    assert_eq!(gone.code, 0, "{}", gone.result);
    assert_eq!(
        gone.result["queries"],
        json!([
            "DROP DATABASE \"mevy\" WITH (FORCE)",
            "DROP OWNED BY \"mevy\"",
            "DROP ROLE \"mevy\""
        ])
    );
    assert!(c
        .value("SELECT rolname::text FROM pg_roles WHERE rolname = 'mevy'")
        .is_none());
    let again = module(&with(agent(&c, "mevy"), json!({"state": "absent"})));
    assert_eq!(again.result["changed"], false);
}

#[test]
fn a_database_with_another_locale_fails_clearly() {
    let c = Cluster::start();
    let mut admin = c.client();
    admin.batch_execute("CREATE ROLE mevy LOGIN").unwrap();
    admin
        .batch_execute(
            "CREATE DATABASE mevy OWNER mevy TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'",
        )
        .unwrap();
    let run = module(&with(
        agent(&c, "mevy"),
        json!({"lc_collate": "C.UTF-8", "lc_ctype": "C.UTF-8"}),
    ));
    assert_eq!(run.code, 1);
    assert!(
        run.msg().contains("database mevy exists with LC_COLLATE C (wanted C.UTF-8), LC_CTYPE C (wanted C.UTF-8); PostgreSQL cannot change that in place"),
        "{}",
        run.msg()
    );
    // The same locale spelled another way is not a mismatch.
    c.client()
        .batch_execute(
            "CREATE DATABASE kira TEMPLATE template0 LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'",
        )
        .unwrap();
    let run = module(&with(
        agent(&c, "kira"),
        json!({"lc_collate": "C.utf8", "lc_ctype": "C.utf8"}),
    ));
    assert_eq!(run.code, 0, "{}", run.result);
    // A locale the server does not have is PostgreSQL's own clear error.
    let run = module(&with(
        agent(&c, "ana"),
        json!({"lc_collate": "sl_SI.UTF-8", "lc_ctype": "sl_SI.UTF-8"}),
    ));
    assert_eq!(run.code, 1);
    assert!(
        run.msg().contains("invalid locale name") && run.msg().contains("42809"),
        "{}",
        run.msg()
    );
    assert!(
        run.msg().contains("rolled back"),
        "the role created first was dropped again: {}",
        run.msg()
    );
    assert!(c
        .value("SELECT rolname::text FROM pg_roles WHERE rolname = 'ana'")
        .is_none());
}

#[test]
fn bad_names_change_nothing() {
    let c = Cluster::start();
    let before = ddl_in_log(&c.log()).len();
    for (extra, needle) in [
        (json!({"name": "a".repeat(64)}), "at most 63 bytes"),
        (
            json!({"name": "mevy\"; DROP ROLE postgres; --"}),
            "is not an allowed name",
        ),
        (
            json!({"name": "mevy", "database": "x' OR '1'='1"}),
            "is not an allowed name",
        ),
        (json!({"name": "pg_mevy"}), "reserves"),
        (json!({"name": "public"}), "reserved"),
        (json!({"name": "all"}), "pg_hba.conf keyword"),
        (
            json!({"name": "mevy", "lc_collate": "C'; DROP DATABASE postgres; --"}),
            "not a locale or encoding name",
        ),
        (
            json!({"name": "mevy", "owner": "nosuchrole"}),
            "is not a role on the server",
        ),
        (json!({"name": "mevy", "password": ""}), "password is empty"),
    ] {
        let run = module(&with(agent(&c, "x"), extra.clone()));
        assert_eq!(run.code, 1, "{extra}");
        assert!(run.msg().contains(needle), "{extra}: {}", run.msg());
    }
    assert_eq!(ddl_in_log(&c.log()).len(), before);
    assert!(c
        .value("SELECT rolname::text FROM pg_roles WHERE rolname = 'mevy'")
        .is_none());
}

#[test]
fn connection_failures_say_where_and_why_without_secrets() {
    let c = Cluster::start();
    let run = module(&with(
        agent(&c, "mevy"),
        json!({"login_password": "wrong-Canary-pw"}),
    ));
    assert_eq!(run.code, 1);
    let msg = run.msg();
    assert!(msg.contains(&format!("cannot connect to PostgreSQL at 127.0.0.1:{} as postgres (database postgres, sslmode verify-full)", c.port())), "{msg}");
    assert!(
        msg.contains("password authentication failed for user \"postgres\" (SQLSTATE 28P01)"),
        "{msg}"
    );
    assert!(!run.stdout.contains("Canary-pw"), "{}", run.stdout);

    let port = c.port();
    c.stop();
    let run = module(&agent(&c, "mevy"));
    assert_eq!(run.code, 1);
    assert!(
        run.msg().contains(&format!("127.0.0.1:{port}"))
            && run.msg().to_lowercase().contains("connection refused"),
        "{}",
        run.msg()
    );
}

#[test]
fn unix_socket_and_tls_modes() {
    let c = Cluster::start();
    // Through the socket: no TLS there, so the default verify-full needs no ca_cert, and the
    // server's trust login is accepted (require_auth defaults to scram-sha-256 and none).
    let socket = with(
        agent(&c, "mevy"),
        json!({"login_unix_socket": c.env["PGSOCKET"], "login_password": null, "ca_cert": null}),
    );
    let run = module(&socket);
    assert_eq!(run.code, 0, "{}", run.result);
    // Over TCP the server takes TLS only (hostssl): disable is refused by the server.
    let plain = module(&with(agent(&c, "mevy"), json!({"ssl_mode": "disable"})));
    assert_eq!(plain.code, 1);
    assert!(
        plain.msg().contains("sslmode disable") && plain.msg().contains("no encryption"),
        "{}",
        plain.msg()
    );
    // prefer and require encrypt (certificate unchecked, channel binding required).
    for mode in ["prefer", "require", "verify-ca"] {
        let run = module(&with(agent(&c, "mevy"), json!({"ssl_mode": mode})));
        assert_eq!(run.code, 0, "{mode}: {}", run.result);
    }
    // verify-full by name: the certificate has DNS localhost as well as IP 127.0.0.1.
    let by_name = module(&with(agent(&c, "mevy"), json!({"login_host": "localhost"})));
    assert_eq!(by_name.code, 0, "{}", by_name.result);
    let verify = module(&with(agent(&c, "mevy"), json!({"ca_cert": null})));
    assert!(verify.msg().contains("needs ca_cert"), "{}", verify.msg());
    // Another CA: refused.
    let other = Pki::new();
    let wrong = module(&with(
        agent(&c, "mevy"),
        json!({"ca_cert": other.path("ca.crt")}),
    ));
    assert_eq!(wrong.code, 1);
    assert!(
        wrong.msg().contains("invalid peer certificate"),
        "{}",
        wrong.msg()
    );
    // Every TCP session the module opened was encrypted.
    let log = c.log();
    let sessions: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("connection authorized") && l.contains("application_name=warden_db"))
        .collect();
    assert!(sessions.len() >= 5, "{sessions:?}");
    assert!(
        sessions
            .iter()
            .all(|l| l.contains("SSL enabled") || !l.contains("host=127.0.0.1")),
        "{sessions:?}"
    );
}

#[test]
fn stored_verifier_with_huge_iterations_is_replaced_without_hanging() {
    let c = Cluster::start();
    module(&agent(&c, "mevy"));
    // A verifier asking for 2^31 - 1 PBKDF2 rounds would keep warden_db (root) busy for
    // hours while it holds the advisory lock. Written straight into the catalog: `ALTER ROLE
    // ... PASSWORD` with it would keep the server itself busy (PostgreSQL 15 checks a new
    // verifier against the empty password, user.c), though the role may do that to itself.
    c.client()
        .batch_execute(
            "UPDATE pg_authid SET rolpassword = 'SCRAM-SHA-256$2147483647:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=' WHERE rolname = 'mevy'",
        )
        .unwrap();
    let run = module_within(&agent(&c, "mevy"), 60);
    assert_eq!(run.code, 0, "{}", run.result);
    assert_eq!(
        (
            run.result["changed"].clone(),
            run.result["password_changed"].clone()
        ),
        (json!(true), json!(true))
    );
    assert!(
        run.result["warnings"][0]
            .as_str()
            .unwrap_or_default()
            .contains("2147483647 iterations, more than the 100000 warden_db recomputes"),
        "{}",
        run.result
    );
    let stored = c
        .value("SELECT rolpassword FROM pg_authid WHERE rolname = 'mevy'")
        .unwrap();
    assert!(stored.starts_with("SCRAM-SHA-256$4096:"), "{stored}");
    c.can_login("mevy", SECRET, "mevy").unwrap();
    assert_eq!(module(&agent(&c, "mevy")).result["changed"], false);
}

#[test]
fn statement_blocked_by_another_sessions_lock_fails_within_lock_timeout() {
    let c = Cluster::start();
    module(&agent(&c, "mevy"));
    // Another session changes the role and keeps its transaction open: the row stays locked.
    let mut other = c.client();
    other
        .batch_execute("BEGIN; ALTER ROLE mevy CONNECTION LIMIT 3")
        .unwrap();
    let change = with(agent(&c, "mevy"), json!({"password": "new-pw-2"}));
    let run = module_within(&with(change.clone(), json!({"lock_timeout": 1})), 60);
    assert_eq!(run.code, 1, "{}", run.result);
    assert!(
        run.msg()
            .contains("canceling statement due to lock timeout (SQLSTATE 55P03)")
            && run
                .msg()
                .contains("lock_timeout (1 s) ran out waiting for a lock another session holds"),
        "{}",
        run.msg()
    );
    let run = module_within(
        &with(
            change.clone(),
            json!({"lock_timeout": 30, "statement_timeout": 1}),
        ),
        60,
    );
    assert_eq!(run.code, 1, "{}", run.result);
    assert!(
        run.msg()
            .contains("canceling statement due to statement timeout (SQLSTATE 57014)")
            && run.msg().contains("statement_timeout (1 s) ran out"),
        "{}",
        run.msg()
    );
    other.batch_execute("ROLLBACK").unwrap();
    c.can_login("mevy", SECRET, "mevy").unwrap();
    let run = module(&change);
    assert_eq!(run.code, 0, "{}", run.result);
    c.can_login("mevy", "new-pw-2", "mevy").unwrap();
}

#[test]
fn advisory_lock_held_elsewhere_fails_within_lock_timeout() {
    let c = Cluster::start();
    let mut other = c.client();
    other
        .execute("SELECT pg_advisory_lock($1)", &[&warden_db::LOCK_KEY])
        .unwrap();
    let run = module_within(&with(agent(&c, "mevy"), json!({"lock_timeout": 1})), 60);
    assert_eq!(run.code, 1, "{}", run.result);
    let pid: i32 = other
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    assert!(
        run.msg().contains(
            "cannot take warden_db's advisory lock: canceling statement due to lock timeout"
        ) && run.msg().contains("lock_timeout (1 s) ran out")
            && run.msg().contains(&format!("held by server process {pid}")),
        "{}",
        run.msg()
    );
    assert!(c
        .value("SELECT rolname::text FROM pg_roles WHERE rolname = 'mevy'")
        .is_none());
    drop(other);
    assert_eq!(module(&agent(&c, "mevy")).code, 0);
}

#[test]
fn agents_at_once_do_not_collide() {
    let c = Cluster::start();
    let names = ["mevy", "kira", "ana", "bo", "cy", "dee"];
    std::thread::scope(|s| {
        for name in names {
            let args = agent(&c, name);
            s.spawn(move || {
                let run = module(&args);
                assert_eq!(run.code, 0, "{name}: {}", run.result);
            });
        }
    });
    for name in names {
        c.can_login(name, SECRET, name).unwrap();
    }
}

#[test]
fn pg_hba_entry_is_added_once_and_reloaded_only_on_change() {
    let c = Cluster::start();
    let hba = json!({"pg_hba_file": c.hba_file(), "pg_hba_address": "10.0.1.0/24"});
    let run = module(&with(agent(&c, "mevy"), hba.clone()));
    assert_eq!(run.code, 0, "{}", run.result);
    let rules = c.value("SELECT string_agg(database[1] || ' ' || user_name[1] || ' ' || address || ' ' || auth_method, ',') FROM pg_hba_file_rules WHERE address = '10.0.1.0'");
    assert_eq!(rules.as_deref(), Some("mevy mevy 10.0.1.0 scram-sha-256"));
    let reloads = |log: &str| {
        log.matches("received SIGHUP, reloading configuration files")
            .count()
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(reloads(&c.log()), 1);
    let again = module(&with(agent(&c, "mevy"), hba.clone()));
    assert_eq!(again.result["changed"], false);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(reloads(&c.log()), 1, "no reload without a change");
    let gone = module(&with(
        agent(&c, "mevy"),
        with(hba, json!({"state": "absent"})),
    ));
    assert_eq!(gone.code, 0, "{}", gone.result);
    assert!(!std::fs::read_to_string(c.hba_file())
        .unwrap()
        .contains("10.0.1.0/24"));
}
