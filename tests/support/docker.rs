//! A real Docker engine for the container tests: the one `scripts/docker-here` finds (an engine
//! already running) or starts (dockerd on its own socket), and the local image it builds
//! (Debian bookworm with python3-boto3 and the user `astro`, uid 50000), found through
//! `CREDSYNC_DOCKER_HOST` and `CREDSYNC_DOCKER_IMAGE` (exported by `scripts/test`), else the
//! script's defaults.
//!
//! Without a working engine a test prints a loud `SKIPPED` line and returns, except under CI,
//! where it fails: the container tests must not silently vanish.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The engine and image the tests use.
#[derive(Debug, Clone)]
pub struct Docker {
    bin: PathBuf,
    host: String,
    pub image: String,
}

const DEFAULT_HOST: &str = "unix:///var/tmp/credsync-docker/docker.sock";
const DEFAULT_IMAGE: &str = "local/credsync-boto3";

impl Docker {
    /// The engine, when it answers and has the image. Panics under CI when it does not;
    /// elsewhere prints why `test` is skipped and returns `None`.
    pub fn get(test: &str) -> Option<Docker> {
        static FOUND: OnceLock<Result<Docker, String>> = OnceLock::new();
        let found = FOUND.get_or_init(find);
        match found {
            Ok(d) => Some(d.clone()),
            Err(why) => {
                super::skip(test, why);
                None
            }
        }
    }

    /// The docker CLI.
    pub fn bin(&self) -> &std::path::Path {
        &self.bin
    }

    /// The engine's address (`DOCKER_HOST`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `docker ARGS` against the test engine.
    pub fn cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(&self.bin);
        cmd.env("DOCKER_HOST", &self.host).args(args);
        cmd
    }

    /// Starts `docker run -i` of the image with `args` (mounts, user, env) running `python3 -c
    /// script`, as a [`Container`] that answers one line per line sent. No network: the view
    /// needs none (`cat`).
    pub fn spawn(&self, args: &[String], script: &str) -> Container {
        let name = container_name("credsync-test");
        let mut run = self.cmd(["run", "-i", "--rm", "--network", "none", "--name", &name]);
        run.args(args)
            .arg(&self.image)
            .args(["python3", "-c", script]);
        let rm = self.cmd(["rm", "-f", &name]);
        Container::start(run, name, rm)
    }
}

/// A container name no other container of this test run has: `PREFIX-<pid>-<n>`.
pub fn container_name(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// The Python the boto3 readers share: `session_creds()` (a new `boto3.Session`'s credentials,
/// with `None` and the error's class when it fails) and `key(c, err)` (the access key `c`
/// returns now, else the error). A reader script is this, then its own loop.
pub const BOTO3_KEYS: &str = r#"
import json, os, sys
import boto3
def session_creds():
    try:
        return boto3.Session().get_credentials(), None
    except Exception as e:
        return None, "ERR:" + type(e).__name__
def key(c, err=None):
    if c is None:
        return err or "NONE"
    try:
        return c.get_frozen_credentials().access_key
    except Exception as e:
        return "ERR:" + type(e).__name__
"#;

fn find() -> Result<Docker, String> {
    let var = |k: &str, d: &str| {
        std::env::var(k)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| d.to_owned())
    };
    let bin = ["/usr/bin/docker", "/usr/local/bin/docker"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or("no docker CLI (run scripts/docker-here, which installs docker.io)")?;
    let d = Docker {
        bin,
        host: var("CREDSYNC_DOCKER_HOST", DEFAULT_HOST),
        image: var("CREDSYNC_DOCKER_IMAGE", DEFAULT_IMAGE),
    };
    let out = d
        .cmd(["image", "inspect", "--format", "{{.Id}}", &d.image])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", d.bin.display()))?;
    if !out.status.success() {
        return Err(format!(
            "no Docker engine with image {} at {} ({}); run scripts/docker-here as root",
            d.image,
            d.host,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(d)
}

/// A running container that answers one line of output per line of input; removed on drop.
pub struct Container {
    /// The engine command that removes it.
    rm: Command,
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Container {
    /// Starts `run` (an engine's `run -i --rm --name NAME ...`), whose standard input and
    /// output become the container's; `rm` removes the container named `name` on drop.
    pub fn start(mut run: Command, name: String, rm: Command) -> Container {
        run.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = run.spawn().expect("start the container");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Container {
            rm,
            name,
            child,
            stdin: Some(stdin),
            stdout,
        }
    }

    /// Asks for one reading; returns the line (panics if the container is gone).
    pub fn read(&mut self) -> String {
        let stdin = self.stdin.as_mut().expect("stdin");
        writeln!(stdin, "go").expect("the container is gone");
        stdin.flush().expect("flush");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read a line");
        assert!(
            !line.is_empty(),
            "container {} exited: {:?}",
            self.name,
            self.child.try_wait()
        );
        line.trim_end().to_owned()
    }

    /// A JSON reading.
    pub fn read_json(&mut self) -> serde_json::Value {
        let line = self.read();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("container printed {line:?}: {e}"))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.rm.stdout(Stdio::null()).stderr(Stdio::null()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
