//! Installing credsync as a user service: a systemd user unit on Linux, a LaunchAgent on
//! macOS. The templates live in `systemd/` and `launchd/`; rendering them is pure (paths in,
//! text out, escaped for the format), installing is a thin edge that writes the file and asks
//! `systemctl --user` / `launchctl` to start it (through a [`Runner`]). Also the `sd_notify`
//! calls the daemon makes.
//!
//! On Linux, install waits (bounded) until the unit is active, which for `Type=notify` means
//! the daemon sent READY=1. When the unit failed at a sandboxing step ([`is_sandbox_failure`],
//! a pure decision over what systemd reports), the unit is rewritten without its sandbox and
//! started again; any other failure is an error carrying the unit's result and status. On
//! macOS, [`launchd`] loads the agent the way launchd needs and waits until it runs.
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

use crate::config::{self, Config, Env, Origin};
use crate::platform::Wsl;
use crate::process::{RunError, Runner};
use crate::write::{self, WriteError, WriteMode, WriteOptions};

mod launchd;

pub use crate::platform::Platform;
pub(crate) use launchd::LAUNCHD_LABEL;
pub use launchd::{
    AGENT_PATH, DAEMON_FLAG, brew_plist, log_file, render_launchd_plist, stable_exe,
};

/// The systemd unit's name.
pub(crate) const SYSTEMD_UNIT: &str = "credsync.service";

const SYSTEMD_TEMPLATE: &str = include_str!("../systemd/credsync.service");
const SYSTEMD_SANDBOX: &str = include_str!("../systemd/sandbox.conf");
const SYSTEMD_SANDBOX_NAMESPACES: &str = include_str!("../systemd/sandbox-namespaces.conf");

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

/// Where the Debian package installs the systemd user unit, and the binary that unit runs.
pub const PACKAGED_UNIT: &str = "/usr/lib/systemd/user/credsync.service";
pub const PACKAGED_EXE: &str = "/usr/bin/credsync";

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
    /// The environment that decides what credsync manages, carried from the installing shell
    /// into the service (see [`carried_env`]), in order.
    pub env: Vec<(String, String)>,
    /// The sandbox the systemd unit asks for.
    pub sandbox: Sandbox,
}

/// How much of the systemd sandbox the unit asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sandbox {
    /// Every directive a user manager can apply, the file-system view included.
    Full,
    /// Without the file-system view (its user namespace maps only your uid, so POSIX ACL
    /// entries for another uid, as `[container] uid` needs, cannot be written): the reason.
    NoNamespaces(String),
    /// None: the sandbox failed to start on this machine; the reason (e.g.
    /// `status=226/NAMESPACE`).
    Off(String),
}

/// The variables that decide what credsync manages and where it talks, besides
/// `AWS_PROFILE` (see [`carried_env`]). Every `AWS_ENDPOINT_URL*` variable counts too.
pub(crate) const CARRIED_VARS: &[&str] = &[
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "CREDSYNC_LOG",
];

/// The log level the service uses when the installing shell set no `CREDSYNC_LOG`.
const DEFAULT_SERVICE_LOG: &str = "info";

/// The environment `credsync sync` in this shell would act on, for the service to act the
/// same: `AWS_CONFIG_FILE`, `AWS_SHARED_CREDENTIALS_FILE`, every `AWS_ENDPOINT_URL*`,
/// `CREDSYNC_LOG` when set (even empty: the daemon reads them as the shell's credsync does),
/// and `AWS_PROFILE` when it decides the managed profile (no config file, or one without
/// `[[profiles]]`). Sorted by name.
pub(crate) fn carried_env(cfg: &Config, env: &Env) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = env
        .vars
        .iter()
        .filter(|(k, _)| CARRIED_VARS.contains(&k.as_str()) || k.starts_with("AWS_ENDPOINT_URL"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(profile) = env.vars.get("AWS_PROFILE")
        && profile_decided_by_env(cfg, env)
    {
        out.push(("AWS_PROFILE".to_owned(), profile.clone()));
    }
    out.sort();
    out
}

/// Whether `AWS_PROFILE` changes the profiles `cfg` manages: the configuration loaded again
/// without it manages others.
fn profile_decided_by_env(cfg: &Config, env: &Env) -> bool {
    let mut without = env.clone();
    without.vars.remove("AWS_PROFILE");
    let again = match &cfg.origin {
        Origin::File(path) => config::load(Some(path), &without).map(|c| c.profiles),
        Origin::Default { .. } => Ok(config::defaults(&without).profiles),
    };
    again.map_or(true, |profiles| profiles != cfg.profiles)
}

impl ServiceSpec {
    /// What a package's unit runs: `exe daemon`, the default config, no environment of an
    /// installing shell, and the sandbox without the file-system view: that view needs a user
    /// namespace, which some kernels refuse (the unit then fails with status=217/USER or
    /// 226/NAMESPACE), and where `service install` then rewrites its own unit without it,
    /// nothing can rewrite a packaged one.
    pub fn packaged(exe: PathBuf) -> ServiceSpec {
        ServiceSpec {
            exe,
            config: None,
            extra_rw_paths: Vec::new(),
            env: Vec::new(),
            sandbox: Sandbox::NoNamespaces(
                "a packaged unit must start on every machine, and this view needs a user \
                 namespace, which some machines refuse"
                    .to_owned(),
            ),
        }
    }

    /// The running binary ([`running_exe`]) and the config in use.
    pub fn from_config(cfg: &Config, env: &Env) -> Result<ServiceSpec, ServiceError> {
        Ok(ServiceSpec::for_exe(&running_exe()?, cfg, env))
    }

    /// The binary at `exe` (canonical), named by the path its package manager keeps
    /// ([`stable_exe`]), and the config in use.
    pub fn for_exe(exe: &Path, cfg: &Config, env: &Env) -> ServiceSpec {
        let config = match &cfg.origin {
            Origin::File(p) => Some(absolute(p)),
            Origin::Default { .. } => None,
        };
        let runtime_dir = env.xdg_dir("XDG_RUNTIME_DIR");
        ServiceSpec {
            exe: stable_exe(exe, &|p| p.canonicalize().ok()),
            config,
            extra_rw_paths: extra_rw_paths(cfg, &env.home, runtime_dir),
            env: carried_env(cfg, env),
            sandbox: sandbox_for(cfg),
        }
    }
}

/// The path a service names for the running binary: canonicalised, then [`stable_exe`] (a
/// Homebrew keg's path becomes the link Homebrew keeps across upgrades).
pub fn running_exe() -> Result<PathBuf, ServiceError> {
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|source| ServiceError::CurrentExe { source })?;
    Ok(stable_exe(&exe, &|p| p.canonicalize().ok()))
}

