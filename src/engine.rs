//! The refresh engine: the managed profiles, one refresh round (resolve the due profiles
//! concurrently, at most `max_concurrency` in flight, one token read — and at most one token
//! refresh — per sso-session), and the single write of the credentials file that follows it.
//! `sync` runs one round; the daemon runs rounds as profiles and tokens fall due.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::aws_profile::{self, AwsConfig, ProfileError, SsoProfile};
use crate::chain::{self, Base, Plan};
use crate::config::{Config, Origin, ProfileEntry};
use crate::ini_edit::{self, ManagedSection};
use crate::resolve::{self, AwsEdge, Clients, ResolveError};
use crate::schedule::{self, Clock};
use crate::secret::Credentials;
use crate::sso_cache::{self, CachedToken};
use crate::state::{
    DaemonInfo, Effective, NotRefreshable, ProfileStatus, STATUS_VERSION, SessionStatus, State,
    Status,
};
use crate::token;
use crate::view;
use crate::write::{self, Identity, WriteError, WriteOptions};

/// Called with each file credsync has just written, and its identity when the writer knows it
/// (the watcher ignores those changes).
pub type OnWrite = Arc<dyn Fn(&Path, Option<Identity>) + Send + Sync>;

/// Errors that stop the engine before any profile is tried.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    AwsConfig(#[from] ProfileError),
}

/// One managed profile and what credsync knows of it.
#[derive(Debug)]
pub struct Managed {
    pub entry: ProfileEntry,
    pub status: ProfileStatus,
    /// How the profile resolves (its SSO or static base and role hops), or why it cannot.
    pub source: Result<Plan, ResolveError>,
    /// The credentials last obtained (or found on disk at start), if still known.
    pub credentials: Option<Credentials>,
    /// When those credentials were obtained, when known (their lifetime drives the schedule).
    pub issued: Option<SystemTime>,
    /// While login is required: the token cache file as it was then. No network call is made
    /// again until it changes (the user ran `aws sso login`).
    pub blocked_on: Option<Option<Identity>>,
    /// The last failure, while the profile is failing.
    pub last_failure: Option<ResolveError>,
    jitter: f64,
}

/// The outcome of resolving one profile in a round.
pub type Outcome = Result<Credentials, ResolveError>;

pub struct Engine {
    pub cfg: Config,
    pub aws: AwsConfig,
    pub profiles: Vec<Managed>,
    /// Targets of profiles that left the config: their managed sections go at the next write.
    pub removed_targets: Vec<String>,
    /// Per sso-session (cache key): when its token is next due for a refresh.
    sessions: BTreeMap<String, SystemTime>,
    /// Per sso-session (cache key): the token whose refresh SSO-OIDC refused (by its expiry),
    /// and when. Not tried again; a new sign-in (another token) ends it.
    refused: BTreeMap<String, Refusal>,
    clients: Clients,
    /// Where and how AWS is reached (the environment, read once where the program started).
    edge: AwsEdge,
    clock: Arc<dyn Clock>,
    on_write: Option<OnWrite>,
    started_at: SystemTime,
}

impl Engine {
    /// Loads the AWS config file and plans the managed profiles; AWS is reached through `edge`.
    /// Nothing is written.
    pub fn new(cfg: Config, clock: Arc<dyn Clock>, edge: AwsEdge) -> Result<Engine, EngineError> {
        let now = clock.now();
        let aws = aws_profile::load(&cfg.aws.config_file)?;
        let profiles = plan(&cfg, &aws);
        Ok(Engine {
            cfg,
            aws,
            profiles,
            removed_targets: Vec::new(),
            sessions: BTreeMap::new(),
            refused: BTreeMap::new(),
            clients: Clients::new(edge.clone()),
            edge,
            clock,
            on_write: None,
            started_at: now,
        })
    }

    /// Registers a callback told of every file the engine writes.
    pub fn set_on_write(&mut self, f: OnWrite) {
        self.on_write = Some(f);
    }

    /// Reaches AWS through `edge` from now on (the SDK configurations are loaded again).
    pub fn set_edge(&mut self, edge: AwsEdge) {
        self.clients = Clients::new(edge.clone());
        self.edge = edge;
    }

