//! Running host tools: always by argv (never through a shell), with `LC_ALL=C` so their
//! output parses the same everywhere, capturing exit code, stdout and stderr. A command is a
//! value with a display form that can be pasted into a terminal.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, Context, Result};

use crate::shell::sh_quote;

/// Directories searched after `PATH`, like Ansible's `get_bin_path` on FreeBSD
/// (`module_utils/common/process.py` adds the sbin dirs; ports live in /usr/local).
pub const EXTRA_TOOL_DIRS: [&str; 4] = ["/sbin", "/usr/sbin", "/usr/local/sbin", "/usr/local/bin"];

/// Finds an executable: `PATH` first, then [`EXTRA_TOOL_DIRS`].
pub fn find_tool(name: &str) -> Result<PathBuf> {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    let candidates = std::env::split_paths(&path_var)
        .chain(EXTRA_TOOL_DIRS.iter().map(PathBuf::from))
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name));
    for candidate in candidates {
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(anyhow!(
        "cannot find the `{name}` tool in PATH or {}",
        EXTRA_TOOL_DIRS.join(":")
    ))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// A command line to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    program: PathBuf,
    args: Vec<OsString>,
}

impl Cmd {
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Cmd {
            program: program.into(),
            args: Vec::new(),
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn program(&self) -> &Path {
        &self.program
    }

    pub fn argv(&self) -> impl Iterator<Item = &OsStr> {
        std::iter::once(self.program.as_os_str()).chain(self.args.iter().map(|a| a.as_os_str()))
    }

    /// Runs the command; any exit status is an `Ok` output.
    pub fn output(&self) -> Result<Output> {
        let out = Command::new(&self.program)
            .args(&self.args)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run `{self}`"))?;
        Ok(Output {
            rc: exit_code(&out.status),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Runs the command and fails with a [`CommandError`] unless it exits 0.
    pub fn run(&self) -> Result<Output> {
        let out = self.output()?;
        if out.rc == 0 {
            Ok(out)
        } else {
            Err(CommandError::new(self, out).into())
        }
    }
}

impl fmt::Display for Cmd {
    /// Shell-escaped, ready to paste into a terminal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<String> = self
            .argv()
            .map(|w| sh_quote(&w.to_string_lossy()))
            .collect();
        f.write_str(&words.join(" "))
    }
}

#[cfg(unix)]
fn exit_code(status: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    // Killed by a signal: report -N like Python's subprocess does.
    status
        .code()
        .unwrap_or_else(|| -status.signal().unwrap_or(0))
}

/// What a finished command printed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Output {
    pub rc: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.rc == 0
    }
}

/// A command that exited non-zero. The runtime copies its fields into the failed result's
/// `cmd`, `rc`, `stdout` and `stderr`, like Ansible's command module does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    pub cmd: String,
    pub rc: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CommandError {
    pub fn new(cmd: &Cmd, out: Output) -> Self {
        CommandError {
            cmd: cmd.to_string(),
            rc: out.rc,
            stdout: out.stdout,
            stderr: out.stderr,
        }
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` exited with status {}", self.cmd, self.rc)?;
        let detail = if self.stderr.trim().is_empty() {
            self.stdout.trim()
        } else {
            self.stderr.trim()
        };
        if !detail.is_empty() {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CommandError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_for_sh() {
        let cmd = Cmd::new("/usr/sbin/sysrc")
            .args(["-f", "/etc/rc.conf"])
            .arg("mevy_enable=YES it's");
        assert_eq!(
            cmd.to_string(),
            "/usr/sbin/sysrc -f /etc/rc.conf 'mevy_enable=YES it'\\''s'"
        );
    }

    #[test]
    fn run_captures_output_and_failure() {
        let ok = Cmd::new("/bin/sh")
            .args(["-c", "echo out; echo err >&2"])
            .run()
            .unwrap();
        assert_eq!(
            (ok.rc, ok.stdout.as_str(), ok.stderr.as_str()),
            (0, "out\n", "err\n")
        );

        let err = Cmd::new("/bin/sh")
            .args(["-c", "echo boom >&2; exit 3"])
            .run()
            .unwrap_err();
        let cmd_err = err.downcast_ref::<CommandError>().unwrap();
        assert_eq!(cmd_err.rc, 3);
        assert_eq!(
            err.to_string(),
            "`/bin/sh -c 'echo boom >&2; exit 3'` exited with status 3: boom"
        );
    }

    #[test]
    fn runs_with_c_locale_and_no_stdin() {
        let out = Cmd::new("/bin/sh")
            .args(["-c", "echo $LC_ALL; cat"])
            .run()
            .unwrap();
        assert_eq!(out.stdout, "C\n");
    }

    #[test]
    fn find_tool_reports_missing_tool() {
        assert!(find_tool("sh").is_ok());
        let err = find_tool("no-such-tool-warden").unwrap_err();
        assert!(err
            .to_string()
            .contains("cannot find the `no-such-tool-warden` tool"));
    }
}
