//! `aws login` sessions (`login_session` profiles) end to end: the real binary renews the
//! session's cache entry through the fake AWS Sign-In (which checks every DPoP proof and
//! refuses a spent refresh token), writes the entry back as the AWS CLI does and the keys to
//! the credentials file; a session AWS ends is `login_required` with the command, one
//! notification and no retry loop; and the real AWS CLI v2 and boto3 read what credsync
//! wrote, while credsync renews what the CLI wrote.

use crate::support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use credsync::ini_edit;
use credsync::schedule::Clock as _;
use credsync::secret::ExposeSecret;
use credsync::signin::DpopKey;
use serde_json::{Value, json};
use support::aws_cli::{self, aws};
use support::fake_aws::{FakeAws, SAME_DEVICE};
use support::python;
use support::{TestEnv, botocore_time, output_text, parse_botocore_time};

pub const USER: &str = "arn:aws:iam::111122223333:user/alice";
pub const ACCOUNT: &str = "111122223333";
const SEED: &str = "fake-login-refresh-seed";
const MIN: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(30);

/// Profile `dev` signed in with `aws login` as [`USER`]; credsync manages it into section
/// `dev-keys` (not `dev`: the credentials file's keys would win over `login_session` for the
/// AWS CLI and botocore reading profile `dev`).
pub fn setup(fake: &FakeAws, toml_tail: &str) -> TestEnv {
    let env = TestEnv::with_fake(fake);
    env.write_aws_config(&format!(
        "[profile dev]\nlogin_session = {USER}\nregion = us-east-1\n"
    ));
    env.write_config_toml(&format!(
        "[[profiles]]\nsource = \"dev\"\ntarget = \"dev-keys\"\n\n{toml_tail}"
    ));
    env
}

/// The session's cache entry: `~/.aws/login/cache/<sha256(USER)>.json`.
pub fn entry_path(env: &TestEnv) -> PathBuf {
    env.home()
        .join(".aws/login/cache")
        .join(credsync::login_cache::file_name(USER))
}

pub fn read_entry(env: &TestEnv) -> Value {
    let text = std::fs::read_to_string(entry_path(env)).expect("the login cache entry");
    serde_json::from_str(&text).expect("the entry is JSON")
}

/// Signed in as `aws login` leaves it: an entry whose credentials have `left` to go, its
/// refresh token [`SEED`] known to the fake and bound to the entry's DPoP key.
pub fn signed_in(env: &TestEnv, fake: &FakeAws, left: Duration) {
    signed_in_with(env, fake, left, SEED);
}

/// [`signed_in`] with refresh token `refresh`.
pub fn signed_in_with(env: &TestEnv, fake: &FakeAws, left: Duration, refresh: &str) {
    let (key, pem) = DpopKey::generate().expect("a key");
    fake.add_login_session(refresh, SAME_DEVICE, key.coordinates());
    let entry = json!({
        "accessToken": {
            "accessKeyId": "ASIAFAKESEED",
            "secretAccessKey": "fake-secret-seed",
            "sessionToken": "fake-session-seed",
            "accountId": ACCOUNT,
            "expiresAt": botocore_time(SystemTime::now() + left),
        },
        "tokenType": "aws_sigv4",
        "clientId": SAME_DEVICE,
        "refreshToken": refresh,
        "idToken": "e30.e30.fake",
        "dpopKey": pem,
    });
    let path = entry_path(env);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, entry.to_string()).unwrap();
    // botocore creates the file 0600.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// What the fake issued, after checking there are `n` issues (`n` >= 2) and the last one spent
/// the refresh token the one before it issued (the session did not fork).
fn renewals_in_a_chain(fake: &FakeAws, n: usize) -> Vec<support::fake_aws::LoginIssued> {
    let issued = fake.login_issued();
    assert_eq!(issued.len(), n, "{issued:?}");
    assert_eq!(
        issued[n - 1].refresh_used,
        Some(issued[n - 2].refresh_issued.clone())
    );
    issued
}

