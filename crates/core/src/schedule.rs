//! When each profile refreshes: deadlines from expiries, backoff after failures, and the
//! `Clock` that tests move instead of sleeping. Pure: every function takes `now`.
//!
//! Deadlines are wall-clock (`SystemTime`), never `Instant`: `Instant` stops while a laptop
//! sleeps, and credentials expire by the wall clock. The daemon sleeps at most
//! [`MAX_SLEEP`] at a time and looks at the clock again, so after a resume anything due is
//! refreshed within that.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The longest the daemon sleeps without looking at the wall clock again.
pub const MAX_SLEEP: Duration = Duration::from_secs(60);

/// The cap of the exponential backoff after failures.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5 * 60);

/// The first backoff step.
pub const BASE_BACKOFF: Duration = Duration::from_secs(5);

/// The least time between two successful refreshes of one SSO token or one profile, whatever
/// the lifetimes AWS (or anything answering in its place) hands out. AWS issues nothing that
/// short (15 minutes is the least), so with real credentials the schedule never reaches it:
/// it is the bound that keeps a token or credentials shorter than every margin from being
/// refreshed in a loop.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(60);

/// A wait in progress (see [`Clock::sleep`]).
pub type Wait = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Wall-clock time and waiting, injectable: the engine's retries wait through it, so a test's
/// clock moves on by the wait instead of the test sleeping. The real one is the engine's
/// `SystemClock`.
pub trait Clock: Send + Sync {
    fn now(&self) -> SystemTime;

    /// Waits `d`: the real clock sleeps (without blocking the runtime); a test's clock moves
    /// on by `d` at once.
    fn sleep(&self, d: Duration) -> Wait;
}

/// Uniform numbers in `[0, 1)`: the jitter of deadlines and backoffs. Injected like the
/// [`Clock`], so that tests can pin it.
pub type Random = Arc<dyn Fn() -> f64 + Send + Sync>;

/// `x` clamped to `[0, 1]`, NaN as 0: a factor `Duration::mul_f64` takes without panicking.
fn unit(x: f64) -> f64 {
    if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) }
}

/// How much must be left on disk at every moment for credentials of `lifetime`:
/// `min_remaining`, or half the lifetime for credentials shorter than twice that.
pub fn must_remain(lifetime: Option<Duration>, min_remaining: Duration) -> Duration {
    match lifetime {
        Some(l) if l < min_remaining.saturating_mul(2) => l / 2,
        _ => min_remaining,
    }
}

/// When a reader of an `aws login` session renews it itself: botocore's
/// `LoginCredentialFetcher` (AWS CLI v2, boto3) calls AWS Sign-In once the cache entry's
/// credentials have less than this left (`_REFRESH_THRESHOLD = 5 * 60`). Its
/// `RefreshableCredentials` look at the entry on every use (their advisory window, 15 minutes,
/// is the credentials' whole life), so each reader would spend the rotating refresh token
/// and they would lose the session to each other.
pub const LOGIN_READER_REFRESH: Duration = Duration::from_secs(5 * 60);

/// How far above [`LOGIN_READER_REFRESH`] credsync renews a login session at the latest: room
/// for a slow answer and a few retries (5 s, 10 s, 20 s, 40 s of backoff) before any reader
/// would start its own renewal.
pub const LOGIN_MARGIN: Duration = Duration::from_secs(2 * 60);

/// The least an `aws login` session's credentials keep on disk, whatever `min_remaining` says:
/// [`LOGIN_READER_REFRESH`] plus [`LOGIN_MARGIN`] (the credentials last 15 minutes, so the
/// default of half their life, 7½ minutes, is already above it).
pub const LOGIN_MIN_REMAINING: Duration =
    Duration::from_secs(LOGIN_READER_REFRESH.as_secs() + LOGIN_MARGIN.as_secs());

/// Whether `min_remaining` is raised for `aws login` sessions ([`LOGIN_MIN_REMAINING`]): said
/// once in the log, and by doctor.
pub fn login_raises(min_remaining: Duration) -> bool {
    min_remaining < LOGIN_MIN_REMAINING
}

/// When [`login_raises`]: what the daemon's log and doctor say of it.
pub fn login_raised_note(min_remaining: Duration) -> Option<String> {
    login_raises(min_remaining).then(|| {
        format!(
            "[refresh] min_remaining = {} is raised to {} for aws login sessions: their readers \
             (botocore, the AWS CLI) renew the session themselves below {} left, and would race \
             each other for its refresh token",
            humantime::format_duration(min_remaining),
            humantime::format_duration(LOGIN_MIN_REMAINING),
            humantime::format_duration(LOGIN_READER_REFRESH)
        )
    })
}

