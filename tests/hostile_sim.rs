//! Conditions a strict organisation and a broken machine create, simulated in-process: SSO
//! tokens shorter than every margin, a full disk while refresh tokens rotate, a token cache that
//! stays broken for a day. The engine runs on a `ManualClock`, moved the way the daemon's loop
//! moves it (a round, then sleep until the next deadline, at most `MAX_SLEEP`), with the fake
//! SSO portal and SSO-OIDC on simulated time too, counting what it is asked.

use crate::support;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use credsync::engine::Engine;
use credsync::ini_edit;
use credsync::schedule::{self, Clock};
use credsync::status::State;
use support::fake_aws::FakeAws;
use support::{ManualClock, TestEnv, botocore_token_json};

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// One simulated daemon: a temp HOME with profiles `p0`, `p1` in sso-session `corp`, signed in
/// with a refreshable token, the engine on a `ManualClock`, and the fake on the same time.
struct Sim {
    env: TestEnv,
    clock: ManualClock,
    engine: Engine,
    rt: tokio::runtime::Runtime,
    /// Rounds run, and how many of them the daemon would have started without sleeping first.
    rounds: usize,
    fake: FakeAws,
}

impl Sim {
    /// Tokens from the fake's SSO-OIDC last `token_lifetime`; credsync's `[refresh]` table is
    /// `refresh_toml`. The token on disk at the start has `left` to go.
    fn new(token_lifetime: Duration, refresh_toml: &str, left: Duration) -> Sim {
        let fake = FakeAws::new();
        fake.set_credential_lifetime(HOUR);
        fake.add_refresh_token("fake-refresh-0", "fake-client-id");
        fake.set_token_expires_in(token_lifetime.as_secs() as i64);
        let env = TestEnv::with_fake(&fake);
        env.write_aws_config(
            "[sso-session corp]\nsso_start_url = https://fake.awsapps.com/start\nsso_region = us-east-1\n\n\
             [profile p0]\nsso_session = corp\nsso_account_id = 100000000000\nsso_role_name = Dev\n\n\
             [profile p1]\nsso_session = corp\nsso_account_id = 100000000001\nsso_role_name = Dev\n",
        );
        let start = SystemTime::now();
        fake.add_token_expiring("tok-initial", start + left);
        env.write_token_cache(
            "corp",
            &botocore_token_json(
                "tok-initial",
                start + left,
                Some(("fake-refresh-0", "fake-client-id", "fake-client-secret-0")),
            ),
        );
        let clock = ManualClock::new(start);
        let toml = format!(
            "[refresh]\n{refresh_toml}\n\n[[profiles]]\nsource = \"p0\"\n[[profiles]]\nsource = \"p1\"\n"
        );
        let mut engine = support::in_process_engine(&env, &fake, &toml, Arc::new(clock.clone()));
        engine.start();
        let rt = support::runtime();
        let sim = Sim {
            env,
            clock,
            engine,
            rt,
            rounds: 0,
            fake,
        };
        sim.sync_fake_clock();
        sim
    }

    /// The fake mints expirations from its own clock: keep it on simulated time.
    fn sync_fake_clock(&self) {
        self.fake.set_clock_to(self.clock.now());
    }

    /// Runs the daemon's loop for `span` of simulated time: a round (logged as the daemon logs
    /// it), then sleep until the next deadline, at most `MAX_SLEEP`. A round whose next
    /// deadline has passed already runs again without sleeping, as the daemon does: a hot loop
    /// shows as rounds without time passing.
    fn run_for(&mut self, span: Duration) {
        let end = self.clock.now() + span;
        while self.clock.now() < end {
            self.sync_fake_clock();
            let report = self.rt.block_on(self.engine.round(1));
            report.log_profiles();
            self.rounds += 1;
            assert!(
                self.rounds < 100_000,
                "the daemon's loop spins: {} rounds",
                self.rounds
            );
            let wait = schedule::sleep_for(self.clock.now(), self.engine.next_deadline());
            // A round takes a few milliseconds on a real machine.
            self.clock.advance(wait.max(Duration::from_millis(5)));
        }
    }

    fn status_json(&self) -> serde_json::Value {
        serde_json::to_value(self.engine.status()).expect("status serializes")
    }

    fn session(&self) -> serde_json::Value {
        self.status_json()["sso_sessions"][0].clone()
    }

    fn assert_all_fresh(&self, when: &str) {
        for p in &self.engine.status().profiles {
            assert_eq!(p.state, State::Fresh, "{when}: {p:?}");
        }
    }
}

