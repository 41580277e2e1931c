//! Proves the test harness tells the truth: the fake AWS speaks the wire formats the real SDK
//! clients (aws-sdk-sso, -ssooidc, -sts) and botocore parse, its faults look to the SDK like the
//! real failures they stand for, and the files `TestEnv` writes are read by botocore as AWS
//! tools' own.
use crate::support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sso::error::ProvideErrorMetadata;

use support::fake_aws::{FakeAws, Fault, Route, parse_urlencoded, sigv4_akid};
use support::python::{self, botocore_read_credentials, botocore_read_credentials_json};
use support::{BotocoreToken, Daemon, FAKE_START_URL, Registration, TestEnv};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// An SDK config aimed at the fake: no credentials, fast retries, up to 3 attempts.
async fn sdk_config(fake: &FakeAws) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(credsync::aws::https_client(credsync::aws::Proxy::Direct))
        .region(Region::new("us-east-1"))
        .no_credentials()
        .endpoint_url(fake.url())
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(5))
                .with_max_backoff(Duration::from_millis(50)),
        )
        .load()
        .await
}

fn sso(cfg: &SdkConfig) -> aws_sdk_sso::Client {
    aws_sdk_sso::Client::new(cfg)
}

fn sts_with(cfg: &SdkConfig, akid: &str, secret: &str, token: Option<&str>) -> aws_sdk_sts::Client {
    let creds = aws_sdk_sts::config::Credentials::new(
        akid,
        secret,
        token.map(str::to_owned),
        None,
        "selftest",
    );
    let conf = aws_sdk_sts::config::Builder::from(cfg)
        .credentials_provider(creds)
        .build();
    aws_sdk_sts::Client::from_conf(conf)
}

fn epoch_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

async fn get_role(
    client: &aws_sdk_sso::Client,
    token: &str,
    account: &str,
    role: &str,
) -> Result<aws_sdk_sso::types::RoleCredentials, String> {
    client
        .get_role_credentials()
        .access_token(token)
        .account_id(account)
        .role_name(role)
        .send()
        .await
        .map(|out| out.role_credentials().cloned().expect("roleCredentials"))
        .map_err(|e| e.code().unwrap_or("<no code>").to_owned())
}

#[test]
fn sso_get_role_credentials_is_parsed_by_the_sdk_and_recorded() {
    let fake = FakeAws::new();
    fake.add_token("tok-1");
    fake.set_credential_lifetime(Duration::from_secs(2 * 3600));
    rt().block_on(async {
        let cfg = sdk_config(&fake).await;
        let client = sso(&cfg);
        let before = epoch_secs(SystemTime::now());
        let a = get_role(&client, "tok-1", "111122223333", "Admin")
            .await
            .unwrap();
        let b = get_role(&client, "tok-1", "111122223333", "Admin")
            .await
            .unwrap();
        let c = get_role(&client, "tok-1", "444455556666", "ReadOnly")
            .await
            .unwrap();

        let served = fake.last_credentials("111122223333", "Admin").unwrap();
        assert_eq!(b.access_key_id(), Some(served.access_key_id.as_str()));
        assert_eq!(
            b.secret_access_key(),
            Some(served.secret_access_key.as_str())
        );
        assert_eq!(b.session_token(), Some(served.session_token.as_str()));
        assert_eq!(b.expiration(), served.expiration_ms);
        let exp = b.expiration() / 1000;
        assert!(
            (before + 7200..=before + 7205).contains(&exp),
            "{exp} vs {before}"
        );

        // Distinct per call, with the documented shapes.
        assert_ne!(a.access_key_id(), b.access_key_id());
        assert_ne!(a.secret_access_key(), b.secret_access_key());
        for creds in [&a, &b, &c] {
            let akid = creds.access_key_id().unwrap();
            assert!(akid.starts_with("ASIAFAKE") && akid.len() == 20, "{akid}");
            assert!(
                creds
                    .secret_access_key()
                    .unwrap()
                    .starts_with("fake-secret-")
            );
            assert!(creds.session_token().unwrap().starts_with("fake-session-"));
        }
        // The account/role tag differs between pairs, the counter within one.
        assert_eq!(
            a.access_key_id().unwrap()[..14],
            b.access_key_id().unwrap()[..14]
        );
        assert_ne!(
            a.access_key_id().unwrap()[..14],
            c.access_key_id().unwrap()[..14]
        );
    });

    assert_eq!(fake.count("GetRoleCredentials"), 3);
    let reqs = fake.requests_for("GetRoleCredentials");
    let r = &reqs[2];
    assert_eq!(r.method, "GET");
    assert_eq!(r.path, "/federation/credentials");
    assert_eq!(r.query_param("account_id"), Some("444455556666"));
    assert_eq!(r.query_param("role_name"), Some("ReadOnly"));
    assert_eq!(r.header("x-amz-sso_bearer_token"), Some("tok-1"));
    assert_eq!(r.header("X-Amz-SSO_Bearer_Token"), Some("tok-1"));
    assert!(
        r.header("authorization").is_none(),
        "portal calls are unsigned"
    );
    assert_eq!(r.status, Some(200));
    assert!(reqs[0].at <= reqs[1].at && reqs[1].at <= reqs[2].at);
    // hyper reuses the connection.
    assert_eq!(
        fake.connections(),
        1,
        "keep-alive: one connection for three calls"
    );
}

