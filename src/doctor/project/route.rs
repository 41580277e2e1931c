//! Where a container's paths lead on the host: mount sources expanded (Compose interpolation,
//! `~`, relative paths), the container's `AWS_CONFIG_FILE`, `AWS_SHARED_CREDENTIALS_FILE` and
//! `AWS_PROFILE` as botocore in the container reads them, through which mount each lands, and
//! how the profile resolves there ([`Route`](super::Route)). No text for the user is built here
//! beyond the compose file's own errors.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::{COMPOSE_FILE, CONTAINER_HOME, Ctx, Facts, FileVar, OnHost, Resolves, Route};
use crate::aws_profile;
use crate::config::{Env, expand_like_botocore};
use crate::doctor::Check;
use crate::doctor::compose::{self, Mount, Service};
use crate::ini_edit;
use crate::sso_cache;
use crate::write::WriteMode;

impl Ctx<'_> {
    /// A mount source on the host: `$HOME`, `${HOME}`, `${VAR:-default}` (from `.env`) and `~`
    /// expanded, relative paths against the project; `None` for what is not a path.
    pub(super) fn host_path(&self, source: &str) -> Option<PathBuf> {
        let s = interpolate(source, self.p.home, &self.dotenv);
        let path = if s == "~" {
            self.p.home.to_owned()
        } else if let Some(rest) = s.strip_prefix("~/") {
            self.p.home.join(rest)
        } else if s.starts_with('/') {
            PathBuf::from(&s)
        } else if s.starts_with('.') {
            self.p.dir.join(&s)
        } else {
            return None;
        };
        Some(normalize(&path))
    }

    /// Paths the containers may need: `~/.aws`, the files credsync reads or writes, the view.
    pub(super) fn roots(&self) -> Vec<PathBuf> {
        let mut r = vec![
            self.aws_dir(),
            self.cfg.aws.credentials_file.clone(),
            self.cfg.aws.config_file.clone(),
            self.cfg.aws.sso_cache_dir.clone(),
        ];
        if let Some(v) = &self.cfg.container {
            r.push(v.dir.clone());
        }
        r
    }

    pub(super) fn related(&self, host: &Path) -> bool {
        self.roots()
            .iter()
            .any(|r| r.starts_with(host) || host.starts_with(r))
    }

    pub(super) fn in_view(&self, host: &Path) -> bool {
        self.cfg
            .container
            .as_ref()
            .is_some_and(|v| host.starts_with(&v.dir))
    }

    /// Whether credsync replaces `host` with a rename (so a single-file mount goes stale).
    pub(super) fn replaced_by_rename(&self, host: &Path) -> Option<&'static str> {
        if host == self.cfg.aws.credentials_file {
            return (self.cfg.write.mode == WriteMode::Atomic).then_some("the credentials file");
        }
        if self.in_view(host) {
            return Some("a file of the container view");
        }
        if host.parent() == Some(self.cfg.aws.sso_cache_dir.as_path()) {
            return Some("an SSO token cache file");
        }
        None
    }

    /// The service's environment: `.env`, overridden by its compose `environment:`. Each value
    /// with where it came from.
    pub(super) fn environment(
        &self,
        service: &Service,
    ) -> BTreeMap<String, (String, &'static str)> {
        let mut env: BTreeMap<String, (String, &'static str)> = self
            .dotenv
            .iter()
            .map(|(k, v)| (k.clone(), (v.clone(), ".env")))
            .collect();
        for (k, v) in &service.environment {
            let v = interpolate(v, self.p.home, &self.dotenv);
            env.insert(k.clone(), (v, "the compose environment"));
        }
        env
    }

    /// The compose file's services; without them, the check that says why.
    pub(super) fn services(&self) -> Result<Vec<Service>, Check> {
        let Some(text) = self.p.compose else {
            return Err(Check::fail(
                format!("{} has no {COMPOSE_FILE}", self.p.dir.display()),
                format!(
                    "create {} with:\n{}",
                    self.p.dir.join(COMPOSE_FILE).display(),
                    self.compose_snippet()
                ),
            ));
        };
        compose::services(text).map_err(|e| {
            Check::fail(
                format!(
                    "cannot read {}: {e}",
                    self.p.dir.join(COMPOSE_FILE).display()
                ),
                "fix the YAML (doctor reads block YAML: maps, lists, anchors, flow lists)",
            )
        })
    }

    /// The services that mount `~/.aws` or a file credsync writes, each with those mounts and
    /// their host paths.
    pub(super) fn relevant<'s>(
        &self,
        services: &'s [Service],
    ) -> Vec<(&'s Service, Vec<(&'s Mount, PathBuf)>)> {
        services
            .iter()
            .map(|s| {
                let mounts = s
                    .mounts
                    .iter()
                    .filter_map(|m| self.host_path(&m.source).map(|h| (m, h)))
                    .filter(|(_, h)| self.related(h))
                    .collect::<Vec<_>>();
                (s, mounts)
            })
            .filter(|(_, m)| !m.is_empty())
            .collect()
    }

    /// The container's `AWS_CONFIG_FILE`, `AWS_SHARED_CREDENTIALS_FILE` and `AWS_PROFILE`
    /// (else `default`): from `.env` and the compose environment, expanded as botocore in the
    /// container expands them ($VAR, then ~, with the container's HOME), the files with where
    /// the mounts put them on the host.
    pub(super) fn file_vars(
        &self,
        service: &Service,
        mounts: &[(&Mount, PathBuf)],
    ) -> (FileVar, FileVar, String) {
        let env = self.environment(service);
        let mut vars: BTreeMap<String, String> = env
            .iter()
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect();
        vars.entry("HOME".to_owned())
            .or_insert_with(|| CONTAINER_HOME.to_owned());
        let container_env = Env {
            home: PathBuf::from(CONTAINER_HOME),
            vars,
        };
        let value = |name: &str, default: String| match env.get(name) {
            Some((v, from)) if v.is_empty() => (String::new(), Some(*from)),
            Some((v, from)) => (expand_like_botocore(v, &container_env), Some(*from)),
            None => (default, None),
        };
        let file = |name: &'static str, default: &str| {
            let (path, from) = value(name, format!("{CONTAINER_HOME}/.aws/{default}"));
            let host = map(mounts, &path);
            FileVar {
                name,
                path,
                from,
                host,
            }
        };
        let profile = Some(value("AWS_PROFILE", String::new()).0)
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "default".to_owned());
        (
            file("AWS_CONFIG_FILE", "config"),
            file("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
            profile,
        )
    }

    /// How far the container's config gets, and how `profile` resolves in it.
    pub(super) fn route(
        &self,
        config: &FileVar,
        creds: &FileVar,
        profile: &str,
        config_text: Option<&str>,
        creds_text: &str,
    ) -> Route {
        if config.path.is_empty() {
            return Route::ConfigEmpty;
        }
        let Some(host) = &config.host else {
            return Route::ConfigUnmapped;
        };
        let is_view = self.view_config().as_ref() == Some(&host.path);
        let Some(text) = config_text else {
            return Route::ConfigMissing { is_view };
        };
        let parsed = aws_profile::parse(text, &host.path).ok();
        let keys = parsed
            .as_ref()
            .and_then(|a| a.get(profile))
            .map(|p| &p.keys);
        let creds_defines = aws_profile::parse_credentials(creds_text, Path::new(&creds.path))
            .ok()
            .and_then(|c| c.get(profile).cloned())
            .is_some_and(|k| k.contains_key("aws_access_key_id"));
        let has_sso = |k: &BTreeMap<String, String>| k.keys().any(|k| k.starts_with("sso_"));
        let resolves = if is_view {
            match keys {
                Some(_) => Resolves::ViewProcess { creds_defines },
                None => Resolves::NotInView,
            }
        } else if keys.is_some_and(|k| has_sso(k) && !k.contains_key("role_arn")) {
            let a = parsed.as_ref();
            Resolves::Sso {
                // botocore in the container reads the token from the mounted cache.
                token: a
                    .and_then(|a| a.sso_profile(profile).ok())
                    .map(|sp| sso_cache::file_name(sp.cache_key())),
                alt: self
                    .cfg
                    .profiles
                    .iter()
                    .filter(|p| p.target != profile)
                    .find(|p| {
                        a.and_then(|a| a.get(&p.target))
                            .is_none_or(|t| !has_sso(&t.keys))
                    })
                    .map(|p| p.target.clone()),
            }
        } else if keys.is_some_and(|k| k.contains_key("role_arn")) {
            Resolves::RoleArn
        } else if creds_defines {
            Resolves::StaticKeys {
                managed: ini_edit::managed_names(creds_text)
                    .iter()
                    .any(|n| n == profile),
            }
        } else {
            Resolves::Nothing
        };
        Route::Read { is_view, resolves }
    }

    /// The files the container's uid must read on its route, each with the root of its mount
    /// and whether it is the view's: the config, then the view's JSON file, the SSO token or
    /// the credentials file the profile resolves through.
    pub(super) fn needed(&self, f: &Facts<'_>) -> Vec<(PathBuf, PathBuf, bool)> {
        let (Route::Read { is_view, resolves }, Some(config)) = (&f.route, f.config_host()) else {
            return Vec::new();
        };
        let mut out = vec![(config.path.clone(), config.root.clone(), *is_view)];
        let more = match resolves {
            Resolves::ViewProcess { .. } => self.cfg.container.as_ref().map(|v| {
                let json = v.dir.join(format!("{}.json", f.profile));
                (json, config.root.clone(), true)
            }),
            Resolves::Sso {
                token: Some(name), ..
            } => map(f.mounts, &format!("{CONTAINER_HOME}/.aws/sso/cache/{name}"))
                .map(|h| (h.path, h.root, false)),
            Resolves::StaticKeys { .. } => f
                .creds
                .host
                .as_ref()
                .map(|h| (h.path.clone(), h.root.clone(), false)),
            _ => None,
        };
        out.extend(more);
        out
    }

    /// The view's `config` on the host.
    pub(super) fn view_config(&self) -> Option<PathBuf> {
        self.cfg.container.as_ref().map(|v| v.dir.join("config"))
    }

    /// The targets credsync writes.
    pub(super) fn targets(&self) -> Vec<&str> {
        self.cfg
            .profiles
            .iter()
            .map(|p| p.target.as_str())
            .collect()
    }
}

