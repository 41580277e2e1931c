//! The daemon behind its control socket, end to end: `status` (table and JSON), `refresh`, `reload`
//! and SIGHUP, one daemon per user, READY=1 to systemd, and run as launchd runs it (`--launchd`):
//! no exit that launchd would restart forever.

use crate::support;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, SystemTime};

use credsync::service::DAEMON_FLAG;
use support::fake_aws::FakeAws;
use support::{TestEnv, botocore_token_json};

const HOUR: Duration = Duration::from_secs(3600);

fn setup(fake: &FakeAws) -> TestEnv {
    let env = TestEnv::with_fake(fake);
    env.write_aws_config(
        "[sso-session corp]\nsso_start_url = https://fake.awsapps.com/start\nsso_region = us-east-1\n\n\
         [profile dev]\nsso_session = corp\nsso_account_id = 111111111111\nsso_role_name = Dev\n\n\
         [profile ops]\nsso_session = corp\nsso_account_id = 222222222222\nsso_role_name = Dev\n",
    );
    env.write_config_toml(
        "[[profiles]]\nsource = \"dev\"\ntarget = \"default\"\n\n[[profiles]]\nsource = \"ops\"\n",
    );
    fake.add_token("tok-corp");
    env.write_token_cache(
        "corp",
        &botocore_token_json("tok-corp", SystemTime::now() + 8 * HOUR, None),
    );
    env
}

