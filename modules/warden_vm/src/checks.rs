//! Params → [`Settings`]: everything vm-bhyve would take and then fail on later (or never,
//! leaving a guest that does not run) is refused here, every problem at once, before the host
//! is read: names by `util::check_name`, cpus ≥ 1, sizes bhyve and truncate(1) read, values
//! `config::load` reads back, seed values nuageinit accepts (docs/vm-bhyve-facts.md).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use ipnet::Ipv4Net;

use warden_runtime::choices;
use warden_runtime::vm_bhyve::{conf_value_ok, valid_name, valid_size, NetSeed};

use crate::{Params, State};

choices! {
    /// How the seed's user gets root.
    pub enum Privilege {
        None = "none",
        Doas = "doas",
        Sudo = "sudo",
    }
}

/// A boot image: a disk image for `vm create -i`, or an ISO for `vm install`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub name: String,
    pub iso: bool,
}

/// The first-boot settings, through vm-bhyve's cloud-init seed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Seed {
    /// The user nuageinit creates; `None` keeps nuageinit's default user `freebsd`.
    pub user: Option<String>,
    pub keys: Vec<String>,
    pub privilege: Option<Privilege>,
    pub net: NetSeed,
}

impl Seed {
    pub fn has_network(&self) -> bool {
        self.net.address.is_some()
            || self.net.gateway.is_some()
            || !self.net.nameservers.is_empty()
            || !self.net.search_domains.is_empty()
            || self.net.hostname.is_some()
    }

    /// doas.conf / sudoers lines for the user (nuageinit `adddoas`, `addsudo`).
    pub fn rules(&self) -> (Vec<String>, Vec<String>) {
        match self.privilege {
            Some(Privilege::Doas) => (vec!["permit nopass %u".into()], vec![]),
            Some(Privilege::Sudo) => (vec![], vec!["ALL=(ALL) NOPASSWD:ALL".into()]),
            _ => (vec![], vec![]),
        }
    }
}

/// The validated settings of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub name: String,
    pub state: State,
    pub template: String,
    pub cpus: Option<u32>,
    pub memory: Option<String>,
    pub disk_size: Option<String>,
    pub image: Option<Image>,
    pub switch: Option<String>,
    pub datastore: String,
    pub tags: Option<Vec<String>>,
    /// More `<name>.conf` keys (vm-bhyve's own, or the operator's: vm-bhyve ignores keys it
    /// does not read), sorted.
    pub config: Vec<(String, String)>,
    pub seed: Option<Seed>,
    pub restart: bool,
    pub wait_timeout: Duration,
    pub stop_timeout: Duration,
    pub vm_dir: Option<PathBuf>,
}

impl Settings {
    /// Settings with every optional part unset (for tests and callers building them in code).
    pub fn new(name: &str, state: State) -> Settings {
        Settings {
            name: name.into(),
            state,
            template: "default".into(),
            cpus: None,
            memory: None,
            disk_size: None,
            image: None,
            switch: None,
            datastore: "default".into(),
            tags: None,
            config: Vec::new(),
            seed: None,
            restart: false,
            wait_timeout: Duration::from_secs(120),
            stop_timeout: Duration::from_secs(60),
            vm_dir: None,
        }
    }
}

/// Conf keys other options own (or `vm create` writes).
const OWNED_KEYS: [&str; 4] = ["cpu", "memory", "tags", "uuid"];