/// The keys of section `dev-keys` of the credentials file.
fn written_key(env: &TestEnv) -> String {
    let text = env.read_credentials();
    let (creds, _) = ini_edit::read_managed(&text, "dev-keys")
        .unwrap_or_else(|| panic!("no managed [dev-keys] in:\n{text}"));
    creds.access_key_id.expose_secret().to_owned()
}

#[test]
fn a_login_session_is_renewed_in_its_cache_entry_and_written_to_the_credentials_file() {
    let fake = FakeAws::new();
    let env = setup(&fake, "");
    signed_in(&env, &fake, 2 * MIN);
    let before = read_entry(&env);

    let o = env.run(["sync"]);
    assert!(o.status.success(), "{}", output_text(&o));
    let issued = fake.login_issued();
    assert_eq!(issued.len(), 1, "{issued:?}");
    assert_eq!(issued[0].grant_type, "refresh_token");
    assert_eq!(issued[0].refresh_used.as_deref(), Some(SEED));
    assert_eq!(fake.login_bad_proofs(), 0);

    // The entry: the rotated refresh token and the new credentials, the rest as it was.
    let after = read_entry(&env);
    let served = &issued[0].credentials;
    assert_eq!(after["refreshToken"], issued[0].refresh_issued.as_str());
    assert_eq!(
        after["accessToken"]["accessKeyId"],
        served.access_key_id.as_str()
    );
    assert_eq!(
        after["accessToken"]["secretAccessKey"],
        served.secret_access_key.as_str()
    );
    assert_eq!(
        after["accessToken"]["sessionToken"],
        served.session_token.as_str()
    );
    assert_eq!(after["accessToken"]["accountId"], ACCOUNT);
    for kept in ["dpopKey", "clientId", "idToken", "tokenType"] {
        assert_eq!(after[kept], before[kept], "{kept}");
    }
    let expires = parse_botocore_time(after["accessToken"]["expiresAt"].as_str().unwrap());
    let left = expires.duration_since(SystemTime::now()).unwrap();
    assert!(left > 14 * MIN && left <= 15 * MIN, "{left:?}");
    assert!(fake.is_login_refresh_valid(&issued[0].refresh_issued));
    assert!(!fake.is_login_refresh_valid(SEED));
    // Written atomically, its mode kept, with the lock file beside it; no temp file left.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(entry_path(&env))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let names: Vec<String> = std::fs::read_dir(entry_path(&env).parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    // The keys in the credentials file, with the session's account.
    assert_eq!(written_key(&env), served.access_key_id);
    let text = env.read_credentials();
    assert!(
        text.contains(&format!("aws_account_id = {ACCOUNT}")),
        "{text}"
    );

    // Fresh for 15 minutes: another sync leaves the session alone.
    let o = env.run(["sync"]);
    assert!(o.status.success(), "{}", output_text(&o));
    assert_eq!(fake.login_issued().len(), 1);
    assert_eq!(fake.count("CreateOAuth2Token"), 1);
    let logs = output_text(&o);
    for secret in [SEED, "fake-secret-", "fake-session-", "PRIVATE KEY"] {
        assert!(!logs.contains(secret), "{secret} in {logs}");
    }
}

#[test]
fn the_login_cache_directory_follows_aws_login_cache_directory() {
    let fake = FakeAws::new();
    let mut env = setup(&fake, "");
    let moved = env.home().join("elsewhere");
    env.env("AWS_LOGIN_CACHE_DIRECTORY", "~/elsewhere");
    signed_in(&env, &fake, 2 * MIN);
    std::fs::create_dir_all(&moved).unwrap();
    let from = entry_path(&env);
    let to = moved.join(from.file_name().unwrap());
    std::fs::rename(&from, &to).unwrap();
    let o = env.run(["sync"]);
    assert!(o.status.success(), "{}", output_text(&o));
    let entry: Value = serde_json::from_str(&std::fs::read_to_string(&to).unwrap()).unwrap();
    assert_eq!(
        entry["refreshToken"],
        fake.login_issued()[0].refresh_issued.as_str()
    );
}

