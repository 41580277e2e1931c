//! The daemon loop: refresh what falls due, write once per round, sleep in bounded chunks
//! (so a suspend is noticed within [`schedule::MAX_SLEEP`]), stop when asked.

use std::future::Future;

use crate::engine::Engine;
use crate::schedule;
use crate::write;

/// Runs until `shutdown` completes. A round in flight when it does is abandoned before its
/// write (no file is half-written: writes are synchronous and atomic).
pub async fn run(engine: &mut Engine, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    match write::remove_stale_temps(&engine.cfg.aws.credentials_file) {
        Ok(0) => {}
        Ok(n) => tracing::info!("removed {n} stale temp file(s) left by an earlier crash"),
        Err(e) => tracing::warn!("could not look for stale temp files: {e}"),
    }
    let adopted = engine.adopt_existing();
    if adopted > 0 {
        tracing::info!("{adopted} profile(s) still fresh on disk; no refresh needed yet");
    }
    loop {
        let due = engine.due();
        if !due.is_empty() {
            let outcomes = tokio::select! {
                o = engine.refresh(&due, 1) => o,
                _ = &mut shutdown => break,
            };
            for (i, outcome) in &outcomes {
                let p = &engine.profiles[*i];
                match outcome {
                    Ok(c) => tracing::info!(
                        profile = %p.entry.source,
                        target = %p.entry.target,
                        "refreshed; expires {}",
                        c.expiration.map(crate::timefmt::rfc3339).unwrap_or_default()
                    ),
                    Err(e) => tracing::warn!(profile = %p.entry.source, "refresh failed: {e}"),
                }
            }
            if outcomes.iter().any(|(_, o)| o.is_ok()) {
                if let Err(e) = engine.write() {
                    tracing::error!("{e}");
                }
            }
        }
        let wait = schedule::sleep_for(engine.now(), engine.next_deadline());
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = &mut shutdown => break,
        }
    }
    tracing::info!("stopping");
}
