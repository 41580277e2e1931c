//! Reading a file from the user's tree: the one way credsync does it.
//!
//! Every file credsync reads that the user (or one of their programs) controls goes through
//! [`read`]: the AWS config and credentials files, the SSO token and client registration caches,
//! credsync's config, the files `doctor` looks at. The rules:
//!
//! - **Nothing blocks.** The file is opened with `O_NONBLOCK` (a FIFO opens at once instead of
//!   waiting for a writer), `O_NOCTTY` (a terminal never becomes credsync's) and `O_CLOEXEC`.
//!   Before that, the path is looked at (`stat`) and anything but a regular file is refused
//!   unopened (opening a device can do something); after, the open file is looked at again
//!   (`fstat`), in case the path changed in between.
//! - **Only regular files.** A FIFO, socket, device or directory is refused with an error that
//!   names the file and says what it is.
//! - **A size bound per kind of file** ([`Kind::limit`]): a larger file is refused, with the file
//!   and the bound named, before a byte is read; and the read stops one byte past the bound,
//!   should the file grow meanwhile. The bounds are far above any real file of the kind: one
//!   that big is the wrong file (or a sparse one), and reading it whole would only exhaust memory.
//! - **Symlinks are followed**, through any chain the kernel follows: `~/.aws/config` symlinked
//!   into a dotfiles repository is common, and `AWS_CONFIG_FILE` may name any path, as it may for
//!   the AWS CLI. What a symlink may not lead to: a device (`/dev/zero`, `/dev/tty`: not a
//!   regular file), and a file on one of the kernel's pseudo file systems (`/proc`, `/sys`,
//!   debugfs, cgroup and the like, recognised on the open file with `fstatfs`), whose "regular
//!   files" are made up by the kernel as they are read: some never end, some block, some change
//!   something when read, and no AWS or credsync file lives there. Errors name the symlink as
//!   given and where it leads.
//!
//! `std::fs::read`, `std::fs::read_to_string` and `std::fs::File::open` are denied everywhere
//! else by clippy (`disallowed-methods` in `clippy.toml`); only this module and tests use them.
//! The writer ([`crate::write::update`]) reads its target by the same rules through its own
//! open file, which it needs for the lock and the file's identity.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// What a file is to credsync: it sets the size bound and names the file in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `~/.aws/config` (or `AWS_CONFIG_FILE`).
    AwsConfig,
    /// `~/.aws/credentials` (or `AWS_SHARED_CREDENTIALS_FILE`).
    Credentials,
    /// A file of the SSO token cache, `~/.aws/sso/cache/<sha1>.json`.
    TokenCache,
    /// A file of the `aws login` cache, `~/.aws/login/cache/<sha256>.json`.
    LoginCache,
    /// The SSO-OIDC client registration cache file beside the tokens.
    Registration,
    /// credsync's own config file.
    CredsyncConfig,
    /// A file of the project `doctor --project` checks (Compose file, `.env`, `Dockerfile`).
    ProjectFile,
    /// credsync's systemd unit or LaunchAgent, as `doctor` reads it back.
    ServiceFile,
    /// Astro CLI's config (`~/.astro/config.yaml`), for which container engine it uses.
    AstroConfig,
    /// `/etc/subuid`, for the uids rootless Podman maps.
    SubordinateIds,
    /// The log launchd writes the LaunchAgent's output to (read from its end, [`read_tail`]).
    ServiceLog,
    /// WSL's settings on Windows (`%UserProfile%\.wslconfig`), as `doctor` reads them.
    WslConfig,
}

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

impl Kind {
    /// The most credsync reads of a file of this kind. An AWS config of a thousand profiles is
    /// about 200 KiB and a token cache file about 4 KiB: each bound is far above what the kind
    /// holds, so only a wrong (or sparse) file meets it.
    pub const fn limit(self) -> u64 {
        match self {
            Kind::AwsConfig | Kind::Credentials | Kind::SubordinateIds => 16 * MIB,
            Kind::ProjectFile => 4 * MIB,
            Kind::TokenCache
            | Kind::LoginCache
            | Kind::Registration
            | Kind::CredsyncConfig
            | Kind::ServiceFile
            | Kind::AstroConfig
            | Kind::WslConfig => MIB,
            Kind::ServiceLog => 64 * KIB,
        }
    }

