//! The SSO-OIDC client registration cache, exactly as the AWS CLI v2 keeps it, so that
//! `credsync login`, `aws sso login` and botocore share one registration.
//!
//! The file is `<cache dir>/<sha1>.json` beside the tokens; the SHA-1 is of
//! `json.dumps({"tool": "botocore", "startUrl": …, "region": …, "scopes": <list or null>,
//! "session_name": <name or null>}, sort_keys=True)` with Python's default separators and
//! `ensure_ascii` (botocore's `_registration_cache_key`). The file holds `clientId`,
//! `clientSecret`, `expiresAt`, and for an authorization-code registration `scopes` and
//! `grantTypes`, written by `json.dumps` in that order (the device flow's registration has no
//! `grantTypes`, and `scopes` only when the session asks for some).
//!
//! A registration is reused while it has at least 15 minutes left (botocore's window) and was
//! made for the flow at hand: one whose `grantTypes` include `authorization_code` serves the
//! authorization-code flow only, any other the device flow only (botocore's rule: older CLIs
//! wrote no `grantTypes`).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use sha1::{Digest, Sha1};

use crate::secret::{ExposeSecret, SecretString};
use crate::timefmt;
use crate::write::{WriteError, WriteOptions};

/// Less than this left and a registration is registered again (botocore's `_EXPIRY_WINDOW`).
pub(crate) const EXPIRY_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The grant types of an authorization-code registration, in the AWS CLI's order.
pub(crate) const AUTH_CODE_GRANT_TYPES: [&str; 2] = ["authorization_code", "refresh_token"];

/// The scope an authorization-code registration asks for when the session names none.
pub(crate) const DEFAULT_SCOPE: &str = "sso:account:access";

/// Which sign-in a registration serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// Authorization code with PKCE (a loopback redirect).
    AuthorizationCode,
    /// Device authorization (a code the user enters).
    DeviceCode,
}

/// One client registration. `Debug` hides the secret.
#[derive(Clone)]
pub(crate) struct Registration {
    pub(crate) client_id: String,
    pub(crate) client_secret: SecretString,
    pub(crate) expires_at: SystemTime,
    pub(crate) scopes: Option<Vec<String>>,
    pub(crate) grant_types: Option<Vec<String>>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[REDACTED]")
            .field("expires_at", &timefmt::rfc3339(self.expires_at))
            .field("scopes", &self.scopes)
            .field("grant_types", &self.grant_types)
            .finish()
    }
}

impl Registration {
    /// Whether this registration serves an authorization-code sign-in (botocore's
    /// `_is_registration_for_auth_code`).
    pub(crate) fn is_for_auth_code(&self) -> bool {
        self.grant_types
            .as_ref()
            .is_some_and(|g| g.iter().any(|t| t == "authorization_code"))
    }

    /// Whether this registration can be reused for `grant` at `now`.
    pub(crate) fn usable_for(&self, grant: Grant, now: SystemTime) -> bool {
        let left = self.expires_at.duration_since(now).unwrap_or_default();
        left >= EXPIRY_WINDOW && self.is_for_auth_code() == (grant == Grant::AuthorizationCode)
    }
}

/// What names a registration in the cache: the sign-in's start URL, SSO region, scopes (as
/// configured: `None` when the session sets no `sso_registration_scopes`, and always `None`
/// for a legacy profile) and sso-session name (`None` for a legacy profile).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Key<'a> {
    pub(crate) start_url: &'a str,
    pub(crate) region: &'a str,
    pub(crate) scopes: Option<&'a [String]>,
    pub(crate) session_name: Option<&'a str>,
}

impl Key<'_> {
    /// botocore's `json.dumps(args, sort_keys=True)` of this key.
    pub(crate) fn python_json(&self) -> String {
        let mut out = String::from("{");
        out.push_str("\"region\": ");
        py_str(&mut out, self.region);
        out.push_str(", \"scopes\": ");
        match self.scopes {
            Some(s) => py_list(&mut out, s.iter().map(String::as_str)),
            None => out.push_str("null"),
        }
        out.push_str(", \"session_name\": ");
        match self.session_name {
            Some(s) => py_str(&mut out, s),
            None => out.push_str("null"),
        }
        out.push_str(", \"startUrl\": ");
        py_str(&mut out, self.start_url);
        out.push_str(", \"tool\": \"botocore\"}");
        out
    }

    /// `<lowercase hex sha1 of the key>.json`.
    pub(crate) fn file_name(&self) -> String {
        format!("{:x}.json", Sha1::digest(self.python_json().as_bytes()))
    }

    /// The registration file for this key in `cache_dir`.
    pub(crate) fn path(&self, cache_dir: &Path) -> PathBuf {
        cache_dir.join(self.file_name())
    }
}

