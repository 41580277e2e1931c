//! The service files credsync installs, checked by the tools that read them: systemd's own
//! `systemd-analyze verify --user` for the unit, Python's plistlib for the LaunchAgent; and
//! install / uninstall into a temporary HOME, against fakes of `systemctl --user` and
//! `launchctl` that answer as the real ones do (a refused sandbox, a daemon that exits, no user
//! manager, an agent already loaded).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use credsync::process::{Finished, Runner};
use credsync::service::{
    self, FileOutcome, Platform, Sandbox, ServiceSpec, Target, render_launchd_plist,
    render_systemd_unit,
};

use crate::support::fake_programs::{FakeLaunchd, FakeSystemd, Scripted, not_found};

fn spec_with(exe: &Path, config: Option<&Path>, extra: &[PathBuf]) -> ServiceSpec {
    ServiceSpec {
        exe: exe.to_owned(),
        config: config.map(Path::to_owned),
        extra_rw_paths: extra.to_vec(),
        env: Vec::new(),
        sandbox: Sandbox::Full,
    }
}

/// Whether `tool` is installed; under CI a missing tool fails the test instead of skipping it.
fn have(tool: &str, test: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        let why = format!("{tool} is not installed (apt-get install systemd)");
        crate::support::skip(test, &why);
    }
    found
}

/// An executable stub at `path` (systemd-analyze checks that ExecStart exists).
fn stub_exe(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Splits a systemd command line back into words: double quotes with C escapes, `%%` and
/// `$$` undone. Enough of systemd's syntax to read back what credsync writes.
fn systemd_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else { break };
        let mut word = String::new();
        if first == '"' {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => word.push(chars.next().unwrap()),
                    c => word.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                word.push(c);
            }
        }
        words.push(word.replace("%%", "%").replace("$$", "$"));
    }
    words
}

fn verify(unit_dir: &Path, unit: &str, runtime: &Path) -> std::process::Output {
    let file = unit_dir.join("credsync.service");
    std::fs::create_dir_all(unit_dir).unwrap();
    std::fs::write(&file, unit).unwrap();
    Command::new("systemd-analyze")
        .args(["verify", "--user"])
        .arg(&file)
        .env("XDG_RUNTIME_DIR", runtime)
        .output()
        .expect("run systemd-analyze")
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    if !have("systemd-analyze", "the_unit_passes_systemd_analyze_verify") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let runtime = tmp.path().join("run");
    std::fs::create_dir(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    // A path that needs every kind of escaping systemd knows.
    // (systemd refuses quotes and backslashes in the executable's path; arguments may have them.)
    let exe = tmp.path().join("my tools & 100% $HOME/credsync");
    stub_exe(&exe);
    let config = tmp.path().join("conf \"dir\" \\ $USER/credsync 50%.toml");
    let extra = vec![PathBuf::from("/srv/shared aws"), tmp.path().join("cache")];

    let mut spec = spec_with(&exe, Some(&config), &extra);
    // Environment values with what needs escaping (a `$` stays literal: systemd does not
    // expand variables in Environment=).
    spec.env = vec![
        (
            "AWS_CONFIG_FILE".to_owned(),
            "/home/u/my aws/100% \"q\" \\ $HOME/config".to_owned(),
        ),
        ("AWS_PROFILE".to_owned(), "legacy".to_owned()),
    ];
    let unit = render_systemd_unit(&spec);
    let out = verify(&tmp.path().join("units"), &unit, &runtime);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}\n{unit}"
    );
    assert!(
        stderr.trim().is_empty(),
        "systemd-analyze warned:\n{stderr}\n{unit}"
    );

    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let want = [
        exe.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "daemon",
    ];
    assert_eq!(systemd_words(exec), want);
    let rw = unit
        .lines()
        .find_map(|l| l.strip_prefix("ReadWritePaths="))
        .expect("ReadWritePaths");
    let want_rw = [
        "-%h/.aws",
        "-%t",
        "-/srv/shared aws",
        &format!("-{}", extra[1].display()),
    ];
    assert_eq!(systemd_words(rw), want_rw);
    let env: Vec<String> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("Environment="))
        .flat_map(systemd_words)
        .collect();
    assert_eq!(
        env,
        [
            "AWS_CONFIG_FILE=/home/u/my aws/100% \"q\" \\ $HOME/config",
            "AWS_PROFILE=legacy",
            "CREDSYNC_LOG=info"
        ]
    );

    // Every sandbox level is a unit systemd accepts.
    for sandbox in [
        Sandbox::NoNamespaces("[container] uid = 50000 needs ACLs".to_owned()),
        Sandbox::Off("status=226/NAMESPACE".to_owned()),
    ] {
        let unit = render_systemd_unit(&ServiceSpec {
            sandbox,
            ..spec.clone()
        });
        let out = verify(&tmp.path().join("units-sandbox"), &unit, &runtime);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "systemd-analyze verify:\n{stderr}\n{unit}"
        );
    }

    // The check has teeth: a unit whose binary does not exist fails verification.
    let missing = render_systemd_unit(&spec_with(&tmp.path().join("nowhere/credsync"), None, &[]));
    let out = verify(&tmp.path().join("units2"), &missing, &runtime);
    assert!(
        !out.status.success(),
        "verify accepted a missing ExecStart binary"
    );
}