/// Compose-style interpolation: `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `$$`.
/// `HOME` is the home directory; other names come from `.env`.
pub(super) fn interpolate(s: &str, home: &Path, dotenv: &BTreeMap<String, String>) -> String {
    let lookup = |name: &str| -> Option<String> {
        if name == "HOME" {
            Some(home.display().to_string())
        } else {
            dotenv.get(name).cloned()
        }
    };
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(a) = after.strip_prefix('$') {
            out.push('$');
            rest = a;
        } else if let Some(a) = after.strip_prefix('{') {
            let Some(end) = a.find('}') else {
                out.push_str(&rest[i..]);
                return out;
            };
            let expr = &a[..end];
            let (name, default) = match expr.split_once(":-").or_else(|| expr.split_once('-')) {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            let value = lookup(name).filter(|v| !v.is_empty());
            out.push_str(&value.or(default.map(str::to_owned)).unwrap_or_default());
            rest = &a[end + 1..];
        } else {
            let len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            out.push_str(&lookup(&after[..len]).unwrap_or_default());
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    out
}

/// Where a container path is on the host, through the longest mount that holds it.
pub(super) fn map(mounts: &[(&Mount, PathBuf)], container_path: &str) -> Option<OnHost> {
    let cp = normalize(Path::new(container_path));
    mounts
        .iter()
        .filter_map(|(m, h)| {
            let rest = cp.strip_prefix(&m.target).ok()?;
            Some((m.target.len(), h.join(rest), h))
        })
        .max_by_key(|(len, ..)| *len)
        .map(|(_, host, root)| OnHost {
            path: if host.as_os_str().is_empty() {
                root.clone()
            } else {
                host
            },
            root: root.clone(),
        })
}

/// Removes `.` components and resolves `..` lexically (mount paths are not canonicalised by
/// Docker either).
pub(super) fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;

    #[test]
    fn interpolation_and_paths() {
        let env: BTreeMap<String, String> = [("D".to_owned(), "/d".to_owned())].into();
        let h = Path::new("/h");
        assert_eq!(interpolate("${HOME}/.aws", h, &env), "/h/.aws");
        assert_eq!(interpolate("$HOME/.aws", h, &env), "/h/.aws");
        assert_eq!(interpolate("${X:-/x}/a:$D", h, &env), "/x/a:/d");
        assert_eq!(interpolate("$$HOME", h, &env), "$HOME");
        assert_eq!(normalize(Path::new("/a/./b/../c/")), Path::new("/a/c"));
    }
}
