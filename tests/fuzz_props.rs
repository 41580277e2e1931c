//! Property-based fuzzing of every parser credsync runs on input it does not control, in CI on
//! stable Rust: the token-cache parser, the AWS config parser, credsync's own config and the
//! control-socket protocol. (The credentials-file editor has its own properties in
//! `tests/ini_edit_props.rs`: user bytes survive every edit.)
//!
//! Each property runs `CREDSYNC_FUZZ_CASES` cases (default 1000; `docs/reliability.md` gives the
//! figures for longer runs), with inputs that are arbitrary bytes, arbitrary text, and valid
//! files mutated (bytes flipped, cut short, lines duplicated, spliced).

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use credsync::aws_profile;
use credsync::config::{self, ConfigError, Env};
use credsync::control::parse_request;
use credsync::secret::ExposeSecret;
use credsync::sso_cache;
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("CREDSYNC_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

fn cfg() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        // Shrinking a failure is worth a little time; the default 1024 iterations is plenty.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// One mutation of a valid file.
#[derive(Debug, Clone)]
enum Mutation {
    /// Overwrite the byte at (position % len) with this byte.
    Flip(usize, u8),
    /// Cut the input at (position % len): what a half-written file looks like.
    Truncate(usize),
    /// Insert these bytes at (position % len).
    Insert(usize, Vec<u8>),
    /// Repeat the line containing (position % len).
    DupLine(usize),
    /// Remove (position % len)..+n.
    Delete(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Mutation::Flip(p, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (
            any::<usize>(),
            prop::collection::vec(
                prop_oneof![
                    Just(b'"'),
                    Just(b'{'),
                    Just(b'}'),
                    Just(b'['),
                    Just(b']'),
                    Just(b'='),
                    Just(b'\n'),
                    Just(b','),
                    Just(b':'),
                    Just(b'\\'),
                    Just(0xff),
                    any::<u8>()
                ],
                1..8
            )
        )
            .prop_map(|(p, v)| Mutation::Insert(p, v)),
        any::<usize>().prop_map(Mutation::DupLine),
        (any::<usize>(), 1usize..16).prop_map(|(p, n)| Mutation::Delete(p, n)),
    ]
}

fn mutate(input: &[u8], muts: &[Mutation]) -> Vec<u8> {
    let mut v = input.to_vec();
    for m in muts {
        let len = v.len().max(1);
        match m {
            Mutation::Flip(p, b) => {
                if !v.is_empty() {
                    let i = p % len;
                    v[i] = *b;
                }
            }
            Mutation::Truncate(p) => v.truncate(p % len),
            Mutation::Insert(p, bytes) => {
                let i = p % (v.len() + 1);
                v.splice(i..i, bytes.iter().copied());
            }
            Mutation::DupLine(p) => {
                if !v.is_empty() {
                    let i = p % len;
                    let start = v[..i]
                        .iter()
                        .rposition(|&b| b == b'\n')
                        .map_or(0, |s| s + 1);
                    let end = v[i..]
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(v.len(), |e| i + e + 1);
                    let line = v[start..end].to_vec();
                    v.splice(end..end, line);
                }
            }
            Mutation::Delete(p, n) => {
                if !v.is_empty() {
                    let i = p % len;
                    let j = (i + n).min(v.len());
                    v.drain(i..j);
                }
            }
        }
    }
    v
}

// ---- the token cache ------------------------------------------------------------------------

fn token_string() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_./+=-]{1,40}"
}

/// A valid cache file as botocore or credsync writes it, with some unknown fields.
fn valid_token_json() -> impl Strategy<Value = String> {
    (
        token_string(),
        0u64..4_000_000_000,
        prop::option::of((
            token_string(),
            token_string(),
            token_string(),
            0u64..4_000_000_000,
        )),
        prop::option::of("[a-z]{2}-[a-z]{4,9}-[1-3]"),
        prop::collection::btree_map("[a-zA-Z]{1,10}", "[ -~]{0,20}", 0..3),
    )
        .prop_map(|(access, exp, reg, region, other)| {
            let mut m = serde_json::Map::new();
            m.insert("startUrl".into(), "https://x.awsapps.com/start".into());
            if let Some(r) = region {
                m.insert("region".into(), r.into());
            }
            m.insert("accessToken".into(), access.into());
            m.insert("expiresAt".into(), rfc3339(exp).into());
            if let Some((refresh, id, secret, regexp)) = reg {
                m.insert("clientId".into(), id.into());
                m.insert("clientSecret".into(), secret.into());
                m.insert("registrationExpiresAt".into(), rfc3339(regexp).into());
                m.insert("refreshToken".into(), refresh.into());
            }
            for (k, v) in other {
                m.entry(format!("x{k}")).or_insert(v.into());
            }
            serde_json::Value::Object(m).to_string()
        })
}

fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

fn same_token(a: &sso_cache::CachedToken, b: &sso_cache::CachedToken) -> bool {
    let s = |x: &Option<credsync::secret::SecretString>| {
        x.as_ref().map(|v| v.expose_secret().to_owned())
    };
    a.access_token.expose_secret() == b.access_token.expose_secret()
        && a.expires_at == b.expires_at
        && s(&a.refresh_token) == s(&b.refresh_token)
        && a.client_id == b.client_id
        && s(&a.client_secret) == s(&b.client_secret)
        && a.registration_expires_at == b.registration_expires_at
        && a.region == b.region
        && a.start_url == b.start_url
        && a.other == b.other
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn token_cache_parse_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = sso_cache::parse(&bytes);
    }

    #[test]
    fn token_cache_parse_never_panics_on_mutated_files(
        json in valid_token_json(),
        muts in prop::collection::vec(mutation(), 1..5),
    ) {
        let bytes = mutate(json.as_bytes(), &muts);
        if let Err(e) = sso_cache::parse(&bytes) {
            // An error names fields and JSON positions, never a token value.
            let msg = e.to_string();
            let v: Option<serde_json::Value> = serde_json::from_str(&json).ok();
            if let Some(serde_json::Value::Object(m)) = v {
                for key in ["accessToken", "refreshToken", "clientSecret"] {
                    if let Some(serde_json::Value::String(secret)) = m.get(key)
                        && secret.len() >= 8
                    {
                        prop_assert!(!msg.contains(secret.as_str()), "{key} in error: {msg}");
                    }
                }
            }
        }
    }

    #[test]
    fn token_cache_valid_files_round_trip(json in valid_token_json()) {
        let first = sso_cache::parse(json.as_bytes()).expect("a valid file parses");
        let written = sso_cache::to_json(&first);
        let second = sso_cache::parse(&written).expect("what credsync writes parses");
        prop_assert!(same_token(&first, &second), "{first:?} vs {second:?}");
        // And writing again is a fixed point.
        prop_assert_eq!(sso_cache::to_json(&second), written);
    }
}

// ---- the AWS config file --------------------------------------------------------------------

/// A secret-looking value, unique enough never to appear by accident in a message.
fn secret_value() -> impl Strategy<Value = String> {
    "[A-Z0-9]{4}".prop_map(|s| format!("SeCrEtVaL{s}zz"))
}

#[derive(Debug, Clone)]
struct AwsFile {
    text: String,
    /// Every value in the file.
    secrets: Vec<String>,
    /// Values of keys whose value names something (`sso_session`, `sso_start_url`, `region`,
    /// `role_arn`): a semantic error may quote those to say what is wrong.
    names: Vec<String>,
}

