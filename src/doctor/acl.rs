//! Whether another uid (the container's user) may read a file or search a directory: the
//! file's owner and mode bits, and its POSIX access ACL read from the
//! `system.posix_acl_access` extended attribute (Linux's binary format, parsed here).
//!
//! The uid's supplementary groups are unknown on the host (they live in the container's
//! `/etc/group`), so group entries are not counted: a uid is granted access by being the owner,
//! by a named-user ACL entry (limited by the mask), or by the "other" bits.

use std::path::Path;

/// Permission bits as in `rwx`: read 4, write 2, execute/search 1.
pub const READ: u32 = 4;
pub const SEARCH: u32 = 1;

const ACL_EA_VERSION: u32 = 2;
pub const ACL_USER: u16 = 0x02;
const ACL_MASK: u16 = 0x10;
const ACL_OTHER: u16 = 0x20;

/// One entry of an access ACL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub tag: u16,
    pub perm: u16,
    pub id: u32,
}

/// Parses the `system.posix_acl_access` value: a little-endian `u32` version (2), then 8-byte
/// entries (`u16` tag, `u16` permissions, `u32` id).
pub fn parse(bytes: &[u8]) -> Option<Vec<Entry>> {
    if bytes.len() < 4 || !(bytes.len() - 4).is_multiple_of(8) {
        return None;
    }
    let version = u32::from_le_bytes(bytes[0..4].try_into().ok()?);
    if version != ACL_EA_VERSION {
        return None;
    }
    bytes[4..]
        .chunks_exact(8)
        .map(|c| {
            Some(Entry {
                tag: u16::from_le_bytes(c[0..2].try_into().ok()?),
                perm: u16::from_le_bytes(c[2..4].try_into().ok()?),
                id: u32::from_le_bytes(c[4..8].try_into().ok()?),
            })
        })
        .collect()
}

/// What is known about one path's permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Perms {
    pub owner: u32,
    pub mode: u32,
    /// The access ACL's entries, when the file has one.
    pub acl: Option<Vec<Entry>>,
}

/// The permission bits (`rwx` as 4/2/1) that `uid` gets on a file with `perms`, not counting
/// groups (see the module doc). uid 0 is not special here: it is the container's root.
pub fn granted(perms: &Perms, uid: u32) -> u32 {
    if perms.owner == uid {
        return (perms.mode >> 6) & 7;
    }
    if let Some(acl) = &perms.acl {
        let mask = acl
            .iter()
            .find(|e| e.tag == ACL_MASK)
            .map_or(7, |e| u32::from(e.perm));
        if let Some(e) = acl.iter().find(|e| e.tag == ACL_USER && e.id == uid) {
            return u32::from(e.perm) & mask;
        }
        if let Some(e) = acl.iter().find(|e| e.tag == ACL_OTHER) {
            return u32::from(e.perm);
        }
    }
    perms.mode & 7
}

/// Reads `path`'s owner, mode and access ACL (following symlinks). `None` when it cannot be
/// stat'ed.
pub fn read(path: &Path) -> Option<Perms> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Perms {
        owner: m.uid(),
        mode: m.mode() & 0o7777,
        acl: read_acl(path),
    })
}

#[cfg(target_os = "linux")]
fn read_acl(path: &Path) -> Option<Vec<Entry>> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let name = c"system.posix_acl_access";
    let mut buf = vec![0u8; 4 + 8 * 64];
    // SAFETY: `c` and `name` are NUL-terminated; `buf` is valid for `buf.len()` bytes.
    let n = unsafe {
        libc::getxattr(
            c.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return None; // no ACL (ENODATA), or a filesystem without them
    }
    buf.truncate(usize::try_from(n).ok()?);
    parse(&buf)
}

#[cfg(not(target_os = "linux"))]
fn read_acl(_path: &Path) -> Option<Vec<Entry>> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        let mut out = 2u32.to_le_bytes().to_vec();
        for (t, p, id) in entries {
            out.extend(t.to_le_bytes());
            out.extend(p.to_le_bytes());
            out.extend(id.to_le_bytes());
        }
        out
    }

    #[test]
    fn parses_and_grants() {
        // user::rw- user:50000:r-- group::--- mask::r-- other::---
        let acl = parse(&bytes(&[
            (0x01, 6, u32::MAX),
            (0x02, 4, 50000),
            (0x04, 0, u32::MAX),
            (0x10, 4, u32::MAX),
            (0x20, 0, u32::MAX),
        ]))
        .unwrap();
        let p = Perms {
            owner: 1000,
            mode: 0o640,
            acl: Some(acl.clone()),
        };
        assert_eq!(granted(&p, 50000), READ);
        assert_eq!(granted(&p, 50001), 0);
        assert_eq!(granted(&p, 1000), 6);
        // The mask limits a named entry.
        let mut masked = acl;
        masked[3].perm = 0;
        let p = Perms {
            owner: 1000,
            mode: 0o600,
            acl: Some(masked),
        };
        assert_eq!(granted(&p, 50000), 0);
        // No ACL: other bits.
        let p = Perms {
            owner: 1000,
            mode: 0o644,
            acl: None,
        };
        assert_eq!(granted(&p, 50000), READ);
        assert!(parse(&[2, 0, 0, 0, 1]).is_none());
        assert!(parse(&bytes(&[])[..3]).is_none());
        let mut v1 = bytes(&[]);
        v1[0] = 1;
        assert!(parse(&v1).is_none());
    }
}
