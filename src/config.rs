//! credsync's own configuration: the TOML file, its defaults, validation, and the default used
//! when there is no file at all.
//!
//! [`load`] is the I/O edge (which file, reading it); [`parse`] is the pure core that turns the
//! text into a [`Config`], with every error located as `path:line:column`. [`defaults`] is what
//! credsync runs with when there is no file: one profile, `$AWS_PROFILE` or `default`.
//!
//! Default rules (shared by [`parse`] and [`defaults`]):
//! - `aws.config_file`: `$AWS_CONFIG_FILE`, else `~/.aws/config`;
//! - `aws.credentials_file`: `$AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`;
//!   both values are expanded as botocore expands them ([`expand_like_botocore`]), and one set
//!   but empty (botocore then reads no file at all) or relative after expansion is an error;
//! - `aws.sso_cache_dir`: `~/.aws/sso/cache` (botocore has no override for it);
//! - `control.socket`: `$XDG_RUNTIME_DIR/credsync/credsync.sock`, else
//!   `<cache dir>/credsync/credsync.sock` (its own directory, so that directory can be 0700);
//! - no `[[profiles]]` (or `profiles = []`): the single profile `$AWS_PROFILE`, else `default`.
//!
//! `~` and `~/...` expand to the home directory in every path of the file. No target may be
//! `DEFAULT`: configparser (botocore) reads that section as defaults for every other one.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::platform::Platform;

/// How a file is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WriteMode {
    /// Temp file in the same directory, fsync, rename over the target, fsync the directory.
    #[default]
    Atomic,
    /// Rewrite the same inode under an advisory lock (for single-file bind mounts).
    InPlace,
}

/// The process environment as config resolution sees it (injected, so tests need no real env).
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub home: PathBuf,
    pub vars: BTreeMap<String, String>,
}

