//! Logging: `tracing` to stderr, level from `CREDSYNC_LOG`, no ANSI colours unless stderr is a
//! terminal, no timestamps under journald (`JOURNAL_STREAM` set: journald adds its own).
//!
//! `CREDSYNC_LOG` is a comma-separated list of `LEVEL` and `TARGET=LEVEL` directives
//! (`debug`, `credsync::watch=trace,info`); the longest matching target wins. A value that does
//! not parse is ignored (the command's default level applies).
//!
//! The SDK's own crates are capped at `warn` whatever `CREDSYNC_LOG` asks for: at `debug` and
//! `trace` they log requests, signing material and headers, which carry tokens and keys.

use std::io::IsTerminal;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

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

/// Whether `target` (a module path) is one of [`CAPPED`] or inside one.
fn is_capped(target: &str) -> bool {
    CAPPED.iter().any(|c| {
        target
            .strip_prefix(c)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

/// The filter for `spec` (a `CREDSYNC_LOG` value), else `default` (a level) when it is unset or
/// does not parse. Directives naming an SDK crate (or a module inside one) are lowered to
/// `warn`, and every SDK crate gets at most `warn` from the default level.
pub(crate) fn filter(spec: Option<&str>, default: LevelFilter) -> Targets {
    let parsed = spec.and_then(|s| s.parse::<Targets>().ok());
    let default_level =
        parsed
            .as_ref()
            .and_then(Targets::default_level)
            .unwrap_or(if parsed.is_some() {
                LevelFilter::OFF
            } else {
                default
            });
    let cap = |level: LevelFilter| level.min(LevelFilter::WARN);
    let mut targets = Targets::new().with_default(default_level);
    for c in CAPPED {
        targets = targets.with_target(*c, cap(default_level));
    }
    for (target, level) in parsed.iter().flat_map(Targets::iter) {
        let level = if is_capped(target) { cap(level) } else { level };
        targets = targets.with_target(target, level);
    }
    targets
}

/// Installs the global subscriber. `default` is the level when `CREDSYNC_LOG` is unset.
pub fn init(default: LevelFilter) {
    let spec = std::env::var("CREDSYNC_LOG").ok();
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let registry = tracing_subscriber::registry().with(filter(spec.as_deref(), default));
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        registry.with(fmt.without_time()).init();
    } else {
        registry.with(fmt).init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn sdk_crates_stay_at_warn_even_at_trace() {
        let f = filter(Some("trace"), LevelFilter::INFO);
        assert!(f.would_enable("credsync::engine", &Level::TRACE));
        assert!(f.would_enable("aws_sigv4", &Level::WARN));
        assert!(!f.would_enable("aws_sigv4", &Level::INFO));
        assert!(!f.would_enable("aws_smithy_runtime::client::orchestrator", &Level::DEBUG));
        assert!(!f.would_enable("hyper_util::client", &Level::TRACE));
    }

    #[test]
    fn naming_an_sdk_crate_or_one_of_its_modules_does_not_lift_the_cap() {
        let f = filter(
            Some("aws_smithy_runtime::client=trace,aws_sigv4=debug,rustls=trace,info"),
            LevelFilter::WARN,
        );
        assert!(!f.would_enable("aws_smithy_runtime::client::orchestrator", &Level::INFO));
        assert!(!f.would_enable("aws_sigv4::sign", &Level::DEBUG));
        assert!(!f.would_enable("rustls::conn", &Level::INFO));
        assert!(f.would_enable("rustls::conn", &Level::WARN));
        assert!(f.would_enable("credsync", &Level::INFO));
        assert!(!f.would_enable("credsync", &Level::DEBUG));
    }

    #[test]
    fn targets_and_levels_combine_as_documented() {
        let f = filter(Some("credsync::watch=trace,warn"), LevelFilter::INFO);
        assert!(f.would_enable("credsync::watch", &Level::TRACE));
        assert!(!f.would_enable("credsync::engine", &Level::INFO));
        assert!(f.would_enable("credsync::engine", &Level::WARN));
        // Only targets named: everything else is off, as with RUST_LOG.
        let f = filter(Some("credsync=debug"), LevelFilter::INFO);
        assert!(f.would_enable("credsync::engine", &Level::DEBUG));
        assert!(!f.would_enable("notify", &Level::ERROR));
    }

    #[test]
    fn an_invalid_spec_falls_back_to_the_default() {
        let f = filter(Some("=[not a filter"), LevelFilter::INFO);
        assert!(f.would_enable("credsync", &Level::INFO));
        assert!(!f.would_enable("credsync", &Level::DEBUG));
        let f = filter(None, LevelFilter::WARN);
        assert!(!f.would_enable("credsync", &Level::INFO));
        assert!(f.would_enable("credsync", &Level::WARN));
    }
}
