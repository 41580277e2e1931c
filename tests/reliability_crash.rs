//! Crash safety: the real `credsync sync` binary is killed with SIGKILL at random moments while it
//! refreshes and writes — a credentials file with 300 user sections and the SSO token cache (every
//! run refreshes the token) — a few hundred times. After each kill both files are whole: the
//! credentials file keeps every user byte, has both managed sections complete with a key set from
//! one mint (the old one or the new one), and the token cache parses. Temp files a kill leaves
//! behind are removed by the next run, which carries on.
//!
//! `CREDSYNC_RELIABILITY_SCALE` (default 1) multiplies the number of kills (200).

use crate::support;

use std::fs;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use credsync::ini_edit;
use credsync::secret::ExposeSecret;
use credsync::sso_cache;
use support::fake_aws::FakeAws;
use support::{FAKE_START_URL, TestEnv, botocore_token_json};

fn scale() -> usize {
    std::env::var("CREDSYNC_RELIABILITY_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// 300 user sections in the styles people write (comments, blank lines, `:` separators,
/// continuation lines, odd spacing), about 40 KB.
fn user_text() -> String {
    let mut s = String::from("# my own keys, hands off\n\n");
    for i in 0..300 {
        match i % 4 {
            0 => {
                s += &format!(
                    "[user-{i}]\naws_access_key_id = AKIAUSER{i:08}\naws_secret_access_key = user-secret-{i}\n\n"
                )
            }
            1 => {
                s += &format!(
                    "; legacy\n[user-{i}]\naws_access_key_id: AKIAUSER{i:08}\naws_secret_access_key:user-secret-{i}\nregion = eu-west-1\n"
                )
            }
            2 => {
                s += &format!(
                    "[user-{i}]\n  aws_access_key_id   =   AKIAUSER{i:08}  \naws_secret_access_key = user-secret-{i}\nnested =\n  a = b\n\n"
                )
            }
            _ => {
                s += &format!(
                    "[ user-{i} ]\naws_access_key_id = AKIAUSER{i:08}\naws_secret_access_key = ünïcode-{i}\n# trailing comment\n\n"
                )
            }
        }
    }
    s
}

fn paired(akid: &str, secret: &str, token: &str) -> bool {
    let Some(n) = secret
        .strip_prefix("fake-secret-")
        .and_then(|n| n.parse::<u64>().ok())
    else {
        return false;
    };
    akid.starts_with("ASIAFAKE")
        && akid.ends_with(&format!("{:06}", n % 1_000_000))
        && token == format!("fake-session-{n}")
}

fn temp_files(dir: &std::path::Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(".credsync-") && n.ends_with(".tmp"))
                .collect()
        })
        .unwrap_or_default()
}

/// Checks that the credentials file is whole; returns the access key ids of the managed sections.
fn check_whole(text: &str, user: &str, kill: usize) -> Vec<String> {
    assert!(
        text.starts_with(user),
        "kill {kill}: the user sections changed (file is {} bytes)",
        text.len()
    );
    ["t0", "t1"]
        .iter()
        .map(|t| {
            let (k, _) = ini_edit::read_managed(text, t).unwrap_or_else(|| {
                panic!(
                    "kill {kill}: no complete managed [{t}]:\n{}",
                    &text[user.len()..]
                )
            });
            let akid = k.access_key_id.expose_secret().to_owned();
            let token = k
                .session_token
                .as_ref()
                .map(|s| s.expose_secret())
                .unwrap_or_default();
            assert!(
                paired(&akid, k.secret_access_key.expose_secret(), token),
                "kill {kill}: [{t}] mixes two key sets"
            );
            akid
        })
        .collect()
}

