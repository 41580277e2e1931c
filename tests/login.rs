//! `credsync login` and `logout` against the fake AWS: the authorization-code flow with PKCE
//! through a stand-in browser, the device flow's polling, the AWS CLI's files, the session
//! lock across processes, and no secret in what the commands print.

use crate::support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use support::browser::Browser;
use support::fake_aws::DeviceStep;
use support::{Daemon, FakeAws, TestEnv, sha1_hex};

pub(crate) const START_URL: &str = "https://corp.awsapps.com/start";

const AWS_CONFIG: &str = "\
[sso-session corp]
sso_start_url = https://corp.awsapps.com/start
sso_region = us-east-1

[profile dev]
sso_session = corp
sso_account_id = 111111111111
sso_role_name = Dev
region = us-east-1
";

/// The registration file name for sso-session `corp` with no scopes configured (botocore's
/// `_registration_cache_key`, computed with Python's json.dumps and hashlib).
fn registration_name() -> String {
    let key = format!(
        r#"{{"region": "us-east-1", "scopes": null, "session_name": "corp", "startUrl": "{START_URL}", "tool": "botocore"}}"#
    );
    format!("{}.json", sha1_hex(&key))
}

/// A HOME signed in to nothing, its AWS config, a stand-in browser, and a display (so the
/// browser flow is the default).
pub(crate) fn setup(fake: &FakeAws, delay_secs: u32) -> (TestEnv, Browser) {
    let mut env = TestEnv::with_fake(fake);
    env.write_aws_config(AWS_CONFIG);
    let browser = Browser::new(env.root(), delay_secs);
    env.env("BROWSER", &browser.script)
        .env("DISPLAY", ":0")
        .env("AWS_PROFILE", "dev");
    (env, browser)
}

/// Runs `credsync ARGS` to completion (at most 60 s) and returns (exit code, stdout+stderr).
pub(crate) fn login(env: &TestEnv, args: &[&str]) -> (Option<i32>, String) {
    let mut p = Daemon::spawn(env.cmd(args), env.root());
    let status = p.wait_exit(Duration::from_secs(60));
    (status.code(), p.logs())
}

/// Every secret the fake handed out or was sent (tokens, refresh tokens, client secrets, codes,
/// device codes, code verifiers): none may appear in `text`.
pub(crate) fn assert_no_secrets(fake: &FakeAws, text: &str) {
    let mut secrets: Vec<String> = Vec::new();
    for t in fake.issued_tokens() {
        secrets.push(t.access_token);
        secrets.extend(t.new_refresh_token);
    }
    for c in fake.clients() {
        secrets.push(c.client_secret);
    }
    secrets.extend(fake.issued_codes());
    for r in fake.requests_for("CreateToken") {
        let body = r.json();
        for k in ["codeVerifier", "deviceCode", "code"] {
            if let Some(v) = body[k].as_str() {
                secrets.push(v.to_owned());
            }
        }
    }
    assert!(!secrets.is_empty());
    for s in secrets {
        assert!(!text.contains(&s), "a secret ({s}) was printed:\n{text}");
    }
    for prefix in [
        "fake-access-",
        "fake-refresh-",
        "fake-client-secret-",
        "fake-code-",
        "fake-device-",
    ] {
        assert!(!text.contains(prefix), "{prefix} printed:\n{text}");
    }
}