/// Appends `s` as Python's `json.dumps` writes a string (`ensure_ascii`: every non-ASCII
/// character as `\uXXXX`, lower-case hex, surrogate pairs beyond the BMP).
fn py_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
    }
    out.push('"');
}

fn py_list<'a>(out: &mut String, items: impl Iterator<Item = &'a str>) {
    out.push('[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        py_str(out, item);
    }
    out.push(']');
}

/// The file's bytes, as the AWS CLI's `json.dumps` writes them (no final newline).
pub(crate) fn to_json(reg: &Registration) -> Vec<u8> {
    let mut out = String::from("{\"clientId\": ");
    py_str(&mut out, &reg.client_id);
    out.push_str(", \"clientSecret\": ");
    py_str(&mut out, reg.client_secret.expose_secret());
    out.push_str(", \"expiresAt\": ");
    py_str(&mut out, &timefmt::rfc3339(reg.expires_at));
    if let Some(scopes) = &reg.scopes {
        out.push_str(", \"scopes\": ");
        py_list(&mut out, scopes.iter().map(String::as_str));
    }
    if let Some(grants) = &reg.grant_types {
        out.push_str(", \"grantTypes\": ");
        py_list(&mut out, grants.iter().map(String::as_str));
    }
    out.push('}');
    out.into_bytes()
}

/// Why a registration file could not be used. Never quotes the file (it holds a secret).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum ParseError {
    #[error("not valid JSON: {0}")]
    Json(String),
    #[error("missing or malformed field {0}")]
    Field(&'static str),
}

/// Parses a registration file.
pub(crate) fn parse(bytes: &[u8]) -> Result<Registration, ParseError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| ParseError::Json(e.to_string()))?;
    let s = |k: &'static str| v.get(k).and_then(Value::as_str).ok_or(ParseError::Field(k));
    let list = |k: &'static str| -> Result<Option<Vec<String>>, ParseError> {
        match v.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| i.as_str().map(str::to_owned).ok_or(ParseError::Field(k)))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(ParseError::Field(k)),
        }
    };
    Ok(Registration {
        client_id: s("clientId")?.to_owned(),
        client_secret: s("clientSecret")?.to_owned().into(),
        expires_at: timefmt::parse(s("expiresAt")?).ok_or(ParseError::Field("expiresAt"))?,
        scopes: list("scopes")?,
        grant_types: list("grantTypes")?,
    })
}

/// The cached registration for `key`, when there is one that parses. A missing, unreadable or
/// malformed file is `None`: the caller registers again and replaces it, as botocore does.
pub(crate) fn read(cache_dir: &Path, key: &Key<'_>) -> Option<Registration> {
    let kind = crate::user_file::Kind::Registration;
    let bytes = match crate::user_file::read(&key.path(cache_dir), kind) {
        Ok(bytes) => bytes?,
        Err(e) => {
            tracing::debug!("{e}; registering again");
            return None;
        }
    };
    match parse(&bytes) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::debug!(
                "the client registration {} does not parse ({e}); registering again",
                key.path(cache_dir).display()
            );
            None
        }
    }
}

