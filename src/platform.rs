//! Which operating system credsync runs on, as a value. Every decision that differs between
//! Linux and macOS (the service manager, the config and cache directories, the words a user
//! reads, the desktop notifier) takes a [`Platform`] as an argument instead of asking
//! `cfg!(target_os)` inside it, so both branches are compiled and tested on every platform;
//! only the binary's edges call [`Platform::current`].
//!
//! A Linux that is a WSL distribution is still [`Platform::Linux`]; what WSL changes is decided
//! from a [`Wsl`] value beside it, detected in one place ([`Wsl::detect`]).

use std::path::Path;

use crate::config::Env;

/// An operating system credsync knows how to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// Linux: systemd user units, XDG directories, inotify.
    Linux,
    /// macOS: launchd LaunchAgents, `~/Library`, FSEvents.
    MacOs,
}

impl Platform {
    /// The platform this build runs on, if credsync knows it (other Unixes: `None`; they
    /// get the XDG directories and no service manager).
    pub fn current() -> Option<Platform> {
        if cfg!(target_os = "macos") {
            Some(Platform::MacOs)
        } else if cfg!(target_os = "linux") {
            Some(Platform::Linux)
        } else {
            None
        }
    }
}

/// A Linux that runs as a WSL distribution under Windows: what differs there is decided from
/// this value (the browser and the notifier are Windows', the distribution stops when idle,
/// systemd may be off), detected once by [`Wsl::detect`] from an injected environment and root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wsl {
    /// The distribution's name (`WSL_DISTRO_NAME`), when the environment has it (WSL sets it in
    /// the processes `wsl.exe` starts, not in those systemd starts).
    pub distro: Option<String>,
    /// Whether systemd runs the distribution (`/run/systemd/system` exists, the test of
    /// sd_booted(3)), i.e. `[boot] systemd=true` in `/etc/wsl.conf`.
    pub systemd: bool,
    /// Whether WSL's binfmt_misc entry for Windows programs is registered: without it a `.exe`
    /// does not run at all (microsoft/WSL#10239, `run-detectors: unable to find an interpreter`).
    pub interop: bool,
}

impl Wsl {
    /// Whether this Linux is a WSL distribution, from `env` and the files under `root` (`/` on a
    /// real system; a test gives a directory of its own). Any one sign is enough:
    /// - `WSL_DISTRO_NAME` or `WSL_INTEROP` in the environment (WSL sets both in the processes
    ///   `wsl.exe` starts; `WSL_INTEROP` names the interop server, microsoft/WSL
    ///   doc/docs/technical-documentation/interop.md; neither reaches a systemd service,
    ///   microsoft/WSL#8846);
    /// - WSL's binfmt_misc entry for Windows programs, `/proc/sys/fs/binfmt_misc/WSLInterop`
    ///   (the same document), or `WSLInterop-late` as systemd-binfmt registers it on a systemd
    ///   distribution (microsoft/WSL#13449);
    /// - a Microsoft kernel: `/proc/sys/kernel/osrelease` holds `microsoft`
    ///   (`5.15.90.1-microsoft-standard-WSL2`; WSL 1 reports `4.4.0-19041-Microsoft`).
    pub fn detect(env: &Env, root: &Path) -> Option<Wsl> {
        let var = |k: &str| env.get(k).is_some();
        let binfmt = root.join("proc/sys/fs/binfmt_misc");
        let signs = var("WSL_DISTRO_NAME")
            || var("WSL_INTEROP")
            || kernel_is_microsoft(&root.join("proc/sys/kernel/osrelease"));
        let interop = binfmt.join("WSLInterop").exists() || binfmt.join("WSLInterop-late").exists();
        let signs = signs || interop;
        signs.then(|| Wsl {
            distro: env.get("WSL_DISTRO_NAME").map(str::to_owned),
            systemd: root.join("run/systemd/system").is_dir(),
            interop,
        })
    }

    /// [`Wsl::detect`] on this machine, for the binary's edges.
    pub fn here(env: &Env) -> Option<Wsl> {
        if Platform::current() != Some(Platform::Linux) {
            return None;
        }
        Wsl::detect(env, Path::new("/"))
    }

    /// What WSL does to an idle distribution, and so to credsync in it, in one sentence.
    /// WSL stops a distribution `instanceIdleTimeout` (15 s by default) after the last Windows
    /// program using it ends, and a process systemd started does not count (microsoft/WSL
    /// src/windows/common/WslCoreConfig.h: `general.instanceIdleTimeout = 15 * 1000`;
    /// microsoft/WSL#9667, a maintainer: "things launched by systemd don't count").
    pub const IDLE_SHUTDOWN: &'static str = "WSL stops this distribution about 15 seconds after \
        the last Windows program using it (a terminal, wsl.exe) ends, and a service systemd \
        started does not keep it running: credsync stops with it and keeps nothing fresh until \
        the distribution starts again";