/// The sandbox a configuration allows: no file-system view when `[container] uid` asks for
/// ACL entries naming another uid.
pub(crate) fn sandbox_for(cfg: &Config) -> Sandbox {
    match cfg.container.as_ref().and_then(|c| c.uid) {
        Some(uid) => Sandbox::NoNamespaces(format!(
            "[container] uid = {uid} needs POSIX ACL entries for uid {uid}, which a user \
             namespace mapping only your uid cannot write"
        )),
        None => Sandbox::Full,
    }
}

fn absolute(p: &Path) -> PathBuf {
    p.canonicalize()
        .unwrap_or_else(|_| std::path::absolute(p).unwrap_or_else(|_| p.to_owned()))
}

/// The directories credsync writes that the unit's default `ReadWritePaths` (`~/.aws` and
/// the runtime directory) do not cover: the credentials file's directory, the SSO cache, the
/// container view and the socket's directory.
pub(crate) fn extra_rw_paths(
    cfg: &Config,
    home: &Path,
    runtime_dir: Option<PathBuf>,
) -> Vec<PathBuf> {
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

/// The systemd user unit for `spec`: `exe [--config config] daemon`, its environment and
/// sandbox.
pub fn render_systemd_unit(spec: &ServiceSpec) -> String {
    let mut exec = systemd_word(&spec.exe.to_string_lossy());
    if let Some(config) = &spec.config {
        exec.push_str(" --config ");
        exec.push_str(&systemd_arg(&config.to_string_lossy()));
    }
    exec.push_str(" daemon");
    let mut extra = String::new();
    for p in &spec.extra_rw_paths {
        // `-`: a directory that does not exist yet does not stop the service from starting.
        extra.push(' ');
        extra.push_str(&systemd_word(&format!("-{}", p.to_string_lossy())));
    }
    let environment: Vec<String> = service_env(&spec.env)
        .iter()
        .map(|(k, v)| format!("Environment={}", systemd_word(&format!("{k}={v}"))))
        .collect();
    let sandbox = match &spec.sandbox {
        Sandbox::Full => format!(
            "{SYSTEMD_SANDBOX}{}",
            fill(
                SYSTEMD_SANDBOX_NAMESPACES,
                &[("EXTRA_READ_WRITE_PATHS", &extra)]
            )
        ),
        Sandbox::NoNamespaces(why) => format!(
            "{SYSTEMD_SANDBOX}# No file-system view (ProtectSystem=, ProtectHome=, PrivateTmp=): \
             {}.\n",
            one_line(why)
        ),
        Sandbox::Off(why) => format!("\n{NO_SANDBOX}{}{NO_SANDBOX_END}\n", one_line(why)),
    };
    fill(
        SYSTEMD_TEMPLATE,
        &[
            ("EXEC_START", &exec),
            ("ENVIRONMENT", &environment.join("\n")),
            ("SANDBOX", &sandbox),
        ],
    )
}

/// The service's environment: the carried variables, and `CREDSYNC_LOG=info` unless carried.
pub(crate) fn service_env(carried: &[(String, String)]) -> Vec<(String, String)> {
    let mut out = carried.to_vec();
    if !out.iter().any(|(k, _)| k == "CREDSYNC_LOG") {
        out.push(("CREDSYNC_LOG".to_owned(), DEFAULT_SERVICE_LOG.to_owned()));
    }
    out.sort();
    out
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The unit a package installs for `exe`: the same template as `service install`, with a
/// header that says how a user enables and changes it.
pub fn render_packaged_unit(exe: &Path) -> String {
    let unit = render_systemd_unit(&ServiceSpec::packaged(exe.to_owned()));
    let body_at = unit
        .split_inclusive('\n')
        .take_while(|l| l.starts_with('#'))
        .map(str::len)
        .sum::<usize>();
    format!(
        "# credsync: keeps AWS credentials fresh on disk.\n\
         # Installed by the credsync package. Each user enables it with\n\
         # `systemctl --user enable --now credsync`, and changes it with a drop-in\n\
         # (`systemctl --user edit credsync`), not by editing this file.\n{}",
        &unit[body_at..]
    )
}

/// The drop-in lines the packaged unit needs to run what `spec` asks for (empty: it runs
/// exactly that), or why it cannot: it runs another binary. (It has no file-system view, so
/// the paths credsync writes need no `ReadWritePaths=`.)
pub fn packaged_shortfall(
    spec: &ServiceSpec,
    default_config: &Path,
) -> Result<Vec<String>, String> {
    let packaged = Path::new(PACKAGED_EXE);
    let same_exe = spec.exe == packaged || packaged.canonicalize().is_ok_and(|p| p == spec.exe);
    if !same_exe {
        return Err(format!(
            "it runs {PACKAGED_EXE}, and this credsync is {}",
            spec.exe.display()
        ));
    }
    let mut lines = Vec::new();
    if let Some(config) = spec
        .config
        .as_deref()
        .filter(|c| *c != absolute(default_config))
    {
        lines.push("ExecStart=".to_owned());
        lines.push(format!(
            "ExecStart={PACKAGED_EXE} --config {} daemon",
            systemd_arg(&config.to_string_lossy())
        ));
    }
    for (k, v) in &spec.env {
        lines.push(format!("Environment={}", systemd_word(&format!("{k}={v}"))));
    }
    Ok(lines)
}

/// The file install would write for `spec` on `target`.
pub fn render(spec: &ServiceSpec, target: &Target) -> String {
    match target.platform {
        Platform::Linux => render_systemd_unit(spec),
        Platform::MacOs => render_launchd_plist(spec, &target.home),
    }
}

/// One path in a unit file (the executable, a `ReadWritePaths` entry): `%` doubled (no
/// specifier expansion), double-quoted with C escapes when it has spaces, quotes or
/// backslashes.
pub(crate) fn systemd_word(s: &str) -> String {
    quote_systemd(&s.replace('%', "%%"))
}

/// One argument after the executable on an `Exec*=` line: like [`systemd_word`], and `$`
/// doubled too (systemd expands `$VAR` in arguments, not in the executable's path).
pub(crate) fn systemd_arg(s: &str) -> String {
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

/// The first word of an `Exec*=` value as [`systemd_word`] wrote it: double quotes with C
/// escapes undone, `%%` back to `%`. `None` for an empty value.
fn unquote_systemd_word(value: &str) -> Option<String> {
    let word = match value.strip_prefix('"') {
        Some(rest) => {
            let mut out = String::new();
            let mut chars = rest.chars();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => match chars.next()? {
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        'x' => {
                            let hex: String = chars.by_ref().take(2).collect();
                            out.push(char::from(u8::from_str_radix(&hex, 16).ok()?));
                        }
                        c => out.push(c),
                    },
                    c => out.push(c),
                }
            }
            out
        }
        None => value.split_whitespace().next()?.to_owned(),
    };
    Some(word.replace("%%", "%"))
}

/// The executable an installed service file runs, read back as [`render`] writes it: the
/// unit's first `ExecStart=` (its first word, after any `@-:+!` prefixes), or the plist's first
/// `ProgramArguments` string. `None` when the file names none.
pub(crate) fn installed_exe(platform: Platform, text: &str) -> Option<PathBuf> {
    match platform {
        Platform::Linux => {
            let value = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("ExecStart="))?
                .trim()
                .trim_start_matches(['@', '-', ':', '+', '!']);
            unquote_systemd_word(value).map(PathBuf::from)
        }
        Platform::MacOs => launchd::plist_program(text),
    }
}

