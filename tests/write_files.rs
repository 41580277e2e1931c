//! `write::update` and `write::remove_stale_temps` against real temp directories.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use crate::support;
use credsync::write::{
    MAX_ATTEMPTS, Outcome, WriteError, WriteMode, WriteOptions, remove_stale_temps, update,
};
use support::mkfifo;

fn atomic() -> WriteOptions {
    WriteOptions {
        mode: WriteMode::Atomic,
        new_file_mode: 0o600,
    }
}

fn in_place() -> WriteOptions {
    WriteOptions {
        mode: WriteMode::InPlace,
        new_file_mode: 0o600,
    }
}

fn set(bytes: &'static [u8]) -> impl FnMut(Option<&[u8]>) -> Result<Option<Vec<u8>>, String> {
    move |_| Ok(Some(bytes.to_vec()))
}

fn append(suffix: &'static [u8]) -> impl FnMut(Option<&[u8]>) -> Result<Option<Vec<u8>>, String> {
    move |old| {
        let mut new = old.unwrap_or_default().to_vec();
        new.extend_from_slice(suffix);
        Ok(Some(new))
    }
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().mode() & 0o7777
}

/// Names in `dir` other than `keep`.
fn extra_entries(dir: &Path, keep: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !keep.contains(&n.as_str()))
        .collect();
    names.sort();
    names
}

fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A pid that certainly belonged to a process that has exited (and been reaped).
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

fn temp_like(file: &str, pid: u32, random: &str) -> String {
    format!(".{file}.credsync-{pid}-{random}.tmp")
}

#[test]
fn new_file_gets_exactly_new_file_mode_whatever_the_umask() {
    // The umask is the process's: this test runs alone in a process of its own.
    if !support::alone("write_files::new_file_gets_exactly_new_file_mode_whatever_the_umask") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (0o077, 0o600, "narrow"),
        (0o000, 0o600, "open"),
        (0o077, 0o640, "restored"),
    ];
    for (umask, want, name) in cases {
        // SAFETY: umask cannot fail; restored below.
        let before = unsafe { libc::umask(umask) };
        let path = dir.path().join(name);
        let opts = WriteOptions {
            mode: WriteMode::Atomic,
            new_file_mode: want,
        };
        let result = update(&path, &opts, set(b"[default]\n"));
        let in_place_path = dir.path().join(format!("{name}-in-place"));
        let in_place_opts = WriteOptions {
            mode: WriteMode::InPlace,
            new_file_mode: want,
        };
        let in_place_result = update(&in_place_path, &in_place_opts, set(b"x"));
        unsafe { libc::umask(before) };
        assert_eq!(result.unwrap(), Outcome::Written);
        assert_eq!(in_place_result.unwrap(), Outcome::Written);
        assert_eq!(mode_of(&path), want, "{name} (umask {umask:o})");
        assert_eq!(
            mode_of(&in_place_path),
            want,
            "{name} in place (umask {umask:o})"
        );
        assert_eq!(fs::read(&path).unwrap(), b"[default]\n");
    }
}

#[test]
fn existing_0640_file_keeps_its_mode_and_gets_a_new_inode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials");
    fs::write(&path, b"[a]\n").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    let ino = fs::metadata(&path).unwrap().ino();

    assert_eq!(
        update(&path, &atomic(), append(b"[b]\n")).unwrap(),
        Outcome::Written
    );

    assert_eq!(fs::read(&path).unwrap(), b"[a]\n[b]\n");
    assert_eq!(mode_of(&path), 0o640);
    assert_ne!(
        fs::metadata(&path).unwrap().ino(),
        ino,
        "atomic mode renames a new file in"
    );
    assert_eq!(
        extra_entries(dir.path(), &["credentials"]),
        Vec::<String>::new()
    );
}

