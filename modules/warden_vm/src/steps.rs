//! The plan's actions as runtime steps. vm-bhyve returns from `vm start`/`vm stop` before the
//! guest is up or down and exits 0 on several failures, so every step checks what it should
//! have produced: the conf exists after `vm create`, `vm list` shows `Running` (bounded by
//! `wait_timeout`, failing early on the guest log's `fatal;`) or the guest stopped (bounded by
//! `stop_timeout`, then `vm poweroff -f`), the guest's directory is gone after `vm destroy`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use warden_runtime::fs::{self as wfs, Attrs, FileState};
use warden_runtime::plan::Step;
use warden_runtime::vm_bhyve::{self, GuestPaths, NetSeed, NewGuest, VmConf, VmState};
use warden_runtime::{Cmd, Plan};

use crate::observe::{current_state, Observed};
use crate::plan::{Action, VmPlan};
use crate::Settings;

/// How often a wait reads `vm list` again.
const POLL: Duration = Duration::from_millis(200);
/// After `vm poweroff -f`, how long the guest may take to disappear.
const POWEROFF_WAIT: Duration = Duration::from_secs(30);

pub fn runtime_plan(vm_plan: VmPlan, settings: &Settings, observed: &Observed) -> Plan {
    let mut plan = Plan::new();
    let vm = observed.tools.vm.clone();
    let paths = vm_plan.paths.clone();
    for action in vm_plan.actions {
        match action {
            Action::Create { guest, inputs } => plan.step(CreateGuest {
                vm: vm.clone(),
                guest,
                inputs,
                paths: paths.clone(),
            }),
            Action::EditConf { set, previous } => plan.step(EditConf {
                path: paths.conf(),
                set,
                previous,
            }),
            Action::WriteSeed {
                network,
                user_data,
                rebuild_iso,
            } => plan.step(WriteSeed {
                paths: paths.clone(),
                network,
                user_data,
                makefs: rebuild_iso.then(|| observed.tools.makefs.clone()),
                previous: Vec::new(),
            }),
            Action::Start { iso } => plan.step(StartGuest {
                vm: vm.clone(),
                paths: paths.clone(),
                iso,
                timeout: settings.wait_timeout,
            }),
            Action::Stop => plan.step(StopGuest {
                vm: vm.clone(),
                name: paths.name.clone(),
                timeout: settings.stop_timeout,
            }),
            Action::Destroy => plan.step(DestroyGuest {
                vm: vm.clone(),
                paths: paths.clone(),
            }),
        }
    }
    plan.diffs = vm_plan.diffs;
    plan.warnings = vm_plan.warnings;
    plan.values = vm_plan.values;
    plan.msg = Some(vm_plan.msg);
    plan
}

fn secret_attrs() -> Attrs {
    Attrs {
        mode: Some(0o600),
        uid: None,
        gid: None,
    }
}

/// `vm create`, with its seed input files around it.
struct CreateGuest {
    vm: PathBuf,
    guest: NewGuest,
    inputs: Vec<(PathBuf, String)>,
    paths: GuestPaths,
}

impl CreateGuest {
    fn cmd(&self) -> Cmd {
        vm_bhyve::create(&self.vm, &self.guest)
    }
}

impl Step for CreateGuest {
    fn describe(&self) -> String {
        self.cmd().to_string()
    }
    fn command(&self) -> Option<String> {
        Some(self.describe())
    }
    fn apply(&mut self) -> Result<()> {
        for (path, text) in &self.inputs {
            wfs::write_atomic(path, text.as_bytes(), secret_attrs())?;
        }
        let result = self.cmd().run();
        for (path, _) in &self.inputs {
            let _ = wfs::remove(path);
        }
        let exists = wfs::read_state(&self.paths.conf())?.is_some();
        match result {
            Ok(_) if exists => Ok(()),
            Ok(out) => bail!(
                "`{}` exited 0 but {} does not exist{}",
                self.cmd(),
                self.paths.conf().display(),
                said(&out.stdout, &out.stderr)
            ),
            Err(e) => {
                // A failure after the guest's directory was made leaves a half-made guest.
                if exists {
                    let _ = vm_bhyve::destroy(&self.vm, &self.guest.name).run();
                }
                Err(e)
            }
        }
    }
    fn undo(&mut self) -> Result<()> {
        vm_bhyve::destroy(&self.vm, &self.guest.name)
            .run()
            .map(|_| ())
    }
}

fn said(stdout: &str, stderr: &str) -> String {
    let text = format!("{stdout}{stderr}");
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!("; it said: {text}")
    }
}

