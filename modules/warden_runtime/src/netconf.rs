//! Interface addresses persisted in rc.conf, read the way FreeBSD's boot applies them
//! (freebsd/freebsd-src libexec/rc/network.subr `ifconfig_up`, `ifalias_af_common` at
//! 03ccfdd2, rc.d/netif; docs/freebsd-facts.md §2.2–2.3):
//! * `ifconfig_<if>`: handed to ifconfig as is, e.g. `inet 10.0.0.1/24 up`;
//! * `ifconfig_<if>_aliases`: several `inet …` chunks in one value;
//! * `ifconfig_<if>_alias<N>`: one chunk each;
//! * legacy `ipv4_addrs_<if>`: `A/P` words, `inet` implied.
//!
//! Addresses are spelled `A/P`, `A netmask M` (dotted or hex), or bare `A` (classful mask,
//! as ifconfig assumes). Variable names map `.-/+` in an interface name to `_` (network.subr
//! `get_if_var`).

use std::net::Ipv4Addr;

use anyhow::{anyhow, Context, Result};
use ipnet::Ipv4Net;

use crate::ipv4;
use crate::rcconf::{RcLookup, RcValue};

/// Which kind of variable holds an address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Slot {
    /// `ifconfig_<if>`
    Main,
    /// `ifconfig_<if>_alias<N>`
    Alias(u32),
    /// `ifconfig_<if>_aliases`
    Aliases,
    /// `ipv4_addrs_<if>`
    Ipv4Addrs,
}

/// An IPv4 address persisted for an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persisted {
    pub net: Ipv4Net,
    pub slot: Slot,
    pub var: String,
}

/// `ifconfig_<if>` with the characters network.subr maps to `_`.
pub fn if_var(interface: &str) -> String {
    format!("ifconfig_{}", var_safe(interface))
}

fn var_safe(interface: &str) -> String {
    interface.replace(['.', '-', '/', '+'], "_")
}

/// One word group of an `ifconfig_*` value: an `inet` address with its options, or
/// anything else (`up`, `DHCP`, `inet6 …` words).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Inet { net: Ipv4Net, words: Vec<String> },
    Other(String),
}

/// Splits an `ifconfig_*` value into parts.
pub fn parts(value: &str) -> Result<Vec<Part>> {
    let words: Vec<&str> = value.split_whitespace().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        if words[i] != "inet" {
            out.push(Part::Other(words[i].to_string()));
            i += 1;
            continue;
        }
        let addr_word = words
            .get(i + 1)
            .ok_or_else(|| anyhow!("`inet` without an address in {value:?}"))?;
        let mut taken = vec!["inet".to_string(), addr_word.to_string()];
        let mut netmask = None;
        let mut j = i + 2;
        while j < words.len() {
            match words[j] {
                "netmask" | "broadcast" => {
                    let arg = words
                        .get(j + 1)
                        .ok_or_else(|| anyhow!("`{}` without a value in {value:?}", words[j]))?;
                    if words[j] == "netmask" {
                        netmask = Some(*arg);
                    }
                    taken.push(words[j].to_string());
                    taken.push(arg.to_string());
                    j += 2;
                }
                "alias" => {
                    taken.push("alias".into());
                    j += 1;
                }
                _ => break,
            }
        }
        let net = address(addr_word, netmask).with_context(|| format!("in {value:?}"))?;
        out.push(Part::Inet { net, words: taken });
        i = j;
    }
    Ok(out)
}

