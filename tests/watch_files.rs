//! The watcher against real directories: what reaches the daemon, what does not.
//!
//! Each test gets its own temp HOME and a current-thread runtime, as the daemon has. What an
//! action reported is read up to a mark: a known change the test makes after the action, of a
//! kind the action must not report (a `chmod` of credsync's config, one inotify event). The
//! kernel reports a watcher's events in order, so once the mark is reported everything the
//! action caused has been too, and "nothing" is proven without waiting a fixed time.

use std::collections::BTreeSet;
use std::fs;
use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use credsync::watch::{self, Change, WatchSpec, Watcher};
use tokio::sync::mpsc::Receiver;
use tokio::time::timeout;

/// The coalescing window after the first event of a burst.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// Deadline for an event that must come.
const EXPECT: Duration = Duration::from_secs(5);

fn run<F: Future<Output = ()>>(f: F) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f);
}

struct Home {
    _tmp: tempfile::TempDir,
    home: PathBuf,
}

impl Home {
    /// An empty HOME: no `~/.aws` at all; credsync's config (the mark) exists.
    fn empty() -> Home {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().to_owned();
        let h = Home { _tmp: tmp, home };
        fs::create_dir_all(h.credsync_config().parent().unwrap()).unwrap();
        fs::write(h.credsync_config(), "").unwrap();
        h
    }

    /// A HOME with `~/.aws/config`, `~/.aws/credentials` and `~/.aws/sso/cache/`.
    fn with_aws() -> Home {
        let h = Home::empty();
        fs::create_dir_all(h.cache()).unwrap();
        fs::write(h.config(), "[default]\nregion = eu-west-1\n").unwrap();
        fs::write(h.credentials(), "[mine]\naws_access_key_id = AKIAEXAMPLE\n").unwrap();
        h
    }

    fn aws(&self) -> PathBuf {
        self.home.join(".aws")
    }
    fn config(&self) -> PathBuf {
        self.aws().join("config")
    }
    fn credentials(&self) -> PathBuf {
        self.aws().join("credentials")
    }
    fn cache(&self) -> PathBuf {
        self.aws().join("sso/cache")
    }
    fn credsync_config(&self) -> PathBuf {
        self.home.join(".config/credsync/config.toml")
    }

    fn spec(&self) -> WatchSpec {
        WatchSpec {
            aws_config: self.config(),
            credsync_config: Some(self.credsync_config()),
            sso_cache_dir: self.cache(),
            credentials_file: self.credentials(),
            login_cache_dir: None,
        }
    }

    fn start(&self) -> (Watcher, Receiver<BTreeSet<Change>>) {
        watch::start(self.spec(), DEBOUNCE).unwrap()
    }

    /// What the actions since the last call reported: marks credsync's config and reads the
    /// batches up to the mark's.
    async fn reported(&self, rx: &mut Receiver<BTreeSet<Change>>) -> BTreeSet<Change> {
        reported_up_to(rx, &self.credsync_config(), Change::CredsyncConfig).await
    }
}

/// Marks the event stream with one event on `mark` (a file whose changes report `kind`): its
/// mode is flipped, which is one inotify event, so no trailing event of this mark can be taken
/// for the next one. Returns everything reported up to and with the mark, `kind` left out.
async fn reported_up_to(
    rx: &mut Receiver<BTreeSet<Change>>,
    mark: &Path,
    kind: Change,
) -> BTreeSet<Change> {
    let mode = fs::metadata(mark).unwrap().permissions().mode() & 0o777;
    let flipped = if mode == 0o600 { 0o644 } else { 0o600 };
    fs::set_permissions(mark, fs::Permissions::from_mode(flipped)).unwrap();
    let mut seen = BTreeSet::new();
    loop {
        let batch = timeout(EXPECT, rx.recv())
            .await
            .expect("the mark was not reported within 5 s")
            .expect("the watcher stopped");
        let done = batch.contains(&kind);
        seen.extend(batch);
        if done {
            seen.remove(&kind);
            return seen;
        }
    }
}

/// Replaces `path` as an editor does: write a sibling, rename it over.
fn editor_save(path: &Path, text: &str) {
    let tmp = path.with_file_name(format!(
        ".{}.swp",
        path.file_name().unwrap().to_str().unwrap()
    ));
    fs::write(&tmp, text).unwrap();
    fs::rename(&tmp, path).unwrap();
}

/// Writes `path` as credsync does: `.NAME.credsync-<pid>-<random>.tmp`, then rename.
fn credsync_write(path: &Path, text: &str) {
    let name = path.file_name().unwrap().to_str().unwrap();
    let tmp = path.with_file_name(format!(
        ".{name}.credsync-{}-00c0ffee.tmp",
        std::process::id()
    ));
    fs::write(&tmp, text).unwrap();
    fs::rename(&tmp, path).unwrap();
}