#[test]
fn a_session_aws_ended_is_login_required_with_one_notification_and_no_retry_loop() {
    let fake = FakeAws::new();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("notices");
    let script = dir.path().join("notifier");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\n", out.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let notify = format!("[notify]\ncommand = [{:?}]\n", script.display().to_string());
    let env = setup(&fake, &notify);
    signed_in(&env, &fake, 2 * MIN);
    fake.end_login_session(SEED, "TOKEN_EXPIRED");

    let daemon = env.daemon(std::iter::empty::<&str>());
    let mut status = Value::Null;
    daemon.expect_within(
        "the profile is login_required",
        || {
            let o = env.run(["status", "--json"]);
            status = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
            status["profiles"][0]["state"] == "login_required"
        },
        WAIT,
    );
    let notices = || std::fs::read_to_string(&out).unwrap_or_default();
    daemon.expect_within("a notification", || !notices().is_empty(), WAIT);
    let error = status["profiles"][0]["last_error"].as_str().unwrap_or("");
    assert!(error.contains("aws login --profile dev"), "{status}");
    assert!(error.contains("TOKEN_EXPIRED"), "{status}");
    let session = &status["sso_sessions"][0];
    assert_eq!(session["name"], USER, "{status}");
    assert_eq!(session["not_refreshable"], "refresh_refused", "{status}");
    assert_eq!(
        session["login_command"], "aws login --profile dev",
        "{status}"
    );

    // More rounds: nothing more is sent to AWS Sign-In, and nothing more is said.
    for _ in 0..3 {
        let o = env.run(["refresh"]);
        assert!(o.status.code().is_some(), "{}", output_text(&o));
    }
    let o = env.run(["status"]);
    let table = output_text(&o);
    assert!(table.contains("login_required"), "{table}");
    assert!(table.contains("aws login --profile dev"), "{table}");
    assert_eq!(fake.count("CreateOAuth2Token"), 1, "{}", daemon.logs());
    let said = notices();
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(said.contains("login session"), "{said}");
    assert!(
        said.ends_with("Sign in again: aws login --profile dev\n"),
        "{said}"
    );
    for secret in [SEED, "PRIVATE KEY"] {
        assert!(!daemon.logs().contains(secret), "{secret} in the logs");
    }

    // Signed in again (a new entry): the daemon sees it (it watches the login cache) and
    // renews it, well before its 30-second look at a profile waiting for a sign-in.
    signed_in_with(&env, &fake, 2 * MIN, "fake-login-refresh-again");
    daemon.expect_within(
        "fresh again",
        || {
            let o = env.run(["status", "--json"]);
            let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
            v["profiles"][0]["state"] == "fresh"
        },
        Duration::from_secs(10),
    );
    assert_eq!(fake.count("CreateOAuth2Token"), 2);
}

/// `aws configure export-credentials --profile dev --format process`.
const EXPORT: [&str; 6] = [
    "configure",
    "export-credentials",
    "--profile",
    "dev",
    "--format",
    "process",
];

/// [`EXPORT`] against `fake`: the access key id it printed.
fn cli_key(env: &TestEnv, fake: &FakeAws) -> String {
    let url = fake.url();
    let o = aws(env.home(), &EXPORT, &[("AWS_ENDPOINT_URL", url.as_str())]);
    assert!(
        o.status.success(),
        "aws configure export-credentials:\n{}",
        output_text(&o)
    );
    let v: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    v["AccessKeyId"].as_str().expect("AccessKeyId").to_owned()
}

fn sync(env: &TestEnv) {
    let o = env.run(["sync"]);
    assert!(o.status.success(), "credsync sync:\n{}", output_text(&o));
}

