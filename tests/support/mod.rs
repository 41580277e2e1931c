//! The integration-test harness: a temp HOME per test with `~/.aws` laid out, helpers that
//! write the files credsync reads (in the formats the AWS tools write them), a `Command` for
//! the real `credsync` binary with a clean environment, and a `Daemon` guard.
//!
//! Each test file does `mod support;` and uses what it needs; waiting is always polling a
//! condition against a deadline (`wait_for`), never a fixed sleep.
#![allow(dead_code)]

pub mod astro;
pub mod aws_cli;
pub mod browser;
pub mod chromium;
pub mod docker;
pub mod fake_aws;
pub mod fake_programs;
pub mod python;
pub mod windows;

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use sha1::{Digest, Sha1};
use tempfile::TempDir;

#[allow(unused_imports)]
pub use fake_aws::{FakeAws, Fault, Route};

/// Whether the tests run under CI: `CI` set and not empty, as `scripts/test` reads it. Under
/// CI a test whose software is missing fails ([`skip`]): nothing may silently vanish.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// `test` cannot run here, for `why`: under CI a failure, elsewhere a loud `SKIPPED` line (and
/// the test returns).
pub fn skip(test: &str, why: &str) {
    assert!(!in_ci(), "{test} cannot run under CI: {why}");
    eprintln!("\n*** SKIPPED {test}: {why} ***\n");
}

/// The path of the binary under test.
pub fn credsync_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_credsync"))
}

