//! `credsync sync`: refresh every managed profile now, write the credentials file once, print
//! one line per profile, exit 0 when all are fresh and 1 when any failed.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use credsync::engine::{Engine, Report};
use credsync::status::State;
use credsync::timefmt;

use super::{EXIT_DEGRADED, EXIT_OK, EXIT_USAGE};

/// Attempts per profile for retryable failures (throttling, 5xx, network, a half-written token).
const ATTEMPTS: u32 = 3;

pub(crate) fn run(config: Option<&Path>) -> ExitCode {
    credsync::logging::init(tracing::level_filters::LevelFilter::WARN);
    let (cfg, seams) = match super::load_config_and_seams(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut engine = match Engine::new(cfg, seams) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("credsync: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Err(e) = credsync::write::remove_stale_temps(&engine.config().aws.credentials_file) {
        tracing::warn!("could not look for stale temp files: {e}");
    }
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    engine.request_refresh(None);
    let report = rt.block_on(engine.round(ATTEMPTS));
    let ok = print(&report, engine.now());
    if let Some(w) = report.write_error() {
        eprintln!("credsync: {w}");
    }
    ExitCode::from(if ok { EXIT_OK } else { EXIT_DEGRADED })
}

/// Prints a line per profile of `report`; returns whether all are fresh and written.
fn print(report: &Report, now: SystemTime) -> bool {
    let write_error = report.write_error();
    let mut ok = write_error.is_none();
    for r in &report.profiles {
        let head = format!("{} -> [{}]", r.source, r.target);
        match (write_error, &r.outcome, r.state) {
            (Some(w), Ok(_), State::Degraded) => println!("{head}: not written: {w}"),
            (None, _, State::Fresh) => {
                let expires = r.expires_at.unwrap_or(now);
                let left = expires.duration_since(now).unwrap_or_default();
                let left = humantime::format_duration(Duration::from_secs(left.as_secs()));
                println!(
                    "{head}: fresh, expires {} (in {left})",
                    timefmt::rfc3339(expires)
                );
            }
            (_, _, state) => {
                ok = false;
                let why = r.error.as_deref().unwrap_or("not resolved");
                println!("{head}: {}: {why}", state.as_str());
            }
        }
    }
    ok
}
