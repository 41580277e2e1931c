//! What the service runs ([`ServiceSpec`]): the binary (named by the path its package manager
//! keeps), the config file in use, the environment carried from the installing shell so the
//! service manages what `credsync sync` in that shell would, the directories outside the unit's
//! defaults that credsync writes, and how much of the systemd sandbox the unit asks for. Decided
//! from the config and the environment as values; both service files are rendered from it.

use std::path::{Path, PathBuf};

use super::{ServiceError, stable_exe};
use crate::config::{self, Config, Env, Origin};

/// What the service runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    /// The absolute path of the credsync binary.
    pub exe: PathBuf,
    /// `--config <path>` when a config file is in use.
    pub config: Option<PathBuf>,
    /// Directories outside `~/.aws` and the runtime directory that credsync writes (systemd's
    /// `ReadWritePaths`).
    pub extra_rw_paths: Vec<PathBuf>,
    /// The environment that decides what credsync manages, carried from the installing shell
    /// into the service (see [`carried_env`]), in order.
    pub env: Vec<(String, String)>,
    /// The sandbox the systemd unit asks for.
    pub sandbox: Sandbox,
}

/// How much of the systemd sandbox the unit asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sandbox {
    /// Every directive a user manager can apply, the file-system view included.
    Full,
    /// Without the file-system view (its user namespace maps only your uid, so POSIX ACL
    /// entries for another uid, as `[container] uid` needs, cannot be written): the reason.
    NoNamespaces(String),
    /// None: the sandbox failed to start on this machine; the reason (e.g.
    /// `status=226/NAMESPACE`).
    Off(String),
}

/// The variables that decide what credsync manages and where it talks, besides
/// `AWS_PROFILE` (see [`carried_env`]). Every `AWS_ENDPOINT_URL*` variable counts too.
pub(crate) const CARRIED_VARS: &[&str] = &[
    "AWS_CONFIG_FILE",
    "AWS_LOGIN_CACHE_DIRECTORY",
    "AWS_SHARED_CREDENTIALS_FILE",
    "CREDSYNC_LOG",
];

/// The log level the service uses when the installing shell set no `CREDSYNC_LOG`.
const DEFAULT_SERVICE_LOG: &str = "info";

/// The environment `credsync sync` in this shell would act on, for the service to act the
/// same: `AWS_CONFIG_FILE`, `AWS_SHARED_CREDENTIALS_FILE`, every `AWS_ENDPOINT_URL*`,
/// `CREDSYNC_LOG` when set (even empty: the daemon reads them as the shell's credsync does),
/// and `AWS_PROFILE` when it decides the managed profile (no config file, or one without
/// `[[profiles]]`). Sorted by name.
pub(crate) fn carried_env(cfg: &Config, env: &Env) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = env
        .vars
        .iter()
        .filter(|(k, _)| CARRIED_VARS.contains(&k.as_str()) || k.starts_with("AWS_ENDPOINT_URL"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(profile) = env.vars.get("AWS_PROFILE")
        && profile_decided_by_env(cfg, env)
    {
        out.push(("AWS_PROFILE".to_owned(), profile.clone()));
    }
    out.sort();
    out
}

/// Whether `AWS_PROFILE` changes the profiles `cfg` manages: the configuration loaded again
/// without it manages others.
fn profile_decided_by_env(cfg: &Config, env: &Env) -> bool {
    let mut without = env.clone();
    without.vars.remove("AWS_PROFILE");
    let again = match &cfg.origin {
        Origin::File(path) => config::load(Some(path), &without).map(|c| c.profiles),
        Origin::Default { .. } => Ok(config::defaults(&without).profiles),
    };
    again.map_or(true, |profiles| profiles != cfg.profiles)
}

impl ServiceSpec {
    /// What a package's unit runs: `exe daemon`, the default config, no environment of an
    /// installing shell, and the sandbox without the file-system view: that view needs a user
    /// namespace, which some kernels refuse (the unit then fails with status=217/USER or
    /// 226/NAMESPACE), and where `service install` then rewrites its own unit without it,
    /// nothing can rewrite a packaged one.
    pub fn packaged(exe: PathBuf) -> ServiceSpec {
        ServiceSpec {
            exe,
            config: None,
            extra_rw_paths: Vec::new(),
            env: Vec::new(),
            sandbox: Sandbox::NoNamespaces(
                "a packaged unit must start on every machine, and this view needs a user \
                 namespace, which some machines refuse"
                    .to_owned(),
            ),
        }
    }

    /// The running binary ([`running_exe`]) and the config in use.
    pub fn from_config(cfg: &Config, env: &Env) -> Result<ServiceSpec, ServiceError> {
        Ok(ServiceSpec::for_exe(&running_exe()?, cfg, env))
    }

    /// The binary at `exe` (canonical), named by the path its package manager keeps
    /// ([`stable_exe`]), and the config in use.
    pub fn for_exe(exe: &Path, cfg: &Config, env: &Env) -> ServiceSpec {
        let config = match &cfg.origin {
            Origin::File(p) => Some(absolute(p)),
            Origin::Default { .. } => None,
        };
        let runtime_dir = env.xdg_dir("XDG_RUNTIME_DIR");
        ServiceSpec {
            exe: stable_exe(exe, &|p| p.canonicalize().ok()),
            config,
            extra_rw_paths: extra_rw_paths(cfg, env, runtime_dir),
            env: carried_env(cfg, env),
            sandbox: sandbox_for(cfg),
        }
    }
}

/// The path a service names for the running binary: canonicalised, then [`stable_exe`] (a
/// Homebrew keg's path becomes the link Homebrew keeps across upgrades).
pub fn running_exe() -> Result<PathBuf, ServiceError> {
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|source| ServiceError::CurrentExe { source })?;
    Ok(stable_exe(&exe, &|p| p.canonicalize().ok()))
}

