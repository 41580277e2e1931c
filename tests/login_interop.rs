//! What `credsync login` writes, read by the real thing: botocore's own SSO token provider
//! (boto3 from PyPI) and the AWS CLI v2 (`aws configure export-credentials`, `aws sso login`),
//! against the fake AWS. Both must find credsync's token and client registration exactly where
//! and as they keep their own; and credsync must use what `aws sso login` writes.

use crate::login::{assert_no_secrets, login, setup};
use crate::support;

use support::FakeAws;
use support::aws_cli::{self, aws};
use support::python::{self, botocore_read_credentials_json};

const ACCOUNT: &str = "111111111111";

/// The bearer tokens of the GetRoleCredentials calls the fake answered with 200.
fn bearers(fake: &FakeAws) -> Vec<String> {
    fake.requests_for("GetRoleCredentials")
        .iter()
        .filter(|r| r.status == Some(200))
        .filter_map(|r| r.header("x-amz-sso_bearer_token").map(str::to_owned))
        .collect()
}

#[test]
fn botocore_uses_credsyncs_token_and_refreshes_it_with_credsyncs_registration() {
    if python::python().is_none() {
        python::skip("botocore_uses_credsyncs_token_and_refreshes_it_with_credsyncs_registration");
        return;
    }
    let fake = FakeAws::new();
    let (env, browser) = setup(&fake, 0);
    let (code, out) = login(&env, &["login", "--sso-session", "corp"]);
    assert_eq!(code, Some(0), "{out}\n{}", browser.log());
    let issued = fake.issued_tokens();
    assert_eq!(issued.len(), 1);
    let client = fake.clients()[0].clone();
    let py_env = [("AWS_ENDPOINT_URL", fake.url())];
    let py_env: Vec<(&str, &str)> = py_env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // An hour left: botocore's SSOTokenProvider uses the token as credsync wrote it.
    let got = botocore_read_credentials_json(env.home(), "dev", &py_env);
    assert_eq!(got["method"], "sso", "{got}");
    assert_eq!(
        got["akid"],
        fake.last_credentials(ACCOUNT, "Dev")
            .unwrap()
            .access_key_id
            .as_str()
    );
    assert_eq!(bearers(&fake), [issued[0].access_token.clone()]);
    assert_eq!(
        fake.issued_tokens().len(),
        1,
        "botocore refreshed a fresh token"
    );

    // Ten minutes left (inside botocore's refresh window): botocore refreshes the token with
    // the refresh token and the client registration credsync wrote, and writes it back.
    fake.set_token_expires_in(600);
    let (code, out) = login(&env, &["login", "--fresh", "--sso-session", "corp"]);
    assert_eq!(code, Some(0), "{out}\n{}", browser.log());
    assert_eq!(
        fake.count("RegisterClient"),
        1,
        "the registration was reused"
    );
    fake.set_token_expires_in(3600);
    let signed_in = fake.issued_tokens()[1].clone();
    assert_eq!(signed_in.grant_type, "authorization_code");
    let got = botocore_read_credentials_json(env.home(), "dev", &py_env);
    assert_eq!(got["method"], "sso", "{got}");
    let issued = fake.issued_tokens();
    assert_eq!(issued.len(), 3, "{issued:?}");
    let refreshed = &issued[2];
    assert_eq!(refreshed.grant_type, "refresh_token");
    assert_eq!(refreshed.client_id, client.client_id);
    assert_eq!(
        Some(refreshed.refresh_token_used.as_str()),
        signed_in.new_refresh_token.as_deref()
    );
    assert_eq!(bearers(&fake).last(), Some(&refreshed.access_token));
    assert_eq!(
        env.read_token_cache("corp")["accessToken"],
        refreshed.access_token.as_str(),
        "botocore wrote the refreshed token back"
    );
    assert_no_secrets(&fake, &out);
}

#[test]
fn the_aws_cli_shares_credsyncs_sign_in_both_ways() {
    if aws_cli::aws_cli().is_none() {
        aws_cli::skip("the_aws_cli_shares_credsyncs_sign_in_both_ways");
        return;
    }
    let fake = FakeAws::new();
    let (env, browser) = setup(&fake, 0);
    env.write_config_toml("[[profiles]]\nsource = \"dev\"\n");
    let (code, out) = login(&env, &["login"]);
    assert_eq!(code, Some(0), "{out}\n{}", browser.log());
    let client = fake.clients()[0].clone();
    let first = fake.issued_tokens()[0].access_token.clone();
    let url = fake.url();
    let script = browser.script.to_str().unwrap().to_owned();
    let cli_env = [
        ("AWS_ENDPOINT_URL", url.as_str()),
        ("BROWSER", script.as_str()),
    ];

    // The AWS CLI gets credentials with the token credsync wrote.
    let o = aws(
        env.home(),
        &[
            "configure",
            "export-credentials",
            "--profile",
            "dev",
            "--format",
            "process",
        ],
        &cli_env,
    );
    assert!(
        o.status.success(),
        "aws configure export-credentials:\n{}",
        support::output_text(&o)
    );
    let creds: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        creds["AccessKeyId"],
        fake.last_credentials(ACCOUNT, "Dev")
            .unwrap()
            .access_key_id
            .as_str()
    );
    assert_eq!(bearers(&fake), std::slice::from_ref(&first));

    // `aws sso login` reuses credsync's client registration: no second RegisterClient.
    let o = aws(
        env.home(),
        &["sso", "login", "--sso-session", "corp"],
        &cli_env,
    );
    assert!(
        o.status.success(),
        "aws sso login:\n{}\n--- browser\n{}",
        support::output_text(&o),
        browser.log()
    );
    assert_eq!(
        fake.count("RegisterClient"),
        1,
        "the AWS CLI registered again"
    );
    let authorize = fake.requests_for("Authorize");
    assert_eq!(authorize.len(), 2);
    assert_eq!(
        authorize[1].query_param("client_id"),
        Some(client.client_id.as_str())
    );
    let issued = fake.issued_tokens();
    assert_eq!(issued.len(), 2);
    assert_eq!(issued[1].grant_type, "authorization_code");
    assert_eq!(issued[1].client_id, client.client_id);
    let cli_token = issued[1].access_token.clone();
    assert_eq!(
        env.read_token_cache("corp")["accessToken"],
        cli_token.as_str()
    );

    // And credsync uses the token the AWS CLI wrote.
    let o = env.run(["sync"]);
    assert!(
        o.status.success(),
        "credsync sync:\n{}",
        support::output_text(&o)
    );
    assert_eq!(bearers(&fake).last(), Some(&cli_token));
    assert!(
        env.read_credentials()
            .contains(&fake.last_credentials(ACCOUNT, "Dev").unwrap().access_key_id)
    );
    // A credsync login now finds the CLI's token and leaves it.
    let (code, out) = login(&env, &["login"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("already signed in"), "{out}");
    assert_eq!(fake.count("Authorize"), 2);
}
