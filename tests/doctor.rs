//! `credsync doctor`, `credsync doctor --project DIR` and `credsync init` end to end: the real
//! binary, a temp HOME, fixture Astro projects, and the fake AWS for the daemon.

use crate::support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use support::fake_aws::FakeAws;
use support::{TestEnv, botocore_token_json};

const HOUR: Duration = Duration::from_secs(3600);

const AWS_CONFIG: &str = "[sso-session corp]\nsso_start_url = https://fake.awsapps.com/start\nsso_region = us-east-1\n\n[profile dev]\nsso_session = corp\nsso_account_id = 111111111111\nsso_role_name = Dev\nregion = eu-west-1\n";

const VIEW_CONFIG: &str = "[profile dev]\nregion = eu-west-1\ncredential_process = cat /home/astro/.aws/credsync/dev.json\n";

const GOOD_COMPOSE: &str = "# astro dev start layers this over its own compose file\nservices:\n  scheduler:\n    volumes:\n      - ~/.aws:/home/astro/.aws:ro\n  webserver:\n    volumes:\n      - ~/.aws:/home/astro/.aws:ro\n  triggerer:\n    volumes:\n      - ~/.aws:/home/astro/.aws:ro\n";

const GOOD_ENV: &str = "AWS_CONFIG_FILE=/home/astro/.aws/credsync/config\nAWS_SHARED_CREDENTIALS_FILE=/dev/null\nAWS_PROFILE=dev\n";

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// Grants uid 50000 read access with an ACL when the filesystem has them (else mode 0644).
/// Returns whether an ACL was set.
fn grant_50000(p: &Path) -> bool {
    let acl = Command::new("setfacl")
        .args(["-m", "u:50000:r"])
        .arg(p)
        .output()
        .is_ok_and(|o| o.status.success());
    if !acl {
        chmod(p, 0o644);
    }
    acl
}

/// A HOME with the host's AWS config, a credsync config (`container` is its `[container]`
/// table), the view as credsync writes it (`dev.json` 0600), and a project directory.
struct Fixture {
    env: TestEnv,
    project: PathBuf,
}

impl Fixture {
    fn new(container: &str) -> Fixture {
        let env = TestEnv::new();
        env.write_aws_config(AWS_CONFIG);
        chmod(&env.aws_config_path(), 0o644);
        env.write_config_toml(&format!(
            "[[profiles]]\nsource = \"dev\"\n\n[container]\n{container}"
        ));
        env.write_credentials(
            "# managed by credsync; expires 2030-01-01T00:00:00Z\n[dev]\naws_access_key_id = AKIAFAKE\naws_secret_access_key = fake\naws_session_token = fake\n",
        );
        chmod(&env.credentials_path(), 0o600);
        let view = env.aws_dir().join("credsync");
        fs::create_dir_all(&view).unwrap();
        chmod(&env.aws_dir(), 0o755);
        chmod(&view, 0o755);
        fs::write(view.join("config"), VIEW_CONFIG).unwrap();
        chmod(&view.join("config"), 0o644);
        fs::write(view.join("dev.json"), "{\"Version\":1}").unwrap();
        chmod(&view.join("dev.json"), 0o600);
        let project = env.root().join("astro-project");
        fs::create_dir_all(&project).unwrap();
        Fixture { env, project }
    }

    fn view_file(&self, name: &str) -> PathBuf {
        self.env.aws_dir().join("credsync").join(name)
    }

    fn project(&self, compose: &str, dotenv: &str) -> &Self {
        fs::write(self.project.join("docker-compose.override.yml"), compose).unwrap();
        fs::write(self.project.join(".env"), dotenv).unwrap();
        self
    }

    fn doctor(&self) -> Output {
        self.env.run([
            OsArg::from("doctor"),
            "--project".into(),
            self.project.clone().into(),
        ])
    }
}

type OsArg = std::ffi::OsString;

/// Asserts exit 1 and that every needle is in the output.
fn assert_breaks(o: &Output, needles: &[&str]) {
    let t = text(o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    for n in needles {
        assert!(t.contains(n), "missing {n:?} in:\n{t}");
    }
}

#[test]
fn a_correct_project_passes() {
    let f = Fixture::new("uid = 50000\n");
    grant_50000(&f.view_file("dev.json"));
    let o = f.project(GOOD_COMPOSE, GOOD_ENV).doctor();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains("ok    mount ~/.aws:/home/astro/.aws:ro: directory, read-only"),
        "{t}"
    );
    assert!(t.contains("table row 3"), "{t}");
    assert!(!t.contains("fail  ") && !t.contains("warn  "), "{t}");
}

