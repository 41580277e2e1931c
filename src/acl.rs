//! POSIX access ACLs as Linux stores them in the `system.posix_acl_access` extended attribute:
//! the binary format ([`encode`], [`decode`]), the arithmetic `setfacl` does ([`with_user`]),
//! reading and writing it and other extended attributes, and what another uid
//! (the container's user) is granted by a file's owner, mode and ACL ([`granted`]).
//!
//! The container view (`crate::view`) writes ACLs through this module; `doctor` reads them.
//! Off Linux there are no ACLs: reading and writing return `ENOTSUP` ([`is_unsupported`]).

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Permission bits as in `rwx`: read 4, write 2, execute (search, for a directory) 1.
pub const READ: u16 = 4;
pub(crate) const SEARCH: u16 = 1;

/// The extended attribute that holds the access ACL.
pub(crate) const ACL_XATTR: &str = "system.posix_acl_access";
const ACL_VERSION: u32 = 2;

/// The extended attribute that lists the ACL entries credsync added to a file (`crate::view`
/// keeps it; an atomic rewrite carries it over with the ACL).
pub const RECORD_XATTR: &str = "user.credsync.acl";

/// Entry tags (`linux/posix_acl.h`).
pub(crate) const TAG_USER_OBJ: u16 = 0x01;
pub const TAG_USER: u16 = 0x02;
pub(crate) const TAG_GROUP_OBJ: u16 = 0x04;
pub(crate) const TAG_GROUP: u16 = 0x08;
pub(crate) const TAG_MASK: u16 = 0x10;
pub(crate) const TAG_OTHER: u16 = 0x20;
/// The id of the entries that name no user or group.
pub(crate) const UNDEFINED_ID: u32 = u32::MAX;

/// One ACL entry: tag, permission bits (`rwx` = 4/2/1), and the uid or gid of named entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub tag: u16,
    pub perm: u16,
    pub id: u32,
}

/// The minimal ACL that `mode` stands for (owner, group, other).
pub fn from_mode(mode: u32) -> Vec<Entry> {
    let e = |tag, shift: u32| Entry {
        tag,
        perm: ((mode >> shift) & 7) as u16,
        id: UNDEFINED_ID,
    };
    vec![e(TAG_USER_OBJ, 6), e(TAG_GROUP_OBJ, 3), e(TAG_OTHER, 0)]
}

/// The xattr value: a little-endian `u32` version 2, then per entry `u16` tag, `u16` perm,
/// `u32` id (`linux/posix_acl_xattr.h`). Entries are sorted as the kernel requires (by tag,
/// then id).
pub fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut sorted = entries.to_vec();
    sorted.sort_by_key(|e| (e.tag, e.id));
    let mut out = Vec::with_capacity(4 + 8 * sorted.len());
    out.extend_from_slice(&ACL_VERSION.to_le_bytes());
    for e in sorted {
        out.extend_from_slice(&e.tag.to_le_bytes());
        out.extend_from_slice(&e.perm.to_le_bytes());
        out.extend_from_slice(&e.id.to_le_bytes());
    }
    out
}

