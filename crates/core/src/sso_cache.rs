//! The SSO token cache (`~/.aws/sso/cache/<sha1>.json`) in the AWS CLI v2 / botocore format:
//! parsing, and serialising with unknown fields kept. The file's name and path are the edge's
//! (`credsync::sso_cache`).
//!
//! botocore's `SSOTokenLoader` names the file after the SHA-1 of the sso-session name (or of
//! the legacy `sso_start_url`), and its `SSOTokenProvider` reads `accessToken` and `expiresAt`,
//! refreshes with `refreshToken`, `clientId`, `clientSecret` while `registrationExpiresAt` is
//! ahead, and writes the file back with `json.dumps` (`", "` and `": "` separators, timestamps
//! `%Y-%m-%dT%H:%M:%SZ`, no final newline). [`to_json`] writes the same layout, followed by
//! every field this module does not know, as found.
//!
//! The AWS CLI v2 rewrites the file in place, so a reader can catch it half-written: a parse
//! failure means "read again shortly" (`credsync::sso_cache::Read::Unparsable`), never "logged out". Parse errors
//! never quote the file's text, which holds the tokens.

use std::fmt;
use std::io;
use std::time::SystemTime;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Map, Value};

use crate::secret::{ExposeSecret, SecretString};
use crate::timefmt;

/// One cached token. Unknown fields are kept and written back. `Debug` hides the secrets.
#[derive(Clone)]
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

impl CachedToken {
    /// Whether the access token has expired at `now`.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        self.expires_at <= now
    }
}

impl fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |s: &Option<SecretString>| s.as_ref().map(|_| "[REDACTED]");
        // Unknown fields may hold secrets too (an `idToken`, say): show their names only.
        let other: Vec<&str> = self.other.keys().map(String::as_str).collect();
        f.debug_struct("CachedToken")
            .field("access_token", &"[REDACTED]")
            .field("expires_at", &timefmt::rfc3339(self.expires_at))
            .field("refresh_token", &hidden(&self.refresh_token))
            .field("client_id", &self.client_id)
            .field("client_secret", &hidden(&self.client_secret))
            .field(
                "registration_expires_at",
                &self.registration_expires_at.map(timefmt::rfc3339),
            )
            .field("region", &self.region)
            .field("start_url", &self.start_url)
            .field("other_fields", &other)
            .finish()
    }
}

/// What reading a cache file found (the edge reads it).
#[derive(Debug)]
pub enum Read {
    /// No file: the user has not logged in.
    Missing,
    /// The file did not parse; it may be half-written. Try again shortly.
    Unparsable(ParseError),
    Token(CachedToken),
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
    /// A known field of the wrong JSON type (its value is not shown: it may be a secret).
    #[error("field {field} is not {expected}")]
    BadType {
        field: &'static str,
        expected: &'static str,
    },
    /// Valid JSON, but not an object.
    #[error("not a JSON object")]
    NotAnObject,
    /// A token holding control characters, which no HTTP header can carry: not a token AWS
    /// issued (its value is not shown).
    #[error("field {0} holds control characters, so it is not a token AWS issued; sign in again")]
    ControlCharacters(&'static str),
}

const ACCESS_TOKEN: &str = "accessToken";
const EXPIRES_AT: &str = "expiresAt";
const REFRESH_TOKEN: &str = "refreshToken";
const CLIENT_ID: &str = "clientId";
const CLIENT_SECRET: &str = "clientSecret";
const REGISTRATION_EXPIRES_AT: &str = "registrationExpiresAt";
const REGION: &str = "region";
const START_URL: &str = "startUrl";

/// Parses a cache file's bytes.
///
/// `accessToken` and `expiresAt` are required; a known field set to `null` counts as absent;
/// timestamps may be RFC 3339 with `Z`, `UTC` or an offset, with or without fractions.
pub fn parse(bytes: &[u8]) -> Result<CachedToken, ParseError> {
    // serde_json's syntax errors name a line and column only, never the input text.
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| ParseError::Json(e.to_string()))?;
    let Value::Object(mut map) = value else {
        return Err(ParseError::NotAnObject);
    };
    let access_token =
        take_string(&mut map, ACCESS_TOKEN)?.ok_or(ParseError::Missing(ACCESS_TOKEN))?;
    // It goes into an HTTP header, which cannot carry them: say so here, not as a network
    // failure at every call.
    if access_token.chars().any(char::is_control) {
        return Err(ParseError::ControlCharacters(ACCESS_TOKEN));
    }
    let expires_at = take_time(&mut map, EXPIRES_AT)?.ok_or(ParseError::Missing(EXPIRES_AT))?;
    Ok(CachedToken {
        access_token: access_token.into(),
        expires_at,
        refresh_token: take_string(&mut map, REFRESH_TOKEN)?.map(SecretString::from),
        client_id: take_string(&mut map, CLIENT_ID)?,
        client_secret: take_string(&mut map, CLIENT_SECRET)?.map(SecretString::from),
        registration_expires_at: take_time(&mut map, REGISTRATION_EXPIRES_AT)?,
        region: take_string(&mut map, REGION)?,
        start_url: take_string(&mut map, START_URL)?,
        other: map,
    })
}

