//! Resolving one profile to credentials: SSO role credentials through the SSO portal's
//! GetRoleCredentials, with the token from the cache. (Role chains come with the engine issue.)
//!
//! SDK clients are built from the `SdkConfig` that `aws-config` loads, so the SDK's endpoint
//! variables (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_SSO`, ...) and `endpoint_url` profile keys
//! reach them. The SDK's own retries are off: what is retried, and when, is decided by the
//! caller (`sync` retries a few times, the daemon backs off; see `schedule`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_sso::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sso::operation::get_role_credentials::GetRoleCredentialsError;

use crate::aws_profile::SsoProfile;
use crate::secret::{Credentials, ExposeSecret};
use crate::sso_cache::{self, CachedToken};

/// Why a profile could not be resolved. Messages never contain a secret.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ResolveError {
    /// The SSO session is over (no token, expired token, token refused): the user must log in.
    #[error("login required: {reason}; run `{login_command}`")]
    LoginRequired {
        reason: String,
        login_command: String,
    },
    /// The token cache file did not parse; the AWS CLI may be writing it right now.
    #[error("the SSO token cache {} did not parse ({reason}); trying again shortly", path.display())]
    TokenUnreadable { path: PathBuf, reason: String },
    /// The profile cannot work as configured.
    #[error("{0}")]
    Config(String),
    /// AWS asked us to slow down.
    #[error("throttled by {service} ({code})")]
    Throttled {
        service: &'static str,
        code: String,
        retry_after: Option<Duration>,
    },
    /// A network error, a timeout or a 5xx: worth retrying with backoff.
    #[error("{service} unreachable or failing: {message}")]
    Transient {
        service: &'static str,
        message: String,
        retry_after: Option<Duration>,
    },
    /// AWS refused the request (access denied, bad request): retrying will not help.
    #[error("{service} refused the request ({code}): {message}")]
    Refused {
        service: &'static str,
        code: String,
        message: String,
    },
}