#[test]
fn root_keeps_the_existing_owner_and_group() {
    if !is_root() {
        // Only root may give a file to someone else; nothing to check otherwise.
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials");
    fs::write(&path, b"[a]\n").unwrap();
    std::os::unix::fs::chown(&path, Some(4321), Some(4322)).unwrap();

    update(&path, &atomic(), append(b"[b]\n")).unwrap();

    let m = fs::metadata(&path).unwrap();
    assert_eq!((m.uid(), m.gid()), (4321, 4322));
}

#[test]
fn absolute_symlink_target_is_written_and_link_stays_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let real_dir = dir.path().join("dotfiles");
    fs::create_dir(&real_dir).unwrap();
    let real = real_dir.join("aws-credentials");
    fs::write(&real, b"[a]\n").unwrap();
    let link = dir.path().join("credentials");
    symlink(&real, &link).unwrap();

    update(&link, &atomic(), append(b"[b]\n")).unwrap();

    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read_link(&link).unwrap(), real);
    assert_eq!(fs::read(&real).unwrap(), b"[a]\n[b]\n");
    // The temp file lived beside the target, and is gone.
    assert_eq!(
        extra_entries(&real_dir, &["aws-credentials"]),
        Vec::<String>::new()
    );
    assert_eq!(
        extra_entries(dir.path(), &["dotfiles", "credentials"]),
        Vec::<String>::new()
    );
}

#[test]
fn relative_symlink_chain_is_followed_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("a")).unwrap();
    fs::create_dir(dir.path().join("b")).unwrap();
    let real = dir.path().join("b/real");
    fs::write(&real, b"old").unwrap();
    // a/first -> second (relative to a/), a/second -> ../b/real
    symlink("second", dir.path().join("a/first")).unwrap();
    symlink("../b/real", dir.path().join("a/second")).unwrap();

    for opts in [atomic(), in_place()] {
        update(&dir.path().join("a/first"), &opts, append(b"+")).unwrap();
    }

    assert_eq!(fs::read(&real).unwrap(), b"old++");
    for link in ["a/first", "a/second"] {
        assert!(
            fs::symlink_metadata(dir.path().join(link))
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }
}

#[test]
fn dangling_symlink_creates_the_target_and_its_directory_0700() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("credentials");
    symlink("missing/dir/creds", &link).unwrap();
    let mut seen = Vec::new();

    let outcome = update(&link, &atomic(), |old| {
        seen.push(old.map(<[u8]>::to_vec));
        Ok(Some(b"[new]\n".to_vec()))
    })
    .unwrap();

    assert_eq!(outcome, Outcome::Written);
    assert_eq!(seen, vec![None]);
    let real = dir.path().join("missing/dir/creds");
    assert_eq!(fs::read(&real).unwrap(), b"[new]\n");
    assert_eq!(mode_of(&real), 0o600);
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(mode_of(&dir.path().join("missing/dir")), 0o700);
}

#[test]
fn symlink_loop_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    symlink("b", dir.path().join("a")).unwrap();
    symlink("a", dir.path().join("b")).unwrap();
    let err = update(&dir.path().join("a"), &atomic(), set(b"x")).unwrap_err();
    assert!(matches!(err, WriteError::Read { .. }), "{err:?}");
}

#[test]
fn unchanged_edit_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials");
    fs::write(&path, b"[a]\n").unwrap();
    let before = fs::metadata(&path).unwrap();

    for opts in [atomic(), in_place()] {
        assert_eq!(
            update(&path, &opts, |_| Ok(None)).unwrap(),
            Outcome::Unchanged
        );
        assert_eq!(
            update(&path, &opts, set(b"[a]\n")).unwrap(),
            Outcome::Unchanged
        );
    }

    let after = fs::metadata(&path).unwrap();
    assert_eq!(after.ino(), before.ino());
    assert_eq!(
        (after.mtime(), after.mtime_nsec()),
        (before.mtime(), before.mtime_nsec())
    );
    assert_eq!(
        extra_entries(dir.path(), &["credentials"]),
        Vec::<String>::new()
    );

    // No file is created for an edit that has nothing to write.
    for opts in [atomic(), in_place()] {
        let missing = dir.path().join("missing");
        assert_eq!(
            update(&missing, &opts, |_| Ok(None)).unwrap(),
            Outcome::Unchanged
        );
        assert!(!missing.exists());
    }
}

