//! `warden_db`: an agent's PostgreSQL role and database (the deployment guide's "DB
//! identifiers"), on the server of its db jail or any server the inventory names, plus an
//! optional pg_hba.conf line for the agent's subnet.
//!
//! Shape: validate → connect (verified TLS by default, see `conn`) and take a server-wide
//! advisory lock within lock_timeout (runs for different agents never interleave) →
//! [`observe::observe`] with SELECTs only (`pg_authid`, `pg_database`, privileges) and the
//! pg_hba.conf file → [`plan::plan`], pure: the statements → [`steps::runtime_plan`] → the
//! runtime reports them (check mode: nothing but SELECTs ran) or runs them one by one,
//! undoing the done ones if one fails. Passwords travel only as SCRAM verifiers computed here; an
//! unchanged password is recognised by recomputing the stored verifier (at most
//! `scram::MAX_ITERATIONS` rounds), so it is not a change.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod conn;
pub mod guard;
pub mod hba;
pub mod observe;
pub mod plan;
pub mod scram;
pub mod sql;
pub mod steps;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use ipnet::Ipv4Net;
use serde::Deserialize;
use tokio_postgres::error::SqlState as postgres_code;

use warden_runtime::spec::{Param, Spec};
use warden_runtime::{Context, Module, Plan};

use conn::Db as Client;

pub use observe::{Database, Observed, Role};
pub use plan::{Action, DbPlan};

pub struct WardenDb;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub name: String,
    pub database: Option<String>,
    pub password: Option<String>,
    pub state: String,
    pub owner: Option<String>,
    pub encoding: String,
    pub lc_collate: Option<String>,
    pub lc_ctype: Option<String>,
    pub template: String,
    pub conn_limit: Option<i64>,
    pub revoke_public: bool,
    pub login_host: String,
    pub login_port: i64,
    pub login_user: String,
    pub login_password: Option<String>,
    pub login_unix_socket: Option<String>,
    pub login_db: String,
    pub ssl_mode: String,
    pub ca_cert: Option<String>,
    pub require_auth: Option<Vec<String>>,
    pub connect_timeout: i64,
    pub statement_timeout: i64,
    pub lock_timeout: i64,
    pub pg_hba_file: Option<String>,
    pub pg_hba_address: Option<String>,
    pub pg_hba_type: String,
    pub pg_hba_method: String,
}

/// The advisory lock every warden_db run takes on the server (session level: CREATE
/// DATABASE cannot run inside a transaction). "warden" in ASCII.
pub const LOCK_KEY: i64 = 0x7761_7264_656e;

impl Module for WardenDb {
    const NAME: &'static str = "warden_db";
    // Talks to PostgreSQL over its protocol; no host tool, so no tool_timeout.
    const RUNS_TOOLS: bool = false;
    type Params = Params;

    fn spec() -> Spec {
        Spec::new(vec![
            Param::str("name").required(),
            Param::str("database"),
            Param::str("password").no_log(),
            Param::str("state")
                .choices(&["present", "absent"])
                .default("present"),
            Param::str("owner"),
            Param::str("encoding").default("UTF8"),
            Param::str("lc_collate"),
            Param::str("lc_ctype"),
            Param::str("template").default("template0"),
            Param::int("conn_limit"),
            Param::bool("revoke_public").default(true),
            Param::str("login_host").default("localhost"),
            Param::int("login_port").default(5432),
            Param::str("login_user").default("postgres"),
            Param::str("login_password").no_log(),
            Param::path("login_unix_socket"),
            Param::str("login_db").default("postgres"),
            Param::str("ssl_mode")
                .choices(&[
                    "disable",
                    "allow",
                    "prefer",
                    "require",
                    "verify-ca",
                    "verify-full",
                ])
                .default("verify-full"),
            Param::path("ca_cert"),
            Param::list_of_str("require_auth").choices(&[
                "scram-sha-256",
                "md5",
                "password",
                "none",
            ]),
            Param::int("connect_timeout").default(10),
            Param::int("statement_timeout").default(60),
            Param::int("lock_timeout").default(60),
            Param::path("pg_hba_file"),
            Param::str("pg_hba_address"),
            Param::str("pg_hba_type")
                .choices(&["host", "hostssl"])
                .default("host"),
            Param::str("pg_hba_method")
                .choices(&["scram-sha-256", "md5", "reject"])
                .default("scram-sha-256"),
        ])
    }

    fn plan(params: Params, _ctx: &mut Context) -> Result<Plan> {
        let checked = validate(&params)?;
        let mut client = conn::connect(&checked.target)?;
        take_lock(&mut client)?;
        let observed = observe::observe(&mut client, &params, &checked)?;
        let db_plan = plan::plan(&params, &checked, &observed)?;
        Ok(steps::runtime_plan(db_plan, client))
    }
}

/// Takes the advisory lock, waiting at most lock_timeout (the server's, set for the session:
/// it bounds an advisory lock wait like any other lock wait).
fn take_lock(client: &mut Client) -> Result<()> {
    let Err(e) = client.execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY]) else {
        return Ok(());
    };
    let mut msg = format!("cannot take warden_db's advisory lock: {e}");
    if e.code() == Some(&postgres_code::LOCK_NOT_AVAILABLE)
        || e.code() == Some(&postgres_code::QUERY_CANCELED)
    {
        // Who holds it, for the message (pg_locks splits a bigint key into classid/objid).
        if let Ok(Some(row)) = client.query_opt(
            "SELECT l.pid, coalesce(a.application_name, '')::text FROM pg_locks l LEFT JOIN pg_stat_activity a USING (pid) \
             WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid AND l.objsubid = 1",
            &[&(LOCK_KEY >> 32), &(LOCK_KEY & 0xffff_ffff)],
        ) {
            let pid: i32 = row.get(0);
            let app: String = row.get(1);
            msg.push_str(&format!(
                " (held by server process {pid}{})",
                if app.is_empty() { String::new() } else { format!(", application {app}") }
            ));
        }
    }
    Err(anyhow!(msg))
}

