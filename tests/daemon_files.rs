//! A FIFO planted where the running daemon reads a file (the AWS config, a token cache file,
//! credsync's config): the daemon never blocks on it. It goes on answering `status` within a
//! bound, the log and the status name the file and say it is a FIFO, and the daemon runs on
//! with what it had (a refused reload keeps the old configuration; the status says so).

use crate::support;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use support::fake_aws::FakeAws;
use support::{TestEnv, botocore_token_json, mkfifo, output_text, run_with_timeout};

const HOUR: Duration = Duration::from_secs(3600);

/// How long `status` may take while a FIFO sits at a file the daemon reads. It is answered
/// from memory in milliseconds; the bound leaves room for a loaded machine, and stays under
/// the client's own 5 s timeout, which is what a blocked daemon would cost.
const STATUS_BOUND: Duration = Duration::from_secs(3);

/// A HOME with two SSO profiles, `dev` and `ops`, signed in.
fn setup(fake: &FakeAws) -> TestEnv {
    let env = TestEnv::with_fake(fake);
    env.write_aws_config(
        "[sso-session corp]\nsso_start_url = https://fake.awsapps.com/start\n\
         sso_region = us-east-1\n\n\
         [profile dev]\nsso_session = corp\nsso_account_id = 111111111111\nsso_role_name = Dev\n\n\
         [profile ops]\nsso_session = corp\nsso_account_id = 222222222222\nsso_role_name = Dev\n",
    );
    env.write_config_toml("[[profiles]]\nsource = \"dev\"\n\n[[profiles]]\nsource = \"ops\"\n");
    fake.add_token("tok-corp");
    env.write_token_cache(
        "corp",
        &botocore_token_json("tok-corp", SystemTime::now() + 8 * HOUR, None),
    );
    env
}

/// `credsync status --json`, which must answer within [`STATUS_BOUND`] (a failure if not):
/// the document, and what the client printed on stderr.
fn status_within_bound(env: &TestEnv) -> (serde_json::Value, String) {
    let start = Instant::now();
    let o = run_with_timeout(env.cmd(["status", "--json"]), 2 * STATUS_BOUND);
    let took = start.elapsed();
    assert!(
        took < STATUS_BOUND,
        "status took {took:?} (bound {STATUS_BOUND:?}):\n{}",
        output_text(&o)
    );
    let v =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}:\n{}", output_text(&o)));
    (v, String::from_utf8_lossy(&o.stderr).into_owned())
}

/// `credsync ARGS` (bounded like `status`): its exit code and output.
fn run(env: &TestEnv, args: &[&str]) -> (Option<i32>, String) {
    let o = run_with_timeout(env.cmd(args), 2 * STATUS_BOUND);
    (o.status.code(), output_text(&o))
}

/// Starts the daemon and waits until both profiles are fresh.
fn daemon_with_fresh_profiles(env: &TestEnv) -> support::Daemon {
    let daemon = env.daemon(Vec::<String>::new());
    daemon.expect_within(
        "both profiles fresh",
        || {
            let o = env.run(["status", "--json"]);
            serde_json::from_slice::<serde_json::Value>(&o.stdout).is_ok_and(|v| {
                v["profiles"]
                    .as_array()
                    .is_some_and(|p| p.iter().all(|p| p["state"] == "fresh"))
            })
        },
        Duration::from_secs(20),
    );
    daemon
}

/// Replaces the file at `path` with a FIFO (as an editor's save would: remove, then create).
fn plant_fifo(path: &Path) {
    fs::remove_file(path).unwrap();
    mkfifo(path);
}

/// What the daemon says about a FIFO at `path`, in its log and in messages.
fn fifo_named(path: &Path) -> String {
    format!(
        "{} is a FIFO (named pipe), not a regular file",
        path.display()
    )
}

fn assert_names_fifo(text: &str, path: &Path) {
    assert!(text.contains(&fifo_named(path)), "{text}");
}

/// A reload refused because of the FIFO at `path`, as `status` and the log say it.
fn reload_refused(path: &Path) -> String {
    format!(
        "reload refused, the old configuration stays: {}",
        fifo_named(path)
    )
}

