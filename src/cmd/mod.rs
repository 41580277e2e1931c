//! One file per subcommand; this one holds what they share: config loading, exit codes, and
//! the one place that turns errors into what a person reads. [`out`] is where all output goes.

pub(crate) mod astro;
pub(crate) mod completions;
pub(crate) mod daemon;
pub(crate) mod doctor;
pub(crate) mod init;
pub(crate) mod login;
pub(crate) mod logout;
pub(crate) mod man;
pub(crate) mod out;
pub(crate) mod refresh;
pub(crate) mod reload;
pub(crate) mod service;
pub(crate) mod status;
pub(crate) mod sync;

use std::path::Path;
use std::process::ExitCode;

use credsync::config::{self, Config, Env};
use credsync::control::{ClientError, Response};
use credsync::engine::Seams;

/// Everything fresh / done.
pub(crate) const EXIT_OK: u8 = 0;
/// Some profile degraded (status) or failed (sync).
pub(crate) const EXIT_DEGRADED: u8 = 1;
/// Usage or configuration error, before anything ran.
pub(crate) const EXIT_USAGE: u8 = 2;
/// The daemon is not reachable.
pub(crate) const EXIT_UNREACHABLE: u8 = 3;

/// Loads the config, or prints why not (with file:line:column) and returns the exit code.
pub(crate) fn load_config(explicit: Option<&Path>) -> Result<Config, ExitCode> {
    config::load(explicit, &Env::from_process()).map_err(|e| {
        eprintln!("credsync: {e}");
        ExitCode::from(EXIT_USAGE)
    })
}

/// [`load_config`], and the engine's seams (AWS among them) from the same reading of the
/// environment: what the commands that call AWS (`sync`, `daemon`) start from.
pub(crate) fn load_config_and_seams(explicit: Option<&Path>) -> Result<(Config, Seams), ExitCode> {
    let env = Env::from_process();
    let cfg = config::load(explicit, &env).map_err(|e| {
        eprintln!("credsync: {e}");
        ExitCode::from(EXIT_USAGE)
    })?;
    Ok((cfg, Seams::production(env)))
}

/// Loads the config for a command that only needs the socket path: when the file does not
/// load, says so and falls back to the defaults (the daemon still runs with the config it had).
pub(crate) fn load_config_for_client(explicit: Option<&Path>) -> Config {
    let env = Env::from_process();
    config::load(explicit, &env).unwrap_or_else(|e| {
        eprintln!("credsync: warning: {e}\ncredsync: using the default socket path");
        config::defaults(&env)
    })
}

/// Loads the config for a reload: the error as text, nothing printed.
pub(crate) fn load_config_quiet(explicit: Option<&Path>) -> Result<Config, String> {
    config::load(explicit, &Env::from_process()).map_err(|e| e.to_string())
}

/// Prints the daemon's reply to `refresh` or `reload` and picks the exit code.
pub(crate) fn reply(result: Result<Response, ClientError>, command: &str) -> ExitCode {
    match result {
        Ok(Response::Message(m)) => {
            println!("{m}");
            ExitCode::SUCCESS
        }
        Ok(Response::Error(e)) => {
            eprintln!("credsync {command}: {e}");
            ExitCode::from(1)
        }
        Ok(Response::Status(_)) => {
            eprintln!("credsync {command}: the daemon answered with a status instead of a result");
            ExitCode::from(1)
        }
        Err(e) => status::unreachable_daemon(command, &e),
    }
}

/// A single-threaded tokio runtime: credsync's load is a handful of requests. When it cannot
/// start, says so and returns the exit code.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("credsync: cannot start the runtime: {e}");
            ExitCode::from(EXIT_DEGRADED)
        })
}
