//! What credsync knows about each managed profile and sso-session: the data `status` shows,
//! shared by `sync`, the daemon and the control socket. Never holds a secret.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::token_policy::NotRefreshable;

/// The JSON schema version of [`Status`]. 2: sessions say why they cannot be refreshed, since
/// when a refresh was refused, when they end and how long their credentials on disk last.
pub const STATUS_VERSION: u32 = 2;

/// Everything `credsync status` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub version: u32,
    pub daemon: DaemonInfo,
    pub profiles: Vec<ProfileStatus>,
    pub sso_sessions: Vec<SessionStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonInfo {
    pub pid: u32,
    /// credsync's version.
    pub version: String,
    #[serde(with = "rfc3339")]
    pub started_at: SystemTime,
    /// Where the configuration came from, in words.
    pub config: String,
    pub credentials_file: String,
    /// The files the daemon acts on, for a client to compare with its own (absent from
    /// daemons that predate it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective: Option<Effective>,
    /// Why the last reload (a `reload` request, SIGHUP, or a changed config file) was refused:
    /// the daemon runs on with the configuration it had. Absent once a reload succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload_error: Option<String>,
}

/// The configuration a daemon runs with, as paths: what `doctor` compares with what the shell
/// it runs in would use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Effective {
    /// credsync's config file; `None` when it runs without one.
    pub config_file: Option<String>,
    /// The AWS config file it reads.
    pub aws_config_file: String,
}

/// How a profile gets its credentials (what the planner decides, so defined there).
pub use crate::chain::Kind;

/// Where a profile stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Not resolved yet.
    Pending,
    /// Credentials on disk, with at least `min_remaining` left.
    Fresh,
    /// The last refresh failed; the credentials on disk are still valid.
    Degraded,
    /// No valid credentials on disk; retrying.
    Expired,
    /// The SSO session ended or was never started: the user must log in.
    LoginRequired,
    /// The target section belongs to someone else; credsync leaves it alone.
    Conflict,
    /// The profile cannot be resolved as configured (unknown, unsupported, bad config).
    Error,
}

