//! `credsync status [--json]`: ask the running daemon how every profile stands.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use credsync::control::{self, ClientError, Request, Response};
use credsync::service::{self, Platform};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Print the status as one JSON document (with "version": 1) instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

/// How long to wait for the daemon; status is answered from memory, so this is generous.
const TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) fn run(args: &Args, cfg: &credsync::config::Config) -> ExitCode {
    let status = match control::request(&cfg.control.socket, &Request::Status, TIMEOUT) {
        Ok(Response::Status(status)) => status,
        Ok(Response::Error(e)) => {
            eprintln!("credsync status: the daemon refused: {e}");
            return ExitCode::from(1);
        }
        Ok(Response::Message(m)) => {
            eprintln!("credsync status: unexpected reply from the daemon: {m}");
            return ExitCode::from(1);
        }
        Err(e) => return unreachable_daemon("status", &e),
    };
    if args.json {
        match serde_json::to_string_pretty(&status) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("credsync status: cannot encode the status as JSON: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        print!("{}", control::render_table(&status, SystemTime::now()));
    }
    if status.profiles.iter().all(|p| p.state.is_healthy()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Reports a failed request: exit 3 with how to start the daemon when it is not running.
pub(crate) fn unreachable_daemon(command: &str, e: &ClientError) -> ExitCode {
    eprintln!("credsync {command}: {e}");
    if matches!(e, ClientError::NotRunning { .. }) {
        eprintln!("{}", service::how_to_start(Platform::current()));
    }
    ExitCode::from(super::EXIT_UNREACHABLE)
}