#[test]
fn sigkill_at_random_moments_never_leaves_a_partial_file() {
    let fake = FakeAws::new();
    fake.add_refresh_token("fake-refresh-0", "fake-client-id");
    // Tokens that always need a refresh: every run rewrites the token cache as well.
    fake.set_token_expires_in(15 * 60);
    let env = TestEnv::with_fake(&fake);
    env.write_aws_config(&format!(
        "[sso-session corp]\nsso_start_url = {FAKE_START_URL}\nsso_region = us-east-1\n\n\
         [profile p0]\nsso_session = corp\nsso_account_id = 100000000000\nsso_role_name = Dev\n\n\
         [profile p1]\nsso_session = corp\nsso_account_id = 100000000001\nsso_role_name = Dev\n"
    ));
    env.write_config_toml(
        "[[profiles]]\nsource = \"p0\"\ntarget = \"t0\"\n[[profiles]]\nsource = \"p1\"\ntarget = \"t1\"\n",
    );
    let user = user_text();
    env.write_credentials(&user);
    fake.add_token("tok-initial");
    env.write_token_cache(
        "corp",
        &botocore_token_json(
            "tok-initial",
            SystemTime::now() + Duration::from_secs(600),
            Some(("fake-refresh-0", "fake-client-id", "fake-client-secret-0")),
        ),
    );
    let aws_dir = env.aws_dir();
    let cache_dir = env.sso_cache_dir();

    // A few complete runs: the first write, and how long a run takes here.
    let mut full = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let out = env.run(["sync"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        full.push(t.elapsed());
    }
    full.sort();
    let typical = full[1];
    let mut prev = check_whole(&env.read_credentials(), &user, 0);

    let kills = 200 * scale();
    let (mut changed, mut left_temps, mut exited_first) = (0usize, 0usize, 0usize);
    // The window the kill moments are drawn from: a typical run, and a little past it. Runs
    // slow down when other tests load the machine, so a window in which no kill has yet landed
    // after the rename grows (every 20 kills): both sides of the rename must be hit.
    let mut window = typical.mul_f64(1.2);
    let started = Instant::now();
    for kill in 1..=kills {
        if kill % 20 == 0 && changed == 0 {
            window = window.mul_f64(1.5);
        }
        let mut child = env
            .cmd(["sync"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn credsync sync");
        // A uniformly random moment in the window.
        let at = window.mul_f64(fastrand::f64());
        std::thread::sleep(at);
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGKILL);
        }
        let status = child.wait().expect("reap");
        if status.code().is_some() {
            exited_first += 1;
        }
        let now = check_whole(&env.read_credentials(), &user, kill);
        // Each managed section holds the old key set or a fresh one, never anything else.
        if now != prev {
            changed += 1;
        }
        prev = now;
        let token = fs::read(env.token_cache_path("corp")).expect("token cache exists");
        let t = sso_cache::parse(&token)
            .unwrap_or_else(|e| panic!("kill {kill}: the token cache does not parse: {e}"));
        assert!(
            t.access_token.expose_secret().starts_with("fake-access-")
                || t.access_token.expose_secret() == "tok-initial"
        );
        let temps = temp_files(&aws_dir).len() + temp_files(&cache_dir).len();
        if temps > 0 {
            left_temps += 1;
        }
    }
    let elapsed = started.elapsed();

    // The next run removes what the kills left and carries on.
    let before = temp_files(&aws_dir).len() + temp_files(&cache_dir).len();
    let out = env.run(["sync"]);
    assert!(
        out.status.success(),
        "a run after {kills} kills failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        temp_files(&aws_dir),
        Vec::<String>::new(),
        "stale temp files in ~/.aws"
    );
    assert_eq!(
        temp_files(&cache_dir),
        Vec::<String>::new(),
        "stale temp files in the cache"
    );
    check_whole(&env.read_credentials(), &user, kills + 1);
    let served = fake
        .last_credentials("100000000000", "Dev")
        .expect("served");
    let (k, _) = ini_edit::read_managed(&env.read_credentials(), "t0").expect("t0");
    assert_eq!(k.access_key_id.expose_secret(), served.access_key_id);

    eprintln!(
        "{kills} SIGKILLs in {elapsed:?} (a full run takes ~{typical:?}, kills within {window:?}): {changed} landed after \
         the rename of the credentials file, {} before it, {exited_first} runs had already \
         exited; {left_temps} kills left temp files ({before} at the end, all removed by the \
         next run)",
        kills - changed
    );
    // The kills must have hit both sides of the rename, or this test proved little.
    assert!(
        changed > 0 && changed < kills,
        "{changed} of {kills} kills saw a new file"
    );
}
