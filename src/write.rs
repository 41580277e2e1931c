//! Replacing files without ever leaving a partial one: atomic (temp file + rename) and in-place
//! (same inode, under an advisory lock) writes, file modes, symlinks, stale temp files.
//!
//! Everything goes through [`update`], a read-modify-write:
//!
//! - **Symlinks** are followed (a chain, relative or absolute) to the final target, which is the
//!   file that gets replaced: the link stays a link. A dangling link means "create the file where
//!   the link points".
//! - **The directory** of the target is created with mode `0700` (like `~/.aws`) when missing.
//! - **Only regular files** are read or written: a directory, FIFO or socket at the target is
//!   [`WriteError::NotAFile`] (a FIFO is never opened, so nothing blocks). Files over
//!   [`MAX_FILE_SIZE`] are refused: no AWS file is that large, the path must be wrong.
//! - **Atomic mode** ([`WriteMode::Atomic`]): the new bytes go to
//!   `.<filename>.credsync-<pid>-<random>.tmp` in the same directory, created with `O_EXCL`
//!   (a planted file or symlink at that name is never followed; another name is tried) and with
//!   the final mode: the existing file's permission bits, or [`WriteOptions::new_file_mode`].
//!   The umask may narrow the mode at creation; it is then set to exactly that mode with
//!   `fchmod`, never wider. Running as root, the existing file's owner and group are kept. The
//!   temp file is fsynced; just before the rename the target is read again (identity and
//!   bytes), and if another program changed it meanwhile, the edit is merged again onto the new
//!   content (up to [`MAX_ATTEMPTS`] reads). Then rename over the target and fsync the
//!   directory. On any error the temp file is removed and the old file is untouched.
//!   The old file's POSIX access ACL (`system.posix_acl_access`) and credsync's record of the
//!   entries it added (`user.credsync.acl`), whatever their size, are copied to the temp file
//!   (through `crate::acl`), so ACL entries (the user's or credsync's) survive the rewrite and
//!   there is no moment when the new file lacks them; other extended attributes are not copied.
//!   A file system without them just has nothing to copy.
//! - **A Windows drive seen from WSL** (drvfs, `/mnt/c`: [`crate::mounts`]): a rename over a
//!   file a Windows program holds open fails with `EACCES` (or `EBUSY`) until it closes it. Such
//!   a refused rename is tried again every [`RENAME_PAUSE`] for [`RENAME_RETRY_FOR`] (the target
//!   read again before each try, and merged again if it changed); still refused, the file is
//!   rewritten in place instead (below), and a log line says so. Elsewhere a refused rename is
//!   an error at once. The rename, the pause and the mount table are the writer's [`Fs`].
//! - **In-place mode** ([`WriteMode::InPlace`], for a single-file bind mount, where a rename
//!   cannot replace the mount point): the file is opened read-write, locked with an exclusive
//!   advisory lock (`flock`), read, edited, written from offset 0, truncated to the new length,
//!   fsynced and unlocked; the inode stays the same. The lock is only tried, never waited for:
//!   while another process holds it the write is [`WriteError::Locked`] and nothing is touched
//!   (the daemon's runtime must never block on another process; the caller tries again later).
//!   The cost: a reader that does not take the lock (every AWS SDK) can see a partly written
//!   file, and a crash or a full disk in the middle of the write leaves one behind.
//! - **Guards** ([`update_guarded`], [`Guard`]): a file owned by another user than credsync's
//!   (root included) can be refused ([`WriteError::NotOwned`]), and a file that is credsync's
//!   alone (the container view) can be given exactly `new_file_mode` on every write, whatever
//!   mode it had (its ACL's named entries kept).
//!
//! [`remove_stale_temps`] removes temp files left by a crashed credsync: it is called at start.
//! A temp file of a live credsync in another pid namespace (another container sharing the
//! directory) can look stale; removing it only makes that process's rename fail and retry.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::acl;
use crate::mounts::MountTable;

/// How a file is replaced (a setting of credsync's config, so defined there).
pub use crate::config::WriteMode;
pub use credsync_core::write::{Identity, Outcome};

#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    pub mode: WriteMode,
    /// Mode of a file credsync creates; an existing file keeps its own.
    pub new_file_mode: u32,
}

