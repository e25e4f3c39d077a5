//! warden_db against a rogue PostgreSQL server (tests/rogue_pg.py): what answers at the db
//! jail's address on the shared bridge may be anyone. The admin password must never reach
//! it, and no wait of the login may be unbounded. The rogue records everything it receives;
//! the tests assert on that record.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly where module code may not

mod common;

use common::{module_within, with, Pki, Rogue};
use serde_json::{json, Value};

const ADMIN_PASSWORD: &str = "Admin-Canary-pw-81c2";

fn args(rogue: &Rogue, extra: Value) -> Value {
    with(
        json!({
            "name": "mevy",
            "password": "agent-pw-1",
            "login_host": "127.0.0.1",
            "login_port": rogue.port,
            "login_user": "postgres",
            "login_password": ADMIN_PASSWORD,
            "connect_timeout": 10,
        }),
        extra,
    )
}

fn assert_no_password(rogue: &Rogue) {
    let got = rogue.received();
    assert!(
        !got.contains(ADMIN_PASSWORD),
        "the rogue received the password: {got}"
    );
    assert!(
        !rogue.message_types().contains(&"p".to_string()),
        "the rogue received a password message: {got}"
    );
}

#[test]
fn password_never_reaches_a_rogue_that_refuses_tls_and_asks_for_cleartext() {
    let pki = Pki::new();
    let rogue = Rogue::start(&["--ssl", "no", "--auth", "cleartext"]);
    // The default: verified TLS. The rogue's `N` ends it before the startup packet.
    let run = module_within(&args(&rogue, json!({"ca_cert": pki.path("ca.crt")})), 60);
    assert_eq!(run.code, 1, "{}", run.result);
    assert!(
        run.msg().contains("sslmode verify-full")
            && run.msg().contains("server does not support TLS"),
        "{}",
        run.msg()
    );
    assert!(
        !rogue.events().iter().any(|e| e["event"] == "startup"),
        "{:?}",
        rogue.events()
    );
    // The weak modes fall back to plain text; the cleartext request is still refused.
    for mode in ["prefer", "allow", "disable"] {
        let run = module_within(&args(&rogue, json!({"ssl_mode": mode})), 60);
        assert_eq!(run.code, 1, "{mode}: {}", run.result);
        assert!(
            run.msg().contains("asked for the password in clear text")
                && run.msg().contains("it was not sent"),
            "{mode}: {}",
            run.msg()
        );
        assert!(!run.stdout.contains(ADMIN_PASSWORD));
    }
    assert!(rogue.events().iter().any(|e| e["event"] == "startup"));
    assert_no_password(&rogue);
    // Opting in sends it: the record would show it (the assertions above can fail).
    let optin = module_within(
        &args(
            &rogue,
            json!({"ssl_mode": "disable", "require_auth": ["password"]}),
        ),
        60,
    );
    assert_eq!(optin.code, 1);
    assert!(rogue.received().contains(ADMIN_PASSWORD));
}

#[test]
fn rogue_with_a_self_signed_certificate_is_refused() {
    let pki = Pki::new();
    let rogue = Rogue::start(&[
        "--ssl",
        "yes",
        "--cert",
        &pki.path("self.crt"),
        "--key",
        &pki.path("self.key"),
        "--auth",
        "cleartext",
    ]);
    for mode in ["verify-full", "verify-ca"] {
        let run = module_within(
            &args(
                &rogue,
                json!({"ssl_mode": mode, "ca_cert": pki.path("ca.crt")}),
            ),
            60,
        );
        assert_eq!(run.code, 1, "{mode}: {}", run.result);
        assert!(
            run.msg().contains("invalid peer certificate") && run.msg().contains("UnknownIssuer"),
            "{mode}: {}",
            run.msg()
        );
    }
    assert!(
        !rogue.events().iter().any(|e| e["event"] == "startup"),
        "{:?}",
        rogue.events()
    );
    // `require` does not check the certificate; the cleartext request over that TLS is
    // refused all the same.
    let run = module_within(&args(&rogue, json!({"ssl_mode": "require"})), 60);
    assert_eq!(run.code, 1, "{}", run.result);
    assert!(
        run.msg().contains("asked for the password in clear text"),
        "{}",
        run.msg()
    );
    assert!(rogue.events().iter().any(|e| e["event"] == "startup"));
    assert_no_password(&rogue);
}

