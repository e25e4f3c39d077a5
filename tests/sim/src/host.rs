//! [`SimHost`]: one fresh simulated FreeBSD host for a test — its root directory, a bin
//! directory whose `ifconfig`/`sysrc`/`service` are the simulator, the environment that puts
//! them first on `PATH`, the call log, fault injection and a snapshot of the file tree.

// Test support: a setup step that cannot be done fails the test with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;

use crate::dispatch::ROOT_VAR;

/// One logged tool invocation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Call {
    pub tool: String,
    pub argv: Vec<String>,
    pub rc: i32,
}

impl Call {
    /// `tool arg arg…`, for readable assertions.
    pub fn line(&self) -> String {
        std::iter::once(self.tool.as_str())
            .chain(self.argv.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// True for invocations that can change the host. Read-only forms: `ifconfig` listing
    /// and status, `sysrc` queries and `-c` checks, `service … status|onestatus|enabled`,
    /// `service -e|-l`, `pfctl -s …` and `pfctl -n …`, `sysctl` reads, `kldstat`,
    /// `vm version|list|img|iso`.
    pub fn mutates(&self) -> bool {
        let args: Vec<&str> = self.argv.iter().map(String::as_str).collect();
        match self.tool.as_str() {
            "ifconfig" => !matches!(
                args.as_slice(),
                [] | ["-a"] | ["-l", ..] | ["-g", _] | ["-C"] | [_]
            ),
            "sysrc" => {
                let mut operands = Vec::new();
                let mut check_or_query = false;
                let mut i = 0;
                while i < args.len() {
                    let a = args[i];
                    if a == "-f" {
                        i += 2;
                        continue;
                    }
                    if a.starts_with('-') {
                        if a.contains('x') {
                            return true;
                        }
                        if a.contains('c') {
                            check_or_query = true;
                        }
                    } else {
                        operands.push(a);
                    }
                    i += 1;
                }
                !check_or_query && operands.iter().any(|o| o.contains('='))
            }
            "pfctl" => {
                let flags: String = args
                    .iter()
                    .filter(|a| a.starts_with('-'))
                    .map(|a| &a[1..])
                    .collect();
                flags.contains('e')
                    || flags.contains('d')
                    || flags.contains('F')
                    || (flags.contains('f') && !flags.contains('n'))
            }
            "sysctl" => args.iter().any(|a| a.contains('=')),
            "jls" | "kldstat" => false,
            "pkg" => !matches!(args.as_slice(), ["-r", _, "query" | "info", ..]),
            "bastille" => !matches!(
                args.as_slice(),
                ["-v" | "--version" | "version"]
                    | ["list", ..]
                    | ["config", _, "get", _]
                    | ["pkg", _, "query", ..]
                    | ["service", _, _, "status"]
            ),
            "service" => !matches!(
                args.as_slice(),
                ["-e"] | ["-l"] | [_, "status" | "onestatus" | "enabled" | "rcvar" | "describe"]
            ),
            // `jexec [-l] [-U root] JAIL CMD…`: reads are service status and pkg query.
            "jexec" => {
                let mut i = 0;
                while i < args.len() && args[i].starts_with('-') {
                    i += if matches!(args[i], "-u" | "-U") { 2 } else { 1 };
                }
                let inner: Vec<&str> = args.iter().copied().skip(i + 1).collect();
                !matches!(
                    inner.as_slice(),
                    [_, _, "status" | "onestatus"] | [_, "query", ..] | [_, "info", ..]
                )
            }
            // vm-bhyve: listings and the version only read.
            "vm" => !matches!(
                args.as_slice(),
                ["version"]
                    | ["list", ..]
                    | ["datastore" | "switch", "list"]
                    | ["img" | "iso"]
                    | ["info", ..]
            ),
            _ => true,
        }
    }
}

/// A module's reply: its one JSON object and exit code.
#[derive(Debug, Clone)]
pub struct ModuleRun {
    pub result: serde_json::Value,
    pub code: i32,
}

impl ModuleRun {
    /// `result["msg"]` as text.
    pub fn msg(&self) -> &str {
        self.result["msg"].as_str().unwrap_or_default()
    }
}

/// A fresh simulated host in a temporary directory (removed on drop, after stopping any
/// tmux server whose socket lives under it).
pub struct SimHost {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub bin: PathBuf,
}

impl Default for SimHost {
    fn default() -> Self {
        Self::new()
    }
}

impl SimHost {
    /// Creates the host with `freebsd-sim init` and links its tools.
    pub fn new() -> SimHost {
        // Short paths: tmux sockets under the root must fit sun_path (104 bytes on FreeBSD).
        let dir = tempfile::Builder::new()
            .prefix("wsim")
            .tempdir_in("/tmp")
            .expect("cannot create a temporary directory");
        let root = dir.path().join("h");
        let bin = dir.path().join("bin");
        fs::create_dir_all(&root).expect("cannot create the host root");
        let sim = sim_binary();
        run_ok(Command::new(&sim).arg("init").arg(&root).arg("sim1"));
        run_ok(Command::new(&sim).arg("links").arg(&bin));
        let root = root.canonicalize().expect("cannot resolve the host root");
        SimHost {
            _dir: dir,
            root,
            bin,
        }
    }

    /// The host path for a FreeBSD path: `/etc/rc.conf` → `<root>/etc/rc.conf`.
    pub fn path(&self, freebsd_path: &str) -> PathBuf {
        self.root.join(freebsd_path.trim_start_matches('/'))
    }

    /// Same as [`path`](Self::path), as a string for module params.
    pub fn p(&self, freebsd_path: &str) -> String {
        self.path(freebsd_path).to_string_lossy().into_owned()
    }

    /// The rc.conf chain parameters of a module (`rc_conf`, `rc_conf_local`, `rc_conf_d`)
    /// pointing into this host, so no test reads or writes the machine's own files.
    pub fn rc_params(&self) -> serde_json::Value {
        serde_json::json!({
            "rc_conf": self.p("/etc/rc.conf"),
            "rc_conf_local": self.p("/etc/rc.conf.local"),
            "rc_conf_d": [self.p("/etc/rc.conf.d"), self.p("/usr/local/etc/rc.conf.d")],
        })
    }

    /// The host parameters every module that works on a host takes (the rc.conf chain of
    /// [`rc_params`](Self::rc_params) and `lock_file`), pointing into this host.
    pub fn host_params(&self) -> serde_json::Value {
        with(
            self.rc_params(),
            serde_json::json!({"lock_file": self.p("/var/run/warden.lock")}),
        )
    }

    /// Module args on this host: `args` with [`host_params`](Self::host_params) under them.
    pub fn args(&self, args: serde_json::Value) -> serde_json::Value {
        with(self.host_params(), args)
    }

    /// `freebsd-sim boot`: the host reboots from its files; returns the console output.
    pub fn boot(&self) -> String {
        let out = self
            .command(sim_binary())
            .arg("boot")
            .arg(&self.root)
            .output()
            .expect("cannot run freebsd-sim boot");
        assert!(
            out.status.success(),
            "freebsd-sim boot failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Environment for running modules and tools against this host.
    pub fn env(&self) -> Vec<(String, String)> {
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        vec![
            ("PATH".into(), path),
            (ROOT_VAR.into(), self.root.to_string_lossy().into_owned()),
        ]
    }

    /// Applies [`env`](Self::env) to a command.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.envs(self.env());
        cmd
    }

    /// Runs one simulated tool (e.g. to set up or inspect state).
    pub fn tool(&self, tool: &str, args: &[&str]) -> Output {
        self.command(self.bin.join(tool))
            .args(args)
            .output()
            .expect("cannot run a simulated tool")
    }

    /// [`tool`](Self::tool)'s stdout and exit code.
    pub fn tool_out(&self, tool: &str, args: &[&str]) -> (String, i32) {
        let out = self.tool(tool, args);
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            out.status.code().unwrap_or(-1),
        )
    }

    /// Runs a module binary against this host the way Ansible does (`<module> <args file>`),
    /// asserting it printed exactly one line of JSON.
    pub fn run_module(&self, binary: &str, args: &serde_json::Value) -> ModuleRun {
        let dir = tempfile::tempdir().expect("cannot create a temporary directory");
        let args_path = dir.path().join("args");
        fs::write(&args_path, args.to_string()).expect("cannot write the args file");
        let out = self
            .command(binary)
            .arg(&args_path)
            .output()
            .expect("cannot run the module");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            stdout.lines().count(),
            1,
            "exactly one JSON line expected: {stdout}"
        );
        ModuleRun {
            result: serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}")),
            code: out.status.code().unwrap_or(-1),
        }
    }

