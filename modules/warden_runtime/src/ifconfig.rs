//! `ifconfig(8)`: the one parser of its status output, and the commands warden runs.
//!
//! Output facts (freebsd/freebsd-src sbin/ifconfig; docs/freebsd-facts.md §1):
//! * a block per interface; its header starts at column 0: `name: flags=<hex><LIST> metric N
//!   mtu N` (ifconfig_netlink.c `status_nl`); body lines start with a TAB;
//! * one `\tinet A netmask 0xHEX [broadcast B] [vhid N]` line per IPv4 address, no alias
//!   marker (af_inet.c `in_status_nl`); `-f inet:cidr` prints `inet A/P`, `inet:dotted` a
//!   dotted netmask — all three are understood;
//! * bridge members: `\tmember: NAME flags=…` plus a continuation line (ifbridge.c);
//! * `groups:` lists the interface groups (a renamed bridge stays in group `bridge`);
//! * clone units belong to the cloner, not the name (sys/net/if_clone.c): a bridge renamed
//!   to `vtnet0bridge` still holds its unit, and `ifconfig bridgeN create` of that unit fails
//!   (`interface bridgeN already exists`). `ifconfig bridge create name NAME` lets the
//!   kernel take a free unit (`ifc_alloc_unit_next`) and renames the new clone in the same
//!   call (ifconfig.c runs the create callback, then the remaining words on the new
//!   interface), printing only NAME.

use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use ipnet::Ipv4Net;

use crate::exec::Cmd;
use crate::ipv4;

/// One interface as `ifconfig` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Interface {
    pub name: String,
    pub flags: Vec<String>,
    pub description: Option<String>,
    /// IPv4 addresses with their prefix, in output (kernel) order.
    pub inet: Vec<Ipv4Net>,
    pub members: Vec<String>,
    pub groups: Vec<String>,
}

impl Interface {
    pub fn is_up(&self) -> bool {
        self.flags.iter().any(|f| f == "UP")
    }

    pub fn is_bridge(&self) -> bool {
        self.groups.iter().any(|g| g == "bridge")
    }
}

/// Parses the output of `ifconfig`, `ifconfig -a` or `ifconfig <if>`.
pub fn parse(output: &str) -> Result<Vec<Interface>> {
    let mut interfaces: Vec<Interface> = Vec::new();
    for (number, line) in output.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(['\t', ' ']) {
            let (name, rest) = line
                .split_once(": ")
                .ok_or_else(|| anyhow!("line {}: not an interface header: {line:?}", number + 1))?;
            interfaces.push(Interface {
                name: name.to_string(),
                flags: header_flags(rest),
                ..Interface::default()
            });
            continue;
        }
        let Some(current) = interfaces.last_mut() else {
            bail!("line {}: body line before any interface header", number + 1);
        };
        let body = line.trim_start_matches('\t');
        if body.starts_with(' ') {
            continue; // member continuation line
        }
        let mut words = body.split_whitespace();
        match words.next() {
            Some("inet") => current.inet.push(
                parse_inet(&words.collect::<Vec<_>>())
                    .with_context(|| format!("line {}: {line:?}", number + 1))?,
            ),
            Some("member:") => {
                if let Some(member) = words.next() {
                    current.members.push(member.to_string());
                }
            }
            Some("groups:") => current.groups = words.map(String::from).collect(),
            Some("description:") => {
                current.description = Some(body["description:".len()..].trim().to_string());
            }
            _ => {}
        }
    }
    Ok(interfaces)
}

