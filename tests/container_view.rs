//! The container view on the host: a long-lived botocore client re-reads the view after a
//! refresh, while the same keys read from the credentials file stay the first ones.
//!
//! What a real container sees (the mounts, uid 50000, the ACLs, single-file mounts) is tested
//! with a real Docker engine in `tests/container_docker.rs`. This test stays because it adds
//! what the image does not: the newest botocore from PyPI (the image has Debian's), no engine
//! needed, and the contrast with the credentials file's static keys in the same process.
//!
//! Every step is lockstep: the long-lived reader reads when the test sends it a line, after
//! `credsync sync` has returned, so nothing waits on wall-clock time.

use crate::support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use support::TestEnv;
use support::fake_aws::FakeAws;
use support::python::{python, python_command, skip};

const ACCOUNT: &str = "000000100000";
/// Inside botocore's 15-minute advisory window: every `get_frozen_credentials` re-runs
/// `credential_process` (and above its 10-minute mandatory one, so nothing blocks).
const LIFETIME: Duration = Duration::from_secs(14 * 60);

fn aws_config() -> String {
    format!(
        "[sso-session corp]\nsso_start_url = https://fake.awsapps.com/start\nsso_region = us-east-1\n\n\
         [profile dev-sso]\nsso_session = corp\nsso_account_id = {ACCOUNT}\nsso_role_name = Dev\n\
         region = eu-west-1\n"
    )
}

/// A HOME with a logged-in `corp` session, profile `dev-sso` -> target `dev`, and `extra`
/// appended to credsync's config (e.g. a `[container]` section).
fn setup(fake: &FakeAws, extra: &str) -> TestEnv {
    let env = TestEnv::with_fake(fake);
    env.write_aws_config(&aws_config());
    env.write_config_toml(&format!(
        "[[profiles]]\nsource = \"dev-sso\"\ntarget = \"dev\"\n\n{extra}"
    ));
    fake.set_credential_lifetime(LIFETIME);
    env.sign_in(fake, "corp", "tok-corp");
    env
}