/// A plausible AWS config (sections, keys, comments, continuation lines) whose every value is a
/// secret-looking string.
fn aws_config_file() -> impl Strategy<Value = AwsFile> {
    let key = prop_oneof![
        Just("sso_session".to_owned()),
        Just("sso_start_url".to_owned()),
        Just("aws_secret_access_key".to_owned()),
        Just("role_arn".to_owned()),
        Just("region".to_owned()),
        "[a-z_]{1,12}",
    ];
    let header = prop_oneof![
        "[a-z0-9]{1,8}".prop_map(|n| format!("[profile {n}]")),
        "[a-z0-9]{1,8}".prop_map(|n| format!("[sso-session {n}]")),
        Just("[default]".to_owned()),
        Just("[DEFAULT]".to_owned()),
        "[a-z0-9]{1,8}".prop_map(|n| format!("[services {n}]")),
    ];
    let line = prop_oneof![
        3 => (key, prop_oneof![Just(" = "), Just("="), Just(": "), Just(" =")], secret_value())
            .prop_map(|(k, sep, v)| {
                let is_name = ["sso_session", "sso_start_url", "region", "role_arn"].contains(&k.as_str());
                (format!("{k}{sep}{v}"), Some((v, is_name)))
            }),
        1 => header.prop_map(|h| (h, None)),
        1 => secret_value().prop_map(|v| (format!("  {v}"), Some((v, false)))),
        1 => (secret_value(), secret_value()).prop_map(|(a, b)| (format!("  {a} = {b}"), Some((b, false)))),
        1 => Just(("# a comment".to_owned(), None)),
        1 => Just((String::new(), None)),
    ];
    prop::collection::vec(line, 0..30).prop_map(|lines| {
        let mut text = String::new();
        let mut secrets = Vec::new();
        let mut names = Vec::new();
        // Indented lines continue the value above them (configparser): under a naming key they
        // are part of the name.
        let mut in_name = false;
        for (l, s) in lines {
            text.push_str(&l);
            text.push('\n');
            let continuation = l.starts_with(' ') || l.is_empty() || l.starts_with('#');
            if let Some((v, is_name)) = s {
                in_name = is_name || (in_name && continuation);
                if in_name {
                    names.push(v.clone());
                }
                secrets.push(v);
            } else if !continuation {
                in_name = false;
            }
        }
        AwsFile {
            text,
            secrets,
            names,
        }
    })
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn aws_config_parse_never_panics_on_text(text in "(?s).{0,400}") {
        let _ = aws_profile::parse(&text, Path::new("/h/.aws/config"));
    }

    #[test]
    fn aws_config_parse_never_panics_on_lossy_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = aws_profile::parse(&text, Path::new("/h/.aws/config"));
    }

    #[test]
    fn aws_config_errors_never_show_a_value(file in aws_config_file(), muts in prop_oneof![Just(Vec::new()), prop::collection::vec(mutation(), 1..3)]) {
        // Mutations keep the text UTF-8 by going through a lossy conversion.
        let bytes = mutate(file.text.as_bytes(), &muts);
        let text = String::from_utf8_lossy(&bytes);
        let path = Path::new("/h/.aws/config");
        let parsed = aws_profile::parse(&text, path);
        match &parsed {
            // A syntax error quotes no value at all.
            Err(e) => {
                let msg = e.to_string();
                for secret in &file.secrets {
                    prop_assert!(!msg.contains(secret.as_str()), "value {secret} in error: {msg}");
                }
            }
            // Looking up every profile exercises the semantic errors too (missing keys,
            // unsupported kinds, unknown sessions, mismatches): they may name a session or a
            // start URL, never another value. (Only on unmutated files: a mutation can splice
            // any line into a naming value.)
            Ok(cfg) if muts.is_empty() => {
                for e in cfg.profiles.keys().filter_map(|name| cfg.sso_profile(name).err()) {
                    let msg = e.to_string();
                    for secret in file.secrets.iter().filter(|s| !file.names.contains(s)) {
                        prop_assert!(!msg.contains(secret.as_str()), "value {secret} in error: {msg}");
                    }
                }
            }
            Ok(_) => {}
        }
    }
}

// ---- credsync's config ----------------------------------------------------------------------

fn credsync_config_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("[aws]\n".to_owned()),
        Just("[write]\n".to_owned()),
        Just("[refresh]\n".to_owned()),
        Just("[container]\n".to_owned()),
        Just("[control]\n".to_owned()),
        Just("[[profiles]]\n".to_owned()),
        "[a-z]{1,6}".prop_map(|s| format!("source = \"{s}\"\n")),
        "[a-z]{1,6}".prop_map(|s| format!("target = \"{s}\"\n")),
        Just("config_file = \"~/.aws/config\"\n".to_owned()),
        Just("credentials_file = \"~bob/creds\"\n".to_owned()),
        Just("mode = \"in-place\"\n".to_owned()),
        Just("mode = \"sideways\"\n".to_owned()),
        Just("file_mode = \"0644\"\n".to_owned()),
        Just("file_mode = 420\n".to_owned()),
        "[0-9]{1,3}[smhd]?".prop_map(|d| format!("min_remaining = \"{d}\"\n")),
        (0i64..100).prop_map(|n| format!("max_concurrency = {n}\n")),
        Just("uid = -1\n".to_owned()),
        Just("unknown_key = 1\n".to_owned()),
        Just("log_level = \"trace\"\n".to_owned()),
        "[ -~]{0,12}".prop_map(|s| format!("{s}\n")),
    ];
    prop::collection::vec(piece, 0..16).prop_map(|v| v.concat())
}

