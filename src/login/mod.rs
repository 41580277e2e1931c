//! Signing in to IAM Identity Center without the AWS CLI: `credsync login` and `logout`.
//!
//! Two flows, as the AWS CLI v2 has them: authorization code with PKCE ([`authcode`], for
//! sso-session profiles where a browser can open on this machine) and device authorization
//! ([`device`], for legacy `sso_start_url` profiles, `--device-code`, and where no browser can
//! open). Both share the AWS CLI's files ([`registration`] and the token cache of
//! [`crate::sso_cache`]), so the AWS CLI, botocore and credsync use one sign-in, and both run under
//! the session's lock ([`crate::sso_cache::lock`]), so that two commands and the daemon never sign
//! in or refresh one session at once.
//!
//! [`login`] is the sequence for one session: lock; a token with more than 15 minutes left is
//! kept; an older one is renewed with its refresh token when it can be; otherwise a client
//! registration (cached, or `RegisterClient`), the flow, and the new token written. [`logout`]
//! is `sso:Logout` and the token file removed (the registration stays).

pub(crate) mod authcode;
pub mod aws_login;
pub(crate) mod callback;
pub(crate) mod device;
pub mod opener;
pub(crate) mod page;
pub(crate) mod pkce;
pub mod registration;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_ssooidc::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ssooidc::operation::create_token::CreateTokenOutput;

use crate::aws::{self, Clients, Reading, ResolveError};
use crate::aws_profile::{AwsConfig, ProfileError};
use crate::process::Runner;
use crate::secret::{ExposeSecret, SecretString};
use crate::sso_cache::{self, CachedToken};
use crate::timefmt;
use crate::write::WriteError;

use crate::sso_cache::lock::{LockError, SessionLock};
use opener::Opener;
use registration::{Grant, Registration};

/// The longest a sign-in waits for the user (the browser's callback, or the device approval
/// when the service gives no lifetime).
pub(crate) const TIME_LIMIT: Duration = Duration::from_secs(10 * 60);

/// How long a `credsync login` waits for another sign-in of the same session to finish.
pub(crate) const LOCK_WAIT: Duration = Duration::from_secs(11 * 60);

/// A token with less than this left is signed in again (botocore's window).
pub(crate) const TOKEN_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The service name in errors.
const SERVICE: &str = "SSO-OIDC";

/// One session to sign in to: an `[sso-session]`, or a legacy profile's start URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInTarget {
    /// The sso-session's name; `None` for a legacy profile.
    pub(crate) session: Option<String>,
    /// The legacy profile the start URL comes from (for messages).
    pub(crate) profile: Option<String>,
    pub(crate) start_url: String,
    /// `sso_region`: where SSO-OIDC and the SSO portal are called.
    pub(crate) region: String,
    /// `sso_registration_scopes`, as configured (`None` when not set, and for legacy profiles).
    pub(crate) scopes: Option<Vec<String>>,
}

impl SignInTarget {
    /// What names the token file: the session name, else the start URL.
    pub(crate) fn cache_key(&self) -> &str {
        self.session.as_deref().unwrap_or(&self.start_url)
    }

    /// `sso-session "corp"`, or `start URL https://… (profile "p")`.
    pub fn label(&self) -> String {
        match (&self.session, &self.profile) {
            (Some(s), _) => format!("sso-session {s:?}"),
            (None, Some(p)) => format!("start URL {} (profile {p:?})", self.start_url),
            (None, None) => format!("start URL {}", self.start_url),
        }
    }

    /// The key of this target's client registration in the cache.
    pub(crate) fn registration_key(&self) -> registration::Key<'_> {
        registration::Key {
            start_url: &self.start_url,
            region: &self.region,
            scopes: self.scopes.as_deref(),
            session_name: self.session.as_deref(),
        }
    }

    /// The command that signs in to this target.
    pub(crate) fn login_command(&self) -> String {
        match (&self.session, &self.profile) {
            (Some(s), _) => format!("credsync login --sso-session {s}"),
            (None, Some(p)) => format!("credsync login --profile {p}"),
            (None, None) => "credsync login".to_owned(),
        }
    }
}