#[test]
fn the_unit_says_what_the_service_needs() {
    let unit = render_systemd_unit(&spec_with(Path::new("/usr/bin/credsync"), None, &[]));
    let lines: Vec<&str> = unit.lines().collect();
    for want in [
        "Type=notify",
        "ExecStart=/usr/bin/credsync daemon",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "RestartSec=5",
        "RestartPreventExitStatus=2",
        "Environment=CREDSYNC_LOG=info",
        "NoNewPrivileges=yes",
        "PrivateUsers=yes",
        "ProtectSystem=strict",
        "ProtectHome=read-only",
        "ReadWritePaths=-%h/.aws -%t",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "MemoryDenyWriteExecute=yes",
        "SystemCallArchitectures=native",
        "WantedBy=default.target",
    ] {
        assert!(lines.contains(&want), "{want:?} missing from\n{unit}");
    }
}

const PLIST_TO_JSON: &str = r#"
import json, plistlib, sys
print(json.dumps(plistlib.loads(sys.stdin.buffer.read())))
"#;

#[test]
fn the_plist_parses_with_the_keys_launchd_needs() {
    if !have(
        "/usr/bin/python3",
        "the_plist_parses_with_the_keys_launchd_needs",
    ) {
        return;
    }
    let home = Path::new("/Users/Jo & Al <dev>");
    let exe = Path::new("/Applications/Tools & Co/credsync's bin/credsync");
    let config = home.join("Library/Application Support/credsync/config \"1\".toml");
    let mut spec = spec_with(exe, Some(&config), &[]);
    spec.env = vec![
        ("AWS_PROFILE".to_owned(), "legacy & <co>".to_owned()),
        ("CREDSYNC_LOG".to_owned(), "debug".to_owned()),
    ];
    let plist = render_launchd_plist(&spec, home);

    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", PLIST_TO_JSON])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(plist.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "plistlib: {}\n{plist}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    assert_eq!(v["Label"], "com.credsync.agent");
    assert_eq!(
        v["ProgramArguments"],
        serde_json::json!([
            exe.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "daemon",
            "--launchd"
        ])
    );
    assert_eq!(v["RunAtLoad"], true);
    assert_eq!(v["KeepAlive"]["SuccessfulExit"], false);
    let log = "/Users/Jo & Al <dev>/Library/Logs/credsync/credsync.log";
    assert_eq!(v["StandardOutPath"], log);
    assert_eq!(v["StandardErrorPath"], log);
    assert_eq!(
        v["EnvironmentVariables"],
        serde_json::json!({
            "AWS_PROFILE": "legacy & <co>",
            "CREDSYNC_LOG": "debug",
            "PATH": service::AGENT_PATH
        })
    );
    let plain = render_launchd_plist(&spec_with(exe, None, &[]), home);
    assert!(
        plain.contains("<key>CREDSYNC_LOG</key>\n\t\t<string>info</string>"),
        "{plain}"
    );
}

fn spec(exe: &str) -> ServiceSpec {
    spec_with(
        Path::new(exe),
        Some(Path::new("/home/u/.config/credsync/config.toml")),
        &[],
    )
}

fn target(platform: Platform, home: &Path) -> Target {
    Target {
        platform,
        home: home.to_owned(),
        xdg_config_home: None,
        uid: 501,
        packaged_unit: None,
        launchd_poll: std::time::Duration::ZERO,
        wsl: None,
    }
}

