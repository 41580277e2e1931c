//! The AWS config file (and the credentials file, read-only) as profiles, sso-sessions and role
//! chains: a parse, not an edit. Follows botocore's reading rules, which is what the
//! containers use.
//!
//! Why not `aws_config::profile::load`: it is async, merges the config and credentials files
//! into one view, and reads a different dialect from botocore's (it accepts only `=`, merges
//! duplicate sections, and lets `[profile default]` win over `[default]`). credsync must see
//! the files the way botocore in the containers sees them, and refuse what botocore refuses, so
//! this module is a small pure parser that follows Python's `RawConfigParser` (strict mode, as
//! `botocore.configloader.raw_config_parse` builds it; the lines are read by the `ini` lexer that
//! `ini_edit` uses too) and `build_profile_map`:
//!
//! - `[name]` headers: the name is everything between the first `[` and the last `]` of the
//!   trimmed line, not trimmed further; `[DEFAULT]` is configparser's defaults section, whose
//!   keys every other section inherits.
//! - whole-line `#` and `;` comments only (`region = x # y` has the value `x # y`).
//! - `key = value` or `key: value`, split at the first `=` or `:`; keys trimmed and lower-cased;
//!   values trimmed.
//! - a line indented deeper than its key line continues the value (joined with `\n`, trailing
//!   blank lines dropped). A value that starts on the next line (`s3 =` then indented
//!   `key = v` lines) is a botocore sub-section: its raw text is kept, and an indented line
//!   without `=` makes botocore reject the file, so it is an error here too.
//! - a duplicate section, a duplicate key within one section, text before the first section, or
//!   a line that is neither a header nor `key = value` make botocore refuse the whole file: each
//!   is a [`ProfileError::Syntax`] with its line.
//! - profiles: `[default]`, and `[profile NAME]` split like `shlex.split` into exactly two words
//!   (`[profile "my dev"]` is `my dev`; `[profile my dev]` is not a profile at all). When
//!   `[default]` and `[profile default]` both exist, the one later in the file wins, as in
//!   botocore. Other sections (`[foo]`, `[services x]`, `[preview]`) are not profiles.
//! - `[sso-session NAME]` sections, split the same way, are sso-sessions.
//!
//! Values are never put into error messages: the credentials file holds secret keys.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::ini;

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
#[derive(Clone, Default)]
pub struct Profile {
    pub(crate) name: String,
    /// 1-based line of the section header.
    pub(crate) line: usize,
    pub keys: BTreeMap<String, String>,
}

/// Keys whose values `Debug` of a [`Profile`] hides.
const SECRET_KEYS: [&str; 3] = [
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
];

impl fmt::Debug for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: BTreeMap<&str, &str> = self
            .keys
            .iter()
            .map(|(k, v)| {
                let shown = if SECRET_KEYS.contains(&k.as_str()) {
                    "[REDACTED]"
                } else {
                    v
                };
                (k.as_str(), shown)
            })
            .collect();
        f.debug_struct("Profile")
            .field("name", &self.name)
            .field("line", &self.line)
            .field("keys", &keys)
            .finish()
    }
}

#[derive(Debug, Clone, Default)]
pub struct SsoSession {
    pub(crate) name: String,
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
    pub(crate) region: Option<String>,
}

impl SsoProfile {
    /// What names the token cache file: the session name, or the legacy start URL.
    pub fn cache_key(&self) -> &str {
        self.session.as_deref().unwrap_or(&self.start_url)
    }

    /// The command that logs the user in for this profile.
    pub fn login_command(&self) -> String {
        match &self.session {
            Some(s) => format!("credsync login --sso-session {s}"),
            None => format!("credsync login --profile {}", self.profile),
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
    /// Not a regular file, too large, not UTF-8, or unreadable: the reader's message, which
    /// names the file.
    #[error("{0}")]
    File(String),
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
    /// The `[sso-session]` a profile names lacks a key the token needs (botocore requires
    /// `sso_start_url` and `sso_region` on the session itself).
    #[error(
        "{path}:{line}: [sso-session {session}] (used by profile {profile:?}) is missing {key}"
    )]
    SessionMissingKey {
        profile: String,
        session: String,
        path: PathBuf,
        line: usize,
        key: &'static str,
    },
    /// A key set on both the profile and its sso-session, with different values: botocore
    /// refuses the profile.
    #[error("{path}:{line}: profile {profile:?} sets {key} = {profile_value:?}, but [sso-session {session}] sets {session_value:?}; botocore refuses a mismatch: remove the profile's {key}",
        key = .mismatch.key, profile_value = .mismatch.profile_value,
        session = .mismatch.session, session_value = .mismatch.session_value)]
    Inconsistent {
        profile: String,
        path: PathBuf,
        line: usize,
        mismatch: Box<Mismatch>,
    },
}

