//! Replacing files without ever leaving a partial one: atomic (temp file + rename) and in-place
//! (same inode, under an advisory lock) writes, file modes, symlinks, stale temp files.
//!
//! STUB: the API below is the contract; the body is being written.

use std::io;
use std::path::{Path, PathBuf};

/// How a file is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WriteMode {
    /// Temp file in the same directory, fsync, rename over the target, fsync the directory.
    #[default]
    Atomic,
    /// Rewrite the same inode under an advisory lock (for single-file bind mounts).
    InPlace,
}

#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    pub mode: WriteMode,
    /// Mode of a file credsync creates; an existing file keeps its own.
    pub new_file_mode: u32,
}

/// What [`update`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Written,
    /// The edit returned the bytes already there (or `None`): nothing was touched.
    Unchanged,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("{path} is not a regular file")]
    NotAFile { path: PathBuf },
    #[error("{path}: {message}")]
    Edit { path: PathBuf, message: String },
}

/// Read-modify-write of `path`. `edit` gets the current bytes (`None` when the file does not
/// exist) and returns the new bytes, `Ok(None)` to leave the file alone, or `Err(message)`.
/// It may be called more than once: when the file changed between read and rename, the edit is
/// merged again onto the new content.
pub fn update<F>(path: &Path, opts: &WriteOptions, edit: F) -> Result<Outcome, WriteError>
where
    F: FnMut(Option<&[u8]>) -> Result<Option<Vec<u8>>, String>,
{
    let _ = (path, opts, edit);
    Ok(Outcome::Unchanged)
}

/// Removes temp files left beside `path` by a credsync process that no longer runs.
/// Returns how many were removed.
pub fn remove_stale_temps(path: &Path) -> io::Result<usize> {
    let _ = path;
    Ok(0)
}