/// systemd for the unit of `t`, and its runner.
fn systemd(t: &Target) -> (Scripted, Arc<Mutex<FakeSystemd>>) {
    FakeSystemd::new(t.service_file()).runner()
}

/// A runner for a test that must not run any program.
fn nothing_runs() -> Scripted {
    Scripted::new(|argv| panic!("nothing may run here: {argv:?}"))
}

#[test]
fn install_and_uninstall_a_systemd_unit_in_a_temp_home() {
    let home = tempfile::tempdir().unwrap();
    let t = target(Platform::Linux, home.path());
    let unit = home.path().join(".config/systemd/user/credsync.service");
    assert_eq!(t.service_file(), unit);
    let (runner, systemd) = systemd(&t);

    let r = service::install(&spec("/usr/bin/credsync"), &t, true, &runner).unwrap();
    assert_eq!(
        (r.file, r.path.as_path()),
        (FileOutcome::Created, unit.as_path())
    );
    assert_eq!(
        std::fs::read_to_string(&unit).unwrap(),
        service::render(&spec("/usr/bin/credsync"), &t)
    );
    assert_eq!(r.steps, FakeSystemd::STARTED);
    {
        let s = systemd.lock().unwrap();
        assert!(s.enabled && s.active, "{s:?}");
        assert_eq!(
            s.loaded.as_deref(),
            Some(&*std::fs::read_to_string(&unit).unwrap())
        );
    }
    assert_eq!(
        std::fs::metadata(&unit).unwrap().permissions().mode() & 0o777,
        0o644
    );

    // The same unit again: written as it was, the running daemon left alone.
    let again = service::install(&spec("/usr/bin/credsync"), &t, true, &runner).unwrap();
    assert_eq!(again.file, FileOutcome::Unchanged);
    assert!(again.to_string().contains("unchanged"), "{again}");
    assert_eq!(
        systemd.lock().unwrap().starts,
        1,
        "a running daemon is not started again"
    );

    // A moved binary rewrites the unit and restarts the service on it.
    let moved = service::install(&spec("/opt/credsync"), &t, true, &runner).unwrap();
    assert_eq!(moved.file, FileOutcome::Updated);
    assert!(
        moved
            .steps
            .contains(&"ran: systemctl --user restart credsync.service".to_owned()),
        "{moved}"
    );
    {
        let s = systemd.lock().unwrap();
        assert_eq!(s.starts, 2);
        assert!(
            s.loaded
                .as_deref()
                .unwrap()
                .contains("ExecStart=/opt/credsync --config")
        );
    }

    runner.clear();
    let no_start = service::install(&spec("/usr/bin/credsync"), &t, false, &runner).unwrap();
    assert!(
        runner.calls().is_empty(),
        "--no-start runs nothing: {:?}",
        runner.calls()
    );
    assert!(no_start.steps.is_empty(), "{no_start}");
    assert!(no_start.to_string().contains("not started"), "{no_start}");

    let gone = service::uninstall(&t, &runner).unwrap();
    assert_eq!(gone.file, FileOutcome::Removed);
    assert_eq!(
        gone.steps,
        [
            "ran: systemctl --user disable --now credsync.service",
            "ran: systemctl --user daemon-reload",
        ]
    );
    assert!(!unit.exists());
    {
        let s = systemd.lock().unwrap();
        assert!(!s.enabled && !s.active && s.loaded.is_none(), "{s:?}");
    }
    assert_eq!(
        service::uninstall(&t, &nothing_runs()).unwrap().file,
        FileOutcome::Absent
    );
    // Nothing else was left behind.
    let leftovers: Vec<_> = std::fs::read_dir(unit.parent().unwrap()).unwrap().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_sandbox_the_machine_refuses_is_dropped_and_the_unit_started_again() {
    let home = tempfile::tempdir().unwrap();
    let t = target(Platform::Linux, home.path());
    let (runner, systemd) = FakeSystemd {
        namespaces: false,
        ..FakeSystemd::new(t.service_file())
    }
    .runner();

    let r = service::install(&spec("/usr/bin/credsync"), &t, true, &runner).unwrap();
    let text = std::fs::read_to_string(t.service_file()).unwrap();
    assert!(!text.contains("PrivateUsers="), "{text}");
    assert!(
        text.contains("# No sandbox: it failed to start on this machine (status=226/NAMESPACE)"),
        "{text}"
    );
    assert_eq!(
        runner.calls(),
        [
            "systemctl --user daemon-reload",
            "systemctl --user enable credsync.service",
            "systemctl --user start credsync.service",
            "systemctl --user show credsync.service -p \
             ActiveState,SubState,Result,ExecMainCode,ExecMainStatus,MainPID",
            "systemctl --user daemon-reload",
            "systemctl --user reset-failed credsync.service",
            "systemctl --user restart credsync.service",
            "systemctl --user show credsync.service -p \
             ActiveState,SubState,Result,ExecMainCode,ExecMainStatus,MainPID",
        ]
    );
    assert!(
        r.steps.contains(
            &"the sandbox failed to start on this machine (status=226/NAMESPACE): \
              credsync.service is rewritten without it and started again"
                .to_owned()
        ),
        "{r}"
    );
    assert_eq!(
        r.steps.last().unwrap(),
        "credsync.service is active and ready (main pid 4242)"
    );
    let s = systemd.lock().unwrap();
    assert!(s.active && s.loaded.as_deref() == Some(&*text), "{s:?}");
}

#[test]
fn a_daemon_that_does_not_start_is_an_error_with_the_units_status() {
    let home = tempfile::tempdir().unwrap();
    let t = target(Platform::Linux, home.path());
    let (runner, _) = FakeSystemd {
        daemon_exits: Some(2),
        ..FakeSystemd::new(t.service_file())
    }
    .runner();
    let err = service::install(&spec("/usr/bin/credsync"), &t, true, &runner)
        .expect_err("the daemon exits at once");
    let msg = err.to_string();
    assert!(
        msg.starts_with(
            "credsync.service did not start: failed (failed), result exit-code, main process \
             status=2\n"
        ),
        "{msg}"
    );
    assert!(msg.contains("Active: failed (Result: exit-code)"), "{msg}");
    assert!(
        msg.contains("ran: systemctl --user start credsync.service (it failed)"),
        "{msg}"
    );
    // The program's own failure is not a sandbox failure: the sandbox stays.
    assert!(
        std::fs::read_to_string(t.service_file())
            .unwrap()
            .contains("\nPrivateUsers=yes\n")
    );
}

#[test]
fn without_a_user_manager_the_unit_is_written_and_the_report_says_what_to_run() {
    let home = tempfile::tempdir().unwrap();
    let t = target(Platform::Linux, home.path());
    let (runner, _) = FakeSystemd {
        no_manager: Some("Failed to connect to bus: No medium found".to_owned()),
        ..FakeSystemd::new(t.service_file())
    }
    .runner();
    let r = service::install(&spec("/usr/bin/credsync"), &t, true, &runner).unwrap();
    assert_eq!(r.file, FileOutcome::Created);
    assert!(r.steps.is_empty(), "{r}");
    assert_eq!(runner.calls(), ["systemctl --user daemon-reload"]);
    let text = r.to_string();
    assert!(
        text.contains(
            "`systemctl --user` is not available (it cannot reach the user manager: Failed to \
             connect to bus: No medium found).\nwritten, not started; to start it, run \
             `systemctl --user daemon-reload && systemctl --user enable --now credsync.service`"
        ),
        "{text}"
    );

    let gone = service::uninstall(&t, &runner).unwrap();
    assert_eq!(gone.file, FileOutcome::Removed);
    assert!(!t.service_file().exists());
    assert!(
        gone.to_string()
            .contains("the file is removed; if a daemon still runs, stop it"),
        "{gone}"
    );

    // No systemctl at all.
    let none = Scripted::new(|argv| Err(not_found(argv)));
    let r = service::install(&spec("/usr/bin/credsync"), &t, true, &none).unwrap();
    assert!(
        r.to_string()
            .contains("`systemctl --user` is not available (systemctl is not installed)"),
        "{r}"
    );
}

#[test]
fn install_writes_through_a_fresh_temp_file_never_a_planted_one() {
    // The unit once went through a fixed temp name, created without O_EXCL: a symlink planted
    // there sent the unit's text into the file it points at.
    let home = tempfile::tempdir().unwrap();
    let t = target(Platform::Linux, home.path());
    let unit = t.service_file();
    let dir = unit.parent().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let victim = home.path().join("victim");
    std::fs::write(&victim, "the user's bytes").unwrap();
    std::os::unix::fs::symlink(&victim, dir.join(".credsync.service.credsync-tmp")).unwrap();
    std::fs::write(&unit, "an older unit\n").unwrap();

    let r = service::install(&spec("/usr/bin/credsync"), &t, false, &nothing_runs()).unwrap();
    assert_eq!(r.file, FileOutcome::Updated);
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "the user's bytes"
    );
    assert_eq!(
        std::fs::read_to_string(&unit).unwrap(),
        service::render(&spec("/usr/bin/credsync"), &t)
    );
    assert!(
        std::fs::symlink_metadata(&unit)
            .unwrap()
            .file_type()
            .is_file()
    );
    // No temp file of credsync's is left beside the unit.
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [".credsync.service.credsync-tmp", "credsync.service"]
    );
}

