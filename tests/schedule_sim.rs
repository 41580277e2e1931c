//! The refresh schedule over a simulated day: the engine runs against the fake SSO portal with a
//! `ManualClock` moved the way the daemon's loop moves (to the next deadline, at most
//! `MAX_SLEEP` at a time), and the credentials on disk must keep at least `min_remaining` (or
//! half their lifetime) at every moment, with close to the fewest refreshes that allows.

use crate::support;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use credsync::ini_edit;
use credsync::schedule::{self, Clock};
use support::fake_aws::FakeAws;
use support::{ManualClock, TestEnv, botocore_token_json};

const MIN_REMAINING: Duration = Duration::from_secs(20 * 60);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// Runs one simulated day for credentials of `lifetime`; returns the number of refresh calls.
fn simulate_day(lifetime: Duration) -> usize {
    let fake = FakeAws::new();
    fake.set_credential_lifetime(lifetime);
    let env = TestEnv::with_fake(&fake);
    env.write_aws_config(
        "[sso-session corp]\nsso_start_url = https://fake.awsapps.com/start\nsso_region = us-east-1\n\n\
         [profile dev]\nsso_session = corp\nsso_account_id = 111111111111\nsso_role_name = Dev\n",
    );
    let start = SystemTime::now();
    fake.add_token("tok");
    env.write_token_cache("corp", &botocore_token_json("tok", start + 2 * DAY, None));
    let clock = ManualClock::new(start);
    let mut engine = support::in_process_engine(
        &env,
        &fake,
        "[[profiles]]\nsource = \"dev\"\n",
        Arc::new(clock.clone()),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let must_remain = schedule::must_remain(Some(lifetime), MIN_REMAINING);

    let mut first = true;
    while clock.now() < start + DAY {
        let now = clock.now();
        // The fake mints expirations from its own clock: keep it on simulated time.
        fake.set_clock_offset(
            now.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
                - SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_secs() as i64,
        );
        let due = engine.due();
        if !due.is_empty() {
            if !first {
                // Just before a refresh is the least the disk holds between two refreshes.
                let (_, expires) = ini_edit::read_managed(&env.read_credentials(), "dev")
                    .expect("managed section");
                let left = expires.duration_since(now).unwrap_or_default();
                assert!(
                    left + Duration::from_secs(2) >= must_remain,
                    "{lifetime:?} credentials: only {left:?} left at {:?} into the day",
                    now.duration_since(start).unwrap()
                );
            }
            first = false;
            let report = rt.block_on(engine.round(1));
            assert!(
                report.profiles.iter().all(|r| r.outcome.is_ok()),
                "{report:?}"
            );
            assert_eq!(report.write_error(), None, "write");
        }
        clock.advance(
            schedule::sleep_for(clock.now(), engine.next_deadline()).max(Duration::from_secs(1)),
        );
    }
    fake.count("GetRoleCredentials")
}

#[test]
fn the_invariant_holds_over_a_day_with_close_to_the_fewest_refreshes() {
    for (lifetime, fewest) in [
        // Each set of credentials can serve (lifetime - must_remain) before it must be replaced;
        // the fewest calls for a day is one at the start plus one per whole such span in it.
        (Duration::from_secs(15 * 60), 1 + 192), // 15 min: 7.5 min each
        (Duration::from_secs(3600), 1 + 36),     // 1 h: 40 min each
        (Duration::from_secs(12 * 3600), 1 + 2), // 12 h: 11 h 40 min each
    ] {
        let calls = simulate_day(lifetime);
        assert!(
            calls >= fewest,
            "{lifetime:?}: {calls} calls is fewer than the invariant allows"
        );
        // Lead (a twentieth of the lifetime, at most a minute) and jitter (up to a fortieth)
        // cost a little: seen 214 (15 min), 38 (1 h) and 3 (12 h).
        let most = fewest + fewest * 20 / 100;
        assert!(
            calls <= most,
            "{lifetime:?}: {calls} calls, more than {most}"
        );
        eprintln!(
            "{lifetime:?}: {calls} refresh calls in 24 simulated hours (fewest possible {fewest})"
        );
    }
}

#[test]
fn manual_clock_moves_only_when_told() {
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let c = ManualClock::new(start);
    assert_eq!(c.now(), start);
    c.advance(Duration::from_secs(3 * 3600));
    assert_eq!(c.now(), start + Duration::from_secs(3 * 3600));
}
