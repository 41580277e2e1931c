//! The engine's state machine: what credsync knows of each managed profile and sso-session
//! (credentials, state, schedule, the token facts `status` shows), changed only by an
//! [`Event`], each answered with the [`Action`]s to take. Pure: no file, network or clock
//! access; `now` and the random source come in from the edge (`credsync::engine::Engine`), which
//! measures the world (reads files, calls AWS) and turns what it found into events.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::chain::{Base, Kind, Plan};
use crate::config::ProfileEntry;
use crate::ini_edit::{self, Conflict, ManagedSection};
use crate::resolve::ResolveError;
use crate::schedule::{self, Random};
use crate::secret::Credentials;
use crate::sso_cache::CachedToken;
use crate::status::{ProfileStatus, SessionStatus, State};
use crate::token_policy::{self, NotRefreshable, TokenShape};
use crate::write::{self, Identity};

use super::report::{ProfileReport, Report, SessionOutcome, SessionReport};

/// The outcome of resolving one profile.
pub type FetchOutcome = Result<Credentials, ResolveError>;

/// How long a profile that needs a login waits before the token cache is looked at again
/// (when no watcher says it changed).
pub(crate) const LOGIN_RECHECK: Duration = Duration::from_secs(30);

/// What the machine needs of the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub min_remaining: Duration,
    pub token_refresh_before: Duration,
    /// The credentials file (named in conflict messages).
    pub credentials_file: PathBuf,
}

/// What a read of a session's token cache file showed (never the token itself).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenFacts {
    pub(crate) expires_at: SystemTime,
    /// What of it decides whether it can be refreshed ([`token_policy`]).
    pub(crate) shape: TokenShape,
}

impl TokenFacts {
    /// The facts of `token` of a session (`legacy`: of a profile without sso-session).
    pub fn of(token: &CachedToken, legacy: bool) -> TokenFacts {
        TokenFacts {
            expires_at: token.expires_at,
            shape: TokenShape::of(token, legacy),
        }
    }

    /// Why it cannot be refreshed at `now` ([`token_policy::why_not`]); `refused`: SSO-OIDC
    /// refused this very token's refresh. `None` when it can.
    pub(crate) fn not_refreshable(&self, refused: bool, now: SystemTime) -> Option<NotRefreshable> {
        token_policy::why_not(Some(&self.shape), refused, now)
    }

    /// Its client registration's expiry, when it has one.
    fn registration_expires_at(&self) -> Option<SystemTime> {
        self.shape.registration_expires_at
    }

    fn is_expired(&self, now: SystemTime) -> bool {
        self.expires_at <= now
    }
}

/// A refresh SSO-OIDC refused: when, and of which token (by its expiry). That token is not
/// tried again; a new sign-in (another token) ends it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Refusal {
    at: SystemTime,
    token_expires_at: SystemTime,
}

/// Everything that changes the machine's state.
#[derive(Debug)]
pub enum Event {
    /// The daemon starts: the credentials file's text. Its managed sections that are still
    /// fresh are adopted, so a restart makes no network call for them.
    Started { credentials: String },
    /// A new configuration, planned (see [`ManagedProfile::new`]); profiles that stay keep their
    /// credentials, state and schedule.
    Reconfigured {
        profiles: Vec<ManagedProfile>,
        settings: Settings,
    },
    /// Each session's token as read now (at start, after a reload): when each refreshable
    /// session's token is next refreshed.
    TokensRead(Vec<(String, Option<TokenFacts>)>),
    /// A due check: the daemon's timer, or the start of a round.
    Tick,
    /// `refresh` asked for the profiles named so (source or target; all when `None`).
    RefreshRequested(Option<String>),
    /// The token cache directory changed (a login, the AWS CLI refreshing): each session's
    /// token as read now. Profiles waiting for a login are looked at again.
    TokenCacheChanged(Vec<(String, Option<TokenFacts>)>),
    /// Before a round: the identity of session `key`'s cache file, as the edge measured it,
    /// for the profiles waiting on it for a login.
    TokenCacheSeen {
        key: String,
        identity: Option<Identity>,
    },
    /// A round read session `key`'s token (`None`: missing or unreadable). Answered with
    /// `RefreshTokens([key])` when it must be refreshed before its profiles use it.
    TokenRead {
        key: String,
        token: Option<TokenFacts>,
    },
    /// A session token's refresh through SSO-OIDC: the token before, and the new one or why not.
    TokenRefreshed {
        key: String,
        old: TokenFacts,
        result: Result<TokenFacts, ResolveError>,
    },
    /// A try to save session `key`'s newest token (just refreshed, or kept in memory since a
    /// save failed) to its cache file: done, or why not.
    TokenSaved {
        key: String,
        result: Result<(), String>,
    },
    /// The refresh outcomes of fetched profiles, each with its session's cache file identity
    /// measured after the fetch (for a profile that now needs a login).
    Fetched(Vec<Fetched>),
    /// The write that followed: the sections left alone because credsync did not write them,
    /// and whether everything reached the disk.
    Written {
        conflicts: Vec<Conflict>,
        result: Result<write::Outcome, String>,
    },
    /// The credentials file changed; its text as read now.
    CredentialsFileChanged { text: String },
    /// The edge has done everything the round's events asked for: answered with
    /// [`Action::Report`], what the round did, and the next round starts.
    RoundEnded,
}

/// One profile's refresh outcome.
#[derive(Debug)]
pub struct Fetched {
    pub index: usize,
    pub outcome: FetchOutcome,
    /// Its session's token cache file identity, measured after the fetch.
    pub cache: Option<Identity>,
}

/// What the edge must do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Refresh these sso-sessions' tokens (no role credentials are fetched).
    RefreshTokens(Vec<String>),
    /// Resolve these profiles (their plan is `Ok`), concurrently.
    Fetch(Vec<usize>),
    /// Write the credentials file (and the container view) from the machine's sections.
    Write,
    /// The round has ended (the answer to [`Event::RoundEnded`]): log and hand over its report.
    Report(Box<Report>),
}

/// While a profile needs a login: the token cache file as it was then. No network call is
/// made again until it changes (the user ran `aws sso login`).
#[derive(Debug, Clone, PartialEq)]
struct Blocked {
    cache: Option<Identity>,
}

/// One managed profile and what credsync knows of it.
#[derive(Debug)]
pub struct ManagedProfile {
    entry: ProfileEntry,
    /// How the profile resolves (its SSO or static base and role hops), or why it cannot.
    source: Result<Plan, ResolveError>,
    state: State,
    expires_at: Option<SystemTime>,
    last_refresh: Option<SystemTime>,
    next_refresh: Option<SystemTime>,
    last_error: Option<String>,
    consecutive_failures: u32,
    /// The credentials last obtained (or found on disk at start), if still known.
    credentials: Option<Credentials>,
    /// When those credentials were obtained, when known (their lifetime drives the schedule).
    issued: Option<SystemTime>,
    blocked: Option<Blocked>,
    /// Asked for by `refresh`: tried at the next round even when not due.
    requested: bool,
    /// The last failure, while the profile is failing.
    last_failure: Option<ResolveError>,
    /// In `[0, 1)`: spreads this profile's deadlines (drawn once, from the injected source).
    jitter: f64,
}

impl ManagedProfile {
    /// A profile not tried yet, resolving as `source` says.
    pub fn new(
        entry: ProfileEntry,
        source: Result<Plan, ResolveError>,
        jitter: f64,
    ) -> ManagedProfile {
        let (state, kind_error) = match &source {
            Ok(_) => (State::Pending, None),
            Err(e) => (State::Error, Some(e.to_string())),
        };
        ManagedProfile {
            entry,
            source,
            state,
            expires_at: None,
            last_refresh: None,
            next_refresh: None,
            last_error: kind_error,
            consecutive_failures: 0,
            credentials: None,
            issued: None,
            blocked: None,
            requested: false,
            last_failure: None,
            jitter,
        }
    }

    pub fn entry(&self) -> &ProfileEntry {
        &self.entry
    }

    pub fn source(&self) -> &Result<Plan, ResolveError> {
        &self.source
    }

    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    fn sso_key(&self) -> Option<&str> {
        self.source.as_ref().ok()?.sso().map(|s| s.cache_key())
    }