/// [`must_remain`], and for the credentials of an `aws login` session (`login`) never less
/// than [`LOGIN_MIN_REMAINING`], even when they are short: the one rule that keeps the
/// session's renewal credsync's.
pub fn must_remain_for(
    lifetime: Option<Duration>,
    min_remaining: Duration,
    login: bool,
) -> Duration {
    let keep = must_remain(lifetime, min_remaining);
    if login {
        keep.max(LOGIN_MIN_REMAINING)
    } else {
        keep
    }
}

/// The margin taken before the [`must_remain`] line, so that a refresh that takes a while
/// (a slow network, a retry or two) still lands before it: a twentieth of the lifetime, at
/// most a minute.
pub(crate) fn lead(lifetime: Option<Duration>) -> Duration {
    let l = lifetime.unwrap_or(Duration::from_secs(3600));
    (l / 20).min(Duration::from_secs(60))
}

/// When credentials issued at `issued` (if known) and expiring at `expires` should be
/// refreshed, given `min_remaining`. `jitter` in `[0, 1)` moves the deadline earlier by up to
/// a twentieth of the lifetime, so that many profiles issued together do not fall due together.
pub fn refresh_at(
    issued: Option<SystemTime>,
    expires: SystemTime,
    min_remaining: Duration,
    jitter: f64,
) -> SystemTime {
    refresh_at_for(issued, expires, min_remaining, jitter, false)
}