#[test]
fn a_binary_path_systemd_cannot_run_is_refused_before_writing() {
    let home = tempfile::tempdir().unwrap();
    let t = target(Platform::Linux, home.path());
    let err = service::install(&spec("/opt/\"odd\"/credsync"), &t, true, &nothing_runs())
        .expect_err("a quote in the executable path");
    assert!(
        err.to_string().contains("move credsync to a plain path"),
        "{err}"
    );
    assert!(!t.service_file().exists());
}

#[test]
fn xdg_config_home_is_respected() {
    let home = tempfile::tempdir().unwrap();
    let xdg = home.path().join("xdg");
    let t = Target {
        xdg_config_home: Some(xdg.clone()),
        ..target(Platform::Linux, home.path())
    };
    let r = service::install(&spec("/usr/bin/credsync"), &t, false, &nothing_runs()).unwrap();
    assert_eq!(r.path, xdg.join("systemd/user/credsync.service"));
    assert!(r.path.exists());
}

/// The steps of an install that loads a new agent on a launchd with nothing loaded.
fn loaded_fresh(plist: &Path) -> Vec<String> {
    vec![
        "ran: launchctl enable gui/501/com.credsync.agent".to_owned(),
        format!("ran: launchctl bootstrap gui/501 {}", plist.display()),
    ]
}