/// `sso_registration_scopes` as the AWS CLI reads it: comma-separated, blanks dropped.
pub(crate) fn parse_scopes(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The target of `[sso-session name]` in `aws`.
pub fn session_target(aws: &AwsConfig, name: &str) -> Result<SignInTarget, LoginError> {
    let Some(session) = aws.sso_sessions.get(name) else {
        let known: Vec<&str> = aws.sso_sessions.keys().map(String::as_str).collect();
        return Err(LoginError::Config(format!(
            "there is no [sso-session {name}] in {}{}",
            aws.path.display(),
            if known.is_empty() {
                String::new()
            } else {
                format!(" (it has: {})", known.join(", "))
            }
        )));
    };
    let get = |key: &str| {
        session.keys.get(key).cloned().ok_or_else(|| {
            LoginError::Config(format!(
                "{}:{}: [sso-session {name}] has no {key}; add it (the AWS CLI's `aws configure \
                 sso-session` writes it)",
                aws.path.display(),
                session.line
            ))
        })
    };
    Ok(SignInTarget {
        session: Some(name.to_owned()),
        profile: None,
        start_url: get("sso_start_url")?,
        region: get("sso_region")?,
        scopes: session
            .keys
            .get("sso_registration_scopes")
            .map(|raw| parse_scopes(raw)),
    })
}

/// The target profile `name` signs in with: its sso-session, or its legacy start URL.
pub fn profile_target(aws: &AwsConfig, name: &str) -> Result<SignInTarget, LoginError> {
    let sso = aws
        .sso_profile(name)
        .map_err(|e: ProfileError| LoginError::Config(e.to_string()))?;
    match &sso.session {
        Some(session) => session_target(aws, session),
        None => Ok(SignInTarget {
            session: None,
            profile: Some(sso.profile.clone()),
            start_url: sso.start_url.clone(),
            region: sso.sso_region.clone(),
            scopes: None,
        }),
    }
}

/// The targets behind `profiles` (credsync's managed profiles: SSO profiles, and role chains
/// whose source is one), each session once, in order; and, per profile without one, why.
pub fn managed_targets(aws: &AwsConfig, profiles: &[String]) -> (Vec<SignInTarget>, Vec<String>) {
    let no_credentials = Default::default();
    let planner = crate::chain::Planner::new(aws, &no_credentials);
    let mut targets: Vec<SignInTarget> = Vec::new();
    let mut skipped = Vec::new();
    for p in profiles {
        let found = match planner.plan(p) {
            Ok(plan) => match plan.sso() {
                Some(sso) => profile_target(aws, &sso.profile),
                None => {
                    skipped.push(format!("{p}: does not sign in through IAM Identity Center"));
                    continue;
                }
            },
            Err(e) => Err(LoginError::Config(e.to_string())),
        };
        match found {
            Ok(t) if !targets.iter().any(|x| x.cache_key() == t.cache_key()) => targets.push(t),
            Ok(_) => {}
            Err(e) => skipped.push(format!("{p}: {e}")),
        }
    }
    (targets, skipped)
}

/// How one sign-in goes.
#[derive(Debug, Clone)]
pub struct Options {
    /// The device flow even where the browser flow would do.
    pub device_code: bool,
    /// Whether a browser can open on this machine (no `SSH_CONNECTION`; on Linux, `DISPLAY`
    /// or `WAYLAND_DISPLAY` set, or a WSL distribution). Without one, the device flow is used.
    pub browser_here: bool,
    /// How to open the sign-in page.
    pub opener: Opener,
    /// Starts the opener's program.
    pub runner: Arc<dyn Runner>,
    /// Sign out first, so that the Identity Center session starts again.
    pub fresh: bool,
}

/// Which flow signs in to `target`.
pub(crate) fn choose_grant(target: &SignInTarget, opts: &Options) -> Grant {
    if target.session.is_none() || opts.device_code || !opts.browser_here {
        Grant::DeviceCode
    } else {
        Grant::AuthorizationCode
    }
}

/// What [`login`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginOutcome {
    /// The cached token has more than 15 minutes left (perhaps another sign-in just wrote it).
    AlreadySignedIn { expires_at: SystemTime },
    /// The cached token was renewed with its refresh token, without a browser.
    Renewed { expires_at: SystemTime },
    /// A new sign-in; `registered` when a new client registration was made for it.
    SignedIn {
        expires_at: SystemTime,
        grant: Grant,
        registered: bool,
    },
}

