//! The refresh engine: the managed profiles' state machine (`machine.rs`) and the edge around it
//! that reads files, calls AWS and writes. One round (the daemon's, `sync`'s): look at the
//! token caches the profiles waiting for a login depend on, apply a due check, then do what
//! the machine answers — refresh the sso-session tokens due, resolve the due profiles
//! concurrently (at most `max_concurrency` in flight, one token read — and at most one token
//! refresh — per sso-session), write the credentials file once — feeding every outcome back
//! as an event. The round ends with one [`Report`]; `status` is a view of the state.

use credsync_core::engine::{machine, report};

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::aws::{self, AwsEdge, Clients, ResolveError};
use crate::aws_profile::{self, AwsConfig, ProfileError, SsoProfile};
use crate::chain::{self, Base};
use crate::config::{Config, Env, Origin};
use crate::ini_edit;
use crate::schedule::{self, Clock, Random, Wait};
use crate::secret::Credentials;
use crate::sso_cache::{self, CachedToken};
use crate::status::{DaemonInfo, Effective, STATUS_VERSION, Status};
use crate::token;
use crate::view;
use crate::write::{self, Identity, IdentityOf, WriteError, WriteOptions};

pub use machine::{Action, Event, FetchOutcome, Fetched, ManagedProfile, TokenFacts};
use machine::{Machine, Settings};
pub use report::{ProfileReport, Report, SessionOutcome, SessionReport};

/// Called with each file credsync has just written, and its identity when the writer knows it
/// (the watcher ignores those changes).
pub(crate) type OnWrite = Arc<dyn Fn(&Path, Option<Identity>) + Send + Sync>;

/// Errors that stop the engine before any profile is tried.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    AwsConfig(#[from] ProfileError),
}

/// The real wall clock: `SystemTime::now`, and tokio's sleep (the runtime keeps serving).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep(&self, d: Duration) -> Wait {
        Box::pin(tokio::time::sleep(d))
    }
}

/// The random source of production: `fastrand`'s thread-local generator (seeded from the OS).
pub(crate) fn system_random() -> Random {
    Arc::new(fastrand::f64)
}

/// What the engine reaches outside itself through, injected so that tests can pin it: wall
/// time, the random source of jitter and backoff, AWS, and the process environment (read once
/// where the program started).
pub struct Seams {
    pub clock: Arc<dyn Clock>,
    pub random: Random,
    pub aws: AwsEdge,
    pub env: Env,
}

impl Seams {
    /// The real ones: the system clock, `fastrand`, and AWS reached as `env` says.
    pub fn production(env: Env) -> Seams {
        Seams {
            clock: Arc::new(SystemClock),
            random: system_random(),
            aws: AwsEdge::from_env(&env),
            env,
        }
    }
}

/// The engine: the configuration, the state machine, and how AWS and the files are reached.
pub struct Engine {
    cfg: Config,
    aws: AwsConfig,
    machine: Machine,
    clients: Clients,
    /// Where and how AWS is reached (the environment, read once where the program started).
    edge: AwsEdge,
    /// The process environment, as read where the program started (the container's uid map).
    env: Env,
    clock: Arc<dyn Clock>,
    on_write: Option<OnWrite>,
    started_at: SystemTime,
    /// Why the last reload was refused; `None` once one succeeds.
    reload_error: Option<String>,
    /// Per session, a refreshed token whose save to the cache file failed: its refresh token
    /// may be the only valid one (SSO-OIDC rotates them), so it is kept, used, and saved as soon
    /// as the file can take it.
    unsaved: BTreeMap<String, Kept>,
    /// What is known of each `aws login` session the profiles use, by session ARN.
    logins: BTreeMap<String, LoginSession>,
}

/// How long a failed renewal of a session only role chains use waits before the next try.
const LOGIN_RETRY: Duration = Duration::from_secs(30);

