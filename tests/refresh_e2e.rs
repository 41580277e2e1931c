//! The refresh engine end to end with the real binary: `credsync sync` and `credsync daemon` in a
//! temp HOME against the fake AWS (and moto's STS), checked through the files they leave behind,
//! what the fake was asked, `status --json`, and botocore reading the results.
//!
//! 1. One SSO-OIDC token refresh for five profiles of one sso-session; botocore's own token
//!    loader reads the refreshed (and rotated) token; the daemon refreshes a token that falls
//!    due while no profile does.
//! 2. SSO -> role A -> role B (fake and moto), a static-keys source (moto), a `source_profile`
//!    loop, an `mfa_serial` profile.
//! 3. `login_required` recovers within 2 s of a login, with no call while logged out.
//! 4. A user editing the credentials file while the daemon rewrites it loses nothing; a deleted
//!    managed section comes back; a profile dropped from the config loses its section.

use crate::support;

use std::fs;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant, SystemTime};

use credsync::ini_edit;
use credsync::secret::ExposeSecret;
use support::fake_aws::{FakeAws, ServedCreds};
use support::python::{self, MotoServer};
use support::{TestEnv, botocore_token_json, wait_for};

const MIN: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

const SSO_SESSION: &str = "[sso-session corp]\nsso_start_url = https://fake.awsapps.com/start\n\
sso_region = us-east-1\n\n";
const OLD_ACCESS: &str = "fake-access-old";
const REFRESH: &str = "fake-refresh-0";
const CLIENT_ID: &str = "fake-client-id";
const CLIENT_SECRET: &str = "fake-client-secret-0";
const ROLE_A: &str = "arn:aws:iam::222222222222:role/A";
const ROLE_B: &str = "arn:aws:iam::333333333333:role/B";
const ROLE_R: &str = "arn:aws:iam::444444444444:role/R";

/// An AWS config with sso-session `corp` and SSO profiles `p0..pn`, one account each
/// (`100000000000 + i`), role `Dev`.
fn sso_config(n: usize) -> String {
    let mut s = String::from(SSO_SESSION);
    for i in 0..n {
        s += &format!(
            "[profile p{i}]\nsso_session = corp\nsso_account_id = {}\nsso_role_name = Dev\n\n",
            account(i)
        );
    }
    s
}

fn account(i: usize) -> String {
    format!("{:012}", 100_000_000_000 + i)
}

/// `[[profiles]]` entries for `sources` (target = source).
fn profiles_toml(sources: &[&str]) -> String {
    sources
        .iter()
        .map(|s| format!("[[profiles]]\nsource = \"{s}\"\n\n"))
        .collect()
}

/// A valid (8 h) token for sso-session `corp`, known to the fake, in the cache.
fn logged_in(env: &TestEnv, fake: &FakeAws, token: &str) {
    fake.add_token(token);
    env.write_token_cache(
        "corp",
        &botocore_token_json(token, SystemTime::now() + 8 * HOUR, None),
    );
}

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `status --json` of the running daemon (`Null` while it does not answer yet).
fn json_status(env: &TestEnv) -> serde_json::Value {
    let o = env.run(["status", "--json"]);
    serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null)
}

/// The status entry of the profile whose target is `target`.
fn profile_status(v: &serde_json::Value, target: &str) -> serde_json::Value {
    v["profiles"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["target"] == target))
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

/// Whether section `target` of `text` is a managed section holding exactly `served`.
fn holds(text: &str, target: &str, served: &ServedCreds) -> bool {
    ini_edit::read_managed(text, target).is_some_and(|(c, _)| {
        c.access_key_id.expose_secret() == served.access_key_id
            && c.secret_access_key.expose_secret() == served.secret_access_key
            && c.session_token
                .as_ref()
                .is_some_and(|t| t.expose_secret() == served.session_token)
    })
}

/// An editor's save: the whole new text into a temp file beside `path`, renamed over it.
fn editor_save(path: &Path, text: &str) {
    let tmp = path.with_file_name(".credentials.editor.swp");
    fs::write(&tmp, text).expect("write the editor's temp file");
    fs::rename(&tmp, path).expect("rename the editor's temp file over the credentials file");
}

