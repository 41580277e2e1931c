//! credsync keeps AWS credentials fresh on disk for programs that cannot refresh them.
// Tests may read files any way they like; the code reads the user's files through `user_file`.
#![cfg_attr(test, allow(clippy::disallowed_methods))]
// The pure modules live in the core crate (crates/core); these are their old paths.
pub use credsync_core::{chain, ini_edit, schedule, secret, status, timefmt};
pub(crate) use credsync_core::{ini, notice, token_policy};

pub mod acl;
pub mod astro_setup;
pub mod aws;
pub mod aws_profile;
pub mod config;
pub mod control;
pub mod daemon;
pub mod doctor;
pub mod engine;
pub mod logging;
pub mod login;
pub mod login_cache;
pub(crate) mod markup;
pub mod mounts;
pub(crate) mod notify;
pub mod platform;
pub mod process;
pub mod service;
pub mod signin;
pub mod sso_cache;
pub mod sts;
pub mod token;
pub mod uidmap;
pub mod user_file;
pub(crate) mod view;
pub mod watch;
pub mod write;

/// What the library's unit tests share.
#[cfg(test)]
pub(crate) mod test_support {
    /// Property tests report a failure with its input and write no regression files into the
    /// source tree.
    pub(crate) fn proptest_config() -> proptest::test_runner::Config {
        proptest::test_runner::Config {
            failure_persistence: None,
            ..proptest::test_runner::Config::default()
        }
    }
}
