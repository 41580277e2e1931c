//! credsync's pure core: the AWS file formats (the AWS config, the credentials file, the SSO
//! and `aws login` caches), the planner, the state machine and its report, the schedule, the
//! token policy, the status types, the notification decision and doctor's rows and pure checks.
//! Everything here is a function of its arguments and events: it reads no file, opens no
//! socket, starts no program, calls no AWS SDK, runs no async runtime and looks at no clock.
//! `Cargo.toml` keeps it so (no dependency that does I/O), and the `credsync` crate is the edge
//! that does the I/O and re-exports these modules under their old paths.
pub mod aws_profile;
pub mod chain;
pub mod config;
pub mod doctor;
pub mod engine;
pub mod ini;
pub mod ini_edit;
pub mod login_cache;
pub mod notice;
pub mod resolve;
pub mod schedule;
pub mod secret;
pub mod sso_cache;
pub mod status;
pub mod timefmt;
pub mod token_policy;
pub mod write;

/// What the crate's unit tests share.
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
