//! The one rc.conf reader. rc.conf is sh(1) source read with `.`; FreeBSD's `sysrc` and
//! `load_rc_config` both take the **last** assignment of a name as its value
//! (usr.sbin/bsdconfig/share/sysrc.subr `f_sysrc_find`/`f_sysrc_get`). This reader understands
//! the assignments rc.conf holds in practice — bare words, single and double quotes,
//! backslash escapes, several assignments on a line, comments — and marks values that need
//! the shell to evaluate (`$var`, `$(cmd)`, backticks) as [`RcValue::Dynamic`], so a module
//! never mistakes them for literal text. Writes never happen here: they go through `sysrc`.
//!
//! At boot rc.conf is a chain of files ([`RcChain`], docs/freebsd-facts.md §8): rc.subr's
//! `load_rc_config <service>` sources /etc/defaults/rc.conf, then `source_rc_confs` (every
//! file of `rc_conf_files`, default `/etc/rc.conf /etc/rc.conf.local`; libexec/rc/rc.conf),
//! then `<dir>/rc.conf.d/<service>` for `/etc` and each `local_startup` directory — a file,
//! or every file in it when it is a directory (libexec/rc/rc.subr `load_rc_config`). A
//! later file silently overrides an earlier one, so the chain reports each effective value
//! with the file that holds it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::fs as wfs;

/// A value as sh would see it, when that can be known without running sh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcValue {
    Literal(String),
    /// Needs expansion by sh; holds the raw source text of the value.
    Dynamic(String),
}

impl RcValue {
    pub fn literal(&self) -> Option<&str> {
        match self {
            RcValue::Literal(s) => Some(s),
            RcValue::Dynamic(_) => None,
        }
    }
}

/// One `name=value` assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub name: String,
    pub value: RcValue,
    /// 1-based line where the assignment starts.
    pub line: usize,
    /// The assignment starts its line (after blanks): the lines sysrc edits and deletes
    /// match `^[[:space:]]*name=` (sysrc.subr `f_sysrc_set_awk`, `f_sysrc_delete_awk`).
    pub at_line_start: bool,
}

/// The assignments of one rc.conf-style file, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RcConf {
    pub assignments: Vec<Assignment>,
}

impl RcConf {
    /// Reads a file; a missing file reads as empty, like `sysrc -f` on a new file. Read
    /// through `fs` (no links, regular files only, size cap): a jail's rc.conf is the
    /// jail's root's to plant.
    pub fn read(path: &Path) -> Result<RcConf> {
        match wfs::read_state(path).with_context(|| format!("cannot read {}", path.display()))? {
            Some(state) => Ok(RcConf::parse(&String::from_utf8_lossy(&state.content))),
            None => Ok(RcConf::default()),
        }
    }

    pub fn parse(text: &str) -> RcConf {
        Parser::new(text).run()
    }

    /// The effective value of `name`: its last assignment.
    pub fn get(&self, name: &str) -> Option<&RcValue> {
        self.last(name).map(|a| &a.value)
    }

    /// The last assignment of `name`.
    pub fn last(&self, name: &str) -> Option<&Assignment> {
        self.assignments.iter().rev().find(|a| a.name == name)
    }

    /// Why `sysrc -f <this file> name=…` would not change the effective value, if it
    /// would not: sysrc edits the last line that *starts* with `name=`, or appends when no
    /// line does, so a later assignment in the middle of a line would still win.
    pub fn set_blocker(&self, name: &str) -> Option<&Assignment> {
        let last = self.last(name)?;
        let any_at_start = self
            .assignments
            .iter()
            .any(|a| a.name == name && a.at_line_start);
        (!last.at_line_start && any_at_start).then_some(last)
    }

    /// Why `sysrc -f <this file> -x name` would not remove `name` cleanly, if it would
    /// not: it deletes whole lines starting with `name=`, so an assignment later on a line
    /// stays, and other assignments on a deleted line go with it.
    pub fn delete_blocker(&self, name: &str) -> Option<&Assignment> {
        self.assignments.iter().find(|a| {
            a.name == name
                && (!a.at_line_start
                    || self
                        .assignments
                        .iter()
                        .any(|b| b.line == a.line && b.name != name))
        })
    }

