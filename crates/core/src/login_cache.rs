//! The `aws login` cache entry's format, as the AWS CLI v2 / botocore write it: parsing, and
//! serialising with unknown fields kept. The file's name, its directory and the writes credsync
//! makes to it are the edge's (`credsync::login_cache`).
//!
//! `aws login` writes `accessToken` (an object: `accessKeyId`, `secretAccessKey`,
//! `sessionToken`, `accountId`, `expiresAt`), `tokenType`, `clientId`, `refreshToken`, `idToken`
//! and `dpopKey` (a SEC1 `EC PRIVATE KEY` PEM); botocore's `LoginCredentialFetcher` needs
//! `accessToken`, `refreshToken`, `dpopKey` and `clientId`, and after a refresh replaces
//! `accessToken` and `refreshToken` and writes the whole entry back with `json.dumps` (`", "` and
//! `": "` separators, `expiresAt` as `%Y-%m-%dT%H:%M:%SZ`). [`to_json`] writes the same layout,
//! unknown fields kept. Parse errors never quote the file.

use std::fmt;
use std::time::SystemTime;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Map, Value};

use crate::secret::{ExposeSecret, SecretString};
use crate::timefmt;

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
    pub fn holds(&self, refresh: &SecretString) -> bool {
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
}