    /// The view `status` shows.
    pub fn status(&self) -> ProfileStatus {
        ProfileStatus {
            source: self.entry.source.clone(),
            target: self.entry.target.clone(),
            kind: self.source.as_ref().map_or(Kind::Unknown, Plan::kind),
            state: self.state,
            expires_at: self.expires_at,
            last_refresh: self.last_refresh,
            next_refresh: self.next_refresh,
            last_error: self.last_error.clone(),
            consecutive_failures: self.consecutive_failures,
        }
    }
}

/// One sso-session (or legacy start URL) used by a managed profile.
#[derive(Debug)]
struct Session {
    /// A legacy start URL's (no sso-session): never refreshed.
    legacy: bool,
    login_command: String,
    /// The token as last read or refreshed.
    token: Option<TokenFacts>,
    /// When its token is next due for a refresh (refreshable sessions only).
    next_refresh: Option<SystemTime>,
    /// The last refresh SSO-OIDC refused.
    refused: Option<Refusal>,
    /// The lifetime of the tokens SSO-OIDC issued to credsync for it, once it has refreshed one
    /// (a token read from disk does not say when it was issued).
    lifetime: Option<Duration>,
    /// When credsync last refreshed its token.
    last_success: Option<SystemTime>,
    /// Failed refreshes in a row (the backoff grows with them), and the last one's error.
    failures: u32,
    last_error: Option<String>,
    /// Whether the log has said that its tokens are shorter than `token_refresh_before` allows
    /// (said once, and again only when that changes).
    short_noted: bool,
    /// While the newest token is only in memory (its save failed): since when, why, and when
    /// the save is tried again.
    unsaved: Option<Unsaved>,
}

/// A token credsync holds in memory because its save to the cache file failed.
#[derive(Debug, Clone)]
struct Unsaved {
    since: SystemTime,
    error: String,
    failures: u32,
    retry_at: SystemTime,
}

impl Session {
    /// When SSO-OIDC refused to refresh `token`, if it did (a refusal of an earlier token does
    /// not count: the user signed in again since).
    fn refused_at(&self, token: &TokenFacts) -> Option<SystemTime> {
        let r = self
            .refused
            .filter(|r| r.token_expires_at == token.expires_at)?;
        Some(r.at)
    }

    /// When `token` is due for a refresh: `before` ahead of its expiry, or half the lifetime
    /// of the session's tokens when that is less, and never sooner than the floor after the
    /// last refresh ([`schedule::token_refresh_at`]).
    fn due_at(&self, token: &TokenFacts, before: Duration) -> SystemTime {
        schedule::token_refresh_at(token.expires_at, self.lifetime, before, self.last_success)
    }

    /// When its token is next looked at: the refresh, or the retry of a failed save.
    fn next_check(&self) -> Option<SystemTime> {
        let save = self.unsaved.as_ref().map(|u| u.retry_at);
        self.next_refresh.into_iter().chain(save).min()
    }

    /// Whether credsync can refresh `token` at `now`.
    fn can_refresh(&self, token: &TokenFacts, now: SystemTime) -> bool {
        let refused = self.refused_at(token).is_some();
        token.not_refreshable(refused, now).is_none()
    }

    /// What `status` shows of it, from what was last read or refreshed (the credentials of its
    /// profiles are added by the caller).
    fn status(&self, name: &str, now: SystemTime) -> SessionStatus {
        let mut s = SessionStatus::new(name, &self.login_command);
        let Some(token) = &self.token else {
            return s;
        };
        let refused_at = self.refused_at(token);
        let why = token.not_refreshable(refused_at.is_some(), now);
        s.token_expires_at = Some(token.expires_at);
        s.refreshable = why.is_none();
        s.not_refreshable = why;
        s.refused_at = refused_at;
        s.ends_at = match why {
            None => token.registration_expires_at(),
            Some(_) => Some(token.expires_at),
        };
        s.token_lifetime = self.lifetime;
        s.next_token_refresh = self.next_refresh;
        if let Some(u) = &self.unsaved {
            s.token_unsaved_since = Some(u.since);
            s.token_unsaved_error = Some(u.error.clone());
        }
        s
    }
}

/// The state of every managed profile and sso-session, and of the round in progress. Only
/// [`Machine::apply`] changes it; the round's report comes out of it too, as the answer to
/// [`Event::RoundEnded`].
pub struct Machine {
    profiles: Vec<ManagedProfile>,
    sessions: BTreeMap<String, Session>,
    /// Targets of profiles that left the config: their managed sections go at the next write.
    removed_targets: Vec<String>,
    /// Failed writes in a row, and when the next try is due (a failed write is tried again
    /// with backoff, not only at the next refresh: the credentials fetched are not on disk).
    write_failures: u32,
    write_retry: Option<SystemTime>,
    settings: Settings,
    random: Random,
    /// What the current round did, for its report.
    round: Report,
}

impl Machine {
    pub fn new(profiles: Vec<ManagedProfile>, settings: Settings, random: Random) -> Machine {
        let sessions = sessions_of(&profiles, &mut BTreeMap::new());
        Machine {
            profiles,
            sessions,
            removed_targets: Vec::new(),
            write_failures: 0,
            write_retry: None,
            settings,
            random,
            round: Report::default(),
        }
    }

    /// A fresh draw of the injected random source, in `[0, 1)`.
    fn draw(&self) -> f64 {
        (self.random)()
    }

    /// The injected random source.
    pub fn random(&self) -> Random {
        self.random.clone()
    }

    pub fn profiles(&self) -> &[ManagedProfile] {
        &self.profiles
    }

    /// The targets of profiles that left the configuration, still to be removed from disk.
    pub fn removed_targets(&self) -> Vec<&str> {
        self.removed_targets.iter().map(String::as_str).collect()
    }

    /// Applies `event` at `now`; returns what to do next.
    pub fn apply(&mut self, now: SystemTime, event: Event) -> Vec<Action> {
        match event {
            Event::Started { credentials } => {
                self.adopt(now, &credentials);
                Vec::new()
            }
            Event::Reconfigured { profiles, settings } => {
                self.reconfigure(profiles, settings);
                Vec::new()
            }
            Event::TokensRead(tokens) => {
                self.plan_sessions(now, tokens);
                Vec::new()
            }
            Event::Tick => self.tick(now),
            Event::RefreshRequested(name) => {
                self.request(now, name.as_deref());
                Vec::new()
            }
            Event::TokenCacheChanged(tokens) => {
                self.plan_sessions(now, tokens);
                self.wake_waiting_on_the_token_cache(now);
                Vec::new()
            }
            Event::TokenCacheSeen { key, identity } => {
                for p in &mut self.profiles {
                    let seen = Some(Blocked { cache: identity });
                    if p.sso_key() == Some(key.as_str()) && p.blocked.is_some() && p.blocked != seen
                    {
                        // The user logged in (or out, or the CLI refreshed): try the network.
                        p.blocked = None;
                    }
                }
                Vec::new()
            }
            Event::TokenRead {
                key,
                token: Some(facts),
            } => self.token_read(now, &key, facts),
            Event::TokenRead { key, token: None } => {
                if let Some(s) = self.sessions.get_mut(&key) {
                    // Missing or unreadable: nothing to refresh until a read finds a token (the
                    // next round of its profiles, or a change of the token cache).
                    s.next_refresh = None;
                    s.token = None;
                }
                Vec::new()
            }
            Event::TokenRefreshed { key, old, result } => {
                self.token_refreshed(now, key, old, result);
                Vec::new()
            }
            Event::TokenSaved { key, result } => {
                self.token_saved(now, &key, result);
                Vec::new()
            }
            Event::Fetched(fetched) => self.fetched(now, fetched),
            Event::Written { conflicts, result } => {
                self.written(now, &conflicts, result);
                Vec::new()
            }
            Event::CredentialsFileChanged { text } => self.credentials_file_changed(now, &text),
            Event::RoundEnded => vec![Action::Report(Box::new(self.end_round()))],
        }
    }

    /// Indices of the profiles named `name` (source or target; all when `None`).
    pub fn named(&self, name: Option<&str>) -> Vec<usize> {
        let hit = self
            .profiles
            .iter()
            .enumerate()
            .filter(|(_, p)| name.is_none_or(|n| p.entry.source == n || p.entry.target == n));
        hit.map(|(i, _)| i).collect()
    }