/// What [`ProfileError::Inconsistent`] found (boxed to keep the error small).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub(crate) session: String,
    pub(crate) key: String,
    pub(crate) profile_value: String,
    pub(crate) session_value: String,
}

fn known_hint(known: &[String]) -> String {
    if known.is_empty() {
        String::from(" (it defines no profiles)")
    } else {
        format!(" (profiles there: {})", known.join(", "))
    }
}

/// What [`ProfileError::Unsupported`] says credsync manages.
const SUPPORTED: &str = "SSO (sso_session or sso_start_url)";

/// Parses the text of an AWS config file. `path` is only used in messages.
pub fn parse(text: &str, path: &Path) -> Result<AwsConfig, ProfileError> {
    let raw = parse_ini(text, path)?;
    let mut config = AwsConfig {
        path: path.to_owned(),
        ..Default::default()
    };
    // In file order, later sections overwriting earlier ones of the same name: botocore builds
    // a dict the same way (this is how `[default]` and `[profile default]` resolve).
    for section in raw {
        if section.name.starts_with("profile") {
            if let Some(name) = second_word(&section.name) {
                let profile = Profile {
                    name: name.clone(),
                    line: section.line,
                    keys: section.keys,
                };
                config.profiles.insert(name, profile);
            }
        } else if section.name.starts_with("sso-session") {
            if let Some(name) = second_word(&section.name) {
                let session = SsoSession {
                    name: name.clone(),
                    line: section.line,
                    keys: section.keys,
                };
                config.sso_sessions.insert(name, session);
            }
        } else if section.name == "default" {
            let profile = Profile {
                name: section.name.clone(),
                line: section.line,
                keys: section.keys,
            };
            config.profiles.insert(section.name, profile);
        }
        // `[services x]` and any other section: not a profile, not needed here.
    }
    Ok(config)
}

/// Parses the text of an AWS credentials file: section names are profile names as they are (no
/// `profile ` prefix), with the same syntax rules as the config file.
pub fn parse_credentials(
    text: &str,
    path: &Path,
) -> Result<BTreeMap<String, BTreeMap<String, String>>, ProfileError> {
    Ok(parse_ini(text, path)?
        .into_iter()
        .map(|s| (s.name, s.keys))
        .collect())
}

impl AwsConfig {
    /// Profile `name`, if the file defines it.
    pub fn get(&self, name: &str) -> Option<&Profile> {
        self.profiles.get(name)
    }

    /// The SSO settings of profile `name`, or why it has none.
    ///
    /// Mirrors botocore's `SSOProvider`: with `sso_session = S`, `[sso-session S]` must exist
    /// and hold `sso_start_url` and `sso_region`, and any key set on both the profile and the
    /// session must agree; without it (legacy), the profile holds all four `sso_*` keys.
    /// A profile with `role_arn` is an assume-role profile even if it also has `sso_*` keys,
    /// because botocore resolves it that way.
    pub fn sso_profile(&self, name: &str) -> Result<SsoProfile, ProfileError> {
        let Some(profile) = self.profiles.get(name) else {
            return Err(ProfileError::UnknownProfile {
                profile: name.to_owned(),
                path: self.path.clone(),
                known: self.profiles.keys().cloned().collect(),
            });
        };
        self.sso_of(profile)
    }

    /// [`AwsConfig::sso_profile`] of `profile`, which may be this file's or a view of it with
    /// more keys laid over (`chain`'s config and credentials files merged), with this file's
    /// sso-sessions.
    pub(crate) fn sso_of(&self, profile: &Profile) -> Result<SsoProfile, ProfileError> {
        let keys = &profile.keys;
        let missing = |key: &'static str| ProfileError::MissingKey {
            profile: profile.name.clone(),
            path: self.path.clone(),
            line: profile.line,
            key,
        };
        if let Some(kind) = non_sso_kind(keys) {
            return Err(ProfileError::Unsupported {
                profile: profile.name.clone(),
                path: self.path.clone(),
                line: profile.line,
                kind,
                supported: SUPPORTED,
            });
        }

