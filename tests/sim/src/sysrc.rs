//! Simulated `sysrc(8)` (version 7.2, FreeBSD 13/14). Values are evaluated the way the real
//! tool does it — by sourcing the defaults and the rc.conf files in `/bin/sh` with an empty
//! environment and `PATH` unset (sysrc.subr `f_sysrc_get`) — so quoting, last-assignment and
//! expansion semantics come from a real shell, independent of the modules' own reader.
//!
//! Edits follow sysrc.subr `f_sysrc_set`/`f_sysrc_delete` (freebsd/freebsd-src
//! usr.sbin/bsdconfig/share/sysrc.subr) and the verbatim outputs recorded from the real tool:
//! * a new variable is appended as `name="value"` to the first file, unescaped, unchecked;
//! * an existing one is changed in its **last** assignment in the file that holds it, keeping
//!   the quote style and whatever follows the value; values starting with `` ` ``, `$` or `\`
//!   are left alone and a new assignment is appended; the result must pass `sh -n`;
//! * `-x` deletes every assignment in every file; mode and owner are kept;
//! * output lines `name: old -> new`, `-n`, `-e`, `-v`, `-c`, `-i`/`-q` as recorded;
//! * `sysrc: unknown variable 'x'` (exit 1), `sysrc: x.y: name contains characters not
//!   allowed in shell` (exit 1), `sysrc: Exiting due to previous syntax errors` (exit 1).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::dispatch::{Out, SIM_FAILURE};

const USAGE: &str = "Usage: sysrc [OPTIONS] {name[[+|-]=value] ... | -a | -A | -l | -L [name ...]}\nTry `sysrc --help' for more information.\n";

#[derive(Default)]
struct Opts {
    files: Vec<PathBuf>,
    explicit_files: bool,
    value_only: bool,
    delete: bool,
    check: bool,
    show_equals: bool,
    verbose: bool,
    quiet: bool,
    ignore_unknown: bool,
}

pub fn run(root: &Path, args: &[String]) -> Out {
    let mut opts = Opts::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg == "--" {
            i += 1;
            break;
        }
        let Some(flags) = arg.strip_prefix('-').filter(|f| !f.is_empty()) else {
            break;
        };
        let chars: Vec<char> = flags.chars().collect();
        let mut k = 0;
        while k < chars.len() {
            match chars[k] {
                'f' => {
                    let rest: String = chars[k + 1..].iter().collect();
                    let file = if rest.is_empty() {
                        i += 1;
                        match args.get(i) {
                            Some(f) => f.clone(),
                            None => return Out::err(1, USAGE),
                        }
                    } else {
                        rest
                    };
                    opts.files.push(PathBuf::from(file));
                    opts.explicit_files = true;
                    k = chars.len();
                    continue;
                }
                'n' => opts.value_only = true,
                'x' => opts.delete = true,
                'c' => opts.check = true,
                'e' => opts.show_equals = true,
                'v' => opts.verbose = true,
                'q' => opts.quiet = true,
                'i' => opts.ignore_unknown = true,
                other => {
                    return Out::err(
                        SIM_FAILURE,
                        format!("freebsd-sim: sysrc option -{other} is not simulated\n"),
                    )
                }
            }
            k += 1;
        }
        i += 1;
    }
    let operands = &args[i.min(args.len())..];
    if operands.is_empty() {
        return Out::err(1, USAGE);
    }
    if !opts.explicit_files {
        opts.files = vec![root.join("etc/rc.conf"), root.join("etc/rc.conf.local")];
    }
    let defaults = root.join("etc/defaults/rc.conf");
    let ctx = Ctx {
        opts: &opts,
        defaults: &defaults,
    };
    operands.iter().fold(Out::default(), |acc, operand| {
        acc.then(ctx.operand(operand))
    })
}

struct Ctx<'a> {
    opts: &'a Opts,
    defaults: &'a Path,
}

