//! Installing credsync as a user service: a systemd user unit on Linux, a LaunchAgent on
//! macOS. The templates live in `systemd/` and `launchd/`; rendering them is pure (paths in,
//! text out, escaped for the format), installing is a thin edge that writes the file and asks
//! `systemctl --user` / `launchctl` to start it. Also the `sd_notify` calls the daemon makes.

use std::fmt;
use std::io::{self, Write as _};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::config::{Config, Env, Origin};

/// The systemd unit's name.
pub const SYSTEMD_UNIT: &str = "credsync.service";
/// The LaunchAgent's label (and plist file name, with `.plist`).
pub const LAUNCHD_LABEL: &str = "com.credsync.agent";

const SYSTEMD_TEMPLATE: &str = include_str!("../systemd/credsync.service");
const LAUNCHD_TEMPLATE: &str = include_str!("../launchd/com.credsync.agent.plist");

/// Which service manager to install for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// systemd user unit.
    Linux,
    /// launchd LaunchAgent.
    MacOs,
}

impl Platform {
    /// The platform this build runs on, if credsync knows its service manager.
    pub fn current() -> Option<Platform> {
        if cfg!(target_os = "macos") {
            Some(Platform::MacOs)
        } else if cfg!(target_os = "linux") {
            Some(Platform::Linux)
        } else {
            None
        }
    }
}

/// Where and for whom to install.
#[derive(Debug, Clone)]
pub struct Target {
    pub platform: Platform,
    pub home: PathBuf,
    /// `$XDG_CONFIG_HOME` when set to an absolute path (Linux only).
    pub xdg_config_home: Option<PathBuf>,
    /// The uid whose launchd domain (`gui/<uid>`) gets the agent.
    pub uid: u32,
}

impl Target {
    /// This process's platform, home and uid.
    pub fn current(env: &Env) -> Result<Target, ServiceError> {
        let platform = Platform::current().ok_or(ServiceError::UnsupportedPlatform)?;
        let xdg_config_home = env
            .get("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute());
        // SAFETY: geteuid has no preconditions and cannot fail.
        let uid = unsafe { libc::geteuid() };
        Ok(Target {
            platform,
            home: env.home.clone(),
            xdg_config_home,
            uid,
        })
    }

    /// The file install writes.
    pub fn service_file(&self) -> PathBuf {
        match self.platform {
            Platform::Linux => self
                .xdg_config_home
                .clone()
                .unwrap_or_else(|| self.home.join(".config"))
                .join("systemd/user")
                .join(SYSTEMD_UNIT),
            Platform::MacOs => self
                .home
                .join("Library/LaunchAgents")
                .join(format!("{LAUNCHD_LABEL}.plist")),
        }
    }

    fn log_dir(&self) -> PathBuf {
        self.home.join("Library/Logs/credsync")
    }
}

/// What the service runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    /// The absolute path of the credsync binary.
    pub exe: PathBuf,
    /// `--config <path>` when a config file is in use.
    pub config: Option<PathBuf>,
    /// Directories outside `~/.aws` and the runtime directory that credsync writes (systemd's
    /// `ReadWritePaths`).
    pub extra_rw_paths: Vec<PathBuf>,
}

impl ServiceSpec {
    /// The running binary (canonicalised) and the config in use.
    pub fn from_config(cfg: &Config, env: &Env) -> Result<ServiceSpec, ServiceError> {
        let exe = std::env::current_exe()
            .and_then(|p| p.canonicalize())
            .map_err(|source| ServiceError::CurrentExe { source })?;
        let config = match &cfg.origin {
            Origin::File(p) => Some(absolute(p)),
            Origin::Default { .. } => None,
        };
        let runtime_dir = env.get("XDG_RUNTIME_DIR").map(PathBuf::from);
        Ok(ServiceSpec {
            exe,
            config,
            extra_rw_paths: extra_rw_paths(cfg, &env.home, runtime_dir),
        })
    }
}

fn absolute(p: &Path) -> PathBuf {
    p.canonicalize()
        .unwrap_or_else(|_| std::path::absolute(p).unwrap_or_else(|_| p.to_owned()))
}

