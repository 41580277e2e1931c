//! `credsync sync` and `credsync daemon` end to end for SSO profiles: the real binary, a temp
//! HOME, the fake SSO portal, and botocore reading what was written. One call per profile, the
//! user's sections kept byte for byte, a session's token shared, an expired or refused token
//! reported as a login to do, a half-written token file read again, sections credsync did not
//! create left alone, file modes and symlinks kept, bad input refused with the file and line,
//! and the daemon rewriting short-lived credentials before they expire.

use crate::support;

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use credsync::ini_edit;
use credsync::secret::ExposeSecret;
use support::fake_aws::FakeAws;
use support::{TestEnv, botocore_token_json};

const HOUR: Duration = Duration::from_secs(3600);

/// An AWS config with `n` profiles `p0..pn` in sso-session `corp`, one account each.
fn sso_config(n: usize) -> String {
    let mut s = String::from(
        "[sso-session corp]\nsso_start_url = https://fake.awsapps.com/start\nsso_region = us-east-1\n\n",
    );
    for i in 0..n {
        s += &format!(
            "[profile p{i}]\nsso_session = corp\nsso_account_id = {:012}\nsso_role_name = Dev\nregion = eu-west-1\n\n",
            100_000 + i
        );
    }
    s
}

fn config_toml(profiles: &[(&str, &str)]) -> String {
    profiles
        .iter()
        .map(|(s, t)| format!("[[profiles]]\nsource = \"{s}\"\ntarget = \"{t}\"\n"))
        .collect()
}

/// A logged-in sso-session `corp`: a valid token in the cache and known to the fake.
fn logged_in(env: &TestEnv, fake: &FakeAws, token: &str) {
    fake.add_token(token);
    env.write_token_cache(
        "corp",
        &botocore_token_json(token, SystemTime::now() + 8 * HOUR, None),
    );
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts that section `target` of the credentials file holds what the fake served last for
/// `account`, and returns the file's text.
fn assert_written(env: &TestEnv, fake: &FakeAws, target: &str, account: &str) -> String {
    let text = env.read_credentials();
    let served = fake
        .last_credentials(account, "Dev")
        .expect("the fake served credentials");
    let (creds, expires) = ini_edit::read_managed(&text, target)
        .unwrap_or_else(|| panic!("no managed section [{target}] in:\n{text}"));
    assert_eq!(creds.access_key_id.expose_secret(), served.access_key_id);
    assert_eq!(
        creds.secret_access_key.expose_secret(),
        served.secret_access_key
    );
    assert_eq!(
        creds
            .session_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned()),
        Some(served.session_token.clone())
    );
    let diff = expires
        .duration_since(served.expiration())
        .unwrap_or_else(|e| e.duration());
    assert!(
        diff < Duration::from_secs(1),
        "marker expiry is the served expiry"
    );
    text
}

#[test]
fn sync_writes_the_right_keys_for_1_2_and_50_profiles() {
    for n in [1usize, 2, 50] {
        let fake = FakeAws::new();
        let env = TestEnv::with_fake(&fake);
        env.write_aws_config(&sso_config(n));
        let names: Vec<(String, String)> =
            (0..n).map(|i| (format!("p{i}"), format!("t{i}"))).collect();
        let pairs: Vec<(&str, &str)> = names
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        env.write_config_toml(&config_toml(&pairs));
        logged_in(&env, &fake, "tok-corp");

        let out = env.run(["sync"]);
        assert!(
            out.status.success(),
            "n={n}: {}\n{}",
            stdout(&out),
            stderr(&out)
        );
        assert_eq!(fake.count("GetRoleCredentials"), n, "one call per profile");
        for i in 0..n {
            assert_written(
                &env,
                &fake,
                &format!("t{i}"),
                &format!("{:012}", 100_000 + i),
            );
            assert!(
                stdout(&out).contains(&format!("p{i} -> [t{i}]: fresh, expires ")),
                "{}",
                stdout(&out)
            );
        }
        // Every request carried the session's token and the right role and account.
        let mut accounts: Vec<String> = fake
            .requests_for("GetRoleCredentials")
            .iter()
            .map(|r| {
                assert_eq!(r.header("x-amz-sso_bearer_token"), Some("tok-corp"));
                assert_eq!(r.query_param("role_name"), Some("Dev"));
                r.query_param("account_id")
                    .expect("account_id in the query")
                    .to_owned()
            })
            .collect();
        accounts.sort();
        let want: Vec<String> = (0..n).map(|i| format!("{:012}", 100_000 + i)).collect();
        assert_eq!(accounts, want);
        assert!(fake.max_in_flight() <= 4, "max_concurrency defaults to 4");
    }
}

