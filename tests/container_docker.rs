//! The Astro scenario in a real Docker container: Debian's docker.io and a local image built by
//! `scripts/docker-here` (python3-boto3, user `astro` uid 50000), `~/.aws` bind-mounted at
//! `/home/astro/.aws` read-only and the `.env` exactly as docs/astro.md gives them, the
//! container running as 50000:50000.
//!
//! - The docs' setup: a long-lived `boto3.Session` in the container gets credentials through
//!   the view and the next ones after each `credsync sync`, same process; the container gets
//!   "permission denied" on `~/.aws/credentials` (it holds the user's long-lived keys), reads it
//!   with `share_credentials_file = true`, and is denied again when that is turned off.
//! - A single-file mount of the credentials file: the atomic write leaves the container on the
//!   old inode; `[write] mode = "in-place"` reaches it.
//! - `credsync doctor --project` on each project gives the verdict the container showed.
//!
//! Short-lived credentials come from the fake AWS; every step is lockstep (the container reads
//! when the test sends it a line, after `credsync sync` returned), so nothing waits on time.

use crate::support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use support::TestEnv;
use support::docker::{BOTO3_KEYS, Docker};
use support::fake_aws::FakeAws;

const ACCOUNT: &str = "000000100000";
/// Inside botocore's 15-minute advisory window: every `get_frozen_credentials` runs
/// `credential_process` again (and above its 10-minute mandatory one, so nothing blocks).
const LIFETIME: Duration = Duration::from_secs(14 * 60);
const PERSONAL_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const PERSONAL: &str = "[personal]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n\
                        aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n";

/// docs/astro.md's own snippets, read from the doc so the test and the doc cannot drift apart:
/// credsync's config (step 1), the first Dockerfile and compose override (step 2), `.env`
/// (step 3).
struct Docs {
    config_toml: String,
    dockerfile: String,
    compose: String,
    dotenv: String,
}

fn docs() -> Docs {
    let md = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/astro.md"))
        .expect("read docs/astro.md");
    let blocks = support::fenced_blocks(&md);
    let first = |info: &str| {
        blocks
            .iter()
            .find(|(i, _)| i == info)
            .map(|(_, b)| b.clone())
            .unwrap_or_else(|| panic!("docs/astro.md has no {info} block"))
    };
    let d = Docs {
        config_toml: first("toml"),
        dockerfile: first("dockerfile"),
        compose: first("yaml"),
        dotenv: first("sh"),
    };
    // The test adds keys to the [container] table: it must be the doc config's last table.
    assert!(
        d.config_toml
            .trim_end()
            .rsplit("\n[")
            .next()
            .unwrap_or("")
            .starts_with("container]"),
        "{}",
        d.config_toml
    );
    d
}

/// The first volume of a compose override, `${HOME}` expanded, for `docker -v`.
fn docs_volume(compose: &str, home: &Path) -> String {
    let line = compose
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("- "))
        .expect("a volume line in the doc's override");
    line.replace("${HOME}", home.to_str().unwrap())
}

/// In the container, per line read: what a long-lived `boto3.Session` (made once, at start,
/// from the environment) returns, what a new Session returns, and what a direct read of
/// `~/.aws/credentials` gives for `[dev]` and `[personal]` (`ERR:<strerror>` when refused).
fn reader() -> String {
    format!(
        "{BOTO3_KEYS}{}",
        r#"
import configparser
creds, err = session_creds()
def from_file(section):
    try:
        cp = configparser.RawConfigParser()
        with open("/home/astro/.aws/credentials") as f:
            cp.read_file(f)
        return cp[section]["aws_access_key_id"]
    except OSError as e:
        return "ERR:" + os.strerror(e.errno)
    except KeyError:
        return "ERR:no section"
for _ in sys.stdin:
    print(json.dumps({
        "uid": os.getuid(), "pid": os.getpid(),
        "method": creds.method if creds else None,
        "long_lived": key(creds, err),
        "new_session": key(*session_creds()),
        "dev": from_file("dev"), "personal": from_file("personal"),
    }), flush=True)
"#
    )
}

fn text(o: &Output) -> String {
    support::output_text(o)
}