#[test]
fn sso_bad_revoked_or_expired_tokens_are_unauthorized_for_the_sdk() {
    let fake = FakeAws::new();
    fake.add_token("good");
    fake.add_token("revoked");
    fake.revoke_token("revoked");
    fake.add_token_expiring("old", SystemTime::now() - Duration::from_secs(1));
    rt().block_on(async {
        let client = sso(&sdk_config(&fake).await);
        for tok in ["nope", "revoked", "old"] {
            let err = get_role(&client, tok, "1", "R").await.unwrap_err();
            assert_eq!(err, "UnauthorizedException", "token {tok}");
        }
        assert!(get_role(&client, "good", "1", "R").await.is_ok());
    });
    // Auth errors are not retried by the SDK: one request each.
    assert_eq!(fake.count("GetRoleCredentials"), 4);
    let statuses: Vec<_> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(401), Some(401), Some(401), Some(200)]);
    assert!(fake.last_credentials("1", "R").is_some());
}

#[test]
fn oidc_create_token_refreshes_rotates_and_rejects_unknown_refresh_tokens() {
    let fake = FakeAws::new();
    fake.add_refresh_token("refresh-0", "client-1");
    fake.set_rotate_refresh_tokens(true);
    fake.set_token_expires_in(1234);
    rt().block_on(async {
        let cfg = sdk_config(&fake).await;
        let oidc = aws_sdk_ssooidc::Client::new(&cfg);
        let create = |refresh: &str| {
            oidc.create_token()
                .client_id("client-1")
                .client_secret("secret-1")
                .grant_type("refresh_token")
                .refresh_token(refresh)
                .send()
        };
        let out = create("refresh-0").await.unwrap();
        let access = out.access_token().unwrap().to_owned();
        let rotated = out.refresh_token().unwrap().to_owned();
        assert_eq!(out.token_type(), Some("Bearer"));
        assert_eq!(out.expires_in(), 1234);
        assert!(access.starts_with("fake-access-"), "{access}");
        assert!(rotated.starts_with("fake-refresh-"), "{rotated}");

        // The old refresh token died with the rotation.
        let err = create("refresh-0").await.unwrap_err();
        assert_eq!(err.code(), Some("InvalidGrantException"));
        let err = create("never-issued").await.unwrap_err();
        assert_eq!(err.code(), Some("InvalidGrantException"));
        let svc = err.into_service_error();
        assert!(svc.is_invalid_grant_exception(), "{svc:?}");

        // The new access token works at the portal, the rotated refresh token at OIDC.
        assert!(get_role(&sso(&cfg), &access, "1", "R").await.is_ok());
        let again = create(&rotated).await.unwrap();
        assert_ne!(again.access_token(), Some(access.as_str()));
    });

    let reqs = fake.requests_for("CreateToken");
    assert_eq!(reqs.len(), 4);
    let body = reqs[0].json();
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].path, "/token");
    assert_eq!(body["clientId"], "client-1");
    assert_eq!(body["clientSecret"], "secret-1");
    assert_eq!(body["grantType"], "refresh_token");
    assert_eq!(body["refreshToken"], "refresh-0");
    assert!(
        reqs[0].header("authorization").is_none(),
        "CreateToken is unsigned"
    );
    let issued = fake.issued_tokens();
    assert_eq!(issued.len(), 2);
    assert_eq!(issued[0].refresh_token_used, "refresh-0");
    assert_eq!(
        issued[1].refresh_token_used,
        issued[0].new_refresh_token.clone().unwrap()
    );
    assert!(!fake.is_refresh_token_valid("refresh-0"));
}

