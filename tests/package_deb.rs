//! The Debian package, installed on this machine for real: `dpkg -i`, what `dpkg -L` lists,
//! then a test user with a credsync config enables the packaged user unit under a real systemd
//! user manager (`tests/tools/with-user-systemd`) and it writes the credentials from the fake
//! AWS; `credsync service install` then uses that unit instead of writing its own; then
//! `dpkg -r` removes every file.
//!
//! The .deb comes from `scripts/deb` (built from the debug binary), which `scripts/test` runs
//! and names in `CREDSYNC_TEST_DEB`. The test needs root, dpkg, useradd and systemd: under CI
//! each missing piece is a failure; outside CI the test prints SKIPPED. It changes the machine
//! (a package, a user) and undoes it; a lock file keeps two runs from overlapping.

// Debian packages, dpkg and systemd are Linux's.
#![cfg(target_os = "linux")]

use crate::support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use credsync::ini_edit;
use credsync::secret::ExposeSecret;
use support::fake_aws::FakeAws;
use support::{botocore_token_json, sha1_hex};

const WITH_USER_SYSTEMD: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/with-user-systemd");

/// What the package must put where (as `dpkg -L` lists them).
const PACKAGED: &[&str] = &[
    "/usr/bin/credsync",
    "/usr/lib/systemd/user/credsync.service",
    "/usr/share/bash-completion/completions/credsync",
    "/usr/share/zsh/vendor-completions/_credsync",
    "/usr/share/fish/vendor_completions.d/credsync.fish",
    "/usr/share/man/man1/credsync.1.gz",
    "/usr/share/man/man1/credsync-service.1.gz",
    "/usr/share/doc/credsync/config.example.toml",
];