/// Refresh tokens the fake was shown more than once (a single-use token used again).
fn reused_refresh_tokens(fake: &FakeAws) -> Vec<String> {
    let mut used: Vec<String> = fake
        .issued_tokens()
        .into_iter()
        .map(|t| t.refresh_token_used)
        .collect();
    used.sort();
    let mut twice: Vec<String> = used
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0].clone())
        .collect();
    twice.dedup();
    twice
}

#[test]
fn twenty_minute_tokens_are_refreshed_at_half_their_life_not_in_a_loop() {
    // Identity Center can issue tokens this short; the default token_refresh_before is 30 min,
    // and at its bound 12 h: both are longer than the whole token.
    for refresh_toml in ["", "token_refresh_before = \"12h\""] {
        let mut sim = Sim::new(20 * MINUTE, refresh_toml, 20 * MINUTE);
        sim.fake.set_rotate_refresh_tokens(true);
        sim.run_for(HOUR);
        let calls = sim.fake.count("CreateToken");
        // One at once (the token on disk is inside the margin, its lifetime unknown), then one
        // every ten minutes (half of each 20-minute token's life): 1 + 6.
        assert!(
            (6..=7).contains(&calls),
            "[{refresh_toml}]: {calls} CreateToken calls in a simulated hour"
        );
        assert!(
            calls as u32 <= (HOUR.as_secs() / schedule::MIN_REFRESH_INTERVAL.as_secs()) as u32 + 1,
            "the floor"
        );
        assert!(
            sim.rounds < 200,
            "[{refresh_toml}]: {} rounds in an hour",
            sim.rounds
        );
        sim.assert_all_fresh(refresh_toml);
        assert_eq!(reused_refresh_tokens(&sim.fake), Vec::<String>::new());
        let session = sim.session();
        // Whole seconds on disk: the lifetime credsync computes may lose the last one.
        let lifetime = session["token_lifetime_secs"].as_u64().unwrap_or_default();
        assert!((20 * 60 - 1..=20 * 60).contains(&lifetime), "{session}");
        eprintln!(
            "[{refresh_toml}] {calls} CreateToken calls, {} rounds in a simulated hour",
            sim.rounds
        );
    }
}

#[test]
fn tokens_shorter_than_the_floor_are_refreshed_at_most_once_a_floor_interval() {
    // 10-second tokens, which AWS never issues: half their life is 5 s, but no refresh comes
    // sooner than the floor after the last one.
    let mut sim = Sim::new(Duration::from_secs(10), "", Duration::from_secs(10));
    sim.run_for(HOUR);
    let calls = sim.fake.count("CreateToken");
    let most = (HOUR.as_secs() / schedule::MIN_REFRESH_INTERVAL.as_secs()) as usize + 1;
    assert!(calls <= most, "{calls} CreateToken calls, more than {most}");
    assert!(calls >= most / 2, "{calls}: the session is still kept");
    let issued = sim.fake.issued_tokens();
    assert!(!issued.is_empty());
    eprintln!(
        "10 s tokens: {calls} CreateToken calls, {} rounds in a simulated hour",
        sim.rounds
    );
}

/// A tmpfs mounted over `dir` (root only), unmounted on drop: a disk that can be filled.
struct SmallDisk {
    dir: PathBuf,
    filler: PathBuf,
}

