//! `credsync service install` beside the Debian package's unit: it does not write a second
//! unit; it enables the packaged one when that runs what this install asks for, and otherwise
//! says what to add (a drop-in) or which binary to use. The packaged unit itself is rendered
//! from the same template as `service install`. (Under a real user manager, with the real
//! package: tests/package_deb.rs.)

use std::path::{Path, PathBuf};

use credsync::service::{
    self, FileOutcome, PACKAGED_EXE, Platform, Sandbox, ServiceError, ServiceSpec, Target,
};

use crate::support::fake_programs::{FakeSystemd, Scripted};

fn spec(exe: &str) -> ServiceSpec {
    ServiceSpec::packaged(PathBuf::from(exe))
}

/// A runner for a test that must not run any program.
fn nothing_runs() -> Scripted {
    Scripted::new(|argv| panic!("nothing may run here: {argv:?}"))
}

fn target(home: &Path, packaged_unit: Option<PathBuf>) -> Target {
    Target {
        platform: Platform::Linux,
        home: home.to_owned(),
        xdg_config_home: None,
        uid: 1000,
        packaged_unit,
        launchd_poll: std::time::Duration::ZERO,
        wsl: None,
    }
}

#[test]
fn the_packaged_unit_is_the_install_template_for_usr_bin() {
    let packaged = service::render_packaged_unit(Path::new("/usr/bin/credsync"));
    let installed = service::render_systemd_unit(&spec("/usr/bin/credsync"));
    assert!(matches!(
        spec(PACKAGED_EXE).sandbox,
        Sandbox::NoNamespaces(_)
    ));
    assert!(
        packaged.contains("\nExecStart=/usr/bin/credsync daemon\n"),
        "{packaged}"
    );
    assert!(packaged.starts_with(
        "# credsync: keeps AWS credentials fresh on disk.\n# Installed by the credsync package."
    ));
    assert!(
        packaged.contains("systemctl --user enable --now credsync"),
        "{packaged}"
    );
    let body = |unit: &str| unit[unit.find("\n[Unit]").expect("a [Unit] section")..].to_owned();
    assert_eq!(body(&packaged), body(&installed));
    assert!(!packaged.contains("Written by `credsync service install`"));
    // No file-system view (it needs a user namespace, which some machines refuse, and nothing
    // rewrites a packaged unit), the rest of the sandbox kept.
    assert!(
        !packaged.lines().any(|l| l.starts_with("PrivateUsers=")),
        "{packaged}"
    );
    assert!(
        !packaged.lines().any(|l| l.starts_with("ProtectHome=")),
        "{packaged}"
    );
    for kept in [
        "NoNewPrivileges=yes",
        "RestrictNamespaces=yes",
        "MemoryDenyWriteExecute=yes",
    ] {
        assert!(packaged.lines().any(|l| l == kept), "{kept}: {packaged}");
    }
}

#[test]
fn nothing_is_missing_when_the_setup_is_the_packaged_default() {
    let home = Path::new("/home/u");
    let default_config = home.join(".config/credsync/config.toml");
    assert_eq!(
        service::packaged_shortfall(&spec(PACKAGED_EXE), &default_config),
        Ok(vec![])
    );
    let with_default_file = ServiceSpec {
        config: Some(default_config.clone()),
        ..spec(PACKAGED_EXE)
    };
    assert_eq!(
        service::packaged_shortfall(&with_default_file, &default_config),
        Ok(vec![])
    );
}

#[test]
fn what_the_packaged_unit_lacks_is_given_as_drop_in_lines() {
    let default_config = Path::new("/home/u/.config/credsync/config.toml");
    let s = ServiceSpec {
        config: Some(PathBuf::from("/home/u/work/credsync.toml")),
        env: vec![
            ("AWS_PROFILE".into(), "dev".into()),
            ("CREDSYNC_LOG".into(), "debug credsync=trace".into()),
        ],
        extra_rw_paths: vec![PathBuf::from("/srv/shared aws")],
        sandbox: Sandbox::Full,
        ..spec(PACKAGED_EXE)
    };
    let lines = service::packaged_shortfall(&s, default_config).expect("same binary");
    assert_eq!(
        lines,
        [
            "ExecStart=",
            "ExecStart=/usr/bin/credsync --config /home/u/work/credsync.toml daemon",
            "Environment=AWS_PROFILE=dev",
            "Environment=\"CREDSYNC_LOG=debug credsync=trace\"",
        ]
    );
}

