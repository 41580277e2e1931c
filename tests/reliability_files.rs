//! Files under attack, with the real `credsync sync` against the fake: a planted symlink at the
//! temp name, the credentials path replaced by a directory, a FIFO, a 100 MB file, invalid UTF-8, a
//! file that is not INI or is another user's (through a symlink too), a full disk (a small tmpfs,
//! when we may mount one), a read-only file (`chattr +i`, when available). Each gives a clear error
//! naming the path and loses nothing. And no secret is ever in a file that group or others can
//! read, at any moment of many writes (a watcher scans the directory throughout).

use crate::support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use support::fake_aws::FakeAws;
use support::{FAKE_START_URL, TestEnv, botocore_token_json, mkfifo, run_with_timeout};

const HOUR: Duration = Duration::from_secs(3600);

/// A HOME with one managed SSO profile `dev` -> `[dev]`, logged in.
fn world(fake: &FakeAws) -> TestEnv {
    let env = TestEnv::with_fake(fake);
    env.write_aws_config(&format!(
        "[sso-session corp]\nsso_start_url = {FAKE_START_URL}\nsso_region = us-east-1\n\n\
         [profile dev]\nsso_session = corp\nsso_account_id = 111111111111\nsso_role_name = Dev\n"
    ));
    env.write_config_toml("[[profiles]]\nsource = \"dev\"\n");
    fake.add_token("tok");
    env.write_token_cache(
        "corp",
        &botocore_token_json("tok", SystemTime::now() + 8 * HOUR, None),
    );
    env
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs `credsync sync` expecting a failure whose message names `path` and contains `what`.
fn sync_fails(env: &TestEnv, path: &Path, what: &str) -> String {
    let out = run_with_timeout(env.cmd(["sync"]), Duration::from_secs(60));
    let msg = text(&out);
    assert!(!out.status.success(), "sync succeeded:\n{msg}");
    assert!(
        msg.contains(&path.display().to_string()),
        "the error does not name {}:\n{msg}",
        path.display()
    );
    assert!(msg.contains(what), "expected {what:?} in:\n{msg}");
    assert!(
        !msg.contains("fake-secret-"),
        "a secret in the error:\n{msg}"
    );
    assert!(!msg.contains("panicked"), "{msg}");
    msg
}

#[test]
fn a_planted_symlink_at_the_temp_name_is_never_followed() {
    let fake = FakeAws::new();
    let env = world(&fake);
    let creds = env.write_credentials("[mine]\naws_access_key_id = AKIAMINE\n");
    let victim = env.root().join("victim");
    fs::write(&victim, "do not touch\n").unwrap();
    // Temp names are `.credentials.credsync-<pid>-<random>.tmp`: plant links for a dead pid
    // (the start-up cleanup removes the link itself) and for a live one (ours: left alone),
    // and a directory at the pattern (left alone).
    let dead = env
        .aws_dir()
        .join(".credentials.credsync-4194300-0123456789abcdef.tmp");
    let live = env.aws_dir().join(format!(
        ".credentials.credsync-{}-0123456789abcdef.tmp",
        std::process::id()
    ));
    let dir = env.aws_dir().join(".credentials.credsync-4194301-00.tmp");
    std::os::unix::fs::symlink(&victim, &dead).unwrap();
    std::os::unix::fs::symlink(&victim, &live).unwrap();
    fs::create_dir(&dir).unwrap();
    for _ in 0..3 {
        let out = env.run(["sync"]);
        assert!(out.status.success(), "{}", text(&out));
    }
    assert_eq!(fs::read_to_string(&victim).unwrap(), "do not touch\n");
    assert!(
        fs::symlink_metadata(&dead).is_err(),
        "the dead pid's link is removed"
    );
    assert!(
        fs::symlink_metadata(&live)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(dir.is_dir());
    let now = fs::read_to_string(&creds).unwrap();
    assert!(
        now.starts_with("[mine]\naws_access_key_id = AKIAMINE\n"),
        "{now}"
    );
    assert!(credsync::ini_edit::read_managed(&now, "dev").is_some());
}

#[test]
fn a_directory_fifo_huge_or_binary_credentials_file_gives_a_clear_error_and_loses_nothing() {
    let fake = FakeAws::new();
    let env = world(&fake);
    let creds = env.credentials_path();

    // A directory.
    fs::create_dir(&creds).unwrap();
    fs::write(creds.join("keep"), "x").unwrap();
    sync_fails(&env, &creds, "is not a regular file");
    assert_eq!(fs::read_to_string(creds.join("keep")).unwrap(), "x");
    fs::remove_dir_all(&creds).unwrap();

    // A FIFO: never opened, so nothing blocks (the run has a timeout).
    mkfifo(&creds);
    sync_fails(&env, &creds, "is not a regular file");
    assert!(
        fs::symlink_metadata(&creds)
            .unwrap()
            .file_type()
            .is_fifo_like()
    );
    fs::remove_file(&creds).unwrap();

    // A 100 MB file (sparse: the size is what counts).
    let f = fs::File::create(&creds).unwrap();
    f.set_len(100 << 20).unwrap();
    drop(f);
    sync_fails(&env, &creds, "more than the 16 MiB");
    assert_eq!(fs::metadata(&creds).unwrap().len(), 100 << 20);
    fs::remove_file(&creds).unwrap();

    // Invalid UTF-8.
    let binary = b"[mine]\naws_access_key_id = AKIA\xff\xfe\n".to_vec();
    fs::write(&creds, &binary).unwrap();
    sync_fails(&env, &creds, "not UTF-8");
    assert_eq!(fs::read(&creds).unwrap(), binary);
    fs::remove_file(&creds).unwrap();

    // And with all that gone, it carries on.
    let out = env.run(["sync"]);
    assert!(out.status.success(), "{}", text(&out));
}

/// Puts `plant` at `path` (removing what is there), runs `credsync sync` expecting a failure
/// that names `path` and says `what`, then puts `good` back.
fn refused_at(env: &TestEnv, path: &Path, plant: &dyn Fn(&Path), what: &str, good: &[u8]) {
    fs::remove_file(path).unwrap();
    plant(path);
    sync_fails(env, path, what);
    fs::remove_file(path).unwrap();
    fs::write(path, good).unwrap();
}

#[test]
fn a_device_fifo_huge_or_binary_aws_config_or_token_cache_is_refused_and_named() {
    let fake = FakeAws::new();
    let env = world(&fake);
    // Sparse: 4 GiB that cost nothing on disk, and that a plain read would take whole.
    let huge = env.root().join("huge");
    fs::File::create(&huge).unwrap().set_len(4 << 30).unwrap();
    let dev_zero = |p: &Path| std::os::unix::fs::symlink("/dev/zero", p).unwrap();
    let to_huge = |p: &Path| std::os::unix::fs::symlink(&huge, p).unwrap();
    let fifo = |p: &Path| mkfifo(p);

    let config = env.aws_config_path();
    let good = fs::read(&config).unwrap();
    // /dev/zero is never read: refused as what it is, before any byte.
    let device = "(a symlink to /dev/zero) is a character device, not a regular file";
    refused_at(&env, &config, &dev_zero, device, &good);
    refused_at(
        &env,
        &config,
        &fifo,
        "is a FIFO (named pipe), not a regular file",
        &good,
    );
    let bound = "is 4294967296 bytes, more than the 16 MiB credsync reads from the AWS config";
    refused_at(&env, &config, &to_huge, bound, &good);
    let lines = good.iter().filter(|&&b| b == b'\n').count();
    let binary = |p: &Path| fs::write(p, [&good[..], b"[profile caf\xe9]\n"].concat()).unwrap();
    let utf8 = format!(":{}:13: not valid UTF-8 (byte 13 of line {0})", lines + 1);
    refused_at(&env, &config, &binary, &utf8, &good);

    let cache = env.token_cache_path("corp");
    let token = fs::read(&cache).unwrap();
    refused_at(&env, &cache, &dev_zero, device, &token);
    refused_at(
        &env,
        &cache,
        &fifo,
        "is a FIFO (named pipe), not a regular file",
        &token,
    );
    let bound = "more than the 1 MiB credsync reads from an SSO token cache file";
    refused_at(&env, &cache, &to_huge, bound, &token);

    // Everything back as it was: it carries on.
    let out = env.run(["sync"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_file_that_is_not_ini_or_not_the_users_is_refused_and_kept() {
    let fake = FakeAws::new();
    let env = world(&fake);
    let creds = env.credentials_path();

    // A symlink at the credentials path to someone's file that is not INI (what a root daemon
    // once appended to): refused, named with its line, untouched.
    let foreign = env.root().join("passwd");
    let passwd = "root:x:0:0:root:/root:/bin/bash\n";
    fs::write(&foreign, passwd).unwrap();
    std::os::unix::fs::symlink(&foreign, &creds).unwrap();
    let msg = sync_fails(
        &env,
        &foreign,
        "line 1 comes before the first [section] header",
    );
    assert!(msg.contains("not an AWS credentials file"), "{msg}");
    assert_eq!(fs::read_to_string(&foreign).unwrap(), passwd);
    fs::remove_file(&creds).unwrap();

    // A line botocore cannot read, further down.
    let broken = "[mine]\nregion = eu-west-1\nsource ~/.aws/env.sh\n";
    fs::write(&creds, broken).unwrap();
    sync_fails(
        &env,
        &creds,
        "line 3 is neither a [section] header nor `key = value`",
    );
    assert_eq!(fs::read_to_string(&creds).unwrap(), broken);

    // Another user's file, whatever its content (root included: it keeps no one's file).
    let theirs = "[theirs]\nregion = eu-west-1\n";
    fs::write(&creds, theirs).unwrap();
    // SAFETY: geteuid has no preconditions.
    let owner = if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(&creds, Some(4321), Some(4321)).unwrap();
        4321
    } else {
        // Not root: a file root owns, through a symlink.
        fs::remove_file(&creds).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", &creds).unwrap();
        0
    };
    let target = fs::canonicalize(&creds).unwrap();
    let before = fs::read(&target).unwrap();
    sync_fails(&env, &target, &format!("belongs to uid {owner}"));
    assert_eq!(fs::read(&target).unwrap(), before);
    fs::remove_file(&creds).unwrap();

    // An empty file is fine (a missing one too: every other test starts without one).
    fs::write(&creds, "").unwrap();
    let out = env.run(["sync"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(credsync::ini_edit::read_managed(&env.read_credentials(), "dev").is_some());
}

trait FifoLike {
    fn is_fifo_like(&self) -> bool;
}

impl FifoLike for fs::FileType {
    fn is_fifo_like(&self) -> bool {
        use std::os::unix::fs::FileTypeExt;
        self.is_fifo()
    }
}

/// A tmpfs mounted for the test, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: PathBuf, size: &str) -> Option<Tmpfs> {
        fs::create_dir_all(&at).ok()?;
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&at)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs(at))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_gives_a_clear_error_and_keeps_the_old_file() {
    let fake = FakeAws::new();
    let mut env = world(&fake);
    let Some(tmpfs) = Tmpfs::mount(env.root().join("small"), "64k") else {
        eprintln!("SKIPPED a_full_disk: cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN)");
        return;
    };
    let creds = tmpfs.0.join("credentials");
    let old = "[mine]\naws_access_key_id = AKIAMINE\naws_secret_access_key = mine\n".to_owned()
        + &"# padding\n".repeat(300);
    fs::write(&creds, &old).unwrap();
    fs::set_permissions(&creds, fs::Permissions::from_mode(0o600)).unwrap();
    // Fill the rest of the disk.
    let mut filler = fs::File::create(tmpfs.0.join("filler")).unwrap();
    let chunk = vec![0u8; 4096];
    while std::io::Write::write_all(&mut filler, &chunk).is_ok() {}
    drop(filler);
    env.env("AWS_SHARED_CREDENTIALS_FILE", &creds);
    sync_fails(&env, &creds, "the disk is full");
    assert_eq!(fs::read_to_string(&creds).unwrap(), old);
    let temps: Vec<_> = fs::read_dir(&tmpfs.0)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(temps.is_empty(), "a temp file was left on the full disk");
    // Space again: it carries on.
    fs::remove_file(tmpfs.0.join("filler")).unwrap();
    let out = env.run(["sync"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(fs::read_to_string(&creds).unwrap().starts_with(&old));
}

#[test]
fn a_read_only_file_gives_a_clear_error_and_is_untouched() {
    let fake = FakeAws::new();
    let env = world(&fake);
    let old = "[mine]\naws_access_key_id = AKIAMINE\n";
    let creds = env.write_credentials(old);
    // root ignores modes; an immutable file is read-only even for root.
    let immutable = Command::new("chattr")
        .arg("+i")
        .arg(&creds)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !immutable {
        // Not root (or no chattr support): a 0444 file in a 0555 directory is read-only for us.
        if unsafe { libc::geteuid() } == 0 {
            eprintln!("SKIPPED a_read_only_file: root, and chattr +i is not supported here");
            return;
        }
        fs::set_permissions(&creds, fs::Permissions::from_mode(0o444)).unwrap();
        fs::set_permissions(env.aws_dir(), fs::Permissions::from_mode(0o555)).unwrap();
    }
    let out = run_with_timeout(env.cmd(["sync"]), Duration::from_secs(60));
    if immutable {
        let _ = Command::new("chattr").arg("-i").arg(&creds).status();
    } else {
        fs::set_permissions(env.aws_dir(), fs::Permissions::from_mode(0o700)).unwrap();
    }
    let msg = text(&out);
    assert!(!out.status.success(), "{msg}");
    assert!(
        msg.contains(&creds.display().to_string())
            || msg.contains(&env.aws_dir().display().to_string()),
        "{msg}"
    );
    assert!(msg.contains("cannot write"), "{msg}");
    assert!(!msg.contains("fake-secret-"), "{msg}");
    assert_eq!(fs::read_to_string(&creds).unwrap(), old);
}

#[test]
fn no_secret_is_ever_in_a_group_or_world_readable_file() {
    // The umask is the process's: this test runs alone in a process of its own.
    if !support::alone("reliability_files::no_secret_is_ever_in_a_group_or_world_readable_file") {
        return;
    }
    let fake = FakeAws::new();
    let env = world(&fake);
    // A new credentials file (created 0600), then many rewrites; the umask is wide open so that
    // only credsync's own modes protect the files.
    // SAFETY: umask(2) is process-wide and always succeeds; children inherit it.
    unsafe { libc::umask(0) };
    let dirs = [env.aws_dir(), env.sso_cache_dir()];
    let stop = Arc::new(AtomicBool::new(false));
    let scans = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (stop, scans, dirs) = (Arc::clone(&stop), Arc::clone(&scans), dirs.clone());
        std::thread::spawn(move || {
            let mut bad = Vec::new();
            let mut seen_temp = 0usize;
            while !stop.load(Ordering::Relaxed) {
                for dir in &dirs {
                    let Ok(rd) = fs::read_dir(dir) else { continue };
                    for e in rd.filter_map(|e| e.ok()) {
                        let Ok(md) = fs::symlink_metadata(e.path()) else {
                            continue;
                        };
                        if !md.is_file() {
                            continue;
                        }
                        let name = e.file_name().to_string_lossy().into_owned();
                        if name.ends_with(".tmp") {
                            seen_temp += 1;
                        }
                        if md.mode() & 0o077 != 0 {
                            let content = fs::read_to_string(e.path()).unwrap_or_default();
                            if content.contains("fake-secret-") || content.contains("fake-session-")
                            {
                                bad.push(format!("{name}: mode {:o}", md.mode() & 0o777));
                            }
                        }
                    }
                }
                scans.fetch_add(1, Ordering::Relaxed);
            }
            (bad, seen_temp)
        })
    };
    let runs = 40;
    for _ in 0..runs {
        let out = env.run(["sync"]);
        assert!(out.status.success(), "{}", text(&out));
    }
    stop.store(true, Ordering::Relaxed);
    let (bad, seen_temp) = watcher.join().expect("watcher");
    // SAFETY: as above.
    unsafe { libc::umask(0o022) };
    eprintln!(
        "{runs} writes, {} directory scans, {seen_temp} sightings of a temp file",
        scans.load(Ordering::Relaxed)
    );
    assert!(bad.is_empty(), "secrets in readable files: {bad:?}");
    let mode = fs::metadata(env.credentials_path()).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o600);
}
