//! SSO access token refresh (`credsync::token`) against the fake SSO-OIDC: what is sent, what is
//! written back to the token cache, how each failure is classified, and botocore's own SSO token
//! loader and provider reading the refreshed file.
//!
//! Each test has its own fake, reached through an `AwsEdge` of its own (the process
//! environment is left alone), and runs its own current-thread runtime.

use crate::support;

use std::fs;
use std::future::Future;
use std::time::{Duration, SystemTime};

use credsync::aws::{AwsEdge, Clients, ResolveError};
use credsync::secret::ExposeSecret;
use credsync::sso_cache::{self, CachedToken};
use credsync::token;
use support::fake_aws::{FakeAws, Fault, Route};
use support::{FAKE_START_URL, TestEnv, botocore_token_json};

const SESSION: &str = "corp";
const LOGIN: &str = "credsync login --sso-session corp";
const OLD_ACCESS: &str = "fake-access-old";
const REFRESH: &str = "fake-refresh-0";
const CLIENT_ID: &str = "fake-client-id";
const CLIENT_SECRET: &str = "fake-client-secret-0";
const MIN: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// One test's world: the fake, a temp HOME, and an AWS edge that reaches nothing but the fake.
struct World {
    fake: FakeAws,
    env: TestEnv,
    edge: AwsEdge,
}

impl World {
    /// A fake that accepts `REFRESH` for `CLIENT_ID`, and a HOME with an AWS config for
    /// profile `dev` in sso-session `corp` (no token cache file yet).
    fn new() -> World {
        let fake = FakeAws::new();
        let env = TestEnv::with_fake(&fake);
        env.write_aws_config(&format!(
            "[profile dev]\nsso_session = {SESSION}\nsso_account_id = 111122223333\n\
             sso_role_name = Dev\nregion = us-east-1\n\n\
             [sso-session {SESSION}]\nsso_start_url = {FAKE_START_URL}\nsso_region = us-east-1\n"
        ));
        let edge = AwsEdge::only(&fake.url());
        fake.add_refresh_token(REFRESH, CLIENT_ID);
        World { fake, env, edge }
    }

    /// Writes `json` as the cache file of sso-session `corp` and returns it parsed.
    fn cache(&self, json: &str) -> CachedToken {
        self.env.write_token_cache(SESSION, json);
        self.read()
    }

    /// A refreshable token (10 minutes left) in the cache, as botocore writes it.
    fn refreshable(&self) -> CachedToken {
        self.cache(&botocore_token_json(
            OLD_ACCESS,
            SystemTime::now() + 10 * MIN,
            Some((REFRESH, CLIENT_ID, CLIENT_SECRET)),
        ))
    }

    fn read(&self) -> CachedToken {
        match sso_cache::read(&self.env.sso_cache_dir(), SESSION).expect("read the token cache") {
            sso_cache::Read::Token(t) => t,
            other => panic!("no token in the cache: {other:?}"),
        }
    }

    fn file_bytes(&self) -> Vec<u8> {
        fs::read(self.env.token_cache_path(SESSION)).expect("read the token cache file")
    }

    /// `refresh_and_store` at the real "now", on a fresh runtime and client: the token in
    /// force, or the refresh's error, or the save's (the token then is only in memory).
    fn refresh_and_store(&self, t: &CachedToken) -> Result<CachedToken, ResolveError> {
        block_on(async {
            let client = Clients::new(self.edge.clone()).oidc("us-east-1").await;
            token::refresh_and_store(
                &client,
                &self.env.sso_cache_dir(),
                SESSION,
                t,
                LOGIN,
                SystemTime::now(),
            )
            .await
            .and_then(|r| r.saved.map(|()| r.token))
        })
    }
}

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build a tokio runtime")
        .block_on(f)
}

/// Neither the `Display` nor the `Debug` of `e` holds a token, refresh token or secret.
fn assert_no_secrets(e: &ResolveError) {
    let shown = format!("{e} {e:?}");
    for s in [
        OLD_ACCESS,
        REFRESH,
        CLIENT_SECRET,
        "fake-access-",
        "fake-refresh-",
    ] {
        assert!(!shown.contains(s), "error shows {s:?}: {shown}");
    }
}