#[test]
fn install_and_uninstall_a_launch_agent_in_a_temp_home() {
    let home = tempfile::tempdir().unwrap();
    let t = target(Platform::MacOs, home.path());
    let plist = home
        .path()
        .join("Library/LaunchAgents/com.credsync.agent.plist");
    let (runner, launchd) = FakeLaunchd::default().runner();

    let r = service::install(&spec("/usr/local/bin/credsync"), &t, true, &runner).unwrap();
    assert_eq!(
        (r.file, r.path.as_path()),
        (FileOutcome::Created, plist.as_path())
    );
    assert!(
        home.path().join("Library/Logs/credsync").is_dir(),
        "launchd does not create it"
    );
    let mut want = loaded_fresh(&plist);
    want.push("gui/501/com.credsync.agent is running (pid 4001)".to_owned());
    assert_eq!(r.steps, want);
    let written = std::fs::read_to_string(&plist).unwrap();
    assert_eq!(launchd.lock().unwrap().loaded(), Some(&*written));

    // The same agent, loaded: restarted (the binary at that path may be a new one).
    let again = service::install(&spec("/usr/local/bin/credsync"), &t, true, &runner).unwrap();
    assert_eq!(again.file, FileOutcome::Unchanged);
    assert_eq!(
        again.steps,
        [
            "ran: launchctl enable gui/501/com.credsync.agent",
            "ran: launchctl kickstart -k gui/501/com.credsync.agent",
            "gui/501/com.credsync.agent is running (pid 4002)",
        ]
    );
    {
        let l = launchd.lock().unwrap();
        assert_eq!((l.bootstraps, l.kickstarts), (1, 1));
    }

    let gone = service::uninstall(&t, &runner).unwrap();
    assert_eq!(gone.file, FileOutcome::Removed);
    assert_eq!(
        gone.steps,
        [
            "ran: launchctl bootout gui/501/com.credsync.agent",
            "gui/501/com.credsync.agent is unloaded",
        ]
    );
    assert!(!plist.exists());
    assert!(launchd.lock().unwrap().job.is_none());
}

