//! Fakes of the programs credsync runs, given to it as its `credsync::process::Runner`:
//! [`Scripted`] records every call and answers it from a script that may keep state from one
//! call to the next; [`FakeSystemd`] and [`FakeLaunchd`] are such scripts for `systemctl
//! --user` and `launchctl`, answering where `service install` and `uninstall` look as the real
//! ones do: the exit codes, the messages on stderr, `show` and `print`, and the state each call
//! leaves (a unit is what the last `daemon-reload` read; a started unit whose sandbox the
//! machine refuses fails with systemd's status; a booted-out agent stays loaded a little
//! while, and neither it nor a disabled label can be bootstrapped meanwhile).
//! A call a fake does not know panics, so a test notices a command it did not expect.

use std::collections::BTreeSet;
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

/// `launchctl` for the user's domain `gui/<uid>`, as launchd answers where `service install`
/// and `uninstall` look. Time is the fake's calls: each call is one more moment, in which a
/// booted-out job goes on leaving and a job `KeepAlive` restarts is started again. Where each
/// behaviour is documented is written beside it.
#[derive(Debug, Clone, Default)]
pub struct FakeLaunchd {
    /// credsync's job (`com.credsync.agent`) while launchd has it loaded.
    pub job: Option<Job>,
    /// For how many calls a booted-out job stays loaded.
    pub bootout_lingers: u32,
    /// Disabled labels: launchd's disabled database, which outlives bootout and bootstrap.
    pub disabled: BTreeSet<String>,
    /// What the daemon does when launchd starts it: `None` runs; `Some((code, stderr))` exits at
    /// once with `code`, having written `stderr`.
    pub daemon_exits: Option<(i32, String)>,
    /// Whether `brew services` has Homebrew's agent for credsync loaded.
    pub brew_loaded: bool,
    pub bootstraps: u32,
    pub kickstarts: u32,
}

/// A loaded job.
#[derive(Debug, Clone, Default)]
pub struct Job {
    /// The plist as it was when bootstrapped (launchd reads it once).
    pub plist: String,
    /// `Some(n)`: booted out, still loaded for `n` more calls.
    pub leaving: Option<u32>,
    pub running: bool,
    /// How many times launchd started it.
    pub runs: u32,
    pub last_exit: Option<i32>,
}

const LABEL: &str = "com.credsync.agent";
const BREW_LABEL: &str = "homebrew.mxcl.credsync";

impl FakeLaunchd {
    /// A runner answering as this launchd, and launchd's state to look at.
    pub fn runner(self) -> (Scripted, Arc<Mutex<FakeLaunchd>>) {
        stateful("launchctl", self, FakeLaunchd::answer)
    }

    /// The plist of the loaded job, if one is loaded (leaving or not).
    pub fn loaded(&self) -> Option<&str> {
        self.job.as_ref().map(|j| j.plist.as_str())
    }

