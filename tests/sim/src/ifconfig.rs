//! Simulated `ifconfig(8)` (FreeBSD 14, netlink status path). Interface state lives in
//! `<root>/sim/ifconfig.json`, changed under a lock so concurrent calls lose nothing.
//!
//! Sources for each behaviour (freebsd/freebsd-src unless noted; see also
//! docs/freebsd-facts.md §1 and §2):
//! * status layout: sbin/ifconfig/ifconfig_netlink.c `status_nl`, af_inet.c `in_status_nl`
//!   (`\tinet %s netmask 0x%lx broadcast %s`), ifbridge.c `bridge_status`, ifgroup.c;
//! * `-l` one line, space separated; `-g group` one name per line (ifconfig.c, ifgroup.c);
//! * `bridge create` prints the name it made, `bridgeN create` prints nothing, `name X`
//!   prints X (ifclone.c / `printifnamemaybe`);
//! * errors: `interface X does not exist`, `interface X already exists`,
//!   `ioctl SIOCSIFNAME (set name): File exists`, `ioctl (SIOCDIFADDR): Can't assign
//!   requested address`, `X: bad value`, `X: bad value (width too large)` (ifconfig.c,
//!   af_inet.c);
//! * units are allocated per cloner and survive a rename (sys/net/if_clone.c
//!   `ifc_alloc_unit_specific` / `ifc_alloc_unit_next`, sys/net/if.c `if_rename`): after
//!   `bridge0 name vtnet0bridge`, `bridge0 create` fails and `bridge create` makes
//!   `bridge1` (see [`create`]); a clone is in the interface group of its cloner
//!   (`if_clone_addgroup`), kept across a rename, so `-g bridge` lists renamed bridges;
//! * re-adding an address already on the interface succeeds silently and moves it last
//!   (sys/netinet/in.c `in_aifaddr_ioctl`); `inet A` without `alias` replaces the first
//!   IPv4 address.
//!
//! Not verified on a real 14.x host, so kept conservative: the flags of a down bridge
//! (printed without LOWER_UP) and the error for an address held by another interface
//! (`ioctl (SIOCAIFADDR): File exists`).

