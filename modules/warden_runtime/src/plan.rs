//! Plans: what a module computed from observed state and params — a list of steps, the
//! diff, and its return values. The runtime reports a plan in check mode, or applies it.
//! Check mode and the real run share the same plan, so `changed` in check mode is exactly
//! what the real run does (no second "would it change" predicate that can drift).
//!
//! Applying runs the steps in order; if one fails, the steps already done are undone in
//! reverse order (best effort) so a failed run leaves the host as it was.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::{json, Map, Value};

use crate::exec::Cmd;
use crate::fs::{self, Attrs, FileState};

/// One thing to do to the host.
pub trait Step {
    /// Human-readable, for messages (`write /usr/local/etc/rc.d/mevy`).
    fn describe(&self) -> String;
    /// The rendered command, for the `commands` trail, if the step runs one.
    fn command(&self) -> Option<String> {
        None
    }
    /// False for read-only checks that run only in a real run (they never make `changed`).
    fn changes_host(&self) -> bool {
        true
    }
    fn apply(&mut self) -> Result<()>;
    /// Reverts `apply`. Called only for steps whose `apply` succeeded.
    fn undo(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Runs a command; optionally other commands revert it.
pub struct RunCmd {
    pub cmd: Cmd,
    pub undo: Vec<Cmd>,
}

impl RunCmd {
    pub fn new(cmd: Cmd) -> Self {
        RunCmd {
            cmd,
            undo: Vec::new(),
        }
    }
    pub fn undo_with(mut self, undo: Cmd) -> Self {
        self.undo.push(undo);
        self
    }
}

impl Step for RunCmd {
    fn describe(&self) -> String {
        self.cmd.to_string()
    }
    fn command(&self) -> Option<String> {
        Some(self.cmd.to_string())
    }
    fn apply(&mut self) -> Result<()> {
        self.cmd.run().map(|_| ())
    }
    fn undo(&mut self) -> Result<()> {
        for cmd in &self.undo {
            cmd.run()?;
        }
        Ok(())
    }
}

/// Writes a file atomically; undo restores what was there before (or removes it).
pub struct WriteFile {
    pub path: PathBuf,
    pub content: Vec<u8>,
    pub attrs: Attrs,
    pub previous: Option<FileState>,
}

impl Step for WriteFile {
    fn describe(&self) -> String {
        format!("write {}", self.path.display())
    }
    fn apply(&mut self) -> Result<()> {
        fs::write_atomic(&self.path, &self.content, self.attrs)
    }
    fn undo(&mut self) -> Result<()> {
        fs::restore(&self.path, self.previous.as_ref())
    }
}

/// Creates a directory (and missing parents) with the given mode and owner; undo removes
/// it again if it is still empty.
pub struct MakeDir {
    pub path: PathBuf,
    pub attrs: Attrs,
}

impl Step for MakeDir {
    fn describe(&self) -> String {
        format!("mkdir {}", self.path.display())
    }
    fn apply(&mut self) -> Result<()> {
        fs::make_dir(&self.path, self.attrs)
    }
    fn undo(&mut self) -> Result<()> {
        let _ = fs::remove_empty_dir(&self.path);
        Ok(())
    }
}

/// Removes a file; undo puts it back.
pub struct RemoveFile {
    pub path: PathBuf,
    pub previous: Option<FileState>,
}

impl Step for RemoveFile {
    fn describe(&self) -> String {
        format!("remove {}", self.path.display())
    }
    fn apply(&mut self) -> Result<()> {
        fs::remove(&self.path)
    }
    fn undo(&mut self) -> Result<()> {
        fs::restore(&self.path, self.previous.as_ref())
    }
}

/// A read-only check run after the steps before it, e.g. "the service now runs"; its failure
/// rolls back the run. Tools whose exit codes cannot be trusted are judged this way.
pub struct Verify {
    pub what: String,
    pub check: Box<dyn FnMut() -> Result<()>>,
}

impl Step for Verify {
    fn describe(&self) -> String {
        format!("check that {}", self.what)
    }
    fn changes_host(&self) -> bool {
        false
    }
    fn apply(&mut self) -> Result<()> {
        (self.check)().with_context(|| format!("{} is not true after the change", self.what))
    }
}

/// Runs a command whose exit status cannot be trusted (tools that exit 0 after failing,
/// such as Bastille), then checks the state it should have produced. A non-zero exit is
/// still a failure; a zero exit with the check failing is reported with the tool's output.
pub struct Checked {
    pub cmd: Cmd,
    /// What must hold afterwards, e.g. "jail mevygit runs".
    pub what: String,
    pub check: Box<dyn FnMut() -> Result<bool>>,
    pub undo: Vec<Cmd>,
}

impl Checked {
    pub fn new(
        cmd: Cmd,
        what: impl Into<String>,
        check: impl FnMut() -> Result<bool> + 'static,
    ) -> Self {
        Checked {
            cmd,
            what: what.into(),
            check: Box::new(check),
            undo: Vec::new(),
        }
    }
    pub fn undo_with(mut self, undo: Cmd) -> Self {
        self.undo.push(undo);
        self
    }
}

impl Step for Checked {
    fn describe(&self) -> String {
        self.cmd.to_string()
    }
    fn command(&self) -> Option<String> {
        Some(self.cmd.to_string())
    }
    fn apply(&mut self) -> Result<()> {
        let out = self.cmd.run()?;
        if (self.check)()? {
            return Ok(());
        }
        let said = format!("{}{}", out.stdout, out.stderr);
        let said = said.trim();
        if said.is_empty() {
            anyhow::bail!(
                "`{}` exited 0 but afterwards {} is not true",
                self.cmd,
                self.what
            )
        }
        anyhow::bail!(
            "`{}` exited 0 but afterwards {} is not true; it said: {said}",
            self.cmd,
            self.what
        )
    }
    fn undo(&mut self) -> Result<()> {
        for cmd in &self.undo {
            cmd.run()?;
        }
        Ok(())
    }
}

/// One entry of Ansible's `diff` (before/after text with headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff {
    pub before_header: String,
    pub after_header: String,
    pub before: String,
    pub after: String,
}

impl Diff {
    pub fn new(
        header: impl Into<String>,
        before: impl Into<String>,
        after: impl Into<String>,
    ) -> Self {
        let header = header.into();
        Diff {
            before_header: header.clone(),
            after_header: header,
            before: before.into(),
            after: after.into(),
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "before_header": self.before_header,
            "after_header": self.after_header,
            "before": self.before,
            "after": self.after,
        })
    }
}

