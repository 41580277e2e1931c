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
//! - doctor in a distribution gives the idle-shutdown row and the notifications row, and no
//!   mode or ACL advice for a credentials file on a Windows drive.
//! - `service install` with systemd works as on Linux and ends with the idle-shutdown fact;
//!   without systemd it installs nothing and says how to start credsync.
//!
//! (The poll that notices a Windows-side write inotify misses is a unit test of the watcher:
//! src/watch.rs, `a_windows_side_write_the_native_watcher_misses_is_polled_within_its_period`.)

use crate::support;

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use credsync::config::NotifyConfig;
use credsync::doctor::{self, Check, FileFacts, Level, WslConfig};
use credsync::mounts::MountTable;
use credsync::platform::{Platform, Wsl};
use credsync::service::{self, Sandbox, ServiceError, ServiceSpec, Target};
use credsync::write::{self, Fs, Outcome, RENAME_PAUSE, RENAME_RETRY_FOR, WriteOptions};
use support::fake_programs::{FakeSystemd, Scripted};

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
    assert_eq!(
        windows.opened(),
        std::slice::from_ref(&url),
        "{}",
        windows.log()
    );
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
        HeldByWindows {
            mounts: drive_c(dir, windows),
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

// ---------------------------------------------------------------------------------------------
// doctor in a WSL distribution.

/// A distribution with systemd and interop, as `Wsl::detect` reports one.
fn distribution(systemd: bool) -> Wsl {
    Wsl {
        distro: Some("Ubuntu".into()),
        systemd,
        interop: true,
    }
}

/// A mount table that puts `dir` on the `C:` drive (`9p`), or on ext4.
fn drive_c(dir: &Path, windows: bool) -> MountTable {
    let fstype = if windows { "9p" } else { "ext4" };
    MountTable::parse(&format!(
        "/dev/sdc / ext4 rw,relatime 0 0\nC:\\134 {} {fstype} rw,noatime,aname=drvfs;path=C:\\134 0 0\n",
        fs::canonicalize(dir).unwrap().display()
    ))
}

/// The rows doctor gives, in the order it gives them, about a credentials file (`path`, read
/// as it is) and the machine: the file, what Astro's uid can read of it, WSL, notifications.
fn doctor_rows(path: &Path, mounts: &MountTable, wsl: &Wsl, wslconfig: &WslConfig) -> Vec<Check> {
    let facts = FileFacts::of(path, mounts);
    let text = fs::read_to_string(path).unwrap();
    let file = credsync::acl::perms(path);
    let dir = credsync::acl::perms(path.parent().unwrap());
    let powershell = mounts
        .windows_drive('C')
        .unwrap_or(Path::new("/mnt/c"))
        .join("Windows/System32/WindowsPowerShell/v1.0/powershell.exe");
    let mut rows = vec![doctor::check_credentials_file(path, &facts, None)];
    rows.extend(doctor::check_credentials_exposure(
        path,
        &text,
        &facts,
        file.as_ref(),
        dir.as_ref(),
        50000,
        "Astro's container user",
    ));
    rows.extend(doctor::check_wsl(wsl, wslconfig));
    rows.extend(doctor::check_notifications(
        Some(Platform::Linux),
        Some(wsl),
        mounts,
        &NotifyConfig::default(),
        &|p: &Path| p == powershell,
    ));
    rows
}

/// A Windows user's `.aws/credentials` with long-lived keys, readable by all (as drvfs shows a
/// file without `metadata`: its mode is the mount's, `chmod` does not change it).
fn windows_credentials() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let aws = dir.path().join("Users/ann/.aws");
    fs::create_dir_all(&aws).unwrap();
    let path = aws.join("credentials");
    fs::write(
        &path,
        "[mine]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = s\n",
    )
    .unwrap();
    for p in [
        dir.path(),
        &dir.path().join("Users"),
        &dir.path().join("Users/ann"),
        &aws,
    ] {
        fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    (dir, path)
}

fn about(rows: &[Check], needle: &str) -> Vec<String> {
    doctor::render(rows)
        .split("\n")
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

#[test]
fn doctor_in_wsl_gives_the_idle_and_notification_rows_and_no_mode_or_acl_advice_on_a_windows_drive()
{
    let (dir, path) = windows_credentials();
    let mounts = drive_c(dir.path(), true);
    let wslconfig = WslConfig::Missing {
        path: dir.path().join("Users/ann/.wslconfig"),
    };
    let rows = doctor_rows(&path, &mounts, &distribution(true), &wslconfig);
    let report = doctor::render(&rows);

    // The idle shutdown: a warning, with what keeps the distribution running.
    let idle: Vec<&Check> = rows.iter().filter(|c| c.level == Level::Warn).collect();
    assert_eq!(idle.len(), 1, "{report}");
    assert!(
        report.contains("WSL stops this distribution about 15 seconds after"),
        "{report}"
    );
    assert!(
        report.contains(".wslconfig does not exist") || report.contains("there is no"),
        "{report}"
    );
    assert!(
        report.contains("instanceIdleTimeout=-1") && report.contains("vmIdleTimeout=-1"),
        "{report}"
    );
    // The notifications: Windows toasts, by the PowerShell on the C: drive.
    assert_eq!(about(&rows, "notifications:").len(), 1, "{report}");
    assert!(
        report.contains("notifications: shown as Windows toasts"),
        "{report}"
    );
    // The credentials file: no mode, no chmod, no setfacl, no "uid 50000 can read it".
    assert!(report.contains("on a Windows drive"), "{report}");
    for advice in ["chmod", "setfacl", "mode 0", "can read it"] {
        assert!(!report.contains(advice), "{advice}:\n{report}");
    }
    assert_eq!(rows.len(), 3, "{report}");

    // The same file on a Linux file system gets both pieces of advice: the test can tell.
    let linux = doctor_rows(
        &path,
        &drive_c(dir.path(), false),
        &distribution(true),
        &wslconfig,
    );
    let linux_report = doctor::render(&linux);
    assert!(linux_report.contains("chmod 0600"), "{linux_report}");
    assert!(
        linux_report.contains("uid 50000 (Astro's container user) can read it"),
        "{linux_report}"
    );
}

#[test]
fn doctor_in_wsl_is_content_when_wslconfig_keeps_the_distribution_running() {
    let (dir, path) = windows_credentials();
    let mounts = drive_c(dir.path(), true);
    let wslconfig = WslConfig::Read {
        path: dir.path().join("Users/ann/.wslconfig"),
        text: "[wsl2]\nmemory=8GB\n\n[general]\ninstanceIdleTimeout=-1\n".into(),
    };
    let rows = doctor_rows(&path, &mounts, &distribution(true), &wslconfig);
    let report = doctor::render(&rows);
    assert!(rows.iter().all(|c| c.level == Level::Ok), "{report}");
    assert!(
        report.contains("WSL: instanceIdleTimeout=-1 in "),
        "{report}"
    );
    // Without systemd: a row that says how to start credsync.
    let rows = doctor_rows(&path, &mounts, &distribution(false), &wslconfig);
    let report = doctor::render(&rows);
    assert!(report.contains("runs without systemd"), "{report}");
    assert!(
        report.contains("[boot]") && report.contains("systemd=true"),
        "{report}"
    );
}

// ---------------------------------------------------------------------------------------------
// service install in a WSL distribution.

fn wsl_target(home: &Path, systemd: bool) -> Target {
    Target {
        platform: Platform::Linux,
        home: home.to_owned(),
        xdg_config_home: None,
        uid: 1000,
        packaged_unit: None,
        launchd_poll: Duration::ZERO,
        wsl: Some(distribution(systemd)),
    }
}

fn service_spec() -> ServiceSpec {
    ServiceSpec {
        exe: PathBuf::from("/usr/local/bin/credsync"),
        config: None,
        extra_rw_paths: Vec::new(),
        env: Vec::new(),
        sandbox: Sandbox::Full,
    }
}

#[test]
fn service_install_in_wsl_with_systemd_is_linuxs_and_ends_with_the_idle_fact() {
    let home = tempfile::tempdir().unwrap();
    let t = wsl_target(home.path(), true);
    let (runner, systemd) = FakeSystemd::new(t.service_file()).runner();
    let report = service::install(&service_spec(), &t, true, &runner).unwrap();
    assert!(systemd.lock().unwrap().active);
    let text = report.to_string();
    for step in FakeSystemd::STARTED {
        assert!(text.contains(step), "{step}:\n{text}");
    }
    let note = text
        .split("note: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no note:\n{text}"));
    assert!(
        note.starts_with("WSL stops this distribution about 15 seconds"),
        "{text}"
    );
    assert!(note.contains("instanceIdleTimeout=-1"), "{text}");
    // Outside WSL, the same install has no such note.
    let linux = Target {
        wsl: None,
        ..wsl_target(home.path(), true)
    };
    let (runner, _) = FakeSystemd::new(linux.service_file()).runner();
    let text = service::install(&service_spec(), &linux, true, &runner)
        .unwrap()
        .to_string();
    assert!(!text.contains("note:"), "{text}");
}

#[test]
fn service_install_in_wsl_without_systemd_installs_nothing_and_says_how_to_start() {
    let home = tempfile::tempdir().unwrap();
    let t = wsl_target(home.path(), false);
    let nothing_runs = Scripted::new(|argv| panic!("nothing may run here: {argv:?}"));
    let e = service::install(&service_spec(), &t, true, &nothing_runs).unwrap_err();
    assert!(matches!(e, ServiceError::WslWithoutSystemd { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("[boot]\nsystemd=true"), "{text}");
    assert!(text.contains("wsl.exe --shutdown"), "{text}");
    assert!(text.contains("credsync daemon"), "{text}");
    assert!(!t.service_file().exists());
    // --no-start writes the file only, and says the same.
    let r = service::install(&service_spec(), &t, false, &nothing_runs).unwrap();
    assert!(t.service_file().exists());
    let text = r.to_string();
    assert!(
        text.contains("runs without systemd") && text.contains("systemd=true"),
        "{text}"
    );
    assert!(!text.contains("systemctl --user daemon-reload"), "{text}");
}