impl Default for WriteOptions {
    /// Atomic writes, new files `0600`.
    fn default() -> Self {
        WriteOptions {
            mode: WriteMode::Atomic,
            new_file_mode: 0o600,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot read {path}: {source}{}", read_hint(.source))]
    Read { path: PathBuf, source: io::Error },
    /// The target was not changed (in in-place mode, see [`WriteError::PartialWrite`]). After a
    /// successful rename, a failed directory fsync is reported with the directory's path.
    #[error("cannot write {path}: {source}{}", write_hint(.source))]
    Write { path: PathBuf, source: io::Error },
    #[error(
        "{path} is not a regular file (a directory, pipe or socket?); point credsync at a file"
    )]
    NotAFile { path: PathBuf },
    #[error("{path}: {message}")]
    Edit { path: PathBuf, message: String },
    #[error(
        "{path} is {len} bytes, more than the {} MiB an AWS file can be; check the path",
        MAX_FILE_SIZE >> 20
    )]
    TooLarge { path: PathBuf, len: u64 },
    #[error(
        "{path} changed {attempts} times while credsync was writing it; another program keeps \
         rewriting it, try again when it is done"
    )]
    ChangedDuringWrite { path: PathBuf, attempts: u32 },
    /// In-place mode: another process holds the file's advisory lock; nothing was written.
    #[error(
        "{path} is locked by another process (an advisory lock, as in-place writers take); \
         credsync does not wait for it and writes the file again later (on Linux, `lslocks` \
         names the process holding it)"
    )]
    Locked { path: PathBuf },
    /// [`Guard::own_file`]: the file belongs to another user; nothing was written.
    #[error(
        "{path} belongs to uid {owner}, not to uid {me} that credsync runs as; credsync does not \
         write another user's file. Check [aws] credentials_file in credsync's config (and where \
         a symlink at that path points), or give the file to uid {me}"
    )]
    NotOwned { path: PathBuf, owner: u32, me: u32 },
    /// In-place mode failed in the middle of rewriting the file.
    #[error(
        "cannot rewrite {path} in place: {source}{}\nthe file may now be partly written; \
         run credsync again to rewrite it",
        write_hint(.source)
    )]
    PartialWrite { path: PathBuf, source: io::Error },
}

/// Files larger than this are refused (16 MiB, the bound of the credentials file).
pub(crate) const MAX_FILE_SIZE: u64 = crate::user_file::Kind::Credentials.limit();

/// How many times the target is read before giving up on a file that keeps changing.
pub const MAX_ATTEMPTS: u32 = 5;

/// Symlink hops followed before giving up, by the writer and the watcher (the kernel's `ELOOP`
/// limit).
pub(crate) const MAX_SYMLINK_HOPS: usize = 40;

/// Temp file names tried before giving up when they all exist.
const MAX_TEMP_NAMES: usize = 16;

fn read_hint(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::PermissionDenied => {
            "\ncheck the owner and mode of the file and its directory (`ls -l`); credsync must be \
             able to read it"
        }
        io::ErrorKind::NotADirectory => "\na component of the path is a file, not a directory",
        _ => "",
    }
}

fn write_hint(e: &io::Error) -> &'static str {
    let errno = e.raw_os_error();
    if errno == Some(libc::ENOSPC) {
        return "\nthe disk is full; free some space (the old file is untouched)";
    }
    if errno == Some(libc::EDQUOT) {
        return "\nthe disk quota is exceeded; free some space (the old file is untouched)";
    }
    if errno == Some(libc::EBUSY) || errno == Some(libc::EXDEV) {
        return "\nthe file is a mount point (a single-file bind mount?), which cannot be replaced \
                by a rename; set `mode = \"in-place\"` in [write]";
    }
    if errno == Some(libc::EROFS) {
        return "\nthe file system is read-only";
    }
    match e.kind() {
        io::ErrorKind::PermissionDenied => {
            "\ncheck the owner and mode of the file and of its directory (`ls -ld`); credsync \
             creates a temp file beside it, so it needs write access to the directory"
        }
        io::ErrorKind::NotADirectory => "\na component of the path is a file, not a directory",
        _ => "",
    }
}

/// Read-modify-write of `path`. `edit` gets the current bytes (`None` when the file does not
/// exist) and returns the new bytes, `Ok(None)` to leave the file alone, or `Err(message)`.
/// It may be called more than once: when the file changed between read and rename, the edit is
/// merged again onto the new content.
pub fn update<F>(path: &Path, opts: &WriteOptions, edit: F) -> Result<Outcome, WriteError>
where
    F: FnMut(Option<&[u8]>) -> Result<Option<Vec<u8>>, String>,
{
    update_identified(path, opts, edit).map(|(outcome, _)| outcome)
}

/// [`update`] through `fs` instead of the system's calls.
pub fn update_with<F>(
    fs: &dyn Fs,
    path: &Path,
    opts: &WriteOptions,
    edit: F,
) -> Result<Outcome, WriteError>
where
    F: FnMut(Option<&[u8]>) -> Result<Option<Vec<u8>>, String>,
{
    update_guarded_with(fs, path, opts, Guard::default(), edit).map(|(outcome, _)| outcome)
}

