//! What resolving a profile to credentials can fail with. The resolving itself (SSO, STS,
//! the SDK) is `credsync::resolve`, at the edge; the machine sees only this error.

use std::path::PathBuf;
use std::time::Duration;

/// Why a profile could not be resolved. Messages never contain a secret.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ResolveError {
    /// The SSO session is over (no token, expired token, token refused): the user must log in.
    #[error("login required: {reason}; run `{login_command}`")]
    LoginRequired {
        reason: String,
        login_command: String,
    },
    /// The token cache file did not parse (the AWS CLI may be writing it right now), or
    /// cannot be read (`reason` names the file).
    #[error("{reason}; trying again shortly")]
    TokenUnreadable { path: PathBuf, reason: String },
    /// The profile cannot work as configured.
    #[error("{0}")]
    Config(String),
    /// AWS asked us to slow down.
    #[error("throttled by {service} ({code})")]
    Throttled {
        service: &'static str,
        code: String,
        retry_after: Option<Duration>,
    },
    /// A network error, a timeout or a 5xx: worth retrying with backoff.
    #[error("{service} unreachable or failing: {message}")]
    Transient {
        service: &'static str,
        message: String,
        retry_after: Option<Duration>,
    },
    /// AWS refused the request (access denied, bad request): retrying will not help.
    #[error("{service} refused the request ({code}): {message}")]
    Refused {
        service: &'static str,
        code: String,
        message: String,
    },
}

impl ResolveError {
    /// Whether trying again (after a backoff) can help.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ResolveError::Throttled { .. }
                | ResolveError::Transient { .. }
                | ResolveError::TokenUnreadable { .. }
        )
    }

    /// The server's `Retry-After`, if it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ResolveError::Throttled { retry_after, .. }
            | ResolveError::Transient { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}