use std::fs;
use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{Context, Result};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::dispatch::{Out, SIM_FAILURE};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IfKind {
    Loopback,
    Ether,
    Bridge,
    Epair,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inet {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Iface {
    pub name: String,
    pub kind: IfKind,
    pub up: bool,
    pub mtu: u32,
    pub ether: Option<String>,
    pub description: Option<String>,
    pub inet: Vec<Inet>,
    /// Preformatted `inet6 …` text (the simulator never changes IPv6).
    pub inet6: Vec<String>,
    pub members: Vec<String>,
    pub groups: Vec<String>,
}

/// A unit a cloner handed out (sys/net/if_clone.c: each cloner keeps its own unit
/// allocator, `ifc_unrhdr`). The unit stays allocated until the interface is destroyed,
/// whatever the interface is renamed to (sys/net/if.c `if_rename` changes `if_xname` only),
/// so a bridge jib renamed to `vtnet0bridge` still holds its unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloneUnit {
    pub cloner: String,
    pub unit: u32,
    /// The interfaces' current names (two for an epair).
    pub names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IfState {
    pub ifaces: Vec<Iface>,
    /// Feeds the MAC addresses of created interfaces.
    pub serial: u32,
    /// Units held per cloner. Interfaces created by other parts of the simulator without an
    /// entry here still hold their unit by name (`ifc_alloc_unit_specific` checks the name).
    #[serde(default)]
    pub clones: Vec<CloneUnit>,
}

impl IfState {
    /// A fresh VM: `vtnet0` with a DHCP lease and `lo0`.
    pub fn initial() -> IfState {
        IfState {
            ifaces: vec![
                Iface {
                    name: "vtnet0".into(),
                    kind: IfKind::Ether,
                    up: true,
                    mtu: 1500,
                    ether: Some("58:9c:fc:00:00:01".into()),
                    description: None,
                    inet: vec![Inet {
                        addr: Ipv4Addr::new(192, 168, 122, 10),
                        prefix: 24,
                    }],
                    inet6: vec![],
                    members: vec![],
                    groups: vec![],
                },
                Iface {
                    name: "lo0".into(),
                    kind: IfKind::Loopback,
                    up: true,
                    mtu: 16384,
                    ether: None,
                    description: None,
                    inet: vec![Inet {
                        addr: Ipv4Addr::new(127, 0, 0, 1),
                        prefix: 8,
                    }],
                    inet6: vec![
                        "inet6 ::1 prefixlen 128".into(),
                        "inet6 fe80::1%lo0 prefixlen 64 scopeid 0x2".into(),
                    ],
                    members: vec![],
                    groups: vec!["lo".into()],
                },
            ],
            serial: 1,
            clones: vec![CloneUnit {
                cloner: "lo".into(),
                unit: 0,
                names: vec!["lo0".into()],
            }],
        }
    }

    fn path(root: &Path) -> std::path::PathBuf {
        root.join("sim/ifconfig.json")
    }

    pub fn load(root: &Path) -> Result<IfState> {
        let text =
            fs::read_to_string(Self::path(root)).context("cannot read the interface state")?;
        serde_json::from_str(&text).context("bad interface state")
    }

    pub fn save(&self, root: &Path) -> Result<()> {
        let mut temp = tempfile::NamedTempFile::new_in(root.join("sim"))?;
        serde_json::to_writer_pretty(&mut temp, self)?;
        temp.persist(Self::path(root)).map_err(|e| e.error)?;
        Ok(())
    }

    pub fn find(&self, name: &str) -> Option<usize> {
        self.ifaces.iter().position(|i| i.name == name)
    }

    /// sys/net/if_clone.c `ifc_alloc_unit_specific`: a unit is taken when the cloner's
    /// allocator holds it (`alloc_unr_specific` fails) or an interface already has the name
    /// `<cloner><unit>` (`ifunit`); both are EEXIST.
    pub fn unit_held(&self, cloner: &str, unit: u32) -> bool {
        let names: Vec<String> = match cloner {
            "epair" => vec![format!("epair{unit}a"), format!("epair{unit}b")],
            _ => vec![format!("{cloner}{unit}")],
        };
        self.clones
            .iter()
            .any(|c| c.cloner == cloner && c.unit == unit)
            || names.iter().any(|n| self.find(n).is_some())
    }

    /// The unit a cloner holds for an interface, if the simulator knows it.
    pub fn unit_of(&self, name: &str) -> Option<(&str, u32)> {
        self.clones
            .iter()
            .find(|c| c.names.iter().any(|n| n == name))
            .map(|c| (c.cloner.as_str(), c.unit))
    }
}

/// Runs `ifconfig args…` against the host under `root`.
pub fn run(root: &Path, args: &[String]) -> Out {
    let lock = match fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(root.join("sim/ifconfig.lock"))
        .map_err(anyhow::Error::from)
        .and_then(|f| Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, e)| e.into()))
    {
        Ok(lock) => lock,
        Err(e) => {
            return Out::err(
                SIM_FAILURE,
                format!("freebsd-sim: cannot lock interface state: {e}\n"),
            )
        }
    };
    let mut state = match IfState::load(root) {
        Ok(s) => s,
        Err(e) => return Out::err(SIM_FAILURE, format!("freebsd-sim: {e:#}\n")),
    };
    let before = state.clone();
    let out = command(&mut state, args);
    if state != before {
        if let Err(e) = state.save(root) {
            return Out::err(
                SIM_FAILURE,
                format!("freebsd-sim: cannot save interface state: {e:#}\n"),
            );
        }
    }
    drop(lock);
    out
}

fn fail(msg: impl AsRef<str>) -> Out {
    Out::err(1, format!("ifconfig: {}\n", msg.as_ref()))
}

/// Splits `bridge12` into (`bridge`, Some(12)).
fn split_unit(name: &str) -> (&str, Option<u32>) {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (base, unit) = name.split_at(name.len() - digits);
    (base, unit.parse().ok())
}