    fn answer(&mut self, argv: &[String]) -> Result<Finished, RunError> {
        self.tick();
        let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
        let (domain, label) = match args.as_slice() {
            ["bootstrap", domain, _] => (*domain, LABEL),
            [.., target] => target.rsplit_once('/').unwrap_or((target, "")),
            [] => panic!("launchctl with no arguments"),
        };
        assert!(
            domain.starts_with("gui/"),
            "not the user's gui domain: {argv:?}"
        );
        // A job that is not loaded (print, kickstart): "Could not find service" on stderr, exit
        // status 113 (`launchctl error 113`); kxn/codex-remote-feishu#916 and
        // pingdotgg/t3code#12005 wait for exactly this answer after a bootout.
        let not_found = || {
            let uid = domain.trim_start_matches("gui/");
            Finished::exit(
                113,
                "",
                &format!("Could not find service \"{label}\" in domain for user gui: {uid}\n"),
            )
        };
        if label == BREW_LABEL {
            return Ok(match args.as_slice() {
                ["print", _] if self.brew_loaded => Finished::exit(
                    0,
                    &format!("{domain}/{BREW_LABEL} = {{\n\tstate = running\n\tpid = 99\n}}\n"),
                    "",
                ),
                ["print", _] => not_found(),
                _ => panic!("credsync never changes Homebrew's agent: {argv:?}"),
            });
        }
        assert_eq!(label, LABEL, "{argv:?}");
        Ok(match args.as_slice() {
            // launchctl(1) print: "the output of print is not official"; its top-level keys
            // `state = running` / `not running`, `runs`, `pid` and `last exit code` are what
            // Homebrew's `brew services` and projects installing agents read
            // (Homebrew/brew Library/Homebrew/services/formula_wrapper.rb reads
            // /last exit code = ([0-9]+)/ and /pid = ([0-9]+)/; traycerai/traycer#1791 meets
            // `last exit code = (never exited)`). Nested dictionaries repeat keys.
            ["print", _] => match &self.job {
                Some(job) => Finished::exit(0, &print(domain, job), ""),
                None => not_found(),
            },
            // Boot-out of a job that is not loaded: "Boot-out failed: 3: No such process"
            // (NousResearch/hermes-agent#95758). Of a loaded job: it returns
            // before the job is gone (DataDog/datadog-agent#49402, rossoctl/cortex#880,
            // kxn/codex-remote-feishu#916: `print` shows `state = SIGTERMed` until it is).
            ["bootout", _] => match &mut self.job {
                None => Finished::exit(3, "", "Boot-out failed: 3: No such process\n"),
                Some(job) if job.leaving.is_some() => {
                    panic!("a second bootout while the job leaves: credsync waits for it to go")
                }
                Some(job) => {
                    job.running = false;
                    job.leaving = Some(self.bootout_lingers);
                    if self.bootout_lingers == 0 {
                        self.job = None;
                    }
                    Finished::exit(0, "", "")
                }
            },
            // A disabled label cannot be loaded until enabled again, across bootstraps
            // (launchctl(1) enable/disable); bootstrap then fails with error 5
            // (openclaw/openclaw#849 "enable launchd service before bootstrap",
            // drpedapati/sciclaw#69).
            ["bootstrap", _, _] if self.disabled.contains(LABEL) => io_error(),
            // A job still loaded, or still leaving after a bootout: error 5 too
            // (kxn/codex-remote-feishu#916, drussell23/JARVIS#70401, rossoctl/cortex#880;
            // pirj/noclamshell#25 for `brew services start` over a loaded agent).
            ["bootstrap", _, _] if self.job.is_some() => io_error(),
            ["bootstrap", _, plist] => match std::fs::read_to_string(plist) {
                Ok(text) => {
                    self.bootstraps += 1;
                    let run_at_load = has_true(&text, "RunAtLoad");
                    self.job = Some(Job {
                        plist: text,
                        ..Job::default()
                    });
                    if run_at_load {
                        self.spawn();
                    }
                    Finished::exit(0, "", "")
                }
                Err(_) => Finished::exit(2, "", "Bootstrap failed: 2: No such file or directory\n"),
            },
            // launchctl(1) enable/disable: the label's state, kept until changed.
            ["enable", _] => {
                self.disabled.remove(LABEL);
                Finished::exit(0, "", "")
            }
            ["disable", _] => {
                self.disabled.insert(LABEL.to_owned());
                Finished::exit(0, "", "")
            }
            // launchctl(1) kickstart: "-k If the service is already running, kill the running
            // instance before restarting the service."
            ["kickstart", "-k", _] => match &mut self.job {
                Some(job) if job.leaving.is_none() => {
                    job.running = false;
                    self.kickstarts += 1;
                    self.spawn();
                    Finished::exit(0, "", "")
                }
                _ => not_found(),
            },
            _ => panic!("the fake launchctl does not know {argv:?}"),
        })
    }

