//! The host lock: an exclusive `flock(2)` on a lock file (a module parameter), so two
//! module runs on one host (two agents provisioned at once) observe and change the host one
//! after the other. flock is released by the kernel when the process exits, even on SIGKILL;
//! the lock file is opened close-on-exec and by descriptor (`fs::open_lock_file`), so no
//! tool the module runs (a daemon an rc.d script starts, a tool killed at its
//! `tool_timeout`) inherits the lock or outlives the run holding it, and a link planted at
//! its name is refused.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// Where the lock lives unless a module is told otherwise.
pub const DEFAULT_LOCK_FILE: &str = "/var/run/warden.lock";

/// Held until dropped.
#[derive(Debug)]
pub struct HostLock {
    _lock: Flock<File>,
    path: PathBuf,
}

impl HostLock {
    /// Waits up to `timeout` for the lock.
    pub fn acquire(path: &Path, timeout: Duration) -> Result<HostLock> {
        let deadline = Instant::now() + timeout;
        let mut file = open(path)?;
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => {
                    return Ok(HostLock {
                        _lock: lock,
                        path: path.to_owned(),
                    })
                }
                Err((returned, Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                    file = returned;
                    std::thread::sleep(Duration::from_millis(25));
                }
                Err((_, Errno::EWOULDBLOCK)) => bail!(
                    "another warden run holds the host lock {} (waited {}s)",
                    path.display(),
                    timeout.as_secs()
                ),
                Err((_, errno)) => {
                    return Err(errno).with_context(|| format!("cannot lock {}", path.display()))
                }
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn open(path: &Path) -> Result<File> {
    crate::fs::open_lock_file(path)
        .with_context(|| format!("cannot open the host lock file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_times_out_then_succeeds_after_release() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().canonicalize().unwrap().join("warden.lock");
        let first = HostLock::acquire(&path, Duration::from_secs(1)).unwrap();
        let err = HostLock::acquire(&path, Duration::from_millis(100)).unwrap_err();
        assert!(err.to_string().contains("holds the host lock"), "{err}");
        drop(first);
        HostLock::acquire(&path, Duration::from_millis(100)).unwrap();
    }

    #[test]
    fn a_child_process_does_not_inherit_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().canonicalize().unwrap().join("warden.lock");
        let lock = HostLock::acquire(&path, Duration::from_secs(1)).unwrap();
        // A tool started while the lock is held, still running after the holder is gone.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        drop(lock);
        let again = HostLock::acquire(&path, Duration::from_millis(500));
        child.kill().unwrap();
        child.wait().unwrap();
        again.unwrap();
    }

    #[test]
    fn missing_directory_is_a_clear_error() {
        let err =
            HostLock::acquire(Path::new("/nonexistent/dir/x.lock"), Duration::ZERO).unwrap_err();
        assert!(
            format!("{err:#}").contains("cannot open the host lock file /nonexistent/dir/x.lock")
        );
    }
}