    /// Takes a new configuration (a reload): re-reads the AWS config and re-plans. Profiles that
    /// stay (same source and target) keep their credentials, state and schedule. On error
    /// nothing changes.
    pub fn reconfigure(&mut self, cfg: Config) -> Result<(), EngineError> {
        let aws = aws_profile::load(&cfg.aws.config_file)?;
        let mut profiles = plan(&cfg, &aws);
        for new in profiles.iter_mut() {
            let Some(old) = self.profiles.iter_mut().find(|o| o.entry == new.entry) else {
                continue;
            };
            if same_plan(&old.source, &new.source) {
                new.status = old.status.clone();
                new.credentials = old.credentials.take();
                new.issued = old.issued;
                new.blocked_on = old.blocked_on.take();
                new.last_failure = old.last_failure.take();
                new.jitter = old.jitter;
            }
        }
        for old in &self.profiles {
            if !profiles.iter().any(|p| p.entry.target == old.entry.target) {
                self.removed_targets.push(old.entry.target.clone());
            }
        }
        let previous = std::mem::replace(&mut self.cfg, cfg).container;
        self.aws = aws;
        self.profiles = profiles;
        self.plan_sessions();
        // A reload that narrows access takes it back now, not at the next refresh.
        if let Err(e) = self.revoke_acls(previous.as_ref()) {
            tracing::warn!("{e}");
        }
        Ok(())
    }

    /// Makes the profiles named `name` (source or target; all when `None`) due now.
    /// Returns their indices; empty when no profile has that name.
    pub fn make_due(&mut self, name: Option<&str>) -> Vec<usize> {
        let now = self.clock.now();
        let mut hit = Vec::new();
        for (i, p) in self.profiles.iter_mut().enumerate() {
            if name.is_none_or(|n| p.entry.source == n || p.entry.target == n) {
                p.status.next_refresh = Some(now);
                p.blocked_on = None;
                hit.push(i);
            }
        }
        hit
    }

    /// Adopts managed sections already in the credentials file that are still fresh, so a
    /// restart makes no network call for them. Returns how many were adopted.
    pub fn adopt_existing(&mut self) -> usize {
        let now = self.clock.now();
        // Never `fs::read_to_string`: a FIFO at the path would block forever.
        let text = write::read_text_or_empty(&self.cfg.aws.credentials_file);
        let min = self.cfg.refresh.min_remaining;
        let mut adopted = 0;
        for p in self.profiles.iter_mut().filter(|p| p.source.is_ok()) {
            let Some((creds, expires)) = ini_edit::read_managed(&text, &p.entry.target) else {
                continue;
            };
            if schedule::is_fresh(now, expires, None, min) {
                p.status.state = State::Fresh;
                p.status.expires_at = Some(expires);
                p.status.next_refresh = Some(schedule::refresh_at(None, expires, min, p.jitter));
                p.credentials = Some(creds);
                adopted += 1;
            }
        }
        adopted
    }

    /// The engine's clock.
    pub fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// Indices of the profiles due now.
    pub fn due(&self) -> Vec<usize> {
        let now = self.clock.now();
        (0..self.profiles.len())
            .filter(|&i| {
                let p = &self.profiles[i];
                p.source.is_ok() && p.status.next_refresh.is_none_or(|t| t <= now)
            })
            .collect()
    }

    /// The earliest next refresh among all profiles and sso-session tokens.
    pub fn next_deadline(&self) -> Option<SystemTime> {
        let profiles = self.profiles.iter().filter_map(|p| p.status.next_refresh);
        profiles.chain(self.sessions.values().copied()).min()
    }

    /// Resolves the profiles at `which` concurrently and records the outcomes in their status.
    /// Retryable failures are tried up to `attempts` times in this call (with backoff); the
    /// daemon passes 1 and reschedules instead. Returns the outcomes in `which`'s order.
    pub async fn refresh(&mut self, which: &[usize], attempts: u32) -> Vec<(usize, Outcome)> {
        let mut outcomes = Vec::new();
        let mut pending: Vec<usize> = which.to_vec();
        for attempt in 1..=attempts.max(1) {
            let round = self.refresh_once(&pending).await;
            pending.clear();
            let mut wait = Duration::ZERO;
            for (i, outcome) in round {
                match &outcome {
                    Err(e) if e.is_retryable() && attempt < attempts => {
                        wait = wait.max(schedule::backoff(attempt, e.retry_after(), 0.5));
                        pending.push(i);
                    }
                    _ => outcomes.push((i, outcome)),
                }
            }
            if pending.is_empty() {
                break;
            }
            tokio::time::sleep(wait.min(Duration::from_secs(10))).await;
        }
        let now = self.clock.now();
        for (i, outcome) in &outcomes {
            self.record(*i, outcome, now);
        }
        outcomes.sort_by_key(|(i, _)| which.iter().position(|w| w == i));
        outcomes
    }

