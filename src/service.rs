//! Installing credsync as a user service: a systemd user unit on Linux ([`systemd`]), a
//! LaunchAgent on macOS ([`launchd`]). What the service runs is a [`ServiceSpec`] ([`spec`]:
//! the binary, the config, the environment carried from the installing shell, the sandbox).
//! Rendering is pure (a spec in, the file's text out, escaped for the format); installing is a
//! thin edge that writes the file and asks `systemctl --user` / `launchctl` to start it
//! (through a [`Runner`]). This module holds what the two share: where the file goes
//! ([`Target`]), install and uninstall, their report and their errors.
//!
//! On Linux, install waits (bounded) until the unit is active, which for `Type=notify` means
//! the daemon sent READY=1; [`verdict`] judges what systemd reports, and a unit that failed at a
//! sandboxing step is rewritten without its sandbox and started again. On macOS, [`launchd`]
//! loads the agent the way launchd needs and waits until it runs.
//!
//! Both name the binary by the path a package manager keeps ([`stable_exe`]), and neither
//! writes a second service beside one a package manages: the Debian package's unit
//! ([`PACKAGED_UNIT`]) is enabled instead, a Homebrew service (`brew services`) is pointed at.
//!
//! In a WSL distribution ([`Target::wsl`]) with systemd, install is Linux's, and its report
//! ends with what WSL does to an idle distribution and what keeps it running. Without systemd
//! there is no user manager: install says how to turn systemd on, or to start credsync by hand.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::Env;
use crate::platform::Wsl;
use crate::process::Runner;
use crate::write::{self, WriteError, WriteMode, WriteOptions};

mod launchd;
mod spec;
mod systemd;
mod verdict;

pub use crate::platform::Platform;
pub(crate) use launchd::LAUNCHD_LABEL;
pub use launchd::{
    AGENT_PATH, DAEMON_FLAG, brew_plist, log_file, render_launchd_plist, stable_exe,
};
pub(crate) use spec::service_env;
pub use spec::{Sandbox, ServiceSpec, running_exe};
use systemd::SYSTEMD_UNIT;
pub use systemd::{
    APPARMOR_USERNS_SYSCTL, PACKAGED_EXE, PACKAGED_UNIT, packaged_shortfall, render_packaged_unit,
    render_systemd_unit, userns_restricted,
};
pub(crate) use systemd::{USERNS_FIX, USERNS_RESTRICTED, unit_sandbox_off};

/// Where and for whom to install.
#[derive(Debug, Clone)]
pub struct Target {
    pub platform: Platform,
    pub home: PathBuf,
    /// `$XDG_CONFIG_HOME` when set to an absolute path (Linux only).
    pub xdg_config_home: Option<PathBuf>,
    /// The uid whose launchd domain (`gui/<uid>`) gets the agent.
    pub uid: u32,
    /// The unit a distribution package installed ([`PACKAGED_UNIT`]), when there is one:
    /// install enables it instead of writing a second unit.
    pub packaged_unit: Option<PathBuf>,
    /// How long install and uninstall wait between two looks at launchd (`launchctl print`)
    /// while an old job goes away or the new one starts; they look at most 100 times. Tests
    /// give zero: their fake launchd moves on with each call.
    pub launchd_poll: Duration,
    /// The WSL distribution this Linux is, if it is one.
    pub wsl: Option<Wsl>,
}

impl Target {
    /// This process's platform, home and uid.
    pub fn current(env: &Env) -> Result<Target, ServiceError> {
        let platform = Platform::current().ok_or(ServiceError::UnsupportedPlatform)?;
        let xdg_config_home = env.xdg_dir("XDG_CONFIG_HOME");
        // SAFETY: geteuid has no preconditions and cannot fail.
        let uid = unsafe { libc::geteuid() };
        let packaged_unit = Some(PathBuf::from(PACKAGED_UNIT))
            .filter(|p| platform == Platform::Linux && p.exists());
        Ok(Target {
            platform,
            home: env.home.clone(),
            xdg_config_home,
            uid,
            packaged_unit,
            launchd_poll: launchd::DEFAULT_POLL,
            wsl: Wsl::here(env),
        })
    }

