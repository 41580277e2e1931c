//! `credsync doctor --project DIR`: does an Astro project's containers see what credsync
//! writes? Reads `DIR/docker-compose.override.yml` and `DIR/.env`, and checks the mounts of
//! `~/.aws` (or of files credsync writes), the container's `AWS_CONFIG_FILE`,
//! `AWS_SHARED_CREDENTIALS_FILE` and `AWS_PROFILE`, which row of the table in docs/astro.md
//! ("Which setup are you on?") the container is on, whether every Airflow service of the
//! project's Airflow version (read from the `Dockerfile`'s `FROM`) mounts `~/.aws`, and whether
//! the container's uid can read what it needs.
//!
//! The checks are a table of rows (`ROWS`), each a small pure function from one service's
//! gathered facts to its findings. The host is read once per service, before any row runs
//! (`Facts::gather`, through [`HostFs`], so the rows run on a fake in unit tests).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::Check;
use super::compose::{self, Mount, Service};
use crate::acl::{self, Perms};
use crate::config::Config;

mod fix;
mod route;

use route::normalize;

/// The compose file `astro dev start` layers over its own.
pub const COMPOSE_FILE: &str = "docker-compose.override.yml";
/// The home directory of Astro's `astro` user in the containers.
pub(crate) const CONTAINER_HOME: &str = "/home/astro";
/// Astro's `astro` user (native Linux Docker keeps host uids).
pub const ASTRO_UID: u32 = 50000;

/// The Airflow services `astro dev start` runs, by Airflow major version.
pub(crate) const AIRFLOW2_SERVICES: &[&str] = &["scheduler", "webserver", "triggerer"];
pub(crate) const AIRFLOW3_SERVICES: &[&str] =
    &["scheduler", "dag-processor", "api-server", "triggerer"];

/// The Airflow a project runs, as read from its `Dockerfile`'s first `FROM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Airflow {
    /// 2 or 3.
    pub major: u8,
    /// The image as written after `FROM`.
    pub image: String,
}

impl Airflow {
    /// The services of this Airflow that run DAG or task code.
    pub fn services(&self) -> &'static [&'static str] {
        if self.major >= 3 {
            AIRFLOW3_SERVICES
        } else {
            AIRFLOW2_SERVICES
        }
    }
}

/// The Airflow major version of a `Dockerfile`'s base image, when its first `FROM` names one
/// credsync recognises:
/// - Astro Runtime (`…/astro-runtime` or `…/runtime`): tags `X.Y-Z` (e.g. `3.0-2`, the
///   scheme of the Airflow 3 based releases) are Airflow `X`; semver tags `X.Y.Z` (e.g.
///   `12.1.0`, every Airflow 2 based release) are Airflow 2;
/// - `apache/airflow` and Astronomer Certified (`ap-airflow`): the tag's major version.
pub fn airflow_of(dockerfile: &str) -> Option<Airflow> {
    let image = dockerfile.lines().find_map(|l| {
        let mut words = l.split_whitespace();
        if !words.next()?.eq_ignore_ascii_case("FROM") {
            return None;
        }
        words.find(|w| !w.starts_with("--"))
    })?;
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    let (name, tag) = last.split_once(':')?;
    let digits = |s: &str| -> Option<u8> {
        let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        s[..end].parse().ok()
    };
    let major = match name {
        "astro-runtime" | "runtime" => {
            let (first, rest) = tag.split_once('.')?;
            let first: u8 = first.parse().ok()?;
            let minor_end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            match rest[minor_end..].chars().next() {
                Some('-') if minor_end > 0 => first,
                Some('.') if minor_end > 0 => 2,
                _ => return None,
            }
        }
        "airflow" | "ap-airflow" => digits(tag)?,
        _ => return None,
    };
    matches!(major, 2 | 3).then(|| Airflow {
        major,
        image: image.to_owned(),
    })
}

/// What a host path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    Missing,
    File,
    Dir,
}

/// The host files as the checks see them.
pub trait HostFs {
    fn kind(&self, path: &Path) -> PathKind;
    fn read(&self, path: &Path) -> Option<String>;
    fn perms(&self, path: &Path) -> Option<Perms>;
}

/// The real filesystem.
pub struct RealFs;

impl HostFs for RealFs {
    fn kind(&self, path: &Path) -> PathKind {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => PathKind::Dir,
            Ok(_) => PathKind::File,
            Err(_) => PathKind::Missing,
        }
    }

    fn read(&self, path: &Path) -> Option<String> {
        let kind = crate::user_file::Kind::ProjectFile;
        crate::user_file::read_text(path, kind).ok().flatten()
    }

    fn perms(&self, path: &Path) -> Option<Perms> {
        acl::perms(path)
    }
}

/// The project as read: the compose override and `.env` texts (`None`: no such file).
#[derive(Debug, Clone)]
pub struct Project<'a> {
    pub dir: &'a Path,
    pub compose: Option<&'a str>,
    pub dotenv: Option<&'a str>,
    /// The project's `Dockerfile`, whose `FROM` says the Airflow version.
    pub dockerfile: Option<&'a str>,
    pub home: &'a Path,
    /// Whether to check the container uid's access (native Linux Docker; Docker Desktop
    /// shares files through a VM where host ownership does not apply).
    pub check_uid: bool,
    /// The host uid the container's uid runs as, when it differs (rootless Podman maps it
    /// through `/etc/subuid`; see `crate::uidmap`). `None`: the same uid.
    pub host_uid: Option<u32>,
}