#[test]
fn edit_error_leaves_the_file_and_no_temp() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials");
    fs::write(&path, b"[a]\n").unwrap();

    for opts in [atomic(), in_place()] {
        let err = update(&path, &opts, |_| Err("section [a] has no marker".into())).unwrap_err();
        match &err {
            WriteError::Edit { path: p, message } => {
                assert_eq!(p, &path);
                assert_eq!(message, "section [a] has no marker");
            }
            other => panic!("expected Edit, got {other:?}"),
        }
        assert!(err.to_string().contains("credentials"));
    }
    assert_eq!(fs::read(&path).unwrap(), b"[a]\n");
    assert_eq!(
        extra_entries(dir.path(), &["credentials"]),
        Vec::<String>::new()
    );

    // A new file that the edit refused is not left behind either.
    for opts in [atomic(), in_place()] {
        let missing = dir.path().join("missing");
        update(&missing, &opts, |_| Err("no".into())).unwrap_err();
        assert!(!missing.exists());
    }
    assert_eq!(
        extra_entries(dir.path(), &["credentials"]),
        Vec::<String>::new()
    );
}

#[test]
fn a_write_between_read_and_rename_is_merged_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials");
    fs::write(&path, b"[user]\n").unwrap();
    let mut calls: Vec<Vec<u8>> = Vec::new();

    let outcome = update(&path, &atomic(), |old| {
        let old = old.unwrap().to_vec();
        if calls.is_empty() {
            // Another program writes the file while credsync is busy (same length on purpose:
            // only the bytes differ, and the rewrite may land within one timestamp tick).
            fs::write(&path, b"[USER]\n").unwrap();
        }
        calls.push(old.clone());
        let mut new = old;
        new.extend_from_slice(b"[managed]\n");
        Ok(Some(new))
    })
    .unwrap();

    assert_eq!(outcome, Outcome::Written);
    assert_eq!(calls, vec![b"[user]\n".to_vec(), b"[USER]\n".to_vec()]);
    assert_eq!(fs::read(&path).unwrap(), b"[USER]\n[managed]\n");
    assert_eq!(
        extra_entries(dir.path(), &["credentials"]),
        Vec::<String>::new()
    );
}

#[test]
fn a_file_that_keeps_changing_is_an_error_after_max_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials");
    fs::write(&path, b"0").unwrap();
    let mut calls = 0u32;

    let err = update(&path, &atomic(), |old| {
        calls += 1;
        fs::write(&path, calls.to_string()).unwrap();
        let mut new = old.unwrap().to_vec();
        new.push(b'!');
        Ok(Some(new))
    })
    .unwrap_err();

    assert!(
        matches!(
            err,
            WriteError::ChangedDuringWrite {
                attempts: MAX_ATTEMPTS,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(calls, MAX_ATTEMPTS);
    assert_eq!(
        fs::read(&path).unwrap(),
        MAX_ATTEMPTS.to_string().as_bytes()
    );
    assert_eq!(
        extra_entries(dir.path(), &["credentials"]),
        Vec::<String>::new()
    );
}

#[test]
fn a_directory_target_is_not_a_file_and_stays_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials");
    fs::create_dir(&path).unwrap();
    fs::write(path.join("inside"), b"keep").unwrap();

    for opts in [atomic(), in_place()] {
        let mut called = false;
        let err = update(&path, &opts, |_| {
            called = true;
            Ok(Some(b"x".to_vec()))
        })
        .unwrap_err();
        assert!(
            matches!(&err, WriteError::NotAFile { path: p } if p == &path),
            "{err:?}"
        );
        assert!(!called, "edit must not run");
    }
    assert!(path.is_dir());
    assert_eq!(fs::read(path.join("inside")).unwrap(), b"keep");
    assert_eq!(
        extra_entries(dir.path(), &["credentials"]),
        Vec::<String>::new()
    );
}

#[test]
fn a_fifo_target_is_not_a_file_and_nothing_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials");
    mkfifo(&path);
    let link = dir.path().join("link");
    symlink("credentials", &link).unwrap();

    // Opening a FIFO with no writer would block forever: returning at all is the check.
    for p in [&path, &link] {
        for opts in [atomic(), in_place()] {
            let err = update(p, &opts, set(b"x")).unwrap_err();
            assert!(matches!(err, WriteError::NotAFile { .. }), "{err:?}");
        }
    }
    assert!(fs::symlink_metadata(&path).unwrap().file_type().is_fifo());
}