pub fn command(state: &mut IfState, args: &[String]) -> Out {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        [] | ["-a"] => Out::ok(
            state
                .ifaces
                .iter()
                .map(|i| status(state, i))
                .collect::<String>(),
        ),
        ["-l"] => Out::ok(names(state, |_| true)),
        ["-l", "inet"] => Out::ok(names(state, |i| !i.inet.is_empty())),
        ["-l", "ether"] => Out::ok(names(state, |i| i.ether.is_some())),
        ["-l", ..] => fail("usage: ifconfig -l [-d] [-u] [address_family]"),
        ["-g", group] => Out::ok(
            state
                .ifaces
                .iter()
                .filter(|i| i.groups.iter().any(|g| g == group))
                .map(|i| format!("{}\n", i.name))
                .collect::<String>(),
        ),
        ["-C"] => Out::ok("bridge epair lo vlan\n"),
        [flag, ..] if flag.starts_with('-') => Out::err(
            SIM_FAILURE,
            format!("freebsd-sim: ifconfig {flag} is not simulated\n"),
        ),
        [name, ops @ ..] => interface_command(state, name, ops),
    }
}

fn names(state: &IfState, keep: impl Fn(&Iface) -> bool) -> String {
    let list: Vec<&str> = state
        .ifaces
        .iter()
        .filter(|i| keep(i))
        .map(|i| i.name.as_str())
        .collect();
    format!("{}\n", list.join(" "))
}

fn interface_command(state: &mut IfState, name: &str, ops: &[&str]) -> Out {
    let mut print_name = false;
    let mut current = name.to_string();
    let mut ops = ops;
    if ops.first() == Some(&"create") {
        match create(state, name) {
            Ok((created, auto)) => {
                current = created;
                print_name = auto;
            }
            Err(out) => return out,
        }
        ops = &ops[1..];
        if ops.is_empty() {
            return Out::ok(if print_name {
                format!("{current}\n")
            } else {
                String::new()
            });
        }
    }
    let Some(idx) = state.find(&current) else {
        return fail(format!("interface {name} does not exist"));
    };
    if ops.is_empty() {
        return Out::ok(status(state, &state.ifaces[idx]));
    }

    let mut address: Option<(String, Option<String>)> = None; // (address text, netmask)
    let mut alias = false;
    let mut delete = false;
    let mut i = 0;
    while i < ops.len() {
        let op = ops[i];
        let next = ops.get(i + 1).copied();
        let Some(idx) = state.find(&current) else {
            return fail(format!("interface {current} does not exist"));
        };
        match op {
            "inet" => {}
            "inet6" => {
                return Out::err(
                    SIM_FAILURE,
                    "freebsd-sim: ifconfig inet6 is not simulated\n",
                )
            }
            "up" => state.ifaces[idx].up = true,
            "down" => state.ifaces[idx].up = false,
            "alias" | "add" => alias = true,
            "-alias" | "delete" | "remove" => delete = true,
            "destroy" => {
                let _ = idx;
                if let Err(out) = destroy(state, &current) {
                    return out;
                }
                return Out::ok(if print_name {
                    format!("{current}\n")
                } else {
                    String::new()
                });
            }
            "name" | "description" | "descr" | "netmask" | "broadcast" | "mtu" | "addm"
            | "deletem" => {
                let Some(value) = next else {
                    return fail(format!("'{op}' requires argument"));
                };
                i += 1;
                match op {
                    "name" => {
                        if let Err(out) = rename(state, &current, value) {
                            return out;
                        }
                        current = value.to_string();
                        print_name = true;
                    }
                    "description" | "descr" => state.ifaces[idx].description = Some(value.to_string()),
                    "netmask" => {
                        if let Some((_, mask)) = address.as_mut() {
                            *mask = Some(value.to_string());
                        } else {
                            return fail(format!("{value}: bad value"));
                        }
                    }
                    "broadcast" => {}
                    "mtu" => match value.parse() {
                        Ok(mtu) => state.ifaces[idx].mtu = mtu,
                        Err(_) => return fail("mtu: bad value"),
                    },
                    "addm" => {
                        if state.find(value).is_none() {
                            return fail(format!("BRDGADD {value}: No such file or directory"));
                        }
                        if !state.ifaces[idx].members.iter().any(|m| m == value) {
                            state.ifaces[idx].members.push(value.to_string());
                        }
                    }
                    _ /* deletem */ => state.ifaces[idx].members.retain(|m| m != value),
                }
            }
            word => {
                if address.is_some() {
                    return fail(format!("{word}: bad value"));
                }
                address = Some((word.to_string(), None));
            }
        }
        i += 1;
    }

    let mut out = Out::default();
    if let Some((text, netmask)) = address {
        let parsed = match parse_address(&text, netmask.as_deref()) {
            Ok(p) => p,
            Err(out) => return out,
        };
        let (inet, warned) = parsed;
        if warned {
            out.stderr.push_str(
                "ifconfig: WARNING: setting interface address without mask is deprecated,\ndefault mask may not be correct.\n",
            );
        }
        let Some(idx) = state.find(&current) else {
            return fail(format!("interface {current} does not exist"));
        };
        if delete {
            let before = state.ifaces[idx].inet.len();
            state.ifaces[idx].inet.retain(|a| a.addr != inet.addr);
            if state.ifaces[idx].inet.len() == before {
                return fail("ioctl (SIOCDIFADDR): Can't assign requested address");
            }
        } else {
            let elsewhere = state
                .ifaces
                .iter()
                .enumerate()
                .any(|(j, other)| j != idx && other.inet.iter().any(|a| a.addr == inet.addr));
            if elsewhere {
                return fail("ioctl (SIOCAIFADDR): File exists");
            }
            let list = &mut state.ifaces[idx].inet;
            if !alias && !list.is_empty() && !list.iter().any(|a| a.addr == inet.addr) {
                list.remove(0);
            }
            list.retain(|a| a.addr != inet.addr);
            list.push(inet);
        }
    }
    if print_name {
        out.stdout.push_str(&format!("{current}\n"));
    }
    out
}

