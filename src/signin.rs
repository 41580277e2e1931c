//! AWS Sign-In's `CreateOAuth2Token` for `aws login` sessions: the endpoint, the DPoP proof,
//! the call, and the renewal of a session's cache entry (`login_cache`).
//!
//! What botocore does and credsync matches (`LoginCredentialFetcher`, `build_dpop_header`):
//! - the call is `POST <endpoint>/v1/token`, unsigned, JSON body `{"clientId", "refreshToken",
//!   "grantType": "refresh_token"}` (or the authorization code's fields), with a `DPoP` header:
//!   a compact JWS, ES256 with the entry's `dpopKey`, header
//!   `{"typ":"dpop+jwt","alg":"ES256","jwk":{"kty":"EC","x","y","crv":"P-256"}}` and payload
//!   `{"htm":"POST","htu":<the request URL>,"iat":<seconds>,"jti":<a new UUID>}`;
//! - the answer's `accessToken` (`accessKeyId`, `secretAccessKey`, `sessionToken`) expires
//!   `expiresIn` seconds from now; `refreshToken` replaces the one sent (it rotates on every
//!   use); `accountId` and the other fields of the entry stay;
//! - `AccessDeniedException` with `error` `TOKEN_EXPIRED`, `USER_CREDENTIALS_CHANGED` or
//!   `INSUFFICIENT_PERMISSIONS` ends the session: a new sign-in is needed.
//!
//! The endpoint: `AWS_ENDPOINT_URL_SIGNIN`, else `AWS_ENDPOINT_URL`, else the AWS config's
//! `endpoint_url`, else the one the signin endpoint rules give `CreateOAuth2Token` for the
//! region (`https://<region>.signin.aws.amazon.com` in the `aws` partition).
//!
//! The AWS CLI takes no lock around its refresh, so credsync and the CLI can both send one
//! refresh token at the same moment: one of them is refused. When credsync is, it reads the
//! entry again and, finding the CLI's newer refresh token there, carries on with it
//! ([`renew`]); only a refusal of the token the entry still holds ends the session.

use std::path::Path;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::aws::{AwsEdge, Proxy, ResolveError};
use crate::login_cache::{self, LoginToken, Read};
use crate::secret::{ExposeSecret, SecretString};
use crate::sso_cache::lock::SessionLock;
use crate::write::{Outcome, WriteError};

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The service's name in messages.
const SERVICE: &str = "AWS Sign-In";

/// An entry with more than this left is not renewed: someone (the AWS CLI, another credsync)
/// just did. The daemon's schedule calls for a renewal with about 8 of its 15 minutes left.
pub(crate) const RENEW_WITHIN: Duration = Duration::from_secs(10 * 60);

/// The `error` codes of `AccessDeniedException` that end a session.
const SESSION_OVER: [&str; 3] = [
    "TOKEN_EXPIRED",
    "USER_CREDENTIALS_CHANGED",
    "INSUFFICIENT_PERMISSIONS",
];

/// The key a session's refresh token is bound to. `Debug` shows nothing of it.
pub struct DpopKey {
    pair: EcdsaKeyPair,
}

impl std::fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DpopKey([REDACTED])")
    }
}

/// The OID of P-256 (`prime256v1`), DER-encoded with its tag.
const P256_OID: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