fn check_location(text: &str, r: Result<config::Config, ConfigError>) -> Result<(), TestCaseError> {
    if let Err(ConfigError::Invalid { line, column, .. }) = r {
        let lines: Vec<&str> = text.split('\n').collect();
        prop_assert!(
            line >= 1 && line <= lines.len(),
            "line {line} of {} in {text:?}",
            lines.len()
        );
        let width = lines[line - 1].chars().count();
        prop_assert!(
            column >= 1 && column <= width + 1,
            "column {column} of {width} on line {line} in {text:?}"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn credsync_config_errors_point_inside_the_input(text in credsync_config_text()) {
        let env = Env { home: "/home/u".into(), vars: Default::default() };
        let r = config::parse(&text, Path::new("/home/u/.config/credsync/config.toml"), &env);
        check_location(&text, r)?;
    }

    #[test]
    fn credsync_config_never_panics_on_text(text in "(?s).{0,300}") {
        let env = Env { home: "/home/u".into(), vars: Default::default() };
        let r = config::parse(&text, Path::new("/c.toml"), &env);
        check_location(&text, r)?;
    }

    #[test]
    fn credsync_config_never_panics_on_bytes(
        text in credsync_config_text(),
        muts in prop::collection::vec(mutation(), 1..4),
    ) {
        let env = Env { home: "/home/u".into(), vars: Default::default() };
        let bytes = mutate(text.as_bytes(), &muts);
        let r = config::parse_bytes(&bytes, Path::new("/c.toml"), &env);
        if let Err(ConfigError::Invalid { line, column, .. }) = r {
            let lossy = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = lossy.split('\n').collect();
            prop_assert!(line >= 1 && line <= lines.len());
            prop_assert!(column >= 1 && column <= lines[line - 1].chars().count() + 1);
        }
    }
}

// ---- the control socket ---------------------------------------------------------------------

fn request_like() -> impl Strategy<Value = Vec<u8>> {
    let json = (
        prop::option::of(prop_oneof![
            Just("1".to_owned()),
            Just("2".to_owned()),
            Just("-1".to_owned()),
            Just("\"1\"".to_owned()),
            Just("1e400".to_owned()),
            Just("null".to_owned())
        ]),
        prop::option::of(prop_oneof![
            Just("\"status\"".to_owned()),
            Just("\"refresh\"".to_owned()),
            Just("\"reload\"".to_owned()),
            Just("\"shutdown\"".to_owned()),
            Just("7".to_owned()),
            Just("[]".to_owned())
        ]),
        prop::option::of(prop_oneof![
            "[ -~]{0,10}".prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
            Just("null".to_owned()),
            Just("{}".to_owned())
        ]),
        prop::option::of("[a-z]{1,6}"),
    )
        .prop_map(|(v, c, p, extra)| {
            let mut fields = Vec::new();
            if let Some(v) = v {
                fields.push(format!("\"version\":{v}"));
            }
            if let Some(c) = c {
                fields.push(format!("\"command\":{c}"));
            }
            if let Some(p) = p {
                fields.push(format!("\"profile\":{p}"));
            }
            if let Some(e) = extra {
                fields.push(format!("\"{e}\":1"));
            }
            format!("{{{}}}\n", fields.join(","))
        });
    prop_oneof![
        3 => json.prop_flat_map(|s| (Just(s), prop::collection::vec(mutation(), 0..3)))
            .prop_map(|(s, m)| mutate(s.as_bytes(), &m)),
        1 => prop::collection::vec(any::<u8>(), 0..200),
    ]
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn control_requests_always_get_an_answer(line in request_like()) {
        match parse_request(&line) {
            Ok(req) => {
                // What parses is a request the daemon knows; it re-serialises to a valid line.
                let again = serde_json::to_vec(&req).expect("serialise");
                prop_assert!(!again.is_empty());
            }
            Err(msg) => {
                prop_assert!(!msg.is_empty());
                prop_assert!(!msg.contains('\n'), "one-line error: {msg:?}");
            }
        }
    }
}
