//! `credsync logout`: sign out of the sessions `login` would sign in to (the same
//! [`prepare`](super::login::prepare)), and say what became of each. The sign-out itself is the
//! library's `login::logout`.

use std::path::Path;
use std::process::ExitCode;

use credsync::aws::Clients;
use credsync::login::{self, LoggedOut};

use super::{EXIT_DEGRADED, EXIT_OK};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Sign out of this [sso-session NAME] [default: every session of the managed profiles]
    #[arg(long, value_name = "NAME", conflicts_with = "profile")]
    sso_session: Option<String>,
    /// Sign out of the session (or legacy start URL, or `aws login` session) that this AWS
    /// profile uses
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
}

pub(crate) fn run(args: &Args, explicit: Option<&Path>) -> ExitCode {
    let super::login::Prepared {
        env,
        cfg,
        edge,
        targets,
        logins,
    } = match super::login::prepare(
        explicit,
        args.sso_session.as_deref(),
        args.profile.as_deref(),
    ) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let mut clients = Clients::new(edge);
    let mut ok = true;
    for target in &targets {
        let label = target.label();
        match rt.block_on(login::logout(
            &mut clients,
            &cfg.aws.sso_cache_dir,
            target,
            &super::login::say,
        )) {
            Ok(LoggedOut::NotSignedIn) => println!("{label}: not signed in"),
            Ok(LoggedOut::Removed { revoked: true }) => println!("{label}: signed out"),
            Ok(LoggedOut::Removed { revoked: false }) => {
                println!("{label}: cached token removed (the portal did not confirm the sign-out)")
            }
            Err(e) => {
                ok = false;
                eprintln!("credsync logout: {label}: {e}");
            }
        }
    }
    // `aws logout`: the cached entry removed (AWS Sign-In has no sign-out call).
    let dir = credsync::login_cache::dir(&env);
    for target in &logins {
        let label = target.label();
        let path = credsync::login_cache::path(&dir, &target.session);
        match std::fs::remove_file(&path) {
            Ok(()) => println!(
                "{label}: cached login credentials removed (credentials already handed out work \
                 until they expire, at most 15 minutes)"
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                println!("{label}: not signed in")
            }
            Err(e) => {
                ok = false;
                eprintln!(
                    "credsync logout: {label}: cannot remove {}: {e}",
                    path.display()
                );
            }
        }
    }
    ExitCode::from(if ok { EXIT_OK } else { EXIT_DEGRADED })
}