impl DpopKey {
    /// The key of a cache entry's `dpopKey`: a SEC1 `EC PRIVATE KEY` PEM (botocore strips the
    /// `-----` lines and base64-decodes the rest), which must hold the public key.
    pub fn from_pem(pem: &str) -> Result<DpopKey, String> {
        let body: String = pem
            .lines()
            .filter(|l| !l.starts_with("-----BEGIN") && !l.starts_with("-----END"))
            .collect::<String>()
            .trim()
            .to_owned();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|_| "the dpopKey is not base64".to_owned())?;
        let (private, public) = sec1_parts(&der).ok_or("the dpopKey is not a SEC1 EC key")?;
        let public = public.ok_or("the dpopKey holds no public key")?;
        let pair = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            private,
            public,
            &SystemRandom::new(),
        )
        .map_err(|_| "the dpopKey is not a P-256 key".to_owned())?;
        Ok(DpopKey { pair })
    }

    /// A new key, and its PEM as `aws login` writes it (SEC1 DER with the curve and the public
    /// key, base64 in lines of 64).
    pub fn generate() -> Result<(DpopKey, String), String> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| "cannot generate a P-256 key".to_owned())?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| "cannot read the generated key".to_owned())?;
        let private = pkcs8_private_scalar(pkcs8.as_ref()).ok_or("unexpected PKCS#8 layout")?;
        let der = sec1_der(&private, pair.public_key().as_ref());
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let mut pem = String::from("-----BEGIN EC PRIVATE KEY-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
            pem.push('\n');
        }
        pem.push_str("-----END EC PRIVATE KEY-----\n");
        Ok((DpopKey { pair }, pem))
    }

    /// The public key's JWK members `x` and `y` (base64url, unpadded).
    pub fn coordinates(&self) -> (String, String) {
        let point = self.pair.public_key().as_ref();
        (B64URL.encode(&point[1..33]), B64URL.encode(&point[33..65]))
    }

    /// The `DPoP` header for a `POST` to `htu` at `iat` (seconds since the epoch), with `jti`
    /// (botocore: a new UUID per request).
    pub fn proof(&self, htu: &str, iat: u64, jti: &str) -> Result<String, String> {
        let (x, y) = self.coordinates();
        // serde_json keeps insertion order only with `preserve_order`: written out by hand,
        // byte for byte what botocore's json.dumps(separators=(',', ':')) gives.
        let header = format!(
            r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{{"kty":"EC","x":"{x}","y":"{y}","crv":"P-256"}}}}"#
        );
        let payload = format!(
            r#"{{"htm":"POST","htu":{},"iat":{iat},"jti":{}}}"#,
            Value::from(htu),
            Value::from(jti)
        );
        let input = format!(
            "{}.{}",
            B64URL.encode(header.as_bytes()),
            B64URL.encode(payload.as_bytes())
        );
        let sig = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .map_err(|_| "cannot sign the DPoP proof".to_owned())?;
        Ok(format!("{input}.{}", B64URL.encode(sig.as_ref())))
    }
}

/// One DER element at the start of `der`: its tag, its contents, and what follows.
fn element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 2 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |a, &b| a << 8 | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The private scalar and (when present) the uncompressed public point of a SEC1
/// `ECPrivateKey`: `SEQUENCE { 1, OCTET STRING d, [0] params OPTIONAL, [1] BIT STRING pub
/// OPTIONAL }`.
fn sec1_parts(der: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let (0x30, body, _) = element(der)? else {
        return None;
    };
    let (0x02, [1], rest) = element(body)? else {
        return None;
    };
    let (0x04, private, mut rest) = element(rest)? else {
        return None;
    };
    let mut public = None;
    while let Some((tag, content, next)) = element(rest) {
        if tag == 0xa1 {
            let (0x03, bits, _) = element(content)? else {
                return None;
            };
            public = bits.split_first().map(|(_, point)| point);
        }
        rest = next;
    }
    Some((private, public))
}

/// The private scalar of a PKCS#8 `PrivateKeyInfo` holding a SEC1 key (what ring generates).
fn pkcs8_private_scalar(der: &[u8]) -> Option<Vec<u8>> {
    let (0x30, body, _) = element(der)? else {
        return None;
    };
    let (0x02, _, rest) = element(body)? else {
        return None;
    };
    let (0x30, _, rest) = element(rest)? else {
        return None;
    };
    let (0x04, sec1, _) = element(rest)? else {
        return None;
    };
    sec1_parts(sec1).map(|(d, _)| d.to_vec())
}

/// SEC1 DER of a P-256 key, as OpenSSL (and so `aws login`) writes it: version, the scalar,
/// the curve, the public point.
fn sec1_der(private: &[u8], public: &[u8]) -> Vec<u8> {
    let mut body = vec![0x02, 0x01, 0x01, 0x04, private.len() as u8];
    body.extend_from_slice(private);
    body.extend_from_slice(&[0xa0, P256_OID.len() as u8]);
    body.extend_from_slice(&P256_OID);
    body.extend_from_slice(&[
        0xa1,
        public.len() as u8 + 3,
        0x03,
        public.len() as u8 + 1,
        0x00,
    ]);
    body.extend_from_slice(public);
    let mut der = vec![0x30, body.len() as u8];
    der.extend(body);
    der
}

/// A new random UUID (version 4), as botocore's `uuid.uuid4()` gives the `jti`.
pub(crate) fn uuid4() -> Result<String, String> {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).map_err(|e| format!("no random numbers: {e}"))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