/// A HOME with a logged-in `corp` session (`dev-sso` -> target `dev`), the user's own
/// long-lived keys in the credentials file, `~/.aws` and the file closed to others, and an
/// Astro project directory with `compose` and `dotenv`.
fn setup(fake: &FakeAws, compose: &str, dotenv: &str, dockerfile: &str) -> (TestEnv, PathBuf) {
    let env = TestEnv::with_fake(fake);
    env.write_aws_config(
        "[sso-session corp]\nsso_start_url = https://fake.awsapps.com/start\nsso_region = us-east-1\n\n\
         [profile dev-sso]\nsso_session = corp\nsso_account_id = 000000100000\nsso_role_name = Dev\n\
         region = eu-west-1\n\n\
         [profile dev-admin]\nsso_session = corp\nsso_account_id = 000000100000\nsso_role_name = Dev\n\
         region = eu-west-1\n",
    );
    fake.set_credential_lifetime(LIFETIME);
    env.sign_in(fake, "corp", "tok-corp");
    env.write_credentials(PERSONAL);
    fs::set_permissions(env.credentials_path(), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(env.aws_dir(), fs::Permissions::from_mode(0o700)).unwrap();
    let project = env.root().join("astro-project");
    fs::create_dir_all(&project).unwrap();
    fs::write(project.join("docker-compose.override.yml"), compose).unwrap();
    fs::write(project.join(".env"), dotenv).unwrap();
    fs::write(project.join("Dockerfile"), dockerfile).unwrap();
    (env, project)
}

fn sync(env: &TestEnv, fake: &FakeAws) -> String {
    env.sync_served_key(fake, ACCOUNT)
}

/// `credsync doctor --project`: (exit success, output).
fn doctor_project(env: &TestEnv, project: &Path) -> (bool, String) {
    let out = env.run(["doctor".as_ref(), "--project".as_ref(), project.as_os_str()]);
    (out.status.success(), text(&out))
}

/// `--env-file` of the project's `.env` and the user, as Astro's compose runs the services.
fn astro_args(project: &Path) -> Vec<String> {
    vec![
        "-u".into(),
        "50000:50000".into(),
        "--env-file".into(),
        project.join(".env").display().to_string(),
    ]
}

#[test]
fn docs_setup_long_lived_session_refreshes_through_the_view_and_long_lived_keys_stay_private() {
    let test =
        "docs_setup_long_lived_session_refreshes_through_the_view_and_long_lived_keys_stay_private";
    let Some(docker) = Docker::get(test) else {
        return;
    };
    let d = docs();
    let fake = FakeAws::new();
    let (env, project) = setup(&fake, &d.compose, &d.dotenv, &d.dockerfile);
    env.write_config_toml(&d.config_toml);
    let first = sync(&env, &fake);

    let mut args = astro_args(&project);
    args.extend(["-v".to_owned(), docs_volume(&d.compose, env.home())]);
    let mut ctr = docker.spawn(&args, &reader());
    let r = ctr.read_json();
    let pid = r["pid"].clone();
    assert_eq!(r["uid"], 50000);
    assert_eq!(r["method"], "custom-process", "{r}");
    assert_eq!(r["long_lived"], first.as_str(), "{r}");
    // Least privilege: the user's long-lived keys are out of reach.
    assert_eq!(r["personal"], "ERR:Permission denied", "{r}");
    assert_eq!(r["dev"], "ERR:Permission denied", "{r}");

    for round in 0..2 {
        let next = sync(&env, &fake);
        assert_ne!(next, first);
        let r = ctr.read_json();
        assert_eq!(r["pid"], pid, "same process: no restart");
        assert_eq!(r["long_lived"], next.as_str(), "round {round}: {r}");
        assert_eq!(r["personal"], "ERR:Permission denied", "{r}");
    }
    let (ok, out) = doctor_project(&env, &project);
    assert!(
        ok && !out.contains("\nfail"),
        "the container worked; doctor agrees:\n{out}"
    );

    // Sharing the credentials file is the explicit choice: then the container reads it.
    env.write_config_toml(&format!("{}share_credentials_file = true\n", d.config_toml));
    let shared = sync(&env, &fake);
    let r = ctr.read_json();
    assert_eq!(r["dev"], shared.as_str(), "{r}");
    assert_eq!(r["personal"], PERSONAL_KEY, "{r}");
    assert_eq!(r["long_lived"], shared.as_str(), "{r}");

    // Switching back takes the access away again, at the next write.
    env.write_config_toml(&d.config_toml);
    let last = sync(&env, &fake);
    let r = ctr.read_json();
    assert_eq!(r["personal"], "ERR:Permission denied", "{r}");
    assert_eq!(r["dev"], "ERR:Permission denied", "{r}");
    assert_eq!(r["long_lived"], last.as_str(), "the view still works: {r}");
    assert_eq!(r["pid"], pid);
}

#[test]
fn docs_setup_without_the_acl_gets_no_credentials_and_doctor_says_so() {
    let test = "docs_setup_without_the_acl_gets_no_credentials_and_doctor_says_so";
    let Some(docker) = Docker::get(test) else {
        return;
    };
    let d = docs();
    let fake = FakeAws::new();
    let (env, project) = setup(&fake, &d.compose, &d.dotenv, &d.dockerfile);
    // The docs' config without `uid`: the 0600 view is closed to uid 50000.
    let without_uid: String = d
        .config_toml
        .lines()
        .filter(|l| !l.starts_with("uid"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(without_uid, d.config_toml);
    env.write_config_toml(&without_uid);
    sync(&env, &fake);
    let mut args = astro_args(&project);
    args.extend(["-v".to_owned(), docs_volume(&d.compose, env.home())]);
    let mut ctr = docker.spawn(&args, &reader());
    let r = ctr.read_json();
    // boto3 gets no credentials at all: the view's config is unreadable, so the profile is
    // not even found.
    let got = r["long_lived"].as_str().unwrap_or_default();
    assert!(got == "NONE" || got.starts_with("ERR:"), "{r}");
    let (ok, out) = doctor_project(&env, &project);
    assert!(
        !ok && out.contains("uid 50000"),
        "the container failed; doctor agrees:\n{out}"
    );
}

#[test]
fn single_file_mount_sees_in_place_writes_but_not_atomic_ones() {
    let test = "single_file_mount_sees_in_place_writes_but_not_atomic_ones";
    let Some(docker) = Docker::get(test) else {
        return;
    };
    let d = docs();
    // The doc's override with the single-file mount its trap section warns about.
    let compose = d.compose.replace(
        "${HOME}/.aws:/home/astro/.aws:ro",
        "${HOME}/.aws/credentials:/home/astro/.aws/credentials:ro",
    );
    assert_ne!(compose, d.compose);
    for (mode, reaches) in [("atomic", false), ("in-place", true)] {
        let fake = FakeAws::new();
        let (env, project) = setup(&fake, &compose, "AWS_PROFILE=dev\n", &d.dockerfile);
        // The container reads the credentials file itself here: it must be shared.
        env.write_config_toml(&format!(
            "[write]\nmode = \"{mode}\"\n\n{}share_credentials_file = true\n",
            d.config_toml
        ));
        let first = sync(&env, &fake);
        let mut args = astro_args(&project);
        args.extend(["-v".to_owned(), docs_volume(&compose, env.home())]);
        let mut ctr = docker.spawn(&args, &reader());
        let r = ctr.read_json();
        assert_eq!(r["dev"], first.as_str(), "{mode}: {r}");
        assert_eq!(r["new_session"], first.as_str(), "{mode}: {r}");

        let next = sync(&env, &fake);
        assert_ne!(next, first);
        assert!(env.read_credentials().contains(&next), "{mode}");
        let r = ctr.read_json();
        let (ok, out) = doctor_project(&env, &project);
        if reaches {
            assert_eq!(
                r["dev"],
                next.as_str(),
                "{mode}: the same inode was rewritten: {r}"
            );
            assert_eq!(r["new_session"], next.as_str(), "{mode}: {r}");
            assert!(
                !out.contains("inode") || !out.contains("\nfail"),
                "{mode}: the container saw the new keys; doctor must not fail the mount:\n{out}"
            );
        } else {
            assert_eq!(
                r["dev"],
                first.as_str(),
                "{mode}: the mount pins the old inode: {r}"
            );
            assert_eq!(r["new_session"], first.as_str(), "{mode}: {r}");
            assert!(
                !ok && out.contains("single file"),
                "{mode}: the container kept the old keys; doctor must fail the mount:\n{out}"
            );
        }
    }
}
