//! The text of a config error: `path:line:column` from a byte offset, toml's and serde's
//! messages rewritten to name the section and key, and a "did you mean" for an unknown key.

use std::fmt::Write as _;
use std::ops::Range;
use std::path::Path;

use super::{ConfigError, KEYS};

pub(super) fn invalid(
    text: &str,
    path: &Path,
    span: Option<Range<usize>>,
    message: String,
) -> ConfigError {
    let (line, column) = match span {
        Some(s) => line_col(text, s.start),
        None => (1, 1),
    };
    ConfigError::Invalid {
        path: path.to_owned(),
        line,
        column,
        message,
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Rewrites toml's / serde's message so it names the section and key and says what is expected.
pub(super) fn toml_message(text: &str, e: &toml::de::Error) -> String {
    let raw: String = e
        .message()
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ");
    // serde names Rust types; say what a TOML writer can act on.
    let raw = raw.replace("expected i64", "expected an integer").replace(
        "expected u32",
        "expected a whole number from 0 to 4294967295",
    );
    if let Some(m) = unknown_key_message(&raw) {
        return m;
    }
    if let Some(field) = raw
        .strip_prefix("missing field `")
        .and_then(|r| r.strip_suffix('`'))
    {
        if field == "source" {
            return "[[profiles]] entry has no source; every entry needs source = \"<a profile \
                    in the AWS config file>\""
                .to_owned();
        }
        return format!("missing key \"{field}\"");
    }
    if raw.contains("expected a sequence")
        && e.span()
            .and_then(|s| text.get(s.start..))
            .is_some_and(|t| t.starts_with("[profiles"))
    {
        return format!(
            "[profiles] must be a list of tables: write [[profiles]] (double brackets) above \
             each entry ({raw})"
        );
    }
    match e.span().map(|s| context_at(text, s.start)) {
        Some(Context {
            section,
            key: Some(key),
        }) => {
            format!("{} {key}: {raw}", display_section(section.as_deref()))
        }
        Some(Context {
            section: Some(section),
            key: None,
        }) => {
            format!("{}: {raw}", display_section(Some(&section)))
        }
        _ => raw,
    }
}

fn display_section(section: Option<&str>) -> String {
    match section {
        None | Some("") => "top level".to_owned(),
        Some("profiles") => "[[profiles]]".to_owned(),
        Some(s) => format!("[{s}]"),
    }
}

/// serde: "unknown field `x`, expected one of `a`, `b`" / "expected `a` or `b`" / "expected `a`".
fn unknown_key_message(raw: &str) -> Option<String> {
    let rest = raw.strip_prefix("unknown field `")?;
    let (key, expected) = rest.split_once('`')?;
    let valid: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let &(section, keys) = KEYS
        .iter()
        .find(|(_, keys)| keys.len() == valid.len() && keys.iter().all(|k| valid.contains(k)))?;
    let mut msg = if section.is_empty() {
        format!("unknown section or key \"{key}\" at the top level")
    } else {
        format!(
            "unknown key \"{key}\" in {}",
            display_section(Some(section))
        )
    };
    let _ = write!(msg, "; expected one of {}", keys.join(", "));
    let nearest = keys.iter().map(|k| (edit_distance(k, key), k)).min();
    if let Some((_, near)) = nearest.filter(|(d, _)| *d <= 2) {
        let _ = write!(msg, " (did you mean \"{near}\"?)");
    }
    Some(msg)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

struct Context {
    /// The table the offset is in (`None` at the top level), by the last header before it.
    section: Option<String>,
    /// The key on the offset's line, when the offset is in its value.
    key: Option<String>,
}

/// Best-effort: which section and key a byte offset belongs to, from the lines before it.
fn context_at(text: &str, offset: usize) -> Context {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let mut section = None;
    for line in before[..line_start].lines() {
        let t = line.trim_start();
        if let Some(h) = t.strip_prefix('[') {
            let h = h.strip_prefix('[').unwrap_or(h);
            if let Some(end) = h.find(']') {
                section = Some(h[..end].trim().to_owned());
            }
        }
    }
    let key = before[line_start..]
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_owned())
        .filter(|k| !k.is_empty() && !k.starts_with('['));
    let (section, key) = match key {
        // A dotted key at the top level, e.g. `refresh.max_concurrency = 0`.
        Some(k) if section.is_none() && k.contains('.') => {
            let (s, k) = k.split_once('.').unwrap_or(("", &k));
            (Some(s.trim().to_owned()), Some(k.trim().to_owned()))
        }
        other => (section, other),
    };
    Context { section, key }
}

#[cfg(test)]
mod tests {
    use crate::config::testing::*;

    #[test]
    fn invalid_toml_gives_line_and_column() {
        let (line, col, msg) = err("[aws]\nconfig_file = \"/x\"\n[refresh\n");
        assert_eq!((line, col), (3, 9));
        assert!(msg.contains("expected `]`"), "{msg}");
        assert!(!msg.contains('\n'), "one line: {msg}");
        // Columns count characters, not bytes; CRLF line ends count as one line break.
        let (line, col, _) = err("# héllo\r\n[aws]\r\nconfig_file = \"é\" x\r\n");
        assert_eq!((line, col), (3, 19));
        let (line, col, msg) = err("[write]\nmode = atomic\n");
        assert_eq!((line, col), (2, 8));
        assert!(!msg.is_empty());
    }

    #[test]
    fn unknown_key_in_each_section() {
        let cases: &[(&str, (usize, usize), &str)] = &[
            (
                "colour = 1\n",
                (1, 1),
                "unknown section or key \"colour\" at the top level; expected one of aws, profiles, write, refresh, container, control, notify",
            ),
            (
                "[aws]\nconfig = \"/x\"\n",
                (2, 1),
                "unknown key \"config\" in [aws]; expected one of config_file, credentials_file, sso_cache_dir",
            ),
            (
                "[[profiles]]\nsource = \"a\"\n  role = \"r\"\n",
                (3, 3),
                "unknown key \"role\" in [[profiles]]; expected one of source, target",
            ),
            (
                "[write]\nmod = \"atomic\"\n",
                (2, 1),
                "unknown key \"mod\" in [write]; expected one of mode, file_mode (did you mean \"mode\"?)",
            ),
            (
                "[refresh]\nmin_remainig = \"5m\"\n",
                (2, 1),
                "unknown key \"min_remainig\" in [refresh]; expected one of min_remaining, token_refresh_before, max_concurrency (did you mean \"min_remaining\"?)",
            ),
            (
                "[container]\ngid = 1\n",
                (2, 1),
                "unknown key \"gid\" in [container]; expected one of dir, path_in_container, uid, share_credentials_file, engine (did you mean \"uid\"?)",
            ),
            (
                "[control]\npath = \"/s\"\n",
                (2, 1),
                "unknown key \"path\" in [control]; expected one of socket",
            ),
            (
                "[logging]\nlevel = 1\n",
                (1, 2),
                "unknown section or key \"logging\" at the top level; expected one of aws, profiles, write, refresh, container, control, notify",
            ),
        ];
        for (text, pos, want) in cases {
            let (line, col, msg) = err(text);
            assert_eq!((line, col), *pos, "{text:?}");
            assert_eq!(msg, *want, "{text:?}");
        }
    }
}