    /// launchd starts the job: it runs, or exits at once with what it wrote appended to the
    /// plist's `StandardErrorPath` (launchd.plist(5)).
    fn spawn(&mut self) {
        let Some(job) = &mut self.job else { return };
        job.runs += 1;
        match &self.daemon_exits {
            None => job.running = true,
            Some((code, stderr)) => {
                job.running = false;
                job.last_exit = Some(*code);
                if let Some(log) = string_after(&job.plist, "StandardErrorPath") {
                    let mut f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(log)
                        .expect("the log's directory exists (launchd does not create it)");
                    std::io::Write::write_all(&mut f, stderr.as_bytes()).unwrap();
                }
            }
        }
    }

    /// One moment passes: a leaving job goes on leaving; an exited job that `KeepAlive` keeps
    /// alive is started again. launchd.plist(5): with `KeepAlive {SuccessfulExit = false}` "the
    /// job will be restarted" whenever it exits with a status other than 0 (after
    /// `ThrottleInterval`; here the next moment), with no limit.
    fn tick(&mut self) {
        let Some(job) = &mut self.job else { return };
        match job.leaving {
            Some(0) => self.job = None,
            Some(n) => job.leaving = Some(n - 1),
            None => {
                let restarts = !job.running
                    && job.last_exit.is_some_and(|c| c != 0)
                    && keeps_failures_alive(&job.plist);
                if restarts {
                    self.spawn();
                }
            }
        }
    }
}

/// launchctl's "Bootstrap failed: 5: Input/output error", exit status 5.
fn io_error() -> Finished {
    Finished::exit(5, "", "Bootstrap failed: 5: Input/output error\n")
}

/// `launchctl print gui/<uid>/com.credsync.agent` for `job`, with a nested dictionary that has
/// a `state` of its own.
fn print(domain: &str, job: &Job) -> String {
    let state = match (job.leaving, job.running) {
        (Some(_), _) => "SIGTERMed",
        (None, true) => "running",
        (None, false) => "not running",
    };
    let pid = if job.running {
        format!("\tpid = {}\n", 4000 + job.runs)
    } else {
        String::new()
    };
    let last = job
        .last_exit
        .map_or_else(|| "(never exited)".to_owned(), |c| c.to_string());
    format!(
        "{domain}/{LABEL} = {{\n\tactive count = {}\n\ttype = LaunchAgent\n\tstate = {state}\n\n\
         \tendpoints = {{\n\t\tstate = active\n\t}}\n\n\truns = {}\n{pid}\tlast exit code = {last}\n}}\n",
        u8::from(job.running),
        job.runs
    )
}

/// Whether the plist's `KeepAlive` restarts failures: `KeepAlive` true, or a dictionary with
/// `SuccessfulExit` false.
fn keeps_failures_alive(plist: &str) -> bool {
    let Some(after) = plist.split("<key>KeepAlive</key>").nth(1) else {
        return false;
    };
    let after = after.trim_start();
    after.starts_with("<true/>")
        || (after.starts_with("<dict>")
            && after
                .split("</dict>")
                .next()
                .is_some_and(|d| d.contains("<key>SuccessfulExit</key>") && has_false(d)))
}

fn has_true(plist: &str, key: &str) -> bool {
    plist
        .split(&format!("<key>{key}</key>"))
        .nth(1)
        .is_some_and(|after| after.trim_start().starts_with("<true/>"))
}

fn has_false(dict: &str) -> bool {
    dict.split("<key>SuccessfulExit</key>")
        .nth(1)
        .is_some_and(|after| after.trim_start().starts_with("<false/>"))
}

/// The `<string>` value of `key` in a plist, unescaped.
fn string_after(plist: &str, key: &str) -> Option<String> {
    let after = plist.split(&format!("<key>{key}</key>")).nth(1)?;
    let start = after.find("<string>")? + "<string>".len();
    let end = after[start..].find("</string>")? + start;
    Some(
        after[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}
