//! Least privilege for the containers' uid, on the host's files (the real binary, a temp HOME,
//! the fake AWS, real POSIX ACLs): with the view, uid 50000 gets read on the view's files and
//! search on the directories on their path, and nothing on the credentials file; sharing the
//! credentials file is `share_credentials_file = true`; turning it off, or removing
//! `[container]`, takes back exactly the entries credsync added, at the next write or reload;
//! and `doctor`'s warnings about the credentials file's long-lived keys and host accounts.
//!
//! What the container itself sees of the same files is in `tests/container_docker.rs` (a real
//! Docker engine); these tests need only ACL support in the temp directory's file system.

use crate::support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use credsync::acl::{self, TAG_USER};
use support::TestEnv;
use support::fake_aws::FakeAws;

const ACCOUNT: &str = "000000100000";
const UID: u32 = 50000;
/// The user's own long-lived keys, in a section credsync does not manage.
const PERSONAL: &str = "[personal]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n\
                        aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n";
/// docs/astro.md's `[container]` section.
const DOCS_CONTAINER: &str = "[container]\ndir = \"~/.aws/credsync\"\n\
                              path_in_container = \"/home/astro/.aws/credsync\"\nuid = 50000\n";

fn setup(fake: &FakeAws) -> TestEnv {
    let env = TestEnv::with_fake(fake);
    env.write_aws_config(
        "[sso-session corp]\nsso_start_url = https://fake.awsapps.com/start\nsso_region = us-east-1\n\n\
         [profile dev-sso]\nsso_session = corp\nsso_account_id = 000000100000\nsso_role_name = Dev\n\
         region = eu-west-1\n",
    );
    env.sign_in(fake, "corp", "tok-corp");
    env.write_credentials(PERSONAL);
    // As users have them: the file 0600, ~/.aws closed to others. Only ACLs let anyone in.
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(env.credentials_path(), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(env.aws_dir(), fs::Permissions::from_mode(0o700)).unwrap();
    env
}

fn config(env: &TestEnv, container: &str) {
    env.write_config_toml(&format!(
        "[[profiles]]\nsource = \"dev-sso\"\ntarget = \"dev\"\n\n{container}"
    ));
}

fn text(o: &Output) -> String {
    support::output_text(o)
}

fn sync(env: &TestEnv, fake: &FakeAws) -> String {
    env.sync_served_key(fake, ACCOUNT)
}

/// The permission bits of the named-user entry for `uid` on `path` (`None`: no entry).
fn entry(path: &Path, uid: u32) -> Option<u16> {
    acl::read(path)
        .unwrap_or_else(|e| panic!("read the ACL of {}: {e}", path.display()))
        .and_then(|acl| {
            acl.iter()
                .find(|e| e.tag == TAG_USER && e.id == uid)
                .map(|e| e.perm)
        })
}

fn setfacl(args: &[&str], path: &Path) {
    let out = Command::new("setfacl")
        .args(args)
        .arg(path)
        .output()
        .expect("setfacl (apt-get install acl)");
    assert!(out.status.success(), "setfacl {args:?}: {}", text(&out));
}

fn view_files(env: &TestEnv) -> [PathBuf; 2] {
    let v = env.aws_dir().join("credsync");
    [v.join("config"), v.join("dev.json")]
}

fn doctor(env: &TestEnv) -> String {
    text(&env.run(["doctor"]))
}

#[test]
fn a_large_acl_of_the_users_survives_the_atomic_rewrite() {
    // 200 named entries: 1.6 KiB of xattr, more than a first fixed-size read takes.
    let fake = FakeAws::new();
    let env = setup(&fake);
    config(&env, "");
    let creds = env.credentials_path();
    let mut entries = acl::from_mode(0o600);
    for uid in 10_000..10_200 {
        entries = acl::with_user(&entries, uid, acl::READ).expect("a new entry");
    }
    acl::write(&creds, &entries).expect("set a large ACL (ACL support in the temp dir)");
    assert!(acl::encode(&entries).len() > 1024);

    let first = sync(&env, &fake);
    assert!(env.read_credentials().contains(&first));
    let mut after = acl::read(&creds).unwrap().expect("the ACL survives");
    after.sort_by_key(|e| (e.tag, e.id));
    entries.sort_by_key(|e| (e.tag, e.id));
    assert_eq!(after, entries);
}

/// `path`'s permission bits (with an ACL, the group bits are its mask).
fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Makes each of `paths` world-readable, as a file planted (or left by an earlier `file_mode`).
fn plant_0644(paths: &[PathBuf]) {
    use std::os::unix::fs::PermissionsExt;
    for p in paths {
        fs::set_permissions(p, fs::Permissions::from_mode(0o644)).unwrap();
    }
}

#[test]
fn view_files_get_credsyncs_mode_at_every_write_whatever_mode_they_had() {
    let fake = FakeAws::new();
    let env = setup(&fake);
    let files = view_files(&env);
    // Planted before credsync ever wrote the view (the JSON with other bytes than credsync's).
    fs::create_dir_all(env.aws_dir().join("credsync")).unwrap();
    for f in &files {
        fs::write(f, "{}\n").unwrap();
    }
    plant_0644(&files);
    config(&env, "[container]\n");
    sync(&env, &fake);
    for f in &files {
        assert_eq!(mode_of(f), 0o600, "{}", f.display());
    }
    // Between two writes (the view's `config` then gets the same bytes: rewritten for its mode).
    let config_before = fs::read(&files[0]).unwrap();
    plant_0644(&files);
    sync(&env, &fake);
    assert_eq!(fs::read(&files[0]).unwrap(), config_before);
    for f in &files {
        assert_eq!(mode_of(f), 0o600, "{}", f.display());
    }
    // The configured mode, exactly: group read, nothing for others.
    config(&env, "[write]\nfile_mode = \"0640\"\n\n[container]\n");
    plant_0644(&files);
    sync(&env, &fake);
    for f in &files {
        assert_eq!(mode_of(f), 0o640, "{}", f.display());
    }
    // With the container uid's ACL: owner, owning group and others as configured (0600), and
    // the uid keeps its read entry (the mask, which the mode's group bits show, is r--).
    config(&env, DOCS_CONTAINER);
    sync(&env, &fake);
    for f in &files {
        setfacl(&["-m", "g::r,o::r"], f);
    }
    sync(&env, &fake);
    const GROUP_OBJ: u16 = 0x04; // linux/posix_acl.h
    for f in &files {
        let acl = acl::read(f).unwrap().expect("an ACL");
        let group = acl.iter().find(|e| e.tag == GROUP_OBJ).map(|e| e.perm);
        assert_eq!(group, Some(0), "{}", f.display());
        assert_eq!(mode_of(f) & 0o707, 0o600, "{}", f.display());
        assert_eq!(entry(f, UID), Some(acl::READ), "{}", f.display());
    }
}

#[test]
fn with_the_view_the_credentials_file_gets_nothing() {
    let fake = FakeAws::new();
    let env = setup(&fake);
    config(&env, DOCS_CONTAINER);
    // The user's own entry on the credentials file, for another uid: it must survive.
    setfacl(&["-m", "u:1234:r"], &env.credentials_path());
    let first = sync(&env, &fake);
    assert!(env.read_credentials().contains(&first));
    assert!(env.read_credentials().contains("AKIAIOSFODNN7EXAMPLE"));

    let creds = env.credentials_path();
    assert_eq!(
        entry(&creds, UID),
        None,
        "no access to the credentials file"
    );
    assert_eq!(
        entry(&creds, 1234),
        Some(4),
        "the user's entry survives the atomic rewrite"
    );
    for f in view_files(&env) {
        assert_eq!(entry(&f, UID), Some(4), "{}", f.display());
    }
    // Search on the view directory and on the mounted ~/.aws, nothing on HOME.
    assert_eq!(entry(&env.aws_dir().join("credsync"), UID), Some(1));
    assert_eq!(entry(&env.aws_dir(), UID), Some(1));
    assert_eq!(entry(env.home(), UID), None);

    // A second round: the rewrite keeps everything as it was.
    let next = sync(&env, &fake);
    assert_ne!(next, first);
    assert_eq!(entry(&creds, UID), None);
    assert_eq!(entry(&creds, 1234), Some(4));
    for f in view_files(&env) {
        assert_eq!(entry(&f, UID), Some(4), "{}", f.display());
    }
    let d = doctor(&env);
    assert!(!d.contains("long-lived"), "{d}");
}

#[test]
fn sharing_is_explicit_and_switching_back_takes_back_only_credsyncs_entries() {
    let fake = FakeAws::new();
    let env = setup(&fake);
    setfacl(&["-m", "u:1234:r"], &env.credentials_path());
    config(
        &env,
        &format!("{DOCS_CONTAINER}share_credentials_file = true\n"),
    );
    sync(&env, &fake);
    let creds = env.credentials_path();
    assert_eq!(entry(&creds, UID), Some(4));
    // doctor names the exposure and the way out.
    let d = doctor(&env);
    assert!(d.contains("can read it (an ACL entry user:50000)"), "{d}");
    assert!(d.contains("[personal]"), "{d}");
    assert!(d.contains("container view"), "{d}");
    assert!(
        !d.contains("wJalrXUtnFEMI"),
        "no secret in doctor's output: {d}"
    );

    config(&env, DOCS_CONTAINER);
    sync(&env, &fake);
    assert_eq!(entry(&creds, UID), None, "credsync's entry is gone");
    assert_eq!(entry(&creds, 1234), Some(4), "the user's entry stays");
    // The mask (shown as the group bits) is what the user's entry needs, nothing for others.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(&creds).unwrap().mode() & 0o077, 0o040);
    for f in view_files(&env) {
        assert_eq!(entry(&f, UID), Some(4), "the view keeps its access");
    }
    assert!(!doctor(&env).contains("long-lived"));

    // Removing [container] takes back the view's entries too (the files stay).
    config(&env, "");
    sync(&env, &fake);
    for f in view_files(&env) {
        assert!(f.exists());
        assert_eq!(entry(&f, UID), None, "{}", f.display());
    }
    assert_eq!(entry(&env.aws_dir().join("credsync"), UID), None);
    assert_eq!(entry(&env.aws_dir(), UID), None);
    assert_eq!(entry(&creds, 1234), Some(4));
}

#[test]
fn an_entry_the_user_gave_the_container_uid_is_never_taken_back() {
    let fake = FakeAws::new();
    let env = setup(&fake);
    // The user had granted uid 50000 themselves, before credsync.
    setfacl(&["-m", "u:50000:r"], &env.credentials_path());
    setfacl(&["-m", "u:50000:x"], &env.aws_dir());
    config(
        &env,
        &format!("{DOCS_CONTAINER}share_credentials_file = true\n"),
    );
    sync(&env, &fake);
    config(&env, "");
    sync(&env, &fake);
    assert_eq!(entry(&env.credentials_path(), UID), Some(4));
    assert_eq!(entry(&env.aws_dir(), UID), Some(1));
    // And doctor tells the user what that exposes.
    let d = doctor(&env);
    assert!(
        d.contains("uid 50000 (Astro's container user) can read it"),
        "{d}"
    );
}

#[test]
fn a_reload_takes_back_the_access_without_a_refresh() {
    let fake = FakeAws::new();
    let env = setup(&fake);
    config(
        &env,
        &format!("{DOCS_CONTAINER}share_credentials_file = true\n"),
    );
    let daemon = env.daemon(Vec::<&str>::new());
    let creds = env.credentials_path();
    daemon.expect_within(
        "the daemon grants uid 50000 read on the credentials file",
        || {
            acl::read(&creds)
                .ok()
                .flatten()
                .is_some_and(|a| a.iter().any(|e| e.tag == TAG_USER && e.id == UID))
        },
        Duration::from_secs(20),
    );
    let served = fake.count("GetRoleCredentials");
    config(&env, DOCS_CONTAINER);
    let out = env.run(["reload"]);
    assert!(out.status.success(), "{}", text(&out));
    daemon.expect_within(
        "the reload takes the entry back",
        || entry(&creds, UID).is_none(),
        Duration::from_secs(20),
    );
    // Taken back by the reload itself, not by a new round of credentials.
    assert_eq!(fake.count("GetRoleCredentials"), served);
}

#[test]
fn doctor_warns_when_the_credentials_file_mode_lets_the_container_read_long_lived_keys() {
    let fake = FakeAws::new();
    let env = setup(&fake);
    config(&env, DOCS_CONTAINER);
    sync(&env, &fake);
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(env.credentials_path(), fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(env.aws_dir(), fs::Permissions::from_mode(0o755)).unwrap();
    let d = doctor(&env);
    assert!(d.contains("can read it (its mode 0644)"), "{d}");
    assert!(d.contains("chmod 0600"), "{d}");
    // Without long-lived keys there is nothing to warn about.
    let only_ours: String = env.read_credentials().replace(PERSONAL, "");
    env.write_credentials(&only_ours);
    fs::set_permissions(env.credentials_path(), fs::Permissions::from_mode(0o644)).unwrap();
    assert!(!doctor(&env).contains("long-lived"));
}

#[test]
fn doctor_warns_when_the_container_uid_is_a_host_account() {
    let fake = FakeAws::new();
    let env = setup(&fake);
    // uid 65534 is `nobody` on Debian; the docs' 50000 is normally no account.
    let nobody = credsync::uidmap::user_name(65534).expect("uid 65534 has an account here");
    config(&env, &DOCS_CONTAINER.replace("50000", "65534"));
    let d = doctor(&env);
    assert!(
        d.contains("credsync grants host uid 65534 read access"),
        "{d}"
    );
    assert!(
        d.contains(&format!("host uid 65534 is the account \"{nobody}\"")),
        "{d}"
    );
    config(&env, DOCS_CONTAINER);
    let d = doctor(&env);
    if credsync::uidmap::user_name(UID).is_none() {
        assert!(!d.contains("is the account"), "{d}");
    }
}
