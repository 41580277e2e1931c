//! `credsync status` as a person reads it: a pure rendering of [`Status`] at a given `now`.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use crate::status::{Kind, Status};
use crate::timefmt::humane;

/// The longest last error shown in the table; `--json` has it whole.
const MAX_ERROR_CHARS: usize = 60;

/// Renders the daemon line, one row per profile, then one row per sso-session.
pub fn render_table(status: &Status, now: SystemTime) -> String {
    let d = &status.daemon;
    let mut out = format!(
        "credsync {} (pid {}, up {}); {}; credentials: {}\n",
        d.version,
        d.pid,
        humane(now.duration_since(d.started_at).unwrap_or_default()),
        d.config,
        d.credentials_file,
    );
    if let Some(e) = &d.reload_error {
        let _ = writeln!(out, "reload refused, the old configuration stays: {e}");
    }

    out.push('\n');
    if status.profiles.is_empty() {
        out.push_str("no managed profiles\n");
    } else {
        let mut rows = vec![row([
            "PROFILE",
            "TARGET",
            "KIND",
            "STATE",
            "EXPIRES IN",
            "NEXT REFRESH",
            "LAST ERROR",
        ])];
        for p in &status.profiles {
            rows.push(vec![
                p.source.clone(),
                p.target.clone(),
                kind_str(p.kind).to_owned(),
                p.state.as_str().to_owned(),
                p.expires_at
                    .map_or_else(|| "-".to_owned(), |t| expires_in(t, now)),
                p.next_refresh
                    .map_or_else(|| "-".to_owned(), |t| next_refresh(t, now)),
                last_error(p.last_error.as_deref(), p.consecutive_failures),
            ]);
        }
        write_rows(&mut out, &rows);
    }

    if !status.sso_sessions.is_empty() {
        out.push('\n');
        let mut rows = vec![row([
            "SSO SESSION",
            "TOKEN EXPIRES IN",
            "ENDS IN",
            "CREDENTIALS LAST",
            "REFRESHABLE",
        ])];
        for s in &status.sso_sessions {
            let refreshable = match (s.refreshable, s.not_refreshable) {
                (true, _) => "yes".to_owned(),
                (false, Some(why)) => {
                    format!("no, {}; log in: {}", why.describe(), s.login_command)
                }
                (false, None) => format!("no, log in: {}", s.login_command),
            };
            let left =
                |t: Option<SystemTime>| t.map_or_else(|| "-".to_owned(), |t| expires_in(t, now));
            rows.push(vec![
                s.name.clone(),
                s.token_expires_at
                    .map_or_else(|| "no token".to_owned(), |t| expires_in(t, now)),
                left(s.ends_at),
                left(s.credentials_until),
                refreshable,
            ]);
        }
        write_rows(&mut out, &rows);
    }
    out
}

fn expires_in(t: SystemTime, now: SystemTime) -> String {
    match t.duration_since(now) {
        Ok(left) if left > Duration::ZERO => humane(left),
        _ => format!(
            "expired {} ago",
            humane(now.duration_since(t).unwrap_or_default())
        ),
    }
}

fn next_refresh(t: SystemTime, now: SystemTime) -> String {
    match t.duration_since(now) {
        Ok(left) if left > Duration::ZERO => format!("in {}", humane(left)),
        _ => "due now".to_owned(),
    }
}

fn last_error(error: Option<&str>, failures: u32) -> String {
    let Some(error) = error else {
        return "-".to_owned();
    };
    let one_line = error.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut shown: String = one_line.chars().take(MAX_ERROR_CHARS).collect();
    if shown.len() < one_line.len() {
        shown.push('…');
    }
    if failures > 1 {
        format!("{shown} ({failures} failures)")
    } else {
        shown
    }
}

fn kind_str(kind: Kind) -> &'static str {
    match kind {
        Kind::Sso => "sso",
        Kind::AssumeRole => "assume-role",
        Kind::Static => "static",
        Kind::Login => "login",
        Kind::Unknown => "-",
    }
}

fn row<const N: usize>(cells: [&str; N]) -> Vec<String> {
    cells.iter().map(|c| (*c).to_owned()).collect()
}

