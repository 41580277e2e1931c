//! `credsync doctor`: each check of the setup as a pure function from what was read (text,
//! file facts, a daemon reply, `now`) to [`Check`]s, so tests feed them byte literals. The
//! binary's `cmd/doctor.rs` gathers the inputs and prints the result. The rows ([`Check`],
//! [`Level`], [`render`]) and the checks whose inputs are the core's types (the AWS config,
//! a token as read, the daemon's reply) are `credsync_core::doctor`, re-exported here; this
//! module keeps what reads the disk ([`FileFacts::of`]) and the checks of edge types.
//!
//! Plain doctor checks credsync's config, the AWS config, each managed profile (its plan and,
//! for SSO, its token), the credentials file's permissions, the user service and the daemon;
//! in a WSL distribution, what WSL does to an idle distribution and whether Windows can show
//! credsync's notifications.
//! [`project`] checks an Astro project's compose mounts and `.env`; [`compose`] reads them;
//! [`live`] asks the project's running containers what botocore resolves there.

pub(crate) mod compose;
pub mod live;
pub mod project;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::acl;
use crate::aws_profile::{AwsConfig, ProfileError, SsoProfile};
use crate::chain::{self, Base, ChainError, LoginProfile};
use crate::config::{Config, ConfigError, NotifyConfig};
use crate::ini_edit;
use crate::mounts::MountTable;
use crate::notify::Desktop;
use crate::platform::{self, Wsl};
use crate::service::{self, Platform};
use crate::status::Status;
use crate::timefmt::humane;
use crate::uidmap;

pub(crate) use credsync_core::doctor::long_lived_sections;
pub use credsync_core::doctor::{
    Check, Level, TokenRead, check_aws_config, check_daemon, check_sessions, check_token, render,
};

// ---------------------------------------------------------------------------------------------
// credsync's config and the AWS config.

/// Whether credsync's config loaded, and its warnings.
pub fn check_config(loaded: &Result<Config, ConfigError>) -> Vec<Check> {
    match loaded {
        Ok(cfg) => {
            let origin = match &cfg.origin {
                crate::config::Origin::File(path) => path.display().to_string(),
                crate::config::Origin::Default { .. } => cfg.describe_origin(),
            };
            let mut out = vec![Check::ok(format!(
                "credsync config: {origin} ({} managed profile{})",
                cfg.profiles.len(),
                if cfg.profiles.len() == 1 { "" } else { "s" }
            ))];
            for w in cfg.warnings() {
                out.push(Check::warn(format!("credsync config: {}", w.what), w.fix));
            }
            out
        }
        Err(e) => vec![Check::fail(
            format!("credsync config does not load: {e}"),
            match e {
                ConfigError::Env { var, .. } => format!(
                    "change or unset {var} as the message says; the checks below run without it"
                ),
                _ => "fix the file at the place named (config.example.toml documents every \
                      key); the checks below use the defaults"
                    .to_owned(),
            },
        )],
    }
}

/// What reading one `aws login` session's cache entry found: the entry's path, and what was
/// there (`Err`: the file could not be read).
pub(crate) type LoginRead = (PathBuf, Result<crate::login_cache::Read, String>);

/// Each managed profile's plan and, once per sso-session, its token; once per `aws login`
/// session, its cache entry (`login` reads it).
pub fn check_profiles(
    cfg: &Config,
    aws: &AwsConfig,
    credentials_text: &str,
    token: &dyn Fn(&SsoProfile) -> TokenRead,
    login: &dyn Fn(&LoginProfile) -> LoginRead,
    now: SystemTime,
) -> Vec<Check> {
    let path = &cfg.aws.credentials_file;
    let mut out = Vec::new();
    let credentials = match ini_edit::source_credentials(credentials_text, path) {
        Ok(c) => c,
        Err(e) => {
            out.push(Check::fail(
                format!("credentials file does not parse: {e}"),
                "fix the line named: botocore refuses the whole file, and credsync cannot \
                 write into it",
            ));
            BTreeMap::new()
        }
    };
    let mut seen_sessions = BTreeSet::new();
    let mut seen_logins = BTreeSet::new();
    let planner = chain::Planner::new(aws, &credentials);
    for entry in &cfg.profiles {
        let name = format!("profile {} -> [{}]", entry.source, entry.target);
        let plan = match planner.plan(&entry.source) {
            Ok(plan) => plan,
            Err(e) => {
                let fix = match &e {
                    ChainError::Profile(ProfileError::UnknownProfile { .. }) => format!(
                        "fix `source` in credsync's config, or add [{}] to {}",
                        if entry.source == "default" {
                            "default".to_owned()
                        } else {
                            format!("profile {}", entry.source)
                        },
                        aws.path.display()
                    ),
                    _ => format!("edit the profile in {}", aws.path.display()),
                };
                out.push(Check::fail(format!("{name}: {e}"), fix));
                continue;
            }
        };
        let base = match &plan.base {
            Base::Sso(sso) => match &sso.session {
                Some(s) => format!("SSO (sso-session {s})"),
                None => format!("SSO (legacy, {})", sso.start_url),
            },
            Base::Static { profile, .. } => format!("static keys of {profile}"),
            Base::Login(login) => format!("aws login session {}", login.session),
            Base::Environment => "the environment's keys".to_owned(),
        };
        let how = match plan.hops.len() {
            0 => base,
            1 => format!("assume-role {} from {base}", plan.hops[0].role_arn),
            n => format!("a chain of {n} roles from {base}"),
        };
        out.push(Check::ok(format!("{name}: resolves through {how}")));
        if let Some(sso) = plan.sso()
            && seen_sessions.insert(sso.cache_key().to_owned())
        {
            out.push(check_token(sso, &token(sso), now));
        }
        if let Some(l) = plan.login()
            && seen_logins.insert(l.session.clone())
        {
            out.push(check_login_entry(l, &login(l), now));
        }
    }
    if let Some(note) = crate::schedule::login_raised_note(cfg.refresh.min_remaining)
        && !seen_logins.is_empty()
    {
        out.push(Check::warn(
            note,
            format!(
                "nothing breaks: to make this the plan rather than a correction, set \
                 min_remaining = \"{}\" or more under [refresh] in credsync's config",
                humantime::format_duration(crate::schedule::LOGIN_MIN_REMAINING)
            ),
        ));
    }
    out
}

/// One `aws login` session's cache entry: there, with what a renewal needs (a refresh token and
/// a DPoP key that loads), and how long its credentials last. Names the file, never a value.
pub(crate) fn check_login_entry(login: &LoginProfile, read: &LoginRead, now: SystemTime) -> Check {
    use crate::login_cache::{ParseError, Read};
    use crate::secret::ExposeSecret;
    let who = format!("aws login session {}", login.session);
    let (path, read) = read;
    let file = path.display();
    let sign_in = format!("run `{}`", login.login_command());
    let cannot_renew = |why: String| {
        Check::fail(
            format!("{who}: {why} in its cache entry {file}, so it cannot be renewed"),
            format!("sign in again: {sign_in}"),
        )
    };
    match read {
        Err(e) => Check::fail(
            format!("{who}: cannot read its cache entry {file}: {e}"),
            format!("make {file} readable by this user (it is yours, mode 600), or {sign_in}"),
        ),
        Ok(Read::Missing) => Check::fail(
            format!("{who}: not signed in (no cache entry at {file})"),
            sign_in,
        ),
        Ok(Read::Unparsable(ParseError::Missing(field @ ("refreshToken" | "dpopKey")))) => {
            cannot_renew(format!("no {field}"))
        }
        Ok(Read::Unparsable(e)) => Check::warn(
            format!("{who}: its cache entry {file} does not parse ({e})"),
            format!(
                "run `credsync doctor` again in a moment (the AWS CLI may be writing it); if it \
                 stays, remove {file} and {sign_in}"
            ),
        ),
        Ok(Read::Token(t)) => match crate::signin::DpopKey::from_pem(t.dpop_key.expose_secret()) {
            Err(e) => cannot_renew(e.replacen("the dpopKey", "a dpopKey that does not load:", 1)),
            Ok(_) => match t.expires_at.duration_since(now) {
                Ok(left) if !left.is_zero() => Check::ok(format!(
                    "{who}: credentials valid for {}, renewable",
                    humane(left)
                )),
                _ => Check::warn(
                    format!(
                        "{who}: its credentials have expired; credsync renews them with the \
                         refresh token unless the session has ended"
                    ),
                    "start the daemon (`credsync service install`) or run `credsync sync`",
                ),
            },
        },
    }
}

