//! Reads the server once, with SELECTs only: `server_version_num`, the role in `pg_authid`
//! (`pg_roles` without superuser rights: then passwords cannot be compared), the database in
//! `pg_database` with PUBLIC's privileges, whether the owner and the template exist — and
//! the pg_hba.conf file when one is managed. Nothing here decides; [`crate::plan::plan`]
//! does, from the [`Observed`] value alone.

use anyhow::{anyhow, Result};
use tokio_postgres::error::SqlState as postgres_code;

use warden_runtime::fs::{self as wfs, FileState};

use crate::conn::{Db as Client, DbError};
use crate::Settings;

/// The role as the catalog holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub login: bool,
    /// `rolpassword` (a SCRAM verifier, an MD5 hash, …); `None` when unset or unreadable.
    pub password: Option<String>,
}

/// The database as the catalog holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    pub owner: String,
    pub encoding: String,
    pub collate: String,
    pub ctype: String,
    pub conn_limit: i32,
    pub public_connect: bool,
    pub public_temp: bool,
}

/// Everything the planner may know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub role: Option<Role>,
    /// `pg_authid` could not be read (not a superuser): passwords cannot be compared.
    pub password_unverifiable: bool,
    pub database: Option<Database>,
    pub owner_exists: bool,
    pub template_exists: bool,
    /// `server_version_num`.
    pub version: i32,
    /// pg_hba.conf as it is, when `pg_hba_file` is given (`None`: missing).
    pub hba_file: Option<FileState>,
}

fn query_error(what: &str, e: DbError) -> anyhow::Error {
    anyhow!("{what}: {e}")
}

pub(crate) fn observe(client: &mut Client, p: &Settings) -> Result<Observed> {
    let database = &p.database;
    let owner = &p.owner;
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
            &[database],
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
    let owner_exists = *owner == p.name
        || exists(
            client,
            "SELECT 1 FROM pg_roles WHERE rolname = $1::text",
            owner,
        )?;
    let template_exists = exists(
        client,
        "SELECT 1 FROM pg_database WHERE datname = $1::text",
        &p.template,
    )?;
    let hba_file = match &p.hba {
        Some(hba) => wfs::read_state(&hba.file)?,
        None => None,
    };
    Ok(Observed {
        role,
        password_unverifiable,
        database,
        owner_exists,
        template_exists,
        version,
        hba_file,
    })
}