    /// Effective values of all names starting with `prefix`, in first-assignment order.
    pub fn with_prefix<'a>(&'a self, prefix: &'a str) -> Vec<(&'a str, &'a RcValue)> {
        let mut names: Vec<&str> = Vec::new();
        for a in &self.assignments {
            if a.name.starts_with(prefix) && !names.contains(&a.name.as_str()) {
                names.push(&a.name);
            }
        }
        names
            .into_iter()
            .filter_map(|n| self.get(n).map(|v| (n, v)))
            .collect()
    }
}

/// Reading rc.conf values: one file ([`RcConf`]) or the boot-time chain ([`RcChain`]).
pub trait RcLookup {
    /// The effective value of `name`.
    fn lookup(&self, name: &str) -> Option<&RcValue>;
    /// Names assigned anywhere that start with `prefix`, each once, in first-seen order.
    fn names_with_prefix(&self, prefix: &str) -> Vec<String>;
}

impl RcLookup for RcConf {
    fn lookup(&self, name: &str) -> Option<&RcValue> {
        self.get(name)
    }
    fn names_with_prefix(&self, prefix: &str) -> Vec<String> {
        self.with_prefix(prefix)
            .into_iter()
            .map(|(n, _)| n.to_string())
            .collect()
    }
}

/// FreeBSD's `rc_conf_files` default (libexec/rc/rc.conf).
pub const RC_CONF: &str = "/etc/rc.conf";
pub const RC_CONF_LOCAL: &str = "/etc/rc.conf.local";
/// `/etc/rc.conf.d` and, for the default `local_startup="/usr/local/etc/rc.d"`,
/// `/usr/local/etc/rc.conf.d` (rc.subr `load_rc_config`: `${_d%/rc.d}/rc.conf.d`).
pub const RC_CONF_D: [&str; 2] = ["/etc/rc.conf.d", "/usr/local/etc/rc.conf.d"];
const DEFAULT_LOCAL_STARTUP: &str = "/usr/local/etc/rc.d";

/// Where a host's rc.conf chain lives (module parameters `rc_conf`, `rc_conf_local`,
/// `rc_conf_d`, FreeBSD's paths by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcFiles {
    pub rc_conf: PathBuf,
    pub rc_conf_local: PathBuf,
    pub rc_conf_d: Vec<PathBuf>,
}

impl RcFiles {
    pub fn new(rc_conf: &str, rc_conf_local: &str, rc_conf_d: &[String]) -> RcFiles {
        RcFiles {
            rc_conf: rc_conf.into(),
            rc_conf_local: rc_conf_local.into(),
            rc_conf_d: rc_conf_d.iter().map(PathBuf::from).collect(),
        }
    }
}

impl Default for RcFiles {
    fn default() -> Self {
        RcFiles {
            rc_conf: RC_CONF.into(),
            rc_conf_local: RC_CONF_LOCAL.into(),
            rc_conf_d: RC_CONF_D.iter().map(PathBuf::from).collect(),
        }
    }
}

/// One file of the chain as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcSource {
    pub path: PathBuf,
    pub conf: RcConf,
}

/// The files `load_rc_config` sources for some services, in order, read once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcChain {
    pub sources: Vec<RcSource>,
    /// The file sysrc appends new variables to (the first of `rc_conf_files`).
    pub primary: PathBuf,
}

impl RcChain {
    /// A chain of one file (a jail's rc.conf, or a caller that chose the file).
    pub fn single(path: &Path, conf: RcConf) -> RcChain {
        RcChain {
            sources: vec![RcSource {
                path: path.to_owned(),
                conf,
            }],
            primary: path.to_owned(),
        }
    }

