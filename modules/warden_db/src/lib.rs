//! `warden_db`: an agent's PostgreSQL role and database (the deployment guide's "DB
//! identifiers"), on the server of its db jail or any server the inventory names, plus an
//! optional pg_hba.conf line for the agent's subnet.
//!
//! Shape: validate → connect (verified TLS by default, see `conn`) and take a server-wide
//! advisory lock within lock_timeout (runs for different agents never interleave) → observe
//! with SELECTs only (`pg_authid`, `pg_database`, privileges) → plan the statements → the
//! runtime reports them (check mode: nothing but SELECTs ran) or runs them one by one, undoing
//! the done ones if one fails. Passwords travel only as SCRAM verifiers computed here; an
//! unchanged password is recognised by recomputing the stored verifier (at most
//! `scram::MAX_ITERATIONS` rounds), so it is not a change.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod conn;
pub mod guard;
pub mod hba;
pub mod scram;
pub mod sql;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use ipnet::Ipv4Net;
use serde::Deserialize;
use tokio_postgres::error::SqlState as postgres_code;

use warden_runtime::fs::{self as wfs, Attrs, FileState};
use warden_runtime::plan::Step;
use warden_runtime::spec::{Param, Spec};
use warden_runtime::{Context, Diff, Module, Plan};

use conn::{Db as Client, DbError};
use scram::Stored;
use sql::{ident, literal};

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
        let observed = observe(&mut client, &params)?;
        let mut plan = Plan::new();
        Planner {
            params: &params,
            checked,
            observed,
            client: Rc::new(RefCell::new(client)),
        }
        .plan(&mut plan)?;
        Ok(plan)
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

/// The role as the catalog holds it.
#[derive(Debug, Clone)]
struct Role {
    login: bool,
    password: Option<String>,
}

/// The database as the catalog holds it.
#[derive(Debug, Clone)]
struct Database {
    owner: String,
    encoding: String,
    collate: String,
    ctype: String,
    conn_limit: i32,
    public_connect: bool,
    public_temp: bool,
}

struct Observed {
    role: Option<Role>,
    /// `pg_authid` could not be read (not a superuser): passwords cannot be compared.
    password_unverifiable: bool,
    database: Option<Database>,
    owner_exists: bool,
    template_exists: bool,
    version: i32,
}

fn query_error(what: &str, e: DbError) -> anyhow::Error {
    anyhow!("{what}: {e}")
}

fn observe(client: &mut Client, p: &Params) -> Result<Observed> {
    let database = p.database.clone().unwrap_or_else(|| p.name.clone());
    let owner = p.owner.clone().unwrap_or_else(|| p.name.clone());
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .map_err(|e| query_error("cannot read the server version", e))?
        .get(0);
    let (role, password_unverifiable) = match client.query_opt(
        "SELECT rolcanlogin, rolpassword FROM pg_authid WHERE rolname = $1::text",
        &[&p.name],
    ) {
        Ok(row) => (
            row.map(|r| Role {
                login: r.get(0),
                password: r.get(1),
            }),
            false,
        ),
        Err(e) if e.code() == Some(&postgres_code::INSUFFICIENT_PRIVILEGE) => {
            let row = client
                .query_opt(
                    "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1::text",
                    &[&p.name],
                )
                .map_err(|e| query_error("cannot read pg_roles", e))?;
            (
                row.map(|r| Role {
                    login: r.get(0),
                    password: None,
                }),
                true,
            )
        }
        Err(e) => return Err(query_error("cannot read pg_authid", e)),
    };
    let database = client
        .query_opt(
            "SELECT pg_get_userbyid(datdba)::text, pg_encoding_to_char(encoding)::text, datcollate::text, datctype::text, \
             datconnlimit, has_database_privilege('public', oid, 'CONNECT'), has_database_privilege('public', oid, 'TEMPORARY') \
             FROM pg_database WHERE datname = $1::text",
            &[&database],
        )
        .map_err(|e| query_error("cannot read pg_database", e))?
        .map(|r| Database {
            owner: r.get(0),
            encoding: r.get(1),
            collate: r.get(2),
            ctype: r.get(3),
            conn_limit: r.get(4),
            public_connect: r.get(5),
            public_temp: r.get(6),
        });
    let exists = |client: &mut Client, sql: &str, name: &str| -> Result<bool> {
        Ok(client
            .query_opt(sql, &[&name])
            .map_err(|e| query_error("cannot read the catalog", e))?
            .is_some())
    };
    let owner_exists = owner == p.name
        || exists(
            client,
            "SELECT 1 FROM pg_roles WHERE rolname = $1::text",
            &owner,
        )?;
    let template_exists = exists(
        client,
        "SELECT 1 FROM pg_database WHERE datname = $1::text",
        &p.template,
    )?;
    Ok(Observed {
        role,
        password_unverifiable,
        database,
        owner_exists,
        template_exists,
        version,
    })
}