/// Lowercase hex SHA-1 of `s`: the token cache file stem for an sso-session name or a legacy
/// start URL.
pub fn sha1_hex(s: &str) -> String {
    Sha1::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// botocore's `%Y-%m-%dT%H:%M:%SZ`.
pub fn botocore_time(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Parses a `%Y-%m-%dT%H:%M:%SZ` (or RFC 3339) timestamp; panics on anything else.
pub fn parse_botocore_time(s: &str) -> SystemTime {
    humantime::parse_rfc3339_weak(s.trim_end_matches('Z'))
        .unwrap_or_else(|e| panic!("not a botocore timestamp {s:?}: {e}"))
}

/// Polls `cond` (every 10 ms) until it holds or `timeout` passes; returns whether it held.
pub fn wait_for(mut cond: impl FnMut() -> bool, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The client registration part of a refreshable token.
#[derive(Clone, Debug)]
pub struct Registration {
    pub refresh_token: String,
    pub client_id: String,
    pub client_secret: String,
    pub registration_expires_at: SystemTime,
}

/// A token cache entry as botocore writes it after a refresh (and the AWS CLI v2 after
/// `aws sso login`).
#[derive(Clone, Debug)]
pub struct BotocoreToken {
    pub start_url: String,
    pub region: String,
    pub access_token: String,
    pub expires_at: SystemTime,
    pub registration: Option<Registration>,
}

impl BotocoreToken {
    /// The exact bytes of botocore's `json.dumps` (key order, `", "`/`": "` separators,
    /// `%Y-%m-%dT%H:%M:%SZ` timestamps, no final newline).
    pub fn to_json(&self) -> String {
        let q = |s: &str| serde_json::to_string(s).expect("a string serialises");
        let mut fields = vec![
            ("startUrl", q(&self.start_url)),
            ("region", q(&self.region)),
            ("accessToken", q(&self.access_token)),
            ("expiresAt", q(&botocore_time(self.expires_at))),
        ];
        if let Some(r) = &self.registration {
            fields.push(("clientId", q(&r.client_id)));
            fields.push(("clientSecret", q(&r.client_secret)));
            fields.push((
                "registrationExpiresAt",
                q(&botocore_time(r.registration_expires_at)),
            ));
            fields.push(("refreshToken", q(&r.refresh_token)));
        }
        let body: Vec<String> = fields
            .into_iter()
            .map(|(k, v)| format!("\"{k}\": {v}"))
            .collect();
        format!("{{{}}}", body.join(", "))
    }
}

/// Start URL used by `botocore_token_json`.
pub const FAKE_START_URL: &str = "https://fake.awsapps.com/start";

/// A token cache file as botocore writes it: start URL `FAKE_START_URL`, region `us-east-1`,
/// and with `refresh = Some((refresh_token, client_id, client_secret))` a registration that
/// expires in 90 days.
pub fn botocore_token_json(
    access_token: &str,
    expires_at: SystemTime,
    refresh: Option<(&str, &str, &str)>,
) -> String {
    BotocoreToken {
        start_url: FAKE_START_URL.to_owned(),
        region: "us-east-1".to_owned(),
        access_token: access_token.to_owned(),
        expires_at,
        registration: refresh.map(|(refresh_token, client_id, client_secret)| Registration {
            refresh_token: refresh_token.to_owned(),
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            registration_expires_at: SystemTime::now() + Duration::from_secs(90 * 24 * 3600),
        }),
    }
    .to_json()
}

/// A temp HOME for one test, removed on drop.
pub struct TestEnv {
    dir: TempDir,
    home: PathBuf,
    endpoint: Option<String>,
    envs: Vec<(OsString, Option<OsString>)>,
    /// `credsync` run here must not meet the package test's system-wide install.
    _machine: MachineLock,
}

impl Default for TestEnv {
    fn default() -> Self {
        TestEnv::new()
    }
}

impl TestEnv {
    /// A fresh HOME with `.aws/`, `.aws/sso/cache/` and `run/` (0700, the XDG_RUNTIME_DIR).
    pub fn new() -> TestEnv {
        let dir = tempfile::Builder::new()
            .prefix("credsync-test-")
            .tempdir()
            .expect("create temp dir");
        let home = dir.path().join("home");
        fs::create_dir_all(home.join(".aws/sso/cache")).expect("create ~/.aws/sso/cache");
        let run = home.join("run");
        fs::create_dir_all(&run).expect("create ~/run");
        fs::set_permissions(&run, fs::Permissions::from_mode(0o700)).expect("chmod ~/run");
        TestEnv {
            dir,
            home,
            endpoint: None,
            envs: Vec::new(),
            _machine: MachineLock::hold(false),
        }
    }

    /// A fresh HOME whose commands talk to `fake` (`AWS_ENDPOINT_URL`).
    pub fn with_fake(fake: &FakeAws) -> TestEnv {
        let mut env = TestEnv::new();
        env.attach(fake);
        env
    }

    /// Points `AWS_ENDPOINT_URL` of later commands at `fake`.
    pub fn attach(&mut self, fake: &FakeAws) -> &mut Self {
        self.endpoint = Some(fake.url());
        self
    }

    /// Sets an environment variable for later commands (wins over the defaults).
    pub fn env(&mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> &mut Self {
        self.envs
            .push((k.as_ref().to_owned(), Some(v.as_ref().to_owned())));
        self
    }

    /// Removes a default variable (e.g. `AWS_ENDPOINT_URL`) from later commands.
    pub fn env_remove(&mut self, k: impl AsRef<OsStr>) -> &mut Self {
        self.envs.push((k.as_ref().to_owned(), None));
        self
    }

    /// The temp dir (parent of HOME): a place for logs and scratch files.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    pub fn aws_dir(&self) -> PathBuf {
        self.home.join(".aws")
    }

    pub fn aws_config_path(&self) -> PathBuf {
        self.home.join(".aws/config")
    }

    pub fn credentials_path(&self) -> PathBuf {
        self.home.join(".aws/credentials")
    }

    pub fn sso_cache_dir(&self) -> PathBuf {
        self.home.join(".aws/sso/cache")
    }

    /// `~/.aws/sso/cache/<sha1(key)>.json`.
    pub fn token_cache_path(&self, key: &str) -> PathBuf {
        self.sso_cache_dir().join(format!("{}.json", sha1_hex(key)))
    }

    /// credsync's default config file: `~/.config/credsync/config.toml`.
    pub fn config_toml_path(&self) -> PathBuf {
        self.home.join(".config/credsync/config.toml")
    }

    /// The `XDG_RUNTIME_DIR` given to commands.
    pub fn run_dir(&self) -> PathBuf {
        self.home.join("run")
    }

    pub fn write_aws_config(&self, text: &str) -> PathBuf {
        write(&self.aws_config_path(), text)
    }

    pub fn write_credentials(&self, text: &str) -> PathBuf {
        write(&self.credentials_path(), text)
    }

    /// Reads `~/.aws/credentials` ("" when it does not exist).
    pub fn read_credentials(&self) -> String {
        fs::read_to_string(self.credentials_path()).unwrap_or_default()
    }

    /// The sso-session `session` signed in, as `aws sso login` leaves it: `fake` accepts
    /// `token`, and the token cache holds it, valid for 8 hours, with no refresh token.
    pub fn sign_in(&self, fake: &FakeAws, session: &str, token: &str) -> PathBuf {
        fake.add_token(token);
        self.write_token_cache(
            session,
            &botocore_token_json(
                token,
                SystemTime::now() + Duration::from_secs(8 * 3600),
                None,
            ),
        )
    }

    /// `credsync sync`, which must succeed; returns the access key id the fake last served
    /// for `account`'s role `Dev` (what `sync` just wrote).
    pub fn sync_served_key(&self, fake: &FakeAws, account: &str) -> String {
        let out = self.run(["sync"]);
        assert!(
            out.status.success(),
            "credsync sync failed:\n{}",
            output_text(&out)
        );
        fake.last_credentials(account, "Dev")
            .expect("the fake served credentials")
            .access_key_id
    }

    /// Writes the token cache file for an sso-session name (or legacy start URL).
    pub fn write_token_cache(&self, key: &str, json: &str) -> PathBuf {
        write(&self.token_cache_path(key), json)
    }

    /// The token cache file for `key`, parsed (panics when missing or not JSON).
    pub fn read_token_cache(&self, key: &str) -> serde_json::Value {
        let path = self.token_cache_path(key);
        let text = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read token cache {}: {e}", path.display()));
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("token cache {} is not JSON: {e}", path.display()))
    }

    pub fn write_config_toml(&self, text: &str) -> PathBuf {
        write(&self.config_toml_path(), text)
    }

    /// Writes `text` to `rel` under HOME, creating directories.
    pub fn write_file(&self, rel: &str, text: &str) -> PathBuf {
        write(&self.home.join(rel), text)
    }

    /// `credsync ARGS` with a clean environment: HOME, PATH, USER, `NO_PROXY`, IMDS off,
    /// `CREDSYNC_LOG=debug`, `XDG_RUNTIME_DIR=HOME/run`, `AWS_ENDPOINT_URL` when a fake is
    /// attached, then the `env` overrides. No `AWS_REGION`/`AWS_DEFAULT_REGION` unless given.
    pub fn cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(credsync_bin());
        cmd.args(args).env_clear().current_dir(&self.home);
        cmd.env("HOME", &self.home);
        cmd.env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
        );
        cmd.env(
            "USER",
            std::env::var_os("USER").unwrap_or_else(|| "credsync-test".into()),
        );
        cmd.env("NO_PROXY", "127.0.0.1,localhost");
        cmd.env("no_proxy", "127.0.0.1,localhost");
        cmd.env("AWS_EC2_METADATA_DISABLED", "true");
        cmd.env("CREDSYNC_LOG", "debug");
        cmd.env("XDG_RUNTIME_DIR", self.run_dir());
        if let Some(url) = &self.endpoint {
            cmd.env("AWS_ENDPOINT_URL", url);
        }
        for (k, v) in &self.envs {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd
    }

    /// Runs `credsync ARGS` to completion (stdin closed).
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd(args)
            .stdin(Stdio::null())
            .output()
            .expect("failed to run credsync")
    }

    /// Starts `credsync daemon EXTRA_ARGS`, logs captured under the temp dir.
    pub fn daemon<I, S>(&self, extra_args: I) -> Daemon
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.cmd(["daemon"]);
        cmd.args(extra_args);
        Daemon::spawn(cmd, self.root())
    }
}

