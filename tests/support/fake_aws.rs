//! A fake AWS for integration tests: the SSO portal (GetRoleCredentials), SSO-OIDC
//! (CreateToken) and STS (AssumeRole) on one local port, speaking the wire formats of
//! the real services (the SDKs' own serializers read its answers), recording every request, and
//! injecting faults on demand.
//!
//! Std only: a `TcpListener`, a thread per connection, HTTP/1.1 with keep-alive (the SDK's
//! hyper client reuses connections), `Content-Length` and chunked request bodies. All three
//! services share the port, so `AWS_ENDPOINT_URL=<fake.url()>` points every SDK client at it;
//! requests are dispatched by method and path.
//!
//! Credentials are minted per call and never repeat: `accessKeyId` is
//! `ASIAFAKE<6 hex of the account/role or role ARN><6 digit counter>`, the secret is
//! `fake-secret-<n>` and the session token `fake-session-<n>`, so a test can search logs and
//! outputs for the prefixes `fake-secret-` and `fake-session-`. Access tokens issued by
//! CreateToken are `fake-access-<n>`, rotated refresh tokens `fake-refresh-<n>`.
//!
//! Time is the real wall clock plus an offset the test can set (`set_clock_offset`).
//!
//! Signing in (SSO-OIDC and the SSO portal's Logout): `RegisterClient` (`POST /client/register`)
//! records each client (`fake-client-<n>`, secret `fake-client-secret-<n>`) with its grant
//! types, redirect URIs and scopes. The authorization-code grant: `GET /authorize` checks the
//! client, the redirect URI (against the registered ones; a loopback URI matches on any port)
//! and the S256 challenge, and answers `302 Location: <redirect_uri>?code=fake-code-<n>&state=…`
//! (or `?error=…&error_description=…&state=…` after `set_authorize_error`);
//! `CreateToken(authorization_code)` checks the code, the client, the redirect URI (the same as
//! the authorize request's) and the `codeVerifier` against the challenge. The device grant:
//! `StartDeviceAuthorization` (`POST /device_authorization`) answers a `fake-device-<n>` code
//! with `interval` seconds (`set_device_interval`), and each `CreateToken(device_code)` poll
//! takes the next answer of a script (`set_device_script`: pending, slow down, approve, deny,
//! expire). A poll that comes sooner than the interval in force (by the fake's clock; 5 s more
//! after every SlowDown) is answered SlowDown and counted (`device_polls_too_early`). Both grants
//! issue `fake-access-<n>` and a refresh token `fake-refresh-<n>` bound to the client, so
//! botocore's and credsync's refreshes work with them. `POST /logout` (the portal's Logout)
//! revokes the bearer token.
//!
//! AWS Sign-In (`aws login` sessions): `GET /v1/authorize` and `POST /v1/token`
//! (`CreateOAuth2Token`), strict about DPoP proofs and refresh-token rotation; see
//! `fake_signin.rs`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

#[path = "fake_signin.rs"]
mod signin;
pub use signin::{CROSS_DEVICE, LoginIssued, SAME_DEVICE};

/// Largest request body the fake accepts; anything bigger is a bug in the client under test.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// The operations the fake serves, for fault injection and counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    GetRoleCredentials,
    CreateToken,
    AssumeRole,
    RegisterClient,
    StartDeviceAuthorization,
    /// `GET /authorize`: the authorization-code grant's browser step.
    Authorize,
    /// The SSO portal's Logout.
    Logout,
    /// AWS Sign-In's `CreateOAuth2Token` (`POST /v1/token`).
    SigninToken,
    /// AWS Sign-In's browser step (`GET /v1/authorize`).
    SigninAuthorize,
    /// Every request, whatever its route (including unknown ones).
    Any,
}

impl Route {
    /// The name used by `FakeAws::count` and `Recorded::route`.
    pub fn name(self) -> &'static str {
        match self {
            Route::GetRoleCredentials => "GetRoleCredentials",
            Route::CreateToken => "CreateToken",
            Route::AssumeRole => "AssumeRole",
            Route::RegisterClient => "RegisterClient",
            Route::StartDeviceAuthorization => "StartDeviceAuthorization",
            Route::Authorize => "Authorize",
            Route::Logout => "Logout",
            Route::SigninToken => "CreateOAuth2Token",
            Route::SigninAuthorize => "SigninAuthorize",
            Route::Any => "Any",
        }
    }
}

/// What to do instead of (or before) answering normally.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and error type: JSON with `x-amzn-errortype` for the SSO portal
    /// and SSO-OIDC, an XML `ErrorResponse` for STS. `retry_after` adds a `Retry-After` header
    /// (seconds).
    Status {
        code: u16,
        error_type: String,
        retry_after: Option<u32>,
    },
    /// Read the request, then reset the connection (RST, SO_LINGER 0) without answering.
    ResetConnection,
    /// Read the request, wait this long (or until the fake is dropped), then close without
    /// answering.
    Hang(Duration),
    /// Wait this long, then answer normally.
    Delay(Duration),
    /// A 200 whose body is cut short (`{"roleCredentials":` and the like).
    MalformedBody,
    /// A 200 with a body of this many bytes (valid JSON / XML start, padding, no end).
    HugeBody(usize),
}

impl Fault {
    /// `Fault::Status` without `Retry-After`.
    pub fn status(code: u16, error_type: &str) -> Fault {
        Fault::Status {
            code,
            error_type: error_type.to_owned(),
            retry_after: None,
        }
    }

    /// 429 `TooManyRequestsException`, with `Retry-After: secs` when given.
    pub fn throttle(retry_after: Option<u32>) -> Fault {
        Fault::Status {
            code: 429,
            error_type: "TooManyRequestsException".to_owned(),
            retry_after,
        }
    }
}

/// Credentials the fake handed out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServedCreds {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    /// Milliseconds since the Unix epoch (what GetRoleCredentials sends).
    pub expiration_ms: i64,
}

impl ServedCreds {
    pub fn expiration(&self) -> SystemTime {
        add_signed_ms(UNIX_EPOCH, self.expiration_ms)
    }
}

/// One AssumeRole call as the fake understood it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssumeRoleCall {
    pub role_arn: String,
    pub role_session_name: String,
    pub duration_seconds: Option<i64>,
    pub external_id: Option<String>,
    /// The access key id from `Authorization: AWS4-HMAC-SHA256 Credential=<AKID>/...`: which
    /// credentials signed this hop of a role chain.
    pub signed_by: Option<String>,
    pub served: ServedCreds,
}

/// One token CreateToken issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: i64,
    /// The refresh token the client presented.
    pub refresh_token_used: String,
    /// The rotated refresh token returned, when rotation is on (for the sign-in grants: the
    /// refresh token issued).
    pub new_refresh_token: Option<String>,
    pub client_id: String,
    /// `refresh_token`, `authorization_code` or `urn:ietf:params:oauth:grant-type:device_code`.
    pub grant_type: String,
}