#[test]
fn install_over_a_loaded_agent_survives_the_asynchronous_bootout() {
    let home = tempfile::tempdir().unwrap();
    let t = target(Platform::MacOs, home.path());
    let plist = t.service_file();
    // The old agent takes a few more calls to go after `bootout` returned, as launchd does.
    let (runner, launchd) = FakeLaunchd {
        bootout_lingers: 3,
        ..FakeLaunchd::default()
    }
    .runner();
    service::install(&spec("/usr/local/bin/credsync"), &t, true, &runner).unwrap();
    runner.clear();

    let moved = service::install(&spec("/opt/credsync/bin/credsync"), &t, true, &runner).unwrap();
    assert_eq!(moved.file, FileOutcome::Updated);
    assert_eq!(
        moved.steps,
        [
            "ran: launchctl bootout gui/501/com.credsync.agent".to_owned(),
            "gui/501/com.credsync.agent is unloaded".to_owned(),
            "ran: launchctl enable gui/501/com.credsync.agent".to_owned(),
            format!("ran: launchctl bootstrap gui/501 {}", plist.display()),
            "gui/501/com.credsync.agent is running (pid 4001)".to_owned(),
        ]
    );
    // It looked until the old job was gone, and bootstrapped only then (once: no error 5).
    let calls = runner.calls();
    let bootstraps: Vec<_> = calls.iter().filter(|c| c.contains("bootstrap")).collect();
    assert_eq!(bootstraps.len(), 1, "{calls:#?}");
    let looks_before = calls
        .iter()
        .take_while(|c| !c.contains("bootstrap"))
        .filter(|c| c.starts_with("launchctl print"))
        .count();
    assert!(
        looks_before >= 4,
        "one look before the bootout, then until gone: {calls:#?}"
    );
    let l = launchd.lock().unwrap();
    assert_eq!(l.bootstraps, 2);
    let job = l.job.as_ref().unwrap();
    assert!(
        job.running
            && job
                .plist
                .contains("<string>/opt/credsync/bin/credsync</string>")
    );
}

#[test]
fn a_disabled_label_is_enabled_before_it_is_loaded() {
    let home = tempfile::tempdir().unwrap();
    let t = target(Platform::MacOs, home.path());
    let (runner, launchd) = FakeLaunchd {
        disabled: ["com.credsync.agent".to_owned()].into(),
        ..FakeLaunchd::default()
    }
    .runner();
    let r = service::install(&spec("/usr/local/bin/credsync"), &t, true, &runner).unwrap();
    assert_eq!(
        r.steps.last().map(String::as_str),
        Some("gui/501/com.credsync.agent is running (pid 4001)")
    );
    let l = launchd.lock().unwrap();
    assert!(l.disabled.is_empty(), "{:?}", l.disabled);
    assert!(l.job.as_ref().is_some_and(|j| j.running));
}

#[test]
fn a_daemon_that_exits_at_once_is_reported_not_started_with_its_log_lines() {
    let home = tempfile::tempdir().unwrap();
    let t = target(Platform::MacOs, home.path());
    let log = home.path().join("Library/Logs/credsync/credsync.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    std::fs::write(&log, "an earlier run's line\n").unwrap();
    let said = "credsync: another credsync daemon is already running on /tmp/x.sock\n\
                this daemon ends with 0 so that launchd does not start it again\n";
    let (runner, launchd) = FakeLaunchd {
        daemon_exits: Some((0, said.to_owned())),
        ..FakeLaunchd::default()
    }
    .runner();
    let err = service::install(&spec("/usr/local/bin/credsync"), &t, true, &runner)
        .expect_err("the daemon exited")
        .to_string();
    assert!(
        err.starts_with(
            "gui/501/com.credsync.agent did not start: it started and exited (state = not \
             running, last exit code = 0)\n"
        ),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "the last lines of {}:\n{}",
            log.display(),
            said.trim_end()
        )),
        "{err}"
    );
    assert!(
        !err.contains("an earlier run"),
        "only what this start wrote: {err}"
    );
    assert!(
        err.contains("ran: launchctl bootstrap gui/501 "),
        "what was done: {err}"
    );
    assert!(err.contains("fix what the log shows, then run `credsync service install` again"));
    assert_eq!(launchd.lock().unwrap().job.as_ref().unwrap().runs, 1);
}