fn write(path: &Path, text: &str) -> PathBuf {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
    }
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path.to_owned()
}

/// A running process (normally `credsync daemon`) with stdout and stderr going to files;
/// killed on drop.
pub struct Daemon {
    child: Option<Child>,
    stdout: PathBuf,
    stderr: PathBuf,
    status: Option<ExitStatus>,
}

impl Daemon {
    /// Spawns `cmd` with stdin closed and its output in `<log_dir>/daemon-<n>.{stdout,stderr}`.
    pub fn spawn(mut cmd: Command, log_dir: &Path) -> Daemon {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let stdout = log_dir.join(format!("daemon-{n}.stdout"));
        let stderr = log_dir.join(format!("daemon-{n}.stderr"));
        let out = fs::File::create(&stdout).expect("create daemon stdout file");
        let err = fs::File::create(&stderr).expect("create daemon stderr file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        Daemon {
            child: Some(child),
            stdout,
            stderr,
            status: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// stdout then stderr, as captured so far.
    pub fn logs(&self) -> String {
        let out = fs::read_to_string(&self.stdout).unwrap_or_default();
        let err = fs::read_to_string(&self.stderr).unwrap_or_default();
        format!("{out}{err}")
    }

    pub fn stdout(&self) -> String {
        fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The exit status, if it has exited.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none()
            && let Some(child) = self.child.as_mut()
        {
            self.status = child.try_wait().ok().flatten();
        }
        self.status
    }

    pub fn is_running(&mut self) -> bool {
        self.try_status().is_none()
    }

    /// Parses a `%Y-%m-%dT%H:%M:%SZ` (or RFC 3339) timestamp; panics on anything else.
    pub fn parse_botocore_time(s: &str) -> SystemTime {
        humantime::parse_rfc3339_weak(s.trim_end_matches('Z'))
            .unwrap_or_else(|e| panic!("not a botocore timestamp {s:?}: {e}"))
    }

    /// Polls `cond` until it holds or `timeout` passes (see `wait_for`).
    pub fn wait_for(&self, cond: impl FnMut() -> bool, timeout: Duration) -> bool {
        wait_for(cond, timeout)
    }

    /// Like `wait_for`, but panics with `what` and the logs on timeout.
    pub fn expect_within(&self, what: &str, cond: impl FnMut() -> bool, timeout: Duration) {
        if !wait_for(cond, timeout) {
            panic!(
                "timed out after {timeout:?} waiting for {what}\n--- daemon logs\n{}",
                self.logs()
            );
        }
    }

    /// Waits until the logs contain `needle`; returns whether they did within `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        wait_for(|| self.logs().contains(needle), timeout)
    }

    /// Sends `sig` to the process (no-op once it has exited).
    pub fn signal(&mut self, sig: libc::c_int) {
        if self.is_running() {
            let pid = libc::pid_t::try_from(self.pid()).expect("pid fits pid_t");
            // SAFETY: kill(2) with a pid we spawned and have not reaped yet.
            unsafe {
                libc::kill(pid, sig);
            }
        }
    }

    /// SIGTERM, then waits (up to 20 s) for the exit status; panics with the logs if the
    /// process does not exit.
    pub fn sigterm(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit(Duration::from_secs(20))
    }

    /// Waits for the process to exit; panics with the logs after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut status = None;
        let exited = wait_for(
            || {
                status = self.try_status();
                status.is_some()
            },
            timeout,
        );
        match status {
            Some(s) if exited => s,
            _ => {
                self.kill();
                panic!(
                    "process did not exit within {timeout:?}\n--- logs\n{}",
                    self.logs()
                );
            }
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(child) = self.child.as_mut()
            && self.status.is_none()
        {
            let _ = child.kill();
            self.status = child.wait().ok();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A clock that only moves when told to (the engine's `Clock` in simulations).
#[derive(Debug, Clone)]
pub struct ManualClock(std::sync::Arc<std::sync::Mutex<SystemTime>>);

impl ManualClock {
    pub fn new(start: SystemTime) -> ManualClock {
        ManualClock(std::sync::Arc::new(std::sync::Mutex::new(start)))
    }

    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t += by;
    }

    pub fn set(&self, to: SystemTime) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = to;
    }
}

impl credsync::schedule::Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A wait on a manual clock: it moves on by `d` at once.
    fn sleep(&self, d: Duration) -> credsync::schedule::Wait {
        self.advance(d);
        Box::pin(std::future::ready(()))
    }
}

/// A current-thread tokio runtime with time and I/O: how the daemon runs its engine.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The engine's random source, pinned: the same sequence of draws from `seed` every run.
pub fn seeded_random(seed: u64) -> credsync::schedule::Random {
    let rng = std::sync::Mutex::new(fastrand::Rng::with_seed(seed));
    std::sync::Arc::new(move || rng.lock().unwrap_or_else(|p| p.into_inner()).f64())
}

/// An in-process refresh engine for `env`'s HOME, configured by `config_toml`, that reaches
/// nothing but `fake` (every AWS service at its URL, no proxy, no user AWS files), with its
/// jitter from [`seeded_random`].
pub fn in_process_engine(
    env: &TestEnv,
    fake: &FakeAws,
    config_toml: &str,
    clock: std::sync::Arc<dyn credsync::schedule::Clock>,
) -> credsync::engine::Engine {
    in_process_engine_with(
        env,
        credsync::aws::AwsEdge::only(&fake.url()),
        config_toml,
        clock,
    )
}

/// [`in_process_engine`] reaching AWS through `edge`.
pub fn in_process_engine_with(
    env: &TestEnv,
    edge: credsync::aws::AwsEdge,
    config_toml: &str,
    clock: std::sync::Arc<dyn credsync::schedule::Clock>,
) -> credsync::engine::Engine {
    let cfg_env = credsync::config::Env {
        home: env.home().to_owned(),
        vars: Default::default(),
    };
    let cfg = credsync::config::parse(config_toml, &env.config_toml_path(), &cfg_env)
        .expect("test config parses");
    let seams = credsync::engine::Seams {
        clock,
        random: seeded_random(0x5eed),
        aws: edge,
        env: cfg_env,
    };
    credsync::engine::Engine::new(cfg, seams).expect("engine")
}

/// The fenced code blocks of a Markdown text, in order: (info string, body).
pub fn fenced_blocks(md: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut open: Option<(String, String, usize)> = None; // (info, body, indent)
    for line in md.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        match &mut open {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    open = Some((info.trim().to_owned(), String::new(), indent));
                }
            }
            Some((info, body, ind)) => {
                if trimmed.starts_with("```") {
                    out.push((std::mem::take(info), std::mem::take(body)));
                    open = None;
                } else {
                    body.push_str(line.get(*ind..).unwrap_or(line.trim_start()));
                    body.push('\n');
                }
            }
        }
    }
    out
}

