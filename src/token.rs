//! Refreshing SSO access tokens: when a refresh is due, SSO-OIDC `CreateToken`
//! (`grant_type=refresh_token`), and writing the new token back to the token cache.
//!
//! credsync refreshes `token_refresh_before` ahead of expiry (30 min by default), earlier than
//! botocore's 15-minute window, so that botocore (in containers, on the host) never races it:
//! refresh tokens can rotate, and of two refreshers racing one loses the session.
//!
//! The merge of a `CreateToken` answer into a token ([`apply_answer`]) is pure: `accessToken`
//! and `expiresAt = now + expiresIn` are replaced, `refreshToken` when a new one comes, and
//! every other field (client registration, region, start URL, unknown fields) is kept. The
//! network call ([`refresh`]) and the write-back ([`store`], [`refresh_and_store`]) are thin
//! edges around it. Errors never carry a token, refresh token or client secret: the SSO-OIDC
//! server's own descriptions are not quoted either, only its error codes.

use std::path::Path;
use std::time::{Duration, SystemTime};

use aws_sdk_ssooidc::error::SdkError;
use aws_sdk_ssooidc::operation::create_token::{CreateTokenError, CreateTokenOutput};

use crate::aws::{self, Reading, ResolveError};
use crate::secret::{ExposeSecret, SecretString};
use crate::sso_cache::lock::{LockError, SessionLock};
use crate::sso_cache::{self, CachedToken};
use crate::token_policy;
use crate::write::{Outcome, WriteError};

/// The service name in errors.
const SERVICE: &str = "SSO-OIDC";

/// How long a refresh waits for a sign-in of the same session (`credsync login`) before it
/// gives up for now and tries again later.
const REFRESH_LOCK_WAIT: Duration = Duration::from_secs(5);

/// `token` with a `CreateToken` answer merged in: `access` replaces `accessToken`, `expiresAt`
/// becomes `now + expires_in` (in whole seconds, as the cache file holds it), `new_refresh` replaces `refreshToken` when given (the old one
/// is kept otherwise); every other field is kept as it was.
pub(crate) fn apply_answer(
    token: &CachedToken,
    access: SecretString,
    expires_in: Duration,
    new_refresh: Option<SecretString>,
    now: SystemTime,
) -> CachedToken {
    let mut out = token.clone();
    out.access_token = access;
    out.expires_at = whole_seconds(now + expires_in);
    if let Some(r) = new_refresh {
        out.refresh_token = Some(r);
    }
    out
}

/// `t` rounded down to a whole second: the cache file has no fractions, so the token in
/// memory and the one on disk compare equal.
fn whole_seconds(t: SystemTime) -> SystemTime {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => SystemTime::UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        Err(_) => t,
    }
}

/// The parts of a `CreateToken` answer credsync uses: the access token, its lifetime and a
/// rotated refresh token (an empty one counts as none). A missing or empty `accessToken`, or
/// an `expiresIn` that is not positive, is a malformed answer: [`ResolveError::Transient`].
pub(crate) fn answer_parts(
    out: &CreateTokenOutput,
) -> Result<(SecretString, Duration, Option<SecretString>), ResolveError> {
    let malformed = |what: &str| ResolveError::Transient {
        service: SERVICE,
        message: format!("CreateToken answered without {what}"),
        retry_after: None,
    };
    let access = out
        .access_token()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| malformed("an accessToken"))?;
    let expires_in = u64::try_from(out.expires_in())
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(|| malformed("a positive expiresIn"))?;
    let refresh = out
        .refresh_token()
        .filter(|s| !s.is_empty())
        .map(|s| SecretString::from(s.to_owned()));
    Ok((
        SecretString::from(access.to_owned()),
        Duration::from_secs(expires_in),
        refresh,
    ))
}