    /// `$XDG_CONFIG_HOME`, else `~/.config`: where systemd looks for user units (Linux).
    fn config_home(&self) -> PathBuf {
        self.xdg_config_home
            .clone()
            .unwrap_or_else(|| self.home.join(".config"))
    }

    /// The file install writes.
    pub fn service_file(&self) -> PathBuf {
        match self.platform {
            Platform::Linux => self.config_home().join("systemd/user").join(SYSTEMD_UNIT),
            Platform::MacOs => self
                .home
                .join("Library/LaunchAgents")
                .join(launchd::plist_name(LAUNCHD_LABEL)),
        }
    }
}

/// How long install waits for the unit to become active and ready.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a `systemctl` or `launchctl` command other than the start may take.
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The file install would write for `spec` on `target`.
pub fn render(spec: &ServiceSpec, target: &Target) -> String {
    match target.platform {
        Platform::Linux => render_systemd_unit(spec),
        Platform::MacOs => render_launchd_plist(spec, &target.home),
    }
}

/// The executable an installed service file runs, read back as [`render`] writes it: the
/// unit's first `ExecStart=` (its first word, after any `@-:+!` prefixes), or the plist's first
/// `ProgramArguments` string. `None` when the file names none.
pub(crate) fn installed_exe(platform: Platform, text: &str) -> Option<PathBuf> {
    match platform {
        Platform::Linux => systemd::unit_exe(text),
        Platform::MacOs => launchd::plist_program(text),
    }
}

/// Replaces each `@KEY@` in one pass, so substituted text is never substituted again.
pub(crate) fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(at) = rest.find('@') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let hit = values.iter().find(|(k, _)| {
            after
                .strip_prefix(k)
                .is_some_and(|tail| tail.starts_with('@'))
        });
        match hit {
            Some((k, v)) => {
                out.push_str(v);
                rest = &after[k.len() + 1..];
            }
            None => {
                out.push('@');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// What happened to the service file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileOutcome {
    Created,
    Updated,
    Unchanged,
    Removed,
    /// Uninstall found nothing to remove.
    Absent,
    /// The package's unit is used; no file written.
    Packaged,
}

/// What install or uninstall did, in order, for the user to read.
#[derive(Debug, Clone, PartialEq)]
pub struct InstallReport {
    pub path: PathBuf,
    pub file: FileOutcome,
    /// Each command run and its outcome.
    pub steps: Vec<String>,
    /// Set when the service was written but not started (or not stopped): why, and what to
    /// run instead.
    pub(crate) hint: Option<String>,
    /// Facts about this machine the user should know once the service is in place.
    pub(crate) notes: Vec<String>,
}

impl fmt::Display for InstallReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.file {
            FileOutcome::Created => "written",
            FileOutcome::Updated => "updated",
            FileOutcome::Unchanged => "unchanged",
            FileOutcome::Removed => "removed",
            FileOutcome::Absent => "not installed, nothing to remove",
            FileOutcome::Packaged => {
                "the credsync package's unit (credsync neither writes nor removes it)"
            }
        };
        writeln!(f, "{}: {what}", self.path.display())?;
        for step in &self.steps {
            writeln!(f, "{step}")?;
        }
        if let Some(hint) = &self.hint {
            writeln!(f, "{hint}")?;
        }
        for note in &self.notes {
            writeln!(f, "\nnote: {note}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(
        "credsync can install a service only on Linux (systemd) and macOS (launchd); \
         run `credsync daemon` from your session instead"
    )]
    UnsupportedPlatform,
    #[error(
        "systemd cannot run a binary whose path has quotes, backslashes or control characters: \
         {path}; move credsync to a plain path (e.g. ~/.local/bin/credsync) and install again"
    )]
    UnsafeExePath { path: PathBuf },
    #[error("cannot find the path of the running credsync binary: {source}")]
    CurrentExe { source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error(transparent)]
    File(#[from] WriteError),
    #[error("cannot remove {path}: {source}")]
    Remove { path: PathBuf, source: io::Error },
    #[error("`{command}`: {detail}\n{done}")]
    Command {
        command: String,
        detail: String,
        done: String,
    },
    /// A package installed the unit, and it does not run what this install asks for.
    #[error(
        "{unit} is installed by the credsync package, and {why}; `credsync service install` \
         does not write a second unit beside it.\n{fix}"
    )]
    PackagedUnit {
        unit: PathBuf,
        why: String,
        fix: String,
    },
    /// The unit was written and started but did not become active and ready.
    #[error(
        "{unit} did not start: {why}\n{status}\n{done}\n\
         fix what the status shows, then run `credsync service install` again \
         (`journalctl --user -u {unit}` has the daemon's log)"
    )]
    NotStarted {
        unit: String,
        why: String,
        status: String,
        done: String,
    },
    /// The LaunchAgent was loaded but does not run.
    #[error(
        "{service} did not start: {why}\nthe last lines of {}:\n{lines}\n{done}\n\
         fix what the log shows, then run `credsync service install` again",
        log.display()
    )]
    AgentNotStarted {
        service: String,
        why: String,
        log: PathBuf,
        lines: String,
        done: String,
    },
    /// In a WSL distribution without systemd there is no user manager to install into.
    #[error(
        "this WSL distribution runs without systemd, so there is no user service to install \
         credsync as.\n{how}"
    )]
    WslWithoutSystemd { how: String },
    /// `brew services` runs credsync already.
    #[error(
        "credsync runs as a Homebrew service ({why}); `credsync service install` does not \
         install a second agent beside it.\nto restart that one: `brew services restart \
         credsync`; to use credsync's own agent instead: `brew services stop credsync`, then \
         `credsync service install`"
    )]
    BrewService { why: String },
}

