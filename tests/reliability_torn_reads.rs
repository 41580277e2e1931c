//! Torn reads: while credsync rewrites the credentials file and the SSO token cache thousands of
//! times, concurrent readers parse both continuously — botocore's own config loader in a python
//! process and `credsync::ini_edit::read_managed` / `sso_cache::parse` in a Rust thread — and never
//! see a parse failure, a missing section or a key set mixed from two writes.
//!
//! The writer is the library `Engine` in-process, made due and written in a tight loop against
//! the fake (real HTTP, real `write::update`, real token refresh through SSO-OIDC): this gives
//! thousands of rewrites in seconds, where the daemon would need hours of short-lived
//! credentials. Every credential set the fake mints pairs `ASIAFAKE…<n % 10^6>` with
//! `fake-secret-<n>` and `fake-session-<n>`; every token it issues pairs `fake-access-<n>` with
//! the rotated `fake-refresh-<n>`: a reader checks that pairing on every read.
//!
//! `CREDSYNC_RELIABILITY_SCALE` (default 1) multiplies the number of rounds (800; each
//! rewrites the credentials file once and the token cache once).

use crate::support;

use std::fs;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use credsync::engine::Engine;
use credsync::ini_edit;
use credsync::schedule::Clock;
use credsync::secret::ExposeSecret;
use credsync::sso_cache;
use support::fake_aws::FakeAws;
use support::{FAKE_START_URL, ManualClock, TestEnv, botocore_token_json, python};

const TARGETS: [&str; 2] = ["t0", "t1"];

