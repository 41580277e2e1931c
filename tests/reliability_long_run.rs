//! A long run: a simulated week of the refresh engine in-process, moved the way the daemon's loop
//! moves (to the next deadline, at most `MAX_SLEEP` at a time) on a `ManualClock`, against the fake
//! with 1-hour credentials and faults sprinkled in (an hour of 500s, an hour of 429s with
//! `Retry-After`, resets, every simulated half day). Resident memory, open file descriptors and the
//! runtime's live tasks are measured after the first simulated day (warm: clients built, buffers
//! grown) and at the end, and must be flat; the credentials on disk stay valid whenever no fault is
//! active, and the engine recovers after each fault.
//!
//! `CREDSYNC_RELIABILITY_SCALE` (default 1) multiplies the simulated days (7).

use crate::support;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use credsync::aws::AwsEdge;
use credsync::ini_edit;
use credsync::schedule::{self, Clock};
use credsync::status::State;
use support::fake_aws::{FakeAws, Fault, Route};
use support::{ManualClock, TestEnv, botocore_token_json};

const DAY: Duration = Duration::from_secs(24 * 3600);
const HOUR: Duration = Duration::from_secs(3600);

fn scale() -> u32 {
    std::env::var("CREDSYNC_RELIABILITY_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

fn rss_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

#[test]
fn a_simulated_week_with_faults_keeps_memory_fds_and_tasks_flat() {
    // Memory, fds and tasks are the process's: this test runs alone in a process of its own.
    if !support::alone(
        "reliability_long_run::a_simulated_week_with_faults_keeps_memory_fds_and_tasks_flat",
    ) {
        return;
    }
    let fake = FakeAws::new();
    fake.set_credential_lifetime(HOUR);
    let env = TestEnv::with_fake(&fake);
    let mut aws = String::from(
        "[sso-session corp]\nsso_start_url = https://fake.awsapps.com/start\nsso_region = us-east-1\n\n",
    );
    let mut toml = String::new();
    for i in 0..3 {
        aws += &format!(
            "[profile p{i}]\nsso_session = corp\nsso_account_id = {:012}\nsso_role_name = Dev\n\n",
            100_000 + i
        );
        toml += &format!("[[profiles]]\nsource = \"p{i}\"\n");
    }
    env.write_aws_config(&aws);
    let days = 7 * scale();
    let start = SystemTime::now();
    fake.add_token("tok");
    env.write_token_cache(
        "corp",
        &botocore_token_json("tok", start + (days + 2) * DAY, None),
    );
    let clock = ManualClock::new(start);
    // Short timeouts: a hang fault costs a second, not the default HTTP timeout.
    let mut engine = support::in_process_engine_with(
        &env,
        AwsEdge::only(&fake.url()).with_timeout(Duration::from_secs(2)),
        &toml,
        Arc::new(clock.clone()),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let mut warm: Option<(u64, usize, usize)> = None;
    let mut fault_until: Option<SystemTime> = None;
    let mut next_fault = start + DAY + 6 * HOUR;
    let (mut rounds, mut faults, mut outage_requests) = (0u64, 0u32, 0usize);
    let mut steps = 0u64;
    let mut recovered_by = start;
    while clock.now() < start + days * DAY {
        let now = clock.now();
        fake.set_clock_offset(
            now.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
                - SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_secs() as i64,
        );
        if warm.is_none() && now >= start + DAY {
            warm = Some((rss_kb(), open_fds(), rt.metrics().num_alive_tasks()));
        }
        // Faults: every 12 simulated hours, one hour of something going wrong.
        if fault_until.is_some_and(|t| now >= t) {
            fake.set_fault(Route::GetRoleCredentials, None);
            fault_until = None;
            // Backoff may keep the engine waiting up to its cap after the fault clears.
            recovered_by = now + schedule::MAX_BACKOFF + Duration::from_secs(60);
        }
        if fault_until.is_none() && now >= next_fault {
            let fault = match faults % 3 {
                0 => Fault::status(500, "InternalServerError"),
                1 => Fault::throttle(Some(30)),
                _ => Fault::ResetConnection,
            };
            fake.set_fault(Route::GetRoleCredentials, Some(fault));
            faults += 1;
            fault_until = Some(now + HOUR);
            next_fault = now + 12 * HOUR;
        }
        let due = engine.due();
        if !due.is_empty() {
            let before = fake.count("GetRoleCredentials");
            let report = rt.block_on(engine.round(1));
            if fault_until.is_some() {
                outage_requests += fake.count("GetRoleCredentials") - before;
            }
            assert_eq!(report.write_error(), None, "write");
            rounds += 1;
        }
        // Outside faults (once the backoff after one has run out), what is on disk is valid.
        if fault_until.is_none() && rounds > 0 && now >= recovered_by {
            let text = env.read_credentials();
            for i in 0..3 {
                let (_, expires) = ini_edit::read_managed(&text, &format!("p{i}"))
                    .expect("the managed section stays");
                assert!(expires > now, "p{i} expired on disk at {now:?}");
            }
        }
        clock.advance(
            schedule::sleep_for(clock.now(), engine.next_deadline()).max(Duration::from_secs(1)),
        );
        steps += 1;
    }
    // Recovered: the last fault has cleared and every profile is fresh again.
    fake.set_fault(Route::GetRoleCredentials, None);
    clock.advance(schedule::MAX_BACKOFF * 2);
    let report = rt.block_on(engine.round(1));
    assert_eq!(report.write_error(), None, "write");
    for p in engine.status().profiles {
        assert_eq!(p.state, State::Fresh, "{p:?}");
    }

    let (rss0, fds0, tasks0) = warm.expect("measured after a day");
    let (rss1, fds1, tasks1) = (rss_kb(), open_fds(), rt.metrics().num_alive_tasks());
    let calls = fake.count("GetRoleCredentials");
    let outage_hours = f64::from(faults);
    eprintln!(
        "{days} simulated days in {steps} loop steps: {rounds} refresh rounds, {calls} \
         GetRoleCredentials calls, {faults} one-hour faults with {outage_requests} requests during \
         them ({:.1} per profile per faulty hour); RSS {rss0} kB -> {rss1} kB, fds {fds0} -> \
         {fds1}, live tasks {tasks0} -> {tasks1}",
        outage_requests as f64 / 3.0 / outage_hours
    );
    assert!(
        rss1 <= rss0 + 4096,
        "resident memory grew from {rss0} kB to {rss1} kB"
    );
    assert!(fds1 <= fds0 + 2, "open fds grew from {fds0} to {fds1}");
    assert!(
        tasks1 <= tasks0 + 2,
        "live tasks grew from {tasks0} to {tasks1}"
    );
    // The backoff holds the request rate down during a fault: with 5 s .. 5 min backoff a
    // profile makes at most a few dozen calls in a failing hour.
    assert!(
        (outage_requests as f64) / 3.0 / outage_hours <= 40.0,
        "{outage_requests} requests in {faults} faulty hours"
    );
}
