//! `sysrc(8)`: the one way warden writes rc.conf, so FreeBSD's own tool does the editing
//! (quote style, last-assignment rule, mode and owner kept, `sh -n` check on edits).
//!
//! sysrc writes a *new* variable as `name="value"` with no escaping at all
//! (sysrc.subr `f_sysrc_set`: `echo "$varname=\"$new_value\"" >> "$file"`), so a value holding
//! `"`, `$`, a backslash, a backtick or a newline would corrupt rc.conf or be expanded at
//! boot. Such values are refused here, before any command is built.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::exec::{find_tool, Cmd};
use crate::plan::{Diff, Plan, RunCmd};
use crate::rcconf::{RcChain, RcConf, RcLookup, RcValue};
use crate::shell::is_identifier;

/// `sysrc` as found on PATH, else where the base system keeps it (/usr/sbin/sysrc).
pub fn tool() -> PathBuf {
    find_tool("sysrc").unwrap_or_else(|_| PathBuf::from("/usr/sbin/sysrc"))
}

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

/// One file's part of a plan.
#[derive(Debug, Clone)]
struct FileChanges {
    file: PathBuf,
    /// What the file held before (its own assignments, not the chain's).
    current: RcConf,
    sets: Vec<(String, String)>,
    deletes: Vec<String>,
}

/// A set of rc.conf changes planned against what the host holds now: one `sysrc -f` call
/// per file for the variables it sets, one per file for deletions, each undone by restoring
/// the old values.
///
/// Planned against an [`RcChain`], a change goes where it takes effect at boot: a variable
/// is written in the file that holds its effective (last) assignment — rc.conf.local or an
/// rc.conf.d file overrides rc.conf silently — or appended to rc.conf (the chain's primary
/// file) when no file assigns it; a deletion removes it from every file of the chain that
/// assigns it. A change sysrc could not make effective (the last assignment sits in the
/// middle of a line, which sysrc's `^[[:space:]]*name=` never matches) is refused, naming
/// the file and the variable.
#[derive(Debug, Clone)]
pub struct Changes {
    chain: RcChain,
    files: Vec<FileChanges>,
    /// Names in the order they were planned, with the value they get (`None`: deleted).
    planned: Vec<(String, Option<String>)>,
}

impl Changes {
    /// Changes to one file, whatever else the host reads (a jail's rc.conf, `sysrc -f`).
    pub fn new(file: &Path, current: &RcConf) -> Self {
        Changes::on(&RcChain::single(file, current.clone()))
    }

    /// Changes planned against a chain; see [`Changes`].
    pub fn on(chain: &RcChain) -> Self {
        Changes {
            chain: chain.clone(),
            files: Vec::new(),
            planned: Vec::new(),
        }
    }

    fn file_mut(&mut self, path: &Path, current: &RcConf) -> &mut FileChanges {
        if let Some(i) = self.files.iter().position(|f| f.file == path) {
            return &mut self.files[i];
        }
        self.files.push(FileChanges {
            file: path.to_owned(),
            current: current.clone(),
            sets: Vec::new(),
            deletes: Vec::new(),
        });
        let last = self.files.len() - 1;
        &mut self.files[last]
    }

    fn forget(&mut self, name: &str) {
        for f in &mut self.files {
            f.sets.retain(|(n, _)| n != name);
            f.deletes.retain(|n| n != name);
        }
        self.files
            .retain(|f| !f.sets.is_empty() || !f.deletes.is_empty());
        self.planned.retain(|(n, _)| n != name);
    }