/// Parses an xattr value; `None` for a wrong version or length.
pub(crate) fn decode(bytes: &[u8]) -> Option<Vec<Entry>> {
    let (head, rest) = bytes.split_first_chunk::<4>()?;
    if u32::from_le_bytes(*head) != ACL_VERSION || rest.len() % 8 != 0 {
        return None;
    }
    Some(
        rest.chunks_exact(8)
            .map(|c| Entry {
                tag: u16::from_le_bytes([c[0], c[1]]),
                perm: u16::from_le_bytes([c[2], c[3]]),
                id: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect(),
    )
}

/// `acl` with `uid` given at least `perm`, and the mask recomputed as `setfacl` does (the union
/// of the owning group and every named entry). `None` when nothing changes.
pub fn with_user(acl: &[Entry], uid: u32, perm: u16) -> Option<Vec<Entry>> {
    let mut out = acl.to_vec();
    match out.iter_mut().find(|e| e.tag == TAG_USER && e.id == uid) {
        Some(e) => e.perm |= perm,
        None => out.push(Entry {
            tag: TAG_USER,
            perm,
            id: uid,
        }),
    }
    let mask = out
        .iter()
        .filter(|e| matches!(e.tag, TAG_USER | TAG_GROUP | TAG_GROUP_OBJ))
        .fold(0, |m, e| m | e.perm);
    out.retain(|e| e.tag != TAG_MASK);
    out.push(Entry {
        tag: TAG_MASK,
        perm: mask,
        id: UNDEFINED_ID,
    });
    let norm = |v: &[Entry]| {
        let mut v = v.to_vec();
        v.sort_by_key(|e| (e.tag, e.id));
        v
    };
    (norm(&out) != norm(acl)).then_some(out)
}

/// The permission bits an ACL stands for when its named entries are dropped: owner, *owning
/// group* (not the mask), other. `None` when the ACL has no mask (it is just the mode). The
/// writer compares it with the mode a file must have; tests check what an ACL edit did.
pub(crate) fn true_mode(acl: &[Entry]) -> Option<u32> {
    acl.iter().find(|e| e.tag == TAG_MASK)?;
    let perm = |tag| {
        acl.iter()
            .find(|e| e.tag == tag)
            .map_or(0, |e| u32::from(e.perm & 7))
    };
    Some(perm(TAG_USER_OBJ) << 6 | perm(TAG_GROUP_OBJ) << 3 | perm(TAG_OTHER))
}

/// `acl` with its owner, owning-group and other entries set from `mode` (what `chmod` would do
/// to a file without named entries); named entries and the mask are kept.
pub(crate) fn with_base_mode(acl: &[Entry], mode: u32) -> Vec<Entry> {
    let shift = |tag| match tag {
        TAG_USER_OBJ => Some(6),
        TAG_GROUP_OBJ => Some(3),
        TAG_OTHER => Some(0),
        _ => None,
    };
    let set = |e: &Entry| match shift(e.tag) {
        Some(s) => Entry {
            perm: ((mode >> s) & 7) as u16,
            ..*e
        },
        None => *e,
    };
    acl.iter().map(set).collect()
}

/// What is known about one path's permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Perms {
    pub(crate) owner: u32,
    pub(crate) mode: u32,
    /// The access ACL's entries, when the file has one.
    pub(crate) acl: Option<Vec<Entry>>,
}

/// The permission bits (`rwx` as 4/2/1) that `uid` gets on a file with `perms`. The uid's
/// supplementary groups are unknown on the host (they live in the container's `/etc/group`), so
/// group entries are not counted: a uid is granted access by being the owner, by a named-user
/// entry (limited by the mask), or by the "other" bits. uid 0 is not special here: it is the
/// container's root.
pub(crate) fn granted(perms: &Perms, uid: u32) -> u16 {
    let bits = |shift: u32| ((perms.mode >> shift) & 7) as u16;
    if perms.owner == uid {
        return bits(6);
    }
    if let Some(acl) = &perms.acl {
        let mask = acl.iter().find(|e| e.tag == TAG_MASK).map_or(7, |e| e.perm);
        if let Some(e) = acl.iter().find(|e| e.tag == TAG_USER && e.id == uid) {
            return e.perm & mask;
        }
        if let Some(e) = acl.iter().find(|e| e.tag == TAG_OTHER) {
            return e.perm;
        }
    }
    bits(0)
}

/// `path`'s owner, mode and access ACL (symlinks followed). `None` when it cannot be stat'ed;
/// an ACL that cannot be read counts as none.
pub fn perms(path: &Path) -> Option<Perms> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Perms {
        owner: m.uid(),
        mode: m.mode() & 0o7777,
        acl: read(path).ok().flatten(),
    })
}

/// Whether `e` says the file system has no ACLs or extended attributes.
pub(crate) fn is_unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(c) if c == libc::EOPNOTSUPP || c == libc::ENOTSUP)
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// The file's access ACL; `None` when it has none beyond its mode.
pub fn read(path: &Path) -> io::Result<Option<Vec<Entry>>> {
    let Some(bytes) = read_xattr(path, ACL_XATTR)? else {
        return Ok(None);
    };
    decode(&bytes)
        .map(Some)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unreadable POSIX ACL"))
}

/// Sets the file's access ACL to `entries`.
pub fn write(path: &Path, entries: &[Entry]) -> io::Result<()> {
    write_xattr(path, ACL_XATTR, &encode(entries))
}

/// An extended attribute's value; `None` when the file has none of that name.
#[cfg(target_os = "linux")]
pub(crate) fn read_xattr(path: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    let p = c_path(path)?;
    let n = c_name(name)?;
    // SAFETY: both strings are NUL-terminated; `buf` is valid for `buf.len()` bytes.
    read_growing(|buf| unsafe {
        libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
    })
}

/// [`read_xattr`] of an open file.
#[cfg(target_os = "linux")]
pub(crate) fn fread_xattr(file: &std::fs::File, name: &str) -> io::Result<Option<Vec<u8>>> {
    use std::os::fd::AsRawFd;
    let n = c_name(name)?;
    // SAFETY: the fd is open, `n` NUL-terminated, `buf` valid for `buf.len()` bytes.
    read_growing(|buf| unsafe {
        libc::fgetxattr(
            file.as_raw_fd(),
            n.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    })
}

/// [`write_xattr`] on an open file.
#[cfg(target_os = "linux")]
pub(crate) fn fwrite_xattr(file: &std::fs::File, name: &str, value: &[u8]) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let n = c_name(name)?;
    let (v, len) = (value.as_ptr().cast(), value.len());
    // SAFETY: the fd is open, `n` NUL-terminated, `value` valid for its length.
    zero_or_errno(unsafe { libc::fsetxattr(file.as_raw_fd(), n.as_ptr(), v, len, 0) })
}