/// Why a sign-in or sign-out failed. Never carries a token, code, verifier or client secret.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("{step}: {source}")]
    Aws {
        step: &'static str,
        source: ResolveError,
    },
    #[error("SSO-OIDC answered {0} without the fields it must have")]
    Malformed(&'static str),
    #[error(transparent)]
    Callback(#[from] callback::CallbackError),
    #[error("nobody approved the sign-in within {}; run the command again", timefmt::humane(*.0))]
    TimedOut(Duration),
    #[error("the sign-in code expired before it was approved; run the command again")]
    DeviceCodeExpired,
    #[error("the sign-in was denied in the browser")]
    Denied,
    #[error(
        "SSO-OIDC refused the authorization code (expired or already used); run the command again"
    )]
    CodeRefused,
    #[error("cannot save {what}: {source}")]
    Write {
        what: &'static str,
        source: WriteError,
    },
    #[error("cannot remove {}: {source}", path.display())]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Local(String),
}

impl LoginError {
    /// Whether SSO-OIDC refused the client registration itself (unknown client, wrong secret).
    pub(crate) fn is_refused_client(&self) -> bool {
        matches!(
            self,
            LoginError::Aws {
                source: ResolveError::Refused { code, .. },
                ..
            } if code == "InvalidClientException" || code == "UnauthorizedClientException"
        )
    }
}

/// A `CreateToken` answer: the access token, its lifetime, the refresh token if any.
pub(crate) struct Granted {
    access: SecretString,
    expires_in: Duration,
    refresh: Option<SecretString>,
}

pub(crate) fn granted(out: &CreateTokenOutput) -> Result<Granted, LoginError> {
    let (access, expires_in, refresh) =
        crate::token::answer_parts(out).map_err(|source| LoginError::Aws {
            step: "CreateToken",
            source,
        })?;
    Ok(Granted {
        access,
        expires_in,
        refresh,
    })
}

/// An SSO-OIDC call's failure, classified like every AWS failure (the server's text is not
/// quoted: only its code and status).
pub(crate) fn aws_error<E: ProvideErrorMetadata>(
    step: &'static str,
    err: SdkError<E>,
) -> LoginError {
    LoginError::Aws {
        step,
        source: aws::classify(SERVICE, err, |_, code, status| {
            Reading::ByStatus(format!("{step} failed with HTTP {status} ({code})"))
        }),
    }
}

/// `now + d` in whole seconds (the files hold no fractions).
fn whole_seconds_after(now: SystemTime, d: Duration) -> SystemTime {
    let t = now + d;
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(s) => SystemTime::UNIX_EPOCH + Duration::from_secs(s.as_secs()),
        Err(_) => t,
    }
}

/// The token file's content for a new sign-in, as the AWS CLI writes it.
pub(crate) fn new_token(
    target: &SignInTarget,
    reg: &Registration,
    access: SecretString,
    expires_in: Duration,
    refresh: Option<SecretString>,
    now: SystemTime,
) -> CachedToken {
    CachedToken {
        access_token: access,
        expires_at: whole_seconds_after(now, expires_in),
        refresh_token: refresh,
        client_id: Some(reg.client_id.clone()),
        client_secret: Some(reg.client_secret.clone()),
        registration_expires_at: Some(reg.expires_at),
        region: Some(target.region.clone()),
        start_url: Some(target.start_url.clone()),
        other: Default::default(),
    }
}

/// The cached registration for `grant` (unless `renew`), or a new one (`RegisterClient`, then
/// saved); and whether it is new.
async fn registration_for(
    client: &aws_sdk_ssooidc::Client,
    cache_dir: &Path,
    target: &SignInTarget,
    grant: Grant,
    now: SystemTime,
    renew: bool,
) -> Result<(Registration, bool), LoginError> {
    let key = target.registration_key();
    if !renew
        && let Some(reg) = registration::read(cache_dir, &key)
        && reg.usable_for(grant, now)
    {
        tracing::debug!(
            "reusing the client registration {}",
            key.path(cache_dir).display()
        );
        return Ok((reg, false));
    }
    let (scopes, grant_types) = registration_asks(target, grant);
    let mut req = client
        .register_client()
        .client_name(client_name(target, now))
        .client_type("public")
        .set_scopes(scopes.clone());
    if grant == Grant::AuthorizationCode {
        req = req
            .set_grant_types(grant_types.clone())
            .redirect_uris(callback::REDIRECT_URI_WITHOUT_PORT)
            .issuer_url(&target.start_url);
    }
    let out = req
        .send()
        .await
        .map_err(|e| aws_error("RegisterClient", e))?;
    let reg = registration_from(&out, scopes, grant_types)?;
    registration::write(cache_dir, &key, &reg).map_err(|source| LoginError::Write {
        what: "the client registration",
        source,
    })?;
    Ok((reg, true))
}