fn out(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `status --json`: its exit code and document (`Null` while the daemon is not up yet).
fn json_status(env: &TestEnv) -> (Option<i32>, serde_json::Value) {
    let o = env.run(["status", "--json"]);
    if o.status.code() == Some(3) {
        return (Some(3), serde_json::Value::Null);
    }
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", out(&o)));
    (o.status.code(), v)
}

#[test]
fn status_json_and_table_agree_and_never_show_a_secret() {
    let fake = FakeAws::new();
    let env = setup(&fake);
    let daemon = env.daemon(Vec::<String>::new());
    daemon.expect_within(
        "both profiles fresh",
        || {
            let (code, v) = json_status(&env);
            code == Some(0)
                && v["profiles"]
                    .as_array()
                    .is_some_and(|p| p.iter().all(|p| p["state"] == "fresh"))
        },
        Duration::from_secs(20),
    );
    let (code, v) = json_status(&env);
    assert_eq!(code, Some(0));
    assert_eq!(v["version"], 2);
    assert_eq!(v["daemon"]["pid"], daemon.pid());
    let table = env.run(["status"]);
    assert_eq!(table.status.code(), Some(0));
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    for p in v["profiles"].as_array().unwrap() {
        for field in ["source", "target", "kind", "state"] {
            let value = p[field].as_str().unwrap();
            assert!(
                table.contains(value),
                "table lacks {field} {value}:\n{table}"
            );
        }
    }
    let session = &v["sso_sessions"][0];
    assert_eq!(session["name"], "corp");
    // Signed in without a refresh token: it ends with the token, and says why.
    assert_eq!(session["refreshable"], false);
    assert_eq!(session["not_refreshable"], "no_refresh_token");
    assert_eq!(session["ends_at"], session["token_expires_at"]);
    assert!(session["refused_at"].is_null());
    let latest = v["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["expires_at"].as_str())
        .max();
    assert_eq!(session["credentials_until"].as_str(), latest);
    assert!(table.contains("corp"), "{table}");
    // No secret anywhere: not the keys the fake served, nor the SSO token.
    let json = v.to_string();
    for account in ["111111111111", "222222222222"] {
        let served = fake.last_credentials(account, "Dev").expect("served");
        for secret in [
            &served.access_key_id,
            &served.secret_access_key,
            &served.session_token,
        ] {
            assert!(
                !json.contains(secret.as_str()),
                "status --json shows a secret"
            );
            assert!(!table.contains(secret.as_str()), "status shows a secret");
        }
    }
    for text in [&json, &table, &daemon.logs()] {
        for needle in ["tok-corp", "fake-secret-", "fake-session-"] {
            assert!(!text.contains(needle), "{needle} leaked: {text}");
        }
    }
}

#[test]
fn refresh_and_reload_answer_and_a_bad_config_is_refused() {
    let fake = FakeAws::new();
    let env = setup(&fake);
    let mut daemon = env.daemon(Vec::<String>::new());
    daemon.expect_within(
        "first round",
        || fake.count("GetRoleCredentials") >= 2,
        Duration::from_secs(20),
    );
    daemon.expect_within(
        "status answers",
        || env.run(["status"]).status.code() == Some(0),
        Duration::from_secs(10),
    );

    let before = fake.count("GetRoleCredentials");
    let o = env.run(["refresh", "ops"]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(out(&o).contains("ops -> [ops]: fresh"), "{}", out(&o));
    assert_eq!(
        fake.count("GetRoleCredentials"),
        before + 1,
        "only ops was refreshed"
    );

    let o = env.run(["refresh", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        out(&o).contains("no managed profile is named \"nope\""),
        "{}",
        out(&o)
    );

    // A bad config is refused and the old one stays in force: `reload` names the error (and
    // does not send), SIGHUP makes the daemon try and refuse.
    env.write_config_toml("[refresh]\nmin_remaining = \"soon\"\n");
    let o = env.run(["reload"]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(out(&o).contains("config.toml:2:17"), "{}", out(&o));
    assert!(
        out(&o).contains("keeps the configuration it has"),
        "{}",
        out(&o)
    );
    daemon.signal(libc::SIGHUP);
    assert!(
        daemon.wait_for_log(
            "reload refused, the old configuration stays",
            Duration::from_secs(10)
        ),
        "{}",
        daemon.logs()
    );
    let (code, v) = json_status(&env);
    assert_eq!(code, Some(0));
    assert_eq!(v["profiles"].as_array().unwrap().len(), 2);

    // A good one takes effect, on `reload` and on SIGHUP.
    env.write_config_toml("[[profiles]]\nsource = \"dev\"\n");
    let o = env.run(["reload"]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    let (_, v) = json_status(&env);
    assert_eq!(v["profiles"].as_array().unwrap().len(), 1);
    assert_eq!(v["profiles"][0]["target"], "dev");

    env.write_config_toml("[[profiles]]\nsource = \"dev\"\n\n[[profiles]]\nsource = \"ops\"\n");
    daemon.signal(libc::SIGHUP);
    daemon.expect_within(
        "SIGHUP reload",
        || {
            json_status(&env).1["profiles"]
                .as_array()
                .is_some_and(|p| p.len() == 2)
        },
        Duration::from_secs(10),
    );
    assert_eq!(daemon.sigterm().code(), Some(0));
}

#[test]
fn one_daemon_per_user_and_status_without_a_daemon_exits_3() {
    let fake = FakeAws::new();
    let env = setup(&fake);
    let o = env.run(["status"]);
    assert_eq!(o.status.code(), Some(3), "{}", out(&o));
    assert!(
        out(&o).contains("credsync daemon"),
        "says how to start it: {}",
        out(&o)
    );

    let daemon = env.daemon(Vec::<String>::new());
    daemon.expect_within(
        "socket up",
        || env.run(["status"]).status.code() != Some(3),
        Duration::from_secs(10),
    );
    for (args, code) in [(&["daemon"][..], 2), (&["daemon", DAEMON_FLAG][..], 0)] {
        // Run by launchd, which restarts every other exit: 0.
        let o = env.run(args);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", out(&o));
        assert!(
            out(&o).contains(&daemon.pid().to_string()),
            "names the running pid: {}",
            out(&o)
        );
    }
}

#[test]
fn run_by_launchd_a_config_that_does_not_load_is_waited_for_not_exited() {
    let fake = FakeAws::new();
    let env = setup(&fake);
    let good = std::fs::read_to_string(env.config_toml_path()).unwrap();
    env.write_config_toml("[[profiles]\nsource = \"dev\"\n");
    // From a terminal (or systemd, which does not restart exit 2): a usage error.
    let o = env.run(["daemon"]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));

    let mut daemon = env.daemon([DAEMON_FLAG]);
    daemon.expect_within(
        "the daemon to wait for the config",
        || daemon.logs().contains("waiting for the config to change"),
        Duration::from_secs(10),
    );
    let logs = daemon.logs();
    assert!(
        logs.contains(":1:") && logs.contains("config.toml"),
        "the error, with file and line: {logs}"
    );
    assert!(
        daemon.is_running(),
        "it exited, and launchd would restart it: {logs}"
    );
    // Fixed: it starts by itself, without launchd.
    env.write_config_toml(&good);
    daemon.expect_within(
        "the daemon to start on the fixed config",
        || env.run(["status"]).status.code() != Some(3),
        Duration::from_secs(10),
    );
    assert!(
        daemon
            .logs()
            .contains("the config changed; loading it again")
    );
    assert_eq!(daemon.sigterm().code(), Some(0));
}

#[test]
fn the_daemon_tells_systemd_it_is_ready() {
    let fake = FakeAws::new();
    let mut env = setup(&fake);
    let sock_path = env.root().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind the notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    env.env("NOTIFY_SOCKET", &sock_path);
    // As under systemd: journald adds timestamps, so credsync must not.
    env.env("JOURNAL_STREAM", "8:12345");
    let mut daemon = env.daemon(Vec::<String>::new());
    let mut buf = [0u8; 512];
    let n = sock
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no notification ({e}):\n{}", daemon.logs()));
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(msg.lines().any(|l| l == "READY=1"), "{msg}");
    // Ready means the socket listens.
    assert_ne!(env.run(["status"]).status.code(), Some(3));
    assert_eq!(daemon.sigterm().code(), Some(0));
    let logs = daemon.stderr();
    let first = logs.lines().next().unwrap_or_default();
    assert!(
        first.trim_start().starts_with("INFO"),
        "no timestamp under journald: {first:?}"
    );
    assert!(
        !logs.contains('\u{1b}'),
        "no ANSI colours when stderr is not a terminal: {logs:?}"
    );
}

#[test]
fn a_conflict_is_not_retried_in_a_loop_and_clears_when_the_user_removes_the_section() {
    let fake = FakeAws::new();
    let env = setup(&fake);
    let user = "[default]\naws_access_key_id = AKIAUSER\naws_secret_access_key = user-secret\n";
    env.write_credentials(user);
    let daemon = env.daemon(Vec::<String>::new());
    daemon.expect_within(
        "dev in conflict",
        || json_status(&env).1["profiles"][0]["state"] == "conflict",
        Duration::from_secs(20),
    );
    let (code, v) = json_status(&env);
    assert_eq!(code, Some(1), "conflict is not fresh");
    let err = v["profiles"][0]["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        err.contains("[default]") && err.contains("another `target`"),
        "{err}"
    );
    // Looked at again in minutes (or when the file changes), not at the next wake-up.
    let next = v["profiles"][0]["next_refresh"]
        .as_str()
        .map(support::parse_botocore_time);
    let next = next.expect("a conflict has a next look");
    assert!(
        next > SystemTime::now() + Duration::from_secs(240),
        "next look too soon: {next:?}"
    );
    // No loop of fetches: a couple of seconds later, still one call for dev.
    let calls_for_dev = || {
        fake.requests_for("GetRoleCredentials")
            .iter()
            .filter(|r| r.query_param("account_id") == Some("111111111111"))
            .count()
    };
    assert!(!support::wait_for(
        || calls_for_dev() > 1,
        Duration::from_secs(2)
    ));
    assert!(
        env.read_credentials().starts_with(user),
        "the user's section is untouched"
    );

    // The user gives the name up: credsync takes it within a few seconds.
    env.write_credentials("# moved my keys elsewhere\n");
    daemon.expect_within(
        "dev written after the conflict cleared",
        || credsync::ini_edit::read_managed(&env.read_credentials(), "default").is_some(),
        Duration::from_secs(10),
    );
    assert!(
        env.read_credentials()
            .starts_with("# moved my keys elsewhere\n")
    );
}

#[test]
fn sigterm_during_a_refresh_finishes_the_write_first() {
    use support::fake_aws::{Fault, Route};
    let fake = FakeAws::new();
    fake.set_fault(
        Route::GetRoleCredentials,
        Some(Fault::Delay(Duration::from_millis(1500))),
    );
    let env = setup(&fake);
    env.write_config_toml("[[profiles]]\nsource = \"dev\"\n");
    let mut daemon = env.daemon(Vec::<String>::new());
    daemon.expect_within(
        "a refresh in flight",
        || fake.in_flight() > 0,
        Duration::from_secs(20),
    );
    let status = daemon.sigterm();
    assert_eq!(status.code(), Some(0), "{}", daemon.logs());
    let served = fake
        .last_credentials("111111111111", "Dev")
        .expect("served");
    let (creds, _) = credsync::ini_edit::read_managed(&env.read_credentials(), "dev")
        .unwrap_or_else(|| panic!("the refresh in flight was not written:\n{}", daemon.logs()));
    use credsync::secret::ExposeSecret;
    assert_eq!(creds.access_key_id.expose_secret(), served.access_key_id);
}

#[test]
fn a_write_the_daemon_cannot_make_leaves_the_profiles_degraded_not_fresh() {
    // The same rule as `sync`'s (one round, one write outcome): credentials fetched but not on
    // disk are not fresh, and the status says why.
    let fake = FakeAws::new();
    let env = setup(&fake);
    let garbage = b"[keep]\nx = \xff\xfe\n";
    std::fs::write(env.credentials_path(), garbage).unwrap();
    let daemon = env.daemon(Vec::<String>::new());
    daemon.expect_within(
        "both profiles tried and not written",
        || {
            let (code, v) = json_status(&env);
            code.is_some_and(|c| c != 3)
                && v["profiles"].as_array().is_some_and(|ps| {
                    ps.len() == 2
                        && ps.iter().all(|p| {
                            p["state"] == "degraded"
                                && p["last_error"]
                                    .as_str()
                                    .is_some_and(|e| e.contains("UTF-8"))
                        })
                })
        },
        Duration::from_secs(20),
    );
    assert!(fake.count("GetRoleCredentials") >= 2);
    let o = env.run(["refresh", "ops"]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).contains("ops -> [ops]: degraded: "), "{}", out(&o));
    assert!(out(&o).contains("UTF-8"), "{}", out(&o));
    assert_eq!(std::fs::read(env.credentials_path()).unwrap(), garbage);
}