    async fn refresh_once(&mut self, which: &[usize]) -> Vec<(usize, Outcome)> {
        let now = self.clock.now();
        let cache_dir = self.cfg.aws.sso_cache_dir.clone();
        // One token per sso-session (or legacy start URL) for the round, shared by its profiles:
        // read once, and refreshed at most once.
        let mut tokens: BTreeMap<String, Result<CachedToken, ResolveError>> = BTreeMap::new();
        let mut results = Vec::new();
        let mut jobs = JoinSet::new();
        let limit = Arc::new(Semaphore::new(self.cfg.refresh.max_concurrency.max(1)));
        for &i in which {
            let p = &self.profiles[i];
            let plan = match &p.source {
                Ok(plan) => plan.clone(),
                Err(e) => {
                    results.push((i, Err(e.clone())));
                    continue;
                }
            };
            if let (Some(stamp), Some(sso)) = (&p.blocked_on, plan.sso()) {
                let path = sso_cache::path(&cache_dir, sso.cache_key());
                if *stamp == Identity::of_path(&path)
                    && let Some(e) = &p.last_failure
                {
                    // Still logged out: no network call until the token cache changes.
                    results.push((i, Err(e.clone())));
                    continue;
                }
            }
            // The base credentials: SSO role credentials (with the session's token), or local.
            let base = match &plan.base {
                Base::Sso(sso) => {
                    let key = sso.cache_key().to_owned();
                    if !tokens.contains_key(&key) {
                        let t = self.session_token(sso, now).await;
                        tokens.insert(key.clone(), t);
                    }
                    match &tokens[&key] {
                        Ok(t) => BaseJob::Sso(
                            self.clients.sso(&sso.sso_region).await,
                            Box::new((sso.clone(), t.clone())),
                        ),
                        Err(e) => {
                            results.push((i, Err(e.clone())));
                            continue;
                        }
                    }
                }
                other => match other.local_credentials(&self.edge) {
                    Some(Ok(c)) => BaseJob::Local(c),
                    Some(Err(e)) => {
                        results.push((i, Err(e)));
                        continue;
                    }
                    None => continue,
                },
            };
            let sts = if plan.hops.is_empty() {
                None
            } else {
                Some(self.clients.sts(plan.sts_region()).await)
            };
            let limit = limit.clone();
            let clock = self.clock.clone();
            jobs.spawn(async move {
                let _permit = limit.acquire_owned().await;
                let creds = match base {
                    BaseJob::Sso(client, job) => {
                        let (sso, token) = *job;
                        resolve::sso_role_credentials(&client, &sso, &token).await
                    }
                    BaseJob::Local(c) => Ok(c),
                };
                let creds = match (creds, sts) {
                    (Ok(c), Some(sdk)) => {
                        crate::sts::assume_chain(&sdk, &plan.hops, c, clock.now()).await
                    }
                    (other, _) => other,
                };
                (i, creds.and_then(|c| not_yet_expired(c, clock.now())))
            });
        }
        while let Some(joined) = jobs.join_next().await {
            match joined {
                Ok(r) => results.push(r),
                Err(e) => tracing::error!("a refresh task failed: {e}"),
            }
        }
        results
    }

