//! Opening a URL in the user's browser: `$BROWSER` when set, else the platform's opener
//! (`xdg-open` on Linux and the BSDs, `open` on macOS). Which one is decided where the
//! environment is read (the command); this module only runs it.
//!
//! `$BROWSER` is read as Python's `webbrowser` and `xdg-open` read it: commands separated by
//! `:`, tried in turn; in each, `%s` stands for the URL, else the URL is added as the last
//! argument. Words are split at whitespace; nothing goes through a shell. The opener is started
//! through a [`Runner`] and left running (a browser may not return until it is closed):
//! credsync does not wait for it, and the URL is always printed too.

use crate::process::Runner;

/// How the sign-in page reaches a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opener {
    /// The value of `$BROWSER`.
    Browser(String),
    /// The platform's opener program.
    System(&'static str),
    /// Print the URL only (`--no-browser`, or nothing to open it with).
    PrintOnly,
}

impl Opener {
    /// The opener for this platform: `browser_var` (`$BROWSER`) when set and not empty, else
    /// the system's, else (`no_browser`) none.
    pub fn choose(browser_var: Option<&str>, no_browser: bool) -> Opener {
        if no_browser {
            return Opener::PrintOnly;
        }
        match browser_var.map(str::trim).filter(|b| !b.is_empty()) {
            Some(b) => Opener::Browser(b.to_owned()),
            None if cfg!(target_os = "macos") => Opener::System("open"),
            None => Opener::System("xdg-open"),
        }
    }

    /// Starts the browser on `url` with `runner`, trying each command in turn until one
    /// starts. `Err` says why none started (the caller tells the user to open the printed URL).
    pub(crate) fn open(&self, runner: &dyn Runner, url: &str) -> Result<(), String> {
        let commands = match self {
            Opener::PrintOnly => return Ok(()),
            Opener::System(program) => vec![vec![(*program).to_owned(), url.to_owned()]],
            Opener::Browser(value) => browser_commands(value, url),
        };
        let mut failures = Vec::new();
        for argv in commands {
            match runner.start(&argv) {
                Ok(()) => return Ok(()),
                Err(e) => failures.push(e.to_string()),
            }
        }
        Err(if failures.is_empty() {
            "no browser command".to_owned()
        } else {
            failures.join("; ")
        })
    }
}

/// The argument vectors `$BROWSER = value` gives for `url`.
fn browser_commands(value: &str, url: &str) -> Vec<Vec<String>> {
    value
        .split(':')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| {
            let mut words: Vec<String> = c.split_whitespace().map(str::to_owned).collect();
            if words.iter().any(|w| w.contains("%s")) {
                for w in &mut words {
                    *w = w.replace("%s", url);
                }
            } else {
                words.push(url.to_owned());
            }
            words
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browser_is_a_colon_list_with_percent_s_or_the_url_last() {
        let u = "https://x/authorize?a=1";
        assert_eq!(
            browser_commands("firefox --new-tab:w3m %s", u),
            vec![
                vec!["firefox".to_owned(), "--new-tab".into(), u.into()],
                vec!["w3m".to_owned(), u.into()],
            ]
        );
        assert_eq!(browser_commands(" : ", u), Vec::<Vec<String>>::new());
    }

    #[test]
    fn the_choice_follows_the_flags_and_the_variable() {
        assert_eq!(Opener::choose(Some("x"), true), Opener::PrintOnly);
        assert_eq!(
            Opener::choose(Some("x"), false),
            Opener::Browser("x".into())
        );
        assert!(matches!(
            Opener::choose(Some(" "), false),
            Opener::System(_)
        ));
        assert!(matches!(Opener::choose(None, false), Opener::System(_)));
    }

    #[test]
    fn a_missing_program_is_reported_and_the_next_is_tried() {
        use crate::process::Finished;
        use crate::process::tests::{Scripted, not_found};
        let runner = Scripted::new(|argv: &[String]| match argv[0].as_str() {
            "w3m" => Ok(Finished::exit(0, "", "")),
            _ => Err(not_found(argv)),
        });
        let opener = Opener::Browser("no-such-browser --new-tab:w3m %s".into());
        assert_eq!(opener.open(&runner, "https://x/a"), Ok(()));
        let calls = runner.calls.lock().unwrap().clone();
        assert_eq!(
            calls,
            [
                vec!["no-such-browser", "--new-tab", "https://x/a"],
                vec!["w3m", "https://x/a"]
            ]
        );
        let nothing = Scripted::new(|argv: &[String]| Err(not_found(argv)));
        let e = Opener::System("xdg-open").open(&nothing, "u").unwrap_err();
        assert_eq!(e, "xdg-open is not installed");
        assert_eq!(Opener::PrintOnly.open(&nothing, "u"), Ok(()));
        assert!(
            nothing.programs() == ["xdg-open"],
            "print-only starts nothing"
        );
    }
}