        // Resolve the keys as botocore does: the profile's, overlaid with the session's.
        let mut resolved = keys.clone();
        let session = match keys.get("sso_session") {
            None => None,
            Some(session_name) => {
                let Some(session) = self.sso_sessions.get(session_name) else {
                    return Err(ProfileError::UnknownSsoSession {
                        profile: profile.name.clone(),
                        session: session_name.clone(),
                        path: self.path.clone(),
                        line: profile.line,
                    });
                };
                for key in ["sso_start_url", "sso_region"] {
                    if !session.keys.contains_key(key) {
                        return Err(ProfileError::SessionMissingKey {
                            profile: profile.name.clone(),
                            session: session.name.clone(),
                            path: self.path.clone(),
                            line: session.line,
                            key,
                        });
                    }
                }
                for (key, session_value) in &session.keys {
                    if let Some(profile_value) = keys.get(key)
                        && profile_value != session_value
                    {
                        return Err(ProfileError::Inconsistent {
                            profile: profile.name.clone(),
                            path: self.path.clone(),
                            line: profile.line,
                            mismatch: Box::new(Mismatch {
                                session: session.name.clone(),
                                key: key.clone(),
                                profile_value: profile_value.clone(),
                                session_value: session_value.clone(),
                            }),
                        });
                    }
                    resolved.insert(key.clone(), session_value.clone());
                }
                Some(session.name.clone())
            }
        };
        // botocore's order of required keys.
        let mut get = |key: &'static str| resolved.remove(key).ok_or_else(|| missing(key));
        let role_name = get("sso_role_name")?;
        let account_id = get("sso_account_id")?;
        let start_url = get("sso_start_url")?;
        let sso_region = get("sso_region")?;
        Ok(SsoProfile {
            profile: profile.name.clone(),
            session,
            start_url,
            sso_region,
            account_id,
            role_name,
            region: keys.get("region").cloned(),
        })
    }
}

/// `None` when the keys make an SSO profile (complete or not); otherwise what the profile is.
/// Checked in botocore's provider order.
fn non_sso_kind(keys: &BTreeMap<String, String>) -> Option<String> {
    let has = |k: &str| keys.contains_key(k);
    if has("web_identity_token_file") {
        return Some("a web-identity profile (web_identity_token_file)".into());
    }
    if has("role_arn") {
        return Some("an assume-role profile (role_arn)".into());
    }
    if [
        "sso_session",
        "sso_start_url",
        "sso_account_id",
        "sso_role_name",
    ]
    .iter()
    .any(|k| has(k))
    {
        return None;
    }
    if has("credential_process") {
        return Some("a credential_process profile".into());
    }
    if has("aws_access_key_id") || has("aws_secret_access_key") {
        return Some("a static-keys profile".into());
    }
    if keys.is_empty() {
        return Some("empty".into());
    }
    let names: Vec<&str> = keys.keys().map(String::as_str).collect();
    Some(format!(
        "a profile without credentials (it sets only {})",
        names.join(", ")
    ))
}

/// `shlex.split(name)`; the second word when there are exactly two, as `build_profile_map`
/// requires. Unbalanced quotes make botocore skip the section, and so do we.
fn second_word(name: &str) -> Option<String> {
    let mut words = shlex_split(name)?;
    if words.len() == 2 { words.pop() } else { None }
}

/// Python's `shlex.split` (POSIX mode): whitespace separates words, `'…'` is literal, `"…"`
/// allows `\"` and `\\`, a backslash outside quotes escapes the next character, and quoted
/// parts join the word around them. `None` for an unclosed quote or a trailing backslash.
fn shlex_split(s: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\r' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\\' => {
                word.push(chars.next()?);
                in_word = true;
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => word.push(c),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.next()? {
                            c @ ('"' | '\\') => word.push(c),
                            c => {
                                word.push('\\');
                                word.push(c);
                            }
                        },
                        c => word.push(c),
                    }
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Some(words)
}

/// One section as `RawConfigParser` returns it, `[DEFAULT]` keys already inherited.
#[derive(Debug)]
struct RawSection {
    name: String,
    line: usize,
    keys: BTreeMap<String, String>,
}

/// A value being read: its key's line, and each physical line's (number, trimmed text).
#[derive(Debug)]
struct RawValue {
    line: usize,
    parts: Vec<(usize, String)>,
}

#[derive(Debug)]
struct Building {
    name: String,
    line: usize,
    keys: BTreeMap<String, RawValue>,
}

/// configparser's defaults section: not a section, its keys go into every section.
const DEFAULT_SECTION: &str = "DEFAULT";

