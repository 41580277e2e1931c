//! Telling the daemon when a file it depends on changed, so that it re-plans: `~/.aws/config`,
//! credsync's own config, the SSO token cache and the credentials file.
//!
//! - **Directories, not files.** Editors, the AWS CLI and credsync itself replace files by
//!   renaming a new one over them, which ends a watch on the old inode. So the *directory* of
//!   each file is watched, non-recursively, and events are matched to the exact file name within
//!   the canonicalised directory; the token cache is any `*.json` in its directory.
//! - **Symlinks.** When a watched file is a symlink, the directory of every hop of the link
//!   (and of its final target) is watched too, so an edit of the target is seen, and so is a
//!   re-pointed link. A watched directory that is itself a symlink has its name watched in its
//!   parent.
//! - **Missing directories** (no `~/.aws` yet, no `sso/cache` yet) are waited for, not an
//!   error: the nearest existing ancestor is watched for the next path component, and when the
//!   directory appears the real one is watched and the files that came with it are reported.
//!   After every batch the watch set is planned again from the paths, until it is stable, so a
//!   directory created between two looks is not missed; a deleted and re-created directory is
//!   watched again.
//! - **React at once, then coalesce.** The first relevant event (with whatever is already
//!   queued beside it) is reported at once, as one `BTreeSet<Change>`; events arriving within
//!   `window` after it become one more batch, and so on while they keep coming. A login is
//!   acted on without waiting for the burst to end; the AWS CLI writing the token file in place
//!   may then show a half-written file, which the daemon reads again a few milliseconds later.
//!   The notify callback only converts the event and
//!   `try_send`s it on a bounded channel: a full channel drops the event with a debug log and
//!   the next batch then reports every [`Change`] (a full re-read is never wrong, a lost event
//!   is). An inotify queue overflow does the same.
//! - **Own writes.** After credsync writes a file it calls [`Watcher::note_own_write`], which
//!   records the file's identity (device, inode, length, mtime, ctime). At the end of a window,
//!   events for a file whose identity still matches the record are dropped; a later edit by the
//!   user changes the identity and is reported. Identities are compared when a batch is
//!   reported, which can be as soon as the task runs next, so the note must be made before the
//!   writer yields to the runtime (the daemon writes and notes with no `.await` between).
//!   credsync's temp files (`.NAME.credsync-<pid>-<random>.tmp`) never count.
//! - **Windows drives are polled too.** inotify does not see what Windows programs write on a
//!   Windows drive mounted in WSL (drvfs, `/mnt/c`; microsoft/WSL#4739): a sign-in done with
//!   the Windows AWS CLI would go unnoticed. The watched directories the mount table puts on
//!   such a drive ([`crate::mounts`]) are also looked at every [`POLL_EVERY`]: the identity of
//!   each file that matters, compared with the last look, and what differs is reported like an
//!   event. notify's `PollWatcher` is not used: it compares modification times in whole
//!   seconds and only forwards (a second write within the same second is missed), on a thread
//!   of its own; this poll runs in the watcher's task, on tokio's clock. Nothing is polled when
//!   no directory is on such a drive.
//!
//! Errors at [`start`] are fatal and returned; errors while re-arming later (a directory that
//! cannot be read, the inotify limit) are logged and retried at the next batch.

use crate::write::{self, Identity, IdentityOf};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode};
use tokio::sync::mpsc;
use tokio::time::{Interval, MissedTickBehavior};
use tracing::{debug, warn};

use crate::mounts::MountTable;
use crate::platform::Platform;

/// What changed. The daemon re-reads the matching input and re-plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Change {
    /// The AWS config file (`~/.aws/config`, or `AWS_CONFIG_FILE`).
    AwsConfig,
    /// credsync's own TOML config.
    CredsyncConfig,
    /// A file in the SSO token cache (`*.json` in `~/.aws/sso/cache`) or the `aws login` cache.
    TokenCache,
    /// The shared credentials file credsync writes into.
    CredentialsFile,
}

/// The files to watch. Paths may be missing, relative (to the current directory) or symlinks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchSpec {
    pub aws_config: PathBuf,
    pub credsync_config: Option<PathBuf>,
    pub sso_cache_dir: PathBuf,
    pub credentials_file: PathBuf,
    /// The `aws login` cache (`*.json`), reported as [`Change::TokenCache`] too: a new sign-in
    /// there wakes the profiles waiting for one.
    pub login_cache_dir: Option<PathBuf>,
}

impl WatchSpec {
    /// Every change this spec can report: what a full re-read covers.
    pub(crate) fn changes(&self) -> BTreeSet<Change> {
        let mut all = BTreeSet::from([
            Change::AwsConfig,
            Change::TokenCache,
            Change::CredentialsFile,
        ]);
        if self.credsync_config.is_some() {
            all.insert(Change::CredsyncConfig);
        }
        all
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(
        "cannot watch {path} for changes: too many watches; raise fs.inotify.max_user_watches \
         (e.g. `sudo sysctl fs.inotify.max_user_watches=524288`, and add it to /etc/sysctl.conf)"
    )]
    TooManyWatches { path: PathBuf },
    #[error(
        "cannot start the file watcher: too many inotify instances; raise \
         fs.inotify.max_user_instances (e.g. `sudo sysctl fs.inotify.max_user_instances=512`)"
    )]
    TooManyInstances,
    #[error("cannot start the file watcher: {source}{}", platform_note(*platform))]
    Start {
        source: notify::Error,
        platform: Option<Platform>,
    },
    #[error("cannot watch directory {path} for changes: {source}{}", platform_note(*platform))]
    Watch {
        path: PathBuf,
        source: notify::Error,
        platform: Option<Platform>,
    },
    #[error("cannot look at {path} to watch it: {source}\ncheck that it is readable by this user")]
    Inspect { path: PathBuf, source: io::Error },
    #[error("the file watcher needs a tokio runtime: call watch::start from inside one")]
    NoRuntime,
}

/// What a watch error on `platform` should add: on macOS, what FSEvents is (the inotify limits
/// and their sysctl settings are Linux's, and have their own errors there).
fn platform_note(platform: Option<Platform>) -> &'static str {
    match platform {
        Some(Platform::MacOs) => {
            "\non macOS credsync watches through FSEvents, which has no watch limit to raise \
             (the fs.inotify settings are Linux's); it sees changes made on this Mac, not those \
             another machine makes on a network volume"
        }
        Some(Platform::Linux) | None => "",
    }
}