/// Refreshes `token` through `CreateToken(grant_type=refresh_token)` and returns the new token
/// (see [`apply_answer`]); nothing is written. `login_command` goes into
/// [`ResolveError::LoginRequired`].
///
/// A token that cannot be refreshed at `now` fails with `LoginRequired` without a network call.
/// `InvalidGrantException`, `ExpiredTokenException`, `InvalidClientException`,
/// `UnauthorizedClientException` and `AccessDeniedException` are `LoginRequired` too (do not
/// retry); 429 and `SlowDownException` are `Throttled` (with `Retry-After`); 5xx, network
/// errors, timeouts and malformed answers are `Transient`; other refusals are `Refused`.
pub(crate) async fn refresh(
    client: &aws_sdk_ssooidc::Client,
    token: &CachedToken,
    login_command: &str,
    now: SystemTime,
) -> Result<CachedToken, ResolveError> {
    let login = |reason: String| ResolveError::LoginRequired {
        reason,
        login_command: login_command.to_owned(),
    };
    if let Some(reason) = token_policy::explain_token(token, now) {
        return Err(login(reason));
    }
    let (Some(refresh_token), Some(client_id), Some(client_secret)) = (
        token.refresh_token.as_ref(),
        token.client_id.as_ref(),
        token.client_secret.as_ref(),
    ) else {
        // The policy checked all three.
        return Err(login("the cached SSO token cannot be refreshed".to_owned()));
    };
    let out = client
        .create_token()
        .grant_type("refresh_token")
        .client_id(client_id)
        .client_secret(client_secret.expose_secret())
        .refresh_token(refresh_token.expose_secret())
        .send()
        .await
        .map_err(|e| classify_oidc_error(e, login_command))?;
    let (access, expires_in, new_refresh) = answer_parts(&out)?;
    Ok(apply_answer(token, access, expires_in, new_refresh, now))
}

/// Writes a refreshed `token` back to `<cache_dir>/<sha1(cache_key)>.json` with
/// [`sso_cache::write`] (atomic, same name, botocore's format) and returns the token now in
/// force: `token`, or, when the file already holds a token expiring later that is not
/// `replaces` (the token on disk `token` was refreshed from: another program refreshed, or the
/// user logged in again), that one.
///
/// A cache file that does not parse (the AWS CLI may be writing it) is left alone:
/// [`ResolveError::TokenUnreadable`], retryable. Other write failures are
/// [`ResolveError::Transient`] with the path and the cause. Either way the caller still holds
/// `token`, which it may use and try to store again.
pub(crate) fn store(
    cache_dir: &Path,
    cache_key: &str,
    token: &CachedToken,
    replaces: &CachedToken,
) -> Result<CachedToken, ResolveError> {
    let path = sso_cache::path(cache_dir, cache_key);
    match sso_cache::write(cache_dir, cache_key, token, replaces) {
        Ok(Outcome::Written) => Ok(token.clone()),
        Ok(Outcome::Unchanged) => match sso_cache::read(cache_dir, cache_key) {
            Ok(sso_cache::Read::Token(on_disk)) if on_disk.expires_at >= token.expires_at => {
                Ok(on_disk)
            }
            // Unchanged because the file already held exactly these bytes, or it changed again
            // since: ours is valid either way.
            _ => Ok(token.clone()),
        },
        Err(WriteError::Edit { message, .. }) => Err(ResolveError::TokenUnreadable {
            path,
            reason: message,
        }),
        Err(e) => Err(ResolveError::Transient {
            service: "SSO token cache",
            message: format!("refreshed the SSO token but could not save it: {e}"),
            retry_after: None,
        }),
    }
}

/// A token SSO-OIDC has just issued, and whether it reached the token cache file.
///
/// A refresh token can be single-use (SSO-OIDC may rotate it): once `CreateToken` has answered,
/// the old refresh token may be spent, and the new token is the session's only way forward. So
/// a failed save (a full disk, say) never drops it: the caller keeps `token` in memory, uses
/// it, and tries the save again.
#[derive(Debug)]
pub struct Refreshed {
    /// The token now in force: the new one, or a later one another program wrote meanwhile.
    pub token: CachedToken,
    /// `Err` when `token` is not on disk yet: why the save failed.
    pub saved: Result<(), ResolveError>,
}

/// [`refresh`], then [`store`], holding the session's sign-in lock (`sso_cache::lock`): a
/// sign-in in progress makes it a retryable [`ResolveError::Transient`] after a few seconds.
/// When SSO-OIDC refuses a refreshable token as `LoginRequired` (say, the AWS CLI refreshed
/// first and the refresh token rotated), the cache file is read again: a token there that
/// expires later than `token` and is still valid at `now` is returned instead. A token that
/// cannot be refreshed at all fails at once, without a call. On any error the cache file is
/// untouched; a refresh whose save failed is `Ok`, with the save's error in
/// [`Refreshed::saved`].
pub async fn refresh_and_store(
    client: &aws_sdk_ssooidc::Client,
    cache_dir: &Path,
    cache_key: &str,
    token: &CachedToken,
    login_command: &str,
    now: SystemTime,
) -> Result<Refreshed, ResolveError> {
    refresh_and_replace(
        client,
        cache_dir,
        cache_key,
        token,
        token,
        login_command,
        now,
    )
    .await
}