fn scale() -> usize {
    std::env::var("CREDSYNC_RELIABILITY_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// Whether an access key id, secret and session token come from one mint of the fake.
fn paired(akid: &str, secret: &str, token: &str) -> bool {
    let Some(n) = secret.strip_prefix("fake-secret-") else {
        return false;
    };
    let Ok(n) = n.parse::<u64>() else {
        return false;
    };
    akid.starts_with("ASIAFAKE")
        && akid.ends_with(&format!("{:06}", n % 1_000_000))
        && token == format!("fake-session-{n}")
}

/// Whether a token cache entry holds an access token with its own refresh token.
fn token_paired(access: &str, refresh: Option<&str>) -> bool {
    match (access.strip_prefix("fake-access-"), refresh) {
        (Some(n), Some(r)) => r == format!("fake-refresh-{n}"),
        // The file as the test wrote it, before the first refresh.
        (None, Some(r)) => access == "tok-initial" && r == "fake-refresh-0",
        _ => false,
    }
}

/// The python reader: botocore's `raw_config_parse` (what the shared-credentials provider
/// uses) on the credentials file, `json.load` on the token cache, until the stop file appears.
const PY_READER: &str = r#"
import json, os, re, sys, time
from botocore.configloader import raw_config_parse
creds, cache, ready, stop = sys.argv[1:5]
targets = sys.argv[5].split(",")
reads = fails = mixed = 0
treads = tfails = tmixed = 0
errors = []
def paired(akid, secret, token):
    m = re.fullmatch(r"fake-secret-(\d+)", secret or "")
    if not m:
        return False
    n = int(m.group(1))
    return akid.startswith("ASIAFAKE") and akid.endswith("%06d" % (n % 1000000)) \
        and token == "fake-session-%d" % n
open(ready, "w").close()
while not os.path.exists(stop):
    reads += 1
    try:
        cfg = raw_config_parse(creds)
        for t in targets:
            s = cfg[t]
            if not paired(s["aws_access_key_id"], s["aws_secret_access_key"], s["aws_session_token"]):
                mixed += 1
                errors.append("mixed %s: %r" % (t, s.get("aws_access_key_id")))
    except Exception as e:
        fails += 1
        errors.append("%s: %s" % (type(e).__name__, str(e)[:200]))
    treads += 1
    try:
        with open(cache) as f:
            tok = json.load(f)
        a, r = tok["accessToken"], tok.get("refreshToken")
        ok = (a.startswith("fake-access-") and r == "fake-refresh-" + a[len("fake-access-"):]) \
            or (a == "tok-initial" and r == "fake-refresh-0")
        if not ok:
            tmixed += 1
            errors.append("mixed token: %r %r" % (a, r))
    except Exception as e:
        tfails += 1
        errors.append("token %s: %s" % (type(e).__name__, str(e)[:200]))
    time.sleep(0.0002)
print(json.dumps({"reads": reads, "fails": fails, "mixed": mixed, "treads": treads,
                  "tfails": tfails, "tmixed": tmixed, "errors": errors[:10]}))
"#;

#[derive(Debug, Default)]
struct RustCounts {
    reads: u64,
    fails: u64,
    mixed: u64,
    token_reads: u64,
    token_fails: u64,
    token_mixed: u64,
    errors: Vec<String>,
}

fn rust_reader(
    creds: std::path::PathBuf,
    cache: std::path::PathBuf,
    stop: Arc<AtomicBool>,
) -> RustCounts {
    let mut c = RustCounts::default();
    while !stop.load(Ordering::Relaxed) {
        c.reads += 1;
        match fs::read_to_string(&creds) {
            Ok(text) => {
                for t in TARGETS {
                    match ini_edit::read_managed(&text, t) {
                        Some((k, _)) => {
                            let token = k.session_token.as_ref().map(|s| s.expose_secret());
                            if !paired(
                                k.access_key_id.expose_secret(),
                                k.secret_access_key.expose_secret(),
                                token.unwrap_or_default(),
                            ) {
                                c.mixed += 1;
                                c.errors.push(format!("mixed key set in [{t}]"));
                            }
                        }
                        None => {
                            c.fails += 1;
                            c.errors.push(format!("no managed [{t}] in a read"));
                        }
                    }
                }
            }
            Err(e) => {
                c.fails += 1;
                c.errors.push(format!("read: {e}"));
            }
        }
        c.token_reads += 1;
        match fs::read(&cache).map(|b| sso_cache::parse(&b)) {
            Ok(Ok(t)) => {
                let refresh = t.refresh_token.as_ref().map(|s| s.expose_secret());
                if !token_paired(t.access_token.expose_secret(), refresh) {
                    c.token_mixed += 1;
                    c.errors.push("mixed token".into());
                }
            }
            Ok(Err(e)) => {
                c.token_fails += 1;
                c.errors.push(format!("token parse: {e}"));
            }
            Err(e) => {
                c.token_fails += 1;
                c.errors.push(format!("token read: {e}"));
            }
        }
        c.errors.truncate(10);
        // Leave the writer some CPU on a small CI machine: a read every ~100 µs is still
        // hundreds of reads per rewrite.
        std::thread::sleep(Duration::from_micros(100));
    }
    c
}

#[test]
fn readers_never_see_a_torn_or_mixed_file_during_thousands_of_rewrites() {
    let py = python::python();
    if py.is_none() {
        python::skip("readers_never_see_a_torn_or_mixed_file (the Rust reader still runs)");
    }
    let fake = FakeAws::new();
    fake.add_refresh_token("fake-refresh-0", "fake-client-id");
    fake.set_rotate_refresh_tokens(true);
    // 15-minute tokens are refreshed half-way through their life: with the clock moved past that
    // between rounds, every round rewrites the token cache too.
    fake.set_token_expires_in(15 * 60);
    let env = TestEnv::with_fake(&fake);
    env.write_aws_config(&format!(
        "[sso-session corp]\nsso_start_url = {FAKE_START_URL}\nsso_region = us-east-1\n\n\
         [profile p0]\nsso_session = corp\nsso_account_id = 100000000000\nsso_role_name = Dev\n\n\
         [profile p1]\nsso_session = corp\nsso_account_id = 100000000001\nsso_role_name = Dev\n"
    ));
    // A user's own sections around the managed ones, which must survive every rewrite.
    env.write_credentials(
        "# mine\n[user-a]\naws_access_key_id = AKIAUSER\naws_secret_access_key = user-secret\n",
    );
    fake.add_token("tok-initial");
    env.write_token_cache(
        "corp",
        &botocore_token_json(
            "tok-initial",
            SystemTime::now() + Duration::from_secs(600),
            Some(("fake-refresh-0", "fake-client-id", "fake-client-secret-0")),
        ),
    );
    let clock = ManualClock::new(SystemTime::now());
    let mut engine = support::in_process_engine(
        &env,
        &fake,
        "[[profiles]]\nsource = \"p0\"\ntarget = \"t0\"\n[[profiles]]\nsource = \"p1\"\ntarget = \"t1\"\n",
        Arc::new(clock.clone()),
    );
    engine.start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let round = |engine: &mut Engine| {
        // Eight simulated minutes a round: each token is past half its life, so it is
        // refreshed (and the cache file rewritten) every round.
        clock.advance(Duration::from_secs(8 * 60));
        fake.set_clock_to(clock.now());
        let all = engine.request_refresh(None);
        let report = rt.block_on(engine.round(1));
        let tried: Vec<usize> = report.profiles.iter().map(|r| r.index).collect();
        assert_eq!(tried, all, "every profile tried: {report:?}");
        assert!(
            report.profiles.iter().all(|r| r.outcome.is_ok()),
            "{report:?}"
        );
        assert_eq!(report.write_error(), None, "write");
    };
    // The first write before the readers start: from then on both sections must always be there.
    round(&mut engine);
    let creds_path = env.credentials_path();
    let cache_path = env.token_cache_path("corp");
    assert!(sso_cache::parse(&fs::read(&cache_path).unwrap()).is_ok());

    let stop = Arc::new(AtomicBool::new(false));
    let ready = env.root().join("py-ready");
    let stop_file = env.root().join("py-stop");
    let mut py_child = py.as_ref().map(|_| {
        python::python_command(PY_READER, &[])
            .arg(&creds_path)
            .arg(&cache_path)
            .arg(&ready)
            .arg(&stop_file)
            .arg(TARGETS.join(","))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn the python reader")
    });
    if py_child.is_some() {
        assert!(
            support::wait_for(|| ready.exists(), Duration::from_secs(30)),
            "the python reader did not start"
        );
    }
    let reader = {
        let (c, t, s) = (creds_path.clone(), cache_path.clone(), Arc::clone(&stop));
        std::thread::spawn(move || rust_reader(c, t, s))
    };

    let rounds = 800 * scale();
    let started = Instant::now();
    let before_creds = fake.count("GetRoleCredentials");
    let before_tokens = fake.count("CreateToken");
    for _ in 0..rounds {
        round(&mut engine);
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    fs::write(&stop_file, "").expect("write the stop file");
    let rust = reader.join().expect("the Rust reader panicked");
    let cred_writes = fake.count("GetRoleCredentials") - before_creds;
    let token_writes = fake.count("CreateToken") - before_tokens;
    eprintln!(
        "{rounds} rounds in {elapsed:?}: {} credentials-file rewrites ({cred_writes} key sets), \
         {token_writes} token-cache rewrites",
        rounds
    );
    eprintln!(
        "rust reader: {} credentials reads ({} failures, {} mixed), {} token reads ({} failures, {} mixed)",
        rust.reads, rust.fails, rust.mixed, rust.token_reads, rust.token_fails, rust.token_mixed
    );
    assert!(
        token_writes >= rounds,
        "the token cache was rewritten {token_writes} times in {rounds} rounds"
    );
    assert_eq!(
        (rust.fails, rust.mixed, rust.token_fails, rust.token_mixed),
        (0, 0, 0, 0),
        "{:?}",
        rust.errors
    );
    assert!(
        rust.reads > 100,
        "the Rust reader made only {} reads",
        rust.reads
    );

    if let Some(child) = py_child.take() {
        let out = child.wait_with_output().expect("python reader");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "python reader failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("reader JSON");
        eprintln!(
            "botocore reader: {} credentials reads ({} failures, {} mixed), {} token reads ({} failures, {} mixed)",
            v["reads"], v["fails"], v["mixed"], v["treads"], v["tfails"], v["tmixed"]
        );
        for k in ["fails", "mixed", "tfails", "tmixed"] {
            assert_eq!(v[k], 0, "botocore reader {k}: {}", v["errors"]);
        }
        assert!(
            v["reads"].as_u64().unwrap_or(0) > 50,
            "botocore made too few reads: {v}"
        );
    }
    // The user's section survived every rewrite byte for byte.
    assert!(
        env.read_credentials().starts_with(
            "# mine\n[user-a]\naws_access_key_id = AKIAUSER\naws_secret_access_key = user-secret\n"
        ),
        "{}",
        env.read_credentials()
    );
}
