//! `sysctl(8)`: reading and setting an OID (sbin/sysctl/sysctl.c: `-n` prints the value only;
//! `name=value` sets it).

use std::path::Path;

use anyhow::Result;

use crate::exec::Cmd;

/// `sysctl -n <name>`, trimmed.
pub fn get(sysctl: &Path, name: &str) -> Result<String> {
    Ok(Cmd::new(sysctl)
        .arg("-n")
        .arg(name)
        .run()?
        .stdout
        .trim()
        .to_string())
}

/// `sysctl <name>=<value>`
pub fn set(sysctl: &Path, name: &str, value: &str) -> Cmd {
    Cmd::new(sysctl).arg(format!("{name}={value}"))
}