/// `config::load` keeps lines starting with `[a-z]`; keys are sh-style names.
fn conf_key_ok(key: &str) -> bool {
    key.starts_with(|c: char| c.is_ascii_lowercase())
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn user_ok(user: &str) -> bool {
    let mut bytes = user.bytes();
    user.len() <= 32
        && matches!(bytes.next(), Some(b) if b.is_ascii_lowercase() || b == b'_')
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
}

/// nuageinit's `sethostname` rules (RFC 952/1123): letters, digits, `.` and `-`, at most 253,
/// labels of at most 63 that neither start nor end with `-`.
fn hostname_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && !name.starts_with(['.', '-'])
        && !name.ends_with(['.', '-'])
        && name
            .split('.')
            .all(|l| !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-'))
}

fn file_name_ok(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
}

/// `vtnet0`, `em1`: letters then digits, within IFNAMSIZ.
fn interface_ok(name: &str) -> bool {
    let letters = name.trim_end_matches(|c: char| c.is_ascii_digit());
    name.len() < 16
        && !letters.is_empty()
        && letters.len() < name.len()
        && letters.bytes().all(|b| b.is_ascii_lowercase())
}

fn key_ok(key: &str) -> bool {
    !key.contains(['\n', '\r', '\0'])
        && ["ssh-", "ecdsa-", "sk-"].iter().any(|p| key.starts_with(p))
        && key.split_whitespace().count() >= 2
}

/// Validates the params; every problem is reported at once.
pub fn settings(p: &Params) -> Result<Settings> {
    let mut problems: Vec<String> = Vec::new();
    let mut check = |ok: bool, msg: String| {
        if !ok {
            problems.push(msg);
        }
    };
    check(
        valid_name(&p.name),
        format!(
            "name {:?} is not a vm-bhyve guest name: 2-231 letters, digits, '.', '-' or '_', starting and ending with a letter or digit",
            p.name
        ),
    );
    let mut s = Settings::new(&p.name, p.state);
    s.wait_timeout = p.wait_timeout;
    s.stop_timeout = p.stop_timeout;
    s.vm_dir = p.vm_dir.as_ref().map(PathBuf::from);
    s.restart = p.restart;

    if p.state == State::Absent {
        return finish(problems, s);
    }
    let mut check = |ok: bool, msg: String| {
        if !ok {
            problems.push(msg);
        }
    };
    check(
        file_name_ok(&p.template),
        format!(
            "template {:?} is not a template file name (letters, digits, '.', '-', '_')",
            p.template
        ),
    );
    s.template = p.template.clone();
    check(
        p.datastore == "default" || valid_name(&p.datastore),
        format!(
            "datastore {:?} is not a vm-bhyve datastore name",
            p.datastore
        ),
    );
    s.datastore = p.datastore.clone();
    match p.cpus {
        Some(c) if !(1..=1024).contains(&c) => problems.push(format!(
            "cpus must be between 1 and 1024, got {c}: vm-bhyve stores any value, and bhyve then refuses to start the guest"
        )),
        Some(c) => s.cpus = Some(c as u32),
        None => {}
    }
    for (label, value) in [("memory", &p.memory), ("disk_size", &p.disk_size)] {
        if let Some(v) = value {
            if !valid_size(v) {
                problems.push(format!(
                    "{label} {v:?} is not a size such as 2G or 512M (digits and one of K, M, G, T): vm-bhyve stores it unchecked{}",
                    if label == "memory" {
                        " and the guest never starts"
                    } else {
                        ", and truncate fails after the guest directory exists"
                    }
                ));
            }
        }
    }
    s.memory = p.memory.clone();
    s.disk_size = p.disk_size.clone();
    if let Some(image) = &p.image {
        let ok = if image.starts_with('/') {
            conf_value_ok(image) && !image.contains(char::is_whitespace)
        } else {
            file_name_ok(image)
        };
        if ok {
            s.image = Some(Image {
                name: image.clone(),
                iso: image.to_ascii_lowercase().ends_with(".iso"),
            });
        } else {
            problems.push(format!(
                "image {image:?} must be a file name from `vm img` / `vm iso` or an absolute path without spaces"
            ));
        }
    }
    if let Some(sw) = &p.switch {
        if valid_name(sw) {
            s.switch = Some(sw.clone());
        } else {
            problems.push(format!("switch {sw:?} is not a vm-bhyve switch name"));
        }
    }
    if let Some(tags) = &p.tags {
        for t in tags {
            if !valid_name(t) {
                problems.push(format!("tag {t:?} is not a vm-bhyve tag (util::check_name: 2+ letters, digits, '.', '-', '_')"));
            }
        }
        let mut unique: Vec<String> = Vec::new();
        for t in tags {
            if !unique.contains(t) {
                unique.push(t.clone());
            }
        }
        s.tags = Some(unique);
    }
    for (key, value) in p.config.iter().flatten() {
        let owned = OWNED_KEYS.contains(&key.as_str())
            || (key.starts_with("disk") && key.contains('_'))
            || key.starts_with("network0_");
        if !conf_key_ok(key) {
            problems.push(format!("config key {key:?} is not a vm-bhyve config key (lower-case letters, digits and '_', starting with a letter)"));
        } else if owned {
            problems.push(format!("config key {key} is set by the module's own options or by vm create; use cpus, memory, switch or tags"));
        } else if !conf_value_ok(value) {
            problems.push(format!("config value of {key} holds '\"', '#' or a line break, which vm-bhyve's config::load cannot read back"));
        } else {
            s.config.push((key.clone(), value.clone()));
        }
    }
    s.seed = seed(p, &mut problems);
    finish(problems, s)
}

fn finish(problems: Vec<String>, s: Settings) -> Result<Settings> {
    if problems.is_empty() {
        Ok(s)
    } else {
        bail!("{}", problems.join("; "))
    }
}

fn seed(p: &Params, problems: &mut Vec<String>) -> Option<Seed> {
    let given = p.user.is_some()
        || !p.authorized_keys.is_empty()
        || p.privilege.is_some()
        || p.address.is_some()
        || p.gateway.is_some()
        || !p.nameservers.is_empty()
        || !p.search_domains.is_empty()
        || p.hostname.is_some();
    match p.cloud_init {
        Some(false) if given => {
            problems.push(
                "cloud_init is false but seed options (user, authorized_keys, privilege, address, gateway, nameservers, search_domains, hostname) are set"
                    .into(),
            );
            return None;
        }
        Some(false) => return None,
        None if !given => return None,
        _ => {}
    }
    let mut seed = Seed::default();
    if let Some(user) = &p.user {
        if user_ok(user) && user != "root" {
            seed.user = Some(user.clone());
        } else {
            problems.push(format!(
                "user {user:?} is not a FreeBSD user name for the seed (lower-case letters, digits, '_', '.', '-', at most 32, not root)"
            ));
        }
    }
    for k in &p.authorized_keys {
        if !key_ok(k) {
            problems.push(format!(
                "authorized_keys entry {:?} is not one line of an OpenSSH public key (ssh-…, ecdsa-…, sk-…)",
                k.chars().take(40).collect::<String>()
            ));
        }
    }
    seed.keys = p.authorized_keys.clone();
    seed.privilege = match (p.privilege, &p.user) {
        (Some(Privilege::None), _) => None,
        (Some(priv_), Some(_)) => Some(priv_),
        (Some(_), None) => {
            problems.push(
                "privilege needs user: without it nuageinit creates its default user freebsd, which vm-bhyve's seed gives no doas or sudo rule"
                    .into(),
            );
            None
        }
        (None, Some(_)) => Some(Privilege::Doas),
        (None, None) => None,
    };
    seed.net.interface = p.interface.clone();
    if !interface_ok(&p.interface) {
        problems.push(format!(
            "interface {:?} is not an interface name such as vtnet0",
            p.interface
        ));
    }
    if let Some(a) = &p.address {
        match a.parse::<Ipv4Net>() {
            Ok(net)
                if a.contains('/')
                    && net.prefix_len() < 31
                    && (net.addr() == net.network() || net.addr() == net.broadcast()) =>
            {
                problems.push(format!(
                    "address {a} is the network or broadcast address of its subnet"
                ))
            }
            Ok(net) if a.contains('/') => seed.net.address = Some(net),
            _ => problems.push(format!(
                "address {a:?} is not an IPv4 address with a prefix such as 10.0.0.11/24"
            )),
        }
    }
    if let Some(g) = &p.gateway {
        match g.parse::<Ipv4Addr>() {
            Ok(gw) => {
                if let Some(net) = seed.net.address {
                    if !net.contains(&gw) {
                        problems.push(format!(
                            "gateway {gw} is not in the guest's subnet {}",
                            net.trunc()
                        ));
                    }
                }
                seed.net.gateway = Some(gw);
            }
            Err(_) => problems.push(format!("gateway {g:?} is not an IPv4 address")),
        }
    }
    for ns in &p.nameservers {
        if ns.parse::<IpAddr>().is_err() {
            problems.push(format!("nameserver {ns:?} is not an IP address"));
        }
    }
    seed.net.nameservers = p.nameservers.clone();
    for d in &p.search_domains {
        if !hostname_ok(d) {
            problems.push(format!("search domain {d:?} is not a domain name"));
        }
    }
    seed.net.search_domains = p.search_domains.clone();
    if let Some(h) = &p.hostname {
        if hostname_ok(h) {
            seed.net.hostname = Some(h.clone());
        } else {
            problems.push(format!(
                "hostname {h:?} is not a host name nuageinit accepts (letters, digits, '.', '-', labels of at most 63)"
            ));
        }
    }
    Some(seed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(extra: serde_json::Value) -> Params {
        let mut raw = json!({"name": "vm01"});
        for (k, v) in extra.as_object().unwrap() {
            raw[k] = v.clone();
        }
        warden_testkit::params::<crate::WardenVm>(raw)
    }

    #[test]
    fn durations() {
        let wait = |v: serde_json::Value| {
            warden_testkit::validated::<crate::WardenVm>(json!({"name": "vm01", "wait_timeout": v}))
                .map(|p| p.wait_timeout)
        };
        assert_eq!(wait(json!("90")).unwrap(), Duration::from_secs(90));
        assert_eq!(wait(json!(90)).unwrap(), Duration::from_secs(90));
        assert_eq!(wait(json!("2m")).unwrap(), Duration::from_secs(120));
        assert_eq!(wait(json!("1h")).unwrap(), Duration::from_secs(3600));
        for bad in ["0", "soon", "5d", "-1", "", "25h"] {
            assert!(wait(json!(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn what_vm_bhyve_does_not_check_is_refused_all_at_once() {
        let err = settings(&params(json!({
            "state": "running", "cpus": 0, "memory": "lots", "disk_size": "20GB",
            "name": "-bad", "tags": ["ok", "x"],
        })))
        .unwrap_err()
        .to_string();
        for needle in [
            "name \"-bad\"",
            "cpus must be between 1 and 1024, got 0",
            "memory \"lots\"",
            "disk_size \"20GB\"",
            "tag \"x\"",
        ] {
            assert!(err.contains(needle), "{needle} missing from: {err}");
        }
    }

    #[test]
    fn seed_settings() {
        let s = settings(&params(json!({
            "state": "running", "user": "admin", "authorized_keys": ["ssh-ed25519 AAAA me@h"],
            "address": "10.0.0.11/24", "gateway": "10.0.0.1", "nameservers": ["1.1.1.1"],
        })))
        .unwrap();
        let seed = s.seed.unwrap();
        assert_eq!(seed.user.as_deref(), Some("admin"));
        assert_eq!(seed.privilege, Some(Privilege::Doas));
        assert_eq!(seed.rules().0, ["permit nopass %u"]);
        assert_eq!(seed.net.address.unwrap().to_string(), "10.0.0.11/24");
        assert!(settings(&params(json!({}))).unwrap().seed.is_none());
        assert!(settings(&params(json!({"cloud_init": true})))
            .unwrap()
            .seed
            .is_some());

        let err = settings(&params(json!({
            "address": "10.0.0.5/24", "gateway": "10.0.1.1", "privilege": "doas",
            "authorized_keys": ["not a key"], "hostname": "bad_host", "user": "Root",
            "nameservers": ["one"], "interface": "eth",
        })))
        .unwrap_err()
        .to_string();
        for needle in [
            "not in the guest's subnet",
            "authorized_keys entry",
            "hostname \"bad_host\"",
            "user \"Root\"",
            "nameserver \"one\"",
            "interface \"eth\"",
        ] {
            assert!(err.contains(needle), "{needle} missing from: {err}");
        }
        let err = settings(&params(json!({"privilege": "sudo"})))
            .unwrap_err()
            .to_string();
        assert!(err.contains("privilege needs user"), "{err}");
        let err = settings(&params(
            json!({"cloud_init": false, "address": "10.0.0.5/24"}),
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("cloud_init is false"), "{err}");
        let err = settings(&params(json!({"address": "10.0.0.5"})))
            .unwrap_err()
            .to_string();
        assert!(err.contains("with a prefix"), "{err}");
    }

    #[test]
    fn config_keys() {
        let s = settings(&params(
            json!({"config": {"warden_agent": "agent07", "graphics": "no"}}),
        ))
        .unwrap();
        assert_eq!(
            s.config,
            [
                ("graphics".to_string(), "no".to_string()),
                ("warden_agent".into(), "agent07".into())
            ]
        );
        let err = settings(&params(
            json!({"config": {"cpu": "4", "Bad": "x", "disk0_size": "1G", "note": "a#b"}}),
        ))
        .unwrap_err()
        .to_string();
        for needle in [
            "config key cpu is set",
            "config key \"Bad\"",
            "config key disk0_size is set",
            "config value of note",
        ] {
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn absent_needs_only_a_name() {
        let s = settings(&params(json!({"state": "absent", "memory": "lots"}))).unwrap();
        assert_eq!(s.state, State::Absent);
        let s = settings(&params(json!({"image": "FreeBSD-14.2-RELEASE-amd64.iso"}))).unwrap();
        assert!(s.image.unwrap().iso);
        assert!(settings(&params(json!({"image": "../x"}))).is_err());
    }
}