/// botocore's `SSOTokenLoader` over `HOME/.aws/sso/cache`, as its SSO token provider builds it:
/// `(accessToken, refreshToken)`.
fn botocore_load_token(env: &TestEnv) -> Option<(String, String)> {
    python::python()?;
    let script = r#"
import json, os
from botocore.utils import SSOTokenLoader, JSONFileCache
cache = JSONFileCache(os.path.expanduser(os.path.join("~", ".aws", "sso", "cache")))
t = SSOTokenLoader(cache=cache)("https://fake.awsapps.com/start", session_name="corp")
print(json.dumps({"accessToken": t["accessToken"], "refreshToken": t.get("refreshToken")}))
"#;
    let home = env.home().to_str().expect("UTF-8 HOME");
    let got: serde_json::Value =
        serde_json::from_str(python::run_python_ok(script, &[("HOME", home)]).trim())
            .expect("the loader printed JSON");
    let s = |k: &str| got[k].as_str().unwrap_or_default().to_owned();
    Some((s("accessToken"), s("refreshToken")))
}

// ---- 1. token refresh ---------------------------------------------------------------------

#[test]
fn five_profiles_of_one_session_share_one_token_refresh_and_botocore_loads_it() {
    let fake = FakeAws::new();
    let env = TestEnv::with_fake(&fake);
    env.write_aws_config(&sso_config(5));
    env.write_config_toml(&profiles_toml(&["p0", "p1", "p2", "p3", "p4"]));
    // 10 minutes left: inside the default token_refresh_before (30 min). The old access token
    // is unknown to the portal, so a profile that used it would fail.
    env.write_token_cache(
        "corp",
        &botocore_token_json(
            OLD_ACCESS,
            SystemTime::now() + 10 * MIN,
            Some((REFRESH, CLIENT_ID, CLIENT_SECRET)),
        ),
    );
    fake.add_refresh_token(REFRESH, CLIENT_ID);
    fake.set_rotate_refresh_tokens(true);

    let o = env.run(["sync"]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert_eq!(fake.count("CreateToken"), 1, "one refresh for the session");
    let issued = fake.issued_tokens();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].refresh_token_used, REFRESH);
    let new_access = issued[0].access_token.clone();
    let rotated = issued[0]
        .new_refresh_token
        .clone()
        .expect("the fake rotates refresh tokens");

    let calls = fake.requests_for("GetRoleCredentials");
    assert_eq!(calls.len(), 5, "one call per profile");
    for c in &calls {
        assert_eq!(
            c.header("x-amz-sso_bearer_token"),
            Some(new_access.as_str()),
            "every profile used the refreshed token"
        );
    }
    let text = env.read_credentials();
    for i in 0..5 {
        let served = fake.last_credentials(&account(i), "Dev").expect("served");
        assert!(holds(&text, &format!("p{i}"), &served), "p{i}:\n{text}");
    }

    // The cache file: the new token and the rotated refresh token, in a file botocore reads.
    let cache = env.read_token_cache("corp");
    assert_eq!(cache["accessToken"], new_access.as_str());
    assert_eq!(cache["refreshToken"], rotated.as_str());
    assert_eq!(cache["clientId"], CLIENT_ID);
    assert!(fake.is_refresh_token_valid(&rotated));
    match botocore_load_token(&env) {
        Some((access, refresh)) => {
            assert_eq!(access, new_access);
            assert_eq!(refresh, rotated);
        }
        None => python::skip("five_profiles_of_one_session_share_one_token_refresh"),
    }

    // A second sync finds the token fresh: no second refresh.
    let o = env.run(["sync"]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert_eq!(fake.count("CreateToken"), 1);
}

