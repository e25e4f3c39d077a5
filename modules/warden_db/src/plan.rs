//! The pure planner: `(&Settings, &Observed) -> DbPlan`, the statements in order
//! (each shown in `queries` without any secret, with the statement that undoes it), the
//! pg_hba.conf update, the diff and the values. It reads nothing and runs nothing (a new
//! password's SCRAM verifier is computed here, with a fresh salt); the table tests below
//! build [`Observed`] in code. [`crate::steps::runtime_plan`] runs the actions on the
//! run's client.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use serde_json::{Map, Value};

use warden_runtime::fs::FileState;
use warden_runtime::spec::{Choice, State};
use warden_runtime::Diff;

use crate::checks::Hba;
use crate::hba;
use crate::observe::{Observed, Role};
use crate::scram::{self, Stored};
use crate::sql::{self, ident, literal};
use crate::Settings;

/// One thing to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// One statement run by itself; `shown` is `sql` with any verifier masked.
    Sql {
        sql: String,
        shown: String,
        undo: Option<String>,
    },
    /// Write pg_hba.conf, have the server check it (`pg_hba_file_rules`), then reload.
    Hba {
        path: PathBuf,
        content: String,
        previous: Option<FileState>,
    },
}

/// The pg_hba.conf update in the trail: the file written, then the reload.
pub fn hba_trail(path: &Path) -> Vec<String> {
    vec![
        format!("write {}", path.display()),
        "SELECT pg_reload_conf()".into(),
    ]
}

/// What the planner decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DbPlan {
    pub actions: Vec<Action>,
    pub diffs: Vec<Diff>,
    pub warnings: Vec<String>,
    pub values: Map<String, Value>,
}

impl DbPlan {
    pub fn changed(&self) -> bool {
        !self.actions.is_empty()
    }

    /// The statements as `queries` (and `commands`) show them, in order: the pg_hba.conf
    /// update as [`hba_trail`].
    pub fn queries(&self) -> Vec<String> {
        self.actions
            .iter()
            .flat_map(|a| match a {
                Action::Sql { shown, .. } => vec![shown.clone()],
                Action::Hba { path, .. } => hba_trail(path),
            })
            .collect()
    }

    fn diff(&mut self, diff: Diff) {
        if diff.before != diff.after {
            self.diffs.push(diff);
        }
    }

    fn value(&mut self, key: &str, value: impl Into<Value>) {
        self.values.insert(key.to_string(), value.into());
    }
}

pub(crate) fn plan(settings: &Settings, observed: &Observed) -> Result<DbPlan> {
    let mut out = DbPlan::default();
    Planner { settings, observed }.plan(&mut out)?;
    Ok(out)
}

struct Planner<'a> {
    settings: &'a Settings,
    observed: &'a Observed,
}

