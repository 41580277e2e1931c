//! `credsync doctor`'s pure part: a check's row ([`Check`]: its [`Level`], what was found and
//! how to fix it), the report's text, and the checks that are functions of the facts the edge
//! gathered (parsed files, the daemon's status, `now`). Reading the files, asking the daemon,
//! looking at processes and the environment is `credsync::doctor`, at the edge, which re-exports
//! these names.

use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::aws_profile::{AwsConfig, ProfileError, SsoProfile};
use crate::ini_edit;
use crate::sso_cache::{self, CachedToken};
use crate::status::{ProfileStatus, State, Status};
use crate::timefmt::humane;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "fail",
        })
    }
}

/// One line of the report: what was found and, unless it is fine, how to fix it (possibly
/// several lines to paste).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub level: Level,
    pub what: String,
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(what: impl Into<String>) -> Check {
        Check {
            level: Level::Ok,
            what: what.into(),
            fix: None,
        }
    }

    pub fn warn(what: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            level: Level::Warn,
            what: what.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn fail(what: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            level: Level::Fail,
            what: what.into(),
            fix: Some(fix.into()),
        }
    }
}

/// The report: `ok   what`, and under a warn or fail its fix, indented.
pub fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        out.push_str(&format!("{:<4}  {}\n", c.level.to_string(), c.what));
        if let Some(fix) = &c.fix {
            for (i, line) in fix.lines().enumerate() {
                let lead = if i == 0 { "fix: " } else { "     " };
                out.push_str(&format!("      {lead}{line}\n"));
            }
        }
    }
    out
}

/// Whether the AWS config file parses as botocore would read it.
pub fn check_aws_config(parsed: &Result<AwsConfig, ProfileError>, path: &Path) -> Check {
    match parsed {
        Ok(aws) if aws.profiles.is_empty() => Check::warn(
            format!("AWS config {}: no profiles", path.display()),
            "set up a profile with `aws configure sso` (or write one by hand)",
        ),
        Ok(aws) => Check::ok(format!(
            "AWS config {}: {} profile{}, {} sso-session{}",
            path.display(),
            aws.profiles.len(),
            if aws.profiles.len() == 1 { "" } else { "s" },
            aws.sso_sessions.len(),
            if aws.sso_sessions.len() == 1 { "" } else { "s" },
        )),
        Err(e) => Check::fail(
            format!("AWS config does not parse: {e}"),
            "fix the line named: botocore refuses the whole file too, so every AWS tool fails",
        ),
    }
}

/// What reading one sso-session's token cache found (`Err`: the file could not be read).
pub type TokenRead = Result<sso_cache::Read, String>;

/// One sso-session's token: present, expired, refreshable.
pub fn check_token(sso: &SsoProfile, read: &TokenRead, now: SystemTime) -> Check {
    let who = match &sso.session {
        Some(s) => format!("SSO token of sso-session {s}"),
        None => format!("SSO token of {}", sso.start_url),
    };
    let login = format!("run `{}`", sso.login_command());
    match read {
        Err(e) => Check::fail(format!("{who}: cannot read the token cache: {e}"), login),
        Ok(sso_cache::Read::Missing) => Check::fail(format!("{who}: not logged in"), login),
        Ok(sso_cache::Read::Unparsable(e)) => Check::warn(
            format!("{who}: the cache file does not parse ({e})"),
            format!(
                "run `credsync doctor` again in a moment (the AWS CLI may be writing it); if it \
                 stays, {login}"
            ),
        ),
        Ok(sso_cache::Read::Token(t)) => token_state(&who, t, &login, now),
    }
}

fn token_state(who: &str, t: &CachedToken, login: &str, now: SystemTime) -> Check {
    let refreshable = crate::token_policy::can_refresh(t, now);
    if t.is_expired(now) {
        if refreshable {
            Check::warn(
                format!(
                    "{who}: expired, refreshable (credsync refreshes it with its refresh token)"
                ),
                "start the daemon (`credsync service install`) or run `credsync sync`",
            )
        } else {
            Check::fail(format!("{who}: expired and cannot be refreshed"), login)
        }
    } else {
        let left = t.expires_at.duration_since(now).unwrap_or_default();
        if refreshable {
            Check::ok(format!("{who}: valid for {}, refreshable", humane(left)))
        } else {
            let c = Check::ok(format!(
                "{who}: valid for {}; not refreshable, so log in again before then",
                humane(left)
            ));
            if left < Duration::from_secs(3600) {
                Check::warn(c.what, login)
            } else {
                c
            }
        }
    }
}

