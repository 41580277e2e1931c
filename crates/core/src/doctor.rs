//! `credsync doctor`'s pure part: a check's row ([`Check`]: its [`Level`], what was found and
//! how to fix it), the report's text, and the checks that are functions of the facts the edge
//! gathered (parsed files, the daemon's status, `now`). Reading the files, asking the daemon,
//! looking at processes and the environment is `credsync::doctor`, at the edge, which re-exports
//! these names.

use std::fmt;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_indents_fixes() {
        let text = render(&[Check::ok("a"), Check::fail("b", "one\n  - two")]);
        assert_eq!(
            text,
            "ok    a\nfail  b\n      fix: one\n             - two\n"
        );
    }
}