impl Planner<'_> {
    fn sql(&self, plan: &mut DbPlan, sql: String, shown: Option<String>, undo: Option<String>) {
        plan.actions.push(Action::Sql {
            shown: shown.unwrap_or_else(|| sql.clone()),
            sql,
            undo,
        });
    }

    fn plan(&self, plan: &mut DbPlan) -> Result<()> {
        let p = self.settings;
        let o = &self.observed;
        let role = ident(&p.name);
        let db = ident(&self.settings.database);
        let mut password_changed = false;

        if p.state == State::Absent {
            if o.database.is_some() {
                if o.version >= 130_000 {
                    self.sql(plan, format!("DROP DATABASE {db} WITH (FORCE)"), None, None);
                } else {
                    self.sql(
                        plan,
                        format!(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = {} AND pid <> pg_backend_pid()",
                            literal(&self.settings.database)
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
                                p.target.user, p.name
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
                    self.settings.owner,
                    self.settings.database
                );
            }
            self.plan_database(plan, &db)?;
        }
        if let Some(hba) = &self.settings.hba {
            self.plan_hba(plan, hba)?;
        }

        self.diff(plan, password_changed);
        plan.value("role", p.name.clone());
        plan.value("database", self.settings.database.clone());
        plan.value("password_changed", password_changed);
        plan.value("server_version", o.version);
        let queries = plan.queries();
        plan.value("queries", queries);
        Ok(())
    }

    fn plan_database(&self, plan: &mut DbPlan, db: &str) -> Result<()> {
        let p = self.settings;
        let o = &self.observed;
        let owner = ident(&self.settings.owner);
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
                        self.settings.database,
                        mismatch.join(", ")
                    );
                }
                if have.owner != self.settings.owner {
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

    fn plan_hba(&self, plan: &mut DbPlan, hba: &Hba) -> Result<()> {
        let p = self.settings;
        let path = &hba.file;
        let previous = self.observed.hba_file.clone();
        let text = previous
            .as_ref()
            .map(|s| String::from_utf8_lossy(&s.content).into_owned())
            .with_context(|| format!("pg_hba_file {} does not exist", path.display()))?;
        let wanted = p.state == State::Present;
        if let Some(new) = hba::edit(
            &text,
            wanted,
            hba.kind.word(),
            &self.settings.database,
            &p.name,
            &hba.subnet,
            hba.method.word(),
        ) {
            plan.diff(Diff::new(path.display().to_string(), text, new.clone()));
            plan.actions.push(Action::Hba {
                path: path.to_owned(),
                content: new,
                previous,
            });
        }
        Ok(())
    }

    /// Role attributes and database settings before and after; never the password, only
    /// whether it changes.
    fn diff(&self, plan: &mut DbPlan, password_changed: bool) {
        let p = self.settings;
        let o = &self.observed;
        let present = p.state == State::Present;
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
                self.settings.database
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
                &self.settings.owner,
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
            format!("database {}", self.settings.database),
            before,
            after,
        ));
    }
}

#[cfg(test)]
mod tests {
    //! Table tests of the planner: every case builds the server's catalog as [`Observed`].
    use serde_json::{json, Value};

    use super::*;
    use crate::observe::Database;
    use crate::{checks, WardenDb};

    const PW: &str = "correct horse";

    /// The settings of role mevy with password [`PW`], logging in over a unix socket, with
    /// `args`: the spec's validation, then the checks.
    fn settings(args: Value) -> Result<Settings> {
        let mut raw = json!({"name": "mevy", "password": PW, "login_unix_socket": "/tmp"});
        raw.as_object_mut()
            .unwrap()
            .extend(args.as_object().unwrap().clone());
        checks::settings(&warden_testkit::validated::<WardenDb>(raw).map_err(anyhow::Error::msg)?)
    }

    /// A server with neither the role nor the database.
    fn empty(version: i32) -> Observed {
        Observed {
            role: None,
            password_unverifiable: false,
            database: None,
            owner_exists: true,
            template_exists: true,
            version,
            hba_file: None,
        }
    }

    fn database() -> Database {
        Database {
            owner: "mevy".into(),
            encoding: "UTF8".into(),
            collate: "C.UTF-8".into(),
            ctype: "C.UTF-8".into(),
            conn_limit: -1,
            public_connect: false,
            public_temp: false,
        }
    }

    /// What a run with [`PW`] left behind.
    fn converged() -> Observed {
        Observed {
            role: Some(Role {
                login: true,
                password: Some(scram::verifier(PW)),
            }),
            database: Some(database()),
            ..empty(160_000)
        }
    }

    fn run(args: Value, o: &Observed) -> Result<DbPlan> {
        plan(&settings(args)?, o)
    }

    fn ok(args: Value, o: &Observed) -> DbPlan {
        run(args, o).unwrap()
    }

    fn refused(args: Value, o: &Observed) -> String {
        match run(args, o) {
            Ok(p) => panic!("planned {:?}", p.queries()),
            Err(e) => format!("{e:#}"),
        }
    }

    fn undo_of(plan: &DbPlan, i: usize) -> Option<&str> {
        match &plan.actions[i] {
            Action::Sql { undo, .. } => undo.as_deref(),
            Action::Hba { .. } => None,
        }
    }

