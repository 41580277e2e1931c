//! `credsync doctor`'s pure part: a check's row ([`Check`]: its [`Level`], what was found and
//! how to fix it), the report's text, and the checks that are functions of the facts the edge
//! gathered (parsed files, the daemon's status, `now`). Reading the files, asking the daemon,
//! looking at processes and the environment is `credsync::doctor`, at the edge, which re-exports
//! these names.

use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::aws_profile::{AwsConfig, ProfileError, SsoProfile};
use crate::sso_cache::{self, CachedToken};
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
