//! `credsync astro setup [DIR]`: from an Astro project to containers that read the view. Reads
//! the project (its `Dockerfile`'s `FROM`, `.astro/config.yaml`, `docker-compose.override.yml`,
//! `.env`) and credsync's config, asks `credsync::astro_setup` what each file needs, writes it
//! (atomically, each file only when its bytes are still what was read), syncs, reloads the
//! daemon when one runs, and ends with `doctor --project`'s verdict. `--dry-run` prints the
//! diffs and writes nothing.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use credsync::astro_setup::{self, ConfigWant, Edit};
use credsync::aws_profile;
use credsync::chain;
use credsync::config::{self, Config, ContainerEngine, Env};
use credsync::control::{self, Request, Response};
use credsync::doctor::project::{self, COMPOSE_FILE};
use credsync::status::Kind as PlanKind;
use credsync::uidmap;
use credsync::user_file::{self, Kind};
use credsync::write::{self, WriteMode, WriteOptions};

use super::{EXIT_DEGRADED, EXIT_USAGE};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Set up an Astro project's containers to read fresh credentials, then run doctor on it
    ///
    /// Adds the profile and the container view to credsync's config, the ~/.aws mount to
    /// docker-compose.override.yml and the AWS_* lines to .env, after your own lines and never
    /// changing them (what cannot be added that way is printed, and it exits 1); then syncs and
    /// reloads the daemon when it runs. A second run changes nothing.
    Setup(SetupArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct SetupArgs {
    /// The Astro project (a Dockerfile and .astro/) [default: the current directory]
    #[arg(value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The profile the containers use: a target (or source) of credsync's config, else a
    /// profile of the AWS config to add [default: the only one; asked when there are several]
    #[arg(long, value_name = "PROFILE")]
    profile: Option<String>,
    /// Print a unified diff of every file it would change, and change nothing
    #[arg(long)]
    dry_run: bool,
}

/// How long a reload may take: the daemon re-reads two small files.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) fn run(args: &Args, explicit: Option<&Path>) -> ExitCode {
    match &args.command {
        Sub::Setup(a) => setup(a, explicit),
    }
}

/// One file `setup` looks at: where, what it held, and its edit.
struct Planned {
    path: PathBuf,
    /// What the diff calls it.
    label: String,
    before: Option<String>,
    edit: Edit,
}