/// Whether the daemon answered on `socket`, its pid and how many profiles are fresh.
pub fn check_daemon(socket: &Path, reply: &Result<Status, String>) -> Vec<Check> {
    let status = match reply {
        Ok(s) => s,
        Err(e) => {
            return vec![Check::fail(
                format!("daemon: not reachable on {}: {e}", socket.display()),
                "run `credsync service install` (or `credsync daemon` in a terminal)",
            )];
        }
    };
    let fresh = status
        .profiles
        .iter()
        .filter(|p| p.state == State::Fresh)
        .count();
    let mut out = vec![Check::ok(format!(
        "daemon: running (pid {}, version {}), {fresh} of {} profile{} fresh",
        status.daemon.pid,
        status.daemon.version,
        status.profiles.len(),
        if status.profiles.len() == 1 { "" } else { "s" }
    ))];
    for p in status.profiles.iter().filter(|p| p.state != State::Fresh) {
        let what = format!(
            "daemon: {} -> [{}] is {}{}",
            p.source,
            p.target,
            p.state.as_str(),
            p.last_error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
        let fix = match p.state {
            State::LoginRequired => format!("run `{}`", login_command(status, p)),
            State::Conflict => format!(
                "remove or rename section [{}] of the credentials file (credsync did not create \
                 it), or give the profile another target in credsync's config",
                p.target
            ),
            State::Pending => {
                "wait a few seconds for the first refresh, then run `credsync doctor` again"
                    .to_owned()
            }
            _ => "fix what the error above names, then run `credsync refresh` (`credsync \
                  status` shows the profile's last error)"
                .to_owned(),
        };
        let level_fail = matches!(
            p.state,
            State::LoginRequired | State::Expired | State::Error
        );
        out.push(if level_fail {
            Check::fail(what, fix)
        } else {
            Check::warn(what, fix)
        });
    }
    out
}

/// What the daemon says of its sso-sessions' tokens that a user should know: tokens shorter
/// than `before` (`token_refresh_before`) allows, which are refreshed at half their life
/// instead; and a token that is only in memory because its save to the cache file failed.
pub fn check_sessions(status: &Status, before: std::time::Duration) -> Vec<Check> {
    let mut out = Vec::new();
    for s in &status.sso_sessions {
        if s.aws_login
            && s.not_refreshable == Some(crate::token_policy::NotRefreshable::RefreshRefused)
        {
            out.push(Check::fail(
                format!(
                    "aws login session {}: ended (AWS Sign-In refused its refresh token), so \
                     its profiles are login_required",
                    s.name
                ),
                format!("sign in again: run `{}`", s.login_command),
            ));
        }
        if let Some(lifetime) = s.token_lifetime
            && crate::schedule::token_shorter_than_lead(Some(lifetime), before)
        {
            let lead = crate::schedule::token_lead(Some(lifetime), before);
            out.push(Check::warn(
                format!(
                    "SSO session {}: its tokens last {}, less than twice token_refresh_before \
                     ({}), so credsync refreshes each {} before it expires (half its life)",
                    s.name,
                    humantime::format_duration(lifetime),
                    humantime::format_duration(before),
                    humantime::format_duration(lead)
                ),
                format!(
                    "nothing breaks: to make this the plan rather than a fallback, set \
                     token_refresh_before = \"{}\" or less under [refresh] in credsync's config",
                    humantime::format_duration(lead)
                ),
            ));
        }
        if let (Some(since), Some(error)) = (s.token_unsaved_since, &s.token_unsaved_error) {
            out.push(Check::fail(
                format!(
                    "SSO session {}: the newest token is only in the daemon's memory since {} \
                     ({error}); the token cache file holds an older one, whose refresh token may \
                     be spent",
                    s.name,
                    crate::timefmt::rfc3339(since)
                ),
                "free space (or fix what the error names) where the SSO token cache is; the \
                 daemon saves the token as soon as it can — do not stop it before that",
            ));
        }
    }
    out
}

/// The command that logs `p` in: the one its own error names (the daemon's error says `run
/// `<command>``), else the only session's, else `credsync login --profile <source>`.
fn login_command(status: &Status, p: &ProfileStatus) -> String {
    let error = p.last_error.as_deref().unwrap_or_default();
    let named = status
        .sso_sessions
        .iter()
        .map(|s| s.login_command.as_str())
        .find(|c| error.contains(&format!("`{c}`")));
    match (named, status.sso_sessions.as_slice()) {
        (Some(c), _) => c.to_owned(),
        (None, [only]) => only.login_command.clone(),
        (None, _) => format!("credsync login --profile {}", p.source),
    }
}

/// The sections of a credentials file's `text` that hold long-lived IAM user keys
/// (`aws_access_key_id = AKIA…`) and that credsync does not manage.
pub fn long_lived_sections(text: &str) -> Vec<String> {
    let Ok(sections) = ini_edit::source_credentials(text, Path::new("credentials")) else {
        return Vec::new();
    };
    sections
        .into_iter()
        .filter(|(_, keys)| {
            keys.get("aws_access_key_id")
                .is_some_and(|k| k.trim().starts_with("AKIA"))
        })
        .map(|(name, _)| name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{DaemonInfo, Kind, SessionStatus};

    const HOUR: Duration = Duration::from_secs(3600);

    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    const AWS: &str = "[sso-session corp]\nsso_start_url = https://x.awsapps.com/start\nsso_region = us-east-1\n\n[profile dev]\nsso_session = corp\nsso_account_id = 111111111111\nsso_role_name = Dev\n";

    /// A token cache read that found a token expiring at `expires`, with a refresh token and a
    /// live registration when `refresh`.
    fn token(expires: SystemTime, refresh: bool) -> TokenRead {
        let reg = if refresh {
            ",\"refreshToken\":\"r\",\"clientId\":\"c\",\"clientSecret\":\"s\",\"registrationExpiresAt\":\"2099-01-01T00:00:00Z\""
        } else {
            ""
        };
        let json = format!(
            "{{\"accessToken\":\"a\",\"expiresAt\":\"{}\"{reg}}}",
            crate::timefmt::rfc3339(expires)
        );
        Ok(sso_cache::Read::Token(
            sso_cache::parse(json.as_bytes()).unwrap(),
        ))
    }

    #[test]
    fn render_indents_fixes() {
        let text = render(&[Check::ok("a"), Check::fail("b", "one\n  - two")]);
        assert_eq!(
            text,
            "ok    a\nfail  b\n      fix: one\n             - two\n"
        );
    }

    #[test]
    fn token_states() {
        let sso = crate::aws_profile::parse(AWS, Path::new("/c"))
            .unwrap()
            .sso_profile("dev")
            .unwrap();
        let c = check_token(&sso, &token(t0() - HOUR, false), t0());
        assert_eq!(c.level, Level::Fail);
        assert_eq!(
            c.fix.as_deref(),
            Some("run `credsync login --sso-session corp`")
        );
        let c = check_token(&sso, &token(t0() - HOUR, true), t0());
        assert_eq!(c.level, Level::Warn);
        assert!(c.what.contains("expired, refreshable"));
        let c = check_token(&sso, &Ok(sso_cache::Read::Missing), t0());
        assert_eq!(
            (c.level, c.what.contains("not logged in")),
            (Level::Fail, true)
        );
        let c = check_token(
            &sso,
            &token(t0() + 10 * 60 * Duration::from_secs(1), false),
            t0(),
        );
        assert_eq!(c.level, Level::Warn, "about to expire and not refreshable");
        let c = check_token(&sso, &token(t0() + 8 * HOUR, false), t0());
        assert_eq!(c.level, Level::Ok);
        let bad = sso_cache::parse(b"{\"accessToken\":").unwrap_err();
        let c = check_token(&sso, &Ok(sso_cache::Read::Unparsable(bad)), t0());
        assert_eq!(c.level, Level::Warn);
    }

    #[test]
    fn daemon_reply() {
        let mut p1 = ProfileStatus::new("dev", "dev");
        p1.state = State::Fresh;
        p1.kind = Kind::Sso;
        let mut p2 = ProfileStatus::new("ops", "ops");
        p2.state = State::LoginRequired;
        let status = Status {
            version: 1,
            daemon: DaemonInfo {
                pid: 4242,
                version: "0.1.0".into(),
                started_at: t0(),
                config: "c".into(),
                credentials_file: "f".into(),
                effective: None,
                reload_error: None,
            },
            profiles: vec![p1, p2],
            sso_sessions: vec![SessionStatus::new(
                "corp",
                "credsync login --sso-session corp",
            )],
        };
        let c = check_daemon(Path::new("/s"), &Ok(status));
        assert!(c[0].what.contains("pid 4242") && c[0].what.contains("1 of 2 profiles fresh"));
        assert_eq!(c[1].level, Level::Fail);
        assert_eq!(
            c[1].fix.as_deref(),
            Some("run `credsync login --sso-session corp`")
        );
        let c = check_daemon(Path::new("/s"), &Err("no answer".into()));
        assert_eq!(c[0].level, Level::Fail);
        assert!(
            c[0].fix
                .as_deref()
                .unwrap()
                .contains("credsync service install")
        );
    }

    #[test]
    fn short_tokens_and_a_token_not_on_disk_are_said() {
        let mut status: Status = serde_json::from_value(serde_json::json!({
            "version": 2,
            "daemon": {"pid": 1, "version": "x", "started_at": "2026-11-29T10:00:00Z",
                       "config": "c", "credentials_file": "f"},
            "profiles": [],
            "sso_sessions": [{"name": "corp", "refreshable": true,
                              "login_command": "credsync login --sso-session corp",
                              "token_lifetime_secs": 1200}],
        }))
        .unwrap();
        let before = std::time::Duration::from_secs(30 * 60);
        let c = check_sessions(&status, before);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].level, Level::Warn);
        assert!(
            c[0].what.contains("last 20m") && c[0].what.contains("each 10m"),
            "{c:?}"
        );
        // Hour-long tokens under the default: nothing to say.
        status.sso_sessions[0].token_lifetime = Some(std::time::Duration::from_secs(3600));
        assert!(check_sessions(&status, before).is_empty());
        status.sso_sessions[0].token_unsaved_since = Some(t0());
        status.sso_sessions[0].token_unsaved_error = Some("No space left on device".into());
        let c = check_sessions(&status, before);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].level, Level::Fail);
        assert!(c[0].what.contains("only in the daemon's memory"), "{c:?}");
    }
}