/// The signin endpoint for `region` as the service's endpoint rules give it to
/// `CreateOAuth2Token` (no FIPS, no dual-stack), by partition.
pub(crate) fn default_endpoint(region: &str) -> String {
    if region.starts_with("cn-") {
        format!("https://{region}.signin.amazonaws.cn")
    } else if region.starts_with("us-gov-") {
        format!("https://{region}.signin.amazonaws-us-gov.com")
    } else if region.starts_with("eusc-") {
        format!("https://{region}.signin.amazonaws-eusc.eu")
    } else {
        format!("https://{region}.signin.aws.amazon.com")
    }
}

/// The region AWS Sign-In is called in for `login`'s session, as botocore picks a client's:
/// `AWS_REGION`, else `AWS_DEFAULT_REGION`, else the profile's `region`, else `us-east-1`.
pub fn region_of(login: &crate::chain::LoginProfile, env: &crate::config::Env) -> String {
    env.get("AWS_REGION")
        .or_else(|| env.get("AWS_DEFAULT_REGION"))
        .or(login.region.as_deref())
        .unwrap_or("us-east-1")
        .to_owned()
}

/// What `CreateOAuth2Token` answered.
#[derive(Debug)]
pub struct TokenOutput {
    pub access_key_id: SecretString,
    pub secret_access_key: SecretString,
    pub session_token: SecretString,
    pub expires_in: u64,
    pub token_type: Option<String>,
    pub refresh_token: SecretString,
    pub id_token: Option<SecretString>,
}

/// Why a call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// `AccessDeniedException` with this `error` code.
    #[error("{SERVICE} refused the request ({code}): {message}")]
    Denied { code: String, message: String },
    #[error("{0}")]
    Other(ResolveError),
}

/// A client of one signin endpoint.
pub struct Signin {
    endpoint: String,
    proxy: Proxy,
    timeout: Duration,
}

impl Signin {
    /// A client of `endpoint` (no trailing `/`), reached as `edge` says.
    pub fn new(endpoint: String, edge: &AwsEdge) -> Signin {
        Signin {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            proxy: edge.proxy,
            timeout: edge.timeout,
        }
    }

    /// The endpoint's base URL (where `/v1/authorize` and `/v1/token` are).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// `CreateOAuth2Token` with `input` (the `tokenInput` members), the proof signed by `key`.
    pub async fn create_token(
        &self,
        key: &DpopKey,
        input: Value,
        now: SystemTime,
    ) -> Result<TokenOutput, CallError> {
        let url = format!("{}/v1/token", self.endpoint);
        let iat = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let other = |message: String| CallError::Other(config_error(message));
        let jti = uuid4().map_err(other)?;
        let proof = key.proof(&url, iat, &jti).map_err(other)?;
        let body = serde_json::to_vec(&input).expect("JSON values serialise");
        let (status, error_type, bytes) = self.post(&url, &proof, body).await?;
        answer(status, error_type, &bytes)
    }

    /// `POST url` with a JSON body and the DPoP proof; the status, `x-amzn-errortype` and the
    /// body.
    async fn post(
        &self,
        url: &str,
        proof: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Option<String>, Vec<u8>), CallError> {
        use aws_smithy_http_client::proxy::ProxyConfig;
        use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
        use aws_smithy_runtime_api::client::http::{HttpConnector, HttpConnectorSettings};
        use aws_smithy_runtime_api::http::Request;
        use aws_smithy_types::body::SdkBody;
        use aws_smithy_types::byte_stream::ByteStream;

        let transient = |message: String| {
            CallError::Other(ResolveError::Transient {
                service: SERVICE,
                message,
                retry_after: None,
            })
        };
        let settings = HttpConnectorSettings::builder()
            .connect_timeout(self.timeout)
            .read_timeout(self.timeout)
            .build();
        let connector = aws_smithy_http_client::Connector::builder()
            .connector_settings(settings)
            .proxy_config(match self.proxy {
                Proxy::FromEnvironment => ProxyConfig::from_env(),
                Proxy::Direct => ProxyConfig::disabled(),
            })
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build();
        let mut request = Request::new(SdkBody::from(body));
        let bad = |e: String| CallError::Other(config_error(e));
        request
            .set_uri(url)
            .map_err(|e| bad(format!("bad signin endpoint {url:?}: {e}")))?;
        request.set_method("POST").map_err(|e| bad(e.to_string()))?;
        let headers = request.headers_mut();
        headers.insert("content-type", "application/json");
        headers.insert("accept", "application/json");
        headers.insert("dpop", proof.to_owned());
        let call = connector.call(request);
        let response = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| transient(format!("no answer from {url} within {:?}", self.timeout)))?
            .map_err(|e| transient(format!("{url}: {e}")))?;
        let status = response.status().as_u16();
        let error_type = response
            .headers()
            .get("x-amzn-errortype")
            .map(str::to_owned);
        let bytes = ByteStream::new(response.into_body())
            .collect()
            .await
            .map_err(|e| transient(format!("{url}: {e}")))?
            .into_bytes()
            .to_vec();
        Ok((status, error_type, bytes))
    }
}