impl ResolveError {
    /// Whether trying again (after a backoff) can help.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ResolveError::Throttled { .. }
                | ResolveError::Transient { .. }
                | ResolveError::TokenUnreadable { .. }
        )
    }

    /// The server's `Retry-After`, if it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ResolveError::Throttled { retry_after, .. }
            | ResolveError::Transient { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The longest any one AWS call may take, unless the engine is told otherwise.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// SDK configurations per region, loaded once, and the clients built from them.
#[derive(Clone)]
pub struct Clients {
    timeout: Duration,
    sdk: HashMap<String, aws_config::SdkConfig>,
}

impl Default for Clients {
    fn default() -> Clients {
        Clients::with_timeout(HTTP_TIMEOUT)
    }
}

impl Clients {
    /// Clients whose calls are bounded by `timeout`.
    pub fn with_timeout(timeout: Duration) -> Clients {
        Clients {
            timeout,
            sdk: HashMap::new(),
        }
    }

    /// The loaded `SdkConfig` for `region` (for STS, which takes its credentials per call).
    pub async fn sts(&mut self, region: &str) -> aws_config::SdkConfig {
        if let Some(c) = self.sdk.get(region) {
            return c.clone();
        }
        let sdk = sdk_config_with_timeout(region, self.timeout).await;
        self.sdk.insert(region.to_owned(), sdk.clone());
        sdk
    }

    /// The SSO portal client for `region`.
    pub async fn sso(&mut self, region: &str) -> aws_sdk_sso::Client {
        aws_sdk_sso::Client::new(&self.sts(region).await)
    }

    /// The SSO-OIDC client for `region`.
    pub async fn oidc(&mut self, region: &str) -> aws_sdk_ssooidc::Client {
        aws_sdk_ssooidc::Client::new(&self.sts(region).await)
    }
}

/// The shared SDK configuration for `region`: no credentials (SSO and SSO-OIDC calls are
/// unsigned; STS gets explicit credentials), no SDK retries, bounded timeouts.
pub async fn sdk_config(region: &str) -> aws_config::SdkConfig {
    sdk_config_with_timeout(region, HTTP_TIMEOUT).await
}

/// The SDK's default HTTPS client (hyper and rustls, the system's trusted roots, the proxy
/// variables honoured as `BehaviorVersion::latest()` does), with ring as rustls' crypto
/// provider instead of aws-lc.
pub fn https_client() -> aws_sdk_sso::config::SharedHttpClient {
    use aws_smithy_http_client::proxy::ProxyConfig;
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    use aws_smithy_http_client::{Builder, ConnectorBuilder};
    Builder::new().build_with_connector_fn(|settings, runtime_components| {
        let mut conn = ConnectorBuilder::default().tls_provider(Provider::Rustls(CryptoMode::Ring));
        conn.set_connector_settings(settings.cloned());
        if let Some(components) = runtime_components {
            conn.set_sleep_impl(components.sleep_impl());
        }
        conn.set_proxy_config(Some(ProxyConfig::from_env()));
        conn.build()
    })
}

/// [`sdk_config`] with every call bounded by `timeout`.
///
/// The SDK reads the AWS config file (for settings like `endpoint_url`) but never the
/// credentials file: credsync takes no credentials from it through the SDK, and the SDK's
/// plain read of it would block forever on a FIFO there and read a huge file whole.
// `ProfileFiles` is a deprecated alias of `aws_runtime`'s `EnvConfigFiles`, not a dependency.
#[allow(deprecated)]
pub async fn sdk_config_with_timeout(region: &str, timeout: Duration) -> aws_config::SdkConfig {
    let files = aws_config::profile::profile_file::ProfileFiles::builder()
        .include_default_config_file(true)
        .build();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .profile_files(files)
        .region(aws_config::Region::new(region.to_owned()))
        .no_credentials()
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(timeout.min(Duration::from_secs(5)))
                .read_timeout(timeout.mul_f64(2.0 / 3.0))
                .operation_timeout(timeout)
                .build(),
        )
        .load()
        .await
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
        Ok(sso_cache::Read::Token(token)) if token.expires_at > now => Ok(token),
        Ok(sso_cache::Read::Token(token)) => Err(login(format!(
            "the SSO token for {} expired at {}",
            session_label(sso),
            crate::timefmt::rfc3339(token.expires_at)
        ))),
        Ok(sso_cache::Read::Missing) => Err(login(format!(
            "no SSO token for {} in {}",
            session_label(sso),
            cache_dir.display()
        ))),
        Ok(sso_cache::Read::Unparsable(e)) => Err(ResolveError::TokenUnreadable {
            path,
            reason: e.to_string(),
        }),
        Err(e) => Err(ResolveError::TokenUnreadable {
            path,
            reason: e.to_string(),
        }),
    }
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
    })
}

fn classify_sso_error(err: SdkError<GetRoleCredentialsError>, sso: &SsoProfile) -> ResolveError {
    const SERVICE: &str = "SSO portal";
    let SdkError::ServiceError(ctx) = err else {
        return transient(SERVICE, &err);
    };
    let retry_after = retry_after(ctx.raw().headers().get("retry-after"));
    let status = ctx.raw().status().as_u16();
    let e = ctx.into_err();
    let code = e.code().unwrap_or("unknown").to_owned();
    match e {
        GetRoleCredentialsError::UnauthorizedException(_) => ResolveError::LoginRequired {
            reason: format!("the SSO portal refused the cached token ({code})"),
            login_command: sso.login_command(),
        },
        GetRoleCredentialsError::TooManyRequestsException(_) => ResolveError::Throttled {
            service: SERVICE,
            code,
            retry_after,
        },
        e => by_status(SERVICE, status, &code, retry_after).unwrap_or_else(|| {
            let message = e.message().unwrap_or("").to_owned();
            let message = match e {
                GetRoleCredentialsError::ResourceNotFoundException(_) => format!(
                    "no role {:?} in account {} for this SSO user ({message})",
                    sso.role_name, sso.account_id
                ),
                _ => message,
            };
            ResolveError::Refused {
                service: SERVICE,
                code,
                message,
            }
        }),
    }
}

/// A dispatch failure, timeout or unparsable answer, in words (no request data in them).
pub fn transient<E, R>(service: &'static str, err: &SdkError<E, R>) -> ResolveError {
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
pub fn by_status(
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
pub fn retry_after(value: Option<&str>) -> Option<Duration> {
    value?.trim().parse::<u64>().ok().map(Duration::from_secs)
}
