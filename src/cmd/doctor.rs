//! `credsync doctor [--project DIR]`: gathers what the checks in `credsync::doctor` need (files,
//! the service file, the daemon's status), prints each check with its fix, and exits 1 when one
//! fails.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use credsync::astro_setup;
use credsync::aws_profile;
use credsync::config::{self, Config, Env, Origin};
use credsync::control::{self, Request, Response};
use credsync::doctor::live;
use credsync::doctor::project::{self, COMPOSE_FILE, Project, RealFs};
use credsync::doctor::{self, Check, FileFacts, Level, WslConfig};
use credsync::mounts::MountTable;
use credsync::platform::Wsl;
use credsync::process::{Runner, SystemRunner};
use credsync::service::{self, Platform, Target};
use credsync::sso_cache;
use credsync::uidmap;
use credsync::user_file::{self, Kind};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Check an Astro project instead: its docker-compose.override.yml and .env (mounts of
    /// ~/.aws, AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE / AWS_PROFILE, the container
    /// user's access)
    #[arg(long, value_name = "DIR")]
    pub(crate) project: Option<PathBuf>,
    /// With --project: also ask each running Airflow container of the project (docker exec /
    /// podman exec, as its own user, no network call) which credentials botocore resolves there
    #[arg(long, requires = "project")]
    pub(crate) live: bool,
}

/// How long to wait for the daemon's status: it answers from memory.
const DAEMON_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) fn run(args: &Args, explicit: Option<&Path>) -> ExitCode {
    let env = Env::from_process();
    let loaded = config::load(explicit, &env);
    let mut checks = doctor::check_config(&loaded);
    let cfg = loaded.unwrap_or_else(|_| config::defaults(&env));
    match &args.project {
        Some(dir) => {
            checks.extend(project_checks(&cfg, dir, &env));
            if args.live {
                let path = explicit.map_or_else(|| config::default_path(&env), Path::to_owned);
                checks.extend(live_checks(&cfg, &path, dir, &env));
            }
        }
        None => checks.extend(setup_checks(&cfg, &env)),
    }
    print_verdict(&checks)
}

/// Prints each check and the verdict line; exit 1 when one failed.
pub(crate) fn print_verdict(checks: &[Check]) -> ExitCode {
    print!("{}", doctor::render(checks));
    let count = |l: Level| checks.iter().filter(|c| c.level == l).count();
    let (fails, warns) = (count(Level::Fail), count(Level::Warn));
    println!(
        "\n{} check{}: {fails} failed, {warns} warned",
        checks.len(),
        if checks.len() == 1 { "" } else { "s" }
    );
    if fails > 0 {
        ExitCode::from(super::EXIT_DEGRADED)
    } else {
        ExitCode::SUCCESS
    }
}

fn setup_checks(cfg: &Config, env: &Env) -> Vec<Check> {
    let now = SystemTime::now();
    let mut out = Vec::new();
    let aws = aws_profile::load(&cfg.aws.config_file);
    out.push(doctor::check_aws_config(&aws, &cfg.aws.config_file));
    if let Ok(aws) = &aws {
        let credentials =
            user_file::read_text_or_empty(&cfg.aws.credentials_file, Kind::Credentials);
        let cache_dir = &cfg.aws.sso_cache_dir;
        out.extend(doctor::check_profiles(
            cfg,
            aws,
            &credentials,
            &|sso| sso_cache::read(cache_dir, sso.cache_key()).map_err(|e| e.to_string()),
            &|login| {
                let dir = credsync::login_cache::dir(env);
                let read = credsync::login_cache::read(&dir, &login.session);
                let path = credsync::login_cache::path(&dir, &login.session);
                (path, read.map_err(|e| e.to_string()))
            },
            now,
        ));
    }
    let path = &cfg.aws.credentials_file;
    let uid = cfg.container.as_ref().and_then(|c| c.uid);
    let mounts = MountTable::system();
    let facts = FileFacts::of(path, &mounts);
    out.push(doctor::check_credentials_file(path, &facts, uid));
    out.extend(container_checks(cfg, env, &facts));
    out.extend(service_check(env));
    let wsl = Wsl::here(env);
    if let Some(wsl) = &wsl {
        out.extend(doctor::check_wsl(wsl, &wslconfig(&mounts)));
    }
    out.extend(doctor::check_notifications(
        Platform::current(),
        wsl.as_ref(),
        &mounts,
        &cfg.notify,
        &|p: &Path| p.is_file(),
    ));
    let reply = match control::request(&cfg.control.socket, &Request::Status, DAEMON_TIMEOUT) {
        Ok(Response::Status(s)) => Ok(*s),
        Ok(Response::Error(e)) => Err(format!("it refused: {e}")),
        Ok(Response::Message(m)) => Err(format!("unexpected reply: {m}")),
        Err(e) => Err(e.to_string()),
    };
    out.extend(doctor::check_daemon(&cfg.control.socket, &reply));
    if let Ok(status) = &reply {
        out.push(doctor::check_daemon_matches(cfg, status));
        out.extend(doctor::check_sessions(
            status,
            cfg.refresh.token_refresh_before(),
        ));
    }
    out
}