    /// The token of `sso`'s session, refreshed first through SSO-OIDC when less than
    /// `token_refresh_before` is left and it can be. Schedules the session's next token check.
    async fn session_token(
        &mut self,
        sso: &SsoProfile,
        now: SystemTime,
    ) -> Result<CachedToken, ResolveError> {
        let dir = self.cfg.aws.sso_cache_dir.clone();
        let before = self.cfg.refresh.token_refresh_before;
        let login = sso.login_command();
        let key = sso.cache_key().to_owned();
        let token = match sso_cache::read(&dir, &key) {
            Ok(sso_cache::Read::Token(t)) => t,
            _ => return resolve::read_token(&dir, sso, now),
        };
        let refreshable = sso.session.is_some()
            && token.can_refresh(now)
            && self.refused_at(&key, &token).is_none();
        if refreshable && token::needs_refresh(&token, now, before) {
            let client = self.clients.oidc(&sso.sso_region).await;
            match token::refresh_and_store(&client, &dir, &key, &token, &login, now).await {
                Ok(new) => {
                    tracing::info!(
                        "refreshed the SSO token of {}; it expires {}",
                        key,
                        crate::timefmt::rfc3339(new.expires_at)
                    );
                    self.notify_write(&sso_cache::path(&dir, &key));
                    self.sessions
                        .insert(key, token::refresh_due_at(&new, before));
                    return Ok(new);
                }
                Err(e) if !token.is_expired(now) => {
                    self.note_refusal(&key, &token, &e, now);
                    tracing::warn!(
                        "could not refresh the SSO token of {key} ({e}); using the current one until it expires"
                    );
                    let retry = if e.is_retryable() {
                        now + schedule::backoff(1, e.retry_after(), fastrand::f64())
                    } else {
                        token.expires_at
                    };
                    self.sessions.insert(key, retry);
                    return Ok(token);
                }
                Err(e) => {
                    self.note_refusal(&key, &token, &e, now);
                    self.sessions.remove(&key);
                    return Err(e);
                }
            }
        }
        if refreshable {
            self.sessions
                .insert(key.clone(), token::refresh_due_at(&token, before));
        } else {
            // Nothing to schedule (a refused token is not tried again): a new sign-in wakes it.
            self.sessions.remove(&key);
        }
        if !refreshable && !token.is_expired(now) && token::needs_refresh(&token, now, before) {
            tracing::warn!(
                "the SSO session {key} ends at {} and credsync cannot refresh it{}; run `{login}` before then",
                crate::timefmt::rfc3339(token.expires_at),
                token::why_not_refreshable(&token, now)
                    .map(|w| format!(" ({w})"))
                    .unwrap_or_default()
            );
        }
        resolve::read_token(&dir, sso, now)
    }

    /// Remembers that SSO-OIDC refused to refresh `token` of session `key`, when `e` says so.
    fn note_refusal(&mut self, key: &str, token: &CachedToken, e: &ResolveError, now: SystemTime) {
        if matches!(e, ResolveError::LoginRequired { .. }) {
            self.refused.insert(
                key.to_owned(),
                Refusal {
                    at: now,
                    token_expires_at: token.expires_at,
                },
            );
        }
    }

    /// When SSO-OIDC refused to refresh `token` of session `key`, if it did (a refusal of an
    /// earlier token does not count: the user signed in again since).
    fn refused_at(&self, key: &str, token: &CachedToken) -> Option<SystemTime> {
        self.refused
            .get(key)
            .filter(|r| r.token_expires_at == token.expires_at)
            .map(|r| r.at)
    }

    /// Schedules every sso-session's next token refresh from the cache files as they are (no
    /// network call): the token of a refreshable session is refreshed `token_refresh_before`
    /// its expiry even when no profile needs new credentials then.
    pub fn plan_sessions(&mut self) {
        let now = self.clock.now();
        let before = self.cfg.refresh.token_refresh_before;
        self.sessions.clear();
        for p in &self.profiles {
            let Some(sso) = p.source.as_ref().ok().and_then(Plan::sso) else {
                continue;
            };
            if sso.session.is_none() {
                continue;
            }
            if let Ok(sso_cache::Read::Token(t)) =
                sso_cache::read(&self.cfg.aws.sso_cache_dir, sso.cache_key())
                && t.can_refresh(now)
                && self.refused_at(sso.cache_key(), &t).is_none()
            {
                self.sessions.insert(
                    sso.cache_key().to_owned(),
                    token::refresh_due_at(&t, before),
                );
            }
        }
    }

