//! Reads the bhyve host once, through the runtime: `vm version`, `vm_dir` from the rc.conf
//! chain vm-bhyve reads (lib/vm-base: `load_rc_config "vm"`) (and
//! `mount` for a `zfs:` one), `.config/system.conf` (datastores, switches), the template, the
//! guest's `<name>.conf`, its seed files and log, its row of `vm list`, and — only when a new
//! guest needs one — the image listing (`vm img` / `vm iso`).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use warden_runtime::fs::{self as wfs, FileState};
use warden_runtime::rcconf::{RcChain, RcLookup};
use warden_runtime::vm_bhyve::{self, Datastore, GuestPaths, Version, VmConf, VmState};
use warden_runtime::{find_tool, Cmd, Host};

use crate::{Settings, State};

/// The tools the plan's steps run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    pub vm: PathBuf,
    pub makefs: PathBuf,
}

/// The guest as vm-bhyve's files and `vm list` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guest {
    pub paths: GuestPaths,
    pub conf_file: FileState,
    pub conf: VmConf,
    pub state: VmState,
    /// cpu and memory of the last start (`vm-bhyve.log`).
    pub started_with: Option<(String, String)>,
    pub network_config: Option<String>,
    pub user_data: Option<String>,
    pub seed_iso: bool,
}

/// Everything the planner may know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub tools: Tools,
    pub version: Version,
    pub vm_dir: PathBuf,
    pub datastores: Vec<Datastore>,
    pub switches: Vec<String>,
    /// The template's conf; `None` when `.templates/<template>.conf` is missing.
    pub template: Option<VmConf>,
    /// Files `vm img` (or `vm iso`) lists, when a new guest needs an image.
    pub images: Vec<String>,
    /// Why the image listing failed (e.g. qemu-img is missing).
    pub images_error: Option<String>,
    pub guest: Option<Guest>,
}

fn text_of(state: &Option<FileState>) -> Option<String> {
    state
        .as_ref()
        .map(|s| String::from_utf8_lossy(&s.content).into_owned())
}

/// How much of the end of a guest's `vm-bhyve.log` is read: the last start's lines, with room.
pub const LOG_TAIL: u64 = 1 << 20;

/// The host's `vm_dir`: the param, else what vm-bhyve reads — `load_rc_config "vm"`
/// (freebsd/vm-bhyve lib/vm-base, v1.7.0): rc.conf, rc.conf.local, rc.conf.d/vm. A
/// `zfs:pool/ds` spec is its mountpoint.
fn vm_dir(settings: &Settings, host: &Host) -> Result<PathBuf> {
    if let Some(dir) = &settings.vm_dir {
        return Ok(dir.clone());
    }
    let rc = RcChain::read(&host.rc, &["vm"])?;
    let value = rc
        .lookup("vm_dir")
        .and_then(|v| v.literal().map(str::to_string))
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            anyhow!(
                "vm_dir is not set in {} or {} (vm-bhyve is not set up: sysrc vm_enable=YES vm_dir=…, then vm init), and no vm_dir was given",
                host.rc.rc_conf.display(),
                host.rc.rc_conf_local.display()
            )
        })?;
    match value.strip_prefix("zfs:") {
        Some(dataset) => {
            let out = vm_bhyve::mount_cmd(&find_tool("mount")?).run()?;
            vm_bhyve::zfs_mountpoint(&out.stdout, dataset)
                .map(PathBuf::from)
                .ok_or_else(|| anyhow!("vm_dir is zfs:{dataset}, but that dataset is not mounted"))
        }
        None => Ok(PathBuf::from(value)),
    }
}

pub fn observe(settings: &Settings, host: &Host) -> Result<Observed> {
    let vm = find_tool("vm").context("vm-bhyve is not installed (pkg install vm-bhyve)")?;
    let makefs = find_tool("makefs").unwrap_or_else(|_| PathBuf::from("/usr/sbin/makefs"));
    let version = vm_bhyve::version(&vm)?;
    if !version.supported() {
        bail!("vm-bhyve {version} is not supported: warden_vm knows 1.6, 1.7 and 1.8-devel");
    }
    let vm_dir = vm_dir(settings, host)?;
    let system = text_of(&wfs::read_state(&vm_dir.join(".config/system.conf"))?)
        .map(|t| VmConf::parse(&t))
        .unwrap_or_default();
    let needs_mount = system
        .entries()
        .iter()
        .any(|(k, v)| k.starts_with("path_") && v.starts_with("zfs:"));
    let mount_output = if needs_mount {
        vm_bhyve::mount_cmd(&find_tool("mount")?).run()?.stdout
    } else {
        String::new()
    };
    let datastores = vm_bhyve::datastores(&vm_dir, &system, &mount_output);
    let switches: Vec<String> = system
        .get("switch_list")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let template = text_of(&wfs::read_state(
        &vm_dir
            .join(".templates")
            .join(format!("{}.conf", settings.template)),
    )?)
    .map(|t| VmConf::parse(&t));

    let guest = find_guest(&vm, &datastores, &settings.name)?;
    let (mut images, mut images_error) = (Vec::new(), None);
    if let (None, Some(image), false) = (&guest, &settings.image, settings.state == State::Absent) {
        if !image.name.starts_with('/') {
            let cmd = if image.iso {
                vm_bhyve::iso_list_cmd(&vm)
            } else {
                vm_bhyve::img_list_cmd(&vm)
            };
            match cmd.output() {
                Ok(out) if out.success() => {
                    images = vm_bhyve::parse_file_list(&out.stdout)
                        .into_iter()
                        .map(|(_, f)| f)
                        .collect()
                }
                Ok(out) => images_error = Some(format!("`{cmd}` failed: {}", out.stderr.trim())),
                Err(e) => images_error = Some(format!("{e:#}")),
            }
        } else if !Path::new(&image.name).is_file() {
            images_error = Some(format!("{} is not a file", image.name));
        } else {
            images.push(image.name.clone());
        }
    }
    Ok(Observed {
        tools: Tools { vm, makefs },
        version,
        vm_dir,
        datastores,
        switches,
        template,
        images,
        images_error,
        guest,
    })
}