fn take_string(
    map: &mut Map<String, Value>,
    field: &'static str,
) -> Result<Option<String>, ParseError> {
    match map.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ParseError::BadType {
            field,
            expected: "a string",
        }),
    }
}

fn take_time(
    map: &mut Map<String, Value>,
    field: &'static str,
) -> Result<Option<SystemTime>, ParseError> {
    let Some(text) = take_string(map, field).map_err(|_| ParseError::BadType {
        field,
        expected: "a timestamp string",
    })?
    else {
        return Ok(None);
    };
    match timefmt::parse(&text) {
        Some(t) => Ok(Some(t)),
        None => Err(ParseError::BadTime { field, value: text }),
    }
}

/// One field's value as [`to_json`] writes it: borrowed, so that secrets are not copied.
enum Field<'a> {
    Str(&'a str),
    Json(&'a Value),
}

impl serde::Serialize for Field<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Str(s) => serializer.serialize_str(s),
            Field::Json(v) => v.serialize(serializer),
        }
    }
}

struct Ordered<'a>(Vec<(&'a str, Field<'a>)>);

impl serde::Serialize for Ordered<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// Python's `json.dumps` separators: `", "` between items, `": "` after keys.
struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }
}

/// Serialises a token the way botocore writes it (timestamps `%Y-%m-%dT%H:%M:%SZ`), with
/// unknown fields kept.
///
/// Known fields come first, in botocore's order; unknown fields follow, sorted by name.
/// Timestamps are written in whole seconds (fractions are dropped).
pub fn to_json(token: &CachedToken) -> Vec<u8> {
    let expires_at = timefmt::rfc3339(token.expires_at);
    let registration = token.registration_expires_at.map(timefmt::rfc3339);
    let mut fields: Vec<(&str, Field<'_>)> = Vec::with_capacity(8 + token.other.len());
    let known: [(&str, Option<&str>); 8] = [
        (START_URL, token.start_url.as_deref()),
        (REGION, token.region.as_deref()),
        (ACCESS_TOKEN, Some(token.access_token.expose_secret())),
        (EXPIRES_AT, Some(&expires_at)),
        (CLIENT_ID, token.client_id.as_deref()),
        (
            CLIENT_SECRET,
            token.client_secret.as_ref().map(|s| s.expose_secret()),
        ),
        (REGISTRATION_EXPIRES_AT, registration.as_deref()),
        (
            REFRESH_TOKEN,
            token.refresh_token.as_ref().map(|s| s.expose_secret()),
        ),
    ];
    for (key, value) in known {
        if let Some(v) = value {
            fields.push((key, Field::Str(v)));
        }
    }
    const KNOWN: [&str; 8] = [
        ACCESS_TOKEN,
        EXPIRES_AT,
        REFRESH_TOKEN,
        CLIENT_ID,
        CLIENT_SECRET,
        REGISTRATION_EXPIRES_AT,
        REGION,
        START_URL,
    ];
    for (key, value) in &token.other {
        // The typed fields are the truth; a stray duplicate in `other` is dropped.
        if !KNOWN.contains(&key.as_str()) {
            fields.push((key, Field::Json(value)));
        }
    }
    python_json(&Ordered(fields))
}

/// `value` as Python's `json.dumps` writes it (its separators; fields in `value`'s order).
pub fn python_json(value: &impl Serialize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    // Strings and JSON values written to memory: this cannot fail.
    value
        .serialize(&mut serializer)
        .expect("serialising strings and JSON values into memory cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// 2026-11-29T15:00:00Z
    const EXPIRES: u64 = 1_795_964_400;
    /// 2027-01-01T00:00:00Z
    const REGISTRATION: u64 = 1_798_761_600;

    /// What botocore's `SSOTokenProvider` writes after a refresh (`_sso_json_dumps`).
    const BOTOCORE: &[u8] = br#"{"startUrl": "https://my-sso-portal.awsapps.com/start", "region": "us-east-1", "accessToken": "fake-access-token-value", "expiresAt": "2026-11-29T15:00:00Z", "clientId": "fake-client-id", "clientSecret": "fake-client-secret-value", "registrationExpiresAt": "2027-01-01T00:00:00Z", "refreshToken": "fake-refresh-token-value"}"#;

    const SECRETS: [&str; 3] = [
        "fake-access-token-value",
        "fake-client-secret-value",
        "fake-refresh-token-value",
    ];

    fn secret(s: &Option<SecretString>) -> Option<&str> {
        s.as_ref().map(|s| s.expose_secret())
    }

    #[test]
    fn parses_a_botocore_written_file() {
        let t = parse(BOTOCORE).unwrap();
        assert_eq!(t.access_token.expose_secret(), "fake-access-token-value");
        assert_eq!(t.expires_at, at(EXPIRES));
        assert_eq!(secret(&t.refresh_token), Some("fake-refresh-token-value"));
        assert_eq!(t.client_id.as_deref(), Some("fake-client-id"));
        assert_eq!(secret(&t.client_secret), Some("fake-client-secret-value"));
        assert_eq!(t.registration_expires_at, Some(at(REGISTRATION)));
        assert_eq!(t.region.as_deref(), Some("us-east-1"));
        assert_eq!(
            t.start_url.as_deref(),
            Some("https://my-sso-portal.awsapps.com/start")
        );
        assert!(t.other.is_empty());
    }

    #[test]
    fn writes_exactly_what_botocore_writes() {
        assert_eq!(
            String::from_utf8(to_json(&parse(BOTOCORE).unwrap())).unwrap(),
            std::str::from_utf8(BOTOCORE).unwrap()
        );
    }

    #[test]
    fn parses_a_legacy_cli_file_with_utc_suffix() {
        let t = parse(
            br#"{"startUrl": "https://x.awsapps.com/start", "region": "eu-west-1", "accessToken": "tok", "expiresAt": "2026-11-29T15:00:00UTC"}"#,
        )
        .unwrap();
        assert_eq!(t.expires_at, at(EXPIRES));
        assert!(t.refresh_token.is_none() && t.client_id.is_none() && t.client_secret.is_none());
        assert_eq!(t.registration_expires_at, None);
        assert!(!crate::token_policy::can_refresh(&t, at(0)));
        assert_eq!(
            String::from_utf8(to_json(&t)).unwrap(),
            r#"{"startUrl": "https://x.awsapps.com/start", "region": "eu-west-1", "accessToken": "tok", "expiresAt": "2026-11-29T15:00:00Z"}"#
        );
    }

    #[test]
    fn accepts_other_timestamp_forms() {
        for s in [
            "2026-11-29T15:00:00Z",
            "2026-11-29T15:00:00UTC",
            "2026-11-29T16:00:00+01:00",
            "2026-11-29T15:00:00.000Z",
        ] {
            let json = format!(
                r#"{{"accessToken": "a", "expiresAt": "{s}", "registrationExpiresAt": "{s}"}}"#
            );
            let t = parse(json.as_bytes()).unwrap();
            assert_eq!(
                (t.expires_at, t.registration_expires_at),
                (at(EXPIRES), Some(at(EXPIRES))),
                "{s}"
            );
        }
    }

    #[test]
    fn every_truncation_is_an_error_that_hides_the_tokens() {
        let full = parse(BOTOCORE).unwrap();
        for len in 0..BOTOCORE.len() {
            match parse(&BOTOCORE[..len]) {
                Err(ParseError::Json(message)) => {
                    for s in SECRETS {
                        assert!(!message.contains(s), "{len}: {message}");
                    }
                    assert!(!message.contains("fake"), "{len}: {message}");
                }
                other => panic!("prefix of {len} bytes gave {other:?}"),
            }
        }
        let with_newline = [BOTOCORE, b"\n"].concat();
        let t = parse(&with_newline).unwrap();
        assert_eq!(
            t.access_token.expose_secret(),
            full.access_token.expose_secret()
        );
        assert!(parse(&with_newline[..BOTOCORE.len()]).is_ok());
    }

    #[test]
    fn missing_and_mistyped_fields() {
        assert_eq!(
            parse(br#"{"expiresAt": "2026-11-29T15:00:00Z"}"#).unwrap_err(),
            ParseError::Missing("accessToken")
        );
        assert_eq!(
            parse(br#"{"accessToken": "a"}"#).unwrap_err(),
            ParseError::Missing("expiresAt")
        );
        assert_eq!(
            parse(br#"{"accessToken": null, "expiresAt": "2026-11-29T15:00:00Z"}"#).unwrap_err(),
            ParseError::Missing("accessToken")
        );
        let e = parse(
            br#"{"accessToken": ["fake-access-token-value"], "expiresAt": "2026-11-29T15:00:00Z"}"#,
        )
        .unwrap_err();
        assert_eq!(
            e,
            ParseError::BadType {
                field: "accessToken",
                expected: "a string"
            }
        );
        assert!(!e.to_string().contains("fake"));
        assert_eq!(
            parse(br#"{"accessToken": "a", "expiresAt": 1795964400}"#).unwrap_err(),
            ParseError::BadType {
                field: "expiresAt",
                expected: "a timestamp string"
            }
        );
        assert_eq!(
            parse(br#"{"accessToken": "a", "expiresAt": "tomorrow"}"#).unwrap_err(),
            ParseError::BadTime {
                field: "expiresAt",
                value: "tomorrow".into()
            }
        );
        assert_eq!(
            parse(
                br#"{"accessToken": "a", "expiresAt": "2026-11-29T15:00:00Z", "clientSecret": 7}"#
            )
            .unwrap_err(),
            ParseError::BadType {
                field: "clientSecret",
                expected: "a string"
            }
        );
        // A control character (here a newline, escaped in the JSON) cannot go into the HTTP
        // header the token is sent in: a bad token, named without its value.
        let e = parse(br#"{"accessToken": "fake-access\nx", "expiresAt": "2026-11-29T15:00:00Z"}"#)
            .unwrap_err();
        assert_eq!(e, ParseError::ControlCharacters("accessToken"));
        assert!(!e.to_string().contains("fake"), "{e}");
        assert!(e.to_string().contains("sign in again"), "{e}");
        assert_eq!(parse(b"[]").unwrap_err(), ParseError::NotAnObject);
        assert_eq!(
            parse(br#""fake-access-token-value""#).unwrap_err(),
            ParseError::NotAnObject
        );
        assert!(matches!(parse(b""), Err(ParseError::Json(_))));
        assert!(matches!(parse(b"\xff\xfe"), Err(ParseError::Json(_))));
        // null optional fields are absent
        let t = parse(
            br#"{"accessToken": "a", "expiresAt": "2026-11-29T15:00:00Z", "refreshToken": null}"#,
        )
        .unwrap();
        assert!(t.refresh_token.is_none() && t.other.is_empty());
    }

    #[test]
    fn unknown_fields_survive_to_json() {
        let input = br#"{"accessToken": "a", "expiresAt": "2026-11-29T15:00:00Z", "zeta": {"n": [1, 2.5, null]}, "alpha": true, "idToken": "x"}"#;
        let t = parse(input).unwrap();
        assert_eq!(t.other.len(), 3);
        let out = String::from_utf8(to_json(&t)).unwrap();
        assert_eq!(
            out,
            r#"{"accessToken": "a", "expiresAt": "2026-11-29T15:00:00Z", "alpha": true, "idToken": "x", "zeta": {"n": [1, 2.5, null]}}"#
        );
        assert_eq!(parse(out.as_bytes()).unwrap().other, t.other);
    }

    #[test]
    fn typed_fields_win_over_strays_in_other() {
        let mut t = parse(BOTOCORE).unwrap();
        t.other
            .insert("accessToken".into(), Value::String("stale".into()));
        let out = String::from_utf8(to_json(&t)).unwrap();
        assert_eq!(out.matches("accessToken").count(), 1, "{out}");
        assert!(!out.contains("stale"), "{out}");
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let mut other = Map::new();
        other.insert("custom".into(), serde_json::json!({"a": "b\"c\\d\u{e9}"}));
        let t = CachedToken {
            access_token: "acc\"ess\\\u{e9}".into(),
            expires_at: at(EXPIRES),
            refresh_token: Some("ref".into()),
            client_id: Some("cid".into()),
            client_secret: Some("csec".into()),
            registration_expires_at: Some(at(REGISTRATION)),
            region: Some("ap-southeast-2".into()),
            start_url: Some("https://d-123.awsapps.com/start#/".into()),
            other,
        };
        let back = parse(&to_json(&t)).unwrap();
        assert_eq!(
            back.access_token.expose_secret(),
            t.access_token.expose_secret()
        );
        assert_eq!(back.expires_at, t.expires_at);
        assert_eq!(secret(&back.refresh_token), secret(&t.refresh_token));
        assert_eq!(back.client_id, t.client_id);
        assert_eq!(secret(&back.client_secret), secret(&t.client_secret));
        assert_eq!(back.registration_expires_at, t.registration_expires_at);
        assert_eq!(back.region, t.region);
        assert_eq!(back.start_url, t.start_url);
        assert_eq!(back.other, t.other);
    }

    #[test]
    fn refreshable_only_with_everything_botocore_needs() {
        let t = parse(BOTOCORE).unwrap();
        assert!(crate::token_policy::can_refresh(&t, at(REGISTRATION - 1)));
        assert!(!crate::token_policy::can_refresh(&t, at(REGISTRATION)));
        for strip in [0, 1, 2, 3] {
            let mut u = t.clone();
            match strip {
                0 => u.refresh_token = None,
                1 => u.client_id = None,
                2 => u.client_secret = None,
                _ => u.registration_expires_at = None,
            }
            assert!(!crate::token_policy::can_refresh(&u, at(0)), "{strip}");
        }
    }

    #[test]
    fn expiry() {
        let t = parse(BOTOCORE).unwrap();
        assert!(!t.is_expired(at(EXPIRES - 1)));
        assert!(t.is_expired(at(EXPIRES)));
    }

    #[test]
    fn debug_shows_no_secret() {
        let mut t = parse(BOTOCORE).unwrap();
        t.other.insert(
            "idToken".into(),
            Value::String("fake-id-token-value".into()),
        );
        let shown = format!("{t:?}");
        for s in SECRETS.iter().chain(&["fake-id-token-value"]) {
            assert!(!shown.contains(s), "{shown}");
        }
        assert!(
            shown.contains("2026-11-29T15:00:00Z") && shown.contains("idToken"),
            "{shown}"
        );
    }
}
