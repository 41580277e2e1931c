//! The LaunchAgent (macOS): the plist, rendered from `launchd/` and read back, and the
//! `launchctl` sequence that loads it into the user's `gui/<uid>` domain, starts it and judges
//! the start, or unloads it. Compiled and tested on every platform: each decision is a pure
//! function of what `launchctl` printed, and `launchctl` runs through a [`Runner`].
//!
//! What launchd does that this module is written against (launchctl(1), launchd.plist(5), and
//! what projects that install agents ran into; the test fake, `FakeLaunchd` in
//! `tests/support/fake_programs.rs`, cites a source beside each behaviour):
//! - `bootout` returns before the job is gone, and `bootstrap` fails with
//!   `5: Input/output error` while it is (and for a label that is loaded, or disabled). So a
//!   replaced agent is booted out and waited for ([`Look::Gone`]) before the new one is loaded,
//!   and the label is `enable`d first: a `disable`d label stays disabled across bootstraps.
//! - `print gui/<uid>/<label>` describes a loaded job: `state = running` or `not running`,
//!   `runs`, `pid` and `last exit code`, at the top level of a nested listing ([`Job`]); it
//!   fails with exit status 113 for a job that is not loaded.
//! - `kickstart -k` kills a loaded job's process and starts it again (an unchanged plist).
//! - `KeepAlive {SuccessfulExit=false}` restarts every non-zero exit, every
//!   `ThrottleInterval`, with no limit. The daemon therefore runs as `daemon --launchd`
//!   ([`DAEMON_FLAG`]): a config error waits for the config to change instead of exiting, and
//!   another daemon already serving this user ends it with status 0, which launchd leaves be.
//! - launchd gives a job `PATH=/usr/bin:/bin:/usr/sbin:/sbin`; the plist sets [`AGENT_PATH`],
//!   with Homebrew's prefixes, so a `[notify] command` installed by Homebrew is found.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{
    COMMAND_TIMEOUT, FileOutcome, InstallReport, START_TIMEOUT, ServiceError, ServiceSpec, Target,
    fill, service_env, words,
};
use crate::process::{Finished, RunError, Runner};
use crate::user_file::{self, Kind};

/// The LaunchAgent's label (and plist file name, with `.plist`).
pub(crate) const LAUNCHD_LABEL: &str = "com.credsync.agent";

/// The label `brew services` gives credsync's formula (`homebrew.mxcl.<formula>`), and its plist
/// in `~/Library/LaunchAgents`.
pub(crate) const BREW_LABEL: &str = "homebrew.mxcl.credsync";

/// The argument after `daemon` in the plist: run by launchd, whose `KeepAlive` restarts every
/// failure (see the module's header).
pub const DAEMON_FLAG: &str = "--launchd";

/// The agent's `PATH`: Homebrew's prefixes (Apple silicon, then Intel), then launchd's own.
pub const AGENT_PATH: &str = "/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";

const TEMPLATE: &str = include_str!("../../launchd/com.credsync.agent.plist");

/// How many times install and uninstall look at the job (`launchctl print`) while waiting for
/// it to go or to run, [`Target::launchd_poll`] apart: [`START_TIMEOUT`] at the default poll.
pub(crate) const LOOKS: u32 = 100;

/// How many of the log's last lines a failed start shows.
const LOG_LINES: usize = 15;

/// The plist's file name in `~/Library/LaunchAgents`.
pub(crate) fn plist_name(label: &str) -> String {
    format!("{label}.plist")
}

/// Where launchd writes the agent's stdout and stderr: `~/Library/Logs/credsync/credsync.log`.
pub fn log_file(home: &Path) -> PathBuf {
    home.join("Library/Logs/credsync/credsync.log")
}

