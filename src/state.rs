//! What credsync knows about each managed profile and sso-session: the data `status` shows,
//! shared by `sync`, the daemon and the control socket. Never holds a secret.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// The JSON schema version of [`Status`].
pub const STATUS_VERSION: u32 = 1;

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
    /// Whether credsync can refresh the token itself (refresh token and registration valid).
    pub refreshable: bool,
    /// The command that logs in again.
    pub login_command: String,
}

/// Serde helpers: `SystemTime` as RFC 3339 text.
pub mod rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::timefmt::rfc3339(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        crate::timefmt::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 time: {text:?}")))
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
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