/// Writes the service file for `spec` (if it differs) and, when `start`, enables and starts
/// the service. Safe to re-run: an identical file is reported unchanged. When the service
/// manager cannot be reached the file stays written and the report says what to run. In a WSL
/// distribution the report ends with what WSL does to an idle distribution; one without
/// systemd gets no service ([`ServiceError::WslWithoutSystemd`], unless only the file is asked
/// for).
pub fn install(
    spec: &ServiceSpec,
    target: &Target,
    start: bool,
    runner: &dyn Runner,
) -> Result<InstallReport, ServiceError> {
    let wsl = target
        .wsl
        .as_ref()
        .filter(|_| target.platform == Platform::Linux);
    if start && wsl.is_some_and(|w| !w.systemd) {
        return Err(ServiceError::WslWithoutSystemd {
            how: wsl_without_systemd(),
        });
    }
    let mut report = install_here(spec, target, start, runner)?;
    if wsl.is_some() {
        report.notes.push(wsl_idle_note());
    }
    Ok(report)
}

/// What a service installed in a WSL distribution should know: when WSL stops it, and what
/// keeps it running.
pub fn wsl_idle_note() -> String {
    format!("{}; {}", Wsl::IDLE_SHUTDOWN, Wsl::KEEP_RUNNING)
}

/// How to run credsync in a WSL distribution without systemd.
pub fn wsl_without_systemd() -> String {
    "turn systemd on: add these lines to /etc/wsl.conf (as root), run `wsl.exe --shutdown`, \
     open the distribution again and run `credsync service install`:\n\n[boot]\nsystemd=true\n\n\
     or start credsync in each session yourself: `credsync daemon` in a terminal you keep \
     open, or `setsid -f credsync daemon >>~/.cache/credsync.log 2>&1` in ~/.profile (a \
     second daemon exits at once: one runs per user)"
        .to_owned()
}

