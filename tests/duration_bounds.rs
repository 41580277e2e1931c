//! Every duration key of credsync's config has an upper bound (`config::DURATION_BOUNDS`): at
//! the bound the config loads and credsync runs (`credsync sync`, and the engine over a
//! simulated day), one second past it is a config error naming the file, line and column; and
//! the schedule's arithmetic never panics, whatever the durations (a property test).

use crate::support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use credsync::config::{self, ConfigError, DURATION_BOUNDS, DurationBound, Env};
use credsync::ini_edit;
use credsync::schedule::{self, Clock};
use proptest::prelude::*;
use support::fake_aws::FakeAws;
use support::{ManualClock, TestEnv, botocore_token_json, output_text};

const HOUR: Duration = Duration::from_secs(3600);

/// `[section]` and `key` of a bound's `[section] key`.
fn section_and_key(b: &DurationBound) -> (&'static str, &'static str) {
    let (section, key) = b.key.split_once(' ').unwrap();
    (section, key)
}

/// A config file setting the bound's key to `value` (line 2, the value at column key + 4).
fn one_key(b: &DurationBound, value: &str) -> String {
    let (section, key) = section_and_key(b);
    format!("{section}\n{key} = \"{value}\"\n")
}

/// Every duration key at its bound, with one SSO profile.
fn all_at_bounds() -> String {
    let mut sections = std::collections::BTreeMap::<&str, String>::new();
    for b in DURATION_BOUNDS {
        let (section, key) = section_and_key(&b);
        let lines = sections.entry(section).or_default();
        lines.push_str(&format!("{key} = \"{}\"\n", b.text));
    }
    let mut text = "[[profiles]]\nsource = \"dev\"\n".to_owned();
    for (section, lines) in sections {
        text.push_str(&format!("\n{section}\n{lines}"));
    }
    text
}

fn sso_env(fake: &FakeAws, token_expires: SystemTime) -> TestEnv {
    let env = TestEnv::with_fake(fake);
    env.write_aws_config(
        "[sso-session corp]\nsso_start_url = https://fake.awsapps.com/start\nsso_region = us-east-1\n\n\
         [profile dev]\nsso_session = corp\nsso_account_id = 111111111111\nsso_role_name = Dev\n",
    );
    fake.add_token("tok");
    env.write_token_cache("corp", &botocore_token_json("tok", token_expires, None));
    env
}

#[test]
fn each_bound_loads_and_one_second_past_it_is_an_error_at_its_line_and_column() {
    let env = Env {
        home: "/home/u".into(),
        vars: Default::default(),
    };
    let path = Path::new("/home/u/.config/credsync/config.toml");
    for b in DURATION_BOUNDS {
        let (_, key) = section_and_key(&b);
        config::parse(&one_key(&b, b.text), path, &env)
            .unwrap_or_else(|e| panic!("{} at its bound: {e}", b.key));
        let past = format!("{} 1s", b.text);
        match config::parse(&one_key(&b, &past), path, &env) {
            Err(ConfigError::Invalid {
                line,
                column,
                message,
                ..
            }) => {
                assert_eq!((line, column), (2, key.len() + 4), "{message}");
                assert!(
                    message.starts_with(&format!("{} = \"{past}\"", b.key)),
                    "{message}"
                );
                let fix = format!("write at most \"{}\"", b.text);
                assert!(message.contains(&fix), "{message}");
            }
            other => panic!(
                "{} = {past:?}: expected a located error, got {other:?}",
                b.key
            ),
        }
    }
}

#[test]
fn credsync_refuses_a_value_past_the_bound_before_anything_runs() {
    let fake = FakeAws::new();
    let env = sso_env(&fake, SystemTime::now() + 8 * HOUR);
    for b in DURATION_BOUNDS {
        let (_, key) = section_and_key(&b);
        let file = env.write_config_toml(&one_key(&b, "300000000000y"));
        let out = env.run(["sync"]);
        let said = output_text(&out);
        assert_eq!(out.status.code(), Some(2), "{said}");
        let at = format!("{}:2:{}: ", file.display(), key.len() + 4);
        assert!(said.contains(&at), "{said}");
        assert!(said.contains(&format!("longer than {}", b.text)), "{said}");
    }
    assert_eq!(fake.count("GetRoleCredentials"), 0);
}

