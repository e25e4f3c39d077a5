//! The plan's actions as runtime steps, each running on the one client the run holds: a
//! statement by itself (CREATE/DROP DATABASE must not be in a transaction block) with the
//! statement that undoes it, and the pg_hba.conf update checked by the server before it is
//! reloaded.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

use anyhow::{anyhow, bail, Result};

use warden_runtime::fs::{self as wfs, Attrs, FileState};
use warden_runtime::plan::Step;
use warden_runtime::Plan;

use crate::conn::Db as Client;
use crate::plan::{Action, DbPlan};

/// The runtime plan of `db`, its steps run on `client`.
pub fn runtime_plan(db: DbPlan, client: Client) -> Plan {
    let client = Rc::new(RefCell::new(client));
    let mut plan = Plan::new();
    for action in db.actions {
        match action {
            Action::Sql { sql, shown, undo } => plan.step(SqlStep {
                client: client.clone(),
                sql,
                shown,
                undo,
            }),
            Action::Hba {
                path,
                content,
                previous,
            } => plan.step(HbaUpdate {
                client: client.clone(),
                path,
                content,
                previous,
            }),
        }
    }
    for diff in db.diffs {
        plan.diff(diff);
    }
    plan.warnings = db.warnings;
    plan.values = db.values;
    plan
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
    fn trail(&self) -> Vec<String> {
        crate::plan::hba_trail(&self.path)
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