/// Whether systemd can run a binary at `exe`: it refuses executable paths with quotes,
/// backslashes or control characters ("Executable name contains special characters").
pub(crate) fn check_systemd_exe(exe: &Path) -> Result<(), ServiceError> {
    let text = exe.to_string_lossy();
    if text.chars().any(|c| c.is_control() || "\"'\\".contains(c)) {
        return Err(ServiceError::UnsafeExePath {
            path: exe.to_owned(),
        });
    }
    Ok(())
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

/// Install with the package's unit (and no unit of the user's own): enables and starts it when
/// it runs what `spec` asks for; otherwise says what to add, or which binary to use.
fn install_packaged(
    spec: &ServiceSpec,
    target: &Target,
    unit: &Path,
    start: bool,
    runner: &dyn Runner,
) -> Result<InstallReport, ServiceError> {
    let default_config = target.config_home().join("credsync/config.toml");
    let refused = |why: String, fix: String| ServiceError::PackagedUnit {
        unit: unit.to_owned(),
        why,
        fix,
    };
    let lines = packaged_shortfall(spec, &default_config).map_err(|why| {
        refused(
            why,
            format!(
                "use the packaged binary (`{PACKAGED_EXE} service install`), or remove the \
                 package (`sudo apt remove credsync`) and run this install again"
            ),
        )
    })?;
    if !lines.is_empty() {
        return Err(refused(
            "this setup needs settings that unit does not have".to_owned(),
            format!(
                "add them with `systemctl --user edit {SYSTEMD_UNIT}`:\n\n[Service]\n{}\n\n\
                 then run `systemctl --user enable --now {SYSTEMD_UNIT}`",
                lines.join("\n")
            ),
        ));
    }
    let mut report = InstallReport {
        path: unit.to_owned(),
        file: FileOutcome::Packaged,
        steps: Vec::new(),
        hint: None,
        notes: Vec::new(),
    };
    if !start {
        report.hint = Some(format!(
            "not started (--no-start); to start it: `systemctl --user enable --now {SYSTEMD_UNIT}`"
        ));
        return Ok(report);
    }
    if !systemctl(runner, &mut report, &["daemon-reload"])? {
        return Ok(report);
    }
    systemctl(runner, &mut report, &["enable", SYSTEMD_UNIT])?;
    let state = start_and_wait(runner, &mut report, "start")?;
    match start_verdict(&state) {
        Verdict::Ready => report.steps.push(ready_line(&state)),
        Verdict::SandboxFailed(why) => {
            return Err(not_started(
                runner,
                &report,
                format!(
                    "{why}; the package's unit cannot apply its sandbox on this machine: \
                     override the directives that fail with `systemctl --user edit \
                     {SYSTEMD_UNIT}` (e.g. MemoryDenyWriteExecute=no), or remove the package \
                     and let `credsync service install` write a unit that falls back by itself"
                ),
            ));
        }
        Verdict::Failed(why) => return Err(not_started(runner, &report, why)),
    }
    Ok(report)
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
        check_systemd_exe(&spec.exe)?;
    }
    let path = target.service_file();
    if let Some(unit) = &target.packaged_unit
        && std::fs::symlink_metadata(&path).is_err()
    {
        return install_packaged(spec, target, unit, start, runner);
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
        Platform::Linux => start_systemd(spec, target, file, runner, &mut report)?,
        Platform::MacOs => launchd::start(target, file, runner, &mut report)?,
    }
    Ok(report)
}

