//! `credsync login`: which sessions, which flow, what to print. The sign-in itself is the
//! library's `login` module. Which sessions is [`prepare`]'s answer, which `logout` shares.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use credsync::aws::{AwsEdge, Clients};
use credsync::config::{self, Config, Env};
use credsync::login::aws_login::{self, AwsLoginOutcome, AwsLoginTarget};
use credsync::login::opener::Opener;
use credsync::login::registration::Grant;
use credsync::login::{self, LoginOutcome, Options, SignInTarget};
use credsync::platform::Wsl;
use credsync::process::SystemRunner;
use credsync::timefmt;

use super::{EXIT_DEGRADED, EXIT_OK, EXIT_USAGE};

/// What `credsync login --help` adds below the options.
const LOGIN_AFTER_HELP: &str = "\
Sessions: without --sso-session or --profile, every sso-session (and legacy start URL) of the \
profiles credsync manages, once each. A session whose cached token has more than 15 minutes \
left is left alone; an older one is renewed with its refresh token when it can be; the others \
are signed in.

Flows: authorization code with PKCE (a browser on this machine opens the sign-in page, which \
is always printed too; $BROWSER, else xdg-open or open, or in WSL the Windows browser through \
wslview or cmd.exe), or device authorization (a page and a code to confirm on any device). The \
device flow is used with --device-code, for legacy sso_start_url profiles, over SSH \
(SSH_CONNECTION set), and on Linux without DISPLAY or WAYLAND_DISPLAY (outside WSL).

Files: the client registration and the token in the AWS CLI's SSO cache (~/.aws/sso/cache), \
exactly as `aws sso login` writes them, so either command signs in for both; a lock file \
beside the token makes a second sign-in to the same session wait for the first.

`aws login` profiles (login_session): the same browser sign-in as `aws login` (or, over SSH, \
without a display or with --device-code, its cross-device variant: open the page on any device \
and paste the code it shows), writing the entry `aws login` writes in ~/.aws/login/cache (or \
$AWS_LOGIN_CACHE_DIRECTORY). A session that can still be renewed is renewed instead.";

#[derive(clap::Args)]
#[command(after_long_help = LOGIN_AFTER_HELP)]
pub(crate) struct Args {
    /// Sign in to this [sso-session NAME] of the AWS config [default: every session (and
    /// legacy start URL) of the managed profiles that needs it]
    #[arg(long, value_name = "NAME", conflicts_with = "profile")]
    sso_session: Option<String>,
    /// Sign in to the session (or legacy start URL, or `aws login` session) that this AWS
    /// profile uses
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// Use device authorization: a code you confirm in a browser on any device (the default
    /// over SSH, without a display, and for legacy sso_start_url profiles)
    #[arg(long)]
    device_code: bool,
    /// Do not open a browser; print the page to open
    #[arg(long)]
    no_browser: bool,
    /// Sign out first, so that the IAM Identity Center session starts again at its full length
    #[arg(long)]
    fresh: bool,
}

/// Whether a browser can open on this machine, as the environment says: not over SSH, and on
/// Linux (and the BSDs) only with a display, or in a WSL distribution (`wsl`: Windows'
/// browser, whatever Linux's display).
fn browser_here(env: &Env, wsl: bool) -> bool {
    let set = |k: &str| env.get(k).is_some_and(|v| !v.is_empty());
    if set("SSH_CONNECTION") {
        return false;
    }
    cfg!(target_os = "macos") || wsl || set("DISPLAY") || set("WAYLAND_DISPLAY")
}

/// The `aws login` sessions named (`--profile`) or used by the managed profiles (directly or
/// as the source of a role chain), once each; none with `--sso-session`.
fn aws_login_targets(
    aws: &credsync::aws_profile::AwsConfig,
    cfg: &Config,
    env: &Env,
    sso_session: Option<&str>,
    profile: Option<&str>,
) -> Vec<AwsLoginTarget> {
    let none = std::collections::BTreeMap::new();
    let planner = credsync::chain::Planner::new(aws, &none);
    let names: Vec<String> = match (sso_session, profile) {
        (Some(_), _) => Vec::new(),
        (None, Some(p)) => vec![p.to_owned()],
        (None, None) => cfg.profiles.iter().map(|p| p.source.clone()).collect(),
    };
    let mut targets: Vec<AwsLoginTarget> = Vec::new();
    for name in names {
        let Ok(plan) = planner.plan(&name) else {
            continue;
        };
        if let Some(login) = plan.login()
            && !targets.iter().any(|t| t.session == login.session)
        {
            targets.push(AwsLoginTarget::of(login, env));
        }
    }
    targets
}

/// What `login` and `logout` start from.
pub(super) struct Prepared {
    pub(super) env: Env,
    pub(super) cfg: Config,
    pub(super) edge: AwsEdge,
    /// The SSO sessions (and legacy start URLs).
    pub(super) targets: Vec<SignInTarget>,
    /// The `aws login` sessions.
    pub(super) logins: Vec<AwsLoginTarget>,
}

