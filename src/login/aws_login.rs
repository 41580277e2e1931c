//! `credsync login` for `aws login` profiles (`login_session`): the AWS CLI's sign-in to AWS
//! Sign-In, writing the same cache entry, so that either tool's sign-in serves the other.
//!
//! As `aws login` does it (`awscli/customizations/login/`):
//! - a new P-256 DPoP key per sign-in, a PKCE verifier of 64 characters and its unpadded S256
//!   challenge, a `state`;
//! - the authorize page `<signin endpoint>/v1/authorize?response_type=code&client_id=…&state=…
//!   &code_challenge_method=SHA-256&scope=openid&redirect_uri=…&code_challenge=…`;
//! - on this machine (client `arn:aws:signin:::devtools/same-device`), the browser comes back
//!   to a loopback listener (`http://127.0.0.1:<port>/oauth/callback`); on another device
//!   (`arn:aws:signin:::devtools/cross-device`, the CLI's `--remote`, for SSH), the page shows a
//!   verification code (base64 of `state=…&code=…`) that the user pastes here, and the
//!   redirect URI is the service's own `/v1/sessions/confirmation`;
//! - `CreateOAuth2Token` (`authorization_code`, with the verifier and the redirect URI, DPoP
//!   signed with the new key); the `idToken`'s `sub` is the user's ARN, the `login_session`.
//!
//! The entry is written atomically under the session's lock (`login_cache`), which also makes
//! a second `credsync login` wait for the first. A session that still renews is renewed instead
//! of signed in again (`--fresh` signs in regardless).

use std::path::Path;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::json;

use super::callback::CallbackListener;
use super::opener::Opener;
use super::pkce::Pkce;
use super::{LOCK_WAIT, LoginError, Options, TIME_LIMIT};
use crate::aws::{Clients, ResolveError};
use crate::chain::LoginProfile;
use crate::config::Env;
use crate::login_cache::{self, LoginToken};
use crate::secret::{ExposeSecret, SecretString};
use crate::signin::{self, CallError, DpopKey, Renewal, Signin};
use crate::sso_cache::lock::SessionLock;

/// The AWS CLI's client ids.
const SAME_DEVICE: &str = "arn:aws:signin:::devtools/same-device";
const CROSS_DEVICE: &str = "arn:aws:signin:::devtools/cross-device";

/// What botocore's `percent_encode` leaves alone: letters, digits and `-_.~`.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// One `aws login` session to sign in to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsLoginTarget {
    /// The profile with `login_session`.
    pub profile: String,
    /// Its `login_session`.
    pub session: String,
    /// Where AWS Sign-In is called.
    pub region: String,
}

impl AwsLoginTarget {
    /// The target of `login`'s session, in the region botocore would use
    /// ([`signin::region_of`]).
    pub fn of(login: &LoginProfile, env: &Env) -> AwsLoginTarget {
        AwsLoginTarget {
            profile: login.profile.clone(),
            session: login.session.clone(),
            region: signin::region_of(login, env),
        }
    }

    /// For messages: `profile P (ARN)`.
    pub fn label(&self) -> String {
        format!("profile {} ({})", self.profile, self.session)
    }
}

/// What [`login`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AwsLoginOutcome {
    /// The entry has more than ten minutes left (renewed moments ago).
    AlreadySignedIn { expires_at: SystemTime },
    /// The entry was renewed with its refresh token, without a browser.
    Renewed { expires_at: SystemTime },
    /// A new sign-in; `remote` when on another device.
    SignedIn {
        expires_at: SystemTime,
        remote: bool,
    },
}

/// The authorize page, parameters in the AWS CLI's order (the challenge last, unencoded).
pub(crate) fn authorize_url(
    endpoint: &str,
    client_id: &str,
    state: &str,
    redirect_uri: &str,
    challenge: &str,
) -> String {
    let enc = |s: &str| utf8_percent_encode(s, QUERY).to_string();
    format!(
        "{}/v1/authorize?response_type=code&client_id={}&state={}&code_challenge_method=SHA-256\
         &scope=openid&redirect_uri={}&code_challenge={challenge}",
        endpoint.trim_end_matches('/'),
        enc(client_id),
        enc(state),
        enc(redirect_uri),
    )
}