#[test]
fn oidc_without_rotation_returns_no_refresh_token() {
    let fake = FakeAws::new();
    fake.add_refresh_token("r", "c");
    rt().block_on(async {
        let oidc = aws_sdk_ssooidc::Client::new(&sdk_config(&fake).await);
        for _ in 0..2 {
            let out = oidc
                .create_token()
                .client_id("c")
                .client_secret("s")
                .grant_type("refresh_token")
                .refresh_token("r")
                .send()
                .await
                .unwrap();
            assert_eq!(out.refresh_token(), None);
            assert_eq!(out.expires_in(), 3600);
        }
        // A refresh token presented by the wrong client is refused.
        let err = oidc
            .create_token()
            .client_id("other")
            .client_secret("s")
            .grant_type("refresh_token")
            .refresh_token("r")
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("InvalidGrantException"));
    });
    assert!(fake.is_refresh_token_valid("r"));
}

#[test]
fn sts_assume_role_chain_records_which_credentials_signed_each_hop() {
    let fake = FakeAws::new();
    rt().block_on(async {
        let cfg = sdk_config(&fake).await;
        let first = sts_with(&cfg, "AKIASTATICTEST", "static-secret", None)
            .assume_role()
            .role_arn("arn:aws:iam::111122223333:role/path/Hop1")
            .role_session_name("credsync-test")
            .duration_seconds(900)
            .external_id("ext-1")
            .send()
            .await
            .unwrap();
        let c1 = first.credentials().unwrap();
        assert!(c1.access_key_id().starts_with("ASIAFAKE"));
        assert!(c1.secret_access_key().starts_with("fake-secret-"));
        assert!(c1.session_token().starts_with("fake-session-"));
        let user = first.assumed_role_user().unwrap();
        assert_eq!(
            user.arn(),
            "arn:aws:sts::111122223333:assumed-role/Hop1/credsync-test"
        );
        let now = epoch_secs(SystemTime::now());
        let exp = c1.expiration().secs();
        assert!((now + 895..=now + 901).contains(&exp), "{exp} vs {now}");

        // Second hop signed with the first hop's credentials; default duration.
        let second = sts_with(
            &cfg,
            c1.access_key_id(),
            c1.secret_access_key(),
            Some(c1.session_token()),
        )
        .assume_role()
        .role_arn("arn:aws:iam::444455556666:role/Hop2")
        .role_session_name("hop2")
        .send()
        .await
        .unwrap();
        let c2 = second.credentials().unwrap();
        assert!((now + 3595..=now + 3601).contains(&c2.expiration().secs()));

        let calls = fake.assume_role_calls();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].signed_by.as_deref(), Some("AKIASTATICTEST"));
        assert_eq!(calls[0].role_session_name, "credsync-test");
        assert_eq!(calls[0].duration_seconds, Some(900));
        assert_eq!(calls[0].external_id.as_deref(), Some("ext-1"));
        assert_eq!(calls[1].signed_by.as_deref(), Some(c1.access_key_id()));
        assert_eq!(calls[1].duration_seconds, None);
        assert_eq!(calls[1].external_id, None);
        let last = fake
            .last_assumed("arn:aws:iam::444455556666:role/Hop2")
            .unwrap();
        assert_eq!(last.access_key_id, c2.access_key_id());
        assert_eq!(last.expiration_ms / 1000, c2.expiration().secs());
    });

    let reqs = fake.requests_for("AssumeRole");
    assert_eq!(reqs.len(), 2);
    let r = &reqs[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/"));
    assert_eq!(r.form_param("Action").as_deref(), Some("AssumeRole"));
    assert_eq!(r.form_param("Version").as_deref(), Some("2011-06-15"));
    assert_eq!(
        r.form_param("RoleArn").as_deref(),
        Some("arn:aws:iam::111122223333:role/path/Hop1")
    );
    assert_eq!(
        r.form_param("RoleSessionName").as_deref(),
        Some("credsync-test")
    );
    assert_eq!(r.form_param("DurationSeconds").as_deref(), Some("900"));
    assert_eq!(r.form_param("ExternalId").as_deref(), Some("ext-1"));
    assert_eq!(r.signing_akid().as_deref(), Some("AKIASTATICTEST"));
    assert!(reqs[1].header("x-amz-security-token").is_some());
}

