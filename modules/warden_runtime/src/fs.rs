//! Files on the host, touched the way root must touch them on a host where other users own
//! directories: an agent owns its workdir, a jail's root owns the jail's files (and is uid 0
//! as the host sees it), the db jail's postgres user owns pg_hba.conf. Every module reads and
//! writes files only through this file.
//!
//! * **Directories are opened by descriptor**, walking from `/` one component at a time with
//!   `openat(O_DIRECTORY|O_NOFOLLOW)`. A symbolic link anywhere on the way is refused, unless
//!   the run lists that very link in `trusted_links` (e.g. `/home` where it points to
//!   `usr/home`) *and* only root can change it: the link and the directory holding it owned
//!   by root, that directory writable by no one else. Jail trees never qualify by ownership
//!   alone (a jail's root is uid 0 too), hence the explicit list. `..` is refused outright.
//! * **Everything after the walk is relative to the directory's descriptor**: the temporary
//!   file is created with `O_CREAT|O_EXCL|O_NOFOLLOW`, written, `fchown`ed and `fchmod`ed on
//!   its own descriptor, `fsync`ed, renamed over the target with `renameat` in the same
//!   directory, and the directory is `fsync`ed; removal is `unlinkat`. No path is resolved
//!   again after it was checked, and nothing changes a file by name, so the owner of a
//!   directory can swap entries as often as they like: at worst the write is refused or lands
//!   in their own directory, never on a file elsewhere. After the rename the target is checked
//!   to be the file written; if someone replaced it in between, the write fails and says so.
//! * **Reads are of regular files only**, opened with `O_NOFOLLOW|O_NONBLOCK` (a FIFO cannot
//!   block), with one hard link (a second name can be a host file the directory's owner linked
//!   in: FreeBSD lets users link other users' files unless `security.bsd.hardlink_check_uid`
//!   is set, and it is 0 by default in freebsd-src `sys/kern/vfs_syscalls.c`), and at most [`MAX_FILE_SIZE`] bytes (a file that grows cannot grow memory). A target
//!   that is a symbolic link, a directory, a device, a FIFO or a socket is refused with a
//!   message that names the path only: nothing of it is read, changed or shown.
//!
//! A crash or a SIGKILL leaves either the old or the new file, never a torn one.
//!
//! Portable to FreeBSD: only the POSIX `*at` family through nix (no `openat2`, no `O_PATH`).
//! FreeBSD answers `O_NOFOLLOW` on a link with `EMLINK` where Linux says `ELOOP`
//! (freebsd-src `lib/libc/sys/open.2`, ERRORS), so a failed open is classified with
//! `fstatat(AT_SYMLINK_NOFOLLOW)` rather than by its errno.

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use anyhow::{anyhow, bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, renameat, AtFlags, OFlag, AT_FDCWD};
use nix::sys::stat::{fchmod, fstat, fstatat, mkdirat, FileStat, Mode};
use nix::unistd::{fchown, fsync, unlinkat, Gid, Group, Uid, UnlinkatFlags, User};

/// The largest file read: ruleset, rc.conf, rc.d script, `.env`, pg_hba.conf and Bastille's
/// files are a few KiB; anything near this is not one of them.
pub const MAX_FILE_SIZE: u64 = 8 << 20;

/// Symbolic links that may be followed on the way to a file (see the module docs). Set once
/// per run by the runtime from the `trusted_links` parameter.
static TRUSTED_LINKS: RwLock<Vec<PathBuf>> = RwLock::new(Vec::new());

/// Sets the links a walk may follow (each the absolute path of the link itself).
pub fn set_trusted_links(links: Vec<PathBuf>) {
    if let Ok(mut slot) = TRUSTED_LINKS.write() {
        *slot = links;
    }
}

fn is_trusted(link: &Path) -> bool {
    TRUSTED_LINKS
        .read()
        .map(|links| links.iter().any(|l| l == link))
        .unwrap_or(false)
}

/// A regular file as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileState {
    pub content: Vec<u8>,
    /// Permission bits only (`0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
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

/// A path, or a directory on the way to it, does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing(pub PathBuf);

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} does not exist", self.0.display())
    }
}

impl std::error::Error for Missing {}

/// Reads a file's content and metadata; `None` if it (or its directory) does not exist.
/// Refuses links, anything but a regular file with one link, and files over
/// [`MAX_FILE_SIZE`].
pub fn read_state(path: &Path) -> Result<Option<FileState>> {
    read_state_capped(path, MAX_FILE_SIZE)
}

/// [`read_state`] with another size cap.
pub fn read_state_capped(path: &Path, cap: u64) -> Result<Option<FileState>> {
    let (parent, name) = split(path)?;
    match Dir::open(parent) {
        Ok(dir) => dir.read_capped(name, cap),
        Err(e) if e.downcast_ref::<Missing>().is_some() => Ok(None),
        Err(e) => Err(e),
    }
}