    /// The file in words, for messages.
    pub const fn noun(self) -> &'static str {
        match self {
            Kind::AwsConfig => "the AWS config",
            Kind::Credentials => "the AWS credentials file",
            Kind::TokenCache => "an SSO token cache file",
            Kind::LoginCache => "an `aws login` cache file",
            Kind::Registration => "a client registration cache file",
            Kind::CredsyncConfig => "credsync's config",
            Kind::ProjectFile => "a project file",
            Kind::ServiceFile => "a service file",
            Kind::AstroConfig => "Astro's config",
            Kind::SubordinateIds => "the subordinate id file",
            Kind::ServiceLog => "the service's log",
            Kind::WslConfig => "WSL's .wslconfig",
        }
    }
}

/// Why a file was not read. Names the file as given (and where a symlink leads); never holds
/// the file's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserFileError {
    pub path: PathBuf,
    /// Where `path` leads when it is a symlink (filled in only when something went wrong).
    pub target: Option<PathBuf>,
    pub kind: Kind,
    pub problem: Problem,
}

/// What is wrong with the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Not a regular file: `what` it is ("a FIFO (named pipe)", "a directory", …).
    NotRegular { what: &'static str },
    /// A file on one of the kernel's pseudo file systems.
    PseudoFs { fs: &'static str },
    /// Larger than [`Kind::limit`]: `size` bytes, or `None` when it grew past the bound while
    /// being read.
    TooLarge { size: Option<u64> },
    /// Not UTF-8 text (only from [`read_text`]). `line` and `column` count from 1; `column` in
    /// characters, `byte` the first bad byte's offset in the line, from 1.
    NotUtf8 {
        line: usize,
        column: usize,
        byte: usize,
    },
    /// The system refused (permissions, a file where a directory should be, …).
    Io {
        kind: io::ErrorKind,
        message: String,
    },
}

impl UserFileError {
    /// Whether the path names something that is not a regular file on a real file system.
    pub fn is_not_a_file(&self) -> bool {
        matches!(
            self.problem,
            Problem::NotRegular { .. } | Problem::PseudoFs { .. }
        )
    }
}

impl std::error::Error for UserFileError {}

impl fmt::Display for UserFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        let noun = self.kind.noun();
        if let Problem::NotUtf8 { line, column, byte } = self.problem {
            return write!(
                f,
                "{path}:{line}:{column}: not valid UTF-8 (byte {byte} of line {line}); {noun} \
                 must be UTF-8 text: save it as UTF-8"
            );
        }
        write!(f, "{path}")?;
        if let Some(target) = &self.target {
            write!(f, " (a symlink to {})", target.display())?;
        }
        match &self.problem {
            Problem::NotRegular { what } => write!(
                f,
                " is {what}, not a regular file; credsync reads {noun} only from a regular file \
                 (or a symlink to one): put the file there"
            ),
            Problem::PseudoFs { fs } => write!(
                f,
                " is on {fs}, where the kernel makes up what a file holds; credsync reads {noun} \
                 only from a real file: point the path at one"
            ),
            Problem::TooLarge { size } => {
                match size {
                    Some(size) => write!(f, " is {size} bytes, more than")?,
                    None => write!(f, " grew past")?,
                }
                write!(
                    f,
                    " the {} credsync reads from {noun}; check that the path names the right file",
                    bound_text(self.kind.limit())
                )
            }
            Problem::Io { kind, message } => {
                write!(f, " cannot be read: {message}")?;
                match kind {
                    io::ErrorKind::PermissionDenied => f.write_str(
                        "; check the owner and mode of the file and its directory (`ls -l`)",
                    ),
                    io::ErrorKind::NotADirectory => {
                        f.write_str("; a component of the path is a file, not a directory")
                    }
                    _ => Ok(()),
                }
            }
            Problem::NotUtf8 { .. } => Ok(()),
        }
    }
}