#[test]
fn sts_errors_are_xml_the_sdk_understands() {
    let fake = FakeAws::new();
    fake.fail_next(Route::AssumeRole, 1, Fault::status(403, "AccessDenied"));
    rt().block_on(async {
        let cfg = sdk_config(&fake).await;
        let sts = sts_with(&cfg, "AKIASTATICTEST", "s", None);
        let err = sts
            .assume_role()
            .role_arn("arn:aws:iam::1:role/R")
            .role_session_name("s")
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("AccessDenied"));
        assert_eq!(err.message(), Some("injected fault"));
        // An action the fake does not implement: GetCallerIdentity.
        let err = sts.get_caller_identity().send().await.unwrap_err();
        assert_eq!(err.code(), Some("InvalidAction"));
    });
    assert_eq!(fake.count("AssumeRole"), 1);
    assert_eq!(fake.count("Unknown"), 1);

    // Unsigned AssumeRole is refused.
    let mut raw = Raw::connect(&fake);
    let body = "Action=AssumeRole&Version=2011-06-15&RoleArn=a&RoleSessionName=b";
    let resp = raw.send(&format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    assert_eq!(resp.status, 403);
    assert!(
        resp.body
            .contains("<Code>MissingAuthenticationToken</Code>"),
        "{}",
        resp.body
    );
}

#[test]
fn throttling_with_retry_after_is_retried_by_the_sdk() {
    let fake = FakeAws::new();
    fake.add_token("t");
    fake.fail_next(Route::GetRoleCredentials, 1, Fault::throttle(Some(1)));
    fake.fail_next(
        Route::Any,
        1,
        Fault::status(503, "ServiceUnavailableException"),
    );
    rt().block_on(async {
        let client = sso(&sdk_config(&fake).await);
        let creds = get_role(&client, "t", "1", "R").await.unwrap();
        assert_eq!(
            creds.access_key_id(),
            Some(
                fake.last_credentials("1", "R")
                    .unwrap()
                    .access_key_id
                    .as_str()
            )
        );
    });
    assert_eq!(fake.count("GetRoleCredentials"), 3);
    let statuses: Vec<_> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(429), Some(503), Some(200)]);

    // The raw answer carries the error type and Retry-After.
    fake.fail_next(Route::GetRoleCredentials, 1, Fault::throttle(Some(7)));
    let mut raw = Raw::connect(&fake);
    let resp = raw.send(
        "GET /federation/credentials?role_name=R&account_id=1 HTTP/1.1\r\nHost: x\r\n\
         x-amz-sso_bearer_token: t\r\n\r\n",
    );
    assert_eq!(resp.status, 429);
    assert_eq!(resp.header("retry-after"), Some("7"));
    assert_eq!(
        resp.header("x-amzn-errortype"),
        Some("TooManyRequestsException")
    );

    // Persistent faults stay until cleared; the SDK gives up after its attempts.
    fake.set_fault(
        Route::Any,
        Some(Fault::status(500, "InternalServerException")),
    );
    rt().block_on(async {
        let client = sso(&sdk_config(&fake).await);
        let before = fake.count("GetRoleCredentials");
        let err = get_role(&client, "t", "1", "R").await.unwrap_err();
        assert_eq!(err, "InternalServerException");
        assert_eq!(fake.count("GetRoleCredentials") - before, 3);
        fake.set_fault(Route::Any, None);
        assert!(get_role(&client, "t", "1", "R").await.is_ok());
    });
}

