//! The `credsync` command: parses the command line and dispatches. No decisions here.

mod cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Keeps AWS SSO and assumed-role credentials fresh on disk, for programs (and containers) that
/// cannot refresh them themselves.
#[derive(Parser)]
#[command(name = "credsync", version, about, long_about = None)]
struct Cli {
    /// credsync's config file [default: <config dir>/credsync/config.toml; with no file,
    /// credsync manages $AWS_PROFILE, else `default`]
    #[arg(long, global = true, env = "CREDSYNC_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run in the foreground, refreshing before anything expires (what the service runs)
    Daemon,
    /// Refresh every managed profile now, write the credentials file, and exit
    Sync,
    /// Show how each profile stands, as the running daemon sees it (not yet implemented)
    Status(cmd::NotYetArgs),
    /// Ask the running daemon to refresh now (not yet implemented)
    Refresh(cmd::NotYetArgs),
    /// Ask the running daemon to re-read its config and the AWS config (not yet implemented)
    Reload(cmd::NotYetArgs),
    /// Install, remove or show the user service (not yet implemented)
    Service(cmd::NotYetArgs),
    /// Check the setup (not yet implemented)
    Doctor(cmd::NotYetArgs),
    /// Write a starting config listing the profiles found (not yet implemented)
    Init(cmd::NotYetArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let name = match &cli.command {
        Command::Daemon => return cmd::daemon::run(cli.config.as_deref()),
        Command::Sync => return cmd::sync::run(cli.config.as_deref()),
        Command::Status(_) => "status",
        Command::Refresh(_) => "refresh",
        Command::Reload(_) => "reload",
        Command::Service(_) => "service",
        Command::Doctor(_) => "doctor",
        Command::Init(_) => "init",
    };
    cmd::not_yet(name)
}