/// The LaunchAgent plist for `spec`: `exe [--config config] daemon --launchd` with its
/// environment and [`AGENT_PATH`], logging to [`log_file`].
pub fn render_launchd_plist(spec: &ServiceSpec, home: &Path) -> String {
    let mut args = vec![spec.exe.to_string_lossy().into_owned()];
    if let Some(config) = &spec.config {
        args.push("--config".to_owned());
        args.push(config.to_string_lossy().into_owned());
    }
    args.push("daemon".to_owned());
    args.push(DAEMON_FLAG.to_owned());
    let args: Vec<String> = args
        .iter()
        .map(|a| format!("\t\t<string>{}</string>", xml_escape(a)))
        .collect();
    let mut env = service_env(&spec.env);
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push(("PATH".to_owned(), AGENT_PATH.to_owned()));
        env.sort();
    }
    let env: Vec<String> = env
        .iter()
        .map(|(k, v)| {
            format!(
                "\t\t<key>{}</key>\n\t\t<string>{}</string>",
                xml_escape(k),
                xml_escape(v)
            )
        })
        .collect();
    fill(
        TEMPLATE,
        &[
            ("LABEL", &xml_escape(LAUNCHD_LABEL)),
            ("PROGRAM_ARGUMENTS", &args.join("\n")),
            ("ENVIRONMENT", &env.join("\n")),
            ("LOG_FILE", &xml_escape(&log_file(home).to_string_lossy())),
        ],
    )
}

/// The program a plist runs, read back as [`render_launchd_plist`] writes it: the first
/// `ProgramArguments` string.
pub(crate) fn plist_program(text: &str) -> Option<PathBuf> {
    let after = text.split("<key>ProgramArguments</key>").nth(1)?;
    let start = after.find("<string>")? + "<string>".len();
    let end = after[start..].find("</string>")? + start;
    Some(PathBuf::from(xml_unescape(&after[start..end])))
}

/// [`xml_escape`] undone.
fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Text safe inside an XML element or attribute.
pub(crate) use crate::markup::escape as xml_escape;

/// A loaded job as `launchctl print` describes it: the top-level `key = value` lines (nested
/// dictionaries, such as `domain = { state = active }`, have keys of the same names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Job {
    /// `state`: `running`, `not running`, `spawn scheduled`, `SIGTERMed`, ...
    pub(crate) state: String,
    /// `runs`: how many times launchd started it since it was loaded.
    pub(crate) runs: u32,
    pub(crate) pid: Option<u32>,
    /// `last exit code`: a number, or `(never exited)`.
    pub(crate) last_exit: Option<String>,
}

/// Parses `launchctl print <service>` output.
pub(crate) fn parse_print(text: &str) -> Job {
    let mut job = Job::default();
    let mut depth = 0usize;
    for line in text.lines() {
        let line = line.trim();
        if line == "}" {
            depth = depth.saturating_sub(1);
            continue;
        }
        let Some((key, value)) = line.split_once(" = ") else {
            continue;
        };
        if value.ends_with('{') {
            depth += 1;
            continue;
        }
        // Depth 1: inside the service's own `<service> = {`.
        if depth != 1 {
            continue;
        }
        match key {
            "state" => job.state = value.to_owned(),
            "runs" => job.runs = value.parse().unwrap_or(0),
            "pid" => job.pid = value.parse().ok(),
            "last exit code" => job.last_exit = Some(value.to_owned()),
            _ => {}
        }
    }
    job
}

/// What a look at the job found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Look {
    /// launchd does not know the job (`print` exits 113: "Could not find service").
    Gone,
    Loaded(Job),
}

/// `launchctl print`'s exit status for a service that is not loaded.
const NOT_LOADED: i32 = 113;

/// Reads what `print` answered.
pub(crate) fn read_look(ran: &Finished) -> Option<Look> {
    match ran.code {
        Some(0) => Some(Look::Loaded(parse_print(&ran.stdout))),
        Some(NOT_LOADED) => Some(Look::Gone),
        _ if ran.stderr.contains("Could not find service") => Some(Look::Gone),
        _ => None,
    }
}

