//! The `aws login` cache (`~/.aws/login/cache/<sha256>.json`, or `$AWS_LOGIN_CACHE_DIRECTORY`)
//! on disk: file names, reading an entry, and the writes credsync makes to it. The format
//! (parsing, serialising) is `credsync_core::login_cache`, whose names this module re-exports.
//!
//! botocore's `LoginCredentialsLoader` names the file after the lowercase hex SHA-256 of the
//! profile's `login_session` (an IAM or root ARN).
//!
//! botocore writes the file in place (`O_WRONLY|O_CREAT`, truncate, write) and takes no lock, so
//! a reader can catch it half-written: a parse failure is "read again shortly". credsync writes
//! it atomically (temp file and rename), only over the entry it renewed
//! ([`write_renewed`]), holding the session's lock file beside it ([`lock_path`]) so that two
//! credsync processes never spend one refresh token twice. Parse errors never quote the file.

use std::path::{Path, PathBuf};

pub use credsync_core::login_cache::*;
use sha2::{Digest, Sha256};

use crate::config::Env;
use crate::secret::SecretString;
use crate::write::{Outcome, WriteError, WriteOptions};

/// `<lowercase hex sha256 of the login_session>.json`, botocore's `generate_login_cache_key`.
pub fn file_name(session: &str) -> String {
    let hex: String = Sha256::digest(session.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{hex}.json")
}

/// The cache directory as botocore's `get_login_token_cache_directory` finds it:
/// `$AWS_LOGIN_CACHE_DIRECTORY` (variables and `~` expanded), else `~/.aws/login/cache`.
pub fn dir(env: &Env) -> PathBuf {
    match env.vars.get("AWS_LOGIN_CACHE_DIRECTORY") {
        Some(d) => PathBuf::from(crate::config::expand_like_botocore(d, env)),
        None => env.home.join(".aws/login/cache"),
    }
}

/// The path of session `session`'s cache file.
pub fn path(dir: &Path, session: &str) -> PathBuf {
    dir.join(file_name(session))
}

/// The lock file credsync holds while it renews or signs in to `session`: `<file>.lock`. The
/// AWS CLI never looks at it, and its writes to the entry cannot disturb it.
pub(crate) fn lock_path(dir: &Path, session: &str) -> PathBuf {
    let mut name = file_name(session);
    name.push_str(".lock");
    dir.join(name)
}

/// What reading an entry found.
#[derive(Debug)]
pub enum Read {
    /// No file: never signed in, or signed out (`aws logout`).
    Missing,
    /// The file did not parse; it may be half-written. Try again shortly.
    Unparsable(ParseError),
    Token(Box<LoginToken>),
}

/// Reads session `session`'s entry in `dir` (through [`crate::user_file`]).
pub fn read(dir: &Path, session: &str) -> Result<Read, crate::user_file::UserFileError> {
    let kind = crate::user_file::Kind::LoginCache;
    let Some(bytes) = crate::user_file::read(&path(dir, session), kind)? else {
        return Ok(Read::Missing);
    };
    Ok(match parse(&bytes) {
        Ok(t) => Read::Token(Box::new(t)),
        Err(e) => Read::Unparsable(e),
    })
}

/// How an entry is written: as an SSO token, atomically, a new file 0600 (botocore creates it
/// 0600 too).
const ENTRY: WriteOptions = crate::sso_cache::TOKEN_FILE;

/// The path of `session`'s entry, with the temp files a killed credsync left beside it removed.
fn prepare(dir: &Path, session: &str) -> PathBuf {
    crate::sso_cache::without_stale_temps(path(dir, session))
}

/// Writes `token`, renewed from the entry that held refresh token `renewed_from`, over that
/// entry atomically. The file is left alone ([`Outcome::Unchanged`]) when it no longer holds
/// `renewed_from`: the user signed in again (another entry) or out (no file), and that wins. A
/// file that does not parse is not overwritten (the AWS CLI may be writing it): an
/// [`WriteError::Edit`], to try again shortly.
pub(crate) fn write_renewed(
    dir: &Path,
    session: &str,
    token: &LoginToken,
    renewed_from: &SecretString,
) -> Result<Outcome, WriteError> {
    let target = prepare(dir, session);
    let bytes = to_json(token);
    crate::write::update(&target, &ENTRY, |current| match current.map(parse) {
        None => Ok(None),
        Some(Ok(on_disk)) if on_disk.holds(renewed_from) => Ok(Some(bytes.clone())),
        Some(Ok(_)) => Ok(None),
        Some(Err(e)) => Err(format!(
            "{e}; another program may be writing it, try again shortly"
        )),
    })
}

/// Writes `token` whatever the file held: what a new sign-in does (`aws login` replaces the
/// entry too). The directory is created 0700 when missing.
pub(crate) fn replace(
    dir: &Path,
    session: &str,
    token: &LoginToken,
) -> Result<Outcome, WriteError> {
    create_dir(dir).map_err(|source| WriteError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let target = prepare(dir, session);
    let bytes = to_json(token);
    crate::write::update(&target, &ENTRY, |_| Ok(Some(bytes.clone())))
}

/// Creates `dir` (and its parents) 0700 when missing.
pub(crate) fn create_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::ExposeSecret;

    /// What `aws login` (2.36.7) writes (secrets fake).
    const CLI: &str = r#"{"accessToken": {"accessKeyId": "ASIAFAKE1", "secretAccessKey": "fake-secret-1", "sessionToken": "fake-session-1", "accountId": "111122223333", "expiresAt": "2026-12-07T16:15:00Z"}, "tokenType": "aws_sigv4", "clientId": "arn:aws:signin:::devtools/same-device", "refreshToken": "fake-refresh-1", "idToken": "a.b.c", "dpopKey": "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"}"#;

    #[test]
    fn the_file_is_named_after_the_sha256_of_the_session() {
        // hashlib.sha256(b"arn:aws:iam::111122223333:user/alice").hexdigest()
        assert_eq!(
            file_name("arn:aws:iam::111122223333:user/alice"),
            "5778c30d3fe8c123cb2ab0d5a82c81b6fdcedfb868a6625f6f5bf6f05a7f129b.json"
        );
        let env = Env {
            home: "/home/u".into(),
            vars: [("AWS_LOGIN_CACHE_DIRECTORY".to_owned(), "~/lc".to_owned())].into(),
        };
        assert_eq!(dir(&env), Path::new("/home/u/lc"));
        let env = Env {
            home: "/home/u".into(),
            vars: Default::default(),
        };
        assert_eq!(dir(&env), Path::new("/home/u/.aws/login/cache"));
    }

    #[test]
    fn a_renewal_is_written_only_over_the_entry_it_renewed() {
        let d = tempfile::tempdir().unwrap();
        let session = "arn:aws:iam::111122223333:user/alice";
        let old = parse(CLI.as_bytes()).unwrap();
        replace(d.path(), session, &old).unwrap();
        let mut new = old.clone();
        new.refresh_token = SecretString::from("fake-refresh-2".to_owned());
        let r = write_renewed(d.path(), session, &new, &old.refresh_token).unwrap();
        assert_eq!(r, Outcome::Written);
        // A third entry (another sign-in) on disk: a late renewal from the first loses.
        let late = write_renewed(d.path(), session, &old, &old.refresh_token).unwrap();
        assert_eq!(late, Outcome::Unchanged);
        match read(d.path(), session).unwrap() {
            Read::Token(t) => assert_eq!(t.refresh_token.expose_secret(), "fake-refresh-2"),
            other => panic!("{other:?}"),
        }
        // Signed out (no file): not brought back.
        std::fs::remove_file(path(d.path(), session)).unwrap();
        let gone = write_renewed(d.path(), session, &new, &new.refresh_token).unwrap();
        assert_eq!(gone, Outcome::Unchanged);
        assert!(matches!(read(d.path(), session).unwrap(), Read::Missing));
        // Half-written: not overwritten, try again.
        std::fs::write(path(d.path(), session), &CLI[..40]).unwrap();
        let torn = write_renewed(d.path(), session, &new, &new.refresh_token);
        assert!(matches!(torn, Err(WriteError::Edit { .. })), "{torn:?}");
    }
}