/// The name a new client registration gets: per session, or per moment for a legacy profile.
fn client_name(target: &SignInTarget, now: SystemTime) -> String {
    match &target.session {
        Some(s) => format!("credsync-client-{s}"),
        None => format!(
            "credsync-client-{}",
            now.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs()
        ),
    }
}

/// The scopes and grant types a registration for `grant` asks for, as the AWS CLI asks: for
/// the authorization-code grant the session's scopes (else `sso:account:access`) and both
/// grant types; for the device grant the session's scopes when it has some, and no grant types.
fn registration_asks(
    target: &SignInTarget,
    grant: Grant,
) -> (Option<Vec<String>>, Option<Vec<String>>) {
    let scopes = target.scopes.clone().filter(|s| !s.is_empty());
    match grant {
        Grant::AuthorizationCode => (
            Some(scopes.unwrap_or_else(|| vec![registration::DEFAULT_SCOPE.to_owned()])),
            Some(
                registration::AUTH_CODE_GRANT_TYPES
                    .iter()
                    .map(|g| (*g).to_owned())
                    .collect(),
            ),
        ),
        Grant::DeviceCode => (scopes, None),
    }
}

/// The registration `RegisterClient` answered, with what it was asked for.
fn registration_from(
    out: &aws_sdk_ssooidc::operation::register_client::RegisterClientOutput,
    scopes: Option<Vec<String>>,
    grant_types: Option<Vec<String>>,
) -> Result<Registration, LoginError> {
    let (Some(id), Some(secret)) = (out.client_id(), out.client_secret()) else {
        return Err(LoginError::Malformed("RegisterClient"));
    };
    let expires_at = u64::try_from(out.client_secret_expires_at())
        .ok()
        .filter(|s| *s > 0)
        .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
        .ok_or(LoginError::Malformed("RegisterClient"))?;
    Ok(Registration {
        client_id: id.to_owned(),
        client_secret: secret.to_owned().into(),
        expires_at,
        scopes,
        grant_types,
    })
}

/// Writes a new sign-in's token over whatever the file held.
fn save_token(
    cache_dir: &Path,
    target: &SignInTarget,
    token: &CachedToken,
) -> Result<(), LoginError> {
    sso_cache::replace(cache_dir, target.cache_key(), token)
        .map(|_| ())
        .map_err(|source| LoginError::Write {
            what: "the SSO token",
            source,
        })
}

/// Signs in to `target` (see the module's doc). `say` shows the user what to do; `now` is the
/// wall clock.
pub async fn login(
    clients: &mut Clients,
    cache_dir: &Path,
    target: &SignInTarget,
    opts: &Options,
    say: &dyn Fn(&str),
    now: &dyn Fn() -> SystemTime,
) -> Result<LoginOutcome, LoginError> {
    let label = target.label();
    let _lock = SessionLock::acquire(cache_dir, target.cache_key(), LOCK_WAIT, || {
        say(&format!(
            "Another sign-in to {label} is in progress; waiting for it to finish."
        ))
    })
    .await?;
    let client = clients.oidc(&target.region).await;
    if opts.fresh {
        sign_out_locked(clients, cache_dir, target, say).await?;
    } else if let Some(done) = current_token(&client, cache_dir, target, now()).await? {
        return Ok(done);
    }
    let grant = choose_grant(target, opts);
    let (reg, answer, registered) =
        authorize(clients, &client, cache_dir, target, opts, grant, say, now).await?;
    let token = new_token(
        target,
        &reg,
        answer.access,
        answer.expires_in,
        answer.refresh,
        now(),
    );
    save_token(cache_dir, target, &token)?;
    Ok(LoginOutcome::SignedIn {
        expires_at: token.expires_at,
        grant,
        registered,
    })
}

/// What the session's current token makes of a sign-in, without a browser: still valid for
/// long enough (nothing to do), or renewed with its refresh token (saved). `None`: sign in.
async fn current_token(
    client: &aws_sdk_ssooidc::Client,
    cache_dir: &Path,
    target: &SignInTarget,
    now: SystemTime,
) -> Result<Option<LoginOutcome>, LoginError> {
    let Ok(sso_cache::Read::Token(token)) = sso_cache::read(cache_dir, target.cache_key()) else {
        return Ok(None);
    };
    if token
        .start_url
        .as_deref()
        .is_some_and(|u| u != target.start_url)
    {
        return Ok(None);
    }
    if token.expires_at.duration_since(now).unwrap_or_default() > TOKEN_WINDOW {
        return Ok(Some(LoginOutcome::AlreadySignedIn {
            expires_at: token.expires_at,
        }));
    }
    if !crate::token_policy::can_refresh(&token, now) {
        return Ok(None);
    }
    match crate::token::refresh(client, &token, &target.login_command(), now).await {
        Ok(new) => {
            save_token(cache_dir, target, &new)?;
            Ok(Some(LoginOutcome::Renewed {
                expires_at: new.expires_at,
            }))
        }
        Err(e) => {
            tracing::debug!("the cached token could not be renewed ({e}); signing in");
            Ok(None)
        }
    }
}