/// What a start came to, judged from one look at the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Start {
    /// `state = running`.
    Running { pid: Option<u32> },
    /// It was started (more `runs` than `runs_before`) and is no longer running: why.
    Ended(String),
    /// Not running yet (`spawn scheduled`, ...): what it is.
    Pending(String),
}

/// Judges `job` after a start that found it at `runs_before` runs (0 for a fresh bootstrap).
pub(crate) fn judge_start(job: &Job, runs_before: u32) -> Start {
    if job.state == "running" {
        return Start::Running { pid: job.pid };
    }
    let exited = job.last_exit.as_deref().filter(|e| *e != "(never exited)");
    match exited {
        Some(code) if job.runs > runs_before => Start::Ended(format!(
            "it started and exited (state = {}, last exit code = {code})",
            job.state
        )),
        _ => Start::Pending(format!("state = {}", job.state)),
    }
}

/// The path a service should name for the credsync binary at `exe` (canonical): a Homebrew
/// keg's `<prefix>/Cellar/<formula>/<version>/bin/<name>`, which `brew upgrade` deletes, becomes
/// the link Homebrew keeps, `<prefix>/bin/<name>` (else `<prefix>/opt/<formula>/bin/<name>`),
/// when that link leads to the same file (`resolve`: canonicalise). Any other path is kept.
pub fn stable_exe(exe: &Path, resolve: &dyn Fn(&Path) -> Option<PathBuf>) -> PathBuf {
    let parts: Vec<_> = exe.components().collect();
    // ... / Cellar / formula / version / bin / name
    let keg = parts.len().checked_sub(5).filter(|&at| {
        at > 0 && parts[at].as_os_str() == "Cellar" && parts[at + 3].as_os_str() == "bin"
    });
    let Some(at) = keg else {
        return exe.to_owned();
    };
    let prefix: PathBuf = parts[..at].iter().collect();
    let formula = parts[at + 1].as_os_str();
    let name = parts[at + 4].as_os_str();
    let links = [
        prefix.join("bin").join(name),
        prefix.join("opt").join(formula).join("bin").join(name),
    ];
    links
        .into_iter()
        .find(|link| resolve(link).as_deref() == Some(exe))
        .unwrap_or_else(|| exe.to_owned())
}

/// The Homebrew service's plist, `~/Library/LaunchAgents/homebrew.mxcl.credsync.plist`.
pub fn brew_plist(home: &Path) -> PathBuf {
    home.join("Library/LaunchAgents")
        .join(plist_name(BREW_LABEL))
}

/// Why credsync runs as a Homebrew service (`brew services start credsync`), if it does: its
/// plist exists, or (when `runner` may look) launchd has its job loaded.
pub(crate) fn brew_service(target: &Target, runner: Option<&dyn Runner>) -> Option<String> {
    let plist = brew_plist(&target.home);
    if std::fs::symlink_metadata(&plist).is_ok() {
        return Some(format!("{} exists", plist.display()));
    }
    let service = format!("gui/{}/{BREW_LABEL}", target.uid);
    let loaded = runner
        .and_then(|r| r.run(&print_argv(&service), COMMAND_TIMEOUT).ok())
        .and_then(|ran| read_look(&ran))
        .is_some_and(|look| matches!(look, Look::Loaded(_)));
    loaded.then(|| format!("launchd has {service} loaded"))
}

fn print_argv(service: &str) -> Vec<String> {
    words(&["launchctl", "print", service])
}

/// The job's service target, `gui/<uid>/com.credsync.agent`, and its domain.
fn names(target: &Target) -> (String, String) {
    let domain = format!("gui/{}", target.uid);
    (format!("{domain}/{LAUNCHD_LABEL}"), domain)
}