/// Every check of the project. `config_path` is credsync's config file, for fixes.
///
/// Three steps: the compose file's services that mount what credsync writes (pure), what their
/// mounts and files are on the host (`Facts::gather`, the only I/O), then the `ROWS` on
/// those facts (pure).
pub fn check(cfg: &Config, config_path: &Path, p: &Project<'_>, fs: &dyn HostFs) -> Vec<Check> {
    let ctx = Ctx::new(cfg, config_path, p);
    let services = match ctx.services() {
        Ok(s) => s,
        Err(c) => return vec![c],
    };
    let relevant = ctx.relevant(&services);
    if relevant.is_empty() {
        return vec![Check::fail(
            format!("no service in {COMPOSE_FILE} mounts ~/.aws or a file credsync writes"),
            format!("add to {COMPOSE_FILE}:\n{}", ctx.compose_snippet()),
        )];
    }
    let facts: Vec<Facts<'_>> = relevant
        .iter()
        .map(|(s, mounts)| Facts::gather(&ctx, s, mounts, fs))
        .collect();
    report(&ctx, &facts)
}

/// The checks of every service, each check once with the services it is about (named when
/// not all of them), after the check of which Airflow services mount `~/.aws`.
fn report(ctx: &Ctx<'_>, facts: &[Facts<'_>]) -> Vec<Check> {
    let mut per_service: Vec<(Check, Vec<String>)> = Vec::new();
    for f in facts {
        for row in ROWS {
            for c in row(ctx, f) {
                merge(&mut per_service, c, f.service);
            }
        }
    }
    let all: Vec<&str> = facts.iter().map(|f| f.service).collect();
    let mut out = vec![ctx.services_check(&all)];
    for (mut c, names) in per_service {
        if names.len() != all.len() {
            c.what = format!("{} [{}]", c.what, names.join(", "));
        }
        out.push(c);
    }
    out
}

fn merge(list: &mut Vec<(Check, Vec<String>)>, c: Check, service: &str) {
    match list.iter_mut().find(|(o, _)| *o == c) {
        Some((_, names)) => names.push(service.to_owned()),
        None => list.push((c, vec![service.to_owned()])),
    }
}

/// One check of a service's container: the findings (none when it does not apply) from the
/// gathered facts. Pure.
type Row = fn(&Ctx<'_>, &Facts<'_>) -> Vec<Check>;

/// The checks of each container, in the order they are reported: which row of docs/astro.md's
/// table ("Which setup are you on?") the container is on, and what stands in its way.
const ROWS: &[Row] = &[
    mounts,
    view_reached,
    config_var_empty,
    file_vars_outside_mounts,
    config_unreadable,
    config_not_credsyncs,
    view_profile,
    sso_profile,
    role_arn_profile,
    static_keys_profile,
    no_credentials,
    container_uid_access,
];

/// A container path on the host, through the longest mount that holds it.
#[derive(Debug, Clone)]
struct OnHost {
    path: PathBuf,
    /// The host side of that mount.
    root: PathBuf,
}

/// A file variable of the container (`AWS_CONFIG_FILE`, `AWS_SHARED_CREDENTIALS_FILE`).
struct FileVar {
    name: &'static str,
    /// As botocore in the container expands it; empty when set but empty (botocore's "no such
    /// file": it opens the path as given); the default when unset.
    path: String,
    /// Where the value came from (`.env` or the compose environment); `None`: unset.
    from: Option<&'static str>,
    host: Option<OnHost>,
}

/// How the profile the container uses resolves, in the config it reads.
#[derive(Debug, Clone, PartialEq)]
enum Resolves {
    /// Through the view's `credential_process` (table row 3). `creds_defines`: the
    /// credentials file the container reads defines the profile too.
    ViewProcess { creds_defines: bool },
    /// The view's config has no such profile.
    NotInView,
    /// Through SSO with the mounted token cache (table row 1). `token`: the cache file's name;
    /// `alt`: another target credsync writes that has no `sso_*` keys.
    Sso {
        token: Option<String>,
        alt: Option<String>,
    },
    /// botocore assumes the role itself.
    RoleArn,
    /// Keys in the credentials file (table row 2); `managed`: credsync writes them.
    StaticKeys { managed: bool },
    /// Nothing the container can find.
    Nothing,
}

/// How far the container's `AWS_CONFIG_FILE` gets.
#[derive(Debug, Clone, PartialEq)]
enum Route {
    /// Set but empty: botocore reads no config.
    ConfigEmpty,
    /// Outside every mount.
    ConfigUnmapped,
    /// Mapped, but not readable on the host. `is_view`: it is the view's config.
    ConfigMissing { is_view: bool },
    /// Read.
    Read { is_view: bool, resolves: Resolves },
}

/// A file the container's uid must read, and what its uid gets on each path from the mount
/// root down to it.
struct Reach {
    in_view: bool,
    /// Each directory to search and then the file to read: the bits needed and the path's
    /// permissions (`None`: missing, reported elsewhere).
    steps: Vec<(PathBuf, u16, Option<Perms>)>,
}

/// What is known about one service's container before any decision: its environment as
/// botocore there reads it (pure), and what its mounts and files are on the host (read once,
/// by [`Facts::gather`]).
struct Facts<'a> {
    service: &'a str,
    mounts: &'a [(&'a Mount, PathBuf)],
    /// What each mount's source is on the host (same order as `mounts`).
    kinds: Vec<PathKind>,
    config: FileVar,
    creds: FileVar,
    /// The container reads no credentials file: `/dev/null`, or set but empty.
    no_creds: bool,
    /// `AWS_PROFILE`, else `default`.
    profile: String,
    /// The container is set up for the view (row 3): there the credentials file is needed by
    /// nothing, and only matters when it defines the profile.
    view_row: bool,
    route: Route,
    /// Only gathered when the container uid is checked.
    access: Vec<Reach>,
}

