//! `credsync refresh [PROFILE]`: ask the running daemon to refresh now.

use std::process::ExitCode;
use std::time::Duration;

use credsync::control::{self, Request};

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
    super::reply(
        control::request(&cfg.control.socket, &request, TIMEOUT),
        "refresh",
    )
}
