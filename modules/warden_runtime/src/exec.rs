//! Running host tools: always by argv (never through a shell), with `LC_ALL=C` so their
//! output parses the same everywhere, capturing exit code, stdout and stderr. A command is a
//! value with a display form that can be pasted into a terminal.
//!
//! Every run has a deadline: the module's `tool_timeout` (the runtime sets it for the whole
//! run with [`set_default_timeout`]) unless the command carries its own. The tool runs in a
//! process group of its own; one that runs past its deadline is killed with the whole group
//! (`killpg(SIGKILL)`: an rc.d script, the `su` it runs and a tmux client it waits for all go)
//! and the run fails with a [`TimeoutError`] naming the command and the timeout. Daemons a
//! tool starts leave its group (`daemon(3)` calls `setsid`), so a tool that finishes in time
//! never loses them. Output is read until the tool exits and its pipes close; a background
//! process that keeps a pipe open after the tool exited gets [`PIPE_GRACE`], not a hang.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::shell::sh_quote;

/// `tool_timeout` unless a module says otherwise: long enough for any host tool warden
/// runs on a busy host (`pfctl -f`, `bastille start` with VNET, an rc.d `start` that waits
/// for its daemon), short enough that a hung tool does not keep the host lock for long.
pub const DEFAULT_TOOL_TIMEOUT: Duration = Duration::from_secs(120);
/// How long output is still read after the tool exited (a background child holding a pipe).
pub const PIPE_GRACE: Duration = Duration::from_secs(2);
/// How long a killed tool may take to be reaped before the run gives up waiting for it.
const KILL_GRACE: Duration = Duration::from_secs(5);
/// At most this much of each stream is kept (the rest is read and dropped).
const MAX_OUTPUT: usize = 16 << 20;

static TIMEOUT_MS: AtomicU64 = AtomicU64::new(DEFAULT_TOOL_TIMEOUT.as_millis() as u64);

/// Sets the deadline of every command run from now on that carries none of its own.
pub fn set_default_timeout(timeout: Duration) {
    let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    TIMEOUT_MS.store(ms.max(1), Ordering::Relaxed);
}

/// The deadline commands get unless they carry their own.
pub fn default_timeout() -> Duration {
    Duration::from_millis(TIMEOUT_MS.load(Ordering::Relaxed))
}

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
    timeout: Option<Duration>,
}