/// A client RegisterClient registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeClient {
    pub client_id: String,
    pub client_secret: String,
    pub client_name: String,
    pub grant_types: Vec<String>,
    pub redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
    pub issuer_url: Option<String>,
}

/// What the next device-code poll answers (see `FakeAws::set_device_script`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceStep {
    Pending,
    SlowDown,
    Approve,
    Deny,
    Expire,
}

/// One authorization code `/authorize` handed out.
#[derive(Clone, Debug)]
struct AuthCode {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    used: bool,
}

/// One device authorization in progress.
#[derive(Clone, Debug)]
struct DeviceAuth {
    client_id: String,
    script: VecDeque<DeviceStep>,
    /// When the client last called (StartDeviceAuthorization or a poll), by the fake's clock.
    last_contact: SystemTime,
    /// The wait in force, seconds (the interval, plus 5 per SlowDown).
    gap_secs: i64,
    done: bool,
}

/// A request as received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    /// Header names lower-cased, values as sent, in order.
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub at: Instant,
    /// `GetRoleCredentials`, `CreateToken`, `AssumeRole`, or `Unknown`.
    pub route: &'static str,
    /// Which TCP connection carried it (counts up from 0): equal ids mean keep-alive reuse.
    pub connection: u64,
    /// The status answered; `None` when the connection was reset or hung up.
    pub status: Option<u16>,
}

impl Recorded {
    /// The first header with this (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn query_param(&self, name: &str) -> Option<&str> {
        lookup(&self.query, name)
    }

    /// The body parsed as `application/x-www-form-urlencoded`.
    pub fn form(&self) -> Vec<(String, String)> {
        parse_urlencoded(&self.body)
    }

    pub fn form_param(&self, name: &str) -> Option<String> {
        lookup(&self.form(), name).map(str::to_owned)
    }

    /// The body parsed as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The access key id in a SigV4 `Authorization` header, if the request was signed.
    pub fn signing_akid(&self) -> Option<String> {
        self.header("authorization").and_then(sigv4_akid)
    }
}

/// The fake server. Dropping it stops the server and closes every connection.
pub struct FakeAws {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    shutdown: AtomicBool,
    /// Notified on shutdown, so hanging and delayed answers wake up.
    shutdown_cv: Condvar,
    shutdown_mx: Mutex<()>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    next_connection: AtomicU64,
    open: Mutex<HashMap<u64, TcpStream>>,
}

struct State {
    /// Valid portal access tokens, with an optional expiry (fake clock).
    tokens: HashMap<String, Option<SystemTime>>,
    /// Valid refresh tokens and the client id they belong to.
    refresh_tokens: HashMap<String, String>,
    rotate_refresh_tokens: bool,
    token_expires_in: i64,
    credential_lifetime_secs: i64,
    assume_role_default_secs: i64,
    clock_offset_secs: i64,
    latency: Duration,
    counter: u64,
    requests: Vec<Recorded>,
    counts: HashMap<&'static str, usize>,
    last_credentials: HashMap<(String, String), ServedCreds>,
    assume_role_calls: Vec<AssumeRoleCall>,
    issued_tokens: Vec<IssuedToken>,
    queued: HashMap<Route, VecDeque<Fault>>,
    persistent: HashMap<Route, Fault>,
    revoked: HashSet<String>,
    clients: Vec<FakeClient>,
    codes: HashMap<String, AuthCode>,
    devices: HashMap<String, DeviceAuth>,
    device_script: Vec<DeviceStep>,
    device_interval: i64,
    device_polls: usize,
    device_polls_too_early: usize,
    authorize_state_override: Option<String>,
    authorize_error: Option<(String, String)>,
    logged_out: Vec<String>,
    signin: signin::Signin,
}

impl Default for FakeAws {
    fn default() -> Self {
        FakeAws::new()
    }
}

