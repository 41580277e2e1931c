//! Role chains: how a profile's credentials are built from a base (SSO role credentials, static
//! keys, or the environment) and a list of STS AssumeRole hops. Pure: no network call here.
//!
//! [`plan`] is pure: it reads the parsed config and credentials files the way botocore's
//! `AssumeRoleProvider` does (`credentials.py`), and returns a [`Plan`], or why the profile cannot
//! be refreshed unattended. The rules, in botocore's order:
//!
//! - The profile view is botocore's `full_config`: a config profile with the credentials file's
//!   section of the same name laid over it (a profile may live in either file).
//! - The profile asked for: `role_arn` (without `web_identity_token_file`) makes it a role hop,
//!   whatever else it holds. Otherwise SSO keys make it an SSO profile, then static keys (the
//!   credentials file's, then the config file's) a static one; anything else is unsupported.
//! - A hop's source is `source_profile` or `credential_source`, never both, and one is required.
//!   `credential_source = Environment` reads `AWS_ACCESS_KEY_ID` and friends when resolving;
//!   `Ec2InstanceMetadata` and `EcsContainer` are not supported by credsync.
//! - A source profile with static keys, or without `role_arn`, is resolved as a plain profile
//!   (SSO, then the credentials file's keys, then the config's): its keys win over its own
//!   `role_arn`. A source profile with `role_arn` and no keys is another hop.
//! - A profile may name itself as `source_profile` when it holds static keys (keys and role in one
//!   section); any other return to a visited profile is a loop, reported as `a -> b -> a`.
//! - `mfa_serial` on any hop: STS would need a code typed by a person, so credsync refuses the
//!   profile ([`ChainError::MfaRequired`]) instead of failing at every refresh.
//! - `duration_seconds` must be a whole number of seconds in 900..=43200 (botocore silently drops
//!   a bad value; credsync says so instead). Note that AWS caps role *chaining* (a role assumed
//!   with role credentials, SSO ones included) at one hour: STS refuses more.
//!
//! Credentials sections credsync itself manages must be left out of the credentials map given to
//! [`plan`] (`ini_edit::source_credentials` gives that map): otherwise they are static keys, as
//! botocore sees them.
//!
//! The planner makes no call and knows no AWS edge: the STS calls that carry a plan out live in
//! `sts`, and the base credentials that need none (static keys, the environment's) are read by
//! `credsync::resolve::local_credentials`, at the edge.

use std::collections::BTreeMap;

use crate::aws_profile::{AwsConfig, Profile, ProfileError, SsoProfile};
use crate::secret::{Credentials, SecretString};

/// How a profile gets its credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Sso,
    AssumeRole,
    Static,
    /// An `aws login` session (`login_session`).
    Login,
    Unknown,
}

/// Where the first credentials of a chain come from.
#[derive(Debug, Clone)]
pub enum Base {
    /// SSO role credentials of this profile (GetRoleCredentials with the cached token).
    Sso(SsoProfile),
    /// The credentials of an `aws login` session, kept in its cache entry and renewed through
    /// AWS Sign-In.
    Login(LoginProfile),
    /// Long-term (or session) keys written in `profile`'s section of the credentials or config
    /// file; `expiration` is `None`.
    Static {
        profile: String,
        credentials: Credentials,
    },
    /// `credential_source = Environment`: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
    /// `AWS_SESSION_TOKEN` of credsync's own environment, as the AWS edge holds them
    /// (`resolve::environment_credentials_from`).
    Environment,
}

/// A profile with `login_session`: credentials from `aws login`'s cache entry for that session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginProfile {
    /// The profile that holds `login_session`.
    pub profile: String,
    /// `login_session`: the signed-in user's ARN, which names the cache entry.
    pub session: String,
    /// The profile's `region`: where AWS Sign-In is called.
    pub region: Option<String>,
}

impl LoginProfile {
    /// The command that signs this profile in again: `aws login --profile P` (plain
    /// `aws login` for `default`).
    pub fn login_command(&self) -> String {
        if self.profile == "default" {
            "aws login".to_owned()
        } else {
            format!("aws login --profile {}", self.profile)
        }
    }
}

/// One STS AssumeRole step of a chain, from one profile with `role_arn`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleHop {
    /// The profile that holds `role_arn`.
    pub profile: String,
    pub role_arn: String,
    /// `role_session_name`, else `credsync-<profile>` (see [`default_session_name`]).
    pub role_session_name: String,
    pub external_id: Option<String>,
    /// `duration_seconds` (900..=43200); `None` lets STS pick (one hour).
    pub duration_seconds: Option<i32>,
    /// The profile's own `region`, if any.
    pub(crate) region: Option<String>,
}

/// How to get a profile's credentials: the base, then each hop in order (`hops[0]` is signed
/// with the base credentials, `hops[1]` with `hops[0]`'s, ...). No hops for a plain SSO or
/// static profile; the last hop is the profile asked for.
#[derive(Debug, Clone)]
pub struct Plan {
    pub base: Base,
    pub hops: Vec<RoleHop>,
}

impl Plan {
    /// What `status` shows: `AssumeRole` when there is a hop, else the base's kind.
    pub fn kind(&self) -> Kind {
        if !self.hops.is_empty() {
            return Kind::AssumeRole;
        }
        match self.base {
            Base::Sso(_) => Kind::Sso,
            Base::Login(_) => Kind::Login,
            Base::Static { .. } | Base::Environment => Kind::Static,
        }
    }