    fn diff_of<'a>(plan: &'a DbPlan, header: &str) -> Option<(&'a str, &'a str)> {
        plan.diffs
            .iter()
            .find(|d| d.before_header == header)
            .map(|d| (d.before.as_str(), d.after.as_str()))
    }

    #[test]
    fn a_fresh_server_gets_the_role_and_the_database() {
        let plan = ok(json!({}), &empty(160_000));
        assert_eq!(
            plan.queries(),
            [
                "CREATE ROLE \"mevy\" LOGIN PASSWORD '<SCRAM-SHA-256 verifier>'",
                "CREATE DATABASE \"mevy\" OWNER \"mevy\" TEMPLATE \"template0\" ENCODING 'UTF8'",
                "REVOKE CONNECT, TEMPORARY ON DATABASE \"mevy\" FROM PUBLIC",
            ]
        );
        assert_eq!(plan.values["queries"], json!(plan.queries()));
        // The statement run carries the verifier, never the password.
        let Action::Sql { sql, .. } = &plan.actions[0] else {
            panic!()
        };
        assert!(
            sql.contains("PASSWORD 'SCRAM-SHA-256$4096:") && !sql.contains(PW),
            "{sql}"
        );
        assert!(Stored::parse(sql.split('\'').nth(1)).matches(PW));
        assert_eq!(undo_of(&plan, 0), Some("DROP ROLE \"mevy\""));
        assert_eq!(
            undo_of(&plan, 1),
            Some("DROP DATABASE \"mevy\" WITH (FORCE)")
        );
        assert_eq!(plan.values["password_changed"], true);
        assert_eq!(plan.values["server_version"], 160_000);
        assert_eq!(
            diff_of(&plan, "role mevy"),
            Some((
                "",
                "role: mevy\nlogin: true\npassword: scram-sha-256 (new)\n"
            ))
        );
        assert_eq!(
            diff_of(&plan, "database mevy"),
            Some(("", "database: mevy\nowner: mevy\nencoding: UTF8\nlc_collate: (server default)\nlc_ctype: (server default)\nconn_limit: -1\npublic_connect: false\n"))
        );
        // Settings and no password; PostgreSQL 12 has no DROP DATABASE … WITH (FORCE).
        let plan = ok(
            json!({"password": null, "lc_collate": "sl_SI.UTF-8", "lc_ctype": "sl_SI.UTF-8", "conn_limit": 5, "revoke_public": false, "database": "mevy_db", "owner": "postgres"}),
            &empty(120_000),
        );
        assert_eq!(
            plan.queries(),
            [
                "CREATE ROLE \"mevy\" LOGIN",
                "CREATE DATABASE \"mevy_db\" OWNER \"postgres\" TEMPLATE \"template0\" ENCODING 'UTF8' LC_COLLATE 'sl_SI.UTF-8' LC_CTYPE 'sl_SI.UTF-8' CONNECTION LIMIT 5",
            ]
        );
        assert_eq!(undo_of(&plan, 1), Some("DROP DATABASE \"mevy_db\""));
        assert_eq!(plan.values["password_changed"], false);
    }

    #[test]
    fn a_converged_server_changes_nothing() {
        for args in [
            json!({}),
            json!({"password": null}),
            json!({"encoding": "utf-8", "lc_collate": "C.utf8", "conn_limit": -1}),
        ] {
            let plan = ok(args.clone(), &converged());
            assert!(!plan.changed(), "{args}: {:?}", plan.queries());
            assert!(plan.diffs.is_empty(), "{args}: {:?}", plan.diffs);
            assert!(plan.warnings.is_empty());
            assert_eq!(plan.values["password_changed"], false);
        }
    }

    #[test]
    fn role_drift() {
        let old = scram::verifier("old password");
        for (role, queries, undo) in [
            (
                Role {
                    login: true,
                    password: Some(old.clone()),
                },
                vec!["ALTER ROLE \"mevy\" PASSWORD '<SCRAM-SHA-256 verifier>'"],
                format!("ALTER ROLE \"mevy\" PASSWORD '{old}'"),
            ),
            (
                Role {
                    login: true,
                    password: None,
                },
                vec!["ALTER ROLE \"mevy\" PASSWORD '<SCRAM-SHA-256 verifier>'"],
                "ALTER ROLE \"mevy\" PASSWORD NULL".to_string(),
            ),
            // An MD5 hash is upgraded even when it is of the same password.
            (
                Role {
                    login: true,
                    password: Some(format!("md5{}", "0".repeat(32))),
                },
                vec!["ALTER ROLE \"mevy\" PASSWORD '<SCRAM-SHA-256 verifier>'"],
                format!("ALTER ROLE \"mevy\" PASSWORD 'md5{}'", "0".repeat(32)),
            ),
        ] {
            let o = Observed {
                role: Some(role.clone()),
                ..converged()
            };
            let plan = ok(json!({}), &o);
            assert_eq!(plan.queries(), queries, "{role:?}");
            assert_eq!(undo_of(&plan, 0), Some(undo.as_str()));
            assert_eq!(plan.values["password_changed"], true);
            assert_eq!(
                diff_of(&plan, "role mevy").unwrap().1,
                "role: mevy\nlogin: true\npassword: scram-sha-256 (new)\n"
            );
        }
        let nologin = Observed {
            role: Some(Role {
                login: false,
                ..converged().role.unwrap()
            }),
            ..converged()
        };
        let plan = ok(json!({}), &nologin);
        assert_eq!(plan.queries(), ["ALTER ROLE \"mevy\" LOGIN"]);
        assert_eq!(undo_of(&plan, 0), Some("ALTER ROLE \"mevy\" NOLOGIN"));
    }

    #[test]
    fn passwords_that_cannot_be_compared() {
        // Without superuser rights the stored password is not readable: left alone, said so.
        let o = Observed {
            role: Some(Role {
                login: true,
                password: None,
            }),
            password_unverifiable: true,
            ..converged()
        };
        let plan = ok(json!({}), &o);
        assert!(!plan.changed());
        assert_eq!(
            plan.warnings,
            ["postgres cannot read pg_authid (not a superuser), so the password of the existing role mevy is left as it is"]
        );
        // A verifier with more iterations than warden_db recomputes is replaced, with a warning.
        let costly = "SCRAM-SHA-256$2000000:c2FsdA==$c3RvcmVk:c2VydmVy";
        let o = Observed {
            role: Some(Role {
                login: true,
                password: Some(costly.into()),
            }),
            ..converged()
        };
        let plan = ok(json!({}), &o);
        assert_eq!(plan.queries().len(), 1);
        assert!(
            plan.warnings[0].contains("asks for 2000000 iterations"),
            "{:?}",
            plan.warnings
        );
    }

    #[test]
    fn database_drift() {
        let o = Observed {
            database: Some(Database {
                owner: "postgres".into(),
                conn_limit: 3,
                public_connect: true,
                ..database()
            }),
            ..converged()
        };
        let plan = ok(json!({"conn_limit": 10}), &o);
        assert_eq!(
            plan.queries(),
            [
                "ALTER DATABASE \"mevy\" OWNER TO \"mevy\"",
                "ALTER DATABASE \"mevy\" CONNECTION LIMIT 10",
                "REVOKE CONNECT, TEMPORARY ON DATABASE \"mevy\" FROM PUBLIC",
            ]
        );
        assert_eq!(
            undo_of(&plan, 0),
            Some("ALTER DATABASE \"mevy\" OWNER TO \"postgres\"")
        );
        assert_eq!(
            undo_of(&plan, 1),
            Some("ALTER DATABASE \"mevy\" CONNECTION LIMIT 3")
        );
        assert_eq!(
            undo_of(&plan, 2),
            Some("GRANT CONNECT, TEMPORARY ON DATABASE \"mevy\" TO PUBLIC")
        );
        // Without conn_limit or revoke_public those are left as they are.
        let plan = ok(json!({"revoke_public": false}), &o);
        assert_eq!(
            plan.queries(),
            ["ALTER DATABASE \"mevy\" OWNER TO \"mevy\""]
        );
    }

    #[test]
    fn refusals() {
        let latin = Observed {
            database: Some(Database {
                encoding: "LATIN1".into(),
                collate: "de_DE.ISO8859-1".into(),
                ..database()
            }),
            ..converged()
        };
        assert_eq!(
            refused(json!({"lc_collate": "de_DE.UTF-8"}), &latin),
            "database mevy exists with encoding LATIN1 (wanted UTF8), LC_COLLATE de_DE.ISO8859-1 (wanted de_DE.UTF-8); PostgreSQL cannot change that in place: dump it, drop it and let warden_db create it again"
        );
        assert_eq!(
            refused(
                json!({"owner": "nobody"}),
                &Observed {
                    owner_exists: false,
                    ..empty(160_000)
                }
            ),
            "owner \"nobody\" of database mevy is not a role on the server"
        );
        assert_eq!(
            refused(
                json!({}),
                &Observed {
                    template_exists: false,
                    ..empty(160_000)
                }
            ),
            "template database template0 does not exist"
        );
    }

    #[test]
    fn absent() {
        let plan = ok(json!({"state": "absent"}), &converged());
        assert_eq!(
            plan.queries(),
            [
                "DROP DATABASE \"mevy\" WITH (FORCE)",
                "DROP OWNED BY \"mevy\"",
                "DROP ROLE \"mevy\""
            ]
        );
        assert_eq!(diff_of(&plan, "role mevy").unwrap().1, "");
        let old = Observed {
            version: 120_000,
            ..converged()
        };
        assert_eq!(
            ok(json!({"state": "absent"}), &old).queries()[..2],
            [
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'mevy' AND pid <> pg_backend_pid()",
                "DROP DATABASE \"mevy\""
            ]
        );
        let plan = ok(json!({"state": "absent"}), &empty(160_000));
        assert!(!plan.changed());
        assert!(plan.diffs.is_empty());
        // Absent does not care about the owner or the template.
        let gone = Observed {
            owner_exists: false,
            template_exists: false,
            ..empty(160_000)
        };
        assert!(!ok(json!({"state": "absent"}), &gone).changed());
    }

    const HBA: &str = "local   all   all   peer\nhost    all   all   10.0.0.0/8   reject\n";

    fn hba_file(text: &str) -> Option<FileState> {
        Some(FileState {
            content: text.as_bytes().to_vec(),
            mode: 0o600,
            uid: 70,
            gid: 70,
        })
    }

    #[test]
    fn the_pg_hba_line() {
        let args = json!({"pg_hba_file": "/db/pg_hba.conf", "pg_hba_address": "10.0.1.0/24"});
        let o = Observed {
            hba_file: hba_file(HBA),
            ..converged()
        };
        let plan = ok(args.clone(), &o);
        let with_line = "local   all   all   peer\nhost\tmevy\tmevy\t10.0.1.0/24\tscram-sha-256\nhost    all   all   10.0.0.0/8   reject\n";
        assert_eq!(
            plan.actions,
            [Action::Hba {
                path: "/db/pg_hba.conf".into(),
                content: with_line.into(),
                previous: hba_file(HBA),
            }]
        );
        // The update is in the trail like a statement (issue 16: "would change (N steps)").
        assert_eq!(
            plan.queries(),
            ["write /db/pg_hba.conf", "SELECT pg_reload_conf()"]
        );
        assert!(plan.changed());
        assert_eq!(diff_of(&plan, "/db/pg_hba.conf"), Some((HBA, with_line)));
        // There already: nothing; absent: taken out.
        let there = Observed {
            hba_file: hba_file(with_line),
            ..converged()
        };
        assert!(!ok(args.clone(), &there).changed());
        let mut gone = args.clone();
        gone["state"] = json!("absent");
        let plan = ok(gone, &there);
        assert!(
            matches!(&plan.actions.last(), Some(Action::Hba { content, .. }) if content == HBA)
        );
        assert_eq!(
            refused(args, &converged()),
            "pg_hba_file /db/pg_hba.conf does not exist"
        );
    }
}
