//! `credsync astro setup` end to end, without containers: the real binary, a temp HOME signed in
//! to the fake AWS, and Astro projects as `astro dev init` lays them out (a `Dockerfile`,
//! `.astro/`, `.env`), with and without an override of the user's own.

use crate::support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use support::astro::{self, DOCKERFILE3};
use support::fake_aws::FakeAws;
use support::{TestEnv, output_text};

const AWS_CONFIG: &str = "[sso-session corp]\nsso_start_url = https://fake.awsapps.com/start\nsso_region = us-east-1\n\n[profile dev]\nsso_session = corp\nsso_account_id = 111111111111\nsso_role_name = Dev\nregion = eu-west-1\n";

/// A project's files as `astro dev init` writes the ones credsync reads.
const DOTENV: &str = "# Astro's .env\nAIRFLOW__CORE__TEST_CONNECTION=Enabled";

/// A HOME signed in to `fake` with the AWS config, and an Astro project in it.
fn setup_env(fake: &FakeAws) -> (TestEnv, PathBuf) {
    let env = TestEnv::with_fake(fake);
    env.write_aws_config(AWS_CONFIG);
    env.sign_in(fake, "corp", "tok-corp");
    let project = env.root().join("project");
    fs::create_dir_all(project.join(".astro")).unwrap();
    fs::write(
        project.join(".astro/config.yaml"),
        "project:\n  name: project\n",
    )
    .unwrap();
    fs::write(project.join("Dockerfile"), DOCKERFILE3).unwrap();
    fs::write(project.join(".env"), DOTENV).unwrap();
    (env, project)
}

fn setup(env: &TestEnv, project: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<std::ffi::OsString> = vec!["astro".into(), "setup".into()];
    args.push(project.into());
    args.extend(extra.iter().map(Into::into));
    env.run(args)
}

/// Every regular file under the dirs, with its bytes' SHA-1 (and mode).
fn checksums(dirs: &[&Path]) -> BTreeMap<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    let mut todo: Vec<PathBuf> = dirs.iter().map(|d| d.to_path_buf()).collect();
    while let Some(d) = todo.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let meta = fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                todo.push(p);
            } else if meta.is_file() {
                let bytes = fs::read(&p).unwrap();
                let sum = support::sha1_hex(&String::from_utf8_lossy(&bytes));
                out.insert(
                    p,
                    format!("{sum} {:o} {}", meta.permissions().mode(), bytes.len()),
                );
            }
        }
    }
    out
}

#[test]
fn setup_dry_run_changes_nothing_then_setup_passes_doctor_and_a_second_run_changes_nothing() {
    let fake = FakeAws::new();
    let (env, project) = setup_env(&fake);
    let config_dir = env.home().join(".config");
    let watched = [project.as_path(), env.home()];
    let before = checksums(&watched);

    // --dry-run: the diffs, and not one byte anywhere.
    let o = setup(&env, &project, &["--dry-run"]);
    let t = output_text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert_eq!(
        checksums(&watched),
        before,
        "--dry-run changed a file:\n{t}"
    );
    assert!(!config_dir.exists(), "{t}");
    for needle in [
        "Airflow 3 project (FROM astrocrpublic.azurecr.io/runtime:3.0-2)",
        "+++ b/docker-compose.override.yml\n@@ -0,0 +1,",
        "+  dag-processor:\n+    volumes:\n+      - ${HOME}/.aws:/home/astro/.aws:ro\n",
        "--- a/.env\n+++ b/.env\n",
        "-AIRFLOW__CORE__TEST_CONNECTION=Enabled\n\\ No newline at end of file\n+AIRFLOW__CORE__TEST_CONNECTION=Enabled\n",
        "+AWS_SHARED_CREDENTIALS_FILE=/dev/null\n",
        "+[container]\n+dir = \"~/.aws/credsync\"\n",
    ] {
        assert!(t.contains(needle), "missing {needle:?} in:\n{t}");
    }

    // The real run: config, override and .env written, a sync, and doctor's verdict.
    let o = setup(&env, &project, &[]);
    let t = output_text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("dev -> [dev]: fresh"), "{t}");
    assert!(t.contains(" 0 failed, "), "{t}");
    assert!(t.contains("no daemon is running"), "{t}");
    let dotenv = fs::read_to_string(project.join(".env")).unwrap();
    assert!(dotenv.starts_with(DOTENV), "{dotenv}");
    assert!(dotenv.ends_with("AWS_PROFILE=dev\n"), "{dotenv}");
    let served = fake.last_credentials("111111111111", "Dev").unwrap();
    let json = fs::read_to_string(env.aws_dir().join("credsync/dev.json")).unwrap();
    assert!(json.contains(&served.access_key_id), "{json}");
    assert!(
        !t.contains(&served.secret_access_key),
        "a secret in the output:\n{t}"
    );

    // Doctor on its own agrees.
    let o = env.run(["doctor".as_ref(), "--project".as_ref(), project.as_os_str()]);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));

    // Again: nothing to change, not one byte (no sync either: the view is there).
    let after = checksums(&watched);
    let o = setup(&env, &project, &[]);
    let t = output_text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("nothing to change"), "{t}");
    assert_eq!(
        checksums(&watched),
        after,
        "the second run changed a file:\n{t}"
    );
    let o = setup(&env, &project, &["--dry-run"]);
    assert!(output_text(&o).contains("nothing to change"));
}