/// The INI layer: Python's `RawConfigParser` in strict mode, then `raw_config_parse`'s check
/// of nested values.
fn parse_ini(text: &str, path: &Path) -> Result<Vec<RawSection>, ProfileError> {
    let syntax = |line: usize, message: String| ProfileError::Syntax {
        path: path.to_owned(),
        line,
        message,
    };
    let mut sections: Vec<Building> = Vec::new();
    // Each section's header line by name: a duplicate is found in one look-up, not a scan.
    let mut first_lines: HashMap<&str, usize> = HashMap::new();
    let mut defaults = Building {
        name: DEFAULT_SECTION.to_owned(),
        line: 0,
        keys: BTreeMap::new(),
    };
    // The section lines go to: `None` before any header, `Some(None)` for [DEFAULT].
    let mut current: Option<Option<usize>> = None;
    let mut key: Option<String> = None;

    let mut lexer = ini::Lexer::new();
    for (index, line) in ini::split_lines(text).iter().enumerate() {
        let number = index + 1;
        let section = match current {
            Some(Some(i)) => Some(&mut sections[i]),
            Some(None) => Some(&mut defaults),
            None => None,
        };
        let (name, value) = match lexer.next(line.content) {
            // A comment line is dropped and does not end the value.
            ini::Token::Comment => continue,
            // A blank line inside a value is part of it (trimmed off the end later).
            ini::Token::Blank => {
                if let (Some(section), Some(k)) = (section, &key)
                    && let Some(value) = section.keys.get_mut(k)
                {
                    value.parts.push((number, String::new()));
                }
                continue;
            }
            ini::Token::Continuation(more) => {
                if let (Some(section), Some(k)) = (section, &key)
                    && let Some(value) = section.keys.get_mut(k)
                {
                    value.parts.push((number, more.to_owned()));
                }
                continue;
            }
            ini::Token::Header(name) => {
                key = None;
                if name == DEFAULT_SECTION {
                    if defaults.line == 0 {
                        defaults.line = number;
                    }
                    current = Some(None);
                } else if let Some(&first) = first_lines.get(name) {
                    return Err(syntax(
                        number,
                        format!(
                            "section [{name}] appears twice (first at line {first}); botocore \
                             cannot read a file with a duplicate section: merge the two"
                        ),
                    ));
                } else {
                    first_lines.insert(name, number);
                    sections.push(Building {
                        name: name.to_owned(),
                        line: number,
                        keys: BTreeMap::new(),
                    });
                    current = Some(Some(sections.len() - 1));
                }
                continue;
            }
            ini::Token::Option { key, value } => (Some(key), value),
            ini::Token::Invalid => (None, ""),
        };
        let section = match current {
            Some(Some(i)) => &mut sections[i],
            Some(None) => &mut defaults,
            None => {
                return Err(syntax(
                    number,
                    "text before the first [section] header; botocore cannot read this file: \
                     move it under a section or comment it out with #"
                        .to_owned(),
                ));
            }
        };
        let Some(name) = name else {
            return Err(syntax(
                number,
                format!(
                    "a line in [{}] is neither a [section] header nor `key = value`; botocore \
                     cannot read this file",
                    section.name
                ),
            ));
        };
        if name.is_empty() {
            return Err(syntax(
                number,
                format!(
                    "a line in [{}] has a value but no key; botocore cannot read this file",
                    section.name
                ),
            ));
        }
        if let Some(first) = section.keys.get(&name) {
            return Err(syntax(
                number,
                format!(
                    "key {name:?} appears twice in [{}] (first at line {}); botocore cannot read \
                     a file with a duplicate key: remove one",
                    section.name, first.line
                ),
            ));
        }
        let value = value.to_owned();
        section.keys.insert(
            name.clone(),
            RawValue {
                line: number,
                parts: vec![(number, value)],
            },
        );
        key = Some(name);
    }

    let defaults = finish_values(defaults, path)?;
    let mut out = Vec::with_capacity(sections.len());
    for building in sections {
        let (name, line) = (building.name.clone(), building.line);
        let mut keys = finish_values(building, path)?;
        for (k, v) in &defaults {
            keys.entry(k.clone()).or_insert_with(|| v.clone());
        }
        out.push(RawSection { name, line, keys });
    }
    Ok(out)
}