fn assert_close(a: SystemTime, b: SystemTime, what: &str) {
    let diff = a.duration_since(b).unwrap_or_else(|e| e.duration());
    assert!(diff <= Duration::from_secs(5), "{what}: {a:?} vs {b:?}");
}

#[test]
fn refresh_is_written_back_and_read_by_botocores_token_loader() {
    let w = World::new();
    let old = w.refreshable();
    let before = SystemTime::now();
    let new = w.refresh_and_store(&old).expect("refresh");

    let issued = w.fake.issued_tokens();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].refresh_token_used, REFRESH);
    assert_eq!(issued[0].client_id, CLIENT_ID);
    let sent = w.fake.requests_for("CreateToken")[0].json();
    assert_eq!(sent["grantType"], "refresh_token");
    assert_eq!(sent["clientSecret"], CLIENT_SECRET);

    assert_eq!(new.access_token.expose_secret(), issued[0].access_token);
    assert_close(new.expires_at, before + HOUR, "expiresAt = now + expiresIn");
    // Without rotation the old refresh token is kept, with the registration.
    let on_disk = w.read();
    assert_eq!(on_disk.access_token.expose_secret(), issued[0].access_token);
    assert_eq!(on_disk.expires_at, new.expires_at);
    assert_eq!(
        on_disk.refresh_token.as_ref().map(|s| s.expose_secret()),
        Some(REFRESH)
    );
    assert_eq!(on_disk.client_id.as_deref(), Some(CLIENT_ID));
    assert_eq!(
        on_disk.client_secret.as_ref().map(|s| s.expose_secret()),
        Some(CLIENT_SECRET)
    );
    assert_eq!(on_disk.registration_expires_at, old.registration_expires_at);
    assert_eq!(on_disk.start_url.as_deref(), Some(FAKE_START_URL));
    assert_eq!(on_disk.region.as_deref(), Some("us-east-1"));
    assert_eq!(w.file_bytes(), sso_cache::to_json(&new));

    let Some(_) = support::python::python() else {
        return support::python::skip("refresh_is_written_back_and_read_by_botocores_token_loader");
    };
    // botocore's SSOTokenLoader over the cache directory, as SSOTokenProvider builds it.
    let script = r#"
import json, os
from botocore.utils import SSOTokenLoader, JSONFileCache
cache = JSONFileCache(os.path.expanduser(os.path.join("~", ".aws", "sso", "cache")))
t = SSOTokenLoader(cache=cache)("https://fake.awsapps.com/start", session_name="corp")
print(json.dumps({"accessToken": t["accessToken"], "expiresAt": t["expiresAt"],
                  "refreshToken": t.get("refreshToken")}))
"#;
    let home = w.env.home().to_str().expect("UTF-8 HOME");
    let out = support::python::run_python_ok(script, &[("HOME", home)]);
    let got: serde_json::Value = serde_json::from_str(out.trim()).expect("loader printed JSON");
    assert_eq!(got["accessToken"], issued[0].access_token.as_str());
    assert_eq!(got["refreshToken"], REFRESH);
    assert_eq!(
        support::parse_botocore_time(got["expiresAt"].as_str().expect("expiresAt")),
        support::parse_botocore_time(&credsync::timefmt::rfc3339(new.expires_at))
    );
}