// ---------------------------------------------------------------------------------------------
// The credentials file.

/// What the credentials file is on disk (the edge fills this with [`FileFacts::of`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileFacts {
    Missing {
        /// Whether its directory exists and credsync can create files in it.
        dir_writable: bool,
    },
    NotAFile,
    File {
        mode: u32,
        writable: bool,
        utf8: bool,
    },
    /// A file on a Windows drive seen from WSL (drvfs): its mode is made up by the mount (`chmod`
    /// does not change it unless the drive is mounted with `metadata`, microsoft/WSL#5956) and
    /// there are no POSIX ACLs; Windows' own permissions apply.
    OnWindowsDrive {
        writable: bool,
        utf8: bool,
    },
    Unreadable(String),
    /// Read, but refused by credsync (too large): why, the file named.
    Refused(String),
}

impl FileFacts {
    /// Reads what the checks need about `path` (following symlinks, as credsync writes);
    /// `mounts` says whether it is on a Windows drive.
    pub fn of(path: &Path, mounts: &MountTable) -> FileFacts {
        use crate::user_file::{Kind, Problem};
        use std::os::unix::fs::PermissionsExt;
        let bytes = match crate::user_file::read(path, Kind::Credentials) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                return FileFacts::Missing {
                    dir_writable: path.parent().is_some_and(|d| d.is_dir() && access_w(d)),
                };
            }
            Err(e) if e.is_not_a_file() => return FileFacts::NotAFile,
            Err(e) => {
                return match e.problem {
                    Problem::Io { message, .. } => FileFacts::Unreadable(message),
                    _ => FileFacts::Refused(e.to_string()),
                };
            }
        };
        let utf8 = std::str::from_utf8(&bytes).is_ok();
        if mounts.holds_windows_file(path) {
            return FileFacts::OnWindowsDrive {
                writable: access_w(path),
                utf8,
            };
        }
        match std::fs::metadata(path) {
            Ok(m) => FileFacts::File {
                mode: m.permissions().mode() & 0o7777,
                writable: access_w(path),
                utf8,
            },
            Err(e) => FileFacts::Unreadable(e.to_string()),
        }
    }

    /// Whether the file's mode and POSIX ACL mean what they say, so that advice about them
    /// (chmod, setfacl, who can read it) applies: not on a Windows drive.
    pub fn has_posix_permissions(&self) -> bool {
        !matches!(self, FileFacts::OnWindowsDrive { .. })
    }
}

