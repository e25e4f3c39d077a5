//! `sysctl(8)`: reading and setting an OID (sbin/sysctl/sysctl.c: `-n` prints the value only;
//! `name=value` sets it).

use std::path::Path;

use anyhow::Result;

use crate::exec::Cmd;

/// IPv4 forwarding, which `gateway_enable=YES` sets at boot (freebsd-src
/// libexec/rc/rc.d/routing at 023fc80e, `options_inet`; docs/freebsd-facts.md).
pub const IP_FORWARDING: &str = "net.inet.ip.forwarding";

/// `sysctl -n <name>`
pub fn get_cmd(sysctl: &Path, name: &str) -> Cmd {
    Cmd::new(sysctl).arg("-n").arg(name)
}

/// `sysctl -n <name>`, trimmed.
pub fn get(sysctl: &Path, name: &str) -> Result<String> {
    Ok(get_cmd(sysctl, name).run()?.stdout.trim().to_string())
}

/// `sysctl <name>=<value>`
pub fn set(sysctl: &Path, name: &str, value: &str) -> Cmd {
    Cmd::new(sysctl).arg(format!("{name}={value}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_forms() {
        let sysctl = Path::new("/sbin/sysctl");
        assert_eq!(
            get_cmd(sysctl, IP_FORWARDING).to_string(),
            "/sbin/sysctl -n net.inet.ip.forwarding"
        );
        assert_eq!(
            set(sysctl, IP_FORWARDING, "1").to_string(),
            "/sbin/sysctl net.inet.ip.forwarding=1"
        );
    }
}
