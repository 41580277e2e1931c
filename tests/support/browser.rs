//! A stand-in for the user's browser in sign-in tests: a `$BROWSER` script that, like a real
//! opener, returns at once and in the background follows the page it was given (redirects
//! included) the way a browser would, with Python's `urllib` (`/usr/bin/python3`, present on
//! every machine the suite runs on). What it fetched is logged beside it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const FOLLOW: &str = r#"
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1], timeout=60) as r:
        print("followed", r.status, r.geturl().split("?")[0])
except urllib.error.HTTPError as e:
    print("followed", e.code, e.geturl().split("?")[0])
"#;

/// A `$BROWSER` script in `dir` that follows its URL after `delay_secs` in the background.
pub struct Browser {
    pub script: PathBuf,
    pub log: PathBuf,
}

impl Browser {
    pub fn new(dir: &Path, delay_secs: u32) -> Browser {
        let follow = dir.join("follow.py");
        fs::write(&follow, FOLLOW).expect("write follow.py");
        let python = if Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3"
        } else {
            "python3"
        };
        let log = dir.join("browser.log");
        let script = dir.join("browser.sh");
        fs::write(
            &script,
            format!(
                "#!/bin/sh\n( sleep {delay_secs}; {python} '{}' \"$1\" ) >>'{}' 2>&1 &\n",
                follow.display(),
                log.display()
            ),
        )
        .expect("write browser.sh");
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod browser.sh");
        Browser { script, log }
    }

    /// What the script logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}
