//! `AWS_CONFIG_FILE` and `AWS_SHARED_CREDENTIALS_FILE` as botocore reads them: values with `~`,
//! `$HOME`, `${VAR}` (as they appear in systemd units, plists and `.env` files, where no shell
//! expands them) name the same file for credsync as for real botocore, and a variable set but
//! empty, for which botocore reads no file at all, is refused instead of replaced by the
//! default file.
//!
//! Real botocore from the test venv is the reference; without it the tests fail under CI and
//! skip loudly elsewhere.

use crate::support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use credsync::config::{self, ConfigError, Env};
use support::TestEnv;
use support::fake_aws::FakeAws;
use support::python::{botocore_read_credentials, python, run_python_ok, skip};

/// For each environment on stdin (a JSON list), the path botocore's own loader opens for the
/// config and the credentials file: `raw_config_parse` expands the value and reports the
/// expanded path in `ConfigNotFound` (none of these files exists).
const BOTOCORE_PATHS: &str = r#"
import json, os, sys
import botocore.configloader, botocore.session
from botocore.exceptions import ConfigNotFound
out = []
for env in json.loads(sys.stdin.read()):
    os.environ.clear()
    os.environ.update(env)
    session = botocore.session.Session()
    res = {}
    for var in ("config_file", "credentials_file"):
        value = session.get_config_variable(var)
        try:
            botocore.configloader.raw_config_parse(value)
            res[var] = None
        except ConfigNotFound as e:
            res[var] = e.kwargs["path"]
    out.append(res)
print(json.dumps(out))
"#;

