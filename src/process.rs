//! Running the programs credsync hands work to: `systemctl` and `launchctl` (the service), the
//! desktop notifiers and the user's `[notify] command`, the browser opener. Every one goes
//! through a [`Runner`], so that a test replaces them all with a scripted fake.
//!
//! A program is an argument vector run directly, never through a shell, with stdin closed.
//! [`Runner::run`] waits for it, at most a timeout (then it is killed), and keeps the start of
//! its stdout and stderr ([`OUTPUT_LIMIT`]); [`Runner::start`] leaves it running (a browser may
//! not return until it is closed). How a program ended is a [`Finished`] whatever its exit
//! status; [`Finished::check`] turns a failure into a [`RunError`], the one error type.

use std::fmt;
use std::io::{self, Read};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::timefmt::humane;

/// How much of a program's stdout, and of its stderr, is kept; the rest is read and dropped.
pub const OUTPUT_LIMIT: usize = 64 * 1024;

/// How often a running program is looked at.
const POLL: Duration = Duration::from_millis(10);

/// How long the output is waited for after the program ended: a child it left running may
/// hold the pipes open.
const DRAIN: Duration = Duration::from_millis(500);

/// Runs programs. [`SystemRunner`] in the product; tests give a fake that answers as the real
/// program would.
pub trait Runner: fmt::Debug + Send + Sync {
    /// Runs `argv` to its end, or for at most `timeout` (then it is killed and this is
    /// [`RunError::Timeout`]).
    fn run(&self, argv: &[String], timeout: Duration) -> Result<Finished, RunError>;

    /// Starts `argv` and returns at once; the program is reaped in the background.
    fn start(&self, argv: &[String]) -> Result<(), RunError>;
}

/// How a program ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// The exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    /// The start of its stdout ([`OUTPUT_LIMIT`]), lossily UTF-8.
    pub stdout: String,
    /// The start of its stderr ([`OUTPUT_LIMIT`]), lossily UTF-8.
    pub stderr: String,
}

impl Finished {
    /// An exit with `code` and this output.
    pub fn exit(code: i32, stdout: &str, stderr: &str) -> Finished {
        Finished {
            code: Some(code),
            stdout: stdout.to_owned(),
            stderr: stderr.to_owned(),
        }
    }

    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// `self` when the program succeeded, else [`RunError::Failed`] for `argv`.
    pub fn check(self, argv: &[String]) -> Result<Finished, RunError> {
        if self.success() {
            return Ok(self);
        }
        Err(RunError::Failed {
            program: program_name(argv),
            code: self.code,
            stderr: self.stderr.trim().to_owned(),
        })
    }
}

/// Why a program did not run, or did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{program} is not installed")]
    NotFound { program: String },
    #[error("{program} could not be started: {source}")]
    Spawn { program: String, source: io::Error },
    #[error("{program} did not finish within {} and was stopped", humane(*after))]
    Timeout { program: String, after: Duration },
    #[error("{program} failed ({}){}", exit_text(*code), first_line(stderr))]
    Failed {
        program: String,
        code: Option<i32>,
        /// All of its stderr (bounded), trimmed.
        stderr: String,
    },
}

impl RunError {
    /// The program's stderr when it ran and failed.
    pub fn stderr(&self) -> Option<&str> {
        match self {
            RunError::Failed { stderr, .. } => Some(stderr),
            _ => None,
        }
    }
}

fn exit_text(code: Option<i32>) -> String {
    code.map_or_else(
        || "killed by a signal".to_owned(),
        |c| format!("exit status {c}"),
    )
}

fn first_line(stderr: &str) -> String {
    match stderr.lines().map(str::trim).find(|l| !l.is_empty()) {
        Some(line) => format!(": {line}"),
        None => String::new(),
    }
}

fn program_name(argv: &[String]) -> String {
    argv.first().cloned().unwrap_or_default()
}

/// Runs programs with `std::process`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemRunner;

