//! The SSO token cache (`~/.aws/sso/cache/<sha1>.json`) in the AWS CLI v2 / botocore format:
//! file names, parsing, serialising with unknown fields kept.
//!
//! STUB: the API below is the contract; the body is being written.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::secret::SecretString;

/// `<lowercase hex sha1 of key>.json`; key is the sso-session name, or the legacy `sso_start_url`.
pub fn file_name(key: &str) -> String {
    let _ = key;
    String::new()
}

/// One cached token. Unknown fields are kept and written back.
#[derive(Debug, Clone)]
pub struct CachedToken {
    pub access_token: SecretString,
    pub expires_at: SystemTime,
    pub refresh_token: Option<SecretString>,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    pub registration_expires_at: Option<SystemTime>,
    pub region: Option<String>,
    pub start_url: Option<String>,
    /// Every other field, as found.
    pub other: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    /// Not JSON, or cut short: the AWS CLI writes the file in place, so read again shortly.
    #[error("not valid JSON (it may be half-written): {0}")]
    Json(String),
    #[error("missing field {0}")]
    Missing(&'static str),
    #[error("field {field} is not a timestamp: {value:?}")]
    BadTime { field: &'static str, value: String },
}

/// Parses a cache file's bytes.
pub fn parse(bytes: &[u8]) -> Result<CachedToken, ParseError> {
    let _ = bytes;
    Err(ParseError::Missing("accessToken"))
}

/// Serialises a token the way botocore writes it (timestamps `%Y-%m-%dT%H:%M:%SZ`), with
/// unknown fields kept.
pub fn to_json(token: &CachedToken) -> Vec<u8> {
    let _ = token;
    Vec::new()
}

impl CachedToken {
    /// Whether credsync can refresh this token itself.
    pub fn can_refresh(&self, now: SystemTime) -> bool {
        let _ = now;
        false
    }
}

/// What reading a cache file found.
#[derive(Debug)]
pub enum Read {
    /// No file: the user has not logged in.
    Missing,
    /// The file did not parse; it may be half-written. Try again shortly.
    Unparsable(ParseError),
    Token(CachedToken),
}

/// Reads `<dir>/<file_name(key)>`.
pub fn read(dir: &Path, key: &str) -> std::io::Result<Read> {
    let _ = (dir, key);
    Ok(Read::Missing)
}

/// The path of the cache file for `key`.
pub fn path(dir: &Path, key: &str) -> PathBuf {
    dir.join(file_name(key))
}
