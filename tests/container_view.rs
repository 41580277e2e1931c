//! The container view and the container's view of the files (issue 5): a long-lived botocore
//! client re-reads the view after a refresh; a reader as uid 50000 in a mount namespace that
//! bind-mounts `~/.aws` (as Docker does) reads the view and the credentials file; and a
//! bind-mounted single file sees in-place rewrites but not atomic ones.
//!
//! Every step is lockstep: the long-lived reader reads when the test sends it a line, after
//! `credsync sync` has returned, so nothing waits on wall-clock time. The mount tests need
//! root (`unshare -m`, `setpriv`); they fail under CI without it and skip loudly elsewhere.

mod support;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, SystemTime};

use support::fake_aws::FakeAws;
use support::python::{python, python_command, skip};
use support::{TestEnv, botocore_token_json};

const ACCOUNT: &str = "000000100000";
/// Inside botocore's 15-minute advisory window: every `get_frozen_credentials` re-runs
/// `credential_process` (and above its 10-minute mandatory one, so nothing blocks).
const LIFETIME: Duration = Duration::from_secs(14 * 60);
const READER_UID: u32 = 50000;

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
    fake.add_token("tok-corp");
    fake.set_credential_lifetime(LIFETIME);
    env.write_token_cache(
        "corp",
        &botocore_token_json(
            "tok-corp",
            SystemTime::now() + Duration::from_secs(8 * 3600),
            None,
        ),
    );
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
struct Lockstep {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Lockstep {
    fn spawn(mut cmd: Command) -> Lockstep {
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
    fn read(&mut self) -> String {
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

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Lockstep {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `false` (after a loud skip line) when the mount tests cannot run; panics under CI.
fn can_mount(test: &str) -> bool {
    let ok = is_root() && Path::new("/usr/bin/python3").exists();
    if !ok {
        assert!(
            !support::python::in_ci(),
            "{test} needs root and /usr/bin/python3 under CI"
        );
        eprintln!("SKIPPED {test}: needs root (unshare -m, setpriv) and /usr/bin/python3");
    }
    ok
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
// Must show 2 and 3: a reader in a mount namespace, like a container.

/// Reads, on each input line, the files given as `name=path` arguments and prints one JSON
/// object: per name, the access key found there. `config` entries run the profile's
/// `credential_process` (as botocore would), `credentials` entries parse the INI file, `json`
/// entries parse a credential_process file. Errors are reported as `ERR:<errno name>`.
const NAMESPACE_READER: &str = r#"
import configparser, json, os, shlex, subprocess, sys
def read(kind, path):
    try:
        if kind == "json":
            with open(path) as f:
                return json.load(f)["AccessKeyId"]
        cp = configparser.RawConfigParser()
        with open(path) as f:
            cp.read_file(f)
        if kind == "credentials":
            return cp["dev"]["aws_access_key_id"]
        cmd = shlex.split(cp["profile dev"]["credential_process"])
        out = subprocess.run(cmd, check=True, capture_output=True).stdout
        return json.loads(out)["AccessKeyId"]
    except OSError as e:
        return "ERR:" + (os.strerror(e.errno) if e.errno else str(e))
    except subprocess.CalledProcessError as e:
        return "ERR:" + e.stderr.decode().strip()
for _ in sys.stdin:
    out = {"uid": os.getuid()}
    for arg in sys.argv[1:]:
        name, kind, path = arg.split("=", 2)
        out[name] = read(kind, path)
    print(json.dumps(out, sort_keys=True), flush=True)
"#;

/// Starts the reader in a new mount namespace where `source` is bind-mounted on `target`
/// (created first), as `uid` (via `setpriv`) when given. `files` are `name=kind=path`.
fn reader_in_namespace(
    source: &Path,
    target: &Path,
    uid: Option<u32>,
    files: &[String],
) -> Lockstep {
    let mut script = String::from("set -e\nmount --bind \"$1\" \"$2\"\nshift 2\n");
    match uid {
        Some(uid) => script.push_str(&format!(
            "exec setpriv --reuid={uid} --regid={uid} --clear-groups /usr/bin/python3 -c \"$@\"\n"
        )),
        None => script.push_str("exec /usr/bin/python3 -c \"$@\"\n"),
    }
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c", &script, "sh"])
        .arg(source)
        .arg(target)
        .arg(NAMESPACE_READER)
        .args(files)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    Lockstep::spawn(cmd)
}

fn json_line(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("reader printed {line:?}: {e}"))
}

/// A directory tree under the test's temp dir that uid 50000 can walk: the temp dir itself is
/// `0700` (tempfile), so open it for search; `home/astro/.aws` is the mount point.
fn container_root(env: &TestEnv) -> PathBuf {
    fs::set_permissions(env.root(), fs::Permissions::from_mode(0o711)).unwrap();
    let astro = env.root().join("ctr/home/astro");
    fs::create_dir_all(astro.join(".aws")).unwrap();
    for d in ["ctr", "ctr/home", "ctr/home/astro"] {
        fs::set_permissions(env.root().join(d), fs::Permissions::from_mode(0o755)).unwrap();
    }
    astro
}

#[test]
fn uid_50000_reads_the_view_and_credentials_through_a_directory_mount() {
    if !can_mount("uid_50000_reads_the_view_and_credentials_through_a_directory_mount") {
        return;
    }
    let fake = FakeAws::new();
    let env = setup(&fake, "");
    let astro = container_root(&env);
    let in_ctr = astro.join(".aws");
    env.write_config_toml(&format!(
        "[[profiles]]\nsource = \"dev-sso\"\ntarget = \"dev\"\n\n[container]\n\
         dir = \"~/.aws/credsync\"\npath_in_container = \"{}/credsync\"\nuid = {READER_UID}\n",
        in_ctr.display()
    ));
    // The host's ~/.aws as users often have it: closed to others. Only credsync's ACLs let
    // uid 50000 in.
    fs::set_permissions(env.aws_dir(), fs::Permissions::from_mode(0o700)).unwrap();
    let first = sync(&env, &fake);

    let files = [
        format!("view=json={}/credsync/dev.json", in_ctr.display()),
        format!("config=config={}/credsync/config", in_ctr.display()),
        format!("credentials=credentials={}/credentials", in_ctr.display()),
    ];
    let mut reader = reader_in_namespace(&env.aws_dir(), &in_ctr, Some(READER_UID), &files);
    let expect = |akid: &str| serde_json::json!({"uid": READER_UID, "view": akid, "config": akid, "credentials": akid});
    assert_eq!(json_line(&reader.read()), expect(&first));

    for _ in 0..2 {
        let next = sync(&env, &fake);
        assert_ne!(next, first);
        assert_eq!(json_line(&reader.read()), expect(&next));
    }

    // Without the ACLs the same reader is refused: the test can tell.
    let status = Command::new("setfacl")
        .args(["-b"])
        .arg(env.credentials_path())
        .status()
        .expect("setfacl (apt-get install acl)");
    assert!(status.success());
    let line = json_line(&reader.read());
    assert_eq!(line["credentials"], "ERR:Permission denied", "{line}");
}

#[test]
fn single_file_mount_sees_in_place_writes_but_not_atomic_ones() {
    if !can_mount("single_file_mount_sees_in_place_writes_but_not_atomic_ones") {
        return;
    }
    for (mode, reaches) in [("atomic", false), ("in-place", true)] {
        let fake = FakeAws::new();
        let env = setup(&fake, &format!("[write]\nmode = \"{mode}\"\n"));
        let first = sync(&env, &fake);
        let mount_point = env.root().join("credentials-in-container");
        fs::write(&mount_point, "").unwrap();
        let files = [format!("credentials=credentials={}", mount_point.display())];
        let mut reader = reader_in_namespace(&env.credentials_path(), &mount_point, None, &files);
        assert_eq!(
            json_line(&reader.read())["credentials"],
            first.as_str(),
            "{mode}"
        );

        let next = sync(&env, &fake);
        assert_ne!(next, first);
        // The host's path has the new keys either way.
        assert!(env.read_credentials().contains(&next), "{mode}");
        let seen = json_line(&reader.read())["credentials"].clone();
        if reaches {
            assert_eq!(seen, next.as_str(), "{mode}: the same inode was rewritten");
        } else {
            // The rename made a new inode at the host path; the bind mount pins the old one.
            assert_eq!(
                seen,
                first.as_str(),
                "{mode}: the mount still shows the old inode"
            );
        }
    }
}
