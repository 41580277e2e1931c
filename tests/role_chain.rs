//! Role chains end to end through the real SDK: `chain::plan` on AWS config text, then each
//! hop's STS AssumeRole against the fake AWS (which records who signed each hop and what was
//! asked) and against moto's server (an independent STS implementation), with SSO and
//! static-keys bases.
//!
//! Each test reaches its own fake (or moto) through an `AwsEdge` of its own: the tests run in
//! parallel and leave the process environment alone.
use crate::support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use credsync::aws::{self, AwsEdge, Proxy, ResolveError};
use credsync::aws_profile::{self, AwsConfig, SsoProfile};
use credsync::chain::{self, Base, Plan};
use credsync::config::Env;
use credsync::secret::{Credentials, ExposeSecret};
use credsync::status::Kind;
use credsync::sts;

use support::python::{self, MotoServer};
use support::{FakeAws, Fault, Route, TestEnv};

const STATIC_KEY_ID: &str = "AKIAFAKESTATIC0001";
const STATIC_SECRET: &str = "static-secret-value";
const ROLE_A: &str = "arn:aws:iam::222222222222:role/A";
const ROLE_B: &str = "arn:aws:iam::333333333333:role/B";

/// static keys -> A -> B: A with a session name, external id and duration; B with the default
/// session name, its own external id and duration.
const STATIC_CHAIN_CONFIG: &str = "[profile a]\nrole_arn = arn:aws:iam::222222222222:role/A\n\
source_profile = base\nrole_session_name = hop-a\nexternal_id = ext-a\nduration_seconds = 1800\n\
\n[profile b]\nrole_arn = arn:aws:iam::333333333333:role/B\nsource_profile = a\n\
external_id = ext-b\nduration_seconds = 900\nregion = eu-west-1\n";

/// SSO -> A -> B, the SSO portal in us-east-1.
const SSO_CHAIN_CONFIG: &str = "[sso-session corp]\nsso_start_url = https://fake.awsapps.com/start\n\
sso_region = us-east-1\n\n[profile dev]\nsso_session = corp\nsso_account_id = 111111111111\n\
sso_role_name = Dev\n\n[profile a]\nrole_arn = arn:aws:iam::222222222222:role/A\n\
source_profile = dev\nrole_session_name = hop-a\nexternal_id = ext-a\nduration_seconds = 1800\n\
\n[profile b]\nrole_arn = arn:aws:iam::333333333333:role/B\nsource_profile = a\n\
external_id = ext-b\nduration_seconds = 900\n";

fn static_credentials_file() -> String {
    format!(
        "[base]\naws_access_key_id = {STATIC_KEY_ID}\naws_secret_access_key = {STATIC_SECRET}\n"
    )
}

/// One test's AWS edge: every service at one URL (the fake's, or moto's), and a HOME for the
/// token cache.
struct SdkEnv {
    edge: AwsEdge,
    home: TestEnv,
}

impl SdkEnv {
    /// An edge that reaches nothing but `url`, and a temp HOME.
    fn new(url: &str) -> SdkEnv {
        SdkEnv {
            edge: AwsEdge::only(url),
            home: TestEnv::new(),
        }
    }