/// The end of a file that only grows (a log): its size, and its bytes from `offset` on but
/// at most the last `cap` of them; `None` if it does not exist. The same checks as
/// [`read_state`] (no link, a regular file with one link), without its size limit, since
/// only `cap` bytes are ever read.
pub fn read_tail(path: &Path, offset: u64, cap: u64) -> Result<Option<(u64, Vec<u8>)>> {
    let (parent, name) = split(path)?;
    match Dir::open(parent) {
        Ok(dir) => dir.read_tail(name, offset, cap),
        Err(e) if e.downcast_ref::<Missing>().is_some() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Replaces `path` with `content` atomically. Mode and owner come from `attrs`, else from
/// the file being replaced, else 0644 and the process's own ids.
pub fn write_atomic(path: &Path, content: &[u8], attrs: Attrs) -> Result<()> {
    let (parent, name) = split(path)?;
    Dir::open(parent)
        .with_context(|| format!("cannot write {}", path.display()))?
        .write(name, content, attrs)
}

/// Creates a directory and its missing parents (0755, the process's owner); the directory
/// itself gets `attrs`, set on its descriptor.
pub fn make_dir(path: &Path, attrs: Attrs) -> Result<()> {
    let dir = Dir::walk(path, true).with_context(|| format!("cannot create {}", path.display()))?;
    dir.set_attrs(attrs)
}

/// Removes an empty directory (undo of [`make_dir`]); one that is gone or not empty stays.
pub fn remove_empty_dir(path: &Path) -> Result<()> {
    let (parent, name) = split(path)?;
    let dir = match Dir::open(parent) {
        Ok(dir) => dir,
        Err(e) if e.downcast_ref::<Missing>().is_some() => return Ok(()),
        Err(e) => return Err(e),
    };
    match dir.lstat(name)? {
        Some(st) if file_type(&st) == FileType::Dir => {}
        _ => return Ok(()),
    }
    match unlinkat(&dir.fd, name, UnlinkatFlags::RemoveDir) {
        Ok(()) => {
            dir.sync();
            Ok(())
        }
        Err(Errno::ENOENT | Errno::ENOTEMPTY | Errno::EEXIST) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
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

/// Removes a file; a file that is already gone is fine. A link or anything but a regular
/// file is refused.
pub fn remove(path: &Path) -> Result<()> {
    let (parent, name) = split(path)?;
    match Dir::open(parent) {
        Ok(dir) => dir.remove(name).map(|_| ()),
        Err(e) if e.downcast_ref::<Missing>().is_some() => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}

/// Opens (creating it 0600 if missing) the lock file at `path` for `flock`: by descriptor,
/// never through a link, close-on-exec so no child tool inherits the lock.
pub fn open_lock_file(path: &Path) -> Result<File> {
    let (parent, name) = split(path)?;
    let dir = Dir::open(parent)?;
    let flags = OFlag::O_WRONLY
        | OFlag::O_CREAT
        | OFlag::O_NOFOLLOW
        | OFlag::O_NONBLOCK
        | OFlag::O_CLOEXEC
        | OFlag::O_NOCTTY;
    let fd = openat(&dir.fd, name, flags, Mode::from_bits_truncate(0o600))
        .map_err(|e| dir.explain_open_error(name, e))?;
    let st = fstat(&fd).with_context(|| format!("cannot stat {}", path.display()))?;
    if file_type(&st) != FileType::Regular {
        bail!(refusal(path, file_type(&st)));
    }
    Ok(File::from(fd))
}

/// A file next to another one that lives as long as this value (pfctl's candidate
/// rulesets): created with `O_EXCL`, mode 0600, removed by descriptor when dropped.
pub struct TempFile {
    dir: Dir,
    name: OsString,
    path: PathBuf,
    file: File,
}

impl TempFile {
    /// Creates an empty `.<name of target>.<prefix>XXXX` in the target's directory.
    pub fn beside(target: &Path, prefix: &str) -> Result<TempFile> {
        let (parent, name) = split(target)?;
        let dir = Dir::open(parent)?;
        let mut stem = OsString::from(".");
        stem.push(name);
        stem.push(".");
        stem.push(prefix);
        let (name, file) = dir
            .create_temp(&stem)
            .with_context(|| format!("cannot create a file next to {}", target.display()))?;
        Ok(TempFile {
            path: parent.join(&name),
            dir,
            name,
            file,
        })
    }

    /// The path tools see it by (its directory as walked, no link in it).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the whole content (once, after creation).
    pub fn write(&mut self, content: &[u8]) -> Result<()> {
        self.file
            .write_all(content)
            .and_then(|_| self.file.flush())
            .with_context(|| format!("cannot write {}", self.path.display()))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = unlinkat(
            &self.dir.fd,
            self.name.as_os_str(),
            UnlinkatFlags::NoRemoveDir,
        );
    }
}

/// A directory opened by the walk described in the module docs.
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
    uid: u32,
    mode: u32,
}

impl fmt::Debug for Dir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dir")
            .field("path", &self.path)
            .field("uid", &self.uid)
            .field("mode", &format_args!("{:o}", self.mode))
            .finish()
    }
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC)
    .union(OFlag::O_NOCTTY);
const MAX_LINK_HOPS: u32 = 16;

impl Dir {
    /// Opens an existing directory; [`Missing`] if it or a parent does not exist.
    pub fn open(path: &Path) -> Result<Dir> {
        Self::walk(path, false)
    }

    fn walk(path: &Path, create: bool) -> Result<Dir> {
        let mut queue = lexical_components(path)?;
        let root = openat(AT_FDCWD, "/", DIR_FLAGS, Mode::empty()).context("cannot open /")?;
        let mut stack: Vec<(OwnedFd, OsString)> = Vec::new();
        let mut hops = 0;
        let mut creations = 0;
        while let Some(name) = queue.pop_front() {
            if name == ".." {
                stack.pop();
                continue;
            }
            if name.is_empty() || name == "." {
                continue;
            }
            let parent: BorrowedFd<'_> = stack.last().map_or(root.as_fd(), |(fd, _)| fd.as_fd());
            let error = match openat(parent, name.as_os_str(), DIR_FLAGS, Mode::empty()) {
                Ok(fd) => {
                    stack.push((fd, name));
                    continue;
                }
                Err(e) => e,
            };
            let here = resolved(&stack).join(&name);
            let st = match fstatat(parent, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::ENOENT) if create && creations < 8 => {
                    creations += 1;
                    match mkdirat(parent, name.as_os_str(), Mode::from_bits_truncate(0o755)) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => {
                            return Err(e)
                                .with_context(|| format!("cannot create {}", here.display()))
                        }
                    }
                    queue.push_front(name);
                    continue;
                }
                Err(Errno::ENOENT) => return Err(Missing(here).into()),
                Err(e) => return Err(e).with_context(|| format!("cannot stat {}", here.display())),
            };
            match file_type(&st) {
                FileType::Link => {
                    let parent_st = fstat(parent).with_context(|| {
                        format!("cannot stat the directory of {}", here.display())
                    })?;
                    let why_not = if !is_trusted(&here) {
                        Some("warden follows no link on the way to a file it reads or writes as root; give the real path, or list the link in trusted_links if only root can change it".to_string())
                    } else if st.st_uid != 0
                        || parent_st.st_uid != 0
                        || mode_bits(&parent_st) & 0o022 != 0
                    {
                        Some("it is listed in trusted_links, but it or the directory holding it is not owned by root or that directory is writable by others".to_string())
                    } else {
                        None
                    };
                    if let Some(why) = why_not {
                        bail!(
                            "refusing {}: {} is a symbolic link ({why})",
                            path.display(),
                            here.display()
                        );
                    }
                    hops += 1;
                    if hops > MAX_LINK_HOPS {
                        bail!("refusing {}: too many symbolic links", path.display());
                    }
                    let target = readlinkat(parent, name.as_os_str())
                        .with_context(|| format!("cannot read the link {}", here.display()))?;
                    let target = PathBuf::from(target);
                    let mut expanded = VecDeque::new();
                    for component in target.components() {
                        match component {
                            Component::RootDir => stack.clear(),
                            Component::ParentDir => expanded.push_back(OsString::from("..")),
                            Component::Normal(n) => expanded.push_back(n.to_owned()),
                            Component::CurDir | Component::Prefix(_) => {}
                        }
                    }
                    while let Some(c) = expanded.pop_back() {
                        queue.push_front(c);
                    }
                }
                FileType::Dir => {
                    return Err(error).with_context(|| format!("cannot open {}", here.display()))
                }
                _ => bail!(
                    "refusing {}: {} is not a directory",
                    path.display(),
                    here.display()
                ),
            }
        }
        let fd = stack.pop().map_or(root, |(fd, _)| fd);
        let st = fstat(&fd).with_context(|| format!("cannot stat {}", path.display()))?;
        Ok(Dir {
            fd,
            path: path.to_owned(),
            uid: st.st_uid,
            mode: mode_bits(&st) & 0o7777,
        })
    }

    /// The directory's path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a user other than root can change entries in it (the owner, group or others).
    pub fn others_can_write(&self) -> bool {
        self.uid != 0 || self.mode & 0o022 != 0
    }

    /// Sets the directory's own owner and mode, on its descriptor.
    pub fn set_attrs(&self, attrs: Attrs) -> Result<()> {
        if attrs.uid.is_some() || attrs.gid.is_some() {
            fchown(
                &self.fd,
                attrs.uid.map(Uid::from_raw),
                attrs.gid.map(Gid::from_raw),
            )
            .with_context(|| format!("cannot set the owner of {}", self.path.display()))?;
        }
        if let Some(mode) = attrs.mode {
            fchmod(&self.fd, to_mode(mode))
                .with_context(|| format!("cannot set the mode of {}", self.path.display()))?;
        }
        Ok(())
    }

    /// The entry's metadata without following it; `None` when absent.
    fn lstat(&self, name: &OsStr) -> Result<Option<FileStat>> {
        match fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot stat {}", self.full(name).display())),
        }
    }

    fn full(&self, name: &OsStr) -> PathBuf {
        self.path.join(name)
    }

    /// Reads a regular file in this directory (see [`read_state`]).
    pub fn read(&self, name: &OsStr) -> Result<Option<FileState>> {
        self.read_capped(name, MAX_FILE_SIZE)
    }

    /// Opens a regular file of this directory for reading, by descriptor and never through a
    /// link, checked before and after the open (see [`read_state`]); `None` if missing.
    fn open_checked(&self, name: &OsStr) -> Result<Option<(OwnedFd, FileStat, PathBuf)>> {
        let full = self.full(name);
        match self.lstat(name)? {
            None => return Ok(None),
            Some(st) => check_file(&full, &st)?,
        }
        let flags = OFlag::O_RDONLY
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_CLOEXEC
            | OFlag::O_NOCTTY;
        let fd = match openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(self.explain_open_error(name, e)),
        };
        let st = fstat(&fd).with_context(|| format!("cannot stat {}", full.display()))?;
        check_file(&full, &st)?;
        Ok(Some((fd, st, full)))
    }

    fn read_capped(&self, name: &OsStr, cap: u64) -> Result<Option<FileState>> {
        let Some((fd, st, full)) = self.open_checked(name)? else {
            return Ok(None);
        };
        let too_big = || {
            anyhow!(
                "refusing {}: it is larger than {} MiB, which no file warden manages is",
                full.display(),
                cap >> 20
            )
        };
        let size = u64::try_from(st.st_size).unwrap_or(0);
        if size > cap {
            return Err(too_big());
        }
        let mut content = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        File::from(fd)
            .take(cap + 1)
            .read_to_end(&mut content)
            .with_context(|| format!("cannot read {}", full.display()))?;
        if content.len() as u64 > cap {
            return Err(too_big());
        }
        Ok(Some(FileState {
            content,
            mode: mode_bits(&st) & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
        }))
    }

    /// See [`read_tail`].
    fn read_tail(&self, name: &OsStr, offset: u64, cap: u64) -> Result<Option<(u64, Vec<u8>)>> {
        let Some((fd, st, full)) = self.open_checked(name)? else {
            return Ok(None);
        };
        let size = u64::try_from(st.st_size).unwrap_or(0);
        let start = offset.max(size.saturating_sub(cap)).min(size);
        let mut file = File::from(fd);
        file.seek(SeekFrom::Start(start))
            .with_context(|| format!("cannot read {}", full.display()))?;
        let mut content = Vec::new();
        file.take(cap)
            .read_to_end(&mut content)
            .with_context(|| format!("cannot read {}", full.display()))?;
        Ok(Some((size, content)))
    }

    /// Replaces `name` atomically (see the module docs).
    pub fn write(&self, name: &OsStr, content: &[u8], attrs: Attrs) -> Result<()> {
        let full = self.full(name);
        let previous = self.lstat(name)?;
        if let Some(st) = &previous {
            check_file(&full, st).context("nothing was changed")?;
        }
        let attrs = Attrs {
            mode: Some(
                attrs
                    .mode
                    .or(previous.as_ref().map(|p| mode_bits(p) & 0o7777))
                    .unwrap_or(0o644),
            ),
            uid: attrs.uid.or(previous.as_ref().map(|p| p.st_uid)),
            gid: attrs.gid.or(previous.as_ref().map(|p| p.st_gid)),
        };
        let (temp, mut file) = self.create_temp(OsStr::new(".warden-")).with_context(|| {
            format!("cannot create a temporary file in {}", self.path.display())
        })?;
        let written = fill(&mut file, content, attrs)
            .with_context(|| format!("cannot write {}", full.display()))
            .and_then(|_| {
                renameat(&self.fd, temp.as_os_str(), &self.fd, name)
                    .with_context(|| format!("cannot replace {}", full.display()))
            });
        if let Err(e) = written {
            let _ = unlinkat(&self.fd, temp.as_os_str(), UnlinkatFlags::NoRemoveDir);
            return Err(e);
        }
        self.sync();
        // The directory's owner may have put something else under the temporary name
        // before the rename; then what now has the target's name is not ours.
        let ours = fstat(&file).with_context(|| format!("cannot stat {}", full.display()))?;
        match self.lstat(name)? {
            Some(now) if now.st_dev == ours.st_dev && now.st_ino == ours.st_ino => Ok(()),
            _ => bail!(
                "{} was replaced by someone else while warden wrote it ({} is writable by uid {}); what is there now is not warden's file, and nothing it points to was touched",
                full.display(),
                self.path.display(),
                self.uid
            ),
        }
    }

    /// Removes a regular file; `false` when it was already gone.
    pub fn remove(&self, name: &OsStr) -> Result<bool> {
        let full = self.full(name);
        match self.lstat(name)? {
            None => return Ok(false),
            Some(st) => match file_type(&st) {
                FileType::Regular => {}
                other => bail!("{}; nothing was removed", refusal(&full, other)),
            },
        }
        match unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) => {
                self.sync();
                Ok(true)
            }
            Err(Errno::ENOENT) => Ok(false),
            Err(e) => Err(e).with_context(|| format!("cannot remove {}", full.display())),
        }
    }

    /// Creates `<stem><random>` exclusively (mode 0600 until `fill` sets the real one).
    fn create_temp(&self, stem: &OsStr) -> Result<(OsString, File)> {
        for _ in 0..32 {
            let mut name = stem.to_owned();
            name.push(format!("{:016x}", random()));
            match self.create_exclusive(&name) {
                Ok(file) => return Ok((name, file)),
                Err(e) if e.downcast_ref::<Errno>() == Some(&Errno::EEXIST) => continue,
                Err(e) => return Err(e),
            }
        }
        bail!(
            "cannot find a free temporary name in {}",
            self.path.display()
        )
    }

    fn create_exclusive(&self, name: &OsStr) -> Result<File> {
        let flags = OFlag::O_WRONLY
            | OFlag::O_CREAT
            | OFlag::O_EXCL
            | OFlag::O_NOFOLLOW
            | OFlag::O_CLOEXEC
            | OFlag::O_NOCTTY;
        let fd = openat(&self.fd, name, flags, Mode::from_bits_truncate(0o600))?;
        Ok(File::from(fd))
    }

    /// A failed open explained: a link or a special file is refused by name.
    fn explain_open_error(&self, name: &OsStr, error: Errno) -> anyhow::Error {
        let full = self.full(name);
        match fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if file_type(&st) != FileType::Regular => {
                anyhow!(
                    "{}; nothing was read or changed",
                    refusal(&full, file_type(&st))
                )
            }
            _ => anyhow::Error::new(error).context(format!("cannot open {}", full.display())),
        }
    }

    /// Makes a rename durable. Best effort: some file systems refuse fsync on directories.
    fn sync(&self) {
        let _ = fsync(&self.fd);
    }
}

