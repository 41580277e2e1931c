//! credsync in a WSL distribution, for Astro run from Windows: the environment of a
//! distribution is injected (its variables, a mount table, a root of its own), and the Windows
//! side is played by fakes that behave as the real programs do (tests/support/windows.rs).
//!
//! - `credsync login` opens the sign-in page in Windows' browser: through `wslview`, else
//!   `cmd.exe`, whose quoting the fake checks step by step; an opener that fails is reported as
//!   not opened.
//! - A credentials file on a Windows drive (a mount table that says `9p`) whose rename a
//!   Windows program refuses (a fault at the writer's rename: a Linux lock cannot make a rename
//!   fail) is written within the retry bound, or in place after it, and never left cut short.

use crate::support;

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use credsync::mounts::MountTable;
use credsync::write::{self, Fs, Outcome, RENAME_PAUSE, RENAME_RETRY_FOR, WriteOptions};

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

// ---------------------------------------------------------------------------------------------
// Writes on a Windows drive.

/// The writer's file-system calls on a Windows drive where a Windows program holds the target
/// open for the first `refusals` renames (`u32::MAX`: for good). Windows refuses to replace a
/// file opened without `FILE_SHARE_DELETE`, and WSL reports it as `EACCES` (microsoft/WSL#12897);
/// the file itself is not touched. Time is the pauses asked for, added up, never slept.
struct HeldByWindows {
    mounts: MountTable,
    target: PathBuf,
    /// The bytes the target must hold whole while a rename is refused.
    old: Vec<u8>,
    refusals: u32,
    /// What the Windows program appends to the target while it holds it, at the first refusal.
    appends: Option<&'static str>,
    renames: Mutex<u32>,
    slept: Mutex<Duration>,
}

impl HeldByWindows {
    /// `dir` on a Windows drive (`9p`, as WSL 2 mounts `C:\`), or on ext4 when `windows` is false.
    fn new(dir: &Path, target: &Path, refusals: u32, windows: bool) -> HeldByWindows {
        let fstype = if windows { "9p" } else { "ext4" };
        let table = format!(
            "/dev/sdc / ext4 rw,relatime 0 0\nC:\\134 {} {fstype} rw,noatime,aname=drvfs;path=C:\\134 0 0\n",
            fs::canonicalize(dir).unwrap().display()
        );
        HeldByWindows {
            mounts: MountTable::parse(&table),
            target: target.to_owned(),
            old: fs::read(target).unwrap(),
            refusals,
            appends: None,
            renames: Mutex::new(0),
            slept: Mutex::new(Duration::ZERO),
        }
    }

    fn renames(&self) -> u32 {
        *self.renames.lock().unwrap()
    }

    fn slept(&self) -> Duration {
        *self.slept.lock().unwrap()
    }
}

impl Fs for HeldByWindows {
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut n = self.renames.lock().unwrap();
        *n += 1;
        if *n <= self.refusals {
            // Refused: the target is the old file, whole (and what the Windows program added).
            let mut expected = self.old.clone();
            if *n > 1 {
                expected.extend(self.appends.unwrap_or_default().as_bytes());
            }
            assert_eq!(
                fs::read(&self.target).unwrap(),
                expected,
                "the target changed"
            );
            if *n == 1
                && let Some(more) = self.appends
            {
                let mut f = fs::OpenOptions::new()
                    .append(true)
                    .open(&self.target)
                    .unwrap();
                io::Write::write_all(&mut f, more.as_bytes()).unwrap();
            }
            return Err(io::Error::from_raw_os_error(libc::EACCES));
        }
        fs::rename(from, to)
    }

    fn sleep(&self, pause: Duration) {
        *self.slept.lock().unwrap() += pause;
    }

    fn mounts(&self) -> MountTable {
        self.mounts.clone()
    }
}