/// The `state` and `code` of a verification code pasted from the browser (base64 of
/// `state=…&code=…`), as the AWS CLI's `parse_verification_code` reads it.
pub(crate) fn parse_verification_code(pasted: &str) -> Option<(String, SecretString)> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(pasted.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let mut state = None;
    let mut code = None;
    for pair in text.split('&') {
        let (k, v) = pair.split_once('=')?;
        let v = percent_encoding::percent_decode_str(v)
            .decode_utf8()
            .ok()?
            .into_owned();
        match k {
            "state" => state = Some(v),
            "code" => code = Some(SecretString::from(v)),
            _ => {}
        }
    }
    Some((state?, code?))
}

/// The `sub` of an ID token (a JWT; its payload is read, not verified: it came straight from
/// AWS Sign-In over TLS, as the AWS CLI reads it).
fn subject(id_token: &str) -> Option<String> {
    let payload = id_token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("sub")?.as_str().map(str::to_owned)
}

/// Signs in to `target`'s session (or renews it), writing its cache entry in `dir`. Over SSH
/// or without a browser here (or with `--device-code`), the sign-in is the cross-device one:
/// `read_code` reads the verification code the user pastes.
pub async fn login(
    clients: &mut Clients,
    dir: &Path,
    target: &AwsLoginTarget,
    opts: &Options,
    read_code: &dyn Fn() -> Option<String>,
    say: &dyn Fn(&str),
    now: &dyn Fn() -> SystemTime,
) -> Result<AwsLoginOutcome, LoginError> {
    let label = target.label();
    let lock_path = login_cache::lock_path(dir, &target.session);
    let _lock = SessionLock::acquire_path(&lock_path, LOCK_WAIT, || {
        say(&format!(
            "Another sign-in to {label} is in progress; waiting for it to finish."
        ))
    })
    .await?;
    let endpoint = clients.signin_endpoint(&target.region).await;
    let signin = Signin::new(endpoint, clients.edge());
    let command = format!("credsync login --profile {}", target.profile);
    if !opts.fresh {
        let renewal =
            signin::renew_locked(&signin, dir, &target.session, None, &command, now()).await;
        match renewal {
            Ok(Renewal::Fresh { token, renewed }) => {
                let expires_at = token.expires_at;
                return Ok(if renewed {
                    AwsLoginOutcome::Renewed { expires_at }
                } else {
                    AwsLoginOutcome::AlreadySignedIn { expires_at }
                });
            }
            Ok(Renewal::Refused { .. }) | Err(ResolveError::LoginRequired { .. }) => {}
            Err(e) => tracing::debug!("the session could not be renewed ({e}); signing in"),
        }
    }
    let remote = opts.device_code || !opts.browser_here;
    let pkce = Pkce::generate().map_err(|e| LoginError::Local(e.to_string()))?;
    let (key, pem) = DpopKey::generate().map_err(LoginError::Local)?;
    let base = signin.endpoint().to_owned();
    let (client_id, redirect_uri, code) = if remote {
        let redirect_uri = format!("{base}/v1/sessions/confirmation");
        let url = authorize_url(
            &base,
            CROSS_DEVICE,
            &pkce.state,
            &redirect_uri,
            &pkce.challenge,
        );
        say(&format!(
            "To sign in to {label}: open this page in a browser on any device, sign in, and \
             paste the authorization code it shows here:\n\n    {url}\n"
        ));
        let pasted = read_code().ok_or(LoginError::Denied)?;
        let (state, code) = parse_verification_code(&pasted).ok_or_else(|| {
            LoginError::Local("that is not the authorization code the page showed".to_owned())
        })?;
        if state != pkce.state {
            return Err(LoginError::Local(
                "the authorization code belongs to another sign-in; run the command again"
                    .to_owned(),
            ));
        }
        (CROSS_DEVICE, redirect_uri, code)
    } else {
        let listener = CallbackListener::bind().await.map_err(|e| {
            LoginError::Local(format!("cannot listen on 127.0.0.1 for the browser: {e}"))
        })?;
        let redirect_uri = listener.redirect_uri();
        let url = authorize_url(
            &base,
            SAME_DEVICE,
            &pkce.state,
            &redirect_uri,
            &pkce.challenge,
        );
        let opened = opts.opener.open(&*opts.runner, &url);
        let how = match (&opened, &opts.opener) {
            (_, Opener::PrintOnly) => "Open this page in a browser on this machine",
            (Ok(()), _) => "A browser should open; if it does not, open this page on this machine",
            (Err(_), _) => {
                "No browser could be opened; open this page in a browser on this machine"
            }
        };
        say(&format!(
            "To sign in to {label}: {how} (or run `credsync login --device-code` to sign in on \
             another device):\n\n    {url}\n"
        ));
        if let Err(e) = opened {
            tracing::debug!("could not open a browser: {e}");
        }
        let code = tokio::time::timeout(TIME_LIMIT, listener.wait(&pkce.state))
            .await
            .map_err(|_| LoginError::TimedOut(TIME_LIMIT))??;
        (SAME_DEVICE, redirect_uri, code)
    };
    let input = json!({
        "clientId": client_id,
        "grantType": "authorization_code",
        "code": code.expose_secret(),
        "codeVerifier": pkce.verifier.expose_secret(),
        "redirectUri": redirect_uri,
    });
    let at = now();
    let out = match signin.create_token(&key, input, at).await {
        Ok(out) => out,
        Err(CallError::Denied { code, .. }) if code == "AUTHCODE_EXPIRED" => {
            return Err(LoginError::CodeRefused);
        }
        Err(CallError::Denied { code, message }) => {
            return Err(LoginError::Aws {
                step: "CreateOAuth2Token",
                source: ResolveError::Refused {
                    service: "AWS Sign-In",
                    code,
                    message,
                },
            });
        }
        Err(CallError::Other(source)) => {
            return Err(LoginError::Aws {
                step: "CreateOAuth2Token",
                source,
            });
        }
    };
    let id_token = out
        .id_token
        .clone()
        .ok_or(LoginError::Malformed("CreateOAuth2Token"))?;
    let user = subject(id_token.expose_secret()).ok_or(LoginError::Malformed("idToken"))?;
    if user != target.session {
        return Err(LoginError::Config(format!(
            "signed in as {user}, but profile {} has login_session = {}; sign in as that user, \
             or switch the profile with `aws login --profile {}`",
            target.profile, target.session, target.profile
        )));
    }
    let account_id = crate::chain::arn_account(&user).map(str::to_owned);
    let token = LoginToken {
        access_key_id: out.access_key_id,
        secret_access_key: out.secret_access_key,
        session_token: out.session_token,
        account_id,
        expires_at: whole_seconds(at + Duration::from_secs(out.expires_in)),
        token_type: out.token_type,
        client_id: client_id.to_owned(),
        refresh_token: out.refresh_token,
        id_token: Some(id_token),
        dpop_key: SecretString::from(pem),
        other_access: Default::default(),
        other: Default::default(),
    };
    login_cache::replace(dir, &target.session, &token).map_err(|source| LoginError::Write {
        what: "the login cache entry",
        source,
    })?;
    Ok(AwsLoginOutcome::SignedIn {
        expires_at: token.expires_at,
        remote,
    })
}

