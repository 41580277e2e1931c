//! Build script: puts the git commit into `credsync --version` when building from a checkout.
//!
//! Sets `CREDSYNC_BUILD_COMMIT` to ` (commit <12 hex>)`, or to nothing when the sources are not
//! the top of a git checkout (a crate or tarball, even one unpacked inside another repository)
//! or `git` is missing. It reruns only when the checked-out commit can have changed: when
//! `HEAD`, the branch it points to, or `packed-refs` change, never on a mere edit of a source
//! file (Cargo rebuilds for those anyway).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let commit = git_commit(&manifest_dir);
    let suffix = commit.map(|c| format!(" (commit {c})")).unwrap_or_default();
    println!("cargo:rustc-env=CREDSYNC_BUILD_COMMIT={suffix}");
}

/// The short commit of `HEAD`, after telling Cargo which git files decide it.
fn git_commit(dir: &Path) -> Option<String> {
    let toplevel = PathBuf::from(git(dir, &["rev-parse", "--show-toplevel"])?);
    if toplevel.canonicalize().ok()? != dir.canonicalize().ok()? {
        return None;
    }
    let git_dir = PathBuf::from(git(dir, &["rev-parse", "--absolute-git-dir"])?);
    let common_dir = git(dir, &["rev-parse", "--git-common-dir"])
        .map(|d| absolute_from(dir, &d))
        .unwrap_or_else(|| git_dir.clone());
    // A path that does not exist would make Cargo rerun this script on every build.
    let mut watched = vec![git_dir.join("HEAD"), common_dir.join("packed-refs")];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        watched.push(common_dir.join(branch));
    }
    for path in watched.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    git(dir, &["rev-parse", "--short=12", "HEAD"])
}

fn absolute_from(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_owned()
    } else {
        base.join(p)
    }
}

/// Runs `git ARGS` in `dir`; its trimmed stdout when it succeeded with some.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    // A build script, not credsync: it runs git directly.
    #[allow(clippy::disallowed_methods)]
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (out.status.success() && !text.is_empty()).then(|| text.to_owned())
}