/// Runs `credsync sync` and returns the access key the fake served.
fn sync(env: &TestEnv, fake: &FakeAws) -> String {
    let out = env.run(["sync"]);
    assert!(
        out.status.success(),
        "credsync sync failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    fake.last_credentials(ACCOUNT, "Dev")
        .expect("the fake served credentials")
        .access_key_id
}

/// A long-lived child that answers one line of output per line of input.
pub(crate) struct Lockstep {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Lockstep {
    pub(crate) fn spawn(mut cmd: Command) -> Lockstep {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the reader");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Lockstep {
            child,
            stdin,
            stdout,
        }
    }

    /// Asks for one reading; returns the line (panics if the child died).
    pub(crate) fn read(&mut self) -> String {
        writeln!(self.stdin, "go").expect("the reader is gone");
        self.stdin.flush().expect("flush");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read a line");
        assert!(
            !line.is_empty(),
            "the reader exited: {:?}",
            self.child.try_wait()
        );
        line.trim_end().to_owned()
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Lockstep {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Must show 1: a long-lived botocore client gets the new keys, through the view.

const LONG_LIVED_CLIENT: &str = r#"
import sys, os
import boto3, botocore.session
view = boto3.Session(profile_name="dev")
# The same keys through the credentials file (static keys): what the view replaces.
bs = botocore.session.Session(profile="dev")
bs.set_config_variable("config_file", "/dev/null")
bs.set_config_variable("credentials_file", sys.argv[1])
static = boto3.Session(botocore_session=bs)
vc = view.get_credentials()
sc = static.get_credentials()
for _ in sys.stdin:
    print(os.getpid(), vc.method, vc.get_frozen_credentials().access_key,
          sc.get_frozen_credentials().access_key, flush=True)
"#;

#[test]
fn long_lived_botocore_client_gets_new_keys_from_the_view() {
    if python().is_none() {
        return skip("long_lived_botocore_client_gets_new_keys_from_the_view");
    }
    let fake = FakeAws::new();
    let env = setup(&fake, "");
    // path_in_container is the host dir itself, so `cat` works outside a container.
    let view_dir = env.aws_dir().join("credsync");
    env.write_config_toml(&format!(
        "[[profiles]]\nsource = \"dev-sso\"\ntarget = \"dev\"\n\n[container]\ndir = \"{d}\"\n\
         path_in_container = \"{d}\"\n",
        d = view_dir.display()
    ));
    let first = sync(&env, &fake);

    let config = view_dir.join("config");
    let mut cmd = python_command(
        LONG_LIVED_CLIENT,
        &[
            ("HOME", env.home().to_str().unwrap()),
            ("AWS_CONFIG_FILE", config.to_str().unwrap()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        ],
    );
    cmd.arg(env.credentials_path());
    let mut client = Lockstep::spawn(cmd);
    let pid = client.pid().to_string();
    let want = format!("{pid} custom-process {first} {first}");
    assert_eq!(client.read(), want);

    for round in 0..2 {
        let next = sync(&env, &fake);
        assert_ne!(next, first, "the fake serves new keys on each call");
        // Same process, same Session: the view gives the new keys, the credentials file's
        // static keys stay the first ones (botocore never re-reads them).
        assert_eq!(
            client.read(),
            format!("{pid} custom-process {next} {first}"),
            "round {round}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The account of the keys: `aws_account_id` in the credentials file, `AccountId` in the view,
// and botocore returns it from both.

/// Prints, per profile named in argv, how botocore resolved it and the account id of its
/// credentials (`account_id` of the credentials and of the frozen ones).
const ACCOUNT_READER: &str = r#"
import sys
import boto3
for name in sys.argv[1:]:
    c = boto3.Session(profile_name=name).get_credentials()
    print(name, c.method, c.account_id, c.get_frozen_credentials().account_id, flush=True)
"#;

#[test]
fn account_id_reaches_botocore_through_the_file_and_the_view() {
    if python().is_none() {
        return skip("account_id_reaches_botocore_through_the_file_and_the_view");
    }
    let fake = FakeAws::new();
    let env = setup(&fake, "");
    // `dev-sso` knows its account from sso_account_id; `ops` from STS's assumed-role ARN.
    env.write_aws_config(&format!(
        "{}\n[profile ops]\nrole_arn = arn:aws:iam::333333333333:role/Ops\nsource_profile = dev-sso\n",
        aws_config()
    ));
    // A user section keeps its own bytes, account id or not.
    let user = "[mine]\naws_access_key_id = AKIAUSER\naws_secret_access_key = user\n";
    env.write_credentials(user);
    let view_dir = env.aws_dir().join("credsync");
    env.write_config_toml(&format!(
        "[[profiles]]\nsource = \"dev-sso\"\ntarget = \"dev\"\n\n[[profiles]]\nsource = \"ops\"\n\n\
         [container]\ndir = \"{d}\"\npath_in_container = \"{d}\"\n",
        d = view_dir.display()
    ));
    sync(&env, &fake);

    let file = env.read_credentials();
    assert!(file.starts_with(user), "{file}");
    let section = |name: &str| {
        let header = format!("[{name}]\n");
        file.split("\n\n")
            .find(|block| block.contains(&header))
            .expect("section written")
            .to_owned()
    };
    assert!(
        section("dev")
            .lines()
            .any(|l| l == format!("aws_account_id = {ACCOUNT}")),
        "{file}"
    );
    assert!(
        section("ops")
            .lines()
            .any(|l| l == "aws_account_id = 333333333333"),
        "{file}"
    );
    assert_eq!(file.matches("aws_account_id").count(), 2, "{file}");
    for (target, account) in [("dev", ACCOUNT), ("ops", "333333333333")] {
        let json: serde_json::Value = serde_json::from_slice(
            &std::fs::read(view_dir.join(format!("{target}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(json["AccountId"], account, "{target}.json");
    }

    let read = |config: &std::path::Path, credentials: &std::path::Path| {
        let out = python_command(
            ACCOUNT_READER,
            &[
                ("HOME", env.home().to_str().unwrap()),
                ("AWS_CONFIG_FILE", config.to_str().unwrap()),
                ("AWS_SHARED_CREDENTIALS_FILE", credentials.to_str().unwrap()),
            ],
        )
        .arg("dev")
        .arg("ops")
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let dev_null = std::path::Path::new("/dev/null");
    assert_eq!(
        read(dev_null, &env.credentials_path()),
        format!(
            "dev shared-credentials-file {ACCOUNT} {ACCOUNT}\n\
             ops shared-credentials-file 333333333333 333333333333\n"
        )
    );
    assert_eq!(
        read(&view_dir.join("config"), dev_null),
        format!(
            "dev custom-process {ACCOUNT} {ACCOUNT}\n\
             ops custom-process 333333333333 333333333333\n"
        )
    );
}