/// An override of the user's own, with comments, anchors and services of theirs.
const USER_OVERRIDE: &str = "# my services; do not reorder\nx-common: &common\n  restart: unless-stopped   # keep\n\nservices:\n    # the metadata db for my tests\n    minio:\n        image: minio/minio   # pinned\n        <<: *common\n        environment:\n            - MINIO_ROOT_USER=me\n    mailhog:\n        image: mailhog/mailhog";

#[test]
fn setup_adds_to_a_users_override_without_changing_a_byte_of_it() {
    let fake = FakeAws::new();
    let (env, project) = setup_env(&fake);
    let path = project.join("docker-compose.override.yml");
    fs::write(&path, USER_OVERRIDE).unwrap();
    let o = setup(&env, &project, &[]);
    let t = output_text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    let new = fs::read_to_string(&path).unwrap();
    assert!(
        new.starts_with(USER_OVERRIDE),
        "the user's bytes changed:\n{new}"
    );
    assert!(
        new.ends_with(
            "    triggerer:\n      volumes:\n        - ${HOME}/.aws:/home/astro/.aws:ro\n"
        ),
        "{new}"
    );
    // Real YAML (PyYAML, as docker-compose v1 and podman-compose read it) sees the user's
    // services unchanged and credsync's four added.
    if support::python::python().is_none() {
        return support::python::skip(
            "setup_adds_to_a_users_override_without_changing_a_byte_of_it",
        );
    }
    let old_file = env.root().join("old.yml");
    fs::write(&old_file, USER_OVERRIDE).unwrap();
    let script = "import sys, yaml, json\nold = yaml.safe_load(open(sys.argv[1]).read())\nnew = yaml.safe_load(open(sys.argv[2]).read())\nfor k in old['services']:\n    assert new['services'][k] == old['services'][k], k\nprint(json.dumps(sorted(new['services'])))\n";
    let out = support::python::python_command(script, &[])
        .arg(&old_file)
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        r#"["api-server", "dag-processor", "mailhog", "minio", "scheduler", "triggerer"]"#
    );
}

