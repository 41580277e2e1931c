//! Desktop notifications from the real daemon, on a real D-Bus session bus (`dbus-daemon
//! --session`) with a notification server of our own (tests/tools/notification_server.py,
//! dbus-next) that records each `org.freedesktop.Notifications.Notify` call: a refused refresh
//! token gives exactly one notification however many profiles and rounds, `[notify] before`
//! one ahead of the end of a token that cannot be refreshed, `enabled = false` none, and
//! `[notify] command` gets the text as its arguments. Without any notifier, one log line says
//! so, and a new sign-in makes a new event.
//!
//! Needs `dbus-daemon` and the test venv's python with dbus-next (scripts/test installs both);
//! the daemon reaches the bus through `busctl`. Under CI a missing one fails; elsewhere the
//! tests print why they skip.

use crate::support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use support::fake_aws::FakeAws;
use support::python::python;
use support::{Daemon, TestEnv, botocore_token_json};

const HOUR: Duration = Duration::from_secs(3600);
const MIN: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(20);
const SECRETS: [&str; 4] = ["tok-corp", "rt-corp", "cid-corp", "csecret-corp"];

/// A session bus of its own (`dbus-daemon --session` on a socket in a temp dir) and the
/// notification server on it; both stopped on drop.
struct Desktop {
    bus: Child,
    server: Child,
    address: String,
    record: PathBuf,
    _dir: tempfile::TempDir,
}