/// The calls of a write that fail in ways a test must reproduce where the real cause cannot
/// be had (a Windows program holding a file open): the rename over the target, the pause
/// before trying it again, and the mount table that says whether the target is on a Windows
/// drive. [`SystemFs`] in the product.
pub trait Fs: Sync {
    /// `rename(2)`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Waits `pause` (blocking: a write is synchronous).
    fn sleep(&self, pause: Duration);
    /// The mount table to look the target's directory up in.
    fn mounts(&self) -> MountTable;
}

/// The system's calls: `std::fs::rename`, `std::thread::sleep`, `/proc/self/mounts`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemFs;

impl Fs for SystemFs {
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn sleep(&self, pause: Duration) {
        std::thread::sleep(pause);
    }

    fn mounts(&self) -> MountTable {
        MountTable::system()
    }
}

/// How long a rename over a file on a Windows drive that a Windows program holds open is tried
/// again before the file is rewritten in place. Short: the daemon waits for it, and a program
/// that holds the file longer (a container's reader, an editor) holds it for good.
pub const RENAME_RETRY_FOR: Duration = Duration::from_secs(1);

/// The pause between two tries of a refused rename.
pub const RENAME_PAUSE: Duration = Duration::from_millis(100);

/// Whether a rename failed the way it does on a Windows drive while a Windows program holds the
/// target open: `EACCES` (microsoft/WSL#12897; Windows refuses to replace a file opened without
/// `FILE_SHARE_DELETE`) or `EBUSY`.
fn refused_by_windows(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EACCES | libc::EBUSY))
}

/// [`update`], also returning the identity of the file as credsync left it (taken from the
/// written file itself, so a change someone makes right after cannot be mistaken for it).
pub(crate) fn update_identified<F>(
    path: &Path,
    opts: &WriteOptions,
    edit: F,
) -> Result<(Outcome, Option<Identity>), WriteError>
where
    F: FnMut(Option<&[u8]>) -> Result<Option<Vec<u8>>, String>,
{
    update_guarded(path, opts, Guard::default(), edit)
}

/// What [`update_guarded`] checks and enforces beyond [`update`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Guard {
    /// Refuse a file (symlinks followed) owned by another uid than credsync's effective uid,
    /// root included: [`WriteError::NotOwned`].
    pub(crate) own_file: bool,
    /// Atomic mode: the file ends with exactly [`WriteOptions::new_file_mode`] (its ACL's owner,
    /// owning-group and other entries too; named entries and mask kept), whatever mode it had.
    /// A file with the right bytes but another mode is rewritten.
    pub(crate) exact_mode: bool,
}

/// [`update_identified`] with the checks of `guard`.
pub(crate) fn update_guarded<F>(
    path: &Path,
    opts: &WriteOptions,
    guard: Guard,
    edit: F,
) -> Result<(Outcome, Option<Identity>), WriteError>
where
    F: FnMut(Option<&[u8]>) -> Result<Option<Vec<u8>>, String>,
{
    update_guarded_with(&SystemFs, path, opts, guard, edit)
}

/// [`update_guarded`] through `fs`.
fn update_guarded_with<F>(
    fs: &dyn Fs,
    path: &Path,
    opts: &WriteOptions,
    guard: Guard,
    edit: F,
) -> Result<(Outcome, Option<Identity>), WriteError>
where
    F: FnMut(Option<&[u8]>) -> Result<Option<Vec<u8>>, String>,
{
    let target = resolve_symlinks(path)?;
    let (dir, name) = split_target(&target)?;
    ensure_dir(&dir)?;
    match opts.mode {
        WriteMode::Atomic => update_atomic(fs, &target, &dir, &name, opts, guard, edit),
        WriteMode::InPlace => update_in_place(&target, opts, guard, edit),
    }
}

/// [`Guard::own_file`]: refuses a file of `owner` when that is not our effective uid.
fn check_owner(path: &Path, owner: Option<u32>, guard: Guard) -> Result<(), WriteError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    match owner {
        Some(owner) if guard.own_file && owner != me => Err(WriteError::NotOwned {
            path: path.to_path_buf(),
            owner,
            me,
        }),
        _ => Ok(()),
    }
}