fn botocore_paths(cases: &[BTreeMap<String, String>]) -> Vec<serde_json::Value> {
    use std::io::Write;
    let mut cmd = support::python::python_command(BOTOCORE_PATHS, &[]);
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(serde_json::to_string(cases).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("botocore printed JSON")
}

#[test]
fn paths_expand_as_botocore_expands_them() {
    if python().is_none() {
        return skip("paths_expand_as_botocore_expands_them");
    }
    let home = "/nonexistent/credsync-home";
    let case = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let cases = vec![
        case(&[
            ("HOME", home),
            ("AWS_CONFIG_FILE", "~/cfg/config"),
            ("AWS_SHARED_CREDENTIALS_FILE", "$HOME/alt/credentials"),
        ]),
        case(&[
            ("HOME", home),
            ("AWS_CONFIG_FILE", "${HOME}/x/config"),
            ("AWS_SHARED_CREDENTIALS_FILE", "~"),
        ]),
        // Variables first, then ~: a variable holding ~/... is expanded; a ~ inside is not.
        case(&[
            ("HOME", home),
            ("D", "~/d"),
            ("AWS_CONFIG_FILE", "$D/config"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/abs/${D}/credentials"),
        ]),
        // An unknown variable stays as written (relative then: credsync refuses it).
        case(&[
            ("HOME", home),
            ("AWS_CONFIG_FILE", "/x/$NOPE/config"),
            ("AWS_SHARED_CREDENTIALS_FILE", "$NOPE/credentials"),
        ]),
        // A variable set but empty expands to nothing; an unknown user stays as written.
        case(&[
            ("HOME", home),
            ("E", ""),
            ("AWS_CONFIG_FILE", "/x/${E}config"),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                "~no-such-user-credsync/credentials",
            ),
        ]),
        // HOME set but empty: ~/cfg is /cfg, ~ is /.
        case(&[
            ("HOME", ""),
            ("AWS_CONFIG_FILE", "~/cfg"),
            ("AWS_SHARED_CREDENTIALS_FILE", "~"),
        ]),
        // A HOME with a trailing slash, `$$`, `${A:-d}` (not a default in Python), `${}`.
        case(&[
            ("HOME", "/nonexistent/h/"),
            ("A", "a"),
            ("AWS_CONFIG_FILE", "~/c/$$A/${A:-d}"),
            ("AWS_SHARED_CREDENTIALS_FILE", "$HOME/${}/$A_/${A}_/$"),
        ]),
        // ~user from the password database.
        case(&[
            ("HOME", home),
            ("AWS_CONFIG_FILE", "~root/.aws/nonexistent-config"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/p/$HOME"),
        ]),
    ];
    let botocore = botocore_paths(&cases);
    let (mut same, mut refused) = (0, 0);
    for (vars, b) in cases.iter().zip(&botocore) {
        for (var, key, field) in [
            ("AWS_CONFIG_FILE", "config_file", 0),
            ("AWS_SHARED_CREDENTIALS_FILE", "credentials_file", 1),
        ] {
            let want = b[key].as_str().expect("botocore opened no such file");
            // Only this variable, so the other's error cannot hide it.
            let mut only = vars.clone();
            only.retain(|k, _| !k.starts_with("AWS_") || k == var);
            let env = Env {
                home: PathBuf::from("/nonexistent/pwd-home"),
                vars: only,
            };
            let got = config::try_defaults(&env).map(|c| {
                if field == 0 {
                    c.aws.config_file
                } else {
                    c.aws.credentials_file
                }
            });
            if Path::new(want).is_absolute() {
                let got = got.unwrap_or_else(|e| panic!("{var}={:?}: {e}", vars[var]));
                assert_eq!(got, Path::new(want), "{var}={:?}", vars[var]);
                same += 1;
            } else {
                match got {
                    Err(ConfigError::Env {
                        var: v, message, ..
                    }) => {
                        assert_eq!(v, var);
                        assert!(
                            message.contains(&format!("relative path {want:?}")),
                            "{message}"
                        );
                        refused += 1;
                    }
                    other => panic!(
                        "{var}={:?}: botocore opens {want:?}, credsync: {other:?}",
                        vars[var]
                    ),
                }
            }
        }
    }
    assert_eq!((same, refused), (14, 2));
}

#[test]
fn a_variable_set_but_empty_reads_no_file_in_botocore_and_is_refused() {
    if python().is_none() {
        return skip("a_variable_set_but_empty_reads_no_file_in_botocore_and_is_refused");
    }
    let env = TestEnv::new();
    env.write_aws_config("[profile p]\nregion = eu-west-1\n");
    env.write_credentials("[c]\naws_access_key_id = A\naws_secret_access_key = B\n");
    let home = env.home().to_str().unwrap();
    let script = "import botocore.session\nprint(' '.join(sorted(botocore.session.Session().available_profiles)))";
    let profiles = |extra: &[(&str, &str)]| {
        let mut e = vec![("HOME", home)];
        e.extend_from_slice(extra);
        run_python_ok(script, &e).trim().to_owned()
    };
    assert_eq!(profiles(&[]), "c p", "unset: the default files");
    assert_eq!(
        profiles(&[("AWS_CONFIG_FILE", "")]),
        "c",
        "empty: no config file"
    );
    assert_eq!(
        profiles(&[("AWS_SHARED_CREDENTIALS_FILE", "")]),
        "p",
        "empty: no credentials file"
    );
    // credsync does not silently use ~/.aws/credentials instead: it says what is wrong.
    let o = env
        .cmd(["sync"])
        .env("AWS_SHARED_CREDENTIALS_FILE", "")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("AWS_SHARED_CREDENTIALS_FILE=\"\" (from the environment): set but empty"),
        "{err}"
    );
}

/// End to end: `credsync sync` with unexpanded values (as a unit or `.env` holds them) reads
/// the config and writes the credentials file botocore then reads with the same values.
#[test]
fn sync_writes_where_botocore_reads_with_unexpanded_values() {
    if python().is_none() {
        return skip("sync_writes_where_botocore_reads_with_unexpanded_values");
    }
    let fake = FakeAws::new();
    let mut env = TestEnv::with_fake(&fake);
    env.write_file(
        "alt/config",
        "[sso-session corp]\nsso_start_url = https://fake.awsapps.com/start\nsso_region = us-east-1\n\n\
         [profile dev]\nsso_session = corp\nsso_account_id = 111111111111\nsso_role_name = Dev\n",
    );
    env.write_config_toml("[[profiles]]\nsource = \"dev\"\ntarget = \"dev-keys\"\n");
    env.sign_in(&fake, "corp", "tok-corp");
    let vars = [
        ("AWS_CONFIG_FILE", "~/alt/config"),
        ("AWS_SHARED_CREDENTIALS_FILE", "${HOME}/alt/credentials"),
    ];
    for (k, v) in vars {
        env.env(k, v);
    }
    let o = env.run(["sync"]);
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let written = env.home().join("alt/credentials");
    assert!(
        std::fs::read_to_string(&written)
            .unwrap()
            .contains("[dev-keys]"),
        "credsync wrote {}",
        written.display()
    );
    assert!(
        !env.credentials_path().exists(),
        "nothing in ~/.aws/credentials"
    );
    assert!(!env.home().join("${HOME}").exists() && !env.home().join("~").exists());
    let served = fake
        .last_credentials("111111111111", "Dev")
        .expect("the fake served credentials");
    let (akid, _, _) = botocore_read_credentials(env.home(), "dev-keys", &vars);
    assert_eq!(akid, served.access_key_id);
}

/// A target named `DEFAULT` is refused before anything is written: configparser reads that
/// section as defaults for every other profile of the credentials file.
#[test]
fn a_default_target_is_refused_with_its_place_and_nothing_is_written() {
    let env = TestEnv::new();
    let user_file = "[static]\naws_access_key_id = AKIASTATIC\naws_secret_access_key = s\n";
    env.write_credentials(user_file);
    let config = env.write_config_toml("[[profiles]]\nsource = \"dev\"\ntarget = \"DEFAULT\"\n");
    let o = env.run(["sync"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "{}:3:10: [[profiles]] entry 1: target = \"DEFAULT\"",
            config.display()
        )),
        "{err}"
    );
    assert_eq!(env.read_credentials(), user_file);
}
