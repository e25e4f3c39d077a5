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
    /// The rendered command, if the step runs one.
    fn command(&self) -> Option<String> {
        None
    }
    /// The step's entries in the `commands` trail: its command, or what it does without a
    /// tool (`write PATH`), so the trail (and "would change the host (N steps)") holds every
    /// change.
    fn trail(&self) -> Vec<String> {
        vec![self.command().unwrap_or_else(|| self.describe())]
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

/// Runs `cmd`, then asks `holds` whether it did what it should: the one "run, then check it
/// took" of every step whose tool's exit status cannot be trusted (Bastille exits 0 after
/// failing, `service start` exits 0 for a disabled service, …). A non-zero exit is a
/// failure with the tool's output ([`crate::exec::CommandError`]); a zero exit after which
/// `holds` says no fails as "`cmd` exited 0 but {broken}", with what the tool printed.
pub fn run_and_check(
    cmd: &Cmd,
    holds: impl FnOnce() -> Result<bool>,
    broken: impl FnOnce() -> String,
) -> Result<()> {
    let out = cmd.run()?;
    if holds()? {
        return Ok(());
    }
    let said = format!("{}{}", out.stdout, out.stderr);
    let said = said.trim();
    if said.is_empty() {
        anyhow::bail!("`{cmd}` exited 0 but {}", broken())
    }
    anyhow::bail!("`{cmd}` exited 0 but {}; it said: {said}", broken())
}

/// When a [`Checked`] step runs its command.
enum When {
    /// Always.
    Always,
    /// Only when its check does not hold yet when the step runs (a state the host may
    /// already be in by then: a jail an earlier step started, a service the jail's own rc
    /// started). Undo then reverts only while the check still holds.
    UnlessHolds,
    /// The command is chosen when the step runs (`None`: nothing to do), from what the host
    /// holds then — e.g. the packages still missing in a jail that was stopped while
    /// planning. The planned command is what check mode shows.
    Decide(Box<dyn FnMut() -> Result<Option<Cmd>>>),
}

/// A step around [`run_and_check`]: runs a command whose exit status cannot be trusted,
/// then checks the state it should have produced (`what`, e.g. "jail mevygit runs").
/// Optionally it first asks whether there is anything to do ([`Checked::unless_holds`],
/// [`Checked::decide_when_run`]); undo commands run only if the step ran its command.
pub struct Checked {
    cmd: Cmd,
    what: String,
    check: Box<dyn FnMut() -> Result<bool>>,
    undo: Vec<Cmd>,
    when: When,
    ran: bool,
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
            when: When::Always,
            ran: false,
        }
    }

    /// Reverted by `undo` (run in order) if the step ran its command.
    pub fn undo_with(mut self, undo: Cmd) -> Self {
        self.undo.push(undo);
        self
    }

    /// Runs the command only if the check does not hold when the step runs; undo only while
    /// it still holds (what this step did is still in effect).
    pub fn unless_holds(mut self) -> Self {
        self.when = When::UnlessHolds;
        self
    }

    /// Chooses the command when the step runs (`None`: nothing to do).
    pub fn decide_when_run(
        mut self,
        decide: impl FnMut() -> Result<Option<Cmd>> + 'static,
    ) -> Self {
        self.when = When::Decide(Box::new(decide));
        self
    }

    /// The command as planned (what check mode shows).
    pub fn cmd(&self) -> &Cmd {
        &self.cmd
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
        let cmd = match &mut self.when {
            When::Always => self.cmd.clone(),
            When::UnlessHolds => {
                if (self.check)()? {
                    return Ok(());
                }
                self.cmd.clone()
            }
            When::Decide(decide) => match decide()? {
                Some(cmd) => cmd,
                None => return Ok(()),
            },
        };
        self.ran = true;
        let what = &self.what;
        run_and_check(&cmd, &mut self.check, || {
            format!("afterwards {what} is not true")
        })
    }
    fn undo(&mut self) -> Result<()> {
        if !self.ran || self.undo.is_empty() {
            return Ok(());
        }
        if matches!(self.when, When::UnlessHolds) && !(self.check)()? {
            return Ok(());
        }
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

    /// What every step does, in order (checks included): what a table test asserts.
    pub fn describe(&self) -> Vec<String> {
        self.steps.iter().map(|s| s.describe()).collect()
    }

    /// The trail of the steps that change the host, in order: rendered commands, SQL
    /// statements, `write PATH` / `remove PATH` / `mkdir PATH` for file changes.
    pub fn commands(&self) -> Vec<String> {
        self.steps
            .iter()
            .filter(|s| s.changes_host())
            .flat_map(|s| s.trail())
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

    /// A shell command that appends `word` to `log`.
    fn logs(log: &std::path::Path, word: &str) -> Cmd {
        Cmd::new("/bin/sh").args(["-c", &format!("echo {word} >> {}", log.display())])
    }

    fn logged(log: &std::path::Path) -> String {
        std::fs::read_to_string(log).unwrap_or_default()
    }

    #[test]
    fn checked_runs_then_checks_and_says_what_the_tool_said() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let mut ok = Checked::new(logs(&log, "run"), "it ran", {
            let log = log.clone();
            move || Ok(logged(&log) == "run\n")
        })
        .undo_with(logs(&log, "undo"));
        ok.apply().unwrap();
        ok.undo().unwrap();
        assert_eq!(logged(&log), "run\nundo\n");

        let mut lying = Checked::new(
            Cmd::new("/bin/sh").args(["-c", "echo done"]),
            "x holds",
            || Ok(false),
        );
        assert_eq!(
            format!("{:#}", lying.apply().unwrap_err()),
            "`/bin/sh -c 'echo done'` exited 0 but afterwards x holds is not true; it said: done"
        );
        let mut failing =
            Checked::new(Cmd::new("/bin/sh").args(["-c", "exit 3"]), "x", || Ok(true));
        assert!(failing
            .apply()
            .unwrap_err()
            .downcast_ref::<crate::exec::CommandError>()
            .is_some());
    }

    #[test]
    fn checked_unless_holds_runs_nothing_when_the_host_already_is_so() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let holds = Rc::new(RefCell::new(true));
        let check = {
            let holds = holds.clone();
            move || Ok(*holds.borrow())
        };
        let mut step = Checked::new(logs(&log, "run"), "up", check.clone())
            .unless_holds()
            .undo_with(logs(&log, "back"));
        step.apply().unwrap();
        step.undo().unwrap();
        assert_eq!(logged(&log), "", "nothing ran, nothing to undo");
        assert_eq!(step.command().unwrap(), logs(&log, "run").to_string());

        // Not so yet: it runs; undo reverts only while what it did still holds.
        *holds.borrow_mut() = false;
        let mut step = Checked::new(logs(&log, "run"), "up", {
            let holds = holds.clone();
            let log = log.clone();
            move || Ok(*holds.borrow() || logged(&log).contains("run"))
        })
        .unless_holds()
        .undo_with(logs(&log, "back"));
        step.apply().unwrap();
        step.undo().unwrap();
        assert_eq!(logged(&log), "run\nback\n");
    }

    #[test]
    fn checked_decides_its_command_when_it_runs() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let mut nothing = Checked::new(logs(&log, "planned"), "x", || Ok(true))
            .decide_when_run(|| Ok(None))
            .undo_with(logs(&log, "undo"));
        nothing.apply().unwrap();
        nothing.undo().unwrap();
        assert_eq!(logged(&log), "");
        let now = logs(&log, "now");
        let mut some = Checked::new(logs(&log, "planned"), "x", || Ok(true))
            .decide_when_run(move || Ok(Some(now.clone())));
        assert!(some.command().unwrap().contains("planned"));
        some.apply().unwrap();
        assert_eq!(logged(&log), "now\n");
    }

    #[test]
    fn file_changes_are_in_the_trail() {
        let mut plan = Plan::new();
        plan.step(MakeDir {
            path: "/home/mevy/agent".into(),
            attrs: Attrs::default(),
        });
        plan.step(WriteFile {
            path: "/home/mevy/agent/.env".into(),
            content: Vec::new(),
            attrs: Attrs::default(),
            previous: None,
        });
        plan.step(RemoveFile {
            path: "/usr/local/etc/rc.d/old".into(),
            previous: None,
        });
        assert_eq!(
            plan.commands(),
            [
                "mkdir /home/mevy/agent",
                "write /home/mevy/agent/.env",
                "remove /usr/local/etc/rc.d/old"
            ]
        );
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