#[test]
fn reset_malformed_and_huge_answers_fail_the_sdk_call() {
    let fake = FakeAws::new();
    fake.add_token("t");
    rt().block_on(async {
        let cfg = sdk_config(&fake).await;
        let client = sso(&cfg);
        for fault in [
            Fault::ResetConnection,
            Fault::MalformedBody,
            Fault::HugeBody(256 * 1024),
        ] {
            fake.set_fault(Route::GetRoleCredentials, Some(fault.clone()));
            let before = fake.count("GetRoleCredentials");
            let r = client
                .get_role_credentials()
                .access_token("t")
                .account_id("1")
                .role_name("R")
                .send()
                .await;
            assert!(r.is_err(), "{fault:?} should fail, got {r:?}");
            assert!(fake.count("GetRoleCredentials") > before, "{fault:?}");
        }
        fake.set_fault(Route::GetRoleCredentials, None);
        assert!(get_role(&client, "t", "1", "R").await.is_ok());

        // Same for the other two services.
        fake.add_refresh_token("r", "c");
        fake.fail_next(Route::CreateToken, 3, Fault::MalformedBody);
        let oidc = aws_sdk_ssooidc::Client::new(&cfg);
        let r = oidc
            .create_token()
            .client_id("c")
            .client_secret("s")
            .grant_type("refresh_token")
            .refresh_token("r")
            .send()
            .await;
        assert!(r.is_err(), "{r:?}");
        // aws-sdk-sts does NOT reject a truncated XML answer: it returns "credentials" with
        // the fields cut short, an empty secret and an expiration of 0 (the Unix epoch).
        // credsync must validate what STS returns; this pins the SDK behaviour it guards
        // against.
        fake.fail_next(Route::AssumeRole, 1, Fault::MalformedBody);
        let out = sts_with(&cfg, "AKIASTATICTEST", "s", None)
            .assume_role()
            .role_arn("arn:aws:iam::1:role/R")
            .role_session_name("s")
            .send()
            .await
            .expect("aws-sdk-sts now rejects truncated XML; update this test");
        let c = out.credentials().expect("truncated credentials");
        assert_eq!(c.access_key_id(), "ASIA");
        assert_eq!(c.secret_access_key(), "");
        assert_eq!(c.expiration().secs(), 0);
        assert_eq!(fake.count("AssumeRole"), 1);
    });
    // A reset leaves no status behind.
    assert!(fake.requests().iter().any(|r| r.status.is_none()));
}

#[test]
fn delay_answers_late_and_hang_never_answers() {
    let fake = FakeAws::new();
    fake.add_token("t");
    fake.fail_next(
        Route::GetRoleCredentials,
        1,
        Fault::Delay(Duration::from_millis(300)),
    );
    rt().block_on(async {
        let client = sso(&sdk_config(&fake).await);
        let start = Instant::now();
        assert!(get_role(&client, "t", "1", "R").await.is_ok());
        assert!(start.elapsed() >= Duration::from_millis(300));

        fake.set_fault(Route::Any, Some(Fault::Hang(Duration::from_secs(600))));
        let cfg = aws_config::defaults(BehaviorVersion::latest())
            .http_client(credsync::aws::https_client(credsync::aws::Proxy::Direct))
            .region(Region::new("us-east-1"))
            .no_credentials()
            .endpoint_url(fake.url())
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_millis(300))
                    .build(),
            )
            .load()
            .await;
        let err = sso(&cfg)
            .get_role_credentials()
            .access_token("t")
            .account_id("1")
            .role_name("R")
            .send()
            .await
            .unwrap_err();
        assert!(
            matches!(err, aws_sdk_sso::error::SdkError::TimeoutError(_)),
            "{err:?}"
        );
    });
    assert_eq!(fake.count("GetRoleCredentials"), 2);
    // Dropping the fake wakes the hanging connection thread instead of waiting 10 minutes.
    let start = Instant::now();
    drop(fake);
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn latency_and_max_in_flight_measure_concurrency() {
    let fake = FakeAws::new();
    fake.add_token("t");
    fake.set_latency(Duration::from_millis(400));
    rt().block_on(async {
        let client = sso(&sdk_config(&fake).await);
        let (a, b, c) = tokio::join!(
            get_role(&client, "t", "1", "A"),
            get_role(&client, "t", "1", "B"),
            get_role(&client, "t", "1", "C"),
        );
        assert!(a.is_ok() && b.is_ok() && c.is_ok());
        assert_eq!(fake.max_in_flight(), 3);
        assert_eq!(fake.in_flight(), 0);
        fake.reset_records();
        assert_eq!(fake.max_in_flight(), 0);
        get_role(&client, "t", "1", "A").await.unwrap();
        get_role(&client, "t", "1", "B").await.unwrap();
        assert_eq!(fake.max_in_flight(), 1);
        assert_eq!(fake.count("GetRoleCredentials"), 2);
    });
}

