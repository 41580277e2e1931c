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
//!
//! The jobs live in child modules: `env` (the environment, the default paths, botocore's
//! expansion of `AWS_CONFIG_FILE` and `AWS_SHARED_CREDENTIALS_FILE`), `schema` (the file as
//! written and its resolution into a [`Config`]) and `diagnose` (the located error text and
//! the "did you mean" for an unknown key). This module holds the resolved types, the defaults
//! and bounds, and [`load`] / [`parse`]; what other modules use is re-exported here.

use std::path::{Path, PathBuf};
use std::time::Duration;

mod diagnose;
mod env;
mod schema;

use diagnose::{invalid, line_col, toml_message};
pub(crate) use env::expand_like_botocore;
pub use env::{Env, default_path, default_path_on};
use env::{default_aws_files, default_profile, default_socket};
use schema::{RawConfig, resolve};

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

/// What the unit tests of this module and its children share.
#[cfg(test)]
mod testing {
    use std::collections::BTreeMap;

    use super::*;

    pub(super) fn env() -> Env {
        Env {
            home: PathBuf::from("/home/u"),
            vars: BTreeMap::new(),
        }
    }

    pub(super) fn env_with(vars: &[(&str, &str)]) -> Env {
        let mut e = env();
        for (k, v) in vars {
            e.vars.insert((*k).to_owned(), (*v).to_owned());
        }
        e
    }

    pub(super) fn p(text: &str) -> Result<Config, ConfigError> {
        parse(text, Path::new("/c/config.toml"), &env())
    }

    /// The error as (line, column, message); panics if parsing succeeded.
    pub(super) fn err(text: &str) -> (usize, usize, String) {
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

    pub(super) fn without_origin(mut c: Config) -> Config {
        c.origin = Origin::File(PathBuf::new());
        c
    }
}

#[cfg(test)]
mod tests {
    use super::env::default_socket_on;
    use super::*;
    use crate::platform::Platform;
    use testing::*;

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
    fn short_token_window_warns() {
        let c = p("[refresh]\ntoken_refresh_before = \"10m\"\n").unwrap();
        assert_eq!(c.warnings().len(), 1);
        assert!(c.warnings()[0].what.contains("15-minute"));
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
}
