//! The pure planner: `(&Settings, &Observed) -> VmPlan`. It reads nothing and runs nothing;
//! the table tests below build `Observed` in code and check the actions, the diff and
//! `changed`.

use std::path::PathBuf;

use anyhow::{bail, Result};
use serde_json::{json, Map, Value};

use warden_runtime::fs::FileState;
use warden_runtime::vm_bhyve::{self, GuestPaths, NetKeys, NetSeed, NewGuest, UserSeed, VmState};
use warden_runtime::Diff;

use crate::observe::{Guest, Observed};
use crate::{Settings, State};

/// One thing to do to the host, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `vm create …`; the temporary seed input files (key file, user-data) are written first
    /// (mode 0600) and removed afterwards.
    Create {
        guest: NewGuest,
        inputs: Vec<(PathBuf, String)>,
    },
    /// Sets keys in `<name>.conf` (the first assignment, vm-bhyve's rule). `previous` is the
    /// file as observed (none for a guest this run creates).
    EditConf {
        set: Vec<(String, String)>,
        previous: Option<FileState>,
    },
    /// Makes the seed say what nuageinit reads (network-config with `gateway4` and the
    /// interface name, user-data with the user); `rebuild_iso` for 1.6, which built seed.iso
    /// during `vm create`.
    WriteSeed {
        network: Option<NetSeed>,
        user_data: Option<String>,
        rebuild_iso: bool,
    },
    /// `vm start` (or `vm install` with an ISO), then wait for `Running`.
    Start { iso: Option<String> },
    /// `vm stop`, wait for it to stop, `vm poweroff -f` after `stop_timeout`.
    Stop,
    /// `vm destroy -f`, then check the guest's directory is gone.
    Destroy,
}

impl Action {
    pub fn changes_state(&self) -> bool {
        matches!(self, Action::Start { .. } | Action::Stop)
    }
}

/// What the planner decided.
#[derive(Debug, Clone, PartialEq)]
pub struct VmPlan {
    pub paths: GuestPaths,
    pub actions: Vec<Action>,
    pub diffs: Vec<Diff>,
    pub warnings: Vec<String>,
    pub values: Map<String, Value>,
    pub msg: String,
}

impl VmPlan {
    pub fn changed(&self) -> bool {
        !self.actions.is_empty()
    }
}

fn state_line(state: &str) -> String {
    format!("{state}\n")
}

/// Where the guest's `-k` / `-u` input files go: hidden files in `vm_dir`, which `vm list`
/// (`ls -1`) skips.
fn input_path(observed: &Observed, name: &str, kind: &str) -> PathBuf {
    observed.vm_dir.join(format!(".warden-{name}.{kind}"))
}

/// The user-data the seed should carry, if vm-bhyve's own (`-k`) is not it.
fn user_data(settings: &Settings) -> Option<String> {
    let seed = settings.seed.as_ref()?;
    let user = seed.user.as_ref()?;
    let (doas, sudo) = seed.rules();
    Some(vm_bhyve::render_user_data(&UserSeed {
        user: user.clone(),
        keys: seed.keys.clone(),
        doas,
        sudo,
    }))
}