#[test]
fn clock_offset_and_negative_lifetimes_shape_expirations() {
    let fake = FakeAws::new();
    fake.add_token("t");
    fake.set_credential_lifetime_secs(-60);
    rt().block_on(async {
        let client = sso(&sdk_config(&fake).await);
        let now = epoch_secs(SystemTime::now());
        let c = get_role(&client, "t", "1", "R").await.unwrap();
        assert!((now - 61..=now - 55).contains(&(c.expiration() / 1000)));

        fake.set_credential_lifetime(Duration::from_secs(3600));
        fake.set_clock_offset(86_400);
        let c = get_role(&client, "t", "1", "R").await.unwrap();
        let exp = c.expiration() / 1000;
        assert!((now + 90_000..=now + 90_005).contains(&exp), "{exp}");

        // The offset also expires tokens on the fake's clock.
        fake.add_token_expiring("soon", SystemTime::now() + Duration::from_secs(3600));
        assert_eq!(
            get_role(&client, "soon", "1", "R").await.unwrap_err(),
            "UnauthorizedException"
        );
        fake.set_clock_offset(0);
        assert!(fake.is_token_valid("soon"));
    });
}

#[test]
fn raw_http_keep_alive_chunked_bodies_and_unknown_routes() {
    let fake = FakeAws::new();
    fake.add_refresh_token("r", "c");
    let mut raw = Raw::connect(&fake);
    let json =
        r#"{"clientId":"c","clientSecret":"s","grantType":"refresh_token","refreshToken":"r"}"#;
    let (a, b) = json.split_at(20);
    let resp = raw.send(&format!(
        "POST /token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\
         Content-Type: application/json\r\n\r\n{:x}\r\n{a}\r\n{:x};ext=1\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    ));
    assert_eq!(resp.status, 200, "{}", resp.body);
    let token: serde_json::Value = serde_json::from_str(&resp.body).unwrap();
    let access = token["accessToken"].as_str().unwrap().to_owned();

    // Same connection, second request: the issued token is valid at the portal.
    let resp = raw.send(&format!(
        "GET /federation/credentials?role_name=My%20Role&account_id=1 HTTP/1.1\r\n\
         Host: x\r\nx-amz-sso_bearer_token: {access}\r\n\r\n"
    ));
    assert_eq!(resp.status, 200, "{}", resp.body);
    let v: serde_json::Value = serde_json::from_str(&resp.body).unwrap();
    assert!(v["roleCredentials"]["expiration"].is_i64());
    assert!(fake.last_credentials("1", "My Role").is_some());

    let resp = raw.send("GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(resp.status, 404);
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 3);
    assert!(reqs.iter().all(|r| r.connection == reqs[0].connection));
    assert_eq!(reqs[0].json()["refreshToken"], "r");
    assert_eq!(reqs[2].route, "Unknown");
    assert_eq!(fake.count("CreateToken"), 1);
    assert_eq!(fake.count("Unknown"), 1);
}

#[test]
fn wire_helpers_parse_what_clients_send() {
    assert_eq!(
        parse_urlencoded("Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2FR&X=a+b&E="),
        [
            ("Action".to_owned(), "AssumeRole".to_owned()),
            ("RoleArn".to_owned(), "arn:aws:iam::1:role/R".to_owned()),
            ("X".to_owned(), "a b".to_owned()),
            ("E".to_owned(), String::new()),
        ]
    );
    assert_eq!(
        sigv4_akid(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/sts/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature=abc"
        )
        .as_deref(),
        Some("AKIDEXAMPLE")
    );
    assert_eq!(sigv4_akid("Bearer x"), None);
}

#[test]
fn test_env_commands_get_a_clean_environment() {
    let fake = FakeAws::new();
    let mut env = TestEnv::with_fake(&fake);
    env.env("AWS_REGION", "eu-west-1")
        .env("CREDSYNC_LOG", "trace");
    let cmd = env.cmd(["status", "--json"]);
    assert_eq!(cmd.get_program(), support::credsync_bin().as_os_str());
    assert!(support::credsync_bin().is_file());
    let args: Vec<_> = cmd.get_args().collect();
    assert_eq!(args, ["status", "--json"]);
    let envs: std::collections::HashMap<_, _> = cmd
        .get_envs()
        .map(|(k, v)| {
            (
                k.to_str().unwrap().to_owned(),
                v.map(|v| v.to_str().unwrap().to_owned()),
            )
        })
        .collect();
    let get = |k: &str| envs.get(k).cloned().flatten();
    assert_eq!(get("HOME").as_deref(), env.home().to_str());
    assert_eq!(get("AWS_ENDPOINT_URL"), Some(fake.url()));
    assert_eq!(get("NO_PROXY").as_deref(), Some("127.0.0.1,localhost"));
    assert_eq!(get("AWS_EC2_METADATA_DISABLED").as_deref(), Some("true"));
    assert_eq!(get("CREDSYNC_LOG").as_deref(), Some("trace"));
    assert_eq!(get("AWS_REGION").as_deref(), Some("eu-west-1"));
    assert_eq!(get("AWS_DEFAULT_REGION"), None);
    assert_eq!(get("XDG_RUNTIME_DIR").as_deref(), env.run_dir().to_str());
    assert!(get("PATH").is_some());

    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(env.run_dir())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    assert!(env.sso_cache_dir().is_dir());

    let p = env.write_token_cache("my-sso", "{}");
    assert_eq!(
        p.file_name().unwrap(),
        // sha1("my-sso")
        format!("{}.json", support::sha1_hex("my-sso")).as_str()
    );
    assert_eq!(
        support::sha1_hex("abc"),
        "a9993e364706816aba3e25717850c26c9cd0d89d"
    );
    let toml = env.write_config_toml("[refresh]\n");
    assert_eq!(toml, env.home().join(".config/credsync/config.toml"));
}

#[test]
fn daemon_guard_polls_signals_and_captures_output() {
    let env = TestEnv::new();
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", "echo started; echo to-stderr >&2; trap 'echo bye; exit 0' TERM; while :; do sleep 0.05; done"]);
    let mut d = Daemon::spawn(cmd, env.root());
    d.expect_within(
        "startup",
        || d.logs().contains("started"),
        Duration::from_secs(10),
    );
    assert!(d.wait_for_log("to-stderr", Duration::from_secs(10)));
    assert!(d.is_running());
    let status = d.sigterm();
    assert!(status.success(), "{status:?}");
    assert!(d.stdout().contains("bye"));
    assert!(!d.is_running());
}

#[test]
fn botocore_token_json_is_byte_for_byte_what_botocore_writes() {
    let Some(_) = python::python() else {
        return python::skip("botocore_token_json_is_byte_for_byte_what_botocore_writes");
    };
    let fake = FakeAws::new();
    fake.add_refresh_token("refresh-0", "client-1");
    fake.set_rotate_refresh_tokens(true);
    let env = TestEnv::with_fake(&fake);
    env.write_aws_config(&format!(
        "[profile dev]\nsso_session = corp\nsso_account_id = 111122223333\n\
         sso_role_name = Admin\nregion = us-east-1\n\n\
         [sso-session corp]\nsso_start_url = {FAKE_START_URL}\nsso_region = us-east-1\n\
         sso_registration_scopes = sso:account:access\n"
    ));
    // Five minutes left: inside botocore's 15-minute window, so it refreshes.
    let expires = SystemTime::now() + Duration::from_secs(300);
    let original = support::botocore_token_json(
        "access-0",
        expires,
        Some(("refresh-0", "client-1", "secret-1")),
    );
    let path = env.write_token_cache("corp", &original);

    // botocore's own loader accepts what we wrote.
    let cache_dir = env.sso_cache_dir();
    let out = python::run_python_ok(
        r#"
import json, os
from botocore.utils import JSONFileCache, SSOTokenLoader, parse_timestamp
t = SSOTokenLoader(JSONFileCache(os.environ["CACHE_DIR"]))("unused-start-url", session_name="corp")
print(json.dumps({"accessToken": t["accessToken"],
                  "expiresAt": parse_timestamp(t["expiresAt"]).timestamp(),
                  "refreshToken": t["refreshToken"]}))
"#,
        &[("CACHE_DIR", cache_dir.to_str().unwrap())],
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["accessToken"], "access-0");
    assert_eq!(v["refreshToken"], "refresh-0");
    assert_eq!(v["expiresAt"].as_f64().unwrap() as i64, epoch_secs(expires));

    // botocore resolves the SSO profile through the fake: CreateToken, then GetRoleCredentials.
    let home = env.home().to_owned();
    let url = fake.url();
    let got = botocore_read_credentials_json(&home, "dev", &[("AWS_ENDPOINT_URL", &url)]);
    let served = fake.last_credentials("111122223333", "Admin").unwrap();
    assert_eq!(got["akid"], served.access_key_id.as_str());
    assert_eq!(got["secret"], served.secret_access_key.as_str());
    assert_eq!(got["token"], served.session_token.as_str());
    assert_eq!(got["method"], "sso");
    let issued = fake.issued_tokens();
    assert_eq!(issued.len(), 1, "botocore refreshed the token once");
    let bearer = fake.requests_for("GetRoleCredentials")[0]
        .header("x-amz-sso_bearer_token")
        .map(str::to_owned);
    assert_eq!(bearer.as_deref(), Some(issued[0].access_token.as_str()));

    // botocore wrote the refreshed token back; our builder reproduces its bytes exactly.
    let written = std::fs::read_to_string(&path).unwrap();
    let w: serde_json::Value = serde_json::from_str(&written).unwrap();
    let expires_at = support::parse_botocore_time(w["expiresAt"].as_str().unwrap());
    let registration_expires_at =
        support::parse_botocore_time(w["registrationExpiresAt"].as_str().unwrap());
    let rebuilt = BotocoreToken {
        start_url: FAKE_START_URL.to_owned(),
        region: "us-east-1".to_owned(),
        access_token: issued[0].access_token.clone(),
        expires_at,
        registration: Some(Registration {
            refresh_token: issued[0].new_refresh_token.clone().unwrap(),
            client_id: "client-1".to_owned(),
            client_secret: "secret-1".to_owned(),
            registration_expires_at,
        }),
    };
    assert_eq!(written, rebuilt.to_json());
    let orig: serde_json::Value = serde_json::from_str(&original).unwrap();
    assert_eq!(w["registrationExpiresAt"], orig["registrationExpiresAt"]);
    let now = epoch_secs(SystemTime::now());
    assert!((now + 3590..=now + 3601).contains(&epoch_secs(expires_at)));
}

#[test]
fn botocore_reads_a_credentials_file_written_by_test_env() {
    let Some(_) = python::python() else {
        return python::skip("botocore_reads_a_credentials_file_written_by_test_env");
    };
    let env = TestEnv::new();
    env.write_credentials(
        "# a comment\n[default]\naws_access_key_id = AKIADEFAULT\n\
         aws_secret_access_key = default-secret\n\n\
         [work]\naws_access_key_id = ASIAWORK\naws_secret_access_key = fake-secret-9\n\
         aws_session_token = fake-session-9\n",
    );
    let (akid, secret, token) = botocore_read_credentials(env.home(), "work", &[]);
    assert_eq!(
        (akid.as_str(), secret.as_str(), token.as_str()),
        ("ASIAWORK", "fake-secret-9", "fake-session-9")
    );
    let (akid, _, token) = botocore_read_credentials(env.home(), "default", &[]);
    assert_eq!((akid.as_str(), token.as_str()), ("AKIADEFAULT", ""));
}

/// A raw HTTP/1.1 client for checks the SDK hides (headers, keep-alive, chunked bodies).
struct Raw {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Raw {
    fn connect(fake: &FakeAws) -> Raw {
        let s = TcpStream::connect(fake.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Raw {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
        }
    }

    fn send(&mut self, request: &str) -> RawResponse {
        self.writer.write_all(request.as_bytes()).unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':').unwrap();
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
        let resp = RawResponse {
            status,
            headers,
            body: String::new(),
        };
        let len: usize = resp.header("content-length").unwrap().parse().unwrap();
        let mut body = vec![0; len];
        self.reader.read_exact(&mut body).unwrap();
        RawResponse {
            body: String::from_utf8(body).unwrap(),
            ..resp
        }
    }
}

#[test]
fn moto_server_answers_sts_assume_role_for_the_sdk() {
    let Some(moto) = python::MotoServer::start() else {
        return python::skip("moto_server_answers_sts_assume_role_for_the_sdk");
    };
    rt().block_on(async {
        let cfg = aws_config::defaults(BehaviorVersion::latest())
            .http_client(credsync::aws::https_client(credsync::aws::Proxy::Direct))
            .region(Region::new("us-east-1"))
            .no_credentials()
            .endpoint_url(moto.url())
            .load()
            .await;
        let out = sts_with(&cfg, "AKIASTATICTEST", "static-secret", None)
            .assume_role()
            .role_arn("arn:aws:iam::123456789012:role/Moto")
            .role_session_name("credsync-test")
            .duration_seconds(900)
            .send()
            .await
            .unwrap();
        let c = out.credentials().unwrap();
        assert!(
            c.access_key_id().starts_with("ASIA"),
            "{}",
            c.access_key_id()
        );
        assert!(!c.secret_access_key().is_empty());
        let now = epoch_secs(SystemTime::now());
        assert!((now + 890..=now + 910).contains(&c.expiration().secs()));
    });
}