/// Reloads systemd, enables the unit and starts it (restarts it when `file` was updated), and
/// waits until it is ready; a sandbox that fails on this machine is dropped and the unit
/// started again ([`is_sandbox_failure`]).
fn start_systemd(
    spec: &ServiceSpec,
    target: &Target,
    file: FileOutcome,
    runner: &dyn Runner,
    report: &mut InstallReport,
) -> Result<(), ServiceError> {
    if !systemctl(runner, report, &["daemon-reload"])? {
        return Ok(());
    }
    systemctl(runner, report, &["enable", SYSTEMD_UNIT])?;
    // A running daemon keeps its old unit until restarted; an unchanged one that runs is left
    // alone.
    let verb = if file == FileOutcome::Updated {
        "restart"
    } else {
        "start"
    };
    let state = start_and_wait(runner, report, verb)?;
    match start_verdict(&state) {
        Verdict::Ready => report.steps.push(ready_line(&state)),
        Verdict::SandboxFailed(why) if !matches!(spec.sandbox, Sandbox::Off(_)) => {
            let bare = ServiceSpec {
                sandbox: Sandbox::Off(why.clone()),
                ..spec.clone()
            };
            write_if_changed(&report.path, &render(&bare, target))?;
            report.steps.push(format!(
                "the sandbox failed to start on this machine ({why}): {SYSTEMD_UNIT} is \
                 rewritten without it and started again"
            ));
            if userns_restricted(Path::new(APPARMOR_USERNS_SYSCTL)) {
                report
                    .steps
                    .push(format!("why: {USERNS_RESTRICTED}; {USERNS_FIX}"));
            }
            systemctl(runner, report, &["daemon-reload"])?;
            // Clears the failed state (and the restart counter) before starting again.
            let _ = runner.run(
                &words(&["systemctl", "--user", "reset-failed", SYSTEMD_UNIT]),
                COMMAND_TIMEOUT,
            );
            let state = start_and_wait(runner, report, "restart")?;
            match start_verdict(&state) {
                Verdict::Ready => report.steps.push(ready_line(&state)),
                Verdict::SandboxFailed(why) | Verdict::Failed(why) => {
                    return Err(not_started(runner, report, why));
                }
            }
        }
        Verdict::SandboxFailed(why) | Verdict::Failed(why) => {
            return Err(not_started(runner, report, why));
        }
    }
    Ok(())
}

/// How long install waits for the unit to become active and ready.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(10);

/// What `systemctl --user show` says about a unit, as far as install judges a start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct UnitState {
    /// `ActiveState`: active, activating, failed, inactive, ...
    pub(crate) active_state: String,
    /// `SubState`: running, start, auto-restart, dead, ...
    pub(crate) sub_state: String,
    /// `Result`: success, exit-code, signal, core-dump, timeout, ...
    pub(crate) result: String,
    /// `ExecMainCode`: how the main process ended (`CLD_EXITED` = 1, `CLD_KILLED` = 2,
    /// `CLD_DUMPED` = 3), 0 while it runs.
    pub(crate) exec_main_code: i32,
    /// `ExecMainStatus`: the exit status, or the signal number.
    pub(crate) exec_main_status: i32,
    pub(crate) main_pid: u32,
}

/// `CLD_EXITED`: the main process exited (rather than was killed by a signal).
pub(crate) const CLD_EXITED: i32 = 1;

/// The exit statuses with which systemd reports that it could not apply a sandboxing
/// directive before running the program (systemd's `EXIT_*` codes; credsync itself exits
/// with 0-3 only).
pub(crate) const SANDBOX_EXIT_STATUSES: &[(i32, &str)] = &[
    (217, "USER"),
    (218, "CAPABILITIES"),
    (226, "NAMESPACE"),
    (227, "NO_NEW_PRIVILEGES"),
    (228, "SECCOMP"),
    (230, "PERSONALITY"),
    (232, "ADDRESS_FAMILIES"),
];

