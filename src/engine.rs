//! The refresh engine: the managed profiles, one refresh round (resolve the due profiles
//! concurrently, at most `max_concurrency` in flight, one token read per sso-session), and the
//! single write of the credentials file that follows it. `sync` runs one round; the daemon runs
//! rounds as profiles fall due.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::aws_profile::{self, AwsConfig, ProfileError, SsoProfile};
use crate::config::{Config, ProfileEntry};
use crate::ini_edit::{self, ManagedSection};
use crate::resolve::{self, Clients, ResolveError};
use crate::schedule::{self, Clock};
use crate::secret::Credentials;
use crate::sso_cache::CachedToken;
use crate::state::{DaemonInfo, Kind, ProfileStatus, STATUS_VERSION, SessionStatus, State, Status};
use crate::write::{self, WriteError, WriteOptions};

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
    /// How the profile resolves, or why it cannot.
    pub source: Result<SsoProfile, ResolveError>,
    /// The credentials last obtained (or found on disk at start), if still known.
    pub credentials: Option<Credentials>,
    /// When those credentials were obtained, when known (their lifetime drives the schedule).
    pub issued: Option<SystemTime>,
    /// While login is required: the token cache file as it was then. No network call is made
    /// again until it changes (the user ran `aws sso login`).
    pub blocked_on: Option<FileStamp>,
    /// The last failure, while the profile is failing.
    pub last_failure: Option<ResolveError>,
    jitter: f64,
}

/// Identity of a file's content as the OS reports it: enough to notice that it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStamp(Option<(u64, u64, SystemTime)>);

impl FileStamp {
    pub fn of(path: &Path) -> FileStamp {
        use std::os::unix::fs::MetadataExt;
        FileStamp(std::fs::metadata(path).ok().map(|m| {
            (
                m.ino(),
                m.len(),
                m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            )
        }))
    }
}

/// The outcome of resolving one profile in a round.
pub type Outcome = Result<Credentials, ResolveError>;

pub struct Engine {
    pub cfg: Config,
    pub aws: AwsConfig,
    pub profiles: Vec<Managed>,
    clients: Clients,
    clock: Arc<dyn Clock>,
    started_at: SystemTime,
}

impl Engine {
    /// Loads the AWS config file and plans the managed profiles. Nothing is written.
    pub fn new(cfg: Config, clock: Arc<dyn Clock>) -> Result<Engine, EngineError> {
        let now = clock.now();
        let aws = aws_profile::load(&cfg.aws.config_file)?;
        let profiles = plan(&cfg, &aws);
        Ok(Engine {
            cfg,
            aws,
            profiles,
            clients: Clients::default(),
            clock,
            started_at: now,
        })
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
            if new.source.is_ok() && old.source == new.source {
                new.status = old.status.clone();
                new.credentials = old.credentials.take();
                new.issued = old.issued;
                new.blocked_on = old.blocked_on.take();
                new.last_failure = old.last_failure.take();
                new.jitter = old.jitter;
            }
        }
        self.cfg = cfg;
        self.aws = aws;
        self.profiles = profiles;
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
        let Ok(text) = std::fs::read_to_string(&self.cfg.aws.credentials_file) else {
            return 0;
        };
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