impl SmallDisk {
    /// Mounts a 256 KiB tmpfs over `dir`, keeping what `dir` held. `None` where mounting is not
    /// allowed (not root).
    fn over(dir: &Path) -> Option<SmallDisk> {
        let saved: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
            .expect("read the cache dir")
            .map(|e| {
                let p = e.expect("dir entry").path();
                let bytes = std::fs::read(&p).expect("read a cache file");
                (p, bytes)
            })
            .collect();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return None;
        }
        for (p, bytes) in saved {
            std::fs::write(&p, bytes).expect("put the cache file back");
        }
        Some(SmallDisk {
            dir: dir.to_owned(),
            filler: dir.join("filler"),
        })
    }

    /// Fills the disk: every further write of data fails with ENOSPC.
    fn fill(&self) {
        let mut f = std::fs::File::create(&self.filler).expect("create the filler");
        let block = vec![0u8; 4096];
        loop {
            if let Err(e) = f.write_all(&block) {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
                break;
            }
        }
        let _ = f.sync_all();
    }

    fn free(&self) {
        std::fs::remove_file(&self.filler).expect("remove the filler");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

#[test]
fn a_full_disk_while_refresh_tokens_rotate_never_loses_the_session() {
    let mut sim = Sim::new(20 * MINUTE, "", HOUR);
    sim.fake.set_rotate_refresh_tokens(true);
    let Some(disk) = SmallDisk::over(&sim.env.sso_cache_dir()) else {
        support::skip(
            "a_full_disk_while_refresh_tokens_rotate_never_loses_the_session",
            "mounting a tmpfs needs root",
        );
        return;
    };
    // Settle: credentials on disk, the token refreshed once and saved.
    sim.run_for(40 * MINUTE);
    assert!(sim.fake.count("CreateToken") >= 1);
    assert!(sim.session()["token_unsaved_since"].is_null());
    sim.assert_all_fresh("before the disk fills");

    disk.fill();
    let before = sim.fake.count("CreateToken");
    // Two hours of a full disk: tokens keep rotating (every ten minutes), none reaches the file.
    for step in 0..24 {
        sim.run_for(5 * MINUTE);
        sim.assert_all_fresh(&format!("{step} x 5 min into the full disk"));
    }
    let during = sim.fake.count("CreateToken") - before;
    assert!(
        during >= 10,
        "only {during} refreshes while the disk was full"
    );
    let session = sim.session();
    assert!(
        session["token_unsaved_since"].is_string(),
        "status must say the token on disk is behind: {session}"
    );
    let error = session["token_unsaved_error"].as_str().unwrap_or_default();
    assert!(error.contains("No space left on device"), "{error}");
    assert_ne!(session["not_refreshable"], "refresh_refused", "{session}");

    disk.free();
    sim.run_for(10 * MINUTE);
    let session = sim.session();
    assert!(session["token_unsaved_since"].is_null(), "{session}");
    // The file holds the newest token SSO-OIDC issued, with its newest refresh token.
    let newest = sim.fake.issued_tokens().last().cloned().expect("issued");
    let on_disk = sim.env.read_token_cache("corp");
    assert_eq!(on_disk["accessToken"], newest.access_token.as_str());
    assert_eq!(
        on_disk["refreshToken"].as_str(),
        newest.new_refresh_token.as_deref()
    );
    // No refresh token was ever presented twice: none was dropped and retried.
    assert_eq!(reused_refresh_tokens(&sim.fake), Vec::<String>::new());
    sim.assert_all_fresh("after the disk was freed");
    assert!(ini_edit::read_managed(&sim.env.read_credentials(), "p0").is_some());
    drop(disk);
}

/// A `tracing` writer into a shared buffer: what the daemon would put in its journal.
#[derive(Clone, Default)]
struct Journal(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Journal {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Journal {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[test]
fn a_token_cache_broken_for_a_day_is_logged_a_few_times_not_every_second() {
    let mut sim = Sim::new(HOUR, "", 8 * HOUR);
    let journal = Journal::default();
    let writer = journal.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // Credentials on disk first, then the token cache turns to garbage and stays so.
    sim.run_for(MINUTE);
    sim.assert_all_fresh("before the cache breaks");
    std::fs::write(
        sim.env.token_cache_path("corp"),
        "{\"accessToken\": \"secret-garbage",
    )
    .expect("break the token cache");
    sim.run_for(24 * HOUR);
    // Every try of a profile reads the file: how often it was looked at.
    let tries = sim.engine.status().profiles[0].consecutive_failures;
    let log = journal.text();
    let lines = log.lines().count();
    assert!(
        lines <= 36,
        "{lines} log lines in a simulated day of a broken token cache:\n{log}"
    );
    // Looked at less and less often: every five minutes at the end, not every second (a day of
    // seconds is 86,400 tries; of five minutes 288).
    assert!((100..=400).contains(&tries), "{tries} tries in a day");
    assert!(log.contains("did not parse"), "the problem is said: {log}");
    assert!(!log.contains("secret-garbage"), "{log}");
    eprintln!(
        "{lines} log lines, {tries} tries in a simulated day of a broken token cache:\n{log}"
    );

    // Fixed by a new sign-in: the next round after the change refreshes, and says so once.
    sim.fake
        .add_token_expiring("tok-new", sim.clock.now() + 8 * HOUR);
    sim.env.write_token_cache(
        "corp",
        &botocore_token_json(
            "tok-new",
            sim.clock.now() + 8 * HOUR,
            Some(("fake-refresh-0", "fake-client-id", "fake-client-secret-0")),
        ),
    );
    sim.engine.token_cache_changed();
    sim.run_for(MINUTE);
    sim.assert_all_fresh("after a new sign-in");
}