/// A bound in words: `16 MiB`, `64 KiB`, `100 bytes`.
fn bound_text(n: u64) -> String {
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= KIB && n.is_multiple_of(KIB) {
        format!("{} KiB", n / KIB)
    } else {
        format!("{n} bytes")
    }
}

/// Reads the file at `path` by the rules of this module. `Ok(None)` when nothing is there (a
/// dangling symlink included).
pub fn read(path: &Path, kind: Kind) -> Result<Option<Vec<u8>>, UserFileError> {
    read_within(path, kind, kind.limit())
}

/// [`read`] as text: invalid UTF-8 is an error naming the line and column.
pub fn read_text(path: &Path, kind: Kind) -> Result<Option<String>, UserFileError> {
    let Some(bytes) = read(path, kind)? else {
        return Ok(None);
    };
    String::from_utf8(bytes).map(Some).map_err(|e| {
        let bytes = e.as_bytes();
        let (line, column, byte) = utf8_position(bytes, e.utf8_error().valid_up_to());
        error(path, kind, Problem::NotUtf8 { line, column, byte })
    })
}

/// [`read_text`], with `""` for a file that is missing or cannot be read (for callers that only
/// look for something in it, and that find out what is wrong when they write it).
pub fn read_text_or_empty(path: &Path, kind: Kind) -> String {
    read_text(path, kind).ok().flatten().unwrap_or_default()
}

/// Line, column (characters) and byte in the line, all from 1, of byte offset `at` of `bytes`,
/// which are UTF-8 before it.
fn utf8_position(bytes: &[u8], at: usize) -> (usize, usize, usize) {
    let before = &bytes[..at];
    let start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    // UTF-8 by the caller's promise: every character has one byte that is not a continuation.
    let column = before[start..]
        .iter()
        .filter(|&&b| b & 0xC0 != 0x80)
        .count()
        + 1;
    (line, column, at - start + 1)
}

fn read_within(path: &Path, kind: Kind, limit: u64) -> Result<Option<Vec<u8>>, UserFileError> {
    let Some(mut file) = open_checked(path, kind, Some(limit))? else {
        return Ok(None);
    };
    read_bounded(&mut file, limit)
        .map(Some)
        .map_err(|p| error(path, kind, p))
}

/// The last [`Kind::limit`] bytes of the file at `path`, by the rules of this module except
/// the size bound (a log only grows): for a file whose end is what matters. `Ok(None)` when
/// nothing is there.
pub fn read_tail(path: &Path, kind: Kind) -> Result<Option<Vec<u8>>, UserFileError> {
    let Some(mut file) = open_checked(path, kind, None)? else {
        return Ok(None);
    };
    let problem = |e: io::Error| error(path, kind, io_problem(&e));
    let len = file.metadata().map_err(problem)?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(kind.limit())))
        .map_err(problem)?;
    read_bounded(&mut file, kind.limit())
        .map(Some)
        .map_err(|p| error(path, kind, p))
}

/// Opens the file at `path` for reading once it is known to be a regular file (of at most
/// `limit` bytes, when given) on a real file system, never blocking on a FIFO. `Ok(None)` when
/// nothing is there.
fn open_checked(
    path: &Path,
    kind: Kind,
    limit: Option<u64>,
) -> Result<Option<File>, UserFileError> {
    let problem = |p| error(path, kind, p);
    let limit = limit.unwrap_or(u64::MAX);
    // Looked at first so that a device is never opened.
    match fs::metadata(path) {
        Ok(m) => check(&m, limit).map_err(problem)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(problem(io_problem(&e))),
    }
    let flags = libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
    let file = match File::options().read(true).custom_flags(flags).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(problem(io_problem(&e))),
    };
    // The file as opened: the path may have been replaced since it was looked at.
    let m = file.metadata().map_err(|e| problem(io_problem(&e)))?;
    check(&m, limit).map_err(problem)?;
    if let Some(fs) = pseudo_fs_of(&file) {
        return Err(problem(Problem::PseudoFs { fs }));
    }
    Ok(Some(file))
}