#[test]
fn setup_prints_the_lines_when_they_would_go_inside_the_users_own() {
    let fake = FakeAws::new();
    let (env, project) = setup_env(&fake);
    let path = project.join("docker-compose.override.yml");
    // The user's scheduler: its volume would go inside their lines.
    let own = "services:\n  scheduler:   # mine\n    environment:\n      - AIRFLOW__X=1\n";
    fs::write(&path, own).unwrap();
    for extra in [&["--dry-run"][..], &[]] {
        let o = setup(&env, &project, extra);
        let t = output_text(&o);
        assert_eq!(o.status.code(), Some(1), "{t}");
        assert_eq!(fs::read_to_string(&path).unwrap(), own, "{t}");
        for needle in [
            "left ",
            "docker-compose.override.yml as it is: it defines scheduler (line 2) already, so the mount goes inside your lines (under `volumes:`), which setup does not change\n",
            "add these lines yourself:\n# added by `credsync astro setup`\nservices:\n",
            "  scheduler:\n    volumes:\n      - ${HOME}/.aws:/home/astro/.aws:ro\n",
            "  triggerer:\n",
        ] {
            assert!(t.contains(needle), "missing {needle:?} in:\n{t}");
        }
        // No temp file left next to it.
        let names: Vec<String> = fs::read_dir(&project)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp")), "{names:?}");
    }
    // The rest was set up: the config and .env.
    let dotenv = fs::read_to_string(project.join(".env")).unwrap();
    assert!(dotenv.contains("AWS_PROFILE=dev\n"), "{dotenv}");
}

#[test]
fn setup_asks_for_a_profile_when_several_could_serve_and_none_is_given() {
    let fake = FakeAws::new();
    let (env, project) = setup_env(&fake);
    env.write_aws_config(&format!(
        "{AWS_CONFIG}\n[profile ops]\nsso_session = corp\nsso_account_id = 222222222222\nsso_role_name = Ops\n"
    ));
    let before = checksums(&[project.as_path(), env.home()]);
    let o = setup(&env, &project, &[]);
    let t = output_text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(
        t.contains("several profiles could serve the project (dev, ops): pass --profile"),
        "{t}"
    );
    assert_eq!(checksums(&[project.as_path(), env.home()]), before);
    let o = setup(&env, &project, &["--profile", "ops", "--dry-run"]);
    let t = output_text(&o);
    assert!(t.contains("+AWS_PROFILE=ops\n"), "{t}");

    // In a terminal (util-linux's `script` gives it one), it asks.
    let mut cmd = env.cmd(["--version"]);
    let line = format!(
        "{} astro setup {} --dry-run",
        support::credsync_bin().display(),
        project.display()
    );
    cmd.env_remove("CREDSYNC_LOG");
    let mut script = std::process::Command::new("script");
    script.args(["-qec", &line, "/dev/null"]);
    script
        .env_clear()
        .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))));
    script.current_dir(env.home());
    let mut child = script
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("util-linux's script");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"2\n").unwrap();
    let o = child.wait_with_output().unwrap();
    let t = output_text(&o);
    assert!(
        t.contains("Which profile should the project's containers use?\r\n  1) dev\r\n  2) ops"),
        "{t}"
    );
    assert!(t.contains("+AWS_PROFILE=ops"), "{t}");
    assert_eq!(checksums(&[project.as_path(), env.home()]), before);
}

#[test]
fn setup_reloads_a_running_daemon_which_then_manages_the_added_profile() {
    let fake = FakeAws::new();
    let (env, project) = setup_env(&fake);
    env.write_aws_config(&format!(
        "{AWS_CONFIG}\n[profile ops]\nsso_session = corp\nsso_account_id = 222222222222\nsso_role_name = Ops\n"
    ));
    env.write_config_toml("[[profiles]]\nsource = \"dev\"\n");
    let daemon = env.daemon(Vec::<String>::new());
    let profiles = |env: &TestEnv| {
        let o = env.run(["status", "--json"]);
        serde_json::from_slice::<serde_json::Value>(&o.stdout)
            .ok()
            .and_then(|v| v["profiles"].as_array().map(Vec::len))
    };
    daemon.expect_within(
        "the daemon answers",
        || profiles(&env) == Some(1),
        std::time::Duration::from_secs(20),
    );
    let o = setup(&env, &project, &["--profile", "ops"]);
    let t = output_text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("reloaded the running daemon"), "{t}");
    assert_eq!(profiles(&env), Some(2), "{t}");
    let config = fs::read_to_string(env.config_toml_path()).unwrap();
    assert!(
        config.starts_with("[[profiles]]\nsource = \"dev\"\n\n# added by `credsync astro setup`"),
        "{config}"
    );
}

