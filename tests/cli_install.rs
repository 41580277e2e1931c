//! What an installed credsync offers besides its commands: shell completion (bash run for
//! real: the registration, then the completion function called as bash calls it on TAB; fish
//! through its own `complete -C`; zsh parsed and bound from `$fpath`), the
//! man pages rendered by man/groff without a warning, and `--version` naming the commit.
//!
//! bash, fish, zsh, groff and man are required under CI (scripts/test installs them); outside
//! CI a test without them prints SKIPPED. On macOS, `service print` is checked with plutil.

use crate::support;

use std::path::Path;
use std::process::{Command, Output};

use support::TestEnv;

/// Whether `tool` is on PATH; panics under CI when it is not.
fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        support::skip(
            &format!("a test with {tool}"),
            &format!("{tool} is not installed (scripts/test installs it)"),
        );
    }
    found
}

/// Runs `script` in a non-interactive bash whose PATH finds the credsync under test first, in
/// the test's HOME and environment.
fn bash(env: &TestEnv, script: &str) -> Output {
    shell("bash", env, script)
}

/// What bash's completion function offers for the words typed (the last one being completed),
/// one candidate per line, sorted.
fn complete(env: &TestEnv, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let script = format!(
        r#"eval "$(credsync completions bash)" || exit 90
COMP_WORDS=({words})
COMP_CWORD={cword}
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
func=$(complete -p credsync | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
[[ -n $func ]] || exit 91
"$func" credsync "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}""#,
        words = quoted.join(" "),
        cword = words.len() - 1,
    );
    let out = bash(env, &script);
    assert!(
        out.status.success(),
        "bash failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut got: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    got.sort();
    got
}

#[test]
fn bash_registers_the_completion_for_credsync() {
    if !have("bash") {
        return;
    }
    let env = TestEnv::new();
    // The README's form: macOS's /bin/bash 3.2 does not `source` a process substitution.
    let out = bash(
        &env,
        r#"eval "$(credsync completions bash)"; complete -p credsync"#,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("complete ") && stdout.trim_end().ends_with(" credsync"),
        "{stdout}"
    );
    assert!(stdout.contains(" -F "), "a completion function: {stdout}");
}

#[test]
fn bash_completes_subcommands_from_a_prefix() {
    if !have("bash") {
        return;
    }
    let env = TestEnv::new();
    assert_eq!(complete(&env, &["credsync", "re"]), ["refresh", "reload"]);
    assert_eq!(complete(&env, &["credsync", "service", "i"]), ["install"]);
    assert_eq!(complete(&env, &["credsync", "status", "--j"]), ["--json"]);
    let all = complete(&env, &["credsync", ""]);
    for sub in [
        "completions",
        "daemon",
        "doctor",
        "init",
        "service",
        "status",
        "sync",
    ] {
        assert!(all.iter().any(|c| c == sub), "{sub} missing from {all:?}");
    }
    assert!(
        !all.iter().any(|c| c == "generate-man"),
        "a hidden command is offered: {all:?}"
    );
}

#[test]
fn bash_completes_refresh_with_the_managed_profiles() {
    if !have("bash") {
        return;
    }
    let mut env = TestEnv::new();
    let cfg = env.write_config_toml(
        "[[profiles]]\nsource = \"dev-admin\"\ntarget = \"default\"\n\n\
         [[profiles]]\nsource = \"data\"\n\n[[profiles]]\nsource = \"ops\"\n",
    );
    env.env("CREDSYNC_CONFIG", &cfg);
    assert_eq!(
        complete(&env, &["credsync", "refresh", "d"]),
        ["data", "default", "dev-admin"]
    );
    let values: Vec<String> = complete(&env, &["credsync", "refresh", ""])
        .into_iter()
        .filter(|c| !c.starts_with('-'))
        .collect();
    assert_eq!(values, ["data", "default", "dev-admin", "ops"]);
}

#[test]
fn refresh_completion_offers_aws_profile_without_a_config_file() {
    if !have("bash") {
        return;
    }
    let mut env = TestEnv::new();
    env.env("AWS_PROFILE", "legacy-sso");
    assert_eq!(
        complete(&env, &["credsync", "refresh", "l"]),
        ["legacy-sso"]
    );
    assert!(complete(&env, &["credsync", "refresh", "x"]).is_empty());
}

/// Runs `script` with `shell -c`, with PATH finding the credsync under test first, in the
/// test's HOME and environment.
fn shell(shell: &str, env: &TestEnv, script: &str) -> Output {
    let bin_dir = support::credsync_bin()
        .parent()
        .expect("the binary has a directory")
        .to_owned();
    let template = env.cmd(Vec::<&str>::new());
    let mut cmd = Command::new(shell);
    cmd.arg("-c")
        .arg(script)
        .env_clear()
        .current_dir(env.home());
    for (k, v) in template.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    cmd.env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()));
    cmd.output().unwrap_or_else(|e| panic!("run {shell}: {e}"))
}

