//! The AWS edge: the SDK clients, built from one [`AwsEdge`], and resolving one profile to
//! credentials: SSO role credentials through the SSO portal's GetRoleCredentials, with the token
//! from the cache. Role chains are planned by `chain` and assumed by `sts`, which build their
//! clients from the same [`AwsEdge`]. What resolving can fail with is the core's
//! [`ResolveError`], re-exported here.
//!
//! SDK clients are built from the `SdkConfig` that `aws-config` loads, so the SDK's endpoint
//! variables (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_SSO`, ...) and `endpoint_url` profile keys
//! reach them. The SDK's own retries are off: what is retried, and when, is decided by the
//! caller (`sync` retries a few times, the daemon backs off; see `schedule`).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_sso::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sso::operation::get_role_credentials::GetRoleCredentialsError;

use crate::aws_profile::SsoProfile;
use crate::chain::Base;
use crate::config::Env;
use crate::secret::{Credentials, ExposeSecret, SecretString};
use crate::sso_cache::{self, CachedToken};

pub use credsync_core::resolve::ResolveError;

/// The longest any one AWS call may take, unless the edge says otherwise.
pub(crate) const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// The endpoint variables the edge reads: the general one, then one per service credsync calls.
const ENDPOINT_VARS: [&str; 5] = [
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_SSO",
    "AWS_ENDPOINT_URL_SSO_OIDC",
    "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL_SIGNIN",
];

/// The variables `credential_source = Environment` reads (botocore's names).
const CREDENTIAL_VARS: [&str; 5] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION",
];

/// Where the HTTPS client's proxy settings come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proxy {
    /// `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` (either case), read by the HTTP
    /// client as the SDK reads them.
    FromEnvironment,
    /// No proxy: every request goes straight to its endpoint.
    Direct,
}

/// The AWS edge: everything from outside credsync's own config that decides where and how AWS
/// is called. Built once from the environment where the program starts ([`AwsEdge::from_env`]),
/// or directly (tests point every service at a fake).
///
/// Endpoints resolve as the SDK resolves them: per service, `AWS_ENDPOINT_URL_<SERVICE>`, else
/// `AWS_ENDPOINT_URL`, else the AWS config file's `services` section and `endpoint_url` key of
/// `profile`, else AWS's own endpoint. `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` (or the profile key
/// `ignore_configured_endpoint_urls`) turns all of them off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsEdge {
    /// `AWS_ENDPOINT_URL`: every service's endpoint.
    pub(crate) endpoint_url: Option<String>,
    /// `AWS_ENDPOINT_URL_SSO`: the SSO portal's.
    pub(crate) sso_endpoint_url: Option<String>,
    /// `AWS_ENDPOINT_URL_SSO_OIDC`: SSO-OIDC's.
    pub(crate) oidc_endpoint_url: Option<String>,
    /// `AWS_ENDPOINT_URL_STS`: STS's.
    pub(crate) sts_endpoint_url: Option<String>,
    /// `AWS_ENDPOINT_URL_SIGNIN`: AWS Sign-In's (`aws login` sessions).
    pub(crate) signin_endpoint_url: Option<String>,
    /// `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`: no endpoint from the environment or the file.
    pub(crate) ignore_configured_endpoint_urls: bool,
    /// The AWS config file whose `endpoint_url` keys and `services` sections apply
    /// (`AWS_CONFIG_FILE`, else `~/.aws/config`); `None`: no file.
    pub(crate) config_file: Option<PathBuf>,
    /// The profile of that file whose keys apply: `AWS_PROFILE`, else `default`.
    pub(crate) profile: Option<String>,
    pub proxy: Proxy,
    /// The longest any one AWS call may take (connect, read, the whole operation).
    pub(crate) timeout: Duration,
    /// The variables of [`CREDENTIAL_VARS`] that are set: the base of
    /// `credential_source = Environment`.
    pub(crate) credential_vars: BTreeMap<String, String>,
}

