//! Opening a URL in the user's browser: `$BROWSER` when set, else the platform's opener
//! (`xdg-open` on Linux and the BSDs, `open` on macOS, the Windows browser in a WSL
//! distribution). Which one is decided where the environment is read (the command); this module
//! only runs it.
//!
//! `$BROWSER` is read as Python's `webbrowser` and `xdg-open` read it: commands separated by
//! `:`, tried in turn; in each, `%s` stands for the URL, else the URL is added as the last
//! argument. Words are split at whitespace; nothing goes through a shell. The opener is started
//! through a [`Runner`] and left running (a browser may not return until it is closed):
//! credsync does not wait for it, and the URL is always printed too.
//!
//! In WSL ([`Opener::Windows`]) the browser is Windows' default one. WSLg sets `DISPLAY`, but
//! `xdg-open` is often missing there and would open a Linux browser at best. wslu's `wslview`
//! is tried first, then `cmd.exe /c start "" URL`; each hands the URL to Windows and returns, so
//! each is waited for, and the page counts as opened only when it exits with 0. `explorer.exe`
//! is not used: it opens a file window instead of a URL with a query (microsoft/WSL#3832) and
//! exits with 1 when it works. How the URL survives `cmd.exe` is [`cmd_word`].

use std::time::Duration;

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

use crate::process::Runner;

/// How the sign-in page reaches a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opener {
    /// The value of `$BROWSER`.
    Browser(String),
    /// The platform's opener program.
    System(&'static str),
    /// In a WSL distribution: Windows' default browser, through `wslview`, else `cmd.exe`.
    Windows,
    /// Print the URL only (`--no-browser`, or nothing to open it with).
    PrintOnly,
}