    /// The `aws login` profile whose session the chain starts from, if it does.
    pub fn login(&self) -> Option<&LoginProfile> {
        match &self.base {
            Base::Login(login) => Some(login),
            _ => None,
        }
    }

    /// The SSO profile whose token the chain starts from, if it does.
    pub fn sso(&self) -> Option<&SsoProfile> {
        match &self.base {
            Base::Sso(sso) => Some(sso),
            _ => None,
        }
    }

    /// The region for STS calls: botocore uses the resolved profile's region for every hop, so
    /// the last hop's `region`, else the nearest earlier hop's, else `us-east-1` (STS's global
    /// endpoint region).
    pub fn sts_region(&self) -> &str {
        self.hops
            .iter()
            .rev()
            .find_map(|h| h.region.as_deref())
            .unwrap_or("us-east-1")
    }
}

/// Why a profile has no usable plan. Messages carry the file and line, never a key's value
/// (except names: profiles, `credential_source`, `duration_seconds`).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ChainError {
    /// The profile (or a source profile) is not there, or is not a kind credsync refreshes.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error(
        "{at}: profile {profile:?} names source_profile {source_profile:?}, but no such profile is in the config or credentials file"
    )]
    MissingSource {
        profile: String,
        source_profile: String,
        at: String,
    },
    /// `source_profile` leads back to a profile already in the chain.
    #[error(
        "{at}: source_profile loop: {}; a chain must end at a profile with SSO or static keys", .chain.join(" -> ")
    )]
    Cycle { chain: Vec<String>, at: String },
    #[error(
        "{at}: profile {profile:?} sets both source_profile and credential_source; botocore refuses this: keep one"
    )]
    BothSources { profile: String, at: String },
    #[error(
        "{at}: profile {profile:?} has role_arn but neither source_profile nor credential_source: add one"
    )]
    NoSource { profile: String, at: String },
    #[error(
        "{at}: profile {profile:?} has credential_source = {source_name}, which credsync does not support (only Environment): use source_profile"
    )]
    UnsupportedCredentialSource {
        profile: String,
        source_name: String,
        at: String,
    },
    /// `mfa_serial` on a hop: AssumeRole needs a code a person types.
    #[error(
        "{at}: profile {profile:?} needs an interactive MFA code (mfa_serial) to assume its role; credsync cannot refresh it unattended: use a role without mfa_serial, or SSO"
    )]
    MfaRequired { profile: String, at: String },
    #[error(
        "{at}: profile {profile:?} has duration_seconds = {value:?}; it must be a whole number of seconds from 900 to 43200"
    )]
    BadDuration {
        profile: String,
        value: String,
        at: String,
    },
    /// Only one of `aws_access_key_id` and `aws_secret_access_key`.
    #[error("{at}: profile {profile:?} has static keys without {missing}: add it")]
    PartialKeys {
        profile: String,
        missing: &'static str,
        at: String,
    },
    /// A source profile that resolves to nothing (botocore: "must have credentials").
    #[error(
        "{at}: profile {source_profile:?} (source_profile of {profile:?}) has no credentials: it needs SSO settings, static keys, or role_arn"
    )]
    SourceWithoutCredentials {
        profile: String,
        source_profile: String,
        at: String,
    },
}

/// What credsync can refresh, for `ProfileError::Unsupported`.
const SUPPORTED: &str = "SSO, aws login (login_session), assume-role (role_arn) and static-keys";

/// The key of an `aws login` profile.
const LOGIN_SESSION: &str = "login_session";

/// The static key names, in botocore's words.
const KEY_ID: &str = "aws_access_key_id";
const SECRET: &str = "aws_secret_access_key";
const TOKEN: &str = "aws_session_token";
const ACCOUNT_ID: &str = "aws_account_id";

/// Keys that make a profile an SSO profile (complete or not), as `AwsConfig::sso_profile` sees it.
const SSO_KEYS: [&str; 4] = [
    "sso_session",
    "sso_start_url",
    "sso_account_id",
    "sso_role_name",
];

/// The plan for `profile`: its base and role hops. `credentials` is the parsed credentials
/// file (without credsync's managed sections). Pure: nothing is read or called. To plan many
/// profiles of the same files, make one [`Planner`].
pub fn plan(
    aws: &AwsConfig,
    credentials: &BTreeMap<String, BTreeMap<String, String>>,
    profile: &str,
) -> Result<Plan, ChainError> {
    Planner::new(aws, credentials).plan(profile)
}

/// `credsync-<profile>`, with characters STS does not allow in a session name
/// (outside `[A-Za-z0-9_+=,.@-]`) replaced by `-`, cut to STS's 64 characters.
pub(crate) fn default_session_name(profile: &str) -> String {
    format!("credsync-{profile}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect()
}

/// Plans profiles of one pair of files: botocore's `full_config` (the config file's profiles with
/// the credentials file's sections laid over them) seen through the config without copying it,
/// so that planning every profile of a large config costs one pass, not one copy per profile.
pub struct Planner<'a> {
    aws: &'a AwsConfig,
    credentials: &'a BTreeMap<String, BTreeMap<String, String>>,
    /// For each credentials-file section: its config profile (if any) with the section's keys
    /// laid over it. Every other profile is the config file's as it is.
    overlaid: BTreeMap<&'a str, Profile>,
}

