//! `pfctl(8)` and pf.conf facts the modules rely on (sbin/pfctl/pfctl.c, parse.y,
//! pfctl_parser.c; docs/freebsd-facts.md §4):
//! * `pfctl -nf <file>` parses and checks a ruleset without loading it; errors are
//!   `file:line: message` lines on stderr, exit 1;
//! * `pfctl -f <file>` replaces the main ruleset atomically; `-e`/`-d` enable/disable PF
//!   (`pfctl: pf already enabled` exits 1, so enabling is planned from `-s info`);
//! * `-s info` starts with `Status: Enabled …` or `Status: Disabled …`;
//! * every call without `-n` opens /dev/pf and fails (`pfctl: /dev/pf: No such file or
//!   directory`, exit 1) while pf.ko is not loaded; `-nf` works without it (pfctl.c `main`),
//!   so the module is loaded first (see [`crate::kld`]);
//! * `-s nat` prints the loaded NAT rules normalized, one per address of a list
//!   (`nat on vtnet0 inet from 10.0.1.0/24 to any -> (vtnet0) round-robin`; pfctl_parser.c
//!   `print_rule`: `" -> "` then `print_pool`); the same on the main line read for FreeBSD 15
//!   (docs/freebsd-facts.md, "pf"). OpenBSD-style `nat-to` on a filter rule would be listed
//!   by `-s rules` instead, so [`translates`] accepts either form;
//! * statement order (options, normalization, queueing, translation, filtering) is enforced,
//!   so an included file holding `nat` and `pass` belongs right before the first filter rule.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::exec::{Cmd, CommandError};
use crate::fs::{self, Attrs, FileState};
use crate::plan::Step;

/// The kernel module PF needs: rc.d/pf's `required_modules="pf"` (libexec/rc/rc.d/pf), loaded
/// with [`crate::kld::load`] when [`crate::kld::is_loaded`] says it is not.
pub const KERNEL_MODULE: &str = "pf";

/// `pfctl -s <what>`: `info`, `nat` or `rules`.
pub fn show_cmd(pfctl: &Path, what: &str) -> Cmd {
    Cmd::new(pfctl).args(["-s", what])
}

/// `pfctl -e`: enables PF. It exits 1 with `pfctl: pf already enabled`, so callers plan it
/// from [`is_enabled`].
pub fn enable(pfctl: &Path) -> Cmd {
    Cmd::new(pfctl).arg("-e")
}

/// `pfctl -d`: disables PF (what undoes [`enable`]).
pub fn disable(pfctl: &Path) -> Cmd {
    Cmd::new(pfctl).arg("-d")
}

/// `pfctl -s info` → whether PF is enabled.
pub fn is_enabled(pfctl: &Path) -> Result<bool> {
    let out = show_cmd(pfctl, "info").run()?;
    Ok(parse_enabled(&out.stdout))
}

pub fn parse_enabled(info: &str) -> bool {
    info.lines()
        .next()
        .is_some_and(|l| l.starts_with("Status: Enabled"))
}

fn rule_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// `pfctl -s nat` → the loaded NAT rules, one per line.
pub fn nat_rules(pfctl: &Path) -> Result<Vec<String>> {
    Ok(rule_lines(&show_cmd(pfctl, "nat").run()?.stdout))
}

/// `pfctl -s rules` → the loaded filter rules, one per line.
pub fn filter_rules(pfctl: &Path) -> Result<Vec<String>> {
    Ok(rule_lines(&show_cmd(pfctl, "rules").run()?.stdout))
}

/// The loaded-NAT check: true when every source network of `nets` is translated by a
/// loaded rule in either form ([`translates`]). `rules` may be empty when `-s nat` alone
/// was asked (then only `nat` rules count).
pub fn translates_all(nat: &[String], rules: &[String], nets: &[String]) -> bool {
    nets.iter().all(|net| translates(nat, rules, net))
}