impl<'a> Facts<'a> {
    /// The edge: reads the config and credentials files the container reads, and the kinds and
    /// permissions of the paths the checks look at.
    fn gather(
        ctx: &Ctx<'_>,
        service: &'a Service,
        mounts: &'a [(&'a Mount, PathBuf)],
        fs: &dyn HostFs,
    ) -> Facts<'a> {
        let (config, mut creds, profile) = ctx.file_vars(service, mounts);
        let no_creds =
            creds.path.is_empty() || normalize(Path::new(&creds.path)) == Path::new("/dev/null");
        if no_creds {
            creds.host = None;
        }
        let view_row = ctx.cfg.container.as_ref().is_some_and(|v| {
            config.path == format!("{}/config", v.path_in_container)
                || config.host.as_ref().map(|h| &h.path) == ctx.view_config().as_ref()
        });
        let config_text = config.host.as_ref().and_then(|h| fs.read(&h.path));
        let creds_text = (creds.host.as_ref())
            .and_then(|h| fs.read(&h.path))
            .unwrap_or_default();
        let route = ctx.route(
            &config,
            &creds,
            &profile,
            config_text.as_deref(),
            &creds_text,
        );
        let mut f = Facts {
            service: &service.name,
            mounts,
            kinds: mounts.iter().map(|(_, h)| fs.kind(h)).collect(),
            config,
            creds,
            no_creds,
            profile,
            view_row,
            route,
            access: Vec::new(),
        };
        if ctx.p.check_uid {
            f.access = ctx
                .needed(&f)
                .into_iter()
                .map(|(file, root, in_view)| Reach {
                    in_view,
                    steps: access_steps(fs, &file, &root),
                })
                .collect();
        }
        f
    }

    fn config_host(&self) -> Option<&OnHost> {
        self.config.host.as_ref()
    }
}