#[test]
fn setup_reads_the_engine_from_the_projects_astro_config() {
    let fake = FakeAws::new();
    let (env, project) = setup_env(&fake);
    fs::write(
        project.join(".astro/config.yaml"),
        "project:\n  name: project\ncontainer:\n  binary: podman\n",
    )
    .unwrap();
    let o = setup(&env, &project, &["--dry-run"]);
    let t = output_text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // Rootful Podman keeps uids, as Docker does: nothing to say in the config.
        assert!(t.contains("container engine: rootful Podman ("), "{t}");
        assert!(!t.contains("engine = "), "{t}");
    } else {
        assert!(t.contains("container engine: rootless Podman ("), "{t}");
        assert!(t.contains("+engine = \"podman-rootless\"\n"), "{t}");
    }
}

#[test]
fn setup_on_an_airflow2_project_mounts_the_view_in_scheduler_webserver_and_triggerer() {
    let fake = FakeAws::new();
    let env = TestEnv::with_fake(&fake);
    env.write_aws_config(AWS_CONFIG);
    env.sign_in(&fake, "corp", "tok-corp");
    let project = env.root().join("af2");
    astro::init_project_from(&project, astro::DOCKERFILE2);

    let o = setup(&env, &project, &[]);
    let t = output_text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains(
            "Airflow 2 project (FROM quay.io/astronomer/astro-runtime:12.7.1): services \
             scheduler, webserver, triggerer"
        ),
        "{t}"
    );
    assert!(t.contains(" 0 failed, "), "{t}");
    // Exactly Airflow 2's services, each with the mount, and none of Airflow 3's.
    let over = fs::read_to_string(project.join("docker-compose.override.yml")).unwrap();
    let blocks: String = astro::SERVICES2
        .iter()
        .map(|s| format!("  {s}:\n    volumes:\n      - ${{HOME}}/.aws:/home/astro/.aws:ro\n"))
        .collect();
    assert!(
        over.ends_with(&format!(
            "# added by `credsync astro setup`\nservices:\n{blocks}"
        )),
        "{over}"
    );
    let dotenv = fs::read_to_string(project.join(".env")).unwrap();
    assert!(
        dotenv.ends_with(
            "AWS_CONFIG_FILE=/home/astro/.aws/credsync/config\nAWS_SHARED_CREDENTIALS_FILE=/dev/null\nAWS_PROFILE=dev\n"
        ),
        "{dotenv}"
    );

    // doctor --project reads the same Airflow from the Dockerfile and passes it.
    let o = env.run(["doctor".as_ref(), "--project".as_ref(), project.as_os_str()]);
    let t = output_text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains(
            "ok    Airflow 2 project (FROM quay.io/astronomer/astro-runtime:12.7.1): its services \
             scheduler, webserver, triggerer all mount ~/.aws"
        ),
        "{t}"
    );
    // A second run: nothing to change.
    let before = checksums(&[project.as_path(), env.home()]);
    let o = setup(&env, &project, &[]);
    assert!(
        output_text(&o).contains("nothing to change"),
        "{}",
        output_text(&o)
    );
    assert_eq!(checksums(&[project.as_path(), env.home()]), before);
}

