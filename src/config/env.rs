//! The environment as credsync's config sees it ([`Env`], injected), and the paths that come
//! from it: the default config file and socket, and the AWS files named by `AWS_CONFIG_FILE`
//! and `AWS_SHARED_CREDENTIALS_FILE`, expanded as botocore expands them (`$VAR`, then `~` and
//! `~user` from the password database).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{
    AwsFiles, CONFIGPARSER_DEFAULT_SECTION, ConfigError, ContainerConfig, DEFAULT_CONTAINER_DIR,
    DEFAULT_PATH_IN_CONTAINER, ProfileEntry,
};
use crate::platform::Platform;

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
pub(super) fn default_socket(env: &Env) -> PathBuf {
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
pub(super) fn aws_file_from_env(
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

pub(super) fn default_aws_files(env: &Env) -> Result<AwsFiles, ConfigError> {
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
pub(super) fn default_profile(env: &Env) -> Result<(ProfileEntry, &'static str), ConfigError> {
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

pub(super) fn default_container(env: &Env) -> ContainerConfig {
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
pub(super) fn expand_tilde(s: &str, env: &Env) -> PathBuf {
    if s == "~" {
        env.home.clone()
    } else if let Some(rest) = s.strip_prefix("~/") {
        env.home.join(rest)
    } else {
        PathBuf::from(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::*;
    use crate::config::{defaults, parse, try_defaults};

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