/// True when a loaded rule translates the source network `net`: a `-s nat` line
/// (`nat … from NET to … -> …`, FreeBSD 13–15) or a `-s rules` line carrying OpenBSD-style
/// `nat-to` (`… from NET to … nat-to …`).
pub fn translates(nat: &[String], rules: &[String], net: &str) -> bool {
    let from = format!(" from {net} to ");
    nat.iter()
        .any(|r| r.starts_with("nat ") && r.contains(&from) && r.contains(" -> "))
        || rules
            .iter()
            .any(|r| r.contains(&from) && r.contains(" nat-to "))
}

/// The first word of each pf.conf statement that starts the filtering section.
pub const FILTER_KEYWORDS: [&str; 5] = ["pass", "block", "match", "anchor", "antispoof"];

/// Index of the line before which an `include` holding translation and filter rules fits:
/// the first line whose statement starts the filtering section (else the end).
pub fn include_position(pf_conf: &str) -> usize {
    let mut continued = false;
    for (index, line) in pf_conf.lines().enumerate() {
        let was_continued = continued;
        continued = line.trim_end().ends_with('\\');
        if was_continued {
            continue;
        }
        let first = line.split_whitespace().next().unwrap_or("");
        if FILTER_KEYWORDS.contains(&first) {
            return index;
        }
    }
    pf_conf.lines().count()
}

/// True when pf.conf has a statement `include "<path>"`.
pub fn includes(pf_conf: &str, path: &str) -> bool {
    let wanted = format!("include \"{path}\"");
    pf_conf.lines().any(|l| {
        let l = l.split('#').next().unwrap_or("").trim();
        l == wanted
    })
}

/// The value pf.conf gives a macro before line `before`, if any (`name = "value"`).
pub fn macro_value(pf_conf: &str, name: &str, before: usize) -> Option<String> {
    pf_conf
        .lines()
        .take(before)
        .filter_map(|l| {
            let l = l.split('#').next().unwrap_or("").trim();
            let (n, v) = l.split_once('=')?;
            (n.trim() == name).then(|| v.trim().trim_matches('"').to_string())
        })
        .last()
}

/// One file of a ruleset to replace.
#[derive(Debug, Clone)]
pub struct RulesetFile {
    pub path: PathBuf,
    pub content: String,
    pub previous: Option<FileState>,
}

/// Replaces ruleset files and loads them as one transaction:
/// 1. the candidates are written next to the live files and checked with `pfctl -nf`
///    (the candidate main file includes the candidate include files), so a bad ruleset
///    leaves the live files untouched byte for byte;
/// 2. the live files are replaced atomically and `pfctl -f <main>` loads them;
/// 3. if loading fails, the previous files are restored and loaded again.
///
/// Undo (a later step failed) restores the previous files and reloads them.
pub struct LoadRuleset {
    pub pfctl: PathBuf,
    pub main: PathBuf,
    /// Every file to write; the main file last if it changes. May be empty (reload only).
    pub files: Vec<RulesetFile>,
    /// Run the `pfctl -nf` check first (false when a [`CheckRuleset`] step earlier in the
    /// plan already did, e.g. before loading pf.ko).
    pub check: bool,
}

/// The `pfctl -nf` check of [`LoadRuleset`] as a step of its own, for plans that must do
/// something between checking and loading (load pf.ko: `pfctl -n` works without it, the
/// load does not). It changes nothing, so a rejected ruleset leaves the host untouched.
pub struct CheckRuleset {
    pub pfctl: PathBuf,
    pub main: PathBuf,
    pub files: Vec<RulesetFile>,
}

impl Step for CheckRuleset {
    fn describe(&self) -> String {
        Cmd::new(&self.pfctl).arg("-nf").arg(&self.main).to_string()
    }
    fn changes_host(&self) -> bool {
        false
    }
    fn apply(&mut self) -> Result<()> {
        validate(&self.pfctl, &self.main, &self.files)
    }
}