/// Reads `r` to its end, refusing it once it gives more than `limit` bytes.
fn read_bounded(r: impl Read, limit: u64) -> Result<Vec<u8>, Problem> {
    let mut bytes = Vec::new();
    r.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_problem(&e))?;
    if bytes.len() as u64 > limit {
        return Err(Problem::TooLarge { size: None });
    }
    Ok(bytes)
}

fn error(path: &Path, kind: Kind, problem: Problem) -> UserFileError {
    let is_link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    UserFileError {
        path: path.to_path_buf(),
        target: is_link.then(|| fs::canonicalize(path).ok()).flatten(),
        kind,
        problem,
    }
}

fn io_problem(e: &io::Error) -> Problem {
    Problem::Io {
        kind: e.kind(),
        message: e.to_string(),
    }
}

/// Refuses what is not a regular file of at most `limit` bytes.
fn check(m: &fs::Metadata, limit: u64) -> Result<(), Problem> {
    let t = m.file_type();
    if !t.is_file() {
        return Err(Problem::NotRegular { what: describe(t) });
    }
    if m.len() > limit {
        return Err(Problem::TooLarge {
            size: Some(m.len()),
        });
    }
    Ok(())
}

/// What a file that is not a regular file is, in words.
fn describe(t: fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "something else"
    }
}