    /// Every logged call so far.
    pub fn calls(&self) -> Vec<Call> {
        fs::read_to_string(self.path("/sim/calls.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("bad call log line"))
            .collect()
    }

    pub fn clear_calls(&self) {
        fs::write(self.path("/sim/calls.log"), "").expect("cannot clear the call log");
    }

    /// The calls of one tool so far, as lines.
    pub fn calls_of(&self, tool: &str) -> Vec<String> {
        self.calls()
            .iter()
            .filter(|c| c.tool == tool)
            .map(Call::line)
            .collect()
    }

    /// Calls that can change the host, as lines.
    pub fn mutating_calls(&self) -> Vec<String> {
        self.calls()
            .iter()
            .filter(|c| c.mutates())
            .map(Call::line)
            .collect()
    }

    /// Makes every matching invocation of `tool` fail (see the dispatch module).
    pub fn add_fault(&self, tool: &str, needle: &str, rc: i32, message: &str) {
        self.push_fault(format!("{tool}\t{needle}\t{rc}\t{message}"));
    }

    /// Makes the next `times` matching invocations of `tool` fail.
    pub fn add_fault_times(&self, tool: &str, needle: &str, rc: i32, message: &str, times: u32) {
        self.push_fault(format!("{tool}\t{needle}\t{rc}\t{message}\t{times}"));
    }

    fn push_fault(&self, rule: String) {
        let path = self.path("/sim/faults");
        let mut rules = fs::read_to_string(&path).unwrap_or_default();
        rules.push_str(&rule);
        rules.push('\n');
        fs::write(path, rules).expect("cannot write the fault rules");
    }

    /// Makes the host report another release (`sim/freebsd.version`, e.g. `13.5-RELEASE`);
    /// the rc.subr stand-in follows that release's `status` rule.
    pub fn set_freebsd_version(&self, version: &str) {
        fs::write(self.path("/sim/freebsd.version"), format!("{version}\n"))
            .expect("cannot write the release");
    }

    /// Marks kernel modules as loaded (`sim/kld`), as if loaded at boot.
    pub fn load_kernel_modules(&self, modules: &[&str]) {
        for m in modules {
            crate::kld::load(&self.root, m).expect("cannot write the module list");
        }
    }

    pub fn clear_faults(&self) {
        let _ = fs::remove_file(self.path("/sim/faults"));
    }

    /// Every file, directory, link and socket under the root with its mode, owner and a
    /// content digest — minus the simulator's own bookkeeping (call log, locks). Two equal
    /// snapshots mean nothing on the host changed.
    pub fn snapshot(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        walk(&self.root, &self.root, &mut out);
        out
    }

    /// Reads a host file.
    pub fn read(&self, freebsd_path: &str) -> String {
        fs::read_to_string(self.path(freebsd_path))
            .unwrap_or_else(|e| panic!("cannot read {freebsd_path}: {e}"))
    }
}

impl Drop for SimHost {
    fn drop(&mut self) {
        crate::vm::kill_guests(&self.root);
        let mut sockets = Vec::new();
        find_sockets(&self.root, &mut sockets);
        for socket in sockets {
            if let Ok(tmux) = which("tmux") {
                let _ = Command::new(tmux)
                    .arg("-S")
                    .arg(&socket)
                    .arg("kill-server")
                    .output();
            }
        }
    }
}

fn find_sockets(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(ft) = entry.file_type() else { continue };
        if ft.is_dir() {
            find_sockets(&entry.path(), out);
        } else if ft.is_socket() {
            out.push(entry.path());
        }
    }
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .into_owned();
        if rel == "sim/calls.log" || rel == "sim/faults" || rel.ends_with(".lock") {
            continue;
        }
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        let ft = meta.file_type();
        let attrs = format!("{:o} {}:{}", meta.mode() & 0o7777, meta.uid(), meta.gid());
        let desc = if ft.is_dir() {
            walk(root, &path, out);
            format!("dir {attrs}")
        } else if ft.is_symlink() {
            format!(
                "link -> {}",
                fs::read_link(&path)
                    .map(|t| t.display().to_string())
                    .unwrap_or_default()
            )
        } else if ft.is_socket() {
            format!("socket {attrs}")
        } else {
            let content = fs::read(&path).unwrap_or_default();
            format!("file {attrs} {:016x} {}", fnv1a(&content), content.len())
        };
        out.insert(rel, desc);
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().expect("cannot run freebsd-sim");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `freebsd-sim` binary: `$WARDEN_SIM_BIN`, else next to the running test's target
/// directory (`target/<profile>/freebsd-sim`; build it with `cargo build --workspace`).
pub fn sim_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("WARDEN_SIM_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("cannot locate the test executable");
    let candidates = exe
        .ancestors()
        .skip(1)
        .take(3)
        .map(|dir| dir.join("freebsd-sim"))
        .collect::<Vec<_>>();
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "freebsd-sim is not built (looked in {candidates:?}); run `cargo build --workspace` first (make test does)"
            )
        })
}

/// Finds an executable on `PATH` (for tests that need real tools such as tmux).
pub fn which(name: &str) -> Result<PathBuf, String> {
    std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{name} is not installed"))
}

/// `base` with the keys of `extra` set: module args with a few changes.
pub fn with(mut base: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    if let (Some(base_map), Some(extra_map)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in extra_map {
            base_map.insert(k.clone(), v.clone());
        }
    }
    base
}