/// `access(path, W_OK)`: whether this process may write `path`.
fn access_w(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

/// The credentials file's type, encoding and permissions.
pub fn check_credentials_file(path: &Path, facts: &FileFacts, container_uid: Option<u32>) -> Check {
    let p = path.display();
    match facts {
        FileFacts::Missing { dir_writable: true } => Check::ok(format!(
            "credentials file {p}: does not exist yet; credsync creates it at the first refresh"
        )),
        FileFacts::Missing {
            dir_writable: false,
        } => Check::fail(
            format!(
                "credentials file {p}: does not exist and its directory is missing or not writable"
            ),
            format!(
                "run `mkdir -p -m 0700 {}`",
                path.parent().unwrap_or(Path::new("/")).display()
            ),
        ),
        FileFacts::NotAFile => Check::fail(
            format!("credentials file {p}: not a regular file"),
            "move it away; credsync writes a regular file there",
        ),
        FileFacts::Unreadable(e) => Check::fail(
            format!("credentials file {p}: cannot read it: {e}"),
            format!("run `chown $USER {p}; chmod 0600 {p}`"),
        ),
        FileFacts::Refused(why) => Check::fail(
            why.clone(),
            "point [aws] credentials_file (or AWS_SHARED_CREDENTIALS_FILE) at the credentials file",
        ),
        FileFacts::File { utf8: false, .. } | FileFacts::OnWindowsDrive { utf8: false, .. } => {
            Check::fail(
                format!("credentials file {p}: not UTF-8 text"),
                "save it as UTF-8; botocore and credsync both read it as text",
            )
        }
        FileFacts::OnWindowsDrive {
            writable: false, ..
        } => Check::fail(
            format!("credentials file {p}: not writable by you"),
            "give your Windows account write access to it (its Properties > Security on \
             Windows); Linux's chmod and chown do not change a file on a Windows drive",
        ),
        FileFacts::OnWindowsDrive { .. } => Check::ok(format!(
            "credentials file {p}: writable, on a Windows drive (its Windows permissions apply, \
             not a Linux mode)"
        )),
        FileFacts::File {
            writable: false, ..
        } => Check::fail(
            format!("credentials file {p}: not writable by you"),
            format!("run `chown $USER {p}; chmod u+w {p}`"),
        ),
        FileFacts::File { mode, .. } if mode & 0o077 != 0 && container_uid.is_none() => {
            Check::warn(
                format!("credentials file {p}: mode {mode:04o} lets other users read credentials"),
                format!(
                    "run `chmod 0600 {p}` (containers that need it: set [container] uid and use \
                     the view)"
                ),
            )
        }
        FileFacts::File { mode, .. } => {
            Check::ok(format!("credentials file {p}: mode {mode:04o}, writable"))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// What the containers can read on the host: the credentials file's long-lived keys, and which
// host account the container uid is.

/// Warns when uid `uid` (the containers' user, as a host uid; `who` says which) can read the
/// credentials file at `path` (its `file` and `dir` permissions, ACL included) while `text`
/// holds long-lived keys credsync does not manage: every process in the containers can then
/// read them. `None` when that is not the case, or when the file's permissions mean nothing
/// (`facts`: on a Windows drive).
pub fn check_credentials_exposure(
    path: &Path,
    text: &str,
    facts: &FileFacts,
    file: Option<&acl::Perms>,
    dir: Option<&acl::Perms>,
    uid: u32,
    who: &str,
) -> Option<Check> {
    if !facts.has_posix_permissions() {
        return None;
    }
    let file = file?;
    let readable = acl::granted(file, uid) & acl::READ != 0
        && dir.is_none_or(|d| acl::granted(d, uid) & acl::SEARCH != 0);
    if !readable {
        return None;
    }
    let sections = long_lived_sections(text);
    if sections.is_empty() {
        return None;
    }
    let p = path.display();
    let named = file
        .acl
        .as_ref()
        .is_some_and(|a| a.iter().any(|e| e.tag == acl::TAG_USER && e.id == uid));
    let how = if file.owner == uid {
        "it owns the file".to_owned()
    } else if named {
        format!("an ACL entry user:{uid}")
    } else {
        format!("its mode {:04o}", file.mode)
    };
    let list = sections
        .iter()
        .map(|s| format!("[{s}]"))
        .collect::<Vec<_>>()
        .join(", ");
    let undo = if named {
        format!(
            "set share_credentials_file = false in [container] (credsync then removes the ACL \
             entry it added), or remove one you added: setfacl -x u:{uid} {p}"
        )
    } else {
        format!("chmod 0600 {p}")
    };
    Some(Check::warn(
        format!(
            "credentials file {p}: uid {uid} ({who}) can read it ({how}), and it holds long-lived \
             keys (AKIA…) in {list}: every process in the containers can read them"
        ),
        format!(
            "give the containers the container view instead, which holds only the short-lived \
             credentials credsync writes: [container] in credsync's config, AWS_CONFIG_FILE=\
             <path_in_container>/config and AWS_SHARED_CREDENTIALS_FILE=/dev/null in the \
             project's .env (docs/astro.md); then {undo}"
        ),
    ))
}

/// Which host uid `[container] uid` gets the ACL, and why (`host`: the mapping's result); warns
/// when that uid is an account on this machine (`account`, from `getpwuid`), since the ACL
/// then lets that account read the view as well.
pub fn check_container_uid(
    container_uid: u32,
    host: &Result<uidmap::HostUid, uidmap::MapError>,
    account: Option<&str>,
) -> Vec<Check> {
    let h = match host {
        Ok(h) => h,
        Err(e) => {
            return vec![Check::fail(
                format!("[container] uid {container_uid}: no host uid to grant access to"),
                e.to_string(),
            )];
        }
    };
    let mut out = vec![Check::ok(format!(
        "[container] uid {container_uid}: credsync grants host uid {} read access ({})",
        h.uid, h.why
    ))];
    if let Some(name) = account {
        out.push(Check::warn(
            format!(
                "host uid {} is the account {name:?} on this machine: the ACL that lets the \
                 containers read the view lets {name:?} read it too",
                h.uid
            ),
            format!(
                "if {name:?} is not meant to read your credentials, run the containers as a uid \
                 with no account here (and set [container] uid to it), or remove that account; \
                 `getent passwd {}` shows it",
                h.uid
            ),
        ));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The service and the daemon.

/// Whether the service is installed and runs this binary. `text` is the service file's
/// content (`None`: not installed).
pub fn check_service(
    platform: Platform,
    file: &Path,
    text: Option<&str>,
    current_exe: &Path,
) -> Check {
    let Some(text) = text else {
        return Check::warn(
            format!("service: not installed ({} does not exist)", file.display()),
            "run `credsync service install`",
        );
    };
    match service::installed_exe(platform, text) {
        None => Check::fail(
            format!("service: {} names no program", file.display()),
            "run `credsync service install`",
        ),
        Some(exe) if exe == current_exe => Check::ok(format!(
            "service: installed ({}), runs {}",
            file.display(),
            exe.display()
        )),
        Some(exe) => Check::fail(
            format!(
                "service: {} runs {}, not this credsync ({})",
                file.display(),
                exe.display(),
                current_exe.display()
            ),
            "run `credsync service install`",
        ),
    }
}

/// A service `brew services` manages (its plist at `file`): Homebrew keeps it running the
/// formula's current binary.
pub fn check_brew_service(file: &Path) -> Check {
    Check::ok(format!(
        "service: the Homebrew service ({}); `brew services restart credsync` restarts it",
        file.display()
    ))
}

/// What doctor can say about desktop notifications on `platform` (in a WSL distribution when
/// `wsl`; `mounts` says where Windows' drives are, `installed` whether a program is at a path).
/// On macOS, `osascript`'s notifications are attributed to Script Editor and shown only while
/// Script Editor may notify, while `osascript` exits 0 either way: credsync cannot see it, the
/// user can check. In WSL, whether Windows PowerShell, which shows them as Windows toasts, can
/// run from here; if not, there is no notifier. Nothing on Linux (a missing notifier is logged
/// by the daemon) or with `[notify] command` set or notifications off.
pub fn check_notifications(
    platform: Option<Platform>,
    wsl: Option<&Wsl>,
    mounts: &MountTable,
    notify: &NotifyConfig,
    installed: &dyn Fn(&Path) -> bool,
) -> Option<Check> {
    if !notify.enabled || notify.command.is_some() {
        return None;
    }
    let instead = "set [notify] command to a program of your own (it gets the title and the \
                   text as arguments), or [notify] enabled = false";
    match Desktop::of(platform, wsl, mounts) {
        Desktop::MacOs => {}
        Desktop::Windows { powershell } => {
            let none = |why: String, fix: String| {
                Check::warn(
                    format!("notifications: none in this WSL distribution: {why}"),
                    fix,
                )
            };
            return Some(if !wsl.is_some_and(|w| w.interop) {
                none(
                    "Windows programs cannot run from it (WSL's interop is not registered), so \
                     no Windows toast can be shown"
                        .to_owned(),
                    format!(
                        "turn interop on (`[interop] enabled=true` in /etc/wsl.conf, then \
                         `wsl.exe --shutdown`), or {instead}"
                    ),
                )
            } else if !powershell.is_absolute() || !installed(&powershell) {
                none(
                    format!(
                        "Windows PowerShell, which shows the Windows toasts, is not at {}",
                        powershell.display()
                    ),
                    format!("mount the C: drive where WSL mounts it (/mnt/c), or {instead}"),
                )
            } else {
                Check::ok(format!(
                    "notifications: shown as Windows toasts by Windows PowerShell ({}); \
                     Windows lists them as Windows PowerShell's in Settings > System > \
                     Notifications, and Do not disturb hides them",
                    powershell.display()
                ))
            });
        }
        Desktop::Freedesktop | Desktop::Unknown => return None,
    }
    Some(Check::ok(
        "notifications: sent with osascript, so macOS shows them as Script Editor's, and only \
         while Script Editor may notify: check System Settings > Notifications > Script Editor \
         (it is listed there once a script has notified; `osascript -e 'display notification \
         \"test\" with title \"credsync\"'` sends one)",
    ))
}

/// What doctor found of Windows' `.wslconfig` (`%UserProfile%\.wslconfig`), WSL's settings for
/// all distributions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WslConfig {
    /// Read at `path` (as seen from WSL).
    Read {
        path: std::path::PathBuf,
        text: String,
    },
    /// There is none at `path`.
    Missing { path: std::path::PathBuf },
    /// Not looked for: why.
    Unknown(String),
}

/// In a WSL distribution: whether WSL keeps it running while idle (`instanceIdleTimeout`
/// negative in `.wslconfig`; else credsync stops with it, and the row says what keeps it
/// running), and without systemd, that no service runs credsync.
pub fn check_wsl(wsl: &Wsl, wslconfig: &WslConfig) -> Vec<Check> {
    let mut out = Vec::new();
    let (said, path) = match wslconfig {
        WslConfig::Read { path, text } => (platform::instance_idle_timeout(text), Some(path)),
        WslConfig::Missing { path } => (None, Some(path)),
        WslConfig::Unknown(_) => (None, None),
    };
    match (said, path) {
        (Some(ms), Some(path)) if ms < 0 => out.push(Check::ok(format!(
            "WSL: instanceIdleTimeout={ms} in {}: WSL keeps this distribution running while \
             idle, and credsync with it",
            path.display()
        ))),
        _ => {
            let found = match (wslconfig, said) {
                (WslConfig::Read { path, .. }, Some(ms)) => {
                    format!(" ({} sets instanceIdleTimeout={ms})", path.display())
                }
                (WslConfig::Read { path, .. }, None) => {
                    format!(" ({} does not set instanceIdleTimeout)", path.display())
                }
                (WslConfig::Missing { path }, _) => format!(" (there is no {})", path.display()),
                (WslConfig::Unknown(why), _) => format!(" (.wslconfig not read: {why})"),
            };
            out.push(Check::warn(
                format!("{}{found}", Wsl::IDLE_SHUTDOWN),
                Wsl::KEEP_RUNNING,
            ));
        }
    }
    if !wsl.systemd {
        out.push(Check::warn(
            "WSL: this distribution runs without systemd, so no service starts credsync",
            service::wsl_without_systemd(),
        ));
    }
    out
}

/// Whether the installed systemd unit (`text`) runs without its sandbox, which install leaves
/// out where it fails to start, and why; `restricted`: [`service::userns_restricted`] on this
/// machine, the usual reason on Ubuntu. `None` for a unit with its sandbox, or no unit.
pub fn check_sandbox(platform: Platform, text: Option<&str>, restricted: bool) -> Option<Check> {
    if platform != Platform::Linux {
        return None;
    }
    let why = service::unit_sandbox_off(text?)?;
    Some(if restricted {
        Check::warn(
            format!(
                "service: runs without its sandbox ({why}): {}",
                service::USERNS_RESTRICTED
            ),
            service::USERNS_FIX,
        )
    } else {
        Check::warn(
            format!(
                "service: runs without its sandbox: it failed to start on this machine ({why})"
            ),
            "run `credsync service install` again: it tries the sandbox first, and says why \
             when it still fails",
        )
    })
}

/// Whether the running daemon acts on what `credsync` in this shell would: the same config
/// file, AWS config file, credentials file and profiles. A service installed from another
/// environment (another `AWS_PROFILE`, `AWS_CONFIG_FILE`, `AWS_SHARED_CREDENTIALS_FILE`)
/// manages other things than `credsync sync` here. A daemon too old to report its files is
/// compared on what it reports.
pub fn check_daemon_matches(cfg: &Config, status: &Status) -> Check {
    let shell = |p: &Path| p.display().to_string();
    let mut diffs: Vec<String> = Vec::new();
    let mut compare = |what: &str, daemon: Option<&str>, here: Option<&Path>| {
        let same = match (daemon, here) {
            (Some(d), Some(h)) => same_path(Path::new(d), h),
            (None, None) => true,
            _ => false,
        };
        if !same {
            let say = |v: Option<String>| v.unwrap_or_else(|| "none".to_owned());
            diffs.push(format!(
                "{what} {} (this shell: {})",
                say(daemon.map(str::to_owned)),
                say(here.map(shell))
            ));
        }
    };
    if let Some(eff) = &status.daemon.effective {
        let here = match &cfg.origin {
            crate::config::Origin::File(p) => Some(p.as_path()),
            crate::config::Origin::Default { .. } => None,
        };
        compare("config file", eff.config_file.as_deref(), here);
        compare(
            "AWS config file",
            Some(&eff.aws_config_file),
            Some(&cfg.aws.config_file),
        );
    }
    compare(
        "credentials file",
        Some(&status.daemon.credentials_file),
        Some(&cfg.aws.credentials_file),
    );
    let names = |pairs: &mut dyn Iterator<Item = (&str, &str)>| -> Vec<String> {
        let set: BTreeSet<String> = pairs
            .map(|(s, t)| {
                if s == t {
                    s.to_owned()
                } else {
                    format!("{s} -> {t}")
                }
            })
            .collect();
        set.into_iter().collect()
    };
    let daemon_profiles = names(
        &mut status
            .profiles
            .iter()
            .map(|p| (p.source.as_str(), p.target.as_str())),
    );
    let shell_profiles = names(
        &mut cfg
            .profiles
            .iter()
            .map(|p| (p.source.as_str(), p.target.as_str())),
    );
    if daemon_profiles != shell_profiles {
        diffs.push(format!(
            "profiles {} (this shell: {})",
            daemon_profiles.join(", "),
            shell_profiles.join(", ")
        ));
    }
    if diffs.is_empty() {
        return Check::ok("daemon: manages the files and profiles credsync in this shell would");
    }
    Check::warn(
        format!(
            "daemon: manages other things than credsync in this shell would: {}",
            diffs.join("; ")
        ),
        "run `credsync service install` from the shell whose AWS_PROFILE, AWS_CONFIG_FILE and \
         AWS_SHARED_CREDENTIALS_FILE the service should use (install carries them into the \
         service), or set them in this shell as the daemon has them",
    )
}

/// Whether two paths name the same file: equal, or equal once canonicalised.
fn same_path(a: &Path, b: &Path) -> bool {
    a == b
        || matches!(
            (a.canonicalize(), b.canonicalize()),
            (Ok(x), Ok(y)) if x == y
        )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::{self, Env};
    use crate::sso_cache;
    use crate::status::{DaemonInfo, ProfileStatus, SessionStatus, State};
    use std::path::PathBuf;
    use std::time::Duration;

    /// The worst level among `checks` (`Ok` when empty).
    pub(crate) fn worst(checks: &[Check]) -> Level {
        checks.iter().map(|c| c.level).max().unwrap_or(Level::Ok)
    }

    const HOUR: Duration = Duration::from_secs(3600);

    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn env() -> Env {
        Env {
            home: PathBuf::from("/home/u"),
            vars: BTreeMap::new(),
        }
    }

    fn cfg(text: &str) -> Config {
        config::parse(text, Path::new("/c.toml"), &env()).unwrap()
    }

    const AWS: &str = "[sso-session corp]\nsso_start_url = https://x.awsapps.com/start\nsso_region = us-east-1\n\n[profile dev]\nsso_session = corp\nsso_account_id = 111111111111\nsso_role_name = Dev\n\n[profile admin]\nrole_arn = arn:aws:iam::222222222222:role/Admin\nsource_profile = dev\n\n[profile keys]\nregion = eu-west-1\n";

    fn token(expires: SystemTime, refresh: bool) -> TokenRead {
        let reg = if refresh {
            ",\"refreshToken\":\"r\",\"clientId\":\"c\",\"clientSecret\":\"s\",\"registrationExpiresAt\":\"2099-01-01T00:00:00Z\""
        } else {
            ""
        };
        let json = format!(
            "{{\"accessToken\":\"a\",\"expiresAt\":\"{}\"{reg}}}",
            crate::timefmt::rfc3339(expires)
        );
        Ok(sso_cache::Read::Token(
            sso_cache::parse(json.as_bytes()).unwrap(),
        ))
    }

    #[test]
    fn profiles_and_tokens() {
        let c = cfg(
            "[[profiles]]\nsource = \"dev\"\n[[profiles]]\nsource = \"admin\"\n[[profiles]]\nsource = \"nope\"\n[[profiles]]\nsource = \"keys\"\n",
        );
        let aws = crate::aws_profile::parse(AWS, Path::new("/h/.aws/config")).unwrap();
        let asked = std::cell::Cell::new(0);
        let checks = check_profiles(
            &c,
            &aws,
            "",
            &|sso| {
                asked.set(asked.get() + 1);
                assert_eq!(sso.cache_key(), "corp");
                token(t0() + 2 * HOUR, true)
            },
            &|_| unreachable!(),
            t0(),
        );
        assert_eq!(asked.get(), 1, "one token read per sso-session");
        let text = render(&checks);
        assert!(
            text.contains("ok    profile dev -> [dev]: resolves through SSO (sso-session corp)"),
            "{text}"
        );
        assert!(
            text.contains("SSO token of sso-session corp: valid for 2h"),
            "{text}"
        );
        assert!(text.contains("profile admin -> [admin]: resolves through assume-role arn:aws:iam::222222222222:role/Admin"), "{text}");
        assert!(text.contains("fail  profile nope -> [nope]"), "{text}");
        assert!(
            text.contains("add [profile nope] to /h/.aws/config"),
            "{text}"
        );
        assert!(text.contains("fail  profile keys -> [keys]"), "{text}");
        assert_eq!(worst(&checks), Level::Fail);

        // A managed section is not a static source: "keys" stays unresolvable with it.
        let creds = "# managed by credsync; expires 2030-01-01T00:00:00Z\n[keys]\naws_access_key_id = A\naws_secret_access_key = B\n";
        let only_keys = cfg("[[profiles]]\nsource = \"keys\"\n");
        assert_eq!(
            worst(&check_profiles(
                &only_keys,
                &aws,
                creds,
                &|_| unreachable!(),
                &|_| unreachable!(),
                t0()
            )),
            Level::Fail
        );
        let creds = "[keys]\naws_access_key_id = A\naws_secret_access_key = B\n";
        assert_eq!(
            worst(&check_profiles(
                &only_keys,
                &aws,
                creds,
                &|_| unreachable!(),
                &|_| unreachable!(),
                t0()
            )),
            Level::Ok
        );
    }

    /// A login cache entry as `aws login` writes it, with `drop` left out.
    fn login_entry(expires: SystemTime, drop: &str) -> String {
        let (_, pem) = crate::signin::DpopKey::generate().unwrap();
        let mut v = serde_json::json!({
            "accessToken": {
                "accessKeyId": "ASIASECRETKEYID",
                "secretAccessKey": "secret-access-key-value",
                "sessionToken": "session-token-value",
                "accountId": "111122223333",
                "expiresAt": crate::timefmt::rfc3339(expires),
            },
            "tokenType": "aws_sigv4",
            "clientId": "arn:aws:signin:::devtools/same-device",
            "refreshToken": "refresh-token-value",
            "idToken": "id-token-value",
            "dpopKey": pem,
        });
        v.as_object_mut().unwrap().remove(drop);
        v.to_string()
    }

    #[test]
    fn login_sessions_cache_entries_are_checked_and_never_shown() {
        let aws = crate::aws_profile::parse(
            "[profile me]\nlogin_session = arn:aws:iam::111122223333:user/me\n\n\
             [profile admin]\nrole_arn = arn:aws:iam::444455556666:role/A\nsource_profile = me\n",
            Path::new("/h/.aws/config"),
        )
        .unwrap();
        let c = cfg(
            "[[profiles]]\nsource = \"me\"\ntarget = \"me-keys\"\n[[profiles]]\nsource = \"admin\"\n",
        );
        let path = PathBuf::from("/h/.aws/login/cache/e.json");
        let entry = |text: Option<&str>| -> LoginRead {
            let read = match text {
                None => crate::login_cache::Read::Missing,
                Some(t) => match crate::login_cache::parse(t.as_bytes()) {
                    Ok(t) => crate::login_cache::Read::Token(Box::new(t)),
                    Err(e) => crate::login_cache::Read::Unparsable(e),
                },
            };
            (path.clone(), Ok(read))
        };
        let run = |read: &dyn Fn() -> LoginRead| {
            let asked = std::cell::Cell::new(0);
            let checks = check_profiles(
                &c,
                &aws,
                "",
                &|_| unreachable!(),
                &|l| {
                    asked.set(asked.get() + 1);
                    assert_eq!(l.session, "arn:aws:iam::111122223333:user/me");
                    read()
                },
                t0(),
            );
            assert_eq!(asked.get(), 1, "one entry read per session");
            let text = render(&checks);
            for secret in [
                "SECRETKEYID",
                "secret-access",
                "session-token",
                "refresh-token",
                "id-token",
                "PRIVATE KEY",
            ] {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
            (worst(&checks), text)
        };
        let who = "aws login session arn:aws:iam::111122223333:user/me";
        let good = login_entry(t0() + 10 * 60 * Duration::from_secs(1), "");
        let (level, text) = run(&|| entry(Some(&good)));
        assert_eq!(level, Level::Ok, "{text}");
        assert!(
            text.contains(&format!("{who}: credentials valid for 10m, renewable")),
            "{text}"
        );

        let (level, text) = run(&|| entry(None));
        assert_eq!(level, Level::Fail);
        assert!(
            text.contains("not signed in (no cache entry at /h/.aws/login/cache/e.json)"),
            "{text}"
        );
        assert!(text.contains("run `aws login --profile me`"), "{text}");

        for field in ["refreshToken", "dpopKey"] {
            let text_of = login_entry(t0() + HOUR, field);
            let (level, text) = run(&|| entry(Some(&text_of)));
            assert_eq!(level, Level::Fail);
            assert!(
                text.contains(&format!("no {field} in its cache entry /h/.aws/login/cache/e.json, so it cannot be renewed")),
                "{text}"
            );
            assert!(
                text.contains("sign in again: run `aws login --profile me`"),
                "{text}"
            );
        }
        let bad_key = good.replace(
            // The entry is JSON: its line breaks are `\\n`.
            "-----BEGIN EC PRIVATE KEY-----\\n",
            "-----BEGIN EC PRIVATE KEY-----\\nAAAA",
        );
        let (level, text) = run(&|| entry(Some(&bad_key)));
        assert_eq!(level, Level::Fail, "{text}");
        assert!(text.contains("a dpopKey that does not load"), "{text}");

        let (level, text) = run(&|| entry(Some("{\"accessToken\": {")));
        assert_eq!(level, Level::Warn);
        assert!(
            text.contains("its cache entry /h/.aws/login/cache/e.json does not parse"),
            "{text}"
        );
        assert!(
            text.contains("remove /h/.aws/login/cache/e.json and run `aws login --profile me`"),
            "{text}"
        );

        let (level, text) = run(&|| (path.clone(), Err("Permission denied (os error 13)".into())));
        assert_eq!(level, Level::Fail);
        assert!(
            text.contains(
                "cannot read its cache entry /h/.aws/login/cache/e.json: Permission denied"
            ),
            "{text}"
        );

        let expired = login_entry(t0() - HOUR, "");
        let (level, text) = run(&|| entry(Some(&expired)));
        assert_eq!(level, Level::Warn);
        assert!(text.contains("its credentials have expired"), "{text}");
    }

    #[test]
    fn a_short_min_remaining_raised_for_login_sessions_is_said() {
        let aws = crate::aws_profile::parse(
            "[profile me]\nlogin_session = arn:aws:iam::111122223333:user/me\n",
            Path::new("/h/.aws/config"),
        )
        .unwrap();
        let fresh = login_entry(t0() + HOUR, "");
        let read = |_: &LoginProfile| -> LoginRead {
            let t = crate::login_cache::parse(fresh.as_bytes()).unwrap();
            (
                PathBuf::from("/e.json"),
                Ok(crate::login_cache::Read::Token(Box::new(t))),
            )
        };
        let profiles = "[[profiles]]\nsource = \"me\"\ntarget = \"me-keys\"\n";
        let short = cfg(&format!("{profiles}[refresh]\nmin_remaining = \"3m\"\n"));
        let text = render(&check_profiles(
            &short,
            &aws,
            "",
            &|_| unreachable!(),
            &read,
            t0(),
        ));
        assert!(
            text.contains("min_remaining = 3m is raised to 7m for aws login sessions"),
            "{text}"
        );
        let default = cfg(profiles);
        let text = render(&check_profiles(
            &default,
            &aws,
            "",
            &|_| unreachable!(),
            &read,
            t0(),
        ));
        assert!(!text.contains("raised"), "{text}");
        // Without a login profile, nothing is raised, nothing said.
        let sso = crate::aws_profile::parse(AWS, Path::new("/h/.aws/config")).unwrap();
        let c = cfg("[[profiles]]\nsource = \"dev\"\n[refresh]\nmin_remaining = \"3m\"\n");
        let text = render(&check_profiles(
            &c,
            &sso,
            "",
            &|_| token(t0() + HOUR, true),
            &|_| unreachable!(),
            t0(),
        ));
        assert!(!text.contains("raised"), "{text}");
    }

    #[test]
    fn an_ended_login_session_is_login_required_with_its_command() {
        let mut s = SessionStatus::new(
            "arn:aws:iam::111122223333:user/me",
            "aws login --profile me",
        );
        s.aws_login = true;
        s.not_refreshable = Some(crate::token_policy::NotRefreshable::RefreshRefused);
        let mut status: Status = serde_json::from_value(serde_json::json!({
            "version": 2,
            "daemon": {"pid": 1, "version": "x", "started_at": "2026-11-29T10:00:00Z",
                       "config": "c", "credentials_file": "f"},
            "profiles": [],
            "sso_sessions": [],
        }))
        .unwrap();
        status.sso_sessions = vec![s.clone()];
        let checks = check_sessions(&status, HOUR);
        assert_eq!(worst(&checks), Level::Fail);
        let text = render(&checks);
        assert!(text.contains("aws login session arn:aws:iam::111122223333:user/me: ended (AWS Sign-In refused its refresh token), so its profiles are login_required"), "{text}");
        assert!(
            text.contains("sign in again: run `aws login --profile me`"),
            "{text}"
        );
        // A session that can be renewed: nothing to say.
        s.not_refreshable = None;
        status.sso_sessions = vec![s];
        assert!(check_sessions(&status, HOUR).is_empty());
    }

    #[test]
    fn config_warnings_and_errors() {
        let c = check_config(&Ok(cfg("[refresh]\ntoken_refresh_before = \"10m\"\n")));
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].level, Level::Warn);
        assert_eq!(
            c[1].fix.as_deref(),
            Some("set token_refresh_before = \"30m\" under [refresh] in credsync's config")
        );
        let err = config::parse("[aws\n", Path::new("/c.toml"), &env());
        let c = check_config(&err);
        assert_eq!(c[0].level, Level::Fail);
        assert!(c[0].what.contains("/c.toml:1:"), "{}", c[0].what);
        let aws = crate::aws_profile::parse("[default]\n[default]\n", Path::new("/a"));
        assert_eq!(check_aws_config(&aws, Path::new("/a")).level, Level::Fail);
    }

    #[test]
    fn credentials_file_permissions() {
        let p = Path::new("/h/.aws/credentials");
        let f = |mode, writable, utf8| FileFacts::File {
            mode,
            writable,
            utf8,
        };
        assert_eq!(
            check_credentials_file(p, &f(0o600, true, true), None).level,
            Level::Ok
        );
        let c = check_credentials_file(p, &f(0o644, true, true), None);
        assert_eq!(c.level, Level::Warn);
        assert!(
            c.fix
                .unwrap()
                .starts_with("run `chmod 0600 /h/.aws/credentials`")
        );
        assert_eq!(
            check_credentials_file(p, &f(0o640, true, true), Some(50000)).level,
            Level::Ok
        );
        assert_eq!(
            check_credentials_file(p, &f(0o600, false, true), None).level,
            Level::Fail
        );
        assert_eq!(
            check_credentials_file(p, &f(0o600, true, false), None).level,
            Level::Fail
        );
        assert_eq!(
            check_credentials_file(p, &FileFacts::NotAFile, None).level,
            Level::Fail
        );
        assert_eq!(
            check_credentials_file(p, &FileFacts::Missing { dir_writable: true }, None).level,
            Level::Ok
        );
        assert_eq!(
            check_credentials_file(
                p,
                &FileFacts::Missing {
                    dir_writable: false
                },
                None
            )
            .level,
            Level::Fail
        );
    }

    #[test]
    fn a_unit_without_its_sandbox_is_explained() {
        let mut spec = service::ServiceSpec::packaged("/usr/bin/credsync".into());
        let with = service::render_systemd_unit(&spec);
        spec.sandbox = service::Sandbox::Off("status=217/USER".into());
        let without = service::render_systemd_unit(&spec);
        assert!(check_sandbox(Platform::Linux, Some(&with), true).is_none());
        assert!(check_sandbox(Platform::Linux, None, true).is_none());
        assert!(check_sandbox(Platform::MacOs, Some(&without), true).is_none());
        // On Ubuntu: AppArmor's user-namespace rule, and how to lift it.
        let c = check_sandbox(Platform::Linux, Some(&without), true).expect("a check");
        assert_eq!(c.level, Level::Warn);
        assert!(c.what.contains("(status=217/USER)"), "{}", c.what);
        assert!(
            c.what
                .contains("kernel.apparmor_restrict_unprivileged_userns = 1"),
            "{}",
            c.what
        );
        let fix = c.fix.unwrap();
        assert!(
            fix.contains("sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"),
            "{fix}"
        );
        // Elsewhere: the reason the unit recorded, and install to try again.
        let c = check_sandbox(Platform::Linux, Some(&without), false).expect("a check");
        assert!(!c.what.contains("apparmor"), "{}", c.what);
        assert!(c.what.contains("status=217/USER"), "{}", c.what);
        assert!(c.fix.unwrap().contains("credsync service install"));
    }

    #[test]
    fn service_file_exe() {
        let unit = "ExecStart=/usr/bin/credsync daemon\n";
        let file = Path::new("/h/.config/systemd/user/credsync.service");
        assert_eq!(
            check_service(
                Platform::Linux,
                file,
                Some(unit),
                Path::new("/usr/bin/credsync")
            )
            .level,
            Level::Ok
        );
        let c = check_service(
            Platform::Linux,
            file,
            Some(unit),
            Path::new("/home/u/.cargo/bin/credsync"),
        );
        assert_eq!(c.level, Level::Fail);
        assert_eq!(c.fix.as_deref(), Some("run `credsync service install`"));
        let c = check_service(Platform::Linux, file, None, Path::new("/x"));
        assert_eq!(
            (c.level, c.fix.as_deref()),
            (Level::Warn, Some("run `credsync service install`"))
        );
        // The program is read by the service module, which wrote it.
        let plist = "<key>ProgramArguments</key>\n<array>\n\t\t<string>/Apps/a&amp;b/credsync</string>\n\t\t<string>daemon</string>";
        let c = check_service(
            Platform::MacOs,
            file,
            Some(plist),
            Path::new("/Apps/a&b/credsync"),
        );
        assert_eq!(c.level, Level::Ok, "{c:?}");
    }

    #[test]
    fn notifications_say_how_to_allow_script_editor_on_macos_only() {
        let on = NotifyConfig::default();
        let none = MountTable::default();
        let check_notifications = |platform, notify: &NotifyConfig| {
            super::check_notifications(platform, None, &none, notify, &|_: &Path| true)
        };
        let mac = check_notifications(Some(Platform::MacOs), &on).expect("a line on macOS");
        assert_eq!(mac.level, Level::Ok);
        assert!(
            mac.what
                .contains("System Settings > Notifications > Script Editor"),
            "{mac:?}"
        );
        assert!(
            mac.what.contains("osascript -e 'display notification"),
            "{mac:?}"
        );
        assert_eq!(check_notifications(Some(Platform::Linux), &on), None);
        assert_eq!(check_notifications(None, &on), None);
        let off = NotifyConfig {
            enabled: false,
            ..NotifyConfig::default()
        };
        assert_eq!(check_notifications(Some(Platform::MacOs), &off), None);
        let own = NotifyConfig {
            command: Some(vec!["terminal-notifier".into()]),
            ..NotifyConfig::default()
        };
        assert_eq!(check_notifications(Some(Platform::MacOs), &own), None);
    }

    #[test]
    fn notifications_in_wsl_are_windows_toasts_or_a_row_that_says_there_are_none() {
        let on = NotifyConfig::default();
        let mounts = MountTable::parse("C:\\134 /mnt/c 9p rw,aname=drvfs 0 0\n");
        let ps = Path::new("/mnt/c/Windows/System32/WindowsPowerShell/v1.0/powershell.exe");
        let wsl = |interop| Wsl {
            distro: None,
            systemd: true,
            interop,
        };
        let linux = Some(Platform::Linux);
        let there = |p: &Path| p == ps;
        let ok = check_notifications(linux, Some(&wsl(true)), &mounts, &on, &there).unwrap();
        assert_eq!(ok.level, Level::Ok, "{ok:?}");
        assert!(ok.what.contains("Windows toasts") && ok.what.contains(&ps.display().to_string()));
        // No PowerShell there, no interop, no C: drive: none, and what to do instead.
        let gone = check_notifications(linux, Some(&wsl(true)), &mounts, &on, &|_| false).unwrap();
        assert_eq!(gone.level, Level::Warn);
        assert!(gone.what.starts_with("notifications: none"), "{gone:?}");
        assert!(gone.fix.unwrap().contains("[notify] command"));
        let off = check_notifications(linux, Some(&wsl(false)), &mounts, &on, &there).unwrap();
        assert_eq!(off.level, Level::Warn);
        assert!(off.what.contains("interop"), "{off:?}");
        let no_c = MountTable::default();
        let c = check_notifications(linux, Some(&wsl(true)), &no_c, &on, &|_| true).unwrap();
        assert_eq!(c.level, Level::Warn, "{c:?}");
        // The user's own command, or none wanted: nothing to say.
        let own = NotifyConfig {
            command: Some(vec!["wsl-notify-send.exe".into()]),
            ..NotifyConfig::default()
        };
        assert_eq!(
            check_notifications(linux, Some(&wsl(true)), &mounts, &own, &there),
            None
        );
    }

    #[test]
    fn a_credentials_file_on_a_windows_drive_gets_no_mode_advice() {
        let p = Path::new("/mnt/c/Users/ann/.aws/credentials");
        let drive = |writable, utf8| FileFacts::OnWindowsDrive { writable, utf8 };
        let c = check_credentials_file(p, &drive(true, true), None);
        assert_eq!(c.level, Level::Ok, "{c:?}");
        assert!(!c.what.contains("mode 0"), "{c:?}");
        let c = check_credentials_file(p, &drive(false, true), None);
        assert_eq!(c.level, Level::Fail);
        assert!(!c.fix.unwrap().contains("chmod u+w"));
        assert_eq!(
            check_credentials_file(p, &drive(true, false), None).level,
            Level::Fail
        );
        assert!(!drive(true, true).has_posix_permissions());
        assert!(linux_file().has_posix_permissions());
    }

    #[test]
    fn daemon_environment_differs_from_the_shell() {
        let env = Env {
            home: PathBuf::from("/h"),
            vars: [("AWS_PROFILE".to_owned(), "legacy".to_owned())].into(),
        };
        let cfg = crate::config::defaults(&env);
        let status =
            |profile: &str, creds: &str, effective: Option<crate::status::Effective>| Status {
                version: 1,
                daemon: DaemonInfo {
                    pid: 1,
                    version: "0.1.0".into(),
                    started_at: t0(),
                    config: "c".into(),
                    credentials_file: creds.into(),
                    effective,
                    reload_error: None,
                },
                profiles: vec![ProfileStatus::new(profile, profile)],
                sso_sessions: vec![],
            };
        let eff = |config: Option<&str>, aws: &str| {
            Some(crate::status::Effective {
                config_file: config.map(str::to_owned),
                aws_config_file: aws.to_owned(),
            })
        };
        let same = status("legacy", "/h/.aws/credentials", eff(None, "/h/.aws/config"));
        assert_eq!(check_daemon_matches(&cfg, &same).level, Level::Ok);
        // A service installed without AWS_PROFILE and with another credentials file.
        let other = status(
            "default",
            "/h/.aws/credentials-alt",
            eff(None, "/h/.aws/config"),
        );
        let c = check_daemon_matches(&cfg, &other);
        assert_eq!(c.level, Level::Warn);
        assert!(
            c.what.contains(
                "credentials file /h/.aws/credentials-alt (this shell: /h/.aws/credentials)"
            ),
            "{}",
            c.what
        );
        assert!(
            c.what.contains("profiles default (this shell: legacy)"),
            "{}",
            c.what
        );
        assert!(
            c.fix
                .as_deref()
                .unwrap()
                .starts_with("run `credsync service install`")
        );
        // Another config file, another AWS config file.
        let c = check_daemon_matches(
            &cfg,
            &status(
                "legacy",
                "/h/.aws/credentials",
                eff(Some("/h/c.toml"), "/h/aws/config"),
            ),
        );
        assert!(
            c.what.contains("config file /h/c.toml (this shell: none)"),
            "{}",
            c.what
        );
        assert!(
            c.what
                .contains("AWS config file /h/aws/config (this shell: /h/.aws/config)"),
            "{}",
            c.what
        );
        // A daemon that does not report its files is compared on what it does report.
        assert_eq!(
            check_daemon_matches(&cfg, &status("legacy", "/h/.aws/credentials", None)).level,
            Level::Ok
        );
    }

    /// A fix line reads as an instruction: "run" is followed by a command in backticks, and it
    /// never starts with a bare command or a line to paste without saying where.
    fn assert_instruction(fix: &str) {
        let first = fix.lines().next().unwrap_or_default();
        if let Some(rest) = first.strip_prefix("run ") {
            assert!(rest.starts_with('`'), "{fix}");
        }
        for bare in [
            "credsync ",
            "aws ",
            "- ",
            "`",
            "chmod ",
            "chown ",
            "mkdir ",
            "setfacl ",
        ] {
            assert!(!first.starts_with(bare), "not an instruction: {fix}");
        }
    }

    #[test]
    fn every_daemon_fix_is_an_instruction_and_names_the_profiles_own_login() {
        let mut profiles = Vec::new();
        for (i, state) in [
            State::Pending,
            State::Degraded,
            State::Expired,
            State::LoginRequired,
            State::Conflict,
            State::Error,
        ]
        .into_iter()
        .enumerate()
        {
            let mut p = ProfileStatus::new(&format!("p{i}"), &format!("t{i}"));
            p.state = state;
            p.last_error = Some("something failed".into());
            profiles.push(p);
        }
        // Two sessions; the profile that must log in belongs to the second.
        profiles[3].last_error = Some(
            "login required: the SSO session ended; run `credsync login --sso-session ops`".into(),
        );
        let session =
            |name: &str| SessionStatus::new(name, &format!("credsync login --sso-session {name}"));
        let mut status = Status {
            version: 1,
            daemon: DaemonInfo {
                pid: 1,
                version: "0.1.0".into(),
                started_at: t0(),
                config: "c".into(),
                credentials_file: "f".into(),
                effective: None,
                reload_error: None,
            },
            profiles,
            sso_sessions: vec![session("corp"), session("ops")],
        };
        let c = check_daemon(Path::new("/s"), &Ok(status.clone()));
        assert_eq!(c.len(), 7);
        for check in &c[1..] {
            assert_instruction(check.fix.as_deref().unwrap_or_default());
        }
        assert_eq!(
            c[4].fix.as_deref(),
            Some("run `credsync login --sso-session ops`")
        );
        // An error that names no session: the profile's own command, not every session's.
        status.profiles[3].last_error = None;
        let c = check_daemon(Path::new("/s"), &Ok(status));
        assert_eq!(
            c[4].fix.as_deref(),
            Some("run `credsync login --profile p3`")
        );
        assert_instruction(c[0].fix.as_deref().unwrap_or("run `x`"));
        for c in check_daemon(Path::new("/s"), &Err("no answer".into())) {
            assert_instruction(c.fix.as_deref().unwrap_or_default());
        }
        let creds = Path::new("/h/.aws/credentials");
        for facts in [
            FileFacts::Missing {
                dir_writable: false,
            },
            FileFacts::NotAFile,
            FileFacts::Unreadable("denied".into()),
            FileFacts::File {
                mode: 0o644,
                writable: true,
                utf8: true,
            },
            FileFacts::File {
                mode: 0o600,
                writable: false,
                utf8: true,
            },
            FileFacts::File {
                mode: 0o600,
                writable: true,
                utf8: false,
            },
        ] {
            let c = check_credentials_file(creds, &facts, None);
            assert_instruction(c.fix.as_deref().unwrap_or_default());
        }
        let file = Path::new("/u");
        for c in [
            check_service(Platform::Linux, file, None, Path::new("/x")),
            check_service(Platform::Linux, file, Some(""), Path::new("/x")),
            check_service(
                Platform::Linux,
                file,
                Some("ExecStart=/y\n"),
                Path::new("/x"),
            ),
        ] {
            assert_instruction(c.fix.as_deref().unwrap_or_default());
        }
    }

    // -----------------------------------------------------------------------------------------
    // Container exposure.

    const CREDS_WITH_PERSONAL: &str = "[personal]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n\
        aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n\n\
        # managed by credsync; expires 2027-01-15T08:00:00Z\n[dev]\n\
        aws_access_key_id = ASIAXXX\naws_secret_access_key = s\naws_session_token = t\n";

    /// What [`FileFacts::of`] says of a readable, writable file on a Linux file system.
    fn linux_file() -> FileFacts {
        FileFacts::File {
            mode: 0o644,
            writable: true,
            utf8: true,
        }
    }

    fn perms(mode: u32, acl_for: Option<(u32, u16)>) -> acl::Perms {
        acl::Perms {
            owner: 1000,
            mode,
            acl: acl_for.map(|(uid, perm)| {
                vec![
                    acl::Entry {
                        tag: 0x01,
                        perm: 6,
                        id: u32::MAX,
                    },
                    acl::Entry {
                        tag: acl::TAG_USER,
                        perm,
                        id: uid,
                    },
                    acl::Entry {
                        tag: 0x04,
                        perm: 0,
                        id: u32::MAX,
                    },
                    acl::Entry {
                        tag: 0x10,
                        perm,
                        id: u32::MAX,
                    },
                    acl::Entry {
                        tag: 0x20,
                        perm: 0,
                        id: u32::MAX,
                    },
                ]
            }),
        }
    }

    #[test]
    fn long_lived_keys_outside_managed_sections_are_found() {
        assert_eq!(
            long_lived_sections(CREDS_WITH_PERSONAL),
            vec!["personal".to_owned()]
        );
        // A managed section with AKIA keys (static source written through) is credsync's.
        let managed_akia = "# managed by credsync; expires 2027-01-15T08:00:00Z\n[dev]\n\
            aws_access_key_id = AKIAX\naws_secret_access_key = s\n";
        assert!(long_lived_sections(managed_akia).is_empty());
        assert!(long_lived_sections("[tmp]\naws_access_key_id = ASIAX\n").is_empty());
    }

    #[test]
    fn exposure_through_an_acl_names_the_view() {
        let path = Path::new("/home/u/.aws/credentials");
        let dir = perms(0o700, Some((50000, 1)));
        let file = perms(0o640, Some((50000, 4)));
        let c = check_credentials_exposure(
            path,
            CREDS_WITH_PERSONAL,
            &linux_file(),
            Some(&file),
            Some(&dir),
            50000,
            "x",
        )
        .expect("a warning");
        assert_eq!(c.level, Level::Warn);
        assert!(c.what.contains("uid 50000"), "{}", c.what);
        assert!(c.what.contains("ACL entry user:50000"), "{}", c.what);
        assert!(c.what.contains("[personal]"), "{}", c.what);
        let fix = c.fix.unwrap();
        assert!(fix.contains("container view"), "{fix}");
        assert!(
            fix.contains("AWS_SHARED_CREDENTIALS_FILE=/dev/null"),
            "{fix}"
        );
        assert!(fix.contains("share_credentials_file = false"), "{fix}");
        // Another uid's entry does not expose it to 50000.
        let other = perms(0o640, Some((1234, 4)));
        assert_eq!(
            check_credentials_exposure(
                path,
                CREDS_WITH_PERSONAL,
                &linux_file(),
                Some(&other),
                Some(&dir),
                50000,
                "x"
            ),
            None
        );
        // No long-lived keys: nothing to warn about.
        let only_managed = &CREDS_WITH_PERSONAL[CREDS_WITH_PERSONAL.find("# managed").unwrap()..];
        assert_eq!(
            check_credentials_exposure(
                path,
                only_managed,
                &linux_file(),
                Some(&file),
                Some(&dir),
                50000,
                "x"
            ),
            None
        );
    }

    #[test]
    fn exposure_through_the_mode_says_chmod() {
        let path = Path::new("/home/u/.aws/credentials");
        let dir = perms(0o755, None);
        let c = check_credentials_exposure(
            path,
            CREDS_WITH_PERSONAL,
            &linux_file(),
            Some(&perms(0o644, None)),
            Some(&dir),
            50000,
            "x",
        )
        .expect("a warning");
        assert!(c.what.contains("mode 0644"), "{}", c.what);
        assert!(c.fix.as_deref().unwrap().contains("chmod 0600"));
        // 0600, or a directory the uid cannot search: not readable, no warning.
        assert_eq!(
            check_credentials_exposure(
                path,
                CREDS_WITH_PERSONAL,
                &linux_file(),
                Some(&perms(0o600, None)),
                Some(&dir),
                50000,
                "x"
            ),
            None
        );
        assert_eq!(
            check_credentials_exposure(
                path,
                CREDS_WITH_PERSONAL,
                &linux_file(),
                Some(&perms(0o644, None)),
                Some(&perms(0o700, None)),
                50000,
                "x"
            ),
            None
        );
    }

    #[test]
    fn container_uid_that_is_a_host_account_is_a_warning() {
        let host = Ok(uidmap::HostUid {
            uid: 149999,
            engine: crate::config::ContainerEngine::PodmanRootless,
            why: "rootless".into(),
        });
        let checks = check_container_uid(50000, &host, None);
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].level, Level::Ok);
        assert!(
            checks[0].what.contains("host uid 149999"),
            "{}",
            checks[0].what
        );
        let checks = check_container_uid(50000, &host, Some("bob"));
        assert_eq!(checks[1].level, Level::Warn);
        assert!(checks[1].what.contains("\"bob\""), "{}", checks[1].what);
        let err = Err(uidmap::MapError::NoRange {
            path: "/etc/subuid".into(),
            user: "u".into(),
            container_uid: 50000,
        });
        assert_eq!(check_container_uid(50000, &err, None)[0].level, Level::Fail);
    }
}