/// What the containers' uid can read: the host uid `[container] uid` maps to, whether it is an
/// account here, and whether it can read long-lived keys in the credentials file (without a
/// `[container]` section: Astro's uid 50000; `facts` are the credentials file's).
fn container_checks(cfg: &Config, env: &Env, facts: &FileFacts) -> Vec<Check> {
    let mut out = Vec::new();
    let (uid, who) = match cfg.container.as_ref().filter(|c| c.uid.is_some()) {
        Some(c) => {
            let cuid = c.uid.unwrap_or(project::ASTRO_UID);
            let host = uidmap::resolve(c, env).map(|h| {
                h.unwrap_or(uidmap::HostUid {
                    uid: cuid,
                    engine: credsync::config::ContainerEngine::Docker,
                    why: String::new(),
                })
            });
            let account = host.as_ref().ok().and_then(|h| uidmap::user_name(h.uid));
            out.extend(doctor::check_container_uid(cuid, &host, account.as_deref()));
            match host {
                Ok(h) => (h.uid, "the containers' user, [container] uid".to_owned()),
                Err(_) => return out,
            }
        }
        None => (project::ASTRO_UID, "Astro's container user".to_owned()),
    };
    let path = std::fs::canonicalize(&cfg.aws.credentials_file)
        .unwrap_or_else(|_| cfg.aws.credentials_file.clone());
    let text = user_file::read_text_or_empty(&path, Kind::Credentials);
    let file = credsync::acl::perms(&path);
    let dir = path.parent().and_then(credsync::acl::perms);
    out.extend(doctor::check_credentials_exposure(
        &cfg.aws.credentials_file,
        &text,
        facts,
        file.as_ref(),
        dir.as_ref(),
        uid,
        &who,
    ));
    out
}

/// Windows' `%UserProfile%\.wslconfig`, as seen from this WSL distribution: Windows is asked
/// where `%UserProfile%` is (`cmd.exe /c echo %USERPROFILE%`, from the `C:` drive: a shell
/// started by systemd has no Windows directories on `PATH`), and the path is found below its
/// drive's mount.
fn wslconfig(mounts: &MountTable) -> WslConfig {
    let Some(c) = mounts.windows_drive('C') else {
        return WslConfig::Unknown("the C: drive is not mounted".to_owned());
    };
    let cmd = c.join("Windows/System32/cmd.exe").display().to_string();
    let argv = [cmd, "/c".into(), "echo".into(), "%USERPROFILE%".into()];
    let profile = match SystemRunner
        .run(&argv, Duration::from_secs(10))
        .and_then(|ran| ran.check(&argv))
    {
        Ok(ran) => ran.stdout.trim().to_owned(),
        Err(e) => return WslConfig::Unknown(format!("Windows could not be asked: {e}")),
    };
    let Some(dir) = mounts.linux_path(&profile) else {
        return WslConfig::Unknown(format!(
            "%USERPROFILE% is {profile:?}, not on a mounted drive"
        ));
    };
    let path = dir.join(".wslconfig");
    match user_file::read_text(&path, Kind::WslConfig) {
        Ok(Some(text)) => WslConfig::Read { path, text },
        Ok(None) => WslConfig::Missing { path },
        Err(e) => WslConfig::Unknown(e.to_string()),
    }
}

/// The service file's checks: what it runs, and (Linux) whether it has its sandbox.
fn service_check(env: &Env) -> Vec<Check> {
    let target = match Target::current(env) {
        Ok(t) => t,
        Err(e) => {
            return vec![Check::warn(
                format!("service: {e}"),
                "run `credsync daemon` from your session's startup instead",
            )];
        }
    };
    // A unit of the user's own, else the package's (what `systemctl --user` would run), or
    // on macOS the agent `brew services` manages.
    let own = target.service_file();
    let brew = service::brew_plist(&target.home);
    if target.platform == Platform::MacOs && !own.exists() && brew.exists() {
        return vec![doctor::check_brew_service(&brew)];
    }
    let file = match &target.packaged_unit {
        Some(packaged) if !own.exists() => packaged.clone(),
        _ => own,
    };
    let text = user_file::read_text(&file, Kind::ServiceFile)
        .ok()
        .flatten();
    // The path install writes for this binary (a Homebrew keg's is the link Homebrew keeps).
    let exe = service::running_exe().unwrap_or_default();
    let platform = Platform::current().unwrap_or(target.platform);
    let restricted = service::userns_restricted(Path::new(service::APPARMOR_USERNS_SYSCTL));
    let mut out = vec![doctor::check_service(
        platform,
        &file,
        text.as_deref(),
        &exe,
    )];
    out.extend(doctor::check_sandbox(platform, text.as_deref(), restricted));
    out
}