impl Opener {
    /// The opener for this platform: `browser_var` (`$BROWSER`) when set and not empty, else
    /// the system's (in a WSL distribution, `wsl`, Windows' browser), else (`no_browser`) none.
    pub fn choose(browser_var: Option<&str>, no_browser: bool, wsl: bool) -> Opener {
        if no_browser {
            return Opener::PrintOnly;
        }
        match browser_var.map(str::trim).filter(|b| !b.is_empty()) {
            Some(b) => Opener::Browser(b.to_owned()),
            None if wsl => Opener::Windows,
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
            Opener::Windows => windows_commands(url),
        };
        let mut failures = Vec::new();
        for argv in commands {
            let started = match self {
                // Both return once Windows has the URL: their exit status says whether it did.
                Opener::Windows => runner
                    .run(&argv, WINDOWS_OPEN_TIMEOUT)
                    .and_then(|ran| ran.check(&argv))
                    .map(|_| ()),
                _ => runner.start(&argv),
            };
            match started {
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

/// How long `wslview` or `cmd.exe` may take to hand the URL to Windows (starting PowerShell,
/// which `wslview` runs, can take seconds).
const WINDOWS_OPEN_TIMEOUT: Duration = Duration::from_secs(20);

/// The argument vectors that open `url` in Windows' browser from WSL: `wslview URL`, else
/// `cmd.exe /c start "" URL` (the empty title first, or `start` takes a quoted URL as the
/// window's title), the URL as [`cmd_word`] makes it.
fn windows_commands(url: &str) -> Vec<Vec<String>> {
    let url = encode_unsafe(url);
    vec![
        vec!["wslview".to_owned(), url.clone()],
        vec![
            "cmd.exe".to_owned(),
            "/c".to_owned(),
            "start".to_owned(),
            String::new(),
            cmd_word(&url),
        ],
    ]
}

/// What is percent-encoded in a URL handed to Windows: what RFC 3986 never allows unencoded in a
/// URL (controls, space, `"<>\^`{|}`, non-ASCII). Encoding these changes no URL's meaning; it
/// leaves no space or quote, so WSL passes the word as it is (below), and none of the characters
/// PowerShell (`wslview`) or `cmd.exe` read specially but `&`, `(`, `)`, `%`.
const UNSAFE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

fn encode_unsafe(url: &str) -> String {
    utf8_percent_encode(url, UNSAFE).to_string()
}

/// `url` (already [`encode_unsafe`]d) as the last word of `cmd.exe /c start "" WORD`, so that
/// `start` gets exactly `url`:
/// - WSL turns the argument vector into a Windows command line by quoting only the words that
///   are empty or hold a space, tab, newline or `"`, the rest passed as they are
///   (microsoft/WSL src/windows/common/interop.cpp, `FormatCommandLine`). The URL has none of
///   those, so `cmd.exe` sees it unquoted (microsoft/WSL#4981: from WSL, `^&` in an unquoted URL
///   reaches the browser as `&`; quoted, the `^` would stay).
/// - `cmd.exe` then expands `%NAME%` from its environment (on its command line an undefined
///   name stays as it is), and after that reads `^x` as a plain `x` and `&`, `|`, `<`, `>`,
///   `(`, `)` outside quotes as operators (`cmd /?`; the order of the two steps is why `^%` does
///   not protect a `%`, and `%^` does: no variable's name starts with `^`).
///
/// So each `&`, `(` and `)` gets a `^` before it and each `%` one after it.
pub(crate) fn cmd_word(url: &str) -> String {
    let mut out = String::with_capacity(url.len() + 8);
    for c in url.chars() {
        match c {
            '&' | '(' | ')' => {
                out.push('^');
                out.push(c);
            }
            '%' => out.push_str("%^"),
            _ => out.push(c),
        }
    }
    out
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
        assert_eq!(Opener::choose(Some("x"), true, false), Opener::PrintOnly);
        assert_eq!(
            Opener::choose(Some("x"), false, false),
            Opener::Browser("x".into())
        );
        assert!(matches!(
            Opener::choose(Some(" "), false, false),
            Opener::System(_)
        ));
        assert!(matches!(
            Opener::choose(None, false, false),
            Opener::System(_)
        ));
        // WSL: Windows' browser, unless $BROWSER says otherwise or none is wanted.
        assert_eq!(Opener::choose(None, false, true), Opener::Windows);
        assert_eq!(
            Opener::choose(Some("wslview"), false, true),
            Opener::Browser("wslview".into())
        );
        assert_eq!(Opener::choose(None, true, true), Opener::PrintOnly);
    }

    #[test]
    fn cmd_gets_carets_before_operators_and_after_percents() {
        let url = "https://x/authorize?a=1&redirect_uri=http%3A%2F%2F127.0.0.1%3A5%2Fcb&s=(x)";
        assert_eq!(
            cmd_word(url),
            "https://x/authorize?a=1^&redirect_uri=http%^3A%^2F%^2F127.0.0.1%^3A5%^2Fcb^&s=^(x^)"
        );
        // What Windows must never see: a space, a quote, a caret or pipe of the URL's own.
        assert_eq!(
            encode_unsafe("https://x/a b?q=\"|^<>`{}\u{e9}"),
            "https://x/a%20b?q=%22%7C%5E%3C%3E%60%7B%7D%C3%A9"
        );
        let argv = &windows_commands("https://x/?a=1&b=2")[1];
        assert_eq!(argv, &["cmd.exe", "/c", "start", "", "https://x/?a=1^&b=2"]);
    }

    #[test]
    fn on_wsl_a_page_is_opened_only_when_the_opener_says_so() {
        use crate::process::Finished;
        use crate::process::tests::{Scripted, not_found};
        // wslview there and working: the only one run.
        let ok = Scripted::new(|_: &[String]| Ok(Finished::exit(0, "", "")));
        assert_eq!(Opener::Windows.open(&ok, "https://x/?a=1&b=2"), Ok(()));
        assert_eq!(ok.programs(), ["wslview"]);
        // wslview missing: cmd.exe.
        let cmd = Scripted::new(|argv: &[String]| match argv[0].as_str() {
            "cmd.exe" => Ok(Finished::exit(0, "", "")),
            _ => Err(not_found(argv)),
        });
        assert_eq!(Opener::Windows.open(&cmd, "u"), Ok(()));
        assert_eq!(cmd.programs(), ["wslview", "cmd.exe"]);
        // Both ran and failed (no interop, say): not opened, and why.
        let failing = Scripted::new(|_: &[String]| {
            Ok(Finished::exit(1, "", "WSL Interoperability is disabled.\n"))
        });
        let e = Opener::Windows.open(&failing, "u").unwrap_err();
        assert_eq!(
            e,
            "wslview failed (exit status 1): WSL Interoperability is disabled.; \
             cmd.exe failed (exit status 1): WSL Interoperability is disabled."
        );
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