/// For the tests with the AWS CLI: the fake, profile `dev` signed in (two minutes left), and
/// renewals that last four minutes (inside botocore's 5-minute threshold and credsync's, so
/// that both renew every time). `None`, after saying why, without the AWS CLI.
fn signed_in_for_the_cli(test: &str) -> Option<(FakeAws, TestEnv)> {
    if aws_cli::aws_cli().is_none() {
        aws_cli::skip(test);
        return None;
    }
    let fake = FakeAws::new();
    let env = setup(&fake, "");
    signed_in(&env, &fake, 2 * MIN);
    fake.set_login_expires_in(240);
    Some((fake, env))
}

#[test]
fn the_aws_cli_reads_and_refreshes_what_credsync_renewed_and_credsync_renews_what_it_wrote() {
    let Some((fake, env)) =
        signed_in_for_the_cli("login_session::the_aws_cli_reads_and_refreshes_what_credsync")
    else {
        return;
    };
    // credsync renews; four minutes left: the AWS CLI refreshes with the refresh token and DPoP
    // key credsync wrote, and writes its entry.
    sync(&env);
    let key = cli_key(&env, &fake);
    let issued = renewals_in_a_chain(&fake, 2);
    assert_eq!(key, issued[1].credentials.access_key_id);
    assert_eq!(
        read_entry(&env)["refreshToken"],
        issued[1].refresh_issued.as_str()
    );

    // credsync renews the entry the AWS CLI wrote.
    fake.set_login_expires_in(900);
    sync(&env);
    let issued = renewals_in_a_chain(&fake, 3);
    assert_eq!(written_key(&env), issued[2].credentials.access_key_id);

    // Fifteen minutes left: the AWS CLI takes credsync's credentials as they are.
    let key = cli_key(&env, &fake);
    assert_eq!(key, issued[2].credentials.access_key_id);
    assert_eq!(fake.count("CreateOAuth2Token"), 3);
    assert_eq!(fake.login_bad_proofs(), 0);
    assert_eq!(fake.login_spent_refusals(), 0);
}

#[test]
fn credsync_renews_the_session_aws_login_signed_in() {
    if aws_cli::aws_cli().is_none() {
        aws_cli::skip("login_session::credsync_renews_the_session_aws_login_signed_in");
        return;
    }
    let fake = FakeAws::new();
    let env = TestEnv::with_fake(&fake);
    env.write_aws_config("[default]\nregion = us-east-1\n");
    env.write_config_toml("[[profiles]]\nsource = \"dev\"\ntarget = \"dev-keys\"\n");
    let browser = support::browser::Browser::new(env.root(), 0);
    let url = fake.url();
    let script = browser.script.to_str().unwrap().to_owned();
    // Four minutes: the entry `aws login` writes is due for a renewal at once.
    fake.set_login_expires_in(240);
    let o = aws(
        env.home(),
        &["login", "--profile", "dev", "--region", "us-east-1"],
        &[
            ("AWS_ENDPOINT_URL", url.as_str()),
            ("BROWSER", script.as_str()),
        ],
    );
    assert!(
        o.status.success(),
        "aws login:\n{}\n--- browser\n{}",
        output_text(&o),
        browser.log()
    );
    let config = std::fs::read_to_string(env.aws_config_path()).unwrap();
    assert!(
        config.contains(&format!("login_session = {USER}")),
        "{config}"
    );
    let issued = fake.login_issued();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].grant_type, "authorization_code");

    fake.set_login_expires_in(900);
    sync(&env);
    let issued = renewals_in_a_chain(&fake, 2);
    assert_eq!(
        read_entry(&env)["refreshToken"],
        issued[1].refresh_issued.as_str()
    );
    assert_eq!(written_key(&env), issued[1].credentials.access_key_id);
    // The CLI goes on with credsync's entry.
    assert_eq!(cli_key(&env, &fake), issued[1].credentials.access_key_id);
    assert_eq!(fake.count("CreateOAuth2Token"), 2);
}