/// Loads and starts the agent whose plist install just wrote (`file` says whether it
/// changed), and waits until it runs: an unchanged plist whose job is loaded is restarted
/// (`kickstart -k`); otherwise a loaded job is booted out and waited for, then the label is
/// enabled and the plist bootstrapped. A job that does not reach `state = running` within
/// [`START_TIMEOUT`], or that exits, is an error with the log's new lines.
pub(super) fn start(
    target: &Target,
    file: FileOutcome,
    runner: &dyn Runner,
    report: &mut InstallReport,
) -> Result<(), ServiceError> {
    let (service, domain) = names(target);
    let plist = report.path.to_string_lossy().into_owned();
    let log = log_file(&target.home);
    let log_mark = std::fs::metadata(&log).map_or(0, |m| m.len());
    let runs_before = match look(runner, report, &service)? {
        Look::Loaded(job) if file == FileOutcome::Unchanged => {
            launchctl(runner, report, &["enable", &service])?;
            launchctl(runner, report, &["kickstart", "-k", &service])?;
            job.runs
        }
        found => {
            if matches!(found, Look::Loaded(_)) {
                launchctl(runner, report, &["bootout", &service])?;
                wait_gone(target, runner, report, &service)?;
            }
            launchctl(runner, report, &["enable", &service])?;
            launchctl(runner, report, &["bootstrap", &domain, &plist])?;
            0
        }
    };
    let mut last = String::from("not looked at");
    for i in 0..LOOKS {
        if i > 0 {
            std::thread::sleep(target.launchd_poll);
        }
        let why = match look(runner, report, &service)? {
            Look::Gone => "launchd no longer has it loaded".to_owned(),
            Look::Loaded(job) => match judge_start(&job, runs_before) {
                Start::Running { pid } => {
                    let pid = pid.map_or_else(String::new, |p| format!(" (pid {p})"));
                    report.steps.push(format!("{service} is running{pid}"));
                    return Ok(());
                }
                Start::Ended(why) => {
                    return Err(not_started(&service, why, &log, log_mark, report));
                }
                Start::Pending(why) => why,
            },
        };
        last = why;
    }
    Err(not_started(
        &service,
        format!("not running within {}s ({last})", START_TIMEOUT.as_secs()),
        &log,
        log_mark,
        report,
    ))
}

/// Boots the agent out (when loaded) and waits until launchd no longer has it.
pub(super) fn stop(
    target: &Target,
    runner: &dyn Runner,
    report: &mut InstallReport,
) -> Result<(), ServiceError> {
    let (service, _) = names(target);
    match look(runner, report, &service)? {
        Look::Gone => report.steps.push(format!("{service} is not loaded")),
        Look::Loaded(_) => {
            launchctl(runner, report, &["bootout", &service])?;
            wait_gone(target, runner, report, &service)?;
        }
    }
    Ok(())
}

/// Looks until launchd no longer has `service` (bootout returns before that).
fn wait_gone(
    target: &Target,
    runner: &dyn Runner,
    report: &mut InstallReport,
    service: &str,
) -> Result<(), ServiceError> {
    for i in 0..LOOKS {
        if i > 0 {
            std::thread::sleep(target.launchd_poll);
        }
        if look(runner, report, service)? == Look::Gone {
            report.steps.push(format!("{service} is unloaded"));
            return Ok(());
        }
    }
    Err(ServiceError::Command {
        command: format!("launchctl bootout {service}"),
        detail: format!(
            "launchd still had the job {}s later; run `launchctl bootout {service}` and try \
             again",
            START_TIMEOUT.as_secs()
        ),
        done: done(report),
    })
}

/// One `launchctl print`, read.
fn look(runner: &dyn Runner, report: &InstallReport, service: &str) -> Result<Look, ServiceError> {
    let argv = print_argv(service);
    let ran = runner.run(&argv, COMMAND_TIMEOUT);
    match ran.as_ref().ok().and_then(read_look) {
        Some(look) => Ok(look),
        None => Err(ServiceError::Command {
            command: argv.join(" "),
            detail: match ran {
                Ok(ran) => ran
                    .check(&argv)
                    .err()
                    .map_or_else(|| "unexpected output".to_owned(), |e| e.to_string()),
                Err(e) => e.to_string(),
            },
            done: done(report),
        }),
    }
}

