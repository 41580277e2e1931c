//! Authorization code with PKCE, the AWS CLI v2's sign-in for sso-session profiles: a loopback
//! listener, the authorize page opened in the browser (and always printed), the `state`
//! checked when the browser comes back, then `CreateToken` (`authorization_code`) with the
//! redirect URI, the code and the PKCE verifier.
//!
//! [`authorize_url`] is pure; [`run`] is the edge. The authorize URL carries no secret (the
//! client id, the `state` and the challenge are public); the code and the verifier are never
//! shown or logged.

use aws_sdk_ssooidc::error::SdkError;
use aws_sdk_ssooidc::operation::create_token::CreateTokenError;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::callback::CallbackListener;
use super::opener::Opener;
use super::pkce::Pkce;
use super::registration::{DEFAULT_SCOPE, Registration};
use super::{Granted, LoginError, SignInTarget, aws_error, granted};
use crate::process::Runner;
use crate::secret::ExposeSecret;

/// What botocore's `percent_encode` leaves alone: letters, digits and `-_.~`.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The authorize page: `<oidc endpoint>/authorize?response_type=code&client_id=…&redirect_uri=
/// …&state=…&code_challenge_method=S256&scopes=<space-separated>&code_challenge=…`, in the AWS
/// CLI's order (the parameter really is `scopes`).
pub(crate) fn authorize_url(
    oidc_endpoint: &str,
    client_id: &str,
    redirect_uri: &str,
    state: &str,
    scopes: Option<&[String]>,
    challenge: &str,
) -> String {
    let scopes = match scopes {
        Some(s) if !s.is_empty() => s.join(" "),
        _ => DEFAULT_SCOPE.to_owned(),
    };
    let enc = |s: &str| utf8_percent_encode(s, QUERY).to_string();
    format!(
        "{}/authorize?response_type=code&client_id={}&redirect_uri={}&state={}\
         &code_challenge_method=S256&scopes={}&code_challenge={}",
        oidc_endpoint.trim_end_matches('/'),
        enc(client_id),
        enc(redirect_uri),
        enc(state),
        enc(&scopes),
        enc(challenge),
    )
}

/// Runs the sign-in to `target` with `registration` and returns the token answer.
pub(super) async fn run(
    client: &aws_sdk_ssooidc::Client,
    oidc_endpoint: &str,
    registration: &Registration,
    target: &SignInTarget,
    opener: &Opener,
    runner: &dyn Runner,
    say: &dyn Fn(&str),
) -> Result<Granted, LoginError> {
    let (scopes, label) = (target.scopes.as_deref(), target.label());
    let pkce = Pkce::generate().map_err(|e| LoginError::Local(e.to_string()))?;
    let listener = CallbackListener::bind()
        .await
        .map_err(|e| LoginError::Local(format!("cannot listen on 127.0.0.1 for the browser: {e}")))?
        .with_retry_command(target.login_command());
    let redirect_uri = listener.redirect_uri();
    let url = authorize_url(
        oidc_endpoint,
        &registration.client_id,
        &redirect_uri,
        &pkce.state,
        scopes,
        &pkce.challenge,
    );
    let opened = opener.open(runner, &url);
    let how = match (&opened, opener) {
        (_, Opener::PrintOnly) => "Open this page in a browser on this machine",
        (Ok(()), _) => "A browser should open; if it does not, open this page on this machine",
        (Err(_), _) => "No browser could be opened; open this page in a browser on this machine",
    };
    say(&format!(
        "To sign in to {label}: {how} (or run `credsync login --device-code` to sign in on \
         another device):\n\n    {url}\n"
    ));
    if let Err(e) = opened {
        tracing::debug!("could not open a browser: {e}");
    }
    let code = tokio::time::timeout(super::TIME_LIMIT, listener.wait(&pkce.state))
        .await
        .map_err(|_| LoginError::TimedOut(super::TIME_LIMIT))??;
    let out = client
        .create_token()
        .grant_type("authorization_code")
        .client_id(&registration.client_id)
        .client_secret(registration.client_secret.expose_secret())
        .redirect_uri(&redirect_uri)
        .code_verifier(pkce.verifier.expose_secret())
        .code(code.expose_secret())
        .send()
        .await;
    match out {
        Ok(out) => granted(&out),
        Err(SdkError::ServiceError(ctx))
            if matches!(
                ctx.err(),
                CreateTokenError::ExpiredTokenException(_)
                    | CreateTokenError::InvalidGrantException(_)
            ) =>
        {
            Err(LoginError::CodeRefused)
        }
        Err(e) => Err(aws_error("CreateToken", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_has_the_clis_parameters_in_its_order() {
        let url = authorize_url(
            "https://oidc.eu-west-1.amazonaws.com/",
            "client/1",
            "http://127.0.0.1:4321/oauth/callback",
            "st-1",
            None,
            "fWZ5EsaAYke3rrYH27iuOCZweVR7n4qu9qHgdtfo9bA",
        );
        assert_eq!(
            url,
            "https://oidc.eu-west-1.amazonaws.com/authorize?response_type=code\
             &client_id=client%2F1&redirect_uri=http%3A%2F%2F127.0.0.1%3A4321%2Foauth%2Fcallback\
             &state=st-1&code_challenge_method=S256&scopes=sso%3Aaccount%3Aaccess\
             &code_challenge=fWZ5EsaAYke3rrYH27iuOCZweVR7n4qu9qHgdtfo9bA"
        );
        let scopes = vec![
            "sso:account:access".to_owned(),
            "codewhisperer:x".to_owned(),
        ];
        let url = authorize_url("http://f", "c", "r", "s", Some(&scopes), "ch");
        assert!(
            url.contains("&scopes=sso%3Aaccount%3Aaccess%20codewhisperer%3Ax&"),
            "{url}"
        );
    }
}
