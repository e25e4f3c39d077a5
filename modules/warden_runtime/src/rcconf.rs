//! The one rc.conf reader. rc.conf is sh(1) source read with `.`; FreeBSD's `sysrc` and
//! `load_rc_config` both take the **last** assignment of a name as its value
//! (usr.sbin/bsdconfig/share/sysrc.subr `f_sysrc_find`/`f_sysrc_get`). This reader understands
//! the assignments rc.conf holds in practice — bare words, single and double quotes,
//! backslash escapes, several assignments on a line, comments — and marks values that need
//! the shell to evaluate (`$var`, `$(cmd)`, backticks) as [`RcValue::Dynamic`], so a module
//! never mistakes them for literal text. Writes never happen here: they go through `sysrc`.

use std::path::Path;

use anyhow::{Context, Result};

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
        match crate::fs::read_state(path)
            .with_context(|| format!("cannot read {}", path.display()))?
        {
            Some(state) => Ok(RcConf::parse(&String::from_utf8_lossy(&state.content))),
            None => Ok(RcConf::default()),
        }
    }

    pub fn parse(text: &str) -> RcConf {
        Parser::new(text).run()
    }

    /// The effective value of `name`: its last assignment.
    pub fn get(&self, name: &str) -> Option<&RcValue> {
        self.assignments
            .iter()
            .rev()
            .find(|a| a.name == name)
            .map(|a| &a.value)
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

/// rc.subr's `checkyesno`: yes/true/on/1 in any case.
pub fn is_yes(value: &str) -> bool {
    matches!(
        value.to_ascii_lowercase().as_str(),
        "yes" | "true" | "on" | "1"
    )
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    line: usize,
    out: Vec<Assignment>,
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
            match self.assignment_name() {
                Some(name) => {
                    let value = self.word();
                    self.out.push(Assignment { name, value, line });
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

    fn lit(s: &str) -> RcValue {
        RcValue::Literal(s.into())
    }

    #[test]
    fn last_assignment_wins_as_in_sysrc() {
        // The file freebsd-real-outputs.md section 4 edits (G5/G6).
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
}