impl FakeAws {
    /// Starts the fake on 127.0.0.1 and a free port.
    pub fn new() -> FakeAws {
        let listener = TcpListener::bind("127.0.0.1:0").expect("fake aws: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("fake aws: local_addr");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                tokens: HashMap::new(),
                refresh_tokens: HashMap::new(),
                rotate_refresh_tokens: false,
                token_expires_in: 3600,
                credential_lifetime_secs: 3600,
                assume_role_default_secs: 3600,
                clock_offset_secs: 0,
                latency: Duration::ZERO,
                counter: 0,
                requests: Vec::new(),
                counts: HashMap::new(),
                last_credentials: HashMap::new(),
                assume_role_calls: Vec::new(),
                issued_tokens: Vec::new(),
                queued: HashMap::new(),
                persistent: HashMap::new(),
                revoked: HashSet::new(),
                clients: Vec::new(),
                codes: HashMap::new(),
                devices: HashMap::new(),
                device_script: vec![DeviceStep::Pending, DeviceStep::Approve],
                device_interval: 1,
                device_polls: 0,
                device_polls_too_early: 0,
                authorize_state_override: None,
                authorize_error: None,
                logged_out: Vec::new(),
                signin: signin::Signin::default(),
            }),
            shutdown: AtomicBool::new(false),
            shutdown_cv: Condvar::new(),
            shutdown_mx: Mutex::new(()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            next_connection: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
        });
        let accept_shared = Arc::clone(&shared);
        let accept = thread::Builder::new()
            .name("fake-aws-accept".into())
            .spawn(move || accept_loop(listener, accept_shared))
            .expect("fake aws: spawn accept thread");
        FakeAws {
            shared,
            addr,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.shared.state)
    }

    // ---- SSO portal -------------------------------------------------------------------------

    /// Accepts `token` as a portal bearer token (no expiry).
    pub fn add_token(&self, token: &str) {
        let mut st = self.state();
        st.revoked.remove(token);
        st.tokens.insert(token.to_owned(), None);
    }

    /// Accepts `token` until `expires_at` on the fake's clock; then it gets 401.
    pub fn add_token_expiring(&self, token: &str, expires_at: SystemTime) {
        let mut st = self.state();
        st.revoked.remove(token);
        st.tokens.insert(token.to_owned(), Some(expires_at));
    }

    /// Makes `token` unknown: the portal answers 401 `UnauthorizedException`.
    pub fn revoke_token(&self, token: &str) {
        let mut st = self.state();
        st.tokens.remove(token);
        st.revoked.insert(token.to_owned());
    }

    pub fn is_token_valid(&self, token: &str) -> bool {
        let st = self.state();
        let now = st.now();
        st.token_valid(token, now)
    }

    /// Lifetime of the credentials GetRoleCredentials mints (default 1 h).
    pub fn set_credential_lifetime(&self, lifetime: Duration) {
        self.set_credential_lifetime_secs(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX));
    }

    /// Like `set_credential_lifetime`, but may be zero or negative (already expired).
    pub fn set_credential_lifetime_secs(&self, secs: i64) {
        self.state().credential_lifetime_secs = secs;
    }

    /// The latest credentials GetRoleCredentials served for this account and role.
    pub fn last_credentials(&self, account: &str, role: &str) -> Option<ServedCreds> {
        self.state()
            .last_credentials
            .get(&(account.to_owned(), role.to_owned()))
            .cloned()
    }

    // ---- SSO-OIDC ---------------------------------------------------------------------------

    /// Accepts `refresh` in CreateToken for `client_id`.
    pub fn add_refresh_token(&self, refresh: &str, client_id: &str) {
        self.state()
            .refresh_tokens
            .insert(refresh.to_owned(), client_id.to_owned());
    }

    pub fn revoke_refresh_token(&self, refresh: &str) {
        self.state().refresh_tokens.remove(refresh);
    }

    /// With rotation on, CreateToken returns a new `refreshToken` and the presented one stops
    /// working (as with a real rotating IdP: two refreshers racing lose the session).
    pub fn set_rotate_refresh_tokens(&self, rotate: bool) {
        self.state().rotate_refresh_tokens = rotate;
    }

    /// `expiresIn` of CreateToken answers, in seconds (default 3600).
    pub fn set_token_expires_in(&self, secs: i64) {
        self.state().token_expires_in = secs;
    }

    /// Every token CreateToken issued, in order.
    pub fn issued_tokens(&self) -> Vec<IssuedToken> {
        self.state().issued_tokens.clone()
    }

    pub fn is_refresh_token_valid(&self, refresh: &str) -> bool {
        self.state().refresh_tokens.contains_key(refresh)
    }

    // ---- AWS Sign-In (`aws login`) ---------------------------------------------------------

    /// A session signed in elsewhere: `refresh` works for `client_id`, bound to the DPoP key
    /// whose public coordinates are `key` (base64url `x`, `y`).
    pub fn add_login_session(&self, refresh: &str, client_id: &str, key: (String, String)) {
        self.state().signin.add(refresh, client_id, key);
    }

    /// Ends the session `refresh` belongs to (12 hours passed, a changed password, revoked
    /// permissions): every refresh of it is refused with `error` (`TOKEN_EXPIRED`,
    /// `USER_CREDENTIALS_CHANGED`, `INSUFFICIENT_PERMISSIONS`).
    pub fn end_login_session(&self, refresh: &str, error: &str) {
        self.state().signin.end(refresh, error);
    }

    /// Ends every login session with `error`.
    pub fn end_all_login_sessions(&self, error: &str) {
        self.state().signin.end_all(error);
    }

    /// `expiresIn` of `CreateOAuth2Token` answers (default 900, as AWS issues).
    pub fn set_login_expires_in(&self, secs: i64) {
        self.state().signin.expires_in = secs;
    }

    /// The user ARN a sign-in through `/v1/authorize` signs in as.
    pub fn set_login_user(&self, arn: &str) {
        self.state().signin.user = arn.to_owned();
    }

    /// Every `CreateOAuth2Token` answered with 200, in order.
    pub fn login_issued(&self) -> Vec<LoginIssued> {
        self.state().signin.issued.clone()
    }

    /// Whether `refresh` would be accepted now (not spent, its session not ended).
    pub fn is_login_refresh_valid(&self, refresh: &str) -> bool {
        self.state().signin.is_valid(refresh)
    }

    /// How many refreshes with a spent refresh token were refused.
    pub fn login_spent_refusals(&self) -> usize {
        self.state().signin.spent_refusals
    }

    /// How many `CreateOAuth2Token` calls had a bad DPoP proof.
    pub fn login_bad_proofs(&self) -> usize {
        self.state().signin.bad_proofs
    }

    // ---- signing in -------------------------------------------------------------------------

    /// Forgets client `client_id` (deleted on the AWS side): its calls are refused with
    /// `InvalidClientException`.
    pub fn revoke_client(&self, client_id: &str) {
        self.state().clients.retain(|c| c.client_id != client_id);
    }

    /// Every client RegisterClient registered, in order.
    pub fn clients(&self) -> Vec<FakeClient> {
        self.state().clients.clone()
    }

    /// The answers of the polls of each later device authorization, in order; after the
    /// script, every poll is approved. Default: pending, then approved.
    pub fn set_device_script(&self, steps: &[DeviceStep]) {
        self.state().device_script = steps.to_vec();
    }

    /// The `interval` StartDeviceAuthorization answers (seconds; default 1).
    pub fn set_device_interval(&self, secs: i64) {
        self.state().device_interval = secs;
    }

    /// Device-code polls answered so far, and how many of them came too early.
    pub fn device_polls(&self) -> (usize, usize) {
        let st = self.state();
        (st.device_polls, st.device_polls_too_early)
    }

    /// `/authorize` redirects with this `state` instead of the one it was given (a forged or
    /// stale answer).
    pub fn set_authorize_state_override(&self, state: Option<&str>) {
        self.state().authorize_state_override = state.map(str::to_owned);
    }

    /// `/authorize` refuses the sign-in: it redirects with `error` and `error_description` (and
    /// the `state`) and no code, as an OAuth 2.0 authorization server does (RFC 6749, 4.1.2.1).
    pub fn set_authorize_error(&self, error: &str, description: &str) {
        self.state().authorize_error = Some((error.to_owned(), description.to_owned()));
    }

    /// The authorization codes `/authorize` handed out.
    pub fn issued_codes(&self) -> Vec<String> {
        self.state().codes.keys().cloned().collect()
    }

    /// The access tokens the portal's Logout revoked.
    pub fn logged_out(&self) -> Vec<String> {
        self.state().logged_out.clone()
    }

    // ---- STS --------------------------------------------------------------------------------

    /// Lifetime when AssumeRole has no `DurationSeconds` (default 3600).
    pub fn set_assume_role_default_duration(&self, secs: i64) {
        self.state().assume_role_default_secs = secs;
    }

    /// Every AssumeRole call answered with credentials, in order.
    pub fn assume_role_calls(&self) -> Vec<AssumeRoleCall> {
        self.state().assume_role_calls.clone()
    }

    /// The latest credentials AssumeRole served for this role ARN.
    pub fn last_assumed(&self, role_arn: &str) -> Option<ServedCreds> {
        self.state()
            .assume_role_calls
            .iter()
            .rev()
            .find(|c| c.role_arn == role_arn)
            .map(|c| c.served.clone())
    }

    // ---- time, faults, observation ----------------------------------------------------------

    /// Shifts the fake's clock (used for every expiry it mints or checks) by `secs`.
    pub fn set_clock_offset(&self, secs: i64) {
        self.state().clock_offset_secs = secs;
    }

    /// Puts the fake's clock at `now` (a simulated time, to the second): it mints and checks
    /// expiries by it, as a test's `ManualClock` says.
    pub fn set_clock_to(&self, now: SystemTime) {
        let secs = |t: SystemTime| match t.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_secs() as i64,
            Err(e) => -(e.duration().as_secs() as i64),
        };
        self.set_clock_offset(secs(now) - secs(SystemTime::now()));
    }

    /// The fake's "now": the wall clock plus the offset.
    pub fn now(&self) -> SystemTime {
        self.state().now()
    }

    /// Latency added before every answer.
    pub fn set_latency(&self, latency: Duration) {
        self.state().latency = latency;
    }

    /// The next `n` requests on `route` get `fault` (queued after earlier ones).
    pub fn fail_next(&self, route: Route, n: usize, fault: Fault) {
        let mut st = self.state();
        let q = st.queued.entry(route).or_default();
        q.extend(std::iter::repeat_n(fault, n));
    }

    /// Every request on `route` gets `fault` until set back to `None`. Queued faults win.
    pub fn set_fault(&self, route: Route, fault: Option<Fault>) {
        let mut st = self.state();
        match fault {
            Some(f) => st.persistent.insert(route, f),
            None => st.persistent.remove(&route),
        };
    }

    /// Drops every queued and persistent fault.
    pub fn clear_faults(&self) {
        let mut st = self.state();
        st.queued.clear();
        st.persistent.clear();
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state().requests.clone()
    }

    /// Requests on one route (`"GetRoleCredentials"`, `"CreateToken"`, `"AssumeRole"`,
    /// `"Unknown"`).
    pub fn requests_for(&self, route: &str) -> Vec<Recorded> {
        self.state()
            .requests
            .iter()
            .filter(|r| r.route == route)
            .cloned()
            .collect()
    }

    /// How many requests hit a route, answered or not.
    pub fn count(&self, route: &str) -> usize {
        self.state().counts.get(route).copied().unwrap_or(0)
    }

    /// Requests on every route.
    pub fn total_requests(&self) -> usize {
        self.state().requests.len()
    }

    /// Requests being answered right now.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// The most requests ever in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Forgets recorded requests, counts and the in-flight maximum (not tokens or faults).
    pub fn reset_records(&self) {
        let mut st = self.state();
        st.requests.clear();
        st.counts.clear();
        self.shared.max_in_flight.store(
            self.shared.in_flight.load(Ordering::SeqCst),
            Ordering::SeqCst,
        );
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.next_connection.load(Ordering::SeqCst)
    }
}