fn setup(args: &SetupArgs, explicit: Option<&Path>) -> ExitCode {
    match plan(args, explicit) {
        Ok((files, cfg_path)) => apply(args, explicit, &files, &cfg_path),
        Err(msg) => {
            eprintln!("credsync astro setup: {msg}\nnothing was changed");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// The project: `DIR`, else the current directory, made absolute so that every message names
/// the files by a path that means something outside this shell (". is not an Astro project"
/// does not).
fn project_dir(args: &SetupArgs) -> PathBuf {
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    std::path::absolute(&dir).unwrap_or(dir)
}

fn read(path: &Path, kind: Kind) -> Result<Option<String>, String> {
    user_file::read_text(path, kind).map_err(|e| e.to_string())
}

/// Reads everything and decides each file's edit; nothing is written.
fn plan(args: &SetupArgs, explicit: Option<&Path>) -> Result<(Vec<Planned>, PathBuf), String> {
    let env = Env::from_process();
    let dir = project_dir(args);
    let dockerfile = read(&dir.join("Dockerfile"), Kind::ProjectFile)?;
    let (Some(dockerfile), true) = (dockerfile, dir.join(".astro").is_dir()) else {
        return Err(format!(
            "{} is not an Astro project (it needs a Dockerfile and .astro/; `astro dev init` \
             makes them)",
            dir.display()
        ));
    };
    let airflow = project::airflow_of(&dockerfile).ok_or_else(|| {
        format!(
            "the FROM line of {} names no Astro Runtime or Airflow image credsync recognises, \
             so it cannot tell which Airflow services to set up",
            dir.join("Dockerfile").display()
        )
    })?;
    println!(
        "Airflow {} project (FROM {}): services {}",
        airflow.major,
        airflow.image,
        airflow.services().join(", ")
    );
    let engine = project_engine(&dir, &env);
    println!("container engine: {}", engine.1);

    let cfg_path = explicit.map_or_else(|| config::default_path(&env), Path::to_owned);
    let cfg_text = read(&cfg_path, Kind::CredsyncConfig)?;
    let existing = match &cfg_text {
        Some(t) => Some(
            config::parse(t, &cfg_path, &env)
                .map_err(|e| format!("{e}\nfix credsync's config first"))?,
        ),
        None => None,
    };
    let dotenv_path = dir.join(".env");
    let dotenv = read(&dotenv_path, Kind::ProjectFile)?;
    let want = choose_profile(
        args,
        &env,
        cfg_text.as_deref(),
        existing.as_ref(),
        dotenv.as_deref(),
    )?;
    let want = ConfigWant {
        // Docker Desktop for Mac shares files through its VM: no uid to grant.
        uid: cfg!(target_os = "linux").then_some(project::ASTRO_UID),
        engine: engine.0.filter(|e| *e == ContainerEngine::PodmanRootless),
        ..want
    };
    println!("profile: {} (from {})", want.target, want.source);

    let cfg_edit = astro_setup::edit_config(
        cfg_text.as_deref(),
        existing.as_ref(),
        &want,
        &cfg_path,
        &env,
    );
    // The view as the config will have it: the new text's when it changes.
    let after = match &cfg_edit {
        Edit::Change(t) => config::parse(t, &cfg_path, &env).ok(),
        _ => existing.clone(),
    };
    let (view_dir, pic) = after
        .as_ref()
        .and_then(|c| c.container.as_ref())
        .map_or_else(
            || {
                (
                    env.home.join(".aws/credsync"),
                    astro_setup::VIEW_IN_CONTAINER.to_owned(),
                )
            },
            |v| (v.dir.clone(), v.path_in_container.clone()),
        );
    let (mount, covers) = astro_setup::view_mount(&view_dir, &pic, &env.home);
    let compose_path = dir.join(COMPOSE_FILE);
    let compose = read(&compose_path, Kind::ProjectFile)?;
    let compose_edit =
        astro_setup::edit_override(compose.as_deref(), airflow.services(), &mount, &covers);
    let lines = astro_setup::dotenv_lines(&pic, &want.target);
    let dotenv_edit = astro_setup::edit_dotenv(dotenv.as_deref(), &lines);
    let files = vec![
        Planned {
            label: cfg_path.display().to_string(),
            path: cfg_path.clone(),
            before: cfg_text,
            edit: cfg_edit,
        },
        Planned {
            label: COMPOSE_FILE.to_owned(),
            path: compose_path,
            before: compose,
            edit: compose_edit,
        },
        Planned {
            label: ".env".to_owned(),
            path: dotenv_path,
            before: dotenv,
            edit: dotenv_edit,
        },
    ];
    Ok((files, cfg_path))
}

/// The engine the project's containers run on: rootless Podman when the project's (or the
/// user's) Astro config says `container: binary: podman` and credsync is not root; else what
/// credsync's own detection says.
fn project_engine(dir: &Path, env: &Env) -> (Option<ContainerEngine>, String) {
    let own = dir.join(".astro/config.yaml");
    let text = user_file::read_text_or_empty(&own, Kind::AstroConfig);
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if uidmap::astro_uses_podman(&text) {
        return if euid == 0 {
            (
                Some(ContainerEngine::Docker),
                format!(
                    "rootful Podman ({} sets container.binary = podman, run as root: uids are \
                     not remapped)",
                    own.display()
                ),
            )
        } else {
            (
                Some(ContainerEngine::PodmanRootless),
                format!(
                    "rootless Podman ({} sets container.binary = podman)",
                    own.display()
                ),
            )
        };
    }
    let probe = config::ContainerConfig {
        dir: PathBuf::new(),
        path_in_container: String::new(),
        uid: None,
        share_credentials_file: false,
        engine: None,
        home: env.home.clone(),
    };
    let (engine, why) = uidmap::detect_engine(&probe, env, euid);
    let name = match engine {
        ContainerEngine::Docker => "Docker",
        ContainerEngine::PodmanRootless => "rootless Podman",
    };
    (Some(engine), format!("{name} ({why})"))
}

/// The profile the project's containers use, and whether credsync's config manages it.
fn choose_profile(
    args: &SetupArgs,
    env: &Env,
    cfg_text: Option<&str>,
    existing: Option<&Config>,
    dotenv: Option<&str>,
) -> Result<ConfigWant, String> {
    let explicit_profiles = cfg_text
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| {
            t.get("profiles")
                .and_then(|p| p.as_array())
                .map(|a| !a.is_empty())
        })
        .unwrap_or(false);
    let defaults;
    let cfg = match existing {
        Some(c) => c,
        None => {
            defaults = config::try_defaults(env).map_err(|e| e.to_string())?;
            &defaults
        }
    };
    let managed: Vec<(String, String)> = if explicit_profiles {
        cfg.profiles
            .iter()
            .map(|p| (p.source.clone(), p.target.clone()))
            .collect()
    } else {
        Vec::new()
    };
    let want = |(source, target): (String, String), managed: bool| ConfigWant {
        source,
        target,
        managed,
        uid: None,
        engine: None,
    };
    if let Some(p) = &args.profile {
        if let Some(m) = managed.iter().find(|(s, t)| t == p || s == p) {
            return Ok(want(m.clone(), true));
        }
        let aws = aws_profile::load(&cfg.aws.config_file).map_err(|e| e.to_string())?;
        if aws.profiles.contains_key(p) {
            let creds = source_credentials(cfg);
            let planner = chain::Planner::new(&aws, &creds);
            return Ok(want((p.clone(), target_of(&planner, p)), false));
        }
        return Err(format!(
            "--profile {p}: no such profile in credsync's config or in {}",
            cfg.aws.config_file.display()
        ));
    }
    let (candidates, is_managed) = if explicit_profiles {
        (managed, true)
    } else {
        let aws = aws_profile::load(&cfg.aws.config_file).map_err(|e| e.to_string())?;
        let creds = source_credentials(cfg);
        let planner = chain::Planner::new(&aws, &creds);
        let found: Vec<(String, String)> = aws
            .profiles
            .keys()
            .filter(|n| {
                planner.plan(n).is_ok_and(|p| {
                    matches!(
                        p.kind(),
                        PlanKind::Sso | PlanKind::AssumeRole | PlanKind::Login
                    )
                })
            })
            .map(|n| (n.clone(), target_of(&planner, n)))
            .collect();
        if found.is_empty() {
            return Err(format!(
                "{} has no SSO, role or aws login profile for credsync to keep fresh; add one \
                 (`aws configure sso`, `aws login`), or pass --profile",
                cfg.aws.config_file.display()
            ));
        }
        (found, false)
    };
    // The project's own choice, when it made one.
    let chosen = dotenv
        .map(astro_setup::dotenv_map)
        .and_then(|e| e.get("AWS_PROFILE").cloned())
        .and_then(|p| candidates.iter().find(|(s, t)| *t == p || *s == p).cloned());
    if let Some(c) = chosen {
        return Ok(want(c, is_managed));
    }
    if candidates.len() == 1 {
        return Ok(want(candidates[0].clone(), is_managed));
    }
    let names: Vec<String> = candidates
        .iter()
        .map(|(s, t)| {
            if s == t {
                t.clone()
            } else {
                format!("{t} (aws login profile {s})")
            }
        })
        .collect();
    if !std::io::stdin().is_terminal() {
        return Err(format!(
            "several profiles could serve the project ({}): pass --profile",
            names.join(", ")
        ));
    }
    eprintln!("Which profile should the project's containers use?");
    for (i, n) in names.iter().enumerate() {
        eprintln!("  {}) {n}", i + 1);
    }
    eprint!("number: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the answer: {e}"))?;
    let pick = line
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=candidates.len()).contains(n))
        .ok_or_else(|| format!("{:?} is not one of 1 to {}", line.trim(), candidates.len()))?;
    Ok(want(candidates[pick - 1].clone(), is_managed))
}