/// `flags=8843<UP,BROADCAST,…> metric 0 mtu 1500` → the flag names.
fn header_flags(rest: &str) -> Vec<String> {
    rest.split_once('<')
        .and_then(|(_, tail)| tail.split_once('>'))
        .map(|(list, _)| {
            list.split(',')
                .filter(|f| !f.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// The words after `inet`: `A netmask 0xffffff00 …`, `A/P …` or `A netmask 255.255.255.0 …`.
fn parse_inet(words: &[&str]) -> Result<Ipv4Net> {
    let first = words
        .first()
        .ok_or_else(|| anyhow!("inet line without an address"))?;
    if first.contains('/') {
        return ipv4::parse_prefixed(first);
    }
    let addr: Ipv4Addr = first
        .parse()
        .with_context(|| format!("bad address {first:?}"))?;
    let mask = words
        .iter()
        .position(|w| *w == "netmask")
        .and_then(|i| words.get(i + 1))
        .ok_or_else(|| anyhow!("inet {addr} has no netmask"))?;
    ipv4::with_netmask(addr, mask)
}

/// Parses `ifconfig -l`: names on one line.
pub fn parse_list(output: &str) -> Vec<String> {
    output.split_whitespace().map(String::from).collect()
}

/// `ifconfig -g GROUP`: the names of the interfaces in a group, one per line (ifgroup.c
/// `printgroup`; a renamed bridge stays in group `bridge`; docs/freebsd-facts.md §1).
pub fn group_cmd(ifconfig: &Path, group: &str) -> Cmd {
    Cmd::new(ifconfig).arg("-g").arg(group)
}

/// The members of an interface group (`ifconfig -g GROUP`).
pub fn group(ifconfig: &Path, group: &str) -> Result<Vec<String>> {
    Ok(parse_list(&group_cmd(ifconfig, group).run()?.stdout))
}

/// `ifconfig -l`: every interface name, on one line.
pub fn list_cmd(ifconfig: &Path) -> Cmd {
    Cmd::new(ifconfig).arg("-l")
}

/// The host's interface names (`ifconfig -l`).
pub fn list(ifconfig: &Path) -> Result<Vec<String>> {
    Ok(parse_list(&list_cmd(ifconfig).run()?.stdout))
}

/// `ifconfig -a`: every interface with its addresses, in one call.
pub fn all(ifconfig: &Path) -> Result<Vec<Interface>> {
    let out = Cmd::new(ifconfig).arg("-a").run()?;
    parse(&out.stdout).context("cannot parse `ifconfig -a`")
}

/// The longest interface name: IFNAMSIZ (16, sys/net/if.h) less the NUL.
pub const MAX_NAME: usize = 15;

/// Checks a user-given interface name: a letter, then letters, digits, `_` or `.` (VLANs),
/// at most [`MAX_NAME`] bytes. FreeBSD itself takes more, but these names end up in rc.conf
/// variable names and command lines, where nothing else is needed or safe.
pub fn check_name(label: &str, name: &str) -> std::result::Result<(), String> {
    let ok = name.len() <= MAX_NAME
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{label} {name:?} is not an interface name (a letter, then letters, digits, _ or ., at most {MAX_NAME})"
        ))
    }
}

/// `ifconfig <clone> create`: a clone with the unit its name gives.
pub fn create(ifconfig: &Path, clone: &str) -> Cmd {
    Cmd::new(ifconfig).arg(clone).arg("create")
}

/// `ifconfig <cloner> create name <name>`: a clone on a unit the kernel chooses, renamed.
pub fn create_named(ifconfig: &Path, cloner: &str, name: &str) -> Cmd {
    Cmd::new(ifconfig)
        .arg(cloner)
        .arg("create")
        .arg("name")
        .arg(name)
}

/// `ifconfig <if> destroy`
pub fn destroy(ifconfig: &Path, interface: &str) -> Cmd {
    Cmd::new(ifconfig).arg(interface).arg("destroy")
}

/// `ifconfig <if> name <new>`
pub fn rename(ifconfig: &Path, interface: &str, new_name: &str) -> Cmd {
    Cmd::new(ifconfig).arg(interface).arg("name").arg(new_name)
}

/// `ifconfig <if> up`
pub fn up(ifconfig: &Path, interface: &str) -> Cmd {
    Cmd::new(ifconfig).arg(interface).arg("up")
}

/// `bridge12` → (`bridge`, 12); None when the name does not end in a unit.
pub fn split_unit(name: &str) -> Option<(&str, u32)> {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (base, unit) = name.split_at(name.len() - digits);
    if base.is_empty() || unit.is_empty() || (unit.len() > 1 && unit.starts_with('0')) {
        return None;
    }
    Some((base, unit.parse().ok()?))
}

/// `ifconfig <if> inet A/P alias`
pub fn add_alias(ifconfig: &Path, interface: &str, addr: &Ipv4Net) -> Cmd {
    Cmd::new(ifconfig)
        .arg(interface)
        .arg("inet")
        .arg(addr.to_string())
        .arg("alias")
}

/// `ifconfig <if> inet A -alias`
pub fn remove_alias(ifconfig: &Path, interface: &str, addr: &Ipv4Net) -> Cmd {
    Cmd::new(ifconfig)
        .arg(interface)
        .arg("inet")
        .arg(addr.addr().to_string())
        .arg("-alias")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn freebsd14_bridge() {
        let ifs = parse(include_str!(
            "../../../tests/fixtures/ifconfig/freebsd14-bridge1.txt"
        ))
        .unwrap();
        assert_eq!(ifs.len(), 1);
        let b = &ifs[0];
        assert_eq!(b.name, "bridge1");
        assert!(b.is_up() && b.is_bridge());
        assert_eq!(b.flags.last().unwrap(), "LOWER_UP");
        assert_eq!(b.inet, vec![net("192.168.1.1/24")]);
        assert!(b.members.is_empty());
    }

    #[test]
    fn freebsd14_bridge_with_members() {
        let ifs = parse(include_str!(
            "../../../tests/fixtures/ifconfig/freebsd14-bridge0-members.txt"
        ))
        .unwrap();
        assert_eq!(ifs[0].members, ["e0a_jail04", "vtnet0"]);
        assert_eq!(ifs[0].inet, vec![net("10.2.70.109/24")]);
        assert!(ifs[0].flags.contains(&"PROMISC".to_string()));
    }

    #[test]
    fn freebsd13_bridge_ignores_inet6() {
        let ifs = parse(include_str!(
            "../../../tests/fixtures/ifconfig/freebsd13-bridge0.txt"
        ))
        .unwrap();
        assert_eq!(ifs[0].inet, vec![net("192.168.17.1/24")]);
        assert_eq!(ifs[0].members, ["epair40a"]);
        assert_eq!(ifs[0].groups, ["bridge"]);
    }

    #[test]
    fn several_interfaces_aliases_and_formats() {
        let text = "warden0: flags=1008843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST,LOWER_UP> metric 0 mtu 1500\n\
            \tdescription: agents bridge\n\
            \tinet 10.0.0.1 netmask 0xffffff00 broadcast 10.0.0.255\n\
            \tinet 10.0.1.1 netmask 0xffffffff broadcast 10.0.1.1\n\
            \tinet 10.0.2.1/24 broadcast 10.0.2.255\n\
            \tinet 10.0.3.1 netmask 255.255.255.0 broadcast 10.0.3.255\n\
            \tgroups: bridge\n\
            lo0: flags=1008049<UP,LOOPBACK,RUNNING,MULTICAST,LOWER_UP> metric 0 mtu 16384\n\
            \tinet 127.0.0.1 netmask 0xff000000\n\
            \tgroups: lo\n";
        let ifs = parse(text).unwrap();
        assert_eq!(ifs.len(), 2);
        assert_eq!(ifs[0].description.as_deref(), Some("agents bridge"));
        assert_eq!(
            ifs[0].inet,
            vec![
                net("10.0.0.1/24"),
                net("10.0.1.1/32"),
                net("10.0.2.1/24"),
                net("10.0.3.1/24")
            ]
        );
        assert_eq!(ifs[1].inet, vec![net("127.0.0.1/8")]);
        assert!(!ifs[1].is_bridge());
    }

    #[test]
    fn down_bridge_and_garbage() {
        let ifs = parse("bridge0: flags=8802<BROADCAST,SIMPLEX,MULTICAST> metric 0 mtu 1500\n\tgroups: bridge\n").unwrap();
        assert!(!ifs[0].is_up());
        assert!(parse("\tinet 1.2.3.4 netmask 0xff\n").is_err());
        assert!(parse("x: flags=1<UP>\n\tinet 10.0.0.1 netmask 0xff00ff00\n").is_err());
        assert!(parse("x: flags=1<UP>\n\tinet 10.0.0.300 netmask 0xffffff00\n").is_err());
        assert!(parse("no header here\n").is_err());
    }

    #[test]
    fn commands() {
        let path = Path::new("/sbin/ifconfig");
        assert_eq!(
            add_alias(path, "warden0", &net("10.0.1.1/24")).to_string(),
            "/sbin/ifconfig warden0 inet 10.0.1.1/24 alias"
        );
        assert_eq!(
            remove_alias(path, "warden0", &net("10.0.1.1/24")).to_string(),
            "/sbin/ifconfig warden0 inet 10.0.1.1 -alias"
        );
        assert_eq!(parse_list("em0 lo0 warden0\n"), ["em0", "lo0", "warden0"]);
        assert_eq!(
            create_named(path, "bridge", "warden0").to_string(),
            "/sbin/ifconfig bridge create name warden0"
        );
        assert_eq!(
            create(path, "bridge3").to_string(),
            "/sbin/ifconfig bridge3 create"
        );
        assert_eq!(
            destroy(path, "warden0").to_string(),
            "/sbin/ifconfig warden0 destroy"
        );
        assert_eq!(
            rename(path, "bridge0", "warden0").to_string(),
            "/sbin/ifconfig bridge0 name warden0"
        );
        assert_eq!(up(path, "warden0").to_string(), "/sbin/ifconfig warden0 up");
        assert_eq!(
            group_cmd(path, "bridge").to_string(),
            "/sbin/ifconfig -g bridge"
        );
        assert_eq!(list_cmd(path).to_string(), "/sbin/ifconfig -l");
        assert_eq!(split_unit("bridge12"), Some(("bridge", 12)));
        assert_eq!(split_unit("warden0"), Some(("warden", 0)));
        assert_eq!(split_unit("bridge"), None);
        assert_eq!(split_unit("bridge01"), None);
        assert_eq!(split_unit("12"), None);
    }
}