impl<'a> Planner<'a> {
    /// The planner of `aws` and `credentials` (the parsed credentials file, without credsync's
    /// managed sections).
    pub fn new(
        aws: &'a AwsConfig,
        credentials: &'a BTreeMap<String, BTreeMap<String, String>>,
    ) -> Self {
        let overlay = |(name, keys): (&'a String, &BTreeMap<String, String>)| {
            let mut profile = aws.get(name).cloned().unwrap_or_else(|| Profile {
                name: name.clone(),
                line: 0,
                keys: BTreeMap::new(),
            });
            profile
                .keys
                .extend(keys.iter().map(|(k, v)| (k.clone(), v.clone())));
            (name.as_str(), profile)
        };
        Planner {
            aws,
            credentials,
            overlaid: credentials.iter().map(overlay).collect(),
        }
    }

    /// Profile `name` in the merged view.
    fn profile(&self, name: &str) -> Option<&Profile> {
        self.overlaid.get(name).or_else(|| self.aws.get(name))
    }

    /// Where `profile` is written, for messages: `config:line`, or the credentials file section.
    fn at(&self, profile: &str) -> String {
        match self.aws.get(profile) {
            Some(p) => format!("{}:{}", self.aws.path.display(), p.line),
            None => format!("[{profile}] in the credentials file"),
        }
    }

    fn keys(&self, profile: &str) -> Option<&BTreeMap<String, String>> {
        self.profile(profile).map(|p| &p.keys)
    }

    /// `AwsConfig::sso_profile` of `profile` (which exists) in the merged view.
    fn sso_profile(&self, profile: &str) -> Result<SsoProfile, ProfileError> {
        match self.profile(profile) {
            Some(p) => self.aws.sso_of(p),
            None => self.aws.sso_profile(profile),
        }
    }

    /// The plan for `profile` (see [`plan`]).
    pub fn plan(&self, profile: &str) -> Result<Plan, ChainError> {
        let Some(keys) = self.keys(profile) else {
            let mut known: Vec<String> = self.aws.profiles.keys().cloned().collect();
            known.extend(self.credentials.keys().cloned());
            known.sort();
            known.dedup();
            return Err(ProfileError::UnknownProfile {
                profile: profile.to_owned(),
                path: self.aws.path.clone(),
                known,
            }
            .into());
        };
        if !is_role(keys) {
            let base = self
                .plain_base(profile)?
                .ok_or_else(|| self.unsupported(profile))?;
            return Ok(Plan {
                base,
                hops: Vec::new(),
            });
        }
        // Walk from the profile asked for down to the base, then reverse the hops.
        let mut visited = vec![profile.to_owned()];
        let mut hops = Vec::new();
        let mut current = profile.to_owned();
        let base = loop {
            let keys = self.keys(&current).expect("visited profiles exist");
            hops.push(self.hop(&current, keys)?);
            let source = match (keys.get("source_profile"), keys.get("credential_source")) {
                (Some(_), Some(_)) => {
                    return Err(ChainError::BothSources {
                        at: self.at(&current),
                        profile: current,
                    });
                }
                (None, None) => {
                    return Err(ChainError::NoSource {
                        at: self.at(&current),
                        profile: current,
                    });
                }
                (None, Some(source)) => break self.credential_source(&current, source)?,
                (Some(source), None) => source.clone(),
            };
            let Some(source_keys) = self.keys(&source) else {
                return Err(ChainError::MissingSource {
                    at: self.at(&current),
                    profile: current,
                    source_profile: source,
                });
            };
            if visited.contains(&source) {
                // botocore lets a profile source itself for its own static keys, nothing else.
                if source == current && has_static(source_keys) {
                    break self.static_base(&source)?;
                }
                let mut chain = visited;
                chain.push(source);
                return Err(ChainError::Cycle {
                    at: self.at(&current),
                    chain,
                });
            }
            visited.push(source.clone());
            if has_static(source_keys) || !is_role(source_keys) {
                match self.plain_base(&source)? {
                    Some(base) => break base,
                    None => {
                        return Err(ChainError::SourceWithoutCredentials {
                            profile: current,
                            at: self.at(&source),
                            source_profile: source,
                        });
                    }
                }
            }
            current = source;
        };
        hops.reverse();
        Ok(Plan { base, hops })
    }

    /// The hop of role profile `profile`.
    fn hop(&self, profile: &str, keys: &BTreeMap<String, String>) -> Result<RoleHop, ChainError> {
        if keys.contains_key("mfa_serial") {
            return Err(ChainError::MfaRequired {
                profile: profile.to_owned(),
                at: self.at(profile),
            });
        }
        let duration_seconds = match keys.get("duration_seconds") {
            None => None,
            Some(value) => match value.trim().parse::<i32>() {
                Ok(d) if (900..=43200).contains(&d) => Some(d),
                _ => {
                    return Err(ChainError::BadDuration {
                        profile: profile.to_owned(),
                        value: value.clone(),
                        at: self.at(profile),
                    });
                }
            },
        };
        Ok(RoleHop {
            profile: profile.to_owned(),
            role_arn: keys.get("role_arn").cloned().unwrap_or_default(),
            role_session_name: keys
                .get("role_session_name")
                .cloned()
                .unwrap_or_else(|| default_session_name(profile)),
            external_id: keys.get("external_id").cloned(),
            duration_seconds,
            region: keys.get("region").cloned(),
        })
    }