/// Joins parts back into a value.
pub fn join(parts: &[Part]) -> String {
    parts
        .iter()
        .map(|p| match p {
            Part::Inet { words, .. } => words.join(" "),
            Part::Other(w) => w.clone(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `A/P`, or `A` with an optional netmask; a bare address gets its classful mask.
pub fn address(word: &str, netmask: Option<&str>) -> Result<Ipv4Net> {
    if word.contains('-') {
        return Err(anyhow!("address ranges such as {word:?} are not supported"));
    }
    if word.contains('/') {
        return ipv4::parse_prefixed(word);
    }
    let addr: Ipv4Addr = word
        .parse()
        .with_context(|| format!("bad address {word:?}"))?;
    match netmask {
        Some(mask) => ipv4::with_netmask(addr, mask),
        None => Ok(Ipv4Net::new(
            addr,
            match addr.octets()[0] {
                0..=127 => 8,
                128..=191 => 16,
                _ => 24,
            },
        )?),
    }
}

/// The spelling warden writes: `inet A/P`.
pub fn inet_words(net: &Ipv4Net) -> String {
    format!("inet {net}")
}

/// Every IPv4 address rc.conf persists for `interface`, with where it lives (one file, or
/// the boot-time chain, where each variable's effective value counts: aliases from several
/// files add up, the same variable in a later file replaces). Values sh would have to
/// expand cannot be read and are an error, since guessing could duplicate or drop an address.
pub fn persisted(rc: &impl RcLookup, interface: &str) -> Result<Vec<Persisted>> {
    let main = if_var(interface);
    let mut out = Vec::new();
    let mut add = |var: &str, slot: Slot, value: &RcValue, legacy: bool| -> Result<()> {
        let text = value.literal().ok_or_else(|| {
            anyhow!(
                "rc.conf sets {var} with a shell expansion; cannot tell which addresses it holds"
            )
        })?;
        if legacy {
            for word in text.split_whitespace() {
                let net = address(word, None).with_context(|| format!("{var}={text:?}"))?;
                out.push(Persisted {
                    net,
                    slot: slot.clone(),
                    var: var.to_string(),
                });
            }
        } else {
            for part in parts(text).with_context(|| format!("cannot read {var}"))? {
                if let Part::Inet { net, .. } = part {
                    out.push(Persisted {
                        net,
                        slot: slot.clone(),
                        var: var.to_string(),
                    });
                }
            }
        }
        Ok(())
    };
    if let Some(v) = rc.lookup(&main) {
        add(&main, Slot::Main, v, false)?;
    }
    for var in rc.names_with_prefix(&format!("{main}_alias")) {
        let Some(value) = rc.lookup(&var) else {
            continue;
        };
        let suffix = &var[main.len() + "_alias".len()..];
        if suffix == "es" {
            add(&var, Slot::Aliases, value, false)?;
        } else if let Ok(n) = suffix.parse::<u32>() {
            add(&var, Slot::Alias(n), value, false)?;
        }
    }
    let legacy = format!("ipv4_addrs_{}", var_safe(interface));
    if let Some(v) = rc.lookup(&legacy) {
        add(&legacy, Slot::Ipv4Addrs, v, true)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rcconf::RcConf;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn every_persisted_form() {
        let rc = RcConf::parse(concat!(
            "cloned_interfaces=\"bridge0\"\n",
            "ifconfig_bridge0_name=\"warden0\"\n",
            "ifconfig_warden0=\"inet 10.0.0.1/24 up\"\n",
            "ifconfig_warden0_alias0=\"inet 10.0.1.1 netmask 255.255.255.0\"\n",
            "ifconfig_warden0_alias1=\"inet 10.0.2.1 netmask 0xffffff00\"\n",
            "ifconfig_warden0_aliases=\"inet 10.0.3.1/24 inet 10.0.4.1/24\"\n",
            "ipv4_addrs_warden0=\"10.0.5.1/24 10.0.6.1/24\"\n",
            "ifconfig_warden01=\"inet 10.9.9.1/24\"\n",
        ));
        let got: Vec<(Ipv4Net, Slot)> = persisted(&rc, "warden0")
            .unwrap()
            .into_iter()
            .map(|p| (p.net, p.slot))
            .collect();
        assert_eq!(
            got,
            vec![
                (net("10.0.0.1/24"), Slot::Main),
                (net("10.0.1.1/24"), Slot::Alias(0)),
                (net("10.0.2.1/24"), Slot::Alias(1)),
                (net("10.0.3.1/24"), Slot::Aliases),
                (net("10.0.4.1/24"), Slot::Aliases),
                (net("10.0.5.1/24"), Slot::Ipv4Addrs),
                (net("10.0.6.1/24"), Slot::Ipv4Addrs),
            ]
        );
    }

    #[test]
    fn dynamic_values_are_an_error_and_dhcp_holds_nothing() {
        let rc = RcConf::parse("ifconfig_warden0=\"inet ${gw}/24\"\n");
        assert!(persisted(&rc, "warden0")
            .unwrap_err()
            .to_string()
            .contains("shell expansion"));
        let rc = RcConf::parse("ifconfig_em0=\"DHCP\"\n");
        assert!(persisted(&rc, "em0").unwrap().is_empty());
    }

    #[test]
    fn parts_round_trip_and_removal() {
        let p = parts("inet 10.0.0.1 netmask 255.255.255.0 alias up").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(join(&p), "inet 10.0.0.1 netmask 255.255.255.0 alias up");
        let rest: Vec<Part> = p
            .into_iter()
            .filter(|x| !matches!(x, Part::Inet { .. }))
            .collect();
        assert_eq!(join(&rest), "up");
        assert_eq!(address("10.1.2.3", None).unwrap(), net("10.1.2.3/8"));
        assert_eq!(address("192.168.1.1", None).unwrap(), net("192.168.1.1/24"));
        assert!(address("10.0.0.1-9/32", None).is_err());
        assert!(parts("inet").is_err());
    }

    #[test]
    fn variable_names() {
        assert_eq!(if_var("warden0"), "ifconfig_warden0");
        assert_eq!(if_var("vlan0.10"), "ifconfig_vlan0_10");
    }
}