#[test]
fn setup_that_cannot_write_a_project_file_names_what_it_updated_and_leaves_no_partial_file() {
    let test =
        "setup_that_cannot_write_a_project_file_names_what_it_updated_and_leaves_no_partial_file";
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return support::skip(
            test,
            "needs root (a read-only bind mount in a mount namespace)",
        );
    }
    let fake = FakeAws::new();
    let (env, project) = setup_env(&fake);
    let before = checksums(&[project.as_path()]);
    // The project read-only (a bind mount, in a mount namespace of this command only); HOME,
    // where credsync's config goes, writable.
    let p = project.display().to_string();
    let template = env.cmd(["astro", "setup", p.as_str()]);
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["--mount", "sh", "-c"])
        .arg(format!(
            "mount --bind '{p}' '{p}' && mount -o remount,bind,ro '{p}' && exec \"$0\" \"$@\""
        ))
        .arg(template.get_program())
        .args(template.get_args())
        .env_clear()
        .envs(template.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .current_dir(env.home())
        .stdin(std::process::Stdio::null());
    let o = cmd.output().expect("util-linux's unshare");
    let t = output_text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    let cfg = env.config_toml_path();
    for needle in [
        format!("credsync astro setup: cannot write {p}/docker-compose.override.yml: "),
        format!(
            "\nalready updated: {} (each file is replaced whole or not at all). Fix that, then",
            cfg.display()
        ),
        "run `credsync astro setup` again: it adds only what is still missing".to_owned(),
    ] {
        assert!(t.contains(&needle), "missing {needle:?} in:\n{t}");
    }
    assert_eq!(checksums(&[project.as_path()]), before, "{t}");
    let config = fs::read_to_string(&cfg).unwrap();

    // Again, with the project writable: the rest, and the config as it was.
    let o = setup(&env, &project, &[]);
    let t = output_text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(!t.contains(&format!("updated {}", cfg.display())), "{t}");
    assert_eq!(fs::read_to_string(&cfg).unwrap(), config);
    assert!(project.join("docker-compose.override.yml").exists(), "{t}");
    assert!(
        fs::read_to_string(project.join(".env"))
            .unwrap()
            .ends_with("AWS_PROFILE=dev\n")
    );
}

#[test]
fn setup_in_a_directory_that_is_no_astro_project_names_it_and_changes_nothing() {
    let fake = FakeAws::new();
    let env = TestEnv::with_fake(&fake);
    env.write_aws_config(AWS_CONFIG);
    let before = checksums(&[env.home()]);
    // No DIR: the current directory (HOME here), named by its absolute path (as getcwd(3)
    // gives it).
    let o = env.run(["astro", "setup"]);
    let t = output_text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(
        t.contains(&format!(
            "credsync astro setup: {} is not an Astro project (it needs a Dockerfile and .astro/; \
             `astro dev init` makes them)\nnothing was changed",
            fs::canonicalize(env.home()).unwrap().display()
        )),
        "{t}"
    );
    assert_eq!(checksums(&[env.home()]), before);
}

#[test]
fn setup_offers_an_aws_login_profile_whose_keys_the_containers_read_through_the_view() {
    use crate::login_session::{USER, signed_in};
    let fake = FakeAws::new();
    let (env, project) = setup_env(&fake);
    env.write_aws_config(&format!(
        "{AWS_CONFIG}\n[profile me]\nlogin_session = {USER}\nregion = us-east-1\n"
    ));
    signed_in(&env, &fake, std::time::Duration::from_secs(120));

    // A candidate beside the SSO profile, its keys in their own section.
    let o = setup(&env, &project, &[]);
    let t = output_text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(
        t.contains(
            "several profiles could serve the project (dev, me-keys (aws login profile me)): \
             pass --profile"
        ),
        "{t}"
    );

    // Chosen: credsync manages it into [me-keys], the containers read that through the view.
    let o = setup(&env, &project, &["--profile", "me"]);
    let t = output_text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    let config = fs::read_to_string(env.config_toml_path()).unwrap();
    assert!(
        config.contains("[[profiles]]\nsource = \"me\"\ntarget = \"me-keys\"\n"),
        "{config}"
    );
    let dotenv = fs::read_to_string(project.join(".env")).unwrap();
    assert!(dotenv.ends_with("AWS_PROFILE=me-keys\n"), "{dotenv}");
    assert!(t.contains("me -> [me-keys]: fresh"), "{t}");
    assert!(t.contains(" 0 failed, "), "{t}");
    let issued = fake.login_issued();
    assert_eq!(issued.len(), 1, "{issued:?}");
    let view = fs::read_to_string(env.aws_dir().join("credsync/me-keys.json")).unwrap();
    assert!(
        view.contains(&issued[0].credentials.access_key_id),
        "{view}"
    );
    assert!(!t.contains(&issued[0].refresh_issued), "a secret in:\n{t}");

    // Again: nothing to change.
    let o = setup(&env, &project, &["--dry-run"]);
    let t = output_text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("nothing to change"), "{t}");
}
