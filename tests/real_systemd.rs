//! credsync as a service under a real systemd user manager (`tests/tools/with-user-systemd`):
//! `credsync service install` for a fresh test user, the daemon it starts, reload, a crash and
//! `Restart=on-failure`, uninstall; the shell's environment carried into the unit; the sandbox
//! fallback where user namespaces are refused. The fake AWS runs in this process on 127.0.0.1
//! and the service reaches it through the `AWS_ENDPOINT_URL` that install carries.
//!
//! Needs root (to create the test user and run the manager) and systemd. Under CI a missing
//! one fails the test; elsewhere the test is skipped with the reason printed.

use crate::support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant, SystemTime};

use credsync::ini_edit;
use credsync::secret::ExposeSecret;
use support::fake_aws::FakeAws;
use support::{botocore_token_json, credsync_bin, sha1_hex};

const HOUR: Duration = Duration::from_secs(3600);
/// The longest any one command in a session may take (a hung manager fails the test).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether this machine can run the tests: root and systemd. Under CI a missing one panics.
fn can_run(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let systemd = ["/lib/systemd/systemd", "/usr/lib/systemd/systemd"]
        .iter()
        .any(|p| Path::new(p).exists());
    let why = match (root, systemd) {
        (true, true) => return true,
        (false, _) => "it must run as root (it creates a user and starts a user manager)",
        (true, false) => "systemd is not installed (apt-get install systemd)",
    };
    support::skip(test, why);
    false
}

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn run_ok(argv: &[&str]) -> String {
    let out = Command::new(argv[0]).args(&argv[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A user created for one test (home under /home, so the manager and the service can use
/// it), with a copy of the credsync under test in `~/bin`; removed with its home on drop.
struct TestUser {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
    /// Last, so it is released after the user is gone.
    _machine: support::MachineLock,
}

impl TestUser {
    fn new() -> TestUser {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "csvc{}x{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        // useradd refuses while another one holds /etc/passwd's lock (tests run in parallel).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = Command::new("useradd")
                .args(["--create-home", "--shell", "/bin/sh", &name])
                .output()
                .expect("run useradd");
            if out.status.success() {
                break;
            }
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("lock") && Instant::now() < deadline,
                "useradd {name}: {err}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let id = |flag: &str| run_ok(&["id", flag, &name]).trim().parse::<u32>().unwrap();
        let home = PathBuf::from(
            run_ok(&["getent", "passwd", &name])
                .trim()
                .split(':')
                .nth(5)
                .unwrap(),
        );
        let user = TestUser {
            uid: id("-u"),
            gid: id("-g"),
            name,
            home,
            _machine: support::MachineLock::hold(false),
        };
        // The binary under test lives under this crate's target/, which other uids may not
        // reach (e.g. under /root): the service runs a copy.
        let bin = user.home.join("bin/credsync");
        std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
        std::fs::copy(credsync_bin(), &bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        user.chown_home();
        user
    }

    fn bin(&self) -> PathBuf {
        self.home.join("bin/credsync")
    }

    /// Writes `text` to `rel` under the home, owned by the user.
    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.home.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        self.chown_home();
        path
    }

    fn read(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.home.join(rel)).ok()
    }

    fn chown_home(&self) {
        run_ok(&[
            "chown",
            "-R",
            &format!("{}:{}", self.uid, self.gid),
            self.home.to_str().unwrap(),
        ]);
    }

    /// A logged-in sso-session `corp` whose profiles are `names`, served by `fake`.
    fn sso_profiles(&self, fake: &FakeAws, config_rel: &str, names: &[&str]) {
        let mut config = String::from(
            "[sso-session corp]\nsso_start_url = https://fake.awsapps.com/start\n\
             sso_region = us-east-1\n\n",
        );
        for (i, name) in names.iter().enumerate() {
            config += &format!(
                "[profile {name}]\nsso_session = corp\nsso_account_id = {:012}\n\
                 sso_role_name = Dev\nregion = eu-west-1\n\n",
                200_000 + i
            );
        }
        self.write(config_rel, &config);
        let token = format!("token-{}", self.name);
        fake.add_token(&token);
        self.write(
            &format!(".aws/sso/cache/{}.json", sha1_hex("corp")),
            &botocore_token_json(&token, SystemTime::now() + 8 * HOUR, None),
        );
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        // Retried like useradd: another test may hold /etc/passwd's lock.
        let deadline = Instant::now() + Duration::from_secs(30);
        while Command::new("userdel")
            .args(["--remove", "--force", &self.name])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| !s.success())
            && Instant::now() < deadline
            && Path::new(&self.home).exists()
        {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A shell running as the user next to a real user manager: `run` sends one command and
/// returns its exit status and output (stdout and stderr). The manager and everything it
/// started end with the session.
struct Session {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Session {
    fn start(user: &TestUser, extra_env: &[(&str, &str)]) -> Session {
        let mut child = Command::new(repo_file("tests/tools/with-user-systemd"))
            .args([&user.name, "--", "bash", "-s"])
            .envs(extra_env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run tests/tools/with-user-systemd");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut s = Session {
            child,
            stdin,
            lines,
        };
        let (rc, out) = s.run("systemctl --user is-system-running");
        assert!(
            rc == 0 || out.contains("degraded"),
            "the user manager is not running: {out}"
        );
        s
    }

    fn run(&mut self, cmd: &str) -> (i32, String) {
        writeln!(
            self.stdin,
            "{{ {cmd}\n}} </dev/null 2>&1; echo \"@@END $?\""
        )
        .unwrap();
        self.stdin.flush().unwrap();
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let mut out = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => match line.strip_prefix("@@END ") {
                    Some(rc) => return (rc.trim().parse().unwrap(), out),
                    None => {
                        out.push_str(&line);
                        out.push('\n');
                    }
                },
                Err(RecvTimeoutError::Timeout) => {
                    panic!("`{cmd}` did not finish in {COMMAND_TIMEOUT:?}; so far:\n{out}")
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("the session ended during `{cmd}`; so far:\n{out}")
                }
            }
        }
    }

    fn ok(&mut self, cmd: &str) -> String {
        let (rc, out) = self.run(cmd);
        assert_eq!(rc, 0, "`{cmd}` failed:\n{out}");
        out
    }

    /// `credsync service install` by the user's `bin`, reaching `fake` through the
    /// `AWS_ENDPOINT_URL` install carries into the service; its output (it must succeed).
    fn install(&mut self, fake: &FakeAws, bin: &Path) -> String {
        self.ok(&format!(
            "AWS_ENDPOINT_URL={} {} service install",
            fake.url(),
            bin.display()
        ))
    }

    /// `systemctl --user show credsync.service -p KEY` for each key.
    fn show(&mut self, keys: &[&str]) -> Vec<String> {
        let out = self.ok(&format!(
            "systemctl --user show credsync.service -p {}",
            keys.join(",")
        ));
        keys.iter()
            .map(|k| {
                out.lines()
                    .find_map(|l| l.strip_prefix(&format!("{k}=")))
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    }

    /// Polls `cond` against the session until it holds or `timeout` passes.
    fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        mut cond: impl FnMut(&mut Session) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        while !cond(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn status_json(&mut self, bin: &Path) -> Option<serde_json::Value> {
        let (rc, out) = self.run(&format!("{} status --json 2>/dev/null", bin.display()));
        (rc == 0 || rc == 1)
            .then(|| serde_json::from_str(&out).ok())
            .flatten()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "exit 0");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Asserts that `text` has a managed section `target` with what the fake served last for
/// `account`.
fn assert_managed(text: &str, target: &str, fake: &FakeAws, account: &str) {
    let (creds, _) = ini_edit::read_managed(text, target)
        .unwrap_or_else(|| panic!("no managed [{target}] in:\n{text}"));
    let served = fake.last_credentials(account, "Dev").expect("served");
    assert_eq!(creds.access_key_id.expose_secret(), served.access_key_id);
}

#[test]
fn install_reload_crash_and_uninstall_under_a_real_user_manager() {
    if !can_run("install_reload_crash_and_uninstall_under_a_real_user_manager") {
        return;
    }
    let fake = FakeAws::new();
    let user = TestUser::new();
    user.sso_profiles(&fake, ".aws/config", &["dev", "ops"]);
    user.write(
        ".config/credsync/config.toml",
        "[[profiles]]\nsource = \"dev\"\n",
    );
    let bin = user.bin();
    let mut s = Session::start(&user, &[]);

    let install = format!(
        "AWS_ENDPOINT_URL={} {} service install",
        fake.url(),
        bin.display()
    );
    let out = s.ok(&install);
    eprintln!("{install}:\n{out}");
    assert!(
        out.contains("credsync.service is active and ready"),
        "{out}"
    );
    let [active, kind, pid] =
        <[String; 3]>::try_from(s.show(&["ActiveState", "Type", "MainPID"])).unwrap();
    // Type=notify: active only once the daemon sent READY=1.
    assert_eq!((active.as_str(), kind.as_str()), ("active", "notify"));
    let pid: u32 = pid.parse().unwrap();
    assert!(pid > 0);
    // The whole sandbox held: the unit kept its file-system view, and the daemon runs in a user
    // namespace of its own that maps only the user's uid (PrivateUsers=yes).
    assert!(!out.contains("sandbox failed"), "{out}");
    let unit = user.read(".config/systemd/user/credsync.service").unwrap();
    assert!(unit.lines().any(|l| l == "ProtectHome=read-only"), "{unit}");
    let uid_map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    let map: Vec<&str> = uid_map.split_whitespace().collect();
    let uid = user.uid.to_string();
    assert_eq!(
        map,
        [uid.as_str(), uid.as_str(), "1"],
        "uid_map of the daemon"
    );

    // The daemon wrote the managed section and answers status.
    s.wait_until(
        "[dev] in the credentials file",
        20 * Duration::from_secs(1),
        |_| {
            user.read(".aws/credentials")
                .is_some_and(|t| ini_edit::read_managed(&t, "dev").is_some())
        },
    );
    assert_managed(
        &user.read(".aws/credentials").unwrap(),
        "dev",
        &fake,
        "000000200000",
    );
    let status = s.status_json(&bin).expect("credsync status answers");
    assert_eq!(status["daemon"]["pid"], pid);

    // Reload: same process, the new config read (a second profile).
    user.write(
        ".config/credsync/config.toml",
        "[[profiles]]\nsource = \"dev\"\n\n[[profiles]]\nsource = \"ops\"\n",
    );
    s.ok("systemctl --user reload credsync.service");
    s.wait_until(
        "the reloaded config in status",
        Duration::from_secs(20),
        |s| {
            s.status_json(&bin)
                .is_some_and(|v| v["profiles"].as_array().is_some_and(|p| p.len() == 2))
        },
    );
    assert_eq!(
        s.show(&["MainPID"])[0],
        pid.to_string(),
        "reload kept the main pid"
    );
    s.wait_until(
        "[ops] in the credentials file",
        Duration::from_secs(20),
        |_| {
            user.read(".aws/credentials")
                .is_some_and(|t| ini_edit::read_managed(&t, "ops").is_some())
        },
    );

    // A crash: Restart=on-failure brings it back (RestartSec=5), and status answers again.
    s.ok(&format!("kill -9 {pid}"));
    s.wait_until("the restarted daemon", Duration::from_secs(30), |s| {
        let v = s.show(&["ActiveState", "MainPID"]);
        v[0] == "active" && v[1] != "0" && v[1] != pid.to_string()
    });
    let restarts: u32 = s.show(&["NRestarts"])[0].parse().unwrap();
    assert!(restarts >= 1, "NRestarts={restarts}");
    let new_pid: u32 = s.show(&["MainPID"])[0].parse().unwrap();
    s.wait_until(
        "status from the restarted daemon",
        Duration::from_secs(20),
        |s| {
            s.status_json(&bin)
                .is_some_and(|v| v["daemon"]["pid"] == new_pid)
        },
    );

    // Uninstall: stopped, and the unit file gone.
    let out = s.ok(&format!("{} service uninstall", bin.display()));
    assert!(out.contains("removed"), "{out}");
    assert!(
        !user
            .home
            .join(".config/systemd/user/credsync.service")
            .exists()
    );
    assert_eq!(s.show(&["ActiveState"])[0], "inactive");
    let (rc, _) = s.run(&format!("kill -0 {new_pid}"));
    assert_ne!(rc, 0, "the daemon still runs after uninstall");
}

#[test]
fn the_service_manages_what_the_installing_shell_would() {
    if !can_run("the_service_manages_what_the_installing_shell_would") {
        return;
    }
    let fake = FakeAws::new();
    let user = TestUser::new();
    // No config file; the AWS config in a directory whose name needs escaping in a unit.
    let config_rel = ".aws/conf dir 100% \"q\"/config";
    user.sso_profiles(&fake, config_rel, &["legacy", "default"]);
    let home = user.home.display().to_string();
    let vars = [
        ("AWS_PROFILE", "legacy".to_owned()),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            format!("{home}/.aws/credentials-alt"),
        ),
        ("AWS_CONFIG_FILE", format!("{home}/{config_rel}")),
        ("AWS_ENDPOINT_URL", fake.url()),
    ];
    let assignments: Vec<String> = vars
        .iter()
        .map(|(k, v)| format!("{k}={}", shell_quote(v)))
        .collect();
    let bin = user.bin();
    let mut s = Session::start(&user, &[]);

    // `service print` shows the environment the unit will carry.
    let printed = s.ok(&format!(
        "{} {} service print",
        assignments.join(" "),
        bin.display()
    ));
    assert!(
        printed.contains("\nEnvironment=AWS_PROFILE=legacy\n"),
        "{printed}"
    );
    let out = s.ok(&format!(
        "{} {} service install",
        assignments.join(" "),
        bin.display()
    ));
    assert!(out.contains("active and ready"), "{out}");

    s.wait_until(
        "[legacy] in credentials-alt",
        Duration::from_secs(20),
        |_| {
            user.read(".aws/credentials-alt")
                .is_some_and(|t| ini_edit::read_managed(&t, "legacy").is_some())
        },
    );
    let alt = user.read(".aws/credentials-alt").unwrap();
    assert_managed(&alt, "legacy", &fake, "000000200000");
    assert!(
        ini_edit::read_managed(&alt, "default").is_none(),
        "only AWS_PROFILE's profile is managed:\n{alt}"
    );
    assert!(
        user.read(".aws/credentials").is_none(),
        "nothing written to ~/.aws/credentials"
    );

    // The daemon's environment holds exactly the shell's values.
    let pid = s.show(&["MainPID"])[0].clone();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let environ: Vec<String> = environ
        .split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    for (k, v) in &vars {
        let want = format!("{k}={v}");
        assert!(environ.contains(&want), "{want} not in {environ:?}");
    }

    // doctor in the installing shell agrees with the daemon; in a shell without those
    // variables it says what differs and how to re-install.
    let (_, here) = s.run(&format!(
        "{} {} doctor",
        assignments.join(" "),
        bin.display()
    ));
    assert!(
        here.contains("daemon: manages the files and profiles credsync in this shell would"),
        "{here}"
    );
    let (_, bare) = s.run(&format!(
        "AWS_ENDPOINT_URL={} {} doctor",
        fake.url(),
        bin.display()
    ));
    let warn = bare
        .lines()
        .find(|l| l.contains("daemon: manages other things"))
        .unwrap_or_else(|| panic!("no warning in:\n{bare}"));
    for want in [
        format!(
            "credentials file {home}/.aws/credentials-alt (this shell: {home}/.aws/credentials)"
        ),
        "profiles legacy (this shell: default)".to_owned(),
        format!("AWS config file {home}/{config_rel} (this shell: {home}/.aws/config)"),
    ] {
        assert!(warn.contains(&want), "{want} not in {warn}");
    }
    assert!(
        bare.contains("run `credsync service install` from the shell"),
        "{bare}"
    );
    s.ok(&format!("{} service uninstall", bin.display()));
}

/// Install where the unit's sandbox cannot be set up (the manager's environment made so by
/// `knob`): it ends with the service running without the sandbox, and one line saying so.
fn install_falls_back_without_the_sandbox(test: &str, knob: &str, status: &str) {
    if !can_run(test) {
        return;
    }
    let fake = FakeAws::new();
    let user = TestUser::new();
    user.sso_profiles(&fake, ".aws/config", &["default"]);
    let bin = user.bin();
    let mut s = Session::start(&user, &[(knob, "1")]);

    let out = s.install(&fake, &bin);
    eprintln!("{out}");
    let explained: Vec<&str> = out.lines().filter(|l| l.contains("sandbox")).collect();
    assert_eq!(
        explained,
        [format!(
            "the sandbox failed to start on this machine ({status}): \
             credsync.service is rewritten without it and started again"
        )],
        "{out}"
    );
    assert!(
        out.contains("credsync.service is active and ready"),
        "{out}"
    );
    let unit = user.read(".config/systemd/user/credsync.service").unwrap();
    assert!(
        unit.contains(&format!(
            "# No sandbox: it failed to start on this machine ({status})"
        )),
        "{unit}"
    );
    for d in ["PrivateUsers=", "ProtectSystem=", "NoNewPrivileges="] {
        assert!(!unit.lines().any(|l| l.starts_with(d)), "{d} in\n{unit}");
    }
    assert_eq!(s.show(&["ActiveState"])[0], "active");
    s.wait_until("[default] written", Duration::from_secs(20), |_| {
        user.read(".aws/credentials")
            .is_some_and(|t| ini_edit::read_managed(&t, "default").is_some())
    });
    assert!(s.status_json(&bin).is_some(), "status answers");
    s.ok(&format!("{} service uninstall", bin.display()));
}

#[test]
fn where_user_namespaces_are_refused_install_runs_it_without_the_sandbox() {
    // PrivateUsers= cannot create the unit's user namespace: systemd's USER step fails.
    install_falls_back_without_the_sandbox(
        "where_user_namespaces_are_refused_install_runs_it_without_the_sandbox",
        "WITH_USER_SYSTEMD_NO_USERNS",
        "status=217/USER",
    );
}

#[test]
fn where_the_mount_namespace_cannot_be_set_up_install_runs_it_without_the_sandbox() {
    // No /run/systemd/unit-root (PID 1 never made one): the NAMESPACE step fails.
    install_falls_back_without_the_sandbox(
        "where_the_mount_namespace_cannot_be_set_up_install_runs_it_without_the_sandbox",
        "WITH_USER_SYSTEMD_NO_UNIT_ROOT",
        "status=226/NAMESPACE",
    );
}

#[test]
fn with_a_container_uid_the_service_grants_the_acl() {
    if !can_run("with_a_container_uid_the_service_grants_the_acl") {
        return;
    }
    // A user namespace maps only the user's uid, and an ACL entry for another uid cannot be
    // written inside one: with `[container] uid` the unit has no file-system view, and the
    // service writes the view with its ACL.
    let fake = FakeAws::new();
    let user = TestUser::new();
    user.sso_profiles(&fake, ".aws/config", &["dev"]);
    user.write(
        ".config/credsync/config.toml",
        "[[profiles]]\nsource = \"dev\"\n\n[container]\nuid = 50000\n",
    );
    let bin = user.bin();
    let mut s = Session::start(&user, &[]);
    let out = s.install(&fake, &bin);
    assert!(
        out.contains("active and ready") && !out.contains("sandbox failed"),
        "{out}"
    );
    let unit = user.read(".config/systemd/user/credsync.service").unwrap();
    assert!(unit.lines().any(|l| l == "NoNewPrivileges=yes"), "{unit}");
    assert!(
        !unit.lines().any(|l| l.starts_with("PrivateUsers=")),
        "{unit}"
    );
    let view = user.home.join(".aws/credsync/dev.json");
    s.wait_until(
        "the view's ACL for uid 50000",
        Duration::from_secs(20),
        |s| {
            let (rc, acl) = s.run(&format!("getfacl -n {}", view.display()));
            rc == 0 && acl.lines().any(|l| l.starts_with("user:50000:r"))
        },
    );
    s.ok(&format!("{} service uninstall", bin.display()));
}

#[test]
fn a_service_that_cannot_start_is_an_error_with_its_status() {
    if !can_run("a_service_that_cannot_start_is_an_error_with_its_status") {
        return;
    }
    let fake = FakeAws::new();
    let user = TestUser::new();
    user.sso_profiles(&fake, ".aws/config", &["default"]);
    // A valid config whose socket the daemon cannot create: it exits at start, which no
    // sandbox explains.
    user.write(
        ".config/credsync/config.toml",
        "[control]\nsocket = \"/proc/credsync/credsync.sock\"\n",
    );
    let bin = user.bin();
    let mut s = Session::start(&user, &[]);
    let (rc, out) = s.run(&format!("{} service install", bin.display()));
    eprintln!("{out}");
    assert_ne!(rc, 0, "install must fail:\n{out}");
    assert!(out.contains("credsync.service did not start"), "{out}");
    assert!(out.contains("result exit-code"), "{out}");
    // The last lines of `systemctl --user status`.
    assert!(out.contains("Loaded: loaded"), "{out}");
    assert!(!out.contains("active and ready"), "{out}");
    assert!(out.contains("status=1/FAILURE"), "{out}");
    // (Where the sandbox itself fails first, install retries without it, then reports this.)
    assert!(
        out.contains("ran: systemctl --user start credsync.service (it failed)"),
        "{out}"
    );
    assert!(
        !out.lines()
            .any(|l| l.starts_with("ran:") && !l.ends_with("(it failed)") && l.contains("start")),
        "{out}"
    );
}

#[test]
fn a_config_error_stops_the_service_after_one_start() {
    if !can_run("a_config_error_stops_the_service_after_one_start") {
        return;
    }
    let fake = FakeAws::new();
    let user = TestUser::new();
    user.sso_profiles(&fake, ".aws/config", &["default"]);
    let config = ".config/credsync/config.toml";
    user.write(config, "[[profiles]]\nsource = \"default\"\n");
    let bin = user.bin();
    let mut s = Session::start(&user, &[]);
    let out = s.install(&fake, &bin);
    assert!(out.contains("active and ready"), "{out}");

    // A config the daemon refuses: it exits 2 at start. RestartPreventExitStatus=2 makes
    // systemd leave the unit failed at once; a restart it meant to make would show as
    // `activating (auto-restart)` for RestartSec first (systemd.service(5), Restart=).
    user.write(
        config,
        "[[profiles]]\nsource = \"default\"\nno_such_key = 1\n",
    );
    let (rc, out) = s.run("systemctl --user restart credsync.service");
    assert_ne!(rc, 0, "the start must fail:\n{out}");
    let keys = [
        "ActiveState",
        "SubState",
        "Result",
        "ExecMainCode",
        "ExecMainStatus",
        "NRestarts",
    ];
    let want = ["failed", "failed", "exit-code", "1", "2", "0"];
    assert_eq!(s.show(&keys), want, "{keys:?}");
    // Fixed and started again, it runs.
    user.write(config, "[[profiles]]\nsource = \"default\"\n");
    s.ok("systemctl --user start credsync.service");
    assert_eq!(s.show(&["ActiveState"])[0], "active");
    s.ok(&format!("{} service uninstall", bin.display()));
}