impl Runner for SystemRunner {
    fn run(&self, argv: &[String], timeout: Duration) -> Result<Finished, RunError> {
        let mut child = command(argv)?
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| spawn_error(argv, e))?;
        let stdout = Capture::start(child.stdout.take());
        let stderr = Capture::start(child.stderr.take());
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
                Ok(None) | Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(RunError::Timeout {
                        program: program_name(argv),
                        after: timeout,
                    });
                }
            }
        };
        let drained = Instant::now() + DRAIN;
        Ok(Finished {
            code: status.code(),
            stdout: stdout.finish(drained),
            stderr: stderr.finish(drained),
        })
    }

    fn start(&self, argv: &[String]) -> Result<(), RunError> {
        let mut child = command(argv)?
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| spawn_error(argv, e))?;
        let _ = std::thread::Builder::new()
            .name("reap".into())
            .spawn(move || child.wait());
        Ok(())
    }
}

/// `argv` as a `Command` with stdin closed.
fn command(argv: &[String]) -> Result<Command, RunError> {
    let (program, args) = argv.split_first().ok_or_else(|| RunError::NotFound {
        program: "(no program)".to_owned(),
    })?;
    // The one place a program is started (clippy.toml denies `Command::new` elsewhere).
    #[allow(clippy::disallowed_methods)]
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null());
    Ok(cmd)
}

fn spawn_error(argv: &[String], e: io::Error) -> RunError {
    let program = program_name(argv);
    match e.kind() {
        io::ErrorKind::NotFound => RunError::NotFound { program },
        _ => RunError::Spawn { program, source: e },
    }
}

/// One output stream read on a thread of its own (so that a program filling one pipe never
/// blocks on it), its first [`OUTPUT_LIMIT`] bytes kept.
struct Capture {
    kept: Arc<Mutex<Vec<u8>>>,
    reader: Option<JoinHandle<()>>,
}

