//! `credsync reload`: ask the running daemon to re-read its config and the AWS config. A bad
//! new config is refused and the old one stays in force; the reply says which.

use std::process::ExitCode;
use std::time::Duration;

use credsync::control::{self, Request};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

const TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) fn run(_args: &Args, cfg: &credsync::config::Config) -> ExitCode {
    super::reply(
        control::request(&cfg.control.socket, &Request::Reload, TIMEOUT),
        "reload",
    )
}