/// Checks the candidates without touching the live files.
fn validate(pfctl: &Path, main: &Path, files: &[RulesetFile]) -> Result<()> {
    {
        // The main file always takes part, so it includes the candidate include files.
        let mut candidates: Vec<RulesetFile> = files.to_vec();
        if !candidates.iter().any(|f| f.path == main) {
            let content = fs::read_state(main)
                .with_context(|| format!("cannot read {}", main.display()))?
                .map(|s| String::from_utf8_lossy(&s.content).into_owned())
                .with_context(|| format!("cannot read {}: it does not exist", main.display()))?;
            candidates.push(RulesetFile {
                path: main.to_path_buf(),
                content,
                previous: None,
            });
        }
        let mut temps = Vec::new();
        for file in &candidates {
            // Created by descriptor in the file's own directory, removed when dropped.
            let temp = fs::TempFile::beside(&file.path, "warden-check-").with_context(|| {
                format!("cannot write a candidate next to {}", file.path.display())
            })?;
            temps.push((file, temp));
        }
        let others: Vec<(PathBuf, PathBuf)> = temps
            .iter()
            .map(|(f, t)| (f.path.clone(), t.path().to_owned()))
            .collect();
        let candidate_path = |path: &Path| -> PathBuf {
            others
                .iter()
                .find(|(f, _)| f == path)
                .map(|(_, t)| t.clone())
                .unwrap_or_else(|| path.to_owned())
        };
        for (file, temp) in &mut temps {
            let mut content = file.content.clone();
            // Point the candidate at the other candidates.
            for (other, other_temp) in &others {
                content = content.replace(
                    &format!("include \"{}\"", other.display()),
                    &format!("include \"{}\"", other_temp.display()),
                );
            }
            temp.write(content.as_bytes())?;
        }
        let main = candidate_path(main);
        let out = Cmd::new(pfctl).arg("-nf").arg(&main).output()?;
        if !out.success() {
            let mut message = format!("{}{}", out.stdout, out.stderr);
            for (file, temp) in &temps {
                message = message.replace(
                    &temp.path().display().to_string(),
                    &file.path.display().to_string(),
                );
            }
            bail!(
                "pfctl rejected the new ruleset, nothing was changed:\n{}",
                message.trim_end()
            );
        }
        Ok(())
    }
}

impl LoadRuleset {
    fn load(&self) -> Cmd {
        Cmd::new(&self.pfctl).arg("-f").arg(&self.main)
    }

    fn write_all(&self) -> Result<()> {
        for file in &self.files {
            fs::write_atomic(&file.path, file.content.as_bytes(), Attrs::default())?;
        }
        Ok(())
    }

    fn restore_all(&self) -> Result<()> {
        for file in self.files.iter().rev() {
            fs::restore(&file.path, file.previous.as_ref())?;
        }
        Ok(())
    }
}