/// `datastore::get_guest`: the first datastore holding `<name>/<name>.conf`, then the
/// guest's files and its `vm list` row.
fn find_guest(vm: &Path, datastores: &[Datastore], name: &str) -> Result<Option<Guest>> {
    for ds in datastores.iter().filter(|d| d.holds_guests()) {
        let paths = GuestPaths::new(&ds.name, &ds.path, name);
        let Some(conf_file) = wfs::read_state(&paths.conf())? else {
            continue;
        };
        let conf = VmConf::parse(&String::from_utf8_lossy(&conf_file.content));
        let listed = vm_bhyve::list(vm)?;
        let state = listed
            .into_iter()
            .find(|v| v.name == name)
            .map(|v| v.state)
            .ok_or_else(|| {
                anyhow!(
                    "{} exists but `{}` does not show guest {name}",
                    paths.conf().display(),
                    vm_bhyve::list_cmd(vm)
                )
            })?;
        // vm-bhyve appends to vm-bhyve.log for the guest's whole life (freebsd/vm-bhyve
        // v1.7.2 lib/vm-util `util::log`, `>>`): only its end is read, where the last start is.
        let log = wfs::read_tail(&paths.log(), 0, LOG_TAIL)?
            .map(|(_, end)| String::from_utf8_lossy(&end).into_owned())
            .unwrap_or_default();
        return Ok(Some(Guest {
            network_config: text_of(&wfs::read_state(&paths.seed_file("network-config"))?),
            user_data: text_of(&wfs::read_state(&paths.seed_file("user-data"))?),
            seed_iso: wfs::read_state(&paths.seed_iso())?.is_some(),
            started_with: vm_bhyve::last_started_with(&log),
            paths,
            conf_file,
            conf,
            state,
        }));
    }
    Ok(None)
}

/// Reads the guest's state again (the steps' waits).
pub fn current_state(vm: &Path, name: &str) -> Result<Option<VmState>> {
    Ok(vm_bhyve::list(vm)?
        .into_iter()
        .find(|v| v.name == name)
        .map(|v| v.state))
}

/// For the steps: runs a command, its output kept for messages.
pub fn run(cmd: &Cmd) -> Result<String> {
    let out = cmd.run()?;
    Ok(format!("{}{}", out.stdout, out.stderr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_runtime::rcconf::RcFiles;

    fn host_in(dir: &Path) -> Host {
        Host {
            rc: RcFiles {
                rc_conf: dir.join("rc.conf"),
                rc_conf_local: dir.join("rc.conf.local"),
                rc_conf_d: vec![dir.join("rc.conf.d")],
            },
            ..Host::default()
        }
    }

    /// vm-bhyve reads `vm_dir` with `load_rc_config "vm"`, so a value in rc.conf.local or in
    /// rc.conf.d/vm is the one it uses; reading rc.conf alone missed both.
    #[test]
    fn vm_dir_in_rc_conf_local_or_rc_conf_d_vm_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let host = host_in(dir.path());
        let settings = Settings::new("vm01", State::Present);
        std::fs::write(dir.path().join("rc.conf"), "vm_enable=\"YES\"\n").unwrap();
        let err = vm_dir(&settings, &host).unwrap_err().to_string();
        assert!(err.contains("vm_dir is not set in"), "{err}");
        std::fs::write(dir.path().join("rc.conf.local"), "vm_dir=\"/vm\"\n").unwrap();
        assert_eq!(vm_dir(&settings, &host).unwrap(), PathBuf::from("/vm"));
        std::fs::create_dir(dir.path().join("rc.conf.d")).unwrap();
        std::fs::write(dir.path().join("rc.conf.d/vm"), "vm_dir=\"/guests\"\n").unwrap();
        assert_eq!(vm_dir(&settings, &host).unwrap(), PathBuf::from("/guests"));
        let given = Settings {
            vm_dir: Some("/given".into()),
            ..settings
        };
        assert_eq!(vm_dir(&given, &host).unwrap(), PathBuf::from("/given"));
    }
}