pub(crate) fn project_checks(cfg: &Config, dir: &Path, env: &Env) -> Vec<Check> {
    if !dir.is_dir() {
        return vec![Check::fail(
            format!("--project {}: not a directory", dir.display()),
            "give the Astro project's directory (the one with docker-compose.override.yml)",
        )];
    }
    let read = |name: &str| {
        let bytes = user_file::read(&dir.join(name), Kind::ProjectFile)
            .ok()
            .flatten()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    };
    let compose = read(COMPOSE_FILE);
    let dotenv = read(".env");
    let dockerfile = read("Dockerfile");
    let config_path = match &cfg.origin {
        Origin::File(p) => p.clone(),
        Origin::Default { config_path, .. } => config_path.clone(),
    };
    let p = Project {
        dir,
        compose: compose.as_deref(),
        dotenv: dotenv.as_deref(),
        dockerfile: dockerfile.as_deref(),
        home: &env.home,
        check_uid: cfg!(target_os = "linux"),
        host_uid: cfg
            .container
            .as_ref()
            .and_then(|c| uidmap::resolve(c, env).ok().flatten())
            .map(|h| h.uid),
    };
    let mut out = project::check(cfg, &config_path, &p, &RealFs);
    if !p.check_uid {
        out.push(Check::ok(
            "container uid access not checked: Docker Desktop shares files through its VM, \
             where host ownership does not apply",
        ));
    }
    out
}

/// `--live`: the project's running Airflow containers, each asked what botocore resolves.
fn live_checks(cfg: &Config, cfg_path: &Path, dir: &Path, env: &Env) -> Vec<Check> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    let astro = |p: &Path| user_file::read_text_or_empty(p, Kind::AstroConfig);
    let own = astro(&dir.join(".astro/config.yaml"));
    let podman = uidmap::astro_uses_podman(&own)
        || uidmap::astro_uses_podman(&astro(&env.home.join(".astro/config.yaml")));
    let engine = if podman { "podman" } else { "docker" };
    let dockerfile = user_file::read_text_or_empty(&dir.join("Dockerfile"), Kind::ProjectFile);
    let expected = project::airflow_of(&dockerfile).map_or(&[][..], |a| a.services());
    let view = cfg.container.as_ref();
    let found = live::gather(
        &SystemRunner,
        engine,
        &dir,
        live::astro_project_name(&own).as_deref(),
        expected,
        view.map(|v| v.dir.as_path()),
    );
    // Where the engine client looks for the containers: what to check when it does not see
    // them. Rootless Podman keeps its runtime state (and runc's) under XDG_RUNTIME_DIR, so
    // another session's value is another set of containers (podman(1), "Rootless mode").
    let reach = if podman {
        format!(
            "run doctor as the user who started the containers, in a session with the same \
             XDG_RUNTIME_DIR (here {}), where rootless Podman keeps their state",
            env.get("XDG_RUNTIME_DIR").unwrap_or("unset")
        )
    } else {
        format!(
            "check that DOCKER_HOST (here {}) names the engine that runs the project",
            env.get("DOCKER_HOST")
                .unwrap_or("unset: the default socket")
        )
    };
    let (probes, written) = match found {
        Ok(f) => f,
        Err(e) => {
            return vec![Check::fail(
                format!("live: {e}"),
                format!("is {engine} installed and its engine running? {reach}"),
            )];
        }
    };
    let target = cfg
        .profiles
        .first()
        .map_or("default", |p| p.target.as_str());
    let (dir_in, pic) = view.map_or_else(
        || {
            (
                env.home.join(".aws/credsync"),
                astro_setup::VIEW_IN_CONTAINER.to_owned(),
            )
        },
        |v| (v.dir.clone(), v.path_in_container.clone()),
    );
    let (mount, _) = astro_setup::view_mount(&dir_in, &pic, &env.home);
    let env_lines: Vec<String> = astro_setup::dotenv_lines(&pic, target)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let fixes = live::Fixes {
        mount: format!("- {mount}"),
        env_lines: env_lines.join("\n"),
        restart: "astro dev restart".to_owned(),
        exec: format!(
            "`{engine} exec` did not reach it: check that it runs (`{engine} ps`); {reach}"
        ),
        grant: format!(
            "credsync makes the view readable by `[container] uid` (in {}) with an ACL; \
             `credsync doctor` shows which host uid it grants and why (rootless Podman runs \
             container uid 50000 as another host uid: `engine = \"podman-rootless\"` under \
             [container]); then `credsync sync`",
            cfg_path.display()
        ),
    };
    live::judge(&probes, expected, &written, &fixes)
}