/// Runs `launchctl ARGS`, which must succeed.
fn launchctl(
    runner: &dyn Runner,
    report: &mut InstallReport,
    args: &[&str],
) -> Result<(), ServiceError> {
    let mut argv = vec!["launchctl"];
    argv.extend_from_slice(args);
    let argv = words(&argv);
    let shown = argv.join(" ");
    match runner
        .run(&argv, COMMAND_TIMEOUT)
        .and_then(|ran| ran.check(&argv))
    {
        Ok(_) => {
            report.steps.push(format!("ran: {shown}"));
            Ok(())
        }
        Err(e) => Err(ServiceError::Command {
            command: shown,
            detail: launchctl_detail(&e),
            done: done(report),
        }),
    }
}

/// A failed `launchctl` in words, with what its error 5 may mean.
fn launchctl_detail(e: &RunError) -> String {
    let mut detail = e.to_string();
    if e.stderr()
        .is_some_and(|s| s.contains("5: Input/output error"))
    {
        detail.push_str(
            "\nlaunchd refuses a job it still has loaded, or one that is disabled \
             (`launchctl print-disabled gui/$(id -u)` lists them)",
        );
    }
    detail
}

fn done(report: &InstallReport) -> String {
    format!("{report}").trim_end().to_owned()
}

fn not_started(
    service: &str,
    why: String,
    log: &Path,
    log_mark: u64,
    report: &InstallReport,
) -> ServiceError {
    ServiceError::AgentNotStarted {
        service: service.to_owned(),
        why,
        log: log.to_owned(),
        lines: log_since(log, log_mark),
        done: done(report),
    }
}

/// The last lines written to `log` after it was `mark` bytes long (all of its end, when it
/// was truncated since), or why there are none.
fn log_since(log: &Path, mark: u64) -> String {
    let tail = match user_file::read_tail(log, Kind::ServiceLog) {
        Ok(Some(tail)) => tail,
        Ok(None) => return format!("({} does not exist)", log.display()),
        Err(e) => return format!("({e})"),
    };
    let len = std::fs::metadata(log).map_or(0, |m| m.len());
    let new = usize::try_from(len.saturating_sub(mark)).unwrap_or(usize::MAX);
    let new = if len < mark {
        &tail[..]
    } else {
        &tail[tail.len().saturating_sub(new)..]
    };
    let text = String::from_utf8_lossy(new);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return format!("(nothing new in {})", log.display());
    }
    lines[lines.len().saturating_sub(LOG_LINES)..].join("\n")
}

/// How to start the agent by hand.
pub(super) fn start_hint(target: &Target) -> String {
    let (service, domain) = names(target);
    format!(
        "`launchctl enable {service} && launchctl bootstrap {domain} {}`, or `credsync daemon` \
         in the foreground",
        target.service_file().display()
    )
}

