//! `sysrc(8)`: the one way warden writes rc.conf, so FreeBSD's own tool does the editing
//! (quote style, last-assignment rule, mode and owner kept, `sh -n` check on edits).
//!
//! sysrc writes a *new* variable as `name="value"` with no escaping at all
//! (sysrc.subr `f_sysrc_set`: `echo "$varname=\"$new_value\"" >> "$file"`), so a value holding
//! `"`, `$`, a backslash, a backtick or a newline would corrupt rc.conf or be expanded at
//! boot. Such values are refused here, before any command is built.

use std::path::Path;

use anyhow::{bail, Result};

use crate::exec::Cmd;
use crate::shell::is_identifier;

/// Checks a variable name the way sysrc does (`name contains characters not allowed in shell`).
pub fn check_name(name: &str) -> Result<()> {
    if !is_identifier(name) {
        bail!("rc.conf variable name {name:?} contains characters not allowed in shell");
    }
    Ok(())
}

/// Refuses values sysrc would write unescaped into a double-quoted string.
pub fn check_value(name: &str, value: &str) -> Result<()> {
    if let Some(bad) = value
        .chars()
        .find(|c| matches!(c, '"' | '$' | '\\' | '`' | '\n' | '\r'))
    {
        bail!(
            "cannot write {name} to rc.conf: its value contains {:?}, which sysrc writes unescaped inside double quotes",
            bad
        );
    }
    Ok(())
}

/// `sysrc -f <file> name=value`
pub fn set(sysrc: &Path, file: &Path, name: &str, value: &str) -> Result<Cmd> {
    check_name(name)?;
    check_value(name, value)?;
    Ok(Cmd::new(sysrc)
        .arg("-f")
        .arg(file)
        .arg(format!("{name}={value}")))
}

/// `sysrc -f <file> -x name`: removes every assignment of `name` in `file`.
pub fn delete(sysrc: &Path, file: &Path, name: &str) -> Result<Cmd> {
    check_name(name)?;
    Ok(Cmd::new(sysrc).arg("-f").arg(file).arg("-x").arg(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_commands() {
        let cmd = set(
            Path::new("/usr/sbin/sysrc"),
            Path::new("/etc/rc.conf"),
            "mevy_enable",
            "YES",
        )
        .unwrap();
        assert_eq!(
            cmd.to_string(),
            "/usr/sbin/sysrc -f /etc/rc.conf mevy_enable=YES"
        );
        let cmd = delete(
            Path::new("/usr/sbin/sysrc"),
            Path::new("/etc/rc.conf"),
            "mevy_enable",
        )
        .unwrap();
        assert_eq!(
            cmd.to_string(),
            "/usr/sbin/sysrc -f /etc/rc.conf -x mevy_enable"
        );
    }

    #[test]
    fn refuses_values_sysrc_cannot_write() {
        for bad in ["say \"hi\"", "$(id)", "a\\b", "`id`", "a\nb"] {
            let err = set(Path::new("sysrc"), Path::new("/etc/rc.conf"), "x", bad).unwrap_err();
            assert!(err.to_string().contains("unescaped"), "{err}");
        }
        assert!(set(
            Path::new("sysrc"),
            Path::new("/etc/rc.conf"),
            "x",
            "inet 10.0.1.1/24 it's"
        )
        .is_ok());
        assert!(set(
            Path::new("sysrc"),
            Path::new("/etc/rc.conf"),
            "bad.name",
            "1"
        )
        .is_err());
    }
}