fn mode(path: &std::path::Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn pkce_login_writes_the_clis_files_and_a_second_login_reuses_the_registration() {
    let fake = FakeAws::new();
    let (env, browser) = setup(&fake, 0);
    let (code, out) = login(&env, &["login"]);
    assert_eq!(code, Some(0), "{out}\n--- browser\n{}", browser.log());
    assert!(
        out.contains("sso-session \"corp\": signed in until"),
        "{out}"
    );
    assert!(out.contains("(authorization code)"), "{out}");

    // RegisterClient as the AWS CLI sends it for the authorization-code grant.
    let clients = fake.clients();
    assert_eq!(clients.len(), 1, "{clients:?}");
    let client = &clients[0];
    assert_eq!(client.grant_types, ["authorization_code", "refresh_token"]);
    assert_eq!(client.redirect_uris, ["http://127.0.0.1/oauth/callback"]);
    assert_eq!(client.issuer_url.as_deref(), Some(START_URL));
    assert_eq!(client.scopes, ["sso:account:access"]);

    // The authorize page: printed, opened, with the CLI's parameters.
    let authorize = fake.requests_for("Authorize");
    assert_eq!(authorize.len(), 1);
    let a = &authorize[0];
    assert_eq!(a.query_param("client_id"), Some(client.client_id.as_str()));
    assert_eq!(a.query_param("code_challenge_method"), Some("S256"));
    assert_eq!(a.query_param("scopes"), Some("sso:account:access"));
    let redirect = a.query_param("redirect_uri").unwrap();
    assert!(
        redirect.starts_with("http://127.0.0.1:") && redirect.ends_with("/oauth/callback"),
        "{redirect}"
    );
    assert!(
        out.contains("/authorize?response_type=code&client_id="),
        "{out}"
    );
    assert!(
        support::wait_for(
            || browser.log().contains("followed 200 http://127.0.0.1:"),
            Duration::from_secs(10)
        ),
        "{}",
        browser.log()
    );

    // CreateToken(authorization_code) with the redirect URI and a 64-character verifier.
    let create = fake.requests_for("CreateToken");
    assert_eq!(create.len(), 1);
    let body = create[0].json();
    assert_eq!(body["grantType"], "authorization_code");
    assert_eq!(body["redirectUri"], redirect);
    assert_eq!(body["codeVerifier"].as_str().unwrap().len(), 64);
    assert_eq!(create[0].status, Some(200));

    // The token file: the AWS CLI's fields, in its order, 0600.
    let issued = fake.issued_tokens();
    assert_eq!(issued.len(), 1);
    let token_path = env.token_cache_path("corp");
    let text = fs::read_to_string(&token_path).unwrap();
    let keys: Vec<String> = {
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let map = v.as_object().unwrap();
        assert_eq!(map["accessToken"], issued[0].access_token.as_str());
        assert_eq!(
            map["refreshToken"],
            issued[0].new_refresh_token.as_deref().unwrap()
        );
        assert_eq!(map["clientId"], client.client_id.as_str());
        assert_eq!(map["clientSecret"], client.client_secret.as_str());
        assert_eq!(map["startUrl"], START_URL);
        assert_eq!(map["region"], "us-east-1");
        // serde_json's map is sorted; the order is checked on the text below.
        map.keys().cloned().collect()
    };
    assert_eq!(keys.len(), 8, "{text}");
    let order = [
        "startUrl",
        "region",
        "accessToken",
        "expiresAt",
        "clientId",
        "clientSecret",
        "registrationExpiresAt",
        "refreshToken",
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|k| text.find(&format!("\"{k}\": ")).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert_eq!(mode(&token_path), 0o600);

    // The registration file, named as botocore names it, 0600.
    let reg_path = env.sso_cache_dir().join(registration_name());
    let reg_text = fs::read_to_string(&reg_path).unwrap_or_else(|e| {
        panic!(
            "no registration at {}: {e}; cache holds {:?}",
            reg_path.display(),
            fs::read_dir(env.sso_cache_dir())
                .unwrap()
                .collect::<Vec<_>>()
        )
    });
    assert!(
        reg_text.starts_with(&format!(
            "{{\"clientId\": \"{}\", \"clientSecret\": \"{}\", \"expiresAt\": \"",
            client.client_id, client.client_secret
        )),
        "{reg_text}"
    );
    assert!(
        reg_text.ends_with(
            "\"scopes\": [\"sso:account:access\"], \"grantTypes\": [\"authorization_code\", \"refresh_token\"]}"
        ),
        "{reg_text}"
    );
    assert_eq!(mode(&reg_path), 0o600);
    assert_no_secrets(&fake, &out);

    // Signed in: a second login keeps the token and calls nothing.
    let calls = fake.total_requests();
    let (code, out2) = login(&env, &["login", "--sso-session", "corp"]);
    assert_eq!(code, Some(0), "{out2}");
    assert!(out2.contains("already signed in until"), "{out2}");
    assert_eq!(fake.total_requests(), calls);

    // --fresh: the session ends (Logout), a new sign-in, the same registration.
    let (code, out3) = login(&env, &["login", "--fresh", "--sso-session", "corp"]);
    assert_eq!(code, Some(0), "{out3}\n--- browser\n{}", browser.log());
    assert_eq!(fake.logged_out(), [issued[0].access_token.clone()]);
    assert_eq!(
        fake.count("RegisterClient"),
        1,
        "the registration was not reused"
    );
    assert_eq!(fake.count("Authorize"), 2);
    let issued = fake.issued_tokens();
    assert_eq!(issued.len(), 2);
    assert_eq!(
        env.read_token_cache("corp")["accessToken"],
        issued[1].access_token.as_str()
    );
    assert_eq!(issued[1].client_id, client.client_id);
    assert_no_secrets(&fake, &format!("{out2}{out3}"));
}

#[test]
fn a_wrong_state_is_refused_and_no_token_is_asked_for() {
    let fake = FakeAws::new();
    let (env, browser) = setup(&fake, 0);
    fake.set_authorize_state_override(Some("forged-state"));
    let (code, out) = login(&env, &["login", "--sso-session", "corp"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("`state` that is not this sign-in's"), "{out}");
    // The browser was told too (it logs after credsync has already exited).
    assert!(
        support::wait_for(
            || browser.log().contains("followed 400"),
            Duration::from_secs(10)
        ),
        "{}",
        browser.log()
    );
    assert_eq!(fake.count("Authorize"), 1);
    assert_eq!(
        fake.count("CreateToken"),
        0,
        "the code of a forged answer was used"
    );
    assert!(!env.token_cache_path("corp").exists());
}

#[test]
fn device_flow_polls_through_pending_and_slow_down_at_the_interval() {
    let fake = FakeAws::new();
    let (mut env, browser) = setup(&fake, 0);
    // No display: the device flow is the default.
    env.env_remove("DISPLAY");
    fake.set_device_interval(1);
    fake.set_device_script(&[
        DeviceStep::Pending,
        DeviceStep::SlowDown,
        DeviceStep::Approve,
    ]);
    let (code, out) = login(&env, &["login", "--sso-session", "corp"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("(device code)"), "{out}");
    assert!(
        out.contains("https://device.sso.fake.amazonaws.com/?user_code=FAKE-"),
        "{out}"
    );

    // RegisterClient for the device grant: no grant types, no redirect URI.
    let clients = fake.clients();
    assert_eq!(clients.len(), 1);
    assert!(clients[0].grant_types.is_empty(), "{clients:?}");
    assert!(clients[0].redirect_uris.is_empty());
    assert_eq!(fake.count("StartDeviceAuthorization"), 1);
    // Three polls (pending, slow down, approved), none sooner than the interval in force by
    // the fake's clock: 1 s, then 1 s, then 6 s after the SlowDown.
    assert_eq!(fake.device_polls(), (3, 0));
    // No browser here: the page was shown for another device, not opened.
    assert!(
        !browser.log.exists(),
        "a browser was started: {}",
        browser.log()
    );
    let polls = fake.requests_for("CreateToken");
    assert!(
        polls
            .iter()
            .all(|r| r.json()["grantType"] == "urn:ietf:params:oauth:grant-type:device_code")
    );
    let gap = polls[2].at.duration_since(polls[1].at);
    assert!(gap >= Duration::from_secs(6), "{gap:?} after SlowDown");
    let token = env.read_token_cache("corp");
    assert_eq!(
        token["accessToken"],
        fake.issued_tokens()[0].access_token.as_str()
    );
    assert_eq!(token["clientId"], clients[0].client_id.as_str());
    // The registration file is the device flow's: no grantTypes.
    let reg = fs::read_to_string(env.sso_cache_dir().join(registration_name())).unwrap();
    assert!(!reg.contains("grantTypes"), "{reg}");
    assert!(reg.ends_with("Z\"}"), "{reg}");
    assert_no_secrets(&fake, &out);
}

#[test]
fn device_flow_stops_on_denial_and_on_expiry_with_a_message() {
    let fake = FakeAws::new();
    let (env, _browser) = setup(&fake, 0);
    fake.set_device_interval(1);
    fake.set_device_script(&[DeviceStep::Deny]);
    let (code, out) = login(&env, &["login", "--device-code", "--no-browser"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("the sign-in was denied"), "{out}");
    fake.set_device_script(&[DeviceStep::Pending, DeviceStep::Expire]);
    let (code, out) = login(&env, &["login", "--device-code", "--no-browser"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("the sign-in code expired before it was approved"),
        "{out}"
    );
    assert!(!env.token_cache_path("corp").exists());
    // The device registration was made once and reused.
    assert_eq!(fake.count("RegisterClient"), 1);
    assert_eq!(fake.device_polls(), (3, 0));
}

#[test]
fn logout_ends_the_session_and_keeps_the_registration() {
    let fake = FakeAws::new();
    let (env, browser) = setup(&fake, 0);
    let (code, out) = login(&env, &["login"]);
    assert_eq!(code, Some(0), "{out}\n{}", browser.log());
    let access = fake.issued_tokens()[0].access_token.clone();
    assert!(fake.is_token_valid(&access));
    let (code, out) = login(&env, &["logout", "--sso-session", "corp"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("signed out"), "{out}");
    assert_eq!(fake.logged_out(), std::slice::from_ref(&access));
    assert!(!fake.is_token_valid(&access));
    assert!(!env.token_cache_path("corp").exists());
    assert!(env.sso_cache_dir().join(registration_name()).exists());
    let (code, out) = login(&env, &["logout"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("not signed in"), "{out}");
    assert_no_secrets(&fake, &out);
}

#[test]
fn two_logins_and_a_daemon_sign_in_once() {
    let fake = FakeAws::new();
    // The browser takes a second, as a user does: the second login starts while the first
    // holds the session's lock.
    let (env, browser) = setup(&fake, 1);
    env.write_config_toml("[[profiles]]\nsource = \"dev\"\n");
    let mut daemon = env.daemon(Vec::<&str>::new());
    let mut first = Daemon::spawn(env.cmd(["login"]), env.root());
    let mut second = Daemon::spawn(env.cmd(["login", "--profile", "dev"]), env.root());
    let a = first.wait_exit(Duration::from_secs(60));
    let b = second.wait_exit(Duration::from_secs(60));
    let logs = format!(
        "{}\n---\n{}\n--- browser\n{}",
        first.logs(),
        second.logs(),
        browser.log()
    );
    assert!(a.success() && b.success(), "{logs}");
    assert_eq!(fake.count("RegisterClient"), 1, "{logs}");
    assert_eq!(fake.count("Authorize"), 1, "{logs}");
    let issued = fake.issued_tokens();
    assert_eq!(issued.len(), 1, "{logs}");
    let signed_in = [first.logs(), second.logs()]
        .iter()
        .filter(|l| l.contains("\": signed in until"))
        .count();
    assert_eq!(signed_in, 1, "{logs}");
    assert!(logs.contains("already signed in until"), "{logs}");
    // One of them found the session locked by the other and waited.
    assert!(
        logs.contains("is in progress; waiting for it to finish"),
        "{logs}"
    );
    assert_eq!(
        env.read_token_cache("corp")["accessToken"],
        issued[0].access_token.as_str()
    );
    // The daemon picks the new token up and writes credentials with it.
    daemon.expect_within(
        "credentials fetched with the new token",
        || {
            fake.requests_for("GetRoleCredentials").iter().any(|r| {
                r.header("x-amz-sso_bearer_token") == Some(issued[0].access_token.as_str())
                    && r.status == Some(200)
            })
        },
        Duration::from_secs(30),
    );
    assert!(daemon.is_running(), "{}", daemon.logs());
    assert_eq!(daemon.sigterm().code(), Some(0));
    assert_no_secrets(&fake, &format!("{logs}{}", daemon.logs()));
}

#[test]
fn the_daemons_refresh_waits_for_a_sign_in_in_progress() {
    use credsync::aws::{AwsEdge, Clients, ResolveError};
    let fake = FakeAws::new();
    let env = TestEnv::with_fake(&fake);
    fake.add_refresh_token("fake-refresh-old", "fake-client-old");
    env.write_token_cache(
        "corp",
        &support::botocore_token_json(
            "fake-access-old",
            std::time::SystemTime::now() + Duration::from_secs(60),
            Some((
                "fake-refresh-old",
                "fake-client-old",
                "fake-client-secret-old",
            )),
        ),
    );
    let cache = env.sso_cache_dir();
    let token = match credsync::sso_cache::read(&cache, "corp").unwrap() {
        credsync::sso_cache::Read::Token(t) => t,
        other => panic!("{other:?}"),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = rt.block_on(Clients::new(AwsEdge::only(&fake.url())).oidc("us-east-1"));
    let refresh = || {
        rt.block_on(credsync::token::refresh_and_store(
            &client,
            &cache,
            "corp",
            &token,
            "credsync login --sso-session corp",
            std::time::SystemTime::now(),
        ))
    };
    // A `credsync login` holds the session: the refresh gives up for now, without a call.
    let held = credsync::sso_cache::lock::SessionLock::try_acquire(&cache, "corp")
        .unwrap()
        .expect("the lock is free");
    let e = refresh().expect_err("the sign-in holds the lock");
    assert!(
        matches!(&e, ResolveError::Transient { .. }) && e.is_retryable(),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains("sign-in to this session is in progress"),
        "{e}"
    );
    assert_eq!(fake.count("CreateToken"), 0);
    // Released: the refresh goes through.
    drop(held);
    let new = refresh().expect("refresh");
    assert_eq!(fake.count("CreateToken"), 1);
    assert!(new.saved.is_ok(), "{:?}", new.saved);
    use credsync::secret::ExposeSecret;
    assert_eq!(
        new.token.access_token.expose_secret(),
        fake.issued_tokens()[0].access_token
    );
}

#[test]
fn an_old_token_with_a_refresh_token_is_renewed_without_a_browser() {
    let fake = FakeAws::new();
    let (env, browser) = setup(&fake, 0);
    fake.add_refresh_token("fake-refresh-old", "fake-client-old");
    env.write_token_cache(
        "corp",
        &support::BotocoreToken {
            start_url: START_URL.to_owned(),
            region: "us-east-1".to_owned(),
            access_token: "fake-access-old".to_owned(),
            expires_at: std::time::SystemTime::now() + Duration::from_secs(5 * 60),
            registration: Some(support::Registration {
                refresh_token: "fake-refresh-old".to_owned(),
                client_id: "fake-client-old".to_owned(),
                client_secret: "fake-client-secret-old".to_owned(),
                registration_expires_at: std::time::SystemTime::now()
                    + Duration::from_secs(30 * 24 * 3600),
            }),
        }
        .to_json(),
    );
    let (code, out) = login(&env, &["login"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("renewed until"), "{out}");
    let issued = fake.issued_tokens();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].grant_type, "refresh_token");
    assert_eq!(fake.count("Authorize") + fake.count("RegisterClient"), 0);
    assert!(
        browser.log().is_empty(),
        "a browser opened: {}",
        browser.log()
    );
    assert_eq!(
        env.read_token_cache("corp")["accessToken"],
        issued[0].access_token.as_str()
    );
    assert_no_secrets(&fake, &out);
}

#[test]
fn a_legacy_profile_signs_in_with_a_device_code_under_the_start_urls_names() {
    let fake = FakeAws::new();
    let (env, _browser) = setup(&fake, 0);
    let legacy_url = "https://legacy.awsapps.com/start";
    env.write_aws_config(&format!(
        "{AWS_CONFIG}\n[profile old]\nsso_start_url = {legacy_url}\nsso_region = eu-west-1\n\
         sso_account_id = 222222222222\nsso_role_name = Dev\nregion = eu-west-1\n"
    ));
    fake.set_device_interval(1);
    // A display and a browser: still the device flow, the only one for a legacy profile.
    let (code, out) = login(&env, &["login", "--profile", "old"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("(device code)"), "{out}");
    assert!(
        out.contains(&format!("start URL {legacy_url} (profile \"old\")")),
        "{out}"
    );
    let clients = fake.clients();
    assert_eq!(clients.len(), 1);
    assert!(clients[0].scopes.is_empty() && clients[0].grant_types.is_empty());
    // The token under sha1(start URL), the registration under botocore's legacy key.
    let token = env.read_token_cache(legacy_url);
    assert_eq!(token["startUrl"], legacy_url);
    assert_eq!(token["region"], "eu-west-1");
    assert_eq!(token["clientId"], clients[0].client_id.as_str());
    let key = format!(
        r#"{{"region": "eu-west-1", "scopes": null, "session_name": null, "startUrl": "{legacy_url}", "tool": "botocore"}}"#
    );
    let reg = env.sso_cache_dir().join(format!("{}.json", sha1_hex(&key)));
    assert!(reg.exists(), "no registration at {}", reg.display());
    assert!(!env.token_cache_path("corp").exists());
    // botocore reads the legacy profile with that token.
    if support::python::python().is_some() {
        let url = fake.url();
        let got = support::python::botocore_read_credentials_json(
            env.home(),
            "old",
            &[("AWS_ENDPOINT_URL", url.as_str())],
        );
        assert_eq!(got["method"], "sso", "{got}");
        assert_eq!(
            got["akid"],
            fake.last_credentials("222222222222", "Dev")
                .unwrap()
                .access_key_id
                .as_str()
        );
    } else {
        support::python::skip(
            "a_legacy_profile_signs_in_with_a_device_code_under_the_start_urls_names (botocore part)",
        );
    }
}

#[test]
fn nothing_to_sign_in_to_is_a_usage_error_that_says_what_to_do() {
    let fake = FakeAws::new();
    let (mut env, _browser) = setup(&fake, 0);
    env.write_aws_config(
        "[profile keys]\naws_access_key_id = AKIAFAKE\naws_secret_access_key = x\n",
    );
    env.env("AWS_PROFILE", "keys");
    let (code, out) = login(&env, &["login"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("keys: does not sign in through IAM Identity Center"),
        "{out}"
    );
    assert!(out.contains("credsync login --sso-session NAME"), "{out}");
    let (code, out) = login(&env, &["login", "--sso-session", "nope"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("there is no [sso-session nope]"), "{out}");
    assert_eq!(fake.total_requests(), 0);
}

#[test]
fn a_registration_aws_no_longer_knows_is_replaced_once() {
    let fake = FakeAws::new();
    let (env, _browser) = setup(&fake, 0);
    fake.set_device_interval(1);
    let (code, out) = login(&env, &["login", "--device-code", "--no-browser"]);
    assert_eq!(code, Some(0), "{out}");
    let old = fake.clients()[0].client_id.clone();
    fake.revoke_client(&old);
    let (code, out) = login(&env, &["login", "--fresh", "--device-code", "--no-browser"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(fake.count("RegisterClient"), 2);
    let new = fake.clients()[0].client_id.clone();
    assert_ne!(new, old);
    let reg = fs::read_to_string(env.sso_cache_dir().join(registration_name())).unwrap();
    assert!(reg.contains(&format!("\"clientId\": \"{new}\"")), "{reg}");
    assert_eq!(env.read_token_cache("corp")["clientId"], new.as_str());
    assert_no_secrets(&fake, &out);
}