/// How long install waits between two looks at launchd by default.
pub(crate) const DEFAULT_POLL: Duration = Duration::from_millis(100);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::Sandbox;

    fn spec(exe: &str, config: Option<&str>) -> ServiceSpec {
        ServiceSpec {
            exe: PathBuf::from(exe),
            config: config.map(PathBuf::from),
            extra_rw_paths: Vec::new(),
            env: Vec::new(),
            sandbox: Sandbox::Full,
        }
    }

    #[test]
    fn plist_escapes_what_it_substitutes() {
        let mut spec = spec("/Users/a&b/<bin>/credsync", Some("/Users/a&b/c.toml"));
        spec.env = vec![("AWS_CONFIG_FILE".into(), "/Users/a&b/<aws>/config".into())];
        let plist = render_launchd_plist(&spec, Path::new("/Users/a&b"));
        assert!(
            plist.contains(
                "<key>AWS_CONFIG_FILE</key>\n\t\t<string>/Users/a&amp;b/&lt;aws&gt;/config</string>"
            ),
            "{plist}"
        );
        assert!(
            plist.contains("<string>/Users/a&amp;b/&lt;bin&gt;/credsync</string>"),
            "{plist}"
        );
        assert!(
            plist.contains("<string>--config</string>\n\t\t<string>/Users/a&amp;b/c.toml</string>")
        );
        assert!(
            plist.contains("<string>/Users/a&amp;b/Library/Logs/credsync/credsync.log</string>")
        );
        assert!(!plist.contains('@'), "{plist}");
        assert_eq!(
            plist_program(&plist),
            Some(PathBuf::from("/Users/a&b/<bin>/credsync"))
        );
    }

    #[test]
    fn the_agent_runs_the_daemon_for_launchd_with_homebrews_path() {
        let plist = render_launchd_plist(
            &spec("/opt/homebrew/bin/credsync", None),
            Path::new("/Users/u"),
        );
        assert!(
            plist.contains(
                "<string>/opt/homebrew/bin/credsync</string>\n\t\t<string>daemon</string>\n\t\t\
                 <string>--launchd</string>\n\t</array>"
            ),
            "{plist}"
        );
        assert!(
            plist.contains(
                "<key>PATH</key>\n\t\t<string>/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin:\
                 /usr/sbin:/sbin</string>"
            ),
            "{plist}"
        );
        // Sorted with the rest of the environment.
        let keys: Vec<&str> = plist
            .lines()
            .filter_map(|l| l.trim().strip_prefix("<key>")?.strip_suffix("</key>"))
            .skip_while(|k| *k != "EnvironmentVariables")
            .skip(1)
            .collect();
        assert_eq!(keys, ["CREDSYNC_LOG", "PATH"]);
    }

    /// `launchctl print gui/501/com.credsync.agent` of a running agent, trimmed: the top level
    /// and the nested dictionaries that repeat its keys.
    const RUNNING: &str = "gui/501/com.credsync.agent = {
\tactive count = 1
\tpath = /Users/u/Library/LaunchAgents/com.credsync.agent.plist
\ttype = LaunchAgent
\tstate = running

\tprogram = /opt/homebrew/bin/credsync
\targuments = {
\t\t/opt/homebrew/bin/credsync
\t\tdaemon
\t}