/// Calls `get` (a `getxattr`) with a buffer that grows on `ERANGE` up to the kernel's limit on
/// a value (64 KiB); `None` for `ENODATA` (no attribute of that name).
#[cfg(target_os = "linux")]
fn read_growing(mut get: impl FnMut(&mut [u8]) -> isize) -> io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    loop {
        if let Ok(len) = usize::try_from(get(&mut buf)) {
            buf.truncate(len);
            return Ok(Some(buf));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ENODATA) => return Ok(None),
            Some(libc::ERANGE) if buf.len() < 1 << 16 => buf.resize(buf.len() * 4, 0),
            _ => return Err(e),
        }
    }
}

/// `Ok` for a system call's 0, else the error in `errno`.
#[cfg(target_os = "linux")]
fn zero_or_errno(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn c_name(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

#[cfg(target_os = "linux")]
pub(crate) fn remove_xattr(path: &Path, name: &str) -> io::Result<()> {
    let p = c_path(path)?;
    let n = c_name(name)?;
    // SAFETY: both strings are NUL-terminated.
    if unsafe { libc::removexattr(p.as_ptr(), n.as_ptr()) } == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ENODATA) {
        Ok(())
    } else {
        Err(e)
    }
}

#[cfg(target_os = "linux")]
pub(crate) fn write_xattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let p = c_path(path)?;
    let n = c_name(name)?;
    let (v, len) = (value.as_ptr().cast(), value.len());
    // SAFETY: both strings are NUL-terminated; `value` is valid for `value.len()` bytes.
    zero_or_errno(unsafe { libc::setxattr(p.as_ptr(), n.as_ptr(), v, len, 0) })
}

/// Other systems (macOS: Docker Desktop shares files through a VM, uid mapping differs) have no
/// `system.posix_acl_access`: treated as "no ACL support".
#[cfg(not(target_os = "linux"))]
pub(crate) fn read_xattr(_path: &Path, _name: &str) -> io::Result<Option<Vec<u8>>> {
    Err(io::Error::from_raw_os_error(libc::ENOTSUP))
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn fread_xattr(_file: &std::fs::File, _name: &str) -> io::Result<Option<Vec<u8>>> {
    Err(io::Error::from_raw_os_error(libc::ENOTSUP))
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn fwrite_xattr(_file: &std::fs::File, _name: &str, _value: &[u8]) -> io::Result<()> {
    Err(io::Error::from_raw_os_error(libc::ENOTSUP))
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn remove_xattr(_path: &Path, _name: &str) -> io::Result<()> {
    Err(io::Error::from_raw_os_error(libc::ENOTSUP))
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn write_xattr(_path: &Path, _name: &str, _value: &[u8]) -> io::Result<()> {
    Err(io::Error::from_raw_os_error(libc::ENOTSUP))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_round_trips_in_kernel_order() {
        let acl = with_user(&from_mode(0o600), 50000, READ).unwrap();
        let bytes = encode(&acl);
        assert_eq!(
            bytes,
            [
                2, 0, 0, 0, // version
                1, 0, 6, 0, 255, 255, 255, 255, // user:: rw-
                2, 0, 4, 0, 0x50, 0xc3, 0, 0, // user:50000: r--
                4, 0, 0, 0, 255, 255, 255, 255, // group:: ---
                0x10, 0, 4, 0, 255, 255, 255, 255, // mask:: r--
                0x20, 0, 0, 0, 255, 255, 255, 255, // other:: ---
            ]
        );
        let mut back = decode(&bytes).unwrap();
        back.sort_by_key(|e| (e.tag, e.id));
        let mut want = acl.clone();
        want.sort_by_key(|e| (e.tag, e.id));
        assert_eq!(back, want);
        assert_eq!(true_mode(&acl), Some(0o600));
        assert_eq!(with_user(&acl, 50000, READ), None);
        assert_eq!(decode(&[1, 0, 0, 0]), None);
        assert_eq!(decode(&[2, 0, 0, 0, 1]), None);
    }

    #[test]
    fn base_mode_replaces_owner_group_other_and_keeps_named_entries_and_mask() {
        // A planted 0644 file whose ACL grants uid 50000 read: only the base entries change.
        let planted = with_user(&from_mode(0o644), 50000, READ).unwrap();
        let fixed = with_base_mode(&planted, 0o600);
        assert_eq!(true_mode(&fixed), Some(0o600));
        let named = |acl: &[Entry]| acl.iter().find(|e| e.tag == TAG_USER).copied();
        assert_eq!(named(&fixed), named(&planted));
        let mask = |acl: &[Entry]| acl.iter().find(|e| e.tag == TAG_MASK).copied();
        assert_eq!(mask(&fixed), mask(&planted));
        let p = Perms {
            owner: 1000,
            mode: 0o640,
            acl: Some(fixed),
        };
        assert_eq!(granted(&p, 50000), READ);
        assert_eq!(granted(&p, 50001), 0, "other lost its read bit");
    }

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
        let acl = decode(&bytes(&[
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
        assert!(decode(&[2, 0, 0, 0, 1]).is_none());
        assert!(decode(&bytes(&[])[..3]).is_none());
        let mut v1 = bytes(&[]);
        v1[0] = 1;
        assert!(decode(&v1).is_none());
    }
}
