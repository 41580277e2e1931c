//! The `aws login` cache (`~/.aws/login/cache/<sha256>.json`, or `$AWS_LOGIN_CACHE_DIRECTORY`)
//! in the AWS CLI v2 / botocore format: file names, parsing, serialising with unknown fields
//! kept, and the writes credsync makes to it.
//!
//! botocore's `LoginCredentialsLoader` names the file after the lowercase hex SHA-256 of the
//! profile's `login_session` (an IAM or root ARN). `aws login` writes `accessToken` (an object:
//! `accessKeyId`, `secretAccessKey`, `sessionToken`, `accountId`, `expiresAt`), `tokenType`,
//! `clientId`, `refreshToken`, `idToken` and `dpopKey` (a SEC1 `EC PRIVATE KEY` PEM);
//! `LoginCredentialFetcher` needs `accessToken`, `refreshToken`, `dpopKey` and `clientId`, and
//! after a refresh replaces `accessToken` and `refreshToken` and writes the whole entry back with
//! `json.dumps` (`", "` and `": "` separators, `expiresAt` as `%Y-%m-%dT%H:%M:%SZ`). [`to_json`]
//! writes the same layout, unknown fields kept.
//!
//! botocore writes the file in place (`O_WRONLY|O_CREAT`, truncate, write) and takes no lock, so
//! a reader can catch it half-written: a parse failure is "read again shortly". credsync writes
//! it atomically (temp file and rename), only over the entry it renewed
//! ([`write_renewed`]), holding the session's lock file beside it ([`lock_path`]) so that two
//! credsync processes never spend one refresh token twice. Parse errors never quote the file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::config::Env;
use crate::secret::{ExposeSecret, SecretString};
use crate::timefmt;
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

/// One login session's cache entry. `Debug` hides the secrets.
#[derive(Clone)]
pub struct LoginToken {
    pub access_key_id: SecretString,
    pub secret_access_key: SecretString,
    pub session_token: SecretString,
    /// `accessToken.accountId`: the account of the signed-in user.
    pub account_id: Option<String>,
    /// `accessToken.expiresAt`: when the credentials expire.
    pub expires_at: SystemTime,
    pub token_type: Option<String>,
    pub client_id: String,
    pub refresh_token: SecretString,
    pub id_token: Option<SecretString>,
    /// The DPoP key the refresh token is bound to (SEC1 PEM).
    pub dpop_key: SecretString,
    /// Other fields of `accessToken`, as found.
    pub other_access: Map<String, Value>,
    /// Every other top-level field, as found.
    pub other: Map<String, Value>,
}

impl LoginToken {
    /// The credentials it holds.
    pub fn credentials(&self) -> crate::secret::Credentials {
        crate::secret::Credentials {
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
            session_token: Some(self.session_token.clone()),
            expiration: Some(self.expires_at),
            // `accessToken.accountId`: what botocore's LoginProvider gives as the account.
            account_id: self.account_id.clone(),
        }
    }

    /// Whether this entry holds refresh token `refresh`.
    pub(crate) fn holds(&self, refresh: &SecretString) -> bool {
        self.refresh_token.expose_secret() == refresh.expose_secret()
    }
}

impl fmt::Debug for LoginToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let other: Vec<&str> = self.other.keys().map(String::as_str).collect();
        f.debug_struct("LoginToken")
            .field("account_id", &self.account_id)
            .field("expires_at", &timefmt::rfc3339(self.expires_at))
            .field("client_id", &self.client_id)
            .field("secrets", &"[REDACTED]")
            .field("other_fields", &other)
            .finish()
    }
}

/// Why an entry did not parse. Names fields, never values.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("the login cache entry is not a JSON object (it may be half-written)")]
    NotJson,
    #[error("the login cache entry has no {0}")]
    Missing(&'static str),
    #[error("the login cache entry's {0} is not a string")]
    NotString(&'static str),
    #[error("the login cache entry's accessToken.expiresAt is not a timestamp")]
    BadExpiry,
}

const ACCESS_TOKEN: &str = "accessToken";
const TOKEN_TYPE: &str = "tokenType";
const CLIENT_ID: &str = "clientId";
const REFRESH_TOKEN: &str = "refreshToken";
const ID_TOKEN: &str = "idToken";
const DPOP_KEY: &str = "dpopKey";
const TOP: [&str; 6] = [
    ACCESS_TOKEN,
    TOKEN_TYPE,
    CLIENT_ID,
    REFRESH_TOKEN,
    ID_TOKEN,
    DPOP_KEY,
];

const ACCESS_KEY_ID: &str = "accessKeyId";
const SECRET_ACCESS_KEY: &str = "secretAccessKey";
const SESSION_TOKEN: &str = "sessionToken";
const ACCOUNT_ID: &str = "accountId";
const EXPIRES_AT: &str = "expiresAt";
const INNER: [&str; 5] = [
    ACCESS_KEY_ID,
    SECRET_ACCESS_KEY,
    SESSION_TOKEN,
    ACCOUNT_ID,
    EXPIRES_AT,
];

/// Parses a cache entry.
pub fn parse(bytes: &[u8]) -> Result<LoginToken, ParseError> {
    let Ok(Value::Object(mut top)) = serde_json::from_slice::<Value>(bytes) else {
        return Err(ParseError::NotJson);
    };
    let Some(Value::Object(mut access)) = top.remove(ACCESS_TOKEN) else {
        return Err(ParseError::Missing(ACCESS_TOKEN));
    };
    fn take(m: &mut Map<String, Value>, k: &'static str) -> Result<Option<String>, ParseError> {
        match m.remove(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ParseError::NotString(k)),
        }
    }
    fn need(m: &mut Map<String, Value>, k: &'static str) -> Result<String, ParseError> {
        take(m, k)?.ok_or(ParseError::Missing(k))
    }
    let secret = |s: String| SecretString::from(s);
    let expires = need(&mut access, EXPIRES_AT)?;
    let token = LoginToken {
        access_key_id: secret(need(&mut access, ACCESS_KEY_ID)?),
        secret_access_key: secret(need(&mut access, SECRET_ACCESS_KEY)?),
        session_token: secret(need(&mut access, SESSION_TOKEN)?),
        account_id: take(&mut access, ACCOUNT_ID)?,
        expires_at: timefmt::parse(&expires).ok_or(ParseError::BadExpiry)?,
        token_type: take(&mut top, TOKEN_TYPE)?,
        client_id: need(&mut top, CLIENT_ID)?,
        refresh_token: secret(need(&mut top, REFRESH_TOKEN)?),
        id_token: take(&mut top, ID_TOKEN)?.map(secret),
        dpop_key: secret(need(&mut top, DPOP_KEY)?),
        other_access: access,
        other: top,
    };
    Ok(token)
}