#[test]
fn md5_request_is_refused_unless_opted_in() {
    let rogue = Rogue::start(&["--ssl", "no", "--auth", "md5"]);
    let run = module_within(&args(&rogue, json!({"ssl_mode": "disable"})), 60);
    assert_eq!(run.code, 1);
    assert!(
        run.msg().contains("asked for an MD5 password hash")
            && run.msg().contains("nothing was sent"),
        "{}",
        run.msg()
    );
    assert_no_password(&rogue);
    let optin = module_within(
        &args(
            &rogue,
            json!({"ssl_mode": "disable", "require_auth": ["scram-sha-256", "md5"]}),
        ),
        60,
    );
    assert_eq!(optin.code, 1);
    let hashes: Vec<String> = rogue
        .events()
        .iter()
        .filter(|e| e["event"] == "message" && e["type"] == "p")
        .map(|e| e["body"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(hashes.len(), 1, "{hashes:?}");
    assert!(hashes[0].starts_with("md5"), "{hashes:?}");
    assert!(!rogue.received().contains(ADMIN_PASSWORD));
}

#[test]
fn server_scram_iterations_are_capped_at_login() {
    // A rogue with a certificate the CA signed (a stolen server key, say): TLS verifies, then
    // it asks for 2^32 - 1 PBKDF2 rounds, which would keep the client busy for an hour. The
    // driver (postgres-protocol 0.6.12) refuses more than 100,000 itself; the guard refuses
    // first, with a message saying so, whatever the driver's version does.
    let pki = Pki::new();
    let rogue = Rogue::start(&[
        "--ssl",
        "yes",
        "--cert",
        &pki.path("server.crt"),
        "--key",
        &pki.path("server.key"),
        "--auth",
        "scram",
        "--iterations",
        "4294967295",
    ]);
    let run = module_within(&args(&rogue, json!({"ca_cert": pki.path("ca.crt")})), 60);
    assert_eq!(run.code, 1, "{}", run.result);
    assert!(
        run.msg().contains(
            "asked for 4294967295 SCRAM iterations, more than the 100000 warden_db accepts"
        ),
        "{}",
        run.msg()
    );
    // Only the SASLInitialResponse went out (channel-bound), never the client's proof.
    assert_eq!(rogue.message_types(), vec!["p".to_string()]);
    let initial = rogue.received();
    assert!(
        initial.contains("SCRAM-SHA-256-PLUS") && initial.contains("p=tls-server-end-point"),
        "{initial}"
    );
}

#[test]
fn scram_without_channel_binding_over_tls_is_refused() {
    let pki = Pki::new();
    let rogue = Rogue::start(&[
        "--ssl",
        "yes",
        "--cert",
        &pki.path("server.crt"),
        "--key",
        &pki.path("server.key"),
        "--auth",
        "scram-noplus",
    ]);
    let run = module_within(&args(&rogue, json!({"ca_cert": pki.path("ca.crt")})), 60);
    assert_eq!(run.code, 1, "{}", run.result);
    assert!(run.msg().contains("channel binding"), "{}", run.msg());
    assert_eq!(rogue.message_types(), Vec::<String>::new());
    // Also when another method is opted in (the driver then only prefers channel binding;
    // the guard still requires SCRAM-SHA-256-PLUS over TLS).
    let run = module_within(
        &args(
            &rogue,
            json!({"ca_cert": pki.path("ca.crt"), "require_auth": ["scram-sha-256", "md5"]}),
        ),
        60,
    );
    assert_eq!(run.code, 1, "{}", run.result);
    assert!(
        run.msg().contains("not SCRAM-SHA-256-PLUS"),
        "{}",
        run.msg()
    );
    assert_eq!(rogue.message_types(), Vec::<String>::new());
}

#[test]
fn trust_from_a_rogue_over_tcp_is_refused() {
    let rogue = Rogue::start(&["--ssl", "no", "--auth", "ok"]);
    let run = module_within(&args(&rogue, json!({"ssl_mode": "disable"})), 60);
    assert_eq!(run.code, 1);
    assert!(
        run.msg().contains("without authenticating it"),
        "{}",
        run.msg()
    );
    // No statement (the agent's verifier travels in one) reached it.
    assert_eq!(rogue.message_types(), Vec::<String>::new());
}

#[test]
fn verify_full_checks_the_name_verify_ca_does_not() {
    let pki = Pki::new();
    // The CA signed this certificate for 127.0.0.1; the rogue answers at 127.0.0.2.
    let rogue = Rogue::start(&[
        "--host",
        "127.0.0.2",
        "--ssl",
        "yes",
        "--cert",
        &pki.path("server.crt"),
        "--key",
        &pki.path("server.key"),
        "--auth",
        "cleartext",
    ]);
    let at = |mode: &str| {
        with(
            args(
                &rogue,
                json!({"ssl_mode": mode, "ca_cert": pki.path("ca.crt")}),
            ),
            json!({"login_host": "127.0.0.2"}),
        )
    };
    let full = module_within(&at("verify-full"), 60);
    assert!(
        full.msg()
            .contains("certificate not valid for name \"127.0.0.2\""),
        "{}",
        full.msg()
    );
    let ca = module_within(&at("verify-ca"), 60);
    assert!(
        ca.msg().contains("asked for the password in clear text"),
        "{}",
        ca.msg()
    );
    assert!(rogue.events().iter().any(|e| e["event"] == "startup"));
    assert_no_password(&rogue);
}

#[test]
fn login_that_never_completes_is_bounded_by_connect_timeout() {
    let pki = Pki::new();
    let rogue = Rogue::start(&["--auth", "silent"]);
    let run = module_within(
        &args(
            &rogue,
            json!({"ca_cert": pki.path("ca.crt"), "connect_timeout": 2}),
        ),
        60,
    );
    assert_eq!(run.code, 1);
    assert!(
        run.msg()
            .contains("no complete login within connect_timeout (2 s)"),
        "{}",
        run.msg()
    );
}

#[test]
fn server_that_stops_answering_is_bounded() {
    // Logs in (trust, explicitly allowed over plain TCP here) and never answers a statement:
    // a hung or stopped server does not enforce statement_timeout itself.
    let rogue = Rogue::start(&["--ssl", "no", "--auth", "ok", "--hang"]);
    let run = module_within(
        &args(
            &rogue,
            json!({"ssl_mode": "disable", "require_auth": ["none"], "statement_timeout": 1, "lock_timeout": 1}),
        ),
        60,
    );
    assert_eq!(run.code, 1);
    assert!(
        run.msg().contains(
            "cannot take warden_db's advisory lock: no answer from the server within 11 s"
        ),
        "{}",
        run.msg()
    );
}