\tdomain = gui/501 [100004]
\tendpoints = {
\t\tstate = active
\t}
\truns = 2
\tpid = 4242
\tlast exit code = (never exited)
}
";

    #[test]
    fn print_is_read_at_its_top_level_only() {
        assert_eq!(
            parse_print(RUNNING),
            Job {
                state: "running".into(),
                runs: 2,
                pid: Some(4242),
                last_exit: Some("(never exited)".into()),
            }
        );
        let stopped = RUNNING
            .replace("\tstate = running\n", "\tstate = not running\n")
            .replace("\tpid = 4242\n", "")
            .replace("(never exited)", "2");
        let job = parse_print(&stopped);
        assert_eq!(
            (job.state.as_str(), job.pid, job.last_exit.as_deref()),
            ("not running", None, Some("2"))
        );
        assert_eq!(
            read_look(&Finished::exit(0, RUNNING, "")),
            Some(Look::Loaded(parse_print(RUNNING)))
        );
        let missing = "Could not find service \"com.credsync.agent\" in domain for user gui: 501\n";
        assert_eq!(
            read_look(&Finished::exit(113, "", missing)),
            Some(Look::Gone)
        );
        assert_eq!(read_look(&Finished::exit(1, "", "Bad request.\n")), None);
    }

    fn job(state: &str, runs: u32, last_exit: &str) -> Job {
        Job {
            state: state.into(),
            runs,
            pid: (state == "running").then_some(7),
            last_exit: Some(last_exit.into()),
        }
    }

    #[test]
    fn a_start_is_judged_by_state_runs_and_last_exit() {
        assert_eq!(
            judge_start(&job("running", 1, "(never exited)"), 0),
            Start::Running { pid: Some(7) }
        );
        // Restarted by kickstart -k: the old process's exit does not count.
        assert_eq!(
            judge_start(&job("running", 4, "-15"), 3),
            Start::Running { pid: Some(7) }
        );
        assert!(matches!(
            judge_start(&job("not running", 1, "2"), 0),
            Start::Ended(why) if why.contains("last exit code = 2")
        ));
        assert!(matches!(
            judge_start(&job("not running", 1, "0"), 0),
            Start::Ended(why) if why.contains("last exit code = 0")
        ));
        // Not started yet: the exit is the previous process's, or there is none.
        assert_eq!(
            judge_start(&job("not running", 3, "-15"), 3),
            Start::Pending("state = not running".into())
        );
        assert_eq!(
            judge_start(&job("spawn scheduled", 0, "(never exited)"), 0),
            Start::Pending("state = spawn scheduled".into())
        );
        assert_eq!(
            judge_start(&job("not running", 1, "(never exited)"), 0),
            Start::Pending("state = not running".into())
        );
    }

    /// A resolver over symlinks given as (link, target) pairs; every other path resolves to
    /// itself.
    fn links(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&Path) -> Option<PathBuf> {
        move |p| {
            let hit = pairs.iter().find(|(l, _)| Path::new(l) == p);
            Some(hit.map_or_else(|| p.to_owned(), |(_, t)| PathBuf::from(t)))
        }
    }

    #[test]
    fn a_homebrew_keg_path_becomes_the_link_homebrew_keeps() {
        let keg = Path::new("/opt/homebrew/Cellar/credsync/1.2.3/bin/credsync");
        let brew = links(&[
            (
                "/opt/homebrew/bin/credsync",
                "/opt/homebrew/Cellar/credsync/1.2.3/bin/credsync",
            ),
            (
                "/opt/homebrew/opt/credsync/bin/credsync",
                "/opt/homebrew/Cellar/credsync/1.2.3/bin/credsync",
            ),
            (
                "/usr/local/bin/credsync",
                "/usr/local/Cellar/credsync/1.2.3/bin/credsync",
            ),
            (
                "/home/linuxbrew/.linuxbrew/opt/credsync/bin/credsync",
                "/home/linuxbrew/.linuxbrew/Cellar/credsync/0.9/bin/credsync",
            ),
        ]);
        assert_eq!(
            stable_exe(keg, &brew),
            Path::new("/opt/homebrew/bin/credsync")
        );
        // Intel's prefix.
        let intel = Path::new("/usr/local/Cellar/credsync/1.2.3/bin/credsync");
        assert_eq!(
            stable_exe(intel, &brew),
            Path::new("/usr/local/bin/credsync")
        );
        // No bin link (unlinked keg, Linuxbrew here): the opt link.
        let linuxbrew = Path::new("/home/linuxbrew/.linuxbrew/Cellar/credsync/0.9/bin/credsync");
        assert_eq!(
            stable_exe(linuxbrew, &brew),
            Path::new("/home/linuxbrew/.linuxbrew/opt/credsync/bin/credsync")
        );
        // Links that lead elsewhere (another version is linked): the keg path stays, as the
        // program that runs is this one.
        let old = Path::new("/opt/homebrew/Cellar/credsync/1.2.2/bin/credsync");
        assert_eq!(stable_exe(old, &brew), old);
        // Not a keg.
        for plain in [
            "/Users/u/.cargo/bin/credsync",
            "/usr/local/bin/credsync",
            "/Cellar/credsync/1/bin/credsync",
            "/opt/Cellar/credsync/1/libexec/credsync",
            "/x/Cellar/credsync/bin",
        ] {
            assert_eq!(
                stable_exe(Path::new(plain), &brew),
                Path::new(plain),
                "{plain}"
            );
        }
    }

    #[test]
    fn waiting_looks_add_up_to_the_start_timeout() {
        assert_eq!(DEFAULT_POLL * LOOKS, START_TIMEOUT);
    }
}