/// What an answer of `CreateOAuth2Token` means: its `tokenOutput`, or why not (the error type
/// from `x-amzn-errortype`, else the body's `__type` or `code`, as botocore reads it; the
/// model's `error` and `message`).
fn answer(status: u16, error_type: Option<String>, bytes: &[u8]) -> Result<TokenOutput, CallError> {
    let parsed: Option<Value> = serde_json::from_slice(bytes).ok();
    if (200..300).contains(&status) {
        return token_output(parsed.as_ref()).ok_or_else(|| {
            CallError::Other(ResolveError::Transient {
                service: SERVICE,
                message: "the answer to CreateOAuth2Token did not parse".to_owned(),
                retry_after: None,
            })
        });
    }
    let field = |k: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    // botocore's order: the header, then the body's `__type`, then its `code`.
    let error_type = error_type
        .or_else(|| Some(field("__type")).filter(|s| !s.is_empty()))
        .or_else(|| Some(field("code")).filter(|s| !s.is_empty()))
        .unwrap_or_default();
    let error_type = error_type
        .split([':', '#'])
        .next_back()
        .unwrap_or("")
        .to_owned();
    let code = field("error");
    let message = field("message");
    let denied = error_type == "AccessDeniedException"
        || (matches!(status, 401 | 403) && SESSION_OVER.contains(&code.as_str()));
    Err(match (status, error_type.as_str()) {
        _ if denied => CallError::Denied { code, message },
        (429, _) | (_, "TooManyRequestsError") => CallError::Other(ResolveError::Throttled {
            service: SERVICE,
            code: error_type,
            retry_after: None,
        }),
        (500.., _) => CallError::Other(ResolveError::Transient {
            service: SERVICE,
            message: format!("HTTP {status} {error_type}"),
            retry_after: None,
        }),
        _ => CallError::Other(ResolveError::Refused {
            service: SERVICE,
            code: if error_type.is_empty() {
                format!("HTTP {status}")
            } else {
                error_type
            },
            message,
        }),
    })
}

fn config_error(message: String) -> ResolveError {
    ResolveError::Config(message)
}

/// The `tokenOutput` of a 200.
fn token_output(v: Option<&Value>) -> Option<TokenOutput> {
    let v = v?;
    let s = |v: &Value, k: &str| v.get(k)?.as_str().map(str::to_owned);
    let secret = |x: String| SecretString::from(x);
    let access = v.get("accessToken")?;
    Some(TokenOutput {
        access_key_id: secret(s(access, "accessKeyId")?),
        secret_access_key: secret(s(access, "secretAccessKey")?),
        session_token: secret(s(access, "sessionToken")?),
        expires_in: v.get("expiresIn")?.as_u64()?,
        token_type: s(v, "tokenType"),
        refresh_token: secret(s(v, "refreshToken")?),
        id_token: s(v, "idToken").map(secret),
    })
}

/// The body of a refresh: `{"clientId","refreshToken","grantType":"refresh_token"}`.
fn refresh_input(t: &LoginToken) -> Value {
    json!({
        "clientId": t.client_id,
        "refreshToken": t.refresh_token.expose_secret(),
        "grantType": "refresh_token",
    })
}