/// What the engine knows of one `aws login` session (its profiles' state is the machine's).
#[derive(Debug, Clone)]
struct LoginSession {
    login_command: String,
    /// When the credentials of its cache entry expire, as last read or renewed.
    expires_at: Option<SystemTime>,
    /// The refresh token AWS Sign-In refused (its fingerprint), and when: not sent again.
    refused: Option<(String, SystemTime)>,
    /// When to renew it next when no profile's own schedule does (a session that is only the
    /// source of role chains, whose credentials last longer than its own).
    renew_at: Option<SystemTime>,
}

impl LoginSession {
    /// The session as `status` (and the notifications) show it, named `name`.
    fn status(&self, name: &str) -> crate::status::SessionStatus {
        let why =
            crate::token_policy::why_not_login(self.expires_at.is_some(), self.refused.is_some());
        let mut s = crate::status::SessionStatus::new(name, &self.login_command);
        s.token_expires_at = self.expires_at;
        s.refreshable = why.is_none();
        s.not_refreshable = why;
        s.refused_at = self.refused.as_ref().map(|(_, at)| *at);
        s.credentials_until = self.expires_at;
        s.aws_login = true;
        s
    }
}

/// A token kept in memory because its save failed, and the token on disk it replaces.
struct Kept {
    token: CachedToken,
    replaces: CachedToken,
}

impl Engine {
    /// Loads the AWS config file and plans the managed profiles; the world is reached through
    /// `seams`. Nothing is written.
    pub fn new(cfg: Config, seams: Seams) -> Result<Engine, EngineError> {
        let Seams {
            clock,
            random,
            aws: edge,
            env,
        } = seams;
        let now = clock.now();
        let aws = aws_profile::load(&cfg.aws.config_file)?;
        let profiles = plan(&cfg, &aws, &random);
        let machine = Machine::new(profiles, settings(&cfg), random);
        Ok(Engine {
            cfg,
            aws,
            machine,
            clients: Clients::new(edge.clone()),
            edge,
            env,
            clock,
            on_write: None,
            started_at: now,
            reload_error: None,
            unsaved: BTreeMap::new(),
            logins: BTreeMap::new(),
        })
    }

    /// The configuration the engine runs with.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The process environment, as read where the program started.
    pub(crate) fn env(&self) -> &Env {
        &self.env
    }

    /// The managed profiles, in the configuration's order.
    pub(crate) fn profiles(&self) -> &[ManagedProfile] {
        self.machine.profiles()
    }

    /// Registers a callback told of every file the engine writes.
    pub(crate) fn set_on_write(&mut self, f: OnWrite) {
        self.on_write = Some(f);
    }

    /// Prepares the daemon's first round: schedules the sso-session token refreshes from the
    /// cache files, and adopts credentials on disk that are still fresh (no network call for
    /// them). Returns how many profiles were adopted.
    pub fn start(&mut self) -> usize {
        let now = self.clock.now();
        let tokens = self.read_tokens();
        self.machine.apply(now, Event::TokensRead(tokens));
        let credentials = read_credentials(&self.cfg.aws.credentials_file);
        let fresh = |m: &Machine| {
            let p = m.profiles().iter();
            p.filter(|p| p.status().state == crate::status::State::Fresh)
                .count()
        };
        let before = fresh(&self.machine);
        self.machine.apply(now, Event::Started { credentials });
        fresh(&self.machine) - before
    }

    /// A reload: takes `loaded` (credsync's config as read again) through [`Engine::reconfigure`].
    /// On error nothing changes but the status, which says why until a reload succeeds.
    pub(crate) fn reload(&mut self, loaded: Result<Config, String>) -> Result<(), String> {
        let result = loaded.and_then(|cfg| self.reconfigure(cfg).map_err(|e| e.to_string()));
        self.reload_error = result.as_ref().err().cloned();
        result
    }

    /// Takes a new configuration (a reload): re-reads the AWS config and re-plans. Profiles that
    /// stay (same source and target) keep their credentials, state and schedule. On error
    /// nothing changes.
    pub(crate) fn reconfigure(&mut self, cfg: Config) -> Result<(), EngineError> {
        let aws = aws_profile::load(&cfg.aws.config_file)?;
        let profiles = plan(&cfg, &aws, &self.machine.random());
        let now = self.clock.now();
        let settings = settings(&cfg);
        self.machine
            .apply(now, Event::Reconfigured { profiles, settings });
        let previous = std::mem::replace(&mut self.cfg, cfg).container;
        self.aws = aws;
        let tokens = self.read_tokens();
        self.machine.apply(now, Event::TokensRead(tokens));
        // A reload that narrows access takes it back now, not at the next refresh.
        if let Err(e) = self.revoke_acls(previous.as_ref()) {
            tracing::warn!("{e}");
        }
        Ok(())
    }

