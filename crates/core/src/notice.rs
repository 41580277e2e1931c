//! When to tell the user that a session needs a new sign-in, and what to say: the SSO
//! session's refresh token was refused, or a token that cannot be refreshed is about to expire
//! (`[notify] before`) or has expired. One notice per event, however many profiles use the
//! session and however many rounds see it; a new sign-in (another token) starts over.
//!
//! [`Notifier::observe`] takes the sessions as `status` shows them and the time, and gives the
//! notices to send; [`Notifier::next_due`] says when the next one can fall due. Pure: the edge
//! (`credsync::notify`) hands the notices to a desktop notifier or the user's command. Notices
//! hold names, times and the login command, never a secret.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::status::SessionStatus;
use crate::timefmt::{humane, rfc3339};
use crate::token_policy::NotRefreshable;

/// What happened to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEvent {
    /// SSO-OIDC refused the refresh token.
    Refused,
    /// A token that cannot be refreshed expires within `[notify] before`.
    EndsSoon,
    /// A token that cannot be refreshed has expired (first seen expired, no earlier notice).
    Ended,
}

/// One notification: for which session, why, and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub session: String,
    pub event: SessionEvent,
    /// One line: "credsync: sign in to SESSION".
    pub summary: String,
    /// What happened, until when the session and the credentials on disk work, the command.
    pub body: String,
}

/// What has been said about one session's token (a token is known by its expiry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Said {
    token_expires_at: SystemTime,
    refused: bool,
    ending: bool,
}

/// Remembers which notices were sent, so each event gives one.
#[derive(Debug, Default)]
pub struct Notifier {
    said: BTreeMap<String, Said>,
}

impl Notifier {
    pub fn new() -> Notifier {
        Notifier::default()
    }

    /// The notices `sessions` call for at `now`, each given once per token: a refused refresh,
    /// then (or alone) the end of a token that cannot be refreshed, `before` ahead of it. A
    /// refusal that comes within `before` of the end says both in one notice.
    pub fn observe(
        &mut self,
        sessions: &[SessionStatus],
        before: Duration,
        now: SystemTime,
    ) -> Vec<Notice> {
        let mut out = Vec::new();
        self.said
            .retain(|name, _| sessions.iter().any(|s| &s.name == name));
        for s in sessions {
            let Some(expires) = s.token_expires_at else {
                // Signed out, or never signed in: nothing to warn about, and the next token
                // is a new one.
                self.said.remove(&s.name);
                continue;
            };
            let said = self.said.entry(s.name.clone()).or_insert(Said {
                token_expires_at: expires,
                refused: false,
                ending: false,
            });
            if said.token_expires_at != expires {
                // Another token: signed in again, or refreshed.
                *said = Said {
                    token_expires_at: expires,
                    refused: false,
                    ending: false,
                };
            }
            let Some(why) = s.not_refreshable.filter(|_| !s.refreshable) else {
                continue;
            };
            let due = now
                >= expires
                    .checked_sub(before)
                    .unwrap_or(SystemTime::UNIX_EPOCH);
            if why == NotRefreshable::RefreshRefused && !said.refused {
                said.refused = true;
                said.ending |= due;
                out.push(notice(s, SessionEvent::Refused, why, expires, now));
            } else if why != NotRefreshable::NoToken && due && !said.ending {
                said.ending = true;
                let event = if now >= expires {
                    SessionEvent::Ended
                } else {
                    SessionEvent::EndsSoon
                };
                out.push(notice(s, event, why, expires, now));
            }
        }
        out
    }

    /// When the next notice can fall due with the sessions as they are: `before` ahead of the
    /// earliest expiry of a token that cannot be refreshed and was not warned about. The daemon
    /// wakes up then.
    pub fn next_due(&self, sessions: &[SessionStatus], before: Duration) -> Option<SystemTime> {
        sessions
            .iter()
            .filter(|s| !s.refreshable && s.not_refreshable.is_some())
            .filter_map(|s| {
                let expires = s.token_expires_at?;
                let said = self.said.get(&s.name);
                let warned = said.is_some_and(|d| d.token_expires_at == expires && d.ending);
                (!warned).then(|| {
                    expires
                        .checked_sub(before)
                        .unwrap_or(SystemTime::UNIX_EPOCH)
                })
            })
            .min()
    }
}