/// The source credentials of `cfg`'s credentials file (its static keys, which plans start
/// from), without credsync's managed sections.
fn source_credentials(cfg: &Config) -> BTreeMap<String, BTreeMap<String, String>> {
    let text = user_file::read_text_or_empty(&cfg.aws.credentials_file, Kind::Credentials);
    credsync::ini_edit::source_credentials(&text, &cfg.aws.credentials_file).unwrap_or_default()
}

/// The section credsync writes profile `name`'s keys to: its own name, or
/// [`super::init::login_target`] for an `aws login` profile, as `credsync init` writes it.
fn target_of(planner: &chain::Planner, name: &str) -> String {
    match planner.plan(name) {
        Ok(p) if p.kind() == PlanKind::Login => super::init::login_target(name),
        _ => name.to_owned(),
    }
}

/// Prints the diffs (dry run) or writes the files, then syncs, reloads and runs doctor.
fn apply(
    args: &SetupArgs,
    explicit: Option<&Path>,
    files: &[Planned],
    cfg_path: &Path,
) -> ExitCode {
    let refused: Vec<&Planned> = files
        .iter()
        .filter(|f| matches!(f.edit, Edit::Refused { .. }))
        .collect();
    let changes: Vec<(&Planned, &String)> = files
        .iter()
        .filter_map(|f| match &f.edit {
            Edit::Change(t) => Some((f, t)),
            _ => None,
        })
        .collect();
    if args.dry_run {
        for (f, new) in &changes {
            print!(
                "{}",
                astro_setup::unified_diff(&f.label, f.before.as_deref(), new)
            );
        }
        if changes.is_empty() {
            println!("nothing to change");
        }
        print_refused(&refused);
        return ExitCode::from(if refused.is_empty() { 0 } else { EXIT_DEGRADED });
    }
    let mut config_changed = false;
    let mut updated: Vec<String> = Vec::new();
    for (f, new) in &changes {
        match write_exact(&f.path, f.before.as_deref(), new) {
            Ok(()) => {
                println!("updated {}", f.path.display());
                config_changed |= f.path == cfg_path;
                updated.push(f.path.display().to_string());
            }
            Err(e) => {
                // Each file is replaced whole or not at all; say which ones were, so that a
                // second run (which adds only what is missing) is expected, not feared.
                let done = if updated.is_empty() {
                    "nothing was changed".to_owned()
                } else {
                    format!("already updated: {}", updated.join(", "))
                };
                eprintln!(
                    "credsync astro setup: {e}\n{done} (each file is replaced whole or not at \
                     all). Fix that, then run `credsync astro setup` again: it adds only what is \
                     still missing"
                );
                return ExitCode::from(EXIT_DEGRADED);
            }
        }
    }
    if changes.is_empty() {
        println!("nothing to change: the project and credsync's config are set up");
    }
    let cfg = match super::load_config(explicit) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let view_missing = cfg.container.as_ref().is_none_or(|v| {
        cfg.profiles
            .iter()
            .any(|p| !v.dir.join(format!("{}.json", p.target)).exists())
    });
    let mut code = ExitCode::SUCCESS;
    if config_changed || view_missing {
        println!("\ncredsync sync:");
        if super::sync::run(explicit) != ExitCode::SUCCESS {
            code = ExitCode::from(EXIT_DEGRADED);
        }
    }
    match control::request(&cfg.control.socket, &Request::Reload, RELOAD_TIMEOUT) {
        Ok(Response::Error(e)) => {
            eprintln!("credsync astro setup: the daemon refused the reload: {e}");
            code = ExitCode::from(EXIT_DEGRADED);
        }
        Ok(_) => println!("reloaded the running daemon"),
        Err(_) => {
            println!("no daemon is running: `credsync service install` keeps the credentials fresh")
        }
    }
    let dir = project_dir(args);
    println!("\ncredsync doctor --project {}:", dir.display());
    let checks = super::doctor::project_checks(&cfg, &dir, &Env::from_process());
    if super::doctor::print_verdict(&checks) != ExitCode::SUCCESS {
        code = ExitCode::from(EXIT_DEGRADED);
    }
    if !refused.is_empty() {
        print_refused(&refused);
        code = ExitCode::from(EXIT_DEGRADED);
    }
    code
}

fn print_refused(refused: &[&Planned]) {
    for f in refused {
        if let Edit::Refused { why, lines } = &f.edit {
            eprintln!(
                "\ncredsync astro setup: left {} as it is: {why}\nadd these lines yourself:\n{}",
                f.path.display(),
                lines.trim_end()
            );
        }
    }
}

/// Writes `new` to `path` atomically, only while the file still holds `before` (`None`: does
/// not exist): a file changed since it was read is left alone.
fn write_exact(path: &Path, before: Option<&str>, new: &str) -> Result<(), String> {
    let opts = WriteOptions {
        mode: WriteMode::Atomic,
        new_file_mode: 0o644,
    };
    write::update(path, &opts, |old| {
        if old != before.map(str::as_bytes) {
            return Err("it changed while credsync astro setup ran; run it again".to_owned());
        }
        Ok(Some(new.as_bytes().to_vec()))
    })
    .map(|_| ())
    .map_err(|e| e.to_string())
}