impl Drop for FakeAws {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        {
            let _g = lock(&self.shared.shutdown_mx);
            self.shared.shutdown_cv.notify_all();
        }
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        // Unblock connection threads waiting for the next request on a kept-alive socket.
        for (_, s) in lock(&self.shared.open).drain() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not hide the fake's state from the rest of the test.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl State {
    fn now(&self) -> SystemTime {
        add_signed_ms(
            SystemTime::now(),
            self.clock_offset_secs.saturating_mul(1000),
        )
    }

    fn token_valid(&self, token: &str, now: SystemTime) -> bool {
        match self.tokens.get(token) {
            Some(None) => true,
            Some(Some(exp)) => *exp > now,
            None => false,
        }
    }

    fn take_fault(&mut self, route: Route) -> Option<Fault> {
        for r in [route, Route::Any] {
            if let Some(f) = self.queued.get_mut(&r).and_then(VecDeque::pop_front) {
                return Some(f);
            }
        }
        [route, Route::Any]
            .iter()
            .find_map(|r| self.persistent.get(r).cloned())
    }

    fn mint(&mut self, scope: &str, expires_at: SystemTime) -> ServedCreds {
        self.counter += 1;
        let n = self.counter;
        ServedCreds {
            access_key_id: format!("ASIAFAKE{:06X}{:06}", fnv24(scope), n % 1_000_000),
            secret_access_key: format!("fake-secret-{n}"),
            session_token: format!("fake-session-{n}"),
            expiration_ms: epoch_ms(expires_at),
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.shutdown.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let id = shared.next_connection.fetch_add(1, Ordering::SeqCst);
        if let Ok(clone) = stream.try_clone() {
            lock(&shared.open).insert(id, clone);
        }
        let conn_shared = Arc::clone(&shared);
        let spawned = thread::Builder::new()
            .name(format!("fake-aws-conn-{id}"))
            .spawn(move || {
                serve_connection(stream, id, &conn_shared);
                lock(&conn_shared.open).remove(&id);
            });
        if spawned.is_err() {
            lock(&shared.open).remove(&id);
        }
    }
}

/// A parsed HTTP request.
struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn wants_close(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// An answer to write.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
        }
    }

    fn json(status: u16, value: &serde_json::Value) -> Response {
        Response::new(status, "application/json", value.to_string())
    }

    fn xml(status: u16, body: String) -> Response {
        Response::new(status, "text/xml", body)
    }

    fn header(mut self, k: &str, v: &str) -> Response {
        self.headers.push((k.to_owned(), v.to_owned()));
        self
    }
}

/// What the handler decided.
enum Action {
    Answer(Response),
    Reset,
    Hang(Duration),
}

fn serve_connection(stream: TcpStream, conn: u64, shared: &Shared) {
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut writer = write_half;
    loop {
        if shared.shutdown.load(Ordering::SeqCst) {
            return;
        }
        let req = match read_request(&mut reader, &mut writer) {
            Ok(Some(req)) => req,
            Ok(None) => return,
            Err(_) => {
                let _ = write_response(
                    &mut writer,
                    &Response::new(400, "text/plain", "bad request"),
                    true,
                );
                return;
            }
        };
        let flight = InFlight::enter(shared);
        let close = req.wants_close();
        let keep_going = handle(shared, conn, req, &mut writer, close, flight);
        if !keep_going || close {
            return;
        }
    }
}