/// Skips (outside CI) or fails (under CI) with `why`.
fn unavailable(why: &str) {
    support::skip("the package test", why);
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn installed() -> bool {
    run(Command::new("dpkg-query").args(["-W", "-f=${Status}", "credsync"]))
        .stdout
        .starts_with(b"install ok installed")
}

/// Holds the machine-wide lock, and on drop undoes what the test did (package, user).
struct Machine {
    _lock: support::MachineLock,
    user: String,
}

impl Machine {
    fn lock(user: &str) -> Machine {
        Machine {
            _lock: support::MachineLock::hold(true),
            user: user.to_owned(),
        }
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        if installed() {
            let _ = run(Command::new("dpkg").args(["-r", "credsync"]));
        }
        let _ = run(Command::new("userdel").args(["-r", &self.user]));
    }
}

/// The test user's files: an sso-session profile `dev`, a valid token, a credsync config
/// managing `dev`, and the drop-in that points the packaged unit at the fake AWS (what a user
/// does to give one user service its environment).
fn set_up_home(home: &Path, fake: &FakeAws, token: &str) {
    let write = |rel: &str, text: &str| {
        let path = home.join(rel);
        fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
        fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    };
    write(
        ".aws/config",
        "[sso-session corp]\nsso_start_url = https://fake.awsapps.com/start\n\
         sso_region = us-east-1\n\n[profile dev]\nsso_session = corp\n\
         sso_account_id = 111122223333\nsso_role_name = Dev\nregion = eu-west-1\n",
    );
    fake.add_token(token);
    write(
        &format!(".aws/sso/cache/{}.json", sha1_hex("corp")),
        &botocore_token_json(
            token,
            SystemTime::now() + Duration::from_secs(8 * 3600),
            None,
        ),
    );
    write(
        ".config/credsync/config.toml",
        "[[profiles]]\nsource = \"dev\"\n",
    );
    write(
        ".config/systemd/user/credsync.service.d/override.conf",
        &format!("[Service]\nEnvironment=AWS_ENDPOINT_URL={}\n", fake.url()),
    );
}

#[test]
fn the_deb_installs_runs_as_a_user_service_and_removes_cleanly() {
    let Some(deb) = std::env::var_os("CREDSYNC_TEST_DEB").map(PathBuf::from) else {
        return unavailable(
            "CREDSYNC_TEST_DEB is not set (scripts/test builds the .deb with scripts/deb)",
        );
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return unavailable("dpkg -i needs root");
    }
    for tool in ["dpkg", "useradd", "systemctl", "unshare", "setpriv"] {
        if !run(Command::new("sh").args(["-c", &format!("command -v {tool}")]))
            .status
            .success()
        {
            return unavailable(&format!("{tool} is not installed"));
        }
    }
    let user = format!("credsync-pkg-{}", std::process::id());
    let home = PathBuf::from(format!("/home/{user}"));
    let machine = Machine::lock(&user);
    assert!(
        !installed(),
        "a credsync package is already installed on this machine; remove it (dpkg -r credsync) \
         before running this test"
    );

    // dpkg -i, and what dpkg -L lists.
    ok(Command::new("dpkg").arg("-i").arg(&deb));
    let listed = ok(Command::new("dpkg").args(["-L", "credsync"]));
    for path in PACKAGED {
        assert!(
            listed.lines().any(|l| l == *path),
            "dpkg -L does not list {path}:\n{listed}"
        );
        assert!(Path::new(path).is_file(), "{path} is not installed");
    }
    let mode = fs::metadata("/usr/bin/credsync")
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    let unit = fs::read_to_string("/usr/lib/systemd/user/credsync.service").expect("unit");
    assert!(
        unit.contains("\nExecStart=/usr/bin/credsync daemon\n"),
        "{unit}"
    );
    assert!(unit.contains("\nType=notify\n"), "{unit}");
    let packaged_unit = ok(Command::new("/usr/bin/credsync").args([
        "service",
        "print",
        "--packaged",
        "/usr/bin/credsync",
    ]));
    assert_eq!(
        unit, packaged_unit,
        "the packaged unit is not what the binary renders"
    );
    let control = ok(Command::new("dpkg-deb").arg("--info").arg(&deb));
    for script in ["preinst", "postinst", "prerm", "postrm"] {
        assert!(
            !control.contains(script),
            "the package has a {script}: nothing may start for users on install:\n{control}"
        );
    }
    if !run(Command::new("sh").args(["-c", "command -v man"]))
        .status
        .success()
    {
        support::skip(
            "man -w credsync",
            "man is not installed (scripts/test installs man-db)",
        );
    } else {
        let found = ok(Command::new("man").args(["-w", "credsync"]));
        assert_eq!(
            found.trim(),
            "/usr/share/man/man1/credsync.1.gz",
            "man -w credsync"
        );
    }
    let completion = ok(Command::new("bash").args([
        "-c",
        "source /usr/share/bash-completion/completions/credsync && complete -p credsync",
    ]));
    assert!(completion.trim_end().ends_with(" credsync"), "{completion}");

    // A user enables the packaged unit under a real user manager.
    ok(Command::new("useradd")
        .args(["--create-home", "--home-dir"])
        .arg(&home)
        .args(["--shell", "/bin/sh", &user]));
    let fake = FakeAws::new();
    set_up_home(&home, &fake, "pkg-token");
    ok(Command::new("chown")
        .args(["-R", &format!("{user}:{user}")])
        .arg(&home));
    let script = r#"
fail() { echo "FAILED: $*"; systemctl --user status credsync.service --no-pager -n 30; exit 1; }
systemctl --user enable --now credsync.service || fail "enable --now"
echo "== show"
systemctl --user show credsync.service -p ActiveState -p SubState -p Type -p FragmentPath -p DropInPaths -p UnitFileState
echo "== wait"
for _ in $(seq 200); do grep -q '^\[dev\]' ~/.aws/credentials 2>/dev/null && break; sleep 0.1; done
echo "== status"
credsync status || fail "credsync status"
echo "== wants"
readlink ~/.config/systemd/user/default.target.wants/credsync.service
systemctl --user disable --now credsync.service || fail "disable --now"
echo "== after"
systemctl --user show credsync.service -p ActiveState
echo "== install"
credsync service install || fail "credsync service install"
echo "== installed"
systemctl --user show credsync.service -p ActiveState -p FragmentPath
ls ~/.config/systemd/user/credsync.service 2>&1
echo "== doctor"
credsync doctor 2>&1 | grep "service:"
echo "== refused"
CREDSYNC_LOG=debug credsync service install 2>&1 && fail "install with another environment"
echo "== uninstall"
credsync service uninstall || fail "credsync service uninstall"
systemctl --user show credsync.service -p ActiveState
"#;
    let out = run(Command::new(WITH_USER_SYSTEMD).args([&user, "--", "sh", "-c", script]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let all = format!("{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the user service run failed:\n{all}");
    let section = |name: &str| {
        text.split(&format!("== {name}\n"))
            .nth(1)
            .and_then(|s| s.split("\n== ").next())
            .unwrap_or_else(|| panic!("no {name} section in:\n{all}"))
            .to_owned()
    };
    let show = section("show");
    for line in [
        "ActiveState=active",
        "SubState=running",
        "Type=notify",
        "FragmentPath=/usr/lib/systemd/user/credsync.service",
        "UnitFileState=enabled",
    ] {
        assert!(show.lines().any(|l| l == line), "{line} missing:\n{all}");
    }
    assert!(
        show.contains(".config/systemd/user/credsync.service.d/override.conf"),
        "the drop-in is not applied:\n{all}"
    );
    assert_eq!(
        section("wants").trim(),
        "/usr/lib/systemd/user/credsync.service",
        "{all}"
    );
    assert!(section("status").contains("dev"), "{all}");
    assert!(section("after").contains("ActiveState=inactive"), "{all}");
    // `credsync service install` enables the packaged unit and writes no second one; with an
    // environment the unit does not have, it says what to add; uninstall stops it.
    assert!(
        section("install").contains("credsync.service is active and ready"),
        "{all}"
    );
    let after_install = section("installed");
    assert!(after_install.contains("ActiveState=active"), "{all}");
    assert!(
        after_install.contains("FragmentPath=/usr/lib/systemd/user/credsync.service"),
        "{all}"
    );
    assert!(after_install.contains("No such file or directory"), "{all}");
    assert!(
        section("doctor").contains(
            "service: installed (/usr/lib/systemd/user/credsync.service), runs /usr/bin/credsync"
        ),
        "{all}"
    );
    let refused = section("refused");
    assert!(
        refused.contains("[Service]\nEnvironment=CREDSYNC_LOG=debug\n"),
        "{all}"
    );
    assert!(
        section("uninstall").contains("ActiveState=inactive"),
        "{all}"
    );

    let creds = fs::read_to_string(home.join(".aws/credentials")).expect("credentials written");
    let served = fake
        .last_credentials("111122223333", "Dev")
        .expect("the fake served credentials");
    let (written, _) = ini_edit::read_managed(&creds, "dev")
        .unwrap_or_else(|| panic!("no managed [dev] in:\n{creds}"));
    assert_eq!(written.access_key_id.expose_secret(), served.access_key_id);

    // dpkg -r removes every file it installed, and the package is gone.
    ok(Command::new("dpkg").args(["-r", "credsync"]));
    assert!(!installed(), "still installed after dpkg -r");
    for path in listed.lines().filter(|l| !l.is_empty()) {
        let p = Path::new(path);
        if p.is_dir() {
            continue; // shared directories (/usr/bin, ...) stay
        }
        assert!(!p.exists(), "{path} is left after dpkg -r");
    }
    assert!(
        !Path::new("/usr/share/doc/credsync").exists(),
        "/usr/share/doc/credsync is left after dpkg -r"
    );
    drop(machine);
}
