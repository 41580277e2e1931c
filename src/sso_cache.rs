//! The SSO token cache on disk (`~/.aws/sso/cache/<sha1>.json`): the file's name, reading a
//! session's file through [`crate::user_file`], writing it atomically, and the lock beside it.
//! The format (parsing, serialising) is `credsync_core::sso_cache`, whose names this module
//! re-exports.

pub mod lock;

use std::path::{Path, PathBuf};

pub use credsync_core::sso_cache::*;
use sha1::{Digest, Sha1};

use crate::secret::ExposeSecret;
use crate::write::{Outcome, WriteError, WriteMode, WriteOptions};

/// `<lowercase hex sha1 of key>.json`; key is the sso-session name, or the legacy `sso_start_url`.
pub fn file_name(key: &str) -> String {
    format!("{:x}.json", Sha1::digest(key.as_bytes()))
}

/// Reads `<dir>/<file_name(key)>` (through [`crate::user_file`]).
pub fn read(dir: &Path, key: &str) -> Result<Read, crate::user_file::UserFileError> {
    let kind = crate::user_file::Kind::TokenCache;
    let Some(bytes) = crate::user_file::read(&path(dir, key), kind)? else {
        return Ok(Read::Missing);
    };
    Ok(match parse(&bytes) {
        Ok(token) => Read::Token(token),
        Err(e) => Read::Unparsable(e),
    })
}

/// The path of the cache file for `key`.
pub(crate) fn path(dir: &Path, key: &str) -> PathBuf {
    dir.join(file_name(key))
}

/// Writes `token` to `<dir>/<file_name(key)>` atomically (a new file gets mode 0600).
///
/// The file is left alone ([`Outcome::Unchanged`]) when it already holds a token that expires
/// later than `token` and is not `replaces` (the token `token` was refreshed from): another
/// program refreshed, or the user logged in again, and the caller should read it. A token that
/// is `replaces` is overwritten whatever its expiry: a refresh may issue a token shorter than
/// the one it replaces, and with a rotated refresh token the old one is spent. A file that does not parse is not overwritten, since the AWS CLI may be
/// writing it: that is a [`WriteError::Edit`], and the caller tries again shortly.
///
/// Temp files a killed credsync left beside this cache file are removed first (the start-up
/// cleanup only looks beside the credentials file).
pub(crate) fn write(
    dir: &Path,
    key: &str,
    token: &CachedToken,
    replaces: &CachedToken,
) -> Result<Outcome, WriteError> {
    let target = prepare(dir, key);
    crate::write::update(&target, &TOKEN_FILE, |current| {
        merge_onto(current, token, replaces)
    })
}

/// How a token cache file is written: atomically, a new file 0600 (the login cache's too).
pub(crate) const TOKEN_FILE: WriteOptions = WriteOptions {
    mode: WriteMode::Atomic,
    new_file_mode: 0o600,
};

/// The path of session `key`'s cache file, with the temp files a killed credsync left beside it
/// removed.
fn prepare(dir: &Path, key: &str) -> PathBuf {
    without_stale_temps(path(dir, key))
}

/// `target`, with the temp files a killed credsync left beside it removed (the start-up
/// cleanup only looks beside the credentials file).
pub(crate) fn without_stale_temps(target: PathBuf) -> PathBuf {
    if let Err(e) = crate::write::remove_stale_temps(&target) {
        tracing::warn!(
            "could not look for stale temp files beside {}: {e}",
            target.display()
        );
    }
    target
}

/// Writes `token` to `<dir>/<file_name(key)>` atomically, whatever the file held: what a new
/// sign-in does (the AWS CLI replaces the file too). A new file gets mode 0600.
pub(crate) fn replace(dir: &Path, key: &str, token: &CachedToken) -> Result<Outcome, WriteError> {
    let target = prepare(dir, key);
    let bytes = to_json(token);
    crate::write::update(&target, &TOKEN_FILE, |_| Ok(Some(bytes.clone())))
}

