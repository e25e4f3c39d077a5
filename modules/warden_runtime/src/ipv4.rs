//! IPv4 rules every network module applies the same way: parsing `A.B.C.D/P` with a clear
//! message (IPv6 is not supported), the address forms ifconfig prints and rc.conf holds
//! (`A/P`, `A netmask 0xffffff00`, `A netmask 255.255.255.0`: ipnet parses and checks them),
//! RFC 1918 private ranges, network and broadcast addresses.

use std::net::Ipv4Addr;

use anyhow::{anyhow, bail, Result};
use ipnet::Ipv4Net;

/// Parses a host address with its prefix, `10.0.1.1/24`.
pub fn parse_cidr(text: &str) -> Result<Ipv4Net> {
    if text.contains(':') {
        bail!("{text:?}: IPv6 is not supported; give an IPv4 address such as 10.0.1.1/24");
    }
    if !text.contains('/') {
        bail!("{text:?} has no prefix length; write it as A.B.C.D/P, e.g. 10.0.1.1/24");
    }
    text.parse::<Ipv4Net>().map_err(|_| {
        anyhow!("{text:?} is not an IPv4 address with a prefix length such as 10.0.1.1/24")
    })
}

/// RFC 1918 (10/8, 172.16/12, 192.168/16: std's `Ipv4Addr::is_private`), the whole subnet:
/// its first and last address are private only when it lies inside one of the ranges.
pub fn is_private(net: &Ipv4Net) -> bool {
    net.network().is_private() && net.broadcast().is_private()
}

/// `A/P` (ipnet's parser: the address, a prefix of at most 32).
pub fn parse_prefixed(word: &str) -> Result<Ipv4Net> {
    word.parse()
        .map_err(|_| anyhow!("bad address {word:?}: not an IPv4 address with a prefix length"))
}

/// A netmask as ifconfig prints it (`0xffffff00`) or dotted (`255.255.255.0`).
pub fn parse_netmask(mask: &str) -> Result<Ipv4Addr> {
    match mask.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).map(Ipv4Addr::from).ok(),
        None => mask.parse().ok(),
    }
    .ok_or_else(|| anyhow!("bad netmask {mask:?}"))
}

/// `A` with a netmask (see [`parse_netmask`]); ipnet refuses a mask that is not contiguous.
pub fn with_netmask(addr: Ipv4Addr, mask: &str) -> Result<Ipv4Net> {
    Ipv4Net::with_netmask(addr, parse_netmask(mask)?)
        .map_err(|_| anyhow!("netmask {mask} is not contiguous"))
}

/// Refuses the network and broadcast address of a subnet that has them (prefix ≤ 30).
pub fn check_host_address(net: &Ipv4Net) -> Result<()> {
    if net.prefix_len() <= 30 {
        if net.addr() == net.network() {
            bail!("{net} is the network address of {}; the host needs an address inside it, e.g. {}/{}", net.trunc(), next(net), net.prefix_len());
        }
        if net.addr() == net.broadcast() {
            bail!("{net} is the broadcast address of {}", net.trunc());
        }
    }
    Ok(())
}

fn next(net: &Ipv4Net) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(u32::from(net.network()).wrapping_add(1))
}

/// True when two subnets share any address.
pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.trunc().contains(&b.network()) || b.trunc().contains(&a.network())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn parsing() {
        assert_eq!(parse_cidr("10.0.1.1/24").unwrap(), net("10.0.1.1/24"));
        assert!(parse_cidr("fd00::1/64")
            .unwrap_err()
            .to_string()
            .contains("IPv6 is not supported"));
        assert!(parse_cidr("10.0.1.1")
            .unwrap_err()
            .to_string()
            .contains("no prefix length"));
        assert!(parse_cidr("10.0.1.300/24").is_err());
        assert!(parse_cidr("10.0.1.1/33").is_err());
    }

    #[test]
    fn address_forms() {
        assert_eq!(parse_prefixed("10.0.1.1/24").unwrap(), net("10.0.1.1/24"));
        for bad in ["10.0.1.1/33", "10.0.1/24", "10.0.1.1/", "x/24", "10.0.1.1"] {
            assert!(parse_prefixed(bad).is_err(), "{bad}");
        }
        let a = Ipv4Addr::new(10, 0, 1, 1);
        for (mask, prefix) in [
            ("0xffffff00", 24),
            ("0xffffffff", 32),
            ("255.255.0.0", 16),
            ("0x0", 0),
        ] {
            assert_eq!(
                with_netmask(a, mask).unwrap().prefix_len(),
                prefix,
                "{mask}"
            );
        }
        assert_eq!(
            with_netmask(a, "0xff00ff00").unwrap_err().to_string(),
            "netmask 0xff00ff00 is not contiguous"
        );
        for bad in ["0xfffffffff", "0xzz", "255.255.0", ""] {
            assert!(with_netmask(a, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn private_ranges() {
        for ok in [
            "10.0.1.1/24",
            "172.16.5.1/24",
            "172.31.255.1/24",
            "192.168.100.1/24",
        ] {
            assert!(is_private(&net(ok)), "{ok}");
        }
        for public in [
            "8.8.8.8/24",
            "172.32.0.1/24",
            "192.169.0.1/24",
            "11.0.0.1/8",
            "10.0.0.1/7",
            "172.0.0.1/8",
            "0.0.0.0/0",
        ] {
            assert!(!is_private(&net(public)), "{public}");
        }
    }

    #[test]
    fn host_addresses() {
        assert!(check_host_address(&net("10.0.1.1/24")).is_ok());
        assert!(check_host_address(&net("10.0.1.0/24"))
            .unwrap_err()
            .to_string()
            .contains("network address"));
        assert!(check_host_address(&net("10.0.1.255/24"))
            .unwrap_err()
            .to_string()
            .contains("broadcast address"));
        assert!(check_host_address(&net("10.0.1.0/32")).is_ok());
        assert!(check_host_address(&net("10.0.1.0/31")).is_ok());
    }

    #[test]
    fn overlap() {
        assert!(overlaps(&net("10.0.1.1/24"), &net("10.0.1.200/24")));
        assert!(overlaps(&net("10.0.0.1/16"), &net("10.0.1.1/24")));
        assert!(!overlaps(&net("10.0.0.1/24"), &net("10.0.1.1/24")));
    }
}
