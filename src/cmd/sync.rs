//! `credsync sync`: refresh every managed profile now, write the credentials file once, print
//! one line per profile, exit 0 when all are fresh and 1 when any failed.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use credsync::engine::Engine;
use credsync::schedule::SystemClock;
use credsync::state::State;
use credsync::timefmt;

use super::{EXIT_DEGRADED, EXIT_OK, EXIT_USAGE};

/// Attempts per profile for retryable failures (throttling, 5xx, network, a half-written token).
const ATTEMPTS: u32 = 3;

pub fn run(config: Option<&Path>) -> ExitCode {
    credsync::logging::init(tracing::level_filters::LevelFilter::WARN);
    let (cfg, edge) = match super::load_config_and_edge(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut engine = match Engine::new(cfg, Arc::new(SystemClock), edge) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("credsync: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Err(e) = credsync::write::remove_stale_temps(&engine.cfg.aws.credentials_file) {
        tracing::warn!("could not look for stale temp files: {e}");
    }
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("credsync: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_DEGRADED);
        }
    };
    let all: Vec<usize> = (0..engine.profiles.len()).collect();
    let outcomes = rt.block_on(engine.refresh(&all, ATTEMPTS));
    let mut write_error = None;
    if outcomes.iter().any(|(_, o)| o.is_ok())
        && let Err(e) = engine.write()
    {
        write_error = Some(e.to_string());
    }
    let now = engine.now();
    let mut ok = write_error.is_none();
    for p in &engine.profiles {
        let s = &p.status;
        let head = format!("{} -> [{}]", s.source, s.target);
        match (&write_error, s.state) {
            (None, State::Fresh) => {
                let expires = s.expires_at.unwrap_or(now);
                let left = expires.duration_since(now).unwrap_or_default();
                let left =
                    humantime::format_duration(std::time::Duration::from_secs(left.as_secs()));
                println!(
                    "{head}: fresh, expires {} (in {left})",
                    timefmt::rfc3339(expires)
                );
            }
            (Some(w), State::Fresh) => println!("{head}: not written: {w}"),
            (_, state) => {
                ok = false;
                let why = s.last_error.as_deref().unwrap_or("not resolved");
                println!("{head}: {}: {why}", state.as_str());
            }
        }
    }
    if let Some(w) = &write_error {
        eprintln!("credsync: {w}");
    }
    ExitCode::from(if ok { EXIT_OK } else { EXIT_DEGRADED })
}