/// The edit [`write`] makes: the new bytes, `None` to keep a newer token, or why not now.
fn merge_onto(
    current: Option<&[u8]>,
    token: &CachedToken,
    replaces: &CachedToken,
) -> Result<Option<Vec<u8>>, String> {
    if let Some(bytes) = current {
        match parse(bytes) {
            Ok(on_disk)
                if on_disk.expires_at > token.expires_at
                    && on_disk.access_token.expose_secret()
                        != replaces.access_token.expose_secret() =>
            {
                return Ok(None);
            }
            Ok(_) => {}
            Err(e) => {
                return Err(format!(
                    "the token cache file does not parse ({e}); another program may be \
                     writing it, try again shortly"
                ));
            }
        }
    }
    Ok(Some(to_json(token)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// 2026-11-29T15:00:00Z
    const EXPIRES: u64 = 1_795_964_400;

    /// What botocore's `SSOTokenProvider` writes after a refresh (`_sso_json_dumps`).
    const BOTOCORE: &[u8] = br#"{"startUrl": "https://my-sso-portal.awsapps.com/start", "region": "us-east-1", "accessToken": "fake-access-token-value", "expiresAt": "2026-11-29T15:00:00Z", "clientId": "fake-client-id", "clientSecret": "fake-client-secret-value", "registrationExpiresAt": "2027-01-01T00:00:00Z", "refreshToken": "fake-refresh-token-value"}"#;

    #[test]
    fn file_names_are_sha1_hex() {
        assert_eq!(
            file_name("my-sso"),
            "0ad374308c5a4e22f723adf10145eafad7c4031c.json"
        );
        assert_eq!(
            file_name("https://my-sso-portal.awsapps.com/start"),
            "c7aaaf71fcc8777ae2475525ed049d39fe16c484.json"
        );
        assert_eq!(
            file_name(""),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709.json"
        );
        assert_eq!(
            file_name("café"),
            "f424452a9673918c6f09b0cdd35b20be8e6ae7d7.json"
        );
    }

    #[test]
    fn the_path_is_the_cache_dir_and_the_sha1_file_name() {
        assert_eq!(
            path(Path::new("/h/.aws/sso/cache"), "my-sso"),
            Path::new("/h/.aws/sso/cache/0ad374308c5a4e22f723adf10145eafad7c4031c.json")
        );
    }

    #[test]
    fn read_tells_missing_unparsable_and_token_apart() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(read(dir.path(), "corp").unwrap(), Read::Missing));
        std::fs::write(path(dir.path(), "corp"), &BOTOCORE[..40]).unwrap();
        assert!(matches!(
            read(dir.path(), "corp").unwrap(),
            Read::Unparsable(ParseError::Json(_))
        ));
        std::fs::write(path(dir.path(), "corp"), BOTOCORE).unwrap();
        match read(dir.path(), "corp").unwrap() {
            Read::Token(t) => assert_eq!(t.expires_at, at(EXPIRES)),
            other => panic!("{other:?}"),
        }
        // A directory where the file should be is an I/O error, not "missing".
        std::fs::create_dir(path(dir.path(), "dir")).unwrap();
        assert!(read(dir.path(), "dir").is_err());
    }

    #[test]
    fn write_edit_keeps_a_newer_token_and_waits_out_a_partial_file() {
        let ours = parse(BOTOCORE).unwrap();
        let base =
            parse(br#"{"accessToken": "base", "expiresAt": "2026-11-29T23:30:00Z"}"#).unwrap();
        let merge = |current: Option<&[u8]>| merge_onto(current, &ours, &base);
        assert_eq!(merge(None).unwrap(), Some(BOTOCORE.to_vec()));
        let older = br#"{"accessToken": "old", "expiresAt": "2026-11-29T14:00:00Z"}"#;
        assert_eq!(merge(Some(older)).unwrap(), Some(BOTOCORE.to_vec()));
        assert_eq!(merge(Some(BOTOCORE)).unwrap(), Some(BOTOCORE.to_vec()));
        // Another program's token that lasts longer: kept.
        let newer = br#"{"accessToken": "new", "expiresAt": "2026-11-29T23:00:00Z"}"#;
        assert_eq!(merge(Some(newer)).unwrap(), None);
        // The very token ours was refreshed from, though it lasts longer: replaced (its
        // refresh token may be spent).
        let replaced = br#"{"accessToken": "base", "expiresAt": "2026-11-29T23:30:00Z"}"#;
        assert_eq!(merge(Some(replaced)).unwrap(), Some(BOTOCORE.to_vec()));
        let e = merge(Some(&BOTOCORE[..60])).unwrap_err();
        assert!(
            e.contains("try again shortly") && !e.contains("fake"),
            "{e}"
        );
    }
}