#[test]
fn the_daemon_and_the_aws_cli_renewing_at_once_never_lose_the_session() {
    let Some((fake, env)) =
        signed_in_for_the_cli("login_session::the_daemon_and_the_aws_cli_renewing_at_once")
    else {
        return;
    };
    // The fake's answers take a moment, so that both send the same refresh token.
    fake.set_latency(Duration::from_millis(400));
    let daemon = env.daemon(std::iter::empty::<&str>());
    daemon.expect_within(
        "the first renewal",
        || env.read_credentials().contains("dev-keys"),
        WAIT,
    );
    let url = fake.url();
    let mut cli_lost = 0;
    for round in 0..20u64 {
        let home = env.home().to_owned();
        let cli_url = url.clone();
        let cli =
            std::thread::spawn(move || aws(&home, &EXPORT, &[("AWS_ENDPOINT_URL", &cli_url)]));
        // The CLI takes about a second to start: credsync's refresh lands all over that window.
        std::thread::sleep(Duration::from_millis(500 + round * 60));
        let o = env.run(["refresh", "dev"]);
        assert!(o.status.success(), "round {round}: {}", output_text(&o));
        let mut cli = cli.join().unwrap();
        if !cli.status.success() {
            // It sent the refresh token credsync had just spent, and said so; the session goes
            // on with credsync's entry, and the next command gets credentials.
            assert!(
                output_text(&cli).contains("expired"),
                "round {round}: {}",
                output_text(&cli)
            );
            cli_lost += 1;
            cli = aws(env.home(), &EXPORT, &[("AWS_ENDPOINT_URL", &url)]);
            assert!(cli.status.success(), "round {round}: {}", output_text(&cli));
        }
        // The session is never lost: the entry holds a refresh token AWS still takes ...
        let entry = read_entry(&env);
        let refresh = entry["refreshToken"].as_str().unwrap().to_owned();
        assert!(
            fake.is_login_refresh_valid(&refresh),
            "round {round}: the entry's refresh token is spent\n{}",
            daemon.logs()
        );
        // ... and both hold keys AWS issued, still valid.
        let issued = fake.login_issued();
        let cli_key: Value = serde_json::from_slice(&cli.stdout).expect("JSON");
        for (who, key) in [
            ("credsync", written_key(&env)),
            (
                "the AWS CLI",
                cli_key["AccessKeyId"].as_str().unwrap().to_owned(),
            ),
        ] {
            let served = issued
                .iter()
                .find(|i| i.credentials.access_key_id == key)
                .unwrap_or_else(|| panic!("round {round}: {who} holds keys AWS never issued"));
            assert!(
                served.credentials.expiration() > SystemTime::now(),
                "round {round}: {who}'s keys expired"
            );
        }
    }
    let refusals = fake.login_spent_refusals();
    eprintln!(
        "20 rounds: {refusals} spent refresh tokens refused, {cli_lost} of them the CLI's, {} renewals",
        fake.login_issued().len()
    );
    // The race happened (else this test proves nothing), and credsync never lost the session.
    assert!(refusals > 0, "no round raced: {}", daemon.logs());
    assert!(
        !daemon.logs().contains("login_required"),
        "{}",
        daemon.logs()
    );
    assert_eq!(fake.login_bad_proofs(), 0);
}

/// boto3's own provider chain for profile `dev`: its method, access key and account id.
const BOTO3_READ: &str = r#"
import json, boto3
c = boto3.Session(profile_name="dev").get_credentials()
f = c.get_frozen_credentials()
print(json.dumps({"method": c.method, "akid": f.access_key, "account": f.account_id}))
"#;

/// A long-lived boto3 client reading the view's profile `dev-keys` once per line of input.
const VIEW_CLIENT: &str = r#"
import os, sys, boto3
c = boto3.Session(profile_name="dev-keys").get_credentials()
for _ in sys.stdin:
    f = c.get_frozen_credentials()
    print(os.getpid(), c.method, f.access_key, f.account_id, flush=True)
"#;

