//! The real AWS CLI v2 (`aws`), for tests that prove credsync and the CLI share one sign-in.
//!
//! PyPI carries only the v1 line, so `scripts/test` installs the v2 wheel that lies beside the
//! repository (`../shared/vendor/awscli-*.whl`) into a venv of its own, `<repo>/.venv-awscli`
//! (its pins, urllib3 among them, would fight boto3's in `.venv`), and exports its `aws` as
//! `CREDSYNC_TEST_AWS`. Without it a test prints a loud `SKIPPED` line and returns, except
//! under CI, where a missing AWS CLI v2 is a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The `aws` of the AWS CLI v2, if installed; panics under CI when it is not.
pub fn aws_cli() -> Option<PathBuf> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let mut candidates = Vec::new();
        if let Some(p) = std::env::var_os("CREDSYNC_TEST_AWS").filter(|p| !p.is_empty()) {
            candidates.push(PathBuf::from(p));
        }
        candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-awscli/bin/aws"));
        candidates.into_iter().find(|p| is_v2(p))
    });
    if found.is_none() && super::in_ci() {
        panic!(
            "the AWS CLI v2 is not installed for the tests (looked at $CREDSYNC_TEST_AWS and \
             {}/.venv-awscli/bin/aws); run scripts/test, which installs it from \
             $CREDSYNC_AWSCLI_WHEEL or ../shared/vendor/",
            env!("CARGO_MANIFEST_DIR")
        );
    }
    found.clone()
}

/// Skips a test that needs the AWS CLI v2; fails under CI.
pub fn skip(test: &str) {
    super::skip(test, "the AWS CLI v2 is not installed; run scripts/test");
}

fn is_v2(aws: &Path) -> bool {
    Command::new(aws)
        .arg("--version")
        .env_clear()
        .output()
        .is_ok_and(|o| {
            o.status.success() && String::from_utf8_lossy(&o.stdout).starts_with("aws-cli/2.")
        })
}

/// `aws ARGS` with a clean environment: `HOME=home`, PATH, `NO_PROXY`, IMDS off, no pager,
/// then `env`. Panics when the CLI is unavailable (check `aws_cli()` first).
pub fn aws(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let bin = aws_cli().expect("aws_cli() is None: check it and skip before running aws");
    let mut cmd = super::python::clean_command(bin);
    cmd.args(args).env("HOME", home).env("AWS_PAGER", "");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("failed to run aws")
}