/// Whether a unit that ended with `result`, `ExecMainCode` `code` and `ExecMainStatus`
/// `status` failed at a sandboxing step, so that the same unit without its sandbox may run:
/// it exited (not a signal, a timeout or a protocol error) with one of
/// [`SANDBOX_EXIT_STATUSES`].
pub(crate) fn is_sandbox_failure(result: &str, code: i32, status: i32) -> bool {
    result == "exit-code"
        && code == CLD_EXITED
        && SANDBOX_EXIT_STATUSES.iter().any(|(s, _)| *s == status)
}

/// How systemd shows an ending: `status=226/NAMESPACE`, `status=1`, `signal=9`.
pub(crate) fn describe_exit(code: i32, status: i32) -> String {
    match code {
        CLD_EXITED => match SANDBOX_EXIT_STATUSES.iter().find(|(s, _)| *s == status) {
            Some((s, name)) => format!("status={s}/{name}"),
            None => format!("status={status}"),
        },
        2 | 3 => format!("signal={status}"),
        _ => "still running".to_owned(),
    }
}

/// What a start came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Active: for `Type=notify`, the daemon sent READY=1.
    Ready,
    /// Failed at a sandboxing step: why, in systemd's words (`status=226/NAMESPACE`).
    SandboxFailed(String),
    /// Anything else: not active, and why.
    Failed(String),
}

/// Judges the state a start left the unit in (read once the start job ended or timed out).
pub(crate) fn start_verdict(s: &UnitState) -> Verdict {
    if s.active_state == "active" {
        return Verdict::Ready;
    }
    let why = format!(
        "{} ({}), result {}, main process {}",
        s.active_state,
        s.sub_state,
        s.result,
        describe_exit(s.exec_main_code, s.exec_main_status)
    );
    if is_sandbox_failure(&s.result, s.exec_main_code, s.exec_main_status) {
        Verdict::SandboxFailed(describe_exit(s.exec_main_code, s.exec_main_status))
    } else if s.result == "success" && s.active_state == "activating" {
        Verdict::Failed(format!(
            "not ready within {}s: {why}",
            START_TIMEOUT.as_secs()
        ))
    } else {
        Verdict::Failed(why)
    }
}