/// A field to serialise: a string, or a JSON value kept as found.
enum Field<'a> {
    Str(&'a str),
    Json(&'a Value),
    Object(Ordered<'a>),
}

impl Serialize for Field<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Str(s) => serializer.serialize_str(s),
            Field::Json(v) => v.serialize(serializer),
            Field::Object(o) => o.serialize(serializer),
        }
    }
}

struct Ordered<'a>(Vec<(&'a str, Field<'a>)>);

impl Serialize for Ordered<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// `(key, value)` for each present field of `known`, then the unknown ones of `other` (sorted
/// by name; the typed fields win over a stray duplicate).
fn fields<'a>(
    known: Vec<(&'a str, Option<Field<'a>>)>,
    other: &'a Map<String, Value>,
    names: &[&str],
) -> Ordered<'a> {
    let mut out: Vec<(&str, Field<'_>)> = known
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect();
    for (k, v) in other {
        if !names.contains(&k.as_str()) {
            out.push((k, Field::Json(v)));
        }
    }
    Ordered(out)
}

/// Serialises an entry the way botocore writes it: its fields in the order `aws login` writes
/// them, Python's separators, `expiresAt` in whole seconds; unknown fields follow.
pub fn to_json(t: &LoginToken) -> Vec<u8> {
    let expires = timefmt::rfc3339(t.expires_at);
    let access = fields(
        vec![
            (
                ACCESS_KEY_ID,
                Some(Field::Str(t.access_key_id.expose_secret())),
            ),
            (
                SECRET_ACCESS_KEY,
                Some(Field::Str(t.secret_access_key.expose_secret())),
            ),
            (
                SESSION_TOKEN,
                Some(Field::Str(t.session_token.expose_secret())),
            ),
            (ACCOUNT_ID, t.account_id.as_deref().map(Field::Str)),
            (EXPIRES_AT, Some(Field::Str(&expires))),
        ],
        &t.other_access,
        &INNER,
    );
    let top = fields(
        vec![
            (ACCESS_TOKEN, Some(Field::Object(access))),
            (TOKEN_TYPE, t.token_type.as_deref().map(Field::Str)),
            (CLIENT_ID, Some(Field::Str(&t.client_id))),
            (
                REFRESH_TOKEN,
                Some(Field::Str(t.refresh_token.expose_secret())),
            ),
            (
                ID_TOKEN,
                t.id_token.as_ref().map(|s| Field::Str(s.expose_secret())),
            ),
            (DPOP_KEY, Some(Field::Str(t.dpop_key.expose_secret()))),
        ],
        &t.other,
        &TOP,
    );
    crate::sso_cache::python_json(&top)
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

    /// What `aws login` (2.36.7) writes, with its order and separators (secrets fake).
    const CLI: &str = r#"{"accessToken": {"accessKeyId": "ASIAFAKE1", "secretAccessKey": "fake-secret-1", "sessionToken": "fake-session-1", "accountId": "111122223333", "expiresAt": "2026-12-07T16:15:00Z"}, "tokenType": "aws_sigv4", "clientId": "arn:aws:signin:::devtools/same-device", "refreshToken": "fake-refresh-1", "idToken": "a.b.c", "dpopKey": "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"}"#;

    #[test]
    fn the_clis_entry_round_trips_byte_for_byte() {
        let t = parse(CLI.as_bytes()).unwrap();
        assert_eq!(t.account_id.as_deref(), Some("111122223333"));
        assert_eq!(timefmt::rfc3339(t.expires_at), "2026-12-07T16:15:00Z");
        assert_eq!(String::from_utf8(to_json(&t)).unwrap(), CLI);
    }

    #[test]
    fn unknown_fields_are_kept_and_required_ones_named() {
        let with = CLI.replacen("{\"accessToken\"", "{\"zExtra\": [1], \"accessToken\"", 1);
        let t = parse(with.as_bytes()).unwrap();
        let out = String::from_utf8(to_json(&t)).unwrap();
        assert!(out.ends_with(r#", "zExtra": [1]}"#), "{out}");
        let without = CLI.replace("\"dpopKey\"", "\"other\"");
        assert_eq!(
            parse(without.as_bytes()).unwrap_err(),
            ParseError::Missing("dpopKey")
        );
        assert_eq!(parse(b"{\"accessT").unwrap_err(), ParseError::NotJson);
        let debug = format!("{t:?}");
        for secret in ["fake-secret-1", "fake-session-1", "fake-refresh-1", "AAAA"] {
            assert!(!debug.contains(secret), "{debug}");
        }
    }

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