/// Sets keys in `<name>.conf` with the runtime's atomic write, keeping every other line.
struct EditConf {
    path: PathBuf,
    set: Vec<(String, String)>,
    previous: Option<FileState>,
}

impl Step for EditConf {
    fn describe(&self) -> String {
        let keys: Vec<&str> = self.set.iter().map(|(k, _)| k.as_str()).collect();
        format!("set {} in {}", keys.join(", "), self.path.display())
    }
    fn apply(&mut self) -> Result<()> {
        let current = wfs::read_state(&self.path)?
            .ok_or_else(|| anyhow!("{} does not exist", self.path.display()))?;
        if self.previous.is_none() {
            self.previous = Some(current.clone());
        }
        let mut conf = VmConf::parse(&String::from_utf8_lossy(&current.content));
        for (k, v) in &self.set {
            if v.is_empty() {
                conf.remove(k);
            } else {
                conf.set(k, v);
            }
        }
        wfs::write_atomic(&self.path, conf.text().as_bytes(), Attrs::default())?;
        let back = wfs::read_state(&self.path)?
            .map(|s| VmConf::parse(&String::from_utf8_lossy(&s.content)));
        for (k, v) in &self.set {
            let got = back.as_ref().and_then(|c| c.get(k)).unwrap_or_default();
            if got != *v {
                bail!(
                    "{} says {k}={got:?} after writing {v:?}",
                    self.path.display()
                );
            }
        }
        Ok(())
    }
    fn undo(&mut self) -> Result<()> {
        match &self.previous {
            Some(p) => wfs::restore(&self.path, Some(p)),
            None => Ok(()),
        }
    }
}

/// Writes `.cloud-init/network-config` and `user-data` where vm-bhyve's differ from what
/// nuageinit reads, before the first start; on 1.6 then rebuilds `seed.iso`.
struct WriteSeed {
    paths: GuestPaths,
    network: Option<NetSeed>,
    user_data: Option<String>,
    makefs: Option<PathBuf>,
    previous: Vec<(PathBuf, Option<FileState>)>,
}

impl Step for WriteSeed {
    fn describe(&self) -> String {
        format!(
            "write the cloud-init seed in {}",
            self.paths.seed_dir().display()
        )
    }
    fn apply(&mut self) -> Result<()> {
        let conf = wfs::read_state(&self.paths.conf())?
            .map(|s| VmConf::parse(&String::from_utf8_lossy(&s.content)))
            .ok_or_else(|| anyhow!("{} does not exist", self.paths.conf().display()))?;
        let mut files = Vec::new();
        if let Some(net) = &self.network {
            let mac = conf
                .get("network0_mac")
                .ok_or_else(|| anyhow!("{} has no network0_mac", self.paths.conf().display()))?;
            files.push((
                self.paths.seed_file("network-config"),
                vm_bhyve::render_network_config(&mac, net),
            ));
        }
        if let Some(ud) = &self.user_data {
            files.push((self.paths.seed_file("user-data"), ud.clone()));
        }
        let mut wrote = false;
        for (path, text) in files {
            let before = wfs::read_state(&path)?;
            if before
                .as_ref()
                .is_some_and(|b| b.content == text.as_bytes())
            {
                continue;
            }
            wfs::write_atomic(&path, text.as_bytes(), Attrs::default())?;
            self.previous.push((path, before));
            wrote = true;
        }
        if let (true, Some(makefs)) = (wrote, &self.makefs) {
            vm_bhyve::makefs_seed(makefs, &self.paths.seed_iso(), &self.paths.seed_dir()).run()?;
            if wfs::read_state(&self.paths.seed_iso())?.is_none() {
                bail!(
                    "{} is missing after makefs",
                    self.paths.seed_iso().display()
                );
            }
        }
        Ok(())
    }
    fn undo(&mut self) -> Result<()> {
        for (path, before) in self.previous.iter().rev() {
            wfs::restore(path, before.as_ref())?;
        }
        Ok(())
    }
}

fn log_len(paths: &GuestPaths) -> u64 {
    wfs::read_tail(&paths.log(), u64::MAX, 0)
        .ok()
        .flatten()
        .map_or(0, |(size, _)| size)
}

fn log_since(paths: &GuestPaths, from: u64) -> String {
    wfs::read_tail(&paths.log(), from, crate::observe::LOG_TAIL)
        .ok()
        .flatten()
        .map(|(_, end)| String::from_utf8_lossy(&end).into_owned())
        .unwrap_or_default()
}

