//! How a systemd start went: what `systemctl --user show` says about the unit ([`UnitState`],
//! [`parse_show`]) judged as ready, failed at a sandboxing step (so the same unit without its
//! sandbox may run: [`is_sandbox_failure`]) or failed otherwise ([`start_verdict`]). Pure
//! functions of systemd's words; [`super::systemd`] runs `systemctl` and acts on the verdict.

use super::START_TIMEOUT;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