/// `bridge create` / `bridge5 create` / `epair create` / `lo1 create`: the interfaces made
/// and whether the kernel chose the unit (then ifconfig prints the name).
///
/// * sbin/ifconfig/ifconfig.c `main`: `<name> create` when an interface called `<name>`
///   exists fails with `interface <name> already exists` before any ioctl;
/// * sys/net/if_clone.c `ifc_alloc_unit`: a requested unit that is held
///   (`ifc_alloc_unit_specific`, EEXIST) fails, and ifconfig.c `ifcreate_ioctl` turns
///   EEXIST into `interface <name> already exists` (freebsd-src main as read in
///   fel1x-developer/freebsd-src@2d614aa and paigeadelethompson/freebsd-src@28e0d86; older
///   ifclone.c, freebsd-src@7f33d2e, printed `SIOCIFCREATE2: File exists`); no unit: the
///   lowest free one (`ifc_alloc_unit_next`: `alloc_unr`, then up while EEXIST).
pub fn create(state: &mut IfState, name: &str) -> Result<(String, bool), Out> {
    let (base, unit) = split_unit(name);
    let kind = match base {
        "bridge" => IfKind::Bridge,
        "epair" => IfKind::Epair,
        "lo" => IfKind::Loopback,
        // Not a cloner: the kernel refuses (exact errno text unverified).
        _ => return Err(fail("SIOCIFCREATE2: Invalid argument")),
    };
    if state.find(name).is_some() {
        return Err(fail(format!("interface {name} already exists")));
    }
    let auto = unit.is_none();
    let unit = match unit {
        Some(u) if state.unit_held(base, u) => {
            return Err(fail(format!("interface {name} already exists")));
        }
        Some(u) => u,
        None => (0..).find(|u| !state.unit_held(base, *u)).unwrap_or(0),
    };
    let mac = |serial: u32| {
        format!(
            "58:9c:fc:{:02x}:{:02x}:{:02x}",
            (serial >> 16) & 0xff,
            (serial >> 8) & 0xff,
            serial & 0xff
        )
    };
    let created: Vec<String> = match kind {
        IfKind::Epair => vec![format!("epair{unit}a"), format!("epair{unit}b")],
        _ => vec![format!("{base}{unit}")],
    };
    state.serial += 1;
    for n in &created {
        state.serial += 1;
        state.ifaces.push(Iface {
            name: n.clone(),
            kind,
            up: false,
            mtu: if kind == IfKind::Loopback {
                16384
            } else {
                1500
            },
            ether: (kind != IfKind::Loopback).then(|| mac(state.serial)),
            description: None,
            inet: vec![],
            inet6: vec![],
            members: vec![],
            // if_clone.c `if_clone_addgroup`: a clone joins the group named after its cloner.
            groups: vec![base.to_string()],
        });
    }
    state.clones.push(CloneUnit {
        cloner: base.to_string(),
        unit,
        names: created.clone(),
    });
    Ok((created[0].clone(), auto))
}