/// Removes temp files left beside `path` by a credsync process that no longer runs.
/// Returns how many were removed.
///
/// Only entries named `.<filename>.credsync-<pid>-<random>.tmp` are candidates, and only when
/// `<pid>` is not a running process or is our own pid (we have not started writing yet).
/// Regular files are removed; a symlink with such a name is removed itself, never followed.
/// Anything else (directories, other names) is left alone. A missing directory removes nothing.
pub fn remove_stale_temps(path: &Path) -> io::Result<usize> {
    let target = resolve_symlinks(path).map_err(into_io)?;
    let (dir, name) = split_target(&target).map_err(into_io)?;
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let own_pid = std::process::id();
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let Some(pid) = parse_temp_name(&name, &entry.file_name()) else {
            continue;
        };
        if pid != u64::from(own_pid) && !pid_is_dead(pid) {
            continue;
        }
        // `DirEntry::file_type` does not follow symlinks.
        let file_type = entry.file_type()?;
        if !(file_type.is_file() || file_type.is_symlink()) {
            continue;
        }
        match fs::remove_file(entry.path()) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

fn into_io(e: WriteError) -> io::Error {
    match e {
        WriteError::Read { source, .. } | WriteError::Write { source, .. } => source,
        other => io::Error::other(other.to_string()),
    }
}

/// The temp file name for `file_name`: `.<file_name>.credsync-<pid>-<random>.tmp`.
fn temp_name(file_name: &OsStr, pid: u32, random: u64) -> OsString {
    let mut name = OsString::from(".");
    name.push(file_name);
    name.push(format!(".credsync-{pid}-{random:016x}.tmp"));
    name
}

/// The pid in `candidate` if it is a temp file name of `file_name`, else `None`.
fn parse_temp_name(file_name: &OsStr, candidate: &OsStr) -> Option<u64> {
    let rest = candidate.as_bytes().strip_prefix(b".")?;
    let rest = rest.strip_prefix(file_name.as_bytes())?;
    temp_suffix_pid(rest)
}

/// Whether `name` is a temp file name [`temp_name`] gives some file (any file name), so a
/// watcher can tell credsync's own temp files from the files it watches.
pub(crate) fn is_temp_name(name: &OsStr) -> bool {
    let Some(rest) = name.as_bytes().strip_prefix(b".") else {
        return false;
    };
    // The file name may itself hold `.credsync-`: try each place after a non-empty name.
    let marker = b".credsync-";
    (1..rest.len()).any(|i| rest[i..].starts_with(marker) && temp_suffix_pid(&rest[i..]).is_some())
}

/// The pid in `.credsync-<pid>-<random>.tmp` (pid decimal and not zero, random lower-case hex).
fn temp_suffix_pid(suffix: &[u8]) -> Option<u64> {
    let rest = suffix.strip_prefix(b".credsync-")?;
    let rest = rest.strip_suffix(b".tmp")?;
    let dash = rest.iter().position(|&b| b == b'-')?;
    let (pid, random) = (&rest[..dash], &rest[dash + 1..]);
    let hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
    if pid.is_empty() || !pid.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if random.is_empty() || !random.iter().all(hex) {
        return None;
    }
    let pid: u64 = std::str::from_utf8(pid).ok()?.parse().ok()?;
    (pid != 0).then_some(pid)
}

/// `true` when no process has this pid. A pid too large to exist is dead; a process we may not
/// signal (`EPERM`) is alive.
fn pid_is_dead(pid: u64) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return true;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 sends nothing; it only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// Where the symlink at `path` points: its target, joined to `path`'s directory when relative
/// (joined, not normalised: `..` after a symlinked directory must mean what the kernel says it
/// means). `None` when `path` is not a symlink. One hop; callers stop after
/// [`MAX_SYMLINK_HOPS`].
pub(crate) fn follow_link(path: &Path) -> io::Result<Option<PathBuf>> {
    if !fs::symlink_metadata(path)?.file_type().is_symlink() {
        return Ok(None);
    }
    let link = fs::read_link(path)?;
    // `join` with an absolute target is the target.
    Ok(Some(
        path.parent().unwrap_or_else(|| Path::new("")).join(link),
    ))
}

/// Follows `path` through any chain of symlinks to the file that should be read and replaced.
/// A path that does not exist (or a dangling link's target) is returned as is.
fn resolve_symlinks(path: &Path) -> Result<PathBuf, WriteError> {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_SYMLINK_HOPS {
        match follow_link(&current) {
            Ok(Some(next)) => current = next,
            Ok(None) => return Ok(current),
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.kind() == io::ErrorKind::NotADirectory =>
            {
                // Created later (or reported by `ensure_dir` when a parent is a file).
                return Ok(current);
            }
            Err(source) => {
                return Err(WriteError::Read {
                    path: current,
                    source,
                });
            }
        }
    }
    Err(WriteError::Read {
        path: path.to_path_buf(),
        source: io::Error::from_raw_os_error(libc::ELOOP),
    })
}

/// The directory (`.` for a bare name) and the file name of `target`.
fn split_target(target: &Path) -> Result<(PathBuf, OsString), WriteError> {
    let Some(name) = target.file_name() else {
        return Err(WriteError::NotAFile {
            path: target.to_path_buf(),
        });
    };
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((dir, name.to_os_string()))
}

/// Creates `dir` (and its parents) with mode 0700 when it does not exist.
fn ensure_dir(dir: &Path) -> Result<(), WriteError> {
    let err = |source| WriteError::Write {
        path: dir.to_path_buf(),
        source,
    };
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(err(io::Error::from_raw_os_error(libc::ENOTDIR))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(err),
        Err(e) => Err(err(e)),
    }
}

/// [`Identity`] read from a file's metadata (the core's type knows no file system).
pub trait IdentityOf: Sized {
    /// The identity in `m`.
    fn of(m: &fs::Metadata) -> Self;
    /// The identity of the file at `path` (symlinks followed), `None` when it cannot be read.
    fn of_path(path: &Path) -> Option<Self>;
}

impl IdentityOf for Identity {
    fn of(m: &fs::Metadata) -> Self {
        Identity::new(
            m.dev(),
            m.ino(),
            m.len(),
            (m.mtime(), m.mtime_nsec()),
            (m.ctime(), m.ctime_nsec()),
        )
    }

    fn of_path(path: &Path) -> Option<Self> {
        fs::metadata(path).ok().map(|m| Identity::of(&m))
    }
}

/// The target as it was read.
struct Snapshot {
    bytes: Vec<u8>,
    identity: Identity,
    mode: u32,
    uid: u32,
    gid: u32,
    /// The extended attributes of [`COPIED_XATTRS`] it has, by name.
    xattrs: Vec<(&'static str, Vec<u8>)>,
}

/// The extended attributes an atomic rewrite carries over: the access ACL, and credsync's record
/// of the ACL entries it added.
const COPIED_XATTRS: [&str; 2] = [acl::ACL_XATTR, acl::RECORD_XATTR];

/// The [`COPIED_XATTRS`] of an open file (those it has and that can be read).
fn read_xattrs(file: &File) -> Vec<(&'static str, Vec<u8>)> {
    COPIED_XATTRS
        .into_iter()
        .filter_map(|name| Some((name, acl::fread_xattr(file, name).ok()??)))
        .collect()
}

/// Sets `xattrs` on the temp file. A file system without ACLs or user attributes refuses with
/// `ENOTSUP`: nothing to keep there. Other failures are returned.
fn copy_xattrs(file: &File, xattrs: &[(&str, Vec<u8>)]) -> io::Result<()> {
    for (name, value) in xattrs {
        match acl::fwrite_xattr(file, name, value) {
            Err(e) if !acl::is_unsupported(&e) => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// The permission bits of `old` as owner, owning group and other (with an ACL, the group bits
/// of the mode are its mask, not the owning group's).
fn base_mode(old: &Snapshot) -> u32 {
    let acl = old.xattrs.iter().find(|(name, _)| *name == acl::ACL_XATTR);
    acl.and_then(|(_, value)| acl::true_mode(&acl::decode(value)?))
        .unwrap_or(old.mode & 0o777)
}

/// `xattrs` for a file that must end with exactly `mode`: the access ACL's owner, owning-group
/// and other entries set from `mode` (named entries and mask kept). An ACL that does not decode
/// is dropped.
fn with_exact_mode(xattrs: &[(&'static str, Vec<u8>)], mode: u32) -> Vec<(&'static str, Vec<u8>)> {
    let adjust = |(name, value): &(&'static str, Vec<u8>)| {
        if *name != acl::ACL_XATTR {
            return Some((*name, value.clone()));
        }
        let entries = acl::decode(value)?;
        Some((*name, acl::encode(&acl::with_base_mode(&entries, mode))))
    };
    xattrs.iter().filter_map(adjust).collect()
}

/// Checks that `path` is a regular file of sane size, without opening anything else.
fn check_regular(path: &Path, m: &fs::Metadata) -> Result<(), WriteError> {
    if !m.file_type().is_file() {
        return Err(WriteError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    if m.len() > MAX_FILE_SIZE {
        return Err(WriteError::TooLarge {
            path: path.to_path_buf(),
            len: m.len(),
        });
    }
    Ok(())
}

/// Reads at most [`MAX_FILE_SIZE`] bytes of an open file.
fn read_limited(path: &Path, file: &mut File) -> Result<Vec<u8>, WriteError> {
    let mut bytes = Vec::new();
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| WriteError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(WriteError::TooLarge {
            path: path.to_path_buf(),
            len: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

/// Reads the (already symlink-resolved) target; `None` when it does not exist.
fn read_snapshot(path: &Path) -> Result<Option<Snapshot>, WriteError> {
    let read_err = |source| WriteError::Read {
        path: path.to_path_buf(),
        source,
    };
    match fs::symlink_metadata(path) {
        Ok(m) => check_regular(path, &m)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_err(e)),
    }
    // O_NOFOLLOW and O_NONBLOCK: should the file be swapped for a symlink or a FIFO after the
    // check above, the open fails or returns at once instead of following or blocking.
    let mut file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(WriteError::NotAFile {
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(read_err(e)),
    };
    let m = file.metadata().map_err(read_err)?;
    check_regular(path, &m)?;
    let bytes = read_limited(path, &mut file)?;
    Ok(Some(Snapshot {
        bytes,
        identity: Identity::of(&m),
        mode: m.mode() & 0o777,
        uid: m.uid(),
        gid: m.gid(),
        xattrs: read_xattrs(&file),
    }))
}

/// `true` when both reads saw the same version of the file. Bytes are compared too: two writes
/// within one timestamp tick that keep the length would not show in the metadata.
fn same_version(a: &Option<Snapshot>, b: &Option<Snapshot>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.identity == b.identity && a.bytes == b.bytes,
        _ => false,
    }
}

/// A temp file that is removed when dropped, unless it was renamed into place.
struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Creates a new temp file beside the target with exactly `mode`. `O_EXCL` means an existing
/// entry at the name (a planted symlink included) is never opened: another name is tried.
fn create_temp(dir: &Path, name: &OsStr, mode: u32) -> io::Result<(File, TempFile)> {
    let pid = std::process::id();
    for _ in 0..MAX_TEMP_NAMES {
        let path = dir.join(temp_name(name, pid, fastrand::u64(..)));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
        {
            Ok(file) => return Ok((file, TempFile { path, armed: true })),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!(
            "{MAX_TEMP_NAMES} temp file names were all taken in {}",
            dir.display()
        ),
    ))
}

/// Gives the temp file the old file's owner and group where we may, then exactly `mode`.
fn set_owner_and_mode(file: &File, old: Option<&Snapshot>, mode: u32) -> io::Result<()> {
    if let Some(old) = old {
        let m = file.metadata()?;
        if m.uid() != old.uid || m.gid() != old.gid {
            // SAFETY: geteuid has no preconditions and cannot fail.
            let root = unsafe { libc::geteuid() } == 0;
            // Root keeps both; anyone else can at most keep a group they belong to.
            let uid = root.then_some(old.uid);
            match std::os::unix::fs::fchown(file, uid, Some(old.gid)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {}
                Err(e) => return Err(e),
            }
        }
    }
    // After the chown, which may clear set-id bits; the umask may have narrowed the mode.
    file.set_permissions(fs::Permissions::from_mode(mode))
}

/// Fsyncs a directory so a rename in it survives a crash. Some systems cannot fsync a
/// directory (`EINVAL`, `ENOTSUP`); that is not an error.
#[expect(
    clippy::disallowed_methods,
    reason = "a directory, opened only to fsync it"
)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    match File::open(dir)?.sync_all() {
        Ok(()) => Ok(()),
        Err(e)
            if e.raw_os_error() == Some(libc::EINVAL)
                || e.raw_os_error() == Some(libc::ENOTSUP) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// How the rename over the target went.
enum Renamed {
    Done,
    /// Another program wrote the target while a refused rename waited: merge again.
    Changed(Option<Snapshot>),
    /// Refused for [`RENAME_RETRY_FOR`] on a Windows drive.
    Refused,
}

/// Renames `temp` over `target` (whose version `old` the new bytes were made from). On a
/// Windows drive, a rename refused while a Windows program holds the target is tried again
/// every [`RENAME_PAUSE`] for [`RENAME_RETRY_FOR`], the target read again before each try.
fn rename_over(
    fs: &dyn Fs,
    temp: &Path,
    target: &Path,
    dir: &Path,
    old: &Option<Snapshot>,
) -> Result<Renamed, WriteError> {
    let write_err = |source| WriteError::Write {
        path: target.to_path_buf(),
        source,
    };
    let first = match fs.rename(temp, target) {
        Ok(()) => return Ok(Renamed::Done),
        Err(e) => e,
    };
    if !refused_by_windows(&first) || !fs.mounts().holds_windows_file(dir) {
        return Err(write_err(first));
    }
    let mut waited = Duration::ZERO;
    while waited < RENAME_RETRY_FOR {
        fs.sleep(RENAME_PAUSE);
        waited += RENAME_PAUSE;
        let now = read_snapshot(target)?;
        if !same_version(old, &now) {
            return Ok(Renamed::Changed(now));
        }
        match fs.rename(temp, target) {
            Ok(()) => return Ok(Renamed::Done),
            Err(e) if refused_by_windows(&e) => {}
            Err(e) => return Err(write_err(e)),
        }
    }
    Ok(Renamed::Refused)
}

fn update_atomic<F>(
    fs: &dyn Fs,
    target: &Path,
    dir: &Path,
    name: &OsStr,
    opts: &WriteOptions,
    guard: Guard,
    mut edit: F,
) -> Result<(Outcome, Option<Identity>), WriteError>
where
    F: FnMut(Option<&[u8]>) -> Result<Option<Vec<u8>>, String>,
{
    let write_err = |source| WriteError::Write {
        path: target.to_path_buf(),
        source,
    };
    let mut old = read_snapshot(target)?;
    for _ in 0..MAX_ATTEMPTS {
        check_owner(target, old.as_ref().map(|s| s.uid), guard)?;
        let current = old.as_ref().map(|s| s.bytes.as_slice());
        let mode = match &old {
            Some(s) if !guard.exact_mode => s.mode,
            _ => opts.new_file_mode,
        } & 0o777;
        let wrong_mode = guard.exact_mode && old.as_ref().is_some_and(|s| base_mode(s) != mode);
        let new = match edit(current) {
            Err(message) => {
                return Err(WriteError::Edit {
                    path: target.to_path_buf(),
                    message,
                });
            }
            Ok(None) => return Ok((Outcome::Unchanged, None)),
            Ok(Some(new)) if Some(new.as_slice()) == current && !wrong_mode => {
                return Ok((Outcome::Unchanged, None));
            }
            Ok(Some(new)) => new,
        };
        let (mut file, mut temp) = create_temp(dir, name, mode).map_err(write_err)?;
        set_owner_and_mode(&file, old.as_ref(), mode).map_err(write_err)?;
        if let Some(old) = &old {
            let xattrs = match guard.exact_mode {
                true => with_exact_mode(&old.xattrs, mode),
                false => old.xattrs.clone(),
            };
            copy_xattrs(&file, &xattrs).map_err(write_err)?;
        }
        file.write_all(&new).map_err(write_err)?;
        file.sync_all().map_err(write_err)?;

        // Did another program write the target since we read it? Then merge again.
        let now = read_snapshot(target)?;
        if !same_version(&old, &now) {
            old = now;
            continue; // `temp` is removed here.
        }
        match rename_over(fs, &temp.path, target, dir, &old)? {
            Renamed::Done => {}
            Renamed::Changed(now) => {
                old = now;
                continue; // `temp` is removed here.
            }
            Renamed::Refused => {
                drop(temp);
                tracing::warn!(
                    "{}: a Windows program keeps it open, so it cannot be replaced; it is \
                     rewritten in place instead (a reader may meet it half-written)",
                    target.display()
                );
                return update_in_place(target, opts, guard, edit);
            }
        }
        temp.armed = false;
        // The inode we wrote, as it is after the rename (which changes its ctime).
        let identity = file.metadata().ok().map(|m| Identity::of(&m));
        drop(file);
        sync_dir(dir).map_err(|source| WriteError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        return Ok((Outcome::Written, identity));
    }
    Err(WriteError::ChangedDuringWrite {
        path: target.to_path_buf(),
        attempts: MAX_ATTEMPTS,
    })
}

/// Opens the target for an in-place rewrite, creating it when missing. Returns the file and
/// whether we created it; `None` when it vanished or appeared meanwhile (try again).
fn open_in_place(target: &Path, opts: &WriteOptions) -> Result<Option<(File, bool)>, WriteError> {
    let flags = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
    let exists = match fs::symlink_metadata(target) {
        Ok(m) => {
            check_regular(target, &m)?;
            true
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(source) => {
            return Err(WriteError::Read {
                path: target.to_path_buf(),
                source,
            });
        }
    };
    let mut options = OpenOptions::new();
    options.read(true).write(true).custom_flags(flags);
    if !exists {
        options.create_new(true).mode(opts.new_file_mode & 0o777);
    }
    match options.open(target) {
        Ok(file) => Ok(Some((file, !exists))),
        Err(e) if exists && e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) if !exists && e.kind() == io::ErrorKind::AlreadyExists => Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Err(WriteError::NotAFile {
            path: target.to_path_buf(),
        }),
        Err(source) => Err(WriteError::Write {
            path: target.to_path_buf(),
            source,
        }),
    }
}

fn update_in_place<F>(
    target: &Path,
    opts: &WriteOptions,
    guard: Guard,
    mut edit: F,
) -> Result<(Outcome, Option<Identity>), WriteError>
where
    F: FnMut(Option<&[u8]>) -> Result<Option<Vec<u8>>, String>,
{
    let write_err = |source| WriteError::Write {
        path: target.to_path_buf(),
        source,
    };
    for _ in 0..MAX_ATTEMPTS {
        let Some((mut file, created)) = open_in_place(target, opts)? else {
            continue;
        };
        let m = file.metadata().map_err(write_err)?;
        check_regular(target, &m)?;
        check_owner(target, Some(m.uid()), guard)?;
        if created {
            file.set_permissions(fs::Permissions::from_mode(opts.new_file_mode & 0o777))
                .map_err(write_err)?;
        }
        // Never waited for: the caller (the daemon's runtime) must not block on another process.
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(WriteError::Locked {
                    path: target.to_path_buf(),
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(write_err(e)),
        }
        // Under the lock: is our inode still the one at the path? Another in-place writer may
        // have removed a file it had just created, or someone replaced it with a rename.
        let at_path = match fs::symlink_metadata(target) {
            Ok(p) => Some((p.dev(), p.ino())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(WriteError::Read {
                    path: target.to_path_buf(),
                    source,
                });
            }
        };
        let m = file.metadata().map_err(write_err)?;
        if at_path != Some((m.dev(), m.ino())) || m.nlink() == 0 {
            continue; // Dropping `file` releases the lock.
        }
        let bytes = read_limited(target, &mut file)?;
        // A file we just created and nobody wrote to yet did not exist, as far as edit knows.
        let fresh = created && bytes.is_empty();
        let current = (!fresh).then_some(bytes.as_slice());
        let new = match edit(current) {
            Ok(Some(new)) if Some(new.as_slice()) != current => new,
            result => {
                if fresh {
                    // Still under the lock; a writer waiting on it sees nlink == 0 and retries.
                    let _ = fs::remove_file(target);
                }
                return match result {
                    Err(message) => Err(WriteError::Edit {
                        path: target.to_path_buf(),
                        message,
                    }),
                    Ok(_) => Ok((Outcome::Unchanged, None)),
                };
            }
        };
        let partial = |source| WriteError::PartialWrite {
            path: target.to_path_buf(),
            source,
        };
        file.seek(SeekFrom::Start(0)).map_err(write_err)?;
        file.write_all(&new).map_err(partial)?;
        file.set_len(new.len() as u64).map_err(partial)?;
        file.sync_all().map_err(partial)?;
        let identity = file.metadata().ok().map(|m| Identity::of(&m));
        // The bytes are on disk; should unlocking fail, closing the file releases the lock.
        let _ = file.unlock();
        return Ok((Outcome::Written, identity));
    }
    Err(WriteError::ChangedDuringWrite {
        path: target.to_path_buf(),
        attempts: MAX_ATTEMPTS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_round_trip() {
        let name = temp_name(OsStr::new("credentials"), 4242, 0xdead_beef);
        assert_eq!(name, ".credentials.credsync-4242-00000000deadbeef.tmp");
        assert_eq!(
            parse_temp_name(OsStr::new("credentials"), &name),
            Some(4242)
        );
        assert!(is_temp_name(&name));
        // Of any file, a file name holding `.credsync-` included.
        let odd = temp_name(OsStr::new("credsync-1.tmp.json"), 2, 10);
        assert!(is_temp_name(&odd));
        assert!(!is_temp_name(OsStr::new(".credsync-1-ab.tmp")));
    }

    #[test]
    fn other_names_are_not_temp_names() {
        let f = OsStr::new("credentials");
        for bad in [
            "credentials",
            ".credentials.credsync-42-.tmp",
            ".credentials.credsync--ab.tmp",
            ".credentials.credsync-0-ab.tmp",
            ".credentials.credsync-4x2-ab.tmp",
            ".credentials.credsync-42-xyz.tmp",
            ".credentials.credsync-42-AB.tmp",
            ".credentials.credsync-42-ab.tmp.bak",
            ".config.credsync-42-ab.tmp",
            ".credentials.bak.credsync-42-ab.tmp",
            "credentials.credsync-42-ab.tmp",
        ] {
            assert_eq!(parse_temp_name(f, OsStr::new(bad)), None, "{bad}");
            if bad != ".credentials.bak.credsync-42-ab.tmp" && bad != ".config.credsync-42-ab.tmp" {
                assert!(!is_temp_name(OsStr::new(bad)), "{bad}");
            }
        }
        assert_eq!(
            parse_temp_name(f, OsStr::new(".credentials.credsync-42-ab.tmp")),
            Some(42)
        );
    }

    #[test]
    fn huge_pids_are_dead_and_ours_is_alive() {
        assert!(pid_is_dead(u64::MAX));
        assert!(!pid_is_dead(u64::from(std::process::id())));
    }

    #[test]
    fn hints_name_the_cause() {
        let full = WriteError::Write {
            path: PathBuf::from("/h/.aws/credentials"),
            source: io::Error::from_raw_os_error(libc::ENOSPC),
        };
        let msg = full.to_string();
        assert!(
            msg.contains("/h/.aws/credentials") && msg.contains("disk is full"),
            "{msg}"
        );
        assert!(msg.contains("old file is untouched"), "{msg}");
        let denied = WriteError::Write {
            path: PathBuf::from("/h/.aws/credentials"),
            source: io::Error::from_raw_os_error(libc::EACCES),
        };
        assert!(denied.to_string().contains("owner and mode"));
        let busy = WriteError::Write {
            path: PathBuf::from("/h/.aws/credentials"),
            source: io::Error::from_raw_os_error(libc::EBUSY),
        };
        assert!(busy.to_string().contains("in-place"));
    }
}