    /// Makes the profiles named `name` (source or target; all when `None`) due at the next
    /// round, waiting for a login or not. Returns their indices; empty when no profile has
    /// that name.
    pub fn request_refresh(&mut self, name: Option<&str>) -> Vec<usize> {
        let hit = self.machine.named(name);
        let now = self.clock.now();
        self.machine
            .apply(now, Event::RefreshRequested(name.map(str::to_owned)));
        hit
    }

    /// The engine's clock.
    pub fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// Indices of the profiles due now.
    pub fn due(&self) -> Vec<usize> {
        self.machine.due(self.clock.now())
    }

    /// The earliest next refresh among all profiles and sso-session tokens.
    pub fn next_deadline(&self) -> Option<SystemTime> {
        let logins = self.chained_logins().into_iter();
        let renewals = logins.filter_map(|l| self.logins.get(&l.session)?.renew_at);
        self.machine
            .next_deadline()
            .into_iter()
            .chain(renewals)
            .min()
    }

    /// The `aws login` sessions that only role chains use: no profile's schedule follows their
    /// 15-minute credentials, so the engine renews them on their own.
    fn chained_logins(&self) -> Vec<chain::LoginProfile> {
        let plans = self
            .profiles()
            .iter()
            .filter_map(|p| p.source().as_ref().ok());
        let (mut chained, mut direct) = (Vec::new(), HashSet::new());
        for plan in plans {
            if let Some(login) = plan.login() {
                if plan.hops.is_empty() {
                    direct.insert(login.session.clone());
                } else if !chained.iter().any(|c: &chain::LoginProfile| c == login) {
                    chained.push(login.clone());
                }
            }
        }
        chained.retain(|l| !direct.contains(&l.session));
        chained
    }

    /// One round: everything due now, and the write that follows. Retryable failures are
    /// tried up to `attempts` times within the round (with backoff); the daemon passes 1 and
    /// reschedules instead.
    pub async fn round(&mut self, attempts: u32) -> Report {
        let now = self.clock.now();
        let dir = self.cfg.aws.sso_cache_dir.clone();
        for key in self.machine.blocked_sessions(now) {
            let identity = Identity::of_path(&sso_cache::path(&dir, &key));
            self.machine
                .apply(now, Event::TokenCacheSeen { key, identity });
        }
        for login in self.chained_logins() {
            let due = self.logins.get(&login.session).and_then(|s| s.renew_at);
            if due.is_some_and(|t| t <= now)
                && let Err(e) = self.login_credentials(&login, now).await
            {
                // Its profiles fail the same way at their next try, and say so.
                tracing::debug!("login session {}: {e}", login.session);
            }
        }
        let actions = self.machine.apply(now, Event::Tick);
        let report = self.act(actions, attempts).await;
        report.log_sessions();
        report
    }

    /// The token cache changed (the user ran `aws sso login`, or the AWS CLI refreshed): the
    /// sessions are planned again from the files, and the profiles waiting for a login are due
    /// now. Returns those.
    pub fn token_cache_changed(&mut self) -> Vec<usize> {
        let woken = self.machine.waiting_on_the_token_cache();
        let tokens = self.read_tokens();
        let now = self.clock.now();
        self.machine.apply(now, Event::TokenCacheChanged(tokens));
        woken
    }

    /// The credentials file changed: profiles in `conflict` are due again, and a managed
    /// section that was removed or altered is written again (the report says whether).
    pub(crate) async fn credentials_file_changed(&mut self) -> Report {
        let text = read_credentials(&self.cfg.aws.credentials_file);
        let now = self.clock.now();
        let actions = self
            .machine
            .apply(now, Event::CredentialsFileChanged { text });
        self.act(actions, 1).await
    }