    /// What keeps the distribution running, for the user to do on the Windows side. A negative
    /// `instanceIdleTimeout` never stops the distribution and a negative `vmIdleTimeout` never
    /// stops WSL's VM (microsoft/WSL src/windows/service/exe/LxssUserSession.cpp: "A value of
    /// less than zero indicates that the instance should never be idle-terminated");
    /// Docker Desktop's WSL integration keeps a process of its own in each distribution it
    /// integrates while it runs (microsoft/WSL#8665).
    pub const KEEP_RUNNING: &'static str = "to keep it running, put these lines in \
        %UserProfile%\\.wslconfig on Windows (a current WSL reads them; `wsl --update` gets \
        one) and restart WSL with `wsl --shutdown`:\n\
        \n[general]\ninstanceIdleTimeout=-1\n\n[wsl2]\nvmIdleTimeout=-1\n\n\
        or keep Docker Desktop running with its WSL integration turned on for this \
        distribution (Settings > Resources > WSL integration), or a WSL terminal open";
}

/// The `instanceIdleTimeout` of `[general]` in the text of a `.wslconfig`: milliseconds, negative
/// for never. Read as WSL reads it (microsoft/WSL src/shared/configfile/configfile.cpp): section
/// and key names in any case, `#` starts a comment, a value may be quoted, and of a key given
/// twice the first counts.
pub fn instance_idle_timeout(wslconfig: &str) -> Option<i64> {
    let mut section = String::new();
    for line in wslconfig.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            section = name.trim().to_ascii_lowercase();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if section != "general" || !key.trim().eq_ignore_ascii_case("instanceIdleTimeout") {
            continue;
        }
        let value = value.trim();
        let value = match value.strip_prefix('"') {
            Some(quoted) => quoted.split('"').next().unwrap_or_default(),
            None => value.split('#').next().unwrap_or_default().trim(),
        };
        return value.parse().ok();
    }
    None
}

/// Whether the kernel release at `path` is one of Microsoft's WSL kernels.
fn kernel_is_microsoft(path: &Path) -> bool {
    read_small(path).is_some_and(|text| text.to_ascii_lowercase().contains("microsoft"))
}

/// The first line of a small kernel file (`/proc`), `None` when it cannot be read.
#[expect(
    clippy::disallowed_methods,
    reason = "a kernel file of /proc (or a test's copy), not a user's file"
)]
fn read_small(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(text.lines().next().unwrap_or_default().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn env(vars: &[(&str, &str)]) -> Env {
        Env {
            home: "/home/u".into(),
            vars: vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    /// A root with `files` (path, content) under it.
    fn root(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        dir
    }

    #[test]
    fn plain_linux_is_not_wsl() {
        let r = root(&[("proc/sys/kernel/osrelease", "6.8.0-45-generic\n")]);
        assert_eq!(Wsl::detect(&env(&[("DISPLAY", ":0")]), r.path()), None);
        let empty = root(&[]);
        assert_eq!(Wsl::detect(&env(&[]), empty.path()), None);
    }

    #[test]
    fn each_sign_alone_says_wsl() {
        let empty = root(&[]);
        let by_name = Wsl::detect(&env(&[("WSL_DISTRO_NAME", "Ubuntu")]), empty.path());
        assert_eq!(
            by_name,
            Some(Wsl {
                distro: Some("Ubuntu".into()),
                systemd: false,
                interop: false,
            })
        );
        let interop = env(&[("WSL_INTEROP", "/run/WSL/8_interop")]);
        assert!(Wsl::detect(&interop, empty.path()).is_some());
        // A systemd service: no WSL variables, but the kernel and binfmt_misc say so.
        for (files, interop) in [
            (
                &[("proc/sys/fs/binfmt_misc/WSLInterop", "enabled\n")][..],
                true,
            ),
            (
                &[("proc/sys/fs/binfmt_misc/WSLInterop-late", "enabled\n")],
                true,
            ),
            (
                &[(
                    "proc/sys/kernel/osrelease",
                    "5.15.167.4-microsoft-standard-WSL2\n",
                )],
                false,
            ),
            (
                &[("proc/sys/kernel/osrelease", "4.4.0-19041-Microsoft\n")],
                false,
            ),
        ] {
            let r = root(files);
            let wsl = Wsl::detect(&env(&[]), r.path());
            assert_eq!(
                wsl,
                Some(Wsl {
                    distro: None,
                    systemd: false,
                    interop,
                }),
                "{files:?}"
            );
        }
    }

    #[test]
    fn the_instance_idle_timeout_is_read_as_wsl_reads_it() {
        let t = "[wsl2]\nmemory=8GB\ninstanceIdleTimeout=5\n\n[General]\n# keep it\n\
                 InstanceIdleTimeout = -1 # forever\ninstanceIdleTimeout=60000\n";
        assert_eq!(instance_idle_timeout(t), Some(-1));
        assert_eq!(
            instance_idle_timeout("[general]\ninstanceIdleTimeout=\"-1\"\n"),
            Some(-1)
        );
        assert_eq!(
            instance_idle_timeout("[general]\ninstanceIdleTimeout=60000\n"),
            Some(60000)
        );
        assert_eq!(instance_idle_timeout("[wsl2]\nvmIdleTimeout=-1\n"), None);
        assert_eq!(instance_idle_timeout(""), None);
    }

    #[test]
    fn systemd_is_read_from_run_systemd_system() {
        let r = root(&[("run/systemd/system/.keep", "")]);
        let wsl = Wsl::detect(&env(&[("WSL_DISTRO_NAME", "Ubuntu")]), r.path()).unwrap();
        assert!(wsl.systemd);
    }
}