/// Joins each value's lines as configparser does, and rejects a nested value (one that starts
/// on the line after its key) with a line botocore cannot split at `=`.
fn finish_values(section: Building, path: &Path) -> Result<BTreeMap<String, String>, ProfileError> {
    let mut keys = BTreeMap::new();
    for (key, value) in section.keys {
        let joined: Vec<&str> = value.parts.iter().map(|(_, s)| s.as_str()).collect();
        let joined = joined.join("\n").trim_end().to_owned();
        if joined.starts_with('\n')
            && let Some((line, _)) = value
                .parts
                .iter()
                .skip(1)
                .find(|(_, s)| !s.is_empty() && !s.contains('='))
        {
            return Err(ProfileError::Syntax {
                path: path.to_owned(),
                line: *line,
                message: format!(
                    "botocore reads the indented lines under {key:?} in [{}] as `name = value` \
                     pairs, and this one has no '='",
                    section.name
                ),
            });
        }
        keys.insert(key, joined);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> PathBuf {
        PathBuf::from("/home/u/.aws/config")
    }

    fn cfg(bytes: &[u8]) -> AwsConfig {
        parse(std::str::from_utf8(bytes).unwrap(), &p()).unwrap()
    }

    fn err(bytes: &[u8]) -> ProfileError {
        parse(std::str::from_utf8(bytes).unwrap(), &p()).unwrap_err()
    }

    fn syntax_line(e: &ProfileError) -> usize {
        match e {
            ProfileError::Syntax { line, .. } => *line,
            other => panic!("not a syntax error: {other:?}"),
        }
    }

    const SSO_SESSION: &[u8] = b"[default]\nregion = eu-west-1\n\n\
[profile dev]\nsso_session = corp\nsso_account_id = 111122223333\nsso_role_name = Admin\nregion = us-east-2\n\n\
[sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\nsso_region = us-east-1\n\
sso_registration_scopes = sso:account:access\n";

    #[test]
    fn sso_session_profile() {
        let c = cfg(SSO_SESSION);
        let sso = c.sso_profile("dev").unwrap();
        assert_eq!(
            sso,
            SsoProfile {
                profile: "dev".into(),
                session: Some("corp".into()),
                start_url: "https://corp.awsapps.com/start".into(),
                sso_region: "us-east-1".into(),
                account_id: "111122223333".into(),
                role_name: "Admin".into(),
                region: Some("us-east-2".into()),
            }
        );
        assert_eq!(sso.cache_key(), "corp");
        assert_eq!(sso.login_command(), "credsync login --sso-session corp");
        assert_eq!(c.get("dev").unwrap().line, 4);
        assert_eq!(c.sso_sessions["corp"].line, 10);
        assert_eq!(c.profiles.keys().collect::<Vec<_>>(), ["default", "dev"]);
    }

    #[test]
    fn legacy_profile() {
        let c = cfg(b"[profile old]\nsso_start_url = https://x.awsapps.com/start\nsso_region = eu-central-1\n\
sso_account_id = 123456789012\nsso_role_name = ReadOnly\n");
        let sso = c.sso_profile("old").unwrap();
        assert_eq!(sso.session, None);
        assert_eq!(sso.start_url, "https://x.awsapps.com/start");
        assert_eq!(sso.sso_region, "eu-central-1");
        assert_eq!(sso.region, None);
        assert_eq!(sso.cache_key(), "https://x.awsapps.com/start");
        assert_eq!(sso.login_command(), "credsync login --profile old");
    }

    #[test]
    fn default_profile_is_sso() {
        let c = cfg(
            b"[default]\nsso_session = s\nsso_account_id = 1\nsso_role_name = R\n\
[sso-session s]\nsso_start_url = u\nsso_region = r\n",
        );
        let sso = c.sso_profile("default").unwrap();
        assert_eq!(
            (sso.profile.as_str(), sso.account_id.as_str()),
            ("default", "1")
        );
    }

    #[test]
    fn profile_default_and_default_later_section_wins() {
        let c = cfg(b"[default]\nregion = a\n[profile default]\nregion = b\n");
        assert_eq!(c.get("default").unwrap().keys["region"], "b");
        assert_eq!(c.get("default").unwrap().line, 3);
        let c = cfg(b"[profile default]\nregion = b\n[default]\nregion = a\n");
        assert_eq!(c.get("default").unwrap().keys["region"], "a");
        let c = cfg(b"[profile default]\nregion = b\n");
        assert_eq!(c.get("default").unwrap().keys["region"], "b");
    }

    #[test]
    fn comments_are_whole_lines_only() {
        let c = cfg(b"# top\n; also\n[default]\n  # indented comment\nregion = us-east-1 # not a comment\n;x = 1\n");
        let keys = &c.get("default").unwrap().keys;
        assert_eq!(keys["region"], "us-east-1 # not a comment");
        assert_eq!(keys.len(), 1);
    }

    #[test]
    fn continuation_lines_and_nested_sections() {
        let c = cfg(
            b"[default]\ns3 =\n  addressing_style = path\n  # c\n\n  signature_version = s3v4\n\n\
region = x\nnote = one\n\ttwo\n",
        );
        let keys = &c.get("default").unwrap().keys;
        assert_eq!(
            keys["s3"],
            "\naddressing_style = path\n\nsignature_version = s3v4"
        );
        assert_eq!(keys["region"], "x");
        assert_eq!(keys["note"], "one\ntwo");
        // An indented key line is a key; only deeper lines continue it.
        let c = cfg(b"[default]\n  a = 1\n  b = 2\n    c\n");
        let keys = &c.get("default").unwrap().keys;
        assert_eq!((keys["a"].as_str(), keys["b"].as_str()), ("1", "2\nc"));
    }

    #[test]
    fn nested_line_without_equals_is_an_error() {
        let e = err(b"[default]\ns3 =\n  addressing_style = path\n  oops\n");
        assert_eq!(syntax_line(&e), 4);
        assert!(e.to_string().contains("\"s3\""), "{e}");
    }

    #[test]
    fn colon_separator_and_uppercase_keys() {
        let c = cfg(b"[profile a]\nRegion: eu-west-1\nOutput  =  json  \nurl: https://x:1/y\n");
        let keys = &c.get("a").unwrap().keys;
        assert_eq!(keys["region"], "eu-west-1");
        assert_eq!(keys["output"], "json");
        assert_eq!(keys["url"], "https://x:1/y");
        // Indented under a key, a `key = value` line is part of that value (botocore agrees).
        let c = cfg(b"[profile a]\nRegion: eu-west-1\n  Output = json\n");
        assert_eq!(
            c.get("a").unwrap().keys["region"],
            "eu-west-1\nOutput = json"
        );
    }

    #[test]
    fn duplicate_section_is_an_error_with_its_line() {
        let e = err(b"[profile a]\nx = 1\n\n[profile a]\ny = 2\n");
        assert_eq!(syntax_line(&e), 4);
        let msg = e.to_string();
        assert!(
            msg.starts_with(
                "/home/u/.aws/config:4: section [profile a] appears twice (first at line 1)"
            ),
            "{msg}"
        );
    }

    #[test]
    fn duplicate_key_is_an_error_with_its_line() {
        let e = err(b"[default]\nregion = a\noutput = json\nREGION = b\n");
        assert_eq!(syntax_line(&e), 4);
        assert!(
            e.to_string()
                .contains("key \"region\" appears twice in [default] (first at line 2)"),
            "{e}"
        );
        // The same key in two sections is fine.
        cfg(b"[default]\nregion = a\n[profile b]\nregion = b\n");
    }

    #[test]
    fn key_before_section_is_an_error_with_its_line() {
        let e = err(b"# c\n\nregion = us-east-1\n[default]\n");
        assert_eq!(syntax_line(&e), 3);
        assert!(!e.to_string().contains("us-east-1"), "{e}");
    }

    #[test]
    fn line_without_separator_is_an_error_that_hides_the_line() {
        let e = err(b"[default]\nregion = a\nAKIASECRETLOOKING\n");
        assert_eq!(syntax_line(&e), 3);
        assert!(!e.to_string().contains("AKIA"), "{e}");
        assert_eq!(syntax_line(&err(b"[default]\n= x\n")), 2);
    }

    #[test]
    fn non_profile_sections_are_ignored() {
        let c = cfg(b"[foo]\nregion = a\n[preview]\ncloudfront = true\n[services s]\ns3 =\n  endpoint_url = x\n\
[profile]\na = 1\n[profile a b]\na = 1\n[profile \"my dev\"]\nregion = q\n[profile  spaced ]\nregion = r\n");
        assert_eq!(c.profiles.keys().collect::<Vec<_>>(), ["my dev", "spaced"]);
        assert!(c.sso_sessions.is_empty());
    }

    #[test]
    fn header_quirks_follow_configparser() {
        let c = cfg(b"[profile a] trailing\nx = 1\n[sso-session  corp ]\nsso_region = r\n[profile 'unclosed]\nx = 1\n");
        assert_eq!(c.profiles.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(c.sso_sessions.keys().collect::<Vec<_>>(), ["corp"]);
    }

    #[test]
    fn default_section_keys_are_inherited() {
        let c = cfg(b"[DEFAULT]\nregion = d\n[profile a]\n[profile b]\nregion = b\n");
        assert_eq!(c.get("a").unwrap().keys["region"], "d");
        assert_eq!(c.get("b").unwrap().keys["region"], "b");
        assert!(c.get("DEFAULT").is_none());
    }

    #[test]
    fn crlf_and_lone_cr_input() {
        let c =
            cfg(b"[profile a]\r\nregion = x\r\nnote = one\r\n  two\r\n\r\n[default]\rregion = y\r");
        assert_eq!(c.get("a").unwrap().keys["region"], "x");
        assert_eq!(c.get("a").unwrap().keys["note"], "one\ntwo");
        assert_eq!(c.get("default").unwrap().keys["region"], "y");
        assert_eq!(c.get("default").unwrap().line, 6);
        let e = err(b"[a]\r\nx = 1\r\nx = 2\r\n");
        assert_eq!(syntax_line(&e), 3);
    }

    #[test]
    fn unknown_profile_lists_names() {
        let c = cfg(SSO_SESSION);
        let e = c.sso_profile("prod").unwrap_err();
        assert_eq!(
            e,
            ProfileError::UnknownProfile {
                profile: "prod".into(),
                path: p(),
                known: vec!["default".into(), "dev".into()]
            }
        );
        assert!(
            e.to_string().ends_with("(profiles there: default, dev)"),
            "{e}"
        );
        let empty = cfg(b"");
        assert!(
            empty
                .sso_profile("x")
                .unwrap_err()
                .to_string()
                .ends_with("(it defines no profiles)")
        );
    }

    fn missing_key(text: &[u8], name: &str) -> (&'static str, usize) {
        match cfg(text).sso_profile(name).unwrap_err() {
            ProfileError::MissingKey {
                key, line, profile, ..
            } => {
                assert_eq!(profile, name);
                (key, line)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_missing_key() {
        let full = [
            "sso_start_url = u",
            "sso_region = r",
            "sso_account_id = 1",
            "sso_role_name = R",
        ];
        for (i, key) in [
            "sso_start_url",
            "sso_region",
            "sso_account_id",
            "sso_role_name",
        ]
        .iter()
        .enumerate()
        {
            let mut lines: Vec<&str> = vec!["[default]", "", "[profile x]"];
            lines.extend(
                full.iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, l)| *l),
            );
            let text = lines.join("\n");
            assert_eq!(missing_key(text.as_bytes(), "x"), (*key, 3), "{text}");
        }
        // sso_session profiles: the profile's own keys.
        let session = "[sso-session s]\nsso_start_url = u\nsso_region = r\n";
        let text = format!("[profile x]\nsso_session = s\nsso_role_name = R\n{session}");
        assert_eq!(missing_key(text.as_bytes(), "x"), ("sso_account_id", 1));
        let text = format!("[profile x]\nsso_session = s\nsso_account_id = 1\n{session}");
        assert_eq!(missing_key(text.as_bytes(), "x"), ("sso_role_name", 1));
    }

    #[test]
    fn session_problems() {
        let c = cfg(b"[profile x]\nsso_session = nope\nsso_account_id = 1\nsso_role_name = R\n");
        let e = c.sso_profile("x").unwrap_err();
        assert!(
            matches!(&e, ProfileError::UnknownSsoSession { session, line: 1, .. } if session == "nope"),
            "{e:?}"
        );
        for (missing, present) in [
            ("sso_start_url", "sso_region = r"),
            ("sso_region", "sso_start_url = u"),
        ] {
            let text = format!(
                "[profile x]\nsso_session = s\nsso_account_id = 1\nsso_role_name = R\n\n[sso-session s]\n{present}\n"
            );
            let e = cfg(text.as_bytes()).sso_profile("x").unwrap_err();
            assert_eq!(
                e,
                ProfileError::SessionMissingKey {
                    profile: "x".into(),
                    session: "s".into(),
                    path: p(),
                    line: 6,
                    key: missing
                }
            );
        }
    }

    #[test]
    fn profile_and_session_must_agree() {
        let text = b"[profile x]\nsso_session = s\nsso_account_id = 1\nsso_role_name = R\nsso_region = eu-west-1\n\
[sso-session s]\nsso_start_url = u\nsso_region = us-east-1\n";
        let e = cfg(text).sso_profile("x").unwrap_err();
        let ProfileError::Inconsistent {
            mismatch, line: 1, ..
        } = &e
        else {
            panic!("{e:?}")
        };
        assert_eq!(
            **mismatch,
            Mismatch {
                session: "s".into(),
                key: "sso_region".into(),
                profile_value: "eu-west-1".into(),
                session_value: "us-east-1".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "/home/u/.aws/config:1: profile \"x\" sets sso_region = \"eu-west-1\", but [sso-session s] \
             sets \"us-east-1\"; botocore refuses a mismatch: remove the profile's sso_region"
        );
        // Equal values are fine.
        let text = b"[profile x]\nsso_session = s\nsso_account_id = 1\nsso_role_name = R\nsso_region = us-east-1\n\
[sso-session s]\nsso_start_url = u\nsso_region = us-east-1\n";
        assert_eq!(cfg(text).sso_profile("x").unwrap().sso_region, "us-east-1");
    }

    #[test]
    fn unsupported_kinds() {
        let text = b"[profile role]\nrole_arn = arn:aws:iam::1:role/R\nsource_profile = dev\n\
[profile web]\nrole_arn = arn\nweb_identity_token_file = /t\n\
[profile proc]\ncredential_process = cat x\n\
[profile keys]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = s3cr3t\n\
[profile idonly]\naws_access_key_id = AKIAEXAMPLE\n\
[profile secretonly]\naws_secret_access_key = s3cr3t\n\
[profile empty]\n\
[profile regiononly]\nregion = x\noutput = json\n\
[profile chained]\nrole_arn = arn\nsso_session = s\n";
        let c = cfg(text);
        for (name, want_kind, line) in [
            ("role", "an assume-role profile (role_arn)", 1),
            ("web", "a web-identity profile (web_identity_token_file)", 4),
            ("proc", "a credential_process profile", 7),
            ("keys", "a static-keys profile", 9),
            // Half a key pair is still a static-keys profile (botocore says which half lacks).
            ("idonly", "a static-keys profile", 12),
            ("secretonly", "a static-keys profile", 14),
            ("empty", "empty", 16),
            (
                "regiononly",
                "a profile without credentials (it sets only output, region)",
                17,
            ),
            ("chained", "an assume-role profile (role_arn)", 20),
        ] {
            match c.sso_profile(name).unwrap_err() {
                ProfileError::Unsupported {
                    profile,
                    kind,
                    supported,
                    line: l,
                    ..
                } => {
                    assert_eq!(
                        (profile.as_str(), kind.as_str(), l),
                        (name, want_kind, line)
                    );
                    assert_eq!(supported, "SSO (sso_session or sso_start_url)");
                }
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn profile_debug_hides_keys() {
        let c = cfg(b"[default]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = s3cr3t\naws_session_token = tok\nregion = r\n");
        let shown = format!("{c:?}");
        for secret in ["AKIAEXAMPLE", "s3cr3t", "tok\""] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("\"region\": \"r\""), "{shown}");
    }

    #[test]
    fn credentials_file_sections_as_they_are() {
        let text = "[default]\naws_access_key_id = A\naws_secret_access_key = S\n\
[dev]\naws_access_key_id = B\naws_secret_access_key = T\n[profile odd]\nx = 1\n";
        let path = Path::new("/home/u/.aws/credentials");
        let creds = parse_credentials(text, path).unwrap();
        assert_eq!(
            creds.keys().collect::<Vec<_>>(),
            ["default", "dev", "profile odd"]
        );
        assert_eq!(creds["dev"]["aws_secret_access_key"], "T");
        let e = parse_credentials("[dev]\na = 1\n[dev]\n", path).unwrap_err();
        assert_eq!(e, ProfileError::Syntax {
            path: path.to_owned(),
            line: 3,
            message: "section [dev] appears twice (first at line 1); botocore cannot read a file with a duplicate section: merge the two".into(),
        });
    }

    #[test]
    fn shlex_like_python() {
        assert_eq!(
            shlex_split("profile \"my dev\"").unwrap(),
            ["profile", "my dev"]
        );
        assert_eq!(shlex_split("profile 'a b'c").unwrap(), ["profile", "a bc"]);
        assert_eq!(shlex_split("a\\ b  c").unwrap(), ["a b", "c"]);
        assert_eq!(shlex_split("p \"x\\\"y\\z\"").unwrap(), ["p", "x\"y\\z"]);
        assert_eq!(shlex_split("p ''").unwrap(), ["p", ""]);
        assert_eq!(shlex_split("p 'x"), None);
        assert_eq!(shlex_split("p x\\"), None);
    }

    proptest::proptest! {
        #![proptest_config(crate::test_support::proptest_config())]

        /// Duplicate sections are found by a look-up per header (linear in the file); the
        /// error must name the header a scan of the earlier headers names: the first repeated
        /// one, with the line of its first appearance. `[DEFAULT]` may repeat.
        #[test]
        fn a_duplicate_section_is_the_one_a_scan_of_earlier_headers_finds(
            names in proptest::collection::vec(
                proptest::sample::select(vec![
                    "default", "DEFAULT", "profile a", "profile  a", "profile b",
                    "sso-session corp", "services s",
                ]),
                0..12,
            )
        ) {
            let text: String = names
                .iter()
                .enumerate()
                .map(|(i, n)| format!("[{n}]\nk{i} = v\n"))
                .collect();
            let mut want = None;
            for (i, name) in names.iter().enumerate() {
                let earlier = names[..i].iter().position(|n| n == name);
                if let (Some(first), false) = (earlier, *name == "DEFAULT") {
                    want = Some((2 * i + 1, 2 * first + 1, *name));
                    break;
                }
            }
            match (parse(&text, &p()), want) {
                (Ok(_), None) => {}
                (Err(ProfileError::Syntax { line, message, .. }), Some((at, first, name))) => {
                    proptest::prop_assert_eq!(line, at);
                    let head = format!("section [{name}] appears twice (first at line {first})");
                    proptest::prop_assert!(message.starts_with(&head), "{}", message);
                }
                (got, want) => proptest::prop_assert!(false, "{:?} for {:?}: {:?}", got, text, want),
            }
        }
    }
}