#[test]
fn a_daemon_that_never_reaches_running_is_not_started_after_the_wait() {
    let home = tempfile::tempdir().unwrap();
    let t = target(Platform::MacOs, home.path());
    // Once loaded, never started: what `print` says of a job launchd has not spawned yet.
    let mut loaded = false;
    let stuck = Scripted::new(move |argv: &[String]| {
        loaded |= argv[1] == "bootstrap";
        Ok(match argv[1].as_str() {
            "print" if !loaded => Finished::exit(113, "", ""),
            "print" => Finished::exit(
                0,
                "gui/501/com.credsync.agent = {\n\tstate = spawn scheduled\n\truns = 0\n\t\
                 last exit code = (never exited)\n}\n",
                "",
            ),
            _ => Finished::exit(0, "", ""),
        })
    });
    let err = service::install(&spec("/opt/credsync"), &t, true, &stuck)
        .expect_err("not running")
        .to_string();
    assert!(
        err.contains("did not start: not running within 10s (state = spawn scheduled)"),
        "{err}"
    );
    assert!(err.contains("does not exist)"), "no log yet: {err}");
    let looks = stuck
        .calls()
        .iter()
        .filter(|c| c.starts_with("launchctl print gui/501/com.credsync.agent"))
        .count();
    assert_eq!(looks, 1 + 100, "one look before, a hundred after");
}

#[test]
fn uninstall_leaves_nothing_loaded() {
    let home = tempfile::tempdir().unwrap();
    let t = target(Platform::MacOs, home.path());
    let (runner, launchd) = FakeLaunchd {
        bootout_lingers: 5,
        ..FakeLaunchd::default()
    }
    .runner();
    service::install(&spec("/usr/local/bin/credsync"), &t, true, &runner).unwrap();
    let gone = service::uninstall(&t, &runner).unwrap();
    assert_eq!(gone.file, FileOutcome::Removed);
    assert_eq!(
        gone.steps.last().map(String::as_str),
        Some("gui/501/com.credsync.agent is unloaded")
    );
    assert!(launchd.lock().unwrap().job.is_none(), "still loaded");
    assert!(!t.service_file().exists());

    // Loaded although its plist was removed by hand: uninstall unloads it too.
    service::install(&spec("/usr/local/bin/credsync"), &t, true, &runner).unwrap();
    std::fs::remove_file(t.service_file()).unwrap();
    let r = service::uninstall(&t, &runner).unwrap();
    assert_eq!(r.file, FileOutcome::Absent);
    assert!(launchd.lock().unwrap().job.is_none(), "still loaded");
    // Nothing loaded, nothing installed: nothing to do, and it says so.
    let r = service::uninstall(&t, &runner).unwrap();
    assert_eq!(r.steps, ["gui/501/com.credsync.agent is not loaded"]);
}

#[test]
fn a_job_that_does_not_go_is_an_error_before_anything_is_loaded() {
    let home = tempfile::tempdir().unwrap();
    let t = target(Platform::MacOs, home.path());
    let (runner, launchd) = FakeLaunchd {
        bootout_lingers: 1000,
        ..FakeLaunchd::default()
    }
    .runner();
    service::install(&spec("/usr/local/bin/credsync"), &t, true, &runner).unwrap();
    let err = service::install(&spec("/opt/credsync"), &t, true, &runner)
        .expect_err("still loaded")
        .to_string();
    assert!(
        err.starts_with(
            "`launchctl bootout gui/501/com.credsync.agent`: launchd still had the job 10s \
             later; run `launchctl bootout gui/501/com.credsync.agent` and try again"
        ),
        "{err}"
    );
    assert_eq!(
        launchd.lock().unwrap().bootstraps,
        1,
        "no bootstrap into error 5"
    );
}

#[test]
fn keepalive_restarts_every_failure_and_leaves_a_clean_exit_be() {
    // What the daemon's exit codes come to under the plist credsync writes: why it never ends
    // with a failure a restart cannot fix when launchd runs it (`daemon --launchd`).
    for (code, restarted) in [(2, true), (1, true), (0, false)] {
        let home = tempfile::tempdir().unwrap();
        let t = target(Platform::MacOs, home.path());
        let (runner, launchd) = FakeLaunchd {
            daemon_exits: Some((code, format!("exit {code}\n"))),
            ..FakeLaunchd::default()
        }
        .runner();
        service::install(&spec("/usr/local/bin/credsync"), &t, true, &runner).unwrap_err();
        let runs = launchd.lock().unwrap().job.as_ref().unwrap().runs;
        for _ in 0..5 {
            let _ = runner.run(
                &["launchctl", "print", "gui/501/com.credsync.agent"].map(String::from),
                std::time::Duration::ZERO,
            );
        }
        let later = launchd.lock().unwrap().job.as_ref().unwrap().runs;
        assert_eq!(
            later > runs,
            restarted,
            "exit {code}: {runs} runs, then {later}"
        );
    }
}

