//! Whether credsync can refresh a session's token, why not, and how to say it: the one place
//! that decides it. The engine's state machine, the token refresh, sign-in, doctor, `status`
//! and the notifications all ask here.
//!
//! The rule is botocore's (its SSO token provider refreshes only a token with `refreshToken`,
//! `clientId`, `clientSecret` and a `registrationExpiresAt` still ahead), plus what only credsync
//! knows: a legacy `sso_start_url` profile's token is never refreshed, and a refresh token
//! SSO-OIDC refused is not tried again. Pure: it sees a token's [`TokenShape`] (never a value)
//! and `now`.
//!
//! An `aws login` session ([`why_not_login`]) is botocore's `LoginCredentialFetcher`'s rule: an
//! entry with `accessToken`, `refreshToken`, `dpopKey` and `clientId` is renewed (an entry
//! without them does not parse), and one whose refresh token AWS Sign-In refused is not tried
//! again: the same refusal, the same reasons in words.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::sso_cache::CachedToken;
use crate::timefmt;

/// What of a token decides whether it can be refreshed: which parts it has (never their
/// values), and when its client registration expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenShape {
    /// A legacy profile's (no sso-session).
    pub(crate) legacy: bool,
    pub(crate) refresh_token: bool,
    pub(crate) client_id: bool,
    pub(crate) client_secret: bool,
    pub(crate) registration_expires_at: Option<SystemTime>,
}

impl TokenShape {
    /// The shape of `token` of a session (`legacy`: of a profile without sso-session).
    pub(crate) fn of(token: &CachedToken, legacy: bool) -> TokenShape {
        TokenShape {
            legacy,
            refresh_token: token.refresh_token.is_some(),
            client_id: token.client_id.is_some(),
            client_secret: token.client_secret.is_some(),
            registration_expires_at: token.registration_expires_at,
        }
    }
}

/// Why credsync cannot refresh a session's token itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotRefreshable {
    /// No readable token in the cache: never signed in, or signed out.
    NoToken,
    /// A legacy `sso_start_url` profile (no sso-session): its token is never refreshed.
    Legacy,
    /// The token came without a refresh token.
    NoRefreshToken,
    /// The token has no client registration (`clientId`, `clientSecret`,
    /// `registrationExpiresAt`).
    NoRegistration,
    /// The client registration has expired.
    RegistrationExpired,
    /// SSO-OIDC refused the refresh token: the Identity Center session ended or was revoked.
    RefreshRefused,
}

/// Why a token of `shape` (`None`: no token) cannot be refreshed at `now`, or `None` when it
/// can. `refused`: SSO-OIDC refused this very token's refresh.
pub(crate) fn why_not(
    shape: Option<&TokenShape>,
    refused: bool,
    now: SystemTime,
) -> Option<NotRefreshable> {
    let Some(t) = shape else {
        return Some(NotRefreshable::NoToken);
    };
    if t.legacy {
        Some(NotRefreshable::Legacy)
    } else if refused {
        Some(NotRefreshable::RefreshRefused)
    } else if !t.refresh_token {
        Some(NotRefreshable::NoRefreshToken)
    } else if !t.client_id || !t.client_secret || t.registration_expires_at.is_none() {
        Some(NotRefreshable::NoRegistration)
    } else if t.registration_expires_at.is_some_and(|r| r <= now) {
        Some(NotRefreshable::RegistrationExpired)
    } else {
        None
    }
}

/// Why an `aws login` session cannot be renewed, or `None` when it can: `present`, its cache
/// entry read (with every part a renewal needs); `refused`, AWS Sign-In refused the refresh
/// token the entry holds.
pub fn why_not_login(present: bool, refused: bool) -> Option<NotRefreshable> {
    if !present {
        Some(NotRefreshable::NoToken)
    } else if refused {
        Some(NotRefreshable::RefreshRefused)
    } else {
        None
    }
}

/// Whether `token` can be refreshed through SSO-OIDC at `now`, as botocore decides it (no
/// legacy profile, no refusal known).
pub fn can_refresh(token: &CachedToken, now: SystemTime) -> bool {
    why_not(Some(&TokenShape::of(token, false)), false, now).is_none()
}

/// Why `token` cannot be refreshed at `now`, in a sentence for an error (never a value), or
/// `None` when it can.
pub fn explain_token(token: &CachedToken, now: SystemTime) -> Option<String> {
    let shape = TokenShape::of(token, false);
    why_not(Some(&shape), false, now).map(|why| why.explain(&shape))
}