/// One request being handled: counted in `in_flight` from its arrival until its answer is about
/// to be written (or the connection is dropped), so that a client that has its answer never sees
/// its own request still in flight.
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> InFlight<'a> {
        let now_in = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now_in, Ordering::SeqCst);
        InFlight(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Answers one request; returns whether the connection stays open.
fn handle(
    shared: &Shared,
    conn: u64,
    req: Request,
    writer: &mut TcpStream,
    close: bool,
    flight: InFlight<'_>,
) -> bool {
    let at = Instant::now();
    let (path, query_str) = match req.target.split_once('?') {
        Some((p, q)) => (p.to_owned(), q.to_owned()),
        None => (req.target.clone(), String::new()),
    };
    let query = parse_urlencoded(&query_str);
    let body = String::from_utf8_lossy(&req.body).into_owned();
    let form = if req.method == "POST" && path == "/" {
        parse_urlencoded(&body)
    } else {
        Vec::new()
    };
    let route = match (req.method.as_str(), path.as_str()) {
        ("GET", "/federation/credentials") => Some(Route::GetRoleCredentials),
        ("POST", "/token") => Some(Route::CreateToken),
        ("POST", "/client/register") => Some(Route::RegisterClient),
        ("POST", "/device_authorization") => Some(Route::StartDeviceAuthorization),
        ("GET", "/authorize") => Some(Route::Authorize),
        ("POST", "/logout") => Some(Route::Logout),
        ("POST", "/v1/token") => Some(Route::SigninToken),
        ("GET", "/v1/authorize") => Some(Route::SigninAuthorize),
        ("POST", "/") if lookup(&form, "Action") == Some("AssumeRole") => Some(Route::AssumeRole),
        _ => None,
    };
    let route_name = route.map_or("Unknown", Route::name);

    let (fault, latency, index) = {
        let mut st = lock(&shared.state);
        *st.counts.entry(route_name).or_insert(0) += 1;
        st.requests.push(Recorded {
            method: req.method.clone(),
            path: path.clone(),
            query: query.clone(),
            headers: req.headers.clone(),
            body: body.clone(),
            at,
            route: route_name,
            connection: conn,
            status: None,
        });
        let index = st.requests.len() - 1;
        let fault = st.take_fault(route.unwrap_or(Route::Any));
        (fault, st.latency, index)
    };

    if !latency.is_zero() && !wait_unless_shutdown(shared, latency) {
        return false;
    }

    let action = match fault {
        Some(Fault::ResetConnection) => Action::Reset,
        Some(Fault::Hang(d)) => Action::Hang(d),
        Some(Fault::Delay(d)) => {
            if !wait_unless_shutdown(shared, d) {
                return false;
            }
            Action::Answer(answer(shared, route, &req, &query, &form))
        }
        Some(Fault::Status {
            code,
            error_type,
            retry_after,
        }) => {
            let mut resp = error_response(route, code, &error_type, "injected fault");
            if let Some(secs) = retry_after {
                resp = resp.header("Retry-After", &secs.to_string());
            }
            Action::Answer(resp)
        }
        Some(Fault::MalformedBody) => Action::Answer(malformed(route)),
        Some(Fault::HugeBody(n)) => Action::Answer(huge(route, n)),
        None => Action::Answer(answer(shared, route, &req, &query, &form)),
    };

    match action {
        Action::Answer(resp) => {
            lock(&shared.state).requests[index].status = Some(resp.status);
            drop(flight);
            write_response(writer, &resp, close).is_ok()
        }
        Action::Reset => {
            reset(writer);
            false
        }
        Action::Hang(d) => {
            wait_unless_shutdown(shared, d);
            let _ = writer.shutdown(Shutdown::Both);
            false
        }
    }
}

/// Waits `d`, returning early (false) when the fake shuts down.
fn wait_unless_shutdown(shared: &Shared, d: Duration) -> bool {
    let deadline = Instant::now() + d;
    let mut g = lock(&shared.shutdown_mx);
    loop {
        if shared.shutdown.load(Ordering::SeqCst) {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        g = shared
            .shutdown_cv
            .wait_timeout(g, deadline - now)
            .map(|(g, _)| g)
            .unwrap_or_else(|e| e.into_inner().0);
    }
}

/// Closes with RST instead of FIN, like a load balancer dropping the connection.
fn reset(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the fd is open for the lifetime of `stream`, and `linger` is a valid
    // `struct linger` whose size we pass.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    let _ = stream.shutdown(Shutdown::Both);
}

/// The normal answer for a route.
fn answer(
    shared: &Shared,
    route: Option<Route>,
    req: &Request,
    query: &[(String, String)],
    form: &[(String, String)],
) -> Response {
    match route {
        Some(Route::GetRoleCredentials) => get_role_credentials(shared, req, query),
        Some(Route::CreateToken) => create_token(shared, req),
        Some(Route::RegisterClient) => register_client(shared, req),
        Some(Route::StartDeviceAuthorization) => start_device_authorization(shared, req),
        Some(Route::Authorize) => authorize(shared, query),
        Some(Route::Logout) => logout(shared, req),
        Some(Route::SigninToken) => {
            let path = req.target.split('?').next().unwrap_or("");
            signin::create_token(&mut lock(&shared.state), req, path)
        }
        Some(Route::SigninAuthorize) => signin::authorize(&mut lock(&shared.state), query),
        Some(Route::AssumeRole) => assume_role(shared, req, form),
        Some(Route::Any) | None => {
            if req.method == "POST" && req.target.split('?').next() == Some("/") {
                let action = lookup(form, "Action").unwrap_or("");
                sts_error(
                    400,
                    "InvalidAction",
                    &format!("Could not find operation {action} for version 2011-06-15"),
                )
            } else {
                Response::json(
                    404,
                    &json!({"message": format!("no route for {} {}", req.method, req.target)}),
                )
                .header("x-amzn-errortype", "UnknownOperationException")
            }
        }
    }
}

fn get_role_credentials(shared: &Shared, req: &Request, query: &[(String, String)]) -> Response {
    let (Some(role), Some(account)) = (lookup(query, "role_name"), lookup(query, "account_id"))
    else {
        return json_error(
            400,
            "InvalidRequestException",
            "role_name and account_id are required",
        );
    };
    let token = req.header("x-amz-sso_bearer_token").unwrap_or("");
    let mut st = lock(&shared.state);
    let now = st.now();
    if !st.token_valid(token, now) {
        return json_error(
            401,
            "UnauthorizedException",
            "Session token not found or invalid",
        );
    }
    let expires = add_signed_ms(now, st.credential_lifetime_secs.saturating_mul(1000));
    let creds = st.mint(&format!("{account}/{role}"), expires);
    st.last_credentials
        .insert((account.to_owned(), role.to_owned()), creds.clone());
    Response::json(
        200,
        &json!({"roleCredentials": {
            "accessKeyId": creds.access_key_id,
            "secretAccessKey": creds.secret_access_key,
            "sessionToken": creds.session_token,
            "expiration": creds.expiration_ms,
        }}),
    )
}

fn create_token(shared: &Shared, req: &Request) -> Response {
    let body = match oidc_body(req) {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let field = |k: &str| str_field(&body, k);
    let (client_id, grant_type, refresh) =
        (field("clientId"), field("grantType"), field("refreshToken"));
    match grant_type.as_str() {
        "refresh_token" => {}
        "authorization_code" => return create_token_auth_code(shared, &field),
        DEVICE_GRANT => return create_token_device(shared, &field),
        _ => {
            return oidc_error(
                400,
                "UnsupportedGrantTypeException",
                "unsupported_grant_type",
                "the fake supports refresh_token, authorization_code and device_code",
            );
        }
    }
    if field("clientSecret").is_empty() || client_id.is_empty() {
        return oidc_error(
            401,
            "InvalidClientException",
            "invalid_client",
            "clientId and clientSecret are required",
        );
    }
    let mut st = lock(&shared.state);
    match st.refresh_tokens.get(&refresh) {
        Some(owner) if *owner == client_id => {}
        _ => {
            return oidc_error(
                400,
                "InvalidGrantException",
                "invalid_grant",
                "Invalid refresh token provided",
            );
        }
    }
    st.counter += 1;
    let n = st.counter;
    let access_token = format!("fake-access-{n}");
    let expires_in = st.token_expires_in;
    let now = st.now();
    st.tokens.insert(
        access_token.clone(),
        Some(add_signed_ms(now, expires_in.saturating_mul(1000))),
    );
    let new_refresh = if st.rotate_refresh_tokens {
        let r = format!("fake-refresh-{n}");
        st.refresh_tokens.remove(&refresh);
        st.refresh_tokens.insert(r.clone(), client_id.clone());
        Some(r)
    } else {
        None
    };
    st.issued_tokens.push(IssuedToken {
        access_token: access_token.clone(),
        expires_in,
        refresh_token_used: refresh,
        new_refresh_token: new_refresh.clone(),
        client_id,
        grant_type,
    });
    let mut out = json!({
        "accessToken": access_token,
        "tokenType": "Bearer",
        "expiresIn": expires_in,
    });
    if let Some(r) = new_refresh {
        out["refreshToken"] = json!(r);
    }
    Response::json(200, &out)
}

fn assume_role(shared: &Shared, req: &Request, form: &[(String, String)]) -> Response {
    let Some(signed_by) = req.header("authorization").and_then(sigv4_akid) else {
        return sts_error(
            403,
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
        );
    };
    let (Some(role_arn), Some(session)) =
        (lookup(form, "RoleArn"), lookup(form, "RoleSessionName"))
    else {
        return sts_error(
            400,
            "MissingParameter",
            "RoleArn and RoleSessionName are required",
        );
    };
    let duration = match lookup(form, "DurationSeconds").map(str::parse::<i64>) {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(_)) => {
            return sts_error(400, "ValidationError", "DurationSeconds is not a number");
        }
    };
    let mut st = lock(&shared.state);
    let secs = duration.unwrap_or(st.assume_role_default_secs);
    let now = st.now();
    let creds = st.mint(role_arn, add_signed_ms(now, secs.saturating_mul(1000)));
    st.assume_role_calls.push(AssumeRoleCall {
        role_arn: role_arn.to_owned(),
        role_session_name: session.to_owned(),
        duration_seconds: duration,
        external_id: lookup(form, "ExternalId").map(str::to_owned),
        signed_by: Some(signed_by),
        served: creds.clone(),
    });
    let n = st.counter;
    drop(st);
    let (account, role_name) = split_role_arn(role_arn);
    let expiration = humantime::format_rfc3339_seconds(creds.expiration()).to_string();
    let body = format!(
        "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n\
         \x20 <AssumeRoleResult>\n\
         \x20   <AssumedRoleUser>\n\
         \x20     <AssumedRoleId>AROAFAKE{n:012}:{session}</AssumedRoleId>\n\
         \x20     <Arn>arn:aws:sts::{account}:assumed-role/{role_name}/{session}</Arn>\n\
         \x20   </AssumedRoleUser>\n\
         \x20   <Credentials>\n\
         \x20     <AccessKeyId>{akid}</AccessKeyId>\n\
         \x20     <SecretAccessKey>{secret}</SecretAccessKey>\n\
         \x20     <SessionToken>{token}</SessionToken>\n\
         \x20     <Expiration>{expiration}</Expiration>\n\
         \x20   </Credentials>\n\
         \x20 </AssumeRoleResult>\n\
         \x20 <ResponseMetadata>\n\
         \x20   <RequestId>fake-request-{n}</RequestId>\n\
         \x20 </ResponseMetadata>\n\
         </AssumeRoleResponse>\n",
        session = xml_escape(session),
        account = xml_escape(account),
        role_name = xml_escape(role_name),
        akid = creds.access_key_id,
        secret = creds.secret_access_key,
        token = creds.session_token,
    );
    Response::xml(200, body)
}

fn split_role_arn(arn: &str) -> (&str, &str) {
    // arn:aws:iam::123456789012:role/path/Name
    let mut parts = arn.splitn(6, ':');
    let account = parts.nth(4).unwrap_or("000000000000");
    let role = parts
        .next()
        .and_then(|r| r.rsplit('/').next())
        .unwrap_or("role");
    (account, role)
}

fn error_response(route: Option<Route>, code: u16, error_type: &str, message: &str) -> Response {
    match route {
        Some(Route::AssumeRole) => sts_error(code, error_type, message),
        Some(Route::CreateToken | Route::RegisterClient | Route::StartDeviceAuthorization) => {
            let short = error_type
                .strip_suffix("Exception")
                .unwrap_or(error_type)
                .to_ascii_lowercase();
            oidc_error(code, error_type, &short, message)
        }
        _ => json_error(code, error_type, message),
    }
}

fn json_error(code: u16, error_type: &str, message: &str) -> Response {
    Response::json(code, &json!({ "message": message })).header("x-amzn-errortype", error_type)
}

fn oidc_error(code: u16, error_type: &str, error: &str, description: &str) -> Response {
    Response::json(
        code,
        &json!({ "error": error, "error_description": description }),
    )
    .header("x-amzn-errortype", error_type)
}

fn sts_error(code: u16, error_code: &str, message: &str) -> Response {
    let kind = if code >= 500 { "Receiver" } else { "Sender" };
    Response::xml(
        code,
        format!(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n\
             \x20 <Error>\n\
             \x20   <Type>{kind}</Type>\n\
             \x20   <Code>{}</Code>\n\
             \x20   <Message>{}</Message>\n\
             \x20 </Error>\n\
             \x20 <RequestId>fake-error</RequestId>\n\
             </ErrorResponse>\n",
            xml_escape(error_code),
            xml_escape(message)
        ),
    )
}

fn malformed(route: Option<Route>) -> Response {
    match route {
        Some(Route::AssumeRole) => Response::xml(
            200,
            "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
             <AssumeRoleResult><Credentials><AccessKeyId>ASIA"
                .to_owned(),
        ),
        Some(Route::CreateToken) => Response::new(200, "application/json", "{\"accessToken\":"),
        _ => Response::new(200, "application/json", "{\"roleCredentials\":"),
    }
}

fn huge(route: Option<Route>, n: usize) -> Response {
    let (content_type, head): (&str, &[u8]) = match route {
        Some(Route::AssumeRole) => ("text/xml", b"<AssumeRoleResponse><!-- "),
        _ => ("application/json", b"{\"padding\":\""),
    };
    let mut body = Vec::with_capacity(n);
    body.extend_from_slice(&head[..head.len().min(n)]);
    body.resize(n, b'x');
    Response::new(200, content_type, body)
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

fn write_response(w: &mut TcpStream, resp: &Response, close: bool) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (k, v) in &resp.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    head.push_str("x-amzn-RequestId: fake-request\r\n");
    head.push_str(if close {
        "Connection: close\r\n\r\n"
    } else {
        "Connection: keep-alive\r\n\r\n"
    });
    // One write, as an HTTP server's buffered writer does: a head and a body sent apart would
    // meet Nagle's algorithm and the client's delayed ACK (40 ms per keep-alive response).
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&resp.body);
    w.write_all(&bytes)?;
    w.flush()
}

/// Reads one request; `Ok(None)` on a clean EOF between requests.
fn read_request(r: &mut BufReader<TcpStream>, w: &mut TcpStream) -> io::Result<Option<Request>> {
    let mut line = String::new();
    // Tolerate stray blank lines between keep-alive requests.
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        if !line.trim().is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid(format!("bad request line {line:?}")));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(invalid(format!("unsupported version {version}")));
    }
    let (method, target) = (method.to_owned(), target.to_owned());
    let mut headers = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(invalid("eof in headers".into()));
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        let Some((k, v)) = l.split_once(':') else {
            return Err(invalid(format!("bad header line {l:?}")));
        };
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let mut req = Request {
        method,
        target,
        headers,
        body: Vec::new(),
    };
    if req
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let chunked = req
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        req.body = read_chunked(r)?;
    } else if let Some(len) = req.header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| invalid(format!("bad content-length {len:?}")))?;
        if len > MAX_BODY {
            return Err(invalid(format!("body of {len} bytes is too large")));
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body)?;
        req.body = body;
    }
    Ok(Some(req))
}