#[test]
fn botocore_reads_what_sync_wrote_next_to_the_users_own_sections() {
    let fake = FakeAws::new();
    let env = TestEnv::with_fake(&fake);
    env.write_aws_config(&sso_config(1));
    env.write_config_toml(&config_toml(&[("p0", "dev")]));
    let user = "# my own keys, keep them\r\n[personal]\r\naws_access_key_id = AKIAUSEROWNKEY00000\r\naws_secret_access_key = user-own-secret\r\n\r\n; other tool\r\n[other]\r\nregion = us-west-2";
    env.write_credentials(user);
    logged_in(&env, &fake, "tok-corp");

    let out = env.run(["sync"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let text = assert_written(&env, &fake, "dev", "000000100000");
    assert!(
        text.starts_with(user),
        "the user's bytes come first, unchanged:\n{text:?}"
    );
    assert!(
        text.contains("\r\n[dev]\r\n"),
        "CRLF file stays CRLF:\n{text:?}"
    );

    let Some(_) = support::python::python() else {
        return support::python::skip("botocore_reads_what_sync_wrote");
    };
    let served = fake
        .last_credentials("000000100000", "Dev")
        .expect("served");
    let (akid, secret, token) = support::python::botocore_read_credentials(env.home(), "dev", &[]);
    assert_eq!(
        (akid, secret, token),
        (
            served.access_key_id,
            served.secret_access_key,
            served.session_token
        )
    );
    let (akid, secret, _) = support::python::botocore_read_credentials(env.home(), "personal", &[]);
    assert_eq!(
        (akid.as_str(), secret.as_str()),
        ("AKIAUSEROWNKEY00000", "user-own-secret")
    );
}

#[test]
fn two_profiles_of_one_session_share_its_token_and_legacy_profiles_work_too() {
    let fake = FakeAws::new();
    let env = TestEnv::with_fake(&fake);
    let legacy_url = "https://legacy.awsapps.com/start";
    env.write_aws_config(&format!(
        "{}[profile old]\nsso_start_url = {legacy_url}\nsso_region = us-east-1\nsso_account_id = 222222222222\nsso_role_name = Dev\n",
        sso_config(2)
    ));
    env.write_config_toml(&config_toml(&[("p0", "p0"), ("p1", "p1"), ("old", "old")]));
    logged_in(&env, &fake, "tok-corp");
    fake.add_token("tok-legacy");
    // A legacy profile's cache file is named after the start URL.
    env.write_token_cache(
        legacy_url,
        &botocore_token_json("tok-legacy", SystemTime::now() + HOUR, None),
    );

    let out = env.run(["sync"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let bearer = |account: &str| -> Vec<String> {
        fake.requests_for("GetRoleCredentials")
            .iter()
            .filter(|r| r.query_param("account_id") == Some(account))
            .map(|r| {
                r.header("x-amz-sso_bearer_token")
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    };
    assert_eq!(bearer("000000100000"), ["tok-corp"]);
    assert_eq!(bearer("000000100001"), ["tok-corp"]);
    assert_eq!(bearer("222222222222"), ["tok-legacy"]);
    assert_written(&env, &fake, "old", "222222222222");
}

#[test]
fn an_expired_token_is_login_required_exit_1_and_the_file_is_untouched() {
    let fake = FakeAws::new();
    let env = TestEnv::with_fake(&fake);
    env.write_aws_config(&sso_config(1));
    env.write_config_toml(&config_toml(&[("p0", "p0")]));
    let before = "[keep]\naws_access_key_id = AKIAKEEP\n";
    env.write_credentials(before);
    env.write_token_cache(
        "corp",
        &botocore_token_json("tok-old", SystemTime::now() - HOUR, None),
    );
    let mtime = fs::metadata(env.credentials_path()).unwrap().mtime_nsec();

    let out = env.run(["sync"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let said = stdout(&out);
    assert!(said.contains("p0 -> [p0]: login_required"), "{said}");
    assert!(
        said.contains("credsync login --sso-session corp"),
        "names the command: {said}"
    );
    assert_eq!(env.read_credentials(), before);
    assert_eq!(
        fs::metadata(env.credentials_path()).unwrap().mtime_nsec(),
        mtime
    );
    assert_eq!(
        fake.count("GetRoleCredentials"),
        0,
        "no network call with an expired token"
    );

    // No token at all, legacy profile: the command names the profile.
    env.write_aws_config("[profile old]\nsso_start_url = https://x.example/start\nsso_region = us-east-1\nsso_account_id = 1\nsso_role_name = R\n");
    env.write_config_toml(&config_toml(&[("old", "old")]));
    let out = env.run(["sync"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("credsync login --profile old"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_token_the_portal_refuses_is_login_required() {
    let fake = FakeAws::new();
    let env = TestEnv::with_fake(&fake);
    env.write_aws_config(&sso_config(1));
    env.write_config_toml(&config_toml(&[("p0", "p0")]));
    // Valid by its date, but the portal does not know it (revoked).
    env.write_token_cache(
        "corp",
        &botocore_token_json("tok-revoked", SystemTime::now() + HOUR, None),
    );
    let out = env.run(["sync"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("login_required"), "{}", stdout(&out));
    assert_eq!(fake.count("GetRoleCredentials"), 1, "a 401 is not retried");
}

#[test]
fn a_half_written_token_file_is_retried_not_read_as_logged_out() {
    let fake = FakeAws::new();
    let env = TestEnv::with_fake(&fake);
    env.write_aws_config(&sso_config(1));
    env.write_config_toml(&config_toml(&[("p0", "p0")]));
    fake.add_token("tok-corp");
    let full = botocore_token_json("tok-corp", SystemTime::now() + HOUR, None);
    env.write_token_cache("corp", &full[..full.len() / 2]);
    let path = env.token_cache_path("corp");
    let mut child = env
        .cmd(["sync"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sync");
    // sync reads the half file, and says (at debug level) that it will try again.
    let mut stderr = BufReader::new(child.stderr.take().expect("piped"));
    let mut log = String::new();
    loop {
        let mut line = String::new();
        let n = stderr.read_line(&mut line).expect("read sync's stderr");
        assert!(n > 0, "sync ended without trying again:\n{log}");
        log.push_str(&line);
        if line.contains("to try again in") {
            break;
        }
    }
    assert_eq!(fake.count("GetRoleCredentials"), 0, "{log}");
    // The AWS CLI finishes its write while credsync waits (atomically here, so that the next
    // read sees the whole file).
    let whole = path.with_extension("whole");
    fs::write(&whole, &full).unwrap();
    fs::rename(&whole, &path).unwrap();
    stderr.read_to_string(&mut log).expect("read sync's stderr");
    let out = child.wait_with_output().expect("sync exits");
    assert!(out.status.success(), "{}\n{log}", stdout(&out));
    assert_written(&env, &fake, "p0", "000000100000");
    assert_eq!(fake.count("GetRoleCredentials"), 1);
}

#[test]
fn file_safety_conflict_symlink_modes_and_temp_files() {
    let fake = FakeAws::new();
    let env = TestEnv::with_fake(&fake);
    env.write_aws_config(&sso_config(2));
    env.write_config_toml(&config_toml(&[("p0", "mine"), ("p1", "p1")]));
    logged_in(&env, &fake, "tok-corp");

    // A section credsync did not create is never overwritten.
    let user = "[mine]\naws_access_key_id = AKIAUSER\naws_secret_access_key = user-secret\n";
    env.write_credentials(user);
    let out = env.run(["sync"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("p0 -> [mine]: conflict"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("another `target`"),
        "says the way out: {}",
        stdout(&out)
    );
    let text = env.read_credentials();
    assert!(text.starts_with(user), "{text}");
    assert!(
        ini_edit::read_managed(&text, "p1").is_some(),
        "the other profile is still written"
    );

    // A new file is 0600.
    fs::remove_file(env.credentials_path()).unwrap();
    env.write_config_toml(&config_toml(&[("p0", "p0")]));
    assert!(env.run(["sync"]).status.success());
    assert_eq!(
        fs::metadata(env.credentials_path()).unwrap().mode() & 0o777,
        0o600
    );

    // An existing 0640 file stays 0640.
    fs::set_permissions(env.credentials_path(), fs::Permissions::from_mode(0o640)).unwrap();
    assert!(env.run(["sync"]).status.success());
    assert_eq!(
        fs::metadata(env.credentials_path()).unwrap().mode() & 0o777,
        0o640
    );

    // A symlinked credentials file is updated at its target and stays a symlink.
    let real = env.root().join("dotfiles/credentials");
    fs::create_dir_all(real.parent().unwrap()).unwrap();
    fs::rename(env.credentials_path(), &real).unwrap();
    std::os::unix::fs::symlink(&real, env.credentials_path()).unwrap();
    let before = fs::read_to_string(&real).unwrap();
    assert!(env.run(["sync"]).status.success());
    assert!(
        fs::symlink_metadata(env.credentials_path())
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_ne!(
        fs::read_to_string(&real).unwrap(),
        before,
        "the target was rewritten"
    );
    assert_written(&env, &fake, "p0", "000000100000");

    // No temp file is left behind; one left by a crash is removed at the next start.
    let leftovers = |dir: &std::path::Path| -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.contains(".credsync-"))
            .collect()
    };
    assert_eq!(leftovers(real.parent().unwrap()), Vec::<String>::new());
    let stale = real
        .parent()
        .unwrap()
        .join(".credentials.credsync-999999999-deadbeef.tmp");
    fs::write(&stale, "half a file").unwrap();
    assert!(env.run(["sync"]).status.success());
    assert!(!stale.exists(), "the stale temp file was removed");
}

#[test]
fn bad_input_gives_a_clear_error_and_changes_nothing() {
    let fake = FakeAws::new();
    let env = TestEnv::with_fake(&fake);
    env.write_aws_config(&sso_config(1));
    logged_in(&env, &fake, "tok-corp");
    let before = "[keep]\nx = 1\n";
    env.write_credentials(before);
    let check = |toml: Option<&str>, code: i32, needles: &[&str]| {
        if let Some(t) = toml {
            env.write_config_toml(t);
        }
        let out = env.run(["sync"]);
        let said = format!("{}{}", stdout(&out), stderr(&out));
        assert_eq!(out.status.code(), Some(code), "{said}");
        for n in needles {
            assert!(said.contains(n), "expected {n:?} in: {said}");
        }
        assert_eq!(
            env.read_credentials(),
            before,
            "nothing written for: {said}"
        );
    };
    let cfg_path = env.config_toml_path().display().to_string();
    check(
        Some("[[profiles]]\nsource = \"p0\"\ntarget = \n"),
        2,
        &[&format!("{cfg_path}:3:")],
    );
    check(
        Some("[refresh]\nmin_remainig = \"20m\"\n"),
        2,
        &[&format!("{cfg_path}:2:1"), "min_remaining"],
    );
    check(Some(&config_toml(&[("nope", "nope")])), 1, &["nope", "p0"]);
    env.write_aws_config(&format!(
        "{}[profile proc]\ncredential_process = /bin/echo\n",
        sso_config(1)
    ));
    check(
        Some(&config_toml(&[("proc", "proc")])),
        1,
        &["credential_process", "SSO"],
    );
    env.write_aws_config("[profile p0]\nsso_session = corp\n[profile p0]\nx = y\n");
    check(
        Some(&config_toml(&[("p0", "p0")])),
        2,
        &[&format!("{}:3", env.aws_config_path().display())],
    );
    assert_eq!(fake.count("GetRoleCredentials"), 0);

    // An unreadable credentials file: not UTF-8 text.
    env.write_aws_config(&sso_config(1));
    let garbage = b"[keep]\nx = \xff\xfe\n";
    fs::write(env.credentials_path(), garbage).unwrap();
    let out = env.run(["sync"]);
    assert_eq!(out.status.code(), Some(1));
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        said.contains(&env.credentials_path().display().to_string()),
        "{said}"
    );
    assert!(said.contains("UTF-8"), "{said}");
    // Fetched but not on disk: said so per profile (the daemon shows it as degraded).
    assert!(stdout(&out).contains("p0 -> [p0]: not written: "), "{said}");
    assert_eq!(fs::read(env.credentials_path()).unwrap(), garbage);
}

#[test]
fn short_lived_credentials_are_not_refreshed_sooner_than_the_floor_and_sigterm_stops_cleanly() {
    // 3-second credentials, which AWS never issues: due again at once by every margin, but
    // the daemon waits a minute after each success (the schedule's floor), not a hot loop.
    // (That credentials are replaced before they run short is shown on a simulated clock.)
    let fake = FakeAws::new();
    fake.set_credential_lifetime(Duration::from_secs(3));
    let env = TestEnv::with_fake(&fake);
    env.write_aws_config(&sso_config(1));
    env.write_config_toml(&format!(
        "[refresh]\nmin_remaining = \"10s\"\n{}",
        config_toml(&[("p0", "p0")])
    ));
    logged_in(&env, &fake, "tok-corp");

    let mut daemon = env.daemon(Vec::<String>::new());
    daemon.expect_within(
        "the first write",
        || {
            let text = fs::read_to_string(env.credentials_path()).unwrap_or_default();
            ini_edit::read_managed(&text, "p0").is_some()
        },
        Duration::from_secs(15),
    );
    // What the daemon plans: the next refresh a minute after the last, not at once.
    let out = env.run(["status", "--json"]);
    assert!(out.status.success(), "{}", daemon.logs());
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    let p0 = &status["profiles"][0];
    let at = |k: &str| {
        support::parse_botocore_time(p0[k].as_str().unwrap_or_else(|| panic!("{k}: {p0}")))
    };
    let gap = at("next_refresh")
        .duration_since(at("last_refresh"))
        .unwrap_or_default();
    assert!(
        gap >= Duration::from_secs(59),
        "next refresh {gap:?} after the last: {p0}"
    );
    assert_eq!(fake.count("GetRoleCredentials"), 1, "{}", daemon.logs());
    let status = daemon.sigterm();
    assert_eq!(status.code(), Some(0), "{}", daemon.logs());
    let temps: Vec<_> = fs::read_dir(env.aws_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains(".credsync-"))
        .collect();
    assert!(temps.is_empty(), "{temps:?}");
    let logs = daemon.logs();
    for secret_prefix in ["fake-secret-", "fake-session-", "tok-corp"] {
        assert!(
            !logs.contains(secret_prefix),
            "a secret reached the log: {logs}"
        );
    }
}