/// What a module wants done, and what it reports.
#[derive(Default)]
pub struct Plan {
    steps: Vec<Box<dyn Step>>,
    pub diffs: Vec<Diff>,
    /// The module's own return values.
    pub values: Map<String, Value>,
    pub warnings: Vec<String>,
    /// Overrides the default message.
    pub msg: Option<String>,
}

impl Plan {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn step(&mut self, step: impl Step + 'static) {
        self.steps.push(Box::new(step));
    }

    pub fn run(&mut self, cmd: Cmd) {
        self.step(RunCmd::new(cmd));
    }

    pub fn diff(&mut self, diff: Diff) {
        if diff.before != diff.after {
            self.diffs.push(diff);
        }
    }

    pub fn value(&mut self, key: &str, value: impl Into<Value>) {
        self.values.insert(key.to_string(), value.into());
    }

    /// True when applying would change the host.
    pub fn changes(&self) -> bool {
        self.steps.iter().any(|s| s.changes_host())
    }

    /// Rendered commands of the steps that change the host, in order.
    pub fn commands(&self) -> Vec<String> {
        self.steps
            .iter()
            .filter(|s| s.changes_host())
            .filter_map(|s| s.command())
            .collect()
    }

    /// Applies every step; on failure undoes the completed ones in reverse order.
    pub fn apply(&mut self) -> Result<(), ApplyError> {
        for index in 0..self.steps.len() {
            if let Err(error) = self.steps[index].apply() {
                let failed_step = self.steps[index].describe();
                let mut rollback_failures = Vec::new();
                for done in self.steps[..index].iter_mut().rev() {
                    if !done.changes_host() {
                        continue;
                    }
                    if let Err(e) = done.undo() {
                        rollback_failures.push(format!("{}: {e:#}", done.describe()));
                    }
                }
                let host_changed = !rollback_failures.is_empty();
                return Err(ApplyError {
                    error,
                    failed_step,
                    rolled_back: self.steps[..index].iter().any(|s| s.changes_host()),
                    rollback_failures,
                    host_changed,
                });
            }
        }
        Ok(())
    }
}