impl AwsEdge {
    /// The edge as `env` (the process environment, read once) describes it.
    pub fn from_env(env: &Env) -> AwsEdge {
        let get = |k: &str| env.get(k).map(str::to_owned);
        let [all, sso, oidc, sts, signin] = ENDPOINT_VARS.map(get);
        let config_file = match env.get("AWS_CONFIG_FILE") {
            Some(p) => PathBuf::from(crate::config::expand_like_botocore(p, env)),
            None => env.home.join(".aws").join("config"),
        };
        AwsEdge {
            endpoint_url: all,
            sso_endpoint_url: sso,
            oidc_endpoint_url: oidc,
            sts_endpoint_url: sts,
            signin_endpoint_url: signin,
            ignore_configured_endpoint_urls: env
                .get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
            config_file: Some(config_file),
            profile: get("AWS_PROFILE"),
            proxy: Proxy::FromEnvironment,
            timeout: HTTP_TIMEOUT,
            credential_vars: CREDENTIAL_VARS
                .iter()
                .filter_map(|k| Some((k.to_string(), get(k)?)))
                .collect(),
        }
    }

    /// Every service at `url`, no AWS config file, no proxy, no credentials in the
    /// environment: an edge that reaches nothing but `url`.
    pub fn only(url: &str) -> AwsEdge {
        AwsEdge {
            endpoint_url: Some(url.to_owned()),
            sso_endpoint_url: Some(url.to_owned()),
            oidc_endpoint_url: Some(url.to_owned()),
            sts_endpoint_url: Some(url.to_owned()),
            signin_endpoint_url: Some(url.to_owned()),
            ignore_configured_endpoint_urls: false,
            config_file: None,
            profile: None,
            proxy: Proxy::Direct,
            timeout: HTTP_TIMEOUT,
            credential_vars: BTreeMap::new(),
        }
    }

    /// This edge with every call bounded by `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> AwsEdge {
        self.timeout = timeout;
        self
    }

    /// A variable of [`CREDENTIAL_VARS`], when set.
    pub(crate) fn credential_var(&self, key: &str) -> Option<String> {
        self.credential_vars.get(key).cloned()
    }

    /// The endpoint the environment gives `service` (its own variable, else
    /// `AWS_ENDPOINT_URL`), unless configured endpoints are ignored (by the environment, or by
    /// the profile: `profile_ignores`).
    fn endpoint(&self, service: &Option<String>, profile_ignores: bool) -> Option<String> {
        if self.ignore_configured_endpoint_urls || profile_ignores {
            return None;
        }
        service.clone().or_else(|| self.endpoint_url.clone())
    }
}

/// SDK configurations per region, loaded once, and the clients built from them.
#[derive(Clone)]
pub struct Clients {
    edge: AwsEdge,
    sdk: HashMap<String, Loaded>,
}

/// One region's `SdkConfig`, and whether the edge's profile sets
/// `ignore_configured_endpoint_urls`.
#[derive(Clone)]
struct Loaded {
    sdk: aws_config::SdkConfig,
    profile_ignores: bool,
}

impl Clients {
    /// Clients that reach AWS through `edge`.
    pub fn new(edge: AwsEdge) -> Clients {
        Clients {
            edge,
            sdk: HashMap::new(),
        }
    }

    /// The loaded `SdkConfig` for `region`.
    async fn sdk(&mut self, region: &str) -> Loaded {
        if let Some(c) = self.sdk.get(region) {
            return c.clone();
        }
        let loaded = sdk_config(&self.edge, region).await;
        self.sdk.insert(region.to_owned(), loaded.clone());
        loaded
    }

    /// The STS configuration for `region` (STS takes its credentials per call).
    pub async fn sts(&mut self, region: &str) -> aws_sdk_sts::Config {
        let loaded = self.sdk(region).await;
        let mut b = aws_sdk_sts::config::Builder::from(&loaded.sdk);
        if let Some(url) = self
            .edge
            .endpoint(&self.edge.sts_endpoint_url, loaded.profile_ignores)
        {
            b.set_endpoint_url(Some(url));
        }
        b.build()
    }

    /// The SSO portal client for `region`.
    pub async fn sso(&mut self, region: &str) -> aws_sdk_sso::Client {
        let loaded = self.sdk(region).await;
        let mut b = aws_sdk_sso::config::Builder::from(&loaded.sdk);
        if let Some(url) = self
            .edge
            .endpoint(&self.edge.sso_endpoint_url, loaded.profile_ignores)
        {
            b.set_endpoint_url(Some(url));
        }
        aws_sdk_sso::Client::from_conf(b.build())
    }

