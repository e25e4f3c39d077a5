//! `warden_db`: an agent's PostgreSQL role and database (the deployment guide's "DB
//! identifiers"), on the server of its db jail or any server the inventory names, plus an
//! optional pg_hba.conf line for the agent's subnet.
//!
//! Shape: params → [`Settings`] ([`checks::settings`], every problem at once) → connect (verified TLS by default, see `conn`) and take a server-wide
//! advisory lock within lock_timeout (runs for different agents never interleave) →
//! [`observe::observe`] with SELECTs only (`pg_authid`, `pg_database`, privileges) and the
//! pg_hba.conf file → [`plan::plan`], pure: the statements → [`steps::runtime_plan`] → the
//! runtime reports them (check mode: nothing but SELECTs ran) or runs them one by one,
//! undoing the done ones if one fails. Passwords travel only as SCRAM verifiers computed here; an
//! unchanged password is recognised by recomputing the stored verifier (at most
//! `scram::MAX_ITERATIONS` rounds), so it is not a change.

pub mod checks;
pub mod conn;
pub mod guard;
pub mod hba;
pub mod observe;
pub mod plan;
pub mod scram;
pub mod sql;
pub mod steps;

use std::time::Duration;

use anyhow::{anyhow, Result};
use serde::Deserialize;
use tokio_postgres::error::SqlState as postgres_code;

use warden_runtime::spec::{Param, Spec, State};
use warden_runtime::{Context, Module, Plan};

pub use checks::Settings;
use checks::{Auth, HbaMethod, HbaType, SslMode};
use conn::Db as Client;

pub use observe::{Database, Observed, Role};
pub use plan::{Action, DbPlan};

pub struct WardenDb;

/// The params as the spec delivers them (see `library/warden_db.yml`); [`checks::settings`]
/// validates them into [`Settings`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub name: String,
    pub database: Option<String>,
    pub password: Option<String>,
    pub state: State,
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
    pub ssl_mode: SslMode,
    pub ca_cert: Option<String>,
    pub require_auth: Option<Vec<Auth>>,
    #[serde(deserialize_with = "warden_runtime::spec::seconds")]
    pub connect_timeout: Duration,
    #[serde(deserialize_with = "warden_runtime::spec::seconds")]
    pub statement_timeout: Duration,
    #[serde(deserialize_with = "warden_runtime::spec::seconds")]
    pub lock_timeout: Duration,
    pub pg_hba_file: Option<String>,
    pub pg_hba_address: Option<String>,
    pub pg_hba_type: HbaType,
    pub pg_hba_method: HbaMethod,
}

/// The longest statement or lock wait: a day (every wait is bounded).
const MAX_WAIT: u32 = 86_400;

/// The advisory lock every warden_db run takes on the server (session level: CREATE
/// DATABASE cannot run inside a transaction). "warden" in ASCII.
pub const LOCK_KEY: i64 = 0x7761_7264_656e;

impl Module for WardenDb {
    const NAME: &'static str = "warden_db";
    // Talks to PostgreSQL over its protocol; no host tool, so no tool_timeout, and no host
    // lock (the server's advisory lock serializes runs).
    const RUNS_TOOLS: bool = false;
    const HOST: bool = false;
    type Params = Params;

    fn spec() -> Spec {
        Spec::new(vec![
            Param::str("name").required(),
            Param::str("database"),
            Param::str("password").no_log(),
            Param::choice::<State>("state").default(State::Present),
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
            Param::choice::<SslMode>("ssl_mode").default(SslMode::VerifyFull),
            Param::path("ca_cert"),
            Param::list_of_choices::<Auth>("require_auth"),
            Param::duration("connect_timeout", 1, 3600).default(10),
            Param::duration("statement_timeout", 1, MAX_WAIT).default(60),
            Param::duration("lock_timeout", 1, MAX_WAIT).default(60),
            Param::path("pg_hba_file"),
            Param::str("pg_hba_address"),
            Param::choice::<HbaType>("pg_hba_type").default(HbaType::Host),
            Param::choice::<HbaMethod>("pg_hba_method").default(HbaMethod::ScramSha256),
        ])
    }

    fn plan(params: Params, _ctx: &mut Context) -> Result<Plan> {
        let settings = checks::settings(&params)?;
        let mut client = conn::connect(&settings.target)?;
        take_lock(&mut client)?;
        let observed = observe::observe(&mut client, &settings)?;
        let db_plan = plan::plan(&settings, &observed)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_spec_and_docs_agree() {
        warden_testkit::assert_params_agree::<WardenDb>(include_str!(
            "../../../library/warden_db.yml"
        ));
    }
}
