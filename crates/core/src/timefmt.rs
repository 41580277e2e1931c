//! Time as text: wall-clock timestamps in RFC 3339 UTC, the way botocore and the AWS CLI write
//! them, and durations the short way `status` and `doctor` show them.

use std::time::{Duration, SystemTime};

/// `2026-11-29T15:00:00Z`: whole seconds, UTC (botocore's `%Y-%m-%dT%H:%M:%SZ`).
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A duration as people say it: `45s`, `47m`, `2h05m`, `3d4h`.
pub fn humane(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86400, s % 86400 / 3600),
    }
}

/// Parses the timestamps AWS tools write: RFC 3339 with or without fractions, `Z`, `UTC` or a
/// numeric offset (`+00:00`, `-0500`). Returns `None` for anything else.
pub fn parse(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let (base, offset_secs) = split_offset(s)?;
    let base = base.replacen(' ', "T", 1);
    let t = humantime::parse_rfc3339_weak(&base).ok()?;
    if offset_secs >= 0 {
        t.checked_sub(Duration::from_secs(offset_secs as u64))
    } else {
        t.checked_add(Duration::from_secs(offset_secs.unsigned_abs()))
    }
}

/// Splits a timestamp into its local part and its offset east of UTC, in seconds.
fn split_offset(s: &str) -> Option<(&str, i64)> {
    if let Some(b) = s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
        return Some((b, 0));
    }
    if let Some(b) = s.strip_suffix("UTC").or_else(|| s.strip_suffix("GMT")) {
        return Some((b.trim_end(), 0));
    }
    // A numeric offset follows the time part (after the 'T'), so look only there for the sign.
    let t_pos = s.find(['T', 't', ' '])?;
    let sign_pos = s[t_pos..].rfind(['+', '-']).map(|p| p + t_pos);
    let Some(pos) = sign_pos else {
        return Some((s, 0));
    };
    let (base, off) = s.split_at(pos);
    let sign = if off.starts_with('-') { -1 } else { 1 };
    let digits: String = off[1..].chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i64 = digits[..2].parse().ok()?;
    let minutes: i64 = digits[2..].parse().ok()?;
    Some((base, sign * (hours * 3600 + minutes * 60)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn formats_like_botocore() {
        assert_eq!(rfc3339(at(1_795_964_400)), "2026-11-29T15:00:00Z");
    }

    #[test]
    fn parses_every_form_aws_tools_write() {
        let want = at(1_795_964_400);
        for s in [
            "2026-11-29T15:00:00Z",
            "2026-11-29T15:00:00.000Z",
            "2026-11-29T15:00:00UTC",
            "2026-11-29T15:00:00+00:00",
            "2026-11-29T16:00:00+01:00",
            "2026-11-29T10:00:00-0500",
            // Offsets with minutes (India, Nepal): the minutes count too.
            "2026-11-29T20:30:00+05:30",
            "2026-11-29T20:45:00+0545",
            "2026-11-29 15:00:00Z",
        ] {
            let got = parse(s).unwrap_or_else(|| panic!("{s} did not parse"));
            let got = got
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            assert_eq!(got, 1_795_964_400, "{s}");
        }
        assert_eq!(
            parse("2026-11-29T15:00:00.5Z").map(|t| t > want),
            Some(true)
        );
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-11-29T15:00:00+5",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn humane_durations() {
        for (secs, want) in [
            (0, "0s"),
            (59, "59s"),
            (60, "1m"),
            (3599, "59m"),
            (3600, "1h00m"),
            (7500, "2h05m"),
            (86400 + 7200, "1d2h"),
        ] {
            assert_eq!(humane(Duration::from_secs(secs)), want, "{secs}");
        }
    }
}