#[test]
fn a_single_file_mount_of_the_credentials_file_fails() {
    let f = Fixture::new("uid = 50000\n");
    grant_50000(&f.view_file("dev.json"));
    let compose =
        format!("{GOOD_COMPOSE}      - ~/.aws/credentials:/home/astro/.aws/credentials\n");
    let o = f.project(&compose, GOOD_ENV).doctor();
    assert_breaks(
        &o,
        &[
            "mount ~/.aws/credentials:/home/astro/.aws/credentials: single file",
            "a single-file bind mount pins the inode; mount the directory instead:",
            "- ~/.aws:/home/astro/.aws:ro",
            "[write] mode = \"in-place\"",
            "[triggerer]",
        ],
    );
}

#[test]
fn a_view_directory_no_mount_reaches_fails() {
    let f = Fixture::new("dir = \"~/credsync-view\"\nuid = 50000\n");
    let o = f.project(GOOD_COMPOSE, GOOD_ENV).doctor();
    assert_breaks(
        &o,
        &[
            "the container view ~/credsync-view is not reached by any mount",
            "- ~/credsync-view:/home/astro/.aws/credsync:ro",
        ],
    );
}

#[test]
fn env_paths_outside_the_mount_fail() {
    let f = Fixture::new("uid = 50000\n");
    grant_50000(&f.view_file("dev.json"));
    let o = f
        .project(
            GOOD_COMPOSE,
            "AWS_CONFIG_FILE=/usr/local/airflow/aws/config\nAWS_SHARED_CREDENTIALS_FILE=/usr/local/airflow/aws/credentials\nAWS_PROFILE=dev\n",
        )
        .doctor();
    assert_breaks(
        &o,
        &[
            "AWS_CONFIG_FILE=/usr/local/airflow/aws/config (from .env) is outside every mount",
            "AWS_SHARED_CREDENTIALS_FILE=/usr/local/airflow/aws/credentials (from .env) is outside every mount",
            "AWS_CONFIG_FILE=/home/astro/.aws/credsync/config",
            "AWS_SHARED_CREDENTIALS_FILE=/dev/null",
        ],
    );
    // Never a file credsync does not write.
    assert!(!text(&o).contains("credsync/credentials"), "{}", text(&o));
}

#[test]
fn an_sso_keyed_profile_is_reported_with_the_view_to_use() {
    // The container reads the host's config, where `dev` has sso_* keys: botocore resolves it
    // through SSO with the mounted token cache (0600, as the AWS CLI writes it).
    let f = Fixture::new("uid = 50000\n");
    let token = f.env.write_token_cache(
        "corp",
        &botocore_token_json("tok", SystemTime::now() + 8 * HOUR, None),
    );
    chmod(&token, 0o600);
    chmod(&f.env.sso_cache_dir(), 0o755);
    chmod(&f.env.aws_dir().join("sso"), 0o755);
    let o = f.project(GOOD_COMPOSE, "AWS_PROFILE=dev\n").doctor();
    assert_breaks(
        &o,
        &[
            "warn  profile dev has sso_* keys in ~/.aws/config: botocore in the container resolves it through SSO",
            "table row 1",
            "use the view (row 3), in .env:",
            "AWS_CONFIG_FILE=/home/astro/.aws/credsync/config",
            // What breaks it on native Linux Docker: the token cache is 0600.
            "uid 50000 (the container's user) cannot read",
            "setfacl -m u:50000:r",
        ],
    );
}

#[test]
fn a_file_uid_50000_cannot_read_fails_with_the_config_fix() {
    let f = Fixture::new("");
    let o = f.project(GOOD_COMPOSE, GOOD_ENV).doctor();
    let json = f.view_file("dev.json");
    assert_breaks(
        &o,
        &[
            &format!(
                "uid 50000 (the container's user) cannot read {} (owner uid",
                json.display()
            ),
            "mode 0600, no ACL)",
            "[container]",
            "uid = 50000",
            "credsync reload",
        ],
    );
    // Granting it with an ACL (what credsync does with [container] uid) clears it.
    if grant_50000(&json) {
        let o = f.doctor();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }
}

