//! `credsync daemon`: the foreground daemon the service runs. Binds the control socket (one
//! daemon per user), tells systemd it is ready, and stops with exit 0 on SIGTERM or SIGINT; a
//! write in flight always finishes first (writes are synchronous and atomic). SIGHUP reloads.
//!
//! Run by launchd (`--launchd`, which the LaunchAgent passes), it never ends with a failure
//! that a restart cannot fix, since launchd's `KeepAlive` restarts every exit but 0, every few
//! seconds, forever: a config that does not load (credsync's or the AWS config) is logged and
//! waited for to change, then loaded again; another daemon already serving this user ends this
//! one with exit 0.

use std::path::Path;
use std::process::ExitCode;

use credsync::config::{self, Config, Env, Origin};
use credsync::control::{self, BindError, Command};
use credsync::daemon::{ConfigWait, Control};
use credsync::engine::Engine;
use tokio::signal::unix::{SignalKind, signal};

use super::{EXIT_DEGRADED, EXIT_OK, EXIT_USAGE};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Run by launchd: wait for a config that does not load to change instead of exiting, and
    /// exit 0 when another daemon already runs (launchd restarts every other exit)
    #[arg(long, hide = true)]
    pub(crate) launchd: bool,
}

/// Why the daemon did not get to serving.
enum Stop {
    /// A config did not load (already reported): these are the paths to watch for a change.
    Config(Box<Config>),
    /// Another daemon serves this user (already reported).
    AlreadyRunning,
    /// Anything else, with the exit code (already reported).
    Exit(ExitCode),
}

pub(crate) fn run(config: Option<&Path>, args: &Args) -> ExitCode {
    credsync::logging::init(tracing::level_filters::LevelFilter::INFO);
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let mut waiting: Option<ConfigWait> = None;
    let (engine, listener) = loop {
        match start(config) {
            Ok(started) => break started,
            Err(Stop::Config(paths)) if args.launchd => {
                match waiting.as_mut().filter(|w| w.watches(&paths)) {
                    // Watched since before this load: say so, wait for a change, load again.
                    Some(wait) => {
                        tracing::warn!(
                            "waiting for the config to change (launchd would restart an \
                             exited daemon every few seconds): fix it and credsync starts by \
                             itself"
                        );
                        rt.block_on(wait.changed());
                        tracing::info!("the config changed; loading it again");
                    }
                    // Not yet (or other files now): watch, then load again at once, since a
                    // change made before the watch began would never wake the wait.
                    None => {
                        let _entered = rt.enter();
                        match ConfigWait::start(&paths) {
                            Ok(wait) => waiting = Some(wait),
                            Err(e) => {
                                eprintln!("credsync: {e}");
                                return ExitCode::from(EXIT_USAGE);
                            }
                        }
                    }
                }
            }
            Err(Stop::Config(_)) => return ExitCode::from(EXIT_USAGE),
            Err(Stop::AlreadyRunning) if args.launchd => {
                tracing::info!("this daemon ends with 0 so that launchd does not start it again");
                return ExitCode::from(EXIT_OK);
            }
            Err(Stop::AlreadyRunning) => return ExitCode::from(EXIT_USAGE),
            Err(Stop::Exit(code)) => return code,
        }
    };
    drop(waiting);
    let explicit = config.map(Path::to_owned);
    let reload = move || super::load_config_quiet(explicit.as_deref());
    rt.block_on(serve(engine, listener, &reload))
}

/// Loads the config, binds the control socket and builds the engine.
fn start(config: Option<&Path>) -> Result<(Engine, control::Listener), Stop> {
    let (cfg, seams) = super::load_config_and_seams(config).map_err(|_| {
        let env = Env::from_process();
        let mut paths = config::defaults(&env);
        if let Some(explicit) = config {
            paths.origin = Origin::File(explicit.to_owned());
        }
        Stop::Config(Box::new(paths))
    })?;
    let profiles: Vec<String> = cfg
        .profiles
        .iter()
        .map(|p| format!("{} -> [{}]", p.source, p.target))
        .collect();
    tracing::info!(
        "credsync {} starting; {}; managing {}; writing {}",
        env!("CARGO_PKG_VERSION"),
        cfg.describe_origin(),
        profiles.join(", "),
        cfg.aws.credentials_file.display()
    );
    for w in cfg.warnings() {
        tracing::warn!("{w}");
    }
    let home = seams.env.get("HOME").map(Path::new);
    let listener = match control::bind(&cfg.control.socket, home) {
        Ok(l) => l,
        Err(e @ BindError::AlreadyRunning { .. }) => {
            eprintln!("credsync: {e}");
            return Err(Stop::AlreadyRunning);
        }
        Err(e) => {
            eprintln!("credsync: {e}");
            return Err(Stop::Exit(ExitCode::from(EXIT_DEGRADED)));
        }
    };
    let paths = cfg.clone();
    match Engine::new(cfg, seams) {
        Ok(engine) => Ok((engine, listener)),
        Err(e) => {
            eprintln!("credsync: {e}");
            Err(Stop::Config(Box::new(paths)))
        }
    }
}

/// Runs the daemon on the bound `listener` until SIGTERM or SIGINT: the control server, SIGHUP
/// as a reload request, and systemd's READY/STOPPING around the engine's loop.
async fn serve(
    mut engine: Engine,
    listener: control::Listener,
    reload: &dyn Fn() -> Result<credsync::config::Config, String>,
) -> ExitCode {
    let signals = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    );
    let (mut term, mut int, mut hup) = match signals {
        (Ok(t), Ok(i), Ok(h)) => (t, i, h),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            eprintln!("credsync: cannot install signal handlers: {e}");
            return ExitCode::from(EXIT_DEGRADED);
        }
    };
    credsync::daemon::prepare(&mut engine);
    let (control, handle) = Control::new(engine.status());
    let commands = handle.commands.clone();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut server_stop = stop_rx.clone();
    let server = tokio::spawn(control::serve(listener, handle, async move {
        let _ = server_stop.wait_for(|s| *s).await;
    }));
    // SIGHUP is a reload request like `credsync reload`.
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let (reply, answer) = tokio::sync::oneshot::channel();
            if commands.send(Command::Reload { reply }).await.is_err() {
                break;
            }
            let _ = answer.await;
        }
    });
    credsync::daemon::notify_ready();
    let shutdown = async {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    };
    credsync::daemon::run(&mut engine, control, reload, shutdown).await;
    credsync::daemon::notify_stopping();
    let _ = stop_tx.send(true);
    let _ = server.await;
    drop(stop_rx);
    ExitCode::from(EXIT_OK)
}