    /// Indices of the profiles due now (asked for, or planned and past their deadline).
    pub fn due(&self, now: SystemTime) -> Vec<usize> {
        (0..self.profiles.len())
            .filter(|&i| {
                let p = &self.profiles[i];
                p.requested || (p.source.is_ok() && p.next_refresh.is_none_or(|t| t <= now))
            })
            .collect()
    }

    /// Sso-sessions whose token is due now: for a refresh, or for another try at saving it.
    pub(crate) fn due_sessions(&self, now: SystemTime) -> Vec<String> {
        let due = self.sessions.iter().filter_map(|(k, s)| {
            let t = s.next_check()?;
            (t <= now).then(|| k.clone())
        });
        due.collect()
    }

    /// The sessions whose cache file a round must look at first: those of due profiles waiting
    /// for a login.
    pub fn blocked_sessions(&self, now: SystemTime) -> Vec<String> {
        let mut keys: Vec<String> = self
            .due(now)
            .into_iter()
            .filter(|&i| self.profiles[i].blocked.is_some())
            .filter_map(|i| self.profiles[i].sso_key().map(str::to_owned))
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// The earliest next refresh among all profiles and sso-session tokens, and of the retry of
    /// a failed write.
    pub fn next_deadline(&self) -> Option<SystemTime> {
        let profiles = self.profiles.iter().filter_map(|p| p.next_refresh);
        let sessions = self.sessions.values().filter_map(Session::next_check);
        profiles.chain(sessions).chain(self.write_retry).min()
    }

    /// Whether a failed write is due to be tried again.
    fn write_due(&self, now: SystemTime) -> bool {
        self.write_retry.is_some_and(|t| t <= now)
    }

    /// Profiles waiting for a login, or for a token cache file that did not read (which a token
    /// cache change wakes).
    pub fn waiting_on_the_token_cache(&self) -> Vec<usize> {
        (0..self.profiles.len())
            .filter(|&i| {
                let p = &self.profiles[i];
                let unreadable =
                    matches!(p.last_failure, Some(ResolveError::TokenUnreadable { .. }));
                p.blocked.is_some() || p.state == State::LoginRequired || unreadable
            })
            .collect()
    }

    /// The sections to write: every profile's known credentials.
    pub fn sections(&self) -> Vec<ManagedSection<'_>> {
        let known = self.profiles.iter().filter_map(|p| {
            p.credentials.as_ref().map(|c| ManagedSection {
                name: &p.entry.target,
                credentials: c,
            })
        });
        known.collect()
    }

    /// The keys of the sessions the profiles use, each with whether it is a legacy start URL's.
    pub fn session_keys(&self) -> Vec<(String, bool)> {
        let keys = self.sessions.iter().map(|(k, s)| (k.clone(), s.legacy));
        keys.collect()
    }

    /// `status`'s sso-sessions, from what was last read or refreshed, each with how long the
    /// credentials of its profiles last.
    pub fn session_status(&self, now: SystemTime) -> Vec<SessionStatus> {
        // The latest expiry of each session's profiles, in one pass over the profiles.
        let mut until: HashMap<&str, SystemTime> = HashMap::new();
        for p in &self.profiles {
            if let (Some(key), Some(t)) = (p.sso_key(), p.expires_at) {
                let latest = until.entry(key).or_insert(t);
                *latest = (*latest).max(t);
            }
        }
        let view = self.sessions.iter().map(|(key, s)| {
            let mut status = s.status(key, now);
            status.credentials_until = until.get(key.as_str()).copied();
            status
        });
        view.collect()
    }

    /// What the round since the last one ended did, each profile tried with the state the
    /// round left it in (write included); starts the next one.
    fn end_round(&mut self) -> Report {
        let mut report = std::mem::take(&mut self.round);
        for p in &mut report.profiles {
            let profile = &self.profiles[p.index];
            p.state = profile.state;
            p.expires_at = profile.expires_at;
            p.error = profile.last_error.clone();
        }
        report
    }

    /// A session token a round has just read: refreshed first when it is refreshable and due
    /// (answered with `RefreshTokens([key])`), else used as it is (noting in the report when it
    /// ends soon and cannot be refreshed). Records the facts, and schedules the session's next
    /// check.
    fn token_read(&mut self, now: SystemTime, key: &str, facts: TokenFacts) -> Vec<Action> {
        let before = self.settings.token_refresh_before;
        let Some(s) = self.sessions.get_mut(key) else {
            return Vec::new();
        };
        let refreshable = s.can_refresh(&facts, now);
        let due_at = s.due_at(&facts, before);
        let due = now >= due_at;
        let refused = s.refused_at(&facts).is_some();
        s.token = Some(facts.clone());
        if refreshable && due {
            return vec![Action::RefreshTokens(vec![key.to_owned()])];
        }
        // Nothing to schedule when it cannot be refreshed (a refused token is not tried
        // again): a new sign-in wakes it. A failed refresh keeps its backoff.
        s.next_refresh = match (refreshable, s.next_refresh) {
            (false, _) => None,
            (true, Some(retry)) if s.failures > 0 && retry > due_at => Some(retry),
            (true, _) => Some(due_at),
        };
        if !refreshable && !facts.is_expired(now) && due {
            let why = facts
                .not_refreshable(refused, now)
                .map(|why| why.explain(&facts.shape));
            let outcome = SessionOutcome::CannotRefresh {
                ends_at: facts.expires_at,
                why,
                login_command: s.login_command.clone(),
            };
            self.note_session(key, outcome);
        }
        Vec::new()
    }

    fn note_session(&mut self, key: &str, outcome: SessionOutcome) {
        self.round.sessions.push(SessionReport {
            name: key.to_owned(),
            outcome,
        });
    }

    /// Notes profile `i` as tried in this round; `repeated`: it failed as it did the last time.
    fn note_tried(
        &mut self,
        i: usize,
        outcome: Result<Option<SystemTime>, ResolveError>,
        repeated: bool,
    ) {
        let p = &self.profiles[i];
        let report = ProfileReport {
            index: i,
            source: p.entry.source.clone(),
            target: p.entry.target.clone(),
            outcome,
            state: p.state,
            expires_at: p.expires_at,
            error: None,
            repeated,
        };
        // Kept in index order, one entry per profile (the last outcome); profiles mostly come
        // in order, so this is usually a push.
        let reports = &mut self.round.profiles;
        match reports.binary_search_by_key(&i, |r| r.index) {
            Ok(at) => reports[at] = report,
            Err(at) => reports.insert(at, report),
        }
    }

    /// Schedules every sso-session's next token refresh from the tokens as read (no network
    /// call): the token of a refreshable session is refreshed `token_refresh_before` its expiry
    /// even when no profile needs new credentials then.
    fn plan_sessions(&mut self, now: SystemTime, tokens: Vec<(String, Option<TokenFacts>)>) {
        let before = self.settings.token_refresh_before;
        for s in self.sessions.values_mut() {
            s.next_refresh = None;
        }
        for (key, token) in tokens {
            let Some(s) = self.sessions.get_mut(&key) else {
                continue;
            };
            s.next_refresh = token
                .as_ref()
                .filter(|t| s.can_refresh(t, now))
                .map(|t| s.due_at(t, before));
            s.token = token;
        }
    }

    /// Adopts managed sections of `text` that are still fresh.
    fn adopt(&mut self, now: SystemTime, text: &str) {
        let min = self.settings.min_remaining;
        let file = ini_edit::Parsed::new(text);
        for p in self.profiles.iter_mut().filter(|p| p.source.is_ok()) {
            let Some((creds, expires)) = file.read_managed(&p.entry.target) else {
                continue;
            };
            let login = is_login(p);
            if schedule::is_fresh_for(now, expires, None, min, login) {
                p.state = State::Fresh;
                p.expires_at = Some(expires);
                p.next_refresh = Some(schedule::refresh_at_for(
                    None, expires, min, p.jitter, login,
                ));
                p.credentials = Some(creds);
            }
        }
    }