    /// Does what the machine asked, feeding each outcome back, until it asks for nothing more;
    /// then ends the round, which the machine answers with the round's report.
    async fn act(&mut self, actions: Vec<Action>, attempts: u32) -> Report {
        let mut queue = VecDeque::from(actions);
        let mut ended = false;
        loop {
            let event = match queue.pop_front() {
                Some(Action::Report(report)) => return *report,
                // Each refresh feeds its outcome back itself (`TokenRead`, `TokenRefreshed`,
                // `TokenSaved`), as the fetch's token reads do: nothing more to apply here.
                Some(Action::RefreshTokens(keys)) => {
                    self.refresh_tokens(&keys).await;
                    continue;
                }
                Some(Action::Fetch(which)) => Event::Fetched(self.fetch(&which, attempts).await),
                Some(Action::Write) => self.write(attempts).await,
                None if !ended => {
                    ended = true;
                    Event::RoundEnded
                }
                // The machine answers `RoundEnded` with the report; an empty one otherwise.
                None => return Report::default(),
            };
            let now = self.clock.now();
            queue.extend(self.machine.apply(now, event));
        }
    }

    /// Each session's token as its cache file holds it now.
    fn read_tokens(&self) -> Vec<(String, Option<TokenFacts>)> {
        let dir = &self.cfg.aws.sso_cache_dir;
        let read = |(key, legacy): (String, bool)| {
            let token = match sso_cache::read(dir, &key) {
                Ok(sso_cache::Read::Token(t)) => Some(TokenFacts::of(&t, legacy)),
                _ => None,
            };
            (key, token)
        };
        self.machine.session_keys().into_iter().map(read).collect()
    }

    /// Refreshes the tokens of the sso-sessions `keys` (no role credentials are fetched).
    async fn refresh_tokens(&mut self, keys: &[String]) {
        let now = self.clock.now();
        for key in keys {
            let sso = self
                .profiles()
                .iter()
                .filter_map(|p| p.source().as_ref().ok()?.sso())
                .find(|s| s.cache_key() == key)
                .cloned();
            if let Some(sso) = sso
                && let Err(e) = self.session_token(&sso, now).await
            {
                // Its profiles fail the same way at their next try, and say so (once).
                tracing::debug!("SSO session {key}: {e}");
            }
        }
    }

    /// Resolves the profiles at `which`; retryable failures are tried again, up to `attempts`
    /// in all, after a backoff. Each outcome comes with its session's token cache identity.
    async fn fetch(&mut self, which: &[usize], attempts: u32) -> Vec<Fetched> {
        let mut outcomes = Vec::new();
        let mut pending: Vec<usize> = which.to_vec();
        for attempt in 1..=attempts.max(1) {
            let round = self.fetch_once(&pending).await;
            let (done, retry, wait) = split_retries(round, attempt, attempts);
            outcomes.extend(done);
            pending = retry;
            if pending.is_empty() {
                break;
            }
            tracing::debug!("{} profile(s) to try again in {wait:?}", pending.len());
            self.clock.sleep(wait).await;
        }
        // In the order asked for: each index's first position in `which`.
        let mut order: HashMap<usize, usize> = HashMap::with_capacity(which.len());
        for (at, &i) in which.iter().enumerate() {
            order.entry(i).or_insert(at);
        }
        outcomes.sort_by_key(|(i, _)| order.get(i).copied());
        let dir = &self.cfg.aws.sso_cache_dir;
        let identity = |i: usize| {
            let sso = self.profiles()[i].source().as_ref().ok()?.sso()?;
            Identity::of_path(&sso_cache::path(dir, sso.cache_key()))
        };
        let with_cache = outcomes.into_iter().map(|(index, outcome)| Fetched {
            index,
            cache: identity(index),
            outcome,
        });
        with_cache.collect()
    }