/// Parses `systemctl show` output (`Key=value` lines).
pub(crate) fn parse_show(text: &str) -> UnitState {
    let mut s = UnitState::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k {
            "ActiveState" => s.active_state = v.to_owned(),
            "SubState" => s.sub_state = v.to_owned(),
            "Result" => s.result = v.to_owned(),
            "ExecMainCode" => s.exec_main_code = v.parse().unwrap_or(0),
            "ExecMainStatus" => s.exec_main_status = v.parse().unwrap_or(0),
            "MainPID" => s.main_pid = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    s
}

fn ready_line(s: &UnitState) -> String {
    format!(
        "{SYSTEMD_UNIT} is active and ready (main pid {})",
        s.main_pid
    )
}

/// Runs `systemctl --user VERB credsync.service`, which for `Type=notify` returns once the
/// daemon is ready or the start failed, for at most [`START_TIMEOUT`] (the start job goes on
/// after that; the unit's state then says how far it got). Returns the unit's state.
fn start_and_wait(
    runner: &dyn Runner,
    report: &mut InstallReport,
    verb: &str,
) -> Result<UnitState, ServiceError> {
    let argv = words(&["systemctl", "--user", verb, SYSTEMD_UNIT]);
    let shown = argv.join(" ");
    let failed = |e: RunError, report: &InstallReport| ServiceError::Command {
        command: shown.clone(),
        detail: e.to_string(),
        done: format!("{report}").trim_end().to_owned(),
    };
    let how = match runner.run(&argv, START_TIMEOUT) {
        Ok(ran) if ran.success() => "",
        Ok(_) => " (it failed)",
        Err(RunError::Timeout { .. }) => {
            &format!(" (gave up waiting after {}s)", START_TIMEOUT.as_secs())
        }
        Err(e) => return Err(failed(e, report)),
    };
    report.steps.push(format!("ran: {shown}{how}"));
    unit_state(runner).map_err(|e| failed(e, report))
}

fn unit_state(runner: &dyn Runner) -> Result<UnitState, RunError> {
    let argv = words(&[
        "systemctl",
        "--user",
        "show",
        SYSTEMD_UNIT,
        "-p",
        "ActiveState,SubState,Result,ExecMainCode,ExecMainStatus,MainPID",
    ]);
    let ran = runner.run(&argv, COMMAND_TIMEOUT)?.check(&argv)?;
    Ok(parse_show(&ran.stdout))
}

/// The failure with the last lines of `systemctl --user status` (which exits non-zero for a
/// unit that is not active: its output is read whatever the exit status).
fn not_started(runner: &dyn Runner, report: &InstallReport, why: String) -> ServiceError {
    let argv = words(&[
        "systemctl",
        "--user",
        "status",
        "--no-pager",
        "--lines=10",
        SYSTEMD_UNIT,
    ]);
    let status = match runner.run(&argv, COMMAND_TIMEOUT) {
        Ok(ran) => {
            let lines: Vec<&str> = ran.stdout.lines().collect();
            lines[lines.len().saturating_sub(15)..].join("\n")
        }
        Err(e) => format!("(systemctl --user status: {e})"),
    };
    ServiceError::NotStarted {
        unit: SYSTEMD_UNIT.to_owned(),
        why,
        status,
        done: format!("{report}").trim_end().to_owned(),
    }
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
            systemctl(runner, &mut report, &["disable", "--now", SYSTEMD_UNIT])?;
        }
        return Ok(report);
    }
    if systemctl(runner, &mut report, &["disable", "--now", SYSTEMD_UNIT])? {
        remove(&path)?;
        systemctl(runner, &mut report, &["daemon-reload"])?;
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
        Platform::Linux => start_hint_linux(),
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

/// How long a `systemctl` or `launchctl` command other than the start may take.
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// What `systemctl --user` says when there is no user manager to talk to (no user bus, no
/// `XDG_RUNTIME_DIR`, a system not booted with systemd).
const NO_USER_MANAGER: &[&str] = &[
    "Failed to connect to bus",
    "No medium found",
    "XDG_RUNTIME_DIR",
    "not been booted with systemd",
    "Host is down",
];

/// Runs `systemctl --user ARGS`. `Ok(false)` when systemctl itself is unusable (not installed,
/// no user manager): the report then says so and what to run instead.
fn systemctl(
    runner: &dyn Runner,
    report: &mut InstallReport,
    args: &[&str],
) -> Result<bool, ServiceError> {
    let mut argv = vec!["systemctl", "--user"];
    argv.extend_from_slice(args);
    let argv = words(&argv);
    let shown = argv.join(" ");
    let why = match runner
        .run(&argv, COMMAND_TIMEOUT)
        .and_then(|ran| ran.check(&argv))
    {
        Ok(_) => {
            report.steps.push(format!("ran: {shown}"));
            return Ok(true);
        }
        Err(RunError::NotFound { .. }) => "systemctl is not installed".to_owned(),
        Err(e)
            if e.stderr()
                .is_some_and(|s| NO_USER_MANAGER.iter().any(|m| s.contains(m))) =>
        {
            format!(
                "it cannot reach the user manager: {}",
                e.stderr().unwrap_or_default()
            )
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

/// The kernel setting with which AppArmor confines unprivileged user namespaces (1 by default
/// on Ubuntu 23.10 and later). A user unit's `PrivateUsers=` needs such a namespace, so where it
/// is 1 the unit's sandbox fails to start and install falls back to none.
pub const APPARMOR_USERNS_SYSCTL: &str = "/proc/sys/kernel/apparmor_restrict_unprivileged_userns";

/// What a user reads when [`userns_restricted`] holds.
pub(crate) const USERNS_RESTRICTED: &str = "the sandbox needs a user namespace, and AppArmor \
     refuses them to unprivileged programs here (kernel.apparmor_restrict_unprivileged_userns = 1, \
     Ubuntu's default since 23.10)";

/// How a user gets the sandbox back where [`userns_restricted`] holds.
pub(crate) const USERNS_FIX: &str = "to run it sandboxed, allow them (`sudo sysctl -w \
     kernel.apparmor_restrict_unprivileged_userns=0`, and that setting in a file under \
     /etc/sysctl.d/ to keep it), then run `credsync service install` again";

/// Whether the setting at `path` (the kernel's is [`APPARMOR_USERNS_SYSCTL`]) refuses user
/// namespaces to unprivileged programs: it reads 1. Absent (not Ubuntu, not Linux) or
/// unreadable: no.
pub fn userns_restricted(path: &Path) -> bool {
    // A kernel setting under /proc, not a user's file (user_file refuses /proc by design).
    #[allow(clippy::disallowed_methods)]
    let value = std::fs::read_to_string(path);
    value.is_ok_and(|v| v.trim() == "1")
}

/// The reason a unit that [`render_systemd_unit`] wrote without its sandbox ([`Sandbox::Off`])
/// gives for it; `None` for a unit with its sandbox.
pub(crate) fn unit_sandbox_off(text: &str) -> Option<&str> {
    let line = text.lines().find_map(|l| l.strip_prefix(NO_SANDBOX))?;
    Some(
        line.rsplit_once(NO_SANDBOX_END)
            .map_or(line, |(why, _)| why),
    )
}

/// How a unit without its sandbox says why: `NO_SANDBOX` reason `NO_SANDBOX_END`.
const NO_SANDBOX: &str = "# No sandbox: it failed to start on this machine (";
const NO_SANDBOX_END: &str = "); `credsync service install` wrote the unit without it.";

/// Tells systemd the daemon is ready (`READY=1`). A no-op when `NOTIFY_SOCKET` is unset (not
/// run by systemd, or `Type=` is not `notify`).
pub fn notify_ready() {
    notify(&[sd_notify::NotifyState::Ready]);
}

/// Tells systemd the daemon is stopping (`STOPPING=1`).
pub fn notify_stopping() {
    notify(&[sd_notify::NotifyState::Stopping]);
}

fn notify(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!("cannot notify systemd through NOTIFY_SOCKET: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::launchd::xml_escape;
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

    fn spec(exe: &str, config: Option<&str>, extra: &[&str]) -> ServiceSpec {
        ServiceSpec {
            exe: PathBuf::from(exe),
            config: config.map(PathBuf::from),
            extra_rw_paths: extra.iter().map(PathBuf::from).collect(),
            env: Vec::new(),
            sandbox: Sandbox::Full,
        }
    }

    #[test]
    fn unit_runs_the_daemon_with_the_config() {
        let unit = render_systemd_unit(&spec(
            "/opt/cred sync/credsync",
            Some("/home/u/.config/credsync/100% mine.toml"),
            &["/srv/aws creds"],
        ));
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
        let unit = render_systemd_unit(&spec("/usr/bin/credsync", None, &[]));
        assert!(
            unit.contains("\nExecStart=/usr/bin/credsync daemon\n"),
            "{unit}"
        );
        assert!(unit.contains("\nReadWritePaths=-%h/.aws -%t\n"), "{unit}");
    }

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

    fn state(active: &str, sub: &str, result: &str, code: i32, status: i32) -> UnitState {
        UnitState {
            active_state: active.into(),
            sub_state: sub.into(),
            result: result.into(),
            exec_main_code: code,
            exec_main_status: status,
            main_pid: 0,
        }
    }

    #[test]
    fn sandbox_failures_are_the_exit_statuses_of_sandboxing_steps() {
        // What systemd reports when a sandboxing step fails before the program runs.
        for (status, name) in [
            (217, "USER"),
            (218, "CAPABILITIES"),
            (226, "NAMESPACE"),
            (227, "NO_NEW_PRIVILEGES"),
            (228, "SECCOMP"),
            (230, "PERSONALITY"),
            (232, "ADDRESS_FAMILIES"),
        ] {
            assert!(
                is_sandbox_failure("exit-code", CLD_EXITED, status),
                "{status}"
            );
            assert_eq!(
                start_verdict(&state("failed", "failed", "exit-code", 1, status)),
                Verdict::SandboxFailed(format!("status={status}/{name}"))
            );
            // The same unit waiting to be restarted (Restart=on-failure) is judged the same.
            assert_eq!(
                start_verdict(&state("activating", "auto-restart", "exit-code", 1, status)),
                Verdict::SandboxFailed(format!("status={status}/{name}"))
            );
        }
        // Not a sandboxing step: the program's own exit codes, other setup steps (203/EXEC:
        // no binary; 200/CHDIR; 209/STDOUT), signals with the same numbers, other results.
        for (result, code, status) in [
            ("exit-code", 1, 1),
            ("exit-code", 1, 2),
            ("exit-code", 1, 3),
            ("exit-code", 1, 203),
            ("exit-code", 1, 200),
            ("exit-code", 1, 209),
            ("signal", 2, 9),
            ("signal", 2, 15),
            ("core-dump", 3, 11),
            ("signal", 2, 226),
            ("timeout", 0, 0),
            ("protocol", 1, 0),
            ("resources", 0, 0),
            ("start-limit-hit", 1, 226),
            ("success", 1, 0),
        ] {
            assert!(
                !is_sandbox_failure(result, code, status),
                "{result} {code} {status}"
            );
        }
        assert!(matches!(
            start_verdict(&state("failed", "failed", "signal", 2, 9)),
            Verdict::Failed(why) if why.contains("result signal") && why.contains("signal=9")
        ));
        assert!(matches!(
            start_verdict(&state("failed", "failed", "exit-code", 1, 2)),
            Verdict::Failed(why) if why.contains("status=2")
        ));
    }

    #[test]
    fn a_start_is_ready_only_when_active() {
        assert_eq!(
            start_verdict(&state("active", "running", "success", 0, 0)),
            Verdict::Ready
        );
        // Still waiting for READY=1 when install gave up.
        assert!(matches!(
            start_verdict(&state("activating", "start", "success", 0, 0)),
            Verdict::Failed(why) if why.starts_with("not ready within 10s")
        ));
        assert!(matches!(
            start_verdict(&state("inactive", "dead", "success", 1, 0)),
            Verdict::Failed(_)
        ));
    }

    #[test]
    fn show_output_is_parsed() {
        let s = parse_show(
            "ActiveState=failed\nSubState=failed\nResult=exit-code\nExecMainCode=1\n\
             ExecMainStatus=226\nMainPID=0\nOther=x=y\n",
        );
        assert_eq!(s, state("failed", "failed", "exit-code", 1, 226));
    }

    fn env_of(home: &str, vars: &[(&str, &str)]) -> Env {
        Env {
            home: PathBuf::from(home),
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn the_environment_that_decides_what_is_managed_is_carried() {
        let env = env_of(
            "/home/u",
            &[
                ("AWS_PROFILE", "legacy"),
                ("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials-alt"),
                ("AWS_CONFIG_FILE", ""),
                ("AWS_ENDPOINT_URL_SSO", "http://127.0.0.1:9"),
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:8"),
                ("AWS_REGION", "eu-west-1"),
                ("CREDSYNC_LOG", "debug"),
                ("PATH", "/usr/bin"),
            ],
        );
        let cfg = crate::config::defaults(&env);
        let got = carried_env(&cfg, &env);
        let want: Vec<(String, String)> = [
            ("AWS_CONFIG_FILE", ""),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:8"),
            ("AWS_ENDPOINT_URL_SSO", "http://127.0.0.1:9"),
            ("AWS_PROFILE", "legacy"),
            ("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials-alt"),
            ("CREDSYNC_LOG", "debug"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn aws_profile_is_carried_only_when_it_decides_the_profiles() {
        let dir = tempfile::tempdir().unwrap();
        let named = dir.path().join("named.toml");
        std::fs::write(&named, "[[profiles]]\nsource = \"dev\"\n").unwrap();
        let unnamed = dir.path().join("unnamed.toml");
        std::fs::write(&unnamed, "[refresh]\nmin_remaining = \"20m\"\n").unwrap();
        let env = env_of("/home/u", &[("AWS_PROFILE", "legacy")]);
        let has_profile = |path: &Path| {
            let cfg = crate::config::load(Some(path), &env).unwrap();
            carried_env(&cfg, &env)
                .iter()
                .any(|(k, v)| k == "AWS_PROFILE" && v == "legacy")
        };
        assert!(!has_profile(&named), "the file names its profiles");
        assert!(
            has_profile(&unnamed),
            "the file names none: AWS_PROFILE decides"
        );
    }

    #[test]
    fn the_unit_carries_the_environment_escaped() {
        let mut s = spec("/usr/bin/credsync", None, &[]);
        s.env = vec![
            ("AWS_CONFIG_FILE".into(), "/h/my aws/100% \"q\" \\x".into()),
            ("AWS_PROFILE".into(), "legacy".into()),
        ];
        let unit = render_systemd_unit(&s);
        let lines: Vec<&str> = unit.lines().collect();
        for want in [
            r#"Environment="AWS_CONFIG_FILE=/h/my aws/100%% \"q\" \\x""#,
            "Environment=AWS_PROFILE=legacy",
            "Environment=CREDSYNC_LOG=info",
        ] {
            assert!(lines.contains(&want), "{want} missing from\n{unit}");
        }
        s.env.push(("CREDSYNC_LOG".into(), "debug".into()));
        let unit = render_systemd_unit(&s);
        assert!(
            unit.contains("\nEnvironment=CREDSYNC_LOG=debug\n"),
            "{unit}"
        );
        assert!(!unit.contains("CREDSYNC_LOG=info"), "{unit}");
    }

    #[test]
    fn the_sandbox_levels() {
        let mut s = spec("/usr/bin/credsync", None, &[]);
        let full = render_systemd_unit(&s);
        for d in [
            "NoNewPrivileges=yes",
            "PrivateUsers=yes",
            "ProtectSystem=strict",
        ] {
            assert!(full.lines().any(|l| l == d), "{d}");
        }
        // Directives a user manager cannot apply (measured: status=218/CAPABILITIES).
        for d in [
            // Beside PrivateUsers=, these hid /run/user from the service (no notify socket).
            "ProtectKernelTunables=",
            "ProtectControlGroups=",
            "ProtectKernelModules=",
            "ProtectKernelLogs=",
            "ProtectClock=",
            "PrivateDevices=",
            "CapabilityBoundingSet=",
        ] {
            assert!(!full.lines().any(|l| l.starts_with(d)), "{d}");
        }
        s.sandbox = Sandbox::NoNamespaces("[container] uid = 50000".into());
        let some = render_systemd_unit(&s);
        assert!(some.lines().any(|l| l == "NoNewPrivileges=yes"));
        let directive = |unit: &str, d: &str| unit.lines().any(|l| l.starts_with(d));
        assert!(!directive(&some, "PrivateUsers=") && !directive(&some, "ProtectSystem="));
        assert!(some.contains("[container] uid = 50000"), "{some}");
        s.sandbox = Sandbox::Off("status=226/NAMESPACE".into());
        let none = render_systemd_unit(&s);
        assert!(!none.lines().any(|l| l.ends_with("=yes")), "{none}");
        assert!(!directive(&none, "ReadWritePaths="), "{none}");
        assert!(none.contains("status=226/NAMESPACE"), "{none}");
        assert!(none.contains("\nType=notify\n") && none.contains("\nRestart=on-failure\n"));
    }

    #[test]
    fn the_apparmor_userns_setting_is_read_from_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let knob = dir.path().join("apparmor_restrict_unprivileged_userns");
        assert!(!userns_restricted(&knob), "absent: not Ubuntu");
        for (value, restricted) in [("1\n", true), ("1", true), ("0\n", false), ("", false)] {
            std::fs::write(&knob, value).unwrap();
            assert_eq!(userns_restricted(&knob), restricted, "{value:?}");
        }
    }

    #[test]
    fn a_unit_without_its_sandbox_says_why_and_it_reads_back() {
        let mut s = spec("/usr/bin/credsync", None, &[]);
        s.sandbox = Sandbox::Off("status=217/USER".into());
        let unit = render_systemd_unit(&s);
        assert_eq!(unit_sandbox_off(&unit), Some("status=217/USER"), "{unit}");
        s.sandbox = Sandbox::Full;
        assert_eq!(unit_sandbox_off(&render_systemd_unit(&s)), None);
        s.sandbox = Sandbox::NoNamespaces("[container] uid = 50000".into());
        assert_eq!(unit_sandbox_off(&render_systemd_unit(&s)), None);
    }

    #[test]
    fn a_container_uid_leaves_out_the_namespaces() {
        let env = env_of("/home/u", &[]);
        let mut cfg = crate::config::defaults(&env);
        assert_eq!(sandbox_for(&cfg), Sandbox::Full);
        cfg.container = Some(crate::config::ContainerConfig {
            dir: "/home/u/.aws/credsync".into(),
            path_in_container: "/home/astro/.aws/credsync".into(),
            uid: Some(50000),
            share_credentials_file: false,
            engine: None,
            home: "/home/u".into(),
        });
        assert!(matches!(sandbox_for(&cfg), Sandbox::NoNamespaces(w) if w.contains("50000")));
    }
}