    /// Takes the profiles of a new configuration: those that stay (same source and target, same
    /// plan) keep what they had; the targets of those that left are removed at the next write.
    fn reconfigure(&mut self, mut profiles: Vec<ManagedProfile>, settings: Settings) {
        // The old profiles by entry (the first of equal ones, as a search in order finds it).
        let mut by_entry: HashMap<ProfileEntry, usize> = HashMap::new();
        for (i, o) in self.profiles.iter().enumerate() {
            by_entry.entry(o.entry.clone()).or_insert(i);
        }
        for new in profiles.iter_mut() {
            let Some(&i) = by_entry.get(&new.entry) else {
                continue;
            };
            let old = &mut self.profiles[i];
            if same_plan(&old.source, &new.source) {
                new.state = old.state;
                new.expires_at = old.expires_at;
                new.last_refresh = old.last_refresh;
                new.next_refresh = old.next_refresh;
                new.last_error = old.last_error.take();
                new.consecutive_failures = old.consecutive_failures;
                new.credentials = old.credentials.take();
                new.issued = old.issued;
                new.blocked = old.blocked.take();
                new.requested = old.requested;
                new.last_failure = old.last_failure.take();
                new.jitter = old.jitter;
            }
        }
        let targets: HashSet<&str> = profiles.iter().map(|p| p.entry.target.as_str()).collect();
        for old in &self.profiles {
            if !targets.contains(old.entry.target.as_str()) {
                self.removed_targets.push(old.entry.target.clone());
            }
        }
        self.sessions = sessions_of(&profiles, &mut self.sessions);
        self.profiles = profiles;
        self.settings = settings;
    }

    fn request(&mut self, now: SystemTime, name: Option<&str>) {
        for i in self.named(name) {
            let p = &mut self.profiles[i];
            p.next_refresh = Some(now);
            p.blocked = None;
            p.requested = true;
        }
    }

    /// The due check: the sessions due for a token refresh, then the due profiles. Profiles
    /// that cannot be resolved, or wait for a login on a token cache that has not changed, fail
    /// again here without a network call.
    fn tick(&mut self, now: SystemTime) -> Vec<Action> {
        let mut actions = Vec::new();
        let sessions = self.due_sessions(now);
        if !sessions.is_empty() {
            actions.push(Action::RefreshTokens(sessions));
        }
        let mut fetch = Vec::new();
        let mut failed = Vec::new();
        for i in self.due(now) {
            let p = &mut self.profiles[i];
            p.requested = false;
            match (&p.source, &p.blocked, &p.last_failure) {
                (Err(e), _, _) => failed.push((i, e.clone(), None)),
                (Ok(_), Some(b), Some(e)) => failed.push((i, e.clone(), b.cache)),
                _ => fetch.push(i),
            }
        }
        for (index, e, cache) in failed {
            self.record(now, index, Err(e), cache);
        }
        if !fetch.is_empty() {
            actions.push(Action::Fetch(fetch));
        } else if !self.removed_targets.is_empty() || self.write_due(now) {
            actions.push(Action::Write);
        }
        actions
    }

    fn wake_waiting_on_the_token_cache(&mut self, now: SystemTime) {
        for i in self.waiting_on_the_token_cache() {
            let p = &mut self.profiles[i];
            p.blocked = None;
            p.next_refresh = Some(now);
        }
    }

    fn token_refreshed(
        &mut self,
        now: SystemTime,
        key: String,
        old: TokenFacts,
        result: Result<TokenFacts, ResolveError>,
    ) {
        let before = self.settings.token_refresh_before;
        let draw = self.draw();
        let Some(s) = self.sessions.get_mut(&key) else {
            return;
        };
        if let Err(ResolveError::LoginRequired { .. }) = &result {
            s.refused = Some(Refusal {
                at: now,
                token_expires_at: old.expires_at,
            });
        }
        let outcome = match result {
            Ok(new) => {
                let lifetime = new.expires_at.duration_since(now).ok();
                s.lifetime = lifetime;
                s.last_success = Some(now);
                s.failures = 0;
                s.last_error = None;
                s.next_refresh = Some(s.due_at(&new, before));
                let expires_at = new.expires_at;
                s.token = Some(new);
                let short = schedule::token_shorter_than_lead(lifetime, before);
                let say_short = short && !s.short_noted;
                s.short_noted = short;
                self.note_session(&key, SessionOutcome::Refreshed { expires_at });
                if let (true, Some(lifetime)) = (say_short, lifetime) {
                    let outcome = SessionOutcome::ShortLifetime {
                        lifetime,
                        before,
                        lead: schedule::token_lead(Some(lifetime), before),
                    };
                    self.note_session(&key, outcome);
                }
                return;
            }
            Err(e) if !old.is_expired(now) => {
                // The current token is used until it expires; retried when it may help, less
                // and less often while it keeps failing.
                s.failures = s.failures.saturating_add(1);
                s.next_refresh = Some(if e.is_retryable() {
                    now + schedule::backoff(s.failures, e.retry_after(), draw)
                } else {
                    old.expires_at
                });
                SessionOutcome::RefreshFailed {
                    error: e.to_string(),
                    valid_until: Some(old.expires_at),
                    repeated: s.last_error.replace(e.to_string()) == Some(e.to_string()),
                }
            }
            Err(e) => {
                s.failures = s.failures.saturating_add(1);
                s.next_refresh = None;
                SessionOutcome::RefreshFailed {
                    error: e.to_string(),
                    valid_until: None,
                    repeated: s.last_error.replace(e.to_string()) == Some(e.to_string()),
                }
            }
        };
        self.note_session(&key, outcome);
    }

    /// After a try to save session `key`'s newest token: while it fails, the token stays in
    /// memory (the edge keeps it), `status` says since when, and the save is tried again with
    /// backoff; the log says so when it starts, when the reason changes, and when it ends.
    fn token_saved(&mut self, now: SystemTime, key: &str, result: Result<(), String>) {
        let draw = self.draw();
        let Some(s) = self.sessions.get_mut(key) else {
            return;
        };
        let outcome = match (result, &mut s.unsaved) {
            (Ok(()), None) => None,
            (Ok(()), Some(_)) => {
                s.unsaved = None;
                Some(SessionOutcome::Saved)
            }
            (Err(error), Some(u)) => {
                u.failures = u.failures.saturating_add(1);
                u.retry_at = now + schedule::backoff(u.failures, None, draw);
                let changed = u.error != error;
                u.error = error.clone();
                changed.then_some(SessionOutcome::NotSaved { error })
            }
            (Err(error), None) => {
                s.unsaved = Some(Unsaved {
                    since: now,
                    error: error.clone(),
                    failures: 1,
                    retry_at: now + schedule::backoff(1, None, draw),
                });
                Some(SessionOutcome::NotSaved { error })
            }
        };
        if let Some(outcome) = outcome {
            self.note_session(key, outcome);
        }
    }

    fn fetched(&mut self, now: SystemTime, fetched: Vec<Fetched>) -> Vec<Action> {
        let any_ok = fetched.iter().any(|f| f.outcome.is_ok());
        for f in fetched {
            self.record(now, f.index, f.outcome, f.cache);
        }
        if any_ok || !self.removed_targets.is_empty() || self.write_due(now) {
            vec![Action::Write]
        } else {
            Vec::new()
        }
    }

    /// Records profile `i`'s refresh outcome: its state, and when it is looked at next.
    fn record(
        &mut self,
        now: SystemTime,
        i: usize,
        outcome: FetchOutcome,
        cache: Option<Identity>,
    ) {
        let min = self.settings.min_remaining;
        let draw = self.draw();
        let p = &mut self.profiles[i];
        let previous = p.last_failure.as_ref().map(ToString::to_string);
        let noted = match outcome {
            Ok(creds) => {
                let expires = creds.expiration.unwrap_or(now);
                p.credentials = Some(creds);
                p.issued = Some(now);
                p.blocked = None;
                p.last_failure = None;
                p.state = State::Fresh;
                p.expires_at = Some(expires);
                p.last_refresh = Some(now);
                p.last_error = None;
                p.consecutive_failures = 0;
                let login = is_login(p);
                p.next_refresh = Some(next_after_success(now, expires, min, p.jitter, login));
                Ok(Some(expires))
            }
            Err(e) => {
                record_failure(p, now, &e, cache, draw);
                Err(e)
            }
        };
        let repeated = noted
            .as_ref()
            .is_err_and(|e| previous.is_some_and(|p| p == e.to_string()));
        self.note_tried(i, noted, repeated);
    }