    /// The SSO-OIDC client for `region`.
    pub async fn oidc(&mut self, region: &str) -> aws_sdk_ssooidc::Client {
        let loaded = self.sdk(region).await;
        let mut b = aws_sdk_ssooidc::config::Builder::from(&loaded.sdk);
        if let Some(url) = self
            .edge
            .endpoint(&self.edge.oidc_endpoint_url, loaded.profile_ignores)
        {
            b.set_endpoint_url(Some(url));
        }
        aws_sdk_ssooidc::Client::from_conf(b.build())
    }
}

impl Clients {
    /// The base URL of AWS Sign-In for `region` (where `aws login` sessions are renewed): its
    /// endpoint with the edge's overrides, else the one the service's rules give
    /// `CreateOAuth2Token` (`https://<region>.signin.aws.amazon.com`, by partition).
    pub(crate) async fn signin_endpoint(&mut self, region: &str) -> String {
        let loaded = self.sdk(region).await;
        if let Some(url) = self
            .edge
            .endpoint(&self.edge.signin_endpoint_url, loaded.profile_ignores)
        {
            return url;
        }
        if !loaded.profile_ignores
            && let Some(url) = loaded.sdk.endpoint_url()
        {
            return url.to_owned();
        }
        crate::signin::default_endpoint(region)
    }

    /// The edge these clients reach AWS through.
    pub(crate) fn edge(&self) -> &AwsEdge {
        &self.edge
    }
}

impl Clients {
    /// The base URL of SSO-OIDC for `region` (its endpoint with the edge's overrides, else
    /// AWS's `https://oidc.<region>.amazonaws.com`): where the authorization-code sign-in's
    /// `/authorize` page is, as the AWS CLI derives it.
    pub(crate) async fn oidc_endpoint(&mut self, region: &str) -> String {
        let loaded = self.sdk(region).await;
        if let Some(url) = self
            .edge
            .endpoint(&self.edge.oidc_endpoint_url, loaded.profile_ignores)
        {
            return url;
        }
        if !loaded.profile_ignores
            && let Some(url) = loaded.sdk.endpoint_url()
        {
            return url.to_owned();
        }
        let suffix = if region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        format!("https://oidc.{region}.{suffix}")
    }
}

/// The SDK's default HTTPS client (hyper and rustls, the system's trusted roots, the proxy
/// settings of `proxy`), with ring as rustls' crypto provider instead of aws-lc.
pub fn https_client(proxy: Proxy) -> aws_sdk_sso::config::SharedHttpClient {
    use aws_smithy_http_client::proxy::ProxyConfig;
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    use aws_smithy_http_client::{Builder, ConnectorBuilder};
    Builder::new().build_with_connector_fn(move |settings, runtime_components| {
        let mut conn = ConnectorBuilder::default().tls_provider(Provider::Rustls(CryptoMode::Ring));
        conn.set_connector_settings(settings.cloned());
        if let Some(components) = runtime_components {
            conn.set_sleep_impl(components.sleep_impl());
        }
        conn.set_proxy_config(Some(match proxy {
            Proxy::FromEnvironment => ProxyConfig::from_env(),
            Proxy::Direct => ProxyConfig::disabled(),
        }));
        conn.build()
    })
}

/// The shared SDK configuration for `region` through `edge`: no credentials (SSO and SSO-OIDC
/// calls are unsigned; STS gets explicit credentials), no SDK retries, every call bounded by
/// the edge's timeout.
///
/// The SDK is given the edge's AWS config file (for `endpoint_url` and `services`), read here
/// without blocking on a FIFO, and never the credentials file: credsync takes no credentials
/// from it through the SDK, and the SDK's plain read of it would block forever on a FIFO there
/// and read a huge file whole.
// `ProfileFiles` is a deprecated alias of `aws_runtime`'s `EnvConfigFiles`, not a dependency.
#[allow(deprecated)]
async fn sdk_config(edge: &AwsEdge, region: &str) -> Loaded {
    use aws_config::profile::profile_file::{ProfileFileKind, ProfileFiles};
    let text = edge
        .config_file
        .as_deref()
        .map(|path| crate::user_file::read_text_or_empty(path, crate::user_file::Kind::AwsConfig))
        .unwrap_or_default();
    let profile_ignores = edge.config_file.as_deref().is_some_and(|path| {
        let profile = edge.profile.as_deref().unwrap_or("default");
        crate::aws_profile::parse(&text, path).is_ok_and(|aws| {
            aws.get(profile)
                .and_then(|p| p.keys.get("ignore_configured_endpoint_urls"))
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        })
    });
    let files = ProfileFiles::builder()
        .with_contents(ProfileFileKind::Config, text)
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client(edge.proxy))
        .profile_files(files)
        .region(aws_config::Region::new(region.to_owned()))
        .no_credentials()
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(edge.timeout.min(Duration::from_secs(5)))
                .read_timeout(edge.timeout.mul_f64(2.0 / 3.0))
                .operation_timeout(edge.timeout)
                .build(),
        );
    if let Some(p) = &edge.profile {
        loader = loader.profile_name(p);
    }
    Loaded {
        sdk: loader.load().await,
        profile_ignores,
    }
}