/// A failed apply, after rollback.
#[derive(Debug)]
pub struct ApplyError {
    pub error: anyhow::Error,
    pub failed_step: String,
    /// Whether earlier steps had to be undone.
    pub rolled_back: bool,
    pub rollback_failures: Vec<String>,
    /// The host is not back where it started (some undo failed).
    pub host_changed: bool,
}

impl ApplyError {
    pub fn message(&self) -> String {
        let mut msg = format!("{:#}", self.error);
        if self.rolled_back {
            if self.rollback_failures.is_empty() {
                msg.push_str("; the earlier changes of this run were rolled back");
            } else {
                msg.push_str(&format!(
                    "; rollback incomplete: {}",
                    self.rollback_failures.join("; ")
                ));
            }
        }
        msg
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    struct Recorder {
        name: &'static str,
        log: Rc<RefCell<Vec<String>>>,
        fail: bool,
    }

    impl Step for Recorder {
        fn describe(&self) -> String {
            self.name.to_string()
        }
        fn apply(&mut self) -> Result<()> {
            self.log.borrow_mut().push(format!("apply {}", self.name));
            if self.fail {
                anyhow::bail!("{} broke", self.name)
            }
            Ok(())
        }
        fn undo(&mut self) -> Result<()> {
            self.log.borrow_mut().push(format!("undo {}", self.name));
            Ok(())
        }
    }

    #[test]
    fn failure_undoes_completed_steps_in_reverse() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut plan = Plan::new();
        for (name, fail) in [("a", false), ("b", false), ("c", true), ("d", false)] {
            plan.step(Recorder {
                name,
                log: log.clone(),
                fail,
            });
        }
        let err = plan.apply().unwrap_err();
        assert_eq!(
            *log.borrow(),
            ["apply a", "apply b", "apply c", "undo b", "undo a"]
        );
        assert_eq!(err.failed_step, "c");
        assert!(!err.host_changed);
        assert_eq!(
            err.message(),
            "c broke; the earlier changes of this run were rolled back"
        );
    }

    #[test]
    fn verify_steps_do_not_count_as_changes() {
        let mut plan = Plan::new();
        plan.step(Verify {
            what: "x".into(),
            check: Box::new(|| Ok(())),
        });
        assert!(!plan.changes());
        plan.run(Cmd::new("/bin/true"));
        assert!(plan.changes());
        assert_eq!(plan.commands(), vec!["/bin/true".to_string()]);
    }

    #[test]
    fn identical_diffs_are_dropped() {
        let mut plan = Plan::new();
        plan.diff(Diff::new("f", "same", "same"));
        assert!(plan.diffs.is_empty());
    }

    #[test]
    fn write_file_undo_restores() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("script");
        std::fs::write(&path, "old").unwrap();
        let previous = fs::read_state(&path).unwrap();
        let mut plan = Plan::new();
        plan.step(WriteFile {
            path: path.clone(),
            content: b"new".to_vec(),
            attrs: Attrs::default(),
            previous,
        });
        plan.step(Verify {
            what: "it works".into(),
            check: Box::new(|| anyhow::bail!("no")),
        });
        let err = plan.apply().unwrap_err();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        assert!(
            err.message()
                .starts_with("it works is not true after the change: no"),
            "{}",
            err.message()
        );
    }
}