/// Waits for the daemon's log to name the FIFO at `path` (its watcher noticed and reloaded).
fn expect_fifo_in_log(daemon: &support::Daemon, path: &Path) {
    daemon.expect_within(
        "the log to name the FIFO",
        || daemon.logs().contains(&fifo_named(path)),
        Duration::from_secs(10),
    );
}

/// The status's refused reload names the FIFO; the old configuration's two profiles stay
/// fresh.
fn assert_reload_refused_by_fifo(v: &serde_json::Value, path: &Path) {
    let error = v["daemon"]["reload_error"].as_str().unwrap_or_default();
    assert!(error.contains(&fifo_named(path)), "{v:#}");
    let profiles = v["profiles"].as_array().unwrap();
    assert_eq!(profiles.len(), 2, "{v:#}");
    assert!(profiles.iter().all(|p| p["state"] == "fresh"), "{v:#}");
}

#[test]
fn a_fifo_at_the_aws_config_is_named_and_status_keeps_answering() {
    let fake = FakeAws::new();
    let env = setup(&fake);
    let mut daemon = daemon_with_fresh_profiles(&env);
    let config = env.aws_config_path();
    let good = fs::read(&config).unwrap();

    // The watcher sees the change and reloads: refused, the file named.
    plant_fifo(&config);
    expect_fifo_in_log(&daemon, &config);
    assert_reload_refused_by_fifo(&status_within_bound(&env).0, &config);
    let (code, text) = run(&env, &["reload"]);
    assert_ne!(code, Some(0), "{text}");
    assert_names_fifo(&text, &config);
    let (_, table) = run(&env, &["status"]);
    let want = reload_refused(&config);
    assert!(table.contains(&want), "{table}");

    // A file again: the next reload takes it, and the status no longer shows the refusal.
    fs::remove_file(&config).unwrap();
    fs::write(&config, good).unwrap();
    let (code, text) = run(&env, &["reload"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        status_within_bound(&env).0["daemon"]
            .get("reload_error")
            .is_none()
    );
    assert_eq!(daemon.sigterm().code(), Some(0));
}

#[test]
fn a_fifo_at_a_token_cache_file_is_named_and_status_keeps_answering() {
    let fake = FakeAws::new();
    let env = setup(&fake);
    let mut daemon = daemon_with_fresh_profiles(&env);
    let cache = env.token_cache_path("corp");

    // The watcher wakes the daemon on the change; a refresh reads the token.
    plant_fifo(&cache);
    assert_names_fifo(&run(&env, &["refresh", "dev"]).1, &cache);
    let (v, _) = status_within_bound(&env);
    let dev = &v["profiles"][0];
    assert_eq!(dev["source"], "dev", "{v:#}");
    let error = dev["last_error"].as_str().unwrap_or_default();
    assert!(error.contains(&fifo_named(&cache)), "{v:#}");
    // Its credentials are still valid: degraded, not expired.
    assert_eq!(dev["state"], "degraded", "{v:#}");
    assert_names_fifo(&daemon.logs(), &cache);
    assert_eq!(daemon.sigterm().code(), Some(0));
}

#[test]
fn a_fifo_at_credsyncs_config_is_named_and_status_keeps_answering() {
    let fake = FakeAws::new();
    let env = setup(&fake);
    let mut daemon = daemon_with_fresh_profiles(&env);
    let config = env.config_toml_path();

    plant_fifo(&config);
    expect_fifo_in_log(&daemon, &config);
    // The client reads the config too (for the socket's path): it says why it cannot, and
    // finds the daemon at the default socket.
    let (v, client) = status_within_bound(&env);
    assert_names_fifo(&client, &config);
    assert_reload_refused_by_fifo(&v, &config);
    // SIGHUP: refused again, and the daemon still answers.
    daemon.signal(libc::SIGHUP);
    let refused = reload_refused(&config);
    daemon.expect_within(
        "the SIGHUP reload refused",
        || daemon.logs().contains(&refused),
        Duration::from_secs(10),
    );
    assert_reload_refused_by_fifo(&status_within_bound(&env).0, &config);
    assert_eq!(daemon.sigterm().code(), Some(0));
}
