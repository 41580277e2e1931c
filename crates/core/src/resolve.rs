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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_network_errors_and_unreadable_tokens_are_retried_with_the_servers_wait() {
        let wait = Some(Duration::from_secs(30));
        let throttled = ResolveError::Throttled {
            service: "SSO",
            code: "TooManyRequestsException".to_owned(),
            retry_after: wait,
        };
        let transient = ResolveError::Transient {
            service: "STS",
            message: "timeout".to_owned(),
            retry_after: wait,
        };
        let unreadable = ResolveError::TokenUnreadable {
            path: PathBuf::from("/h/.aws/sso/cache/x.json"),
            reason: "half written".to_owned(),
        };
        for e in [&throttled, &transient] {
            assert!(e.is_retryable(), "{e}");
            assert_eq!(e.retry_after(), wait, "{e}");
        }
        assert!(unreadable.is_retryable());
        assert_eq!(unreadable.retry_after(), None);
        let refused = ResolveError::Refused {
            service: "SSO",
            code: "ForbiddenException".to_owned(),
            message: "no".to_owned(),
        };
        let login = ResolveError::LoginRequired {
            reason: "expired".to_owned(),
            login_command: "credsync login".to_owned(),
        };
        for e in [refused, login, ResolveError::Config("bad".to_owned())] {
            assert!(!e.is_retryable(), "{e}");
            assert_eq!(e.retry_after(), None, "{e}");
        }
    }
}