fn read_chunked(r: &mut BufReader<TcpStream>) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(invalid("eof in chunk size".into()));
        }
        let size_str = line.trim().split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_str, 16)
            .map_err(|_| invalid(format!("bad chunk size {size_str:?}")))?;
        if size == 0 {
            // Trailers, then the empty line.
            loop {
                line.clear();
                if r.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(invalid("chunked body too large".into()));
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf)?;
        if &crlf != b"\r\n" {
            return Err(invalid("chunk not followed by CRLF".into()));
        }
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// `Credential=<AKID>/date/region/service/aws4_request` from a SigV4 `Authorization` header.
pub fn sigv4_akid(authorization: &str) -> Option<String> {
    let rest = authorization.strip_prefix("AWS4-HMAC-SHA256")?;
    let cred = rest
        .split([',', ' '])
        .map(str::trim)
        .find_map(|p| p.strip_prefix("Credential="))?;
    let akid = cred.split('/').next()?;
    (!akid.is_empty()).then(|| akid.to_owned())
}

/// Parses `a=b&c=d` with `+` as space and `%XX` escapes.
pub fn parse_urlencoded(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn lookup<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// FNV-1a folded to 24 bits: a short stable tag per account/role in access key ids.
fn fnv24(s: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h >> 24) ^ (h & 0x00ff_ffff)
}

fn epoch_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

fn add_signed_ms(t: SystemTime, ms: i64) -> SystemTime {
    let d = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 { t + d } else { t - d }
}

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The client `id` if it is registered with `secret`.
fn registered_client(st: &State, id: &str, secret: &str) -> Option<FakeClient> {
    st.clients
        .iter()
        .find(|c| c.client_id == id && c.client_secret == secret)
        .cloned()
}

fn invalid_client() -> Response {
    oidc_error(
        401,
        "InvalidClientException",
        "invalid_client",
        "unknown client or wrong secret",
    )
}

fn invalid_grant(why: &str) -> Response {
    oidc_error(400, "InvalidGrantException", "invalid_grant", why)
}

/// Issues an access token and a refresh token bound to `client_id` for a sign-in grant.
fn issue_sign_in_token(st: &mut State, client_id: &str, grant_type: &str) -> Response {
    st.counter += 1;
    let n = st.counter;
    let access_token = format!("fake-access-{n}");
    let refresh = format!("fake-refresh-{n}");
    let expires_in = st.token_expires_in;
    let now = st.now();
    st.tokens.insert(
        access_token.clone(),
        Some(add_signed_ms(now, expires_in.saturating_mul(1000))),
    );
    st.refresh_tokens
        .insert(refresh.clone(), client_id.to_owned());
    st.issued_tokens.push(IssuedToken {
        access_token: access_token.clone(),
        expires_in,
        refresh_token_used: String::new(),
        new_refresh_token: Some(refresh.clone()),
        client_id: client_id.to_owned(),
        grant_type: grant_type.to_owned(),
    });
    Response::json(
        200,
        &json!({
            "accessToken": access_token,
            "tokenType": "Bearer",
            "expiresIn": expires_in,
            "refreshToken": refresh,
        }),
    )
}

/// An SSO-OIDC request's JSON body, or the 400 SSO-OIDC answers a body that is not JSON with.
fn oidc_body(req: &Request) -> Result<serde_json::Value, Response> {
    serde_json::from_slice(&req.body).map_err(|_| {
        oidc_error(
            400,
            "InvalidRequestException",
            "invalid_request",
            "body is not JSON",
        )
    })
}

/// The string field `k` of a JSON body, empty when it is missing or not a string.
fn str_field(body: &serde_json::Value, k: &str) -> String {
    body.get(k)
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_owned()
}

fn register_client(shared: &Shared, req: &Request) -> Response {
    let body = match oidc_body(req) {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let strings = |k: &str| -> Vec<String> {
        body.get(k)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let name = str_field(&body, "clientName");
    let client_type = str_field(&body, "clientType");
    if name.is_empty() || client_type != "public" {
        return oidc_error(
            400,
            "InvalidRequestException",
            "invalid_request",
            "clientName and clientType=public are required",
        );
    }
    let grant_types = strings("grantTypes");
    let redirect_uris = strings("redirectUris");
    if grant_types.iter().any(|g| g == "authorization_code")
        && (redirect_uris.is_empty() || body.get("issuerUrl").is_none())
    {
        return oidc_error(
            400,
            "InvalidRequestException",
            "invalid_request",
            "an authorization_code client needs redirectUris and issuerUrl",
        );
    }
    let mut st = lock(&shared.state);
    st.counter += 1;
    let n = st.counter;
    let client = FakeClient {
        client_id: format!("fake-client-{n}"),
        client_secret: format!("fake-client-secret-{n}"),
        client_name: name.to_owned(),
        grant_types,
        redirect_uris,
        scopes: strings("scopes"),
        issuer_url: body
            .get("issuerUrl")
            .and_then(|v| v.as_str())
            .map(str::to_owned),
    };
    let now = epoch_ms(st.now()) / 1000;
    st.clients.push(client.clone());
    Response::json(
        200,
        &json!({
            "clientId": client.client_id,
            "clientSecret": client.client_secret,
            "clientIdIssuedAt": now,
            "clientSecretExpiresAt": now + 90 * 24 * 3600,
        }),
    )
}

/// Whether `uri` is one of `registered`: equal, or a loopback URI equal but for its port
/// (RFC 8252 section 7.3).
fn redirect_matches(registered: &[String], uri: &str) -> bool {
    let without_port = |u: &str| -> String {
        match u.strip_prefix("http://127.0.0.1:") {
            Some(rest) => {
                let path = rest.trim_start_matches(|c: char| c.is_ascii_digit());
                format!("http://127.0.0.1{path}")
            }
            None => u.to_owned(),
        }
    };
    registered
        .iter()
        .any(|r| r == uri || without_port(r) == without_port(uri))
}

fn authorize(shared: &Shared, query: &[(String, String)]) -> Response {
    let q = |k: &str| lookup(query, k).unwrap_or("").to_owned();
    let (client_id, redirect_uri, state, challenge) = (
        q("client_id"),
        q("redirect_uri"),
        q("state"),
        q("code_challenge"),
    );
    let bad = |why: &str| Response::new(400, "text/plain", why.to_owned());
    if q("response_type") != "code" || q("code_challenge_method") != "S256" {
        return bad("response_type=code and code_challenge_method=S256 are required");
    }
    if state.is_empty() || challenge.is_empty() || q("scopes").is_empty() {
        return bad("state, code_challenge and scopes are required");
    }
    let mut st = lock(&shared.state);
    let Some(client) = st
        .clients
        .iter()
        .find(|c| c.client_id == client_id)
        .cloned()
    else {
        return bad("unknown client_id");
    };
    if !client.grant_types.iter().any(|g| g == "authorization_code") {
        return bad("the client is not registered for authorization_code");
    }
    if !redirect_matches(&client.redirect_uris, &redirect_uri) {
        return bad("redirect_uri is not one the client registered");
    }
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    if let Some((error, description)) = &st.authorize_error {
        let location = format!(
            "{redirect_uri}?error={}&error_description={}&state={}",
            enc(error),
            enc(description),
            enc(&state)
        );
        return Response::new(302, "text/plain", "").header("Location", &location);
    }
    st.counter += 1;
    let code = format!("fake-code-{}", st.counter);
    st.codes.insert(
        code.clone(),
        AuthCode {
            client_id,
            redirect_uri: redirect_uri.clone(),
            challenge,
            used: false,
        },
    );
    let state = st.authorize_state_override.clone().unwrap_or(state);
    let location = format!("{redirect_uri}?code={}&state={}", enc(&code), enc(&state));
    Response::new(302, "text/plain", "").header("Location", &location)
}

/// base64url(SHA-256(verifier)) without padding.
fn s256(verifier: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()))
}

fn create_token_auth_code(shared: &Shared, field: &dyn Fn(&str) -> String) -> Response {
    let mut st = lock(&shared.state);
    let Some(client) = registered_client(&st, &field("clientId"), &field("clientSecret")) else {
        return invalid_client();
    };
    let code = field("code");
    let Some(issued) = st.codes.get(&code).cloned() else {
        return invalid_grant("unknown authorization code");
    };
    if issued.used || issued.client_id != client.client_id {
        return invalid_grant("the code was used already or belongs to another client");
    }
    let redirect_uri = field("redirectUri");
    if redirect_uri != issued.redirect_uri
        || !redirect_matches(&client.redirect_uris, &redirect_uri)
    {
        return invalid_grant("redirectUri differs from the authorize request's");
    }
    if s256(&field("codeVerifier")) != issued.challenge {
        return invalid_grant("codeVerifier does not match the code_challenge");
    }
    if let Some(c) = st.codes.get_mut(&code) {
        c.used = true;
    }
    issue_sign_in_token(&mut st, &client.client_id, "authorization_code")
}

fn start_device_authorization(shared: &Shared, req: &Request) -> Response {
    let body = match oidc_body(req) {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let field = |k: &str| str_field(&body, k);
    let mut st = lock(&shared.state);
    let Some(client) = registered_client(&st, &field("clientId"), &field("clientSecret")) else {
        return invalid_client();
    };
    if field("startUrl").is_empty() {
        return oidc_error(
            400,
            "InvalidRequestException",
            "invalid_request",
            "startUrl is required",
        );
    }
    st.counter += 1;
    let n = st.counter;
    let device_code = format!("fake-device-{n}");
    let user_code = format!("FAKE-{n:04}");
    let interval = st.device_interval;
    let now = st.now();
    let script = st.device_script.iter().copied().collect();
    st.devices.insert(
        device_code.clone(),
        DeviceAuth {
            client_id: client.client_id,
            script,
            last_contact: now,
            gap_secs: interval,
            done: false,
        },
    );
    Response::json(
        200,
        &json!({
            "deviceCode": device_code,
            "userCode": user_code,
            "verificationUri": "https://device.sso.fake.amazonaws.com/",
            "verificationUriComplete": format!("https://device.sso.fake.amazonaws.com/?user_code={user_code}"),
            "expiresIn": 600,
            "interval": interval,
        }),
    )
}

fn create_token_device(shared: &Shared, field: &dyn Fn(&str) -> String) -> Response {
    let mut st = lock(&shared.state);
    let Some(client) = registered_client(&st, &field("clientId"), &field("clientSecret")) else {
        return invalid_client();
    };
    let device_code = field("deviceCode");
    let now = st.now();
    let Some(mut dev) = st.devices.get(&device_code).cloned() else {
        return invalid_grant("unknown device code");
    };
    if dev.client_id != client.client_id || dev.done {
        return invalid_grant("the device code belongs to another client or was used");
    }
    st.device_polls += 1;
    let since_ms = now
        .duration_since(dev.last_contact)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(-1);
    dev.last_contact = now;
    let step = if since_ms < dev.gap_secs.saturating_mul(1000) {
        st.device_polls_too_early += 1;
        DeviceStep::SlowDown
    } else {
        dev.script.pop_front().unwrap_or(DeviceStep::Approve)
    };
    if step == DeviceStep::SlowDown {
        dev.gap_secs += 5;
    }
    if step == DeviceStep::Approve {
        dev.done = true;
    }
    st.devices.insert(device_code, dev);
    match step {
        DeviceStep::Pending => oidc_error(
            400,
            "AuthorizationPendingException",
            "authorization_pending",
            "not approved yet",
        ),
        DeviceStep::SlowDown => oidc_error(400, "SlowDownException", "slow_down", "slow down"),
        DeviceStep::Deny => oidc_error(400, "AccessDeniedException", "access_denied", "denied"),
        DeviceStep::Expire => oidc_error(400, "ExpiredTokenException", "expired_token", "expired"),
        DeviceStep::Approve => issue_sign_in_token(&mut st, &client.client_id, DEVICE_GRANT),
    }
}

fn logout(shared: &Shared, req: &Request) -> Response {
    let token = req
        .header("x-amz-sso_bearer_token")
        .unwrap_or("")
        .to_owned();
    let mut st = lock(&shared.state);
    let now = st.now();
    if !st.token_valid(&token, now) {
        return json_error(
            401,
            "UnauthorizedException",
            "Session token not found or invalid",
        );
    }
    st.tokens.remove(&token);
    st.revoked.insert(token.clone());
    st.logged_out.push(token);
    Response::new(200, "application/json", "{}")
}