/// Reads the cached token for `sso` and checks that it is usable at `now`.
pub fn read_token(
    cache_dir: &std::path::Path,
    sso: &SsoProfile,
    now: SystemTime,
) -> Result<CachedToken, ResolveError> {
    let path = sso_cache::path(cache_dir, sso.cache_key());
    let login = |reason: String| ResolveError::LoginRequired {
        reason,
        login_command: sso.login_command(),
    };
    match sso_cache::read(cache_dir, sso.cache_key()) {
        Ok(sso_cache::Read::Token(token)) => usable_token(token, sso, now),
        Ok(sso_cache::Read::Missing) => Err(login(format!(
            "no SSO token for {} in {}",
            session_label(sso),
            cache_dir.display()
        ))),
        Ok(sso_cache::Read::Unparsable(e)) => Err(ResolveError::TokenUnreadable {
            reason: format!("the SSO token cache {} did not parse ({e})", path.display()),
            path,
        }),
        Err(e) => Err(ResolveError::TokenUnreadable {
            path,
            reason: e.to_string(),
        }),
    }
}

/// `token` of `sso`'s session, if it is usable at `now` (not expired).
pub(crate) fn usable_token(
    token: CachedToken,
    sso: &SsoProfile,
    now: SystemTime,
) -> Result<CachedToken, ResolveError> {
    if token.expires_at > now {
        return Ok(token);
    }
    Err(ResolveError::LoginRequired {
        reason: format!(
            "the SSO token for {} expired at {}",
            session_label(sso),
            crate::timefmt::rfc3339(token.expires_at)
        ),
        login_command: sso.login_command(),
    })
}

fn session_label(sso: &SsoProfile) -> String {
    match &sso.session {
        Some(s) => format!("sso-session {s:?}"),
        None => format!("start URL {}", sso.start_url),
    }
}

/// Role credentials for `sso` through the SSO portal's GetRoleCredentials.
pub async fn sso_role_credentials(
    client: &aws_sdk_sso::Client,
    sso: &SsoProfile,
    token: &CachedToken,
) -> Result<Credentials, ResolveError> {
    let out = client
        .get_role_credentials()
        .role_name(&sso.role_name)
        .account_id(&sso.account_id)
        .access_token(token.access_token.expose_secret())
        .send()
        .await
        .map_err(|e| classify_sso_error(e, sso))?;
    let malformed = |what: &str| ResolveError::Transient {
        service: "SSO portal",
        message: format!("GetRoleCredentials answered without {what}"),
        retry_after: None,
    };
    let rc = out
        .role_credentials()
        .ok_or_else(|| malformed("roleCredentials"))?;
    let field = |v: Option<&str>, name: &str| {
        v.filter(|s| !s.is_empty())
            .map(|s| s.to_owned().into())
            .ok_or_else(|| malformed(name))
    };
    let expiration_ms = rc.expiration();
    if expiration_ms <= 0 {
        return Err(malformed("an expiration"));
    }
    Ok(Credentials {
        access_key_id: field(rc.access_key_id(), "accessKeyId")?,
        secret_access_key: field(rc.secret_access_key(), "secretAccessKey")?,
        session_token: Some(field(rc.session_token(), "sessionToken")?),
        expiration: Some(SystemTime::UNIX_EPOCH + Duration::from_millis(expiration_ms as u64)),
        // botocore's SSOCredentialFetcher: the account asked for is the account of the keys.
        account_id: Some(sso.account_id.clone()).filter(|a| !a.is_empty()),
    })
}

