//! `credsync service install|uninstall|print`: the systemd user unit or LaunchAgent.

use std::path::PathBuf;
use std::process::ExitCode;

use credsync::config::Env;
use credsync::process::SystemRunner;
use credsync::service::{self, ServiceSpec, Target};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    pub(crate) action: Action,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Action {
    /// Write the service file with this binary and config, then enable and start it.
    Install {
        /// Write the file only; do not enable or start the service.
        #[arg(long)]
        no_start: bool,
    },
    /// Stop and disable the service, then remove its file.
    Uninstall,
    /// Print the file that install would write.
    Print {
        /// Print instead the systemd user unit a package installs for the binary at PATH (no
        /// --config, no environment of this shell): for packagers.
        #[arg(long, hide = true, value_name = "PATH")]
        packaged: Option<PathBuf>,
    },
}

pub(crate) fn run(args: &Args, cfg: &credsync::config::Config) -> ExitCode {
    let env = Env::from_process();
    let result = Target::current(&env).and_then(|target| match &args.action {
        Action::Install { no_start } => {
            let spec = ServiceSpec::from_config(cfg, &env)?;
            service::install(&spec, &target, !*no_start, &SystemRunner).map(|r| r.to_string())
        }
        Action::Uninstall => service::uninstall(&target, &SystemRunner).map(|r| r.to_string()),
        Action::Print {
            packaged: Some(exe),
        } => Ok(service::render_packaged_unit(exe)),
        Action::Print { packaged: None } => {
            let spec = ServiceSpec::from_config(cfg, &env)?;
            Ok(service::render(&spec, &target))
        }
    });
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("credsync service: {e}");
            ExitCode::from(1)
        }
    }
}