#[test]
fn botocore_considers_the_refreshed_token_valid() {
    let w = World::new();
    // Already expired: botocore alone could only refresh it (or fail).
    let old = w.cache(&botocore_token_json(
        OLD_ACCESS,
        SystemTime::now() - MIN,
        Some((REFRESH, CLIENT_ID, CLIENT_SECRET)),
    ));
    w.fake.set_token_expires_in(8 * 3600);
    let new = w.refresh_and_store(&old).expect("refresh");
    assert_eq!(w.fake.count("CreateToken"), 1);

    let Some(_) = support::python::python() else {
        return support::python::skip("botocore_considers_the_refreshed_token_valid");
    };
    // SSOTokenProvider refreshes (CreateToken, at AWS_ENDPOINT_URL: the fake) when less than 15
    // minutes are left; a valid token comes back from the file without any call.
    let script = r#"
import json, datetime
import botocore.session
from botocore.tokens import SSOTokenProvider
s = botocore.session.Session(profile="dev")
tok = SSOTokenProvider(s, profile_name="dev").load_token().get_frozen_token()
left = (tok.expiration - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
print(json.dumps({"token": tok.token, "left": left}))
"#;
    let home = w.env.home().to_str().expect("UTF-8 HOME");
    let url = w.fake.url();
    let out = support::python::run_python_ok(
        script,
        &[("HOME", home), ("AWS_ENDPOINT_URL", url.as_str())],
    );
    let got: serde_json::Value = serde_json::from_str(out.trim()).expect("provider printed JSON");
    assert_eq!(got["token"], new.access_token.expose_secret());
    let left = got["left"].as_f64().expect("seconds left");
    assert!(left > 7.0 * 3600.0 && left <= 8.0 * 3600.0, "{left} s left");
    assert_eq!(
        w.fake.count("CreateToken"),
        1,
        "botocore saw no need to refresh"
    );
}

#[test]
fn a_rotated_refresh_token_is_stored_and_works_next_time() {
    let w = World::new();
    w.fake.set_rotate_refresh_tokens(true);
    let old = w.refreshable();
    let new = w.refresh_and_store(&old).expect("refresh");
    let issued = w.fake.issued_tokens();
    let rotated = issued[0]
        .new_refresh_token
        .clone()
        .expect("the fake rotated");
    assert!(!w.fake.is_refresh_token_valid(REFRESH));
    assert_eq!(
        new.refresh_token.as_ref().map(|s| s.expose_secret()),
        Some(rotated.as_str())
    );
    let on_disk = w.read();
    assert_eq!(
        on_disk.refresh_token.as_ref().map(|s| s.expose_secret()),
        Some(rotated.as_str())
    );
    assert_eq!(on_disk.client_id.as_deref(), Some(CLIENT_ID));

    // The stored token refreshes again with the rotated refresh token.
    let again = w.refresh_and_store(&on_disk).expect("second refresh");
    let issued = w.fake.issued_tokens();
    assert_eq!(issued.len(), 2);
    assert_eq!(issued[1].refresh_token_used, rotated);
    assert_eq!(again.access_token.expose_secret(), issued[1].access_token);
}

#[test]
fn unknown_fields_in_the_cache_file_survive_the_refresh() {
    let w = World::new();
    let base = botocore_token_json(
        OLD_ACCESS,
        SystemTime::now() + 10 * MIN,
        Some((REFRESH, CLIENT_ID, CLIENT_SECRET)),
    );
    let mut v: serde_json::Value = serde_json::from_str(&base).expect("fixture is JSON");
    v["idToken"] = serde_json::json!("opaque-id-token");
    v["scopes"] = serde_json::json!(["sso:account:access", {"x": 1.5}]);
    let old = w.cache(&v.to_string());
    w.refresh_and_store(&old).expect("refresh");
    let written = w.env.read_token_cache(SESSION);
    assert_eq!(written["idToken"], "opaque-id-token");
    assert_eq!(
        written["scopes"],
        serde_json::json!(["sso:account:access", {"x": 1.5}])
    );
    assert_eq!(
        written["accessToken"],
        w.fake.issued_tokens()[0].access_token.as_str()
    );
    assert_eq!(written["registrationExpiresAt"], v["registrationExpiresAt"]);
}

#[test]
fn invalid_grant_is_login_required_and_leaves_the_file_alone() {
    let w = World::new();
    let old = w.refreshable();
    let before = w.file_bytes();
    w.fake.revoke_refresh_token(REFRESH);
    let e = w.refresh_and_store(&old).expect_err("refresh must fail");
    match &e {
        ResolveError::LoginRequired {
            reason,
            login_command,
        } => {
            assert!(reason.contains("InvalidGrantException"), "{reason}");
            assert_eq!(login_command, LOGIN);
        }
        other => panic!("{other:?}"),
    }
    assert!(!e.is_retryable());
    assert_no_secrets(&e);
    assert_eq!(w.fake.count("CreateToken"), 1, "not retried");
    assert_eq!(w.file_bytes(), before);
}

#[test]
fn auth_errors_are_login_required() {
    let w = World::new();
    let old = w.refreshable();
    let before = w.file_bytes();
    for (status, code) in [
        (400, "ExpiredTokenException"),
        (401, "InvalidClientException"),
        (400, "UnauthorizedClientException"),
        (400, "AccessDeniedException"),
    ] {
        w.fake
            .fail_next(Route::CreateToken, 1, Fault::status(status, code));
        let e = w.refresh_and_store(&old).expect_err(code);
        assert!(
            matches!(&e, ResolveError::LoginRequired { reason, .. } if reason.contains(code)),
            "{code}: {e:?}"
        );
        assert_no_secrets(&e);
    }
    assert_eq!(w.fake.count("CreateToken"), 4);
    assert_eq!(w.file_bytes(), before);
}

#[test]
fn server_network_and_malformed_failures_are_transient() {
    let w = World::new();
    let old = w.refreshable();
    let before = w.file_bytes();
    let faults = [
        (Fault::status(500, "InternalServerException"), "HTTP 500"),
        (
            Fault::status(503, "ServiceUnavailableException"),
            "HTTP 503",
        ),
        (Fault::ResetConnection, ""),
        (Fault::MalformedBody, ""),
    ];
    for (fault, expect) in faults {
        w.fake.fail_next(Route::CreateToken, 1, fault.clone());
        let e = w.refresh_and_store(&old).expect_err("must fail");
        assert!(
            matches!(
                &e,
                ResolveError::Transient {
                    service: "SSO-OIDC",
                    ..
                }
            ),
            "{fault:?}: {e:?}"
        );
        assert!(e.to_string().contains(expect), "{fault:?}: {e}");
        assert!(e.is_retryable());
        assert_no_secrets(&e);
        assert_eq!(w.file_bytes(), before, "{fault:?}");
    }
    // Once the fault clears, the same token refreshes.
    w.refresh_and_store(&old).expect("recovers");
    assert_ne!(w.file_bytes(), before);
}

#[test]
fn an_answer_without_a_positive_lifetime_is_transient() {
    let w = World::new();
    let old = w.refreshable();
    let before = w.file_bytes();
    for secs in [0, -60] {
        w.fake.set_token_expires_in(secs);
        let e = w.refresh_and_store(&old).expect_err("must fail");
        assert!(
            matches!(&e, ResolveError::Transient { message, .. } if message.contains("expiresIn")),
            "{secs}: {e:?}"
        );
        assert_no_secrets(&e);
        assert_eq!(w.file_bytes(), before);
    }
}

#[test]
fn throttling_is_throttled_with_retry_after() {
    let w = World::new();
    let old = w.refreshable();
    let before = w.file_bytes();
    let cases = [
        (
            Fault::Status {
                code: 400,
                error_type: "SlowDownException".into(),
                retry_after: Some(7),
            },
            "SlowDownException",
            Some(Duration::from_secs(7)),
        ),
        (
            Fault::throttle(Some(30)),
            "TooManyRequestsException",
            Some(Duration::from_secs(30)),
        ),
        (Fault::throttle(None), "TooManyRequestsException", None),
    ];
    for (fault, code, retry_after) in cases {
        w.fake.fail_next(Route::CreateToken, 1, fault.clone());
        let e = w.refresh_and_store(&old).expect_err("must fail");
        match &e {
            ResolveError::Throttled {
                service,
                code: got,
                retry_after: ra,
            } => {
                assert_eq!(
                    (*service, got.as_str(), *ra),
                    ("SSO-OIDC", code, retry_after)
                );
            }
            other => panic!("{fault:?}: {other:?}"),
        }
        assert_eq!(e.retry_after(), retry_after);
        assert!(e.is_retryable());
        assert_no_secrets(&e);
    }
    assert_eq!(w.file_bytes(), before);
}

#[test]
fn a_token_that_cannot_be_refreshed_makes_no_call() {
    let w = World::new();
    let legacy = w.cache(&botocore_token_json(
        OLD_ACCESS,
        SystemTime::now() + MIN,
        None,
    ));
    let mut expired_registration = w.refreshable();
    expired_registration.registration_expires_at = Some(SystemTime::now() - MIN);
    let mut no_secret = w.refreshable();
    no_secret.client_secret = None;
    for (t, expect) in [
        (&legacy, "no refresh token"),
        (&expired_registration, "registration expired"),
        (&no_secret, "clientSecret"),
    ] {
        let e = w.refresh_and_store(t).expect_err(expect);
        match &e {
            ResolveError::LoginRequired {
                reason,
                login_command,
            } => {
                assert!(reason.contains(expect), "{reason}");
                assert_eq!(login_command, LOGIN);
            }
            other => panic!("{expect}: {other:?}"),
        }
        assert_no_secrets(&e);
    }
    assert_eq!(w.fake.count("CreateToken"), 0);
    assert_eq!(w.fake.total_requests(), 0);
}

#[test]
fn a_newer_token_in_the_file_wins() {
    let w = World::new();
    let old = w.refreshable();
    // Someone else (the AWS CLI) refreshed meanwhile: 8 hours, longer than our 1 hour.
    let theirs = botocore_token_json(
        "fake-access-theirs",
        SystemTime::now() + 8 * HOUR,
        Some((REFRESH, CLIENT_ID, CLIENT_SECRET)),
    );
    w.env.write_token_cache(SESSION, &theirs);
    let got = w.refresh_and_store(&old).expect("refresh");
    assert_eq!(w.fake.count("CreateToken"), 1);
    assert_eq!(got.access_token.expose_secret(), "fake-access-theirs");
    assert_eq!(w.file_bytes(), theirs.as_bytes(), "file untouched");
}

#[test]
fn losing_a_rotation_race_returns_the_winners_token() {
    let w = World::new();
    w.fake.set_rotate_refresh_tokens(true);
    let old = w.refreshable();
    // The AWS CLI refreshes first: our refresh token is rotated away, its token is on disk.
    let cli = w.refresh_and_store(&old).expect("the other refresher");
    let on_disk = w.file_bytes();
    let got = w
        .refresh_and_store(&old)
        .expect("falls back to the file's token");
    assert_eq!(w.fake.count("CreateToken"), 2);
    assert_eq!(
        got.access_token.expose_secret(),
        cli.access_token.expose_secret()
    );
    assert_eq!(w.file_bytes(), on_disk);

    // With nothing newer on disk, the refusal stands.
    let mut stale = old.clone();
    stale.expires_at = cli.expires_at + HOUR;
    let e = w.refresh_and_store(&stale).expect_err("login required");
    assert!(matches!(e, ResolveError::LoginRequired { .. }), "{e:?}");
}

#[test]
fn other_refusals_are_refused_without_the_servers_text() {
    let w = World::new();
    let old = w.refreshable();
    for code in ["InvalidRequestException", "InvalidScopeException"] {
        w.fake
            .fail_next(Route::CreateToken, 1, Fault::status(400, code));
        let e = w.refresh_and_store(&old).expect_err(code);
        match &e {
            ResolveError::Refused {
                service, code: got, ..
            } => assert_eq!((*service, got.as_str()), ("SSO-OIDC", code)),
            other => panic!("{code}: {other:?}"),
        }
        assert!(!e.is_retryable());
        assert!(!e.to_string().contains("injected"), "{e}");
        assert_no_secrets(&e);
    }
}