#[test]
fn files_over_16_mib_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials");
    let file = fs::File::create(&path).unwrap();
    file.set_len((16 << 20) + 1).unwrap(); // sparse, cheap
    drop(file);

    for opts in [atomic(), in_place()] {
        let err = update(&path, &opts, set(b"x")).unwrap_err();
        assert!(
            matches!(err, WriteError::TooLarge { len, .. } if len == (16 << 20) + 1),
            "{err:?}"
        );
        assert!(err.to_string().contains("16 MiB"), "{err}");
    }
    assert_eq!(fs::metadata(&path).unwrap().len(), (16 << 20) + 1);
}

#[test]
fn in_place_keeps_the_inode_mode_and_shrinks_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials");
    fs::write(&path, b"[a]\nlong line that will go away\n").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    let ino = fs::metadata(&path).unwrap().ino();

    assert_eq!(
        update(&path, &in_place(), set(b"[b]\n")).unwrap(),
        Outcome::Written
    );

    let m = fs::metadata(&path).unwrap();
    assert_eq!(m.ino(), ino);
    assert_eq!(m.mode() & 0o7777, 0o640);
    assert_eq!(fs::read(&path).unwrap(), b"[b]\n");
    assert_eq!(
        extra_entries(dir.path(), &["credentials"]),
        Vec::<String>::new()
    );
}

#[test]
fn in_place_never_waits_for_the_lock_holder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials");
    fs::write(&path, b"[a]\n").unwrap();

    // While we hold the lock, the update returns at once, names the file, and neither reads
    // nor edits nor writes it.
    let holder = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    holder.lock().unwrap();
    let mut edit_ran = false;
    let result = update(&path, &in_place(), |old| {
        edit_ran = true;
        append(b"[managed]\n")(old)
    });
    match result {
        Err(e @ WriteError::Locked { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            assert!(msg.contains("locked by another process"), "{msg}");
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(!edit_ran, "edit ran while we held the lock");
    // Our own write under the lock, then the unlock: the next update sees it and succeeds.
    fs::write(&path, b"[other]\n").unwrap();
    holder.unlock().unwrap();
    assert_eq!(
        update(&path, &in_place(), append(b"[managed]\n")).unwrap(),
        Outcome::Written
    );
    assert_eq!(fs::read(&path).unwrap(), b"[other]\n[managed]\n");
}

#[test]
fn a_parent_that_is_a_file_is_a_write_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("aws");
    fs::write(&blocker, b"not a dir").unwrap();
    let path = blocker.join("credentials");

    for opts in [atomic(), in_place()] {
        let err = update(&path, &opts, set(b"x")).unwrap_err();
        assert!(
            matches!(&err, WriteError::Write { path: p, .. } if p == &blocker),
            "{err:?}"
        );
        assert!(err.to_string().contains("not a directory"), "{err}");
    }
    assert_eq!(fs::read(&blocker).unwrap(), b"not a dir");
}

#[test]
fn read_only_directory_is_a_write_error_and_the_file_is_kept() {
    if is_root() {
        // Root ignores permission bits, so a 0500 directory does not stop the write; the
        // failure path is covered by a_parent_that_is_a_file_is_a_write_error_naming_it.
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("aws");
    fs::create_dir(&sub).unwrap();
    let path = sub.join("credentials");
    fs::write(&path, b"[a]\n").unwrap();
    fs::set_permissions(&sub, fs::Permissions::from_mode(0o500)).unwrap();

    let err = update(&path, &atomic(), set(b"x")).unwrap_err();

    fs::set_permissions(&sub, fs::Permissions::from_mode(0o700)).unwrap();
    assert!(matches!(err, WriteError::Write { .. }), "{err:?}");
    assert!(err.to_string().contains("owner and mode"), "{err}");
    assert_eq!(fs::read(&path).unwrap(), b"[a]\n");
}

#[test]
fn stale_temps_of_dead_or_own_pid_are_removed_others_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials");
    fs::write(&path, b"[a]\n").unwrap();
    let dead = dead_pid();
    let own = std::process::id();
    let live = 1; // init (or the container's first process) is always running

    let removed_names = [
        temp_like("credentials", dead, "0123456789abcdef"),
        temp_like("credentials", own, "00ff"),
        temp_like("credentials", 4_294_967_295, "ab"), // larger than any pid
    ];
    let kept_names = [
        temp_like("credentials", live, "0123456789abcdef"),
        temp_like("config", dead, "0123456789abcdef"), // another file's temp
        format!(".credentials.credsync-{dead}-XYZ.tmp"),
        format!(".credentials.credsync-{dead}-ab.tmp.bak"),
        format!("credentials.credsync-{dead}-ab.tmp"),
        "credentials.bak".to_string(),
    ];
    for name in removed_names.iter().chain(&kept_names) {
        fs::write(dir.path().join(name), b"junk").unwrap();
    }
    // A directory with a matching name is not ours to remove.
    let dir_name = temp_like("credentials", dead, "dd");
    fs::create_dir(dir.path().join(&dir_name)).unwrap();

    assert_eq!(remove_stale_temps(&path).unwrap(), removed_names.len());

    let mut expected: Vec<String> = kept_names.to_vec();
    expected.push(dir_name);
    expected.sort();
    assert_eq!(extra_entries(dir.path(), &["credentials"]), expected);
    assert_eq!(remove_stale_temps(&path).unwrap(), 0);
}

#[test]
fn stale_temps_are_looked_for_beside_the_symlink_target() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("real")).unwrap();
    let link = dir.path().join("credentials");
    symlink("real/creds", &link).unwrap();
    let stale = dir
        .path()
        .join("real")
        .join(temp_like("creds", dead_pid(), "ab"));
    fs::write(&stale, b"junk").unwrap();

    assert_eq!(remove_stale_temps(&link).unwrap(), 1);
    assert!(!stale.exists());
    // No directory, nothing to do.
    assert_eq!(
        remove_stale_temps(&dir.path().join("nope/credentials")).unwrap(),
        0
    );
}

