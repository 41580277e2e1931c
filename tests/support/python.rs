//! Real botocore as a reader of what credsync writes: finds the test venv's python (set up by
//! `scripts/test`), runs scripts in it with a clean environment, and reads credentials the way
//! boto3 does.
//!
//! Without boto3 a test prints a loud `SKIPPED` line and returns, except under CI
//! ([`super::in_ci`]), where a missing boto3 is a failure: interoperability must not silently
//! vanish.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

/// The python of the test venv, if it can `import boto3`.
///
/// `CREDSYNC_TEST_PYTHON` (set by `scripts/test`) wins; else `<repo>/.venv/bin/python`.
/// Panics under CI when neither has boto3; otherwise returns `None`, and the caller should
/// `skip("...")` and return.
pub fn python() -> Option<PathBuf> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let mut candidates = Vec::new();
        if let Some(p) = std::env::var_os("CREDSYNC_TEST_PYTHON").filter(|p| !p.is_empty()) {
            candidates.push(PathBuf::from(p));
        }
        candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
        candidates.into_iter().find(|p| has_boto3(p))
    });
    if found.is_none() && super::in_ci() {
        panic!(
            "boto3 is not installed for the tests (looked at $CREDSYNC_TEST_PYTHON and \
             {}/.venv/bin/python); run scripts/test, which creates the venv",
            env!("CARGO_MANIFEST_DIR")
        );
    }
    found.clone()
}

/// Skips a test that needs boto3 (or moto, from the same venv); fails under CI.
pub fn skip(test: &str) {
    super::skip(test, "boto3 or moto is not installed; run scripts/test");
}

fn has_boto3(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import boto3, botocore"])
        .env_clear()
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A `Command` for the venv python with a clean environment: PATH, `NO_PROXY`, IMDS off,
/// no bytecode files, then `env`. Panics when python is unavailable (check `python()` first).
pub fn python_command(script: &str, env: &[(&str, &str)]) -> Command {
    let py = python().expect("python() is None: check it and skip before running python");
    let mut cmd = clean_command(py);
    cmd.arg("-c").arg(script).env("PYTHONUNBUFFERED", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// `program` (a Python tool: python, the AWS CLI) with a clean environment: PATH, `NO_PROXY`
/// for the fakes on 127.0.0.1, IMDS off, no bytecode files.
pub fn clean_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd.env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    cmd
}

/// Runs `script` with `python -c` (see `python_command`) and returns its output.
pub fn run_python(script: &str, env: &[(&str, &str)]) -> Output {
    python_command(script, env)
        .output()
        .expect("failed to run the test venv's python")
}

/// Like `run_python`, but panics with stdout and stderr unless it exits 0; returns stdout.
pub fn run_python_ok(script: &str, env: &[(&str, &str)]) -> String {
    let out = run_python(script, env);
    assert!(
        out.status.success(),
        "python failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const READ_CREDENTIALS: &str = r#"
import json, sys
import boto3
creds = boto3.Session(profile_name=sys.argv[1]).get_credentials()
if creds is None:
    sys.exit("botocore found no credentials for profile " + sys.argv[1])
f = creds.get_frozen_credentials()
print(json.dumps({"akid": f.access_key, "secret": f.secret_key, "token": f.token,
                  "method": creds.method}))
"#;

/// Credentials as botocore resolves them for `profile` with `HOME=home` (so it reads
/// `home/.aws/config` and `home/.aws/credentials` unless `extra_env` says otherwise):
/// `(access key id, secret, session token or "")`. Panics with botocore's error if it cannot.
pub fn botocore_read_credentials(
    home: &Path,
    profile: &str,
    extra_env: &[(&str, &str)],
) -> (String, String, String) {
    let v = botocore_read_credentials_json(home, profile, extra_env);
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
    (s("akid"), s("secret"), s("token"))
}

/// Like `botocore_read_credentials`, as JSON with `akid`, `secret`, `token` and `method`
/// (botocore's provider name: `shared-credentials-file`, `sso`, `custom-process`, ...).
pub fn botocore_read_credentials_json(
    home: &Path,
    profile: &str,
    extra_env: &[(&str, &str)],
) -> serde_json::Value {
    let home_s = home.to_str().expect("test HOME is not UTF-8");
    let mut env = vec![("HOME", home_s)];
    env.extend_from_slice(extra_env);
    let mut cmd = python_command(READ_CREDENTIALS, &env);
    cmd.arg(profile);
    let out = cmd.output().expect("failed to run the test venv's python");
    assert!(
        out.status.success(),
        "botocore could not read credentials for profile {profile} ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "botocore printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// moto's standalone server (`moto[server]`, installed by `scripts/test`) on a free local port:
/// a second, independent implementation of STS for interoperability tests. Killed on drop.
pub struct MotoServer {
    child: std::process::Child,
    port: u16,
}

impl MotoServer {
    /// Starts moto and waits (up to 60 s) until it accepts connections. `None` when python is
    /// unavailable outside CI (the caller should `skip`); panics if moto does not come up.
    pub fn start() -> Option<MotoServer> {
        python()?;
        // Ask the kernel for a free port, then hand it to moto (it cannot report one itself).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("find a free port for moto")
            .port();
        let script = "import sys\nfrom moto.server import main\nmain(sys.argv[1:])";
        let mut cmd = python_command(script, &[("MOTO_CALL_RESET_API", "true")]);
        let child = cmd
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn moto server");
        let mut server = MotoServer { child, port };
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let up = super::wait_for(
            || {
                std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
                    || server.child.try_wait().ok().flatten().is_some()
            },
            Duration::from_secs(60),
        );
        let exited = server.child.try_wait().ok().flatten();
        assert!(
            up && exited.is_none(),
            "moto server did not start on port {port} (exit: {exited:?})"
        );
        Some(server)
    }

    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