/// Writes the content, sets owner then mode (chown may clear set-id bits) and fsyncs, all
/// on the descriptor.
fn fill(file: &mut File, content: &[u8], attrs: Attrs) -> Result<()> {
    file.write_all(content)?;
    if attrs.uid.is_some() || attrs.gid.is_some() {
        fchown(
            &*file,
            attrs.uid.map(Uid::from_raw),
            attrs.gid.map(Gid::from_raw),
        )
        .context("cannot set the owner")?;
    }
    if let Some(mode) = attrs.mode {
        fchmod(&*file, to_mode(mode)).context("cannot set the mode")?;
    }
    file.sync_all()?;
    Ok(())
}

/// Checks that an entry is a file warden may read or replace.
fn check_file(path: &Path, st: &FileStat) -> Result<()> {
    match file_type(st) {
        FileType::Regular => {}
        other => bail!(refusal(path, other)),
    }
    let links = nlink(st);
    if links > 1 {
        bail!(
            "refusing {}: it has {links} hard links, so it may be another file under a second name",
            path.display()
        );
    }
    Ok(())
}

fn refusal(path: &Path, kind: FileType) -> String {
    let what = match kind {
        FileType::Link => "a symbolic link",
        FileType::Dir => "a directory",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::Device => "a device",
        FileType::Regular => "a regular file",
        FileType::Other => "not a regular file",
    };
    format!(
        "refusing {}: it is {what}, not a regular file; warden reads and replaces only regular files",
        path.display()
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileType {
    Regular,
    Dir,
    Link,
    Fifo,
    Socket,
    Device,
    Other,
}

/// The `S_IF*` type bits, the same on FreeBSD (`sys/sys/stat.h`) and Linux.
fn file_type(st: &FileStat) -> FileType {
    match mode_bits(st) & 0o170_000 {
        0o100_000 => FileType::Regular,
        0o040_000 => FileType::Dir,
        0o120_000 => FileType::Link,
        0o010_000 => FileType::Fifo,
        0o140_000 => FileType::Socket,
        0o020_000 | 0o060_000 => FileType::Device,
        _ => FileType::Other,
    }
}

// `mode_t` is u16 on FreeBSD and u32 on Linux; `nlink_t` is u64 on both x86_64 systems but
// u32 on Linux aarch64.
#[allow(clippy::useless_conversion)]
fn mode_bits(st: &FileStat) -> u32 {
    u32::from(st.st_mode)
}

#[allow(clippy::useless_conversion)]
fn nlink(st: &FileStat) -> u64 {
    u64::from(st.st_nlink)
}

#[allow(clippy::unnecessary_cast)]
fn to_mode(mode: u32) -> Mode {
    Mode::from_bits_truncate((mode & 0o7777) as nix::libc::mode_t)
}

/// An absolute path's components, refusing `..` (callers give normalized paths).
fn lexical_components(path: &Path) -> Result<VecDeque<OsString>> {
    if !path.is_absolute() {
        bail!("{} is not an absolute path", path.display());
    }
    let mut out = VecDeque::new();
    for component in path.components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push_back(n.to_owned()),
            Component::ParentDir | Component::Prefix(_) => {
                bail!("refusing {}: it contains `..`", path.display())
            }
        }
    }
    Ok(out)
}

