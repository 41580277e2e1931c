//! The config file as written (every key optional, spans kept for values that need
//! validation) and its resolution into a [`Config`]: each section checked, with the defaults
//! for what the file leaves unset.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::diagnose::invalid;
use super::env::{
    aws_file_from_env, default_container, default_profile, default_socket, expand_tilde,
};
use super::{
    AwsFiles, CONFIGPARSER_DEFAULT_SECTION, Config, ConfigError, ContainerConfig, ContainerEngine,
    ControlConfig, DEFAULT_FILE_MODE, DEFAULT_MAX_CONCURRENCY, DEFAULT_MIN_REMAINING,
    DEFAULT_NOTIFY_BEFORE, DEFAULT_PATH_IN_CONTAINER, DEFAULT_TOKEN_REFRESH_BEFORE, DurationBound,
    Env, MAX_CONCURRENCY_LIMIT, MIN_REMAINING_BOUND, NOTIFY_BEFORE_BOUND, NotifyConfig, Origin,
    ProfileEntry, RefreshConfig, TOKEN_REFRESH_BEFORE_BOUND, WriteConfig, WriteMode,
};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
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

pub(super) fn resolve(
    raw: RawConfig,
    text: &str,
    path: &Path,
    env: &Env,
) -> Result<Config, ConfigError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::*;
    use crate::config::{defaults, parse, try_defaults};

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
}
