//! The AWS config file (and the credentials file, read-only) as profiles, sso-sessions and role
//! chains: a parse, not an edit. Follows botocore's reading rules, which is what the
//! containers use.
//!
//! STUB: the API below is the contract; the body is being written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A parsed AWS config file.
#[derive(Debug, Clone, Default)]
pub struct AwsConfig {
    pub path: PathBuf,
    /// By profile name: `[default]` is `default`, `[profile dev]` is `dev`.
    pub profiles: BTreeMap<String, Profile>,
    /// By session name: `[sso-session corp]` is `corp`.
    pub sso_sessions: BTreeMap<String, SsoSession>,
}

/// One profile's keys (lower-cased, as botocore reads them), and where it stands.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub name: String,
    /// 1-based line of the section header.
    pub line: usize,
    pub keys: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default)]
pub struct SsoSession {
    pub name: String,
    pub line: usize,
    pub keys: BTreeMap<String, String>,
}

/// Everything needed to get role credentials for an SSO profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoProfile {
    pub profile: String,
    /// `Some(name)` for `sso_session` profiles, `None` for legacy ones.
    pub session: Option<String>,
    pub start_url: String,
    /// The region of the SSO portal (`sso_region`).
    pub sso_region: String,
    pub account_id: String,
    pub role_name: String,
    /// The profile's own `region`, if any.
    pub region: Option<String>,
}

impl SsoProfile {
    /// What names the token cache file: the session name, or the legacy start URL.
    pub fn cache_key(&self) -> &str {
        self.session.as_deref().unwrap_or(&self.start_url)
    }

    /// The command that logs the user in for this profile.
    pub fn login_command(&self) -> String {
        match &self.session {
            Some(s) => format!("aws sso login --sso-session {s}"),
            None => format!("aws sso login --profile {}", self.profile),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ProfileError {
    #[error("{path}:{line}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("cannot read {path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("profile {profile:?} is not in {path}{}", known_hint(.known))]
    UnknownProfile {
        profile: String,
        path: PathBuf,
        known: Vec<String>,
    },
    #[error("{path}:{line}: profile {profile:?} is missing {key}")]
    MissingKey {
        profile: String,
        path: PathBuf,
        line: usize,
        key: &'static str,
    },
    #[error(
        "{path}:{line}: profile {profile:?} names sso_session {session:?}, but there is no [sso-session {session}] section"
    )]
    UnknownSsoSession {
        profile: String,
        session: String,
        path: PathBuf,
        line: usize,
    },
    #[error("{path}:{line}: profile {profile:?} is {kind}; credsync manages {supported} profiles")]
    Unsupported {
        profile: String,
        path: PathBuf,
        line: usize,
        kind: String,
        supported: &'static str,
    },
}

fn known_hint(known: &[String]) -> String {
    if known.is_empty() {
        String::from(" (it defines no profiles)")
    } else {
        format!(" (profiles there: {})", known.join(", "))
    }
}

/// Parses the text of an AWS config file. `path` is only used in messages.
pub fn parse(text: &str, path: &Path) -> Result<AwsConfig, ProfileError> {
    let _ = text;
    Ok(AwsConfig {
        path: path.to_owned(),
        ..Default::default()
    })
}

/// Reads and parses `path`. A missing file is an empty config.
pub fn load(path: &Path) -> Result<AwsConfig, ProfileError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AwsConfig {
            path: path.to_owned(),
            ..Default::default()
        }),
        Err(e) => Err(ProfileError::Io {
            path: path.to_owned(),
            message: e.to_string(),
        }),
    }
}

impl AwsConfig {
    /// The SSO settings of profile `name`, or why it has none.
    pub fn sso_profile(&self, name: &str) -> Result<SsoProfile, ProfileError> {
        Err(ProfileError::UnknownProfile {
            profile: name.to_owned(),
            path: self.path.clone(),
            known: self.profiles.keys().cloned().collect(),
        })
    }
}