fn whole_seconds(t: SystemTime) -> SystemTime {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authorize_url_has_the_clis_parameters_in_its_order() {
        let url = authorize_url(
            "https://us-east-1.signin.aws.amazon.com/",
            SAME_DEVICE,
            "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
            "http://127.0.0.1:4321/oauth/callback",
            "fWZ5EsaAYke3rrYH27iuOCZweVR7n4qu9qHgdtfo9bA",
        );
        assert_eq!(
            url,
            "https://us-east-1.signin.aws.amazon.com/v1/authorize?response_type=code\
             &client_id=arn%3Aaws%3Asignin%3A%3A%3Adevtools%2Fsame-device\
             &state=1b4e28ba-2fa1-11d2-883f-0016d3cca427&code_challenge_method=SHA-256\
             &scope=openid&redirect_uri=http%3A%2F%2F127.0.0.1%3A4321%2Foauth%2Fcallback\
             &code_challenge=fWZ5EsaAYke3rrYH27iuOCZweVR7n4qu9qHgdtfo9bA"
        );
    }

    #[test]
    fn a_pasted_verification_code_gives_state_and_code() {
        // base64.b64encode(b"state=s-1&code=c-1")
        let (state, code) = parse_verification_code(" c3RhdGU9cy0xJmNvZGU9Yy0x\n").unwrap();
        assert_eq!(state, "s-1");
        assert_eq!(code.expose_secret(), "c-1");
        assert!(parse_verification_code("not base64!").is_none());
        // base64.b64encode(b"state=s-1")
        assert!(parse_verification_code("c3RhdGU9cy0x").is_none());
    }

    #[test]
    fn the_user_is_the_id_tokens_subject() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"sub":"arn:aws:iam::111122223333:user/alice"}"#);
        assert_eq!(
            subject(&format!("e30.{payload}.sig")).as_deref(),
            Some("arn:aws:iam::111122223333:user/alice")
        );
        assert_eq!(subject("nope"), None);
    }
}