impl Env {
    /// The real environment of this process.
    pub fn from_process() -> Env {
        let vars: BTreeMap<String, String> = std::env::vars().collect();
        let home = directories::BaseDirs::new()
            .map(|d| d.home_dir().to_owned())
            .or_else(|| vars.get("HOME").map(PathBuf::from))
            .unwrap_or_default();
        Env { home, vars }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// An XDG base-directory variable, honoured only when it holds an absolute path (as the
    /// XDG spec and the `directories` crate require).
    pub(crate) fn xdg_dir(&self, key: &str) -> Option<PathBuf> {
        self.get(key).map(PathBuf::from).filter(|p| p.is_absolute())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub aws: AwsFiles,
    pub profiles: Vec<ProfileEntry>,
    pub write: WriteConfig,
    pub refresh: RefreshConfig,
    pub container: Option<ContainerConfig>,
    pub control: ControlConfig,
    pub notify: NotifyConfig,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AwsFiles {
    pub config_file: PathBuf,
    pub credentials_file: PathBuf,
    pub sso_cache_dir: PathBuf,
}

pub use credsync_core::config::ProfileEntry;

#[derive(Debug, Clone, PartialEq)]
pub struct WriteConfig {
    pub(crate) mode: WriteMode,
    /// Mode of files credsync creates.
    pub(crate) file_mode: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RefreshConfig {
    pub(crate) min_remaining: Duration,
    pub(crate) token_refresh_before: Duration,
    pub(crate) max_concurrency: usize,
}

impl RefreshConfig {
    /// How long before its expiry an SSO token is refreshed (`token_refresh_before`).
    pub fn token_refresh_before(&self) -> Duration {
        self.token_refresh_before
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContainerConfig {
    pub dir: PathBuf,
    pub path_in_container: String,
    /// The uid *in the container* that reads the view (Astro's `astro` is 50000).
    pub uid: Option<u32>,
    /// Whether the container uid also gets read access to the credentials file (for setups
    /// whose containers read it instead of the view). Off by default: least privilege.
    pub share_credentials_file: bool,
    /// The container engine, when set; `None`: detected (see [`crate::uidmap`]).
    pub engine: Option<ContainerEngine>,
    /// The user's home directory: search grants on the view's path stop below it.
    pub home: PathBuf,
}

/// `[container] engine`: how container uids map to host uids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerEngine {
    /// Docker (and rootful Podman): a container uid is the same host uid.
    Docker,
    /// Rootless Podman: container uid 0 is the user, uid N >= 1 is the Nth uid of the user's
    /// `/etc/subuid` ranges.
    PodmanRootless,
}

impl ContainerEngine {
    /// The name used in the config file.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ContainerEngine::Docker => "docker",
            ContainerEngine::PodmanRootless => "podman-rootless",
        }
    }
}

/// `[notify]`: desktop notifications when an SSO session can no longer be renewed.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyConfig {
    pub enabled: bool,
    /// How long before a token that cannot be refreshed expires to say so.
    pub before: Duration,
    /// The user's own notifier: program and arguments; the summary and the body are added as
    /// two more arguments. `None`: the desktop's.
    pub command: Option<Vec<String>>,
}

impl Default for NotifyConfig {
    fn default() -> NotifyConfig {
        NotifyConfig {
            enabled: true,
            before: DEFAULT_NOTIFY_BEFORE,
            command: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ControlConfig {
    pub socket: PathBuf,
}

/// Where the configuration came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    File(PathBuf),
    /// No config file: one profile, `$AWS_PROFILE` or `default`.
    Default {
        config_path: PathBuf,
        profile_from: &'static str,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not a regular file, too large, or unreadable.
    #[error(transparent)]
    File(#[from] crate::user_file::UserFileError),
    /// Invalid TOML, an unknown key, or a bad value: `path:line:column: message`.
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// An environment variable credsync would use has a value it cannot.
    #[error("{var}={value:?} (from the environment): {message}")]
    Env {
        var: &'static str,
        value: String,
        message: String,
    },
}

/// configparser's default section: its keys are defaults for every other section, so a
/// profile written there would leak into all of them.
pub(crate) const CONFIGPARSER_DEFAULT_SECTION: &str = "DEFAULT";

/// Every section and the keys it accepts, in the order `config.example.toml` documents them.
/// The empty section name is the top level.
pub const KEYS: &[(&str, &[&str])] = &[
    ("", TOP_KEYS),
    ("aws", AWS_KEYS),
    ("profiles", PROFILE_KEYS),
    ("write", WRITE_KEYS),
    ("refresh", REFRESH_KEYS),
    ("container", CONTAINER_KEYS),
    ("control", CONTROL_KEYS),
    ("notify", NOTIFY_KEYS),
];

const TOP_KEYS: &[&str] = &[
    "aws",
    "profiles",
    "write",
    "refresh",
    "container",
    "control",
    "notify",
];
const AWS_KEYS: &[&str] = &["config_file", "credentials_file", "sso_cache_dir"];
const PROFILE_KEYS: &[&str] = &["source", "target"];
const WRITE_KEYS: &[&str] = &["mode", "file_mode"];
const REFRESH_KEYS: &[&str] = &["min_remaining", "token_refresh_before", "max_concurrency"];
const CONTAINER_KEYS: &[&str] = &[
    "dir",
    "path_in_container",
    "uid",
    "share_credentials_file",
    "engine",
];
const CONTROL_KEYS: &[&str] = &["socket"];
const NOTIFY_KEYS: &[&str] = &["enabled", "before", "command"];

/// Built-in defaults that do not depend on the environment.
pub(crate) const DEFAULT_FILE_MODE: u32 = 0o600;
pub(crate) const DEFAULT_MIN_REMAINING: Duration = Duration::from_secs(20 * 60);
pub(crate) const DEFAULT_TOKEN_REFRESH_BEFORE: Duration = Duration::from_secs(30 * 60);
pub(crate) const DEFAULT_MAX_CONCURRENCY: usize = 4;
pub(crate) const DEFAULT_NOTIFY_BEFORE: Duration = Duration::from_secs(30 * 60);
pub(crate) const MAX_CONCURRENCY_LIMIT: usize = 64;
pub(crate) const DEFAULT_CONTAINER_DIR: &str = "~/.aws/credsync";
pub(crate) const DEFAULT_PATH_IN_CONTAINER: &str = "/home/astro/.aws/credsync";
/// The upper bound of a duration key, as written in messages and docs, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationBound {
    /// The key, as `[section] key`.
    pub key: &'static str,
    /// The longest value accepted.
    pub max: Duration,
    /// `max` as the config file would write it.
    pub text: &'static str,
    /// Why no longer value makes sense.
    why: &'static str,
}

/// `[refresh] min_remaining`: at most 12 hours. The longest credentials credsync obtains last
/// 12 hours (an IAM role's maximum session duration, and an IAM Identity Center permission
/// set's, are 1 to 12 hours), so no credentials could keep more; at 12 hours every credential
/// already keeps half its lifetime.
pub const MIN_REMAINING_BOUND: DurationBound = DurationBound {
    key: "[refresh] min_remaining",
    max: Duration::from_secs(12 * 3600),
    text: "12h",
    why: "no AWS credentials credsync obtains last longer than 12 hours (the longest role or \
          permission-set session), so none could keep more",
};

/// `[refresh] token_refresh_before`: at most 12 hours. An IAM Identity Center access token
/// lasts about an hour when it can be refreshed and 8 hours (a legacy sign-in) when it cannot;
/// a longer window would refresh every token at every check.
pub const TOKEN_REFRESH_BEFORE_BOUND: DurationBound = DurationBound {
    key: "[refresh] token_refresh_before",
    max: Duration::from_secs(12 * 3600),
    text: "12h",
    why: "no SSO access token lasts that long (about 1 hour when refreshable, 8 hours for a \
          legacy sign-in), so every token would be refreshed at every check",
};

/// `[notify] before`: at most 90 days, the longest an IAM Identity Center sign-in (user
/// interactive session) can last; an earlier warning could only come at once.
pub const NOTIFY_BEFORE_BOUND: DurationBound = DurationBound {
    key: "[notify] before",
    max: Duration::from_secs(90 * 24 * 3600),
    text: "90d",
    why: "no IAM Identity Center sign-in lasts longer than 90 days, so the warning would come at \
          once",
};

/// Every duration key with its bound.
pub const DURATION_BOUNDS: [DurationBound; 3] = [
    MIN_REMAINING_BOUND,
    TOKEN_REFRESH_BEFORE_BOUND,
    NOTIFY_BEFORE_BOUND,
];

/// botocore refreshes an SSO token this long before it expires; credsync should refresh first.
const BOTOCORE_TOKEN_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The default config file: `<config dir>/credsync/config.toml`, where the config dir is
/// `$XDG_CONFIG_HOME`, else `~/.config` (Linux), or `~/Library/Application Support` (macOS),
/// as `directories::BaseDirs::config_dir` computes it.
pub fn default_path(env: &Env) -> PathBuf {
    default_path_on(Platform::current(), env)
}

/// [`default_path`] on `platform`.
pub fn default_path_on(platform: Option<Platform>, env: &Env) -> PathBuf {
    config_dir(platform, env)
        .join("credsync")
        .join("config.toml")
}

fn config_dir(platform: Option<Platform>, env: &Env) -> PathBuf {
    match platform {
        Some(Platform::MacOs) => env.home.join("Library/Application Support"),
        Some(Platform::Linux) | None => env
            .xdg_dir("XDG_CONFIG_HOME")
            .unwrap_or_else(|| env.home.join(".config")),
    }
}

fn cache_dir(platform: Option<Platform>, env: &Env) -> PathBuf {
    match platform {
        Some(Platform::MacOs) => env.home.join("Library/Caches"),
        Some(Platform::Linux) | None => env
            .xdg_dir("XDG_CACHE_HOME")
            .unwrap_or_else(|| env.home.join(".cache")),
    }
}

/// The default control socket, in a directory of its own so that directory can be 0700:
/// under `$XDG_RUNTIME_DIR`, else the cache dir (`~/.cache`, macOS `~/Library/Caches`).
fn default_socket(env: &Env) -> PathBuf {
    default_socket_on(Platform::current(), env)
}

/// [`default_socket`] on `platform`.
pub(crate) fn default_socket_on(platform: Option<Platform>, env: &Env) -> PathBuf {
    env.xdg_dir("XDG_RUNTIME_DIR")
        .unwrap_or_else(|| cache_dir(platform, env))
        .join("credsync")
        .join("credsync.sock")
}

/// `AWS_CONFIG_FILE` or `AWS_SHARED_CREDENTIALS_FILE` as botocore reads it, else
/// `~/<fallback>`. `what` names the file in messages.
fn aws_file_from_env(
    env: &Env,
    var: &'static str,
    fallback: &str,
    what: &str,
) -> Result<PathBuf, ConfigError> {
    let Some(value) = env.vars.get(var) else {
        return Ok(env.home.join(fallback));
    };
    let error = |message: String| ConfigError::Env {
        var,
        value: value.clone(),
        message,
    };
    if value.is_empty() {
        return Err(error(format!(
            "set but empty: botocore and the AWS CLI then read no {what} at all; unset it \
             (`unset {var}`) or give the file's path"
        )));
    }
    let expanded = expand_like_botocore(value, env);
    if !Path::new(&expanded).is_absolute() {
        let unknown = if expanded.contains('$') {
            " (a $VARIABLE that is not set stays as written, as in botocore)"
        } else {
            ""
        };
        return Err(error(format!(
            "is the relative path {expanded:?} after expansion{unknown}; botocore would look for \
             it in each program's working directory; give an absolute path (~ and $HOME are \
             expanded)"
        )));
    }
    Ok(PathBuf::from(expanded))
}

/// An environment value naming a file, expanded as botocore's `configloader` does it: Python's
/// `os.path.expandvars`, then `os.path.expanduser`.
///
/// - `$NAME` (ASCII letters, digits, `_`) and `${NAME}` (anything but `}`) become the
///   variable's value when it is set, even to the empty string; an unknown one stays as
///   written; a substituted value is not expanded again.
/// - Then a leading `~` (up to the first `/`) becomes `$HOME` when set (even empty), else the
///   home directory; `~user` becomes that user's home from the password database, and stays
///   as written for an unknown user. The home's trailing `/` are dropped, and an empty result
///   is `/`.
pub(crate) fn expand_like_botocore(value: &str, env: &Env) -> String {
    expanduser(&expandvars(value, &env.vars), env, &passwd_home)
}

fn expandvars(s: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, len) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(end) => (&inner[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        // `len == 0`: no variable form here (`$` alone, `${` unclosed): a literal `$`.
        match vars.get(name).filter(|_| len > 0) {
            Some(value) => out.push_str(value),
            None => out.push_str(&rest[i..i + 1 + len]),
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

fn expanduser(s: &str, env: &Env, user_home: &dyn Fn(&str) -> Option<String>) -> String {
    if !s.starts_with('~') {
        return s.to_owned();
    }
    let end = s[1..].find('/').map_or(s.len(), |k| k + 1);
    let home = if end == 1 {
        match env.vars.get("HOME") {
            Some(h) => h.clone(),
            None if env.home.as_os_str().is_empty() => return s.to_owned(),
            None => env.home.display().to_string(),
        }
    } else {
        match user_home(&s[1..end]) {
            Some(h) => h,
            None => return s.to_owned(),
        }
    };
    let joined = format!("{}{}", home.trim_end_matches('/'), &s[end..]);
    if joined.is_empty() {
        "/".to_owned()
    } else {
        joined
    }
}

/// `name`'s home directory from the password database (`getpwnam_r`).
fn passwd_home(name: &str) -> Option<String> {
    let cname = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: an all-zero `passwd` is a valid value of this plain C struct.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buf` outlives the use of `pwd`'s fields.
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() || pwd.pw_dir.is_null() {
        return None;
    }
    // SAFETY: `pw_dir` points into `buf`, NUL-terminated by getpwnam_r.
    let dir = unsafe { std::ffi::CStr::from_ptr(pwd.pw_dir) };
    Some(dir.to_string_lossy().into_owned())
}

fn default_aws_files(env: &Env) -> Result<AwsFiles, ConfigError> {
    Ok(AwsFiles {
        config_file: aws_file_from_env(env, "AWS_CONFIG_FILE", ".aws/config", "config file")?,
        credentials_file: aws_file_from_env(
            env,
            "AWS_SHARED_CREDENTIALS_FILE",
            ".aws/credentials",
            "credentials file",
        )?,
        sso_cache_dir: env.home.join(".aws/sso/cache"),
    })
}

/// The profile managed when no `[[profiles]]` are configured, and where its name came from.
fn default_profile(env: &Env) -> Result<(ProfileEntry, &'static str), ConfigError> {
    let (name, from) = match env.get("AWS_PROFILE") {
        Some(p) => (p.to_owned(), "AWS_PROFILE"),
        None => ("default".to_owned(), "default"),
    };
    if name == CONFIGPARSER_DEFAULT_SECTION {
        return Err(ConfigError::Env {
            var: "AWS_PROFILE",
            value: name,
            message: "with no config file credsync would write the profile as the section \
                      [DEFAULT] of the credentials file, which configparser (botocore) reads as \
                      defaults for every other profile; write a config file (`credsync init`) \
                      whose [[profiles]] entry has source = \"DEFAULT\" and another target"
                .to_owned(),
        });
    }
    Ok((
        ProfileEntry {
            source: name.clone(),
            target: name,
        },
        from,
    ))
}

fn default_container(env: &Env) -> ContainerConfig {
    ContainerConfig {
        dir: expand_tilde(DEFAULT_CONTAINER_DIR, env),
        path_in_container: DEFAULT_PATH_IN_CONTAINER.to_owned(),
        uid: None,
        share_credentials_file: false,
        engine: None,
        home: env.home.clone(),
    }
}

/// `~` alone and a leading `~/` become the home directory; anything else is kept as written.
fn expand_tilde(s: &str, env: &Env) -> PathBuf {
    if s == "~" {
        env.home.clone()
    } else if let Some(rest) = s.strip_prefix("~/") {
        env.home.join(rest)
    } else {
        PathBuf::from(s)
    }
}

/// Loads `explicit` (from `--config` / `CREDSYNC_CONFIG`), else the default file, else the
/// built-in default. An explicit path that does not exist is an error.
pub fn load(explicit: Option<&Path>, env: &Env) -> Result<Config, ConfigError> {
    use crate::user_file::{Kind, read};
    match explicit {
        Some(path) => match read(path, Kind::CredsyncConfig)? {
            Some(bytes) => parse_bytes(&bytes, path, env),
            None => Err(ConfigError::Io {
                path: path.to_owned(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the file given by --config or CREDSYNC_CONFIG does not exist; \
                     create it (`credsync init`) or fix the path",
                ),
            }),
        },
        None => {
            let path = default_path(env);
            match read(&path, Kind::CredsyncConfig)? {
                Some(bytes) => parse_bytes(&bytes, &path, env),
                None => try_defaults(env),
            }
        }
    }
}

/// Like [`parse`], for raw file contents (what [`load`] reads): invalid UTF-8 is reported
/// with its line and column.
pub fn parse_bytes(bytes: &[u8], path: &Path, env: &Env) -> Result<Config, ConfigError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(text, path, env),
        Err(e) => {
            let valid = &bytes[..e.valid_up_to()];
            // The valid prefix is UTF-8 by definition; count lines and characters in it.
            let prefix = String::from_utf8_lossy(valid);
            let (line, column) = line_col(&prefix, prefix.len());
            Err(ConfigError::Invalid {
                path: path.to_owned(),
                line,
                column,
                message: "the file is not valid UTF-8; TOML files must be UTF-8 text".to_owned(),
            })
        }
    }
}

/// Parses a config file's text; `path` is used in messages and to resolve nothing else.
pub fn parse(text: &str, path: &Path, env: &Env) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let span = e.span();
        let message = toml_message(text, &e);
        invalid(text, path, span, message)
    })?;
    resolve(raw, text, path, env)
}

/// The configuration with no file, for commands that go on after reporting a config error
/// (`doctor`, the control clients): like [`try_defaults`], with each environment variable
/// credsync cannot use left out.
pub fn defaults(env: &Env) -> Config {
    let mut env = env.clone();
    loop {
        match try_defaults(&env) {
            Ok(c) => return c,
            // Each round removes a variable, and with none of them set nothing can fail.
            Err(ConfigError::Env { var, .. }) if env.vars.remove(var).is_some() => {}
            Err(_) => env.vars.clear(),
        }
    }
}

/// The configuration with no file: manage `$AWS_PROFILE`, else `default`. Fails when an
/// environment variable it uses has a value credsync cannot use (see [`ConfigError::Env`]).
pub fn try_defaults(env: &Env) -> Result<Config, ConfigError> {
    let (profile, profile_from) = default_profile(env)?;
    Ok(Config {
        aws: default_aws_files(env)?,
        profiles: vec![profile],
        write: WriteConfig {
            mode: WriteMode::Atomic,
            file_mode: DEFAULT_FILE_MODE,
        },
        refresh: RefreshConfig {
            min_remaining: DEFAULT_MIN_REMAINING,
            token_refresh_before: DEFAULT_TOKEN_REFRESH_BEFORE,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
        },
        container: None,
        control: ControlConfig {
            socket: default_socket(env),
        },
        notify: NotifyConfig::default(),
        origin: Origin::Default {
            config_path: default_path(env),
            profile_from,
        },
    })
}

impl Config {
    /// One line saying where this configuration came from, for the first log line and `status`.
    pub fn describe_origin(&self) -> String {
        match &self.origin {
            Origin::File(path) => format!("config file {}", path.display()),
            Origin::Default {
                config_path,
                profile_from,
            } => {
                let profile = self
                    .profiles
                    .first()
                    .map(|p| p.source.as_str())
                    .unwrap_or("default");
                let why = if *profile_from == "AWS_PROFILE" {
                    "from $AWS_PROFILE".to_owned()
                } else {
                    "($AWS_PROFILE is not set)".to_owned()
                };
                format!(
                    "no config file at {}; managing profile \"{profile}\" {why}",
                    config_path.display()
                )
            }
        }
    }

    /// Settings that are valid but probably not what the user wants.
    pub fn warnings(&self) -> Vec<Warning> {
        let mut out = Vec::new();
        if self.write.file_mode & 0o070 != 0 {
            out.push(Warning {
                what: format!(
                    "[write] file_mode {:04o} lets the file's group read credentials",
                    self.write.file_mode
                ),
                fix: "set file_mode = \"0600\" under [write] in credsync's config, unless a \
                      container user needs group access (then prefer [container] uid)"
                    .to_owned(),
            });
        }
        if self.refresh.token_refresh_before <= BOTOCORE_TOKEN_WINDOW {
            out.push(Warning {
                what: format!(
                    "[refresh] token_refresh_before is {}, within botocore's own 15-minute \
                     refresh window: botocore may refresh the SSO token first and rotate the \
                     refresh token",
                    humantime::format_duration(self.refresh.token_refresh_before)
                ),
                fix: "set token_refresh_before = \"30m\" under [refresh] in credsync's config"
                    .to_owned(),
            });
        }
        out
    }
}

/// A setting that is valid but probably not what the user wants: what it does, and the fix.
/// Shown as one sentence, `what; fix` (the daemon's log), or apart (`doctor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub(crate) what: String,
    pub(crate) fix: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; {}", self.what, self.fix)
    }
}

// ---------------------------------------------------------------------------------------------
// The file as written: every key optional, spans kept for values that need validation.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    aws: Option<RawAws>,
    #[serde(default)]
    profiles: Vec<Spanned<RawProfile>>,
    write: Option<RawWrite>,
    refresh: Option<RawRefresh>,
    container: Option<RawContainer>,
    control: Option<RawControl>,
    notify: Option<RawNotify>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAws {
    config_file: Option<Spanned<String>>,
    credentials_file: Option<Spanned<String>>,
    sso_cache_dir: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    source: Spanned<String>,
    target: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWrite {
    mode: Option<WriteMode>,
    file_mode: Option<Spanned<RawFileMode>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawFileMode {
    Text(String),
    Number(i64),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRefresh {
    min_remaining: Option<Spanned<String>>,
    token_refresh_before: Option<Spanned<String>>,
    max_concurrency: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContainer {
    dir: Option<Spanned<String>>,
    path_in_container: Option<Spanned<String>>,
    uid: Option<u32>,
    share_credentials_file: Option<bool>,
    engine: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawControl {
    socket: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    enabled: Option<bool>,
    before: Option<Spanned<String>>,
    command: Option<Spanned<Vec<String>>>,
}

/// A validation failure before it is given its file: the span it points at and the message.
struct Located {
    span: Range<usize>,
    message: String,
}

fn at(span: Range<usize>, message: impl Into<String>) -> Located {
    Located {
        span,
        message: message.into(),
    }
}

fn resolve(raw: RawConfig, text: &str, path: &Path, env: &Env) -> Result<Config, ConfigError> {
    resolve_located(raw, path, env).map_err(|e| match e {
        Failure::Located(l) => invalid(text, path, Some(l.span), l.message),
        Failure::Config(e) => e,
    })
}

/// Why [`resolve_located`] failed: a value of the file, or the environment a default comes from.
enum Failure {
    Located(Located),
    Config(ConfigError),
}

impl From<Located> for Failure {
    fn from(l: Located) -> Failure {
        Failure::Located(l)
    }
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Failure {
        Failure::Config(e)
    }
}

fn resolve_located(raw: RawConfig, path: &Path, env: &Env) -> Result<Config, Failure> {
    let aws = aws_files(raw.aws.unwrap_or_default(), env)?;
    let profiles = if raw.profiles.is_empty() {
        vec![default_profile(env)?.0]
    } else {
        profiles(&raw.profiles)?
    };

    let write_raw = raw.write.unwrap_or_default();
    let write = WriteConfig {
        mode: write_raw.mode.unwrap_or(WriteMode::Atomic),
        file_mode: match &write_raw.file_mode {
            Some(m) => file_mode(m)?,
            None => DEFAULT_FILE_MODE,
        },
    };

    let refresh = refresh(raw.refresh.unwrap_or_default())?;

    let container = raw.container.map(|c| container(c, env)).transpose()?;

    let control_raw = raw.control.unwrap_or_default();
    let control = ControlConfig {
        socket: path_or(control_raw.socket.as_ref(), "control", "socket", env)?
            .unwrap_or_else(|| default_socket(env)),
    };

    let notify_raw = raw.notify.unwrap_or_default();
    let notify = NotifyConfig {
        enabled: notify_raw.enabled.unwrap_or(true),
        before: match &notify_raw.before {
            Some(d) => duration(d, &NOTIFY_BEFORE_BOUND)?,
            None => DEFAULT_NOTIFY_BEFORE,
        },
        command: notify_raw
            .command
            .as_ref()
            .map(notify_command)
            .transpose()?,
    };

    Ok(Config {
        aws,
        profiles,
        write,
        refresh,
        container,
        control,
        notify,
        origin: Origin::File(path.to_owned()),
    })
}

/// `[aws]`: each file from the file, else from the environment (`AWS_CONFIG_FILE`, ...), else
/// the default; the config and credentials files must differ.
fn aws_files(aws_raw: RawAws, env: &Env) -> Result<AwsFiles, Failure> {
    // The environment is read only for what the file leaves unset.
    let aws = AwsFiles {
        config_file: match path_or(aws_raw.config_file.as_ref(), "aws", "config_file", env)? {
            Some(p) => p,
            None => aws_file_from_env(env, "AWS_CONFIG_FILE", ".aws/config", "config file")?,
        },
        credentials_file: match path_or(
            aws_raw.credentials_file.as_ref(),
            "aws",
            "credentials_file",
            env,
        )? {
            Some(p) => p,
            None => aws_file_from_env(
                env,
                "AWS_SHARED_CREDENTIALS_FILE",
                ".aws/credentials",
                "credentials file",
            )?,
        },
        sso_cache_dir: path_or(aws_raw.sso_cache_dir.as_ref(), "aws", "sso_cache_dir", env)?
            .unwrap_or_else(|| env.home.join(".aws/sso/cache")),
    };
    if aws.config_file == aws.credentials_file {
        let span = aws_raw
            .credentials_file
            .as_ref()
            .or(aws_raw.config_file.as_ref())
            .map(Spanned::span);
        if let Some(span) = span {
            return Err(at(
                span,
                format!(
                    "[aws] config_file and credentials_file are both {}; credsync would write \
                     credentials into the AWS config file; point them at different files",
                    aws.config_file.display()
                ),
            )
            .into());
        }
    }
    Ok(aws)
}

/// `[refresh]`, with the defaults for what it leaves unset.
fn refresh(refresh_raw: RawRefresh) -> Result<RefreshConfig, Failure> {
    Ok(RefreshConfig {
        min_remaining: match &refresh_raw.min_remaining {
            Some(d) => duration(d, &MIN_REMAINING_BOUND)?,
            None => DEFAULT_MIN_REMAINING,
        },
        token_refresh_before: match &refresh_raw.token_refresh_before {
            Some(d) => duration(d, &TOKEN_REFRESH_BEFORE_BOUND)?,
            None => DEFAULT_TOKEN_REFRESH_BEFORE,
        },
        max_concurrency: match &refresh_raw.max_concurrency {
            Some(n) => max_concurrency(n)?,
            None => DEFAULT_MAX_CONCURRENCY,
        },
    })
}

/// `[container]`, with the defaults for what it leaves unset.
fn container(c: RawContainer, env: &Env) -> Result<ContainerConfig, Failure> {
    let default = default_container(env);
    Ok(ContainerConfig {
        dir: path_or(c.dir.as_ref(), "container", "dir", env)?.unwrap_or(default.dir),
        path_in_container: match &c.path_in_container {
            Some(p) => path_in_container(p)?,
            None => default.path_in_container,
        },
        uid: c.uid,
        share_credentials_file: c.share_credentials_file.unwrap_or(false),
        engine: c.engine.as_ref().map(container_engine).transpose()?,
        home: default.home,
    })
}

/// A host path from the file: `~` expanded, and absolute (a daemon's working directory is not
/// the user's, so a relative path would point somewhere surprising).
fn path_or(
    value: Option<&Spanned<String>>,
    section: &str,
    key: &str,
    env: &Env,
) -> Result<Option<PathBuf>, Located> {
    let Some(value) = value else { return Ok(None) };
    let s = value.get_ref();
    if s.trim().is_empty() {
        return Err(at(
            value.span(),
            format!(
                "[{section}] {key} is empty; give a path, or remove the key to use the default"
            ),
        ));
    }
    let p = expand_tilde(s, env);
    if !p.is_absolute() {
        return Err(at(
            value.span(),
            format!(
                "[{section}] {key} = \"{s}\" is a relative path; write an absolute path or one \
                 starting with ~/"
            ),
        ));
    }
    Ok(Some(p))
}

fn container_engine(value: &Spanned<String>) -> Result<ContainerEngine, Located> {
    match value.get_ref().as_str() {
        "docker" => Ok(ContainerEngine::Docker),
        "podman-rootless" => Ok(ContainerEngine::PodmanRootless),
        other => Err(Located {
            span: value.span(),
            message: format!(
                "[container] engine = {other:?} is not known; use \"docker\" (also rootful \
                 Podman: container uids are host uids) or \"podman-rootless\" (container uids \
                 map into your /etc/subuid range), or remove it to detect the engine"
            ),
        }),
    }
}

fn path_in_container(value: &Spanned<String>) -> Result<String, Located> {
    let s = value.get_ref();
    if !s.starts_with('/') {
        return Err(at(
            value.span(),
            format!(
                "[container] path_in_container = \"{s}\" must be an absolute path inside the \
                 container, e.g. \"{DEFAULT_PATH_IN_CONTAINER}\" (~ is not expanded: the \
                 container's home is not yours)"
            ),
        ));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(at(
            value.span(),
            format!(
                "[container] path_in_container = {s:?} contains whitespace; it goes into a \
                 credential_process command line, so choose a path without spaces"
            ),
        ));
    }
    // `cat <path>/<target>.json` is built from it: no trailing slash, except for "/" itself.
    match s.trim_end_matches('/') {
        "" => Ok("/".to_owned()),
        trimmed => Ok(trimmed.to_owned()),
    }
}

/// `[notify] command`: a program and its arguments, run as they are (no shell).
fn notify_command(value: &Spanned<Vec<String>>) -> Result<Vec<String>, Located> {
    let argv = value.get_ref();
    match argv.first() {
        Some(program) if !program.trim().is_empty() => Ok(argv.clone()),
        _ => Err(at(
            value.span(),
            "[notify] command must name a program first, e.g. command = [\"notify-send\", \
             \"--urgency=critical\"] (the summary and the message are added as two more \
             arguments; no shell is involved); remove it to use the desktop's notifications",
        )),
    }
}

/// A duration key's value: more than zero and at most `bound.max`.
fn duration(value: &Spanned<String>, bound: &DurationBound) -> Result<Duration, Located> {
    let (s, key) = (value.get_ref(), bound.key);
    let d = humantime::parse_duration(s.trim()).map_err(|e| {
        at(
            value.span(),
            format!(
                "{key} = \"{s}\" is not a duration ({e}); write it like \"20m\", \"1h30m\" or \
                 \"60s\""
            ),
        )
    })?;
    if d.is_zero() {
        return Err(at(
            value.span(),
            format!("{key} must be more than zero, e.g. \"20m\""),
        ));
    }
    if d > bound.max {
        return Err(at(
            value.span(),
            format!(
                "{key} = \"{s}\" is longer than {}: {}; write at most \"{}\"",
                bound.text, bound.why, bound.text
            ),
        ));
    }
    Ok(d)
}

fn max_concurrency(value: &Spanned<i64>) -> Result<usize, Located> {
    let n = *value.get_ref();
    match usize::try_from(n) {
        Ok(n) if (1..=MAX_CONCURRENCY_LIMIT).contains(&n) => Ok(n),
        _ => Err(at(
            value.span(),
            format!(
                "[refresh] max_concurrency = {n} is out of range; expected 1 to \
                 {MAX_CONCURRENCY_LIMIT} (default {DEFAULT_MAX_CONCURRENCY})"
            ),
        )),
    }
}

fn file_mode(value: &Spanned<RawFileMode>) -> Result<u32, Located> {
    let s = match value.get_ref() {
        RawFileMode::Text(s) => s,
        RawFileMode::Number(n) => {
            return Err(at(
                value.span(),
                format!(
                    "[write] file_mode is a number ({n} in decimal); write the mode as an octal \
                     string, e.g. file_mode = \"0600\""
                ),
            ));
        }
    };
    let digits = s.strip_prefix("0o").unwrap_or(s);
    let mode = if !digits.is_empty()
        && digits.len() <= 6
        && digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        u32::from_str_radix(digits, 8).ok()
    } else {
        None
    };
    let Some(mode) = mode else {
        return Err(at(
            value.span(),
            format!("[write] file_mode = \"{s}\" is not an octal mode; write it like \"0600\""),
        ));
    };
    if mode > 0o777 {
        return Err(at(
            value.span(),
            format!(
                "[write] file_mode = \"{s}\" sets setuid, setgid or sticky bits; use permission \
                 bits only, e.g. \"0600\""
            ),
        ));
    }
    if mode & 0o007 != 0 {
        return Err(at(
            value.span(),
            format!(
                "[write] file_mode = \"{s}\" lets every user on the machine access credentials; \
                 use \"0600\" (or \"0640\" for group read)"
            ),
        ));
    }
    if mode & 0o600 != 0o600 {
        return Err(at(
            value.span(),
            format!(
                "[write] file_mode = \"{s}\" does not let you read and write your own \
                 credentials; the owner needs at least \"0600\""
            ),
        ));
    }
    Ok(mode)
}

fn profiles(raw: &[Spanned<RawProfile>]) -> Result<Vec<ProfileEntry>, Located> {
    let mut out: Vec<ProfileEntry> = Vec::with_capacity(raw.len());
    // target -> (entry number, source) of the first entry writing it
    let mut seen: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for (i, entry) in raw.iter().enumerate() {
        let n = i + 1;
        let p = entry.get_ref();
        let source = p.source.get_ref();
        section_name(source, "source", n).map_err(|m| at(p.source.span(), m))?;
        let (target, target_span) = match &p.target {
            Some(t) => (t.get_ref().clone(), t.span()),
            None => (source.clone(), p.source.span()),
        };
        if p.target.is_some() {
            section_name(&target, "target", n).map_err(|m| at(target_span.clone(), m))?;
        }
        if target == CONFIGPARSER_DEFAULT_SECTION {
            let how = if p.target.is_some() {
                "target = \"DEFAULT\""
            } else {
                "source = \"DEFAULT\" with no target (the target defaults to the source)"
            };
            return Err(at(
                target_span,
                format!(
                    "[[profiles]] entry {n}: {how} would write the section [DEFAULT] of the \
                     credentials file, which configparser (botocore) reads as defaults for every \
                     other profile: its keys would show up in all of them; give another target, \
                     e.g. target = \"default\""
                ),
            ));
        }
        if let Some((first, first_source)) = seen.get(&target) {
            return Err(at(
                target_span,
                format!(
                    "[[profiles]] entries {first} (source \"{first_source}\") and {n} (source \
                     \"{source}\") both write target \"{target}\"; each target is one section \
                     of the credentials file, so give one of them a different target"
                ),
            ));
        }
        seen.insert(target.clone(), (n, source.clone()));
        out.push(ProfileEntry {
            source: source.clone(),
            target,
        });
    }
    Ok(out)
}

/// Checks that `name` can be an INI section name that botocore and the Rust SDK both read back.
fn section_name(name: &str, key: &str, entry: usize) -> Result<(), String> {
    let here = format!("[[profiles]] entry {entry}: {key}");
    if name.is_empty() {
        return Err(format!("{here} is empty; give the name of a profile"));
    }
    if name.trim() != name {
        return Err(format!(
            "{here} = {name:?} has leading or trailing whitespace; remove it"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| matches!(c, '[' | ']') || c.is_control())
    {
        return Err(format!(
            "{here} = {name:?} contains {c:?}, which cannot appear in an INI section name"
        ));
    }
    if let Some(rest) = name.strip_prefix("profile ") {
        let hint = if key == "source" {
            format!("write the profile name alone: {key} = \"{}\"", rest.trim())
        } else {
            "the credentials file names sections without the \"profile \" prefix".to_owned()
        };
        return Err(format!(
            "{here} = {name:?} starts with \"profile \"; {hint}"
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Error reporting.

fn invalid(text: &str, path: &Path, span: Option<Range<usize>>, message: String) -> ConfigError {
    let (line, column) = match span {
        Some(s) => line_col(text, s.start),
        None => (1, 1),
    };
    ConfigError::Invalid {
        path: path.to_owned(),
        line,
        column,
        message,
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Rewrites toml's / serde's message so it names the section and key and says what is expected.
fn toml_message(text: &str, e: &toml::de::Error) -> String {
    let raw: String = e
        .message()
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ");
    // serde names Rust types; say what a TOML writer can act on.
    let raw = raw.replace("expected i64", "expected an integer").replace(
        "expected u32",
        "expected a whole number from 0 to 4294967295",
    );
    if let Some(m) = unknown_key_message(&raw) {
        return m;
    }
    if let Some(field) = raw
        .strip_prefix("missing field `")
        .and_then(|r| r.strip_suffix('`'))
    {
        if field == "source" {
            return "[[profiles]] entry has no source; every entry needs source = \"<a profile \
                    in the AWS config file>\""
                .to_owned();
        }
        return format!("missing key \"{field}\"");
    }
    if raw.contains("expected a sequence")
        && e.span()
            .and_then(|s| text.get(s.start..))
            .is_some_and(|t| t.starts_with("[profiles"))
    {
        return format!(
            "[profiles] must be a list of tables: write [[profiles]] (double brackets) above \
             each entry ({raw})"
        );
    }
    match e.span().map(|s| context_at(text, s.start)) {
        Some(Context {
            section,
            key: Some(key),
        }) => {
            format!("{} {key}: {raw}", display_section(section.as_deref()))
        }
        Some(Context {
            section: Some(section),
            key: None,
        }) => {
            format!("{}: {raw}", display_section(Some(&section)))
        }
        _ => raw,
    }
}

fn display_section(section: Option<&str>) -> String {
    match section {
        None | Some("") => "top level".to_owned(),
        Some("profiles") => "[[profiles]]".to_owned(),
        Some(s) => format!("[{s}]"),
    }
}

/// serde: "unknown field `x`, expected one of `a`, `b`" / "expected `a` or `b`" / "expected `a`".
fn unknown_key_message(raw: &str) -> Option<String> {
    let rest = raw.strip_prefix("unknown field `")?;
    let (key, expected) = rest.split_once('`')?;
    let valid: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let &(section, keys) = KEYS
        .iter()
        .find(|(_, keys)| keys.len() == valid.len() && keys.iter().all(|k| valid.contains(k)))?;
    let mut msg = if section.is_empty() {
        format!("unknown section or key \"{key}\" at the top level")
    } else {
        format!(
            "unknown key \"{key}\" in {}",
            display_section(Some(section))
        )
    };
    let _ = write!(msg, "; expected one of {}", keys.join(", "));
    let nearest = keys.iter().map(|k| (edit_distance(k, key), k)).min();
    if let Some((_, near)) = nearest.filter(|(d, _)| *d <= 2) {
        let _ = write!(msg, " (did you mean \"{near}\"?)");
    }
    Some(msg)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

struct Context {
    /// The table the offset is in (`None` at the top level), by the last header before it.
    section: Option<String>,
    /// The key on the offset's line, when the offset is in its value.
    key: Option<String>,
}

/// Best-effort: which section and key a byte offset belongs to, from the lines before it.
fn context_at(text: &str, offset: usize) -> Context {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let mut section = None;
    for line in before[..line_start].lines() {
        let t = line.trim_start();
        if let Some(h) = t.strip_prefix('[') {
            let h = h.strip_prefix('[').unwrap_or(h);
            if let Some(end) = h.find(']') {
                section = Some(h[..end].trim().to_owned());
            }
        }
    }
    let key = before[line_start..]
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_owned())
        .filter(|k| !k.is_empty() && !k.starts_with('['));
    let (section, key) = match key {
        // A dotted key at the top level, e.g. `refresh.max_concurrency = 0`.
        Some(k) if section.is_none() && k.contains('.') => {
            let (s, k) = k.split_once('.').unwrap_or(("", &k));
            (Some(s.trim().to_owned()), Some(k.trim().to_owned()))
        }
        other => (section, other),
    };
    Context { section, key }
}

/// `s` as a TOML basic string (quoted, escaped), for the lines credsync writes into this file.
pub fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env {
            home: PathBuf::from("/home/u"),
            vars: BTreeMap::new(),
        }
    }

    fn env_with(vars: &[(&str, &str)]) -> Env {
        let mut e = env();
        for (k, v) in vars {
            e.vars.insert((*k).to_owned(), (*v).to_owned());
        }
        e
    }

    fn p(text: &str) -> Result<Config, ConfigError> {
        parse(text, Path::new("/c/config.toml"), &env())
    }

    /// The error as (line, column, message); panics if parsing succeeded.
    fn err(text: &str) -> (usize, usize, String) {
        match p(text) {
            Err(ConfigError::Invalid {
                line,
                column,
                message,
                path,
            }) => {
                assert_eq!(path, Path::new("/c/config.toml"));
                (line, column, message)
            }
            other => panic!("expected an Invalid error, got {other:?}"),
        }
    }

    fn without_origin(mut c: Config) -> Config {
        c.origin = Origin::File(PathBuf::new());
        c
    }

    #[test]
    fn defaults_without_env() {
        let c = defaults(&env());
        assert_eq!(c.aws.config_file, Path::new("/home/u/.aws/config"));
        assert_eq!(
            c.aws.credentials_file,
            Path::new("/home/u/.aws/credentials")
        );
        assert_eq!(c.aws.sso_cache_dir, Path::new("/home/u/.aws/sso/cache"));
        assert_eq!(
            c.profiles,
            vec![ProfileEntry {
                source: "default".into(),
                target: "default".into()
            }]
        );
        assert_eq!(
            c.write,
            WriteConfig {
                mode: WriteMode::Atomic,
                file_mode: 0o600
            }
        );
        assert_eq!(c.refresh.min_remaining, Duration::from_secs(1200));
        assert_eq!(c.refresh.token_refresh_before, Duration::from_secs(1800));
        assert_eq!(c.refresh.max_concurrency, 4);
        assert_eq!(c.container, None);
        assert_eq!(
            c.control.socket,
            default_socket_on(Platform::current(), &env())
        );
        assert_eq!(
            c.origin,
            Origin::Default {
                config_path: default_path(&env()),
                profile_from: "default"
            }
        );
        assert!(c.warnings().is_empty());
    }

    #[test]
    fn empty_file_equals_defaults_except_origin() {
        let envs = [
            env(),
            env_with(&[
                ("AWS_PROFILE", "dev"),
                ("XDG_RUNTIME_DIR", "/run/user/1000"),
                ("AWS_CONFIG_FILE", "~/cfg"),
            ]),
        ];
        for e in envs {
            let parsed = parse("", Path::new("/c/config.toml"), &e).unwrap();
            assert_eq!(parsed.origin, Origin::File(PathBuf::from("/c/config.toml")));
            assert_eq!(without_origin(parsed), without_origin(defaults(&e)));
        }
        // Comments and empty sections change nothing either.
        let parsed = p("# nothing\nprofiles = []\n[aws]\n[write]\n[refresh]\n[control]\n").unwrap();
        assert_eq!(without_origin(parsed), without_origin(defaults(&env())));
    }

    #[test]
    fn every_key() {
        let text = r#"
[aws]
config_file = "/etc/aws/config"
credentials_file = "/srv/creds"
sso_cache_dir = "/srv/sso-cache"

[[profiles]]
source = "dev-admin"
target = "default"

[[profiles]]
source = "data-readonly"

[write]
mode = "in-place"
file_mode = "0640"

[refresh]
min_remaining = "1h30m"
token_refresh_before = "45m"
max_concurrency = 64

[container]
dir = "/srv/view"
path_in_container = "/home/astro/.aws/view"
uid = 50000

[control]
socket = "/run/credsync.sock"
"#;
        let c = p(text).unwrap();
        assert_eq!(
            c.aws,
            AwsFiles {
                config_file: "/etc/aws/config".into(),
                credentials_file: "/srv/creds".into(),
                sso_cache_dir: "/srv/sso-cache".into(),
            }
        );
        assert_eq!(
            c.profiles,
            vec![
                ProfileEntry {
                    source: "dev-admin".into(),
                    target: "default".into()
                },
                ProfileEntry {
                    source: "data-readonly".into(),
                    target: "data-readonly".into()
                },
            ]
        );
        assert_eq!(
            c.write,
            WriteConfig {
                mode: WriteMode::InPlace,
                file_mode: 0o640
            }
        );
        assert_eq!(
            c.refresh,
            RefreshConfig {
                min_remaining: Duration::from_secs(5400),
                token_refresh_before: Duration::from_secs(2700),
                max_concurrency: 64,
            }
        );
        assert_eq!(
            c.container,
            Some(ContainerConfig {
                dir: "/srv/view".into(),
                path_in_container: "/home/astro/.aws/view".into(),
                uid: Some(50000),
                share_credentials_file: false,
                engine: None,
                home: "/home/u".into(),
            })
        );
        assert_eq!(c.control.socket, Path::new("/run/credsync.sock"));
        assert_eq!(c.origin, Origin::File("/c/config.toml".into()));
        assert_eq!(c.describe_origin(), "config file /c/config.toml");
        // Group read is allowed, but worth a warning.
        assert_eq!(c.warnings().len(), 1, "{:?}", c.warnings());
        assert!(c.warnings()[0].what.contains("0640"));
        assert!(c.warnings()[0].fix.starts_with("set file_mode = \"0600\""));
        // One sentence in the daemon's log.
        assert!(
            c.warnings()[0]
                .to_string()
                .contains("read credentials; set file_mode"),
            "{}",
            c.warnings()[0]
        );
    }

    #[test]
    fn keys_table_matches_what_parses() {
        // Every key KEYS lists is accepted in its section (with a valid value).
        let value = |key: &str| -> String {
            match key {
                "mode" => "\"atomic\"",
                "file_mode" => "\"0600\"",
                "min_remaining" | "token_refresh_before" | "before" => "\"40m\"",
                "max_concurrency" | "uid" => "1",
                "enabled" => "false",
                "command" => "[\"notify-send\"]",
                "path_in_container" => "\"/x\"",
                "share_credentials_file" => "true",
                "engine" => "\"podman-rootless\"",
                other => return format!("\"/abs/{other}\""),
            }
            .to_owned()
        };
        for (section, keys) in KEYS.iter().filter(|(s, _)| !s.is_empty()) {
            let mut text = String::new();
            if *section == "profiles" {
                text.push_str("[[profiles]]\n");
            } else {
                text.push_str(&format!("[{section}]\n"));
            }
            for key in *keys {
                let v = if matches!(*key, "source" | "target") {
                    "\"p\"".to_owned()
                } else {
                    value(key)
                };
                text.push_str(&format!("{key} = {v}\n"));
            }
            p(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        }
    }

    #[test]
    fn container_share_and_engine() {
        let c = p("[container]\nuid = 50000\nshare_credentials_file = true\nengine = \"podman-rootless\"\n")
            .unwrap()
            .container
            .unwrap();
        assert!(c.share_credentials_file);
        assert_eq!(c.engine, Some(ContainerEngine::PodmanRootless));
        let c = p("[container]\nengine = \"docker\"\n")
            .unwrap()
            .container
            .unwrap();
        assert_eq!(c.engine, Some(ContainerEngine::Docker));
        let e = p("[container]\nengine = \"podman\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"podman-rootless\""), "{e}");
        let e = p("[container]\nshare_credentials_file = \"yes\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("share_credentials_file"), "{e}");
    }

    #[test]
    fn container_section_defaults() {
        let c = p("[container]\n").unwrap();
        assert_eq!(
            c.container,
            Some(ContainerConfig {
                dir: "/home/u/.aws/credsync".into(),
                path_in_container: "/home/astro/.aws/credsync".into(),
                uid: None,
                share_credentials_file: false,
                engine: None,
                home: "/home/u".into(),
            })
        );
        assert_eq!(p("").unwrap().container, None);
    }

    #[test]
    fn tilde_expands_in_every_path() {
        let c = p(r#"
[aws]
config_file = "~/a/config"
credentials_file = "~/a/credentials"
sso_cache_dir = "~"
[container]
dir = "~/view"
[control]
socket = "~/s/credsync.sock"
"#)
        .unwrap();
        assert_eq!(c.aws.config_file, Path::new("/home/u/a/config"));
        assert_eq!(c.aws.credentials_file, Path::new("/home/u/a/credentials"));
        assert_eq!(c.aws.sso_cache_dir, Path::new("/home/u"));
        assert_eq!(c.container.unwrap().dir, Path::new("/home/u/view"));
        assert_eq!(c.control.socket, Path::new("/home/u/s/credsync.sock"));
        // `~user` is not ours to expand: it stays a relative path, which is rejected.
        let (line, col, msg) = err("[aws]\nconfig_file = \"~bob/config\"\n");
        assert_eq!((line, col), (2, 15));
        assert!(msg.contains("relative path"), "{msg}");
    }

    #[test]
    fn env_overrides_and_their_tilde() {
        let e = env_with(&[
            ("AWS_CONFIG_FILE", "~/env/config"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/env/credentials"),
            ("XDG_RUNTIME_DIR", "/run/user/1000"),
            ("AWS_PROFILE", "dev"),
        ]);
        let c = parse("", Path::new("/c.toml"), &e).unwrap();
        assert_eq!(c.aws.config_file, Path::new("/home/u/env/config"));
        assert_eq!(c.aws.credentials_file, Path::new("/env/credentials"));
        assert_eq!(c.aws.sso_cache_dir, Path::new("/home/u/.aws/sso/cache"));
        assert_eq!(
            c.control.socket,
            Path::new("/run/user/1000/credsync/credsync.sock")
        );
        assert_eq!(
            c.profiles,
            vec![ProfileEntry {
                source: "dev".into(),
                target: "dev".into()
            }]
        );
        // The file wins over the environment.
        let c = parse(
            "[aws]\nconfig_file = \"/f/config\"\n",
            Path::new("/c.toml"),
            &e,
        )
        .unwrap();
        assert_eq!(c.aws.config_file, Path::new("/f/config"));
        // Empty and relative XDG values are ignored, as the XDG spec says.
        let e = env_with(&[("XDG_RUNTIME_DIR", "run"), ("AWS_CONFIG_FILE", "")]);
        let c = defaults(&e);
        assert_eq!(c.aws.config_file, Path::new("/home/u/.aws/config"));
        let linux = Some(Platform::Linux);
        assert_eq!(
            default_socket_on(linux, &e),
            Path::new("/home/u/.cache/credsync/credsync.sock")
        );
        let e = env_with(&[("XDG_CACHE_HOME", "/xc")]);
        assert_eq!(
            default_socket_on(linux, &e),
            Path::new("/xc/credsync/credsync.sock")
        );
        // Another Unix gets the XDG directories too.
        assert_eq!(
            default_socket_on(None, &e),
            Path::new("/xc/credsync/credsync.sock")
        );
    }

    #[test]
    fn macos_keeps_config_and_cache_under_library_whatever_xdg_says() {
        let mac = Some(Platform::MacOs);
        let e = env_with(&[("XDG_CONFIG_HOME", "/xdg"), ("XDG_CACHE_HOME", "/xc")]);
        assert_eq!(
            default_path_on(mac, &e),
            Path::new("/home/u/Library/Application Support/credsync/config.toml")
        );
        assert_eq!(
            default_socket_on(mac, &e),
            Path::new("/home/u/Library/Caches/credsync/credsync.sock")
        );
        // A runtime directory, when there is one, still holds the socket.
        let e = env_with(&[("XDG_RUNTIME_DIR", "/run/user/501")]);
        assert_eq!(
            default_socket_on(mac, &e),
            Path::new("/run/user/501/credsync/credsync.sock")
        );
    }

    #[test]
    fn default_path_follows_config_dir() {
        let linux = Some(Platform::Linux);
        assert_eq!(
            default_path_on(linux, &env()),
            Path::new("/home/u/.config/credsync/config.toml")
        );
        let e = env_with(&[("XDG_CONFIG_HOME", "/xdg")]);
        assert_eq!(
            default_path_on(linux, &e),
            Path::new("/xdg/credsync/config.toml")
        );
        let e = env_with(&[("XDG_CONFIG_HOME", "relative")]);
        assert_eq!(
            default_path_on(linux, &e),
            Path::new("/home/u/.config/credsync/config.toml")
        );
        // What this build uses is one of the two.
        assert_eq!(
            default_path(&env()),
            default_path_on(Platform::current(), &env())
        );
    }

    #[test]
    fn invalid_toml_gives_line_and_column() {
        let (line, col, msg) = err("[aws]\nconfig_file = \"/x\"\n[refresh\n");
        assert_eq!((line, col), (3, 9));
        assert!(msg.contains("expected `]`"), "{msg}");
        assert!(!msg.contains('\n'), "one line: {msg}");
        // Columns count characters, not bytes; CRLF line ends count as one line break.
        let (line, col, _) = err("# héllo\r\n[aws]\r\nconfig_file = \"é\" x\r\n");
        assert_eq!((line, col), (3, 19));
        let (line, col, msg) = err("[write]\nmode = atomic\n");
        assert_eq!((line, col), (2, 8));
        assert!(!msg.is_empty());
    }

    #[test]
    fn unknown_key_in_each_section() {
        let cases: &[(&str, (usize, usize), &str)] = &[
            (
                "colour = 1\n",
                (1, 1),
                "unknown section or key \"colour\" at the top level; expected one of aws, profiles, write, refresh, container, control, notify",
            ),
            (
                "[aws]\nconfig = \"/x\"\n",
                (2, 1),
                "unknown key \"config\" in [aws]; expected one of config_file, credentials_file, sso_cache_dir",
            ),
            (
                "[[profiles]]\nsource = \"a\"\n  role = \"r\"\n",
                (3, 3),
                "unknown key \"role\" in [[profiles]]; expected one of source, target",
            ),
            (
                "[write]\nmod = \"atomic\"\n",
                (2, 1),
                "unknown key \"mod\" in [write]; expected one of mode, file_mode (did you mean \"mode\"?)",
            ),
            (
                "[refresh]\nmin_remainig = \"5m\"\n",
                (2, 1),
                "unknown key \"min_remainig\" in [refresh]; expected one of min_remaining, token_refresh_before, max_concurrency (did you mean \"min_remaining\"?)",
            ),
            (
                "[container]\ngid = 1\n",
                (2, 1),
                "unknown key \"gid\" in [container]; expected one of dir, path_in_container, uid, share_credentials_file, engine (did you mean \"uid\"?)",
            ),
            (
                "[control]\npath = \"/s\"\n",
                (2, 1),
                "unknown key \"path\" in [control]; expected one of socket",
            ),
            (
                "[logging]\nlevel = 1\n",
                (1, 2),
                "unknown section or key \"logging\" at the top level; expected one of aws, profiles, write, refresh, container, control, notify",
            ),
        ];
        for (text, pos, want) in cases {
            let (line, col, msg) = err(text);
            assert_eq!((line, col), *pos, "{text:?}");
            assert_eq!(msg, *want, "{text:?}");
        }
    }

    #[test]
    fn notify_section() {
        let d = p("").unwrap().notify;
        assert_eq!(d, NotifyConfig::default());
        assert!(d.enabled);
        assert_eq!(d.before, Duration::from_secs(30 * 60));
        let c = p("[notify]\nenabled = false\nbefore = \"1h\"\ncommand = [\"notify-send\", \"-u\", \"critical\"]\n")
            .unwrap()
            .notify;
        assert!(!c.enabled);
        assert_eq!(c.before, Duration::from_secs(3600));
        assert_eq!(
            c.command.as_deref(),
            Some(&["notify-send".to_owned(), "-u".into(), "critical".into()][..])
        );
        let (line, col, msg) = err("[notify]\nbefore = \"soon\"\n");
        assert_eq!((line, col), (2, 10));
        assert!(
            msg.starts_with("[notify] before = \"soon\" is not a duration"),
            "{msg}"
        );
        let (line, _, msg) = err("[notify]\nbefore = \"0m\"\n");
        assert_eq!(line, 2);
        assert!(
            msg.contains("[notify] before must be more than zero"),
            "{msg}"
        );
        for bad in ["command = []", "command = [\"\", \"x\"]"] {
            let (line, col, msg) = err(&format!("[notify]\n{bad}\n"));
            assert_eq!((line, col), (2, 11), "{bad}");
            assert!(
                msg.contains("[notify] command must name a program"),
                "{msg}"
            );
        }
        // A string is not a command line: no shell splits it.
        let (line, _, msg) = err("[notify]\ncommand = \"notify-send hi\"\n");
        assert_eq!(line, 2);
        assert!(msg.contains("command"), "{msg}");
        let (_, _, msg) = err("[notify]\nenable = false\n");
        assert!(msg.contains("did you mean \"enabled\""), "{msg}");
    }

    #[test]
    fn bad_durations() {
        let (line, col, msg) = err("[refresh]\nmin_remaining = \"20 minutes please\"\n");
        assert_eq!((line, col), (2, 17));
        assert!(
            msg.starts_with("[refresh] min_remaining = \"20 minutes please\" is not a duration"),
            "{msg}"
        );
        assert!(msg.contains("\"1h30m\""), "{msg}");
        let (_, _, msg) = err("[refresh]\ntoken_refresh_before = \"30\"\n");
        assert!(msg.contains("token_refresh_before"), "{msg}");
        let (line, col, msg) = err("[refresh]\nmin_remaining = \"0s\"\n");
        assert_eq!((line, col), (2, 17));
        assert!(msg.contains("more than zero"), "{msg}");
        let (_, _, msg) = err("[refresh]\nmin_remaining = 20\n");
        assert!(msg.contains("[refresh] min_remaining"), "{msg}");
        assert_eq!(
            p("[refresh]\nmin_remaining = \"60s\"\n")
                .unwrap()
                .refresh
                .min_remaining,
            Duration::from_secs(60)
        );
    }

    #[test]
    fn short_token_window_warns() {
        let c = p("[refresh]\ntoken_refresh_before = \"10m\"\n").unwrap();
        assert_eq!(c.warnings().len(), 1);
        assert!(c.warnings()[0].what.contains("15-minute"));
    }

    #[test]
    fn file_modes() {
        let ok = |m: &str| p(&format!("[write]\nfile_mode = \"{m}\"\n")).map(|c| c.write.file_mode);
        assert_eq!(ok("0600").unwrap(), 0o600);
        assert_eq!(ok("600").unwrap(), 0o600);
        assert_eq!(ok("0o640").unwrap(), 0o640);
        assert_eq!(ok("0700").unwrap(), 0o700);
        for (bad, why) in [
            ("0x600", "not an octal mode"),
            ("0680", "not an octal mode"),
            ("", "not an octal mode"),
            ("rw-------", "not an octal mode"),
            ("01600", "setuid"),
            ("0644", "every user"),
            ("0601", "every user"),
            ("0400", "read and write"),
        ] {
            let (line, col, msg) = err(&format!("[write]\nfile_mode = \"{bad}\"\n"));
            assert_eq!((line, col), (2, 13), "{bad}");
            assert!(msg.contains(why), "{bad}: {msg}");
        }
        let (line, col, msg) = err("[write]\nfile_mode = 0o600\n");
        assert_eq!((line, col), (2, 13));
        assert!(msg.contains("octal string"), "{msg}");
    }

    #[test]
    fn bad_write_mode() {
        let (line, col, msg) = err("[write]\nmode = \"inplace\"\n");
        assert_eq!((line, col), (2, 8));
        assert!(msg.starts_with("[write] mode:"), "{msg}");
        assert!(msg.contains("`in-place`"), "{msg}");
    }

    #[test]
    fn each_duration_bound_is_written_as_its_text() {
        for b in DURATION_BOUNDS {
            assert_eq!(
                humantime::parse_duration(b.text).ok(),
                Some(b.max),
                "{}",
                b.key
            );
        }
    }

    #[test]
    fn duplicate_target_names_both_entries() {
        let text = "[[profiles]]\nsource = \"a\"\ntarget = \"default\"\n\n[[profiles]]\nsource = \"b\"\n\n[[profiles]]\nsource = \"c\"\ntarget = \"default\"\n";
        let (line, col, msg) = err(text);
        assert_eq!((line, col), (10, 10));
        assert_eq!(
            msg,
            "[[profiles]] entries 1 (source \"a\") and 3 (source \"c\") both write target \
             \"default\"; each target is one section of the credentials file, so give one of \
             them a different target"
        );
        // A defaulted target collides too, located at the source.
        let (line, col, msg) = err("[[profiles]]\nsource = \"a\"\n[[profiles]]\nsource = \"a\"\n");
        assert_eq!((line, col), (4, 10));
        assert!(msg.contains("entries 1 (source \"a\") and 2"), "{msg}");
    }

    #[test]
    fn bad_section_names() {
        for (target, why) in [
            ("", "is empty"),
            (" dev", "whitespace"),
            ("dev ", "whitespace"),
            ("dev]x", "']'"),
            ("[dev", "'['"),
            ("a\\nb", "'\\n'"),
            ("profile dev", "\"profile \""),
        ] {
            let text = format!("[[profiles]]\nsource = \"dev\"\ntarget = \"{target}\"\n");
            let (line, col, msg) = err(&text);
            assert_eq!((line, col), (3, 10), "{target:?}");
            assert!(msg.starts_with("[[profiles]] entry 1: target"), "{msg}");
            assert!(msg.contains(why), "{target:?}: {msg}");
        }
        let (_, _, msg) = err("[[profiles]]\nsource = \"profile dev\"\n");
        assert!(msg.contains("source = \"dev\""), "{msg}");
        let (line, _, msg) = err("[[profiles]]\nsource = \"a\"\n[[profiles]]\ntarget = \"b\"\n");
        assert_eq!(line, 3);
        assert!(msg.contains("no source"), "{msg}");
        let (_, _, msg) = err("[profiles]\nsource = \"a\"\n");
        assert!(msg.contains("[[profiles]] (double brackets)"), "{msg}");
    }

    #[test]
    fn max_concurrency_range() {
        for (v, col) in [("0", 19), ("65", 19), ("-3", 19)] {
            let (line, c, msg) = err(&format!("[refresh]\nmax_concurrency = {v}\n"));
            assert_eq!((line, c), (2, col));
            assert!(msg.contains("expected 1 to 64"), "{msg}");
        }
        assert_eq!(
            p("[refresh]\nmax_concurrency = 1\n")
                .unwrap()
                .refresh
                .max_concurrency,
            1
        );
        let (_, _, msg) = err("[refresh]\nmax_concurrency = \"4\"\n");
        assert!(msg.contains("expected an integer"), "{msg}");
    }

    #[test]
    fn other_values_are_checked() {
        let (line, col, msg) = err("[container]\npath_in_container = \"~/.aws/credsync\"\n");
        assert_eq!((line, col), (2, 21));
        assert!(msg.contains("absolute path inside the container"), "{msg}");
        let (_, _, msg) = err("[container]\npath_in_container = \"/a b\"\n");
        assert!(msg.contains("whitespace"), "{msg}");
        let (_, _, msg) = err("[container]\nuid = -1\n");
        assert!(msg.starts_with("[container] uid:"), "{msg}");
        let (_, _, msg) = err("[control]\nsocket = \"\"\n");
        assert!(msg.contains("[control] socket is empty"), "{msg}");
        let (line, _, msg) =
            err("[aws]\nconfig_file = \"~/.aws/x\"\ncredentials_file = \"~/.aws/x\"\n");
        assert_eq!(line, 3);
        assert!(msg.contains("point them at different files"), "{msg}");
        assert_eq!(
            p("[container]\npath_in_container = \"/v/\"\n")
                .unwrap()
                .container
                .unwrap()
                .path_in_container,
            "/v"
        );
    }

    #[test]
    fn describe_default_origin() {
        let c = defaults(&env_with(&[("AWS_PROFILE", "dev")]));
        let cfg = default_path(&env());
        assert_eq!(
            c.describe_origin(),
            format!(
                "no config file at {}; managing profile \"dev\" from $AWS_PROFILE",
                cfg.display()
            )
        );
        assert_eq!(
            defaults(&env()).describe_origin(),
            format!(
                "no config file at {}; managing profile \"default\" ($AWS_PROFILE is not set)",
                cfg.display()
            )
        );
    }

    #[test]
    fn invalid_utf8_is_located() {
        let r = parse_bytes(
            b"[aws]\nconfig_file = \"/\xff\"\n",
            Path::new("/c.toml"),
            &env(),
        );
        match r {
            Err(ConfigError::Invalid {
                line,
                column,
                message,
                ..
            }) => {
                assert_eq!((line, column), (2, 17));
                assert!(message.contains("UTF-8"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn load_missing_explicit_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.toml");
        match load(Some(&missing), &env()) {
            Err(e @ ConfigError::Io { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(&missing.display().to_string()), "{msg}");
                assert!(
                    msg.contains("--config or CREDSYNC_CONFIG does not exist"),
                    "{msg}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn load_explicit_and_default_files() {
        let dir = tempfile::tempdir().unwrap();
        let e = Env {
            home: dir.path().to_owned(),
            vars: [
                (
                    "XDG_CONFIG_HOME".to_owned(),
                    dir.path().join("xdg").display().to_string(),
                ),
                ("AWS_PROFILE".to_owned(), "dev".to_owned()),
            ]
            .into(),
        };
        // No file anywhere: the built-in default, honouring AWS_PROFILE.
        let c = load(None, &e).unwrap();
        assert_eq!(
            c.origin,
            Origin::Default {
                config_path: default_path(&e),
                profile_from: "AWS_PROFILE"
            }
        );
        assert_eq!(
            c.profiles,
            vec![ProfileEntry {
                source: "dev".into(),
                target: "dev".into()
            }]
        );
        assert!(
            c.describe_origin()
                .contains("managing profile \"dev\" from $AWS_PROFILE")
        );

        // The default file, when it exists (on Linux; macOS ignores XDG_CONFIG_HOME).
        let default = default_path(&e);
        std::fs::create_dir_all(default.parent().unwrap()).unwrap();
        std::fs::write(&default, "[refresh]\nmax_concurrency = 8\n").unwrap();
        let c = load(None, &e).unwrap();
        assert_eq!(c.origin, Origin::File(default.clone()));
        assert_eq!(c.refresh.max_concurrency, 8);

        // An explicit file wins; its errors carry its path.
        let explicit = dir.path().join("other.toml");
        std::fs::write(&explicit, "[refresh]\nmax_concurrency = 0\n").unwrap();
        match load(Some(&explicit), &e) {
            Err(ConfigError::Invalid { path, line, .. }) => {
                assert_eq!(path, explicit);
                assert_eq!(line, 2);
            }
            other => panic!("{other:?}"),
        }
        std::fs::write(&explicit, "[[profiles]]\nsource = \"x\"\n").unwrap();
        let c = load(Some(&explicit), &e).unwrap();
        assert_eq!(c.origin, Origin::File(explicit));
        assert_eq!(c.profiles[0].source, "x");
    }

    #[test]
    fn a_default_target_is_refused() {
        // configparser's default section is exactly "DEFAULT"; other cases are plain sections.
        let (line, col, msg) = err("[[profiles]]\nsource = \"dev\"\ntarget = \"DEFAULT\"\n");
        assert_eq!((line, col), (3, 10));
        assert!(
            msg.starts_with("[[profiles]] entry 1: target = \"DEFAULT\""),
            "{msg}"
        );
        assert!(msg.contains("defaults for every other profile"), "{msg}");
        let (line, col, msg) =
            err("[[profiles]]\nsource = \"a\"\n\n[[profiles]]\nsource = \"DEFAULT\"\n");
        assert_eq!((line, col), (5, 10));
        assert!(
            msg.contains("entry 2: source = \"DEFAULT\" with no target"),
            "{msg}"
        );
        for ok in ["default", "Default", "DEFAULTS", "dEFAULT"] {
            let text = format!("[[profiles]]\nsource = \"dev\"\ntarget = \"{ok}\"\n");
            assert!(p(&text).is_ok(), "{ok}");
        }
        // A source named DEFAULT with another target is fine.
        assert!(p("[[profiles]]\nsource = \"DEFAULT\"\ntarget = \"d\"\n").is_ok());
        // With no config file, AWS_PROFILE=DEFAULT would be the target: refused too.
        let e = env_with(&[("AWS_PROFILE", "DEFAULT")]);
        let msg = try_defaults(&e).unwrap_err().to_string();
        assert!(
            msg.starts_with("AWS_PROFILE=\"DEFAULT\" (from the environment): "),
            "{msg}"
        );
        assert!(msg.contains("[DEFAULT]"), "{msg}");
        assert!(parse("", Path::new("/c.toml"), &e).is_err());
        assert_eq!(defaults(&e).profiles[0].target, "default");
    }

    #[test]
    fn expansion_like_python() {
        let vars: BTreeMap<String, String> = [
            ("A", "1"),
            ("B_2", "two"),
            ("EMPTY", ""),
            ("T", "~/t"),
            ("D", "$A"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        for (input, want) in [
            ("/x/$A/y", "/x/1/y"),
            ("/x/${A}y", "/x/1y"),
            ("/x/$Ay", "/x/$Ay"),
            ("/x/$B_2-z", "/x/two-z"),
            ("/x/${EMPTY}/y", "/x//y"),
            ("/x/$NOPE/y", "/x/$NOPE/y"),
            ("/x/${NOPE}", "/x/${NOPE}"),
            ("/x/${}", "/x/${}"),
            ("/x/${A", "/x/${A"),
            ("/x/$", "/x/$"),
            ("/x/$$A", "/x/$1"),
            ("/x/${A:-d}", "/x/${A:-d}"),
            ("/x/$D", "/x/$A"), // not expanded twice
            ("$T/c", "~/t/c"),
        ] {
            assert_eq!(expandvars(input, &vars), want, "{input}");
        }
        let e = env();
        let users = |name: &str| (name == "bob").then(|| "/users/bob/".to_owned());
        for (input, want) in [
            ("~", "/home/u"),
            ("~/c", "/home/u/c"),
            ("~bob/c", "/users/bob/c"),
            ("~nobody/c", "~nobody/c"),
            ("/a/~/c", "/a/~/c"),
            ("x~", "x~"),
        ] {
            assert_eq!(expanduser(input, &e, &users), want, "{input}");
        }
        // $HOME wins over the home directory, even empty (then `~/c` is `/c`, `~` is `/`).
        let e = env_with(&[("HOME", "/other/")]);
        assert_eq!(expanduser("~/c", &e, &users), "/other/c");
        let e = env_with(&[("HOME", "")]);
        assert_eq!(expanduser("~/c", &e, &users), "/c");
        assert_eq!(expanduser("~", &e, &users), "/");
        // Variables first, then ~: a variable holding ~/... is expanded.
        let e = env_with(&[("T", "~/t")]);
        assert_eq!(expand_like_botocore("$T/c", &e), "/home/u/t/c");
    }

    #[test]
    fn aws_file_variables_as_botocore_reads_them() {
        let e = env_with(&[
            ("AWS_CONFIG_FILE", "$HOME/cfg/config"),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                "${XDG_DATA_HOME}/aws/credentials",
            ),
            ("HOME", "/home/u"),
            ("XDG_DATA_HOME", "/data"),
        ]);
        let c = try_defaults(&e).unwrap();
        assert_eq!(c.aws.config_file, Path::new("/home/u/cfg/config"));
        assert_eq!(c.aws.credentials_file, Path::new("/data/aws/credentials"));
        // Set but empty: botocore reads no file; credsync says so instead of using another.
        let e = env_with(&[("AWS_SHARED_CREDENTIALS_FILE", "")]);
        let msg = try_defaults(&e).unwrap_err().to_string();
        assert!(
            msg.starts_with(
                "AWS_SHARED_CREDENTIALS_FILE=\"\" (from the environment): set but empty"
            ),
            "{msg}"
        );
        assert!(msg.contains("unset AWS_SHARED_CREDENTIALS_FILE"), "{msg}");
        // ... unless the file names the path: the environment is not read then.
        let c = parse(
            "[aws]\ncredentials_file = \"~/c\"\n",
            Path::new("/c.toml"),
            &e,
        )
        .unwrap();
        assert_eq!(c.aws.credentials_file, Path::new("/home/u/c"));
        assert!(parse("", Path::new("/c.toml"), &e).is_err());
        // An unknown variable stays as written; a relative result is refused.
        let e = env_with(&[("AWS_CONFIG_FILE", "$NOPE/config")]);
        let msg = try_defaults(&e).unwrap_err().to_string();
        assert!(msg.contains("relative path \"$NOPE/config\""), "{msg}");
        assert!(msg.contains("stays as written"), "{msg}");
        let e = env_with(&[("AWS_CONFIG_FILE", "/x/$NOPE/config")]);
        assert_eq!(
            try_defaults(&e).unwrap().aws.config_file,
            Path::new("/x/$NOPE/config")
        );
    }
}