const OLD: &str = "# my keys\n[mine]\naws_access_key_id = AKIAOLD\n\n[dev]\naws_access_key_id = ASIAOLD\naws_secret_access_key = old\n";
const NEW: &str = "# my keys\n[mine]\naws_access_key_id = AKIAOLD\n\n[dev]\naws_access_key_id = ASIANEW\naws_secret_access_key = new-and-longer\n";

/// A credentials file holding [`OLD`] in a fresh directory.
fn credentials_file() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials");
    fs::write(&path, OLD).unwrap();
    (dir, path)
}

fn write_new(fs: &HeldByWindows, path: &Path) -> Result<Outcome, write::WriteError> {
    write::update_with(fs, path, &WriteOptions::default(), |_| {
        Ok(Some(NEW.as_bytes().to_vec()))
    })
}

/// Nothing but the credentials file in `dir`: no temp file left.
fn only_the_file(dir: &Path) {
    let names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["credentials"]);
}

#[test]
fn on_a_windows_drive_a_refused_rename_is_tried_again_within_the_bound() {
    let (dir, path) = credentials_file();
    let before = fs::metadata(&path).unwrap().ino();
    // The Windows program lets go after a few tries.
    let held = HeldByWindows::new(dir.path(), &path, 3, true);
    assert_eq!(write_new(&held, &path).unwrap(), Outcome::Written);
    assert_eq!(fs::read_to_string(&path).unwrap(), NEW);
    assert_eq!(held.renames(), 4);
    assert_eq!(held.slept(), 3 * RENAME_PAUSE);
    assert!(held.slept() <= RENAME_RETRY_FOR);
    // Replaced by the rename: a new inode.
    assert_ne!(fs::metadata(&path).unwrap().ino(), before);
    only_the_file(dir.path());
}

#[test]
fn on_a_windows_drive_a_file_held_for_good_is_rewritten_in_place_after_the_bound() {
    let (dir, path) = credentials_file();
    let before = fs::metadata(&path).unwrap().ino();
    let held = HeldByWindows::new(dir.path(), &path, u32::MAX, true);
    assert_eq!(write_new(&held, &path).unwrap(), Outcome::Written);
    // Whole, in the same inode (the Windows program's handle sees it), and no later than the
    // bound: every try refused, one pause between two tries.
    assert_eq!(fs::read_to_string(&path).unwrap(), NEW);
    assert_eq!(fs::metadata(&path).unwrap().ino(), before);
    assert_eq!(held.slept(), RENAME_RETRY_FOR);
    let tries = 1 + (RENAME_RETRY_FOR.as_millis() / RENAME_PAUSE.as_millis()) as u32;
    assert_eq!(held.renames(), tries);
    only_the_file(dir.path());
}

#[test]
fn off_a_windows_drive_a_refused_rename_is_an_error_at_once_and_the_file_is_untouched() {
    let (dir, path) = credentials_file();
    let held = HeldByWindows::new(dir.path(), &path, u32::MAX, false);
    let e = write_new(&held, &path).unwrap_err();
    assert!(e.to_string().contains("Permission denied"), "{e}");
    assert_eq!(held.renames(), 1);
    assert_eq!(held.slept(), Duration::ZERO);
    assert_eq!(fs::read_to_string(&path).unwrap(), OLD);
    only_the_file(dir.path());
}

#[test]
fn on_a_windows_drive_a_write_made_while_the_rename_waits_is_merged_again() {
    let (dir, path) = credentials_file();
    let mut held = HeldByWindows::new(dir.path(), &path, 2, true);
    held.appends = Some("[windows]\nregion = eu-west-1\n");
    let mut seen = Vec::new();
    let outcome = write::update_with(&held, &path, &WriteOptions::default(), |old| {
        let old = String::from_utf8(old.unwrap().to_vec()).unwrap();
        seen.push(old.clone());
        Ok(Some(format!("{old}[added]\n").into_bytes()))
    });
    assert_eq!(outcome.unwrap(), Outcome::Written);
    assert_eq!(seen.len(), 2, "edited again on the new content");
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        format!("{OLD}[windows]\nregion = eu-west-1\n[added]\n")
    );
    only_the_file(dir.path());
}
