//! `credsync daemon`: the foreground daemon the service runs. Stops with exit 0 on SIGTERM or
//! SIGINT; a write in flight always finishes first (writes are synchronous and atomic).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use credsync::engine::Engine;
use credsync::schedule::SystemClock;
use tokio::signal::unix::{SignalKind, signal};

use super::{EXIT_DEGRADED, EXIT_OK, EXIT_USAGE};

pub fn run(config: Option<&Path>) -> ExitCode {
    credsync::logging::init("info");
    let cfg = match super::load_config(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let profiles: Vec<String> =
        cfg.profiles.iter().map(|p| format!("{} -> [{}]", p.source, p.target)).collect();
    tracing::info!(
        "credsync {} starting; {}; managing {}; writing {}",
        env!("CARGO_PKG_VERSION"),
        cfg.describe_origin(),
        profiles.join(", "),
        cfg.aws.credentials_file.display()
    );
    let mut engine = match Engine::new(cfg, Arc::new(SystemClock)) {
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
    rt.block_on(async {
        let (mut term, mut int) = match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(t), Ok(i)) => (t, i),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("credsync: cannot install signal handlers: {e}");
                return ExitCode::from(EXIT_DEGRADED);
            }
        };
        let shutdown = async {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = int.recv() => tracing::info!("SIGINT received"),
            }
        };
        credsync::daemon::run(&mut engine, shutdown).await;
        ExitCode::from(EXIT_OK)
    })
}