fn resolved(stack: &[(OwnedFd, OsString)]) -> PathBuf {
    let mut path = PathBuf::from("/");
    for (_, name) in stack {
        path.push(name);
    }
    path
}

fn split(path: &Path) -> Result<(&Path, &OsStr)> {
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{} does not name a file", path.display()))?;
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .ok_or_else(|| anyhow!("{} has no parent directory", path.display()))?;
    lexical_components(path)?;
    Ok((parent, name))
}

/// Unpredictable enough for temporary names (which are created with `O_EXCL` anyway):
/// std's per-process random SipHash keys over a counter and the clock.
fn random() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(d.as_nanos());
    }
    hasher.finish()
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
/// order); `None` when `dir` does not exist or is not a directory. For rc.subr's
/// `rc.conf.d/<name>/*`. The directory is reached by the same link-refusing walk as every
/// read, and listed through its descriptor.
pub fn dir_entries(dir: &Path) -> Result<Option<Vec<PathBuf>>> {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return Ok(None);
    };
    let parent = match Dir::open(parent) {
        Ok(parent) => parent,
        Err(e) if e.downcast_ref::<Missing>().is_some() => return Ok(None),
        Err(e) => return Err(e),
    };
    match parent.lstat(name)? {
        Some(st) if matches!(file_type(&st), FileType::Dir) => {}
        Some(st) if matches!(file_type(&st), FileType::Link) => bail!(
            "refusing {}: it is a symbolic link (warden follows no link on the way to a file it reads as root)",
            dir.display()
        ),
        _ => return Ok(None),
    }
    let fd = openat(&parent.fd, name, DIR_FLAGS, Mode::empty())
        .with_context(|| format!("cannot open {}", dir.display()))?;
    let listing =
        nix::dir::Dir::from_fd(fd).with_context(|| format!("cannot list {}", dir.display()))?;
    let mut out: Vec<PathBuf> = Vec::new();
    for entry in listing {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if !name.as_bytes().starts_with(b".") {
            out.push(dir.join(name));
        }
    }
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
    use std::fs;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

    /// A temporary directory reached without links (the walk refuses them).
    fn tempdir() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        (dir, real)
    }

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    #[test]
    fn write_keeps_existing_mode_unless_told() {
        let (_keep, dir) = tempdir();
        let path = dir.join("f");
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
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
    }

    #[test]
    fn restore_round_trips_and_removes() {
        let (_keep, dir) = tempdir();
        let path = dir.join("f");
        fs::write(&path, "before").unwrap();
        let before = read_state(&path).unwrap();
        write_atomic(&path, b"after", Attrs::default()).unwrap();
        restore(&path, before.as_ref()).unwrap();
        assert_eq!(read_state(&path).unwrap(), before);
        restore(&path, None).unwrap();
        assert_eq!(read_state(&path).unwrap(), None);
    }

    #[test]
    fn a_log_is_read_from_its_end_whatever_its_size() {
        let (_keep, dir) = tempdir();
        let path = dir.join("vm-bhyve.log");
        assert_eq!(read_tail(&path, 0, 4).unwrap(), None);
        let big = vec![b'x'; (MAX_FILE_SIZE + 10) as usize];
        fs::write(&path, [big.as_slice(), b"tail"].concat()).unwrap();
        assert!(read_state(&path).is_err());
        let (size, end) = read_tail(&path, 0, 4).unwrap().unwrap();
        assert_eq!((size, end.as_slice()), (MAX_FILE_SIZE + 14, &b"tail"[..]));
        let (_, since) = read_tail(&path, MAX_FILE_SIZE + 12, 100).unwrap().unwrap();
        assert_eq!(since, b"il");
        let (_, none) = read_tail(&path, u64::MAX, 100).unwrap().unwrap();
        assert!(none.is_empty());
        std::os::unix::fs::symlink(&path, dir.join("link")).unwrap();
        assert!(read_tail(&dir.join("link"), 0, 4).is_err());
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
        let (_keep, dir) = tempdir();
        let err = read_state(&dir).unwrap_err();
        assert!(format!("{err:#}").contains("it is a directory"), "{err:#}");
    }

    #[test]
    fn missing_files_and_directories_read_as_none() {
        let (_keep, dir) = tempdir();
        assert_eq!(read_state(&dir.join("nope")).unwrap(), None);
        assert_eq!(read_state(&dir.join("no/such/dir/f")).unwrap(), None);
        remove(&dir.join("no/such/dir/f")).unwrap();
        let err = write_atomic(&dir.join("no/f"), b"x", Attrs::default()).unwrap_err();
        assert!(format!("{err:#}").contains("does not exist"), "{err:#}");
    }

    #[test]
    fn a_symlinked_target_is_refused_unread_and_unchanged() {
        let (_keep, dir) = tempdir();
        let host = dir.join("host-file");
        fs::write(&host, "HOST-CANARY\n").unwrap();
        fs::set_permissions(&host, fs::Permissions::from_mode(0o644)).unwrap();
        let link = dir.join(".env");
        symlink(&host, &link).unwrap();

        let err = read_state(&link).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("it is a symbolic link"), "{msg}");
        assert!(!msg.contains("HOST-CANARY"), "{msg}");
        let err = write_atomic(
            &link,
            b"new",
            Attrs {
                mode: Some(0o600),
                ..Attrs::default()
            },
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("symbolic link"), "{err:#}");
        assert!(remove(&link).is_err());
        assert!(restore(&link, None).is_err());
        assert_eq!(fs::read(&host).unwrap(), b"HOST-CANARY\n");
        assert_eq!(fs::metadata(&host).unwrap().mode() & 0o777, 0o644);
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        // Nothing left behind: the link and the host file only.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 2);
    }

    #[test]
    fn a_link_to_dev_zero_is_refused_without_reading() {
        let (_keep, dir) = tempdir();
        let link = dir.join("rc.conf");
        symlink("/dev/zero", &link).unwrap();
        let err = read_state(&link).unwrap_err();
        assert!(format!("{err:#}").contains("symbolic link"), "{err:#}");
    }

    #[test]
    fn a_symlinked_directory_on_the_way_is_refused() {
        let (_keep, dir) = tempdir();
        fs::create_dir(dir.join("real")).unwrap();
        fs::write(dir.join("real/f"), "x").unwrap();
        symlink(dir.join("real"), dir.join("via")).unwrap();
        let err = read_state(&dir.join("via/f")).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains(&format!("{} is a symbolic link", dir.join("via").display())),
            "{msg}"
        );
        assert!(msg.contains("trusted_links"), "{msg}");
        assert!(write_atomic(&dir.join("via/f"), b"y", Attrs::default()).is_err());
        assert!(make_dir(&dir.join("via/sub"), Attrs::default()).is_err());
        assert!(!dir.join("real/sub").exists());
        assert_eq!(fs::read(dir.join("real/f")).unwrap(), b"x");
    }

    #[test]
    fn a_listed_link_that_only_root_controls_is_followed() {
        if !is_root() {
            eprintln!("skipped: needs root (the link must be root's)");
            return;
        }
        let (_keep, dir) = tempdir();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir_all(dir.join("usr/home/mevy")).unwrap();
        fs::write(dir.join("usr/home/mevy/.env"), "A=1\n").unwrap();
        symlink("usr/home", dir.join("home")).unwrap();
        let path = dir.join("home/mevy/.env");
        assert!(read_state(&path).is_err(), "followed an unlisted link");
        set_trusted_links(vec![dir.join("home")]);
        let got = read_state(&path);
        // A group-writable directory holding the link makes it untrusted again.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o775)).unwrap();
        let untrusted = read_state(&path);
        set_trusted_links(Vec::new());
        assert_eq!(got.unwrap().unwrap().content, b"A=1\n");
        let msg = format!("{:#}", untrusted.unwrap_err());
        assert!(msg.contains("writable by others"), "{msg}");
    }

    #[test]
    fn parent_components_are_refused() {
        let (_keep, dir) = tempdir();
        fs::write(dir.join("f"), "x").unwrap();
        let err = read_state(&dir.join("sub/../f")).unwrap_err();
        assert!(format!("{err:#}").contains("`..`"), "{err:#}");
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let (_keep, dir) = tempdir();
        let fifo = dir.join("pf.conf");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o644)).unwrap();
        let err = read_state(&fifo).unwrap_err();
        assert!(format!("{err:#}").contains("it is a FIFO"), "{err:#}");
        assert!(write_atomic(&fifo, b"x", Attrs::default()).is_err());
    }

    #[test]
    fn a_hard_linked_file_is_refused() {
        let (_keep, dir) = tempdir();
        fs::write(dir.join("host"), "HOST").unwrap();
        fs::hard_link(dir.join("host"), dir.join(".env")).unwrap();
        let err = read_state(&dir.join(".env")).unwrap_err();
        assert!(format!("{err:#}").contains("2 hard links"), "{err:#}");
        assert!(write_atomic(&dir.join(".env"), b"x", Attrs::default()).is_err());
        assert_eq!(fs::read(dir.join("host")).unwrap(), b"HOST");
    }

    #[test]
    fn files_over_the_cap_are_refused() {
        let (_keep, dir) = tempdir();
        let big = dir.join("big");
        fs::File::create(&big)
            .unwrap()
            .set_len(MAX_FILE_SIZE + 1)
            .unwrap();
        let err = read_state(&big).unwrap_err();
        assert!(format!("{err:#}").contains("larger than 8 MiB"), "{err:#}");
        fs::write(&big, "12345").unwrap();
        assert!(read_state_capped(&big, 4).is_err());
        assert_eq!(
            read_state_capped(&big, 5).unwrap().unwrap().content,
            b"12345"
        );
    }

    #[test]
    fn make_dir_sets_owner_and_mode_and_undo_removes_it() {
        let (_keep, dir) = tempdir();
        let path = dir.join("a/b/c");
        let owner = if is_root() { Some(65534) } else { None };
        make_dir(
            &path,
            Attrs {
                mode: Some(0o750),
                uid: owner,
                gid: None,
            },
        )
        .unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o750);
        if let Some(uid) = owner {
            assert_eq!(meta.uid(), uid);
        }
        remove_empty_dir(&path).unwrap();
        assert!(!path.exists() && dir.join("a/b").is_dir());
        fs::write(dir.join("a/b/keep"), "x").unwrap();
        remove_empty_dir(&dir.join("a/b")).unwrap();
        assert!(
            dir.join("a/b/keep").exists(),
            "removed a directory that was not empty"
        );
    }

    #[test]
    fn writes_into_a_directory_another_user_owns_set_attributes_on_the_descriptor() {
        if !is_root() {
            eprintln!("skipped: needs root (chown)");
            return;
        }
        let (_keep, dir) = tempdir();
        let work = dir.join("work");
        fs::create_dir(&work).unwrap();
        nix::unistd::chown(&work, Some(Uid::from_raw(65534)), None).unwrap();
        let opened = Dir::open(&work).unwrap();
        assert!(opened.others_can_write());
        write_atomic(
            &work.join(".env"),
            b"A=1\n",
            Attrs {
                mode: Some(0o600),
                uid: Some(65534),
                gid: Some(65534),
            },
        )
        .unwrap();
        let meta = fs::metadata(work.join(".env")).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o777),
            (65534, 65534, 0o600)
        );
    }

    #[test]
    fn temp_files_beside_a_target_go_away() {
        let (_keep, dir) = tempdir();
        let target = dir.join("pf.conf");
        let mut temp = TempFile::beside(&target, "warden-check-").unwrap();
        temp.write(b"pass all\n").unwrap();
        let path = temp.path().to_owned();
        assert!(path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".pf.conf.warden-check-"));
        assert_eq!(fs::read(&path).unwrap(), b"pass all\n");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        drop(temp);
        assert!(!path.exists());
    }

    #[test]
    fn the_lock_file_is_not_opened_through_a_link() {
        let (_keep, dir) = tempdir();
        fs::write(dir.join("host"), "HOST").unwrap();
        symlink(dir.join("host"), dir.join("warden.lock")).unwrap();
        let err = open_lock_file(&dir.join("warden.lock")).unwrap_err();
        assert!(format!("{err:#}").contains("symbolic link"), "{err:#}");
        let lock = open_lock_file(&dir.join("other.lock")).unwrap();
        drop(lock);
        assert_eq!(
            fs::metadata(dir.join("other.lock")).unwrap().mode() & 0o777,
            0o600
        );
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
