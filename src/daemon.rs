//! The daemon loop: refresh the tokens and profiles that fall due, write once per round, publish
//! the status (and the desktop notifications it calls for, see [`crate::notify`]), answer the
//! control socket's commands, react to changed files (the watcher), sleep in bounded chunks (so a
//! suspend is noticed within [`schedule::MAX_SLEEP`]), stop when asked. Also what the daemon
//! tells systemd when it runs as a `Type=notify` unit: ready ([`notify_ready`]) and stopping.

use std::collections::{BTreeSet, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::config::{Config, Origin};
use crate::control::Command;
use crate::engine::{Engine, ProfileReport, Report};
use crate::notice::Notifier;
use crate::notify::{Desktop, Sender};
use crate::process::SystemRunner;
use crate::schedule;
use crate::status::Status;
use crate::watch::{Change, WatchSpec};
use crate::write;

/// The daemon's side of the control socket.
pub struct Control {
    pub(crate) status: watch::Sender<Status>,
    pub(crate) commands: mpsc::Receiver<Command>,
}

impl Control {
    /// A new pair: the daemon's side, and the handle the socket server answers from.
    pub fn new(initial: Status) -> (Control, crate::control::ControlHandle) {
        let (status_tx, status_rx) = watch::channel(initial);
        let (cmd_tx, cmd_rx) = mpsc::channel(16);
        (
            Control {
                status: status_tx,
                commands: cmd_rx,
            },
            crate::control::ControlHandle {
                status: status_rx,
                commands: cmd_tx,
            },
        )
    }
}

/// Prepares the engine for its first round: removes stale temp files, adopts credentials on
/// disk that are still fresh (no network call for them). Cheap; call before signalling ready.
pub fn prepare(engine: &mut Engine) {
    match write::remove_stale_temps(&engine.config().aws.credentials_file) {
        Ok(0) => {}
        Ok(n) => tracing::info!("removed {n} stale temp file(s) left by an earlier crash"),
        Err(e) => tracing::warn!("could not look for stale temp files: {e}"),
    }
    for p in engine.profiles() {
        if let Err(e) = p.source() {
            tracing::warn!(profile = %p.entry().source, "cannot be managed: {e}");
        }
    }
    if let Some(note) = login_margin_note(engine) {
        tracing::info!("{note}");
    }
    let adopted = engine.start();
    if adopted > 0 {
        tracing::info!("{adopted} profile(s) still fresh on disk; no refresh needed yet");
    }
    // Reading and planning the files allocated and freed about their size (megabytes for
    // thousands of profiles); a daemon that adopted everything runs no round that would trim.
    release_freed_memory();
}

/// When `[refresh] min_remaining` is below what an `aws login` session must keep and a managed
/// profile uses one: the sentence that says the session's renewals keep more
/// ([`schedule::login_raised_note`]).
pub fn login_margin_note(engine: &Engine) -> Option<String> {
    let uses_login = engine
        .profiles()
        .iter()
        .any(|p| p.source().as_ref().is_ok_and(|s| s.login().is_some()));
    let note = schedule::login_raised_note(engine.config().refresh.min_remaining);
    note.filter(|_| uses_login)
}

/// Runs until `shutdown` completes. A round in flight when it does is finished first, write
/// included: a token refresh whose answer arrived must reach the cache file (SSO-OIDC may have
/// rotated the refresh token), and every AWS call is bounded by its timeout, so stopping waits
/// at most that long. `reload` reads the configuration again (for `reload` requests and SIGHUP).
pub async fn run(
    engine: &mut Engine,
    mut control: Control,
    reload: &dyn Fn() -> Result<Config, String>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut watching = Watching::start(engine);
    let mut notices = Notices::new(engine);
    loop {
        let report = engine.round(1).await;
        if !report.profiles.is_empty() || !report.sessions.is_empty() {
            release_freed_memory();
        }
        report.log_profiles();
        let next_notice = notices.publish(engine, &control.status);
        let next = engine.next_deadline().into_iter().chain(next_notice).min();
        let wait = schedule::sleep_for(engine.now(), next);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            Some(cmd) = control.commands.recv() => {
                handle(engine, cmd, &control.status, &mut notices, reload).await;
                watching.follow(engine);
            }
            changes = watching.next() => match changes {
                Some(changes) => {
                    on_changes(engine, &changes, reload).await;
                    watching.follow(engine);
                }
                None => watching.stop(),
            },
            _ = &mut shutdown => break,
        }
    }
    tracing::info!("stopping");
}

/// The notifications the daemon sends: which were sent ([`Notifier`]) and how ([`Sender`]).
struct Notices {
    notifier: Notifier,
    sender: Sender,
}