/// A command's standard output followed by its standard error, as text.
pub fn output_text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs `cmd` (stdin closed, output captured), killing it after `timeout`: a hang is a
/// failure, not a stuck CI job.
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut done = false;
    wait_for(
        || {
            done = child.try_wait().ok().flatten().is_some();
            done
        },
        timeout,
    );
    if !done {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{cmd:?} did not finish within {timeout:?}");
    }
    child.wait_with_output().expect("output")
}

/// Makes a FIFO (named pipe) at `path`, mode 0600.
pub fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: mkfifo(3) with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// For a test that changes process-wide state (the umask): every test of this binary shares
/// one process. Returns true in a child process of this binary that runs only the test `name`
/// (its path, `module::test`); the caller then runs its body there. In the test runner's own
/// process it runs that child, asserts that the test passed there, and returns false.
pub fn alone(name: &str) -> bool {
    const MARK: &str = "CREDSYNC_TEST_ALONE";
    if std::env::var_os(MARK).is_some_and(|v| v == name) {
        return true;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = Command::new(exe)
        .args([name, "--exact", "--test-threads=1", "--nocapture"])
        .env(MARK, name)
        .stdin(Stdio::null())
        .output()
        .expect("run the test binary for one test");
    let text = output_text(&out);
    assert!(
        out.status.success(),
        "{name}, alone in its own process:\n{text}"
    );
    assert!(
        text.contains("1 passed"),
        "{name} did not run in its own process:\n{text}"
    );
    false
}

/// A hold on this machine's credsync install: the package test installs credsync system-wide
/// (`/usr/bin/credsync`, the packaged user unit), which changes what `service install`,
/// `service print` and `doctor` say anywhere on the machine, so it holds the lock exclusively
/// and every [`TestEnv`] and systemd test user holds it shared. Released on drop.
pub struct MachineLock(fs::File);

impl MachineLock {
    /// Waits for the package test (or, exclusive, for every other holder).
    pub fn hold(exclusive: bool) -> MachineLock {
        use std::os::unix::fs::OpenOptionsExt;
        const NAME: &str = "credsync-package-test.lock";
        // /run/lock where there is one (Linux), so that test runs in other checkouts wait too.
        let run_lock = Path::new("/run/lock");
        let path = if run_lock.is_dir() {
            run_lock.join(NAME)
        } else {
            std::env::temp_dir().join(NAME)
        };
        // Opened for reading (flock needs no more), so a lock file another user created (root,
        // for the package test) serves this user too; created readable by all when missing.
        let lock = fs::File::open(&path)
            .or_else(|_| {
                fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o644)
                    .open(&path)
            })
            .unwrap_or_else(|e| panic!("open the machine-wide test lock {}: {e}", path.display()));
        let op = if exclusive {
            libc::LOCK_EX
        } else {
            libc::LOCK_SH
        };
        // SAFETY: flock on a file descriptor we own; it blocks until the lock is granted.
        let rc = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), op) };
        assert_eq!(rc, 0, "flock: {}", std::io::Error::last_os_error());
        MachineLock(lock)
    }
}