    /// What rc.d scripts that call `load_rc_config` for each of `services` (in that order,
    /// as rc.d/netif does with `network` then `netif`) see: rc.conf, rc.conf.local, then
    /// `<dir>/rc.conf.d/<service>` (a file, or each file in that directory) for every
    /// directory of `rc_conf_d`. Missing files read as empty. A chain this reader cannot
    /// follow — `rc_conf_files` naming more files, or a `local_startup` other than the
    /// default — is refused, naming the file and the variable.
    pub fn read(files: &RcFiles, services: &[&str]) -> Result<RcChain> {
        let mut sources = Vec::new();
        for path in [&files.rc_conf, &files.rc_conf_local] {
            sources.push(RcSource {
                path: path.clone(),
                conf: RcConf::read(path)?,
            });
        }
        for service in services {
            for dir in &files.rc_conf_d {
                let path = dir.join(service);
                match wfs::dir_entries(&path)? {
                    Some(entries) => {
                        for entry in entries {
                            // `[ -f "$_rc" ]`: regular files only.
                            if let Ok(Some(state)) = wfs::read_state(&entry) {
                                sources.push(RcSource {
                                    path: entry,
                                    conf: RcConf::parse(&String::from_utf8_lossy(&state.content)),
                                });
                            }
                        }
                    }
                    None => {
                        if let Some(state) = wfs::read_state(&path)? {
                            sources.push(RcSource {
                                path,
                                conf: RcConf::parse(&String::from_utf8_lossy(&state.content)),
                            });
                        }
                    }
                }
            }
        }
        let chain = RcChain {
            sources,
            primary: files.rc_conf.clone(),
        };
        chain.check_followable()?;
        Ok(chain)
    }

    fn check_followable(&self) -> Result<()> {
        if let Some((value, file)) = self.get_with_file("rc_conf_files") {
            let known = [RC_CONF, RC_CONF_LOCAL];
            let extra: Vec<&str> = match value {
                RcValue::Literal(v) => v
                    .split_whitespace()
                    .filter(|w| !known.contains(w))
                    .collect(),
                RcValue::Dynamic(raw) => vec![raw.as_str()],
            };
            if !extra.is_empty() {
                bail!(
                    "{} sets rc_conf_files to read {} as well; warden follows only {RC_CONF} and {RC_CONF_LOCAL} (rc_conf and rc_conf_local), so it cannot tell which value takes effect at boot",
                    file.display(),
                    extra.join(" ")
                );
            }
        }
        if let Some((value, file)) = self.get_with_file("local_startup") {
            if value
                .literal()
                .map(|v| v.split_whitespace().collect::<Vec<_>>())
                != Some(vec![DEFAULT_LOCAL_STARTUP])
            {
                bail!(
                    "{} sets local_startup, so load_rc_config also reads rc.conf.d files next to those directories; warden follows only the default ({DEFAULT_LOCAL_STARTUP}, whose settings live in the rc_conf_d directories)",
                    file.display()
                );
            }
        }
        Ok(())
    }

    /// The effective value of `name` and the file holding that last assignment.
    pub fn get_with_file(&self, name: &str) -> Option<(&RcValue, &Path)> {
        self.sources
            .iter()
            .rev()
            .find_map(|s| s.conf.get(name).map(|v| (v, s.path.as_path())))
    }

    /// The file holding the effective assignment of `name`.
    pub fn holder(&self, name: &str) -> Option<&RcSource> {
        self.sources
            .iter()
            .rev()
            .find(|s| s.conf.get(name).is_some())
    }

    /// Every file that assigns `name`, in chain order.
    pub fn holders(&self, name: &str) -> Vec<&RcSource> {
        self.sources
            .iter()
            .filter(|s| s.conf.get(name).is_some())
            .collect()
    }

    /// The file of the chain at `path`, if it is one.
    pub fn source(&self, path: &Path) -> Option<&RcSource> {
        self.sources.iter().find(|s| s.path == path)
    }

    /// `name` and the file holding its effective value, for messages:
    /// `ifconfig_warden0 (in /etc/rc.conf.local)`.
    pub fn describe(&self, name: &str) -> String {
        match self.get_with_file(name) {
            Some((_, file)) => format!("{name} (in {})", file.display()),
            None => name.to_string(),
        }
    }
}

impl RcLookup for RcChain {
    fn lookup(&self, name: &str) -> Option<&RcValue> {
        self.get_with_file(name).map(|(v, _)| v)
    }
    fn names_with_prefix(&self, prefix: &str) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for source in &self.sources {
            for a in &source.conf.assignments {
                if a.name.starts_with(prefix) && !names.contains(&a.name) {
                    names.push(a.name.clone());
                }
            }
        }
        names
    }
}

/// rc.subr's `checkyesno`: yes/true/on/1 in any case.
pub fn is_yes(value: &str) -> bool {
    matches!(
        value.to_ascii_lowercase().as_str(),
        "yes" | "true" | "on" | "1"
    )
}