pub fn plan(settings: &Settings, observed: &Observed) -> Result<VmPlan> {
    let name = &settings.name;
    let version = observed.version;
    let mut problems = Vec::new();
    let store = observed
        .datastores
        .iter()
        .find(|d| d.name == settings.datastore);
    let paths = match (&observed.guest, store) {
        (Some(g), _) => g.paths.clone(),
        (None, Some(ds)) => GuestPaths::new(&ds.name, &ds.path, name),
        (None, None) => GuestPaths::new(&settings.datastore, &observed.vm_dir, name),
    };
    let mut out = VmPlan {
        paths: paths.clone(),
        actions: Vec::new(),
        diffs: Vec::new(),
        warnings: Vec::new(),
        values: Map::new(),
        msg: String::new(),
    };
    out.values.insert("name".into(), json!(name));
    out.values
        .insert("vm_bhyve_version".into(), json!(version.to_string()));

    // What vm-bhyve does not check, against the host.
    if settings.state != State::Absent {
        if let Some(sw) = &settings.switch {
            if !observed.switches.contains(sw) {
                problems.push(format!(
                    "switch {sw} does not exist (switch_list in {}: {}); create it with `vm switch create {sw}`",
                    observed.vm_dir.join(".config/system.conf").display(),
                    if observed.switches.is_empty() { "none".to_string() } else { observed.switches.join(", ") }
                ));
            }
        }
        if observed.guest.is_none() {
            match store {
                Some(ds) if ds.holds_guests() => {}
                Some(ds) => problems.push(format!(
                    "datastore {} is an {} store and holds no guests",
                    ds.name, ds.kind
                )),
                None => problems.push(format!(
                    "datastore {} does not exist (vm datastore list: {})",
                    settings.datastore,
                    observed
                        .datastores
                        .iter()
                        .map(|d| d.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
            match &observed.template {
                None => problems.push(format!(
                    "template {} does not exist: no {}",
                    settings.template,
                    observed
                        .vm_dir
                        .join(".templates")
                        .join(format!("{}.conf", settings.template))
                        .display()
                )),
                Some(t) if t.get("disk0_name").is_none() => problems.push(format!(
                    "template {} has no disk0_name; vm create refuses it",
                    settings.template
                )),
                Some(_) => {}
            }
            if let Some(image) = &settings.image {
                if let Some(e) = &observed.images_error {
                    problems.push(format!("cannot use image {}: {e}", image.name));
                } else if !observed.images.contains(&image.name) {
                    problems.push(format!(
                        "image {} is not listed by `vm {}` ({}); fetch it first",
                        image.name,
                        if image.iso { "iso" } else { "img" },
                        if observed.images.is_empty() {
                            "none".to_string()
                        } else {
                            observed.images.join(", ")
                        }
                    ));
                }
            }
        }
    }
    if let Some(Guest {
        state: VmState::Locked(host),
        ..
    }) = &observed.guest
    {
        problems.push(format!(
            "guest {name} is locked by {host} ({}): it runs on another host, or a crash left the lock; remove the file once the guest is down",
            paths.run_lock().display()
        ));
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }

    match (&observed.guest, settings.state) {
        (None, State::Absent) => {
            out.msg = format!("guest {name} is absent");
            out.values.insert("state".into(), json!("absent"));
        }
        (Some(guest), State::Absent) => {
            if guest.state.is_running() {
                out.actions.push(Action::Stop);
            }
            out.actions.push(Action::Destroy);
            out.diffs.push(Diff::new(
                format!("guest {name}"),
                state_line(guest.state.word()),
                state_line("absent"),
            ));
            out.msg = format!("guest {name} destroyed");
            out.values.insert("state".into(), json!("absent"));
        }
        (None, wanted) => plan_create(settings, observed, wanted, &mut out),
        (Some(guest), wanted) => plan_existing(settings, guest, wanted, &mut out),
    }
    out.values
        .insert("datastore".into(), json!(paths.datastore));
    out.values
        .insert("path".into(), json!(paths.dir.display().to_string()));
    Ok(out)
}

fn plan_create(settings: &Settings, observed: &Observed, wanted: State, out: &mut VmPlan) {
    let name = &settings.name;
    let version = observed.version;
    let mut guest = NewGuest {
        name: name.clone(),
        datastore: (settings.datastore != "default").then(|| settings.datastore.clone()),
        template: (settings.template != "default").then(|| settings.template.clone()),
        disk_size: settings.disk_size.clone(),
        cpus: settings.cpus,
        memory: settings.memory.clone(),
        image: settings
            .image
            .as_ref()
            .filter(|i| !i.iso)
            .map(|i| i.name.clone()),
        ..NewGuest::default()
    };
    let mut inputs = Vec::new();
    let mut seed_after = None;
    if let Some(seed) = &settings.seed {
        guest.cloud_init = true;
        let wanted_user_data = user_data(settings);
        match (&wanted_user_data, version.has_user_data_flag()) {
            (Some(ud), true) => {
                let path = input_path(observed, name, "user-data");
                inputs.push((path.clone(), ud.clone()));
                guest.user_data_file = Some(path);
            }
            _ if !seed.keys.is_empty() => {
                let path = input_path(observed, name, "keys");
                inputs.push((path.clone(), seed.keys.join("\n") + "\n"));
                guest.key_file = Some(path);
            }
            _ => {}
        }
        // 1.6 reads the key file as one key: several keys need a user-data of our own.
        let patch_user_data = match &wanted_user_data {
            Some(ud) if !version.has_user_data_flag() => Some(ud.clone()),
            None if version.netconfig_keys() == NetKeys::V16 && seed.keys.len() > 1 => {
                Some(vm_bhyve::render_key_user_data(&seed.keys))
            }
            _ => None,
        };
        if seed.has_network() {
            guest.netconfig = Some(vm_bhyve::netconfig_arg(version, &seed.net));
        }
        let network = (seed.net.address.is_some()
            || seed.net.gateway.is_some()
            || !seed.net.nameservers.is_empty()
            || !seed.net.search_domains.is_empty())
        .then(|| seed.net.clone());
        if network.is_some() || patch_user_data.is_some() {
            seed_after = Some(Action::WriteSeed {
                network,
                user_data: patch_user_data,
                rebuild_iso: version.builds_seed_at_create(),
            });
        }
        if let Some(a) = seed.net.address {
            out.values
                .insert("address".into(), json!(a.addr().to_string()));
        }
    }
    out.actions.push(Action::Create { guest, inputs });
    let mut set = Vec::new();
    if let Some(sw) = &settings.switch {
        let template_switch = observed
            .template
            .as_ref()
            .and_then(|t| t.get("network0_switch"));
        if template_switch.as_deref() != Some(sw) {
            set.push(("network0_switch".to_string(), sw.clone()));
        }
    }
    if let Some(tags) = settings.tags.as_ref().filter(|t| !t.is_empty()) {
        set.push(("tags".to_string(), tags.join(" ")));
    }
    for (k, v) in &settings.config {
        if observed.template.as_ref().and_then(|t| t.get(k)).as_deref() != Some(v.as_str()) {
            set.push((k.clone(), v.clone()));
        }
    }
    if !set.is_empty() {
        out.actions.push(Action::EditConf {
            set,
            previous: None,
        });
    }
    if let Some(a) = seed_after {
        out.actions.push(a);
    }
    if wanted == State::Running {
        out.actions.push(Action::Start {
            iso: settings
                .image
                .as_ref()
                .filter(|i| i.iso)
                .map(|i| i.name.clone()),
        });
    }
    let after = if wanted == State::Running {
        "running"
    } else {
        "stopped"
    };
    out.diffs.push(Diff::new(
        format!("guest {name}"),
        state_line("absent"),
        state_line(after),
    ));
    if let Some(ud) = user_data(settings) {
        out.diffs.push(Diff::new(
            out.paths.seed_file("user-data").display().to_string(),
            "",
            ud,
        ));
    }
    out.msg = format!(
        "guest {name} created{}",
        if wanted == State::Running {
            " and started"
        } else {
            ""
        }
    );
    out.values.insert("state".into(), json!(after));
    out.values.insert("created".into(), json!(true));
    out.values.insert("restarted".into(), json!(false));
    out.values.insert("restart_pending".into(), json!(false));
}

fn plan_existing(settings: &Settings, guest: &Guest, wanted: State, out: &mut VmPlan) {
    let name = &settings.name;
    let mut conf = guest.conf.clone();
    let mut set: Vec<(String, String)> = Vec::new();
    let wanted_values = [
        ("cpu", settings.cpus.map(|c| c.to_string())),
        ("memory", settings.memory.clone()),
        ("network0_switch", settings.switch.clone()),
    ];
    let extra = settings
        .config
        .iter()
        .map(|(k, v)| (k.as_str(), Some(v.clone())));
    for (key, value) in wanted_values.into_iter().chain(extra) {
        if let Some(v) = value {
            if conf.get(key).as_deref() != Some(v.as_str()) {
                conf.set(key, &v);
                set.push((key.to_string(), v));
            }
        }
    }
    if let Some(tags) = &settings.tags {
        let have: Vec<String> = guest
            .conf
            .get("tags")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if &have != tags {
            if tags.is_empty() {
                conf.remove("tags");
                set.push(("tags".to_string(), String::new()));
            } else {
                conf.set("tags", &tags.join(" "));
                set.push(("tags".to_string(), tags.join(" ")));
            }
        }
    }
    let cpu_or_memory_edited = set.iter().any(|(k, _)| k == "cpu" || k == "memory");
    if !set.is_empty() {
        out.actions.push(Action::EditConf {
            set,
            previous: Some(guest.conf_file.clone()),
        });
        out.diffs.push(Diff::new(
            guest.paths.conf().display().to_string(),
            guest.conf.text(),
            conf.text(),
        ));
    }
    if settings.disk_size.is_some() {
        out.warnings.push(format!("disk_size applies when the guest is created; {name} exists and its disk is left as it is"));
    }
    if let Some(seed) = &settings.seed {
        let have = guest
            .network_config
            .as_deref()
            .and_then(vm_bhyve::network_config_address);
        let wanted_address = seed.net.address.map(|a| a.to_string());
        if wanted_address.is_some() && have != wanted_address {
            out.warnings.push(format!(
                "the seed of {name} says address {}, not {}: nuageinit applies the seed at first boot only, so it is left as it is (recreate the guest to change it)",
                have.as_deref().unwrap_or("none"),
                wanted_address.as_deref().unwrap_or("none"),
            ));
        }
        if let Some(a) = seed.net.address {
            out.values
                .insert("address".into(), json!(a.addr().to_string()));
        }
    } else if let Some(a) = guest
        .network_config
        .as_deref()
        .and_then(vm_bhyve::network_config_address)
    {
        out.values.insert(
            "address".into(),
            json!(a.split('/').next().unwrap_or_default()),
        );
    }

    // A running guest runs with what it was started with (vm-bhyve.log).
    let running = guest.state.is_running();
    let target_cpu = conf.get("cpu").unwrap_or_default();
    let target_mem = conf.get("memory").unwrap_or_default();
    let stale = running
        && match &guest.started_with {
            Some((cpu, mem)) => *cpu != target_cpu || *mem != target_mem,
            None => cpu_or_memory_edited,
        };
    let mut restarted = false;
    let mut pending = false;
    match wanted {
        State::Running if !running => out.actions.push(Action::Start { iso: None }),
        State::Stopped if running => out.actions.push(Action::Stop),
        _ if stale && wanted != State::Stopped => {
            if settings.restart {
                out.actions.push(Action::Stop);
                out.actions.push(Action::Start { iso: None });
                restarted = true;
            } else {
                pending = true;
                let (cpu, mem) = guest.started_with.clone().unwrap_or_default();
                out.warnings.push(format!(
                    "guest {name} runs with cpus {cpu} and memory {mem}; the new cpus {target_cpu} / memory {target_mem} take effect when it restarts (restart: true restarts it now)"
                ));
            }
        }
        _ => {}
    }
    let after = match wanted {
        State::Running => "running",
        State::Stopped => "stopped",
        _ => guest.state.word(),
    };
    if guest.state.word() != after || restarted {
        out.diffs.push(Diff::new(
            format!("guest {name}"),
            state_line(guest.state.word()),
            state_line(if restarted {
                "running (restarted)"
            } else {
                after
            }),
        ));
    }
    out.values.insert("state".into(), json!(after));
    out.values.insert("created".into(), json!(false));
    out.values.insert("restarted".into(), json!(restarted));
    out.values.insert("restart_pending".into(), json!(pending));
    out.msg = if out.actions.is_empty() {
        format!("guest {name} is up to date")
    } else if restarted {
        format!("guest {name} changed and restarted")
    } else {
        format!("guest {name} changed")
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{Image, Privilege, Seed};
    use crate::observe::Tools;
    use std::path::Path;
    use std::time::Duration;
    use warden_runtime::vm_bhyve::{Datastore, Version, VmConf};

    const TEMPLATE: &str = "loader=\"bhyveload\"\ncpu=1\nmemory=256M\nnetwork0_type=\"virtio-net\"\nnetwork0_switch=\"public\"\ndisk0_type=\"virtio-blk\"\ndisk0_name=\"disk0.img\"\n";

    fn host(version: &str) -> Observed {
        Observed {
            tools: Tools {
                vm: "/usr/local/sbin/vm".into(),
                makefs: "/usr/sbin/makefs".into(),
            },
            version: Version::parse(version).unwrap(),
            vm_dir: "/vm".into(),
            datastores: vec![
                Datastore {
                    name: "default".into(),
                    kind: "directory".into(),
                    path: "/vm".into(),
                },
                Datastore {
                    name: "isos".into(),
                    kind: "iso".into(),
                    path: "/isos".into(),
                },
            ],
            switches: vec!["public".into(), "warden".into()],
            template: Some(VmConf::parse(TEMPLATE)),
            images: vec!["FreeBSD-14.2-RELEASE-amd64.raw".into()],
            images_error: None,
            guest: None,
        }
    }

    fn with_guest(
        mut o: Observed,
        conf: &str,
        state: VmState,
        started_with: Option<(&str, &str)>,
    ) -> Observed {
        let paths = GuestPaths::new("default", Path::new("/vm"), "vm01");
        o.guest = Some(Guest {
            paths,
            conf_file: FileState {
                content: conf.as_bytes().to_vec(),
                mode: 0o644,
                uid: 0,
                gid: 0,
            },
            conf: VmConf::parse(conf),
            state,
            started_with: started_with.map(|(c, m)| (c.to_string(), m.to_string())),
            network_config: Some(
                "version: 2\nethernets:\n  id0:\n    addresses: [10.0.0.11/24]\n".into(),
            ),
            user_data: None,
            seed_iso: true,
        });
        o
    }

    fn seeded(state: State) -> Settings {
        let mut s = Settings::new("vm01", state);
        s.cpus = Some(2);
        s.memory = Some("2G".into());
        s.switch = Some("warden".into());
        s.tags = Some(vec!["warden".into()]);
        s.seed = Some(Seed {
            user: Some("admin".into()),
            keys: vec!["ssh-ed25519 AAAA me@ctl".into()],
            privilege: Some(Privilege::Doas),
            net: NetSeed {
                interface: "vtnet0".into(),
                address: Some("10.0.0.11/24".parse().unwrap()),
                gateway: Some("10.0.0.1".parse().unwrap()),
                ..NetSeed::default()
            },
        });
        s
    }

    fn kinds(p: &VmPlan) -> Vec<&'static str> {
        p.actions
            .iter()
            .map(|a| match a {
                Action::Create { .. } => "create",
                Action::EditConf { .. } => "edit",
                Action::WriteSeed { .. } => "seed",
                Action::Start { .. } => "start",
                Action::Stop => "stop",
                Action::Destroy => "destroy",
            })
            .collect()
    }

    fn create_args(p: &VmPlan) -> (NewGuest, Vec<(PathBuf, String)>) {
        match &p.actions[0] {
            Action::Create { guest, inputs } => (guest.clone(), inputs.clone()),
            other => panic!("not a create: {other:?}"),
        }
    }

    /// Per version: which seed flags `vm create` gets and what warden writes afterwards.
    #[test]
    fn a_new_guest_per_version() {
        struct Row {
            version: &'static str,
            netconfig: &'static str,
            user_data_flag: bool,
            key_flag: bool,
            patch_user_data: bool,
            rebuild_iso: bool,
        }
        let rows = [
            Row {
                version: "1.6-devel",
                netconfig: "ip=10.0.0.11/24;gateway=10.0.0.1",
                user_data_flag: false,
                key_flag: true,
                patch_user_data: true,
                rebuild_iso: true,
            },
            Row {
                version: "1.7.0",
                netconfig: "interface=vtnet0;ip=10.0.0.11/24;gateway4=10.0.0.1",
                user_data_flag: false,
                key_flag: true,
                patch_user_data: true,
                rebuild_iso: false,
            },
            Row {
                version: "1.7.1",
                netconfig: "interface=vtnet0;ip=10.0.0.11/24;gateway4=10.0.0.1",
                user_data_flag: true,
                key_flag: false,
                patch_user_data: false,
                rebuild_iso: false,
            },
            Row {
                version: "1.7.5",
                netconfig: "interface=vtnet0;ip=10.0.0.11/24;gateway4=10.0.0.1",
                user_data_flag: true,
                key_flag: false,
                patch_user_data: false,
                rebuild_iso: false,
            },
            Row {
                version: "1.8-devel",
                netconfig: "interface=vtnet0;ip=10.0.0.11/24;gateway4=10.0.0.1",
                user_data_flag: true,
                key_flag: false,
                patch_user_data: false,
                rebuild_iso: false,
            },
        ];
        for row in rows {
            let p = plan(&seeded(State::Running), &host(row.version)).unwrap();
            assert_eq!(
                kinds(&p),
                ["create", "edit", "seed", "start"],
                "{}",
                row.version
            );
            let (guest, inputs) = create_args(&p);
            assert_eq!(
                guest.netconfig.as_deref(),
                Some(row.netconfig),
                "{}",
                row.version
            );
            assert_eq!(
                guest.user_data_file.is_some(),
                row.user_data_flag,
                "{}",
                row.version
            );
            assert_eq!(guest.key_file.is_some(), row.key_flag, "{}", row.version);
            assert!(
                guest.cloud_init && guest.cpus == Some(2) && guest.memory.as_deref() == Some("2G")
            );
            assert_eq!(inputs.len(), 1);
            assert!(
                inputs[0]
                    .0
                    .to_string_lossy()
                    .starts_with("/vm/.warden-vm01."),
                "{:?}",
                inputs[0].0
            );
            match &p.actions[2] {
                Action::WriteSeed {
                    network,
                    user_data,
                    rebuild_iso,
                } => {
                    assert!(network.is_some(), "{}", row.version);
                    assert_eq!(user_data.is_some(), row.patch_user_data, "{}", row.version);
                    assert_eq!(*rebuild_iso, row.rebuild_iso, "{}", row.version);
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(
                p.actions[1],
                Action::EditConf {
                    set: vec![
                        ("network0_switch".into(), "warden".into()),
                        ("tags".into(), "warden".into())
                    ],
                    previous: None
                }
            );
            assert!(p.changed());
            assert_eq!(p.values["address"], "10.0.0.11");
            assert_eq!(p.diffs[0].after, "running\n");
        }
    }

    #[test]
    fn a_new_guest_with_an_image_or_an_iso_and_no_seed() {
        let mut s = Settings::new("vm01", State::Running);
        s.image = Some(Image {
            name: "FreeBSD-14.2-RELEASE-amd64.raw".into(),
            iso: false,
        });
        s.disk_size = Some("40G".into());
        let p = plan(&s, &host("1.7.5")).unwrap();
        assert_eq!(kinds(&p), ["create", "start"]);
        let (guest, inputs) = create_args(&p);
        assert_eq!(
            guest.image.as_deref(),
            Some("FreeBSD-14.2-RELEASE-amd64.raw")
        );
        assert_eq!(guest.disk_size.as_deref(), Some("40G"));
        assert!(!guest.cloud_init && inputs.is_empty());

        let mut o = host("1.7.5");
        o.images = vec!["FreeBSD-14.2-RELEASE-amd64-disc1.iso".into()];
        s.image = Some(Image {
            name: "FreeBSD-14.2-RELEASE-amd64-disc1.iso".into(),
            iso: true,
        });
        let p = plan(&s, &o).unwrap();
        assert_eq!(
            p.actions[1],
            Action::Start {
                iso: Some("FreeBSD-14.2-RELEASE-amd64-disc1.iso".into())
            }
        );
        assert_eq!(create_args(&p).0.image, None);

        let p = plan(&Settings::new("vm01", State::Present), &host("1.7.5")).unwrap();
        assert_eq!(kinds(&p), ["create"]);
        assert_eq!(p.values["state"], "stopped");
    }

    #[test]
    fn what_vm_bhyve_does_not_check_fails_before_anything_runs() {
        let mut s = seeded(State::Running);
        s.switch = Some("nope".into());
        s.datastore = "ssd".into();
        s.template = "linux".into();
        s.image = Some(Image {
            name: "missing.raw".into(),
            iso: false,
        });
        let mut o = host("1.7.5");
        o.template = None;
        let err = plan(&s, &o).unwrap_err().to_string();
        for needle in [
            "switch nope does not exist",
            "datastore ssd does not exist",
            "template linux does not exist",
            "image missing.raw is not listed by `vm img`",
        ] {
            assert!(err.contains(needle), "{needle}: {err}");
        }
        s.datastore = "isos".into();
        let err = plan(&s, &o).unwrap_err().to_string();
        assert!(err.contains("datastore isos is an iso store"), "{err}");
        let mut o = host("1.7.5");
        o.template = Some(VmConf::parse("loader=\"bhyveload\"\n"));
        o.images_error = Some("`vm img` failed: qemu-img is required".into());
        let mut s = Settings::new("vm01", State::Running);
        s.image = Some(Image {
            name: "a.raw".into(),
            iso: false,
        });
        let err = plan(&s, &o).unwrap_err().to_string();
        assert!(
            err.contains("has no disk0_name") && err.contains("qemu-img is required"),
            "{err}"
        );
    }

    #[test]
    fn an_existing_guest_converged_changes_nothing() {
        let conf = format!("{TEMPLATE}cpu=\"2\"\n");
        let conf = conf
            .replace("cpu=1\n", "")
            .replace("memory=256M", "memory=\"2G\"")
            .replace("network0_switch=\"public\"", "network0_switch=\"warden\"")
            + "tags=\"warden\"\n";
        for (state, wanted) in [
            (VmState::Running(42), State::Running),
            (VmState::Stopped, State::Stopped),
            (VmState::Running(42), State::Present),
            (VmState::Stopped, State::Present),
        ] {
            let o = with_guest(host("1.7.5"), &conf, state.clone(), Some(("2", "2G")));
            let p = plan(&seeded(wanted), &o).unwrap();
            assert!(!p.changed(), "{state:?} {wanted:?}: {:?}", p.actions);
            assert!(
                p.diffs.is_empty() && p.warnings.is_empty(),
                "{:?} {:?}",
                p.diffs,
                p.warnings
            );
            assert_eq!(p.msg, "guest vm01 is up to date");
        }
    }

    #[test]
    fn state_changes() {
        let rows: [(VmState, State, &[&str]); 7] = [
            (VmState::Stopped, State::Running, &["start"]),
            (VmState::Suspended, State::Running, &["start"]),
            (VmState::Bootloader(7), State::Running, &[]),
            (VmState::Running(7), State::Stopped, &["stop"]),
            (VmState::Running(7), State::Absent, &["stop", "destroy"]),
            (VmState::Stopped, State::Absent, &["destroy"]),
            (VmState::Suspended, State::Stopped, &[]),
        ];
        for (have, wanted, actions) in rows {
            let o = with_guest(host("1.7.5"), TEMPLATE, have.clone(), Some(("1", "256M")));
            let p = plan(&Settings::new("vm01", wanted), &o).unwrap();
            assert_eq!(kinds(&p), actions, "{have:?} -> {wanted:?}");
        }
        let p = plan(&Settings::new("vm01", State::Absent), &host("1.7.5")).unwrap();
        assert!(!p.changed());
        let o = with_guest(
            host("1.7.5"),
            TEMPLATE,
            VmState::Locked("other".into()),
            None,
        );
        let err = plan(&Settings::new("vm01", State::Running), &o)
            .unwrap_err()
            .to_string();
        assert!(err.contains("locked by other"), "{err}");
    }

    #[test]
    fn cpus_of_a_running_guest_restart_only_with_restart_true() {
        let mut s = Settings::new("vm01", State::Running);
        s.cpus = Some(4);
        let o = with_guest(
            host("1.7.5"),
            TEMPLATE,
            VmState::Running(9),
            Some(("1", "256M")),
        );
        let p = plan(&s, &o).unwrap();
        assert_eq!(kinds(&p), ["edit"]);
        assert_eq!(p.values["restart_pending"], true);
        assert!(
            p.warnings[0].contains("take effect when it restarts"),
            "{:?}",
            p.warnings
        );
        assert!(p.diffs[0].after.contains("cpu=\"4\"") && p.diffs[0].before.contains("cpu=1"));

        // next run: the conf already says 4, the guest still runs with 1
        let o = with_guest(
            host("1.7.5"),
            &TEMPLATE.replace("cpu=1", "cpu=\"4\""),
            VmState::Running(9),
            Some(("1", "256M")),
        );
        let p = plan(&s, &o).unwrap();
        assert!(!p.changed());
        assert_eq!(p.values["restart_pending"], true);

        s.restart = true;
        let p = plan(&s, &o).unwrap();
        assert_eq!(kinds(&p), ["stop", "start"]);
        assert_eq!(p.values["restarted"], true);
        // a stopped guest just gets the new conf
        let o = with_guest(
            host("1.7.5"),
            TEMPLATE,
            VmState::Stopped,
            Some(("1", "256M")),
        );
        let p = plan(&s, &o).unwrap();
        assert_eq!(kinds(&p), ["edit", "start"]);
        assert_eq!(p.values["restarted"], false);
    }

    #[test]
    fn a_changed_seed_on_an_existing_guest_is_a_warning() {
        let mut s = seeded(State::Present);
        s.seed.as_mut().unwrap().net.address = Some("10.0.0.99/24".parse().unwrap());
        s.cpus = None;
        s.memory = None;
        s.switch = None;
        s.tags = None;
        let o = with_guest(host("1.7.5"), TEMPLATE, VmState::Stopped, None);
        let p = plan(&s, &o).unwrap();
        assert!(!p.changed());
        assert!(
            p.warnings[0].contains("first boot only"),
            "{:?}",
            p.warnings
        );
    }

    #[test]
    fn config_keys_are_set_on_a_new_guest_and_edited_on_an_existing_one() {
        let mut s = Settings::new("vm01", State::Present);
        s.config = vec![("warden_agent".into(), "agent01".into())];
        let p = plan(&s, &host("1.7.5")).unwrap();
        assert_eq!(
            p.actions[1],
            Action::EditConf {
                set: vec![("warden_agent".into(), "agent01".into())],
                previous: None
            }
        );
        let o = with_guest(
            host("1.7.5"),
            &format!("{TEMPLATE}warden_agent=\"agent01\"\n"),
            VmState::Stopped,
            None,
        );
        assert!(!plan(&s, &o).unwrap().changed());
        s.config = vec![("warden_agent".into(), "agent02".into())];
        let p = plan(&s, &o).unwrap();
        assert_eq!(kinds(&p), ["edit"]);
        assert!(
            p.diffs[0].after.contains("warden_agent=\"agent02\""),
            "{:?}",
            p.diffs
        );
    }

    #[test]
    fn timeouts_are_durations() {
        let s = Settings::new("vm01", State::Running);
        assert_eq!(s.wait_timeout, Duration::from_secs(120));
    }
}