fn token_json(token: &str) -> String {
    format!(r#"{{"accessToken": "{token}", "expiresAt": "2030-01-01T00:00:00Z"}}"#)
}

fn only(change: Change) -> BTreeSet<Change> {
    BTreeSet::from([change])
}

#[test]
fn editor_save_of_aws_config_reports_aws_config() {
    run(async {
        let h = Home::with_aws();
        let (_w, mut rx) = h.start();
        editor_save(&h.config(), "[default]\nregion = us-east-1\n");
        assert_eq!(h.reported(&mut rx).await, only(Change::AwsConfig));
        assert_eq!(
            h.reported(&mut rx).await,
            BTreeSet::new(),
            "reported again later"
        );
    });
}

#[test]
fn in_place_edit_of_aws_config_reports_aws_config() {
    run(async {
        let h = Home::with_aws();
        let (_w, mut rx) = h.start();
        use std::io::Write;
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(h.config())
            .unwrap();
        f.write_all(b"[profile x]\nregion = eu-central-1\n")
            .unwrap();
        drop(f);
        assert_eq!(h.reported(&mut rx).await, only(Change::AwsConfig));
    });
}

#[test]
fn new_token_cache_file_reports_token_cache() {
    run(async {
        let h = Home::with_aws();
        let (_w, mut rx) = h.start();
        fs::write(h.cache().join("0123456789abcdef.json"), token_json("t1")).unwrap();
        assert_eq!(h.reported(&mut rx).await, only(Change::TokenCache));
    });
}

#[test]
fn user_edit_of_credentials_reports_credentials_file() {
    run(async {
        let h = Home::with_aws();
        let (_w, mut rx) = h.start();
        editor_save(&h.credentials(), "[mine]\naws_access_key_id = AKIAOTHER\n");
        assert_eq!(h.reported(&mut rx).await, only(Change::CredentialsFile));
    });
}

#[test]
fn credsync_config_change_is_reported_and_its_missing_directory_waited_for() {
    run(async {
        let h = Home::with_aws();
        fs::remove_dir_all(h.home.join(".config")).unwrap();
        let (_w, mut rx) = h.start();
        // The mark is the credentials file here: this test is about credsync's config.
        let (mark, kind) = (h.credentials(), Change::CredentialsFile);
        let config = h.credsync_config();
        fs::create_dir_all(config.parent().unwrap()).unwrap();
        fs::write(&config, "min_remaining = \"30m\"\n").unwrap();
        let reported = reported_up_to(&mut rx, &mark, kind).await;
        assert_eq!(reported, only(Change::CredsyncConfig));
        editor_save(&config, "min_remaining = \"20m\"\n");
        let reported = reported_up_to(&mut rx, &mark, kind).await;
        assert_eq!(reported, only(Change::CredsyncConfig));
    });
}

#[test]
fn own_write_followed_by_note_reports_nothing_but_a_later_user_edit_does() {
    run(async {
        let h = Home::with_aws();
        let (w, mut rx) = h.start();

        // No await between the write and the note, as in the daemon.
        credsync_write(
            &h.credentials(),
            "[mine]\n\n[dev]\naws_access_key_id = AKIA1\n",
        );
        w.note_own_write(&h.credentials());
        assert_eq!(h.reported(&mut rx).await, BTreeSet::new());

        let token = h.cache().join("fedcba9876543210.json");
        credsync_write(&token, &token_json("t2"));
        w.note_own_write(&token);
        assert_eq!(h.reported(&mut rx).await, BTreeSet::new());

        // The same files edited by someone else afterwards are reported.
        editor_save(
            &h.credentials(),
            "[mine]\n\n[dev]\naws_access_key_id = AKIA1\n[x]\n",
        );
        assert_eq!(h.reported(&mut rx).await, only(Change::CredentialsFile));
        fs::write(&token, token_json("from aws sso login")).unwrap();
        assert_eq!(h.reported(&mut rx).await, only(Change::TokenCache));
    });
}

#[test]
fn own_write_through_a_symlink_is_recognised() {
    run(async {
        let h = Home::with_aws();
        let real = h.home.join("dotfiles");
        fs::create_dir_all(&real).unwrap();
        fs::rename(h.credentials(), real.join("aws-credentials")).unwrap();
        std::os::unix::fs::symlink(real.join("aws-credentials"), h.credentials()).unwrap();
        let (w, mut rx) = h.start();

        // credsync follows the link and replaces the target.
        credsync_write(&real.join("aws-credentials"), "[dev]\n");
        w.note_own_write(&h.credentials());
        assert_eq!(h.reported(&mut rx).await, BTreeSet::new());

        editor_save(&real.join("aws-credentials"), "[dev]\n[user]\n");
        assert_eq!(h.reported(&mut rx).await, only(Change::CredentialsFile));
    });
}

#[test]
fn edit_of_a_symlinked_config_target_is_reported() {
    run(async {
        let h = Home::with_aws();
        let dotfiles = h.home.join("dotfiles");
        fs::create_dir_all(&dotfiles).unwrap();
        fs::remove_file(h.config()).unwrap();
        fs::write(dotfiles.join("aws-config"), "[default]\n").unwrap();
        std::os::unix::fs::symlink("../dotfiles/aws-config", h.config()).unwrap();
        let (_w, mut rx) = h.start();

        editor_save(
            &dotfiles.join("aws-config"),
            "[default]\nregion = eu-west-2\n",
        );
        assert_eq!(h.reported(&mut rx).await, only(Change::AwsConfig));

        // Re-pointing the link is a change too, and the new target is watched afterwards.
        let other = h.home.join("elsewhere");
        fs::create_dir_all(&other).unwrap();
        fs::write(other.join("config"), "[default]\n").unwrap();
        let link_tmp = h.aws().join("config.new");
        std::os::unix::fs::symlink(other.join("config"), &link_tmp).unwrap();
        fs::rename(&link_tmp, h.config()).unwrap();
        assert_eq!(h.reported(&mut rx).await, only(Change::AwsConfig));
        editor_save(&other.join("config"), "[default]\nregion = ap-south-1\n");
        assert_eq!(h.reported(&mut rx).await, only(Change::AwsConfig));
    });
}

#[test]
fn burst_of_50_writes_gives_one_or_very_few_batches() {
    run(async {
        let h = Home::with_aws();
        // A window the burst surely fits in, even on a loaded machine: the leading edge, then
        // one batch when the window closes.
        let (_w, mut rx) = watch::start(h.spec(), Duration::from_secs(1)).unwrap();
        for i in 0..50 {
            fs::write(h.config(), format!("[default]\nregion = r{i}\n")).unwrap();
            // Let the watcher task run between writes, as a busy daemon would.
            tokio::task::yield_now().await;
        }
        // Every batch up to the mark's: the burst's, then the mark (perhaps with the burst's
        // last events).
        fs::write(h.cache().join("mark.json"), token_json("mark")).unwrap();
        let mut batches = Vec::new();
        while !batches
            .last()
            .is_some_and(|b: &BTreeSet<Change>| b.contains(&Change::TokenCache))
        {
            let batch = timeout(EXPECT, rx.recv())
                .await
                .expect("the mark was not reported within 5 s")
                .expect("the watcher stopped");
            batches.push(batch);
        }
        let burst: Vec<_> = batches
            .iter()
            .filter(|b| b.contains(&Change::AwsConfig))
            .collect();
        assert!(
            (1..=2).contains(&burst.len()),
            "{} batches: {batches:?}",
            burst.len()
        );
        let all: BTreeSet<Change> = batches.into_iter().flatten().collect();
        assert_eq!(all, BTreeSet::from([Change::AwsConfig, Change::TokenCache]));
    });
}

#[test]
fn cache_directory_created_later_is_picked_up() {
    run(async {
        let h = Home::empty();
        fs::create_dir_all(h.aws()).unwrap();
        let (_w, mut rx) = h.start();

        // Created together with its first token, as `aws sso login` does: the token may be
        // there before the directory is watched.
        fs::create_dir_all(h.cache()).unwrap();
        fs::write(h.cache().join("aaaa.json"), token_json("t1")).unwrap();
        assert_eq!(h.reported(&mut rx).await, only(Change::TokenCache));

        // From now on the real directory is watched.
        fs::write(h.cache().join("bbbb.json"), token_json("t2")).unwrap();
        assert_eq!(h.reported(&mut rx).await, only(Change::TokenCache));
    });
}

#[test]
fn missing_aws_directory_is_waited_for() {
    run(async {
        let h = Home::empty();
        let (_w, mut rx) = h.start();

        fs::create_dir_all(h.aws()).unwrap();
        assert_eq!(h.reported(&mut rx).await, BTreeSet::new());
        fs::write(h.config(), "[default]\n").unwrap();
        assert_eq!(h.reported(&mut rx).await, only(Change::AwsConfig));
        fs::create_dir_all(h.cache()).unwrap();
        fs::write(h.cache().join("cccc.json"), token_json("t")).unwrap();
        assert_eq!(h.reported(&mut rx).await, only(Change::TokenCache));
    });
}

#[test]
fn aws_directory_deleted_and_recreated_is_watched_again() {
    run(async {
        let h = Home::with_aws();
        let (_w, mut rx) = h.start();
        // The files went away with their directory.
        fs::remove_dir_all(h.aws()).unwrap();
        assert_eq!(
            h.reported(&mut rx).await,
            BTreeSet::from([Change::AwsConfig, Change::CredentialsFile])
        );
        fs::create_dir_all(h.aws()).unwrap();
        assert_eq!(h.reported(&mut rx).await, BTreeSet::new());
        fs::write(h.config(), "[default]\n").unwrap();
        assert_eq!(h.reported(&mut rx).await, only(Change::AwsConfig));
    });
}

#[test]
fn credsync_temp_file_reports_nothing() {
    run(async {
        let h = Home::with_aws();
        let (_w, mut rx) = h.start();
        let tmp = h.aws().join(".credentials.credsync-1-abc.tmp");
        fs::write(&tmp, "[x]\n").unwrap();
        fs::write(&tmp, "[x]\n[y]\n").unwrap();
        fs::remove_file(&tmp).unwrap();
        let token_tmp = h.cache().join(".aaaa.json.credsync-1-abc.tmp");
        fs::write(&token_tmp, "{}").unwrap();
        fs::remove_file(&token_tmp).unwrap();
        assert_eq!(h.reported(&mut rx).await, BTreeSet::new());
    });
}

#[test]
fn unrelated_files_report_nothing() {
    run(async {
        let h = Home::with_aws();
        let (_w, mut rx) = h.start();
        fs::create_dir_all(h.aws().join("cli")).unwrap();
        fs::write(h.aws().join("cli/alias"), "[toplevel]\n").unwrap();
        fs::write(h.aws().join("notes.txt"), "hi").unwrap();
        fs::write(h.aws().join("config.bak"), "[default]\n").unwrap();
        fs::write(h.aws().join("credentials~"), "[x]\n").unwrap();
        fs::write(h.cache().join("README"), "x").unwrap();
        fs::write(h.home.join(".bashrc"), "x").unwrap();
        // Reading the watched files is not a change either.
        fs::read(h.config()).unwrap();
        fs::read(h.credentials()).unwrap();
        assert_eq!(h.reported(&mut rx).await, BTreeSet::new());
    });
}

#[test]
fn dropping_the_watcher_closes_the_channel() {
    run(async {
        let h = Home::with_aws();
        let (w, mut rx) = h.start();
        drop(w);
        let closed = timeout(EXPECT, async { while rx.recv().await.is_some() {} }).await;
        assert!(
            closed.is_ok(),
            "the receiver stays open after the watcher is dropped"
        );
    });
}

#[test]
fn start_outside_a_runtime_is_an_error() {
    let h = Home::with_aws();
    let err = watch::start(h.spec(), DEBOUNCE).unwrap_err();
    assert!(err.to_string().contains("tokio runtime"), "{err}");
}

#[test]
fn the_first_event_is_reported_at_once() {
    run(async {
        let h = Home::with_aws();
        // A window far longer than any deadline here: a batch that arrives at all came from
        // the leading edge, not from the window closing.
        let (_w, mut rx) = watch::start(h.spec(), Duration::from_secs(3600)).unwrap();
        fs::write(h.cache().join("aaaa.json"), token_json("t1")).unwrap();
        let first = timeout(EXPECT, rx.recv())
            .await
            .expect("the first event waited for the coalescing window")
            .expect("the watcher stopped");
        assert_eq!(first, only(Change::TokenCache));
    });
}

#[test]
fn the_rest_of_a_burst_waits_for_the_window() {
    run(async {
        let h = Home::with_aws();
        let window = Duration::from_secs(1);
        let (_w, mut rx) = watch::start(h.spec(), window).unwrap();
        let began = Instant::now();
        fs::write(h.cache().join("aaaa.json"), token_json("t1")).unwrap();
        let first = timeout(EXPECT, rx.recv()).await.unwrap().unwrap();
        assert_eq!(first, only(Change::TokenCache));
        // What follows the first batch is held back until the window closes, however soon it
        // came: the window opened after the first write, so no sooner than `window` after it.
        editor_save(&h.config(), "[default]\nregion = eu-central-1\n");
        let rest = timeout(EXPECT, rx.recv()).await.unwrap().unwrap();
        let held = began.elapsed();
        assert!(rest.contains(&Change::AwsConfig), "{rest:?}");
        assert!(
            held >= window,
            "the rest of the burst came {held:?} after its start, within the {window:?} window"
        );
    });
}