fn classify_sso_error(err: SdkError<GetRoleCredentialsError>, sso: &SsoProfile) -> ResolveError {
    classify("SSO portal", err, |e, code, _status| match e {
        GetRoleCredentialsError::UnauthorizedException(_) => Reading::LoginRequired {
            reason: format!("the SSO portal refused the cached token ({code})"),
            login_command: sso.login_command(),
        },
        GetRoleCredentialsError::TooManyRequestsException(_) => Reading::Throttled,
        e => {
            let message = e.message().unwrap_or("").to_owned();
            Reading::ByStatus(match e {
                GetRoleCredentialsError::ResourceNotFoundException(_) => format!(
                    "no role {:?} in account {} for this SSO user ({message})",
                    sso.role_name, sso.account_id
                ),
                _ => message,
            })
        }
    })
}

/// How one service reads one of its own error answers (see [`classify`]).
pub(crate) enum Reading {
    /// The session is over: [`ResolveError::LoginRequired`].
    LoginRequired {
        reason: String,
        login_command: String,
    },
    /// [`ResolveError::Throttled`], with the answer's code and `Retry-After`.
    Throttled,
    /// A server error: [`ResolveError::Transient`] saying `HTTP <status> <code>`.
    ServerError,
    /// [`ResolveError::Refused`] with this message, whatever the HTTP status.
    Refused(String),
    /// Told by the HTTP status ([`by_status`]: 429, 5xx, a cut-short 2xx); any other status is
    /// [`ResolveError::Refused`] with this message.
    ByStatus(String),
}

/// The one classifier of AWS failures (SSO portal, SSO-OIDC, STS alike): a failure without an
/// answer is [`transient`]; an error answer is read by `read` (the service's own rule, given
/// the error, its code — `unknown` when it has none — and the HTTP status), with the
/// `Retry-After` header carried into throttling and server errors.
pub(crate) fn classify<E: ProvideErrorMetadata>(
    service: &'static str,
    err: SdkError<E>,
    read: impl FnOnce(&E, &str, u16) -> Reading,
) -> ResolveError {
    let SdkError::ServiceError(ctx) = err else {
        return transient(service, &err);
    };
    let retry_after = retry_after(ctx.raw().headers().get("retry-after"));
    let status = ctx.raw().status().as_u16();
    let e = ctx.into_err();
    let code = e.code().unwrap_or("unknown").to_owned();
    match read(&e, &code, status) {
        Reading::LoginRequired {
            reason,
            login_command,
        } => ResolveError::LoginRequired {
            reason,
            login_command,
        },
        Reading::Throttled => ResolveError::Throttled {
            service,
            code,
            retry_after,
        },
        Reading::ServerError => ResolveError::Transient {
            service,
            message: format!("HTTP {status} {code}"),
            retry_after,
        },
        Reading::Refused(message) => ResolveError::Refused {
            service,
            code,
            message,
        },
        Reading::ByStatus(message) => {
            by_status(service, status, &code, retry_after).unwrap_or(ResolveError::Refused {
                service,
                code,
                message,
            })
        }
    }
}

/// A dispatch failure, timeout or unparsable answer, in words (no request data in them).
pub(crate) fn transient<E, R>(service: &'static str, err: &SdkError<E, R>) -> ResolveError {
    let message = match err {
        SdkError::TimeoutError(_) => "timed out".to_owned(),
        SdkError::DispatchFailure(d) if d.is_timeout() => "timed out".to_owned(),
        // A reset after the request was sent comes as "other" (hyper's incomplete message).
        SdkError::DispatchFailure(d) if d.is_io() || d.is_other() => {
            "connection failed or was reset".to_owned()
        }
        SdkError::DispatchFailure(_) => "could not send the request".to_owned(),
        SdkError::ResponseError(_) => "the answer was cut short or did not parse".to_owned(),
        SdkError::ConstructionFailure(_) => "could not build the request".to_owned(),
        _ => "unexpected error".to_owned(),
    };
    ResolveError::Transient {
        service,
        message,
        retry_after: None,
    }
}

