//! `credsync refresh [PROFILE]`: ask the running daemon to refresh now.

use std::process::ExitCode;
use std::time::Duration;

use credsync::control::{self, Request, Response};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The profile to refresh (source or target name); all managed profiles when omitted.
    #[arg(add = clap_complete::ArgValueCompleter::new(super::completions::refresh_profiles))]
    pub(crate) profile: Option<String>,
}

/// A refresh goes to AWS (and may retry); the daemon bounds it, this only guards a hang.
const TIMEOUT: Duration = Duration::from_secs(180);

pub(crate) fn run(args: &Args, cfg: &credsync::config::Config) -> ExitCode {
    let request = Request::Refresh {
        profile: args.profile.clone(),
    };
    reply(
        control::request(&cfg.control.socket, &request, TIMEOUT),
        "refresh",
    )
}

/// Prints the daemon's reply to `refresh` or `reload` and picks the exit code.
pub(crate) fn reply(
    result: Result<Response, credsync::control::ClientError>,
    command: &str,
) -> ExitCode {
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
        Err(e) => super::status::unreachable_daemon(command, &e),
    }
}