#[test]
fn a_homebrew_service_is_pointed_at_not_doubled() {
    let home = tempfile::tempdir().unwrap();
    let t = target(Platform::MacOs, home.path());
    // Loaded by `brew services start credsync`, its plist in ~/Library/LaunchAgents.
    let (runner, launchd) = FakeLaunchd {
        brew_loaded: true,
        ..FakeLaunchd::default()
    }
    .runner();
    let err = service::install(&spec("/opt/homebrew/bin/credsync"), &t, true, &runner)
        .expect_err("brew runs it")
        .to_string();
    assert!(
        err.starts_with(
            "credsync runs as a Homebrew service (launchd has gui/501/homebrew.mxcl.credsync \
             loaded)"
        ),
        "{err}"
    );
    assert!(err.contains("`brew services stop credsync`, then `credsync service install`"));
    assert!(!t.service_file().exists());
    assert!(launchd.lock().unwrap().job.is_none());

    let brew_plist = home
        .path()
        .join("Library/LaunchAgents/homebrew.mxcl.credsync.plist");
    std::fs::create_dir_all(brew_plist.parent().unwrap()).unwrap();
    std::fs::write(&brew_plist, "<plist/>").unwrap();
    let err = service::install(
        &spec("/opt/homebrew/bin/credsync"),
        &t,
        false,
        &nothing_runs(),
    )
    .expect_err("its plist is there")
    .to_string();
    assert!(
        err.contains(&format!("({} exists)", brew_plist.display())),
        "{err}"
    );
    // Uninstall has nothing of credsync's own to remove, and says which service runs.
    let r = service::uninstall(&t, &runner).unwrap();
    let said = r.to_string();
    assert!(said.contains("`brew services stop credsync`"), "{said}");
}

#[test]
fn a_launch_agent_launchd_refuses_is_an_error() {
    let home = tempfile::tempdir().unwrap();
    let t = target(Platform::MacOs, home.path());
    // Nothing loaded, yet bootstrap refuses (as it does for a disabled label).
    let refuses = Scripted::new(|argv: &[String]| {
        Ok(match argv[1].as_str() {
            "print" => Finished::exit(113, "", "Could not find service\n"),
            "enable" => Finished::exit(0, "", ""),
            _ => Finished::exit(5, "", "Bootstrap failed: 5: Input/output error\n"),
        })
    });
    let err = service::install(&spec("/opt/credsync"), &t, true, &refuses)
        .expect_err("bootstrap failed")
        .to_string();
    assert!(
        err.starts_with("`launchctl bootstrap gui/501 ")
            && err.contains(
                "`: launchctl failed (exit status 5): Bootstrap failed: 5: Input/output error\n\
                 launchd refuses a job it still has loaded, or one that is disabled"
            ),
        "{err}"
    );
    assert!(
        err.contains("ran: launchctl enable gui/501/com.credsync.agent"),
        "what was done is said: {err}"
    );
}

#[test]
fn a_service_never_names_a_homebrew_keg() {
    // A Homebrew prefix laid out as `brew install` leaves it: the keg, and the links it keeps
    // across upgrades (`brew upgrade` deletes the keg's versioned directory).
    let prefix = tempfile::tempdir().unwrap();
    let prefix = prefix.path().canonicalize().unwrap();
    let keg = prefix.join("Cellar/credsync/1.2.3/bin/credsync");
    stub_exe(&keg);
    std::fs::create_dir_all(prefix.join("bin")).unwrap();
    std::os::unix::fs::symlink(
        "../Cellar/credsync/1.2.3/bin/credsync",
        prefix.join("bin/credsync"),
    )
    .unwrap();
    let env = credsync::config::Env {
        home: "/Users/u".into(),
        vars: Default::default(),
    };
    let cfg = credsync::config::defaults(&env);
    let spec = ServiceSpec::for_exe(&keg, &cfg, &env);
    assert_eq!(spec.exe, prefix.join("bin/credsync"));
    let plist = render_launchd_plist(&spec, &env.home);
    let unit = render_systemd_unit(&spec);
    for (what, text) in [("plist", &plist), ("unit", &unit)] {
        assert!(
            !text.contains("/Cellar/"),
            "the {what} names the keg:\n{text}"
        );
        assert!(
            text.contains(&*prefix.join("bin/credsync").to_string_lossy()),
            "{what}:\n{text}"
        );
    }
}
