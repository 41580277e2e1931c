//! Fakes of the programs credsync runs, given to it as its `credsync::process::Runner`:
//! [`Scripted`] records every call and answers it from a script that may keep state from one
//! call to the next; [`FakeSystemd`] and [`FakeLaunchd`] are such scripts for `systemctl
//! --user` and `launchctl`, answering where `service install` and `uninstall` look as the real
//! ones do: the exit codes, the messages on stderr, `show` and `print`, and the state each call
//! leaves (a unit is what the last `daemon-reload` read; a started unit whose sandbox the
//! machine refuses fails with systemd's status; a loaded agent cannot be bootstrapped again).
//! A call a fake does not know panics, so a test notices a command it did not expect.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use credsync::process::{Finished, RunError, Runner};

type Script = Box<dyn FnMut(&[String]) -> Result<Finished, RunError> + Send>;

/// A runner that answers each call from a script and records it.
pub struct Scripted {
    script: Mutex<Script>,
    calls: Mutex<Vec<Vec<String>>>,
}

impl std::fmt::Debug for Scripted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scripted")
            .field("calls", &*lock(&self.calls))
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Scripted {
    /// A runner whose every call (run or start) is answered by `script`.
    pub fn new(
        script: impl FnMut(&[String]) -> Result<Finished, RunError> + Send + 'static,
    ) -> Scripted {
        Scripted {
            script: Mutex::new(Box::new(script)),
            calls: Mutex::new(Vec::new()),
        }
    }

    /// Every call so far, each argument vector joined with spaces.
    pub fn calls(&self) -> Vec<String> {
        lock(&self.calls)
            .iter()
            .map(|argv| argv.join(" "))
            .collect()
    }

    /// Forgets the calls so far.
    pub fn clear(&self) {
        lock(&self.calls).clear();
    }
}

impl Runner for Scripted {
    fn run(&self, argv: &[String], _timeout: Duration) -> Result<Finished, RunError> {
        lock(&self.calls).push(argv.to_vec());
        (lock(&self.script))(argv)
    }

    fn start(&self, argv: &[String]) -> Result<(), RunError> {
        self.run(argv, Duration::ZERO)?.check(argv).map(|_| ())
    }
}

/// A runner for `program` alone, answered by `answer` from `state`; and the state, for the test
/// to look at.
fn stateful<T: Send + 'static>(
    program: &'static str,
    state: T,
    answer: fn(&mut T, &[String]) -> Result<Finished, RunError>,
) -> (Scripted, Arc<Mutex<T>>) {
    let state = Arc::new(Mutex::new(state));
    let shared = state.clone();
    let runner = Scripted::new(move |argv| {
        assert_eq!(argv[0], program, "not {program}: {argv:?}");
        answer(&mut lock(&shared), argv)
    });
    (runner, state)
}

/// What a missing program gives.
pub fn not_found(argv: &[String]) -> RunError {
    RunError::NotFound {
        program: argv[0].clone(),
    }
}

/// `systemctl --user` for one unit, `credsync.service`, whose file is `unit`.
#[derive(Debug, Clone)]
pub struct FakeSystemd {
    /// Where the unit file is (the user's, or the package's).
    pub unit: PathBuf,
    /// Whether this machine lets a user manager create a user namespace: without, a unit with
    /// `PrivateUsers=yes` fails before the program runs (status=226/NAMESPACE).
    pub namespaces: bool,
    /// `Some(code)`: the daemon exits with `code` as soon as it starts.
    pub daemon_exits: Option<i32>,
    /// `Some(message)`: there is no user manager, every call fails with `message`.
    pub no_manager: Option<String>,
    /// The unit as the last `daemon-reload` read it (`None`: no file then).
    pub loaded: Option<String>,
    pub enabled: bool,
    pub active: bool,
    /// The main process's end, as `show` reports it: (`Result`, `ExecMainCode`,
    /// `ExecMainStatus`).
    pub ended: (String, i32, i32),
    /// How many times the daemon was started.
    pub starts: u32,
}

const UNIT: &str = "credsync.service";

impl FakeSystemd {
    /// A machine with a user manager and user namespaces; nothing loaded yet.
    pub fn new(unit: PathBuf) -> FakeSystemd {
        FakeSystemd {
            unit,
            namespaces: true,
            daemon_exits: None,
            no_manager: None,
            loaded: None,
            enabled: false,
            active: false,
            ended: ("success".to_owned(), 0, 0),
            starts: 0,
        }
    }

    /// The steps an install that starts the unit reports on this systemd.
    pub const STARTED: [&str; 4] = [
        "ran: systemctl --user daemon-reload",
        "ran: systemctl --user enable credsync.service",
        "ran: systemctl --user start credsync.service",
        "credsync.service is active and ready (main pid 4242)",
    ];

    /// A runner answering as this systemd, and the systemd's state to look at.
    pub fn runner(self) -> (Scripted, Arc<Mutex<FakeSystemd>>) {
        stateful("systemctl", self, FakeSystemd::answer)
    }