#[test]
fn another_binary_is_not_run_by_the_packaged_unit() {
    let why = service::packaged_shortfall(
        &spec("/home/u/.cargo/bin/credsync"),
        Path::new("/home/u/.config/credsync/config.toml"),
    )
    .expect_err("another binary");
    assert!(why.contains("/home/u/.cargo/bin/credsync"), "{why}");
}

#[test]
fn install_uses_the_packaged_unit_and_writes_none() {
    let home = tempfile::tempdir().expect("temp home");
    let unit = home.path().join("packaged/credsync.service");
    std::fs::create_dir_all(unit.parent().unwrap()).unwrap();
    std::fs::write(
        &unit,
        service::render_packaged_unit(Path::new(PACKAGED_EXE)),
    )
    .unwrap();
    let t = target(home.path(), Some(unit.clone()));
    // Where user namespaces are refused too: the packaged unit does not ask for one.
    let (runner, systemd) = FakeSystemd {
        namespaces: false,
        ..FakeSystemd::new(unit.clone())
    }
    .runner();
    let r = service::install(&spec(PACKAGED_EXE), &t, true, &runner).expect("installs");
    assert_eq!(r.file, FileOutcome::Packaged);
    assert_eq!(r.path, unit);
    assert!(!t.service_file().exists(), "a second unit was written");
    assert_eq!(r.steps, FakeSystemd::STARTED);
    let s = systemd.lock().unwrap();
    assert!(s.enabled && s.active, "{s:?}");
}

#[test]
fn install_refuses_what_the_packaged_unit_cannot_run_and_says_how() {
    let home = tempfile::tempdir().expect("temp home");
    let t = target(home.path(), Some(PathBuf::from(service::PACKAGED_UNIT)));
    let with_env = ServiceSpec {
        env: vec![("AWS_PROFILE".into(), "legacy".into())],
        ..spec(PACKAGED_EXE)
    };
    let err = service::install(&with_env, &t, true, &nothing_runs()).expect_err("refused");
    assert!(matches!(err, ServiceError::PackagedUnit { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("systemctl --user edit credsync.service"),
        "{msg}"
    );
    assert!(
        msg.contains("[Service]\nEnvironment=AWS_PROFILE=legacy\n"),
        "{msg}"
    );
    assert!(!t.service_file().exists());

    let other = service::install(&spec("/opt/credsync"), &t, true, &nothing_runs())
        .expect_err("another binary")
        .to_string();
    assert!(
        other.contains("/usr/bin/credsync service install"),
        "{other}"
    );
    assert!(!t.service_file().exists());
}

#[test]
fn a_unit_of_the_users_own_is_still_managed_as_before() {
    let home = tempfile::tempdir().expect("temp home");
    let t = target(home.path(), Some(PathBuf::from(service::PACKAGED_UNIT)));
    let own = t.service_file();
    std::fs::create_dir_all(own.parent().unwrap()).unwrap();
    std::fs::write(&own, "old").unwrap();
    let r = service::install(&spec("/opt/credsync"), &t, false, &nothing_runs()).expect("installs");
    assert_eq!(r.file, FileOutcome::Updated);
    assert!(
        std::fs::read_to_string(&own)
            .unwrap()
            .contains("ExecStart=/opt/credsync daemon")
    );
}

#[test]
fn uninstall_disables_the_packaged_unit_and_leaves_its_file() {
    let home = tempfile::tempdir().expect("temp home");
    let unit = home.path().join("packaged/credsync.service");
    std::fs::create_dir_all(unit.parent().unwrap()).unwrap();
    std::fs::write(&unit, "[Unit]\n").unwrap();
    let t = target(home.path(), Some(unit.clone()));
    let (runner, systemd) = FakeSystemd::new(unit.clone()).runner();
    service::install(&spec(PACKAGED_EXE), &t, true, &runner).expect("installs");
    let r = service::uninstall(&t, &runner).expect("uninstalls");
    assert_eq!(r.file, FileOutcome::Packaged);
    assert_eq!(
        r.steps,
        ["ran: systemctl --user disable --now credsync.service"]
    );
    assert!(unit.exists(), "the package's file is the package's");
    let s = systemd.lock().unwrap();
    assert!(!s.enabled && !s.active, "{s:?}");
}
