//! The fake AWS Sign-In (`aws login` sessions), a part of the fake AWS: `GET /v1/authorize`
//! (the browser step) and `POST /v1/token` (`CreateOAuth2Token`), as the signin service model
//! (botocore's `data/signin/2023-01-01`) and the AWS CLI's `customizations/login` describe them.
//!
//! Strict where the real service is, so that a client that gets it wrong fails here:
//! - every `CreateOAuth2Token` needs a `DPoP` proof (RFC 9449): a compact JWS with
//!   `typ: dpop+jwt`, `alg: ES256` and the P-256 public key as `jwk`, whose payload has
//!   `htm: POST`, `htu` equal to the URL called, an `iat` within five minutes of the fake's
//!   clock and a `jti` never seen before; the signature must verify with that `jwk`. A bad proof
//!   is `400 ValidationException` (`INVALID_REQUEST`).
//! - a refresh token is bound to the key of the proof it was issued with (the model: "refresh
//!   token with cnf.jkt, SHA-256 thumbprint of the presented jwk"): a proof signed with any other
//!   key is refused.
//! - refresh tokens rotate on every use (the model: "refreshToken … Always present in
//!   responses"), and a spent one is refused with `AccessDeniedException` `TOKEN_EXPIRED` (401,
//!   the model's mapping). The model calls the refresh idempotent "within the token validity
//!   window"; this fake is stricter on purpose, so that a race between two refreshers shows.
//!   A refusal does not end the session: the newest token still works.
//! - `end_login_session` ends a session (12 hours passed, a changed password, revoked
//!   permissions): every token of it is refused with the chosen `error` code.
//! - the authorization code (one use) needs the PKCE verifier whose S256 challenge
//!   `/v1/authorize` was given, the same client and redirect URI; it answers an `idToken` whose
//!   `sub` is the signed-in user's ARN (the CLI's `login_session`).
//!
//! Credentials are the fake's own (`ASIAFAKE…`, `fake-secret-<n>`, `fake-session-<n>`); refresh
//! tokens are `fake-login-refresh-<n>`.

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use base64::Engine as _;
use serde_json::{Value, json};

use super::{Request, Response, ServedCreds, State, add_signed_ms, lookup};

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The client ids of the AWS CLI's two sign-in flows.
pub const SAME_DEVICE: &str = "arn:aws:signin:::devtools/same-device";
pub const CROSS_DEVICE: &str = "arn:aws:signin:::devtools/cross-device";

/// One refresh token the fake issued.
#[derive(Clone, Debug)]
struct Refresh {
    /// Which sign-in it descends from.
    session: u64,
    client_id: String,
    /// The public key (`x`, `y`) it is bound to.
    key: (String, String),
    spent: bool,
}

/// One sign-in.
#[derive(Clone, Debug)]
struct Session {
    user: String,
    /// Set when the session was ended: the `error` code every refresh gets.
    ended: Option<String>,
}

/// One authorization code `/v1/authorize` handed out.
#[derive(Clone, Debug)]
struct Code {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    used: bool,
}

/// What one `CreateOAuth2Token` answered (200s only).
#[derive(Clone, Debug)]
pub struct LoginIssued {
    pub grant_type: String,
    pub refresh_used: Option<String>,
    pub refresh_issued: String,
    pub credentials: ServedCreds,
}

/// The fake Sign-In's state (inside the fake AWS's).
#[derive(Debug)]
pub struct Signin {
    refresh: HashMap<String, Refresh>,
    sessions: Vec<Session>,
    codes: HashMap<String, Code>,
    jtis: HashSet<String>,
    pub(super) issued: Vec<LoginIssued>,
    pub(super) expires_in: i64,
    pub(super) user: String,
    /// Refusals of a spent refresh token.
    pub(super) spent_refusals: usize,
    /// Refusals of a bad DPoP proof.
    pub(super) bad_proofs: usize,
}

impl Default for Signin {
    fn default() -> Self {
        Signin {
            refresh: HashMap::new(),
            sessions: Vec::new(),
            codes: HashMap::new(),
            jtis: HashSet::new(),
            issued: Vec::new(),
            expires_in: 900,
            user: "arn:aws:iam::111122223333:user/alice".to_owned(),
            spent_refusals: 0,
            bad_proofs: 0,
        }
    }
}

impl Signin {
    /// A session signed in elsewhere: `refresh` works for `client_id`, bound to the key with
    /// public coordinates `key` (base64url).
    pub(super) fn add(&mut self, refresh: &str, client_id: &str, key: (String, String)) {
        self.sessions.push(Session {
            user: self.user.clone(),
            ended: None,
        });
        let session = self.sessions.len() as u64 - 1;
        self.refresh.insert(
            refresh.to_owned(),
            Refresh {
                session,
                client_id: client_id.to_owned(),
                key,
                spent: false,
            },
        );
    }

    /// Ends the session `refresh` belongs to: every refresh of it gets `error`.
    pub(super) fn end(&mut self, refresh: &str, error: &str) {
        if let Some(r) = self.refresh.get(refresh) {
            self.sessions[r.session as usize].ended = Some(error.to_owned());
        }
    }