/// How often the watched directories on a Windows drive are looked at.
pub const POLL_EVERY: Duration = Duration::from_secs(2);

/// Where directory events come from: the OS's notifier (inotify, FSEvents) through notify's
/// [`RecommendedWatcher`], whose events reach the watcher through the callback it was made
/// with. Tests give one that misses what they need missed.
pub(crate) trait Backend: Send {
    /// Watches `dir`, not recursively.
    fn watch(&mut self, dir: &Path) -> notify::Result<()>;
    fn unwatch(&mut self, dir: &Path) -> notify::Result<()>;
}

impl Backend for RecommendedWatcher {
    fn watch(&mut self, dir: &Path) -> notify::Result<()> {
        notify::Watcher::watch(self, dir, RecursiveMode::NonRecursive)
    }

    fn unwatch(&mut self, dir: &Path) -> notify::Result<()> {
        notify::Watcher::unwatch(self, dir)
    }
}

/// The callback a [`Backend`] hands its events to.
pub(crate) type Events = Box<dyn FnMut(notify::Result<notify::Event>) + Send>;

/// Events waiting between the notify callback and the watcher's task.
const RAW_CAPACITY: usize = 1024;
/// Batches waiting for the daemon. Small: the daemon re-plans from scratch for any batch.
const OUT_CAPACITY: usize = 16;
/// Rounds of plan-and-arm before giving up on a stable watch set until the next batch.
const MAX_ARM_ROUNDS: usize = 8;

/// A running watcher. Dropping it stops watching and closes the receiver returned by [`start`].
pub struct Watcher {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for Watcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watcher").finish_non_exhaustive()
    }
}

struct Shared {
    /// `None` once the [`Watcher`] is dropped.
    notify: Mutex<Option<Box<dyn Backend>>>,
    /// Canonical path -> identity right after credsync wrote it.
    own_writes: Mutex<HashMap<PathBuf, Identity>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Watcher {
    /// Records that credsync just wrote `path` (the path it wrote through; symlinks are
    /// followed): events for that file are ignored while it keeps the identity it has now.
    /// Call it right after the write, before yielding to the runtime.
    pub fn note_own_write(&self, path: &Path) {
        let Ok(key) = fs::canonicalize(path) else {
            debug!(path = %path.display(), "own write: file is gone, nothing to note");
            return;
        };
        let Some(identity) = Identity::of_path(&key) else {
            debug!(path = %path.display(), "own write: cannot stat, nothing to note");
            return;
        };
        lock(&self.shared.own_writes).insert(key, identity);
    }

    /// Like [`Watcher::note_own_write`], with the identity the writer took from the file it
    /// wrote (so a change made between the write and this call is not mistaken for ours).
    pub(crate) fn note_own_write_as(&self, path: &Path, identity: Identity) {
        let Ok(key) = fs::canonicalize(path) else {
            debug!(path = %path.display(), "own write: file is gone, nothing to note");
            return;
        };
        lock(&self.shared.own_writes).insert(key, identity);
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        // Dropping the notify watcher ends its thread and its callback, which closes the raw
        // channel and so ends the task; the abort makes that immediate.
        drop(lock(&self.shared.notify).take());
        self.task.abort();
    }
}

/// Starts watching. Must be called inside a tokio runtime (a current-thread one is enough):
/// the watcher's task is spawned on it. Each message on the receiver is one batch (the first
/// event of a burst at once, the rest coalesced per `window`), never empty. Nothing is
/// reported for the files as they are at start.
pub fn start(
    spec: WatchSpec,
    window: Duration,
) -> Result<(Watcher, mpsc::Receiver<BTreeSet<Change>>), WatchError> {
    let native = |events: Events| -> notify::Result<Box<dyn Backend>> {
        Ok(Box::new(notify::recommended_watcher(events)?))
    };
    start_with(spec, window, native, MountTable::system(), POLL_EVERY)
}

/// [`start`] with the native notifier `native` makes (from the callback its events go to), the
/// mount table `mounts` (which directories are on a Windows drive), polled every `poll_every`.
pub(crate) fn start_with(
    spec: WatchSpec,
    window: Duration,
    native: impl FnOnce(Events) -> notify::Result<Box<dyn Backend>>,
    mounts: MountTable,
    poll_every: Duration,
) -> Result<(Watcher, mpsc::Receiver<BTreeSet<Change>>), WatchError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| WatchError::NoRuntime)?;
    let (raw_tx, raw_rx) = mpsc::channel(RAW_CAPACITY);
    let overflow = Arc::new(AtomicBool::new(false));
    let notify = native(Box::new(callback(raw_tx, overflow.clone())))
        .map_err(|e| start_error(Platform::current(), e))?;
    let shared = Arc::new(Shared {
        notify: Mutex::new(Some(notify)),
        own_writes: Mutex::new(HashMap::new()),
    });
    let mut task = Task {
        arm: Arming::new(spec),
        shared: shared.clone(),
        overflow,
        poll: Poller::new(mounts, poll_every),
    };
    task.arm.rearm(&shared)?;
    task.poll.follow(&task.arm.plan);
    let (out_tx, out_rx) = mpsc::channel(OUT_CAPACITY);
    let handle = runtime.spawn(task.run(raw_rx, out_tx, window));
    Ok((
        Watcher {
            shared,
            task: handle,
        },
        out_rx,
    ))
}

/// A failure to start watching on `platform`. On Linux, EMFILE from `inotify_init1` is the
/// per-user limit of inotify instances; elsewhere it is only what it says.
fn start_error(platform: Option<Platform>, e: notify::Error) -> WatchError {
    let inotify = platform == Some(Platform::Linux);
    match &e.kind {
        notify::ErrorKind::Io(io) if inotify && io.raw_os_error() == Some(libc::EMFILE) => {
            WatchError::TooManyInstances
        }
        _ => WatchError::Start {
            source: e,
            platform,
        },
    }
}