    /// After a write: conflicting profiles wait; a failed write leaves the profiles of this
    /// round not fresh, whatever was fetched (the credentials did not reach the disk).
    fn written(
        &mut self,
        now: SystemTime,
        conflicts: &[Conflict],
        result: Result<write::Outcome, String>,
    ) {
        let path = self.settings.credentials_file.display().to_string();
        // By section: the last conflict of a name is the one whose message stays.
        let conflicting: HashMap<&str, &Conflict> =
            conflicts.iter().map(|c| (c.section.as_str(), c)).collect();
        for p in &mut self.profiles {
            let Some(c) = conflicting.get(p.entry.target.as_str()) else {
                continue;
            };
            p.state = State::Conflict;
            // Looked at again when the credentials file changes, else in a while; never
            // right away (that would be a loop of fetches and refusals).
            p.next_refresh = Some(now + schedule::MAX_BACKOFF);
            p.credentials = None;
            p.last_error = Some(format!(
                "section [{}] at {path}:{} was not written by credsync, so credsync leaves it \
                 alone; remove that section, or give profile {:?} another `target` in \
                 credsync's config",
                c.section, c.line, p.entry.source
            ));
        }
        match &result {
            Ok(_) => self.write_succeeded(now),
            Err(e) => self.write_failed(now, e),
        }
        self.round.write = Some(result);
    }

    /// After a failed write: the profiles of this round are not fresh (their credentials did
    /// not reach the disk), nor are those still waiting for an earlier failed write; all say
    /// why. The write is tried again after a backoff.
    fn write_failed(&mut self, now: SystemTime, e: &str) {
        self.write_failures = self.write_failures.saturating_add(1);
        let wait = schedule::backoff(self.write_failures, None, self.draw());
        self.write_retry = Some(now + wait);
        // In index order (see `note_tried`): searched, not scanned.
        let in_round: Vec<usize> = self.round.profiles.iter().map(|r| r.index).collect();
        for (i, p) in self.profiles.iter_mut().enumerate() {
            let waiting = p.state == State::Degraded && p.last_failure.is_none();
            // A conflict's own message says more than the write's.
            if p.state == State::Conflict || !(waiting || in_round.binary_search(&i).is_ok()) {
                continue;
            }
            p.last_error = Some(e.to_owned());
            if p.state == State::Fresh {
                p.state = State::Degraded;
            }
        }
    }

    /// After a successful write: nothing left to remove or retry, and the profiles that were
    /// degraded only because their credentials had not reached the disk are fresh again.
    fn write_succeeded(&mut self, now: SystemTime) {
        self.removed_targets.clear();
        self.write_failures = 0;
        self.write_retry = None;
        for p in &mut self.profiles {
            let written = p.credentials.is_some() && p.expires_at.is_some_and(|t| t > now);
            if p.state == State::Degraded && p.last_failure.is_none() && written {
                p.state = State::Fresh;
                p.last_error = None;
            }
        }
    }

    /// The credentials file changed: profiles in `conflict` are looked at again now (the user
    /// may have removed the section in the way); a managed section that went missing or was
    /// altered is written again.
    fn credentials_file_changed(&mut self, now: SystemTime, text: &str) -> Vec<Action> {
        for p in &mut self.profiles {
            if p.state == State::Conflict {
                p.next_refresh = Some(now);
            }
        }
        if self.drifted(text) {
            vec![Action::Write]
        } else {
            Vec::new()
        }
    }

    /// Whether `text` lacks (or differs in) a section credsync should have there, or still has
    /// one credsync removed.
    fn drifted(&self, text: &str) -> bool {
        let file = ini_edit::Parsed::new(text);
        self.profiles.iter().any(|p| match &p.credentials {
            Some(c) => !file
                .read_managed(&p.entry.target)
                .is_some_and(|(disk, _)| same_keys(&disk, c)),
            None => false,
        }) || !self.removed_targets.is_empty() && {
            let on_disk: HashSet<String> = file.managed_names().into_iter().collect();
            self.removed_targets.iter().any(|t| on_disk.contains(t))
        }
    }
}

/// When credentials expiring at `expires`, just obtained, are refreshed: [`schedule::refresh_at`],
/// and not sooner than [`schedule::MIN_REFRESH_INTERVAL`] from now.
fn next_after_success(
    now: SystemTime,
    expires: SystemTime,
    min: Duration,
    jitter: f64,
    login: bool,
) -> SystemTime {
    // Credentials shorter than every margin would be due at once: never sooner than the floor.
    let at = schedule::refresh_at_for(Some(now), expires, min, jitter, login);
    schedule::not_sooner_than_the_floor(at, Some(now))
}

/// Whether `p`'s credentials are an `aws login` session's own (renewed above botocore's
/// threshold: [`schedule::must_remain_for`]).
fn is_login(p: &ManagedProfile) -> bool {
    p.source.as_ref().is_ok_and(|s| s.kind() == Kind::Login)
}

/// Records failure `e` of `p` at `now`: its state, and when it is looked at again.
fn record_failure(
    p: &mut ManagedProfile,
    now: SystemTime,
    e: &ResolveError,
    cache: Option<Identity>,
    draw: f64,
) {
    p.last_failure = Some(e.clone());
    p.consecutive_failures += 1;
    p.last_error = Some(e.to_string());
    let still_valid = p.expires_at.is_some_and(|t| t > now);
    p.state = match e {
        ResolveError::LoginRequired { .. } => State::LoginRequired,
        ResolveError::Config(_) => State::Error,
        _ if still_valid => State::Degraded,
        _ => State::Expired,
    };
    if !still_valid {
        p.credentials = None;
    }
    p.next_refresh = Some(match e {
        ResolveError::LoginRequired { .. } => {
            if p.sso_key().is_some() {
                p.blocked = Some(Blocked { cache });
            }
            now + LOGIN_RECHECK
        }
        ResolveError::TokenUnreadable { .. } => {
            now + schedule::unreadable_token_retry(p.consecutive_failures)
        }
        _ if e.is_retryable() => {
            now + schedule::backoff(p.consecutive_failures, e.retry_after(), draw)
        }
        // Refused or misconfigured: do not loop; look again in a while.
        _ => now + schedule::MAX_BACKOFF,
    });
}

/// The sessions `profiles` use, keeping what `old` knew of each.
fn sessions_of(
    profiles: &[ManagedProfile],
    old: &mut BTreeMap<String, Session>,
) -> BTreeMap<String, Session> {
    let mut sessions = BTreeMap::new();
    for sso in profiles
        .iter()
        .filter_map(|p| p.source.as_ref().ok()?.sso())
    {
        let key = sso.cache_key().to_owned();
        if sessions.contains_key(&key) {
            continue;
        }
        let kept = old.remove(&key);
        let session = match kept {
            Some(s) => Session {
                legacy: sso.session.is_none(),
                login_command: sso.login_command(),
                ..s
            },
            None => Session {
                legacy: sso.session.is_none(),
                login_command: sso.login_command(),
                token: None,
                next_refresh: None,
                refused: None,
                lifetime: None,
                last_success: None,
                failures: 0,
                last_error: None,
                short_noted: false,
                unsaved: None,
            },
        };
        sessions.insert(key, session);
    }
    sessions
}