/// One SQL statement run by itself (CREATE/DROP DATABASE must not be in a transaction
/// block), shown in `queries` without any secret, with the statement that undoes it.
struct SqlStep {
    client: Rc<RefCell<Client>>,
    sql: String,
    shown: String,
    undo: Option<String>,
}

impl Step for SqlStep {
    fn describe(&self) -> String {
        self.shown.clone()
    }
    fn command(&self) -> Option<String> {
        Some(self.shown.clone())
    }
    fn apply(&mut self) -> Result<()> {
        self.client
            .borrow_mut()
            .batch_execute(&self.sql)
            .map_err(|e| anyhow!("{e}"))
    }
    fn undo(&mut self) -> Result<()> {
        match &self.undo {
            Some(sql) => self
                .client
                .borrow_mut()
                .batch_execute(sql)
                .map_err(|e| anyhow!("{e}")),
            None => Ok(()),
        }
    }
}

/// Writes pg_hba.conf, asks the server whether every line parses (`pg_hba_file_rules`),
/// and only then reloads it; a rejected file is put back as it was. `pg_reload_conf()` says
/// true even when the server then refuses the file, so the check comes first.
struct HbaUpdate {
    client: Rc<RefCell<Client>>,
    path: PathBuf,
    content: String,
    previous: Option<FileState>,
}

impl HbaUpdate {
    fn reload(&self) -> Result<()> {
        self.client
            .borrow_mut()
            .execute("SELECT pg_reload_conf()", &[])
            .map(|_| ())
            .map_err(|e| anyhow!("cannot reload the server: {e}"))
    }
}

impl Step for HbaUpdate {
    fn describe(&self) -> String {
        format!("write {} and reload", self.path.display())
    }
    fn apply(&mut self) -> Result<()> {
        wfs::write_atomic(&self.path, self.content.as_bytes(), Attrs::default())?;
        let errors = self
            .client
            .borrow_mut()
            .query(
                "SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL",
                &[],
            )
            .map_err(|e| anyhow!("cannot check {}: {e}", self.path.display()));
        let problems: Vec<String> = match errors {
            Ok(rows) => rows
                .iter()
                .map(|r| {
                    format!(
                        "line {}: {}",
                        r.get::<_, Option<i32>>(0).unwrap_or(0),
                        r.get::<_, Option<String>>(1).unwrap_or_default()
                    )
                })
                .collect(),
            Err(e) => {
                wfs::restore(&self.path, self.previous.as_ref())?;
                return Err(e);
            }
        };
        if !problems.is_empty() {
            wfs::restore(&self.path, self.previous.as_ref())?;
            bail!(
                "the server rejects the new {} ({}); it was put back",
                self.path.display(),
                problems.join("; ")
            );
        }
        self.reload()
    }
    fn undo(&mut self) -> Result<()> {
        wfs::restore(&self.path, self.previous.as_ref())?;
        self.reload()
    }
}