    /// The earliest next refresh among all profiles.
    pub fn next_deadline(&self) -> Option<SystemTime> {
        self.profiles
            .iter()
            .filter_map(|p| p.status.next_refresh)
            .min()
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
        // One token read per sso-session (or legacy start URL), shared by its profiles.
        let mut tokens: BTreeMap<String, Result<CachedToken, ResolveError>> = BTreeMap::new();
        let mut results = Vec::new();
        let mut jobs = JoinSet::new();
        let limit = Arc::new(Semaphore::new(self.cfg.refresh.max_concurrency.max(1)));
        for &i in which {
            let p = &self.profiles[i];
            let sso = match &p.source {
                Ok(sso) => sso.clone(),
                Err(e) => {
                    results.push((i, Err(e.clone())));
                    continue;
                }
            };
            let stamp_path = crate::sso_cache::path(&cache_dir, sso.cache_key());
            if let Some(stamp) = &p.blocked_on {
                if *stamp == FileStamp::of(&stamp_path) {
                    // Still logged out: no network call until the token cache changes.
                    if let Some(e) = &p.last_failure {
                        results.push((i, Err(e.clone())));
                        continue;
                    }
                }
            }
            let token = tokens
                .entry(sso.cache_key().to_owned())
                .or_insert_with(|| resolve::read_token(&cache_dir, &sso, now))
                .clone();
            let token = match token {
                Ok(t) => t,
                Err(e) => {
                    results.push((i, Err(e)));
                    continue;
                }
            };
            let client = self.clients.sso(&sso.sso_region).await;
            let limit = limit.clone();
            jobs.spawn(async move {
                let _permit = limit.acquire_owned().await;
                (
                    i,
                    resolve::sso_role_credentials(&client, &sso, &token).await,
                )
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
                        if let Ok(sso) = &p.source {
                            p.blocked_on = Some(FileStamp::of(&crate::sso_cache::path(
                                &cache_dir,
                                sso.cache_key(),
                            )));
                        }
                        now + Duration::from_secs(30)
                    }
                    ResolveError::TokenUnreadable { .. } => now + Duration::from_secs(1),
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
        if sections.is_empty() {
            return Ok(write::Outcome::Unchanged);
        }
        let result = write::update(&path, &opts, |old| {
            let old = match old {
                None => "",
                Some(bytes) => std::str::from_utf8(bytes).map_err(|e| {
                    format!(
                        "the file is not UTF-8 text (byte {}); credsync will not edit it — fix or move it",
                        e.valid_up_to()
                    )
                })?,
            };
            let edit = ini_edit::apply(old, &sections, &[]);
            conflicts = edit.conflicts;
            Ok(Some(edit.text.into_bytes()))
        });
        drop(sections);
        for c in &conflicts {
            for p in self
                .profiles
                .iter_mut()
                .filter(|p| p.entry.target == c.section)
            {
                p.status.state = State::Conflict;
                p.status.next_refresh = None;
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
        result
    }

    /// The status as `status` shows it.
    pub fn status(&self) -> Status {
        let now = self.clock.now();
        let mut sessions: BTreeMap<String, SessionStatus> = BTreeMap::new();
        for p in &self.profiles {
            let Ok(sso) = &p.source else { continue };
            sessions
                .entry(sso.cache_key().to_owned())
                .or_insert_with(|| {
                    let token = resolve::read_token(&self.cfg.aws.sso_cache_dir, sso, now).ok();
                    let token_any = match crate::sso_cache::read(
                        &self.cfg.aws.sso_cache_dir,
                        sso.cache_key(),
                    ) {
                        Ok(crate::sso_cache::Read::Token(t)) => Some(t),
                        _ => None,
                    };
                    SessionStatus {
                        name: sso.cache_key().to_owned(),
                        token_expires_at: token_any.as_ref().map(|t| t.expires_at),
                        refreshable: token
                            .as_ref()
                            .is_some_and(|t| sso.session.is_some() && t.can_refresh(now)),
                        login_command: sso.login_command(),
                    }
                });
        }
        Status {
            version: STATUS_VERSION,
            daemon: DaemonInfo {
                pid: std::process::id(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                started_at: self.started_at,
                config: self.cfg.describe_origin(),
                credentials_file: self.cfg.aws.credentials_file.display().to_string(),
            },
            profiles: self.profiles.iter().map(|p| p.status.clone()).collect(),
            sso_sessions: sessions.into_values().collect(),
        }
    }
}

/// The managed profiles of `cfg`, each with how it resolves in `aws` (or why it cannot).
fn plan(cfg: &Config, aws: &AwsConfig) -> Vec<Managed> {
    cfg
        .profiles
        .iter()
        .map(|entry| {
            let source = aws.sso_profile(&entry.source).map_err(|e| {
                ResolveError::Config(match e {
                    ProfileError::UnknownProfile { .. } => format!(
                        "{e}; fix `source` in credsync's config or add the profile to the AWS config"
                    ),
                    _ => e.to_string(),
                })
            });
            let mut status = ProfileStatus::new(&entry.source, &entry.target);
            match &source {
                Ok(_) => status.kind = Kind::Sso,
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