/// The directories credsync writes that the unit's default `ReadWritePaths` (`~/.aws` and
/// the runtime directory) do not cover: the credentials file's directory, the SSO cache, the
/// container view and the socket's directory.
pub fn extra_rw_paths(cfg: &Config, home: &Path, runtime_dir: Option<PathBuf>) -> Vec<PathBuf> {
    let aws = home.join(".aws");
    let mut candidates: Vec<PathBuf> = Vec::new();
    candidates.extend(cfg.aws.credentials_file.parent().map(Path::to_owned));
    candidates.push(cfg.aws.sso_cache_dir.clone());
    candidates.extend(cfg.container.as_ref().map(|c| c.dir.clone()));
    candidates.extend(cfg.control.socket.parent().map(Path::to_owned));
    let mut out: Vec<PathBuf> = Vec::new();
    for p in candidates {
        let covered = p.starts_with(&aws) || runtime_dir.as_ref().is_some_and(|r| p.starts_with(r));
        if !covered && !p.as_os_str().is_empty() && !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// The systemd user unit for `exe [--config config] daemon`.
pub fn render_systemd_unit(
    exe: &Path,
    config: Option<&Path>,
    extra_rw_paths: &[PathBuf],
) -> String {
    let mut exec = systemd_word(&exe.to_string_lossy());
    if let Some(config) = config {
        exec.push_str(" --config ");
        exec.push_str(&systemd_arg(&config.to_string_lossy()));
    }
    exec.push_str(" daemon");
    let mut extra = String::new();
    for p in extra_rw_paths {
        // `-`: a directory that does not exist yet does not stop the service from starting.
        extra.push(' ');
        extra.push_str(&systemd_word(&format!("-{}", p.to_string_lossy())));
    }
    fill(
        SYSTEMD_TEMPLATE,
        &[("EXEC_START", &exec), ("EXTRA_READ_WRITE_PATHS", &extra)],
    )
}

/// The LaunchAgent plist for `exe [--config config] daemon`, logging under
/// `~/Library/Logs/credsync/`.
pub fn render_launchd_plist(exe: &Path, config: Option<&Path>, home: &Path) -> String {
    let mut args = vec![exe.to_string_lossy().into_owned()];
    if let Some(config) = config {
        args.push("--config".to_owned());
        args.push(config.to_string_lossy().into_owned());
    }
    args.push("daemon".to_owned());
    let args: Vec<String> = args
        .iter()
        .map(|a| format!("\t\t<string>{}</string>", xml_escape(a)))
        .collect();
    let log = home.join("Library/Logs/credsync/credsync.log");
    fill(
        LAUNCHD_TEMPLATE,
        &[
            ("LABEL", &xml_escape(LAUNCHD_LABEL)),
            ("PROGRAM_ARGUMENTS", &args.join("\n")),
            ("LOG_FILE", &xml_escape(&log.to_string_lossy())),
        ],
    )
}

/// The file install would write for `spec` on `target`.
pub fn render(spec: &ServiceSpec, target: &Target) -> String {
    match target.platform {
        Platform::Linux => {
            render_systemd_unit(&spec.exe, spec.config.as_deref(), &spec.extra_rw_paths)
        }
        Platform::MacOs => render_launchd_plist(&spec.exe, spec.config.as_deref(), &target.home),
    }
}

/// One path in a unit file (the executable, a `ReadWritePaths` entry): `%` doubled (no
/// specifier expansion), double-quoted with C escapes when it has spaces, quotes or
/// backslashes.
pub fn systemd_word(s: &str) -> String {
    quote_systemd(&s.replace('%', "%%"))
}

/// One argument after the executable on an `Exec*=` line: like [`systemd_word`], and `$`
/// doubled too (systemd expands `$VAR` in arguments, not in the executable's path).
pub fn systemd_arg(s: &str) -> String {
    quote_systemd(&s.replace('%', "%%").replace('$', "$$"))
}

fn quote_systemd(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@,=%$".contains(c));
    if plain {
        return s.to_owned();
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether systemd can run a binary at `exe`: it refuses executable paths with quotes,
/// backslashes or control characters ("Executable name contains special characters").
pub fn check_systemd_exe(exe: &Path) -> Result<(), ServiceError> {
    let text = exe.to_string_lossy();
    if text.chars().any(|c| c.is_control() || "\"'\\".contains(c)) {
        return Err(ServiceError::UnsafeExePath {
            path: exe.to_owned(),
        });
    }
    Ok(())
}

/// Text safe inside an XML element or attribute.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Replaces each `@KEY@` in one pass, so substituted text is never substituted again.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
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

/// Whether install and uninstall call the service manager (`systemctl` / `launchctl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manager {
    /// Run the commands.
    Run,
    /// Only write or remove the file; report the commands as skipped (tests).
    Skip,
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
}

/// What install or uninstall did, in order, for the user to read.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub path: PathBuf,
    pub file: FileOutcome,
    /// Each command run (or skipped) and its outcome.
    pub steps: Vec<String>,
    /// Set when the service was written but not started (or not stopped): why, and what to
    /// run instead.
    pub hint: Option<String>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.file {
            FileOutcome::Created => "written",
            FileOutcome::Updated => "updated",
            FileOutcome::Unchanged => "unchanged",
            FileOutcome::Removed => "removed",
            FileOutcome::Absent => "not installed, nothing to remove",
        };
        writeln!(f, "{}: {what}", self.path.display())?;
        for step in &self.steps {
            writeln!(f, "{step}")?;
        }
        if let Some(hint) = &self.hint {
            writeln!(f, "{hint}")?;
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
    #[error("cannot remove {path}: {source}")]
    Remove { path: PathBuf, source: io::Error },
    #[error("`{command}` failed: {detail}\n{done}")]
    Command {
        command: String,
        detail: String,
        done: String,
    },
}

/// Writes the service file for `spec` (if it differs) and, when `start`, enables and starts
/// the service. Safe to re-run: an identical file is reported unchanged. When the service
/// manager cannot be reached the file stays written and the report says what to run.
pub fn install(
    spec: &ServiceSpec,
    target: &Target,
    start: bool,
    manager: Manager,
) -> Result<Report, ServiceError> {
    if target.platform == Platform::Linux {
        check_systemd_exe(&spec.exe)?;
    }
    let path = target.service_file();
    let text = render(spec, target);
    let file = write_if_changed(&path, &text)?;
    if target.platform == Platform::MacOs {
        let logs = target.log_dir();
        std::fs::create_dir_all(&logs).map_err(|source| ServiceError::Write {
            path: logs.clone(),
            source,
        })?;
    }
    let mut report = Report {
        path: path.clone(),
        file,
        steps: Vec::new(),
        hint: None,
    };
    if !start {
        report.hint = Some(format!(
            "written, not started (--no-start); to start it: {}",
            start_hint(target)
        ));
        return Ok(report);
    }
    match target.platform {
        Platform::Linux => {
            if !systemctl(&mut report, manager, &["daemon-reload"])? {
                return Ok(report);
            }
            if file == FileOutcome::Updated {
                // A running daemon keeps its old ExecStart until restarted.
                systemctl(&mut report, manager, &["enable", SYSTEMD_UNIT])?;
                systemctl(&mut report, manager, &["restart", SYSTEMD_UNIT])?;
            } else {
                systemctl(&mut report, manager, &["enable", "--now", SYSTEMD_UNIT])?;
            }
        }
        Platform::MacOs => {
            let domain = format!("gui/{}", target.uid);
            let service = format!("{domain}/{LAUNCHD_LABEL}");
            let plist = path.to_string_lossy().into_owned();
            let loaded = manager == Manager::Run
                && file == FileOutcome::Unchanged
                && run(&["launchctl", "print", &service]).is_ok();
            if loaded {
                report.steps.push(format!("{service} is already loaded"));
            } else {
                // Unload an older definition first; failing because none is loaded is fine.
                step(
                    &mut report,
                    manager,
                    &["launchctl", "bootout", &service],
                    true,
                )?;
                step(
                    &mut report,
                    manager,
                    &["launchctl", "bootstrap", &domain, &plist],
                    false,
                )?;
            }
        }
    }
    Ok(report)
}

/// Stops and disables the service, then removes its file.
pub fn uninstall(target: &Target, manager: Manager) -> Result<Report, ServiceError> {
    let path = target.service_file();
    let exists = std::fs::symlink_metadata(&path).is_ok();
    let mut report = Report {
        path: path.clone(),
        file: if exists {
            FileOutcome::Removed
        } else {
            FileOutcome::Absent
        },
        steps: Vec::new(),
        hint: None,
    };
    if !exists {
        return Ok(report);
    }
    match target.platform {
        Platform::Linux => {
            if systemctl(&mut report, manager, &["disable", "--now", SYSTEMD_UNIT])? {
                remove(&path)?;
                systemctl(&mut report, manager, &["daemon-reload"])?;
            } else {
                remove(&path)?;
            }
        }
        Platform::MacOs => {
            let service = format!("gui/{}/{LAUNCHD_LABEL}", target.uid);
            step(
                &mut report,
                manager,
                &["launchctl", "bootout", &service],
                true,
            )?;
            remove(&path)?;
        }
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
        Platform::Linux => start_hint_linux(),
        Platform::MacOs => format!(
            "`launchctl bootstrap gui/{} {}`, or `credsync daemon` in the foreground",
            target.uid,
            target.service_file().display()
        ),
    }
}

/// Runs `systemctl --user ARGS`. `Ok(false)` when systemctl itself is unusable (not installed,
/// no user bus): the report then says so and what to run instead.
fn systemctl(report: &mut Report, manager: Manager, args: &[&str]) -> Result<bool, ServiceError> {
    let mut argv = vec!["systemctl", "--user"];
    argv.extend_from_slice(args);
    let shown = argv.join(" ");
    if manager == Manager::Skip {
        report.steps.push(format!("skipped: {shown}"));
        return Ok(true);
    }
    let why = match run(&argv) {
        Ok(()) => {
            report.steps.push(format!("ran: {shown}"));
            return Ok(true);
        }
        Err(RunError::NotFound) => "systemctl is not installed".to_owned(),
        Err(RunError::NoUserManager(detail)) => {
            format!("it cannot reach the user manager: {detail}")
        }
        Err(e) => {
            return Err(ServiceError::Command {
                command: shown,
                detail: e.to_string(),
                done: format!("{report}").trim_end().to_owned(),
            });
        }
    };
    let instead = if report.file == FileOutcome::Removed {
        format!(
            "the file is removed; if a daemon still runs, stop it with \
             `systemctl --user disable --now {SYSTEMD_UNIT}` in a session with a user manager, \
             or end `credsync daemon` yourself"
        )
    } else {
        format!(
            "written, not started; to start it, run {}",
            start_hint_linux()
        )
    };
    report.hint = Some(format!(
        "`systemctl --user` is not available ({why}).\n{instead}"
    ));
    Ok(false)
}

fn start_hint_linux() -> String {
    format!(
        "`systemctl --user daemon-reload && systemctl --user enable --now {SYSTEMD_UNIT}` \
         in a session with a systemd user manager, or `credsync daemon` in the foreground"
    )
}

/// Runs one service-manager command; `tolerate` failures that only mean "nothing to do".
fn step(
    report: &mut Report,
    manager: Manager,
    argv: &[&str],
    tolerate: bool,
) -> Result<(), ServiceError> {
    let shown = argv.join(" ");
    if manager == Manager::Skip {
        report.steps.push(format!("skipped: {shown}"));
        return Ok(());
    }
    match run(argv) {
        Ok(()) => report.steps.push(format!("ran: {shown}")),
        Err(e) if tolerate => report
            .steps
            .push(format!("ran: {shown} ({e}; nothing to stop)")),
        Err(e) => {
            return Err(ServiceError::Command {
                command: shown,
                detail: e.to_string(),
                done: format!("{report}").trim_end().to_owned(),
            });
        }
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    NoUserManager(String),
    #[error("{0}")]
    Failed(String),
}

fn run(argv: &[&str]) -> Result<(), RunError> {
    let (program, args) = argv.split_first().ok_or(RunError::NotFound)?;
    let out = match Command::new(program).args(args).output() {
        Ok(out) => out,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(RunError::NotFound),
        Err(e) => return Err(RunError::Failed(e.to_string())),
    };
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    let detail = if stderr.is_empty() {
        out.status.to_string()
    } else {
        stderr
    };
    let no_manager = [
        "Failed to connect to bus",
        "No medium found",
        "XDG_RUNTIME_DIR",
        "not been booted with systemd",
        "Host is down",
    ];
    if *program == "systemctl" && no_manager.iter().any(|m| detail.contains(m)) {
        Err(RunError::NoUserManager(detail))
    } else {
        Err(RunError::Failed(detail))
    }
}

/// Writes `text` to `path` (0644, through a temp file and a rename) unless it already holds
/// exactly that.
fn write_if_changed(path: &Path, text: &str) -> Result<FileOutcome, ServiceError> {
    let err = |source| ServiceError::Write {
        path: path.to_owned(),
        source,
    };
    let outcome = match std::fs::read(path) {
        Ok(old) if old == text.as_bytes() => return Ok(FileOutcome::Unchanged),
        Ok(_) => FileOutcome::Updated,
        Err(e) if e.kind() == io::ErrorKind::NotFound => FileOutcome::Created,
        Err(e) => return Err(err(e)),
    };
    let dir = path
        .parent()
        .ok_or_else(|| err(io::ErrorKind::InvalidInput.into()))?;
    std::fs::create_dir_all(dir).map_err(err)?;
    let tmp = dir.join(format!(
        ".{}.credsync-tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e));
    }
    Ok(outcome)
}

/// Tells systemd the daemon is ready (`READY=1`). A no-op when `NOTIFY_SOCKET` is unset (not
/// run by systemd, or `Type=` is not `notify`).
pub fn notify_ready() {
    notify(&[sd_notify::NotifyState::Ready]);
}

/// Tells systemd the daemon is stopping (`STOPPING=1`).
pub fn notify_stopping() {
    notify(&[sd_notify::NotifyState::Stopping]);
}

/// Tells systemd the daemon is reloading (`RELOADING=1`); follow with [`notify_ready`].
pub fn notify_reloading() {
    notify(&[sd_notify::NotifyState::Reloading]);
}

/// A free-form status line shown by `systemctl --user status credsync`.
pub fn notify_status(status: &str) {
    notify(&[sd_notify::NotifyState::Status(status)]);
}

fn notify(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!("cannot notify systemd through NOTIFY_SOCKET: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_words_are_quoted_only_when_needed() {
        assert_eq!(systemd_word("/usr/bin/credsync"), "/usr/bin/credsync");
        assert_eq!(
            systemd_word("/opt/my tools/credsync"),
            "\"/opt/my tools/credsync\""
        );
        assert_eq!(systemd_word("/a/100%/b"), "/a/100%%/b");
        assert_eq!(systemd_word("/a/$HOME"), "/a/$HOME");
        assert_eq!(systemd_arg("/a/$HOME"), "/a/$$HOME");
        assert_eq!(systemd_arg(r#"/a "q" \b"#), r#""/a \"q\" \\b""#);
        assert_eq!(systemd_word("/a;b"), "\"/a;b\"");
        assert_eq!(systemd_word(""), "\"\"");
    }

    #[test]
    fn executables_systemd_refuses_are_caught() {
        assert!(check_systemd_exe(Path::new("/opt/my tools & 100%/credsync")).is_ok());
        for bad in [
            "/opt/\"x\"/credsync",
            "/opt/it's/credsync",
            "/opt/a\\b/credsync",
            "/a\nb",
        ] {
            assert!(check_systemd_exe(Path::new(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn unit_runs_the_daemon_with_the_config() {
        let unit = render_systemd_unit(
            Path::new("/opt/cred sync/credsync"),
            Some(Path::new("/home/u/.config/credsync/100% mine.toml")),
            &[PathBuf::from("/srv/aws creds")],
        );
        assert!(
            unit.contains(
                "\nExecStart=\"/opt/cred sync/credsync\" --config \
                 \"/home/u/.config/credsync/100%% mine.toml\" daemon\n"
            ),
            "{unit}"
        );
        assert!(
            unit.contains("\nReadWritePaths=-%h/.aws -%t \"-/srv/aws creds\"\n"),
            "{unit}"
        );
        for line in [
            "Type=notify",
            "Restart=on-failure",
            "RestartSec=5",
            "WantedBy=default.target",
        ] {
            assert!(unit.lines().any(|l| l == line), "{line} missing");
        }
        assert!(!unit.contains("@EXEC_START@") && !unit.contains("@EXTRA"));
    }

    #[test]
    fn unit_without_config_or_extra_paths() {
        let unit = render_systemd_unit(Path::new("/usr/bin/credsync"), None, &[]);
        assert!(
            unit.contains("\nExecStart=/usr/bin/credsync daemon\n"),
            "{unit}"
        );
        assert!(unit.contains("\nReadWritePaths=-%h/.aws -%t\n"), "{unit}");
    }

    #[test]
    fn plist_escapes_what_it_substitutes() {
        let plist = render_launchd_plist(
            Path::new("/Users/a&b/<bin>/credsync"),
            Some(Path::new("/Users/a&b/c.toml")),
            Path::new("/Users/a&b"),
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
    }

    #[test]
    fn fill_substitutes_once() {
        assert_eq!(
            fill("a @X@ b @Y@ @Z@ me@host", &[("X", "@Y@"), ("Y", "y")]),
            "a @Y@ b y @Z@ me@host"
        );
    }

    #[test]
    fn extra_paths_skip_what_the_unit_covers() {
        let env = Env {
            home: PathBuf::from("/home/u"),
            vars: Default::default(),
        };
        let mut cfg = crate::config::defaults(&env);
        cfg.control.socket = PathBuf::from("/run/user/1000/credsync.sock");
        assert_eq!(
            extra_rw_paths(&cfg, &env.home, Some("/run/user/1000".into())),
            Vec::<PathBuf>::new()
        );
        cfg.aws.credentials_file = PathBuf::from("/srv/shared/credentials");
        cfg.control.socket = PathBuf::from("/home/u/.cache/credsync/credsync.sock");
        assert_eq!(
            extra_rw_paths(&cfg, &env.home, Some("/run/user/1000".into())),
            vec![
                PathBuf::from("/srv/shared"),
                PathBuf::from("/home/u/.cache/credsync")
            ]
        );
    }
}