#[test]
fn sync_with_every_duration_at_its_bound_exits_normally() {
    let fake = FakeAws::new();
    let env = sso_env(&fake, SystemTime::now() + 8 * HOUR);
    env.write_config_toml(&all_at_bounds());
    let out = env.run(["sync"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert!(ini_edit::read_managed(&env.read_credentials(), "dev").is_some());
}

/// Runs the engine with every duration at its bound for 26 simulated hours, against credentials
/// of `lifetime`, moved as the daemon moves (to the next deadline, at most `MAX_SLEEP`). Every
/// round must succeed and the disk must keep what the schedule promises. Returns the fetches.
fn a_day_at_the_bounds(lifetime: Duration) -> usize {
    let fake = FakeAws::new();
    fake.set_credential_lifetime(lifetime);
    let start = SystemTime::now();
    let env = sso_env(&fake, start + 48 * HOUR);
    let clock = ManualClock::new(start);
    let mut engine =
        support::in_process_engine(&env, &fake, &all_at_bounds(), Arc::new(clock.clone()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let keep = schedule::must_remain(Some(lifetime), config::MIN_REMAINING_BOUND.max);
    let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    while clock.now() < start + 26 * HOUR {
        let now = clock.now();
        fake.set_clock_offset(secs(now) - secs(SystemTime::now()));
        if !engine.due().is_empty() {
            if let Some((_, expires)) = ini_edit::read_managed(&env.read_credentials(), "dev") {
                let left = expires.duration_since(now).unwrap_or_default();
                assert!(
                    left + Duration::from_secs(2) >= keep,
                    "{lifetime:?}: {left:?} left"
                );
            }
            let report = rt.block_on(engine.round(1));
            assert!(
                report.profiles.iter().all(|r| r.outcome.is_ok()),
                "{report:?}"
            );
            assert_eq!(report.write_error(), None);
        }
        let wait = schedule::sleep_for(now, engine.next_deadline());
        clock.advance(wait.max(Duration::from_secs(1)));
    }
    fake.count("GetRoleCredentials")
}

#[test]
fn the_engine_runs_a_simulated_day_with_every_duration_at_its_bound() {
    // 12 h credentials keep half their lifetime: a refresh about every 6 h (the lead and the
    // jitter take a little), 5 or 6 in 26 h. 1 h credentials: about every 28 minutes.
    let long = a_day_at_the_bounds(12 * HOUR);
    assert!(
        (5..=6).contains(&long),
        "{long} fetches of 12 h credentials"
    );
    let short = a_day_at_the_bounds(HOUR);
    eprintln!("26 simulated hours at the bounds: {long} fetches (12 h), {short} fetches (1 h)");
    assert!(
        (50..=60).contains(&short),
        "{short} fetches of 1 h credentials"
    );
}

fn any_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        (0u64..100 * 24 * 3600).prop_map(Duration::from_secs),
        Just(Duration::ZERO),
        Just(Duration::MAX),
    ]
}

fn any_time() -> impl Strategy<Value = SystemTime> {
    (0u64..(1 << 40)).prop_map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

fn any_jitter() -> impl Strategy<Value = f64> {
    prop_oneof![
        0.0..1.0f64,
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn schedule_arithmetic_never_panics_and_keeps_its_promises(
        min in any_duration(),
        lifetime in prop::option::of(any_duration()),
        issued in prop::option::of(any_time()),
        expires in any_time(),
        now in any_time(),
        jitter in any_jitter(),
        failures in any::<u32>(),
        retry_after in prop::option::of(any_duration()),
    ) {
        let keep = schedule::must_remain(lifetime, min);
        prop_assert!(keep <= min);
        if let Some(l) = lifetime.filter(|l| *l < min.saturating_mul(2)) {
            prop_assert_eq!(keep, l / 2);
        }
        let at = schedule::refresh_at(issued, expires, min, jitter);
        prop_assert!(at <= expires);
        let left = expires.duration_since(now).ok();
        let fresh = schedule::is_fresh(now, expires, lifetime, min);
        prop_assert_eq!(fresh, left.is_some_and(|l| l >= keep));
        let wait = schedule::backoff(failures, retry_after, jitter);
        prop_assert!(wait >= Duration::from_secs(1));
        prop_assert!(wait <= schedule::MAX_BACKOFF * 2);
        prop_assert!(schedule::sleep_for(now, Some(at)) <= schedule::MAX_SLEEP);
    }
}