/// Settings derived while validating.
struct Checked {
    database: String,
    owner: String,
    hba: Option<(PathBuf, Ipv4Net)>,
    target: conn::Target,
}

fn validate(p: &Params) -> Result<Checked> {
    let mut problems = Vec::new();
    let database = p.database.clone().unwrap_or_else(|| p.name.clone());
    let owner = p.owner.clone().unwrap_or_else(|| p.name.clone());
    for (what, value) in [
        ("name", &p.name),
        ("database", &database),
        ("owner", &owner),
        ("template", &p.template),
    ] {
        if let Err(e) = sql::check_name(what, value) {
            problems.push(e.to_string());
        }
    }
    if let Err(e) = sql::check_name("login_user", &p.login_user).or_else(|e| {
        // The admin may well be `postgres` or another pg_-less name; only refuse what could inject.
        if p.login_user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        {
            Ok(())
        } else {
            Err(e)
        }
    }) {
        problems.push(e.to_string());
    }
    for (what, value) in [
        ("encoding", Some(&p.encoding)),
        ("lc_collate", p.lc_collate.as_ref()),
        ("lc_ctype", p.lc_ctype.as_ref()),
    ] {
        if let Some(value) = value {
            if let Err(e) = sql::check_setting(what, value) {
                problems.push(e.to_string());
            }
        }
    }
    if !(1..=65535).contains(&p.login_port) {
        problems.push(format!("login_port {} is not a TCP port", p.login_port));
    }
    if let Some(limit) = p.conn_limit {
        if limit < -1 || limit > i64::from(i32::MAX) {
            problems.push(format!("conn_limit {limit} must be -1 (no limit) or more"));
        }
    }
    if let Some(password) = &p.password {
        if password.is_empty() {
            problems.push("password is empty; leave it out to keep the role without one".into());
        }
        if password.contains('\0') {
            problems.push("password contains a NUL byte".into());
        }
    }
    if (p.ssl_mode == "verify-ca" || p.ssl_mode == "verify-full")
        && p.ca_cert.is_none()
        && p.login_unix_socket.is_none()
    {
        problems.push(format!(
            "ssl_mode {} needs ca_cert, the CA that signed the server's certificate (or connect through login_unix_socket)",
            p.ssl_mode
        ));
    }
    for (what, value, max) in [
        ("connect_timeout", p.connect_timeout, 3600),
        ("statement_timeout", p.statement_timeout, 86_400),
        ("lock_timeout", p.lock_timeout, 86_400),
    ] {
        if !(1..=max).contains(&value) {
            problems.push(format!(
                "{what} {value} must be between 1 and {max} seconds (every wait is bounded)"
            ));
        }
    }
    let methods: Vec<&str> = match &p.require_auth {
        Some(list) => list.iter().map(String::as_str).collect(),
        // Over a unix socket the server may also log the admin in by peer or trust.
        None if p.login_unix_socket.is_some() => vec!["scram-sha-256", "none"],
        None => vec!["scram-sha-256"],
    };
    if methods.is_empty() {
        problems.push("require_auth is empty: no login could succeed".into());
    }
    let auth = conn::Policy {
        scram: methods.contains(&"scram-sha-256"),
        md5: methods.contains(&"md5"),
        password: methods.contains(&"password"),
        none: methods.contains(&"none"),
        require_plus: false,
        max_iterations: scram::MAX_ITERATIONS,
    };
    let hba = match (&p.pg_hba_file, &p.pg_hba_address) {
        (Some(file), Some(address)) => match address.trim().parse::<Ipv4Net>() {
            Ok(net) if net.addr() == net.network() => Some((PathBuf::from(file), net)),
            Ok(net) => {
                problems.push(format!(
                    "pg_hba_address {net} is not a subnet; did you mean {}?",
                    net.trunc()
                ));
                None
            }
            Err(_) => {
                problems.push(format!(
                    "pg_hba_address {address:?} is not an IPv4 subnet such as 10.0.1.0/24"
                ));
                None
            }
        },
        (None, None) => None,
        _ => {
            problems.push("pg_hba_file and pg_hba_address go together".into());
            None
        }
    };
    let seconds = |n: i64| Duration::from_secs(n.clamp(1, 86_400) as u64);
    let target = conn::Target {
        host: p.login_host.clone(),
        port: p.login_port.clamp(1, 65535) as u16,
        unix_socket: p.login_unix_socket.clone(),
        user: p.login_user.clone(),
        password: p.login_password.clone(),
        dbname: p.login_db.clone(),
        ssl_mode: p.ssl_mode.clone(),
        ca_cert: p.ca_cert.clone(),
        auth,
        connect_timeout: seconds(p.connect_timeout),
        statement_timeout: seconds(p.statement_timeout),
        lock_timeout: seconds(p.lock_timeout),
    };
    if problems.is_empty() {
        Ok(Checked {
            database,
            owner,
            hba,
            target,
        })
    } else {
        bail!("{}", problems.join("; "))
    }
}
