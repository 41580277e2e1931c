//! One sign-in at a time per session, across processes: an advisory lock (`flock`) on
//! `<token file>.lock` beside the session's token in the SSO cache directory.
//!
//! `credsync login` holds it from reading the token cache until the new token is written, and
//! the daemon's token refresh holds it around `CreateToken` and the write-back; so ten profiles,
//! two terminals and a daemon never open two browser tabs for one session or race one refresh
//! token. The lock file is empty, 0600, and stays (removing it would let a waiter lock an
//! unlinked file); the AWS CLI and botocore never look at it. The kernel releases the lock when
//! the process exits, however it exits.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use crate::sso_cache;

/// How often a waiter tries the lock again.
const POLL: Duration = Duration::from_millis(100);

/// A held session lock; released on drop.
#[derive(Debug)]
pub struct SessionLock {
    _file: File,
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot open the sign-in lock {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "another sign-in for this session still holds {} after {}; finish or stop it \
         (another `credsync login`?), then try again",
        path.display(),
        crate::timefmt::humane(*waited)
    )]
    Busy { path: PathBuf, waited: Duration },
}

/// The lock file of the session whose token is `<cache_dir>/<sha1(key)>.json`.
pub(crate) fn path(cache_dir: &Path, key: &str) -> PathBuf {
    let mut name = sso_cache::file_name(key);
    name.push_str(".lock");
    cache_dir.join(name)
}

fn open(path: &Path) -> Result<File, LockError> {
    let io_err = |source| LockError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err)?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io_err)
}

impl SessionLock {
    /// The lock, if nobody holds it now.
    pub fn try_acquire(cache_dir: &Path, key: &str) -> Result<Option<SessionLock>, LockError> {
        SessionLock::try_acquire_path(&path(cache_dir, key))
    }

    /// The lock of lock file `path` (created 0600, its directory 0700), if nobody holds it now.
    pub(crate) fn try_acquire_path(path: &Path) -> Result<Option<SessionLock>, LockError> {
        let path = path.to_owned();
        let file = open(&path)?;
        // SAFETY: flock(2) on a descriptor `file` owns and keeps open.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(Some(SessionLock { _file: file }));
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            Ok(None)
        } else {
            Err(LockError::Io { path, source: e })
        }
    }

    /// The lock, waiting up to `wait` for whoever holds it; `on_wait` runs once when the lock
    /// is busy at first (to tell the user why nothing happens).
    pub(crate) async fn acquire(
        cache_dir: &Path,
        key: &str,
        wait: Duration,
        on_wait: impl FnOnce(),
    ) -> Result<SessionLock, LockError> {
        SessionLock::acquire_path(&path(cache_dir, key), wait, on_wait).await
    }

    /// [`SessionLock::acquire`] of lock file `lock_path`.
    pub(crate) async fn acquire_path(
        lock_path: &Path,
        wait: Duration,
        on_wait: impl FnOnce(),
    ) -> Result<SessionLock, LockError> {
        let start = Instant::now();
        let mut on_wait = Some(on_wait);
        loop {
            if let Some(lock) = SessionLock::try_acquire_path(lock_path)? {
                return Ok(lock);
            }
            if let Some(f) = on_wait.take() {
                f();
            }
            let waited = start.elapsed();
            if waited >= wait {
                return Err(LockError::Busy {
                    path: lock_path.to_owned(),
                    waited,
                });
            }
            tokio::time::sleep(POLL.min(wait - waited)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_is_exclusive_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("sso/cache");
        let a = SessionLock::try_acquire(&cache, "corp").unwrap().unwrap();
        assert!(SessionLock::try_acquire(&cache, "corp").unwrap().is_none());
        // Another session is independent.
        assert!(SessionLock::try_acquire(&cache, "other").unwrap().is_some());
        drop(a);
        // Free again once dropped. Polled: a process another test forks in this very moment
        // shares the lock's open file until it execs (the fd is close-on-exec), a few ms.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let again = loop {
            match SessionLock::try_acquire(&cache, "corp").unwrap() {
                Some(lock) => break Some(lock),
                None if std::time::Instant::now() < deadline => std::thread::yield_now(),
                None => break None,
            }
        };
        assert!(
            again.is_some(),
            "the lock is still held after it was dropped"
        );
        assert_eq!(
            path(&cache, "corp").file_name().unwrap().to_str().unwrap(),
            format!("{}.lock", sso_cache::file_name("corp"))
        );
    }

    #[tokio::test]
    async fn a_waiter_gives_up_after_its_wait_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let _held = SessionLock::try_acquire(dir.path(), "corp")
            .unwrap()
            .unwrap();
        let mut told = false;
        let e = SessionLock::acquire(dir.path(), "corp", Duration::from_millis(250), || {
            told = true
        })
        .await
        .unwrap_err();
        assert!(told);
        assert!(matches!(e, LockError::Busy { .. }), "{e}");
        assert!(e.to_string().contains("another sign-in"), "{e}");
    }
}
