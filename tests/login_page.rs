//! The page a browser shows after `credsync login`, rendered by a real headless Chromium that
//! goes through the whole sign-in (the fake's authorize page, its redirect, credsync's
//! listener): signed in, a forged `state`, and the authorize endpoint's error with a hostile
//! description, which the page shows as text and never as markup.

use crate::support;

use std::time::Duration;

use support::FakeAws;
use support::chromium::{Chromium, chromium, skip};

/// The visible text of a dumped DOM: no style sheet, no tags, entities decoded, whitespace
/// collapsed.
fn text(dom: &str) -> String {
    let body = match (dom.find("</style>"), dom.rfind("</html>")) {
        (Some(from), Some(to)) => &dom[from + "</style>".len()..to],
        _ => dom,
    };
    let mut out = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    let out = out
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&");
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `credsync login --sso-session corp` with Chromium as the browser: (exit code, output, DOM).
fn login_in_chromium(fake: &FakeAws, test: &str) -> Option<(Option<i32>, String, String)> {
    let Some(binary) = chromium() else {
        skip(test);
        return None;
    };
    let (mut env, _) = crate::login::setup(fake, 0);
    let browser = Chromium::new(env.root(), &binary);
    env.env("BROWSER", &browser.script);
    let (code, out) = crate::login::login(&env, &["login", "--sso-session", "corp"]);
    let dom = browser.dom(Duration::from_secs(60));
    Some((code, out, dom))
}

#[test]
fn chromium_shows_the_signed_in_page() {
    let fake = FakeAws::new();
    let Some((code, out, dom)) = login_in_chromium(&fake, "chromium_shows_the_signed_in_page")
    else {
        return;
    };
    assert_eq!(code, Some(0), "{out}");
    assert!(dom.contains("<title>Signed in - credsync</title>"), "{dom}");
    let text = text(&dom);
    assert!(
        text.contains("Signed in credsync has the answer from AWS and finishes the sign-in in your terminal. You can close this tab."),
        "{text}"
    );
    assert_eq!(fake.count("CreateToken"), 1);
}

#[test]
fn chromium_shows_a_forged_state_as_not_used_with_the_command() {
    let fake = FakeAws::new();
    fake.set_authorize_state_override(Some("forged-state"));
    let Some((code, out, dom)) = login_in_chromium(
        &fake,
        "chromium_shows_a_forged_state_as_not_used_with_the_command",
    ) else {
        return;
    };
    assert_eq!(code, Some(1), "{out}");
    let text = text(&dom);
    for want in [
        "Sign-in not used",
        "so credsync did not use it and stopped. Nothing was saved.",
        "To sign in, run this in your terminal: credsync login --sso-session corp",
    ] {
        assert!(text.contains(want), "{want:?} not in {text}");
    }
    assert_eq!(fake.count("CreateToken"), 0);
}

#[test]
fn chromium_shows_the_authorize_error_as_text_never_as_markup() {
    let hostile = "<img src=x onerror=\"document.title='pwned'\"><script>document.title='pwned'</script>Denied & \"quoted\"";
    let fake = FakeAws::new();
    fake.set_authorize_error("access_denied", hostile);
    let Some((code, out, dom)) = login_in_chromium(
        &fake,
        "chromium_shows_the_authorize_error_as_text_never_as_markup",
    ) else {
        return;
    };
    assert_eq!(code, Some(1), "{out}");
    // The terminal gets the error code and the description, never a code or a token.
    assert!(
        out.contains("the sign-in was refused in the browser (access_denied: <img src=x"),
        "{out}"
    );
    // Chromium parsed no element out of the description: no image, no script ran.
    assert!(!dom.contains("<img") && !dom.contains("<script"), "{dom}");
    assert!(
        dom.contains("<title>Sign-in failed - credsync</title>"),
        "{dom}"
    );
    let text = text(&dom);
    for want in [
        "Sign-in failed",
        "AWS did not sign you in. The sign-in page answered with the error access_denied .",
        hostile,
        "Nothing was saved. To try again, run this in your terminal: credsync login --sso-session corp",
    ] {
        assert!(text.contains(want), "{want:?} not in {text}");
    }
    assert_eq!(fake.count("CreateToken"), 0);
}
