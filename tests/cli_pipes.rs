//! Every command behaves in a pipe whose reader has gone (`credsync status --json | head -1`):
//! no panic, nothing on stderr about the pipe, the command's own exit code, and its work done.
//!
//! The child's stdout is the write end of a pipe whose read end is closed before the child
//! starts, so its first write fails with `EPIPE` every time: nothing depends on timing.

use crate::support;

use std::ffi::OsStr;
use std::process::{Output, Stdio};
use std::time::{Duration, SystemTime};

use support::fake_aws::FakeAws;
use support::{TestEnv, botocore_token_json};

const AWS_CONFIG: &str = "[sso-session corp]\nsso_start_url = https://fake.awsapps.com/start\nsso_region = us-east-1\n\n[profile dev]\nsso_session = corp\nsso_account_id = 111111111111\nsso_role_name = Dev\nregion = eu-west-1\n";

/// Runs `credsync ARGS` with stdout a pipe nobody reads any more.
fn run_closed<I, S>(env: &TestEnv, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let (reader, writer) = std::io::pipe().expect("create a pipe");
    drop(reader);
    let mut child = env
        .cmd(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .expect("run credsync");
    let status = child.wait().expect("wait for credsync");
    let mut stderr = Vec::new();
    std::io::Read::read_to_end(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("read stderr");
    Output {
        status,
        stdout: Vec::new(),
        stderr,
    }
}

fn assert_quiet(args: &[&str], closed: &Output, open: &Output) {
    let err = String::from_utf8_lossy(&closed.stderr);
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe") && !err.contains("os error 32"),
        "credsync {args:?} with a closed stdout:\n{err}"
    );
    assert_eq!(
        closed.status.code(),
        open.status.code(),
        "credsync {args:?}: the exit code is the command's own\n{err}"
    );
    assert!(
        !open.stdout.is_empty(),
        "credsync {args:?} prints something when stdout is open (else this proves nothing)"
    );
}

#[test]
fn every_command_exits_quietly_on_a_closed_stdout() {
    let fake = FakeAws::new();
    let env = TestEnv::with_fake(&fake);
    env.write_aws_config(AWS_CONFIG);
    env.write_config_toml("[[profiles]]\nsource = \"dev\"\n");
    fake.add_token("tok-corp");
    env.write_token_cache(
        "corp",
        &botocore_token_json(
            "tok-corp",
            SystemTime::now() + Duration::from_secs(8 * 3600),
            Some(("rt", "cid", "csecret")),
        ),
    );

    // sync: still does its work (the credentials file is written) when nobody reads.
    let closed = run_closed(&env, ["sync"]);
    assert!(
        env.read_credentials().contains("[dev]"),
        "sync wrote the credentials file with a closed stdout"
    );
    let open = env.run(["sync"]);
    assert_quiet(&["sync"], &closed, &open);

    let daemon = env.daemon(Vec::<String>::new());
    daemon.expect_within(
        "profile fresh",
        || env.run(["status"]).status.code() == Some(0),
        Duration::from_secs(20),
    );
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["refresh"],
        &["doctor"],
        &["service", "print"],
        &["--help"],
        &["--version"],
        &["status", "--help"],
    ] {
        let closed = run_closed(&env, args);
        let open = env.run(args);
        assert_quiet(args, &closed, &open);
    }

    // init: its file is written even though what it prints is not read.
    std::fs::remove_file(env.config_toml_path()).unwrap();
    let closed = run_closed(&env, ["init"]);
    assert!(env.config_toml_path().exists(), "init wrote its config");
    std::fs::remove_file(env.config_toml_path()).unwrap();
    let open = env.run(["init"]);
    assert_quiet(&["init"], &closed, &open);
}