/// Writes `reg` as the registration for `key` (atomically, a new file 0600).
pub(crate) fn write(cache_dir: &Path, key: &Key<'_>, reg: &Registration) -> Result<(), WriteError> {
    let bytes = to_json(reg);
    crate::write::update(&key.path(cache_dir), &WriteOptions::default(), |_| {
        Ok(Some(bytes.clone()))
    })
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn key_is_botocores_sorted_json_with_python_separators() {
        // Reference values: python3 -c 'import json,hashlib; a={...};
        // print(json.dumps(a, sort_keys=True)); print(hashlib.sha1(...).hexdigest())'
        let scopes = vec!["sso:account:access".to_owned()];
        let key = Key {
            start_url: "https://my-sso-portal.awsapps.com/start",
            region: "us-east-1",
            scopes: Some(&scopes),
            session_name: Some("my-sso"),
        };
        assert_eq!(
            key.python_json(),
            r#"{"region": "us-east-1", "scopes": ["sso:account:access"], "session_name": "my-sso", "startUrl": "https://my-sso-portal.awsapps.com/start", "tool": "botocore"}"#
        );
        let legacy = Key {
            start_url: "https://my-sso-portal.awsapps.com/start",
            region: "eu-west-1",
            scopes: None,
            session_name: None,
        };
        assert_eq!(
            legacy.python_json(),
            r#"{"region": "eu-west-1", "scopes": null, "session_name": null, "startUrl": "https://my-sso-portal.awsapps.com/start", "tool": "botocore"}"#
        );
        assert_eq!(
            key.file_name(),
            "c5cfae6e3e4f067423a532368c8b514b6a4b0ace.json"
        );
    }

    #[test]
    fn strings_are_escaped_like_ensure_ascii() {
        let mut out = String::new();
        py_str(&mut out, "caf\u{e9} \"q\" \\ \n \u{1} \u{1F600}");
        assert_eq!(out, r#""caf\u00e9 \"q\" \\ \n \u0001 \ud83d\ude00""#);
    }

    fn auth_code_reg(expires: u64) -> Registration {
        Registration {
            client_id: "fake-client".into(),
            client_secret: "fake-client-secret-value".to_owned().into(),
            expires_at: at(expires),
            scopes: Some(vec![DEFAULT_SCOPE.into()]),
            grant_types: Some(AUTH_CODE_GRANT_TYPES.map(String::from).to_vec()),
        }
    }

    #[test]
    fn file_is_the_clis_layout_and_reads_back() {
        let reg = auth_code_reg(1_798_761_600);
        let text = String::from_utf8(to_json(&reg)).unwrap();
        assert_eq!(
            text,
            r#"{"clientId": "fake-client", "clientSecret": "fake-client-secret-value", "expiresAt": "2027-01-01T00:00:00Z", "scopes": ["sso:account:access"], "grantTypes": ["authorization_code", "refresh_token"]}"#
        );
        let back = parse(text.as_bytes()).unwrap();
        assert_eq!(back.client_id, "fake-client");
        assert_eq!(back.expires_at, reg.expires_at);
        assert!(back.is_for_auth_code());
        // What an older CLI wrote for the device flow (JSONFileCache's `%Z`: "UTC").
        let device = parse(
            br#"{"clientId": "c", "clientSecret": "s", "expiresAt": "2027-01-01T00:00:00UTC"}"#,
        )
        .unwrap();
        assert_eq!(device.expires_at, reg.expires_at);
        assert!(!device.is_for_auth_code());
        assert!(!format!("{back:?}").contains("fake-client-secret-value"));
    }

    #[test]
    fn reuse_needs_15_minutes_and_the_right_grant() {
        let reg = auth_code_reg(10_000);
        assert!(reg.usable_for(Grant::AuthorizationCode, at(10_000 - 15 * 60)));
        assert!(!reg.usable_for(Grant::AuthorizationCode, at(10_000 - 15 * 60 + 1)));
        assert!(!reg.usable_for(Grant::DeviceCode, at(0)));
        let mut device = reg.clone();
        device.grant_types = None;
        assert!(device.usable_for(Grant::DeviceCode, at(0)));
        assert!(!device.usable_for(Grant::AuthorizationCode, at(0)));
    }

    #[test]
    fn malformed_files_say_which_field_and_never_the_secret() {
        for (bytes, want) in [
            (&b"{\"clientId\": 1}"[..], ParseError::Field("clientId")),
            (
                br#"{"clientId": "c", "clientSecret": "fake-secret-x", "expiresAt": "soon"}"#,
                ParseError::Field("expiresAt"),
            ),
            (
                br#"{"clientId": "c", "clientSecret": "s", "expiresAt": "2027-01-01T00:00:00Z", "grantTypes": "x"}"#,
                ParseError::Field("grantTypes"),
            ),
        ] {
            let e = parse(bytes).unwrap_err();
            assert_eq!(e, want);
            assert!(!e.to_string().contains("fake-secret-x"));
        }
        assert!(matches!(parse(b"{\"clientId\""), Err(ParseError::Json(_))));
    }

    #[test]
    fn written_files_are_0600_and_replace_the_old_one() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = Key {
            start_url: "https://x.awsapps.com/start",
            region: "us-east-1",
            scopes: None,
            session_name: Some("s"),
        };
        assert!(read(dir.path(), &key).is_none());
        write(dir.path(), &key, &auth_code_reg(1)).unwrap();
        write(dir.path(), &key, &auth_code_reg(2)).unwrap();
        let path = key.path(dir.path());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read(dir.path(), &key).unwrap().expires_at, at(2));
        std::fs::write(&path, b"{half").unwrap();
        assert!(read(dir.path(), &key).is_none());
    }
}