/// A word list an rc.d script reads (`network_interfaces`, Bastille's `bastille_list`) with
/// `word` added at its end, or `None` when it holds it already. What counts as "every one"
/// (netif's whole-value AUTO, Bastille's word ALL) differs per script, so the caller checks.
pub fn list_adding(list: &str, word: &str) -> Option<String> {
    let mut words: Vec<&str> = list.split_whitespace().collect();
    if words.contains(&word) {
        return None;
    }
    words.push(word);
    Some(words.join(" "))
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    line: usize,
    out: Vec<Assignment>,
}

impl Parser {
    /// Only blanks between the start of the current line and `pos`.
    fn at_line_start(&self) -> bool {
        self.chars[..self.pos]
            .iter()
            .rev()
            .take_while(|c| **c != '\n')
            .all(|c| *c == ' ' || *c == '\t')
    }
}

impl Parser {
    fn new(text: &str) -> Self {
        Parser {
            chars: text.chars().collect(),
            pos: 0,
            line: 1,
            out: Vec::new(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn run(mut self) -> RcConf {
        while self.peek().is_some() {
            self.statement();
        }
        RcConf {
            assignments: self.out,
        }
    }

    /// One simple command: leading assignments, then whatever follows up to `;` or newline.
    fn statement(&mut self) {
        loop {
            self.skip_blanks();
            match self.peek() {
                None => return,
                Some('\n') | Some(';') | Some('&') | Some('|') => {
                    self.bump();
                    return;
                }
                Some('#') => {
                    self.skip_to_eol();
                    return;
                }
                _ => {}
            }
            if self.reserved_word() {
                continue;
            }
            let line = self.line;
            let at_line_start = self.at_line_start();
            match self.assignment_name() {
                Some(name) => {
                    let value = self.word();
                    self.out.push(Assignment {
                        name,
                        value,
                        line,
                        at_line_start,
                    });
                }
                None => {
                    // A command word: not an assignment; skip the rest of it.
                    self.skip_command();
                    return;
                }
            }
        }
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(' ') | Some('\t')) {
            self.bump();
        }
        // Line continuation between words.
        if self.peek() == Some('\\') && self.chars.get(self.pos + 1) == Some(&'\n') {
            self.bump();
            self.bump();
            self.skip_blanks();
        }
    }

    fn skip_to_eol(&mut self) {
        while let Some(c) = self.bump() {
            if c == '\n' {
                break;
            }
        }
    }

    fn skip_command(&mut self) {
        // Consume words (quotes included) until an unquoted ; or newline.
        loop {
            match self.peek() {
                None => return,
                // `&&`, `||`, `&` and `|` end a simple command like `;` does.
                Some('\n') | Some(';') | Some('&') | Some('|') => {
                    self.bump();
                    return;
                }
                Some(' ') | Some('\t') => self.skip_blanks(),
                Some('#') => {
                    self.skip_to_eol();
                    return;
                }
                _ => {
                    // Redirections and parentheses are not words: step over them, or
                    // this loop would never advance.
                    let before = self.pos;
                    self.word();
                    if self.pos == before {
                        self.bump();
                    }
                }
            }
        }
    }

    /// A reserved word that may precede a command (`then d=4`): consumes it.
    fn reserved_word(&mut self) -> bool {
        for word in [
            "then", "else", "elif", "if", "do", "while", "until", "{", "!",
        ] {
            let len = word.chars().count();
            let matches = self.chars.len() >= self.pos + len
                && self.chars[self.pos..self.pos + len]
                    .iter()
                    .copied()
                    .eq(word.chars())
                && matches!(
                    self.chars.get(self.pos + len),
                    Some(' ') | Some('\t') | Some('\n') | None
                );
            if matches {
                self.pos += len;
                return true;
            }
        }
        false
    }

    /// `NAME=` at the current position: consumes it and returns the name.
    fn assignment_name(&mut self) -> Option<String> {
        let start = self.pos;
        let mut end = start;
        while let Some(&c) = self.chars.get(end) {
            let ok = if end == start {
                c.is_ascii_alphabetic() || c == '_'
            } else {
                c.is_ascii_alphanumeric() || c == '_'
            };
            if !ok {
                break;
            }
            end += 1;
        }
        if end > start && self.chars.get(end) == Some(&'=') {
            let name: String = self.chars[start..end].iter().collect();
            self.pos = end + 1;
            Some(name)
        } else {
            None
        }
    }

    /// One sh word starting at the current position.
    fn word(&mut self) -> RcValue {
        let start = self.pos;
        let mut text = String::new();
        let mut dynamic = false;
        while let Some(c) = self.peek() {
            match c {
                ' ' | '\t' | '\n' | ';' | '&' | '|' | '<' | '>' | '(' | ')' => break,
                '\'' => {
                    self.bump();
                    loop {
                        match self.bump() {
                            Some('\'') => break,
                            Some(c) => text.push(c),
                            None => {
                                dynamic = true;
                                break;
                            }
                        }
                    }
                }
                '"' => {
                    self.bump();
                    loop {
                        match self.bump() {
                            Some('"') => break,
                            Some('\\') => match self.bump() {
                                Some('\n') => {}
                                Some(e @ ('$' | '`' | '"' | '\\')) => text.push(e),
                                Some(e) => {
                                    text.push('\\');
                                    text.push(e);
                                }
                                None => {
                                    dynamic = true;
                                    break;
                                }
                            },
                            Some('$') | Some('`') => {
                                dynamic = true;
                            }
                            Some(c) => text.push(c),
                            None => {
                                dynamic = true;
                                break;
                            }
                        }
                    }
                }
                '\\' => {
                    self.bump();
                    match self.bump() {
                        Some('\n') | None => {}
                        Some(e) => text.push(e),
                    }
                }
                '$' | '`' => {
                    dynamic = true;
                    self.bump();
                    // Keep going to find the end of the word; `$(...)` may hold blanks.
                    if c == '$' && self.peek() == Some('(') {
                        self.skip_balanced_parens();
                    } else if c == '`' {
                        while let Some(n) = self.bump() {
                            if n == '`' {
                                break;
                            }
                        }
                    }
                }
                c => {
                    text.push(c);
                    self.bump();
                }
            }
        }
        if dynamic {
            RcValue::Dynamic(self.chars[start..self.pos].iter().collect())
        } else {
            RcValue::Literal(text)
        }
    }

    fn skip_balanced_parens(&mut self) {
        let mut depth = 0usize;
        while let Some(c) = self.bump() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return;
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_word_is_added_to_a_list_once() {
        assert_eq!(list_adding("", "warden0").as_deref(), Some("warden0"));
        assert_eq!(
            list_adding(" lo0  vtnet0 ", "warden0").as_deref(),
            Some("lo0 vtnet0 warden0")
        );
        assert_eq!(list_adding("lo0 warden0", "warden0"), None);
        assert_eq!(
            list_adding("warden01", "warden0").as_deref(),
            Some("warden01 warden0")
        );
    }

    fn lit(s: &str) -> RcValue {
        RcValue::Literal(s.into())
    }

    #[test]
    fn last_assignment_wins_as_in_sysrc() {
        // The file real sysrc 7.2 edited in docs/freebsd-facts.md §3.4 (G5/G6).
        let rc = RcConf::parse(
            "# header\nmevy_enable='NO' # single quoted\n#mevy_enable=\"commented\"\n  mevy_flags=\"-a\"   # indented\nmevy_enable=\"YES\"\nother=1\n",
        );
        assert_eq!(rc.get("mevy_enable"), Some(&lit("YES")));
        assert_eq!(rc.get("mevy_flags"), Some(&lit("-a")));
        assert_eq!(rc.get("other"), Some(&lit("1")));
        assert_eq!(rc.get("nosuch"), None);
        assert_eq!(rc.assignments.len(), 4, "{:?}", rc.assignments);
        assert_eq!(rc.assignments[1].line, 4);
    }

    #[test]
    fn quoting_forms() {
        let rc = RcConf::parse(concat!(
            "a=\"say \\\"hi\\\"\"\n",
            "b='it'\\''s'\n",
            "c=plain   # unquoted\n",
            "d=\n",
            "e=\"\"\n",
            "f=\"multi\nline\"\n",
            "g=one\\ word\n",
            "h=\"a\\tb\"\n",
        ));
        assert_eq!(rc.get("a"), Some(&lit("say \"hi\"")));
        assert_eq!(rc.get("b"), Some(&lit("it's")));
        assert_eq!(rc.get("c"), Some(&lit("plain")));
        assert_eq!(rc.get("d"), Some(&lit("")));
        assert_eq!(rc.get("e"), Some(&lit("")));
        assert_eq!(rc.get("f"), Some(&lit("multi\nline")));
        assert_eq!(rc.get("g"), Some(&lit("one word")));
        assert_eq!(rc.get("h"), Some(&lit("a\\tb")));
    }

    #[test]
    fn expansions_are_dynamic() {
        let rc = RcConf::parse("x=$(hostname)\ny=\"${a}/b\"\nz=`id -u`\nw=\"lit\"\n");
        assert_eq!(rc.get("x"), Some(&RcValue::Dynamic("$(hostname)".into())));
        assert_eq!(rc.get("y"), Some(&RcValue::Dynamic("\"${a}/b\"".into())));
        assert!(matches!(rc.get("z"), Some(RcValue::Dynamic(_))));
        assert_eq!(rc.get("w"), Some(&lit("lit")));
    }

    #[test]
    fn several_assignments_and_commands() {
        let rc = RcConf::parse("a=1 b=2; c=3\nif [ -x x ]; then d=4; fi\necho e=5\n");
        assert_eq!(rc.get("a"), Some(&lit("1")));
        assert_eq!(rc.get("b"), Some(&lit("2")));
        assert_eq!(rc.get("c"), Some(&lit("3")));
        assert_eq!(rc.get("d"), Some(&lit("4")));
        // An argument of a command is not an assignment.
        assert_eq!(rc.get("e"), None);
    }

    #[test]
    fn unterminated_quote_is_dynamic_not_a_panic() {
        let rc = RcConf::parse("x=\"unterminated\ny=1\n");
        assert!(matches!(rc.get("x"), Some(RcValue::Dynamic(_))));
        for text in ["'", "\"", "a='", "a=\"\\", "a=$(", "a=`", "\\", "=", "a==b"] {
            RcConf::parse(text);
        }
    }

    #[test]
    fn prefix_listing_follows_file_order() {
        let rc = RcConf::parse("ifconfig_w_alias1=x\nifconfig_w_alias0=y\nifconfig_w_alias1=z\n");
        let got: Vec<_> = rc
            .with_prefix("ifconfig_w_alias")
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.literal().unwrap().to_string()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("ifconfig_w_alias1".to_string(), "z".to_string()),
                ("ifconfig_w_alias0".to_string(), "y".to_string())
            ]
        );
    }

    #[test]
    fn checkyesno() {
        for yes in ["YES", "yes", "True", "on", "1"] {
            assert!(is_yes(yes));
        }
        for no in ["NO", "", "maybe", "0", "off"] {
            assert!(!is_yes(no));
        }
    }

    #[test]
    fn missing_file_reads_as_empty() {
        assert_eq!(
            RcConf::read(Path::new("/nonexistent/rc.conf")).unwrap(),
            RcConf::default()
        );
    }

    #[test]
    fn operators_end_commands_and_never_stall_the_reader() {
        // Found by the property tests: these used to loop forever.
        let rc = RcConf::parse(
            "a=1 && b=2\n(x) > /dev/null\n[ -n x ] || c=3 | d=4 & e=5\n<in f=6\ng=7\n",
        );
        for (name, value) in [
            ("a", "1"),
            ("b", "2"),
            ("c", "3"),
            ("d", "4"),
            ("e", "5"),
            ("g", "7"),
        ] {
            assert_eq!(rc.get(name), Some(&lit(value)), "{name}");
        }
    }

    fn chain_host() -> (tempfile::TempDir, RcFiles) {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("etc/rc.conf.d/netif")).unwrap();
        std::fs::create_dir_all(d.join("usr/local/etc/rc.conf.d")).unwrap();
        let files = RcFiles {
            rc_conf: d.join("etc/rc.conf"),
            rc_conf_local: d.join("etc/rc.conf.local"),
            rc_conf_d: vec![d.join("etc/rc.conf.d"), d.join("usr/local/etc/rc.conf.d")],
        };
        (dir, files)
    }