/// [`refresh_and_store`] of `token`, which is not on disk: `replaces` is (the token on disk it
/// was refreshed from, in a chain of refreshes whose saves failed).
pub(crate) async fn refresh_and_replace(
    client: &aws_sdk_ssooidc::Client,
    cache_dir: &Path,
    cache_key: &str,
    token: &CachedToken,
    replaces: &CachedToken,
    login_command: &str,
    now: SystemTime,
) -> Result<Refreshed, ResolveError> {
    // One sign-in or refresh of a session at a time (see `sso_cache::lock`). A lock that cannot
    // even be opened (a read-only cache directory) does not stop the refresh.
    let _lock = match SessionLock::acquire(cache_dir, cache_key, REFRESH_LOCK_WAIT, || {}).await {
        Ok(lock) => Some(lock),
        Err(LockError::Busy { .. }) => {
            return Err(ResolveError::Transient {
                service: "SSO token cache",
                message: "a sign-in to this session is in progress (`credsync login`); trying \
                          again shortly"
                    .to_owned(),
                retry_after: Some(REFRESH_LOCK_WAIT),
            });
        }
        Err(e) => {
            tracing::warn!("refreshing without the session lock: {e}");
            None
        }
    };
    match refresh(client, token, login_command, now).await {
        Ok(new) => Ok(match store(cache_dir, cache_key, &new, replaces) {
            Ok(token) => Refreshed {
                token,
                saved: Ok(()),
            },
            Err(e) => Refreshed {
                token: new,
                saved: Err(e),
            },
        }),
        // Refused by SSO-OIDC (not refusable before asking): maybe someone else won a race.
        Err(e @ ResolveError::LoginRequired { .. }) if token_policy::can_refresh(token, now) => {
            match sso_cache::read(cache_dir, cache_key) {
                Ok(sso_cache::Read::Token(on_disk))
                    if on_disk.expires_at > token.expires_at && !on_disk.is_expired(now) =>
                {
                    Ok(Refreshed {
                        token: on_disk,
                        saved: Ok(()),
                    })
                }
                _ => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

fn classify_oidc_error(err: SdkError<CreateTokenError>, login_command: &str) -> ResolveError {
    aws::classify(SERVICE, err, |e, code, status| match e {
        CreateTokenError::InvalidGrantException(_)
        | CreateTokenError::ExpiredTokenException(_)
        | CreateTokenError::InvalidClientException(_)
        | CreateTokenError::UnauthorizedClientException(_)
        | CreateTokenError::AccessDeniedException(_) => Reading::LoginRequired {
            reason: format!("SSO-OIDC refused to refresh the SSO token ({code})"),
            login_command: login_command.to_owned(),
        },
        CreateTokenError::SlowDownException(_) => Reading::Throttled,
        CreateTokenError::InternalServerException(_) => Reading::ServerError,
        // The server's description is not quoted: only its code and status.
        _ => Reading::ByStatus(format!("CreateToken failed with HTTP {status}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// 2026-11-29T15:00:00Z
    const EXPIRES: u64 = 1_795_964_400;
    const MIN: u64 = 60;

    const CACHE: &[u8] = br#"{"startUrl": "https://my-sso-portal.awsapps.com/start", "region": "eu-west-1", "accessToken": "fake-access-token-value", "expiresAt": "2026-11-29T15:00:00Z", "clientId": "fake-client-id", "clientSecret": "fake-client-secret-value", "registrationExpiresAt": "2027-01-01T00:00:00Z", "refreshToken": "fake-refresh-token-value", "idToken": {"nested": [1, "x"]}, "zz": null}"#;

    const SECRETS: [&str; 3] = [
        "fake-access-token-value",
        "fake-client-secret-value",
        "fake-refresh-token-value",
    ];

    fn token() -> CachedToken {
        sso_cache::parse(CACHE).unwrap()
    }

    /// When the engine refreshes `token`, read from disk (its lifetime unknown, no refresh by
    /// credsync yet): the schedule's own rule.
    fn refresh_due_at(token: &CachedToken, before: Duration) -> SystemTime {
        crate::schedule::token_refresh_at(token.expires_at, None, before, None)
    }

    /// The engine's rule: due once the time is at or past the due time, so a timer set for
    /// the due time finds the refresh due when it fires.
    fn needs_refresh(token: &CachedToken, now: SystemTime, before: Duration) -> bool {
        now >= refresh_due_at(token, before)
    }

    #[test]
    fn refresh_is_due_once_at_most_before_is_left() {
        let t = token();
        let before = Duration::from_secs(30 * MIN);
        assert_eq!(refresh_due_at(&t, before), at(EXPIRES - 30 * MIN));
        assert!(!needs_refresh(&t, at(EXPIRES - 30 * MIN - 1), before));
        assert!(needs_refresh(&t, at(EXPIRES - 30 * MIN), before));
        assert!(needs_refresh(&t, at(EXPIRES - 1), before));
        assert!(needs_refresh(&t, at(EXPIRES + 3600), before));
        // A 15-minute window (botocore's) falls due later than credsync's 30 minutes.
        let botocore = Duration::from_secs(15 * MIN);
        assert!(!needs_refresh(&t, at(EXPIRES - 20 * MIN), botocore));
        assert!(needs_refresh(&t, at(EXPIRES - 20 * MIN), before));
        // No window: due exactly at expiry.
        assert_eq!(refresh_due_at(&t, Duration::ZERO), at(EXPIRES));
        assert!(!needs_refresh(&t, at(EXPIRES - 1), Duration::ZERO));
        assert!(needs_refresh(&t, at(EXPIRES), Duration::ZERO));
    }

    #[test]
    fn due_time_saturates_at_the_epoch() {
        let mut t = token();
        t.expires_at = at(100);
        assert_eq!(
            refresh_due_at(&t, Duration::from_secs(3600)),
            SystemTime::UNIX_EPOCH
        );
        assert!(needs_refresh(
            &t,
            SystemTime::UNIX_EPOCH,
            Duration::from_secs(3600)
        ));
    }

    #[test]
    fn answer_replaces_access_and_expiry_and_keeps_everything_else() {
        let t = token();
        let now = at(EXPIRES - 10 * MIN);
        let new = apply_answer(
            &t,
            "fake-access-new".into(),
            Duration::from_secs(3600),
            None,
            now,
        );
        assert_eq!(new.access_token.expose_secret(), "fake-access-new");
        assert_eq!(new.expires_at, now + Duration::from_secs(3600));
        assert_eq!(
            new.refresh_token.as_ref().map(|s| s.expose_secret()),
            Some("fake-refresh-token-value")
        );
        let out = String::from_utf8(sso_cache::to_json(&new)).unwrap();
        assert_eq!(
            out,
            r#"{"startUrl": "https://my-sso-portal.awsapps.com/start", "region": "eu-west-1", "accessToken": "fake-access-new", "expiresAt": "2026-11-29T15:50:00Z", "clientId": "fake-client-id", "clientSecret": "fake-client-secret-value", "registrationExpiresAt": "2027-01-01T00:00:00Z", "refreshToken": "fake-refresh-token-value", "idToken": {"nested": [1, "x"]}, "zz": null}"#
        );
    }

    #[test]
    fn new_expiry_is_in_whole_seconds_like_the_file() {
        let now = at(EXPIRES) + Duration::from_millis(999);
        let new = apply_answer(&token(), "a".into(), Duration::from_secs(60), None, now);
        assert_eq!(new.expires_at, at(EXPIRES + 60));
        let back = sso_cache::parse(&sso_cache::to_json(&new)).unwrap();
        assert_eq!(back.expires_at, new.expires_at);
    }

    #[test]
    fn answer_with_a_rotated_refresh_token_stores_it() {
        let now = at(EXPIRES - 10 * MIN);
        let new = apply_answer(
            &token(),
            "fake-access-new".into(),
            Duration::from_secs(28800),
            Some("fake-refresh-new".into()),
            now,
        );
        let out = String::from_utf8(sso_cache::to_json(&new)).unwrap();
        assert!(
            out.contains(r#""refreshToken": "fake-refresh-new""#),
            "{out}"
        );
        assert!(!out.contains("fake-refresh-token-value"), "{out}");
        assert!(
            out.contains(r#""expiresAt": "2026-11-29T22:50:00Z""#),
            "{out}"
        );
        assert!(
            out.contains(r#""registrationExpiresAt": "2027-01-01T00:00:00Z""#),
            "{out}"
        );
        assert!(out.contains(r#""idToken": {"nested": [1, "x"]}"#), "{out}");
    }

    fn output(access: Option<&str>, expires_in: i32, refresh: Option<&str>) -> CreateTokenOutput {
        let mut b = CreateTokenOutput::builder().expires_in(expires_in);
        if let Some(a) = access {
            b = b.access_token(a);
        }
        if let Some(r) = refresh {
            b = b.refresh_token(r);
        }
        b.build()
    }

    #[test]
    fn answer_parts_reject_malformed_answers() {
        let (a, d, r) = answer_parts(&output(Some("fake-a"), 3600, Some("fake-r"))).unwrap();
        assert_eq!(
            (a.expose_secret(), d, r.as_ref().map(|s| s.expose_secret())),
            ("fake-a", Duration::from_secs(3600), Some("fake-r"))
        );
        let (_, _, r) = answer_parts(&output(Some("fake-a"), 1, Some(""))).unwrap();
        assert!(r.is_none(), "an empty refresh token is no rotation");
        for (out, what) in [
            (output(None, 3600, None), "accessToken"),
            (output(Some(""), 3600, None), "accessToken"),
            (output(Some("fake-a"), 0, None), "expiresIn"),
            (output(Some("fake-a"), -5, None), "expiresIn"),
        ] {
            match answer_parts(&out) {
                Err(e @ ResolveError::Transient { .. }) => {
                    assert!(e.to_string().contains(what), "{e}");
                    assert!(e.is_retryable());
                    assert!(!e.to_string().contains("fake-"), "{e}");
                }
                Err(e) => panic!("{what}: {e:?}"),
                Ok(_) => panic!("{what}: accepted"),
            }
        }
    }

    #[test]
    fn says_why_a_token_cannot_be_refreshed_without_values() {
        let now = at(EXPIRES);
        assert_eq!(token_policy::explain_token(&token(), now), None);
        type Strip = fn(&mut CachedToken);
        let cases: [(Strip, &str); 5] = [
            (|t| t.refresh_token = None, "no refresh token"),
            (|t| t.client_id = None, "missing clientId"),
            (
                |t| {
                    t.client_id = None;
                    t.client_secret = None
                },
                "missing clientId and clientSecret",
            ),
            (
                |t| t.registration_expires_at = None,
                "no registrationExpiresAt",
            ),
            (
                |t| t.registration_expires_at = Some(at(EXPIRES)),
                "registration expired at 2026-11-29T15:00:00Z",
            ),
        ];
        for (strip, expect) in cases {
            let mut t = token();
            strip(&mut t);
            let reason = token_policy::explain_token(&t, now).expect(expect);
            assert!(reason.contains(expect), "{reason}");
            assert!(!token_policy::can_refresh(&t, now), "{expect}");
            for s in SECRETS {
                assert!(!reason.contains(s), "{reason}");
            }
        }
    }

    #[test]
    fn store_writes_and_prefers_a_newer_token_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let t = token();
        let newer = apply_answer(
            &t,
            "fake-access-new".into(),
            Duration::from_secs(3600),
            None,
            at(EXPIRES),
        );
        // No file: written.
        let got = store(dir.path(), "corp", &newer, &t).unwrap();
        assert_eq!(got.access_token.expose_secret(), "fake-access-new");
        let path = sso_cache::path(dir.path(), "corp");
        assert_eq!(std::fs::read(&path).unwrap(), sso_cache::to_json(&newer));
        // An older token than the file's, refreshed from another: the file wins and is
        // returned, untouched.
        let got = store(dir.path(), "corp", &t, &t).unwrap();
        assert_eq!(got.access_token.expose_secret(), "fake-access-new");
        assert_eq!(std::fs::read(&path).unwrap(), sso_cache::to_json(&newer));
        // A shorter token refreshed from the very one on disk replaces it: its refresh token
        // may have been spent by that refresh.
        let shorter = apply_answer(
            &newer,
            "fake-access-short".into(),
            Duration::from_secs(60),
            None,
            at(EXPIRES),
        );
        let got = store(dir.path(), "corp", &shorter, &newer).unwrap();
        assert_eq!(got.access_token.expose_secret(), "fake-access-short");
        assert_eq!(std::fs::read(&path).unwrap(), sso_cache::to_json(&shorter));
        // A half-written file is left alone and reported as unreadable (retryable).
        std::fs::write(&path, &CACHE[..50]).unwrap();
        let e = store(dir.path(), "corp", &newer, &t).unwrap_err();
        assert!(
            matches!(e, ResolveError::TokenUnreadable { .. }) && e.is_retryable(),
            "{e:?}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), &CACHE[..50]);
        for s in SECRETS.iter().chain(&["fake-access-new"]) {
            assert!(!e.to_string().contains(s), "{e}");
        }
    }
}