impl Cmd {
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Cmd {
            program: program.into(),
            args: Vec::new(),
            timeout: None,
        }
    }

    /// Gives this command its own deadline instead of the run's `tool_timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
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

    /// Runs the command; any exit status is an `Ok` output. Past its deadline the tool's
    /// process group is killed and the result is a [`TimeoutError`].
    pub fn output(&self) -> Result<Output> {
        let timeout = self.timeout.unwrap_or_else(default_timeout);
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout can kill everything it started.
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot run `{self}`"))?;
        let started = Instant::now();
        let pgid = i32::try_from(child.id()).map(Pid::from_raw).ok();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut readers = 0;
        if let Some(pipe) = child.stdout.take() {
            readers += 1;
            drain(pipe, stdout.clone(), done_tx.clone());
        }
        if let Some(pipe) = child.stderr.take() {
            readers += 1;
            drain(pipe, stderr.clone(), done_tx);
        }
        let (status_tx, status_rx) = mpsc::channel::<std::io::Result<ExitStatus>>();
        std::thread::spawn(move || {
            let _ = status_tx.send(child.wait());
        });
        let status = match status_rx.recv_timeout(timeout) {
            Ok(status) => status.with_context(|| format!("cannot wait for `{self}`"))?,
            Err(_) => {
                if let Some(pgid) = pgid {
                    let _ = killpg(pgid, Signal::SIGKILL);
                }
                let _ = status_rx.recv_timeout(KILL_GRACE);
                // The group is dead, so the pipes close; take what it printed.
                let deadline = Instant::now() + PIPE_GRACE;
                for _ in 0..readers {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if done_rx.recv_timeout(left).is_err() {
                        break;
                    }
                }
                return Err(TimeoutError {
                    cmd: self.to_string(),
                    timeout,
                    elapsed: started.elapsed(),
                    stdout: take_text(&stdout),
                    stderr: take_text(&stderr),
                }
                .into());
            }
        };
        let deadline = Instant::now() + PIPE_GRACE;
        for _ in 0..readers {
            let left = deadline.saturating_duration_since(Instant::now());
            if done_rx.recv_timeout(left).is_err() {
                break;
            }
        }
        Ok(Output {
            rc: exit_code(&status),
            stdout: take_text(&stdout),
            stderr: take_text(&stderr),
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

/// Reads a pipe to its end on a thread of its own, keeping at most [`MAX_OUTPUT`] bytes.
fn drain(mut pipe: impl Read + Send + 'static, sink: Arc<Mutex<Vec<u8>>>, done: mpsc::Sender<()>) {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 8192];
        loop {
            match pipe.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => {
                    if let Ok(mut kept) = sink.lock() {
                        let room = MAX_OUTPUT.saturating_sub(kept.len());
                        kept.extend_from_slice(&buffer[..n.min(room)]);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        let _ = done.send(());
    });
}

fn take_text(buffer: &Mutex<Vec<u8>>) -> String {
    buffer
        .lock()
        .map(|mut b| String::from_utf8_lossy(&std::mem::take(&mut *b)).into_owned())
        .unwrap_or_default()
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

/// A command that ran past its deadline and was killed with its process group. The runtime
/// fills the failed result's `cmd`, `stdout` and `stderr` from it, and `rc` with -9.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeoutError {
    pub cmd: String,
    pub timeout: Duration,
    pub elapsed: Duration,
    pub stdout: String,
    pub stderr: String,
}

impl fmt::Display for TimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` did not finish within {} (tool_timeout) and was killed with its process group",
            self.cmd,
            seconds(self.timeout)
        )
    }
}

impl std::error::Error for TimeoutError {}

/// `120 s`, or `0.3 s` for the short deadlines tests use.
fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

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
    fn a_tool_past_its_timeout_is_killed_with_its_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let bg = dir.path().join("bg.pid");
        // The shell starts a background sleep (same process group), prints, then hangs.
        let script = format!(
            "sleep 30 & echo $! > {}; echo started; sleep 30",
            bg.display()
        );
        let started = Instant::now();
        let err = Cmd::new("/bin/sh")
            .args(["-c", &script])
            .timeout(Duration::from_millis(300))
            .run()
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
        let timeout = err.downcast_ref::<TimeoutError>().expect("a TimeoutError");
        assert_eq!(timeout.stdout, "started\n");
        assert!(
            err.to_string()
                .contains("did not finish within 0.3 s (tool_timeout) and was killed"),
            "{err}"
        );
        assert!(err.to_string().starts_with("`/bin/sh -c "), "{err}");
        // The background child was in the group: dead (or a zombie waiting for its reaper).
        let pid: i32 = std::fs::read_to_string(&bg)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let state = Command::new("ps")
                .args(["-o", "stat=", "-p", &pid.to_string()])
                .output()
                .unwrap();
            let state = String::from_utf8_lossy(&state.stdout).trim().to_string();
            if state.is_empty() || state.starts_with('Z') {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "background child {pid} survives: {state}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_background_child_holding_the_pipe_does_not_hang_the_run() {
        let started = Instant::now();
        // setsid-less background process keeps stdout open after the shell exits.
        let out = Cmd::new("/bin/sh")
            .args(["-c", "(sleep 30; echo late) & echo early"])
            .timeout(Duration::from_secs(60))
            .run()
            .unwrap();
        assert_eq!(out.stdout, "early\n");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
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