    #[test]
    fn rc_conf_chain_reports_the_effective_value_and_its_file() {
        // Gap 4 of issue 13: a later file silently overrides rc.conf at boot.
        let (dir, files) = chain_host();
        let d = dir.path();
        std::fs::write(&files.rc_conf, "a=\"1\"\nb=\"1\"\nc=\"1\"\nd=\"1\"\n").unwrap();
        std::fs::write(&files.rc_conf_local, "b=\"local\"\n").unwrap();
        std::fs::write(d.join("etc/rc.conf.d/network"), "c=\"network\"\n").unwrap();
        std::fs::write(d.join("etc/rc.conf.d/netif/z"), "d=\"netif-z\"\n").unwrap();
        std::fs::write(d.join("etc/rc.conf.d/netif/a"), "d=\"netif-a\"\ne=\"1\"\n").unwrap();
        std::fs::write(
            d.join("usr/local/etc/rc.conf.d/network"),
            "e=\"local-network\"\n",
        )
        .unwrap();
        let chain = RcChain::read(&files, &["network", "netif"]).unwrap();
        let at = |name: &str| {
            chain
                .get_with_file(name)
                .map(|(v, f)| (v.literal().unwrap().to_string(), f.to_path_buf()))
        };
        assert_eq!(at("a"), Some(("1".into(), files.rc_conf.clone())));
        assert_eq!(at("b"), Some(("local".into(), files.rc_conf_local.clone())));
        assert_eq!(
            at("c"),
            Some(("network".into(), d.join("etc/rc.conf.d/network")))
        );
        // rc.conf.d/netif is a directory: each file in it, in name order, after network.
        assert_eq!(
            at("d"),
            Some(("netif-z".into(), d.join("etc/rc.conf.d/netif/z")))
        );
        // load_rc_config network reads /usr/local/etc/rc.conf.d/network before netif's files.
        assert_eq!(at("e"), Some(("1".into(), d.join("etc/rc.conf.d/netif/a"))));
        assert_eq!(chain.holders("d").len(), 3);
        assert_eq!(chain.lookup("nosuch"), None);
        // Another service does not see netif's files.
        let pf = RcChain::read(&files, &["pf"]).unwrap();
        assert_eq!(pf.lookup("c"), Some(&lit("1")));
        assert_eq!(pf.sources.len(), 2);
    }

