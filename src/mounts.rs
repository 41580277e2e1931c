//! Which file system a path is on, read from the kernel's mount table (`/proc/self/mounts`),
//! to tell a Windows drive seen from WSL (`/mnt/c`, drvfs) from a Linux file system. A file
//! there behaves differently (microsoft/WSL issues cited where credsync acts on it): a rename
//! over a file a Windows program holds open fails with `EACCES` (#12897), `chmod` does nothing
//! unless the drive is mounted with `metadata` (#5956), there are no POSIX ACLs, and inotify
//! does not see what Windows programs write (#4739).
//!
//! [`MountTable::parse`] is pure (the text of the table in, the mounts out); [`MountTable::system`]
//! reads this process's table. Tests give a table of their own.

use std::path::{Component, Path, PathBuf};

/// The file-system types of a Windows drive mounted in WSL: `drvfs` (WSL 1, and WSL 2's
/// `mount -t drvfs`), `9p` (WSL 2 serves drvfs over Plan 9: `C:\ on /mnt/c type 9p
/// (rw,...,aname=drvfs;path=C:\;...)`).
const WINDOWS_DRIVE_TYPES: [&str; 2] = ["drvfs", "9p"];

/// One line of the mount table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mount {
    /// What is mounted (`C:\` for a Windows drive).
    source: String,
    point: PathBuf,
    fstype: String,
}

/// The mounts of a mount table, in its order (a later mount at a path hides an earlier one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountTable {
    mounts: Vec<Mount>,
}

impl MountTable {
    /// The mounts in `text`, in the format of `/proc/self/mounts` (fstab(5): source, mount
    /// point, type, options, two numbers; spaces, tabs, newlines and backslashes in a field
    /// written as octal escapes, `\040`). Lines that do not parse are skipped.
    pub fn parse(text: &str) -> MountTable {
        let mounts = text
            .lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                let source = unescape(fields.next()?);
                let point = PathBuf::from(unescape(fields.next()?));
                let fstype = unescape(fields.next()?);
                Some(Mount {
                    source,
                    point,
                    fstype,
                })
            })
            .collect();
        MountTable { mounts }
    }

    /// This process's mount table; empty when it cannot be read (no `/proc`): then nothing is
    /// on a Windows drive.
    pub fn system() -> MountTable {
        MountTable::read(Path::new("/proc/self/mounts"))
    }

    /// The mount table in the file at `path`; empty when it cannot be read.
    #[expect(
        clippy::disallowed_methods,
        reason = "the kernel's mount table (or a test's copy), not a user's file"
    )]
    pub fn read(path: &Path) -> MountTable {
        std::fs::read_to_string(path)
            .map(|text| MountTable::parse(&text))
            .unwrap_or_default()
    }

    /// The type of the file system the absolute `path` is on: the last-mounted of the mounts
    /// whose mount point is the longest prefix of it (by whole components). The path is taken
    /// as given: resolve symlinks first when it may hold some.
    pub fn fs_type(&self, path: &Path) -> Option<&str> {
        self.mount_of(path).map(|m| m.fstype.as_str())
    }

    /// Whether `path` is on a Windows drive mounted in WSL (drvfs or 9p).
    pub fn is_windows_drive(&self, path: &Path) -> bool {
        self.fs_type(path)
            .is_some_and(|t| WINDOWS_DRIVE_TYPES.contains(&t))
    }

    /// [`MountTable::is_windows_drive`] for a path that may hold symlinks (`~/.aws` linked to
    /// `/mnt/c/Users/<name>/.aws`): it is canonicalised first, or, while it does not exist,
    /// its nearest existing ancestor.
    pub fn holds_windows_file(&self, path: &Path) -> bool {
        self.is_windows_drive(&canonical_or_ancestor(path))
    }

    /// Where the Windows drive `letter` (`C`) is mounted: the mount of a Windows-drive type
    /// whose source is `C:` or `C:\`. `None` when it is not mounted.
    pub fn windows_drive(&self, letter: char) -> Option<&Path> {
        self.mounts
            .iter()
            .rev()
            .find(|m| {
                WINDOWS_DRIVE_TYPES.contains(&m.fstype.as_str()) && {
                    let s = m.source.trim_end_matches('\\');
                    s.len() == 2
                        && s.ends_with(':')
                        && s.starts_with(|c: char| c.eq_ignore_ascii_case(&letter))
                }
            })
            .map(|m| m.point.as_path())
    }

    /// Where the Windows path `windows` (`C:\\Users\\name`) is seen from here: below the mount of
    /// its drive. `None` when it is not a drive-letter path or its drive is not mounted.
    pub fn linux_path(&self, windows: &str) -> Option<PathBuf> {
        let mut chars = windows.chars();
        let letter = chars.next().filter(char::is_ascii_alphabetic)?;
        let rest = chars.as_str().strip_prefix(':')?;
        let mut path = self.windows_drive(letter)?.to_owned();
        path.extend(rest.split(['\\', '/']).filter(|c| !c.is_empty()));
        Some(path)
    }

    fn mount_of(&self, path: &Path) -> Option<&Mount> {
        let depth = |p: &Path| p.components().count();
        self.mounts
            .iter()
            .enumerate()
            .filter(|(_, m)| path.starts_with(&m.point))
            // The deepest mount point; of equal ones, the last mounted.
            .max_by_key(|(i, m)| (depth(&m.point), *i))
            .map(|(_, m)| m)
    }
}