#[test]
fn the_daemon_refreshes_a_token_that_falls_due_while_no_profile_does() {
    let fake = FakeAws::new();
    let env = TestEnv::with_fake(&fake);
    env.write_aws_config(&sso_config(2));
    // Accepted with a warning (it is within botocore's own 15-minute window).
    env.write_config_toml(&format!(
        "[refresh]\ntoken_refresh_before = \"30s\"\n\n{}",
        profiles_toml(&["p0", "p1"])
    ));
    // 40 s left: not due at start (even on a slow machine), due about 10 s later. Credentials
    // last 1 h, so no profile falls due meanwhile.
    fake.add_token(OLD_ACCESS);
    fake.add_refresh_token(REFRESH, CLIENT_ID);
    env.write_token_cache(
        "corp",
        &botocore_token_json(
            OLD_ACCESS,
            SystemTime::now() + Duration::from_secs(40),
            Some((REFRESH, CLIENT_ID, CLIENT_SECRET)),
        ),
    );
    let daemon = env.daemon(Vec::<String>::new());
    daemon.expect_within(
        "the first round",
        || fake.count("GetRoleCredentials") == 2,
        Duration::from_secs(15),
    );
    assert_eq!(fake.count("CreateToken"), 0, "not due at start");
    // The fake counts a request when it arrives and records the token it issues when it
    // answers: both must be seen.
    daemon.expect_within(
        "the token refresh",
        || fake.count("CreateToken") == 1 && fake.issued_tokens().len() == 1,
        Duration::from_secs(20),
    );
    let new_access = fake.issued_tokens()[0].access_token.clone();
    daemon.expect_within(
        "the refreshed token in the cache",
        || fs::read_to_string(env.token_cache_path("corp")).is_ok_and(|t| t.contains(&new_access)),
        Duration::from_secs(5),
    );
    // No profile fell due: the refresh was the token's own, and it is not repeated.
    assert!(
        !wait_for(
            || fake.count("GetRoleCredentials") != 2 || fake.count("CreateToken") != 1,
            Duration::from_secs(2)
        ),
        "unexpected calls after the token refresh:\n{}",
        daemon.logs()
    );
    if let Some((access, refresh)) = botocore_load_token(&env) {
        assert_eq!(access, new_access);
        assert_eq!(refresh, REFRESH, "no rotation: the refresh token is kept");
    }
}

// ---- 2. role chains -----------------------------------------------------------------------

/// SSO profile `sso-prof` -> `a` (role A, defaults) -> `b` (role B with session name, external
/// id and duration).
fn chain_config() -> String {
    format!(
        "{SSO_SESSION}[profile sso-prof]\nsso_session = corp\nsso_account_id = 111111111111\n\
         sso_role_name = Dev\n\n[profile a]\nrole_arn = {ROLE_A}\nsource_profile = sso-prof\n\n\
         [profile b]\nrole_arn = {ROLE_B}\nsource_profile = a\nexternal_id = ext-b-42\n\
         duration_seconds = 1800\nrole_session_name = alice-b\n"
    )
}