impl Notices {
    fn new(engine: &Engine) -> Notices {
        Notices {
            notifier: Notifier::new(),
            sender: Sender::new(
                engine.config().notify.clone(),
                engine.env().clone(),
                Desktop::here(engine.env()),
                Arc::new(SystemRunner),
            ),
        }
    }

    /// Publishes the engine's status, then sends the notifications it calls for. Returns when
    /// the next one may fall due (the daemon wakes up then).
    fn publish(
        &mut self,
        engine: &Engine,
        status: &watch::Sender<Status>,
    ) -> Option<std::time::SystemTime> {
        let now = engine.now();
        let current = engine.status();
        if self.sender.config() != &engine.config().notify {
            self.sender.set_config(engine.config().notify.clone());
        }
        let before = engine.config().notify.before;
        for notice in self.notifier.observe(&current.sso_sessions, before, now) {
            self.sender.send(&notice);
        }
        let next = self.notifier.next_due(&current.sso_sessions, before);
        status.send_replace(current);
        next
    }
}

/// The watcher as the daemon keeps it: started from the engine's config, restarted when a
/// reload changes which files matter. Without it (it failed to start) the daemon still works,
/// only slower to notice a login.
struct Watching {
    spec: Option<WatchSpec>,
    watcher: Option<(Arc<crate::watch::Watcher>, mpsc::Receiver<BTreeSet<Change>>)>,
}

/// After reporting a change at once, how long the watcher gathers the events that follow into
/// one more batch (an editor's or the AWS CLI's save is several events).
const COALESCE: Duration = Duration::from_millis(100);

impl Watching {
    fn start(engine: &mut Engine) -> Watching {
        let mut w = Watching {
            spec: None,
            watcher: None,
        };
        w.follow(engine);
        w
    }

    /// (Re)starts the watcher when the files to watch are not the ones watched.
    fn follow(&mut self, engine: &mut Engine) {
        let mut spec = spec_of(engine.config());
        spec.login_cache_dir = Some(crate::login_cache::dir(engine.env()));
        if self.spec.as_ref() == Some(&spec) {
            return;
        }
        self.watcher = None;
        match crate::watch::start(spec.clone(), COALESCE) {
            Ok((watcher, rx)) => {
                let watcher = Arc::new(watcher);
                let noted = watcher.clone();
                engine.set_on_write(Arc::new(move |path, identity| match identity {
                    Some(identity) => noted.note_own_write_as(path, identity),
                    None => noted.note_own_write(path),
                }));
                self.watcher = Some((watcher, rx));
            }
            Err(e) => tracing::warn!(
                "{e}; credsync will not notice changed files until its next scheduled check"
            ),
        }
        self.spec = Some(spec);
    }

    async fn next(&mut self) -> Option<BTreeSet<Change>> {
        match &mut self.watcher {
            Some((_, rx)) => rx.recv().await,
            None => std::future::pending().await,
        }
    }

    fn stop(&mut self) {
        tracing::warn!(
            "the file watcher stopped; changed files are noticed at the next scheduled check"
        );
        self.watcher = None;
    }
}

/// The files of a configuration that did not load, watched: credsync's config and the AWS
/// config. What the daemon run by launchd waits on instead of exiting (launchd would start it
/// again every few seconds, forever). Start it, then load again (a fix made before the watch
/// was armed is not missed), then wait for [`ConfigWait::changed`].
pub struct ConfigWait {
    spec: WatchSpec,
    _watcher: crate::watch::Watcher,
    batches: mpsc::Receiver<BTreeSet<Change>>,
}

impl ConfigWait {
    /// Watches the files of `cfg`: the configuration that did not load, or the defaults with
    /// the config file that did not parse. Call it inside a tokio runtime.
    pub fn start(cfg: &Config) -> Result<ConfigWait, crate::watch::WatchError> {
        let spec = spec_of(cfg);
        let (watcher, batches) = crate::watch::start(spec.clone(), COALESCE)?;
        Ok(ConfigWait {
            spec,
            _watcher: watcher,
            batches,
        })
    }

    /// Whether this watches the files of `cfg`.
    pub fn watches(&self, cfg: &Config) -> bool {
        self.spec == spec_of(cfg)
    }

    /// Returns once credsync's config or the AWS config changed (written, replaced, created
    /// or removed), or the watcher stopped.
    pub async fn changed(&mut self) {
        while let Some(changes) = self.batches.recv().await {
            if changes.contains(&Change::AwsConfig) || changes.contains(&Change::CredsyncConfig) {
                return;
            }
        }
    }
}

/// What to watch for `cfg`.
fn spec_of(cfg: &Config) -> WatchSpec {
    WatchSpec {
        aws_config: cfg.aws.config_file.clone(),
        credsync_config: Some(match &cfg.origin {
            Origin::File(p) => p.clone(),
            Origin::Default { config_path, .. } => config_path.clone(),
        }),
        sso_cache_dir: cfg.aws.sso_cache_dir.clone(),
        credentials_file: cfg.aws.credentials_file.clone(),
        login_cache_dir: None,
    }
}