/// Each directory from `root` down to `file` (search) and `file` (read), with its permissions.
fn access_steps(fs: &dyn HostFs, file: &Path, root: &Path) -> Vec<(PathBuf, u16, Option<Perms>)> {
    let mut paths: Vec<(PathBuf, u16)> = Vec::new();
    if let Ok(rest) = file.parent().unwrap_or(root).strip_prefix(root) {
        let mut dir = root.to_owned();
        if fs.kind(root) == PathKind::Dir {
            paths.push((dir.clone(), acl::SEARCH));
        }
        for c in rest.components() {
            dir.push(c);
            paths.push((dir.clone(), acl::SEARCH));
        }
    }
    paths.push((file.to_owned(), acl::READ));
    paths
        .into_iter()
        .map(|(p, need)| {
            let perms = fs.perms(&p);
            (p, need, perms)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The rows.

/// Each mount of `~/.aws` or of a file credsync writes: what it is on the host, read-only or not.
fn mounts(ctx: &Ctx<'_>, f: &Facts<'_>) -> Vec<Check> {
    // A container that resolves through SSO writes the token cache: read-write is its need.
    let sso = matches!(
        f.route,
        Route::Read {
            resolves: Resolves::Sso { .. },
            ..
        }
    );
    f.mounts
        .iter()
        .zip(&f.kinds)
        .map(|((m, h), kind)| ctx.mount_check(m, h, *kind, sso))
        .collect()
}

/// The view: reached by a mount, at the path its config names.
fn view_reached(ctx: &Ctx<'_>, f: &Facts<'_>) -> Vec<Check> {
    let Some(v) = &ctx.cfg.container else {
        return Vec::new();
    };
    let reach = f
        .mounts
        .iter()
        .filter(|(_, h)| v.dir.starts_with(h))
        .max_by_key(|(_, h)| h.as_os_str().len());
    let Some((m, h)) = reach else {
        return vec![Check::fail(
            format!(
                "the container view {} is not reached by any mount",
                ctx.tilde(&v.dir)
            ),
            format!("add to the service's volumes:\n{}", ctx.view_mount_line()),
        )];
    };
    let rest = v.dir.strip_prefix(h).unwrap_or(Path::new(""));
    let at = Path::new(&m.target).join(rest);
    if at == Path::new(&v.path_in_container) {
        return Vec::new();
    }
    vec![Check::fail(
        format!(
            "the container view is mounted at {}, but its config runs `cat {}/<target>.json`",
            at.display(),
            v.path_in_container
        ),
        format!(
            "set in {}:\n[container]\npath_in_container = \"{}\"",
            ctx.config_path.display(),
            at.display()
        ),
    )]
}

/// `AWS_CONFIG_FILE` set but empty.
fn config_var_empty(ctx: &Ctx<'_>, f: &Facts<'_>) -> Vec<Check> {
    if f.route != Route::ConfigEmpty {
        return Vec::new();
    }
    vec![Check::fail(
        format!(
            "AWS_CONFIG_FILE is set but empty (from {}): botocore in the container reads no \
             config file",
            f.config.from.unwrap_or(".env")
        ),
        format!("set in .env:\n{}", ctx.suggest_env()),
    )]
}

/// The config file, and the credentials file where it is needed, outside every mount.
fn file_vars_outside_mounts(ctx: &Ctx<'_>, f: &Facts<'_>) -> Vec<Check> {
    if f.route == Route::ConfigEmpty {
        return Vec::new();
    }
    let suggest_env = ctx.suggest_env();
    let creds_needed = !(f.no_creds || f.view_row);
    [(&f.config, true), (&f.creds, creds_needed)]
        .into_iter()
        .filter(|(v, needed)| *needed && v.host.is_none())
        .map(|(v, _)| {
            let (name, path) = (v.name, &v.path);
            let what = match v.from {
                Some(from) => format!("{name}={path} (from {from}) is outside every mount"),
                None => format!("{name} is not set, and its default {path} is outside every mount"),
            };
            // Already the path credsync's setup uses: the mount is what is missing.
            let fix = if suggest_env.lines().any(|l| l == format!("{name}={path}")) {
                let line = if ctx.cfg.container.is_some() {
                    ctx.view_mount_line()
                } else {
                    ctx.aws_mount_line()
                };
                format!("add to the service's volumes:\n{line}")
            } else {
                format!("set in .env:\n{suggest_env}")
            };
            Check::fail(format!("{what}: the container cannot see the file"), fix)
        })
        .collect()
}

/// The config file maps to a host path that cannot be read.
fn config_unreadable(ctx: &Ctx<'_>, f: &Facts<'_>) -> Vec<Check> {
    let (Route::ConfigMissing { is_view }, Some(host)) = (&f.route, f.config_host()) else {
        return Vec::new();
    };
    let check = if *is_view {
        Check::warn(
            format!(
                "the view's config {} does not exist yet",
                ctx.tilde(&host.path)
            ),
            "run `credsync sync` (or start the daemon) to write the view",
        )
    } else {
        Check::fail(
            format!(
                "AWS_CONFIG_FILE={} is {} on the host, which does not exist or cannot be read",
                f.config.path,
                ctx.tilde(&host.path)
            ),
            format!("set in .env:\n{}", ctx.suggest_env()),
        )
    };
    vec![check]
}

/// The container reads a config credsync neither reads nor writes.
fn config_not_credsyncs(ctx: &Ctx<'_>, f: &Facts<'_>) -> Vec<Check> {
    let (Route::Read { is_view: false, .. }, Some(host)) = (&f.route, f.config_host()) else {
        return Vec::new();
    };
    if host.path == ctx.cfg.aws.config_file {
        return Vec::new();
    }
    vec![Check::warn(
        format!(
            "AWS_CONFIG_FILE={} is {}, which credsync neither reads nor writes",
            f.config.path,
            ctx.tilde(&host.path)
        ),
        format!("set in .env:\n{}", ctx.suggest_env()),
    )]
}

/// Table row 3: the view's config, and what the credentials file does to it.
fn view_profile(ctx: &Ctx<'_>, f: &Facts<'_>) -> Vec<Check> {
    let profile = &f.profile;
    let creds_c = &f.creds.path;
    match &f.route {
        Route::Read {
            resolves: Resolves::ViewProcess { creds_defines },
            ..
        } => {
            let ok = Check::ok(format!(
                "profile {profile}: resolves through the view's credential_process; \
                 long-running clients get new keys (table row 3)"
            ));
            if *creds_defines {
                return vec![
                    ok,
                    Check::warn(
                        format!(
                            "the credentials file the container reads ({creds_c}) defines \
                             [{profile}]: botocore uses those keys before credential_process, \
                             and long-running clients keep them after they expire"
                        ),
                        format!("set in .env:\n{}", ctx.suggest_env()),
                    ),
                ];
            }
            let which = if creds_c.is_empty() {
                "AWS_SHARED_CREDENTIALS_FILE is set but empty: no credentials file".to_owned()
            } else if f.no_creds {
                format!("AWS_SHARED_CREDENTIALS_FILE={creds_c}: no credentials file")
            } else if f.creds.host.is_none() {
                format!("{creds_c} is outside every mount: no credentials file from the host")
            } else {
                format!("the credentials file {creds_c} does not define [{profile}]")
            };
            vec![
                ok,
                Check::ok(format!(
                    "{which}, so botocore goes on to the view's credential_process"
                )),
            ]
        }
        Route::Read {
            resolves: Resolves::NotInView,
            ..
        } => {
            let targets = ctx.targets();
            vec![Check::fail(
                format!(
                    "profile {profile} (AWS_PROFILE, else default) is not in the view's config; \
                     it holds the targets {}",
                    targets.join(", ")
                ),
                format!(
                    "set in .env:\nAWS_PROFILE={}",
                    targets.first().unwrap_or(&"default")
                ),
            )]
        }
        _ => Vec::new(),
    }
}

/// Table row 1: the container resolves the profile through SSO itself.
fn sso_profile(ctx: &Ctx<'_>, f: &Facts<'_>) -> Vec<Check> {
    let (
        Route::Read {
            resolves: Resolves::Sso { alt, .. },
            ..
        },
        Some(host),
    ) = (&f.route, f.config_host())
    else {
        return Vec::new();
    };
    let profile = &f.profile;
    let mut fix = String::new();
    if let Some(env) = ctx.view_env() {
        fix += &format!("use the view (row 3), in .env:\n{env}\n");
    }
    match alt {
        Some(t) => fix += &format!("or a target credsync writes, in .env:\nAWS_PROFILE={t}"),
        None => {
            fix += &format!(
                "or give the profile a target without sso_* keys in {}:\n\
                 [[profiles]]\nsource = \"{profile}\"\ntarget = \"{profile}-keys\"\n\
                 and set AWS_PROFILE={profile}-keys in .env",
                ctx.config_path.display()
            )
        }
    }
    vec![Check::warn(
        format!(
            "profile {profile} has sso_* keys in {}: botocore in the container resolves it \
             through SSO with the mounted token cache, not through the keys credsync writes \
             (table row 1)",
            ctx.tilde(&host.path)
        ),
        fix.trim_end(),
    )]
}

/// The profile has `role_arn`: botocore assumes the role itself.
fn role_arn_profile(ctx: &Ctx<'_>, f: &Facts<'_>) -> Vec<Check> {
    let (
        Route::Read {
            resolves: Resolves::RoleArn,
            ..
        },
        Some(host),
    ) = (&f.route, f.config_host())
    else {
        return Vec::new();
    };
    vec![Check::warn(
        format!(
            "profile {} has role_arn in {}: botocore in the container assumes the role itself \
             instead of using the keys credsync writes",
            f.profile,
            ctx.tilde(&host.path)
        ),
        format!(
            "use a credsync target with no role_arn in the config: AWS_PROFILE={}",
            ctx.targets().first().unwrap_or(&"<target>")
        ),
    )]
}

/// Table row 2: keys in the credentials file.
fn static_keys_profile(_ctx: &Ctx<'_>, f: &Facts<'_>) -> Vec<Check> {
    let Route::Read {
        resolves: Resolves::StaticKeys { managed },
        ..
    } = &f.route
    else {
        return Vec::new();
    };
    let note = if *managed {
        "keys credsync writes"
    } else {
        "static keys credsync does not manage"
    };
    vec![Check::ok(format!(
        "profile {}: resolves through the credentials file's {note} (table row 2); \
         long-running clients keep them after they expire, the [container] view fixes that",
        f.profile
    ))]
}

/// No credentials for the profile anywhere the container looks.
fn no_credentials(ctx: &Ctx<'_>, f: &Facts<'_>) -> Vec<Check> {
    let Route::Read {
        resolves: Resolves::Nothing,
        ..
    } = &f.route
    else {
        return Vec::new();
    };
    vec![Check::warn(
        format!(
            "profile {} (AWS_PROFILE, else default) has no credentials the container can find",
            f.profile
        ),
        format!(
            "set AWS_PROFILE in .env to a target credsync writes: {}",
            ctx.targets().join(", ")
        ),
    )]
}

/// Whether the container's uid can search every directory from the mount root down to each
/// file it needs and read the file: per file, the first path that stops it, with the fix.
fn container_uid_access(ctx: &Ctx<'_>, f: &Facts<'_>) -> Vec<Check> {
    let host_uid = ctx.p.host_uid.unwrap_or(ctx.uid);
    f.access
        .iter()
        .filter_map(|a| {
            a.steps.iter().find_map(|(path, need, perms)| {
                let perms = perms.as_ref()?; // missing: reported elsewhere
                (acl::granted(perms, host_uid) & need != *need)
                    .then(|| ctx.access_check(path, *need, perms, a.in_view))
            })
        })
        .collect()
}

/// What every row reads besides its service's facts: credsync's config, the project and its
/// `.env`. Its fix text is built in `fix`, where paths lead in `route`.
struct Ctx<'a> {
    cfg: &'a Config,
    config_path: &'a Path,
    p: &'a Project<'a>,
    dotenv: BTreeMap<String, String>,
    uid: u32,
    airflow: Option<Airflow>,
}

impl<'a> Ctx<'a> {
    fn new(cfg: &'a Config, config_path: &'a Path, p: &'a Project<'a>) -> Ctx<'a> {
        Ctx {
            cfg,
            config_path,
            p,
            dotenv: p.dotenv.map(compose::parse_dotenv).unwrap_or_default(),
            uid: cfg
                .container
                .as_ref()
                .and_then(|c| c.uid)
                .unwrap_or(ASTRO_UID),
            airflow: p.dockerfile.and_then(airflow_of),
        }
    }

    fn aws_dir(&self) -> PathBuf {
        self.p.home.join(".aws")
    }
}

#[cfg(test)]
mod tests {
    use super::super::Level;
    use super::super::tests::worst;
    use super::*;
    use crate::config::{self, Env};
    use std::cell::RefCell;

    /// Whether any check fails (the containers will break).
    fn breaks(checks: &[Check]) -> bool {
        checks.iter().any(|c| c.level == Level::Fail)
    }

    #[derive(Default)]
    struct FakeFs {
        files: RefCell<BTreeMap<PathBuf, (String, Perms)>>,
        dirs: RefCell<BTreeMap<PathBuf, Perms>>,
    }

    fn perms(mode: u32) -> Perms {
        Perms {
            owner: 1000,
            mode,
            acl: None,
        }
    }

    impl FakeFs {
        fn file(&self, p: &str, text: &str, mode: u32) {
            let p = PathBuf::from(p);
            let mut d = p.parent();
            while let Some(dir) = d {
                self.dirs
                    .borrow_mut()
                    .entry(dir.to_owned())
                    .or_insert(perms(0o755));
                d = dir.parent();
            }
            self.files
                .borrow_mut()
                .insert(p, (text.to_owned(), perms(mode)));
        }
    }

    impl HostFs for FakeFs {
        fn kind(&self, p: &Path) -> PathKind {
            if self.files.borrow().contains_key(p) {
                PathKind::File
            } else if self.dirs.borrow().contains_key(p) {
                PathKind::Dir
            } else {
                PathKind::Missing
            }
        }
        fn read(&self, p: &Path) -> Option<String> {
            self.files.borrow().get(p).map(|(t, _)| t.clone())
        }
        fn perms(&self, p: &Path) -> Option<Perms> {
            self.files
                .borrow()
                .get(p)
                .map(|(_, m)| m.clone())
                .or_else(|| self.dirs.borrow().get(p).cloned())
        }
    }

    const HOST_CONFIG: &str = "[sso-session corp]\nsso_start_url = https://x/start\nsso_region = us-east-1\n[profile dev]\nsso_session = corp\nsso_account_id = 1\nsso_role_name = Dev\n";
    const VIEW_CONFIG: &str = "[profile dev]\nregion = eu-west-1\ncredential_process = cat /home/astro/.aws/credsync/dev.json\n";

    fn setup(container: &str) -> (Config, FakeFs) {
        let env = Env {
            home: PathBuf::from("/h"),
            vars: BTreeMap::new(),
        };
        let text = format!("[[profiles]]\nsource = \"dev\"\n{container}");
        let cfg = config::parse(&text, Path::new("/h/.config/credsync/config.toml"), &env).unwrap();
        let fs = FakeFs::default();
        fs.file("/h/.aws/config", HOST_CONFIG, 0o644);
        fs.file("/h/.aws/credsync/config", VIEW_CONFIG, 0o644);
        fs.file("/h/.aws/credsync/dev.json", "{}", 0o644);
        fs.file("/h/.aws/credentials", "# managed by credsync; expires 2030-01-01T00:00:00Z\n[dev]\naws_access_key_id = A\naws_secret_access_key = B\n", 0o600);
        (cfg, fs)
    }

    fn run(cfg: &Config, fs: &FakeFs, compose: &str, dotenv: &str) -> Vec<Check> {
        let p = Project {
            dir: Path::new("/proj"),
            compose: Some(compose),
            dotenv: Some(dotenv),
            dockerfile: Some(DOCKERFILE),
            home: Path::new("/h"),
            check_uid: true,
            host_uid: None,
        };
        let checks = check(cfg, Path::new("/h/.config/credsync/config.toml"), &p, fs);
        // Every fix is an instruction: a command to run in backticks, or what to do with the
        // lines that follow, never a bare line to paste.
        for c in &checks {
            let first = c.fix.as_deref().unwrap_or_default().lines().next();
            let first = first.unwrap_or_default();
            if let Some(rest) = first.strip_prefix("run ") {
                assert!(rest.starts_with('`'), "{first}");
            }
            for bare in [
                "- ",
                "`",
                "credsync ",
                "AWS_",
                "services:",
                "[",
                "setfacl ",
                "chmod ",
            ] {
                assert!(!first.starts_with(bare), "not an instruction: {first}");
            }
        }
        checks
    }

    const DOCKERFILE: &str = "FROM quay.io/astronomer/astro-runtime:12.1.0\n";

    const GOOD_COMPOSE: &str = "services:\n  scheduler:\n    volumes:\n      - ~/.aws:/home/astro/.aws:ro\n  webserver:\n    volumes:\n      - ~/.aws:/home/astro/.aws:ro\n  triggerer:\n    volumes:\n      - ~/.aws:/home/astro/.aws:ro\n";
    const GOOD_ENV: &str = "AWS_CONFIG_FILE=/home/astro/.aws/credsync/config\nAWS_SHARED_CREDENTIALS_FILE=/dev/null\nAWS_PROFILE=dev\n";

    #[test]
    fn a_correct_project_passes() {
        let (cfg, fs) = setup("[container]\nuid = 50000\n");
        let c = run(&cfg, &fs, GOOD_COMPOSE, GOOD_ENV);
        let text = super::super::render(&c);
        assert_eq!(worst(&c), Level::Ok, "{text}");
        assert!(text.contains("table row 3"), "{text}");
        assert!(
            !text.contains("[scheduler]"),
            "same for all services: {text}"
        );
    }

    #[test]
    fn single_file_mount_of_the_credentials_file() {
        let (cfg, fs) = setup("");
        let compose = "services:\n  scheduler:\n    volumes:\n      - type: bind\n        source: $HOME/.aws/credentials\n        target: /home/astro/.aws/credentials\n      - /h/.aws/config:/home/astro/.aws/config:ro\n";
        let c = run(&cfg, &fs, compose, "AWS_PROFILE=dev\n");
        let text = super::super::render(&c);
        assert!(
            text.contains("single-file bind mount pins the inode"),
            "{text}"
        );
        assert!(text.contains("- ~/.aws:/home/astro/.aws:ro"), "{text}");
        assert!(text.contains("[write] mode = \"in-place\""), "{text}");
        assert!(
            text.contains("table row 1"),
            "host config with sso keys: {text}"
        );
        assert!(breaks(&c));
        let long_rw = "services:\n  s:\n    volumes:\n      - type: bind\n        source: ${HOME}/.aws\n        target: /home/astro/.aws/\n";
        let text = super::super::render(&run(&cfg, &fs, long_rw, GOOD_ENV));
        assert!(
            text.contains("fix: add to that volume:\n           read_only: true"),
            "{text}"
        );
        // In place, the single file is fine.
        let (cfg, fs) = setup("[write]\nmode = \"in-place\"\n");
        let c = run(&cfg, &fs, compose, "AWS_PROFILE=dev\n");
        let text = super::super::render(&c);
        assert!(!text.contains("pins the inode"), "{text}");
    }

    #[test]
    fn view_unreached_and_env_outside_mounts() {
        let (cfg, fs) = setup("[container]\ndir = \"/h/view\"\nuid = 50000\n");
        let c = run(
            &cfg,
            &fs,
            GOOD_COMPOSE,
            "AWS_CONFIG_FILE=/opt/aws/config\nAWS_SHARED_CREDENTIALS_FILE=/opt/aws/credentials\n",
        );
        let text = super::super::render(&c);
        assert!(
            text.contains("the container view ~/view is not reached by any mount"),
            "{text}"
        );
        assert!(
            text.contains("- ~/view:/home/astro/.aws/credsync:ro"),
            "{text}"
        );
        assert!(
            text.contains("AWS_CONFIG_FILE=/opt/aws/config (from .env) is outside every mount"),
            "{text}"
        );
        assert!(
            text.contains(
                "AWS_SHARED_CREDENTIALS_FILE=/opt/aws/credentials (from .env) is outside"
            ),
            "{text}"
        );
        assert!(breaks(&c));
    }

    #[test]
    fn unreadable_view_file() {
        let (cfg, fs) = setup("[container]\n");
        fs.file("/h/.aws/credsync/dev.json", "{}", 0o600);
        let c = run(&cfg, &fs, GOOD_COMPOSE, GOOD_ENV);
        let text = super::super::render(&c);
        assert!(
            text.contains("uid 50000 (the container's user) cannot read /h/.aws/credsync/dev.json"),
            "{text}"
        );
        assert!(
            text.contains("[container]\n           uid = 50000"),
            "{text}"
        );
        assert!(breaks(&c));
        // A directory without search permission stops it too.
        let (cfg, fs) = setup("[container]\nuid = 50000\n");
        fs.dirs
            .borrow_mut()
            .insert(PathBuf::from("/h/.aws"), perms(0o700));
        let text = super::super::render(&run(&cfg, &fs, GOOD_COMPOSE, GOOD_ENV));
        assert!(text.contains("cannot search /h/.aws "), "{text}");
    }

    #[test]
    fn nothing_mounted_and_rw() {
        let (cfg, fs) = setup("");
        let c = run(&cfg, &fs, "services:\n  scheduler:\n    image: x\n", "");
        assert!(breaks(&c));
        assert!(
            c[0].fix
                .as_deref()
                .unwrap()
                .contains("- ~/.aws:/home/astro/.aws:ro")
        );
        let c = run(
            &cfg,
            &fs,
            "services:\n  s:\n    volumes:\n      - ~/.aws:/home/astro/.aws:rw\n",
            "AWS_PROFILE=nope\n",
        );
        let text = super::super::render(&c);
        assert!(
            text.contains(
                "warn  mount ~/.aws:/home/astro/.aws: directory, read-write (read-only is the safer"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "fix: make the mount read-only in docker-compose.override.yml:\n           - ~/.aws:/home/astro/.aws:ro"
            ),
            "{text}"
        );
    }

    #[test]
    fn airflow_version_from_the_dockerfile() {
        let major = |d: &str| airflow_of(d).map(|a| a.major);
        assert_eq!(
            major("FROM astrocrpublic.azurecr.io/astronomer/astro-runtime:3.0-2\n"),
            Some(3)
        );
        assert_eq!(
            major("FROM astrocrpublic.azurecr.io/runtime:3.1-12\n"),
            Some(3)
        );
        assert_eq!(
            major(
                "# base\nfrom --platform=linux/amd64 quay.io/astronomer/astro-runtime:3.0-2-python-3.12 AS base\n"
            ),
            Some(3)
        );
        assert_eq!(
            major("FROM quay.io/astronomer/astro-runtime:12.1.0\n"),
            Some(2)
        );
        assert_eq!(
            major("FROM quay.io/astronomer/astro-runtime:9.0.0-python-3.10\n"),
            Some(2)
        );
        // The first Runtime 3.x (2021) was semver and Airflow 2.2.
        assert_eq!(
            major("FROM quay.io/astronomer/astro-runtime:3.0.4\n"),
            Some(2)
        );
        assert_eq!(major("FROM apache/airflow:3.0.1\n"), Some(3));
        assert_eq!(
            major("FROM quay.io/astronomer/ap-airflow:2.4.3-onbuild\n"),
            Some(2)
        );
        assert_eq!(major("FROM python:3.12\n"), None);
        assert_eq!(major("FROM quay.io/astronomer/astro-runtime\n"), None);
        assert_eq!(major("RUN echo\n"), None);
    }

    #[test]
    fn airflow_services_without_the_mount_are_named() {
        let (cfg, fs) = setup("[container]\nuid = 50000\n");
        let compose2 = "services:\n  scheduler:\n    volumes:\n      - ~/.aws:/home/astro/.aws:ro\n  triggerer:\n    volumes:\n      - ~/.aws:/home/astro/.aws:ro\n";
        let check = |compose: &str, dockerfile: Option<&str>| {
            let p = Project {
                dir: Path::new("/proj"),
                compose: Some(compose),
                dotenv: Some(GOOD_ENV),
                dockerfile,
                home: Path::new("/h"),
                check_uid: true,
                host_uid: None,
            };
            let c = check(&cfg, Path::new("/h/.config/credsync/config.toml"), &p, &fs);
            super::super::render(&c)
        };
        // Airflow 2: webserver is missing.
        let text = check(compose2, Some(DOCKERFILE));
        assert!(
            text.contains("warn  Airflow 2 project (FROM quay.io/astronomer/astro-runtime:12.1.0) runs scheduler, webserver, triggerer; webserver has no mount of ~/.aws"),
            "{text}"
        );
        assert!(
            text.contains("fix: add under services: in docker-compose.override.yml:\n             webserver:\n               volumes:\n                 - ~/.aws:/home/astro/.aws:ro\n"),
            "{text}"
        );
        // Airflow 3: dag-processor and api-server are missing, webserver is not asked for.
        let text = check(
            compose2,
            Some("FROM astrocrpublic.azurecr.io/astronomer/astro-runtime:3.0-2\n"),
        );
        assert!(
            text.contains("runs scheduler, dag-processor, api-server, triggerer; dag-processor, api-server have no mount of ~/.aws"),
            "{text}"
        );
        assert!(text.contains("top-level DAG code"), "{text}");
        assert!(!text.contains("webserver"), "{text}");
        // All four mounted: ok.
        let compose3 = format!(
            "{compose2}  dag-processor:\n    volumes:\n      - ~/.aws:/home/astro/.aws:ro\n  api-server:\n    volumes:\n      - ${{HOME}}/.aws:/home/astro/.aws:ro\n"
        );
        let text = check(
            &compose3,
            Some("FROM astrocrpublic.azurecr.io/astronomer/astro-runtime:3.0-2\n"),
        );
        assert!(
            text.contains("ok    Airflow 3 project (FROM astrocrpublic.azurecr.io/astronomer/astro-runtime:3.0-2): its services scheduler, dag-processor, api-server, triggerer all mount ~/.aws"),
            "{text}"
        );
        // Unknown version: said, and the snippet for a project without mounts shows both sets.
        let text = check(compose2, None);
        assert!(
            text.contains("Airflow version unknown (the project has no Dockerfile)"),
            "{text}"
        );
        let text = check("services:\n  scheduler:\n    image: x\n", None);
        assert!(
            text.contains("for Airflow 3 (FROM …/runtime:3.x-N):"),
            "{text}"
        );
        assert!(text.contains("  dag-processor:"), "{text}");
        assert!(text.contains("  webserver:"), "{text}");
    }

    #[test]
    fn the_view_row_accepts_a_credentials_file_without_the_profile() {
        let (cfg, fs) = setup("[container]\nuid = 50000\n");
        for (creds, says) in [
            (
                "/dev/null",
                "AWS_SHARED_CREDENTIALS_FILE=/dev/null: no credentials file",
            ),
            (
                "",
                "AWS_SHARED_CREDENTIALS_FILE is set but empty: no credentials file",
            ),
            (
                "/opt/none",
                "/opt/none is outside every mount: no credentials file from the host",
            ),
            (
                "/home/astro/.aws/credentials",
                "the credentials file /home/astro/.aws/credentials does not define [dev]",
            ),
        ] {
            let (cfg, fs) = if creds.ends_with(".aws/credentials") {
                // The host's credentials file with other profiles only.
                let (c, f) = setup("[container]\nuid = 50000\n");
                f.file(
                    "/h/.aws/credentials",
                    "[other]\naws_access_key_id = A\naws_secret_access_key = B\n",
                    0o644,
                );
                (c, f)
            } else {
                (cfg.clone(), setup("[container]\nuid = 50000\n").1)
            };
            let env = format!(
                "AWS_CONFIG_FILE=/home/astro/.aws/credsync/config\nAWS_SHARED_CREDENTIALS_FILE={creds}\nAWS_PROFILE=dev\n"
            );
            let c = run(&cfg, &fs, GOOD_COMPOSE, &env);
            let text = super::super::render(&c);
            assert_eq!(worst(&c), Level::Ok, "{creds:?}: {text}");
            assert!(text.contains(says), "{creds:?}: {text}");
            assert!(text.contains("table row 3"), "{text}");
        }
        // A credentials file that defines the profile is warned about, and the fix is the
        // view's .env lines with /dev/null, never a file credsync does not write.
        let env = "AWS_CONFIG_FILE=/home/astro/.aws/credsync/config\nAWS_PROFILE=dev\n";
        let text = super::super::render(&run(&cfg, &fs, GOOD_COMPOSE, env));
        assert!(
            text.contains("defines [dev]: botocore uses those keys before credential_process"),
            "{text}"
        );
        assert!(
            text.contains("AWS_SHARED_CREDENTIALS_FILE=/dev/null"),
            "{text}"
        );
        assert!(!text.contains("credsync/credentials"), "{text}");
        // Outside the view row, a credentials path in no mount still fails.
        let (cfg, fs) = setup("");
        let text = super::super::render(&run(
            &cfg,
            &fs,
            GOOD_COMPOSE,
            "AWS_SHARED_CREDENTIALS_FILE=/opt/aws/credentials\nAWS_PROFILE=dev\n",
        ));
        assert!(text.contains("AWS_SHARED_CREDENTIALS_FILE=/opt/aws/credentials (from .env) is outside every mount"), "{text}");
    }

    #[test]
    fn container_values_are_expanded_as_botocore_in_the_container_does() {
        let (cfg, fs) = setup("[container]\nuid = 50000\n");
        let env = "AWS_CONFIG_FILE=~/.aws/credsync/config\nAWS_SHARED_CREDENTIALS_FILE=${HOME}/.aws/none\nAWS_PROFILE=dev\n";
        let c = run(&cfg, &fs, GOOD_COMPOSE, env);
        let text = super::super::render(&c);
        assert_eq!(worst(&c), Level::Ok, "{text}");
        assert!(text.contains("table row 3"), "{text}");
        assert!(
            text.contains("the credentials file /home/astro/.aws/none does not define [dev]"),
            "{text}"
        );
    }

    #[test]
    fn without_the_view_the_suggestion_names_the_files_credsync_writes() {
        let (cfg, fs) = setup("[aws]\ncredentials_file = \"~/.aws/credentials-alt\"\n");
        let text = super::super::render(&run(
            &cfg,
            &fs,
            GOOD_COMPOSE,
            "AWS_SHARED_CREDENTIALS_FILE=/opt/aws/credentials\nAWS_PROFILE=dev\n",
        ));
        assert!(
            text.contains("AWS_SHARED_CREDENTIALS_FILE=/home/astro/.aws/credentials-alt"),
            "{text}"
        );
        assert!(
            !text.contains("AWS_SHARED_CREDENTIALS_FILE=/home/astro/.aws/credentials\n"),
            "{text}"
        );
    }
}
