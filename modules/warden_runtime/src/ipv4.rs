//! IPv4 rules every network module applies the same way: parsing `A.B.C.D/P` with a clear
//! message (IPv6 is not supported), RFC 1918 private ranges, network and broadcast addresses.

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

/// RFC 1918: 10/8, 172.16/12, 192.168/16.
pub fn is_private(net: &Ipv4Net) -> bool {
    ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
        .iter()
        .filter_map(|r| r.parse::<Ipv4Net>().ok())
        .any(|range| range.contains(net))
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
