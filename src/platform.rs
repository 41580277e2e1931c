//! Which operating system credsync runs on, as a value. Every decision that differs between
//! Linux and macOS (the service manager, the config and cache directories, the words a user
//! reads, the desktop notifier) takes a [`Platform`] as an argument instead of asking
//! `cfg!(target_os)` inside it, so both branches are compiled and tested on every platform;
//! only the binary's edges call [`Platform::current`].

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