    fn credential_source(&self, profile: &str, source: &str) -> Result<Base, ChainError> {
        match source {
            "Environment" => Ok(Base::Environment),
            other => Err(ChainError::UnsupportedCredentialSource {
                profile: profile.to_owned(),
                source_name: other.to_owned(),
                at: self.at(profile),
            }),
        }
    }

    /// A profile resolved without assuming its role, in botocore's profile-provider order:
    /// web identity (unsupported), SSO, the credentials file's keys, `login_session`,
    /// `credential_process` (unsupported), the config file's keys. `None` when it has none of
    /// these.
    fn plain_base(&self, profile: &str) -> Result<Option<Base>, ChainError> {
        let keys = self.keys(profile).expect("checked by the caller");
        if keys.contains_key("web_identity_token_file")
            || SSO_KEYS.iter().any(|k| keys.contains_key(*k))
        {
            // sso_profile reports web identity as unsupported, and SSO problems precisely.
            let sso = self.sso_profile(profile).map_err(|e| self.restate(e))?;
            return Ok(Some(Base::Sso(sso)));
        }
        let in_credentials = self.credentials.get(profile).is_some_and(has_static);
        if has_static(keys) && (in_credentials || !keys.contains_key(LOGIN_SESSION)) {
            return self.static_base(profile).map(Some);
        }
        if let Some(session) = keys.get(LOGIN_SESSION) {
            return Ok(Some(Base::Login(LoginProfile {
                profile: profile.to_owned(),
                session: session.clone(),
                region: keys.get("region").cloned(),
            })));
        }
        if keys.contains_key("credential_process") {
            return Err(self.unsupported(profile));
        }
        Ok(None)
    }

    /// Static keys of `profile`: the credentials file's section when it has keys, else the
    /// config file's (botocore's SharedCredentialProvider comes before its ConfigProvider).
    fn static_base(&self, profile: &str) -> Result<Base, ChainError> {
        let from_credentials = self.credentials.get(profile).filter(|k| has_static(k));
        let (keys, at) = match from_credentials {
            Some(keys) => (keys, format!("[{profile}] in the credentials file")),
            None => (
                self.aws
                    .get(profile)
                    .map(|p| &p.keys)
                    .expect("has_static held"),
                self.at(profile),
            ),
        };
        let get = |key: &'static str| {
            keys.get(key).ok_or_else(|| ChainError::PartialKeys {
                profile: profile.to_owned(),
                missing: key,
                at: at.clone(),
            })
        };
        let key_id = get(KEY_ID)?;
        let secret = get(SECRET)?;
        Ok(Base::Static {
            profile: profile.to_owned(),
            credentials: Credentials {
                access_key_id: SecretString::from(key_id.clone()),
                secret_access_key: SecretString::from(secret.clone()),
                session_token: keys
                    .get(TOKEN)
                    .filter(|t| !t.is_empty())
                    .map(|t| SecretString::from(t.clone())),
                expiration: None,
                // botocore's SharedCredentialProvider and ConfigProvider read it beside the keys.
                account_id: keys
                    .get(ACCOUNT_ID)
                    .map(|a| a.trim())
                    .filter(|a| !a.is_empty())
                    .map(str::to_owned),
            },
        })
    }

    /// `sso_profile`'s "unsupported" error for `profile`, saying what credsync now supports.
    fn unsupported(&self, profile: &str) -> ChainError {
        match self.sso_profile(profile) {
            Err(e) => self.restate(e),
            // Unreachable for the callers (the profile has no SSO keys), but harmless.
            Ok(sso) => ChainError::Profile(ProfileError::Unsupported {
                profile: sso.profile,
                path: self.aws.path.clone(),
                line: 0,
                kind: String::from("unknown"),
                supported: SUPPORTED,
            }),
        }
    }

    fn restate(&self, e: ProfileError) -> ChainError {
        match e {
            ProfileError::Unsupported {
                profile,
                path,
                line,
                kind,
                ..
            } => ChainError::Profile(ProfileError::Unsupported {
                profile,
                path,
                line,
                kind,
                supported: SUPPORTED,
            }),
            other => ChainError::Profile(other),
        }
    }
}

/// The account of an ARN (`arn:<partition>:<service>:<region>:<account>:<resource>`), when it
/// has one of AWS's 12-digit account ids there. STS's `AssumedRoleUser.Arn`
/// (`arn:aws:sts::123456789012:assumed-role/Role/session`) and a `role_arn` both carry it.
pub fn arn_account(arn: &str) -> Option<&str> {
    let fields: Vec<&str> = arn.splitn(6, ':').collect();
    match fields[..] {
        ["arn", _, _, _, account, _]
            if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Some(account)
        }
        _ => None,
    }
}

/// botocore's `_has_assume_role_config_vars`.
fn is_role(keys: &BTreeMap<String, String>) -> bool {
    keys.contains_key("role_arn") && !keys.contains_key("web_identity_token_file")
}