/// The sign-in itself with `grant`: the registration (cached or new), then the browser's
/// authorization code or the device flow. Returns the registration used, SSO-OIDC's answer,
/// and whether the registration is new.
#[allow(clippy::too_many_arguments)]
async fn authorize(
    clients: &mut Clients,
    client: &aws_sdk_ssooidc::Client,
    cache_dir: &Path,
    target: &SignInTarget,
    opts: &Options,
    grant: Grant,
    say: &dyn Fn(&str),
    now: &dyn Fn() -> SystemTime,
) -> Result<(Registration, Granted, bool), LoginError> {
    let label = target.label();
    let (reg, registered) =
        registration_for(client, cache_dir, target, grant, now(), false).await?;
    if grant == Grant::AuthorizationCode {
        let endpoint = clients.oidc_endpoint(&target.region).await;
        let (opener, runner) = (&opts.opener, &*opts.runner);
        let answer = authcode::run(client, &endpoint, &reg, target, opener, runner, say).await?;
        return Ok((reg, answer, registered));
    }
    // The device flow opens the page only where a browser can open (with `--device-code` on a
    // desktop); over SSH or on a console it is only shown, for another device.
    let opener = if opts.browser_here {
        &opts.opener
    } else {
        &Opener::PrintOnly
    };
    let runner = &*opts.runner;
    let url = &target.start_url;
    match device::run(client, &reg, url, &label, opener, runner, say).await {
        // A cached registration SSO-OIDC no longer knows (deleted, or the instance changed):
        // register again, once, before anything was shown to the user.
        Err(e) if !registered && e.is_refused_client() => {
            tracing::debug!("the cached client registration was refused ({e}); registering again");
            let (reg, _) = registration_for(client, cache_dir, target, grant, now(), true).await?;
            let answer = device::run(client, &reg, url, &label, opener, runner, say).await?;
            Ok((reg, answer, true))
        }
        other => Ok((reg, other?, registered)),
    }
}

/// What [`logout`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoggedOut {
    /// There was no token file.
    NotSignedIn,
    /// The token file was removed; `revoked` when `sso:Logout` succeeded (a failure is logged
    /// and the file removed anyway, as the AWS CLI does).
    Removed { revoked: bool },
}

/// Signs out of `target`: `sso:Logout` with the cached token, then the token file removed
/// (the client registration stays).
pub async fn logout(
    clients: &mut Clients,
    cache_dir: &Path,
    target: &SignInTarget,
    say: &dyn Fn(&str),
) -> Result<LoggedOut, LoginError> {
    let label = target.label();
    let _lock = SessionLock::acquire(cache_dir, target.cache_key(), LOCK_WAIT, || {
        say(&format!(
            "A sign-in to {label} is in progress; waiting for it to finish."
        ))
    })
    .await?;
    sign_out_locked(clients, cache_dir, target, say).await
}