/// The failures every AWS service answers alike, told by the HTTP status: throttling (429), a
/// server error (5xx), and a success status whose body did not parse (cut short). `None` for
/// the rest, which each service classifies by its own error codes.
pub(crate) fn by_status(
    service: &'static str,
    status: u16,
    code: &str,
    retry_after: Option<Duration>,
) -> Option<ResolveError> {
    let code = code.to_owned();
    match status {
        429 => Some(ResolveError::Throttled {
            service,
            code,
            retry_after,
        }),
        500.. => Some(ResolveError::Transient {
            service,
            message: format!("HTTP {status} {code}"),
            retry_after,
        }),
        200..300 => Some(ResolveError::Transient {
            service,
            message: format!("HTTP {status} with an answer that was cut short or did not parse"),
            retry_after,
        }),
        _ => None,
    }
}

/// A `Retry-After` header in seconds.
pub(crate) fn retry_after(value: Option<&str>) -> Option<Duration> {
    value?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

// ---------------------------------------------------------------------------------------------
// The base of a role chain that needs no network call (the planner, `chain`, knows no edge).

/// The base credentials of `base` that need no network call: the static keys, or the
/// environment's (as `edge` holds it). `None` for SSO and `aws login`, which the caller resolves
/// through the SSO portal and AWS Sign-In.
pub fn local_credentials(base: &Base, edge: &AwsEdge) -> Option<Result<Credentials, ResolveError>> {
    match base {
        Base::Sso(_) | Base::Login(_) => None,
        Base::Static { credentials, .. } => Some(Ok(credentials.clone())),
        Base::Environment => Some(environment_credentials_from(|k| edge.credential_var(k))),
    }
}

/// Credentials from credsync's environment, for `credential_source = Environment`, reading
/// variables through `var` (botocore's names:
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` or `AWS_SECURITY_TOKEN`,
/// `AWS_CREDENTIAL_EXPIRATION`, `AWS_ACCOUNT_ID`).
pub(crate) fn environment_credentials_from(
    var: impl Fn(&str) -> Option<String>,
) -> Result<Credentials, ResolveError> {
    let get = |k: &str| var(k).filter(|v| !v.is_empty());
    let missing = |k: &str| {
        ResolveError::Config(format!(
            "credential_source = Environment, but {k} is not set in credsync's environment: set it where credsync starts (the service unit or launchd plist)"
        ))
    };
    let key_id = get("AWS_ACCESS_KEY_ID").ok_or_else(|| missing("AWS_ACCESS_KEY_ID"))?;
    let secret = get("AWS_SECRET_ACCESS_KEY").ok_or_else(|| missing("AWS_SECRET_ACCESS_KEY"))?;
    let token = get("AWS_SESSION_TOKEN").or_else(|| get("AWS_SECURITY_TOKEN"));
    let expiration = match get("AWS_CREDENTIAL_EXPIRATION") {
        None => None,
        Some(s) => Some(crate::timefmt::parse(&s).ok_or_else(|| {
            ResolveError::Config(format!(
                "AWS_CREDENTIAL_EXPIRATION = {s:?} is not an RFC 3339 timestamp"
            ))
        })?),
    };
    Ok(Credentials {
        access_key_id: key_id.into(),
        secret_access_key: secret.into(),
        session_token: token.map(SecretString::from),
        expiration,
        account_id: get("AWS_ACCOUNT_ID"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_credentials_are_botocores_variables() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let c = environment_credentials_from(vars(&[
            ("AWS_ACCESS_KEY_ID", "AKIAENV"),
            ("AWS_SECRET_ACCESS_KEY", "envsecret"),
            ("AWS_SECURITY_TOKEN", "legacytok"),
            ("AWS_CREDENTIAL_EXPIRATION", "2030-01-01T00:00:00Z"),
            ("AWS_ACCOUNT_ID", "123456789012"),
        ]))
        .unwrap();
        assert_eq!(c.account_id.as_deref(), Some("123456789012"));
        assert_eq!(c.access_key_id.expose_secret(), "AKIAENV");
        assert_eq!(c.session_token.unwrap().expose_secret(), "legacytok");
        assert_eq!(c.expiration, crate::timefmt::parse("2030-01-01T00:00:00Z"));
        let e =
            environment_credentials_from(vars(&[("AWS_ACCESS_KEY_ID", "AKIAENV")])).unwrap_err();
        assert!(
            e.to_string().contains("AWS_SECRET_ACCESS_KEY is not set"),
            "{e}"
        );
        assert!(!e.to_string().contains("AKIAENV"), "{e}");
    }

    fn env(vars: &[(&str, &str)]) -> Env {
        Env {
            home: PathBuf::from("/home/u"),
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn the_edge_reads_endpoints_files_and_keys_from_the_environment() {
        let e = AwsEdge::from_env(&env(&[
            ("AWS_ENDPOINT_URL", "http://all"),
            ("AWS_ENDPOINT_URL_STS", "http://sts"),
            ("AWS_CONFIG_FILE", "~/other/config"),
            ("AWS_PROFILE", "work"),
            ("AWS_ACCESS_KEY_ID", "AKIAENV"),
            ("AWS_SECRET_ACCESS_KEY", ""),
            ("HTTP_PROXY", "http://proxy"),
        ]));
        assert_eq!(
            e.endpoint(&e.sts_endpoint_url, false).as_deref(),
            Some("http://sts")
        );
        assert_eq!(
            e.endpoint(&e.sso_endpoint_url, false).as_deref(),
            Some("http://all")
        );
        assert_eq!(
            e.endpoint(&e.oidc_endpoint_url, false).as_deref(),
            Some("http://all")
        );
        // The profile's `ignore_configured_endpoint_urls` turns the environment's off too.
        assert_eq!(e.endpoint(&e.sts_endpoint_url, true), None);
        assert_eq!(e.config_file, Some(PathBuf::from("/home/u/other/config")));
        assert_eq!(e.profile.as_deref(), Some("work"));
        assert_eq!(e.proxy, Proxy::FromEnvironment);
        assert_eq!(e.timeout, HTTP_TIMEOUT);
        // Only the credential variables are kept, and an empty one counts as unset.
        assert_eq!(
            e.credential_var("AWS_ACCESS_KEY_ID").as_deref(),
            Some("AKIAENV")
        );
        assert_eq!(e.credential_vars.len(), 1);

        let e = AwsEdge::from_env(&env(&[
            ("AWS_ENDPOINT_URL_SSO", "http://sso"),
            ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "TRUE"),
        ]));
        assert_eq!(e.endpoint(&e.sso_endpoint_url, false), None);
        assert_eq!(e.config_file, Some(PathBuf::from("/home/u/.aws/config")));
        assert_eq!(e.profile, None);

        let e = AwsEdge::from_env(&env(&[]));
        assert_eq!(e.endpoint(&e.sso_endpoint_url, false), None);
    }

    #[test]
    fn only_reaches_one_url_directly() {
        let e = AwsEdge::only("http://127.0.0.1:1").with_timeout(Duration::from_secs(2));
        for service in [
            &e.sso_endpoint_url,
            &e.oidc_endpoint_url,
            &e.sts_endpoint_url,
        ] {
            assert_eq!(
                e.endpoint(service, false).as_deref(),
                Some("http://127.0.0.1:1")
            );
        }
        assert_eq!(
            (e.proxy, e.timeout, e.config_file.as_ref()),
            (Proxy::Direct, Duration::from_secs(2), None)
        );
    }
}

#[cfg(test)]
mod oidc_endpoint_tests {
    use super::*;

    #[test]
    fn the_authorize_page_lives_under_the_oidc_endpoint() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut fake = Clients::new(AwsEdge::only("http://127.0.0.1:9"));
        assert_eq!(
            rt.block_on(fake.oidc_endpoint("eu-west-1")),
            "http://127.0.0.1:9"
        );
        let aws = AwsEdge {
            endpoint_url: None,
            sso_endpoint_url: None,
            oidc_endpoint_url: None,
            sts_endpoint_url: None,
            signin_endpoint_url: None,
            ..AwsEdge::only("unused")
        };
        let mut real = Clients::new(aws);
        assert_eq!(
            rt.block_on(real.signin_endpoint("eu-west-1")),
            "https://eu-west-1.signin.aws.amazon.com"
        );
        assert_eq!(
            rt.block_on(real.oidc_endpoint("eu-west-1")),
            "https://oidc.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            rt.block_on(real.oidc_endpoint("cn-north-1")),
            "https://oidc.cn-north-1.amazonaws.com.cn"
        );
    }
}
