//! `credsync generate-man DIR` (hidden; for packagers): the man pages, rendered from the clap
//! definitions so they cannot drift from `--help`. `credsync.1` for the command, with the exit
//! codes, environment and files added, and `credsync-SUBCOMMAND.1` for each subcommand, which
//! `credsync.1` refers to.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, italic, roman};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The directory to write the pages into (created when missing).
    pub(crate) dir: PathBuf,
}

pub(crate) fn run(args: &Args, cmd: clap::Command) -> ExitCode {
    match write_pages(cmd, &args.dir) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "credsync generate-man: cannot write the man pages into {}: {e}",
                args.dir.display()
            );
            ExitCode::from(1)
        }
    }
}

/// Writes every page into `dir`; returns the files written.
pub(crate) fn write_pages(cmd: clap::Command, dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    let path = dir.join("credsync.1");
    std::fs::write(&path, main_page(&cmd)?)?;
    written.push(path);
    let mut stack: Vec<clap::Command> = visible_subcommands(&cmd);
    while let Some(sub) = stack.pop() {
        stack.extend(visible_subcommands(&sub));
        let man = Man::new(sub);
        let path = dir.join(man.get_filename());
        let mut page = Vec::new();
        man.render(&mut page)?;
        std::fs::write(&path, page)?;
        written.push(path);
    }
    Ok(written)
}

fn visible_subcommands(cmd: &clap::Command) -> Vec<clap::Command> {
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect()
}

/// `credsync.1`: clap's sections, then what `--help` has no room for.
fn main_page(cmd: &clap::Command) -> io::Result<Vec<u8>> {
    let man = Man::new(cmd.clone().long_about(DESCRIPTION));
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    man.render_subcommands_section(&mut out)?;
    out.write_all(extra_sections().render().as_bytes())?;
    man.render_version_section(&mut out)?;
    Ok(out)
}

/// The page's DESCRIPTION (`--help` keeps its one line).
const DESCRIPTION: &str =
    "credsync is a per-user daemon that keeps AWS credentials fresh on disk, \
for programs that cannot refresh them themselves (such as Airflow containers that bind-mount \
~/.aws). After a single `credsync login` (or `aws sso login`) it fetches the IAM Identity Center role credentials and \
the roles assumed from them, and writes them into ~/.aws/credentials before the old ones \
expire, refreshing the SSO access token itself. It rewrites the file atomically and only ever \
touches the sections it created, each marked by a comment line.

Run it as a user service: with the package, `systemctl --user enable --now credsync`; \
otherwise `credsync service install`.";

fn extra_sections() -> Roff {
    let mut r = Roff::new();
    r.control("SH", ["EXIT STATUS"]);
    for (code, what) in [
        ("0", "success; every profile fresh"),
        ("1", "some profile degraded (status) or failed (sync)"),
        (
            "2",
            "usage or configuration error, reported with file, line and column before anything runs",
        ),
        ("3", "the daemon is not reachable (status, refresh, reload)"),
    ] {
        r.control("TP", []).text([bold(code)]).text([roman(what)]);
    }

    r.control("SH", ["ENVIRONMENT"]);
    for (var, what) in [
        ("CREDSYNC_CONFIG", "credsync's config file, as --config."),
        (
            "AWS_PROFILE",
            "with no config file, the one profile credsync manages (else default).",
        ),
        (
            "AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE",
            "the AWS config and credentials files, as the AWS CLI reads them.",
        ),
        (
            "AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_SSO, AWS_ENDPOINT_URL_SSO_OIDC, AWS_ENDPOINT_URL_STS",
            "the endpoints of the AWS services credsync calls.",
        ),
        (
            "CREDSYNC_LOG",
            "the log level (info for the daemon, warn for sync by default).",
        ),
    ] {
        r.control("TP", []).text([bold(var)]).text([roman(what)]);
    }

    r.control("SH", ["FILES"]);
    for (file, what) in [
        (
            "~/.config/credsync/config.toml",
            "credsync's config (on macOS under ~/Library/Application Support/credsync); \
             /usr/share/doc/credsync/config.example.toml documents every key.",
        ),
        (
            "~/.aws/credentials",
            "the file credsync writes; it only touches the sections it marked as its own.",
        ),
        (
            "/usr/lib/systemd/user/credsync.service",
            "the user unit of the package: systemctl --user enable --now credsync.",
        ),
    ] {
        r.control("TP", []).text([italic(file)]).text([roman(what)]);
    }
    r
}