impl State {
    /// Whether this state counts as "everything fresh" for exit codes.
    pub fn is_healthy(self) -> bool {
        matches!(self, State::Fresh)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Fresh => "fresh",
            State::Degraded => "degraded",
            State::Expired => "expired",
            State::LoginRequired => "login_required",
            State::Conflict => "conflict",
            State::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileStatus {
    /// The profile in the AWS config file.
    pub source: String,
    /// The section credsync writes.
    pub target: String,
    pub kind: Kind,
    pub state: State,
    #[serde(with = "rfc3339::option", default)]
    pub expires_at: Option<SystemTime>,
    #[serde(with = "rfc3339::option", default)]
    pub last_refresh: Option<SystemTime>,
    #[serde(with = "rfc3339::option", default)]
    pub next_refresh: Option<SystemTime>,
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
}

impl ProfileStatus {
    pub fn new(source: &str, target: &str) -> ProfileStatus {
        ProfileStatus {
            source: source.to_owned(),
            target: target.to_owned(),
            kind: Kind::Unknown,
            state: State::Pending,
            expires_at: None,
            last_refresh: None,
            next_refresh: None,
            last_error: None,
            consecutive_failures: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionStatus {
    /// The sso-session name, or the start URL of a legacy profile.
    pub name: String,
    #[serde(with = "rfc3339::option", default)]
    pub token_expires_at: Option<SystemTime>,
    /// Whether credsync can refresh the token itself (refresh token and registration valid,
    /// and SSO-OIDC has not refused the refresh token).
    pub refreshable: bool,
    /// Why it cannot, when it cannot (absent from daemons older than schema 2).
    #[serde(default)]
    pub not_refreshable: Option<NotRefreshable>,
    /// When SSO-OIDC refused to refresh this token, if it did.
    #[serde(with = "rfc3339::option", default)]
    pub refused_at: Option<SystemTime>,
    /// When the session ends unless the user signs in again: the token's expiry when it cannot
    /// be refreshed, else the client registration's expiry (the latest credsync can refresh
    /// until; Identity Center may end the session sooner, and the refresh is then refused).
    #[serde(with = "rfc3339::option", default)]
    pub ends_at: Option<SystemTime>,
    /// The latest expiry of the credentials on disk of this session's profiles: how long they
    /// (and the containers reading them) keep working without a new sign-in.
    #[serde(with = "rfc3339::option", default)]
    pub credentials_until: Option<SystemTime>,
    /// The lifetime of the tokens SSO-OIDC issued to credsync for this session, once it has
    /// refreshed one (seconds in JSON).
    #[serde(with = "secs::option", default, rename = "token_lifetime_secs")]
    pub token_lifetime: Option<Duration>,
    /// When credsync next refreshes the token, when it can.
    #[serde(with = "rfc3339::option", default)]
    pub next_token_refresh: Option<SystemTime>,
    /// Since when the newest token is only in memory: its save to the cache file failed (a full
    /// disk, say), and credsync tries again. Tools reading the cache file see an older token.
    #[serde(with = "rfc3339::option", default)]
    pub token_unsaved_since: Option<SystemTime>,
    /// Why that save failed.
    #[serde(default)]
    pub token_unsaved_error: Option<String>,
    /// The command that logs in again.
    pub login_command: String,
    /// An `aws login` session (named by its user's ARN), not an SSO one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub aws_login: bool,
}

impl SessionStatus {
    /// A session with no token known and nothing else: the fields a caller fills in.
    pub fn new(name: &str, login_command: &str) -> SessionStatus {
        SessionStatus {
            name: name.to_owned(),
            token_expires_at: None,
            refreshable: false,
            not_refreshable: Some(NotRefreshable::NoToken),
            refused_at: None,
            ends_at: None,
            credentials_until: None,
            token_lifetime: None,
            next_token_refresh: None,
            token_unsaved_since: None,
            token_unsaved_error: None,
            login_command: login_command.to_owned(),
            aws_login: false,
        }
    }
}

/// Serde helpers: an optional `Duration` as whole seconds.
pub(crate) mod secs {
    pub(crate) mod option {
        use std::time::Duration;

        use serde::{Deserialize, Deserializer, Serializer};

        pub(crate) fn serialize<S: Serializer>(
            d: &Option<Duration>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => s.serialize_u64(d.as_secs()),
                None => s.serialize_none(),
            }
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Duration>, D::Error> {
            Ok(Option::<u64>::deserialize(d)?.map(Duration::from_secs))
        }
    }
}

/// Serde helpers: `SystemTime` as RFC 3339 text.
pub(crate) mod rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::timefmt::rfc3339(*t))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        crate::timefmt::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 time: {text:?}")))
    }

    pub(crate) mod option {
        use super::*;

        pub(crate) fn serialize<S: Serializer>(
            t: &Option<SystemTime>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, s),
                None => s.serialize_none(),
            }
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<SystemTime>, D::Error> {
            let text: Option<String> = Option::deserialize(d)?;
            text.map(|text| {
                crate::timefmt::parse(&text).ok_or_else(|| {
                    serde::de::Error::custom(format!("not an RFC 3339 time: {text:?}"))
                })
            })
            .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    const STATES: [State; 7] = [
        State::Pending,
        State::Fresh,
        State::Degraded,
        State::Expired,
        State::LoginRequired,
        State::Conflict,
        State::Error,
    ];

    #[test]
    fn a_state_reads_as_its_wire_name_and_only_fresh_is_healthy() {
        for state in STATES {
            let wire = serde_json::to_string(&state).expect("serialises");
            assert_eq!(wire, format!("\"{}\"", state.as_str()));
            assert_eq!(state.is_healthy(), state == State::Fresh, "{state:?}");
        }
    }

    #[test]
    fn a_sessions_times_and_lifetime_survive_the_wire() {
        let at = |secs: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs);
        let mut s = SessionStatus::new("corp", "credsync login --sso-session corp");
        s.token_expires_at = Some(at(3600));
        s.token_lifetime = Some(Duration::from_secs(8 * 3600));
        s.next_token_refresh = Some(at(1800));
        let text = serde_json::to_string(&s).expect("serialises");
        assert!(text.contains("\"token_lifetime_secs\":28800"), "{text}");
        let back: SessionStatus = serde_json::from_str(&text).expect("deserialises");
        assert_eq!(back, s);
        let bare = SessionStatus::new("corp", "credsync login --sso-session corp");
        let text = serde_json::to_string(&bare).expect("serialises");
        assert_eq!(
            serde_json::from_str::<SessionStatus>(&text).expect("reads"),
            bare
        );
        let bad = text.replace("\"token_expires_at\":null", "\"token_expires_at\":\"soon\"");
        assert!(bad != text && serde_json::from_str::<SessionStatus>(&bad).is_err());
    }
}