    /// Sso-sessions whose token is due for a refresh now.
    pub fn due_sessions(&self) -> Vec<String> {
        let now = self.clock.now();
        self.sessions
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Refreshes the tokens of the sso-sessions `keys` (no role credentials are fetched).
    pub async fn refresh_sessions(&mut self, keys: &[String]) {
        let now = self.clock.now();
        for key in keys {
            let sso = self
                .profiles
                .iter()
                .filter_map(|p| p.source.as_ref().ok()?.sso())
                .find(|s| s.cache_key() == key)
                .cloned();
            match sso {
                Some(sso) => {
                    if let Err(e) = self.session_token(&sso, now).await {
                        tracing::warn!("SSO session {key}: {e}");
                    }
                }
                None => {
                    self.sessions.remove(key);
                }
            }
        }
    }

    /// The token cache changed (the user ran `aws sso login`, or the AWS CLI refreshed): profiles
    /// waiting for a login, and sessions, are looked at again now.
    pub fn token_cache_changed(&mut self) -> Vec<usize> {
        let now = self.clock.now();
        self.plan_sessions();
        let mut due = Vec::new();
        for (i, p) in self.profiles.iter_mut().enumerate() {
            if p.blocked_on.is_some() || p.status.state == State::LoginRequired {
                p.blocked_on = None;
                p.status.next_refresh = Some(now);
                due.push(i);
            }
        }
        due
    }

    /// The credentials file changed: profiles in `conflict` are looked at again now (the user may
    /// have removed the section that was in the way). Returns them.
    pub fn credentials_file_changed(&mut self) -> Vec<usize> {
        let now = self.clock.now();
        let mut due = Vec::new();
        for (i, p) in self.profiles.iter_mut().enumerate() {
            if p.status.state == State::Conflict {
                p.status.next_refresh = Some(now);
                due.push(i);
            }
        }
        due
    }

    /// Whether the credentials file lacks (or differs in) a section credsync should have there:
    /// the user deleted or edited a managed section, so it must be written again.
    pub fn credentials_file_drifted(&self) -> bool {
        let text = write::read_text_or_empty(&self.cfg.aws.credentials_file);
        self.profiles.iter().any(|p| match &p.credentials {
            Some(c) => !ini_edit::read_managed(&text, &p.entry.target)
                .is_some_and(|(disk, _)| same_keys(&disk, c)),
            None => false,
        }) || self
            .removed_targets
            .iter()
            .any(|t| ini_edit::managed_names(&text).contains(t))
    }

    fn notify_write(&self, path: &Path) {
        self.notify_write_as(path, None);
    }

    fn notify_write_as(&self, path: &Path, identity: Option<Identity>) {
        if let Some(f) = &self.on_write {
            f(path, identity);
        }
    }

    fn record(&mut self, i: usize, outcome: &Outcome, now: SystemTime) {
        let min = self.cfg.refresh.min_remaining;
        let cache_dir = self.cfg.aws.sso_cache_dir.clone();
        let p = &mut self.profiles[i];
        let s = &mut p.status;
        match outcome {
            Ok(creds) => {
                let expires = creds.expiration.unwrap_or(now);
                p.credentials = Some(creds.clone());
                p.issued = Some(now);
                p.blocked_on = None;
                p.last_failure = None;
                s.state = State::Fresh;
                s.expires_at = Some(expires);
                s.last_refresh = Some(now);
                s.last_error = None;
                s.consecutive_failures = 0;
                s.next_refresh = Some(schedule::refresh_at(Some(now), expires, min, p.jitter));
                if s.next_refresh.is_some_and(|t| t <= now) {
                    // The source cannot give more than this: try again at half the time left.
                    let half = expires.duration_since(now).unwrap_or_default() / 2;
                    s.next_refresh = Some(now + half.max(Duration::from_secs(5)));
                }
            }
            Err(e) => {
                p.last_failure = Some(e.clone());
                s.consecutive_failures += 1;
                s.last_error = Some(e.to_string());
                let still_valid = s.expires_at.is_some_and(|t| t > now);
                s.state = match e {
                    ResolveError::LoginRequired { .. } => State::LoginRequired,
                    ResolveError::Config(_) => State::Error,
                    _ if still_valid => State::Degraded,
                    _ => State::Expired,
                };
                if !still_valid {
                    p.credentials = None;
                }
                s.next_refresh = Some(match e {
                    ResolveError::LoginRequired { .. } => {
                        if let Some(sso) = p.source.as_ref().ok().and_then(Plan::sso) {
                            p.blocked_on = Some(Identity::of_path(&sso_cache::path(
                                &cache_dir,
                                sso.cache_key(),
                            )));
                        }
                        now + Duration::from_secs(30)
                    }
                    ResolveError::TokenUnreadable { .. } => {
                        now + schedule::unreadable_token_retry(s.consecutive_failures)
                    }
                    _ if e.is_retryable() => {
                        now + schedule::backoff(
                            s.consecutive_failures,
                            e.retry_after(),
                            fastrand::f64(),
                        )
                    }
                    // Refused or misconfigured: do not loop; look again in a while.
                    _ => now + schedule::MAX_BACKOFF,
                });
            }
        }
    }

    /// Writes every profile's known credentials to the credentials file in one edit, and marks
    /// the profiles whose target section belongs to someone else as `conflict`.
    pub fn write(&mut self) -> Result<write::Outcome, WriteError> {
        let now = self.clock.now();
        let path = self.cfg.aws.credentials_file.clone();
        let opts = WriteOptions {
            mode: self.cfg.write.mode,
            new_file_mode: self.cfg.write.file_mode,
        };
        let mut conflicts = Vec::new();
        let sections: Vec<ManagedSection<'_>> = self
            .profiles
            .iter()
            .filter_map(|p| {
                p.credentials.as_ref().map(|c| ManagedSection {
                    name: &p.entry.target,
                    credentials: c,
                })
            })
            .collect();
        let removed: Vec<&str> = self.removed_targets.iter().map(String::as_str).collect();
        // Access credsync granted and no longer should goes first: the rewrite carries the
        // file's ACL over to the new inode.
        self.revoke_acls(None)
            .map_err(view::ViewError::into_write_error)?;
        if sections.is_empty() && removed.is_empty() {
            return Ok(write::Outcome::Unchanged);
        }
        let result = write::update_identified(&path, &opts, |old| {
            let old = match old {
                None => "",
                Some(bytes) => std::str::from_utf8(bytes).map_err(|e| {
                    format!(
                        "the file is not UTF-8 text (byte {}); credsync will not edit it — fix or move it",
                        e.valid_up_to()
                    )
                })?,
            };
            let edit = ini_edit::apply(old, &sections, &removed);
            conflicts = edit.conflicts;
            Ok(Some(edit.text.into_bytes()))
        });
        drop(sections);
        let result = result.map(|(outcome, identity)| {
            if outcome == write::Outcome::Written {
                self.notify_write_as(&path, identity);
            }
            outcome
        });
        for c in &conflicts {
            for p in self
                .profiles
                .iter_mut()
                .filter(|p| p.entry.target == c.section)
            {
                p.status.state = State::Conflict;
                // Looked at again when the credentials file changes, else in a while; never
                // right away (that would be a loop of fetches and refusals).
                p.status.next_refresh = Some(now + schedule::MAX_BACKOFF);
                p.credentials = None;
                p.status.last_error = Some(format!(
                    "section [{}] at {}:{} was not written by credsync, so credsync leaves it alone; \
                     remove that section, or give profile {:?} another `target` in credsync's config",
                    c.section,
                    path.display(),
                    c.line,
                    p.entry.source
                ));
            }
        }
        let result = result.and_then(|outcome| self.write_view(&path).map(|()| outcome));
        if result.is_ok() {
            self.removed_targets.clear();
        }
        result
    }

    /// After the credentials file: the container view (`[container]`), with every profile that
    /// has credentials, and with `[container] uid` read access to the credentials file too.
    fn write_view(&self, credentials_file: &Path) -> Result<(), WriteError> {
        let Some(container) = &self.cfg.container else {
            return Ok(());
        };
        let sections: Vec<view::ViewSection<'_>> = self
            .profiles
            .iter()
            .filter_map(|p| {
                let region = self
                    .aws
                    .get(&p.entry.source)
                    .and_then(|s| s.keys.get("region"))
                    .map(String::as_str);
                Some((p.entry.target.as_str(), region, p.credentials.as_ref()?))
            })
            .collect();
        let removed: Vec<&str> = self.removed_targets.iter().map(String::as_str).collect();
        let host_uid = self.host_uid();
        let written = view::write_view(
            container,
            host_uid,
            &sections,
            &removed,
            self.cfg.write.file_mode,
        )
        .and_then(|written| {
            let wanted = view::wanted_grants(Some(container), host_uid, credentials_file);
            view::apply_grants(&wanted)?;
            Ok(written)
        })
        .map_err(view::ViewError::into_write_error)?;
        for path in &written {
            self.notify_write(path);
        }
        Ok(())
    }

    /// The host uid that `[container] uid` is (see [`crate::uidmap`]); `None` without a uid,
    /// or (logged) when rootless Podman's mapping has no such uid.
    fn host_uid(&self) -> Option<u32> {
        let c = self.cfg.container.as_ref()?;
        match crate::uidmap::resolve(c, &crate::config::Env::from_process()) {
            Ok(h) => h.map(|h| h.uid),
            Err(e) => {
                tracing::warn!("{e}");
                None
            }
        }
    }

    /// Takes back the ACL entries credsync added that the configuration no longer asks for
    /// (`share_credentials_file` turned off, `[container]` or its uid changed or removed), on the
    /// credentials file, its directory and the view (the current one, `previous`'s, and the
    /// default one). Entries credsync did not add are never touched (see [`view::RECORD_XATTR`]).
    pub fn revoke_acls(
        &self,
        previous: Option<&crate::config::ContainerConfig>,
    ) -> Result<(), view::ViewError> {
        let path = &self.cfg.aws.credentials_file;
        let host_uid = self.host_uid();
        let wanted = view::wanted_grants(self.cfg.container.as_ref(), host_uid, path);
        let mut candidates = view::grant_candidates(self.cfg.container.as_ref(), path);
        if let Some(p) = previous {
            candidates.extend(view::grant_candidates(Some(p), path));
        }
        if self.cfg.container.is_none() {
            // Removed while credsync was not running: the default place is still looked at.
            let env = crate::config::Env::from_process();
            if let Some(c) = crate::config::parse("[container]\n", Path::new("(default)"), &env)
                .ok()
                .and_then(|c| c.container)
            {
                candidates.extend(view::grant_candidates(Some(&c), path));
            }
        }
        for changed in view::revoke_unwanted(&candidates, &wanted)? {
            tracing::info!(
                "took back the access credsync had granted on {}",
                changed.display()
            );
        }
        Ok(())
    }

    /// What `status` shows of `sso`'s session, from one read of its cache file (the
    /// credentials of its profiles are added by the caller).
    fn session_status(&self, sso: &SsoProfile, now: SystemTime) -> SessionStatus {
        let mut s = SessionStatus::new(sso.cache_key(), &sso.login_command());
        let Ok(sso_cache::Read::Token(token)) =
            sso_cache::read(&self.cfg.aws.sso_cache_dir, sso.cache_key())
        else {
            return s;
        };
        let refused_at = self.refused_at(sso.cache_key(), &token);
        let why = NotRefreshable::of(
            sso.session.is_none(),
            Some(&token),
            refused_at.is_some(),
            now,
        );
        s.token_expires_at = Some(token.expires_at);
        s.refreshable = why.is_none();
        s.not_refreshable = why;
        s.refused_at = refused_at;
        s.ends_at = match why {
            None => token.registration_expires_at,
            Some(_) => Some(token.expires_at),
        };
        s
    }

    /// The status as `status` shows it.
    pub fn status(&self) -> Status {
        let now = self.clock.now();
        let mut sessions: BTreeMap<String, SessionStatus> = BTreeMap::new();
        for p in &self.profiles {
            let Some(sso) = p.source.as_ref().ok().and_then(Plan::sso) else {
                continue;
            };
            let session = sessions
                .entry(sso.cache_key().to_owned())
                .or_insert_with(|| self.session_status(sso, now));
            session.credentials_until = session.credentials_until.max(p.status.expires_at);
        }
        Status {
            version: STATUS_VERSION,
            daemon: DaemonInfo {
                pid: std::process::id(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                started_at: self.started_at,
                config: self.cfg.describe_origin(),
                credentials_file: self.cfg.aws.credentials_file.display().to_string(),
                effective: Some(Effective {
                    config_file: match &self.cfg.origin {
                        Origin::File(p) => Some(p.display().to_string()),
                        Origin::Default { .. } => None,
                    },
                    aws_config_file: self.cfg.aws.config_file.display().to_string(),
                }),
            },
            profiles: self.profiles.iter().map(|p| p.status.clone()).collect(),
            sso_sessions: sessions.into_values().collect(),
        }
    }
}

/// A refresh SSO-OIDC refused: when, and of which token (by its expiry).
#[derive(Debug, Clone, Copy)]
struct Refusal {
    at: SystemTime,
    token_expires_at: SystemTime,
}

/// The managed profiles of `cfg`, each with how it resolves in `aws` (or why it cannot).
fn plan(cfg: &Config, aws: &AwsConfig) -> Vec<Managed> {
    // Static keys of source profiles, from the credentials file without credsync's own sections
    // (a managed section must never become the source of another profile).
    let path = &cfg.aws.credentials_file;
    // Never `fs::read_to_string`: a FIFO at the path would block forever.
    let text = write::read_text_or_empty(path);
    let credentials = ini_edit::source_credentials(&text, path).unwrap_or_else(|e| {
        tracing::warn!("{e}; static keys in it are not used as role sources");
        BTreeMap::new()
    });
    let credentials = &credentials;
    cfg
        .profiles
        .iter()
        .map(|entry| {
            let source = chain::plan(aws, credentials, &entry.source).map_err(|e| {
                ResolveError::Config(match e {
                    chain::ChainError::Profile(ProfileError::UnknownProfile { .. }) => format!(
                        "{e}; fix `source` in credsync's config or add the profile to the AWS config"
                    ),
                    _ => e.to_string(),
                })
            });
            let mut status = ProfileStatus::new(&entry.source, &entry.target);
            match &source {
                Ok(plan) => status.kind = plan.kind(),
                Err(e) => {
                    status.state = State::Error;
                    status.last_error = Some(e.to_string());
                }
            }
            Managed {
                entry: entry.clone(),
                status,
                source,
                credentials: None,
                issued: None,
                blocked_on: None,
                last_failure: None,
                jitter: fastrand::f64(),
            }
        })
        .collect()
}

/// How one profile's base credentials are obtained inside a spawned refresh task.
enum BaseJob {
    Sso(aws_sdk_sso::Client, Box<(SsoProfile, CachedToken)>),
    Local(Credentials),
}

/// Whether two plans resolve the same way (so a reload keeps the profile's credentials).
fn same_plan(a: &Result<Plan, ResolveError>, b: &Result<Plan, ResolveError>) -> bool {
    let (Ok(a), Ok(b)) = (a, b) else { return false };
    let base = match (&a.base, &b.base) {
        (Base::Sso(x), Base::Sso(y)) => x == y,
        (
            Base::Static {
                profile: x,
                credentials: cx,
            },
            Base::Static {
                profile: y,
                credentials: cy,
            },
        ) => x == y && same_keys(cx, cy),
        (Base::Environment, Base::Environment) => true,
        _ => false,
    };
    base && a.hops == b.hops
}

/// Whether two sets of credentials hold the same keys.
fn same_keys(a: &Credentials, b: &Credentials) -> bool {
    use crate::secret::ExposeSecret;
    a.access_key_id.expose_secret() == b.access_key_id.expose_secret()
        && a.secret_access_key.expose_secret() == b.secret_access_key.expose_secret()
        && a.session_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned())
            == b.session_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned())
}

/// Refuses credentials that arrive already expired (a wrong clock here or there): writing them
/// would replace valid ones with useless ones. A transient failure, retried with backoff.
fn not_yet_expired(creds: Credentials, now: SystemTime) -> Result<Credentials, ResolveError> {
    match creds.expiration {
        Some(t) if t <= now => Err(ResolveError::Transient {
            service: "AWS",
            message: format!(
                "the credentials returned had already expired (at {}); check this machine's clock",
                crate::timefmt::rfc3339(t)
            ),
            retry_after: None,
        }),
        _ => Ok(creds),
    }
}
