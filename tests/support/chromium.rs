//! A real browser for the sign-in page tests: Debian's `chromium`, headless, as `$BROWSER`.
//! The script returns at once (as a real opener does) and in the background loads the page it
//! was given, follows the redirects to credsync's loopback listener, and dumps the DOM it
//! rendered there (`--dump-dom`) beside it. One browser launch per page.
//!
//! `scripts/test` installs the package when it can; without it a test prints a loud `SKIPPED`
//! line and returns, except under CI ([`super::in_ci`]), where it fails.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The Chromium binary: `CREDSYNC_TEST_CHROMIUM` when set, else `chromium` on `PATH`. Panics
/// under CI when there is none; otherwise `None`, and the caller should [`skip`] and return.
pub fn chromium() -> Option<PathBuf> {
    let found = match std::env::var_os("CREDSYNC_TEST_CHROMIUM").filter(|p| !p.is_empty()) {
        Some(p) => Some(PathBuf::from(p)),
        None => std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|dir| dir.join("chromium"))
            .find(|p| p.is_file()),
    };
    if found.is_none() && super::in_ci() {
        panic!(
            "chromium is not installed for the sign-in page tests; run scripts/test, which \
             installs Debian's chromium package (or set CREDSYNC_TEST_CHROMIUM)"
        );
    }
    found
}

/// Skips a test that needs Chromium; fails under CI.
pub fn skip(test: &str) {
    super::skip(
        test,
        "chromium is not installed (apt-get install chromium); run scripts/test",
    );
}

/// A `$BROWSER` script that renders its URL in headless Chromium.
pub struct Chromium {
    pub script: PathBuf,
    /// The rendered DOM, once Chromium is done (written whole: renamed into place).
    dom: PathBuf,
    /// Chromium's own output.
    log: PathBuf,
}

impl Chromium {
    /// The script in `dir`, for the browser `chromium`. Chromium keeps its profile in `dir`
    /// (never the user's), and runs without its sandbox, which needs a user namespace or a
    /// setuid helper that containers and root lack.
    pub fn new(dir: &Path, chromium: &Path) -> Chromium {
        let (dom, log) = (dir.join("dom.html"), dir.join("chromium.log"));
        let script = dir.join("chromium.sh");
        fs::write(
            &script,
            format!(
                "#!/bin/sh\n( '{chromium}' --headless --no-sandbox --disable-gpu --no-first-run \
                 --user-data-dir='{profile}' --dump-dom \"$1\" >'{dom}.part' 2>>'{log}'; \
                 mv '{dom}.part' '{dom}' ) &\n",
                chromium = chromium.display(),
                profile = dir.join("chromium-profile").display(),
                dom = dom.display(),
                log = log.display(),
            ),
        )
        .expect("write chromium.sh");
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod chromium.sh");
        Chromium { script, dom, log }
    }

    /// The DOM Chromium rendered, once it has written it (at most `timeout`).
    pub fn dom(&self, timeout: Duration) -> String {
        let done = super::wait_for(|| self.dom.exists(), timeout);
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        assert!(done, "chromium rendered nothing within {timeout:?}:\n{log}");
        fs::read_to_string(&self.dom).expect("read the DOM")
    }
}