/// `path` canonicalised, or its nearest existing ancestor canonicalised with the rest joined on
/// (lexically, `..` dropped with its parent).
fn canonical_or_ancestor(path: &Path) -> PathBuf {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut rest = Vec::new();
    let mut at = path.as_path();
    loop {
        if let Ok(canonical) = std::fs::canonicalize(at) {
            let mut out = canonical;
            for c in rest.iter().rev() {
                match c {
                    Component::ParentDir => {
                        out.pop();
                    }
                    Component::Normal(n) => out.push(n),
                    _ => {}
                }
            }
            return out;
        }
        match (at.parent(), at.components().next_back()) {
            (Some(parent), Some(last)) => {
                rest.push(last);
                at = parent;
            }
            _ => return path.clone(),
        }
    }
}

/// A field of the mount table with its octal escapes (`\040`) decoded.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                let value = d.iter().fold(0u32, |v, b| v * 8 + u32::from(b - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A WSL 2 distribution's table (trimmed), as /proc/self/mounts shows it.
    const WSL2: &str = "\
/dev/sdc / ext4 rw,relatime,discard,errors=remount-ro,data=ordered 0 0
none /mnt/wsl tmpfs rw,relatime 0 0
tools /init 9p ro,relatime,dirsync,aname=tools;fmask=022,loose,access=client,trans=fd,rfd=6,wfd=6 0 0
C:\\134 /mnt/c 9p rw,noatime,dirsync,aname=drvfs;path=C:\\134;uid=1000;gid=1000;symlinkroot=/mnt/,mmap,access=client,msize=65536,trans=fd,rfd=5,wfd=5 0 0
D:\\134 /mnt/d\\040drive 9p rw,noatime,aname=drvfs;path=D:\\134 0 0
/dev/sdc /mnt/c/Users/u/linux ext4 rw 0 0
";

    #[test]
    fn a_windows_drive_is_drvfs_or_9p_and_the_deepest_mount_wins() {
        let t = MountTable::parse(WSL2);
        assert_eq!(
            t.fs_type(Path::new("/home/u/.aws/credentials")),
            Some("ext4")
        );
        assert!(!t.is_windows_drive(Path::new("/home/u/.aws/credentials")));
        assert!(t.is_windows_drive(Path::new("/mnt/c/Users/u/.aws/credentials")));
        assert!(t.is_windows_drive(Path::new("/mnt/c")));
        // Whole components: /mnt/cc is not under /mnt/c.
        assert!(!t.is_windows_drive(Path::new("/mnt/cc/x")));
        // A Linux file system mounted inside the drive.
        assert!(!t.is_windows_drive(Path::new("/mnt/c/Users/u/linux/x")));
        // Escapes in the mount point.
        assert!(t.is_windows_drive(Path::new("/mnt/d drive/x")));
        // WSL 1 says drvfs.
        let wsl1 = MountTable::parse("C: /mnt/c drvfs rw,noatime,uid=1000,gid=1000 0 0\n");
        assert!(wsl1.is_windows_drive(Path::new("/mnt/c/Users/u/.aws")));
        assert!(!MountTable::default().is_windows_drive(Path::new("/mnt/c")));
    }

    #[test]
    fn a_later_mount_at_the_same_point_hides_the_earlier() {
        let t = MountTable::parse("C:\\134 /mnt/c 9p rw 0 0\ntmpfs /mnt/c tmpfs rw 0 0\n");
        assert_eq!(t.fs_type(Path::new("/mnt/c/x")), Some("tmpfs"));
        let t = MountTable::parse("tmpfs /mnt/c tmpfs rw 0 0\nC:\\134 /mnt/c 9p rw 0 0\n");
        assert!(t.is_windows_drive(Path::new("/mnt/c/x")));
    }

    #[test]
    fn drives_are_found_by_letter() {
        let t = MountTable::parse(WSL2);
        assert_eq!(t.windows_drive('C'), Some(Path::new("/mnt/c")));
        assert_eq!(t.windows_drive('d'), Some(Path::new("/mnt/d drive")));
        assert_eq!(t.windows_drive('E'), None);
        let wsl1 = MountTable::parse("C: /c drvfs rw 0 0\n");
        assert_eq!(wsl1.windows_drive('c'), Some(Path::new("/c")));
    }

    #[test]
    fn windows_paths_are_found_below_their_drive() {
        let t = MountTable::parse(WSL2);
        assert_eq!(
            t.linux_path("C:\\Users\\Ann Lee"),
            Some(PathBuf::from("/mnt/c/Users/Ann Lee"))
        );
        assert_eq!(t.linux_path("c:\\"), Some(PathBuf::from("/mnt/c")));
        assert_eq!(t.linux_path("E:\\x"), None);
        assert_eq!(t.linux_path("\\\\server\\share"), None);
        assert_eq!(t.linux_path("%USERPROFILE%"), None);
    }

    #[test]
    fn symlinks_lead_to_the_drive() {
        let dir = tempfile::tempdir().unwrap();
        let drive = dir.path().join("mnt/c");
        std::fs::create_dir_all(drive.join("Users/u/.aws")).unwrap();
        let home = dir.path().join("home/u");
        std::fs::create_dir_all(&home).unwrap();
        std::os::unix::fs::symlink(drive.join("Users/u/.aws"), home.join(".aws")).unwrap();
        let canonical_drive = std::fs::canonicalize(&drive).unwrap();
        let t = MountTable::parse(&format!("C: {} 9p rw 0 0\n", canonical_drive.display()));
        assert!(t.holds_windows_file(&home.join(".aws/credentials")));
        assert!(t.holds_windows_file(&home.join(".aws/sso/cache/x.json")));
        assert!(!t.holds_windows_file(&home.join("other")));
    }
}
