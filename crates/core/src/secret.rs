//! Secret values and the credentials made of them.
//!
//! Every secret credsync handles (keys, session tokens, SSO access and refresh tokens, client
//! secrets) lives in a [`SecretString`], whose `Debug` prints `[REDACTED]`. Nothing else holds
//! them as a plain `String`; code that must write one out calls `expose_secret()` at that spot.

use std::fmt;
use std::time::SystemTime;

pub use secrecy::{ExposeSecret, SecretString};

/// A set of temporary AWS credentials. `Debug` shows only the expiry.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: SecretString,
    pub secret_access_key: SecretString,
    pub session_token: Option<SecretString>,
    /// `None` only for long-term static keys (a `source_profile` with keys in the credentials
    /// file).
    pub expiration: Option<SystemTime>,
    /// The AWS account the credentials belong to, when credsync knows it: the profile's
    /// `sso_account_id` for SSO role credentials, the account of the assumed-role ARN STS
    /// answers with for a role, `aws_account_id` (or `AWS_ACCOUNT_ID`) next to static keys.
    /// Written as `aws_account_id` in the credentials file and `AccountId` in the container
    /// view, where botocore reads it (for account-based endpoints). Any source of credentials
    /// that knows its account sets it here; `None` writes neither. Not a secret: `Debug` shows
    /// it.
    pub account_id: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &"[REDACTED]")
            .field("secret_access_key", &"[REDACTED]")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("expiration", &self.expiration.map(crate::timefmt::rfc3339))
            .field("account_id", &self.account_id)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret_values() {
        let c = Credentials {
            access_key_id: "ASIAFAKEKEYID".into(),
            secret_access_key: "fake-secret-value".into(),
            session_token: Some("fake-session-token".into()),
            expiration: Some(SystemTime::UNIX_EPOCH),
            account_id: Some("123456789012".into()),
        };
        let shown = format!("{c:?} {:?}", c.secret_access_key);
        for secret in ["ASIAFAKEKEYID", "fake-secret-value", "fake-session-token"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("1970-01-01T00:00:00Z"), "{shown}");
        assert!(shown.contains("123456789012"), "{shown}");
    }
}