/// `ifconfig <from> name <to>` (ifconfig.c `setifname`: SIOCSIFNAME; a taken name is EEXIST,
/// `err(1, "ioctl SIOCSIFNAME (set name)")`). The unit and the groups stay.
pub fn rename(state: &mut IfState, from: &str, to: &str) -> Result<(), Out> {
    let Some(idx) = state.find(from) else {
        return Err(fail(format!("interface {from} does not exist")));
    };
    if state.find(to).is_some() {
        return Err(fail("ioctl SIOCSIFNAME (set name): File exists"));
    }
    state.ifaces[idx].name = to.to_string();
    for iface in &mut state.ifaces {
        for m in &mut iface.members {
            if m == from {
                *m = to.to_string();
            }
        }
    }
    for clone in &mut state.clones {
        for n in &mut clone.names {
            if n == from {
                *n = to.to_string();
            }
        }
    }
    Ok(())
}

/// `ifconfig <if> destroy`: SIOCIFDESTROY; only clones can go (`SIOCIFDESTROY: Invalid
/// argument` otherwise), and an epair goes with its other side (sys/net/if_epair.c
/// `epair_clone_destroy`). The unit is freed (`ifc_free_unit`).
pub fn destroy(state: &mut IfState, name: &str) -> Result<(), Out> {
    let Some(idx) = state.find(name) else {
        return Err(fail(format!("interface {name} does not exist")));
    };
    if state.ifaces[idx].kind == IfKind::Ether || name == "lo0" {
        return Err(fail("SIOCIFDESTROY: Invalid argument"));
    }
    let gone: Vec<String> = match state
        .clones
        .iter()
        .position(|c| c.names.iter().any(|n| n == name))
    {
        Some(c) => state.clones.remove(c).names,
        None => vec![name.to_string()],
    };
    state.ifaces.retain(|i| !gone.contains(&i.name));
    for iface in &mut state.ifaces {
        iface.members.retain(|m| !gone.contains(m));
    }
    Ok(())
}

/// `A/P`, or `A` with `netmask M` (dotted or hex), or bare `A` (classful, with a warning).
fn parse_address(text: &str, netmask: Option<&str>) -> Result<(Inet, bool), Out> {
    let (addr_text, prefix_text) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let addr: Ipv4Addr = addr_text
        .parse()
        .map_err(|_| fail(format!("{text}: bad value")))?;
    if let Some(p) = prefix_text {
        let prefix: u32 = p.parse().map_err(|_| fail(format!("{text}: bad value")))?;
        if prefix > 32 {
            return Err(fail(format!("{text}: bad value (width too large)")));
        }
        return Ok((
            Inet {
                addr,
                prefix: prefix as u8,
            },
            false,
        ));
    }
    if let Some(mask) = netmask {
        let bits = if let Some(hex) = mask.strip_prefix("0x") {
            u32::from_str_radix(hex, 16).map_err(|_| fail(format!("{mask}: bad value")))?
        } else {
            u32::from(
                mask.parse::<Ipv4Addr>()
                    .map_err(|_| fail(format!("{mask}: bad value")))?,
            )
        };
        if bits.leading_ones() + bits.trailing_zeros() != 32 {
            return Err(fail(format!("{mask}: bad value")));
        }
        return Ok((
            Inet {
                addr,
                prefix: bits.leading_ones() as u8,
            },
            false,
        ));
    }
    let first = addr.octets()[0];
    let prefix = if first < 128 {
        8
    } else if first < 192 {
        16
    } else {
        24
    };
    Ok((Inet { addr, prefix }, true))
}

