//! Files on the host: observing content, mode and owner, and replacing a file atomically
//! (temp file in the same directory, fsync, rename, fsync of the directory) so a crash or a
//! SIGKILL leaves either the old or the new file, never a torn one.

use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use nix::unistd::{Gid, Group, Uid, User};

/// A regular file as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileState {
    pub content: Vec<u8>,
    /// Permission bits only (`0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Reads a file's content and metadata; `None` if it does not exist.
pub fn read_state(path: &Path) -> Result<Option<FileState>> {
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot stat {}", path.display())),
    };
    if !meta.is_file() {
        return Err(anyhow!(
            "{} exists but is not a regular file",
            path.display()
        ));
    }
    let content = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Some(FileState {
        content,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
    }))
}

/// Ownership and permissions a written file must end up with; `None` keeps what the
/// existing file has (or the process defaults for a new file).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attrs {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

impl Attrs {
    /// True when `state` already has these attributes.
    pub fn satisfied_by(&self, state: &FileState) -> bool {
        self.mode.is_none_or(|m| m == state.mode)
            && self.uid.is_none_or(|u| u == state.uid)
            && self.gid.is_none_or(|g| g == state.gid)
    }
}

/// Replaces `path` with `content` atomically. Mode and owner come from `attrs`, else from
/// the file being replaced, else 0644 and the process's own ids.
pub fn write_atomic(path: &Path, content: &[u8], attrs: Attrs) -> Result<()> {
    let dir = parent_dir(path)?;
    let previous = read_state(path)?;
    let mode = attrs
        .mode
        .or(previous.as_ref().map(|p| p.mode))
        .unwrap_or(0o644);
    let uid = attrs.uid.or(previous.as_ref().map(|p| p.uid));
    let gid = attrs.gid.or(previous.as_ref().map(|p| p.gid));

    let mut temp = tempfile::Builder::new()
        .prefix(".warden-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    temp.write_all(content)
        .and_then(|_| temp.as_file().sync_all())
        .with_context(|| format!("cannot write a temporary file in {}", dir.display()))?;
    if uid.is_some() || gid.is_some() {
        nix::unistd::fchown(
            temp.as_file(),
            uid.map(Uid::from_raw),
            gid.map(Gid::from_raw),
        )
        .with_context(|| format!("cannot set the owner of {}", path.display()))?;
    }
    // After chown, which may clear set-id bits.
    fs::set_permissions(temp.path(), fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    temp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot replace {}", path.display()))?;
    sync_dir(dir);
    Ok(())
}

/// Creates a directory and its missing parents; the directory itself gets `attrs`.
pub fn make_dir(path: &Path, attrs: Attrs) -> Result<()> {
    fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))?;
    if attrs.uid.is_some() || attrs.gid.is_some() {
        nix::unistd::chown(
            path,
            attrs.uid.map(Uid::from_raw),
            attrs.gid.map(Gid::from_raw),
        )
        .with_context(|| format!("cannot set the owner of {}", path.display()))?;
    }
    if let Some(mode) = attrs.mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    }
    Ok(())
}

/// Restores a file to an observed state, or removes it when it did not exist (rollback).
pub fn restore(path: &Path, state: Option<&FileState>) -> Result<()> {
    match state {
        Some(state) => write_atomic(
            path,
            &state.content,
            Attrs {
                mode: Some(state.mode),
                uid: Some(state.uid),
                gid: Some(state.gid),
            },
        ),
        None => remove(path),
    }
}

/// Removes a file; a file that is already gone is fine.
pub fn remove(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {
            if let Ok(dir) = parent_dir(path) {
                sync_dir(dir);
            }
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}

/// Copies `path` to `path.<pid>.<UTC timestamp>~`, the name Ansible's `backup_local` uses.
pub fn backup(path: &Path) -> Result<PathBuf> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let target = PathBuf::from(format!(
        "{}.{}.{}~",
        path.display(),
        std::process::id(),
        utc_timestamp(secs)
    ));
    fs::copy(path, &target)
        .with_context(|| format!("cannot back up {} to {}", path.display(), target.display()))?;
    Ok(target)
}

