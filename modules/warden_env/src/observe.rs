//! Reads the host once, through the runtime's `fs`: the `.env` file as it is (no links, a
//! regular file only: the agent owns the directory), whether its directory exists, and the
//! ids of `owner` and `group`. Nothing here decides; [`crate::plan::plan`] does.

use std::path::{Path, PathBuf};

use anyhow::Result;

use warden_runtime::fs::{self as wfs, FileState};

use warden_runtime::spec::State;

use crate::Settings;

/// Everything the planner may know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub path: PathBuf,
    /// The file as it is (`None`: missing).
    pub file: Option<FileState>,
    /// Its directory (the agent's checkout) exists.
    pub parent_exists: bool,
    /// `owner` and `group` as ids, looked up for `state: present`.
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

pub fn observe(p: &Settings) -> Result<Observed> {
    let path = p.path.clone();
    let present = p.state == State::Present;
    let resolve = |name: &Option<String>, by: fn(&str) -> Result<u32>| -> Result<Option<u32>> {
        match name {
            Some(name) if present => by(name).map(Some),
            _ => Ok(None),
        }
    };
    Ok(Observed {
        file: wfs::read_state(&path)?,
        parent_exists: path.parent().unwrap_or(Path::new("/")).is_dir(),
        uid: resolve(&p.owner, wfs::resolve_user)?,
        gid: resolve(&p.group, wfs::resolve_group)?,
        path,
    })
}
