//! The systemd user unit (Linux): rendered from `systemd/` with every path and value escaped
//! for the unit's syntax ([`render_systemd_unit`]), read back ([`unit_exe`],
//! [`unit_sandbox_off`]); the unit the Debian package installs ([`PACKAGED_UNIT`],
//! [`render_packaged_unit`]) and what it lacks for a given setup ([`packaged_shortfall`]); and
//! the `systemctl --user` sequence that enables and starts it, through a [`Runner`].
//!
//! Install waits (bounded) until the unit is active, which for `Type=notify` means the daemon
//! sent READY=1. When the unit failed at a sandboxing step ([`Verdict::SandboxFailed`], judged
//! in [`super::verdict`] from what systemd reports), the unit is rewritten without its sandbox
//! and started again; any other failure is an error carrying the unit's result and status.

use std::path::{Path, PathBuf};

use super::spec::absolute;
use super::verdict::{UnitState, Verdict, parse_show, start_verdict};
use super::{
    COMMAND_TIMEOUT, FileOutcome, InstallReport, START_TIMEOUT, Sandbox, ServiceError, ServiceSpec,
    Target, fill, render, service_env, words, write_if_changed,
};
use crate::process::{RunError, Runner};

/// The systemd unit's name.
pub(crate) const SYSTEMD_UNIT: &str = "credsync.service";

const SYSTEMD_TEMPLATE: &str = include_str!("../../systemd/credsync.service");
const SYSTEMD_SANDBOX: &str = include_str!("../../systemd/sandbox.conf");
const SYSTEMD_SANDBOX_NAMESPACES: &str = include_str!("../../systemd/sandbox-namespaces.conf");

/// Where the Debian package installs the systemd user unit, and the binary that unit runs.
pub const PACKAGED_UNIT: &str = "/usr/lib/systemd/user/credsync.service";
pub const PACKAGED_EXE: &str = "/usr/bin/credsync";

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

/// The executable the unit runs, read back as [`render_systemd_unit`] writes it: its first
/// `ExecStart=` (the first word, after any `@-:+!` prefixes). `None` when it names none.
pub(super) fn unit_exe(text: &str) -> Option<PathBuf> {
    let value = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("ExecStart="))?
        .trim()
        .trim_start_matches(['@', '-', ':', '+', '!']);
    unquote_systemd_word(value).map(PathBuf::from)
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

/// Install with the package's unit (and no unit of the user's own): enables and starts it when
/// it runs what `spec` asks for; otherwise says what to add, or which binary to use.
pub(super) fn install_packaged(
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

/// Reloads systemd, enables the unit and starts it (restarts it when `file` was updated), and
/// waits until it is ready; a sandbox that fails on this machine is dropped and the unit
/// started again ([`Verdict::SandboxFailed`]).
pub(super) fn start(
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
pub(super) fn systemctl(
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
        format!("written, not started; to start it, run {}", start_hint())
    };
    report.hint = Some(format!(
        "`systemctl --user` is not available ({why}).\n{instead}"
    ));
    Ok(false)
}

/// How a user starts the written unit themselves.
pub(super) fn start_hint() -> String {
    format!(
        "`systemctl --user daemon-reload && systemctl --user enable --now {SYSTEMD_UNIT}` \
         in a session with a systemd user manager, or `credsync daemon` in the foreground"
    )
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
}
