//! What one round did, as `sync` prints it and the daemon logs and answers `refresh` with:
//! per profile tried, its outcome and the state it is left in; per sso-session token looked
//! at, whether it was refreshed, could not be, or ends without a way to refresh it; and the
//! write. Never holds a secret.

use std::time::SystemTime;

use crate::resolve::ResolveError;
use crate::status::State;
use crate::write;

/// One round's report.
#[derive(Debug, Default)]
pub struct Report {
    /// The profiles tried, in the configuration's order.
    pub profiles: Vec<ProfileReport>,
    /// The sso-session tokens refreshed, refused, or ending without a way to refresh them.
    pub sessions: Vec<SessionReport>,
    /// The write that followed, when there was one: what it did, or why it failed.
    pub write: Option<Result<write::Outcome, String>>,
}

/// One profile tried in a round.
#[derive(Debug)]
pub struct ProfileReport {
    /// Its position in the configuration.
    pub index: usize,
    pub source: String,
    pub target: String,
    /// What the refresh gave: the new credentials' expiry (when they have one), or why it failed.
    pub outcome: Result<Option<SystemTime>, ResolveError>,
    /// The state after the round, write included.
    pub state: State,
    pub expires_at: Option<SystemTime>,
    /// The error `status` shows: the refresh's, or the write's.
    pub error: Option<String>,
    /// It failed as it did the last time it was tried: the log has said so already.
    pub repeated: bool,
}

/// One sso-session token a round looked at.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionReport {
    /// The sso-session name, or the start URL of a legacy profile.
    pub(crate) name: String,
    pub(crate) outcome: SessionOutcome,
}

/// What happened to a session's token.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionOutcome {
    /// Refreshed through SSO-OIDC; the new token expires then.
    Refreshed { expires_at: SystemTime },
    /// The refresh was refused or failed. The current token is used until `valid_until` when it
    /// has not expired; without it, the session has ended (the profiles need a login).
    RefreshFailed {
        error: String,
        valid_until: Option<SystemTime>,
        /// It failed as it did the last time: the log has said so already.
        repeated: bool,
    },
    /// The tokens SSO-OIDC issues last `lifetime`, less than twice `before`
    /// (`token_refresh_before`): each is refreshed `lead` (half its lifetime) ahead of its
    /// expiry instead. Said once, and again only after tokens that long were seen.
    ShortLifetime {
        lifetime: std::time::Duration,
        before: std::time::Duration,
        lead: std::time::Duration,
    },
    /// The newest token could not be saved to the cache file: credsync keeps it in memory,
    /// uses it, and tries the save again (said when it starts and when the reason changes).
    NotSaved { error: String },
    /// A token kept in memory has reached the cache file.
    Saved,
    /// The token ends soon and credsync cannot refresh it (why, when known): the user must log
    /// in before `ends_at`.
    CannotRefresh {
        ends_at: SystemTime,
        why: Option<String>,
        login_command: String,
    },
}

impl Report {
    /// Whether the write failed.
    pub fn write_error(&self) -> Option<&str> {
        match &self.write {
            Some(Err(e)) => Some(e),
            _ => None,
        }
    }

    /// Logs what happened to the profiles tried (the daemon's log of a round; the sessions'
    /// tokens are logged by the round itself): a success, and a failure the first time it
    /// happens. A failure that repeats the last one goes to the debug level only, so a file that
    /// stays broken is said once, not at every retry.
    pub fn log_profiles(&self) {
        for r in &self.profiles {
            match (&r.error, r.expires_at) {
                (None, Some(exp)) => {
                    let exp = crate::timefmt::rfc3339(exp);
                    tracing::info!(profile = %r.source, target = %r.target, "refreshed; expires {exp}");
                }
                (err, _) => {
                    let err = err.as_deref().unwrap_or("no credentials");
                    if r.repeated {
                        tracing::debug!(profile = %r.source, "still failing: {err}");
                    } else {
                        tracing::warn!(profile = %r.source, "refresh failed: {err}");
                    }
                }
            }
        }
        if let Some(e) = self.write_error() {
            tracing::error!("{e}");
        }
    }

    /// Logs what happened to the sessions' tokens.
    pub fn log_sessions(&self) {
        for s in &self.sessions {
            s.log();
        }
    }
}

impl SessionReport {
    fn log(&self) {
        let key = &self.name;
        match &self.outcome {
            SessionOutcome::Refreshed { expires_at } => tracing::info!(
                "refreshed the SSO token of {key}; it expires {}",
                crate::timefmt::rfc3339(*expires_at)
            ),
            SessionOutcome::RefreshFailed {
                error,
                repeated: true,
                ..
            } => tracing::debug!("SSO session {key}: still failing: {error}"),
            SessionOutcome::RefreshFailed {
                error,
                valid_until: Some(_),
                ..
            } => tracing::warn!(
                "could not refresh the SSO token of {key} ({error}); using the current one until it expires"
            ),
            SessionOutcome::RefreshFailed {
                error,
                valid_until: None,
                ..
            } => tracing::warn!("SSO session {key}: {error}"),
            SessionOutcome::ShortLifetime {
                lifetime,
                before,
                lead,
            } => tracing::info!(
                "the SSO tokens of {key} last {}, less than twice token_refresh_before ({}): each is refreshed {} before it expires instead",
                humantime::format_duration(*lifetime),
                humantime::format_duration(*before),
                humantime::format_duration(*lead)
            ),
            SessionOutcome::NotSaved { error } => tracing::error!(
                "the new SSO token of {key} is not on disk yet ({error}); credsync keeps it in memory, uses it and tries the save again"
            ),
            SessionOutcome::Saved => {
                tracing::info!("the SSO token of {key} kept in memory is saved to disk now")
            }
            SessionOutcome::CannotRefresh {
                ends_at,
                why,
                login_command,
            } => tracing::warn!(
                "the SSO session {key} ends at {} and credsync cannot refresh it{}; run `{login_command}` before then",
                crate::timefmt::rfc3339(*ends_at),
                why.as_ref().map(|w| format!(" ({w})")).unwrap_or_default()
            ),
        }
    }
}