/// Acts on changed files: a changed config is a reload, a changed token cache wakes the
/// profiles waiting for a login, a changed credentials file is written again if a managed
/// section went missing or was altered.
async fn on_changes(
    engine: &mut Engine,
    changes: &BTreeSet<Change>,
    reload: &dyn Fn() -> Result<Config, String>,
) {
    tracing::debug!("files changed: {changes:?}");
    if changes.contains(&Change::AwsConfig) || changes.contains(&Change::CredsyncConfig) {
        match engine.reload(reload()) {
            Ok(()) => tracing::info!("configuration changed; reloaded"),
            Err(e) => {
                tracing::warn!("configuration changed but does not load, the old one stays: {e}")
            }
        }
    }
    if changes.contains(&Change::TokenCache) {
        let woken = engine.token_cache_changed();
        if !woken.is_empty() {
            tracing::info!(
                "the SSO token cache changed; trying {} profile(s) again",
                woken.len()
            );
        }
    }
    if changes.contains(&Change::CredentialsFile) {
        let report = engine.credentials_file_changed().await;
        if report.write.is_some() {
            tracing::info!(
                "a managed section in the credentials file was removed or changed; wrote it again"
            );
        }
        report.log_profiles();
    }
}

/// Gives the memory a round allocated and freed (response bodies, the edited file) back to
/// the system: glibc keeps freed blocks below the top of the heap, and a daemon that sleeps
/// for most of an hour need not hold them. Cheap (a walk of a heap of a few hundred KiB).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Tells systemd the daemon is ready (`READY=1`). A no-op when `NOTIFY_SOCKET` is unset (not
/// run by systemd, or `Type=` is not `notify`).
pub fn notify_ready() {
    tell_systemd(&[sd_notify::NotifyState::Ready]);
}

/// Tells systemd the daemon is stopping (`STOPPING=1`).
pub fn notify_stopping() {
    tell_systemd(&[sd_notify::NotifyState::Stopping]);
}

fn tell_systemd(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!("cannot notify systemd through NOTIFY_SOCKET: {e}");
    }
}

/// A line per profile of `report` among `which`, for `refresh` replies.
fn reply_lines(report: &Report, which: &[usize]) -> Vec<String> {
    let which: HashSet<usize> = which.iter().copied().collect();
    let lines = report.profiles.iter().filter(|r| which.contains(&r.index));
    let line = |r: &ProfileReport| match (&r.error, r.expires_at) {
        (None, Some(exp)) => format!(
            "{} -> [{}]: {}, expires {}",
            r.source,
            r.target,
            r.state.as_str(),
            crate::timefmt::rfc3339(exp)
        ),
        (err, _) => format!(
            "{} -> [{}]: {}: {}",
            r.source,
            r.target,
            r.state.as_str(),
            err.as_deref().unwrap_or("no credentials")
        ),
    };
    lines.map(line).collect()
}

/// Answers one command. The status is published before the reply, so a client that asks for
/// it right after sees what the command did.
async fn handle(
    engine: &mut Engine,
    cmd: Command,
    status: &watch::Sender<Status>,
    notices: &mut Notices,
    reload: &dyn Fn() -> Result<Config, String>,
) {
    match cmd {
        Command::Refresh { profile, reply } => {
            let due = engine.request_refresh(profile.as_deref());
            if due.is_empty() {
                let names: Vec<String> = engine
                    .profiles()
                    .iter()
                    .map(|p| p.entry().source.clone())
                    .collect();
                let _ = reply.send(Err(format!(
                    "no managed profile is named {:?}; managed: {}",
                    profile.unwrap_or_default(),
                    names.join(", ")
                )));
                return;
            }
            let report = engine.round(1).await;
            release_freed_memory();
            report.log_profiles();
            let lines = reply_lines(&report, &due);
            let failed = due
                .iter()
                .any(|&i| !engine.profiles()[i].status().state.is_healthy());
            notices.publish(engine, status);
            let text = lines.join("\n");
            let _ = reply.send(if failed { Err(text) } else { Ok(text) });
        }
        Command::Reload { reply } => {
            let result = engine.reload(reload());
            match &result {
                Ok(()) => tracing::info!("reloaded; {}", engine.config().describe_origin()),
                Err(e) => tracing::warn!("reload refused, the old configuration stays: {e}"),
            }
            notices.publish(engine, status);
            let _ = reply.send(
                result
                    .map(|()| {
                        format!(
                            "reloaded: {}; managing {} profile(s)",
                            engine.config().describe_origin(),
                            engine.profiles().len()
                        )
                    })
                    .map_err(|e| format!("reload refused, the old configuration stays: {e}")),
            );
        }
    }
}