/// [`install`] on this machine's service manager.
fn install_here(
    spec: &ServiceSpec,
    target: &Target,
    start: bool,
    runner: &dyn Runner,
) -> Result<InstallReport, ServiceError> {
    if target.platform == Platform::Linux {
        systemd::check_systemd_exe(&spec.exe)?;
    }
    let path = target.service_file();
    if let Some(unit) = &target.packaged_unit
        && std::fs::symlink_metadata(&path).is_err()
    {
        return systemd::install_packaged(spec, target, unit, start, runner);
    }
    if target.platform == Platform::MacOs
        && let Some(why) = launchd::brew_service(target, start.then_some(runner))
    {
        return Err(ServiceError::BrewService { why });
    }
    let text = render(spec, target);
    let file = write_if_changed(&path, &text)?;
    if target.platform == Platform::MacOs {
        // launchd does not create the directory of StandardErrorPath.
        let log = log_file(&target.home);
        let logs = log.parent().unwrap_or(&target.home);
        std::fs::create_dir_all(logs).map_err(|source| ServiceError::Write {
            path: logs.to_owned(),
            source,
        })?;
    }
    let mut report = InstallReport {
        path: path.clone(),
        file,
        steps: Vec::new(),
        hint: None,
        notes: Vec::new(),
    };
    if !start {
        report.hint = Some(format!(
            "written, not started (--no-start); to start it: {}",
            start_hint(target)
        ));
        return Ok(report);
    }
    match target.platform {
        Platform::Linux => systemd::start(spec, target, file, runner, &mut report)?,
        Platform::MacOs => launchd::start(target, file, runner, &mut report)?,
    }
    Ok(report)
}

/// Stops and disables the service, then removes its file.
pub fn uninstall(target: &Target, runner: &dyn Runner) -> Result<InstallReport, ServiceError> {
    let path = target.service_file();
    let exists = std::fs::symlink_metadata(&path).is_ok();
    let mut report = InstallReport {
        path: path.clone(),
        file: if exists {
            FileOutcome::Removed
        } else {
            FileOutcome::Absent
        },
        steps: Vec::new(),
        hint: None,
        notes: Vec::new(),
    };
    if target.platform == Platform::MacOs {
        // Loaded without its file (removed by hand) counts too: nothing stays loaded.
        launchd::stop(target, runner, &mut report)?;
        remove(&path)?;
        if let Some(why) = launchd::brew_service(target, None) {
            report.hint = Some(format!(
                "credsync also runs as a Homebrew service ({why}); `brew services stop \
                 credsync` stops that one"
            ));
        }
        return Ok(report);
    }
    if !exists {
        if let Some(unit) = &target.packaged_unit {
            // The package's unit stays (it is the package's file); this user stops using it.
            report.path = unit.clone();
            report.file = FileOutcome::Packaged;
            systemd::systemctl(runner, &mut report, &["disable", "--now", SYSTEMD_UNIT])?;
        }
        return Ok(report);
    }
    if systemd::systemctl(runner, &mut report, &["disable", "--now", SYSTEMD_UNIT])? {
        remove(&path)?;
        systemd::systemctl(runner, &mut report, &["daemon-reload"])?;
    } else {
        remove(&path)?;
    }
    Ok(report)
}