struct Planner<'a> {
    params: &'a Params,
    checked: Checked,
    observed: Observed,
    client: Rc<RefCell<Client>>,
}

impl Planner<'_> {
    fn sql(&self, plan: &mut Plan, sql: String, shown: Option<String>, undo: Option<String>) {
        plan.step(SqlStep {
            client: self.client.clone(),
            shown: shown.unwrap_or_else(|| sql.clone()),
            sql,
            undo,
        });
    }

    fn plan(&self, plan: &mut Plan) -> Result<()> {
        let p = self.params;
        let o = &self.observed;
        let role = ident(&p.name);
        let db = ident(&self.checked.database);
        let mut password_changed = false;

        if p.state == "absent" {
            if o.database.is_some() {
                if o.version >= 130_000 {
                    self.sql(plan, format!("DROP DATABASE {db} WITH (FORCE)"), None, None);
                } else {
                    self.sql(
                        plan,
                        format!(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = {} AND pid <> pg_backend_pid()",
                            literal(&self.checked.database)
                        ),
                        None,
                        None,
                    );
                    self.sql(plan, format!("DROP DATABASE {db}"), None, None);
                }
            }
            if o.role.is_some() {
                self.sql(plan, format!("DROP OWNED BY {role}"), None, None);
                self.sql(plan, format!("DROP ROLE {role}"), None, None);
            }
        } else {
            // The role.
            match &o.role {
                None => {
                    let (sql, shown) = match &p.password {
                        Some(pw) => {
                            password_changed = true;
                            let v = scram::verifier(pw);
                            (
                                format!("CREATE ROLE {role} LOGIN PASSWORD {}", literal(&v)),
                                Some(format!(
                                    "CREATE ROLE {role} LOGIN PASSWORD '<SCRAM-SHA-256 verifier>'"
                                )),
                            )
                        }
                        None => (format!("CREATE ROLE {role} LOGIN"), None),
                    };
                    self.sql(plan, sql, shown, Some(format!("DROP ROLE {role}")));
                }
                Some(existing) => {
                    if !existing.login {
                        self.sql(
                            plan,
                            format!("ALTER ROLE {role} LOGIN"),
                            None,
                            Some(format!("ALTER ROLE {role} NOLOGIN")),
                        );
                    }
                    if let Some(pw) = &p.password {
                        if o.password_unverifiable {
                            plan.warnings.push(format!(
                                "{} cannot read pg_authid (not a superuser), so the password of the existing role {} is left as it is",
                                p.login_user, p.name
                            ));
                        } else if !Stored::parse(existing.password.as_deref()).matches(pw) {
                            if let Some(n) =
                                Stored::parse(existing.password.as_deref()).too_costly()
                            {
                                plan.warnings.push(format!(
                                    "the stored SCRAM verifier of role {} asks for {n} iterations, more than the {} warden_db recomputes; it was not compared and is replaced",
                                    p.name,
                                    scram::MAX_ITERATIONS
                                ));
                            }
                            password_changed = true;
                            let v = scram::verifier(pw);
                            let undo = match &existing.password {
                                Some(old) => format!("ALTER ROLE {role} PASSWORD {}", literal(old)),
                                None => format!("ALTER ROLE {role} PASSWORD NULL"),
                            };
                            self.sql(
                                plan,
                                format!("ALTER ROLE {role} PASSWORD {}", literal(&v)),
                                Some(format!(
                                    "ALTER ROLE {role} PASSWORD '<SCRAM-SHA-256 verifier>'"
                                )),
                                Some(undo),
                            );
                        }
                    }
                }
            }
            if !o.owner_exists {
                bail!(
                    "owner {:?} of database {} is not a role on the server",
                    self.checked.owner,
                    self.checked.database
                );
            }
            self.plan_database(plan, &db)?;
        }
        if let Some((path, subnet)) = &self.checked.hba {
            self.plan_hba(plan, path, subnet)?;
        }

        self.diff(plan, password_changed);
        plan.value("role", p.name.clone());
        plan.value("database", self.checked.database.clone());
        plan.value("password_changed", password_changed);
        plan.value("server_version", o.version);
        let queries: Vec<String> = plan.commands();
        plan.value("queries", queries);
        Ok(())
    }

    fn plan_database(&self, plan: &mut Plan, db: &str) -> Result<()> {
        let p = self.params;
        let o = &self.observed;
        let owner = ident(&self.checked.owner);
        match &o.database {
            None => {
                if !o.template_exists {
                    bail!("template database {} does not exist", p.template);
                }
                let mut sql = format!(
                    "CREATE DATABASE {db} OWNER {owner} TEMPLATE {} ENCODING {}",
                    ident(&p.template),
                    literal(&p.encoding)
                );
                if let Some(collate) = &p.lc_collate {
                    sql.push_str(&format!(" LC_COLLATE {}", literal(collate)));
                }
                if let Some(ctype) = &p.lc_ctype {
                    sql.push_str(&format!(" LC_CTYPE {}", literal(ctype)));
                }
                if let Some(limit) = p.conn_limit {
                    sql.push_str(&format!(" CONNECTION LIMIT {limit}"));
                }
                let undo = if o.version >= 130_000 {
                    format!("DROP DATABASE {db} WITH (FORCE)")
                } else {
                    format!("DROP DATABASE {db}")
                };
                self.sql(plan, sql, None, Some(undo));
                if p.revoke_public {
                    self.sql(
                        plan,
                        format!("REVOKE CONNECT, TEMPORARY ON DATABASE {db} FROM PUBLIC"),
                        None,
                        None,
                    );
                }
            }
            Some(have) => {
                // What cannot change in place fails clearly instead of being accepted.
                let mut mismatch = Vec::new();
                if sql::normalize_encoding(&have.encoding) != sql::normalize_encoding(&p.encoding) {
                    mismatch.push(format!(
                        "encoding {} (wanted {})",
                        have.encoding, p.encoding
                    ));
                }
                if let Some(collate) = &p.lc_collate {
                    if sql::normalize_locale(&have.collate) != sql::normalize_locale(collate) {
                        mismatch.push(format!("LC_COLLATE {} (wanted {collate})", have.collate));
                    }
                }
                if let Some(ctype) = &p.lc_ctype {
                    if sql::normalize_locale(&have.ctype) != sql::normalize_locale(ctype) {
                        mismatch.push(format!("LC_CTYPE {} (wanted {ctype})", have.ctype));
                    }
                }
                if !mismatch.is_empty() {
                    bail!(
                        "database {} exists with {}; PostgreSQL cannot change that in place: dump it, drop it and let warden_db create it again",
                        self.checked.database,
                        mismatch.join(", ")
                    );
                }
                if have.owner != self.checked.owner {
                    self.sql(
                        plan,
                        format!("ALTER DATABASE {db} OWNER TO {owner}"),
                        None,
                        Some(format!(
                            "ALTER DATABASE {db} OWNER TO {}",
                            ident(&have.owner)
                        )),
                    );
                }
                if let Some(limit) = p.conn_limit {
                    if i64::from(have.conn_limit) != limit {
                        self.sql(
                            plan,
                            format!("ALTER DATABASE {db} CONNECTION LIMIT {limit}"),
                            None,
                            Some(format!(
                                "ALTER DATABASE {db} CONNECTION LIMIT {}",
                                have.conn_limit
                            )),
                        );
                    }
                }
                if p.revoke_public && (have.public_connect || have.public_temp) {
                    self.sql(
                        plan,
                        format!("REVOKE CONNECT, TEMPORARY ON DATABASE {db} FROM PUBLIC"),
                        None,
                        Some(format!(
                            "GRANT CONNECT, TEMPORARY ON DATABASE {db} TO PUBLIC"
                        )),
                    );
                }
            }
        }
        Ok(())
    }

    fn plan_hba(&self, plan: &mut Plan, path: &Path, subnet: &Ipv4Net) -> Result<()> {
        let p = self.params;
        let previous = wfs::read_state(path)?;
        let text = previous
            .as_ref()
            .map(|s| String::from_utf8_lossy(&s.content).into_owned())
            .with_context(|| format!("pg_hba_file {} does not exist", path.display()))?;
        let wanted = p.state == "present";
        if let Some(new) = hba::edit(
            &text,
            wanted,
            &p.pg_hba_type,
            &self.checked.database,
            &p.name,
            subnet,
            &p.pg_hba_method,
        ) {
            plan.diff(Diff::new(path.display().to_string(), text, new.clone()));
            plan.step(HbaUpdate {
                client: self.client.clone(),
                path: path.to_owned(),
                content: new,
                previous,
            });
        }
        Ok(())
    }

    /// Role attributes and database settings before and after; never the password, only
    /// whether it changes.
    fn diff(&self, plan: &mut Plan, password_changed: bool) {
        let p = self.params;
        let o = &self.observed;
        let present = p.state == "present";
        let role_text = |exists: bool, login: bool, password: &str| {
            if exists {
                format!("role: {}\nlogin: {login}\npassword: {password}\n", p.name)
            } else {
                String::new()
            }
        };
        let stored_kind = |r: &Role| match Stored::parse(r.password.as_deref()) {
            Stored::None => "none",
            Stored::Scram { .. } => "scram-sha-256",
            Stored::Md5 => "md5",
            Stored::Other => "other",
        };
        let before = o
            .role
            .as_ref()
            .map(|r| role_text(true, r.login, stored_kind(r)))
            .unwrap_or_default();
        let after = if present {
            let kind = if password_changed {
                "scram-sha-256 (new)".to_string()
            } else {
                o.role
                    .as_ref()
                    .map(|r| stored_kind(r).to_string())
                    .unwrap_or_else(|| "none".into())
            };
            role_text(true, true, &kind)
        } else {
            String::new()
        };
        plan.diff(Diff::new(format!("role {}", p.name), before, after));

        let db_text = |owner: &str,
                       encoding: &str,
                       collate: &str,
                       ctype: &str,
                       limit: i64,
                       public: bool| {
            format!(
                "database: {}\nowner: {owner}\nencoding: {encoding}\nlc_collate: {collate}\nlc_ctype: {ctype}\nconn_limit: {limit}\npublic_connect: {public}\n",
                self.checked.database
            )
        };
        let before = o
            .database
            .as_ref()
            .map(|d| {
                db_text(
                    &d.owner,
                    &d.encoding,
                    &d.collate,
                    &d.ctype,
                    i64::from(d.conn_limit),
                    d.public_connect || d.public_temp,
                )
            })
            .unwrap_or_default();
        let after = if present {
            let have = o.database.as_ref();
            db_text(
                &self.checked.owner,
                &have
                    .map(|d| d.encoding.clone())
                    .unwrap_or_else(|| p.encoding.clone()),
                &have
                    .map(|d| d.collate.clone())
                    .or_else(|| p.lc_collate.clone())
                    .unwrap_or_else(|| "(server default)".into()),
                &have
                    .map(|d| d.ctype.clone())
                    .or_else(|| p.lc_ctype.clone())
                    .unwrap_or_else(|| "(server default)".into()),
                p.conn_limit
                    .or(have.map(|d| i64::from(d.conn_limit)))
                    .unwrap_or(-1),
                !p.revoke_public && have.is_none_or(|d| d.public_connect || d.public_temp),
            )
        } else {
            String::new()
        };
        plan.diff(Diff::new(
            format!("database {}", self.checked.database),
            before,
            after,
        ));
    }
}