#[test]
fn sync_walks_an_sso_chain_through_two_roles_against_the_fake() {
    let fake = FakeAws::new();
    let env = TestEnv::with_fake(&fake);
    env.write_aws_config(&chain_config());
    env.write_config_toml(&profiles_toml(&["b"]));
    logged_in(&env, &fake, "tok-corp");

    let o = env.run(["sync"]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(out(&o).contains("b -> [b]: fresh"), "{}", out(&o));
    let sso = fake
        .last_credentials("111111111111", "Dev")
        .expect("the SSO base was fetched");
    let calls = fake.assume_role_calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    let (a, b) = (&calls[0], &calls[1]);
    assert_eq!(a.role_arn, ROLE_A);
    assert_eq!(a.role_session_name, "credsync-a");
    assert_eq!(a.external_id, None);
    assert_eq!(a.duration_seconds, None);
    assert_eq!(a.signed_by.as_deref(), Some(sso.access_key_id.as_str()));
    assert_eq!(b.role_arn, ROLE_B);
    assert_eq!(b.role_session_name, "alice-b");
    assert_eq!(b.external_id.as_deref(), Some("ext-b-42"));
    assert_eq!(b.duration_seconds, Some(1800));
    assert_eq!(
        b.signed_by.as_deref(),
        Some(a.served.access_key_id.as_str())
    );
    let served_b = fake.last_assumed(ROLE_B).expect("B was assumed");
    let text = env.read_credentials();
    assert!(holds(&text, "b", &served_b), "{text}");
    let (_, expires) = ini_edit::read_managed(&text, "b").expect("managed [b]");
    assert_eq!(
        expires
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
        served_b
            .expiration()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    );
}

/// boto3 with the credentials file only (an empty config, as a tool that reads just the file):
/// who moto says `profile` is (GetCallerIdentity), and how botocore found the keys.
fn moto_caller(env: &TestEnv, moto: &MotoServer, profile: &str) -> (String, String) {
    let script = r#"
import json, sys
import boto3
s = boto3.Session(profile_name=sys.argv[1])
creds = s.get_credentials()
arn = s.client("sts", region_name="us-east-1", endpoint_url=sys.argv[2]).get_caller_identity()["Arn"]
print(json.dumps({"arn": arn, "method": creds.method}))
"#;
    let empty = env.root().join("empty-config");
    fs::write(&empty, "").expect("write an empty config");
    let home = env.home().to_str().expect("UTF-8 HOME");
    let mut cmd = python::python_command(
        script,
        &[
            ("HOME", home),
            ("AWS_CONFIG_FILE", empty.to_str().expect("UTF-8 path")),
        ],
    );
    cmd.args([profile, &moto.url()]);
    let o = cmd.output().expect("run python");
    assert!(o.status.success(), "boto3 failed: {}", out(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON from boto3");
    (
        v["arn"].as_str().unwrap_or_default().to_owned(),
        v["method"].as_str().unwrap_or_default().to_owned(),
    )
}

#[test]
fn chains_from_sso_and_from_static_keys_work_against_motos_sts() {
    let Some(moto) = MotoServer::start() else {
        return python::skip("chains_from_sso_and_from_static_keys_work_against_motos_sts");
    };

    // SSO -> A -> B: the portal is the fake's, STS is moto's.
    let fake = FakeAws::new();
    let mut env = TestEnv::with_fake(&fake);
    env.env("AWS_ENDPOINT_URL_SSO", fake.url())
        .env("AWS_ENDPOINT_URL_STS", moto.url());
    env.write_aws_config(&chain_config());
    env.write_config_toml(&profiles_toml(&["b"]));
    logged_in(&env, &fake, "tok-corp");
    let o = env.run(["sync"]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert_eq!(fake.count("GetRoleCredentials"), 1);
    assert_eq!(fake.count("AssumeRole"), 0, "STS went to moto");
    let (arn, method) = moto_caller(&env, &moto, "b");
    assert_eq!(method, "shared-credentials-file");
    assert_eq!(arn, "arn:aws:sts::333333333333:assumed-role/B/alice-b");

    // Static keys in the credentials file -> R.
    let mut env = TestEnv::new();
    env.env("AWS_ENDPOINT_URL_STS", moto.url());
    env.write_credentials(
        "[src]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n\
         aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
    );
    env.write_aws_config(&format!(
        "[profile r]\nrole_arn = {ROLE_R}\nsource_profile = src\nregion = us-east-1\n"
    ));
    env.write_config_toml(&profiles_toml(&["r"]));
    let o = env.run(["sync"]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    let text = env.read_credentials();
    assert!(
        text.contains("[src]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE"),
        "the user's keys stay:\n{text}"
    );
    assert!(ini_edit::read_managed(&text, "r").is_some(), "{text}");
    let (arn, method) = moto_caller(&env, &moto, "r");
    assert_eq!(method, "shared-credentials-file");
    assert_eq!(arn, "arn:aws:sts::444444444444:assumed-role/R/credsync-r");
}

#[test]
fn a_source_profile_loop_and_an_mfa_profile_are_reported_clearly() {
    let fake = FakeAws::new();
    let env = TestEnv::with_fake(&fake);
    env.write_aws_config(&format!(
        "{SSO_SESSION}[profile dev]\nsso_session = corp\nsso_account_id = 111111111111\n\
         sso_role_name = Dev\n\n\
         [profile x]\nrole_arn = {ROLE_A}\nsource_profile = y\n\n\
         [profile y]\nrole_arn = {ROLE_B}\nsource_profile = x\n\n\
         [profile m]\nrole_arn = {ROLE_R}\nsource_profile = dev\n\
         mfa_serial = arn:aws:iam::111111111111:mfa/me\n"
    ));
    env.write_config_toml(&profiles_toml(&["dev", "x", "m"]));
    logged_in(&env, &fake, "tok-corp");

    let o = env.run(["sync"]);
    let text = out(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains("dev -> [dev]: fresh"), "{text}");
    let x = text
        .lines()
        .find(|l| l.starts_with("x -> [x]: "))
        .unwrap_or_else(|| panic!("no line for x: {text}"));
    assert!(x.contains("source_profile loop: x -> y -> x"), "{x}");
    let m = text
        .lines()
        .find(|l| l.starts_with("m -> [m]: "))
        .unwrap_or_else(|| panic!("no line for m: {text}"));
    assert!(m.contains("needs an interactive MFA code"), "{m}");
    assert!(m.contains("mfa_serial"), "{m}");
    assert_eq!(fake.count("AssumeRole"), 0, "no STS call for either");

    // The daemon's status says the same, and the daemon keeps serving the good profile.
    let daemon = env.daemon(Vec::<String>::new());
    daemon.expect_within(
        "dev fresh in status",
        || profile_status(&json_status(&env), "dev")["state"] == "fresh",
        Duration::from_secs(15),
    );
    let v = json_status(&env);
    let m = profile_status(&v, "m");
    assert_eq!(m["state"], "error", "{m}");
    let err = m["last_error"].as_str().unwrap_or_default();
    assert!(err.contains("needs an interactive MFA code"), "{m}");
    let x = profile_status(&v, "x");
    assert_eq!(x["state"], "error", "{x}");
    assert!(
        x["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("source_profile loop: x -> y -> x"),
        "{x}"
    );
    assert_eq!(fake.count("AssumeRole"), 0);
}

// ---- 3. login_required -> recovery --------------------------------------------------------

#[test]
fn login_required_recovers_within_two_seconds_of_a_login_without_a_restart() {
    let fake = FakeAws::new();
    let env = TestEnv::with_fake(&fake);
    env.write_aws_config(&sso_config(1));
    env.write_config_toml(&profiles_toml(&["p0"]));
    env.write_token_cache(
        "corp",
        &botocore_token_json("tok-expired", SystemTime::now() - HOUR, None),
    );
    let mut daemon = env.daemon(Vec::<String>::new());
    daemon.expect_within(
        "login_required in status",
        || profile_status(&json_status(&env), "p0")["state"] == "login_required",
        Duration::from_secs(15),
    );
    let v = json_status(&env);
    assert!(
        v["sso_sessions"][0]["login_command"]
            .as_str()
            .is_some_and(|c| c.contains("credsync login --sso-session")),
        "{v}"
    );
    // Logged out: no call to the portal.
    assert!(
        !wait_for(
            || fake.count("GetRoleCredentials") > 0,
            Duration::from_secs(2)
        ),
        "a call while login is required:\n{}",
        daemon.logs()
    );

    // `aws sso login`: the token becomes valid at the portal, and the CLI writes the cache file
    // in place.
    fake.add_token("tok-fresh");
    let path = env.token_cache_path("corp");
    let written = Instant::now();
    fs::write(
        &path,
        botocore_token_json("tok-fresh", SystemTime::now() + 8 * HOUR, None),
    )
    .expect("write the token cache");
    let fresh = wait_for(
        || {
            fake.last_credentials(&account(0), "Dev")
                .is_some_and(|s| holds(&env.read_credentials(), "p0", &s))
        },
        Duration::from_secs(5),
    );
    let took = written.elapsed();
    assert!(fresh, "no fresh credentials:\n{}", daemon.logs());
    assert!(
        took <= Duration::from_secs(2),
        "fresh credentials took {took:?}"
    );
    assert!(daemon.is_running(), "no restart");
    assert_eq!(
        fake.requests_for("GetRoleCredentials")[0].header("x-amz-sso_bearer_token"),
        Some("tok-fresh")
    );
    daemon.expect_within(
        "fresh in status",
        || profile_status(&json_status(&env), "p0")["state"] == "fresh",
        Duration::from_secs(5),
    );
}

// ---- 4. the credentials file while the daemon runs ----------------------------------------

/// The user's edit number `i` of `text`: `note = v<i>` in `[user-0]`, and every tenth edit a
/// new section `[user-<i>]`.
fn user_edit(text: &str, i: usize) -> String {
    let mut lines: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with("note = ") {
                format!("note = v{i}")
            } else {
                l.to_owned()
            }
        })
        .collect();
    if i.is_multiple_of(10) {
        lines.push(String::new());
        lines.push(format!("[user-{i}]"));
        lines.push(format!("aws_access_key_id = AKIAUSER{i:08}"));
        lines.push(format!("aws_secret_access_key = user-secret-{i}"));
    }
    lines.join("\n") + "\n"
}

#[test]
fn user_edits_made_while_the_daemon_rewrites_are_never_lost() {
    let fake = FakeAws::new();
    let env = TestEnv::with_fake(&fake);
    env.write_aws_config(&sso_config(1));
    // The daemon never refreshes on its own sooner than a minute after the last time, so the
    // rewrites during the edits are asked for with `credsync refresh`, as a user would.
    env.write_config_toml(&profiles_toml(&["p0"]));
    logged_in(&env, &fake, "tok-corp");
    let path = env.write_credentials(
        "[user-0]\naws_access_key_id = AKIAUSER00000000\naws_secret_access_key = user-secret-0\nnote = v0\n",
    );
    let daemon = env.daemon(Vec::<String>::new());
    daemon.expect_within(
        "the first write",
        || ini_edit::read_managed(&env.read_credentials(), "p0").is_some(),
        Duration::from_secs(15),
    );

    let calls_before = fake.count("GetRoleCredentials");
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < Duration::from_secs(8) {
        i += 1;
        let current = fs::read_to_string(&path).expect("read the credentials file");
        editor_save(&path, &user_edit(&current, i));
        if i % 200 == 0 {
            let out = env.run(["refresh"]);
            assert!(out.status.success(), "{}", daemon.logs());
        }
        // Much faster than a person (so saves often land inside the daemon's own
        // read-modify-write), but not a busy loop.
        std::thread::sleep(Duration::from_millis(5));
    }
    let rewrites = fake.count("GetRoleCredentials") - calls_before;
    assert!(
        rewrites >= 3,
        "the daemon refreshed only {rewrites} time(s) during the edits:\n{}",
        daemon.logs()
    );

    // The managed section settles on the latest credentials (an editor save may have put back
    // an older copy; the daemon writes it again).
    daemon.expect_within(
        "the managed section holds the latest credentials",
        || {
            fake.last_credentials(&account(0), "Dev")
                .is_some_and(|s| holds(&env.read_credentials(), "p0", &s))
        },
        Duration::from_secs(5),
    );
    let text = env.read_credentials();
    let mut lost = Vec::new();
    for n in (0..=i).step_by(10) {
        if !text.contains(&format!("[user-{n}]\naws_access_key_id = AKIAUSER{n:08}\n")) {
            lost.push(n);
        }
    }
    assert!(
        lost.is_empty(),
        "user sections lost: {lost:?} of 0..={i} step 10"
    );
    assert_eq!(text.matches("note = ").count(), 1, "one note line:\n{text}");
    assert!(
        text.contains(&format!("note = v{i}\n")),
        "the last value of [user-0] (v{i}) is lost"
    );
    if python::python().is_some() {
        let (akid, _, _) =
            python::botocore_read_credentials(env.home(), &format!("user-{}", i / 10 * 10), &[]);
        assert_eq!(akid, format!("AKIAUSER{:08}", i / 10 * 10));
        let served = fake.last_credentials(&account(0), "Dev").expect("served");
        let v = python::botocore_read_credentials_json(
            env.home(),
            "p0",
            &[("AWS_CONFIG_FILE", "/dev/null")],
        );
        assert_eq!(v["method"], "shared-credentials-file");
        // The daemon may have rewritten since; any credentials it served are fine, as long as
        // botocore parses the file.
        assert!(
            v["akid"]
                .as_str()
                .is_some_and(|a| a.starts_with("ASIAFAKE")),
            "{v} (latest {})",
            served.access_key_id
        );
    } else {
        python::skip("user_edits_made_while_the_daemon_rewrites_are_never_lost (botocore part)");
    }
}

/// `text` without section `name`: the marker line above its header, the header, and every
/// line up to the next section's marker or header.
fn delete_section(text: &str, name: &str) -> String {
    let header = format!("[{name}]");
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == header)
        .unwrap_or_else(|| panic!("no {header} in:\n{text}"));
    let from = if at > 0 && lines[at - 1].starts_with(ini_edit::MARKER_PREFIX) {
        at - 1
    } else {
        at
    };
    let to = (at + 1..lines.len())
        .find(|&i| lines[i].starts_with('[') || lines[i].starts_with(ini_edit::MARKER_PREFIX))
        .unwrap_or(lines.len());
    let mut kept: Vec<&str> = lines[..from].to_vec();
    kept.extend_from_slice(&lines[to..]);
    kept.join("\n") + "\n"
}

#[test]
fn a_deleted_managed_section_comes_back_and_a_dropped_profile_loses_its_section() {
    let fake = FakeAws::new();
    let env = TestEnv::with_fake(&fake);
    env.write_aws_config(&sso_config(2));
    env.write_config_toml(&profiles_toml(&["p0", "p1"]));
    logged_in(&env, &fake, "tok-corp");
    let path = env
        .write_credentials("[mine]\naws_access_key_id = AKIAMINE\naws_secret_access_key = mine\n");
    let daemon = env.daemon(Vec::<String>::new());
    daemon.expect_within(
        "both sections written",
        || {
            let t = env.read_credentials();
            ["p0", "p1"].iter().zip([0, 1]).all(|(p, i)| {
                fake.last_credentials(&account(i), "Dev")
                    .is_some_and(|s| holds(&t, p, &s))
            })
        },
        Duration::from_secs(15),
    );
    let calls = fake.count("GetRoleCredentials");
    let p0 = fake.last_credentials(&account(0), "Dev").expect("served");

    // The user deletes [p0]: its marker line, header and body, up to the next section.
    let edited = delete_section(&env.read_credentials(), "p0");
    assert!(ini_edit::read_managed(&edited, "p0").is_none(), "{edited}");
    editor_save(&path, &edited);
    daemon.expect_within(
        "[p0] back",
        || holds(&env.read_credentials(), "p0", &p0),
        Duration::from_secs(5),
    );
    assert_eq!(
        fake.count("GetRoleCredentials"),
        calls,
        "written back from memory, no new call"
    );

    // p1 leaves the config: its section goes, everything else stays.
    env.write_config_toml(&profiles_toml(&["p0"]));
    daemon.expect_within(
        "[p1] removed",
        || !ini_edit::managed_names(&env.read_credentials()).contains(&"p1".to_owned()),
        Duration::from_secs(5),
    );
    let text = env.read_credentials();
    assert!(!text.contains("[p1]"), "{text}");
    assert!(holds(&text, "p0", &p0), "{text}");
    assert!(
        text.contains("[mine]\naws_access_key_id = AKIAMINE\naws_secret_access_key = mine\n"),
        "{text}"
    );
    daemon.expect_within(
        "status shows one profile",
        || {
            json_status(&env)["profiles"]
                .as_array()
                .is_some_and(|p| p.len() == 1)
        },
        Duration::from_secs(5),
    );
}
