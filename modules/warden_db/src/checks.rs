//! Params → [`Settings`]: warden_db's params checked beyond their types (names the catalog
//! takes, settings, the pg_hba entry, the login's TLS and authentication policy), every
//! problem reported at once, before the server is contacted.

use std::path::PathBuf;

use anyhow::{bail, Result};
use ipnet::Ipv4Net;

use warden_runtime::choices;
use warden_runtime::spec::State;

use crate::{conn, scram, sql, Params};

choices! {
    /// libpq's `sslmode` (libpq-connect.html#LIBPQ-CONNECT-SSLMODE).
    pub enum SslMode {
        Disable = "disable",
        Allow = "allow",
        Prefer = "prefer",
        Require = "require",
        VerifyCa = "verify-ca",
        VerifyFull = "verify-full",
    }
}

choices! {
    /// What the admin login may authenticate with (libpq's `require_auth`).
    pub enum Auth {
        ScramSha256 = "scram-sha-256",
        Md5 = "md5",
        Password = "password",
        None = "none",
    }
}

choices! {
    /// The connection type of the pg_hba.conf entry.
    pub enum HbaType {
        Host = "host",
        Hostssl = "hostssl",
    }
}

choices! {
    /// The authentication method of the pg_hba.conf entry.
    pub enum HbaMethod {
        ScramSha256 = "scram-sha-256",
        Md5 = "md5",
        Reject = "reject",
    }
}

/// The pg_hba.conf entry for the agent's subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hba {
    pub file: PathBuf,
    pub subnet: Ipv4Net,
    pub kind: HbaType,
    pub method: HbaMethod,
}

/// The validated settings of one run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The role.
    pub name: String,
    /// The database; the role's name when unset.
    pub database: String,
    /// The database's owner; the role when unset.
    pub owner: String,
    pub password: Option<String>,
    pub state: State,
    pub encoding: String,
    pub lc_collate: Option<String>,
    pub lc_ctype: Option<String>,
    pub template: String,
    /// -1 (no limit) or more, within PostgreSQL's int4.
    pub conn_limit: Option<i64>,
    pub revoke_public: bool,
    pub hba: Option<Hba>,
    /// Where and how to log in.
    pub target: conn::Target,
}

/// Validates the params; every problem is reported at once.
pub fn settings(p: &Params) -> Result<Settings> {
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
    if matches!(p.ssl_mode, SslMode::VerifyCa | SslMode::VerifyFull)
        && p.ca_cert.is_none()
        && p.login_unix_socket.is_none()
    {
        problems.push(format!(
            "ssl_mode {} needs ca_cert, the CA that signed the server's certificate (or connect through login_unix_socket)",
            p.ssl_mode
        ));
    }
    let methods: Vec<Auth> = match &p.require_auth {
        Some(list) => list.clone(),
        // Over a unix socket the server may also log the admin in by peer or trust.
        None if p.login_unix_socket.is_some() => vec![Auth::ScramSha256, Auth::None],
        None => vec![Auth::ScramSha256],
    };
    if methods.is_empty() {
        problems.push("require_auth is empty: no login could succeed".into());
    }
    let auth = conn::Policy {
        scram: methods.contains(&Auth::ScramSha256),
        md5: methods.contains(&Auth::Md5),
        password: methods.contains(&Auth::Password),
        none: methods.contains(&Auth::None),
        require_plus: false,
        max_iterations: scram::MAX_ITERATIONS,
    };
    let hba = match (&p.pg_hba_file, &p.pg_hba_address) {
        (Some(file), Some(address)) => match address.trim().parse::<Ipv4Net>() {
            Ok(net) if net.addr() == net.network() => Some(Hba {
                file: PathBuf::from(file),
                subnet: net,
                kind: p.pg_hba_type,
                method: p.pg_hba_method,
            }),
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
    let target = conn::Target {
        host: p.login_host.clone(),
        port: p.login_port.clamp(1, 65535) as u16,
        unix_socket: p.login_unix_socket.clone(),
        user: p.login_user.clone(),
        password: p.login_password.clone(),
        dbname: p.login_db.clone(),
        ssl_mode: p.ssl_mode,
        ca_cert: p.ca_cert.clone(),
        auth,
        connect_timeout: p.connect_timeout,
        statement_timeout: p.statement_timeout,
        lock_timeout: p.lock_timeout,
    };
    if !problems.is_empty() {
        bail!("{}", problems.join("; "))
    }
    Ok(Settings {
        name: p.name.clone(),
        database,
        owner,
        password: p.password.clone(),
        state: p.state,
        encoding: p.encoding.clone(),
        lc_collate: p.lc_collate.clone(),
        lc_ctype: p.lc_ctype.clone(),
        template: p.template.clone(),
        conn_limit: p.conn_limit,
        revoke_public: p.revoke_public,
        hba,
        target,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings_of(raw: serde_json::Value) -> Result<Settings, String> {
        let params = warden_testkit::validated::<crate::WardenDb>(raw)?;
        settings(&params).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_derived_values() {
        let s = settings_of(json!({"name": "mevy", "ca_cert": "/etc/ssl/ca.pem"})).unwrap();
        assert_eq!((s.database.as_str(), s.owner.as_str()), ("mevy", "mevy"));
        assert_eq!(s.target.ssl_mode, SslMode::VerifyFull);
        assert!(s.target.auth.scram && !s.target.auth.md5 && !s.target.auth.none);
        assert_eq!(s.target.lock_timeout, std::time::Duration::from_secs(60));
        let s = settings_of(json!({
            "name": "mevy", "ssl_mode": "disable", "require_auth": ["md5", "none"],
            "pg_hba_file": "/var/db/postgres/data16/pg_hba.conf", "pg_hba_address": "10.0.1.0/24",
            "pg_hba_method": "reject", "connect_timeout": "2m",
        }))
        .unwrap();
        assert!(s.target.auth.md5 && s.target.auth.none && !s.target.auth.scram);
        assert_eq!(
            s.target.connect_timeout,
            std::time::Duration::from_secs(120)
        );
        let hba = s.hba.unwrap();
        assert_eq!((hba.kind, hba.method), (HbaType::Host, HbaMethod::Reject));
        assert_eq!(hba.subnet.to_string(), "10.0.1.0/24");
    }

    #[test]
    fn every_problem_at_once() {
        let err = settings_of(json!({
            "name": "mevy", "ssl_mode": "verify-ca", "login_port": 70000, "conn_limit": -2,
            "password": "", "pg_hba_address": "10.0.1.1/24", "pg_hba_file": "/x",
        }))
        .unwrap_err();
        for needle in [
            "login_port 70000 is not a TCP port",
            "conn_limit -2 must be -1 (no limit) or more",
            "password is empty",
            "ssl_mode verify-ca needs ca_cert",
            "pg_hba_address 10.0.1.1/24 is not a subnet; did you mean 10.0.1.0/24?",
        ] {
            assert!(err.contains(needle), "{needle} missing from: {err}");
        }
        let err = settings_of(json!({"name": "mevy", "lock_timeout": 0, "connect_timeout": 3601}))
            .unwrap_err();
        assert_eq!(
            err,
            "value of connect_timeout must be between 1 and 3600 seconds, got: 3601; value of lock_timeout must be between 1 and 86400 seconds, got: 0"
        );
    }
}