/// `vm start` (or `vm install`), then `vm list` until `Running`.
struct StartGuest {
    vm: PathBuf,
    paths: GuestPaths,
    iso: Option<String>,
    timeout: Duration,
}

impl StartGuest {
    fn cmd(&self) -> Cmd {
        match &self.iso {
            Some(iso) => vm_bhyve::install(&self.vm, &self.paths.name, iso),
            None => vm_bhyve::start(&self.vm, &self.paths.name),
        }
    }
}

impl Step for StartGuest {
    fn describe(&self) -> String {
        self.cmd().to_string()
    }
    fn command(&self) -> Option<String> {
        Some(self.describe())
    }
    fn apply(&mut self) -> Result<()> {
        let from = log_len(&self.paths);
        let cmd = self.cmd();
        let out = cmd.run()?;
        // core::__start reports its refusals on stdout with "  ! " and may still exit 0.
        if let Some(line) = out.stdout.lines().find(|l| l.trim_start().starts_with('!')) {
            bail!(
                "`{cmd}` refused: {}",
                line.trim().trim_start_matches('!').trim()
            );
        }
        let deadline = Instant::now() + self.timeout;
        let name = &self.paths.name;
        loop {
            let state = current_state(&self.vm, name)?;
            if matches!(state, Some(VmState::Running(_))) {
                return Ok(());
            }
            if let Some(failure) = vm_bhyve::start_failure(&log_since(&self.paths, from)) {
                bail!(
                    "guest {name} did not start: {} says \"{failure}\" (state {})",
                    self.paths.log().display(),
                    state
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "gone".into())
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "guest {name} is not running {}s after `{cmd}` (state {}); see {}",
                    self.timeout.as_secs(),
                    state
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "gone".into()),
                    self.paths.log().display()
                );
            }
            std::thread::sleep(POLL);
        }
    }
    fn undo(&mut self) -> Result<()> {
        vm_bhyve::poweroff(&self.vm, &self.paths.name)
            .run()
            .map(|_| ())
    }
}

/// Waits until `vm list` no longer shows the guest running.
fn wait_stopped(vm: &Path, name: &str, deadline: Instant) -> Result<Option<VmState>> {
    loop {
        let state = current_state(vm, name)?;
        if !state.as_ref().is_some_and(VmState::is_running) {
            return Ok(state);
        }
        if Instant::now() >= deadline {
            return Ok(state);
        }
        std::thread::sleep(POLL);
    }
}

/// `vm stop` (ACPI), wait, `vm poweroff -f` after the timeout.
struct StopGuest {
    vm: PathBuf,
    name: String,
    timeout: Duration,
}

impl Step for StopGuest {
    fn describe(&self) -> String {
        vm_bhyve::stop(&self.vm, &self.name).to_string()
    }
    fn command(&self) -> Option<String> {
        Some(self.describe())
    }
    fn apply(&mut self) -> Result<()> {
        vm_bhyve::stop(&self.vm, &self.name).run()?;
        let state = wait_stopped(&self.vm, &self.name, Instant::now() + self.timeout)?;
        if !state.as_ref().is_some_and(VmState::is_running) {
            return Ok(());
        }
        let poweroff = vm_bhyve::poweroff(&self.vm, &self.name);
        poweroff.run().with_context(|| {
            format!(
                "guest {} ignored the ACPI shutdown for {}s",
                self.name,
                self.timeout.as_secs()
            )
        })?;
        let state = wait_stopped(&self.vm, &self.name, Instant::now() + POWEROFF_WAIT)?;
        if state.as_ref().is_some_and(VmState::is_running) {
            bail!(
                "guest {} still runs {}s after `{poweroff}`",
                self.name,
                POWEROFF_WAIT.as_secs()
            );
        }
        Ok(())
    }
}

/// `vm destroy -f`, then the guest's directory must be gone.
struct DestroyGuest {
    vm: PathBuf,
    paths: GuestPaths,
}

impl Step for DestroyGuest {
    fn describe(&self) -> String {
        vm_bhyve::destroy(&self.vm, &self.paths.name).to_string()
    }
    fn command(&self) -> Option<String> {
        Some(self.describe())
    }
    fn apply(&mut self) -> Result<()> {
        let cmd = vm_bhyve::destroy(&self.vm, &self.paths.name);
        let out = cmd.run()?;
        if wfs::read_state(&self.paths.conf())?.is_some() {
            bail!(
                "`{cmd}` exited 0 but {} is still there{}",
                self.paths.conf().display(),
                said(&out.stdout, &out.stderr)
            );
        }
        Ok(())
    }
}
