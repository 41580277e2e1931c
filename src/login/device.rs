//! Device authorization (RFC 8628), the sign-in that works where no browser can open on this
//! machine (over SSH, in a container) and the only one for legacy `sso_start_url` profiles:
//! `StartDeviceAuthorization`, then the verification URL and user code shown, then
//! `CreateToken` (`urn:ietf:params:oauth:grant-type:device_code`) every `interval` seconds
//! until the user approves. `AuthorizationPending` polls again; `SlowDown` adds 5 seconds to
//! the interval for the rest of the sign-in; `ExpiredToken` and `AccessDenied` stop it.
//!
//! [`next_wait`] is the pure schedule; [`run`] the loop around the SDK. The device code is a
//! secret (it is what the token is claimed with): it is never shown or logged.

use std::time::Duration;

use aws_sdk_ssooidc::error::SdkError;
use aws_sdk_ssooidc::operation::create_token::CreateTokenError;

use super::opener::Opener;
use super::{Granted, LoginError, aws_error, granted};
use crate::process::Runner;
use crate::secret::ExposeSecret;

/// The grant type of a device-code `CreateToken`.
pub(crate) const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Added to the interval on every `SlowDown` (RFC 8628, section 3.5).
pub(crate) const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// The interval when the service gives none (RFC 8628).
pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// How a poll came back, for the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Poll {
    /// Not approved yet.
    Pending,
    /// Too fast: wait longer from now on.
    SlowDown,
}

/// The wait before the next poll, after a poll that came back `poll` with `interval` in force.
pub(crate) fn next_wait(interval: Duration, poll: Poll) -> Duration {
    match poll {
        Poll::Pending => interval,
        Poll::SlowDown => interval + SLOW_DOWN_STEP,
    }
}

/// The interval the service asked for (`interval`, seconds; 0 or less when it sent none).
pub(crate) fn first_interval(interval: i32) -> Duration {
    u64::try_from(interval)
        .ok()
        .filter(|s| *s > 0)
        .map_or(DEFAULT_INTERVAL, Duration::from_secs)
}

/// Runs the device flow with `registration` for `start_url` and returns the token answer.
pub(super) async fn run(
    client: &aws_sdk_ssooidc::Client,
    registration: &super::registration::Registration,
    start_url: &str,
    label: &str,
    opener: &Opener,
    runner: &dyn Runner,
    say: &dyn Fn(&str),
) -> Result<Granted, LoginError> {
    let auth = client
        .start_device_authorization()
        .client_id(&registration.client_id)
        .client_secret(registration.client_secret.expose_secret())
        .start_url(start_url)
        .send()
        .await
        .map_err(|e| aws_error("StartDeviceAuthorization", e))?;
    let (Some(device_code), Some(user_code), Some(uri)) = (
        auth.device_code(),
        auth.user_code(),
        auth.verification_uri(),
    ) else {
        return Err(LoginError::Malformed("StartDeviceAuthorization"));
    };
    let complete = auth.verification_uri_complete().unwrap_or(uri);
    say(&format!(
        "To sign in to {label}, open this page (on any device) and check that it shows the code \
         {user_code}:\n\n    {complete}\n\nor open {uri} and enter {user_code}.\n"
    ));
    if let Err(e) = opener.open(runner, complete) {
        tracing::debug!("could not open a browser ({e})");
    }
    let lifetime = u64::try_from(auth.expires_in())
        .ok()
        .filter(|s| *s > 0)
        .map_or(super::TIME_LIMIT, Duration::from_secs);
    let deadline = tokio::time::Instant::now() + lifetime;
    let mut wait = first_interval(auth.interval());
    loop {
        if tokio::time::Instant::now() + wait > deadline {
            return Err(LoginError::TimedOut(lifetime));
        }
        tokio::time::sleep(wait).await;
        let answer = client
            .create_token()
            .grant_type(GRANT_TYPE)
            .client_id(&registration.client_id)
            .client_secret(registration.client_secret.expose_secret())
            .device_code(device_code)
            .send()
            .await;
        let poll = match answer {
            Ok(out) => return granted(&out),
            Err(SdkError::ServiceError(ctx)) => match ctx.err() {
                CreateTokenError::AuthorizationPendingException(_) => Poll::Pending,
                CreateTokenError::SlowDownException(_) => Poll::SlowDown,
                CreateTokenError::ExpiredTokenException(_) => {
                    return Err(LoginError::DeviceCodeExpired);
                }
                CreateTokenError::AccessDeniedException(_) => {
                    return Err(LoginError::Denied);
                }
                _ => {
                    return Err(aws_error("CreateToken", SdkError::ServiceError(ctx)));
                }
            },
            Err(e) => return Err(aws_error("CreateToken", e)),
        };
        if poll == Poll::SlowDown {
            tracing::debug!(
                "SSO-OIDC asked to slow down; polling every {:?}",
                wait + SLOW_DOWN_STEP
            );
        }
        wait = next_wait(wait, poll);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_down_adds_five_seconds_for_good_and_pending_keeps_the_pace() {
        let mut wait = first_interval(1);
        assert_eq!(wait, Duration::from_secs(1));
        let mut waits = Vec::new();
        for poll in [Poll::Pending, Poll::SlowDown, Poll::Pending, Poll::SlowDown] {
            wait = next_wait(wait, poll);
            waits.push(wait.as_secs());
        }
        assert_eq!(waits, [1, 6, 6, 11]);
        assert_eq!(first_interval(0), DEFAULT_INTERVAL);
        assert_eq!(first_interval(-3), DEFAULT_INTERVAL);
    }
}
