//! `sysrc(8)`: the one way warden writes rc.conf, so FreeBSD's own tool does the editing
//! (quote style, last-assignment rule, mode and owner kept, `sh -n` check on edits).
//!
//! sysrc writes a *new* variable as `name="value"` with no escaping at all
//! (sysrc.subr `f_sysrc_set`: `echo "$varname=\"$new_value\"" >> "$file"`), so a value holding
//! `"`, `$`, a backslash, a backtick or a newline would corrupt rc.conf or be expanded at
//! boot. Such values are refused here, before any command is built.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::exec::Cmd;
use crate::plan::{Diff, Plan, RunCmd};
use crate::rcconf::{RcConf, RcValue};
use crate::shell::is_identifier;

/// Checks a variable name the way sysrc does (`name contains characters not allowed in shell`).
pub fn check_name(name: &str) -> Result<()> {
    if !is_identifier(name) {
        bail!("rc.conf variable name {name:?} contains characters not allowed in shell");
    }
    Ok(())
}

/// Refuses values sysrc would write unescaped into a double-quoted string.
pub fn check_value(name: &str, value: &str) -> Result<()> {
    if let Some(bad) = value
        .chars()
        .find(|c| matches!(c, '"' | '$' | '\\' | '`' | '\n' | '\r'))
    {
        bail!(
            "cannot write {name} to rc.conf: its value contains {:?}, which sysrc writes unescaped inside double quotes",
            bad
        );
    }
    Ok(())
}

/// `sysrc -f <file> name=value`
pub fn set(sysrc: &Path, file: &Path, name: &str, value: &str) -> Result<Cmd> {
    check_name(name)?;
    check_value(name, value)?;
    Ok(Cmd::new(sysrc)
        .arg("-f")
        .arg(file)
        .arg(format!("{name}={value}")))
}

/// `sysrc -f <file> a=1 b=2 …`: several variables in one call.
pub fn set_many<'a>(
    sysrc: &Path,
    file: &Path,
    vars: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Cmd> {
    let mut cmd = Cmd::new(sysrc).arg("-f").arg(file);
    for (name, value) in vars {
        check_name(name)?;
        check_value(name, value)?;
        cmd = cmd.arg(format!("{name}={value}"));
    }
    Ok(cmd)
}

/// `sysrc -f <file> -x a b …`: removes every assignment of each name in `file`.
pub fn delete_many<'a>(
    sysrc: &Path,
    file: &Path,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<Cmd> {
    let mut cmd = Cmd::new(sysrc).arg("-f").arg(file).arg("-x");
    for name in names {
        check_name(name)?;
        cmd = cmd.arg(name);
    }
    Ok(cmd)
}

/// `sysrc -f <file> -x name`: removes every assignment of `name` in `file`.
pub fn delete(sysrc: &Path, file: &Path, name: &str) -> Result<Cmd> {
    check_name(name)?;
    Ok(Cmd::new(sysrc).arg("-f").arg(file).arg("-x").arg(name))
}

/// A set of rc.conf changes planned against what the file holds now: one `sysrc` call for
/// every variable set, one for every deletion, each undone by restoring the old values.
#[derive(Debug, Clone)]
pub struct Changes {
    file: PathBuf,
    current: RcConf,
    sets: Vec<(String, String)>,
    deletes: Vec<String>,
}

impl Changes {
    pub fn new(file: &Path, current: &RcConf) -> Self {
        Changes {
            file: file.to_owned(),
            current: current.clone(),
            sets: Vec::new(),
            deletes: Vec::new(),
        }
    }

