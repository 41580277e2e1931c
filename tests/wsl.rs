//! credsync in a WSL distribution, for Astro run from Windows: the environment of a
//! distribution is injected (its variables, a mount table, a root of its own), and the Windows
//! side is played by fakes that behave as the real programs do (tests/support/windows.rs).
//!
//! - `credsync login` opens the sign-in page in Windows' browser: through `wslview`, else
//!   `cmd.exe`, whose quoting the fake checks step by step; an opener that fails is reported as
//!   not opened.

use crate::support;

use std::time::Duration;

use support::fake_aws::FakeAws;
use support::windows::WindowsSide;
use support::{Daemon, TestEnv};

// ---------------------------------------------------------------------------------------------
// Sign-in: Windows' browser.

/// A HOME signed in to nothing, in a WSL distribution (`WSL_DISTRO_NAME`, no `DISPLAY`, no
/// `$BROWSER`), with `windows`' programs first on `PATH`.
fn wsl_login_env(fake: &FakeAws, windows: &WindowsSide) -> TestEnv {
    let (mut env, _) = crate::login::setup(fake, 0);
    env.env_remove("BROWSER")
        .env_remove("DISPLAY")
        .env("WSL_DISTRO_NAME", "Ubuntu")
        .env("PATH", windows.path());
    env
}

/// The sign-in page `credsync login` printed.
fn printed_url(out: &str) -> String {
    out.lines()
        .map(str::trim)
        .find(|l| l.starts_with("http") && l.contains("/authorize?"))
        .unwrap_or_else(|| panic!("no sign-in page printed:\n{out}"))
        .to_owned()
}

#[test]
fn login_in_wsl_hands_the_page_to_wslview() {
    let fake = FakeAws::new();
    let dir = tempfile::tempdir().unwrap();
    let windows = WindowsSide::new(dir.path()).with_wslview(0).with_cmd();
    let env = wsl_login_env(&fake, &windows);
    let (code, out) = crate::login::login(&env, &["login"]);
    assert_eq!(code, Some(0), "{out}\n--- windows\n{}", windows.log());
    assert!(out.contains("signed in until"), "{out}");
    assert!(out.contains("A browser should open"), "{out}");
    // wslview got the page as it was printed, and cmd.exe was not needed.
    assert_eq!(windows.opened(), [printed_url(&out)], "{}", windows.log());
    assert!(
        !windows.log().contains("command line:"),
        "{}",
        windows.log()
    );
}

#[test]
fn login_in_wsl_without_wslview_passes_the_page_through_cmd_exe_whole() {
    let fake = FakeAws::new();
    let dir = tempfile::tempdir().unwrap();
    let windows = WindowsSide::new(dir.path()).with_cmd();
    let env = wsl_login_env(&fake, &windows);
    let (code, out) = crate::login::login(&env, &["login"]);
    assert_eq!(code, Some(0), "{out}\n--- windows\n{}", windows.log());
    let url = printed_url(&out);
    // The page has several parameters and percent-encoded ones (the redirect URI): `start` got
    // it whole, after WSL's command line and cmd.exe's expansion and carets.
    assert!(
        url.matches('&').count() >= 5 && url.contains("%3A"),
        "{url}"
    );
    assert_eq!(windows.opened(), [url.clone()], "{}", windows.log());
    let log = windows.log();
    assert!(log.contains("command line: /c start \"\" http://"), "{log}");
    assert!(log.contains("^&") && log.contains("%^3A"), "{log}");
    assert!(!log.contains("not a command"), "{log}");
    // The browser followed it: the authorize request had every parameter.
    let authorize = fake.requests_for("Authorize");
    assert_eq!(authorize.len(), 1);
    assert!(authorize[0].query_param("code_challenge").is_some());
    assert!(authorize[0].query_param("redirect_uri").is_some());
}

#[test]
fn login_in_wsl_reports_a_failing_opener_as_not_opened() {
    let fake = FakeAws::new();
    let dir = tempfile::tempdir().unwrap();
    let windows = WindowsSide::new(dir.path()).with_wslview(1);
    let env = wsl_login_env(&fake, &windows);
    let mut p = Daemon::spawn(env.cmd(["login"]), env.root());
    assert!(
        p.wait_for_log("No browser could be opened", Duration::from_secs(30)),
        "{}\n--- windows\n{}",
        p.logs(),
        windows.log()
    );
    assert!(!p.logs().contains("A browser should open"), "{}", p.logs());
    assert_eq!(windows.log().lines().count(), 1, "{}", windows.log());
    assert!(
        windows.log().starts_with("wslview http://"),
        "{}",
        windows.log()
    );
    // The page is printed: opened by hand, the sign-in completes.
    let url = printed_url(&p.logs());
    let opened = std::process::Command::new(&windows.browser.script)
        .arg(&url)
        .status()
        .unwrap();
    assert!(opened.success());
    let status = p.wait_exit(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "{}", p.logs());
}