    fn clients(&self) -> aws::Clients {
        aws::Clients::new(self.edge.clone())
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn parse(
    config: &str,
    credentials: &str,
) -> (AwsConfig, BTreeMap<String, BTreeMap<String, String>>) {
    let aws = aws_profile::parse(config, Path::new("/test/.aws/config")).unwrap();
    let creds =
        aws_profile::parse_credentials(credentials, Path::new("/test/.aws/credentials")).unwrap();
    (aws, creds)
}

fn static_plan() -> Plan {
    let (aws, creds) = parse(STATIC_CHAIN_CONFIG, &static_credentials_file());
    let plan = chain::plan(&aws, &creds, "b").unwrap();
    assert_eq!(plan.kind(), Kind::AssumeRole);
    assert_eq!(plan.hops.len(), 2);
    plan
}

fn static_base(plan: &Plan) -> Credentials {
    assert!(matches!(&plan.base, Base::Static { profile, .. } if profile == "base"));
    credsync::aws::local_credentials(&plan.base, &AwsEdge::only("http://127.0.0.1:9"))
        .unwrap()
        .unwrap()
}

fn s(secret: &credsync::secret::SecretString) -> &str {
    secret.expose_secret()
}

/// Runs the whole chain of `plan` from `base` against `edge`'s STS.
async fn run_chain(
    edge: &AwsEdge,
    plan: &Plan,
    base: Credentials,
) -> Result<Credentials, ResolveError> {
    let sts = aws::Clients::new(edge.clone()).sts(plan.sts_region()).await;
    sts::assume_chain(&sts, &plan.hops, base, SystemTime::now()).await
}

/// The edge `vars` describe for `home`, without a proxy (the runner's own is not wanted here).
fn edge_from(home: &TestEnv, vars: &[(&str, String)]) -> AwsEdge {
    let mut edge = AwsEdge::from_env(&Env {
        home: home.home().to_owned(),
        vars: vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    });
    edge.proxy = Proxy::Direct;
    edge
}

/// `t` to the second (the STS XML carries whole seconds).
fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()
}

#[test]
fn static_chain_against_the_fake_signs_each_hop_with_the_previous_credentials() {
    let fake = FakeAws::new();
    let env = SdkEnv::new(&fake.url());
    let plan = static_plan();
    let base = static_base(&plan);
    let got = block_on(run_chain(&env.edge, &plan, base)).unwrap();

    let calls = fake.assume_role_calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    let (a, b) = (&calls[0], &calls[1]);
    assert_eq!(a.role_arn, ROLE_A);
    assert_eq!(a.role_session_name, "hop-a");
    assert_eq!(a.external_id.as_deref(), Some("ext-a"));
    assert_eq!(a.duration_seconds, Some(1800));
    assert_eq!(a.signed_by.as_deref(), Some(STATIC_KEY_ID));
    assert_eq!(b.role_arn, ROLE_B);
    assert_eq!(b.role_session_name, "credsync-b");
    assert_eq!(b.external_id.as_deref(), Some("ext-b"));
    assert_eq!(b.duration_seconds, Some(900));
    assert_eq!(
        b.signed_by.as_deref(),
        Some(a.served.access_key_id.as_str())
    );

    // Hop B carried A's session token; hop A (long-term keys) carried none.
    let requests = fake.requests_for("AssumeRole");
    assert_eq!(requests[0].header("x-amz-security-token"), None);
    assert_eq!(
        requests[1].header("x-amz-security-token"),
        Some(a.served.session_token.as_str())
    );

    // B's credentials come back.
    let served = fake.last_assumed(ROLE_B).unwrap();
    assert_eq!(s(&got.access_key_id), served.access_key_id);
    assert_eq!(s(&got.secret_access_key), served.secret_access_key);
    assert_eq!(
        got.session_token.as_ref().map(s),
        Some(served.session_token.as_str())
    );
    assert_eq!(secs(got.expiration.unwrap()), secs(served.expiration()));
    assert!(got.expiration.unwrap() > SystemTime::now() + Duration::from_secs(800));
}

/// Logs sso-session `corp` in (a token the fake knows, in the cache) and plans profile `b` of
/// [`SSO_CHAIN_CONFIG`] (SSO -> a -> b): the plan and its SSO base.
fn logged_in_sso_chain(fake: &FakeAws, env: &SdkEnv) -> (Plan, SsoProfile) {
    fake.add_token("sso-access-token");
    env.home.write_token_cache(
        "corp",
        &support::botocore_token_json(
            "sso-access-token",
            SystemTime::now() + Duration::from_secs(3600),
            None,
        ),
    );
    let (aws, creds) = parse(SSO_CHAIN_CONFIG, "");
    let plan = chain::plan(&aws, &creds, "b").unwrap();
    let sso = plan.sso().unwrap().clone();
    (plan, sso)
}

#[test]
fn sso_chain_against_the_fake_yields_the_last_roles_credentials() {
    let fake = FakeAws::new();
    let env = SdkEnv::new(&fake.url());
    let (plan, sso) = logged_in_sso_chain(&fake, &env);
    assert_eq!(
        (sso.profile.as_str(), sso.role_name.as_str()),
        ("dev", "Dev")
    );

    let got = block_on(async {
        let now = SystemTime::now();
        let token = aws::read_token(&env.home.sso_cache_dir(), &sso, now).unwrap();
        let client = env.clients().sso(&sso.sso_region).await;
        let base = aws::sso_role_credentials(&client, &sso, &token)
            .await
            .unwrap();
        run_chain(&env.edge, &plan, base).await
    })
    .unwrap();

    let portal = fake.last_credentials("111111111111", "Dev").unwrap();
    let calls = fake.assume_role_calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(
        (
            calls[0].role_arn.as_str(),
            calls[0].role_session_name.as_str()
        ),
        (ROLE_A, "hop-a")
    );
    assert_eq!(calls[0].external_id.as_deref(), Some("ext-a"));
    assert_eq!(calls[0].duration_seconds, Some(1800));
    assert_eq!(
        calls[0].signed_by.as_deref(),
        Some(portal.access_key_id.as_str())
    );
    assert_eq!(
        (
            calls[1].role_arn.as_str(),
            calls[1].role_session_name.as_str()
        ),
        (ROLE_B, "credsync-b")
    );
    assert_eq!(calls[1].external_id.as_deref(), Some("ext-b"));
    assert_eq!(calls[1].duration_seconds, Some(900));
    assert_eq!(
        calls[1].signed_by.as_deref(),
        Some(calls[0].served.access_key_id.as_str())
    );
    assert_eq!(s(&got.access_key_id), calls[1].served.access_key_id);
    assert_eq!(s(&got.secret_access_key), calls[1].served.secret_access_key);
}

/// Runs the static chain with `fault` on the first AssumeRole; returns the error and how many
/// AssumeRole requests reached the fake.
fn chain_error_with(fault: Fault) -> (ResolveError, usize) {
    let fake = FakeAws::new();
    let env = SdkEnv::new(&fake.url());
    fake.fail_next(Route::AssumeRole, 1, fault);
    let plan = static_plan();
    let base = static_base(&plan);
    let err = block_on(run_chain(&env.edge, &plan, base)).unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(STATIC_SECRET), "{shown}");
    (err, fake.count("AssumeRole"))
}