    /// Ends every session.
    pub(super) fn end_all(&mut self, error: &str) {
        for s in &mut self.sessions {
            s.ended = Some(error.to_owned());
        }
    }

    /// Whether `refresh` would be accepted now.
    pub(super) fn is_valid(&self, refresh: &str) -> bool {
        self.refresh
            .get(refresh)
            .is_some_and(|r| !r.spent && self.sessions[r.session as usize].ended.is_none())
    }
}

fn access_denied(status: u16, error: &str, message: &str) -> Response {
    // The model's AccessDeniedException: `error` and `message`; 401 for TOKEN_EXPIRED and
    // AUTHCODE_EXPIRED, 403 for USER_CREDENTIALS_CHANGED and INSUFFICIENT_PERMISSIONS.
    Response::json(status, &json!({"error": error, "message": message}))
        .header("x-amzn-errortype", "AccessDeniedException")
}

fn denied(error: &str, message: &str) -> Response {
    let status = if matches!(error, "TOKEN_EXPIRED" | "AUTHCODE_EXPIRED") {
        401
    } else {
        403
    };
    access_denied(status, error, message)
}

fn invalid(message: &str) -> Response {
    Response::json(
        400,
        &json!({"error": "INVALID_REQUEST", "message": message}),
    )
    .header("x-amzn-errortype", "ValidationException")
}

/// Checks the request's DPoP proof; the public key (`x`, `y`) it was signed with.
fn check_proof(st: &mut State, req: &Request, path: &str) -> Result<(String, String), String> {
    use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
    let proof = req.header("dpop").ok_or("no DPoP header")?;
    let parts: Vec<&str> = proof.split('.').collect();
    let [h, p, s] = parts[..] else {
        return Err("the DPoP proof is not a compact JWS".into());
    };
    let decode = |x: &str| {
        B64URL
            .decode(x)
            .map_err(|_| "the DPoP proof is not base64url")
    };
    let header: Value = serde_json::from_slice(&decode(h)?).map_err(|_| "header not JSON")?;
    let payload: Value = serde_json::from_slice(&decode(p)?).map_err(|_| "payload not JSON")?;
    if header["typ"] != "dpop+jwt" || header["alg"] != "ES256" {
        return Err("the DPoP proof must be typ dpop+jwt, alg ES256".into());
    }
    let jwk = &header["jwk"];
    if jwk["kty"] != "EC" || jwk["crv"] != "P-256" {
        return Err("the DPoP jwk must be an EC P-256 key".into());
    }
    let (Some(x), Some(y)) = (jwk["x"].as_str(), jwk["y"].as_str()) else {
        return Err("the DPoP jwk has no x or y".into());
    };
    let mut point = vec![4u8];
    point.extend(decode(x)?);
    point.extend(decode(y)?);
    let sig = decode(s)?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
        .verify(format!("{h}.{p}").as_bytes(), &sig)
        .map_err(|_| "the DPoP signature does not verify with its jwk")?;
    let host = req.header("host").unwrap_or("");
    let htu = format!("http://{host}{path}");
    if payload["htm"] != "POST" || payload["htu"] != htu.as_str() {
        return Err(format!("the DPoP proof's htm/htu are not POST {htu}"));
    }
    let now = st
        .now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let iat = payload["iat"].as_i64().ok_or("the DPoP proof has no iat")?;
    if (iat - now).abs() > 300 {
        return Err("the DPoP proof's iat is not within five minutes of now".into());
    }
    let jti = payload["jti"].as_str().ok_or("the DPoP proof has no jti")?;
    if !st.signin.jtis.insert(jti.to_owned()) {
        return Err("the DPoP proof's jti was used before".into());
    }
    Ok((x.to_owned(), y.to_owned()))
}

/// `POST /v1/token`.
pub(super) fn create_token(st: &mut State, req: &Request, path: &str) -> Response {
    let key = match check_proof(st, req, path) {
        Ok(k) => k,
        Err(why) => {
            st.signin.bad_proofs += 1;
            return invalid(&why);
        }
    };
    let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
        return invalid("the body is not JSON");
    };
    let field = |k: &str| body[k].as_str().unwrap_or("").to_owned();
    let client_id = field("clientId");
    match field("grantType").as_str() {
        "refresh_token" => {
            let used = field("refreshToken");
            let Some(r) = st.signin.refresh.get(&used).cloned() else {
                return denied("TOKEN_EXPIRED", "unknown refresh token");
            };
            if let Some(error) = &st.signin.sessions[r.session as usize].ended {
                return denied(error, "the session has ended");
            }
            if r.spent {
                st.signin.spent_refusals += 1;
                return denied("TOKEN_EXPIRED", "the refresh token was already used");
            }
            if r.client_id != client_id {
                return invalid("clientId does not match the refresh token");
            }
            if r.key != key {
                return invalid("the DPoP key is not the one the refresh token is bound to");
            }
            st.signin.refresh.get_mut(&used).expect("present").spent = true;
            issue(st, "refresh_token", Some(used), r.session, &client_id, key)
        }
        "authorization_code" => {
            let code = field("code");
            let Some(c) = st.signin.codes.get(&code).cloned() else {
                return denied("AUTHCODE_EXPIRED", "unknown authorization code");
            };
            if c.used {
                return denied(
                    "AUTHCODE_EXPIRED",
                    "the authorization code was already used",
                );
            }
            if c.client_id != client_id || c.redirect_uri != field("redirectUri") {
                return invalid("clientId or redirectUri do not match the authorize request");
            }
            if s256(&field("codeVerifier")) != c.challenge {
                return invalid("codeVerifier does not match the code_challenge");
            }
            st.signin.codes.get_mut(&code).expect("present").used = true;
            st.signin.sessions.push(Session {
                user: st.signin.user.clone(),
                ended: None,
            });
            let session = st.signin.sessions.len() as u64 - 1;
            issue(st, "authorization_code", None, session, &client_id, key)
        }
        _ => invalid("grantType must be authorization_code or refresh_token"),
    }
}