#[test]
fn planted_symlinks_at_temp_names_are_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials");
    fs::write(&path, b"[a]\n").unwrap();
    let victim_dir = tempfile::tempdir().unwrap();
    let victim = victim_dir.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o644)).unwrap();

    let own = std::process::id();
    let planted: Vec<PathBuf> = ["0", "1", "00000000deadbeef"]
        .iter()
        .map(|r| dir.path().join(temp_like("credentials", own, r)))
        .collect();
    for p in &planted {
        symlink(&victim, p).unwrap();
    }

    // update writes its own temp file (O_EXCL): the links and their target are untouched.
    update(&path, &atomic(), set(b"[b]\n")).unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"[b]\n");
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    for p in &planted {
        assert!(fs::symlink_metadata(p).unwrap().file_type().is_symlink());
    }

    // remove_stale_temps removes the links themselves, never what they point to.
    assert_eq!(remove_stale_temps(&path).unwrap(), planted.len());
    for p in &planted {
        assert!(fs::symlink_metadata(p).is_err());
    }
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert_eq!(mode_of(&victim), 0o644);
    assert_eq!(
        extra_entries(dir.path(), &["credentials"]),
        Vec::<String>::new()
    );
}

#[test]
fn symlink_to_a_bare_name_resolves_beside_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("link");
    symlink("target-file", &link).unwrap();
    update(&link, &atomic(), set(b"ok")).unwrap();
    assert_eq!(fs::read(dir.path().join("target-file")).unwrap(), b"ok");
}

#[test]
fn an_existing_entry_at_the_chosen_temp_name_is_skipped_not_opened() {
    // The temp name's random part comes from fastrand's thread-local generator: seeding it
    // lets us plant a file and a symlink at the first two names update will try.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials");
    fs::write(&path, b"[a]\n").unwrap();
    let victim = dir.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    let own = std::process::id();
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let first = dir.path().join(temp_like(
        "credentials",
        own,
        &format!("{:016x}", rng.u64(..)),
    ));
    let second = dir.path().join(temp_like(
        "credentials",
        own,
        &format!("{:016x}", rng.u64(..)),
    ));
    fs::write(&first, b"planted").unwrap();
    symlink(&victim, &second).unwrap();

    fastrand::seed(0x5eed);
    update(&path, &atomic(), set(b"[b]\n")).unwrap();

    assert_eq!(fs::read(&path).unwrap(), b"[b]\n");
    assert_eq!(fs::read(&first).unwrap(), b"planted");
    assert!(
        fs::symlink_metadata(&second)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    let mut expected = vec![
        first.file_name().unwrap().to_string_lossy().into_owned(),
        second.file_name().unwrap().to_string_lossy().into_owned(),
        "victim".to_string(),
    ];
    expected.sort();
    assert_eq!(extra_entries(dir.path(), &["credentials"]), expected);
}
