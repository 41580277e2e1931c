//! Logging: `tracing` to stderr, level from `CREDSYNC_LOG`, no ANSI colours unless stderr is a
//! terminal, no timestamps under journald (`JOURNAL_STREAM` set: journald adds its own).
//!
//! The SDK's own crates are capped at `warn` whatever `CREDSYNC_LOG` asks for: at `debug` and
//! `trace` they log requests, signing material and headers, which carry tokens and keys.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Targets that may log secrets at verbose levels; never more verbose than `warn`.
const CAPPED: &[&str] = &[
    "aws_config",
    "aws_runtime",
    "aws_sdk_sso",
    "aws_sdk_ssooidc",
    "aws_sdk_sts",
    "aws_sigv4",
    "aws_smithy_http_client",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_types",
    "h2",
    "hyper",
    "hyper_util",
    "rustls",
];

/// The filter for `spec` (a `CREDSYNC_LOG` value, or `default` when unset or invalid).
pub fn filter(spec: Option<&str>, default: &str) -> EnvFilter {
    let base = spec
        .and_then(|s| EnvFilter::try_new(s).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    CAPPED
        .iter()
        .fold(base, |f, target| match format!("{target}=warn").parse() {
            Ok(directive) => f.add_directive(directive),
            Err(_) => f,
        })
}

/// Installs the global subscriber. `default` is the level when `CREDSYNC_LOG` is unset.
pub fn init(default: &str) {
    let spec = std::env::var("CREDSYNC_LOG").ok();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(spec.as_deref(), default))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().init();
    } else {
        builder.init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_crates_stay_at_warn_even_at_trace() {
        let f = filter(Some("trace"), "info").to_string();
        assert!(f.contains("aws_sigv4=warn"), "{f}");
        assert!(f.contains("aws_smithy_runtime=warn"), "{f}");
        assert!(f.contains("trace"), "{f}");
    }

    #[test]
    fn an_invalid_spec_falls_back_to_the_default() {
        let f = filter(Some("=[not a filter"), "info").to_string();
        assert!(f.contains("info"), "{f}");
    }
}