    /// Plans `name=value` unless that is already the value.
    pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
        check_name(name)?;
        check_value(name, value)?;
        self.deletes.retain(|n| n != name);
        self.sets.retain(|(n, _)| n != name);
        if self.current.get(name).and_then(RcValue::literal) != Some(value) {
            self.sets.push((name.to_string(), value.to_string()));
        }
        Ok(())
    }

    /// Plans the removal of `name` if the file assigns it.
    pub fn delete(&mut self, name: &str) -> Result<()> {
        check_name(name)?;
        self.sets.retain(|(n, _)| n != name);
        if self.current.get(name).is_some() && !self.deletes.iter().any(|n| n == name) {
            self.deletes.push(name.to_string());
        }
        Ok(())
    }

    /// The value `name` will have after the changes.
    pub fn value(&self, name: &str) -> Option<String> {
        if let Some((_, v)) = self.sets.iter().find(|(n, _)| n == name) {
            return Some(v.clone());
        }
        if self.deletes.iter().any(|n| n == name) {
            return None;
        }
        self.current.get(name).map(|v| match v {
            RcValue::Literal(s) => s.clone(),
            RcValue::Dynamic(raw) => raw.clone(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.sets.is_empty() && self.deletes.is_empty()
    }

    /// Names this plan sets or deletes.
    pub fn names(&self) -> Vec<String> {
        self.sets
            .iter()
            .map(|(n, _)| n.clone())
            .chain(self.deletes.iter().cloned())
            .collect()
    }

    /// Adds the sysrc steps and the rc.conf diff to `plan`.
    pub fn apply_to(&self, sysrc: &Path, plan: &mut Plan) -> Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        let (restore, remove) = self.restore(self.sets.iter().map(|(n, _)| n.as_str()));
        if !self.sets.is_empty() {
            let mut step = RunCmd::new(set_many(
                sysrc,
                &self.file,
                self.sets.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            )?);
            if !remove.is_empty() {
                step = step.undo_with(delete_many(
                    sysrc,
                    &self.file,
                    remove.iter().map(String::as_str),
                )?);
            }
            if !restore.is_empty() {
                step = step.undo_with(set_many(
                    sysrc,
                    &self.file,
                    restore.iter().map(|(n, v)| (n.as_str(), v.as_str())),
                )?);
            }
            plan.step(step);
        }
        if !self.deletes.is_empty() {
            let (restore, _) = self.restore(self.deletes.iter().map(String::as_str));
            let mut step = RunCmd::new(delete_many(
                sysrc,
                &self.file,
                self.deletes.iter().map(String::as_str),
            )?);
            if !restore.is_empty() {
                step = step.undo_with(set_many(
                    sysrc,
                    &self.file,
                    restore.iter().map(|(n, v)| (n.as_str(), v.as_str())),
                )?);
            }
            plan.step(step);
        }
        plan.diff(self.diff());
        Ok(())
    }

    /// What undoes changes to `names`: old literal values to set again, names to delete.
    /// A value sh had to expand cannot be written back by sysrc and is left as changed.
    fn restore<'a>(
        &self,
        names: impl Iterator<Item = &'a str>,
    ) -> (Vec<(String, String)>, Vec<String>) {
        let mut restore = Vec::new();
        let mut remove = Vec::new();
        for name in names {
            match self.current.get(name) {
                Some(RcValue::Literal(v)) if check_value(name, v).is_ok() => {
                    restore.push((name.to_string(), v.clone()))
                }
                Some(_) => {}
                None => remove.push(name.to_string()),
            }
        }
        (restore, remove)
    }

    /// The touched variables before and after, as rc.conf lines.
    pub fn diff(&self) -> Diff {
        let mut names = self.names();
        names.sort();
        let line = |name: &str, value: Option<String>| {
            value
                .map(|v| format!("{name}=\"{v}\"\n"))
                .unwrap_or_default()
        };
        let before: String = names
            .iter()
            .map(|n| {
                line(
                    n,
                    self.current.get(n).map(|v| match v {
                        RcValue::Literal(s) => s.clone(),
                        RcValue::Dynamic(raw) => raw.clone(),
                    }),
                )
            })
            .collect();
        let after: String = names.iter().map(|n| line(n, self.value(n))).collect();
        Diff::new(self.file.display().to_string(), before, after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_commands() {
        let cmd = set(
            Path::new("/usr/sbin/sysrc"),
            Path::new("/etc/rc.conf"),
            "mevy_enable",
            "YES",
        )
        .unwrap();
        assert_eq!(
            cmd.to_string(),
            "/usr/sbin/sysrc -f /etc/rc.conf mevy_enable=YES"
        );
        let cmd = delete(
            Path::new("/usr/sbin/sysrc"),
            Path::new("/etc/rc.conf"),
            "mevy_enable",
        )
        .unwrap();
        assert_eq!(
            cmd.to_string(),
            "/usr/sbin/sysrc -f /etc/rc.conf -x mevy_enable"
        );
    }

    #[test]
    fn changes_plan_one_call_each_and_undo() {
        let rc = RcConf::parse("a=\"1\"\nb=\"keep\"\nc=\"gone\"\n");
        let mut changes = Changes::new(Path::new("/etc/rc.conf"), &rc);
        changes.set("a", "2").unwrap();
        changes.set("b", "keep").unwrap();
        changes.set("n", "new").unwrap();
        changes.delete("c").unwrap();
        changes.delete("absent").unwrap();
        assert_eq!(changes.names(), ["a", "n", "c"]);
        let mut plan = Plan::new();
        changes
            .apply_to(Path::new("/usr/sbin/sysrc"), &mut plan)
            .unwrap();
        assert_eq!(
            plan.commands(),
            [
                "/usr/sbin/sysrc -f /etc/rc.conf a=2 n=new",
                "/usr/sbin/sysrc -f /etc/rc.conf -x c"
            ]
        );
        assert_eq!(plan.diffs[0].before, "a=\"1\"\nc=\"gone\"\n");
        assert_eq!(plan.diffs[0].after, "a=\"2\"\nn=\"new\"\n");
        assert_eq!(changes.value("c"), None);
        assert_eq!(changes.value("b").as_deref(), Some("keep"));
    }

    #[test]
    fn refuses_values_sysrc_cannot_write() {
        for bad in ["say \"hi\"", "$(id)", "a\\b", "`id`", "a\nb"] {
            let err = set(Path::new("sysrc"), Path::new("/etc/rc.conf"), "x", bad).unwrap_err();
            assert!(err.to_string().contains("unescaped"), "{err}");
        }
        assert!(set(
            Path::new("sysrc"),
            Path::new("/etc/rc.conf"),
            "x",
            "inet 10.0.1.1/24 it's"
        )
        .is_ok());
        assert!(set(
            Path::new("sysrc"),
            Path::new("/etc/rc.conf"),
            "bad.name",
            "1"
        )
        .is_err());
    }
}
