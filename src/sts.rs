//! STS AssumeRole: one hop of a role chain ([`assume_role`]) and a whole chain of them
//! ([`assume_chain`]), the network side of the plans `chain` makes.
//!
//! Each hop is a SigV4-signed AssumeRole with the source credentials. Its errors are classified
//! by `aws::classify`: auth errors are [`ResolveError::Refused`] (retrying will not help),
//! throttling [`ResolveError::Throttled`], 5xx, network errors and malformed answers
//! [`ResolveError::Transient`]. The SDK does not reject a cut-short AssumeRole answer (it returns
//! empty fields and a 1970 expiration), so every answer is checked here.

use std::time::SystemTime;

use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::operation::assume_role::AssumeRoleError;

use crate::aws::{Reading, ResolveError};
use crate::chain::RoleHop;
use crate::secret::{Credentials, ExposeSecret, SecretString};

/// The service name in errors.
const STS: &str = "STS";

/// One hop: STS AssumeRole for `hop`, signed with `source`. `now` checks the answer's
/// expiration (and that `source` has not expired already).
pub async fn assume_role(
    sts: &aws_sdk_sts::Config,
    hop: &RoleHop,
    source: &Credentials,
    now: SystemTime,
) -> Result<Credentials, ResolveError> {
    if let Some(expired) = source.expiration.filter(|e| *e <= now) {
        return Err(ResolveError::Refused {
            service: STS,
            code: String::from("ExpiredToken"),
            message: format!(
                "the credentials for assuming {} (profile {:?}) expired at {}",
                hop.role_arn,
                hop.profile,
                crate::timefmt::rfc3339(expired)
            ),
        });
    }
    let signing = aws_sdk_sts::config::Credentials::new(
        source.access_key_id.expose_secret(),
        source.secret_access_key.expose_secret(),
        source
            .session_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned()),
        None,
        "credsync-role-chain",
    );
    let config = sts.to_builder().credentials_provider(signing).build();
    let client = aws_sdk_sts::Client::from_conf(config);
    let out = client
        .assume_role()
        .role_arn(&hop.role_arn)
        .role_session_name(&hop.role_session_name)
        .set_external_id(hop.external_id.clone())
        .set_duration_seconds(hop.duration_seconds)
        .send()
        .await
        .map_err(|e| classify_sts_error(e, hop, source))?;
    let malformed = |what: &str| ResolveError::Transient {
        service: STS,
        message: format!(
            "malformed answer: AssumeRole of {} (profile {:?}) came back {what}",
            hop.role_arn, hop.profile
        ),
        retry_after: None,
    };
    let c = out
        .credentials()
        .ok_or_else(|| malformed("without credentials"))?;
    let field = |v: &str, name: &str| {
        if v.is_empty() {
            Err(malformed(&format!("without {name}")))
        } else {
            Ok(SecretString::from(v.to_owned()))
        }
    };
    let access_key_id = field(c.access_key_id(), "an access key id")?;
    let secret_access_key = field(c.secret_access_key(), "a secret access key")?;
    let session_token = field(c.session_token(), "a session token")?;
    let expiration = SystemTime::try_from(*c.expiration())
        .ok()
        .filter(|e| *e > now)
        .ok_or_else(|| malformed("with an expiration that is not in the future"))?;
    // botocore takes the account from the answer's assumed-role ARN; the role's own ARN names
    // the same account, for an answer without one.
    let account_id = out
        .assumed_role_user()
        .and_then(|u| crate::chain::arn_account(u.arn()))
        .or_else(|| crate::chain::arn_account(&hop.role_arn))
        .map(str::to_owned);
    Ok(Credentials {
        access_key_id,
        secret_access_key,
        session_token: Some(session_token),
        expiration: Some(expiration),
        account_id,
    })
}

/// Applies `hops` in order, starting from `base`; the last hop's credentials.
pub async fn assume_chain(
    sts: &aws_sdk_sts::Config,
    hops: &[RoleHop],
    base: Credentials,
    now: SystemTime,
) -> Result<Credentials, ResolveError> {
    let mut creds = base;
    for hop in hops {
        creds = assume_role(sts, hop, &creds, now).await?;
    }
    Ok(creds)
}

/// STS error codes that mean the signing credentials or the permissions are wrong.
const AUTH_CODES: [&str; 5] = [
    "ExpiredToken",
    "ExpiredTokenException",
    "AccessDenied",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
];

/// STS error codes that mean "slow down".
const THROTTLE_CODES: [&str; 4] = [
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
];

fn classify_sts_error(
    err: SdkError<AssumeRoleError>,
    hop: &RoleHop,
    source: &Credentials,
) -> ResolveError {
    crate::aws::classify(STS, err, |e, code, _status| {
        // SignatureDoesNotMatch messages can quote the canonical request (with the session
        // token); any other message is scrubbed of the source's secrets all the same.
        let message = if code == "SignatureDoesNotMatch" {
            String::from(
                "the request signature did not match: check the source profile's secret key",
            )
        } else {
            scrub(e.message().unwrap_or(""), source)
        };
        let message = format!(
            "assuming {} (profile {:?}): {message}",
            hop.role_arn, hop.profile
        );
        if e.is_expired_token_exception() || AUTH_CODES.contains(&code) {
            Reading::Refused(message)
        } else if THROTTLE_CODES.contains(&code) {
            Reading::Throttled
        } else {
            Reading::ByStatus(message)
        }
    })
}

/// `message` with the source's key id, secret and token replaced, cut to 300 characters.
fn scrub(message: &str, source: &Credentials) -> String {
    let mut out = message.to_owned();
    let secrets = [
        Some(&source.access_key_id),
        Some(&source.secret_access_key),
        source.session_token.as_ref(),
    ];
    for s in secrets.into_iter().flatten() {
        let s = s.expose_secret();
        if !s.is_empty() {
            out = out.replace(s, "[REDACTED]");
        }
    }
    out.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_hides_the_source_secrets() {
        let source = Credentials {
            access_key_id: "AKIAHIDE".into(),
            secret_access_key: "hidden-secret".into(),
            session_token: Some("hidden-token".into()),
            expiration: None,
            account_id: None,
        };
        let out = scrub(
            "x-amz-security-token:hidden-token Credential=AKIAHIDE secret hidden-secret",
            &source,
        );
        for s in ["AKIAHIDE", "hidden-secret", "hidden-token"] {
            assert!(!out.contains(s), "{out}");
        }
        assert_eq!(scrub(&"y".repeat(500), &source).len(), 300);
    }
}