impl Desktop {
    /// `None` (after printing why) when dbus-daemon or dbus-next is missing outside CI.
    fn start(test: &str) -> Option<Desktop> {
        let skip = |why: String| {
            support::skip(test, &format!("{why}; scripts/test installs it"));
            None
        };
        let Some(py) = python() else {
            return skip("the test venv is missing".into());
        };
        let has_dbus_next = Command::new(&py)
            .args(["-c", "import dbus_next"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !has_dbus_next {
            return skip(format!("dbus-next is not installed for {}", py.display()));
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("bus");
        let bus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .arg(format!("--address=unix:path={}", socket.display()))
            .stdout(Stdio::piped())
            // It complains that it cannot raise its fd limit when not root; nothing else.
            .stderr(Stdio::null())
            .spawn();
        let mut bus = match bus {
            Ok(b) => b,
            Err(e) => return skip(format!("dbus-daemon cannot run ({e})")),
        };
        let mut address = String::new();
        BufReader::new(bus.stdout.take().expect("piped"))
            .read_line(&mut address)
            .expect("dbus-daemon prints its address");
        let address = address.trim().to_owned();
        assert!(address.starts_with("unix:"), "dbus-daemon said {address:?}");
        let record = dir.path().join("notifications.jsonl");
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/notification_server.py");
        let mut server = Command::new(&py)
            .arg(&script)
            .arg(&record)
            .env_clear()
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the notification server");
        let mut ready = String::new();
        BufReader::new(server.stdout.take().expect("piped"))
            .read_line(&mut ready)
            .expect("the notification server starts");
        assert_eq!(ready.trim(), "ready", "notification server");
        Some(Desktop {
            bus,
            server,
            address,
            record,
            _dir: dir,
        })
    }

    /// The Notify calls received so far.
    fn calls(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }
}

impl Drop for Desktop {
    fn drop(&mut self) {
        for child in [&mut self.server, &mut self.bus] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Three profiles on sso-session `corp`, signed in with `token_json`, the daemon's desktop
/// being `desktop`'s bus; `notify` is credsync's `[notify]` section (and anything after it).
fn setup(fake: &FakeAws, desktop: Option<&Desktop>, token_json: &str, notify: &str) -> TestEnv {
    let mut env = TestEnv::with_fake(fake);
    if let Some(desktop) = desktop {
        env.env("DBUS_SESSION_BUS_ADDRESS", &desktop.address);
    }
    let mut aws = String::from(
        "[sso-session corp]\nsso_start_url = https://fake.awsapps.com/start\nsso_region = us-east-1\n",
    );
    let mut toml = String::from("[refresh]\ntoken_refresh_before = \"2h\"\n\n");
    for (name, account) in [
        ("dev", "111111111111"),
        ("ops", "222222222222"),
        ("data", "333333333333"),
    ] {
        aws.push_str(&format!(
            "\n[profile {name}]\nsso_session = corp\nsso_account_id = {account}\nsso_role_name = Dev\n"
        ));
        toml.push_str(&format!("[[profiles]]\nsource = \"{name}\"\n\n"));
    }
    toml.push_str(notify);
    env.write_aws_config(&aws);
    env.write_config_toml(&toml);
    fake.add_token("tok-corp");
    env.write_token_cache("corp", token_json);
    env
}

/// A refreshable token (1 hour left, so due for a refresh under `token_refresh_before = "2h"`)
/// whose refresh token the fake does not know: SSO-OIDC refuses it.
fn refused_token() -> String {
    refused_token_expiring(SystemTime::now() + HOUR)
}

fn refused_token_expiring(at: SystemTime) -> String {
    botocore_token_json(
        "tok-corp",
        at,
        Some(("rt-corp", "cid-corp", "csecret-corp")),
    )
}

/// Waits until all three profiles are fresh and the session is known not to be refreshable
/// for `why`; returns the session's status.
fn settled(env: &TestEnv, daemon: &Daemon, why: &str) -> serde_json::Value {
    let mut session = serde_json::Value::Null;
    daemon.expect_within(
        &format!("three fresh profiles, session {why}"),
        || {
            let o = env.run(["status", "--json"]);
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&o.stdout) else {
                return false;
            };
            session = v["sso_sessions"][0].clone();
            v["profiles"]
                .as_array()
                .is_some_and(|p| p.len() == 3 && p.iter().all(|p| p["state"] == "fresh"))
                && session["not_refreshable"] == why
        },
        WAIT,
    );
    session
}

/// More rounds: `credsync refresh` of every profile, `n` times (each answers after its round,
/// and the daemon has decided that round's notifications by then).
fn rounds(env: &TestEnv, n: usize) {
    for _ in 0..n {
        let o = env.run(["refresh"]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

fn assert_no_secret(text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "a secret in {text:?}");
    }
}

#[test]
fn a_refused_refresh_token_gives_one_notification_naming_the_session_and_the_command() {
    let Some(desktop) = Desktop::start("notify::refused") else {
        return;
    };
    let fake = FakeAws::new();
    let env = setup(&fake, Some(&desktop), &refused_token(), "");
    let daemon = env.daemon(std::iter::empty::<&str>());
    let session = settled(&env, &daemon, "refresh_refused");
    assert_eq!(session["refreshable"], false);
    assert!(session["refused_at"].is_string(), "{session}");
    assert_eq!(session["ends_at"], session["token_expires_at"]);
    let login = session["login_command"].as_str().expect("a login command");
    assert!(login.contains("--sso-session corp"), "{login}");

    daemon.expect_within("one notification", || desktop.calls().len() == 1, WAIT);
    rounds(&env, 3);
    let calls = desktop.calls();
    assert_eq!(calls.len(), 1, "{calls:#?}\n{}", daemon.logs());
    assert_eq!(
        daemon.logs().matches("notifying: ").count(),
        1,
        "{}",
        daemon.logs()
    );
    // The refused refresh token is not tried again either.
    assert_eq!(fake.count("CreateToken"), 1);

    let call = &calls[0];
    assert_eq!(call["app_name"], "credsync");
    assert_eq!(call["hints"]["urgency"], 2, "critical: the user must act");
    let summary = call["summary"].as_str().unwrap();
    let body = call["body"].as_str().unwrap();
    assert_eq!(summary, "credsync: sign in to corp");
    assert!(
        body.contains("The SSO session corp can no longer be renewed"),
        "{body}"
    );
    assert!(body.contains("the refresh token was refused"), "{body}");
    assert!(body.contains(&format!("Sign in again: {login}")), "{body}");
    assert!(
        body.contains(&format!(
            "keep working until {}",
            session["credentials_until"].as_str().unwrap()
        )),
        "{body}"
    );
    assert_no_secret(&call.to_string());
    for account in ["111111111111", "222222222222", "333333333333"] {
        let served = fake.last_credentials(account, "Dev").expect("served");
        for secret in [&served.secret_access_key, &served.session_token] {
            assert!(!body.contains(secret.as_str()), "a served secret in {body}");
        }
    }
}

#[test]
fn notify_before_gives_one_notification_ahead_of_the_end_of_a_token_without_refresh() {
    let Some(desktop) = Desktop::start("notify::before") else {
        return;
    };
    let fake = FakeAws::new();
    // No refresh token, 50 minutes left: inside `before = "1h"` (not the default 30 minutes).
    let token = botocore_token_json("tok-corp", SystemTime::now() + 50 * MIN, None);
    let env = setup(&fake, Some(&desktop), &token, "[notify]\nbefore = \"1h\"\n");
    let daemon = env.daemon(std::iter::empty::<&str>());
    let session = settled(&env, &daemon, "no_refresh_token");
    daemon.expect_within("one notification", || desktop.calls().len() == 1, WAIT);
    rounds(&env, 2);
    let calls = desktop.calls();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    let body = calls[0]["body"].as_str().unwrap();
    assert!(
        body.contains(&format!(
            "The SSO session corp ends {} (in ",
            session["token_expires_at"].as_str().unwrap()
        )),
        "{body}"
    );
    assert!(
        body.contains("cannot be renewed: the sign-in gave no refresh token"),
        "{body}"
    );
    assert!(body.contains("Sign in again: "), "{body}");
    assert_no_secret(&calls[0].to_string());
}

#[test]
fn notify_enabled_false_gives_none() {
    let Some(desktop) = Desktop::start("notify::disabled") else {
        return;
    };
    let fake = FakeAws::new();
    let env = setup(
        &fake,
        Some(&desktop),
        &refused_token(),
        "[notify]\nenabled = false\n",
    );
    let daemon = env.daemon(std::iter::empty::<&str>());
    settled(&env, &daemon, "refresh_refused");
    // The daemon decided (and said in its log that it does not notify); the bus heard nothing.
    assert!(
        daemon.wait_for_log("not notifying ([notify] enabled = false)", WAIT),
        "{}",
        daemon.logs()
    );
    rounds(&env, 2);
    // Sending starts where "notifying" is logged, before `refresh` answers: none of that.
    assert!(!daemon.logs().contains("notifying: "), "{}", daemon.logs());
    assert!(desktop.calls().is_empty(), "{:?}", desktop.calls());
}

#[test]
fn notify_command_receives_the_message_as_arguments() {
    let Some(desktop) = Desktop::start("notify::command") else {
        return;
    };
    let fake = FakeAws::new();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("args");
    let script = dir.path().join("my notifier");
    // Each argument on its own NUL-terminated record: what the program got, exactly.
    std::fs::write(
        &script,
        format!("#!/bin/sh\nprintf '%s\\0' \"$@\" >> '{}'\n", out.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let notify = format!(
        "[notify]\ncommand = [{:?}, \"--urgent\", \"two words; $(no shell)\"]\n",
        script.display().to_string()
    );
    let env = setup(&fake, Some(&desktop), &refused_token(), &notify);
    let daemon = env.daemon(std::iter::empty::<&str>());
    let session = settled(&env, &daemon, "refresh_refused");
    let read = || std::fs::read(&out).unwrap_or_default();
    daemon.expect_within("the command ran", || !read().is_empty(), WAIT);
    rounds(&env, 2);
    let text = String::from_utf8(read()).unwrap();
    let args: Vec<&str> = text.strip_suffix('\0').unwrap().split('\0').collect();
    assert_eq!(args.len(), 4, "{args:?}");
    assert_eq!(
        args[..3],
        [
            "--urgent",
            "two words; $(no shell)",
            "credsync: sign in to corp"
        ]
    );
    assert!(
        args[3].starts_with("The SSO session corp can no longer be renewed"),
        "{args:?}"
    );
    assert!(
        args[3].ends_with(&format!(
            "Sign in again: {}",
            session["login_command"].as_str().unwrap()
        )),
        "{args:?}"
    );
    assert_no_secret(&text);
    // Instead of the desktop's, not beside it.
    assert!(desktop.calls().is_empty(), "{:?}", desktop.calls());
}

#[test]
fn without_a_notifier_one_log_line_says_so_and_a_new_sign_in_is_news_again() {
    // No session bus at all (no DBUS_SESSION_BUS_ADDRESS, no $XDG_RUNTIME_DIR/bus): needs no
    // D-Bus software, so it runs everywhere.
    let fake = FakeAws::new();
    let env = setup(&fake, None, &refused_token(), "");
    let daemon = env.daemon(std::iter::empty::<&str>());
    settled(&env, &daemon, "refresh_refused");
    let unavailable = "desktop notifications are not available (no session bus";
    assert!(daemon.wait_for_log(unavailable, WAIT), "{}", daemon.logs());
    // Signed in again, and that token's refresh is refused too: a second event.
    env.write_token_cache(
        "corp",
        &refused_token_expiring(SystemTime::now() + HOUR + 5 * MIN),
    );
    daemon.expect_within(
        "a second notification for the new token",
        || daemon.logs().matches("notifying: ").count() == 2,
        WAIT,
    );
    rounds(&env, 2);
    let logs = daemon.logs();
    assert_eq!(logs.matches("notifying: ").count(), 2, "{logs}");
    assert_eq!(logs.matches(unavailable).count(), 1, "{logs}");
    assert_eq!(fake.count("CreateToken"), 2, "one refusal per token");
    assert_no_secret(&logs);
}
