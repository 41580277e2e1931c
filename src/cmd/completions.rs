//! `credsync completions SHELL`: the shell code that makes `credsync <TAB>` complete, and the
//! completer that offers the managed profile names to `credsync refresh <TAB>`.
//!
//! The completion is clap_complete's dynamic one: the printed script registers a shell function
//! that, on each TAB, runs `credsync` with `CREDSYNC_COMPLETE=<shell>` set, and `main` answers
//! from the clap definitions before parsing anything (see [`COMPLETE_VAR`]). One engine serves
//! bash, zsh and fish, subcommands and flags can never drift from the CLI, and a value can be
//! completed from live data (the profiles the config manages). The cost: one short `credsync`
//! run per TAB, and clap_complete's `unstable-dynamic` feature, which is exempt from semver;
//! the version is pinned in Cargo.toml and the script must come from the same build as the
//! binary (the package ships both; a hand-sourced script is re-generated on shell start).

use std::collections::HashSet;
use std::ffi::OsStr;
use std::process::ExitCode;

use clap_complete::engine::CompletionCandidate;
use clap_complete::env::EnvCompleter;

use credsync::config::{self, Config, Env};

/// The variable that switches `credsync` into answering a completion request.
pub(crate) const COMPLETE_VAR: &str = "CREDSYNC_COMPLETE";

/// The command the shells complete (and the one they run to ask for completions: the
/// `credsync` found on `PATH`, the same that the user is typing).
const BIN: &str = "credsync";

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The shell to print the completion script for.
    pub(crate) shell: Shell,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Shell {
    /// Load it from ~/.bashrc: `eval "$(credsync completions bash)"`
    Bash,
    /// Source it from ~/.zshrc: `source <(credsync completions zsh)`
    Zsh,
    /// Save it as ~/.config/fish/completions/credsync.fish
    Fish,
}

impl Shell {
    fn completer(self) -> &'static dyn EnvCompleter {
        match self {
            Shell::Bash => &clap_complete::env::Bash,
            Shell::Zsh => &clap_complete::env::Zsh,
            Shell::Fish => &clap_complete::env::Fish,
        }
    }
}

/// Prints the completion script for `args.shell`.
pub(crate) fn run(args: &Args) -> ExitCode {
    match script(args.shell) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("credsync completions: cannot render the script: {e}");
            ExitCode::from(1)
        }
    }
}

/// The completion script for `shell`.
pub(crate) fn script(shell: Shell) -> std::io::Result<String> {
    let mut buf = Vec::new();
    shell
        .completer()
        .write_registration(COMPLETE_VAR, BIN, BIN, BIN, &mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    Ok(match shell {
        Shell::Zsh => zsh_autoloadable(&text),
        Shell::Bash | Shell::Fish => text,
    })
}

/// The line clap_complete ends its zsh script with: it registers the function, which is right
/// when the script is sourced, but when zsh autoloads the file as `_credsync` from `$fpath` (as
/// installed by the package) the first TAB would only register and complete nothing.
const ZSH_REGISTER: &str = "compdef _clap_dynamic_completer_credsync credsync";

/// Makes the zsh script work both sourced and autoloaded from `$fpath` (as `_credsync`).
fn zsh_autoloadable(script: &str) -> String {
    script.replace(
        ZSH_REGISTER,
        "if [[ \"${funcstack[1]}\" == \"_credsync\" ]]; then\n    \
         _clap_dynamic_completer_credsync \"$@\"\nelse\n    \
         compdef _clap_dynamic_completer_credsync credsync\nfi",
    )
}

/// Completes `credsync refresh <TAB>`: the profiles the config manages (their source names, and
/// their target sections where those differ), as the daemon accepts them. Reads the config
/// named by `CREDSYNC_CONFIG`, else the default one (a `--config` typed on the same command
/// line is not seen by the completer); offers nothing when it does not load.
pub(crate) fn refresh_profiles(current: &OsStr) -> Vec<CompletionCandidate> {
    let env = Env::from_process();
    let explicit = env.get("CREDSYNC_CONFIG").map(std::path::PathBuf::from);
    let Ok(cfg) = config::load(explicit.as_deref(), &env) else {
        return Vec::new();
    };
    let prefix = current.to_string_lossy();
    managed_names(&cfg)
        .into_iter()
        .filter(|(name, _)| name.starts_with(prefix.as_ref()))
        .map(|(name, help)| CompletionCandidate::new(name).help(Some(help.into())))
        .collect()
}

/// Every name `refresh` accepts, once, with a short description: `source` names, then the
/// `target` names that differ from every source.
pub(crate) fn managed_names(cfg: &Config) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut named: HashSet<&str> = HashSet::new();
    for p in &cfg.profiles {
        let help = if p.target == p.source {
            "managed profile".to_owned()
        } else {
            format!("managed profile, written as [{}]", p.target)
        };
        out.push((p.source.clone(), help));
        named.insert(&p.source);
    }
    for p in &cfg.profiles {
        if named.insert(&p.target) {
            out.push((
                p.target.clone(),
                format!("section written from {}", p.source),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    fn cfg(toml: &str) -> Config {
        let env = Env {
            home: PathBuf::from("/home/u"),
            vars: BTreeMap::new(),
        };
        config::parse_bytes(toml.as_bytes(), Path::new("/home/u/c.toml"), &env)
            .expect("test config parses")
    }

    #[test]
    fn the_zsh_script_completes_when_autoloaded_and_when_sourced() {
        let raw = {
            let mut buf = Vec::new();
            clap_complete::env::Zsh
                .write_registration(COMPLETE_VAR, BIN, BIN, BIN, &mut buf)
                .expect("renders");
            String::from_utf8(buf).expect("utf-8")
        };
        assert!(
            raw.contains(ZSH_REGISTER),
            "clap_complete's zsh script changed:\n{raw}"
        );
        let s = script(Shell::Zsh).expect("renders");
        assert!(s.starts_with("#compdef credsync"), "{s}");
        assert!(
            s.contains("if [[ \"${funcstack[1]}\" == \"_credsync\" ]]; then"),
            "{s}"
        );
        assert!(
            s.contains("    _clap_dynamic_completer_credsync \"$@\"\nelse"),
            "{s}"
        );
        assert!(s.contains("CREDSYNC_COMPLETE=\"zsh\""), "{s}");
    }

    #[test]
    fn names_are_sources_then_distinct_targets() {
        let c = cfg(r#"
[[profiles]]
source = "dev-admin"
target = "default"

[[profiles]]
source = "data"

[[profiles]]
source = "ops"
target = "dev-admin"
"#);
        let names: Vec<String> = managed_names(&c).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["dev-admin", "data", "ops", "default"]);
    }

    #[test]
    fn a_renamed_target_says_where_it_is_written() {
        let c = cfg("[[profiles]]\nsource = \"dev\"\ntarget = \"default\"\n");
        let names = managed_names(&c);
        assert_eq!(names[0].1, "managed profile, written as [default]");
        assert_eq!(
            names[1],
            ("default".into(), "section written from dev".into())
        );
    }
}