/// A failure to watch `path` on `platform`. On Linux, ENOSPC from `inotify_add_watch` (which
/// notify also reports as `MaxFilesWatch`) is the per-user limit of inotify watches.
fn watch_error(platform: Option<Platform>, path: &Path, e: notify::Error) -> WatchError {
    let inotify = platform == Some(Platform::Linux);
    let limit = match &e.kind {
        notify::ErrorKind::MaxFilesWatch => true,
        notify::ErrorKind::Io(io) => io.raw_os_error() == Some(libc::ENOSPC),
        _ => false,
    };
    if inotify && limit {
        return WatchError::TooManyWatches {
            path: path.to_owned(),
        };
    }
    WatchError::Watch {
        path: path.to_owned(),
        source: e,
        platform,
    }
}

/// What the notify callback hands to the task.
#[derive(Debug)]
enum Raw {
    Paths(Vec<PathBuf>),
    /// Events may have been lost: report everything.
    Rescan,
}

/// The notify callback: convert, `try_send`, never block notify's thread.
fn callback(
    tx: mpsc::Sender<Raw>,
    overflow: Arc<AtomicBool>,
) -> impl FnMut(notify::Result<notify::Event>) + Send + 'static {
    move |res| {
        let raw = match res {
            Ok(event) if event.need_rescan() => Raw::Rescan,
            Ok(event) if ignored_kind(&event.kind) => return,
            Ok(event) => Raw::Paths(event.paths),
            Err(e) => {
                warn!(error = %e, "file watcher error; re-reading every watched file");
                Raw::Rescan
            }
        };
        match tx.try_send(raw) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                overflow.store(true, Ordering::Relaxed);
                debug!("file watcher channel full; dropped an event, the next batch reports all");
            }
        }
    }
}

/// Events that do not change a file: opening it, closing it after reading.
fn ignored_kind(kind: &EventKind) -> bool {
    matches!(kind, EventKind::Access(a) if *a != AccessKind::Close(AccessMode::Write))
}

/// Which entries of a directory count.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Name(OsString),
    /// Any `*.json`: the token cache.
    Json,
}

impl Pattern {
    fn matches(&self, name: &OsStr) -> bool {
        match self {
            Pattern::Name(n) => n == name,
            Pattern::Json => name.as_bytes().ends_with(b".json"),
        }
    }
}

/// Entries matching `pattern` in the canonical directory `dir` report `change`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    change: Change,
    dir: PathBuf,
    pattern: Pattern,
}

/// An entry of the canonical directory `dir` whose appearance or replacement changes the watch
/// set: the next component towards a missing directory, or a symlinked directory.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Trigger {
    dir: PathBuf,
    name: OsString,
}

/// What to watch, derived from a [`WatchSpec`] and the file system as it is now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct WatchSet {
    targets: Vec<Target>,
    triggers: Vec<Trigger>,
}

/// Events gathered for one batch.
#[derive(Debug, Default)]
struct Batch {
    /// Matched files (canonical directory + name) and what they report.
    files: BTreeMap<PathBuf, BTreeSet<Change>>,
    /// The watch set may have to change.
    replan: bool,
    /// Events were lost: report every change.
    rescan: bool,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.files.is_empty() && !self.replan && !self.rescan
    }
}

impl WatchSet {
    /// Every directory to watch.
    fn dirs(&self) -> BTreeSet<&Path> {
        let targets = self.targets.iter().map(|t| t.dir.as_path());
        targets
            .chain(self.triggers.iter().map(|t| t.dir.as_path()))
            .collect()
    }

    /// Adds what an event on `path` means to `batch`; unrelated paths add nothing.
    fn classify(&self, path: &Path, batch: &mut Batch) {
        let watched = |dir: &Path| {
            self.targets.iter().any(|t| t.dir == dir) || self.triggers.iter().any(|t| t.dir == dir)
        };
        if watched(path) {
            // A watched directory itself was removed or moved.
            batch.replan = true;
            return;
        }
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return;
        };
        if write::is_temp_name(name) {
            return;
        }
        for t in &self.targets {
            if t.dir == dir && t.pattern.matches(name) {
                batch
                    .files
                    .entry(path.to_owned())
                    .or_default()
                    .insert(t.change);
            }
        }
        if self.triggers.iter().any(|t| t.dir == dir && t.name == name) {
            batch.replan = true;
        }
    }

    /// The plan for `spec` as the file system is now.
    fn build(spec: &WatchSpec) -> Result<WatchSet, WatchError> {
        let mut plan = WatchSet::default();
        plan.add_file(Change::AwsConfig, &spec.aws_config)?;
        if let Some(path) = &spec.credsync_config {
            plan.add_file(Change::CredsyncConfig, path)?;
        }
        plan.add_file(Change::CredentialsFile, &spec.credentials_file)?;
        plan.add_dir(Change::TokenCache, &spec.sso_cache_dir, Pattern::Json)?;
        if let Some(dir) = &spec.login_cache_dir {
            plan.add_dir(Change::TokenCache, dir, Pattern::Json)?;
        }
        Ok(plan)
    }

    /// Watches the file `path` and, when it is a symlink, every hop to its final target.
    fn add_file(&mut self, change: Change, path: &Path) -> Result<(), WatchError> {
        let mut path = absolute(path)?;
        for _ in 0..write::MAX_SYMLINK_HOPS {
            let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
                return Ok(());
            };
            let pattern = Pattern::Name(name.to_owned());
            let Some(dir) = self.add_dir(change, parent, pattern)? else {
                return Ok(());
            };
            let entry = dir.join(name);
            match write::follow_link(&entry) {
                Ok(Some(next)) => path = next,
                // A link that cannot be read is an error; an entry that cannot be looked at is
                // not watched further.
                Err(source) if is_symlink(&entry) => {
                    return Err(WatchError::Inspect {
                        path: entry,
                        source,
                    });
                }
                Ok(None) | Err(_) => return Ok(()),
            }
        }
        debug!(path = %path.display(), "too many symlink hops; not following further");
        Ok(())
    }

    /// Watches `dir` for `pattern`; returns its canonical path when it exists.
    fn add_dir(
        &mut self,
        change: Change,
        dir: &Path,
        pattern: Pattern,
    ) -> Result<Option<PathBuf>, WatchError> {
        let dir = absolute(dir)?;
        let Some(canonical) = existing_dir(&dir)? else {
            self.add_missing(&dir)?;
            return Ok(None);
        };
        self.targets.push(Target {
            change,
            dir: canonical.clone(),
            pattern,
        });
        if is_symlink(&dir) {
            // The link can be re-pointed: watch its name in its parent.
            if let (Some(parent), Some(name)) = (dir.parent(), dir.file_name())
                && let Some(parent) = existing_dir(parent)?
            {
                self.add_trigger(parent, name);
            }
        }
        Ok(Some(canonical))
    }

    /// Watches the nearest existing ancestor of the missing `dir` for the next component.
    fn add_missing(&mut self, dir: &Path) -> Result<(), WatchError> {
        let mut child = dir;
        while let Some(parent) = child.parent() {
            if let Some(canonical) = existing_dir(parent)? {
                if let Some(name) = child.file_name() {
                    self.add_trigger(canonical, name);
                }
                return Ok(());
            }
            child = parent;
        }
        Ok(())
    }

    fn add_trigger(&mut self, dir: PathBuf, name: &OsStr) {
        let trigger = Trigger {
            dir,
            name: name.to_owned(),
        };
        if !self.triggers.contains(&trigger) {
            self.triggers.push(trigger);
        }
    }
}