#[test]
fn truncated_sts_answer_is_transient() {
    let (err, requests) = chain_error_with(Fault::MalformedBody);
    assert!(
        matches!(&err, ResolveError::Transient { service: "STS", message, .. } if message.contains("malformed")),
        "{err:?}"
    );
    assert!(err.is_retryable());
    // The chain stops at the broken hop: B is never asked.
    assert_eq!(requests, 1);
}

#[test]
fn access_denied_is_refused() {
    let (err, requests) = chain_error_with(Fault::status(403, "AccessDenied"));
    let ResolveError::Refused { code, message, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(code, "AccessDenied");
    assert!(
        message.contains(ROLE_A) && message.contains("\"a\""),
        "{message}"
    );
    assert!(!err.is_retryable());
    assert_eq!(requests, 1);
}

#[test]
fn auth_errors_are_refused() {
    for code in [
        "ExpiredToken",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
    ] {
        let (err, _) = chain_error_with(Fault::status(403, code));
        assert!(
            matches!(&err, ResolveError::Refused { code: c, .. } if c == code),
            "{code}: {err:?}"
        );
    }
}

#[test]
fn throttling_is_throttled_with_retry_after() {
    let (err, _) = chain_error_with(Fault::throttle(Some(7)));
    assert!(
        matches!(&err, ResolveError::Throttled { service: "STS", .. }),
        "{err:?}"
    );
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    let (err, _) = chain_error_with(Fault::status(400, "Throttling"));
    assert!(matches!(&err, ResolveError::Throttled { .. }), "{err:?}");
}

#[test]
fn server_errors_and_resets_are_transient() {
    for fault in [
        Fault::status(500, "InternalFailure"),
        Fault::status(503, "ServiceUnavailable"),
        Fault::ResetConnection,
    ] {
        let (err, _) = chain_error_with(fault.clone());
        assert!(
            matches!(&err, ResolveError::Transient { service: "STS", .. }),
            "{fault:?}: {err:?}"
        );
    }
}

#[test]
fn expired_source_credentials_are_not_sent() {
    let fake = FakeAws::new();
    let env = SdkEnv::new(&fake.url());
    let plan = static_plan();
    let mut base = static_base(&plan);
    base.expiration = Some(SystemTime::now() - Duration::from_secs(1));
    let err = block_on(run_chain(&env.edge, &plan, base)).unwrap_err();
    assert!(
        matches!(&err, ResolveError::Refused { code, .. } if code == "ExpiredToken"),
        "{err:?}"
    );
    assert_eq!(fake.count("AssumeRole"), 0);
}

/// moto, or `None` after a loud skip (outside CI; under CI a missing python fails).
fn moto(test: &str) -> Option<MotoServer> {
    let server = MotoServer::start();
    if server.is_none() {
        python::skip(test);
    }
    server
}

/// Who moto says `creds` are (GetCallerIdentity), e.g.
/// `arn:aws:sts::333333333333:assumed-role/B/credsync-b`.
async fn moto_caller_arn(moto: &AwsEdge, creds: &Credentials) -> String {
    let sts = aws::Clients::new(moto.clone()).sts("us-east-1").await;
    let signing = aws_sdk_sts::config::Credentials::new(
        s(&creds.access_key_id),
        s(&creds.secret_access_key),
        creds.session_token.as_ref().map(|t| s(t).to_owned()),
        None,
        "test",
    );
    let client =
        aws_sdk_sts::Client::from_conf(sts.to_builder().credentials_provider(signing).build());
    let out = client.get_caller_identity().send().await.unwrap();
    out.arn().unwrap().to_owned()
}

fn assert_valid_looking(c: &Credentials) {
    assert!(
        s(&c.access_key_id).starts_with("ASIA"),
        "{}",
        s(&c.access_key_id)
    );
    assert!(!s(&c.secret_access_key).is_empty());
    assert!(c.session_token.as_ref().is_some_and(|t| !s(t).is_empty()));
    assert!(c.expiration.unwrap() > SystemTime::now());
}

#[test]
fn static_chain_against_moto() {
    let Some(moto) = moto("static_chain_against_moto") else {
        return;
    };
    let env = SdkEnv::new(&moto.url());
    let plan = static_plan();
    let base = static_base(&plan);
    let (got, caller) = block_on(async {
        let got = run_chain(&env.edge, &plan, base).await.unwrap();
        let caller = moto_caller_arn(&env.edge, &got).await;
        (got, caller)
    });
    assert_valid_looking(&got);
    // B asked for 900 s.
    let left = got
        .expiration
        .unwrap()
        .duration_since(SystemTime::now())
        .unwrap();
    assert!(
        left <= Duration::from_secs(900) && left > Duration::from_secs(800),
        "{left:?}"
    );
    assert_eq!(
        caller,
        "arn:aws:sts::333333333333:assumed-role/B/credsync-b"
    );
}

#[test]
fn sso_chain_against_moto() {
    let Some(moto) = moto("sso_chain_against_moto") else {
        return;
    };
    // The SSO portal is the fake's (moto has none); the chain's STS calls go to moto.
    let fake = FakeAws::new();
    let env = SdkEnv::new(&fake.url());
    let (plan, sso) = logged_in_sso_chain(&fake, &env);
    let (got, caller_a, caller_b) = block_on(async {
        let now = SystemTime::now();
        let token = aws::read_token(&env.home.sso_cache_dir(), &sso, now).unwrap();
        let client = env.clients().sso(&sso.sso_region).await;
        let base = aws::sso_role_credentials(&client, &sso, &token)
            .await
            .unwrap();
        let moto = AwsEdge::only(&moto.url());
        let sts = aws::Clients::new(moto.clone()).sts(plan.sts_region()).await;
        let a = sts::assume_role(&sts, &plan.hops[0], &base, now)
            .await
            .unwrap();
        let b = sts::assume_role(&sts, &plan.hops[1], &a, now)
            .await
            .unwrap();
        let caller_a = moto_caller_arn(&moto, &a).await;
        let caller_b = moto_caller_arn(&moto, &b).await;
        (b, caller_a, caller_b)
    });
    assert_eq!(fake.count("GetRoleCredentials"), 1);
    assert_eq!(fake.count("AssumeRole"), 0);
    assert_valid_looking(&got);
    assert_eq!(caller_a, "arn:aws:sts::222222222222:assumed-role/A/hop-a");
    assert_eq!(
        caller_b,
        "arn:aws:sts::333333333333:assumed-role/B/credsync-b"
    );
}

/// The AssumeRole calls botocore makes for `profile` (with `HOME` holding `config` and
/// `credentials`, STS at the fake).
fn botocore_hops(
    config: &str,
    credentials: &str,
    profile: &str,
) -> Vec<support::fake_aws::AssumeRoleCall> {
    let fake = FakeAws::new();
    let home = TestEnv::new();
    home.write_aws_config(config);
    home.write_credentials(credentials);
    let out = python::python_command(
        "import sys, boto3\nboto3.Session(profile_name=sys.argv[1]).get_credentials().get_frozen_credentials()",
        &[
            ("HOME", home.home().to_str().unwrap()),
            ("AWS_ENDPOINT_URL", &fake.url()),
            ("AWS_DEFAULT_REGION", "us-east-1"),
        ],
    )
    .arg(profile)
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "botocore failed for {profile}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    fake.assume_role_calls()
}

#[test]
fn plans_make_the_same_hops_as_botocore() {
    if python::python().is_none() {
        python::skip("plans_make_the_same_hops_as_botocore");
        return;
    }
    let cases = [
        // static -> A -> B
        (
            STATIC_CHAIN_CONFIG.to_owned(),
            static_credentials_file(),
            "b",
        ),
        // A source with static keys is used for its keys, not its own role.
        (
            "[profile src]\nrole_arn = arn:aws:iam::1:role/Ignored\nsource_profile = nowhere\n\
             [profile r]\nrole_arn = arn:aws:iam::1:role/R\nsource_profile = src\n"
                .replace("\n             ", "\n"),
            "[src]\naws_access_key_id = AKIASRC0000000000001\naws_secret_access_key = s\n".into(),
            "r",
        ),
        // Keys and role in one profile that sources itself.
        (
            "[profile s]\nrole_arn = arn:aws:iam::1:role/S\nsource_profile = s\n".into(),
            "[s]\naws_access_key_id = AKIASELF000000000001\naws_secret_access_key = s\n".into(),
            "s",
        ),
    ];
    for (config, credentials, profile) in cases {
        let botocore = botocore_hops(&config, &credentials, profile);
        let (aws, creds) = parse(&config, &credentials);
        let plan = chain::plan(&aws, &creds, profile).unwrap();
        let Base::Static {
            credentials: base, ..
        } = &plan.base
        else {
            panic!("{profile}: {:?}", plan.base)
        };
        assert_eq!(
            botocore.len(),
            plan.hops.len(),
            "{profile}: {botocore:?} vs {plan:?}"
        );
        for (i, (hop, call)) in plan.hops.iter().zip(&botocore).enumerate() {
            assert_eq!(hop.role_arn, call.role_arn, "{profile} hop {i}");
            assert_eq!(hop.external_id, call.external_id, "{profile} hop {i}");
            assert_eq!(
                hop.duration_seconds.map(i64::from),
                call.duration_seconds,
                "{profile} hop {i}"
            );
            if i == 0 {
                // The first hop is signed with the base's key, the others by the previous hop.
                assert_eq!(
                    call.signed_by.as_deref(),
                    Some(s(&base.access_key_id)),
                    "{profile}"
                );
            }
        }
    }
}

#[test]
fn sts_endpoint_comes_from_the_environment_else_the_aws_config_files_services() {
    let from_file = FakeAws::new();
    let from_env = FakeAws::new();
    let home = TestEnv::new();
    home.write_aws_config(&format!(
        "[default]\nservices = local\n\n[services local]\nsts =\n  endpoint_url = {}\n",
        from_file.url()
    ));
    let plan = static_plan();
    let base = static_base(&plan);
    // No endpoint variable: the `services` section of the default profile.
    let edge = edge_from(&home, &[]);
    block_on(run_chain(&edge, &plan, base.clone())).unwrap();
    assert_eq!(from_file.count("AssumeRole"), 2);
    // AWS_ENDPOINT_URL_STS, and AWS_ENDPOINT_URL, win over the file.
    for var in ["AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"] {
        let edge = edge_from(&home, &[(var, from_env.url())]);
        block_on(run_chain(&edge, &plan, base.clone())).unwrap();
    }
    assert_eq!(from_env.count("AssumeRole"), 4);
    assert_eq!(from_file.count("AssumeRole"), 2);
    // The profile AWS_PROFILE names is the one whose keys apply.
    home.write_aws_config(&format!(
        "[default]\n\n[profile work]\nendpoint_url = {}\n",
        from_file.url()
    ));
    let edge = edge_from(&home, &[("AWS_PROFILE", "work".to_owned())]);
    block_on(run_chain(&edge, &plan, base)).unwrap();
    assert_eq!(from_file.count("AssumeRole"), 4);
}