/// `t` renewed with `out` at `now`, as botocore updates the entry: a new `accessToken` (the
/// account kept) and `refreshToken`.
pub(crate) fn renewed(t: &LoginToken, out: TokenOutput, now: SystemTime) -> LoginToken {
    LoginToken {
        access_key_id: out.access_key_id,
        secret_access_key: out.secret_access_key,
        session_token: out.session_token,
        // botocore writes whole seconds: the expiry read back is the one kept.
        expires_at: whole_seconds(now + Duration::from_secs(out.expires_in)),
        refresh_token: out.refresh_token,
        ..t.clone()
    }
}

fn whole_seconds(t: SystemTime) -> SystemTime {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// A short, non-reversible mark of a refresh token, to recognise the one the service refused
/// without keeping it.
pub(crate) fn fingerprint(refresh: &SecretString) -> String {
    let digest = Sha256::digest(refresh.expose_secret().as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// What [`renew`] ended with.
#[derive(Debug)]
pub enum Renewal {
    /// The entry in force: renewed now, or already fresh (renewed by someone else).
    Fresh { token: LoginToken, renewed: bool },
    /// The service refused the entry's refresh token: the session is over.
    Refused {
        /// [`fingerprint`] of the refused token.
        fingerprint: String,
        /// When the entry's credentials expire.
        expires_at: SystemTime,
        error: ResolveError,
    },
}

/// How long a renewal waits for another credsync holding the session's lock.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// How long, after a refusal, the entry is watched for the AWS CLI's write of the token that
/// won (botocore writes it right after its answer); and how often.
const REREAD_FOR: Duration = Duration::from_secs(5);
const REREAD_EVERY: Duration = Duration::from_millis(100);

/// Renews session `session`'s entry in `dir` unless it has more than [`RENEW_WITHIN`] left,
/// holding the session's lock. `refused`: the fingerprint of a
/// refresh token the service already refused: the entry still holding it fails at once, with no
/// call. `login_command` goes into the error that asks for a sign-in.
pub async fn renew(
    signin: &Signin,
    dir: &Path,
    session: &str,
    refused: Option<&str>,
    login_command: &str,
    now: SystemTime,
) -> Result<Renewal, ResolveError> {
    let lock_path = login_cache::lock_path(dir, session);
    let _lock = SessionLock::acquire_path(&lock_path, LOCK_WAIT, || {
        tracing::debug!("waiting for {}", lock_path.display());
    })
    .await
    .map_err(|e| ResolveError::Transient {
        service: "the login cache",
        message: e.to_string(),
        retry_after: None,
    })?;
    renew_locked(signin, dir, session, refused, login_command, now).await
}

/// [`renew`], the session's lock already held.
pub(crate) async fn renew_locked(
    signin: &Signin,
    dir: &Path,
    session: &str,
    refused: Option<&str>,
    login_command: &str,
    now: SystemTime,
) -> Result<Renewal, ResolveError> {
    let login = |reason: String| ResolveError::LoginRequired {
        reason,
        login_command: login_command.to_owned(),
    };
    let mut token = read_entry(dir, session, &login)?;
    let mut tried_after_refusal = false;
    loop {
        let left = token.expires_at.duration_since(now).unwrap_or_default();
        if left > RENEW_WITHIN && !tried_after_refusal {
            return Ok(Renewal::Fresh {
                token,
                renewed: false,
            });
        }
        let print = fingerprint(&token.refresh_token);
        let refused_before = refused == Some(print.as_str());
        if crate::token_policy::why_not_login(true, refused_before).is_some() {
            return Ok(Renewal::Refused {
                fingerprint: print,
                expires_at: token.expires_at,
                error: login("AWS Sign-In refused this session's refresh token".to_owned()),
            });
        }
        let key = DpopKey::from_pem(token.dpop_key.expose_secret()).map_err(|e| {
            login(format!(
                "{e} in {}",
                login_cache::path(dir, session).display()
            ))
        })?;
        match signin.create_token(&key, refresh_input(&token), now).await {
            Ok(out) => {
                let new = renewed(&token, out, now);
                return save(dir, session, new, &token.refresh_token).await;
            }
            Err(CallError::Denied { code, message }) if SESSION_OVER.contains(&code.as_str()) => {
                // The AWS CLI may have spent this token a moment ago: its entry wins.
                match reread_changed(dir, session, &token.refresh_token).await {
                    Some(newer) if !tried_after_refusal => {
                        tracing::info!(
                            "login session {session}: another program renewed it first; using its entry"
                        );
                        token = newer;
                        tried_after_refusal = true;
                        if token.expires_at.duration_since(now).unwrap_or_default() > RENEW_WITHIN {
                            return Ok(Renewal::Fresh {
                                token,
                                renewed: false,
                            });
                        }
                    }
                    _ => {
                        return Ok(Renewal::Refused {
                            fingerprint: print,
                            expires_at: token.expires_at,
                            error: login(format!("the login session ended ({code}: {message})")),
                        });
                    }
                }
            }
            Err(CallError::Denied { code, message }) => {
                return Err(ResolveError::Refused {
                    service: SERVICE,
                    code,
                    message,
                });
            }
            Err(CallError::Other(e)) => return Err(e),
        }
    }
}

/// Session `session`'s entry, or why there is none.
fn read_entry(
    dir: &Path,
    session: &str,
    login: &dyn Fn(String) -> ResolveError,
) -> Result<LoginToken, ResolveError> {
    let path = login_cache::path(dir, session);
    match login_cache::read(dir, session) {
        Ok(Read::Token(t)) => Ok(*t),
        Ok(Read::Missing) => Err(login(format!(
            "no login session in {} (never signed in, or signed out)",
            path.display()
        ))),
        Ok(Read::Unparsable(e)) => Err(ResolveError::TokenUnreadable {
            path,
            reason: e.to_string(),
        }),
        Err(e) => Err(ResolveError::TokenUnreadable {
            path,
            reason: e.to_string(),
        }),
    }
}

/// The entry once it no longer holds `spent` (read again for a moment, the AWS CLI writing
/// it in place), or `None` when it still does.
async fn reread_changed(dir: &Path, session: &str, spent: &SecretString) -> Option<LoginToken> {
    let start = tokio::time::Instant::now();
    loop {
        if let Ok(Read::Token(t)) = login_cache::read(dir, session)
            && !t.holds(spent)
        {
            return Some(*t);
        }
        if start.elapsed() >= REREAD_FOR {
            return None;
        }
        tokio::time::sleep(REREAD_EVERY).await;
    }
}

/// Writes renewed entry `new` over the one holding `renewed_from`. A file caught half-written
/// (the AWS CLI writing it) is tried again for a moment: `new` holds the only refresh token
/// that still works.
async fn save(
    dir: &Path,
    session: &str,
    new: LoginToken,
    renewed_from: &SecretString,
) -> Result<Renewal, ResolveError> {
    let start = tokio::time::Instant::now();
    loop {
        match login_cache::write_renewed(dir, session, &new, renewed_from) {
            Ok(Outcome::Written) => {
                return Ok(Renewal::Fresh {
                    token: new,
                    renewed: true,
                });
            }
            Ok(Outcome::Unchanged) => {
                // Signed in again or out meanwhile: that wins; the credentials just issued are
                // still good for the profiles.
                tracing::info!(
                    "login session {session}: the cache entry changed during the renewal; kept it"
                );
                return Ok(Renewal::Fresh {
                    token: new,
                    renewed: true,
                });
            }
            Err(WriteError::Edit { .. }) if start.elapsed() < REREAD_FOR => {
                tokio::time::sleep(REREAD_EVERY).await;
            }
            Err(e) => {
                return Err(ResolveError::Transient {
                    service: "the login cache",
                    message: format!("renewed the login session but could not save it: {e}"),
                    retry_after: None,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};

    /// A key `awscrt` exported as SEC1 (what `aws login` writes), and its public point.
    const CLI_KEY_DER: &str = "30770201010420b9459eec944714b308b9225619599a2ab7c17d45bd0661e85daad0617aa589d0a00a06082a8648ce3d030107a144034200047ce283c7a55f503f3123767586734a8cc37aa67ead7dc32f185f37c6e7620a49ca3972d5ca83b2db121956f2d37e8b85e71728ffdaac458f21cb3f13951f416b";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn pem(der: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN EC PRIVATE KEY-----\n{b64}\n-----END EC PRIVATE KEY-----\n")
    }

    #[test]
    fn a_proof_is_botocores_jws_and_verifies_with_the_entrys_key() {
        let der = hex(CLI_KEY_DER);
        let key = DpopKey::from_pem(&pem(&der)).unwrap();
        let proof = key
            .proof("http://127.0.0.1:1/v1/token", 1_800_000_000, "j-1")
            .unwrap();
        let parts: Vec<&str> = proof.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header = String::from_utf8(B64URL.decode(parts[0]).unwrap()).unwrap();
        let (x, y) = (B64URL.encode(&der[57..89]), B64URL.encode(&der[89..121]));
        assert_eq!(
            header,
            format!(
                r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{{"kty":"EC","x":"{x}","y":"{y}","crv":"P-256"}}}}"#
            )
        );
        let payload = String::from_utf8(B64URL.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(
            payload,
            r#"{"htm":"POST","htu":"http://127.0.0.1:1/v1/token","iat":1800000000,"jti":"j-1"}"#
        );
        let sig = B64URL.decode(parts[2]).unwrap();
        let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &der[56..121]);
        public
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .expect("the signature verifies");
        assert_eq!(format!("{key:?}"), "DpopKey([REDACTED])");
    }

    #[test]
    fn a_generated_key_is_written_as_the_cli_writes_its_own() {
        let (key, text) = DpopKey::generate().unwrap();
        assert!(text.starts_with("-----BEGIN EC PRIVATE KEY-----\n"));
        assert!(text.lines().all(|l| l.len() <= 64));
        let again = DpopKey::from_pem(&text).unwrap();
        assert_eq!(key.coordinates(), again.coordinates());
        let der = base64::engine::general_purpose::STANDARD
            .decode(
                text.lines()
                    .filter(|l| !l.starts_with("-----"))
                    .collect::<String>(),
            )
            .unwrap();
        assert_eq!(der.len(), 121, "the layout of awscrt's SEC1 export");
        assert_eq!(der[..7], hex(&CLI_KEY_DER[..14])[..]);
    }

    #[test]
    fn a_key_without_its_public_point_is_refused_by_name() {
        // The scalar alone (no [1] public key).
        let der = hex(CLI_KEY_DER);
        let mut short = vec![0x30, 0x25];
        short.extend_from_slice(&der[2..39]);
        let e = DpopKey::from_pem(&pem(&short)).unwrap_err();
        assert!(e.contains("no public key"), "{e}");
        assert!(DpopKey::from_pem("-----BEGIN EC PRIVATE KEY-----\n!!\n").is_err());
    }

    #[test]
    fn answers_are_read_as_botocore_reads_them() {
        let ok = br#"{"accessToken": {"accessKeyId": "A", "secretAccessKey": "S", "sessionToken": "T"}, "tokenType": "aws_sigv4", "expiresIn": 900, "refreshToken": "R"}"#;
        let out = answer(200, None, ok).unwrap();
        assert_eq!(
            (out.expires_in, out.refresh_token.expose_secret()),
            (900, "R")
        );
        assert!(matches!(
            answer(200, None, b"{\"accessToken\":"),
            Err(CallError::Other(ResolveError::Transient { .. }))
        ));
        let expired = br#"{"error": "TOKEN_EXPIRED", "message": "m"}"#;
        for header in [Some("AccessDeniedException".to_owned()), None] {
            match answer(401, header, expired) {
                Err(CallError::Denied { code, .. }) => assert_eq!(code, "TOKEN_EXPIRED"),
                other => panic!("{other:?}"),
            }
        }
        let typed = br#"{"__type": "com.amazon#AccessDeniedException", "error": "USER_CREDENTIALS_CHANGED", "message": "m"}"#;
        assert!(matches!(
            answer(403, None, typed),
            Err(CallError::Denied { .. })
        ));
        assert!(matches!(
            answer(429, Some("TooManyRequestsError".into()), b"{}"),
            Err(CallError::Other(ResolveError::Throttled { .. }))
        ));
        assert!(matches!(
            answer(503, None, b""),
            Err(CallError::Other(ResolveError::Transient { .. }))
        ));
        match answer(
            400,
            Some("ValidationException".into()),
            br#"{"error": "INVALID_REQUEST", "message": "bad"}"#,
        ) {
            Err(CallError::Other(ResolveError::Refused { code, message, .. })) => {
                assert_eq!(
                    (code.as_str(), message.as_str()),
                    ("ValidationException", "bad")
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn endpoints_follow_the_partitions() {
        assert_eq!(
            default_endpoint("eu-west-1"),
            "https://eu-west-1.signin.aws.amazon.com"
        );
        assert_eq!(
            default_endpoint("cn-north-1"),
            "https://cn-north-1.signin.amazonaws.cn"
        );
        let u = uuid4().unwrap();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }
}
