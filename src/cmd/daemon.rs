//! `credsync daemon`: the foreground daemon the service runs. Binds the control socket (one
//! daemon per user), tells systemd it is ready, and stops with exit 0 on SIGTERM or SIGINT; a
//! write in flight always finishes first (writes are synchronous and atomic). SIGHUP reloads.

use std::path::Path;
use std::process::ExitCode;

use credsync::control::{self, BindError, Command};
use credsync::daemon::Control;
use credsync::engine::Engine;
use credsync::service;
use tokio::signal::unix::{SignalKind, signal};

use super::{EXIT_DEGRADED, EXIT_OK, EXIT_USAGE};

pub(crate) fn run(config: Option<&Path>) -> ExitCode {
    credsync::logging::init(tracing::level_filters::LevelFilter::INFO);
    let (cfg, seams) = match super::load_config_and_seams(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
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
            return ExitCode::from(EXIT_USAGE);
        }
        Err(e) => {
            eprintln!("credsync: {e}");
            return ExitCode::from(EXIT_DEGRADED);
        }
    };
    let engine = match Engine::new(cfg, seams) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("credsync: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("credsync: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_DEGRADED);
        }
    };
    let explicit = config.map(Path::to_owned);
    let reload = move || super::load_config_quiet(explicit.as_deref());
    rt.block_on(serve(engine, listener, &reload))
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
    service::notify_ready();
    let shutdown = async {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    };
    credsync::daemon::run(&mut engine, control, reload, shutdown).await;
    service::notify_stopping();
    let _ = stop_tx.send(true);
    let _ = server.await;
    drop(stop_rx);
    ExitCode::from(EXIT_OK)
}