impl NotRefreshable {
    /// In a few words, for the status table and notifications.
    pub fn describe(self) -> &'static str {
        match self {
            NotRefreshable::NoToken => "not signed in",
            NotRefreshable::Legacy => "a legacy sso_start_url profile cannot be refreshed",
            NotRefreshable::NoRefreshToken => "the sign-in gave no refresh token",
            NotRefreshable::NoRegistration => "the token has no client registration",
            NotRefreshable::RegistrationExpired => "the client registration expired",
            NotRefreshable::RefreshRefused => "the refresh token was refused",
        }
    }

    /// In a sentence for an error or the log, with what the token of `shape` lacks (never a
    /// value).
    pub(crate) fn explain(self, shape: &TokenShape) -> String {
        match self {
            NotRefreshable::NoRefreshToken => {
                "the cached SSO token has no refresh token (a legacy sso_start_url profile, or a \
                 login that did not ask for one), so it cannot be refreshed"
                    .to_owned()
            }
            NotRefreshable::NoRegistration if !shape.client_id || !shape.client_secret => {
                let missing: Vec<&str> = [
                    ("clientId", !shape.client_id),
                    ("clientSecret", !shape.client_secret),
                ]
                .into_iter()
                .filter_map(|(name, absent)| absent.then_some(name))
                .collect();
                format!(
                    "the cached SSO token has no client registration (missing {}), so it cannot \
                     be refreshed",
                    missing.join(" and ")
                )
            }
            NotRefreshable::NoRegistration => {
                "the cached SSO token has no registrationExpiresAt, so it cannot be refreshed"
                    .to_owned()
            }
            NotRefreshable::RegistrationExpired => match shape.registration_expires_at {
                Some(t) => format!(
                    "the SSO-OIDC client registration expired at {}",
                    timefmt::rfc3339(t)
                ),
                None => self.describe().to_owned(),
            },
            other => other.describe().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    const REGISTRATION: u64 = 1_800_000_000;

    fn full() -> TokenShape {
        TokenShape {
            legacy: false,
            refresh_token: true,
            client_id: true,
            client_secret: true,
            registration_expires_at: Some(at(REGISTRATION)),
        }
    }

    #[test]
    fn a_token_with_everything_can_be_refreshed_until_its_registration_expires() {
        let t = full();
        assert_eq!(why_not(Some(&t), false, at(REGISTRATION - 1)), None);
        assert_eq!(
            why_not(Some(&t), false, at(REGISTRATION)),
            Some(NotRefreshable::RegistrationExpired)
        );
        assert_eq!(why_not(None, false, at(0)), Some(NotRefreshable::NoToken));
    }

    #[test]
    fn each_missing_part_has_its_reason_and_the_order_is_legacy_refused_then_parts() {
        let now = at(0);
        type Strip = fn(&mut TokenShape);
        let cases: [(Strip, NotRefreshable, &str); 6] = [
            (
                |t| t.refresh_token = false,
                NotRefreshable::NoRefreshToken,
                "no refresh token",
            ),
            (
                |t| t.client_id = false,
                NotRefreshable::NoRegistration,
                "missing clientId",
            ),
            (
                |t| {
                    t.client_id = false;
                    t.client_secret = false
                },
                NotRefreshable::NoRegistration,
                "missing clientId and clientSecret",
            ),
            (
                |t| t.registration_expires_at = None,
                NotRefreshable::NoRegistration,
                "no registrationExpiresAt",
            ),
            (
                |t| t.registration_expires_at = Some(at(0)),
                NotRefreshable::RegistrationExpired,
                "registration expired at 1970-01-01T00:00:00Z",
            ),
            (|t| t.legacy = true, NotRefreshable::Legacy, "legacy"),
        ];
        for (strip, why, words) in cases {
            let mut t = full();
            strip(&mut t);
            assert_eq!(why_not(Some(&t), false, now), Some(why), "{words}");
            let said = why.explain(&t);
            assert!(said.contains(words), "{said}");
            // A refusal outranks what it lacks, a legacy profile outranks a refusal.
            let refused = why_not(Some(&t), true, now);
            let expect = if t.legacy {
                NotRefreshable::Legacy
            } else {
                NotRefreshable::RefreshRefused
            };
            assert_eq!(refused, Some(expect), "{words}");
        }
    }

    #[test]
    fn a_login_session_is_renewed_while_its_entry_is_there_and_not_refused() {
        assert_eq!(why_not_login(true, false), None);
        assert_eq!(
            why_not_login(true, true),
            Some(NotRefreshable::RefreshRefused)
        );
        assert_eq!(why_not_login(false, true), Some(NotRefreshable::NoToken));
    }

    #[test]
    fn a_cached_token_is_judged_by_its_shape() {
        let text = br#"{"accessToken": "fake-access-token-value", "expiresAt": "2026-11-29T15:00:00Z", "refreshToken": "fake-refresh-token-value", "clientId": "c", "clientSecret": "fake-client-secret-value", "registrationExpiresAt": "2027-01-01T00:00:00Z"}"#;
        let mut token = crate::sso_cache::parse(text).expect("token");
        let now = at(1_795_964_400);
        assert!(can_refresh(&token, now));
        assert_eq!(explain_token(&token, now), None);
        token.client_secret = None;
        assert!(!can_refresh(&token, now));
        let said = explain_token(&token, now).expect("a reason");
        assert!(said.contains("missing clientSecret"), "{said}");
        for secret in ["fake-access-token-value", "fake-refresh-token-value"] {
            assert!(!said.contains(secret), "{said}");
        }
    }
}