impl Step for LoadRuleset {
    fn describe(&self) -> String {
        self.load().to_string()
    }
    fn command(&self) -> Option<String> {
        Some(self.describe())
    }
    fn trail(&self) -> Vec<String> {
        self.files
            .iter()
            .map(|f| format!("write {}", f.path.display()))
            .chain([self.describe()])
            .collect()
    }
    fn apply(&mut self) -> Result<()> {
        if !self.files.is_empty() {
            if self.check {
                validate(&self.pfctl, &self.main, &self.files)?;
            }
            self.write_all()?;
        }
        let load = self.load();
        let out = load.output()?;
        if out.success() {
            return Ok(());
        }
        let error = anyhow::Error::new(CommandError::new(&load, out));
        if self.files.is_empty() {
            return Err(error);
        }
        match self.restore_all().and_then(|_| load.run().map(|_| ())) {
            Ok(()) => Err(error.context(
                "loading the new ruleset failed; the previous files were restored and loaded",
            )),
            Err(e) => Err(error.context(format!(
                "loading the new ruleset failed, and so did restoring the previous one: {e:#}"
            ))),
        }
    }
    fn undo(&mut self) -> Result<()> {
        self.restore_all()?;
        self.load().run().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PF_CONF: &str = "ext_if = \"vtnet0\"\nset skip on lo0\nscrub in all\nnat on $ext_if from 192.168.5.0/24 to any -> ($ext_if)\n# comment\npass out all \\\n  keep state\nblock in all\n";

    #[test]
    fn include_goes_before_the_first_filter_rule() {
        assert_eq!(include_position(PF_CONF), 5);
        assert_eq!(include_position("ext_if = \"em0\"\n"), 1);
        assert_eq!(include_position(""), 0);
    }

    #[test]
    fn include_detection_and_macros() {
        assert!(includes(
            "include \"/etc/pf.warden.conf\" # warden\n",
            "/etc/pf.warden.conf"
        ));
        assert!(!includes(
            "#include \"/etc/pf.warden.conf\"\n",
            "/etc/pf.warden.conf"
        ));
        assert_eq!(macro_value(PF_CONF, "ext_if", 5).as_deref(), Some("vtnet0"));
        assert_eq!(macro_value(PF_CONF, "ext_if", 0), None);
    }

    #[test]
    fn translation_in_either_form() {
        let nat =
            vec!["nat on vtnet0 inet from 10.0.1.0/24 to any -> (vtnet0) round-robin".to_string()];
        assert!(translates(&nat, &[], "10.0.1.0/24"));
        assert!(!translates(&nat, &[], "10.0.2.0/24"));
        let rules = vec![
            "pass out on vtnet0 inet from 10.0.2.0/24 to any flags S/SA keep state nat-to (vtnet0) round-robin".to_string(),
            "pass in quick on warden0 inet from 10.0.3.0/24 to any flags S/SA keep state".to_string(),
        ];
        assert!(translates(&[], &rules, "10.0.2.0/24"));
        assert!(!translates(&[], &rules, "10.0.3.0/24"));
        // rdr rules do not translate a source.
        let rdr = vec!["rdr on vtnet0 inet from 10.0.4.0/24 to any -> 10.0.4.2".to_string()];
        assert!(!translates(&rdr, &[], "10.0.4.0/24"));
    }

    #[test]
    fn command_forms_and_the_loaded_nat_check() {
        let pfctl = Path::new("/sbin/pfctl");
        assert_eq!(enable(pfctl).to_string(), "/sbin/pfctl -e");
        assert_eq!(disable(pfctl).to_string(), "/sbin/pfctl -d");
        assert_eq!(show_cmd(pfctl, "nat").to_string(), "/sbin/pfctl -s nat");
        let nat =
            vec!["nat on vtnet0 inet from 10.0.1.0/24 to any -> (vtnet0) round-robin".to_string()];
        let rules = vec![
            "pass out on vtnet0 inet from 10.0.2.0/24 to any flags S/SA keep state nat-to (vtnet0)"
                .to_string(),
        ];
        let nets = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(translates_all(&nat, &[], &nets(&["10.0.1.0/24"])));
        assert!(!translates_all(
            &nat,
            &[],
            &nets(&["10.0.1.0/24", "10.0.2.0/24"])
        ));
        assert!(translates_all(
            &nat,
            &rules,
            &nets(&["10.0.1.0/24", "10.0.2.0/24"])
        ));
        assert!(!translates_all(&nat, &rules, &nets(&["10.0.3.0/24"])));
        assert!(translates_all(&[], &[], &[]));
    }

    #[test]
    fn status_line() {
        assert!(parse_enabled(
            "Status: Enabled for 0 days 00:26:05           Debug: Urgent\n"
        ));
        assert!(!parse_enabled(
            "Status: Disabled for 0 days 00:00:00          Debug: Urgent\n"
        ));
        assert!(!parse_enabled(""));
    }
}