/// fish's own completer (`complete -C`) asked what it offers for `line`: the values, sorted.
fn fish_complete(env: &TestEnv, line: &str) -> Vec<String> {
    let out = shell(
        "fish",
        env,
        &format!("credsync completions fish | source; complete -C '{line}'"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut got: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split('\t').next())
        .filter(|v| !v.is_empty() && !v.starts_with('-'))
        .map(str::to_owned)
        .collect();
    got.sort();
    got
}

// Linux only: a macOS CI machine has no fish (the script is the same bytes there).
#[cfg(target_os = "linux")]
#[test]
fn fish_completes_subcommands_and_profiles() {
    if !have("fish") {
        return;
    }
    let mut env = TestEnv::new();
    assert_eq!(fish_complete(&env, "credsync re"), ["refresh", "reload"]);
    let cfg = env.write_config_toml(
        "[[profiles]]\nsource = \"dev-admin\"\n\n[[profiles]]\nsource = \"ops\"\n",
    );
    env.env("CREDSYNC_CONFIG", &cfg);
    assert_eq!(fish_complete(&env, "credsync refresh d"), ["dev-admin"]);
}

/// zsh is not driven here (its completion needs a terminal); what is checked: the script
/// parses, and installed in `$fpath` as the package does, compinit binds it to `credsync`.
#[test]
fn zsh_script_parses_and_compinit_binds_it_from_fpath() {
    if !have("zsh") {
        return;
    }
    let env = TestEnv::new();
    let dir = env.root().join("zfunc");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let out = env.run(["completions", "zsh"]);
    std::fs::write(dir.join("_credsync"), &out.stdout).expect("write _credsync");
    let syntax = shell(
        "zsh",
        &env,
        &format!("zsh -n {}", dir.join("_credsync").display()),
    );
    assert!(
        syntax.status.success(),
        "{}",
        String::from_utf8_lossy(&syntax.stderr)
    );
    let bound = shell(
        "zsh",
        &env,
        &format!(
            "fpath=({} $fpath); autoload -U compinit && compinit -u -D; print -r -- $_comps[credsync]",
            dir.display()
        ),
    );
    assert_eq!(String::from_utf8_lossy(&bound.stdout).trim(), "_credsync");
}

#[test]
fn zsh_and_fish_scripts_call_back_into_credsync() {
    let env = TestEnv::new();
    for (shell, expect) in [
        ("zsh", "CREDSYNC_COMPLETE=\"zsh\""),
        ("fish", "CREDSYNC_COMPLETE=fish credsync"),
    ] {
        let out = env.run(["completions", shell]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains(expect), "{shell}: {text}");
    }
    let bad = env.run(["completions", "tcsh"]);
    assert_eq!(
        bad.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

/// Each page written by `credsync generate-man` into a fresh directory.
fn man_pages(env: &TestEnv) -> Vec<std::path::PathBuf> {
    let dir = env.root().join("man");
    let out = env.run([Path::new("generate-man"), &dir]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut pages: Vec<_> = std::fs::read_dir(&dir)
        .expect("read the man dir")
        .map(|e| e.expect("entry").path())
        .collect();
    pages.sort();
    pages
}

// Linux only: `man --warnings` is man-db's, and groff is not on a macOS machine (its man is
// mandoc); the pages are the same bytes on every platform.
#[cfg(target_os = "linux")]
#[test]
fn man_pages_render_without_warnings() {
    if !have("groff") || !have("man") {
        return;
    }
    let env = TestEnv::new();
    let pages = man_pages(&env);
    assert!(pages.len() > 5, "{pages:?}");
    for page in &pages {
        let groff = Command::new("groff")
            .args(["-ww", "-man", "-z"])
            .arg(page)
            .output()
            .expect("run groff");
        assert!(groff.status.success(), "groff failed on {}", page.display());
        assert_eq!(
            String::from_utf8_lossy(&groff.stderr),
            "",
            "groff warns about {}",
            page.display()
        );
        let man = Command::new("man")
            .args(["--warnings", "-l"])
            .arg(page)
            .env("MANWIDTH", "80")
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .output()
            .expect("run man");
        assert!(man.status.success(), "man -l failed on {}", page.display());
        assert_eq!(
            String::from_utf8_lossy(&man.stderr),
            "",
            "man warns about {}",
            page.display()
        );
        assert!(!man.stdout.is_empty());
    }
    let main = Command::new("man")
        .arg("-l")
        .arg(env.root().join("man/credsync.1"))
        .env("MANWIDTH", "80")
        .env("MANPAGER", "cat")
        .output()
        .expect("run man");
    let text = String::from_utf8_lossy(&main.stdout);
    for section in [
        "SYNOPSIS",
        "SUBCOMMANDS",
        "EXIT STATUS",
        "ENVIRONMENT",
        "FILES",
    ] {
        assert!(text.contains(section), "{section} missing:\n{text}");
    }
}

#[test]
fn every_page_the_main_page_refers_to_exists() {
    let env = TestEnv::new();
    let pages = man_pages(&env);
    let names: Vec<String> = pages
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let main = std::fs::read_to_string(env.root().join("man/credsync.1")).expect("credsync.1");
    let mut referred = 0;
    for word in main.split(|c: char| c.is_whitespace()) {
        if let Some(name) = word.strip_suffix("(1)") {
            let file = format!("{}.1", name.replace("\\-", "-"));
            assert!(
                names.contains(&file),
                "{file} is referred to but not written: {names:?}"
            );
            referred += 1;
        }
    }
    assert!(referred >= 8, "{referred} references in:\n{main}");
    assert!(!names.iter().any(|n| n.contains("generate")), "{names:?}");
}

/// On macOS `service print` renders the LaunchAgent: plutil, launchd's own parser, accepts it.
#[cfg(target_os = "macos")]
#[test]
fn service_print_gives_a_plist_plutil_accepts() {
    if !have("plutil") {
        return;
    }
    let env = TestEnv::new();
    let out = env.run(["service", "print"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plist = env.root().join("com.credsync.agent.plist");
    std::fs::write(&plist, &out.stdout).expect("write the plist");
    let lint = Command::new("plutil")
        .arg("-lint")
        .arg(&plist)
        .output()
        .expect("run plutil");
    assert!(
        lint.status.success(),
        "plutil -lint: {}\n{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&out.stdout)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("<string>daemon</string>"), "{text}");
    assert!(
        text.contains(&support::credsync_bin().to_string_lossy().into_owned()),
        "{text}"
    );
}

/// The README's install section: the package, the cargo path and the service step, with the
/// names the package really has.
#[test]
fn the_readme_shows_how_to_install() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let start = readme.find("\n## Install\n").expect("an Install section");
    let end = readme[start + 1..]
        .find("\n## ")
        .map_or(readme.len(), |i| start + 1 + i);
    let install = &readme[start..end];
    let deb = format!("credsync_{}-1_amd64.deb", env!("CARGO_PKG_VERSION"));
    for expected in [
        deb.as_str(),
        "sudo apt install ./",
        "systemctl --user enable --now credsync",
        "/usr/lib/systemd/user/credsync.service",
        "systemctl --user edit credsync",
        "scripts/deb --release",
        "cargo install --locked --path .",
        "credsync service install",
        "credsync completions",
    ] {
        assert!(
            install.contains(expected),
            "the install section lacks {expected:?}:\n{install}"
        );
    }
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let env = TestEnv::new();
    let out = env.run(["--version"]);
    let got = String::from_utf8_lossy(&out.stdout).trim_end().to_owned();
    let version = env!("CARGO_PKG_VERSION");
    let head = Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "rev-parse",
            "--short=12",
            "HEAD",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match head {
        Some(commit) => assert_eq!(got, format!("credsync {version} (commit {commit})")),
        None => assert_eq!(got, format!("credsync {version}")),
    }
}