impl Capture {
    fn start(stream: Option<impl Read + Send + 'static>) -> Capture {
        let kept = Arc::new(Mutex::new(Vec::new()));
        let sink = kept.clone();
        let reader = stream.and_then(|mut stream| {
            let read = move || {
                let mut buf = [0u8; 8192];
                while let Ok(n @ 1..) = stream.read(&mut buf) {
                    let mut kept = sink.lock().unwrap_or_else(PoisonError::into_inner);
                    let room = OUTPUT_LIMIT.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            };
            std::thread::Builder::new()
                .name("output".into())
                .spawn(read)
                .ok()
        });
        Capture { kept, reader }
    }

    /// What was read, once the stream ended or at `deadline` (a program's own child may hold
    /// the pipe open; its reader is left to end with it).
    fn finish(self, deadline: Instant) -> String {
        if let Some(reader) = self.reader {
            while !reader.is_finished() && Instant::now() < deadline {
                std::thread::sleep(POLL);
            }
        }
        let kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&kept).into_owned()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A fake for the unit tests of the modules that run programs: each call's argument vector
    /// is recorded and answered by `answer`, as the real program would answer it.
    pub(crate) struct Scripted<F> {
        answer: F,
        pub(crate) calls: Mutex<Vec<Vec<String>>>,
    }

    impl<F: Fn(&[String]) -> Result<Finished, RunError> + Send + Sync> Scripted<F> {
        pub(crate) fn new(answer: F) -> Scripted<F> {
            Scripted {
                answer,
                calls: Mutex::new(Vec::new()),
            }
        }

        /// The programs called, in order (the first word of each call).
        pub(crate) fn programs(&self) -> Vec<String> {
            let calls = self.calls.lock().unwrap();
            calls.iter().map(|c| c[0].clone()).collect()
        }
    }

    impl<F> fmt::Debug for Scripted<F> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("Scripted")
        }
    }

    impl<F: Fn(&[String]) -> Result<Finished, RunError> + Send + Sync> Runner for Scripted<F> {
        fn run(&self, argv: &[String], _timeout: Duration) -> Result<Finished, RunError> {
            self.calls.lock().unwrap().push(argv.to_vec());
            (self.answer)(argv)
        }

        fn start(&self, argv: &[String]) -> Result<(), RunError> {
            self.run(argv, Duration::ZERO).map(|_| ())
        }
    }

    /// What a shell says for a program that is not on `PATH`.
    pub(crate) fn not_found(argv: &[String]) -> RunError {
        RunError::NotFound {
            program: argv[0].clone(),
        }
    }

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    const LONG: Duration = Duration::from_secs(30);

    /// Whether a process with `arg` in its command line runs (Linux: /proc).
    #[cfg(target_os = "linux")]
    fn running_with(arg: &str) -> bool {
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return false;
        };
        procs.flatten().any(|p| {
            std::fs::read(p.path().join("cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == arg.as_bytes()))
        })
    }

    #[test]
    fn arguments_reach_the_program_as_they_are_and_its_output_comes_back() {
        let script = "printf '%s\\n' \"$@\"; echo oops >&2; exit 3";
        let ran = SystemRunner
            .run(
                &argv(&["sh", "-c", script, "sh", "$(echo no)", "a b"]),
                LONG,
            )
            .unwrap();
        assert_eq!(ran, Finished::exit(3, "$(echo no)\na b\n", "oops\n"));
        let e = ran.check(&argv(&["sh"])).unwrap_err();
        assert_eq!(e.to_string(), "sh failed (exit status 3): oops");
        assert_eq!(e.stderr(), Some("oops"));
    }

    #[test]
    fn a_missing_program_is_not_installed() {
        let missing = argv(&["/nonexistent/credsync-program"]);
        let e = SystemRunner.run(&missing, LONG).unwrap_err();
        assert!(matches!(e, RunError::NotFound { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "/nonexistent/credsync-program is not installed"
        );
        assert!(matches!(
            SystemRunner.start(&missing),
            Err(RunError::NotFound { .. })
        ));
        assert!(matches!(
            SystemRunner.run(&[], LONG),
            Err(RunError::NotFound { .. })
        ));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_program_past_its_time_is_killed() {
        // A duration no other process has on its command line; long, so that a program that
        // is waited for instead of killed holds the test up for good.
        let marker = format!("3599.{}", std::process::id());
        let sleep = argv(&["sleep", &marker]);
        let e = SystemRunner
            .run(&sleep, Duration::from_millis(300))
            .unwrap_err();
        assert!(matches!(e, RunError::Timeout { .. }), "{e:?}");
        assert!(!running_with(&marker), "the program still runs");
    }

    #[test]
    fn output_is_kept_up_to_the_limit_and_a_full_pipe_does_not_block_the_program() {
        // Four times the limit on each stream: a program whose pipes are not read stops at the
        // pipe's 64 KiB and never exits.
        let script = "head -c 262144 /dev/zero; head -c 262144 /dev/zero >&2";
        let ran = SystemRunner
            .run(&argv(&["sh", "-c", script]), LONG)
            .unwrap();
        assert!(ran.success());
        assert_eq!(ran.stdout.len(), OUTPUT_LIMIT);
        assert_eq!(ran.stderr.len(), OUTPUT_LIMIT);
    }

    #[test]
    fn a_child_left_holding_the_pipes_does_not_hold_up_the_result() {
        let ran = SystemRunner
            .run(&argv(&["sh", "-c", "sleep 30 & echo $!"]), LONG)
            .unwrap();
        let pid: i32 = ran.stdout.trim().parse().unwrap();
        // The result came while the child that holds stdout still runs.
        // SAFETY: kill with signal 0 only checks whether the process exists; SIGKILL ends the
        // sleep this test started.
        assert_eq!(unsafe { libc::kill(pid, 0) }, 0);
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }

    #[test]
    fn a_failure_shows_its_first_line_and_a_signal_says_so() {
        let e = Finished::exit(1, "", "\n  Failed to connect to bus\nmore\n")
            .check(&argv(&["systemctl"]))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "systemctl failed (exit status 1): Failed to connect to bus"
        );
        let killed = Finished {
            code: None,
            stdout: String::new(),
            stderr: String::new(),
        };
        assert_eq!(
            killed.check(&argv(&["x"])).unwrap_err().to_string(),
            "x failed (killed by a signal)"
        );
    }
}