    fn answer(&mut self, argv: &[String]) -> Result<Finished, RunError> {
        assert_eq!(argv.get(1).map(String::as_str), Some("--user"), "{argv:?}");
        if let Some(message) = &self.no_manager {
            return Ok(Finished::exit(1, "", &format!("{message}\n")));
        }
        let args: Vec<&str> = argv[2..].iter().map(String::as_str).collect();
        let missing = |verb: &str| {
            Finished::exit(
                1,
                "",
                &format!("Failed to {verb} unit: Unit file {UNIT} does not exist.\n"),
            )
        };
        Ok(match args.as_slice() {
            ["daemon-reload"] => {
                self.loaded = std::fs::read_to_string(&self.unit).ok();
                Finished::exit(0, "", "")
            }
            ["enable", UNIT] if self.loaded.is_none() => missing("enable"),
            ["enable", UNIT] => {
                self.enabled = true;
                Finished::exit(0, "", "Created symlink ... -> credsync.service.\n")
            }
            ["disable", "--now", UNIT] if self.loaded.is_none() => missing("disable"),
            ["disable", "--now", UNIT] => {
                self.enabled = false;
                self.active = false;
                Finished::exit(0, "", "Removed ... credsync.service.\n")
            }
            ["start", UNIT] if self.active => Finished::exit(0, "", ""),
            ["start" | "restart", UNIT] => self.start(),
            ["reset-failed", UNIT] => {
                self.ended = ("success".to_owned(), 0, 0);
                Finished::exit(0, "", "")
            }
            ["show", UNIT, "-p", _] => {
                let (result, code, status) = &self.ended;
                let (active, sub, pid) = match (self.active, result.as_str()) {
                    (true, _) => ("active", "running", 4242),
                    (false, "success") => ("inactive", "dead", 0),
                    (false, _) => ("failed", "failed", 0),
                };
                Finished::exit(
                    0,
                    &format!(
                        "ActiveState={active}\nSubState={sub}\nResult={result}\n\
                         ExecMainCode={code}\nExecMainStatus={status}\nMainPID={pid}\n"
                    ),
                    "",
                )
            }
            ["status", "--no-pager", "--lines=10", UNIT] => {
                let line = if self.active {
                    "     Active: active (running)"
                } else {
                    "     Active: failed (Result: exit-code)"
                };
                let text = format!("× {UNIT} - credsync\n{line}\n   Main PID: 4242\n");
                Finished::exit(if self.active { 0 } else { 3 }, &text, "")
            }
            _ => panic!("the fake systemctl does not know {argv:?}"),
        })
    }

    fn start(&mut self) -> Finished {
        let Some(unit) = &self.loaded else {
            return Finished::exit(
                5,
                "",
                &format!("Failed to start {UNIT}: Unit {UNIT} not found.\n"),
            );
        };
        self.starts += 1;
        let sandbox_refused = !self.namespaces && unit.lines().any(|l| l == "PrivateUsers=yes");
        let exit = match (sandbox_refused, self.daemon_exits) {
            (true, _) => Some(226),
            (false, code) => code,
        };
        match exit {
            None => {
                self.active = true;
                self.ended = ("success".to_owned(), 0, 0);
                Finished::exit(0, "", "")
            }
            Some(status) => {
                self.active = false;
                self.ended = ("exit-code".to_owned(), 1, status);
                Finished::exit(
                    1,
                    "",
                    &format!(
                        "Job for {UNIT} failed because the control process exited with error \
                         code.\nSee \"systemctl --user status {UNIT}\" for details.\n"
                    ),
                )
            }
        }
    }
}

/// `launchctl` for one LaunchAgent in the domain `gui/<uid>`.
#[derive(Debug, Clone, Default)]
pub struct FakeLaunchd {
    /// The plist the loaded agent came from, as it was then; `None`: not loaded.
    pub loaded: Option<String>,
    pub bootstraps: u32,
}

impl FakeLaunchd {
    /// A runner answering as this launchd, and launchd's state to look at.
    pub fn runner(self) -> (Scripted, Arc<Mutex<FakeLaunchd>>) {
        stateful("launchctl", self, FakeLaunchd::answer)
    }

    fn answer(&mut self, argv: &[String]) -> Result<Finished, RunError> {
        let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
        Ok(match args.as_slice() {
            ["print", service] if self.loaded.is_some() => {
                Finished::exit(0, &format!("{service} = {{\n\tstate = running\n}}\n"), "")
            }
            ["print", service] => Finished::exit(
                113,
                "",
                &format!("Could not find service \"{service}\" in domain for user gui\n"),
            ),
            ["bootout", _] if self.loaded.take().is_some() => Finished::exit(0, "", ""),
            ["bootout", _] => Finished::exit(3, "", "Boot-out failed: 3: No such process\n"),
            ["bootstrap", _, _] if self.loaded.is_some() => {
                Finished::exit(5, "", "Bootstrap failed: 5: Input/output error\n")
            }
            ["bootstrap", domain, plist] => {
                assert!(domain.starts_with("gui/"), "{argv:?}");
                match std::fs::read_to_string(plist) {
                    Ok(text) => {
                        self.loaded = Some(text);
                        self.bootstraps += 1;
                        Finished::exit(0, "", "")
                    }
                    Err(_) => {
                        Finished::exit(2, "", "Bootstrap failed: 2: No such file or directory\n")
                    }
                }
            }
            _ => panic!("the fake launchctl does not know {argv:?}"),
        })
    }
}