/// The pseudo file system `file` is on, by name, if it is on one.
#[cfg(target_os = "linux")]
fn pseudo_fs_of(file: &File) -> Option<&'static str> {
    use std::os::fd::AsRawFd;
    let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: the fd is open for the duration of the call and `st` is large enough for statfs.
    let rc = unsafe { libc::fstatfs(file.as_raw_fd(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: fstatfs succeeded, so it filled `st`.
    let magic = unsafe { st.assume_init() }.f_type;
    // Magic numbers are 32 bits; `f_type`'s width and sign vary with the C library.
    pseudo_fs_name(magic as u32)
}

#[cfg(not(target_os = "linux"))]
fn pseudo_fs_of(_file: &File) -> Option<&'static str> {
    // Elsewhere (macOS) the kernel's pseudo files are devices under /dev: not regular files.
    None
}

/// The name of the Linux pseudo file system with this magic number (`statfs(2)`), if it is one.
fn pseudo_fs_name(magic: u32) -> Option<&'static str> {
    const PSEUDO: [(u32, &str); 12] = [
        (0x0000_9fa0, "the proc file system (/proc)"),
        (0x6265_6572, "sysfs (/sys)"),
        (0x6462_6720, "debugfs"),
        (0x7472_6163, "tracefs"),
        (0x7363_6673, "securityfs"),
        (0x0027_e0eb, "the cgroup file system"),
        (0x6367_7270, "the cgroup2 file system"),
        (0x6265_6570, "configfs"),
        (0xde5e_81e4, "efivarfs"),
        (0xcafe_4a11, "the BPF file system"),
        (0x6165_676c, "pstore"),
        (0x4249_4e4d, "binfmt_misc"),
    ];
    PSEUDO
        .iter()
        .find(|(m, _)| *m == magic)
        .map(|(_, name)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn mkfifo(path: &Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn a_regular_file_is_read_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        assert_eq!(read(&path, Kind::AwsConfig).unwrap(), None);
        fs::write(&path, "[default]\n").unwrap();
        assert_eq!(
            read(&path, Kind::AwsConfig).unwrap().as_deref(),
            Some(&b"[default]\n"[..])
        );
        let dangling = dir.path().join("dangling");
        symlink(dir.path().join("nowhere"), &dangling).unwrap();
        assert_eq!(read(&dangling, Kind::AwsConfig).unwrap(), None);
    }

    #[test]
    fn the_tail_of_a_log_is_its_last_bytes_whatever_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credsync.log");
        assert_eq!(read_tail(&path, Kind::ServiceLog).unwrap(), None);
        fs::write(&path, "short\n").unwrap();
        assert_eq!(
            read_tail(&path, Kind::ServiceLog).unwrap().as_deref(),
            Some(&b"short\n"[..])
        );
        let limit = Kind::ServiceLog.limit() as usize;
        let mut big = vec![b'a'; 3 * limit];
        big.extend_from_slice(b"\nlast line\n");
        fs::write(&path, &big).unwrap();
        let tail = read_tail(&path, Kind::ServiceLog).unwrap().unwrap();
        assert_eq!(tail.len(), limit);
        assert!(tail.ends_with(b"\nlast line\n"));
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        assert!(
            read_tail(&fifo, Kind::ServiceLog)
                .unwrap_err()
                .is_not_a_file()
        );
    }

    #[test]
    fn a_symlink_chain_to_a_regular_file_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("dotfiles/aws-config");
        fs::create_dir(dir.path().join("dotfiles")).unwrap();
        fs::write(&real, "[profile a]\n").unwrap();
        symlink("dotfiles/aws-config", dir.path().join("hop")).unwrap();
        let link = dir.path().join("config");
        symlink(dir.path().join("hop"), &link).unwrap();
        assert_eq!(
            read_text(&link, Kind::AwsConfig).unwrap().as_deref(),
            Some("[profile a]\n")
        );
    }

    #[test]
    fn a_fifo_is_refused_without_blocking_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        mkfifo(&path);
        // With no writer, opening a FIFO for reading would block forever: returning is the check.
        let err = read(&path, Kind::AwsConfig).unwrap_err();
        assert_eq!(
            err.problem,
            Problem::NotRegular {
                what: "a FIFO (named pipe)"
            }
        );
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("{} is a FIFO", path.display())),
            "{text}"
        );
        assert!(text.contains("the AWS config"), "{text}");
        assert!(err.is_not_a_file());
    }

    #[test]
    fn a_directory_and_a_socket_are_refused_as_what_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let err = read(dir.path(), Kind::CredsyncConfig).unwrap_err();
        assert!(
            err.to_string()
                .contains("is a directory, not a regular file"),
            "{err}"
        );
        let sock = dir.path().join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let err = read(&sock, Kind::TokenCache).unwrap_err();
        assert!(
            err.to_string().contains("is a socket, not a regular file"),
            "{err}"
        );
    }

    #[test]
    fn a_symlink_to_dev_zero_is_refused_unread_and_both_are_named() {
        let dir = tempfile::tempdir().unwrap();
        for kind in [Kind::AwsConfig, Kind::TokenCache] {
            let link = dir.path().join(format!("{kind:?}"));
            symlink("/dev/zero", &link).unwrap();
            let err = read(&link, kind).unwrap_err();
            assert_eq!(
                err.problem,
                Problem::NotRegular {
                    what: "a character device"
                }
            );
            assert_eq!(err.target.as_deref(), Some(Path::new("/dev/zero")));
            let text = err.to_string();
            let want = format!(
                "{} (a symlink to /dev/zero) is a character device",
                link.display()
            );
            assert!(text.starts_with(&want), "{text}");
        }
    }

    #[test]
    fn a_file_over_the_bound_is_refused_with_the_bound_named() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (Kind::AwsConfig, "16 MiB"),
            (Kind::Credentials, "16 MiB"),
            (Kind::TokenCache, "1 MiB"),
            (Kind::CredsyncConfig, "1 MiB"),
            (Kind::ProjectFile, "4 MiB"),
        ];
        for (kind, bound) in cases {
            // Sparse: 4 GiB of zeros that cost nothing on disk, and would all be read.
            let path = dir.path().join(format!("{kind:?}"));
            File::create(&path).unwrap().set_len(4 << 30).unwrap();
            let err = read(&path, kind).unwrap_err();
            assert_eq!(
                err.problem,
                Problem::TooLarge {
                    size: Some(4 << 30)
                }
            );
            let text = err.to_string();
            assert!(text.contains(&format!("is {} bytes", 4u64 << 30)), "{text}");
            assert!(
                text.contains(&format!(
                    "more than the {bound} credsync reads from {}",
                    kind.noun()
                )),
                "{text}"
            );
            // At the bound exactly: read.
            File::create(&path).unwrap().set_len(kind.limit()).unwrap();
            assert_eq!(
                read(&path, kind).unwrap().unwrap().len() as u64,
                kind.limit()
            );
        }
    }

    #[test]
    fn a_read_stops_one_byte_past_the_bound() {
        // An endless reader, as /dev/zero is, or a file that grows after its size was checked.
        let endless = io::repeat(0);
        assert_eq!(
            read_bounded(endless, 1024),
            Err(Problem::TooLarge { size: None })
        );
        assert_eq!(read_bounded(&b"0123456789"[..], 10).unwrap().len(), 10);
        let grown = UserFileError {
            path: PathBuf::from("/h/.aws/sso/cache/x.json"),
            target: None,
            kind: Kind::TokenCache,
            problem: Problem::TooLarge { size: None },
        };
        assert_eq!(
            grown.to_string(),
            "/h/.aws/sso/cache/x.json grew past the 1 MiB credsync reads from an SSO token cache \
             file; check that the path names the right file"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_symlink_into_proc_or_sys_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for (target, fs_name) in [
            ("/proc/self/status", "the proc file system (/proc)"),
            (
                "/sys/kernel/mm/transparent_hugepage/enabled",
                "sysfs (/sys)",
            ),
        ] {
            if !Path::new(target).is_file() {
                continue; // Not every kernel has this sysfs file; /proc/self/status always is.
            }
            let link = dir.path().join("config");
            let _ = fs::remove_file(&link);
            symlink(target, &link).unwrap();
            let err = read(&link, Kind::AwsConfig).unwrap_err();
            assert_eq!(err.problem, Problem::PseudoFs { fs: fs_name });
            // `/proc/self` reads as the process's own number.
            let top = &target[..5];
            assert!(
                err.target.as_ref().is_some_and(|t| t.starts_with(top)),
                "{err:?}"
            );
            let text = err.to_string();
            assert!(text.contains(&format!("is on {fs_name}")), "{text}");
        }
    }

    #[test]
    fn pseudo_file_systems_are_known_by_magic_and_real_ones_are_not() {
        assert_eq!(pseudo_fs_name(0x9fa0), Some("the proc file system (/proc)"));
        assert_eq!(pseudo_fs_name(0xde5e_81e4), Some("efivarfs"));
        // ext4, tmpfs (devtmpfs too: its devices are refused as not regular), btrfs, overlay.
        for real in [0xef53, 0x0102_1994, 0x9123_683e, 0x794c_7630] {
            assert_eq!(pseudo_fs_name(real), None);
        }
    }

    #[test]
    fn invalid_utf8_names_the_line_column_and_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        fs::write(&path, b"[default]\nregion = \xc3\xa9u-\xff\n").unwrap();
        let err = read_text(&path, Kind::AwsConfig).unwrap_err();
        // `é` is one character of two bytes: column 13, byte 14.
        assert_eq!(
            err.problem,
            Problem::NotUtf8 {
                line: 2,
                column: 13,
                byte: 14
            }
        );
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("{}:2:13: not valid UTF-8", path.display())),
            "{text}"
        );
        assert_eq!(utf8_position(b"\xff", 0), (1, 1, 1));
        assert_eq!(utf8_position(b"a\n\nb\xff", 4), (3, 2, 2));
    }

    #[test]
    fn an_unreadable_file_says_what_to_check() {
        let err = UserFileError {
            path: PathBuf::from("/h/.aws/config"),
            target: None,
            kind: Kind::AwsConfig,
            problem: io_problem(&io::Error::from_raw_os_error(libc::EACCES)),
        };
        let text = err.to_string();
        assert!(
            text.starts_with("/h/.aws/config cannot be read: Permission denied"),
            "{text}"
        );
        assert!(text.contains("owner and mode"), "{text}");
    }

    #[test]
    fn bounds_read_as_words() {
        assert_eq!(bound_text(16 << 20), "16 MiB");
        assert_eq!(bound_text(64 << 10), "64 KiB");
        assert_eq!(bound_text(100), "100 bytes");
    }
}
