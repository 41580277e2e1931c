//! Secrets: a full scenario at the most verbose log level (`CREDSYNC_LOG=trace`) — the daemon with
//! an SSO profile, an SSO token refresh (CreateToken), role chains (AssumeRole) from SSO and from
//! static keys, a 500 and a 401 from the portal, `status`, `status --json`, `refresh`, and `sync`
//! failing — and no secret value appears in any log line, status output or error message.
//!
//! Not covered: a panic in a worker. Nothing in credsync panics on input a test can give it
//! (that is the point of `fuzz_props.rs`), and a test-only panic hook in `src/` is not wanted.

use crate::support;

use std::time::{Duration, SystemTime};

use support::fake_aws::{FakeAws, Fault, Route};
use support::{FAKE_START_URL, TestEnv, botocore_token_json};

const CLIENT_SECRET: &str = "client-secret-SENSITIVE-0001";
const STATIC_SECRET: &str = "static-source-secret-SENSITIVE";
const STATIC_KEY_ID: &str = "AKIASTATICSOURCE0001";

/// Every secret the scenario handles: the fake's prefixes and the fixed ones.
const SECRETS: [&str; 6] = [
    "fake-secret-",
    "fake-session-",
    "fake-access-",
    "fake-refresh-",
    CLIENT_SECRET,
    STATIC_SECRET,
];

fn assert_clean(what: &str, text: &str) {
    for s in SECRETS {
        if let Some(at) = text.find(s) {
            let line = text[..at].rfind('\n').map_or(0, |i| i + 1);
            let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
            panic!("{what} contains a secret ({s}): {}", &text[line..end]);
        }
    }
}

fn out(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn no_secret_reaches_a_log_a_status_or_an_error_at_trace_level() {
    let fake = FakeAws::new();
    let mut env = TestEnv::with_fake(&fake);
    env.env("CREDSYNC_LOG", "trace");
    env.write_aws_config(&format!(
        "[sso-session corp]\nsso_start_url = {FAKE_START_URL}\nsso_region = us-east-1\n\n\
         [profile dev]\nsso_session = corp\nsso_account_id = 111111111111\nsso_role_name = Dev\nregion = us-east-1\n\n\
         [profile chained]\nrole_arn = arn:aws:iam::222222222222:role/A\nsource_profile = dev\nregion = us-east-1\n\n\
         [profile fromstatic]\nrole_arn = arn:aws:iam::333333333333:role/B\nsource_profile = base\nregion = us-east-1\n"
    ));
    env.write_credentials(&format!(
        "[base]\naws_access_key_id = {STATIC_KEY_ID}\naws_secret_access_key = {STATIC_SECRET}\n"
    ));
    env.write_config_toml(
        "[[profiles]]\nsource = \"dev\"\n[[profiles]]\nsource = \"chained\"\n[[profiles]]\nsource = \"fromstatic\"\n",
    );
    // A token that needs a refresh at once (10 minutes left), with a registration.
    fake.add_token("fake-access-initial");
    fake.add_refresh_token("fake-refresh-initial", "fake-client-id");
    fake.set_rotate_refresh_tokens(true);
    env.write_token_cache(
        "corp",
        &botocore_token_json(
            "fake-access-initial",
            SystemTime::now() + Duration::from_secs(600),
            Some(("fake-refresh-initial", "fake-client-id", CLIENT_SECRET)),
        ),
    );

    let mut outputs: Vec<(String, String)> = Vec::new();
    let daemon = env.daemon(Vec::<String>::new());
    daemon.expect_within(
        "three fresh profiles and a refreshed token",
        || {
            let o = env.run(["status", "--json"]);
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&o.stdout) else {
                return false;
            };
            fake.count("CreateToken") >= 1
                && v["profiles"]
                    .as_array()
                    .is_some_and(|p| p.len() == 3 && p.iter().all(|p| p["state"] == "fresh"))
        },
        Duration::from_secs(60),
    );
    assert!(fake.count("AssumeRole") >= 2, "both chains assumed a role");

    // A 500, then a 401 (the token revoked) from the portal, each surfaced by a refresh.
    fake.set_fault(
        Route::GetRoleCredentials,
        Some(Fault::status(500, "InternalServerError")),
    );
    let o = env.run(["refresh", "dev"]);
    outputs.push(("refresh during a 500".into(), out(&o)));
    daemon.expect_within(
        "the 500 shows in status",
        || {
            let o = env.run(["status", "--json"]);
            let s = out(&o);
            let shown = s.contains("500") || s.contains("InternalServerError");
            if shown {
                outputs.push(("status --json during a 500".into(), s));
            }
            shown
        },
        Duration::from_secs(30),
    );
    fake.set_fault(Route::GetRoleCredentials, None);
    for t in fake.issued_tokens() {
        fake.revoke_token(&t.access_token);
    }
    let o = env.run(["refresh"]);
    outputs.push(("refresh during a 401".into(), out(&o)));
    daemon.expect_within(
        "login required in status",
        || {
            let o = env.run(["status", "--json"]);
            let s = out(&o);
            let shown = s.contains("login_required");
            if shown {
                outputs.push(("status --json with login required".into(), s));
            }
            shown
        },
        Duration::from_secs(30),
    );
    for args in [
        vec!["status"],
        vec!["status", "--json"],
        vec!["refresh", "nosuch"],
    ] {
        let o = env.run(&args);
        outputs.push((args.join(" "), out(&o)));
    }
    // `sync` failing against a 500 and an AssumeRole error.
    fake.set_fault(Route::Any, Some(Fault::status(500, "InternalServerError")));
    let o = env.run(["sync"]);
    assert!(!o.status.success());
    outputs.push(("sync during a 500".into(), out(&o)));
    fake.set_fault(Route::Any, None);
    drop(daemon);

    // Every log line the daemon wrote (its stdout and stderr files), every command's output.
    let mut logs = String::new();
    for e in std::fs::read_dir(env.root())
        .unwrap()
        .filter_map(|e| e.ok())
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("daemon-") {
            logs += &std::fs::read_to_string(e.path()).unwrap_or_default();
        }
    }
    assert!(
        logs.lines().count() >= 10 && (logs.contains("TRACE") || logs.contains("DEBUG")),
        "the daemon logged at a verbose level:\n{logs}"
    );
    assert_clean("the daemon's log", &logs);
    for (what, text) in &outputs {
        assert_clean(what, text);
    }
    eprintln!(
        "{} log lines and {} command outputs checked; {} CreateToken, {} AssumeRole, {} \
         GetRoleCredentials calls",
        logs.lines().count(),
        outputs.len(),
        fake.count("CreateToken"),
        fake.count("AssumeRole"),
        fake.count("GetRoleCredentials")
    );
}