async fn sign_out_locked(
    clients: &mut Clients,
    cache_dir: &Path,
    target: &SignInTarget,
    say: &dyn Fn(&str),
) -> Result<LoggedOut, LoginError> {
    let path = sso_cache::path(cache_dir, target.cache_key());
    let token = match sso_cache::read(cache_dir, target.cache_key()) {
        Ok(sso_cache::Read::Missing) => return Ok(LoggedOut::NotSignedIn),
        Ok(sso_cache::Read::Token(t)) => Some(t),
        Ok(sso_cache::Read::Unparsable(_)) | Err(_) => None,
    };
    let mut revoked = false;
    if let Some(token) = token {
        let region = token
            .region
            .clone()
            .unwrap_or_else(|| target.region.clone());
        let sso = clients.sso(&region).await;
        match sso
            .logout()
            .access_token(token.access_token.expose_secret())
            .send()
            .await
        {
            Ok(_) => revoked = true,
            Err(e) => {
                let e = aws::classify("SSO portal", e, |_, code, status| {
                    Reading::ByStatus(format!("Logout failed with HTTP {status} ({code})"))
                });
                say(&format!(
                    "warning: the SSO portal did not end the session ({e}); removing the cached \
                     token anyway"
                ));
            }
        }
    }
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(LoggedOut::Removed { revoked }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LoggedOut::Removed { revoked }),
        Err(source) => Err(LoginError::Remove { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aws(text: &str) -> AwsConfig {
        crate::aws_profile::parse(text, Path::new("/home/u/.aws/config")).unwrap()
    }

    const CONFIG: &str = "\
[sso-session corp]
sso_start_url = https://corp.awsapps.com/start
sso_region = eu-west-1
sso_registration_scopes = sso:account:access, ,codewhisperer:completions

[profile dev]
sso_session = corp
sso_account_id = 111111111111
sso_role_name = Dev

[profile ops]
sso_session = corp
sso_account_id = 222222222222
sso_role_name = Ops

[profile old]
sso_start_url = https://old.awsapps.com/start
sso_region = us-east-1
sso_account_id = 333333333333
sso_role_name = Dev

[profile chained]
role_arn = arn:aws:iam::444444444444:role/x
source_profile = dev

[profile keys]
aws_access_key_id = AKIAFAKE
";

    #[test]
    fn targets_come_from_sessions_profiles_and_the_managed_list() {
        let aws = aws(CONFIG);
        let corp = session_target(&aws, "corp").unwrap();
        assert_eq!(corp.cache_key(), "corp");
        assert_eq!(
            corp.scopes.as_deref(),
            Some(
                &[
                    "sso:account:access".to_owned(),
                    "codewhisperer:completions".to_owned()
                ][..]
            )
        );
        assert_eq!(profile_target(&aws, "dev").unwrap(), corp);
        let old = profile_target(&aws, "old").unwrap();
        assert_eq!(old.cache_key(), "https://old.awsapps.com/start");
        assert_eq!(old.login_command(), "credsync login --profile old");
        let e = session_target(&aws, "nope").unwrap_err().to_string();
        assert!(
            e.contains("no [sso-session nope]") && e.contains("corp"),
            "{e}"
        );

        let names: Vec<String> = ["dev", "ops", "old", "chained", "keys"]
            .map(String::from)
            .to_vec();
        let (targets, skipped) = managed_targets(&aws, &names);
        let keys: Vec<&str> = targets.iter().map(SignInTarget::cache_key).collect();
        assert_eq!(keys, ["corp", "https://old.awsapps.com/start"]);
        assert_eq!(skipped.len(), 1, "{skipped:?}");
        assert!(skipped[0].starts_with("keys:"), "{skipped:?}");
    }

    #[test]
    fn the_device_flow_is_chosen_for_legacy_profiles_the_flag_and_no_browser() {
        let aws = aws(CONFIG);
        let corp = session_target(&aws, "corp").unwrap();
        let old = profile_target(&aws, "old").unwrap();
        let opts = |device_code, browser_here| Options {
            device_code,
            browser_here,
            opener: Opener::PrintOnly,
            runner: Arc::new(crate::process::SystemRunner),
            fresh: false,
        };
        assert_eq!(
            choose_grant(&corp, &opts(false, true)),
            Grant::AuthorizationCode
        );
        assert_eq!(choose_grant(&corp, &opts(true, true)), Grant::DeviceCode);
        assert_eq!(choose_grant(&corp, &opts(false, false)), Grant::DeviceCode);
        assert_eq!(choose_grant(&old, &opts(false, true)), Grant::DeviceCode);
    }

    #[test]
    fn a_new_token_has_the_clis_fields() {
        let aws = aws(CONFIG);
        let corp = session_target(&aws, "corp").unwrap();
        let reg = Registration {
            client_id: "cid".into(),
            client_secret: "fake-client-secret".to_owned().into(),
            expires_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_798_761_600),
            scopes: None,
            grant_types: None,
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_964_400_500);
        let t = new_token(
            &corp,
            &reg,
            "fake-access".to_owned().into(),
            Duration::from_secs(3600),
            Some("fake-refresh".to_owned().into()),
            now,
        );
        assert_eq!(
            String::from_utf8(sso_cache::to_json(&t)).unwrap(),
            r#"{"startUrl": "https://corp.awsapps.com/start", "region": "eu-west-1", "accessToken": "fake-access", "expiresAt": "2026-11-29T16:00:00Z", "clientId": "cid", "clientSecret": "fake-client-secret", "registrationExpiresAt": "2027-01-01T00:00:00Z", "refreshToken": "fake-refresh"}"#
        );
    }
}