/// How an operand changes a variable.
enum Op<'a> {
    Query,
    Set(&'a str),
    Append(&'a str),
    Remove(&'a str),
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Ctx<'_> {
    fn operand(&self, operand: &str) -> Out {
        let (name, op) = match operand.split_once('=') {
            None => (operand, Op::Query),
            Some((n, v)) if n.ends_with('+') => (&n[..n.len() - 1], Op::Append(v)),
            Some((n, v)) if n.ends_with('-') => (&n[..n.len() - 1], Op::Remove(v)),
            Some((n, v)) => (n, Op::Set(v)),
        };
        if !valid_name(name) {
            return Out::err(
                1,
                format!("sysrc: {name}: name contains characters not allowed in shell\n"),
            );
        }
        let current = self.value(name);
        if self.opts.check {
            return match (op, current) {
                (Op::Query, Some(_)) => Out::default(),
                (Op::Query, None) => self.unknown(name),
                (Op::Set(v) | Op::Append(v) | Op::Remove(v), Some(cur)) if cur == v => {
                    Out::default()
                }
                _ => Out {
                    rc: 1,
                    ..Out::default()
                },
            };
        }
        if self.opts.delete {
            return self.delete(name, current.is_some());
        }
        match op {
            Op::Query => match current {
                Some(value) => Out::ok(self.show(name, &value)),
                None => self.unknown(name),
            },
            Op::Set(v) => self.set(name, current, v.to_string()),
            Op::Append(v) => {
                let old = current.clone().unwrap_or_default();
                let mut words: Vec<&str> = old.split_whitespace().collect();
                for w in v.split_whitespace() {
                    if !words.contains(&w) {
                        words.push(w);
                    }
                }
                let new = words.join(" ");
                self.set(name, current, new)
            }
            Op::Remove(v) => {
                let old = current.clone().unwrap_or_default();
                let drop: Vec<&str> = v.split_whitespace().collect();
                let new = old
                    .split_whitespace()
                    .filter(|w| !drop.contains(w))
                    .collect::<Vec<_>>()
                    .join(" ");
                self.set(name, current, new)
            }
        }
    }

    fn unknown(&self, name: &str) -> Out {
        if self.opts.ignore_unknown || self.opts.quiet {
            Out {
                rc: 1,
                ..Out::default()
            }
        } else {
            Out::err(1, format!("sysrc: unknown variable '{name}'\n"))
        }
    }

    fn show(&self, name: &str, value: &str) -> String {
        let prefix = if self.opts.verbose {
            format!("{}: ", self.holder(name).display())
        } else {
            String::new()
        };
        if self.opts.value_only {
            format!("{prefix}{value}\n")
        } else if self.opts.show_equals {
            format!("{prefix}{name}=\"{value}\"\n")
        } else {
            format!("{prefix}{name}: {value}\n")
        }
    }

    /// Sources defaults and files in sh; `None` when the variable is unknown.
    fn value(&self, name: &str) -> Option<String> {
        eval(self.defaults, &self.opts.files, name)
    }

    /// The file holding the last assignment (searching files last to first, then the
    /// defaults), as `f_sysrc_find` does.
    fn holder(&self, name: &str) -> PathBuf {
        self.opts
            .files
            .iter()
            .rev()
            .find(|f| assigns(f, name))
            .cloned()
            .unwrap_or_else(|| self.defaults.to_path_buf())
    }

    fn syntax_errors(&self) -> Option<String> {
        let mut messages = String::new();
        for file in self.opts.files.iter().filter(|f| f.exists()) {
            if let Some(msg) = sh_syntax_error(file) {
                messages.push_str(&msg);
            }
        }
        (!messages.is_empty()).then_some(messages)
    }

    fn set(&self, name: &str, current: Option<String>, new: String) -> Out {
        if let Some(errors) = self.syntax_errors() {
            return Out::err(
                1,
                format!("{errors}sysrc: Exiting due to previous syntax errors\n"),
            );
        }
        let old = current.unwrap_or_default();
        let target = self
            .opts
            .files
            .iter()
            .rev()
            .find(|f| assigns(f, name))
            .cloned();
        let file = match target {
            Some(file) => {
                if let Err(out) = edit_last(&file, name, &new) {
                    return out;
                }
                file
            }
            None => {
                let Some(first) = self.opts.files.first().cloned() else {
                    return Out::err(1, USAGE);
                };
                if let Err(e) = append(&first, name, &new) {
                    return Out::err(1, format!("sysrc: {}: {e}\n", first.display()));
                }
                first
            }
        };
        let prefix = if self.opts.verbose {
            format!("{}: ", file.display())
        } else {
            String::new()
        };
        // sysrc prints the value as sh reads it back (`say "hi"` shows as `say hi`).
        let new = self.value(name).unwrap_or_default();
        Out::ok(if self.opts.value_only {
            format!("{prefix}{old} -> {new}\n")
        } else if self.opts.show_equals {
            format!("{prefix}{name}=\"{old}\" # -> \"{new}\"\n")
        } else {
            format!("{prefix}{name}: {old} -> {new}\n")
        })
    }

    fn delete(&self, name: &str, known: bool) -> Out {
        if !known {
            return self.unknown(name);
        }
        for file in self.opts.files.iter().filter(|f| f.exists()) {
            let Ok(text) = fs::read_to_string(file) else {
                continue;
            };
            let kept: Vec<&str> = text.lines().filter(|l| !is_assignment(l, name)).collect();
            if kept.len() == text.lines().count() {
                continue;
            }
            let mut new_text = kept.join("\n");
            if !kept.is_empty() {
                new_text.push('\n');
            }
            if let Err(out) = replace_checked(file, &new_text) {
                return out;
            }
        }
        Out::default()
    }
}

/// The value of `name` after sourcing `defaults` and `files` in `/bin/sh` with an empty
/// environment and `PATH` unset, as `f_sysrc_get` does; `None` when it is unknown.
pub fn eval(defaults: &Path, files: &[PathBuf], name: &str) -> Option<String> {
    if !valid_name(name) {
        return None;
    }
    let script = format!(
        "for f in \"$@\"; do if [ -f \"$f\" ]; then . \"$f\" >/dev/null 2>&1; fi; done; \
         if [ \"${{{name}+set}}\" = set ]; then printf '%s' \"${{{name}}}\"; else exit 3; fi"
    );
    let out = Command::new("/bin/sh")
        .env_clear()
        .env("PATH", "")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .arg(defaults)
        .args(files)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `^[[:space:]]*name=`
fn is_assignment(line: &str, name: &str) -> bool {
    line.trim_start()
        .strip_prefix(name)
        .is_some_and(|rest| rest.starts_with('='))
}

fn assigns(file: &Path, name: &str) -> bool {
    fs::read_to_string(file)
        .map(|t| t.lines().any(|l| is_assignment(l, name)))
        .unwrap_or(false)
}

fn sh_syntax_error(file: &Path) -> Option<String> {
    let out = Command::new("/bin/sh").arg("-n").arg(file).output().ok()?;
    (!out.status.success()).then(|| String::from_utf8_lossy(&out.stderr).into_owned())
}

/// `echo "$varname=\"$new_value\"" >> "$file"`: one O_APPEND write, so concurrent appends
/// never lose each other (unlike edits, which rewrite the file through a temp file).
fn append(file: &Path, name: &str, value: &str) -> std::io::Result<()> {
    use std::io::Write;
    let needs_newline = fs::read(file)
        .map(|b| !b.is_empty() && !b.ends_with(b"\n"))
        .unwrap_or(false);
    let line = format!(
        "{}{name}=\"{value}\"\n",
        if needs_newline { "\n" } else { "" }
    );
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)?
        .write_all(line.as_bytes())
}

/// The awk in `f_sysrc_set`, applied to the last assignment line.
fn edit_last(file: &Path, name: &str, new: &str) -> Result<(), Out> {
    let text = fs::read_to_string(file)
        .map_err(|e| Out::err(1, format!("sysrc: {}: {e}\n", file.display())))?;
    // `$(tail -r file)` drops trailing newlines; `echo` restores exactly one.
    let mut lines: Vec<String> = text
        .trim_end_matches('\n')
        .split('\n')
        .map(String::from)
        .collect();
    let mut appended = false;
    if let Some(idx) = lines.iter().rposition(|l| is_assignment(l, name)) {
        match rewrite_value(&lines[idx], name, new) {
            Some(line) => lines[idx] = line,
            None => appended = true,
        }
    }
    let mut new_text = lines.join("\n") + "\n";
    if appended {
        new_text.push_str(&format!("{name}=\"{new}\"\n"));
    }
    replace_checked(file, &new_text)
}

fn rewrite_value(line: &str, name: &str, new: &str) -> Option<String> {
    let start = line.len() - line.trim_start().len() + name.len() + 1;
    let (prefix, value) = line.split_at(start);
    let (t1, t2, rest): (&str, &str, &str) = match value.chars().next() {
        Some('`' | '$' | '\\') => return None,
        Some('\'') => match value[1..].find('\'') {
            Some(end) => ("'", "'", &value[end + 2..]),
            None => ("'", "", ""),
        },
        Some('"') => {
            let inner = &value[1..];
            // ^"(.*\\+")*[^"]*  — up to the last escaped quote, then non-quotes.
            let from = inner
                .rmatch_indices('"')
                .find(|(i, _)| *i > 0 && inner.as_bytes()[i - 1] == b'\\')
                .map(|(i, _)| i + 1)
                .unwrap_or(0);
            let close = inner[from..].find('"').map(|i| i + from);
            match close {
                Some(c) => ("\"", "\"", &inner[c + 1..]),
                None => ("\"", "", ""),
            }
        }
        Some(c) if !c.is_whitespace() && c != ';' => {
            let end = value.find(char::is_whitespace).unwrap_or(value.len());
            ("\"", "\"", &value[end..])
        }
        // Null assignment (`name=` followed by a blank, `;` or nothing): awk's %c of an
        // empty string is unspecified; double quotes are what sysrc writes everywhere else.
        _ => ("\"", "\"", value),
    };
    Some(format!("{prefix}{t1}{new}{t2}{rest}"))
}

/// Writes via a temp file that must pass `sh -n` before it replaces the original.
fn replace_checked(file: &Path, text: &str) -> Result<(), Out> {
    let dir = file.parent().unwrap_or(Path::new("/"));
    let temp = tempfile::NamedTempFile::new_in(dir)
        .and_then(|t| fs::write(t.path(), text).map(|_| t))
        .map_err(|e| Out::err(1, format!("sysrc: {}: {e}\n", file.display())))?;
    if let Some(errors) = sh_syntax_error(temp.path()) {
        return Err(Out::err(
            1,
            format!("{errors}sysrc: Exiting due to previous syntax errors\n"),
        ));
    }
    drop(temp);
    replace_keeping_attrs(file, text)
        .map_err(|e| Out::err(1, format!("sysrc: {}: {e}\n", file.display())))
}

fn replace_keeping_attrs(file: &Path, text: &str) -> std::io::Result<()> {
    let meta = fs::metadata(file)?;
    let dir = file.parent().unwrap_or(Path::new("/"));
    let temp = tempfile::NamedTempFile::new_in(dir)?;
    fs::write(temp.path(), text)?;
    fs::set_permissions(
        temp.path(),
        fs::Permissions::from_mode(meta.mode() & 0o7777),
    )?;
    let _ = nix::unistd::chown(
        temp.path(),
        Some(nix::unistd::Uid::from_raw(meta.uid())),
        Some(nix::unistd::Gid::from_raw(meta.gid())),
    );
    temp.persist(file).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sysrc(root: &Path, line: &[&str]) -> Out {
        let args: Vec<String> = line.iter().map(|s| s.to_string()).collect();
        run(root, &args)
    }

    fn host() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        crate::init::init_host(dir.path(), Some("t")).unwrap();
        let f = dir.path().join("F");
        (dir, f)
    }

    #[test]
    fn recorded_outputs_for_a_new_file() {
        let (dir, f) = host();
        let f_s = f.to_str().unwrap();
        let root = dir.path();
        assert_eq!(
            sysrc(root, &["-f", f_s, "mevy_enable=YES"]).stdout,
            "mevy_enable:  -> YES\n"
        );
        assert_eq!(fs::read_to_string(&f).unwrap(), "mevy_enable=\"YES\"\n");
        assert_eq!(fs::metadata(&f).unwrap().mode() & 0o777, 0o644);
        assert_eq!(
            sysrc(root, &["-f", f_s, "mevy_enable=NO"]).stdout,
            "mevy_enable: YES -> NO\n"
        );
        assert_eq!(
            sysrc(root, &["-f", f_s, "-n", "mevy_enable"]).stdout,
            "NO\n"
        );
        assert_eq!(
            sysrc(root, &["-f", f_s, "-e", "mevy_enable"]).stdout,
            "mevy_enable=\"NO\"\n"
        );
        assert_eq!(
            sysrc(root, &["-n", "-f", f_s, "mevy_enable=NO"]).stdout,
            "NO -> NO\n"
        );
        assert_eq!(
            sysrc(root, &["-e", "-f", f_s, "mevy_enable=YES"]).stdout,
            "mevy_enable=\"NO\" # -> \"YES\"\n"
        );
        assert_eq!(sysrc(root, &["-c", "-f", f_s, "mevy_enable=YES"]).rc, 0);
        assert_eq!(sysrc(root, &["-c", "-f", f_s, "mevy_enable=NO"]).rc, 1);
        assert_eq!(sysrc(root, &["-c", "-f", f_s, "mevy_flags=x"]).rc, 1);
        let out = sysrc(root, &["-c", "-f", f_s, "mevy_flags"]);
        assert_eq!(
            (out.rc, out.stderr.as_str()),
            (1, "sysrc: unknown variable 'mevy_flags'\n")
        );
        assert_eq!(
            sysrc(root, &["-f", f_s, "-x", "mevy_enable"]),
            Out::default()
        );
        assert_eq!(fs::read_to_string(&f).unwrap(), "");
        let out = sysrc(root, &["-f", f_s, "-x", "mevy_enable"]);
        assert_eq!(
            (out.rc, out.stderr.as_str()),
            (1, "sysrc: unknown variable 'mevy_enable'\n")
        );
        assert_eq!(
            sysrc(root, &["-f", f_s, "sshd_enable"]).stdout,
            "sshd_enable: NO\n"
        );
        assert_eq!(
            sysrc(root, &["-f", f_s, "-x", "sshd_enable"]),
            Out::default()
        );
    }

    #[test]
    fn lists_quotes_and_bad_names() {
        let (dir, f) = host();
        let f_s = f.to_str().unwrap();
        let root = dir.path();
        assert_eq!(
            sysrc(root, &["-f", f_s, "mevy_list+=a"]).stdout,
            "mevy_list:  -> a\n"
        );
        assert_eq!(
            sysrc(root, &["-f", f_s, "mevy_list+=b a"]).stdout,
            "mevy_list: a -> a b\n"
        );
        assert_eq!(
            sysrc(root, &["-f", f_s, "mevy_list-=a"]).stdout,
            "mevy_list: a b -> b\n"
        );
        assert_eq!(
            sysrc(root, &["-f", f_s, "mevy_quote=say \"hi\""]).stdout,
            "mevy_quote:  -> say hi\n"
        );
        assert!(fs::read_to_string(&f)
            .unwrap()
            .contains("mevy_quote=\"say \"hi\"\"\n"));
        let out = sysrc(root, &["-f", f_s, "bad.name=1"]);
        assert_eq!(
            out.stderr,
            "sysrc: bad.name: name contains characters not allowed in shell\n"
        );
        assert_eq!(
            sysrc(root, &["-f", f_s, "mevy_empty="]).stdout,
            "mevy_empty:  -> \n"
        );
        let out = sysrc(root, &["-f", f_s]);
        assert!(out.stderr.starts_with("Usage: sysrc [OPTIONS]"));
    }

    #[test]
    fn edits_keep_style_and_only_touch_last_assignment() {
        let (dir, f) = host();
        let f_s = f.to_str().unwrap();
        let root = dir.path();
        fs::write(
            &f,
            "# header\nmevy_enable='NO' # single quoted\n#mevy_enable=\"commented\"\n  mevy_flags=\"-a\"   # indented\nmevy_enable=\"YES\"\nother=1\nmevy_tag=plain   # unquoted\n",
        )
        .unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(
            sysrc(root, &["-f", f_s, "mevy_enable"]).stdout,
            "mevy_enable: YES\n"
        );
        assert_eq!(
            sysrc(root, &["-f", f_s, "mevy_enable=MAYBE"]).stdout,
            "mevy_enable: YES -> MAYBE\n"
        );
        assert_eq!(
            sysrc(root, &["-f", f_s, "mevy_flags=-b"]).stdout,
            "mevy_flags: -a -> -b\n"
        );
        sysrc(root, &["-f", f_s, "mevy_tag=new"]);
        let text = fs::read_to_string(&f).unwrap();
        assert_eq!(
            text,
            "# header\nmevy_enable='NO' # single quoted\n#mevy_enable=\"commented\"\n  mevy_flags=\"-b\"   # indented\nmevy_enable=\"MAYBE\"\nother=1\nmevy_tag=\"new\"   # unquoted\n"
        );
        assert_eq!(fs::metadata(&f).unwrap().mode() & 0o777, 0o640);
        sysrc(root, &["-f", f_s, "-x", "mevy_enable"]);
        let text = fs::read_to_string(&f).unwrap();
        assert!(text.contains("#mevy_enable=\"commented\"") && !text.contains("mevy_enable='NO'"));
    }

    #[test]
    fn single_quotes_kept_and_dynamic_values_appended() {
        let (dir, f) = host();
        let f_s = f.to_str().unwrap();
        let root = dir.path();
        fs::write(
            &f,
            "mevy_enable='NO' # single quoted\nmevy_cmd=$(hostname)\n",
        )
        .unwrap();
        sysrc(root, &["-f", f_s, "mevy_enable=YES"]);
        assert_eq!(
            sysrc(root, &["-f", f_s, "mevy_cmd=x"]).stdout,
            "mevy_cmd:  -> x\n"
        );
        assert_eq!(
            fs::read_to_string(&f).unwrap(),
            "mevy_enable='YES' # single quoted\nmevy_cmd=$(hostname)\nmevy_cmd=\"x\"\n"
        );
    }

    #[test]
    fn syntax_errors_block_edits() {
        let (dir, f) = host();
        let f_s = f.to_str().unwrap();
        fs::write(&f, "a=\"1\"\nx=\"unterminated\n").unwrap();
        let out = sysrc(dir.path(), &["-f", f_s, "a=2"]);
        assert_eq!(out.rc, 1);
        assert!(
            out.stderr
                .ends_with("sysrc: Exiting due to previous syntax errors\n"),
            "{}",
            out.stderr
        );
        assert_eq!(
            fs::read_to_string(&f).unwrap(),
            "a=\"1\"\nx=\"unterminated\n"
        );
    }

    #[test]
    fn missing_final_newline_is_fixed_on_append() {
        let (dir, f) = host();
        let f_s = f.to_str().unwrap();
        fs::write(&f, "a=\"1\"").unwrap();
        sysrc(dir.path(), &["-f", f_s, "c=4"]);
        assert_eq!(fs::read_to_string(&f).unwrap(), "a=\"1\"\nc=\"4\"\n");
    }

    #[test]
    fn default_files_are_the_hosts_rc_conf() {
        let (dir, _) = host();
        let root = dir.path();
        assert_eq!(sysrc(root, &["hostname"]).stdout, "hostname: t\n");
        sysrc(root, &["mevy_enable=YES"]);
        assert!(fs::read_to_string(root.join("etc/rc.conf"))
            .unwrap()
            .ends_with("mevy_enable=\"YES\"\n"));
    }
}
