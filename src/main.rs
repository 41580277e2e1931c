//! The `credsync` command: parses the command line and dispatches. No decisions here.

// Every command's output goes through `cmd::out`, which these four macros (defined before the
// modules, so they replace std's everywhere in this binary) call: a closed stdout
// (`credsync status --json | head -1`) stops output quietly instead of panicking.
macro_rules! print {
    ($($arg:tt)*) => { $crate::cmd::out::stdout(format_args!($($arg)*)) };
}
macro_rules! println {
    () => { $crate::cmd::out::stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::cmd::out::stdout(format_args!("{}\n", format_args!($($arg)*))) };
}
#[allow(unused_macros)] // none today; defined so that one added later cannot panic either
macro_rules! eprint {
    ($($arg:tt)*) => { $crate::cmd::out::stderr(format_args!($($arg)*)) };
}
macro_rules! eprintln {
    () => { $crate::cmd::out::stderr(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::cmd::out::stderr(format_args!("{}\n", format_args!($($arg)*))) };
}

mod cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// `--version`: the crate version, and the git commit when built from a checkout (build.rs).
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), env!("CREDSYNC_BUILD_COMMIT"));

/// Keeps AWS SSO and assumed-role credentials fresh on disk, for programs (and containers) that
/// cannot refresh them themselves.
#[derive(Parser)]
#[command(name = "credsync", version = VERSION, about, long_about = None)]
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
    /// Sign in to IAM Identity Center (in a browser, or with a device code) and cache the
    /// token where the AWS CLI and botocore find it
    Login(cmd::login::Args),
    /// Sign out of IAM Identity Center: end the session and remove its cached token
    Logout(cmd::logout::Args),
    /// Run in the foreground, refreshing before anything expires (what the service runs)
    Daemon(cmd::daemon::Args),
    /// Refresh every managed profile now, write the credentials file, and exit
    Sync,
    /// Show how each profile stands, as the running daemon sees it
    Status(cmd::status::Args),
    /// Ask the running daemon to refresh now
    Refresh(cmd::refresh::Args),
    /// Ask the running daemon to re-read its config and the AWS config
    Reload(cmd::reload::Args),
    /// Install, remove or show the user service (systemd on Linux, launchd on macOS)
    Service(cmd::service::Args),
    /// Check the setup and print each problem with its fix (with --project, an Astro project)
    Doctor(cmd::doctor::Args),
    /// Write a starting config listing the SSO and role profiles of the AWS config
    Init,
    /// Set up an Astro project's containers for credsync (`astro setup [DIR]`)
    Astro(cmd::astro::Args),
    /// Print the shell code that makes `credsync <TAB>` complete (bash, zsh, fish)
    Completions(cmd::completions::Args),
    /// Write the man pages into a directory (for packagers)
    #[command(hide = true)]
    GenerateMan(cmd::man::Args),
}

fn main() -> ExitCode {
    // Answers a shell's completion request (`credsync completions`) and exits; else no-op.
    clap_complete::CompleteEnv::with_factory(Cli::command)
        .var(cmd::completions::COMPLETE_VAR)
        .complete();
    let cli = Cli::parse();
    let config = cli.config.as_deref();
    let with_config =
        |run: &dyn Fn(&credsync::config::Config) -> ExitCode| match cmd::load_config(config) {
            Ok(cfg) => run(&cfg),
            Err(code) => code,
        };
    let code = match &cli.command {
        Command::Login(args) => cmd::login::run(args, config),
        Command::Logout(args) => cmd::logout::run(args, config),
        Command::Daemon(args) => cmd::daemon::run(config, args),
        Command::Sync => cmd::sync::run(config),
        Command::Status(args) => cmd::status::run(args, &cmd::load_config_for_client(config)),
        Command::Refresh(args) => cmd::refresh::run(args, &cmd::load_config_for_client(config)),
        Command::Reload(args) => match cmd::load_config(config) {
            Ok(cfg) => cmd::reload::run(args, &cfg),
            Err(code) => {
                eprintln!(
                    "credsync reload: not sent; the running daemon keeps the configuration it has"
                );
                code
            }
        },
        Command::Service(args) => with_config(&|cfg| cmd::service::run(args, cfg)),
        Command::Doctor(args) => cmd::doctor::run(args, config),
        Command::Init => cmd::init::run(config),
        Command::Astro(args) => cmd::astro::run(args, config),
        Command::Completions(args) => cmd::completions::run(args),
        Command::GenerateMan(args) => cmd::man::run(args, Cli::command()),
    };
    cmd::out::exit_code(code)
}