/// The text of a notice.
fn notice(
    s: &SessionStatus,
    event: SessionEvent,
    why: NotRefreshable,
    expires: SystemTime,
    now: SystemTime,
) -> Notice {
    let when = |t: SystemTime| match t.duration_since(now) {
        Ok(left) if !left.is_zero() => format!("{} (in {})", rfc3339(t), humane(left)),
        _ => format!(
            "{} ({} ago)",
            rfc3339(t),
            humane(now.duration_since(t).unwrap_or_default())
        ),
    };
    let name = &s.name;
    let kind = if s.aws_login {
        "login session"
    } else {
        "SSO session"
    };
    let what = match event {
        SessionEvent::Refused => format!(
            "The {kind} {name} can no longer be renewed: the refresh token was refused{}. \
             Its token {} {}.",
            s.refused_at
                .map(|t| format!(" at {}", rfc3339(t)))
                .unwrap_or_default(),
            if expires > now { "expires" } else { "expired" },
            when(expires)
        ),
        SessionEvent::EndsSoon => format!(
            "The {kind} {name} ends {} and cannot be renewed: {}.",
            when(expires),
            why.describe()
        ),
        SessionEvent::Ended => format!(
            "The {kind} {name} ended {} and cannot be renewed: {}.",
            when(expires),
            why.describe()
        ),
    };
    let disk = match s.credentials_until {
        Some(t) if t > now => format!(
            " The credentials on disk (and the containers reading them) keep working until {}.",
            when(t)
        ),
        Some(_) => " The credentials on disk have expired.".to_owned(),
        None => String::new(),
    };
    Notice {
        session: name.clone(),
        event,
        summary: format!("credsync: sign in to {name}"),
        body: format!("{what}{disk} Sign in again: {}", s.login_command),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_795_964_400;
    const MIN: u64 = 60;
    const BEFORE: Duration = Duration::from_secs(30 * MIN);

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn refreshable(name: &str, expires: u64) -> SessionStatus {
        SessionStatus {
            token_expires_at: Some(at(expires)),
            refreshable: true,
            not_refreshable: None,
            ends_at: Some(at(NOW + 90 * 86400)),
            credentials_until: Some(at(NOW + 50 * MIN)),
            ..SessionStatus::new(name, &format!("credsync login --sso-session {name}"))
        }
    }

    fn refused(name: &str, expires: u64) -> SessionStatus {
        SessionStatus {
            refreshable: false,
            not_refreshable: Some(NotRefreshable::RefreshRefused),
            refused_at: Some(at(NOW)),
            ends_at: Some(at(expires)),
            ..refreshable(name, expires)
        }
    }

    fn no_refresh_token(name: &str, expires: u64) -> SessionStatus {
        SessionStatus {
            refreshable: false,
            not_refreshable: Some(NotRefreshable::NoRefreshToken),
            ends_at: Some(at(expires)),
            ..refreshable(name, expires)
        }
    }

    fn events(n: &[Notice]) -> Vec<(&str, SessionEvent)> {
        n.iter().map(|n| (n.session.as_str(), n.event)).collect()
    }

    #[test]
    fn a_refused_refresh_gives_one_notice_however_many_rounds() {
        let mut notifier = Notifier::new();
        let sessions = [refused("corp", NOW + 4 * 3600)];
        let first = notifier.observe(&sessions, BEFORE, at(NOW));
        assert_eq!(events(&first), [("corp", SessionEvent::Refused)]);
        let n = &first[0];
        assert_eq!(n.summary, "credsync: sign in to corp");
        assert!(
            n.body
                .contains("the refresh token was refused at 2026-11-29T15:00:00Z"),
            "{}",
            n.body
        );
        assert!(
            n.body.contains("expires 2026-11-29T19:00:00Z (in 4h00m)"),
            "{}",
            n.body
        );
        assert!(
            n.body
                .contains("keep working until 2026-11-29T15:50:00Z (in 50m)"),
            "{}",
            n.body
        );
        assert!(
            n.body
                .ends_with("Sign in again: credsync login --sso-session corp"),
            "{}",
            n.body
        );
        for minutes in 1..100 {
            let again = notifier.observe(&sessions, BEFORE, at(NOW + minutes * MIN));
            assert!(again.is_empty(), "minute {minutes}: {again:?}");
        }
    }

    #[test]
    fn a_refused_token_is_still_warned_about_before_it_ends() {
        let mut notifier = Notifier::new();
        let expires = NOW + 2 * 3600;
        let sessions = [refused("corp", expires)];
        assert_eq!(notifier.observe(&sessions, BEFORE, at(NOW)).len(), 1);
        assert_eq!(
            notifier.next_due(&sessions, BEFORE),
            Some(at(expires - 30 * MIN))
        );
        assert!(
            notifier
                .observe(&sessions, BEFORE, at(expires - 30 * MIN - 1))
                .is_empty()
        );
        let soon = notifier.observe(&sessions, BEFORE, at(expires - 30 * MIN));
        assert_eq!(events(&soon), [("corp", SessionEvent::EndsSoon)]);
        assert!(soon[0].body.contains("(in 30m)"), "{}", soon[0].body);
        assert_eq!(notifier.next_due(&sessions, BEFORE), None);
        assert!(
            notifier
                .observe(&sessions, BEFORE, at(expires + 1))
                .is_empty()
        );
    }

    #[test]
    fn a_refusal_close_to_the_end_is_one_notice() {
        let mut notifier = Notifier::new();
        let sessions = [refused("corp", NOW + 10 * MIN)];
        assert_eq!(
            events(&notifier.observe(&sessions, BEFORE, at(NOW))),
            [("corp", SessionEvent::Refused)]
        );
        for t in [NOW + MIN, NOW + 11 * MIN, NOW + 3600] {
            assert!(notifier.observe(&sessions, BEFORE, at(t)).is_empty());
        }
    }

    #[test]
    fn a_token_without_refresh_is_warned_about_before_it_ends_once() {
        let mut notifier = Notifier::new();
        let expires = NOW + 3600;
        let sessions = [no_refresh_token("corp", expires)];
        assert!(notifier.observe(&sessions, BEFORE, at(NOW)).is_empty());
        assert_eq!(
            notifier.next_due(&sessions, BEFORE),
            Some(at(expires - 30 * MIN))
        );
        let soon = notifier.observe(&sessions, BEFORE, at(expires - 20 * MIN));
        assert_eq!(events(&soon), [("corp", SessionEvent::EndsSoon)]);
        assert!(
            soon[0].body.contains(
                "ends 2026-11-29T16:00:00Z (in 20m) and cannot be renewed: the sign-in gave no \
                 refresh token."
            ),
            "{}",
            soon[0].body
        );
        for t in [expires - MIN, expires, expires + 3600] {
            assert!(notifier.observe(&sessions, BEFORE, at(t)).is_empty());
        }
        // `before` is the setting's: an hour ahead with "1h".
        let mut early = Notifier::new();
        let hour = Duration::from_secs(3600);
        assert_eq!(early.observe(&sessions, hour, at(NOW)).len(), 1);
    }

    #[test]
    fn first_seen_expired_says_it_ended() {
        // An hour after its end, and at the very second of it (credentials ending then too).
        for (expires, credentials_until, ended) in [
            (
                NOW - 3600,
                NOW - 60,
                "ended 2026-11-29T14:00:00Z (1h00m ago)",
            ),
            (NOW, NOW, "ended 2026-11-29T15:00:00Z (0s ago)"),
        ] {
            let mut notifier = Notifier::new();
            let mut s = no_refresh_token("corp", expires);
            s.credentials_until = Some(at(credentials_until));
            let n = notifier.observe(&[s], BEFORE, at(NOW));
            assert_eq!(events(&n), [("corp", SessionEvent::Ended)]);
            let body = &n[0].body;
            assert!(body.contains(ended), "{body}");
            assert!(
                body.contains("The credentials on disk have expired."),
                "{body}"
            );
        }
    }

    #[test]
    fn a_new_sign_in_starts_over() {
        let mut notifier = Notifier::new();
        assert_eq!(
            notifier
                .observe(&[refused("corp", NOW + 4 * 3600)], BEFORE, at(NOW))
                .len(),
            1
        );
        // Signed in again: refreshable, then refused again later: a new notice.
        let later = NOW + 3600;
        assert!(
            notifier
                .observe(&[refreshable("corp", later + 8 * 3600)], BEFORE, at(later))
                .is_empty()
        );
        let again = notifier.observe(&[refused("corp", later + 8 * 3600)], BEFORE, at(later));
        assert_eq!(events(&again), [("corp", SessionEvent::Refused)]);
        // Signed out: forgotten, and the same token coming back is news again.
        assert!(
            notifier
                .observe(&[SessionStatus::new("corp", "x")], BEFORE, at(later))
                .is_empty()
        );
        assert_eq!(
            notifier
                .observe(&[refused("corp", later + 8 * 3600)], BEFORE, at(later))
                .len(),
            1
        );
    }

    #[test]
    fn sessions_are_told_apart_and_healthy_or_absent_ones_say_nothing() {
        let mut notifier = Notifier::new();
        let sessions = [
            refreshable("fine", NOW + 10 * MIN),
            SessionStatus::new("never", "credsync login --sso-session never"),
            refused("a", NOW + 4 * 3600),
            no_refresh_token("b", NOW + 5 * MIN),
        ];
        let n = notifier.observe(&sessions, BEFORE, at(NOW));
        assert_eq!(
            events(&n),
            [("a", SessionEvent::Refused), ("b", SessionEvent::EndsSoon)]
        );
        assert_eq!(
            notifier.next_due(&sessions, BEFORE),
            Some(at(NOW + 4 * 3600 - 30 * MIN))
        );
        assert!(
            notifier
                .observe(&sessions, BEFORE, at(NOW + MIN))
                .is_empty()
        );
    }
}