/// `YYYY-MM-DD@HH:MM:SS` in UTC (civil-from-days, Howard Hinnant's algorithm).
fn utc_timestamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}@{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn parent_dir(path: &Path) -> Result<&Path> {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .ok_or_else(|| anyhow!("{} has no parent directory", path.display()))
}

/// Makes a rename durable. Best effort: some file systems refuse fsync on directories.
fn sync_dir(dir: &Path) {
    if let Ok(handle) = fs::File::open(dir) {
        let _ = handle.sync_all();
    }
}

/// Resolves a user name (or numeric id) to a uid.
pub fn resolve_user(name: &str) -> Result<u32> {
    if let Ok(id) = name.parse::<u32>() {
        return Ok(id);
    }
    User::from_name(name)
        .with_context(|| format!("cannot look up user {name:?}"))?
        .map(|u| u.uid.as_raw())
        .ok_or_else(|| anyhow!("user {name:?} does not exist on this host"))
}

/// Resolves a group name (or numeric id) to a gid.
pub fn resolve_group(name: &str) -> Result<u32> {
    if let Ok(id) = name.parse::<u32>() {
        return Ok(id);
    }
    Group::from_name(name)
        .with_context(|| format!("cannot look up group {name:?}"))?
        .map(|g| g.gid.as_raw())
        .ok_or_else(|| anyhow!("group {name:?} does not exist on this host"))
}

/// The entries `dir/*` names in sh (no dot files), sorted by name (the C locale's glob
/// order); `None` when `dir` is not a directory. For rc.subr's `rc.conf.d/<name>/*`.
pub fn dir_entries(dir: &Path) -> Result<Option<Vec<PathBuf>>> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Ok(None),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot stat {}", dir.display())),
    }
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    out.sort();
    Ok(Some(out))
}

/// Parses an octal mode string such as `0555` or `555`.
pub fn parse_mode(mode: &str) -> Result<u32> {
    let digits = mode.strip_prefix("0o").unwrap_or(mode);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o7777 && !digits.is_empty() => Ok(m),
        _ => Err(anyhow!(
            "mode {mode:?} is not an octal file mode such as 0555"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_keeps_existing_mode_unless_told() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&path, b"new", Attrs::default()).unwrap();
        let state = read_state(&path).unwrap().unwrap();
        assert_eq!((state.content.as_slice(), state.mode), (&b"new"[..], 0o640));

        write_atomic(
            &path,
            b"x",
            Attrs {
                mode: Some(0o555),
                ..Attrs::default()
            },
        )
        .unwrap();
        assert_eq!(read_state(&path).unwrap().unwrap().mode, 0o555);
        // No temporary files left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn restore_round_trips_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, "before").unwrap();
        let before = read_state(&path).unwrap();
        write_atomic(&path, b"after", Attrs::default()).unwrap();
        restore(&path, before.as_ref()).unwrap();
        assert_eq!(read_state(&path).unwrap(), before);
        restore(&path, None).unwrap();
        assert_eq!(read_state(&path).unwrap(), None);
    }

    #[test]
    fn backup_uses_ansible_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rc.conf");
        fs::write(&path, "a=1\n").unwrap();
        let copy = backup(&path).unwrap();
        let name = copy.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("rc.conf.") && name.ends_with('~'),
            "{name}"
        );
        assert_eq!(fs::read(&copy).unwrap(), b"a=1\n");
    }

    #[test]
    fn timestamps() {
        assert_eq!(utc_timestamp(0), "1970-01-01@00:00:00");
        assert_eq!(utc_timestamp(1_795_000_000), "2026-11-18@11:06:40");
        assert_eq!(utc_timestamp(951_782_400), "2000-02-29@00:00:00");
    }

    #[test]
    fn modes_and_ids() {
        assert_eq!(parse_mode("0555").unwrap(), 0o555);
        assert_eq!(parse_mode("755").unwrap(), 0o755);
        assert!(parse_mode("999").is_err());
        assert!(parse_mode("").is_err());
        assert_eq!(resolve_user("0").unwrap(), 0);
        assert_eq!(resolve_user("root").unwrap(), 0);
        assert!(resolve_user("no-such-user-warden").is_err());
    }

    #[test]
    fn directory_is_not_a_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_state(dir.path()).is_err());
    }

    #[test]
    fn dir_entries_like_a_glob() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b", "a", ".hidden"] {
            fs::write(dir.path().join(name), "").unwrap();
        }
        let got = dir_entries(dir.path()).unwrap().unwrap();
        assert_eq!(got, [dir.path().join("a"), dir.path().join("b")]);
        assert_eq!(dir_entries(&dir.path().join("a")).unwrap(), None);
        assert_eq!(dir_entries(&dir.path().join("none")).unwrap(), None);
    }
}
