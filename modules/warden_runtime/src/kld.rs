//! Kernel modules: `kldstat(8)` to observe, `kldload(8)` to load, the way rc.subr's
//! `load_kld` does for an rc.d script's `required_modules` (libexec/rc/rc.subr: `kldstat -q
//! -m <module>`, and `kldload <file>` when that fails; libexec/rc/rc.d/pf declares
//! `required_modules="pf"`, so pf.ko is loaded only when rc.d/pf starts — at boot with
//! `pf_enable=YES`, or by `service pf start`).
//!
//! Facts (freebsd/freebsd-src sbin/kldstat/kldstat.c, sbin/kldload/kldload.c):
//! * `kldstat -q -m NAME` exits 0 when the module is in the kernel, 1 when modfind(2) does
//!   not find it, and prints nothing either way; other exit codes are failures of the tool;
//! * `kldload -n NAME` loads the module and treats "already loaded" (EEXIST) as success, so
//!   it is safe when something else loaded the module in between.
//!
//! Loading a module is not undone by a rollback: rc.d never unloads pf.ko either, and an
//! idle, disabled pf changes nothing on the host.

use std::path::Path;

use anyhow::Result;

use crate::exec::{Cmd, CommandError};

/// `kldstat -q -m <module>`
pub fn stat_cmd(kldstat: &Path, module: &str) -> Cmd {
    Cmd::new(kldstat).args(["-q", "-m", module])
}

/// Whether `module` is in the kernel (`kldstat -q -m`: 0 yes, 1 no).
pub fn is_loaded(kldstat: &Path, module: &str) -> Result<bool> {
    let cmd = stat_cmd(kldstat, module);
    let out = cmd.output()?;
    match out.rc {
        0 => Ok(true),
        1 => Ok(false),
        _ => Err(CommandError::new(&cmd, out).into()),
    }
}

/// `kldload -n <module>`: loads it unless it is loaded already.
pub fn load(kldload: &Path, module: &str) -> Cmd {
    Cmd::new(kldload).arg("-n").arg(module)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_forms() {
        assert_eq!(
            stat_cmd(Path::new("/sbin/kldstat"), "pf").to_string(),
            "/sbin/kldstat -q -m pf"
        );
        assert_eq!(
            load(Path::new("/sbin/kldload"), "pf").to_string(),
            "/sbin/kldload -n pf"
        );
    }
}