fn absolute(path: &Path) -> Result<PathBuf, WatchError> {
    std::path::absolute(path).map_err(|source| WatchError::Inspect {
        path: path.to_owned(),
        source,
    })
}

fn is_symlink(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// The canonical path of `dir` when it exists and is a directory; `None` when it or a parent is
/// missing or not a directory (something that may still appear).
fn existing_dir(dir: &Path) -> Result<Option<PathBuf>, WatchError> {
    let inspect = |source| WatchError::Inspect {
        path: dir.to_owned(),
        source,
    };
    let canonical = match fs::canonicalize(dir) {
        Ok(canonical) => canonical,
        Err(e) if is_missing(&e) => return Ok(None),
        Err(e) => return Err(inspect(e)),
    };
    match fs::metadata(&canonical) {
        Ok(m) if m.is_dir() => Ok(Some(canonical)),
        Ok(_) => Ok(None),
        Err(e) if is_missing(&e) => Ok(None),
        Err(e) => Err(inspect(e)),
    }
}

fn is_missing(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// A directory's identity: a re-created directory needs a new watch.
type DirId = (u64, u64);

fn dir_id(path: &Path) -> Option<DirId> {
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The watch set and the plan it was armed for.
struct Arming {
    spec: WatchSpec,
    plan: WatchSet,
    /// Watched directory -> its identity when the watch was added.
    watched: BTreeMap<PathBuf, DirId>,
    /// Target directories of the current plan -> their identity, to spot new ones.
    target_dirs: BTreeMap<PathBuf, DirId>,
}

impl Arming {
    fn new(spec: WatchSpec) -> Arming {
        Arming {
            spec,
            plan: WatchSet::default(),
            watched: BTreeMap::new(),
            target_dirs: BTreeMap::new(),
        }
    }

    /// Plans again and makes the watches match, repeating until a round changes nothing (so
    /// that a directory created just before its parent's watch was added is not missed).
    /// Returns the target directories that were not target directories before (they appeared,
    /// or were re-created): their files may have come without an event.
    fn rearm(&mut self, shared: &Shared) -> Result<Vec<PathBuf>, WatchError> {
        for _ in 0..MAX_ARM_ROUNDS {
            let plan = WatchSet::build(&self.spec)?;
            let changed = {
                let mut guard = lock(&shared.notify);
                let Some(notify) = guard.as_mut() else {
                    return Ok(Vec::new());
                };
                self.apply(notify.as_mut(), &plan)?
            };
            self.plan = plan;
            if !changed {
                break;
            }
        }
        let before = std::mem::take(&mut self.target_dirs);
        let mut fresh = Vec::new();
        for t in &self.plan.targets {
            let Some(id) = self.watched.get(&t.dir) else {
                continue;
            };
            if before.get(&t.dir) != Some(id) && !fresh.contains(&t.dir) {
                fresh.push(t.dir.clone());
            }
            self.target_dirs.insert(t.dir.clone(), *id);
        }
        Ok(fresh)
    }

    /// Watches the plan's directories and unwatches the rest; `true` when anything changed.
    fn apply(&mut self, notify: &mut dyn Backend, plan: &WatchSet) -> Result<bool, WatchError> {
        let wanted: BTreeMap<PathBuf, Option<DirId>> = plan
            .dirs()
            .into_iter()
            .map(|d| (d.to_owned(), dir_id(d)))
            .collect();
        let mut changed = false;
        let stale: Vec<PathBuf> = self
            .watched
            .iter()
            .filter(|(dir, id)| wanted.get(*dir) != Some(&Some(**id)))
            .map(|(dir, _)| dir.clone())
            .collect();
        for dir in stale {
            // The kernel may have dropped the watch already (directory deleted): ignore errors.
            let _ = notify.unwatch(&dir);
            self.watched.remove(&dir);
            changed = true;
        }
        for (dir, id) in wanted {
            let Some(id) = id else {
                // Gone since planning: the next round plans again.
                changed = true;
                continue;
            };
            if self.watched.contains_key(&dir) {
                continue;
            }
            changed = true;
            match notify.watch(&dir) {
                Ok(()) => {
                    debug!(dir = %dir.display(), "watching");
                    self.watched.insert(dir, id);
                }
                Err(e) if matches!(e.kind, notify::ErrorKind::PathNotFound) => {}
                Err(e) => return Err(watch_error(Platform::current(), &dir, e)),
            }
        }
        Ok(changed)
    }

    /// Adds the existing files of the target directory `dir` to `batch`.
    fn scan(&self, dir: &Path, batch: &mut Batch) {
        for t in self.plan.targets.iter().filter(|t| t.dir == dir) {
            match &t.pattern {
                Pattern::Name(name) => {
                    let path = dir.join(name);
                    if fs::symlink_metadata(&path).is_ok() {
                        batch.files.entry(path).or_default().insert(t.change);
                    }
                }
                Pattern::Json => {
                    let Ok(entries) = fs::read_dir(dir) else {
                        continue;
                    };
                    for entry in entries.flatten() {
                        let name = entry.file_name();
                        if t.pattern.matches(&name) && !write::is_temp_name(&name) {
                            let files = batch.files.entry(dir.join(name)).or_default();
                            files.insert(t.change);
                        }
                    }
                }
            }
        }
    }
}

/// What a directory polled on a Windows drive holds that matters: each entry's identity
/// (`None`: it cannot be looked at, e.g. a dangling link). `None` for a directory that cannot
/// be read.
type DirLook = Option<BTreeMap<OsString, Option<Identity>>>;

/// Looks at the watched directories on a Windows drive, where inotify misses what Windows
/// programs write.
struct Poller {
    mounts: MountTable,
    every: Duration,
    /// Polled directory -> what it held at the last look.
    seen: BTreeMap<PathBuf, DirLook>,
}

impl Poller {
    fn new(mounts: MountTable, every: Duration) -> Poller {
        Poller {
            mounts,
            every,
            seen: BTreeMap::new(),
        }
    }

    fn active(&self) -> bool {
        !self.seen.is_empty()
    }

    /// Polls the directories of `plan` that are on a Windows drive; one new to the poll starts
    /// from what it holds now (its files are reported with the directory, as for any
    /// directory new to the plan).
    fn follow(&mut self, plan: &WatchSet) {
        let dirs: BTreeSet<PathBuf> = plan
            .dirs()
            .into_iter()
            .filter(|d| self.mounts.is_windows_drive(d))
            .map(Path::to_owned)
            .collect();
        self.seen.retain(|d, _| dirs.contains(d));
        for dir in dirs {
            if let std::collections::btree_map::Entry::Vacant(e) = self.seen.entry(dir) {
                let now = look(plan, e.key());
                e.insert(now);
            }
        }
    }

    /// What changed in the polled directories since the last look, as the paths an event
    /// would name: a file that appeared, went or changed identity; a directory that appeared
    /// or went.
    fn changes(&mut self, plan: &WatchSet) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for (dir, before) in &mut self.seen {
            let now = look(plan, dir);
            match (&*before, &now) {
                (Some(a), Some(b)) => {
                    let names: BTreeSet<&OsString> = a.keys().chain(b.keys()).collect();
                    out.extend(
                        names
                            .into_iter()
                            .filter(|n| a.get(*n) != b.get(*n))
                            .map(|n| dir.join(n)),
                    );
                }
                (None, None) => {}
                _ => out.push(dir.clone()),
            }
            *before = now;
        }
        out
    }
}

/// The entries of `dir` that `plan` cares about (a target's file, a trigger's name), and their
/// identities.
fn look(plan: &WatchSet, dir: &Path) -> DirLook {
    let entries = fs::read_dir(dir).ok()?;
    let matters = |name: &OsStr| {
        !write::is_temp_name(name)
            && (plan
                .targets
                .iter()
                .any(|t| t.dir == dir && t.pattern.matches(name))
                || plan.triggers.iter().any(|t| t.dir == dir && t.name == name))
    };
    Some(
        entries
            .flatten()
            .map(|e| e.file_name())
            .filter(|name| matters(name))
            .map(|name| {
                let identity = Identity::of_path(&dir.join(&name));
                (name, identity)
            })
            .collect(),
    )
}

/// The watcher's task: turns raw events into batches of changes.
struct Task {
    arm: Arming,
    shared: Arc<Shared>,
    overflow: Arc<AtomicBool>,
    poll: Poller,
}

impl Task {
    async fn run(
        mut self,
        mut raw: mpsc::Receiver<Raw>,
        out: mpsc::Sender<BTreeSet<Change>>,
        window: Duration,
    ) {
        let every = self.poll.every;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            let Some(first) = self.next(&mut raw, &mut tick).await else {
                return;
            };
            // Leading edge: the first relevant event, with whatever is already queued beside
            // it, is reported at once.
            let mut batch = Batch::default();
            self.absorb(first, &mut batch);
            while let Ok(next) = raw.try_recv() {
                self.absorb(next, &mut batch);
            }
            if batch.is_empty() {
                continue;
            }
            if !self.emit(batch, &out).await {
                return;
            }
            // Then coalesce: what arrives within `window` becomes one more batch, and so on
            // while events keep coming; a quiet window ends the burst.
            loop {
                let deadline = tokio::time::Instant::now() + window;
                let mut batch = Batch::default();
                loop {
                    tokio::select! {
                        next = self.next(&mut raw, &mut tick) => match next {
                            Some(next) => self.absorb(next, &mut batch),
                            None => return,
                        },
                        () = tokio::time::sleep_until(deadline) => break,
                    }
                }
                if batch.is_empty() {
                    break;
                }
                if !self.emit(batch, &out).await {
                    return;
                }
            }
        }
    }

    /// The next event, or what the poll found changed; `None` when the events ended.
    async fn next(&mut self, raw: &mut mpsc::Receiver<Raw>, tick: &mut Interval) -> Option<Raw> {
        loop {
            tokio::select! {
                next = raw.recv() => return next,
                _ = tick.tick(), if self.poll.active() => {
                    let changed = self.poll.changes(&self.arm.plan);
                    if !changed.is_empty() {
                        debug!(?changed, "the poll found changes");
                        return Some(Raw::Paths(changed));
                    }
                }
            }
        }
    }

    /// Flushes `batch` and sends its changes, if any. `false` when the receiver is gone.
    async fn emit(&mut self, batch: Batch, out: &mpsc::Sender<BTreeSet<Change>>) -> bool {
        let changes = self.flush(batch);
        if changes.is_empty() {
            return true;
        }
        debug!(?changes, "watched files changed");
        out.send(changes).await.is_ok()
    }

    fn absorb(&self, raw: Raw, batch: &mut Batch) {
        if self.overflow.swap(false, Ordering::Relaxed) {
            batch.rescan = true;
        }
        match raw {
            Raw::Paths(paths) => {
                for path in &paths {
                    self.arm.plan.classify(path, batch);
                }
            }
            Raw::Rescan => batch.rescan = true,
        }
    }

    /// Re-arms, adds the files of new directories, drops own writes: the batch's changes.
    fn flush(&mut self, mut batch: Batch) -> BTreeSet<Change> {
        // What the poll sees now goes with this batch: a write the native watcher reported as
        // well is not reported a second time by the next look.
        for path in self.poll.changes(&self.arm.plan) {
            self.arm.plan.classify(&path, &mut batch);
        }
        // Always re-plan: cheap, and it also catches re-pointed symlinks.
        match self.arm.rearm(&self.shared) {
            Ok(fresh) => {
                for dir in fresh {
                    self.arm.scan(&dir, &mut batch);
                }
            }
            Err(e) => warn!("{e}; will retry on the next change"),
        }
        self.poll.follow(&self.arm.plan);
        let mut changes = BTreeSet::new();
        let mut own = lock(&self.shared.own_writes);
        for (path, file_changes) in batch.files {
            if is_own_write(&mut own, &path) {
                debug!(path = %path.display(), "ignoring credsync's own write");
                continue;
            }
            changes.extend(file_changes);
        }
        if batch.rescan {
            changes.extend(self.arm.spec.changes());
        }
        changes
    }
}

/// `true` when `path` still is as credsync last wrote it. A record that no longer matches is
/// dropped: the file was changed by someone else since.
fn is_own_write(own: &mut HashMap<PathBuf, Identity>, path: &Path) -> bool {
    let Some(recorded) = own.get(path) else {
        return false;
    };
    if Identity::of_path(path).as_ref() == Some(recorded) {
        return true;
    }
    own.remove(path);
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> Pattern {
        Pattern::Name(OsString::from(n))
    }

    fn plan() -> WatchSet {
        WatchSet {
            targets: vec![
                Target {
                    change: Change::AwsConfig,
                    dir: "/h/.aws".into(),
                    pattern: name("config"),
                },
                Target {
                    change: Change::CredentialsFile,
                    dir: "/h/.aws".into(),
                    pattern: name("credentials"),
                },
            ],
            triggers: vec![Trigger {
                dir: "/h/.aws".into(),
                name: "sso".into(),
            }],
        }
    }

    fn classify(plan: &WatchSet, paths: &[&str]) -> Batch {
        let mut batch = Batch::default();
        for p in paths {
            plan.classify(Path::new(p), &mut batch);
        }
        batch
    }

    /// A native notifier that is asked to watch and never reports anything: what inotify does
    /// with the writes Windows programs make on a Windows drive (microsoft/WSL#4739).
    #[derive(Debug, Clone, Default)]
    struct Deaf {
        watched: Arc<Mutex<Vec<PathBuf>>>,
    }

    /// [`Deaf`] as a backend: it keeps the callback it was given (as notify's watchers do, so
    /// the watcher's task runs on) and never calls it.
    struct DeafBackend {
        deaf: Deaf,
        _events: Events,
    }

    impl Deaf {
        fn backend(self) -> impl FnOnce(Events) -> notify::Result<Box<dyn Backend>> {
            move |events| {
                Ok(Box::new(DeafBackend {
                    deaf: self,
                    _events: events,
                }))
            }
        }
    }

    impl Backend for DeafBackend {
        fn watch(&mut self, dir: &Path) -> notify::Result<()> {
            lock(&self.deaf.watched).push(dir.to_owned());
            Ok(())
        }

        fn unwatch(&mut self, dir: &Path) -> notify::Result<()> {
            lock(&self.deaf.watched).retain(|d| d != dir);
            Ok(())
        }
    }

    /// Runs `f` on a current-thread runtime whose clock starts paused: it moves only when every
    /// task waits, straight to the next timer.
    fn paused<F: std::future::Future<Output = ()>>(f: F) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(f);
    }

    /// `~/.aws` with a config, a credentials file and an empty token cache, in a temp dir that
    /// the returned mount table puts on a Windows drive (`9p`), or on ext4.
    fn windows_home(windows: bool) -> (tempfile::TempDir, WatchSpec, MountTable) {
        let tmp = tempfile::tempdir().unwrap();
        let aws = tmp.path().join(".aws");
        fs::create_dir_all(aws.join("sso/cache")).unwrap();
        fs::write(aws.join("config"), "[default]\nregion = eu-west-1\n").unwrap();
        fs::write(aws.join("credentials"), "[mine]\n").unwrap();
        let root = fs::canonicalize(tmp.path()).unwrap();
        let fstype = if windows { "9p" } else { "ext4" };
        let mounts = MountTable::parse(&format!(
            "/dev/sdc / ext4 rw 0 0\nC:\\134 {} {fstype} rw,aname=drvfs 0 0\n",
            root.display()
        ));
        let spec = WatchSpec {
            aws_config: aws.join("config"),
            credsync_config: None,
            sso_cache_dir: aws.join("sso/cache"),
            credentials_file: aws.join("credentials"),
            login_cache_dir: None,
        };
        (tmp, spec, mounts)
    }

    const WINDOW: Duration = Duration::from_millis(100);

    /// The next batch, which must come within one poll period (and a tick of tokio's clock).
    async fn within_a_period(rx: &mut mpsc::Receiver<BTreeSet<Change>>) -> BTreeSet<Change> {
        let period = POLL_EVERY + Duration::from_millis(1);
        match tokio::time::timeout(period, rx.recv()).await {
            Ok(Some(changes)) => changes,
            other => panic!("nothing reported within {period:?}: {other:?}"),
        }
    }

    #[test]
    fn a_windows_side_write_the_native_watcher_misses_is_polled_within_its_period() {
        paused(async {
            let (tmp, spec, mounts) = windows_home(true);
            let deaf = Deaf::default();
            let (_watcher, mut rx) = start_with(
                spec.clone(),
                WINDOW,
                deaf.clone().backend(),
                mounts,
                POLL_EVERY,
            )
            .unwrap();
            // The native notifier watches the directory too (it sees what Linux programs write).
            let aws = fs::canonicalize(tmp.path().join(".aws")).unwrap();
            assert!(lock(&deaf.watched).contains(&aws));

            // A Windows program writes the credentials file: no event, the poll notices.
            let t0 = tokio::time::Instant::now();
            fs::write(
                &spec.credentials_file,
                "[mine]\naws_access_key_id = AKIAW\n",
            )
            .unwrap();
            let changes = within_a_period(&mut rx).await;
            assert!(t0.elapsed() <= POLL_EVERY, "{:?}", t0.elapsed());
            assert_eq!(changes, BTreeSet::from([Change::CredentialsFile]));

            // The Windows AWS CLI signs in: a new token file in the cache.
            let t1 = tokio::time::Instant::now();
            fs::write(spec.sso_cache_dir.join("0123abcd.json"), "{}").unwrap();
            let changes = within_a_period(&mut rx).await;
            assert!(t1.elapsed() <= POLL_EVERY, "{:?}", t1.elapsed());
            assert_eq!(changes, BTreeSet::from([Change::TokenCache]));

            // Reported once: nothing more while nothing changes.
            let quiet = tokio::time::timeout(5 * POLL_EVERY, rx.recv()).await;
            assert!(quiet.is_err(), "{quiet:?}");
        });
    }

    #[test]
    fn a_write_the_native_watcher_misses_off_a_windows_drive_is_not_polled_for() {
        paused(async {
            let (_tmp, spec, mounts) = windows_home(false);
            let (watcher, mut rx) = start_with(
                spec.clone(),
                WINDOW,
                Deaf::default().backend(),
                mounts,
                POLL_EVERY,
            )
            .unwrap();
            fs::write(
                &spec.credentials_file,
                "[mine]\naws_access_key_id = AKIAW\n",
            )
            .unwrap();
            // Nothing polls a Linux file system: the deaf notifier's silence is all there is.
            let missed = tokio::time::timeout(5 * POLL_EVERY, rx.recv()).await;
            assert!(missed.is_err(), "{missed:?}");
            drop(watcher);
        });
    }

    #[test]
    fn exact_names_match_and_others_do_not() {
        let b = classify(&plan(), &["/h/.aws/config", "/h/.aws/credentials"]);
        assert_eq!(b.files.len(), 2);
        assert_eq!(
            b.files[Path::new("/h/.aws/config")],
            BTreeSet::from([Change::AwsConfig])
        );
        assert!(!b.replan && !b.rescan);

        let b = classify(
            &plan(),
            &[
                "/h/.aws/config.bak",
                "/h/.aws/config~",
                "/h/.aws/.config.swp",
                "/h/.aws/cli",
                "/h/other/config",
                "/h/.aws/sub/config",
                "/",
            ],
        );
        assert!(b.is_empty(), "{b:?}");
    }

    #[test]
    fn credsync_temp_files_never_match() {
        let mut p = plan();
        p.targets.push(Target {
            change: Change::TokenCache,
            dir: "/h/.aws".into(),
            pattern: Pattern::Json,
        });
        let b = classify(
            &p,
            &[
                "/h/.aws/.credentials.credsync-1-abc.tmp",
                "/h/.aws/.x.json.credsync-77-00ff.tmp",
                "/h/.aws/.credsync-1.tmp.json.credsync-2-a.tmp",
            ],
        );
        assert!(b.is_empty(), "{b:?}");
        assert!(write::is_temp_name(OsStr::new(
            ".credentials.credsync-4242-00000000deadbeef.tmp"
        )));
        assert!(!write::is_temp_name(OsStr::new("credentials")));
        assert!(!write::is_temp_name(OsStr::new(
            ".credentials.credsync-1-abc"
        )));
        assert!(!write::is_temp_name(OsStr::new(
            "credentials.credsync-1-abc.tmp"
        )));
    }

    #[test]
    fn json_pattern_matches_any_json_in_its_directory_only() {
        let p = WatchSet {
            targets: vec![Target {
                change: Change::TokenCache,
                dir: "/h/.aws/sso/cache".into(),
                pattern: Pattern::Json,
            }],
            triggers: vec![],
        };
        let b = classify(
            &p,
            &[
                "/h/.aws/sso/cache/0123abcd.json",
                "/h/.aws/sso/cache/botocore-client-id-eu-west-1.json",
            ],
        );
        assert_eq!(b.files.len(), 2);
        let b = classify(
            &p,
            &[
                "/h/.aws/sso/cache/notes.txt",
                "/h/.aws/sso/cache/x.json.lock",
                "/h/.aws/sso/x.json",
            ],
        );
        assert!(b.is_empty(), "{b:?}");
    }

    #[test]
    fn triggers_and_watched_directories_ask_for_a_replan() {
        let b = classify(&plan(), &["/h/.aws/sso"]);
        assert!(b.replan && b.files.is_empty());
        let b = classify(&plan(), &["/h/.aws"]);
        assert!(b.replan, "an event on the watched directory itself");
        let b = classify(&plan(), &["/h/.aws/ssox"]);
        assert!(b.is_empty());
    }

    #[test]
    fn access_events_other_than_close_write_are_ignored() {
        assert!(ignored_kind(&EventKind::Access(AccessKind::Open(
            notify::event::AccessMode::Any
        ))));
        assert!(ignored_kind(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(!ignored_kind(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(!ignored_kind(&EventKind::Modify(
            notify::event::ModifyKind::Any
        )));
        assert!(!ignored_kind(&EventKind::Remove(
            notify::event::RemoveKind::File
        )));
    }

    #[test]
    fn inotify_limit_has_its_own_error_and_hint() {
        let linux = Some(Platform::Linux);
        let e = watch_error(
            linux,
            Path::new("/h/.aws"),
            notify::Error::new(notify::ErrorKind::MaxFilesWatch),
        );
        assert!(matches!(e, WatchError::TooManyWatches { .. }));
        let msg = e.to_string();
        assert!(msg.contains("/h/.aws"), "{msg}");
        assert!(
            msg.contains("too many watches; raise fs.inotify.max_user_watches"),
            "{msg}"
        );

        let e = watch_error(
            linux,
            Path::new("/h"),
            notify::Error::io(io::Error::from_raw_os_error(libc::ENOSPC)),
        );
        assert!(matches!(e, WatchError::TooManyWatches { .. }));
        let e = watch_error(
            linux,
            Path::new("/h"),
            notify::Error::io(io::Error::from_raw_os_error(libc::EACCES)),
        );
        assert!(matches!(e, WatchError::Watch { .. }));
        assert!(!e.to_string().contains("FSEvents"), "{e}");
        let e = start_error(
            linux,
            notify::Error::io(io::Error::from_raw_os_error(libc::EMFILE)),
        );
        assert!(e.to_string().contains("max_user_instances"), "{e}");
    }

    #[test]
    fn macos_gets_fsevents_facts_not_inotify_advice() {
        let mac = Some(Platform::MacOs);
        let errors = [
            watch_error(
                mac,
                Path::new("/Users/u/.aws"),
                notify::Error::new(notify::ErrorKind::MaxFilesWatch),
            ),
            watch_error(
                mac,
                Path::new("/Users/u/.aws"),
                notify::Error::io(io::Error::from_raw_os_error(libc::ENOSPC)),
            ),
            start_error(
                mac,
                notify::Error::io(io::Error::from_raw_os_error(libc::EMFILE)),
            ),
        ];
        for e in errors {
            assert!(
                matches!(e, WatchError::Watch { .. } | WatchError::Start { .. }),
                "{e:?}"
            );
            let msg = e.to_string();
            assert!(!msg.contains("sysctl"), "{msg}");
            assert!(
                msg.contains("FSEvents, which has no watch limit to raise"),
                "{msg}"
            );
        }
    }

    fn spec_in(home: &Path) -> WatchSpec {
        WatchSpec {
            aws_config: home.join(".aws/config"),
            credsync_config: None,
            sso_cache_dir: home.join(".aws/sso/cache"),
            credentials_file: home.join(".aws/credentials"),
            login_cache_dir: None,
        }
    }

    #[test]
    fn missing_directories_are_watched_through_their_nearest_ancestor() {
        let tmp = tempfile::tempdir().unwrap();
        let home = fs::canonicalize(tmp.path()).unwrap();
        let p = WatchSet::build(&spec_in(&home)).unwrap();
        assert!(p.targets.is_empty(), "{p:?}");
        assert_eq!(
            p.triggers,
            vec![Trigger {
                dir: home.clone(),
                name: ".aws".into()
            }]
        );

        fs::create_dir_all(home.join(".aws/sso")).unwrap();
        let p = WatchSet::build(&spec_in(&home)).unwrap();
        let aws = home.join(".aws");
        assert_eq!(p.targets.len(), 2);
        assert!(p.targets.iter().all(|t| t.dir == aws));
        assert_eq!(
            p.triggers,
            vec![Trigger {
                dir: aws.join("sso"),
                name: "cache".into()
            }]
        );
        assert_eq!(
            p.dirs(),
            BTreeSet::from([aws.as_path(), aws.join("sso").as_path()])
        );
    }

    #[test]
    fn a_directory_in_the_way_of_a_file_counts_as_missing() {
        let tmp = tempfile::tempdir().unwrap();
        let home = fs::canonicalize(tmp.path()).unwrap();
        fs::write(home.join(".aws"), b"not a directory").unwrap();
        let p = WatchSet::build(&spec_in(&home)).unwrap();
        assert!(p.targets.is_empty());
        assert_eq!(p.dirs(), BTreeSet::from([home.as_path()]));
    }

    #[test]
    fn symlinked_files_watch_every_hop() {
        let tmp = tempfile::tempdir().unwrap();
        let home = fs::canonicalize(tmp.path()).unwrap();
        let aws = home.join(".aws");
        let dots = home.join("dotfiles/aws");
        let real = home.join("real");
        fs::create_dir_all(&aws).unwrap();
        fs::create_dir_all(&dots).unwrap();
        fs::create_dir_all(&real).unwrap();
        // ~/.aws/config -> ../dotfiles/aws/config -> /abs/real/aws-config
        std::os::unix::fs::symlink("../dotfiles/aws/config", aws.join("config")).unwrap();
        std::os::unix::fs::symlink(real.join("aws-config"), dots.join("config")).unwrap();
        let p = WatchSet::build(&spec_in(&home)).unwrap();
        let config: Vec<(&Path, &Pattern)> = p
            .targets
            .iter()
            .filter(|t| t.change == Change::AwsConfig)
            .map(|t| (t.dir.as_path(), &t.pattern))
            .collect();
        assert_eq!(
            config,
            vec![
                (aws.as_path(), &name("config")),
                (dots.as_path(), &name("config")),
                (real.as_path(), &name("aws-config")),
            ]
        );
        let b = classify(&p, &[real.join("aws-config").to_str().unwrap()]);
        assert_eq!(
            b.files.values().next(),
            Some(&BTreeSet::from([Change::AwsConfig]))
        );
    }

    #[test]
    fn a_symlink_loop_is_not_followed_forever() {
        let tmp = tempfile::tempdir().unwrap();
        let home = fs::canonicalize(tmp.path()).unwrap();
        let aws = home.join(".aws");
        fs::create_dir_all(&aws).unwrap();
        std::os::unix::fs::symlink("config", aws.join("config")).unwrap();
        let p = WatchSet::build(&spec_in(&home)).unwrap();
        assert!(p.targets.iter().any(|t| t.change == Change::AwsConfig));
    }

    #[test]
    fn own_write_matches_until_the_file_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("credentials");
        fs::write(&path, b"[a]\n").unwrap();
        let mut own = HashMap::new();
        assert!(!is_own_write(&mut own, &path), "nothing recorded");
        own.insert(path.clone(), Identity::of_path(&path).unwrap());
        assert!(is_own_write(&mut own, &path));
        assert!(is_own_write(&mut own, &path), "still the same file");
        fs::write(&path, b"[a]\n[b]\n").unwrap();
        assert!(!is_own_write(&mut own, &path), "edited since");
        assert!(own.is_empty(), "a stale record is dropped");

        own.insert(path.clone(), Identity::of_path(&path).unwrap());
        let replacement = tmp.path().join("new");
        fs::write(&replacement, b"[a]\n[b]\n").unwrap();
        fs::rename(&replacement, &path).unwrap();
        assert!(!is_own_write(&mut own, &path), "replaced by another inode");

        own.insert(path.clone(), Identity::of_path(&path).unwrap());
        fs::remove_file(&path).unwrap();
        assert!(!is_own_write(&mut own, &path), "deleted");
    }

    #[test]
    fn spec_changes_cover_the_optional_config() {
        let mut spec = spec_in(Path::new("/h"));
        assert!(!spec.changes().contains(&Change::CredsyncConfig));
        spec.credsync_config = Some("/h/.config/credsync/config.toml".into());
        assert_eq!(spec.changes().len(), 4);
    }
}