/// Mints credentials and a new refresh token bound to `key` for `session`.
fn issue(
    st: &mut State,
    grant_type: &str,
    used: Option<String>,
    session: u64,
    client_id: &str,
    key: (String, String),
) -> Response {
    let expires_in = st.signin.expires_in;
    let now = st.now();
    let user = st.signin.sessions[session as usize].user.clone();
    let creds = st.mint(&user, add_signed_ms(now, expires_in.saturating_mul(1000)));
    st.counter += 1;
    let refresh = format!("fake-login-refresh-{}", st.counter);
    st.signin.refresh.insert(
        refresh.clone(),
        Refresh {
            session,
            client_id: client_id.to_owned(),
            key,
            spent: false,
        },
    );
    st.signin.issued.push(LoginIssued {
        grant_type: grant_type.to_owned(),
        refresh_used: used,
        refresh_issued: refresh.clone(),
        credentials: creds.clone(),
    });
    let mut out = json!({
        "accessToken": {
            "accessKeyId": creds.access_key_id,
            "secretAccessKey": creds.secret_access_key,
            "sessionToken": creds.session_token,
        },
        "tokenType": "aws_sigv4",
        "expiresIn": expires_in,
        "refreshToken": refresh,
    });
    if grant_type == "authorization_code" {
        let claims = json!({"sub": user, "iss": "fake-signin"}).to_string();
        out["idToken"] = Value::from(format!(
            "{}.{}.fake-signature",
            B64URL.encode(br#"{"alg":"none"}"#),
            B64URL.encode(claims.as_bytes())
        ));
    }
    Response::json(200, &out)
}

/// base64url(SHA-256(verifier)) without padding (the CLI sends its challenge unpadded).
fn s256(verifier: &str) -> String {
    use sha2::Digest as _;
    B64URL.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// `GET /v1/authorize`: the user signs in and approves. Same-device: a `302` to the redirect
/// URI with `code` and `state`. Cross-device (the redirect URI is the service's own
/// `/v1/sessions/confirmation`): a page showing the verification code the user pastes,
/// base64 of `state=…&code=…` (the CLI's `parse_verification_code`).
pub(super) fn authorize(st: &mut State, query: &[(String, String)]) -> Response {
    let q = |k: &str| lookup(query, k).unwrap_or("").to_owned();
    let bad = |why: &str| Response::new(400, "text/plain", why.to_owned());
    if q("response_type") != "code" || q("code_challenge_method") != "SHA-256" {
        return bad("response_type=code and code_challenge_method=SHA-256 are required");
    }
    if q("scope") != "openid" || q("state").is_empty() || q("code_challenge").is_empty() {
        return bad("scope=openid, state and code_challenge are required");
    }
    let client_id = q("client_id");
    if client_id != SAME_DEVICE && client_id != CROSS_DEVICE {
        return bad("unknown client_id");
    }
    let redirect_uri = q("redirect_uri");
    let cross = redirect_uri.ends_with("/v1/sessions/confirmation");
    if (client_id == CROSS_DEVICE) != cross {
        return bad("the redirect_uri does not fit the client");
    }
    if !cross && !redirect_uri.starts_with("http://127.0.0.1:") {
        return bad("a same-device redirect_uri must be a loopback address");
    }
    st.counter += 1;
    let code = format!("fake-login-code-{}", st.counter);
    st.signin.codes.insert(
        code.clone(),
        Code {
            client_id,
            redirect_uri: redirect_uri.clone(),
            challenge: q("code_challenge"),
            used: false,
        },
    );
    let state = q("state");
    if cross {
        let shown =
            base64::engine::general_purpose::STANDARD.encode(format!("state={state}&code={code}"));
        return Response::new(200, "text/plain", format!("verification code: {shown}\n"));
    }
    let location = format!("{redirect_uri}?code={code}&state={state}");
    Response::new(302, "text/plain", "").header("Location", &location)
}
