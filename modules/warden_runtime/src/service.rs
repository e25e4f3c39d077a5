//! `service(8)` and rc.subr facts the modules rely on (usr.sbin/service/service.sh,
//! libexec/rc/rc.subr):
//! * `service x start` on a service whose rcvar is not YES prints
//!   "Cannot 'start' x. Set x_enable to YES in /etc/rc.conf or use 'onestart' instead of
//!   'start'." and **exits 0**, so success is judged by a status check afterwards, never by
//!   the exit code of start/stop.
//! * `status` skips the rcvar check only on newer rc.subr (freebsd-src main); FreeBSD 13.x's
//!   rc.subr applies it, so a disabled service answers `status` with "Cannot 'status' …"
//!   and **exit 0** although nothing runs (tests/fixtures/service/
//!   freebsd13-disabled-status.transcript). Whether a service runs is therefore always
//!   asked with `onestatus`: exit 0 when running, non-zero otherwise, whatever
//!   `<name>_enable` says and on every release.
//! * the `one` prefix runs a verb as if the rcvar were YES.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::exec::{find_tool, Cmd};
use crate::plan::{run_and_check, Step};

/// `service` as found on PATH, else where the base system keeps it (/usr/sbin/service).
pub fn tool() -> PathBuf {
    find_tool("service").unwrap_or_else(|_| PathBuf::from("/usr/sbin/service"))
}

/// `service <name> <verb>`, with the `one` prefix when the service is not enabled.
pub fn verb(service: &Path, name: &str, verb: &str, enabled: bool) -> Cmd {
    let verb = if enabled {
        verb.to_string()
    } else {
        format!("one{verb}")
    };
    Cmd::new(service).arg(name).arg(verb)
}

/// `service <name> onestatus`: the status question whose answer does not depend on
/// `<name>_enable` (see the module docs).
pub fn status_cmd(service: &Path, name: &str) -> Cmd {
    Cmd::new(service).arg(name).arg("onestatus")
}

/// Asks `service <name> onestatus` whether the service runs (exit status 0).
pub fn is_running(service: &Path, name: &str) -> Result<bool> {
    Ok(status_cmd(service, name).output()?.success())
}

/// Starts a service and then checks that it runs: `start` may print "Cannot 'start' …"
/// and still exit 0. Undo stops it again.
pub struct StartService {
    pub service: PathBuf,
    pub name: String,
    pub enabled: bool,
}

impl StartService {
    fn start_cmd(&self) -> Cmd {
        verb(&self.service, &self.name, "start", self.enabled)
    }
}

impl Step for StartService {
    fn describe(&self) -> String {
        self.start_cmd().to_string()
    }
    fn command(&self) -> Option<String> {
        Some(self.describe())
    }
    fn apply(&mut self) -> Result<()> {
        run_and_check(
            &self.start_cmd(),
            || is_running(&self.service, &self.name),
            || format!("{} is not running", self.name),
        )
    }
    fn undo(&mut self) -> Result<()> {
        verb(&self.service, &self.name, "stop", self.enabled)
            .run()
            .map(|_| ())
    }
}

/// Stops a running service; undo starts it again (with whatever script is then in place).
pub struct StopService {
    pub service: PathBuf,
    pub name: String,
    pub enabled: bool,
}

impl Step for StopService {
    fn describe(&self) -> String {
        verb(&self.service, &self.name, "stop", self.enabled).to_string()
    }
    fn command(&self) -> Option<String> {
        Some(self.describe())
    }
    fn apply(&mut self) -> Result<()> {
        run_and_check(
            &verb(&self.service, &self.name, "stop", self.enabled),
            || Ok(!is_running(&self.service, &self.name)?),
            || format!("{} is still running", self.name),
        )
    }
    fn undo(&mut self) -> Result<()> {
        verb(&self.service, &self.name, "start", self.enabled)
            .run()
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_prefix_for_disabled_services() {
        let service = Path::new("/usr/sbin/service");
        assert_eq!(
            verb(service, "mevy", "start", true).to_string(),
            "/usr/sbin/service mevy start"
        );
        assert_eq!(
            verb(service, "mevy", "start", false).to_string(),
            "/usr/sbin/service mevy onestart"
        );
        assert_eq!(
            status_cmd(service, "mevy").to_string(),
            "/usr/sbin/service mevy onestatus"
        );
    }
}