fn remove(path: &Path) -> Result<(), ServiceError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(ServiceError::Remove {
            path: path.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}

fn start_hint(target: &Target) -> String {
    match target.platform {
        Platform::Linux if target.wsl.as_ref().is_some_and(|w| !w.systemd) => {
            format!(
                "this WSL distribution runs without systemd; {}",
                wsl_without_systemd()
            )
        }
        Platform::Linux => systemd::start_hint(),
        Platform::MacOs => launchd::start_hint(target),
    }
}

/// How a user starts the daemon that is not running, on `platform`: the service manager's
/// command for the installed service, installing it, or the foreground daemon.
pub fn how_to_start(platform: Option<Platform>) -> String {
    let service = match platform {
        Some(Platform::MacOs) => format!(
            "`launchctl kickstart gui/$(id -u)/{LAUNCHD_LABEL}` (installed as a service; its \
             log is ~/Library/Logs/credsync/credsync.log)"
        ),
        Some(Platform::Linux) => {
            "`systemctl --user start credsync` (installed as a service)".to_owned()
        }
        None => return "run `credsync daemon` (in your session's startup)".to_owned(),
    };
    format!(
        "start it with {service}, install the service with `credsync service install`, or run `credsync daemon`"
    )
}

pub(crate) fn words(argv: &[&str]) -> Vec<String> {
    argv.iter().map(|w| (*w).to_owned()).collect()
}

/// Writes `text` to `path` with [`write::update`] (atomically; a new file `0644`) unless it
/// already holds exactly that.
fn write_if_changed(path: &Path, text: &str) -> Result<FileOutcome, ServiceError> {
    let mut existed = false;
    let opts = WriteOptions {
        mode: WriteMode::Atomic,
        new_file_mode: 0o644,
    };
    let outcome = write::update(path, &opts, |old| {
        existed = old.is_some();
        Ok((old != Some(text.as_bytes())).then(|| text.as_bytes().to_vec()))
    })?;
    Ok(match (outcome, existed) {
        (write::Outcome::Unchanged, _) => FileOutcome::Unchanged,
        (write::Outcome::Written, true) => FileOutcome::Updated,
        (write::Outcome::Written, false) => FileOutcome::Created,
    })
}

#[cfg(test)]
mod tests {
    use super::launchd::xml_escape;
    use super::systemd::systemd_word;
    use super::*;

    #[test]
    fn the_installed_exe_reads_back_what_render_wrote() {
        for exe in [
            "/usr/bin/credsync",
            "/opt/my apps/cred%sync",
            "/opt/a\"b\\c",
            "/opt/tab\there\nand\u{1}",
        ] {
            let unit = format!(
                "[Service]\nType=notify\nExecStart={} --config /c.toml daemon\n",
                systemd_word(exe)
            );
            assert_eq!(
                installed_exe(Platform::Linux, &unit),
                Some(PathBuf::from(exe)),
                "{unit}"
            );
            let plist = format!(
                "<key>ProgramArguments</key>\n<array>\n\t\t<string>{}</string>\n\t\t<string>daemon</string>",
                xml_escape(exe)
            );
            assert_eq!(
                installed_exe(Platform::MacOs, &plist),
                Some(PathBuf::from(exe))
            );
        }
        let unit = "[Service]\nType=notify\nExecStart=\"/opt/my apps/cred%%sync\" --config /c.toml daemon\n";
        assert_eq!(
            installed_exe(Platform::Linux, unit),
            Some(PathBuf::from("/opt/my apps/cred%sync"))
        );
        assert_eq!(
            installed_exe(Platform::Linux, "[Service]\nType=notify\n"),
            None
        );
        let plist = "<key>ProgramArguments</key>\n<array>\n\t\t<string>/Apps/a&amp;b/credsync</string>\n\t\t<string>daemon</string>";
        assert_eq!(
            installed_exe(Platform::MacOs, plist),
            Some(PathBuf::from("/Apps/a&b/credsync"))
        );
    }

    #[test]
    fn how_to_start_names_the_platforms_service_manager() {
        let linux = how_to_start(Some(Platform::Linux));
        assert!(
            linux.contains("`systemctl --user start credsync`"),
            "{linux}"
        );
        assert!(!linux.contains("launchctl"), "{linux}");
        let mac = how_to_start(Some(Platform::MacOs));
        assert!(
            mac.contains("`launchctl kickstart gui/$(id -u)/com.credsync.agent`"),
            "{mac}"
        );
        assert!(
            mac.contains("~/Library/Logs/credsync/credsync.log"),
            "{mac}"
        );
        assert!(!mac.contains("systemctl"), "{mac}");
        for text in [&linux, &mac] {
            assert!(
                text.contains("`credsync service install`") && text.contains("`credsync daemon`")
            );
        }
        let other = how_to_start(None);
        assert!(
            !other.contains("systemctl") && !other.contains("launchctl"),
            "{other}"
        );
    }

    #[test]
    fn fill_substitutes_once() {
        assert_eq!(
            fill("a @X@ b @Y@ @Z@ me@host", &[("X", "@Y@"), ("Y", "y")]),
            "a @Y@ b y @Z@ me@host"
        );
    }
}