    /// One attempt at the profiles at `which` (each has a plan), concurrently.
    async fn fetch_once(&mut self, which: &[usize]) -> Vec<(usize, FetchOutcome)> {
        let now = self.clock.now();
        // One token per sso-session (or legacy start URL) for the attempt, shared by its
        // profiles: read once, and refreshed at most once.
        let mut tokens: BTreeMap<String, Result<CachedToken, ResolveError>> = BTreeMap::new();
        // One renewal per `aws login` session for the attempt, shared by its profiles.
        let mut logins: BTreeMap<String, Result<Credentials, ResolveError>> = BTreeMap::new();
        let mut results = Vec::new();
        let mut jobs = JoinSet::new();
        let limit = Arc::new(Semaphore::new(self.cfg.refresh.max_concurrency.max(1)));
        for &i in which {
            let Ok(plan) = self.profiles()[i].source().clone() else {
                continue;
            };
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
                Base::Login(login) => {
                    if !logins.contains_key(&login.session) {
                        let c = self.login_credentials(login, now).await;
                        logins.insert(login.session.clone(), c);
                    }
                    match &logins[&login.session] {
                        Ok(c) => BaseJob::Local(c.clone()),
                        Err(e) => {
                            results.push((i, Err(e.clone())));
                            continue;
                        }
                    }
                }
                other => match aws::local_credentials(other, &self.edge) {
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
                (i, resolve_job(base, sts, &plan.hops, clock).await)
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

    /// The credentials of `login`'s session: its cache entry's, renewed first through AWS
    /// Sign-In when they are close to their end (`signin::renew`, under the session's lock).
    async fn login_credentials(
        &mut self,
        login: &chain::LoginProfile,
        now: SystemTime,
    ) -> Result<Credentials, ResolveError> {
        let dir = crate::login_cache::dir(&self.env);
        let region = crate::signin::region_of(login, &self.env);
        let endpoint = self.clients.signin_endpoint(&region).await;
        let signin = crate::signin::Signin::new(endpoint, self.clients.edge());
        let command = login.login_command();
        let state = self
            .logins
            .entry(login.session.clone())
            .or_insert_with(|| LoginSession {
                login_command: command.clone(),
                expires_at: None,
                refused: None,
                renew_at: None,
            });
        state.login_command = command.clone();
        let refused = state.refused.as_ref().map(|(print, _)| print.clone());
        let result = crate::signin::renew(
            &signin,
            &dir,
            &login.session,
            refused.as_deref(),
            &command,
            now,
        )
        .await;
        let state = self.logins.get_mut(&login.session).expect("inserted above");
        match result {
            Ok(crate::signin::Renewal::Fresh { token, renewed }) => {
                state.refused = None;
                state.expires_at = Some(token.expires_at);
                // As a profile's credentials of that lifetime would be (middle jitter).
                let at = schedule::refresh_at_for(
                    Some(now),
                    token.expires_at,
                    self.cfg.refresh.min_remaining,
                    0.5,
                    true,
                );
                state.renew_at = Some(schedule::not_sooner_than_the_floor(at, Some(now)));
                if renewed {
                    tracing::info!(
                        "login session {}: renewed, credentials until {}",
                        login.session,
                        crate::timefmt::rfc3339(token.expires_at)
                    );
                    self.notify_write(&crate::login_cache::path(&dir, &login.session));
                }
                Ok(token.credentials())
            }
            Ok(crate::signin::Renewal::Refused {
                fingerprint,
                expires_at,
                error,
            }) => {
                state.renew_at = None;
                if state.refused.as_ref().map(|(p, _)| p) != Some(&fingerprint) {
                    tracing::warn!("login session {}: {error}", login.session);
                    state.refused = Some((fingerprint, now));
                }
                state.expires_at = Some(expires_at);
                Err(error)
            }
            Err(e) => {
                if matches!(e, ResolveError::LoginRequired { .. }) {
                    state.expires_at = None;
                    state.refused = None;
                    state.renew_at = None;
                } else {
                    // Tried again with the profiles' backoff, or here in a while.
                    state.renew_at = Some(now + LOGIN_RETRY);
                }
                Err(e)
            }
        }
    }

    /// The token of `sso`'s session, refreshed first through SSO-OIDC when the machine says
    /// so (less than `token_refresh_before` left, and it can be).
    async fn session_token(
        &mut self,
        sso: &SsoProfile,
        now: SystemTime,
    ) -> Result<CachedToken, ResolveError> {
        let dir = self.cfg.aws.sso_cache_dir.clone();
        let key = sso.cache_key().to_owned();
        let token = match self.save_unsaved(&key, now) {
            Some(token) => token,
            None => match sso_cache::read(&dir, &key) {
                Ok(sso_cache::Read::Token(t)) => t,
                _ => {
                    let token = None;
                    self.machine.apply(now, Event::TokenRead { key, token });
                    return aws::read_token(&dir, sso, now);
                }
            },
        };
        let legacy = sso.session.is_none();
        let old = TokenFacts::of(&token, legacy);
        let read = Event::TokenRead {
            key: key.clone(),
            token: Some(old.clone()),
        };
        let refresh = Action::RefreshTokens(vec![key.clone()]);
        if self.machine.apply(now, read).contains(&refresh) {
            let client = self.clients.oidc(&sso.sso_region).await;
            let login = sso.login_command();
            // The token on disk this one replaces: itself, or the one a kept token replaces.
            let replaces = self
                .unsaved
                .get(&key)
                .map_or(&token, |k| &k.replaces)
                .clone();
            let result =
                token::refresh_and_replace(&client, &dir, &key, &token, &replaces, &login, now)
                    .await;
            let facts = result.as_ref().map(|r| TokenFacts::of(&r.token, legacy));
            let event = Event::TokenRefreshed {
                key: key.clone(),
                old,
                result: facts.map_err(Clone::clone),
            };
            self.machine.apply(now, event);
            return match result {
                Ok(r) => Ok(self.saved_or_kept(&key, r, replaces, now)),
                Err(_) if !token.is_expired(now) => Ok(token),
                Err(e) => Err(e),
            };
        }
        // The token in memory, not yet on disk, is the one in force (the file's may be spent).
        if self.unsaved.contains_key(&key) {
            return aws::usable_token(token, sso, now);
        }
        aws::read_token(&dir, sso, now)
    }

    /// A refreshed token: noted as written when it reached the cache file, else kept in memory
    /// until a save succeeds. Returns it.
    fn saved_or_kept(
        &mut self,
        key: &str,
        r: token::Refreshed,
        replaces: CachedToken,
        now: SystemTime,
    ) -> CachedToken {
        let dir = &self.cfg.aws.sso_cache_dir;
        let result = match r.saved {
            Ok(()) => {
                self.unsaved.remove(key);
                self.notify_write(&sso_cache::path(dir, key));
                Ok(())
            }
            Err(e) => {
                let kept = Kept {
                    token: r.token.clone(),
                    replaces,
                };
                self.unsaved.insert(key.to_owned(), kept);
                Err(e.to_string())
            }
        };
        let key = key.to_owned();
        self.machine.apply(now, Event::TokenSaved { key, result });
        r.token
    }

    /// Tries again to save session `key`'s token kept in memory, if there is one. Returns the
    /// token in force: the one kept (saved now or not), or a later one another program wrote
    /// meanwhile (a new sign-in), which replaces it. `None` without a token kept.
    fn save_unsaved(&mut self, key: &str, now: SystemTime) -> Option<CachedToken> {
        let Kept { token, replaces } = self.unsaved.get(key)?;
        let saved = token::store(&self.cfg.aws.sso_cache_dir, key, token, replaces);
        let r = match saved {
            Ok(in_force) => token::Refreshed {
                token: in_force,
                saved: Ok(()),
            },
            Err(e) => token::Refreshed {
                token: token.clone(),
                saved: Err(e),
            },
        };
        let replaces = replaces.clone();
        Some(self.saved_or_kept(key, r, replaces, now))
    }

    fn notify_write(&self, path: &Path) {
        self.notify_write_as(path, None);
    }

    fn notify_write_as(&self, path: &Path, identity: Option<Identity>) {
        if let Some(f) = &self.on_write {
            f(path, identity);
        }
    }

    /// Writes every profile's known credentials to the credentials file in one edit (and the
    /// container view after it). The sections that belong to someone else are reported, not
    /// written. While another process holds the file's lock (in-place mode), it is tried again
    /// a second later, up to `attempts` times in all, asleep (the runtime keeps serving); the
    /// daemon passes 1, and the machine schedules the next try.
    async fn write(&self, attempts: u32) -> Event {
        let mut conflicts = Vec::new();
        let mut result = self.write_files(&mut conflicts);
        for _ in 1..attempts {
            if !matches!(result, Err(WriteError::Locked { .. })) {
                break;
            }
            self.clock.sleep(Duration::from_secs(1)).await;
            result = self.write_files(&mut conflicts);
        }
        Event::Written {
            conflicts,
            result: result.map_err(|e| e.to_string()),
        }
    }

    fn write_files(
        &self,
        conflicts: &mut Vec<ini_edit::Conflict>,
    ) -> Result<write::Outcome, WriteError> {
        let path = &self.cfg.aws.credentials_file;
        let opts = WriteOptions {
            mode: self.cfg.write.mode,
            new_file_mode: self.cfg.write.file_mode,
        };
        let sections = self.machine.sections();
        let removed = self.machine.removed_targets();
        // Access credsync granted and no longer should goes first: the rewrite carries the
        // file's ACL over to the new inode.
        self.revoke_acls(None)
            .map_err(view::ViewError::into_write_error)?;
        if sections.is_empty() && removed.is_empty() {
            return Ok(write::Outcome::Unchanged);
        }
        // Only the user's own file, and only one that reads as a credentials file: a path (or a
        // symlink) pointing at another file must not get credentials appended to it.
        let guard = write::Guard {
            own_file: true,
            exact_mode: false,
        };
        let result = write::update_guarded(path, &opts, guard, |old| {
            let old = match old {
                None => "",
                Some(bytes) => std::str::from_utf8(bytes).map_err(|e| {
                    format!(
                        "the file is not UTF-8 text (byte {}); credsync will not edit it — fix or move it",
                        e.valid_up_to()
                    )
                })?,
            };
            ini_edit::check_ini(old).map_err(|e| e.to_string())?;
            let edit = ini_edit::apply(old, &sections, &removed);
            *conflicts = edit.conflicts;
            Ok(Some(edit.text.into_bytes()))
        });
        let (outcome, identity) = result?;
        if outcome == write::Outcome::Written {
            self.notify_write_as(path, identity);
        }
        let conflicted: HashSet<&str> = conflicts.iter().map(|c| c.section.as_str()).collect();
        let conflicting = |target: &str| conflicted.contains(target);
        self.write_view(path, &conflicting)?;
        Ok(outcome)
    }

    /// After the credentials file: the container view (`[container]`), with every profile that
    /// has credentials (but those `conflicting`), and with `[container] uid` read access to the credentials file too.
    fn write_view(
        &self,
        credentials_file: &Path,
        conflicting: &dyn Fn(&str) -> bool,
    ) -> Result<(), WriteError> {
        let Some(container) = &self.cfg.container else {
            return Ok(());
        };
        let sections: Vec<view::ViewSection<'_>> = self
            .profiles()
            .iter()
            .filter(|p| !conflicting(&p.entry().target))
            .filter_map(|p| {
                let region = self
                    .aws
                    .get(&p.entry().source)
                    .and_then(|s| s.keys.get("region"))
                    .map(String::as_str);
                Some((p.entry().target.as_str(), region, p.credentials()?))
            })
            .collect();
        let removed = self.machine.removed_targets();
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
        match crate::uidmap::resolve(c, &self.env) {
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
    fn revoke_acls(
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
            if let Some(c) =
                crate::config::parse("[container]\n", Path::new("(default)"), &self.env)
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

    /// The status as `status` shows it: a view of the state (the sessions' tokens as last
    /// read or refreshed; no file is read).
    pub fn status(&self) -> Status {
        let now = self.clock.now();
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
                reload_error: self.reload_error.clone(),
            },
            profiles: self.profiles().iter().map(ManagedProfile::status).collect(),
            sso_sessions: {
                let mut sessions = self.machine.session_status(now);
                let used: HashSet<&str> = self
                    .profiles()
                    .iter()
                    .filter_map(|p| Some(p.source().as_ref().ok()?.login()?.session.as_str()))
                    .collect();
                let logins = self
                    .logins
                    .iter()
                    .filter(|(name, _)| used.contains(name.as_str()));
                sessions.extend(logins.map(|(name, s)| s.status(name)));
                sessions
            },
        }
    }
}

/// What the state machine needs of `cfg`.
fn settings(cfg: &Config) -> Settings {
    Settings {
        min_remaining: cfg.refresh.min_remaining,
        token_refresh_before: cfg.refresh.token_refresh_before,
        credentials_file: cfg.aws.credentials_file.clone(),
    }
}

/// The credentials file's text; `""` when it cannot be read (the write then says why).
fn read_credentials(path: &Path) -> String {
    crate::user_file::read_text_or_empty(path, crate::user_file::Kind::Credentials)
}

/// The managed profiles of `cfg`, each with how it resolves in `aws` (or why it cannot), and
/// its jitter drawn from `random`.
fn plan(cfg: &Config, aws: &AwsConfig, random: &Random) -> Vec<ManagedProfile> {
    // Static keys of source profiles, from the credentials file without credsync's own sections
    // (a managed section must never become the source of another profile).
    let path = &cfg.aws.credentials_file;
    let text = read_credentials(path);
    let credentials = ini_edit::source_credentials(&text, path).unwrap_or_else(|e| {
        tracing::warn!("{e}; static keys in it are not used as role sources");
        BTreeMap::new()
    });
    let planner = chain::Planner::new(aws, &credentials);
    let plan_one = |entry: &crate::config::ProfileEntry| {
        let source = planner.plan(&entry.source).map_err(|e| {
            ResolveError::Config(match e {
                chain::ChainError::Profile(ProfileError::UnknownProfile { .. }) => format!(
                    "{e}; fix `source` in credsync's config or add the profile to the AWS config"
                ),
                _ => e.to_string(),
            })
        });
        ManagedProfile::new(entry.clone(), source, random())
    };
    cfg.profiles.iter().map(plan_one).collect()
}

/// Splits one attempt's outcomes into those that are final and the profiles to try again
/// (retryable failures while attempts remain), with the wait before that attempt.
fn split_retries(
    outcomes: Vec<(usize, FetchOutcome)>,
    attempt: u32,
    attempts: u32,
) -> (Vec<(usize, FetchOutcome)>, Vec<usize>, Duration) {
    let mut done = Vec::new();
    let mut retry = Vec::new();
    let mut wait = Duration::ZERO;
    for (i, outcome) in outcomes {
        match &outcome {
            Err(e) if e.is_retryable() && attempt < attempts => {
                wait = wait.max(schedule::backoff(attempt, e.retry_after(), 0.5));
                retry.push(i);
            }
            _ => done.push((i, outcome)),
        }
    }
    (done, retry, wait.min(Duration::from_secs(10)))
}

/// Resolves one profile inside a spawned task: its base credentials, then its role hops.
async fn resolve_job(
    base: BaseJob,
    sts: Option<aws_sdk_sts::Config>,
    hops: &[chain::RoleHop],
    clock: Arc<dyn Clock>,
) -> FetchOutcome {
    let creds = match base {
        BaseJob::Sso(client, job) => {
            let (sso, token) = *job;
            aws::sso_role_credentials(&client, &sso, &token).await
        }
        BaseJob::Local(c) => Ok(c),
    };
    let creds = match (creds, sts) {
        (Ok(c), Some(sdk)) => crate::sts::assume_chain(&sdk, hops, c, clock.now()).await,
        (other, _) => other,
    };
    creds.and_then(|c| not_yet_expired(c, clock.now()))
}

/// How one profile's base credentials are obtained inside a spawned refresh task.
enum BaseJob {
    Sso(aws_sdk_sso::Client, Box<(SsoProfile, CachedToken)>),
    Local(Credentials),
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