    #[test]
    fn rc_conf_chain_it_cannot_follow_is_refused() {
        let (_dir, files) = chain_host();
        std::fs::write(
            &files.rc_conf,
            "rc_conf_files=\"/etc/rc.conf /etc/rc.conf.local /etc/rc.conf.site\"\n",
        )
        .unwrap();
        let err = RcChain::read(&files, &[]).unwrap_err().to_string();
        assert!(
            err.contains("rc_conf_files") && err.contains("/etc/rc.conf.site"),
            "{err}"
        );
        std::fs::write(&files.rc_conf, "rc_conf_files=\"/etc/rc.conf\"\n").unwrap();
        assert!(RcChain::read(&files, &[]).is_ok());
        std::fs::write(
            &files.rc_conf_local,
            "local_startup=\"/usr/local/etc/rc.d /opt/rc.d\"\n",
        )
        .unwrap();
        let err = RcChain::read(&files, &[]).unwrap_err().to_string();
        assert!(
            err.contains("local_startup") && err.contains("rc.conf.local"),
            "{err}"
        );
    }

    #[test]
    fn sysrc_blockers() {
        let rc = RcConf::parse("a=1\nb=2 a=3\nc=4 d=5\n  e=6 # x\n");
        assert_eq!(rc.set_blocker("a").map(|x| x.line), Some(2));
        assert_eq!(rc.set_blocker("e"), None);
        // Only mid-line assignments: sysrc appends, and the appended line wins.
        assert_eq!(rc.set_blocker("d"), None);
        assert_eq!(rc.delete_blocker("c").map(|x| x.line), Some(3));
        assert_eq!(rc.delete_blocker("a").map(|x| x.line), Some(2));
        assert_eq!(rc.delete_blocker("e"), None);
        assert!(rc.assignments[0].at_line_start && !rc.assignments[2].at_line_start);
    }
}