/// Whether two plans resolve the same way (so a reload keeps the profile's credentials).
fn same_plan(a: &Result<Plan, ResolveError>, b: &Result<Plan, ResolveError>) -> bool {
    let (Ok(a), Ok(b)) = (a, b) else { return false };
    let base = match (&a.base, &b.base) {
        (Base::Sso(x), Base::Sso(y)) => x == y,
        (Base::Login(x), Base::Login(y)) => x == y,
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

/// Whether two sets of credentials hold the same keys for the same account.
fn same_keys(a: &Credentials, b: &Credentials) -> bool {
    use crate::secret::ExposeSecret;
    a.account_id == b.account_id
        && a.access_key_id.expose_secret() == b.access_key_id.expose_secret()
        && a.secret_access_key.expose_secret() == b.secret_access_key.expose_secret()
        && a.session_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned())
            == b.session_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::secret::SecretString;

    const MIN: Duration = Duration::from_secs(15 * 60);
    const BEFORE: Duration = Duration::from_secs(30 * 60);
    const HOUR: Duration = Duration::from_secs(3600);

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    const AWS: &str = "[sso-session corp]\nsso_start_url = https://x.awsapps.com/start\n\
        sso_region = us-east-1\n\n\
        [profile p0]\nsso_session = corp\nsso_account_id = 111111111111\nsso_role_name = Dev\n\n\
        [profile p1]\nsso_session = corp\nsso_account_id = 222222222222\nsso_role_name = Dev\n";

    /// A machine managing `names` (profiles of [`AWS`], each its own target), jitter and
    /// backoff drawn from a source that always answers `draw`.
    fn machine(names: &[&str], draw: f64) -> Machine {
        let random: Random = Arc::new(move || draw);
        Machine::new(profiles(names, &random), settings(), random)
    }

    fn profiles(names: &[&str], random: &Random) -> Vec<ManagedProfile> {
        let aws = crate::aws_profile::parse(AWS, Path::new("config")).expect("aws config");
        let plan = |name: &&str| {
            let entry = ProfileEntry {
                source: (*name).to_owned(),
                target: (*name).to_owned(),
            };
            let source = crate::chain::plan(&aws, &BTreeMap::new(), name)
                .map_err(|e| ResolveError::Config(e.to_string()));
            ManagedProfile::new(entry, source, random())
        };
        names.iter().map(plan).collect()
    }

    fn settings() -> Settings {
        Settings {
            min_remaining: MIN,
            token_refresh_before: BEFORE,
            credentials_file: PathBuf::from("/home/u/.aws/credentials"),
        }
    }

    fn creds(expires: SystemTime) -> Credentials {
        Credentials {
            access_key_id: SecretString::from("AKIATEST"),
            secret_access_key: SecretString::from("secret"),
            session_token: Some(SecretString::from("session")),
            expiration: Some(expires),
            account_id: None,
        }
    }

    fn login_required() -> ResolveError {
        ResolveError::LoginRequired {
            reason: "the SSO token expired".to_owned(),
            login_command: "credsync login --sso-session corp".to_owned(),
        }
    }

    fn fetched(index: usize, outcome: FetchOutcome, cache: Option<Identity>) -> Event {
        Event::Fetched(vec![Fetched {
            index,
            outcome,
            cache,
        }])
    }

    /// Some identity of a file.
    /// Ends the round: the machine answers with its report, and nothing else.
    fn end_round(m: &mut Machine) -> Report {
        match m.apply(t(0), Event::RoundEnded).as_slice() {
            [Action::Report(report)] => (**report).clone(),
            other => panic!("a round ends with its report alone, not {other:?}"),
        }
    }

    fn an_identity() -> Option<Identity> {
        Some(Identity::new(1, 2, 3, (4, 5), (6, 7)))
    }

    mod rules;

    #[test]
    fn a_new_profile_is_fetched_at_the_first_tick_and_a_success_asks_for_one_write() {
        let mut m = machine(&["p0"], 0.0);
        assert_eq!(m.apply(t(0), Event::Tick), vec![Action::Fetch(vec![0])]);
        let actions = m.apply(t(0), fetched(0, Ok(creds(t(0) + HOUR)), None));
        assert_eq!(actions, vec![Action::Write]);
        let s = m.profiles()[0].status();
        assert_eq!(s.state, State::Fresh);
        assert_eq!(s.expires_at, Some(t(0) + HOUR));
        // Nothing more until it falls due.
        assert_eq!(m.apply(t(60), Event::Tick), Vec::new());
        assert_eq!(m.sections().len(), 1);
    }

    #[test]
    fn a_refused_login_makes_no_network_call_until_the_token_cache_changes() {
        let mut m = machine(&["p0"], 0.0);
        assert_eq!(m.apply(t(0), Event::Tick), vec![Action::Fetch(vec![0])]);
        // Refused, with the cache file missing at that moment.
        assert_eq!(
            m.apply(t(0), fetched(0, Err(login_required()), None)),
            vec![]
        );
        let s = m.profiles()[0].status();
        assert_eq!(s.state, State::LoginRequired);
        assert_eq!(s.next_refresh, Some(t(0) + LOGIN_RECHECK));
        end_round(&mut m);

        // Due again; the edge finds the cache file as it was: no fetch, the failure stands.
        let later = t(0) + LOGIN_RECHECK;
        assert_eq!(m.blocked_sessions(later), vec!["corp".to_owned()]);
        let unchanged = Event::TokenCacheSeen {
            key: "corp".to_owned(),
            identity: None,
        };
        assert_eq!(m.apply(later, unchanged), vec![]);
        assert_eq!(m.apply(later, Event::Tick), vec![]);
        let s = m.profiles()[0].status();
        assert_eq!(s.state, State::LoginRequired);
        assert_eq!(s.consecutive_failures, 2);
        assert_eq!(s.next_refresh, Some(later + LOGIN_RECHECK));
        let report = end_round(&mut m);
        assert_eq!(report.profiles.len(), 1);
        assert!(matches!(
            report.profiles[0].outcome,
            Err(ResolveError::LoginRequired { .. })
        ));

        // The user logged in: the file is there now, so the next due check goes to AWS.
        let after = later + LOGIN_RECHECK;
        let changed = Event::TokenCacheSeen {
            key: "corp".to_owned(),
            identity: an_identity(),
        };
        assert_eq!(m.apply(after, changed), vec![]);
        assert_eq!(m.apply(after, Event::Tick), vec![Action::Fetch(vec![0])]);
    }

    #[test]
    fn a_token_cache_change_wakes_the_profiles_waiting_for_a_login_at_once() {
        let mut m = machine(&["p0", "p1"], 0.0);
        m.apply(t(0), Event::Tick);
        let both = Event::Fetched(vec![
            Fetched {
                index: 0,
                outcome: Err(login_required()),
                cache: None,
            },
            Fetched {
                index: 1,
                outcome: Ok(creds(t(0) + HOUR)),
                cache: None,
            },
        ]);
        assert_eq!(m.apply(t(0), both), vec![Action::Write]);
        assert_eq!(m.waiting_on_the_token_cache(), vec![0]);
        assert!(m.due(t(1)).is_empty());
        m.apply(
            t(1),
            Event::TokenCacheChanged(vec![("corp".to_owned(), None)]),
        );
        assert_eq!(m.due(t(1)), vec![0]);
        assert_eq!(m.apply(t(1), Event::Tick), vec![Action::Fetch(vec![0])]);
    }

    #[test]
    fn a_refresh_request_tries_even_a_profile_waiting_for_a_login() {
        let mut m = machine(&["p0", "p1"], 0.0);
        m.apply(t(0), Event::Tick);
        m.apply(t(0), fetched(0, Err(login_required()), None));
        m.apply(t(0), fetched(1, Ok(creds(t(0) + HOUR)), None));
        m.apply(t(5), Event::RefreshRequested(Some("p0".to_owned())));
        assert_eq!(m.apply(t(5), Event::Tick), vec![Action::Fetch(vec![0])]);
    }

    #[test]
    fn a_failed_write_leaves_the_profiles_just_fetched_degraded_not_fresh() {
        // `sync` and the daemon both go through this: one round, one write outcome.
        let mut m = machine(&["p0", "p1"], 0.0);
        m.apply(t(0), Event::RefreshRequested(None));
        assert_eq!(m.apply(t(0), Event::Tick), vec![Action::Fetch(vec![0, 1])]);
        let both = Event::Fetched(vec![
            Fetched {
                index: 0,
                outcome: Ok(creds(t(0) + HOUR)),
                cache: None,
            },
            Fetched {
                index: 1,
                outcome: Err(login_required()),
                cache: None,
            },
        ]);
        assert_eq!(m.apply(t(0), both), vec![Action::Write]);
        let failed = Event::Written {
            conflicts: Vec::new(),
            result: Err("cannot write /home/u/.aws/credentials: disk full".to_owned()),
        };
        assert_eq!(m.apply(t(0), failed), vec![]);
        let report = end_round(&mut m);
        assert_eq!(
            report.write_error(),
            Some("cannot write /home/u/.aws/credentials: disk full")
        );
        let p0 = &report.profiles[0];
        assert!(p0.outcome.is_ok());
        assert_eq!(p0.state, State::Degraded);
        assert_eq!(p0.error.as_deref(), report.write_error());
        let p1 = &report.profiles[1];
        assert_eq!(p1.state, State::LoginRequired);
        assert_eq!(p1.error.as_deref(), report.write_error());
        assert_eq!(m.profiles()[0].status().state, State::Degraded);
    }

    #[test]
    fn a_failed_write_is_tried_again_with_backoff_and_its_success_makes_the_profile_fresh() {
        let mut m = machine(&["p0"], 1.0);
        m.apply(t(0), Event::Tick);
        assert_eq!(
            m.apply(t(0), fetched(0, Ok(creds(t(0) + HOUR)), None)),
            vec![Action::Write]
        );
        let locked = |n: u32| Event::Written {
            conflicts: Vec::new(),
            result: Err(format!("/home/u/.aws/credentials is locked ({n})")),
        };
        m.apply(t(0), locked(1));
        // Retried after the first backoff step, without fetching again; not before.
        let first = t(0) + schedule::BASE_BACKOFF;
        assert_eq!(m.next_deadline(), Some(first));
        assert_eq!(m.apply(first - Duration::from_secs(1), Event::Tick), vec![]);
        assert_eq!(m.apply(first, Event::Tick), vec![Action::Write]);
        m.apply(first, locked(2));
        let s = m.profiles()[0].status();
        assert_eq!(s.state, State::Degraded);
        assert_eq!(
            s.last_error.as_deref(),
            Some("/home/u/.aws/credentials is locked (2)")
        );
        let second = first + schedule::BASE_BACKOFF * 2;
        assert_eq!(m.next_deadline(), Some(second));
        // The lock is gone: written, fresh again, nothing more to retry.
        assert_eq!(m.apply(second, Event::Tick), vec![Action::Write]);
        let done = Event::Written {
            conflicts: Vec::new(),
            result: Ok(write::Outcome::Written),
        };
        m.apply(second, done);
        let s = m.profiles()[0].status();
        assert_eq!((s.state, s.last_error), (State::Fresh, None));
        assert!(m.next_deadline() > Some(second + schedule::MAX_BACKOFF));
        assert_eq!(m.apply(second + schedule::MAX_BACKOFF, Event::Tick), vec![]);
    }

    #[test]
    fn a_conflict_waits_max_backoff_or_a_change_of_the_credentials_file() {
        let mut m = machine(&["p0"], 0.0);
        m.apply(t(0), Event::Tick);
        m.apply(t(0), fetched(0, Ok(creds(t(0) + HOUR)), None));
        let conflict = Event::Written {
            conflicts: vec![Conflict {
                section: "p0".to_owned(),
                line: 3,
            }],
            result: Ok(write::Outcome::Written),
        };
        m.apply(t(0), conflict);
        let s = m.profiles()[0].status();
        assert_eq!(s.state, State::Conflict);
        assert_eq!(s.next_refresh, Some(t(0) + schedule::MAX_BACKOFF));
        let error = s.last_error.expect("a conflict says why");
        assert!(error.contains("/home/u/.aws/credentials:3"), "{error}");
        assert!(error.contains("another `target`"), "{error}");
        assert!(m.sections().is_empty(), "nothing of it is written any more");
        assert!(m.due(t(60)).is_empty());
        // The user removed the section in the way: looked at again now, nothing to rewrite.
        let changed = Event::CredentialsFileChanged {
            text: String::new(),
        };
        assert_eq!(m.apply(t(60), changed), vec![]);
        assert_eq!(m.due(t(60)), vec![0]);
    }

    #[test]
    fn a_managed_section_removed_by_hand_is_written_again() {
        let mut m = machine(&["p0"], 0.0);
        m.apply(t(0), Event::Tick);
        m.apply(t(0), fetched(0, Ok(creds(t(0) + HOUR)), None));
        let text = ini_edit::apply("", &m.sections(), &[]).text;
        let same = Event::CredentialsFileChanged { text };
        assert_eq!(m.apply(t(1), same), vec![]);
        let removed = Event::CredentialsFileChanged {
            text: "[mine]\naws_access_key_id = x\n".to_owned(),
        };
        assert_eq!(m.apply(t(1), removed), vec![Action::Write]);
    }

    #[test]
    fn jitter_and_backoff_come_from_the_injected_random_source() {
        let draw = 0.25;
        let mut m = machine(&["p0"], draw);
        m.apply(t(0), Event::Tick);
        m.apply(t(0), fetched(0, Ok(creds(t(0) + HOUR)), None));
        let expected = schedule::refresh_at(Some(t(0)), t(0) + HOUR, MIN, draw);
        assert_eq!(m.profiles()[0].status().next_refresh, Some(expected));
        assert!(expected < schedule::refresh_at(Some(t(0)), t(0) + HOUR, MIN, 0.0));

        // A server error: retried after the backoff at that draw (first failure: 5 s * 0.25).
        let at = expected;
        assert_eq!(m.apply(at, Event::Tick), vec![Action::Fetch(vec![0])]);
        let failure = ResolveError::Transient {
            service: "SSO",
            message: "HTTP 500".to_owned(),
            retry_after: None,
        };
        m.apply(at, fetched(0, Err(failure), None));
        let s = m.profiles()[0].status();
        assert_eq!(
            s.state,
            State::Degraded,
            "the old credentials are still valid"
        );
        assert_eq!(
            s.next_refresh,
            Some(at + schedule::backoff(1, None, draw)),
            "{s:?}"
        );
        assert_eq!(
            schedule::backoff(1, None, draw),
            Duration::from_millis(1250)
        );
    }

    #[test]
    fn still_fresh_sections_on_disk_are_adopted_without_a_fetch() {
        let mut m = machine(&["p0", "p1"], 0.0);
        let on_disk = creds(t(0) + HOUR);
        let section = ManagedSection {
            name: "p0",
            credentials: &on_disk,
        };
        let text = ini_edit::apply("", &[section], &[]).text;
        m.apply(t(0), Event::Started { credentials: text });
        assert_eq!(m.profiles()[0].status().state, State::Fresh);
        assert_eq!(m.apply(t(0), Event::Tick), vec![Action::Fetch(vec![1])]);
    }

    #[test]
    fn a_rounds_report_holds_each_profile_once_in_order_with_its_last_outcome() {
        let mut m = machine(&["p0", "p1"], 0.0);
        assert_eq!(m.apply(t(0), Event::Tick), vec![Action::Fetch(vec![0, 1])]);
        let tried = |index, outcome| Fetched {
            index,
            outcome,
            cache: None,
        };
        let outcomes = vec![
            tried(1, Err(login_required())),
            tried(0, Ok(creds(t(0) + HOUR))),
            tried(1, Ok(creds(t(0) + 2 * HOUR))),
        ];
        m.apply(t(0), Event::Fetched(outcomes));
        let report = end_round(&mut m);
        let seen: Vec<(usize, Option<SystemTime>)> = report
            .profiles
            .iter()
            .map(|r| (r.index, r.outcome.clone().ok().flatten()))
            .collect();
        assert_eq!(seen, [(0, Some(t(0) + HOUR)), (1, Some(t(0) + 2 * HOUR))]);
    }

    #[test]
    fn a_round_ends_with_its_report_and_the_next_round_starts_with_nothing_in_it() {
        let mut m = machine(&["p0"], 0.0);
        m.apply(t(0), Event::Tick);
        m.apply(t(0), fetched(0, Ok(creds(t(0) + HOUR)), None));
        let written = Event::Written {
            conflicts: Vec::new(),
            result: Ok(write::Outcome::Written),
        };
        m.apply(t(0), written);
        let first = end_round(&mut m);
        assert_eq!(first.profiles.len(), 1);
        assert_eq!(first.write, Some(Ok(write::Outcome::Written)));
        assert_eq!(
            end_round(&mut m),
            Report::default(),
            "nothing happened since"
        );
    }

    #[test]
    fn a_profile_removed_from_the_config_has_its_section_removed_at_the_next_write() {
        let mut m = machine(&["p0", "p1"], 0.0);
        m.apply(t(0), Event::Tick);
        m.apply(t(0), fetched(0, Ok(creds(t(0) + HOUR)), None));
        m.apply(t(0), fetched(1, Ok(creds(t(0) + HOUR)), None));
        let random = m.random();
        let kept = Event::Reconfigured {
            profiles: profiles(&["p0"], &random),
            settings: settings(),
        };
        m.apply(t(10), kept);
        assert_eq!(m.removed_targets(), ["p1"]);
        assert_eq!(
            m.profiles()[0].status().state,
            State::Fresh,
            "p0 keeps its state"
        );
        assert_eq!(m.apply(t(10), Event::Tick), vec![Action::Write]);
        let done = Event::Written {
            conflicts: Vec::new(),
            result: Ok(write::Outcome::Written),
        };
        m.apply(t(10), done);
        assert!(m.removed_targets().is_empty());
    }

    /// Feeds `m` a read of session corp's token at `now`; whether it asked for a refresh.
    fn read_token(m: &mut Machine, now: SystemTime, facts: TokenFacts) -> bool {
        let key = "corp".to_owned();
        let actions = m.apply(
            now,
            Event::TokenRead {
                key: key.clone(),
                token: Some(facts),
            },
        );
        actions == vec![Action::RefreshTokens(vec![key])]
    }

    /// A session token expiring at `expires_at`, with a registration valid until
    /// `registered_until`, or without a refresh token.
    fn facts(expires_at: SystemTime, registered_until: Option<SystemTime>) -> TokenFacts {
        TokenFacts {
            expires_at,
            shape: TokenShape {
                legacy: false,
                refresh_token: registered_until.is_some(),
                client_id: registered_until.is_some(),
                client_secret: registered_until.is_some(),
                registration_expires_at: registered_until,
            },
        }
    }

    #[test]
    fn a_refreshable_session_is_planned_and_refreshed_when_due() {
        let mut m = machine(&["p0"], 0.5);
        let token = facts(t(0) + HOUR, Some(t(0) + 90 * 24 * HOUR));
        m.apply(
            t(0),
            Event::TokensRead(vec![("corp".to_owned(), Some(token.clone()))]),
        );
        let due = t(0) + HOUR - BEFORE;
        assert_eq!(m.due_sessions(due), vec!["corp".to_owned()]);
        assert!(m.due_sessions(due - Duration::from_secs(1)).is_empty());
        assert!(
            read_token(&mut m, due, token.clone()),
            "a refresh is asked for"
        );
        let status = m.session_status(due);
        assert!(status[0].refreshable);
        assert_eq!(status[0].token_expires_at, Some(t(0) + HOUR));

        // Refused while the old token is still valid: used until it expires; a throttled
        // refresh is retried after the backoff at the injected draw.
        let throttled = ResolveError::Transient {
            service: "SSO-OIDC",
            message: "throttled".to_owned(),
            retry_after: None,
        };
        let event = Event::TokenRefreshed {
            key: "corp".to_owned(),
            old: token.clone(),
            result: Err(throttled),
        };
        m.apply(due, event);
        let retry = due + schedule::backoff(1, None, 0.5);
        assert_eq!(m.next_deadline(), Some(retry));
        let refreshed = facts(due + 8 * HOUR, Some(t(0) + 90 * 24 * HOUR));
        let event = Event::TokenRefreshed {
            key: "corp".to_owned(),
            old: token,
            result: Ok(refreshed),
        };
        m.apply(retry, event);
        assert_eq!(m.next_deadline(), Some(due + 8 * HOUR - BEFORE));
        let report = end_round(&mut m);
        let outcomes: Vec<&SessionOutcome> = report.sessions.iter().map(|s| &s.outcome).collect();
        assert!(
            matches!(outcomes[..], [
                SessionOutcome::RefreshFailed { valid_until: Some(v), .. },
                SessionOutcome::Refreshed { expires_at },
            ] if *v == t(0) + HOUR && *expires_at == due + 8 * HOUR),
            "{outcomes:?}"
        );
        assert_eq!(
            m.session_status(due)[0].token_expires_at,
            Some(due + 8 * HOUR)
        );
    }

    #[test]
    fn a_session_that_cannot_be_refreshed_says_when_it_ends() {
        let mut m = machine(&["p0"], 0.0);
        let token = facts(t(0) + HOUR, None);
        m.apply(
            t(0),
            Event::TokensRead(vec![("corp".to_owned(), Some(token.clone()))]),
        );
        assert_eq!(m.next_deadline(), None, "nothing to refresh");
        // More than `token_refresh_before` left: nothing to say yet.
        assert!(
            !read_token(&mut m, t(0), token.clone()),
            "no refresh is asked for"
        );
        assert!(end_round(&mut m).sessions.is_empty());
        let late = t(0) + HOUR - BEFORE;
        assert!(
            !read_token(&mut m, late, token.clone()),
            "no refresh is asked for"
        );
        let report = end_round(&mut m);
        assert_eq!(
            report.sessions,
            vec![SessionReport {
                name: "corp".to_owned(),
                outcome: SessionOutcome::CannotRefresh {
                    ends_at: t(0) + HOUR,
                    why: Some(NotRefreshable::NoRefreshToken.explain(&token.shape)),
                    login_command: "credsync login --sso-session corp".to_owned(),
                },
            }]
        );
        assert!(!m.session_status(late)[0].refreshable);
    }

    #[test]
    fn a_refused_refresh_token_is_not_tried_again_until_a_new_sign_in() {
        let mut m = machine(&["p0"], 0.0);
        let token = facts(t(0) + HOUR, Some(t(0) + 90 * 24 * HOUR));
        let due = t(0) + HOUR - BEFORE;
        assert!(
            read_token(&mut m, due, token.clone()),
            "a refresh is asked for"
        );
        let event = Event::TokenRefreshed {
            key: "corp".to_owned(),
            old: token.clone(),
            result: Err(login_required()),
        };
        m.apply(due, event);
        // Looked at once more when it expires, no sooner (a refusal is not retried).
        assert_eq!(m.next_deadline(), Some(t(0) + HOUR));
        let later = due + Duration::from_secs(600);
        assert!(
            !read_token(&mut m, later, token.clone()),
            "no refresh is asked for"
        );
        assert_eq!(
            m.next_deadline(),
            None,
            "no refresh planned for a refused token"
        );
        m.apply(
            later,
            Event::TokensRead(vec![("corp".to_owned(), Some(token.clone()))]),
        );
        assert_eq!(
            m.next_deadline(),
            None,
            "a reload plans no refresh of it either"
        );
        let status = &m.session_status(later)[0];
        assert!(!status.refreshable);
        assert_eq!(status.not_refreshable, Some(NotRefreshable::RefreshRefused));
        assert_eq!(status.refused_at, Some(due));
        assert_eq!(status.ends_at, Some(t(0) + HOUR));
        let report = end_round(&mut m);
        assert!(
            matches!(
                &report.sessions[..],
                [
                    SessionReport {
                        outcome: SessionOutcome::RefreshFailed { .. },
                        ..
                    },
                    SessionReport {
                        outcome: SessionOutcome::CannotRefresh { why: Some(why), .. },
                        ..
                    },
                ] if why == NotRefreshable::RefreshRefused.describe()
            ),
            "{report:?}"
        );

        // A new sign-in: another token, refreshable again.
        let new = facts(later + 8 * HOUR, Some(t(0) + 90 * 24 * HOUR));
        m.apply(
            later,
            Event::TokenCacheChanged(vec![("corp".to_owned(), Some(new.clone()))]),
        );
        assert_eq!(m.next_deadline(), Some(later + 8 * HOUR - BEFORE));
        let status = &m.session_status(later)[0];
        assert!(status.refreshable);
        assert_eq!(status.refused_at, None);
        assert_eq!(status.ends_at, Some(t(0) + 90 * 24 * HOUR));
    }

    #[test]
    fn a_session_shows_how_long_the_credentials_of_its_profiles_last() {
        let mut m = machine(&["p0", "p1"], 0.0);
        m.apply(t(0), Event::Tick);
        m.apply(t(0), fetched(0, Ok(creds(t(0) + HOUR)), None));
        assert_eq!(
            m.session_status(t(0))[0].credentials_until,
            Some(t(0) + HOUR)
        );
        m.apply(t(60), fetched(1, Ok(creds(t(60) + HOUR)), None));
        let status = &m.session_status(t(60))[0];
        assert_eq!(status.credentials_until, Some(t(60) + HOUR));
        assert_eq!(status.not_refreshable, Some(NotRefreshable::NoToken));
    }
}