/// [`refresh_at`], for an `aws login` session's credentials when `login`
/// ([`must_remain_for`]).
pub fn refresh_at_for(
    issued: Option<SystemTime>,
    expires: SystemTime,
    min_remaining: Duration,
    jitter: f64,
    login: bool,
) -> SystemTime {
    let lifetime = issued.and_then(|i| expires.duration_since(i).ok());
    let keep = must_remain_for(lifetime, min_remaining, login).saturating_add(lead(lifetime));
    let spread = lifetime
        .map(|l| (l / 40).mul_f64(unit(jitter)))
        .unwrap_or_default();
    expires
        .checked_sub(keep.saturating_add(spread))
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// How long ahead of its expiry an SSO token of `lifetime` (when known) is refreshed:
/// `before` (`token_refresh_before`), or half the lifetime when that is less, so that a token
/// shorter than the margin is still used for half its life instead of being refreshed the
/// moment it arrives.
pub fn token_lead(lifetime: Option<Duration>, before: Duration) -> Duration {
    match lifetime {
        Some(l) if l / 2 < before => l / 2,
        _ => before,
    }
}

/// Whether [`token_lead`] shortens `before` for tokens of `lifetime`: the schedule then follows
/// the lifetime, not the setting (said once in the log, and by doctor).
pub fn token_shorter_than_lead(lifetime: Option<Duration>, before: Duration) -> bool {
    token_lead(lifetime, before) < before
}

/// When an SSO token expiring at `expires` is refreshed: [`token_lead`] ahead of its expiry,
/// and never sooner than [`MIN_REFRESH_INTERVAL`] after the last successful refresh.
pub fn token_refresh_at(
    expires: SystemTime,
    lifetime: Option<Duration>,
    before: Duration,
    last_success: Option<SystemTime>,
) -> SystemTime {
    let due = expires
        .checked_sub(token_lead(lifetime, before))
        .map_or(SystemTime::UNIX_EPOCH, |t| t.max(SystemTime::UNIX_EPOCH));
    not_sooner_than_the_floor(due, last_success)
}

/// `at`, or [`MIN_REFRESH_INTERVAL`] after `last_success` when that is later.
pub fn not_sooner_than_the_floor(at: SystemTime, last_success: Option<SystemTime>) -> SystemTime {
    match last_success.and_then(|t| t.checked_add(MIN_REFRESH_INTERVAL)) {
        Some(floor) => at.max(floor),
        None => at,
    }
}

/// Whether credentials expiring at `expires` still satisfy the on-disk invariant at `now`.
pub fn is_fresh(
    now: SystemTime,
    expires: SystemTime,
    lifetime: Option<Duration>,
    min_remaining: Duration,
) -> bool {
    is_fresh_for(now, expires, lifetime, min_remaining, false)
}

/// [`is_fresh`], for an `aws login` session's credentials when `login` ([`must_remain_for`]).
pub fn is_fresh_for(
    now: SystemTime,
    expires: SystemTime,
    lifetime: Option<Duration>,
    min_remaining: Duration,
    login: bool,
) -> bool {
    expires
        .duration_since(now)
        .is_ok_and(|left| left >= must_remain_for(lifetime, min_remaining, login))
}

/// The wait before retry number `failures` (1 for the first retry): exponential from
/// [`BASE_BACKOFF`], capped at [`MAX_BACKOFF`], with full jitter (`jitter` in `[0, 1)`), and
/// never shorter than the server's `Retry-After`.
pub fn backoff(failures: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
    let exp = BASE_BACKOFF.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    let capped = exp.min(MAX_BACKOFF);
    // Full jitter, but never a hot loop: at least one second.
    let wait = capped.mul_f64(unit(jitter)).max(Duration::from_secs(1));
    match retry_after {
        Some(ra) => wait.max(ra.min(MAX_BACKOFF * 2)),
        None => wait,
    }
}

/// When to read a token file again that did not parse, after `failures` such reads in a row.
/// The AWS CLI writes the token cache in place (truncate, then write), so the file is usually
/// whole a few milliseconds later: 5 ms, doubling. A file that stays broken is read less and
/// less often, at most every [`MAX_BACKOFF`] (a change of the file is noticed at once anyway).
pub fn unreadable_token_retry(failures: u32) -> Duration {
    const FIRST: Duration = Duration::from_millis(5);
    FIRST
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(MAX_BACKOFF)
}

/// How long to sleep before looking again: until `next`, but at most [`MAX_SLEEP`].
pub fn sleep_for(now: SystemTime, next: Option<SystemTime>) -> Duration {
    match next {
        Some(next) => next.duration_since(now).unwrap_or_default().min(MAX_SLEEP),
        None => MAX_SLEEP,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    #[test]
    fn an_unreadable_token_is_read_again_within_milliseconds_then_less_and_less_often() {
        let ms = |n: u64| Duration::from_millis(n);
        assert_eq!(unreadable_token_retry(1), ms(5));
        assert_eq!(unreadable_token_retry(2), ms(10));
        assert_eq!(unreadable_token_retry(5), ms(80));
        assert_eq!(unreadable_token_retry(9), ms(1280));
        // A file that stays broken: every five minutes, not every second.
        assert_eq!(unreadable_token_retry(17), MAX_BACKOFF);
        assert_eq!(unreadable_token_retry(u32::MAX), MAX_BACKOFF);
        // A first failure counted as 0 still waits, never a hot loop.
        assert_eq!(unreadable_token_retry(0), ms(5));
    }

    #[test]
    fn a_token_shorter_than_the_margin_is_refreshed_at_half_its_life() {
        let before = Duration::from_secs(30 * 60);
        let min = |m: u64| Duration::from_secs(m * 60);
        // 20-minute tokens under the default 30 minutes: refreshed 10 minutes in, not at once.
        assert_eq!(token_lead(Some(min(20)), before), min(10));
        assert!(token_shorter_than_lead(Some(min(20)), before));
        assert_eq!(
            token_refresh_at(t(20 * 60), Some(min(20)), before, Some(t(0))),
            t(600)
        );
        // An hour-long token: the setting as it is.
        assert_eq!(token_lead(Some(min(60)), before), before);
        assert!(!token_shorter_than_lead(Some(min(60)), before));
        // Unknown lifetime (a token credsync did not refresh): the setting.
        assert_eq!(token_refresh_at(t(3600), None, before, None), t(1800));
    }

    #[test]
    fn no_token_is_refreshed_sooner_than_the_floor_after_a_success() {
        let before = Duration::from_secs(12 * 3600);
        // A 10-second token: half its life is 5 s, but the floor holds it for a minute.
        let at = token_refresh_at(t(10), Some(Duration::from_secs(10)), before, Some(t(0)));
        assert_eq!(at, t(0) + MIN_REFRESH_INTERVAL);
        // Without a success to count from (a token read at start), the deadline as it is.
        assert_eq!(token_refresh_at(t(10), None, before, None), t(10) - before);
        // At the far end of time nothing overflows.
        let end = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::MAX / 4);
        assert!(token_refresh_at(end, Some(Duration::MAX), Duration::MAX, Some(end)) >= end);
    }

    #[test]
    fn long_credentials_keep_min_remaining_plus_lead() {
        let at = refresh_at(Some(t(0)), t(3600), Duration::from_secs(20 * 60), 0.0);
        // 1 h credentials: 20 min must remain, 1 min lead.
        assert_eq!(at, t(3600 - 20 * 60 - 60));
    }

    #[test]
    fn a_login_session_is_renewed_above_botocores_threshold_whatever_min_remaining_says() {
        let life = Duration::from_secs(15 * 60);
        let m = |x: u64| Duration::from_secs(x * 60);
        for min_remaining in [
            Duration::from_secs(1),
            m(2),
            m(5),
            m(6),
            m(7),
            m(20),
            m(720),
        ] {
            for jitter in [0.0, 0.5, 0.999] {
                let at = refresh_at_for(Some(t(0)), t(0) + life, min_remaining, jitter, true);
                let left = (t(0) + life).duration_since(at).unwrap();
                // The whole margin above the reader's threshold, and the floor of the rule.
                assert!(
                    left >= LOGIN_READER_REFRESH + LOGIN_MARGIN,
                    "{min_remaining:?}: renewed with {left:?} left"
                );
                // Never due before it even started (a renewal loop).
                assert!(at > t(0), "{min_remaining:?}: due at once");
            }
            // Credentials found with less left (another program renewed them): the same floor.
            let at = refresh_at_for(Some(t(0)), t(0) + m(10), min_remaining, 0.0, true);
            assert!((t(0) + m(10)).duration_since(at).unwrap() >= LOGIN_MIN_REMAINING);
            // On disk at start (lifetime unknown): fresh only with the setting or the floor
            // left, whichever is more.
            let expires = t(0) + min_remaining.max(LOGIN_MIN_REMAINING);
            assert!(is_fresh_for(t(0), expires, None, min_remaining, true));
            assert!(!is_fresh_for(t(1), expires, None, min_remaining, true));
            assert_eq!(login_raises(min_remaining), min_remaining < m(7));
        }
        // Other profiles keep the setting as it is.
        assert_eq!(must_remain_for(Some(life), m(2), false), m(2));
        assert_eq!(must_remain_for(Some(life), m(2), true), LOGIN_MIN_REMAINING);
        assert_eq!(
            refresh_at_for(Some(t(0)), t(900), m(2), 0.0, false),
            refresh_at(Some(t(0)), t(900), m(2), 0.0)
        );
        // The default (20 minutes) is half the 15-minute life, above the floor: not raised.
        assert_eq!(must_remain_for(Some(life), m(20), true), life / 2);
        assert!(!login_raises(m(20)));
    }

    #[test]
    fn short_credentials_keep_half_their_lifetime() {
        // 80 s credentials with min_remaining 60 s: keep 40 s, lead 4 s.
        let at = refresh_at(Some(t(0)), t(80), MIN, 0.0);
        assert_eq!(at, t(80 - 40 - 4));
        assert!(is_fresh(t(40), t(80), Some(Duration::from_secs(80)), MIN));
        assert!(!is_fresh(t(41), t(80), Some(Duration::from_secs(80)), MIN));
    }

    #[test]
    fn jitter_only_moves_deadlines_earlier_and_by_at_most_a_fortieth() {
        let plain = refresh_at(Some(t(0)), t(3600), MIN, 0.0);
        let jittered = refresh_at(Some(t(0)), t(3600), MIN, 0.999);
        assert!(jittered < plain);
        assert!(plain.duration_since(jittered).unwrap() <= Duration::from_secs(90));
    }

    #[test]
    fn unknown_lifetime_uses_min_remaining() {
        assert_eq!(refresh_at(None, t(3600), MIN, 0.0), t(3600 - 60 - 60));
    }

    #[test]
    fn backoff_grows_caps_and_honours_retry_after() {
        assert_eq!(backoff(1, None, 1.0), BASE_BACKOFF);
        assert_eq!(backoff(3, None, 1.0), BASE_BACKOFF * 4);
        assert_eq!(backoff(30, None, 1.0), MAX_BACKOFF);
        assert_eq!(
            backoff(1, None, 0.0),
            Duration::from_secs(1),
            "never a hot loop"
        );
        assert_eq!(
            backoff(1, Some(Duration::from_secs(42)), 0.0),
            Duration::from_secs(42)
        );
        // The figures the docs give: at most five minutes, and a server's Retry-After honoured
        // up to ten (a longer one is cut there).
        assert_eq!(backoff(30, None, 1.0), Duration::from_secs(5 * 60));
        assert_eq!(
            backoff(1, Some(Duration::from_secs(600)), 0.0),
            Duration::from_secs(600)
        );
        assert_eq!(
            backoff(1, Some(Duration::from_secs(3600)), 0.0),
            Duration::from_secs(600)
        );
    }

    #[test]
    fn sleeps_are_bounded_so_a_suspend_is_noticed() {
        assert_eq!(sleep_for(t(0), Some(t(3600))), MAX_SLEEP);
        assert_eq!(sleep_for(t(0), Some(t(10))), Duration::from_secs(10));
        assert_eq!(sleep_for(t(10), Some(t(0))), Duration::ZERO);
        assert_eq!(sleep_for(t(0), None), MAX_SLEEP);
    }
}