fn mask_bits(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

fn flags_word(iface: &Iface, promisc: bool) -> String {
    const UP: u32 = 0x1;
    const BROADCAST: u32 = 0x2;
    const LOOPBACK: u32 = 0x8;
    const RUNNING: u32 = 0x40;
    const PROMISC: u32 = 0x100;
    const SIMPLEX: u32 = 0x800;
    const MULTICAST: u32 = 0x8000;
    const LOWER_UP: u32 = 0x100_0000;
    let mut bits = MULTICAST;
    if iface.kind == IfKind::Loopback {
        bits |= LOOPBACK;
    } else {
        bits |= BROADCAST | SIMPLEX;
    }
    if iface.up {
        bits |= UP | RUNNING | LOWER_UP;
    }
    if promisc {
        bits |= PROMISC;
    }
    let names = [
        (UP, "UP"),
        (BROADCAST, "BROADCAST"),
        (LOOPBACK, "LOOPBACK"),
        (RUNNING, "RUNNING"),
        (PROMISC, "PROMISC"),
        (SIMPLEX, "SIMPLEX"),
        (MULTICAST, "MULTICAST"),
        (LOWER_UP, "LOWER_UP"),
    ];
    let list: Vec<&str> = names
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| *n)
        .collect();
    format!("flags={bits:x}<{}>", list.join(","))
}