    /// Plans `name=value` unless that is already the effective value.
    pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
        let chain = self.chain.clone();
        self.set_in(&chain, name, value)
    }

    /// Plans `name=value` against another chain of the same host (a variable another rc.d
    /// script reads, with its own rc.conf.d file: `gateway_enable` for rc.d/routing).
    pub fn set_in(&mut self, chain: &RcChain, name: &str, value: &str) -> Result<()> {
        check_name(name)?;
        check_value(name, value)?;
        self.forget(name);
        if chain.lookup(name).and_then(RcValue::literal) == Some(value) {
            return Ok(());
        }
        let (path, current) = match chain.holder(name) {
            Some(source) => {
                if let Some(blocker) = source.conf.set_blocker(name) {
                    bail!(
                        "cannot change {name} in {}: its last assignment (line {}) does not start the line, so sysrc would edit an earlier one and line {} would still win at boot; move it to a line of its own",
                        source.path.display(),
                        blocker.line,
                        blocker.line
                    );
                }
                (source.path.clone(), source.conf.clone())
            }
            None => {
                let primary = chain.primary.clone();
                let current = chain
                    .source(&primary)
                    .map(|s| s.conf.clone())
                    .unwrap_or_default();
                (primary, current)
            }
        };
        self.file_mut(&path, &current)
            .sets
            .push((name.to_string(), value.to_string()));
        self.planned
            .push((name.to_string(), Some(value.to_string())));
        Ok(())
    }

    /// Plans the removal of `name` from every file of the chain that assigns it.
    pub fn delete(&mut self, name: &str) -> Result<()> {
        check_name(name)?;
        self.forget(name);
        let holders: Vec<(PathBuf, RcConf)> = self
            .chain
            .holders(name)
            .into_iter()
            .map(|s| (s.path.clone(), s.conf.clone()))
            .collect();
        if holders.is_empty() {
            return Ok(());
        }
        for (path, conf) in &holders {
            if let Some(blocker) = conf.delete_blocker(name) {
                bail!(
                    "cannot remove {name} from {}: line {} assigns it together with other variables or not at the start of the line, and sysrc -x deletes whole lines starting with {name}=; put it on a line of its own",
                    path.display(),
                    blocker.line
                );
            }
        }
        for (path, conf) in holders {
            self.file_mut(&path, &conf).deletes.push(name.to_string());
        }
        self.planned.push((name.to_string(), None));
        Ok(())
    }

    /// The value `name` will have after the changes.
    pub fn value(&self, name: &str) -> Option<String> {
        if let Some((_, v)) = self.planned.iter().find(|(n, _)| n == name) {
            return v.clone();
        }
        self.chain.lookup(name).map(raw)
    }

    /// The file a planned or current value of `name` lives in (for messages).
    pub fn file_of(&self, name: &str) -> Option<PathBuf> {
        self.files
            .iter()
            .find(|f| f.sets.iter().any(|(n, _)| n == name))
            .map(|f| f.file.clone())
            .or_else(|| self.chain.holder(name).map(|s| s.path.clone()))
    }

    pub fn is_empty(&self) -> bool {
        self.planned.is_empty()
    }

    /// Names this plan sets or deletes.
    pub fn names(&self) -> Vec<String> {
        let mut sets: Vec<String> = Vec::new();
        let mut deletes: Vec<String> = Vec::new();
        for (name, value) in &self.planned {
            match value {
                Some(_) => sets.push(name.clone()),
                None => deletes.push(name.clone()),
            }
        }
        sets.extend(deletes);
        sets
    }

    /// The files this plan writes.
    pub fn files(&self) -> Vec<PathBuf> {
        self.files.iter().map(|f| f.file.clone()).collect()
    }

    /// Adds the sysrc steps and one diff per file to `plan`.
    pub fn apply_to(&self, sysrc: &Path, plan: &mut Plan) -> Result<()> {
        for f in self.files.iter().filter(|f| !f.sets.is_empty()) {
            let (restore, remove) = f.restore(f.sets.iter().map(|(n, _)| n.as_str()));
            let mut step = RunCmd::new(set_many(
                sysrc,
                &f.file,
                f.sets.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            )?);
            if !remove.is_empty() {
                step = step.undo_with(delete_many(
                    sysrc,
                    &f.file,
                    remove.iter().map(String::as_str),
                )?);
            }
            if !restore.is_empty() {
                step = step.undo_with(set_many(
                    sysrc,
                    &f.file,
                    restore.iter().map(|(n, v)| (n.as_str(), v.as_str())),
                )?);
            }
            plan.step(step);
        }
        for f in self.files.iter().filter(|f| !f.deletes.is_empty()) {
            let (restore, _) = f.restore(f.deletes.iter().map(String::as_str));
            let mut step = RunCmd::new(delete_many(
                sysrc,
                &f.file,
                f.deletes.iter().map(String::as_str),
            )?);
            if !restore.is_empty() {
                step = step.undo_with(set_many(
                    sysrc,
                    &f.file,
                    restore.iter().map(|(n, v)| (n.as_str(), v.as_str())),
                )?);
            }
            plan.step(step);
        }
        for diff in self.diffs() {
            plan.diff(diff);
        }
        Ok(())
    }

    /// The touched variables before and after, as lines of each file written.
    pub fn diffs(&self) -> Vec<Diff> {
        self.files.iter().map(FileChanges::diff).collect()
    }
}

fn raw(value: &RcValue) -> String {
    match value {
        RcValue::Literal(s) => s.clone(),
        RcValue::Dynamic(raw) => raw.clone(),
    }
}

impl FileChanges {
    /// What undoes changes to `names` in this file: old literal values to set again, names
    /// to delete. A value sh had to expand cannot be written back by sysrc and is left as
    /// changed.
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

