//! What the machine knows of a write: what it did ([`Outcome`]) and which version of a file
//! it saw ([`Identity`]). Writing is `credsync::write`, at the edge.

/// What a write (`credsync::write::update`) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Written,
    /// The edit returned the bytes already there (or `None`): nothing was touched.
    Unchanged,
}

/// What identifies one version of a file: if any of it differs, someone wrote the file. Used
/// here to notice a writer between read and rename, by the watcher to tell credsync's own
/// writes from the user's, and by the engine to notice a new login in the token cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Identity {
    /// The identity made of a file's device, inode, length, and modification and change
    /// times (seconds, nanoseconds), as the edge reads them from its metadata.
    pub fn new(dev: u64, ino: u64, len: u64, mtime: (i64, i64), ctime: (i64, i64)) -> Self {
        Identity {
            dev,
            ino,
            len,
            mtime,
            ctime,
        }
    }
}