#[test]
fn boto3_reads_credsyncs_entry_and_a_long_lived_client_follows_the_view() {
    let Some(py) = python::python() else {
        python::skip("login_session::boto3_reads_credsyncs_entry");
        return;
    };
    // botocore's LoginProvider needs awscrt (boto3[crt]), which scripts/test installs.
    let has_login_provider = std::process::Command::new(&py)
        .args([
            "-c",
            "import awscrt\nfrom botocore.credentials import LoginProvider",
        ])
        .env_clear()
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_login_provider {
        let why = format!(
            "{} has no awscrt or no LoginProvider; run scripts/test",
            py.display()
        );
        support::skip("login_session::boto3_reads_credsyncs_entry", &why);
        return;
    }
    let fake = FakeAws::new();
    let env = setup(&fake, "");
    // path_in_container is the host dir itself, so the view's `cat` works outside a container.
    let view = env.aws_dir().join("credsync");
    env.write_config_toml(&format!(
        "[[profiles]]\nsource = \"dev\"\ntarget = \"dev-keys\"\n\n[container]\ndir = \"{d}\"\n\
         path_in_container = \"{d}\"\n",
        d = view.display()
    ));
    signed_in(&env, &fake, 2 * MIN);
    // Four-minute credentials: every `sync` renews.
    fake.set_login_expires_in(240);
    sync(&env);
    let config = view.join("config");
    let home = env.home().to_str().unwrap().to_owned();
    let cmd = python::python_command(
        VIEW_CLIENT,
        &[
            ("HOME", home.as_str()),
            ("AWS_CONFIG_FILE", config.to_str().unwrap()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        ],
    );
    let mut client = crate::container_view::Lockstep::spawn(cmd);
    let pid = client.pid();
    let key = |n: usize| fake.login_issued()[n].credentials.access_key_id.clone();
    assert_eq!(
        client.read(),
        format!("{pid} custom-process {} {ACCOUNT}", key(0))
    );
    for round in 1..=3 {
        sync(&env);
        assert_eq!(fake.login_issued().len(), round + 1);
        // The same process and credentials object: the new key of each renewal.
        assert_eq!(
            client.read(),
            format!("{pid} custom-process {} {ACCOUNT}", key(round)),
            "renewal {round}"
        );
    }

    // boto3's LoginProvider (profile `dev`, `login_session`) reads the entry credsync
    // renewed: fifteen minutes left, so it calls nobody.
    fake.set_login_expires_in(900);
    sync(&env);
    let calls = fake.count("CreateOAuth2Token");
    let url = fake.url();
    let o = python::run_python(
        BOTO3_READ,
        &[("HOME", home.as_str()), ("AWS_ENDPOINT_URL", url.as_str())],
    );
    assert!(o.status.success(), "{}", output_text(&o));
    let got: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(got["method"], "login", "{got}");
    assert_eq!(got["akid"], key(4).as_str(), "{got}");
    assert_eq!(got["account"], ACCOUNT, "{got}");
    assert_eq!(fake.count("CreateOAuth2Token"), calls);
}

/// Profile `dev` (login_session) managed, a stand-in browser, a display.
fn setup_login(fake: &FakeAws) -> (TestEnv, support::browser::Browser) {
    let mut env = setup(fake, "");
    let browser = support::browser::Browser::new(env.root(), 0);
    env.env("BROWSER", &browser.script).env("DISPLAY", ":0");
    (env, browser)
}

#[test]
fn credsync_login_signs_in_as_aws_login_does_and_then_renews() {
    let fake = FakeAws::new();
    let (env, browser) = setup_login(&fake);
    let (code, out) = crate::login::login(&env, &["login", "--profile", "dev"]);
    assert_eq!(code, Some(0), "{out}\n{}", browser.log());
    assert!(out.contains("signed in"), "{out}");
    let authorize = fake.requests_for("SigninAuthorize");
    assert_eq!(authorize.len(), 1);
    assert_eq!(authorize[0].query_param("client_id"), Some(SAME_DEVICE));
    assert_eq!(
        authorize[0].query_param("code_challenge_method"),
        Some("SHA-256")
    );
    let issued = fake.login_issued();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].grant_type, "authorization_code");
    let entry = read_entry(&env);
    assert_eq!(entry["refreshToken"], issued[0].refresh_issued.as_str());
    assert_eq!(entry["clientId"], SAME_DEVICE);
    assert_eq!(entry["tokenType"], "aws_sigv4");
    assert_eq!(entry["accessToken"]["accountId"], ACCOUNT);
    assert_eq!(
        entry["accessToken"]["accessKeyId"],
        issued[0].credentials.access_key_id.as_str()
    );
    assert!(
        entry["dpopKey"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN EC PRIVATE KEY-----\n")
    );
    for secret in [
        issued[0].refresh_issued.as_str(),
        "fake-login-code-",
        "PRIVATE KEY",
    ] {
        assert!(!out.contains(secret), "{secret} in {out}");
    }

    // Fifteen minutes left: nothing to do. Then a renewal, without a browser.
    let (code, out) = crate::login::login(&env, &["login", "--profile", "dev"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("already signed in"), "{out}");
    assert_eq!(fake.count("SigninAuthorize"), 1);
    // The daemon renews with the key credsync generated; the fake checks its proofs.
    fake.set_login_expires_in(240);
    let (code, out) = crate::login::login(&env, &["login", "--profile", "dev", "--fresh"]);
    assert_eq!(code, Some(0), "{out}");
    sync(&env);
    let issued = renewals_in_a_chain(&fake, 3);
    assert_eq!(written_key(&env), issued[2].credentials.access_key_id);
    assert_eq!(fake.login_bad_proofs(), 0);
}

/// `GET url` over plain HTTP; the body.
fn http_get(url: &str) -> String {
    use std::io::{Read as _, Write as _};
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_once('/').expect("a path");
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

#[test]
fn credsync_login_on_another_device_takes_the_pasted_code() {
    use std::io::{BufRead as _, Write as _};
    let fake = FakeAws::new();
    let mut env = setup(&fake, "");
    env.env("SSH_CONNECTION", "10.0.0.1 5000 10.0.0.2 22");
    let mut child = env
        .cmd(["login", "--profile", "dev"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut url = None;
    let mut seen = String::new();
    while url.is_none() {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "no URL in:\n{seen}"
        );
        seen.push_str(&line);
        url = line
            .trim()
            .strip_prefix(&format!("{}/v1/authorize?", fake.url()))
            .map(|_| line.trim().to_owned());
    }
    let url = url.unwrap();
    assert!(
        url.contains("client_id=arn%3Aaws%3Asignin%3A%3A%3Adevtools%2Fcross-device"),
        "{url}"
    );
    let page = http_get(&url);
    let code = page
        .trim()
        .strip_prefix("verification code: ")
        .expect(&page)
        .to_owned();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{code}").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{seen}{}", output_text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("on another device"));
    let issued = fake.login_issued();
    assert_eq!(issued.len(), 1);
    let entry = read_entry(&env);
    assert_eq!(entry["clientId"], support::fake_aws::CROSS_DEVICE);
    assert_eq!(entry["refreshToken"], issued[0].refresh_issued.as_str());
}

/// `[profile admin]` assumes a role with the credentials of login profile `dev`, signed in with
/// 2 minutes left; credsync manages `admin`.
fn a_role_chain_on_a_signed_in_session() -> (FakeAws, TestEnv) {
    let fake = FakeAws::new();
    let env = setup(&fake, "");
    env.write_aws_config(&format!(
        "[profile dev]\nlogin_session = {USER}\nregion = us-east-1\n\n\
         [profile admin]\nrole_arn = arn:aws:iam::444455556666:role/Admin\nsource_profile = dev\n"
    ));
    env.write_config_toml("[[profiles]]\nsource = \"admin\"\n");
    signed_in(&env, &fake, 2 * MIN);
    (fake, env)
}

#[test]
fn a_login_session_is_the_source_of_a_role_chain() {
    let (fake, env) = a_role_chain_on_a_signed_in_session();
    sync(&env);
    let issued = fake.login_issued();
    assert_eq!(issued.len(), 1);
    let calls = fake.assume_role_calls();
    assert_eq!(calls.len(), 1);
    // Signed with the session's renewed credentials.
    assert_eq!(
        calls[0].signed_by.as_deref(),
        Some(issued[0].credentials.access_key_id.as_str())
    );
    let text = env.read_credentials();
    let (creds, _) = ini_edit::read_managed(&text, "admin").expect("[admin] written");
    assert_eq!(
        creds.access_key_id.expose_secret(),
        calls[0].served.access_key_id
    );
    assert!(text.contains("aws_account_id = 444455556666"), "{text}");
    assert_eq!(
        read_entry(&env)["refreshToken"],
        issued[0].refresh_issued.as_str()
    );
}

/// The engine as the daemon runs it, on a `ManualClock` (the fake on the same time): 90-second
/// session credentials make the floor (a renewal a minute) the schedule, without waiting it out.
#[test]
fn the_daemon_renews_a_session_that_only_a_role_chain_uses_on_its_own_schedule() {
    let (fake, env) = a_role_chain_on_a_signed_in_session();
    // 90-second session credentials, one-hour role credentials.
    fake.set_login_expires_in(90);
    let clock = support::ManualClock::new(SystemTime::now());
    let toml = "[[profiles]]\nsource = \"admin\"\n";
    let mut engine = support::in_process_engine(&env, &fake, toml, Arc::new(clock.clone()));
    engine.start();
    let rt = support::runtime();
    let end = clock.now() + Duration::from_secs(150);
    while clock.now() < end && fake.login_issued().len() < 2 {
        fake.set_clock_to(clock.now());
        rt.block_on(engine.round(1));
        let wait = credsync::schedule::sleep_for(clock.now(), engine.next_deadline());
        clock.advance(wait.max(Duration::from_millis(5)));
    }
    let issued = fake.login_issued();
    assert!(issued.len() >= 2, "renewals in 150 s: {}", issued.len());
    // The role was not assumed again: the session is renewed for its own sake, so that the
    // entry never reaches botocore's 5-minute threshold for the AWS CLI on the host.
    assert_eq!(fake.assume_role_calls().len(), 1);
    assert_eq!(
        issued[1].refresh_used,
        Some(issued[0].refresh_issued.clone())
    );
    assert_eq!(
        read_entry(&env)["refreshToken"],
        issued[1].refresh_issued.as_str()
    );
}

#[test]
fn a_short_min_remaining_is_raised_for_a_login_session_and_said_once() {
    let fake = FakeAws::new();
    // Two minutes would put the renewal inside botocore's 5-minute threshold.
    let env = setup(&fake, "[refresh]\nmin_remaining = \"2m\"\n");
    signed_in(&env, &fake, 2 * MIN);
    let daemon = env.daemon(std::iter::empty::<&str>());
    let mut profile = Value::Null;
    daemon.expect_within(
        "the session renewed and the profile fresh",
        || {
            let o = env.run(["status", "--json"]);
            let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
            profile = v["profiles"][0].clone();
            profile["state"] == "fresh" && !fake.login_issued().is_empty()
        },
        WAIT,
    );
    let time = |k: &str| parse_botocore_time(profile[k].as_str().expect(k));
    let left = time("expires_at")
        .duration_since(time("next_refresh"))
        .expect("the next renewal before the expiry");
    // The next renewal leaves 7 minutes (5 of botocore's, 2 of margin) or more.
    assert!(
        left >= Duration::from_secs(7 * 60),
        "renewed with {left:?} left: {profile}"
    );
    let logs = daemon.logs();
    assert_eq!(
        logs.matches("min_remaining = 2m is raised to 7m for aws login sessions")
            .count(),
        1,
        "{logs}"
    );
}