/// What `login` and `logout` start from: logging, the environment, the config, the AWS edge, and
/// the sessions named (or those of the managed profiles): SSO ones and `aws login` ones; a usage
/// error is already printed.
pub(super) fn prepare(
    explicit: Option<&Path>,
    sso_session: Option<&str>,
    profile: Option<&str>,
) -> Result<Prepared, ExitCode> {
    credsync::logging::init(tracing::level_filters::LevelFilter::WARN);
    let env = Env::from_process();
    let usage = |msg: String| {
        eprintln!("credsync: {msg}");
        ExitCode::from(EXIT_USAGE)
    };
    let cfg = config::load(explicit, &env).map_err(|e| usage(e.to_string()))?;
    let edge = AwsEdge::from_env(&env);
    let aws =
        credsync::aws_profile::load(&cfg.aws.config_file).map_err(|e| usage(e.to_string()))?;
    let logins = aws_login_targets(&aws, &cfg, &env, sso_session, profile);
    let targets = match (sso_session, profile) {
        (Some(s), _) => vec![login::session_target(&aws, s).map_err(|e| usage(e.to_string()))?],
        (None, Some(_)) if !logins.is_empty() => Vec::new(),
        (None, Some(p)) => vec![login::profile_target(&aws, p).map_err(|e| usage(e.to_string()))?],
        (None, None) => {
            let names: Vec<String> = cfg.profiles.iter().map(|p| p.source.clone()).collect();
            let (targets, skipped) = login::managed_targets(&aws, &names);
            if targets.is_empty() && logins.is_empty() {
                let why = if skipped.is_empty() {
                    String::new()
                } else {
                    format!(":\n  {}", skipped.join("\n  "))
                };
                return Err(usage(format!(
                    "none of the managed profiles signs in through IAM Identity Center or \
                     `aws login`{why}\n\
                     name one: `credsync login --sso-session NAME` or `--profile NAME`"
                )));
            }
            for s in &skipped {
                tracing::info!("not signing in for {s}");
            }
            targets
        }
    };
    Ok(Prepared {
        env,
        cfg,
        edge,
        targets,
        logins,
    })
}

/// What the library's sign-in says along the way (the page to open, the code), on stderr.
pub(super) fn say(text: &str) {
    eprintln!("{text}");
}

pub(crate) fn run(args: &Args, explicit: Option<&Path>) -> ExitCode {
    let Prepared {
        env,
        cfg,
        edge,
        targets,
        logins,
    } = match prepare(
        explicit,
        args.sso_session.as_deref(),
        args.profile.as_deref(),
    ) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let wsl = Wsl::here(&env).is_some();
    let opts = Options {
        device_code: args.device_code,
        browser_here: browser_here(&env, wsl),
        opener: Opener::choose(env.get("BROWSER"), args.no_browser, wsl),
        runner: Arc::new(SystemRunner),
        fresh: args.fresh,
    };
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let mut clients = Clients::new(edge);
    let mut ok = true;
    for target in &targets {
        let label = target.label();
        let result = rt.block_on(login::login(
            &mut clients,
            &cfg.aws.sso_cache_dir,
            target,
            &opts,
            &say,
            &SystemTime::now,
        ));
        match result {
            Ok(LoginOutcome::AlreadySignedIn { expires_at }) => println!(
                "{label}: already signed in until {} (`credsync login --fresh` signs in again)",
                timefmt::rfc3339(expires_at)
            ),
            Ok(LoginOutcome::Renewed { expires_at }) => println!(
                "{label}: renewed until {} (no sign-in needed)",
                timefmt::rfc3339(expires_at)
            ),
            Ok(LoginOutcome::SignedIn {
                expires_at, grant, ..
            }) => println!(
                "{label}: signed in until {} ({})",
                timefmt::rfc3339(expires_at),
                match grant {
                    Grant::AuthorizationCode => "authorization code",
                    Grant::DeviceCode => "device code",
                }
            ),
            Err(e) => {
                ok = false;
                eprintln!("credsync login: {label}: {e}");
            }
        }
    }
    let dir = credsync::login_cache::dir(&env);
    for target in &logins {
        let label = target.label();
        let result = rt.block_on(aws_login::login(
            &mut clients,
            &dir,
            target,
            &opts,
            &read_code,
            &say,
            &SystemTime::now,
        ));
        match result {
            Ok(AwsLoginOutcome::AlreadySignedIn { expires_at }) => println!(
                "{label}: already signed in, credentials until {} (`credsync login --fresh` \
                 signs in again)",
                timefmt::rfc3339(expires_at)
            ),
            Ok(AwsLoginOutcome::Renewed { expires_at }) => println!(
                "{label}: renewed, credentials until {} (no sign-in needed)",
                timefmt::rfc3339(expires_at)
            ),
            Ok(AwsLoginOutcome::SignedIn { expires_at, remote }) => println!(
                "{label}: signed in, credentials until {} ({})",
                timefmt::rfc3339(expires_at),
                if remote {
                    "on another device"
                } else {
                    "browser"
                }
            ),
            Err(e) => {
                ok = false;
                eprintln!("credsync login: {label}: {e}");
            }
        }
    }
    ExitCode::from(if ok { EXIT_OK } else { EXIT_DEGRADED })
}

/// One line from standard input: the authorization code of a cross-device sign-in.
fn read_code() -> Option<String> {
    eprint!("Authorization code: ");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).ok()?;
    let code = line.trim().to_owned();
    (!code.is_empty()).then_some(code)
}
