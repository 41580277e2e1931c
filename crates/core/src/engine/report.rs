//! What one round did, as `sync` prints it and the daemon logs and answers `refresh` with:
//! per profile tried, its outcome and the state it is left in; per sso-session token looked
//! at, whether it was refreshed, could not be, or ends without a way to refresh it; and the
//! write. Never holds a secret.

use std::time::SystemTime;

use crate::resolve::ResolveError;
use crate::status::State;
use crate::write;

/// One round's report.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Report {
    /// The profiles tried, in the configuration's order.
    pub profiles: Vec<ProfileReport>,
    /// The sso-session tokens refreshed, refused, or ending without a way to refresh them.
    pub sessions: Vec<SessionReport>,
    /// The write that followed, when there was one: what it did, or why it failed.
    pub write: Option<Result<write::Outcome, String>>,
}

/// One profile tried in a round.
#[derive(Debug, Clone, PartialEq)]
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    use super::*;

    /// The events logged while it is the default subscriber: each as `LEVEL message`.
    #[derive(Default)]
    struct Lines(Mutex<Vec<String>>);

    struct Message(String);

    impl Visit for Message {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                self.0 = format!("{value:?}");
            }
        }
    }

    impl Subscriber for &'static Lines {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut message = Message(String::new());
            event.record(&mut message);
            let line = format!("{} {}", event.metadata().level(), message.0);
            self.0.lock().expect("not poisoned").push(line);
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    /// What `f` logs.
    fn logged(f: impl FnOnce()) -> Vec<String> {
        let lines: &'static Lines = Box::leak(Box::default());
        tracing::subscriber::with_default(lines, f);
        lines.0.lock().expect("not poisoned").clone()
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    fn profile(source: &str, error: Option<&str>, repeated: bool) -> ProfileReport {
        ProfileReport {
            index: 0,
            source: source.to_owned(),
            target: source.to_owned(),
            outcome: Ok(None),
            state: State::Fresh,
            expires_at: Some(at(3600)),
            error: error.map(str::to_owned),
            repeated,
        }
    }

    #[test]
    fn a_round_logs_a_success_a_new_failure_a_repeated_one_quietly_and_a_failed_write() {
        let report = Report {
            profiles: vec![
                profile("ok", None, false),
                profile("new", Some("denied"), false),
                profile("old", Some("denied"), true),
            ],
            sessions: Vec::new(),
            write: Some(Err("disk full".to_owned())),
        };
        assert_eq!(
            logged(|| report.log_profiles()),
            [
                "INFO refreshed; expires 2027-01-15T09:00:00Z",
                "WARN refresh failed: denied",
                "DEBUG still failing: denied",
                "ERROR disk full",
            ]
        );
    }

    #[test]
    fn a_rounds_sessions_are_logged_each_at_its_level() {
        let session = |outcome| SessionReport {
            name: "corp".to_owned(),
            outcome,
        };
        let report = Report {
            profiles: Vec::new(),
            sessions: vec![
                session(SessionOutcome::Refreshed {
                    expires_at: at(3600),
                }),
                session(SessionOutcome::NotSaved {
                    error: "disk full".to_owned(),
                }),
                session(SessionOutcome::Saved),
            ],
            write: None,
        };
        let lines = logged(|| report.log_sessions());
        let levels: Vec<&str> = lines.iter().filter_map(|l| l.split(' ').next()).collect();
        assert_eq!(levels, ["INFO", "ERROR", "INFO"], "{lines:?}");
        assert!(lines.iter().all(|l| l.contains("corp")), "{lines:?}");
    }
}