/// The sandbox a configuration allows: no file-system view when `[container] uid` asks for
/// ACL entries naming another uid.
pub(crate) fn sandbox_for(cfg: &Config) -> Sandbox {
    match cfg.container.as_ref().and_then(|c| c.uid) {
        Some(uid) => Sandbox::NoNamespaces(format!(
            "[container] uid = {uid} needs POSIX ACL entries for uid {uid}, which a user \
             namespace mapping only your uid cannot write"
        )),
        None => Sandbox::Full,
    }
}

/// `p` canonicalised, else made absolute, else as it is.
pub(super) fn absolute(p: &Path) -> PathBuf {
    p.canonicalize()
        .unwrap_or_else(|_| std::path::absolute(p).unwrap_or_else(|_| p.to_owned()))
}

/// The directories credsync writes that the unit's default `ReadWritePaths` (`~/.aws` and
/// the runtime directory) do not cover: the credentials file's directory, the SSO cache, the
/// `aws login` cache (`$AWS_LOGIN_CACHE_DIRECTORY`), the container view and the socket's
/// directory.
pub(crate) fn extra_rw_paths(
    cfg: &Config,
    env: &Env,
    runtime_dir: Option<PathBuf>,
) -> Vec<PathBuf> {
    let aws = env.home.join(".aws");
    let mut candidates: Vec<PathBuf> = Vec::new();
    candidates.extend(cfg.aws.credentials_file.parent().map(Path::to_owned));
    candidates.push(cfg.aws.sso_cache_dir.clone());
    candidates.push(crate::login_cache::dir(env));
    candidates.extend(cfg.container.as_ref().map(|c| c.dir.clone()));
    candidates.extend(cfg.control.socket.parent().map(Path::to_owned));
    let mut out: Vec<PathBuf> = Vec::new();
    for p in candidates {
        let covered = p.starts_with(&aws) || runtime_dir.as_ref().is_some_and(|r| p.starts_with(r));
        if !covered && !p.as_os_str().is_empty() && !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// The service's environment: the carried variables, and `CREDSYNC_LOG=info` unless carried.
pub(crate) fn service_env(carried: &[(String, String)]) -> Vec<(String, String)> {
    let mut out = carried.to_vec();
    if !out.iter().any(|(k, _)| k == "CREDSYNC_LOG") {
        out.push(("CREDSYNC_LOG".to_owned(), DEFAULT_SERVICE_LOG.to_owned()));
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_paths_skip_what_the_unit_covers() {
        let env = Env {
            home: PathBuf::from("/home/u"),
            vars: Default::default(),
        };
        let mut cfg = crate::config::defaults(&env);
        cfg.control.socket = PathBuf::from("/run/user/1000/credsync.sock");
        assert_eq!(
            extra_rw_paths(&cfg, &env, Some("/run/user/1000".into())),
            Vec::<PathBuf>::new()
        );
        cfg.aws.credentials_file = PathBuf::from("/srv/shared/credentials");
        cfg.control.socket = PathBuf::from("/home/u/.cache/credsync/credsync.sock");
        assert_eq!(
            extra_rw_paths(&cfg, &env, Some("/run/user/1000".into())),
            vec![
                PathBuf::from("/srv/shared"),
                PathBuf::from("/home/u/.cache/credsync")
            ]
        );
        // An `aws login` cache moved out of ~/.aws.
        let moved = Env {
            vars: [(
                "AWS_LOGIN_CACHE_DIRECTORY".to_owned(),
                "/srv/login".to_owned(),
            )]
            .into(),
            ..env
        };
        assert!(
            extra_rw_paths(&cfg, &moved, None).contains(&PathBuf::from("/srv/login")),
            "{:?}",
            extra_rw_paths(&cfg, &moved, None)
        );
    }

    fn env_of(home: &str, vars: &[(&str, &str)]) -> Env {
        Env {
            home: PathBuf::from(home),
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn the_environment_that_decides_what_is_managed_is_carried() {
        let env = env_of(
            "/home/u",
            &[
                ("AWS_PROFILE", "legacy"),
                ("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials-alt"),
                ("AWS_CONFIG_FILE", ""),
                ("AWS_ENDPOINT_URL_SSO", "http://127.0.0.1:9"),
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:8"),
                ("AWS_REGION", "eu-west-1"),
                ("CREDSYNC_LOG", "debug"),
                ("PATH", "/usr/bin"),
            ],
        );
        let cfg = crate::config::defaults(&env);
        let got = carried_env(&cfg, &env);
        let want: Vec<(String, String)> = [
            ("AWS_CONFIG_FILE", ""),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:8"),
            ("AWS_ENDPOINT_URL_SSO", "http://127.0.0.1:9"),
            ("AWS_PROFILE", "legacy"),
            ("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials-alt"),
            ("CREDSYNC_LOG", "debug"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn aws_profile_is_carried_only_when_it_decides_the_profiles() {
        let dir = tempfile::tempdir().unwrap();
        let named = dir.path().join("named.toml");
        std::fs::write(&named, "[[profiles]]\nsource = \"dev\"\n").unwrap();
        let unnamed = dir.path().join("unnamed.toml");
        std::fs::write(&unnamed, "[refresh]\nmin_remaining = \"20m\"\n").unwrap();
        let env = env_of("/home/u", &[("AWS_PROFILE", "legacy")]);
        let has_profile = |path: &Path| {
            let cfg = crate::config::load(Some(path), &env).unwrap();
            carried_env(&cfg, &env)
                .iter()
                .any(|(k, v)| k == "AWS_PROFILE" && v == "legacy")
        };
        assert!(!has_profile(&named), "the file names its profiles");
        assert!(
            has_profile(&unnamed),
            "the file names none: AWS_PROFILE decides"
        );
    }

    #[test]
    fn a_container_uid_leaves_out_the_namespaces() {
        let env = env_of("/home/u", &[]);
        let mut cfg = crate::config::defaults(&env);
        assert_eq!(sandbox_for(&cfg), Sandbox::Full);
        cfg.container = Some(crate::config::ContainerConfig {
            dir: "/home/u/.aws/credsync".into(),
            path_in_container: "/home/astro/.aws/credsync".into(),
            uid: Some(50000),
            share_credentials_file: false,
            engine: None,
            home: "/home/u".into(),
        });
        assert!(matches!(sandbox_for(&cfg), Sandbox::NoNamespaces(w) if w.contains("50000")));
    }
}
