//! The Homebrew formula (packaging/homebrew/credsync.rb) and the service files: the formula is
//! Ruby that `ruby -c` accepts, before and after scripts/brew-formula renders it for a release;
//! it installs the completions and man pages the binary renders; `brew services` runs what the
//! LaunchAgent of `credsync service install` runs, the same way; and no service file, committed
//! or rendered, names a versioned Homebrew Cellar path (`brew upgrade` deletes it).
//!
//! ruby (Debian's `ruby`; scripts/test installs it) is required under CI; elsewhere the Ruby
//! check prints SKIPPED.

use crate::support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

use credsync::service::{self, ServiceSpec};
use support::TestEnv;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn formula() -> String {
    fs::read_to_string(repo().join("packaging/homebrew/credsync.rb")).expect("the formula")
}

/// The lines of the formula's `service do ... end` block.
fn service_block(formula: &str) -> Vec<String> {
    formula
        .lines()
        .map(str::trim)
        .skip_while(|l| *l != "service do")
        .skip(1)
        .take_while(|l| *l != "end")
        .map(str::to_owned)
        .collect()
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ruby -c FILE`, or `None` (SKIPPED; a failure under CI) when ruby is missing.
fn ruby_check(file: &Path) -> Option<Output> {
    match Command::new("ruby").arg("-c").arg(file).output() {
        Ok(out) => Some(out),
        Err(e) => {
            support::skip(
                "the formula's Ruby check",
                &format!("ruby cannot run ({e}); scripts/test installs Debian's ruby"),
            );
            None
        }
    }
}

fn brew_formula(args: &[&str]) -> Output {
    Command::new(repo().join("scripts/brew-formula"))
        .args(args)
        .output()
        .expect("run scripts/brew-formula")
}

#[test]
fn the_formula_is_ruby_before_and_after_it_is_rendered_for_a_release() {
    let template = repo().join("packaging/homebrew/credsync.rb");
    let dir = tempfile::tempdir().unwrap();
    let tarball = dir.path().join("credsync-v1.2.3.tar.gz");
    fs::write(&tarball, b"the release's source tarball").unwrap();
    let sha: String = Sha256::digest(fs::read(&tarball).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();

    let rendered = ok(
        &brew_formula(&["1.2.3", tarball.to_str().unwrap(), "acme/credsync"]),
        "scripts/brew-formula",
    );
    let lines: Vec<&str> = rendered.lines().map(str::trim).collect();
    for want in [
        "url \"https://github.com/acme/credsync/releases/download/v1.2.3/credsync-v1.2.3.tar.gz\""
            .to_owned(),
        format!("sha256 \"{sha}\""),
        "head \"https://github.com/acme/credsync.git\", branch: \"main\"".to_owned(),
    ] {
        assert!(lines.contains(&want.as_str()), "{want} not in\n{rendered}");
    }
    assert!(
        !rendered
            .lines()
            .any(|l| !l.trim_start().starts_with('#') && l.contains('@')),
        "a placeholder is left:\n{rendered}"
    );
    // Malformed arguments render nothing.
    for bad in [
        ["v1.2.3", tarball.to_str().unwrap(), "acme/credsync"],
        ["1.2.3", "/no/such/tarball", "acme/credsync"],
        ["1.2.3", tarball.to_str().unwrap(), "acme"],
    ] {
        let out = brew_formula(&bad);
        assert!(!out.status.success() && out.stdout.is_empty(), "{bad:?}");
    }

    let rendered_file = dir.path().join("credsync.rb");
    fs::write(&rendered_file, &rendered).unwrap();
    for file in [template.as_path(), &rendered_file] {
        let Some(out) = ruby_check(file) else { return };
        assert_eq!(
            ok(&out, &format!("ruby -c {}", file.display())).trim(),
            "Syntax OK"
        );
    }
    // The check can fail: a formula with a syntax error is refused.
    let broken = dir.path().join("broken.rb");
    fs::write(&broken, rendered.replacen("service do", "service do do", 1)).unwrap();
    assert!(!ruby_check(&broken).unwrap().status.success());
}

#[test]
fn the_formula_installs_the_completions_and_man_pages_the_binary_renders() {
    let f = formula();
    let lines: Vec<&str> = f.lines().map(str::trim).collect();
    // Homebrew runs `credsync completions SHELL` for bash, zsh and fish and installs each.
    assert!(
        lines.contains(&"generate_completions_from_executable(bin/\"credsync\", \"completions\")"),
        "{f}"
    );
    let env = TestEnv::new();
    for shell in ["bash", "zsh", "fish"] {
        let script = ok(&env.run(["completions", shell]), shell);
        assert!(script.contains("credsync"), "{shell}: {script}");
    }
    // The man pages: `generate-man DIR`, then every page into man1.
    assert!(
        lines.contains(&"system bin/\"credsync\", \"generate-man\", buildpath/\"man\""),
        "{f}"
    );
    assert!(
        lines.contains(&"man1.install buildpath.glob(\"man/*.1\")"),
        "{f}"
    );
    let man = env.root().join("man");
    ok(
        &env.run(["generate-man".as_ref(), man.as_os_str()]),
        "generate-man",
    );
    assert!(man.join("credsync.1").is_file());
}

/// The `<key>`'s value element in a plist (`<string>x</string>`, `<true/>`, `<dict>...</dict>`),
/// as text.
fn plist_value<'a>(plist: &'a str, key: &str) -> &'a str {
    let at = plist
        .find(&format!("<key>{key}</key>"))
        .unwrap_or_else(|| panic!("{key} in\n{plist}"));
    let rest = plist[at + key.len() + "<key></key>".len()..].trim_start();
    let end = if rest.starts_with("<dict>") {
        rest.find("</dict>").unwrap() + "</dict>".len()
    } else if rest.starts_with("<array>") {
        rest.find("</array>").unwrap() + "</array>".len()
    } else {
        rest.find('\n').unwrap_or(rest.len())
    };
    &rest[..end]
}

/// The `<string>`s in `element`, in order.
fn strings(element: &str) -> Vec<String> {
    element
        .split("<string>")
        .skip(1)
        .map(|s| s[..s.find("</string>").unwrap()].to_owned())
        .collect()
}

#[test]
fn brew_services_runs_the_daemon_as_the_launch_agent_does() {
    let f = formula();
    let block = service_block(&f);
    assert!(!block.is_empty(), "no service block in\n{f}");
    let has = |line: &str| block.iter().any(|l| l == line);
    // The agent `credsync service install` writes, for the same binary.
    let plist = service::render_launchd_plist(
        &ServiceSpec::packaged(PathBuf::from("/opt/homebrew/opt/credsync/bin/credsync")),
        Path::new("/Users/u"),
    );

    // The same program and arguments, through the stable opt path.
    let args = strings(plist_value(&plist, "ProgramArguments"));
    let run: Vec<String> = std::iter::once("opt_bin/\"credsync\"".to_owned())
        .chain(args[1..].iter().map(|a| format!("\"{a}\"")))
        .collect();
    let run = format!("run [{}]", run.join(", "));
    assert!(has(&run), "{run} not in the service block: {block:?}");

    // Restarted the same way.
    let keep_alive = match plist_value(&plist, "KeepAlive") {
        "<true/>" => "keep_alive true".to_owned(),
        dict => {
            let keys: Vec<&str> = dict
                .split("<key>")
                .skip(1)
                .map(|k| &k[..k.find("</key>").unwrap()])
                .collect();
            assert_eq!(keys.len(), 1, "one KeepAlive condition: {dict}");
            let value = if dict.contains("<true/>") {
                "true"
            } else {
                "false"
            };
            let key = match keys[0] {
                "SuccessfulExit" => "successful_exit",
                "Crashed" => "crashed",
                other => panic!("no Homebrew keep_alive for KeepAlive {other}"),
            };
            format!("keep_alive {key}: {value}")
        }
    };
    assert!(has(&keep_alive), "{keep_alive} not in {block:?}");
    let throttle = plist_value(&plist, "ThrottleInterval")
        .trim_start_matches("<integer>")
        .trim_end_matches("</integer>");
    assert!(has(&format!("throttle_interval {throttle}")), "{block:?}");
    let kind = strings(plist_value(&plist, "ProcessType"));
    assert!(
        has(&format!("process_type :{}", kind[0].to_lowercase())),
        "{block:?}"
    );

    // The agent's environment: its log level, and a PATH with Homebrew's prefixes (the
    // service's standard one: HOMEBREW_PREFIX/bin and /sbin, then the system's).
    let env = plist_value(&plist, "EnvironmentVariables");
    let log = strings(env)
        .into_iter()
        .zip(
            env.split("<key>")
                .skip(1)
                .map(|k| k[..k.find("</key>").unwrap()].to_owned()),
        )
        .find(|(_, k)| k == "CREDSYNC_LOG")
        .map(|(v, _)| v)
        .expect("CREDSYNC_LOG in the agent");
    assert!(
        has(&format!(
            "environment_variables PATH: std_service_path_env, CREDSYNC_LOG: \"{log}\""
        )),
        "{block:?}"
    );
    assert!(has("log_path var/\"log/credsync.log\""), "{block:?}");
    assert!(has("error_log_path var/\"log/credsync.log\""), "{block:?}");
}

/// Where a file names a versioned Cellar path (`/Cellar/<formula>/<version>/`), or a formula's
/// service block names the keg (`bin/`, `prefix/`, `libexec/`: under the Cellar) instead of
/// its `opt_` link.
fn cellar_path(name: &str, text: &str) -> Option<String> {
    if let Some(at) = text.find("/Cellar/") {
        let line = text[..at].matches('\n').count() + 1;
        return Some(format!("{name}:{line} names a Cellar path"));
    }
    if name.ends_with(".rb") {
        let keg = service_block(text).into_iter().find(|l| {
            ["bin/", "prefix/", "libexec/", "sbin/"].iter().any(|k| {
                // At the start of a name: `opt_bin/`, `opt_sbin/` and paths in strings are not.
                l.match_indices(k).any(|(i, _)| {
                    l[..i]
                        .chars()
                        .next_back()
                        .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '/'))
                })
            })
        });
        if let Some(l) = keg {
            return Some(format!("{name}: the service runs from the keg: {l}"));
        }
    }
    None
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn the_cellar_check_can_fail() {
    assert!(
        cellar_path(
            "a.plist",
            "<string>/opt/homebrew/Cellar/credsync/0.1.0/bin/credsync</string>"
        )
        .is_some()
    );
    assert!(
        cellar_path(
            "a.service",
            "ExecStart=/home/linuxbrew/.linuxbrew/Cellar/credsync/0.1.0/bin/credsync daemon"
        )
        .is_some()
    );
    let keg = "service do\n    run [bin/\"credsync\", \"daemon\"]\n  end\n";
    assert!(cellar_path("f.rb", keg).is_some());
    let keg = "service do\n    run [prefix/\"bin/credsync\", \"daemon\"]\n  end\n";
    assert!(cellar_path("f.rb", keg).is_some());
    let opt = "service do\n    run [opt_bin/\"credsync\", \"daemon\"]\n    log_path var/\"log/credsync.log\"\n  end\n";
    assert_eq!(cellar_path("f.rb", opt), None);
    assert_eq!(
        cellar_path("a.service", "ExecStart=/opt/homebrew/bin/credsync daemon"),
        None
    );
}

#[test]
fn no_service_file_names_a_versioned_cellar_path() {
    // The committed ones: the templates and the formula.
    let mut committed = Vec::new();
    for dir in ["systemd", "launchd", "packaging"] {
        files(&repo().join(dir), &mut committed);
    }
    assert!(committed.len() >= 5, "{committed:?}");
    let mut found: Vec<String> = committed
        .iter()
        .filter_map(|p| {
            let name = p.strip_prefix(repo()).unwrap().display().to_string();
            cellar_path(&name, &fs::read_to_string(p).unwrap())
        })
        .collect();

    // The rendered ones, by a credsync installed by Homebrew: the binary in a keg
    // (<prefix>/Cellar/credsync/<version>/bin) and Homebrew's link to it (<prefix>/bin), run
    // through the link as a shell finds it. `service print` renders what `service install`
    // writes on this platform; the packaged unit is rendered for a path as given.
    let env = TestEnv::new();
    let prefix = env.root().join("homebrew");
    let keg = prefix.join("Cellar/credsync/9.9.9/bin/credsync");
    fs::create_dir_all(keg.parent().unwrap()).unwrap();
    if fs::hard_link(support::credsync_bin(), &keg).is_err() {
        fs::copy(support::credsync_bin(), &keg).unwrap();
    }
    let link = prefix.join("bin/credsync");
    fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink("../Cellar/credsync/9.9.9/bin/credsync", &link).unwrap();
    let like_a_test_run = env.cmd(["service", "print"]);
    let mut print = Command::new(&link);
    print
        .args(["service", "print"])
        .env_clear()
        .current_dir(env.home());
    for (k, v) in like_a_test_run.get_envs() {
        if let Some(v) = v {
            print.env(k, v);
        }
    }
    let out = print.output().unwrap();
    let printed = ok(&out, "credsync service print, run from the keg's link");
    // (The temporary directory's own path canonicalised: /var is a link to /private/var on
    // macOS.)
    let stable = prefix.canonicalize().unwrap().join("bin/credsync");
    assert!(
        printed.contains(&stable.display().to_string()),
        "the service should run {}:\n{printed}",
        stable.display()
    );
    found.extend(cellar_path("`credsync service print`", &printed));
    let packaged = ok(
        &env.run(["service", "print", "--packaged", "/usr/bin/credsync"]),
        "service print --packaged",
    );
    found.extend(cellar_path(
        "`credsync service print --packaged`",
        &packaged,
    ));
    assert!(found.is_empty(), "{found:#?}");
}
