//! `pfctl(8)` and pf.conf facts the modules rely on (sbin/pfctl/pfctl.c, parse.y,
//! pfctl_parser.c; docs/freebsd-facts.md §4):
//! * `pfctl -nf <file>` parses and checks a ruleset without loading it; errors are
//!   `file:line: message` lines on stderr, exit 1;
//! * `pfctl -f <file>` replaces the main ruleset atomically; `-e`/`-d` enable/disable PF
//!   (`pfctl: pf already enabled` exits 1, so enabling is planned from `-s info`);
//! * `-s info` starts with `Status: Enabled …` or `Status: Disabled …`;
//! * `-s nat` prints the loaded NAT rules normalized, one per address of a list
//!   (`nat on vtnet0 inet from 10.0.1.0/24 to any -> (vtnet0) round-robin`);
//! * statement order (options, normalization, queueing, translation, filtering) is enforced,
//!   so an included file holding `nat` and `pass` belongs right before the first filter rule.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::exec::{Cmd, CommandError};
use crate::fs::{self, Attrs, FileState};
use crate::plan::Step;

/// `pfctl -s info` → whether PF is enabled.
pub fn is_enabled(pfctl: &Path) -> Result<bool> {
    let out = Cmd::new(pfctl).args(["-s", "info"]).run()?;
    Ok(parse_enabled(&out.stdout))
}

pub fn parse_enabled(info: &str) -> bool {
    info.lines()
        .next()
        .is_some_and(|l| l.starts_with("Status: Enabled"))
}

/// `pfctl -s nat` → the loaded NAT rules, one per line.
pub fn nat_rules(pfctl: &Path) -> Result<Vec<String>> {
    let out = Cmd::new(pfctl).args(["-s", "nat"]).run()?;
    Ok(out
        .stdout
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect())
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
}

impl LoadRuleset {
    fn load(&self) -> Cmd {
        Cmd::new(&self.pfctl).arg("-f").arg(&self.main)
    }

    /// Checks the candidates without touching the live files.
    fn validate(&self) -> Result<()> {
        // The main file always takes part, so it includes the candidate include files.
        let mut candidates: Vec<RulesetFile> = self.files.clone();
        if !candidates.iter().any(|f| f.path == self.main) {
            let content = std::fs::read_to_string(&self.main)
                .with_context(|| format!("cannot read {}", self.main.display()))?;
            candidates.push(RulesetFile {
                path: self.main.clone(),
                content,
                previous: None,
            });
        }
        let mut temps = Vec::new();
        for file in &candidates {
            let dir = file
                .path
                .parent()
                .context("ruleset file without a directory")?;
            let name = file
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let temp = tempfile::Builder::new()
                .prefix(&format!(".{name}.warden-check-"))
                .tempfile_in(dir)
                .with_context(|| {
                    format!("cannot write a candidate next to {}", file.path.display())
                })?;
            temps.push((file, temp));
        }
        let candidate_path = |path: &Path| -> PathBuf {
            temps
                .iter()
                .find(|(f, _)| f.path == path)
                .map(|(_, t)| t.path().to_owned())
                .unwrap_or_else(|| path.to_owned())
        };
        for (file, temp) in &temps {
            let mut content = file.content.clone();
            // Point the candidate at the other candidates.
            for (other, other_temp) in &temps {
                content = content.replace(
                    &format!("include \"{}\"", other.path.display()),
                    &format!("include \"{}\"", other_temp.path().display()),
                );
            }
            std::fs::write(temp.path(), content)?;
        }
        let main = candidate_path(&self.main);
        let out = Cmd::new(&self.pfctl).arg("-nf").arg(&main).output()?;
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
    fn apply(&mut self) -> Result<()> {
        if !self.files.is_empty() {
            self.validate()?;
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