/// Left-aligned columns two spaces apart; the last column is not padded.
fn write_rows(out: &mut String, rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{DaemonInfo, ProfileStatus, STATUS_VERSION, SessionStatus, State};
    use crate::token_policy::NotRefreshable;

    const NOW: u64 = 1_795_964_400;

    fn at(offset: i64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(NOW.saturating_add_signed(offset))
    }

    fn status() -> Status {
        let mut fresh = ProfileStatus::new("dev-admin", "default");
        fresh.kind = Kind::Sso;
        fresh.state = State::Fresh;
        fresh.expires_at = Some(at(47 * 60 + 10));
        fresh.next_refresh = Some(at(27 * 60));
        let mut expired = ProfileStatus::new("data-ro", "data-ro");
        expired.kind = Kind::AssumeRole;
        expired.state = State::Expired;
        expired.expires_at = Some(at(-3 * 60));
        expired.next_refresh = Some(at(-1));
        expired.last_error = Some(format!("sts AssumeRole failed:\n{}", "x".repeat(100)));
        expired.consecutive_failures = 4;
        Status {
            version: STATUS_VERSION,
            daemon: DaemonInfo {
                pid: 4242,
                version: "0.1.0".into(),
                started_at: at(-(3 * 3600 + 125)),
                config: "config file /home/u/.config/credsync/config.toml".into(),
                credentials_file: "/home/u/.aws/credentials".into(),
                effective: None,
                reload_error: None,
            },
            profiles: vec![fresh, expired, ProfileStatus::new("new", "new")],
            sso_sessions: vec![
                SessionStatus {
                    token_expires_at: Some(at(7 * 3600 + 12 * 60)),
                    refreshable: true,
                    not_refreshable: None,
                    ends_at: Some(at(89 * 86400 + 3600)),
                    credentials_until: Some(at(47 * 60 + 10)),
                    ..SessionStatus::new("corp", "credsync login --sso-session corp")
                },
                SessionStatus {
                    token_expires_at: Some(at(25 * 60)),
                    refused_at: Some(at(-60)),
                    not_refreshable: Some(NotRefreshable::RefreshRefused),
                    ends_at: Some(at(25 * 60)),
                    credentials_until: Some(at(3600)),
                    ..SessionStatus::new("ops", "credsync login --sso-session ops")
                },
                SessionStatus::new(
                    "https://legacy.awsapps.com/start",
                    "credsync login --profile legacy",
                ),
            ],
        }
    }

    #[test]
    fn renders_profiles_and_sessions() {
        let want = "\
credsync 0.1.0 (pid 4242, up 3h02m); config file /home/u/.config/credsync/config.toml; credentials: /home/u/.aws/credentials

PROFILE    TARGET   KIND         STATE    EXPIRES IN      NEXT REFRESH  LAST ERROR
dev-admin  default  sso          fresh    47m             in 27m        -
data-ro    data-ro  assume-role  expired  expired 3m ago  due now       sts AssumeRole failed: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx… (4 failures)
new        new      -            pending  -               -             -

SSO SESSION                       TOKEN EXPIRES IN  ENDS IN  CREDENTIALS LAST  REFRESHABLE
corp                              7h12m             89d1h    47m               yes
ops                               25m               25m      1h00m             no, the refresh token was refused; log in: credsync login --sso-session ops
https://legacy.awsapps.com/start  no token          -        -                 no, not signed in; log in: credsync login --profile legacy
";
        assert_eq!(render_table(&status(), at(0)), want);
    }

    #[test]
    fn the_header_says_where_the_config_came_from() {
        use crate::config::{self, Env};
        let env = Env {
            home: "/home/u".into(),
            vars: [("AWS_PROFILE".to_owned(), "dev".to_owned())].into(),
        };
        let file = config::parse("", std::path::Path::new("/c/config.toml"), &env).unwrap();
        for (origin, want) in [
            (
                config::defaults(&env).describe_origin(),
                "(pid 4242, up 3h02m); no config file at ",
            ),
            (
                file.describe_origin(),
                "(pid 4242, up 3h02m); config file /c/config.toml; credentials: ",
            ),
        ] {
            let mut s = status();
            s.daemon.config = origin;
            let table = render_table(&s, at(0));
            let head = table.lines().next().unwrap_or_default();
            assert!(head.contains(want), "{head}");
            assert!(!head.contains("config: "), "{head}");
        }
    }

    #[test]
    fn a_refused_reload_is_said_under_the_header() {
        let mut s = status();
        s.daemon.reload_error = Some("/h/.aws/config is a FIFO (named pipe), …".into());
        let table = render_table(&s, at(0));
        let second = table.lines().nth(1).unwrap_or_default();
        assert_eq!(
            second,
            "reload refused, the old configuration stays: /h/.aws/config is a FIFO (named pipe), …"
        );
        assert!(!render_table(&status(), at(0)).contains("reload refused"));
    }

    #[test]
    fn says_when_nothing_is_managed() {
        let mut s = status();
        s.profiles.clear();
        s.sso_sessions.clear();
        let table = render_table(&s, at(0));
        assert!(table.ends_with("\nno managed profiles\n"), "{table}");
        assert!(!table.contains("SSO SESSION"));
    }

    #[test]
    fn truncates_multibyte_errors_without_panicking() {
        let e = last_error(Some(&"é".repeat(100)), 1);
        assert_eq!(e.chars().count(), MAX_ERROR_CHARS + 1);
        assert!(e.ends_with('…'));
    }
}