    fn diff(&self) -> Diff {
        let mut names: Vec<&str> = self
            .sets
            .iter()
            .map(|(n, _)| n.as_str())
            .chain(self.deletes.iter().map(String::as_str))
            .collect();
        names.sort();
        let line = |name: &str, value: Option<String>| {
            value
                .map(|v| format!("{name}=\"{v}\"\n"))
                .unwrap_or_default()
        };
        let before: String = names
            .iter()
            .map(|n| line(n, self.current.get(n).map(raw)))
            .collect();
        let after: String = names
            .iter()
            .map(|n| {
                let value = self
                    .sets
                    .iter()
                    .find(|(s, _)| s == n)
                    .map(|(_, v)| v.clone());
                line(n, value)
            })
            .collect();
        Diff::new(self.file.display().to_string(), before, after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_commands() {
        let (sysrc, file) = (Path::new("/usr/sbin/sysrc"), Path::new("/etc/rc.conf"));
        let cmd = set_many(sysrc, file, [("mevy_enable", "YES")]).unwrap();
        assert_eq!(
            cmd.to_string(),
            "/usr/sbin/sysrc -f /etc/rc.conf mevy_enable=YES"
        );
        let cmd = delete_many(sysrc, file, ["mevy_enable"]).unwrap();
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
        let set = |name: &str, value: &str| {
            set_many(
                Path::new("sysrc"),
                Path::new("/etc/rc.conf"),
                [(name, value)],
            )
        };
        for bad in ["say \"hi\"", "$(id)", "a\\b", "`id`", "a\nb"] {
            let err = set("x", bad).unwrap_err();
            assert!(err.to_string().contains("unescaped"), "{err}");
        }
        assert!(set("x", "inet 10.0.1.1/24 it's").is_ok());
        assert!(set("bad.name", "1").is_err());
    }

    fn chain(files: &[(&str, &str)]) -> RcChain {
        RcChain {
            sources: files
                .iter()
                .map(|(p, t)| crate::rcconf::RcSource {
                    path: PathBuf::from(p),
                    conf: RcConf::parse(t),
                })
                .collect(),
            primary: PathBuf::from(files[0].0),
        }
    }

    #[test]
    fn rc_conf_chain_changes_go_where_they_take_effect() {
        // Gap 4 of issue 13: writing rc.conf while rc.conf.local holds the value changes
        // nothing at boot.
        let rc = chain(&[
            ("/etc/rc.conf", "a=\"1\"\nb=\"1\"\nd=\"1\"\n"),
            ("/etc/rc.conf.local", "a=\"local\"\nd=\"2\"\n"),
            ("/etc/rc.conf.d/network", "b=\"net\"\n"),
        ]);
        let mut changes = Changes::on(&rc);
        changes.set("a", "new").unwrap();
        changes.set("b", "new").unwrap();
        changes.set("c", "new").unwrap();
        changes.delete("d").unwrap();
        let mut plan = Plan::new();
        changes.apply_to(Path::new("sysrc"), &mut plan).unwrap();
        assert_eq!(
            plan.commands(),
            [
                "sysrc -f /etc/rc.conf.local a=new",
                "sysrc -f /etc/rc.conf.d/network b=new",
                "sysrc -f /etc/rc.conf c=new",
                "sysrc -f /etc/rc.conf.local -x d",
                "sysrc -f /etc/rc.conf -x d",
            ]
        );
        assert_eq!(changes.value("a").as_deref(), Some("new"));
        assert_eq!(changes.value("d"), None);
        assert_eq!(
            changes.file_of("a").unwrap(),
            PathBuf::from("/etc/rc.conf.local")
        );
        let headers: Vec<&str> = plan.diffs.iter().map(|d| d.after_header.as_str()).collect();
        assert_eq!(
            headers,
            [
                "/etc/rc.conf.local",
                "/etc/rc.conf.d/network",
                "/etc/rc.conf"
            ]
        );
        assert_eq!(plan.diffs[0].before, "a=\"local\"\nd=\"2\"\n");
        assert_eq!(plan.diffs[0].after, "a=\"new\"\n");
        // Already effective: nothing, even though rc.conf holds another value.
        let mut same = Changes::on(&rc);
        same.set("a", "local").unwrap();
        assert!(same.is_empty());
    }

    #[test]
    fn rc_conf_chain_changes_sysrc_cannot_make_are_refused() {
        let rc = chain(&[
            ("/etc/rc.conf", "x=\"1\"\n"),
            ("/etc/rc.conf.local", "x=\"2\"\ny=1 x=3\n"),
        ]);
        let err = Changes::on(&rc).set("x", "4").unwrap_err().to_string();
        assert!(
            err.contains("x in /etc/rc.conf.local") && err.contains("line 2"),
            "{err}"
        );
        let err = Changes::on(&rc).delete("y").unwrap_err().to_string();
        assert!(err.contains("y from /etc/rc.conf.local"), "{err}");
    }

    #[test]
    fn set_in_another_chain_shares_the_call_for_one_file() {
        let pf = chain(&[("/etc/rc.conf", ""), ("/etc/rc.conf.local", "")]);
        let routing = chain(&[
            ("/etc/rc.conf", ""),
            ("/etc/rc.conf.local", ""),
            ("/etc/rc.conf.d/routing", "gateway_enable=\"NO\"\n"),
        ]);
        let mut changes = Changes::on(&pf);
        changes.set("pf_enable", "YES").unwrap();
        changes.set_in(&routing, "gateway_enable", "YES").unwrap();
        changes.set_in(&pf, "pflog_enable", "YES").unwrap();
        let mut plan = Plan::new();
        changes.apply_to(Path::new("sysrc"), &mut plan).unwrap();
        assert_eq!(
            plan.commands(),
            [
                "sysrc -f /etc/rc.conf pf_enable=YES pflog_enable=YES",
                "sysrc -f /etc/rc.conf.d/routing gateway_enable=YES",
            ]
        );
    }
}