/// One interface's status block, FreeBSD 14 layout.
pub fn status(state: &IfState, iface: &Iface) -> String {
    let is_member = state.ifaces.iter().any(|b| b.members.contains(&iface.name));
    let mut s = format!(
        "{}: {} metric 0 mtu {}\n",
        iface.name,
        flags_word(iface, is_member),
        iface.mtu
    );
    if let Some(d) = &iface.description {
        s.push_str(&format!("\tdescription: {d}\n"));
    }
    match iface.kind {
        IfKind::Bridge => s.push_str("\toptions=0\n"),
        IfKind::Loopback => {
            s.push_str("\toptions=680003<RXCSUM,TXCSUM,LINKSTATE,RXCSUM_IPV6,TXCSUM_IPV6>\n")
        }
        _ => s.push_str("\toptions=8<VLAN_MTU>\n"),
    }
    if let Some(mac) = &iface.ether {
        s.push_str(&format!("\tether {mac}\n"));
    }
    for inet in &iface.inet {
        let mask = mask_bits(inet.prefix);
        s.push_str(&format!("\tinet {} netmask 0x{mask:08x}", inet.addr));
        if iface.kind != IfKind::Loopback {
            let broadcast = if inet.prefix == 31 {
                Ipv4Addr::BROADCAST
            } else {
                Ipv4Addr::from(u32::from(inet.addr) | !mask)
            };
            s.push_str(&format!(" broadcast {broadcast}"));
        }
        s.push('\n');
    }
    for line in &iface.inet6 {
        s.push_str(&format!("\t{line}\n"));
    }
    if iface.kind == IfKind::Bridge {
        s.push_str("\tid 00:00:00:00:00:00 priority 32768 hellotime 2 fwddelay 15\n");
        s.push_str("\tmaxage 20 holdcnt 6 proto rstp maxaddr 2000 timeout 1200\n");
        s.push_str("\troot id 00:00:00:00:00:00 priority 32768 ifcost 0 port 0\n");
        for (n, member) in iface.members.iter().enumerate() {
            s.push_str(&format!(
                "\tmember: {member} flags=143<LEARNING,DISCOVER,AUTOEDGE,AUTOPTP>\n\t        ifmaxaddr 0 port {} priority 128 path cost 2000\n",
                n + 2
            ));
        }
    }
    if iface.kind == IfKind::Ether {
        s.push_str("\tmedia: Ethernet autoselect (10Gbase-T <full-duplex>)\n\tstatus: active\n");
    }
    if !iface.groups.is_empty() {
        s.push_str(&format!("\tgroups: {}\n", iface.groups.join(" ")));
    }
    s.push_str(match iface.kind {
        IfKind::Loopback => "\tnd6 options=21<PERFORMNUD,AUTO_LINKLOCAL>\n",
        _ => "\tnd6 options=9<PERFORMNUD,IFDISABLED>\n",
    });
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(state: &mut IfState, line: &str) -> Out {
        let args: Vec<String> = line.split_whitespace().map(String::from).collect();
        command(state, &args)
    }

    #[test]
    fn bridge_create_rename_and_aliases() {
        let mut s = IfState::initial();
        assert_eq!(run(&mut s, "bridge create").stdout, "bridge0\n");
        assert_eq!(run(&mut s, "bridge0 name warden0").stdout, "warden0\n");
        assert_eq!(run(&mut s, "warden0 up").rc, 0);
        assert_eq!(run(&mut s, "warden0 inet 10.0.0.1/24 alias").rc, 0);
        assert_eq!(
            run(&mut s, "warden0 inet 10.0.1.1 netmask 0xffffff00 alias").rc,
            0
        );
        let out = run(&mut s, "warden0");
        assert!(out.stdout.starts_with(
            "warden0: flags=1008843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST,LOWER_UP> metric 0 mtu 1500\n\toptions=0\n\tether 58:9c:fc:"
        ), "{}", out.stdout);
        assert!(out.stdout.contains(
            "\tinet 10.0.0.1 netmask 0xffffff00 broadcast 10.0.0.255\n\tinet 10.0.1.1 netmask 0xffffff00 broadcast 10.0.1.255\n\tid 00:00"
        ), "{}", out.stdout);
        assert!(out
            .stdout
            .ends_with("\tgroups: bridge\n\tnd6 options=9<PERFORMNUD,IFDISABLED>\n"));
        assert_eq!(run(&mut s, "-l").stdout, "vtnet0 lo0 warden0\n");
        assert_eq!(run(&mut s, "-g bridge").stdout, "warden0\n");
    }

    #[test]
    fn readding_moves_last_and_deleting_missing_fails() {
        let mut s = IfState::initial();
        run(&mut s, "bridge5 create");
        run(&mut s, "bridge5 inet 10.0.0.1/24 alias");
        run(&mut s, "bridge5 inet 10.0.1.1/24 alias");
        assert_eq!(run(&mut s, "bridge5 inet 10.0.0.1/24 alias").rc, 0);
        let idx = s.find("bridge5").unwrap();
        assert_eq!(s.ifaces[idx].inet[1].addr, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(run(&mut s, "bridge5 inet 10.0.0.1 -alias").rc, 0);
        let out = run(&mut s, "bridge5 inet 10.0.0.1 -alias");
        assert_eq!(
            (out.rc, out.stderr.as_str()),
            (
                1,
                "ifconfig: ioctl (SIOCDIFADDR): Can't assign requested address\n"
            )
        );
    }

    #[test]
    fn errors_match_freebsd() {
        let mut s = IfState::initial();
        assert_eq!(
            run(&mut s, "warden0").stderr,
            "ifconfig: interface warden0 does not exist\n"
        );
        assert_eq!(run(&mut s, "bridge create").stdout, "bridge0\n");
        assert_eq!(
            run(&mut s, "bridge0 create").stderr,
            "ifconfig: interface bridge0 already exists\n"
        );
        assert_eq!(run(&mut s, "bridge create").stdout, "bridge1\n");
        assert_eq!(
            run(&mut s, "bridge1 name bridge0").stderr,
            "ifconfig: ioctl SIOCSIFNAME (set name): File exists\n"
        );
        assert_eq!(
            run(&mut s, "bridge0 inet 10.0.0.300/24").stderr,
            "ifconfig: 10.0.0.300/24: bad value\n"
        );
        assert_eq!(
            run(&mut s, "bridge0 inet 10.0.0.1/33").stderr,
            "ifconfig: 10.0.0.1/33: bad value (width too large)\n"
        );
        assert_eq!(
            run(&mut s, "bridge0 inet 192.168.122.10/24 alias").stderr,
            "ifconfig: ioctl (SIOCAIFADDR): File exists\n"
        );
    }

    #[test]
    fn inet_without_alias_replaces_first_address() {
        let mut s = IfState::initial();
        run(&mut s, "bridge create name warden0");
        run(&mut s, "warden0 inet 10.0.0.1/24 alias");
        run(&mut s, "warden0 inet 10.0.1.1/24 alias");
        run(&mut s, "warden0 inet 10.0.2.1/24");
        let idx = s.find("warden0").unwrap();
        let addrs: Vec<String> = s.ifaces[idx]
            .inet
            .iter()
            .map(|a| a.addr.to_string())
            .collect();
        assert_eq!(addrs, ["10.0.1.1", "10.0.2.1"]);
    }

    #[test]
    fn combined_create_and_name_prints_final_name() {
        let mut s = IfState::initial();
        assert_eq!(
            run(&mut s, "bridge create name warden0 up").stdout,
            "warden0\n"
        );
        assert_eq!(run(&mut s, "warden0 destroy").rc, 0);
        assert_eq!(run(&mut s, "warden0").rc, 1);
    }

    #[test]
    fn a_renamed_bridge_keeps_its_unit() {
        let mut s = IfState::initial();
        // jib (share/examples/jails/jib) makes its bridge with `ifconfig bridge create` and
        // renames it after the uplink.
        assert_eq!(run(&mut s, "bridge create").stdout, "bridge0\n");
        assert_eq!(
            run(&mut s, "bridge0 name vtnet0bridge").stdout,
            "vtnet0bridge\n"
        );
        let taken = run(&mut s, "bridge0 create");
        assert_eq!(
            (taken.rc, taken.stderr.as_str()),
            (1, "ifconfig: interface bridge0 already exists\n")
        );
        assert_eq!(run(&mut s, "bridge create").stdout, "bridge1\n");
        assert_eq!(
            run(&mut s, "bridge create name warden0").stdout,
            "warden0\n"
        );
        assert_eq!(s.unit_of("warden0"), Some(("bridge", 2)));
        assert_eq!(
            run(&mut s, "-g bridge").stdout,
            "vtnet0bridge\nbridge1\nwarden0\n"
        );
        // Destroying frees the unit; the lowest free unit is used again.
        assert_eq!(run(&mut s, "vtnet0bridge destroy").rc, 0);
        assert_eq!(run(&mut s, "bridge create").stdout, "bridge0\n");
        // A name `bridgeN` held by another interface also holds the unit.
        run(&mut s, "bridge1 name spare");
        run(&mut s, "epair create");
        run(&mut s, "epair0a name bridge1");
        assert_eq!(
            run(&mut s, "bridge1 create").stderr,
            "ifconfig: interface bridge1 already exists\n"
        );
    }

    #[test]
    fn epairs_go_in_pairs() {
        let mut s = IfState::initial();
        assert_eq!(run(&mut s, "epair create").stdout, "epair0a\n");
        assert_eq!(run(&mut s, "epair0a name e0a_mevygit").rc, 0);
        assert_eq!(run(&mut s, "epair create").stdout, "epair1a\n");
        assert_eq!(
            run(&mut s, "-g epair").stdout,
            "e0a_mevygit\nepair0b\nepair1a\nepair1b\n"
        );
        assert_eq!(run(&mut s, "e0a_mevygit destroy").rc, 0);
        assert_eq!(run(&mut s, "-g epair").stdout, "epair1a\nepair1b\n");
        assert_eq!(
            run(&mut s, "vtnet0 destroy").stderr,
            "ifconfig: SIOCIFDESTROY: Invalid argument\n"
        );
    }

    #[test]
    fn slash_32_and_loopback_format() {
        let mut s = IfState::initial();
        run(&mut s, "bridge create");
        run(&mut s, "bridge0 inet 10.0.1.1/32 alias");
        assert!(run(&mut s, "bridge0")
            .stdout
            .contains("\tinet 10.0.1.1 netmask 0xffffffff broadcast 10.0.1.1\n"));
        assert!(run(&mut s, "lo0")
            .stdout
            .contains("\tinet 127.0.0.1 netmask 0xff000000\n"));
    }
}