#[test]
fn a_project_without_an_override_gets_the_file_to_create() {
    let f = Fixture::new("uid = 50000\n");
    let o = f.doctor();
    assert_breaks(
        &o,
        &[
            "has no docker-compose.override.yml",
            "services:\n",
            "- ~/.aws:/home/astro/.aws:ro",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Plain doctor.

fn sso_setup(fake: &FakeAws, token_expires: SystemTime, refreshable: bool) -> TestEnv {
    let env = TestEnv::with_fake(fake);
    env.write_aws_config(AWS_CONFIG);
    env.write_config_toml("[[profiles]]\nsource = \"dev\"\n");
    fake.add_token("tok-corp");
    let refresh = refreshable.then_some(("rt", "cid", "csecret"));
    env.write_token_cache(
        "corp",
        &botocore_token_json("tok-corp", token_expires, refresh),
    );
    env
}

#[test]
fn doctor_on_a_good_setup_with_a_running_daemon_is_ok() {
    let fake = FakeAws::new();
    let env = sso_setup(&fake, SystemTime::now() + 8 * HOUR, true);
    let daemon = env.daemon(Vec::<String>::new());
    daemon.expect_within(
        "profile fresh",
        || env.run(["status"]).status.code() == Some(0),
        Duration::from_secs(20),
    );
    let o = env.run(["doctor"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    for needle in [
        "ok    credsync config: /",
        "ok    profile dev -> [dev]: resolves through SSO (sso-session corp)",
        "ok    SSO token of sso-session corp: valid for ",
        "refreshable",
        "ok    credentials file ",
        "mode 0600",
        &format!("ok    daemon: running (pid {}", daemon.pid()),
        "1 of 1 profile fresh",
        // No service in a temp HOME: a warning with the command that installs it.
        "warn  service: not installed",
        "fix: run `credsync service install`",
    ] {
        assert!(t.contains(needle), "missing {needle:?} in:\n{t}");
    }
    assert!(!t.contains("fail  "), "{t}");
}

#[test]
fn doctor_with_an_expired_token_gives_the_login_command() {
    let fake = FakeAws::new();
    let env = sso_setup(&fake, SystemTime::now() - HOUR, false);
    let o = env.run(["doctor"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("fail  SSO token of sso-session corp: expired and cannot be refreshed"),
        "{t}"
    );
    assert!(
        t.contains("fix: run `credsync login --sso-session corp`"),
        "{t}"
    );
    assert!(t.contains("fail  daemon: not reachable"), "{t}");
}

#[test]
fn doctor_checks_an_aws_login_sessions_cache_entry_where_aws_login_writes_it() {
    use crate::login_session::{USER, entry_path, setup, signed_in};
    let fake = FakeAws::new();
    let env = setup(&fake, "");
    let who = format!("aws login session {USER}");
    // Not signed in: the command that signs in.
    let t = text(&env.run(["doctor"]));
    let entry = entry_path(&env);
    assert!(
        t.contains(&format!(
            "fail  {who}: not signed in (no cache entry at {})",
            entry.display()
        )),
        "{t}"
    );
    assert!(t.contains("fix: run `aws login --profile dev`"), "{t}");
    // Signed in: valid and renewable; no secret of the entry shown.
    signed_in(&env, &fake, 10 * Duration::from_secs(60));
    let t = text(&env.run(["doctor"]));
    assert!(
        t.contains(&format!("ok    {who}: credentials valid for ")),
        "{t}"
    );
    let json = fs::read_to_string(&entry).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    for secret in ["refreshToken", "dpopKey"] {
        let value = v[secret].as_str().unwrap();
        assert!(!t.contains(value), "the {secret} in:\n{t}");
    }
    // An entry without its refresh token: sign in again.
    let mut broken = v.clone();
    broken.as_object_mut().unwrap().remove("refreshToken");
    fs::write(&entry, broken.to_string()).unwrap();
    let o = env.run(["doctor"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains(&format!(
            "fail  {who}: no refreshToken in its cache entry {}, so it cannot be renewed",
            entry.display()
        )),
        "{t}"
    );
    assert!(
        t.contains("fix: sign in again: run `aws login --profile dev`"),
        "{t}"
    );
}

#[test]
fn doctor_reports_a_config_that_does_not_load() {
    let env = TestEnv::new();
    env.write_config_toml("[refresh]\nmin_remaining = \"soon\"\n");
    let o = env.run(["doctor"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("fail  credsync config does not load: "), "{t}");
    assert!(t.contains("config.toml:2:17"), "{t}");
}

// ---------------------------------------------------------------------------------------------
// init.

#[test]
fn init_writes_a_config_sync_accepts_and_never_overwrites() {
    let fake = FakeAws::new();
    let env = TestEnv::with_fake(&fake);
    env.write_aws_config(&format!(
        "{AWS_CONFIG}\n[profile ops]\nrole_arn = arn:aws:iam::222222222222:role/Ops\nsource_profile = dev\n\n[profile plain]\nregion = us-east-1\n"
    ));
    let o = env.run(["init"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains(&format!("wrote {}", env.config_toml_path().display())),
        "{t}"
    );
    let written = fs::read_to_string(env.config_toml_path()).unwrap();
    assert!(
        written.contains("[[profiles]]\nsource = \"dev\""),
        "{written}"
    );
    assert!(
        written.contains("[[profiles]]\nsource = \"ops\""),
        "{written}"
    );
    assert!(written.contains("# source = \"plain\""), "{written}");

    let again = env.run(["init"]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(text(&again).contains("already exists; not overwriting it"));
    assert_eq!(fs::read_to_string(env.config_toml_path()).unwrap(), written);

    fake.add_token("tok-corp");
    env.write_token_cache(
        "corp",
        &botocore_token_json("tok-corp", SystemTime::now() + 8 * HOUR, None),
    );
    let sync = env.run(["sync"]);
    assert_eq!(sync.status.code(), Some(0), "{}", text(&sync));
    let creds = env.read_credentials();
    assert!(
        creds.contains("[dev]") && creds.contains("[ops]"),
        "{creds}"
    );
}

/// docs/astro.md, step by step, as a user follows it: its credsync config (with an SSO profile
/// `dev-admin` in ~/.aws/config, logged in), `credsync sync`, then for each Airflow version the
/// doc shows, a project with its Dockerfile, compose override and `.env`. `doctor --project`
/// passes each with 0 failed and 0 warned. The snippets are read from the doc itself, so the
/// doc and this test cannot drift apart.
#[test]
fn the_project_docs_astro_md_builds_passes_doctor() {
    let md = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/astro.md"))
        .expect("read docs/astro.md");
    let blocks = support::fenced_blocks(&md);
    let of = |info: &str| -> Vec<&str> {
        blocks
            .iter()
            .filter(|(i, _)| i == info)
            .map(|(_, b)| b.as_str())
            .collect()
    };
    let config_toml = of("toml")[0];
    let dotenv = of("sh")[0];
    // Each Dockerfile with the compose override that follows it.
    let projects: Vec<(&str, &str)> = blocks
        .iter()
        .enumerate()
        .filter(|(_, (info, _))| info == "dockerfile")
        .filter_map(|(i, (_, dockerfile))| {
            let compose = blocks[i + 1..].iter().find(|(info, _)| info == "yaml")?;
            Some((dockerfile.as_str(), compose.1.as_str()))
        })
        .collect();
    assert_eq!(
        projects.len(),
        2,
        "docs/astro.md shows Airflow 3 and Airflow 2"
    );
    assert!(
        config_toml.contains("source = \"dev-admin\""),
        "{config_toml}"
    );
    assert!(
        dotenv.contains("AWS_SHARED_CREDENTIALS_FILE=/dev/null"),
        "{dotenv}"
    );

    // Step 1: credsync's config as the doc gives it, and a logged-in SSO profile `dev-admin`.
    let fake = FakeAws::new();
    let env = TestEnv::with_fake(&fake);
    env.write_aws_config(
        "[sso-session corp]\nsso_start_url = https://fake.awsapps.com/start\nsso_region = us-east-1\n\n\
         [profile dev-admin]\nsso_session = corp\nsso_account_id = 111111111111\n\
         sso_role_name = Admin\nregion = eu-west-1\n",
    );
    env.write_config_toml(config_toml);
    fake.add_token("tok-corp");
    env.write_token_cache(
        "corp",
        &botocore_token_json("tok-corp", SystemTime::now() + 8 * HOUR, None),
    );
    let o = env.run(["sync"]);
    assert!(o.status.success(), "credsync sync: {}", text(&o));
    assert!(
        fs::read_to_string(env.aws_dir().join("credsync/config"))
            .unwrap()
            .contains("credential_process = cat /home/astro/.aws/credsync/dev.json"),
        "the view as the doc describes it"
    );

    // Steps 2 and 3, for each Airflow version.
    for (dockerfile, compose) in projects {
        let project = env.root().join(format!("project-{}", dockerfile.len()));
        fs::create_dir_all(&project).unwrap();
        fs::write(project.join("Dockerfile"), dockerfile).unwrap();
        fs::write(project.join("docker-compose.override.yml"), compose).unwrap();
        fs::write(project.join(".env"), dotenv).unwrap();
        let mut args = vec![OsArg::from("doctor"), "--project".into()];
        args.push(project.clone().into());
        let o = env.run(args);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(0), "{dockerfile}{t}");
        assert!(t.contains(": 0 failed, 0 warned"), "{dockerfile}{t}");
        let version = if dockerfile.contains("runtime:3.") {
            3
        } else {
            2
        };
        assert!(
            t.contains(&format!("ok    Airflow {version} project (FROM ")),
            "{dockerfile}{t}"
        );
        assert!(t.contains("table row 3"), "{t}");
        assert!(
            t.contains("AWS_SHARED_CREDENTIALS_FILE=/dev/null: no credentials file"),
            "{t}"
        );
    }
}