/// botocore's `_has_static_credentials`: either key is enough.
fn has_static(keys: &BTreeMap<String, String>) -> bool {
    keys.contains_key(KEY_ID) || keys.contains_key(SECRET)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::ExposeSecret;
    use std::path::Path;

    fn cfg(text: &[u8]) -> AwsConfig {
        crate::aws_profile::parse(
            std::str::from_utf8(text).unwrap(),
            Path::new("/home/u/.aws/config"),
        )
        .unwrap()
    }

    fn creds(text: &[u8]) -> BTreeMap<String, BTreeMap<String, String>> {
        crate::aws_profile::parse_credentials(
            std::str::from_utf8(text).unwrap(),
            Path::new("/home/u/.aws/credentials"),
        )
        .unwrap()
    }

    fn plan_of(config: &[u8], credentials: &[u8], profile: &str) -> Result<Plan, ChainError> {
        plan(&cfg(config), &creds(credentials), profile)
    }

    #[test]
    fn a_login_session_is_a_base_directly_and_as_a_role_source_in_botocores_order() {
        let config = b"[profile dev]\nlogin_session = arn:aws:iam::111122223333:user/alice\nregion = eu-west-1\n\n[profile admin]\nrole_arn = arn:aws:iam::444455556666:role/Admin\nsource_profile = dev\n\n[profile both]\nlogin_session = arn:aws:iam::111122223333:user/bob\naws_access_key_id = AKIDCONFIG\naws_secret_access_key = config-secret\n";
        let p = plan_of(config, b"", "dev").unwrap();
        assert_eq!(p.kind(), Kind::Login);
        let login = p.login().expect("a login base");
        assert_eq!(login.session, "arn:aws:iam::111122223333:user/alice");
        assert_eq!(login.region.as_deref(), Some("eu-west-1"));
        assert_eq!(login.login_command(), "aws login --profile dev");
        let p = plan_of(config, b"", "admin").unwrap();
        assert_eq!(p.kind(), Kind::AssumeRole);
        assert_eq!(p.login().map(|l| l.profile.as_str()), Some("dev"));
        assert_eq!(p.hops.len(), 1);
        // botocore: the credentials file's keys, then login_session, then the config's keys.
        let p = plan_of(config, b"", "both").unwrap();
        assert_eq!(p.kind(), Kind::Login);
        let p = plan_of(
            config,
            b"[both]\naws_access_key_id = AKIDFILE\naws_secret_access_key = file-secret\n",
            "both",
        )
        .unwrap();
        assert_eq!(static_keys(&p.base).0, "AKIDFILE");
    }

    fn static_keys(base: &Base) -> (&str, &str, Option<&str>, &str) {
        match base {
            Base::Static {
                profile,
                credentials,
            } => {
                assert_eq!(credentials.expiration, None);
                (
                    credentials.access_key_id.expose_secret(),
                    credentials.secret_access_key.expose_secret(),
                    credentials
                        .session_token
                        .as_ref()
                        .map(|t| t.expose_secret()),
                    profile,
                )
            }
            other => panic!("not static: {other:?}"),
        }
    }

    const SSO: &[u8] = b"[sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\nsso_region = eu-west-1\n\
[profile dev]\nsso_session = corp\nsso_account_id = 111111111111\nsso_role_name = Dev\nregion = eu-central-1\n";

    #[test]
    fn sso_profile_is_a_plan_without_hops() {
        let p = plan_of(SSO, b"", "dev").unwrap();
        assert!(p.hops.is_empty());
        assert_eq!(p.kind(), Kind::Sso);
        let sso = p.sso().unwrap();
        assert_eq!(
            (
                sso.profile.as_str(),
                sso.account_id.as_str(),
                sso.session.as_deref()
            ),
            ("dev", "111111111111", Some("corp"))
        );
    }

    #[test]
    fn static_keys_from_the_credentials_file() {
        let p = plan_of(
            b"[profile ci]\nregion = x\n",
            b"[ci]\naws_access_key_id = AKIACI\naws_secret_access_key = s3cr3t\naws_session_token = tok\n",
            "ci",
        )
        .unwrap();
        assert_eq!(p.kind(), Kind::Static);
        assert!(p.hops.is_empty() && p.sso().is_none());
        assert_eq!(
            static_keys(&p.base),
            ("AKIACI", "s3cr3t", Some("tok"), "ci")
        );
        // A profile only in the credentials file is a profile too.
        let p = plan_of(
            b"",
            b"[other]\naws_access_key_id = AKIAO\naws_secret_access_key = o\n",
            "other",
        )
        .unwrap();
        assert_eq!(static_keys(&p.base), ("AKIAO", "o", None, "other"));
    }

    #[test]
    fn static_keys_from_the_config_file_lose_to_the_credentials_file() {
        let config = b"[profile k]\naws_access_key_id = AKIACONFIG\naws_secret_access_key = c\n";
        let p = plan_of(config, b"", "k").unwrap();
        assert_eq!(static_keys(&p.base), ("AKIACONFIG", "c", None, "k"));
        let p = plan_of(
            config,
            b"[k]\naws_access_key_id = AKIACREDS\naws_secret_access_key = f\n",
            "k",
        )
        .unwrap();
        assert_eq!(static_keys(&p.base), ("AKIACREDS", "f", None, "k"));
    }

    #[test]
    fn static_keys_carry_the_account_id_of_their_own_section() {
        let account = |config: &[u8], credentials: &[u8]| match plan_of(config, credentials, "k")
            .unwrap()
            .base
        {
            Base::Static { credentials, .. } => credentials.account_id,
            other => panic!("not static: {other:?}"),
        };
        let config = b"[profile k]\naws_access_key_id = AKIAC\naws_secret_access_key = c\n\
                       aws_account_id = 111111111111\n";
        assert_eq!(account(config, b"").as_deref(), Some("111111111111"));
        // The credentials file's keys win, and botocore reads the account beside them only.
        let credentials = b"[k]\naws_access_key_id = AKIAF\naws_secret_access_key = f\n";
        assert_eq!(account(config, credentials), None);
        let credentials = b"[k]\naws_access_key_id = AKIAF\naws_secret_access_key = f\n\
                            aws_account_id = 222222222222\n";
        assert_eq!(
            account(config, credentials).as_deref(),
            Some("222222222222")
        );
        let blank =
            b"[k]\naws_access_key_id = AKIAF\naws_secret_access_key = f\naws_account_id =\n";
        assert_eq!(account(b"", blank), None);
    }

    #[test]
    fn the_account_of_an_arn() {
        let sts = "arn:aws:sts::123456789012:assumed-role/Role/credsync-dev";
        assert_eq!(arn_account(sts), Some("123456789012"));
        assert_eq!(
            arn_account("arn:aws-cn:iam::210987654321:role/a:b/c"),
            Some("210987654321")
        );
        for bad in [
            "",
            "arn:aws:iam::1:role/R",
            "arn:aws:iam::12345678901x:role/R",
            "arn:aws:iam::123456789012",
            "nra:aws:iam::123456789012:role/R",
        ] {
            assert_eq!(arn_account(bad), None, "{bad}");
        }
    }

    #[test]
    fn environment_base() {
        let p = plan_of(
            b"[profile r]\nrole_arn = arn:aws:iam::1:role/R\ncredential_source = Environment\n",
            b"",
            "r",
        )
        .unwrap();
        assert!(matches!(p.base, Base::Environment));
        assert_eq!(p.kind(), Kind::AssumeRole);
        assert_eq!(p.hops.len(), 1);
        assert_eq!(p.hops[0].role_session_name, "credsync-r");
        assert_eq!(p.sts_region(), "us-east-1");
    }

    #[test]
    fn unsupported_credential_sources() {
        for source in ["Ec2InstanceMetadata", "EcsContainer", "Bogus"] {
            let text = format!("[profile r]\nrole_arn = arn\ncredential_source = {source}\n");
            let e = plan_of(text.as_bytes(), b"", "r").unwrap_err();
            assert_eq!(
                e,
                ChainError::UnsupportedCredentialSource {
                    profile: "r".into(),
                    source_name: source.into(),
                    at: "/home/u/.aws/config:1".into()
                }
            );
            assert!(e.to_string().contains("only Environment"), "{e}");
        }
    }

    #[test]
    fn two_hops_from_sso() {
        let mut text = SSO.to_vec();
        text.extend_from_slice(
            b"[profile a]\nrole_arn = arn:aws:iam::222222222222:role/A\nsource_profile = dev\n\
role_session_name = alice\nexternal_id = ext-a\n\
[profile b]\nrole_arn = arn:aws:iam::333333333333:role/B\nsource_profile = a\nduration_seconds = 900\n\
region = us-west-2\nexternal_id = ext-b\n",
        );
        let p = plan_of(&text, b"", "b").unwrap();
        assert_eq!(p.kind(), Kind::AssumeRole);
        assert_eq!(p.sso().unwrap().profile, "dev");
        assert_eq!(
            p.hops,
            [
                RoleHop {
                    profile: "a".into(),
                    role_arn: "arn:aws:iam::222222222222:role/A".into(),
                    role_session_name: "alice".into(),
                    external_id: Some("ext-a".into()),
                    duration_seconds: None,
                    region: None,
                },
                RoleHop {
                    profile: "b".into(),
                    role_arn: "arn:aws:iam::333333333333:role/B".into(),
                    role_session_name: "credsync-b".into(),
                    external_id: Some("ext-b".into()),
                    duration_seconds: Some(900),
                    region: Some("us-west-2".into()),
                },
            ]
        );
        assert_eq!(p.sts_region(), "us-west-2");
        // The first hop alone.
        let p = plan_of(&text, b"", "a").unwrap();
        assert_eq!(p.hops.len(), 1);
        assert_eq!(p.hops[0].profile, "a");
    }

    #[test]
    fn source_with_static_keys_wins_over_its_role() {
        // botocore: a source profile with static keys is used for its keys, not its role.
        let p = plan_of(
            b"[profile src]\nrole_arn = arn:aws:iam::1:role/Ignored\nsource_profile = nowhere\n\
[profile r]\nrole_arn = arn:aws:iam::1:role/R\nsource_profile = src\n",
            b"[src]\naws_access_key_id = AKIASRC\naws_secret_access_key = s\n",
            "r",
        )
        .unwrap();
        assert_eq!(static_keys(&p.base), ("AKIASRC", "s", None, "src"));
        assert_eq!(p.hops.len(), 1);
        assert_eq!(p.hops[0].role_arn, "arn:aws:iam::1:role/R");
    }

    #[test]
    fn role_in_the_credentials_file() {
        let p = plan_of(
            b"[profile base]\naws_access_key_id = AKIAB\naws_secret_access_key = b\n",
            b"[r]\nrole_arn = arn:aws:iam::1:role/R\nsource_profile = base\n",
            "r",
        )
        .unwrap();
        assert_eq!(static_keys(&p.base).0, "AKIAB");
        assert_eq!(p.hops[0].role_arn, "arn:aws:iam::1:role/R");
    }

    #[test]
    fn cycle_names_the_loop() {
        let text = b"[profile a]\nrole_arn = arn:a\nsource_profile = b\n\
[profile b]\nrole_arn = arn:b\nsource_profile = c\n\
[profile c]\nrole_arn = arn:c\nsource_profile = a\n";
        let e = plan_of(text, b"", "a").unwrap_err();
        assert_eq!(
            e,
            ChainError::Cycle {
                chain: vec!["a".into(), "b".into(), "c".into(), "a".into()],
                at: "/home/u/.aws/config:7".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "/home/u/.aws/config:7: source_profile loop: a -> b -> c -> a; a chain must end at a \
             profile with SSO or static keys"
        );
        let e = plan_of(text, b"", "b").unwrap_err();
        assert!(e.to_string().contains("b -> c -> a -> b"), "{e}");
        // Itself, without keys: a loop too.
        let e = plan_of(
            b"[profile s]\nrole_arn = arn\nsource_profile = s\n",
            b"",
            "s",
        )
        .unwrap_err();
        assert!(e.to_string().contains("loop: s -> s;"), "{e}");
    }

    #[test]
    fn self_reference_with_static_keys_uses_them() {
        let p = plan_of(
            b"[profile s]\nrole_arn = arn:aws:iam::1:role/S\nsource_profile = s\n",
            b"[s]\naws_access_key_id = AKIASELF\naws_secret_access_key = self\n",
            "s",
        )
        .unwrap();
        assert_eq!(static_keys(&p.base), ("AKIASELF", "self", None, "s"));
        assert_eq!(p.hops.len(), 1);
        assert_eq!(p.hops[0].role_arn, "arn:aws:iam::1:role/S");
        // Same with the keys in the config file.
        let p = plan_of(
            b"[profile s]\nrole_arn = arn:aws:iam::1:role/S\nsource_profile = s\n\
aws_access_key_id = AKIACFG\naws_secret_access_key = cfg\n",
            b"",
            "s",
        )
        .unwrap();
        assert_eq!(static_keys(&p.base).0, "AKIACFG");
    }

    #[test]
    fn mfa_serial_needs_a_person() {
        let mut text = SSO.to_vec();
        text.extend_from_slice(
            b"[profile a]\nrole_arn = arn:a\nsource_profile = dev\nmfa_serial = arn:aws:iam::1:mfa/me\n\
[profile b]\nrole_arn = arn:b\nsource_profile = a\n",
        );
        for profile in ["a", "b"] {
            let e = plan_of(&text, b"", profile).unwrap_err();
            assert!(matches!(e, ChainError::MfaRequired { .. }), "{e:?}");
            assert_eq!(
                e.to_string(),
                "/home/u/.aws/config:9: profile \"a\" needs an interactive MFA code (mfa_serial) \
                 to assume its role; credsync cannot refresh it unattended: use a role without \
                 mfa_serial, or SSO"
            );
        }
    }

    #[test]
    fn both_sources_is_refused() {
        let e = plan_of(
            b"[profile r]\nrole_arn = arn\nsource_profile = x\ncredential_source = Environment\n[profile x]\naws_access_key_id = A\naws_secret_access_key = B\n",
            b"",
            "r",
        )
        .unwrap_err();
        assert_eq!(
            e,
            ChainError::BothSources {
                profile: "r".into(),
                at: "/home/u/.aws/config:1".into()
            }
        );
        let e = plan_of(b"[profile r]\nrole_arn = arn\n", b"", "r").unwrap_err();
        assert!(matches!(e, ChainError::NoSource { .. }), "{e:?}");
    }

    #[test]
    fn missing_source_profile_is_named() {
        let e = plan_of(
            b"[profile x]\nregion = r\n[profile r]\nrole_arn = arn\nsource_profile = gone\n",
            b"",
            "r",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "/home/u/.aws/config:3: profile \"r\" names source_profile \"gone\", but no such \
             profile is in the config or credentials file"
        );
        // A source with nothing in it.
        let e = plan_of(
            b"[profile x]\nregion = r\n[profile r]\nrole_arn = arn\nsource_profile = x\n",
            b"",
            "r",
        )
        .unwrap_err();
        assert!(
            matches!(&e, ChainError::SourceWithoutCredentials { source_profile, .. } if source_profile == "x"),
            "{e:?}"
        );
    }

    #[test]
    fn bad_duration_says_where() {
        for value in ["899", "43201", "1h", "", "3600.5"] {
            let text = format!(
                "[profile r]\nrole_arn = arn\ncredential_source = Environment\nduration_seconds = {value}\n"
            );
            let e = plan_of(text.as_bytes(), b"", "r").unwrap_err();
            assert_eq!(
                e,
                ChainError::BadDuration {
                    profile: "r".into(),
                    value: value.into(),
                    at: "/home/u/.aws/config:1".into()
                },
                "{value}"
            );
        }
        for (value, want) in [("900", 900), ("43200", 43200), (" 3600 ", 3600)] {
            let text = format!(
                "[profile r]\nrole_arn = arn\ncredential_source = Environment\nduration_seconds = {value}\n"
            );
            assert_eq!(
                plan_of(text.as_bytes(), b"", "r").unwrap().hops[0].duration_seconds,
                Some(want)
            );
        }
    }

    #[test]
    fn partial_static_keys() {
        let e = plan_of(
            b"[profile r]\nrole_arn = arn\nsource_profile = k\n",
            b"[k]\naws_access_key_id = AKIAK\n",
            "r",
        )
        .unwrap_err();
        assert_eq!(
            e,
            ChainError::PartialKeys {
                profile: "k".into(),
                missing: "aws_secret_access_key",
                at: "[k] in the credentials file".into()
            }
        );
        assert!(!e.to_string().contains("AKIAK"), "{e}");
    }

    #[test]
    fn unsupported_and_unknown_profiles() {
        let e = plan_of(b"[profile p]\ncredential_process = cat x\n", b"", "p").unwrap_err();
        let ChainError::Profile(ProfileError::Unsupported {
            kind, supported, ..
        }) = &e
        else {
            panic!("{e:?}")
        };
        assert_eq!(kind, "a credential_process profile");
        assert_eq!(*supported, SUPPORTED);
        let e = plan_of(
            b"[profile w]\nrole_arn = arn\nweb_identity_token_file = /t\n",
            b"",
            "w",
        )
        .unwrap_err();
        assert!(e.to_string().contains("web-identity"), "{e}");
        let e = plan_of(b"[profile p]\nregion = x\n", b"[c]\nx = 1\n", "nope").unwrap_err();
        assert!(
            matches!(&e, ChainError::Profile(ProfileError::UnknownProfile { known, .. }) if known == &["c", "p"]),
            "{e:?}"
        );
        // An SSO source with a problem reports the SSO problem.
        let e = plan_of(
            b"[profile s]\nsso_session = missing\nsso_account_id = 1\nsso_role_name = R\n\
[profile r]\nrole_arn = arn\nsource_profile = s\n",
            b"",
            "r",
        )
        .unwrap_err();
        assert!(
            matches!(
                &e,
                ChainError::Profile(ProfileError::UnknownSsoSession { .. })
            ),
            "{e:?}"
        );
    }

    #[test]
    fn default_session_names_are_valid_for_sts() {
        assert_eq!(default_session_name("dev"), "credsync-dev");
        assert_eq!(default_session_name("my dev/ü"), "credsync-my-dev--");
        assert_eq!(
            default_session_name("a.b@c=d,e+f_g"),
            "credsync-a.b@c=d,e+f_g"
        );
        let long = default_session_name(&"x".repeat(100));
        assert_eq!(long.len(), 64);
        assert!(long.starts_with("credsync-xxx"));
    }

    /// Sections of a few names, each with some of the keys that decide a plan.
    fn sections()
    -> impl proptest::strategy::Strategy<Value = Vec<(&'static str, Vec<&'static str>)>> {
        use proptest::prelude::*;
        let keys = proptest::sample::subsequence(
            vec![
                "sso_session = corp",
                "sso_account_id = 111122223333",
                "sso_role_name = Dev",
                "region = eu-west-1",
                "role_arn = arn:aws:iam::1:role/r",
                "source_profile = a",
                "aws_access_key_id = AKID",
                "aws_secret_access_key = SECRET",
            ],
            0..5,
        );
        let name = proptest::sample::select(vec!["a", "b", "c", "default"]);
        proptest::collection::btree_map(name, keys, 0..4)
            .prop_map(|m| m.into_iter().collect::<Vec<_>>())
    }

    proptest::proptest! {
        #![proptest_config(crate::test_support::proptest_config())]

        /// The planner sees the config through its credentials-file overlay instead of copying
        /// it (a copy per profile made planning N profiles quadratic). Every profile it sees
        /// must be what laying the credentials file over a copy of the config gives (botocore's
        /// `full_config`), and an unknown profile's error must list the names of that copy.
        #[test]
        fn the_planner_sees_the_config_with_the_credentials_file_laid_over(
            config in sections(),
            credentials in sections(),
        ) {
            let render = |s: &[(&str, Vec<&str>)], prefix: bool| -> String {
                s.iter()
                    .map(|(name, keys)| {
                        let head = match (prefix, *name) {
                            (true, n) if n != "default" => format!("profile {n}"),
                            (_, n) => n.to_owned(),
                        };
                        format!("[{head}]\n{}\n", keys.join("\n"))
                    })
                    .collect()
            };
            let mut config_text =
                "[sso-session corp]\nsso_start_url = https://x\nsso_region = us-east-1\n".to_owned();
            config_text += &render(&config, true);
            let aws = cfg(config_text.as_bytes());
            let credentials = creds(render(&credentials, false).as_bytes());
            // The copy: the config with the credentials file's sections laid over it.
            let mut merged = aws.clone();
            for (name, keys) in &credentials {
                let p = merged.profiles.entry(name.clone()).or_insert_with(|| Profile {
                    name: name.clone(),
                    line: 0,
                    keys: BTreeMap::new(),
                });
                p.keys.extend(keys.clone());
            }
            let planner = Planner::new(&aws, &credentials);
            for name in ["a", "b", "c", "default", "zz"] {
                let seen = planner.profile(name).map(|p| (&p.name, p.line, &p.keys));
                let want = merged.get(name).map(|p| (&p.name, p.line, &p.keys));
                proptest::prop_assert_eq!(seen, want);
                if let Err(ChainError::Profile(ProfileError::UnknownProfile { known, .. })) =
                    planner.plan(name)
                {
                    let names: Vec<String> = merged.profiles.keys().cloned().collect();
                    proptest::prop_assert_eq!(known, names);
                }
            }
        }
    }
}
