//! credsync's own configuration: the TOML file, its defaults, validation, and the default used
//! when there is no file at all.
//!
//! STUB: the API below is the contract; the body is being written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::write::WriteMode;

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
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub aws: AwsFiles,
    pub profiles: Vec<ProfileEntry>,
    pub write: WriteConfig,
    pub refresh: RefreshConfig,
    pub container: Option<ContainerConfig>,
    pub control: ControlConfig,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AwsFiles {
    pub config_file: PathBuf,
    pub credentials_file: PathBuf,
    pub sso_cache_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileEntry {
    /// A profile in the AWS config file.
    pub source: String,
    /// The section written to the credentials file.
    pub target: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WriteConfig {
    pub mode: WriteMode,
    /// Mode of files credsync creates.
    pub file_mode: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RefreshConfig {
    pub min_remaining: Duration,
    pub token_refresh_before: Duration,
    pub max_concurrency: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContainerConfig {
    pub dir: PathBuf,
    pub path_in_container: String,
    pub uid: Option<u32>,
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
    /// Invalid TOML, an unknown key, or a bad value: `path:line:column: message`.
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

/// The default config file: `<config dir>/credsync/config.toml`.
pub fn default_path(env: &Env) -> PathBuf {
    env.home.join(".config/credsync/config.toml")
}

/// Loads `explicit` (from `--config` / `CREDSYNC_CONFIG`), else the default file, else the
/// built-in default. An explicit path that does not exist is an error.
pub fn load(explicit: Option<&Path>, env: &Env) -> Result<Config, ConfigError> {
    let _ = explicit;
    Ok(defaults(env))
}

/// Parses a config file's text; `path` is used in messages and to resolve nothing else.
pub fn parse(text: &str, path: &Path, env: &Env) -> Result<Config, ConfigError> {
    let _ = (text, path);
    Ok(defaults(env))
}

/// The configuration with no file: manage `$AWS_PROFILE`, else `default`.
pub fn defaults(env: &Env) -> Config {
    let profile = env.get("AWS_PROFILE").unwrap_or("default").to_owned();
    Config {
        aws: AwsFiles {
            config_file: env.home.join(".aws/config"),
            credentials_file: env.home.join(".aws/credentials"),
            sso_cache_dir: env.home.join(".aws/sso/cache"),
        },
        profiles: vec![ProfileEntry {
            source: profile.clone(),
            target: profile,
        }],
        write: WriteConfig {
            mode: WriteMode::Atomic,
            file_mode: 0o600,
        },
        refresh: RefreshConfig {
            min_remaining: Duration::from_secs(20 * 60),
            token_refresh_before: Duration::from_secs(30 * 60),
            max_concurrency: 4,
        },
        container: None,
        control: ControlConfig {
            socket: env.home.join(".cache/credsync/credsync.sock"),
        },
        origin: Origin::Default {
            config_path: default_path(env),
            profile_from: if env.get("AWS_PROFILE").is_some() {
                "AWS_PROFILE"
            } else {
                "default"
            },
        },
    }
}
